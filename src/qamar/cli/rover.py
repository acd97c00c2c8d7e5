"""``qamar rover``: rover routes on lunar DEMs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qamar.cli.common import fail, sub_app, user_errors
from qamar.errors import ModelConfigError

rover_app = sub_app("Rover traversability and route planning on lunar DEMs.")

PSR_RIM = "psr-rim"


def _lat_lon(text: str, option: str) -> tuple[float, float]:
    """'LAT,LON' (deg) -> (lat, lon); ModelConfigError otherwise."""
    parts = text.replace(" ", "").split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise ModelConfigError(f"{option} takes LAT,LON in degrees (e.g. -89.45,-140.2), got {text!r}") from None
    return lat, lon


@rover_app.command("plan")
@user_errors
def rover_plan(
    dem: Annotated[Path, typer.Argument(help="DEM GeoTIFF in a polar stereographic lunar CRS (heights in m)")],
    start: Annotated[str, typer.Option("--from", help="start LAT,LON (deg, planetocentric ME)")],
    goal: Annotated[str, typer.Option("--to", help=f"goal LAT,LON (deg), or '{PSR_RIM}' for the nearest rim of a "
                                                   "PSR (needs --psr and --psr-mode target)")],
    out: Annotated[Path, typer.Option(help="route GeoJSON to write (map CRS, lat/lon per vertex)")],
    summary: Annotated[Path, typer.Option(help="route.json to write (feasible, length_m, duration_h, reason...)")],
    rover: Annotated[Path | None, typer.Option(help="rover YAML (default: the documented assumptions)")] = None,
    max_slope_deg: Annotated[float | None, typer.Option(help="slope limit, deg (default: the rover's)")] = None,
    csv: Annotated[Path | None, typer.Option(help="route CSV (default: next to --out)")] = None,
    craters: Annotated[bool, typer.Option("--craters/--no-craters", help="keep out catalogued craters")] = True,
    keep_out: Annotated[Path | None, typer.Option(help="GeoJSON of keep-out zones (lon/lat polygons, "
                                                          "or points with radius_m)")] = None,
    psr: Annotated[Path | None, typer.Option(help="PSR raster of this DEM (`qamar surface psr`)")] = None,
    psr_mode: Annotated[str, typer.Option(help="PSRs as 'hazard' (kept out) or 'target' (drivable)")] = "hazard",
    connectivity: Annotated[int, typer.Option(help="grid moves: 8 or 16 (with knight's moves)")] = 16,
) -> None:
    """Plan the cheapest static route between two points (or to a PSR rim) on a DEM."""
    from qamar.rover.model import load_rover
    from qamar.rover.plan import plan_route
    from qamar.rover.traverse import cost_map
    from qamar.surface.maps import write_json
    from qamar.surface.terrain import read_dem

    spec = load_rover(rover)
    start_ll = _lat_lon(start, "--from")
    goal_ll = None if goal.strip().lower() == PSR_RIM else _lat_lon(goal, "--to")
    grid = read_dem(dem)
    costs = cost_map(grid, spec, max_slope_deg=max_slope_deg, craters=craters, keep_out=keep_out, psr=psr,
                     psr_mode=psr_mode)
    route = plan_route(costs, start_ll, goal_ll, spec, connectivity=connectivity)
    document = {**route.summary(), "dem": str(dem), "rover": spec.name, "max_slope_limit_deg": costs.max_slope_deg,
                "craters_kept_out": len(costs.craters), "assumptions": spec.assumptions()}
    write_json(document, summary)
    if not route.feasible:
        fail(f"{route.reason} (written to {summary})")
    route.write_geojson(out, {"rover": spec.name})
    csv_path = csv or out.with_suffix(".csv")
    route.write_csv(csv_path)
    typer.echo(f"route {route.length_m:.0f} m, {route.duration_h:.1f} h at {spec.mobility.speed_m_per_s * 100:g} cm/s, "
               f"steepest {route.max_slope_deg:.1f} deg, {route.rows.size} vertices; wrote {out}, {csv_path}, {summary}")

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
    start_utc: Annotated[str | None, typer.Option("--start", help="UTC start of a spatiotemporal plan "
                                                                  "(e.g. 2028-06-01T00:00:00Z)")] = None,
    spatiotemporal: Annotated[bool, typer.Option("--spatiotemporal", help="plan over position, time and battery "
                                                                          "with Sun and Earth from horizon maps")] = False,
    step_h: Annotated[float, typer.Option(help="time step of the spatiotemporal plan (h)")] = 1.0,
    days: Annotated[float, typer.Option(help="span of the spatiotemporal plan (days)")] = 14.0,
    plan_factor: Annotated[int | None, typer.Option(help="planning block size in DEM pixels (default: at most "
                                                         "160 blocks a side)")] = None,
    via: Annotated[list[str] | None, typer.Option(help="LAT,LON of a target to visit before --to (repeat for "
                                                       "several, in order; spatiotemporal)")] = None,
    haven_h: Annotated[float, typer.Option(help="hours the rover must then be able to stay at the goal "
                                                "(a lit safe haven); 0: no such demand")] = 0.0,
    far_dem: Annotated[Path | None, typer.Option(help="DEM of the wider region for distant horizons "
                                                      "(same CRS)")] = None,
    horizon_km: Annotated[float, typer.Option(help="horizon search distance (km)")] = 150.0,
    timeline: Annotated[Path | None, typer.Option(help="PNG of battery, array power and Earth contact "
                                                       "(spatiotemporal)")] = None,
    lander: Annotated[str | None, typer.Option(help="lander LAT,LON (deg): contact = the lander's viewshed "
                                                    "within comms.lander_range_m while it sees the Earth "
                                                    "(spatiotemporal, comms.earth_link via_lander)")] = None,
) -> None:
    """Plan the cheapest static route between two points (or to a PSR rim) on a DEM, or with
    --spatiotemporal the earliest feasible arrival as the Sun and Earth move (Earth contact
    through the lander at --lander if given; route.json says which contact model was used)."""
    from qamar.rover.model import load_rover
    from qamar.rover.plan import plan_route
    from qamar.rover.traverse import cost_map
    from qamar.surface.maps import write_json
    from qamar.surface.terrain import read_dem

    spec = load_rover(rover)
    start_ll = _lat_lon(start, "--from")
    goal_ll = None if goal.strip().lower() == PSR_RIM else _lat_lon(goal, "--to")
    lander_ll = None if lander is None else _lat_lon(lander, "--lander")
    if lander_ll is not None and not (spatiotemporal or start_utc is not None):
        raise ModelConfigError("--lander sets the contact model of a spatiotemporal plan: add --spatiotemporal and "
                               "--start")
    grid = read_dem(dem)
    costs = cost_map(grid, spec, max_slope_deg=max_slope_deg, craters=craters, keep_out=keep_out, psr=psr,
                     psr_mode=psr_mode)
    if spatiotemporal or start_utc is not None:
        targets = [_lat_lon(v, "--via") for v in via or []] + ([goal_ll] if goal_ll is not None else [])
        _plan_spacetime(grid, costs, spec, start_ll, targets, goal_ll, start_utc, spatiotemporal, step_h, days,
                        plan_factor, haven_h, far_dem, horizon_km, dem, out, summary, csv, timeline, lander_ll)
        return
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


def _plan_spacetime(grid, costs, spec, start_ll, targets, goal_ll, start_utc, spatiotemporal, step_h, days,
                    plan_factor, haven_h, far_dem, horizon_km, dem, out, summary, csv, timeline, lander_ll) -> None:
    """The --spatiotemporal branch of ``rover plan``: light, plan, route.json, GeoJSON, CSV, PNG.
    route.json's ``contact`` names the contact model; ``contact_share`` is the share of the
    plan's time in contact (each event's contact held since the event before)."""
    import numpy as np

    from qamar.ops.link import LanderSite
    from qamar.rover.spacetime import (
        auto_factor,
        contact_model,
        plan_spacetime,
        plot_timeline,
        site_light,
    )
    from qamar.surface.maps import write_json
    from qamar.surface.terrain import read_dem

    if not spatiotemporal:
        raise ModelConfigError("--start sets the start of a spatiotemporal plan: add --spatiotemporal")
    if start_utc is None:
        raise ModelConfigError("--spatiotemporal needs --start, a UTC time such as 2028-06-01T00:00:00Z")
    if goal_ll is None:
        raise ModelConfigError(f"--spatiotemporal needs a goal point --to LAT,LON ('{PSR_RIM}' is static only)")
    factor = plan_factor or auto_factor(grid.shape)
    site = None if lander_ll is None else LanderSite(*lander_ll)
    _, light = site_light(grid, spec, start_utc, days, step_h, factor, far_dem=read_dem(far_dem) if far_dem else None,
                          max_distance_km=horizon_km, lander=site)
    result = plan_spacetime(costs, light, start_ll, targets, spec, factor=factor, start_utc=start_utc,
                            haven_h=haven_h)
    document = {**result.summary(), "dem": str(dem), "rover": spec.name, "days": days,
                "max_slope_limit_deg": costs.max_slope_deg, "craters_kept_out": len(costs.craters),
                "max_contact_gap_h": spec.comms.max_contact_gap_h, "contact": contact_model(spec, site),
                "assumptions": spec.assumptions()}
    if result.feasible:
        s = result.schedule
        document["contact_share"] = round(float(np.diff(s.t_h) @ s.contact[1:] / max(s.t_h[-1] - s.t_h[0], 1e-12)), 4)
    write_json(document, summary)
    if not result.feasible:
        fail(f"{result.reason} (written to {summary})")
    result.route.write_geojson(out, {"rover": spec.name, "start_utc": start_utc,
                                     "arrival_utc": document["arrival_utc"]})
    csv_path = csv or out.with_suffix(".csv")
    result.write_csv(csv_path, grid)
    if timeline is not None:
        plot_timeline(result, timeline)
    typer.echo(f"arrives {document['arrival_utc']} ({document['arrival_h']:.1f} h: {document['driving_h']:.1f} h "
               f"driving, {document['waiting_h'] + document['hibernating_h']:.1f} h waiting), "
               f"{result.route.length_m:.0f} m, battery >= {document['min_battery_wh']:.1f} Wh; wrote {out}, "
               f"{csv_path}, {summary}" + (f", {timeline}" if timeline else ""))

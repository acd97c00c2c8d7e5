"""``qamar surface``: horizons, illumination, Earth visibility and permanently shadowed regions
on lunar DEMs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qamar.cli.common import sub_app, user_errors

surface_app = sub_app("Horizons, illumination, Earth visibility and permanently shadowed regions on lunar DEMs.")

DemArg = Annotated[Path, typer.Argument(help="DEM GeoTIFF/COG or PDS3 .IMG in a lunar CRS (heights in m)")]
FarDem = Annotated[Path | None, typer.Option("--far-dem", help="coarse DEM (same CRS) for terrain beyond the DEM")]
HorizonOpt = Annotated[Path | None, typer.Option("--horizon", help="precomputed horizon map of this DEM "
                                                    "(`qamar surface horizon`); computed here when absent")]
Azimuths = Annotated[int, typer.Option("--azimuths", help="horizon azimuths (when computing the horizon)")]
MaxDistance = Annotated[float, typer.Option("--max-distance-km", help="horizon search radius (when computing it)")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress")]


def _horizon(dem, dem_path: Path, far_dem: Path | None, horizon: Path | None, azimuths: int, max_distance_km: float,
             observer_height_m: float | None, progress: bool, window=None):
    """The horizon map to use: the file given (checked against the DEM and the observer
    height), or one computed now (for ``window`` only, if given)."""
    from qamar.surface.horizon import compute_horizon
    from qamar.surface.illumination import check_horizon_fits
    from qamar.surface.terrain import read_dem

    if horizon is not None:
        check_horizon_fits(dem, horizon, observer_height_m)
        return horizon
    far = read_dem(far_dem) if far_dem else None
    return compute_horizon(dem, far_dem=far, n_azimuths=azimuths, max_distance_km=max_distance_km,
                           observer_height_m=observer_height_m or 0.0, progress=progress, window=window)


@surface_app.command("horizon")
@user_errors
def surface_horizon(
    dem: DemArg,
    out: Annotated[Path, typer.Option(help="horizon map GeoTIFF to write (int16 centi-degrees, one band per azimuth)")],
    far_dem: FarDem = None,
    azimuths: Azimuths = 360,
    max_distance_km: MaxDistance = 150.0,
    observer_height_m: Annotated[float, typer.Option(help="observer above the ground, m")] = 0.0,
    progress: Progress = True,
) -> None:
    """Compute the horizon elevation at every pixel and azimuth of a DEM."""
    import time

    from qamar.surface.horizon import compute_horizon, write_horizon
    from qamar.surface.terrain import read_dem

    grid = read_dem(dem)
    far = read_dem(far_dem) if far_dem else None
    start = time.perf_counter()
    hmap = compute_horizon(grid, far_dem=far, n_azimuths=azimuths, max_distance_km=max_distance_km,
                           observer_height_m=observer_height_m, progress=progress)
    write_horizon(hmap, out)
    typer.echo(f"{grid.shape[0]} x {grid.shape[1]} pixels x {azimuths} azimuths to {max_distance_km:g} km in "
               f"{time.perf_counter() - start:.1f} s; wrote {out}")


@surface_app.command("illumination")
@user_errors
def surface_illumination(
    dem: DemArg,
    start: Annotated[str, typer.Option(help="first epoch, ISO-8601 UTC")],
    stop: Annotated[str, typer.Option(help="end of the span (excluded), ISO-8601 UTC")],
    out: Annotated[Path, typer.Option(help="folder for the GeoTIFFs, PNG maps and summary.json")],
    step_h: Annotated[float, typer.Option(help="time step, hours")] = 1.0,
    observer_height_m: Annotated[float | None, typer.Option(
        help="observer above the ground, m (default: the horizon map's, or 0)")] = None,
    far_dem: FarDem = None,
    horizon: HorizonOpt = None,
    azimuths: Azimuths = 360,
    max_distance_km: MaxDistance = 150.0,
    features: Annotated[bool, typer.Option("--features/--no-features", help="named features on the maps")] = True,
    progress: Progress = True,
) -> None:
    """Maps of sunlit fraction, Earth in view, both, and the longest night over a span."""
    from qamar.surface.horizon import write_horizon
    from qamar.surface.illumination import body_tracks, epochs_tdb_s, illumination_maps
    from qamar.surface.maps import write_illumination
    from qamar.surface.terrain import read_dem

    grid = read_dem(dem)
    tracks = body_tracks(epochs_tdb_s(start, stop, step_h))  # bad spans fail before any heavy work
    hmap = _horizon(grid, dem, far_dem, horizon, azimuths, max_distance_km, observer_height_m, progress)
    out.mkdir(parents=True, exist_ok=True)
    if horizon is None:
        write_horizon(hmap, out / "horizon.tif")
    maps = illumination_maps(grid, hmap, tracks, observer_height_m=observer_height_m, progress=progress)
    summary = write_illumination(maps, grid, out, features=features)
    sun, earth = summary["sun_fraction"], summary["earth_fraction"]
    typer.echo(f"{summary['n_samples']} samples, {summary['pixels']} pixels: sunlit {sun['mean']:.3f} mean / "
               f"{sun['max']:.3f} max, Earth in view {earth['mean']:.3f} mean; wrote {out}")


@surface_app.command("point")
@user_errors
def surface_point(
    dem: DemArg,
    lat: Annotated[float, typer.Option(help="planetocentric latitude, deg")],
    lon: Annotated[float, typer.Option(help="east longitude, deg (0..360 or -180..180)")],
    start: Annotated[str, typer.Option(help="first epoch, ISO-8601 UTC")],
    stop: Annotated[str, typer.Option(help="end of the span (excluded), ISO-8601 UTC")],
    step_h: Annotated[float, typer.Option(help="time step, hours")] = 1.0,
    observer_height_m: Annotated[float | None, typer.Option(
        help="observer above the ground, m (default: the horizon map's, or 0)")] = None,
    summary: Annotated[Path | None, typer.Option(help="summary JSON to write")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV time series to write")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG: horizon profile, Sun and Earth tracks")] = None,
    far_dem: FarDem = None,
    horizon: HorizonOpt = None,
    azimuths: Azimuths = 360,
    max_distance_km: MaxDistance = 150.0,
    progress: Progress = True,
) -> None:
    """Sun elevation and visible fraction, Earth elevation and horizon profile at one point."""
    from rasterio.windows import Window

    from qamar.surface.illumination import body_tracks, epochs_tdb_s, pixel_of, point_series
    from qamar.surface.maps import plot_horizon_profile, write_json
    from qamar.surface.terrain import read_dem

    grid = read_dem(dem)
    row, col = pixel_of(grid, lat, lon)  # a point outside the DEM fails before any heavy work
    tracks = body_tracks(epochs_tdb_s(start, stop, step_h))
    hmap = _horizon(grid, dem, far_dem, horizon, azimuths, max_distance_km, observer_height_m, progress,
                    window=Window(col, row, 1, 1))
    series = point_series(grid, hmap, lat, lon, tracks, observer_height_m=observer_height_m)
    result = series.summary()
    if summary:
        write_json(result, summary)
    if out:
        series.to_csv(out)
    if plot:
        plot_horizon_profile(series, plot)
    typer.echo(f"{result['lat_deg']:.4f} deg, {result['lon_deg']:.4f} deg E: sunlit {result['sun_fraction']:.3f}, "
               f"Earth in view {result['earth_fraction']:.3f}, both {result['sun_and_earth_fraction']:.3f}, "
               f"longest night {result['longest_night_h']:g} h")


@surface_app.command("psr")
@user_errors
def surface_psr(
    dem: DemArg,
    out: Annotated[Path, typer.Option(help="GeoJSON of the PSR polygons (DEM map coordinates, areas in km2)")],
    summary: Annotated[Path | None, typer.Option(help="summary JSON (psr_area_km2, psr_count, ...)")] = None,
    raster: Annotated[Path | None, typer.Option(help="PSR mask GeoTIFF (default: OUT with .tif)")] = None,
    png: Annotated[Path | None, typer.Option(help="PSR map PNG (default: OUT with .png)")] = None,
    start: Annotated[str, typer.Option(help="start of the precession cycle, ISO-8601 UTC")] = "2024-01-01",
    years: Annotated[float, typer.Option(help="span, years (a precession cycle is 18.6)")] = 18.6,
    lon_step_deg: Annotated[float, typer.Option(help="solar longitude step of the envelope, deg")] = 0.1,
    far_dem: FarDem = None,
    horizon: HorizonOpt = None,
    azimuths: Azimuths = 360,
    max_distance_km: MaxDistance = 150.0,
    progress: Progress = True,
) -> None:
    """Permanently shadowed regions over a lunar precession cycle: GeoJSON, raster and summary."""
    from qamar.surface.maps import features_on_map, plot_map, write_json
    from qamar.surface.psr import find_psr, psr_summary, sun_envelope, write_psr_geojson, write_psr_raster
    from qamar.surface.terrain import read_dem

    grid = read_dem(dem)
    envelope = sun_envelope(start, years)  # a span outside the ephemeris fails before any heavy work
    hmap = _horizon(grid, dem, far_dem, horizon, azimuths, max_distance_km, None, progress)
    result = find_psr(grid, hmap, lon_step_deg=lon_step_deg, envelope=envelope, progress=progress)
    write_psr_geojson(result, grid, out)
    write_psr_raster(result, grid, raster or out.with_suffix(".tif"))
    mask = result.mask.astype(float)
    mask[~result.mask] = float("nan")
    plot_map(mask, grid, png or out.with_suffix(".png"), cmap="cool", vmin=0.0, vmax=1.0, label="PSR",
             title=f"Permanently shadowed regions: {result.area_km2:,.0f} km2 in {result.count} regions "
                   f"({years:g} years from {start})")
    document = psr_summary(result, grid, features_on_map(grid))
    if summary:
        write_json(document, summary)
    typer.echo(f"{result.count} permanently shadowed regions, {result.area_km2:,.1f} km2; wrote {out}")

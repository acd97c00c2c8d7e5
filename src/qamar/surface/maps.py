"""Map products of the surface analyses: GeoTIFFs on the DEM grid and PNG maps with a colour
bar, a hillshade underlay and the IAU named features inside the map; the horizon-profile plot
of a point query.

Named features come from the IAU gazetteer (``qamar.data.path("gazetteer")``): approved
features with a diameter, centre latitude/longitude planetographic (on the spherical Moon the
same as planetocentric), east-positive. A feature is drawn as its rim circle when its centre
lies in the map; labels go from the largest feature down and skip any that would sit on an
earlier one.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import matplotlib.patheffects as pe
import numpy as np
import rasterio
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from mpl_toolkits.axes_grid1 import make_axes_locatable

from qamar import data
from qamar.io import atomic_write
from qamar.plotting import save_png
from qamar.surface.illumination import IlluminationMaps, PointSeries
from qamar.surface.terrain import Dem, lat_lon_to_xy

_LABEL_STYLE = {"color": "white", "fontsize": 7, "ha": "center", "va": "center",
                "path_effects": [pe.withStroke(linewidth=2.0, foreground="black")]}


def read_gazetteer() -> list[dict]:
    """Approved named features with a diameter: name, lat_deg, lon_deg (-180..180), diameter_km.

    Raises DataNotFoundError if the gazetteer is not available.
    """
    out = []
    with open(data.path("gazetteer"), newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            diameter = float(row["Diameter"] or 0.0)
            if row["Approval_Status"] != "Approved" or diameter <= 0.0:
                continue
            out.append({"name": row["Feature_Name"], "lat_deg": float(row["Center_Latitude"]),
                        "lon_deg": float(row["Center_Longitude"]), "diameter_km": diameter})
    return out


def features_on_map(dem: Dem, *, min_fraction: float = 0.01, max_count: int = 40) -> list[dict]:
    """Gazetteer features centred inside the DEM, at least ``min_fraction`` of its width across,
    largest first (at most ``max_count``), with map x/y and rim radius in map units."""
    t = dem.transform
    ny, nx = dem.shape
    x0, x1, y0, y1 = t.c, t.c + t.a * nx, t.f + t.e * ny, t.f
    width_km = (x1 - x0) * dem.pixel_size_m / t.a / 1e3
    r_km = dem.radius_m / 1e3
    found = []
    for f in sorted(read_gazetteer(), key=lambda f: -f["diameter_km"]):
        if f["diameter_km"] < min_fraction * width_km:
            break
        x, y = (float(v) for v in lat_lon_to_xy(f["lat_deg"], f["lon_deg"], dem))
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            continue
        rim_lat = f["lat_deg"] + math.degrees(0.5 * f["diameter_km"] / r_km) * (1 if f["lat_deg"] < 0 else -1)
        xr, yr = (float(v) for v in lat_lon_to_xy(rim_lat, f["lon_deg"], dem))
        found.append({**f, "x": x, "y": y, "radius": math.hypot(xr - x, yr - y)})
        if len(found) == max_count:
            break
    return found


def hillshade(dem: Dem, azimuth_deg: float = 315.0, altitude_deg: float = 35.0) -> np.ndarray:
    """Shaded relief in [0, 1] of the DEM in its map grid (light from ``azimuth_deg`` clockwise
    from map up, ``altitude_deg`` high); 0.5 where there is no data."""
    z = np.asarray(dem.elevation_m, dtype=np.float64)
    dy, dx = np.gradient(np.where(np.isfinite(z), z, np.nanmean(z)), dem.pixel_size_m)
    slope = np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(-dx, dy)  # direction of steepest descent, clockwise from map up
    az, alt = math.radians(azimuth_deg), math.radians(altitude_deg)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    return np.where(np.isfinite(z), np.clip(shade, 0.0, 1.0), 0.5)


def plot_map(values: np.ndarray, dem: Dem, path: str | Path, *, title: str, label: str, cmap: str = "inferno",
             vmin: float | None = None, vmax: float | None = None, features: bool = True,
             relief: np.ndarray | None = None, mark_max: str | None = None) -> Path:
    """PNG map of ``values`` (DEM grid) over the DEM's hillshade with a colour bar, map axes in
    km and the named features inside the map; NaN shows the relief only. ``mark_max`` labels
    the largest value's pixel with that format (e.g. ``"{:.1%}"``). Returns the path."""
    path = Path(path)
    t = dem.transform
    ny, nx = dem.shape
    extent = np.array([t.c, t.c + t.a * nx, t.f + t.e * ny, t.f]) * dem.pixel_size_m / t.a / 1e3
    fig = Figure(figsize=(8.0, 1.4 + 6.4 * ny / nx))
    ax = fig.add_subplot()
    ax.imshow(hillshade(dem) if relief is None else relief, cmap="gray", extent=extent, origin="upper",
              interpolation="bilinear")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.72, extent=extent,
                      origin="upper", interpolation="nearest")
    bar = fig.colorbar(image, cax=make_axes_locatable(ax).append_axes("right", size="3.5%", pad=0.1))
    bar.set_label(label)
    bar.solids.set_alpha(1.0)
    if features:
        _draw_features(ax, dem, extent)
    if mark_max and np.isfinite(values).any():
        iy, ix = np.unravel_index(np.nanargmax(values), values.shape)
        x = extent[0] + (ix + 0.5) * (extent[1] - extent[0]) / nx
        y = extent[3] - (iy + 0.5) * (extent[3] - extent[2]) / ny
        ax.plot(x, y, marker="*", ms=9, mfc="cyan", mec="black", mew=0.6)
        ax.annotate(f"max {mark_max.format(values[iy, ix])}", (x, y), xytext=(6, 6), textcoords="offset points",
                    **{**_LABEL_STYLE, "ha": "left"})
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x (km), polar stereographic: +x towards 90 E")
    ax.set_ylabel("y (km): +y towards 0 E")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def _draw_features(ax, dem: Dem, extent: np.ndarray) -> None:
    scale = dem.pixel_size_m / dem.transform.a / 1e3  # map units -> km
    placed: list[tuple[float, float]] = []
    min_gap = 0.035 * (extent[1] - extent[0])
    for f in features_on_map(dem):
        x, y, r = f["x"] * scale, f["y"] * scale, f["radius"] * scale
        ax.add_patch(Circle((x, y), r, fill=False, lw=0.6, ec="white", alpha=0.6))
        if all(math.hypot(x - px, y - py) > min_gap for px, py in placed):
            ax.text(x, y, f["name"], **_LABEL_STYLE)
            placed.append((x, y))


def write_geotiff(values: np.ndarray, dem: Dem, path: str | Path, description: str = "") -> Path:
    """Write one band on the DEM grid and CRS (float32 with NaN = no data, or uint8 with 255 =
    no data; deflate, tiled), atomically (temporary file, then rename)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    dtype, nodata = ("uint8", 255) if values.dtype == np.uint8 else ("float32", float("nan"))
    try:
        with rasterio.open(partial, "w", driver="GTiff", width=dem.shape[1], height=dem.shape[0], count=1,
                           dtype=dtype, crs=dem.crs, transform=dem.transform, nodata=nodata, compress="deflate",
                           tiled=True, blockxsize=256, blockysize=256) as dst:
            dst.write(values.astype(dtype), 1)
            if description:
                dst.set_band_description(1, description)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_json(document: dict, path: str | Path) -> Path:
    """Write ``document`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_write(path) as stream:
        stream.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path


def write_illumination(maps: IlluminationMaps, dem: Dem, out_dir: str | Path, *, features: bool = True) -> dict:
    """Write sun_fraction.tif, earth_fraction.tif, sun_and_earth_fraction.tif,
    longest_night_h.tif, a PNG map of each and summary.json into ``out_dir``; returns the summary
    (with the file names)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    span = (f"{maps.start_utc[:10]} to {maps.stop_utc[:10]}, {maps.step_h:g} h steps, "
            f"observer {maps.observer_height_m:g} m")
    relief = hillshade(dem)
    products = {
        "sun_fraction": ("Sunlit fraction (disc-weighted)", "fraction of time", "inferno", 0.0, 1.0, "{:.1%}"),
        "earth_fraction": ("Earth in view (centre above the horizon)", "fraction of time", "viridis", 0.0, 1.0, None),
        "sun_and_earth_fraction": ("Sun and Earth together", "fraction of time", "cividis", 0.0, 1.0, "{:.1%}"),
        "longest_night_h": ("Longest continuous night", "hours", "magma_r", 0.0, None, None),
    }
    files = {}
    for name, (title, label, cmap, vmin, vmax, mark) in products.items():
        values = getattr(maps, name)
        if not np.isfinite(values).any():
            continue
        files[f"{name}_tif"] = write_geotiff(values, dem, out / f"{name}.tif", title).name
        files[f"{name}_png"] = plot_map(values, dem, out / f"{name}.png", title=f"{title}\n{span}", label=label,
                                        cmap=cmap, vmin=vmin, vmax=vmax, features=features, relief=relief,
                                        mark_max=mark).name
    summary = {**maps.summary(), "files": files}
    write_json(summary, out / "summary.json")
    return summary


def plot_horizon_profile(series: PointSeries, path: str | Path) -> Path:
    """PNG of a point's horizon profile with the Sun's and the Earth's tracks (az/el) over it:
    Sun samples coloured by their visible fraction (hidden ones grey), Earth samples blue when
    in view."""
    path = Path(path)
    fig = Figure(figsize=(10.0, 4.4))
    ax = fig.add_subplot()
    az = np.append(series.horizon_az_deg, 360.0)
    el = np.append(series.horizon_el_deg, series.horizon_el_deg[0])
    low = min(el.min(), series.sun_el_deg.min(), series.earth_el_deg.min()) - 0.5
    top = max(el.max(), series.sun_el_deg.max(), series.earth_el_deg.max()) + 0.5
    hidden = series.sun_fraction == 0.0
    ax.scatter(series.sun_az_deg[hidden], series.sun_el_deg[hidden], s=1.5, color="0.75", label="Sun, hidden",
               zorder=1)
    ax.scatter(series.earth_az_deg[~series.earth_in_view], series.earth_el_deg[~series.earth_in_view], s=1.5,
               color="lightsteelblue", label="Earth, hidden", zorder=1)
    ax.fill_between(az, low, el, color="0.3", lw=0, label="terrain (horizon)", zorder=2)
    ax.plot(az, el, color="black", lw=0.6, zorder=3)
    sun = ax.scatter(series.sun_az_deg[~hidden], series.sun_el_deg[~hidden], c=series.sun_fraction[~hidden],
                     cmap="autumn", vmin=0.0, vmax=1.0, s=2.5, label="Sun, visible", zorder=4)
    ax.scatter(series.earth_az_deg[series.earth_in_view], series.earth_el_deg[series.earth_in_view], s=2.5,
               color="tab:blue", label="Earth, in view", zorder=4)
    bar = fig.colorbar(sun, ax=ax, pad=0.01)
    bar.set_label("Sun visible fraction")
    ax.set_xlim(0.0, 360.0)
    ax.set_ylim(low, top)
    ax.set_xticks(np.arange(0, 361, 45))
    ax.set_xlabel("azimuth (deg, clockwise from local north)")
    ax.set_ylabel("elevation (deg)")
    s = series.summary()
    ax.set_title(f"Horizon at {series.lat_deg:.4f} deg, {series.lon_deg:.4f} deg E, observer "
                 f"{series.observer_height_m:g} m - {s['start_utc'][:10]} to {s['stop_utc'][:10]}: "
                 f"sunlit {s['sun_fraction']:.1%}, Earth in view {s['earth_fraction']:.1%}, "
                 f"longest night {s['longest_night_h']:g} h", fontsize=9)
    ax.legend(loc="upper right", fontsize=7, markerscale=4, ncol=3)
    fig.tight_layout()
    return save_png(fig, path)

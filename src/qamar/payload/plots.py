"""Payload plots as PNG files: coverage maps (global and polar) and the opportunity timeline.

Coverage is drawn over the lunar albedo map (``moon_map`` in :mod:`qamar.data`, plain grey if
absent) as hours in view per HEALPix pixel on a logarithmic colour scale; pixels never seen
show the bare map. Polar views are stereographic (+y towards longitude 0, +x towards 90 E at
the south pole, as LOLA's polar products), down to ``edge_lat_deg``. Written atomically with
:mod:`qamar.orbit.plots`' helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from qamar.payload.coverage import CoverageMap, lat_lon_to_pixel
from qamar.payload.opportunities import Opportunity
from qamar.plotting import moon_map, save_png, utc_datetimes, utc_time_axis
from qamar.time import tdb_s_to_utc

_GLOBAL_PX = (1800, 900)
_POLAR_PX = 900


def _hours_grid(cmap: CoverageMap, lat: np.ndarray, lon: np.ndarray, camera: str | None) -> np.ndarray:
    hours = cmap.hours_seen(camera)[lat_lon_to_pixel(cmap.nside, lat.ravel(), lon.ravel())].reshape(lat.shape)
    return np.where(hours > 0, hours, np.nan)


def _basemap_at(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Albedo (0..1) sampled at lat/lon (deg), nearest pixel; 0.5 grey without the map."""
    image = moon_map()
    if image is None:
        return np.full(lat.shape, 0.5)
    rows, cols = image.shape[:2]
    r = np.clip(((90.0 - lat) / 180.0 * rows).astype(int), 0, rows - 1)
    c = np.clip(((lon + 180.0) / 360.0 * cols).astype(int), 0, cols - 1)
    grey = image[r, c] if image.ndim == 2 else image[r, c, :3].mean(axis=-1)
    return grey / (255.0 if grey.max() > 1.0 else 1.0)


def _title(cmap: CoverageMap, what: str, camera: str | None) -> str:
    who = camera or " + ".join(cmap.counts)
    span = f"{tdb_s_to_utc(cmap.start_tdb_s, 0)[:10]} to {tdb_s_to_utc(cmap.stop_tdb_s, 0)[:10]}"
    light = f", Sun {cmap.sun_elev_deg[0]:g}..{cmap.sun_elev_deg[1]:g} deg" if cmap.sun_elev_deg else ""
    gsd = f", GSD <= {cmap.max_gsd_m:g} m" if cmap.max_gsd_m else ""
    return f"{what}: {who}, {span}{light}{gsd}"


def _norm(hours: np.ndarray) -> LogNorm:
    finite = hours[np.isfinite(hours)]
    lo = float(finite.min()) if finite.size else 1e-3
    hi = float(finite.max()) if finite.size else 1.0
    return LogNorm(vmin=lo, vmax=max(hi, lo * 10.0))


def plot_coverage_global(cmap: CoverageMap, path: str | Path, *, camera: str | None = None,
                         title: str | None = None) -> Path:
    """Equirectangular map of hours in view (all cameras, or ``camera``) with the percentage seen."""
    w, h = _GLOBAL_PX
    lon, lat = np.meshgrid(-180.0 + 360.0 * (np.arange(w) + 0.5) / w, 90.0 - 180.0 * (np.arange(h) + 0.5) / h)
    hours = _hours_grid(cmap, lat, lon, camera)
    fig = Figure(figsize=(12, 6.6), layout="constrained")
    ax = fig.add_subplot()
    extent = (-180, 180, -90, 90)
    ax.imshow(_basemap_at(lat, lon), cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    shown = ax.imshow(hours, cmap="plasma", norm=_norm(hours), alpha=0.75, extent=extent, interpolation="nearest")
    fig.colorbar(shown, ax=ax, shrink=0.8, label="hours in view (log)")
    ax.set_xticks(range(-180, 181, 30))
    ax.set_yticks(range(-90, 91, 30))
    ax.set_xlabel("east longitude (deg, MOON_ME)")
    ax.set_ylabel("latitude (deg)")
    ax.grid(True, alpha=0.3)
    pct = 100.0 * cmap.fraction(camera=camera)
    ax.set_title(title or _title(cmap, f"Coverage {pct:.1f}% of the Moon", camera))
    return save_png(fig, path)


def plot_coverage_polar(cmap: CoverageMap, path: str | Path, *, pole: str = "south", edge_lat_deg: float = 60.0,
                        camera: str | None = None, regions: Sequence = (), title: str | None = None) -> Path:
    """Polar stereographic map of hours in view from ``pole`` ('south'/'north') to ``edge_lat_deg``.

    ``regions``: targets with areas whose covered percentage is listed in the corner. Raises
    ValueError for another pole name or an edge latitude outside 1..89 deg.
    """
    if pole not in ("south", "north") or not 1.0 <= abs(edge_lat_deg) <= 89.0:
        raise ValueError(f"pole must be 'south' or 'north' and the edge latitude within 1..89 deg, "
                         f"got {pole!r}, {edge_lat_deg}")
    sign = -1.0 if pole == "south" else 1.0
    colat = np.radians(90.0 - abs(edge_lat_deg))
    edge = 2.0 * np.tan(colat / 2.0)  # stereographic radius of the edge on the unit sphere
    axis = edge * (2.0 * (np.arange(_POLAR_PX) + 0.5) / _POLAR_PX - 1.0)
    x, y = np.meshgrid(axis, axis[::-1])
    rho = np.hypot(x, y)
    lat = sign * (90.0 - np.degrees(2.0 * np.arctan(rho / 2.0)))
    # South: +y to lon 0, +x to 90 E. North (looking down on the north pole): +y to lon 180.
    lon = np.degrees(np.arctan2(x, y)) if pole == "south" else np.degrees(np.arctan2(x, -y))
    outside = rho > edge
    hours = _hours_grid(cmap, lat, lon, camera)
    hours[outside] = np.nan
    base = _basemap_at(lat, lon)
    base[outside] = np.nan
    fig = Figure(figsize=(8.2, 7.2), layout="constrained")
    ax = fig.add_subplot()
    km = 1737.4 * edge
    extent = (-km, km, -km, km)
    ax.imshow(base, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    shown = ax.imshow(hours, cmap="plasma", norm=_norm(hours), alpha=0.75, extent=extent, interpolation="nearest")
    fig.colorbar(shown, ax=ax, shrink=0.85, label="hours in view (log)")
    for ring_lat in np.arange(80.0, abs(edge_lat_deg) - 1e-9, -10.0):
        r = 1737.4 * 2.0 * np.tan(np.radians(90.0 - ring_lat) / 2.0)
        ax.add_patch(_circle(r))
        ax.text(0, -r, f"{ring_lat:.0f}{'S' if sign < 0 else 'N'}", color="w", fontsize=8, ha="center", va="bottom")
    ax.set_xlabel("x (km, stereographic)")
    ax.set_ylabel("y (km)")
    ax.set_aspect("equal")
    if regions:
        text = "\n".join(f"{r.name}: {100.0 * cmap.fraction(r, camera):.1f}% seen" for r in regions)
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=9, color="k",
                bbox={"facecolor": "w", "alpha": 0.8, "edgecolor": "none"})
    inside = {"south": lambda la: la <= -abs(edge_lat_deg), "north": lambda la: la >= abs(edge_lat_deg)}[pole]
    lat_px, _ = cmap.lat_lon()
    seen = cmap.covered(camera)[inside(lat_px)]
    pct = 100.0 * float(np.mean(seen)) if seen.size else 0.0
    ax.set_title(title or _title(cmap, f"{pole.capitalize()} polar coverage {pct:.1f}% poleward of "
                                       f"{abs(edge_lat_deg):g} deg", camera), fontsize=10)
    return save_png(fig, path)


def _circle(radius_km: float) -> Circle:
    return Circle((0.0, 0.0), radius_km, fill=False, color="w", lw=0.6, alpha=0.6)


def plot_opportunities(opportunities: Sequence[Opportunity], path: str | Path, *, start_tdb_s: float,
                       stop_tdb_s: float, planned: Sequence[Opportunity] = (), title: str | None = None) -> Path:
    """Timeline of imaging windows: one row per target and camera, bars coloured by score.

    Windows are widened to at least 0.2 % of the span so short ones stay visible; the best
    time of each planned image (``planned``) is marked with a star. Raises ValueError for no
    opportunities (nothing to draw).
    """
    if not opportunities:
        raise ValueError("no opportunities to draw")
    rows = sorted({(o.target, o.camera) for o in opportunities})
    fig = Figure(figsize=(11, 1.6 + 0.42 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    scores = np.array([o.score for o in opportunities])
    norm = Normalize(vmin=float(scores.min()), vmax=float(max(scores.max(), scores.min() + 1e-6)))
    span_days = (stop_tdb_s - start_tdb_s) / 86400.0
    for o in opportunities:
        row = rows.index((o.target, o.camera))
        a, b = date2num(utc_datetimes(np.array([o.start_tdb_s, o.stop_tdb_s])))
        width = max(b - a, 0.002 * span_days)
        ax.broken_barh([(a, width)], (row - 0.35, 0.7), color=colormaps["viridis"](norm(o.score)))
    for o in planned:
        row = rows.index((o.target, o.camera))
        ax.plot(date2num(utc_datetimes(np.array([o.best_tdb_s])))[0], row, marker="*", color="tab:red",
                markersize=11, markeredgecolor="k", linestyle="none")
    ax.set_yticks(range(len(rows)), [f"{t} / {c}" for t, c in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.set_xlim(*date2num(utc_datetimes(np.array([start_tdb_s, stop_tdb_s]))))
    utc_time_axis(ax)
    fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="score", pad=0.01)
    mark = "; red stars: planned images" if planned else ""
    ax.set_title(title or f"Imaging opportunities ({len(opportunities)}){mark}")
    return save_png(fig, path)

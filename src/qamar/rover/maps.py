"""Figures of a planned traverse: the route on a map of the site, and its timelines.

:func:`plot_route_map` draws the route (map coordinates of the DEM's CRS) over the DEM's
hillshade, with a value map on top (elevation by default, or e.g. the Sun fraction on any
grid of the same CRS), a colour bar, the start, targets, goal and lander marked, a scale bar
in metres and the IAU named features whose centre lies in view. :func:`plot_route_timeline`
draws the battery (with its reserve), the array power, the Sun and the Earth contact along
the schedule against UTC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.patheffects as pe
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from mpl_toolkits.axes_grid1 import make_axes_locatable
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from qamar.errors import DataNotFoundError, ModelConfigError
from qamar.plotting import save_png, utc_datetimes, utc_time_axis
from qamar.surface.maps import features_on_map, hillshade
from qamar.surface.terrain import Dem

_LABEL = {"color": "white", "fontsize": 8, "path_effects": [pe.withStroke(linewidth=2.0, foreground="black")]}
_MARKERS = {"start": ("o", "lime"), "target": ("D", "yellow"), "goal": ("*", "red"), "lander": ("^", "cyan")}


def _extent_km(dem: Dem) -> np.ndarray:
    """[left, right, bottom, top] of the DEM grid in km of map x/y."""
    t = dem.transform
    ny, nx = dem.shape
    return np.array([t.c, t.c + t.a * nx, t.f + t.e * ny, t.f]) * _km_per_unit(dem)


def _km_per_unit(dem: Dem) -> float:
    return dem.pixel_size_m / dem.transform.a / 1e3


def _view_km(dem: Dem, x_km: np.ndarray, y_km: np.ndarray, margin_km: float) -> tuple[float, float, float, float]:
    """The square around the points with ``margin_km`` on every side, inside the DEM."""
    left, right, bottom, top = _extent_km(dem)
    cx, cy = 0.5 * (x_km.min() + x_km.max()), 0.5 * (y_km.min() + y_km.max())
    half = 0.5 * max(x_km.max() - x_km.min(), y_km.max() - y_km.min()) + margin_km
    half = min(half, 0.5 * (right - left), 0.5 * (top - bottom))
    cx = min(max(cx, left + half), right - half)
    cy = min(max(cy, bottom + half), top - half)
    return cx - half, cx + half, cy - half, cy + half


def _scale_bar_m(span_km: float) -> float:
    """A round length (1, 2 or 5 x 10^k m) near a fifth of the view."""
    target = span_km * 1e3 / 5
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def plot_route_map(
    dem: Dem,
    route_xy: tuple[np.ndarray, np.ndarray],
    path: str | Path,
    *,
    title: str,
    values: np.ndarray | None = None,
    values_dem: Dem | None = None,
    label: str = "elevation (m)",
    cmap: str = "terrain",
    vmin: float | None = None,
    vmax: float | None = None,
    points: Sequence[tuple[str, str, float, float]] = (),
    margin_km: float = 0.5,
    features: bool = True,
) -> Path:
    """PNG map of a route over the DEM's hillshade, zoomed on the route and ``points``.

    ``route_xy``: vertex x and y in the DEM's map units. ``values`` (default: the DEM's
    elevation) is drawn semi-transparent on ``values_dem``'s grid (default: the DEM's; same
    CRS), with a colour bar ``label``. ``points`` are (kind, name, x, y) with kind 'start',
    'target', 'goal' or 'lander'. The view is the square around the route and points with
    ``margin_km`` on each side (inside the DEM); without ``vmin``/``vmax`` the colours span the
    values in view. Axes in km of map x/y; a scale bar in metres.
    Raises ModelConfigError for a value grid of another CRS or shape.
    """
    values_dem = values_dem or dem
    if values is None:
        values = dem.elevation_m
    if values.shape != values_dem.shape:
        raise ModelConfigError(f"the values ({values.shape}) are not on their grid ({values_dem.shape})")
    if values_dem.crs != dem.crs:
        raise ModelConfigError("the value map is in another CRS than the DEM: reproject it to the DEM's CRS")
    scale = _km_per_unit(dem)
    rx, ry = (np.asarray(v, dtype=np.float64) * scale for v in route_xy)
    px = np.array([p[2] for p in points]) * scale
    py = np.array([p[3] for p in points]) * scale
    view = _view_km(dem, np.concatenate((rx, px)), np.concatenate((ry, py)), margin_km)

    if vmin is None and vmax is None:  # the colours span the values in view (2nd to 98th percentile)
        vmin, vmax = _range_in_view(values, values_dem, view)

    fig = Figure(figsize=(8.0, 7.0))
    ax = fig.add_subplot()
    ax.imshow(hillshade(dem), cmap="gray", extent=_extent_km(dem), origin="upper", interpolation="bilinear")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.55,
                      extent=_extent_km(values_dem), origin="upper", interpolation="nearest")
    bar = fig.colorbar(image, cax=make_axes_locatable(ax).append_axes("right", size="3.5%", pad=0.1))
    bar.set_label(label)
    bar.solids.set_alpha(1.0)
    if features:
        _draw_features(ax, dem, view)
    ax.plot(rx, ry, color="white", lw=3.2, solid_capstyle="round")
    ax.plot(rx, ry, color="tab:blue", lw=1.6, solid_capstyle="round", label="route")
    for kind, name, x, y in points:
        marker, colour = _MARKERS[kind]
        ax.plot(x * scale, y * scale, marker=marker, ms=11 if kind == "goal" else 8, mfc=colour, mec="black",
                mew=0.8, ls="none")
        ax.annotate(name, (x * scale, y * scale), xytext=(7, 5), textcoords="offset points", **_LABEL)
    length_m = _scale_bar_m(view[1] - view[0])
    ax.add_artist(AnchoredSizeBar(ax.transData, length_m / 1e3, f"{length_m:g} m", "lower left", pad=0.5,
                                  color="white", frameon=False, size_vertical=(view[3] - view[2]) / 150))
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x (km), polar stereographic: +x towards 90 E")
    ax.set_ylabel("y (km): +y towards 0 E")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def _range_in_view(values: np.ndarray, grid: Dem, view: tuple[float, float, float, float]) -> tuple:
    """2nd and 98th percentiles of the finite ``values`` whose pixels lie in ``view`` (km);
    (None, None) if there are none."""
    left, right, bottom, top = _extent_km(grid)
    ny, nx = values.shape
    c0, c1 = (int(np.clip((v - left) / (right - left) * nx, 0, nx)) for v in (view[0], view[1]))
    r0, r1 = (int(np.clip((top - v) / (top - bottom) * ny, 0, ny)) for v in (view[3], view[2]))
    inside = values[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)]
    inside = inside[np.isfinite(inside)]
    if not inside.size:
        return None, None
    low, high = np.percentile(inside, [2.0, 98.0])
    return float(low), float(high)


def _draw_features(ax, dem: Dem, view: tuple[float, float, float, float]) -> None:
    """Rim circles and names of the gazetteer features centred in ``view`` (km)."""
    scale = _km_per_unit(dem)
    try:
        found = features_on_map(dem, min_fraction=0.0)
    except DataNotFoundError:
        return  # no gazetteer installed: a map without names
    for f in found:
        x, y, r = f["x"] * scale, f["y"] * scale, f["radius"] * scale
        if view[0] <= x <= view[1] and view[2] <= y <= view[3]:
            ax.add_patch(Circle((x, y), r, fill=False, lw=0.8, ec="white", alpha=0.7))
            ax.text(x, y, f["name"], ha="center", va="center", **_LABEL)


def plot_route_timeline(
    t_tdb_s: np.ndarray,
    battery_wh: np.ndarray,
    solar_w: np.ndarray,
    sun_visible: np.ndarray,
    contact: np.ndarray,
    action: Sequence[str],
    path: str | Path,
    *,
    reserve_wh: float,
    capacity_wh: float,
    title: str,
) -> Path:
    """PNG of the schedule against UTC: battery (Wh, with the reserve and capacity; waits and
    hibernation shaded), array power (W), Sun visible and Earth contact (yes/no).

    Each value holds from the previous event to its own (``t_tdb_s``: event epochs, TDB s past
    J2000; ``action[i]`` is what the rover did up to event i).
    """
    t = utc_datetimes(t_tdb_s)
    fig = Figure(figsize=(10.0, 7.0))
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1, 1]})
    ax = axes[0]
    ax.plot(t, battery_wh, color="tab:blue", label="battery")
    ax.axhline(reserve_wh, color="tab:red", ls="--", lw=1, label="reserve")
    ax.axhline(capacity_wh, color="0.4", ls=":", lw=1, label="capacity")
    for i in range(1, len(action)):
        if action[i] in ("wait", "hibernate"):
            ax.axvspan(t[i - 1], t[i], color="0.85" if action[i] == "wait" else "0.7", lw=0)
    ax.set_ylabel("battery (Wh)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=10)
    axes[1].step(t, solar_w, where="pre", color="tab:orange")
    axes[1].set_ylabel("array (W)")
    for ax, flags, name, colour in ((axes[2], sun_visible, "Sun", "gold"), (axes[3], contact, "Earth", "tab:green")):
        ax.step(t, np.asarray(flags, dtype=int), where="pre", color=colour)
        ax.fill_between(t, np.asarray(flags, dtype=int), step="pre", color=colour, alpha=0.3)
        ax.set_ylabel(name)
        ax.set_yticks([0, 1], ["no", "yes"])
    for ax in axes:
        utc_time_axis(ax)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    fig.tight_layout()
    return save_png(fig, path)

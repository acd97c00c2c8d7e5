"""Orbit plots as PNG files: altitude, periapsis/apoapsis history, ground track on a lunar map,
lifetime.

Each function takes a :class:`~qamar.orbit.trajectory.Trajectory` (or, for
:func:`plot_lifetime`, a :class:`~qamar.orbit.lifetime.LifetimeResult`) and a path, draws with
matplotlib's object API on the Agg canvas (no pyplot state, no display needed) and writes the
PNG atomically. Time axes are UTC dates; altitudes are over the 1737.4 km sphere; the ground
track is planetocentric latitude/east longitude in MOON_ME.

The map background is the lunar albedo image registered as ``moon_map`` in :mod:`qamar.data`
(an equirectangular image, east longitude -180..180 left to right, latitude +90 at the top);
if it is not available the track is drawn on a plain grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from qamar.constants import SECONDS_PER_DAY
from qamar.orbit.events import shadow_passes
from qamar.orbit.trajectory import Trajectory
from qamar.plotting import moon_map, save_png, utc_datetimes, utc_time_axis
from qamar.time import tdb_s_to_utc

if TYPE_CHECKING:
    from qamar.orbit.lifetime import LifetimeResult

MAX_POINTS = 200_000
"""Largest number of epochs a plot samples; longer spans are sampled more coarsely."""



def _step_s(trajectory: Trajectory, finest_s: float) -> float:
    """Sampling step: ``finest_s`` unless that would exceed MAX_POINTS over the span."""
    return max(finest_s, (trajectory.end_tdb_s - trajectory.start_tdb_s) / MAX_POINTS)




def _name(trajectory: Trajectory) -> str:
    return str(trajectory.meta.get("object_name") or "spacecraft")


def _span_text(trajectory: Trajectory) -> str:
    start, end = tdb_s_to_utc(np.array([trajectory.start_tdb_s, trajectory.end_tdb_s]), digits=0)
    return f"{start} to {end}"



def plot_altitude(trajectory: Trajectory, path: str | Path, *, title: str | None = None) -> Path:
    """Altitude (km, over the 1737.4 km sphere) against UTC time, written as a PNG.

    Raises OSError if the folder is not writable.
    """
    t, _ = trajectory.sample(_step_s(trajectory, 10.0))
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(utc_datetimes(t), trajectory.altitude_km(t), lw=0.6, color="tab:blue")
    ax.set_ylabel("altitude (km)")
    ax.set_ylim(bottom=0.0)
    utc_time_axis(ax)
    ax.set_title(title or f"{_name(trajectory)}: altitude, {_span_text(trajectory)}")
    return save_png(fig, path)


def plot_apsides(trajectory: Trajectory, path: str | Path, *, title: str | None = None) -> Path:
    """Periapsis and apoapsis altitude (km) of each pass against UTC time, written as a PNG.

    Two panels (periapsis below, apoapsis above) so that each history keeps its own scale; a
    panel without passes says so. Raises OSError if the folder is not writable.
    """
    apsides = trajectory.apsides()
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax_apo, ax_peri = fig.subplots(2, 1, sharex=True)
    series = (
        (ax_apo, apsides.apo_t_tdb_s, apsides.apo_alt_km, "apoapsis altitude (km)", "tab:orange"),
        (ax_peri, apsides.peri_t_tdb_s, apsides.peri_alt_km, "periapsis altitude (km)", "tab:blue"),
    )
    for ax, t, alt, label, color in series:
        if len(t):
            ax.plot(utc_datetimes(t), alt, marker=".", ms=3, lw=0.8, color=color)
            middle = 0.5 * (alt.min() + alt.max())
            low, high = ax.get_ylim()
            ax.set_ylim(min(low, middle - 1.0), max(high, middle + 1.0))  # a flat history spans >= 2 km
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        else:
            ax.text(0.5, 0.5, "no pass in this span", transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel(label)
        utc_time_axis(ax)
    ax_apo.set_xlabel("")
    fig.suptitle(title or f"{_name(trajectory)}: periapsis and apoapsis history, {_span_text(trajectory)}")
    return save_png(fig, path)



def plot_ground_track(
    trajectory: Trajectory, path: str | Path, *, title: str | None = None, step_s: float = 60.0
) -> Path:
    """Ground track (planetocentric lat/lon, MOON_ME) on a lunar map, coloured by time; a PNG.

    Sampled every ``step_s`` s (coarser when the span would exceed MAX_POINTS). Marks the
    start and, if the trajectory has an ``impact`` event, the impact point, else the end.
    Raises EpochOutOfRangeError outside the lunar orientation kernels, OSError if the folder
    is not writable.
    """
    t, _ = trajectory.sample(_step_s(trajectory, step_s))
    lat, lon = trajectory.lat_lon_me_deg(t)
    days = (t - t[0]) / 86400.0
    fig = Figure(figsize=(11, 6), layout="constrained")
    ax = fig.add_subplot()
    background = moon_map()
    if background is not None:
        ax.imshow(background, cmap="gray", extent=(-180, 180, -90, 90), origin="upper", interpolation="antialiased")
    else:
        ax.set_facecolor("0.85")
    points = np.column_stack([lon, lat])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    keep = np.abs(np.diff(lon)) < 90.0  # no lines across the +-180 deg seam or over a pole
    track = LineCollection(segments[keep], cmap="plasma", linewidths=0.8)
    track.set_array(0.5 * (days[:-1] + days[1:])[keep])
    ax.add_collection(track)
    fig.colorbar(track, ax=ax, label="days since start", shrink=0.8)
    ax.plot(lon[0], lat[0], marker="^", color="lime", mec="k", ms=9, ls="none", label="start")
    impacts = [e for e in trajectory.events if e.kind == "impact"]
    if impacts:
        end_lat, end_lon = trajectory.lat_lon_me_deg(float(impacts[0].t_tdb_s))
        ax.plot(end_lon, end_lat, marker="X", color="red", mec="k", ms=11, ls="none", label="impact")
    else:
        ax.plot(lon[-1], lat[-1], marker="s", color="red", mec="k", ms=8, ls="none", label="end")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(np.arange(-180, 181, 30))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.set_aspect("equal")
    ax.set_xlabel("east longitude (deg, MOON_ME)")
    ax.set_ylabel("latitude (deg)")
    ax.grid(True, color="white" if background is not None else "0.5", alpha=0.35)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or f"{_name(trajectory)}: ground track, {_span_text(trajectory)}")
    return save_png(fig, path)


def plot_lifetime(result: LifetimeResult, path: str | Path, *, title: str | None = None) -> Path:
    """Periapsis altitude (km, over the 1737.4 km sphere) of every pass against UTC, with the
    impact (or the survived horizon) marked; written as a PNG.

    Raises OSError if the folder is not writable.
    """
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if result.periapsis_t_tdb_s.size:
        ax.plot(utc_datetimes(result.periapsis_t_tdb_s), result.periapsis_alt_km, marker=".", ms=2, lw=0.6,
                color="tab:blue", label="periapsis passes")
    ax.axhline(0.0, color="0.3", lw=0.8)
    horizon_tdb_s = result.epoch_tdb_s + result.horizon_days * SECONDS_PER_DAY
    if result.impact_t_tdb_s is not None:
        when = utc_datetimes(result.impact_t_tdb_s)[0]
        ax.axvline(when, color="red", ls="--", lw=0.8)
        ax.plot(when, 0.0, marker="X", color="red", mec="k", ms=11, ls="none",
                label=f"impact {result.impact_lat_deg:.1f} deg, {result.impact_lon_deg:.1f} deg E (ME)")
        outcome = f"impact after {result.lifetime_days:.2f} days"
    else:
        ax.axvline(utc_datetimes(horizon_tdb_s)[0], color="tab:green", ls="--", lw=0.8, label="horizon")
        outcome = f"survives the {result.horizon_days:g}-day horizon"
    ax.set_ylabel("periapsis altitude (km)")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]) - 2.0)
    utc_time_axis(ax)
    ax.legend(loc="upper right", fontsize=8)
    start = tdb_s_to_utc(result.epoch_tdb_s, digits=0)
    ax.set_title(title or f"Lifetime from {start}: {outcome} ({result.gravity} {result.degree}x{result.degree})")
    return save_png(fig, path)


def plot_eclipses(trajectory: Trajectory, path: str | Path, *, title: str | None = None) -> Path:
    """Duration of each umbra and penumbra pass (min) against its start date (UTC), from the
    trajectory's shadow events; an empty plot says so when the spacecraft is never in shadow."""
    fig = Figure(figsize=(10, 4.2))
    ax = fig.add_subplot()
    for kind, colour in (("umbra", "#222244"), ("penumbra", "#d08c00")):
        starts, minutes = shadow_passes(trajectory.events, kind)
        if starts.size:
            ax.plot(utc_datetimes(starts), minutes, ".", ms=4, color=colour, label=kind)
    if ax.has_data():
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "never in the shadow of the Moon or the Earth", ha="center", transform=ax.transAxes)
    ax.set_ylabel("duration of the pass (min)")
    utc_time_axis(ax)
    ax.set_title(title or f"{_name(trajectory)}: eclipses, {_span_text(trajectory)}")
    fig.tight_layout()
    return save_png(fig, path)


"""What a ground station sees: elevation, range, light time, range rate; contact windows.

Geometry (all vectors on ICRF axes, km and km/s):

- the station at reception time ``t`` (TDB s past J2000) relative to the Moon is
  ``r_stn = earth_wrt_moon(t) + R_gcrs(t) . r_itrf`` (DE440 and :mod:`qamar.comms.earth`);
- the signal received at ``t`` left the target at ``t - lt``; the target is the spacecraft
  (a :class:`~qamar.orbit.trajectory.Trajectory`, Moon-centred) or the Moon's centre. In the
  solar-system barycentric frame the line of sight is
  ``rho = r_target_moon(t - lt) - r_stn(t) - v_moon_ssb . lt``, where the last term is the
  Moon's own motion during the light time (``v_moon_ssb = -v_sun_wrt_moon``, good to the Sun's
  ~13 m/s barycentric speed, i.e. < 20 m here); ``lt = |rho| / c`` is iterated twice;
- elevation and azimuth are those of ``rho`` in the station's geodetic east/north/up frame:
  geometric, no refraction (at 10 deg elevation refraction lifts a source by ~5 arcmin, which
  makes real AOS up to ~20 s earlier and LOS later than here) and no aberration (<= 21 arcsec);
- the Moon blocks the spacecraft when the ray from the spacecraft (at ``t - lt``, Moon
  centred) toward the station passes within ``MOON_RADIUS_KM`` (1737.4 km sphere, no terrain)
  of the Moon's centre; ``clearance_km`` is that miss distance minus the radius;
- range rate is ``d|rho|/dt`` at the station: differentiating ``rho`` with ``d lt/dt =
  range_rate / c`` gives ``u.(v_target - v_stn - a_moon lt) / (1 + u.(v_target + v_moon_ssb) / c)``
  (``u`` the unit line of sight, ``a_moon`` the Moon's barycentric acceleration by the Earth
  and the Sun, ~1e-5 km/s over the light time). The one-way downlink Doppler shift at frequency f is ``-f . range_rate / c`` (first
  order; relativistic and gravitational terms are ~10 Hz at X-band).

Windows are found on a time grid (default 30 s) and each edge is refined by bisection to
1 ms. Windows or occultations shorter than the grid step can be missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qamar.comms.earth import EarthOrientation, itrf_point_to_gcrs
from qamar.comms.stations import Station
from qamar.constants import GM_EARTH_KM3_S2, GM_SUN_KM3_S2, MOON_RADIUS_KM, SPEED_OF_LIGHT_KM_S
from qamar.ephemeris import Ephemeris
from qamar.errors import EpochOutOfRangeError, QamarError
from qamar.orbit.trajectory import Trajectory
from qamar.time import tdb_s_to_utc

MAX_LIGHT_TIME_S = 1.5
"""Upper bound of the one-way Earth-Moon-orbiter light time (1.19 to 1.36 s, plus the orbit)."""

_EDGE_TOL_S = 1e-3  # bisection stops when a bracket is shorter than this
_LIGHT_TIME_ITERATIONS = 2


class NoContactError(QamarError):
    """No ground station sees the spacecraft above the mask during the whole span."""


@dataclass(frozen=True)
class Look:
    """A station's view of a target at reception epochs (1-D arrays, one value per epoch).

    ``elevation_deg``/``azimuth_deg`` geometric, azimuth from north through east, 0..360;
    ``range_km`` and ``light_time_s`` one-way; ``range_rate_km_s`` positive when receding;
    ``clearance_km`` the line of sight's miss distance from the Moon's centre minus 1737.4 km
    (negative: the Moon blocks it; NaN when the target is the Moon itself).
    """

    t_tdb_s: np.ndarray
    elevation_deg: np.ndarray
    azimuth_deg: np.ndarray
    range_km: np.ndarray
    range_rate_km_s: np.ndarray
    light_time_s: np.ndarray
    clearance_km: np.ndarray

    def doppler_hz(self, frequency_hz: float) -> np.ndarray:
        """One-way Doppler shift (Hz) of a carrier sent at ``frequency_hz``: ``-f . range_rate / c``."""
        return -frequency_hz * self.range_rate_km_s / SPEED_OF_LIGHT_KM_S


@dataclass(frozen=True)
class _Epochs:
    """What every station shares at a set of reception epochs (TDB s): Earth, Moon motion, rotation."""

    t_tdb_s: np.ndarray
    r_earth_km: np.ndarray  # Earth wrt Moon, ICRF
    v_earth_km_s: np.ndarray
    v_moon_ssb_km_s: np.ndarray  # Moon wrt the solar-system barycentre (-Sun wrt Moon)
    a_moon_ssb_km_s2: np.ndarray  # the Moon's acceleration by the Earth and the Sun
    gcrs_to_itrf: np.ndarray  # (n, 3, 3)


class _Sky:
    """Ephemeris and Earth orientation over a span, for repeated evaluation at epochs in it."""

    def __init__(self, t0_tdb_s: float, t1_tdb_s: float, ephemeris: Ephemeris | None, dut1_s: float):
        self.ephemeris = ephemeris or Ephemeris.default()
        self.ephemeris.check_coverage(t0_tdb_s, t1_tdb_s)
        self.orientation = EarthOrientation(t0_tdb_s, t1_tdb_s, dut1_s)

    def at(self, t_tdb_s: np.ndarray) -> _Epochs:
        """The shared quantities at epochs ``t_tdb_s`` (1-D)."""
        t = np.asarray(t_tdb_s, dtype=float)
        r_earth, v_earth = self.ephemeris.earth_state_wrt_moon_icrf(t)
        r_sun, v_sun = self.ephemeris.sun_state_wrt_moon_icrf(t)
        a_moon = sum(gm * r / np.linalg.norm(r, axis=1)[:, None] ** 3
                     for gm, r in ((GM_EARTH_KM3_S2, r_earth), (GM_SUN_KM3_S2, r_sun)))
        return _Epochs(t, r_earth, v_earth, -v_sun, a_moon, self.orientation.gcrs_to_itrf(t))

    def look(self, station: Station, t_tdb_s: np.ndarray | _Epochs, trajectory: Trajectory | None) -> Look:
        """The view from ``station`` at reception epochs (1-D, or precomputed) of the spacecraft, or of the Moon if None."""
        epochs = t_tdb_s if isinstance(t_tdb_s, _Epochs) else self.at(t_tdb_s)
        t, v_moon_ssb, to_itrf = epochs.t_tdb_s, epochs.v_moon_ssb_km_s, epochs.gcrs_to_itrf
        r_gcrs, v_gcrs = itrf_point_to_gcrs(station.r_itrf_km, to_itrf)
        r_stn, v_stn = epochs.r_earth_km + r_gcrs, epochs.v_earth_km_s + v_gcrs
        if trajectory is None:
            r_target, v_target = np.zeros_like(r_stn), np.zeros_like(r_stn)
            lt = np.linalg.norm(r_stn, axis=1) / SPEED_OF_LIGHT_KM_S
        else:
            lt = np.linalg.norm(trajectory.state_at(t)[:, :3] - r_stn, axis=1) / SPEED_OF_LIGHT_KM_S
        for _ in range(_LIGHT_TIME_ITERATIONS):
            if trajectory is not None:
                state = trajectory.state_at(t - lt)
                r_target, v_target = state[:, :3], state[:, 3:]
            rho = r_target - r_stn - v_moon_ssb * lt[:, None]
            lt = np.linalg.norm(rho, axis=1) / SPEED_OF_LIGHT_KM_S
        range_km = np.linalg.norm(rho, axis=1)
        u = rho / range_km[:, None]
        enu = np.einsum("ij,njk,nk->ni", station.enu_from_itrf, to_itrf, rho)
        if trajectory is None:
            clearance = np.full_like(range_km, np.nan)
        else:
            along = np.sum(r_target * u, axis=1)  # > 0: the Moon's centre is on the station's side
            r2 = np.sum(r_target * r_target, axis=1)
            miss = np.where(along > 0.0, np.sqrt(np.maximum(r2 - along * along, 0.0)), np.sqrt(r2))
            clearance = miss - MOON_RADIUS_KM
        return Look(
            t_tdb_s=t,
            elevation_deg=np.degrees(np.arcsin(np.clip(enu[:, 2] / range_km, -1.0, 1.0))),
            azimuth_deg=np.degrees(np.arctan2(enu[:, 0], enu[:, 1])) % 360.0,
            range_km=range_km,
            range_rate_km_s=np.sum(u * (v_target - v_stn - epochs.a_moon_ssb_km_s2 * lt[:, None]), axis=1)
            / (1.0 + np.sum(u * (v_target + v_moon_ssb), axis=1) / SPEED_OF_LIGHT_KM_S),
            light_time_s=lt,
            clearance_km=clearance,
        )


def look(
    station: Station,
    t_tdb_s: float | np.ndarray,
    trajectory: Trajectory | None = None,
    *,
    ephemeris: Ephemeris | None = None,
    dut1_s: float = 0.0,
) -> Look:
    """The view from ``station`` of the spacecraft (``trajectory``) or, if None, of the Moon's centre.

    Epochs are reception times, TDB seconds past J2000 (scalar or 1-D). ``dut1_s`` is UT1 - UTC
    (0 unless given: see :mod:`qamar.comms.earth`). Raises EpochOutOfRangeError outside the
    ephemeris or the trajectory (which must cover ``t - light time``).
    """
    t = np.atleast_1d(np.asarray(t_tdb_s, dtype=float)).ravel()
    sky = _Sky(float(t.min()) - MAX_LIGHT_TIME_S, float(t.max()), ephemeris, dut1_s)
    return sky.look(station, t, trajectory)


# --- intervals ----------------------------------------------------------------------------------


def _as_intervals(intervals: np.ndarray | Sequence) -> np.ndarray:
    return np.asarray(intervals, dtype=float).reshape(-1, 2)


def intersect_intervals(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sorted lists of disjoint intervals ``(n, 2)`` (start, stop): ``(k, 2)``."""
    a, b = _as_intervals(a), _as_intervals(b)
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i, 0], b[j, 0]), min(a[i, 1], b[j, 1])
        if hi > lo:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return _as_intervals(out)


def union_intervals(intervals: np.ndarray | Sequence) -> np.ndarray:
    """Union of intervals ``(n, 2)`` in any order, as sorted disjoint intervals ``(k, 2)``."""
    a = _as_intervals(intervals)
    a = a[np.argsort(a[:, 0], kind="stable")]
    out: list[list[float]] = []
    for lo, hi in a:
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return _as_intervals(out)


def subtract_intervals(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` minus ``b`` for sorted lists of disjoint intervals ``(n, 2)``: ``(k, 2)``."""
    a, b = _as_intervals(a), _as_intervals(b)
    if len(a) == 0:
        return a
    lo, hi = float(a[:, 0].min()), float(a[:, 1].max())
    gaps = np.concatenate([[lo], b.ravel(), [hi]]).reshape(-1, 2)  # complement of b over a's range
    gaps = gaps[gaps[:, 1] > gaps[:, 0]]
    return intersect_intervals(a, gaps)


def intervals_where_positive(
    t_grid: np.ndarray, values: np.ndarray, evaluate, tol_s: float = _EDGE_TOL_S
) -> np.ndarray:
    """Intervals ``(n, 2)`` where a continuous function is > 0, from its grid values.

    Each sign change between grid points is refined by vectorised bisection with
    ``evaluate(t) -> values`` until brackets are shorter than ``tol_s``. An interval open at an
    end of the grid starts or stops there.
    """
    inside = values > 0.0
    i = np.flatnonzero(inside[:-1] != inside[1:])
    lo, hi = t_grid[i].copy(), t_grid[i + 1].copy()
    lo_inside = inside[i]
    while len(lo) and np.max(hi - lo) > tol_s:
        mid = 0.5 * (lo + hi)
        same = (evaluate(mid) > 0.0) == lo_inside
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    edges = 0.5 * (lo + hi)
    starts, stops = edges[~lo_inside], edges[lo_inside]
    if inside[0]:
        starts = np.concatenate([[t_grid[0]], starts])
    if inside[-1]:
        stops = np.concatenate([stops, [t_grid[-1]]])
    return np.stack([starts, stops], axis=1) if len(starts) else np.zeros((0, 2))


def _grid(start_tdb_s: float, stop_tdb_s: float, step_s: float) -> np.ndarray:
    if not (np.isfinite(step_s) and step_s > 0.0):
        raise ValueError(f"the sampling step must be a positive number of seconds, got {step_s!r}")
    if not stop_tdb_s > start_tdb_s:
        raise EpochOutOfRangeError(
            f"the span {tdb_s_to_utc(start_tdb_s)} to {tdb_s_to_utc(stop_tdb_s)} is empty; give a stop after the start"
        )
    n = int(np.ceil((stop_tdb_s - start_tdb_s) / step_s))
    return np.append(start_tdb_s + step_s * np.arange(n), stop_tdb_s)


def moon_windows(
    station: Station,
    start_tdb_s: float,
    stop_tdb_s: float,
    min_elev_deg: float = 10.0,
    *,
    step_s: float = 60.0,
    ephemeris: Ephemeris | None = None,
    dut1_s: float = 0.0,
) -> np.ndarray:
    """Intervals ``(n, 2)`` (TDB s) when the Moon's centre is above ``min_elev_deg`` at ``station``.

    Geometric elevation of the light-time corrected Moon centre; edges to 1 ms. Raises
    EpochOutOfRangeError for an empty span or one outside the ephemeris.
    """
    t = _grid(start_tdb_s, stop_tdb_s, step_s)
    sky = _Sky(start_tdb_s, stop_tdb_s, ephemeris, dut1_s)
    elevation = sky.look(station, t, None).elevation_deg - min_elev_deg
    return intervals_where_positive(t, elevation, lambda x: sky.look(station, x, None).elevation_deg - min_elev_deg)


@dataclass(frozen=True)
class Visibility:
    """One station's view of the spacecraft over a span: intervals ``(n, 2)`` in TDB s.

    ``above_mask``: spacecraft above the elevation mask; ``occulted``: the Moon blocks the line
    of sight (whatever the elevation); ``windows = above_mask - occulted``.
    """

    station: Station
    above_mask: np.ndarray
    occulted: np.ndarray
    windows: np.ndarray


@dataclass(frozen=True)
class Pass:
    """One contact: a window of a station, with the geometry sampled through it.

    ``t_tdb_s`` runs from AOS to LOS (grid epochs plus both ends); the other arrays are the
    :class:`Look` quantities there. ``aos_at_span_start``/``los_at_span_end`` flag a window
    cut by the span rather than by the sky.
    """

    station: Station
    t_tdb_s: np.ndarray
    elevation_deg: np.ndarray
    azimuth_deg: np.ndarray
    range_km: np.ndarray
    range_rate_km_s: np.ndarray
    light_time_s: np.ndarray
    aos_at_span_start: bool = False
    los_at_span_end: bool = False

    @property
    def aos_tdb_s(self) -> float:
        """Acquisition of signal, TDB s past J2000 (reception time)."""
        return float(self.t_tdb_s[0])

    @property
    def los_tdb_s(self) -> float:
        """Loss of signal, TDB s past J2000 (reception time)."""
        return float(self.t_tdb_s[-1])

    @property
    def duration_s(self) -> float:
        """LOS - AOS, s."""
        return self.los_tdb_s - self.aos_tdb_s

    @property
    def max_elev_deg(self) -> float:
        """Highest sampled elevation, deg (grid step 30 s: within ~0.01 deg of the true maximum)."""
        return float(self.elevation_deg.max())

    @property
    def min_range_km(self) -> float:
        """Shortest sampled range, km."""
        return float(self.range_km.min())

    @property
    def max_range_km(self) -> float:
        """Longest sampled range, km."""
        return float(self.range_km.max())

    def doppler_hz(self, frequency_hz: float) -> np.ndarray:
        """One-way Doppler shift (Hz) at the samples for a carrier sent at ``frequency_hz``."""
        return -frequency_hz * self.range_rate_km_s / SPEED_OF_LIGHT_KM_S


_PASS_SAMPLES = ("t_tdb_s", "elevation_deg", "azimuth_deg", "range_km", "range_rate_km_s", "light_time_s")


@dataclass(frozen=True)
class Contacts:
    """The passes of a set of stations over a span, in AOS order, and what each station saw.

    ``max_elev_deg[name]`` is the highest elevation of the spacecraft at that station over the
    whole span, occulted or not: below the mask it explains an empty station.
    """

    passes: list[Pass]
    stations: tuple[Station, ...]
    start_tdb_s: float
    stop_tdb_s: float
    min_elev_deg: float
    max_elev_deg: dict[str, float] = field(default_factory=dict)

    def of(self, station_name: str) -> list[Pass]:
        """The passes of one station."""
        return [p for p in self.passes if p.station.name == station_name]

    def silent_stations(self) -> list[str]:
        """Names of the stations without any pass in the span."""
        return [s.name for s in self.stations if not self.of(s.name)]

    def require_passes(self) -> None:
        """Raise NoContactError (with each station's best elevation) if there is no pass at all."""
        if self.passes:
            return
        best = ", ".join(f"{name} {elev:.1f} deg" for name, elev in self.max_elev_deg.items())
        raise NoContactError(
            f"no station sees the spacecraft above {self.min_elev_deg:g} deg elevation (and clear of the Moon) "
            f"between {tdb_s_to_utc(self.start_tdb_s, 0)} and {tdb_s_to_utc(self.stop_tdb_s, 0)} "
            f"(highest elevations: {best}); choose a longer span, a lower mask or other stations"
        )


def _check_span(trajectory: Trajectory, start_tdb_s: float, stop_tdb_s: float) -> None:
    earliest = trajectory.start_tdb_s + MAX_LIGHT_TIME_S
    if start_tdb_s < earliest or stop_tdb_s > trajectory.end_tdb_s:
        raise EpochOutOfRangeError(
            f"the span {tdb_s_to_utc(start_tdb_s, 0)} to {tdb_s_to_utc(stop_tdb_s, 0)} is not inside the "
            f"trajectory ({tdb_s_to_utc(trajectory.start_tdb_s, 0)} to {tdb_s_to_utc(trajectory.end_tdb_s, 0)}; "
            f"reception starts {MAX_LIGHT_TIME_S} s after its start, the light time); choose a span inside it"
        )


def spacecraft_visibility(
    station: Station,
    trajectory: Trajectory,
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
    min_elev_deg: float = 10.0,
    *,
    step_s: float = 30.0,
    ephemeris: Ephemeris | None = None,
    dut1_s: float = 0.0,
) -> Visibility:
    """Elevation-mask intervals, lunar occultations and contact windows of one station.

    Span defaults to the trajectory's (from ``MAX_LIGHT_TIME_S`` after its start). Raises
    EpochOutOfRangeError for a span outside the trajectory or the ephemeris.
    """
    start, stop = _span(trajectory, start_tdb_s, stop_tdb_s)
    return _scan([station], trajectory, start, stop, min_elev_deg, step_s, ephemeris, dut1_s)[0][0]


def contacts(
    trajectory: Trajectory,
    stations: Sequence[Station],
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
    min_elev_deg: float = 10.0,
    *,
    step_s: float = 30.0,
    ephemeris: Ephemeris | None = None,
    dut1_s: float = 0.0,
) -> Contacts:
    """Every pass of every station over the span: spacecraft above the mask and not behind the Moon.

    Span defaults to the trajectory's (from ``MAX_LIGHT_TIME_S`` after its start). Passes are
    sampled on the ``step_s`` grid plus AOS and LOS. Raises EpochOutOfRangeError for a span
    outside the trajectory or the ephemeris; an empty result is not an error here (see
    :meth:`Contacts.require_passes`).
    """
    start, stop = _span(trajectory, start_tdb_s, stop_tdb_s)
    scans = _scan(stations, trajectory, start, stop, min_elev_deg, step_s, ephemeris, dut1_s)
    passes = []
    for visibility, grid_look, sky in scans:
        if len(visibility.windows):
            ends = sky.look(visibility.station, visibility.windows.ravel(), trajectory)
        for k, (aos, los) in enumerate(visibility.windows):
            inside = (grid_look.t_tdb_s > aos) & (grid_look.t_tdb_s < los)
            samples = {
                name: np.concatenate([getattr(ends, name)[2 * k : 2 * k + 1], getattr(grid_look, name)[inside],
                                      getattr(ends, name)[2 * k + 1 : 2 * k + 2]])
                for name in _PASS_SAMPLES
            }
            passes.append(Pass(visibility.station, **samples, aos_at_span_start=bool(aos <= start),
                               los_at_span_end=bool(los >= stop)))
    passes.sort(key=lambda p: (p.aos_tdb_s, p.station.name))
    max_elev = {v.station.name: float(g.elevation_deg.max()) for v, g, _ in scans}
    return Contacts(passes, tuple(stations), start, stop, float(min_elev_deg), max_elev)


def _span(trajectory: Trajectory, start_tdb_s: float | None, stop_tdb_s: float | None) -> tuple[float, float]:
    start = trajectory.start_tdb_s + MAX_LIGHT_TIME_S if start_tdb_s is None else float(start_tdb_s)
    stop = trajectory.end_tdb_s if stop_tdb_s is None else float(stop_tdb_s)
    _check_span(trajectory, start, stop)
    return start, stop


def _scan(stations, trajectory, start, stop, min_elev_deg, step_s, ephemeris, dut1_s):
    """[(Visibility, Look on the grid, _Sky)] per station over a checked span, sharing one grid and sky."""
    t = _grid(start, stop, step_s)
    sky = _Sky(start - MAX_LIGHT_TIME_S, stop, ephemeris, dut1_s)
    epochs = sky.at(t)
    out = []
    for station in stations:
        grid_look = sky.look(station, epochs, trajectory)
        above = intervals_where_positive(
            t, grid_look.elevation_deg - min_elev_deg,
            lambda x, s=station: sky.look(s, x, trajectory).elevation_deg - min_elev_deg,
        )
        clear = intervals_where_positive(
            t, grid_look.clearance_km, lambda x, s=station: sky.look(s, x, trajectory).clearance_km
        )
        occulted = subtract_intervals(np.array([[start, stop]]), clear)
        out.append((Visibility(station, above, occulted, intersect_intervals(above, clear)), grid_look, sky))
    return out

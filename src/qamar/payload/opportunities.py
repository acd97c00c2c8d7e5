"""Imaging opportunities: when a target is in a footprint, lit well enough, seen sharply enough.

The trajectory is sampled every ``step_s``; at each epoch and camera the target is tested
(centre, or the whole outline on request) against the camera pyramid and the spacecraft's
horizon (:func:`~qamar.payload.footprint.points_in_view`), then against the conditions at its
centre: Sun elevation in a range, GSD (slant range x IFOV) under a limit, emission angle under
a limit. Runs of good samples are windows; their ends are refined by bisection to 0.01 s.
Windows shorter than the step can be missed; the step bounds the timing error of the rest
before refinement.

Pointing: the cameras' LVLH mounts, or target tracking (the spacecraft turns so that the
camera's boresight follows the target, limited to ``max_off_nadir_deg`` from nadir).

Ranking: each good sample gets a score in [0, 1],
``0.5 gsd_best / gsd + 0.3 (1 - |sun_elev - sun_elev_best| / span) + 0.2 cos(emission)``, where
``gsd_best`` is the finest GSD among all good samples and ``span`` the larger distance from
``sun_elev_best`` to an end of the Sun range. Sharp images weigh most, then light near the
chosen optimum (30 deg by default: shadows long enough to show relief without hiding floors),
then a near-vertical view. A window's score and its best time are those of its best sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from qamar.ephemeris import Ephemeris
from qamar.io import atomic_write
from qamar.payload.camera import Camera
from qamar.payload.coverage import sample_epochs
from qamar.payload.footprint import Tracking, camera_axes, geometry, points_in_view, surface_view
from qamar.payload.targets import Target
from qamar.time import tdb_s_to_utc

_CHUNK = 200_000
_BISECTIONS = 12  # 10 s / 2^12 = 2.4 ms
_WEIGHTS = (0.5, 0.3, 0.2)


@dataclass(frozen=True)
class Constraints:
    """What makes a good image. Angles in degrees; None switches a limit off.

    ``whole_target``: the whole outline must be in the footprint, not just the centre;
    ``track``: point the spacecraft at the target (see the module docstring);
    ``sun_elev_best_deg``: the ranking optimum (clipped into ``sun_elev_deg``). The default
    emission limit, 60 deg, keeps the foreshortening 1/cos(emission) at most 2.
    """

    sun_elev_deg: tuple[float, float] = (5.0, 60.0)
    max_gsd_m: float | None = None
    max_emission_deg: float | None = 60.0
    whole_target: bool = False
    track: bool = False
    max_off_nadir_deg: float = 30.0
    sun_elev_best_deg: float = 30.0

    def __post_init__(self):
        lo, hi = self.sun_elev_deg
        if not -90.0 <= lo < hi <= 90.0:
            raise ValueError(f"the Sun elevation range {lo}..{hi} deg must increase within -90..90")
        if self.max_gsd_m is not None and not self.max_gsd_m > 0:
            raise ValueError(f"the GSD limit must be positive, got {self.max_gsd_m} m")


@dataclass(frozen=True)
class Opportunity:
    """One imaging window of one camera on one target; geometry at its best time (TDB s past J2000)."""

    camera: str
    target: str
    start_tdb_s: float
    stop_tdb_s: float
    best_tdb_s: float
    gsd_m: float
    range_km: float
    sun_elev_deg: float
    incidence_deg: float
    emission_deg: float
    phase_deg: float
    in_view_fraction: float
    score: float
    rank: int = 0

    @property
    def duration_s(self) -> float:
        """Window length (s)."""
        return self.stop_tdb_s - self.start_tdb_s


@dataclass
class OpportunitySearch:
    """The ranked windows found, and how much time passed each condition (for messages).

    ``funnel``: seconds (samples x step) in a footprint, then also lit in range, then also
    under the GSD limit, then also under the emission limit; ``seen``: ranges of Sun elevation
    and GSD over the samples in a footprint (None if never in one).
    """

    target: Target
    constraints: Constraints
    cameras: tuple[str, ...]
    start_tdb_s: float
    stop_tdb_s: float
    step_s: float
    opportunities: list[Opportunity]
    funnel: dict[str, float]
    seen: dict[str, tuple[float, float]] | None = field(default=None)

    def explain(self) -> str:
        """One sentence on why no window was found (or how many were)."""
        span = f"between {tdb_s_to_utc(self.start_tdb_s)[:16]} and {tdb_s_to_utc(self.stop_tdb_s)[:16]} UTC"
        if self.opportunities:
            return f"{len(self.opportunities)} opportunities for {self.target.name} {span}"
        c = self.constraints
        head = f"no imaging opportunity for {self.target.name} {span} (sampled every {self.step_s:g} s)"
        hours = lambda s: f"{s / 3600.0:.2f} h"  # noqa: E731
        what = "wholly " if c.whole_target else ""
        if self.funnel["in_view"] == 0.0:
            how = "tracking within {:g} deg of nadir".format(c.max_off_nadir_deg) if c.track else "fixed mounts"
            return (f"{head}: it was never {what}in a footprint of {', '.join(self.cameras)} ({how}); "
                    "try a longer span, target tracking or another camera pointing")
        lo, hi = c.sun_elev_deg
        sun_lo, sun_hi = self.seen["sun_elev_deg"]
        if self.funnel["lit"] == 0.0:
            return (f"{head}: it was {what}in a footprint for {hours(self.funnel['in_view'])}, but the Sun stood "
                    f"between {sun_lo:.1f} and {sun_hi:.1f} deg there, never within {lo:g}..{hi:g} deg; "
                    "widen the Sun elevation range")
        if self.funnel["sharp"] == 0.0:
            g_lo, _ = self.seen["gsd_lit_m"]
            return (f"{head}: it was in view and lit for {hours(self.funnel['lit'])}, but the finest GSD then was "
                    f"{g_lo:.0f} m, above the {c.max_gsd_m:g} m limit; raise the GSD limit")
        return (f"{head}: it was in view, lit and sharp for {hours(self.funnel['sharp'])}, but never seen within "
                f"{c.max_emission_deg:g} deg of the vertical; raise the emission limit")


def _score(gsd_m, gsd_best_m, sun_elev_deg, emission_deg, c: Constraints) -> np.ndarray:
    lo, hi = c.sun_elev_deg
    best = min(max(c.sun_elev_best_deg, lo), hi)
    span = max(best - lo, hi - best)
    w_gsd, w_sun, w_emi = _WEIGHTS
    return (w_gsd * gsd_best_m / gsd_m + w_sun * (1.0 - np.abs(sun_elev_deg - best) / span)
            + w_emi * np.cos(np.radians(emission_deg)))


@dataclass
class _Samples:
    """Per-epoch conditions for one camera."""

    in_view: np.ndarray
    fraction: np.ndarray
    lit: np.ndarray
    sharp: np.ndarray
    good: np.ndarray
    view: object


def _evaluate(trajectory, cam: Camera, target: Target, t: np.ndarray, c: Constraints, eph) -> _Samples:
    geom = geometry(trajectory, t, eph)
    pts = target.points_me_km()
    tracking = Tracking.of(cam, pts[0]) if c.track else None
    axes = np.ascontiguousarray(camera_axes(cam, geom, tracking))
    flags = points_in_view(np.ascontiguousarray(geom.r_me_km), axes, *cam.tan_half_fov, pts)
    in_view = flags.all(axis=1) if c.whole_target else flags[:, 0]
    if c.track:
        nadir = -geom.r_me_km / np.linalg.norm(geom.r_me_km, axis=1, keepdims=True)
        look = axes[:, :, 2]
        in_view &= np.sum(nadir * look, axis=1) >= np.cos(np.radians(c.max_off_nadir_deg))
    view = surface_view(cam, geom, pts[0])
    lo, hi = c.sun_elev_deg
    lit = in_view & (view.sun_elev_deg >= lo) & (view.sun_elev_deg <= hi)
    sharp = lit & (view.gsd_m <= c.max_gsd_m) if c.max_gsd_m is not None else lit
    good = sharp & (view.emission_deg <= c.max_emission_deg) if c.max_emission_deg is not None else sharp
    return _Samples(in_view, flags.mean(axis=1), lit, sharp, good, view)


def _refine(trajectory, cam, target, c, eph, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Bisect between epochs where the conditions hold (inside) and fail (outside)."""
    inside, outside = inside.copy(), outside.copy()
    for _ in range(_BISECTIONS):
        mid = 0.5 * (inside + outside)
        good = _evaluate(trajectory, cam, target, mid, c, eph).good
        inside = np.where(good, mid, inside)
        outside = np.where(good, outside, mid)
    return inside


def find_opportunities(
    trajectory,
    cameras: list[Camera] | tuple[Camera, ...],
    target: Target,
    constraints: Constraints = Constraints(),
    *,
    step_s: float = 10.0,
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
    ephemeris: Ephemeris | None = None,
) -> OpportunitySearch:
    """Ranked imaging windows of ``target`` by ``cameras`` along ``trajectory`` (best first).

    Raises ValueError for a bad step or span, EpochOutOfRangeError outside the trajectory.
    An empty result is not an error: :meth:`OpportunitySearch.explain` says which condition
    ruled every sample out.
    """
    eph = ephemeris or Ephemeris.default()
    t_all = sample_epochs(trajectory, step_s, start_tdb_s, stop_tdb_s)
    funnel = dict.fromkeys(("in_view", "lit", "sharp", "good"), 0.0)
    sun_range, gsd_range = [np.inf, -np.inf], [np.inf, -np.inf]
    windows = []  # (camera, start, stop, samples at the good epochs, rows of this window in them)
    for cam in cameras:
        chunks = [_evaluate(trajectory, cam, target, t_all[i : i + _CHUNK], constraints, eph)
                  for i in range(0, len(t_all), _CHUNK)]
        good = np.concatenate([s.good for s in chunks])
        for key in funnel:
            funnel[key] += step_s * float(sum(np.count_nonzero(getattr(s, key)) for s in chunks))
        for s in chunks:
            if np.any(s.in_view):
                sun_range[:] = min(sun_range[0], np.min(s.view.sun_elev_deg[s.in_view])), max(
                    sun_range[1], np.max(s.view.sun_elev_deg[s.in_view]))
            if np.any(s.lit):
                gsd_range[:] = min(gsd_range[0], np.min(s.view.gsd_m[s.lit])), max(gsd_range[1], np.max(s.view.gsd_m[s.lit]))
        if not np.any(good):
            continue
        edges = np.diff(np.concatenate([[0], good.astype(np.int8), [0]]))
        first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
        starts, stops = t_all[first].copy(), t_all[last].copy()
        inner = first > 0
        starts[inner] = _refine(trajectory, cam, target, constraints, eph, t_all[first[inner]], t_all[first[inner] - 1])
        inner = last < len(t_all) - 1
        stops[inner] = _refine(trajectory, cam, target, constraints, eph, t_all[last[inner]], t_all[last[inner] + 1])
        idx = np.flatnonzero(good)
        samples = _evaluate(trajectory, cam, target, t_all[idx], constraints, eph)
        for a, b, t0, t1 in zip(first, last, starts, stops):
            windows.append((cam.name, t0, t1, samples, np.flatnonzero((idx >= a) & (idx <= b))))
    opportunities = []
    if windows:
        gsd_best = min(float(np.min(w[3].view.gsd_m[w[4]])) for w in windows)
        for name, t0, t1, samples, rows in windows:
            v = samples.view
            scores = _score(v.gsd_m[rows], gsd_best, v.sun_elev_deg[rows], v.emission_deg[rows], constraints)
            k = rows[int(np.argmax(scores))]
            opportunities.append(Opportunity(
                name, target.name, float(t0), float(t1), float(v.t_tdb_s[k]), float(v.gsd_m[k]), float(v.range_km[k]),
                float(v.sun_elev_deg[k]), float(v.incidence_deg[k]), float(v.emission_deg[k]), float(v.phase_deg[k]),
                float(np.max(samples.fraction[rows])), float(np.max(scores))))
        opportunities.sort(key=lambda o: -o.score)
        opportunities = [replace(o, rank=i + 1) for i, o in enumerate(opportunities)]
    seen = None
    if funnel["in_view"] > 0:
        seen = {"sun_elev_deg": tuple(sun_range), "gsd_lit_m": tuple(gsd_range) if funnel["lit"] > 0 else None}
    return OpportunitySearch(target, constraints, tuple(c.name for c in cameras), float(t_all[0]), float(t_all[-1]),
                             float(step_s), opportunities, funnel, seen)


CSV_COLUMNS = ("rank", "camera", "target", "start_utc", "stop_utc", "duration_s", "best_utc", "gsd_m", "range_km",
               "sun_elev_deg", "incidence_deg", "emission_deg", "phase_deg", "in_view_fraction", "score")


def write_csv(opportunities: list[Opportunity], path) -> None:
    """Write opportunities (one row each, rank order) as CSV, atomically; times UTC ISO-8601 (ms).

    Raises ValueError for an empty list: an empty table would look like a result.
    """
    if not opportunities:
        raise ValueError("no opportunities to write; report OpportunitySearch.explain() instead")
    start = tdb_s_to_utc(np.array([o.start_tdb_s for o in opportunities]))
    stop = tdb_s_to_utc(np.array([o.stop_tdb_s for o in opportunities]))
    best = tdb_s_to_utc(np.array([o.best_tdb_s for o in opportunities]))
    with atomic_write(path) as stream:
        stream.write(",".join(CSV_COLUMNS) + "\n")
        for o, a, b, m in zip(opportunities, start, stop, best):
            stream.write(f"{o.rank},{o.camera},\"{o.target}\",{a},{b},{o.duration_s:.2f},{m},{o.gsd_m:.1f},"
                         f"{o.range_km:.3f},{o.sun_elev_deg:.3f},{o.incidence_deg:.3f},{o.emission_deg:.3f},"
                         f"{o.phase_deg:.3f},{o.in_view_fraction:.3f},{o.score:.4f}\n")

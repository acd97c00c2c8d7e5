"""Spatiotemporal route planning: where the rover is, when, and with how much energy, as the
Sun and the Earth move across the horizon.

Light. A :class:`LightGrid` holds, for each time step ``k`` (``step_h`` long, starting at
``t0_tdb_s + k step_h``) and each pixel of the planning grid, the array power ``solar_w`` (W,
:func:`qamar.rover.energy.solar_power_w` from the Sun's visible fraction, direction and
distance) and ``contact`` (the rover can talk to Earth). Both are constant over a step.
Contact (``rover.comms.earth_link``): "direct", Earth's centre above the rover's horizon;
"via_lander" with a :class:`~qamar.ops.link.LanderSite`, the rover within
``comms.lander_range_m`` of the lander and in its viewshed (:mod:`qamar.surface.viewshed`, lander
antenna ``comms.lander_antenna_height_m`` to rover antenna ``comms.rover_antenna_height_m``) while
Earth's centre is above the lander's horizon; "via_lander" without a lander, the rover's own
Earth view stands for the lander's (an assumption: right only for a rover near the lander).
On a coarse planning grid (:func:`site_light`) a block is in the lander's view when most of its
pixels are, from the viewshed on the full-resolution DEM (:func:`block_link`). :func:`light_grid` computes them
from a horizon map with the public functions of :mod:`qamar.surface.illumination`
(Sun and Earth tracks, topocentric directions, disc visible fraction with the horizon taken as
a straight line across the disc); tests pass synthetic arrays. On a large DEM the light is
computed on a coarse planning grid (:func:`plan_spacetime` ``factor``: blocks of factor x
factor pixels, light at the block-mean height and horizon), a precomputed coarse space-time
grid of K x cells values.

Search. States are (pixel, step) on the planning grid; each keeps one label: arrival time t
(h from the light's start), stored energy b (Wh) and time of last contact c (labels live in
an append-only pool, so a replaced label still traces the route of labels made from it). Labels are
expanded in order of t (a binary heap). Actions from a label at pixel u in step k:

- drive to one of the 8 neighbours: time = ground length / speed (each pixel contributes half
  a move's length, the metric of :mod:`qamar.rover.plan`); energy: drive power minus the
  array power, the first half of the time at u's light and the second at v's, step by step;
- wait until the end of step k, charging if lit; awake (``idle_w``) when Earth is in view
  (the rover is in contact), hibernating (``hibernate_w``) otherwise.

A successor is kept only if the battery never drops below the reserve on the way, the time
since the last contact never exceeds ``max_contact_gap_h`` (contact at the end of a move or a
wait in a step with Earth in view), and it ends inside the light's time span. Dominance: of two
labels of one (pixel, step) the one with more energy wins (equal energy: the earlier), so a
label may trade up to one step of arrival time for energy. The first label of the goal taken
off the heap is the earliest arrival (up to that one-step trade) that meets every constraint;
with ``haven_h`` it must also be able to wait at the goal for ``haven_h`` hours without
breaching the reserve or the contact rule (a lit safe haven). Waits appear exactly where
the route must wait: at step boundaries, e.g. at a lit spot until the road ahead is lit.

Refinement. On a coarse planning grid the route of block centres is refined on the full DEM:
the static planner (:func:`qamar.rover.gridsearch.shortest_path`) through the blocks the plan
visited (if they hold no fine route, with a block of margin), so every fine pixel crossed is drivable (slope under the
limit, no hazard). The schedule is then planned again along that fixed geometry
(:func:`_replan_along`): the route resampled every pixel length into a chain of nodes, each
under the light of the block below it, searched as above (so its drives, waits, energy and
contact are those of the refined route; the schedule is on DEM pixels). If no schedule along
the refined route meets the constraints the plan is infeasible with a reason. With ``factor``
1 the schedule and the route are the same pixels.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.ndimage
from numba import njit

from qamar.errors import ModelConfigError
from qamar.rover.energy import battery_params, battery_step, solar_power_w
from qamar.rover.gridsearch import shortest_path
from qamar.rover.model import RoverSpec
from qamar.rover.plan import (
    Route,
    _blocked_reason,
    _connected,
    _pixel,
    _unreachable_reason,
    route_from_pixels,
)
from qamar.rover.traverse import CostMap
from qamar.surface.horizon import NODATA_CDEG, HorizonMap
from qamar.surface.illumination import (
    BodyTracks,
    disc_visible_fraction,
    topocentric_az_el_deg,
)
from qamar.surface.terrain import Dem, pixel_lat_lon
from qamar.surface.viewshed import VISIBLE, observer_pixel, viewshed

DRIVE, WAIT = 1, 2  # actions stored with each label (0: the start)
if TYPE_CHECKING:
    from qamar.ops.link import LanderSite

_EPS_WH = 1e-9
_LIGHT_CHUNK = 24  # steps per call of topocentric_az_el_deg (memory: 2 x 24 x pixels x 3 doubles)


@dataclass(frozen=True)
class LightGrid:
    """Array power ``solar_w`` (W, float64 (K, ny, nx)) and ``contact`` (bool (K, ny, nx)) per
    step of ``step_h`` hours from ``t0_tdb_s`` (TDB s past J2000), on a planning grid."""

    solar_w: np.ndarray
    contact: np.ndarray
    step_h: float
    t0_tdb_s: float = 0.0

    def __post_init__(self):
        if self.solar_w.ndim != 3 or self.solar_w.shape != self.contact.shape:
            raise ModelConfigError("solar_w and contact must both be (steps, ny, nx) arrays of one shape")
        if not self.step_h > 0:
            raise ModelConfigError(f"the light step must be positive, got {self.step_h} h")

    @property
    def n_steps(self) -> int:
        """Number of steps K."""
        return self.solar_w.shape[0]


def _horizon_at(elev_cdeg: np.ndarray, az_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizon elevation (deg) and its slope (deg per deg) at azimuths ``az_deg`` (ny, nx) of
    each pixel's profile ``elev_cdeg`` (ny, nx, n_az), linear between samples."""
    n_az = elev_cdeg.shape[-1]
    f = np.mod(az_deg, 360.0) * n_az / 360.0
    k0 = np.floor(f).astype(np.int64) % n_az
    frac = f - np.floor(f)
    h0 = np.take_along_axis(elev_cdeg, k0[..., None], -1)[..., 0] / 100.0
    h1 = np.take_along_axis(elev_cdeg, ((k0 + 1) % n_az)[..., None], -1)[..., 0] / 100.0
    return h0 + frac * (h1 - h0), (h1 - h0) * n_az / 360.0


def light_grid(dem: Dem, horizon: HorizonMap, tracks: BodyTracks, rover: RoverSpec,
               lander: LanderSite | None = None, *, link: np.ndarray | None = None) -> LightGrid:
    """Array power and Earth contact per step of ``tracks`` at every pixel of ``dem``.

    ``horizon`` is the horizon map of ``dem`` (same grid). Sun visible fraction: the disc
    (angular radius from its distance) above the horizon line at its azimuth, the line's
    distance from the disc centre ``(el - h) / sqrt(1 + (dh/daz / cos el)^2)`` (as
    :mod:`qamar.surface.illumination`). Sites are ``horizon.observer_height_m`` above the DEM.

    Contact (module docstring): with ``lander`` and ``rover.comms.earth_link == "via_lander"``,
    :func:`lander_link` (range and viewshed on ``dem``; or ``link``, bool (ny, nx), e.g. from
    the full-resolution DEM by :func:`block_link`) AND Earth's centre above the horizon map at
    the lander's pixel (the lander's own ``height_m`` and ``horizon_deg`` are not used: the DEM
    and its horizon map give both; the map's observer height, the rover antenna's in
    :func:`site_light`, is below the lander's mast, so the lander may see a little more Earth
    than this says); otherwise Earth's centre above each pixel's own
    horizon (for "via_lander" without a lander, an assumption: the rover's view of Earth stands
    for the lander's). Raises ModelConfigError for another grid, or a lander off the grid or
    on a pixel without data.
    """
    if horizon.shape != dem.shape:
        raise ModelConfigError(f"the horizon map ({horizon.shape}) is not on the planning grid ({dem.shape}): "
                               "compute it from the same DEM")
    via_lander = lander is not None and rover.comms.earth_link == "via_lander"
    if via_lander:
        link = lander_link(dem, lander, rover) if link is None else np.asarray(link, bool)
        if link.shape != dem.shape:
            raise ModelConfigError(f"the lander link mask {link.shape} is not on the planning grid {dem.shape}")
        lander_rc = _lander_pixel(dem, lander)
        if (horizon.elev_cdeg[lander_rc] == NODATA_CDEG).any():
            raise ModelConfigError(f"the horizon map has no data at the lander's pixel {lander_rc}: "
                                   "compute it with the terrain around the lander")
    lat, lon = pixel_lat_lon(dem)
    r_km = (dem.radius_m + np.nan_to_num(dem.elevation_m) + horizon.observer_height_m) / 1e3
    missing = (horizon.elev_cdeg == NODATA_CDEG).any(axis=-1) | ~np.isfinite(dem.elevation_m)
    elev = horizon.elev_cdeg.astype(np.float32)
    k_steps = tracks.n
    solar = np.zeros((k_steps, *dem.shape))
    contact = np.zeros((k_steps, *dem.shape), bool)
    sun_radius = tracks.sun_radius_rad
    for k0 in range(0, k_steps, _LIGHT_CHUNK):  # Sun and Earth of a chunk of steps in one call (one ENU basis)
        k1 = min(k_steps, k0 + _LIGHT_CHUNK)
        bodies = np.concatenate((tracks.sun_me_km[k0:k1], tracks.earth_me_km[k0:k1]))[:, None, None, :]
        az, el = topocentric_az_el_deg(bodies, lat, lon, r_km)
        m = k1 - k0
        for i, k in enumerate(range(k0, k1)):
            h, dh = _horizon_at(elev, az[i])
            offset_rad = np.radians(el[i] - h) / np.sqrt(1.0 + (dh / np.cos(np.radians(el[i]))) ** 2)
            fraction = disc_visible_fraction(offset_rad, sun_radius[k])
            solar[k] = solar_power_w(rover.solar, fraction, az[i], el[i], np.linalg.norm(tracks.sun_me_km[k]))
            earth_up = el[m + i] > _horizon_at(elev, az[m + i])[0]
            contact[k] = (link & earth_up[lander_rc]) if via_lander else earth_up
    solar[:, missing] = 0.0
    contact[:, missing] = False
    return LightGrid(solar, contact, tracks.step_h, float(tracks.t_tdb_s[0]))


def _lander_pixel(dem: Dem, lander: LanderSite) -> tuple[int, int]:
    """(row, col) of the pixel holding the lander; ModelConfigError off the grid."""
    row, col = observer_pixel(dem, lander.lat_deg, lander.lon_deg)
    return math.floor(row + 0.5), math.floor(col + 0.5)


def lander_link(dem: Dem, lander: LanderSite, rover: RoverSpec) -> np.ndarray:
    """bool (ny, nx): pixels where the rover's antenna (``comms.rover_antenna_height_m``) is
    within ``comms.lander_range_m`` of the lander's (``comms.lander_antenna_height_m``) and in
    its line of sight over ``dem`` (:func:`qamar.surface.viewshed.viewshed`; a ray over a
    no-data pixel counts as blocked). ModelConfigError for a lander off the DEM or on no data."""
    c = rover.comms
    return viewshed(dem, (lander.lat_deg, lander.lon_deg), observer_height_m=c.lander_antenna_height_m,
                    target_height_m=c.rover_antenna_height_m, max_range_m=c.lander_range_m) == VISIBLE


def block_link(dem: Dem, lander: LanderSite, rover: RoverSpec, factor: int) -> np.ndarray:
    """bool (ny // factor, nx // factor): the planning blocks (factor x factor pixels, as
    :func:`qamar.surface.horizon.coarse_dem`) at least half of whose pixels are in the lander's
    link (:func:`lander_link` on the full-resolution ``dem``): the block's rover is taken to be
    in touch when most of its ground is (an assumption; the route refined inside a block may
    cross its hidden pixels)."""
    from qamar.surface.horizon import block_mean

    return block_mean(lander_link(dem, lander, rover).astype(np.float32), factor) >= 0.5


def contact_model(rover: RoverSpec, lander: LanderSite | None = None) -> str:
    """One line saying how :func:`light_grid` decides contact for this rover and lander."""
    c = rover.comms
    if c.earth_link == "direct":
        return "direct: Earth's centre above the rover's horizon"
    if lander is None:
        return ("via lander, position not given: Earth's centre above the rover's horizon stands for the lander's "
                "(assumption)")
    return (f"via lander at {lander.lat_deg:.4f}, {lander.lon_deg % 360.0:.4f} E (viewshed from "
            f"{c.lander_antenna_height_m:g} m to {c.rover_antenna_height_m:g} m antennas, range "
            f"{c.lander_range_m:g} m; Earth above the lander's horizon)")


# ---------------------------------------------------------------------------------------
# Compiled search
# ---------------------------------------------------------------------------------------


@njit(cache=True, fastmath=False, nogil=True)
def _heap_push(keys, items, size, key, item):
    if size == keys.size:  # grow
        new_keys = np.empty(2 * keys.size)
        new_items = np.empty(2 * items.size, np.int64)
        new_keys[:size] = keys[:size]
        new_items[:size] = items[:size]
        keys, items = new_keys, new_items
    i = size
    while i > 0:
        p = (i - 1) >> 1
        if keys[p] <= key:
            break
        keys[i], items[i] = keys[p], items[p]
        i = p
    keys[i], items[i] = key, item
    return keys, items, size + 1


@njit(cache=True, fastmath=False, nogil=True)
def _heap_pop(keys, items, size):
    key, item = keys[0], items[0]
    size -= 1
    last_k, last_i = keys[size], items[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and keys[c + 1] < keys[c]:
            c += 1
        if keys[c] >= last_k:
            break
        keys[i], items[i] = keys[c], items[c]
        i = c
    if size > 0:
        keys[i], items[i] = last_k, last_i
    return key, item, size


@njit(cache=True, fastmath=False, nogil=True)
def _stay(solar, u, t0, t1, b, load_w, step_h, bp):
    """Energy after standing at pixel u from t0 to t1 (h) drawing ``load_w``: (end, minimum)."""
    low = b
    t = t0
    while t < t1 - 1e-12:
        k = int(t / step_h + 1e-9)
        end = min(t1, (k + 1) * step_h)
        b = battery_step(b, solar[k, u], load_w, end - t, bp[0], bp[2], bp[3])
        low = min(low, b)
        t = end
    return b, low


@njit(cache=True, fastmath=False, nogil=True)
def _wait_load(contact, k, u, bp):
    """Awake (idle) in contact, hibernating otherwise."""
    return bp[5] if contact[k, u] else bp[6]


@njit(cache=True, fastmath=False, nogil=True)
def _can_rest(solar, contact, u, t0, b, c, hours, step_h, n_steps, bp, gap_h):
    """True if the rover can wait ``hours`` at pixel u from t0 within the reserve and contact rule."""
    t_end = t0 + hours
    if t_end > n_steps * step_h + 1e-9:
        return False
    t = t0
    while t < t_end - 1e-12:
        k = int(t / step_h + 1e-9)
        end = min(t_end, (k + 1) * step_h)
        b = battery_step(b, solar[k, u], _wait_load(contact, k, u, bp), end - t, bp[0], bp[2], bp[3])
        if b < bp[1] - _EPS_WH:
            return False
        if contact[k, u]:
            c = end
        elif end - c > gap_h:
            return False
        t = end
    return True


@njit(cache=True, fastmath=False, nogil=True)
def _grow(a, size):
    """``a`` with room for at least ``size + 1`` items (doubling)."""
    if size < a.size:
        return a
    out = np.empty(2 * a.size, a.dtype)
    out[:size] = a[:size]
    return out


@njit(cache=True, fastmath=False, nogil=True)
def _search(time_h, solar, contact, ncols, start, goal, t_start, b_start, c_start, step_h, bp, gap_h, haven_h):
    """Earliest arrival at ``goal`` (flat pixel index) over (pixel, step) states.

    ``time_h``: hours to drive one pixel step from each pixel (inf = blocked), flat (n,);
    ``solar``/``contact``: (K, n); ``c_start``: time of the last contact before the start. Labels live in an append-only pool (a replaced label stays
    valid as the parent of labels made from it); each state points to its current label.
    Returns (goal label or -1, label count, pool arrays t, b, c, parent, action, state, rejection
    counts [battery, contact, end of light, haven]).
    """
    n_steps, n = solar.shape
    label_of = np.full((n_steps + 1) * n, -1, np.int32)
    cap = 1 << 16
    lt, lb, lc = np.empty(cap), np.empty(cap), np.empty(cap)
    lpar, lstate = np.empty(cap, np.int64), np.empty(cap, np.int64)
    lact = np.empty(cap, np.int8)
    rejected = np.zeros(4, np.int64)
    t_end = n_steps * step_h
    offs = np.empty(8, np.int64)
    halves = np.empty(8)
    drs = np.empty(8, np.int64)
    dcs = np.empty(8, np.int64)
    m = 0
    for dr in range(-1, 2):
        for dc in range(-1, 2):
            if dr or dc:
                offs[m], drs[m], dcs[m] = dr * ncols + dc, dr, dc
                halves[m] = 0.5 * math.sqrt(dr * dr + dc * dc)
                m += 1
    nrows = n // ncols
    keys = np.empty(1024)
    items = np.empty(1024, np.int64)
    s0 = int(t_start / step_h + 1e-9) * n + start
    lt[0], lb[0], lc[0], lpar[0], lstate[0], lact[0] = t_start, b_start, c_start, -1, s0, 0
    label_of[s0] = 0
    count = 1
    keys, items, size = _heap_push(keys, items, 0, t_start, 0)
    succ_t, succ_b, succ_c = np.empty(9), np.empty(9), np.empty(9)
    succ_s = np.empty(9, np.int64)
    succ_a = np.empty(9, np.int8)
    while size > 0:
        t, lab, size = _heap_pop(keys, items, size)
        s = lstate[lab]
        if label_of[s] != lab:
            continue  # replaced by a label with more energy
        k, u = s // n, s % n
        b, c = lb[lab], lc[lab]
        if u == goal:
            if haven_h <= 0.0 or _can_rest(solar, contact, u, t, b, c, haven_h, step_h, n_steps, bp, gap_h):
                return lab, count, lt, lb, lc, lpar, lact, lstate, rejected
            rejected[3] += 1
        if k >= n_steps:
            continue
        ns = 0
        # wait to the end of the step
        t1 = (k + 1) * step_h
        b1, low = _stay(solar, u, t, t1, b, _wait_load(contact, k, u, bp), step_h, bp)
        c1 = t1 if contact[k, u] else c
        if low < bp[1] - _EPS_WH:
            rejected[0] += 1
        elif t1 - c1 > gap_h:
            rejected[1] += 1
        else:
            succ_t[ns], succ_b[ns], succ_c[ns], succ_s[ns], succ_a[ns] = t1, b1, c1, (k + 1) * n + u, WAIT
            ns += 1
        # drive to a neighbour
        ur, uc = u // ncols, u % ncols
        for j in range(8):
            vr, vc = ur + drs[j], uc + dcs[j]
            if vr < 0 or vr >= nrows or vc < 0 or vc >= ncols:
                continue
            v = u + offs[j]
            if not time_h[v] < np.inf:
                continue
            half = halves[j]
            t_mid = t + half * time_h[u]
            t1 = t_mid + half * time_h[v]
            if t1 > t_end:
                rejected[2] += 1
                continue
            b_mid, low1 = _stay(solar, u, t, t_mid, b, bp[4], step_h, bp)
            b1, low2 = _stay(solar, v, t_mid, t1, b_mid, bp[4], step_h, bp)
            if min(low1, low2) < bp[1] - _EPS_WH:
                rejected[0] += 1
                continue
            if t1 - c > gap_h:
                rejected[1] += 1
                continue
            k1 = int(t1 / step_h + 1e-9)
            c1 = t1 if (k1 < n_steps and contact[k1, v]) else c
            succ_t[ns], succ_b[ns], succ_c[ns], succ_s[ns], succ_a[ns] = t1, b1, c1, k1 * n + v, DRIVE
            ns += 1
        for i in range(ns):
            s1 = succ_s[i]
            old = label_of[s1]
            if old >= 0 and not (succ_b[i] > lb[old] + _EPS_WH or (succ_b[i] >= lb[old] - _EPS_WH
                                                                   and succ_t[i] < lt[old])):
                continue
            lt, lb, lc = _grow(lt, count), _grow(lb, count), _grow(lc, count)
            lpar, lstate, lact = _grow(lpar, count), _grow(lstate, count), _grow(lact, count)
            lt[count], lb[count], lc[count] = succ_t[i], succ_b[i], succ_c[i]
            lpar[count], lstate[count], lact[count] = lab, s1, succ_a[i]
            label_of[s1] = count
            keys, items, size = _heap_push(keys, items, size, succ_t[i], count)
            count += 1
    return -1, count, lt, lb, lc, lpar, lact, lstate, rejected


# ---------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------


@dataclass
class Schedule:
    """What the rover does, event by event: at ``t_h`` (h from the light's start) it is at pixel
    ``rows``/``cols`` (of the planning grid; of the DEM after :func:`plan_spacetime`) with ``battery_wh``, having just done ``action`` ('start',
    'drive', 'wait', 'hibernate'); ``contact`` is Earth in view there in that step, ``solar_w``
    the array power."""

    t_h: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    battery_wh: np.ndarray
    action: list[str]
    contact: np.ndarray
    solar_w: np.ndarray
    last_contact_h: float = math.nan

    def then(self, other: Schedule) -> Schedule:
        """This schedule followed by ``other`` (which starts where and when this one ends)."""
        return Schedule(np.concatenate((self.t_h, other.t_h[1:])), np.concatenate((self.rows, other.rows[1:])),
                        np.concatenate((self.cols, other.cols[1:])),
                        np.concatenate((self.battery_wh, other.battery_wh[1:])), self.action + other.action[1:],
                        np.concatenate((self.contact, other.contact[1:])),
                        np.concatenate((self.solar_w, other.solar_w[1:])), other.last_contact_h)


@dataclass
class SpacetimeResult:
    """A spatiotemporal plan: ``schedule`` (planning grid), ``route`` (static geometry on the
    DEM grid, None if infeasible), feasibility and a ``reason`` when infeasible, timing."""

    feasible: bool
    reason: str | None
    schedule: Schedule | None = None
    route: Route | None = None
    start_utc: str | None = None
    step_h: float = math.nan
    reserve_wh: float = math.nan
    factor: int = 1
    states_expanded: int = 0
    runtime_s: float = 0.0
    rejected: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """route.json fields of the plan: min_battery_wh, arrival, waits, hibernation..."""
        doc = {"feasible": self.feasible, "reason": self.reason, "spatiotemporal": True, "step_h": self.step_h,
               "planning_factor": self.factor, "reserve_wh": round(self.reserve_wh, 3),
               "runtime_s": round(self.runtime_s, 3), "rejected_moves": self.rejected}
        if self.route is not None:
            doc.update(self.route.summary())
            doc["feasible"], doc["reason"] = self.feasible, self.reason
            doc["runtime_s"] = round(self.runtime_s, 3)
        if self.schedule is not None and self.feasible:
            s = self.schedule
            dt = np.diff(s.t_h)
            acts = np.array(s.action[1:])
            doc.update({
                "start_utc": self.start_utc, "arrival_h": round(float(s.t_h[-1] - s.t_h[0]), 4),
                "arrival_utc": _utc_at(self.start_utc, float(s.t_h[-1] - s.t_h[0])),
                "duration_h": round(float(s.t_h[-1] - s.t_h[0]), 4),
                "driving_h": round(float(dt[acts == "drive"].sum()), 4),
                "waiting_h": round(float(dt[acts == "wait"].sum()), 4),
                "hibernating_h": round(float(dt[acts == "hibernate"].sum()), 4),
                "min_battery_wh": round(float(s.battery_wh.min()), 3),
                "end_battery_wh": round(float(s.battery_wh[-1]), 3),
                "waits": _waits(s),
            })
        return doc

    def write_csv(self, path: str | Path, dem: Dem | None = None) -> Path:
        """One row per event: UTC, hours, DEM pixel, lat/lon (with ``dem``), action, battery,
        array power, contact."""
        s = self.schedule
        with open(path, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["utc", "elapsed_h", "row", "col", "lat_deg", "lon_deg", "action", "battery_wh", "solar_w",
                          "contact"])
            lat = lon = None
            if dem is not None:
                lat, lon = pixel_lat_lon(dem)
            for i in range(s.t_h.size):
                r, c = int(s.rows[i]), int(s.cols[i])
                out.writerow([_utc_at(self.start_utc, float(s.t_h[i] - s.t_h[0])),
                              f"{s.t_h[i] - s.t_h[0]:.4f}", r, c,
                              f"{lat[r, c]:.8f}" if lat is not None else "", f"{lon[r, c]:.8f}" if lon is not None else "",
                              s.action[i], f"{s.battery_wh[i]:.3f}", f"{s.solar_w[i]:.3f}", int(s.contact[i])])
        return Path(path)


def _utc_at(start_utc: str | None, hours: float) -> str | None:
    if start_utc is None:
        return None
    from qamar.time import tdb_s_to_utc, utc_to_tdb_s

    return tdb_s_to_utc(float(utc_to_tdb_s(start_utc)) + hours * 3600.0, 0)


def _waits(s: Schedule) -> list[dict]:
    """Runs of waiting/hibernating at one place: where, from, hours, mode."""
    out = []
    i = 1
    n = s.t_h.size
    while i < n:
        if s.action[i] in ("wait", "hibernate"):
            j = i
            while j + 1 < n and s.action[j + 1] in ("wait", "hibernate"):
                j += 1
            hib = sum(s.t_h[m] - s.t_h[m - 1] for m in range(i, j + 1) if s.action[m] == "hibernate")
            if s.t_h[j] - s.t_h[i - 1] < 1e-6:  # a drive that ended on a step boundary
                i = j + 1
                continue
            out.append({"row": int(s.rows[i]), "col": int(s.cols[i]), "from_h": round(float(s.t_h[i - 1] - s.t_h[0]), 4),
                        "hours": round(float(s.t_h[j] - s.t_h[i - 1]), 4), "hibernating_h": round(float(hib), 4),
                        "battery_after_wh": round(float(s.battery_wh[j]), 3)})
            i = j + 1
        else:
            i += 1
    return out


def plan_on_grid(time_h: np.ndarray, light: LightGrid, start: tuple[int, int], goal: tuple[int, int],
                 rover: RoverSpec | None = None, *, start_h: float = 0.0, battery_wh: float | None = None,
                 contact_h: float | None = None, haven_h: float = 0.0) -> SpacetimeResult:
    """Earliest feasible arrival from pixel ``start`` to ``goal`` (row, col) on a planning grid.

    ``time_h`` (ny, nx): hours to drive one pixel step at each pixel (inf: blocked);
    ``light`` on the same grid; the plan begins ``start_h`` hours into the light with
    ``battery_wh`` (default: full) and its last contact at ``contact_h`` (default: the start,
    in contact with its operators); ``haven_h`` > 0 asks that the rover can then stay at the
    goal that long. Constraints and method: module docstring. Infeasible plans carry a reason.
    """
    rover = rover or RoverSpec()
    began = time.perf_counter()
    bp = battery_params(rover)
    ny, nx = time_h.shape
    if light.solar_w.shape[1:] != (ny, nx):
        raise ModelConfigError(f"the light grid {light.solar_w.shape[1:]} differs from the planning grid {(ny, nx)}")
    b0 = bp[0] if battery_wh is None else float(battery_wh)
    gap_h = rover.comms.max_contact_gap_h
    solar = np.ascontiguousarray(light.solar_w.reshape(light.n_steps, -1), dtype=np.float64)
    contact = np.ascontiguousarray(light.contact.reshape(light.n_steps, -1))
    tt = np.ascontiguousarray(np.where(np.isfinite(time_h), time_h, np.inf).ravel(), dtype=np.float64)
    s_i, g_i = start[0] * nx + start[1], goal[0] * nx + goal[1]
    common = {"step_h": light.step_h, "reserve_wh": float(bp[1])}
    if not start_h < light.n_steps * light.step_h:
        return SpacetimeResult(False, "the start time is after the end of the light maps: start earlier or "
                                      "compute light for a longer span (--days)", **common)
    c0 = float(start_h) if contact_h is None else float(contact_h)
    found, count, t, b, c, parent, action, state, rejected = _search(tt, solar, contact, nx, s_i, g_i, float(start_h),
                                                                     b0, c0, light.step_h, bp, gap_h, float(haven_h))
    counts = {"battery": int(rejected[0]), "contact": int(rejected[1]), "end_of_light": int(rejected[2]),
              "haven": int(rejected[3])}
    runtime = time.perf_counter() - began
    if found < 0:
        return SpacetimeResult(False, _why(counts, rover, light, haven_h), runtime_s=runtime, rejected=counts,
                               states_expanded=int(count), **common)
    chain = []
    lab = found
    while lab >= 0:
        chain.append(lab)
        lab = parent[lab]
    chain = np.array(chain[::-1])
    n = ny * nx
    k, u = state[chain] // n, state[chain] % n
    k_light = np.minimum(np.maximum(k - (action[chain] == WAIT), 0), light.n_steps - 1)
    contact_at = contact[k_light, u]
    names = ["start"] + ["drive" if action[lab] == DRIVE else ("wait" if contact_at[i + 1] else "hibernate")
                         for i, lab in enumerate(chain[1:])]
    schedule = Schedule(t[chain], u // nx, u % nx, b[chain], names, contact_at, solar[k_light, u], float(c[found]))
    return SpacetimeResult(True, None, schedule, runtime_s=runtime, rejected=counts, states_expanded=int(count),
                           **common)


def _why(counts: dict, rover: RoverSpec, light: LightGrid, haven_h: float) -> str:
    """What kept the goal out of reach, and what to change."""
    span = light.n_steps * light.step_h
    p = rover.power
    parts = []
    if counts["haven"]:
        parts.append(f"the rover reached the goal but could not then stay there {haven_h:g} h above the reserve "
                     "(not a lit safe haven at those times): choose another haven or shorten the stay")
    if counts["battery"]:
        parts.append(f"moves into shadow would drain the battery below its reserve "
                     f"({p.battery_wh * p.reserve_fraction:g} of {p.battery_wh:g} Wh): a larger power.battery_wh, a "
                     f"lower power.reserve_fraction, lower power.drive_w/idle_w/hibernate_w, or another start time")
    if counts["contact"]:
        parts.append(f"routes would go more than comms.max_contact_gap_h = {rover.comms.max_contact_gap_h:g} h "
                     "without Earth in view: raise it (operations concept) or choose a goal in view of Earth")
    if counts["end_of_light"]:
        parts.append(f"the light maps end after {span:g} h, before the rover could arrive: plan over more days "
                     "(--days) or a nearer goal")
    if not parts:
        return "no drivable connection between start and goal"
    return "no feasible route within the light window: " + "; ".join(parts)


def coarse_costs(costs: CostMap, speed_m_per_s: float, factor: int) -> np.ndarray:
    """Hours to drive one block step (factor x factor pixels) per block: the mean of its
    drivable pixels' ground step over the speed, times ``factor``; inf where more than half the
    block is blocked (refinement checks every fine pixel)."""
    ny, nx = (costs.cost.shape[0] // factor) * factor, (costs.cost.shape[1] // factor) * factor
    ok = np.isfinite(costs.cost[:ny, :nx]).reshape(ny // factor, factor, nx // factor, factor)
    step = np.where(ok, costs.step_m[:ny, :nx].reshape(ok.shape), 0.0)
    count = ok.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        hours = step.sum(axis=(1, 3)) / count * factor / speed_m_per_s / 3600.0
    hours[count * 2 <= factor * factor] = np.inf
    return hours


def plan_spacetime(costs: CostMap, light: LightGrid, start_lat_lon: tuple[float, float],
                   goal_lat_lon: tuple[float, float] | list[tuple[float, float]], rover: RoverSpec | None = None, *,
                   factor: int = 1, start_utc: str | None = None, haven_h: float = 0.0,
                   detour: float = 1.1) -> SpacetimeResult:
    """Spatiotemporal plan from a point to a goal, or through a list of targets in order (ME
    deg), on the cost map's DEM. Each leg starts when, where and with the energy and last
    contact the previous one ended; ``haven_h`` applies to the last point (e.g. a target, then
    back to a lit safe haven). Legs are planned one after the other (each the earliest arrival).

    ``light`` is on the planning grid: the DEM (``factor`` 1) or its factor x factor blocks
    (``coarse_dem(dem, factor)``). With factor > 1 the block route is refined on the DEM
    (module docstring); block drive times are multiplied by ``detour`` (the fine route winds
    inside the blocks: 1.1 is an assumption; raise it when the refined route breaks a constraint).
    Infeasible plans (points off the DEM or blocked, no drivable connection, battery, contact,
    light window) come back with a reason.
    """
    rover = rover or RoverSpec()
    began = time.perf_counter()
    bp = battery_params(rover)
    common = {"step_h": light.step_h, "reserve_wh": float(bp[1]), "factor": factor, "start_utc": start_utc}
    if not detour >= 1.0:
        raise ModelConfigError(f"detour must be 1 or more, got {detour}")
    targets = [goal_lat_lon] if isinstance(goal_lat_lon[0], (int, float)) else list(goal_lat_lon)
    points = [("start", start_lat_lon)] + [(f"target {i + 1}" if i < len(targets) - 1 else "goal", p)
                                           for i, p in enumerate(targets)]
    ends = []
    for name, point in points:
        rc = _pixel(costs, *point)
        if rc is None:
            return SpacetimeResult(False, f"the {name} ({point[0]:g} deg, {point[1]:g} deg E) lies outside the DEM: "
                                          "choose a point inside it", **common)
        ends.append(rc)
    for i, (name, _) in enumerate(points):
        if costs.blocked[ends[i]]:
            return SpacetimeResult(False, _blocked_reason(costs, name, ends[i], ends[i - 1] if i else ends[1]),
                                   **common)
    for i in range(1, len(ends)):
        if not _connected(costs.blocked, ends[i - 1], ends[i]):
            return SpacetimeResult(False, f"{points[i - 1][0]} to {points[i][0]}: "
                                          + _unreachable_reason(costs, ends[i - 1], ends[i]), **common)
    speed = rover.mobility.speed_m_per_s
    if factor == 1:
        time_h = np.where(np.isfinite(costs.cost), costs.step_m / speed / 3600.0, np.inf)
    else:
        time_h = coarse_costs(costs, speed, factor) * detour
    cells = [(min(r // factor, time_h.shape[0] - 1), min(c // factor, time_h.shape[1] - 1)) for r, c in ends]
    for rc, fine_rc in zip(cells, ends, strict=True):  # a mostly blocked end block is still entered
        if not np.isfinite(time_h[rc]):
            time_h[rc] = factor * float(costs.step_m[fine_rc]) / speed / 3600.0
    result, schedules = None, []
    for i in range(1, len(cells)):
        prev = schedules[-1] if schedules else None
        leg = plan_on_grid(time_h, light, cells[i - 1], cells[i], rover,
                           start_h=float(prev.t_h[-1]) if prev else 0.0,
                           battery_wh=float(prev.battery_wh[-1]) if prev else None,
                           contact_h=prev.last_contact_h if prev else None,
                           haven_h=haven_h if i == len(cells) - 1 else 0.0)
        if not leg.feasible:
            if len(cells) > 2:
                leg.reason = f"{points[i - 1][0]} to {points[i][0]}: {leg.reason}"
            result = leg
            break
        schedules.append(leg.schedule)
        result = leg
    result.factor, result.start_utc = factor, start_utc
    if result.feasible:
        schedule = schedules[0]
        for later in schedules[1:]:
            schedule = schedule.then(later)
        result.schedule = schedule
        result.route = _refine(costs, schedules, ends, factor, speed)
        if result.route is None:
            result.feasible = False
            result.reason = ("the plan's corridor of planning blocks holds no drivable fine route: plan with a "
                             "smaller planning factor (--plan-factor)")
        elif factor > 1:
            along = _replan_along(result.route, light, factor, rover, haven_h, float(costs.step_m.min()))
            result.schedule = along.schedule
            if not along.feasible:
                result.feasible = False
                result.reason = (f"the block plan holds, but not along its refined route ({along.reason}): plan with "
                                 f"a smaller --plan-factor or a larger detour")
    result.runtime_s = time.perf_counter() - began
    return result


def _refine(costs: CostMap, schedules: list[Schedule], ends: list, factor: int, speed: float) -> Route | None:
    """The route on the DEM: through the plan's pixels (factor 1), or for each leg the static
    route inside the corridor of the blocks that leg visited (a block of margin)."""
    rows, cols = [], []
    for i, schedule in enumerate(schedules):
        if factor == 1:
            r, c = schedule.rows, schedule.cols
        else:
            visited = np.zeros((schedule.rows.max() + 3, schedule.cols.max() + 3), bool)
            visited[schedule.rows + 1, schedule.cols + 1] = True
            for margin in (0, 1):  # the blocks the plan drove through (their light), else a block wider
                corridor = scipy.ndimage.binary_dilation(visited, np.ones((3, 3), bool), iterations=margin) \
                    if margin else visited
                blocks = np.kron(corridor[1:, 1:], np.ones((factor, factor), bool))
                fine = np.zeros(costs.cost.shape, bool)
                h, w = min(blocks.shape[0], fine.shape[0]), min(blocks.shape[1], fine.shape[1])
                fine[:h, :w] = blocks[:h, :w]
                path = shortest_path(np.where(fine, costs.cost * costs.step_m, np.inf), ends[i], ends[i + 1], 16)
                if path.rows.size:
                    break
            if not path.rows.size:
                return None
            r, c = path.rows, path.cols
        rows.append(r if i == 0 else r[1:])
        cols.append(c if i == 0 else c[1:])
    r, c = np.concatenate(rows), np.concatenate(cols)
    moved = np.concatenate(([True], (np.diff(r) != 0) | (np.diff(c) != 0)))
    route = route_from_pixels(costs, r[moved], c[moved], speed)
    route.grid_cost = float(route.cum_cost[-1])
    return route


def _replan_along(route: Route, light: LightGrid, factor: int, rover: RoverSpec, haven_h: float,
                  spacing_m: float) -> SpacetimeResult:
    """The spatiotemporal plan along the refined route's fixed geometry: the route resampled
    every ``spacing_m`` (at most) into a chain of nodes, each under the light of its planning
    block, searched like a grid of one row (drive, wait, hibernate; same constraints)."""
    _, ny, nx = light.solar_w.shape
    length_m = float(route.distance_m[-1])
    n_nodes = max(2, math.ceil(length_m / spacing_m) + 1)
    along_m = np.linspace(0.0, length_m, n_nodes)
    rows = np.rint(np.interp(along_m, route.distance_m, route.rows)).astype(int)
    cols = np.rint(np.interp(along_m, route.distance_m, route.cols)).astype(int)
    block = (np.minimum(rows // factor, ny - 1), np.minimum(cols // factor, nx - 1))
    chain = LightGrid(light.solar_w[:, block[0], block[1]][:, None, :], light.contact[:, block[0], block[1]][:, None, :],
                      light.step_h, light.t0_tdb_s)
    node_h = length_m / (n_nodes - 1) / rover.mobility.speed_m_per_s / 3600.0
    result = plan_on_grid(np.full((1, n_nodes), node_h), chain, (0, 0), (0, n_nodes - 1), rover, haven_h=haven_h)
    if result.feasible:
        s = result.schedule
        s.rows, s.cols = rows[s.cols], cols[s.cols]
    return result


def site_light(dem: Dem, rover: RoverSpec, start_utc: str, days: float, step_h: float, factor: int, *,
               far_dem: Dem | None = None, max_distance_km: float = 150.0,
               lander: LanderSite | None = None) -> tuple[Dem, LightGrid]:
    """The planning grid (``dem`` in factor x factor blocks; ``dem`` itself for 1) and its
    light over ``days`` from ``start_utc`` in steps of ``step_h``: the horizon map of the
    planning grid (terrain to ``max_distance_km``, beyond ``dem`` from ``far_dem``; sites at
    the rover's antenna height), DE440 Sun and Earth tracks and :func:`light_grid` (contact
    through ``lander`` if given: its viewshed on ``dem``, in blocks by :func:`block_link`).
    Raises ModelConfigError for bad settings, EpochOutOfRangeError outside DE440.
    """
    from qamar.surface.horizon import coarse_dem, compute_horizon
    from qamar.surface.illumination import body_tracks, epochs_tdb_s
    from qamar.time import tdb_s_to_utc, utc_to_tdb_s

    if factor < 1:
        raise ModelConfigError(f"the planning factor must be 1 or more pixels, got {factor}")
    if not days > 0:
        raise ModelConfigError(f"--days must be positive, got {days}")
    grid = dem if factor == 1 else coarse_dem(dem, factor)
    horizon = compute_horizon(grid, far_dem=far_dem, max_distance_km=max_distance_km, progress=False,
                              observer_height_m=rover.comms.rover_antenna_height_m, allow_holes=True)
    stop_utc = tdb_s_to_utc(float(utc_to_tdb_s(start_utc)) + days * 86400.0, 0)
    tracks = body_tracks(epochs_tdb_s(start_utc, stop_utc, step_h))
    link = None
    if lander is not None and rover.comms.earth_link == "via_lander":
        link = lander_link(dem, lander, rover) if factor == 1 else block_link(dem, lander, rover, factor)
    return grid, light_grid(grid, horizon, tracks, rover, lander, link=link)


def auto_factor(shape: tuple[int, int], max_cells: int = 160) -> int:
    """The smallest block size giving a planning grid of at most ``max_cells`` per side (160: the
    14-day, 1 h benchmark on the 1600 x 1600 ridge DEM runs in seconds)."""
    return max(1, math.ceil(max(shape) / max_cells))


def plot_timeline(result: SpacetimeResult, path: str | Path) -> Path:
    """PNG of battery (with the reserve), array power and Earth contact along the plan."""
    from matplotlib.figure import Figure

    s = result.schedule
    hours = s.t_h - s.t_h[0]
    fig = Figure(figsize=(9, 5.5))
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    ax1.plot(hours, s.battery_wh, color="tab:blue")
    ax1.axhline(result.reserve_wh, color="tab:red", ls="--", lw=1, label="reserve")
    for w in _waits(s):
        ax1.axvspan(w["from_h"], w["from_h"] + w["hours"], color="0.85", lw=0)
    ax1.set_ylabel("battery (Wh)")
    ax1.legend(loc="lower left")
    ax1.set_title(f"rover plan from {result.start_utc or 't0'} (grey: waiting or hibernating)")
    ax2.step(hours, s.solar_w, where="pre", color="tab:orange")
    ax2.set_ylabel("array power (W)")
    ax3.step(hours, s.contact.astype(int), where="pre", color="tab:green")
    ax3.set_ylabel("Earth")
    ax3.set_yticks([0, 1], ["no", "yes"])
    ax3.set_xlabel("hours from start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)

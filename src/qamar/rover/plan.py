"""Static optimal route planning on a cost map: exact search on a 16-connected grid, then any-angle
shortcuts.

Graph. Nodes are pixel centres; a move goes to one of the 8 neighbours or one of the 8
knight's-move cells (16-connected, largest heading error 13.3 deg instead of 22.5 deg). A move
costs the line integral of the cost along its straight segment: ``w = cost * step_m`` (cost
per pixel step, per pixel) times the length of the segment inside each pixel it crosses. A
straight or diagonal move spends half its length in each end pixel, so it costs
``L (w_a + w_b) / 2`` (L = 1 or sqrt 2 pixels), the metric of scikit-image's MCP_Geometric; a
knight's move (L = sqrt 5) spends a quarter in each of the four pixels it crosses and is
allowed only if all four are drivable. A diagonal passes through a corner only, so it is
allowed between two blocked pixels that touch there (as in scikit-image).

Search. Bidirectional Dijkstra with A*-like potentials, compiled with numba (see
:func:`_search`): one search grows from the start, one from the goal (or from every goal
pixel, e.g. a PSR rim), each ordered by a bucket queue, until no path through the pixels
still queued can beat the best meeting found, so the result is the exact optimum. The
potentials use ``h(v) = min(w) x`` the length of the shortest chain of moves to an end
(consistent: no path is cheaper per pixel than the cheapest pixel), at 99 % so that every
reduced move costs at least 1 % of the cheapest step and each pixel is expanded once. On the
1600 x 1600 ridge benchmark (docs/benchmarks.md) the two searches expand 1.5 M pixels where the
previous one-sided A* (1/64-step buckets, decrease-key in doubly linked lists) expanded 2.2 M:
0.22 s of CPU instead of 0.27 s 8-connected, 0.32 s instead of 0.45 s 16-connected (bench
runs at load averages under 1). Per pixel it is slower (~140 ns against ~120 ns: two labels
per pixel, and the potentials), and pyastar2d and scikit-image stay within 2x and 5x of it.

Any-angle shortcuts. The grid route is then pulled straight: a vertex is dropped when the
straight segment that skips it crosses only drivable pixels and costs no more (the same line
integral) than the stretch of route it replaces, and passes repeat until nothing changes. The
result costs at most the grid optimum; on level ground it is the straight line, and its
length the distance on the surface (the ground length of each pixel step comes from the cost
map, i.e. from the map's true scale).

Route lengths are on the DEM's reference sphere (heights do not lengthen them); duration is
length over the rover's driving speed.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage
from numba import njit

from qamar.errors import ModelConfigError
from qamar.rover.model import RoverSpec
from qamar.rover.traverse import (
    BLOCK_REASONS,
    CRATER,
    KEEP_OUT,
    PSR,
    ROUGHNESS,
    SLOPE,
    CostMap,
)
from qamar.surface.terrain import lat_lon_to_xy, xy_to_lat_lon, xy_to_pixel

_PAD = 2  # inf border around the grid: the kernel needs no bounds checks for moves of up to 2 pixels
_SHORTCUT_WINDOW = 64  # vertices ahead tried per shortcut pass (passes repeat until nothing changes)
_SHORTCUT_TOLERANCE = 1e-9  # relative: a shortcut may not cost more than the stretch it replaces
_HEURISTIC_SHARE = 0.99  # potentials' weight, share of the cheapest pixel (closer to 1: tighter, more buckets)
_WIDTH_MARGIN = 1e-6  # bucket width this much under the cheapest reduced move, against rounding
_MAX_BUCKETS = 1 << 20  # per queue ring: the ring heads take at most 8 MB each
_FREE_PIXEL_BUCKETS = 64  # buckets per largest pixel cost when some pixels cost 0
_NO_MOVE = 31  # parent byte of a search's origin (moves are 0..15)
_QUEUED = 32  # added to the parent byte while the pixel waits in the queue


def _moves(connectivity: int) -> np.ndarray:
    """(dr, dc) of the moves, int64 (n, 2): 8 neighbours, then the 8 knight's moves."""
    if connectivity not in (8, 16):
        raise ModelConfigError(f"connectivity must be 8 or 16, got {connectivity}")
    moves = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
    if connectivity == 16:
        moves += [(dr, dc) for dr in (-2, -1, 1, 2) for dc in (-2, -1, 1, 2) if abs(dr) != abs(dc)]
    return np.array(moves, dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _grid_length(dr, dc, knight):
    """Length (pixels) of the shortest chain of moves spanning (dr, dc): the two moves whose
    headings bracket it, so a norm no longer than the straight line (the octile distance when 8-
    connected). A move's cost is at least its length times the cheapest pixel."""
    a, b = max(abs(dr), abs(dc)), min(abs(dr), abs(dc))
    if not knight:
        return a - b + math.sqrt(2.0) * b
    if 2 * b <= a:
        return a - 2 * b + math.sqrt(5.0) * b
    return (2 * b - a) * math.sqrt(2.0) + (a - b) * math.sqrt(5.0)


@njit(cache=True, nogil=True)
def _search(w, ncols, start, goals, moves, hw, width, max_w, cap):
    """Bidirectional Dijkstra on the padded flat grid ``w`` (cost per pixel step, inf = blocked,
    >= 0, largest finite value ``max_w``) with reduced costs, from pixel ``start`` and from the
    pixels ``goals`` (flat indices; a single one when ``hw`` > 0).

    Keys. With the potential p(v) = hw (L(v, goal) - L(v, start)), L the length of the shortest
    chain of moves (:func:`_grid_length`), the forward search orders pixels by
    g_s(v) + p(v) - p(start) and the backward one by g_t(v) - p(v) + p(goal): both are Dijkstra on
    the same graph of reduced move costs w(u, v) + p(v) - p(u) >= (w_min - 2 hw) |uv| >= 0 if
    2 hw <= w_min, the cheapest pixel (the average of the two A* potentials: Ikeda et al. 1994,
    Goldberg & Harrelson 2005).

    Queue. Each side has a bucket queue (Dial 1969): pixel v waits in bucket floor(key / width)
    of a ring longer than the largest key jump of one move; an improved pixel is pushed again
    and its older entries are skipped (a queued flag in the parent byte); entries come from a pool of
    ``cap`` that recycles popped ones. When ``width`` is at most the cheapest reduced move every
    pixel of the current bucket is final (Dinitz 1978), so a pixel expands once and the order
    inside a bucket does not matter; a wider bucket only makes some pixels expand again (label
    correcting), still exact.

    Meeting and stopping. mu is the cheapest g_s(v) + g_t(v) seen; the search stops when the
    two current bucket floors sum to at least mu in reduced terms (no path through a queued
    pixel can be cheaper), or when one side runs out (it has then settled every pixel that
    leads to it). The side with fewer queued entries goes next (Pohl 1971).

    Returns (meeting pixel, -1 if no path or -2 if the pool ran out; mu; parent moves, forward at
    2 v and backward at 2 v + 1; pixels expanded).
    """
    n = w.size
    nmoves = moves.shape[0]
    off = np.empty(nmoves, np.int64)
    weight = np.empty(nmoves)  # move length over the number of pixels sharing it
    via1 = np.zeros(nmoves, np.int64)  # the two pixels a knight's move crosses, as indices of the first 8 moves
    via2 = np.zeros(nmoves, np.int64)
    mdr, mdc = moves[:, 0].copy(), moves[:, 1].copy()
    for k in range(nmoves):
        dr, dc = moves[k, 0], moves[k, 1]
        off[k] = dr * ncols + dc
        weight[k] = 0.5 * math.sqrt(dr * dr + dc * dc)
        if abs(dr) + abs(dc) == 3:
            weight[k] *= 0.5
            r1, c1, r2, c2 = (0, dc // 2, dr, dc // 2) if abs(dc) == 2 else (dr // 2, 0, dr // 2, dc)
            for j in range(8):
                if moves[j, 0] == r1 and moves[j, 1] == c1:
                    via1[k] = j
                if moves[j, 0] == r2 and moves[j, 1] == c2:
                    via2[k] = j
    nb = 4
    while nb * width < 2.0 * math.sqrt(5.0) * (max_w + hw) + 4.0 * width:  # > the largest reduced move
        nb *= 2
    ring = nb - 1
    head = np.full(2 * nb, -1, np.int32)  # first entry of each bucket, forward ring then backward ring
    node = np.empty(cap, np.int32)  # queue entries (cap at most): pixel, next entry of the same bucket
    nxt = np.empty(cap, np.int32)
    free = -1  # recycled entries
    used = 0
    g = np.full(2 * n, np.inf)  # g_s(v) at 2 v, g_t(v) at 2 v + 1 (one cache line)
    parent = np.full(2 * n, _NO_MOVE, np.uint8)  # move that reached the pixel, + _QUEUED while it waits
    wn = np.empty(8)
    inv_width = 1.0 / width
    inv_ncols = 1.0 / ncols
    sr, sc = start // ncols, start % ncols
    tr, tc = (goals[0] // ncols, goals[0] % ncols) if hw > 0.0 else (sr, sc)
    knight = nmoves > 8
    span = _grid_length(tr - sr, tc - sc, knight)
    entries = np.zeros(2, np.int64)
    cur = np.zeros(2, np.int64)
    g[2 * start] = 0.0
    node[0], nxt[0], head[0], parent[2 * start] = start, -1, 0, _NO_MOVE + _QUEUED
    used, entries[0] = 1, 1
    for v in goals:
        g[2 * v + 1] = 0.0
        node[used], nxt[used], head[nb], parent[2 * v + 1] = v, head[nb], used, _NO_MOVE + _QUEUED
        used += 1
        entries[1] += 1
    mu = g[2 * start] + g[2 * start + 1]
    meet = start if mu < np.inf else -1
    expanded = 0
    while entries[0] > 0 and entries[1] > 0:
        for s in range(2):
            while head[s * nb + (cur[s] & ring)] < 0:
                cur[s] += 1
        if (cur[0] + cur[1]) * width >= mu - 2.0 * hw * span:
            break
        side = 0 if entries[0] <= entries[1] else 1
        cb = cur[side]
        sign, key0 = (1.0, -hw * span) if side == 0 else (-1.0, -hw * span)
        slot = side * nb + (cb & ring)
        while head[slot] >= 0:
            e = head[slot]
            u = node[e]
            head[slot] = nxt[e]
            nxt[e] = free
            free = e
            entries[side] -= 1
            if parent[2 * u + side] < _QUEUED:  # an older entry of a pixel pushed again
                continue
            parent[2 * u + side] -= _QUEUED
            expanded += 1
            gu = g[2 * u + side]
            wu = w[u]
            ur = np.int64((u + 0.5) * inv_ncols)  # u // ncols without a division (exact below 2**40)
            uc = u - ur * ncols
            for k in range(nmoves):  # the 8 neighbours, then the knight's moves
                v = u + off[k]
                if k < 8:
                    wn[k] = w[v]
                    gv = gu + weight[k] * (wu + wn[k])
                else:
                    gv = gu + weight[k] * (wu + wn[via1[k]] + wn[via2[k]] + w[v])
                if gv < g[2 * v + side]:  # false for blocked pixels (inf)
                    g[2 * v + side] = gv
                    if gv + g[2 * v + 1 - side] < mu:
                        mu = gv + g[2 * v + 1 - side]
                        meet = v
                    key = gv + key0
                    if hw > 0.0:
                        vr, vc = ur + mdr[k], uc + mdc[k]
                        key += sign * hw * (_grid_length(vr - tr, vc - tc, knight)
                                            - _grid_length(vr - sr, vc - sc, knight))
                    b = max(np.int64(key * inv_width), cb)
                    if free >= 0:
                        f = free
                        free = nxt[f]
                    elif used < cap:
                        f = used
                        used += 1
                    else:  # the caller retries with a larger pool
                        return -2, mu, parent, expanded
                    node[f] = v
                    nxt[f] = head[side * nb + (b & ring)]
                    head[side * nb + (b & ring)] = f
                    parent[2 * v + side] = k + _QUEUED
                    entries[side] += 1
    return meet, mu, parent, expanded


@njit(cache=True, nogil=True)
def _trace(parent, moves, ncols, meet):
    """Pixels (flat, padded) of the path through ``meet``: back to the start along the forward
    parent moves (``parent[2 v]``), on to a goal along the backward ones (``parent[2 v + 1]``)."""
    length = np.zeros(2, np.int64)
    for side in range(2):
        u = meet
        while parent[2 * u + side] % _QUEUED != _NO_MOVE:
            k = parent[2 * u + side] % _QUEUED
            u -= moves[k, 0] * ncols + moves[k, 1]
            length[side] += 1
    path = np.empty(length[0] + length[1] + 1, np.int64)
    path[length[0]] = meet
    for side, step in ((0, -1), (1, 1)):
        u, i = meet, length[0]
        for _ in range(length[side]):
            k = parent[2 * u + side] % _QUEUED
            u -= moves[k, 0] * ncols + moves[k, 1]
            i += step
            path[i] = u
    return path


@njit(cache=True, fastmath=False, nogil=True)
def _segment(w, step_m, slope_deg, ncols, r0, c0, r1, c1):
    """Line integral along the straight segment between two pixel centres (padded grid):
    (cost, ground length m, largest slope deg of the pixels crossed); cost inf if it crosses a
    blocked pixel. Pixels are walked exactly (integer arithmetic decides which boundary comes
    first; through a corner both indices step and neither side pixel is crossed)."""
    dr, dc = r1 - r0, c1 - c0
    adr, adc = abs(dr), abs(dc)
    sr, sc = (1 if dr > 0 else -1), (1 if dc > 0 else -1)
    length_px = math.sqrt(dr * dr + dc * dc)
    r, c = r0, c0
    kr, kc = 0, 0  # boundaries crossed so far along rows / columns
    t0 = 0.0
    cost = 0.0
    ground = 0.0
    worst = 0.0
    while True:
        u = r * ncols + c
        if not w[u] < np.inf:
            return np.inf, 0.0, 0.0
        worst = max(worst, slope_deg[u])
        # next crossings at t = (2k + 1) / (2 |d|); compare (2kc + 1) adr with (2kr + 1) adc
        col_next = (2 * kc + 1) * adr if kc < adc else -1
        row_next = (2 * kr + 1) * adc if kr < adr else -1
        if col_next < 0 and row_next < 0:
            t1 = 1.0
        elif row_next < 0 or (col_next >= 0 and (2 * kc + 1) * adr < (2 * kr + 1) * adc):
            t1 = (2 * kc + 1) / (2.0 * adc)
        else:
            t1 = (2 * kr + 1) / (2.0 * adr)
        cost += w[u] * (t1 - t0) * length_px
        ground += step_m[u] * (t1 - t0) * length_px
        if t1 >= 1.0:
            return cost, ground, worst
        if kc < adc and kr < adr and (2 * kc + 1) * adr == (2 * kr + 1) * adc:
            kc += 1
            kr += 1
            c += sc
            r += sr
        elif row_next < 0 or (col_next >= 0 and (2 * kc + 1) * adr < (2 * kr + 1) * adc):
            kc += 1
            c += sc
        else:
            kr += 1
            r += sr
        t0 = t1


@njit(cache=True, fastmath=False, nogil=True)
def _shortcut_pass(w, step_m, slope_deg, ncols, rows, cols, window, tolerance):
    """One greedy pass: from each kept vertex jump to the farthest vertex within ``window``
    whose straight segment is drivable and costs no more than the route it replaces."""
    n = rows.size
    cum = np.zeros(n)
    for i in range(1, n):
        cum[i] = cum[i - 1] + _segment(w, step_m, slope_deg, ncols, rows[i - 1], cols[i - 1], rows[i], cols[i])[0]
    keep = np.zeros(n, np.bool_)
    keep[0] = True
    i = 0
    while i < n - 1:
        best = i + 1
        for j in range(i + 2, min(n, i + window + 1)):
            cost = _segment(w, step_m, slope_deg, ncols, rows[i], cols[i], rows[j], cols[j])[0]
            if cost == np.inf:
                break
            if cost <= (cum[j] - cum[i]) * (1.0 + tolerance):
                best = j
        keep[best] = True
        i = best
    return keep


@dataclass(frozen=True)
class GridPath:
    """An optimal grid path: pixel ``rows``/``cols`` (int, start to goal), its ``cost`` (the sum
    of move costs, in the grid's cost units), pixels ``expanded``; cost inf and empty arrays if
    no path exists."""

    rows: np.ndarray
    cols: np.ndarray
    cost: float
    expanded: int


def _padded(values: np.ndarray, fill: float) -> np.ndarray:
    return np.pad(np.asarray(values, dtype=np.float64), _PAD, constant_values=fill)


@njit(cache=True, nogil=True)
def _cost_range(w):
    """(smallest finite value, largest finite value, whether any is NaN or negative) of ``w``;
    (inf, 0, ...) if none is finite."""
    low, high, bad = np.inf, 0.0, False
    for x in w.ravel():
        if x < np.inf:
            low = min(low, x)
            high = max(high, x)
        bad |= not x >= 0.0
    return low, high, bad


def shortest_path(w: np.ndarray, start: tuple[int, int], goal: tuple[int, int] | np.ndarray,
                  connectivity: int = 16) -> GridPath:
    """Optimal path on a grid of costs per pixel step ``w`` (ny, nx; >= 0, inf = blocked)
    from pixel ``start`` (row, col) to pixel ``goal`` or to the nearest of the pixels set in a
    bool mask ``goal`` (ny, nx). The metric is in the module docstring. Raises ModelConfigError
    for negative or NaN costs, a bad connectivity or a start outside the grid."""
    w = np.ascontiguousarray(w, dtype=np.float64)
    low, high, bad = _cost_range(w)
    if bad:
        raise ModelConfigError("path costs must be 0 or more (inf for blocked pixels), without NaN")
    moves = _moves(connectivity)
    ny, nx = w.shape
    ncols = nx + 2 * _PAD
    if not (0 <= start[0] < ny and 0 <= start[1] < nx):
        raise ModelConfigError(f"start pixel {start} is outside the {ny} x {nx} grid")
    if not np.isfinite(w[start[0], start[1]]):
        return GridPath(np.empty(0, int), np.empty(0, int), math.inf, 0)
    start_i = (start[0] + _PAD) * ncols + start[1] + _PAD
    if isinstance(goal, np.ndarray):
        rows, cols = np.nonzero(goal)
        hw = 0.0  # no single pixel to aim at: plain bidirectional Dijkstra
    else:
        rows, cols = np.array([goal[0]]), np.array([goal[1]])
        hw = _HEURISTIC_SHARE * low / 2.0
    goals = ((rows + _PAD) * ncols + cols + _PAD).astype(np.int64)
    # Buckets as wide as the cheapest reduced move (each pixel then expands once); with free pixels
    # (cost 0) or wild cost ranges, wider ones (some pixels then expand again, still exact).
    exact_width = (low - 2.0 * hw) * (1.0 - _WIDTH_MARGIN) if low > 0.0 else high / _FREE_PIXEL_BUCKETS
    width = max(exact_width, 2.0 * math.sqrt(5.0) * (high + hw) / _MAX_BUCKETS) or 1.0
    wp = _padded(w, np.inf).ravel()
    meet, cap = -2, wp.size + 1024  # queue entries: the live ones, a few per pixel of the two wavefronts
    while meet == -2:
        meet, cost, parent, expanded = _search(wp, ncols, start_i, goals, moves, hw, width, high, cap)
        cap *= 4
    if meet < 0:
        return GridPath(np.empty(0, int), np.empty(0, int), math.inf, int(expanded))
    path = _trace(parent, moves, ncols, meet)
    return GridPath(path // ncols - _PAD, path % ncols - _PAD, float(cost), int(expanded))


@dataclass
class Route:
    """A planned traverse, or why there is none.

    Vertices (start to goal; a straight drive between consecutive ones): pixel ``rows``/
    ``cols``, map ``x``/``y`` (DEM CRS units), ``lat_deg``/``lon_deg`` (ME), ``elevation_m``,
    cumulative ``distance_m`` (on the sphere) and ``cost`` (equivalent level metres), and
    ``max_slope_deg`` of the pixels crossed since the previous vertex. ``grid_cost`` is the
    optimum on the 16-connected grid, ``cost`` that of the route after shortcuts (<=).
    """

    feasible: bool
    reason: str | None = None
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    cols: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    x: np.ndarray = field(default_factory=lambda: np.empty(0))
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    lat_deg: np.ndarray = field(default_factory=lambda: np.empty(0))
    lon_deg: np.ndarray = field(default_factory=lambda: np.empty(0))
    elevation_m: np.ndarray = field(default_factory=lambda: np.empty(0))
    distance_m: np.ndarray = field(default_factory=lambda: np.empty(0))
    cum_cost: np.ndarray = field(default_factory=lambda: np.empty(0))
    segment_max_slope_deg: np.ndarray = field(default_factory=lambda: np.empty(0))
    grid_cost: float = math.inf
    expanded: int = 0
    speed_m_per_s: float = math.nan
    runtime_s: float = 0.0
    crs: str = ""
    proj4: str = ""

    @property
    def length_m(self) -> float:
        """Ground length on the sphere (m); NaN if infeasible."""
        return float(self.distance_m[-1]) if self.feasible else math.nan

    @property
    def duration_h(self) -> float:
        """Driving time at the rover's speed (h); NaN if infeasible."""
        return self.length_m / self.speed_m_per_s / 3600.0

    @property
    def max_slope_deg(self) -> float:
        """Steepest pixel crossed (deg, at the rover's scale); NaN if infeasible."""
        return float(self.segment_max_slope_deg.max()) if self.feasible else math.nan

    def summary(self) -> dict:
        """The route.json document: feasible, reason, length_m, duration_h, max_slope_deg, cost..."""
        doc = {"feasible": self.feasible, "reason": self.reason}
        if self.feasible:
            doc.update({
                "length_m": round(self.length_m, 3), "duration_h": round(self.duration_h, 4),
                "max_slope_deg": round(self.max_slope_deg, 3), "cost": round(float(self.cum_cost[-1]), 3),
                "grid_cost": round(self.grid_cost, 3), "vertices": int(self.rows.size),
                "start": {"lat_deg": float(self.lat_deg[0]), "lon_deg": float(self.lon_deg[0])},
                "goal": {"lat_deg": float(self.lat_deg[-1]), "lon_deg": float(self.lon_deg[-1])},
            })
        else:
            doc.update({"length_m": None, "duration_h": None, "max_slope_deg": None})
        doc.update({"expanded_pixels": self.expanded, "runtime_s": round(self.runtime_s, 4)})
        return doc

    def write_geojson(self, path: str | Path, properties: dict | None = None) -> Path:
        """The route as a GeoJSON LineString in the DEM's map coordinates (CRS named, and as a
        PROJ string, in a ``crs`` member), with per-vertex lat/lon, distance and elevation as properties."""
        feature = {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": np.column_stack([self.x, self.y]).tolist()},
            "properties": {**self.summary(), **(properties or {}),
                           "vertex_lat_deg": self.lat_deg.tolist(), "vertex_lon_deg": self.lon_deg.tolist(),
                           "vertex_distance_m": self.distance_m.tolist(),
                           "vertex_elevation_m": self.elevation_m.tolist()},
        }
        doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": self.crs,
                                                                                  "proj4": self.proj4}},
               "features": [feature] if self.feasible else []}
        Path(path).write_text(json.dumps(doc, indent=1))
        return Path(path)

    def write_csv(self, path: str | Path) -> Path:
        """One row per vertex: map x/y, lat/lon, elevation, cumulative distance, cost and
        driving time, largest slope since the previous vertex."""
        with open(path, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["vertex", "x_m", "y_m", "lat_deg", "lon_deg", "elevation_m", "distance_m", "cost",
                          "elapsed_h", "max_slope_deg"])
            for i in range(self.rows.size):
                out.writerow([i, f"{self.x[i]:.3f}", f"{self.y[i]:.3f}", f"{self.lat_deg[i]:.8f}",
                              f"{self.lon_deg[i]:.8f}", f"{self.elevation_m[i]:.2f}", f"{self.distance_m[i]:.3f}",
                              f"{self.cum_cost[i]:.3f}", f"{self.distance_m[i] / self.speed_m_per_s / 3600:.4f}",
                              f"{self.segment_max_slope_deg[i]:.3f}"])
        return Path(path)


def _shortcuts(costs: CostMap, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w, step, slope, ncols = _padded_maps(costs)
    r, c = rows + _PAD, cols + _PAD
    while r.size > 2:
        keep = _shortcut_pass(w, step, slope, ncols, r, c, _SHORTCUT_WINDOW, _SHORTCUT_TOLERANCE)
        if keep.all():
            break
        r, c = r[keep], c[keep]
    return r - _PAD, c - _PAD


def _padded_maps(costs: CostMap):
    w = _padded(costs.cost * costs.step_m, np.inf).ravel()
    step = _padded(costs.step_m, 0.0).ravel()
    slope = _padded(np.nan_to_num(costs.slope_deg), 0.0).ravel()
    return w, step, slope, costs.cost.shape[1] + 2 * _PAD


def route_from_pixels(costs: CostMap, rows: np.ndarray, cols: np.ndarray, speed_m_per_s: float) -> Route:
    """A Route through the pixel centres ``rows``/``cols`` (straight drives between them)."""
    w, step, slope, ncols = _padded_maps(costs)
    n = rows.size
    distance, cum, worst = np.zeros(n), np.zeros(n), np.zeros(n)
    worst[0] = np.nan_to_num(costs.slope_deg[rows[0], cols[0]])
    for i in range(1, n):
        c, d, s = _segment(w, step, slope, ncols, rows[i - 1] + _PAD, cols[i - 1] + _PAD, rows[i] + _PAD,
                           cols[i] + _PAD)
        cum[i], distance[i], worst[i] = cum[i - 1] + c, distance[i - 1] + d, s
    x, y = _centre_xy(costs, rows, cols)
    lat, lon = xy_to_lat_lon(x, y, costs.dem)
    return Route(True, None, rows, cols, x, y, lat, lon, costs.dem.elevation_m[rows, cols].astype(np.float64),
                 distance, cum, worst, speed_m_per_s=speed_m_per_s, crs=costs.dem.crs.to_string(),
                 proj4=costs.dem.crs.to_proj4())


def _pixel(costs: CostMap, lat_deg: float, lon_deg: float) -> tuple[int, int] | None:
    """(row, col) of a point, None outside the DEM."""
    x, y = lat_lon_to_xy(lat_deg, lon_deg, costs.dem)
    row_f, col_f = xy_to_pixel(x, y, costs.dem)
    row, col = int(np.floor(float(row_f) + 0.5)), int(np.floor(float(col_f) + 0.5))
    ny, nx = costs.dem.shape
    return (row, col) if 0 <= row < ny and 0 <= col < nx else None


def _components(blocked: np.ndarray) -> np.ndarray:
    """8-connected drivable regions (a knight's move needs its crossed pixels drivable, so it
    never joins two of them)."""
    return scipy.ndimage.label(blocked == 0, structure=np.ones((3, 3), bool))[0]


def _slope_limit_that_connects(costs: CostMap, a: tuple[int, int], b: tuple[int, int]) -> float | None:
    """Smallest slope limit (deg, 0.1 deg up) under which a and b are drivable and connected,
    other constraints unchanged; None if no limit below 90 deg connects them."""
    others = costs.blocked & ~np.uint8(SLOPE)
    slope = np.nan_to_num(costs.slope_deg, nan=90.0)

    def connects(limit: float) -> bool:
        labels = _components(others | (slope > limit).astype(np.uint8))
        return labels[a] > 0 and labels[a] == labels[b]

    lo, hi = costs.max_slope_deg, 89.9
    if not connects(hi):
        return None
    while hi - lo > 0.05:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if connects(mid) else (mid, hi)
    return math.ceil(hi * 10) / 10


def _centre_xy(costs: CostMap, rows, cols):
    """Map x, y of pixel centres (rows, cols: ints or int arrays)."""
    t = costs.dem.transform
    return t.c + t.a * (np.asarray(cols) + 0.5), t.f + t.e * (np.asarray(rows) + 0.5)


def _where(costs: CostMap, rc: tuple[int, int]) -> str:
    x, y = _centre_xy(costs, *rc)
    lat, lon = xy_to_lat_lon(x, y, costs.dem)
    return f"{float(lat):.5f} deg, {float(lon):.5f} deg E"


_LIFT = {  # how a user drops each constraint (slope: --max-slope-deg, searched separately)
    ROUGHNESS: "raise mobility.max_roughness_m in the rover file",
    CRATER: "plan with --no-craters (or a smaller mobility.crater_margin in the rover file)",
    KEEP_OUT: "shrink or drop the --keep-out zones",
    PSR: "use --psr-mode target (or no --psr)",
}


def _blocked_reason(costs: CostMap, name: str, rc: tuple[int, int], other: tuple[int, int] | None) -> str:
    """Why an end point is blocked and what to change."""
    reasons = costs.reasons(*rc)
    text = f"the {name} ({_where(costs, rc)}, pixel {rc[0]}, {rc[1]}) is on a blocked pixel: {', '.join(reasons)}"
    if costs.blocked[rc] & SLOPE:
        text += f" ({costs.slope_deg[rc]:.1f} deg > {costs.max_slope_deg:g} deg)"
    labels = _components(costs.blocked)
    target = labels == labels[other] if other is not None and labels[other] > 0 else labels > 0
    if target.any():
        _, (ri, ci) = scipy.ndimage.distance_transform_edt(~target, return_indices=True)
        near = (int(ri[rc]), int(ci[rc]))
        gap_m = math.hypot(near[0] - rc[0], near[1] - rc[1]) * float(costs.step_m[rc])
        text += (f"; the nearest drivable pixel{' connected to the other end' if other is not None else ''} is "
                 f"{_where(costs, near)}, {gap_m:.0f} m away")
    if costs.blocked[rc] == SLOPE and other is not None:
        limit = _slope_limit_that_connects(costs, rc, other)
        if limit is not None:
            text += f"; or raise --max-slope-deg to {limit:g}"
    hints = [hint for bit, hint in _LIFT.items() if costs.blocked[rc] & bit]
    if hints:
        text += "; or " + ", or ".join(hints)
    return text


def _connected(blocked: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> bool:
    labels = _components(blocked)
    return bool(labels[a] > 0 and labels[a] == labels[b])


def _unreachable_reason(costs: CostMap, start: tuple[int, int], goal: tuple[int, int]) -> str:
    """What encloses the start's drivable region (the blocked pixels on its rim), and which
    change would open a way: a slope limit, or dropping one other constraint."""
    labels = _components(costs.blocked)
    region = labels == labels[start]
    rim = scipy.ndimage.binary_dilation(region, structure=np.ones((3, 3), bool)) & ~region
    bits = int(np.bitwise_or.reduce(costs.blocked[rim])) if rim.any() else 0
    what = [text for bit, text in BLOCK_REASONS.items() if bits & bit] or ["the edge of the DEM"]
    text = f"no route: the start's drivable region is enclosed by pixels with: {'; '.join(what)}"
    fixes = [hint for bit, hint in _LIFT.items()
             if bits & bit and _connected(costs.blocked & ~np.uint8(bit), start, goal)]
    limit = _slope_limit_that_connects(costs, start, goal)
    if limit is not None:
        fixes.insert(0, f"raise the slope limit to {limit:g} deg (--max-slope-deg {limit:g})")
    if fixes:
        return text + "; to connect start and goal: " + ", or ".join(fixes)
    return text + "; no single change connects them: move the start or goal, or relax several constraints"


def plan_route(
    costs: CostMap,
    start_lat_lon: tuple[float, float],
    goal_lat_lon: tuple[float, float] | None,
    rover: RoverSpec | None = None,
    *,
    connectivity: int = 16,
    shortcuts: bool = True,
) -> Route:
    """The cheapest route from ``start_lat_lon`` to ``goal_lat_lon`` (ME, deg), or with goal
    None to the nearest drivable pixel at the rim of a PSR (cost map built with psr_mode
    'target'). An infeasible route (start or goal outside the DEM, on a blocked pixel, or cut
    off) comes back with ``feasible`` False and a ``reason`` that says what to change."""
    rover = rover or RoverSpec()
    began = time.perf_counter()
    speed = rover.mobility.speed_m_per_s
    ny, nx = costs.dem.shape
    ends = {}
    for name, point in (("start", start_lat_lon), ("goal", goal_lat_lon)):
        if point is None:
            continue
        if not -90 <= point[0] <= 90:
            raise ModelConfigError(f"the {name} latitude {point[0]:g} deg is outside -90..90")
        rc = _pixel(costs, *point)
        if rc is None:
            return Route(False, f"the {name} ({point[0]:g} deg, {point[1]:g} deg E) lies outside the DEM "
                                f"({ny} x {nx} pixels): choose a point inside it or a DEM that covers it",
                         speed_m_per_s=speed)
        ends[name] = rc
    start = ends["start"]
    goal = ends.get("goal")
    if goal is None:
        targets = costs.psr_edge()
        if not targets.any():
            return Route(False, "no PSR rim to drive to: give a PSR raster with psr_mode 'target' (--psr FILE "
                                "--psr-mode target) that has drivable pixels next to a PSR, or a goal point",
                         speed_m_per_s=speed)
    for name, rc, other in (("start", start, goal), ("goal", goal, start)):
        if rc is not None and costs.blocked[rc]:
            return Route(False, _blocked_reason(costs, name, rc, other), speed_m_per_s=speed)
    w = costs.cost * costs.step_m
    path = shortest_path(w, start, goal if goal is not None else targets, connectivity)
    if not path.rows.size:
        reason = (_unreachable_reason(costs, start, goal) if goal is not None else
                  "no PSR rim is reachable from the start: move the start or raise --max-slope-deg")
        return Route(False, reason, expanded=path.expanded, speed_m_per_s=speed,
                     runtime_s=time.perf_counter() - began)
    rows, cols = _shortcuts(costs, path.rows, path.cols) if shortcuts else (path.rows, path.cols)
    route = route_from_pixels(costs, rows, cols, speed)
    route.grid_cost = path.cost
    route.expanded = path.expanded
    route.runtime_s = time.perf_counter() - began
    return route


"""Static optimal route planning on a cost map: exact search on a 16-connected grid, then any-angle
shortcuts.

Grid search. :func:`qamar.rover.gridsearch.shortest_path` finds the exact optimum on the
16-connected grid (largest heading error 13.3 deg instead of 22.5 deg when 8-connected): a
move costs the line integral of ``w = cost * step_m`` (cost per pixel step, per pixel) along
its straight segment, the metric of scikit-image's MCP_Geometric for the 8 neighbours.

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
from qamar.rover.gridsearch import shortest_path
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

_PAD = 2  # inf border around the grid: segment walks need no bounds checks
_SHORTCUT_WINDOW = 64  # vertices ahead tried per shortcut pass (passes repeat until nothing changes)
_SHORTCUT_TOLERANCE = 1e-9  # relative: a shortcut may not cost more than the stretch it replaces


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


def _padded(values: np.ndarray, fill: float) -> np.ndarray:
    return np.pad(np.asarray(values, dtype=np.float64), _PAD, constant_values=fill)


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


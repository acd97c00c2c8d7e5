"""Viewsheds on a lunar DEM: which pixels an antenna can see in a straight line (issue 6, item 5).

An observer antenna stands ``observer_height_m`` above the ground at a point of the DEM; a target
antenna stands ``target_height_m`` above the ground at each pixel centre within ``max_range_m``.
A target is visible when the straight 3-D segment between the two antennas passes above the
terrain everywhere between them.

Geometry (exact on the DEM's sphere, no flat-Moon or refraction correction). Antennas are ME
Cartesian points (R + h) u, with R the DEM's sphere radius (``dem.radius_m``), h the height above
it and u the pixel's unit vector; the Moon's curvature is therefore in the geometry, not added
as a d^2/2R term. Range is the arc length R x angle between the observer's and the target's
unit vectors (distances on the DEM's sphere, as :mod:`qamar.surface.terrain`).

Terrain along a ray (the algorithm). The terrain between the antennas is taken at every
crossing of the straight map line from observer to target with the lines of pixel centres
(rows and columns): there the terrain height is linear between the two pixels on either side of
the crossing, which is exact for a DEM read as linear along its grid lines (the model of the R3
viewshed algorithm, Franklin and Ray 1994, "Higher isn't necessarily better: visibility
algorithms and experiments"). At each crossing with unit vector q the segment's point in
direction q (its intersection with the ray from the Moon's centre through q, in the plane of the
two antennas and the centre) is compared with the terrain radius R + h (a 2-D cross product in
that plane): the target is hidden when the segment is at or below the terrain at any crossing. A straight map line is not exactly the
great circle under the segment: on a polar stereographic map it departs from it by at most
d^2 rho / (16 R^2) for a ray of length d at distance rho from the pole (geodesic curvature
rho / (2 R^2), see :mod:`qamar.surface.horizon`): 0.1 m for d = 10 km at rho = 50 km, a
hundredth of a 10 m pixel. The observer's and the target's own pixels are not crossings (the
antennas stand on them).

No data. A target pixel without data is :data:`NODATA` (never visible). A ray that crosses a
no-data pixel is, by default (``holes_block=True``, conservative for planning a radio link),
:data:`HOLE_ON_PATH` (not visible) unless terrain with data already hides it (:data:`HIDDEN`);
``holes_block=False`` ignores the holes (they hide nothing). Pixels beyond the range are
:data:`OUT_OF_RANGE`. Nothing is filled.

Speed: one ray per target pixel, numba-compiled and parallel over rows; a ray costs one step
per pixel row and column it crosses (up to 2 d/p for range d on pixels of size p; a hidden ray
stops at its first blocking crossing), so a viewshed costs up to pi (d/p)^2 x 2 d/p steps. On the
1600 x 1600 10 m ridge DEM from a lander on a crest: 0.1 s to 1 km, 2.4 s to 5 km, 7.5 s for the
whole DEM (2 cores at a load of 3.6, 2026-11-22).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from qamar.errors import ModelConfigError
from qamar.surface.terrain import Dem, lat_lon_to_xy, map_to_unit, xy_to_pixel

HIDDEN = 0  # the segment meets the terrain
VISIBLE = 1  # the segment clears the terrain at every crossing
OUT_OF_RANGE = 2  # farther than max_range_m (arc length on the DEM's sphere)
HOLE_ON_PATH = 3  # clear of the terrain with data, but crosses a no-data pixel (holes_block=True)
NODATA = 255  # the target pixel has no data


@njit(cache=True, fastmath=False, nogil=True)
def _grid_height(elev, i0, j0, w, along_rows):
    """Height at a crossing: linear between pixel (i0, j0) and the next pixel down (``along_rows``:
    (i0 + 1, j0)) or right ((i0, j0 + 1)) with weight ``w``; NaN if a pixel used has no data.
    Indices outside the grid are clamped (an observer on the grid's outer half pixel)."""
    ny, nx = elev.shape
    i1, j1 = (i0 + 1, j0) if along_rows else (i0, j0 + 1)
    i0, j0 = min(max(i0, 0), ny - 1), min(max(j0, 0), nx - 1)
    i1, j1 = min(max(i1, 0), ny - 1), min(max(j1, 0), nx - 1)
    if w == 0.0:
        return elev[i0, j0]
    return (1.0 - w) * elev[i0, j0] + w * elev[i1, j1]


@njit(cache=True, fastmath=False, nogil=True)
def _blocks(q, e1, e2, ro, t1, t2, terrain_r):
    """True if the terrain point ``terrain_r`` q (m, q a unit vector) is on or above the segment
    from (ro, 0) to (t1, t2) (coordinates in the plane basis e1, e2 through the Moon's centre):
    on the side of the segment's line away from the centre (2-D cross product, no division)."""
    p1 = terrain_r * (q[0] * e1[0] + q[1] * e1[1] + q[2] * e1[2])
    p2 = terrain_r * (q[0] * e2[0] + q[1] * e2[1] + q[2] * e2[2])
    return (t1 - ro) * p2 - t2 * (p1 - ro) <= 0.0  # the centre gives t2 ro > 0


@njit(cache=True, fastmath=False, nogil=True)
def _trace(elev, p, tr, radius_m, orow, ocol, o_vec, row, col, t_vec, holes_block):
    """Visibility code of the target antenna ``t_vec`` at pixel (row, col) from ``o_vec`` (ME m)
    at fractional pixel (orow, ocol): the crossings of the map line with pixel rows and columns."""
    ro = math.sqrt(o_vec[0] ** 2 + o_vec[1] ** 2 + o_vec[2] ** 2)
    e1 = o_vec / ro
    t1 = t_vec[0] * e1[0] + t_vec[1] * e1[1] + t_vec[2] * e1[2]
    v = t_vec - t1 * e1
    t2 = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    if t2 < 1e-9 * ro:  # the observer's own spot
        return VISIBLE
    e2 = v / t2
    q = np.empty(3)
    hole = False
    dr, dc = row - orow, col - ocol
    for along_rows in (True, False):  # column crossings (interpolate down a column), then row crossings
        a, d = (ocol, dc) if along_rows else (orow, dr)
        if abs(d) < 1e-12:
            continue
        lo, hi = (a, a + d) if d > 0 else (a + d, a)
        k0 = math.floor(lo) + 1
        k1 = math.ceil(hi) - 1
        for k in range(k0, k1 + 1):
            s = (k - a) / d
            if along_rows:
                fr, fc = orow + s * dr, float(k)
                i0 = math.floor(fr)
                h = _grid_height(elev, i0, k, fr - i0, True)
            else:
                fr, fc = float(k), ocol + s * dc
                j0 = math.floor(fc)
                h = _grid_height(elev, k, j0, fc - j0, False)
            if math.isnan(h):
                hole = True
                continue
            q[0], q[1], q[2] = map_to_unit(tr[0] + tr[1] * (fc + 0.5), tr[2] + tr[3] * (fr + 0.5), p)
            if _blocks(q, e1, e2, ro, t1, t2, radius_m + h):
                return HIDDEN
    return HOLE_ON_PATH if hole and holes_block else VISIBLE


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _viewshed_kernel(elev, p, tr, radius_m, orow, ocol, o_vec, target_height_m, cos_range, holes_block, out):
    ny, nx = elev.shape
    o_norm = math.sqrt(o_vec[0] ** 2 + o_vec[1] ** 2 + o_vec[2] ** 2)
    for r in prange(ny):
        t_vec = np.empty(3)
        for c in range(nx):
            ux, uy, uz = map_to_unit(tr[0] + tr[1] * (c + 0.5), tr[2] + tr[3] * (r + 0.5), p)
            if (ux * o_vec[0] + uy * o_vec[1] + uz * o_vec[2]) / o_norm < cos_range:  # cos resolves 2 cm on the Moon
                out[r, c] = OUT_OF_RANGE
                continue
            h = elev[r, c]
            if math.isnan(h):
                out[r, c] = NODATA
                continue
            rt = radius_m + h + target_height_m
            t_vec[0], t_vec[1], t_vec[2] = rt * ux, rt * uy, rt * uz
            out[r, c] = _trace(elev, p, tr, radius_m, orow, ocol, o_vec, r, c, t_vec, holes_block)


def observer_pixel(dem: Dem, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Fractional (row, col) of a point (pixel centres at integers); ModelConfigError outside the DEM."""
    x, y = lat_lon_to_xy(lat_deg, lon_deg, dem)
    row, col = (float(v) for v in xy_to_pixel(x, y, dem))
    ny, nx = dem.shape
    if not (-0.5 <= row < ny - 0.5 and -0.5 <= col < nx - 0.5):
        raise ModelConfigError(f"the observer ({lat_deg:g} deg, {lon_deg:g} deg E) lies outside the DEM: "
                               "choose a point inside it or a DEM that covers it")
    return row, col


def viewshed(dem: Dem, observer_lat_lon: tuple[float, float] | None = None, *,
             observer_rc: tuple[int, int] | None = None, observer_height_m: float, target_height_m: float,
             max_range_m: float = math.inf, holes_block: bool = True) -> np.ndarray:
    """Visibility of every pixel of ``dem`` from an observer antenna (module docstring).

    The observer is a point ``observer_lat_lon`` (planetocentric ME deg) or a pixel
    ``observer_rc`` (row, col); its antenna stands ``observer_height_m`` above the ground of the
    pixel it lies in, each target's ``target_height_m`` above its pixel centre. Returns uint8
    (ny, nx): :data:`VISIBLE`, :data:`HIDDEN`, :data:`OUT_OF_RANGE` (arc distance over
    ``max_range_m``), :data:`HOLE_ON_PATH` (with ``holes_block``) or :data:`NODATA`.
    Raises ModelConfigError for an observer outside the DEM or on a no-data pixel, bad heights
    or range, or a projection the compiled kernels do not handle.
    """
    if (observer_lat_lon is None) == (observer_rc is None):
        raise ModelConfigError("give the observer as observer_lat_lon=(lat, lon) or observer_rc=(row, col), one of them")
    if dem.projection.kind == "other":
        raise ModelConfigError("viewsheds need a polar stereographic or equirectangular DEM: warp it with gdalwarp")
    if not (observer_height_m >= 0 and target_height_m >= 0):
        raise ModelConfigError(f"antenna heights must be 0 m or more, got {observer_height_m} and {target_height_m}")
    if not max_range_m > 0:
        raise ModelConfigError(f"max_range_m must be positive, got {max_range_m}")
    ny, nx = dem.shape
    if observer_rc is not None:
        orow, ocol = float(observer_rc[0]), float(observer_rc[1])
        if not (0 <= observer_rc[0] < ny and 0 <= observer_rc[1] < nx):
            raise ModelConfigError(f"the observer pixel {tuple(observer_rc)} lies outside the DEM ({ny} x {nx})")
    else:
        orow, ocol = observer_pixel(dem, *observer_lat_lon)
    ground_m = float(dem.elevation_m[math.floor(orow + 0.5), math.floor(ocol + 0.5)])
    if not math.isfinite(ground_m):
        raise ModelConfigError(f"the observer stands on a DEM pixel without data (row {orow:.0f}, col {ocol:.0f}): "
                               "move it to a pixel with data or fill the DEM's holes")
    t = dem.transform
    tr = np.array([t.c, t.a, t.f, t.e])
    p = dem.projection.params
    o_vec = (dem.radius_m + ground_m + observer_height_m) * np.array(
        map_to_unit(t.c + t.a * (ocol + 0.5), t.f + t.e * (orow + 0.5), p))
    out = np.empty(dem.shape, np.uint8)
    cos_range = math.cos(min(math.pi, max_range_m / dem.radius_m))
    _viewshed_kernel(np.ascontiguousarray(dem.elevation_m, dtype=np.float64), p, tr, dem.radius_m, orow, ocol, o_vec,
                     float(target_height_m), cos_range, bool(holes_block), out)
    return out

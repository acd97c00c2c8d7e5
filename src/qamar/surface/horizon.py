"""Horizon maps: the elevation of the true horizon at every pixel of a lunar DEM.

For every pixel and each of ``n_az`` azimuths the horizon elevation is the largest elevation
angle, seen from the observer (``observer_height_m`` above the ground), of the terrain along
the great circle leaving the pixel in that azimuth, out to ``max_distance_km``. The geometry
is exact on the sphere: a terrain point at arc angle theta and height h is
(R + h)(cos(theta) u + sin(theta) t) in ME, with u the pixel's up vector and t the unit
tangent of the azimuth, so its elevation is

    tan(e) = ((R + h) cos(theta) - (R + h0)) / ((R + h) sin(theta)),

which contains the Moon's curvature without any flat-body correction (GRASS r.horizon
instead drops d^2/2R with Earth's radius).

Two methods compute it. ``method="exact"`` marches each great circle (below: "Sampling",
"Distant terrain", "Speed"); it is the reference. ``method="sweep"`` (the default, several
times faster: docs/benchmarks.md, "Horizon map") sweeps lines of pixels
("Sweep" below); its difference from the exact method is measured, not assumed (see
docs/south-pole-light.md, "Horizon algorithm", and bench/bench_horizon.py).

Azimuths are measured clockwise from LOCAL TRUE NORTH at each pixel (the direction of
increasing latitude along the pixel's meridian); east is 90 deg. At a pixel exactly on a pole
north is taken along the lon-0 meridian, i.e. the frame of ``enu_basis(-90, 0)``: on a south
polar stereographic map azimuth 0 points to map +y (lon 0) and azimuth 90 to map +x (lon 90 E).

Sampling (the stated error). Samples lie at arc distances d_1 = s0, d_{k+1} = d_k +
max(s0, f * d_k) with s0 the fine pixel size and f = ``step_fraction`` (default 1/128): one
pixel steps out to s0/f (30.7 km for 240 m pixels), then steps of f * d, so the angular step
seen from the pixel stays below f rad (0.45 deg) and 331 samples cover 150 km at 240 m.
Heights are bilinear between pixel centres. A ridge between two samples is seen lower by at
most (its slope) x step / 2 in height, i.e. slope x f / 2 radians in elevation (0.04 deg
for a 10 deg slope); a feature narrower than the step (f * d) can be missed. Pass
``step_fraction=0`` for one-pixel steps everywhere (exact up to bilinear interpolation).

Distant terrain. The fine DEM is used out to ``fine_distance_km`` (default: all of its
extent); beyond it a coarse copy of the fine DEM (block means of ``coarse_factor`` pixels),
and beyond the fine DEM's extent an optional coarse ``far_dem`` in the same CRS. Outside all
DEMs no terrain is seen: a ray that leaves the data early gives a lower bound, and a ray with
no sample at all gives -90 deg (as GRASS does at edges).

Speed. The kernel (numba, parallel over rows) skips whole groups of samples that cannot beat
the horizon found so far: dilated max pyramids of every DEM level bound the terrain a group
can meet, and each ray starts from the sample that held the horizon of the neighbouring
pixel. The result is identical to evaluating every sample. Large DEMs:
:func:`compute_horizon_tiled` (Dask, bounded memory).

Sweep. In the spirit of Stewart (1998, IEEE TVCG 4(1), "Fast horizon computation at all
points of a terrain with visibility and shading applications"): ``sweep_directions``
(default max(n_az, 360)) grid directions, bearings k 360/n clockwise from map +y. For each,
the DEM is cut into straight map lines one pixel apart across, sampled where they cross each
pixel row or column (the bilinear height: linear between the two pixels across), out to
``max_distance_km`` beyond the pixels they serve, then in the far DEM. With x the ground
distance along a line (the scale factor applied sample by sample: 1/k = 2 / (1 + t^2) on a
polar stereographic map, Snyder 1987 eq. 21-4) and g = h - x^2/(2R), the parabolic drop
gives tan(e from i to j) = (g_j - g_i)/(x_j - x_i) + x_i/R - (terms of order (d/R)^3), so
the horizon sample of an observer is the tangent to the upper convex hull of the (x, g) of
the samples ahead within reach (O(log n) per query, hulls built in amortised O(1) per
sample; the reach is honoured exactly by splitting it at a block boundary). Each pixel's own
ray is then evaluated EXACTLY (the spherical formula above) at its first 8 samples one pixel
apart (``_SWEEP_NEAR_SAMPLES``: the lines beside a pixel look in other azimuths there) and
at the horizon samples of the two lines beside it, and the highest kept; its true azimuth is
the grid bearing turned by the local angle between grid and true north (from the
projection's Jacobian at the pixel), and the output azimuths are linear between the two grid
directions around them. Errors: (1) a straight map line is not a great circle: on a polar
stereographic map its geodesic curvature is at most rho / (2 R^2) (rho from the pole), so a
point d along it is seen at an azimuth off by up to rho d / (4 R^2): 0.18 deg at rho = 260
km (this DEM's corners) and d = 150 km, 0.05 deg at d = 40 km; (2) the parabola only picks
the sample, whose elevation is then exact: another sample can be higher only if the two tie
to within the parabola's elevation error (for |h - h0| <= 5 km: < 0.01 deg at 150 km, where
the neglected height is about d^4/(8 R^3) = 12 m; < 0.09 deg for steep terrain one pixel
away, where horizontal and arc distance differ by the factor 1 + h/R); (3) the ray's highest
point may lie where neither line has its own (the value is then a lower bound); (4) linear
interpolation in azimuth over 360/n deg; (5) beyond the first 8 pixels a line's samples lie
at row/column crossings, not at equal steps.

Storage: int16 centi-degrees (0.01 deg, rounding error <= 0.005 deg), -32768 for no data.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import dask
import numpy as np
import rasterio
from affine import Affine
from dask.callbacks import Callback
from numba import njit, prange
from rasterio.crs import CRS
from rasterio.windows import Window
from tqdm import tqdm

from qamar.errors import DataFormatError, ModelConfigError
from qamar.surface.terrain import (
    _PROJ_POLAR_STEREO,
    Dem,
    map_to_unit,
    read_dem,
    unit_to_map,
)

NODATA_CDEG = -32768
_TAG_PREFIX = "QAMAR_HORIZON_"
_AZIMUTH_CONVENTION = (
    "band k (1-based) holds the horizon elevation in centi-degrees at azimuth (k-1)*360/N_AZIMUTHS deg, "
    "clockwise from local true north (increasing latitude); at a pole pixel north is along the lon-0 meridian"
)


@dataclass(frozen=True, eq=False)
class HorizonMap:
    """Horizon elevations of a DEM grid.

    ``elev_cdeg`` int16 (ny, nx, n_az): horizon elevation in centi-degrees,
    :data:`NODATA_CDEG` where the pixel has no data (computed maps store the azimuth index
    fastest; maps read from a file are a view of its (n_az, ny, nx) bands). ``azimuths_deg`` (n_az,) =
    k * 360 / n_az, clockwise from local true north (see the module docstring for the pole).
    ``transform``/``crs`` are those of the DEM grid.
    """

    elev_cdeg: np.ndarray
    azimuths_deg: np.ndarray
    transform: Affine
    crs: CRS
    observer_height_m: float
    max_distance_km: float
    NODATA: ClassVar[int] = NODATA_CDEG

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the grid."""
        return self.elev_cdeg.shape[:2]

    def elevation_deg(self, iy: int, ix: int, az_deg) -> np.ndarray:
        """Horizon elevation (deg) at pixel (iy, ix), linear between azimuths; NaN for no data."""
        row = self.elev_cdeg[iy, ix].astype(np.float64)
        row[row == NODATA_CDEG] = np.nan
        n = row.size
        f = np.mod(np.asarray(az_deg, dtype=np.float64), 360.0) * n / 360.0
        k = np.floor(f).astype(np.int64) % n
        w = f - np.floor(f)
        return ((1.0 - w) * row[k] + w * row[(k + 1) % n]) / 100.0


@njit(cache=True, fastmath=False, nogil=True)
def horizon_elevation_rad(elev_cdeg_row: np.ndarray, az_rad: float) -> float:
    """Horizon elevation (rad) at azimuth ``az_rad`` (clockwise from north) of one pixel's
    int16 centi-degree row, linear between azimuths; NaN if the pixel has no data."""
    n = elev_cdeg_row.size
    f = (az_rad / (2.0 * math.pi)) * n
    f -= n * math.floor(f / n)
    k = int(f)
    if k >= n:
        k = 0
    w = f - k
    a = elev_cdeg_row[k]
    b = elev_cdeg_row[(k + 1) % n]
    if a == NODATA_CDEG or b == NODATA_CDEG:
        return np.nan
    return math.radians(((1.0 - w) * a + w * b) / 100.0)


# ---------------------------------------------------------------------------------------
# Compiled kernel
# ---------------------------------------------------------------------------------------


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _bilinear(heights, lev, shapes, grids, x, y):
    """Bilinear height at map (x, y) in level ``lev``; NaN outside the hull of its pixel centres.

    ``heights`` holds every level flattened; ``shapes[lev]`` = (offset, ny, nx);
    ``grids[lev]`` = (1/a, -c/a - 1/2, 1/e, -f/e - 1/2) so col = x/a - c/a - 1/2.
    """
    fc = x * grids[lev, 0] + grids[lev, 1]
    fr = y * grids[lev, 2] + grids[lev, 3]
    ny = shapes[lev, 1]
    nx = shapes[lev, 2]
    if not (fr >= 0.0 and fc >= 0.0 and fr <= ny - 1 and fc <= nx - 1):
        return np.nan
    i = min(int(fr), ny - 2)
    j = min(int(fc), nx - 2)
    wr = fr - i
    wc = fc - j
    k = shapes[lev, 0] + i * nx + j
    top = heights[k] + wc * (heights[k + 1] - heights[k])
    bot = heights[k + nx] + wc * (heights[k + nx + 1] - heights[k + nx])
    return top + wr * (bot - top)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _region_max(pyr, pyr_shapes, lev, k, fr, fc):
    """Upper bound of the bilinear heights of level ``lev`` within 2**k pixels (each axis) of
    the fractional index (fr, fc): the dilated block maximum of pyramid level k; -inf when
    no such point lies in the level."""
    bi = math.floor(fr) >> k
    bj = math.floor(fc) >> k
    nyk = pyr_shapes[lev, k, 1]
    nxk = pyr_shapes[lev, k, 2]
    if bi < -1 or bj < -1 or bi > nyk or bj > nxk:
        return -np.inf
    bi = min(max(bi, 0), nyk - 1)
    bj = min(max(bj, 0), nxk - 1)
    return pyr[pyr_shapes[lev, k, 0] + bi * nxk + bj]


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _largest_c(best, sa, sb, cos_d, sin_d, tan_d):
    """Largest c = r_obs / (R + h) for which some sample sa..sb can exceed tan(elevation)
    ``best``: (cos(theta) - c) / sin(theta) > best  <=>  c < cos(theta) - best sin(theta),
    whose derivative -sin - best cos vanishes once, at tan(theta) = -best (a maximum,
    sqrt(1 + best^2)). No division, so it is cheap to test often."""
    if tan_d[sa] >= -best:
        return cos_d[sa] - best * sin_d[sa]
    if tan_d[sb] <= -best:
        return cos_d[sb] - best * sin_d[sb]
    return math.sqrt(1.0 + best * best)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _coarser_height(heights, lev, shapes, grids, mx, my):
    """Bilinear height at map (mx, my) from the first level coarser than ``lev`` that holds
    it; NaN if none does."""
    h = np.nan
    for lv in range(lev + 1, shapes.shape[0]):
        h = _bilinear(heights, lv, shapes, grids, mx, my)
        if not np.isnan(h):
            break
    return h


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _sample_height(s, ux, uy, uz, tx, ty, tz, cos_d, sin_d, last_sample, heights, shapes, grids, proj):
    """Height (m) of ray sample ``s``: from the finest level allowed at its distance that
    holds it, else the coarser ones; NaN outside all levels."""
    lev = 0
    while s > last_sample[lev]:
        lev += 1
    mx, my = unit_to_map(cos_d[s] * ux + sin_d[s] * tx, cos_d[s] * uy + sin_d[s] * ty, cos_d[s] * uz + sin_d[s] * tz,
                         proj)
    h = _bilinear(heights, lev, shapes, grids, mx, my)
    return _coarser_height(heights, lev, shapes, grids, mx, my) if np.isnan(h) else h


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _group_may_beat(g, start, lev, kpyr, best, ro, ux, uy, uz, tx, ty, tz, cos_d, sin_d, tan_d, grids, pyr,
                    pyr_shapes, radius_m, proj):
    """False when no sample of group ``g`` can exceed ``best`` (tan elevation): the highest
    terrain M within reach of the group's middle sample (dilated max pyramid at level
    ``kpyr[g, lv]`` of every DEM level from ``lev[g]`` on) gives r_obs >= c_max (R + M)
    (:func:`_largest_c`), or there is no terrain."""
    s0 = start[g]
    s1 = start[g + 1]
    sm = (s0 + s1) // 2
    mx, my = unit_to_map(cos_d[sm] * ux + sin_d[sm] * tx, cos_d[sm] * uy + sin_d[sm] * ty, cos_d[sm] * uz + sin_d[sm] * tz,
                         proj)
    top = -np.inf
    for lv in range(lev[g], grids.shape[0]):
        top = max(top, _region_max(pyr, pyr_shapes, lv, kpyr[g, lv], my * grids[lv, 2] + grids[lv, 3],
                                   mx * grids[lv, 0] + grids[lv, 1]))
    return top > -np.inf and ro < _largest_c(best, s0, s1 - 1, cos_d, sin_d, tan_d) * (radius_m + top)


def _horizon_rows_py(row0, row1, col0, col1, heights, shapes, grids, last_sample, pyr, pyr_shapes, proj,
                     radius_m, observer_height_m, cos_az, sin_az, cot_d, inv_sin_d, cos_d, sin_d, tan_d,
                     start1, lev1, k1, start2, lev2, k2, ratio, out):
    """Horizon of pixels [row0:row1, col0:col1] of level 0 into out[row - row0, col - col0, :].

    tan(e) = max over samples of cot(theta) - r_obs / ((R + h) sin(theta)). Each ray starts
    from the sample that held the horizon of the previous pixel in the same azimuth (a true
    sample, so a valid lower bound; pixels of a row are the inner loop so neighbouring rays
    share cache lines). Samples come in groups of ``ratio`` subgroups (``start1``/``start2``,
    see :func:`_groups`); a (sub)group is skipped when the highest terrain any of its samples
    could meet cannot beat the horizon so far (:func:`_group_may_beat`). Skipping never
    changes the result.
    """
    n_az = cos_az.size
    nx0 = shapes[0, 2]
    n_col = col1 - col0
    for i in prange(row0, row1):
        y = (i - grids[0, 3]) / grids[0, 2]
        # per pixel of the row: up (u), north (n), east (e) in ME and the observer's radius
        u = np.empty((n_col, 3))
        nrt = np.empty((n_col, 3))
        east = np.empty((n_col, 2))
        r_obs = np.empty(n_col)
        for jj in range(n_col):
            h_p = heights[i * nx0 + col0 + jj]
            r_obs[jj] = radius_m + h_p + observer_height_m
            ux, uy, uz = map_to_unit((col0 + jj - grids[0, 1]) / grids[0, 0], y, proj)
            cos_lat = math.sqrt(ux * ux + uy * uy)
            cl, sl = (ux / cos_lat, uy / cos_lat) if cos_lat > 0.0 else (1.0, 0.0)
            u[jj, 0], u[jj, 1], u[jj, 2] = ux, uy, uz
            nrt[jj, 0], nrt[jj, 1], nrt[jj, 2] = -uz * cl, -uz * sl, cos_lat
            east[jj, 0], east[jj, 1] = -sl, cl
        # azimuth outside, pixels inside: neighbouring rays read the same cache lines
        for k in range(n_az):
            s_best = 0
            for jj in range(n_col):
                if np.isnan(r_obs[jj]):
                    out[i - row0, jj, k] = NODATA_CDEG
                    continue
                ux, uy, uz = u[jj, 0], u[jj, 1], u[jj, 2]
                tx = cos_az[k] * nrt[jj, 0] + sin_az[k] * east[jj, 0]
                ty = cos_az[k] * nrt[jj, 1] + sin_az[k] * east[jj, 1]
                tz = cos_az[k] * nrt[jj, 2]
                ro = r_obs[jj]
                h = _sample_height(s_best, ux, uy, uz, tx, ty, tz, cos_d, sin_d, last_sample, heights, shapes, grids, proj)
                best = cot_d[s_best] - ro * inv_sin_d[s_best] / (radius_m + h) if not np.isnan(h) else -np.inf
                lev = 0
                for g1 in range(start1.size - 1):
                    if best > -np.inf and not _group_may_beat(g1, start1, lev1, k1, best, ro, ux, uy, uz, tx, ty, tz,
                                                              cos_d, sin_d, tan_d, grids, pyr, pyr_shapes, radius_m,
                                                              proj):
                        continue
                    for g2 in range(g1 * ratio, min((g1 + 1) * ratio, start2.size - 1)):
                        if best > -np.inf and not _group_may_beat(g2, start2, lev2, k2, best, ro, ux, uy, uz, tx, ty,
                                                                  tz, cos_d, sin_d, tan_d, grids, pyr, pyr_shapes,
                                                                  radius_m, proj):
                            continue
                        for s in range(start2[g2], start2[g2 + 1]):
                            # _sample_height, written out: the level advances with s along the ray
                            while s > last_sample[lev]:
                                lev += 1
                            mx, my = unit_to_map(cos_d[s] * ux + sin_d[s] * tx, cos_d[s] * uy + sin_d[s] * ty,
                                                 cos_d[s] * uz + sin_d[s] * tz, proj)
                            h = _bilinear(heights, lev, shapes, grids, mx, my)
                            if np.isnan(h):
                                h = _coarser_height(heights, lev, shapes, grids, mx, my)
                            # v = cot - r_obs / ((R + h) sin) > best, without a division per sample
                            if (cot_d[s] - best) * (radius_m + h) > ro * inv_sin_d[s]:
                                best = cot_d[s] - ro * inv_sin_d[s] / (radius_m + h)
                                s_best = s
                if best == -np.inf:
                    out[i - row0, jj, k] = -9000
                else:
                    out[i - row0, jj, k] = round(math.degrees(math.atan(best)) * 100.0)


_horizon_rows_parallel = njit(cache=True, fastmath=False, nogil=True, parallel=True)(_horizon_rows_py)
_horizon_rows_serial = njit(cache=True, fastmath=False, nogil=True)(_horizon_rows_py)


# ---------------------------------------------------------------------------------------
# Sweep kernel (method="sweep")
# ---------------------------------------------------------------------------------------


def _parallel_and_serial(func) -> dict:
    """``func`` compiled twice: {True: parallel over its prange loop, False: serial (for
    Dask tiles, which run in parallel themselves)}."""
    return {True: njit(cache=True, fastmath=False, nogil=True, parallel=True)(func),
            False: njit(cache=True, fastmath=False, nogil=True)(func)}


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _metres_per_map_unit(x, y, p, radius_m, dx, dy):
    """Ground metres per map unit along the unit map vector (dx, dy) at map (x, y): the
    inverse scale factor, 2R / (p1 (1 + t^2)) for polar stereographic (t = tan of half the
    colatitude; Snyder 1987, eq. 21-4), R sqrt((dy/p1)^2 + (cos(lat) dx / (p1 p2))^2) for
    equirectangular."""
    if p[0] == _PROJ_POLAR_STEREO:
        sx = (x - p[5]) / p[1]
        sy = (y - p[6]) / p[1]
        return 2.0 * radius_m / (p[1] * (1.0 + sx * sx + sy * sy))
    lat = (y - p[6]) / p[1] + p[7]
    return radius_m * math.hypot(dy / p[1], math.cos(lat) * dx / (p[1] * p[2]))


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _sweep_height(heights, shapes, grids, row_major, m, u, x, y):
    """Terrain height (m) at line position (major m, integer; minor u) of level 0, i.e. map
    (x, y): linear between the two pixels of level 0 across the line (the bilinear value),
    else bilinear in the first coarser level holding it; NaN if none does."""
    ny = shapes[0, 1]
    nx = shapes[0, 2]
    n_minor = nx if row_major else ny
    n_major = ny if row_major else nx
    h = np.nan
    if 0 <= m < n_major and -1e-9 <= u <= n_minor - 1 + 1e-9:  # on the edge up to rounding
        u = min(max(u, 0.0), n_minor - 1.0)
        i = min(int(u), n_minor - 2)
        w = u - i
        if row_major:
            k0 = m * nx + i
            k1 = k0 + 1
        else:
            k0 = i * nx + m
            k1 = k0 + nx
        h = heights[k0] + w * (heights[k1] - heights[k0])
    if np.isnan(h):
        h = _coarser_height(heights, 0, shapes, grids, x, y)
    return h


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _fine_height(heights, shapes, fr, fc):
    """Bilinear height of level 0 at fractional row/column (fr, fc), NaN outside its pixel
    centres; points within 1e-9 pixel of the edge count as on it, so that the result does not
    depend on rounding where a ray runs along the edge."""
    ny = shapes[0, 1]
    nx = shapes[0, 2]
    if not (fr >= -1e-9 and fc >= -1e-9 and fr <= ny - 1 + 1e-9 and fc <= nx - 1 + 1e-9):
        return np.nan
    fr = min(max(fr, 0.0), ny - 1.0)
    fc = min(max(fc, 0.0), nx - 1.0)
    i = min(int(fr), ny - 2)
    j = min(int(fc), nx - 2)
    wr = fr - i
    wc = fc - j
    k = i * nx + j
    top = heights[k] + wc * (heights[k + 1] - heights[k])
    bot = heights[k + nx] + wc * (heights[k + nx + 1] - heights[k + nx])
    return top + wr * (bot - top)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _hull_push_near(st, top, p, xs, gs):
    """Add sample p, nearer than all others, to the upper hull st[0:top] (st[top-1] nearest)."""
    while top >= 2:
        a = st[top - 1]
        b = st[top - 2]
        if (gs[a] - gs[p]) * (xs[b] - xs[p]) > (gs[b] - gs[p]) * (xs[a] - xs[p]):
            break  # a is above the chord p-b: still a vertex
        top -= 1
    st[top] = p
    return top + 1


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _hull_push_far(st, top, p, xs, gs):
    """Add sample p, farther than all others, to the upper hull st[0:top] (st[top-1] farthest)."""
    while top >= 2:
        a = st[top - 1]
        b = st[top - 2]
        if (gs[a] - gs[b]) * (xs[p] - xs[b]) > (gs[p] - gs[b]) * (xs[a] - xs[b]):
            break
        top -= 1
    st[top] = p
    return top + 1


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _tangent(st, base, step, count, xs, gs, xo, go):
    """Sample index of the hull vertex seen steepest from (xo, go), xo left of every vertex.
    The hull's vertices in increasing x are st[base + step * k], k < count; the slope from
    the observer rises to the tangent vertex and falls after it (binary search)."""
    lo = 0
    hi = count - 1
    while lo < hi:
        mid = (lo + hi) // 2
        a = st[base + step * mid]
        b = st[base + step * (mid + 1)]
        if (gs[b] - go) * (xs[a] - xo) > (gs[a] - go) * (xs[b] - xo):
            lo = mid + 1
        else:
            hi = mid
    return st[base + step * lo]


@_parallel_and_serial
def _sweep_lines(heights, shapes, grids, proj, radius_m, observer_height_m, max_distance_m, row_major, sign, slope,
                 m_off, u_off, k0, n_lines, m0, m1, u0, u1, n_samples, steps,
                 dist_m):
    """Horizon along one grid direction for the window pixels (major m0..m1-1, minor u0..u1-1)
    of level 0, on the lines minor + u_off = k + slope * (major + m_off), k = k0 .. k0+n_lines-1
    (level 0 may be a window at (m_off, u_off) of a larger DEM whose lines these are).

    Each line is sampled at every major index in the direction ``sign`` (+1/-1), from the
    first window pixel it serves to ``max_distance_m`` beyond the last (at most
    ``n_samples`` samples); x (m) is the ground distance along the line and
    g = h - x^2/(2R). The horizon of an observer at sample n is the steepest sample within
    (x_n, x_n + D], the tangent to the upper convex hull of (x, g) (see the module
    docstring), found in two parts split at a block boundary (blocks of B samples, B x the
    longest step <= D): a suffix hull of n's block built backwards and a prefix hull of the
    next block built forwards. Each window pixel [r, c] gets the horizon sample of the line
    at or below it across (minor <= its index, slot 0) and of the one above (slot 1), as
    the number of steps to it (``steps``, -1 for none) and the ground distance (``dist_m``);
    each pixel slot is written by exactly one line.
    """
    nx = shapes[0, 2]
    a_m = 1.0 / grids[0, 0]
    e_m = 1.0 / grids[0, 2]
    # unit map vector of one sample step and its length (map units)
    if row_major:
        step_x, step_y = slope * sign * a_m, sign * e_m
    else:
        step_x, step_y = sign * a_m, slope * sign * e_m
    step_len = math.hypot(step_x, step_y)
    dxu, dyu = step_x / step_len, step_y / step_len
    for line in prange(n_lines):
        k = k0 + line
        # the line's query samples: where it passes within one pixel of the window's rows
        lo, hi = m0, m1 - 1
        if slope != 0.0:
            a = (u0 - 1 + u_off - k) / slope - m_off
            b = (u1 + u_off - k) / slope - m_off
            lo, hi = max(lo, math.floor(min(a, b))), min(hi, math.ceil(max(a, b)))
        if lo > hi:
            continue
        n_q = hi - lo + 1
        m_first = lo if sign > 0 else hi
        xs = np.empty(n_samples)
        gs = np.empty(n_samples)
        hs = np.empty(n_samples)
        st = np.empty(n_samples, dtype=np.int64)
        best = np.full((n_q, 2), -1, dtype=np.int64)
        # samples, stopping D beyond the last query sample
        n_tot = n_samples
        scale_prev = 0.0
        for n in range(n_samples):
            m = m_first + sign * n
            u = k + slope * (m + m_off) - u_off
            row = m if row_major else u
            col = u if row_major else m
            x = (col - grids[0, 1]) * a_m
            y = (row - grids[0, 3]) * e_m
            scale = _metres_per_map_unit(x, y, proj, radius_m, dxu, dyu)
            xs[n] = 0.0 if n == 0 else xs[n - 1] + 0.5 * (scale + scale_prev) * step_len
            scale_prev = scale
            hs[n] = _sweep_height(heights, shapes, grids, row_major, m, u, x, y)
            gs[n] = hs[n] - xs[n] * xs[n] / (2.0 * radius_m)
            if n >= n_q and xs[n] - xs[n_q - 1] > max_distance_m:
                n_tot = n
                break
        max_step = 0.0
        for n in range(1, n_tot):
            max_step = max(max_step, xs[n] - xs[n - 1])
        block = int(max_distance_m / max_step) if max_step > 0.0 else 0
        # observers: the pixels whose slots this line fills at each query sample
        obs_h = np.full((n_q, 2), np.nan)
        for n in range(n_q):
            m = m_first + sign * n
            u = k + slope * (m + m_off) - u_off
            for side in range(2):
                i = math.ceil(u) if side == 0 else math.floor(u)
                if u0 <= i < u1:
                    kk = m * nx + i if row_major else i * nx + m
                    obs_h[n, side] = heights[kk] + observer_height_m
        if block < 2:  # reach shorter than two steps: every sample in reach
            e = 0
            for n in range(n_q):
                while e + 1 < n_tot and xs[e + 1] - xs[n] <= max_distance_m:
                    e += 1
                for side in range(2):
                    ho = obs_h[n, side]
                    if np.isnan(ho):
                        continue
                    go = ho - xs[n] * xs[n] / (2.0 * radius_m)
                    for j in range(n + 1, e + 1):
                        if not np.isnan(hs[j]) and (best[n, side] < 0 or (gs[j] - go) * (xs[best[n, side]] - xs[n])
                                                    > (gs[best[n, side]] - go) * (xs[j] - xs[n])):
                            best[n, side] = j
        else:
            # part 1: suffix of the block of n + 1, built backwards
            j_top = min(n_tot - 1, (n_q // block + 1) * block - 1)
            top = 0
            for j in range(j_top, 0, -1):
                if j == j_top or (j + 1) % block == 0:
                    top = 0
                if not np.isnan(hs[j]):
                    top = _hull_push_near(st, top, j, xs, gs)
                n = j - 1
                if n < n_q and top > 0:
                    for side in range(2):
                        ho = obs_h[n, side]
                        if not np.isnan(ho):
                            best[n, side] = _tangent(st, top - 1, -1, top, xs, gs, xs[n],
                                                     ho - xs[n] * xs[n] / (2.0 * radius_m))
            # part 2: prefix of the next block, built forwards up to x_n + D
            start = -1
            last = -1
            e = 0
            top = 0
            for n in range(n_q):
                s = ((n + 1) // block + 1) * block
                if s != start:
                    start, last, top = s, s - 1, 0
                while e + 1 < n_tot and xs[e + 1] - xs[n] <= max_distance_m:
                    e += 1
                while last < e:
                    last += 1
                    if not np.isnan(hs[last]):
                        top = _hull_push_far(st, top, last, xs, gs)
                if top == 0:
                    continue
                for side in range(2):
                    ho = obs_h[n, side]
                    if np.isnan(ho):
                        continue
                    go = ho - xs[n] * xs[n] / (2.0 * radius_m)
                    j = _tangent(st, 0, 1, top, xs, gs, xs[n], go)
                    b = best[n, side]
                    if b < 0 or (gs[j] - go) * (xs[b] - xs[n]) > (gs[b] - go) * (xs[j] - xs[n]):
                        best[n, side] = j
        for n in range(n_q):
            m = m_first + sign * n
            u = k + slope * (m + m_off) - u_off
            for side in range(2):
                if np.isnan(obs_h[n, side]):
                    continue
                i = math.ceil(u) if side == 0 else math.floor(u)
                r, c = (m - m0, i - u0) if row_major else (i - u0, m - m0)
                j = best[n, side]
                steps[r, c, side] = j - n if j >= 0 else -1
                dist_m[r, c, side] = xs[j] - xs[n] if j >= 0 else 0.0


@_parallel_and_serial
def _pixel_frames(row0, row1, col0, col1, grids, proj, frames):
    """frames[r, c] = J (row-major 2 x 2) taking a map displacement at pixel (row0 + r,
    col0 + c) of level 0 to its (east, north) components (up to a positive factor), from
    central differences of the projection 1e-6 rad either side (pole pixel: north along
    lon 0, as in the module docstring)."""
    eps = 1e-6
    for i in prange(row0, row1):
        y = (i - grids[0, 3]) / grids[0, 2]
        for j in range(col0, col1):
            x = (j - grids[0, 1]) / grids[0, 0]
            ux, uy, uz = map_to_unit(x, y, proj)
            cos_lat = math.sqrt(ux * ux + uy * uy)
            cl, sl = (ux / cos_lat, uy / cos_lat) if cos_lat > 0.0 else (1.0, 0.0)
            # map displacements for 2 eps rad east (ex, ey) and north (nx_, ny_)
            xp, yp = unit_to_map(ux - eps * sl, uy + eps * cl, uz, proj)
            xm, ym = unit_to_map(ux + eps * sl, uy - eps * cl, uz, proj)
            ex, ey = xp - xm, yp - ym
            xp, yp = unit_to_map(ux - eps * uz * cl, uy - eps * uz * sl, uz + eps * cos_lat, proj)
            xm, ym = unit_to_map(ux + eps * uz * cl, uy + eps * uz * sl, uz - eps * cos_lat, proj)
            nx_, ny_ = xp - xm, yp - ym
            det = ex * ny_ - nx_ * ey
            f = frames[i - row0, j - col0]
            f[0], f[1], f[2], f[3] = ny_ / det, -nx_ / det, -ey / det, ex / det


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _tan_elevation(dist_m, h_m, ho_m, radius_m):
    """Exact tan(elevation) of a point at arc distance ``dist_m`` (< 0.2 R) and height h_m seen
    from height ho_m: ((R + h) cos(theta) - (R + ho)) / ((R + h) sin(theta)), with cos and sin
    from their Taylor series to theta^7 (relative error < theta^8 / 40320: 6e-11 at 0.2 R)."""
    theta = dist_m / radius_m
    t2 = theta * theta
    cos_t = 1.0 - t2 / 2.0 * (1.0 - t2 / 12.0 * (1.0 - t2 / 30.0))
    sin_t = theta * (1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0)))
    rh = radius_m + h_m
    return (rh * cos_t - (radius_m + ho_m)) / (rh * sin_t)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _write_span(out, r, c, a0, e0, a1, e1):
    """out[r, c, m] for the output azimuths 2 pi m / n_az from a0 to a1 (rad, turning
    clockwise by less than pi), linear in azimuth between elevations e0 and e1 (rad)."""
    n_az = out.shape[2]
    step = 2.0 * math.pi / n_az
    span = a1 - a0
    if span < 0.0:
        span += 2.0 * math.pi
    for m in range(math.ceil(a0 / step), math.floor((a0 + span) / step) + 1):
        w = (m * step - a0) / span if span > 0.0 else 0.0
        out[r, c, m % n_az] = round(math.degrees(e0 + w * (e1 - e0)) * 100.0)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _merge_pixel(heights, shapes, grids, proj, radius_m, observer_height_m, max_distance_m, row0, col0, row_major,
                 sign, slope, dir_x, dir_y, n_near, near_step_m, frames, steps, dist_m, r, c, a_m, e_m, step_x, step_y,
                 step_len):
    """(true azimuth, elevation) in rad, float32-rounded, of window pixel (r, c) for one grid
    direction (see :func:`_sweep_merge`)."""
    m, i = (row0 + r, col0 + c) if row_major else (col0 + c, row0 + r)
    ho = heights[(row0 + r) * shapes[0, 2] + col0 + c] + observer_height_m
    x0 = (col0 + c - grids[0, 1]) * a_m
    y0 = (row0 + r - grids[0, 3]) * e_m
    map_per_m = 1.0 / _metres_per_map_unit(x0, y0, proj, radius_m, step_x / step_len, step_y / step_len)
    best = -np.inf  # tan(elevation); none: no terrain in reach
    near_m = 0.0
    for q in range(1, n_near + 1):
        d_m = q * near_step_m
        if d_m > max_distance_m:
            break
        near_m = d_m
        dx = d_m * map_per_m * step_x / step_len
        dy = d_m * map_per_m * step_y / step_len
        h = _fine_height(heights, shapes, row0 + r + dy * grids[0, 2], col0 + c + dx * grids[0, 0])
        if np.isnan(h):
            h = _coarser_height(heights, 0, shapes, grids, x0 + dx, y0 + dy)
        if not np.isnan(h):
            best = max(best, _tan_elevation(d_m, h, ho, radius_m))
    for side in range(2):
        n = steps[r, c, side]
        if n < 0 or dist_m[r, c, side] <= near_m:
            continue
        mj = m + sign * n
        u = i + slope * sign * n
        row, col = (mj, u) if row_major else (u, mj)
        h = _sweep_height(heights, shapes, grids, row_major, mj, u, (col - grids[0, 1]) * a_m,
                          (row - grids[0, 3]) * e_m)
        if not np.isnan(h):
            best = max(best, _tan_elevation(dist_m[r, c, side], h, ho, radius_m))
    elev = math.atan(best) if best > -np.inf else -0.5 * math.pi
    fr = frames[r, c]
    az = math.atan2(fr[0] * dir_x + fr[1] * dir_y, fr[2] * dir_x + fr[3] * dir_y)
    if az < 0.0:
        az += 2.0 * math.pi
    # rounded as stored, so that this span ends exactly where the next one starts
    az = float(np.float32(az))
    elev = float(np.float32(elev))
    return az, elev


@_parallel_and_serial
def _sweep_merge(heights, shapes, grids, proj, radius_m, observer_height_m, max_distance_m, row0, col0, row_major, sign,
                 slope, dir_x, dir_y, n_near, near_step_m, frames, steps, dist_m, first, az_rad, elev_rad, out):
    """Per window pixel: the elevation (rad) along the grid direction and its true azimuth
    (rad, [0, 2 pi)) there; the output azimuths from the previous grid direction's
    (``az_rad``/``elev_rad``, then overwritten by this one's) to this one are written to
    ``out`` unless ``first``. The pixel's own ray (parallel to the lines, through its centre)
    is evaluated at ``n_near`` samples ``near_step_m`` apart (bilinear heights, as the exact
    method) and at the horizon samples of the two lines beside it beyond those (same steps
    and distances), and the highest is kept: a lower bound of the ray's horizon, equal to it
    whenever the ray's highest sample is near or lies where one of the lines has its own."""
    ny, nx = elev_rad.shape
    a_m = 1.0 / grids[0, 0]
    e_m = 1.0 / grids[0, 2]
    step_x, step_y = ((slope * sign * a_m, sign * e_m) if row_major else (sign * a_m, slope * sign * e_m))
    step_len = math.hypot(step_x, step_y)
    for r in prange(ny):
        for c in range(nx):
            az, elev = _merge_pixel(heights, shapes, grids, proj, radius_m, observer_height_m, max_distance_m, row0,
                                    col0, row_major, sign, slope, dir_x, dir_y, n_near, near_step_m, frames, steps,
                                    dist_m, r, c, a_m, e_m, step_x, step_y, step_len)
            if not first:
                _write_span(out, r, c, az_rad[r, c], elev_rad[r, c], az, elev)
            az_rad[r, c] = az
            elev_rad[r, c] = elev


@_parallel_and_serial
def _write_between(az0_rad, elev0_rad, az1_rad, elev1_rad, out):
    """:func:`_write_span` for every window pixel."""
    ny, nx = az0_rad.shape
    for r in prange(ny):
        for c in range(nx):
            _write_span(out, r, c, az0_rad[r, c], elev0_rad[r, c], az1_rad[r, c], elev1_rad[r, c])


# ---------------------------------------------------------------------------------------
# Python driver
# ---------------------------------------------------------------------------------------


def sample_distances_m(pixel_m: float, max_distance_m: float, step_fraction: float) -> np.ndarray:
    """Arc distances (m, on the reference sphere) of the ray samples: d1 = pixel_m,
    d_{k+1} = d_k + max(pixel_m, step_fraction * d_k), up to ``max_distance_m``."""
    out = []
    d = pixel_m
    while d <= max_distance_m:
        out.append(d)
        d += max(pixel_m, step_fraction * d)
    return np.array(out)


def block_mean(elevation_m: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor`` x ``factor`` blocks (float32) over the pixels with data, NaN where
    a block has none; trailing rows/columns that do not fill a block are dropped."""
    ny, nx = (elevation_m.shape[0] // factor) * factor, (elevation_m.shape[1] // factor) * factor
    blocks = elevation_m[:ny, :nx].astype(np.float64).reshape(ny // factor, factor, nx // factor, factor)
    valid = ~np.isnan(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def coarse_dem(dem: Dem, factor: int) -> Dem:
    """``dem`` averaged over ``factor`` x ``factor`` blocks (see :func:`block_mean`)."""
    t = dem.transform
    return Dem(block_mean(dem.elevation_m, factor), Affine(t.a * factor, 0.0, t.c, 0.0, t.e * factor, t.f), dem.crs)


def _check_same_crs(dem: Dem, other: Dem, name: str) -> None:
    if other.projection.kind != dem.projection.kind or other.radius_m != dem.radius_m or not np.allclose(
        other.projection.params[:8], dem.projection.params[:8]
    ):
        raise DataFormatError(
            f"the {name} must be in the same CRS as the DEM ({dem.crs.to_string()}): reproject it with gdalwarp -t_srs"
        )


# Samples per group and per subgroup of the skipping test (see _horizon_rows_py).
_GROUP_SAMPLES = (32, 4)


@dataclass(frozen=True)
class _Levels:
    """DEM levels, finest first, packed for the kernel (see :func:`_bilinear`), the last
    sample index each level may serve, and their dilated max pyramids (see :func:`_region_max`)."""

    heights: np.ndarray
    shapes: np.ndarray
    grids: np.ndarray
    last_sample: np.ndarray
    pyr: np.ndarray
    pyr_shapes: np.ndarray
    px_per_m: np.ndarray


def _max_pyramid(elev: np.ndarray) -> list[np.ndarray]:
    """Dilated max pyramid: level k block (I, J) bounds the bilinear surface over pixel rows
    and columns [I 2^k - 2^k, (I + 2) 2^k] (its block and the 8 around it), holes ignored."""
    e = np.where(np.isnan(elev), -np.inf, elev).astype(np.float32)
    m = np.full((e.shape[0], e.shape[1]), -np.inf, dtype=np.float32)  # cell (i, j) spans pixels i..i+1, j..j+1
    m[:, :] = e
    m[:-1, :] = np.maximum(m[:-1, :], e[1:, :])
    m[:, :-1] = np.maximum(m[:, :-1], m[:, 1:])
    out = []
    while True:
        pad = np.pad(m, 1, constant_values=-np.inf)
        d = m.copy()
        for di in (0, 1, 2):
            for dj in (0, 1, 2):
                np.maximum(d, pad[di:di + m.shape[0], dj:dj + m.shape[1]], out=d)
        out.append(d)
        if m.shape[0] == 1 and m.shape[1] == 1:
            return out
        ny, nx = (m.shape[0] + 1) // 2, (m.shape[1] + 1) // 2
        m = np.pad(m, ((0, 2 * ny - m.shape[0]), (0, 2 * nx - m.shape[1])), constant_values=-np.inf)
        m = m.reshape(ny, 2, nx, 2).max(axis=(1, 3))


def _map_units_per_m(d: Dem) -> float:
    """Largest map distance per metre of ground over the DEM's extent (5 % margin)."""
    ny, nx = d.shape
    t = d.transform
    cols, rows = np.meshgrid(np.linspace(0, nx, 33), np.linspace(0, ny, 33))
    x, y = t.c + t.a * cols, t.f + t.e * rows
    step = min(t.a, -t.e) * 0.01
    u = np.array([map_to_unit(xi, yi, d.projection.params) for xi, yi in zip(x.ravel(), y.ravel())])
    worst = np.inf
    for dx, dy in ((step, 0.0), (0.0, step)):
        v = np.array([map_to_unit(xi + dx, yi + dy, d.projection.params) for xi, yi in zip(x.ravel(), y.ravel())])
        ground_m = np.linalg.norm(u - v, axis=1) * d.radius_m
        worst = min(worst, float(np.min(ground_m)) / step)
    return 1.05 / worst


def _pack(dems: list[Dem]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DEM levels packed for the kernels: heights, shapes and grids (see :func:`_bilinear`)."""
    heights = np.concatenate([d.elevation_m.astype(np.float32).ravel() for d in dems])
    sizes = [d.elevation_m.size for d in dems]
    shapes = np.array([[off, *d.shape] for off, d in zip(np.cumsum([0] + sizes[:-1]), dems)], dtype=np.int64)
    grids = np.array([[1 / t.a, -t.c / t.a - 0.5, 1 / t.e, -t.f / t.e - 0.5] for t in (d.transform for d in dems)])
    return heights, shapes, grids


def _levels(dem: Dem, far_dem: Dem | None, distances_m: np.ndarray, fine_distance_m: float,
            coarse: Dem | None) -> _Levels:
    chain = [(dem, fine_distance_m)]
    if coarse is not None:
        chain.append((coarse, np.inf))
    if far_dem is not None:
        chain.append((far_dem, np.inf))
    heights, shapes, grids = _pack([d for d, _ in chain])
    last = np.array([np.searchsorted(distances_m, lim, side="right") - 1 for _, lim in chain], dtype=np.int64)
    last[-1] = distances_m.size - 1
    pyramids = [_max_pyramid(d.elevation_m) for d, _ in chain]
    n_k = max(len(p) for p in pyramids)
    pyr_shapes = np.zeros((len(chain), n_k, 3), dtype=np.int64)
    flat, off = [], 0
    for lv, pyramid in enumerate(pyramids):
        for k in range(n_k):
            level = pyramid[min(k, len(pyramid) - 1)]
            pyr_shapes[lv, k] = (off, *level.shape)
            flat.append(level.ravel())
            off += level.size
    px_per_m = np.array([_map_units_per_m(d) / min(d.transform.a, -d.transform.e) for d, _ in chain])
    return _Levels(heights, shapes, grids, last, np.concatenate(flat), pyr_shapes, px_per_m)


def _groups(distances_m: np.ndarray, levels: _Levels, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of ``size`` samples for the kernel: start indices (n_groups + 1), the finest
    DEM level allowed at each group's first sample, and per group and DEM level the
    max-pyramid level whose dilated blocks cover every sample of the group."""
    start = np.append(np.arange(0, distances_m.size, size), distances_m.size)
    first, last = start[:-1], start[1:] - 1
    mid = (start[:-1] + start[1:]) // 2
    half_m = np.maximum(distances_m[mid] - distances_m[first], distances_m[last] - distances_m[mid])
    reach_px = half_m[:, None] * levels.px_per_m[None, :]
    k = np.ceil(np.log2(np.maximum(reach_px, 1.0))).astype(np.int64)
    lev = np.searchsorted(levels.last_sample, first, side="left")
    return start, lev, np.ascontiguousarray(np.minimum(k, levels.pyr_shapes.shape[1] - 1))


def _validate(dem: Dem, far_dem: Dem | None, n_azimuths: int, max_distance_km: float, observer_height_m: float,
              allow_holes: bool) -> None:
    if dem.projection.kind == "other":
        raise DataFormatError(
            f"horizon maps need a polar stereographic or equirectangular lunar DEM, not {dem.crs.to_string()}: "
            "reproject it with gdalwarp -t_srs"
        )
    if not (n_azimuths >= 4 and max_distance_km > 0 and observer_height_m >= 0):
        raise ModelConfigError(
            "horizon maps need at least 4 azimuths, a positive max_distance_km and observer_height_m >= 0"
        )
    if far_dem is not None:
        _check_same_crs(dem, far_dem, "far DEM")
    if not allow_holes:
        for name, d in (("DEM", dem), ("far DEM", far_dem)):
            if d is not None and d.nodata_count:
                raise DataFormatError(_holes_message(name, d.nodata_count, d.nodata_fraction))


def _holes_message(name: str, count: int, fraction: float) -> str:
    return (f"a horizon map needs a {name} without holes, but {count} pixels ({100 * fraction:.3g} %) have no data: "
            "fill them (e.g. gdal_fillnodata.py), crop to the covered area, or pass allow_holes=True to mark hole "
            "pixels as no data and skip holes along the rays (which can lower horizons)")


def _check_method(method: str, sweep_directions: int | None, n_azimuths: int) -> int:
    """The number of sweep grid directions (default max(n_azimuths, 360): one degree apart at
    least, as measured in docs/south-pole-light.md); raises ModelConfigError."""
    if method not in ("sweep", "exact"):
        raise ModelConfigError(f"horizon method must be 'sweep' or 'exact', not {method!r}")
    n_directions = max(n_azimuths, 360) if sweep_directions is None else int(sweep_directions)
    if n_directions < 8:
        raise ModelConfigError("sweep_directions must be at least 8")
    return n_directions


def _settings(dem: Dem, n_azimuths: int, max_distance_km: float, step_fraction: float) -> tuple:
    """Sample distances (m) and the azimuth/distance tables the kernel reads."""
    distances_m = sample_distances_m(dem.pixel_size_m, max_distance_km * 1e3, step_fraction)
    az = np.arange(n_azimuths) * (2.0 * np.pi / n_azimuths)
    theta = distances_m / dem.radius_m
    return distances_m, (np.cos(az), np.sin(az), 1.0 / np.tan(theta), 1.0 / np.sin(theta), np.cos(theta), np.sin(theta),
                         np.tan(theta))


# Samples (one pixel apart) of each pixel's own ray evaluated directly by the sweep (see
# _sweep_merge): the lines beside a pixel, up to one pixel off, look in another azimuth there
# (up to 45 deg at one pixel, 7 deg at eight).
_SWEEP_NEAR_SAMPLES = 8


def _sweep_window(dem: Dem, far_dem: Dem | None, max_distance_m: float, n_azimuths: int, n_directions: int,
                  observer_height_m: float, window: Window, origin: tuple[int, int], parallel: bool,
                  bar: tqdm | None) -> np.ndarray:
    """int16 (rows, cols, n_az) horizon of the pixels of ``window`` of ``dem`` by the sweep:
    ``n_directions`` grid directions, clockwise from map +y, each swept along parallel lines
    one pixel apart, then interpolated to every pixel's true azimuths. ``dem`` may be a
    window at (row, col) ``origin`` of a larger DEM: the lines are those of the larger DEM,
    so the result does not depend on the window."""
    heights, shapes, grids = _pack([dem] if far_dem is None else [dem, far_dem])
    proj = dem.projection.params
    t = dem.transform
    row0, col0 = int(window.row_off), int(window.col_off)
    ny, nx = int(window.height), int(window.width)
    frames = np.empty((ny, nx, 4))
    _pixel_frames[parallel](row0, row0 + ny, col0, col0 + nx, grids, proj, frames)
    out = np.empty((ny, nx, n_azimuths), dtype=np.int16)
    steps, dist_m = np.full((ny, nx, 2), -1, dtype=np.int32), np.zeros((ny, nx, 2), dtype=np.float32)
    az, elev = np.empty((ny, nx), dtype=np.float32), np.empty((ny, nx), dtype=np.float32)
    first = None
    map_per_m = _map_units_per_m(dem)
    for k in range(n_directions):
        bearing = 2.0 * math.pi * k / n_directions
        dir_x, dir_y = math.sin(bearing), math.cos(bearing)  # unit map vector
        dcol, drow = dir_x / t.a, dir_y / t.e  # index steps per map unit
        row_major = abs(drow) > abs(dcol)
        if row_major:
            sign, slope, (m0, m1), (u0, u1) = np.sign(drow), dcol / drow, (row0, row0 + ny), (col0, col0 + nx)
            m_off, u_off = origin
        else:
            sign, slope, (m0, m1), (u0, u1) = np.sign(dcol), drow / dcol, (col0, col0 + nx), (row0, row0 + ny)
            u_off, m_off = origin
        slope = 0.0 if abs(slope) < 1e-12 else slope  # exactly along the grid: cos(pi/2) is not 0
        # the larger DEM's lines (see _sweep_lines) passing within one pixel of every window pixel
        ends = (slope * (m0 + m_off), slope * (m1 - 1 + m_off))
        k0 = math.floor(u0 + u_off - 1 - max(ends))
        n_lines = math.ceil(u1 + u_off - min(ends)) - k0 + 1
        step_map = math.hypot(t.a * (slope if row_major else 1.0), t.e * (1.0 if row_major else slope))
        n_samples = (m1 - m0) + math.ceil(1.25 * max_distance_m * map_per_m / step_map) + 2
        _sweep_lines[parallel](heights, shapes, grids, proj, dem.radius_m, float(observer_height_m), max_distance_m, row_major,
                     int(sign), slope, m_off, u_off, k0, n_lines, m0, m1, u0, u1, n_samples, steps, dist_m)
        _sweep_merge[parallel](heights, shapes, grids, proj, dem.radius_m, float(observer_height_m), max_distance_m,
                               row0, col0, row_major, int(sign), slope, dir_x, dir_y, _SWEEP_NEAR_SAMPLES, dem.pixel_size_m, frames,
                               steps, dist_m, k == 0, az, elev, out)
        if k == 0:
            first = (az.copy(), elev.copy())
        if bar is not None:
            bar.update(1)
    _write_between[parallel](az, elev, *first, out)
    out[np.isnan(dem.elevation_m[row0:row0 + ny, col0:col0 + nx])] = NODATA_CDEG
    return out


def _horizon_window(dem: Dem, far_dem: Dem | None, coarse: Dem | None, fine_m: float, distances_m: np.ndarray,
                    tables: tuple, observer_height_m: float, window: Window, parallel: bool,
                    bar: tqdm | None) -> np.ndarray:
    """int16 (rows, cols, n_az) horizon of the pixels of ``window`` of ``dem``."""
    levels = _levels(dem, far_dem, distances_m, fine_m, coarse)
    args = (levels.heights, levels.shapes, levels.grids, levels.last_sample, levels.pyr, levels.pyr_shapes,
            dem.projection.params, dem.radius_m, float(observer_height_m), *tables,
            *_groups(distances_m, levels, _GROUP_SAMPLES[0]), *_groups(distances_m, levels, _GROUP_SAMPLES[1]),
            _GROUP_SAMPLES[0] // _GROUP_SAMPLES[1])
    row0, col0 = int(window.row_off), int(window.col_off)
    ny, nx = int(window.height), int(window.width)
    out = np.empty((ny, nx, tables[0].size), dtype=np.int16)
    if not parallel:
        _horizon_rows_serial(row0, row0 + ny, col0, col0 + nx, *args, out)
        return out
    block = max(1, min(ny, 8 * (os.cpu_count() or 1)))  # rows per parallel call (and progress step)
    for r in range(0, ny, block):
        r1 = min(ny, r + block)
        _horizon_rows_parallel(row0 + r, row0 + r1, col0, col0 + nx, *args, out[r:r1])
        if bar is not None:
            bar.update(r1 - r)
    return out


def compute_horizon(
    dem: Dem,
    *,
    far_dem: Dem | None = None,
    n_azimuths: int = 360,
    max_distance_km: float = 150.0,
    observer_height_m: float = 0.0,
    progress: bool = True,
    step_fraction: float = 1.0 / 128.0,
    fine_distance_km: float | None = None,
    coarse_factor: int = 8,
    window: Window | None = None,
    allow_holes: bool = False,
    method: str = "sweep",
    sweep_directions: int | None = None,
) -> HorizonMap:
    """Horizon map of ``dem`` (or of the pixels in ``window``), in memory, compiled and parallel.

    Elevations (centi-degrees) at ``n_azimuths`` azimuths k*360/n clockwise from local north,
    for an observer ``observer_height_m`` above each pixel, terrain out to
    ``max_distance_km``. ``far_dem`` (same CRS) supplies terrain beyond ``dem``'s extent.
    ``method``: "sweep" (default) or "exact" (see the module docstring). The sweep uses
    ``sweep_directions`` grid directions (default max(``n_azimuths``, 360)) and the fine DEM
    wherever it has data. For the exact method only: with ``fine_distance_km`` the fine DEM
    is sampled only that far and a block-mean copy (``coarse_factor``) beyond;
    ``step_fraction`` sets the ray steps. Raises DataFormatError for holes (unless
    ``allow_holes``), an unsupported projection or a far DEM in another CRS;
    ModelConfigError for bad settings (including an unknown method or fewer than 8 sweep
    directions).
    """
    _validate(dem, far_dem, n_azimuths, max_distance_km, observer_height_m, allow_holes)
    n_directions = _check_method(method, sweep_directions, n_azimuths)
    win = window if window is not None else Window(0, 0, dem.shape[1], dem.shape[0])
    if method == "sweep":
        with tqdm(total=n_directions, desc="horizon", unit="direction", disable=not progress) as bar:
            parallel = win.width * win.height >= 4096  # small windows: thread start-up would dominate
            out = _sweep_window(dem, far_dem, max_distance_km * 1e3, n_azimuths, n_directions, observer_height_m, win,
                                (0, 0), parallel, bar)
    else:
        distances_m, tables = _settings(dem, n_azimuths, max_distance_km, step_fraction)
        if fine_distance_km is not None and fine_distance_km < max_distance_km:
            fine_m, coarse = fine_distance_km * 1e3, coarse_dem(dem, coarse_factor)
        else:
            fine_m, coarse = np.inf, None
        with tqdm(total=int(win.height), desc="horizon", unit="row", disable=not progress) as bar:
            out = _horizon_window(dem, far_dem, coarse, fine_m, distances_m, tables, observer_height_m, win, True, bar)
    t = dem.transform @ Affine.translation(int(win.col_off), int(win.row_off))
    return HorizonMap(out, np.arange(n_azimuths) * (360.0 / n_azimuths), t, dem.crs, float(observer_height_m),
                      float(max_distance_km))


_STRIP_PIXELS = 1 << 20  # strip size when building the coarse copy of a large DEM


class _TileProgress(Callback):
    """Advances a tqdm bar by one per finished tile task."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self._bar = bar

    def _posttask(self, key, result, dsk, state, id):  # dask's signature
        if isinstance(key, tuple) and key and key[0] == "horizon-tile":
            self._bar.update(1)


def compute_horizon_tiled(
    dem_path: str | Path,
    out_path: str | Path,
    *,
    far_dem: Dem | None = None,
    n_azimuths: int = 360,
    max_distance_km: float = 150.0,
    observer_height_m: float = 0.0,
    fine_distance_km: float = 10.0,
    coarse_factor: int = 8,
    step_fraction: float = 1.0 / 128.0,
    tile_px: int = 256,
    n_workers: int | None = None,
    progress: bool = True,
    allow_holes: bool = False,
    method: str = "sweep",
    sweep_directions: int | None = None,
) -> Path:
    """Horizon map of a DEM file of any size, tile by tile with Dask, written to ``out_path``
    (the GeoTIFF of :func:`write_horizon`); returns the path.

    Memory stays bounded: the DEM is never read whole. Each tile of ``tile_px`` pixels is
    computed from a window with a halo. ``method="sweep"``: the halo covers
    ``max_distance_km`` (the sweep reads the fine DEM everywhere in reach) and ``far_dem``
    supplies the terrain beyond the DEM; the result equals :func:`compute_horizon` on the
    whole DEM up to float rounding (at most 0.01 deg in rare values). ``method="exact"``:
    the halo covers ``fine_distance_km``; beyond, a block-mean copy of the whole DEM
    (``coarse_factor``, built strip by strip) and ``far_dem``; the result equals
    :func:`compute_horizon` with the same ``fine_distance_km`` and ``coarse_factor``
    exactly. ``n_workers`` threads (default: all cores) each run one tile. Raises as
    :func:`compute_horizon`.
    """
    if tile_px % _BLOCK_PX:
        raise ModelConfigError(f"tile_px must be a multiple of {_BLOCK_PX} (the GeoTIFF block size)")
    n_directions = _check_method(method, sweep_directions, n_azimuths)
    with rasterio.open(dem_path) as ds:
        shape = (ds.height, ds.width)
    # the coarse copy, strip by strip of about _STRIP_PIXELS (block means never straddle strips)
    strips, holes = [], 0
    usable_rows = shape[0] - shape[0] % coarse_factor
    strip_rows = coarse_factor * max(1, _STRIP_PIXELS // (shape[1] * coarse_factor))
    for r in range(0, usable_rows, strip_rows):
        strip = read_dem(dem_path, window=((r, min(usable_rows, r + strip_rows)), (0, shape[1])))
        holes += strip.nodata_count
        strips.append(block_mean(strip.elevation_m, coarse_factor))
    header = read_dem(dem_path, window=((0, 1), (0, 1)))
    t = header.transform
    coarse = Dem(np.concatenate(strips), Affine(t.a * coarse_factor, 0.0, t.c, 0.0, t.e * coarse_factor, t.f), header.crs)
    _validate(coarse, far_dem, n_azimuths, max_distance_km, observer_height_m, allow_holes=True)
    if holes and not allow_holes:
        raise DataFormatError(_holes_message("DEM", holes, holes / (shape[0] * shape[1])))
    fine_m = (max_distance_km if method == "sweep" else min(fine_distance_km, max_distance_km)) * 1e3
    halo = math.ceil(fine_m * _map_units_per_m(coarse) / t.a) + 2  # + bilinear neighbour and margin
    distances_m, tables = _settings(header, n_azimuths, max_distance_km, step_fraction)
    out_path = Path(out_path)
    lock = threading.Lock()

    def tile(r0: int, c0: int) -> None:
        h, w = min(tile_px, shape[0] - r0), min(tile_px, shape[1] - c0)
        wr0, wc0 = max(0, r0 - halo), max(0, c0 - halo)
        sub = read_dem(dem_path, window=((wr0, min(shape[0], r0 + h + halo)), (wc0, min(shape[1], c0 + w + halo))))
        if method == "sweep":
            elev = _sweep_window(sub, far_dem, max_distance_km * 1e3, n_azimuths, n_directions, observer_height_m,
                                 Window(c0 - wc0, r0 - wr0, w, h), (wr0, wc0), False, None)
        else:
            elev = _horizon_window(sub, far_dem, coarse, fine_m, distances_m, tables, observer_height_m,
                                   Window(c0 - wc0, r0 - wr0, w, h), False, None)
        with lock:
            dst.write(np.ascontiguousarray(elev.transpose(2, 0, 1)), window=Window(c0, r0, w, h))

    origins = [(r, c) for r in range(0, shape[0], tile_px) for c in range(0, shape[1], tile_px)]
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(out_path, "w", **_profile(shape, n_azimuths, t, header.crs)) as dst:
        dst.update_tags(**_tags(n_azimuths, observer_height_m, max_distance_km))
        tasks = [dask.delayed(tile, pure=False)(r, c, dask_key_name=("horizon-tile", i))
                 for i, (r, c) in enumerate(origins)]
        with tqdm(total=len(tasks), desc="horizon tiles", unit="tile", disable=not progress) as bar, _TileProgress(bar):
            dask.compute(*tasks, scheduler="threads", num_workers=n_workers or os.cpu_count())
    return out_path


# ---------------------------------------------------------------------------------------
# GeoTIFF storage
# ---------------------------------------------------------------------------------------

_BLOCK_PX = 128


def _profile(shape: tuple[int, int], n_az: int, transform: Affine, crs: CRS) -> dict:
    """Tiled, deflate-compressed, pixel-interleaved int16 GeoTIFF with one band per azimuth.

    Pixel interleaving keeps all azimuths of a pixel in one tile, so a point query or a
    window reads only the tiles it covers, and it matches the (ny, nx, n_az) memory layout.
    Horizontal differencing (predictor 2) exploits the similarity of neighbouring pixels.
    """
    return {"driver": "GTiff", "width": shape[1], "height": shape[0], "count": n_az, "dtype": "int16", "crs": crs,
            "transform": transform, "nodata": NODATA_CDEG, "tiled": True, "blockxsize": _BLOCK_PX,
            "blockysize": _BLOCK_PX, "compress": "deflate", "predictor": 2, "interleave": "pixel", "BIGTIFF": "IF_SAFER"}


def _tags(n_az: int, observer_height_m: float, max_distance_km: float) -> dict:
    return {
        f"{_TAG_PREFIX}UNITS": "centidegrees",
        f"{_TAG_PREFIX}AZIMUTH_CONVENTION": _AZIMUTH_CONVENTION,
        f"{_TAG_PREFIX}N_AZIMUTHS": str(n_az),
        f"{_TAG_PREFIX}OBSERVER_HEIGHT_M": repr(float(observer_height_m)),
        f"{_TAG_PREFIX}MAX_DISTANCE_KM": repr(float(max_distance_km)),
    }


def write_horizon(hmap: HorizonMap, path: str | Path) -> Path:
    """Write ``hmap`` as a tiled, compressed GeoTIFF (one int16 band per azimuth, tags
    QAMAR_HORIZON_* for the convention, observer height and distance); returns the path."""
    path = Path(path)
    ny, nx, n_az = hmap.elev_cdeg.shape
    with rasterio.open(path, "w", **_profile((ny, nx), n_az, hmap.transform, hmap.crs)) as dst:
        dst.update_tags(**_tags(n_az, hmap.observer_height_m, hmap.max_distance_km))
        for r in range(0, ny, _BLOCK_PX):
            r1 = min(ny, r + _BLOCK_PX)
            dst.write(np.ascontiguousarray(hmap.elev_cdeg[r:r1].transpose(2, 0, 1)), window=Window(0, r, nx, r1 - r))
    return path


def read_horizon(path: str | Path, window: Window | None = None) -> HorizonMap:
    """Read a horizon map written by :func:`write_horizon` (optionally a window of it). Its
    ``elev_cdeg`` views the bands as read, (n_az, ny, nx): no copy into (ny, nx, n_az) order.

    Raises DataFormatError if the file is missing or is not a qamar horizon map.
    """
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise DataFormatError(f"cannot read horizon map {path}: {exc}; compute one with `qamar surface horizon`") from exc
    with ds:
        tags = ds.tags()
        if tags.get(f"{_TAG_PREFIX}N_AZIMUTHS") != str(ds.count) or ds.dtypes[0] != "int16":
            raise DataFormatError(f"{path} is not a qamar horizon map (no QAMAR_HORIZON_* tags): compute one with "
                                  "`qamar surface horizon`")
        win = window if window is not None else Window(0, 0, ds.width, ds.height)
        elev = ds.read(window=win).transpose(1, 2, 0)
        return HorizonMap(elev, np.arange(ds.count) * (360.0 / ds.count), ds.window_transform(win), ds.crs,
                          float(tags[f"{_TAG_PREFIX}OBSERVER_HEIGHT_M"]), float(tags[f"{_TAG_PREFIX}MAX_DISTANCE_KM"]))

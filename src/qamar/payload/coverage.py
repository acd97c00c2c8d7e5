"""Cumulative coverage of the Moon by footprints, on an equal-area HEALPix grid.

The grid is HEALPix in RING order (Gorski et al. 2005, ApJ 622, 759), MOON_ME planetocentric
latitude/longitude: ``12 nside^2`` pixels of equal area; ``nside = 512`` gives 3.1 M pixels of
0.115 deg (3.5 km on the Moon). A pixel counts as seen at an epoch when its centre is in the
footprint (pyramid of the camera, facing the spacecraft) and, optionally, lit within a Sun
elevation range and at a slant range whose GSD is under a limit.

Method (scan conversion of the footprint's boundary, exact at pixel centres). Every condition
is a cap ``a . X >= c`` of the unit sphere (the four side planes of the camera pyramid, the
spacecraft's horizon or the slant-range limit, the Sun elevation bounds), so the footprint F is
an intersection of caps and its boundary is made of arcs of their circles. Per footprint:

1. each circle is cut by the other caps into the arcs that bound F, and each arc is split where
   its height z turns (the circle's top and bottom), so that every piece ("edge") crosses each
   HEALPix ring in its z range exactly once, always entering F (going east) or always leaving
   it;
2. on each ring an edge spans, its crossing is ``phi_cap -+ arccos q`` (entering / leaving) with
   ``q`` from the ring's height; the first pixel past it gets +1 (entering) or -1 (leaving) in
   a difference array over the RING-ordered pixels. The arccos is a polynomial good to 2e-8
   rad (a few flops); where that leaves the crossing within 1e-4 pixel of a pixel centre, the
   pixel's own test against the edge's cap decides, so pixels are classified as a test of
   their centres would;
3. whether each ring starts inside F (its point at longitude 0) comes from F's intersection
   with the 0-deg meridian, a few latitude intervals, each adding +1 / -1 once for a run of
   rings.

One cumulative sum at the end gives, for every pixel, the number of epochs it was seen. The
work per footprint is two crossings per ring it spans, each a few flops and one add. Edge end
heights shared by two edges are made equal (snapped within 1e-11) so that every ring is
crossed as often entering as leaving; a footprint whose edges do not balance (tangent circles,
three circles through one point: rounding at 1e-15) is counted by testing every pixel instead.
Terrain shadowing is not modelled (sphere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import get_num_threads, njit, prange

from qamar.constants import MOON_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.io import atomic_write
from qamar.payload.camera import Camera
from qamar.payload.footprint import camera_axes, geometry
from qamar.time import tdb_s_to_utc

DEFAULT_NSIDE = 512
_MAX_ARCS = 32
_MAX_CAPS = 8
_MAX_EDGES = 128
_NEAR_CENTRE = 1e-4  # pixels: crossings closer than this to a pixel centre are settled by testing the pixel
_SNAP = 1e-11  # edge end heights closer than this are one vertex
_TWO_PI = 2.0 * math.pi



def ring_tables(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HEALPix RING-scheme rings, north to south: (z, pixels, first pixel index, phi offset).

    Ring i (1 .. 4 nside - 1) holds pixels with centres at height z_i and longitudes
    ``phi_k = 2 pi (k + offset_i) / pixels_i``, k = 0 .. pixels_i - 1 (Gorski et al. 2005,
    eqs. 4-9). Raises ValueError unless nside is a positive power of two.
    """
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside must be a power of two, got {nside}")
    i = np.arange(1, 4 * nside, dtype=np.int64)
    npix = 12 * nside * nside
    north, south = i < nside, i > 3 * nside
    j = np.where(south, 4 * nside - i, i)  # ring number counted from the nearer pole
    z = np.where(north | south, 1.0 - j**2 / (3.0 * nside**2), 4.0 / 3.0 - 2.0 * i / (3.0 * nside))
    z = np.where(south, -z, z)
    pixels = np.where(north | south, 4 * j, 4 * nside)
    first = np.where(north, 2 * j * (j - 1), 2 * nside * (nside - 1) + (i - nside) * 4 * nside)
    first = np.where(south, npix - 2 * j * (j + 1), first)
    offset = np.where(north | south, 0.5, 0.5 * ((i - nside + 1) % 2))
    return z, pixels, first, offset


def pixel_lat_lon(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and east longitude (deg, lon in [-180, 180)) of every RING pixel centre."""
    z, pixels, first, offset = ring_tables(nside)
    ring = np.repeat(np.arange(len(z)), pixels)
    k = np.arange(12 * nside * nside) - first[ring]
    lon = np.degrees(2.0 * np.pi * (k + offset[ring]) / pixels[ring])
    return np.degrees(np.arcsin(z[ring])), np.where(lon >= 180.0, lon - 360.0, lon)


def lat_lon_to_pixel(nside: int, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """RING pixel index containing each (lat, lon) in degrees (astropy-healpix)."""
    import astropy.units as u
    from astropy_healpix import lonlat_to_healpix

    lon = np.mod(np.asarray(lon_deg, float), 360.0)
    return lonlat_to_healpix(lon * u.deg, np.asarray(lat_deg, float) * u.deg, nside, order="ring")


@njit(cache=True, fastmath=False, nogil=True)
def _intersect_arc(lo, hi, count, start, width, new_lo, new_hi):
    """Intersect the arcs lo/hi[:count] (within [0, 2 pi]) with [start, start + width], start in [0, 2 pi)."""
    two_pi = 2.0 * math.pi
    end = start + width
    n = 0
    for piece in range(2):
        if piece == 0:
            a, b = start, min(end, two_pi)
        else:
            if end <= two_pi:
                break
            a, b = 0.0, end - two_pi
        for j in range(count):
            x, y = max(lo[j], a), min(hi[j], b)
            if x <= y and n < new_lo.shape[0]:
                new_lo[n] = x
                new_hi[n] = y
                n += 1
    for j in range(n):
        lo[j] = new_lo[j]
        hi[j] = new_hi[j]
    return n


def _longitude_patterns(pixels: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel longitudes shared by rings of equal pixel count and offset: (start per ring, cs).

    ``cs[start[i] + k]`` is (cos phi_k, sin phi_k) of pixel k of ring i (the polar rings of the
    two hemispheres and every other equatorial ring share a pattern: 0.5 M rows at nside 512).
    """
    patterns: dict[tuple[int, float], int] = {}
    chunks = []
    start = np.empty(len(pixels), dtype=np.int64)
    size = 0
    for i, (n, off) in enumerate(zip(pixels.tolist(), offset.tolist())):
        if (n, off) not in patterns:
            phi = 2.0 * np.pi * (np.arange(n) + off) / n
            chunks.append(np.column_stack([np.cos(phi), np.sin(phi)]))
            patterns[(n, off)] = size
            size += n
        start[i] = patterns[(n, off)]
    return start, np.concatenate(chunks)


@njit(cache=True, fastmath=False, nogil=True)
def _add_cap(caps, nc, a0, a1, a2, c):
    """Append the cap a . X >= c, normalised; the new count, -1 if it is empty, nc if it is everything."""
    norm = math.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
    c = c / norm
    if c >= 1.0:
        return -1
    if c <= -1.0:
        return nc
    caps[nc, 0], caps[nc, 1], caps[nc, 2], caps[nc, 3] = a0 / norm, a1 / norm, a2 / norm, c
    return nc + 1


@njit(cache=True, fastmath=False, nogil=True)
def _conditions(r, axes, sun, tan_x, tan_y, radius, sin_lo, sin_hi, range_max, caps):
    """The caps whose intersection is the footprint (see the module docstring) into caps; count, -1 if empty."""
    nc = 0
    for sx, sy, t in ((1.0, 0.0, tan_x), (-1.0, 0.0, tan_x), (0.0, 1.0, tan_y), (0.0, -1.0, tan_y)):
        # Pyramid side: n . (R X - r) >= 0 with n = t Z - sx X - sy Y (camera axes).
        a0 = t * axes[0, 2] - sx * axes[0, 0] - sy * axes[0, 1]
        a1 = t * axes[1, 2] - sx * axes[1, 0] - sy * axes[1, 1]
        a2 = t * axes[2, 2] - sx * axes[2, 0] - sy * axes[2, 1]
        nc = _add_cap(caps, nc, a0, a1, a2, (a0 * r[0] + a1 * r[1] + a2 * r[2]) / radius)
        if nc < 0:
            return -1
    rn = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    horizon = radius / rn
    if range_max > 0.0:
        horizon = max(horizon, (radius * radius + rn * rn - range_max * range_max) / (2.0 * radius * rn))
    nc = _add_cap(caps, nc, r[0], r[1], r[2], horizon * rn)
    if nc >= 0 and sin_lo > -1.0:
        nc = _add_cap(caps, nc, sun[0], sun[1], sun[2], sin_lo)
    if nc >= 0 and sin_hi < 1.0:
        nc = _add_cap(caps, nc, -sun[0], -sun[1], -sun[2], -sin_hi)
    return nc


@njit(cache=True, fastmath=False, nogil=True)
def _cut(lo, hi, count, amp_a, amp_b, rhs, tmp_lo, tmp_hi):
    """Keep the angles s of lo/hi[:count] where amp_a cos s + amp_b sin s >= rhs; the new count."""
    amp = math.hypot(amp_a, amp_b)
    if amp <= 1e-15:
        return 0 if rhs > 0.0 else count
    q = rhs / amp
    if q <= -1.0:
        return count
    if q >= 1.0:
        return 0
    half = math.acos(q)
    start = math.atan2(amp_b, amp_a) - half
    while start < 0.0:
        start += _TWO_PI
    return _intersect_arc(lo, hi, count, start, 2.0 * half, tmp_lo, tmp_hi)


@njit(cache=True, fastmath=False, nogil=True)
def _join_at_zero(lo, hi, count):
    """Merge the piece ending at 2 pi with the one starting at 0 into one from lo to hi + 2 pi; the new count."""
    end, begin = -1, -1
    for j in range(count):
        if hi[j] == _TWO_PI:
            end = j
        if lo[j] == 0.0:
            begin = j
    if end < 0 or begin < 0 or end == begin:
        return count
    hi[end] = hi[begin] + _TWO_PI
    lo[begin], hi[begin] = lo[count - 1], hi[count - 1]
    return count - 1


@njit(cache=True, fastmath=False, nogil=True)
def _boundary(caps, nc, edges, lo, hi, tmp_lo, tmp_hi, order):
    """Edges of the footprint into edges (rows: cap, sign, z_lo, z_hi); their count, -1 if they do not balance.

    An edge is a piece of the circle of one cap, inside all the other caps, between heights
    z_lo and z_hi, over which z is monotonic; sign +1 where crossing it eastwards enters F.
    """
    ne = 0
    for i in range(nc):
        ax, ay, az, c = caps[i, 0], caps[i, 1], caps[i, 2], caps[i, 3]
        m = math.hypot(ax, ay)
        if m < 1e-14:
            continue  # a circle of latitude: it crosses no ring (rings at its height: measure zero)
        rc = math.sqrt(1.0 - c * c)
        # Circle X(s) = c a + rc (cos s e1 + sin s e2), e1 = (ay, -ax, 0) / m horizontal, so that
        # z(s) = c az + rc m sin s: top at s = pi/2, bottom at 3 pi/2; west of the cap's centre
        # (so entering the cap eastwards) for s in (-pi/2, pi/2).
        e1x, e1y = ay / m, -ax / m
        e2x, e2y, e2z = -ax * az / m, -ay * az / m, m
        lo[0], hi[0] = 0.0, _TWO_PI
        count = 1
        for j in range(nc):
            if j == i:
                continue
            bx, by, bz, cj = caps[j, 0], caps[j, 1], caps[j, 2], caps[j, 3]
            count = _cut(lo, hi, count, rc * (bx * e1x + by * e1y), rc * (bx * e2x + by * e2y + bz * e2z),
                         cj - c * (bx * ax + by * ay + bz * az), tmp_lo, tmp_hi)
            if count == 0:
                break
        z_mid, z_amp = c * az, rc * m
        if count == 1 and lo[0] == 0.0 and hi[0] == _TWO_PI:
            # The whole circle bounds F: its two monotonic halves.
            if ne + 2 > edges.shape[0]:
                return -1
            for sign in (1.0, -1.0):
                edges[ne, 0], edges[ne, 1], edges[ne, 2], edges[ne, 3] = i, sign, z_mid - z_amp, z_mid + z_amp
                ne += 1
            continue
        count = _join_at_zero(lo, hi, count)
        for j in range(count):
            s0, s1 = lo[j], hi[j]
            z0 = z_mid + z_amp * math.sin(s0)
            turn = math.ceil((s0 - 0.5 * math.pi) / math.pi)
            while True:
                split = (turn + 0.5) * math.pi
                last = split >= s1
                s_end = s1 if last else split
                z_end = z_mid + z_amp * math.sin(s1) if last else (z_mid - z_amp if turn % 2 else z_mid + z_amp)
                if ne == edges.shape[0]:
                    return -1  # (never at 8 caps: counted pixel by pixel)
                mid = 0.5 * (s0 + s_end) % _TWO_PI
                edges[ne, 0], edges[ne, 1] = i, -1.0 if 0.5 * math.pi < mid < 1.5 * math.pi else 1.0
                edges[ne, 2], edges[ne, 3] = min(z0, z_end), max(z0, z_end)
                ne += 1
                if last:
                    break
                s0, z0 = split, z_end
                turn += 1
    return ne if _snap_and_balance(edges, ne, order) else -1


@njit(cache=True, fastmath=False, nogil=True)
def _snap_and_balance(edges, ne, order):
    """Give edge end heights within _SNAP of each other one value; True if every height band
    between them is crossed as often entering as leaving (order: scratch, >= 2 ne)."""
    m = 2 * ne
    for k in range(m):
        order[k] = k
    for k in range(1, m):  # insertion sort of the end heights (a few tens)
        key = order[k]
        v = edges[key // 2, 2 + key % 2]
        j = k - 1
        while j >= 0 and edges[order[j] // 2, 2 + order[j] % 2] > v:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = key
    anchor = edges[order[0] // 2, 2 + order[0] % 2]
    for k in range(1, m):
        e, side = order[k] // 2, 2 + order[k] % 2
        if edges[e, side] - anchor <= _SNAP:
            edges[e, side] = anchor
        else:
            anchor = edges[e, side]
    for k in range(m - 1):
        below = edges[order[k] // 2, 2 + order[k] % 2]
        above = edges[order[k + 1] // 2, 2 + order[k + 1] % 2]
        if above > below:
            total = 0.0
            for e in range(ne):
                if edges[e, 2] <= below and edges[e, 3] >= above:
                    total += edges[e, 1]
            if total != 0.0:
                return False
    return True


@njit(cache=True, fastmath=False, nogil=True)
def _meridian(caps, nc, neg_z, first, pixels, diff, lo, hi, tmp_lo, tmp_hi):
    """+1 / -1 in diff for the runs of rings whose longitude-0 point is in the footprint."""
    lo[0], hi[0] = 0.0, _TWO_PI
    count = _intersect_arc(lo, hi, 1, 1.5 * math.pi, math.pi, tmp_lo, tmp_hi)  # latitudes -90..90 deg
    for j in range(nc):
        # X = (cos lat, 0, sin lat): ax cos lat + az sin lat >= c.
        count = _cut(lo, hi, count, caps[j, 0], caps[j, 2], caps[j, 3], tmp_lo, tmp_hi)
        if count == 0:
            return
    count = _join_at_zero(lo, hi, count)
    for j in range(count):  # latitudes in [3 pi / 2, 5 pi / 2], where sin increases
        top = np.searchsorted(neg_z, -math.sin(hi[j]))
        bottom = np.searchsorted(neg_z, -math.sin(lo[j]), side="right") - 1
        if top <= bottom:
            diff[first[top]] += 1
            diff[first[bottom] + pixels[bottom]] -= 1


@njit(cache=True, fastmath=False, nogil=True)
def _crossing_pixels(phi_cap, sign, inv_m, c, az, z_ring, inv_rho, pixels_f, offset, i0, i1, at):
    """Crossing positions in pixel units on rings i0..i1-1 into at[:i1 - i0] (branch-free, vectorisable).

    In the cap: ax cos phi + ay sin phi >= (c - az z) / rho, i.e. cos(phi - phi_cap) >= q;
    entering at phi_cap - acos q, leaving at phi_cap + acos q. The arccos is Abramowitz and
    Stegun (1964) eq. 4.4.46, |error| <= 2e-8 rad; the crossing lies before pixel ceil(at).
    """
    for i in range(i0, i1):
        q = min(1.0, max(-1.0, (c - az * z_ring[i]) * inv_rho[i] * inv_m))
        x = abs(q)
        p = ((((((-0.0012624911 * x + 0.0066700901) * x - 0.0170881256) * x + 0.0308918810) * x - 0.0501743046) * x
              + 0.0889789874) * x - 0.2145988016) * x + 1.5707963050
        r = math.sqrt(1.0 - x) * p
        half = r if q >= 0.0 else math.pi - r
        turn = (phi_cap - sign * half) * (1.0 / _TWO_PI)
        turn = turn + 1.0 if turn < 0.0 else turn
        at[i - i0] = turn * pixels_f[i] - offset[i]


@njit(cache=True, fastmath=False, nogil=True)
def _scan_edges(caps, edges, ne, neg_z, z_ring, inv_rho, pixels, pixels_f, first, offset, pattern, cs, diff, at):
    """Add every edge's ring crossings to diff (step 2 of the module docstring); at: scratch (rings,)."""
    for e in range(ne):
        cap, sign = int(edges[e, 0]), edges[e, 1]
        ax, ay, az, c = caps[cap, 0], caps[cap, 1], caps[cap, 2], caps[cap, 3]
        step = int(sign)
        i0 = np.searchsorted(neg_z, -edges[e, 3], side="right")
        i1 = np.searchsorted(neg_z, -edges[e, 2], side="right")
        _crossing_pixels(math.atan2(ay, ax), sign, 1.0 / math.hypot(ax, ay), c, az, z_ring, inv_rho, pixels_f, offset,
                         i0, i1, at)
        for i in range(i0, i1):
            x = at[i - i0]
            k = math.floor(x + 0.5)
            if abs(x - k) > _NEAR_CENTRE:
                k = k + 1 if x > k else k
            else:
                # Within the arccos error of pixel k's centre: the pixel itself decides.
                n = pixels[i]
                j = k - n if k >= n else k
                inside = ax * cs[pattern[i] + j, 0] + ay * cs[pattern[i] + j, 1] >= (c - az * z_ring[i]) * inv_rho[i]
                k = k if inside == (sign > 0.0) else k + 1
                k = k - n if k > n else k
            diff[first[i] + k] += step


@njit(cache=True, fastmath=False, nogil=True)
def _scan_pixels(caps, nc, z_ring, rho, pixels, first, pattern, cs, diff):
    """Add the footprint by testing every pixel centre (for footprints whose edges do not balance)."""
    for i in range(z_ring.shape[0]):
        z, r = z_ring[i], rho[i]
        inside = False
        for k in range(pixels[i]):
            x, y = r * cs[pattern[i] + k, 0], r * cs[pattern[i] + k, 1]
            now = True
            for j in range(nc):
                if caps[j, 0] * x + caps[j, 1] * y + caps[j, 2] * z < caps[j, 3]:
                    now = False
                    break
            if now != inside:
                diff[first[i] + k] += 1 if now else -1
                inside = now
        if inside:
            diff[first[i] + pixels[i]] -= 1


@njit(cache=True, fastmath=False, nogil=True)
def _add_footprint(r, axes, sun, tan_x, tan_y, radius, sin_lo, sin_hi, range_max, z_ring, neg_z, rho, inv_rho,
                   pixels, pixels_f, first, offset, pattern, cs, diff, caps, edges, lo, hi, tmp_lo, tmp_hi, order, at):
    """Add one footprint to diff: its edges scanned, or every pixel tested if they do not balance."""
    nc = _conditions(r, axes, sun, tan_x, tan_y, radius, sin_lo, sin_hi, range_max, caps)
    if nc <= 0:
        return
    ne = _boundary(caps, nc, edges, lo, hi, tmp_lo, tmp_hi, order)
    if ne < 0:
        _scan_pixels(caps, nc, z_ring, rho, pixels, first, pattern, cs, diff)
        return
    _meridian(caps, nc, neg_z, first, pixels, diff, lo, hi, tmp_lo, tmp_hi)
    _scan_edges(caps, edges, ne, neg_z, z_ring, inv_rho, pixels, pixels_f, first, offset, pattern, cs, diff, at)


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _accumulate(r_all, axes_all, sun_all, tan_x, tan_y, radius, sin_lo, sin_hi, range_max,
                z_ring, neg_z, rho, inv_rho, pixels, pixels_f, first, offset, pattern, cs, diff):
    """Footprints of all epochs into the per-thread difference arrays diff (threads, npix + 1)."""
    threads = diff.shape[0]
    n = r_all.shape[0]
    per = (n + threads - 1) // threads
    for t in prange(threads):
        caps = np.empty((_MAX_CAPS, 4))
        edges = np.empty((_MAX_EDGES, 4))
        order = np.empty(2 * _MAX_EDGES, dtype=np.int64)
        lo, hi = np.empty(_MAX_ARCS), np.empty(_MAX_ARCS)
        tmp_lo, tmp_hi = np.empty(_MAX_ARCS), np.empty(_MAX_ARCS)
        at = np.empty(z_ring.shape[0])
        for i in range(t * per, min(n, (t + 1) * per)):
            _add_footprint(r_all[i], axes_all[i], sun_all[i], tan_x, tan_y, radius, sin_lo, sin_hi, range_max, z_ring,
                           neg_z, rho, inv_rho, pixels, pixels_f, first, offset, pattern, cs, diff[t], caps, edges, lo,
                           hi, tmp_lo, tmp_hi, order, at)


@dataclass
class CoverageMap:
    """Epoch counts per HEALPix RING pixel, per camera, over a sampled span.

    ``counts[name]`` (12 nside^2,) int32: epochs (every ``step_s``) at which the pixel centre was
    in that camera's footprint under the conditions; ``sun_elev_deg``/``max_gsd_m``: the
    conditions (None: not applied).
    """

    nside: int
    step_s: float
    start_tdb_s: float
    stop_tdb_s: float
    epochs: int
    counts: dict[str, np.ndarray]
    sun_elev_deg: tuple[float, float] | None = None
    max_gsd_m: float | None = None
    _lat_lon: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def total(self) -> np.ndarray:
        """Epoch counts summed over the cameras."""
        return np.sum(list(self.counts.values()), axis=0)

    def covered(self, camera: str | None = None) -> np.ndarray:
        """Boolean map: seen at least once (by ``camera``, or by any)."""
        return (self.counts[camera] if camera else self.total) > 0

    def hours_seen(self, camera: str | None = None) -> np.ndarray:
        """Time each pixel spent in view (h), sampled every ``step_s``."""
        return (self.counts[camera] if camera else self.total) * (self.step_s / 3600.0)

    def lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre latitude and longitude (deg), computed once."""
        if self._lat_lon is None:
            self._lat_lon = pixel_lat_lon(self.nside)
        return self._lat_lon

    def fraction(self, region=None, camera: str | None = None) -> float:
        """Fraction (0..1) of the region's area seen: the whole Moon if ``region`` is None.

        ``region`` has ``contains(lat_deg, lon_deg) -> bool array`` (a
        :class:`~qamar.payload.targets.Target` with an area). Raises ValueError for a region
        smaller than one pixel (no pixel centre inside).
        """
        seen = self.covered(camera)
        if region is None:
            return float(np.mean(seen))
        inside = region.contains(*self.lat_lon())
        if not np.any(inside):
            raise ValueError(f"{getattr(region, 'name', 'the region')} holds no pixel centre at nside "
                             f"{self.nside}; use a larger region or a larger nside")
        return float(np.mean(seen[inside]))

    def summary(self, regions=()) -> dict:
        """JSON-ready percentages: whole Moon per camera and combined, and each region combined."""
        return {
            "start_utc": tdb_s_to_utc(self.start_tdb_s),
            "stop_utc": tdb_s_to_utc(self.stop_tdb_s),
            "step_s": self.step_s,
            "epochs": self.epochs,
            "nside": self.nside,
            "pixel_km": float(np.sqrt(4 * np.pi / (12 * self.nside**2)) * MOON_RADIUS_KM),
            "sun_elev_deg": list(self.sun_elev_deg) if self.sun_elev_deg else None,
            "max_gsd_m": self.max_gsd_m,
            "covered_pct": 100.0 * self.fraction(),
            "covered_pct_by_camera": {name: 100.0 * self.fraction(camera=name) for name in self.counts},
            "regions_pct": {region.name: 100.0 * self.fraction(region) for region in regions},
        }

    def to_fits(self, path: str | Path) -> Path:
        """Write the maps as a HEALPix FITS binary table (one column of epoch counts per camera).

        Header: PIXTYPE HEALPIX, ORDERING RING, NSIDE, COORDSYS 'MOON_ME' plus the span and
        conditions, readable by healpy/astropy-healpix. Written atomically.
        """
        from astropy.io import fits

        columns = [fits.Column(name=name[:68], format="J", array=counts) for name, counts in self.counts.items()]
        hdu = fits.BinTableHDU.from_columns(columns)
        cards = {
            "PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": self.nside, "INDXSCHM": "IMPLICIT",
            "FIRSTPIX": 0, "LASTPIX": 12 * self.nside**2 - 1, "COORDSYS": "MOON_ME",
            "STEP_S": self.step_s, "START": tdb_s_to_utc(self.start_tdb_s), "STOP": tdb_s_to_utc(self.stop_tdb_s),
            "SUNELMIN": self.sun_elev_deg[0] if self.sun_elev_deg else "none",
            "SUNELMAX": self.sun_elev_deg[1] if self.sun_elev_deg else "none",
            "MAXGSDM": self.max_gsd_m if self.max_gsd_m else "none",
        }
        for key, value in cards.items():
            hdu.header[key] = value
        with atomic_write(path, binary=True) as stream:
            hdu.writeto(stream)
        return Path(path)


def _rings(nside: int) -> tuple:
    """Ring tables the kernels take: z, -z, rho, 1/rho, pixels, pixels (float), first, offset, pattern, cs."""
    z, pixels, first, offset = ring_tables(nside)
    rho = np.sqrt((1.0 - z) * (1.0 + z))
    pattern, cs = _longitude_patterns(pixels, offset)
    return z, -z, rho, 1.0 / rho, pixels, pixels.astype(float), first, offset, pattern, cs


def _add_epochs(diff: np.ndarray, rings: tuple, camera: Camera, r_me_km: np.ndarray, axes: np.ndarray,
                sun_unit: np.ndarray, sun_elev_deg: tuple[float, float] | None, max_gsd_m: float | None) -> None:
    """Add ``camera``'s footprints at the epochs (ME: position km, camera axes, unit Sun direction) to
    the per-thread difference arrays ``diff`` (threads, npix + 1)."""
    sin_lo, sin_hi = -2.0, 2.0  # no light condition
    if sun_elev_deg:
        sin_lo, sin_hi = (math.sin(math.radians(x)) for x in sun_elev_deg)
    range_max = max_gsd_m / camera.ifov_rad / 1e3 if max_gsd_m else -1.0
    _accumulate(np.ascontiguousarray(r_me_km, dtype=float), np.ascontiguousarray(axes, dtype=float),
                np.ascontiguousarray(sun_unit, dtype=float), *camera.tan_half_fov, MOON_RADIUS_KM, sin_lo, sin_hi,
                range_max, *rings, diff)


def sample_epochs(trajectory, step_s: float, start_tdb_s: float | None = None, stop_tdb_s: float | None = None) -> np.ndarray:
    """Epochs every ``step_s`` from start (default: the trajectory's) to before stop.

    Raises ValueError for a non-positive step or an empty span.
    """
    start = trajectory.start_tdb_s if start_tdb_s is None else start_tdb_s
    stop = trajectory.end_tdb_s if stop_tdb_s is None else stop_tdb_s
    if not step_s > 0:
        raise ValueError(f"the sampling step must be positive, got {step_s}")
    if not stop > start:
        raise ValueError(f"the span is empty: stop {tdb_s_to_utc(stop)} is not after start {tdb_s_to_utc(start)}")
    return start + step_s * np.arange(int(np.ceil((stop - start) / step_s)))


def coverage(
    trajectory,
    cameras: list[Camera] | tuple[Camera, ...],
    *,
    step_s: float = 10.0,
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
    nside: int = DEFAULT_NSIDE,
    sun_elev_deg: tuple[float, float] | None = None,
    max_gsd_m: float | None = None,
    chunk: int = 200_000,
    ephemeris: Ephemeris | None = None,
) -> CoverageMap:
    """Coverage of nadir-LVLH-mounted ``cameras`` along ``trajectory``, sampled every ``step_s``.

    ``sun_elev_deg`` (lo, hi): count a pixel only when the Sun's centre is between those
    elevations there; ``max_gsd_m``: only where slant range x IFOV is at most that. Raises
    ValueError for a bad step, span or nside; EpochOutOfRangeError outside the trajectory.
    """
    t_all = sample_epochs(trajectory, step_s, start_tdb_s, stop_tdb_s)
    rings = _rings(nside)
    threads = get_num_threads()
    diffs = {cam.name: np.zeros((threads, 12 * nside * nside + 1), dtype=np.int32) for cam in cameras}
    for lo in range(0, len(t_all), chunk):
        geom = geometry(trajectory, t_all[lo : lo + chunk], ephemeris)
        sun = geom.sun_me_km / np.linalg.norm(geom.sun_me_km, axis=1, keepdims=True)
        for cam in cameras:
            _add_epochs(diffs[cam.name], rings, cam, geom.r_me_km, camera_axes(cam, geom), sun, sun_elev_deg, max_gsd_m)
    counts = {name: np.cumsum(d.sum(axis=0, dtype=np.int64)[:-1]).astype(np.int32) for name, d in diffs.items()}
    return CoverageMap(nside, float(step_s), float(t_all[0]), float(t_all[-1]), len(t_all), counts,
                       tuple(sun_elev_deg) if sun_elev_deg else None, max_gsd_m)

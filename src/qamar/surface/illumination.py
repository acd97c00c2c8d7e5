"""The Sun and the Earth seen from the lunar surface: directions, the visible part of the solar
disc, and maps of illumination and Earth visibility over a span of time.

Geometry. Sun and Earth positions relative to the Moon's centre come from DE440 and are
rotated into MOON_ME (``icrf_to_me``: DE440 PA orientation, then the PA-to-ME rotation of the
frames kernel), the frame of LOLA topography. They are geometric (no light time, no
aberration; the Sun's aberration is about 20 arcsec, 1/50 of its radius). A site is the point
``radius_m + height_m + observer_height_m`` along the local vertical of a pixel
(planetocentric latitude/longitude on the DEM's sphere); its east/north/up frame is
:func:`qamar.surface.terrain.enu_basis`. The direction to a body is ``r_body - r_site``:
parallax is exact for every pixel and time. (The Sun's direction changes by < 1.2e-6 rad
across a 368 km DEM, the Earth's by up to 4.8e-4 rad, 0.03 deg, and the Earth's
topocentric elevation differs from the geocentric by up to 0.26 deg.)

Azimuth is clockwise from local true north (east = 90 deg), as in
:class:`qamar.surface.horizon.HorizonMap`; elevation is above the local horizontal plane.

Definitions used for every product:

- **Sun visible fraction**: the fraction of the solar disc (angular radius
  ``asin(SUN_RADIUS_KM / distance)``, about 0.27 deg) above the horizon profile, with the
  profile taken as a straight line across the disc at the Sun's azimuth: the horizon
  elevation ``h`` and slope ``dh/daz`` interpolated linearly between azimuth samples, the
  line's angular distance from the disc centre ``d = (el - h) / sqrt(1 + (dh/daz / cos el)^2)``
  and the visible fraction the area of the disc on the sky side of the line,
  ``1 - (acos(u) - u sqrt(1 - u^2)) / pi`` with ``u = d / radius`` (a circular segment).
  Where that line cuts the disc but the disc clears every horizon sample within its azimuth
  extent (a steep line near a kink of the profile), the disc counts as wholly visible (hidden).
- **Earth in view**: the centre of the Earth is above the horizon profile (linear between
  azimuth samples); the margin ``el - h`` is reported by point queries.
- **Sunlit fraction** of a span: the mean of the Sun visible fraction over the samples
  (disc-weighted). **Earth fraction**: the fraction of samples with the Earth in view.
  **Sun and Earth**: the mean of (Sun visible fraction x Earth in view).
  **Longest night**: the longest run of consecutive samples with none of the disc visible,
  times the step (a run cut by the start or end of the span counts as it is).

Speed. The map kernel does not evaluate every sample. For each pixel and body it bisects the
span into intervals whose samples are provably all lit or all dark: the sine of the body's
elevation at the samples lies within the chord between the interval's ends plus
``A T^2 / 8`` (``A`` bounds its second differences, from the track), the samples' directions lie
within ``T w / 2`` of an end (``w`` bounds the angle between consecutive samples), hence their
azimuths within a sector around the ends' azimuths; the horizon's extremes over that sector
decide the whole interval. Only undecided intervals of a few samples are evaluated sample by
sample, with the exact formulas above. Results equal a sample-by-sample evaluation (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from numba import njit, prange
from rasterio.windows import Window
from tqdm import tqdm

from qamar.constants import SUN_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.errors import ModelConfigError
from qamar.frames import icrf_to_me
from qamar.surface.horizon import NODATA_CDEG, HorizonMap, read_horizon
from qamar.surface.terrain import Dem, enu_basis, lat_lon_to_xy, pixel_lat_lon, xy_to_lat_lon, xy_to_pixel
from qamar.time import tdb_s_to_utc, utc_to_tai_s, utc_to_tdb_s

_TWO_PI = 2.0 * math.pi
_CDEG_TO_RAD = math.pi / 18000.0
# Interval lengths (samples) of the bisection: the largest first interval keeps the swept
# angle T*w under _MAX_SWEEP_RAD; undecided intervals are halved down to _EXACT_SPAN samples,
# which are evaluated one by one. _GROUP_BINS: horizon samples per group of the sector tables
# (the first that divides the number of azimuths).
_MAX_SWEEP_RAD = 0.5
_MAX_INTERVAL = 256
_EXACT_SPAN = 8
_GROUP_BINS = (2, 1)
# Safety factor on the track bounds measured from the samples themselves.
_BOUND_SAFETY = 1.1
# Largest distance of a site from the Moon's centre used in the bounds (km): 20 km above the sphere.
_MAX_SITE_RADIUS_KM = 1760.0


# ---------------------------------------------------------------------------------------
# Epochs and body tracks
# ---------------------------------------------------------------------------------------


def epochs_tdb_s(start_utc: str, stop_utc: str, step_h: float) -> np.ndarray:
    """TDB seconds past J2000 of ``start``, ``start + step``, ... before ``stop`` (UTC, ISO 8601).

    The count comes from the elapsed SI seconds (TAI), so a year of 1 h steps has exactly
    8760 or 8784 samples. Raises ModelConfigError unless ``step_h > 0`` and ``stop > start``;
    DataFormatError for malformed dates.
    """
    if not step_h > 0.0:
        raise ModelConfigError(f"the time step must be positive, got {step_h} h")
    elapsed_s = float(utc_to_tai_s(stop_utc)) - float(utc_to_tai_s(start_utc))
    if not elapsed_s > 0.0:
        raise ModelConfigError(f"the stop time {stop_utc} must come after the start time {start_utc}")
    step_s = step_h * 3600.0
    n = int(math.ceil(elapsed_s / step_s - 1e-9))
    return float(utc_to_tdb_s(start_utc)) + step_s * np.arange(n)


@dataclass(frozen=True)
class BodyTracks:
    """Sun and Earth positions wrt the Moon's centre in MOON_ME (km) at epochs ``t_tdb_s``.

    ``sun_me_km`` and ``earth_me_km`` are (n, 3). Build it with :func:`body_tracks`, or
    directly with any positions (tests, envelopes of the Sun's path).
    """

    t_tdb_s: np.ndarray
    sun_me_km: np.ndarray
    earth_me_km: np.ndarray

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.t_tdb_s)

    @property
    def step_h(self) -> float:
        """Sampling step (h): the first interval, or 0 for a single sample."""
        return float(self.t_tdb_s[1] - self.t_tdb_s[0]) / 3600.0 if self.n > 1 else 0.0

    @property
    def sun_radius_rad(self) -> np.ndarray:
        """Angular radius of the solar disc seen from the Moon's centre (rad), (n,)."""
        return np.arcsin(SUN_RADIUS_KM / np.linalg.norm(self.sun_me_km, axis=-1))


def body_tracks(t_tdb_s: np.ndarray, ephemeris: Ephemeris | None = None) -> BodyTracks:
    """DE440 Sun and Earth positions in MOON_ME (km) at TDB seconds past J2000.

    Raises EpochOutOfRangeError (with the kernels' coverage) for epochs outside DE440.
    """
    eph = ephemeris or Ephemeris.default()
    t = np.atleast_1d(np.asarray(t_tdb_s, dtype=np.float64))
    eph.check_coverage(float(t.min()), float(t.max()))
    rot = icrf_to_me(t, eph).reshape(-1, 3, 3)
    sun = np.einsum("nij,nj->ni", rot, eph.sun_wrt_moon_icrf_km(t).reshape(-1, 3))
    earth = np.einsum("nij,nj->ni", rot, eph.earth_wrt_moon_icrf_km(t).reshape(-1, 3))
    return BodyTracks(t, np.ascontiguousarray(sun), np.ascontiguousarray(earth))


def topocentric_az_el_deg(
    target_me_km: np.ndarray, lat_deg, lon_deg, site_radius_km
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (deg, clockwise from local north, [0, 360)) and elevation (deg) of targets.

    ``target_me_km`` (..., 3) in MOON_ME relative to the Moon's centre; the site is at
    planetocentric ``lat_deg``/``lon_deg`` and ``site_radius_km`` from the centre. All
    arguments broadcast.
    """
    basis = enu_basis(lat_deg, lon_deg)
    up = basis[..., 2, :]
    d = np.asarray(target_me_km, dtype=np.float64) - np.asarray(site_radius_km, dtype=np.float64)[..., None] * up
    e = np.einsum("...i,...i->...", basis[..., 0, :], d)
    n = np.einsum("...i,...i->...", basis[..., 1, :], d)
    u = np.einsum("...i,...i->...", up, d)
    return np.degrees(np.arctan2(e, n)) % 360.0, np.degrees(np.arctan2(u, np.hypot(e, n)))


def disc_visible_fraction(offset_rad, radius_rad) -> np.ndarray:
    """Fraction of a disc of angular radius ``radius_rad`` on the far side of a straight edge
    whose distance below the disc centre is ``offset_rad`` (negative: centre below the edge).

    The circular-segment area: 1 for offset >= radius, 0 for offset <= -radius, 1/2 at 0.
    """
    u = np.clip(np.asarray(offset_rad, dtype=np.float64) / np.asarray(radius_rad, dtype=np.float64), -1.0, 1.0)
    return 1.0 - (np.arccos(u) - u * np.sqrt(1.0 - u * u)) / np.pi


# ---------------------------------------------------------------------------------------
# Compiled kernels
# ---------------------------------------------------------------------------------------


@njit(cache=True, fastmath=False, nogil=True)
def _segment_fraction(u: float) -> float:
    """Visible fraction of a unit disc whose centre is ``u`` radii above a straight edge."""
    if u >= 1.0:
        return 1.0
    if u <= -1.0:
        return 0.0
    return 1.0 - (math.acos(u) - u * math.sqrt(1.0 - u * u)) / math.pi


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _atan2(y: float, x: float) -> float:
    """atan2 to 2e-8 rad, several times faster than libm: octant reduction to |u| <= tan(pi/8)
    and the Taylor series of atan through u^15 (alternating: error <= |u|^17 / 17 < 1.9e-8)."""
    ax, ay = abs(x), abs(y)
    swap = ay > ax
    lo, hi = (ax, ay) if swap else (ay, ax)
    if hi == 0.0:
        return 0.0
    if lo > 0.41421356237309503 * hi:  # tan(pi/8): atan(t) = pi/4 + atan((t - 1) / (t + 1))
        u = (lo - hi) / (lo + hi)
        base = 0.25 * math.pi
    else:
        u = lo / hi
        base = 0.0
    u2 = u * u
    a = base + u * (1.0 + u2 * (-1.0 / 3.0 + u2 * (1.0 / 5.0 + u2 * (-1.0 / 7.0 + u2 * (
        1.0 / 9.0 + u2 * (-1.0 / 11.0 + u2 * (1.0 / 13.0 + u2 * (-1.0 / 15.0))))))))
    if swap:
        a = 0.5 * math.pi - a
    if x < 0.0:
        a = math.pi - a
    return -a if y < 0.0 else a


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _look(p_km, k, b, r_km):
    """Topocentric (north, east, up) components (km) of body sample ``k`` from a site with
    ENU basis ``b`` (east 0:3, north 3:6, up 6:9) at ``r_km`` from the centre."""
    px, py, pz = p_km[k, 0], p_km[k, 1], p_km[k, 2]
    x = px * b[3] + py * b[4] + pz * b[5]
    y = px * b[0] + py * b[1] + pz * b[2]
    z = px * b[6] + py * b[7] + pz * b[8] - r_km
    return x, y, z


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _direction(p_km, k, b, r_km, out, i):
    """Topocentric unit vector (north, east, up) of body sample ``k`` into ``out[i:i + 3]``;
    ``out[i + 3]`` = -1 marks its azimuth as not yet computed (see :func:`_azimuth`)."""
    x, y, z = _look(p_km, k, b, r_km)
    inv = 1.0 / math.sqrt(x * x + y * y + z * z)
    out[i] = x * inv
    out[i + 1] = y * inv
    out[i + 2] = z * inv
    out[i + 3] = -1.0


def _diamond_table(n: int) -> np.ndarray:
    """Azimuth (rad) at n + 1 evenly spaced "diamond angles" p in [0, 4]: the point
    (north, east) = (1 - p, p) for p <= 1, (1 - p, 2 - p) to 2, (p - 3, 2 - p) to 3, (p - 3, p - 4)."""
    p = np.linspace(0.0, 4.0, n + 1)
    north = np.where(p <= 2.0, 1.0 - p, p - 3.0)
    east = np.where(p <= 1.0, p, np.where(p <= 3.0, 2.0 - p, p - 4.0))
    az = np.arctan2(east, north) % _TWO_PI
    az[-1] = _TWO_PI
    return az


# Azimuth through the diamond angle p = 1 - n / (|n| + |e|) (east >= 0) or 3 + n / (|n| + |e|):
# one division and a table (linear between 16384 entries, error < 2e-8 rad) instead of atan2.
_AZ_TABLE = _diamond_table(16384)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _azimuth(v, i):
    """Azimuth (rad, [0, 2 pi)) of the direction in ``v[i:i + 3]``, computed once into ``v[i + 3]``."""
    if v[i + 3] < 0.0:
        n, e = v[i], v[i + 1]
        ratio = n / (abs(n) + abs(e)) if abs(n) + abs(e) > 0.0 else 1.0
        p = 1.0 - ratio if e >= 0.0 else 3.0 + ratio
        f = p * ((_AZ_TABLE.size - 1) / 4.0)
        j = min(int(f), _AZ_TABLE.size - 2)
        v[i + 3] = _AZ_TABLE[j] + (f - j) * (_AZ_TABLE[j + 1] - _AZ_TABLE[j])
    return v[i + 3]


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _horizon_at(h, naz, az):
    """Horizon elevation (rad) and slope d h / d az (rad/rad) at azimuth ``az`` in [0, 2 pi),
    linear between the ``naz`` samples of ``h`` (``h[naz] == h[0]``)."""
    f = az * (naz / _TWO_PI)
    j = int(f)
    if j >= naz:
        j = naz - 1
    fr = f - j
    h0 = h[j]
    h1 = h[j + 1]
    return h0 + fr * (h1 - h0), (h1 - h0) * (naz / _TWO_PI)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _asin(s: float) -> float:
    """asin to 1e-9 rad: its Taylor series through s^13 for |s| <= 0.3 (remainder < 3e-10),
    else via :func:`_atan2`."""
    if abs(s) > 0.3:
        return _atan2(s, math.sqrt(max(0.0, 1.0 - s * s)))
    s2 = s * s
    return s * (1.0 + s2 * (1.0 / 6.0 + s2 * (3.0 / 40.0 + s2 * (5.0 / 112.0 + s2 * (35.0 / 1152.0 + s2 * (
        63.0 / 2816.0 + s2 * (231.0 / 13312.0)))))))


@njit(cache=True, fastmath=False, nogil=True)
def _partial_fraction(el, d, tilt2, cos2, az, h, naz, disc_rad):
    """Visible fraction of a disc that the straight horizon line cuts: the circular segment,
    unless the disc lies wholly above (below) every horizon sample within its azimuth extent
    (a steep line), then 1 (0)."""
    half = min(disc_rad / math.sqrt(cos2), math.pi)  # azimuth half-width of the disc
    j0 = int(math.floor((az - half) * (naz / _TWO_PI)))
    j1 = int(math.floor((az + half) * (naz / _TWO_PI))) + 1
    lo, hi = 10.0, -10.0
    for j in range(j0, j1 + 1):
        jj = j + naz if j < 0 else (j - naz if j >= naz else j)
        lo = min(lo, h[jj])
        hi = max(hi, h[jj])
    if el - disc_rad > hi:
        return 1.0
    if el + disc_rad < lo:
        return 0.0
    return _segment_fraction(d / (math.sqrt(1.0 + tilt2) * disc_rad))


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _value(zeta, az, h, naz, disc_rad):
    """Exact value of one sample from the sine of its elevation and its azimuth: the Sun's
    visible fraction (``disc_rad`` > 0, the segment beyond the straight horizon line through
    the horizon's value and slope at the centre's azimuth; see :func:`_partial_fraction`) or
    1/0 for a body centre above/below the horizon (``disc_rad`` == 0). Also returns the
    elevation and the horizon there (rad)."""
    el = _asin(zeta)
    hh, slope = _horizon_at(h, naz, az)
    if disc_rad == 0.0:
        return (1.0 if el > hh else 0.0), el, hh
    d = el - hh
    tilt2 = slope * slope / max(1.0 - zeta * zeta, 1e-18)  # (slope / cos el)^2
    if d * d >= disc_rad * disc_rad * (1.0 + tilt2):  # the edge misses the disc
        return (1.0 if d > 0.0 else 0.0), el, hh
    return _partial_fraction(el, d, tilt2, max(1.0 - zeta * zeta, 1e-18), az, h, naz, disc_rad), el, hh


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _sector_extremes(gmin, gmax, ng, az_lo, az_hi):
    """Horizon extremes (rad) over azimuths [az_lo, az_hi] (within one turn of [0, 2 pi)):
    those of the groups (``ng`` per turn) the interval touches."""
    g0 = int(math.floor(az_lo * (ng / _TWO_PI)))
    g1 = int(math.floor(az_hi * (ng / _TWO_PI)))
    if g1 - g0 + 1 >= ng:
        g0, g1 = 0, ng - 1
    lo, hi = 10.0, -10.0
    for g in range(g0 + ng, g1 + ng + 1):  # gmin/gmax hold three turns: index g + ng
        lo = min(lo, gmin[g])
        hi = max(hi, gmax[g])
    return lo, hi


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _asin_bounds(s_lo, s_hi):
    """Lower bound of asin(s_lo) and upper bound of asin(s_hi) (rad). For |s| <= 1/2,
    |s| <= |asin s| <= |s| (1 + s^2 / 5) (the series x + x^3/6 + 3x^5/40 + ... ); else exact."""
    if abs(s_lo) <= 0.5:
        lo = s_lo if s_lo >= 0.0 else s_lo * (1.0 + 0.2 * s_lo * s_lo)
    else:
        s_lo = max(-1.0, min(1.0, s_lo))
        lo = _atan2(s_lo, math.sqrt(1.0 - s_lo * s_lo))
    if abs(s_hi) <= 0.5:
        hi = s_hi if s_hi <= 0.0 else s_hi * (1.0 + 0.2 * s_hi * s_hi)
    else:
        s_hi = max(-1.0, min(1.0, s_hi))
        hi = _atan2(s_hi, math.sqrt(1.0 - s_hi * s_hi))
    return lo, hi


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _decide(v, span, curv, sweep_rad, disc_rad, hmin, hmax, gmin, gmax, ng):
    """1 if every sample of an interval is lit/in view, 0 if none is, -1 if undecided.

    ``v`` holds the ends' unit vectors and azimuths (north, east, up, az) x 2; ``span`` is the
    interval's length in samples, ``curv`` the bound on second differences of the sine of the
    elevation, ``sweep_rad`` the bound on the angle between consecutive samples.

    Elevation: the samples' sines of elevation lie within ``curv span^2 / 8`` of the chord
    between the ends. Azimuth: sample k is within (k - k_a) w of end a and (k_b - k) w of end b,
    so all samples lie in the spherical ellipse with foci a, b and major axis span w, hence
    within beta = acos(cos(span w / 2) / cos(ab / 2)) of the great-circle arc ab (its
    semi-minor axis); the arc's azimuth runs monotonically from a to b (it stays below 75 deg).
    """
    margin = curv * span * span / 8.0
    el_lo, el_hi = _asin_bounds(min(v[2], v[6]) - margin, max(v[2], v[6]) + margin)
    el_lo -= disc_rad
    el_hi += disc_rad
    if el_lo > hmax:
        return 1
    if el_hi < hmin:
        return 0
    el_abs = max(abs(el_lo), abs(el_hi))
    cos_el = 1.0 - 0.5 * el_abs * el_abs  # <= cos(el_abs)
    half = 0.5 * span * sweep_rad
    if cos_el < 0.5 or half > 0.3:
        return -1
    h2 = half * half
    cos_half = 1.0 - h2 * (0.5 - h2 * (1.0 / 24.0 - h2 / 720.0))  # <= cos(half): alternating series
    cos_ab2 = math.sqrt(max(0.0, 0.5 * (1.0 + v[0] * v[4] + v[1] * v[5] + v[2] * v[6])))  # cos(ab / 2)
    s2 = max(0.0, 0.5 * (1.0 - cos_half / cos_ab2))  # sin^2(beta / 2)
    if s2 > 0.0625:
        return -1
    sb = math.sqrt(s2)
    beta = 2.0 * sb * (1.0 + 0.2 * s2)  # >= 2 asin(sqrt(s2)) for sqrt(s2) <= 1/2
    x = (beta + disc_rad) / cos_el
    if x > 0.5:
        return -1
    pad = x * (1.0 + 0.2 * x * x)  # >= asin(sin(beta + disc) / cos(el)) for x <= 1/2
    az_a = _azimuth(v, 0)
    d = _azimuth(v, 4) - az_a
    if d > math.pi:
        d -= _TWO_PI
    elif d < -math.pi:
        d += _TWO_PI
    lo, hi = _sector_extremes(gmin, gmax, ng, az_a + min(0.0, d) - pad, az_a + max(0.0, d) + pad)
    if el_lo > hi:
        return 1
    if el_hi < lo:
        return 0
    return -1


@njit(cache=True, fastmath=False, nogil=True)
def _body_segments(p_km, disc_rad, disc_max, sweep_rad, curv, first_span, b, r_km, h, naz, hmin, hmax,
                   gmin, gmax, ng, seg_start, seg_state, values, stack_k, stack_v, v):
    """Split the samples of one body into runs: state 0 (none visible), 1 (all visible) or
    2 (values per sample in ``values``). Returns the number of runs; ``seg_start[n]`` = n samples.
    ``stack_k``/``stack_v`` (depth, 2)/(depth, 8) and ``v`` (8,) are work space."""
    nt = p_km.shape[0]
    nseg = 0
    if nt == 1:
        _direction(p_km, 0, b, r_km, v, 0)
        values[0] = _value(v[2], _azimuth(v, 0), h, naz, disc_rad[0] if disc_max > 0.0 else 0.0)[0]
        seg_start[0] = 0
        seg_state[0] = 2
        seg_start[1] = 1
        return 1
    k0 = 0
    _direction(p_km, 0, b, r_km, v, 4)
    while k0 < nt - 1:
        k1 = min(k0 + first_span, nt - 1)
        stack_k[0, 0] = k0
        stack_k[0, 1] = k1
        stack_v[0, 0:4] = v[4:8]
        _direction(p_km, k1, b, r_km, v, 4)
        stack_v[0, 4:8] = v[4:8]
        top = 1
        while top > 0:  # depth first, left half first: runs come out in time order
            top -= 1
            i0, i1 = stack_k[top, 0], stack_k[top, 1]
            e = stack_v[top]
            state = _decide(e, i1 - i0, curv, sweep_rad, disc_max, hmin, hmax, gmin, gmax, ng)
            if state < 0 and i1 - i0 <= _EXACT_SPAN:  # evaluate every sample exactly
                state = 2
                values[i0] = _value(e[2], _azimuth(e, 0), h, naz, disc_rad[i0] if disc_max > 0.0 else 0.0)[0]
                for k in range(i0 + 1, i1):
                    _direction(p_km, k, b, r_km, v, 0)
                    values[k] = _value(v[2], _azimuth(v, 0), h, naz, disc_rad[k] if disc_max > 0.0 else 0.0)[0]
                if i1 == nt - 1:  # the last interval owns the last sample
                    values[i1] = _value(e[6], _azimuth(e, 4), h, naz, disc_rad[i1] if disc_max > 0.0 else 0.0)[0]
            if state >= 0:
                if nseg == 0 or seg_state[nseg - 1] != state:
                    seg_start[nseg] = i0
                    seg_state[nseg] = state
                    nseg += 1
                continue
            im = (i0 + i1) // 2
            # right half [im, i1] stays at `top`, left half [i0, im] goes above it
            stack_k[top + 1, 0] = i0
            stack_k[top + 1, 1] = im
            stack_v[top + 1, 0:4] = e[0:4]
            _direction(p_km, im, b, r_km, stack_v[top + 1], 4)
            stack_k[top, 0] = im
            stack_v[top, 0:4] = stack_v[top + 1, 4:8]
            top += 2
        k0 = k1
    seg_start[nseg] = nt
    return nseg


@njit(cache=True, fastmath=False, nogil=True)
def _track_segments(p_km, disc_rad, disc_max, sweep_rad, curv, first_span, reach, lat_rad, b, r_km, h, naz, hmin,
                    hmax, gmin, gmax, ng, seg_start, seg_state, values, stack_k, stack_v, v):
    """:func:`_body_segments` after the whole-track check of :func:`_reach` (one run when the
    body can never, or always, be seen), with the horizon bounds narrowed to its reach."""
    state, lo, hi = _reach(reach, lat_rad, b, disc_max, hmin, hmax, gmin, gmax, ng, v)
    if state >= 0:
        seg_start[0] = 0
        seg_state[0] = state
        seg_start[1] = p_km.shape[0]
        return 1
    return _body_segments(p_km, disc_rad, disc_max, sweep_rad, curv, first_span, b, r_km, h, naz, lo, hi, gmin,
                          gmax, ng, seg_start, seg_state, values, stack_k, stack_v, v)


@njit(cache=True, fastmath=False, nogil=True)
def _reach(reach, lat_rad, b, disc_rad, hmin, hmax, gmin, gmax, ng, v):
    """Where a body can be over the whole track, seen from a pixel: (state, lo, hi) with state
    0/1 when no/every sample is visible whatever the time, else -1, and lo/hi the horizon's
    extremes over the azimuths the body can take (the pixel's extremes if unbounded).

    ``reach`` = (m_x, m_y, m_z, alpha, dec_lo, dec_hi): every topocentric direction of the
    track lies within ``alpha`` of the unit vector m (MOON_ME; alpha < 0 if unused) and its
    latitude in [dec_lo, dec_hi] (rad). A direction of latitude dec seen from latitude lat
    has elevation in [|lat + dec| - pi/2, pi/2 - |lat - dec|]."""
    el_hi = 0.5 * math.pi - _gap(lat_rad, reach[4], reach[5])
    el_lo = _gap(-lat_rad, reach[4], reach[5]) - 0.5 * math.pi
    lo, hi = hmin, hmax
    alpha = reach[3]
    if alpha >= 0.0:
        v[0] = reach[0] * b[3] + reach[1] * b[4] + reach[2] * b[5]
        v[1] = reach[0] * b[0] + reach[1] * b[1] + reach[2] * b[2]
        v[2] = reach[0] * b[6] + reach[1] * b[7] + reach[2] * b[8]
        v[3] = -1.0
        el_m = _asin(v[2])
        el_hi = min(el_hi, el_m + alpha)
        el_lo = max(el_lo, el_m - alpha)
        cos_m = math.cos(el_m)
        if alpha + disc_rad < 0.5 * cos_m:
            x = (alpha + disc_rad) / cos_m
            pad = x * (1.0 + 0.2 * x * x)  # >= asin(sin(alpha + disc) / cos(el_m)), x <= 1/2
            az = _azimuth(v, 0)
            lo, hi = _sector_extremes(gmin, gmax, ng, az - pad, az + pad)
    if el_hi + disc_rad < lo:
        return 0, lo, hi
    if el_lo - disc_rad > hi:
        return 1, lo, hi
    return -1, lo, hi


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _gap(x, a, b):
    """Distance from x to the interval [a, b] (0 inside)."""
    return a - x if x < a else (x - b if x > b else 0.0)


@njit(cache=True, fastmath=False, nogil=True)
def _pixel_horizon(row_cdeg, h, gmin, gmax, gsize):
    """Fill the pixel's horizon (rad, h[naz] = h[0]) and its group extremes (three turns);
    return (min, max) or (nan, nan) if the row has no data."""
    naz = row_cdeg.size
    ng = naz // gsize
    hmin, hmax = 10.0, -10.0
    for j in range(naz):
        v = row_cdeg[j]
        if v == NODATA_CDEG:
            return math.nan, math.nan
        h[j] = v * _CDEG_TO_RAD
        hmin = min(hmin, h[j])
        hmax = max(hmax, h[j])
    h[naz] = h[0]
    for g in range(ng):
        lo, hi = 10.0, -10.0
        for j in range(g * gsize, g * gsize + gsize + 1):
            lo = min(lo, h[j])
            hi = max(hi, h[j])
        gmin[g] = gmin[g + ng] = gmin[g + 2 * ng] = lo
        gmax[g] = gmax[g + ng] = gmax[g + 2 * ng] = hi
    return hmin, hmax


@njit(cache=True, fastmath=False, nogil=True)
def _enu(lat_rad, lon_rad, b):
    """ENU basis of :func:`qamar.surface.terrain.enu_basis` into b (east, north, up)."""
    sl, cl, so, co = math.sin(lat_rad), math.cos(lat_rad), math.sin(lon_rad), math.cos(lon_rad)
    b[0], b[1], b[2] = -so, co, 0.0
    b[3], b[4], b[5] = -sl * co, -sl * so, cl
    b[6], b[7], b[8] = cl * co, cl * so, sl


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _illumination_rows(elev_cdeg, lat_rad, lon_rad, r_km, sun_km, sun_rad, sun_bounds, sun_reach, earth_km,
                       earth_bounds, earth_reach, spans, gsize, sun_sum, earth_sum, both_sum, night_max):
    """Per pixel of a block of rows: sum over samples of the Sun's visible fraction, of Earth
    in view and of their product, and the longest run of samples with no Sun (in samples).
    NaN where the pixel or its horizon has no data. ``earth_km`` may have 0 rows (Sun only)."""
    ny, nx, naz = elev_cdeg.shape
    nt = sun_km.shape[0]
    with_earth = earth_km.shape[0] == nt
    ng = naz // gsize
    disc_max = sun_rad.max()
    for iy in prange(ny):
        h = np.empty(naz + 1)
        gmin = np.empty(3 * ng)
        gmax = np.empty(3 * ng)
        b = np.empty(9)
        seg_s = np.empty(nt + 1, np.int64)
        state_s = np.empty(nt + 1, np.int8)
        val_s = np.empty(nt)
        seg_e = np.empty(nt + 1, np.int64)
        state_e = np.empty(nt + 1, np.int8)
        val_e = np.empty(nt)
        stack_k = np.empty((64, 2), np.int64)
        stack_v = np.empty((64, 8))
        v = np.empty(8)
        for ix in range(nx):
            r = r_km[iy, ix]
            hmin, hmax = _pixel_horizon(elev_cdeg[iy, ix], h, gmin, gmax, gsize)
            if not r > 0.0 or math.isnan(hmin):
                sun_sum[iy, ix] = earth_sum[iy, ix] = both_sum[iy, ix] = night_max[iy, ix] = math.nan
                continue
            _enu(lat_rad[iy, ix], lon_rad[iy, ix], b)
            horiz = math.hypot(b[6], b[7])
            curv_s = _BOUND_SAFETY * (sun_bounds[1] * horiz + sun_bounds[2] * abs(b[8]) + r * sun_bounds[3])
            n_s = _track_segments(sun_km, sun_rad, disc_max, sun_bounds[0], curv_s, spans[0], sun_reach,
                                  lat_rad[iy, ix], b, r, h, naz, hmin, hmax, gmin, gmax, ng, seg_s, state_s, val_s,
                                  stack_k, stack_v, v)
            total, run, longest = 0.0, 0, 0
            for i in range(n_s):
                k0, k1, s = seg_s[i], seg_s[i + 1], state_s[i]
                if s == 0:
                    run += k1 - k0
                    longest = max(longest, run)
                elif s == 1:
                    total += k1 - k0
                    run = 0
                else:
                    for k in range(k0, k1):
                        total += val_s[k]
                        if val_s[k] > 0.0:
                            run = 0
                        else:
                            run += 1
                            longest = max(longest, run)
            sun_sum[iy, ix] = total
            night_max[iy, ix] = longest
            if not with_earth:
                continue
            curv_e = _BOUND_SAFETY * (earth_bounds[1] * horiz + earth_bounds[2] * abs(b[8]) + r * earth_bounds[3])
            n_e = _track_segments(earth_km, sun_rad, 0.0, earth_bounds[0], curv_e, spans[1], earth_reach,
                                  lat_rad[iy, ix], b, r, h, naz, hmin, hmax, gmin, gmax, ng, seg_e, state_e, val_e,
                                  stack_k, stack_v, v)
            total = 0.0
            for i in range(n_e):
                if state_e[i] == 1:
                    total += seg_e[i + 1] - seg_e[i]
                elif state_e[i] == 2:
                    for k in range(seg_e[i], seg_e[i + 1]):
                        total += val_e[k]
            earth_sum[iy, ix] = total
            both, i, j = 0.0, 0, 0
            while i < n_s and j < n_e:  # walk the two run lists together
                k0 = max(seg_s[i], seg_e[j])
                k1 = min(seg_s[i + 1], seg_e[j + 1])
                s, e = state_s[i], state_e[j]
                if s == 1 and e == 1:
                    both += k1 - k0
                elif s == 2 and e == 1:
                    for k in range(k0, k1):
                        both += val_s[k]
                elif s == 1 and e == 2:
                    for k in range(k0, k1):
                        both += val_e[k]
                elif s == 2 and e == 2:
                    for k in range(k0, k1):
                        both += val_s[k] * val_e[k]
                if seg_s[i + 1] <= seg_e[j + 1]:
                    i += 1
                else:
                    j += 1
            both_sum[iy, ix] = both


@njit(cache=True, fastmath=False, nogil=True)
def _point_series(row_cdeg, lat_rad, lon_rad, r_km, sun_km, sun_rad, earth_km, out):
    """Every sample at one site: out columns = sun el, az, horizon at sun az, visible fraction,
    earth el, az, horizon at earth az, in view (radians / fractions)."""
    naz = row_cdeg.size
    h = np.empty(naz + 1)
    for j in range(naz):
        h[j] = row_cdeg[j] * _CDEG_TO_RAD
    h[naz] = h[0]
    b = np.empty(9)
    v = np.empty(4)
    _enu(lat_rad, lon_rad, b)
    for k in range(sun_km.shape[0]):
        _direction(sun_km, k, b, r_km, v, 0)
        f, el, hh = _value(v[2], _azimuth(v, 0), h, naz, sun_rad[k])
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = el, v[3], hh, f
        _direction(earth_km, k, b, r_km, v, 0)
        f, el, hh = _value(v[2], _azimuth(v, 0), h, naz, 0.0)
        out[k, 4], out[k, 5], out[k, 6], out[k, 7] = el, v[3], hh, f


# ---------------------------------------------------------------------------------------
# Python drivers
# ---------------------------------------------------------------------------------------


def _track_bounds(p_km: np.ndarray) -> np.ndarray:
    """(sweep, curv_xy, curv_z, curv_inv_dist) bounds of a track, per sample and sample^2.

    ``sweep`` bounds the angle between the directions of consecutive samples seen from any
    site within _MAX_SITE_RADIUS_KM of the centre: asin(|p_k+1 - p_k| / (|p| - r_site)).
    The curvatures bound the second differences of the unit vector's horizontal and z parts
    and of 1/|p|, the terms of the second difference of the sine of the elevation.
    """
    dist = np.linalg.norm(p_km, axis=1)
    unit = p_km / dist[:, None]
    out = np.zeros(4)
    if len(p_km) >= 2:
        chord = np.linalg.norm(np.diff(p_km, axis=0), axis=1)
        near = np.minimum(dist[1:], dist[:-1]) - _MAX_SITE_RADIUS_KM
        out[0] = np.arcsin(np.minimum(1.0, chord / near)).max() * (1.0 + 1e-9)
    if len(p_km) >= 3:
        d2 = unit[2:] - 2.0 * unit[1:-1] + unit[:-2]
        inv = 1.0 / dist
        out[1] = np.hypot(d2[:, 0], d2[:, 1]).max()
        out[2] = np.abs(d2[:, 2]).max()
        out[3] = np.abs(inv[2:] - 2.0 * inv[1:-1] + inv[:-2]).max()
    return out


def _track_reach(p_km: np.ndarray) -> np.ndarray:
    """(m_x, m_y, m_z, alpha, dec_lo, dec_hi) of :func:`_reach` for a track: the mean direction
    and the largest angle from it (-1 beyond 0.5 rad, too wide to help) and the latitude band,
    each widened by the largest parallax of a site within _MAX_SITE_RADIUS_KM."""
    dist = np.linalg.norm(p_km, axis=1)
    unit = p_km / dist[:, None]
    parallax = float(np.arcsin(min(1.0, _MAX_SITE_RADIUS_KM / dist.min()))) * (1.0 + 1e-6) + 1e-9
    mean = unit.mean(axis=0)
    mean /= np.linalg.norm(mean)
    alpha = float(np.arccos(np.clip(unit @ mean, -1.0, 1.0)).max()) + parallax
    dec = np.arcsin(unit[:, 2])
    return np.array([*mean, alpha if alpha < 0.5 else -1.0, dec.min() - parallax, dec.max() + parallax])


def _first_span(sweep_rad: float) -> int:
    """Largest power of two T <= _MAX_INTERVAL with T * sweep <= _MAX_SWEEP_RAD (at least 2)."""
    span = _MAX_INTERVAL
    while span > 2 and span * sweep_rad > _MAX_SWEEP_RAD:
        span //= 2
    return span


def _group_size(n_az: int) -> int:
    return next(g for g in _GROUP_BINS if n_az % g == 0)


def _horizon_grid(horizon: HorizonMap | str | Path) -> tuple[tuple[int, int], Affine, float, int]:
    """(shape, transform, observer height m, azimuths) of a horizon map or horizon file."""
    if isinstance(horizon, HorizonMap):
        return horizon.shape, horizon.transform, horizon.observer_height_m, horizon.elev_cdeg.shape[2]
    corner = read_horizon(horizon, window=Window(0, 0, 1, 1))  # raises unless a qamar horizon map
    with rasterio.open(horizon) as ds:
        return (ds.height, ds.width), ds.transform, corner.observer_height_m, ds.count


def check_horizon_fits(dem: Dem, horizon: HorizonMap | str | Path, observer_height_m: float | None) -> float:
    """The observer height (m) of ``horizon``, after checking it was computed on ``dem``'s grid
    and (if given) for ``observer_height_m``. Raises ModelConfigError otherwise."""
    shape, transform, obs, _ = _horizon_grid(horizon)
    if shape != dem.shape or not transform.almost_equals(dem.transform):
        raise ModelConfigError(
            f"the horizon map grid ({shape[0]} x {shape[1]}) is not the DEM grid ({dem.shape[0]} x {dem.shape[1]}, "
            "same transform): compute the horizon map from this DEM"
        )
    if observer_height_m is not None and abs(observer_height_m - obs) > 1e-6:
        raise ModelConfigError(
            f"the horizon map was computed for an observer {obs:g} m above the ground, not {observer_height_m:g} m: "
            "recompute it with that observer height (horizons depend on it)"
        )
    return obs


@dataclass(frozen=True)
class IlluminationMaps:
    """Illumination products on a DEM grid (float32 (ny, nx), NaN where there is no data).

    ``sun_fraction``: mean visible fraction of the solar disc; ``earth_fraction``: fraction of
    samples with the Earth's centre above the horizon; ``sun_and_earth_fraction``: mean of
    their product; ``longest_night_h``: longest run of samples with no part of the Sun
    visible, times the step. Definitions in the module docstring.
    """

    sun_fraction: np.ndarray
    earth_fraction: np.ndarray
    sun_and_earth_fraction: np.ndarray
    longest_night_h: np.ndarray
    start_utc: str
    stop_utc: str
    step_h: float
    n_samples: int
    observer_height_m: float

    def summary(self) -> dict:
        """Span, sampling and the statistics of each map (over pixels with data)."""
        stats = {}
        for name in ("sun_fraction", "earth_fraction", "sun_and_earth_fraction", "longest_night_h"):
            v = getattr(self, name)
            ok = v[np.isfinite(v)]
            stats[name] = ({"mean": float(ok.mean()), "min": float(ok.min()), "max": float(ok.max())}
                           if ok.size else {"mean": None, "min": None, "max": None})
        return {
            "start_utc": self.start_utc, "stop_utc": self.stop_utc, "step_h": self.step_h,
            "n_samples": self.n_samples, "observer_height_m": self.observer_height_m,
            "pixels": int(self.sun_fraction.size), "pixels_without_data": int(np.isnan(self.sun_fraction).sum()),
            "never_lit_pixels": int(np.count_nonzero(self.sun_fraction == 0.0)),
            **stats,
        }


def sample_sums(
    dem: Dem,
    horizon: HorizonMap | str | Path,
    observer_height_m: float,
    tracks: BodyTracks,
    *,
    with_earth: bool = True,
    rows_per_block: int = 64,
    progress: bool = True,
    desc: str = "illumination",
) -> list[np.ndarray]:
    """Per pixel (float64 (ny, nx), NaN without data): sums over the samples of the Sun's
    visible fraction, of Earth in view and of their product, and the longest run of samples
    with no Sun. Without ``with_earth`` the Earth sums are left undefined. The horizon map
    must fit (see :func:`check_horizon_fits`); a path is read ``rows_per_block`` rows at a time.
    """
    n_az = _horizon_grid(horizon)[3]
    lat, lon = pixel_lat_lon(dem)
    lat_rad, lon_rad = np.radians(lat), np.radians(lon)
    r_km = (dem.radius_m + dem.elevation_m.astype(np.float64) + observer_height_m) / 1e3
    sun_km = np.ascontiguousarray(tracks.sun_me_km, dtype=np.float64)
    earth_km = np.ascontiguousarray(tracks.earth_me_km if with_earth else np.zeros((0, 3)), dtype=np.float64)
    sun_rad = np.ascontiguousarray(tracks.sun_radius_rad)
    sun_bounds, sun_reach = _track_bounds(sun_km), _track_reach(sun_km)
    earth_bounds = _track_bounds(earth_km) if with_earth else np.zeros(4)
    earth_reach = _track_reach(earth_km) if with_earth else np.zeros(6)
    spans = np.array([_first_span(sun_bounds[0]), _first_span(earth_bounds[0])], dtype=np.int64)
    ny, nx = dem.shape
    sums = [np.empty((ny, nx)) for _ in range(4)]
    with tqdm(total=ny, desc=desc, unit="row", disable=not progress) as bar:
        for r0 in range(0, ny, rows_per_block):
            r1 = min(ny, r0 + rows_per_block)
            block = (horizon.elev_cdeg[r0:r1] if isinstance(horizon, HorizonMap)
                     else read_horizon(horizon, window=Window(0, r0, nx, r1 - r0)).elev_cdeg)
            _illumination_rows(block, lat_rad[r0:r1], lon_rad[r0:r1], r_km[r0:r1], sun_km, sun_rad, sun_bounds,
                               sun_reach, earth_km, earth_bounds, earth_reach, spans, _group_size(n_az),
                               *(s[r0:r1] for s in sums))
            bar.update(r1 - r0)
    return sums


def illumination_maps(
    dem: Dem,
    horizon: HorizonMap | str | Path,
    tracks: BodyTracks,
    *,
    observer_height_m: float | None = None,
    with_earth: bool = True,
    rows_per_block: int = 64,
    progress: bool = True,
) -> IlluminationMaps:
    """Sunlit, Earth-in-view and both fractions and the longest night at every DEM pixel.

    ``horizon`` is a :class:`HorizonMap` of this DEM or the path of one (then read in blocks
    of ``rows_per_block`` rows, bounding memory). ``tracks`` gives the samples (e.g.
    ``body_tracks(epochs_tdb_s(...))``). ``observer_height_m`` (default: the horizon map's)
    must equal the height the horizon map was computed for. Compiled, parallel over rows.
    Raises ModelConfigError for a horizon map of another grid or observer height.
    """
    obs = check_horizon_fits(dem, horizon, observer_height_m)
    sun_sum, earth_sum, both_sum, night = sample_sums(dem, horizon, obs, tracks, with_earth=with_earth,
                                                     rows_per_block=rows_per_block, progress=progress)
    ny, nx = dem.shape
    n = tracks.n
    missing = np.isnan(sun_sum)
    earth = (earth_sum / n).astype(np.float32) if with_earth else np.full((ny, nx), np.nan, np.float32)
    both = (both_sum / n).astype(np.float32) if with_earth else np.full((ny, nx), np.nan, np.float32)
    earth[missing] = both[missing] = np.nan
    return IlluminationMaps(
        sun_fraction=(sun_sum / n).astype(np.float32),
        earth_fraction=earth,
        sun_and_earth_fraction=both,
        longest_night_h=(night * tracks.step_h).astype(np.float32),
        start_utc=tdb_s_to_utc(float(tracks.t_tdb_s[0]), 0),
        stop_utc=tdb_s_to_utc(float(tracks.t_tdb_s[-1]) + tracks.step_h * 3600.0, 0),
        step_h=tracks.step_h,
        n_samples=n,
        observer_height_m=float(obs),
    )


# ---------------------------------------------------------------------------------------
# Point queries
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointSeries:
    """Sun and Earth at one DEM pixel, every sample (angles in degrees).

    ``lat_deg``/``lon_deg``/``row``/``col`` locate the pixel centre used (the pixel holding
    the requested point); ``horizon_el_deg`` is its horizon profile at ``horizon_az_deg``.
    ``sun_horizon_deg``/``earth_horizon_deg`` are the horizon at the body's azimuth;
    ``earth_in_view`` is the Earth's centre above it.
    """

    lat_deg: float
    lon_deg: float
    row: int
    col: int
    height_m: float
    observer_height_m: float
    t_tdb_s: np.ndarray
    step_h: float
    sun_el_deg: np.ndarray
    sun_az_deg: np.ndarray
    sun_horizon_deg: np.ndarray
    sun_fraction: np.ndarray
    earth_el_deg: np.ndarray
    earth_az_deg: np.ndarray
    earth_horizon_deg: np.ndarray
    earth_in_view: np.ndarray
    horizon_az_deg: np.ndarray
    horizon_el_deg: np.ndarray

    @property
    def earth_margin_deg(self) -> np.ndarray:
        """Earth centre elevation above the horizon at its azimuth (deg; negative: hidden)."""
        return self.earth_el_deg - self.earth_horizon_deg

    @property
    def longest_night_h(self) -> float:
        """Longest run of samples with no part of the Sun visible, times the step (h)."""
        dark = np.concatenate(([0], (self.sun_fraction == 0.0).astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(dark))
        return float((edges[1::2] - edges[0::2]).max(initial=0) * self.step_h)

    def summary(self) -> dict:
        """The same statistics as the maps, for this pixel, plus where and when."""
        in_view = self.earth_in_view.astype(np.float64)
        return {
            "lat_deg": self.lat_deg, "lon_deg": self.lon_deg, "row": self.row, "col": self.col,
            "height_m": self.height_m, "observer_height_m": self.observer_height_m,
            "start_utc": tdb_s_to_utc(float(self.t_tdb_s[0]), 0),
            "stop_utc": tdb_s_to_utc(float(self.t_tdb_s[-1]) + self.step_h * 3600.0, 0),
            "step_h": self.step_h, "n_samples": len(self.t_tdb_s),
            "sun_fraction": float(self.sun_fraction.mean()),
            "earth_fraction": float(in_view.mean()),
            "sun_and_earth_fraction": float((self.sun_fraction * in_view).mean()),
            "longest_night_h": self.longest_night_h,
            "sun_el_max_deg": float(self.sun_el_deg.max()),
            "earth_margin_min_deg": float(self.earth_margin_deg.min()),
            "earth_margin_max_deg": float(self.earth_margin_deg.max()),
        }

    def to_csv(self, path: str | Path) -> Path:
        """Write the time series (UTC, angles in degrees, fractions) as CSV; returns the path."""
        path = Path(path)
        utc = tdb_s_to_utc(self.t_tdb_s, 0)
        cols = (self.sun_el_deg, self.sun_az_deg, self.sun_horizon_deg, self.sun_fraction, self.earth_el_deg,
                self.earth_az_deg, self.earth_horizon_deg, self.earth_margin_deg, self.earth_in_view.astype(int))
        with open(path, "w") as out:
            out.write("utc,sun_el_deg,sun_az_deg,sun_horizon_deg,sun_fraction,earth_el_deg,earth_az_deg,"
                      "earth_horizon_deg,earth_margin_deg,earth_in_view\n")
            for i, t in enumerate(utc):
                out.write(t + "," + ",".join(f"{c[i]:.4f}" for c in cols[:-1]) + f",{cols[-1][i]}\n")
        return path


def pixel_of(dem: Dem, lat_deg: float, lon_deg: float) -> tuple[int, int]:
    """(row, col) of the DEM pixel holding planetocentric ``lat_deg``/``lon_deg`` (0..360 E or
    -180..180). Raises ModelConfigError for a point outside the DEM or on a pixel without data."""
    if not -90.0 <= lat_deg <= 90.0:
        raise ModelConfigError(f"latitude {lat_deg} deg is outside -90..90")
    x, y = lat_lon_to_xy(lat_deg, lon_deg, dem)
    row_f, col_f = xy_to_pixel(x, y, dem)
    row, col = int(np.floor(row_f + 0.5)), int(np.floor(col_f + 0.5))
    ny, nx = dem.shape
    if not (0 <= row < ny and 0 <= col < nx):
        raise ModelConfigError(
            f"the point {lat_deg:g} deg, {lon_deg:g} deg E lies outside the DEM ({ny} x {nx} pixels): "
            "choose a point inside it or a DEM that covers it"
        )
    if not np.isfinite(dem.elevation_m[row, col]):
        raise ModelConfigError(f"the DEM has no data at {lat_deg:g} deg, {lon_deg:g} deg E (pixel {row}, {col}): "
                               "choose a point with data")
    return row, col


def _profile_at(dem: Dem, horizon: HorizonMap | str | Path, row: int, col: int,
                observer_height_m: float | None) -> tuple[np.ndarray, float]:
    """Horizon row (int16 centi-degrees) of DEM pixel (row, col) and the observer height (m).
    ``horizon`` is a horizon map (or file) of the DEM, or a HorizonMap of a window of it."""
    if not isinstance(horizon, HorizonMap) or horizon.shape == dem.shape:
        obs = check_horizon_fits(dem, horizon, observer_height_m)
        if isinstance(horizon, HorizonMap):
            return horizon.elev_cdeg[row, col], obs
        return read_horizon(horizon, window=Window(col, row, 1, 1)).elev_cdeg[0, 0], obs
    t, w = dem.transform, horizon.transform
    col0, row0 = (w.c - t.c) / t.a, (w.f - t.f) / t.e
    r, c = row - round(row0), col - round(col0)
    if not (abs(w.a - t.a) < 1e-9 * abs(t.a) and abs(w.e - t.e) < 1e-9 * abs(t.e)
            and abs(col0 - round(col0)) < 1e-6 and abs(row0 - round(row0)) < 1e-6
            and 0 <= r < horizon.shape[0] and 0 <= c < horizon.shape[1]):
        raise ModelConfigError("the horizon map neither covers this DEM nor a window of it holding the point: "
                               "compute it from this DEM")
    check_horizon_fits(Dem(dem.elevation_m[row - r:row - r + horizon.shape[0], col - c:col - c + horizon.shape[1]],
                           w, dem.crs), horizon, observer_height_m)
    return horizon.elev_cdeg[r, c], horizon.observer_height_m


def point_series(
    dem: Dem,
    horizon: HorizonMap | str | Path,
    lat_deg: float,
    lon_deg: float,
    tracks: BodyTracks,
    *,
    observer_height_m: float | None = None,
) -> PointSeries:
    """Sun and Earth elevation, azimuth, horizon, Sun visible fraction and Earth in view at the
    pixel holding ``lat_deg``/``lon_deg`` (0..360 E or -180..180), every sample of ``tracks``.

    ``horizon`` is a horizon map (or file) of ``dem``, or a HorizonMap of a window of it that
    holds the point (e.g. ``compute_horizon(dem, window=Window(col, row, 1, 1))``).
    Raises ModelConfigError for a point outside the DEM or without data, or a horizon map
    that does not fit (grid, observer height).
    """
    row, col = pixel_of(dem, lat_deg, lon_deg)
    profile, obs = _profile_at(dem, horizon, row, col, observer_height_m)
    if np.any(profile == NODATA_CDEG):
        raise ModelConfigError(f"the horizon map has no data at pixel {row}, {col}: choose another point")
    t = dem.transform
    (plat, plon) = (float(v) for v in xy_to_lat_lon(t.c + t.a * (col + 0.5), t.f + t.e * (row + 0.5), dem))
    height = float(dem.elevation_m[row, col])
    r_km = (dem.radius_m + height + obs) / 1e3
    out = np.empty((tracks.n, 8))
    _point_series(np.ascontiguousarray(profile), math.radians(plat), math.radians(plon), r_km,
                  np.ascontiguousarray(tracks.sun_me_km, dtype=np.float64), np.ascontiguousarray(tracks.sun_radius_rad),
                  np.ascontiguousarray(tracks.earth_me_km, dtype=np.float64), out)
    deg = np.degrees(out)
    return PointSeries(
        lat_deg=plat, lon_deg=plon, row=row, col=col, height_m=height, observer_height_m=obs,
        t_tdb_s=tracks.t_tdb_s, step_h=tracks.step_h,
        sun_el_deg=deg[:, 0], sun_az_deg=deg[:, 1], sun_horizon_deg=deg[:, 2], sun_fraction=out[:, 3],
        earth_el_deg=deg[:, 4], earth_az_deg=deg[:, 5], earth_horizon_deg=deg[:, 6], earth_in_view=out[:, 7] > 0.5,
        horizon_az_deg=np.arange(profile.size) * (360.0 / profile.size), horizon_el_deg=profile / 100.0,
    )

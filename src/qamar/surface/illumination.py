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

Speed. The map kernel does not evaluate every sample; it decides most of them from two
per-track tables and one per-pixel table, and evaluates exactly only those it cannot decide.
With ``p`` a body's position (MOON_ME), ``alpha`` its longitude, ``s = p_z / |p|`` the sine of
its latitude and ``c = rho / |p|`` the cosine, a pixel at latitude ``phi``, longitude ``lon``
sees the body's geocentric elevation sine ``X = u . p / |p| = cos(phi) c cos(beta) + sin(phi) s``
with ``beta = alpha - lon``, and its azimuth ``atan2(sin beta, |sin phi| cos beta + cos(phi) tan(dec))``
(dec its latitude; in the north pi minus that with -tan(dec)): for a polar pixel the azimuth is ``beta~ = beta`` (``pi - beta``) to within a bound E of a few tenths of a degree
(:func:`_azimuth_pad`). Parallax only lowers the elevation, by an amount bounded from the
site radii and body distances: the elevation exceeds ``eta`` exactly when X exceeds a threshold
(:func:`_track_table`), tabulated per centi-degree of horizon. So per pixel and body, for each
horizon bin g of ``beta~`` (:func:`_group_tables`): the horizon samples the exact path can read
for a sample in g (those within E plus the disc's azimuth half-width of the bin) give
thresholds on ``w = sin(phi) s``, linear in the time-only quantity s, above which every
such sample is wholly visible and below which it is wholly hidden. Blocks of 64 samples
compare their range of s with the extremes of the thresholds over the groups their range of
``alpha`` touches (runs of 8 groups), undecided blocks split into blocks of 16 (single groups),
then single samples are compared with their own group's thresholds; the rest (near the horizon:
about 5 % of the Sun's samples on the south-pole grid, half of them partly hidden discs) are
evaluated with the exact formulas above, in passes over the undecided samples
whose arithmetic LLVM vectorises (:func:`_exact_values`). Every bound carries a margin of 1e-7 rad over the exact
path's own approximations, so results equal a sample-by-sample evaluation (tested); a track
need not be smooth or sampled evenly (bounds come from the samples themselves). Away from the
poles the azimuth bound E grows and the tables decide less (correct, slower).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
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
from qamar.surface.terrain import (
    Dem,
    enu_basis,
    lat_lon_to_xy,
    pixel_lat_lon,
    xy_to_lat_lon,
    xy_to_pixel,
)
from qamar.time import tdb_s_to_utc, utc_to_tai_s, utc_to_tdb_s

_TWO_PI = 2.0 * math.pi
_CDEG_TO_RAD = math.pi / 18000.0
# Decisions run on blocks of _BLOCKS[0] samples, undecided ones on blocks of _BLOCKS[1], then on
# single samples; top-level blocks read the extremes of runs of _COARSE azimuth groups.
_BLOCKS = (64, 16)
_COARSE = 8
# Margin (rad) of every decision over the exact path's own approximations (elevation to 1e-9 rad,
# azimuth to 2e-8 rad, see _asin and _table_azimuth) and rounding.
_SLACK_RAD = 1e-7
# Horizon elevations lie within +-90 deg (centi-degrees); beyond, the threshold tables clip.
_CDEG_MAX = 9000
# Largest distance of a site from the Moon's centre used in the bounds (km): 20 km above the sphere.
_MAX_SITE_RADIUS_KM = 1760.0
# Compiled without FMA contraction (bounds hold for the exact path's own rounding) and with IEEE
# division (no zero check), which lets LLVM vectorise the exact path's loops.
_JIT = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}


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
    n = math.ceil(elapsed_s / step_s - 1e-9)
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


@njit(**_JIT, inline="always")
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


def _segment_series(degree: int) -> np.ndarray:
    """Power-series coefficients in a = 1 - |u| of Q(a) = (acos u - u sqrt(1 - u^2)) / (2 a^1.5)
    on [0, 1]: Chebyshev interpolation of degree ``degree`` of its binomial series
    Q(a) = sqrt(2) sum_n C(1/2, n) (-1/2)^n a^n / (n + 3/2) (the integral of sqrt(s (2 - s)) from
    0 to a over a^1.5; converges for a < 2, 120 terms). Degree 10: the disc fraction to 4e-12."""
    n = np.arange(120)
    binom = np.cumprod(np.concatenate(([1.0], (0.5 - n[:-1]) / (n[:-1] + 1))))  # C(1/2, n)
    series = math.sqrt(2.0) * binom * (-0.5) ** n / (n + 1.5)
    q = np.polynomial.Chebyshev.interpolate(lambda a: np.polynomial.polynomial.polyval(a, series), degree,
                                            domain=[0.0, 1.0])
    return q.convert(kind=np.polynomial.Polynomial, domain=[0.0, 1.0], window=[0.0, 1.0]).coef


_SEGMENT_Q = _segment_series(10)  # 11 coefficients, as _segment_fraction reads them


@njit(**_JIT, inline="always")
def _segment_fraction(u: float) -> float:
    """Visible fraction of a unit disc whose centre is ``u`` radii above a straight edge,
    1 - (acos u - u sqrt(1 - u^2)) / pi (0 below u = -1, 1 above u = 1), without branches on
    u's value: the segment beyond the chord at |u| is 2 a^1.5 Q(a) / pi, a = 1 - |u|."""
    a = 1.0 - min(abs(u), 1.0)
    c = _SEGMENT_Q
    a2 = a * a
    a4 = a2 * a2
    # Estrin's scheme: a short dependency chain (the kernels run without FMA contraction)
    q = ((c[0] + c[1] * a) + (c[2] + c[3] * a) * a2) + ((c[4] + c[5] * a) + (c[6] + c[7] * a) * a2) * a4 \
        + ((c[8] + c[9] * a) + c[10] * a2) * (a4 * a4)
    beyond = a * math.sqrt(a) * q * (2.0 / math.pi)
    return 1.0 - beyond if u >= 0.0 else beyond


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


@njit(**_JIT, inline="always")
def _diamond(n, e):
    """Position (in table steps) of the direction (north ``n``, east ``e``) in _AZ_TABLE."""
    ratio = n / max(abs(n) + abs(e), 1e-300)
    return (1.0 - ratio if e >= 0.0 else 3.0 + ratio) * ((_AZ_TABLE.size - 1) / 4.0)


@njit(**_JIT, inline="always")
def _table_azimuth(f):
    """Azimuth (rad, [0, 2 pi]) at table position ``f`` of :func:`_diamond`, linear between entries."""
    j = min(int(f), _AZ_TABLE.size - 2)
    return _AZ_TABLE[j] + (f - j) * (_AZ_TABLE[j + 1] - _AZ_TABLE[j])


@njit(**_JIT, inline="always")
def _horizon_at(h, naz, az):
    """Horizon elevation (rad) and slope d h / d az (rad/rad) at azimuth ``az`` in [0, 2 pi),
    linear between the ``naz`` samples of ``h`` (``h[naz] == h[0]``)."""
    f = az * (naz / _TWO_PI)
    j = min(int(f), naz - 1)
    fr = f - j
    h0 = h[j]
    h1 = h[j + 1]
    return h0 + fr * (h1 - h0), (h1 - h0) * (naz / _TWO_PI)


@njit(**_JIT, inline="always")
def _asin_series(s: float) -> float:
    """asin by its Taylor series through s^13: to 3e-10 rad for |s| <= 0.3."""
    s2 = s * s
    return s * (1.0 + s2 * (1.0 / 6.0 + s2 * (3.0 / 40.0 + s2 * (5.0 / 112.0 + s2 * (35.0 / 1152.0 + s2 * (
        63.0 / 2816.0 + s2 * (231.0 / 13312.0)))))))


@njit(**_JIT, inline="always")
def _asin(s: float) -> float:
    """asin to 1e-9 rad: its Taylor series through s^13 for |s| <= 0.3 (remainder < 3e-10),
    else via :func:`_atan2`."""
    if abs(s) > 0.3:
        return _atan2(s, math.sqrt(max(0.0, 1.0 - s * s)))
    return _asin_series(s)


@njit(**_JIT)
def _clears_samples(el, cos2, az, h, naz, disc_rad):
    """1 (0) if a disc of radius ``disc_rad`` centred at elevation ``el`` (rad, cos2 = cos^2 el)
    lies wholly above (below) every horizon sample within its azimuth extent, else -1."""
    half = min(disc_rad / math.sqrt(cos2), math.pi)  # azimuth half-width of the disc
    j0 = math.floor((az - half) * (naz / _TWO_PI))
    j1 = math.floor((az + half) * (naz / _TWO_PI)) + 1
    lo, hi = 10.0, -10.0
    for j in range(j0, j1 + 1):
        jj = j + naz if j < 0 else (j - naz if j >= naz else j)
        lo = min(lo, h[jj])
        hi = max(hi, h[jj])
    if el - disc_rad > hi:
        return 1
    if el + disc_rad < lo:
        return 0
    return -1


@njit(**_JIT)
def _exact_values(p_km, index, n, b, r_km, h, naz, disc_rad, work, values):
    """Exact values of body samples ``index[:n]`` seen from a site (ENU basis ``b``, east 0:3,
    north 3:6, up 6:9, at ``r_km`` from the centre; horizon ``h`` in rad, naz samples and
    ``h[naz] == h[0]``) into ``values[index[i]]``; ``work`` (7, >= n) keeps per i the azimuth
    (row 0), the horizon there (row 1) and the elevation (row 4), all rad.

    ``disc_rad`` (per sample) given: the Sun's visible fraction, the circular segment beyond the
    straight horizon line through the horizon's value hh and slope at the centre's azimuth,
    d / sqrt(1 + (slope / cos el)^2) from the centre (d = el - hh; 0 or 1 where it misses the
    disc), unless the line cuts the disc but the disc lies wholly above (below) every horizon
    sample within its azimuth extent (a steep line), then 1 (0): the samples bracket the line
    at the centre, so that needs |d| > disc. ``disc_rad`` empty: 1/0 for a body centre
    above/below the horizon. In passes over the samples, the arithmetic ones free of table
    look-ups (so vectorised)."""
    az, hh, slope, disc, el, f, zeta = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    with_disc = disc_rad.size > 0
    for i in range(n):
        k = index[i]
        az[i], hh[i], slope[i] = p_km[k, 0], p_km[k, 1], p_km[k, 2]  # the body, until pass 3
        disc[i] = disc_rad[k] if with_disc else 0.0
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    for i in range(n):  # topocentric unit vector: elevation, table position of the azimuth
        px, py, pz = az[i], hh[i], slope[i]
        x = px * b3 + py * b4 + pz * b5
        y = px * b0 + py * b1 + pz * b2
        z = px * b6 + py * b7 + pz * b8 - r_km
        inv = 1.0 / math.sqrt(x * x + y * y + z * z)
        zeta[i] = z * inv
        el[i] = _asin_series(z * inv)
        f[i] = _diamond(x * inv, y * inv)
    for i in range(n):  # azimuth and the horizon line there
        az[i] = _table_azimuth(f[i])
        hh[i], slope[i] = _horizon_at(h, naz, az[i])
        if abs(zeta[i]) > 0.3:
            el[i] = _asin(zeta[i])
    if not with_disc:
        for i in range(n):
            values[index[i]] = 1.0 if el[i] > hh[i] else 0.0
        return
    for i in range(n):  # the circular segment; a steep line is marked by a negative disc
        d = el[i] - hh[i]
        cos2 = max(1.0 - zeta[i] * zeta[i], 1e-18)
        r = disc[i]
        u = d * math.sqrt(cos2 / ((cos2 + slope[i] * slope[i]) * (r * r)))
        f[i] = _segment_fraction(u)
        disc[i] = -r if abs(d) > r and abs(u) < 1.0 else r
    for i in range(n):
        v = f[i]
        if disc[i] < 0.0:
            clear = _clears_samples(el[i], max(1.0 - zeta[i] * zeta[i], 1e-18), az[i], h, naz, -disc[i])
            if clear >= 0:
                v = float(clear)
        values[index[i]] = v


@njit(**_JIT, inline="always")
def _bin_extremes(h, naz, az_lo, az_hi):
    """Extremes (rad) of the horizon samples that the profile between azimuths az_lo and
    az_hi (rad, within one turn of [0, 2 pi)) interpolates."""
    j0 = math.floor(az_lo * (naz / _TWO_PI))
    j1 = math.floor(az_hi * (naz / _TWO_PI)) + 1
    if j1 - j0 + 1 >= naz:
        j0, j1 = 0, naz - 1
    lo, hi = 10.0, -10.0
    for j in range(j0, j1 + 1):
        x = h[j % naz]
        lo = min(lo, x)
        hi = max(hi, x)
    return lo, hi


@njit(**_JIT)
def _reach(reach, lat_rad, b, disc_rad, h, naz, hmin, hmax):
    """Where a body can be over the whole track, seen from a pixel: (state, el_abs) with state
    0/1 when no/every sample is visible whatever the time, else -1, and el_abs a bound on the
    absolute elevation of the body's centre over the track (rad).

    ``reach`` = (m_x, m_y, m_z, alpha, dec_lo, dec_hi): every topocentric direction of the
    track lies within ``alpha`` of the unit vector m (MOON_ME; alpha < 0 if unused) and its
    latitude in [dec_lo, dec_hi] (rad). A direction of latitude dec seen from latitude lat
    has elevation in [|lat + dec| - pi/2, pi/2 - |lat - dec|]."""
    el_hi = 0.5 * math.pi - _gap(lat_rad, reach[4], reach[5])
    el_lo = _gap(-lat_rad, reach[4], reach[5]) - 0.5 * math.pi
    lo, hi = hmin, hmax
    alpha = reach[3]
    if alpha >= 0.0:
        m_north = reach[0] * b[3] + reach[1] * b[4] + reach[2] * b[5]
        m_east = reach[0] * b[0] + reach[1] * b[1] + reach[2] * b[2]
        el_m = _asin(reach[0] * b[6] + reach[1] * b[7] + reach[2] * b[8])
        el_hi = min(el_hi, el_m + alpha)
        el_lo = max(el_lo, el_m - alpha)
        cos_m = math.cos(el_m)
        if alpha + disc_rad < 0.5 * cos_m:
            x = (alpha + disc_rad) / cos_m
            pad = x * (1.0 + 0.2 * x * x)  # >= asin(sin(alpha + disc) / cos(el_m)), x <= 1/2
            az = _table_azimuth(_diamond(m_north, m_east))
            lo, hi = _bin_extremes(h, naz, az - pad, az + pad)
    el_hi += _SLACK_RAD
    el_lo -= _SLACK_RAD
    el_abs = max(abs(el_hi), abs(el_lo))
    if el_hi + disc_rad < lo:
        return 0, el_abs
    if el_lo - disc_rad > hi:
        return 1, el_abs
    return -1, el_abs


@njit(**_JIT, inline="always")
def _gap(x, a, b):
    """Distance from x to the interval [a, b] (0 inside)."""
    return a - x if x < a else (x - b if x > b else 0.0)


@njit(**_JIT)
def _pixel_horizon(row_cdeg, profile, h):
    """Copy the pixel's horizon (any stride) into ``profile`` (int16 centi-degrees) and ``h``
    (rad, h[naz] = h[0]); return (min, max) or (nan, nan) if the row has no data."""
    naz = row_cdeg.size
    hmin, hmax = 10.0, -10.0
    for j in range(naz):
        c = row_cdeg[j]
        if c == NODATA_CDEG:
            return math.nan, math.nan
        profile[j] = c
        h[j] = c * _CDEG_TO_RAD
        hmin = min(hmin, h[j])
        hmax = max(hmax, h[j])
    h[naz] = h[0]
    return hmin, hmax


@njit(**_JIT)
def _azimuth_pad(tan_max, sin_lat, cos_lat, disc_rad, el_abs):
    """Largest distance (rad) from the pixel-relative longitude of a body (``sigma beta`` of
    :func:`_group_tables`) to the azimuths the exact path reads the horizon at: the body's
    azimuth deviation plus the disc's azimuth half-width (pi: no bound).

    With ``beta`` the body's longitude minus the pixel's, its azimuth is
    ``atan2(sin beta, S cos beta + w)`` (south; north: pi minus that with -w), where
    S = |sin lat| and w = cos lat tan(dec) (dec the body's latitude seen from the centre,
    |tan dec| <= tan_max): shifting the unit circle by w' = w / S turns a direction by at most
    asin(|w'|) and squeezing it by S by at most atan((1 - S) / (2 sqrt S))."""
    s = abs(sin_lat)
    if not s > 0.0 or el_abs >= 1.3:
        return math.pi
    w = cos_lat * tan_max / s
    if not w < 1.0:
        return math.pi
    return math.asin(w) + math.atan((1.0 - s) / (2.0 * math.sqrt(s))) + disc_rad / math.cos(el_abs) + _SLACK_RAD


@njit(**_JIT, inline="always")
def _wrap(q, naz):
    """q modulo naz in [0, naz) for an integer-valued float q (no integer division)."""
    j = int(q - naz * math.floor(q * (1.0 / naz)))
    if j >= naz:
        j -= naz
    elif j < 0:
        j += naz
    return j


@njit(**_JIT)
def _group_tables(row_cdeg, pad_rad, cs, lit_x, dark_x, v_lo, v_hi, g_first, count, lit_w, dark_w, lit_c, dark_c):
    """Thresholds of ``count`` azimuth groups from ``g_first`` (cyclic) for one pixel and body;
    returns (max lit_w, min dark_w) over them.

    Group g holds the samples whose pixel-relative longitude (``beta~`` of the module
    docstring) lies in [g, g + 1) horizon bins. At such a sample every horizon value that the
    exact path reads lies among the samples within ``pad_rad`` of the group, whose extremes
    (int16 centi-degrees) index the elevation thresholds ``lit_x``/``dark_x`` (in the sine of
    the geocentric elevation X, see :func:`_track_table`); X = cs c cos(beta~) + u_z s with
    c cos(beta~) within [v_lo[g], v_hi[g]]. So the body is wholly visible where
    w = u_z s > lit_w[g] and wholly hidden where w < dark_w[g]. ``lit_c``/``dark_c`` (4, m) get
    the extremes over runs of 1, 2, 4, 8 coarse groups (_COARSE groups each, counted over two
    turns) from each coarse group, for :func:`_coarse_extremes`."""
    naz = row_cdeg.size
    scale = naz / _TWO_PI
    k_lo = math.floor(-pad_rad * scale)
    width = math.floor(1.0 + pad_rad * scale) + 2 - k_lo
    all_hi, all_lo = -_CDEG_MAX, _CDEG_MAX
    if width >= naz:
        for j in range(naz):
            all_hi = max(all_hi, row_cdeg[j])
            all_lo = min(all_lo, row_cdeg[j])
    lit_c[0] = -math.inf
    dark_c[0] = math.inf
    top_lit, bottom_dark = -math.inf, math.inf
    g = g_first
    for _ in range(count):
        if width >= naz:
            hi, lo = all_hi, all_lo
        else:
            j = g + k_lo
            j = j + naz if j < 0 else (j - naz if j >= naz else j)
            hi = lo = row_cdeg[j]
            for _ in range(width - 1):
                j = j + 1 if j < naz - 1 else 0
                hi = max(hi, row_cdeg[j])
                lo = min(lo, row_cdeg[j])
        hi = min(max(hi, -_CDEG_MAX), _CDEG_MAX)
        lo = min(max(lo, -_CDEG_MAX), _CDEG_MAX)
        lw = lit_x[hi + _CDEG_MAX] - (cs * v_lo[g] if cs >= 0.0 else cs * v_hi[g])
        dw = dark_x[lo + _CDEG_MAX] - (cs * v_hi[g] if cs >= 0.0 else cs * v_lo[g])
        lit_w[g] = lw
        dark_w[g] = dw
        c = g // _COARSE
        lit_c[0, c] = max(lit_c[0, c], lw)
        dark_c[0, c] = min(dark_c[0, c], dw)
        top_lit = max(top_lit, lw)
        bottom_dark = min(bottom_dark, dw)
        g = g + 1 if g < naz - 1 else 0
    n_c = -(-naz // _COARSE)
    lit_c[0, n_c:2 * n_c] = lit_c[0, :n_c]
    dark_c[0, n_c:2 * n_c] = dark_c[0, :n_c]
    for level in range(1, 4):
        half = 1 << (level - 1)
        for c in range(2 * n_c):
            nxt = min(c + half, 2 * n_c - 1)
            lit_c[level, c] = max(lit_c[level - 1, c], lit_c[level - 1, nxt])
            dark_c[level, c] = min(dark_c[level - 1, c], dark_c[level - 1, nxt])
    return top_lit, bottom_dark


@njit(**_JIT, inline="always")
def _coarse_extremes(j0, n, naz, lit_c, dark_c):
    """(max lit, min dark) over the coarse groups holding the n groups from group j0 (cyclic),
    from the sparse tables of :func:`_group_tables` (two overlapping runs); more than 8 coarse
    groups give (inf, -inf), which decides nothing."""
    j1 = j0 + n - 1
    n_c = -(-naz // _COARSE)
    c0 = j0 // _COARSE
    c1 = j1 // _COARSE if j1 < naz else n_c + (j1 - naz) // _COARSE
    span = c1 - c0 + 1
    if span > 8:
        return math.inf, -math.inf
    level = (span >= 2) + (span >= 4) + (span >= 8)  # floor(log2(span)): two windows of 2^level cover it
    c2 = c1 + 1 - (1 << level)
    return max(lit_c[level, c0], lit_c[level, c2]), min(dark_c[level, c0], dark_c[level, c2])


@njit(**_JIT, inline="always")
def _block_state(blk, i, sigma, off, uz, naz, lit_w, dark_w, lit_c, dark_c, coarse, top_lit, bottom_dark):
    """1 (0) if every sample of block ``i`` is wholly visible (hidden) by the group tables of
    :func:`_group_tables`, else -1. ``blk[i]`` = (min, max) of the body's longitude (unwrapped,
    rad) and of s over the block; ``coarse``: read the coarse tables."""
    if sigma > 0.0:
        b_lo, b_hi = blk[i, 0] + off, blk[i, 1] + off
    else:
        b_lo, b_hi = off - blk[i, 1], off - blk[i, 0]
    if uz >= 0.0:
        w_lo, w_hi = uz * blk[i, 2], uz * blk[i, 3]
    else:
        w_lo, w_hi = uz * blk[i, 3], uz * blk[i, 2]
    scale = naz / _TWO_PI
    q0 = np.floor(b_lo * scale)
    left = int(np.floor(b_hi * scale) - q0) + 1
    if left >= naz:
        lit, dark = top_lit, bottom_dark
    elif coarse:
        lit, dark = _coarse_extremes(_wrap(q0, naz), left, naz, lit_c, dark_c)
        lit, dark = min(lit, top_lit), max(dark, bottom_dark)
    else:
        lit, dark = -math.inf, math.inf
        j = _wrap(q0, naz)
        while left > 0:
            lit = max(lit, lit_w[j])
            dark = min(dark, dark_w[j])
            if lit >= w_lo and dark <= w_hi:
                return -1
            left -= 1
            j = j + 1 if j < naz - 1 else 0
    if w_lo > lit:
        return 1
    if w_hi < dark:
        return 0
    return -1


@njit(**_JIT, inline="always")
def _push(seg_start, seg_state, nseg, k, state):
    """Append a run of ``state`` from sample k unless it continues the last run; returns the count."""
    if nseg == 0 or seg_state[nseg - 1] != state:
        seg_start[nseg] = k
        seg_state[nseg] = state
        return nseg + 1
    return nseg


@njit(**_JIT)
def _track_segments(tab, p_km, disc_rad, disc_max, reach, lat_rad, lon_rad, b, r_km, row_cdeg, h, hmin, hmax,
                    lit_w, dark_w, lit_c, dark_c, todo, seg_start, seg_state, values, work):
    """Split the samples of one body at one pixel into runs: state 0 (none visible), 1 (all
    visible) or 2 (values per sample in ``values``). Returns the number of runs;
    ``seg_start[n]`` = n samples. ``tab`` is the body's :func:`_track_table`; ``lit_w`` ...
    ``dark_c`` (see :func:`_group_tables`), ``todo`` (n samples) and ``work`` (7, n samples) are
    work space; ``disc_rad`` is empty for a point body (the Earth)."""
    alpha, group, s, blk1, blk2, lit_x, dark_x, v_lo, v_hi, par = tab
    nt = alpha.size
    naz = row_cdeg.size
    state, el_abs = _reach(reach, lat_rad, b, disc_max, h, naz, hmin, hmax)
    if state >= 0:
        seg_start[0] = 0
        seg_state[0] = state
        seg_start[1] = nt
        return 1
    uz = b[8]
    cos_lat = math.hypot(b[6], b[7])
    sigma = 1.0 if uz <= 0.0 else -1.0
    off = -lon_rad if sigma > 0.0 else lon_rad + math.pi
    pad = _azimuth_pad(par[1], uz, cos_lat, disc_max, el_abs)
    scale = naz / _TWO_PI
    q0 = np.floor((par[2] + off if sigma > 0.0 else off - par[3]) * scale)  # the groups the track visits
    count = min(naz, int(np.floor((par[3] + off if sigma > 0.0 else off - par[2]) * scale) - q0) + 1)
    top_lit, bottom_dark = _group_tables(row_cdeg, pad, sigma * cos_lat, lit_x, dark_x, v_lo, v_hi, _wrap(q0, naz),
                                         count, lit_w, dark_w, lit_c, dark_c)
    # single samples: the group of beta~ is floor(sigma group[k] + off_g) reduced to [0, naz) by at most two
    # subtractions (group[k] in [0, naz], off_g in [0, naz)), cheaper than wrapping the unwrapped longitude
    off_g = off * scale - naz * math.floor(off * scale / naz)
    off_g = (off_g if off_g < naz else 0.0) + naz
    t1, t2 = _BLOCKS
    nseg = n_todo = 0
    for i1 in range(blk1.shape[0]):
        k0 = i1 * t1
        state = _block_state(blk1, i1, sigma, off, uz, naz, lit_w, dark_w, lit_c, dark_c, True, top_lit, bottom_dark)
        if state >= 0:
            nseg = _push(seg_start, seg_state, nseg, k0, state)
            continue
        for i2 in range(k0 // t2, min(blk2.shape[0], (k0 + t1) // t2)):
            m0 = i2 * t2
            state = _block_state(blk2, i2, sigma, off, uz, naz, lit_w, dark_w, lit_c, dark_c, False, top_lit,
                                 bottom_dark)
            if state >= 0:
                nseg = _push(seg_start, seg_state, nseg, m0, state)
                continue
            for k in range(m0, min(nt, m0 + t2)):  # no branches on the outcome
                j = int(sigma * group[k] + off_g)  # >= 0, < 3 naz
                j -= naz * (j >= naz)
                j -= naz * (j >= naz)
                w = uz * s[k]
                lw = lit_w[j]
                values[k] = np.float64(w > lw)
                todo[n_todo] = k
                n_todo += (w <= lw) & (w >= dark_w[j])
            nseg = _push(seg_start, seg_state, nseg, m0, 2)
    _exact_values(p_km, todo, n_todo, b, r_km, h, naz, disc_rad, work, values)  # the undecided samples
    seg_start[nseg] = nt
    return nseg


@njit(**_JIT)
def _enu(lat_rad, lon_rad, b):
    """ENU basis of :func:`qamar.surface.terrain.enu_basis` into b (east, north, up)."""
    sl, cl, so, co = math.sin(lat_rad), math.cos(lat_rad), math.sin(lon_rad), math.cos(lon_rad)
    b[0], b[1], b[2] = -so, co, 0.0
    b[3], b[4], b[5] = -sl * co, -sl * so, cl
    b[6], b[7], b[8] = cl * co, cl * so, sl


@njit(**_JIT, parallel=True)
def _illumination_rows(elev_cdeg, lat_rad, lon_rad, r_km, sun_km, sun_rad, sun_tab, sun_reach, earth_km, earth_tab,
                       earth_reach, sun_sum, earth_sum, both_sum, night_max):
    """Per pixel of a block of rows: sum over samples of the Sun's visible fraction, of Earth
    in view and of their product, and the longest run of samples with no Sun (in samples).
    NaN where the pixel or its horizon has no data. ``earth_km`` may have 0 rows (Sun only)."""
    ny, nx, naz = elev_cdeg.shape
    nt = sun_km.shape[0]
    with_earth = earth_km.shape[0] == nt
    disc_max = sun_rad.max()
    for iy in prange(ny):
        h = np.empty(naz + 1)
        profile = np.empty(naz, np.int16)
        lit_w = np.empty(naz)
        dark_w = np.empty(naz)
        lit_c = np.empty((4, 2 * (-(-naz // _COARSE))))
        dark_c = np.empty((4, 2 * (-(-naz // _COARSE))))
        b = np.empty(9)
        seg_s = np.empty(nt + 1, np.int64)
        state_s = np.empty(nt + 1, np.int8)
        val_s = np.empty(nt)
        seg_e = np.empty(nt + 1, np.int64)
        state_e = np.empty(nt + 1, np.int8)
        val_e = np.empty(nt)
        work = np.empty((7, nt))
        todo = np.empty(nt, np.int64)
        no_disc = np.empty(0)
        for ix in range(nx):
            r = r_km[iy, ix]
            hmin, hmax = _pixel_horizon(elev_cdeg[iy, ix], profile, h)
            if not r > 0.0 or math.isnan(hmin):
                sun_sum[iy, ix] = earth_sum[iy, ix] = both_sum[iy, ix] = night_max[iy, ix] = math.nan
                continue
            lat, lon = lat_rad[iy, ix], lon_rad[iy, ix]
            _enu(lat, lon, b)
            n_s = _track_segments(sun_tab, sun_km, sun_rad, disc_max, sun_reach, lat, lon, b, r, profile, h, hmin,
                                  hmax, lit_w, dark_w, lit_c, dark_c, todo, seg_s, state_s, val_s, work)
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
                    for k in range(k0, k1):  # without branches on the values
                        total += val_s[k]
                        run = (run + 1) * (val_s[k] <= 0.0)
                        longest = max(longest, run)
            sun_sum[iy, ix] = total
            night_max[iy, ix] = longest
            if not with_earth:
                continue
            n_e = _track_segments(earth_tab, earth_km, no_disc, 0.0, earth_reach, lat, lon, b, r, profile, h, hmin,
                                  hmax, lit_w, dark_w, lit_c, dark_c, todo, seg_e, state_e, val_e, work)
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


@njit(**_JIT)
def _point_series(row_cdeg, lat_rad, lon_rad, r_km, sun_km, sun_rad, earth_km, out):
    """Every sample at one site: out columns = sun el, az, horizon at sun az, visible fraction,
    earth el, az, horizon at earth az, in view (radians / fractions)."""
    naz = row_cdeg.size
    nt = sun_km.shape[0]
    h = np.empty(naz + 1)
    for j in range(naz):
        h[j] = row_cdeg[j] * _CDEG_TO_RAD
    h[naz] = h[0]
    b = np.empty(9)
    _enu(lat_rad, lon_rad, b)
    every = np.arange(nt)
    work = np.empty((7, nt))
    values = np.empty(nt)
    for body, p_km, disc_rad in ((0, sun_km, sun_rad), (4, earth_km, sun_rad[:0])):
        _exact_values(p_km, every, nt, b, r_km, h, naz, disc_rad, work, values)
        out[:, body] = work[4, :nt]
        out[:, body + 1] = work[0, :nt]
        out[:, body + 2] = work[1, :nt]
        out[:, body + 3] = values


# ---------------------------------------------------------------------------------------
# Python drivers
# ---------------------------------------------------------------------------------------


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


def _track_table(p_km: np.ndarray, disc_max_rad: float, n_az: int, r_lo_km: float, r_hi_km: float) -> tuple:
    """Per-track data of the decisions (module docstring, "Speed"), for sites between r_lo_km
    and r_hi_km from the centre and horizons of n_az azimuths: (alpha, s, blocks, sub-blocks,
    lit_x, dark_x, v_lo, v_hi, (disc, tan_max, min alpha, max alpha)).

    alpha: the body's longitude (rad, MOON_ME, unwrapped), group: that longitude modulo 2 pi in
    horizon bins (in [0, n_az]), s: the sine of its latitude, per sample; blocks (n, 4): their (min, max) over _BLOCKS samples; v_lo/v_hi: extremes of
    c cos(beta) per azimuth group (c = cos of the latitude); tan_max: the largest |tan| of the
    latitude. lit_x[i] (dark_x[i]) is the sine X of the geocentric elevation (u . p / |p|) above
    which (below which) the elevation seen from the site exceeds (stays under) i - 9000
    centi-degrees plus (minus) the disc radius and _SLACK_RAD, for every site radius and body
    distance: with r' = r / |p|, sin el = (X - r') / sqrt(1 - 2 r' X + r'^2), increasing in X,
    equals sin eta at X = r' cos^2 eta + sin eta sqrt(1 - r'^2 cos^2 eta), increasing in r'.
    """
    p_km = np.asarray(p_km, dtype=np.float64).reshape(-1, 3)
    dist = np.linalg.norm(p_km, axis=1)
    rho = np.hypot(p_km[:, 0], p_km[:, 1])
    alpha = np.unwrap(np.arctan2(p_km[:, 1], p_km[:, 0]))
    s = p_km[:, 2] / dist if len(p_km) else np.zeros(0)
    blocks = []
    for size in _BLOCKS:
        ranges = np.empty((-(-len(p_km) // size), 4))
        for i in range(len(ranges)):
            a, z = alpha[i * size:(i + 1) * size], s[i * size:(i + 1) * size]
            ranges[i] = a.min(), a.max(), z.min(), z.max()
        blocks.append(ranges)
    c = rho / dist if len(p_km) else np.ones(1)
    with np.errstate(divide="ignore"):
        tan_max = float(np.max(np.abs(p_km[:, 2]) / rho)) if len(p_km) else 0.0
    eps = 1e-9  # rounding of the pixel-relative longitude
    lo = np.arange(n_az) * (_TWO_PI / n_az) - eps
    hi = lo + _TWO_PI / n_az + 2.0 * eps
    cmin, cmax = np.minimum(np.cos(lo), np.cos(hi)), np.maximum(np.cos(lo), np.cos(hi))
    cmax[(lo <= 0.0) | (hi >= _TWO_PI)] = 1.0
    cmin[(lo <= math.pi) & (hi >= math.pi)] = -1.0
    v_lo = np.minimum(c.min() * cmin, c.max() * cmin)
    v_hi = np.maximum(c.min() * cmax, c.max() * cmax)
    d_lo, d_hi = (dist.min(), dist.max()) if len(p_km) else (np.inf, np.inf)  # no samples: no parallax
    eta = np.arange(-_CDEG_MAX, _CDEG_MAX + 1) * _CDEG_TO_RAD
    margin = disc_max_rad + _SLACK_RAD
    lit_x = _sine_threshold(eta + margin, r_hi_km / d_lo)
    lit_x[eta + margin >= 0.5 * math.pi] = np.inf
    dark_x = _sine_threshold(eta - margin, r_lo_km / d_hi)
    dark_x[eta - margin <= -0.5 * math.pi] = -np.inf
    group = np.mod(alpha, _TWO_PI) * (n_az / _TWO_PI)
    return (np.ascontiguousarray(alpha), np.ascontiguousarray(group), np.ascontiguousarray(s), blocks[0], blocks[1], lit_x, dark_x, v_lo, v_hi,
            np.array([disc_max_rad, tan_max, *((alpha.min(), alpha.max()) if len(alpha) else (0.0, 0.0))]))


def _sine_threshold(eta_rad: np.ndarray, r_ratio: float) -> np.ndarray:
    """X at which (X - r') / sqrt(1 - 2 r' X + r'^2) = sin(eta), for r' = r_ratio (see _track_table)."""
    eta = np.clip(eta_rad, -0.5 * math.pi, 0.5 * math.pi)
    cos2 = np.cos(eta) ** 2
    return r_ratio * cos2 + np.sin(eta) * np.sqrt(1.0 - r_ratio**2 * cos2)


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
    rows_per_block: int = 128,  # the horizon file's tile height: each tile is decoded once
    progress: bool = True,
    desc: str = "illumination",
) -> list[np.ndarray]:
    """Per pixel (float64 (ny, nx), NaN without data): sums over the samples of the Sun's
    visible fraction, of Earth in view and of their product, and the longest run of samples
    with no Sun. Without ``with_earth`` the Earth sums are left undefined. The horizon map
    must fit (see :func:`check_horizon_fits`); a path is read ``rows_per_block`` rows at a time,
    the next block while the kernel runs on the current one (two blocks in memory).
    """
    n_az = _horizon_grid(horizon)[3]
    lat, lon = pixel_lat_lon(dem)
    lat_rad, lon_rad = np.radians(lat), np.radians(lon)
    r_km = (dem.radius_m + dem.elevation_m.astype(np.float64) + observer_height_m) / 1e3
    sun_km = np.ascontiguousarray(tracks.sun_me_km, dtype=np.float64)
    earth_km = np.ascontiguousarray(tracks.earth_me_km if with_earth else np.zeros((0, 3)), dtype=np.float64)
    sun_rad = np.ascontiguousarray(tracks.sun_radius_rad)
    ok = r_km[np.isfinite(r_km)]
    r_lo, r_hi = (float(ok.min()), float(ok.max())) if ok.size else (1.0, 1.0)
    sun_tab = _track_table(sun_km, float(sun_rad.max()), n_az, r_lo, r_hi)
    earth_tab = _track_table(earth_km, 0.0, n_az, r_lo, r_hi)
    sun_reach = _track_reach(sun_km)
    earth_reach = _track_reach(earth_km) if with_earth else np.zeros(6)
    ny, nx = dem.shape
    sums = [np.empty((ny, nx)) for _ in range(4)]

    def rows(r0: int) -> np.ndarray:
        r1 = min(ny, r0 + rows_per_block)
        if isinstance(horizon, HorizonMap):
            return horizon.elev_cdeg[r0:r1]
        return read_horizon(horizon, window=Window(0, r0, nx, r1 - r0)).elev_cdeg

    # a file is read one block ahead in a thread: GDAL's decoding and the kernel release the GIL
    with tqdm(total=ny, desc=desc, unit="row", disable=not progress) as bar, ThreadPoolExecutor(1) as reader:
        ahead = reader.submit(rows, 0)
        for r0 in range(0, ny, rows_per_block):
            block = ahead.result()
            if r0 + rows_per_block < ny:
                ahead = reader.submit(rows, r0 + rows_per_block)
            r1 = r0 + block.shape[0]
            _illumination_rows(block, lat_rad[r0:r1], lon_rad[r0:r1], r_km[r0:r1], sun_km, sun_rad, sun_tab, sun_reach,
                               earth_km, earth_tab, earth_reach, *(s[r0:r1] for s in sums))
            bar.update(r1 - r0)
    return sums


def illumination_maps(
    dem: Dem,
    horizon: HorizonMap | str | Path,
    tracks: BodyTracks,
    *,
    observer_height_m: float | None = None,
    with_earth: bool = True,
    rows_per_block: int = 128,
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
            out.writelines(t + "," + ",".join(f"{c[i]:.4f}" for c in cols[:-1]) + f",{cols[-1][i]}\n"
                           for i, t in enumerate(utc))
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

"""Earth orientation: Earth-fixed (ITRF) station vectors on ICRF axes (GCRS), through ERFA.

The celestial-to-terrestrial rotation is the IERS 2010 CIO-based chain (IERS Conventions 2010,
ch. 5, eq. 5.1) without polar motion::

    r_itrf = R3(ERA(UT1)) . C2I(X, Y, s) . r_gcrs

- ``X, Y, s``: CIP coordinates and CIO locator of the IAU 2006 precession and IAU 2000A
  nutation (``eraXys06a``), evaluated on whole-hour TT nodes and interpolated with 4-point
  Lagrange polynomials (the shortest nutation periods are days: the interpolation error is
  below 1e-12 rad, checked against direct evaluation in the tests).
- ``ERA``: the Earth rotation angle of UT1 (``eraEra00``, IERS 2010 eq. 5.15).
- ``UT1 = UTC + dut1_s``, ``dut1_s = 0`` unless given (IERS Bulletin A publishes it).

Error budget at a station, for the defaults:

- UT1 - UTC is kept below 0.9 s by leap seconds: with ``dut1_s = 0`` the Earth is rotated by
  up to 0.9 s x 7.29e-5 rad/s = 6.6e-5 rad (13.5 arcsec): 0.42 km at the equator. The local
  vertical turns by the same 13.5 arcsec, which shifts AOS/LOS of the Moon by at most about
  0.9 s (its elevation changes by at most ~15 arcsec per second). Give ``dut1_s`` to remove it.
- Polar motion (not applied) is below 0.5 arcsec: under 20 m at the station.
- IAU 2006/2000A without the published celestial-pole offsets dX, dY: about 0.3 mas, 1 cm.
- Around a leap second UTC repeats a second, so UT1 is 1 s off for that second only.

The GCRS has ICRF axes; its origin is the geocentre, so a station relative to the Moon is
``earth_wrt_moon_icrf_km + r_gcrs_km``. The relativistic difference between geocentric and
barycentric coordinates (~1e-8 relative) is a few centimetres at the station.

:class:`EarthOrientation` holds the node tables of one span for repeated use (root finding);
:func:`gcrs_to_itrf_matrix` and :func:`station_gcrs_km` are the one-off forms.
"""

from __future__ import annotations

import erfa
import numpy as np

from qamar.constants import J2000_JD, SECONDS_PER_DAY
from qamar.time import tdb_s_to_tt_s, tt_s_to_tai_s, utc_to_tai_s

# Earth rotation rate in rad per UT1 second: 2 pi x 1.00273781191135448 rev per UT1 day, the
# rate of the ERA (IERS Conventions 2010, eq. 5.15).
EARTH_ROTATION_RAD_S = 2.0 * np.pi * 1.00273781191135448 / SECONDS_PER_DAY

_NODE_STEP_S = 3600.0  # spacing of the X, Y, s nodes (TT)
_LAGRANGE_OFFSETS = np.array([-1.0, 0.0, 1.0, 2.0])  # 4-point stencil around each interval


class EarthOrientation:
    """GCRS -> ITRF rotations over a span [t0, t1] (TDB s past J2000), built once, used often.

    Holds the CIP X, Y, s nodes and the TAI - UTC table of the span so that repeated calls (root
    finding) cost only arithmetic. Epochs outside [t0, t1] raise ValueError (a bug, not a user
    error: build the object over the span you evaluate). Raises EpochOutOfRangeError before 1972.
    """

    def __init__(self, t0_tdb_s: float, t1_tdb_s: float, dut1_s: float = 0.0):
        lo, hi = float(min(t0_tdb_s, t1_tdb_s)), float(max(t0_tdb_s, t1_tdb_s))
        self.dut1_s = float(dut1_s)
        self._t_tdb_s = (lo, hi)
        tt_lo, tt_hi = (float(tdb_s_to_tt_s(t)) for t in (lo, hi))
        self._first_node = int(np.floor(tt_lo / _NODE_STEP_S)) - 1
        nodes = np.arange(self._first_node, int(np.floor(tt_hi / _NODE_STEP_S)) + 3)
        self._xys_nodes = np.stack(erfa.xys06a(J2000_JD, nodes * _NODE_STEP_S / SECONDS_PER_DAY))
        # TAI - UTC (whole seconds) changes only at UTC midnight: read it once per UTC day of the
        # span from the NAIF leap-seconds kernel (TAI - UTC is 10 to 37 s since 1972).
        tai_lo, tai_hi = (float(tt_s_to_tai_s(t)) for t in (tt_lo, tt_hi))
        first = int(np.floor((tai_lo - 40.0 + 43200.0) / SECONDS_PER_DAY)) - 1
        days = np.arange(first, int(np.floor((tai_hi + 43200.0) / SECONDS_PER_DAY)) + 2)
        midnights = (np.datetime64("2000-01-01") + days.astype("timedelta64[D]")).astype(str)
        self._midnight_tai_s = np.asarray(utc_to_tai_s(list(midnights)), dtype=float)
        self._tai_minus_utc_s = self._midnight_tai_s - (days * SECONDS_PER_DAY - 43200.0)

    def _check(self, t: np.ndarray) -> None:
        lo, hi = self._t_tdb_s
        if t.size and (t.min() < lo - 1e-6 or t.max() > hi + 1e-6):
            raise ValueError(f"epochs {t.min()}..{t.max()} outside the EarthOrientation span {lo}..{hi}")

    def utc_s(self, t_tdb_s: np.ndarray) -> np.ndarray:
        """UTC seconds past 2000-01-01T12:00:00 UTC (days of 86400 s; a leap second repeats)."""
        t = np.asarray(t_tdb_s, dtype=float)
        self._check(t)
        t_tai_s = np.asarray(tt_s_to_tai_s(tdb_s_to_tt_s(t)), dtype=float)
        k = np.clip(np.searchsorted(self._midnight_tai_s, t_tai_s, side="right") - 1, 0, len(self._midnight_tai_s) - 1)
        return t_tai_s - self._tai_minus_utc_s[k]

    def earth_rotation_angle_rad(self, t_tdb_s: np.ndarray) -> np.ndarray:
        """Earth rotation angle (rad, 0..2 pi) with UT1 = UTC + dut1_s: IERS 2010 eq. 5.15."""
        return erfa.era00(J2000_JD, (self.utc_s(t_tdb_s) + self.dut1_s) / SECONDS_PER_DAY)

    def cip_xys_rad(self, t_tdb_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CIP X, Y and CIO locator s (rad), IAU 2006/2000A: 4-point Lagrange on hourly TT nodes."""
        t = np.asarray(t_tdb_s, dtype=float)
        self._check(t)
        tt_s = np.asarray(tdb_s_to_tt_s(t), dtype=float)
        k = np.floor(tt_s / _NODE_STEP_S)
        u = tt_s / _NODE_STEP_S - k  # position inside the node interval [k, k + 1), 0..1
        index = (k - self._first_node).astype(np.int64)[:, None] + _LAGRANGE_OFFSETS.astype(np.int64)[None, :]
        weights = np.ones((len(u), 4))
        for j, node_j in enumerate(_LAGRANGE_OFFSETS):
            for m, node_m in enumerate(_LAGRANGE_OFFSETS):
                if m != j:
                    weights[:, j] *= (u - node_m) / (node_j - node_m)
        x, y, s = (np.sum(weights * values[index], axis=1) for values in self._xys_nodes)
        return x, y, s

    def gcrs_to_itrf(self, t_tdb_s: np.ndarray) -> np.ndarray:
        """Rotations GCRS (ICRF axes) -> ITRF, no polar motion (``r_itrf = M @ r_gcrs``): (n, 3, 3)."""
        t = np.atleast_1d(np.asarray(t_tdb_s, dtype=float))
        return erfa.rz(self.earth_rotation_angle_rad(t), erfa.c2ixys(*self.cip_xys_rad(t)))


def itrf_point_to_gcrs(r_itrf_km: np.ndarray, gcrs_to_itrf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (km) and velocity (km/s) on ICRF axes of an Earth-fixed point, from (n, 3, 3) rotations.

    With ``M = R3(ERA) C2I``: ``r = M^T r_itrf`` and ``v = M^T (omega z x r_itrf)`` (the Earth's
    rotation; precession-nutation rates add < 1e-8 km/s). Returns two (n, 3) arrays.
    """
    r = np.asarray(r_itrf_km, dtype=float)
    v_itrf = EARTH_ROTATION_RAD_S * np.array([-r[1], r[0], 0.0])
    return np.einsum("nji,j->ni", gcrs_to_itrf, r), np.einsum("nji,j->ni", gcrs_to_itrf, v_itrf)


def gcrs_to_itrf_matrix(t_tdb_s: float | np.ndarray, dut1_s: float = 0.0) -> np.ndarray:
    """Rotation GCRS (ICRF axes) -> ITRF without polar motion (``r_itrf = M @ r_gcrs``).

    Shape (3, 3) for a scalar epoch, else (n, 3, 3). Raises EpochOutOfRangeError before 1972
    (UTC, hence UT1, is not defined there).
    """
    t = np.asarray(t_tdb_s, dtype=float)
    flat = np.atleast_1d(t).ravel()
    matrices = EarthOrientation(flat.min(), flat.max(), dut1_s).gcrs_to_itrf(flat)
    return matrices[0] if t.ndim == 0 else matrices


def station_gcrs_km(
    r_itrf_km: np.ndarray, t_tdb_s: float | np.ndarray, dut1_s: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Geocentric position (km) and velocity (km/s) of an Earth-fixed point on ICRF axes.

    ``r_itrf_km`` (3,); epochs TDB seconds past J2000. Returns two arrays of shape (3,) for a
    scalar epoch, else (n, 3). Raises EpochOutOfRangeError before 1972.
    """
    t = np.asarray(t_tdb_s, dtype=float)
    r, v = itrf_point_to_gcrs(r_itrf_km, gcrs_to_itrf_matrix(np.atleast_1d(t).ravel(), dut1_s))
    return (r[0], v[0]) if t.ndim == 0 else (r, v)

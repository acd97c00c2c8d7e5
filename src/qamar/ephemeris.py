"""Sun and Earth relative to the Moon (JPL DE440) and the Moon's orientation (DE440 PA PCK).

Times are TDB seconds past J2000; positions are geometric (no light time, no aberration) in
km on ICRF axes (SPICE labels them "J2000"; for DE kernels they are ICRF). The kernels are
``de440s.bsp`` (SPK type 2) and ``moon_pa_de440_200625.bpc`` (binary PCK type 2 holding the
Euler angles phi, theta, psi of the Moon's principal axes), found through :mod:`qamar.data`.

jplephem only reads the files' segment directory and maps their arrays; qamar evaluates the
Chebyshev records itself, in compiled code shared by the Python API and the force models:

- Python: :class:`Ephemeris` (``Ephemeris.default()`` loads the kernels once) gives vectorised
  positions, states and ICRF -> PA matrices.
- Compiled: ``Ephemeris.kernel_data(t0, t1)`` slices the records covering a span into plain
  arrays; :func:`sun_earth_wrt_moon_km` and :func:`icrf_to_pa_matrix` evaluate them inside
  numba code.

Each record holds Chebyshev coefficients over ``[mid - radius, mid + radius]``; a component at
``t`` is ``sum_k c_k T_k((t - mid) / radius)``, exactly as SPICE's SPKE02 / PCKE02.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import numpy as np
from jplephem.pck import PCK
from jplephem.spk import SPK
from numba import njit

from qamar import data
from qamar.errors import DataFormatError, EpochOutOfRangeError

# (center, target) NAIF IDs of the SPK segments used: Sun, Earth-Moon barycentre (both wrt the
# solar-system barycentre), Moon and Earth (both wrt the Earth-Moon barycentre).
_SPK_PAIRS = ((0, 10), (0, 3), (3, 301), (3, 399))
# NAIF frame ID of MOON_PA_DE440 (moon_de440_220930.tf) and of J2000/ICRF.
_MOON_PA_FRAME_ID = 31008
_J2000_FRAME_ID = 1

_J2000_TDB = dt.datetime(2000, 1, 1, 12)

# Default margin added on both sides of a span by kernel_data: one day covers integrator
# trial steps that overshoot the requested end.
KERNEL_MARGIN_S = 86400.0

_OUTSIDE_SPAN = (
    "epoch outside the span given to Ephemeris.kernel_data; build the kernel data for the whole "
    "time span you evaluate (with its margin)"
)


class _Segment:
    """One type-2 Chebyshev segment: records ``(n, 3, ncoef)`` starting at ``init_s``."""

    def __init__(self, segment, label: str):
        daf, start_i, end_i = segment.daf, segment.start_i, segment.end_i
        init_s, intlen_s, rsize, n = daf.read_array(end_i - 3, end_i)
        ncoef = (int(rsize) - 2) // 3
        if segment.data_type != 2 or 2 + 3 * ncoef != int(rsize):
            raise DataFormatError(f"{label}: segment is of type {segment.data_type} with record size "
                                  f"{rsize}, not a 3-component type 2 Chebyshev segment; use the "
                                  "registered DE440 kernels")
        records = daf.map_array(start_i, end_i - 4).reshape(int(n), int(rsize))
        self.label = label
        self.init_s = float(init_s)
        self.intlen_s = float(intlen_s)
        self.coefficients = records[:, 2:].reshape(int(n), 3, ncoef)
        self.start_s = self.init_s
        self.stop_s = self.init_s + int(n) * self.intlen_s

    def slice(self, t0_s: float, t1_s: float) -> tuple[float, float, np.ndarray]:
        """(init_s, intlen_s, contiguous records) covering [t0_s, t1_s] inside this segment."""
        n = self.coefficients.shape[0]
        first = min(max(int(np.floor((t0_s - self.init_s) / self.intlen_s)), 0), n - 1)
        last = min(max(int(np.floor((t1_s - self.init_s) / self.intlen_s)), first), n - 1)
        # Always a fresh writable copy: a read-only view of the memory map would be a different
        # numba type and force a recompilation of every kernel that takes these records.
        records = np.array(self.coefficients[first : last + 1], dtype=np.float64, order="C")
        return self.init_s + first * self.intlen_s, self.intlen_s, records


class Ephemeris:
    """DE440 Sun/Earth/Moon positions and the DE440 Moon PA orientation.

    Build it with :meth:`default` (registered kernels, loaded once) or from explicit paths.
    Raises DataFormatError when a kernel lacks a needed segment.
    """

    def __init__(self, spk_path: Path, pck_path: Path):
        spk = SPK.open(str(spk_path))
        self._spk_segments = []
        for center, target in _SPK_PAIRS:
            found = [s for s in spk.segments if (s.center, s.target) == (center, target)]
            if not found or found[-1].frame != _J2000_FRAME_ID:
                raise DataFormatError(f"{spk_path} has no ICRF/J2000 segment of body {target} wrt "
                                      f"{center}; use the registered de440s.bsp")
            self._spk_segments.append(_Segment(found[-1], f"{spk_path} {target} wrt {center}"))
        pck = PCK.open(str(pck_path))
        self._pck_segments = [
            _Segment(s, f"{pck_path} body {s.body}")
            for s in pck.segments
            if s.body == _MOON_PA_FRAME_ID and s.frame == _J2000_FRAME_ID
        ]
        if not self._pck_segments:
            raise DataFormatError(f"{pck_path} has no MOON_PA_DE440 (31008) orientation segment "
                                  "relative to ICRF; use the registered moon_pa_de440_200625.bpc")

    @classmethod
    def default(cls) -> Ephemeris:
        """The Ephemeris of the registered kernels ``de440s`` and ``moon_pa_de440`` (cached)."""
        return _default_ephemeris()

    @property
    def coverage_tdb_s(self) -> tuple[float, float]:
        """(start, stop) TDB seconds past J2000 covered by every SPK segment and the PCK."""
        start = max(s.start_s for s in self._spk_segments)
        stop = min(s.stop_s for s in self._spk_segments)
        pck_start = min(s.start_s for s in self._pck_segments)
        pck_stop = max(s.stop_s for s in self._pck_segments)
        return max(start, pck_start), min(stop, pck_stop)

    def check_coverage(self, t0_tdb_s: float, t1_tdb_s: float) -> None:
        """Raise EpochOutOfRangeError unless [t0, t1] (TDB s past J2000) lies in the coverage."""
        start, stop = self.coverage_tdb_s
        lo, hi = min(t0_tdb_s, t1_tdb_s), max(t0_tdb_s, t1_tdb_s)
        if not (start <= lo and hi <= stop):
            bad = lo if not start <= lo else hi
            raise EpochOutOfRangeError(
                f"epoch {_tdb_text(bad)} is outside the DE440 kernels, which cover "
                f"{_tdb_text(start)} to {_tdb_text(stop)}; choose epochs inside that range"
            )

    def kernel_data(self, t0_tdb_s: float, t1_tdb_s: float, margin_s: float = KERNEL_MARGIN_S) -> tuple:
        """Chebyshev records for compiled code over [t0, t1] (TDB s, either order) +/- margin_s.

        Returns ``(sun_ssb, emb_ssb, moon_emb, earth_emb, moon_pa)``, each a tuple
        ``(init_s, intlen_s, records)`` with records a C-contiguous float64 array of shape
        ``(n, 3, ncoef)`` (km or rad). Pass it to :func:`sun_earth_wrt_moon_km` and
        :func:`icrf_to_pa_matrix`. Raises EpochOutOfRangeError outside the kernels' coverage.
        """
        self.check_coverage(t0_tdb_s, t1_tdb_s)
        start, stop = self.coverage_tdb_s
        lo = max(min(t0_tdb_s, t1_tdb_s) - margin_s, start)
        hi = min(max(t0_tdb_s, t1_tdb_s) + margin_s, stop)
        pck = [s for s in self._pck_segments if s.start_s <= lo and hi <= s.stop_s]
        if not pck:
            raise EpochOutOfRangeError(f"the span {_tdb_text(lo)} to {_tdb_text(hi)} "
                                       "crosses a segment boundary of the lunar PCK; split it there")
        return tuple(s.slice(lo, hi) for s in self._spk_segments) + (pck[-1].slice(lo, hi),)

    def _states(self, t_tdb_s: float | np.ndarray) -> tuple[np.ndarray, bool]:
        t = np.asarray(t_tdb_s, dtype=float)
        flat = np.atleast_1d(t).ravel()
        kd = self.kernel_data(float(flat.min()), float(flat.max()), margin_s=0.0)
        return _states_wrt_moon(flat, kd), t.ndim == 0

    def sun_wrt_moon_icrf_km(self, t_tdb_s: float | np.ndarray) -> np.ndarray:
        """Geometric Sun position wrt the Moon, ICRF axes, km: shape (3,) or (n, 3).

        Raises EpochOutOfRangeError outside the kernels' coverage.
        """
        states, scalar = self._states(t_tdb_s)
        return states[0, 0:3] if scalar else states[:, 0:3]

    def earth_wrt_moon_icrf_km(self, t_tdb_s: float | np.ndarray) -> np.ndarray:
        """Geometric Earth position wrt the Moon, ICRF axes, km: shape (3,) or (n, 3).

        Raises EpochOutOfRangeError outside the kernels' coverage.
        """
        states, scalar = self._states(t_tdb_s)
        return states[0, 6:9] if scalar else states[:, 6:9]

    def sun_state_wrt_moon_icrf(self, t_tdb_s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Geometric Sun (r_km, v_km_s) wrt the Moon on ICRF axes, each (3,) or (n, 3)."""
        states, scalar = self._states(t_tdb_s)
        s = states[0] if scalar else states
        return s[..., 0:3], s[..., 3:6]

    def earth_state_wrt_moon_icrf(self, t_tdb_s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Geometric Earth (r_km, v_km_s) wrt the Moon on ICRF axes, each (3,) or (n, 3)."""
        states, scalar = self._states(t_tdb_s)
        s = states[0] if scalar else states
        return s[..., 6:9], s[..., 9:12]

    def icrf_to_pa(self, t_tdb_s: float | np.ndarray) -> np.ndarray:
        """Rotation ICRF -> MOON_PA_DE440 (``v_pa = M @ v_icrf``): shape (3, 3) or (n, 3, 3).

        Raises EpochOutOfRangeError outside the kernels' coverage.
        """
        t = np.asarray(t_tdb_s, dtype=float)
        flat = np.atleast_1d(t).ravel()
        kd = self.kernel_data(float(flat.min()), float(flat.max()), margin_s=0.0)
        matrices = _pa_matrices(flat, kd)
        return matrices[0] if t.ndim == 0 else matrices


def _tdb_text(t_tdb_s: float) -> str:
    """A TDB epoch as calendar text for messages (UTC is undefined before 1972)."""
    try:
        return (_J2000_TDB + dt.timedelta(seconds=t_tdb_s)).strftime("%Y-%m-%d %H:%M TDB")
    except (OverflowError, ValueError):
        return f"{t_tdb_s:.6g} s TDB past J2000"


@functools.cache
def _default_ephemeris() -> Ephemeris:
    return Ephemeris(data.path("de440s"), data.path("moon_pa_de440"))


# --- compiled evaluation ------------------------------------------------------------------------


@njit(cache=True, fastmath=False, nogil=True)
def _record(segment, t_tdb_s):
    """Record index and normalised time s in [-1, 1] of ``t_tdb_s`` in a sliced segment."""
    init_s, intlen_s, records = segment
    n = records.shape[0]
    x = (t_tdb_s - init_s) / intlen_s
    if not (x >= 0.0 and x <= n):  # also rejects NaN
        raise EpochOutOfRangeError(_OUTSIDE_SPAN)
    i = min(int(x), n - 1)
    radius = 0.5 * intlen_s
    mid = init_s + (i + 0.5) * intlen_s
    return i, (t_tdb_s - mid) / radius


@njit(cache=True, fastmath=False, nogil=True)
def _chebyshev(segment, t_tdb_s):
    """The three components of a segment at ``t_tdb_s`` (Clenshaw recurrence, as SPICE's CHBVAL)."""
    i, s = _record(segment, t_tdb_s)
    c = segment[2][i]
    s2 = 2.0 * s
    x1 = x2 = y1 = y2 = z1 = z2 = 0.0
    for k in range(c.shape[1] - 1, 0, -1):
        x1, x2 = c[0, k] + s2 * x1 - x2, x1
        y1, y2 = c[1, k] + s2 * y1 - y2, y1
        z1, z2 = c[2, k] + s2 * z1 - z2, z1
    return c[0, 0] + s * x1 - x2, c[1, 0] + s * y1 - y2, c[2, 0] + s * z1 - z2


@njit(cache=True, fastmath=False, nogil=True)
def _chebyshev_rate(segment, t_tdb_s):
    """Time derivatives (per second) of the three components of a segment at ``t_tdb_s``.

    d/ds sum_k c_k T_k(s) = sum_k k c_k U_(k-1)(s), with U the Chebyshev polynomials of the
    second kind (U_0 = 1, U_1 = 2 s, U_k = 2 s U_(k-1) - U_(k-2)).
    """
    i, s = _record(segment, t_tdb_s)
    c = segment[2][i]
    s2 = 2.0 * s
    rate = np.zeros(3)
    u_prev, u_cur = 0.0, 1.0
    for k in range(1, c.shape[1]):
        for j in range(3):
            rate[j] += k * c[j, k] * u_cur
        u_prev, u_cur = u_cur, s2 * u_cur - u_prev
    return rate * (2.0 / segment[1])


@njit(cache=True, fastmath=False, nogil=True)
def sun_earth_wrt_moon_km(t_tdb_s, ekdata):
    """Geometric Sun and Earth positions wrt the Moon, ICRF axes, km, at TDB seconds t_tdb_s.

    ``ekdata`` is :meth:`Ephemeris.kernel_data`. Returns ``(r_sun_icrf_km, r_earth_icrf_km)``,
    two arrays of shape (3,). Raises EpochOutOfRangeError outside the span of ``ekdata``.
    """
    sx, sy, sz = _chebyshev(ekdata[0], t_tdb_s)
    bx, by, bz = _chebyshev(ekdata[1], t_tdb_s)
    mx, my, mz = _chebyshev(ekdata[2], t_tdb_s)
    ex, ey, ez = _chebyshev(ekdata[3], t_tdb_s)
    r_sun = np.empty(3)
    r_sun[0] = (sx - bx) - mx
    r_sun[1] = (sy - by) - my
    r_sun[2] = (sz - bz) - mz
    r_earth = np.empty(3)
    r_earth[0] = ex - mx
    r_earth[1] = ey - my
    r_earth[2] = ez - mz
    return r_sun, r_earth


@njit(cache=True, fastmath=False, nogil=True)
def euler_313_matrix(phi_rad, theta_rad, psi_rad):
    """Frame rotation R3(psi) R1(theta) R3(phi) (SPICE sign convention), shape (3, 3).

    With the lunar PCK angles this maps ICRF vectors into the PA frame: v_pa = M @ v_icrf.
    """
    cf, sf = np.cos(phi_rad), np.sin(phi_rad)
    ct, st = np.cos(theta_rad), np.sin(theta_rad)
    cp, sp = np.cos(psi_rad), np.sin(psi_rad)
    m = np.empty((3, 3))
    m[0, 0] = cp * cf - sp * ct * sf
    m[0, 1] = cp * sf + sp * ct * cf
    m[0, 2] = sp * st
    m[1, 0] = -sp * cf - cp * ct * sf
    m[1, 1] = -sp * sf + cp * ct * cf
    m[1, 2] = cp * st
    m[2, 0] = st * sf
    m[2, 1] = -st * cf
    m[2, 2] = ct
    return m


@njit(cache=True, fastmath=False, nogil=True)
def icrf_to_pa_matrix(t_tdb_s, ekdata):
    """Rotation ICRF -> MOON_PA_DE440 at TDB seconds ``t_tdb_s``: v_pa = M @ v_icrf, (3, 3).

    ``ekdata`` is :meth:`Ephemeris.kernel_data`. Raises EpochOutOfRangeError outside its span.
    """
    phi, theta, psi = _chebyshev(ekdata[4], t_tdb_s)
    return euler_313_matrix(phi, theta, psi)


@njit(cache=True, fastmath=False, nogil=True)
def _states_wrt_moon(t_tdb_s, ekdata):
    """Rows (r_sun, v_sun, r_earth, v_earth) wrt the Moon, ICRF, km and km/s: shape (n, 12)."""
    out = np.empty((t_tdb_s.shape[0], 12))
    for n in range(t_tdb_s.shape[0]):
        t = t_tdb_s[n]
        r_sun, r_earth = sun_earth_wrt_moon_km(t, ekdata)
        v_moon = _chebyshev_rate(ekdata[2], t)
        out[n, 0:3] = r_sun
        out[n, 3:6] = (_chebyshev_rate(ekdata[0], t) - _chebyshev_rate(ekdata[1], t)) - v_moon
        out[n, 6:9] = r_earth
        out[n, 9:12] = _chebyshev_rate(ekdata[3], t) - v_moon
    return out


@njit(cache=True, fastmath=False, nogil=True)
def _pa_matrices(t_tdb_s, ekdata):
    out = np.empty((t_tdb_s.shape[0], 3, 3))
    for n in range(t_tdb_s.shape[0]):
        out[n] = icrf_to_pa_matrix(t_tdb_s[n], ekdata)
    return out

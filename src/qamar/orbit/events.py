"""Orbit events located on the dense output: impact, apsides, shadow boundaries, altitudes.

Each event is the zero of a smooth event function g(t, y) of the Moon-centred ICRF state:

- impact and user altitude thresholds: ``|r| - MOON_RADIUS_KM - h`` (h = 0 for impact; the
  impact sphere is the 1737.4 km LOLA mean radius);
- periapsis / apoapsis: ``r . v`` rising through zero / falling through zero;
- umbra / penumbra: :func:`qamar.orbit.forces.shadow_functions`, negative exactly where the
  visible solar fraction is 0 / below 1 (smooth in the geometry, unlike the fraction itself).

After every accepted step the compiled driver compares the signs of g at both ends. Where one
changed, the root is found by Brent's method on the step's 7th-order interpolant to
``EVENT_TOL_S``. Two crossings of the same function inside one step cancel and are not seen;
the steps of a lunar orbit (tens to hundreds of seconds) are far shorter than any shadow or
apsis interval. Events at the initial epoch itself are not reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from qamar.constants import MOON_RADIUS_KM
from qamar.ephemeris import sun_earth_wrt_moon_km
from qamar.orbit.forces import shadow_functions
from qamar.orbit.integrate import dense_state

EVENT_KINDS = (
    "impact",
    "periapsis",
    "apoapsis",
    "umbra_entry",
    "umbra_exit",
    "penumbra_entry",
    "penumbra_exit",
    "altitude_descending",
    "altitude_ascending",
)
IMPACT = 0
EVENT_TOL_S = 1e-6

# Event functions: 0 altitude, 1 r.v, 2 umbra, 3 penumbra, 4.. one per altitude threshold.
N_FIXED = 4
# Kind code when function j (thresholds share index 4) turns negative / turns non-negative;
# -1: cannot happen (the altitude never rises through zero: impact ends the propagation).
_KIND_FALLING = np.array([0, 2, 3, 5, 7])
_KIND_RISING = np.array([-1, 1, 4, 6, 8])


@dataclass(frozen=True)
class Event:
    """One located event: ``kind`` (one of EVENT_KINDS), epoch ``t_tdb_s``, Moon-centred ICRF
    ``state`` (km, km/s) and, for altitude thresholds, the threshold ``value`` in km."""

    kind: str
    t_tdb_s: float
    state: np.ndarray
    value: float | None = None


@njit(cache=True, fastmath=False, nogil=True)
def _value(j, y, r_sun_km, r_earth_km, thresholds_km):
    r = math.sqrt(y[0] * y[0] + y[1] * y[1] + y[2] * y[2])
    if j == 0:
        return r - MOON_RADIUS_KM
    if j == 1:
        return y[0] * y[3] + y[1] * y[4] + y[2] * y[5]
    if j >= N_FIXED:
        return r - MOON_RADIUS_KM - thresholds_km[j - N_FIXED]
    g_umbra, g_penumbra = shadow_functions(y[:3], r_sun_km, r_earth_km)
    return g_umbra if j == 2 else g_penumbra


@njit(cache=True, fastmath=False, nogil=True)
def event_values(t_tdb_s, y, fkdata, thresholds_km, out):
    """All event functions at (t_tdb_s, y) into ``out`` (N_FIXED + number of thresholds)."""
    r_sun_km, r_earth_km = sun_earth_wrt_moon_km(t_tdb_s, fkdata[1])
    for j in range(out.size):
        out[j] = _value(j, y, r_sun_km, r_earth_km, thresholds_km)


@njit(cache=True, fastmath=False, nogil=True)
def _value_on_step(j, theta, t0_tdb_s, tau, h, coef, fkdata, thresholds_km):
    t_tdb_s = t0_tdb_s + (tau + theta * h)
    y = dense_state(coef, theta)
    if j == 2 or j == 3:
        r_sun_km, r_earth_km = sun_earth_wrt_moon_km(t_tdb_s, fkdata[1])
        return _value(j, y, r_sun_km, r_earth_km, thresholds_km)
    return _value(j, y, y[:3], y[:3], thresholds_km)


@njit(cache=True, fastmath=False, nogil=True)
def _brent(j, ga, gb, t0_tdb_s, tau, h, coef, fkdata, thresholds_km, xtol):
    """Root in theta of event function j on [0, 1] given g(0) = ga, g(1) = gb of opposite signs.

    Brent's method: inverse quadratic interpolation / secant with bisection safeguard.
    Source: R. P. Brent, Algorithms for Minimization without Derivatives, Prentice-Hall 1973,
    ch. 4 (procedure zero).
    """
    a, b, fa, fb = 0.0, 1.0, ga, gb
    c, fc = a, fa
    d = e = b - a
    for _ in range(200):
        if (fb < 0.0) == (fc < 0.0):
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * 2.220446049250313e-16 * abs(b) + 0.5 * xtol
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:
                p = 2.0 * m * s
                q = 1.0 - s
            else:
                q = fa / fc
                r = fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e = d
                d = p / q
            else:
                d = m
                e = m
        else:
            d = m
            e = m
        a, fa = b, fb
        b = b + d if abs(d) > tol else b + (tol if m > 0.0 else -tol)
        fb = _value_on_step(j, b, t0_tdb_s, tau, h, coef, fkdata, thresholds_km)
    return b


@njit(cache=True, fastmath=False, nogil=True)
def locate_events(t0_tdb_s, tau, h, coef, g_prev, g_new, fkdata, thresholds_km, theta_out, code_out, func_out):
    """Events inside the step (tau, tau + h) with interpolant ``coef``, in time order.

    ``g_prev``/``g_new``: the event functions at both ends. Writes the step fractions, kind
    codes (index into EVENT_KINDS) and function indices of the events found and returns how
    many; nothing after an impact is kept.
    """
    n = 0
    xtol = EVENT_TOL_S / h
    for j in range(g_prev.size):
        falling = g_new[j] < 0.0
        if (g_prev[j] < 0.0) == falling:
            continue
        code = _KIND_FALLING[min(j, N_FIXED)] if falling else _KIND_RISING[min(j, N_FIXED)]
        if code < 0:
            continue
        theta = _brent(j, g_prev[j], g_new[j], t0_tdb_s, tau, h, coef, fkdata, thresholds_km, xtol)
        if tau + theta * h <= EVENT_TOL_S:
            continue
        # insertion in time order
        i = n
        while i > 0 and theta_out[i - 1] > theta:
            theta_out[i] = theta_out[i - 1]
            code_out[i] = code_out[i - 1]
            func_out[i] = func_out[i - 1]
            i -= 1
        theta_out[i] = theta
        code_out[i] = code
        func_out[i] = j
        n += 1
    for i in range(n):
        if code_out[i] == IMPACT:
            return i + 1
    return n


def events_from_records(
    t0_tdb_s: float, codes: np.ndarray, tau_s: np.ndarray, states: np.ndarray, funcs: np.ndarray, thresholds_km
) -> list[Event]:
    """Event objects from the compiled driver's records (kind codes, seconds since t0, states)."""
    return [
        Event(
            EVENT_KINDS[int(code)],
            t0_tdb_s + float(tau),
            np.array(state),
            float(thresholds_km[int(j) - N_FIXED]) if j >= N_FIXED else None,
        )
        for code, tau, state, j in zip(codes, tau_s, states, funcs)
    ]


def shadow_passes(events, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Start times (TDB s) and durations (min) of the ``kind`` ('umbra' or 'penumbra') passes
    closed within ``events``; penumbra passes count the time from penumbra entry to exit."""
    starts, durations, opened = [], [], None
    for event in events:
        if event.kind == f"{kind}_entry":
            opened = event.t_tdb_s
        elif event.kind == f"{kind}_exit" and opened is not None:
            starts.append(opened)
            durations.append((event.t_tdb_s - opened) / 60.0)
            opened = None
    return np.array(starts), np.array(durations)

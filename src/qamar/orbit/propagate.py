"""Propagate a lunar orbit: the compiled step loop with events, and its Python face.

:func:`propagate` integrates a Moon-centred ICRF state under a :class:`ForceModel` with DOP853,
records every accepted step with its 7th-order interpolant, locates events after each step and
stops at impact. The loop runs compiled in chunks of about one simulated day; between chunks
Python advances a progress bar. The integrator state (time, state, derivative, next step size,
event-function signs) carries over exactly, so chunking does not change the result.

With ``keep_dense=False`` the interpolant of each step is still built (events are located on
it) but overwritten by the next one, so memory grows with the number of events, not of steps:
a 3-year run at 100 km (about 1e6 steps) would otherwise keep 0.4 GB of polynomials. The steps
taken, the states and the events are identical in both modes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from tqdm import tqdm

from qamar.constants import MOON_RADIUS_KM, SECONDS_PER_DAY
from qamar.ephemeris import Ephemeris
from qamar.errors import InvalidOrbitError, QamarError
from qamar.orbit import events as ev
from qamar.orbit import integrate as dop
from qamar.orbit.forces import ForceModel, derivatives

_CHUNK_S = SECONDS_PER_DAY
_CHUNK_STEPS = 20000
# Driver status codes.
_RUNNING, _DONE, _IMPACT, _FAILED = range(4)
# Carry-over array: seconds since t0, next step size.
_TAU, _H = range(2)
_PERIAPSIS = ev.EVENT_KINDS.index("periapsis")


@dataclass
class PropagationResult:
    """A finished propagation.

    ``t_tdb_s`` (n,): TDB seconds of the accepted steps, from the start epoch to the end (or the
    impact); ``states_icrf`` (n, 6): Moon-centred ICRF states there (km, km/s); ``dense``: the
    continuous trajectory (without dense output, ``keep_dense=False``, ``dense`` is None and
    ``t_tdb_s``/``states_icrf`` hold only the start and the end); ``events``: located events in
    time order; ``impact``: the impact event or None; ``steps``/``evaluations``/``rejected``:
    accepted steps, force evaluations and rejected attempts; ``wall_s``: wall-clock seconds of
    the whole call.
    """

    t_tdb_s: np.ndarray
    states_icrf: np.ndarray
    dense: dop.DenseOutput | None
    events: list[ev.Event]
    impact: ev.Event | None
    steps: int
    evaluations: int
    rejected: int
    wall_s: float
    forces: ForceModel


@njit(cache=True, fastmath=False, nogil=True)
def grazing_impact(coef, h, found, theta, code, func):
    """Turn a periapsis below the surface inside a step into the impact that precedes it.

    The event finder compares the altitude only at the ends of a step, so a pass that dips
    below the impact sphere and climbs out again within one step (at 100 km, steps last
    minutes) would be reported as a periapsis under the surface instead of an impact. Given
    the ``found`` events of the step (fractions ``theta`` in time order, kind ``code``, function
    ``func``; ``coef`` the step's interpolant, ``h`` its length in s), the first such periapsis
    is replaced by the first crossing of the surface before it, found by bisection of the
    altitude to EVENT_TOL_S (the epoch reported is the first probe below the surface), and the
    events after it are dropped. Returns the number of events kept.
    """
    for i in range(found):
        if code[i] != _PERIAPSIS:
            continue
        s = dop.dense_state(coef, theta[i])
        if s[0] * s[0] + s[1] * s[1] + s[2] * s[2] >= MOON_RADIUS_KM * MOON_RADIUS_KM:
            continue
        lo, hi = 0.0, theta[i]  # above the surface at the start of the step, below at the periapsis
        while (hi - lo) * h > ev.EVENT_TOL_S:
            mid = 0.5 * (lo + hi)
            s = dop.dense_state(coef, mid)
            if s[0] * s[0] + s[1] * s[1] + s[2] * s[2] < MOON_RADIUS_KM * MOON_RADIUS_KM:
                hi = mid
            else:
                lo = mid
        k = 0
        while k < i and theta[k] < hi:
            k += 1
        theta[k] = hi
        code[k] = ev.IMPACT
        func[k] = 0
        return k + 1
    return found


@njit(cache=True, fastmath=False, nogil=True)
def _advance(
    t0_tdb_s, y, k, carry, ctrl, tau_chunk_end, tau_final, rtol, atol, hmax, fkdata, thresholds_km, g_prev,
    max_steps, rec_tau, rec_h, rec_coef, ev_code, ev_tau, ev_state, ev_func,
):
    """Step from carry[_TAU] until tau_chunk_end, tau_final, an impact, max_steps or full event buffers.

    Step records go to row n of rec_tau, rec_h, rec_coef when they have max_steps rows, else to
    row 0 (no dense output kept). Updates y, k[0], carry, ctrl and g_prev in place; returns
    (status, steps taken, events recorded).
    """
    keep = rec_tau.size >= max_steps
    n_g = g_prev.size
    y1 = np.empty(6)
    g_new = np.empty(n_g)
    theta = np.empty(n_g)
    code = np.empty(n_g, dtype=np.int64)
    func = np.empty(n_g, dtype=np.int64)
    n = 0
    ne = 0
    while True:
        tau = carry[_TAU]
        if tau >= tau_final:
            return _DONE, n, ne
        if tau >= tau_chunk_end or n == max_steps or ne + n_g > ev_code.size:
            return _RUNNING, n, ne
        h, h_next = dop.take_step(t0_tdb_s, tau, y, carry[_H], tau_final, rtol, atol, hmax, fkdata, k, y1, ctrl)
        if ctrl[dop.CTRL_STATUS] != dop.STATUS_OK:
            return _FAILED, n, ne
        row = n if keep else 0
        coef = rec_coef[row]
        dop.dense_coefficients(t0_tdb_s, tau, y, y1, h, k, fkdata, coef)
        ctrl[dop.CTRL_EVALS] += dop.N_DENSE_STAGES
        rec_tau[row] = tau
        rec_h[row] = h
        n += 1
        tau_new = tau_final if h == tau_final - tau else tau + h
        ev.event_values(t0_tdb_s + tau_new, y1, fkdata, thresholds_km, g_new)
        found = ev.locate_events(t0_tdb_s, tau, h, coef, g_prev, g_new, fkdata, thresholds_km, theta, code, func)
        found = grazing_impact(coef, h, found, theta, code, func)
        for i in range(found):
            ev_code[ne] = code[i]
            ev_tau[ne] = tau + theta[i] * h
            ev_state[ne, :] = dop.dense_state(coef, theta[i])
            ev_func[ne] = func[i]
            ne += 1
            if code[i] == ev.IMPACT:
                y[:] = ev_state[ne - 1]
                carry[_TAU] = ev_tau[ne - 1]
                return _IMPACT, n, ne
        y[:] = y1
        k[0, :] = k[dop.N_STAGES]
        g_prev[:] = g_new
        carry[_TAU] = tau_new
        carry[_H] = h_next


@njit(cache=True, fastmath=False, nogil=True)
def start_values(t0_tdb_s, y0, rtol, atol, hmax, fkdata, thresholds_km, g0):
    """f(t0, y0), the first step size, and the event functions at t0 (into g0)."""
    f0 = derivatives(t0_tdb_s, y0, fkdata)
    h0 = dop.initial_step(t0_tdb_s, y0, f0, rtol, atol, hmax, fkdata)
    ev.event_values(t0_tdb_s, y0, fkdata, thresholds_km, g0)
    return f0, h0


def _periapsis_radius_km(state: np.ndarray, gm_km3_s2: float) -> float:
    """Periapsis radius of the osculating conic, p / (1 + e), km."""
    r, v = state[:3], state[3:]
    h = np.cross(r, v)
    e_vec = np.cross(v, h) / gm_km3_s2 - r / np.linalg.norm(r)
    return float(h @ h / gm_km3_s2 / (1.0 + np.linalg.norm(e_vec)))


def check_settings(duration_s: float, rtol: float) -> None:
    """Raise QamarError unless the duration (s) is positive and finite and 0 < rtol < 1e-3."""
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise QamarError(f"duration_s={duration_s} must be a positive number of seconds.")
    if not (0 < rtol < 1e-3):
        raise QamarError(f"rtol={rtol} must lie in (0, 1e-3); 1e-12 is a good default for orbits.")


def checked_initial_state(state0_icrf: np.ndarray, gm_km3_s2: float) -> np.ndarray:
    """The initial state as a float (6,) array (km, km/s).

    Raises InvalidOrbitError if it is not finite, or it or its osculating periapsis is at or
    below the 1737.4 km sphere.
    """
    y0 = np.array(state0_icrf, dtype=float).reshape(6)
    if not np.all(np.isfinite(y0)):
        raise InvalidOrbitError("The initial state has non-finite values; give km and km/s.")
    alt0_km = float(np.linalg.norm(y0[:3])) - MOON_RADIUS_KM
    if alt0_km <= 0:
        raise InvalidOrbitError(
            f"The initial position is {-alt0_km:.3f} km below the lunar surface (radius {MOON_RADIUS_KM} km); "
            "raise the orbit."
        )
    peri_alt_km = _periapsis_radius_km(y0, gm_km3_s2) - MOON_RADIUS_KM
    if peri_alt_km <= 0:
        raise InvalidOrbitError(
            f"The osculating periapsis is {-peri_alt_km:.3f} km below the lunar surface; raise the periapsis."
        )
    return y0


def atol_vector(atol: float | Sequence[float] | None, rtol: float) -> np.ndarray:
    """Absolute tolerances (6,) in km and km/s; raises QamarError unless they are positive."""
    if atol is None:
        # Scale positions by the lunar radius and velocities by the circular speed at the
        # surface (1.68 km/s): the same relative accuracy on both.
        return rtol * np.array([MOON_RADIUS_KM] * 3 + [1.68] * 3)
    out = np.broadcast_to(np.asarray(atol, dtype=float), (6,)).copy()
    if not np.all(out > 0):
        raise QamarError(f"atol={atol} must be positive (km for positions, km/s for velocities).")
    return out


def propagate(
    t0_tdb_s: float,
    state0_icrf: np.ndarray,
    duration_s: float,
    forces: ForceModel,
    *,
    rtol: float = 1e-12,
    atol: float | Sequence[float] | None = None,
    altitude_thresholds_km: Sequence[float] = (),
    progress: bool = True,
    max_steps: int = 10_000_000,
    ephemeris: Ephemeris | None = None,
    keep_dense: bool = True,
) -> PropagationResult:
    """Propagate a Moon-centred ICRF state (km, km/s) from TDB seconds ``t0_tdb_s`` for ``duration_s``.

    DOP853 with relative tolerance ``rtol`` and absolute tolerance ``atol`` (a number, or six
    numbers in km and km/s; default ``rtol`` times 1737.4 km and 1.68 km/s). Events: impact
    (terminal), periapsis, apoapsis, umbra and penumbra entry/exit, and crossings of each
    altitude in ``altitude_thresholds_km`` (over the 1737.4 km sphere). ``progress`` shows a bar
    on stderr. ``ephemeris`` defaults to Ephemeris.default(). ``keep_dense=False`` keeps no
    dense output and no step states (memory O(events), for long runs such as lifetimes): the
    result's ``dense`` is None and its samples are the start and end states only.

    Raises InvalidOrbitError if the state is at or below the surface or its osculating
    periapsis is; EpochOutOfRangeError if the span is outside the ephemeris; QamarError for a
    non-positive duration or tolerance, or when max_steps or the step size run out.
    """
    wall0 = time.perf_counter()
    check_settings(duration_s, rtol)
    y0 = checked_initial_state(state0_icrf, forces.field.gm_km3_s2)
    thresholds_km = np.array(altitude_thresholds_km, dtype=float).reshape(-1)
    atol_v = atol_vector(atol, rtol)
    ephemeris = ephemeris or Ephemeris.default()
    fkdata = forces.kernel_data(ephemeris, t0_tdb_s, t0_tdb_s + duration_s)

    t0 = float(t0_tdb_s)
    g_prev = np.empty(ev.N_FIXED + thresholds_km.size)
    f0, h0 = start_values(t0, y0, rtol, atol_v, duration_s, fkdata, thresholds_km, g_prev)
    y = y0.copy()
    k = np.empty((16, 6))
    k[0] = f0
    carry = np.array([0.0, h0])
    ctrl = np.zeros(dop.N_CTRL)
    ctrl[dop.CTRL_EVALS] = 2  # f0 and the probe in initial_step
    n_g = g_prev.size
    steps_tau, steps_h, steps_coef = [], [], []
    ev_parts: list[tuple] = []
    steps = 0
    with tqdm(
        total=round(duration_s / SECONDS_PER_DAY, 3), unit="day", desc="propagate", file=sys.stderr,
        disable=not progress, leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} days [{elapsed}<{remaining}]",
    ) as bar:
        status = _RUNNING
        while status == _RUNNING:
            cap = min(_CHUNK_STEPS, max_steps - steps)
            if cap <= 0:
                raise QamarError(
                    f"Propagation needed more than max_steps={max_steps} steps before "
                    f"{carry[_TAU] / SECONDS_PER_DAY:.2f} days; raise max_steps or loosen rtol."
                )
            rows = cap if keep_dense else 1
            rec_tau, rec_h, rec_coef = np.empty(rows), np.empty(rows), np.empty((rows, dop.N_DENSE, 6))
            cap_ev = 4 * cap + n_g
            ev_code, ev_tau = np.empty(cap_ev, dtype=np.int64), np.empty(cap_ev)
            ev_state, ev_func = np.empty((cap_ev, 6)), np.empty(cap_ev, dtype=np.int64)
            tau_before = carry[_TAU]
            status, n, ne = _advance(
                t0, y, k, carry, ctrl, tau_before + _CHUNK_S, duration_s, rtol, atol_v, duration_s, fkdata,
                thresholds_km, g_prev, cap, rec_tau, rec_h, rec_coef, ev_code, ev_tau, ev_state, ev_func,
            )
            steps += n
            if keep_dense:
                steps_tau.append(rec_tau[:n])
                steps_h.append(rec_h[:n])
                steps_coef.append(rec_coef[:n])
            ev_parts.append((ev_code[:ne], ev_tau[:ne], ev_state[:ne], ev_func[:ne]))
            bar.update(round((carry[_TAU] - tau_before) / SECONDS_PER_DAY, 3))
    if status == _FAILED:
        raise QamarError(
            f"The step size underflowed {carry[_TAU] / SECONDS_PER_DAY:.3f} days after the start; "
            "the orbit probably passes through the Moon's centre or the tolerance is too tight."
        )
    tau_end = float(carry[_TAU])
    codes, ev_tau_all, ev_states, funcs = (np.concatenate(p) for p in zip(*ev_parts))
    events = ev.events_from_records(t0, codes, ev_tau_all, ev_states, funcs, thresholds_km)
    impact = events[-1] if status == _IMPACT else None
    if keep_dense:
        tau_start = np.concatenate(steps_tau)
        coef = np.concatenate(steps_coef)
        dense = dop.DenseOutput(t0, tau_start, np.concatenate(steps_h), coef, tau_end)
        t_tdb_s, states = t0 + np.append(tau_start, tau_end), np.vstack([coef[:, 0, :], y[None, :]])
    else:
        dense = None
        t_tdb_s, states = np.array([t0, t0 + tau_end]), np.vstack([y0, y])
    return PropagationResult(
        t_tdb_s=t_tdb_s,
        states_icrf=states,
        dense=dense,
        events=events,
        impact=impact,
        steps=steps,
        evaluations=int(ctrl[dop.CTRL_EVALS]),
        rejected=int(ctrl[dop.CTRL_REJECTED]),
        wall_s=time.perf_counter() - wall0,
        forces=forces,
    )

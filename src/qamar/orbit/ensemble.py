"""Ensembles: many orbits propagated in one call, the compiled integrator running on several threads.

:func:`propagate_ensemble` runs the DOP853 integrator of :mod:`qamar.orbit.integrate` on N
members. Each member does exactly what :func:`qamar.orbit.propagate.propagate` does to its
state (same start step, step-size control, tolerances and maximum step), so the states, impact
epochs and periapsis passes agree with single-orbit runs to round-off; what the ensemble
leaves out is the bookkeeping a study does not need:

- no dense output: the 7th-order interpolant of a step (3 extra force evaluations) is built
  only for the few steps in which the altitude or the radial velocity r.v changes sign, to
  locate the impact and the periapsis passes on it as the single-orbit propagator does;
- no other events (shadow, apoapsis, altitude thresholds), no step records.

Threads. The compiled member loop releases the GIL (``nogil``), and a pool of ``threads``
Python threads hands members to it one at a time for each one-day chunk, so a member that
crashes early does not leave a thread idle. (numba's own ``prange`` cannot take the force
model's kernel data, a tuple of arrays and tuples, into a parallel region; a thread pool also
does not depend on numba's threading layer, so it is safe to call from several threads at
once, e.g. inside a Dask worker.)

Members share the force model; ``srp_scale`` scales the solar radiation pressure of each
member (mass, area and reflectivity dispersions enter only through Cr A / m). A progress bar of
simulated days advances between chunks.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit
from tqdm import tqdm

from qamar.constants import MOON_RADIUS_KM, SECONDS_PER_DAY
from qamar.ephemeris import Ephemeris
from qamar.errors import InvalidOrbitError, ModelConfigError, QamarError
from qamar.frames import icrf_to_me, lat_lon_deg
from qamar.orbit import events as ev
from qamar.orbit import integrate as dop
from qamar.orbit import propagate as single
from qamar.orbit.forces import SRP_PARAM_INDEX, ForceModel

_CHUNK_S = SECONDS_PER_DAY
_MAX_STEPS = 10_000_000  # per member, as propagate's default
# Member status codes.
_RUNNING, _DONE, _IMPACT, _FAILED, _TOO_MANY_STEPS = range(5)
# Event functions tracked: altitude (impact) and r.v (periapsis), the first two of events.py.
_N_G = 2
_PERIAPSIS = ev.EVENT_KINDS.index("periapsis")


@dataclass(frozen=True)
class EnsembleResult:
    """Per-member outcome of :func:`propagate_ensemble` (arrays over the N members).

    ``final_states_icrf`` (N, 6): Moon-centred ICRF state (km, km/s) at ``t0_tdb_s +
    duration_s``, NaN for members that hit the Moon; ``impact_t_tdb_s`` (N,): impact epoch (TDB
    s past J2000) or NaN; ``impact_lat_deg``/``impact_lon_deg`` (N,): impact point,
    planetocentric, MOON_ME, east longitude -180..180, or NaN; ``lifetime_days`` (N,): days from
    the start to impact, NaN for survivors; ``min_periapsis_alt_km`` (N,): lowest periapsis pass
    over the 1737.4 km sphere (before impact), NaN if there was none; ``steps`` (N,): accepted
    steps; ``wall_s``: wall-clock seconds of the call; ``threads``: threads used.
    """

    t0_tdb_s: float
    duration_s: float
    final_states_icrf: np.ndarray
    impact_t_tdb_s: np.ndarray
    impact_lat_deg: np.ndarray
    impact_lon_deg: np.ndarray
    lifetime_days: np.ndarray
    min_periapsis_alt_km: np.ndarray
    steps: np.ndarray
    wall_s: float
    threads: int

    @property
    def members(self) -> int:
        """Number of members N."""
        return int(self.steps.size)


@njit(cache=True, fastmath=False, nogil=True)
def _advance_member(t0_tdb_s, y, k0, carry, ctrl, g_prev, fkdata, tau_chunk_end, tau_final, rtol, atol, hmax, out):
    """Step one member from carry[0] to tau_chunk_end, tau_final or impact; returns its status.

    y, k0 (= f at y), carry (tau, next step), ctrl and g_prev are updated in place, as in
    propagate._advance. ``out``: [accepted steps, smallest periapsis radius (km), impact tau].
    """
    k = np.empty((dop.N_STAGES + 1 + dop.N_DENSE_STAGES, 6))
    k[0, :] = k0
    y1 = np.empty(6)
    coef = np.empty((dop.N_DENSE, 6))
    g_new = np.empty(_N_G)
    theta = np.empty(_N_G)
    code = np.empty(_N_G, dtype=np.int64)
    func = np.empty(_N_G, dtype=np.int64)
    no_thresholds = np.empty(0)
    status = _RUNNING
    while True:
        tau = carry[0]
        if tau >= tau_final:
            status = _DONE
            break
        if tau >= tau_chunk_end:
            break
        if out[0] >= _MAX_STEPS:
            status = _TOO_MANY_STEPS
            break
        h, h_next = dop.take_step(t0_tdb_s, tau, y, carry[1], tau_final, rtol, atol, hmax, fkdata, k, y1, ctrl)
        if ctrl[dop.CTRL_STATUS] != dop.STATUS_OK:
            status = _FAILED
            break
        out[0] += 1
        tau_new = tau_final if h == tau_final - tau else tau + h
        ev.event_values(t0_tdb_s + tau_new, y1, fkdata, no_thresholds, g_new)
        if (g_prev[0] < 0.0) != (g_new[0] < 0.0) or (g_prev[1] < 0.0) != (g_new[1] < 0.0):
            dop.dense_coefficients(t0_tdb_s, tau, y, y1, h, k, fkdata, coef)
            ctrl[dop.CTRL_EVALS] += dop.N_DENSE_STAGES
            found = ev.locate_events(t0_tdb_s, tau, h, coef, g_prev, g_new, fkdata, no_thresholds, theta, code, func)
            found = single.grazing_impact(coef, h, found, theta, code, func)
            for i in range(found):
                s = dop.dense_state(coef, theta[i])
                radius_km = np.sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2])
                if code[i] == ev.IMPACT:
                    y[:] = s
                    carry[0] = tau + theta[i] * h
                    out[2] = carry[0]
                    return _IMPACT
                if code[i] == _PERIAPSIS:
                    out[1] = min(out[1], radius_km)
        y[:] = y1
        k[0, :] = k[dop.N_STAGES]
        g_prev[:] = g_new
        carry[0] = tau_new
        carry[1] = h_next
    k0[:] = k[0]
    return status


def _thread_count(threads: int | None) -> int:
    if threads is None:
        return os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise QamarError(f"threads={threads!r} must be a whole number >= 1 (or None for one per core).")
    return int(threads)


def propagate_ensemble(
    t0_tdb_s: float,
    states0_icrf: np.ndarray,
    forces: ForceModel,
    duration_s: float,
    *,
    srp_scale: np.ndarray | None = None,
    rtol: float = 1e-10,
    threads: int | None = None,
    progress: bool = True,
    ephemeris: Ephemeris | None = None,
) -> EnsembleResult:
    """Propagate N Moon-centred ICRF states (N, 6; km, km/s) from TDB seconds ``t0_tdb_s`` for
    ``duration_s`` under ``forces``, each until impact or the end.

    ``srp_scale`` (N,): per-member factor on the SRP acceleration of ``forces`` (e.g. the
    member's (Cr A / m) over the nominal one); None means 1. ``rtol``: relative tolerance,
    absolute tolerance as :func:`~qamar.orbit.propagate.propagate`'s default. ``threads``:
    threads stepping members at once (default: one per core, ``os.cpu_count()``; give 1 when
    several such calls already run side by side, e.g. one per Dask worker thread). ``progress``
    shows a bar of simulated days on stderr.

    Raises InvalidOrbitError naming the first member whose state (or osculating periapsis) is
    at or below the surface or not finite; ModelConfigError for an ``srp_scale`` of the wrong
    shape, negative or not finite, or given without SRP in the force model; QamarError for a
    bad duration, tolerance or thread count, or a member that runs out of steps;
    EpochOutOfRangeError outside the ephemeris.
    """
    wall0 = time.perf_counter()
    single.check_settings(duration_s, rtol)
    n_threads = _thread_count(threads)
    states = np.asarray(states0_icrf, dtype=float)
    if states.ndim != 2 or states.shape[1] != 6 or states.shape[0] == 0:
        raise InvalidOrbitError(f"states0_icrf has shape {states.shape}; give an (N, 6) array of km and km/s, N >= 1.")
    n = states.shape[0]
    gm_km3_s2 = forces.field.gm_km3_s2
    y = np.empty((n, 6))
    for i in range(n):
        try:
            y[i] = single.checked_initial_state(states[i], gm_km3_s2)
        except InvalidOrbitError as err:
            raise InvalidOrbitError(f"Member {i}: {err}") from None
    ephemeris = ephemeris or Ephemeris.default()
    gkdata, ekdata, params0 = forces.kernel_data(ephemeris, t0_tdb_s, t0_tdb_s + duration_s)
    params = np.tile(params0, (n, 1))
    if srp_scale is not None:
        scale = np.asarray(srp_scale, dtype=float)
        if not forces.srp:
            raise ModelConfigError("srp_scale was given but the force model has no SRP; enable srp or drop srp_scale.")
        if scale.shape != (n,) or not np.all(np.isfinite(scale) & (scale >= 0)):
            raise ModelConfigError(
                f"srp_scale must be {n} finite non-negative factors, one per member (shape ({n},)), "
                f"got shape {scale.shape}."
            )
        params[:, SRP_PARAM_INDEX] *= scale
    t0 = float(t0_tdb_s)
    atol = single.atol_vector(None, rtol)
    no_thresholds = np.empty(0)
    kernel_data = [(gkdata, ekdata, params[i]) for i in range(n)]
    k0 = np.empty((n, 6))
    carry = np.empty((n, 2))
    g_prev = np.empty((n, _N_G))
    for i in range(n):
        k0[i], h0 = single.start_values(t0, y[i], rtol, atol, duration_s, kernel_data[i], no_thresholds, g_prev[i])
        carry[i] = (0.0, h0)
    ctrl = np.zeros((n, dop.N_CTRL))
    status = np.full(n, _RUNNING, dtype=np.int64)
    out = np.zeros((n, 3))
    out[:, 1] = np.inf
    out[:, 2] = np.nan

    def advance(i: int, tau_chunk_end: float) -> None:
        status[i] = _advance_member(
            t0, y[i], k0[i], carry[i], ctrl[i], g_prev[i], kernel_data[i], tau_chunk_end, duration_s, rtol, atol,
            duration_s, out[i],
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=n_threads) as pool, tqdm(
        total=round(duration_s / SECONDS_PER_DAY, 3), unit="day", desc=f"ensemble of {n}", file=sys.stderr,
        disable=not progress, leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} days [{elapsed}<{remaining}{postfix}]",
    ) as bar:  # fmt: skip
        tau_chunk_end = 0.0
        while np.any(status == _RUNNING):
            tau_before = tau_chunk_end
            tau_chunk_end = min(tau_chunk_end + _CHUNK_S, duration_s)
            running = np.flatnonzero(status == _RUNNING)
            list(pool.map(advance, running, [tau_chunk_end] * running.size))
            bar.set_postfix_str(f"impacts {int(np.sum(status == _IMPACT))}", refresh=False)
            bar.update(round((tau_chunk_end - tau_before) / SECONDS_PER_DAY, 3))
    for code, why in ((_FAILED, "its step size underflowed"), (_TOO_MANY_STEPS, f"it needed over {_MAX_STEPS} steps")):
        bad = np.flatnonzero(status == code)
        if bad.size:
            raise QamarError(
                f"Member {bad[0]} ({bad.size} in all) stopped early: {why}; check its initial state "
                "or loosen rtol."
            )
    return _result(t0, float(duration_s), y, status, out, ephemeris, time.perf_counter() - wall0, n_threads)


def _result(t0, duration_s, y, status, out, ephemeris, wall_s, threads) -> EnsembleResult:
    crashed = status == _IMPACT
    impact_t = t0 + out[:, 2]  # NaN where no impact
    lat = np.full(y.shape[0], np.nan)
    lon = np.full(y.shape[0], np.nan)
    if crashed.any():
        r_me_km = np.einsum("nij,nj->ni", icrf_to_me(impact_t[crashed], ephemeris), y[crashed, :3])
        lat[crashed], lon[crashed] = lat_lon_deg(r_me_km)
    final = y.copy()
    final[crashed] = np.nan
    min_r = out[:, 1]
    return EnsembleResult(
        t0_tdb_s=t0,
        duration_s=duration_s,
        final_states_icrf=final,
        impact_t_tdb_s=impact_t,
        impact_lat_deg=lat,
        impact_lon_deg=lon,
        lifetime_days=out[:, 2] / SECONDS_PER_DAY,
        min_periapsis_alt_km=np.where(np.isfinite(min_r), min_r - MOON_RADIUS_KM, np.nan),
        steps=out[:, 0].astype(np.int64),
        wall_s=wall_s,
        threads=threads,
    )

"""Benchmark: ensemble throughput (issue 3, performance goal 1), qamar sequential vs qamar ensemble vs heyoka.

Run from the repository root (about 6-9 minutes on 2 quiet cores with the defaults; writes the
"ensemble" section of docs/benchmarks.md):

    QAMAR_DATA_DIR=../shared/data python bench/bench_ensemble.py [--members 200] [--days 30]

The problem: N members dispersed around the iCube-Q release orbit (200 x 8600 km altitude,
inclination 90 deg), propagated for D days under GRGM1200A to degree and order 50 (DE440 Moon
PA frame) with the Earth and the Sun as point-mass third bodies and **no solar radiation
pressure** (identical in all tools). Throughput is member-days of simulated time per
wall-clock second, on the machine as it is (the load average is printed with the table).

- (a) ``propagate()`` called once per member, one after the other, with its defaults (dense
  output and all events kept), and (a') the same with ``keep_dense=False``;
- (b) ``propagate_ensemble()`` on one thread and on ``--threads`` threads;
- (c) heyoka.py's ``ensemble_propagate_until`` (a thread pool over copies of one
  ``taylor_adaptive``) on ``--threads`` threads, the equations of motion being those of
  tests/peers/heyoka_moon.py plus the Earth and the Sun, whose Moon-centred positions enter as
  Chebyshev series of time fitted to the DE440 ephemeris (as the peer does with the PA Euler
  angles); an impact event stops a member, as in qamar.

The slower runs use a subset of the members (options below); throughput is per member-day,
so subsets compare directly. qamar runs (a) and (b) at the same ``rtol``; heyoka's tolerance
is the loosest of a sweep whose final-position error (against its own converged solution, on a
few members) is no larger than qamar's at that rtol (against qamar's converged solution).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from numpy.polynomial import chebyshev

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine_line, publish  # noqa: E402
from qamar.constants import GM_EARTH_KM3_S2, GM_SUN_KM3_S2, MOON_RADIUS_KM  # noqa: E402
from qamar.ephemeris import Ephemeris  # noqa: E402
from qamar.orbit.elements import state_from_apsides  # noqa: E402
from qamar.orbit.ensemble import propagate_ensemble  # noqa: E402
from qamar.orbit.forces import ForceModel  # noqa: E402
from qamar.orbit.gravity import load_field  # noqa: E402
from qamar.orbit.propagate import propagate  # noqa: E402
from qamar.time import utc_to_tdb_s  # noqa: E402
from tests.peers.heyoka_moon import equations_of_motion  # noqa: E402
from tests.peers.moon_pa_fit import fit_euler_angles  # noqa: E402

EPOCH_UTC = "2024-05-08T08:14:00Z"
PERI_ALT_KM, APO_ALT_KM, INC_DEG = 200.0, 8600.0, 90.0
SIGMA_POS_KM, SIGMA_VEL_KM_S = 1.0, 1e-3
DEGREE = 50
DAY_S = 86400.0
RTOL = 1e-10
QAMAR_CONVERGED_RTOL = 1e-13
HEYOKA_TOLS = (1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12)
HEYOKA_CONVERGED_TOL = 1e-15
THIRD_BODY_FIT_DEGREE = 60
SEED = 3


def member_states(field, n: int) -> np.ndarray:
    """(n, 6) Moon-centred ICRF states: the nominal orbit plus Gaussian errors (1 km, 1 m/s per axis)."""
    r_km, v_km_s = state_from_apsides(PERI_ALT_KM, APO_ALT_KM, INC_DEG, 0.0, 0.0, 0.0, field.gm_km3_s2)
    rng = np.random.default_rng(SEED)
    noise = np.hstack([rng.normal(0.0, SIGMA_POS_KM, (n, 3)), rng.normal(0.0, SIGMA_VEL_KM_S, (n, 3))])
    return np.concatenate([r_km, v_km_s]) + noise


def member_days_per_s(members: int, days: float, wall_s: float) -> float:
    return members * days / wall_s


# --- qamar ------------------------------------------------------------------------------------


class Clock:
    """Wall and process CPU seconds of a block (CPU time sums all threads of this process)."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self.wall0
        self.cpu_s = time.process_time() - self.cpu0


def run_sequential(t0, states, duration_s, forces, keep_dense: bool) -> tuple[Clock, list[np.ndarray]]:
    """Timing of propagate() on each member in turn, and the final states."""
    with Clock() as clock:
        finals = [
            propagate(t0, s, duration_s, forces, rtol=RTOL, progress=False, keep_dense=keep_dense).states_icrf[-1]
            for s in states
        ]
    return clock, finals


def run_ensemble(t0, states, duration_s, forces, threads: int):
    with Clock() as clock:
        result = propagate_ensemble(t0, states, forces, duration_s, rtol=RTOL, threads=threads, progress=False)
    return clock, result


# --- heyoka -----------------------------------------------------------------------------------


def fit_positions(t0_tdb_s: float, duration_s: float, degree: int, margin_s: float = 600.0):
    """Chebyshev series (3, degree + 1) of the Moon-centred ICRF Sun and Earth positions (km) over the span.

    Least squares on 2 (degree + 1) Chebyshev nodes of the DE440 positions; returns (start, span,
    sun_coef, earth_coef, max error in km over a grid four times denser, per body).
    """
    ephemeris = Ephemeris.default()
    start, span = t0_tdb_s - margin_s, duration_s + 2.0 * margin_s
    n = 2 * (degree + 1)
    x = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    x_check = np.linspace(-1.0, 1.0, 4 * n + 1)
    coefs, errors = [], []
    for body in (ephemeris.sun_wrt_moon_icrf_km, ephemeris.earth_wrt_moon_icrf_km):
        values = body(start + 0.5 * (x + 1.0) * span)
        coef = np.stack([chebyshev.chebfit(x, values[:, i], degree) for i in range(3)])
        truth = body(start + 0.5 * (x_check + 1.0) * span)
        fitted = np.stack([chebyshev.chebval(x_check, c) for c in coef], axis=1)
        coefs.append(coef)
        errors.append(float(np.max(np.linalg.norm(fitted - truth, axis=1))))
    return start, span, coefs[0], coefs[1], errors


def heyoka_integrator(field, euler_fit, body_fit, t0_tdb_s: float, tol: float):
    """taylor_adaptive for the peer's gravity equations plus Earth and Sun; returns (ta, compile seconds)."""
    import heyoka as hy

    hy.llvm_state.set_diskcache_enabled(False)  # cold JIT compile, as bench_propagate.py measures it
    start = time.perf_counter()
    pairs = equations_of_motion(field, DEGREE, euler_fit, t0_tdb_s)
    fit_start, span, sun_coef, earth_coef, _ = body_fit
    x_cheb = (hy.time + (t0_tdb_s - fit_start)) * (2.0 / span) - 1.0
    t_k = [hy.expression(1.0), x_cheb]
    for _ in range(2, sun_coef.shape[1]):
        t_k.append(2.0 * x_cheb * t_k[-1] - t_k[-2])
    r = [var for var, _ in pairs[:3]]
    accel = [0.0, 0.0, 0.0]
    for coef, gm in ((sun_coef, GM_SUN_KM3_S2), (earth_coef, GM_EARTH_KM3_S2)):
        s = [hy.sum([float(c) * t for c, t in zip(coef[i], t_k)]) for i in range(3)]
        d = [s[i] - r[i] for i in range(3)]
        d3 = hy.sum([d[i] * d[i] for i in range(3)]) ** 1.5
        s3 = hy.sum([s[i] * s[i] for i in range(3)]) ** 1.5
        accel = [accel[i] + gm * (d[i] / d3 - s[i] / s3) for i in range(3)]
    pairs = pairs[:3] + [(var, rhs + accel[i]) for i, (var, rhs) in enumerate(pairs[3:])]
    impact = hy.t_event(hy.sum([v * v for v in r]) - MOON_RADIUS_KM**2, direction=hy.event_direction.negative)
    ta = hy.taylor_adaptive(pairs, [0.0] * 6, time=0.0, tol=float(tol), compact_mode=True, t_events=[impact])
    return ta, time.perf_counter() - start


def run_heyoka(ta, states, duration_s, threads: int) -> tuple[Clock, np.ndarray, int]:
    """Timing of heyoka's ensemble propagation of ``states``, the final states and the total steps."""
    import heyoka as hy

    def member(ta_copy, i):
        ta_copy.time = 0.0
        ta_copy.state[:] = states[i]
        return ta_copy

    with Clock() as clock:
        runs = hy.ensemble_propagate_until(ta, float(duration_s), len(states), member, max_workers=threads)
    finals = np.array([run[0].state for run in runs])
    for i, run in enumerate(runs):
        if run[1] != hy.taylor_outcome.time_limit:
            finals[i] = np.nan  # an impact (terminal event)
    return clock, finals, int(sum(run[4] for run in runs))


# --- report -----------------------------------------------------------------------------------


def _show(row) -> None:
    name, setting, members, clock = row
    print(f"{name} ({setting}, {members} members): wall {clock.wall_s:.1f} s, CPU {clock.cpu_s:.1f} s", flush=True)


def _distance_m(a_km, b_km) -> np.ndarray:
    return np.linalg.norm(np.asarray(a_km)[..., :3] - np.asarray(b_km)[..., :3], axis=-1) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200, help="ensemble size for (b) (default 200)")
    parser.add_argument("--days", type=float, default=30.0, help="propagation span in days (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="threads for (b) and (c) (default 2)")
    parser.add_argument("--sequential-members", type=int, default=20, help="members for (a), (a') and (b, 1 thread)")
    parser.add_argument("--heyoka-members", type=int, default=8, help="members for (c) (default 8)")
    parser.add_argument("--accuracy-members", type=int, default=2, help="members for the tolerance matching")
    args = parser.parse_args()

    load_before = os.getloadavg()
    field = load_field("grgm1200a", DEGREE)
    forces = ForceModel(field=field, degree=DEGREE, third_bodies=("earth", "sun"), srp=False)
    t0 = utc_to_tdb_s(EPOCH_UTC)
    duration_s = args.days * DAY_S
    states = member_states(field, args.members)
    n_seq = min(args.sequential_members, args.members)
    n_hy = min(args.heyoka_members, args.members)
    n_acc = min(args.accuracy_members, args.members)

    start = time.perf_counter()
    propagate(t0, states[0], 600.0, forces, rtol=RTOL, progress=False)  # load (or compile) the cached kernels
    propagate_ensemble(t0, states[:2], forces, 600.0, rtol=RTOL, threads=args.threads, progress=False)
    startup_s = time.perf_counter() - start
    print(f"qamar start-up {startup_s:.1f} s", flush=True)

    rows = []  # (run, setting, members, Clock)
    clock, _ = run_sequential(t0, states[:n_seq], duration_s, forces, keep_dense=True)
    rows.append(("(a) qamar propagate(), sequential", f"rtol {RTOL:.0e}, dense output + all events", n_seq, clock))
    _show(rows[-1])
    clock, finals_lean = run_sequential(t0, states[:n_seq], duration_s, forces, keep_dense=False)
    rows.append(("(a') qamar propagate(keep_dense=False), sequential", f"rtol {RTOL:.0e}", n_seq, clock))
    _show(rows[-1])
    clock, _ = run_ensemble(t0, states[:n_seq], duration_s, forces, threads=1)
    rows.append(("(b) qamar propagate_ensemble(), 1 thread", f"rtol {RTOL:.0e}", n_seq, clock))
    _show(rows[-1])
    clock, ensemble = run_ensemble(t0, states, duration_s, forces, threads=args.threads)
    rows.append((f"(b) qamar propagate_ensemble(), {args.threads} threads", f"rtol {RTOL:.0e}", args.members, clock))
    _show(rows[-1])
    same_m = float(np.max(_distance_m(ensemble.final_states_icrf[:n_seq], np.array(finals_lean))))

    # Tolerance matching on the first members: qamar at RTOL vs its converged run, heyoka's sweep vs its own.
    qamar_ref = np.array(
        [propagate(t0, s, duration_s, forces, rtol=QAMAR_CONVERGED_RTOL, progress=False, keep_dense=False)
         .states_icrf[-1] for s in states[:n_acc]]
    )  # fmt: skip
    qamar_err_m = float(np.max(_distance_m(ensemble.final_states_icrf[:n_acc], qamar_ref)))
    print(f"qamar rtol {RTOL:.0e}: error {qamar_err_m:.3g} m", flush=True)

    euler_fit = fit_euler_angles(t0, duration_s)
    body_fit = fit_positions(t0, duration_s, THIRD_BODY_FIT_DEGREE)
    print(f"fits: PA {euler_fit.max_error_rad:.1e} rad, Sun {body_fit[4][0]:.1e} km, Earth {body_fit[4][1]:.1e} km")
    ta, _ = heyoka_integrator(field, euler_fit, body_fit, t0, HEYOKA_CONVERGED_TOL)
    _, heyoka_ref, _ = run_heyoka(ta, states[:n_acc], duration_s, args.threads)
    cross_m = float(np.max(_distance_m(heyoka_ref, qamar_ref)))
    sweep = []  # (tol, error m, compile s, integrator)
    for tol in HEYOKA_TOLS:
        ta, compile_s = heyoka_integrator(field, euler_fit, body_fit, t0, tol)
        _, finals, _ = run_heyoka(ta, states[:n_acc], duration_s, args.threads)
        err_m = float(np.max(_distance_m(finals, heyoka_ref)))
        sweep.append((tol, err_m, compile_s, ta))
        print(f"heyoka tol {tol:.0e}: error {err_m:.3g} m (compile {compile_s:.1f} s)", flush=True)
        if err_m <= qamar_err_m:
            break
    tol, err_m, compile_s, ta = sweep[-1]
    clock, _, steps = run_heyoka(ta, states[:n_hy], duration_s, args.threads)
    rows.append((f"(c) heyoka ensemble_propagate_until, {args.threads} threads", f"tol {tol:.0e}", n_hy, clock))
    _show(rows[-1])
    load_after = os.getloadavg()

    same_text = "exactly" if same_m == 0.0 else f"to {same_m:.1g} m"
    base = member_days_per_s(rows[0][2], args.days, rows[0][3].wall_s)
    lines = [
        f"## Ensemble throughput: members x {args.days:g} days, GRGM1200A {DEGREE}x{DEGREE} + Earth + Sun",
        "",
        machine_line(),
        f"Load average (1 min) {load_before[0]:.1f} before and {load_after[0]:.1f} after the run: "
        + ("the machine was shared, so the times are noisy." if max(load_before[0], load_after[0]) > 0.5
           else "the machine was quiet."),
        "",
        f"**Problem.** {args.members} members around the iCube-Q release orbit ({PERI_ALT_KM:g} x {APO_ALT_KM:g} km "
        f"altitude, inclination {INC_DEG:g} deg, RAAN, argument of periapsis and true anomaly 0 in the Moon-centred "
        f"ICRF frame) at {EPOCH_UTC}, each displaced by Gaussian errors of {SIGMA_POS_KM:g} km and "
        f"{SIGMA_VEL_KM_S * 1e3:g} m/s per axis (seed {SEED}); {args.days:g} days. Forces: GRGM1200A to degree and "
        f"order {DEGREE} in the DE440 Moon PA frame, Earth and Sun as point masses, **no solar radiation pressure**.",
        "",
        "**Method.** Throughput = members x days / wall seconds (CPU seconds of the process, summed over "
        "its threads, are listed too: on a shared machine they show the work done when wall times are "
        "inflated). (a) calls `propagate()` per member with its defaults "
        "(dense output, all events); (a') the same without dense output; (b) `propagate_ensemble()` "
        "(the same compiled DOP853 per member, locating only impact and periapsis, members spread over a "
        f"thread pool). qamar runs use the same rtol; each member of (b) matches (a') {same_text} after "
        f"{args.days:g} days. (c) heyoka.py `ensemble_propagate_until` (threads), "
        "`taylor_adaptive` with `compact_mode=True`, the gravity of tests/peers/heyoka_moon.py plus Earth and "
        f"Sun from Chebyshev series (degree {THIRD_BODY_FIT_DEGREE}) of the DE440 positions (fit error "
        f"{body_fit[4][0]:.1e} km Sun, {body_fit[4][1]:.1e} km Earth) and the PA angles from the peer's fit "
        f"({euler_fit.max_error_rad:.1e} rad), an impact event. heyoka's tolerance: the loosest of "
        f"{', '.join(f'{t:.0e}' for t in HEYOKA_TOLS)} whose final-position error on {n_acc} members (against "
        f"heyoka at {HEYOKA_CONVERGED_TOL:.0e}) is within qamar's at rtol {RTOL:.0e} ({qamar_err_m:.3g} m "
        f"against qamar at {QAMAR_CONVERGED_RTOL:.0e}); the two converged solutions differ by {cross_m:.3g} m. "
        f"Start-up is excluded: qamar {startup_s:.1f} s (cached kernels), heyoka {compile_s:.1f} s "
        "(build + JIT at the chosen tolerance).",
        "",
        "| run | setting | members | member-days | wall s | CPU s | member-days / wall s | vs (a) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, setting, members, clock in rows:
        rate = member_days_per_s(members, args.days, clock.wall_s)
        lines.append(
            f"| {name} | {setting} | {members} | {members * args.days:g} | {clock.wall_s:.1f} | {clock.cpu_s:.1f} | "
            f"{rate:.1f} | {rate / base:.2f}x |"
        )
    sweep_text = ", ".join(f"tol {t:.0e}: {e:.3g} m" for t, e, _, _ in sweep)
    lines += [
        "",
        f"heyoka tolerance sweep (final-position error vs its converged run): {sweep_text}; "
        f"{steps} Taylor steps in (c). Goal of issue 3: (b) at {args.threads} threads >= 2x (a).",
        "",
        f"Reproduce: `QAMAR_DATA_DIR=../shared/data python bench/bench_ensemble.py --members {args.members} "
        f"--days {args.days:g} --threads {args.threads}`",
    ]
    markdown = "\n".join(lines)
    publish("ensemble", markdown)


if __name__ == "__main__":
    main()

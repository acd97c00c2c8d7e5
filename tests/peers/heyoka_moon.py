"""heyoka.py as an independent lunar orbit propagator: gravity field only, no third bodies, no SRP.

The equations of motion are heyoka expressions, compiled once (``compact_mode=True``; without
it the JIT compilation of a degree-100 field takes minutes) and integrated by heyoka's adaptive
Taylor method at tolerance ``tol``:

- state: Moon-centred ICRF position (km) and velocity (km/s); time: TDB seconds since ``t0``;
- ICRF -> PA rotation R3(psi) R1(theta) R3(phi), the Euler angles being the Chebyshev series of
  :mod:`tests.peers.moon_pa_fit` written as expressions of ``heyoka.time`` (the polynomials
  T_k shared by the three angles);
- acceleration: ``heyoka.model.sh_gravity_acc`` (heyoka >= 7.12, Montenbruck & Gill sec. 3.2
  normalisation, the same as the PDS SHADR files) with the field's C_nm, S_nm to ``degree``
  (C_00 = 1 gives the central term), evaluated at R r and rotated back by R^T.
"""

from __future__ import annotations

import time

import numpy as np

from qamar.orbit.gravity import GravityField
from tests.peers.moon_pa_fit import EulerFit


def _icrf_to_pa_expressions(euler_fit: EulerFit, t0_tdb_s: float) -> list[list]:
    """3x3 nested list of heyoka expressions of ``heyoka.time`` (s since t0): the ICRF -> PA matrix."""
    import heyoka as hy

    x = (hy.time + (t0_tdb_s - euler_fit.start_tdb_s)) * (2.0 / euler_fit.span_s) - 1.0
    t_k = [hy.expression(1.0), x]
    for _ in range(2, euler_fit.degree + 1):
        t_k.append(2.0 * x * t_k[-1] - t_k[-2])
    phi, theta, psi = (hy.sum([float(c) * t for c, t in zip(coef, t_k)]) for coef in euler_fit.coef_rad)
    cf, sf, ct, st, cp, sp = hy.cos(phi), hy.sin(phi), hy.cos(theta), hy.sin(theta), hy.cos(psi), hy.sin(psi)
    return [
        [cp * cf - sp * ct * sf, cp * sf + sp * ct * cf, sp * st],
        [-sp * cf - cp * ct * sf, -sp * sf + cp * ct * cf, cp * st],
        [st * sf, -st * cf, ct],
    ]


def equations_of_motion(field: GravityField, degree: int, euler_fit: EulerFit, t0_tdb_s: float) -> list:
    """heyoka ``(variable, derivative)`` pairs of the Moon-centred ICRF motion under ``field`` to ``degree``."""
    import heyoka as hy

    x, y, z, vx, vy, vz = hy.make_vars("x", "y", "z", "vx", "vy", "vz")
    rot = _icrf_to_pa_expressions(euler_fit, t0_tdb_s)
    r_pa = [rot[i][0] * x + rot[i][1] * y + rot[i][2] * z for i in range(3)]
    pairs = [[float(field.c_nm[n, m]), float(field.s_nm[n, m])] for n in range(degree + 1) for m in range(n + 1)]
    a_pa = hy.model.sh_gravity_acc(r_pa, pairs, field.gm_km3_s2, field.ref_radius_km)
    a_icrf = [rot[0][j] * a_pa[0] + rot[1][j] * a_pa[1] + rot[2][j] * a_pa[2] for j in range(3)]
    return [(x, vx), (y, vy), (z, vz), (vx, a_icrf[0]), (vy, a_icrf[1]), (vz, a_icrf[2])]


def propagate_heyoka(
    t0_tdb_s: float,
    state0_icrf: np.ndarray,
    duration_s: float,
    field: GravityField,
    degree: int,
    tol: float,
    euler_fit: EulerFit,
) -> tuple[np.ndarray, float, float, int]:
    """Propagate a Moon-centred ICRF state (km, km/s) for ``duration_s`` under ``field`` to ``degree``.

    Returns the final state (6,) in km and km/s, the wall time of the integration (s), the
    time spent building and JIT-compiling the integrator (s), and the number of Taylor steps.
    Raises RuntimeError if heyoka stops before ``duration_s``.
    """
    import heyoka as hy

    start = time.perf_counter()
    sys = equations_of_motion(field, degree, euler_fit, t0_tdb_s)
    ta = hy.taylor_adaptive(sys, list(map(float, state0_icrf)), time=0.0, tol=float(tol), compact_mode=True)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    outcome, _, _, steps, _, _ = ta.propagate_until(float(duration_s))
    wall_s = time.perf_counter() - start
    if outcome != hy.taylor_outcome.time_limit:
        raise RuntimeError(f"heyoka stopped with {outcome} before {duration_s} s")
    return np.array(ta.state), wall_s, compile_s, int(steps)

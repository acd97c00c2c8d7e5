"""DOP853 core: one step and its dense output against SciPy's independent DOP853, the order of
the method, and the continuous trajectory of a propagation.

References: Hairer, Norsett & Wanner, Solving ODEs I (2nd ed., Springer 1993), sec. II.10 (DOP853
is of order 8, local error O(h^9); its continuous extension is of order 7). SciPy's
``solve_ivp(method="DOP853")`` is a separate implementation of the same tableau.
"""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from qamar.ephemeris import Ephemeris
from qamar.errors import EpochOutOfRangeError
from qamar.orbit import integrate as dop
from qamar.orbit.forces import ForceModel, derivatives
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import propagate

T0_TDB_S = 768_400_000.0  # 2024-05-08, inside DE440s
PERI_KM, APO_KM = 1737.4 + 200.0, 1737.4 + 8600.0  # the iCube-Q release orbit, radii


@pytest.fixture(scope="module")
def kepler():
    """Point-mass Moon (degree 0, GRGM1200A's GM), its kernel data and a Python right-hand side."""
    field = load_field("grgm1200a", 0)
    forces = ForceModel(field, 0, third_bodies=(), srp=False)
    fkdata = forces.kernel_data(Ephemeris.default(), T0_TDB_S, T0_TDB_S + 86400.0)
    gm = field.gm_km3_s2

    def rhs(_t, y):
        r = y[:3]
        return np.concatenate([y[3:], -gm * r / np.linalg.norm(r) ** 3])

    return forces, fkdata, rhs, gm


def _state_before_periapsis(gm: float) -> np.ndarray:
    """200 x 8600 km orbit, 0.3 rad of true anomaly before periapsis: the hardest arc for a step."""
    e = (APO_KM - PERI_KM) / (APO_KM + PERI_KM)
    p = PERI_KM * (1 + e)
    nu = -0.3
    r = p / (1 + e * np.cos(nu))
    vr, vt = np.sqrt(gm / p) * e * np.sin(nu), np.sqrt(gm / p) * (1 + e * np.cos(nu))
    radial, along = np.array([np.cos(nu), np.sin(nu), 0.0]), np.array([-np.sin(nu), np.cos(nu), 0.0])
    return np.concatenate([r * radial, vr * radial + vt * along])


def _one_step(fkdata, y0, h):
    k = np.zeros((16, 6))
    k[0] = derivatives(T0_TDB_S, y0, fkdata)
    y1 = np.empty(6)
    dop.attempt_step(T0_TDB_S, 0.0, y0, h, fkdata, k, y1)
    k[dop.N_STAGES] = derivatives(T0_TDB_S + h, y1, fkdata)
    coef = np.empty((dop.N_DENSE, 6))
    dop.dense_coefficients(T0_TDB_S, 0.0, y0, y1, h, k, fkdata, coef)
    return y1, coef


def test_one_step_and_its_interpolant_match_scipy_dop853(kepler):
    _, fkdata, rhs, gm = kepler
    y0 = _state_before_periapsis(gm)
    h = 200.0
    y1, coef = _one_step(fkdata, y0, h)
    # Huge tolerances with first_step = max_step = h: SciPy takes exactly one step of size h.
    sp = solve_ivp(rhs, (0.0, h), y0, method="DOP853", rtol=1e3, atol=1e3, first_step=h, max_step=h, dense_output=True)
    assert sp.t.size == 2
    np.testing.assert_allclose(y1, sp.y[:, -1], rtol=0, atol=1e-11)
    for theta in (0.0, 0.13, 0.5, 0.87, 1.0):
        np.testing.assert_allclose(dop.dense_state(coef, theta), sp.sol(theta * h), rtol=0, atol=1e-11)


def test_local_error_is_of_ninth_order(kepler):
    """The local error falls as h^9 (order 8): the log-log slope over h = 400..100 s is about 9."""
    _, fkdata, rhs, gm = kepler
    y0 = _state_before_periapsis(gm)
    steps_s = np.array([400.0, 200.0, 100.0])
    errors = []
    for h in steps_s:
        y1, _ = _one_step(fkdata, y0, h)
        exact = solve_ivp(rhs, (0.0, h), y0, method="DOP853", rtol=1e-13, atol=1e-15).y[:, -1]
        errors.append(np.linalg.norm(y1[:3] - exact[:3]))
    slope = np.polyfit(np.log(steps_s), np.log(errors), 1)[0]
    assert 8.5 < slope < 9.8, (slope, errors)


def test_dense_output_is_continuous_and_accurate_between_steps(kepler):
    forces, _, rhs, gm = kepler
    y0 = _state_before_periapsis(gm)
    duration_s = 50_000.0  # a little more than one 12 h orbit
    result = propagate(T0_TDB_S, y0, duration_s, forces, rtol=1e-13, progress=False)
    dense = result.dense
    # Each step's polynomial starts where the previous one ends.
    ends = np.array([dop.dense_state(c, 1.0) for c in dense.coef[:-1]])
    np.testing.assert_allclose(ends, dense.coef[1:, 0, :], rtol=0, atol=1e-9)
    # Between steps the interpolant follows an independent tight solution to better than 1 mm.
    t_rel = np.sort(np.random.default_rng(1).uniform(0, duration_s, 400))
    ref = solve_ivp(rhs, (0.0, duration_s), y0, method="DOP853", rtol=1e-13, atol=1e-15, t_eval=t_rel).y.T
    np.testing.assert_allclose(dense(T0_TDB_S + t_rel)[:, :3], ref[:, :3], rtol=0, atol=1e-6)
    # Shapes: a scalar gives one state, an array one row per epoch.
    assert dense(T0_TDB_S).shape == (6,)
    assert dense(T0_TDB_S + np.zeros((2, 3))).shape == (2, 3, 6)
    np.testing.assert_array_equal(dense(result.t_tdb_s[-1]), result.states_icrf[-1])


def test_dense_output_refuses_epochs_outside_its_span(kepler):
    forces, _, _, gm = kepler
    result = propagate(T0_TDB_S, _state_before_periapsis(gm), 600.0, forces, progress=False)
    with pytest.raises(EpochOutOfRangeError, match="outside the propagated span"):
        result.dense(np.array([T0_TDB_S + 300.0, T0_TDB_S + 601.0]))
    with pytest.raises(EpochOutOfRangeError):
        result.dense(T0_TDB_S - 1.0)

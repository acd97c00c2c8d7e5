"""qamar's propagator against independent propagators using the same gravity field (issue 2).

Issue 2 asks: "A 7-day iCube-Q orbit at degree 100 agrees with an independent propagator using
the same field." The peers are Orekit 13 (DormandPrince853 + HolmesFeatherstoneAttractionModel,
tests/peers/orekit_moon.py) and heyoka.py 7 (Taylor integrator + sh_gravity_acc,
tests/peers/heyoka_moon.py). All three use GRGM1200A (GM and reference radius from the file) in
the DE440 Moon PA frame; the peers take the PA orientation from Chebyshev fits of the PCK Euler
angles read by jplephem (tests/peers/moon_pa_fit.py), qamar from its own PCK reader. Gravity
only: no third bodies, no solar radiation pressure.

The orbit is the iCube-Q release orbit of the mission brief: 2024-05-08T08:14:00Z, 200 x 8600 km
altitude over the 1737.4 km sphere, inclination 90 deg, RAAN, argument of periapsis and true
anomaly 0 in the Moon-centred ICRF frame. Each tool's error is bounded by its own convergence
(the same run at half the tolerance), and the tools must agree within a few times that.

Measured when written (final-position distances): 1 day at degree 20, every tool within 0.5 mm
of the others; 7 days at degree 100, qamar (rtol 2.5e-14) 1.4 cm from Orekit (2.5e-8 m) and
3 cm from heyoka (tol 1e-15), with qamar's halving change 7 cm and Orekit's 1.1 cm.
"""

from __future__ import annotations

import numpy as np
import pytest

from qamar.orbit.elements import state_from_apsides
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import propagate
from qamar.time import utc_to_tdb_s
from tests.peers.moon_pa_fit import euler_313_matrix, fit_euler_angles, pck_euler_angles_rad

pytest.importorskip("orekit_jpype")
from tests.peers.orekit_moon import moon_pa_frame, propagate_orekit, tai_date  # noqa: E402

EPOCH_UTC = "2024-05-08T08:14:00Z"
DAY_S = 86400.0


def _problem(degree: int):
    field = load_field("grgm1200a", degree)
    r_km, v_km_s = state_from_apsides(200.0, 8600.0, 90.0, 0.0, 0.0, 0.0, field.gm_km3_s2)
    return utc_to_tdb_s(EPOCH_UTC), np.concatenate([r_km, v_km_s]), field


def _qamar_final_km(t0_tdb_s, state0, duration_s, field, degree, rtol) -> np.ndarray:
    forces = ForceModel(field=field, degree=degree, third_bodies=(), srp=False)
    return propagate(t0_tdb_s, state0, duration_s, forces, rtol=rtol, progress=False).states_icrf[-1, :3]


def _orekit_final_km(t0_tdb_s, state0, duration_s, field, degree, tol_m, fit) -> np.ndarray:
    return propagate_orekit(t0_tdb_s, state0, duration_s, field, degree, tol_m, fit)[0][:3]


def _distance_m(a_km: np.ndarray, b_km: np.ndarray) -> float:
    return float(np.linalg.norm(a_km - b_km) * 1e3)


def _converged_pair(run, tol: float) -> tuple[np.ndarray, float]:
    """The final position at tol / 2 and its distance (m) from the run at tol."""
    coarse, fine = run(tol), run(tol / 2.0)
    return fine, _distance_m(coarse, fine)


def test_peer_moon_pa_frame_reproduces_the_pck_rotation_and_its_rate():
    """The Java frame of the Orekit peer against the PCK Euler angles read by jplephem.

    Rotation: R3(psi) R1(theta) R3(phi) (NAIF PCK Required Reading). Rate: a point fixed in
    ICRF moves in PA with velocity dR/dt r, here by central differences of the PCK rotation.
    """
    t0 = utc_to_tdb_s(EPOCH_UTC)
    fit = fit_euler_angles(t0, DAY_S)
    frame = moon_pa_frame(fit, t0)  # starts the JVM
    from org.hipparchus.geometry.euclidean.threed import Vector3D
    from org.orekit.frames import FramesFactory
    from org.orekit.utils import PVCoordinates

    r_icrf_m = np.array([1.2e6, -0.7e6, 1.5e6])
    for dt_s in (0.0, 12345.6, DAY_S):
        transform = FramesFactory.getGCRF().getTransformTo(frame, tai_date(t0).shiftedBy(dt_s))
        columns = [transform.transformVector(Vector3D(*map(float, e))).toArray() for e in np.eye(3)]
        pck = euler_313_matrix(*pck_euler_angles_rad(t0 + dt_s)[:, 0])
        assert np.abs(np.array(columns).T - pck).max() < 2e-11

        pv = transform.transformPVCoordinates(PVCoordinates(Vector3D(*map(float, r_icrf_m)), Vector3D.ZERO))
        h_s = 1.0
        ahead, behind = (euler_313_matrix(*pck_euler_angles_rad(t0 + dt_s + d)[:, 0]) for d in (h_s, -h_s))
        v_expected_m_s = (ahead - behind) @ r_icrf_m / (2.0 * h_s)
        v_m_s = np.array(pv.getVelocity().toArray())
        assert np.linalg.norm(v_m_s - v_expected_m_s) < 1e-7 * np.linalg.norm(v_expected_m_s)


def test_one_day_degree_20_agrees_with_orekit_and_heyoka_to_millimetres():
    pytest.importorskip("heyoka")
    from tests.peers.heyoka_moon import propagate_heyoka

    degree, duration_s = 20, DAY_S
    t0, state0, field = _problem(degree)
    fit = fit_euler_angles(t0, duration_s)
    assert fit.max_error_rad < 2e-11

    qamar, qamar_self_m = _converged_pair(
        lambda tol: _qamar_final_km(t0, state0, duration_s, field, degree, tol), 1e-13
    )
    orekit, orekit_self_m = _converged_pair(
        lambda tol: _orekit_final_km(t0, state0, duration_s, field, degree, tol, fit), 1e-7
    )
    heyoka = propagate_heyoka(t0, state0, duration_s, field, degree, 1e-15, fit)[0][:3]

    assert qamar_self_m < 1e-3 and orekit_self_m < 1e-3
    assert _distance_m(qamar, orekit) < 2e-3
    assert _distance_m(qamar, heyoka) < 2e-3


def test_seven_day_degree_100_icube_q_orbit_agrees_with_orekit():
    degree, duration_s = 100, 7.0 * DAY_S
    t0, state0, field = _problem(degree)
    fit = fit_euler_angles(t0, duration_s)
    assert fit.max_error_rad < 2e-11

    qamar, qamar_self_m = _converged_pair(
        lambda tol: _qamar_final_km(t0, state0, duration_s, field, degree, tol), 5e-14
    )
    orekit, orekit_self_m = _converged_pair(
        lambda tol: _orekit_final_km(t0, state0, duration_s, field, degree, tol, fit), 5e-8
    )

    assert qamar_self_m < 0.2 and orekit_self_m < 0.2
    assert _distance_m(qamar, orekit) < max(0.05, 3.0 * (qamar_self_m + orekit_self_m))

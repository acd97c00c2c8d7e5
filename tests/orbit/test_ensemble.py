"""The ensemble integrator against the single-orbit propagator, member by member, and its errors.

Issue 3 asks the batched propagation to give each member what running the single-orbit
propagator on it gives: the same steps, final state, impact epoch and periapsis passes (the
single-orbit propagator itself is checked against Kepler, Lunar Prospector and Orekit in
test_propagate.py and test_peer_agreement.py).
"""

import numpy as np
import pytest

from qamar.constants import MOON_RADIUS_KM
from qamar.errors import InvalidOrbitError, ModelConfigError, QamarError
from qamar.frames import icrf_to_me, lat_lon_deg
from qamar.orbit.elements import state_from_apsides
from qamar.orbit.ensemble import propagate_ensemble
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import propagate

T0_TDB_S = 768_428_109.0  # 2024-05-08T08:14Z, the iCube-Q release epoch (mission brief)
DEGREE = 30
DURATION_S = 2.5 * 86400.0
# peri/apo altitude (km), inclination, RAAN, argument of periapsis (deg, Moon PA at T0): a frozen-
# inclination circular orbit, a 3 x 150 km orbit that hits the Moon within the span, the
# iCube-Q release orbit, and a 20 x 100 km orbit.
ORBITS = [(100, 100, 86, 10, 0), (3, 150, 30, 180, 80), (200, 8600, 90, 0, 0), (20, 100, 45, 300, 200)]
SRP_SCALE = np.array([1.0, 2.0, 0.5, 1.5])


@pytest.fixture(scope="module")
def field():
    return load_field("grgm1200a", DEGREE)


@pytest.fixture(scope="module")
def states(field):
    out = []
    for peri, apo, inc, raan, argp in ORBITS:
        r, v = state_from_apsides(peri, apo, inc, raan, argp, 0.0, field.gm_km3_s2, frame="moon-pa", t_tdb_s=T0_TDB_S)
        out.append(np.concatenate([r, v]))
    return np.array(out)


@pytest.fixture(scope="module")
def ensemble(field, states):
    forces = ForceModel(field, DEGREE)
    return propagate_ensemble(T0_TDB_S, states, forces, DURATION_S, srp_scale=SRP_SCALE, threads=2, progress=False)


def test_each_member_matches_the_single_orbit_propagator(field, states, ensemble):
    """Same steps, final state (or impact epoch) and lowest periapsis as propagate() with the
    member's own spacecraft (SRP scaled through the area), to round-off."""
    assert ensemble.members == len(ORBITS)
    nominal = ForceModel(field, DEGREE)
    for i, state in enumerate(states):
        forces = ForceModel(field, DEGREE, area_m2=nominal.area_m2 * SRP_SCALE[i])
        single = propagate(T0_TDB_S, state, DURATION_S, forces, rtol=1e-10, progress=False, keep_dense=False)
        assert ensemble.steps[i] == single.steps
        passes = [np.linalg.norm(e.state[:3]) - MOON_RADIUS_KM for e in single.events if e.kind == "periapsis"]
        assert ensemble.min_periapsis_alt_km[i] == pytest.approx(min(passes), abs=1e-9)
        if single.impact is None:
            np.testing.assert_allclose(ensemble.final_states_icrf[i], single.states_icrf[-1], rtol=0, atol=1e-12)
            assert np.isnan(ensemble.impact_t_tdb_s[i]) and np.isnan(ensemble.lifetime_days[i])
            assert np.isnan(ensemble.impact_lat_deg[i])
        else:
            t_impact = single.impact.t_tdb_s
            assert ensemble.impact_t_tdb_s[i] == pytest.approx(t_impact, abs=1e-6)
            assert ensemble.lifetime_days[i] == pytest.approx((t_impact - T0_TDB_S) / 86400.0, abs=1e-10)
            assert np.all(np.isnan(ensemble.final_states_icrf[i]))
            lat, lon = lat_lon_deg(icrf_to_me(t_impact) @ single.impact.state[:3])
            assert (ensemble.impact_lat_deg[i], ensemble.impact_lon_deg[i]) == pytest.approx((lat, lon), abs=1e-9)
    # The 3 x 150 km member crashes, the others survive.
    assert np.isfinite(ensemble.impact_t_tdb_s).tolist() == [False, True, False, False]


def test_one_thread_gives_the_same_members(field, states, ensemble):
    forces = ForceModel(field, DEGREE)
    serial = propagate_ensemble(T0_TDB_S, states, forces, DURATION_S, srp_scale=SRP_SCALE, threads=1, progress=False)
    assert serial.threads == 1
    np.testing.assert_array_equal(serial.steps, ensemble.steps)
    np.testing.assert_array_equal(serial.final_states_icrf, ensemble.final_states_icrf)
    np.testing.assert_array_equal(serial.impact_t_tdb_s, ensemble.impact_t_tdb_s)


def test_bad_input_is_rejected_with_the_member_named(field, states):
    forces = ForceModel(field, 2)
    low = states.copy()
    low[2, :3] *= (MOON_RADIUS_KM - 1.0) / np.linalg.norm(low[2, :3])
    with pytest.raises(InvalidOrbitError, match="Member 2"):
        propagate_ensemble(T0_TDB_S, low, forces, 600.0, progress=False)
    with pytest.raises(InvalidOrbitError, match=r"\(N, 6\)"):
        propagate_ensemble(T0_TDB_S, states[:, :3], forces, 600.0, progress=False)
    with pytest.raises(ModelConfigError, match="one per member"):
        propagate_ensemble(T0_TDB_S, states, forces, 600.0, srp_scale=[1.0, 2.0], progress=False)
    with pytest.raises(ModelConfigError, match="one per member"):
        propagate_ensemble(T0_TDB_S, states, forces, 600.0, srp_scale=[1.0, -1.0, 1.0, 1.0], progress=False)
    with pytest.raises(ModelConfigError, match="no SRP"):
        no_srp = ForceModel(field, 2, srp=False)
        propagate_ensemble(T0_TDB_S, states, no_srp, 600.0, srp_scale=np.ones(4), progress=False)
    with pytest.raises(QamarError, match="threads"):
        propagate_ensemble(T0_TDB_S, states, forces, 600.0, threads=0, progress=False)
    with pytest.raises(QamarError, match="duration_s"):
        propagate_ensemble(T0_TDB_S, states, forces, -1.0, progress=False)

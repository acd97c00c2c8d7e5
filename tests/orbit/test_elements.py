"""Orbital elements against textbook examples, Orekit, and the mission-brief orbit."""

import math

import numpy as np
import pytest

from qamar import data
from qamar.constants import GM_MOON_DE440_KM3_S2, MOON_RADIUS_KM
from qamar.errors import InvalidOrbitError
from qamar.orbit.elements import (
    apsides_from_state,
    apsis_altitudes_km,
    cartesian_to_keplerian,
    keplerian_to_cartesian,
    period_s,
    state_from_apsides,
)

MU_EARTH_CURTIS = 398600.0  # km^3/s^2, the value Curtis uses in his examples
MU_EARTH_VALLADO = 398600.4418  # km^3/s^2, the value Vallado uses (EGM-96)


def test_curtis_example_4_3_rv_to_elements():
    # H. D. Curtis, Orbital Mechanics for Engineering Students, 3rd ed., Example 4.3:
    # h = 58 310 km^2/s, i = 153.2 deg, RAAN = 255.3 deg, e = 0.1712, argp = 20.07 deg,
    # true anomaly 28.45 deg, a = 8788 km, rp = 7284 km, ra = 10 290 km, T = 2.278 h.
    r = [-6045.0, -3490.0, 2500.0]
    v = [-3.457, 6.618, 2.533]
    el = cartesian_to_keplerian(r, v, MU_EARTH_CURTIS)
    assert el.inc_deg == pytest.approx(153.2, abs=0.05)
    assert el.raan_deg == pytest.approx(255.3, abs=0.05)
    assert el.e == pytest.approx(0.1712, abs=5e-5)
    assert el.argp_deg == pytest.approx(20.07, abs=0.005)
    assert el.ta_deg == pytest.approx(28.45, abs=0.005)
    assert el.a_km == pytest.approx(8788.0, abs=0.5)
    peri_km, apo_km = apsis_altitudes_km(r, v, MU_EARTH_CURTIS, radius_km=0.0)
    assert peri_km == pytest.approx(7284.0, abs=1.0)  # Curtis rounds via h = 58 310
    assert apo_km == pytest.approx(10290.0, abs=5.0)
    assert period_s(el.a_km, MU_EARTH_CURTIS) / 3600.0 == pytest.approx(2.278, abs=1e-3)


def test_curtis_example_4_7_hyperbolic_elements_to_rv():
    # Curtis, 3rd ed., Example 4.7: h = 80 000 km^2/s, e = 1.4, i = 30, RAAN = 40, argp = 60,
    # true anomaly 30 deg -> r = (-4040, 4815, 3629) km, v = (-10.39, -4.772, 1.744) km/s.
    p_km = 80000.0**2 / MU_EARTH_CURTIS
    a_km = p_km / (1.0 - 1.4**2)
    r, v = keplerian_to_cartesian(a_km, 1.4, 30.0, 40.0, 60.0, 30.0, MU_EARTH_CURTIS)
    np.testing.assert_allclose(r, [-4040.0, 4815.0, 3629.0], atol=0.6)
    np.testing.assert_allclose(v, [-10.39, -4.772, 1.744], atol=6e-3)


def test_vallado_example_2_5_rv_to_elements():
    # D. A. Vallado, Fundamentals of Astrodynamics and Applications, 4th ed., Example 2-5:
    # a = 36 127.343 km, e = 0.832853, i = 87.870 deg, RAAN = 227.898 deg, argp = 53.38 deg,
    # true anomaly 92.335 deg.
    el = cartesian_to_keplerian([6524.834, 6862.875, 6448.296], [4.901327, 5.533756, -1.976341], MU_EARTH_VALLADO)
    assert el.a_km == pytest.approx(36127.343, rel=1e-6)
    assert el.e == pytest.approx(0.832853, abs=1e-6)
    assert el.inc_deg == pytest.approx(87.870, abs=1e-3)
    assert el.raan_deg == pytest.approx(227.898, abs=1e-3)
    assert el.argp_deg == pytest.approx(53.38, abs=0.01)
    assert el.ta_deg == pytest.approx(92.335, abs=1e-3)


def _random_elements(rng, n, hyperbolic=False):
    e = rng.uniform(1.05, 3.0, n) if hyperbolic else rng.uniform(0.001, 0.95, n)
    a = -rng.uniform(2000.0, 20000.0, n) if hyperbolic else rng.uniform(1800.0, 20000.0, n)
    inc = rng.uniform(1.0, 179.0, n)
    raan = rng.uniform(0.0, 360.0, n)
    argp = rng.uniform(0.0, 360.0, n)
    if hyperbolic:
        nu_max = np.degrees(np.arccos(-1.0 / e))
        ta = rng.uniform(-0.9, 0.9, n) * nu_max % 360.0
    else:
        ta = rng.uniform(0.0, 360.0, n)
    return a, e, inc, raan, argp, ta


@pytest.mark.parametrize("hyperbolic", [False, True])
def test_against_orekit_keplerian_orbit(hyperbolic):
    # Independent reference: Orekit KeplerianOrbit (orekit-jpype); SI units there.
    orekit_jpype = pytest.importorskip("orekit_jpype")
    import jpype

    if not jpype.isJVMStarted():
        orekit_jpype.initVM()
    from org.hipparchus.geometry.euclidean.threed import Vector3D
    from org.orekit.frames import FramesFactory
    from org.orekit.orbits import KeplerianOrbit, PositionAngleType
    from org.orekit.time import AbsoluteDate
    from org.orekit.utils import PVCoordinates

    mu_si = GM_MOON_DE440_KM3_S2 * 1e9
    frame, date = FramesFactory.getGCRF(), AbsoluteDate.J2000_EPOCH
    a, e, inc, raan, argp, ta = _random_elements(np.random.default_rng(7 + hyperbolic), 25, hyperbolic)
    r, v = keplerian_to_cartesian(a, e, inc, raan, argp, ta, GM_MOON_DE440_KM3_S2)
    back = cartesian_to_keplerian(r, v, GM_MOON_DE440_KM3_S2)
    for k in range(len(a)):
        orbit = KeplerianOrbit(
            float(a[k] * 1e3), float(e[k]), math.radians(inc[k]), math.radians(argp[k]),
            math.radians(raan[k]), math.radians(ta[k]), PositionAngleType.TRUE, frame, date, mu_si,
        )
        pv = orbit.getPVCoordinates()
        r_ref = np.array(pv.getPosition().toArray()) / 1e3
        v_ref = np.array(pv.getVelocity().toArray()) / 1e3
        np.testing.assert_allclose(r[k], r_ref, rtol=0, atol=1e-9 * np.linalg.norm(r_ref))
        np.testing.assert_allclose(v[k], v_ref, rtol=0, atol=1e-9 * np.linalg.norm(v_ref))
        # Cartesian -> Keplerian against Orekit's own conversion of the same state.
        ref = KeplerianOrbit(
            PVCoordinates(Vector3D(*(r[k] * 1e3).tolist()), Vector3D(*(v[k] * 1e3).tolist())), frame, date, mu_si
        )
        assert back.a_km[k] == pytest.approx(ref.getA() / 1e3, rel=1e-10)
        assert back.e[k] == pytest.approx(ref.getE(), rel=1e-10)
        for ours, theirs in (
            (back.inc_deg[k], ref.getI()),
            (back.raan_deg[k], ref.getRightAscensionOfAscendingNode()),
            (back.argp_deg[k], ref.getPerigeeArgument()),
            (back.ta_deg[k], ref.getTrueAnomaly()),
        ):
            diff = (ours - math.degrees(theirs) + 180.0) % 360.0 - 180.0
            assert abs(diff) < 1e-8


def test_round_trip_generic_orbits():
    a, e, inc, raan, argp, ta = _random_elements(np.random.default_rng(1), 200)
    r, v = keplerian_to_cartesian(a, e, inc, raan, argp, ta, GM_MOON_DE440_KM3_S2)
    el = cartesian_to_keplerian(r, v, GM_MOON_DE440_KM3_S2)
    np.testing.assert_allclose(el.a_km, a, rtol=1e-12)
    np.testing.assert_allclose(el.e, e, rtol=1e-10, atol=1e-13)
    for got, want in ((el.inc_deg, inc), (el.raan_deg, raan), (el.argp_deg, argp), (el.ta_deg, ta)):
        np.testing.assert_allclose((got - want + 180.0) % 360.0 - 180.0, 0.0, atol=1e-8)


@pytest.mark.parametrize(
    "e, inc_deg, expect",
    [
        # circular inclined: argp = 0 and ta = argument of latitude (30 + 50 deg from the node)
        (0.0, 40.0, {"raan_deg": 70.0, "argp_deg": 0.0, "ta_deg": 80.0}),
        # equatorial prograde: RAAN = 0, argp = longitude of periapsis (70 + 30 deg)
        (0.3, 0.0, {"raan_deg": 0.0, "argp_deg": 100.0, "ta_deg": 50.0}),
        # equatorial retrograde: longitude of periapsis measured in the direction of motion;
        # with inc = 180 the node direction RAAN=70 maps periapsis to -(70) + 30 from +x
        (0.3, 180.0, {"raan_deg": 0.0, "argp_deg": (30.0 - 70.0) % 360.0, "ta_deg": 50.0}),
        # circular equatorial: true longitude 70 + 30 + 50 deg
        (0.0, 0.0, {"raan_deg": 0.0, "argp_deg": 0.0, "ta_deg": 150.0}),
    ],
)
def test_singular_conventions_and_round_trip(e, inc_deg, expect):
    a_km = 2500.0
    r, v = keplerian_to_cartesian(a_km, e, inc_deg, 70.0, 30.0, 50.0, GM_MOON_DE440_KM3_S2)
    el = cartesian_to_keplerian(r, v, GM_MOON_DE440_KM3_S2)
    assert el.a_km == pytest.approx(a_km, rel=1e-12)
    assert el.inc_deg == pytest.approx(inc_deg, abs=1e-9)
    for name, want in expect.items():
        diff = (getattr(el, name) - want + 180.0) % 360.0 - 180.0
        assert abs(diff) < 1e-8, name
    r2, v2 = keplerian_to_cartesian(*el, GM_MOON_DE440_KM3_S2)
    np.testing.assert_allclose(r2, r, atol=1e-9)
    np.testing.assert_allclose(v2, v, atol=1e-12)


def test_icube_q_orbit_vis_viva_and_period():
    # mission-brief.md: released into about 200 km x 8,600 km, period about 12 h.
    r, v = state_from_apsides(200.0, 8600.0, 90.0, 0.0, 0.0, 0.0, GM_MOON_DE440_KM3_S2)
    r_peri, r_apo = MOON_RADIUS_KM + 200.0, MOON_RADIUS_KM + 8600.0
    a_km = 0.5 * (r_peri + r_apo)
    assert np.linalg.norm(r) == pytest.approx(r_peri, rel=1e-14)
    # vis-viva: v^2 = mu (2/r - 1/a)
    assert np.dot(v, v) == pytest.approx(GM_MOON_DE440_KM3_S2 * (2.0 / r_peri - 1.0 / a_km), rel=1e-13)
    assert abs(np.dot(r, v)) < 1e-9
    el = cartesian_to_keplerian(r, v, GM_MOON_DE440_KM3_S2)
    assert el.a_km == pytest.approx(a_km, rel=1e-13)
    hours = period_s(el.a_km, GM_MOON_DE440_KM3_S2) / 3600.0
    assert 11.5 < hours < 12.5
    peri_alt, apo_alt = apsis_altitudes_km(r, v, GM_MOON_DE440_KM3_S2)
    assert peri_alt == pytest.approx(200.0, abs=1e-9)
    assert apo_alt == pytest.approx(8600.0, abs=1e-8)


def test_apsis_altitudes_vectorised_and_unbound():
    a, e, inc, raan, argp, ta = _random_elements(np.random.default_rng(3), 10)
    r, v = keplerian_to_cartesian(a, e, inc, raan, argp, ta, GM_MOON_DE440_KM3_S2)
    peri, apo = apsis_altitudes_km(r, v, GM_MOON_DE440_KM3_S2)
    np.testing.assert_allclose(peri, a * (1 - e) - MOON_RADIUS_KM, rtol=1e-11)
    np.testing.assert_allclose(apo, a * (1 + e) - MOON_RADIUS_KM, rtol=1e-11)
    r, v = keplerian_to_cartesian(-3000.0, 1.5, 20.0, 0.0, 0.0, 10.0, GM_MOON_DE440_KM3_S2)
    peri, apo = apsis_altitudes_km(r, v, GM_MOON_DE440_KM3_S2)
    assert peri == pytest.approx(1500.0 - MOON_RADIUS_KM, rel=1e-12)
    assert apo == math.inf


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"peri_alt_km": 0.0}, "below the"),
        ({"peri_alt_km": -5.0}, "below the"),
        ({"apo_alt_km": 100.0}, "below periapsis"),
        ({"inc_deg": 190.0}, "inclination"),
        ({"frame": "moon-me"}, "unknown frame"),
        ({"frame": "moon-pa"}, "needs the epoch"),
        ({"raan_deg": float("nan")}, "finite"),
    ],
)
def test_state_from_apsides_rejects_bad_orbits(kwargs, match):
    args = {"peri_alt_km": 200.0, "apo_alt_km": 8600.0, "inc_deg": 90.0, "raan_deg": 0.0,
            "argp_deg": 0.0, "ta_deg": 0.0, "gm_km3_s2": GM_MOON_DE440_KM3_S2} | kwargs
    with pytest.raises(InvalidOrbitError, match=match):
        state_from_apsides(**args)


@pytest.mark.parametrize(
    "elements, match",
    [
        ((2000.0, -0.1, 10.0, 0.0, 0.0, 0.0), "eccentricity"),
        ((2000.0, 1.0, 10.0, 0.0, 0.0, 0.0), "parabolic"),
        ((-2000.0, 0.5, 10.0, 0.0, 0.0, 0.0), "disagree"),
        ((-2000.0, 2.0, 10.0, 0.0, 0.0, 150.0), "asymptotes"),
        ((2000.0, 0.1, -10.0, 0.0, 0.0, 0.0), "inclination"),
    ],
)
def test_keplerian_to_cartesian_rejects_bad_elements(elements, match):
    with pytest.raises(InvalidOrbitError, match=match):
        keplerian_to_cartesian(*elements, GM_MOON_DE440_KM3_S2)


def test_cartesian_to_keplerian_rejects_radial_state():
    with pytest.raises(InvalidOrbitError, match="radial"):
        cartesian_to_keplerian([2000.0, 0.0, 0.0], [1.0, 0.0, 0.0], GM_MOON_DE440_KM3_S2)


def test_moon_pa_elements_refer_to_the_lunar_equator_at_epoch(spice_kernels):
    # Independent reference: SPICE's MOON_PA_DE440 orientation (NAIF moon_pa_de440_200625.bpc
    # with moon_de440_220930.tf). Rotating the returned ICRF state into PA at the epoch must give
    # back the elements that were asked for.
    t_tdb_s = 768_428_109.185_372  # 2024-05-08T08:14:00Z
    r, v = state_from_apsides(200.0, 8600.0, 137.0, 25.0, 300.0, 40.0, GM_MOON_DE440_KM3_S2,
                              frame="moon-pa", t_tdb_s=t_tdb_s)
    icrf_to_pa = np.array(spice_kernels.pxform("J2000", "MOON_PA_DE440", t_tdb_s))
    el = cartesian_to_keplerian(icrf_to_pa @ r, icrf_to_pa @ v, GM_MOON_DE440_KM3_S2)
    assert el.a_km == pytest.approx(MOON_RADIUS_KM + 4400.0, rel=1e-13)
    for got, want in ((el.inc_deg, 137.0), (el.raan_deg, 25.0), (el.argp_deg, 300.0), (el.ta_deg, 40.0)):
        assert got == pytest.approx(want, abs=1e-8)
    # and in ICRF the same orbit is tilted differently (the lunar equator is ~24 deg off ICRF's)
    assert abs(cartesian_to_keplerian(r, v, GM_MOON_DE440_KM3_S2).inc_deg - 137.0) > 1.0


@pytest.mark.parametrize("frame", ["moon-icrf", "moon-pa"])
def test_apsides_from_state_against_spice_oscltx(spice_kernels, frame):
    # Independent reference: SPICE oscltx (osculating conic elements) of LRO's first OEM state
    # (Nyx/ANISE truth file, EME2000 = ICRF axes), in ICRF or rotated into MOON_PA_DE440.
    from qamar.orbit.trajectory import Trajectory

    trajectory = Trajectory.from_oem(data.path("lro_oem"))
    t, state = trajectory.start_tdb_s, trajectory.states_icrf[0]
    got = apsides_from_state(state[:3], state[3:], GM_MOON_DE440_KM3_S2, frame=frame, t_tdb_s=t)
    rotation = np.eye(3) if frame == "moon-icrf" else np.array(spice_kernels.pxform("J2000", "MOON_PA_DE440", t))
    elts = spice_kernels.oscltx(np.concatenate([rotation @ state[:3], rotation @ state[3:]]), t, GM_MOON_DE440_KM3_S2)
    rp_km, ecc = elts[0], elts[1]
    assert got["peri_alt_km"] == pytest.approx(rp_km - MOON_RADIUS_KM, abs=1e-6)
    assert got["apo_alt_km"] == pytest.approx(rp_km * (1 + ecc) / (1 - ecc) - MOON_RADIUS_KM, abs=1e-6)
    for name, index in (("inc_deg", 2), ("raan_deg", 3), ("argp_deg", 4), ("ta_deg", 8)):
        assert got[name] == pytest.approx(math.degrees(elts[index]) % 360.0, abs=1e-7), name
    r, v = state_from_apsides(**got, gm_km3_s2=GM_MOON_DE440_KM3_S2, frame=frame, t_tdb_s=t)
    np.testing.assert_allclose(np.concatenate([r, v]), state, rtol=0, atol=1e-9)


def test_apsides_from_state_rejects_an_unbound_state():
    r = np.array([MOON_RADIUS_KM + 100.0, 0.0, 0.0])
    escape_km_s = math.sqrt(2 * GM_MOON_DE440_KM3_S2 / np.linalg.norm(r))
    with pytest.raises(InvalidOrbitError, match="not bound"):
        apsides_from_state(r, [0.0, 1.01 * escape_km_s, 0.0], GM_MOON_DE440_KM3_S2)

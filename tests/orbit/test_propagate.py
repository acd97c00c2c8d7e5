"""Propagation against analytic Kepler motion, Lunar Prospector's period, the geometric length of
a lunar night, and the error cases of issue 2."""

import numpy as np
import pytest
from scipy.optimize import brentq

from qamar.constants import MOON_RADIUS_KM, SUN_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.errors import EpochOutOfRangeError, InvalidOrbitError
from qamar.orbit import propagate as propagate_module
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import propagate

T0_TDB_S = 768_400_000.0  # 2024-05-08, inside DE440s
PERI_KM, APO_KM = MOON_RADIUS_KM + 200.0, MOON_RADIUS_KM + 8600.0  # iCube-Q release orbit (mission brief)


@pytest.fixture(scope="module")
def point_mass():
    field = load_field("grgm1200a", 0)
    return ForceModel(field, 0, third_bodies=(), srp=False)


def _kepler_orbit(gm: float):
    """The 200 x 8600 km orbit in the x-z plane starting at periapsis on +x; its constants."""
    a = 0.5 * (PERI_KM + APO_KM)
    e = (APO_KM - PERI_KM) / (APO_KM + PERI_KM)
    n = np.sqrt(gm / a**3)
    y0 = np.array([PERI_KM, 0.0, 0.0, 0.0, 0.0, np.sqrt(gm * (1 + e) / PERI_KM)])
    return y0, a, e, n


def _kepler_position(t_s: np.ndarray, a: float, e: float, n: float) -> np.ndarray:
    """Position (km) t_s after periapsis: Kepler's equation M = E - e sin E by Newton's method
    (Vallado, Fundamentals of Astrodynamics and Applications, 4th ed., algorithm 2)."""
    mean = np.mod(n * np.asarray(t_s, float), 2 * np.pi)
    ecc = mean + e * np.sin(mean)
    for _ in range(50):
        ecc = ecc - (ecc - e * np.sin(ecc) - mean) / (1 - e * np.cos(ecc))
    x = a * (np.cos(ecc) - e)
    z = a * np.sqrt(1 - e * e) * np.sin(ecc)
    return np.stack([x, np.zeros_like(x), z], axis=-1)


def test_point_mass_moon_follows_kepler_for_30_days_to_a_metre(point_mass):
    """Issue 2: a point-mass Moon over 30 days agrees with analytic Kepler to better than 1 m."""
    gm = point_mass.field.gm_km3_s2
    y0, a, e, n = _kepler_orbit(gm)
    duration_s = 30 * 86400.0
    result = propagate(T0_TDB_S, y0, duration_s, point_mass, rtol=1e-13, progress=False)
    final_err_m = np.linalg.norm(result.states_icrf[-1, :3] - _kepler_position(duration_s, a, e, n)) * 1e3
    assert result.t_tdb_s[-1] == T0_TDB_S + duration_s
    assert final_err_m < 1.0
    # Everywhere in between, through the dense output.
    t_s = np.random.default_rng(7).uniform(0, duration_s, 2000)
    dense_err_m = np.linalg.norm(result.dense(T0_TDB_S + t_s)[:, :3] - _kepler_position(t_s, a, e, n), axis=1) * 1e3
    assert dense_err_m.max() < 1.0


def test_apsis_and_altitude_events_fall_on_the_analytic_times(point_mass):
    """Periapsis at k P, apoapsis at (k + 1/2) P, and r = R + 1000 km where
    a (1 - e cos E) = R + 1000, t = (E - e sin E) / n: all to better than 1 ms."""
    gm = point_mass.field.gm_km3_s2
    y0, a, e, n = _kepler_orbit(gm)
    period_s = 2 * np.pi / n
    result = propagate(
        T0_TDB_S, y0, 5.3 * period_s, point_mass, rtol=1e-13, altitude_thresholds_km=(1000.0,), progress=False
    )
    times = {
        kind: np.array([ev.t_tdb_s - T0_TDB_S for ev in result.events if ev.kind == kind])
        for kind in ("periapsis", "apoapsis", "altitude_ascending", "altitude_descending")
    }
    np.testing.assert_allclose(times["periapsis"], period_s * np.arange(1, 6), rtol=0, atol=1e-3)
    np.testing.assert_allclose(times["apoapsis"], period_s * (np.arange(0, 5) + 0.5), rtol=0, atol=1e-3)
    ecc = np.arccos((1 - (MOON_RADIUS_KM + 1000.0) / a) / e)
    t_cross = (ecc - e * np.sin(ecc)) / n
    np.testing.assert_allclose(times["altitude_ascending"], period_s * np.arange(0, 6) + t_cross, rtol=0, atol=1e-3)
    np.testing.assert_allclose(times["altitude_descending"], period_s * np.arange(1, 6) - t_cross, rtol=0, atol=1e-3)
    thresholds = [ev for ev in result.events if ev.kind.startswith("altitude")]
    assert all(ev.value == 1000.0 for ev in thresholds)
    assert all(abs(np.linalg.norm(ev.state[:3]) - MOON_RADIUS_KM - 1000.0) < 1e-6 for ev in thresholds)
    assert result.impact is None


def test_chunking_does_not_change_the_result(point_mass, monkeypatch):
    y0, *_ = _kepler_orbit(point_mass.field.gm_km3_s2)
    whole = propagate(T0_TDB_S, y0, 2 * 86400.0, point_mass, progress=False)
    monkeypatch.setattr(propagate_module, "_CHUNK_S", 3000.0)
    monkeypatch.setattr(propagate_module, "_CHUNK_STEPS", 7)
    chunked = propagate(T0_TDB_S, y0, 2 * 86400.0, point_mass, progress=False)
    np.testing.assert_array_equal(whole.t_tdb_s, chunked.t_tdb_s)
    np.testing.assert_array_equal(whole.states_icrf, chunked.states_icrf)
    assert [(e.kind, e.t_tdb_s) for e in whole.events] == [(e.kind, e.t_tdb_s) for e in chunked.events]


def _circular_polar_state(field, radius_km: float) -> np.ndarray:
    """A circular orbit over the lunar poles (PA frame), as a Moon-centred ICRF state."""
    m = Ephemeris.default().icrf_to_pa(T0_TDB_S)
    v = np.sqrt(field.gm_km3_s2 / radius_km)
    return np.concatenate([m.T @ [radius_km, 0.0, 0.0], m.T @ [0.0, 0.0, v]])


def test_100_km_polar_orbit_has_lunar_prospectors_period():
    """Lunar Prospector's mapping orbit: circular, polar, 100 km altitude, period 117.8-117.9 min
    (Binder 1998, Science 281, 1475; Konopliv et al. 1998, Science 281, 1476). Its altitude was
    referred to the 1738 km lunar reference sphere of the time, which is also GRGM1200A's
    reference radius. For a circular orbit the periapsis is not defined, and what tracking
    measures is the time between equator crossings: the nodal period, averaged here over the
    ascending nodes of one day under the full model (GRGM1200A 100x100, Earth, Sun)."""
    field = load_field("grgm1200a", 100)
    forces = ForceModel(field, 100, third_bodies=("earth", "sun"), srp=False)
    y0 = _circular_polar_state(field, field.ref_radius_km + 100.0)
    result = propagate(T0_TDB_S, y0, 86400.0, forces, progress=False)
    ephemeris = Ephemeris.default()

    def z_pa_km(t):
        return (ephemeris.icrf_to_pa(t) @ result.dense(t)[:3])[2]

    grid = np.arange(T0_TDB_S + 1.0, result.t_tdb_s[-1], 120.0)
    z = np.einsum("nj,nj->n", ephemeris.icrf_to_pa(grid)[:, 2, :], result.dense(grid)[:, :3])
    rising = np.flatnonzero((z[:-1] < 0) & (z[1:] >= 0))
    nodes = np.array([brentq(z_pa_km, grid[i], grid[i + 1], xtol=1e-6) for i in rising])
    assert len(nodes) >= 11
    nodal_period_min = np.diff(nodes).mean() / 60.0
    assert 117.8 < nodal_period_min < 117.9


def test_100_km_orbit_with_the_sun_in_its_plane_spends_46_5_min_per_orbit_in_umbra(spice_kernels):
    """Issue 2: about 46.5 min of umbra per orbit. Geometry: the Moon's umbra is entered when the
    angle between the spacecraft and the anti-Sun direction falls below asin(R/r) - alpha_sun
    (Moon's apparent radius minus the Sun's), so the umbra arc is 2 (asin(R/r) - alpha_sun),
    swept at the orbital rate n minus the Sun's apparent rate w (the Sun moves along the orbit
    plane, chosen to contain the Sun's direction and motion): 46.31 min; the cylindrical
    estimate 2 asin(R/r) / n is 46.47 min. The penumbra lasts 2 alpha_sun / (n - w), 10.4 s."""
    field = load_field("grgm1200a", 0)
    forces = ForceModel(field, 0, third_bodies=(), srp=False)
    sun = np.array(spice_kernels.spkezr("SUN", T0_TDB_S, "J2000", "NONE", "MOON")[0])
    r_km = MOON_RADIUS_KM + 100.0
    s_hat = sun[:3] / np.linalg.norm(sun[:3])
    w_vec = np.cross(sun[:3], sun[3:]) / (sun[:3] @ sun[:3])  # apparent angular velocity of the Sun
    t_hat = np.cross(w_vec, s_hat) / np.linalg.norm(w_vec)
    gm = field.gm_km3_s2
    y0 = np.concatenate([r_km * s_hat, np.sqrt(gm / r_km) * t_hat])  # start at the subsolar point
    result = propagate(T0_TDB_S, y0, 4 * 7100.0, forces, progress=False)

    def durations_s(start, stop):
        ev = [(e.kind, e.t_tdb_s) for e in result.events if e.kind in (start, stop)]
        return np.array([t1 - t0 for (k0, t0), (k1, t1) in zip(ev, ev[1:]) if (k0, k1) == (start, stop)])

    umbra_s = durations_s("umbra_entry", "umbra_exit")
    rate = np.sqrt(gm / r_km**3) - np.linalg.norm(w_vec)
    alpha_sun = np.arcsin(SUN_RADIUS_KM / np.linalg.norm(sun[:3]))
    assert len(umbra_s) == 4
    np.testing.assert_allclose(umbra_s / 60.0, 46.5, atol=0.3)
    np.testing.assert_allclose(umbra_s, 2 * (np.arcsin(MOON_RADIUS_KM / r_km) - alpha_sun) / rate, rtol=0, atol=0.5)
    penumbra_in_s = durations_s("penumbra_entry", "umbra_entry")
    np.testing.assert_allclose(penumbra_in_s, 2 * alpha_sun / rate, rtol=0, atol=0.1)


def test_impact_stops_the_propagation_at_zero_altitude():
    """A circular polar orbit 1 km up under 50x50 GRGM1200A: mascons bring it down within hours."""
    field = load_field("grgm1200a", 50)
    forces = ForceModel(field, 50, third_bodies=(), srp=False)
    y0 = _circular_polar_state(field, MOON_RADIUS_KM + 1.0)
    result = propagate(T0_TDB_S, y0, 86400.0, forces, progress=False)
    impact = result.impact
    assert impact is not None and impact.kind == "impact" and result.events[-1] is impact
    assert abs(np.linalg.norm(impact.state[:3]) - MOON_RADIUS_KM) < 1e-6  # km: 1 mm
    assert result.t_tdb_s[-1] == impact.t_tdb_s == result.dense.t_end_tdb_s
    np.testing.assert_array_equal(result.states_icrf[-1], impact.state)
    assert np.all(np.linalg.norm(result.states_icrf[:-1, :3], axis=1) > MOON_RADIUS_KM)


def test_orbits_through_the_surface_are_refused(point_mass):
    gm = point_mass.field.gm_km3_s2
    with pytest.raises(InvalidOrbitError, match="below the lunar surface"):
        propagate(T0_TDB_S, [1700.0, 0, 0, 0, 1.7, 0], 3600.0, point_mass, progress=False)
    # Released at 300 km on an orbit whose periapsis is 50 km under the surface.
    r_apo, r_peri = MOON_RADIUS_KM + 300.0, MOON_RADIUS_KM - 50.0
    v_apo = np.sqrt(2 * gm * r_peri / (r_apo * (r_apo + r_peri)))
    with pytest.raises(InvalidOrbitError, match="periapsis"):
        propagate(T0_TDB_S, [r_apo, 0, 0, 0, v_apo, 0], 3600.0, point_mass, progress=False)


def test_epochs_outside_the_ephemeris_are_refused(point_mass):
    y0, *_ = _kepler_orbit(point_mass.field.gm_km3_s2)
    beyond_2150_s = 160 * 365.25 * 86400.0  # DE440s covers 1849-2150
    with pytest.raises(EpochOutOfRangeError):
        propagate(beyond_2150_s, y0, 3600.0, point_mass, progress=False)

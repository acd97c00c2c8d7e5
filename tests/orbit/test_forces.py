"""Forces: the assembled right-hand side against SPICE geometry, the third-body term against
extended precision, SRP against the textbook pressure, and the conical shadow against ray
casting of the solar disc past a spherical Moon."""

import decimal

import numpy as np
import pytest
import spiceypy

from qamar.constants import AU_KM, EARTH_EQUATORIAL_RADIUS_KM, MOON_RADIUS_KM, SUN_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.errors import ModelConfigError
from qamar.orbit.forces import (
    ForceModel,
    derivatives,
    shadow_functions,
    sun_visible_fraction,
    sun_visible_fractions,
    third_body_accel,
)
from qamar.orbit.gravity import acceleration_pa_km_s2, load_field

ET = 768_400_000.0  # TDB seconds past J2000 (2024-05-08), SPICE's ephemeris time
GM_SUN, GM_EARTH = 1.3271244004127942e11, 3.9860043550702266e05  # gm_de440.tpc


@pytest.fixture(scope="module")
def field():
    return load_field("grgm1200a", 20)


def _third_body_decimal(r, s, gm):
    """gm ((s - r)/|s - r|^3 - s/|s|^3) evaluated with 50 significant digits."""
    ctx = decimal.Context(prec=50)
    r = [decimal.Decimal(float(x)) for x in r]
    s = [decimal.Decimal(float(x)) for x in s]
    d = [si - ri for si, ri in zip(s, r)]
    nd = ctx.sqrt(sum((x * x for x in d), decimal.Decimal(0)))
    ns = ctx.sqrt(sum((x * x for x in s), decimal.Decimal(0)))
    g = decimal.Decimal(gm)
    return np.array([float(g * (di / nd**3 - si / ns**3)) for di, si in zip(d, s)])


def test_third_body_term_keeps_its_digits(spice_kernels):
    """Battin's f(q) form against the direct minus indirect term in 50-digit arithmetic."""
    r_sc = np.array([1200.0, -1500.0, 700.0])
    for body, gm in (("SUN", GM_SUN), ("EARTH", GM_EARTH)):
        s = np.array(spiceypy.spkpos(body, ET, "J2000", "NONE", "MOON")[0])
        exact = _third_body_decimal(r_sc, s, gm)
        got = third_body_accel(r_sc, s, gm)
        assert np.linalg.norm(got - exact) < 1e-13 * np.linalg.norm(exact), body


def test_derivatives_assemble_gravity_and_third_bodies_like_spice(spice_kernels, field):
    """Gravity rotated through SPICE's MOON_PA_DE440 frame, plus Earth and Sun from SPICE."""
    forces = ForceModel(field, 20, third_bodies=("earth", "sun"), srp=False)
    fkdata = forces.kernel_data(Ephemeris.default(), ET, ET + 3600.0)
    y = np.array([1500.0, -900.0, 800.0, 0.3, 1.2, -0.9])
    m = np.array(spiceypy.pxform("J2000", "MOON_PA_DE440", ET))
    expected = m.T @ acceleration_pa_km_s2(field, m @ y[:3], 20)
    for body, gm in (("SUN", GM_SUN), ("EARTH", GM_EARTH)):
        s_km = np.array(spiceypy.spkpos(body, ET, "J2000", "NONE", "MOON")[0])
        expected = expected + _third_body_decimal(y[:3], s_km, gm)
    got = derivatives(ET, y, fkdata)
    np.testing.assert_array_equal(got[:3], y[3:])
    np.testing.assert_allclose(got[3:], expected, rtol=0, atol=1e-12 * np.linalg.norm(expected))


def test_srp_pressure_matches_the_textbook_value(spice_kernels, field):
    """Montenbruck & Gill (2000), sec. 3.4: P = 4.56e-6 N/m^2 at 1 AU (from 1367 W/m^2); qamar
    uses 1360.8 W/m^2 (Kopp & Lean 2011), so the textbook value scales by 1360.8/1367."""
    forces = ForceModel(field, 0, third_bodies=(), srp=True, mass_kg=7.0, area_m2=0.06, cr=1.3)
    textbook_km_s2 = 4.56e-6 * (1360.8 / 1367.0) * 1.3 * 0.06 / 7.0 * 1e-3
    assert forces.srp_accel_1au_km_s2 == pytest.approx(textbook_km_s2, rel=1e-3)
    # In full sun the SRP term is that value scaled by (1 AU / d)^2 and points away from the Sun.
    r_sun = np.array(spiceypy.spkpos("SUN", ET, "J2000", "NONE", "MOON")[0])
    y = np.concatenate([2000.0 * r_sun / np.linalg.norm(r_sun), [0.1, -1.5, 0.2]])  # over the subsolar point
    ephem = Ephemeris.default()
    with_srp = derivatives(ET, y, forces.kernel_data(ephem, ET, ET + 60.0))
    without = derivatives(ET, y, ForceModel(field, 0, (), srp=False).kernel_data(ephem, ET, ET + 60.0))
    d = y[:3] - r_sun
    expected = forces.srp_accel_1au_km_s2 * (AU_KM / np.linalg.norm(d)) ** 2 * d / np.linalg.norm(d)
    np.testing.assert_allclose(with_srp[3:] - without[3:], expected, rtol=1e-6, atol=0)


def _ray_cast_fraction(r_sc, r_sun, r_earth, n=60_000):
    """Fraction of rays to a uniform (sunflower) pattern on the apparent solar disc that miss
    both spheres: the exact geometry, independent of the flat-disc overlap formula."""
    u = r_sun - r_sc
    dist = np.linalg.norm(u)
    u = u / dist
    a = np.arcsin(SUN_RADIUS_KM / dist)
    e1 = np.cross(u, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    i = np.arange(n) + 0.5
    rho, phi = a * np.sqrt(i / n), i * np.pi * (3.0 - np.sqrt(5.0))
    dirs = np.cos(rho)[:, None] * u + np.sin(rho)[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)
    blocked = np.zeros(n, bool)
    for centre, radius in ((np.zeros(3), MOON_RADIUS_KM), (r_earth, EARTH_EQUATORIAL_RADIUS_KM)):
        w = centre - r_sc
        along = dirs @ w
        miss2 = w @ w - along**2
        blocked |= (along > 0) & (miss2 < radius**2)
    return 1.0 - blocked.mean()


def _place(r_sun, sep_deg, r_km=MOON_RADIUS_KM + 100.0):
    """A spacecraft at radius r_km from which the Sun's centre stands ``sep_deg`` outside the
    Moon's limb (negative: behind it). From angle psi to the Sun direction, the Moon's centre is
    pi - psi from the Sun and the Moon's apparent radius is asin(R / r)."""
    s = r_sun / np.linalg.norm(r_sun)
    n = np.cross(s, [0.0, 0.0, 1.0])
    n /= np.linalg.norm(n)
    psi = np.pi - np.arcsin(MOON_RADIUS_KM / r_km) - np.radians(sep_deg)
    return r_km * (np.cos(psi) * s + np.sin(psi) * n)


def test_visible_fraction_full_sun_umbra_and_half_disc(spice_kernels):
    r_sun = np.array(spiceypy.spkpos("SUN", ET, "J2000", "NONE", "MOON")[0])
    r_earth = np.array(spiceypy.spkpos("EARTH", ET, "J2000", "NONE", "MOON")[0])
    a_deg = np.degrees(SUN_RADIUS_KM / np.linalg.norm(r_sun))
    day, night = 1837.4 * r_sun / np.linalg.norm(r_sun), -1837.4 * r_sun / np.linalg.norm(r_sun)
    assert sun_visible_fraction(day, r_sun, r_earth) == 1.0
    assert sun_visible_fraction(night, r_sun, r_earth) == 0.0
    # Moon's limb through the centre of the Sun: half the disc (to the limb's curvature, a/b).
    half = _place(r_sun, 0.0)
    assert sun_visible_fraction(half, r_sun, r_earth) == pytest.approx(0.5, abs=0.01)
    # Penumbra at several depths against ray casting. The flat-disc formula bends the Moon's limb
    # (an arc of 71 deg radius on the sky) as a plane circle: a 1e-3 level difference.
    for sep in (-0.9, -0.5, -0.2, 0.0, 0.3, 0.7):
        r_sc = _place(r_sun, sep * a_deg)
        assert sun_visible_fraction(r_sc, r_sun, r_earth) == pytest.approx(
            _ray_cast_fraction(r_sc, r_sun, r_earth), abs=3e-3
        ), sep


def test_earth_shadow_is_total_on_the_sun_earth_line():
    """A lunar eclipse: spacecraft beyond the Earth on the Sun-Earth line at the Moon's distance."""
    r_earth = np.array([384_400.0, 0.0, 0.0])
    r_sun = r_earth + np.array([AU_KM, 0.0, 0.0])
    assert sun_visible_fraction(np.array([0.0, 0.0, 2000.0]), r_sun, r_earth) == 0.0  # umbra radius ~4600 km
    # 7000 km off the line: in the Earth's penumbra (about 4600 to 8200 km), as ray casting says.
    r_sc = np.array([0.0, 0.0, 7000.0])
    expected = _ray_cast_fraction(r_sc, r_sun, r_earth)
    assert sun_visible_fraction(r_sc, r_sun, r_earth) == pytest.approx(expected, abs=3e-3)


def test_shadow_functions_change_sign_where_the_fraction_leaves_0_and_1(spice_kernels):
    r_sun = np.array(spiceypy.spkpos("SUN", ET, "J2000", "NONE", "MOON")[0])
    r_earth = np.array(spiceypy.spkpos("EARTH", ET, "J2000", "NONE", "MOON")[0])
    a_deg = np.degrees(SUN_RADIUS_KM / np.linalg.norm(r_sun))
    positions = [_place(r_sun, x * a_deg) for x in np.linspace(-3.0, 3.0, 241)]
    nu = sun_visible_fractions(np.array(positions), r_sun, r_earth)
    g = np.array([shadow_functions(p, r_sun, r_earth) for p in positions])
    np.testing.assert_array_equal(g[:, 0] <= 0, nu == 0.0)
    np.testing.assert_array_equal(g[:, 1] < 0, nu < 1.0)
    assert 0 < np.count_nonzero((nu > 0) & (nu < 1)) < 241  # the sweep crosses the penumbra
    # The vectorised wrapper is the scalar function row by row.
    assert nu[5] == sun_visible_fraction(positions[5], r_sun, r_earth)


def test_force_model_rejects_unknown_bodies_and_unphysical_spacecraft(field):
    with pytest.raises(ModelConfigError, match="Unknown third bodies"):
        ForceModel(field, 0, third_bodies=("jupiter",))
    with pytest.raises(ModelConfigError, match="not physical"):
        ForceModel(field, 0, mass_kg=0.0)

"""HEALPix coverage: ring tables against astropy-healpix, counts against a brute-force test of
every pixel centre (:func:`qamar.payload.footprint.points_in_view` at every pixel, the
definition of "seen"), areas against the analytic band area, and the FITS product."""

import astropy.units as u
import numpy as np
import pytest
from astropy_healpix import healpix_to_lonlat

from qamar.constants import GM_MOON_DE440_KM3_S2, MOON_RADIUS_KM
from qamar.frames import body_vector_from_lat_lon
from qamar.orbit.trajectory import Trajectory
from qamar.payload.camera import camera
from qamar.payload.coverage import (
    CoverageMap,
    _add_epochs,
    _conditions,
    _crossing_pixels,
    _rings,
    _scan_pixels,
    coverage,
    pixel_lat_lon,
)
from qamar.payload.footprint import Geometry, camera_axes, geometry, points_in_view
from qamar.payload.targets import band
from qamar.time import utc_to_tdb_s
from tests.payload.orbits import circular

NARROW = camera("narrow", 5.5, focal_length_mm=25)
WIDE_TILTED = camera("wide", 5.5, focal_length_mm=8, off_nadir_deg=30.0, azimuth_deg=90.0)


@pytest.mark.parametrize("nside", [1, 2, 8, 64])
def test_pixel_centres_match_astropy_healpix_ring_order(nside):
    lat, lon = pixel_lat_lon(nside)
    ref_lon, ref_lat = healpix_to_lonlat(np.arange(12 * nside * nside), nside, order="ring")
    assert np.max(np.abs(lat - ref_lat.to_value(u.deg))) < 1e-9
    assert np.max(np.abs((lon - ref_lon.to_value(u.deg) + 180.0) % 360.0 - 180.0)) < 1e-9


def _brute_force(trajectory, cam, t, nside, sun_elev_deg=None, max_gsd_m=None):
    """Per-pixel counts by testing every pixel centre at every epoch (the reference)."""
    return _test_every_pixel(geometry(trajectory, t), cam, nside, sun_elev_deg, max_gsd_m)


def _test_every_pixel(geom, cam, nside, sun_elev_deg=None, max_gsd_m=None):
    lat, lon = pixel_lat_lon(nside)
    p = body_vector_from_lat_lon(lat, lon, MOON_RADIUS_KM)
    seen = points_in_view(geom.r_me_km, np.ascontiguousarray(camera_axes(cam, geom)), *cam.tan_half_fov, p)
    if sun_elev_deg:
        sun = geom.sun_me_km / np.linalg.norm(geom.sun_me_km, axis=1, keepdims=True)
        elev = np.degrees(np.arcsin(np.clip(sun @ (p.T / MOON_RADIUS_KM), -1, 1)))
        seen &= (elev >= sun_elev_deg[0]) & (elev <= sun_elev_deg[1])
    if max_gsd_m:
        rng = np.linalg.norm(geom.r_me_km[:, None, :] - p[None], axis=2)
        seen &= rng * 1e3 * cam.ifov_rad <= max_gsd_m
    return seen.sum(axis=0)


@pytest.mark.parametrize("alt_km, inc_deg", [(200.0, 90.0), (3000.0, 80.0), (15000.0, 90.0)])
@pytest.mark.parametrize("cam", [NARROW, WIDE_TILTED], ids=["narrow", "wide-tilted"])
@pytest.mark.parametrize("sun, gsd", [(None, None), ((5.0, 60.0), None), (None, 600.0)], ids=["all", "lit", "gsd"])
def test_counts_equal_a_brute_force_test_of_every_pixel(alt_km, inc_deg, cam, sun, gsd):
    trajectory = circular(alt_km, inc_deg=inc_deg, days=1.0)
    # Epochs around a pole crossing (a quarter period from the node) and away from it.
    period_s = 2 * np.pi * np.sqrt((MOON_RADIUS_KM + alt_km) ** 3 / 4902.8)
    start = trajectory.start_tdb_s + 0.25 * period_s - 600.0
    cmap = coverage(trajectory, [cam], step_s=120.0, start_tdb_s=start, stop_tdb_s=start + 1200.0, nside=64,
                    sun_elev_deg=sun, max_gsd_m=gsd)
    t = start + 120.0 * np.arange(10)
    reference = _brute_force(trajectory, cam, t, 64, sun, gsd)
    assert cmap.epochs == 10
    assert np.array_equal(cmap.counts[cam.name], reference)


def test_covered_fraction_of_a_band_is_its_area():
    """Equal-area pixels: a fully seen polar cap covers (1 - sin 80 deg) / 2 of the sphere."""
    cmap = CoverageMap(256, 10.0, 0.0, 10.0, 1, {"c": np.ones(12 * 256 * 256, dtype=np.int32)})
    lat, _ = cmap.lat_lon()
    cmap.counts["c"][lat < -80.0] = 1
    cmap.counts["c"][lat >= -80.0] = 0
    assert cmap.fraction() == pytest.approx((1 - np.sin(np.radians(80.0))) / 2, rel=0.01)
    assert cmap.fraction(band(-90, -80)) == 1.0
    assert cmap.fraction(band(0, 10)) == 0.0


def test_fits_product_is_a_healpix_table(tmp_path):
    from astropy.io import fits

    trajectory = circular(500.0, days=0.05)
    cmap = coverage(trajectory, [NARROW, WIDE_TILTED], step_s=60.0, stop_tdb_s=trajectory.start_tdb_s + 1800.0, nside=32)
    path = cmap.to_fits(tmp_path / "c.fits")
    with fits.open(path) as hdul:
        header, table = hdul[1].header, hdul[1].data
        assert (header["PIXTYPE"], header["ORDERING"], header["NSIDE"]) == ("HEALPIX", "RING", 32)
        assert np.array_equal(table["narrow"], cmap.counts["narrow"])
    assert 0.0 < cmap.fraction() < 1.0
    assert cmap.summary([band(-90, -80)])["covered_pct"] == pytest.approx(100 * cmap.fraction())


def _scanned(geom, cam, nside, sun_elev_deg=None, max_gsd_m=None):
    """Counts from the coverage kernels for explicit geometry (one thread)."""
    diff = np.zeros((1, 12 * nside * nside + 1), dtype=np.int32)
    sun = geom.sun_me_km / np.linalg.norm(geom.sun_me_km, axis=1, keepdims=True)
    _add_epochs(diff, _rings(nside), cam, geom.r_me_km, camera_axes(cam, geom), sun, sun_elev_deg, max_gsd_m)
    return np.cumsum(diff[0])[:-1]


def _kepler(peri_alt_km, apo_alt_km, inc_deg, argp_deg, days, epoch_utc="2024-05-08T08:14:00Z"):
    """Two-body ellipse from periapsis (Moon-centred ICRF), exact dense output via Kepler's equation."""
    rp, ra = MOON_RADIUS_KM + peri_alt_km, MOON_RADIUS_KM + apo_alt_km
    a, e = (rp + ra) / 2, (ra - rp) / (ra + rp)
    n = np.sqrt(GM_MOON_DE440_KM3_S2 / a**3)
    i, w = np.radians(inc_deg), np.radians(argp_deg)
    p_hat = np.array([np.cos(w), np.sin(w) * np.cos(i), np.sin(w) * np.sin(i)])
    q_hat = np.array([-np.sin(w), np.cos(w) * np.cos(i), np.cos(w) * np.sin(i)])
    t0 = float(utc_to_tdb_s(epoch_utc))

    def dense(t):
        m = n * (np.asarray(t, float) - t0)
        big_e = m.copy()
        for _ in range(30):  # Newton on E - e sin E = M
            big_e -= (big_e - e * np.sin(big_e) - m) / (1 - e * np.cos(big_e))
        x, y = a * (np.cos(big_e) - e), a * np.sqrt(1 - e * e) * np.sin(big_e)
        rate = n / (1 - e * np.cos(big_e))
        vx, vy = -a * np.sin(big_e) * rate, a * np.sqrt(1 - e * e) * np.cos(big_e) * rate
        return np.hstack([x[:, None] * p_hat + y[:, None] * q_hat, vx[:, None] * p_hat + vy[:, None] * q_hat])

    t = t0 + np.linspace(0.0, days * 86400.0, int(days * 1440) + 1)
    return Trajectory(t, dense(t), dense)


@pytest.mark.parametrize("cam", [NARROW, WIDE_TILTED], ids=["narrow", "wide-tilted"])
def test_counts_at_nside_512_on_the_icube_q_orbit_equal_a_test_of_every_pixel(cam):
    """The benchmark's grid and orbit (200 x 8,600 km, 137 deg; mission-brief section 1): epochs from
    periapsis to apoapsis, where footprints span up to 110 deg of latitude."""
    trajectory = _kepler(200.0, 8600.0, 137.0, 270.0, days=0.6)
    t = trajectory.start_tdb_s + np.array([0.0, 600.0, 2400.0, 7200.0, 14000.0, 21600.0, 30000.0])
    geom = geometry(trajectory, t)
    assert np.array_equal(_scanned(geom, cam, 512), _test_every_pixel(geom, cam, 512))


def _over(lat_deg, lon_deg, alt_km, sun_lat_lon=(0.0, 0.0)):
    """Geometry of one epoch above (lat, lon) in ME, moving east (north at the poles), Sun far away."""
    r = body_vector_from_lat_lon(lat_deg, lon_deg, MOON_RADIUS_KM + alt_km)[None]
    east = np.array([-np.sin(np.radians(lon_deg)), np.cos(np.radians(lon_deg)), 0.0])
    v = (east if abs(lat_deg) < 90 else np.array([1.0, 0.0, 0.0]))[None]
    sun = body_vector_from_lat_lon(*sun_lat_lon, 1.5e8)[None]
    return Geometry(np.zeros(1), r, v, sun)


@pytest.mark.parametrize("geom", [
    _over(90.0, 0.0, 5000.0),    # the horizon is a circle of latitude; the pole is inside
    _over(-90.0, 0.0, 800.0),
    _over(0.0, 0.0, 3000.0),     # across the 0-deg meridian, where rings start
    _over(5.0, 180.0, 20000.0),  # past the limb, across 180 deg
    _over(70.0, -30.0, 2000.0),
], ids=["north-pole", "south-pole", "meridian-0", "limb-180", "high-lat"])
@pytest.mark.parametrize("cam", [NARROW, WIDE_TILTED], ids=["narrow", "wide-tilted"])
def test_counts_in_special_geometry_equal_a_test_of_every_pixel(geom, cam):
    assert np.array_equal(_scanned(geom, cam, 128), _test_every_pixel(geom, cam, 128))


def test_a_high_sun_cuts_a_hole_in_the_footprint():
    """Sun over the sub-spacecraft point and at most 60 deg elevation: an annulus (two arcs a ring)."""
    geom = _over(-20.0, 40.0, 8000.0, sun_lat_lon=(-20.0, 40.0))
    wide = camera("wide", 5.5, focal_length_mm=8)
    counts = _scanned(geom, wide, 128, (5.0, 60.0))
    assert np.array_equal(counts, _test_every_pixel(geom, wide, 128, (5.0, 60.0)))
    lat, lon = pixel_lat_lon(128)
    near = np.hypot(lat + 20.0, lon - 40.0) < 10.0
    ring_band = (np.hypot(lat + 20.0, lon - 40.0) > 35.0) & (np.hypot(lat + 20.0, lon - 40.0) < 40.0)
    assert not np.any(counts[near]) and np.any(counts[ring_band])


def test_the_pixel_by_pixel_fallback_equals_a_test_of_every_pixel():
    """Footprints whose edges do not balance (rounding at tangencies) are counted pixel by pixel."""
    nside = 64
    geom = _over(-30.0, 100.0, 6000.0)
    z, _, rho, _, pixels, _, first, _, pattern, cs = _rings(nside)
    axes = camera_axes(WIDE_TILTED, geom)
    caps = np.empty((8, 4))
    nc = _conditions(geom.r_me_km[0], axes[0], np.array([1.0, 0.0, 0.0]), *WIDE_TILTED.tan_half_fov,
                     MOON_RADIUS_KM, -2.0, 2.0, -1.0, caps)
    diff = np.zeros(12 * nside * nside + 1, dtype=np.int64)
    _scan_pixels(caps, nc, z, rho, pixels, first, pattern, cs, diff)
    assert np.array_equal(np.cumsum(diff)[:-1], _test_every_pixel(geom, WIDE_TILTED, nside))


def test_the_crossing_guess_is_within_1e_5_pixel_of_the_exact_crossing():
    """The polynomial arccos (Abramowitz and Stegun 1964, eq. 4.4.46, |error| <= 2e-8 rad) against
    numpy's arccos, over every ring at nside 512 and cap offsets that put q across [-1, 1];
    pixel centres nearer than 1e-4 pixel to the guess are tested one by one."""
    z, _, _, inv_rho, _, pixels_f, _, offset, _, _ = _rings(512)
    at = np.empty(len(z))
    worst = 0.0
    for az, c, phi_cap, sign in ((0.3, 0.2, 1.0, 1.0), (-0.8, -0.1, -2.5, -1.0), (0.05, 0.9, 3.0, 1.0)):
        m = np.sqrt(1 - az * az)
        _crossing_pixels(phi_cap, sign, 1 / m, c, az, z, inv_rho, pixels_f, offset, 0, len(z), at)
        q = np.clip((c - az * z) * inv_rho / m, -1, 1)
        exact = np.mod(phi_cap - sign * np.arccos(q), 2 * np.pi) / (2 * np.pi) * pixels_f - offset
        worst = max(worst, float(np.max(np.abs(at - exact))))
        assert np.any(np.abs(q) < 1) and np.any(q == 1.0)
    assert worst < 1e-5

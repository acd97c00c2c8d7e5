"""HEALPix coverage: ring tables against astropy-healpix, counts against a brute-force test of
every pixel centre, areas against the analytic band area, and the FITS product."""

import astropy.units as u
import numpy as np
import pytest
from astropy_healpix import healpix_to_lonlat

from qamar.constants import MOON_RADIUS_KM
from qamar.frames import body_vector_from_lat_lon
from qamar.payload.camera import camera
from qamar.payload.coverage import CoverageMap, coverage, pixel_lat_lon
from qamar.payload.footprint import camera_axes, geometry, points_in_view
from qamar.payload.targets import band
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
    geom = geometry(trajectory, t)
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

"""Sun and Earth from the lunar surface, the solar disc's visible fraction and illumination maps.

References:
- SPICE ``azlcpo`` (CSPICE N0067) with the kernels qamar reads: azimuth/elevation of the Sun
  and the Earth from a site fixed in MOON_ME, an independent implementation of the whole
  chain (DE440, PA orientation, PA->ME, topocentric frame).
- ShadowCam image times with their subsolar points (``shadowcam_subsolar``): at a site the
  Sun's elevation is 90 deg minus its angular distance from the subsolar point, up to the
  Sun's parallax (R / 1 AU = 1.2e-5 rad).
- The area of a circular segment cut from a unit disc by a chord at distance u from the
  centre, acos(u) - u sqrt(1 - u^2) (e.g. Weisstein, "Circular Segment", MathWorld), checked
  here by counting grid points.
- A spherical bowl lit by parallel light: a ray entering the sphere at X leaves it at the
  reflection of X across the plane through the centre normal to the light, so a floor point
  is in shadow iff that exit point lies below the rim plane (exact for a spherical cap).
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from qamar import data
from qamar.constants import SUN_RADIUS_KM
from qamar.errors import EpochOutOfRangeError, ModelConfigError
from qamar.surface.horizon import NODATA_CDEG, HorizonMap, compute_horizon
from qamar.surface.illumination import (
    BodyTracks,
    body_tracks,
    disc_visible_fraction,
    epochs_tdb_s,
    illumination_maps,
    point_series,
    topocentric_az_el_deg,
)
from qamar.surface.terrain import Dem, enu_basis, pixel_lat_lon, read_dem
from qamar.time import utc_to_tdb_s

R_KM = 1737.4
AU_KM = 149597870.7
SOUTH = CRS.from_proj4("+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m")
MOON_GEOGRAPHIC = CRS.from_proj4("+proj=longlat +R=1737400 +no_defs")


def _grid(x0_m, y0_m, pixel_m):
    """Transform whose first pixel centre is at (x0, y0)."""
    return Affine(pixel_m, 0.0, x0_m - pixel_m / 2, 0.0, -pixel_m, y0_m + pixel_m / 2)


# --- directions ---------------------------------------------------------------------------


SITES = [(-89.45, 222.7, 1.9), (-85.0, 30.0, -2.5), (-88.8, -120.0, 0.0), (10.0, 60.0, 1.0)]


@pytest.mark.parametrize("lat, lon, height_km", SITES)
def test_sun_and_earth_az_el_match_spice_azlcpo(spice_kernels, lat, lon, height_km):
    """Sun and Earth azimuth/elevation from a MOON_ME site agree with SPICE azlcpo to 1e-6 deg,
    Earth parallax included (the topocentric Earth differs from the geocentric by up to 0.26 deg)."""
    spice = spice_kernels
    t = utc_to_tdb_s("2024-03-01") + np.linspace(0.0, 27.3 * 86400.0, 9)
    tracks = body_tracks(t)
    site_km = (R_KM + height_km) * np.array([math.cos(math.radians(lat)) * math.cos(math.radians(lon)),
                                             math.cos(math.radians(lat)) * math.sin(math.radians(lon)),
                                             math.sin(math.radians(lat))])
    for body, track in (("SUN", tracks.sun_me_km), ("EARTH", tracks.earth_me_km)):
        az, el = topocentric_az_el_deg(track, lat, lon, R_KM + height_km)
        for k, et in enumerate(t):
            state, _ = spice.azlcpo("ELLIPSOID", body, float(et), "NONE", False, True, site_km, "MOON", "MOON_ME")
            d_az = (az[k] - math.degrees(state[1]) + 180.0) % 360.0 - 180.0
            assert abs(d_az) * math.cos(math.radians(el[k])) < 1e-6
            assert abs(el[k] - math.degrees(state[2])) < 1e-6


def test_point_series_directions_match_spice(spice_kernels):
    """The compiled per-sample path (point queries, maps) gives the same az/el as azlcpo."""
    spice = spice_kernels
    dem = Dem(np.full((3, 3), 1500.0, np.float32), _grid(-10440.0, 10440.0, 240.0), SOUTH)
    flat = HorizonMap(np.full((3, 3, 360), -300, np.int16), np.arange(360.0), dem.transform, SOUTH, 2.0, 150.0)
    lat, lon = pixel_lat_lon(dem)
    t = utc_to_tdb_s("2024-06-01") + 3600.0 * np.arange(0, 720, 37)
    series = point_series(dem, flat, float(lat[1, 1]), float(lon[1, 1]), body_tracks(t))
    la, lo = math.radians(series.lat_deg), math.radians(series.lon_deg)
    site_km = (R_KM + 1.5 + 0.002) * np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
    for k, et in enumerate(t):
        for body, el, az in (("SUN", series.sun_el_deg, series.sun_az_deg),
                             ("EARTH", series.earth_el_deg, series.earth_az_deg)):
            state, _ = spice.azlcpo("ELLIPSOID", body, float(et), "NONE", False, True, site_km, "MOON", "MOON_ME")
            assert abs(el[k] - math.degrees(state[2])) < 1e-6
            assert abs((az[k] - math.degrees(state[1]) + 180.0) % 360.0 - 180.0) < 1e-5


def test_sun_elevation_matches_shadowcam_subsolar_points():
    """At polar sites the Sun's elevation equals 90 deg minus the great-circle distance to the
    ShadowCam subsolar point, to 0.012 deg (the truth file's own agreement with DE440 is
    ~0.01 deg; the Sun's parallax adds < 0.001 deg)."""
    with open(data.path("shadowcam_subsolar"), newline="") as stream:
        rows = list(csv.DictReader(stream))[::997]
    t = utc_to_tdb_s([r["start_time"].replace("+00", "Z") for r in rows])
    sub_lat = np.radians([float(r["sslat"]) for r in rows])
    sub_lon = np.radians([float(r["sslon"]) for r in rows])
    tracks = body_tracks(t)
    for lat, lon in ((-89.45, 222.7), (-86.0, 45.0), (-84.2, -100.0)):
        _, el = topocentric_az_el_deg(tracks.sun_me_km, lat, lon, R_KM)
        la, lo = math.radians(lat), math.radians(lon)
        cos_d = np.sin(la) * np.sin(sub_lat) + np.cos(la) * np.cos(sub_lat) * np.cos(lo - sub_lon)
        expected = 90.0 - np.degrees(np.arccos(cos_d))
        assert np.abs(el - expected).max() < 0.012


# --- the solar disc ------------------------------------------------------------------------


def _grid_fraction(offset, radius, tilt_rad, n=1601):
    """Fraction of grid points of the disc above a line at angle tilt through (0, -offset)."""
    u = np.linspace(-radius, radius, n)
    x, y = np.meshgrid(u, u)
    inside = x * x + y * y <= radius * radius
    above = y > -offset / math.cos(tilt_rad) + x * math.tan(tilt_rad)
    return (inside & above).sum() / inside.sum()


@pytest.mark.parametrize("offset", [-1.2, -0.7, -0.2, 0.0, 0.35, 0.9, 1.05])
def test_disc_fraction_is_the_circular_segment(offset):
    """disc_visible_fraction against counting grid points; a line at distance d from the centre
    cuts the same area whatever its tilt."""
    r = 0.00465
    expected = _grid_fraction(offset * r, r, 0.0)
    assert abs(disc_visible_fraction(offset * r, r) - expected) < 2e-3
    assert abs(_grid_fraction(offset * r, r, math.radians(35.0)) - expected) < 3e-3


def test_tilted_horizon_cuts_the_disc_along_the_line():
    """A horizon rising 1 deg per deg of azimuth across the Sun: the kernel's fraction is the
    disc area above that straight edge (distance (el - h) cos 45 deg from the centre)."""
    dem = Dem(np.zeros((1, 1), np.float32), _grid(0.0, -30000.0, 240.0), SOUTH)
    lat, lon = pixel_lat_lon(dem)
    basis = enu_basis(float(lat[0, 0]), float(lon[0, 0]))
    for el_deg, ramp in ((0.10, 1.0), (-0.05, 1.0), (0.20, -1.0), (0.0, 0.0)):
        az = math.radians(100.25)
        el = math.radians(el_deg)
        direction = math.cos(el) * (math.cos(az) * basis[1] + math.sin(az) * basis[0]) + math.sin(el) * basis[2]
        site = (R_KM + 0.0) * basis[2]
        tracks = BodyTracks(np.zeros(1), (site + AU_KM * direction)[None], (site + 384400.0 * direction)[None])
        profile = np.round(100.0 * ramp * (np.arange(360) - 100.25)).astype(np.int16)  # 0 deg at az 100.25
        hmap = HorizonMap(profile[None, None], np.arange(360.0), dem.transform, SOUTH, 0.0, 150.0)
        got = point_series(dem, hmap, float(lat[0, 0]), float(lon[0, 0]), tracks).sun_fraction[0]
        h = math.radians(0.01 * (profile[100] + 0.25 * (profile[101] - profile[100])))
        tilt = math.atan(ramp / math.cos(el))
        r_sun = math.asin(SUN_RADIUS_KM / np.linalg.norm(tracks.sun_me_km[0]))
        expected = _grid_fraction((el - h) * math.cos(tilt), r_sun, tilt, n=2001)
        assert abs(got - expected) < 3e-3, (el_deg, ramp)


# --- maps ---------------------------------------------------------------------------------


def _smooth_profiles(shape, n_az, rng):
    """Random smooth horizon profiles (centi-degrees) like polar terrain: a few harmonics."""
    az = np.radians(np.arange(n_az) * 360.0 / n_az)
    prof = rng.uniform(-0.5, 2.0, shape + (1,))
    for k in (1, 2, 3, 7, 19):
        prof = prof + rng.uniform(0.0, 2.0 / k**0.6, shape + (1,)) * np.cos(k * az + rng.uniform(0, 6.3, shape + (1,)))
    return np.round(100.0 * prof).astype(np.int16)


def test_maps_equal_sample_by_sample_evaluation():
    """The map kernel's sums equal evaluating every sample (point queries) for a year of
    hourly samples, Sun and Earth, on a crop of the real south-pole DEM with varied horizons."""
    dem = read_dem(data.path("dem_south_pole_240m"), window=Window(730, 700, 10, 8))
    hmap = HorizonMap(_smooth_profiles(dem.shape, 360, np.random.default_rng(3)), np.arange(360.0), dem.transform,
                      dem.crs, 2.0, 150.0)
    tracks = body_tracks(epochs_tdb_s("2024-01-01", "2025-01-01", 1.0))
    _assert_maps_equal_point_queries(dem, hmap, tracks)


def _assert_maps_equal_point_queries(dem, hmap, tracks):
    """Every pixel's map values equal its point query's, sample by sample (to 1e-6)."""
    maps = illumination_maps(dem, hmap, tracks, progress=False)
    lat, lon = pixel_lat_lon(dem)
    for iy in range(dem.shape[0]):
        for ix in range(dem.shape[1]):
            s = point_series(dem, hmap, float(lat[iy, ix]), float(lon[iy, ix]), tracks).summary()
            assert abs(maps.sun_fraction[iy, ix] - s["sun_fraction"]) < 1e-6
            assert abs(maps.earth_fraction[iy, ix] - s["earth_fraction"]) < 1e-6
            assert abs(maps.sun_and_earth_fraction[iy, ix] - s["sun_and_earth_fraction"]) < 1e-6
            assert maps.longest_night_h[iy, ix] == s["longest_night_h"]
    assert 0.0 < np.nanmean(maps.sun_fraction) < 1.0 and 0.0 < np.nanmean(maps.earth_fraction) < 1.0


NORTH = CRS.from_proj4("+proj=stere +lat_0=90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m")


@pytest.mark.parametrize("crs, shuffle", [(NORTH, False), (SOUTH, True)])
def test_maps_equal_sample_by_sample_north_and_any_sample_order(crs, shuffle):
    """The decisions hold near the north pole (azimuth mirrored: pi minus the relative
    longitude) and for samples in any order (bounds come from the samples, not a smooth track):
    maps equal point queries for two months of hourly samples on a rough synthetic DEM."""
    rng = np.random.default_rng(7)
    dem = Dem(rng.uniform(-2500.0, 2500.0, (5, 6)).astype(np.float32), _grid(-60000.0, 90000.0, 240.0), crs)
    hmap = HorizonMap(_smooth_profiles(dem.shape, 360, rng), np.arange(360.0), dem.transform, crs, 2.0, 150.0)
    tracks = body_tracks(epochs_tdb_s("2024-03-01", "2024-05-01", 1.0))
    if shuffle:
        order = rng.permutation(tracks.n)
        tracks = BodyTracks(tracks.t_tdb_s[order], tracks.sun_me_km[order], tracks.earth_me_km[order])
    _assert_maps_equal_point_queries(dem, hmap, tracks)


def test_no_data_pixels_stay_no_data():
    dem = read_dem(data.path("dem_south_pole_240m"), window=Window(730, 700, 4, 3))
    profiles = _smooth_profiles(dem.shape, 72, np.random.default_rng(1))
    profiles[1, 2] = NODATA_CDEG
    hmap = HorizonMap(profiles, np.arange(72) * 5.0, dem.transform, dem.crs, 0.0, 150.0)
    maps = illumination_maps(dem, hmap, body_tracks(epochs_tdb_s("2024-01-01", "2024-01-05", 2.0)), progress=False)
    assert np.isnan(maps.sun_fraction[1, 2]) and np.isnan(maps.longest_night_h[1, 2])
    assert np.isfinite(maps.sun_fraction).sum() == dem.shape[0] * dem.shape[1] - 1
    assert maps.summary()["pixels_without_data"] == 1


def _bowl_dem(a_m, depth_m, pixel_m, n, y0_m):
    """A spherical-cap bowl (rim radius a, depth d) in a plane tangent to the Moon at map
    (0, y0): DEM heights put the planar terrain on the sphere. Returns the DEM and, per pixel,
    the local east/north/up coordinates (m) of its terrain point in the crater's frame."""
    transform = _grid(-(n // 2) * pixel_m, y0_m + (n // 2) * pixel_m, pixel_m)
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    x, y = transform.c + pixel_m * (cols + 0.5), transform.f - pixel_m * (rows + 0.5)
    lon, lat = rasterio.warp.transform(SOUTH, MOON_GEOGRAPHIC, x.ravel(), y.ravel())
    lat, lon = np.reshape(lat, x.shape), np.reshape(lon, x.shape)
    basis = enu_basis(lat[n // 2, n // 2], lon[n // 2, n // 2])
    up = enu_basis(lat, lon)[..., 2, :]
    centre = 1737400.0 * basis[2]
    local = np.einsum("ij,...j->...i", basis, 1737400.0 * up - centre)  # sphere points in the crater frame
    rho = np.hypot(local[..., 0], local[..., 1])
    sphere_r = (a_m**2 + depth_m**2) / (2 * depth_m)
    z = np.where(rho < a_m, sphere_r - depth_m - np.sqrt(np.maximum(sphere_r**2 - rho**2, 0.0)), 0.0)
    heights = z - local[..., 2]  # along the vertical: planar terrain above the sphere
    points = np.stack([local[..., 0], local[..., 1], z], axis=-1)
    return Dem(heights, transform, SOUTH), points, basis, sphere_r


def _bowl_lit(points, sun_enu, a_m, depth_m, sphere_r):
    """Analytic: lit iff the ray to the Sun leaves the bowl's sphere above the rim plane."""
    centre = np.array([0.0, 0.0, sphere_r - depth_m])
    rel = points - centre
    t_exit = -2.0 * rel @ sun_enu
    exit_z = points[..., 2] + t_exit * sun_enu[2]
    inside = np.hypot(points[..., 0], points[..., 1]) < a_m
    return ~inside | ((t_exit > 0.0) & (exit_z >= 0.0))


@pytest.mark.parametrize("sun_el_deg, sun_az_deg", [(8.0, 135.0), (16.0, 300.0)])
def test_bowl_crater_shadow_matches_the_analytic_shadow(sun_el_deg, sun_az_deg):
    """Horizons of a synthetic bowl (compute_horizon) and one Sun direction: every floor pixel
    whose analytic state does not change within +-0.8 deg of elevation / 3 deg of azimuth (the
    solar disc and the 2-deg horizon sampling) is fully lit or fully dark exactly as the
    analytic shadow; the shadowed part of the floor agrees to 3 %. Pixels within two pixels of
    the rim are left out: there the bilinear DEM rounds off the rim's kink, so the gridded
    terrain is not the analytic surface (the Sun behind a steep wall facet is seen as lit)."""
    a_m, depth_m, pixel_m, n = 1500.0, 350.0, 60.0, 61
    dem, points, basis, sphere_r = _bowl_dem(a_m, depth_m, pixel_m, n, -80000.0)
    hmap = compute_horizon(dem, n_azimuths=180, max_distance_km=3.2, step_fraction=0.0, progress=False)

    def sun(el_deg, az_deg):
        el, az = math.radians(el_deg), math.radians(az_deg)
        return np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])

    direction_me = basis.T @ sun(sun_el_deg, sun_az_deg)
    centre_km = 1737.4 * basis[2]
    tracks = BodyTracks(np.zeros(1), (centre_km + AU_KM * direction_me)[None],
                        (centre_km + 384400.0 * direction_me)[None])
    fraction = illumination_maps(dem, hmap, tracks, progress=False).sun_fraction

    lit = _bowl_lit(points, sun(sun_el_deg, sun_az_deg), a_m, depth_m, sphere_r)
    robust = np.ones_like(lit)
    for d_el in (-0.8, 0.8):
        for d_az in (-3.0, 3.0):
            robust &= _bowl_lit(points, sun(sun_el_deg + d_el, sun_az_deg + d_az), a_m, depth_m, sphere_r) == lit
    floor = np.hypot(points[..., 0], points[..., 1]) < a_m
    robust &= np.hypot(points[..., 0], points[..., 1]) < a_m - 2 * pixel_m
    assert (robust & floor & ~lit).sum() > 50 and (robust & floor & lit).sum() > 50
    assert np.all(fraction[robust & lit] == 1.0)
    assert np.all(fraction[robust & ~lit] == 0.0)
    shadow = (1.0 - fraction)[floor].sum()
    assert abs(shadow - (~lit)[floor].sum()) < 0.03 * floor.sum()


# --- bad input ----------------------------------------------------------------------------


def test_epochs_and_bad_spans():
    assert len(epochs_tdb_s("2024-01-01", "2025-01-01", 1.0)) == 8784
    assert len(epochs_tdb_s("2023-01-01", "2024-01-01", 6.0)) == 1460
    with pytest.raises(ModelConfigError, match="after the start"):
        epochs_tdb_s("2024-02-01", "2024-01-01", 1.0)
    with pytest.raises(ModelConfigError, match="positive"):
        epochs_tdb_s("2024-01-01", "2024-02-01", 0.0)
    with pytest.raises(EpochOutOfRangeError, match="outside the DE440 kernels"):
        body_tracks(epochs_tdb_s("2160-01-01", "2160-01-02", 1.0))


def test_point_outside_dem_and_mismatched_horizon():
    dem = read_dem(data.path("dem_south_pole_240m"), window=Window(730, 700, 4, 3))
    hmap = HorizonMap(np.zeros(dem.shape + (36,), np.int16), np.arange(36) * 10.0, dem.transform, dem.crs, 2.0, 150.0)
    tracks = body_tracks(epochs_tdb_s("2024-01-01", "2024-01-02", 1.0))
    with pytest.raises(ModelConfigError, match="outside the DEM"):
        point_series(dem, hmap, -80.0, 10.0, tracks)
    with pytest.raises(ModelConfigError, match="observer 2 m above the ground, not 10 m"):
        illumination_maps(dem, hmap, tracks, observer_height_m=10.0, progress=False)
    shifted = HorizonMap(hmap.elev_cdeg, hmap.azimuths_deg, dem.transform * Affine.translation(1, 0), dem.crs,
                         2.0, 150.0)
    with pytest.raises(ModelConfigError, match="not the DEM grid"):
        illumination_maps(dem, shifted, tracks, progress=False)
    lat, lon = pixel_lat_lon(dem)
    east_lon = float(lon[1, 1]) % 360.0  # 0..360 E is accepted
    assert point_series(dem, hmap, float(lat[1, 1]), east_lon, tracks).col == 1

"""Footprints on a DEM against analytic terrain: flat (the sphere), raised by h (the sphere of
radius R + h, closed-form ray-sphere intersection), a tilted plane under a nadir ray, a DEM
covering part of the footprint (the sphere outside it), and the refusals.

The DEMs are LOLA-style south polar stereographic grids (heights above the 1737.4 km sphere).
Map coordinates of a point in that projection, Snyder (1987), Map Projections - A Working
Manual, USGS PP 1395, ch. 21 (polar aspect, south pole, k0 = 1):
rho = 2 R tan(pi/4 + lat/2), x = rho sin(lon), y = rho cos(lon).
"""

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from qamar.constants import GM_MOON_DE440_KM3_S2, MOON_RADIUS_KM
from qamar.errors import DataFormatError
from qamar.frames import body_vector_from_lat_lon, icrf_to_me, lat_lon_deg
from qamar.orbit.trajectory import Trajectory
from qamar.payload.camera import camera
from qamar.payload.footprint import camera_axes, footprints, geometry
from qamar.surface.terrain import Dem
from qamar.time import utc_to_tdb_s

R = MOON_RADIUS_KM
SOUTH = CRS.from_proj4("+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m +no_defs")
NARROW = camera("narrow", 5.5, focal_length_mm=25)
T0 = float(utc_to_tdb_s("2024-05-10T00:00:00Z"))
PIXEL_M = 100.0


def _dem(heights_of_xy, half_width_m=40_000.0, x_min_m=None) -> Dem:
    """A south polar DEM of PIXEL_M pixels from -half_width (or x_min) to +half_width, heights h(x, y) in m."""
    x0 = -half_width_m if x_min_m is None else x_min_m
    nx, ny = round((half_width_m - x0) / PIXEL_M), round(2 * half_width_m / PIXEL_M)
    x = x0 + PIXEL_M * (np.arange(nx) + 0.5)
    y = half_width_m - PIXEL_M * (np.arange(ny) + 0.5)
    xx, yy = np.meshgrid(x, y)
    return Dem(np.asarray(heights_of_xy(xx, yy), dtype=np.float64), Affine(PIXEL_M, 0, x0, 0, -PIXEL_M, half_width_m),
               SOUTH)


def _polar_xy_m(lat_deg, lon_deg):
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    rho = 2 * R * 1e3 * np.tan(np.pi / 4 + lat / 2)
    return rho * np.sin(lon), rho * np.cos(lon)


def _orbit_over(lat_deg, lon_deg, alt_km):
    """Circular orbit whose sub-spacecraft point at T0 is (lat, lon) in MOON_ME (exact dense output)."""
    a = R + alt_km
    n = np.sqrt(GM_MOON_DE440_KM3_S2 / a**3)
    e1 = icrf_to_me(T0).T @ body_vector_from_lat_lon(lat_deg, lon_deg, 1.0)
    e2 = np.cross(e1, [0.0, 0.0, 1.0])
    e2 /= np.linalg.norm(e2)

    def dense(t):
        u = n * (np.asarray(t, float) - T0)
        return np.hstack([a * (np.cos(u)[:, None] * e1 + np.sin(u)[:, None] * e2),
                          a * n * (-np.sin(u)[:, None] * e1 + np.cos(u)[:, None] * e2)])

    t = T0 + np.linspace(-600.0, 600.0, 21)
    return Trajectory(t, dense(t), dense)


def _sphere_points(trajectory, cam, t, radius_km, per_edge=8):
    """Outline points on the sphere of radius_km: near root of |r + s d| = radius (closed form)."""
    geom = geometry(trajectory, np.array([t]))
    d = cam.edge_directions(per_edge) @ camera_axes(cam, geom)[0].T
    r = geom.r_me_km[0]
    b = d @ r
    s = -b - np.sqrt(b * b - (r @ r - radius_km**2))
    return r + s[:, None] * d


def test_a_flat_dem_gives_the_sphere_footprint():
    trajectory = _orbit_over(-89.5, 30.0, 100.0)
    dem = _dem(lambda x, y: np.zeros_like(x))
    on_dem, = footprints(NARROW, trajectory, T0, dem=dem)
    sphere, = footprints(NARROW, trajectory, T0)
    assert on_dem.on_dem.all() and on_dem.centre_on_dem and not sphere.on_dem.any()
    assert np.allclose(on_dem.lat_deg, sphere.lat_deg, atol=1e-7, rtol=0)
    assert np.allclose(on_dem.lon_deg, sphere.lon_deg, atol=1e-5, rtol=0)  # 1e-5 deg of lon at -89.5: 1.5 mm
    assert np.allclose(on_dem.height_m, 0.0, atol=1e-3)
    assert on_dem.centre.range_km == pytest.approx(100.0, abs=1e-6)


def test_a_dem_raised_by_h_gives_the_footprint_of_the_sphere_of_radius_r_plus_h():
    h_km = 2.0
    trajectory = _orbit_over(-89.5, 30.0, 100.0)
    fp, = footprints(NARROW, trajectory, T0, dem=_dem(lambda x, y: np.full_like(x, h_km * 1e3)))
    lat, lon = lat_lon_deg(_sphere_points(trajectory, NARROW, T0, R + h_km))
    assert np.allclose(fp.lat_deg, lat, atol=1e-7, rtol=0)
    assert np.allclose(fp.lon_deg, lon, atol=1e-5, rtol=0)
    assert np.allclose(fp.height_m, h_km * 1e3, atol=1e-3)
    # The nadir boresight meets the raised sphere h closer; the sub-spacecraft point is the centre.
    assert fp.centre.range_km == pytest.approx(100.0 - h_km, abs=1e-6)
    assert fp.centre.lat_deg == pytest.approx(-89.5, abs=1e-9)
    assert fp.centre_height_m == pytest.approx(h_km * 1e3, abs=1e-3)


def test_a_tilted_plane_under_a_nadir_ray():
    """h = 0.05 x - 0.02 y (3 deg and 1 deg slopes): the nadir ray meets the terrain straight below
    the spacecraft at the plane's height there; every outline point lies on the plane."""
    def plane_m(x, y):
        return 0.05 * x - 0.02 * y

    trajectory = _orbit_over(-89.6, 120.0, 60.0)
    fp, = footprints(NARROW, trajectory, T0, dem=_dem(plane_m))
    h_sub_m = plane_m(*_polar_xy_m(-89.6, 120.0))
    assert abs(h_sub_m) > 500.0
    assert fp.centre_on_dem and fp.on_dem.all()
    assert fp.centre.range_km == pytest.approx(60.0 - h_sub_m / 1e3, abs=1e-6)
    assert fp.centre.lat_deg == pytest.approx(-89.6, abs=1e-9)
    assert fp.centre.lon_deg == pytest.approx(120.0, abs=1e-6)
    assert np.allclose(fp.height_m, plane_m(*_polar_xy_m(fp.lat_deg, fp.lon_deg)), atol=1e-2)


def test_rays_beyond_the_dem_fall_back_to_the_sphere():
    """A DEM covering x > 0 only: outline points over it are on it, the others on the sphere."""
    trajectory = _orbit_over(-89.8, 90.0, 100.0)  # sub-spacecraft point at x = 6 km
    fp, = footprints(NARROW, trajectory, T0, dem=_dem(lambda x, y: np.full_like(x, 1000.0), x_min_m=0.0))
    sphere, = footprints(NARROW, trajectory, T0)
    x, _ = _polar_xy_m(sphere.lat_deg, sphere.lon_deg)
    assert fp.on_dem[x > 1000.0].all() and not fp.on_dem[x < -1000.0].any()
    off = ~fp.on_dem
    assert np.allclose(fp.lat_deg[off], sphere.lat_deg[off], atol=1e-9, rtol=0)
    assert np.all(fp.height_m[off] == 0.0) and np.allclose(fp.height_m[fp.on_dem], 1000.0, atol=1e-3)


def test_a_hole_on_a_line_of_sight_is_an_error():
    trajectory = _orbit_over(-89.5, 30.0, 100.0)
    x0, y0 = _polar_xy_m(-89.5, 30.0)
    dem = _dem(lambda x, y: np.where(np.hypot(x - x0, y - y0) < 2000.0, np.nan, 0.0))
    with pytest.raises(DataFormatError, match="without data"):
        footprints(NARROW, trajectory, T0, dem=dem)


def test_a_dem_without_an_analytic_projection_is_refused():
    ortho = CRS.from_proj4("+proj=ortho +lat_0=-90 +lon_0=0 +R=1737400 +units=m +no_defs")
    dem = Dem(np.zeros((10, 10)), Affine(PIXEL_M, 0, -500.0, 0, -PIXEL_M, 500.0), ortho)
    with pytest.raises(DataFormatError, match="polar stereographic or equirectangular"):
        footprints(NARROW, _orbit_over(-89.5, 30.0, 100.0), T0, dem=dem)

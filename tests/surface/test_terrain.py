"""Terrain: DEM reading, lunar map projections and slope on a curved body.

References: projections are checked against GDAL/PROJ (rasterio.warp.transform), an
independent implementation; the LOLA south polar stereographic convention (+y to lon 0,
+x to lon 90 E) is stated in ../shared/data/README.md and in the LOLA GDR labels
(LRO-L-LOLA-4-GDR-V1.0, DSMAP_POLAR.CAT: x = 2R tan((90 + lat)/2) sin(lon),
y = 2R tan((90 + lat)/2) cos(lon) south of the equator; sample/line from
SAMPLE/LINE_PROJECTION_OFFSET and MAP_SCALE).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS

from qamar import data
from qamar.errors import DataFormatError
from qamar.surface.terrain import (
    Dem,
    enu_basis,
    lat_lon_to_xy,
    me_from_lat_lon_height,
    pixel_lat_lon,
    pixel_xy,
    read_dem,
    slope_aspect_roughness,
    xy_to_lat_lon,
)

R_M = 1737400.0
LOLA_SOUTH = "+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m"
MOON_GEOGRAPHIC = CRS.from_proj4("+proj=longlat +R=1737400 +no_defs")


@pytest.fixture(scope="module")
def dem240() -> Dem:
    return read_dem(data.path("dem_south_pole_240m"))


POLE_GRID = Affine(240.0, 0.0, -1320.0, 0.0, -240.0, 1320.0)  # 11 x 11 pixels, the centre one on the pole


def _dem(crs: str, shape=(11, 11), transform=POLE_GRID) -> Dem:
    return Dem(np.zeros(shape, dtype=np.float32), transform, CRS.from_user_input(crs))


def test_read_lola_240m(dem240):
    assert dem240.shape == (1536, 1536)
    assert dem240.radius_m == R_M
    assert dem240.projection.kind == "polar_stereographic"
    assert dem240.pixel_size_m == 240.0
    assert dem240.nodata_count == 0
    window = read_dem(data.path("dem_south_pole_240m"), window=((100, 150), (200, 260)))
    np.testing.assert_array_equal(window.elevation_m, dem240.elevation_m[100:150, 200:260])
    assert window.transform.c == -184320.0 + 200 * 240.0 and window.transform.f == 184320.0 - 100 * 240.0


def test_lola_axes_as_documented(dem240):
    # ../shared/data/README.md: +y points to longitude 0, +x to longitude 90 E.
    x, y = lat_lon_to_xy([-89.0, -89.0, -89.0], [0.0, 90.0, 180.0], dem240)
    rho = 2 * R_M * math.tan(math.radians(90.0 - 89.0) / 2)  # LOLA DSMAP_POLAR formula
    np.testing.assert_allclose(x, [0.0, rho, 0.0], atol=1e-6)
    np.testing.assert_allclose(y, [rho, 0.0, -rho], atol=1e-6)


def test_round_trip_against_proj(dem240):
    rng = np.random.default_rng(7)
    x = rng.uniform(-184320, 184320, 2000)
    y = rng.uniform(-184320, 184320, 2000)
    lat, lon = xy_to_lat_lon(x, y, dem240)
    lon_proj, lat_proj = rasterio.warp.transform(dem240.crs, MOON_GEOGRAPHIC, x, y)
    np.testing.assert_allclose(lat, lat_proj, atol=1e-10)
    np.testing.assert_allclose((lon - np.array(lon_proj) + 180) % 360 - 180, 0.0, atol=1e-10)
    # longitudes 0..360 E and -180..180 give the same point
    x2, y2 = lat_lon_to_xy(lat, np.where(lon < 0, lon + 360.0, lon), dem240)
    np.testing.assert_allclose(x2, x, atol=1e-6)
    np.testing.assert_allclose(y2, y, atol=1e-6)


@pytest.mark.parametrize(
    "crs, lat_range, transform",
    [
        ("IAU_2015:30110", (-60.0, 60.0), Affine(100.0, 0, -500.0, 0, -100.0, 500.0)),  # Moon equirectangular
        ("+proj=stere +lat_0=-90 +lat_ts=-80 +lon_0=30 +x_0=1000 +R=1737400 +units=km", (-89.0, -70.0), None),
        ("+proj=stere +lat_0=90 +lon_0=45 +k=0.994 +R=1737400 +units=m", (70.0, 89.0), None),
        ("+proj=longlat +R=1737400 +no_defs", (-60.0, 60.0), Affine(0.1, 0, -30.0, 0, -0.1, 60.0)),
        ("+proj=laea +lat_0=-90 +lon_0=0 +R=1737400 +units=m", (-89.0, -70.0), None),  # through GDAL/PROJ
    ],
)
def test_other_lunar_crs_against_proj(crs, lat_range, transform):
    dem = _dem(crs, shape=(600, 600), transform=transform or POLE_GRID)
    rng = np.random.default_rng(3)
    lat = rng.uniform(*lat_range, 300)
    lon = rng.uniform(-25.0, 25.0, 300)
    x, y = lat_lon_to_xy(lat, lon, dem)
    x_proj, y_proj = rasterio.warp.transform(MOON_GEOGRAPHIC, dem.crs, lon, lat)
    np.testing.assert_allclose(x, x_proj, rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(y, y_proj, rtol=1e-12, atol=1e-6)
    lat2, lon2 = xy_to_lat_lon(x, y, dem)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)


def test_pixel_centres_and_pole_convention():
    dem = _dem(LOLA_SOUTH)  # 11 x 11, the centre pixel is on the pole
    x, y = pixel_xy(dem)
    assert x[5, 5] == 0.0 and y[5, 5] == 0.0 and x[0, 0] == -1200.0 and y[0, 0] == 1200.0
    lat, lon = pixel_lat_lon(dem)
    assert lat[5, 5] == -90.0 and lon[5, 5] == 0.0
    basis = enu_basis(lat[5, 5], lon[5, 5])
    # at the south pole with lon 0: north towards lon 0 (+x ME), east towards lon 90 E (+y ME)
    np.testing.assert_allclose(basis, [[0, 1, 0], [1, 0, 0], [0, 0, -1]], atol=1e-15)


def test_me_and_enu():
    p = me_from_lat_lon_height([0.0, -90.0, 45.0], [0.0, 123.0, 90.0], [0.0, 10.0, 0.0], R_M)
    np.testing.assert_allclose(p[0], [R_M, 0, 0], atol=1e-9)
    np.testing.assert_allclose(p[1], [0, 0, -(R_M + 10.0)], atol=1e-9)
    np.testing.assert_allclose(p[2], [0, R_M / math.sqrt(2), R_M / math.sqrt(2)], atol=1e-6)
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-89, 89, 50), rng.uniform(-180, 180, 50)
    m = enu_basis(lat, lon)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-14)
    np.testing.assert_allclose(np.cross(m[:, 0], m[:, 1]), m[:, 2], atol=1e-14)  # E x N = U
    np.testing.assert_allclose(m[:, 2], me_from_lat_lon_height(lat, lon, 0.0, 1.0), atol=1e-14)
    # north points to increasing latitude
    ahead = me_from_lat_lon_height(lat + 1e-4, lon, 0.0, 1.0) - me_from_lat_lon_height(lat, lon, 0.0, 1.0)
    assert np.all(np.einsum("ij,ij->i", ahead, m[:, 1]) > 0)


@pytest.mark.parametrize("tilt_deg, toward_deg", [(12.0, 90.0), (30.0, 215.0), (3.0, 0.0)])
def test_slope_of_a_tilted_plane_on_the_sphere(tilt_deg, toward_deg):
    """A true plane in ME through a point 80 km from the pole, its normal tilted by
    ``tilt_deg`` from the vertical towards azimuth ``toward_deg``. Heights are where each
    pixel's radial line meets the plane, so slope = angle(normal, local up) exactly."""
    transform = Affine(240.0, 0.0, -60000.0 - 50 * 240.0, 0.0, -240.0, -80000.0 + 50 * 240.0)
    flat = Dem(np.zeros((101, 101)), transform, CRS.from_proj4(LOLA_SOUTH))
    lat, lon = pixel_lat_lon(flat)
    basis = enu_basis(lat[50, 50], lon[50, 50])
    t, a = math.radians(tilt_deg), math.radians(toward_deg)
    normal = math.cos(t) * basis[2] + math.sin(t) * (math.sin(a) * basis[0] + math.cos(a) * basis[1])
    u = me_from_lat_lon_height(lat, lon, 0.0, 1.0)
    heights = R_M * float(basis[2] @ normal) / (u @ normal) - R_M
    slope, aspect, rough = slope_aspect_roughness(Dem(heights, transform, flat.crs))
    expected_slope = np.degrees(np.arccos(u @ normal))
    b = enu_basis(lat, lon)
    expected_aspect = np.degrees(np.arctan2(b[..., 0, :] @ normal, b[..., 1, :] @ normal)) % 360.0
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(slope[inner], expected_slope[inner], atol=1e-6)
    np.testing.assert_allclose((aspect[inner] - expected_aspect[inner] + 180.0) % 360.0 - 180.0, 0.0, atol=1e-5)
    assert abs((aspect[50, 50] - toward_deg + 180.0) % 360.0 - 180.0) < 1e-5  # the plane faces (descends) towards toward_deg
    np.testing.assert_allclose(rough[inner], 0.0, atol=1e-5)  # a plane has no roughness
    assert np.isnan(slope[0]).all() and np.isnan(slope[:, -1]).all()


def test_smooth_sphere_is_level_and_barely_rough():
    slope, _, rough = slope_aspect_roughness(_dem(LOLA_SOUTH, shape=(21, 21)))
    assert np.nanmax(slope) < 1e-4
    # neighbours 240 m (x4) and 339 m (x4) away drop d^2/2R below the tangent plane
    p = 240.0
    expected = p * p / R_M * math.sqrt((4 * 0.5**2 + 4 * 1.0**2) / 8)
    np.testing.assert_allclose(rough[1:-1, 1:-1], expected, rtol=1e-2)


def _write_tif(path, array, crs, nodata=None):
    profile = {"driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1,
               "dtype": array.dtype.name, "transform": Affine(240.0, 0, -1200.0, 0, -240.0, 1200.0), "nodata": nodata}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path


def test_dem_without_crs_is_refused(tmp_path):
    path = _write_tif(tmp_path / "nocrs.tif", np.zeros((10, 10), np.float32), None)
    with pytest.raises(DataFormatError, match="no coordinate reference system.*gdal_edit"):
        read_dem(path)


@pytest.mark.parametrize("crs, message", [
    ("EPSG:4326", "not a lunar sphere"),
    ("+proj=stere +lat_0=-90 +R=3396190 +units=m", "3396.2 km, not the Moon"),
])
def test_non_lunar_crs_is_refused(tmp_path, crs, message):
    path = _write_tif(tmp_path / "earth.tif", np.zeros((10, 10), np.float32), crs)
    with pytest.raises(DataFormatError, match=message):
        read_dem(path)


def test_holes_are_reported_not_filled(tmp_path):
    heights = np.arange(100, dtype=np.float32).reshape(10, 10)
    heights[2, 3] = heights[7, 7] = heights[7, 8] = -9999.0
    dem = read_dem(_write_tif(tmp_path / "holes.tif", heights, LOLA_SOUTH, nodata=-9999.0))
    assert dem.nodata_count == 3 and dem.nodata_fraction == pytest.approx(0.03)
    assert np.isnan(dem.elevation_m[2, 3]) and dem.elevation_m[2, 4] == 24.0
    with pytest.raises(DataFormatError, match="3 pixels .* have no data"):
        dem.require_complete("a horizon map")
    slope, _, _ = slope_aspect_roughness(dem)
    assert np.isnan(slope[2, 3]) and np.isnan(slope[1, 3]) and not np.isnan(slope[5, 5])


def test_pds3_lola_img_with_label(tmp_path):
    """A LOLA-style PDS3 product: int16 DN, SCALING_FACTOR 0.5, OFFSET 1737400 (radius),
    polar stereographic; the label's projection offsets define the grid (LOLA GDR labels)."""
    ny = nx = 64
    dn = (np.arange(ny * nx).reshape(ny, nx) % 1000 - 500).astype("<i2")
    dn[5, 6] = -32768  # PDS NULL for 16-bit data
    dn.tofile(tmp_path / "LDEM_TEST.IMG")
    (tmp_path / "LDEM_TEST.LBL").write_text(f"""PDS_VERSION_ID = "PDS3"
RECORD_TYPE = FIXED_LENGTH
RECORD_BYTES = {nx * 2}
FILE_RECORDS = {ny}
^IMAGE = "LDEM_TEST.IMG"
OBJECT = IMAGE
  LINES = {ny}
  LINE_SAMPLES = {nx}
  SAMPLE_TYPE = LSB_INTEGER
  SAMPLE_BITS = 16
  UNIT = METER
  SCALING_FACTOR = 0.5
  OFFSET = 1737400.
END_OBJECT = IMAGE
OBJECT = IMAGE_MAP_PROJECTION
  MAP_PROJECTION_TYPE = "POLAR STEREOGRAPHIC"
  A_AXIS_RADIUS = 1737.4 <KM>
  B_AXIS_RADIUS = 1737.4 <KM>
  C_AXIS_RADIUS = 1737.4 <KM>
  POSITIVE_LONGITUDE_DIRECTION = "EAST"
  CENTER_LATITUDE = -90. <DEG>
  CENTER_LONGITUDE = 0. <DEG>
  MAP_SCALE = 120 <METERS/PIXEL>
  LINE_PROJECTION_OFFSET = 31.5 <PIXEL>
  SAMPLE_PROJECTION_OFFSET = 31.5 <PIXEL>
  COORDINATE_SYSTEM_NAME = "MEAN EARTH/POLAR AXIS"
END_OBJECT = IMAGE_MAP_PROJECTION
END
""")
    dem = read_dem(tmp_path / "LDEM_TEST.LBL")
    assert dem.radius_m == R_M and dem.projection.kind == "polar_stereographic"
    expected = dn * 0.5
    expected[5, 6] = np.nan
    np.testing.assert_array_equal(dem.elevation_m, expected.astype(np.float32))
    assert dem.nodata_count == 1
    # LOLA label convention: x = (sample - SAMPLE_PROJECTION_OFFSET - 1) * MAP_SCALE with
    # 1-based samples, y = (1 + LINE_PROJECTION_OFFSET - line) * MAP_SCALE
    x, y = pixel_xy(dem)
    assert x[0, 0] == (1 - 31.5 - 1) * 120.0 and y[0, 0] == (1 + 31.5 - 1) * 120.0

"""Horizon maps against analytic geometry on the 1737.4 km sphere.

References:
- Dip of the geometric horizon for an eye at height h above a sphere of radius R:
  cos(dip) = R / (R + h) (e.g. Bowditch, The American Practical Navigator, NGA Pub. 9,
  2019, ch. 16 "dip", without refraction; the Moon has no atmosphere).
- Elevation of a point at height H and great-circle angle theta seen from height h0:
  tan(e) = ((R + H) cos(theta) - (R + h0)) / ((R + H) sin(theta)) (plane triangle in the
  plane of the great circle); for small angles e ~ (H - h0)/d - d/(2R), the curvature drop
  d^2/2R. GRASS r.horizon's flat-Earth correction uses 6371 km instead (GRASS 8.2 manual).
- Distances along a meridian come from GDAL/PROJ (rasterio.warp), independently of qamar.
"""

from __future__ import annotations

import math
import resource
import tracemalloc

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from qamar import data
from qamar.errors import DataFormatError, ModelConfigError
from qamar.surface.horizon import (
    NODATA_CDEG,
    HorizonMap,
    compute_horizon,
    compute_horizon_tiled,
    horizon_elevation_rad,
    read_horizon,
    write_horizon,
)
from qamar.surface.terrain import Dem, read_dem

R_M = 1737400.0
SOUTH = CRS.from_proj4("+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m")
MOON_GEOGRAPHIC = CRS.from_proj4("+proj=longlat +R=1737400 +no_defs")
CDEG = 0.01
QUANTUM_DEG = 0.005  # int16 centi-degree rounding


def _grid(x_centres_m, y_centres_m, pixel_m):
    """Transform whose pixel centres are at the given first x and first (top) y."""
    return Affine(pixel_m, 0.0, x_centres_m - pixel_m / 2, 0.0, -pixel_m, y_centres_m + pixel_m / 2)


def _elev_deg(h_target_m, theta_rad, h_obs_m):
    return math.degrees(math.atan2((R_M + h_target_m) * math.cos(theta_rad) - (R_M + h_obs_m),
                                   (R_M + h_target_m) * math.sin(theta_rad)))


@pytest.mark.parametrize("observer_height_m", [2.0, 100.0])
def test_smooth_sphere_dip(observer_height_m):
    """A DEM of zeros is the bare sphere: every horizon is the dip -acos(R/(R+h)).
    h = 2 m: -0.0869 deg (tangent point 2.6 km away); h = 100 m: -0.6147 deg (18.6 km)."""
    dem = Dem(np.zeros((201, 201), np.float32), _grid(-24000.0, 24000.0, 240.0), SOUTH)  # pole at the centre
    hmap = compute_horizon(dem, n_azimuths=16, max_distance_km=23.0, observer_height_m=observer_height_m,
                           window=Window(96, 96, 9, 9), progress=False)
    dip_deg = -math.degrees(math.acos(R_M / (R_M + observer_height_m)))
    np.testing.assert_allclose(hmap.elev_cdeg * CDEG, dip_deg, atol=QUANTUM_DEG + 1e-4)


def test_smooth_sphere_dip_equirectangular():
    """The same on an equirectangular (IAU_2015:30110) DEM at the equator, 100 m pixels."""
    crs = CRS.from_user_input("IAU_2015:30110")
    dem = Dem(np.zeros((161, 161), np.float32), _grid(-8000.0, 8000.0, 100.0), crs)
    hmap = compute_horizon(dem, n_azimuths=12, max_distance_km=7.5, observer_height_m=5.0,
                           window=Window(78, 78, 5, 5), progress=False)
    dip_deg = -math.degrees(math.acos(R_M / (R_M + 5.0)))  # -0.1374 deg at 4.2 km
    np.testing.assert_allclose(hmap.elev_cdeg * CDEG, dip_deg, atol=QUANTUM_DEG + 1e-4)


def test_bowl_crater_rim_from_the_centre():
    """A spherical-cap bowl 5 km in radius and 500 m deep whose rim is at datum height,
    centred 60 km from the pole: from the floor centre the horizon in every azimuth is the
    rim, at tan(e) = (R cos(a/R) - (R - D)) / (R sin(a/R)) = 5.62 deg; the curvature term
    a/2R is 0.082 deg. Heights are functions of the exact great-circle distance."""
    a_m, depth_m, pixel_m = 5000.0, 500.0, 5.0
    rho = (a_m**2 + depth_m**2) / (2 * depth_m)
    n = 2 * int((a_m + 300) / pixel_m) + 1
    cx, cy = 0.0, -60000.0
    transform = _grid(cx - (n // 2) * pixel_m, cy + (n // 2) * pixel_m, pixel_m)
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    x, y = transform.c + pixel_m * (cols + 0.5), transform.f - pixel_m * (rows + 0.5)
    lon, lat = rasterio.warp.transform(SOUTH, MOON_GEOGRAPHIC, x.ravel(), y.ravel())
    lat, lon = np.radians(np.reshape(lat, x.shape)), np.radians(np.reshape(lon, x.shape))
    lat0 = lat[n // 2, n // 2]
    cos_s = np.sin(lat) * math.sin(lat0) + np.cos(lat) * math.cos(lat0) * np.cos(lon - lon[n // 2, n // 2])
    s_m = R_M * np.arccos(np.clip(cos_s, -1, 1))
    heights = np.where(s_m < a_m, -depth_m + rho - np.sqrt(np.maximum(rho**2 - s_m**2, 0.0)), 0.0)
    dem = Dem(heights.astype(np.float64), transform, SOUTH)
    hmap = compute_horizon(dem, n_azimuths=36, max_distance_km=5.25, step_fraction=0.0,
                           window=Window(n // 2, n // 2, 1, 1), progress=False)
    rim_deg = _elev_deg(0.0, a_m / R_M, -depth_m)
    # sampling every 5 m on a rim slope of 11.4 deg: at most 1 m low, 0.011 deg at 5 km
    tolerance = math.degrees(pixel_m * math.tan(math.asin(a_m / rho)) / a_m) + QUANTUM_DEG
    np.testing.assert_allclose(hmap.elev_cdeg[0, 0] * CDEG, rim_deg, atol=tolerance)
    assert abs(rim_deg - math.degrees(math.atan(depth_m / a_m))) > 3 * tolerance  # curvature is resolved


def _meridian_distance_m(y0_m, y1_m):
    """Great-circle distance between two points on the lon-180 half of the x = 0 line (PROJ)."""
    _, lat = rasterio.warp.transform(SOUTH, MOON_GEOGRAPHIC, [0.0, 0.0], [y0_m, y1_m])
    return R_M * math.radians(abs(lat[1] - lat[0]))


def test_tall_block_fifty_km_away():
    """A 2 km tall, 2.4 km wide flat-topped block 50 km due north (azimuth 0) of the observer
    on the bare sphere. The horizon is its top edge, seen across the curvature drop
    d^2/2R = 720 m (0.82 deg at 50 km, against 0.22 deg with Earth's radius as in GRASS)."""
    pixel_m = 240.0
    y_obs, y_near = -100080.0, -150000.0  # lon 180 meridian: north is map -y
    transform = _grid(-10 * pixel_m, -95000.0 + pixel_m / 2, pixel_m)
    ny = int((-95000.0 + pixel_m / 2 - (-156000.0)) / pixel_m)
    heights = np.zeros((ny, 21), np.float32)
    yc = transform.f - pixel_m * (np.arange(ny) + 0.5)
    heights[(yc <= y_near) & (yc > y_near - 2400.0), 5:16] = 2000.0
    dem = Dem(heights, transform, SOUTH)
    i_obs = int(np.argmin(np.abs(yc - y_obs)))
    hmap = compute_horizon(dem, n_azimuths=4, max_distance_km=58.0, step_fraction=0.0,
                           window=Window(10, i_obs, 1, 1), progress=False)
    d_near = _meridian_distance_m(yc[i_obs], y_near)
    # the first sample on the flat top lies within two pixels beyond its nearest centre
    upper = _elev_deg(2000.0, d_near / R_M, 0.0)
    lower = _elev_deg(2000.0, (d_near + 2 * pixel_m) / R_M, 0.0)
    got = hmap.elev_cdeg[0, 0, 0] * CDEG
    assert lower - QUANTUM_DEG <= got <= upper + QUANTUM_DEG
    assert upper - lower < 0.05
    flat_earth = math.degrees(math.atan(2000.0 / d_near))
    assert flat_earth - upper > 0.8  # the curvature drop is in
    # east, south and west see the bare sphere: dip 0 for an observer on the ground
    np.testing.assert_array_equal(hmap.elev_cdeg[0, 0, 1:], 0)


@pytest.mark.parametrize("method", ["sweep", "exact"])
def test_ring_wall_away_from_the_pole(method):
    """A wall 2 km thick whose near edge is 30 km (great circle) from an observer 141 km from
    the pole (lon 135 E, where grid north is 135 deg from true north), with height varying
    with the TRUE azimuth A from the observer, H = 2000 + 1400 cos(3 (A - 60 deg)) m (up to
    73 m per degree of azimuth). At every azimuth the horizon is the wall's near edge, seen
    between elevation(H, 30 km + 2 px) and elevation(H, 30 km); H is taken +-40 m to allow
    for its change across one pixel (0.46 deg of azimuth at 30 km). Geometry from PROJ
    (rasterio.warp) and spherical trigonometry, independent of qamar: this checks the true
    distances and the true azimuths (meridian convergence) of both methods."""
    pixel_m, half = 240.0, 142
    x0, y0 = 100000.0, -100000.0
    transform = _grid(x0 - half * pixel_m, y0 + half * pixel_m, pixel_m)
    cols, rows = np.meshgrid(np.arange(2 * half + 1), np.arange(2 * half + 1))
    x, y = transform.c + pixel_m * (cols + 0.5), transform.f - pixel_m * (rows + 0.5)
    lon, lat = rasterio.warp.transform(SOUTH, MOON_GEOGRAPHIC, np.append(x.ravel(), x0), np.append(y.ravel(), y0))
    lat, lon = np.radians(lat), np.radians(lon)
    lat0, lon0, lat, lon = lat[-1], lon[-1], lat[:-1].reshape(x.shape), lon[:-1].reshape(x.shape)
    dlon = lon - lon0
    s_m = R_M * np.arccos(np.clip(np.sin(lat) * np.sin(lat0) + np.cos(lat) * np.cos(lat0) * np.cos(dlon), -1, 1))
    az = np.arctan2(np.sin(dlon) * np.cos(lat), np.cos(lat0) * np.sin(lat) - np.sin(lat0) * np.cos(lat) * np.cos(dlon))
    wall = (s_m >= 30000.0) & (s_m <= 32000.0)
    heights = np.where(wall, 2000.0 + 1400.0 * np.cos(3 * (az - math.radians(60.0))), 0.0)
    hmap = compute_horizon(Dem(heights, transform, SOUTH), n_azimuths=72, max_distance_km=33.0,
                           window=Window(half, half, 1, 1), progress=False, method=method)
    h_m = 2000.0 + 1400.0 * np.cos(3 * np.radians(hmap.azimuths_deg - 60.0))
    lower = [_elev_deg(h - 40.0, (30000.0 + 2 * pixel_m) / R_M, 0.0) - QUANTUM_DEG for h in h_m]
    upper = [_elev_deg(h + 40.0, 30000.0 / R_M, 0.0) + QUANTUM_DEG for h in h_m]
    got = hmap.elev_cdeg[0, 0] * CDEG
    assert np.all(got >= lower) and np.all(got <= upper), np.column_stack([hmap.azimuths_deg, lower, got, upper])


def test_sweep_matches_exact_on_the_lola_dem():
    """The sweep against the exact great-circle method on the 240 m LOLA south-pole DEM with
    its far DEM, 360 azimuths to 150 km, on three 8 x 8 windows (near the pole, near the
    edge, and the window with the largest difference among 16 random ones measured with
    bench/bench_horizon.py's method: max 0.62 deg, p99 0.07 deg, mean |d| 0.0066 deg there;
    over all 16: max 0.62, p99 0.06, mean |d| 0.007, mean +0.002 deg). The bounds are those
    measurements rounded up: they guard against regressions of the approximation."""
    dem = read_dem(data.path("dem_south_pole_240m"))
    far = read_dem(data.path("dem_south_pole_far"))
    kwargs = {"far_dem": far, "n_azimuths": 360, "max_distance_km": 150.0, "progress": False}
    diff = []
    for row, col in ((723, 782), (53, 220), (1249, 503)):
        win = Window(col, row, 8, 8)
        sweep = compute_horizon(dem, window=win, **kwargs).elev_cdeg.astype(np.int32)
        exact = compute_horizon(dem, window=win, method="exact", **kwargs).elev_cdeg
        diff.append((sweep - exact).ravel() * CDEG)
    d = np.concatenate(diff)
    a = np.abs(d)
    print(f"sweep - exact: max {a.max():.2f}, p99 {np.percentile(a, 99):.3f}, mean |d| {a.mean():.4f}, "
          f"mean {d.mean():+.4f} deg")
    assert a.max() <= 0.7 and np.percentile(a, 99) <= 0.1 and a.mean() <= 0.012 and abs(d.mean()) <= 0.01


def test_azimuth_convention_at_the_pole_pixel():
    """At the pole pixel north is along lon 0 (map +y) and east along lon 90 E (map +x)."""
    pixel_m = 200.0
    heights = np.zeros((121, 121), np.float32)
    heights[10, 60] = 800.0  # map (0, +10 km): lon 0
    heights[60, 110] = 400.0  # map (+10 km, 0): lon 90 E
    dem = Dem(heights, _grid(-12000.0, 12000.0, pixel_m), SOUTH)
    hmap = compute_horizon(dem, n_azimuths=4, max_distance_km=11.0, step_fraction=0.0,
                           window=Window(60, 60, 1, 1), progress=False)
    north, east, south, west = hmap.elev_cdeg[0, 0] * CDEG
    theta = _meridian_distance_m(0.0, -10000.0) / R_M  # same distance on any meridian
    assert abs(north - _elev_deg(800.0, theta, 0.0)) <= QUANTUM_DEG + 1e-3
    assert abs(east - _elev_deg(400.0, theta, 0.0)) <= QUANTUM_DEG + 1e-3
    assert south == 0.0 and west == 0.0


def test_far_dem_supplies_distant_terrain():
    """A small fine DEM with nothing in it and a coarse far DEM with a 3 km plateau 40 km
    away: the horizon sees the plateau only when the far DEM is given."""
    fine = Dem(np.zeros((41, 41), np.float32), _grid(-4000.0, -96000.0, 200.0), SOUTH)  # around y = -100 km
    far_heights = np.zeros((80, 20), np.float32)
    far_transform = _grid(-19 * 1000.0 / 2, -70000.0, 1000.0)
    yc = far_transform.f - 1000.0 * (np.arange(80) + 0.5)
    far_heights[(yc <= -140000.0) & (yc > -146000.0), :] = 3000.0
    far = Dem(far_heights, far_transform, SOUTH)
    kwargs = {"n_azimuths": 4, "max_distance_km": 60.0, "window": Window(20, 20, 1, 1), "progress": False}
    without = compute_horizon(fine, **kwargs)
    with_far = compute_horizon(fine, far_dem=far, **kwargs)
    d = _meridian_distance_m(-100000.0, -140000.0)
    assert without.elev_cdeg[0, 0, 0] == 0
    # the far grid's first full-height row centre is within 1 km of the plateau edge;
    # steps there are 40 km / 128 = 0.31 km
    got = with_far.elev_cdeg[0, 0, 0] * CDEG
    assert _elev_deg(3000.0, (d + 1500.0) / R_M, 0.0) - QUANTUM_DEG <= got <= _elev_deg(3000.0, d / R_M, 0.0)


def test_bad_input():
    dem = Dem(np.zeros((20, 20), np.float32), _grid(0.0, 0.0, 100.0), SOUTH)
    holes = dem.elevation_m.copy()
    holes[3, 4] = np.nan
    with pytest.raises(DataFormatError, match="1 pixels .* have no data.*allow_holes"):
        compute_horizon(Dem(holes, dem.transform, SOUTH), n_azimuths=4, max_distance_km=1.0, progress=False)
    marked = compute_horizon(Dem(holes, dem.transform, SOUTH), n_azimuths=4, max_distance_km=1.0, progress=False,
                             allow_holes=True)
    assert (marked.elev_cdeg[3, 4] == NODATA_CDEG).all() and (marked.elev_cdeg[10, 10] != NODATA_CDEG).all()
    other_crs = Dem(np.zeros((5, 5), np.float32), _grid(0.0, 0.0, 100.0),
                    CRS.from_proj4("+proj=stere +lat_0=90 +lon_0=0 +k=1 +R=1737400 +units=m"))
    with pytest.raises(DataFormatError, match="same CRS"):
        compute_horizon(dem, far_dem=other_crs, n_azimuths=4, max_distance_km=1.0, progress=False)
    laea = Dem(np.zeros((5, 5), np.float32), _grid(0.0, 0.0, 100.0),
               CRS.from_proj4("+proj=laea +lat_0=-90 +R=1737400 +units=m"))
    with pytest.raises(DataFormatError, match="polar stereographic or equirectangular"):
        compute_horizon(laea, n_azimuths=4, max_distance_km=1.0, progress=False)
    with pytest.raises(ModelConfigError):
        compute_horizon(dem, n_azimuths=2, progress=False)


def test_geotiff_round_trip_and_interpolation(tmp_path):
    rng = np.random.default_rng(5)
    elev = rng.integers(-9000, 9000, (50, 70, 36)).astype(np.int16)
    elev[2, 3] = NODATA_CDEG
    hmap = HorizonMap(elev, np.arange(36) * 10.0, _grid(-1000.0, 2000.0, 240.0), SOUTH, 2.0, 150.0)
    path = write_horizon(hmap, tmp_path / "h.tif")
    back = read_horizon(path)
    np.testing.assert_array_equal(back.elev_cdeg, elev)
    assert back.transform == hmap.transform
    np.testing.assert_allclose(rasterio.warp.transform(back.crs, SOUTH, [1e5], [-2e5]), [[1e5], [-2e5]], atol=1e-6)
    assert back.observer_height_m == 2.0 and back.max_distance_km == 150.0
    np.testing.assert_array_equal(back.azimuths_deg, np.arange(36) * 10.0)
    with rasterio.open(path) as ds:
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate" and ds.count == 36
        assert "clockwise from local true north" in ds.tags()["QAMAR_HORIZON_AZIMUTH_CONVENTION"]
    part = read_horizon(path, window=Window(10, 20, 5, 7))
    np.testing.assert_array_equal(part.elev_cdeg, elev[20:27, 10:15])
    # interpolation between azimuths, wrapping through north
    row = elev[0, 0].astype(float)
    assert back.elevation_deg(0, 0, 15.0) == pytest.approx((row[1] + row[2]) / 200)
    assert back.elevation_deg(0, 0, 357.5) == pytest.approx((0.25 * row[35] + 0.75 * row[0]) / 100)
    assert math.degrees(horizon_elevation_rad(elev[0, 0], math.radians(357.5))) == pytest.approx(
        (0.25 * row[35] + 0.75 * row[0]) / 100)
    assert math.isnan(horizon_elevation_rad(elev[2, 3], 0.3)) and np.isnan(back.elevation_deg(2, 3, 0.3))
    with pytest.raises(DataFormatError, match="not a qamar horizon map"):
        read_horizon(_plain_tif(tmp_path))


def _plain_tif(tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="int16", crs=SOUTH,
                       transform=_grid(0.0, 0.0, 1.0)) as dst:
        dst.write(np.zeros((1, 4, 4), np.int16))
    return path


def _synthetic_dem_tif(path, n, pixel_m):
    """A crater field on rolling terrain, written strip by strip as a tiled GeoTIFF."""
    rng = np.random.default_rng(11)
    waves = [(rng.uniform(0.5, 3.0) * 2 * np.pi / (n * pixel_m) * 4, rng.uniform(0, 2 * np.pi),
              rng.uniform(0, 2 * np.pi), rng.uniform(5, 40)) for _ in range(12)]
    craters = np.column_stack([rng.uniform(0, n * pixel_m, 400), rng.uniform(0, n * pixel_m, 400),
                               rng.uniform(100, 1500, 400)])
    profile = {"driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "float32", "crs": SOUTH,
               "transform": Affine(pixel_m, 0, -n * pixel_m / 2, 0, -pixel_m, -20000.0), "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, n, 500):
            yy, xx = np.mgrid[r:min(n, r + 500), 0:n] * pixel_m
            h = np.zeros(xx.shape)
            for k, phase, direction, amp in waves:
                h += amp * 10 * np.sin(k * (xx * np.cos(direction) + yy * np.sin(direction)) + phase)
            for cx, cy, radius in craters:  # only the crater's own box of the strip
                rows = slice(max(0, int((cy - 1.2 * radius) / pixel_m) - r), max(0, int((cy + 1.2 * radius) / pixel_m) + 1 - r))
                cols = slice(max(0, int((cx - 1.2 * radius) / pixel_m)), int((cx + 1.2 * radius) / pixel_m) + 1)
                if xx[rows, cols].size:
                    s = np.hypot(xx[rows, cols] - cx, yy[rows, cols] - cy) / radius
                    h[rows, cols] += np.where(s < 1.0, 0.2 * radius * (s * s - 1.0),
                                              np.where(s < 1.2, 0.04 * radius * np.exp(-8 * (s - 1)), 0.0))
            dst.write(h.astype(np.float32), 1, window=Window(0, r, n, h.shape[0]))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sweep", "exact"])
def test_tiled_large_dem_bounded_memory_equals_in_memory(tmp_path, method):
    """6000 x 6000 synthetic DEM (20 m, 144 MB as float32; its 4-azimuth horizon map is
    288 MB) processed tile by tile: the Python/NumPy peak stays far below either, and a crop
    straddling tile corners equals the in-memory computation (exactly for the exact method;
    for the sweep up to float rounding, which can move a value by one 0.01 deg step)."""
    n, pixel_m = 6000, 20.0
    dem_path = _synthetic_dem_tif(tmp_path / "big.tif", n, pixel_m)
    kwargs = {"n_azimuths": 4, "max_distance_km": 2.0, "fine_distance_km": 0.5, "coarse_factor": 8, "method": method,
              "sweep_directions": 8}
    tracemalloc.start()
    out = compute_horizon_tiled(dem_path, tmp_path / "big_h.tif", tile_px=512, progress=False, **kwargs)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tiled peak traced {peak_bytes / 2**20:.0f} MB, process max RSS {max_rss_mb:.0f} MB")
    assert peak_bytes < 96 * 2**20  # two tile tasks in flight plus one coarse-copy strip
    crop = Window(1000, 480, 64, 64)  # crosses the tile boundaries at row 512 and column 1024
    dem = read_dem(dem_path)
    expected = compute_horizon(dem, window=crop, progress=False, **kwargs)
    got = read_horizon(out, window=crop)
    diff = np.abs(got.elev_cdeg.astype(np.int32) - expected.elev_cdeg)
    assert diff.max() <= (1 if method == "sweep" else 0) and np.mean(diff > 0) < 1e-3
    assert got.transform == expected.transform

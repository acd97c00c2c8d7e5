"""Viewsheds against the horizon distance of a smooth sphere, an analytic ridge, and an independent
brute-force line sampling (plain numpy, bilinear heights) on a crop of the real ridge DEM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
from affine import Affine
from rasterio.crs import CRS

from qamar.errors import ModelConfigError
from qamar.surface.terrain import Dem
from qamar.surface.viewshed import HIDDEN, HOLE_ON_PATH, NODATA, OUT_OF_RANGE, VISIBLE, viewshed

R_M = 1737400.0  # LOLA sphere (mission-brief.md sec. 5)
SOUTH = CRS.from_proj4(f"+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R={R_M} +units=m +no_defs")


def _dem(height_m: np.ndarray, pixel_m: float, corner_xy_m: tuple[float, float]) -> Dem:
    return Dem(np.asarray(height_m, float), Affine(pixel_m, 0, corner_xy_m[0], 0, -pixel_m, corner_xy_m[1]), SOUTH)


def _unit(x_m, y_m, radius_m):
    """ME unit vectors of south polar stereographic map points (Snyder 1987, eqs. 21-35 inverted, k0 = 1)."""
    t2 = (x_m**2 + y_m**2) / (2.0 * radius_m) ** 2
    q = 2.0 / (1.0 + t2)
    return np.stack([y_m / (2.0 * radius_m) * q, x_m / (2.0 * radius_m) * q, -(1.0 - t2) / (1.0 + t2)], axis=-1)


def _centres(dem: Dem):
    ny, nx = dem.shape
    t = dem.transform
    cols, rows = np.meshgrid(np.arange(nx), np.arange(ny))
    return t.c + t.a * (cols + 0.5), t.f + t.e * (rows + 0.5)


def test_smooth_sphere_sees_to_the_geometric_horizon():
    """On the bare sphere a target is visible out to sqrt(2 R h1) + sqrt(2 R h2) (tangent lines)."""
    h1, h2, px = 3.0, 0.5, 20.0
    dem = _dem(np.zeros((481, 481)), px, (-4810.0, 4810.0))  # the pole at the centre pixel
    vis = viewshed(dem, observer_rc=(240, 240), observer_height_m=h1, target_height_m=h2, max_range_m=6000.0)
    x, y = _centres(dem)
    u = _unit(x, y, dem.radius_m)
    arc_m = dem.radius_m * np.arccos(np.clip(u @ u[240, 240], -1, 1))
    limit_m = math.sqrt(2 * dem.radius_m * h1) + math.sqrt(2 * dem.radius_m * h2)  # 4547 m
    assert arc_m[vis == VISIBLE].max() == pytest.approx(limit_m, abs=px)
    assert arc_m[vis == HIDDEN].min() == pytest.approx(limit_m, abs=px)
    assert (vis[arc_m > 6000.0 + px] == OUT_OF_RANGE).all() and (vis[arc_m < 6000.0 - px] != OUT_OF_RANGE).all()


def test_ridge_hides_the_ground_behind_it_as_similar_triangles_say():
    """A straight ridge 10 m high, 200 m from a 30 m mast: the line over its crest reaches the
    0.5 m target antenna b behind it where 30 + (0.5 - 30) a/(a + b) - sag = 10 (sag f(1-f) L^2/2R)."""
    px, h1, h2, wall_m = 10.0, 30.0, 0.5, 10.0
    height = np.zeros((160, 101))
    height[40] = wall_m  # heights linear between pixel rows: a tent with its crest on row 40
    dem = _dem(height, px, (-505.0, -20000.0))
    vis = viewshed(dem, observer_rc=(20, 50), observer_height_m=h1, target_height_m=h2)
    rows, cols = np.mgrid[0:160, 0:101]
    a = 20 * px
    b = np.maximum(rows - 40, 1) * px  # (the rows in front are checked apart)
    f = a / (a + b)
    length = np.hypot(rows - 20, cols - 50) * px
    crest = h1 + (h2 - h1) * f - f * (1 - f) * length**2 / (2 * R_M)
    behind = rows > 40
    clear = crest - wall_m
    sure = behind & (np.abs(clear) > 0.01)
    assert (vis[sure] == np.where(clear[sure] > 0, VISIBLE, HIDDEN)).all()
    assert (vis[rows < 40] == VISIBLE).all()  # nothing rises between the mast and the ridge
    first = np.argmax(vis[41:, 50] == VISIBLE) + 41  # straight down the column: b = 95.0 m behind the crest
    assert (first - 40) * px == pytest.approx(a * (h1 - h2) / (h1 - wall_m) - a, abs=px)


def test_holes_are_reported_not_filled():
    height = np.zeros((30, 30))
    height[10, 5:25] = np.nan  # a gap across the view
    height[25, 15] = np.nan
    dem = _dem(height, 10.0, (-150.0, -5000.0))
    vis = viewshed(dem, observer_rc=(2, 15), observer_height_m=3.0, target_height_m=0.5)
    assert vis[25, 15] == NODATA and vis[10, 15] == NODATA
    assert vis[20, 15] == HOLE_ON_PATH and vis[5, 15] == VISIBLE
    seen = viewshed(dem, observer_rc=(2, 15), observer_height_m=3.0, target_height_m=0.5, holes_block=False)
    assert seen[20, 15] == VISIBLE and seen[25, 15] == NODATA


def test_bad_observers_raise_clear_errors():
    height = np.zeros((20, 20))
    height[5, 5] = np.nan
    dem = _dem(height, 10.0, (-100.0, -5000.0))
    with pytest.raises(ModelConfigError, match="outside the DEM"):
        viewshed(dem, (-80.0, 0.0), observer_height_m=3.0, target_height_m=0.5)
    with pytest.raises(ModelConfigError, match="without data"):
        viewshed(dem, observer_rc=(5, 5), observer_height_m=3.0, target_height_m=0.5)
    with pytest.raises(ModelConfigError, match="one of them"):
        viewshed(dem, observer_height_m=3.0, target_height_m=0.5)


def _brute_force(dem: Dem, orc: tuple[int, int], h1: float, h2: float, range_m: float, step_m: float = 1.0):
    """Visible mask and smallest clearance (m) per target pixel by dense sampling of each 3-D
    segment every ``step_m``, heights bilinear (scipy map_coordinates) under each sample. Samples
    less than a pixel (in row and column) from either antenna are skipped (the antennas' own pixels)."""
    z = dem.elevation_m.astype(float)
    x, y = _centres(dem)
    u = _unit(x, y, dem.radius_m)
    obs = (dem.radius_m + z[orc] + h1) * u[orc]
    arc = dem.radius_m * np.arccos(np.clip(u @ u[orc], -1, 1))
    targets = np.argwhere(arc <= range_m)
    visible = np.zeros(dem.shape, bool)
    clearance = np.full(dem.shape, np.inf)
    t = dem.transform
    for chunk in np.array_split(targets, max(1, len(targets) // 1000)):
        tgt = (dem.radius_m + z[chunk[:, 0], chunk[:, 1]] + h2)[:, None] * u[chunk[:, 0], chunk[:, 1]]
        n = int(range_m / step_m) + 2
        s = np.linspace(0.0, 1.0, n)[None, :, None]
        p = obs + s * (tgt - obs)[:, None, :]  # (targets, samples, 3)
        r = np.linalg.norm(p, axis=-1)
        q = p / r[..., None]
        mx, my = 2 * dem.radius_m * q[..., 1] / (1 - q[..., 2]), 2 * dem.radius_m * q[..., 0] / (1 - q[..., 2])
        fr, fc = (my - t.f) / t.e - 0.5, (mx - t.c) / t.a - 0.5
        ground = scipy.ndimage.map_coordinates(z, [fr.ravel(), fc.ravel()], order=1, mode="nearest").reshape(fr.shape)
        skip = ((np.abs(fr - orc[0]) < 1) & (np.abs(fc - orc[1]) < 1)) | (
            (np.abs(fr - chunk[:, 0, None]) < 1) & (np.abs(fc - chunk[:, 1, None]) < 1))
        gap = np.where(skip, np.inf, r - dem.radius_m - ground).min(axis=1)
        clearance[chunk[:, 0], chunk[:, 1]] = gap
        visible[chunk[:, 0], chunk[:, 1]] = gap > 0
    return visible, clearance, arc <= range_m


def test_agrees_with_brute_force_sampling_on_the_ridge_dem():
    """A 160 x 160 crop of the 10 m Shackleton-de Gerlache ridge DEM, a 3 m lander mast, 0.5 m
    rover antennas within 700 m: the two methods agree on at least 99 % of pixels, and differ only
    where the line grazes the terrain (bilinear heights between grid lines can rise up to a few
    centimetres above the grid-line values there)."""
    from qamar import data
    from qamar.surface.terrain import read_dem

    dem = read_dem(data.path("dem_site01_10m"), ((700, 860), (900, 1060)))
    orc = (80, 80)
    vis = viewshed(dem, observer_rc=orc, observer_height_m=3.0, target_height_m=0.5, max_range_m=700.0)
    brute, clearance, inside = _brute_force(dem, orc, 3.0, 0.5, 700.0)
    ours = vis[inside] == VISIBLE
    assert 0.1 < ours.mean() < 0.9  # the crop mixes seen and hidden ground
    differ = ours != brute[inside]
    assert differ.mean() < 0.01
    assert np.abs(clearance[inside][differ]).max() < 0.1  # measured: 3 pixels, within 3 mm


@pytest.mark.slow
@pytest.mark.parametrize(("window", "observer_rc", "range_m"), [
    (((0, 200), (0, 200)), (100, 100), 900.0),
    (((1200, 1400), (1300, 1500)), (50, 150), 1000.0),
    (((400, 600), (600, 800)), (199, 0), 1400.0),
])
def test_agrees_with_brute_force_elsewhere_on_the_ridge_dem(window, observer_rc, range_m):
    """More crops, observers at a corner and farther ranges: the same 99 % agreement."""
    from qamar import data
    from qamar.surface.terrain import read_dem

    dem = read_dem(data.path("dem_site01_10m"), window)
    vis = viewshed(dem, observer_rc=observer_rc, observer_height_m=3.0, target_height_m=0.5, max_range_m=range_m)
    brute, clearance, inside = _brute_force(dem, observer_rc, 3.0, 0.5, range_m)
    differ = (vis[inside] == VISIBLE) != brute[inside]
    assert differ.mean() < 0.01 and np.abs(clearance[inside][differ]).max(initial=0.0) < 0.1

"""Route maps and timelines: files written, the view holds the route and the marked points,
the scale bar is a round length, bad value grids are refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qamar.errors import ModelConfigError
from qamar.rover.maps import _scale_bar_m, _view_km, plot_route_map, plot_route_timeline
from qamar.surface.horizon import coarse_dem
from qamar.time import utc_to_tdb_s


@pytest.fixture
def hill(make_dem):
    """200 x 300 pixels of 10 m: a Gaussian hill 50 m high."""
    rows, cols = np.mgrid[0:200, 0:300]
    return make_dem(50.0 * np.exp(-((rows - 100) ** 2 + (cols - 150) ** 2) / 2000.0))


def test_route_map_png_over_elevation_and_over_a_coarser_value_grid(hill, tmp_path):
    t = hill.transform
    x = t.c + t.a * np.array([20.5, 120.5, 250.5])
    y = t.f + t.e * np.array([30.5, 90.5, 180.5])
    points = [("start", "start", x[0], y[0]), ("goal", "goal", x[-1], y[-1]), ("lander", "lander", x[0] + 50, y[0])]
    path = plot_route_map(hill, (x, y), tmp_path / "route.png", title="t", points=points, features=False)
    assert Image.open(path).size[0] > 500
    grid = coarse_dem(hill, 4)
    sun = np.linspace(0, 1, grid.elevation_m.size).reshape(grid.shape)
    plot_route_map(hill, (x, y), tmp_path / "sun.png", title="t", values=sun, values_dem=grid, label="sunlit",
                   vmin=0, vmax=1, points=points, features=False)
    assert (tmp_path / "sun.png").stat().st_size > 10_000
    with pytest.raises(ModelConfigError, match="not on their grid"):
        plot_route_map(hill, (x, y), tmp_path / "bad.png", title="t", values=sun[1:], values_dem=grid)


def test_view_is_a_square_holding_the_points_inside_the_dem(hill):
    scale = 1e-3  # map metres -> km
    t = hill.transform
    x_km = (t.c + t.a * np.array([20.0, 60.0])) * scale
    y_km = (t.f + t.e * np.array([30.0, 50.0])) * scale
    left, right, bottom, top = _view_km(hill, x_km, y_km, margin_km=0.2)
    assert right - left == pytest.approx(top - bottom)
    assert left <= x_km.min() - 0.2 + 1e-9 and right >= x_km.max() + 0.2 - 1e-9
    assert bottom <= y_km.min() and top >= y_km.max()
    assert left >= t.c * scale - 1e-9 and top <= t.f * scale + 1e-9  # pushed inside the DEM's corner
    # a margin larger than the DEM: the view shrinks to the DEM's smaller side (2 km)
    left, right, bottom, top = _view_km(hill, x_km, y_km, margin_km=10.0)
    assert right - left == pytest.approx(2.0)


@pytest.mark.parametrize(("span_km", "bar_m"), [(1.2, 200), (0.4, 50), (16.0, 2000), (7.0, 1000)])
def test_scale_bar_is_a_round_fifth_of_the_view(span_km, bar_m):
    assert _scale_bar_m(span_km) == bar_m


def test_timeline_png(tmp_path):
    t = float(utc_to_tdb_s("2028-10-01T00:00:00Z")) + 3600.0 * np.array([0.0, 1.0, 2.5, 4.0])
    path = plot_route_timeline(t, np.array([100.0, 90.0, 95.0, 60.0]), np.array([0.0, 40.0, 48.0, 0.0]),
                               np.array([False, True, True, False]), np.array([True, True, False, False]),
                               ["start", "drive", "wait", "hibernate"], tmp_path / "timeline.png",
                               reserve_wh=20.0, capacity_wh=100.0, title="t")
    assert Image.open(path).size == (1200, 840)  # 10 x 7 in at 120 dpi


def test_colours_span_the_values_in_view(hill):
    from qamar.rover.maps import _extent_km, _range_in_view

    left, right, bottom, top = _extent_km(hill)
    values = np.tile(np.arange(300.0), (200, 1))  # value = column
    low, high = _range_in_view(values, hill, (left, left + (right - left) / 3, bottom, top))  # columns 0..99
    assert (low, high) == pytest.approx((np.percentile(np.arange(100.0), 2), np.percentile(np.arange(100.0), 98)))
    assert _range_in_view(np.full((200, 300), np.nan), hill, (left, right, bottom, top)) == (None, None)

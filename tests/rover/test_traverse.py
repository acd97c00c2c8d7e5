"""Cost maps: ground scale against Snyder's stereographic scale factor, slopes at the rover's
scale, crater, keep-out and PSR hazards."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from qamar.errors import DataFormatError, ModelConfigError
from qamar.rover.model import RoverSpec
from qamar.rover.traverse import (
    CRATER,
    KEEP_OUT,
    PSR,
    SLOPE,
    cost_map,
    ground_step_m,
    read_craters,
)
from qamar.surface.terrain import Dem, pixel_xy

R_M = 1737400.0


def test_ground_step_is_the_pixel_over_snyders_scale_factor(make_dem):
    # 300 km from the pole, where the stereographic scale factor is 1.0075
    dem = make_dem(np.zeros((20, 30)), pixel_m=100.0, corner_xy_m=(150e3, -250e3))
    x, y = pixel_xy(dem)
    k = 1.0 + (x**2 + y**2) / (4 * R_M**2)  # Snyder (1987) ch. 21: 2 k0 / (1 + sin|lat|), k0 = 1
    np.testing.assert_allclose(ground_step_m(dem), 100.0 / k, rtol=1e-9)


def test_non_conformal_maps_are_refused():
    crs = CRS.from_proj4(f"+proj=eqc +lat_ts=0 +lon_0=0 +R={R_M} +units=m +no_defs")
    dem = Dem(np.zeros((10, 10)), Affine(100, 0, 0, 0, -100, -2.6e6), crs)  # about -86 deg: cos(lat) 0.07
    with pytest.raises(ModelConfigError, match="polar stereographic"):
        cost_map(dem, craters=False)


def test_slope_of_a_tilted_plane_and_its_cost(make_dem):
    _rows, cols = np.mgrid[0:40, 0:50]
    tan_slope = math.tan(math.radians(12.0))
    dem = make_dem(tan_slope * 10.0 * cols, pixel_m=10.0)  # rises 12 deg towards +x
    costs = cost_map(dem, craters=False)
    # curvature and scale change the slope by well under 0.01 deg over 500 m
    np.testing.assert_allclose(costs.slope_deg, 12.0, atol=0.01)
    np.testing.assert_allclose(costs.cost, 1 + costs.slope_deg / 5.0)  # default slope_cost_deg 5
    assert not costs.blocked.any()
    steep = cost_map(dem, craters=False, max_slope_deg=10.0)
    assert (steep.blocked == SLOPE).all() and np.isinf(steep.cost).all()
    assert steep.reasons(3, 3) == ["slope over the limit"]


def test_a_dem_finer_than_the_rover_is_averaged_over_its_footprint(make_dem):
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.05, (60, 60))  # 5 cm bumps on 0.25 m pixels
    dem = make_dem(noise, pixel_m=0.25)
    fine = RoverSpec.model_validate({"mobility": {"footprint_m": 0.25}})
    coarse = RoverSpec.model_validate({"mobility": {"footprint_m": 2.0}})
    slope_fine = cost_map(dem, fine, craters=False).slope_deg
    slope_rover = cost_map(dem, coarse, craters=False).slope_deg
    assert np.isfinite(slope_rover).all()
    assert np.median(slope_rover) < 0.3 * np.median(slope_fine)


def test_craters_are_kept_out_to_their_rim(make_dem):
    # a flat 50 m grid around crater 207112 of Wu et al. (2022): 7118.5 m across at -89.461, -125.96
    from qamar.surface.terrain import lat_lon_to_xy

    x0, y0 = (float(v) for v in lat_lon_to_xy(-89.461, -125.96, make_dem(np.zeros((2, 2)))))
    dem = make_dem(np.zeros((200, 200)), pixel_m=50.0, corner_xy_m=(x0 - 5000.0, y0 + 5000.0))
    costs = cost_map(dem)
    ids = [c["id"] for c in costs.craters]
    assert 207112 in ids and 1058967 not in ids  # the 362 km basin is a landform, not an obstacle
    inside = (costs.blocked & CRATER) > 0
    x, y = pixel_xy(dem)
    d = np.hypot(x - x0, y - y0) / (1 + (x0**2 + y0**2) / (4 * R_M**2))
    assert inside[d < 7118.5 / 2 - 60].all()
    # what this crater alone adds: it is the only one between 7.0 and 7.2 km across
    only = cost_map(dem, RoverSpec.model_validate({"mobility": {"crater_max_diameter_m": 7000.0}}))
    added = inside & ((only.blocked & CRATER) == 0)
    assert added.any() and not added[d > 7118.5 / 2 + 60].any()
    wide = cost_map(dem, RoverSpec.model_validate({"mobility": {"crater_margin": 1.2}}))
    assert ((wide.blocked & CRATER) > 0).sum() > inside.sum()
    assert not (cost_map(dem, craters=False).blocked & CRATER).any()
    assert read_craters(dem, max_diameter_m=5000.0) != costs.craters


def test_keep_out_zones_from_geojson(make_dem, tmp_path):
    from qamar.surface.terrain import xy_to_lat_lon

    dem = make_dem(np.zeros((100, 100)), pixel_m=10.0)
    x, y = pixel_xy(dem)
    lat, lon = xy_to_lat_lon(x, y, dem)
    box = [[float(lon[r, c]), float(lat[r, c])] for r, c in ((10, 10), (10, 30), (30, 30), (30, 10), (10, 10))]
    zones = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [box]}, "properties": {}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(lon[70, 70]), float(lat[70, 70])]},
         "properties": {"radius_m": 150.0}},
    ]}
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(zones))
    blocked = (cost_map(dem, craters=False, keep_out=path).blocked & KEEP_OUT) > 0
    assert blocked[20, 20] and not blocked[5, 5] and not blocked[20, 40]
    assert blocked[70, 70] and blocked[70, 84] and not blocked[70, 86]
    disc = blocked[50:, 50:].sum() * 100.0
    assert disc == pytest.approx(math.pi * 150.0**2, rel=0.03)
    path.write_text(json.dumps({"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0]]}}))
    with pytest.raises(DataFormatError, match="LineString"):
        cost_map(dem, craters=False, keep_out=path)


def test_psrs_as_hazard_or_target(make_dem):
    dem = make_dem(np.zeros((30, 30)))
    psr = np.zeros((30, 30), bool)
    psr[10:15, 10:15] = True
    hazard = cost_map(dem, craters=False, psr=psr)
    assert ((hazard.blocked & PSR) > 0).sum() == 25 and np.isinf(hazard.cost[12, 12])
    target = cost_map(dem, craters=False, psr=psr, psr_mode="target")
    assert not target.blocked.any()
    rim = target.psr_edge()
    assert rim[9, 9] and rim[12, 12] and not rim[7, 12]
    with pytest.raises(ModelConfigError, match="psr_mode"):
        cost_map(dem, craters=False, psr=psr, psr_mode="avoid")

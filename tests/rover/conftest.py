"""Synthetic polar stereographic DEMs for the rover tests."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from qamar.surface.terrain import Dem

R_MOON_M = 1737400.0
SOUTH_POLAR = CRS.from_proj4(f"+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R={R_MOON_M} +units=m +no_defs")


def polar_dem(elevation_m: np.ndarray, pixel_m: float = 10.0, corner_xy_m: tuple[float, float] = (-19000.0, -4000.0)):
    """A south polar stereographic DEM with its top-left corner at ``corner_xy_m`` (map m)."""
    return Dem(np.asarray(elevation_m, dtype=np.float64), Affine(pixel_m, 0, corner_xy_m[0], 0, -pixel_m,
                                                                  corner_xy_m[1]), SOUTH_POLAR)


@pytest.fixture
def make_dem():
    return polar_dem

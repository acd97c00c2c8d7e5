"""Permanently shadowed regions: the Sun's envelope over a precession cycle, areas on the
sphere, polygons, and PSRs against the literature.

References:
- Polar stereographic scale factor on a sphere with k0 = 1 at the pole:
  k = 2 / (1 + sin|lat|) = 1 + rho^2 / (4 R^2) (Snyder 1987, Map Projections: A Working
  Manual, USGS PP 1395, eqs. 21-4 and 21-33); areas shrink by k^2.
- Inclination of the lunar equator to the ecliptic, 1.543 deg (Cassini's laws; e.g. the
  IAU/IAG WGCCRE reports): the Sun's latitude in the Moon-fixed frame swings by about that.
- Mazarico et al. (2011), Icarus 211, 1066-1081, LOLA 240 m horizons: 16,055 km^2 of PSR in
  the south polar region (to 80 S). PSR areas of named craters as compiled in the moonpies
  catalogue (``psr_craters``; Faustini's 664 km^2 is also in Williams et al. 2024, PSJ 5, 63).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from scipy import ndimage

from qamar import data
from qamar.surface.horizon import HorizonMap
from qamar.surface.illumination import BodyTracks, body_tracks, point_series, sample_sums
from qamar.surface.psr import (
    PsrResult,
    find_psr,
    pixel_areas_km2,
    psr_polygons,
    psr_summary,
    sun_envelope,
    write_psr_geojson,
)
from qamar.surface.terrain import Dem, pixel_lat_lon, pixel_xy, read_dem
from qamar.time import utc_to_tdb_s

R_KM = 1737.4
SOUTH = CRS.from_proj4("+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m")


def test_pixel_areas_follow_the_stereographic_scale_factor():
    dem = Dem(np.zeros((40, 50), np.float32), Affine(240.0, 0.0, -150000.0, 0.0, -240.0, 140000.0), SOUTH)
    x, y = pixel_xy(dem)
    k = 1.0 + (x**2 + y**2) / (4.0 * (R_KM * 1e3) ** 2)
    np.testing.assert_allclose(pixel_areas_km2(dem), 0.24**2 / k**2, rtol=2e-6)


def test_sun_envelope_contains_the_sampled_directions():
    """Every Sun direction of two years (sampled every 7 minutes, off the envelope's 10-minute
    grid) lies inside the band, within 0.02 deg of its edge at the extremes; the swing is the
    lunar equator's inclination to the ecliptic, 1.543 deg, to within 0.05 deg."""
    env = sun_envelope("2024-01-01", years=2.0)
    t = utc_to_tdb_s("2024-01-01") + 420.0 * np.arange(int(2.0 * 365.25 * 24 * 60 / 7))
    sun = body_tracks(t).sun_me_km
    dec = np.degrees(np.arcsin(sun[:, 2] / np.linalg.norm(sun, axis=1)))
    south, north = env.declination_deg(np.degrees(np.arctan2(sun[:, 1], sun[:, 0])))
    assert np.all(dec >= south) and np.all(dec <= north)
    assert (dec - south).min() < 0.02 and (north - dec).min() < 0.02
    assert abs(-env.dec_min_deg - 1.543) < 0.05 and abs(env.dec_max_deg - 1.543) < 0.05
    assert env.distance_min_km <= np.linalg.norm(sun, axis=1).min()


def _profiles(shape, n_az, rng, base):
    az = np.radians(np.arange(n_az) * 360.0 / n_az)
    prof = base + rng.uniform(-0.4, 0.4, shape + (1,))
    for k in (1, 2, 5, 13):
        prof = prof + rng.uniform(0.0, 0.5 / k**0.7, shape + (1,)) * np.cos(k * az + rng.uniform(0, 6.3, shape + (1,)))
    return np.round(100.0 * prof).astype(np.int16)


def _extreme_windows(start_utc, years, half_width_d, step_s):
    """Epochs every ``step_s`` within ``half_width_d`` of each extreme (north and south) of the
    Sun's MOON_ME declination over ``years``."""
    t6 = utc_to_tdb_s(start_utc) + 6 * 3600.0 * np.arange(int(years * 365.25 * 4))
    sun = body_tracks(t6).sun_me_km
    dec = np.arcsin(sun[:, 2] / np.linalg.norm(sun, axis=1))
    window = 4 * 150 * 2 + 1  # extremes of +-150 days: one per half draconic year
    extreme = (dec == ndimage.minimum_filter1d(dec, window)) | (dec == ndimage.maximum_filter1d(dec, window))
    centres = t6[extreme]
    offsets = np.arange(-half_width_d * 86400.0, half_width_d * 86400.0, step_s)
    return np.unique((centres[:, None] + offsets[None, :]).ravel()), len(centres)


def test_envelope_psr_against_sampled_cycles():
    """PSRs from the declination-extreme envelope against time sampling, on near-polar pixels
    whose horizons hover around the Sun's reach:
    - every hour of a full 18.6-year cycle: no pixel lit at any hour is in the envelope PSR;
    - every 10 minutes within 16 days of each of the cycle's ~40 declination extremes (a full
      lunar day around each): the same PSR up to pixels the envelope lights by under 2 % of
      the disc (sampling in time and in solar longitude both clip the peak slightly)."""
    dem = read_dem(data.path("dem_south_pole_240m"), window=Window(740, 748, 24, 20))  # within 3 km of the pole
    hmap = HorizonMap(_profiles(dem.shape, 360, np.random.default_rng(11), 2.3), np.arange(360.0), dem.transform,
                      dem.crs, 0.0, 150.0)
    result = find_psr(dem, hmap, start_utc="2024-01-01", progress=False)
    assert 0.2 < result.mask.mean() < 0.8  # the test horizons straddle the Sun's reach

    t = utc_to_tdb_s("2024-01-01") + 3600.0 * np.arange(int(18.6 * 365.25 * 24))
    hourly = BodyTracks(t, body_tracks(t).sun_me_km, np.zeros((0, 3)))
    lit_hourly = sample_sums(dem, hmap, 0.0, hourly, with_earth=False, progress=False)[0] > 0.0
    assert not np.any(lit_hourly & result.mask)

    t, n_extremes = _extreme_windows("2024-01-01", 18.6, 16.0, 600.0)
    assert 38 <= n_extremes <= 42
    dense = BodyTracks(t, body_tracks(t).sun_me_km, np.zeros((0, 3)))
    lit_dense = sample_sums(dem, hmap, 0.0, dense, with_earth=False, progress=False)[0] > 0.0
    assert not np.any(lit_dense & result.mask)
    lat, lon = pixel_lat_lon(dem)
    south, _ = result.envelope.tracks(result.lon_step_deg)
    for iy, ix in np.argwhere(~result.mask & ~lit_dense):
        peak = point_series(dem, hmap, float(lat[iy, ix]), float(lon[iy, ix]),
                            BodyTracks(np.zeros(south.n), south.sun_me_km, south.sun_me_km)).sun_fraction.max()
        assert peak < 0.02
    assert (~result.mask & ~lit_dense).sum() <= 0.03 * result.mask.size


def test_polygons_areas_and_geojson(tmp_path):
    """Three regions (one with a hole) on a grid: polygon count, pixel counts, areas on the
    sphere (the sum of true pixel areas) and the GeoJSON written in map coordinates."""
    dem = Dem(np.zeros((30, 40), np.float32), Affine(240.0, 0.0, -150000.0, 0.0, -240.0, 140000.0), SOUTH)
    mask = np.zeros(dem.shape, bool)
    mask[2:10, 3:12] = True
    mask[5:7, 6:8] = False  # a hole
    mask[20:25, 30:38] = True
    mask[12, 20] = True
    labels, _ = ndimage.label(mask)
    areas = pixel_areas_km2(dem)
    region = np.bincount(labels.ravel(), weights=areas.ravel())[1:]
    result = PsrResult(mask, np.ones_like(mask), labels.astype(np.int32), region, areas, sun_envelope(years=0.1),
                       0.25, 0.0)
    features = psr_polygons(result, dem)
    assert len(features) == 3 == result.count
    assert sorted(f["properties"]["pixels"] for f in features) == [1, 40, 68]
    for f in features:
        k = 1.0 + (f["geometry"].centroid.x ** 2 + f["geometry"].centroid.y ** 2) / (4.0 * (R_KM * 1e3) ** 2)
        assert f["properties"]["area_km2"] == pytest.approx(f["geometry"].area / 1e6 / k**2, rel=1e-4)
    holed = max(features, key=lambda f: f["properties"]["pixels"])
    assert len(holed["geometry"].interiors) == 1
    assert result.area_km2 == pytest.approx(areas[mask].sum())
    path = write_psr_geojson(result, dem, tmp_path / "psr.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 3
    assert "Polar_Stereographic" in doc["crs"]["properties"]["name"] or "stere" in doc["crs"]["properties"]["name"]
    summary = psr_summary(result, dem)
    assert summary["psr_count"] == 3 and summary["psr_area_km2"] == pytest.approx(result.area_km2, abs=1e-3)


def test_summary_bands_and_craters_only_where_the_dem_is_complete():
    """A 101 x 101 pixel DEM centred on the south pole holds the polar cap out to its edge
    midpoints, 50 pixels (12 km) from the pole: |lat| = 90 - 2 atan(rho / 2R) (Snyder 1987,
    eq. 21-1 inverted); a crater inside it is complete, one across its edge is not. A DEM off
    the pole holds no complete cap."""
    n, pixel_m = 101, 240.0
    half_m = n * pixel_m / 2
    dem = Dem(np.zeros((n, n), np.float32), Affine(pixel_m, 0.0, -half_m, 0.0, -pixel_m, half_m), SOUTH)
    areas = pixel_areas_km2(dem)
    mask = np.zeros(dem.shape, bool)
    result = PsrResult(mask, np.ones_like(mask), np.zeros(dem.shape, np.int32), np.zeros(0), areas,
                       sun_envelope(years=0.1), 0.25, 0.0)
    craters = [{"name": "inside", "lat_deg": -89.9, "lon_deg": 0.0, "diameter_km": 4.0},
               {"name": "across", "lat_deg": -89.65, "lon_deg": 0.0, "diameter_km": 4.0}]
    summary = psr_summary(result, dem, craters)
    edge_deg = 90.0 - np.degrees(2.0 * np.arctan(50 * pixel_m / (2.0 * R_KM * 1e3)))
    assert summary["dem_complete_poleward_of_deg"] == pytest.approx(edge_deg, abs=1e-3)
    assert list(summary["psr_area_by_latitude_km2"]) == []  # 89.6 deg: no band of the list is complete
    assert {c["name"]: c["complete"] for c in summary["craters"]} == {"inside": True, "across": False}
    off_pole = Dem(dem.elevation_m, Affine(pixel_m, 0.0, 1e5, 0.0, -pixel_m, 1e5), SOUTH)
    result_off = PsrResult(mask, np.ones_like(mask), np.zeros(dem.shape, np.int32), np.zeros(0),
                           pixel_areas_km2(off_pole), result.envelope, 0.25, 0.0)
    assert psr_summary(result_off, off_pole)["dem_complete_poleward_of_deg"] == 90.0

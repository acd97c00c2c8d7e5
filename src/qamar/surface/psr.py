"""Permanently shadowed regions: pixels that no part of the Sun ever reaches over a full lunar
precession cycle (18.6 years), as a raster and as polygons with their areas on the sphere.

Sampling the cycle. Seen from the Moon the Sun's MOON_ME direction turns once per synodic
month in longitude while its latitude (the subsolar latitude, "declination") swings within
about +-1.55 deg over a draconic year (346.6 d). Over the 18.6-year nodal cycle the phases of
the two motions drift through each other (a draconic year holds 11.74 synodic months, so the
solar longitude at a declination extreme shifts by ~95 deg a year), so at every solar
longitude the Sun comes near its most southern and most northern declinations. What decides
whether a pixel is ever lit is the Sun's highest elevation in each azimuth over the cycle, and
that lies on one of the two edges of the band of directions the Sun sweeps: the vertical at
any azimuth cuts the band in an arc whose ends lie on its edges (or reaches the zenith, above
any horizon). So the 18.6-year time series is replaced by its envelope, two closed paths of
the Sun in MOON_ME at the declination extremes as functions of solar longitude.

The extremes depend on longitude (a monthly term moves them by ~0.035 deg: the southern one is
-1.588 deg near longitude 0 and -1.554 deg near 90 E for 2024-2042). They come from DE440 + the
PA/ME rotation sampled every 10 minutes over the cycle, binned per degree of longitude, and
are represented by a smooth Fourier series in longitude (order 8) lowered (raised) until it lies
beyond every bin's extreme by 0.001 deg, so the envelope contains every sampled Sun direction.
The paths are sampled every ``lon_step_deg`` (default 0.1 deg, a tenth of a 1-deg horizon
sample) at the cycle's nearest Sun distance (largest disc). The test suite compares the
envelope with 10-minute sampling of a lunar day around each declination extreme of a cycle and
with every hour of a cycle.

Areas. A polygon's area is the sum of the true areas of its pixels on the DEM's sphere: each
pixel's four corners are mapped to the sphere and the quadrilateral's area taken from its
diagonals (exact to (pixel/R)^2 ~ 1e-8), so the map projection's scale factor (stereographic:
areal factor (1 + rho^2 / 4R^2)^2, 1.0047 at 84 S) is accounted for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio.features
import scipy.ndimage
import shapely.geometry

from qamar.ephemeris import Ephemeris
from qamar.io import atomic_write
from qamar.surface.horizon import HorizonMap
from qamar.surface.illumination import BodyTracks, body_tracks, check_horizon_fits, sample_sums
from qamar.surface.maps import write_geotiff
from qamar.surface.terrain import Dem, lat_lon_to_xy, pixel_lat_lon, xy_to_lat_lon, xy_to_pixel
from qamar.time import tdb_s_to_utc, utc_to_tdb_s

PRECESSION_CYCLE_YEARS = 18.6  # lunar nodal precession period (18.61 Julian years)
_SCAN_STEP_S = 600.0
_CHUNK_S = 365.25 * 86400.0
_FOURIER_ORDER = 8
_ENVELOPE_MARGIN_DEG = 0.001


def _fourier_basis(lon_rad: np.ndarray) -> np.ndarray:
    k = np.arange(1, _FOURIER_ORDER + 1)
    return np.hstack([np.ones((lon_rad.size, 1)), np.cos(np.outer(lon_rad, k)), np.sin(np.outer(lon_rad, k))])


@dataclass(frozen=True)
class SunEnvelope:
    """The band of Sun directions (MOON_ME) swept over a span: declination extremes as smooth
    functions of solar longitude (Fourier coefficients, deg), their overall extremes, and the
    nearest Sun distance (km)."""

    start_utc: str
    stop_utc: str
    south_coef: np.ndarray
    north_coef: np.ndarray
    dec_min_deg: float
    dec_max_deg: float
    distance_min_km: float

    def declination_deg(self, lon_deg) -> tuple[np.ndarray, np.ndarray]:
        """(southern, northern) edge of the band at solar longitudes ``lon_deg``."""
        basis = _fourier_basis(np.radians(np.atleast_1d(np.asarray(lon_deg, dtype=np.float64))))
        return basis @ self.south_coef, basis @ self.north_coef

    def tracks(self, lon_step_deg: float = 0.1) -> tuple[BodyTracks, BodyTracks]:
        """The two closed paths of the Sun along the band's edges, at the nearest distance,
        sampled every ``lon_step_deg`` of solar longitude (Sun-only tracks)."""
        lon_deg = np.arange(0.0, 360.0, lon_step_deg)
        lon = np.radians(lon_deg)
        out = []
        for dec in (np.radians(d) for d in self.declination_deg(lon_deg)):
            sun = self.distance_min_km * np.stack([np.cos(dec) * np.cos(lon), np.cos(dec) * np.sin(lon), np.sin(dec)],
                                                  axis=1)
            out.append(BodyTracks(np.zeros(lon.size), np.ascontiguousarray(sun), np.zeros((0, 3))))
        return out[0], out[1]


def sun_envelope(start_utc: str = "2024-01-01", years: float = PRECESSION_CYCLE_YEARS,
                 ephemeris: Ephemeris | None = None) -> SunEnvelope:
    """The Sun's band of directions over ``years`` from ``start_utc`` (DE440, MOON_ME), from
    10-minute samples. Raises EpochOutOfRangeError outside DE440."""
    eph = ephemeris or Ephemeris.default()
    t0 = float(utc_to_tdb_s(start_utc))
    t1 = t0 + years * 365.25 * 86400.0
    eph.check_coverage(t0, t1)
    low = np.full(360, np.inf)
    high = np.full(360, -np.inf)
    dist_min = np.inf
    for c0 in np.arange(t0, t1, _CHUNK_S):
        sun = body_tracks(np.arange(c0, min(c0 + _CHUNK_S, t1), _SCAN_STEP_S), eph).sun_me_km
        dist = np.linalg.norm(sun, axis=1)
        dec = np.degrees(np.arcsin(sun[:, 2] / dist))
        bins = (np.degrees(np.arctan2(sun[:, 1], sun[:, 0])) % 360.0).astype(np.int64) % 360
        np.minimum.at(low, bins, dec)
        np.maximum.at(high, bins, dec)
        dist_min = min(dist_min, float(dist.min()))
    centres = np.radians(np.arange(360) + 0.5)
    basis = _fourier_basis(centres)
    coefs = []
    for edge, sign in ((low, -1.0), (high, 1.0)):
        coef = np.linalg.lstsq(basis, edge, rcond=None)[0]
        # move the smooth curve beyond every bin's extreme (and a margin for the bin's width)
        coef[0] += sign * (max(0.0, float(np.max(sign * (edge - basis @ coef)))) + _ENVELOPE_MARGIN_DEG)
        coefs.append(coef)
    # the nearest distance between 10-minute samples is within 1e-6 of the sampled one
    return SunEnvelope(tdb_s_to_utc(t0, 0), tdb_s_to_utc(t1, 0), coefs[0], coefs[1], float(low.min()),
                       float(high.max()), dist_min * (1.0 - 1e-6))


def pixel_areas_km2(dem: Dem) -> np.ndarray:
    """True area (km^2) on the DEM's sphere of every pixel, (ny, nx): the quadrilateral of its
    corners mapped to the sphere, area |d1 x d2| / 2 from its diagonals."""
    ny, nx = dem.shape
    t = dem.transform
    cols, rows = np.meshgrid(np.arange(nx + 1, dtype=np.float64), np.arange(ny + 1, dtype=np.float64))
    lat, lon = xy_to_lat_lon(t.c + t.a * cols, t.f + t.e * rows, dem)
    lat, lon = np.radians(lat), np.radians(lon)
    r_km = dem.radius_m / 1e3
    p = r_km * np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    d1 = p[1:, 1:] - p[:-1, :-1]
    d2 = p[1:, :-1] - p[:-1, 1:]
    return 0.5 * np.linalg.norm(np.cross(d1, d2), axis=-1)


@dataclass(frozen=True)
class PsrResult:
    """Permanently shadowed pixels of a DEM and how they were found.

    ``mask`` (ny, nx) bool: never lit; ``valid`` (ny, nx) bool: pixels with data (a pixel
    without DEM or horizon data is neither). ``labels`` numbers the 4-connected regions
    (0 = not PSR); ``region_area_km2[i]`` is the area of region i + 1.
    """

    mask: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    region_area_km2: np.ndarray
    pixel_area_km2: np.ndarray
    envelope: SunEnvelope
    lon_step_deg: float
    observer_height_m: float

    @property
    def area_km2(self) -> float:
        """Total PSR area (km^2)."""
        return float(self.region_area_km2.sum())

    @property
    def count(self) -> int:
        """Number of separate (4-connected) PSR regions."""
        return int(self.region_area_km2.size)


def find_psr(
    dem: Dem,
    horizon: HorizonMap | str | Path,
    *,
    start_utc: str = "2024-01-01",
    years: float = PRECESSION_CYCLE_YEARS,
    lon_step_deg: float = 0.1,
    envelope: SunEnvelope | None = None,
    progress: bool = True,
) -> PsrResult:
    """Pixels of ``dem`` that no part of the Sun reaches during ``years`` from ``start_utc``
    (default: one precession cycle), seen from the horizon map's observer height.

    The cycle is replaced by the Sun's declination-extreme envelope (module docstring); pass
    ``envelope`` to reuse one (``start_utc`` and ``years`` are then ignored). Raises
    ModelConfigError for a horizon map of another grid, EpochOutOfRangeError outside DE440.
    """
    obs = check_horizon_fits(dem, horizon, None)
    envelope = envelope or sun_envelope(start_utc, years)
    lit = np.zeros(dem.shape, dtype=bool)
    valid = np.ones(dem.shape, dtype=bool)
    for i, path in enumerate(envelope.tracks(lon_step_deg)):
        sun_sum = sample_sums(dem, horizon, obs, path, with_earth=False, progress=progress,
                              desc=f"psr {i + 1}/2")[0]
        valid &= np.isfinite(sun_sum)
        lit |= sun_sum > 0.0
    mask = valid & ~lit
    labels, n = scipy.ndimage.label(mask)  # 4-connectivity, as rasterio.features.shapes below
    areas = pixel_areas_km2(dem)
    region = np.bincount(labels.ravel(), weights=areas.ravel(), minlength=n + 1)[1:]
    return PsrResult(mask, valid, labels.astype(np.int32), region, areas, envelope, lon_step_deg, obs)


def psr_polygons(result: PsrResult, dem: Dem) -> list[dict]:
    """One GeoJSON-like feature per PSR region: ``geometry`` (shapely, map units of the DEM
    CRS) and ``properties`` (id, area_km2, pixels, centroid_lat_deg, centroid_lon_deg)."""
    pixels = np.bincount(result.labels.ravel(), minlength=result.count + 1)
    out = []
    for geom, value in rasterio.features.shapes(result.labels, mask=result.mask, transform=dem.transform,
                                                connectivity=4):
        i = int(value)
        shape = shapely.geometry.shape(geom)
        c = shape.centroid
        lat, lon = xy_to_lat_lon(c.x, c.y, dem)
        out.append({"geometry": shape, "properties": {
            "id": i, "area_km2": round(float(result.region_area_km2[i - 1]), 6), "pixels": int(pixels[i]),
            "centroid_lat_deg": round(float(lat), 5), "centroid_lon_deg": round(float(lon), 5)}})
    out.sort(key=lambda f: -f["properties"]["area_km2"])
    return out


def write_psr_geojson(result: PsrResult, dem: Dem, path: str | Path) -> Path:
    """Write the PSR regions as a GeoJSON FeatureCollection in the DEM's map coordinates (a
    ``crs`` member names the projection, as GDAL/QGIS read it); returns the path."""
    path = Path(path)
    features = [{"type": "Feature", "geometry": shapely.geometry.mapping(f["geometry"]), "properties": f["properties"]}
                for f in psr_polygons(result, dem)]
    collection = {"type": "FeatureCollection", "name": path.stem,
                  "crs": {"type": "name", "properties": {"name": dem.crs.to_wkt()}},
                  "features": features}
    with atomic_write(path) as stream:
        json.dump(collection, stream)
    return path


def write_psr_raster(result: PsrResult, dem: Dem, path: str | Path) -> Path:
    """Write the PSR mask as a GeoTIFF on the DEM grid: 1 PSR, 0 lit at some time, 255 no data."""
    band = np.where(result.valid, result.mask.astype(np.uint8), np.uint8(255))
    return write_geotiff(band, dem, path, "permanently shadowed (1), lit at some time (0)")


def psr_summary(result: PsrResult, dem: Dem, craters: list[dict] | None = None) -> dict:
    """psr_area_km2, psr_count and the method; PSR area poleward of latitude bands that the DEM
    covers completely; with ``craters`` (name, lat_deg, lon_deg, diameter_km) the PSR area
    inside each crater's rim circle."""
    lat, lon = pixel_lat_lon(dem)
    blocked = ~result.valid | _edge(dem.shape)
    covered = _complete_poleward_of_deg(dem, lat, blocked)
    bands = {}
    for band in (80.0, 82.5, 85.0, 87.5, 89.0):
        if band >= covered:
            inside = np.abs(lat) >= band
            bands[f"poleward_of_{band:g}_deg"] = round(float(result.pixel_area_km2[inside & result.mask].sum()), 3)
    env = result.envelope
    summary = {
        "psr_area_km2": round(result.area_km2, 3),
        "psr_count": result.count,
        "largest_km2": round(float(result.region_area_km2.max()), 3) if result.count else 0.0,
        "psr_pixels": int(result.mask.sum()),
        "pixels_without_data": int((~result.valid).sum()),
        "dem_area_km2": round(float(result.pixel_area_km2[result.valid].sum()), 3),
        "dem_complete_poleward_of_deg": round(covered, 3),
        "psr_area_by_latitude_km2": bands,
        "observer_height_m": result.observer_height_m,
        "method": {
            "span_utc": [env.start_utc, env.stop_utc],
            "sun_declination_min_deg": round(env.dec_min_deg, 5),
            "sun_declination_max_deg": round(env.dec_max_deg, 5),
            "sun_distance_min_km": round(env.distance_min_km, 1),
            "solar_longitude_step_deg": result.lon_step_deg,
            "definition": "no part of the solar disc above the horizon at any Sun direction of the cycle",
        },
    }
    if craters:
        summary["craters"] = _crater_areas(result, dem, lat, lon, craters, blocked)
    return summary


def _complete_poleward_of_deg(dem: Dem, lat: np.ndarray, blocked: np.ndarray) -> float:
    """The lowest |latitude| (deg) whose polar cap the DEM holds completely: the cap must contain
    no edge or no-data pixel, so it starts at the largest |latitude| among them (the edge
    midpoints of a square polar DEM); 90 when the pole itself lies outside the DEM."""
    pole_deg = -90.0 if np.nanmean(lat) < 0 else 90.0
    row, col = xy_to_pixel(*lat_lon_to_xy(pole_deg, 0.0, dem), dem)
    if not (0 <= row <= dem.shape[0] - 1 and 0 <= col <= dem.shape[1] - 1) or not blocked.any():
        return 90.0
    return float(np.abs(lat[blocked]).max())


def _edge(shape: tuple[int, int]) -> np.ndarray:
    edge = np.zeros(shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    return edge


def _crater_areas(result: PsrResult, dem: Dem, lat: np.ndarray, lon: np.ndarray, craters: list[dict],
                  blocked: np.ndarray) -> list[dict]:
    """PSR area inside each crater's rim circle (great-circle radius D/2 around its centre);
    ``complete`` when the circle holds no edge or no-data pixel (``blocked``)."""
    r_km = dem.radius_m / 1e3
    la, lo = np.radians(lat), np.radians(lon)
    out = []
    for c in craters:
        cla, clo = math.radians(c["lat_deg"]), math.radians(c["lon_deg"])
        cos_d = np.sin(la) * math.sin(cla) + np.cos(la) * math.cos(cla) * np.cos(lo - clo)
        inside = cos_d >= math.cos(0.5 * c["diameter_km"] / r_km)
        if not inside.any():
            continue
        out.append({"name": c["name"], "lat_deg": c["lat_deg"], "lon_deg": c["lon_deg"],
                    "diameter_km": c["diameter_km"],
                    "psr_area_km2": round(float(result.pixel_area_km2[inside & result.mask].sum()), 3),
                    "complete": not bool((inside & blocked).any())})
    return out

"""Digital elevation models of the Moon: reading, map projections and local geometry.

A :class:`Dem` holds heights in metres above a reference sphere (for LOLA products the
1737.4 km sphere) on a north-up grid in a lunar map projection, with NaN where there is no
data. Positions are in the Moon mean-Earth/polar-axis frame (MOON_ME), the frame of LOLA
topography: planetocentric latitude, east-positive longitude.

Projections handled analytically (and inside compiled kernels): polar stereographic on a
sphere (either pole, with ``+k`` or ``+lat_ts``), equirectangular (``eqc``) and geographic
lon/lat degrees. Any other projection on a lunar sphere is converted through GDAL/PROJ
(:func:`rasterio.warp.transform`); horizon maps need one of the analytic ones.

Slope, aspect and roughness are computed from the ME Cartesian positions of neighbouring
pixels, so the map scale factor and the curvature of the Moon are accounted for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from numba import njit, prange
from rasterio.crs import CRS
from rasterio.windows import Window

from qamar.errors import DataFormatError

# Any sphere between these radii is taken to be the Moon (LOLA 1737.4 km, IAU 1737.4 km,
# GRAIL reference 1738.0 km, older 1737.15 km datums).
_LUNAR_RADIUS_RANGE_M = (1.70e6, 1.76e6)
_PROJ_POLAR_STEREO = 1.0
_PROJ_EQUIRECT = 2.0
_FIX_CRS_HINT = (
    "assign the DEM's lunar CRS, e.g. `gdal_edit.py -a_srs "
    "'+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m' DEM.tif` "
    "for a LOLA south polar stereographic product"
)


@dataclass(frozen=True)
class MapProjection:
    """A lunar map projection as the compiled kernels use it.

    ``kind`` is 'polar_stereographic', 'equirectangular' (also geographic lon/lat degrees,
    an equirectangular map with radius 180/pi) or 'other' (GDAL/PROJ only).
    ``params`` (float64, 9) feed :func:`unit_to_map` / :func:`map_to_unit`:
    [kind code, map units per radian (times 2k0 for stereographic), pole sign (+1 north,
    -1 south) or cos(lat_ts), cos lon0, sin lon0, false easting, false northing (map units),
    lat0 (rad), longitude wrap centre relative to lon0 (rad)].
    """

    kind: str
    params: np.ndarray


@njit(cache=True, fastmath=False, nogil=True)
def unit_to_map(ux: float, uy: float, uz: float, p: np.ndarray) -> tuple[float, float]:
    """Map coordinates (map units) of the ME unit vector (ux, uy, uz)."""
    qx = ux * p[3] + uy * p[4]  # cos(lat) cos(lon - lon0)
    qy = -ux * p[4] + uy * p[3]  # cos(lat) sin(lon - lon0)
    if p[0] == _PROJ_POLAR_STEREO:
        den = 1.0 + p[2] * uz
        return p[1] * qy / den + p[5], -p[2] * p[1] * qx / den + p[6]
    dlon = math.atan2(qy, qx) - p[8]
    dlon = dlon - 2.0 * math.pi * math.floor((dlon + math.pi) / (2.0 * math.pi)) + p[8]
    lat = math.asin(min(1.0, max(-1.0, uz)))
    return p[1] * p[2] * dlon + p[5], p[1] * (lat - p[7]) + p[6]


@njit(cache=True, fastmath=False, nogil=True)
def map_to_unit(x: float, y: float, p: np.ndarray) -> tuple[float, float, float]:
    """ME unit vector of the map point (x, y) (map units)."""
    if p[0] == _PROJ_POLAR_STEREO:
        sx = (x - p[5]) / p[1]
        sy = (y - p[6]) / p[1]
        t2 = sx * sx + sy * sy
        q = 2.0 / (1.0 + t2)
        qx = -p[2] * sy * q
        qy = sx * q
        uz = p[2] * (1.0 - t2) / (1.0 + t2)
    else:
        lat = (y - p[6]) / p[1] + p[7]
        dlon = (x - p[5]) / (p[1] * p[2])
        qx = math.cos(lat) * math.cos(dlon)
        qy = math.cos(lat) * math.sin(dlon)
        uz = math.sin(lat)
    return qx * p[3] - qy * p[4], qx * p[4] + qy * p[3], uz


@njit(cache=True, fastmath=False, nogil=True)
def _map_to_lat_lon_arrays(x, y, p, lat_deg, lon_deg):
    for i in range(x.size):
        ux, uy, uz = map_to_unit(x[i], y[i], p)
        lat_deg[i] = math.degrees(math.asin(min(1.0, max(-1.0, uz))))
        # exactly at a pole the longitude is 0 by convention (see enu_basis)
        lon_deg[i] = math.degrees(math.atan2(uy, ux)) if ux != 0.0 or uy != 0.0 else 0.0


@njit(cache=True, fastmath=False, nogil=True)
def _lat_lon_to_map_arrays(lat_deg, lon_deg, p, x, y):
    for i in range(lat_deg.size):
        lat = math.radians(lat_deg[i])
        lon = math.radians(lon_deg[i])
        x[i], y[i] = unit_to_map(math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat), p)


def _crs_radius_m(crs: CRS) -> float:
    """Radius of the CRS's reference sphere (m); DataFormatError unless it is a lunar sphere."""
    d = crs.to_dict()
    if "R" in d:
        radius_m = float(d["R"])
    elif "a" in d and float(d.get("b", d["a"])) == float(d["a"]) and float(d.get("rf", 0.0) or 0.0) == 0.0:
        radius_m = float(d["a"])
    else:
        raise DataFormatError(
            f"the DEM's CRS ({crs.to_string() or 'unnamed'}) is not a lunar sphere (no radius between "
            f"1700 and 1760 km): {_FIX_CRS_HINT}"
        )
    if not _LUNAR_RADIUS_RANGE_M[0] <= radius_m <= _LUNAR_RADIUS_RANGE_M[1]:
        raise DataFormatError(
            f"the DEM's CRS has a reference sphere of radius {radius_m / 1e3:.1f} km, not the Moon: {_FIX_CRS_HINT}"
        )
    return radius_m


def _metres_per_map_unit(d: dict) -> float | None:
    """Metres per map unit of a PROJ dict (None if the unit is unknown)."""
    if "to_meter" in d:
        return float(d["to_meter"])
    return {"m": 1.0, "km": 1000.0}.get(d.get("units", "m"))


def _projection(crs: CRS, radius_m: float, transform: Affine, shape: tuple[int, int]) -> MapProjection:
    """The compiled-kernel description of ``crs`` (see :class:`MapProjection`)."""
    d = crs.to_dict()
    proj = d.get("proj")
    to_m = _metres_per_map_unit(d)
    lon0 = math.radians(float(d.get("lon_0", 0.0)))
    x0, y0 = float(d.get("x_0", 0.0)), float(d.get("y_0", 0.0))
    if proj == "stere" and abs(abs(float(d.get("lat_0", 0.0))) - 90.0) < 1e-9 and to_m:
        sign = math.copysign(1.0, float(d["lat_0"]))
        lat_ts = abs(float(d.get("lat_ts", 90.0)))
        if "k" in d or "k_0" in d or lat_ts == 90.0:
            factor = 2.0 * float(d.get("k", d.get("k_0", 1.0)))
        else:  # Snyder (1987) eq. 21-33 on a sphere: rho = R cos(phi_c) t / t_c
            phi_c = math.radians(lat_ts)
            factor = math.cos(phi_c) / math.tan(math.pi / 4 - phi_c / 2)
        p = [_PROJ_POLAR_STEREO, factor * radius_m / to_m, sign, math.cos(lon0), math.sin(lon0), x0 / to_m, y0 / to_m, 0.0, 0.0]
        return MapProjection("polar_stereographic", np.array(p))
    if proj in ("eqc", "longlat", "latlong", "lonlat") and to_m:
        if proj == "eqc":
            scale, cos_ts = radius_m / to_m, math.cos(math.radians(float(d.get("lat_ts", 0.0))))
            lat0, x0, y0 = math.radians(float(d.get("lat_0", 0.0))), x0 / to_m, y0 / to_m
        else:  # geographic degrees: an equirectangular map of radius 180/pi
            scale, cos_ts, lat0, x0, y0 = 180.0 / math.pi, 1.0, 0.0, 0.0, 0.0
        # Longitudes wrap around the DEM's own centre, so 0..360 and -180..180 grids both work.
        x_centre = transform.c + transform.a * shape[1] / 2.0
        wrap_centre = (x_centre - x0) / (scale * cos_ts)
        p = [_PROJ_EQUIRECT, scale, cos_ts, math.cos(lon0), math.sin(lon0), x0, y0, lat0, wrap_centre]
        return MapProjection("equirectangular", np.array(p))
    return MapProjection("other", np.zeros(9))


@dataclass(frozen=True, eq=False)
class Dem:
    """A lunar DEM: heights (m) above the reference sphere on a north-up map grid.

    ``elevation_m`` (ny, nx) float32/float64 has NaN where there is no data (holes are
    counted in ``nodata_count``, never filled). ``transform`` maps (col, row) of pixel
    corners to map x/y; pixel centres are at half-integer indices. ``radius_m`` is the
    reference sphere of the CRS. Raises DataFormatError for a missing, non-lunar or
    rotated georeference.
    """

    elevation_m: np.ndarray
    transform: Affine
    crs: CRS | None
    radius_m: float = field(init=False)
    projection: MapProjection = field(init=False)
    nodata_count: int = field(init=False)

    def __post_init__(self) -> None:
        if self.crs is None:
            raise DataFormatError(f"the DEM has no coordinate reference system: {_FIX_CRS_HINT}")
        if self.elevation_m.ndim != 2:
            raise DataFormatError(f"a DEM is a 2-D array of heights, got shape {self.elevation_m.shape}")
        if self.transform.b != 0.0 or self.transform.d != 0.0 or self.transform.a <= 0 or self.transform.e >= 0:
            raise DataFormatError("the DEM grid is rotated or flipped: warp it to a north-up grid with gdalwarp first")
        radius_m = _crs_radius_m(self.crs)
        object.__setattr__(self, "radius_m", radius_m)
        object.__setattr__(self, "projection", _projection(self.crs, radius_m, self.transform, self.elevation_m.shape))
        object.__setattr__(self, "nodata_count", int(np.count_nonzero(np.isnan(self.elevation_m))))

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.elevation_m.shape

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in map units (positive)."""
        return self.transform.a, -self.transform.e

    @property
    def pixel_size_m(self) -> float:
        """Nominal ground size of a pixel (m): its height at the projection's true scale."""
        d = self.crs.to_dict()
        if d.get("proj") in ("longlat", "latlong", "lonlat"):
            return math.radians(-self.transform.e) * self.radius_m
        return -self.transform.e * (_metres_per_map_unit(d) or 1.0)

    @property
    def nodata_fraction(self) -> float:
        """Fraction of pixels without data."""
        return self.nodata_count / self.elevation_m.size

    def require_complete(self, what: str) -> None:
        """Raise DataFormatError if the DEM has holes, naming ``what`` cannot work with them."""
        if self.nodata_count:
            raise DataFormatError(
                f"{what} needs a DEM without holes, but {self.nodata_count} pixels "
                f"({100 * self.nodata_fraction:.3g} %) have no data: fill them (e.g. gdal_fillnodata.py) "
                "or crop the DEM to the covered area"
            )


def read_dem(path: str | Path, window: Window | tuple | None = None) -> Dem:
    """Read band 1 of a DEM (GeoTIFF/COG, PDS3 ``.IMG``/``.LBL``, anything GDAL reads).

    ``window`` is a rasterio Window or ((row_start, row_stop), (col_start, col_stop)).
    Nodata and masked pixels become NaN. Band scale/offset are applied; an offset equal
    to the sphere radius (LOLA ``OFFSET = 1737400``, radii stored as DN) is removed so
    heights are above the sphere. Raises DataFormatError for unreadable files or a missing
    or non-lunar CRS.
    """
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise DataFormatError(f"cannot read DEM {path}: {exc}; check the path and that GDAL reads the format") from exc
    with ds:
        win = Window.from_slices(*window) if isinstance(window, tuple) else window
        dn = ds.read(1, window=win)
        valid = ds.read_masks(1, window=win) > 0
        scale, offset = float(ds.scales[0] or 1.0), float(ds.offsets[0] or 0.0)
        transform = ds.window_transform(win) if win is not None else ds.transform
        crs = ds.crs
    elevation_m = dn.astype(np.float64 if dn.dtype == np.float64 else np.float32) * scale
    if crs is not None and "R" in crs.to_dict() and abs(offset - float(crs.to_dict()["R"])) < 5e4:
        offset -= float(crs.to_dict()["R"])
    elevation_m += np.float32(offset)
    elevation_m[~valid | ~np.isfinite(elevation_m)] = np.nan
    return Dem(elevation_m, transform, crs)


def _lunar_geographic(dem: Dem) -> CRS:
    return CRS.from_proj4(f"+proj=longlat +R={dem.radius_m} +no_defs")


def lat_lon_to_xy(lat_deg, lon_deg, dem: Dem) -> tuple[np.ndarray, np.ndarray]:
    """Map x, y (map units of ``dem.crs``) of planetocentric ME latitude/longitude (deg).

    Longitudes may be 0..360 E or -180..180.
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    lat, lon = np.broadcast_arrays(lat, lon)
    if dem.projection.kind == "other":
        x, y = rasterio.warp.transform(_lunar_geographic(dem), dem.crs, lon.ravel(), lat.ravel())
        return np.reshape(x, lat.shape), np.reshape(y, lat.shape)
    x, y = np.empty(lat.size), np.empty(lat.size)
    _lat_lon_to_map_arrays(np.ascontiguousarray(lat).ravel(), np.ascontiguousarray(lon).ravel(), dem.projection.params, x, y)
    return x.reshape(lat.shape), y.reshape(lat.shape)


def xy_to_lat_lon(x_m, y_m, dem: Dem) -> tuple[np.ndarray, np.ndarray]:
    """Planetocentric ME latitude and longitude (deg, -180..180) of map points (map units)."""
    x = np.asarray(x_m, dtype=np.float64)
    y = np.asarray(y_m, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    if dem.projection.kind == "other":
        lon, lat = rasterio.warp.transform(dem.crs, _lunar_geographic(dem), x.ravel(), y.ravel())
        return np.reshape(lat, x.shape), (np.reshape(lon, x.shape) + 180.0) % 360.0 - 180.0
    lat, lon = np.empty(x.size), np.empty(x.size)
    _map_to_lat_lon_arrays(np.ascontiguousarray(x).ravel(), np.ascontiguousarray(y).ravel(), dem.projection.params, lat, lon)
    return lat.reshape(x.shape), lon.reshape(x.shape)


def pixel_xy(dem: Dem) -> tuple[np.ndarray, np.ndarray]:
    """Map x, y (map units) of every pixel centre, each (ny, nx)."""
    ny, nx = dem.shape
    cols, rows = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    t = dem.transform
    return t.c + t.a * cols, t.f + t.e * rows


def pixel_lat_lon(dem: Dem) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (deg, ME) of every pixel centre, each (ny, nx)."""
    return xy_to_lat_lon(*pixel_xy(dem), dem)


def xy_to_pixel(x, y, dem: Dem) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, col) of map points; pixel centres are at integers."""
    t = dem.transform
    return (np.asarray(y) - t.f) / t.e - 0.5, (np.asarray(x) - t.c) / t.a - 0.5


def me_from_lat_lon_height(lat_deg, lon_deg, h_m, radius_m: float) -> np.ndarray:
    """ME Cartesian position (..., 3) in METRES of points at height ``h_m`` above the sphere ``radius_m``."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    r = radius_m + np.asarray(h_m, dtype=np.float64)
    return np.stack(np.broadcast_arrays(r * np.cos(lat) * np.cos(lon), r * np.cos(lat) * np.sin(lon), r * np.sin(lat)), axis=-1)


def enu_basis(lat_deg, lon_deg) -> np.ndarray:
    """Local east, north, up unit vectors in ME as the ROWS of a (..., 3, 3) matrix.

    ``enu_basis(lat, lon) @ v_me`` gives (east, north, up) components. At a pole the basis
    is the limit along the meridian ``lon_deg`` (pixel_lat_lon gives lon 0 exactly at a
    pole, so there north points along the lon-0 meridian).
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    lat, lon = np.broadcast_arrays(lat, lon)
    sl, cl, so, co = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
    east = np.stack([-so, co, np.zeros_like(lat)], axis=-1)
    north = np.stack([-sl * co, -sl * so, cl], axis=-1)
    up = np.stack([cl * co, cl * so, sl], axis=-1)
    return np.stack([east, north, up], axis=-2)


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _slope_aspect_roughness(p_me, up, east, north, slope_deg, aspect_deg, rough_m):
    """Per interior pixel: normal from central differences of ME positions (m)."""
    ny, nx = p_me.shape[0], p_me.shape[1]
    for i in prange(1, ny - 1):
        for j in range(1, nx - 1):
            a = p_me[i, j + 1] - p_me[i, j - 1]  # towards +col
            b = p_me[i - 1, j] - p_me[i + 1, j]  # towards -row (map +y)
            n = np.cross(a, b)
            norm = math.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
            if not norm > 0.0 or np.isnan(p_me[i, j, 0]):  # a hole here or next door, or degenerate
                continue
            n /= norm
            nu = n[0] * up[i, j, 0] + n[1] * up[i, j, 1] + n[2] * up[i, j, 2]
            if nu < 0.0:
                n = -n
                nu = -nu
            slope_deg[i, j] = math.degrees(math.acos(min(1.0, nu)))
            ne = n[0] * east[i, j, 0] + n[1] * east[i, j, 1] + n[2] * east[i, j, 2]
            nn = n[0] * north[i, j, 0] + n[1] * north[i, j, 1] + n[2] * north[i, j, 2]
            if ne * ne + nn * nn > 1e-24:
                aspect_deg[i, j] = math.degrees(math.atan2(ne, nn)) % 360.0
            acc = 0.0
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    d = p_me[i + di, j + dj] - p_me[i, j]
                    r = d[0] * n[0] + d[1] * n[1] + d[2] * n[2]
                    acc += r * r
            rough_m[i, j] = math.sqrt(acc / 8.0)


def slope_aspect_roughness(dem: Dem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope (deg), aspect (deg clockwise from local north, the direction the slope faces,
    i.e. downhill) and roughness (m) of every pixel, each (ny, nx) float64.

    The surface normal at a pixel is the cross product of central differences of the ME
    Cartesian positions of its four neighbours, so map scale and curvature are exact; slope
    is its angle from the local vertical. Roughness is the RMS distance of the 8 neighbours
    from the tangent plane through the pixel (a smooth sphere gives p^2/2R, under a mm at
    240 m). NaN on the border, next to holes, and (aspect) where the surface is level.
    """
    lat, lon = pixel_lat_lon(dem)
    basis = enu_basis(lat, lon)
    p_me = me_from_lat_lon_height(lat, lon, dem.elevation_m, dem.radius_m)
    out = [np.full(dem.shape, np.nan) for _ in range(3)]
    _slope_aspect_roughness(p_me, np.ascontiguousarray(basis[..., 2, :]), np.ascontiguousarray(basis[..., 0, :]),
                            np.ascontiguousarray(basis[..., 1, :]), *out)
    return out[0], out[1], out[2]

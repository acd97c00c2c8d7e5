"""Traversability: where the rover may drive on a DEM and what each metre costs.

A :class:`CostMap` holds, on the DEM grid, the true ground size of a pixel step (metres on the
reference sphere), slope and roughness, a bit mask of the constraints that block each pixel
(:data:`BLOCK_REASONS`) and the cost of one metre of driving there (a dimensionless multiplier,
1 on level smooth ground, infinite where blocked):

    cost = 1 + slope_deg / slope_cost_deg [+ roughness_m / roughness_cost_m]

Map scale. Pixel steps are measured on the Moon: the ground size of a step is the chord on the
DEM's sphere between the points half a pixel either side of the pixel centre, through
:mod:`qamar.surface.terrain`'s projection. On a polar stereographic map that is the pixel size
divided by the scale factor k = 2 k0 / (1 + sin|lat|) = k0 (1 + rho^2 / (4 k0^2 R^2)) (Snyder
1987, ch. 21, polar aspect on a sphere; rho the distance from the pole on the map), 1.00007 at
30 km from the pole. The planner needs a conformal map (the same scale along rows and columns:
polar stereographic); other maps raise ModelConfigError.

Slope and roughness come from :func:`qamar.surface.terrain.slope_aspect_roughness` (surface
normals from ME positions, so curvature and map scale are exact), at the rover's scale: a DEM
finer than ``mobility.footprint_m`` is first averaged over the rover's footprint. A DEM
coarser than the rover (the 10 m LOLA site DEMs) gives slopes over two pixels, the finest the
data hold. Border pixels take the slope of their nearest interior neighbour.

Hazards: craters of the Wu et al. (2022) catalogue (data key ``craters_south_pole``, craters
of about 1 km and more poleward of 80 S) up to ``crater_max_diameter_m`` are kept out to
``crater_margin`` radii (wider ones are landforms the slope map resolves); keep-out
zones come from GeoJSON (polygons with ME longitude/latitude in degrees, or points with a
``radius_m`` property); permanently shadowed regions (a raster from ``qamar surface psr``) are
either hazards (blocked) or targets (drivable; :meth:`CostMap.psr_edge` gives their rim).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
import scipy.ndimage
from numba import njit, prange

from qamar import data
from qamar.errors import DataFormatError, ModelConfigError
from qamar.rover.model import RoverSpec
from qamar.surface.terrain import (
    Dem,
    lat_lon_to_xy,
    map_to_unit,
    pixel_xy,
    slope_aspect_roughness,
    xy_to_pixel,
)

NO_DATA, SLOPE, ROUGHNESS, CRATER, KEEP_OUT, PSR = 1, 2, 4, 8, 16, 32
BLOCK_REASONS = {
    NO_DATA: "no DEM data (or no slope next to a hole)",
    SLOPE: "slope over the limit",
    ROUGHNESS: "roughness over the limit",
    CRATER: "inside a catalogued crater",
    KEEP_OUT: "inside a keep-out zone",
    PSR: "inside a permanently shadowed region",
}
_CONFORMAL_TOLERANCE = 1e-6


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _step_lengths(x, y, half_x, half_y, params, radius_m, dx_m, dy_m):
    """Chord (m) on the sphere across each pixel along map x and along map y."""
    ny, nx = x.shape
    for i in prange(ny):
        for j in range(nx):
            ax, ay, az = map_to_unit(x[i, j] - half_x, y[i, j], params)
            bx, by, bz = map_to_unit(x[i, j] + half_x, y[i, j], params)
            dx_m[i, j] = radius_m * math.sqrt((ax - bx) ** 2 + (ay - by) ** 2 + (az - bz) ** 2)
            ax, ay, az = map_to_unit(x[i, j], y[i, j] - half_y, params)
            bx, by, bz = map_to_unit(x[i, j], y[i, j] + half_y, params)
            dy_m[i, j] = radius_m * math.sqrt((ax - bx) ** 2 + (ay - by) ** 2 + (az - bz) ** 2)


def ground_step_m(dem: Dem) -> np.ndarray:
    """Ground length (m, on the DEM's sphere) of a one-pixel step at each pixel, (ny, nx).

    Raises ModelConfigError unless the map is conformal with square pixels (the same length
    along rows and columns), as a polar stereographic map is.
    """
    if dem.projection.kind == "other":
        raise ModelConfigError("route planning needs a polar stereographic DEM: reproject it with gdalwarp "
                               "(e.g. -t_srs '+proj=stere +lat_0=-90 +lon_0=0 +k=1 +R=1737400 +units=m')")
    x, y = pixel_xy(dem)
    dx_m, dy_m = np.empty(dem.shape), np.empty(dem.shape)
    _step_lengths(x, y, dem.transform.a / 2, -dem.transform.e / 2, dem.projection.params, dem.radius_m, dx_m, dy_m)
    mismatch = float(np.max(np.abs(dx_m / dy_m - 1.0)))
    if mismatch > _CONFORMAL_TOLERANCE:
        raise ModelConfigError(
            f"route planning needs square ground pixels, but steps along rows and columns differ by up to "
            f"{100 * mismatch:.3g} % on this map ({dem.projection.kind}): reproject the DEM to polar stereographic "
            "with square pixels (gdalwarp -t_srs '+proj=stere +lat_0=-90 +lon_0=0 +k=1 +R=1737400 +units=m' -tr 10 10)")
    return 0.5 * (dx_m + dy_m)


def rover_scale_slope_roughness(dem: Dem, footprint_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (deg) and roughness (m) at the rover's scale, (ny, nx), NaN only where the DEM has
    no data or next to a hole. A DEM finer than ``footprint_m`` is averaged over the footprint
    (odd window, in pixels) before the slope is taken."""
    window = round(footprint_m / dem.pixel_size_m)
    if window >= 2:
        window += 1 - window % 2
        smooth = scipy.ndimage.uniform_filter(dem.elevation_m.astype(np.float64), size=window, mode="nearest")
        dem = Dem(smooth, dem.transform, dem.crs)
    slope_deg, _, roughness_m = slope_aspect_roughness(dem)
    for grid in (slope_deg, roughness_m):  # the border from the nearest interior pixel
        if grid.shape[0] > 2 and grid.shape[1] > 2:
            grid[0, :], grid[-1, :] = grid[1, :], grid[-2, :]
            grid[:, 0], grid[:, -1] = grid[:, 1], grid[:, -2]
    return slope_deg, roughness_m


def read_craters(dem: Dem, max_diameter_m: float = math.inf) -> list[dict]:
    """Catalogued craters (Wu et al. 2022, data key ``craters_south_pole``) up to
    ``max_diameter_m`` whose rim reaches the DEM: dicts with id, lat_deg, lon_deg, diameter_m,
    depth_m."""
    import pandas as pd

    table = pd.read_csv(data.path("craters_south_pole"))
    x, y = lat_lon_to_xy(table["Latitude"].to_numpy(), table["Longitude"].to_numpy(), dem)
    row, col = xy_to_pixel(x, y, dem)
    reach_px = table["Diameter_m"].to_numpy() / 2 / dem.pixel_size_m * 1.01 + 1
    ny, nx = dem.shape
    near = (row > -reach_px) & (row < ny + reach_px) & (col > -reach_px) & (col < nx + reach_px)
    near &= table["Diameter_m"].to_numpy() <= max_diameter_m
    return [{"id": int(r.ID), "lat_deg": float(r.Latitude), "lon_deg": float(r.Longitude),
             "diameter_m": float(r.Diameter_m), "depth_m": float(r.Depth_m)} for r in table[near].itertuples()]


def _disc_mask(dem: Dem, step_m: np.ndarray, centres: list[tuple[float, float, float]]) -> np.ndarray:
    """Pixels within radius_m of (lat_deg, lon_deg) centres, distances on the ground."""
    mask = np.zeros(dem.shape, dtype=bool)
    ny, nx = dem.shape
    for lat_deg, lon_deg, radius_m in centres:
        x, y = lat_lon_to_xy(lat_deg, lon_deg, dem)
        r0, c0 = (float(v) for v in xy_to_pixel(x, y, dem))
        i0, j0 = min(max(round(r0), 0), ny - 1), min(max(round(c0), 0), nx - 1)
        radius_px = radius_m / step_m[i0, j0]
        rows = slice(max(math.floor(r0 - radius_px), 0), min(math.ceil(r0 + radius_px) + 1, ny))
        cols = slice(max(math.floor(c0 - radius_px), 0), min(math.ceil(c0 + radius_px) + 1, nx))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        rr, cc = np.mgrid[rows, cols]
        mask[rows, cols] |= (rr - r0) ** 2 + (cc - c0) ** 2 <= radius_px**2
    return mask


def keep_out_mask(dem: Dem, step_m: np.ndarray, path: str | Path) -> np.ndarray:
    """Pixels inside the keep-out zones of a GeoJSON file: Polygon/MultiPolygon features with
    ME longitude/latitude (deg), or Point features with a ``radius_m`` property. Raises
    DataFormatError for an unreadable file or another geometry."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"cannot read the keep-out file {path}: {exc}; give a GeoJSON file") from None
    features = document.get("features", [document]) if isinstance(document, dict) else []
    shapes, discs = [], []
    for feature in features:
        geometry = (feature or {}).get("geometry") or {}
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Point" and "radius_m" in (feature.get("properties") or {}):
            discs.append((coords[1], coords[0], float(feature["properties"]["radius_m"])))
        elif kind in ("Polygon", "MultiPolygon"):
            for polygon in coords if kind == "MultiPolygon" else [coords]:
                rings = []
                for ring in polygon:
                    lon_lat = np.asarray(ring, dtype=np.float64)
                    x, y = lat_lon_to_xy(lon_lat[:, 1], lon_lat[:, 0], dem)
                    rings.append(np.column_stack([x, y]).tolist())
                shapes.append({"type": "Polygon", "coordinates": rings})
        else:
            raise DataFormatError(f"keep-out file {path}: a {kind} feature is not a zone; use Polygon/MultiPolygon "
                                  "(longitude, latitude in deg) or a Point with a radius_m property")
    mask = _disc_mask(dem, step_m, discs)
    if shapes:
        mask |= rasterio.features.rasterize([(s, 1) for s in shapes], out_shape=dem.shape, transform=dem.transform,
                                            fill=0, dtype="uint8").astype(bool)
    return mask


def read_psr_mask(dem: Dem, path: str | Path) -> np.ndarray:
    """The PSR raster written by ``qamar surface psr`` (1 PSR, 0 lit, 255 no data) as a bool
    mask; raises DataFormatError unless it is on the DEM's grid."""
    try:
        with rasterio.open(path) as ds:
            band, transform, shape = ds.read(1), ds.transform, (ds.height, ds.width)
    except rasterio.errors.RasterioIOError as exc:
        raise DataFormatError(f"cannot read the PSR raster {path}: {exc}") from None
    if shape != dem.shape or not transform.almost_equals(dem.transform):
        raise DataFormatError(f"the PSR raster {path} is not on the DEM's grid: compute it from this DEM "
                              "with `qamar surface psr`")
    return band == 1


@dataclass(frozen=True, eq=False)
class CostMap:
    """Traversability of a DEM for one rover. Arrays are (ny, nx) on the DEM grid.

    ``cost``: cost of a metre of driving (1 on level smooth ground, inf where blocked);
    ``step_m``: ground length of a one-pixel step; ``slope_deg``, ``roughness_m``: at the
    rover's scale; ``blocked``: OR of the :data:`BLOCK_REASONS` bits; ``psr``: PSR mask (all
    False without a PSR raster); ``craters``: the catalogued craters used.
    """

    dem: Dem
    cost: np.ndarray
    step_m: np.ndarray
    slope_deg: np.ndarray
    roughness_m: np.ndarray
    blocked: np.ndarray
    psr: np.ndarray
    max_slope_deg: float
    craters: list[dict]

    def reasons(self, row: int, col: int) -> list[str]:
        """What blocks pixel (row, col), in words (empty if it is drivable)."""
        bits = int(self.blocked[row, col])
        return [text for bit, text in BLOCK_REASONS.items() if bits & bit]

    def psr_edge(self) -> np.ndarray:
        """Drivable pixels next to (8-neighbourhood) a permanently shadowed pixel: where to
        prospect for ice at a PSR's rim."""
        return scipy.ndimage.binary_dilation(self.psr, structure=np.ones((3, 3), bool)) & np.isfinite(self.cost)


def cost_map(
    dem: Dem,
    rover: RoverSpec | None = None,
    *,
    max_slope_deg: float | None = None,
    craters: bool = True,
    keep_out: str | Path | None = None,
    psr: str | Path | np.ndarray | None = None,
    psr_mode: str = "hazard",
) -> CostMap:
    """The rover's cost map on ``dem``.

    ``max_slope_deg`` overrides the rover's limit; ``craters`` keeps catalogued craters out to
    ``rover.mobility.crater_margin`` radii; ``keep_out`` is a GeoJSON file of zones; ``psr`` a
    PSR raster (or mask on the DEM grid) treated as ``psr_mode`` 'hazard' (blocked) or
    'target' (drivable). Raises ModelConfigError for a bad limit or mode or a non-conformal
    map, DataFormatError for unreadable inputs.
    """
    rover = rover or RoverSpec()
    mobility = rover.mobility
    limit_deg = mobility.max_slope_deg if max_slope_deg is None else float(max_slope_deg)
    if not 0 < limit_deg < 90:
        raise ModelConfigError(f"the slope limit must lie between 0 and 90 deg, got {limit_deg:g}")
    if psr_mode not in ("hazard", "target"):
        raise ModelConfigError(f"psr_mode must be 'hazard' or 'target', got {psr_mode!r}")
    step_m = ground_step_m(dem)
    slope_deg, roughness_m = rover_scale_slope_roughness(dem, rover.mobility.footprint_m)

    blocked = np.zeros(dem.shape, dtype=np.uint8)
    blocked[~np.isfinite(slope_deg) | ~np.isfinite(dem.elevation_m)] |= NO_DATA
    blocked[slope_deg > limit_deg] |= SLOPE
    if mobility.max_roughness_m is not None:
        blocked[roughness_m > mobility.max_roughness_m] |= ROUGHNESS
    used_craters = read_craters(dem, mobility.crater_max_diameter_m) if craters else []
    if used_craters:
        discs = [(c["lat_deg"], c["lon_deg"], c["diameter_m"] / 2 * mobility.crater_margin) for c in used_craters]
        blocked[_disc_mask(dem, step_m, discs)] |= CRATER
    if keep_out is not None:
        blocked[keep_out_mask(dem, step_m, keep_out)] |= KEEP_OUT
    psr_mask = np.zeros(dem.shape, dtype=bool)
    if psr is not None:
        psr_mask = read_psr_mask(dem, psr) if isinstance(psr, (str, Path)) else np.asarray(psr, dtype=bool)
        if psr_mode == "hazard":
            blocked[psr_mask] |= PSR

    with np.errstate(invalid="ignore"):
        cost = 1.0 + np.nan_to_num(slope_deg) / mobility.slope_cost_deg
        if mobility.roughness_cost_m is not None:
            cost += np.nan_to_num(roughness_m) / mobility.roughness_cost_m
    cost[blocked != 0] = np.inf
    return CostMap(dem, cost, step_m, slope_deg, roughness_m, blocked, psr_mask, limit_deg, used_craters)

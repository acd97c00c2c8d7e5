"""The rover at its landing site: the site's light and permanently shadowed regions, and the
planned traverse with its route and schedule, for the ``qamar run`` report.

One function an analysis, as :mod:`qamar.mission.orbiter` does for the orbiter. The site DEM
(cropped to ``site.window_px``) carries the traverse; its light and PSR maps are computed on
``site.map_factor`` blocks from one horizon map (terrain to ``site.horizon_km``, beyond the
site DEM from the far DEM; observer ``site.observer_height_m`` or the rover's mast), kept in
the user cache (``$QAMAR_CACHE_DIR/horizons``, named by the inputs, so a rerun reuses it). The
traverse is :func:`qamar.rover.spacetime.plan_spacetime` on the rover's cost map of the site
DEM, with the light of :func:`qamar.rover.spacetime.site_light`.

Events of the schedule (:class:`RouteEvents`): each is placed on the route at the distance
driven so far (the schedule's driving time, scaled to the route's length), so positions lie on
the route's geometry; times are UTC; "Sun visible" means some of the solar disc is above the
horizon of the event's planning block (array power above zero; the panel turns to the Sun).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qamar import data
from qamar.errors import DataNotFoundError, ModelConfigError
from qamar.mission.scenario import RoverMission
from qamar.rover.plan import Route
from qamar.rover.spacetime import LightGrid, SpacetimeResult, auto_factor, plan_spacetime, site_light
from qamar.surface.horizon import HorizonMap
from qamar.surface.illumination import IlluminationMaps
from qamar.surface.psr import PsrResult
from qamar.surface.terrain import Dem, lat_lon_to_xy, xy_to_lat_lon


@dataclass(frozen=True)
class Site:
    """The site: ``dem`` (the site DEM, cropped), ``far_dem`` (or None), the map ``grid`` (``dem``
    in ``map_factor`` blocks) and its ``horizon`` for an observer ``observer_height_m`` above it."""

    dem: Dem
    far_dem: Dem | None
    grid: Dem
    horizon: HorizonMap
    map_factor: int
    observer_height_m: float


def dem_file(name: str) -> Path:
    """The file of a DEM named by a :mod:`qamar.data` key or a path. Raises DataNotFoundError."""
    if name in data.REGISTRY:
        return data.path(name)
    path = Path(name)
    if not path.is_file():
        raise DataNotFoundError(f"the DEM {name} is neither a data key ({', '.join(k for k in data.REGISTRY if 'dem' in k)}) "
                                "nor a file: give one of them")
    return path


def _fingerprint(path: Path | None) -> str:
    if path is None:
        return "none"
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def load_site(mission: RoverMission, progress: bool = True) -> Site:
    """Read the site DEM (and far DEM) and get the horizon map of the map grid, computed once
    and cached. Raises DataNotFoundError/DataFormatError for the DEMs, ModelConfigError for a
    window outside the DEM."""
    from rasterio.windows import Window

    from qamar.surface.horizon import coarse_dem, compute_horizon, read_horizon, write_horizon
    from qamar.surface.terrain import read_dem

    spec = mission.site
    dem_path = dem_file(spec.dem)
    far_path = dem_file(spec.far_dem) if spec.far_dem else None
    window = None
    if spec.window_px is not None:
        import rasterio

        col, row, width, height = spec.window_px
        with rasterio.open(dem_path) as ds:
            if col + width > ds.width or row + height > ds.height:
                raise ModelConfigError(f"site.window_px {list(spec.window_px)} reaches beyond the DEM "
                                       f"({ds.width} x {ds.height} pixels): shrink it")
        window = Window(col, row, width, height)
    dem = read_dem(dem_path, window=window)
    far = read_dem(far_path) if far_path else None
    grid = dem if spec.map_factor == 1 else coarse_dem(dem, spec.map_factor)
    observer_m = (mission.vehicle.comms.rover_antenna_height_m if spec.observer_height_m is None
                  else spec.observer_height_m)
    key = "|".join([_fingerprint(dem_path), str(spec.window_px), str(spec.map_factor), _fingerprint(far_path),
                    f"{observer_m:g}", str(spec.azimuths), f"{spec.horizon_km:g}", "sweep"])
    cached = data.cache_dir() / "horizons" / f"{dem_path.stem}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.tif"
    if cached.is_file():
        horizon = read_horizon(cached)
    else:
        horizon = compute_horizon(grid, far_dem=far, n_azimuths=spec.azimuths, max_distance_km=spec.horizon_km,
                                  observer_height_m=observer_m, progress=progress, allow_holes=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.partial")
        write_horizon(horizon, partial)
        partial.replace(cached)
    return Site(dem, far, grid, horizon, spec.map_factor, observer_m)


def site_light_maps(mission: RoverMission, site: Site, progress: bool = True) -> IlluminationMaps:
    """Sun fraction, Earth fraction, both and longest night on the map grid over ``light``."""
    from qamar.surface.illumination import body_tracks, epochs_tdb_s, illumination_maps
    from qamar.time import tdb_s_to_utc, utc_to_tdb_s

    light = mission.light
    start = light.start_utc.isoformat()
    stop = tdb_s_to_utc(float(utc_to_tdb_s(start)) + light.days * 86400.0, 0)
    tracks = body_tracks(epochs_tdb_s(start, stop, light.step_h))
    return illumination_maps(site.grid, site.horizon, tracks, progress=progress)


def site_psr(mission: RoverMission, site: Site, progress: bool = True) -> PsrResult:
    """Permanently shadowed regions of the map grid over the scenario's ``psr`` span."""
    from qamar.surface.psr import find_psr, sun_envelope

    spec = mission.psr
    envelope = sun_envelope(spec.start_utc.isoformat(), spec.years)
    return find_psr(site.grid, site.horizon, lon_step_deg=spec.lon_step_deg, envelope=envelope, progress=progress)


def psr_on_dem(psr: PsrResult, site: Site) -> np.ndarray:
    """The PSR mask of the map grid on the site DEM's pixels (each block's value on its pixels;
    trailing pixels outside the blocks are not PSR)."""
    f = site.map_factor
    fine = np.kron(psr.mask, np.ones((f, f), bool))
    out = np.zeros(site.dem.shape, bool)
    out[:fine.shape[0], :fine.shape[1]] = fine
    return out


@dataclass(frozen=True)
class Traverse:
    """The planned traverse: the plan (``result``), the light it was planned in, the planning
    factor and the cost map's slope limit."""

    result: SpacetimeResult
    light: LightGrid
    factor: int
    max_slope_limit_deg: float


def lander_site(mission: RoverMission):
    """The lander as a :class:`qamar.ops.link.LanderSite` (antenna height: the rover's
    ``comms.lander_antenna_height_m``), or None without a lander."""
    from qamar.ops.link import LanderSite

    lander = mission.lander
    if lander is None:
        return None
    return LanderSite(lander.lat_deg, lander.lon_deg, mission.vehicle.comms.lander_antenna_height_m)


def plan_traverse(mission: RoverMission, site: Site, psr: PsrResult | None) -> Traverse:
    """The spatiotemporal plan of ``traverse`` on the site DEM (PSRs as the scenario's mode).
    Infeasible plans come back with their reason. Raises ModelConfigError for bad settings,
    EpochOutOfRangeError outside DE440."""
    from qamar.rover.traverse import cost_map

    spec, rover = mission.traverse, mission.vehicle
    use_psr = psr is not None and mission.psr.mode != "ignore"
    costs = cost_map(site.dem, rover, max_slope_deg=spec.max_slope_deg, craters=spec.craters,
                     psr=psr_on_dem(psr, site) if use_psr else None,
                     psr_mode=mission.psr.mode if use_psr else "hazard")
    factor = spec.plan_factor or auto_factor(site.dem.shape)
    start_utc = spec.start_utc.isoformat().replace("+00:00", "Z")
    _, light = site_light(site.dem, rover, start_utc, spec.days, spec.step_h, factor, far_dem=site.far_dem,
                          max_distance_km=mission.site.horizon_km, lander=lander_site(mission))
    points = [(p.lat_deg, p.lon_deg) for p in (*spec.targets, spec.goal)]
    result = plan_spacetime(costs, light, (spec.start.lat_deg, spec.start.lon_deg), points, rover, factor=factor,
                            start_utc=start_utc, haven_h=spec.haven_h, detour=spec.detour)
    return Traverse(result, light, factor, costs.max_slope_deg)


@dataclass(frozen=True)
class RouteEvents:
    """The schedule's events on the route: epoch (TDB s past J2000) and UTC, hours from the
    start, distance along the route (m), map x/y (DEM CRS units), lat/lon (deg, ME), DEM pixel,
    action up to the event, battery (Wh), array power (W), Sun visible and Earth contact."""

    t_tdb_s: np.ndarray
    utc: list[str]
    elapsed_h: np.ndarray
    along_m: np.ndarray
    x: np.ndarray
    y: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    action: list[str]
    battery_wh: np.ndarray
    solar_w: np.ndarray
    sun_visible: np.ndarray
    contact: np.ndarray

    def vertex_utc(self, route: Route) -> list[str]:
        """UTC of the rover's first arrival at each route vertex."""
        from qamar.time import tdb_s_to_utc

        i = np.clip(np.searchsorted(self.along_m, route.distance_m, side="left"), 1, self.along_m.size - 1)
        a0, a1 = self.along_m[i - 1], self.along_m[i]
        share = np.clip((route.distance_m - a0) / np.where(a1 > a0, a1 - a0, 1.0), 0.0, 1.0)
        t = self.t_tdb_s[i - 1] + share * (self.t_tdb_s[i] - self.t_tdb_s[i - 1])
        t[0] = self.t_tdb_s[0]
        return [tdb_s_to_utc(float(v), 0) for v in t]

    def write_csv(self, path: str | Path) -> Path:
        """route.csv: one row per event (columns as the attributes, UTC first)."""
        with open(path, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["utc", "elapsed_h", "along_m", "x_m", "y_m", "lat_deg", "lon_deg", "row", "col", "action",
                          "battery_wh", "solar_w", "sun_visible", "contact"])
            for i in range(self.elapsed_h.size):
                out.writerow([self.utc[i], f"{self.elapsed_h[i]:.4f}", f"{self.along_m[i]:.3f}", f"{self.x[i]:.3f}",
                              f"{self.y[i]:.3f}", f"{self.lat_deg[i]:.8f}", f"{self.lon_deg[i]:.8f}",
                              int(self.rows[i]), int(self.cols[i]), self.action[i], f"{self.battery_wh[i]:.3f}",
                              f"{self.solar_w[i]:.3f}", int(self.sun_visible[i]), int(self.contact[i])])
        return Path(path)


def route_events(traverse: Traverse, dem: Dem) -> RouteEvents:
    """The feasible plan's events placed on its route (module docstring)."""
    from qamar.time import tdb_s_to_utc

    result = traverse.result
    s, route = result.schedule, result.route
    driven_h = np.concatenate(([0.0], np.cumsum(np.where(np.array(s.action[1:]) == "drive", np.diff(s.t_h), 0.0))))
    along_m = driven_h / driven_h[-1] * route.length_m if driven_h[-1] > 0 else np.zeros_like(driven_h)
    x = np.interp(along_m, route.distance_m, route.x)
    y = np.interp(along_m, route.distance_m, route.y)
    lat, lon = xy_to_lat_lon(x, y, dem)
    t_tdb_s = traverse.light.t0_tdb_s + s.t_h * 3600.0
    return RouteEvents(t_tdb_s, [tdb_s_to_utc(float(t), 0) for t in t_tdb_s], s.t_h - s.t_h[0], along_m, x, y,
                       np.asarray(lat, float), np.asarray(lon, float), s.rows, s.cols, list(s.action), s.battery_wh,
                       s.solar_w, s.solar_w > 0.0, s.contact)


def map_points(mission: RoverMission, dem: Dem) -> list[tuple[str, str, float, float]]:
    """(kind, name, x, y) of the start, targets, goal and lander in the DEM's map units."""
    spec = mission.traverse
    named = [("start", "start", spec.start)]
    named += [("target", f"target {i + 1}", p) for i, p in enumerate(spec.targets)]
    named += [("goal", "goal", spec.goal)]
    if mission.lander is not None:
        named.append(("lander", "lander", mission.lander))
    out = []
    for kind, name, p in named:
        x, y = lat_lon_to_xy(p.lat_deg, p.lon_deg, dem)
        out.append((kind, name, float(x), float(y)))
    return out

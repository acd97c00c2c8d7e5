"""Where a camera looks on the Moon: footprints, image-centre geometry, points in view.

Everything is in MOON_ME (the frame of topography and named features), km, on the 1737.4 km
sphere unless a DEM is given. For each epoch the spacecraft state comes from a
:class:`~qamar.orbit.trajectory.Trajectory` and the Sun from DE440 (geometric, from the Moon's
centre: the parallax of the Sun across the Moon, 1737 km / 1 AU = 0.0007 deg, is neglected in
the light angles).

- A **footprint** is the set of surface points whose line of sight to the spacecraft is
  unobstructed by the sphere and lies inside the camera's pyramid. Its outline is traced by rays
  along the detector edge intersected with the sphere; a ray that misses the Moon is replaced
  by the limb point in the plane of that ray and the nadir (the tangent point of the line of
  sight), so a footprint that reaches past the limb is closed by the limb.
- On a DEM (:class:`~qamar.surface.terrain.Dem`: heights above its reference sphere, an
  analytic lunar projection) the outline rays and the boresight are marched through the shell
  between the DEM's lowest and highest terrain, in steps of half a DEM pixel, sampling the
  bilinear terrain; the first sample below it is refined by bisection to 0.1 mm. Terrain
  outside the DEM's extent is unknown: a ray that meets no DEM terrain keeps its sphere (or
  limb) point, and the footprint says so (``on_dem`` False). A ray whose march crosses a DEM
  pixel without data raises DataFormatError (fill or crop the DEM).
- **GSD** is slant range x IFOV (the pixel's size across the line of sight); the along-tilt
  size is larger by 1/cos(emission).
- **Angles** at a surface point: incidence (Sun from the local vertical), emission (spacecraft
  from the local vertical), phase (Sun-point-spacecraft); Sun elevation = 90 - incidence for the
  Sun's centre over the sphere's horizon. The local vertical is the sphere's radial direction,
  also on a DEM (terrain slopes are not applied).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from qamar.constants import MOON_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.errors import DataFormatError
from qamar.frames import icrf_to_me, lat_lon_deg
from qamar.payload.camera import Camera, PointingError, lvlh_axes, tracking_axes
from qamar.surface.terrain import Dem, unit_to_map
from qamar.time import tdb_s_to_utc


@dataclass(frozen=True)
class Geometry:
    """Spacecraft and Sun at epochs, MOON_ME axes.

    ``r_me_km`` (n, 3) spacecraft position wrt the Moon's centre; ``v_me_km_s`` (n, 3) its
    inertial (ICRF) velocity expressed on ME axes (what the LVLH attitude uses); ``sun_me_km``
    (n, 3) the Sun wrt the Moon's centre.
    """

    t_tdb_s: np.ndarray
    r_me_km: np.ndarray
    v_me_km_s: np.ndarray
    sun_me_km: np.ndarray

    def __len__(self) -> int:
        return len(self.t_tdb_s)


def geometry(trajectory, t_tdb_s: np.ndarray, ephemeris: Ephemeris | None = None) -> Geometry:
    """Spacecraft state and Sun position on MOON_ME axes at TDB seconds past J2000.

    ``trajectory`` is a :class:`~qamar.orbit.trajectory.Trajectory`. Raises
    EpochOutOfRangeError for epochs outside the trajectory or the DE440 kernels.
    """
    eph = ephemeris or Ephemeris.default()
    t = np.atleast_1d(np.asarray(t_tdb_s, dtype=float))
    states = np.atleast_2d(trajectory.state_at(t))
    to_me = icrf_to_me(t, eph)
    sun_icrf = np.atleast_2d(eph.sun_wrt_moon_icrf_km(t))
    rotate = lambda m, v: np.einsum("nij,nj->ni", m, v)
    return Geometry(t, rotate(to_me, states[:, :3]), rotate(to_me, states[:, 3:]), rotate(to_me, sun_icrf))


@dataclass(frozen=True)
class Tracking:
    """Target tracking: the spacecraft turns so that ``boresight_sc`` points at ``target_me_km``."""

    target_me_km: np.ndarray
    boresight_sc: np.ndarray

    @classmethod
    def of(cls, camera: Camera, target_me_km: np.ndarray) -> Tracking:
        """Track ``target_me_km`` (ME, km) with ``camera``'s boresight."""
        return cls(np.asarray(target_me_km, float), camera.boresight_sc)


def spacecraft_axes(geom: Geometry, tracking: Tracking | None = None) -> np.ndarray:
    """Spacecraft axes (columns X, Y, Z) on MOON_ME axes, (n, 3, 3): LVLH, or turned to track."""
    if tracking is None:
        return lvlh_axes(geom.r_me_km, geom.v_me_km_s)
    return tracking_axes(geom.r_me_km, geom.v_me_km_s, tracking.target_me_km, tracking.boresight_sc)


def camera_axes(camera: Camera, geom: Geometry, tracking: Tracking | None = None) -> np.ndarray:
    """Camera axes (columns X, Y, boresight Z) on MOON_ME axes at each epoch, (n, 3, 3)."""
    return spacecraft_axes(geom, tracking) @ camera.sc_to_cam


# --- compiled geometry shared by footprints, opportunities and coverage -------------------------


@njit(cache=True, fastmath=False, nogil=True)
def _ray_hit(r, d, radius):
    """Distance along unit ray d from r to the near intersection with the sphere; -1 if it misses."""
    b = r[0] * d[0] + r[1] * d[1] + r[2] * d[2]
    c = r[0] * r[0] + r[1] * r[1] + r[2] * r[2] - radius * radius
    disc = b * b - c
    if disc < 0.0:
        return -1.0
    s = -b - np.sqrt(disc)
    return s if s >= 0.0 else -1.0


@njit(cache=True, fastmath=False, nogil=True)
def _outline(r, axes, rays_cam, radius, out, hit):
    """Outline points (km) of the footprint of camera ``axes`` from ``r`` into out (m, 3).

    hit[k] is True where ray k meets the sphere, False where its limb point was taken.
    """
    rn = np.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    d = np.empty(3)
    for k in range(rays_cam.shape[0]):
        for i in range(3):
            d[i] = axes[i, 0] * rays_cam[k, 0] + axes[i, 1] * rays_cam[k, 1] + axes[i, 2] * rays_cam[k, 2]
        s = _ray_hit(r, d, radius)
        if s >= 0.0:
            hit[k] = True
            for i in range(3):
                out[k, i] = r[i] + s * d[i]
        else:
            # Tangent point of the line of sight in the plane of r and d (the limb).
            hit[k] = False
            dr = (d[0] * r[0] + d[1] * r[1] + d[2] * r[2]) / rn
            u0, u1, u2 = d[0] - dr * r[0] / rn, d[1] - dr * r[1] / rn, d[2] - dr * r[2] / rn
            un = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
            if un == 0.0:  # looking straight up: any limb direction; take the camera X axis
                u0, u1, u2 = axes[0, 0], axes[1, 0], axes[2, 0]
                un = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
            a = radius * radius / rn
            b = radius * np.sqrt(1.0 - (radius / rn) ** 2)
            out[k, 0] = a * r[0] / rn + b * u0 / un
            out[k, 1] = a * r[1] / rn + b * u1 / un
            out[k, 2] = a * r[2] / rn + b * u2 / un


@njit(cache=True, fastmath=False, nogil=True)
def _in_view(r, axes, tan_x, tan_y, p):
    """True if surface point p (km, on the sphere) is in the camera pyramid and faces the spacecraft."""
    d0, d1, d2 = p[0] - r[0], p[1] - r[1], p[2] - r[2]
    # Seen from above the horizon: the line of sight leaves p outward, p . (r - p) > 0.
    if -(p[0] * d0 + p[1] * d1 + p[2] * d2) <= 0.0:
        return False
    z = axes[0, 2] * d0 + axes[1, 2] * d1 + axes[2, 2] * d2
    if z <= 0.0:
        return False
    x = axes[0, 0] * d0 + axes[1, 0] * d1 + axes[2, 0] * d2
    y = axes[0, 1] * d0 + axes[1, 1] * d1 + axes[2, 1] * d2
    return abs(x) <= tan_x * z and abs(y) <= tan_y * z


@njit(cache=True, fastmath=False, nogil=True)
def points_in_view(r_km, axes, tan_x, tan_y, points_km):
    """(n, k) flags: point k (km, fixed or (n, k, 3)) in the pyramid of epoch n and facing it.

    ``r_km`` (n, 3), ``axes`` (n, 3, 3) camera axes, ``points_km`` (k, 3), same frame.
    """
    n, k = r_km.shape[0], points_km.shape[0]
    out = np.zeros((n, k), dtype=np.bool_)
    for i in range(n):
        for j in range(k):
            out[i, j] = _in_view(r_km[i], axes[i], tan_x, tan_y, points_km[j])
    return out


def ray_sphere_km(r_km: np.ndarray, d: np.ndarray, radius_km: float = MOON_RADIUS_KM) -> np.ndarray:
    """Distance (km) along unit rays d (n, 3) from r (n, 3) to the sphere; NaN where they miss."""
    b = np.sum(r_km * d, axis=-1)
    disc = b * b - (np.sum(r_km * r_km, axis=-1) - radius_km**2)
    s = -b - np.sqrt(np.where(disc >= 0.0, disc, np.nan))
    return np.where(s >= 0.0, s, np.nan)


def _boresight_points_km(geom: Geometry, axes: np.ndarray) -> np.ndarray:
    """Where each epoch's boresight meets the sphere (n, 3), ME km; NaN rows where it misses."""
    d = axes[:, :, 2]
    return geom.r_me_km + ray_sphere_km(geom.r_me_km, d)[:, None] * d


# --- image-centre geometry ------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """Geometry of surface points seen at epochs: arrays (n,), NaN where nothing is seen.

    lat/lon planetocentric MOON_ME (deg); ``range_km`` slant range; ``gsd_m`` range x IFOV;
    angles in degrees (see the module docstring).
    """

    t_tdb_s: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    range_km: np.ndarray
    gsd_m: np.ndarray
    incidence_deg: np.ndarray
    emission_deg: np.ndarray
    phase_deg: np.ndarray
    sun_elev_deg: np.ndarray


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def surface_view(camera: Camera, geom: Geometry, p_me_km: np.ndarray) -> View:
    """Light and viewing geometry of surface points ``p_me_km`` ((n, 3) or (3,), ME km) at the epochs.

    No visibility test here: see :func:`points_in_view`. NaN rows in ``p_me_km`` give NaN.
    """
    p = np.broadcast_to(np.asarray(p_me_km, float), geom.r_me_km.shape)
    up = p / np.linalg.norm(p, axis=-1, keepdims=True)
    to_sc = geom.r_me_km - p
    to_sun = geom.sun_me_km - p
    rng = np.linalg.norm(to_sc, axis=-1)
    incidence = _angle_deg(up, to_sun)
    lat, lon = lat_lon_deg(p)
    return View(geom.t_tdb_s, np.asarray(lat), np.asarray(lon), rng, camera.gsd_m(rng), incidence,
                _angle_deg(up, to_sc), _angle_deg(to_sun, to_sc), 90.0 - incidence)


def boresight_view(camera: Camera, geom: Geometry, axes: np.ndarray | None = None) -> View:
    """Geometry at the image centre (boresight on the sphere) at each epoch; NaN where it misses.

    ``axes``: camera axes (n, 3, 3) on ME axes, default nadir LVLH mounting (:func:`camera_axes`).
    """
    axes = camera_axes(camera, geom) if axes is None else axes
    return surface_view(camera, geom, _boresight_points_km(geom, axes))


# --- footprints -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """The outline of one image on the Moon (MOON_ME) and the geometry at its centre.

    ``lat_deg``/``lon_deg`` (m,): outline, counter-clockwise seen from the spacecraft, starting
    at the detector corner (-x, -y); ``on_surface`` (m,): False where the ray missed the Moon and
    the limb point stands in; ``height_m`` (m,): height of each outline point over the 1737.4 km
    sphere (0 on the sphere); ``on_dem`` (m,): True where the point is on the DEM's terrain,
    False where the sphere (or the limb) stood in because the ray met no DEM terrain (always
    False without a DEM). ``centre`` is the image-centre :class:`View` (one epoch), on the DEM
    if ``centre_on_dem``, at height ``centre_height_m``.
    """

    camera: str
    t_tdb_s: float
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    on_surface: np.ndarray
    height_m: np.ndarray
    on_dem: np.ndarray
    centre: View
    centre_height_m: float
    centre_on_dem: bool

    @property
    def utc(self) -> str:
        """Epoch as ISO-8601 UTC."""
        return tdb_s_to_utc(self.t_tdb_s)

    @property
    def reaches_limb(self) -> bool:
        """True if part of the field of view looks past the Moon's limb."""
        return not bool(np.all(self.on_surface))

    def width_km(self) -> tuple[float, float]:
        """Great-circle distances (km) between the midpoints of opposite edges: (across X, across Y).

        Measured on the 1737.4 km sphere; ``per_edge`` must be even for exact edge midpoints.
        """
        m = len(self.lat_deg) // 4
        h = m // 2
        mid = lambda k: (self.lat_deg[k], self.lon_deg[k])
        # Edges: 0 (-y side), 1 (+x), 2 (+y), 3 (-x); midpoint of edge e at index e*m + h.
        return (_great_circle_km(*mid(3 * m + h), *mid(m + h)), _great_circle_km(*mid(h), *mid(2 * m + h)))


def _great_circle_km(lat1, lon1, lat2, lon2, radius_km: float = MOON_RADIUS_KM) -> float:
    p = np.radians([lat1, lon1, lat2, lon2])
    a = np.sin((p[2] - p[0]) / 2) ** 2 + np.cos(p[0]) * np.cos(p[2]) * np.sin((p[3] - p[1]) / 2) ** 2
    return float(2 * radius_km * np.arcsin(np.sqrt(min(1.0, a))))


@dataclass(frozen=True)
class _Terrain:
    """A DEM as the ray-march kernel takes it (km; see :func:`_march`)."""

    heights_km: np.ndarray
    grid: np.ndarray
    projection: np.ndarray
    radius_km: float
    shell_km: tuple[float, float]
    step_km: float

    @classmethod
    def of(cls, dem: Dem) -> _Terrain:
        """Raises DataFormatError for a DEM without data or without an analytic projection."""
        if dem.projection.kind == "other":
            raise DataFormatError(
                f"footprints on a DEM need a polar stereographic or equirectangular DEM, not {dem.crs.to_string()}; "
                "warp it with gdalwarp (e.g. -t_srs '+proj=stere +lat_0=-90 +lon_0=0 +k=1 +R=1737400 +units=m')")
        if dem.nodata_count == dem.elevation_m.size:
            raise DataFormatError("the DEM has no data at all: check the file and its nodata value")
        t = dem.transform
        radius_km = dem.radius_m / 1e3
        lo_km, hi_km = float(np.nanmin(dem.elevation_m)) / 1e3, float(np.nanmax(dem.elevation_m)) / 1e3
        return cls(np.ascontiguousarray(dem.elevation_m, dtype=np.float64) / 1e3,
                   np.array([1.0 / t.a, -t.c / t.a - 0.5, 1.0 / t.e, -t.f / t.e - 0.5]), dem.projection.params,
                   radius_km, (radius_km + lo_km - 1e-6, radius_km + hi_km + 1e-6), 0.5 * dem.pixel_size_m / 1e3)

    def hit(self, r_km: np.ndarray, d: np.ndarray, utc: str) -> np.ndarray | None:
        """First point (km, ME) where the unit ray d from r meets the DEM's terrain; None if it meets none.

        Raises DataFormatError if the march crosses a pixel without data (``utc``: for the message).
        """
        out = np.empty(3)
        status = _march(r_km, d, self.heights_km, self.grid, self.projection, self.radius_km, *self.shell_km,
                        self.step_km, out)
        if status < 0:
            lat, lon = lat_lon_deg(out)
            raise DataFormatError(
                f"the line of sight at {utc} crosses DEM pixels without data near lat {float(lat):.4f}, "
                f"lon {float(lon):.4f} deg: fill the DEM's holes (gdal_fillnodata.py) or crop it to the covered area")
        return out if status > 0 else None


@njit(cache=True, fastmath=False, nogil=True)
def _terrain_height(p, heights, grid, projection):
    """(status, height km) of the DEM below point p (km): status 1 data, 0 outside the DEM, -1 no data.

    Bilinear in the pixel centres (the DEM's hull); ``grid`` = (1/a, -c/a - 1/2, 1/e, -f/e - 1/2).
    """
    rn = math.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2])
    x, y = unit_to_map(p[0] / rn, p[1] / rn, p[2] / rn, projection)
    fc = x * grid[0] + grid[1]
    fr = y * grid[2] + grid[3]
    ny, nx = heights.shape
    if not (fr >= 0.0 and fc >= 0.0 and fr <= ny - 1 and fc <= nx - 1):
        return 0, 0.0
    i, j = min(int(fr), ny - 2), min(int(fc), nx - 2)
    wr, wc = fr - i, fc - j
    top = heights[i, j] + wc * (heights[i, j + 1] - heights[i, j])
    bottom = heights[i + 1, j] + wc * (heights[i + 1, j + 1] - heights[i + 1, j])
    h = top + wr * (bottom - top)
    return (-1, 0.0) if math.isnan(h) else (1, h)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _probe(r, d, s, heights, grid, projection, radius, p):
    """Put r + s d (km) in p; 1 if it lies at or below the terrain, 0 above it or off the DEM,
    -1 over a pixel without data."""
    for k in range(3):
        p[k] = r[k] + s * d[k]
    status, h = _terrain_height(p, heights, grid, projection)
    if status > 0 and math.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) > radius + h:
        return 0
    return status


@njit(cache=True, fastmath=False, nogil=True)
def _march(r, d, heights, grid, projection, radius, r_lo, r_hi, step, out):
    """March the unit ray d from r (km) through the shell r_lo..r_hi (km) of the terrain.

    Returns 1 with the first terrain point in out (bisection to 1e-7 km), 0 if the ray meets no
    terrain of the DEM, -1 with the sample point in out if it crosses a pixel without data.
    """
    b = r[0] * d[0] + r[1] * d[1] + r[2] * d[2]
    rr = r[0] * r[0] + r[1] * r[1] + r[2] * r[2]
    disc_hi = b * b - (rr - r_hi * r_hi)
    if disc_hi < 0.0:
        return 0
    s = max(0.0, -b - math.sqrt(disc_hi))
    disc_lo = b * b - (rr - r_lo * r_lo)
    # Leave the shell into the inner sphere (the terrain is above it) or out through its far side.
    s_end = -b - math.sqrt(disc_lo) if disc_lo >= 0.0 else -b + math.sqrt(disc_hi)
    if s_end < s:
        return 0
    p = np.empty(3)
    s_prev = s
    while True:
        state = _probe(r, d, s, heights, grid, projection, radius, p)
        if state < 0:
            out[:] = p
            return -1
        if state > 0:
            lo, hi = s_prev, s
            while hi - lo > 1e-7:
                mid = 0.5 * (lo + hi)
                state = _probe(r, d, mid, heights, grid, projection, radius, p)
                if state < 0:
                    out[:] = p
                    return -1
                if state > 0:
                    hi = mid
                else:
                    lo = mid
            for k in range(3):
                out[k] = r[k] + hi * d[k]
            return 1
        if s >= s_end:
            return 0
        s_prev, s = s, min(s + step, s_end)


def footprints(
    camera: Camera,
    trajectory,
    t_tdb_s: float | np.ndarray,
    *,
    per_edge: int = 8,
    tracking: Tracking | None = None,
    dem: Dem | None = None,
    ephemeris: Ephemeris | None = None,
) -> list[Footprint]:
    """Footprints of ``camera`` at TDB epochs, on the 1737.4 km sphere or on ``dem``'s terrain.

    ``per_edge`` outline rays per detector side. On a DEM the outline points and the image
    centre are the first terrain points along the rays (see the module docstring); rays that
    meet no DEM terrain keep the sphere's points (``on_dem`` False). Raises
    EpochOutOfRangeError outside the trajectory or the kernels; DataFormatError for a DEM
    without an analytic projection, or a ray crossing its holes.
    """
    terrain = _Terrain.of(dem) if dem is not None else None
    geom = geometry(trajectory, t_tdb_s, ephemeris)
    axes = camera_axes(camera, geom, tracking)
    rays = camera.edge_directions(per_edge)
    centre_km = _boresight_points_km(geom, axes)
    centre_on_dem = np.zeros(len(geom), dtype=bool)
    outlines = []
    for i in range(len(geom)):
        pts = np.empty((len(rays), 3))
        hit = np.zeros(len(rays), dtype=np.bool_)
        _outline(geom.r_me_km[i], np.ascontiguousarray(axes[i]), rays, MOON_RADIUS_KM, pts, hit)
        on_dem = np.zeros(len(rays), dtype=bool)
        if terrain is not None:
            utc = tdb_s_to_utc(geom.t_tdb_s[i])
            for k, d in enumerate(rays @ axes[i].T):
                point = terrain.hit(geom.r_me_km[i], d, utc)
                if point is not None:
                    pts[k], hit[k], on_dem[k] = point, True, True
            point = terrain.hit(geom.r_me_km[i], axes[i, :, 2], utc)
            if point is not None:
                centre_km[i], centre_on_dem[i] = point, True
        outlines.append((pts, hit, on_dem))
    centre = surface_view(camera, geom, centre_km)
    centre_height_m = (np.linalg.norm(centre_km, axis=1) - MOON_RADIUS_KM) * 1e3
    out = []
    for i, (pts, hit, on_dem) in enumerate(outlines):
        lat, lon = lat_lon_deg(pts)
        height_m = np.where(on_dem, (np.linalg.norm(pts, axis=1) - MOON_RADIUS_KM) * 1e3, 0.0)
        one = View(*(np.asarray(getattr(centre, f))[i] for f in View.__dataclass_fields__))
        out.append(Footprint(camera.name, float(geom.t_tdb_s[i]), lat, lon, hit, height_m, on_dem, one,
                             float(centre_height_m[i]) if centre_on_dem[i] else 0.0, bool(centre_on_dem[i])))
    return out


def check_sees_moon(camera: Camera, trajectory) -> None:
    """Raise PointingError if ``camera`` (LVLH mount) can never see the Moon along ``trajectory``.

    The test uses the cone circumscribing the field of view: the camera sees nothing when its
    boresight is farther from nadir than the Moon's angular radius at the lowest altitude plus
    the half-diagonal of the field of view.
    """
    r_min_km = float(np.min(np.linalg.norm(trajectory.states_icrf[:, :3], axis=1)))
    moon_deg = float(np.degrees(np.arcsin(min(1.0, MOON_RADIUS_KM / r_min_km))))
    tx, ty = camera.tan_half_fov
    half_diag_deg = float(np.degrees(np.arctan(np.hypot(tx, ty))))
    off_deg = float(np.degrees(np.arccos(np.clip(camera.boresight_sc[2], -1.0, 1.0))))
    if off_deg - half_diag_deg >= moon_deg:
        raise PointingError(
            f"camera {camera.name!r} points {off_deg:.1f} deg off nadir with a {2 * half_diag_deg:.1f} deg "
            f"diagonal field of view, but the Moon spans only {moon_deg:.1f} deg from nadir even at the "
            f"lowest altitude ({r_min_km - MOON_RADIUS_KM:.0f} km): it never sees the Moon; reduce off_nadir_deg"
        )

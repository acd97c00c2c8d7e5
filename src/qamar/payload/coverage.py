"""Cumulative coverage of the Moon by footprints, on an equal-area HEALPix grid.

The grid is HEALPix in RING order (Gorski et al. 2005, ApJ 622, 759), MOON_ME planetocentric
latitude/longitude: ``12 nside^2`` pixels of equal area; ``nside = 512`` gives 3.1 M pixels of
0.115 deg (3.5 km on the Moon). A pixel counts as seen at an epoch when its centre is in the
footprint (pyramid of the camera, facing the spacecraft) and, optionally, lit within a Sun
elevation range and at a slant range whose GSD is under a limit.

Method. Every condition is a half-space ``a . X >= c`` for the unit vector X of a surface
point on the sphere (the four side planes of the camera pyramid, the horizon of the spacecraft,
the slant range, the Sun elevation bounds). On a HEALPix ring of height z, ``a . X`` is
``rho (a_x cos phi + a_y sin phi) + a_z z`` with ``rho = sqrt(1 - z^2)``, so each condition
holds on one arc of longitude, found with one arccos; the footprint on that ring is the
intersection of the arcs, and its pixels are an index range. Ranges go into a difference array
(+1 at the first pixel, -1 after the last) and one cumulative sum at the end gives, for every
pixel, the number of epochs it was seen. The work per epoch grows with the number of rings the
footprint spans, not with its area. Terrain shadowing is not modelled (sphere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import get_num_threads, njit, prange

from qamar.constants import MOON_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.io import atomic_write
from qamar.payload.camera import Camera
from qamar.payload.footprint import _in_view, _outline, camera_axes, geometry
from qamar.time import tdb_s_to_utc

DEFAULT_NSIDE = 512
_OUTLINE_PER_EDGE = 4
_MAX_ARCS = 32


def ring_tables(nside: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HEALPix RING-scheme rings, north to south: (z, pixels, first pixel index, phi offset).

    Ring i (1 .. 4 nside - 1) holds pixels with centres at height z_i and longitudes
    ``phi_k = 2 pi (k + offset_i) / pixels_i``, k = 0 .. pixels_i - 1 (Gorski et al. 2005,
    eqs. 4-9). Raises ValueError unless nside is a positive power of two.
    """
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside must be a power of two, got {nside}")
    i = np.arange(1, 4 * nside, dtype=np.int64)
    npix = 12 * nside * nside
    north, south = i < nside, i > 3 * nside
    j = np.where(south, 4 * nside - i, i)  # ring number counted from the nearer pole
    z = np.where(north | south, 1.0 - j**2 / (3.0 * nside**2), 4.0 / 3.0 - 2.0 * i / (3.0 * nside))
    z = np.where(south, -z, z)
    pixels = np.where(north | south, 4 * j, 4 * nside)
    first = np.where(north, 2 * j * (j - 1), 2 * nside * (nside - 1) + (i - nside) * 4 * nside)
    first = np.where(south, npix - 2 * j * (j + 1), first)
    offset = np.where(north | south, 0.5, 0.5 * ((i - nside + 1) % 2))
    return z, pixels, first, offset


def pixel_lat_lon(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and east longitude (deg, lon in [-180, 180)) of every RING pixel centre."""
    z, pixels, first, offset = ring_tables(nside)
    ring = np.repeat(np.arange(len(z)), pixels)
    k = np.arange(12 * nside * nside) - first[ring]
    lon = np.degrees(2.0 * np.pi * (k + offset[ring]) / pixels[ring])
    return np.degrees(np.arcsin(z[ring])), np.where(lon >= 180.0, lon - 360.0, lon)


def lat_lon_to_pixel(nside: int, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """RING pixel index containing each (lat, lon) in degrees (astropy-healpix)."""
    import astropy.units as u
    from astropy_healpix import lonlat_to_healpix

    lon = np.mod(np.asarray(lon_deg, float), 360.0)
    return lonlat_to_healpix(lon * u.deg, np.asarray(lat_deg, float) * u.deg, nside, order="ring")


@njit(cache=True, fastmath=False, nogil=True)
def _intersect_arc(lo, hi, count, start, width, new_lo, new_hi):
    """Intersect the arcs lo/hi[:count] (within [0, 2 pi]) with [start, start + width], start in [0, 2 pi)."""
    two_pi = 2.0 * math.pi
    end = start + width
    n = 0
    for piece in range(2):
        if piece == 0:
            a, b = start, min(end, two_pi)
        else:
            if end <= two_pi:
                break
            a, b = 0.0, end - two_pi
        for j in range(count):
            x, y = max(lo[j], a), min(hi[j], b)
            if x <= y and n < new_lo.shape[0]:
                new_lo[n] = x
                new_hi[n] = y
                n += 1
    for j in range(n):
        lo[j] = new_lo[j]
        hi[j] = new_hi[j]
    return n


@njit(cache=True, fastmath=False, nogil=True)
def _cap_z_range(ux, uy, uz, cos_radius):
    """(zmin, zmax) of the cap u . X >= cos_radius on the unit sphere (u unit); zmin > zmax if empty."""
    if cos_radius > 1.0:
        return 1.0, -1.0
    radius = math.acos(max(-1.0, cos_radius))
    colat = math.acos(max(-1.0, min(1.0, uz)))
    return math.cos(min(math.pi, colat + radius)), math.cos(max(0.0, colat - radius))


@njit(cache=True, fastmath=False, nogil=True)
def _footprint_rings(r, axes, sun, tan_x, tan_y, rays, radius, sin_lo, sin_hi, range_max, z_ring, rho_ring,
                     pixels, first, offset, diff, pts, hit, cons, lo, hi, tmp_lo, tmp_hi):
    """Add one footprint's pixel ranges to ``diff`` (see the module docstring)."""
    two_pi = 2.0 * math.pi
    rn = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    # Conditions a . X >= c on the unit sphere: pyramid sides n . (R X - r) >= 0, horizon and
    # slant range along r, Sun elevation bounds along the Sun direction. Stored per condition:
    # a_z, c, |a_xy|, atan2(a_y, a_x).
    nc = 0
    for sx, sy, t in ((1.0, 0.0, tan_x), (-1.0, 0.0, tan_x), (0.0, 1.0, tan_y), (0.0, -1.0, tan_y)):
        a0 = t * axes[0, 2] - sx * axes[0, 0] - sy * axes[0, 1]
        a1 = t * axes[1, 2] - sx * axes[1, 0] - sy * axes[1, 1]
        a2 = t * axes[2, 2] - sx * axes[2, 0] - sy * axes[2, 1]
        cons[nc, 0], cons[nc, 1] = a2, (a0 * r[0] + a1 * r[1] + a2 * r[2]) / radius
        cons[nc, 2], cons[nc, 3] = math.hypot(a0, a1), math.atan2(a1, a0)
        nc += 1
    horizon = radius / rn
    if range_max > 0.0:
        horizon = max(horizon, (radius * radius + rn * rn - range_max * range_max) / (2.0 * radius * rn))
    ux, uy, uz = r[0] / rn, r[1] / rn, r[2] / rn
    cons[nc, 0], cons[nc, 1], cons[nc, 2], cons[nc, 3] = uz, horizon, math.hypot(ux, uy), math.atan2(uy, ux)
    nc += 1
    zmin, zmax = _cap_z_range(ux, uy, uz, horizon)
    if sin_lo > -1.0:
        cons[nc, 0], cons[nc, 1], cons[nc, 2], cons[nc, 3] = sun[2], sin_lo, math.hypot(sun[0], sun[1]), math.atan2(sun[1], sun[0])
        nc += 1
        z0, z1 = _cap_z_range(sun[0], sun[1], sun[2], sin_lo)
        zmin, zmax = max(zmin, z0), min(zmax, z1)
    if sin_hi < 1.0:
        cons[nc, 0], cons[nc, 1], cons[nc, 2], cons[nc, 3] = -sun[2], -sin_hi, math.hypot(sun[0], sun[1]), math.atan2(-sun[1], -sun[0])
        nc += 1
        z0, z1 = _cap_z_range(-sun[0], -sun[1], -sun[2], -sin_hi)
        zmin, zmax = max(zmin, z0), min(zmax, z1)
    if zmin > zmax:
        return
    # Ring span: within the caps above, and within the outline's z range widened by the longest
    # outline step (the boundary between two outline points stays within that distance of them)
    # unless the view reaches the limb (then the horizon cap bounds it); to a pole if the pole is
    # in view.
    _outline(r, axes, rays, radius, pts, hit)
    m = pts.shape[0]
    all_hit = True
    for k in range(m):
        all_hit = all_hit and hit[k]
    if all_hit:
        z_lo, z_hi, step = 1.0, -1.0, 0.0
        for k in range(m):
            z = pts[k, 2] / radius
            z_lo, z_hi = min(z_lo, z), max(z_hi, z)
            k1 = (k + 1) % m
            dx, dy, dz = pts[k1, 0] - pts[k, 0], pts[k1, 1] - pts[k, 1], pts[k1, 2] - pts[k, 2]
            step = max(step, math.sqrt(dx * dx + dy * dy + dz * dz) / radius)
        pole = np.zeros(3)
        pole[2] = radius
        if _in_view(r, axes, tan_x, tan_y, pole):
            z_hi = 1.0
        pole[2] = -radius
        if _in_view(r, axes, tan_x, tan_y, pole):
            z_lo = -1.0
        zmin, zmax = max(zmin, z_lo - step), min(zmax, z_hi + step)
    # Rings are ordered by decreasing z.
    nr = z_ring.shape[0]
    i0 = np.searchsorted(-z_ring, -zmax)
    i1 = np.searchsorted(-z_ring, -zmin, side="right") - 1
    for i in range(i0, min(i1, nr - 1) + 1):
        z, rho = z_ring[i], rho_ring[i]
        lo[0], hi[0] = 0.0, two_pi
        count = 1
        for c in range(nc):
            amp = rho * cons[c, 2]
            rhs = cons[c, 1] - cons[c, 0] * z
            if amp <= 1e-15 * (abs(rhs) + 1.0):
                if rhs > 0.0:
                    count = 0
                    break
                continue
            q = rhs / amp
            if q <= -1.0:
                continue
            if q > 1.0:
                count = 0
                break
            half = math.acos(q)
            start = cons[c, 3] - half
            if start < 0.0:
                start += two_pi
                if start < 0.0:
                    start += two_pi
            count = _intersect_arc(lo, hi, count, start, 2.0 * half, tmp_lo, tmp_hi)
            if count == 0:
                break
        n_ring = pixels[i]
        scale = n_ring / two_pi
        for j in range(count):
            k0 = max(0, int(math.ceil(lo[j] * scale - offset[i])))
            k1 = min(n_ring - 1, int(math.floor(hi[j] * scale - offset[i])))
            if k0 <= k1:
                diff[first[i] + k0] += 1
                diff[first[i] + k1 + 1] -= 1


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _accumulate(r_all, axes_all, sun_all, tan_x, tan_y, rays, radius, sin_lo, sin_hi, range_max,
                z_ring, rho_ring, pixels, first, offset, diff):
    """Footprints of all epochs into the per-thread difference arrays diff (threads, npix + 1)."""
    threads = diff.shape[0]
    n = r_all.shape[0]
    per = (n + threads - 1) // threads
    for t in prange(threads):
        m = rays.shape[0]
        pts = np.empty((m, 3))
        hit = np.zeros(m, dtype=np.bool_)
        cons = np.empty((8, 4))
        lo, hi = np.empty(_MAX_ARCS), np.empty(_MAX_ARCS)
        tmp_lo, tmp_hi = np.empty(_MAX_ARCS), np.empty(_MAX_ARCS)
        for i in range(t * per, min(n, (t + 1) * per)):
            _footprint_rings(r_all[i], axes_all[i], sun_all[i], tan_x, tan_y, rays, radius, sin_lo, sin_hi,
                             range_max, z_ring, rho_ring, pixels, first, offset, diff[t], pts, hit, cons, lo, hi,
                             tmp_lo, tmp_hi)


@dataclass
class CoverageMap:
    """Epoch counts per HEALPix RING pixel, per camera, over a sampled span.

    ``counts[name]`` (12 nside^2,) int32: epochs (every ``step_s``) at which the pixel centre was
    in that camera's footprint under the conditions; ``sun_elev_deg``/``max_gsd_m``: the
    conditions (None: not applied).
    """

    nside: int
    step_s: float
    start_tdb_s: float
    stop_tdb_s: float
    epochs: int
    counts: dict[str, np.ndarray]
    sun_elev_deg: tuple[float, float] | None = None
    max_gsd_m: float | None = None
    _lat_lon: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def total(self) -> np.ndarray:
        """Epoch counts summed over the cameras."""
        return np.sum(list(self.counts.values()), axis=0)

    def covered(self, camera: str | None = None) -> np.ndarray:
        """Boolean map: seen at least once (by ``camera``, or by any)."""
        return (self.counts[camera] if camera else self.total) > 0

    def hours_seen(self, camera: str | None = None) -> np.ndarray:
        """Time each pixel spent in view (h), sampled every ``step_s``."""
        return (self.counts[camera] if camera else self.total) * (self.step_s / 3600.0)

    def lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre latitude and longitude (deg), computed once."""
        if self._lat_lon is None:
            self._lat_lon = pixel_lat_lon(self.nside)
        return self._lat_lon

    def fraction(self, region=None, camera: str | None = None) -> float:
        """Fraction (0..1) of the region's area seen: the whole Moon if ``region`` is None.

        ``region`` has ``contains(lat_deg, lon_deg) -> bool array`` (a
        :class:`~qamar.payload.targets.Target` with an area). Raises ValueError for a region
        smaller than one pixel (no pixel centre inside).
        """
        seen = self.covered(camera)
        if region is None:
            return float(np.mean(seen))
        inside = region.contains(*self.lat_lon())
        if not np.any(inside):
            raise ValueError(f"{getattr(region, 'name', 'the region')} holds no pixel centre at nside "
                             f"{self.nside}; use a larger region or a larger nside")
        return float(np.mean(seen[inside]))

    def summary(self, regions=()) -> dict:
        """JSON-ready percentages: whole Moon per camera and combined, and each region combined."""
        return {
            "start_utc": tdb_s_to_utc(self.start_tdb_s),
            "stop_utc": tdb_s_to_utc(self.stop_tdb_s),
            "step_s": self.step_s,
            "epochs": self.epochs,
            "nside": self.nside,
            "pixel_km": float(np.sqrt(4 * np.pi / (12 * self.nside**2)) * MOON_RADIUS_KM),
            "sun_elev_deg": list(self.sun_elev_deg) if self.sun_elev_deg else None,
            "max_gsd_m": self.max_gsd_m,
            "covered_pct": 100.0 * self.fraction(),
            "covered_pct_by_camera": {name: 100.0 * self.fraction(camera=name) for name in self.counts},
            "regions_pct": {region.name: 100.0 * self.fraction(region) for region in regions},
        }

    def to_fits(self, path: str | Path) -> Path:
        """Write the maps as a HEALPix FITS binary table (one column of epoch counts per camera).

        Header: PIXTYPE HEALPIX, ORDERING RING, NSIDE, COORDSYS 'MOON_ME' plus the span and
        conditions, readable by healpy/astropy-healpix. Written atomically.
        """
        from astropy.io import fits

        columns = [fits.Column(name=name[:68], format="J", array=counts) for name, counts in self.counts.items()]
        hdu = fits.BinTableHDU.from_columns(columns)
        cards = {
            "PIXTYPE": "HEALPIX", "ORDERING": "RING", "NSIDE": self.nside, "INDXSCHM": "IMPLICIT",
            "FIRSTPIX": 0, "LASTPIX": 12 * self.nside**2 - 1, "COORDSYS": "MOON_ME",
            "STEP_S": self.step_s, "START": tdb_s_to_utc(self.start_tdb_s), "STOP": tdb_s_to_utc(self.stop_tdb_s),
            "SUNELMIN": self.sun_elev_deg[0] if self.sun_elev_deg else "none",
            "SUNELMAX": self.sun_elev_deg[1] if self.sun_elev_deg else "none",
            "MAXGSDM": self.max_gsd_m if self.max_gsd_m else "none",
        }
        for key, value in cards.items():
            hdu.header[key] = value
        with atomic_write(path, binary=True) as stream:
            hdu.writeto(stream)
        return Path(path)


def sample_epochs(trajectory, step_s: float, start_tdb_s: float | None = None, stop_tdb_s: float | None = None) -> np.ndarray:
    """Epochs every ``step_s`` from start (default: the trajectory's) to before stop.

    Raises ValueError for a non-positive step or an empty span.
    """
    start = trajectory.start_tdb_s if start_tdb_s is None else start_tdb_s
    stop = trajectory.end_tdb_s if stop_tdb_s is None else stop_tdb_s
    if not step_s > 0:
        raise ValueError(f"the sampling step must be positive, got {step_s}")
    if not stop > start:
        raise ValueError(f"the span is empty: stop {tdb_s_to_utc(stop)} is not after start {tdb_s_to_utc(start)}")
    return start + step_s * np.arange(int(np.ceil((stop - start) / step_s)))


def coverage(
    trajectory,
    cameras: list[Camera] | tuple[Camera, ...],
    *,
    step_s: float = 10.0,
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
    nside: int = DEFAULT_NSIDE,
    sun_elev_deg: tuple[float, float] | None = None,
    max_gsd_m: float | None = None,
    chunk: int = 200_000,
    ephemeris: Ephemeris | None = None,
) -> CoverageMap:
    """Coverage of nadir-LVLH-mounted ``cameras`` along ``trajectory``, sampled every ``step_s``.

    ``sun_elev_deg`` (lo, hi): count a pixel only when the Sun's centre is between those
    elevations there; ``max_gsd_m``: only where slant range x IFOV is at most that. Raises
    ValueError for a bad step, span or nside; EpochOutOfRangeError outside the trajectory.
    """
    t_all = sample_epochs(trajectory, step_s, start_tdb_s, stop_tdb_s)
    z, pixels, first, offset = ring_tables(nside)
    rho = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    sin_lo, sin_hi = (np.sin(np.radians(sun_elev_deg[0])), np.sin(np.radians(sun_elev_deg[1]))) if sun_elev_deg else (-2.0, 2.0)
    threads = get_num_threads()
    diffs = {cam.name: np.zeros((threads, 12 * nside * nside + 1), dtype=np.int32) for cam in cameras}
    for lo in range(0, len(t_all), chunk):
        geom = geometry(trajectory, t_all[lo : lo + chunk], ephemeris)
        sun = geom.sun_me_km / np.linalg.norm(geom.sun_me_km, axis=1, keepdims=True)
        for cam in cameras:
            axes = np.ascontiguousarray(camera_axes(cam, geom))
            range_max = max_gsd_m / cam.ifov_rad / 1e3 if max_gsd_m else -1.0
            tx, ty = cam.tan_half_fov
            _accumulate(np.ascontiguousarray(geom.r_me_km), axes, np.ascontiguousarray(sun), tx, ty,
                        cam.edge_directions(_OUTLINE_PER_EDGE), MOON_RADIUS_KM, sin_lo, sin_hi, range_max,
                        z, rho, pixels, first, offset, diffs[cam.name])
    counts = {name: np.cumsum(d.sum(axis=0, dtype=np.int64)[:-1]).astype(np.int32) for name, d in diffs.items()}
    return CoverageMap(nside, float(step_s), float(t_all[0]), float(t_all[-1]), len(t_all), counts,
                       tuple(sun_elev_deg) if sun_elev_deg else None, max_gsd_m)

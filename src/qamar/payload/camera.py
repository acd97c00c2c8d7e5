"""Pinhole cameras, their mounting on the spacecraft, and the spacecraft attitude.

Frames
------
- **Spacecraft frame (LVLH, nadir pointing)**: +Z towards the Moon's centre (nadir), +Y
  opposite the orbit angular momentum r x v, +X = Y x Z (along the velocity for a circular
  orbit). This is the CCSDS local-vertical/local-horizontal convention (CCSDS 500.0-G-4,
  sec. 4.3.2). r and v are the Moon-centred inertial (ICRF) position and velocity; the axes are
  then rotated to MOON_ME with the position (a rotation keeps cross products), so a nadir camera
  looks at the sub-spacecraft point.
- **Camera frame**: +Z along the boresight, +X along the detector rows (columns index), +Y
  along the detector columns (rows index). A camera is mounted by tilting +Z_sc by
  ``off_nadir_deg`` towards the spacecraft direction ``azimuth_deg`` (0 = +X_sc, 90 = +Y_sc)
  with the smallest rotation, then rolling by ``roll_deg`` about the boresight. A zero mount is
  a nadir camera whose rows run along-track.
- **Target tracking**: the whole spacecraft turns by the smallest rotation that puts one
  camera's boresight on a surface point; every camera turns with it.

Optics (pinhole): instantaneous field of view ``ifov = pitch / focal``; half-angles
``atan(n * pitch / (2 f))`` across each detector axis. The scenario block :class:`PayloadSpec`
states the optics and storage; unpublished values are assumptions the scenario must list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qamar.errors import QamarError


class PointingError(QamarError):
    """A camera pointing that never sees the Moon, or a tracking target it cannot point at."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraSpec(_Strict):
    """One camera in a scenario: detector, optics, mounting and image size on board."""

    name: str
    pixels: tuple[int, int] = Field(default=(1024, 1024), description="detector columns (x) and rows (y)")
    pixel_pitch_um: float = Field(gt=0)
    focal_length_mm: float | None = Field(default=None, gt=0)
    fov_deg: float | None = Field(default=None, gt=0, lt=180, description="full field of view across the columns")
    off_nadir_deg: float = Field(default=0.0, ge=0, le=180)
    azimuth_deg: float = Field(default=0.0, description="tilt direction: 0 = +X (along-track), 90 = +Y")
    roll_deg: float = 0.0
    bits_per_pixel: int = Field(default=8, ge=1, le=32)
    compression_ratio: float = Field(default=1.0, ge=1.0, description="raw bits / stored bits")

    @model_validator(mode="after")
    def _one_optics(self) -> CameraSpec:
        if (self.focal_length_mm is None) == (self.fov_deg is None):
            raise ValueError(f"camera {self.name!r}: give exactly one of focal_length_mm or fov_deg")
        if min(self.pixels) < 1:
            raise ValueError(f"camera {self.name!r}: pixels must be two positive numbers (columns, rows)")
        return self


class PayloadSpec(_Strict):
    """The imaging payload of a scenario: cameras, on-board storage and the light wanted."""

    cameras: tuple[CameraSpec, ...] = Field(min_length=1)
    storage_mbit: float = Field(gt=0, description="on-board image storage, 1 Mbit = 1e6 bit")
    sun_elev_deg: tuple[float, float] = Field(default=(5.0, 60.0), description="good light: Sun elevation range")
    targets: tuple[str, ...] = Field(default=(), description="IAU feature names or 'LAT,LON' the report plans images of")
    coverage_days: float = Field(default=30.0, gt=0, description="span of the report's coverage maps, from the epoch")

    @model_validator(mode="after")
    def _checks(self) -> PayloadSpec:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must differ, got {names}")
        lo, hi = self.sun_elev_deg
        if not -90.0 <= lo < hi <= 90.0:
            raise ValueError(f"sun_elev_deg {self.sun_elev_deg} must be an increasing pair within -90..90")
        return self


@dataclass(frozen=True)
class Camera:
    """A pinhole camera mounted on the spacecraft.

    ``sc_to_cam``: 3x3 matrix whose columns are the camera X, Y, Z (boresight) axes in the
    spacecraft frame. Build one with :meth:`from_spec` or :func:`camera`.
    """

    name: str
    columns: int
    rows: int
    pixel_pitch_m: float
    focal_length_m: float
    sc_to_cam: np.ndarray
    image_bits: float

    @classmethod
    def from_spec(cls, spec: CameraSpec) -> Camera:
        """The camera a scenario's :class:`CameraSpec` describes."""
        pitch_m = spec.pixel_pitch_um * 1e-6
        cols, rows = spec.pixels
        if spec.focal_length_mm is not None:
            focal_m = spec.focal_length_mm * 1e-3
        else:
            focal_m = cols * pitch_m / (2.0 * np.tan(np.radians(spec.fov_deg) / 2.0))
        bits = cols * rows * spec.bits_per_pixel / spec.compression_ratio
        mount = mount_matrix(spec.off_nadir_deg, spec.azimuth_deg, spec.roll_deg)
        return cls(spec.name, cols, rows, pitch_m, focal_m, mount, float(bits))

    @property
    def ifov_rad(self) -> float:
        """Instantaneous field of view of one pixel (rad): pitch / focal length."""
        return self.pixel_pitch_m / self.focal_length_m

    @property
    def tan_half_fov(self) -> tuple[float, float]:
        """Tangents of the half field of view across the columns (X) and the rows (Y)."""
        return (self.columns * self.pixel_pitch_m / (2.0 * self.focal_length_m),
                self.rows * self.pixel_pitch_m / (2.0 * self.focal_length_m))

    @property
    def fov_deg(self) -> tuple[float, float]:
        """Full field of view (deg) across the columns (X) and the rows (Y)."""
        tx, ty = self.tan_half_fov
        return float(np.degrees(2 * np.arctan(tx))), float(np.degrees(2 * np.arctan(ty)))

    @property
    def boresight_sc(self) -> np.ndarray:
        """Boresight unit vector in the spacecraft frame."""
        return self.sc_to_cam[:, 2].copy()

    def gsd_m(self, range_km: float | np.ndarray) -> float | np.ndarray:
        """Ground sample distance (m) at a slant range (km): range x IFOV, across the line of sight."""
        return np.asarray(range_km) * 1e3 * self.ifov_rad

    def edge_directions(self, per_edge: int = 8) -> np.ndarray:
        """Unit rays (camera frame) around the detector's outer edge, counter-clockwise from (-x, -y).

        ``per_edge`` rays per side starting at each corner, so (4 * per_edge, 3).
        """
        tx, ty = self.tan_half_fov
        s = np.linspace(-1.0, 1.0, per_edge, endpoint=False)
        one = np.ones_like(s)
        xy = np.concatenate([
            np.stack([s * tx, -ty * one], axis=1),
            np.stack([tx * one, s * ty], axis=1),
            np.stack([-s * tx, ty * one], axis=1),
            np.stack([-tx * one, -s * ty], axis=1),
        ])
        rays = np.column_stack([xy, np.ones(len(xy))])
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def cameras_from_spec(spec: PayloadSpec) -> tuple[Camera, ...]:
    """The cameras of a scenario's payload block, in order."""
    return tuple(Camera.from_spec(c) for c in spec.cameras)


def camera(name: str, pixel_pitch_um: float, pixels: tuple[int, int] = (1024, 1024), *,
           focal_length_mm: float | None = None, fov_deg: float | None = None,
           off_nadir_deg: float = 0.0, azimuth_deg: float = 0.0, roll_deg: float = 0.0,
           bits_per_pixel: int = 8, compression_ratio: float = 1.0) -> Camera:
    """A camera from keyword values (see :class:`CameraSpec`); raises pydantic's ValidationError."""
    return Camera.from_spec(CameraSpec(
        name=name, pixels=pixels, pixel_pitch_um=pixel_pitch_um, focal_length_mm=focal_length_mm,
        fov_deg=fov_deg, off_nadir_deg=off_nadir_deg, azimuth_deg=azimuth_deg, roll_deg=roll_deg,
        bits_per_pixel=bits_per_pixel, compression_ratio=compression_ratio))


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations taking unit vectors a (n, 3) onto b (n, 3): (n, 3, 3), Rodrigues' formula.

    For antiparallel vectors the axis is a perpendicular (a half-turn).
    """
    a, b = np.broadcast_arrays(np.atleast_2d(a), np.atleast_2d(b))
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=1)
    c = np.sum(a * b, axis=1)
    perp = np.cross(a, np.eye(3)[np.argmin(np.abs(a), axis=1)])
    small = s < 1e-12
    axis = np.where(small[:, None], perp / np.linalg.norm(perp, axis=1, keepdims=True),
                    axis / np.where(small, 1.0, s)[:, None])
    return axis_angle_matrix(axis, np.arctan2(s, c))


def axis_angle_matrix(axis: np.ndarray, angle_rad: float | np.ndarray) -> np.ndarray:
    """Active rotation by ``angle_rad`` about unit ``axis``: (..., 3, 3) with R @ v rotated."""
    k = np.asarray(axis, float)
    angle = np.asarray(angle_rad, float)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    cross = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1),
                      np.stack([-ky, kx, zero], -1)], -2)
    outer = k[..., :, None] * k[..., None, :]
    c, s = np.cos(angle)[..., None, None], np.sin(angle)[..., None, None]
    return c * np.eye(3) + s * cross + (1.0 - c) * outer


def mount_matrix(off_nadir_deg: float, azimuth_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Columns: camera X, Y, Z axes in the spacecraft frame for a tilted, rolled mount."""
    off, az = np.radians(off_nadir_deg), np.radians(azimuth_deg)
    boresight = np.array([np.sin(off) * np.cos(az), np.sin(off) * np.sin(az), np.cos(off)])
    if off == 0.0:
        tilt = np.eye(3)
    else:
        tilt = axis_angle_matrix(np.array([-np.sin(az), np.cos(az), 0.0]), off)
    roll = axis_angle_matrix(boresight, np.radians(roll_deg))
    return roll @ tilt


def lvlh_axes(r_km: np.ndarray, v_km_s: np.ndarray) -> np.ndarray:
    """LVLH spacecraft axes (columns X, Y, Z) in the frame of ``r``/``v``: (n, 3, 3).

    Z = -r/|r| (nadir), Y = -(r x v)/|r x v|, X = Y x Z. Raises PointingError for a state with
    r parallel to v (no orbit plane).
    """
    r = np.atleast_2d(np.asarray(r_km, float))
    v = np.atleast_2d(np.asarray(v_km_s, float))
    z = -r / np.linalg.norm(r, axis=1, keepdims=True)
    h = np.cross(r, v)
    h_norm = np.linalg.norm(h, axis=1, keepdims=True)
    if np.any(h_norm <= 1e-12 * np.linalg.norm(r, axis=1, keepdims=True) * np.linalg.norm(v, axis=1, keepdims=True)):
        raise PointingError("the LVLH attitude needs a velocity not parallel to the position (a radial "
                            "trajectory has no orbit plane); use a trajectory with transverse velocity")
    y = -h / h_norm
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=2)


def tracking_axes(r_km: np.ndarray, v_km_s: np.ndarray, target_km: np.ndarray, boresight_sc: np.ndarray) -> np.ndarray:
    """Spacecraft axes (n, 3, 3) turned from LVLH so that ``boresight_sc`` points at ``target_km``.

    All vectors in one frame (e.g. MOON_ME), target a position (km) in it. The turn is the
    smallest rotation from the LVLH boresight direction to the target direction, so the roll
    stays close to LVLH.
    """
    axes = lvlh_axes(r_km, v_km_s)
    current = axes @ np.asarray(boresight_sc, float)
    wanted = np.asarray(target_km, float) - np.atleast_2d(r_km)
    wanted = wanted / np.linalg.norm(wanted, axis=-1, keepdims=True)
    return _rotation_between(current, wanted) @ axes

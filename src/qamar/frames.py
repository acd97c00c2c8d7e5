"""Lunar reference frames: ICRF, Moon-centred ICRF, MOON_PA (DE440) and MOON_ME.

- **ICRF**: the axes of the JPL ephemerides. SPICE calls this frame "J2000"; for DE kernels
  the data are in fact ICRF (moon_de440_220930.tf, "Regarding Use of the ICRF in SPICE"), so
  qamar treats SPICE's J2000 as ICRF. The true J2000/EME2000 frame differs from ICRF by about
  18 mas (pole) and 78 mas (equinox), which qamar ignores.
- **Moon-centred inertial** ("moon-icrf"): ICRF axes with the origin at the Moon's centre of
  mass. It is not a separate rotation: a vector ``r_icrf_km`` relative to the Moon *is* in this
  frame. Orbit states, ephemeris vectors of :mod:`qamar.ephemeris` and OEM output use it.
- **MOON_PA** (MOON_PA_DE440): the Moon's principal axes, time-dependent, from the DE440 lunar
  PCK (:meth:`qamar.ephemeris.Ephemeris.icrf_to_pa`). Gravity fields live in a PA frame.
- **MOON_ME** (MOON_ME_DE440_ME421): mean Earth / polar axis frame, a constant rotation
  :data:`PA_TO_ME` (about 0.0289 deg, 875 m on the surface) away from MOON_PA, read from
  TKFRAME_31009 of moon_de440_220930.tf. Topography (LOLA) and named features live here.

Note on gravity: GRGM1200A is expanded in the DE430 PA frame, while qamar orients the Moon
with DE440 PA and neglects the difference between the two realisations of the principal axes.
moon_de440_220930.tf quotes no DE430-vs-DE440 PA figure; the figures it gives are the
0.02886 deg (875 m) PA-to-ME angle and that MOON_ME_DE440_ME421 stays within 3.07e-7 rad
(53.4 cm on the surface) of DE421 ME over 2000-2040. An offset of tens of milliarcseconds,
the expected order, moves the field by well under a metre at the lunar surface
(1 mas = 8.4 mm at 1737.4 km).

Longitudes are planetocentric, east-positive, in [-180, 180) degrees.
"""

from __future__ import annotations

import functools

import numpy as np

from qamar import data
from qamar.ephemeris import Ephemeris
from qamar.errors import DataFormatError
from qamar.time import read_text_kernel

# NAIF frame ID of MOON_ME_DE440_ME421, defined relative to MOON_PA_DE440 (moon_de440_220930.tf).
_ME_FRAME_ID = 31009
_UNITS_TO_RAD = {
    "RADIANS": 1.0,
    "DEGREES": np.pi / 180.0,
    "ARCMINUTES": np.pi / (180.0 * 60.0),
    "ARCSECONDS": np.pi / (180.0 * 3600.0),
}


def _axis_rotation(axis: int, angle_rad: float) -> np.ndarray:
    """SPICE ``rotate``: the frame rotation [angle]_axis (axis 1, 2 or 3)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    i, j = [(1, 2), (2, 0), (0, 1)][axis - 1]
    m = np.eye(3)
    m[i, i] = m[j, j] = c
    m[i, j], m[j, i] = s, -s
    return m


@functools.cache
def _pa_to_me() -> np.ndarray:
    path = data.path("moon_frames_de440")
    pool = read_text_kernel(path)
    key = f"TKFRAME_{_ME_FRAME_ID}_"
    try:
        angles = [float(a) for a in pool[key + "ANGLES"]]
        axes = [int(a) for a in pool[key + "AXES"]]
        units = str(pool[key + "UNITS"][0]).upper()
        relative = str(pool[key + "RELATIVE"][0])
        to_rad = _UNITS_TO_RAD[units]
    except (KeyError, ValueError, IndexError):
        raise DataFormatError(f"{path} lacks a readable {key}ANGLES/AXES/UNITS/RELATIVE set; "
                              "use the registered moon_de440_220930.tf") from None
    if relative != "MOON_PA_DE440" or len(angles) != 3 or len(axes) != 3 or not set(axes) <= {1, 2, 3}:
        raise DataFormatError(f"{path}: {key} is not three rotations relative to MOON_PA_DE440; "
                              "use the registered moon_de440_220930.tf")
    # SPICE frames required reading (TK frames, "ANGLES"): the matrix that maps vectors from the
    # defined frame (ME) to the RELATIVE frame (PA) is [angle_1]_axis_1 [angle_2]_axis_2
    # [angle_3]_axis_3; PA -> ME is its transpose.
    me_to_pa = np.eye(3)
    for angle, axis in zip(angles, axes):
        me_to_pa = me_to_pa @ _axis_rotation(axis, angle * to_rad)
    pa_to_me = np.ascontiguousarray(me_to_pa.T)
    pa_to_me.setflags(write=False)
    return pa_to_me


def __getattr__(name: str):
    # PA_TO_ME is read from the frames kernel on first use, not at import.
    if name == "PA_TO_ME":
        return _pa_to_me()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PA_TO_ME: np.ndarray  # v_me = PA_TO_ME @ v_pa; constant 3x3, read-only (TKFRAME_31009).


def icrf_to_pa(t_tdb_s: float | np.ndarray, ephemeris: Ephemeris | None = None) -> np.ndarray:
    """Rotation ICRF -> MOON_PA (DE440) at TDB seconds past J2000: v_pa = M @ v_icrf.

    Shape (3, 3) for a scalar time, (n, 3, 3) for n times. Uses ``Ephemeris.default()``
    unless given one. Raises EpochOutOfRangeError outside the lunar PCK / DE440 coverage.
    """
    return (ephemeris or Ephemeris.default()).icrf_to_pa(t_tdb_s)


def icrf_to_me(t_tdb_s: float | np.ndarray, ephemeris: Ephemeris | None = None) -> np.ndarray:
    """Rotation ICRF -> MOON_ME at TDB seconds past J2000 (``PA_TO_ME @ icrf_to_pa``).

    Shape (3, 3) or (n, 3, 3). Raises EpochOutOfRangeError outside the kernels' coverage.
    """
    return _pa_to_me() @ icrf_to_pa(t_tdb_s, ephemeris)


def lat_lon_deg(r_body_km: np.ndarray) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Planetocentric latitude and east longitude (deg, lon in [-180, 180)) of body-fixed vectors.

    ``r_body_km`` has shape (3,) or (n, 3), in any body-fixed frame (PA or ME) and any unit;
    the angles refer to that frame.
    """
    r = np.asarray(r_body_km, dtype=float)
    lat = np.degrees(np.arctan2(r[..., 2], np.hypot(r[..., 0], r[..., 1])))
    lon = np.degrees(np.arctan2(r[..., 1], r[..., 0]))
    lon = np.where(lon >= 180.0, lon - 360.0, lon)
    if r.ndim == 1:
        return float(lat), float(lon)
    return lat, lon


def body_vector_from_lat_lon(
    lat_deg: float | np.ndarray, lon_deg: float | np.ndarray, radius_km: float | np.ndarray
) -> np.ndarray:
    """Body-fixed vector (km) at planetocentric latitude/east longitude (deg) and radius (km).

    Broadcasts its arguments; returns shape (..., 3) in the frame the angles refer to.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=float))
    lon = np.radians(np.asarray(lon_deg, dtype=float))
    radius = np.asarray(radius_km, dtype=float)
    cos_lat = np.cos(lat)
    return np.stack(np.broadcast_arrays(radius * cos_lat * np.cos(lon),
                                        radius * cos_lat * np.sin(lon),
                                        radius * np.sin(lat)), axis=-1)


def subsolar_point_me(
    t_tdb_s: float | np.ndarray, ephemeris: Ephemeris | None = None
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Planetocentric (lat_deg, lon_deg) of the subsolar point in MOON_ME, lon in [-180, 180).

    Geometric direction of the Sun from the Moon's centre (no light time, no aberration) at
    TDB seconds past J2000. Raises EpochOutOfRangeError outside the kernels' coverage.
    """
    eph = ephemeris or Ephemeris.default()
    sun_icrf_km = eph.sun_wrt_moon_icrf_km(t_tdb_s)
    sun_me_km = np.einsum("...ij,...j->...i", icrf_to_me(t_tdb_s, eph), sun_icrf_km)
    return lat_lon_deg(sun_me_km)

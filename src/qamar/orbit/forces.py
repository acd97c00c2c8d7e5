"""Forces on a lunar orbiter: GRAIL gravity, Earth and Sun as third bodies, solar radiation pressure.

The state is Moon-centred with ICRF axes: ``y = (x, y, z, vx, vy, vz)`` in km and km/s, time in
TDB seconds past J2000. :class:`ForceModel` describes the model in Python; its
:meth:`ForceModel.kernel_data` builds the plain tuple that the compiled :func:`derivatives`
reads. The integrator (``qamar.orbit.integrate``) calls :func:`derivatives` directly, so this
module is the one place where the right-hand side of the equations of motion is defined.

Models
- Gravity: ``qamar.orbit.gravity`` evaluates the field (central term and harmonics) in the
  Moon principal-axis (PA) frame; the position is rotated ICRF -> PA and the acceleration back.
- Third bodies: point masses with the indirect term (the Moon-centred frame accelerates toward
  the body), written with Battin's f(q) so the Sun's tiny differential keeps its digits.
- Solar radiation pressure: cannonball, scaled by the visible fraction of the solar disc in the
  conical shadow of the Moon and the Earth (apparent-disc overlap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from qamar.constants import (
    AU_KM,
    EARTH_EQUATORIAL_RADIUS_KM,
    GM_EARTH_KM3_S2,
    GM_SUN_KM3_S2,
    MOON_RADIUS_KM,
    SOLAR_IRRADIANCE_1AU_W_M2,
    SPEED_OF_LIGHT_KM_S,
    SUN_RADIUS_KM,
)
from qamar.ephemeris import Ephemeris, icrf_to_pa_matrix, sun_earth_wrt_moon_km
from qamar.errors import ModelConfigError
from qamar.orbit.gravity import GravityField, gravity_accel_pa

THIRD_BODIES = ("earth", "sun")

# Layout of the parameter array, the last member of the kernel-data tuple.
_P_EARTH, _P_SUN, _P_SRP, _P_GM_EARTH, _P_GM_SUN, _P_SRP_K = range(6)
SRP_PARAM_INDEX = _P_SRP_K
"""Where the params array of :meth:`ForceModel.kernel_data` holds the SRP coefficient (ensembles scale it per member)."""


@dataclass(frozen=True)
class ForceModel:
    """What acts on the spacecraft.

    ``field`` and ``degree``: the gravity field and the degree/order to evaluate (0 is a point
    mass). ``third_bodies``: any of "earth", "sun". ``srp``: cannonball solar radiation pressure
    with spacecraft ``mass_kg``, sun-facing ``area_m2`` and reflectivity coefficient ``cr``.
    Earth/Sun GM, solar irradiance and radii come from ``qamar.constants``.
    Raises ModelConfigError for an unknown third body or a non-physical spacecraft.
    """

    field: GravityField
    degree: int
    third_bodies: tuple[str, ...] = THIRD_BODIES
    srp: bool = True
    mass_kg: float = 7.0
    area_m2: float = 0.06
    cr: float = 1.3

    def __post_init__(self) -> None:
        unknown = set(self.third_bodies) - set(THIRD_BODIES)
        if unknown:
            raise ModelConfigError(
                f"Unknown third bodies {sorted(unknown)}; choose from {list(THIRD_BODIES)} (or none)."
            )
        if not (self.mass_kg > 0 and self.area_m2 >= 0 and self.cr >= 0):
            raise ModelConfigError(
                f"Spacecraft mass_kg={self.mass_kg}, area_m2={self.area_m2}, cr={self.cr} are not physical; "
                "give a positive mass and a non-negative area and Cr."
            )

    @property
    def srp_accel_1au_km_s2(self) -> float:
        """SRP acceleration at 1 AU in full sun, km/s^2: (S / c) * Cr * A / m."""
        pressure_1au_n_m2 = SOLAR_IRRADIANCE_1AU_W_M2 / (SPEED_OF_LIGHT_KM_S * 1e3)
        return pressure_1au_n_m2 * self.cr * self.area_m2 / self.mass_kg * 1e-3

    def kernel_data(self, ephemeris: Ephemeris, t0_tdb_s: float, t1_tdb_s: float) -> tuple:
        """The tuple :func:`derivatives` reads, valid for TDB seconds in [t0_tdb_s, t1_tdb_s].

        Layout: ``(gravity kernel data, ephemeris kernel data, parameters)``. Raises
        EpochOutOfRangeError if the span is outside the ephemeris, ModelConfigError if the field
        has no such degree.
        """
        params = np.zeros(6)
        params[_P_EARTH] = "earth" in self.third_bodies
        params[_P_SUN] = "sun" in self.third_bodies
        params[_P_SRP] = self.srp
        params[_P_GM_EARTH] = GM_EARTH_KM3_S2
        params[_P_GM_SUN] = GM_SUN_KM3_S2
        # SRP scales as 1/d^2: keep k = a(1 AU) * AU^2 in km^3/s^2.
        params[_P_SRP_K] = self.srp_accel_1au_km_s2 * AU_KM**2
        return (self.field.kernel_data(self.degree), ephemeris.kernel_data(t0_tdb_s, t1_tdb_s), params)


@njit(cache=True, fastmath=False, nogil=True)
def derivatives(t_tdb_s, y_icrf, fkdata):
    """Time derivative (km/s, km/s^2) of a Moon-centred ICRF state (km, km/s) at TDB seconds."""
    gkdata, ekdata, params = fkdata
    m = icrf_to_pa_matrix(t_tdb_s, ekdata)
    r_pa_km = np.empty(3)
    for i in range(3):
        r_pa_km[i] = m[i, 0] * y_icrf[0] + m[i, 1] * y_icrf[1] + m[i, 2] * y_icrf[2]
    a_pa = gravity_accel_pa(r_pa_km, gkdata)
    dy = np.empty(6)
    for i in range(3):
        dy[i] = y_icrf[3 + i]
        dy[3 + i] = m[0, i] * a_pa[0] + m[1, i] * a_pa[1] + m[2, i] * a_pa[2]
    if params[_P_EARTH] != 0.0 or params[_P_SUN] != 0.0 or params[_P_SRP] != 0.0:
        r_sun_km, r_earth_km = sun_earth_wrt_moon_km(t_tdb_s, ekdata)
        if params[_P_EARTH] != 0.0:
            _add_third_body(dy, y_icrf, r_earth_km, params[_P_GM_EARTH])
        if params[_P_SUN] != 0.0:
            _add_third_body(dy, y_icrf, r_sun_km, params[_P_GM_SUN])
        if params[_P_SRP] != 0.0:
            _add_srp(dy, y_icrf, r_sun_km, r_earth_km, params[_P_SRP_K])
    return dy


@njit(cache=True, fastmath=False, nogil=True)
def third_body_accel(r_km, s_km, gm_km3_s2):
    """Perturbing acceleration (km/s^2) of a body at ``s_km`` on a spacecraft at ``r_km``.

    Both positions are relative to the central body (same axes, km). The direct minus the
    indirect term, ``gm ((s - r)/|s - r|^3 - s/|s|^3)``, is rewritten as
    ``-gm/|r - s|^3 (r + F(q) s)`` with ``q = r.(r - 2s)/s.s`` and
    ``F(q) = (1 + q)^1.5 - 1 = q (3 + 3q + q^2) / (1 + (1 + q)^1.5)``, so that nothing cancels
    when |r| << |s|. Source: R. H. Battin, An Introduction to the Mathematics and Methods of
    Astrodynamics, rev. ed., AIAA 1999, sec. 8.4 (Encke's method, the function f(q)).
    """
    a0, a1, a2 = _third_body_terms(r_km[0], r_km[1], r_km[2], s_km, gm_km3_s2)
    return np.array([a0, a1, a2])


@njit(cache=True, fastmath=False, nogil=True)
def _third_body_terms(r0, r1, r2, s_km, gm_km3_s2):
    s0, s1, s2 = s_km[0], s_km[1], s_km[2]
    q = (r0 * (r0 - 2.0 * s0) + r1 * (r1 - 2.0 * s1) + r2 * (r2 - 2.0 * s2)) / (s0 * s0 + s1 * s1 + s2 * s2)
    f_q = q * (3.0 + 3.0 * q + q * q) / (1.0 + (1.0 + q) ** 1.5)
    d0, d1, d2 = r0 - s0, r1 - s1, r2 - s2
    d2sum = d0 * d0 + d1 * d1 + d2 * d2
    k = -gm_km3_s2 / (d2sum * math.sqrt(d2sum))
    return k * (r0 + f_q * s0), k * (r1 + f_q * s1), k * (r2 + f_q * s2)


@njit(cache=True, fastmath=False, nogil=True)
def _add_third_body(dy, y_icrf, s_km, gm_km3_s2):
    a0, a1, a2 = _third_body_terms(y_icrf[0], y_icrf[1], y_icrf[2], s_km, gm_km3_s2)
    dy[3] += a0
    dy[4] += a1
    dy[5] += a2


@njit(cache=True, fastmath=False, nogil=True)
def _add_srp(dy, y_icrf, r_sun_km, r_earth_km, srp_k_km3_s2):
    """Cannonball SRP: nu * a(1 AU) * (AU/d)^2 along the Sun -> spacecraft direction."""
    nu = sun_visible_fraction(y_icrf[:3], r_sun_km, r_earth_km)
    if nu == 0.0:
        return
    d0, d1, d2 = y_icrf[0] - r_sun_km[0], y_icrf[1] - r_sun_km[1], y_icrf[2] - r_sun_km[2]
    d2sum = d0 * d0 + d1 * d1 + d2 * d2
    k = nu * srp_k_km3_s2 / (d2sum * math.sqrt(d2sum))
    dy[3] += k * d0
    dy[4] += k * d1
    dy[5] += k * d2


@njit(cache=True, fastmath=False, nogil=True)
def _disc_geometry(r_sc_km, r_sun_km, r_body_km, body_radius_km):
    """Apparent radii of the Sun ``a`` and an occulting body ``b``, and their separation ``c``.

    Radians, as seen from the spacecraft (Montenbruck & Gill 2000, sec. 3.4.2). The
    separation uses atan2(|u x v|, u.v), accurate at all angles.
    """
    u0, u1, u2 = r_sun_km[0] - r_sc_km[0], r_sun_km[1] - r_sc_km[1], r_sun_km[2] - r_sc_km[2]
    v0, v1, v2 = r_body_km[0] - r_sc_km[0], r_body_km[1] - r_sc_km[1], r_body_km[2] - r_sc_km[2]
    du = math.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
    dv = math.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
    a = math.asin(min(1.0, SUN_RADIUS_KM / du))
    b = math.asin(min(1.0, body_radius_km / dv))
    cx, cy, cz = u1 * v2 - u2 * v1, u2 * v0 - u0 * v2, u0 * v1 - u1 * v0
    c = math.atan2(math.sqrt(cx * cx + cy * cy + cz * cz), u0 * v0 + u1 * v1 + u2 * v2)
    return a, b, c


@njit(cache=True, fastmath=False, nogil=True)
def _disc_visible_fraction(a, b, c):
    """Visible fraction of a disc of radius ``a`` behind a disc of radius ``b`` at separation ``c``.

    Discs treated as flat (angles of a fraction of a degree for the Sun). Source: Montenbruck &
    Gill, Satellite Orbits, Springer 2000, sec. 3.4.2 (conical shadow model).
    """
    if c >= a + b:
        return 1.0
    if c <= b - a:
        return 0.0
    if c <= a - b:  # annular: the occulter lies wholly inside the solar disc
        return 1.0 - (b / a) ** 2
    x = (c * c + a * a - b * b) / (2.0 * c)
    y = math.sqrt(max(a * a - x * x, 0.0))
    area = (
        a * a * math.acos(min(1.0, max(-1.0, x / a)))
        + b * b * math.acos(min(1.0, max(-1.0, (c - x) / b)))
        - c * y
    )
    return 1.0 - area / (math.pi * a * a)


@njit(cache=True, fastmath=False, nogil=True)
def sun_visible_fraction(r_sc_icrf_km, r_sun_icrf_km, r_earth_icrf_km):
    """Fraction (0..1) of the solar disc visible from a spacecraft, Moon and Earth as occulters.

    All positions Moon-centred (km, ICRF axes); the Moon is a sphere of MOON_RADIUS_KM, the Earth
    of EARTH_EQUATORIAL_RADIUS_KM (conical shadow: umbra, penumbra and annular phases). The two
    occulted areas are added, which is exact unless both bodies cover the Sun at once.
    """
    origin = np.zeros(3)
    a, b, c = _disc_geometry(r_sc_icrf_km, r_sun_icrf_km, origin, MOON_RADIUS_KM)
    nu_moon = _disc_visible_fraction(a, b, c)
    a, b, c = _disc_geometry(r_sc_icrf_km, r_sun_icrf_km, r_earth_icrf_km, EARTH_EQUATORIAL_RADIUS_KM)
    nu_earth = _disc_visible_fraction(a, b, c)
    return max(0.0, nu_moon + nu_earth - 1.0)


@njit(cache=True, fastmath=False, nogil=True)
def shadow_functions(r_sc_icrf_km, r_sun_icrf_km, r_earth_icrf_km):
    """Smooth shadow-boundary functions (radians) for event location: ``(g_umbra, g_penumbra)``.

    ``g_umbra = min over occulters of c - (b - a)`` is negative exactly where the visible
    fraction is 0; ``g_penumbra = min of c - (a + b)`` is negative exactly where it is below 1
    (a, b, c as in :func:`_disc_geometry`). Both vary smoothly with the geometry, unlike the
    fraction itself, so a root finder converges on them.
    """
    origin = np.zeros(3)
    a, b, c = _disc_geometry(r_sc_icrf_km, r_sun_icrf_km, origin, MOON_RADIUS_KM)
    g_umbra, g_penumbra = c - (b - a), c - (a + b)
    a, b, c = _disc_geometry(r_sc_icrf_km, r_sun_icrf_km, r_earth_icrf_km, EARTH_EQUATORIAL_RADIUS_KM)
    return min(g_umbra, c - (b - a)), min(g_penumbra, c - (a + b))


@njit(cache=True, fastmath=False, nogil=True)
def _visible_fractions(r_sc, r_sun, r_earth, out):
    for i in range(out.size):
        out[i] = sun_visible_fraction(r_sc[i], r_sun[i], r_earth[i])


def sun_visible_fractions(
    r_sc_icrf_km: np.ndarray, r_sun_icrf_km: np.ndarray, r_earth_icrf_km: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`sun_visible_fraction` over (n, 3) Moon-centred ICRF positions in km.

    Inputs broadcast against each other; returns shape (n,) (or () for single vectors).
    """
    r_sc, r_sun, r_earth = np.broadcast_arrays(
        np.asarray(r_sc_icrf_km, float), np.asarray(r_sun_icrf_km, float), np.asarray(r_earth_icrf_km, float)
    )
    shape = r_sc.shape[:-1]
    flat = [np.ascontiguousarray(v.reshape(-1, 3)) for v in (r_sc, r_sun, r_earth)]
    out = np.empty(flat[0].shape[0])
    _visible_fractions(flat[0], flat[1], flat[2], out)
    return out.reshape(shape)

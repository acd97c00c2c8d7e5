"""Osculating orbital elements: Cartesian <-> Keplerian, and states from apsis altitudes.

All functions work in one inertial frame whose name the caller carries (normally the
Moon-centred ICRF); lengths in km, speeds in km/s, angles in degrees at the interface.

Conventions for the singular cases (a tolerance of ``SINGULAR_TOL`` on ``e`` and on
``sin(inc)``):

- circular orbit (``e`` below the tolerance): the argument of periapsis is 0 and the true
  anomaly is the argument of latitude (measured from the ascending node);
- equatorial orbit (``sin(inc)`` below the tolerance): the RAAN is 0, the node line is the
  frame x axis, and the argument of periapsis is the longitude of periapsis measured from +x
  in the direction of motion;
- circular and equatorial: RAAN = argument of periapsis = 0 and the true anomaly is the true
  longitude measured from +x in the direction of motion.

Angles come out in [0, 360) (inclination in [0, 180]). Hyperbolic states give ``a_km < 0``;
a parabolic state gives ``a_km = inf``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qamar.constants import MOON_RADIUS_KM
from qamar.errors import InvalidOrbitError
from qamar.frames import icrf_to_pa

SINGULAR_TOL = 1e-11
"""Below this eccentricity (or sine of inclination) the orbit is treated as circular (equatorial)."""

FRAMES = ("moon-icrf", "moon-pa")
"""Frames :func:`state_from_apsides` accepts for the elements."""


class KeplerianElements(NamedTuple):
    """Osculating elements; each field a float or an array over states."""

    a_km: np.ndarray
    e: np.ndarray
    inc_deg: np.ndarray
    raan_deg: np.ndarray
    argp_deg: np.ndarray
    ta_deg: np.ndarray


def _check_gm(gm_km3_s2: float) -> None:
    if not np.isfinite(gm_km3_s2) or gm_km3_s2 <= 0.0:
        raise InvalidOrbitError(
            f"GM must be a positive number of km^3/s^2, got {gm_km3_s2!r}; take it from the gravity field."
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _angle_deg(from_unit: np.ndarray, to_vec: np.ndarray, axis_unit: np.ndarray) -> np.ndarray:
    """Angle from ``from_unit`` to ``to_vec`` about ``axis_unit``, degrees in [0, 360)."""
    y = np.sum(axis_unit * np.cross(from_unit, to_vec), axis=-1)
    x = np.sum(from_unit * to_vec, axis=-1)
    return np.mod(np.degrees(np.arctan2(y, x)), 360.0)


def _squeeze(values: tuple, scalar: bool) -> tuple:
    return tuple(float(v[0]) if scalar else v for v in values)


def cartesian_to_keplerian(r_km, v_km_s, gm_km3_s2: float) -> KeplerianElements:
    """Osculating elements of inertial states.

    ``r_km`` and ``v_km_s`` have shape (3,) or (n, 3); the elements are floats or (n,) arrays.
    The singular-case conventions are in the module docstring. Raises InvalidOrbitError for
    a state at the centre, a radial (zero angular momentum) state, or a non-positive GM.
    """
    _check_gm(gm_km3_s2)
    r = np.asarray(r_km, dtype=float)
    v = np.asarray(v_km_s, dtype=float)
    scalar = r.ndim == 1
    r = np.atleast_2d(r)
    v = np.atleast_2d(v)
    if r.shape != v.shape or r.shape[-1] != 3:
        raise InvalidOrbitError(
            f"positions {r.shape} and velocities {v.shape} must both be (3,) or (n, 3); pass matching arrays."
        )
    r_norm = np.linalg.norm(r, axis=-1)
    h = np.cross(r, v)
    h_norm = np.linalg.norm(h, axis=-1)
    if np.any(~np.isfinite(r_norm)) or np.any(r_norm == 0.0):
        raise InvalidOrbitError("a state is at the central body's centre or not finite; check the input states.")
    if np.any(h_norm <= 1e-15 * r_norm * np.linalg.norm(v, axis=-1)) or np.any(h_norm == 0.0):
        raise InvalidOrbitError(
            "a state has zero angular momentum (radial motion) and no orbital plane; "
            "give it a transverse velocity component."
        )
    h_hat = h / h_norm[:, None]
    e_vec = np.cross(v, h) / gm_km3_s2 - r / r_norm[:, None]
    e = np.linalg.norm(e_vec, axis=-1)
    energy = 0.5 * np.sum(v * v, axis=-1) - gm_km3_s2 / r_norm
    with np.errstate(divide="ignore"):
        a = -gm_km3_s2 / (2.0 * energy)

    node = np.stack([-h[:, 1], h[:, 0], np.zeros(len(h))], axis=-1)  # z x h
    sin_inc = np.linalg.norm(node, axis=-1) / h_norm
    equatorial = sin_inc < SINGULAR_TOL
    node_hat = np.where(equatorial[:, None], np.array([1.0, 0.0, 0.0]), node)
    node_hat = _unit(node_hat)
    circular = e < SINGULAR_TOL
    peri_hat = np.where(circular[:, None], node_hat, e_vec)
    peri_hat = _unit(peri_hat)

    inc = np.degrees(np.arctan2(np.hypot(h[:, 0], h[:, 1]), h[:, 2]))
    raan = np.where(equatorial, 0.0, np.mod(np.degrees(np.arctan2(node_hat[:, 1], node_hat[:, 0])), 360.0))
    argp = np.where(circular, 0.0, _angle_deg(node_hat, peri_hat, h_hat))
    ta = _angle_deg(peri_hat, r, h_hat)
    return KeplerianElements(*_squeeze((a, e, inc, raan, argp, ta), scalar))


def keplerian_to_cartesian(
    a_km, e, inc_deg, raan_deg, argp_deg, ta_deg, gm_km3_s2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inertial position (km) and velocity (km/s) from osculating elements.

    Arguments broadcast together; scalars give (3,) vectors, arrays give (n, 3). Elliptic
    orbits need ``a_km > 0`` and ``0 <= e < 1``, hyperbolic ones ``a_km < 0`` and ``e > 1``
    with the true anomaly inside the asymptotes; parabolic (``e == 1``) orbits cannot be
    given through ``a``. Equatorial and circular orbits follow the module conventions. Raises
    InvalidOrbitError for any other combination.
    """
    _check_gm(gm_km3_s2)
    a, ecc, inc, raan, argp, ta = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (a_km, e, inc_deg, raan_deg, argp_deg, ta_deg))
    )
    scalar = a.ndim == 0
    a, ecc, inc, raan, argp, ta = (np.atleast_1d(x) for x in (a, ecc, inc, raan, argp, ta))
    if not all(np.all(np.isfinite(x)) for x in (a, ecc, inc, raan, argp, ta)):
        raise InvalidOrbitError("an orbital element is not finite; give finite numbers.")
    if np.any(ecc < 0.0):
        raise InvalidOrbitError("eccentricity must be >= 0; give the magnitude of the eccentricity vector.")
    if np.any(ecc == 1.0):
        raise InvalidOrbitError("a parabolic orbit (e = 1) has no finite semi-major axis; give e < 1 or e > 1.")
    if np.any((ecc < 1.0) & (a <= 0.0)) or np.any((ecc > 1.0) & (a >= 0.0)):
        raise InvalidOrbitError(
            "semi-major axis and eccentricity disagree: elliptic orbits need a > 0 and e < 1, "
            "hyperbolic ones a < 0 and e > 1."
        )
    if np.any((inc < 0.0) | (inc > 180.0)):
        raise InvalidOrbitError("inclination must lie in [0, 180] deg; use the RAAN for the node direction.")
    nu = np.radians(ta)
    denom = 1.0 + ecc * np.cos(nu)
    if np.any(denom <= 0.0):
        raise InvalidOrbitError(
            "the true anomaly lies outside the asymptotes of the hyperbola; "
            "give |ta| < arccos(-1/e)."
        )
    p = a * (1.0 - ecc * ecc)
    r_norm = p / denom
    r_pf = np.stack([r_norm * np.cos(nu), r_norm * np.sin(nu), np.zeros_like(nu)], axis=-1)
    speed = np.sqrt(gm_km3_s2 / p)
    v_pf = np.stack([-speed * np.sin(nu), speed * (ecc + np.cos(nu)), np.zeros_like(nu)], axis=-1)
    rot = _perifocal_to_inertial(np.radians(raan), np.radians(inc), np.radians(argp))
    r = np.einsum("nij,nj->ni", rot, r_pf)
    v = np.einsum("nij,nj->ni", rot, v_pf)
    return (r[0], v[0]) if scalar else (r, v)


def _perifocal_to_inertial(raan: np.ndarray, inc: np.ndarray, argp: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation R3(-raan) R1(-inc) R3(-argp), angles in radians."""
    co, so = np.cos(raan), np.sin(raan)
    ci, si = np.cos(inc), np.sin(inc)
    cw, sw = np.cos(argp), np.sin(argp)
    return np.stack(
        [
            np.stack([co * cw - so * sw * ci, -co * sw - so * cw * ci, so * si], axis=-1),
            np.stack([so * cw + co * sw * ci, -so * sw + co * cw * ci, -co * si], axis=-1),
            np.stack([sw * si, cw * si, ci], axis=-1),
        ],
        axis=-2,
    )


def apsis_altitudes_km(
    r_km, v_km_s, gm_km3_s2: float, radius_km: float = MOON_RADIUS_KM
) -> tuple[np.ndarray, np.ndarray]:
    """Osculating periapsis and apoapsis altitudes (km) over a sphere of ``radius_km``.

    ``r_km``/``v_km_s`` are (3,) or (n, 3) inertial states. The apoapsis altitude is ``inf``
    for unbound (e >= 1) states. Raises InvalidOrbitError like :func:`cartesian_to_keplerian`.
    """
    elements = cartesian_to_keplerian(r_km, v_km_s, gm_km3_s2)
    r = np.atleast_2d(np.asarray(r_km, dtype=float))
    v = np.atleast_2d(np.asarray(v_km_s, dtype=float))
    p = np.sum(np.cross(r, v) ** 2, axis=-1) / gm_km3_s2  # semi-latus rectum h^2/mu, good for all e
    e = np.atleast_1d(elements.e)
    peri = p / (1.0 + e) - radius_km
    apo = np.full_like(p, np.inf)
    bound = e < 1.0
    apo[bound] = p[bound] / (1.0 - e[bound]) - radius_km
    return (float(peri[0]), float(apo[0])) if np.ndim(elements.e) == 0 else (peri, apo)


def state_from_apsides(
    peri_alt_km: float,
    apo_alt_km: float,
    inc_deg: float,
    raan_deg: float,
    argp_deg: float,
    ta_deg: float,
    gm_km3_s2: float,
    *,
    frame: str = "moon-icrf",
    t_tdb_s: float | None = None,
    radius_km: float = MOON_RADIUS_KM,
) -> tuple[np.ndarray, np.ndarray]:
    """Moon-centred ICRF state (km, km/s) of an orbit given by its apsis altitudes.

    Altitudes are over the sphere of ``radius_km`` (default the 1737.4 km mean lunar radius).
    ``frame`` says what the angles refer to:

    - ``"moon-icrf"``: the ICRF equator and x axis (Moon-centred, ICRF axes);
    - ``"moon-pa"``: the lunar equator and prime meridian of the principal-axis frame at
      ``t_tdb_s`` (TDB seconds past J2000). That frame is frozen at the epoch and treated as
      inertial: the state is rotated to ICRF by ``icrf_to_pa(t_tdb_s).T`` for both position
      and velocity (no rotation-rate term), so the elements describe the inertial orbit whose
      plane and node are fixed against the lunar equator at that instant.

    Raises InvalidOrbitError when the periapsis is at or below the surface, the apoapsis is
    below the periapsis, an angle is out of range, the frame is unknown, or ``moon-pa`` is
    asked for without an epoch.
    """
    values = (peri_alt_km, apo_alt_km, inc_deg, raan_deg, argp_deg, ta_deg, radius_km)
    if not all(np.isfinite(float(x)) for x in values):
        raise InvalidOrbitError("orbit altitudes and angles must be finite numbers.")
    if peri_alt_km <= 0.0:
        raise InvalidOrbitError(
            f"periapsis altitude {peri_alt_km} km is at or below the {radius_km} km surface; "
            "give a positive periapsis altitude."
        )
    if apo_alt_km < peri_alt_km:
        raise InvalidOrbitError(
            f"apoapsis altitude {apo_alt_km} km is below periapsis altitude {peri_alt_km} km; "
            "swap them or give apo >= peri."
        )
    if not 0.0 <= inc_deg <= 180.0:
        raise InvalidOrbitError(f"inclination {inc_deg} deg is outside [0, 180] deg; give 0..180.")
    if frame not in FRAMES:
        raise InvalidOrbitError(f"unknown frame {frame!r} for the orbit elements; use one of {', '.join(FRAMES)}.")
    if frame == "moon-pa" and t_tdb_s is None:
        raise InvalidOrbitError("frame 'moon-pa' needs the epoch t_tdb_s at which the lunar equator is taken.")
    r_peri_km = radius_km + peri_alt_km
    r_apo_km = radius_km + apo_alt_km
    a_km = 0.5 * (r_peri_km + r_apo_km)
    e = (r_apo_km - r_peri_km) / (r_apo_km + r_peri_km)
    r, v = keplerian_to_cartesian(a_km, e, inc_deg, raan_deg, argp_deg, ta_deg, gm_km3_s2)
    if frame == "moon-pa":
        pa_to_icrf = np.asarray(icrf_to_pa(float(t_tdb_s))).T
        r, v = pa_to_icrf @ r, pa_to_icrf @ v
    return r, v


def apsides_from_state(
    r_icrf_km,
    v_icrf_km_s,
    gm_km3_s2: float,
    *,
    frame: str = "moon-icrf",
    t_tdb_s: float | None = None,
    radius_km: float = MOON_RADIUS_KM,
) -> dict[str, float]:
    """The inverse of :func:`state_from_apsides`: osculating apsis altitudes and angles of one
    Moon-centred ICRF state (km, km/s), with the angles in ``frame`` (as there).

    Returns ``peri_alt_km``, ``apo_alt_km`` (over the sphere of ``radius_km``), ``inc_deg``,
    ``raan_deg``, ``argp_deg`` and ``ta_deg``; passing them back to :func:`state_from_apsides`
    with the same GM, frame and epoch gives the state again (to rounding). Raises
    InvalidOrbitError for an unbound state (e >= 1) or as :func:`cartesian_to_keplerian` does.
    """
    if frame not in FRAMES:
        raise InvalidOrbitError(f"unknown frame {frame!r} for the orbit elements; use one of {', '.join(FRAMES)}.")
    r, v = np.asarray(r_icrf_km, dtype=float), np.asarray(v_icrf_km_s, dtype=float)
    if frame == "moon-pa":
        if t_tdb_s is None:
            raise InvalidOrbitError("frame 'moon-pa' needs the epoch t_tdb_s at which the lunar equator is taken.")
        icrf_to_pa_t = np.asarray(icrf_to_pa(float(t_tdb_s)))
        r, v = icrf_to_pa_t @ r, icrf_to_pa_t @ v
    elements = cartesian_to_keplerian(r, v, gm_km3_s2)
    if elements.e >= 1.0:
        raise InvalidOrbitError(
            f"the state is not bound to the Moon (eccentricity {elements.e:.4f}); start from a state in lunar orbit."
        )
    peri_alt_km, apo_alt_km = apsis_altitudes_km(r, v, gm_km3_s2, radius_km)
    return {
        "peri_alt_km": peri_alt_km, "apo_alt_km": apo_alt_km, "inc_deg": elements.inc_deg,
        "raan_deg": elements.raan_deg, "argp_deg": elements.argp_deg, "ta_deg": elements.ta_deg,
    }  # fmt: skip


def period_s(a_km, gm_km3_s2: float):
    """Keplerian period (s) of an orbit of semi-major axis ``a_km`` > 0.

    Raises InvalidOrbitError for a non-positive semi-major axis (unbound orbits have no period).
    """
    _check_gm(gm_km3_s2)
    a = np.asarray(a_km, dtype=float)
    if np.any(~(a > 0.0)):
        raise InvalidOrbitError("only bound orbits (a > 0) have a period; check the semi-major axis.")
    return 2.0 * np.pi * np.sqrt(a**3 / gm_km3_s2)

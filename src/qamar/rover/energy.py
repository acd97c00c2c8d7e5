"""The rover's energy: solar array power from the Sun's direction and visible fraction, and a
battery with a reserve and charge/discharge losses.

Array. A flat panel of ``solar.area_m2`` and ``solar.efficiency`` whose normal is tilted
``solar.tilt_deg`` from the local vertical (90: a vertical panel, usual at the pole) toward
azimuth ``solar.azimuth_deg`` (clockwise from local north), or toward the Sun's azimuth when
that is None (the rover turns to face the Sun). In east/north/up the normal is
``(sin t sin a, sin t cos a, cos t)`` and the Sun ``(cos e sin A, cos e cos A, sin e)``, so the
cosine of incidence is ``sin t cos e cos(A - a) + cos t sin e``, clipped at 0 (Sun behind the
panel). A vertical panel facing the Sun gets ``cos e``.

    P = S(d) x area x efficiency x cos(incidence) x visible fraction of the solar disc

with ``S(d) = 1361 W/m2 x (1 au / d)^2`` (total solar irradiance at 1 au, Kopp & Lean 2011,
GRL 38, L01706; au from IAU 2012 Resolution B2), d the Sun's distance. The visible fraction
(0..1, from horizon maps) scales the power linearly: it is the part of the disc above the
horizon (limb darkening is neglected). Array temperature and ageing are not modelled:
``solar.efficiency`` is the user's knob for them.

Battery. ``power.battery_wh`` of stored energy, of which ``power.reserve_fraction`` must stay
unused. Over an interval ``dt`` with array power ``P`` and load ``L``, a surplus charges the
battery at ``charge_efficiency`` (up to full), a deficit drains it at ``1 / discharge_efficiency``
(:func:`battery_step`). Loads: ``power.drive_w`` while driving, ``power.idle_w`` awake and
standing, ``power.hibernate_w`` hibernating.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from qamar.constants import AU_KM
from qamar.rover.model import SOLAR_CONSTANT_W_M2, RoverSpec, Solar


def solar_constant_w_m2(sun_distance_km) -> np.ndarray:
    """Total solar irradiance (W/m2) at ``sun_distance_km`` from the Sun (inverse square from
    1361 W/m2 at 1 au)."""
    return SOLAR_CONSTANT_W_M2 * (AU_KM / np.asarray(sun_distance_km, dtype=np.float64)) ** 2


def incidence_cos(sun_az_deg, sun_el_deg, tilt_deg: float, panel_az_deg: float | None) -> np.ndarray:
    """Cosine of the Sun's incidence on a panel tilted ``tilt_deg`` from horizontal (its normal
    that far from the zenith) facing ``panel_az_deg`` (None: the Sun's azimuth); 0 when the Sun
    is behind the panel. Angles in degrees, azimuth clockwise from local north; broadcasts."""
    az = np.radians(np.asarray(sun_az_deg, dtype=np.float64))
    el = np.radians(np.asarray(sun_el_deg, dtype=np.float64))
    tilt = math.radians(tilt_deg)
    facing = az if panel_az_deg is None else math.radians(panel_az_deg)
    cos_i = math.sin(tilt) * np.cos(el) * np.cos(az - facing) + math.cos(tilt) * np.sin(el)
    return np.maximum(cos_i, 0.0)


def solar_power_w(solar: Solar, sun_fraction, sun_az_deg, sun_el_deg, sun_distance_km) -> np.ndarray:
    """Array power (W): irradiance at the Sun's distance x area x efficiency x cos(incidence) x
    visible fraction of the disc (0..1). Broadcasts over its array arguments."""
    cos_i = incidence_cos(sun_az_deg, sun_el_deg, solar.tilt_deg, solar.azimuth_deg)
    return (solar_constant_w_m2(sun_distance_km) * solar.area_m2 * solar.efficiency * cos_i
            * np.clip(np.asarray(sun_fraction, dtype=np.float64), 0.0, 1.0))


@njit(cache=True, fastmath=False, nogil=True)
def battery_step(energy_wh, solar_w, load_w, dt_h, capacity_wh, charge_eff, discharge_eff):
    """Stored energy (Wh) after ``dt_h`` hours of ``solar_w`` array power and ``load_w`` load:
    a surplus charges at ``charge_eff`` up to ``capacity_wh``, a deficit drains at
    ``1 / discharge_eff``. May return less than 0 (the caller checks its reserve)."""
    net_w = solar_w - load_w
    if net_w >= 0.0:
        return min(capacity_wh, energy_wh + net_w * dt_h * charge_eff)
    return energy_wh + net_w * dt_h / discharge_eff


def battery_params(rover: RoverSpec) -> np.ndarray:
    """(capacity Wh, reserve Wh, charge eff, discharge eff, drive W, idle W, hibernate W), float64."""
    p = rover.power
    return np.array([p.battery_wh, p.battery_wh * p.reserve_fraction, p.charge_efficiency, p.discharge_efficiency,
                     p.drive_w, p.idle_w, p.hibernate_w])

"""Energy model: array power against hand-computed incidence, inverse square law, battery."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qamar.constants import AU_KM
from qamar.rover.energy import (
    battery_step,
    incidence_cos,
    solar_constant_w_m2,
    solar_power_w,
)
from qamar.rover.model import Solar

S_1AU = 1361.0  # W/m2, Kopp & Lean (2011)


@pytest.mark.parametrize("el_deg", [0.0, 1.5, 10.0, 45.0])
def test_vertical_panel_facing_the_sun(el_deg):
    solar = Solar(area_m2=0.2, efficiency=0.3, tilt_deg=90.0, azimuth_deg=None)
    p = solar_power_w(solar, 1.0, 123.0, el_deg, AU_KM)
    assert p == pytest.approx(S_1AU * 0.2 * 0.3 * math.cos(math.radians(el_deg)), rel=1e-12)


def test_sun_behind_a_fixed_panel_gives_nothing():
    solar = Solar(tilt_deg=90.0, azimuth_deg=0.0)  # faces north
    assert solar_power_w(solar, 1.0, 180.0, 5.0, AU_KM) == 0.0
    assert solar_power_w(solar, 1.0, 100.0, 5.0, AU_KM) == 0.0  # just behind the panel's plane


def test_incidence_of_fixed_and_tilted_panels():
    # vertical panel facing east, Sun 60 deg off its normal in azimuth at the horizon: cos 60
    assert incidence_cos(150.0, 0.0, 90.0, 90.0) == pytest.approx(0.5, abs=1e-15)
    # horizontal panel: sin(elevation)
    assert incidence_cos(17.0, 30.0, 0.0, 0.0) == pytest.approx(0.5, abs=1e-15)
    # panel tilted 60 deg toward the Sun at elevation 30 deg: normal and Sun 0 deg apart
    assert incidence_cos(200.0, 30.0, 60.0, 200.0) == pytest.approx(1.0, abs=1e-15)


def test_inverse_square_and_visible_fraction():
    assert solar_constant_w_m2(AU_KM) == pytest.approx(S_1AU)
    assert solar_constant_w_m2(1.0167 * AU_KM) == pytest.approx(S_1AU / 1.0167**2)  # aphelion
    solar = Solar(tilt_deg=90.0, azimuth_deg=None)
    full = solar_power_w(solar, 1.0, 0.0, 2.0, AU_KM)
    np.testing.assert_allclose(solar_power_w(solar, np.array([0.0, 0.25, 1.0]), 0.0, 2.0, AU_KM),
                               [0.0, 0.25 * full, full], rtol=1e-15)


def test_battery_charges_with_losses_up_to_full_and_drains():
    # 50 W surplus for 1 h at 90 %: +45 Wh
    assert battery_step(10.0, 60.0, 10.0, 1.0, 100.0, 0.9, 0.95) == pytest.approx(55.0)
    assert battery_step(90.0, 60.0, 10.0, 1.0, 100.0, 0.9, 0.95) == 100.0
    # 38 W deficit for 2 h at 95 %: -80 Wh
    assert battery_step(100.0, 2.0, 40.0, 2.0, 100.0, 0.9, 0.95) == pytest.approx(20.0)

"""Footprints, image-centre geometry and pointing against analytic results and SPICE.

Nadir footprint width, derived here. A ray at angle a = theta/2 off nadir from radius
r = R + h meets the sphere at central angle gamma from the sub-spacecraft point. In the
triangle Moon centre O, spacecraft S, ground point P, the law of sines gives
sin(angle OPS) / r = sin(a) / R; the near intersection has the obtuse angle at P, so
gamma = asin((r / R) sin a) - a and the width is 2 R gamma (Wertz and Larson, Space Mission
Analysis and Design, 3rd ed., sec. 5.2, eqs. 5-26/5-27 with the nadir angle eta = a). For
h << R it tends to the flat-ground width 2 h tan(theta / 2). The limb (horizon) lies at
central angle lambda_0 = acos(R / r) (SMAD eq. 5-17).
"""

import numpy as np
import pytest

from qamar.constants import MOON_RADIUS_KM
from qamar.frames import body_vector_from_lat_lon
from qamar.payload.camera import PointingError, camera
from qamar.payload.footprint import (Geometry, Tracking, boresight_view, camera_axes, check_sees_moon, footprints,
                                     geometry, surface_view)
from tests.payload.orbits import circular

R = MOON_RADIUS_KM
NARROW = camera("narrow", 5.5, focal_length_mm=25)  # 12.85 deg


def _spherical_width_km(h_km: float, fov_deg: float) -> float:
    a = np.radians(fov_deg) / 2
    return 2 * R * (np.arcsin((R + h_km) / R * np.sin(a)) - a)


@pytest.mark.parametrize("h_km", [1.0, 5.0, 20.0])
def test_nadir_footprint_matches_the_flat_formula_at_low_altitude(h_km):
    trajectory = circular(h_km, days=0.05)
    fp = footprints(NARROW, trajectory, trajectory.start_tdb_s + 60.0)[0]
    flat = 2 * h_km * np.tan(np.radians(NARROW.fov_deg[0]) / 2)
    for width in fp.width_km():
        assert abs(width / flat - 1) < 2e-3 * h_km / 20.0 + 1e-4  # spherical correction O(h/R)
    assert not fp.reaches_limb


@pytest.mark.parametrize("h_km", [500.0, 3000.0, 8600.0])
def test_nadir_footprint_matches_the_spherical_cap_formula_at_high_altitude(h_km):
    trajectory = circular(h_km, days=0.2)
    fp = footprints(NARROW, trajectory, trajectory.start_tdb_s + 600.0)[0]
    exact = _spherical_width_km(h_km, NARROW.fov_deg[0])
    for width in fp.width_km():
        assert abs(width - exact) < 1e-6 * exact
    flat = 2 * h_km * np.tan(np.radians(NARROW.fov_deg[0]) / 2)
    if h_km >= 3000.0:
        assert exact / flat - 1 > 0.015  # the flat formula no longer holds (1.8 % at 3000 km)
    assert fp.centre.gsd_m == pytest.approx(h_km * 1e3 * NARROW.ifov_rad, rel=1e-9)
    assert fp.centre.emission_deg == pytest.approx(0.0, abs=1e-5)


def test_rays_that_miss_the_moon_close_the_footprint_at_the_limb():
    wide = camera("wide", 5.5, focal_length_mm=8)  # 38.8 deg, wider than the Moon from 20,000 km
    h_km = 20000.0
    trajectory = circular(h_km, days=0.5)
    t = trajectory.start_tdb_s + 1000.0
    fp = footprints(wide, trajectory, t)[0]
    assert fp.reaches_limb and not np.any(fp.on_surface)
    sub_lat, sub_lon = trajectory.lat_lon_me_deg(np.array([t]))
    sub = body_vector_from_lat_lon(sub_lat[0], sub_lon[0], 1.0)
    limb = body_vector_from_lat_lon(fp.lat_deg, fp.lon_deg, 1.0)
    angle = np.degrees(np.arccos(np.clip(limb @ sub, -1, 1)))
    assert np.allclose(angle, np.degrees(np.arccos(R / (R + h_km))), atol=1e-9)


def test_light_and_view_angles_match_spice_ilumin(spice_kernels):
    """Incidence, emission and phase at surface points seen from the Earth, against SPICE ilumin."""
    spice = spice_kernels
    t = np.array([7.7e8, 7.7e8 + 86400.0 * 3.3])
    earth_me = np.array([spice.spkpos("EARTH", x, "MOON_ME", "NONE", "MOON")[0] for x in t])
    from qamar.ephemeris import Ephemeris
    from qamar.frames import icrf_to_me

    sun_me = np.einsum("nij,nj->ni", icrf_to_me(t), Ephemeris.default().sun_wrt_moon_icrf_km(t))
    geom = Geometry(t, earth_me, np.zeros_like(earth_me), sun_me)
    for lat, lon in ((10.0, 5.0), (-35.0, -20.0)):
        p = body_vector_from_lat_lon(lat, lon, R)
        view = surface_view(NARROW, geom, p)
        for i, x in enumerate(t):
            _, _, phase, incidence, emission = spice.ilumin("ELLIPSOID", "MOON", x, "MOON_ME", "NONE", "EARTH", p)
            assert view.phase_deg[i] == pytest.approx(np.degrees(phase), abs=1e-7)
            assert view.incidence_deg[i] == pytest.approx(np.degrees(incidence), abs=1e-7)
            assert view.emission_deg[i] == pytest.approx(np.degrees(emission), abs=1e-7)
            assert view.sun_elev_deg[i] == pytest.approx(90.0 - np.degrees(incidence), abs=1e-7)


def test_lvlh_frame_and_an_offset_mount():
    trajectory = circular(300.0, inc_deg=60.0, days=0.1)
    geom = geometry(trajectory, trajectory.start_tdb_s + np.array([0.0, 900.0]))
    tilted = camera("tilted", 5.5, focal_length_mm=25, off_nadir_deg=20.0, azimuth_deg=90.0)
    axes = camera_axes(tilted, geom)
    nadir = -geom.r_me_km / np.linalg.norm(geom.r_me_km, axis=1, keepdims=True)
    normal = np.cross(geom.r_me_km, geom.v_me_km_s)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    look = axes[:, :, 2]
    assert np.allclose(np.degrees(np.arccos(np.sum(look * nadir, axis=1))), 20.0)
    # Azimuth 90 deg tilts towards +Y_LVLH, which is opposite the orbit normal.
    assert np.all(np.sum(look * normal, axis=1) < -0.3)
    assert np.allclose(np.einsum("nij,nik->njk", axes, axes), np.eye(3), atol=1e-12)


def test_target_tracking_puts_the_boresight_on_the_target():
    trajectory = circular(400.0, inc_deg=90.0, days=0.1)
    t = trajectory.start_tdb_s + 300.0
    lat, lon = trajectory.lat_lon_me_deg(np.array([t]))
    target = body_vector_from_lat_lon(lat[0] + 3.0, lon[0] + 2.0, R)
    geom = geometry(trajectory, np.array([t]))
    view = boresight_view(NARROW, geom, camera_axes(NARROW, geom, Tracking.of(NARROW, target)))
    assert view.lat_deg[0] == pytest.approx(lat[0] + 3.0, abs=1e-9)
    assert view.lon_deg[0] == pytest.approx(lon[0] + 2.0, abs=1e-9)


def test_a_camera_pointing_away_from_the_moon_is_refused():
    trajectory = circular(200.0, days=0.05)
    check_sees_moon(NARROW, trajectory)
    away = camera("away", 5.5, focal_length_mm=25, off_nadir_deg=150.0)
    with pytest.raises(PointingError, match="never sees the Moon"):
        check_sees_moon(away, trajectory)

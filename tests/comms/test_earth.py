"""Earth orientation against skyfield (IAU 2000A nutation, IAU 2006 precession, its own UT1) and
against the defining constants of the Earth rotation angle."""

import erfa
import numpy as np
import pytest

from qamar.comms import earth
from qamar.comms.stations import STATIONS
from qamar.time import tdb_s_to_tt_s, utc_to_tdb_s


def _skyfield_epochs(ts, hours):
    t = ts.utc(2024, 5, 8, hours)
    return t, (t.tdb - 2451545.0) * 86400.0


@pytest.mark.parametrize("name", ["new norcia", "kashgar", "malargue"])
def test_station_gcrs_matches_skyfield(skyfield_sky, name):
    """Skyfield (Rhodes, ascl:1907.024) puts the same WGS84 site at the same GCRS place: < 1 m, 1 mm/s."""
    from skyfield.api import wgs84

    ts, _ = skyfield_sky
    station = STATIONS[name]
    t, t_tdb_s = _skyfield_epochs(ts, np.arange(0.0, 72.0, 0.37))
    site = wgs84.latlon(station.lat_deg, station.lon_deg, elevation_m=station.height_m).at(t)
    dut1_s = float(np.mean(t.dut1))  # skyfield's UT1 - UTC from its bundled IERS table
    r_km, v_km_s = earth.station_gcrs_km(station.r_itrf_km, t_tdb_s, dut1_s=dut1_s)
    assert np.max(np.linalg.norm(r_km - site.position.km.T, axis=1)) < 1e-3
    assert np.max(np.linalg.norm(v_km_s - site.velocity.km_per_s.T, axis=1)) < 1e-6


def test_without_dut1_the_error_is_the_rotation_of_ut1_minus_utc(skyfield_sky):
    """With UT1 = UTC the station moves by |dUT1| x omega x (distance from the axis): < 0.42 km."""
    from skyfield.api import wgs84

    ts, _ = skyfield_sky
    station = STATIONS["cebreros"]
    t, t_tdb_s = _skyfield_epochs(ts, np.arange(0.0, 24.0, 1.0))
    r_km, _ = earth.station_gcrs_km(station.r_itrf_km, t_tdb_s)
    error_km = np.linalg.norm(r_km - wgs84.latlon(station.lat_deg, station.lon_deg).at(t).position.km.T, axis=1)
    axis_distance_km = np.hypot(*station.r_itrf_km[:2])
    expected_km = np.abs(t.dut1) * earth.EARTH_ROTATION_RAD_S * axis_distance_km
    assert np.allclose(error_km, expected_km, rtol=1e-3, atol=1e-4)
    assert 0.9 * earth.EARTH_ROTATION_RAD_S * 6378.137 < 0.42  # the documented bound


def test_era_at_j2000_is_the_iers_constant():
    """IERS Conventions 2010 eq. 5.15: ERA = 2 pi (0.7790572732640 + ...) at UT1 = J2000.0."""
    t_tdb_s = float(utc_to_tdb_s("2000-01-01T12:00:00Z"))
    orientation = earth.EarthOrientation(t_tdb_s, t_tdb_s)
    era = orientation.earth_rotation_angle_rad(np.array([t_tdb_s]))[0]
    assert era == pytest.approx(2.0 * np.pi * 0.7790572732640, abs=1e-12)


def test_cip_interpolation_matches_direct_iau2006_2000a():
    """Hourly nodes + 4-point Lagrange reproduce eraXys06a to < 1e-12 rad (0.2 uas, 1e-5 m at the station)."""
    t_tdb_s = float(utc_to_tdb_s("2024-05-08T00:00:00Z")) + np.linspace(0.0, 40 * 86400.0, 997)
    x, y, s = earth.EarthOrientation(t_tdb_s[0], t_tdb_s[-1]).cip_xys_rad(t_tdb_s)
    xd, yd, sd = erfa.xys06a(2451545.0, np.asarray(tdb_s_to_tt_s(t_tdb_s)) / 86400.0)
    assert max(np.abs(x - xd).max(), np.abs(y - yd).max(), np.abs(s - sd).max()) < 1e-12


def test_matrix_agrees_with_erfa_c2t06a_without_polar_motion():
    """The full IAU 2006/2000A celestial-to-terrestrial matrix of ERFA (eraC2t06a, xp = yp = 0).

    Agreement to 1e-10 rad (0.6 mm at the station; the rest is time-scale rounding, < 1 us).
    """
    t_tdb_s = float(utc_to_tdb_s("2024-06-01T22:23:00Z"))
    dut1_s = -0.02
    m = earth.gcrs_to_itrf_matrix(t_tdb_s, dut1_s=dut1_s)
    tt_s = float(tdb_s_to_tt_s(t_tdb_s))
    utc_s = tt_s - 32.184 - 37.0  # TT - TAI = 32.184 s; TAI - UTC = 37 s since 2017 (IERS Bulletin C)
    reference = erfa.c2t06a(2451545.0, tt_s / 86400.0, 2451545.0, (utc_s + dut1_s) / 86400.0, 0.0, 0.0)
    assert np.max(np.abs(m - reference)) < 1e-10

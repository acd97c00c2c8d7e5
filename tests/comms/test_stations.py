"""Ground stations: the mission-brief catalogue, WGS84 geodetic -> ITRF, the local frame, lookup."""

import numpy as np
import pytest

from qamar.comms import CommsSpec
from qamar.comms.stations import STATIONS, Station, station
from qamar.errors import DataFormatError

# WGS84 defining parameters (NIMA TR8350.2, 3rd ed., table 3.1).
A_M = 6378137.0
F = 1.0 / 298.257223563


def _wgs84_ecef_km(lat_deg, lon_deg, h_m):
    """Textbook geodetic -> ECEF: N = a / sqrt(1 - e^2 sin^2 lat) (TR8350.2 eq. 4-14)."""
    e2 = F * (2.0 - F)
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    n = A_M / np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
    return np.array([
        (n + h_m) * np.cos(lat) * np.cos(lon),
        (n + h_m) * np.cos(lat) * np.sin(lon),
        (n * (1.0 - e2) + h_m) * np.sin(lat),
    ]) / 1000.0


def test_catalogue_is_the_mission_brief_table():
    """mission-brief.md section 4 (coordinates, dishes, the two given heights) plus the city sites."""
    expected = {
        "kashgar": (38.4214, 76.7144, 0.0, 35.0),
        "jiamusi": (46.4939, 130.7706, 0.0, 66.0),
        "neuquen": (-38.1914, -70.1495, 0.0, 35.0),
        "new norcia": (-31.0482, 116.1915, 252.0, 35.0),
        "cebreros": (40.4527, -4.3675, 0.0, 35.0),
        "malargue": (-35.7760, -69.3982, 1550.0, 35.0),
    }
    for key, (lat, lon, h, dish) in expected.items():
        s = STATIONS[key]
        assert (s.lat_deg, s.lon_deg, s.height_m, s.dish_m) == (lat, lon, h, dish)
    for key in ("karachi", "islamabad"):
        assert "assumption" in STATIONS[key].source and "city" in STATIONS[key].source


@pytest.mark.parametrize("key", sorted(STATIONS))
def test_itrf_position_is_the_wgs84_formula(key):
    s = STATIONS[key]
    assert np.allclose(s.r_itrf_km, _wgs84_ecef_km(s.lat_deg, s.lon_deg, s.height_m), atol=1e-9, rtol=0)


def test_local_frame_is_orthonormal_with_up_the_ellipsoid_normal():
    s = STATIONS["malargue"]
    m = s.enu_from_itrf
    assert np.allclose(m @ m.T, np.eye(3), atol=1e-15)
    # The normal is the direction in which the point moves when the height grows.
    higher = Station(name="x", lat_deg=s.lat_deg, lon_deg=s.lon_deg, height_m=s.height_m + 1000.0, dish_m=1.0)
    assert np.allclose(m[2], (higher.r_itrf_km - s.r_itrf_km) / 1.0, atol=1e-9)
    assert m[1, 2] > 0.0 and abs(m[0, 2]) < 1e-15  # north leans to +z, east is horizontal


def test_lookup_by_name_and_close_matches():
    assert station("New-Norcia") is STATIONS["new norcia"]
    assert station("MALARGUE") is STATIONS["malargue"]
    with pytest.raises(DataFormatError, match="did you mean Kashgar"):
        station("Kashgr")


def test_scenario_block_takes_names_and_definitions():
    spec = CommsSpec(stations=["cebreros", {"name": "Site", "lat_deg": 10.0, "lon_deg": 20.0, "dish_m": 3.0}])
    assert [s.name for s in spec.stations] == ["Cebreros", "Site"]
    assert CommsSpec().stations == tuple(STATIONS.values())
    with pytest.raises(ValueError, match="unknown ground station"):
        CommsSpec(stations=["Goldstone"])
    with pytest.raises(ValueError, match="each name once"):
        CommsSpec(stations=["cebreros", "Cebreros"])

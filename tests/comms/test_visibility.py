"""Station visibility: the Moon's windows against skyfield, light time, range rate, occultation
geometry, and the spacecraft's windows as the Moon's minus lunar occultations (real iCube-Q)."""

import numpy as np
import pytest

from qamar.comms import visibility as vis
from qamar.comms.stations import STATIONS, Station
from qamar.constants import MOON_RADIUS_KM, SPEED_OF_LIGHT_KM_S
from qamar.ephemeris import Ephemeris
from qamar.errors import EpochOutOfRangeError
from qamar.orbit.trajectory import Trajectory
from qamar.time import utc_to_tdb_s

MASK_DEG = 10.0
WEEK = ("2024-05-08T00:00:00Z", "2024-05-15T00:00:00Z")


def _skyfield_moon_crossings(skyfield_sky, station, t0, t1):
    """Epochs (TDB s) where skyfield's astrometric (light-time corrected, geometric) Moon crosses the mask.

    Skyfield: Rhodes, B. (2019), ascl:1907.024; its own IAU 2000A/2006 Earth model and UT1 table.
    """
    from skyfield.api import wgs84
    from skyfield.searchlib import find_discrete

    ts, eph = skyfield_sky
    site = wgs84.latlon(station.lat_deg, station.lon_deg, elevation_m=station.height_m)
    observer = eph["earth"] + site

    def above(t):
        altitude, _, _ = observer.at(t).observe(eph["moon"]).frame_latlon(site)
        return altitude.degrees > MASK_DEG

    above.step_days = 0.02
    times, _ = find_discrete(ts.tdb_jd(2451545.0 + t0 / 86400.0), ts.tdb_jd(2451545.0 + t1 / 86400.0), above)
    return (times.tdb - 2451545.0) * 86400.0, float(np.mean(times.dut1))


@pytest.mark.parametrize("name", ["kashgar", "new norcia", "malargue", "cebreros"])
def test_moon_windows_match_skyfield(skyfield_sky, name):
    """Same AOS/LOS as skyfield to a few ms with its UT1 - UTC, and < 1 s with UT1 = UTC (the default)."""
    station = STATIONS[name]
    t0, t1 = (float(utc_to_tdb_s(u)) for u in WEEK)
    reference, dut1_s = _skyfield_moon_crossings(skyfield_sky, station, t0, t1)
    for dut1, tolerance_s in ((dut1_s, 0.01), (0.0, 1.0)):
        edges = vis.moon_windows(station, t0, t1, MASK_DEG, dut1_s=dut1).ravel()
        edges = edges[(edges > t0) & (edges < t1)]  # not the span's own ends
        assert len(edges) == len(reference) >= 12
        assert np.max(np.abs(edges - reference)) < tolerance_s


def test_moon_rise_within_seconds_of_skyfield_apparent_rising(skyfield_sky):
    """skyfield.almanac.find_risings uses the apparent Moon (aberration, deflection): a few seconds apart."""
    from skyfield import almanac
    from skyfield.api import wgs84

    ts, eph = skyfield_sky
    station = STATIONS["jiamusi"]
    observer = eph["earth"] + wgs84.latlon(station.lat_deg, station.lon_deg)
    t0, t1 = (float(utc_to_tdb_s(u)) for u in WEEK)
    risings, _ = almanac.find_risings(observer, eph["moon"], ts.tdb_jd(2451545.0 + t0 / 86400.0),
                                      ts.tdb_jd(2451545.0 + t1 / 86400.0), horizon_degrees=MASK_DEG)
    aos = vis.moon_windows(station, t0, t1, MASK_DEG)[:, 0]
    aos = aos[aos > t0]
    assert len(aos) == len(risings)
    assert np.max(np.abs(aos - (risings.tdb - 2451545.0) * 86400.0)) < 3.0


def test_mean_light_time_is_about_1_28_s():
    """Mean Earth-Moon distance 385,000 km -> 1.284 s; range 1.19-1.36 s (mission-brief.md sec. 5)."""
    t0 = float(utc_to_tdb_s("2024-05-01T00:00:00Z"))
    t = t0 + np.arange(0.0, 27.55 * 86400.0, 1800.0)  # one anomalistic month
    seen = vis.look(STATIONS["cebreros"], t)
    assert np.mean(seen.light_time_s) == pytest.approx(1.28, abs=0.01)
    up = seen.elevation_deg > 0.0  # below the horizon the Earth's radius adds up to 21 ms
    assert 1.19 <= seen.light_time_s[up].min() and seen.light_time_s[up].max() <= 1.36
    assert np.allclose(seen.range_km, seen.light_time_s * SPEED_OF_LIGHT_KM_S, rtol=1e-15)


def test_spacecraft_light_time_and_range_rate(icube_trajectory):
    """Light time on iCube-Q passes is in the Earth-Moon band; range rate is d(range)/dt; Doppler = -f rr / c."""
    station = STATIONS["kashgar"]
    t = icube_trajectory.start_tdb_s + np.linspace(3600.0, 2.9 * 86400.0, 400)
    h = 0.5
    here, before, after = (vis.look(station, t + dt, icube_trajectory) for dt in (0.0, -h, h))
    assert 1.19 <= here.light_time_s.min() and here.light_time_s.max() <= 1.36
    numeric = (after.range_km - before.range_km) / (2 * h)
    # Central difference error h^2/6 x (third derivative of range) is < 1e-7 km/s here.
    assert np.max(np.abs(here.range_rate_km_s - numeric)) < 1e-6
    assert np.max(np.abs(here.range_rate_km_s)) > 1.0  # the orbital motion is in there
    assert np.allclose(here.doppler_hz(8.4e9), -8.4e9 * here.range_rate_km_s / SPEED_OF_LIGHT_KM_S)


def _static(r_icrf_km, t_tdb_s):
    """A 'trajectory' resting at one Moon-centred point over a minute around t."""
    states = np.tile(np.concatenate([r_icrf_km, np.zeros(3)]), (2, 1))
    return Trajectory([t_tdb_s - 30.0, t_tdb_s + 30.0], states)


def test_occultation_geometry_behind_in_front_and_at_the_limb():
    """Behind the Moon: blocked by almost a radius; in front: clear by its altitude; at the limb: its offset."""
    station = STATIONS["cebreros"]
    t = float(utc_to_tdb_s("2024-05-20T22:00:00Z"))
    earth = Ephemeris.default().earth_wrt_moon_icrf_km(t)
    toward = earth / np.linalg.norm(earth)
    side = np.cross(toward, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    r = MOON_RADIUS_KM + 100.0
    behind = vis.look(station, t, _static(-r * toward, t)).clearance_km[0]
    front = vis.look(station, t, _static(r * toward, t)).clearance_km[0]
    limb = vis.look(station, t, _static(3000.0 * side, t)).clearance_km[0]
    # The station is up to 0.95 deg off the geocentric line: the ray misses the centre by < 35 km.
    assert behind < -MOON_RADIUS_KM + 35.0
    assert front == pytest.approx(100.0, abs=1e-6)
    # The station sees the Moon within ~1 deg of the geocentric direction: 3000 km x (1 - cos) < 1 km.
    assert limb == pytest.approx(3000.0 - MOON_RADIUS_KM, abs=1.0)


def test_windows_match_dense_sampling(icube_trajectory):
    """Root-found edges against the indicator (above the mask and clear) sampled every second for a day."""
    station = STATIONS["malargue"]
    t0 = icube_trajectory.start_tdb_s + vis.MAX_LIGHT_TIME_S
    t1 = t0 + 86400.0
    windows = vis.spacecraft_visibility(station, icube_trajectory, t0, t1).windows
    t = np.arange(t0, t1, 1.0)
    seen = vis.look(station, t, icube_trajectory)
    inside = (seen.elevation_deg > MASK_DEG) & (seen.clearance_km > 0.0)
    changes = t[1:][inside[1:] != inside[:-1]]
    edges = windows.ravel()
    edges = edges[(edges > t0) & (edges < t1 - 1.0)]
    assert len(edges) == len(changes) >= 4
    assert np.all((changes - edges >= 0.0) & (changes - edges <= 1.0))  # each change is the first second after


def test_spacecraft_windows_are_moon_windows_minus_occultations(icube_trajectory):
    """Real iCube-Q (3 days, 8 stations): windows = Moon windows - occultations, where occultation
    edges agree to the root-finding tolerance and mask edges move by at most the time the sky
    takes to turn through the spacecraft's angular offset from the Moon's centre (<= 1.6 deg)."""
    t0, t1 = icube_trajectory.start_tdb_s + vis.MAX_LIGHT_TIME_S, icube_trajectory.end_tdb_s
    r_max_km = np.max(np.linalg.norm(icube_trajectory.states_icrf[:, :3], axis=1))
    offset_deg = np.degrees(np.arcsin(r_max_km / 355_000.0))  # perigee-class Earth-Moon range
    occultation_edges = mask_edges = 0
    for station in STATIONS.values():
        sc = vis.spacecraft_visibility(station, icube_trajectory, t0, t1, MASK_DEG)
        expected = vis.subtract_intervals(vis.moon_windows(station, t0, t1, MASK_DEG), sc.occulted)
        assert sc.windows.shape == expected.shape
        for got, want in zip(sc.windows.ravel(), expected.ravel()):
            if np.min(np.abs(sc.occulted.ravel() - want), initial=np.inf) < 1e-2 or want in (t0, t1):
                assert abs(got - want) < 1e-2
                occultation_edges += 1
            else:
                moon = vis.look(station, np.array([want - 60.0, want + 60.0]))
                rate_deg_s = abs(np.diff(moon.elevation_deg)[0]) / 120.0
                assert abs(got - want) <= offset_deg / rate_deg_s
                mask_edges += 1
    assert occultation_edges > 20 and mask_edges > 20


def test_contacts_are_sorted_passes_above_the_mask(icube_trajectory):
    found = vis.contacts(icube_trajectory, [STATIONS["cebreros"], STATIONS["new norcia"]])
    assert found.passes and not found.silent_stations()
    aos = [p.aos_tdb_s for p in found.passes]
    assert aos == sorted(aos)
    for p in found.passes:
        assert np.all(p.elevation_deg >= MASK_DEG - 1e-3)
        assert np.all(np.diff(p.t_tdb_s) > 0) and p.min_range_km <= p.max_range_km
    assert found.passes[0].aos_at_span_start  # released in view of Cebreros


def test_interval_algebra():
    a = np.array([[0.0, 10.0], [20.0, 30.0]])
    b = np.array([[5.0, 25.0]])
    assert vis.intersect_intervals(a, b).tolist() == [[5.0, 10.0], [20.0, 25.0]]
    assert vis.subtract_intervals(a, b).tolist() == [[0.0, 5.0], [25.0, 30.0]]
    assert vis.union_intervals([[20.0, 30.0], [0.0, 10.0], [5.0, 25.0]]).tolist() == [[0.0, 30.0]]
    assert vis.subtract_intervals(a, a).shape == (0, 2)


def test_span_outside_the_trajectory_and_no_contact(icube_trajectory):
    with pytest.raises(EpochOutOfRangeError, match="not inside the trajectory"):
        vis.contacts(icube_trajectory, [STATIONS["cebreros"]], icube_trajectory.start_tdb_s,
                     icube_trajectory.end_tdb_s)
    pole = Station(name="South Pole", lat_deg=-90.0, lon_deg=0.0, dish_m=10.0)  # the Moon is at dec > +15 deg
    found = vis.contacts(icube_trajectory, [pole])
    assert found.silent_stations() == ["South Pole"]
    with pytest.raises(vis.NoContactError, match="South Pole -"):
        found.require_passes()

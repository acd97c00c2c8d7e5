"""The delayed link: light time and Earth elevation against skyfield, windows from the geometry,
store-and-forward queues, loss accounting, outages and the rover hop, on a simulated clock."""

import functools

import numpy as np
import pytest

from qamar import data
from qamar.comms.stations import station
from qamar.constants import SPEED_OF_LIGHT_KM_S
from qamar.errors import QamarError
from qamar.ops import link as lk
from qamar.time import utc_to_tai_s

# Near the announced Chang'e-8 target, the Leibnitz-beta plateau (~85.4 S, mission-brief.md sec. 3);
# the longitude is an assumption for the tests (the site is not published).
SITE = lk.LanderSite(lat_deg=-85.4, lon_deg=31.7)
T0_TAI_S = float(utc_to_tai_s("2028-06-08T20:00:00Z"))


@functools.cache
def _skyfield():
    """skyfield's DE440 and the lunar MOON_ME frame (DE440 PA .bpc + NAIF frames kernel), for 2028."""
    api = pytest.importorskip("skyfield.api")
    from skyfield.planetarylib import PlanetaryConstants

    eph = api.load_file(str(data.path("de440s")))
    pc = PlanetaryConstants()
    pc.read_text(api.load.open(str(data.path("moon_frames_de440"))))
    pc.read_binary(api.load.open(str(data.path("moon_pa_de440"))))
    jd_2028 = 2451545.0 + 28.5 * 365.25
    for segment in pc._segment_list:  # skyfield keeps the last segment per body; the .bpc has several
        if segment.initial_jd <= jd_2028 <= segment.final_jd:
            pc._segment_map[segment.body] = segment
    pc.variables["BODY301_RADII"] = [1737.4] * 3  # the LOLA sphere qamar uses (mission-brief.md sec. 5)
    frame = pc.build_frame_named("MOON_ME_DE440_ME421")
    site = pc.build_latlon_degrees(frame, SITE.lat_deg, SITE.lon_deg, elevation_m=SITE.height_m)
    return api.load.timescale(builtin=True), eph, site


def test_light_time_station_to_site_matches_skyfield():
    """Kashgar -> lander site, light-time corrected: same as skyfield's observe() to 2 us (600 m)."""
    ts, eph, site = _skyfield()
    from skyfield.api import wgs84

    kashgar = station("Kashgar")
    t_tai = T0_TAI_S + np.arange(0.0, 86400.0, 7200.0)
    ours = lk.light_time_s(kashgar, SITE, t_tai)
    observer = eph["earth"] + wgs84.latlon(kashgar.lat_deg, kashgar.lon_deg, kashgar.height_m)
    t = ts.tai_jd(2451545.0 + t_tai / 86400.0)
    reference = observer.at(t).observe(eph["moon"] + site).light_time * 86400.0
    assert np.max(np.abs(ours - reference)) < 2e-6
    assert np.all((ours > 1.19) & (ours < 1.37))


def test_earth_elevation_at_site_matches_skyfield():
    """Geometric elevation of the Earth's centre above the site's spherical horizon, to 0.01 deg."""
    ts, eph, site = _skyfield()
    t_tai = T0_TAI_S + np.arange(0.0, 5 * 86400.0, 6 * 3600.0)
    _, ours = lk.earth_elevation_at_site_deg(SITE, t_tai)
    t = ts.tai_jd(2451545.0 + t_tai / 86400.0)
    up = site.at(t).position.km  # wrt the Moon's centre, ICRF
    to_earth = (eph["earth"] - eph["moon"]).at(t).position.km - up
    reference = np.degrees(np.arcsin(np.sum(up * to_earth, axis=0)
                                     / np.linalg.norm(up, axis=0) / np.linalg.norm(to_earth, axis=0)))
    assert np.max(np.abs(ours - reference)) < 0.01


def test_light_time_mean_and_range_over_a_month():
    """Mean 1.28 s (385,000 km / c = 1.284 s) and 1.19..1.36 s while the station sees the site
    (mission-brief.md sec. 5); the Earth's elevation at the south pole swings about +-7 deg."""
    t_tai = T0_TAI_S + np.arange(0.0, 27.55 * 86400.0, 3 * 3600.0)  # one anomalistic month
    view = lk.station_site_look(station("Kashgar"), SITE, t_tai)
    assert np.mean(view.light_time_s) == pytest.approx(385_000.0 / SPEED_OF_LIGHT_KM_S, abs=0.01)
    up = view.elevation_deg > 0.0
    assert 1.19 <= view.light_time_s[up].min() and view.light_time_s[up].max() <= 1.36
    # At the pole the Earth's elevation is minus the sub-Earth latitude (libration in latitude: 6.7 deg
    # optical at most, plus < 0.1 deg physical) less the 0.26 deg parallax of the lunar radius.
    _, elevation = lk.earth_elevation_at_site_deg(lk.LanderSite(-90.0, 0.0), t_tai)
    assert 5.5 < elevation.max() < 6.9 - 0.26 + 0.1 and -6.9 - 0.26 - 0.1 < elevation.min() < -5.5


def test_windows_need_the_station_and_the_site_to_see_each_other():
    """Inside every window both see each other; between windows one of them does not; a horizon
    profile (higher to the north-east) only removes time."""
    kashgar = station("Kashgar")
    start, stop = T0_TAI_S, T0_TAI_S + 3 * 86400.0
    windows = lk.earth_lander_windows([kashgar], SITE, start, stop)
    assert len(windows) >= 2

    def both_see(t):
        _, el = lk.earth_elevation_at_site_deg(SITE, t)
        return (lk.station_site_look(kashgar, SITE, t).elevation_deg > lk.DEFAULT_STATION_MASK_DEG) & (el > 0.0)

    inside = windows.mean(axis=1)
    gaps = 0.5 * (windows[:-1, 1] + windows[1:, 0])
    assert both_see(inside).all() and not both_see(gaps).any()
    assert both_see(windows[:, 0] + 1.0).all() and not both_see(windows[1:, 0] - 1.0).any()

    ridge = lk.LanderSite(SITE.lat_deg, SITE.lon_deg, horizon_deg=lambda az: 3.0 + 2.0 * np.cos(np.radians(az - 45.0)))
    blocked = lk.earth_lander_windows([kashgar], ridge, start, stop)
    assert np.sum(np.diff(blocked)) < np.sum(np.diff(windows))
    for a, b in blocked:
        assert np.any((windows[:, 0] <= a + 1e-3) & (b <= windows[:, 1] + 1e-3))


def test_earth_lander_hop_delay_is_the_light_time_and_a_relay_fills_gaps():
    kashgar = station("Kashgar")
    stop = T0_TAI_S + 2 * 86400.0
    hop = lk.earth_lander_hop([kashgar], SITE, T0_TAI_S, stop, processing_delay_s=0.0)
    t = T0_TAI_S + 3 * 3600.0 + 123.0
    assert hop.is_open(t)
    assert hop.delay_at(t) == pytest.approx(float(lk.light_time_s(kashgar, SITE, t)[0]), abs=2e-6)
    gap = 0.5 * (hop.windows_tai_s[0, 1] + hop.windows_tai_s[1, 0])
    assert not hop.is_open(gap) and not hop.is_open(stop + 1.0)
    relay = [(lk.tai_s_to_utc(gap - 600.0), lk.tai_s_to_utc(gap + 600.0))]
    relayed = lk.earth_lander_hop([kashgar], SITE, T0_TAI_S, stop, processing_delay_s=0.0, relay_windows_utc=relay,
                                  relay_extra_delay_s=0.1)
    assert relayed.is_open(gap) and relayed.delay_at(gap) == pytest.approx(
        float(lk.light_time_s(kashgar, SITE, gap)[0]) + 0.1, abs=2e-6)
    assert relayed.delay_at(t) == pytest.approx(hop.delay_at(t))


# --- the simulated link (no geometry: fixed windows) -------------------------------------------


def _link(windows, loss=0.0, outages=(), rover_available=None, seed=1):
    clock = lk.SimClock(0.0)
    earth = lk.Hop("earth-lander", 1.28, np.asarray(windows, dtype=float), outages_tai_s=np.asarray(outages),
                   loss_probability=loss)
    rover = lk.Hop("lander-rover", 0.05, available=rover_available, loss_probability=loss, poll_s=1.0)
    link = lk.DelayedLink(clock, earth, rover, seed=seed)
    got = {"up": [], "down": []}
    link.on_uplink_delivered = lambda packet, t: got["up"].append((packet, t))
    link.on_downlink_delivered = lambda packet, t: got["down"].append((packet, t))
    return clock, link, got


def test_packets_sent_outside_a_window_wait_and_leave_at_its_opening_in_order():
    clock, link, got = _link([(100.0, 200.0), (500.0, 600.0)])
    departures = []
    clock.at(10.0, link.send_up, b"first", departures.append)
    clock.at(20.0, link.send_up, b"second", departures.append)
    clock.at(150.0, link.send_up, b"third", departures.append)
    clock.at(300.0, link.send_down, b"tm")
    clock.run_until(99.0)
    assert got["up"] == [] and link.counts["up"].waiting == 2 and link.counts["up"].accounted
    clock.run_until(1000.0)
    assert departures == [100.0, 100.0, 150.0]
    assert [p for p, _ in got["up"]] == [b"first", b"second", b"third"]
    assert [t for _, t in got["up"]] == pytest.approx([101.33, 101.33, 151.33])
    assert got["down"] == [(b"tm", pytest.approx(500.0 + 1.28))]  # leaves the rover at 300, waits at the lander
    for counts in link.counts.values():
        assert counts.accounted and counts.waiting == counts.in_flight == 0 and counts.lost_total == 0


def test_with_loss_every_packet_is_delivered_or_counted_lost():
    clock, link, got = _link([(0.0, 5000.0), (6000.0, 9000.0)], loss=0.1, seed=7)
    n = 5000
    for i in range(n):
        clock.at(i * 1.5, link.send_up, i.to_bytes(4, "big"))
        clock.at(i * 1.5, link.send_down, i.to_bytes(4, "big"))
    clock.run_until(4000.0)
    assert all(c.accounted for c in link.counts.values())  # mid-run too: some waiting or in flight
    clock.run_until(20_000.0)
    for direction in ("up", "down"):
        counts = link.counts[direction]
        assert counts.sent == n and counts.delivered + counts.lost_total == n
        assert counts.delivered == len(got[direction])
        # two hops at 10 %: 19 % lost; 5 sigma of the binomial is 2.8 %
        assert counts.lost_total / n == pytest.approx(0.19, abs=0.028)
    assert len(link.lost_log) == sum(c.lost_total for c in link.counts.values())
    ids = [int.from_bytes(p, "big") for p, _ in got["up"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, no duplicates
    again = _link([(0.0, 5000.0), (6000.0, 9000.0)], loss=0.1, seed=7)
    for i in range(n):
        again[0].at(i * 1.5, again[1].send_up, i.to_bytes(4, "big"))
        again[0].at(i * 1.5, again[1].send_down, i.to_bytes(4, "big"))
    again[0].run_until(20_000.0)
    assert [p for p, _ in again[2]["up"]] == [p for p, _ in got["up"]]  # seeded


def test_outages_hold_packets_until_they_end():
    outages = lk.utc_intervals_to_tai_s([("2000-01-01T12:01:00Z", "2000-01-01T12:02:00Z")])
    start = float(outages[0, 0]) - 60.0
    clock, link, got = _link([(start, start + 3600.0)], outages=outages)
    clock.at(start + 90.0, link.send_up, b"x")
    clock.run_until(start + 3600.0)
    assert got["up"][0][1] == pytest.approx(outages[0, 1] + 1.33)
    with pytest.raises(QamarError, match="ends before it starts"):
        lk.utc_intervals_to_tai_s([("2028-01-02T00:00:00Z", "2028-01-01T00:00:00Z")])


def test_rover_hop_range_and_line_of_sight():
    """The rover drives 0.1 m/s away from the lander and back: out of range 500 m between 5000 s and 15000 s."""
    position = lambda t: (1000.0 - abs(t - 10_000.0) * 0.1, 0.0)
    available = lk.range_line_of_sight(position, (0.0, 0.0), max_range_m=500.0)
    clock, link, got = _link([(0.0, 1e6)], rover_available=available)
    clock.at(6000.0, link.send_up, b"cmd")
    clock.at(6000.0, link.send_down, b"tm")
    clock.run_until(30_000.0)
    assert got["up"][0][1] == pytest.approx(15_000.0 + 0.05, abs=1.0)  # waits at the lander, polled every 1 s
    assert got["down"][0][1] == pytest.approx(15_000.0 + 0.05 + 1.28, abs=1.0)
    blocked = lk.range_line_of_sight(position, (0.0, 0.0), 5000.0, line_of_sight=lambda t: t > 20_000.0)
    assert not blocked(10_000.0) and blocked(25_000.0)
    gone = lk.lander_rover_hop(lambda t: False, poll_s=1.0)  # out of reach for good: still answers quickly
    assert gone.next_open(0.0) == gone.poll_horizon_s and not gone.is_open(gone.poll_horizon_s)


def test_clock_runs_events_in_time_order_without_sleeping():
    clock, seen = lk.SimClock(0.0), []
    clock.at(5.0, seen.append, "b")
    clock.at(1.0, seen.append, "a")
    clock.at(5.0, seen.append, "c")
    clock.after(1e9, seen.append, "far")
    clock.run_until(10.0)
    assert seen == ["a", "b", "c"] and clock.now_tai_s == 10.0 and clock.next_event_tai_s == 1e9
    with pytest.raises(QamarError, match="loss_probability"):
        lk.Hop("x", loss_probability=1.5)

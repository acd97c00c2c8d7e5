"""The rover twin: commands on a DEM with slope limits, battery against qamar.rover.energy, hibernation,
forged and replayed telecommands refused (and remembered across a restart), small images."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from qamar.constants import AU_KM
from qamar.ops.link import SimClock
from qamar.ops.packets import CommandSigner, PacketCodec, TelemetryPacket
from qamar.ops.twin import LightSample, RoverTwin, SiteLight, TwinConfig
from qamar.rover.energy import solar_power_w
from qamar.rover.model import RoverSpec
from qamar.rover.traverse import cost_map
from qamar.surface.terrain import Dem, pixel_lat_lon, xy_to_pixel

KEY = b"t" * 32
R_MOON_M = 1737400.0
SOUTH_POLAR = CRS.from_proj4(f"+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R={R_MOON_M} +units=m +no_defs")
T0 = 900_000_000.0  # TAI s past J2000 (2028-07)


def polar_dem(elevation_m, pixel_m=10.0, corner_xy_m=(-19000.0, -4000.0)) -> Dem:
    return Dem(np.asarray(elevation_m, float), Affine(pixel_m, 0, corner_xy_m[0], 0, -pixel_m, corner_xy_m[1]),
               SOUTH_POLAR)


def sun(el_deg=5.0, az_deg=90.0, fraction=1.0, earth=True):
    sample = LightSample(az_deg, el_deg, fraction, AU_KM, earth)
    return lambda t, lat, lon: sample


def wall_dem(n=40):
    """Flat ground with a 60 deg wall across the middle columns except a gap in the top rows."""
    z = np.zeros((n, n))
    z[8:, 19:21] = 17.0  # a wall 2 pixels wide and 17 m high: 60 deg faces at 10 m pixels
    return polar_dem(z)


class Rig:
    """A twin on a clock whose downlink is decoded into ``telemetry``; the ground signs with ``signer``."""

    def __init__(self, dem, light=None, rover=None, config=None, state_path=None, start_rc=(20, 5), key=KEY):
        self.clock = SimClock(T0)
        self.codec = PacketCodec()
        self.telemetry: list[TelemetryPacket] = []
        self.rover = rover or RoverSpec()
        self.costs = cost_map(dem, self.rover, craters=False)
        self.lat, self.lon = pixel_lat_lon(dem)
        start = (float(self.lat[start_rc]), float(self.lon[start_rc]))
        self.twin = RoverTwin(self.clock, lambda p: self.telemetry.append(self.codec.decode(p)), self.costs,
                              self.rover, light or sun(), start, KEY, config=config, state_path=state_path)
        self.signer = CommandSigner(key)
        self.twin.start()

    def send(self, line, key=None):
        packet = (CommandSigner(key) if key else self.signer).sign(line, self.clock.now_tai_s)
        self.twin.receive(packet, self.clock.now_tai_s)
        return packet

    def statuses(self):
        return [(p.values["arsn"], p.values["stage"], p.values["reason"]) for p in self.telemetry
                if p.definition.name == "COMMAND_STATUS"]

    def goal(self, rc):
        return f"lat={self.lat[rc]:.10f} lon={self.lon[rc] % 360:.10f}"


def test_drive_to_goes_around_a_wall_and_respects_the_slope_limit():
    rig = Rig(wall_dem(), rover=RoverSpec.model_validate({"mobility": {"speed_m_per_s": 0.05}}))
    rig.send("SET_MODE mode=DRIVE")
    rig.send(f"DRIVE_TO {rig.goal((20, 35))} speed_cm_s=5")
    rig.clock.run_for(4 * 3600.0)
    twin = rig.twin
    assert twin.pixel == (20, 35)
    assert [s for s in rig.statuses() if s[0] == 2][-1][1] == "COMPLETED"
    # the straight line is 300 m; the wall's gap in the top rows makes it longer
    assert twin.odometer_m > 320.0
    visited = {tuple(int(v) for v in np.floor(np.asarray(xy_to_pixel(x, y, rig.costs.dem)) + 0.5))
               for _, x, y in twin.track_xy}
    assert all(rig.costs.slope_deg[r, c] <= rig.rover.mobility.max_slope_deg for r, c in visited)
    tilts = [p.values["tilt_deg"] for p in rig.telemetry if p.definition.name == "NAVIGATION"]
    assert max(tilts) <= rig.rover.mobility.max_slope_deg
    # blocked goal (on the wall): FAILED with the planner's reason, the rover stays
    rig.send(f"DRIVE_TO {rig.goal((30, 20))}")
    rig.clock.run_for(60.0)
    assert rig.statuses()[-1] == (3, "FAILED", "EXECUTION_FAILED") and twin.pixel == (20, 35)
    assert any("slope" in text for _, text in twin.events)


def test_battery_follows_qamar_rover_energy_while_driving_idle_and_hibernating():
    spec = RoverSpec()
    p = spec.power
    light = sun(el_deg=60.0, az_deg=30.0)
    solar_w = float(solar_power_w(spec.solar, 1.0, 30.0, 60.0, AU_KM))
    assert 0 < solar_w < p.drive_w  # a net drain while driving, a net charge while idle at 50 W
    rig = Rig(polar_dem(np.zeros((30, 60))), light=light, start_rc=(15, 5),
              config=TwinConfig(start_battery_fraction=0.9))
    b0 = rig.twin.battery_wh
    rig.send("SET_MODE mode=DRIVE")
    rig.send(f"DRIVE_TO {rig.goal((15, 15))} speed_cm_s=1")  # 100 m at 1 cm/s: 10,000 s
    rig.clock.run_for(10_000.0 + 1.0)
    twin = rig.twin
    twin.advance()  # the state between events is brought up to date on demand
    assert twin.pixel == (15, 15)
    drive_h = twin.odometer_m / 0.01 / 3600.0
    assert twin.odometer_m == pytest.approx(100.0, rel=2e-3)
    expected = b0 + (solar_w - p.drive_w) * drive_h / p.discharge_efficiency  # battery_step, a deficit
    idle_h = 10_001.0 / 3600.0 - drive_h
    expected += (solar_w - p.idle_w) * idle_h * p.charge_efficiency  # then awake and standing: a surplus
    assert twin.battery_wh == pytest.approx(expected, rel=1e-9)
    # hibernation on command: the hibernate load, then awake again after its duration
    b1 = twin.battery_wh
    rig.send("HIBERNATE duration_s=3600")
    rig.clock.run_for(1800.0)
    twin.advance()
    assert twin.mode == "HIBERNATE" and twin.battery_wh == pytest.approx(
        min(p.battery_wh, b1 + (solar_w - p.hibernate_w) * 0.5 * p.charge_efficiency), rel=1e-9)
    rig.clock.run_for(1900.0)
    assert twin.mode == "DRIVE" and not twin.hibernating


def test_hibernates_at_the_reserve_in_the_dark_and_wakes_when_recharged():
    spec = RoverSpec()
    reserve = spec.power.battery_wh * spec.power.reserve_fraction
    lit = {"on": False}

    def light(t, lat, lon):
        return LightSample(90.0, 10.0, 1.0 if lit["on"] else 0.0, AU_KM, True)

    rig = Rig(polar_dem(np.zeros((20, 20))), light=light, start_rc=(10, 10),
              config=TwinConfig(start_battery_fraction=0.21))
    rig.send("SET_MODE mode=DRIVE")
    rig.send(f"DRIVE_TO {rig.goal((10, 15))}")
    rig.clock.run_for(2 * 3600.0)
    twin = rig.twin
    assert twin.hibernating and twin.mode == "HIBERNATE"
    at_reserve = next(i for i, x in enumerate(twin.log) if x.battery_wh <= reserve)
    assert twin.log[at_reserve].battery_wh > reserve - spec.power.drive_w * 60 / 3600 / 0.95  # a tick at most
    assert twin.log[at_reserve + 1].load_w == spec.power.hibernate_w
    assert [s for s in rig.statuses() if s[0] == 2][-1][1:] == ("FAILED", "EXECUTION_FAILED")
    modes = [p.values["mode"] for p in rig.telemetry if p.definition.name == "HOUSEKEEPING"]
    assert modes[-1] == "HIBERNATE"
    lit["on"] = True
    rig.clock.run_for(3 * 3600.0)
    assert not twin.hibernating and twin.mode == "DRIVE"


def test_forged_and_replayed_commands_are_refused_counted_and_remembered(tmp_path):
    state = tmp_path / "twin.json"
    rig = Rig(polar_dem(np.zeros((20, 20))), state_path=state, start_rc=(10, 5))
    first = rig.send("NOOP")
    rig.send("NOOP", key=b"x" * 32)  # forged: the attacker has not the key
    rig.twin.receive(first)  # replayed
    rig.twin.receive(b"\x00\x01garbage")
    forged, replayed, garbage = rig.statuses()[-3:]
    assert forged[1:] == ("REFUSED", "BAD_MAC") and replayed == (1, "REFUSED", "REPLAYED")
    assert garbage == (0, "REFUSED", "MALFORMED")
    counts = rig.twin.counts
    assert counts.accepted == 1 and counts.refused_total == 3
    assert dict(counts.refused) == {"BAD_MAC": 1, "REPLAYED": 1, "MALFORMED": 1}
    rig.clock.run_for(61.0)
    hk = [p for p in rig.telemetry if p.definition.name == "HOUSEKEEPING"][-1]
    assert hk.values["commands_accepted"] == 1 and hk.values["commands_refused"] == 3
    limits = {p.name: p for p in hk.definition.parameters}["bus_voltage_v"].limits
    assert hk.values["battery_soc_pct"] == 100.0 and hk.values["bus_voltage_v"] < limits.warning_high  # no alarm
    # a restarted twin remembers the last anti-replay number: the old packet is still refused
    again = Rig(polar_dem(np.zeros((20, 20))), state_path=state, start_rc=(10, 5))
    again.twin.receive(first)
    assert again.statuses()[-1] == (1, "REFUSED", "REPLAYED")
    assert again.twin.verifier.last_arsn == 1


def test_a_small_image_is_a_hillshade_lit_from_the_sun():
    z = np.zeros((80, 80))
    z[:, 40:] = (np.arange(40) * 1.0)[None, :]  # a slope rising to map +x (5.7 deg)
    dem = polar_dem(z)
    rig = Rig(dem, light=sun(el_deg=10.0, az_deg=0.0), start_rc=(40, 40), config=TwinConfig(image_s=5.0))
    rig.send("IMAGE camera=NAVCAM_LEFT")
    rig.clock.run_for(10.0)
    lines = [p for p in rig.telemetry if p.definition.name == "IMAGE_LINE"]
    assert len(lines) == 64 and [p.values["line"] for p in lines] == list(range(64))
    image = np.array([[p.values[f"pixel_{i:02d}"] for i in range(64)] for p in lines])
    assert np.array_equal(image, rig.twin.render_image())
    # Lambertian: flat ground at sin(10 deg); the slope facing away from or toward the Sun differs from it
    flat = image[:, 5].mean()
    assert flat == pytest.approx(255 * np.sin(np.radians(10.0)), abs=1.0)
    assert abs(image[:, 60].mean() - flat) > 5
    assert rig.statuses()[-1][1] == "COMPLETED"
    dark = Rig(dem, light=sun(fraction=0.0), start_rc=(40, 40))
    assert not dark.twin.render_image().any()


def test_site_light_looks_up_the_step_and_cell_of_the_point_series():
    """SiteLight on a crop of the connecting-ridge DEM returns the point series of the block under
    the rover at the step holding the epoch (the physics of the series is tested in tests/surface)."""
    from qamar import data
    from qamar.ops.link import tdb_to_tai_s
    from qamar.surface.illumination import point_series
    from qamar.surface.terrain import read_dem

    dem = read_dem(data.path("dem_site01_10m"), window=((600, 700), (900, 1000)))
    light = SiteLight.build(dem, "2028-06-10T00:00:00Z", 6.0, step_h=0.5, factor=10)
    lat, lon = pixel_lat_lon(dem)
    point = (float(lat[55, 33]), float(lon[55, 33]))
    series = point_series(light.grid, light.horizon, *point, light.tracks)
    t = float(tdb_to_tai_s(light.tracks.t_tdb_s[3])) + 600.0
    sample = light(t, *point)
    assert (sample.sun_el_deg, sample.sun_fraction, sample.earth_in_view) == (
        pytest.approx(series.sun_el_deg[3]), pytest.approx(series.sun_fraction[3]), bool(series.earth_in_view[3]))
    assert abs(sample.sun_el_deg) < 1.6 + 90 - abs(point[0]) + 1.0  # the Sun skims the polar horizon
    with pytest.raises(Exception, match="longer span"):
        light(t + 10 * 86400.0, *point)


def test_the_live_twin_talks_tcp_to_a_ground():
    """A tiny fake ground (a socket server in a thread) sends two telecommands back to back and reads
    the twin's telemetry stream; the twin runs 600x real time with a 1.28 s one-way delay."""
    import socket
    import threading

    from qamar.ops.link import Hop
    from qamar.ops.packets import split_stream
    from qamar.ops.twin import run_live

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received, done = [], threading.Event()

    def ground():
        conn, _ = server.accept()
        with conn:
            signer = CommandSigner(KEY)
            conn.sendall(signer.sign("SET_MODE mode=SCIENCE", T0) + signer.sign("NOOP", T0))
            buffer = b""
            conn.settimeout(20.0)
            while not done.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    break
                packets, buffer = split_stream(buffer + chunk)
                received.extend(PacketCodec().decode(p) for p in packets)
                stages = [p.values["stage"] for p in received if p.definition.name == "COMMAND_STATUS"]
                if stages.count("COMPLETED") == 2 and any(p.definition.name == "HOUSEKEEPING" and
                                                          p.values["mode"] == "SCIENCE" for p in received):
                    done.set()
        server.close()

    thread = threading.Thread(target=ground, daemon=True)
    thread.start()
    dem = polar_dem(np.zeros((20, 20)))
    rover = RoverSpec()
    costs = cost_map(dem, rover, craters=False)
    lat, lon = pixel_lat_lon(dem)

    def make_twin(clock, downlink):
        return RoverTwin(clock, downlink, costs, rover, sun(), (float(lat[10, 10]), float(lon[10, 10])), KEY)

    twin = run_live(make_twin, ("127.0.0.1", port), T0, earth_hop=Hop("earth-lander", 1.28), speed=600.0,
                    stop=lambda: done.is_set())
    thread.join(5.0)
    assert done.is_set() and twin.counts.accepted == 2 and twin.mode == "SCIENCE"
    assert [p.values["stage"] for p in received if p.definition.name == "COMMAND_STATUS"][:2] == ["ACCEPTED", "STARTED"]
    hk = [p for p in received if p.definition.name == "HOUSEKEEPING"]
    assert hk[0].t_tai_s == pytest.approx(T0, abs=1.0)  # simulated time starts at the given epoch
    first_status = next(p for p in received if p.definition.name == "COMMAND_STATUS")
    assert first_status.t_tai_s >= T0 + 1.28  # the telecommand waited for the light time on the twin's side
    with pytest.raises(Exception, match="cannot reach the ground"):
        run_live(make_twin, ("127.0.0.1", port), T0, connect_timeout_s=1.0)

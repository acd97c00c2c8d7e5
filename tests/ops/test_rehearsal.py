"""The rehearsal: ground, link and twin on one clock drive a planned traverse; the counts close,
the archive holds every received packet once, and the report tells the story."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qamar.ops.link import Hop
from qamar.ops.rehearsal import RehearsalConfig, plan_traverse, rehearse, traverse_sequence
from qamar.ops.twin import TwinConfig
from qamar.rover.model import RoverSpec
from qamar.rover.traverse import cost_map
from qamar.surface.terrain import pixel_lat_lon
from qamar.time import utc_to_tai_s

from .test_twin import polar_dem, sun, wall_dem

START_UTC = "2028-10-01T00:00:00Z"


def _setup(loss=0.0):
    rover = RoverSpec.model_validate({"mobility": {"speed_m_per_s": 0.05}})
    dem = wall_dem(60)
    costs = cost_map(dem, rover, craters=False)
    lat, lon = pixel_lat_lon(dem)
    t0 = float(utc_to_tai_s(START_UTC))
    # Earth in view except 1 h to 2 h 30 after the start (a gap the commands must wait out)
    earth = Hop("earth-lander", 1.28, np.array([[t0 - 10.0, t0 + 3600.0], [t0 + 9000.0, t0 + 40 * 86400.0]]),
                loss_probability=loss)
    point = lambda rc: (float(lat[rc]), float(lon[rc]))
    return rover, costs, earth, point


def test_the_sequence_follows_the_route():
    rover, costs, _, point = _setup()
    route, stops = plan_traverse(costs, rover, point((30, 5)), [point((5, 30)), point((30, 50))])
    assert stops[-1] == route.rows.size - 1 and 0 < stops[0] < stops[-1]
    seq = traverse_sequence(route, stops, START_UTC, rover.mobility.speed_m_per_s)
    lines = [str(e.call) for e in seq.entries]
    assert lines[0] == "SET_MODE mode=DRIVE" and sum(line.startswith("IMAGE") for line in lines) == 2
    assert sum(line.startswith("DRIVE_TO") for line in lines) == route.rows.size - 1
    times = seq.release_times_tai_s()
    assert times == sorted(times)
    drive_s = route.length_m / rover.mobility.speed_m_per_s
    assert times[-1] - times[0] == pytest.approx(drive_s * 1.1 - (route.distance_m[-1] - route.distance_m[-2])
                                                 / 0.05 * 1.1, rel=1e-6)


def test_a_rehearsal_drives_the_traverse_and_its_counts_close(tmp_path):
    rover, costs, earth, point = _setup(loss=0.05)
    config = RehearsalConfig(seed=4, twin=TwinConfig(telemetry_period_s=120.0))
    summary = rehearse(costs, rover, sun(el_deg=60.0), START_UTC, point((30, 5)), [point((5, 30)), point((30, 50))],
                       earth, tmp_path, lander_lat_lon=point((30, 10)), config=config)
    assert summary["wall_s"] < 30.0
    # the rover got to the goal along the plan
    assert summary["final_position"]["lat_deg"] == pytest.approx(summary["goal"]["lat_deg"], abs=1e-6)
    assert summary["odometer_m"] == pytest.approx(summary["route_planned_m"], rel=0.02)
    # commands: every one that entered the uplink is accounted for
    s = summary
    assert s["ground_stages"]["QUEUED"] == 0  # every command of the sequence went to the transmitter
    assert s["commands_sent"] == s["commands_queued"] + s["commands_hostile"]
    assert s["commands_sent"] == (s["commands_completed"] + s["commands_refused"] + s["commands_failed"]
                                  + s["commands_running"] + s["commands_lost"] + s["commands_in_link"])
    assert s["commands_refused"] >= 2 and s["commands_refused_by_reason"].get("BAD_MAC") == 1
    assert s["commands_hostile"] == 2
    # telemetry: emitted = received + lost (+ still in the link, none after the drain)
    assert s["packets_in_link"] == 0 and s["packets_lost"] > 0
    assert s["packets_emitted"] == s["packets_received"] + s["packets_lost"]
    # the archive holds every received packet exactly once; its sequence gaps are the losses
    assert s["packets_archived"] == s["packets_received"]
    assert s["archive_sequence_repeated"] == 0 and s["archive_sequence_backwards"] == 0
    assert s["archive_sequence_gaps"] <= s["packets_lost"]
    assert s["archive"] == f"sqlite:///{tmp_path / 'ops.db'}"
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    report = (tmp_path / "report.html").read_text()
    for section in ("Timeline", "Route driven", "Battery", "Link windows", "Alarms"):
        assert f">{section}</h2>" in report
    assert (tmp_path / "route.png").stat().st_size > 1000 and (tmp_path / "battery.png").stat().st_size > 1000


def test_a_spatiotemporal_plan_is_driven_with_its_waits(tmp_path):
    """A dark band the battery cannot cross until it is lit: the plan waits at its edge, the sequence
    releases the next DRIVE_TO only after the wait, and the twin (lit as the plan's light) follows."""
    from qamar.constants import AU_KM
    from qamar.ops.rehearsal import spacetime_sequence
    from qamar.ops.twin import LightSample
    from qamar.rover.spacetime import LightGrid, plan_spacetime
    from qamar.surface.terrain import lat_lon_to_xy, xy_to_pixel

    rover = RoverSpec.model_validate({"mobility": {"speed_m_per_s": 0.05}, "power": {"battery_wh": 30.0}})
    dem = polar_dem(np.zeros((10, 60)))
    costs = cost_map(dem, rover, craters=False)
    lat, lon = pixel_lat_lon(dem)
    step_h, dark_until_h = 0.5, 3.0
    solar = np.full((24, 10, 60), 60.0)
    solar[: int(dark_until_h / step_h), :, 20:45] = 0.0  # 250 m of dark for 3 h: 56 Wh to cross, 24 Wh usable
    grid = LightGrid(solar, np.ones_like(solar, bool), step_h)
    plan = plan_spacetime(costs, grid, (float(lat[5, 2]), float(lon[5, 2])), (float(lat[5, 55]), float(lon[5, 55])),
                          rover, start_utc=START_UTC)
    assert plan.feasible, plan.reason
    seq = spacetime_sequence(plan, costs, START_UTC, 0.05)
    offsets = [e.offset_s for e in seq.entries if str(e.call).startswith("DRIVE_TO")]
    assert max(np.diff(offsets)) > 1800.0  # the wait at the edge of the dark band
    assert offsets[-1] >= dark_until_h * 3600.0 - 300.0

    t0 = float(utc_to_tai_s(START_UTC))

    def light(t, la, lo):  # the plan's light, as a twin light model (Sun high enough for 60 W)
        r, c = (int(np.floor(float(v) + 0.5)) for v in xy_to_pixel(*lat_lon_to_xy(la, lo, dem), dem))
        k = min(int((t - t0) / 3600.0 / step_h), 23)
        return LightSample(0.0, 30.0, 1.0 if solar[k, r, c] > 0 else 0.0, AU_KM, True)

    earth = Hop("earth-lander", 1.28, None)
    summary = rehearse(costs, rover, light, START_UTC, (float(lat[5, 2]), float(lon[5, 2])), [],
                       earth, tmp_path, config=RehearsalConfig(attacks=False), plan=plan)
    assert summary["final_position"]["lat_deg"] == pytest.approx(float(lat[5, 55]), abs=1e-6)
    assert summary["commands_failed"] == 0 and summary["hibernated_h"] == 0.0
    assert summary["battery_min_wh"] >= 0.2 * 30.0 - 40.0 * 60 / 3600 / 0.95

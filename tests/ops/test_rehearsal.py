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

from .test_twin import sun, wall_dem

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

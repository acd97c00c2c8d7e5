"""``qamar ops``: the four commands, a rehearsal of a small scenario on a crop of the ridge DEM,
and the errors a user meets (no ground running, no key)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qamar.cli import app

runner = CliRunner()
KEY_HEX = "ab" * 32

SMALL = """name: small rehearsal
rover:
  site:
    dem: dem_site01_10m
    window_px: [440, 860, 160, 120]   # a 1.6 x 1.2 km crop of the connecting ridge around start, goal and lander
    map_factor: 10                    # light and plan on 100 m blocks (quick)
  vehicle: {mobility: {speed_m_per_s: 0.05}}
  lander: {lat_deg: -89.37266, lon_deg: 225.8306}   # change8-rover.yaml's: its antenna sees start and goal
  light: {start_utc: 2028-10-03T01:00:00Z, days: 1}
  psr: {mode: ignore}
  traverse:
    start: {lat_deg: -89.37148, lon_deg: 225.9354}
    goal: {lat_deg: -89.37618, lon_deg: 225.7282}     # change8-rover.yaml's haven beside the lander
    start_utc: 2028-10-03T01:00:00Z
    days: 0.5
    craters: false
"""


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def test_ops_lists_its_commands():
    result = runner.invoke(app, ["ops", "--help"])
    assert result.exit_code == 0
    for name in ("ground", "twin", "send", "rehearse"):
        assert name in result.output


def test_rehearse_a_small_scenario(scenario, tmp_path):
    out = tmp_path / "rehearsal"
    result = runner.invoke(app, ["ops", "rehearse", str(scenario), "--out", str(out), "--loss", "0.02"])
    assert result.exit_code == 0, result.output
    assert "commands sent" in result.output and "report.html" in result.output
    s = json.loads((out / "summary.json").read_text())
    for key in ("commands_sent", "commands_completed", "commands_refused", "packets_received", "packets_lost",
                "archive"):
        assert key in s
    assert s["archive"].startswith("sqlite:///") and (out / "ops.db").exists()
    assert s["packets_emitted"] == s["packets_received"] + s["packets_lost"] + s["packets_in_link"]
    assert s["commands_refused"] == 2 and s["odometer_m"] > 0
    assert "Link windows" in (out / "report.html").read_text()


def test_send_and_twin_without_a_ground_say_how_to_start_one(scenario, monkeypatch):
    result = runner.invoke(app, ["ops", "send", "NOOP", "--http", "127.0.0.1:9"])
    assert result.exit_code == 2 and "qamar ops ground" in result.output
    monkeypatch.delenv("QAMAR_OPS_KEY", raising=False)
    monkeypatch.delenv("QAMAR_OPS_KEY_FILE", raising=False)
    result = runner.invoke(app, ["ops", "twin", str(scenario)])
    assert result.exit_code == 2 and "QAMAR_OPS_KEY" in result.output
    monkeypatch.setenv("QAMAR_OPS_KEY", KEY_HEX)
    result = runner.invoke(app, ["ops", "twin", str(scenario), "--ground", "127.0.0.1:9", "--hours", "2",
                                 "--start", "2028-10-03T01:00:00Z", "--state", str(scenario.parent / "s.json")])
    assert result.exit_code == 2 and "cannot reach the ground" in result.output


def test_ground_and_send_call_the_ground_service(monkeypatch):
    from qamar.ops import server

    calls = []
    monkeypatch.setattr(server, "serve_ground", lambda *a, **k: calls.append(("serve", a, k)))
    monkeypatch.setattr(server, "post_command", lambda line, **k: {"command_id": 1, "line": line, **k})
    assert runner.invoke(app, ["ops", "ground", "--db", "sqlite:///x.db", "--http", "127.0.0.1:8081"]).exit_code == 0
    assert calls == [("serve", ("sqlite:///x.db",), {"http": "127.0.0.1:8081", "tcp": "127.0.0.1:10025",
                                                     "site_dem": None})]
    result = runner.invoke(app, ["ops", "send", "DRIVE_TO lat=-89.45 lon=222.7", "--at", "2028-06-01T02:00:00Z"])
    assert result.exit_code == 0 and json.loads(result.output)["at_utc"] == "2028-06-01T02:00:00Z"


@pytest.mark.slow
def test_rehearse_the_change8_scenario(tmp_path):
    """The issue's rehearsal on scenarios/change8-rover.yaml (about 70 s at a load of 3 on 2 cores): the counts
    close and the archive holds each received packet once, whatever the traverse met."""
    from pathlib import Path

    scenario = Path(__file__).parents[2] / "scenarios" / "change8-rover.yaml"
    result = runner.invoke(app, ["ops", "rehearse", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["wall_s"] < 120.0 and s["final_position"] == pytest.approx(s["goal"])  # the traverse is driven
    assert s["commands_sent"] == (s["commands_completed"] + s["commands_refused"] + s["commands_failed"]
                                  + s["commands_running"] + s["commands_lost"] + s["commands_in_link"])
    assert s["packets_emitted"] == s["packets_received"] + s["packets_lost"] + s["packets_in_link"]
    assert s["packets_archived"] == s["packets_received"] and s["archive_sequence_repeated"] == 0
    assert s["commands_refused_by_reason"] == {"REPLAYED": 1, "BAD_MAC": 1}

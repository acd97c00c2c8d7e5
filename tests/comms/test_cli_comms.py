"""``qamar comms contacts``: the contract's files, and bad input ending in one sentence, exit 2, no file."""

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from qamar.cli import app

from .conftest import SCENARIO

runner = CliRunner()


def _scenario(tmp_path, **comms):
    """The iCube-Q scenario, one day at degree 20 (fast), with changes to its comms block."""
    document = yaml.safe_load(SCENARIO.read_text())
    document["forces"]["degree"] = 20
    document["propagation"]["duration_days"] = 1.0
    document["comms"].update(comms)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run(tmp_path, scenario, *extra):
    out, summary = tmp_path / "contacts.csv", tmp_path / "contacts.json"
    result = runner.invoke(app, ["comms", "contacts", str(scenario), "--out", str(out), "--summary", str(summary),
                                 "--no-progress", *extra])
    return result, out, summary


def test_contacts_csv_and_summary(tmp_path):
    result, out, summary = _run(tmp_path, _scenario(tmp_path), "--min-elev-deg", "10", "--plot", str(tmp_path / "c.png"))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows and {"station", "aos_utc", "los_utc", "max_elev_deg", "min_range_km", "max_range_km"} <= set(rows[0])
    assert all(r["aos_utc"] < r["los_utc"] and float(r["max_elev_deg"]) >= 10.0 for r in rows)
    doc = json.loads(summary.read_text())
    assert set(doc["total_contact_h"]) == {"Kashgar", "Jiamusi", "Neuquen", "New Norcia", "Cebreros", "Malargue",
                                           "Karachi", "Islamabad"}
    assert len(doc["passes"]) == len(rows)
    assert sum(doc["total_contact_h"].values()) == pytest.approx(sum(float(r["duration_min"]) for r in rows) / 60, abs=1e-3)
    assert (tmp_path / "c.png").exists()


def _fails_cleanly(result, out, summary, expected):
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not out.exists() and not summary.exists()


def test_station_below_the_horizon_for_the_whole_span(tmp_path):
    """Cebreros on 2024-05-08 from 21:00 to 23:00 UTC: the Moon has set (LOS about 19:00)."""
    scenario = _scenario(tmp_path, stations=["Cebreros"])
    result, out, summary = _run(tmp_path, scenario, "--start", "2024-05-08T21:00:00Z", "--stop", "2024-05-08T23:00:00Z")
    _fails_cleanly(result, out, summary, "no station sees the spacecraft above 10 deg")
    assert "Cebreros -" in result.output  # its best elevation, below the horizon


def test_span_outside_the_propagation(tmp_path):
    result, out, summary = _run(tmp_path, _scenario(tmp_path), "--stop", "2024-05-20T00:00:00Z")
    _fails_cleanly(result, out, summary, "not inside the scenario's propagation")


def test_unknown_station(tmp_path):
    result, out, summary = _run(tmp_path, _scenario(tmp_path, stations=["Cebrero"]))
    _fails_cleanly(result, out, summary, "did you mean Cebreros")

"""qamar run end to end on a one-day iCube-Q: every product is written, or none at all."""

import json
from pathlib import Path

import pytest
import yaml

from qamar.errors import QamarError
from qamar.mission.run import run_scenario
from qamar.mission.scenario import Scenario

from .conftest import scenario_with_changes

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "icube-q.yaml"


def _short_icube_q(**changes) -> Scenario:
    document = yaml.safe_load(SCENARIO.read_text())
    document["propagation"]["duration_days"] = 1.0
    document["forces"]["degree"] = 8
    document["payload"]["coverage_days"] = 0.5
    document["lifetime"].update(horizon_days=2.0, members=3, degree=4)
    return scenario_with_changes(document, changes)


def test_one_day_of_icube_q_writes_every_product_and_a_report_with_every_section(tmp_path):
    out = tmp_path / "icube-q"
    summary = run_scenario(_short_icube_q(), out, progress=False)
    expected = {"summary.json", "trajectory.oem", "trajectory.csv", "report.html", "altitude.png", "apsides.png",
                "ground_track.png", "eclipses.png", "contacts.csv", "contacts.png", "coverage_global.png",
                "coverage_south.png", "lifetime.png", "lifetime_study"}
    assert expected <= {p.name for p in out.iterdir()}
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["orbit"]["impact_utc"] is None
    assert summary["comms"]["any_station_contact_h"] > 0
    assert 0 < summary["coverage"]["all"]["covered_pct"] <= 100
    assert summary["lifetime"]["nominal"]["lifetime_days"] is None
    assert summary["lifetime"]["dispersion"]["members"] == 3
    assert (out / "lifetime_study" / "results.parquet").exists()
    run_scenario(_short_icube_q(), out, progress=False)  # a rerun into the same folder replaces the products
    assert (out / "lifetime_study" / "results.parquet").exists()
    html = (out / "report.html").read_text()
    for title in ("Orbit and lifetime", "Eclipses", "Earth stations and downlink", "Imaging plan", "Coverage",
                  "Lifetime", "Assumptions"):
        assert f"<h2>{title}</h2>" in html
    assert html.count("data:image/png;base64,") >= 6  # self-contained: figures embedded


def test_a_failing_run_leaves_no_output_behind(tmp_path):
    out = tmp_path / "icube-q"
    with pytest.raises(QamarError):
        run_scenario(_short_icube_q(**{"payload.targets": ["Nowhere Crater"]}), out, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []

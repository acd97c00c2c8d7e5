"""Scenario validation: the shipped scenario loads; bad ones name the field and the line."""

from pathlib import Path

import pytest

from qamar.errors import DataFormatError
from qamar.mission.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_icube_q_scenario_holds_the_published_release_orbit():
    scenario = load_scenario(SCENARIOS / "icube-q.yaml")
    # mission-brief.md section 1: released 2024-05-08 08:14 UTC, about 200 x 8,600 km, about 7 kg.
    assert scenario.orbit.epoch_utc.isoformat() == "2024-05-08T08:14:00+00:00"
    assert (scenario.orbit.peri_alt_km, scenario.orbit.apo_alt_km) == (200, 8600)
    assert scenario.spacecraft.mass_kg == 7.0
    assert scenario.propagation.duration_days == 180
    assert len(scenario.assumptions) >= 3


def _write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


GOOD = """name: t
spacecraft: {mass_kg: 7, area_m2: 0.06, cr: 1.3}
orbit:
  epoch_utc: 2024-05-08T08:14:00Z
  peri_alt_km: 200
  apo_alt_km: 8600
  inc_deg: 90
propagation:
  duration_days: 1
"""


def test_error_names_field_and_line(tmp_path):
    path = _write(tmp_path, GOOD.replace("inc_deg: 90", "inc_deg: 190"))
    with pytest.raises(DataFormatError, match=r"field 'orbit.inc_deg', line 7"):
        load_scenario(path)


def test_periapsis_below_the_surface_is_refused_with_advice(tmp_path):
    path = _write(tmp_path, GOOD.replace("peri_alt_km: 200", "peri_alt_km: -5"))
    with pytest.raises(DataFormatError, match="below the surface"):
        load_scenario(path)


def test_unknown_field_and_bad_yaml(tmp_path):
    with pytest.raises(DataFormatError, match=r"field 'orbit.inclination', line 8"):
        load_scenario(_write(tmp_path, GOOD.replace("  inc_deg: 90", "  inc_deg: 90\n  inclination: 3")))
    with pytest.raises(DataFormatError, match="not valid YAML at line"):
        load_scenario(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(DataFormatError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")

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


def test_change8_rover_scenario_has_a_rover_and_no_orbit():
    scenario = load_scenario(SCENARIOS / "change8-rover.yaml")
    assert scenario.orbit is None and scenario.rover is not None
    rover = scenario.rover
    assert rover.site.dem == "dem_site01_10m"
    assert rover.vehicle.mass_kg == 35.0  # mission-brief.md section 3: about 35 kg
    assert rover.lander is not None and rover.traverse.start_utc.isoformat() == "2028-10-01T00:00:00+00:00"
    assert len(scenario.assumptions) >= 3
    with pytest.raises(DataFormatError, match="qamar comms needs an orbiter scenario"):
        scenario.require_orbit("qamar comms")
    assert load_scenario(SCENARIOS / "icube-q.yaml").require_orbit("qamar comms").inc_deg == 137


ROVER = """name: r
rover:
  site: {dem: dem_site01_10m}
  light: {start_utc: 2028-10-01T00:00:00Z, days: 1}
  traverse:
    start: {lat_deg: -89.37, lon_deg: 225.9}
    goal: {lat_deg: -89.35, lon_deg: 229.3}
    start_utc: 2028-10-01T00:00:00Z
    days: 1
"""


def test_a_scenario_needs_an_orbit_or_a_rover(tmp_path):
    with pytest.raises(DataFormatError, match=r"field '\(top level\)', line 1: a scenario needs an orbit block"):
        load_scenario(_write(tmp_path, "name: nothing\ndescription: neither\n"))
    with pytest.raises(DataFormatError, match="an orbit needs propagation too"):
        load_scenario(_write(tmp_path, GOOD.replace("propagation:\n  duration_days: 1\n", "")))
    with pytest.raises(DataFormatError, match="spacecraft describe"):
        load_scenario(_write(tmp_path, ROVER + "spacecraft: {mass_kg: 7, area_m2: 0.06, cr: 1.3}\n"))


def test_rover_block_errors_name_the_field_and_line(tmp_path):
    with pytest.raises(DataFormatError, match=r"field 'rover.traverse.days', line 9"):
        load_scenario(_write(tmp_path, ROVER.replace("    days: 1", "    days: -1")))
    with pytest.raises(DataFormatError, match=r"field 'rover.site.window_px', line 3"):
        load_scenario(_write(tmp_path, ROVER.replace("{dem: dem_site01_10m}", "{dem: x, window_px: [0, 0, 1, 5]}")))


def test_vehicle_is_a_rover_file_beside_the_scenario_or_inline(tmp_path):
    (tmp_path / "rover.yaml").write_text("power: {battery_wh: 150}\n")
    scenario = load_scenario(_write(tmp_path, ROVER + "  vehicle: rover.yaml\n"))
    assert scenario.rover.vehicle.power.battery_wh == 150
    assert scenario.rover.site.dem == "dem_site01_10m"  # a data key stays a key; a path is the scenario folder's
    local = load_scenario(_write(tmp_path, ROVER.replace("{dem: dem_site01_10m}", "{dem: site.tif}")))
    assert local.rover.site.dem == str((tmp_path / "site.tif").resolve())
    assert "power.battery_wh" not in {a["field"] for a in scenario.rover.vehicle.assumptions()}
    inline = load_scenario(_write(tmp_path, ROVER + "  vehicle: {mobility: {speed_m_per_s: 0.02}}\n"))
    assert inline.rover.vehicle.mobility.speed_m_per_s == 0.02
    with pytest.raises(DataFormatError, match=r"field 'rover', line 2: .*battery_wh must be positive"):
        (tmp_path / "rover.yaml").write_text("power: {battery_wh: -1}\n")
        load_scenario(_write(tmp_path, ROVER + "  vehicle: rover.yaml\n"))

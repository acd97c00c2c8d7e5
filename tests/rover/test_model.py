"""The rover file: defaults from comparable rovers, each labelled; bad files are clear errors."""

from __future__ import annotations

import pytest

from qamar.errors import DataFormatError, ModelConfigError
from qamar.rover.model import SOLAR_CONSTANT_W_M2, RoverSpec, load_rover


def test_defaults_are_the_brief_and_comparable_rovers():
    rover = load_rover(None)
    assert rover.mass_kg == 35.0  # mission-brief.md
    assert rover.mobility.speed_m_per_s == 0.01  # Pragyan 1 cm/s
    assert rover.mobility.max_slope_deg == 20.0  # Rashid
    # the array is sized to Pragyan's 50 W at normal incidence
    assert rover.solar.peak_w == pytest.approx(50.0, rel=0.02)
    assert rover.solar.peak_w == pytest.approx(SOLAR_CONSTANT_W_M2 * 0.28 * 0.13)


def test_every_unset_value_is_a_listed_assumption_with_a_source(tmp_path):
    path = tmp_path / "rover.yaml"
    path.write_text("name: test rover\nmobility:\n  speed_m_per_s: 0.05\npower:\n  battery_wh: 200\n")
    rover = load_rover(path)
    listed = {a["field"]: a for a in rover.assumptions()}
    assert rover.mobility.speed_m_per_s == 0.05 and rover.power.battery_wh == 200
    assert "mobility.speed_m_per_s" not in listed and "power.battery_wh" not in listed and "name" not in listed
    assert listed["mass_kg"]["value"] == 35.0 and "mission-brief" in listed["mass_kg"]["source"]
    assert listed["mobility.max_slope_deg"]["source"].startswith("Rashid")
    assert all(a["source"] for a in listed.values())
    assert len(RoverSpec().assumptions()) == len(listed) + 3


@pytest.mark.parametrize(("text", "words"), [
    ("mobility:\n  speed_m_per_s: -1\n", "mobility: speed_m_per_s must be positive"),
    ("mobility:\n  max_slope_deg: 95\n", "max_slope_deg must lie in (0, 90)"),
    ("solar:\n  efficiency: 1.5\n", "efficiency"),
    ("mobility:\n  top_speed: 3\n", "mobility.top_speed"),
    ("mass_kg: heavy\n", "mass_kg"),
])
def test_bad_values_name_the_field(tmp_path, text, words):
    path = tmp_path / "rover.yaml"
    path.write_text(text)
    with pytest.raises(ModelConfigError, match="rover file") as info:
        load_rover(path)
    assert words in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataFormatError, match="cannot read the rover file"):
        load_rover(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mobility: [1, 2\n")
    with pytest.raises(DataFormatError, match="not valid YAML"):
        load_rover(bad)

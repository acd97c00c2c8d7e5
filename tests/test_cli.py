"""The qamar command: data listing, and usage errors that end in one sentence with exit code 2."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qamar.cli import app

runner = CliRunner()

PROPAGATE = [
    "orbit", "propagate", "--epoch", "2024-05-08T08:14:00Z", "--peri-alt-km", "200", "--apo-alt-km", "8600",
    "--inc-deg", "90", "--duration-days", "0.1", "--degree", "0", "--third-bodies", "none", "--no-srp",
    "--no-progress",
]


def test_data_list_shows_every_registered_file_and_its_origin():
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0
    assert "grgm1200a" in result.output and "package" in result.output
    assert "lp165p" in result.output and "QAMAR_DATA_DIR" in result.output


def _fails_cleanly(args, expected, tmp_path):
    out = tmp_path / "t.oem"
    result = runner.invoke(app, args + ["--out", str(out)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_gravity_model(tmp_path):
    _fails_cleanly(PROPAGATE + ["--gravity", "egm2008"], "egm2008", tmp_path)


def test_degree_above_the_file(tmp_path):
    args = [a if a != "0" else "200" for a in PROPAGATE] + ["--gravity", "lp165p"]
    _fails_cleanly(args, "165", tmp_path)


def test_periapsis_below_the_surface(tmp_path):
    args = [a if a != "200" else "-10" for a in PROPAGATE]
    _fails_cleanly(args, "below the surface", tmp_path)


def test_epoch_outside_the_kernels(tmp_path):
    args = [a if a != "2024-05-08T08:14:00Z" else "2290-01-01T00:00:00Z" for a in PROPAGATE]
    _fails_cleanly(args, "2290", tmp_path)


def test_point_mass_propagation_writes_oem_and_summary(tmp_path):
    out, summary = tmp_path / "t.oem", tmp_path / "s.json"
    result = runner.invoke(app, PROPAGATE + ["--out", str(out), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(summary.read_text())
    for key in ("epoch_utc", "end_utc", "impact_utc", "final_r_km", "final_v_km_s", "min_alt_km", "steps", "wall_s"):
        assert key in doc
    assert doc["impact_utc"] is None
    assert abs(doc["min_alt_km"] - 200.0) < 1e-3  # starts at periapsis of a Kepler orbit
    assert out.read_text().startswith("CCSDS_OEM_VERS")


def test_output_into_a_missing_folder(tmp_path):
    result = runner.invoke(app, PROPAGATE + ["--out", str(tmp_path / "no" / "such" / "t.oem")])
    assert result.exit_code == 2, result.output
    assert "No such file or directory" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command, options", [
    (["comms", "contacts"], ["--summary", "s.json"]),
    (["payload", "opportunities"], ["--target", "Shackleton"]),
    (["orbit", "montecarlo"], []),
])  # fmt: skip
def test_orbiter_commands_refuse_a_rover_scenario(command, options, tmp_path):
    """A rover-only scenario has no orbit: orbiter commands say so (exit 2, one sentence)."""
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "change8-rover.yaml"
    result = runner.invoke(app, [*command, str(scenario), "--out", str(tmp_path / "out"), *options])
    assert result.exit_code == 2, result.output
    assert "has no orbit block" in result.output

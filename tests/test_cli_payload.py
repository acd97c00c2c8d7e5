"""``qamar payload``: bad input ends in one sentence with exit code 2 and no file; products appear."""

import json

import yaml
from typer.testing import CliRunner

from qamar.cli import app

runner = CliRunner()


def _scenario(tmp_path, **camera_overrides):
    """The iCube-Q scenario, made quick: point-mass Moon, one day."""
    doc = yaml.safe_load(open("scenarios/icube-q.yaml"))
    doc["forces"] = {"gravity": "grgm1200a", "degree": 0, "third_bodies": [], "srp": False}
    doc["propagation"]["duration_days"] = 1.0
    doc["payload"]["cameras"][1].update(camera_overrides)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _fails_cleanly(args, expected, out):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_unknown_target_suggests_names(tmp_path):
    out = tmp_path / "o.csv"
    _fails_cleanly(["payload", "opportunities", _scenario(tmp_path), "--target", "Shakleton", "--out", str(out),
                    "--no-progress"], "did you mean 'Shackleton'", out)


def test_no_opportunity_is_an_explained_error_without_a_file(tmp_path):
    out = tmp_path / "o.csv"
    # The 137 deg orbit never reaches 89.7 S in a day.
    _fails_cleanly(["payload", "opportunities", _scenario(tmp_path), "--target", "Shackleton", "--out", str(out),
                    "--no-progress"], "never in a footprint", out)


def test_a_camera_that_never_sees_the_moon_is_refused(tmp_path):
    out = tmp_path / "o.csv"
    _fails_cleanly(["payload", "opportunities", _scenario(tmp_path, off_nadir_deg=170), "--target", "Copernicus",
                    "--out", str(out), "--no-progress"], "never sees the Moon", out)


def test_bad_sun_range_is_a_usage_error(tmp_path):
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["payload", "opportunities", _scenario(tmp_path), "--target", "Copernicus",
                                 "--sun-elev-deg", "5-60", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "LO:HI" in result.output and not out.exists()


def test_opportunities_csv_for_a_point_target(tmp_path):
    out, plot = tmp_path / "o.csv", tmp_path / "o.png"
    # 10 S 150 E: under the first day's ground track; any Sun elevation.
    result = runner.invoke(app, ["payload", "opportunities", _scenario(tmp_path), "--target", "-10,150",
                                 "--sun-elev-deg", "-90:90", "--out", str(out), "--plot", str(plot), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0].startswith("rank,camera,target") and len(rows) >= 2
    assert plot.stat().st_size > 10_000


def test_coverage_products(tmp_path):
    out = tmp_path / "cov"
    result = runner.invoke(app, ["payload", "coverage", _scenario(tmp_path), "--days", "0.25", "--nside", "64",
                                 "--step-s", "60", "--good-light", "--region", "Copernicus", "--out", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "coverage.json").read_text())
    assert 0.0 < summary["covered_pct"] < 100.0 and summary["sun_elev_deg"] == [5.0, 60.0]
    assert set(summary["regions_pct"]) == {"south of 80 S", "north of 80 N", "Copernicus"}
    for name in ("coverage.fits", "coverage_global.png", "coverage_south.png", "coverage_north.png"):
        assert (out / name).stat().st_size > 0

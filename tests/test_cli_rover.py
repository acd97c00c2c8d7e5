"""``qamar rover plan``: a route on a small synthetic DEM written as GeoTIFF, and bad input that
ends in one sentence with exit code 2 (an infeasible route still writes route.json with its reason)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from typer.testing import CliRunner

from qamar.cli import app
from qamar.surface.terrain import pixel_lat_lon, read_dem

runner = CliRunner()
CRS_SOUTH = "+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m +no_defs"


@pytest.fixture(scope="module")
def dem_path(tmp_path_factory):
    """80 x 100 pixels of 10 m, 5 km from the pole: level ground with a raised disc (steep rim)."""
    path = tmp_path_factory.mktemp("rover") / "dem.tif"
    rows, cols = np.mgrid[0:80, 0:100]
    height = np.where(np.hypot(rows - 40, cols - 50) < 15, 10.0, 0.0).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=100, height=80, count=1, dtype="float32", crs=CRS_SOUTH,
                       transform=Affine(10, 0, -5000, 0, -10, 3000), nodata=float("nan")) as dst:
        dst.write(height, 1)
    return path


def _point(path, rc):
    lat, lon = pixel_lat_lon(read_dem(path))
    return f"{lat[rc]:.9f},{lon[rc]:.9f}"


def _plan(dem_path, tmp_path, start, goal, *extra):
    return runner.invoke(app, ["rover", "plan", str(dem_path), "--from", start, "--to", goal, "--out",
                               str(tmp_path / "route.geojson"), "--summary", str(tmp_path / "route.json"),
                               "--no-craters", *extra])


def test_plan_writes_geojson_csv_and_summary(dem_path, tmp_path):
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (75, 95)))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "route.json").read_text())
    for key in ("feasible", "length_m", "duration_h", "max_slope_deg", "assumptions"):
        assert key in summary
    assert summary["feasible"] and summary["max_slope_deg"] <= 20.0
    assert summary["length_m"] > np.hypot(700, 900) * 0.999  # goes round the plateau's rim
    geo = json.loads((tmp_path / "route.geojson").read_text())
    assert geo["features"][0]["geometry"]["type"] == "LineString"
    rows = list(csv.DictReader((tmp_path / "route.csv").open()))
    assert float(rows[-1]["distance_m"]) == pytest.approx(summary["length_m"], abs=1e-3)


def test_unreachable_goal_writes_the_reason_and_exits_2(dem_path, tmp_path):
    result = _plan(dem_path, tmp_path, _point(dem_path, (40, 50)), _point(dem_path, (5, 5)))
    assert result.exit_code == 2
    assert "--max-slope-deg" in result.output and "Traceback" not in result.output
    summary = json.loads((tmp_path / "route.json").read_text())
    assert summary["feasible"] is False and "slope over the limit" in summary["reason"]
    limit = summary["reason"].split("--max-slope-deg ")[1].rstrip(")")
    ok = _plan(dem_path, tmp_path, _point(dem_path, (40, 50)), _point(dem_path, (5, 5)), "--max-slope-deg", limit)
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(("goal", "extra", "words"), [
    ("-80,0", [], "outside the DEM"),
    ("somewhere", [], "--to takes LAT,LON"),
    ("STEEP", [], "blocked pixel"),
    ("FAR", ["--max-slope-deg", "95"], "slope limit must lie between 0 and 90"),
    ("FAR", ["--connectivity", "4"], "connectivity must be 8 or 16"),
    ("psr-rim", [], "no PSR rim"),
])
def test_bad_input_ends_in_one_sentence(dem_path, tmp_path, goal, extra, words):
    goal = {"STEEP": _point(dem_path, (40, 35)), "FAR": _point(dem_path, (75, 95))}.get(goal, goal)
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), goal, *extra)
    assert result.exit_code == 2 and words in result.output, result.output
    assert "Traceback" not in result.output


def test_bad_rover_file(dem_path, tmp_path):
    rover = tmp_path / "rover.yaml"
    rover.write_text("mobility:\n  speed_m_per_s: 0\n")
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (75, 95)), "--rover", str(rover))
    assert result.exit_code == 2 and "mobility" in result.output and "speed_m_per_s must be positive" in result.output


def test_spatiotemporal_plan_writes_timed_outputs(dem_path, tmp_path):
    # 2028-06-17: the site (5.8 km from the pole) is lit with the Earth in view; a rover of 5 cm/s (Yutu-2 drove up to 200 m/h)
    rover = tmp_path / "rover.yaml"
    rover.write_text("mobility:\n  speed_m_per_s: 0.05\n")
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (75, 95)), "--spatiotemporal",
                   "--via", _point(dem_path, (40, 5)), "--start", "2028-06-17T00:00:00Z", "--days", "2", "--step-h", "1", "--horizon-km", "1",
                   "--rover", str(rover), "--timeline", str(tmp_path / "timeline.png"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "route.json").read_text())
    for key in ("feasible", "length_m", "duration_h", "max_slope_deg", "min_battery_wh", "arrival_utc", "waits",
                "hibernating_h", "reserve_wh"):
        assert key in summary
    assert summary["min_battery_wh"] >= summary["reserve_wh"]
    assert summary["max_slope_deg"] <= 20.0
    rows = list(csv.DictReader((tmp_path / "route.csv").open()))
    assert rows[0]["utc"] == "2028-06-17T00:00:00Z" and rows[-1]["utc"] == summary["arrival_utc"]
    assert (tmp_path / "timeline.png").stat().st_size > 0
    assert {(r["row"], r["col"]) for r in rows} >= {("5", "5"), ("40", "5"), ("75", "95")}  # visited the target


def test_spatiotemporal_needs_a_start(dem_path, tmp_path):
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (75, 95)), "--spatiotemporal")
    assert result.exit_code == 2 and "--start" in result.output


def test_spatiotemporal_plan_through_a_lander_states_its_contact_model(dem_path, tmp_path):
    rover = tmp_path / "rover.yaml"
    rover.write_text("mobility:\n  speed_m_per_s: 0.05\n")
    lander = _point(dem_path, (10, 20))
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (20, 30)), "--spatiotemporal",
                   "--start", "2028-06-17T00:00:00Z", "--days", "1", "--horizon-km", "1", "--rover", str(rover),
                   "--lander", lander)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "route.json").read_text())
    lat, lon = (float(v) for v in lander.split(","))
    assert summary["contact"].startswith(f"via lander at {lat:.4f}, {lon % 360:.4f} E (viewshed")
    assert "range 1000 m" in summary["contact"] and 0.0 <= summary["contact_share"] <= 1.0
    direct = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (20, 30)), "--spatiotemporal",
                   "--start", "2028-06-17T00:00:00Z", "--days", "1", "--horizon-km", "1", "--rover", str(rover))
    assert direct.exit_code == 0, direct.output
    assert "stands for the lander's" in json.loads((tmp_path / "route.json").read_text())["contact"]


@pytest.mark.parametrize(("extra", "words"), [
    (["--spatiotemporal", "--start", "2028-06-17T00:00:00Z", "--lander", "-80,0"], "outside the DEM"),
    (["--lander", "-89.9,10"], "add --spatiotemporal"),
    (["--spatiotemporal", "--start", "2028-06-17T00:00:00Z", "--lander", "x"], "--lander takes LAT,LON"),
])
def test_bad_lander_ends_in_one_sentence(dem_path, tmp_path, extra, words):
    result = _plan(dem_path, tmp_path, _point(dem_path, (5, 5)), _point(dem_path, (20, 30)), "--days", "1",
                   "--horizon-km", "1", *extra)
    assert result.exit_code == 2 and words in result.output, result.output
    assert "Traceback" not in result.output

"""qamar run on the Chang'e-8 rover scenario: a small crop of the site and a short span end to end
(every product, route CSV consistent with the schedule and the route, report sections), and
the whole scenario as a slow test."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from qamar.mission.run import run_scenario
from qamar.mission.scenario import Scenario, load_scenario
from qamar.time import utc_to_tdb_s

from .conftest import scenario_with_changes

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "change8-rover.yaml"
MOON_RADIUS_M = 1737400.0  # the DEM's sphere (LOLA)
SECTIONS = ("Site light", "Permanently shadowed regions", "Traverse", "Rover assumptions", "Assumptions")


def _small_rover(**changes) -> Scenario:
    """The scenario on a 200 x 120 pixel crop around the lander, horizons to 20 km, 2 days of
    light, PSRs of 0.2 years, straight from the start to the goal (no target) planned on the
    10 m pixels."""
    document = yaml.safe_load(SCENARIO.read_text())
    rover = document["rover"]
    rover["site"].update(window_px=[440, 860, 200, 120], horizon_km=20, azimuths=72)
    rover["light"]["days"] = 2
    rover["psr"]["years"] = 0.2
    rover["traverse"].update(targets=[], days=3, haven_h=0, plan_factor=1)
    return scenario_with_changes(document, changes)


def _great_circle_m(lat_deg, lon_deg) -> np.ndarray:
    """Lengths (m) on the 1737.4 km sphere between consecutive points (haversine)."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    h = np.sin(np.diff(lat) / 2) ** 2 + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(np.diff(lon) / 2) ** 2
    return 2 * MOON_RADIUS_M * np.arcsin(np.sqrt(h))


@pytest.fixture(scope="module", autouse=True)
def horizon_cache(tmp_path_factory):
    """Horizon maps cached for this module only (not in the user's cache)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QAMAR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rover") / "change8"
    return out, run_scenario(_small_rover(), out, progress=False)


def test_the_rover_scenario_loads_and_needs_no_orbit():
    scenario = load_scenario(SCENARIO)
    assert scenario.orbit is None and scenario.rover.traverse.haven_h == 24 and len(scenario.rover.traverse.targets) == 1


def test_a_small_rover_run_writes_every_product(small_run):
    out, summary = small_run
    expected = {"summary.json", "report.html", "route.geojson", "route.csv", "route_hillshade.png", "route_sun.png",
                "timeline.png", "psr.geojson", "psr.tif", "psr.png", "site_light"}
    assert expected <= {p.name for p in out.iterdir()}
    assert {"sun_fraction.tif", "sun_fraction.png", "earth_fraction.tif", "longest_night_h.tif"} <= {
        p.name for p in (out / "site_light").iterdir()}
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    rover = summary["rover"]
    assert "orbit" not in summary
    for key in ("feasible", "length_m", "duration_h", "max_slope_deg", "min_battery_wh", "sun_fraction_mean",
                "psr_area_km2"):
        assert key in rover
    assert rover["feasible"], rover["reason"]
    assert rover["max_slope_deg"] <= rover["max_slope_limit_deg"] == 20.0
    assert rover["reserve_wh"] - 1e-6 <= rover["min_battery_wh"] <= 100.0
    assert 0 < rover["sun_fraction_mean"] < 1 and rover["psr_area_km2"] >= 0
    assert {a["field"] for a in rover["assumptions"]} >= {"mobility.speed_m_per_s", "power.battery_wh"}


def test_route_csv_agrees_with_the_summary_and_the_route(small_run):
    out, summary = small_run
    rover = summary["rover"]
    rows = list(csv.DictReader((out / "route.csv").open()))
    assert len(rows) == rover["events"]
    # timestamps: UTC of the start plus the elapsed hours; the last one is the arrival
    t0 = float(utc_to_tdb_s(rover["start_utc"]))
    for row in rows:
        assert float(utc_to_tdb_s(row["utc"])) - t0 == pytest.approx(float(row["elapsed_h"]) * 3600, abs=0.51)
    assert rows[0]["utc"] == rover["start_utc"] and rows[-1]["utc"] == rover["arrival_utc"]
    assert float(rows[-1]["elapsed_h"]) == pytest.approx(rover["duration_h"], abs=1e-3)
    # battery: the summary's extremes; it only falls while driving or standing in the dark
    battery = np.array([float(r["battery_wh"]) for r in rows])
    assert battery.min() == pytest.approx(rover["min_battery_wh"], abs=1e-3)
    assert battery[-1] == pytest.approx(rover["end_battery_wh"], abs=1e-3)
    # driving time at the rover's speed (1 cm/s) covers the route; the positions trace it
    hours = np.diff([float(r["elapsed_h"]) for r in rows])
    driving_h = hours[[r["action"] == "drive" for r in rows[1:]]].sum()
    assert driving_h == pytest.approx(rover["driving_h"], abs=1e-3)
    assert driving_h * 3600 * 0.01 == pytest.approx(rover["length_m"], rel=0.02)
    lat = np.array([float(r["lat_deg"]) for r in rows])
    lon = np.array([float(r["lon_deg"]) for r in rows])
    assert _great_circle_m(lat, lon).sum() == pytest.approx(rover["length_m"], rel=0.01)
    assert float(rows[-1]["along_m"]) == pytest.approx(rover["length_m"], abs=1e-3)
    start = load_scenario(SCENARIO).rover.traverse.start
    assert _great_circle_m([start.lat_deg, lat[0]], [start.lon_deg, lon[0]])[0] < 5 * math.sqrt(2)  # its pixel
    assert {r["action"] for r in rows} <= {"start", "drive", "wait", "hibernate"}
    assert all(r["sun_visible"] == str(int(float(r["solar_w"]) > 0)) for r in rows)


def test_route_geojson_has_the_route_and_its_times(small_run):
    out, summary = small_run
    geo = json.loads((out / "route.geojson").read_text())
    (feature,) = geo["features"]
    props = feature["properties"]
    assert feature["geometry"]["type"] == "LineString"
    assert props["length_m"] == pytest.approx(summary["rover"]["length_m"], abs=1e-3)
    times = [float(utc_to_tdb_s(t)) for t in props["vertex_utc"]]
    assert len(times) == len(feature["geometry"]["coordinates"]) and times == sorted(times)
    assert props["vertex_utc"][0] == summary["rover"]["start_utc"]
    assert props["vertex_utc"][-1] <= summary["rover"]["arrival_utc"]


def test_the_report_has_the_rover_sections(small_run):
    out, _ = small_run
    html = (out / "report.html").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
    assert "Orbit and lifetime" not in html
    assert html.count("data:image/png;base64,") >= 6  # light maps, PSRs, two route maps, timeline


def test_an_unreachable_goal_still_reports_why(tmp_path):
    out = tmp_path / "blocked"
    summary = run_scenario(_small_rover(**{"rover.traverse.goal": {"lat_deg": -89.36289, "lon_deg": -132.7136},
                                           "rover.site.window_px": [470, 890, 80, 50], "rover.light.days": 0.5,
                                           "rover.psr": None}), out, progress=False)
    rover = summary["rover"]
    assert not rover["feasible"] and "slope over the limit" in rover["reason"]
    assert rover["psr_area_km2"] is None and not (out / "route.csv").exists()
    assert "Not feasible: the goal" in (out / "report.html").read_text()


@pytest.mark.slow
def test_the_whole_change8_rover_scenario(tmp_path):
    summary = run_scenario(load_scenario(SCENARIO), tmp_path / "change8", progress=False)
    rover = summary["rover"]
    assert rover["feasible"], rover["reason"]
    assert rover["length_m"] > 1500 and rover["min_battery_wh"] >= rover["reserve_wh"] - 1e-6
    rows = list(csv.DictReader((tmp_path / "change8" / "route.csv").open()))
    lat = np.array([float(r["lat_deg"]) for r in rows])
    lon = np.array([float(r["lon_deg"]) for r in rows])
    assert _great_circle_m(lat, lon).sum() == pytest.approx(rover["length_m"], rel=0.01)

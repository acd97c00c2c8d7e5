"""The study commands: ``qamar orbit lifetime``, ``sweep`` and ``montecarlo``.

Physics checks use a point-mass Moon (degree 0, no third bodies, no SRP), where an orbit never
impacts and its lowest periapsis is the one it starts with (Kepler). A crashing case is checked
against lifetime() itself: the command must report exactly what the library computes.
"""

import json

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster
from typer.testing import CliRunner

from qamar.cli import app
from qamar.orbit.study import local_cluster_options

runner = CliRunner()

EPOCH = "2024-05-08T08:14:00Z"
KEPLER = ["--degree", "0", "--third-bodies", "none", "--no-srp", "--no-progress"]
ORBIT = ["--epoch", EPOCH, "--peri-alt-km", "100", "--apo-alt-km", "300", "--inc-deg", "86", "--frame", "moon-pa"]


@pytest.fixture(scope="module")
def scheduler():
    with LocalCluster(**local_cluster_options(2)) as cluster:
        yield cluster.scheduler_address


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _fails(args, *words):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output
    return result.output


def test_lifetime_of_a_keplerian_orbit_is_null_and_keeps_its_periapsis(tmp_path):
    summary = tmp_path / "lifetime.json"
    out = _ok(["orbit", "lifetime", *ORBIT, *KEPLER, "--horizon-days", "1", "--summary", str(summary)])
    assert "survives 1 days" in out
    doc = json.loads(summary.read_text())
    assert doc["lifetime_days"] is None and doc["impact_utc"] is None
    assert doc["impact_lat_deg"] is None and doc["impact_lon_deg"] is None
    assert abs(doc["min_periapsis_alt_km"] - 100.0) < 1e-3


def test_lifetime_of_a_crashing_orbit_matches_the_library(tmp_path):
    from qamar.orbit.elements import state_from_apsides
    from qamar.orbit.forces import ForceModel
    from qamar.orbit.gravity import load_field
    from qamar.orbit.lifetime import lifetime
    from qamar.time import utc_to_tdb_s

    args = ["--epoch", EPOCH, "--peri-alt-km", "30", "--apo-alt-km", "60", "--inc-deg", "20", "--frame", "moon-pa",
            "--degree", "10", "--horizon-days", "30", "--no-progress"]  # fmt: skip
    summary, png = tmp_path / "lifetime.json", tmp_path / "lifetime.png"
    out = _ok(["orbit", "lifetime", *args, "--summary", str(summary), "--plot", str(png)])
    assert png.read_bytes().startswith(b"\x89PNG")
    doc = json.loads(summary.read_text())
    field = load_field("grgm1200a", 10)
    t0 = float(utc_to_tdb_s(EPOCH))
    r, v = state_from_apsides(30, 60, 20, 0, 0, 0, field.gm_km3_s2, frame="moon-pa", t_tdb_s=t0)
    expected = lifetime(t0, np.concatenate([r, v]), ForceModel(field=field, degree=10), 30.0, progress=False).summary()
    for key in ("lifetime_days", "impact_utc", "impact_lat_deg", "impact_lon_deg", "min_periapsis_alt_km"):
        assert doc[key] == expected[key], key
    assert f"impact {expected['impact_utc']}" in out


def test_lifetime_bad_input_is_one_sentence(tmp_path):
    _fails(["orbit", "lifetime", *ORBIT, *KEPLER, "--horizon-days", "-1"], "horizon_days")
    bad = [a if a != "100" else "-5" for a in ORBIT]
    _fails(["orbit", "lifetime", *bad, *KEPLER], "below the surface")


def test_sweep_over_inclination_writes_one_row_per_grid_point(tmp_path, scheduler):
    out, png = tmp_path / "sweep.parquet", tmp_path / "sweep.png"
    args = ["--epoch", EPOCH, "--peri-alt-km", "100", "--apo-alt-km", "100:300:100", "--inc-deg", "0:180:90",
            "--frame", "moon-pa", *KEPLER, "--horizon-days", "0.25"]  # fmt: skip
    text = _ok(["orbit", "sweep", *args, "--out", str(out), "--plot", str(png), "--scheduler", scheduler])
    assert "9 orbits" in text and "0 impact" in text
    table = pd.read_parquet(out)
    assert len(table) == 9 and table["lifetime_days"].isna().all()
    assert sorted(set(table["inc_deg"])) == [0.0, 90.0, 180.0] and sorted(set(table["apo_alt_km"])) == [100.0, 200.0, 300.0]
    np.testing.assert_allclose(table["min_periapsis_alt_km"], 100.0, atol=1e-3)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_sweep_grid_errors_write_nothing(tmp_path):
    out = tmp_path / "sweep.parquet"
    args = ["--epoch", EPOCH, "--peri-alt-km", "100", "--apo-alt-km", "100", "--inc-deg", "0:180", *KEPLER]
    _fails(["orbit", "sweep", *args, "--out", str(out)], "--inc-deg", "start:stop:step")
    assert not out.exists() and not list(tmp_path.iterdir())


SCENARIO = """\
name: test-cubesat
spacecraft: {name: T, mass_kg: 7.0, area_m2: 0.06, cr: 1.3}
orbit: {epoch_utc: 2024-05-08T08:14:00Z, peri_alt_km: 100, apo_alt_km: 300, inc_deg: 86, frame: moon-pa}
forces: {gravity: grgm1200a, degree: 0, third_bodies: [], srp: false}
propagation: {duration_days: 0.25}
"""


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    return path


def test_montecarlo_writes_results_summary_and_plots_and_resumes(tmp_path, scenario, scheduler, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)  # the study joins the cluster named there
    out = tmp_path / "mc"
    text = _ok(["orbit", "montecarlo", str(scenario), "--members", "6", "--out", str(out), "--no-progress"])
    assert "6 members (6 computed, 0 reused)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"] == 6 and summary["impacting"] == 0 and summary["lifetime_days"]["p50"] is None
    assert summary["dispersion"]["position_sigma_km"] == 1.0 and summary["dispersion"]["velocity_sigma_km_s"] == 1e-3
    assert summary["dispersion"]["area_rel_sigma"] == 0.1 and summary["dispersion"]["cr_sigma"] == 0.1
    results = pd.read_parquet(out / "results.parquet")
    assert list(results["member_id"]) == list(range(6))
    # Kepler: each member keeps its own sampled osculating periapsis.
    np.testing.assert_allclose(results["min_periapsis_alt_km"], results["peri_alt_km"], atol=1e-3)
    for name in ("lifetime_hist.png", "lifetime_cdf.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "6 members (0 computed, 6 reused)" in _ok(["orbit", "montecarlo", str(scenario), "--members", "6",
                                                       "--out", str(out), "--no-progress"])  # fmt: skip


def test_montecarlo_bad_covariance_is_one_sentence(tmp_path, scenario):
    cov = np.eye(6)
    cov[0, 1] = cov[1, 0] = 0.9
    cov[0, 2] = cov[2, 0] = 0.9
    cov[1, 2] = cov[2, 1] = -0.9
    path = tmp_path / "cov.txt"
    np.savetxt(path, cov)
    out = tmp_path / "mc"
    _fails(["orbit", "montecarlo", str(scenario), "--out", str(out), "--covariance", str(path), "--no-progress"],
           "not positive semi-definite", "negative eigenvalue")  # fmt: skip
    assert not out.exists()
    _fails(["orbit", "montecarlo", str(scenario), "--out", str(out), "--covariance", str(path), "--position-sigma-km", "2"],
           "either covariance or position/velocity sigmas")  # fmt: skip

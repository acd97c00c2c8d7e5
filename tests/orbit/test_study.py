"""The Dask study runner: results per member, resume without recomputation, a worker killed
mid-study, and the summary statistics.

The orbits are small problems (GRGM1200A to degree 2 or 10, horizons of days) so that the file
runs in well under a minute. The physics of each member is the ensemble propagator's, tested
in test_ensemble.py and test_lifetime.py; here a member's result must be what lifetime() gives
it alone (to round-off), and a point-mass member (degree 0) must never impact and keep its
Keplerian periapsis.
"""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster

from qamar.errors import QamarError
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.lifetime import lifetime
from qamar.orbit.study import (
    STATE_COLUMNS,
    StudySetup,
    dask_client,
    finished_member_ids,
    lifetime_summary,
    local_cluster_options,
    members_from_elements,
    run_study,
)
from qamar.time import utc_to_tdb_s

T0 = float(utc_to_tdb_s("2024-05-08T08:14:00Z"))


def _cluster(workers=2):
    return LocalCluster(**local_cluster_options(workers))


@pytest.fixture(scope="module")
def scheduler():
    """An existing cluster that the studies join by address, as a remote one would be."""
    with _cluster() as cluster:
        yield cluster.scheduler_address


def _elements(inc_deg, peri_alt_km=30.0, apo_alt_km=60.0):
    inc = np.atleast_1d(inc_deg).astype(float)
    return pd.DataFrame({"peri_alt_km": peri_alt_km, "apo_alt_km": apo_alt_km, "inc_deg": inc,
                         "raan_deg": 0.0, "argp_deg": 0.0, "ta_deg": 0.0})  # fmt: skip


def _setup(degree, horizon_days):
    return StudySetup(T0, ForceModel(field=load_field("grgm1200a", degree), degree=degree), horizon_days, frame="moon-pa")


def test_each_member_gets_what_lifetime_gives_it_alone(tmp_path, scheduler):
    setup = _setup(10, 12.0)
    members = members_from_elements(setup, _elements([0.0, 20.0, 60.0]))
    members.loc[1, ["mass_kg", "area_m2", "cr"]] = (5.0, 0.1, 1.8)
    run = run_study(setup, members, tmp_path / "parts", scheduler=scheduler, batch_size=2, progress=False)
    assert run.computed == 3 and run.reused == 0
    for row in run.results.itertuples():
        forces = ForceModel(field=setup.forces.field, degree=10, mass_kg=row.mass_kg, area_m2=row.area_m2, cr=row.cr)
        alone = lifetime(T0, np.array([getattr(row, c) for c in STATE_COLUMNS]), forces, 12.0, progress=False)
        if alone.lifetime_days is None:
            assert np.isnan(row.lifetime_days) and row.impact_utc is None and np.isnan(row.impact_lat_deg)
        else:
            # The ensemble steps each member exactly as propagate() does: equal to round-off.
            assert row.lifetime_days == pytest.approx(alone.lifetime_days, rel=1e-12)
            assert row.impact_lat_deg == pytest.approx(alone.impact_lat_deg, abs=1e-9)
            assert row.impact_lon_deg == pytest.approx(alone.impact_lon_deg, abs=1e-9)
            assert row.impact_utc == alone.summary()["impact_utc"]
        assert row.min_periapsis_alt_km == pytest.approx(alone.min_periapsis_alt_km, abs=1e-9)
        assert row.steps == alone.steps
    assert run.results["lifetime_days"].notna().any() and run.results["lifetime_days"].isna().any()


def test_point_mass_members_keep_their_keplerian_periapsis(tmp_path, scheduler):
    kepler = ForceModel(field=load_field("grgm1200a", 0), degree=0, third_bodies=(), srp=False)
    setup = StudySetup(T0, kepler, 2.0, frame="moon-pa")
    members = members_from_elements(setup, _elements([10.0, 80.0], peri_alt_km=100.0, apo_alt_km=500.0))
    results = run_study(setup, members, tmp_path / "parts", scheduler=scheduler, progress=False).results
    assert results["lifetime_days"].isna().all()
    np.testing.assert_allclose(results["min_periapsis_alt_km"], 100.0, atol=1e-3)


def test_interrupted_study_resumes_without_recomputing(tmp_path, scheduler):
    setup = _setup(2, 1.0)
    members = members_from_elements(setup, _elements(np.arange(0.0, 60.0, 10.0)))
    parts = tmp_path / "parts"
    first = run_study(setup, members, parts, scheduler=scheduler, batch_size=2, progress=False)
    files = sorted(parts.glob("part-*.parquet"))
    assert len(files) == 3 and finished_member_ids(parts) == set(range(6))
    # An interruption after two of three batches: the third part never landed.
    files[1].unlink()
    kept = {f: f.stat().st_mtime_ns for f in (files[0], files[2])}
    again = run_study(setup, members, parts, scheduler=scheduler, batch_size=2, progress=False)
    assert (again.computed, again.reused) == (2, 4)
    assert all(f.stat().st_mtime_ns == t for f, t in kept.items())
    pd.testing.assert_frame_equal(first.results, again.results)
    done = run_study(setup, members, parts, scheduler=scheduler, progress=False)
    assert (done.computed, done.reused, done.threads) == (0, 6, 0)


def test_parts_of_another_study_are_not_mixed_in(tmp_path, scheduler):
    setup = _setup(2, 1.0)
    parts = tmp_path / "parts"
    run_study(setup, members_from_elements(setup, _elements([10.0])), parts, scheduler=scheduler, progress=False)
    with pytest.raises(QamarError, match="different study"):
        run_study(setup, members_from_elements(setup, _elements([20.0])), parts, scheduler=scheduler, progress=False)


def test_bad_member_tables_are_refused(tmp_path):
    setup = _setup(2, 1.0)
    members = members_from_elements(setup, _elements([10.0, 20.0]))
    with pytest.raises(QamarError, match="repeat"):
        run_study(setup, members.assign(member_id=0), tmp_path / "a", progress=False)
    with pytest.raises(QamarError, match="lacks columns"):
        run_study(setup, members.drop(columns="cr"), tmp_path / "b", progress=False)


def test_unreachable_scheduler_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr("qamar.orbit.study.CONNECT_TIMEOUT_S", 1)
    setup = _setup(2, 1.0)
    members = members_from_elements(setup, _elements([10.0]))
    with pytest.raises(QamarError, match="cannot reach the Dask scheduler"):
        run_study(setup, members, tmp_path / "p", scheduler="tcp://127.0.0.1:9", progress=False)


def _processing_counts(dask_scheduler):
    """Per task key, how many times the scheduler sent it to a worker (runs on the scheduler)."""
    counts = {}
    for entry in dask_scheduler.transition_log:
        key, finish = entry[0], entry[2]
        if finish == "processing":
            counts[str(key)] = counts.get(str(key), 0) + 1
    return counts


def _kill_a_busy_worker(dask_scheduler, pids):
    """SIGKILL the first worker running tasks and return the keys it held: running, and finished
    but not yet fetched by the client (Dask recomputes those too). Runs on the scheduler, whose
    event loop assigns nothing meanwhile, so the keys are exactly what the worker held."""
    for address, worker in dask_scheduler.workers.items():
        if worker.processing:
            os.kill(pids[address], signal.SIGKILL)
            return {str(task.key) for task in (*worker.processing, *worker.has_what)}
    return set()


def test_a_worker_killed_mid_study_loses_no_finished_member(tmp_path, monkeypatch):
    """On qamar's default cluster (two processes of one thread, NUMBA_NUM_THREADS=1), kill one
    worker once the first batch has landed: the study completes, the parts written before the
    kill stay untouched, every member is there exactly once, and only the tasks the killed
    worker held (running or finished in its memory) run again."""
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    setup = _setup(10, 30.0)  # each member flies the whole span: about a second of work
    members = members_from_elements(setup, _elements(np.linspace(80.0, 90.0, 12), peri_alt_km=100.0, apo_alt_km=100.0))
    parts = tmp_path / "parts"
    with dask_client(workers=2) as client, ThreadPoolExecutor(1) as pool:
        pids = client.run(os.getpid)
        assert list(client.nthreads().values()) == [1, 1] and len(set(pids.values()) | {os.getpid()}) == 3
        assert set(client.run(lambda: os.environ["NUMBA_NUM_THREADS"]).values()) == {"1"}
        study = pool.submit(run_study, setup, members, parts, scheduler=client.scheduler.address, batch_size=1,
                            progress=False)  # fmt: skip
        deadline = time.monotonic() + 120
        while not any(parts.glob("part-*.parquet")) and time.monotonic() < deadline and not study.done():
            time.sleep(0.05)
        before = {f: f.stat().st_mtime_ns for f in parts.glob("part-*.parquet")}
        held = client.run_on_scheduler(_kill_a_busy_worker, pids=pids)
        assert held and not study.done(), "the study finished before a worker could be killed; make it longer"
        run = study.result(timeout=180)
        counts = client.run_on_scheduler(_processing_counts)
    assert run.computed == 12
    assert sorted(run.results["member_id"]) == list(range(12))
    assert run.results["steps"].gt(0).all()
    assert finished_member_ids(parts) == set(range(12))
    assert len(list(parts.glob("part-*.parquet"))) == 12
    assert all(f.stat().st_mtime_ns == t for f, t in before.items())
    study_keys = {k: n for k, n in counts.items() if "qamar-lifetime" in k}
    assert len(study_keys) == 12
    rerun = {k for k, n in study_keys.items() if n > 1}
    assert rerun and rerun <= held and all(study_keys[k] == 2 for k in rerun)


def test_summary_percentiles_count_survivors_beyond_the_horizon():
    """Ten members impact after 1..10 days, ten survive 30 days: the empirical 5 % point is day 1
    (1 of 20 members), the median day 10 (10 of 20) and the 95 % point lies beyond the horizon."""
    results = pd.DataFrame({
        "lifetime_days": list(np.arange(1.0, 11.0)) + [np.nan] * 10,
        "min_periapsis_alt_km": np.linspace(0.0, 95.0, 20),
    })  # fmt: skip
    summary = lifetime_summary(results, 30.0)
    assert summary["members"] == 20 and summary["impacting"] == 10 and summary["fraction_impacting"] == 0.5
    assert summary["lifetime_days"] == {"p5": 1.0, "p50": 10.0, "p95": None, "min": 1.0, "max": None}
    assert summary["min_periapsis_alt_km"] == {"p5": 0.0, "p50": 45.0, "p95": 90.0}

"""Sweeps: grid texts, the Cartesian product of grids, a small sweep end to end, and (slow) the
lifetime map of 100 km circular orbits over inclination against the frozen inclinations of the
literature."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed import LocalCluster

from qamar.errors import InvalidOrbitError, QamarError
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.study import ELEMENT_COLUMNS, StudySetup, local_cluster_options
from qamar.orbit.sweep import parse_grid, run_sweep, sweep_members
from qamar.time import utc_to_tdb_s

T0 = float(utc_to_tdb_s("2024-05-08T08:14:00Z"))


def _grids(**over):
    base = {"peri_alt_km": [100.0], "apo_alt_km": [100.0], "inc_deg": [90.0], "raan_deg": [0.0], "argp_deg": [0.0], "ta_deg": [0.0]}
    return {**base, **over}


def _setup(degree=2, horizon_days=1.0, **forces):
    return StudySetup(T0, ForceModel(field=load_field("grgm1200a", degree), degree=degree, **forces), horizon_days,
                      frame="moon-pa")  # fmt: skip


@pytest.mark.parametrize(
    "text, expected",
    [
        ("100", [100.0]),
        ("0:10:2", [0, 2, 4, 6, 8, 10]),
        ("0:1:0.1", np.round(np.arange(11) * 0.1, 10)),  # the stop is kept despite 0.1 not being exact in binary
        ("0:9:2", [0, 2, 4, 6, 8]),
        ("27, 50,76,86", [27, 50, 76, 86]),
        ("60:90:10,27,60", [27, 60, 70, 80, 90]),
        ("-5:5:5", [-5, 0, 5]),
    ],
)
def test_grid_texts(text, expected):
    np.testing.assert_array_equal(parse_grid(text), np.asarray(expected, dtype=float))


def test_issue_example_is_91_inclinations_from_0_to_180():
    grid = parse_grid("0:180:2")
    assert grid.size == 91 and grid[0] == 0.0 and grid[-1] == 180.0


@pytest.mark.parametrize(
    "text, words",
    [
        ("0:180", "start:stop:step"),
        ("10:0:1", "stop >= start"),
        ("0:10:0", "positive step"),
        ("0:10:-1", "positive step"),
        ("abc", "not a number"),
        ("1,,2", "not a number"),
        ("nan", "finite"),
    ],
)
def test_bad_grid_texts_say_what_to_write(text, words):
    with pytest.raises(QamarError, match=words) as info:
        parse_grid(text, "--inc-deg")
    assert "--inc-deg" in str(info.value)


def test_product_of_grids_drops_points_with_apoapsis_below_periapsis():
    setup = _setup()
    members, varying, dropped = sweep_members(setup, _grids(peri_alt_km=[50.0, 100.0, 150.0], apo_alt_km=[100.0, 200.0],
                                                            inc_deg=[10.0, 20.0]))  # fmt: skip
    assert varying == ["peri_alt_km", "apo_alt_km", "inc_deg"]
    assert dropped == 2  # peri 150 with apo 100, at both inclinations
    assert len(members) == 3 * 2 * 2 - 2
    assert (members["apo_alt_km"] >= members["peri_alt_km"]).all()
    assert list(members["member_id"]) == list(range(10))


def test_grid_points_below_the_surface_and_unknown_parameters_are_refused():
    setup = _setup()
    with pytest.raises(InvalidOrbitError, match="below the"):
        sweep_members(setup, _grids(peri_alt_km=[-10.0, 100.0]))
    with pytest.raises(QamarError, match="unknown"):
        sweep_members(setup, {**_grids(), "ecc": [0.1]})


def test_small_sweep_writes_parquet_with_setup_and_plot(tmp_path):
    """A point-mass Moon (no third bodies, no SRP): every orbit survives and keeps its Keplerian
    periapsis, whatever its inclination."""
    setup = _setup(degree=0, horizon_days=0.5, third_bodies=(), srp=False)
    out, png = tmp_path / "sweep.parquet", tmp_path / "sweep.png"
    with LocalCluster(**local_cluster_options(1)) as cluster:
        sweep = run_sweep(setup, _grids(peri_alt_km=[100.0], apo_alt_km=[300.0], inc_deg=parse_grid("0:90:30")), out,
                          plot=png, scheduler=cluster.scheduler_address, progress=False)  # fmt: skip
    assert sweep.parameters == ["inc_deg"] and sweep.dropped == 0
    table = pq.read_table(out)
    meta = json.loads(table.schema.metadata[b"qamar"])
    assert meta["degree"] == 0 and meta["horizon_days"] == 0.5 and meta["swept"] == ["inc_deg"]
    frame = table.to_pandas()
    assert list(frame["inc_deg"]) == [0.0, 30.0, 60.0, 90.0]
    assert set(ELEMENT_COLUMNS) <= set(frame.columns)
    assert frame["lifetime_days"].isna().all()
    np.testing.assert_allclose(frame["min_periapsis_alt_km"], 100.0, atol=1e-3)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / ".sweep.parquet.parts").exists()


def test_plot_of_three_swept_parameters_is_refused_before_computing(tmp_path):
    grids = _grids(inc_deg=[10.0, 20.0], raan_deg=[0.0, 90.0], argp_deg=[0.0, 90.0])
    with pytest.raises(QamarError, match="one or two"):
        run_sweep(_setup(), grids, tmp_path / "s.parquet", plot=tmp_path / "s.png", progress=False)
    assert not (tmp_path / ".s.parquet.parts").exists()


@pytest.mark.slow
def test_frozen_inclinations_outlive_their_neighbours(tmp_path):
    """100 km circular orbits under GRGM1200A 50x50 with Earth, Sun and SRP, 1 year.

    Low lunar orbits survive for long near the 'frozen' inclinations 27, 50, 76 and 86 deg
    (A. Konopliv in NASA Science News, "Bizarre Lunar Orbits", 6 Nov 2006, from Lunar Prospector
    and the Apollo subsatellites; numerical surveys of 100 km orbits: Ramanan & Adimurthy, J.
    Earth Syst. Sci. 114(6), 619-626, 2005) while most others crash within months. Checked
    here at each frozen inclination and at a crashing neighbour (docs/frozen-orbits.md has the
    full 0..180 deg map).
    """
    setup = _setup(degree=50, horizon_days=365.0)
    incs = [27.0, 40.0, 50.0, 60.0, 76.0, 86.0]
    sweep = run_sweep(setup, _grids(inc_deg=incs), tmp_path / "frozen.parquet", progress=False)
    life = dict(zip(sweep.run.results["inc_deg"], sweep.run.results["lifetime_days"].fillna(np.inf)))
    for frozen, unstable in ((27.0, 40.0), (50.0, 40.0), (50.0, 60.0), (76.0, 60.0), (86.0, 60.0)):
        assert life[frozen] > 3 * life[unstable], (frozen, unstable, life)

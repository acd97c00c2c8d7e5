"""SPK export (type 13) read back by SPICE itself (spiceypy), the independent reference.

The trajectory is a real propagation: 1 day of the iCube-Q release orbit (200 x 8,600 km,
mission brief) under GRGM1200A to degree 10, no third bodies. SPICE's ``spkez`` on the written
file must give the states of :meth:`Trajectory.state_at` (the integrator's dense output).

Bound. SPICE interpolates (degree + 1) / 2 states with a Hermite polynomial of odd degree d; the
remainder is |r^(d+1)| / (d+1)! * prod (t - t_i)^2 over the window (e.g. Hildebrand,
Introduction to Numerical Analysis, 2nd ed., sec. 8.2). For d = 3 that is at most
h^4 / 384 |r''''|: checked below against |r''''| from finite differences of the trajectory.
For d = 7 the error scales as h^8; on this orbit it is 4.9e-7 km at h = 120 s (measured), so
~2e-9 km at 60 s. The differences seen at 60 s (~2e-8 km, 1e-9 km/s) are the dense output's
own departure from a smooth curve at rtol = 1e-12 (they fall tenfold at rtol = 1e-13). The test
asserts 1 mm and 10 um/s.
"""

import numpy as np
import pytest

from qamar import data
from qamar.constants import MOON_RADIUS_KM
from qamar.errors import QamarError
from qamar.io.spk import DEFAULT_NAIF_ID, write_spk
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import propagate
from qamar.orbit.trajectory import Trajectory

spice = pytest.importorskip("spiceypy")

T0_TDB_S = 768_400_000.0  # 2024-05-08, inside DE440s
STEP_S = 60.0


@pytest.fixture(scope="module")
def trajectory():
    field = load_field("grgm1200a", 10)
    forces = ForceModel(field, 10, third_bodies=(), srp=False)
    rp_km, ra_km = MOON_RADIUS_KM + 200.0, MOON_RADIUS_KM + 8600.0
    e = (ra_km - rp_km) / (ra_km + rp_km)
    v_km_s = np.sqrt(field.gm_km3_s2 * (1 + e) / rp_km)
    inc_rad = np.radians(137.0)  # Chang'e-6's later retrograde inclination (mission brief)
    y0 = np.array([rp_km, 0.0, 0.0, 0.0, v_km_s * np.cos(inc_rad), v_km_s * np.sin(inc_rad)])
    result = propagate(T0_TDB_S, y0, 86400.0, forces, progress=False)
    return Trajectory(result.t_tdb_s, result.states_icrf, result.dense, meta={"object_name": "ICUBE-Q"})


@pytest.fixture
def load():
    """furnsh kernels for one test (de440s.bsp first, as a user would), unloaded afterwards."""
    loaded = []

    def _load(path):
        spice.furnsh(str(path))
        loaded.append(str(path))

    _load(data.path("de440s"))
    yield _load
    for kernel in reversed(loaded):
        spice.unload(kernel)


def _spice_states(naif_id, t_tdb_s):
    """States of naif_id relative to the Moon, J2000 (= ICRF) axes, from SPICE."""
    return np.array([spice.spkezr(str(naif_id), float(t), "J2000", "NONE", "MOON")[0] for t in t_tdb_s])


def _segments(path):
    """(body, centre, frame, type, start, stop) of each segment, in file order."""
    handle = spice.dafopr(str(path))
    out = []
    try:
        spice.dafbfs(handle)
        while spice.daffna():
            dc, ic = spice.dafus(spice.dafgs(), 2, 6)
            out.append((ic[0], ic[1], ic[2], ic[3], dc[0], dc[1]))
    finally:
        spice.dafcls(handle)
    return out


def _random_epochs(trajectory, n, seed):
    return np.random.default_rng(seed).uniform(trajectory.start_tdb_s, trajectory.end_tdb_s, n)


def test_spice_reads_the_trajectory_between_samples(tmp_path, trajectory, load):
    path = trajectory.to_spk(tmp_path / "icube-q.bsp")
    load(path)
    t = _random_epochs(trajectory, 1500, 1)
    diff = _spice_states(DEFAULT_NAIF_ID, t) - trajectory.state_at(t)
    assert np.linalg.norm(diff[:, :3], axis=1).max() < 1e-6  # km: 1 mm
    assert np.linalg.norm(diff[:, 3:], axis=1).max() < 1e-8  # km/s: 10 um/s
    # At the samples SPICE returns the stored states themselves; epochs are TDB s, unconverted.
    t_nodes, nodes = trajectory.sample(STEP_S)
    np.testing.assert_allclose(_spice_states(DEFAULT_NAIF_ID, t_nodes[::97]), nodes[::97], rtol=0, atol=1e-9)
    # One type 13 segment: the spacecraft about the Moon (301) on J2000 (frame code 1).
    assert _segments(path) == [(DEFAULT_NAIF_ID, 301, 1, 13, trajectory.start_tdb_s, trajectory.end_tdb_s)]
    coverage = spice.spkcov(str(path), DEFAULT_NAIF_ID)
    assert spice.wnfetd(coverage, 0) == (trajectory.start_tdb_s, trajectory.end_tdb_s)
    # The comment area says what the file is.
    handle = spice.dafopr(str(path))
    try:
        comments = " ".join(spice.dafec(handle, 100, 200)[1])
    finally:
        spice.dafcls(handle)
    assert "ICUBE-Q, NAIF ID -1000001" in comments and "Frame: J2000, i.e. ICRF" in comments


def test_degree_3_error_follows_the_hermite_remainder(tmp_path, trajectory, load):
    """Degree 3 (2-state windows) must show the cubic remainder h^4/384 |r''''|, degree 7 not."""
    path = write_spk(trajectory, tmp_path / "cubic.bsp", degree=3)
    load(path)
    t = _random_epochs(trajectory, 3000, 2)
    err_km = np.linalg.norm(_spice_states(DEFAULT_NAIF_ID, t)[:, :3] - trajectory.state_at(t)[:, :3], axis=1)
    # |r''''| from fourth differences of the dense output at 10 s.
    dt = 10.0
    grid = np.arange(trajectory.start_tdb_s + 2 * dt, trajectory.end_tdb_s - 2 * dt, dt)
    r = [trajectory.state_at(grid + k * dt)[:, :3] for k in (-2, -1, 0, 1, 2)]
    d4 = np.linalg.norm(r[0] - 4 * r[1] + 6 * r[2] - 4 * r[3] + r[4], axis=1) / dt**4
    bound_km = STEP_S**4 / 384 * d4.max()
    # Observed 8.98e-5 km against 9.10e-5 km; 20% margin as the 10 s differences may miss the peak.
    assert 0.2 * bound_km < err_km.max() < 1.2 * bound_km


def test_split_segments_interpolate_like_one(tmp_path, trajectory, load):
    one = write_spk(trajectory, tmp_path / "one.bsp", naif_id=-1001)
    split = write_spk(trajectory, tmp_path / "split.bsp", naif_id=-1002, states_per_segment=300)
    load(one)
    load(split)
    segments = _segments(split)
    assert len(segments) == 5  # 1441 states: 4 x 299 intervals + 244
    starts, stops = [s[4] for s in segments], [s[5] for s in segments]
    assert starts[0] == trajectory.start_tdb_s and stops[-1] == trajectory.end_tdb_s
    assert starts[1:] == stops[:-1]  # contiguous, sharing the boundary state
    assert spice.wncard(spice.spkcov(str(split), -1002)) == 1
    # Around each boundary and at random: the padded windows make both files agree to rounding.
    boundaries = np.array(stops[:-1])
    t = np.concatenate([
        boundaries, (boundaries[:, None] + np.array([-150.0, -61.0, -1e-3, 1e-3, 30.0, 119.0])).ravel(),
        _random_epochs(trajectory, 300, 3),
    ])
    from_split = _spice_states(-1002, t)
    np.testing.assert_allclose(from_split[:, :3], _spice_states(-1001, t)[:, :3], rtol=0, atol=1e-11)
    np.testing.assert_allclose(from_split[:, 3:], _spice_states(-1001, t)[:, 3:], rtol=0, atol=1e-14)
    assert np.linalg.norm(from_split[:, :3] - trajectory.state_at(t)[:, :3], axis=1).max() < 1e-6


def test_own_samples_of_an_oem_file(tmp_path, load):
    """step_s=None writes the samples as they are: the four LRO states at their UTC epochs."""
    lro = Trajectory.from_oem(data.path("lro_oem"))
    path = lro.to_spk(tmp_path / "lro.bsp", step_s=None, naif_id=-85, comments="From the LRO test OEM.\nFour states.")
    load(path)
    handle = spice.dafopr(str(path))
    try:
        comments = spice.dafec(handle, 100, 200)[1]
    finally:
        spice.dafcls(handle)
    assert comments[comments.index("From the LRO test OEM."):][:2] == ["From the LRO test OEM.", "Four states."]
    np.testing.assert_allclose(_spice_states("LRO", lro.t_tdb_s), lro.states_icrf, rtol=0, atol=1e-12)
    assert _segments(path)[0][4:] == (lro.start_tdb_s, lro.end_tdb_s)
    with pytest.raises(QamarError, match="interpolates 5 states at a time but the trajectory gives 4"):
        lro.to_spk(tmp_path / "lro9.bsp", step_s=None, degree=9)


def test_existing_file_bad_folder_and_overwrite(tmp_path, trajectory):
    target = tmp_path / "out.bsp"
    target.write_bytes(b"an older kernel")
    with pytest.raises(QamarError, match="already exists; choose another name or allow overwriting"):
        trajectory.to_spk(target)
    assert target.read_bytes() == b"an older kernel"
    trajectory.to_spk(target, overwrite=True, step_s=600.0)
    assert len(_segments(target)) == 1
    with pytest.raises(QamarError, match="does not exist; create it"):
        trajectory.to_spk(tmp_path / "missing" / "out.bsp")
    with pytest.raises(QamarError, match="is a folder"):
        trajectory.to_spk(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bsp"]  # no partial file left


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"degree": 8}, "odd Hermite degree from 1 to 27"),
        ({"degree": 29}, "odd Hermite degree from 1 to 27"),
        ({"naif_id": 301}, "not a spacecraft ID"),
        ({"naif_id": -1.5}, "not a spacecraft ID"),
        ({"segment_id": "x" * 41}, "1 to 40 printable ASCII"),
        ({"object_name": "Qamar \u0642\u0645\u0631"}, "1 to 40 printable ASCII"),
        ({"comments": ["caf\u00e9"]}, "printable ASCII"),
        ({"states_per_segment": 1}, "at least 2"),
    ],
)
def test_bad_options_write_nothing(tmp_path, trajectory, options, fragment):
    with pytest.raises(QamarError, match=fragment):
        write_spk(trajectory, tmp_path / "bad.bsp", **options)
    assert list(tmp_path.iterdir()) == []


def test_path_too_long_for_spice(tmp_path, trajectory):
    # CSPICE cuts file names at 255 characters without an error and writes to the cut name.
    folder = tmp_path / ("d" * 200) / ("e" * 40)
    folder.mkdir(parents=True)
    with pytest.raises(QamarError, match="at most 255 characters"):
        trajectory.to_spk(folder / "out.bsp", step_s=600.0)
    assert list(folder.iterdir()) == []
    assert list(folder.parent.iterdir()) == [folder]


def test_spice_failure_is_a_qamar_error_and_leaves_nothing(tmp_path, trajectory, monkeypatch):
    """A SPICE error while writing (here injected, as a full disk would raise it) leaves no file."""

    def failing_spkw13(*args):
        raise spice.utils.exceptions.SpiceyError("SPICE(DAFWRITEFAIL)", long="no space left on device")

    monkeypatch.setattr(spice, "spkw13", failing_spkw13)
    with pytest.raises(QamarError, match="SPICE could not write .* SPICE[(]DAFWRITEFAIL[)] no space left"):
        trajectory.to_spk(tmp_path / "out.bsp", step_s=600.0)
    assert list(tmp_path.iterdir()) == []

"""Trajectory: interpolation, apsides, ground track, OEM/CSV export, plots.

References: analytic two-body (Kepler's equation) for the states, SPICE (spiceypy) for the
lunar ME orientation, UTC strings and TDB calendar epochs.
"""

import csv
from types import SimpleNamespace

import numpy as np
import pytest

from qamar import data
from qamar.constants import GM_MOON_DE440_KM3_S2 as MU
from qamar.constants import MOON_RADIUS_KM
from qamar.errors import DataFormatError, EpochOutOfRangeError
from qamar.orbit import plots
from qamar.orbit.elements import keplerian_to_cartesian, period_s
from qamar.orbit.trajectory import Trajectory
from qamar.plotting import moon_map

spice = pytest.importorskip("spiceypy")

T0_TDB_S = 768_428_109.185_372  # 2024-05-08T08:14:00Z, the iCube-Q release (mission-brief.md)


pytestmark = pytest.mark.usefixtures("spice_kernels")


def kepler_states(t_tdb_s, peri_alt_km=200.0, apo_alt_km=8600.0, inc_deg=80.0, raan_deg=30.0, argp_deg=250.0):
    """Analytic two-body states, periapsis at T0_TDB_S: Kepler's equation by Newton iteration."""
    rp, ra = MOON_RADIUS_KM + peri_alt_km, MOON_RADIUS_KM + apo_alt_km
    a, e = 0.5 * (rp + ra), (ra - rp) / (ra + rp)
    mean = np.sqrt(MU / a**3) * (np.asarray(t_tdb_s, dtype=float) - T0_TDB_S)
    ecc_anomaly = mean.copy()
    for _ in range(30):
        ecc_anomaly -= (ecc_anomaly - e * np.sin(ecc_anomaly) - mean) / (1.0 - e * np.cos(ecc_anomaly))
    nu = 2.0 * np.arctan2(np.sqrt(1 + e) * np.sin(ecc_anomaly / 2), np.sqrt(1 - e) * np.cos(ecc_anomaly / 2))
    r, v = keplerian_to_cartesian(a, e, inc_deg, raan_deg, argp_deg, np.degrees(nu), MU)
    return np.hstack([r, v])


@pytest.fixture(scope="module")
def icube_q():
    """Two days of the 200 x 8600 km orbit sampled every 60 s, and its period."""
    t = T0_TDB_S + np.arange(0.0, 2 * 86400.0 + 1.0, 60.0)
    period = period_s(MOON_RADIUS_KM + 0.5 * (200.0 + 8600.0), MU)
    return Trajectory(t, kepler_states(t), meta={"object_name": "ICUBE-Q", "object_id": "2024-083X"}), period


def test_hermite_is_exact_at_samples_and_close_between(icube_q):
    trajectory, _ = icube_q
    np.testing.assert_allclose(trajectory.state_at(trajectory.t_tdb_s), trajectory.states_icrf, rtol=0, atol=1e-9)
    t = T0_TDB_S + np.linspace(0.0, 2 * 86400.0, 20011)
    err = trajectory.state_at(t) - kepler_states(t)
    # Cubic Hermite position error ~ h^4/384 |r''''|: at periapsis (r = 1937 km, angular rate
    # 1.2e-3 rad/s) with h = 60 s that is ~0.13 m; its derivative's error ~ h^3/(72 sqrt 3) |r''''|.
    assert np.abs(err[:, :3]).max() < 0.5e-3
    assert np.abs(err[:, 3:]).max() < 2e-5


def test_state_at_scalar_and_array_shapes(icube_q):
    trajectory, _ = icube_q
    assert trajectory.state_at(T0_TDB_S + 30.0).shape == (6,)
    assert trajectory.state_at(np.array([T0_TDB_S + 30.0])).shape == (1, 6)
    assert trajectory.start_tdb_s == T0_TDB_S
    assert trajectory.end_tdb_s == T0_TDB_S + 2 * 86400.0


def test_dense_output_is_used_when_given():
    t = T0_TDB_S + np.arange(0.0, 7201.0, 600.0)  # coarse samples: Hermite alone would be km off
    trajectory = Trajectory(t, kepler_states(t), kepler_states)
    probe = T0_TDB_S + np.array([123.4, 4567.8])
    np.testing.assert_array_equal(trajectory.state_at(probe), kepler_states(probe))


def test_outside_the_span_names_it_in_utc(icube_q):
    trajectory, _ = icube_q
    with pytest.raises(EpochOutOfRangeError) as caught:
        trajectory.state_at(np.array([T0_TDB_S + 10.0, T0_TDB_S - 1.0]))
    message = str(caught.value)
    assert spice.et2utc(T0_TDB_S, "ISOC", 3) + "Z" in message
    assert spice.et2utc(T0_TDB_S + 2 * 86400.0, "ISOC", 3) + "Z" in message
    assert spice.et2utc(T0_TDB_S - 1.0, "ISOC", 3) + "Z" in message
    with pytest.raises(EpochOutOfRangeError):
        trajectory.altitude_km(trajectory.end_tdb_s + 1e-3)
    # OEM epochs are written to the microsecond: closer than 1 us counts as the end itself.
    np.testing.assert_array_equal(trajectory.state_at(trajectory.end_tdb_s + 5e-7), trajectory.states_icrf[-1])


def test_sample_grid(icube_q):
    trajectory, _ = icube_q
    t, states = trajectory.sample(7000.0)
    assert t[0] == trajectory.start_tdb_s and t[-1] == trajectory.end_tdb_s
    np.testing.assert_allclose(np.diff(t)[:-1], 7000.0)
    assert states.shape == (len(t), 6)
    with pytest.raises(ValueError, match="positive"):
        trajectory.sample(0.0)


def test_altitude(icube_q):
    trajectory, _ = icube_q
    alt = trajectory.altitude_km()
    assert alt[0] == pytest.approx(200.0, abs=1e-9)
    assert alt.max() == pytest.approx(8600.0, abs=0.01)
    assert trajectory.altitude_km(T0_TDB_S) == pytest.approx(200.0, abs=1e-9)


def test_apsides_from_samples_match_kepler(icube_q):
    trajectory, period = icube_q
    apsides = trajectory.apsides()
    # Periapses at T0 + k T (the one at T0 itself starts the span, not a sign change), apoapses
    # half a period later.
    k = np.arange(1, len(apsides.peri_t_tdb_s) + 1)
    np.testing.assert_allclose(apsides.peri_t_tdb_s, T0_TDB_S + k * period, rtol=0, atol=0.01)
    np.testing.assert_allclose(apsides.apo_t_tdb_s, T0_TDB_S + (np.arange(len(apsides.apo_t_tdb_s)) + 0.5) * period,
                               rtol=0, atol=0.05)
    np.testing.assert_allclose(apsides.peri_alt_km, 200.0, atol=1e-3)
    np.testing.assert_allclose(apsides.apo_alt_km, 8600.0, atol=1e-3)
    assert len(apsides.peri_t_tdb_s) == 4 and len(apsides.apo_t_tdb_s) == 4  # 48 h = 4.006 periods


def test_apsides_from_events_when_present(icube_q):
    trajectory, _ = icube_q
    state = kepler_states(T0_TDB_S + 100.0)
    events = [SimpleNamespace(kind="apoapsis", t_tdb_s=T0_TDB_S + 200.0, state=state),
              SimpleNamespace(kind="umbra_entry", t_tdb_s=T0_TDB_S + 50.0, state=state),
              SimpleNamespace(kind="periapsis", t_tdb_s=T0_TDB_S + 100.0, state=state)]
    with_events = Trajectory(trajectory.t_tdb_s, trajectory.states_icrf, events=events)
    apsides = with_events.apsides()
    assert list(apsides.peri_t_tdb_s) == [T0_TDB_S + 100.0]
    assert list(apsides.apo_t_tdb_s) == [T0_TDB_S + 200.0]
    assert apsides.peri_alt_km[0] == pytest.approx(np.linalg.norm(state[:3]) - MOON_RADIUS_KM)


def test_ground_track_against_spice(icube_q):
    trajectory, _ = icube_q
    t = T0_TDB_S + np.array([0.0, 3333.3, 86400.0])
    lat, lon = trajectory.lat_lon_me_deg(t)
    for k, tk in enumerate(t):
        rot = np.array(spice.pxform("J2000", "MOON_ME_DE440_ME421", tk))
        _, lon_ref, lat_ref = spice.reclat(rot @ trajectory.state_at(tk)[:3])
        assert lat[k] == pytest.approx(np.degrees(lat_ref), abs=1e-9)
        assert (lon[k] - np.degrees(lon_ref) + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-9)
    lat0, lon0 = trajectory.lat_lon_me_deg(T0_TDB_S)
    assert isinstance(lat0, float) and lat0 == pytest.approx(lat[0])


def test_oem_round_trip_and_header(icube_q, tmp_path):
    trajectory, _ = icube_q
    path = trajectory.to_oem(tmp_path / "icube-q.oem", step_s=120.0)
    text = path.read_text()
    for line in ("CENTER_NAME = MOON", "REF_FRAME = ICRF", "TIME_SYSTEM = TDB", "OBJECT_NAME = ICUBE-Q",
                 "OBJECT_ID = 2024-083X", "INTERPOLATION = HERMITE", "INTERPOLATION_DEGREE = 3",
                 "START_TIME = " + spice.timout(T0_TDB_S, "YYYY-MM-DDTHR:MN:SC.###### ::TDB ::RND")):
        assert line in text.splitlines()
    back = Trajectory.from_oem(path)
    t, states = trajectory.sample(120.0)
    np.testing.assert_allclose(back.t_tdb_s, t, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.states_icrf[:, :3], states[:, :3], rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.states_icrf[:, 3:], states[:, 3:], rtol=0, atol=1e-12)
    assert back.meta["object_name"] == "ICUBE-Q" and back.meta["time_system"] == ["TDB"]
    assert [p.name for p in tmp_path.iterdir()] == ["icube-q.oem"]  # no temporary left behind


def test_csv_columns_against_spice(icube_q, tmp_path):
    trajectory, _ = icube_q
    path = trajectory.to_csv(tmp_path / "icube-q.csv", step_s=3600.0)
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["utc", "tdb_s", "x_km", "y_km", "z_km", "vx_km_s", "vy_km_s", "vz_km_s",
                             "alt_km", "lat_deg", "lon_deg"]
    assert len(rows) == 49
    for row in rows[::12]:
        t = float(row["tdb_s"])
        assert row["utc"] == spice.et2utc(t, "ISOC", 3) + "Z"
        state = trajectory.state_at(t)
        np.testing.assert_allclose([float(row[c]) for c in ("x_km", "y_km", "z_km")], state[:3], atol=1e-6)
        np.testing.assert_allclose([float(row[c]) for c in ("vx_km_s", "vy_km_s", "vz_km_s")], state[3:], atol=1e-9)
        assert float(row["alt_km"]) == pytest.approx(np.linalg.norm(state[:3]) - 1737.4, abs=1e-6)
        rot = np.array(spice.pxform("J2000", "MOON_ME_DE440_ME421", t))
        _, lon_ref, lat_ref = spice.reclat(rot @ state[:3])
        assert float(row["lat_deg"]) == pytest.approx(np.degrees(lat_ref), abs=1e-6)
        assert float(row["lon_deg"]) == pytest.approx(np.degrees(lon_ref), abs=1e-6)


def test_from_oem_joins_segments_and_rejects_other_centres(tmp_path):
    from qamar.io.oem import OemSegment, write_oem

    t = T0_TDB_S + np.arange(0.0, 1201.0, 60.0)
    x = kepler_states(t)
    path = write_oem(tmp_path / "two.oem", [OemSegment("SAT", "X", t[:11], x[:11]), OemSegment("SAT", "X", t[10:], x[10:])])
    joined = Trajectory.from_oem(path)
    np.testing.assert_allclose(joined.t_tdb_s, t, atol=1e-6)
    assert len(Trajectory.from_oem(path, segment=1).t_tdb_s) == 11
    with pytest.raises(DataFormatError, match="pick a segment"):
        Trajectory.from_oem(path, segment=2)
    overlap = write_oem(tmp_path / "overlap.oem", [OemSegment("SAT", "X", t[:11], x[:11]), OemSegment("SAT", "X", t[5:], x[5:])])
    with pytest.raises(DataFormatError, match="overlap"):
        Trajectory.from_oem(overlap)
    earth = write_oem(tmp_path / "earth.oem", [OemSegment("SAT", "X", t, x, center_name="EARTH")])
    with pytest.raises(DataFormatError, match="Moon-centred"):
        Trajectory.from_oem(earth)
    rotating = write_oem(tmp_path / "pa.oem", [OemSegment("SAT", "X", t, x, ref_frame="MOON_PA")])
    with pytest.raises(DataFormatError, match="REF_FRAME is MOON_PA"):
        Trajectory.from_oem(rotating)


@pytest.mark.parametrize(
    "t, states, match",
    [
        ([0.0], np.zeros((1, 6)), "n >= 2"),
        ([0.0, 1.0], np.zeros((2, 3)), "n >= 2"),
        ([0.0, 0.0], np.ones((2, 6)), "increase strictly"),
        ([0.0, 1.0], np.full((2, 6), np.nan), "finite"),
    ],
)
def test_bad_samples_are_rejected(t, states, match):
    with pytest.raises(DataFormatError, match=match):
        Trajectory(t, states)


@pytest.fixture
def without_map(monkeypatch):
    """Unregister the lunar albedo map for one test: figures must fall back to a plain grid."""
    monkeypatch.delitem(data.REGISTRY, "moon_map")
    moon_map.cache_clear()
    yield
    moon_map.cache_clear()


@pytest.mark.parametrize("with_map", [False, True])
def test_plots_write_png_files(icube_q, tmp_path, request, with_map):
    trajectory, _ = icube_q
    if not with_map:
        request.getfixturevalue("without_map")
    impact = SimpleNamespace(kind="impact", t_tdb_s=trajectory.end_tdb_s, state=trajectory.states_icrf[-1])
    with_impact = Trajectory(trajectory.t_tdb_s, trajectory.states_icrf, events=[impact], meta=trajectory.meta)
    for plot, traj, name in ((plots.plot_altitude, trajectory, "altitude.png"),
                             (plots.plot_apsides, trajectory, "apsides.png"),
                             (plots.plot_ground_track, with_impact, "ground_track.png")):
        path = plot(traj, tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["altitude.png", "apsides.png", "ground_track.png"]

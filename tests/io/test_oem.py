"""CCSDS OEM reader and writer: round trips, the LRO truth file, time systems, malformed input.

Independent references: SPICE (spiceypy) for every epoch conversion and Orekit's analytic
KeplerianPropagator for the physical consistency of the LRO states.
"""

import numpy as np
import pytest

from qamar import data
from qamar.constants import GM_MOON_DE440_KM3_S2
from qamar.errors import DataFormatError
from qamar.io import atomic_write
from qamar.io.oem import OemCovariance, OemSegment, format_tdb_epoch, read_oem, write_oem
from qamar.orbit.trajectory import Trajectory

spice = pytest.importorskip("spiceypy")


pytestmark = pytest.mark.usefixtures("spice_kernels")


def _segment(name, t0, n, seed, **kwargs):
    rng = np.random.default_rng(seed)
    t = t0 + 60.0 * np.arange(n) + rng.uniform(0, 1e-3, n)  # sub-second epochs
    states = np.column_stack([rng.uniform(-9000, 9000, (n, 3)), rng.uniform(-2.5, 2.5, (n, 3))])
    return OemSegment(name, "2024-083X", t, states, **kwargs)


def test_write_read_round_trip(tmp_path):
    cov = np.arange(36.0).reshape(6, 6)
    cov = 1e-3 * (cov + cov.T)
    first = _segment("ICUBE-Q", 768_428_109.0, 50, 1, interpolation="HERMITE", interpolation_degree=3,
                     comments=("first arc",), covariances=(OemCovariance(768_428_109.5, "RTN", cov),))
    second = _segment("ICUBE-Q", 768_428_109.0 + 3000.0, 20, 2,
                      accelerations_km_s2=np.full((20, 3), -1.234567e-4))
    path = write_oem(tmp_path / "two.oem", [first, second], comments=("made by the round-trip test",))
    oem = read_oem(path)
    assert oem.version == "2.0"
    assert oem.header["ORIGINATOR"] == "qamar"
    assert oem.comments == ("made by the round-trip test",)
    assert len(oem.segments) == 2
    for wrote, got in zip((first, second), oem.segments):
        # epochs to the microsecond, positions to 1e-9 km, velocities to 1e-12 km/s (as written)
        np.testing.assert_allclose(got.t_tdb_s, wrote.t_tdb_s, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.states[:, :3], wrote.states[:, :3], rtol=0, atol=5.1e-10)
        np.testing.assert_allclose(got.states[:, 3:], wrote.states[:, 3:], rtol=0, atol=5.1e-13)
        assert got.metadata["TIME_SYSTEM"] == "TDB"
        assert (got.object_name, got.object_id, got.center_name, got.ref_frame) == ("ICUBE-Q", "2024-083X", "MOON", "ICRF")
    assert oem.segments[0].comments == ("first arc",)
    assert (oem.segments[0].interpolation, oem.segments[0].interpolation_degree) == ("HERMITE", 3)
    (got_cov,) = oem.segments[0].covariances
    assert got_cov.ref_frame == "RTN"
    assert got_cov.t_tdb_s == pytest.approx(768_428_109.5, abs=1e-6)
    np.testing.assert_allclose(got_cov.matrix, cov, rtol=1e-15)
    np.testing.assert_allclose(oem.segments[1].accelerations_km_s2, -1.234567e-4, rtol=1e-15)
    assert oem.segments[1].accelerations_km_s2.shape == (20, 3)


def test_tdb_epoch_text_matches_spice():
    # SPICE timout in the TDB scale is the independent calendar reference.
    times = [0.0, -43200.0, 768_428_109.185372, 1_000_000_000.5, -3.0e8 + 0.25]
    expected = [spice.timout(t, "YYYY-MM-DDTHR:MN:SC.###### ::TDB ::RND") for t in times]
    assert format_tdb_epoch(np.array(times)) == expected
    assert format_tdb_epoch(times[2]) == expected[2]


def test_lro_file_metadata_epochs_and_covariance():
    # ../shared/data/truth/lro_2024-01-01_3min.oem: four LRO states (Nyx/ANISE), UTC, EME2000.
    oem = read_oem(data.path("lro_oem"))
    assert oem.header == {"CREATION_DATE": "2025-12-20T22:19:00", "ORIGINATOR": "Nyx Space/ANISE"}
    (seg,) = oem.segments
    assert seg.object_name == "LUNAR RECONAISSANCE ORBITER"
    assert (seg.center_name, seg.ref_frame, seg.metadata["TIME_SYSTEM"]) == ("MOON", "EME2000", "UTC")
    assert (seg.interpolation, seg.interpolation_degree) == ("HERMITE", 7)
    assert len(seg.comments) == 3
    expected = [spice.str2et(f"2024-01-01T00:0{k}:00") for k in range(4)]  # ISO input is UTC in SPICE
    np.testing.assert_allclose(seg.t_tdb_s, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(seg.states[2], [-326.191114, 1201.14448, -1351.026222, -1.061019, 0.799418, 0.943868])
    assert len(seg.covariances) == 4
    assert [c.ref_frame for c in seg.covariances] == [None, None, None, "EME2000"]
    np.testing.assert_allclose([c.t_tdb_s for c in seg.covariances], expected, rtol=0, atol=1e-6)
    first = seg.covariances[0].matrix
    np.testing.assert_array_equal(first, first.T)
    assert first[0, 0] == 0.122947 and first[2, 1] == -0.054227 and first[5, 3] == 0.000014


def test_lro_states_follow_kepler_motion():
    """The LRO states are mutually consistent with orbital motion about the Moon.

    Reference: Orekit's analytic KeplerianPropagator (point-mass Moon, DE440 GM) started from
    the file's first state. Physics bound: LRO flies at ~100 km altitude (|r| ~ 1835 km); the
    accelerations a point mass leaves out (J2 ~ 2e-4 and the mascons) are < ~1e-3 m/s^2 there,
    i.e. < 2 m after 1 minute and < 20 m after 3 minutes. The file's states are estimates
    rounded to 1 m and 1 mm/s-0.1 m/s (velocities have 4-6 digits), and they scatter about a
    smooth orbit by up to ~0.3 km (observed: 104 m at 1 min, 307 m at 2 min, 22 m at 3 min).
    A 0.5 km bound therefore checks the reading: a 1 s epoch error moves LRO 1.6 km, a km/m
    unit slip or a swapped/negated axis moves it hundreds of km. The cubic Hermite
    interpolation between the 1-minute points (what Trajectory does) must stay within the same
    bound of the Kepler arc at the midpoints.
    """
    pytest.importorskip("orekit_jpype")
    from tests import orekit_support

    orekit_support.start()
    from org.hipparchus.geometry.euclidean.threed import Vector3D
    from org.orekit.frames import FramesFactory
    from org.orekit.orbits import CartesianOrbit
    from org.orekit.propagation.analytical import KeplerianPropagator
    from org.orekit.time import AbsoluteDate
    from org.orekit.utils import PVCoordinates

    trajectory = Trajectory.from_oem(data.path("lro_oem"))
    x0_m = trajectory.states_icrf[0] * 1e3
    start = AbsoluteDate.J2000_EPOCH
    orbit = CartesianOrbit(
        PVCoordinates(Vector3D(*x0_m[:3].tolist()), Vector3D(*x0_m[3:].tolist())),
        FramesFactory.getGCRF(), start, GM_MOON_DE440_KM3_S2 * 1e9,
    )
    propagator = KeplerianPropagator(orbit)

    def kepler_km(t_tdb_s):
        pv = propagator.propagate(start.shiftedBy(float(t_tdb_s - trajectory.start_tdb_s))).getPVCoordinates()
        return np.array(pv.getPosition().toArray()) / 1e3

    radii = np.linalg.norm(trajectory.states_icrf[:, :3], axis=1)
    assert np.all((1830.0 < radii) & (radii < 1840.0))
    for t, state in zip(trajectory.t_tdb_s[1:], trajectory.states_icrf[1:]):
        assert np.linalg.norm(state[:3] - kepler_km(t)) < 0.5
    midpoints = 0.5 * (trajectory.t_tdb_s[:-1] + trajectory.t_tdb_s[1:])
    for t, r in zip(midpoints, trajectory.state_at(midpoints)[:, :3]):
        assert np.linalg.norm(r - kepler_km(t)) < 0.5


def _oem_text(time_system="UTC", epoch="2024-01-01T00:00:00", start=None, stop="2024-01-01T00:01:00"):
    start = start or epoch
    return f"""CCSDS_OEM_VERS = 2.0
CREATION_DATE = 2024-01-02T00:00:00
ORIGINATOR = TEST
META_START
OBJECT_NAME = SAT
OBJECT_ID = 2024-000A
CENTER_NAME = MOON
REF_FRAME = ICRF
TIME_SYSTEM = {time_system}
START_TIME = {start}
STOP_TIME = {stop}
META_STOP
{epoch} 1800.0 0.0 0.0 0.0 1.6 0.0
"""


@pytest.mark.parametrize("time_system", ["UTC", "TAI", "TT", "GPS", "TDB"])
def test_time_systems_against_spice(tmp_path, time_system):
    path = tmp_path / "one.oem"
    path.write_text(_oem_text(time_system))
    (t,) = read_oem(path).segments[0].t_tdb_s
    # 2024-01-01T00:00:00 counted in a uniform scale from 2000-01-01T12:00:00 of that scale.
    uniform_s = 8766 * 86400.0 - 43200.0
    expected = {
        "UTC": spice.str2et("2024-01-01T00:00:00"),
        "TAI": spice.unitim(uniform_s, "TAI", "TDB"),
        "TT": spice.unitim(uniform_s, "TDT", "TDB"),
        "GPS": spice.unitim(uniform_s + 19.0, "TAI", "TDB"),  # GPS = TAI - 19 s (IS-GPS-200)
        "TDB": spice.str2et("2024-01-01 00:00:00 TDB"),
    }[time_system]
    assert t == pytest.approx(expected, abs=1e-6)


def test_day_of_year_epochs_and_leap_second(tmp_path):
    path = tmp_path / "doy.oem"
    path.write_text(_oem_text("UTC", epoch="2024-001T00:00:00.5Z", start="2024-001T00:00:00Z"))
    assert read_oem(path).segments[0].t_tdb_s[0] == pytest.approx(spice.str2et("2024-01-01T00:00:00.5"), abs=1e-6)
    path.write_text(_oem_text("UTC", epoch="2016-12-31T23:59:60.5", start="2016-12-31T23:59:00", stop="2017-01-01T00:00:01"))
    assert read_oem(path).segments[0].t_tdb_s[0] == pytest.approx(spice.str2et("2016-12-31T23:59:60.5"), abs=1e-6)


GOOD = _oem_text()


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("", None, "empty"),
        ("COMMENT only\n", None, "empty"),
        (GOOD.replace("CCSDS_OEM_VERS = 2.0", "CREATION_DATE = x"), 1, "must start with CCSDS_OEM_VERS"),
        (GOOD.replace("= 2.0", "= 9.9"), 1, "9.9"),
        (GOOD.replace("ORIGINATOR = TEST", "ORIGINATOR = TEST\nSPACECRAFT = X"), 4, "unknown header keyword"),
        (GOOD.replace("ORIGINATOR = TEST\n", ""), 3, "ORIGINATOR"),
        (GOOD.replace("OBJECT_ID = 2024-000A", "OBJECT_ID = 2024-000A\nCOLOUR = RED"), 7, "unknown metadata keyword COLOUR"),
        (GOOD.replace("REF_FRAME = ICRF\n", ""), 11, "lacks REF_FRAME"),
        (GOOD.replace("TIME_SYSTEM = UTC", "TIME_SYSTEM = UT1"), 12, "UT1"),
        (GOOD.replace("CENTER_NAME = MOON", "CENTER_NAME ="), 7, "CENTER_NAME has no value"),
        (GOOD.replace("CENTER_NAME = MOON", "CENTER_NAME MOON"), 7, "expected 'KEYWORD = value'"),
        (GOOD.replace("2024-01-01T00:00:00 1800.0", "2024-13-01T00:00:00 1800.0"), 13, "not a CCSDS epoch"),
        (GOOD.replace(" 0.0 1.6 0.0", " 1.6 0.0"), 13, "got 6 fields"),
        (GOOD.replace("1800.0", "18OO.0"), 13, "'18OO.0' is not a number"),
        (GOOD.replace("1800.0", "nan"), 13, "not finite"),
        (GOOD + "2023-12-31T23:59:00 1800.0 0.0 0.0 0.0 1.6 0.0\n", 14, "increase strictly"),
        (GOOD + "2024-01-01T00:02:00 1800.0 0.0 0.0 0.0 1.6 0.0\n", 14, "outside START_TIME"),
        (GOOD.replace("START_TIME = 2024-01-01T00:00:00", "START_TIME = 2024-01-01T00:00:30"), 13, "outside START_TIME"),
        (GOOD.replace("2024-01-01T00:00:00 1800.0", "2024-01-01T00:00:60 1800.0"), 13, "leap second"),
        (GOOD.replace("META_STOP\n", ""), 12, "expected 'KEYWORD = value'"),
        (GOOD.split("META_STOP")[0], 11, "ends inside a metadata block"),
        (GOOD.split("2024-01-01T00:00:00 1800")[0], 4, "no ephemeris data"),
        (GOOD + "COVARIANCE_START\nEPOCH = 2024-01-01T00:00:00\n1.0\n2.0 3.0\n4.0 5.0\n", 18, "row 3 needs 3 numbers"),
        (GOOD + "COVARIANCE_START\nEPOCH = 2024-01-01T00:00:00\n1\n1 1\n1 1 1\nCOVARIANCE_STOP\n", 19, "3 rows, not 6"),
        (GOOD + "COVARIANCE_START\n1\n", 15, "before their EPOCH"),
        (GOOD + "COVARIANCE_START\nEPOCH = 2024-01-01T00:00:00\n", 15, "ends inside a covariance block"),
        (GOOD + "COVARIANCE_START\nCOVARIANCE_STOP\n2024-01-01T00:00:30 1 0 0 0 1 0\n", 16, "expected META_START"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad.oem"
    path.write_text(text)
    with pytest.raises(DataFormatError) as caught:
        read_oem(path)
    message = str(caught.value)
    assert fragment in message
    assert str(path) in message
    if line is not None:
        assert f"line {line}:" in message


def test_reader_tolerates_whitespace_comments_and_covariance_comments(tmp_path):
    text = GOOD.replace("META_START", "COMMENT before metadata\n\n   META_START   ").replace(
        "1800.0 0.0 0.0", "\t1800.0   0.0\t0.0"
    )
    text += "COVARIANCE_START\nCOMMENT cov\nEPOCH = 2024-01-01T00:00:00\n" + "".join(
        " ".join(["1.0"] * (i + 1)) + "\n" for i in range(6)
    ) + "COVARIANCE_STOP\n"
    path = tmp_path / "spaced.oem"
    path.write_text(text)
    oem = read_oem(path)
    assert oem.comments == ("before metadata",)
    (seg,) = oem.segments
    assert seg.comments == ("cov",)
    np.testing.assert_array_equal(seg.states[0], [1800.0, 0.0, 0.0, 0.0, 1.6, 0.0])
    np.testing.assert_array_equal(seg.covariances[0].matrix, np.ones((6, 6)))


def test_non_text_file_is_a_format_error(tmp_path):
    path = tmp_path / "binary.oem"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        read_oem(path)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.oem"
    target.write_text("old content\n")
    with pytest.raises(RuntimeError), atomic_write(target) as stream:
        stream.write("half a file")
        raise RuntimeError("disk full")
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.oem"]


def test_writer_refuses_invalid_segments_before_writing(tmp_path):
    target = tmp_path / "bad.oem"
    seg = _segment("SAT", 0.0, 3, 1)
    broken = OemSegment("SAT", "X", seg.t_tdb_s[::-1], seg.states)
    with pytest.raises(ValueError, match="increase"):
        write_oem(target, [seg, broken])
    with pytest.raises(ValueError, match="single line"):
        write_oem(target, [OemSegment("SAT\nX", "X", seg.t_tdb_s, seg.states)])
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []

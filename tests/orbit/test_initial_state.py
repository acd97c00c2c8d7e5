"""A CCSDS OEM as the initial state of a propagation: the LRO truth file.

../shared/data/truth/lro_2024-01-01_3min.oem holds four LRO states one minute apart (Nyx/ANISE,
Moon-centred EME2000, UTC), at 97.6-100.9 km altitude over the 1737.4 km sphere. Epochs are
checked against SPICE ``str2et``; the states against a propagation from the first one under
GRGM1200A to degree 50 with Earth and Sun.

Bound. The file's states are estimates that scatter about any smooth orbit: tests/io/test_oem.py
finds them 104, 307 and 22 m from a Kepler arc after 1, 2 and 3 minutes, and the degree-50 field
changes that by only a few metres over 3 minutes (observed here: 102, 313 and 31 m; 0.14, 1.38
and 0.03 m/s). Velocities are given to 0.1-1 mm/s (0.9095 km/s has four decimals): up to
9 m of drift in 3 minutes. So the bound is the file's scatter, 0.4 km and 2 m/s; it still
catches a 1 s epoch slip (1.6 km), a unit slip or a swapped axis (hundreds of km).
"""

import numpy as np
import pytest

from qamar import data
from qamar.constants import MOON_RADIUS_KM
from qamar.errors import DataFormatError, EpochOutOfRangeError
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import propagate
from qamar.orbit.trajectory import initial_state_from_oem
from qamar.time import utc_to_tdb_s

pytestmark = pytest.mark.usefixtures("spice_kernels")

# The file's data lines (km, km/s), as written.
LRO_STATES = np.array([
    [-197.253745, 1098.651792, -1456.501883, -1.085836, 0.9095, 0.80923],
    [-262.088605, 1151.687385, -1405.978582, -1.074949, 0.85611, 0.877168],
    [-326.191114, 1201.14448, -1351.026222, -1.061019, 0.799418, 0.943868],
    [-389.345943, 1247.597262, -1292.793247, -1.044016, 0.742253, 1.005408],
])


@pytest.fixture(scope="module")
def degree_50():
    return ForceModel(load_field("grgm1200a", 50), 50, third_bodies=("earth", "sun"), srp=False)


def test_first_state_propagates_onto_the_later_ones(spice_kernels, degree_50):
    t0_tdb_s, state_icrf = initial_state_from_oem(data.path("lro_oem"))
    assert t0_tdb_s == pytest.approx(spice_kernels.str2et("2024-01-01T00:00:00"), abs=1e-6)
    np.testing.assert_array_equal(state_icrf, LRO_STATES[0])
    assert 97.0 < np.linalg.norm(state_icrf[:3]) - MOON_RADIUS_KM < 98.0

    result = propagate(t0_tdb_s, state_icrf, 180.0, degree_50, progress=False)
    later_tdb_s = [spice_kernels.str2et(f"2024-01-01T00:0{k}:00") for k in (1, 2, 3)]
    predicted = result.dense(np.array(later_tdb_s))
    pos_err_km = np.linalg.norm(predicted[:, :3] - LRO_STATES[1:, :3], axis=1)
    vel_err_km_s = np.linalg.norm(predicted[:, 3:] - LRO_STATES[1:, 3:], axis=1)
    assert pos_err_km.max() < 0.4
    assert vel_err_km_s.max() < 2e-3


def test_state_at_a_given_epoch(spice_kernels, degree_50):
    path = data.path("lro_oem")
    # At a sample: that sample, exactly; the epoch may carry a zone.
    t_tdb_s, state_icrf = initial_state_from_oem(path, "2024-01-01T05:02:00+05:00")
    assert t_tdb_s == pytest.approx(spice_kernels.str2et("2024-01-01T00:02:00"), abs=1e-6)
    np.testing.assert_array_equal(state_icrf, LRO_STATES[2])
    # Between samples: interpolated, on the orbit within the file's scatter. The cubic Hermite
    # velocity at mid-interval is 1.5 (p1 - p0) / h - (v0 + v1) / 4, so position scatter of
    # up to 0.4 km at each end moves it by up to 1.5 * 0.8 km / 60 s = 20 m/s, plus a quarter of
    # the velocity scatter (observed: 10 m/s, the 1- and 2-minute states being 0.1 and 0.3 km off).
    t_tdb_s, state_icrf = initial_state_from_oem(path, "2024-01-01T00:01:30Z")
    assert t_tdb_s == pytest.approx(spice_kernels.str2et("2024-01-01T00:01:30"), abs=1e-6)
    t0_tdb_s, state0_icrf = initial_state_from_oem(path)
    on_orbit = propagate(t0_tdb_s, state0_icrf, 90.0, degree_50, progress=False).states_icrf[-1]
    assert np.linalg.norm(state_icrf[:3] - on_orbit[:3]) < 0.4
    assert np.linalg.norm(state_icrf[3:] - on_orbit[3:]) < 0.021
    # The last epoch of the file is inside its span.
    assert initial_state_from_oem(path, "2024-01-01T00:03:00").t_tdb_s == pytest.approx(
        spice_kernels.str2et("2024-01-01T00:03:00"), abs=1e-6
    )


@pytest.mark.parametrize("epoch", ["2023-12-31T23:59:59", "2024-01-01T00:03:00.5", "2024-06-01"])
def test_epoch_outside_the_file(epoch):
    path = data.path("lro_oem")
    with pytest.raises(EpochOutOfRangeError) as caught:
        initial_state_from_oem(path, epoch)
    message = str(caught.value)
    assert f"epoch {epoch} is outside {path}" in message
    assert "spans 2024-01-01T00:00:00.000Z to 2024-01-01T00:03:00.000Z UTC" in message


def test_epoch_that_is_not_iso_8601():
    with pytest.raises(DataFormatError, match="cannot read 'new year' as a UTC epoch"):
        initial_state_from_oem(data.path("lro_oem"), "new year")


def test_cli_propagates_from_the_oem_onto_its_later_states(tmp_path):
    # `--from-oem` turns the first state into osculating elements with the field's GM and back:
    # the written OEM starts on the file's state (to rounding) and meets its later states within
    # their scatter (module docstring).
    from typer.testing import CliRunner

    from qamar.cli import app
    from qamar.orbit.trajectory import Trajectory

    out = tmp_path / "lro.oem"
    args = ["orbit", "propagate", "--from-oem", str(data.path("lro_oem")), "--degree", "50", "--no-srp",
            "--duration-days", str(180.0 / 86400.0), "--step-s", "60", "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    states = Trajectory.from_oem(out).states_icrf
    np.testing.assert_allclose(states[0], LRO_STATES[0], rtol=0, atol=1e-9)
    assert np.linalg.norm(states[1:, :3] - LRO_STATES[1:, :3], axis=1).max() < 0.4


def test_scenario_orbit_from_an_oem_relative_to_the_scenario(tmp_path):
    import shutil

    from qamar.mission.scenario import load_scenario
    from qamar.orbit.elements import state_from_apsides

    shutil.copy(data.path("lro_oem"), tmp_path / "lro.oem")
    scenario = tmp_path / "lro.yaml"
    scenario.write_text(
        "name: LRO\nspacecraft: {mass_kg: 1000, area_m2: 10, cr: 1.3}\n"
        "orbit: {oem: lro.oem, epoch_utc: 2024-01-01T00:02:00Z, frame: moon-pa}\n"
        "forces: {gravity: lp165p}\npropagation: {duration_days: 1}\n"
    )
    orbit = load_scenario(scenario).orbit
    t_tdb_s = float(utc_to_tdb_s("2024-01-01T00:02:00Z"))
    gm = load_field("lp165p", 0).gm_km3_s2
    elements = {k: getattr(orbit, k) for k in ("peri_alt_km", "apo_alt_km", "inc_deg", "raan_deg", "argp_deg", "ta_deg")}
    r, v = state_from_apsides(**elements, gm_km3_s2=gm, frame="moon-pa", t_tdb_s=t_tdb_s)
    np.testing.assert_allclose(np.concatenate([r, v]), LRO_STATES[2], rtol=0, atol=1e-9)


@pytest.mark.parametrize("extra, expected", [
    (["--inc-deg", "90"], "--from-oem gives the whole state; drop --inc-deg"),
    (["--epoch", "2024-02-01T00:00:00Z"], "is outside"),
])  # fmt: skip
def test_cli_from_oem_refusals(tmp_path, extra, expected):
    from typer.testing import CliRunner

    from qamar.cli import app

    out = tmp_path / "x.oem"
    args = ["orbit", "propagate", "--from-oem", str(data.path("lro_oem")), "--duration-days", "0.01", "--out", str(out)]
    result = CliRunner().invoke(app, args + extra)
    assert result.exit_code == 2 and expected in result.output and not out.exists(), result.output


def test_cli_asks_for_the_orbit(tmp_path):
    from typer.testing import CliRunner

    from qamar.cli import app

    result = CliRunner().invoke(app, ["orbit", "lifetime", "--epoch", "2024-01-01", "--inc-deg", "90"])
    assert result.exit_code == 2
    assert "give the orbit: --peri-alt-km, --apo-alt-km (or --from-oem FILE)" in result.output

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

"""qamar.ephemeris against SPICE (spiceypy) reading the very same kernels.

SPICE evaluates de440s.bsp and moon_pa_de440_200625.bpc with its own readers (SPKEZR, PXFORM
through moon_de440_220930.tf), so agreement to well below a millimetre checks qamar's record
selection, Chebyshev evaluation and body chaining (Sun = Sun_SSB - EMB_SSB - Moon_EMB).
"""

import numpy as np
import pytest
import spiceypy as spice
from numba import njit

from qamar import data
from qamar.ephemeris import Ephemeris, icrf_to_pa_matrix, sun_earth_wrt_moon_km
from qamar.errors import EpochOutOfRangeError

KM_PER_MM = 1e-6
# psi (the lunar rotation angle) reaches ~6e3 rad over 1990-2040, whose float64 spacing is
# 9e-13 rad: matrix elements can agree no better than that level.
MATRIX_TOL = 5e-12


@pytest.fixture(scope="module")
def epochs():
    """1990-2040 random TDB epochs plus Moon-record boundaries (4-day records of de440s)."""
    rng = np.random.default_rng(7)
    random = rng.uniform(-3.156e8, 1.262e9, 400)
    boundaries = -4734072000.0 + 345600.0 * np.arange(15700, 15710)
    return np.concatenate([random, boundaries, boundaries + 1e-3, boundaries - 1e-3])


def _spice_states(epochs, body):
    return np.array([spice.spkezr(body, t, "J2000", "NONE", "MOON")[0] for t in epochs])


def test_python_api_matches_spice_states(spice_kernels, epochs):
    eph = Ephemeris.default()
    sun, earth = _spice_states(epochs, "SUN"), _spice_states(epochs, "EARTH")
    assert np.max(np.abs(eph.sun_wrt_moon_icrf_km(epochs) - sun[:, :3])) < KM_PER_MM
    assert np.max(np.abs(eph.earth_wrt_moon_icrf_km(epochs) - earth[:, :3])) < KM_PER_MM
    r_sun, v_sun = eph.sun_state_wrt_moon_icrf(epochs)
    r_earth, v_earth = eph.earth_state_wrt_moon_icrf(epochs)
    assert np.max(np.abs(r_sun - sun[:, :3])) < KM_PER_MM
    assert np.max(np.abs(v_sun - sun[:, 3:])) < 1e-9
    assert np.max(np.abs(v_earth - earth[:, 3:])) < 1e-9
    assert np.max(np.abs(r_earth - earth[:, :3])) < KM_PER_MM
    # Scalars give (3,) vectors.
    one = eph.sun_wrt_moon_icrf_km(float(epochs[0]))
    assert one.shape == (3,) and np.max(np.abs(one - sun[0, :3])) < KM_PER_MM
    assert eph.earth_state_wrt_moon_icrf(float(epochs[0]))[1].shape == (3,)


def test_icrf_to_pa_matches_spice_pxform(spice_kernels, epochs):
    ours = Ephemeris.default().icrf_to_pa(epochs)
    theirs = np.array([spice.pxform("J2000", "MOON_PA", t) for t in epochs])
    assert ours.shape == (len(epochs), 3, 3)
    assert np.max(np.abs(ours - theirs)) < MATRIX_TOL
    assert np.max(np.abs(ours @ ours.transpose(0, 2, 1) - np.eye(3))) < 1e-14


def test_compiled_functions_match_spice(spice_kernels, epochs):
    eph = Ephemeris.default()
    ekdata = eph.kernel_data(epochs.min(), epochs.max())
    sun, earth = _spice_states(epochs, "SUN"), _spice_states(epochs, "EARTH")
    for i, t in enumerate(epochs):
        r_sun, r_earth = sun_earth_wrt_moon_km(t, ekdata)
        assert np.max(np.abs(r_sun - sun[i, :3])) < KM_PER_MM
        assert np.max(np.abs(r_earth - earth[i, :3])) < KM_PER_MM
        assert np.max(np.abs(icrf_to_pa_matrix(t, ekdata) - spice.pxform("J2000", "MOON_PA", t))) < MATRIX_TOL


def test_compiled_functions_run_inside_numba(spice_kernels):
    """The force models call them from njit code: check that path, on a short sliced span."""

    @njit
    def evaluate(times, ekdata):
        out = np.empty((times.shape[0], 15))
        for n in range(times.shape[0]):
            r_sun, r_earth = sun_earth_wrt_moon_km(times[n], ekdata)
            out[n, 0:3] = r_sun
            out[n, 3:6] = r_earth
            out[n, 6:15] = icrf_to_pa_matrix(times[n], ekdata).ravel()
        return out

    t0 = 768428109.1853721  # 2024-05-08T08:14:00Z (spice.str2et)
    times = t0 + np.linspace(0.0, 30 * 86400.0, 50)
    out = evaluate(times, Ephemeris.default().kernel_data(times[0], times[-1]))
    for n, t in enumerate(times):
        assert np.max(np.abs(out[n, 0:3] - spice.spkpos("SUN", t, "J2000", "NONE", "MOON")[0])) < KM_PER_MM
        assert np.max(np.abs(out[n, 3:6] - spice.spkpos("EARTH", t, "J2000", "NONE", "MOON")[0])) < KM_PER_MM
        assert np.max(np.abs(out[n, 6:15] - spice.pxform("J2000", "MOON_PA", t).ravel())) < MATRIX_TOL


def test_kernel_data_layout():
    t0, t1 = 7.0e8, 7.0e8 + 10 * 86400.0
    ekdata = Ephemeris.default().kernel_data(t1, t0)  # either order
    assert len(ekdata) == 5
    for init_s, intlen_s, records in ekdata:
        assert isinstance(init_s, float) and isinstance(intlen_s, float)
        assert records.dtype == np.float64 and records.flags.c_contiguous and records.shape[1] == 3
        # Covers the span with the one-day margin, and not much more.
        assert init_s <= t0 - 86400.0 and init_s + records.shape[0] * intlen_s >= t1 + 86400.0
        assert records.shape[0] * intlen_s <= (t1 - t0) + 2 * 86400.0 + 2 * intlen_s


def test_coverage_matches_spice_windows():
    eph = Ephemeris.default()
    spk = str(data.path("de440s"))
    starts, stops = [], []
    for body in (10, 3, 301, 399):
        window = spice.spkcov(spk, body)
        starts.append(spice.wnfetd(window, 0)[0])
        stops.append(spice.wnfetd(window, spice.wncard(window) - 1)[1])
    pck = spice.pckcov(str(data.path("moon_pa_de440")), 31008)
    start = max(max(starts), spice.wnfetd(pck, 0)[0])
    stop = min(min(stops), spice.wnfetd(pck, spice.wncard(pck) - 1)[1])
    assert eph.coverage_tdb_s == (start, stop)


def test_epoch_outside_coverage_raises():
    eph = Ephemeris.default()
    start, stop = eph.coverage_tdb_s
    with pytest.raises(EpochOutOfRangeError, match="1849-12-26.*2150-01-22"):
        eph.sun_wrt_moon_icrf_km(stop + 86400.0)
    with pytest.raises(EpochOutOfRangeError, match="choose epochs inside"):
        eph.earth_wrt_moon_icrf_km(np.array([0.0, start - 1.0]))
    with pytest.raises(EpochOutOfRangeError):
        eph.kernel_data(0.0, stop + 1.0)
    with pytest.raises(EpochOutOfRangeError):
        eph.icrf_to_pa(np.nan)
    eph.check_coverage(start, stop)  # the ends themselves are covered
    assert eph.sun_wrt_moon_icrf_km(stop).shape == (3,)


def test_compiled_functions_refuse_epochs_outside_their_slice():
    ekdata = Ephemeris.default().kernel_data(7.0e8, 7.0e8 + 86400.0)
    with pytest.raises(EpochOutOfRangeError, match="kernel_data"):
        sun_earth_wrt_moon_km(7.0e8 + 30 * 86400.0, ekdata)
    with pytest.raises(EpochOutOfRangeError, match="kernel_data"):
        icrf_to_pa_matrix(7.0e8 - 30 * 86400.0, ekdata)

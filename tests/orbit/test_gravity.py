"""Gravity fields: the two readers, their errors, and the compiled evaluation.

References
- Orekit 13.1 ``HolmesFeatherstoneAttractionModel`` (Holmes & Featherstone 2002, J. Geodesy 76,
  279), through orekit-jpype: an independent implementation fed the same coefficients through
  its own ``SHAFormatReader`` (tests/orekit_support.py). Its ``gradient`` is the non-central
  acceleration in the body frame.
- GRGM1200A, PDS file gggrx_1200a_sha.tab (Lemoine et al. 2014, GRL 41, 3382) and LP165P, GMAT
  file LP165P.cof (Konopliv et al. 2001, Icarus 150, 1): header values and coefficient rows are
  quoted from the files themselves.
"""

from __future__ import annotations


import numpy as np
import pytest

from qamar import data
from qamar.constants import MOON_RADIUS_KM
from qamar.errors import DataFormatError, DataNotFoundError, ModelConfigError
from qamar.orbit.gravity import (
    acceleration_pa_km_s2,
    gravity_accel_pa,
    load_field,
    nonspherical_accel_pa,
)

from tests import orekit_support

def _position_km(lat_rad: float, lon_rad: float, alt_km: float) -> np.ndarray:
    r = MOON_RADIUS_KM + alt_km
    return r * np.array([np.cos(lat_rad) * np.cos(lon_rad), np.cos(lat_rad) * np.sin(lon_rad), np.sin(lat_rad)])


# Points at 20, 100 and 8600 km (GRAIL extended-mission altitude, Lunar Prospector's 100 km,
# iCube-Q's apoapsis), including 1e-7 and 5e-7 rad from the north and south poles.
POINTS_KM = np.array(
    [
        _position_km(lat, lon, alt)
        for alt in (20.0, 100.0, 8600.0)
        for lat, lon in (
            (0.3, 1.0),
            (-0.9, 2.5),
            (1.2, -0.3),
            (np.pi / 2 - 1e-7, 0.7),
            (-np.pi / 2 + 5e-7, -2.0),
        )
    ]
)


@pytest.fixture(scope="module")
def grgm():
    return load_field("grgm1200a", 200)


@pytest.fixture(scope="module")
def orekit_models():
    """Orekit attraction models built on demand, keyed by (field name, degree)."""
    models = {}

    def get(field, degree):
        key = (field.name, degree)
        if key not in models:
            models[key] = orekit_support.holmes_featherstone(field, degree)
        return models[key]

    return get


def _orekit_nonspherical(orekit_models, field, degree, points_km):
    return orekit_support.nonspherical_accel_km_s2(orekit_models(field, degree), points_km, field.gm_km3_s2)


@pytest.mark.parametrize("degree", [50, 100, 200])
def test_nonspherical_acceleration_matches_orekit_to_1e12(grgm, orekit_models, degree):
    # Strict: the error relative to the non-central acceleration itself (not to the total).
    expected = _orekit_nonspherical(orekit_models, grgm, degree, POINTS_KM)
    kdata = grgm.kernel_data(degree)
    for point, want in zip(POINTS_KM, expected):
        got = nonspherical_accel_pa(point, kdata)
        assert np.linalg.norm(got - want) <= 1e-12 * np.linalg.norm(want), point


def test_lp165p_to_its_full_degree_matches_orekit(orekit_models):
    lp = load_field("lp165p", 165)
    expected = _orekit_nonspherical(orekit_models, lp, 165, POINTS_KM[:5])
    kdata = lp.kernel_data(165)
    for point, want in zip(POINTS_KM[:5], expected):
        assert np.linalg.norm(nonspherical_accel_pa(point, kdata) - want) <= 1e-12 * np.linalg.norm(want)


@pytest.mark.parametrize("degree", [50, 200])
def test_total_acceleration_is_central_plus_orekit(grgm, orekit_models, degree):
    central = -grgm.gm_km3_s2 * POINTS_KM / np.linalg.norm(POINTS_KM, axis=1)[:, None] ** 3
    expected = central + _orekit_nonspherical(orekit_models, grgm, degree, POINTS_KM)
    got = acceleration_pa_km_s2(grgm, POINTS_KM, degree)
    assert got.shape == POINTS_KM.shape
    error = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert error.max() <= 1e-14
    single = gravity_accel_pa(POINTS_KM[3], grgm.kernel_data(degree))
    np.testing.assert_array_equal(single, got[3])


def test_evaluation_is_regular_exactly_at_the_poles(grgm, orekit_models):
    # On the polar axis Orekit divides by the distance to it, so compare with Orekit 1e-9 rad
    # away: the field changes there by about n * 1e-9 * r / R, far below the tolerance.
    kdata = grgm.kernel_data(200)
    for sign in (1.0, -1.0):
        on_axis = np.array([0.0, 0.0, sign * (MOON_RADIUS_KM + 20.0)])
        near = _position_km(sign * (np.pi / 2 - 1e-9), 0.4, 20.0)
        want = _orekit_nonspherical(orekit_models, grgm, 200, near[None, :])[0]
        got = nonspherical_accel_pa(on_axis, kdata)
        assert np.all(np.isfinite(got))
        assert np.linalg.norm(got - want) <= 1e-6 * np.linalg.norm(want)


def test_degree_zero_is_a_point_mass(grgm):
    point_mass = load_field("lp165p", 0)
    for field in (grgm, point_mass):
        got = acceleration_pa_km_s2(field, POINTS_KM, 0)
        expected = -field.gm_km3_s2 * POINTS_KM / np.linalg.norm(POINTS_KM, axis=1)[:, None] ** 3
        np.testing.assert_allclose(got, expected, rtol=4e-16, atol=0.0)
    assert point_mass.c_nm.shape == (1, 1) and point_mass.c_nm[0, 0] == 1.0


def test_readers_take_gm_radius_and_coefficients_from_the_files(grgm):
    # gggrx_1200a_sha.tab header: "1.7380000000000000e+03, 4.9028001224453001e+03, ..." and row
    # "2, 1, 1.4664123550281899e-11, 1.1732764234889199e-09, ...". The label's GM
    # (4902.80011526323) is not the one the coefficients were estimated with.
    assert grgm.gm_km3_s2 == 4902.8001224453001
    assert grgm.ref_radius_km == 1738.0
    assert grgm.c_nm[2, 0] == -9.0884339347424299e-05
    assert (grgm.c_nm[2, 1], grgm.s_nm[2, 1]) == (1.4664123550281899e-11, 1.1732764234889199e-09)
    assert grgm.c_nm[0, 0] == 1.0 and grgm.frame == "MOON_PA (DE430)"
    # LP165P.cof: "POTFIELD165165  0 4.90280105600000e+12 1.73800000000000e+06 ..." (SI), and
    # "RECOEF    2  1   -2.72203236159000e-09-7.57518292083000e-10": S touches C.
    lp = load_field("lp165p", 3)
    assert lp.gm_km3_s2 == pytest.approx(4902.801056, rel=1e-15)
    assert lp.ref_radius_km == 1738.0
    assert (lp.c_nm[2, 1], lp.s_nm[2, 1]) == (-2.72203236159e-09, -7.57518292083e-10)
    assert (lp.c_nm[2, 0], lp.s_nm[2, 0]) == (-9.08901807506e-05, 0.0)
    assert (lp.c_nm[3, 3], lp.s_nm[3, 3]) == (1.22860589447e-05, -1.78544808164e-06)
    assert lp.max_degree == 3 and lp.c_nm.shape == (4, 4)


def _fibonacci_sphere(count: int) -> np.ndarray:
    i = np.arange(count) + 0.5
    colat, lon = np.arccos(1 - 2 * i / count), np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(lon) * np.sin(colat), np.sin(lon) * np.sin(colat), np.cos(colat)], axis=1)


def test_grgm1200a_and_lp165p_agree_at_low_degree():
    """Two independent solutions: GRAIL (Lemoine et al. 2014) and Lunar Prospector (Konopliv et
    al. 2001). Degree 2 (J2, C22) rests on decades of tracking and lunar laser ranging and the
    two agree to about 0.1% (the remaining C22 difference is of the size of the permanent-tide
    term k2 puts into it). LP165P had no farside tracking, so its degree 3-10 coefficients
    carry errors of a few percent of the signal; the non-central acceleration of degrees 2-10
    at 100 km must therefore agree to a few percent RMS over the sphere, not better.
    """
    grail, prospector = load_field("grgm1200a", 10), load_field("lp165p", 10)
    assert prospector.c_nm[2, 0] == pytest.approx(grail.c_nm[2, 0], rel=1e-3)
    assert prospector.c_nm[2, 2] == pytest.approx(grail.c_nm[2, 2], rel=2e-3)
    points = _fibonacci_sphere(500) * (MOON_RADIUS_KM + 100.0)
    for degree, tolerance in ((2, 1e-3), (10, 5e-2)):
        a = np.array([nonspherical_accel_pa(p, grail.kernel_data(degree)) for p in points])
        b = np.array([nonspherical_accel_pa(p, prospector.kernel_data(degree)) for p in points])
        rms_difference = np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1)))
        rms_signal = np.sqrt(np.mean(np.sum(a**2, axis=1)))
        assert rms_difference <= tolerance * rms_signal, degree


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ModelConfigError, match=r"'egm2008'.*grgm1200a, lp165p.*\.tab.*\.cof"):
        load_field("egm2008", 10)


@pytest.mark.parametrize(("model", "degree", "maximum"), [("lp165p", 166, 165), ("grgm1200a", 1201, 1200)])
def test_degree_above_the_files_names_its_maximum(model, degree, maximum):
    message = rf"degree {degree} is too high.*has degree {maximum}.*{maximum} or less"
    with pytest.raises(ModelConfigError, match=message):
        load_field(model, degree)


def test_bad_degrees_and_kernel_data_beyond_the_loaded_degree(grgm):
    for degree in (-1, 2.5, True):
        with pytest.raises(ModelConfigError, match="whole number"):
            load_field("lp165p", degree)
    with pytest.raises(ModelConfigError, match="loaded only to degree 200"):
        grgm.kernel_data(201)
    with pytest.raises(ModelConfigError, match="loaded only to degree 200"):
        acceleration_pa_km_s2(grgm, POINTS_KM, 300)


def _cof_lines(degree: int) -> list[str]:
    lines = data.path("lp165p").read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("RECOEF") and int(line[8:11]) > degree)
    return lines[:end] + ["END"]


def test_a_user_cof_file_loads_by_path(tmp_path):
    path = tmp_path / "small.cof"
    path.write_text("\n".join(_cof_lines(4)) + "\n")
    field = load_field(path, 4)
    reference = load_field("lp165p", 4)
    np.testing.assert_array_equal(field.c_nm, reference.c_nm)
    np.testing.assert_array_equal(field.s_nm, reference.s_nm)
    assert field.name == "SMALL" and field.source == str(path)


def test_malformed_cof_names_file_and_line(tmp_path):
    lines = _cof_lines(4)
    bad = next(i for i, line in enumerate(lines) if line.startswith("RECOEF    3  2"))
    lines[bad] = lines[bad][:20] + "x" + lines[bad][21:]
    path = tmp_path / "broken.cof"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"broken\.cof, line {bad + 1}:"):
        load_field(path, 4)


def test_malformed_or_incomplete_tab_names_file_and_line(tmp_path):
    header = "1.738e+03, 4.9028e+03, 0.0, 3, 3, 1, 0.0, 0.0"
    rows = [f"{n}, {m}, 1.0e-6, 0.0, 0.0, 0.0" for n in range(1, 4) for m in range(n + 1)]
    broken = rows.copy()
    broken[4] = "3, 0, 1.0e-6"  # line 6: C and no S
    path = tmp_path / "broken.tab"
    path.write_text("\n".join([header, *broken]) + "\n")
    with pytest.raises(DataFormatError, match=r"broken\.tab, line 6:"):
        load_field(path, 3)
    path.write_text("\n".join([header, *rows[:-1]]) + "\n")  # (3, 3) missing
    with pytest.raises(DataFormatError, match=r"coefficient \(3, 3\) is missing"):
        load_field(path, 3)
    path.write_text("\n".join([header, *rows]) + "\n")
    assert load_field(path, 3).c_nm[3, 3] == 1.0e-6


def test_missing_gravity_file_is_reported(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_field(tmp_path / "nowhere.tab", 2)


@pytest.mark.slow
def test_full_grgm1200a_matches_orekit(orekit_models):
    field = load_field("grgm1200a", 1200)
    points = POINTS_KM[[0, 2, 3, 4, 5, 8, 9]]
    expected = _orekit_nonspherical(orekit_models, field, 1200, points)
    kdata = field.kernel_data(1200)
    for point, want in zip(points, expected):
        assert np.linalg.norm(nonspherical_accel_pa(point, kdata) - want) <= 1e-12 * np.linalg.norm(want)

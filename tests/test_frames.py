"""qamar.frames against SPICE (same kernels), analytic cases and the ShadowCam subsolar truth.

The SPICE set-up adds pck00011.tpc only for the Moon's radii that subslr needs.
SPICE's "J2000" frame is treated as ICRF: for DE kernels and lunar binary PCKs NAIF labels
ICRF data "J2000" (moon_de440_220930.tf, "Regarding Use of the ICRF in SPICE").
"""

import csv

import numpy as np
import pytest
import spiceypy as spice

from qamar import data, frames
from qamar.errors import EpochOutOfRangeError
from qamar.time import utc_to_tdb_s

MATRIX_TOL = 5e-12  # float64 spacing of the ~6e3 rad lunar rotation angle psi is 9e-13 rad


def _separation_deg(lat1, lon1, lat2, lon2):
    u1 = frames.body_vector_from_lat_lon(lat1, lon1, 1.0)
    u2 = frames.body_vector_from_lat_lon(lat2, lon2, 1.0)
    cross = np.linalg.norm(np.cross(u1, u2), axis=-1)
    return np.degrees(np.arctan2(cross, np.sum(u1 * u2, axis=-1)))


def test_pa_to_me_matches_spice_and_the_kernel_comment(spice_kernels):
    from qamar.frames import PA_TO_ME

    assert np.max(np.abs(PA_TO_ME - spice.pxform("MOON_PA", "MOON_ME", 7.0e8))) < 1e-15
    # moon_de440_220930.tf: "the rotation angle between the MOON_ME and MOON_PA frames is
    # approximately 0.02886 degrees; ... approximately 875 m" on the surface.
    angle_deg = np.degrees(np.arccos((np.trace(PA_TO_ME) - 1.0) / 2.0))
    assert angle_deg == pytest.approx(0.02886, abs=5e-6)
    assert np.radians(angle_deg) * 1737.4e3 == pytest.approx(875.0, abs=1.0)
    assert not PA_TO_ME.flags.writeable
    assert frames.PA_TO_ME is PA_TO_ME


def test_icrf_to_me_and_pa_match_spice_pxform(spice_kernels):
    t = np.linspace(-3.156e8, 1.262e9, 300)
    me = frames.icrf_to_me(t)
    pa = frames.icrf_to_pa(t)
    assert me.shape == pa.shape == (300, 3, 3)
    assert np.max(np.abs(me - [spice.pxform("J2000", "MOON_ME", x) for x in t])) < MATRIX_TOL
    assert np.max(np.abs(pa - [spice.pxform("J2000", "MOON_PA", x) for x in t])) < MATRIX_TOL
    assert frames.icrf_to_me(float(t[0])).shape == (3, 3)


def test_lat_lon_analytic_cases():
    cases = {(1, 0, 0): (0.0, 0.0), (0, 1, 0): (0.0, 90.0), (0, -1, 0): (0.0, -90.0),
             (-1, 0, 0): (0.0, -180.0), (0, 0, 1): (90.0, 0.0), (1, 1, np.sqrt(2)): (45.0, 45.0)}
    for vector, (lat, lon) in cases.items():
        got = frames.lat_lon_deg(np.array(vector, dtype=float))
        assert got == pytest.approx((lat, lon), abs=1e-12), vector
    # Longitude is in [-180, 180): just below +180 stays, +180 itself maps to -180.
    lat, lon = frames.lat_lon_deg(np.array([[-1.0, 1e-12, 0.0], [-1.0, -0.0, 0.0]]))
    assert lon[0] > 179.9 and lon[1] == -180.0


def test_lat_lon_round_trip_and_spice_reclat():
    rng = np.random.default_rng(11)
    lat = rng.uniform(-90, 90, 1000)
    lon = rng.uniform(-180, 180, 1000)
    radius = rng.uniform(1700, 1800, 1000)
    r = frames.body_vector_from_lat_lon(lat, lon, radius)
    assert r.shape == (1000, 3)
    assert np.allclose(np.linalg.norm(r, axis=1), radius, rtol=1e-15, atol=0)
    back_lat, back_lon = frames.lat_lon_deg(r)
    assert np.max(np.abs(back_lat - lat)) < 1e-12 and np.max(np.abs(back_lon - lon)) < 1e-12
    for i in range(0, 1000, 50):
        _, spice_lon, spice_lat = spice.reclat(r[i])
        assert (back_lat[i], back_lon[i]) == pytest.approx((np.degrees(spice_lat), np.degrees(spice_lon)), abs=1e-12)
    assert frames.body_vector_from_lat_lon(0.0, 90.0, 1737.4) == pytest.approx([0.0, 1737.4, 0.0], abs=1e-12)


def test_subsolar_point_matches_spice_subslr(spice_kernels):
    t = np.linspace(6.9e8, 8.2e8, 200)
    lat, lon = frames.subsolar_point_me(t)
    theirs = []
    for x in t:
        point, _, _ = spice.subslr("INTERCEPT/ELLIPSOID", "MOON", x, "MOON_ME", "NONE", "MOON")
        _, point_lon, point_lat = spice.reclat(point)
        theirs.append((np.degrees(point_lat), np.degrees(point_lon)))
    theirs = np.array(theirs)
    assert np.max(_separation_deg(lat, lon, theirs[:, 0], theirs[:, 1])) < 1e-8


@pytest.fixture(scope="module")
def shadowcam():
    """ShadowCam truth: TDB of the image start times, subsolar lat and lon (0..360 E), MOON_ME."""
    with open(data.path("shadowcam_subsolar"), newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 23168
    t = utc_to_tdb_s([r["start_time"] for r in rows])
    return t, np.array([float(r["sslat"]) for r in rows]), np.array([float(r["sslon"]) for r in rows])


def test_subsolar_point_against_shadowcam_truth_at_image_start(shadowcam):
    """Geometric subsolar point at each image start time vs the file (23,168 rows).

    Latitude, which moves < 0.3 deg a day, agrees within the file's 0.001 deg rounding.
    Longitude moves 12.2 deg a day and the file's is always behind ours: its epoch is later
    than the image start (see the next test). SPICE subslr at the start time gives the same
    values as qamar to 1e-8 deg (test above). Measured: median 0.012 deg, 234 rows (1.0%)
    above 0.02 deg, maximum 0.0239 deg (Sep-Oct 2025 images).
    """
    t, truth_lat, truth_lon = shadowcam
    lat, lon = frames.subsolar_point_me(t)
    separation = _separation_deg(lat, lon, truth_lat, truth_lon)
    assert np.max(np.abs(lat - truth_lat)) < 0.001
    assert np.median(separation) < 0.0125
    assert np.mean(separation <= 0.02) > 0.985
    assert np.max(separation) < 0.024
    lon_lead_deg = (lon - truth_lon + 180.0) % 360.0 - 180.0
    assert np.all(lon_lead_deg > 0.0)


def test_shadowcam_truth_lies_on_the_subsolar_track_within_three_minutes(shadowcam):
    """Every truth point lies on qamar's subsolar track 0-180 s after its image start.

    Sampling the track every 5 s (0.0007 deg of longitude), each row's nearest sample is
    within 0.001 deg, the rounding of the file: the residuals at the start time are a time
    tag offset of the truth (40-170 s, varying by campaign: likely the image centre time),
    not a frame or ephemeris error.
    """
    t, truth_lat, truth_lon = shadowcam
    nearest = np.full(t.shape, np.inf)
    for lag_s in np.arange(0.0, 181.0, 5.0):
        lat, lon = frames.subsolar_point_me(t + lag_s)
        nearest = np.minimum(nearest, _separation_deg(lat, lon, truth_lat, truth_lon))
    assert np.max(nearest) < 0.001


def test_frames_outside_coverage_raise():
    with pytest.raises(EpochOutOfRangeError):
        frames.icrf_to_me(5.0e9)
    with pytest.raises(EpochOutOfRangeError):
        frames.subsolar_point_me(np.array([0.0, -5.0e9]))

"""Dispersion sampling: sample statistics against the input covariance and sigmas, reproducibility,
and bad covariances rejected with a sentence.

References: the sampling distribution of a sample covariance (Wishart: Var(S_ij) =
(C_ij^2 + C_ii C_jj) / (N - 1), Anderson, An Introduction to Multivariate Statistical Analysis,
3rd ed., Wiley 2003, sec. 3.3 and 7.2), the chi-square law of Mahalanobis distances of Gaussian
vectors (checked with scipy.stats), and order statistics of two normals (E[min(X, Y)] =
mu - sigma / sqrt(pi), David & Nagaraja, Order Statistics, 3rd ed., Wiley 2003, ex. 3.2.1).
"""

import numpy as np
import pytest
from scipy import stats

from qamar.constants import MOON_RADIUS_KM
from qamar.errors import InvalidOrbitError, QamarError
from qamar.orbit.dispersion import Dispersion, check_covariance, sample_members
from qamar.orbit.elements import state_from_apsides
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.study import STATE_COLUMNS, StudySetup
from qamar.time import utc_to_tdb_s

N = 4000
NOMINAL = {"peri_alt_km": 200.0, "apo_alt_km": 1000.0, "inc_deg": 60.0, "raan_deg": 30.0, "argp_deg": 40.0, "ta_deg": 10.0}
# A correlated covariance (km, km/s): position sigmas 0.5-2 km, velocity 1-3 m/s, correlations up to 0.6.
_SIGMA = np.array([1.0, 2.0, 0.5, 1e-3, 3e-3, 2e-3])
_RHO = np.eye(6)
for (i, j), r in {(0, 1): 0.6, (0, 4): -0.4, (2, 5): 0.5, (1, 3): 0.3}.items():
    _RHO[i, j] = _RHO[j, i] = r
COVARIANCE = _RHO * np.outer(_SIGMA, _SIGMA)


@pytest.fixture(scope="module")
def setup():
    field = load_field("grgm1200a", 2)
    t0 = float(utc_to_tdb_s("2024-05-08T08:14:00Z"))
    return StudySetup(t0, ForceModel(field=field, degree=2), horizon_days=10.0, frame="moon-pa")


def _nominal_state(setup):
    r, v = state_from_apsides(*NOMINAL.values(), setup.forces.field.gm_km3_s2, frame="moon-pa", t_tdb_s=setup.t0_tdb_s)
    return np.concatenate([r, v])


def _states(table):
    return table[list(STATE_COLUMNS)].to_numpy()


def test_sample_covariance_matches_the_input_within_wishart_bounds(setup):
    table = sample_members(Dispersion(covariance=COVARIANCE.tolist(), seed=7), setup, NOMINAL, N)
    d = _states(table) - _nominal_state(setup)
    mean_bound = 5 * np.sqrt(np.diag(COVARIANCE) / N)
    assert np.all(np.abs(d.mean(axis=0)) < mean_bound)
    s = np.cov(d, rowvar=False)
    bound = 5 * np.sqrt((COVARIANCE**2 + np.outer(np.diag(COVARIANCE), np.diag(COVARIANCE))) / (N - 1))
    assert np.all(np.abs(s - COVARIANCE) < bound)
    # Mahalanobis distances of N(0, C) draws follow chi-square with 6 degrees of freedom.
    m2 = np.einsum("ni,ij,nj->n", d, np.linalg.inv(COVARIANCE), d)
    assert stats.kstest(m2, stats.chi2(6).cdf).pvalue > 1e-3


def test_rtn_sigmas_lie_along_radial_transverse_and_normal(setup):
    sigma_rtn = np.array([0.1, 2.0, 0.5])
    cov = np.diag(np.concatenate([sigma_rtn**2, (1e-3 * sigma_rtn) ** 2]))
    table = sample_members(Dispersion(covariance=cov.tolist(), state_axes="rtn", seed=3), setup, NOMINAL, N)
    nominal = _nominal_state(setup)
    r, v = nominal[:3], nominal[3:]
    rhat = r / np.linalg.norm(r)
    nhat = np.cross(r, v) / np.linalg.norm(np.cross(r, v))
    axes = np.array([rhat, np.cross(nhat, rhat), nhat])
    d = _states(table) - nominal
    pos_rtn, vel_rtn = d[:, :3] @ axes.T, d[:, 3:] @ axes.T
    tol = 5 / np.sqrt(2 * (N - 1))  # relative standard error of a sample standard deviation is 1/sqrt(2(N-1))
    np.testing.assert_allclose(pos_rtn.std(axis=0, ddof=1) / sigma_rtn, 1.0, atol=tol)
    np.testing.assert_allclose(vel_rtn.std(axis=0, ddof=1) / (1e-3 * sigma_rtn), 1.0, atol=tol)
    corr = np.corrcoef(pos_rtn, rowvar=False)
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 5 / np.sqrt(N))


def test_element_sigmas_give_the_osculating_element_spread(setup):
    sigmas = {"peri_alt_sigma_km": 1.0, "apo_alt_sigma_km": 2.0, "inc_sigma_deg": 0.5,
              "raan_sigma_deg": 0.3, "argp_sigma_deg": 0.4, "ta_sigma_deg": 0.2}  # fmt: skip
    table = sample_members(Dispersion(**sigmas, seed=11), setup, NOMINAL, N)
    tol = 5 / np.sqrt(2 * (N - 1))
    for (name, nominal), sigma in zip(NOMINAL.items(), sigmas.values()):
        x = table[name].to_numpy()
        assert abs(x.mean() - nominal) < 5 * sigma / np.sqrt(N), name
        assert abs(x.std(ddof=1) / sigma - 1.0) < tol, name


def test_swapped_apsides_keep_the_start_point(setup):
    """Circular 100 km with 1 km sigmas on both apsides: half the draws swap periapsis and apoapsis.

    The member starts at the drawn 'periapsis' radius either way, so the start altitude is
    N(100, 1) while the osculating periapsis is the minimum of two draws (mean 100 - 1/sqrt(pi)).
    """
    circular = {**NOMINAL, "peri_alt_km": 100.0, "apo_alt_km": 100.0, "ta_deg": 0.0}
    table = sample_members(Dispersion(peri_alt_sigma_km=1.0, apo_alt_sigma_km=1.0, seed=5), setup, circular, N)
    start_alt = np.linalg.norm(_states(table)[:, :3], axis=1) - MOON_RADIUS_KM
    assert abs(start_alt.mean() - 100.0) < 5 / np.sqrt(N)
    assert abs(start_alt.std(ddof=1) - 1.0) < 5 / np.sqrt(2 * (N - 1))
    assert np.all(table["peri_alt_km"] <= table["apo_alt_km"] + 1e-9)
    min_sd = np.sqrt(1 - 1 / np.pi)  # standard deviation of min(X, Y) for unit normals
    assert abs(table["peri_alt_km"].mean() - (100.0 - 1 / np.sqrt(np.pi))) < 5 * min_sd / np.sqrt(N)


def test_spacecraft_sigmas_and_srp_scale(setup):
    f = setup.forces
    table = sample_members(Dispersion(mass_rel_sigma=0.05, area_rel_sigma=0.1, cr_sigma=0.05, seed=2), setup, NOMINAL, N)
    tol = 5 / np.sqrt(2 * (N - 1))
    assert abs(table["mass_kg"].std(ddof=1) / (0.05 * f.mass_kg) - 1) < tol
    assert abs(table["area_m2"].std(ddof=1) / (0.1 * f.area_m2) - 1) < tol
    assert abs(table["cr"].std(ddof=1) / 0.05 - 1) < tol
    assert table["cr"].between(1.0, 2.0).all()
    expected = (table["cr"] * table["area_m2"] / table["mass_kg"]) / (f.cr * f.area_m2 / f.mass_kg)
    np.testing.assert_allclose(table["srp_scale"], expected, rtol=1e-14)


def test_same_seed_same_members_and_prefix_stable(setup):
    d = Dispersion(position_sigma_km=1.0, velocity_sigma_km_s=1e-3, inc_sigma_deg=0.1, area_rel_sigma=0.1, seed=42)
    a = sample_members(d, setup, NOMINAL, 50)
    b = sample_members(d, setup, NOMINAL, 80)
    np.testing.assert_array_equal(a.to_numpy(), b.iloc[:50].to_numpy())
    c = sample_members(d.model_copy(update={"seed": 43}), setup, NOMINAL, 50)
    assert not np.allclose(_states(a), _states(c))


def _indefinite():
    c = np.eye(6)
    block = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])  # every |rho| <= 1, det < 0
    c[:3, :3] = block
    return c


@pytest.mark.parametrize(
    "matrix, words",
    [
        (_indefinite(), ["not positive semi-definite", "negative eigenvalue", "units"]),
        (np.diag([1.0, 1, 1, 1, 1, -1e-6]), ["negative variance", "vz"]),
        (np.eye(6) + np.eye(6, k=1) * 0.1, ["not symmetric", "[0, 1]"]),
        (np.eye(6) + 2.0 * (np.eye(6, k=3) + np.eye(6, k=-3)), ["correlation of 2", "beyond +-1"]),
        (np.eye(5), ["shape (5, 5)", "6x6"]),
    ],
)
def test_bad_covariance_is_rejected_with_a_sentence(setup, matrix, words):
    with pytest.raises(QamarError) as info:
        sample_members(Dispersion(covariance=matrix.tolist()), setup, NOMINAL, 3)
    for word in words:
        assert word in str(info.value)


def test_semi_definite_covariance_is_accepted():
    """A rank-deficient covariance (a perfectly correlated pair, zero variance axes) is valid."""
    c = np.zeros((6, 6))
    c[0, 0] = c[1, 1] = c[0, 1] = c[1, 0] = 1.0
    np.testing.assert_array_equal(check_covariance(c.tolist()), c)


def test_both_covariance_and_sigmas_is_a_validation_error():
    with pytest.raises(ValueError, match="either covariance or position/velocity sigmas"):
        Dispersion(covariance=np.eye(6).tolist(), position_sigma_km=1.0)


def test_members_below_the_surface_are_refused_before_any_propagation(setup):
    low = {**NOMINAL, "peri_alt_km": 10.0, "apo_alt_km": 10.0}
    with pytest.raises(InvalidOrbitError, match="reduce"):
        sample_members(Dispersion(position_sigma_km=20.0, seed=1), setup, low, 200)


def test_inclination_drawn_below_zero_folds_onto_the_same_orbit_plane(setup):
    """Equatorial nominal with a 1 deg inclination sigma: the orbit normal tilts by N(0, 1 deg)
    along y; folding a negative draw (inclination -x, node + 180 deg) keeps that plane, so the
    normal's y component is symmetric about zero with standard deviation sin(1 deg)."""
    icrf = StudySetup(setup.t0_tdb_s, setup.forces, horizon_days=10.0, frame="moon-icrf")
    equatorial = {**NOMINAL, "inc_deg": 0.0, "raan_deg": 0.0}
    table = sample_members(Dispersion(inc_sigma_deg=1.0, seed=9), icrf, equatorial, N)
    states = _states(table)
    h = np.cross(states[:, :3], states[:, 3:])
    h_y = h[:, 1] / np.linalg.norm(h, axis=1)
    sd = np.sin(np.radians(1.0))
    assert abs(h_y.mean()) < 5 * sd / np.sqrt(N)
    assert abs(h_y.std(ddof=1) / sd - 1) < 5 / np.sqrt(2 * (N - 1))
    assert table["inc_deg"].between(0.0, 180.0).all()

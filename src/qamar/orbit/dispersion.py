"""Dispersions: sample the uncertain initial orbit and spacecraft of a lifetime study.

:class:`Dispersion` (a pydantic model, ready to embed in a scenario) says how uncertain the
start is; :func:`sample_members` draws a member table for :func:`qamar.orbit.study.run_study`
from it; :func:`run_dispersion_study` runs the study and writes its products.

Sources of uncertainty, all Gaussian and independent of each other:

- **Elements**: sigmas on the periapsis and apoapsis altitudes (km) and on the inclination,
  RAAN, argument of periapsis and true anomaly (deg) of the nominal orbit, angles in the
  study's frame. A sampled periapsis above the sampled apoapsis is the same ellipse seen from
  its other end (periapsis and apoapsis swapped, argument of periapsis and true anomaly turned
  by 180 deg, so the member starts at the same point); an inclination sampled outside
  [0, 180] deg is folded back (RAAN and argument of periapsis turned by 180 deg).
- **State**: a 6x6 covariance of the initial Cartesian state (km^2, km^2/s, km^2/s^2), or
  per-axis ``position_sigma_km`` and ``velocity_sigma_km_s``, in one of two axis sets:
  ``icrf`` (Moon-centred ICRF) or ``rtn`` (radial, transverse, normal of the state the element
  draw gave: R along r, N along r x v, T = N x R). In ``rtn`` the velocity components are
  those of the inertial velocity deviation along the R, T, N axes (no frame-rotation term).
  The Cartesian deviation is added after the element draw.
- **Spacecraft**: relative sigmas on mass and area and an absolute sigma on Cr. Draws outside
  the physical range (mass and area > 0, Cr in [1, 2]) are redrawn (a truncated normal).

Reproducibility: member ``i`` draws from its own random stream, seeded by ``(seed, i)``
(numpy SeedSequence spawn key), so a member's sample does not depend on how many members the
study has or on which worker runs it: a 200-member study extends a 100-member one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qamar.errors import InvalidOrbitError, QamarError
from qamar.io import atomic_write
from qamar.orbit.elements import state_from_apsides
from qamar.orbit.study import (
    ELEMENT_COLUMNS,
    SPACECRAFT_COLUMNS,
    STATE_COLUMNS,
    StudySetup,
    lifetime_summary,
    osculating_elements,
    run_study,
    states_from_elements,
    write_results,
)

CR_RANGE = (1.0, 2.0)
"""Physical range of the radiation pressure coefficient (1 absorbs, 2 mirrors)."""

_PSD_RTOL = 1e-12  # eigenvalues above -_PSD_RTOL * largest count as zero (round-off)
_MAX_REDRAWS = 1000


class Dispersion(BaseModel):
    """How uncertain the start of a lifetime study is (see the module docstring).

    Element sigmas: ``peri_alt_sigma_km``, ``apo_alt_sigma_km``, ``inc_sigma_deg``,
    ``raan_sigma_deg``, ``argp_sigma_deg``, ``ta_sigma_deg``. State: ``covariance`` (6x6, km
    and km/s) or ``position_sigma_km``/``velocity_sigma_km_s``, in the ``state_axes`` axis set.
    Spacecraft: ``mass_rel_sigma``, ``area_rel_sigma`` (fractions of the nominal), ``cr_sigma``.
    ``seed``: the random seed. All sigmas default to zero (no dispersion).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    peri_alt_sigma_km: float = Field(default=0.0, ge=0)
    apo_alt_sigma_km: float = Field(default=0.0, ge=0)
    inc_sigma_deg: float = Field(default=0.0, ge=0)
    raan_sigma_deg: float = Field(default=0.0, ge=0)
    argp_sigma_deg: float = Field(default=0.0, ge=0)
    ta_sigma_deg: float = Field(default=0.0, ge=0)
    state_axes: Literal["icrf", "rtn"] = "icrf"
    covariance: tuple[tuple[float, ...], ...] | None = Field(
        default=None, description="6x6 covariance of (x, y, z, vx, vy, vz): km^2, km^2/s, km^2/s^2"
    )
    position_sigma_km: float = Field(default=0.0, ge=0)
    velocity_sigma_km_s: float = Field(default=0.0, ge=0)
    mass_rel_sigma: float = Field(default=0.0, ge=0, lt=1)
    area_rel_sigma: float = Field(default=0.0, ge=0, lt=1)
    cr_sigma: float = Field(default=0.0, ge=0)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_state_description(self) -> Dispersion:
        if self.covariance is not None and (self.position_sigma_km or self.velocity_sigma_km_s):
            raise ValueError("give either covariance or position/velocity sigmas, not both")
        return self

    def state_covariance(self) -> np.ndarray:
        """The 6x6 state covariance in ``state_axes`` (km, km/s), checked by :func:`check_covariance`."""
        if self.covariance is not None:
            return check_covariance(self.covariance)
        return np.diag([self.position_sigma_km**2] * 3 + [self.velocity_sigma_km_s**2] * 3)

    def element_sigmas(self) -> np.ndarray:
        """Sigmas of ELEMENT_COLUMNS (km, km, deg, deg, deg, deg)."""
        return np.array([self.peri_alt_sigma_km, self.apo_alt_sigma_km, self.inc_sigma_deg,
                         self.raan_sigma_deg, self.argp_sigma_deg, self.ta_sigma_deg])  # fmt: skip


def check_covariance(covariance) -> np.ndarray:
    """A 6x6 state covariance as an array, after checking it is one.

    Raises QamarError, saying what is wrong and what to do, when it is not 6x6, not finite,
    not symmetric, has a correlation beyond +-1, or has a negative eigenvalue (not positive
    semi-definite). Eigenvalues within 1e-12 of the largest count as zero (round-off).
    """
    try:
        c = np.array(covariance, dtype=float)
    except (TypeError, ValueError):
        raise QamarError("the state covariance must be a 6x6 table of numbers (km^2, km^2/s, km^2/s^2).") from None
    if c.shape != (6, 6):
        raise QamarError(f"the state covariance has shape {c.shape}; give 6x6 for (x, y, z, vx, vy, vz) in km and km/s.")
    if not np.all(np.isfinite(c)):
        raise QamarError("the state covariance has non-finite entries; give finite numbers.")
    asym = np.abs(c - c.T)
    i, j = np.unravel_index(np.argmax(asym), asym.shape)
    if asym[i, j] > 1e-12 * max(np.abs(c).max(), np.finfo(float).tiny):
        raise QamarError(
            f"the state covariance is not symmetric: element [{i}, {j}] = {c[i, j]:.6g} but [{j}, {i}] = {c[j, i]:.6g}; "
            "a covariance equals its transpose, so fix the entry that is wrong."
        )
    names = ("x", "y", "z", "vx", "vy", "vz")
    diag = np.diag(c)
    if np.any(diag < 0):
        k = int(np.argmin(diag))
        raise QamarError(
            f"the state covariance has a negative variance {diag[k]:.6g} for {names[k]}; variances are squared sigmas, "
            "so give a non-negative diagonal."
        )
    scale = np.sqrt(np.outer(diag, diag))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(scale > 0, c / scale, 0.0)
    np.fill_diagonal(rho, 0.0)
    if np.any(np.abs(rho) > 1.0 + 1e-9):
        i, j = np.unravel_index(np.argmax(np.abs(rho)), rho.shape)
        raise QamarError(
            f"the state covariance implies a correlation of {rho[i, j]:.4g} between {names[i]} and {names[j]}, beyond +-1; "
            "it is not positive semi-definite: lower that covariance entry or raise the variances."
        )
    values, vectors = np.linalg.eigh(c)
    if values[0] < -_PSD_RTOL * max(abs(values[-1]), np.finfo(float).tiny):
        direction = ", ".join(f"{w:+.3f} {n}" for w, n in zip(vectors[:, 0], names) if abs(w) > 0.05)
        raise QamarError(
            f"the state covariance is not positive semi-definite: it has the negative eigenvalue {values[0]:.6g} "
            f"along ({direction}); a covariance has no negative eigenvalues, so check the units (km, km/s) "
            "and the off-diagonal correlations."
        )
    return c


def _covariance_root(c: np.ndarray) -> np.ndarray:
    """L with L L^T = c for a checked PSD matrix (eigen-decomposition: works when singular)."""
    values, vectors = np.linalg.eigh(c)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def _rtn_axes(states: np.ndarray) -> np.ndarray:
    """(n, 3, 3) matrices whose columns are the R, T, N unit vectors (ICRF) of (n, 6) states."""
    r, v = states[:, :3], states[:, 3:]
    rhat = r / np.linalg.norm(r, axis=1, keepdims=True)
    h = np.cross(r, v)
    nhat = h / np.linalg.norm(h, axis=1, keepdims=True)
    return np.stack([rhat, np.cross(nhat, rhat), nhat], axis=2)


def _fold(elements: np.ndarray) -> np.ndarray:
    """Bring sampled (n, 6) ELEMENT_COLUMNS rows into range, each the same orbit (module docstring)."""
    peri, apo, inc, raan, argp, ta = (elements[:, k].copy() for k in range(6))
    swap = peri > apo
    peri[swap], apo[swap] = apo[swap], peri[swap].copy()
    argp[swap] += 180.0
    ta[swap] += 180.0
    inc = inc % 360.0
    over = inc > 180.0
    inc[over] = 360.0 - inc[over]
    raan[over] += 180.0
    argp[over] += 180.0
    return np.column_stack([peri, apo, inc, raan % 360.0, argp % 360.0, ta % 360.0])


def _truncated(rng: np.random.Generator, mean: float, sigma: float, low: float, high: float, what: str) -> float:
    for _ in range(_MAX_REDRAWS):
        x = mean + sigma * rng.standard_normal()
        if low < x <= high:
            return x
    raise QamarError(f"the {what} sigma {sigma:g} leaves almost no physical values around {mean:g}; give a smaller sigma.")


def sample_members(
    dispersion: Dispersion, setup: StudySetup, nominal_elements: dict[str, float], n_members: int
) -> pd.DataFrame:
    """A member table of ``n_members`` draws (ids 0..n-1) around the nominal orbit and spacecraft.

    ``nominal_elements`` holds ELEMENT_COLUMNS (apsis altitudes in km over the 1737.4 km
    sphere, angles in deg in ``setup.frame``); the nominal spacecraft is ``setup.forces``'.
    The table has ``member_id``, the initial states, the sampled spacecraft, its ``srp_scale``
    (SRP acceleration relative to the nominal, Cr A / m ratio) and the osculating
    ELEMENT_COLUMNS of each sampled state. Raises QamarError for a bad covariance or
    ``n_members`` below 1, InvalidOrbitError for a nominal orbit below the surface or when a
    sampled member starts with its periapsis at or below the surface (sigmas too large).
    """
    if n_members < 1:
        raise QamarError(f"members={n_members}: a dispersion study needs at least one member.")
    missing = [c for c in ELEMENT_COLUMNS if c not in nominal_elements]
    if missing:
        raise QamarError(f"the nominal orbit lacks {missing}; give all of {list(ELEMENT_COLUMNS)}.")
    nominal = np.array([float(nominal_elements[c]) for c in ELEMENT_COLUMNS])
    f = setup.forces
    gm = f.field.gm_km3_s2
    state_from_apsides(*nominal, gm, frame=setup.frame, t_tdb_s=setup.t0_tdb_s)  # checks the nominal orbit
    root = _covariance_root(dispersion.state_covariance())
    sigmas = dispersion.element_sigmas()
    element_draws, state_draws, craft = np.empty((n_members, 6)), np.empty((n_members, 6)), np.empty((n_members, 3))
    for i in range(n_members):
        rng = np.random.default_rng(np.random.SeedSequence(dispersion.seed, spawn_key=(i,)))
        element_draws[i] = rng.standard_normal(6)
        state_draws[i] = rng.standard_normal(6)
        craft[i] = (
            _truncated(rng, f.mass_kg, dispersion.mass_rel_sigma * f.mass_kg, 0.0, np.inf, "mass"),
            _truncated(rng, f.area_m2, dispersion.area_rel_sigma * f.area_m2, 0.0, np.inf, "area"),
            _truncated(rng, f.cr, dispersion.cr_sigma, CR_RANGE[0] - 1e-12, CR_RANGE[1], "Cr"),
        )
    elements = _fold(nominal + sigmas * element_draws)
    if np.any(elements[:, 0] <= 0.0):
        i = int(np.argmin(elements[:, 0]))
        raise InvalidOrbitError(
            f"member {i} draws a periapsis altitude of {elements[i, 0]:.2f} km, at or below the surface; "
            "reduce the periapsis/apoapsis sigmas or raise the orbit."
        )
    states = states_from_elements(setup, elements)
    deviations = state_draws @ root.T
    if dispersion.state_axes == "rtn":
        axes = _rtn_axes(states)
        deviations = np.hstack([np.einsum("nij,nj->ni", axes, deviations[:, k : k + 3]) for k in (0, 3)])
    states = states + deviations
    table = pd.DataFrame({"member_id": np.arange(n_members, dtype=np.int64)})
    for j, name in enumerate(STATE_COLUMNS):
        table[name] = states[:, j]
    for j, name in enumerate(SPACECRAFT_COLUMNS):
        table[name] = craft[:, j]
    table["srp_scale"] = (craft[:, 2] * craft[:, 1] / craft[:, 0]) / (f.cr * f.area_m2 / f.mass_kg)
    elements = osculating_elements(setup, states)
    low = elements["peri_alt_km"] <= 0.0
    if low.any():
        raise InvalidOrbitError(
            f"{int(low.sum())} of {n_members} sampled members start with their periapsis at or below the surface "
            f"(lowest {elements['peri_alt_km'].min():.2f} km); reduce the dispersion sigmas or raise the orbit."
        )
    return pd.concat([table, elements], axis=1)


def run_dispersion_study(
    setup: StudySetup,
    dispersion: Dispersion,
    nominal_elements: dict[str, float],
    n_members: int,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    batch_size: int | None = None,
    progress: bool = True,
    plots: bool = True,
) -> dict:
    """Sample, run on Dask (resumable) and write a dispersion study's products into ``out_dir``.

    Products: ``members/`` (the Parquet parts, kept for resuming), ``results.parquet`` (one
    row per member: inputs and results; setup and dispersion in its metadata), ``summary.json`` (:func:`lifetime_summary` plus the
    setup, the dispersion and the run counts) and, with ``plots``, ``lifetime_hist.png`` and
    ``lifetime_cdf.png``. Returns the summary. Raises what :func:`sample_members` and
    :func:`~qamar.orbit.study.run_study` raise.
    """
    from qamar.orbit import study_plots  # matplotlib only when plotting

    out_dir = Path(out_dir)
    members = sample_members(dispersion, setup, nominal_elements, n_members)
    run = run_study(setup, members, out_dir / "members", scheduler=scheduler, workers=workers,
                    batch_size=batch_size, progress=progress)  # fmt: skip
    write_results(out_dir / "results.parquet", run.results, setup, {"dispersion": dispersion.model_dump()})
    summary = {
        **lifetime_summary(run.results, setup.horizon_days),
        "setup": setup.describe(),
        "nominal": {c: float(nominal_elements[c]) for c in ELEMENT_COLUMNS},
        "spacecraft": {"mass_kg": setup.forces.mass_kg, "area_m2": setup.forces.area_m2, "cr": setup.forces.cr},
        "dispersion": dispersion.model_dump(),
        "computed_members": run.computed,
        "reused_members": run.reused,
        "wall_s": round(run.wall_s, 3),
    }
    if plots:
        title = f"{n_members} members, {setup.forces.field.name} {setup.forces.degree}x{setup.forces.degree}"
        study_plots.plot_lifetime_histogram(run.results, setup.horizon_days, out_dir / "lifetime_hist.png", title=title)
        study_plots.plot_lifetime_cdf(run.results, setup.horizon_days, out_dir / "lifetime_cdf.png", title=title)
    with atomic_write(out_dir / "summary.json") as stream:
        json.dump(summary, stream, indent=2, allow_nan=False)
        stream.write("\n")
    return summary

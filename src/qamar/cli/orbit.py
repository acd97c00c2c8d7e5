"""``qamar orbit``: lunar orbit propagation, lifetime, sweeps and dispersion studies.

``propagate``, ``lifetime`` and ``sweep`` take the same orbit, frame, force-model and
spacecraft options, declared once in ``_SHARED`` and added to each command by
:func:`_shared_options`; the command receives them as one :class:`OrbitOptions`. The orbit is
elements and an epoch, or (``propagate`` and ``lifetime``) ``--from-oem FILE``: the state of a
CCSDS OEM. In ``sweep`` the orbit elements are grids (a value, ``start:stop:step`` with an
inclusive stop, or a comma list) instead of single numbers.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from qamar.cli.common import sub_app, user_errors

orbit_app = sub_app("Lunar orbit propagation, lifetime, sweeps and dispersion studies.")

ELEMENTS = ("peri_alt_km", "apo_alt_km", "inc_deg", "raan_deg", "argp_deg", "ta_deg")
_REQUIRED = inspect.Parameter.empty
# name: (type, default, help); the elements' type becomes str (a grid) in ``sweep``.
_SHARED: dict[str, tuple[type, Any, str]] = {
    "epoch": (str, _REQUIRED, "initial epoch, ISO-8601 UTC"),
    "peri_alt_km": (float, _REQUIRED, "periapsis altitude over the 1737.4 km sphere"),
    "apo_alt_km": (float, _REQUIRED, "apoapsis altitude over the 1737.4 km sphere"),
    "inc_deg": (float, _REQUIRED, "inclination"),
    "raan_deg": (float, 0.0, "right ascension of the ascending node"),
    "argp_deg": (float, 0.0, "argument of periapsis"),
    "ta_deg": (float, 0.0, "true anomaly at the epoch"),
    "from_oem": (Path, None, "start from a Moon-centred CCSDS OEM instead of elements: its first state, or its state at --epoch"),
    "frame": (str, "moon-icrf", "moon-icrf (ICRF axes) or moon-pa (lunar equator, PA)"),
    "gravity": (str, "grgm1200a", "grgm1200a, lp165p or a .tab/.cof path"),
    "degree": (int, 100, "degree and order; 0 is a point-mass Moon"),
    "third_bodies": (str, "earth,sun", "comma list of earth,sun or none"),
    "srp": (bool, True, "solar radiation pressure"),
    "mass_kg": (float, 7.0, "spacecraft mass"),
    "area_m2": (float, 0.06, "cross-section facing the Sun"),
    "cr": (float, 1.3, "radiation pressure coefficient"),
}
_GRID_HELP = " (grid: 100, 0:180:2 with the stop included, or 27,50,76)"
_ORBIT = ("epoch", *ELEMENTS)  # optional on the command line when --from-oem may replace them


@dataclass(frozen=True)
class OrbitOptions:
    """The shared options of a command, as given (elements are numbers, or grid texts in ``sweep``)."""

    epoch: str | None
    peri_alt_km: Any
    apo_alt_km: Any
    inc_deg: Any
    raan_deg: Any
    argp_deg: Any
    ta_deg: Any
    frame: str
    gravity: str
    degree: int
    third_bodies: str
    srp: bool
    mass_kg: float
    area_m2: float
    cr: float
    from_oem: Path | None = None

    def bodies(self) -> tuple[str, ...]:
        text = self.third_bodies.strip().lower()
        return () if text == "none" else tuple(b.strip() for b in self.third_bodies.split(",") if b.strip())

    def specs(self):
        """(Spacecraft, Orbit, Forces) scenario specifications, validated as in a scenario file;
        the Orbit from the elements or, with ``from_oem``, from the file's state. Raises
        QamarError when both or neither are given."""
        from qamar.errors import QamarError
        from qamar.mission.scenario import Forces, OemOrbit, Orbit, Spacecraft
        from qamar.orbit.gravity import load_field

        spacecraft = Spacecraft(mass_kg=self.mass_kg, area_m2=self.area_m2, cr=self.cr)
        forces = Forces(gravity=self.gravity, degree=self.degree, third_bodies=self.bodies(), srp=self.srp)
        given = [_flag(e) for e in ELEMENTS if getattr(self, e) is not None]
        if self.from_oem is not None:
            if given:
                raise QamarError(f"--from-oem gives the whole state; drop {', '.join(given)}.")
            source = OemOrbit(oem=self.from_oem, epoch_utc=self.epoch, frame=self.frame)
            return spacecraft, source.to_orbit(load_field(forces.gravity, 0).gm_km3_s2), forces
        missing = [_flag(e) for e in ("epoch", "peri_alt_km", "apo_alt_km", "inc_deg") if getattr(self, e) is None]
        if missing:
            raise QamarError(f"give the orbit: {', '.join(missing)} (or --from-oem FILE).")
        elements = {e: 0.0 if getattr(self, e) is None else getattr(self, e) for e in ELEMENTS}
        return spacecraft, Orbit(epoch_utc=self.epoch, frame=self.frame, **elements), forces

    def setup(self, horizon_days: float, rtol: float):
        """The StudySetup of these options (the elements themselves are not part of it)."""
        from qamar.mission.scenario import Forces, Spacecraft

        spacecraft = Spacecraft(mass_kg=self.mass_kg, area_m2=self.area_m2, cr=self.cr)
        forces = Forces(gravity=self.gravity, degree=self.degree, third_bodies=self.bodies(), srp=self.srp)
        return _study_setup(self.epoch, self.frame, forces, spacecraft, horizon_days, rtol)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _study_setup(epoch, frame: str, forces, spacecraft, horizon_days: float, rtol: float):
    """StudySetup from scenario specifications (Forces, Spacecraft), an epoch and a frame."""
    from qamar.mission.run import force_model
    from qamar.orbit.study import StudySetup
    from qamar.time import utc_to_tdb_s

    model = force_model(forces, spacecraft)
    return StudySetup(float(utc_to_tdb_s(epoch)), model, horizon_days=horizon_days, rtol=rtol, frame=frame)


def _shared_options(*, grid: bool = False):
    """Give a command the ``_SHARED`` options; it receives them as ``options: OrbitOptions``.

    The command's own parameters follow the shared ones in ``--help``. With ``grid`` the
    orbit elements are taken as grid texts (strings).
    """

    def decorate(command):
        params = []
        for name, (kind, default, help_text) in _SHARED.items():
            if grid and name == "from_oem":
                continue
            if grid and name in ELEMENTS:
                kind, help_text = str, help_text + _GRID_HELP
                default = default if default is _REQUIRED else f"{default:g}"
            elif name in _ORBIT or name == "from_oem":
                help_text += "" if default in (_REQUIRED, None) else f" (default {default:g})"
                kind, default = kind | None, None
            decls = ("--srp/--no-srp",) if name == "srp" else ()
            annotation = Annotated[kind, typer.Option(*decls, help=help_text)]
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
        own = inspect.signature(command, eval_str=True)
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != "options"]

        @functools.wraps(command)
        def wrapper(**kwargs):
            options = OrbitOptions(**{name: kwargs.pop(name) for name in _SHARED if name in kwargs})
            return command(options=options, **kwargs)

        wrapper.__signature__ = own.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


@orbit_app.command("propagate")
@user_errors
@_shared_options()
def orbit_propagate(
    options: OrbitOptions,
    duration_days: Annotated[float, typer.Option(help="span to propagate (stops earlier at impact)")],
    out: Annotated[Path, typer.Option(help="CCSDS OEM file to write")],
    rtol: float = 1e-12,
    altitude_threshold_km: Annotated[list[float] | None, typer.Option(help="report crossings of this altitude (repeatable)")] = None,
    step_s: Annotated[float, typer.Option(help="OEM/CSV sampling step")] = 60.0,
    csv: Annotated[Path | None, typer.Option(help="also write the trajectory as CSV")] = None,
    summary: Annotated[Path | None, typer.Option(help="summary JSON to write")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Propagate one orbit and write it as CCSDS OEM (and a JSON summary)."""
    from qamar.mission.run import orbit_summary, propagate_orbit, write_json
    from qamar.mission.scenario import Propagation

    spacecraft, orbit, forces = options.specs()
    run = propagate_orbit(
        spacecraft, orbit, forces,
        Propagation(duration_days=duration_days, rtol=rtol, altitude_thresholds_km=tuple(altitude_threshold_km or ())),
        progress=progress,
    )  # fmt: skip
    run.trajectory.to_oem(out, step_s=step_s)
    if csv:
        run.trajectory.to_csv(csv, step_s=step_s)
    result = orbit_summary(run)
    if summary:
        write_json(summary, result)
    fate = f"impact {result['impact_utc']}" if result["impact_utc"] else f"no impact, min altitude {result['min_alt_km']:.1f} km"
    typer.echo(f"{result['epoch_utc']} -> {result['end_utc']}: {fate}; {result['steps']} steps in {result['wall_s']:.2f} s; wrote {out}")


_HORIZON = Annotated[float, typer.Option(help="span to survive, days (3 years by default)")]
_RTOL = Annotated[float, typer.Option(help="integrator relative tolerance")]
_SCHEDULER = Annotated[
    str | None,
    typer.Option(help="Dask scheduler, e.g. tcp://host:8786 (default: DASK_SCHEDULER_ADDRESS, else a local cluster)"),
]
_WORKERS = Annotated[int, typer.Option(help="worker processes of the local Dask cluster")]
_BATCH = Annotated[int | None, typer.Option(help="members per Dask task (default: about 16 tasks per worker, at most 16 members)")]
_PROGRESS = Annotated[bool, typer.Option("--progress/--no-progress")]


@orbit_app.command("lifetime")
@user_errors
@_shared_options()
def orbit_lifetime(
    options: OrbitOptions,
    horizon_days: _HORIZON = 1095.0,
    rtol: _RTOL = 1e-10,
    summary: Annotated[Path | None, typer.Option(help="lifetime JSON to write")] = None,
    plot: Annotated[Path | None, typer.Option(help="periapsis-history PNG to write")] = None,
    progress: _PROGRESS = True,
) -> None:
    """Propagate one orbit to impact or the horizon; report lifetime, impact place and lowest periapsis."""
    import numpy as np

    from qamar.mission.run import write_json
    from qamar.orbit.elements import state_from_apsides
    from qamar.orbit.lifetime import lifetime

    spacecraft, orbit, forces = options.specs()
    setup = _study_setup(orbit.epoch_utc, orbit.frame, forces, spacecraft, horizon_days, rtol)
    r, v = state_from_apsides(*(getattr(orbit, e) for e in ELEMENTS), setup.forces.field.gm_km3_s2,
                              frame=orbit.frame, t_tdb_s=setup.t0_tdb_s)  # fmt: skip
    result = lifetime(setup.t0_tdb_s, np.concatenate([r, v]), setup.forces, horizon_days, rtol=rtol, progress=progress)
    doc = result.summary()
    if plot:
        from qamar.orbit.plots import plot_lifetime

        plot_lifetime(result, plot)
    if summary:
        write_json(summary, doc)
    low = doc["min_periapsis_alt_km"]
    lowest = "no periapsis pass" if low is None else f"lowest periapsis {low:.1f} km"
    fate = (
        f"impact {doc['impact_utc']} after {doc['lifetime_days']:.2f} days at lat {doc['impact_lat_deg']:.2f}, "
        f"lon {doc['impact_lon_deg']:.2f} deg (ME)"
        if doc["lifetime_days"] is not None
        else f"survives {horizon_days:g} days"
    )
    typer.echo(f"{doc['epoch_utc']}: {fate}; {lowest}; {doc['steps']} steps in {doc['wall_s']:.1f} s")


@orbit_app.command("sweep")
@user_errors
@_shared_options(grid=True)
def orbit_sweep(
    options: OrbitOptions,
    out: Annotated[Path, typer.Option(help="Parquet table to write (one row per grid point)")],
    horizon_days: _HORIZON = 1095.0,
    rtol: _RTOL = 1e-10,
    plot: Annotated[Path | None, typer.Option(help="PNG of lifetime over the swept parameter(s), one or two")] = None,
    mark: Annotated[str | None, typer.Option(help="reference lines on the plot, e.g. 27,50,76,86")] = None,
    scheduler: _SCHEDULER = None,
    workers: _WORKERS = 2,
    batch_size: _BATCH = None,
    progress: _PROGRESS = True,
) -> None:
    """Lifetime over a grid of orbits (Cartesian product of the element grids), on Dask; resumable."""
    from qamar.orbit.sweep import parse_grid, run_sweep

    setup = options.setup(horizon_days, rtol)
    grids = {e: parse_grid(getattr(options, e), "--" + e.replace("_", "-")) for e in ELEMENTS}
    marks = parse_grid(mark, "--mark") if mark else ()
    sweep = run_sweep(setup, grids, out, plot=plot, marks=marks, scheduler=scheduler, workers=workers,
                      batch_size=batch_size, progress=progress)  # fmt: skip
    results = sweep.run.results
    impacting = int(results["lifetime_days"].notna().sum())
    dropped = f", {sweep.dropped} points with apoapsis below periapsis left out" if sweep.dropped else ""
    typer.echo(
        f"{len(results)} orbits ({sweep.run.computed} computed, {sweep.run.reused} reused) in {sweep.run.wall_s:.1f} s: "
        f"{impacting} impact within {horizon_days:g} days{dropped}; wrote {out}" + (f" and {plot}" if plot else "")
    )


@orbit_app.command("montecarlo")
@user_errors
def orbit_montecarlo(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file (orbit, forces, spacecraft)")],
    out: Annotated[Path, typer.Option(help="folder for members/, results.parquet, summary.json and plots")],
    members: Annotated[int, typer.Option(help="number of sampled members")] = 100,
    horizon_days: Annotated[float | None, typer.Option(help="span to survive, days (default: scenario's)")] = None,
    degree: Annotated[int | None, typer.Option(help="gravity degree (default: the scenario's)")] = None,
    rtol: _RTOL = 1e-10,
    seed: Annotated[int, typer.Option(help="random seed: member i draws from stream (seed, i)")] = 0,
    state_axes: Annotated[str, typer.Option(help="axes of the state sigmas/covariance: icrf or rtn")] = "icrf",
    position_sigma_km: Annotated[float | None, typer.Option(help="1-sigma per axis (1 km unless --covariance)")] = None,
    velocity_sigma_m_s: Annotated[float | None, typer.Option(help="1-sigma per axis (1 m/s unless --covariance)")] = None,
    covariance: Annotated[Path | None, typer.Option(help="6x6 state covariance file (km, km/s)")] = None,
    peri_alt_sigma_km: Annotated[float, typer.Option(help="1-sigma of the periapsis altitude")] = 0.0,
    apo_alt_sigma_km: Annotated[float, typer.Option(help="1-sigma of the apoapsis altitude")] = 0.0,
    inc_sigma_deg: Annotated[float, typer.Option(help="1-sigma of the inclination")] = 0.0,
    raan_sigma_deg: Annotated[float, typer.Option(help="1-sigma of the RAAN")] = 0.0,
    argp_sigma_deg: Annotated[float, typer.Option(help="1-sigma of the argument of periapsis")] = 0.0,
    ta_sigma_deg: Annotated[float, typer.Option(help="1-sigma of the true anomaly")] = 0.0,
    mass_rel_sigma: Annotated[float, typer.Option(help="1-sigma of the mass as a fraction")] = 0.0,
    area_rel_sigma: Annotated[float, typer.Option(help="1-sigma of the area as a fraction")] = 0.1,
    cr_sigma: Annotated[float, typer.Option(help="1-sigma of Cr")] = 0.1,
    scheduler: _SCHEDULER = None,
    workers: _WORKERS = 2,
    batch_size: _BATCH = None,
    progress: _PROGRESS = True,
) -> None:
    """Dispersion study of a scenario's orbit on Dask: lifetime percentiles, histogram and CDF; resumable.

    Default dispersion (assumptions until the scenario has its own): 1 km and 1 m/s 1-sigma
    per ICRF axis, 10 % area and 0.1 Cr 1-sigma, mass exact.
    """
    from qamar.errors import DataFormatError
    from qamar.mission.scenario import load_scenario
    from qamar.orbit.dispersion import Dispersion, run_dispersion_study

    spec = load_scenario(scenario)
    spec.require_orbit("qamar orbit montecarlo")
    forces = spec.forces if degree is None else spec.forces.model_copy(update={"degree": degree})
    setup = _study_setup(spec.orbit.epoch_utc, spec.orbit.frame, forces, spec.spacecraft,
                         horizon_days or spec.propagation.duration_days, rtol)  # fmt: skip
    matrix = None
    if covariance is not None:
        import numpy as np

        try:
            matrix = np.loadtxt(covariance, delimiter=None if covariance.suffix != ".csv" else ",", ndmin=2).tolist()
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"cannot read the covariance {covariance}: {exc}; give 6 rows of 6 numbers.") from None
    default_sigma = 1.0 if covariance is None else 0.0
    dispersion = Dispersion(
        peri_alt_sigma_km=peri_alt_sigma_km, apo_alt_sigma_km=apo_alt_sigma_km, inc_sigma_deg=inc_sigma_deg,
        raan_sigma_deg=raan_sigma_deg, argp_sigma_deg=argp_sigma_deg, ta_sigma_deg=ta_sigma_deg,
        state_axes=state_axes, covariance=matrix,
        position_sigma_km=default_sigma if position_sigma_km is None else position_sigma_km,
        velocity_sigma_km_s=1e-3 * (default_sigma if velocity_sigma_m_s is None else velocity_sigma_m_s),
        mass_rel_sigma=mass_rel_sigma, area_rel_sigma=area_rel_sigma, cr_sigma=cr_sigma, seed=seed,
    )  # fmt: skip
    nominal = {e: getattr(spec.orbit, e) for e in ELEMENTS}
    result = run_dispersion_study(setup, dispersion, nominal, members, out, scheduler=scheduler, workers=workers,
                                  batch_size=batch_size, progress=progress)  # fmt: skip
    life = result["lifetime_days"]
    text = ", ".join(f"{k} {'> horizon' if life[k] is None else f'{life[k]:.1f} d'}" for k in ("p5", "p50", "p95"))
    typer.echo(
        f"{spec.name}: {result['members']} members ({result['computed_members']} computed, {result['reused_members']} reused) "
        f"in {result['wall_s']:.1f} s; {result['fraction_impacting']:.0%} impact within {setup.horizon_days:g} days; "
        f"lifetime {text}; wrote {out}"
    )

"""The ``qamar`` command. Thin: it parses, calls the library, prints. No physics here.

Errors a user can cause end with one sentence on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError

from qamar.errors import QamarError

app = typer.Typer(
    help="qamar: mission analysis for small lunar missions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Find and verify the external data files qamar reads.", no_args_is_help=True)
orbit_app = typer.Typer(help="Lunar orbit propagation.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(orbit_app, name="orbit")


def _fail(message: str) -> None:
    typer.echo(f"qamar: error: {message}", err=True)
    raise typer.Exit(code=2)


def user_errors(command: Callable) -> Callable:
    """Turn qamar and validation errors raised by ``command`` into one line and exit code 2."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except QamarError as exc:
            _fail(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            _fail(f"{field}: {first['msg'].removeprefix('Value error, ')}")

    return wrapper


@data_app.command("list")
@user_errors
def data_list() -> None:
    """Show every registered file and where it resolves from."""
    from qamar import data

    for key, entry in data.REGISTRY.items():
        found = data.locate(key)
        where = f"{found.origin:<15} {found.path}" if found else "missing         " + (entry.pip_name or entry.url or "QAMAR_DATA_DIR")
        typer.echo(f"{key:<20} {entry.name:<32} {where}")


@data_app.command("verify")
@user_errors
def data_verify() -> None:
    """Check the SHA-256 of every file found locally; exit 1 if any differs."""
    from qamar import data

    bad = 0
    for key, entry in data.REGISTRY.items():
        state = data.verify(key)
        label = {True: "ok", False: "MISMATCH", None: "not found"}[state]
        bad += state is False
        typer.echo(f"{key:<20} {entry.name:<32} {label}")
    if bad:
        typer.echo(f"qamar: {bad} file(s) do not match their registered SHA-256; reinstall or delete them.", err=True)
        raise typer.Exit(code=1)


@orbit_app.command("propagate")
@user_errors
def orbit_propagate(
    epoch: Annotated[str, typer.Option(help="initial epoch, ISO-8601 UTC")],
    peri_alt_km: Annotated[float, typer.Option(help="periapsis altitude over the 1737.4 km sphere")],
    apo_alt_km: Annotated[float, typer.Option(help="apoapsis altitude over the 1737.4 km sphere")],
    inc_deg: Annotated[float, typer.Option(help="inclination")],
    duration_days: Annotated[float, typer.Option(help="span to propagate (stops earlier at impact)")],
    out: Annotated[Path, typer.Option(help="CCSDS OEM file to write")],
    raan_deg: float = 0.0,
    argp_deg: float = 0.0,
    ta_deg: float = 0.0,
    frame: Annotated[str, typer.Option(help="moon-icrf (ICRF axes) or moon-pa (lunar equator, PA)")] = "moon-icrf",
    gravity: Annotated[str, typer.Option(help="grgm1200a, lp165p or a .tab/.cof path")] = "grgm1200a",
    degree: Annotated[int, typer.Option(help="degree and order; 0 is a point-mass Moon")] = 100,
    third_bodies: Annotated[str, typer.Option(help="comma list of earth,sun or none")] = "earth,sun",
    srp: Annotated[bool, typer.Option("--srp/--no-srp", help="solar radiation pressure")] = True,
    mass_kg: float = 7.0,
    area_m2: float = 0.06,
    cr: float = 1.3,
    rtol: float = 1e-12,
    altitude_threshold_km: Annotated[Optional[list[float]], typer.Option(help="report crossings of this altitude (repeatable)")] = None,
    step_s: Annotated[float, typer.Option(help="OEM/CSV sampling step")] = 60.0,
    csv: Annotated[Optional[Path], typer.Option(help="also write the trajectory as CSV")] = None,
    summary: Annotated[Optional[Path], typer.Option(help="summary JSON to write")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Propagate one orbit and write it as CCSDS OEM (and a JSON summary)."""
    from qamar.mission.run import orbit_summary, propagate_orbit, write_json
    from qamar.mission.scenario import Forces, Orbit, Propagation, Spacecraft

    bodies = () if third_bodies.strip().lower() == "none" else tuple(b.strip() for b in third_bodies.split(",") if b.strip())
    run = propagate_orbit(
        Spacecraft(mass_kg=mass_kg, area_m2=area_m2, cr=cr),
        Orbit(
            epoch_utc=epoch, peri_alt_km=peri_alt_km, apo_alt_km=apo_alt_km, inc_deg=inc_deg,
            raan_deg=raan_deg, argp_deg=argp_deg, ta_deg=ta_deg, frame=frame,
        ),
        Forces(gravity=gravity, degree=degree, third_bodies=bodies, srp=srp),
        Propagation(duration_days=duration_days, rtol=rtol, altitude_thresholds_km=tuple(altitude_threshold_km or ())),
        progress=progress,
    )
    run.trajectory.to_oem(out, step_s=step_s)
    if csv:
        run.trajectory.to_csv(csv, step_s=step_s)
    result = orbit_summary(run)
    if summary:
        write_json(summary, result)
    fate = f"impact {result['impact_utc']}" if result["impact_utc"] else f"no impact, min altitude {result['min_alt_km']:.1f} km"
    typer.echo(f"{result['epoch_utc']} -> {result['end_utc']}: {fate}; {result['steps']} steps in {result['wall_s']:.2f} s; wrote {out}")


@app.command("run")
@user_errors
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    out: Annotated[Path, typer.Option(help="folder for the products")],
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Run every analysis of a scenario; write summary.json, trajectory.oem, plots and report.html."""
    from qamar.mission.run import run_scenario
    from qamar.mission.scenario import load_scenario

    result = run_scenario(load_scenario(scenario), out, progress=progress)
    orbit = result["orbit"]
    fate = f"impact {orbit['impact_utc']}" if orbit["impact_utc"] else "no impact"
    typer.echo(f"{result['scenario']}: {orbit['epoch_utc']} -> {orbit['end_utc']}, {fate}; report: {out / 'report.html'}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

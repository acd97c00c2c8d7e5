"""``qamar orbit``: lunar orbit propagation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from qamar.cli.common import sub_app, user_errors

orbit_app = sub_app("Lunar orbit propagation.")


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

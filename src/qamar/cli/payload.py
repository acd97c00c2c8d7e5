"""``qamar payload``: imaging opportunities, imaging plans and coverage of a scenario's cameras.

No opportunity at all is reported as an error (one sentence saying which condition ruled every
sample out, exit code 2) and no file is written: an empty table would look like a result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qamar.cli.common import sub_app, user_errors

payload_app = sub_app("Cameras: imaging opportunities, plans and coverage.")

Scenario = Annotated[Path, typer.Argument(help="scenario YAML file with a payload block")]
Days = Annotated[float | None, typer.Option(help="days from the scenario epoch (default: the scenario's duration)")]
SunElev = Annotated[str | None, typer.Option(help="Sun elevation range LO:HI in deg (default: payload.sun_elev_deg)")]
Step = Annotated[float, typer.Option(help="sampling step of the trajectory, s")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress")]


def _sun_range(text: str | None, default: tuple[float, float]) -> tuple[float, float]:
    if text is None:
        return tuple(default)
    parts = text.split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not LO:HI in degrees, e.g. 5:60", param_hint="--sun-elev-deg") from None
    return lo, hi


def _setup(scenario: Path, days: float | None, progress: bool):
    """Scenario, cameras (checked to see the Moon) and the propagated trajectory."""
    from qamar.errors import DataFormatError
    from qamar.mission.orbiter import scenario_cameras
    from qamar.mission.run import propagate_orbit
    from qamar.mission.scenario import load_scenario

    scn = load_scenario(scenario)
    scn.require_orbit("qamar payload")
    if days is not None and not days > 0:
        raise DataFormatError(f"--days must be positive, got {days}")
    propagation = scn.propagation if days is None else scn.propagation.model_copy(update={"duration_days": days})
    run = propagate_orbit(scn.spacecraft, scn.orbit, scn.forces, propagation, progress=progress)
    return scn, scenario_cameras(scn, run.trajectory), run.trajectory


def _constraints(scn, sun_elev_deg, max_gsd_m, max_emission_deg, whole_target, track):
    from qamar.payload.opportunities import Constraints

    return Constraints(sun_elev_deg=_sun_range(sun_elev_deg, scn.payload.sun_elev_deg), max_gsd_m=max_gsd_m,
                       max_emission_deg=max_emission_deg, whole_target=whole_target, track=track)


@payload_app.command("opportunities")
@user_errors
def payload_opportunities(
    scenario: Scenario,
    target: Annotated[str, typer.Option(help="IAU feature name, or LAT,LON in degrees")],
    out: Annotated[Path, typer.Option(help="opportunities CSV to write (one row a window, best first)")],
    max_gsd_m: Annotated[float | None, typer.Option(help="finest-detail limit: slant range x IFOV, m")] = None,
    sun_elev_deg: SunElev = None,
    max_emission_deg: Annotated[float, typer.Option(help="view no farther than this from the vertical")] = 60.0,
    whole_target: Annotated[bool, typer.Option(help="the whole feature must be in the frame, not its centre")] = False,
    track: Annotated[bool, typer.Option(help="turn the spacecraft to track the target (<= 30 deg off nadir)")] = False,
    days: Days = None,
    step_s: Step = 10.0,
    plot: Annotated[Path | None, typer.Option(help="also draw the windows as a timeline PNG")] = None,
    progress: Progress = True,
) -> None:
    """Windows when a target is in a camera's footprint, well lit and sharp enough; ranked."""
    from qamar.cli.common import fail
    from qamar.payload.opportunities import find_opportunities, write_csv
    from qamar.payload.targets import parse_target

    scn, cameras, trajectory = _setup(scenario, days, progress)
    constraints = _constraints(scn, sun_elev_deg, max_gsd_m, max_emission_deg, whole_target, track)
    result = find_opportunities(trajectory, cameras, parse_target(target), constraints, step_s=step_s)
    if not result.opportunities:
        fail(result.explain())
    write_csv(result.opportunities, out)
    if plot:
        from qamar.payload.plots import plot_opportunities

        plot_opportunities(result.opportunities, plot, start_tdb_s=result.start_tdb_s, stop_tdb_s=result.stop_tdb_s)
    best = result.opportunities[0]
    typer.echo(f"{result.explain()}; best: {best.camera} at GSD {best.gsd_m:.0f} m, Sun {best.sun_elev_deg:.1f} deg; "
               f"wrote {out}")


@payload_app.command("plan")
@user_errors
def payload_plan(
    scenario: Scenario,
    target: Annotated[list[str], typer.Option(help="IAU feature name or LAT,LON (repeatable)")],
    out: Annotated[Path, typer.Option(help="folder for plan.csv, opportunities.csv, plan.json and plots")],
    max_gsd_m: Annotated[float | None, typer.Option(help="slant range x IFOV limit, m")] = None,
    sun_elev_deg: SunElev = None,
    max_emission_deg: float = 60.0,
    images_per_target: Annotated[int, typer.Option(min=1)] = 1,
    days: Days = None,
    step_s: Step = 10.0,
    progress: Progress = True,
) -> None:
    """An imaging plan over several targets that fits on-board storage and the scenario's downlink."""
    from qamar.cli.common import fail
    from qamar.comms.plots import plot_backlog
    from qamar.mission.orbiter import analyse_comms, analyse_imaging
    from qamar.mission.run import staged_output, write_json
    from qamar.payload.opportunities import write_csv
    from qamar.payload.plan import write_plan_csv
    from qamar.payload.plots import plot_opportunities
    from qamar.payload.targets import parse_target
    from qamar.time import tdb_s_to_utc

    scn, cameras, trajectory = _setup(scenario, days, progress)
    constraints = _constraints(scn, sun_elev_deg, max_gsd_m, max_emission_deg, False, False)
    tracks = analyse_comms(scn, trajectory).tracks
    imaging = analyse_imaging(scn, trajectory, cameras, [parse_target(name) for name in target], constraints, tracks,
                              images_per_target=images_per_target, step_s=step_s)
    searches, found, plan = imaging.searches, imaging.opportunities, imaging.plan
    for search in searches:
        if not search.opportunities:
            typer.echo(f"qamar: note: {search.explain()}", err=True)
    if plan is None:
        fail("no target has an imaging opportunity (see the notes above); relax the conditions or lengthen --days")
    if not plan.images:
        fail(f"no opportunity fits the downlink: {plan.skipped[0][1]} for the best one; "
             "raise the storage or add stations")
    start, stop = trajectory.start_tdb_s, trajectory.end_tdb_s
    with staged_output(out) as stage:
        write_plan_csv(plan, stage / "plan.csv")
        write_csv(sorted(found, key=lambda o: -o.score), stage / "opportunities.csv")
        plot_opportunities(found, stage / "opportunities.png", start_tdb_s=start, stop_tdb_s=stop, planned=plan.images)
        plot_backlog(plan.backlog, stage / "backlog.png", title="Image backlog on board (planned images)")
        write_json(stage / "plan.json", {
            "scenario": scn.name, "start_utc": tdb_s_to_utc(start), "stop_utc": tdb_s_to_utc(stop),
            "targets": [s.target.name for s in searches], "images": len(plan.images),
            "image_mbit": plan.bits / 1e6, "storage_mbit": scn.payload.storage_mbit,
            "peak_backlog_mbit": plan.backlog.peak_backlog_bits / 1e6,
            "targets_without_opportunity": [s.target.name for s in searches if not s.opportunities],
            "skipped": {reason: sum(r == reason for _, r in plan.skipped) for reason in {r for _, r in plan.skipped}},
        })
    typer.echo(f"{scn.name}: {len(plan.images)} images of {len({o.target for o in plan.images})} targets "
               f"({plan.bits / 1e6:.1f} Mbit) from {len(found)} opportunities; wrote {out}")


@payload_app.command("coverage")
@user_errors
def payload_coverage(
    scenario: Scenario,
    out: Annotated[Path, typer.Option(help="folder for coverage.json, coverage.fits and the maps")],
    days: Annotated[float, typer.Option(help="days from the scenario epoch")] = 30.0,
    step_s: Step = 10.0,
    nside: Annotated[int, typer.Option(help="HEALPix nside (power of two; 512: 0.11 deg pixels)")] = 512,
    good_light: Annotated[bool, typer.Option(help="count only pixels lit within payload.sun_elev_deg")] = False,
    sun_elev_deg: SunElev = None,
    max_gsd_m: Annotated[float | None, typer.Option(help="count only where slant range x IFOV is under this, m")] = None,
    region: Annotated[list[str] | None, typer.Option(help="IAU feature whose coverage to report (repeatable)")] = None,
    progress: Progress = True,
) -> None:
    """Cumulative coverage over the span on an equal-area HEALPix grid; global and polar maps."""
    from qamar.mission.run import staged_output, write_json
    from qamar.payload.coverage import coverage
    from qamar.payload.plots import plot_coverage_global, plot_coverage_polar
    from qamar.payload.targets import band, feature

    scn, cameras, trajectory = _setup(scenario, days, progress)
    light = _sun_range(sun_elev_deg, scn.payload.sun_elev_deg) if (good_light or sun_elev_deg) else None
    cmap = coverage(trajectory, cameras, step_s=step_s, nside=nside, sun_elev_deg=light, max_gsd_m=max_gsd_m)
    regions = [band(-90, -80, "south of 80 S"), band(80, 90, "north of 80 N")] + [feature(n) for n in region or ()]
    summary = {"scenario": scn.name, **cmap.summary(regions)}
    with staged_output(out) as stage:
        cmap.to_fits(stage / "coverage.fits")
        plot_coverage_global(cmap, stage / "coverage_global.png")
        plot_coverage_polar(cmap, stage / "coverage_south.png", pole="south", regions=regions[:1] + regions[2:])
        plot_coverage_polar(cmap, stage / "coverage_north.png", pole="north", regions=regions[1:2])
        write_json(stage / "coverage.json", summary)
    parts = ", ".join(f"{k} {v:.1f}%" for k, v in summary["regions_pct"].items())
    typer.echo(f"{scn.name}: {summary['covered_pct']:.1f}% of the Moon seen in {days:g} days ({parts}); wrote {out}")

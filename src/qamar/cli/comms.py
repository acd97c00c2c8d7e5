"""``qamar comms``: Earth-station contacts and the downlink."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qamar.cli.common import sub_app, user_errors

comms_app = sub_app("Earth-station contacts and the downlink.")


@comms_app.command("contacts")
@user_errors
def comms_contacts(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    out: Annotated[Path, typer.Option(help="contacts CSV to write (one row a pass)")],
    summary: Annotated[Path, typer.Option(help="summary JSON to write")],
    start: Annotated[str | None, typer.Option(help="first epoch, ISO-8601 UTC (default: the scenario epoch)")] = None,
    stop: Annotated[str | None, typer.Option(help="last epoch, ISO-8601 UTC (default: end of the propagation)")] = None,
    min_elev_deg: Annotated[float | None, typer.Option(help="elevation mask (default: comms.min_elev_deg, 10)")] = None,
    step_s: Annotated[float, typer.Option(help="search grid; windows shorter than this may be missed")] = 30.0,
    plot: Annotated[Path | None, typer.Option(help="also draw the contact timeline as a PNG")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Passes of the scenario's spacecraft over its ground stations: AOS/LOS, elevation, range, data volume."""
    from qamar.comms.budget import write_contacts_csv
    from qamar.errors import EpochOutOfRangeError
    from qamar.mission.orbiter import analyse_comms
    from qamar.mission.run import propagate_orbit, write_json
    from qamar.mission.scenario import load_scenario
    from qamar.time import tdb_s_to_utc, utc_to_tdb_s

    scn = load_scenario(scenario)
    scn.require_orbit("qamar comms contacts")
    epoch_s = float(utc_to_tdb_s(scn.orbit.epoch_utc))
    end_s = epoch_s + scn.propagation.duration_days * 86400.0
    t0 = epoch_s if start is None else float(utc_to_tdb_s(start))
    t1 = end_s if stop is None else float(utc_to_tdb_s(stop))
    if not (epoch_s <= t0 < t1 <= end_s):
        raise EpochOutOfRangeError(
            f"the span {tdb_s_to_utc(t0, 0)} to {tdb_s_to_utc(t1, 0)} is not inside the scenario's propagation "
            f"({tdb_s_to_utc(epoch_s, 0)} to {tdb_s_to_utc(end_s, 0)}); give --start before --stop within it, "
            "or lengthen propagation.duration_days"
        )
    propagation = scn.propagation.model_copy(update={"duration_days": (t1 - epoch_s) / 86400.0})
    run = propagate_orbit(scn.spacecraft, scn.orbit, scn.forces, propagation, progress=progress)
    if run.trajectory.end_tdb_s < t1:
        typer.echo(f"qamar: note: the spacecraft impacts on {tdb_s_to_utc(run.trajectory.end_tdb_s, 0)}; "
                   "contacts stop there", err=True)
    comms = analyse_comms(scn, run.trajectory, t0, t1, min_elev_deg, step_s)
    found, document = comms.contacts, comms.summary
    write_contacts_csv(out, found, comms.spec.radio, comms.spec.downlink.setup_s)
    write_json(summary, document)
    if plot:
        from qamar.comms.plots import plot_contacts

        plot_contacts(found, plot, tracks=comms.tracks)
    for name in found.silent_stations():
        typer.echo(f"qamar: note: {name} has no pass: the spacecraft never rises above "
                   f"{found.min_elev_deg:g} deg clear of the Moon (highest {found.max_elev_deg[name]:.1f} deg)", err=True)
    hours = ", ".join(f"{k} {v:.1f} h" for k, v in document["total_contact_h"].items())
    typer.echo(f"{scn.spacecraft.name}: {len(found.passes)} passes, {document['start_utc']} -> {document['stop_utc']}; "
               f"{hours}; wrote {out} and {summary}")

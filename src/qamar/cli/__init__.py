"""The ``qamar`` command. Thin: it parses, calls the library, prints. No physics here.

Each subcommand group lives in its own module (``qamar.cli.data``, ``qamar.cli.orbit``...).
Errors a user can cause end with one sentence on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qamar.cli.common import user_errors
from qamar.cli.comms import comms_app
from qamar.cli.data import data_app
from qamar.cli.ops import ops_app
from qamar.cli.orbit import orbit_app
from qamar.cli.payload import payload_app
from qamar.cli.rover import rover_app
from qamar.cli.surface import surface_app

app = typer.Typer(
    help="qamar: mission analysis for small lunar missions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
app.add_typer(orbit_app, name="orbit")
app.add_typer(surface_app, name="surface")
app.add_typer(comms_app, name="comms")
app.add_typer(payload_app, name="payload")
app.add_typer(rover_app, name="rover")
app.add_typer(ops_app, name="ops")


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
    parts = []
    if "orbit" in result:
        orbit = result["orbit"]
        fate = f"impact {orbit['impact_utc']}" if orbit["impact_utc"] else "no impact"
        parts.append(f"{orbit['epoch_utc']} -> {orbit['end_utc']}, {fate}")
    if "rover" in result:
        rover = result["rover"]
        parts.append(f"traverse {rover['length_m']:.0f} m, arrives {rover['arrival_utc']}" if rover["feasible"]
                     else f"no feasible traverse: {rover['reason']}")
    typer.echo(f"{result['scenario']}: {'; '.join(parts)}; report: {out / 'report.html'}")

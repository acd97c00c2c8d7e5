"""``qamar data``: find and verify the external data files qamar reads."""

from __future__ import annotations

import typer

from qamar.cli.common import sub_app, user_errors

data_app = sub_app("Find and verify the external data files qamar reads.")


@data_app.command("list")
@user_errors
def data_list() -> None:
    """Show every registered file and where it resolves from."""
    from qamar import data

    for key, entry in data.REGISTRY.items():
        found = data.locate(key)
        where = f"{found.origin:<15} {found.path}" if found else "missing         " + (entry.pip_name or entry.url or "QAMAR_DATA_DIR")
        typer.echo(f"{key:<20} {entry.name:<42} {where}")


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
        typer.echo(f"{key:<20} {entry.name:<42} {label}")
    if bad:
        typer.echo(f"qamar: {bad} file(s) do not match their registered SHA-256; reinstall or delete them.", err=True)
        raise typer.Exit(code=1)

"""Shared pieces of the ``qamar`` command: the error policy of every subcommand."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import typer
from pydantic import ValidationError

from qamar.errors import QamarError


def fail(message: str) -> None:
    """Print ``qamar: error: message`` on stderr and exit with code 2."""
    typer.echo(f"qamar: error: {message}", err=True)
    raise typer.Exit(code=2)


def user_errors(command: Callable) -> Callable:
    """Turn qamar and validation errors raised by ``command`` into one line and exit code 2."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except QamarError as exc:
            fail(str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            fail(f"{field}: {first['msg'].removeprefix('Value error, ')}".lstrip(": "))
        except OSError as exc:  # an output folder that does not exist, a read-only disk...
            fail(f"{exc.strerror or exc}: {exc.filename}; check the path and its permissions")

    return wrapper


def sub_app(help_text: str) -> typer.Typer:
    """A subcommand group with qamar's conventions."""
    return typer.Typer(help=help_text, no_args_is_help=True, pretty_exceptions_enable=False)

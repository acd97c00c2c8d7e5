"""Shared helpers for peer benchmarks: each benchmark owns one section of docs/benchmarks.md."""

from __future__ import annotations

import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_HEADER = "# qamar benchmarks\n\nEach section is written by the script it names; rerun it to refresh the table.\n"


def machine_line() -> str:
    """One line naming the machine and the date, for the top of a section."""
    import os

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Measured {stamp} on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}."


def write_section(name: str, markdown: str) -> Path:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``markdown``."""
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else _HEADER
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)
    return BENCHMARKS_MD


def publish(name: str, markdown: str, write: bool = True) -> None:
    """Print a benchmark's section and, with ``write``, put it in docs/benchmarks.md."""
    print(markdown)
    if write:
        print(f"wrote {write_section(name, markdown)}")


def run_line() -> str:
    """The command that re-creates a section: the running script with the arguments it was given."""
    script = f"bench/{Path(sys.argv[0]).name}"
    words = ["QAMAR_DATA_DIR=../shared/data", "python", script, *map(shlex.quote, sys.argv[1:])]
    return f"Reproduce: `{' '.join(words)}`"

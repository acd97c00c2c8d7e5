"""Time-tagged command sequences: dictionary commands with absolute or relative release times.

A sequence is a YAML mapping or a text file. YAML::

    name: drive-day-1
    start: 2028-06-01T02:00:00Z          # optional: the time relative entries count from
    commands:
      - {at: "2028-06-01T02:00:00Z", command: "SET_MODE mode=DRIVE"}   # absolute UTC
      - {offset_s: 120, command: "DRIVE_TO lat=-89.45 lon=222.7"}     # seconds after the start
      - {after_s: 60, command: "IMAGE camera=NAVCAM_LEFT"}            # seconds after the previous entry

Text, one entry a line (``#`` starts a comment)::

    2028-06-01T02:00:00Z  SET_MODE mode=DRIVE
    T+120                 DRIVE_TO lat=-89.45 lon=222.7
    +60                   IMAGE camera=NAVCAM_LEFT

A first entry with ``after_s``/``+`` counts from the start. The start is the file's ``start``
unless the operator gives one when submitting; relative entries without any start are an
error. Release times are ground release times (the command then waits for the link), in TAI
seconds past J2000; entries are released in time order, in file order at equal times. Every
command is checked against the dictionary on loading (CommandError naming the entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from qamar.errors import QamarError
from qamar.ops.dictionary import CommandCall, Dictionary, default_dictionary
from qamar.ops.errors import CommandError
from qamar.time import utc_to_tai_s


@dataclass(frozen=True)
class TimedCommand:
    """One entry: the checked command and exactly one of ``at_utc``, ``offset_s`` (from the start), ``after_s``."""

    call: CommandCall
    at_utc: str | None = None
    offset_s: float | None = None
    after_s: float | None = None


@dataclass(frozen=True)
class CommandSequence:
    """A named list of time-tagged commands (see the module docstring)."""

    name: str
    entries: tuple[TimedCommand, ...]
    start_utc: str | None = None

    def release_times_tai_s(self, start_tai_s: float | None = None) -> list[float]:
        """Release time (TAI s past J2000) of each entry, in entry order.

        ``start_tai_s`` overrides the file's start. Raises CommandError if a relative entry has no
        start to count from or a time goes before the previous entry's for an ``after_s`` chain.
        """
        if start_tai_s is None and self.start_utc is not None:
            start_tai_s = float(utc_to_tai_s(self.start_utc))
        times: list[float] = []
        for i, entry in enumerate(self.entries):
            if entry.at_utc is not None:
                times.append(float(utc_to_tai_s(entry.at_utc)))
                continue
            if start_tai_s is None and not (entry.after_s is not None and times):
                raise CommandError(f"sequence {self.name}: entry {i + 1} ({entry.call}) is relative but the sequence "
                                   "has no start; give 'start' in the file or a start time when submitting")
            if entry.offset_s is not None:
                times.append(start_tai_s + entry.offset_s)
            else:
                times.append((times[-1] if times else start_tai_s) + entry.after_s)
        return times


def parse_sequence(text: str, dictionary: Dictionary | None = None, name: str = "sequence") -> CommandSequence:
    """A sequence from YAML or text (see the module docstring); CommandError names the faulty entry."""
    dictionary = dictionary or default_dictionary()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    if isinstance(raw, dict):
        return _from_yaml(raw, dictionary, name)
    return _from_text(text, dictionary, name)


def load_sequence(path: str | Path, dictionary: Dictionary | None = None) -> CommandSequence:
    """The sequence in file ``path`` (YAML or text); CommandError if it cannot be read or is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(f"cannot read sequence file {path}: {exc.strerror}") from None
    return parse_sequence(text, dictionary, path.stem)


def _entry(dictionary: Dictionary, where: str, line: str, **time) -> TimedCommand:
    try:
        call = dictionary.parse_command(line)
    except CommandError as exc:
        raise CommandError(f"{where}: {exc}") from None
    given = {k: v for k, v in time.items() if v is not None}
    if len(given) != 1:
        raise CommandError(f"{where}: give exactly one of at, offset_s, after_s (got {', '.join(given) or 'none'})")
    for key in ("offset_s", "after_s"):
        if key in given and not (isinstance(given[key], int | float) and given[key] >= 0):
            raise CommandError(f"{where}: {key} must be a number of seconds >= 0, got {given[key]!r}")
    if "at" in given:
        try:
            utc_to_tai_s(str(given["at"]))
        except QamarError as exc:
            raise CommandError(f"{where}: bad time {given['at']!r}: {exc}") from None
    return TimedCommand(call, None if "at" not in given else str(given["at"]), time.get("offset_s"),
                        time.get("after_s"))


def _from_yaml(raw: dict, dictionary: Dictionary, name: str) -> CommandSequence:
    unknown = set(raw) - {"name", "start", "commands"}
    if unknown or not isinstance(raw.get("commands"), list):
        raise CommandError(f"sequence {name}: a YAML sequence is a mapping with name, start (optional) and a "
                           f"list 'commands'{'; unknown keys ' + ', '.join(sorted(unknown)) if unknown else ''}")
    name = str(raw.get("name", name))
    entries = []
    for i, item in enumerate(raw["commands"]):
        where = f"sequence {name} entry {i + 1}"
        if not isinstance(item, dict) or "command" not in item or set(item) - {"command", "at", "offset_s", "after_s"}:
            raise CommandError(f"{where}: write {{command: 'NAME arg=value', at|offset_s|after_s: ...}}")
        at = item.get("at")
        entries.append(_entry(dictionary, where, str(item["command"]), at=None if at is None else str(at),
                              offset_s=item.get("offset_s"), after_s=item.get("after_s")))
    start = raw.get("start")
    return CommandSequence(name, tuple(entries), None if start is None else str(start))


def _from_text(text: str, dictionary: Dictionary, name: str) -> CommandSequence:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"sequence {name} line {number}"
        tag, _, command = line.partition(" ")
        try:
            if tag.upper().startswith("T+"):
                entries.append(_entry(dictionary, where, command, offset_s=float(tag[2:])))
            elif tag.startswith("+"):
                entries.append(_entry(dictionary, where, command, after_s=float(tag[1:])))
            else:
                entries.append(_entry(dictionary, where, command, at=tag))
        except ValueError:
            raise CommandError(f"{where}: {tag!r} is not a time; start the line with an ISO UTC time, "
                               "T+SECONDS or +SECONDS") from None
    if not entries:
        raise CommandError(f"sequence {name} has no commands")
    return CommandSequence(name, tuple(entries))

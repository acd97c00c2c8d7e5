"""The rover's command and telemetry dictionary: one versioned YAML file, validated by pydantic.

A dictionary lists the APIDs (one per onboard function), the commands with typed,
range-checked arguments and the telemetry packets with their parameters, units and limits.
The rover's is shipped with qamar (``rover_dictionary.yaml``, every value an assumption with
its source); :func:`load_dictionary` reads another. :meth:`Dictionary.parse_command` turns an
operator's line such as ``DRIVE_TO lat=-89.45 lon=222.7`` into a checked :class:`CommandCall`
and :func:`to_xtce` exports the dictionary as XTCE 1.2 (through yamcs-pymdb) for Yamcs.

Wire types are big-endian (CCSDS 133.0-B-2 sec. 1.6: the most significant octet first):
float32/float64 (IEEE 754), int8/16/32, uint8/16/32, ``bool`` and ``enum`` (one octet each).
A packet's fields follow each other in the order of the dictionary, with no padding.

Errors: a malformed dictionary raises DictionaryError naming the entry; a bad command line
raises CommandError naming the command, the argument and the allowed range or choices.
"""

from __future__ import annotations

import functools
import math
import re
import shlex
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from qamar.ops.errors import CommandError, DictionaryError

WireType = Literal["float32", "float64", "int8", "int16", "int32", "uint8", "uint16", "uint32", "bool", "enum"]

STRUCT_CODE: dict[str, str] = {
    "float32": "f", "float64": "d", "int8": "b", "int16": "h", "int32": "i",
    "uint8": "B", "uint16": "H", "uint32": "I", "bool": "B", "enum": "B",
}
_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "uint8": 8, "uint16": 16, "uint32": 32}
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_APID = 2046  # 11-bit APID; 2047 (all ones) is reserved for idle packets (CCSDS 133.0-B-2 sec. 4.1.3.3.4)

Value = float | int | bool | str


def _int_bounds(wire: str) -> tuple[int, int]:
    bits = _INT_BITS[wire]
    return (0, 2**bits - 1) if wire.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def to_wire_float(value: float, wire: str) -> float:
    """``value`` rounded to what the wire type carries (float32 loses digits; float64 does not)."""
    return struct.unpack(">f", struct.pack(">f", value))[0] if wire == "float32" else float(value)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Field(_Model):
    """One typed value of a packet: a command argument or a telemetry parameter.

    ``min``/``max`` bound the engineering value (inclusive, in ``units``); an ``enum`` lists
    its ``choices`` as ``{NAME: code}`` with codes 0..255.
    """

    name: str
    type: WireType
    units: str | None = None
    min: float | None = None
    max: float | None = None
    choices: dict[str, int] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Field:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r} must be letters, digits and '_' starting with a letter")
        if (self.type == "enum") != (self.choices is not None):
            raise ValueError(f"{self.name}: 'choices' go with type enum, and only with it")
        if self.choices is not None:
            if not self.choices or any(not 0 <= code <= 255 for code in self.choices.values()):
                raise ValueError(f"{self.name}: enum codes must be 0..255 and there must be at least one")
            if len(set(self.choices.values())) != len(self.choices):
                raise ValueError(f"{self.name}: two enum choices share a code")
        if self.type in ("bool", "enum") and (self.min is not None or self.max is not None):
            raise ValueError(f"{self.name}: a {self.type} takes no min/max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.name}: min {self.min} > max {self.max}")
        if self.type in _INT_BITS:
            low, high = _int_bounds(self.type)
            for bound in (self.min, self.max):
                if bound is not None and not (low <= bound <= high and float(bound).is_integer()):
                    raise ValueError(f"{self.name}: bound {bound} is not a {self.type} ({low}..{high})")
        return self

    @property
    def struct_code(self) -> str:
        return STRUCT_CODE[self.type]

    def range_text(self) -> str:
        """The allowed values in words, e.g. ``[-90, -80] deg`` or ``one of SAFE, DRIVE``."""
        if self.type == "enum":
            return "one of " + ", ".join(self.choices)
        if self.type == "bool":
            return "true or false"
        low, high = self.limits_of_type()
        return f"[{low:g}, {high:g}]" + (f" {self.units}" if self.units else "")

    def limits_of_type(self) -> tuple[float, float]:
        """(min, max) of the field, defaulting to the bounds of its integer type (or +-inf)."""
        low, high = _int_bounds(self.type) if self.type in _INT_BITS else (-math.inf, math.inf)
        return (low if self.min is None else self.min, high if self.max is None else self.max)

    def check(self, value: Value) -> Value:
        """The value as its engineering type (float, int, bool, or enum name) after range checks.

        Text is converted (``'-89.45'``, ``'12'``, ``'true'``, ``'SAFE'``). Floats are compared
        after rounding to the wire type, so a value checked on the ground checks the same on
        board. Raises ValueError with the allowed range.
        """
        if self.type == "enum":
            if isinstance(value, int) and not isinstance(value, bool):
                names = [n for n, code in self.choices.items() if code == value]
                if names:
                    return names[0]
            elif str(value) in self.choices:
                return str(value)
            raise ValueError(f"{value!r} is not {self.range_text()}")
        if self.type == "bool":
            text = str(value).lower()
            if text in ("0", "1", "true", "false"):
                return text in ("1", "true")
            raise ValueError(f"{value!r} is not {self.range_text()}")
        if self.type in _INT_BITS:
            try:
                number = int(value) if not isinstance(value, str) else int(value, 0)
            except (TypeError, ValueError):
                raise ValueError(f"{value!r} is not an integer") from None
            if isinstance(value, float) and value != number:
                raise ValueError(f"{value!r} is not an integer")
            low, high = self.limits_of_type()
            if not low <= number <= high:
                raise ValueError(f"{number} is out of range {self.range_text()}")
            return number
        try:
            number = to_wire_float(float(value), self.type)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{value!r} is not a number") from None
        low, high = self.limits_of_type()
        if not (math.isfinite(number) and to_wire_float(low, self.type) <= number <= to_wire_float(high, self.type)):
            raise ValueError(f"{value} is out of range {self.range_text()}")
        return number


class Argument(Field):
    """A command argument; ``default`` makes it optional."""

    default: Value | None = None

    @model_validator(mode="after")
    def _check_default(self) -> Argument:
        if self.default is not None:
            try:
                self.check(self.default)
            except ValueError as exc:
                raise ValueError(f"{self.name}: default {exc}") from None
        return self


class Limits(_Model):
    """Alarm limits of a telemetry parameter (engineering units): warning inside critical."""

    warning_low: float | None = None
    critical_low: float | None = None
    warning_high: float | None = None
    critical_high: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        chain = [self.critical_low, self.warning_low, self.warning_high, self.critical_high]
        present = [v for v in chain if v is not None]
        if present != sorted(present):
            raise ValueError(f"limits must satisfy critical_low <= warning_low <= warning_high <= critical_high, got {chain}")
        return self


class Parameter(Field):
    """A telemetry parameter with optional alarm limits."""

    limits: Limits | None = None


class CommandDef(_Model):
    """A telecommand: a name, a 16-bit opcode, the APID of the function it goes to, its arguments."""

    name: str
    opcode: int
    apid: str
    description: str = ""
    arguments: tuple[Argument, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> CommandDef:
        if not re.match(r"^[A-Z][A-Z0-9_]*$", self.name):
            raise ValueError(f"command name {self.name!r} must be upper case letters, digits and '_'")
        if not 0 <= self.opcode <= 0xFFFF:
            raise ValueError(f"{self.name}: opcode {self.opcode} is not 0..65535")
        names = [a.name for a in self.arguments]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: two arguments share a name")
        return self

    def argument(self, name: str) -> Argument:
        for arg in self.arguments:
            if arg.name == name:
                return arg
        raise KeyError(name)


class TelemetryDef(_Model):
    """A telemetry packet: one APID and its parameters in wire order."""

    name: str
    apid: str
    description: str = ""
    parameters: tuple[Parameter, ...]


class Dictionary(_Model):
    """A versioned command and telemetry dictionary (see the module docstring)."""

    version: str
    name: str
    apids: dict[str, int]
    commands: tuple[CommandDef, ...]
    telemetry: tuple[TelemetryDef, ...]

    @model_validator(mode="after")
    def _check(self) -> Dictionary:
        if not re.match(r"^\d+\.\d+\.\d+$", self.version):
            raise ValueError(f"version {self.version!r} must be MAJOR.MINOR.PATCH")
        for name, apid in self.apids.items():
            if not 0 <= apid <= MAX_APID:
                raise ValueError(f"APID {name} = {apid} is not 0..{MAX_APID}")
        if len(set(self.apids.values())) != len(self.apids):
            raise ValueError("two APID names share a number")
        _unique("command name", [c.name for c in self.commands])
        _unique("command opcode", [c.opcode for c in self.commands])
        _unique("telemetry packet name", [t.name for t in self.telemetry])
        _unique("telemetry APID (one packet per APID)", [t.apid for t in self.telemetry])
        _unique("telemetry parameter name", [p.name for t in self.telemetry for p in t.parameters])
        used = [c.apid for c in self.commands] + [t.apid for t in self.telemetry]
        for apid in used:
            if apid not in self.apids:
                raise ValueError(f"APID name {apid!r} is not in 'apids' ({', '.join(self.apids)})")
        shared = {c.apid for c in self.commands} & {t.apid for t in self.telemetry}
        if shared:
            raise ValueError(f"APIDs {sorted(shared)} carry both commands and telemetry; give each its own")
        return self

    def command(self, name: str) -> CommandDef:
        """The command called ``name``; CommandError lists the known ones."""
        for cmd in self.commands:
            if cmd.name == name:
                return cmd
        raise CommandError(f"unknown command {name!r}; the dictionary {self.name} {self.version} has "
                           + ", ".join(c.name for c in self.commands))

    def telemetry_packet(self, name: str) -> TelemetryDef:
        """The telemetry packet called ``name``; KeyError if there is none."""
        for tm in self.telemetry:
            if tm.name == name:
                return tm
        raise KeyError(name)

    def parse_command(self, text: str) -> CommandCall:
        """A checked command from an operator line ``NAME arg=value ...`` (shell quoting allowed).

        Missing arguments take their defaults. Raises CommandError for an unknown command or
        argument, a missing argument, a value of the wrong type or out of range, naming the
        argument and its allowed range.
        """
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise CommandError(f"cannot read command line {text!r}: {exc}") from None
        if not words:
            raise CommandError("empty command line; write NAME arg=value ..., e.g. 'DRIVE_TO lat=-89.45 lon=222.7'")
        cmd = self.command(words[0].upper())
        given: dict[str, str] = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise CommandError(f"{cmd.name}: {word!r} is not arg=value")
            if key in given:
                raise CommandError(f"{cmd.name}: argument {key!r} given twice")
            given[key] = value
        return CommandCall.checked(cmd, given)


def _unique(what: str, values: list) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what}: {value!r}")
        seen.add(value)


@dataclass(frozen=True)
class CommandCall:
    """A command with its argument values (engineering units, enum names), in dictionary order."""

    command: CommandDef
    args: dict[str, Value]

    @classmethod
    def checked(cls, command: CommandDef, given: dict[str, Value]) -> CommandCall:
        """Check ``given`` against ``command`` (types, ranges, defaults); CommandError if wrong."""
        names = [a.name for a in command.arguments]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise CommandError(f"{command.name}: unknown argument(s) {', '.join(unknown)}; it takes "
                               + (", ".join(names) if names else "none"))
        args: dict[str, Value] = {}
        for arg in command.arguments:
            if arg.name not in given:
                if arg.default is None:
                    raise CommandError(f"{command.name}: argument {arg.name!r} is required ({arg.range_text()})")
                value = arg.default
            else:
                value = given[arg.name]
            try:
                args[arg.name] = arg.check(value)
            except ValueError as exc:
                raise CommandError(f"{command.name}: argument {arg.name!r}: {exc}") from None
        return cls(command, args)

    def __str__(self) -> str:
        return " ".join([self.command.name] + [f"{k}={v}" for k, v in self.args.items()])


def load_dictionary(path: str | Path | None = None) -> Dictionary:
    """The dictionary in the YAML file ``path`` (default: the rover dictionary shipped with qamar).

    Raises DictionaryError naming the file and the faulty entry.
    """
    if path is None:
        return default_dictionary()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DictionaryError(f"cannot read dictionary {path}: {exc.strerror}") from None
    return _parse(text, str(path))


@functools.cache
def default_dictionary() -> Dictionary:
    """The SUPARCO rover dictionary shipped in this package (rover_dictionary.yaml)."""
    text = resources.files("qamar.ops").joinpath("rover_dictionary.yaml").read_text()
    return _parse(text, "rover_dictionary.yaml")


def _parse(text: str, origin: str) -> Dictionary:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DictionaryError(f"{origin} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise DictionaryError(f"{origin}: a dictionary file is a mapping with version, name, apids, commands, telemetry")
    try:
        return Dictionary.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DictionaryError(f"{origin}: {where}: {first['msg']} ({exc.error_count()} error(s)); fix the entry") from None

"""CCSDS Orbit Ephemeris Message (OEM), KVN form: reader and writer.

Follows CCSDS 502.0-B-2 (OEM 2.0) and reads 502.0-B-3 (OEM 3.0) files: a header
(``CCSDS_OEM_VERS``, ``CREATION_DATE``, ``ORIGINATOR``, optional ``MESSAGE_ID``), then one or
more segments, each a ``META_START`` ... ``META_STOP`` block, ephemeris data lines
``epoch x y z vx vy vz [ax ay az]`` (km, km/s, km/s^2) and an optional ``COVARIANCE_START`` ...
``COVARIANCE_STOP`` block of lower-triangular 6x6 matrices (km^2, km^2/s, km^2/s^2).
``COMMENT`` lines and blank lines may appear anywhere and are kept per segment.

Time: epochs are returned as TDB seconds past J2000 whatever the file's ``TIME_SYSTEM``
(UTC, TAI, TT, GPS or TDB are read; conversions by :mod:`qamar.time`). qamar **writes TDB**:
TDB is the engine's own scale, so written files round-trip exactly and never meet an ambiguous
UTC leap second; TDB is a CCSDS (SANA) time system that GMAT, Orekit and SPICE read.

The reader is tolerant of whitespace, blank lines and comments, and strict on content: any
unknown keyword, missing mandatory keyword, malformed number or epoch, data line with the
wrong number of fields, epochs out of order or outside START/STOP_TIME, or a malformed
covariance raises DataFormatError naming the file, the line number and what is wrong.
Frames and centres are passed through as written; :class:`qamar.orbit.trajectory.Trajectory`
decides which it accepts.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qamar.errors import DataFormatError
from qamar.io import atomic_write
from qamar.time import tai_s_to_tt_s, tt_s_to_tdb_s, utc_to_tdb_s

VERSIONS = ("1.0", "2.0", "3.0")
"""OEM versions the reader accepts; the writer writes 2.0."""

TIME_SYSTEMS = ("UTC", "TAI", "TT", "GPS", "TDB")
"""TIME_SYSTEM values the reader converts to TDB."""

_HEADER_KEYS = ("CREATION_DATE", "ORIGINATOR", "MESSAGE_ID")
_META_KEYS = (
    "OBJECT_NAME", "OBJECT_ID", "CENTER_NAME", "REF_FRAME", "REF_FRAME_EPOCH", "TIME_SYSTEM",
    "START_TIME", "USEABLE_START_TIME", "USEABLE_STOP_TIME", "STOP_TIME",
    "INTERPOLATION", "INTERPOLATION_DEGREE",
)
_META_REQUIRED = ("OBJECT_NAME", "OBJECT_ID", "CENTER_NAME", "REF_FRAME", "TIME_SYSTEM", "START_TIME", "STOP_TIME")
_GPS_MINUS_TAI_S = -19.0  # GPS time = TAI - 19 s exactly (IS-GPS-200)
_J2000_DATE = dt.date(2000, 1, 1)
_EPOCH_SLACK_S = 1e-6  # data epochs may exceed START/STOP_TIME by rounding of their text only

_KVN = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*(.*?)\s*$")
_EPOCH = re.compile(
    r"^(?P<y>\d{4})-(?:(?P<mo>\d{2})-(?P<d>\d{2})|(?P<doy>\d{3}))"
    r"T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2}(?:\.\d*)?)Z?$"
)


@dataclass(frozen=True)
class OemCovariance:
    """One covariance matrix: epoch (TDB s past J2000), frame (None = the segment's) and (6, 6) matrix."""

    t_tdb_s: float
    ref_frame: str | None
    matrix: np.ndarray


@dataclass(frozen=True)
class OemSegment:
    """One OEM segment; states in km and km/s about ``center_name`` on ``ref_frame`` axes.

    ``metadata`` holds every metadata keyword as read (including ``TIME_SYSTEM`` and the
    START/STOP/USEABLE times in the file's own scale); the writer ignores it and writes the
    typed fields, TDB epochs and START/STOP_TIME from the data.
    """

    object_name: str
    object_id: str
    t_tdb_s: np.ndarray
    states: np.ndarray
    center_name: str = "MOON"
    ref_frame: str = "ICRF"
    interpolation: str | None = None
    interpolation_degree: int | None = None
    accelerations_km_s2: np.ndarray | None = None
    covariances: tuple[OemCovariance, ...] = ()
    comments: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OemFile:
    """A whole OEM: version, header keywords, header comments and segments in file order."""

    version: str
    header: Mapping[str, str]
    comments: tuple[str, ...]
    segments: tuple[OemSegment, ...]


# --- epochs -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _calendar_date(year: str, month: str | None, day: str | None, day_of_year: str | None) -> dt.date | None:
    """The date of 'YYYY-MM-DD' or 'YYYY-DDD' fields, or None if there is no such day."""
    try:
        if day_of_year is None:
            return dt.date(int(year), int(month), int(day))
        number = int(day_of_year)
        if not 1 <= number <= (366 if calendar.isleap(int(year)) else 365):
            return None
        return dt.date(int(year), 1, 1) + dt.timedelta(days=number - 1)
    except ValueError:
        return None


def _epoch_parts(text: str) -> tuple[dt.date, str, float] | None:
    """(date, 'HH:MM:SS.fff' text, seconds of day) of a CCSDS epoch, or None if malformed."""
    found = _EPOCH.match(text)
    if found is None:
        return None
    year, month, day, day_of_year, hh, mm, ss = found.groups()
    date = _calendar_date(year, month, day, day_of_year)
    hour, minute, second = int(hh), int(mm), float(ss)
    if date is None or hour > 23 or minute > 59 or second >= 61.0:
        return None
    return date, f"{hh}:{mm}:{ss}", hour * 3600.0 + minute * 60.0 + second


def _uniform_seconds(date: dt.date, second_of_day: float) -> float:
    """Seconds past 2000-01-01T12:00:00 counted in a scale without leap seconds."""
    return (date - _J2000_DATE).days * 86400.0 - 43200.0 + second_of_day


def _to_tdb_s(parts: list[tuple[dt.date, str, float]], time_system: str) -> np.ndarray:
    """TDB seconds past J2000 of parsed epochs in ``time_system`` (one of TIME_SYSTEMS)."""
    if time_system == "UTC":
        return np.atleast_1d(utc_to_tdb_s([f"{d.isoformat()}T{hms}" for d, hms, _ in parts]))
    seconds = np.array([_uniform_seconds(d, s) for d, _, s in parts])
    if time_system == "TDB":
        return seconds
    if time_system == "TT":
        return np.atleast_1d(tt_s_to_tdb_s(seconds))
    tai_s = seconds - _GPS_MINUS_TAI_S if time_system == "GPS" else seconds
    return np.atleast_1d(tt_s_to_tdb_s(tai_s_to_tt_s(tai_s)))


def format_tdb_epoch(t_tdb_s: float | np.ndarray) -> str | list[str]:
    """CCSDS calendar epochs 'YYYY-MM-DDTHH:MM:SS.ffffff' (TDB) of TDB seconds past J2000.

    Rounded to the microsecond (TDB has no leap seconds, so this is plain calendar
    arithmetic). A scalar gives a str, an array a list. Raises ValueError for non-finite times.
    """
    t = np.asarray(t_tdb_s, dtype=float)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"cannot format non-finite epochs {t_tdb_s!r} (TDB seconds)")
    micro = np.round((np.atleast_1d(t) + 43200.0) * 1e6).astype(np.int64)
    stamps = np.datetime64(_J2000_DATE.isoformat(), "us") + micro.astype("timedelta64[us]")
    text = np.datetime_as_string(stamps, unit="us").tolist()
    return text[0] if t.ndim == 0 else text


# --- reader -------------------------------------------------------------------------------------


class _Reader:
    """Line-by-line state machine over one OEM text; raises DataFormatError with line numbers."""

    def __init__(self, path: Path):
        self.path = path
        self.lineno = 0

    def fail(self, what: str, lineno: int | None = None) -> DataFormatError:
        line = self.lineno if lineno is None else lineno
        return DataFormatError(f"{self.path}, line {line}: {what}; fix the file or regenerate it as CCSDS OEM (KVN).")

    def kvn(self, line: str) -> tuple[str, str]:
        found = _KVN.match(line)
        if found is None:
            raise self.fail(f"expected 'KEYWORD = value', got {line!r}")
        if not found.group(2):
            raise self.fail(f"keyword {found.group(1)} has no value")
        return found.group(1), found.group(2)

    def number(self, token: str, what: str, lineno: int | None = None) -> float:
        try:
            value = float(token)
        except ValueError:
            raise self.fail(f"{what} {token!r} is not a number", lineno) from None
        if not math.isfinite(value):
            raise self.fail(f"{what} {token!r} is not finite", lineno)
        return value

    def numbers(self, rows: list[list[str]], lines: list[int], what: str) -> np.ndarray:
        """Rows of number tokens as a float array; the first bad token fails with its line."""
        try:
            values = np.array(rows, dtype=float)
            if np.all(np.isfinite(values)):
                return values
        except ValueError:
            pass
        return np.array([[self.number(token, what, line) for token in row] for row, line in zip(rows, lines)])

    def epoch(self, text: str, what: str) -> tuple[dt.date, str, float]:
        parts = _epoch_parts(text)
        if parts is None:
            raise self.fail(f"{what} {text!r} is not a CCSDS epoch YYYY-MM-DDThh:mm:ss[.f] or YYYY-DDDThh:mm:ss[.f]")
        return parts

    def read(self, lines: list[str]) -> OemFile:
        header: dict[str, str] = {}
        header_comments: list[str] = []
        segments: list[OemSegment] = []
        version: str | None = None
        section = "header"
        seg: dict | None = None
        for self.lineno, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line:
                continue
            if line == "COMMENT" or line.startswith("COMMENT "):
                text = line[len("COMMENT"):].strip()
                (header_comments if seg is None else seg["comments"]).append(text)
                continue
            if version is None:
                key, value = self.kvn(line)
                if key != "CCSDS_OEM_VERS":
                    raise self.fail(f"the file must start with CCSDS_OEM_VERS, got {key}")
                if value not in VERSIONS:
                    raise self.fail(f"CCSDS_OEM_VERS {value} is not one of {', '.join(VERSIONS)}")
                version = value
            elif line == "META_START":
                if section == "meta" or section == "covariance":
                    raise self.fail(f"META_START inside an open {section} block")
                if seg is not None:
                    segments.append(self.finish_segment(seg))
                else:
                    self.check_header(header)
                seg = {"meta": {}, "meta_line": self.lineno, "comments": [], "epochs": [], "lines": [],
                       "rows": [], "covariances": [], "cov": None}
                section = "meta"
            elif section == "header":
                key, value = self.kvn(line)
                if key not in _HEADER_KEYS:
                    raise self.fail(f"unknown header keyword {key} (expected {', '.join(_HEADER_KEYS)} or META_START)")
                header[key] = value
            elif section == "meta":
                if line == "META_STOP":
                    self.check_meta(seg)
                    section = "data"
                    continue
                key, value = self.kvn(line)
                if key not in _META_KEYS:
                    raise self.fail(f"unknown metadata keyword {key}")
                if key in seg["meta"]:
                    raise self.fail(f"metadata keyword {key} appears twice")
                seg["meta"][key] = value
            elif section == "data":
                if line == "COVARIANCE_START":
                    section = "covariance"
                elif line in ("META_STOP", "COVARIANCE_STOP"):
                    raise self.fail(f"{line} without its START")
                else:
                    self.data_line(seg, line)
            elif section == "covariance":
                if line == "COVARIANCE_STOP":
                    self.close_covariance(seg)
                    section = "after_covariance"
                else:
                    self.covariance_line(seg, line)
            else:  # after a covariance block only a new segment may follow
                raise self.fail(f"expected META_START after COVARIANCE_STOP, got {line!r}")
        if version is None:
            raise DataFormatError(f"{self.path} is empty or has only comments; it is not a CCSDS OEM.")
        if seg is None:
            self.check_header(header)
            raise DataFormatError(f"{self.path} has no META_START: an OEM needs at least one segment.")
        if section == "meta":
            raise self.fail("the file ends inside a metadata block (no META_STOP)")
        if section == "covariance":
            raise self.fail("the file ends inside a covariance block (no COVARIANCE_STOP)")
        segments.append(self.finish_segment(seg))
        return OemFile(version, header, tuple(header_comments), tuple(segments))

    def check_header(self, header: dict[str, str]) -> None:
        for key in ("CREATION_DATE", "ORIGINATOR"):
            if key not in header:
                raise self.fail(f"the header lacks the mandatory {key}")

    def check_meta(self, seg: dict) -> None:
        meta = seg["meta"]
        missing = [k for k in _META_REQUIRED if k not in meta]
        if missing:
            raise self.fail(f"the metadata block lacks {', '.join(missing)}")
        if meta["TIME_SYSTEM"] not in TIME_SYSTEMS:
            raise self.fail(f"TIME_SYSTEM {meta['TIME_SYSTEM']} is not supported (qamar reads {', '.join(TIME_SYSTEMS)})")
        if "INTERPOLATION_DEGREE" in meta and not re.fullmatch(r"\d+", meta["INTERPOLATION_DEGREE"]):
            raise self.fail(f"INTERPOLATION_DEGREE {meta['INTERPOLATION_DEGREE']!r} is not a whole number")
        seg["bounds"] = {k: self.epoch(meta[k], k) for k in ("START_TIME", "STOP_TIME", "USEABLE_START_TIME",
                                                                "USEABLE_STOP_TIME") if k in meta}

    def data_line(self, seg: dict, line: str) -> None:
        tokens = line.split()
        if len(tokens) not in (7, 10):
            raise self.fail(f"a data line needs an epoch and 6 (or 9) numbers, got {len(tokens)} fields")
        seg["epochs"].append(self.epoch(tokens[0], "epoch"))
        seg["rows"].append(tokens[1:])  # converted all at once in finish_segment
        seg["lines"].append(self.lineno)
        if len(tokens) != len(seg["rows"][0]) + 1:
            raise self.fail("data lines mix 6 and 9 numbers in one segment")

    def covariance_line(self, seg: dict, line: str) -> None:
        if _KVN.match(line):
            key, value = self.kvn(line)
            if key == "EPOCH":
                self.close_covariance(seg)
                seg["cov"] = {"epoch": self.epoch(value, "covariance EPOCH"), "frame": None, "rows": [],
                              "line": self.lineno}
            elif key == "COV_REF_FRAME":
                if seg["cov"] is None or seg["cov"]["rows"]:
                    raise self.fail("COV_REF_FRAME must follow EPOCH, before the matrix rows")
                seg["cov"]["frame"] = value
            else:
                raise self.fail(f"unknown covariance keyword {key}")
            return
        cov = seg["cov"]
        if cov is None:
            raise self.fail("covariance rows before their EPOCH")
        row = [self.number(t, "covariance value") for t in line.split()]
        if len(cov["rows"]) == 6:
            raise self.fail("a covariance matrix has more than 6 rows")
        if len(row) != len(cov["rows"]) + 1:
            raise self.fail(f"covariance row {len(cov['rows']) + 1} needs {len(cov['rows']) + 1} numbers "
                            f"(lower triangle), got {len(row)}")
        cov["rows"].append(row)

    def close_covariance(self, seg: dict) -> None:
        cov = seg["cov"]
        if cov is None:
            return
        if len(cov["rows"]) != 6:
            raise self.fail(f"the covariance at line {cov['line']} has {len(cov['rows'])} rows, not 6")
        matrix = np.zeros((6, 6))
        for i, row in enumerate(cov["rows"]):
            matrix[i, : i + 1] = row
        matrix = matrix + np.tril(matrix, -1).T
        cov["matrix"] = matrix
        seg["covariances"].append(cov)
        seg["cov"] = None

    def finish_segment(self, seg: dict) -> OemSegment:
        meta = seg["meta"]
        if not seg["rows"]:
            raise self.fail("the segment has no ephemeris data lines", seg["meta_line"])
        rows = self.numbers(seg["rows"], seg["lines"], "value")
        time_system = meta["TIME_SYSTEM"]
        t_tdb_s = self.convert(seg["epochs"], seg["lines"], time_system)
        steps = np.diff(t_tdb_s)
        if np.any(steps <= 0.0):
            bad = int(np.flatnonzero(steps <= 0.0)[0]) + 1
            raise self.fail("epochs must increase strictly within a segment", seg["lines"][bad])
        bound_lines = [seg["meta_line"]] * len(seg["bounds"])
        bounds = dict(zip(seg["bounds"], self.convert(list(seg["bounds"].values()), bound_lines, time_system)))
        if t_tdb_s[0] < bounds["START_TIME"] - _EPOCH_SLACK_S or t_tdb_s[-1] > bounds["STOP_TIME"] + _EPOCH_SLACK_S:
            line = seg["lines"][0] if t_tdb_s[0] < bounds["START_TIME"] - _EPOCH_SLACK_S else seg["lines"][-1]
            raise self.fail(f"data epoch outside START_TIME {meta['START_TIME']} .. STOP_TIME {meta['STOP_TIME']}", line)
        covariances = tuple(
            OemCovariance(float(t), cov["frame"], cov["matrix"])
            for cov, t in zip(
                seg["covariances"],
                self.convert([c["epoch"] for c in seg["covariances"]], [c["line"] for c in seg["covariances"]],
                             time_system),
            )
        )
        degree = meta.get("INTERPOLATION_DEGREE")
        return OemSegment(
            object_name=meta["OBJECT_NAME"],
            object_id=meta["OBJECT_ID"],
            t_tdb_s=t_tdb_s,
            states=rows[:, :6].copy(),
            center_name=meta["CENTER_NAME"],
            ref_frame=meta["REF_FRAME"],
            interpolation=meta.get("INTERPOLATION"),
            interpolation_degree=None if degree is None else int(degree),
            accelerations_km_s2=rows[:, 6:9].copy() if rows.shape[1] == 9 else None,
            covariances=covariances,
            comments=tuple(seg["comments"]),
            metadata=dict(meta),
        )

    def convert(self, parts: list, lines: list[int], time_system: str) -> np.ndarray:
        """TDB seconds of parsed epochs; a conversion error names the first bad line."""
        if not parts:
            return np.zeros(0)
        try:
            return _to_tdb_s(parts, time_system)
        except DataFormatError:
            for part, line in zip(parts, lines):
                try:
                    _to_tdb_s([part], time_system)
                except DataFormatError as exc:
                    raise self.fail(str(exc), line) from None
            raise


def read_oem(path: str | Path) -> OemFile:
    """Read a CCSDS OEM (KVN, versions 1.0-3.0) into TDB epochs and km, km/s states.

    Raises DataFormatError naming the line for anything malformed (see the module docstring),
    EpochOutOfRangeError for UTC epochs before 1972, and OSError if the file cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path} is not UTF-8/ASCII text ({exc}); is it an OEM in KVN form?") from None
    return _Reader(path).read(text.splitlines())


# --- writer -------------------------------------------------------------------------------------


def _check_for_writing(seg: OemSegment) -> None:
    t = np.asarray(seg.t_tdb_s, dtype=float)
    states = np.asarray(seg.states, dtype=float)
    if t.ndim != 1 or len(t) == 0 or states.shape != (len(t), 6):
        raise ValueError(f"an OEM segment needs n epochs and (n, 6) states, got {t.shape} and {states.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(states))):
        raise ValueError("cannot write non-finite epochs or states to an OEM")
    if np.any(np.diff(t) <= 0.0):
        raise ValueError("OEM epochs must increase strictly within a segment")
    if seg.accelerations_km_s2 is not None and np.shape(seg.accelerations_km_s2) != (len(t), 3):
        raise ValueError("OEM accelerations must be (n, 3) like the epochs")
    for name in (seg.object_name, seg.object_id, seg.center_name, seg.ref_frame):
        if not name or "\n" in name or name != name.strip():
            raise ValueError(f"OEM metadata value {name!r} must be a non-empty single line without edge spaces")


def _segment_lines(seg: OemSegment) -> list[str]:
    t = np.asarray(seg.t_tdb_s, dtype=float)
    meta = [
        ("OBJECT_NAME", seg.object_name),
        ("OBJECT_ID", seg.object_id),
        ("CENTER_NAME", seg.center_name),
        ("REF_FRAME", seg.ref_frame),
        ("TIME_SYSTEM", "TDB"),
        ("START_TIME", format_tdb_epoch(t[0])),
        ("STOP_TIME", format_tdb_epoch(t[-1])),
    ]
    if seg.interpolation is not None:
        meta.append(("INTERPOLATION", seg.interpolation))
    if seg.interpolation_degree is not None:
        meta.append(("INTERPOLATION_DEGREE", str(seg.interpolation_degree)))
    out = ["", "META_START", *(f"{k} = {v}" for k, v in meta), "META_STOP", ""]
    out += [f"COMMENT {c}" for c in seg.comments]
    acc = seg.accelerations_km_s2
    for k, (epoch, state) in enumerate(zip(format_tdb_epoch(t), np.asarray(seg.states, dtype=float).tolist())):
        line = (f"{epoch} {state[0]:.9f} {state[1]:.9f} {state[2]:.9f} "
                f"{state[3]:.12f} {state[4]:.12f} {state[5]:.12f}")
        if acc is not None:
            line += " " + " ".join(f"{a:.15e}" for a in acc[k])
        out.append(line)
    if seg.covariances:
        out += ["", "COVARIANCE_START"]
        for cov in seg.covariances:
            out.append(f"EPOCH = {format_tdb_epoch(cov.t_tdb_s)}")
            if cov.ref_frame is not None:
                out.append(f"COV_REF_FRAME = {cov.ref_frame}")
            out += [" ".join(f"{x:.16e}" for x in cov.matrix[i, : i + 1]) for i in range(6)]
        out.append("COVARIANCE_STOP")
    return out


def write_oem(
    path: str | Path,
    segments: Sequence[OemSegment],
    *,
    originator: str = "qamar",
    comments: Sequence[str] = (),
) -> Path:
    """Write segments as a CCSDS OEM 2.0 (KVN) with TDB epochs, atomically.

    States are written in km (9 decimals) and km/s (12 decimals), epochs to the microsecond;
    ``comments`` go into the header. The file appears only when complete (see
    :func:`qamar.io.atomic_write`). Raises ValueError for segments that cannot make a valid
    OEM (empty, non-finite, epochs not increasing, multi-line names) before writing anything.
    """
    if not segments:
        raise ValueError("an OEM needs at least one segment")
    for seg in segments:
        _check_for_writing(seg)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    lines = ["CCSDS_OEM_VERS = 2.0", *(f"COMMENT {c}" for c in comments),
             f"CREATION_DATE = {created}", f"ORIGINATOR = {originator}"]
    for seg in segments:
        lines += _segment_lines(seg)
    path = Path(path)
    with atomic_write(path) as stream:
        stream.write("\n".join(lines) + "\n")
    return path

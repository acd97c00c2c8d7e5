"""Data budget: which station downlinks when, how much each pass carries, and the on-board backlog.

- :func:`schedule_downlinks` turns passes (possibly overlapping: several stations see the
  Moon at once) into :class:`Track` s, one station at a time. The spacecraft stays with its
  station until LOS unless a station ranked higher in ``DownlinkPolicy.station_priority``
  rises; at each handover it takes the best-ranked visible station, ties going to the pass
  that lasts longest. Each track loses ``setup_s`` to acquisition.
- :func:`downlink_capacity` gives the bits of each pass on its own (no overlap resolution).
- :func:`simulate_backlog` runs captures (epoch, bits) through on-board storage and the
  tracks: first in, first out; a capture that does not fit in the free storage is dropped
  whole; the downlink drains the queue at the track's rate. It returns the backlog over time
  and, per capture, whether it was stored and when its last bit reached the ground.

Rates come from :mod:`qamar.comms.link` (fixed, or the highest listed rate that keeps the
margin at the pass's range). Times are TDB seconds past J2000 (reception time at the station).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from qamar.comms.link import Radio, g_over_t_db_k, margin_db, pass_volume_bits, rate_profile_bps
from qamar.comms.visibility import Contacts, Pass, union_intervals
from qamar.io import atomic_write
from qamar.time import tdb_s_to_utc


class DownlinkPolicy(BaseModel):
    """How passes become downlink tracks.

    ``station_priority``: station names, best first (unlisted stations rank after, equally);
    ``setup_s``: acquisition time lost at the start of every track; ``min_track_s``: shorter
    useful tracks are not scheduled.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    station_priority: tuple[str, ...] = ()
    setup_s: float = Field(default=300.0, ge=0.0)
    min_track_s: float = Field(default=0.0, ge=0.0)


@dataclass(frozen=True)
class Track:
    """A scheduled downlink: ``pass_`` used from ``start_tdb_s`` (setup included) to ``stop_tdb_s``.

    ``t_tdb_s`` (n,) runs from the end of setup to the stop; ``rate_bps`` (n - 1,) is the rate
    held over each interval.
    """

    pass_: Pass
    start_tdb_s: float
    stop_tdb_s: float
    t_tdb_s: np.ndarray
    rate_bps: np.ndarray

    @property
    def station(self) -> str:
        """Station name."""
        return self.pass_.station.name

    @property
    def bits(self) -> float:
        """Bits the track can carry."""
        return float(np.sum(self.rate_bps * np.diff(self.t_tdb_s)))


def downlink_capacity(passes: Sequence[Pass], radio: Radio, setup_s: float = 0.0) -> np.ndarray:
    """Bits each pass can carry on its own (overlaps not resolved): (n,) in the passes' order."""
    return np.array([pass_volume_bits(p, radio, setup_s) for p in passes], dtype=float)


def _rank(policy: DownlinkPolicy):
    order = {name.strip().lower(): i for i, name in enumerate(policy.station_priority)}
    return lambda p: order.get(p.station.name.lower(), len(order))


def schedule_downlinks(passes: Sequence[Pass], radio: Radio, policy: DownlinkPolicy | None = None) -> list[Track]:
    """One-station-at-a-time downlink tracks from (possibly overlapping) passes, in time order.

    Priority names that match no pass are ignored. Tracks whose useful time (after setup) is
    not longer than ``min_track_s`` are left out. ``policy`` defaults to ``DownlinkPolicy()``.
    """
    policy = policy or DownlinkPolicy()
    rank = _rank(policy)
    boundaries = np.unique([t for p in passes for t in (p.aos_tdb_s, p.los_tdb_s)])
    by_aos = sorted(passes, key=lambda p: p.aos_tdb_s)
    pieces: list[tuple[Pass, float, float]] = []
    current: Pass | None = None
    since = 0.0
    visible: list[Pass] = []
    next_pass = 0
    for t in boundaries:
        while next_pass < len(by_aos) and by_aos[next_pass].aos_tdb_s <= t:
            visible.append(by_aos[next_pass])
            next_pass += 1
        visible = [p for p in visible if t < p.los_tdb_s]
        if current is not None and t < current.los_tdb_s and all(rank(p) >= rank(current) for p in visible):
            continue
        if current is not None:
            pieces.append((current, since, float(min(t, current.los_tdb_s))))
        current = min(visible, key=lambda p: (rank(p), -p.los_tdb_s), default=None)
        since = float(t)
    tracks = []
    for pass_, start, stop in pieces:
        useful_start = start + policy.setup_s
        if stop - useful_start <= policy.min_track_s or stop <= useful_start:
            continue
        inside = (pass_.t_tdb_s > useful_start) & (pass_.t_tdb_s < stop)
        t = np.concatenate([[useful_start], pass_.t_tdb_s[inside], [stop]])
        range_km = np.interp(t, pass_.t_tdb_s, pass_.range_km)
        tracks.append(Track(pass_, start, stop, t, rate_profile_bps(t, range_km, radio, pass_.station)))
    return tracks


@dataclass(frozen=True)
class BacklogResult:
    """On-board data over time and the fate of each capture (arrays in the captures' input order).

    Timeline: ``t_tdb_s``, ``backlog_bits`` (stored, not yet downlinked) and
    ``delivered_bits_cum`` (downlinked so far), piecewise linear between the epochs (a capture
    appears as two points at the same epoch). ``stored`` says whether each capture fitted;
    ``delivered_tdb_s`` is when its last bit reached the ground (NaN: dropped or still on board
    at the end).
    """

    t_tdb_s: np.ndarray
    backlog_bits: np.ndarray
    delivered_bits_cum: np.ndarray
    capture_tdb_s: np.ndarray
    capture_bits: np.ndarray
    stored: np.ndarray
    delivered_tdb_s: np.ndarray
    storage_bits: float

    @property
    def generated_bits(self) -> float:
        """Bits of all captures."""
        return float(self.capture_bits.sum())

    @property
    def dropped_bits(self) -> float:
        """Bits of the captures that did not fit in storage."""
        return float(self.capture_bits[~self.stored].sum())

    @property
    def delivered_bits(self) -> float:
        """Bits downlinked by the end of the timeline."""
        return float(self.delivered_bits_cum[-1])

    @property
    def remaining_bits(self) -> float:
        """Bits still on board at the end of the timeline."""
        return float(self.backlog_bits[-1])

    @property
    def peak_backlog_bits(self) -> float:
        """Highest backlog, bits."""
        return float(self.backlog_bits.max())

    @property
    def latency_s(self) -> np.ndarray:
        """Capture-to-ground delay of each delivered capture, s (NaN otherwise)."""
        return self.delivered_tdb_s - self.capture_tdb_s


def capacity_curve(tracks: Sequence[Track]) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative downlink capacity (bits) at node epochs, piecewise linear: ((n,), (n,)).

    Flat between tracks; raises ValueError if tracks overlap (they come from one schedule).
    """
    ordered = sorted(tracks, key=lambda k: k.t_tdb_s[0])
    for a, b in itertools.pairwise(ordered):
        if b.t_tdb_s[0] < a.t_tdb_s[-1] - 1e-6:
            raise ValueError("downlink tracks overlap; build them with schedule_downlinks")
    if not ordered:
        return np.zeros(0), np.zeros(0)
    t = np.concatenate([k.t_tdb_s for k in ordered])
    steps = np.concatenate([np.concatenate([[0.0], k.rate_bps * np.diff(k.t_tdb_s)]) for k in ordered])
    return t, np.cumsum(steps)


def simulate_backlog(
    captures: Sequence[tuple[float, float]] | np.ndarray,
    tracks: Sequence[Track],
    storage_bits: float,
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
) -> BacklogResult:
    """Run captures ``[(t_tdb_s, bits), ...]`` through storage and the downlink ``tracks``.

    The timeline spans ``start_tdb_s``..``stop_tdb_s`` (default: from the first capture or
    track to the last). Raises ValueError for negative bits or storage, or captures outside the
    given span.
    """
    table = np.asarray(captures, dtype=float).reshape(-1, 2)
    if np.any(table[:, 1] < 0.0) or not storage_bits >= 0.0:
        raise ValueError("capture sizes and the storage must be non-negative numbers of bits")
    order = np.argsort(table[:, 0], kind="stable")
    t_cap, bits_cap = table[order, 0].copy(), table[order, 1].copy()
    t_nodes, cum_nodes = capacity_curve(tracks)
    known = np.concatenate([t_cap, t_nodes])
    lo = float(known.min()) if start_tdb_s is None else float(start_tdb_s)
    hi = float(known.max()) if stop_tdb_s is None else float(stop_tdb_s)
    if len(t_cap) and (t_cap[0] < lo or t_cap[-1] > hi):
        raise ValueError("captures lie outside the span given to simulate_backlog; widen start/stop")
    keep = (t_nodes > lo) & (t_nodes < hi)
    level = np.interp([lo, hi], t_nodes, cum_nodes) if len(t_nodes) else np.zeros(2)
    t_nodes = np.concatenate([[lo], t_nodes[keep], [hi]])
    cum_nodes = np.concatenate([[level[0]], cum_nodes[keep], [level[1]]]) - level[0]
    t_out, b_out, s_out, stored_sorted = _backlog_kernel(t_nodes, cum_nodes, t_cap, bits_cap, float(storage_bits))
    delivered_sorted = _delivery_epochs(t_out, s_out, np.cumsum(np.where(stored_sorted, bits_cap, 0.0)), stored_sorted)
    stored = np.empty_like(stored_sorted)
    delivered = np.empty_like(delivered_sorted)
    stored[order], delivered[order] = stored_sorted, delivered_sorted
    return BacklogResult(t_out, b_out, s_out, table[:, 0].copy(), table[:, 1].copy(), stored, delivered, float(storage_bits))


def _delivery_epochs(t: np.ndarray, served: np.ndarray, cum_stored: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Epoch at which the served total first reaches each stored capture's cumulative total."""
    target = cum_stored - 1e-6  # tolerance for the rounding of summed bit counts
    j = np.searchsorted(served, target, side="left")
    ok = stored & (target <= served[-1])
    j = np.clip(j, 1, len(t) - 1)
    span = served[j] - served[j - 1]
    frac = np.where(span > 0.0, (target - served[j - 1]) / np.where(span > 0.0, span, 1.0), 1.0)
    epochs = t[j - 1] + np.clip(frac, 0.0, 1.0) * (t[j] - t[j - 1])
    epochs = np.where(target <= served[0], t[0], epochs)
    return np.where(ok, epochs, np.nan)


@njit(cache=True, fastmath=False, nogil=True)
def _backlog_kernel(t_nodes, cum_nodes, t_cap, bits_cap, storage_bits):
    """Event loop of the FIFO queue: timeline (t, backlog, served) and which captures were stored.

    ``t_nodes``/``cum_nodes``: cumulative capacity (bits), piecewise linear, covering every
    capture epoch. The queue empties at an exact epoch inside a node interval, which is emitted.
    """
    n, m = len(t_nodes), len(t_cap)
    size = 2 * n + 3 * m + 1
    t_out, b_out, s_out = np.empty(size), np.empty(size), np.empty(size)
    stored = np.zeros(m, dtype=np.bool_)
    t_out[0], b_out[0], s_out[0] = t_nodes[0], 0.0, 0.0
    k, i, j = 1, 1, 0
    t_now, backlog, served = t_nodes[0], 0.0, 0.0
    while i < n or j < m:
        take_capture = j < m and (i >= n or t_cap[j] <= t_nodes[i])
        t_next = t_cap[j] if take_capture else t_nodes[i]
        rate = 0.0
        if i < n and t_nodes[i] > t_nodes[i - 1]:
            rate = (cum_nodes[i] - cum_nodes[i - 1]) / (t_nodes[i] - t_nodes[i - 1])
        capacity = rate * (t_next - t_now)
        if backlog > 0.0 and capacity >= backlog:
            t_zero = t_now + backlog / rate
            served += backlog
            backlog = 0.0
            if t_zero < t_next:
                t_out[k], b_out[k], s_out[k] = t_zero, 0.0, served
                k += 1
        elif backlog > 0.0:
            backlog -= capacity
            served += capacity
        t_now = t_next
        t_out[k], b_out[k], s_out[k] = t_now, backlog, served
        k += 1
        if take_capture:
            if backlog + bits_cap[j] <= storage_bits:
                backlog += bits_cap[j]
                stored[j] = True
                t_out[k], b_out[k], s_out[k] = t_now, backlog, served
                k += 1
            j += 1
        else:
            i += 1
    return t_out[:k], b_out[:k], s_out[:k], stored


# --- contact products ---------------------------------------------------------------------------


def contact_rows(contacts: Contacts, radio: Radio, setup_s: float = 0.0) -> list[dict]:
    """One dict per pass (AOS order): the columns of ``contacts.csv``.

    Data volume is the pass's own capacity at the radio's rate(s), before overlaps between
    stations are resolved.
    """
    rows = []
    for p in contacts.passes:
        doppler_khz = p.doppler_hz(radio.frequency_hz) / 1e3
        aos, los = tdb_s_to_utc(np.array([p.aos_tdb_s, p.los_tdb_s]), digits=1)
        rows.append({
            "station": p.station.name,
            "aos_utc": aos,
            "los_utc": los,
            "duration_min": round(p.duration_s / 60.0, 2),
            "max_elev_deg": round(p.max_elev_deg, 2),
            "min_range_km": round(p.min_range_km, 1),
            "max_range_km": round(p.max_range_km, 1),
            "mean_light_time_s": round(_time_mean(p.t_tdb_s, p.light_time_s), 4),
            "doppler_min_khz": round(float(doppler_khz.min()), 3),
            "doppler_max_khz": round(float(doppler_khz.max()), 3),
            "data_volume_mbit": round(pass_volume_bits(p, radio, setup_s) / 1e6, 4),
            "aos_at_span_start": p.aos_at_span_start,
            "los_at_span_end": p.los_at_span_end,
        })
    return rows


def write_contacts_csv(path: str | Path, contacts: Contacts, radio: Radio, setup_s: float = 0.0) -> Path:
    """Write :func:`contact_rows` as CSV (header line, one pass a row), atomically; returns the path."""
    rows = contact_rows(contacts, radio, setup_s)
    path = Path(path)
    with atomic_write(path) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else ["station", "aos_utc", "los_utc"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _time_mean(t: np.ndarray, values: np.ndarray) -> float:
    """Time-weighted mean of samples (trapezoids); the value itself for a zero-length pass."""
    span = t[-1] - t[0]
    return float(np.trapezoid(values, t) / span) if span > 0 else float(values[0])


def contact_summary(contacts: Contacts, radio: Radio, policy: DownlinkPolicy | None = None) -> dict:
    """JSON-ready summary: per-station contact hours and passes, coverage, light time, downlink.

    ``total_contact_h`` per station; ``passes`` the list of :func:`contact_rows`;
    ``any_station_contact_h`` the time at least one station sees the spacecraft;
    ``downlink`` the one-station-at-a-time schedule (hours and Mbit per station); per station
    ``margin_db_at_lowest_rate`` is the link margin at its mean pass range and the lowest listed
    rate.
    ``policy`` defaults to ``DownlinkPolicy()``.
    """
    policy = policy or DownlinkPolicy()
    rows = contact_rows(contacts, radio, policy.setup_s)
    tracks = schedule_downlinks(contacts.passes, radio, policy)
    union = union_intervals([(p.aos_tdb_s, p.los_tdb_s) for p in contacts.passes])
    span_h = (contacts.stop_tdb_s - contacts.start_tdb_s) / 3600.0
    stations = []
    for s in contacts.stations:
        own = contacts.of(s.name)
        mean_range = np.mean([np.mean(p.range_km) for p in own]) if own else np.nan
        stations.append({
            "name": s.name,
            "lat_deg": s.lat_deg,
            "lon_deg": s.lon_deg,
            "height_m": s.height_m,
            "dish_m": s.dish_m,
            "g_over_t_db_k": round(g_over_t_db_k(s, radio.frequency_hz), 2),
            "passes": len(own),
            "total_contact_h": round(sum(p.duration_s for p in own) / 3600.0, 4),
            "max_elev_deg": round(contacts.max_elev_deg[s.name], 2),
            "margin_db_at_lowest_rate": None if not own else round(float(margin_db(mean_range, radio.rates_bps[0], radio, s)), 2),
            "source": s.source,
        })
    light = [(_time_mean(p.t_tdb_s, p.light_time_s), p.duration_s) for p in contacts.passes]
    return {
        "start_utc": tdb_s_to_utc(contacts.start_tdb_s, 0),
        "stop_utc": tdb_s_to_utc(contacts.stop_tdb_s, 0),
        "span_h": round(span_h, 4),
        "min_elev_deg": contacts.min_elev_deg,
        "total_contact_h": {s["name"]: s["total_contact_h"] for s in stations},
        "pass_count": {s["name"]: s["passes"] for s in stations},
        "any_station_contact_h": round(float(np.sum(union[:, 1] - union[:, 0])) / 3600.0, 4),
        "mean_light_time_s": round(float(np.average([m for m, _ in light], weights=[d for _, d in light])), 4) if light else None,
        "stations": stations,
        "downlink": {
            "frequency_hz": radio.frequency_hz,
            "rates_bps": list(radio.rates_bps),
            "eirp_dbw": round(radio.eirp_dbw, 2),
            "setup_s": policy.setup_s,
            "station_priority": list(policy.station_priority),
            "tracks": len(tracks),
            "scheduled_h": {s.name: round(sum(k.stop_tdb_s - k.start_tdb_s for k in tracks if k.station == s.name) / 3600.0, 4)
                            for s in contacts.stations},
            "scheduled_mbit": {s.name: round(sum(k.bits for k in tracks if k.station == s.name) / 1e6, 4)
                               for s in contacts.stations},
            "total_mbit": round(sum(k.bits for k in tracks) / 1e6, 4),
        },
        "passes": rows,
    }

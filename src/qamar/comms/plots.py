"""Communications plots as PNG files: the contact timeline and the on-board backlog.

Drawn with matplotlib's object API on the Agg canvas and written atomically, like
:mod:`qamar.orbit.plots` (whose UTC time axis they share).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from qamar.comms.budget import BacklogResult, Track
from qamar.comms.visibility import Contacts
from qamar.plotting import save_png, utc_datetimes, utc_time_axis
from qamar.time import tdb_s_to_utc


def plot_contacts(
    contacts: Contacts,
    path: str | Path,
    *,
    tracks: Sequence[Track] = (),
    span_tdb_s: tuple[float, float] | None = None,
    title: str | None = None,
) -> Path:
    """Contact timeline: one row per station, a bar from AOS to LOS for each pass; a PNG.

    Scheduled downlink ``tracks`` (if given) are drawn darker inside the passes. ``span_tdb_s``
    zooms on part of the span (a week reads better than six months). Stations without a pass
    keep their (empty) row. Raises OSError if the folder is not writable.
    """
    names = [s.name for s in contacts.stations]
    fig = Figure(figsize=(11, 1.2 + 0.45 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    for row, name in enumerate(names):
        passes = contacts.of(name)
        ax.broken_barh(_day_spans([(p.aos_tdb_s, p.los_tdb_s) for p in passes]), (row - 0.35, 0.7),
                       color="tab:blue", alpha=0.45)
        own = [(k.start_tdb_s, k.stop_tdb_s) for k in tracks if k.station == name]
        ax.broken_barh(_day_spans(own), (row - 0.2, 0.4), color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.invert_yaxis()
    lo, hi = span_tdb_s or (contacts.start_tdb_s, contacts.stop_tdb_s)
    ax.set_xlim(*date2num(utc_datetimes(np.array([lo, hi]))))
    utc_time_axis(ax)
    span = f"{tdb_s_to_utc(lo, 0)} to {tdb_s_to_utc(hi, 0)}"
    legend = ", scheduled downlinks dark" if tracks else ""
    ax.set_title(title or f"Contacts above {contacts.min_elev_deg:g} deg, clear of the Moon{legend}: {span}")
    return save_png(fig, path)


def _day_spans(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(start, width) in matplotlib date numbers (days) of (start, stop) TDB epochs, for broken_barh."""
    if not spans:
        return []
    edges = date2num(utc_datetimes(np.asarray(spans, dtype=float).ravel())).reshape(-1, 2)
    return [(float(lo), float(hi - lo)) for lo, hi in edges]


def plot_backlog(result: BacklogResult, path: str | Path, *, title: str | None = None) -> Path:
    """On-board backlog (Mbit) against UTC with the storage limit, and delivered/dropped totals; a PNG.

    Raises OSError if the folder is not writable.
    """
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot()
    when = utc_datetimes(result.t_tdb_s)
    ax.plot(when, result.backlog_bits / 1e6, lw=0.9, color="tab:blue", label="on board")
    ax.axhline(result.storage_bits / 1e6, color="tab:red", lw=0.8, ls="--", label="storage")
    ax.set_ylabel("backlog (Mbit)")
    ax.set_ylim(bottom=0.0)
    twin = ax.twinx()
    twin.plot(when, result.delivered_bits_cum / 1e6, lw=0.9, color="tab:green", label="delivered (cumulative)")
    twin.set_ylabel("delivered (Mbit)")
    twin.set_ylim(bottom=0.0)
    utc_time_axis(ax)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    totals = (f"generated {result.generated_bits / 1e6:.1f} Mbit, delivered {result.delivered_bits / 1e6:.1f}, "
              f"dropped {result.dropped_bits / 1e6:.1f}, left on board {result.remaining_bits / 1e6:.1f}")
    ax.set_title(title or f"On-board data backlog: {totals}")
    return save_png(fig, path)

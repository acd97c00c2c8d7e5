"""Plots of lifetime studies as PNG files: lifetime histogram and CDF, lifetime over a sweep.

Each function takes a study's results table (:func:`qamar.orbit.study.run_study`: one row per
member, ``lifetime_days`` NaN for members that survive the horizon), draws with matplotlib's
object API on the Agg canvas and writes the PNG atomically. Survivors are always shown, never
dropped: a separate bar, the CDF's ceiling, or a marker at the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from qamar.errors import QamarError
from qamar.plotting import save_png

LABELS = {
    "peri_alt_km": "periapsis altitude (km)",
    "apo_alt_km": "apoapsis altitude (km)",
    "inc_deg": "inclination (deg)",
    "raan_deg": "RAAN (deg)",
    "argp_deg": "argument of periapsis (deg)",
    "ta_deg": "true anomaly (deg)",
}
"""Axis labels of the parameters a sweep can vary."""


def _lifetimes(results: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    life = results["lifetime_days"].to_numpy(dtype=float)
    return life, np.isfinite(life)


def plot_lifetime_histogram(results: pd.DataFrame, horizon_days: float, path: str | Path, *, title: str = "") -> Path:
    """Histogram of the lifetimes (days) of the members that impact, plus one hatched bar for the
    survivors past ``horizon_days``. Raises OSError if the folder is not writable."""
    life, impacting = _lifetimes(results)
    n = len(life)
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0.0, horizon_days, max(5, min(40, int(np.sqrt(max(impacting.sum(), 1))) * 2)) + 1)
    width = bins[1] - bins[0]
    if impacting.any():
        ax.hist(life[impacting], bins=bins, color="tab:red", alpha=0.8, label=f"impact ({impacting.sum()} of {n})")
    survivors = int(n - impacting.sum())
    beyond = horizon_days + 1.5 * width  # the survivors' bar, right of the horizon line
    if survivors:
        ax.bar(beyond, survivors, width=width, color="tab:green", hatch="//", alpha=0.7,
               label=f"survive {horizon_days:g} days ({survivors} of {n})")  # fmt: skip
    ax.axvline(horizon_days, color="grey", lw=0.8, ls="--")
    ax.set_xlim(0.0, horizon_days + 2.5 * width)
    ticks = [t for t in ax.get_xticks() if 0.0 <= t <= horizon_days - 0.5 * width] + [horizon_days, beyond]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks[:-1]] + [f"> {horizon_days:g}"])
    ax.set_xlabel("lifetime (days from the start epoch)")
    ax.set_ylabel("members")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Lifetime distribution{': ' + title if title else ''}")
    return save_png(fig, path)


def plot_lifetime_cdf(results: pd.DataFrame, horizon_days: float, path: str | Path, *, title: str = "") -> Path:
    """Empirical CDF of the lifetime: fraction of members impacted by each day up to ``horizon_days``,
    with the 5/50/95 % levels marked. Raises OSError if the folder is not writable."""
    life, impacting = _lifetimes(results)
    n = len(life)
    days = np.sort(life[impacting])
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.concatenate([[0.0], days, [horizon_days]])
    y = np.concatenate([[0.0], np.arange(1, days.size + 1) / n, [days.size / n]])
    ax.step(x, y, where="post", color="tab:blue", lw=1.5, label="fraction impacted")
    for level in (0.05, 0.5, 0.95):
        ax.axhline(level, color="grey", lw=0.6, ls=":")
        if days.size / n >= level:
            day = days[int(np.ceil(level * n)) - 1]
            ax.plot([day], [level], "o", color="tab:red", ms=4)
            ax.annotate(f"{level:.0%}: {day:.1f} d", (day, level), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlim(0.0, horizon_days)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("days from the start epoch")
    ax.set_ylabel(f"fraction of {n} members impacted")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"Lifetime CDF{': ' + title if title else ''}")
    return save_png(fig, path)


def plot_sweep(
    results: pd.DataFrame,
    parameters: list[str],
    horizon_days: float,
    path: str | Path,
    *,
    title: str = "",
    marks: Sequence[float] = (),
) -> Path:
    """Lifetime over a sweep: a line against one swept parameter, or a heatmap over two.

    Survivors are drawn at the horizon (a green triangle on the line; the colour bar's top
    colour on the heatmap). The lifetime axis is logarithmic when lifetimes span more than a
    factor of 20. ``marks``: values of the (first) swept parameter to draw as dotted reference
    lines, e.g. inclinations from the literature. Raises QamarError unless one or two
    parameters are given, OSError if the folder is not writable.
    """
    if len(parameters) not in (1, 2):
        raise QamarError(f"a sweep plot shows one or two swept parameters, not {len(parameters)} ({parameters}); "
                         "sweep fewer parameters or plot the Parquet table yourself.")  # fmt: skip
    life, impacting = _lifetimes(results)
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    if len(parameters) == 1:
        (name,) = parameters
        order = np.argsort(results[name].to_numpy())
        x = results[name].to_numpy(dtype=float)[order]
        y = np.where(impacting, life, horizon_days)[order]
        alive = ~impacting[order]
        ax.plot(x, y, color="tab:blue", lw=1.0, marker=".", ms=5, label="lifetime")
        if alive.any():
            ax.plot(x[alive], y[alive], "^", color="tab:green", ms=7, label=f"survives {horizon_days:g} days")
        ax.axhline(horizon_days, color="tab:green", lw=0.6, ls="--")
        finite = y[y > 0]
        if finite.size and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
            plain = FuncFormatter(lambda value, _: f"{value:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel("lifetime (days)")
        ax.legend(loc="best")
        ax.grid(True, which="both", alpha=0.3)
    else:
        xname, yname = parameters
        grid = results.assign(_life=np.where(impacting, life, np.inf)).pivot_table(
            index=yname, columns=xname, values="_life", aggfunc="first"
        )
        cmap = colormaps["magma"].with_extremes(over="tab:green", bad="lightgrey")  # no green inside magma
        values = np.ma.masked_invalid(np.where(np.isinf(grid.to_numpy()), horizon_days * 2, grid.to_numpy()))
        mesh = ax.pcolormesh(grid.columns.to_numpy(dtype=float), grid.index.to_numpy(dtype=float), values,
                             shading="nearest", cmap=cmap, vmin=0.0, vmax=horizon_days)  # fmt: skip
        bar = fig.colorbar(mesh, ax=ax, extend="max")
        bar.set_label(f"lifetime (days); green: survives {horizon_days:g} days")
        ax.set_xlabel(LABELS.get(xname, xname))
        ax.set_ylabel(LABELS.get(yname, yname))
    for k, value in enumerate(marks):
        ax.axvline(value, color="tab:purple", lw=1.0, ls=":", label="reference" if k == 0 else None)
    if len(marks) and len(parameters) == 1:
        ax.legend(loc="best")
    ax.set_title(f"Lifetime sweep{': ' + title if title else ''}")
    return save_png(fig, path)

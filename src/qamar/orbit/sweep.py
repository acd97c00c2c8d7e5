"""Sweeps: lifetime over a grid of initial orbits (inclination, apsis altitudes, node...).

A grid gives each of the ELEMENT_COLUMNS (``peri_alt_km``, ``apo_alt_km``, ``inc_deg``,
``raan_deg``, ``argp_deg``, ``ta_deg``) one value or several; the sweep is their Cartesian
product, run by :func:`qamar.orbit.study.run_study` (Dask, resumable) with the nominal
spacecraft. Grid text, as on the command line: a value (``100``), a range with an *inclusive*
stop (``0:180:2`` is 0, 2, ..., 180), or a comma list of values and ranges (``27,50,60:90:10``).
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qamar.errors import QamarError
from qamar.orbit.study import (
    ELEMENT_COLUMNS,
    StudyRun,
    StudySetup,
    members_from_elements,
    run_study,
    write_results,
)

_RANGE_EPS = 1e-9  # a stop within this many steps of the last point counts as reached


def parse_grid(text: str, name: str = "value") -> np.ndarray:
    """Sorted distinct values of a grid text: ``100``, ``0:180:2`` (inclusive stop) or a comma list.

    ``name`` labels error messages (e.g. ``--inc-deg``). Raises QamarError for text that is
    not a number, a range without a positive step, or a range whose stop is below its start.
    """
    values: list[float] = []
    for item in str(text).split(","):
        item = item.strip()
        parts = item.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise QamarError(
                f"{name} {text!r}: {item!r} is not a number or a start:stop:step range (e.g. 100, 0:180:2, 27,50,76)."
            ) from None
        if not all(math.isfinite(x) for x in numbers):
            raise QamarError(f"{name} {text!r}: give finite numbers.")
        if len(numbers) == 1:
            values.append(numbers[0])
            continue
        if len(numbers) != 3:
            raise QamarError(f"{name} {text!r}: a range is start:stop:step with an inclusive stop, e.g. 0:180:2.")
        start, stop, step = numbers
        if step <= 0 or stop < start:
            raise QamarError(
                f"{name} {text!r}: a range needs a positive step and stop >= start, e.g. 0:180:2 for 0, 2, ..., 180."
            )
        count = math.floor((stop - start) / step + _RANGE_EPS) + 1
        values.extend(np.round(start + step * np.arange(count), 10).tolist())
    return np.unique(np.array(values, dtype=float))


@dataclass(frozen=True)
class Sweep:
    """A finished sweep: ``run`` (the study), the ``parameters`` that vary (in ELEMENT_COLUMNS
    order) and the grid points ``dropped`` because their apoapsis lay below their periapsis."""

    run: StudyRun
    parameters: list[str]
    dropped: int


def sweep_members(setup: StudySetup, grids: Mapping[str, Sequence[float]]) -> tuple[pd.DataFrame, list[str], int]:
    """Member table of the Cartesian product of ``grids`` (ELEMENT_COLUMNS -> values).

    Returns the members, the names of the parameters with more than one value, and how many
    points were dropped because apoapsis < periapsis there. Raises QamarError for an unknown
    or missing parameter or an empty grid, InvalidOrbitError for a point below the surface.
    """
    unknown = sorted(set(grids) - set(ELEMENT_COLUMNS))
    missing = [c for c in ELEMENT_COLUMNS if c not in grids]
    if unknown or missing:
        raise QamarError(f"a sweep grid needs exactly {list(ELEMENT_COLUMNS)}; unknown {unknown}, missing {missing}.")
    axes = [np.atleast_1d(np.asarray(grids[c], dtype=float)) for c in ELEMENT_COLUMNS]
    if any(a.size == 0 for a in axes):
        raise QamarError("every sweep parameter needs at least one value.")
    points = pd.DataFrame(list(itertools.product(*axes)), columns=list(ELEMENT_COLUMNS))
    keep = points["apo_alt_km"] >= points["peri_alt_km"]
    if not keep.any():
        raise QamarError("every grid point has its apoapsis below its periapsis; give apoapsis altitudes >= periapsis.")
    varying = [c for c, a in zip(ELEMENT_COLUMNS, axes) if a.size > 1]
    return members_from_elements(setup, points[keep]), varying, int((~keep).sum())


def run_sweep(
    setup: StudySetup,
    grids: Mapping[str, Sequence[float]],
    out: str | Path,
    *,
    plot: str | Path | None = None,
    marks: Sequence[float] = (),
    scheduler: str | None = None,
    workers: int = 2,
    batch_size: int | None = None,
    progress: bool = True,
) -> Sweep:
    """Lifetime over the grid, written to the Parquet file ``out`` (and a PNG ``plot``, with
    reference lines at ``marks`` of the first swept parameter).

    Finished batches go to a hidden parts folder beside ``out`` (``.NAME.parts``), so an
    interrupted sweep resumes; it is removed once ``out`` is written. The table has one row per
    grid point: ``member_id``, ELEMENT_COLUMNS, the initial state, the spacecraft and the
    result columns; the setup is in the Parquet metadata. Raises what :func:`sweep_members`,
    :func:`~qamar.orbit.study.run_study` and the plot raise.
    """
    out = Path(out)
    members, varying, dropped = sweep_members(setup, grids)
    if plot and len(varying) not in (1, 2):
        raise QamarError(f"a sweep plot shows one or two swept parameters; this sweep varies {len(varying)} {varying}.")
    parts = out.with_name(f".{out.name}.parts")
    run = run_study(setup, members, parts, scheduler=scheduler, workers=workers, batch_size=batch_size,
                    progress=progress)  # fmt: skip
    write_results(out, run.results, setup, {"swept": varying})
    if plot:
        from qamar.orbit.study_plots import plot_sweep  # matplotlib only when plotting

        f = setup.forces
        fixed = ", ".join(f"{c} {members[c].iloc[0]:g}" for c in ELEMENT_COLUMNS if c not in varying)
        plot_sweep(run.results, varying, setup.horizon_days, plot, marks=marks,
                   title=f"{f.field.name} {f.degree}x{f.degree}, {fixed}")  # fmt: skip
    shutil.rmtree(parts, ignore_errors=True)
    return Sweep(run, varying, dropped)

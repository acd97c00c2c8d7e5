"""An imaging plan: which opportunities to shoot so that every image fits on board and gets home.

Greedy by rank. Opportunities of all targets are taken best score first; each candidate image
(one per opportunity, at its best time, of its camera's compressed size) is kept only if, with
every image kept so far, the on-board store never overflows and, when ``require_delivery``,
every kept image reaches the ground before the end of the span. The store and the downlink are
those of :func:`qamar.comms.budget.simulate_backlog` (first in, first out, drained at the
rate of the scheduled tracks). ``images_per_target`` caps repeats of one target; images of one
camera closer than ``min_separation_s`` are not both kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qamar.comms.budget import BacklogResult, Track, simulate_backlog
from qamar.io import atomic_write
from qamar.payload.camera import Camera
from qamar.payload.opportunities import Opportunity
from qamar.time import tdb_s_to_utc


@dataclass(frozen=True)
class ImagingPlan:
    """Kept images (time order), the opportunities left out with the reason, and the backlog."""

    images: list[Opportunity]
    image_bits: dict[str, float]
    skipped: list[tuple[Opportunity, str]]
    backlog: BacklogResult

    @property
    def bits(self) -> float:
        """Total bits of the kept images."""
        return float(sum(self.image_bits[o.camera] for o in self.images))


def plan_imaging(
    opportunities: Sequence[Opportunity],
    cameras: Sequence[Camera],
    tracks: Sequence[Track],
    storage_bits: float,
    start_tdb_s: float,
    stop_tdb_s: float,
    *,
    images_per_target: int = 1,
    min_separation_s: float = 60.0,
    require_delivery: bool = True,
) -> ImagingPlan:
    """Choose images among ``opportunities`` (any order) that fit storage and the downlink ``tracks``.

    ``tracks`` from :func:`qamar.comms.budget.schedule_downlinks`; times TDB seconds past
    J2000; ``storage_bits`` the image store. Raises ValueError for an opportunity outside the
    span or a camera not in ``cameras``.
    """
    sizes = {c.name: c.image_bits for c in cameras}
    unknown = {o.camera for o in opportunities} - set(sizes)
    if unknown:
        raise ValueError(f"opportunities of cameras {sorted(unknown)} that are not in the camera list")
    kept: list[Opportunity] = []
    skipped: list[tuple[Opportunity, str]] = []
    per_target: dict[str, int] = {}
    for o in sorted(opportunities, key=lambda o: -o.score):
        if not start_tdb_s <= o.best_tdb_s <= stop_tdb_s:
            raise ValueError(f"opportunity at {tdb_s_to_utc(o.best_tdb_s)} lies outside the planning span")
        if per_target.get(o.target, 0) >= images_per_target:
            skipped.append((o, f"{images_per_target} image(s) of {o.target} already planned"))
            continue
        if any(k.camera == o.camera and abs(k.best_tdb_s - o.best_tdb_s) < min_separation_s for k in kept):
            skipped.append((o, f"{o.camera} already shoots within {min_separation_s:g} s"))
            continue
        trial = _backlog(kept + [o], sizes, tracks, storage_bits, start_tdb_s, stop_tdb_s)
        if not np.all(trial.stored):
            skipped.append((o, "on-board storage full"))
        elif require_delivery and np.any(np.isnan(trial.delivered_tdb_s)):
            skipped.append((o, "downlink cannot return it before the end"))
        else:
            kept.append(o)
            per_target[o.target] = per_target.get(o.target, 0) + 1
    kept.sort(key=lambda o: o.best_tdb_s)
    return ImagingPlan(kept, sizes, skipped, _backlog(kept, sizes, tracks, storage_bits, start_tdb_s, stop_tdb_s))


def _backlog(images, sizes, tracks, storage_bits, start, stop) -> BacklogResult:
    captures = [(o.best_tdb_s, sizes[o.camera]) for o in images]
    return simulate_backlog(captures, tracks, storage_bits, start, stop)


def write_plan_csv(plan: ImagingPlan, path) -> None:
    """Write the kept images (time order) as CSV, atomically: capture and delivery in UTC.

    Raises ValueError for an empty plan (an empty table would look like a result).
    """
    if not plan.images:
        raise ValueError("the plan keeps no image; report the skipped opportunities instead")
    with atomic_write(path) as stream:
        stream.write("capture_utc,camera,target,opportunity_rank,gsd_m,sun_elev_deg,emission_deg,image_mbit,delivered_utc\n")
        # The backlog's arrays follow the captures' order, which is plan.images'.
        for o, delivered in zip(plan.images, plan.backlog.delivered_tdb_s):
            when = tdb_s_to_utc(delivered) if np.isfinite(delivered) else ""
            stream.write(f"{tdb_s_to_utc(o.best_tdb_s)},{o.camera},\"{o.target}\",{o.rank},{o.gsd_m:.1f},"
                         f"{o.sun_elev_deg:.2f},{o.emission_deg:.2f},{plan.image_bits[o.camera] / 1e6:.3f},{when}\n")

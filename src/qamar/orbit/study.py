"""Lifetime studies on Dask: many orbits, each to impact or a horizon, resumable.

A study is a table of *members* (Monte Carlo samples, sweep grid points), one row each: a
``member_id``, the Moon-centred ICRF initial state (``STATE_COLUMNS``, km and km/s), the
spacecraft (``SPACECRAFT_COLUMNS``) and any descriptive input columns (the osculating apsis
elements, a swept parameter). Every member shares a :class:`StudySetup`: epoch, force model,
horizon, tolerance.

:func:`run_study` cuts the members into batches and submits each batch as one Dask task, an
ensemble propagation of its members on one worker thread. By default the tasks run on a
``LocalCluster`` on this machine (processes with one thread each, so compiled kernels never
oversubscribe the cores); given a scheduler address, or ``DASK_SCHEDULER_ADDRESS`` in the environment, the same
study runs unchanged on an existing cluster (its workers need qamar and ``QAMAR_DATA_DIR``;
results come back to the client, so they share no file system with it).

The client writes each finished batch at once to its own Parquet part in the parts folder
(atomic: a part is complete or absent). A rerun reads the member ids already in parts and
computes only the others, so an interrupted study resumes where it stopped; ``study.json`` in
the folder fingerprints the setup and the member inputs so that parts of a different study
are never mixed in. A worker killed mid-study costs only its running batch: Dask reschedules
that task on another worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from qamar.constants import MOON_RADIUS_KM, SECONDS_PER_DAY
from qamar.errors import InvalidOrbitError, QamarError
from qamar.frames import icrf_to_pa
from qamar.io import atomic_write
from qamar.orbit.elements import (
    FRAMES,
    apsis_altitudes_km,
    cartesian_to_keplerian,
    keplerian_to_cartesian,
    state_from_apsides,
)
from qamar.orbit.ensemble import propagate_ensemble
from qamar.orbit.forces import ForceModel
from qamar.orbit.lifetime import DEFAULT_RTOL
from qamar.time import tdb_s_to_utc

STATE_COLUMNS = ("x_km", "y_km", "z_km", "vx_km_s", "vy_km_s", "vz_km_s")
"""Initial state of a member: Moon-centred ICRF position (km) and velocity (km/s)."""
ELEMENT_COLUMNS = ("peri_alt_km", "apo_alt_km", "inc_deg", "raan_deg", "argp_deg", "ta_deg")
"""Osculating apsis elements of a member's initial state, angles in the study's frame."""
SPACECRAFT_COLUMNS = ("mass_kg", "area_m2", "cr")
"""A member's spacecraft for solar radiation pressure (cannonball)."""
RESULT_COLUMNS = (
    "lifetime_days", "impact_t_tdb_s", "impact_utc", "impact_lat_deg", "impact_lon_deg",
    "min_periapsis_alt_km", "steps",
)  # fmt: skip
"""What a study adds per member. Missing values (no impact) are NaN, or None for ``impact_utc``."""

WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Environment of local worker processes: one thread per process for compiled kernels."""

CONNECT_TIMEOUT_S = 20
"""How long to try reaching a Dask scheduler given by address."""

PERCENTILES = (5, 50, 95)
"""Percentiles of the lifetime (and lowest periapsis) that a study summary reports."""

_STUDY_FILE = "study.json"
_PART_GLOB = "part-*.parquet"


@dataclass(frozen=True)
class StudySetup:
    """What every member of a study shares.

    ``t0_tdb_s``: start epoch (TDB seconds past J2000); ``forces``: the force model, whose
    mass/area/Cr each member replaces with its own; ``horizon_days``: the span to survive;
    ``rtol``: integrator tolerance (the lifetime default 1e-10); ``frame``: the frame of the
    element columns' angles (``moon-icrf`` or ``moon-pa`` frozen at ``t0_tdb_s``, as in
    :func:`~qamar.orbit.elements.state_from_apsides`). Raises QamarError for a horizon that is
    not a positive number of days, InvalidOrbitError for an unknown frame.
    """

    t0_tdb_s: float
    forces: ForceModel
    horizon_days: float = 1095.0
    rtol: float = DEFAULT_RTOL
    frame: str = "moon-icrf"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.horizon_days) and self.horizon_days > 0):
            raise QamarError(f"horizon_days={self.horizon_days} must be a positive number of days, e.g. 365.")
        if self.frame not in FRAMES:
            raise InvalidOrbitError(f"unknown frame {self.frame!r} for the element angles; use one of {', '.join(FRAMES)}.")

    def describe(self) -> dict:
        """JSON-ready description (epoch UTC, gravity, degree, third bodies, SRP, horizon, rtol, frame)."""
        f = self.forces
        return {
            "epoch_utc": tdb_s_to_utc(self.t0_tdb_s, digits=3),
            "gravity": f.field.name,
            "degree": f.degree,
            "third_bodies": list(f.third_bodies),
            "srp": f.srp,
            "horizon_days": self.horizon_days,
            "rtol": self.rtol,
            "frame": self.frame,
        }


@dataclass(frozen=True)
class StudyRun:
    """A finished study: ``results`` (one row per member, inputs then RESULT_COLUMNS, by member id),
    how many members were ``computed`` now and ``reused`` from earlier parts, the wall-clock
    seconds and the number of Dask worker threads (0 when nothing was left to compute)."""

    results: pd.DataFrame
    computed: int
    reused: int
    wall_s: float
    threads: int


def states_from_elements(setup: StudySetup, elements: np.ndarray) -> np.ndarray:
    """(n, 6) Moon-centred ICRF states (km, km/s) of (n, 6) ELEMENT_COLUMNS rows, angles in ``setup.frame``.

    Vectorised :func:`~qamar.orbit.elements.state_from_apsides`; raises its InvalidOrbitError
    (periapsis at or below the surface, apoapsis below periapsis, inclination outside
    [0, 180] deg) for the first row that has one.
    """
    x = np.atleast_2d(np.asarray(elements, dtype=float))
    gm = setup.forces.field.gm_km3_s2
    bad = ~np.isfinite(x).all(axis=1) | (x[:, 0] <= 0) | (x[:, 1] < x[:, 0]) | (x[:, 2] < 0) | (x[:, 2] > 180)
    if bad.any():
        state_from_apsides(*x[np.argmax(bad)], gm, frame=setup.frame, t_tdb_s=setup.t0_tdb_s)
    r_peri_km, r_apo_km = MOON_RADIUS_KM + x[:, 0], MOON_RADIUS_KM + x[:, 1]
    a_km, e = 0.5 * (r_peri_km + r_apo_km), (r_apo_km - r_peri_km) / (r_apo_km + r_peri_km)
    r, v = keplerian_to_cartesian(a_km, e, x[:, 2], x[:, 3], x[:, 4], x[:, 5], gm)
    r, v = np.atleast_2d(r), np.atleast_2d(v)
    if setup.frame == "moon-pa":
        pa_to_icrf = np.asarray(icrf_to_pa(setup.t0_tdb_s)).T
        r, v = r @ pa_to_icrf.T, v @ pa_to_icrf.T
    return np.hstack([r, v])


def members_from_elements(setup: StudySetup, elements: pd.DataFrame, *, first_id: int = 0) -> pd.DataFrame:
    """Member table of orbits given by ELEMENT_COLUMNS (angles in ``setup.frame``), nominal spacecraft.

    Adds ``member_id`` (``first_id``, ``first_id + 1``...), the initial states and the
    spacecraft of ``setup.forces``; other columns of ``elements`` are kept. Raises
    InvalidOrbitError for an orbit below the surface or an angle out of range.
    """
    states = states_from_elements(setup, elements[list(ELEMENT_COLUMNS)].to_numpy(dtype=float))
    table = elements.reset_index(drop=True).copy()
    table.insert(0, "member_id", np.arange(first_id, first_id + len(table), dtype=np.int64))
    for j, name in enumerate(STATE_COLUMNS):
        table[name] = states[:, j]
    f = setup.forces
    table["mass_kg"], table["area_m2"], table["cr"] = f.mass_kg, f.area_m2, f.cr
    return table


def osculating_elements(setup: StudySetup, states_icrf: np.ndarray) -> pd.DataFrame:
    """ELEMENT_COLUMNS of (n, 6) Moon-centred ICRF states, angles in ``setup.frame`` at ``t0``.

    Altitudes over the 1737.4 km sphere. Raises InvalidOrbitError for a radial or central state.
    """
    states = np.atleast_2d(np.asarray(states_icrf, dtype=float))
    r, v = states[:, :3], states[:, 3:]
    if setup.frame == "moon-pa":
        m = np.asarray(icrf_to_pa(setup.t0_tdb_s))
        r, v = r @ m.T, v @ m.T
    gm = setup.forces.field.gm_km3_s2
    el = cartesian_to_keplerian(r, v, gm)
    peri, apo = apsis_altitudes_km(r, v, gm)
    columns = (peri, apo, el.inc_deg, el.raan_deg, el.argp_deg, el.ta_deg)
    return pd.DataFrame({name: np.atleast_1d(c) for name, c in zip(ELEMENT_COLUMNS, columns)})


def _check_members(members: pd.DataFrame) -> None:
    missing = [c for c in ("member_id", *STATE_COLUMNS, *SPACECRAFT_COLUMNS) if c not in members.columns]
    if missing:
        raise QamarError(f"the member table lacks columns {missing}; build it with members_from_elements or sample_members.")
    if len(members) == 0:
        raise QamarError("the study has no members; give at least one orbit.")
    if not members["member_id"].is_unique:
        raise QamarError("member ids repeat in the member table; give each member its own id.")
    clash = [c for c in RESULT_COLUMNS if c in members.columns]
    if clash:
        raise QamarError(f"the member table already has result columns {clash}; pass inputs only.")


def _fingerprint(setup: StudySetup, members: pd.DataFrame) -> str:
    """SHA-256 of the setup and of every member's inputs (ids, states, spacecraft)."""
    digest = hashlib.sha256(json.dumps(setup.describe(), sort_keys=True).encode())
    digest.update(setup.forces.field.source.encode())
    columns = ["member_id", *STATE_COLUMNS, *SPACECRAFT_COLUMNS]
    digest.update(np.ascontiguousarray(members[columns].to_numpy(dtype=float)).tobytes())
    return digest.hexdigest()


def _claim(parts_dir: Path, setup: StudySetup, fingerprint: str) -> None:
    """Mark ``parts_dir`` as this study's, or raise if it holds another study's parts."""
    path = parts_dir / _STUDY_FILE
    if path.exists():
        found = json.loads(path.read_text()).get("fingerprint")
        if found != fingerprint:
            raise QamarError(
                f"{parts_dir} holds parts of a different study (other setup or members); "
                "choose another output folder or delete that one to start afresh."
            )
        return
    with atomic_write(path) as stream:
        json.dump({"fingerprint": fingerprint, "setup": setup.describe()}, stream, indent=2)


def finished_member_ids(parts_dir: Path) -> set[int]:
    """Member ids already written to Parquet parts in ``parts_dir`` (empty if none)."""
    done: set[int] = set()
    for part in sorted(Path(parts_dir).glob(_PART_GLOB)):
        done.update(pd.read_parquet(part, columns=["member_id"])["member_id"].tolist())
    return done


def _write_part(parts_dir: Path, table: pd.DataFrame) -> Path:
    ids = table["member_id"]
    path = parts_dir / f"part-{ids.min():07d}-{ids.max():07d}.parquet"
    with atomic_write(path, binary=True) as stream:
        table.to_parquet(stream, index=False)
    return path


def _read_parts(parts_dir: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(parts_dir.glob(_PART_GLOB))], ignore_index=True)


def write_results(path: str | Path, results: pd.DataFrame, setup: StudySetup, extra: dict | None = None) -> Path:
    """Write a results table as Parquet, atomically, with the setup (and ``extra``) as JSON in
    the file's metadata under the key ``qamar``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(results, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"qamar": json.dumps({**setup.describe(), **(extra or {})}).encode()}
    path = Path(path)
    with atomic_write(path, binary=True) as stream:
        pq.write_table(table.replace_schema_metadata(meta), stream)
    return path


def run_batch(setup: StudySetup, inputs: pd.DataFrame) -> pd.DataFrame:
    """Lifetime of every member in ``inputs``: a table of ``member_id`` and RESULT_COLUMNS.

    This is the Dask task; it runs in a worker process and propagates the members as one
    ensemble on one thread (:func:`~qamar.orbit.ensemble.propagate_ensemble`, identical per
    member to a single-orbit run). Each member's mass, area and Cr enter through its SRP scale.
    Raises what propagate_ensemble raises.
    """
    states = inputs[list(STATE_COLUMNS)].to_numpy(dtype=float)
    # Reference spacecraft of unit Cr A / m: a member's SRP scale is then its own Cr A / m.
    unit = replace(setup.forces, mass_kg=1.0, area_m2=1.0, cr=1.0)
    scale = (inputs["cr"] * inputs["area_m2"] / inputs["mass_kg"]).to_numpy(dtype=float) if unit.srp else None
    result = propagate_ensemble(setup.t0_tdb_s, states, unit, setup.horizon_days * SECONDS_PER_DAY, srp_scale=scale,
                                rtol=setup.rtol, threads=1, progress=False)  # fmt: skip
    impact = result.impact_t_tdb_s
    impact_utc = np.full(impact.size, None, dtype=object)
    hit = np.isfinite(impact)
    if hit.any():
        impact_utc[hit] = tdb_s_to_utc(impact[hit], digits=3)
    return pd.DataFrame({
        "member_id": inputs["member_id"].to_numpy(),
        "lifetime_days": result.lifetime_days,
        "impact_t_tdb_s": impact,
        "impact_utc": impact_utc,
        "impact_lat_deg": result.impact_lat_deg,
        "impact_lon_deg": result.impact_lon_deg,
        "min_periapsis_alt_km": result.min_periapsis_alt_km,
        "steps": result.steps,
    })  # fmt: skip


def local_cluster_options(workers: int) -> dict:
    """LocalCluster keywords of qamar's default cluster: ``workers`` processes of one thread with
    WORKER_ENV, everything on the loopback interface, no dashboard."""
    return {
        "n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": None, "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
        "env": WORKER_ENV, "silence_logs": logging.ERROR,
    }  # fmt: skip


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator:
    """A Dask client: on ``scheduler`` (or ``DASK_SCHEDULER_ADDRESS``), else on a new LocalCluster.

    The local cluster has ``workers`` processes of one thread each, with WORKER_ENV, no
    dashboard, and closes with the block. Raises QamarError if the scheduler cannot be reached
    or ``workers`` is not positive.
    """
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise QamarError(
                f"cannot reach the Dask scheduler at {address} ({exc}); check the address, "
                "or unset DASK_SCHEDULER_ADDRESS and drop --scheduler to run on this machine."
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise QamarError(f"workers={workers}: a local Dask cluster needs at least one worker process.")
    cluster = LocalCluster(**local_cluster_options(workers))
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_study(
    setup: StudySetup,
    members: pd.DataFrame,
    parts_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    batch_size: int | None = None,
    progress: bool = True,
) -> StudyRun:
    """Lifetime of every member on Dask, resumable through Parquet parts in ``parts_dir``.

    Members already in parts are not recomputed. ``batch_size`` members go into one task
    (default: about 16 tasks per worker thread, so that members of very different
    lifetimes still share the work evenly; at most 16 members each). ``scheduler``: a
    Dask scheduler address (else ``DASK_SCHEDULER_ADDRESS``, else a local cluster of
    ``workers`` processes). ``progress`` shows a bar over members on stderr.

    Raises QamarError for a malformed member table, a parts folder of another study, an
    unreachable scheduler, or a member whose propagation fails (the finished parts are kept:
    rerun to resume), and InvalidOrbitError for a member below the surface.
    """
    wall0 = time.perf_counter()
    _check_members(members)
    members = members.sort_values("member_id").reset_index(drop=True)
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(setup, members)
    _claim(parts_dir, setup, fingerprint)
    done = finished_member_ids(parts_dir)
    pending = members[~members["member_id"].isin(done)]
    inputs = pending[["member_id", *STATE_COLUMNS, *SPACECRAFT_COLUMNS]]
    threads = 0
    if len(inputs):
        with dask_client(scheduler, workers) as client:
            threads = max(1, sum(client.nthreads().values()))
            size = batch_size or min(16, max(1, math.ceil(len(inputs) / (16 * threads))))
            if size < 1:
                raise QamarError(f"batch_size={batch_size} must be at least 1 member per task.")
            _compute(client, setup, inputs, size, parts_dir, fingerprint, len(members), len(done), progress)
    table = members.merge(_read_parts(parts_dir), on="member_id", how="left", validate="one_to_one")
    return StudyRun(table, computed=len(inputs), reused=len(members) - len(inputs),
                    wall_s=time.perf_counter() - wall0, threads=threads)  # fmt: skip


def _compute(client, setup, inputs, size, parts_dir, fingerprint, total, done, progress) -> None:
    """Submit the batches, write each part as its task finishes, advance the bar."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    batches = [inputs.iloc[i : i + size] for i in range(0, len(inputs), size)]
    futures = {
        client.submit(run_batch, setup, batch, key=f"qamar-lifetime-{fingerprint[:12]}-{batch['member_id'].iloc[0]}"): batch
        for batch in batches
    }
    bar = tqdm(total=total, initial=done, unit="member", desc="lifetime study", file=sys.stderr,
               disable=not progress, leave=False, smoothing=0.1)  # fmt: skip
    try:
        for future in as_completed(futures):
            batch = futures[future]
            ids = f"{batch['member_id'].iloc[0]}..{batch['member_id'].iloc[-1]}"
            try:
                table = future.result()
            except QamarError as exc:
                raise type(exc)(f"member {ids}: {exc} (finished members are kept in {parts_dir}; rerun to resume)") from None
            except (KilledWorker, FutureCancelledError) as exc:
                raise QamarError(
                    f"members {ids} could not be computed: {exc}; finished members are kept in {parts_dir}, "
                    "rerun to resume."
                ) from None
            _write_part(parts_dir, table)
            future.release()
            bar.update(len(table))
    finally:
        bar.close()
        client.cancel(list(futures))


def lifetime_summary(results: pd.DataFrame, horizon_days: float) -> dict:
    """Statistics of a study's results: members, impacts and percentiles.

    ``lifetime_days`` and ``min_periapsis_alt_km`` get the PERCENTILES (keys ``p5``...) and
    their min and max. Survivors count as living past the horizon: a lifetime percentile
    that falls among them is None ("beyond the horizon"). Percentiles are empirical (the
    smallest value with at least that fraction of members at or below it, numpy's
    ``inverted_cdf``). Lifetimes in days, altitudes in km over the 1737.4 km sphere.
    """
    life = results["lifetime_days"].to_numpy(dtype=float)
    impacting = np.isfinite(life)
    censored = np.where(impacting, life, np.inf)

    def finite_or_none(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    lifetime_stats = {f"p{p}": finite_or_none(np.percentile(censored, p, method="inverted_cdf")) for p in PERCENTILES}
    lifetime_stats["min"] = finite_or_none(censored.min())
    lifetime_stats["max"] = finite_or_none(censored.max())
    peri = results["min_periapsis_alt_km"].to_numpy(dtype=float)
    peri = peri[np.isfinite(peri)]
    peri_stats = {f"p{p}": float(np.percentile(peri, p, method="inverted_cdf")) for p in PERCENTILES} if peri.size else {}
    return {
        "members": int(len(results)),
        "horizon_days": float(horizon_days),
        "impacting": int(impacting.sum()),
        "fraction_impacting": float(impacting.mean()),
        "lifetime_days": lifetime_stats,
        "min_periapsis_alt_km": peri_stats,
    }


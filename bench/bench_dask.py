"""Benchmark: one dispersion study on a local Dask cluster of 1 and of 2 worker processes.

Run from the repository root (about 2-4 minutes on a quiet 2-core machine with the defaults;
writes the "dask" section of docs/benchmarks.md):

    QAMAR_DATA_DIR=../shared/data python bench/bench_dask.py [--members 32] [--days 20] [--degree 50]

The study: ``--members`` members sampled around a 100 km circular orbit at 86 deg (lunar
equator, a long-lived inclination, so every member flies the whole span and the work per
member is the same), 1 km and 1 m/s 1-sigma per axis, 10 % area and 0.1 Cr; GRGM1200A to
``--degree`` with Earth, Sun and SRP; rtol 1e-10. Each cluster is started and its workers
warmed up (compiled kernels loaded, ephemeris read) before the clock starts; the timed part is
:func:`qamar.orbit.study.run_study` end to end: submitting the batches, propagating, writing
one Parquet part per batch. Throughput is simulated member-days per wall-clock second; the
issue asks for at least 1.8x from 1 to 2 workers. The table also gives the CPU seconds the
workers used and the machine's load average: on a shared machine the ratio is only a lower bound.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from bench.common import machine_line, publish  # noqa: E402
from qamar.orbit.dispersion import Dispersion, sample_members  # noqa: E402
from qamar.orbit.forces import ForceModel  # noqa: E402
from qamar.orbit.gravity import load_field  # noqa: E402
from qamar.orbit.study import (  # noqa: E402
    StudySetup,
    local_cluster_options,
    members_from_elements,
    run_batch,
    run_study,
)
from qamar.time import utc_to_tdb_s  # noqa: E402

EPOCH_UTC = "2024-05-08T08:14:00Z"
NOMINAL = {"peri_alt_km": 100.0, "apo_alt_km": 100.0, "inc_deg": 86.0, "raan_deg": 0.0, "argp_deg": 0.0, "ta_deg": 0.0}
DISPERSION = Dispersion(position_sigma_km=1.0, velocity_sigma_km_s=1e-3, area_rel_sigma=0.1, cr_sigma=0.1, seed=0)


def _warm_up(client: Client, setup: StudySetup) -> None:
    """Run a one-member, one-hour study on every worker (loads kernels and the ephemeris)."""
    short = StudySetup(setup.t0_tdb_s, setup.forces, horizon_days=1.0 / 24.0, rtol=setup.rtol, frame=setup.frame)
    member = members_from_elements(short, pd.DataFrame([NOMINAL]))
    for worker in client.nthreads():
        client.submit(run_batch, short, member, workers=[worker], pure=False).result()


def time_study(workers: int, setup: StudySetup, members, batch_size: int | None) -> tuple[float, float, int]:
    """Wall seconds of the study on a warmed-up local cluster of ``workers`` processes, CPU seconds
    its worker processes spent meanwhile, and how many members impacted."""
    with LocalCluster(**local_cluster_options(workers)) as cluster, Client(cluster) as client:
        _warm_up(client, setup)
        with tempfile.TemporaryDirectory() as parts:
            cpu0 = sum(client.run(time.process_time).values())
            start = time.perf_counter()
            run = run_study(setup, members, parts, scheduler=cluster.scheduler_address, batch_size=batch_size,
                            progress=False)  # fmt: skip
            wall = time.perf_counter() - start
            cpu = sum(client.run(time.process_time).values()) - cpu0
    return wall, cpu, int(run.results["lifetime_days"].notna().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--days", type=float, default=20.0)
    parser.add_argument("--degree", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None, help="members per task (default: run_study's)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    field = load_field("grgm1200a", args.degree)
    setup = StudySetup(float(utc_to_tdb_s(EPOCH_UTC)), ForceModel(field=field, degree=args.degree),
                       horizon_days=args.days, frame="moon-pa")  # fmt: skip
    members = sample_members(DISPERSION, setup, NOMINAL, args.members)
    member_days = args.members * args.days
    rows = []
    for workers in (1, 2):
        load = os.getloadavg()[0]
        wall, cpu, crashed = time_study(workers, setup, members, args.batch_size)
        if crashed:
            print(f"warning: {crashed} members impacted before {args.days} days; member-days overcounted", file=sys.stderr)
        rows.append((workers, wall, cpu, member_days / wall, load))
        print(f"{workers} worker(s): {wall:.1f} s, {member_days / wall:.2f} member-days/s (load {load:.1f})", flush=True)
    ratio = rows[1][3] / rows[0][3]
    table = [
        "| Dask workers | wall (s) | member-days / s | speed-up | worker CPU (s) | CPU / (workers x wall) | load average |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {w} | {wall:.1f} | {rate:.2f} | {rate / rows[0][3]:.2f}x | {cpu:.1f} | {cpu / (w * wall):.0%} | {load:.1f} |"
          for w, wall, cpu, rate, load in rows),
    ]  # fmt: skip
    markdown = "\n".join([
        "## Dask: one lifetime study on 1 and 2 worker processes",
        "",
        machine_line(),
        "",
        f"{args.members} members x {args.days:g} days (100 km circular, 86 deg, dispersed 1 km / 1 m/s, 10 % area, "
        f"0.1 Cr), GRGM1200A {args.degree}x{args.degree} with Earth, Sun and SRP, rtol 1e-10; local cluster of "
        "processes with one thread each, workers warmed up before timing; `bench/bench_dask.py`.",
        "",
        *table,
        "",
        f"Speed-up from 1 to 2 workers: **{ratio:.2f}x** (goal >= 1.8x). The worker CPU column is the "
        "work done; CPU / (workers x wall) below 100 % means the workers waited for a core (a load average "
        "above the core count: other work shared the machine), so the speed-up is then a lower bound.",
    ])  # fmt: skip
    publish("dask", markdown, write=not args.no_write)


if __name__ == "__main__":
    main()

"""Illumination maps: one year at 1 h steps of Sun and Earth fractions for the whole 1536 x 1536
240 m south-pole DEM, from a 360-azimuth horizon map. Goal (issue 4): under 60 s on 2 cores,
peak memory under 4 GB.

The horizon map (360 azimuths, 150 km, far DEM, observer 0 m) is computed once with
qamar.surface.horizon and cached outside the repository (``$QAMAR_CACHE_DIR/bench``, default
~/.cache/qamar/bench), or given with ``--horizon``. Each measurement runs in a fresh child
process, so its peak RSS is its own; the compiled kernels come from numba's on-disk cache,
loaded by a two-pixel call before the clock starts:

- ``file``: ``illumination_maps`` reading the horizon GeoTIFF 128 rows (one tile row) at a time
  (as the CLI does; the next strip is read while the kernel runs): wall time, CPU time and peak RSS;
- ``memory``: the horizon map read whole first (1.7 GB of int16), then only the kernel timed.

For a quick estimate without the full horizon map (about 150 s to compute), ``--rows-sample K``
computes the horizons of K evenly spaced full rows (cached too) and times those rows, each as a
one-row DEM; the table then gives the time per pixel-sample and scales it to the full grid
(an estimate: rows differ in how often the Sun grazes their horizons).

``--no-write`` prints the table without writing docs/benchmarks.md.

Run: QAMAR_DATA_DIR=../shared/data python bench/bench_illumination.py [--horizon H.tif] [--rows-sample 24] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine_line, publish, run_line

START, STOP, STEP_H = "2024-01-01", "2025-01-01", 1.0
OBSERVER_M, N_AZ, MAX_KM = 0.0, 360, 150.0
GRID = (1536, 1536)


def _cache(name: str) -> Path:
    from qamar import data

    return data.cache_dir() / "bench" / name


def _dem(window=None):
    from qamar import data
    from qamar.surface.terrain import read_dem

    return read_dem(data.path("dem_south_pole_240m"), window=window)


def _compute_horizon(path: Path, rows: list[int] | None) -> None:
    """Horizon map of the whole DEM (``rows`` None) or of the given full rows, stacked, to ``path``."""
    from rasterio.windows import Window

    from qamar import data
    from qamar.surface.horizon import HorizonMap, compute_horizon, write_horizon
    from qamar.surface.terrain import read_dem

    dem, far = _dem(), read_dem(data.path("dem_south_pole_far"))
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"far_dem": far, "n_azimuths": N_AZ, "max_distance_km": MAX_KM, "observer_height_m": OBSERVER_M}
    if rows is None:
        hmap = compute_horizon(dem, **kwargs)
    else:
        parts = [compute_horizon(dem, window=Window(0, r, dem.shape[1], 1), progress=False, **kwargs) for r in rows]
        hmap = HorizonMap(np.concatenate([p.elev_cdeg for p in parts]), parts[0].azimuths_deg, parts[0].transform,
                          parts[0].crs, OBSERVER_M, MAX_KM)
    write_horizon(hmap, path)


def _child(mode: str, horizon: str, rows: str) -> dict:
    """One timed measurement (run in a fresh process)."""
    from rasterio.windows import Window

    from qamar.surface.horizon import HorizonMap, read_horizon
    from qamar.surface.illumination import body_tracks, epochs_tdb_s, illumination_maps

    tracks = body_tracks(epochs_tdb_s(START, STOP, STEP_H))
    corner = read_horizon(horizon, window=Window(0, 0, 2, 1))
    row_dem = _dem(Window(0, 0, 2, 1))
    warm = HorizonMap(corner.elev_cdeg, corner.azimuths_deg, row_dem.transform, row_dem.crs, OBSERVER_M, MAX_KM)
    illumination_maps(row_dem, warm, tracks, progress=False)  # load the cached compiled kernels
    sun, earth, pixels = [], [], 0
    if rows:  # each sampled row as a one-row DEM with its row of the stacked horizon file
        picked = [int(r) for r in rows.split(",")]
        stacked = read_horizon(horizon)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i, r in enumerate(picked):
            dem = _dem(Window(0, r, GRID[1], 1))
            hmap = HorizonMap(stacked.elev_cdeg[i:i + 1], stacked.azimuths_deg, dem.transform, dem.crs, OBSERVER_M,
                              MAX_KM)
            maps = illumination_maps(dem, hmap, tracks, progress=False)
            sun.append(maps.sun_fraction)
            earth.append(maps.earth_fraction)
            pixels += dem.elevation_m.size
    else:
        dem = _dem()
        source = read_horizon(horizon) if mode == "memory" else horizon
        wall0, cpu0 = time.perf_counter(), time.process_time()
        maps = illumination_maps(dem, source, tracks, progress=False)
        sun, earth, pixels = [maps.sun_fraction], [maps.earth_fraction], dem.elevation_m.size
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"mode": mode, "wall_s": wall, "cpu_s": cpu, "samples": tracks.n, "pixels": int(pixels),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "sun_mean": float(np.nanmean(np.concatenate([s.ravel() for s in sun]))),
            "earth_mean": float(np.nanmean(np.concatenate([e.ravel() for e in earth])))}


def _measure(mode: str, horizon: Path, rows: list[int] | None) -> dict:
    arg = ",".join(map(str, rows)) if rows else ""
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--horizon", str(horizon), "--rows", arg],
                         check=True, capture_output=True, text=True, env=os.environ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=Path, help="horizon map of the whole DEM (360 az, 150 km, observer 0 m)")
    parser.add_argument("--rows-sample", type=int, default=0, help="time K evenly spaced rows only")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not write docs/benchmarks.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, str(args.horizon), args.rows)))
        return

    rows = None
    if args.rows_sample:
        rows = [int(r) for r in np.linspace(0, GRID[0] - 1, args.rows_sample + 2)[1:-1].round()]
        horizon = _cache(f"horizon_rows{args.rows_sample}_360az_150km_obs{OBSERVER_M:g}m.tif")
    else:
        horizon = args.horizon or _cache(f"horizon_south_pole_240m_360az_150km_obs{OBSERVER_M:g}m.tif")
    if not horizon.exists():
        print(f"computing the horizon map into {horizon} (cached for later runs) ...", flush=True)
        start = time.perf_counter()
        _compute_horizon(horizon, rows)
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)

    load = os.getloadavg()
    runs = [_measure("file", horizon, rows)] if rows else [_measure("file", horizon, None),
                                                           _measure("memory", horizon, None)]
    n_full = GRID[0] * GRID[1] * runs[0]["samples"]
    lines = [
        "## Illumination maps: one year of hourly Sun and Earth fractions, 1536 x 1536 pixels",
        "",
        machine_line() + f" Load average when started: {load[0]:.1f} (the machine is shared; CPU time is the "
        "steadier figure).",
        "",
        (f"**Problem.** {START} to {STOP} at {STEP_H:g} h ({runs[0]['samples']} samples), the 240 m LOLA south-pole "
        f"DEM, horizon map of {N_AZ} azimuths to {MAX_KM:g} km with the far DEM, observer {OBSERVER_M:g} m: per pixel "
        "the disc-weighted sunlit fraction, Earth in view, both, and the longest night "
        "(qamar.surface.illumination.illumination_maps, numba, 2 threads). Goal: under 60 s, peak memory under 4 GB."),
        "",
        ("| horizon input | pixels | wall s | CPU s | ns CPU per pixel-sample | full grid, wall s | peak RSS GB | "
        "mean sunlit | mean Earth |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        per = r["cpu_s"] / (r["pixels"] * r["samples"]) * 1e9
        full = r["wall_s"] * n_full / (r["pixels"] * r["samples"])
        what = {"file": "GeoTIFF, read 128 rows at a time", "memory": "in memory (read before the clock)"}[r["mode"]]
        if rows:
            what = f"{len(rows)} sampled rows (scaled)"
        lines.append(f"| {what} | {r['pixels']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {per:.1f} | {full:.0f} | "
                     f"{r['peak_rss_gb']:.2f} | {r['sun_mean']:.3f} | {r['earth_mean']:.3f} |")
    lines += ["", ("Method: per pixel and azimuth bin, thresholds on the sine of the body's latitude (a time-only "
              "quantity) above which the body is wholly visible and below which wholly hidden (for a polar pixel its "
              "azimuth is its longitude relative to the pixel's, to a bound); blocks of 64 and 16 samples, then "
              "single samples, are decided from them and only the rest (near the horizon) is evaluated exactly, in "
              "vectorised passes; see "
              "the module docstring. The result equals a sample-by-sample evaluation (tested).")]
    md = "\n".join(lines)
    publish("illumination", f"{md}\n\n{run_line()}", write=not args.no_write)


if __name__ == "__main__":
    main()

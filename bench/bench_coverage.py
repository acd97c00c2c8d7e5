"""Benchmark: six months of iCube-Q coverage, two cameras, 10 s sampling, HEALPix nside 512 (0.11 deg).

Run from the repository root (writes the "coverage" section of docs/benchmarks.md):

    QAMAR_DATA_DIR=../shared/data python bench/bench_coverage.py [--days 180] [--peer-hours 6]

Problem: the iCube-Q scenario's orbit (propagated once with GRGM1200A to degree 20, Earth, Sun
and radiation pressure; not timed) and its two cameras on an LVLH nadir-pointing spacecraft.
qamar counts, for every HEALPix pixel, the 10 s epochs whose footprint holds its centre
(:func:`qamar.payload.coverage.coverage`); the compiled kernels are loaded first and not timed.

Peer: ESA's planetary-coverage (PyPI ``planetary-coverage``) has no grid accumulator; what it
offers offline is SPICE footprints (``InstrumentTrajectory.fovs``: ``sincpt`` on each boundary
ray, limb points where rays miss) as longitude/latitude paths, and point-in-path tests
(matplotlib ``Path.contains_points``, as its ROIs use). The same footprints are given to it as
SPICE kernels written here: the trajectory as an SPK (type 13, ``qamar.io.spk``), the LVLH
attitude as a SPICE two-vector dynamic frame (+Z to the Moon, -X along the Moon's velocity
relative to the spacecraft), each camera as a fixed frame with a rectangular FOV in an IK. Its
coverage is its footprint paths tested against the pixel centres inside each path's bounding
box. Its footprints are computed on ``--peer-hours`` of the span, timed and scaled to the full
span; counts are compared with qamar's over that window on the footprints a lon/lat path can
hold (the others: past the limb, where the tools close the outline differently; across
0/360 deg or around a pole, which a lon/lat polygon does not represent).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from numba import get_num_threads  # noqa: E402

from bench.common import machine_line, publish, run_line  # noqa: E402
from qamar import data  # noqa: E402
from qamar.constants import MOON_RADIUS_KM  # noqa: E402
from qamar.frames import body_vector_from_lat_lon  # noqa: E402
from qamar.mission.run import propagate_orbit  # noqa: E402
from qamar.mission.scenario import load_scenario  # noqa: E402
from qamar.payload.camera import cameras_from_spec  # noqa: E402
from qamar.payload.coverage import _add_epochs, _rings, coverage, pixel_lat_lon, sample_epochs  # noqa: E402
from qamar.payload.footprint import camera_axes, footprints, geometry  # noqa: E402
from qamar.time import tdb_s_to_utc  # noqa: E402

NSIDE = 512
STEP_S = 10.0
SC_ID, SC_NAME = -901, "ICUBEQ"


def _kernels(folder: Path, trajectory, cameras) -> list[str]:
    """SPK, frames and instrument kernels describing qamar's footprints for SPICE."""
    spk = trajectory.to_spk(folder / "icubeq.bsp", step_s=60.0, naif_id=SC_ID, object_name=SC_NAME)
    lines = ["\\begindata",
             f"NAIF_BODY_NAME += ( '{SC_NAME}' )", f"NAIF_BODY_CODE += ( {SC_ID} )",
             "FRAME_ICUBEQ_LVLH = -901000", "FRAME_-901000_NAME = 'ICUBEQ_LVLH'", "FRAME_-901000_CLASS = 5",
             "FRAME_-901000_CLASS_ID = -901000", f"FRAME_-901000_CENTER = {SC_ID}",
             "FRAME_-901000_RELATIVE = 'J2000'", "FRAME_-901000_DEF_STYLE = 'PARAMETERIZED'",
             "FRAME_-901000_FAMILY = 'TWO-VECTOR'",
             "FRAME_-901000_PRI_AXIS = 'Z'", "FRAME_-901000_PRI_VECTOR_DEF = 'OBSERVER_TARGET_POSITION'",
             f"FRAME_-901000_PRI_OBSERVER = '{SC_NAME}'", "FRAME_-901000_PRI_TARGET = 'MOON'",
             "FRAME_-901000_PRI_ABCORR = 'NONE'",
             "FRAME_-901000_SEC_AXIS = '-X'", "FRAME_-901000_SEC_VECTOR_DEF = 'OBSERVER_TARGET_VELOCITY'",
             f"FRAME_-901000_SEC_OBSERVER = '{SC_NAME}'", "FRAME_-901000_SEC_TARGET = 'MOON'",
             "FRAME_-901000_SEC_ABCORR = 'NONE'", "FRAME_-901000_SEC_FRAME = 'J2000'"]
    for k, cam in enumerate(cameras):
        code, name = -901100 - k, f"ICUBEQ_CAM{k}"
        # Column-major, instrument -> LVLH; one column a line (text kernel lines stop at 132 characters).
        matrix = "\n    ".join(" ".join(f"{x:.17g}" for x in column) for column in cam.sc_to_cam.T)
        half_x, half_y = (np.degrees(np.arctan(t)) for t in cam.tan_half_fov)
        lines += [f"NAIF_BODY_NAME += ( '{name}' )", f"NAIF_BODY_CODE += ( {code} )",
                  f"FRAME_{name} = {code}", f"FRAME_{code}_NAME = '{name}'", f"FRAME_{code}_CLASS = 4",
                  f"FRAME_{code}_CLASS_ID = {code}", f"FRAME_{code}_CENTER = {SC_ID}",
                  f"TKFRAME_{code}_RELATIVE = 'ICUBEQ_LVLH'", f"TKFRAME_{code}_SPEC = 'MATRIX'",
                  f"TKFRAME_{code}_MATRIX = ( {matrix} )",
                  f"INS{code}_FOV_FRAME = '{name}'", f"INS{code}_FOV_SHAPE = 'RECTANGLE'",
                  f"INS{code}_BORESIGHT = ( 0 0 1 )", f"INS{code}_FOV_CLASS_SPEC = 'ANGLES'",
                  f"INS{code}_FOV_REF_VECTOR = ( 1 0 0 )", f"INS{code}_FOV_REF_ANGLE = {half_x:.12f}",
                  f"INS{code}_FOV_CROSS_ANGLE = {half_y:.12f}", f"INS{code}_FOV_ANGLE_UNITS = 'DEGREES'"]
    lines.append("\\begintext")
    fk = folder / "icubeq.tf"
    fk.write_text("KPL/FK\n" + "\n".join(lines) + "\n")
    shared = [str(data.path(k)) for k in ("leapseconds", "de440s", "moon_pa_de440", "moon_frames_de440", "pck00011")]
    assoc = data.path("moon_frames_de440").parent / "moon_assoc_me.tf"  # OBJECT_MOON_FRAME = 'MOON_ME'
    return shared + [str(assoc), str(spk), str(fk)]


def peer_coverage(kernels: list[str], t_tdb_s: np.ndarray, on_surface: np.ndarray) -> tuple:
    """planetary-coverage's coverage of the STEP_S epochs t_tdb_s, one camera per row of on_surface.

    All its footprints are computed; those a lon/lat path can hold are tested against the pixel
    centres inside their bounding box (east longitudes 0..360). Returns (counts, which
    footprints were held (cameras, epochs), their vertices (lon, lat deg) in that order, wall
    seconds). A footprint is held if qamar's does
    not reach the limb (``on_surface``: the tools close it differently) and it does not cross
    0/360 deg or surround a pole (its path would span over 180 deg of longitude; splitting
    those is left out, so the time is a lower bound).
    """
    from planetary_coverage import TourConfig

    lat, lon = pixel_lat_lon(NSIDE)
    lon = np.mod(lon, 360.0)
    order = np.argsort(lat)
    lat_sorted = lat[order]
    counts = np.zeros(lat.size, dtype=np.int32)
    held = np.zeros(on_surface.shape, dtype=bool)
    vertices = []
    start = time.perf_counter()
    for k in range(on_surface.shape[0]):
        tour = TourConfig(kernels=kernels, spacecraft=SC_NAME, instrument=f"ICUBEQ_CAM{k}", target="MOON")
        traj = tour[tdb_s_to_utc(t_tdb_s[0])[:-1]:tdb_s_to_utc(t_tdb_s[-1])[:-1]:f"{STEP_S:g} sec"]
        for j, path in enumerate(traj.fovs.paths):
            if path is None or not on_surface[k, j]:
                continue
            (lon0, lat0), (lon1, lat1) = path.get_extents().get_points()
            if lon1 - lon0 >= 180.0:
                continue
            held[k, j] = True
            vertices.append(path.vertices[:-1])
            band = order[np.searchsorted(lat_sorted, lat0):np.searchsorted(lat_sorted, lat1, side="right")]
            band = band[(lon[band] >= lon0) & (lon[band] <= lon1)]
            counts[band[path.contains_points(np.column_stack([lon[band], lat[band]]))]] += 1
    return counts, held, vertices, time.perf_counter() - start


def outline_distance_km(trajectory, cameras, t_tdb_s: np.ndarray, held: np.ndarray, vertices: list) -> float:
    """Largest distance (km) from a peer footprint vertex to the nearest of qamar's outline points
    (6 rays a side, as the peer's 24 vertices)."""
    ours = [f for cam, kept in zip(cameras, held, strict=True) for f in footprints(cam, trajectory, t_tdb_s[kept],
                                                                                      per_edge=6)]
    worst = 0.0
    for f, lon_lat in zip(ours, vertices, strict=True):
        a = body_vector_from_lat_lon(lon_lat[:, 1], lon_lat[:, 0], 1.0)
        b = body_vector_from_lat_lon(f.lat_deg, f.lon_deg, 1.0)
        worst = max(worst, float(np.max(np.arccos(np.clip(np.max(a @ b.T, axis=1), -1.0, 1.0)))))
    return worst * MOON_RADIUS_KM


def qamar_counts(trajectory, cameras, t_tdb_s: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """qamar's counts per pixel over the footprints ``keep`` (cameras, epochs) marks."""
    rings = _rings(NSIDE)
    diff = np.zeros((1, 12 * NSIDE**2 + 1), dtype=np.int32)
    for cam, kept in zip(cameras, keep, strict=True):
        geom = geometry(trajectory, t_tdb_s[kept])
        sun = geom.sun_me_km / np.linalg.norm(geom.sun_me_km, axis=1, keepdims=True)
        _add_epochs(diff, rings, cam, geom.r_me_km, camera_axes(cam, geom), sun, None, None)
    return np.cumsum(diff[0])[:-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=180.0, help="span timed for qamar (default six months)")
    parser.add_argument("--peer-hours", type=float, default=6.0, help="span timed for planetary-coverage")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    scenario = load_scenario(ROOT / "scenarios" / "icube-q.yaml")
    forces = scenario.forces.model_copy(update={"degree": 20})
    propagation = scenario.propagation.model_copy(update={"duration_days": args.days})
    trajectory = propagate_orbit(scenario.spacecraft, scenario.orbit, forces, propagation, progress=False).trajectory
    cameras = cameras_from_spec(scenario.payload)
    t0 = trajectory.start_tdb_s
    coverage(trajectory, cameras, step_s=STEP_S, stop_tdb_s=t0 + 600.0, nside=NSIDE)  # load the compiled kernels

    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    full = coverage(trajectory, cameras, step_s=STEP_S, nside=NSIDE)
    qamar_s, qamar_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    load_after = os.getloadavg()[0]
    start = time.perf_counter()
    lit = coverage(trajectory, cameras, step_s=STEP_S, nside=NSIDE, sun_elev_deg=scenario.payload.sun_elev_deg)
    qamar_lit_s = time.perf_counter() - start

    # Peer window: from just after periapsis (SPICE's dynamic frame differentiates the state, so
    # not at the SPK's first epoch), the same epochs for both tools.
    w0 = t0 + 60.0
    window = sample_epochs(trajectory, STEP_S, w0, w0 + args.peer_hours * 3600.0)
    on_surface = np.array([[not f.reaches_limb for f in footprints(cam, trajectory, window, per_edge=2)]
                           for cam in cameras])
    with tempfile.TemporaryDirectory() as folder:
        kernels = _kernels(Path(folder), trajectory, cameras)
        theirs, held, vertices, peer_s = peer_coverage(kernels, window, on_surface)
    ours = qamar_counts(trajectory, cameras, window, held)
    vertex_km = outline_distance_km(trajectory, cameras, window, held, vertices)
    used = int(held.sum())
    differ = int(np.count_nonzero((ours > 0) != (theirs > 0)))
    seen = int(np.count_nonzero((ours > 0) | (theirs > 0)))
    delta = np.abs(ours.astype(np.int64) - theirs)
    within_one = int(np.count_nonzero((delta <= 1) & ((ours > 0) | (theirs > 0))))
    mismatch = float(delta.sum() / max(int(ours.sum()), 1))
    scale = full.epochs / len(window)

    days = full.epochs * STEP_S / 86400.0
    lo_deg, hi_deg = scenario.payload.sun_elev_deg
    rows = [
        ("qamar, all light", full.epochs * len(cameras), qamar_s, f"{100 * full.fraction():.1f}"),
        (f"qamar, Sun {lo_deg:g}-{hi_deg:g} deg", lit.epochs * len(cameras), qamar_lit_s,
         f"{100 * lit.fraction():.1f}"),
        (f"planetary-coverage {args.peer_hours:g} h, scaled x{scale:.0f}", len(window) * len(cameras), peer_s * scale,
         "-"),
    ]
    table = "\n".join(f"| {name} | {n:,} | {wall:.1f} | {pct} |" for name, n, wall, pct in rows)
    markdown = f"""## Coverage: {days:.0f} days, two cameras, {STEP_S:g} s, HEALPix nside {NSIDE}

{machine_line()} Load average (1 min) {load_before:.1f} before and {load_after:.1f}
after the timed qamar run ({get_num_threads()} numba threads; {qamar_cpu_s:.1f} s of CPU for its {qamar_s:.1f} s
of wall time). Goal (issue 5): under 60 s for the all-light run.

iCube-Q scenario orbit (200 x 8,600 km, 137 deg; GRGM1200A degree 20 + Earth, Sun, SRP; propagation
not timed) and its two cameras (25 mm nadir, 12.9 deg; 8 mm tilted 30 deg, 38.8 deg) on an LVLH
spacecraft; {12 * NSIDE**2:,} equal-area pixels of 0.11 deg (3.5 km). qamar counts the epochs
each pixel centre is in a footprint, exactly (scan conversion of the footprint's edges, see
`qamar.payload.coverage`);
planetary-coverage computes SPICE footprints of the same cameras (SPK + dynamic LVLH frame + IK
written by the benchmark) and tests pixel centres against its longitude/latitude footprint
paths; it was timed on the first {args.peer_hours:g} h and scaled linearly to the span (all its
footprints, the map of those it can hold: a lower bound).

| tool | footprints | wall s | Moon seen % |
|---|---:|---:|---:|
{table}

Agreement over the first {args.peer_hours:g} h, on the {used:,} of its {len(window) * len(cameras):,}
footprints that a longitude/latitude path can hold (on the surface, not across 0/360 deg, not
around a pole): {differ:,} of the {seen:,} pixels seen by either tool ({100 * differ / max(seen, 1):.2f} %)
are seen by one only; {100 * within_one / max(seen, 1):.2f} % have counts within one epoch of each other,
and the counts differ by {100 * mismatch:.2f} % of all pixel-epochs. The two tools put the footprints
in the same place (every planetary-coverage vertex lies within {1e3 * vertex_km:.1f} m of one of qamar's outline
points for the same 24 rays), but its footprints are polygons in longitude/latitude through
those points, 6 a side, so pixels along the curved edges differ.
"""
    publish("coverage", f"{markdown}\n{run_line()}", write=not args.no_write)


if __name__ == "__main__":
    main()

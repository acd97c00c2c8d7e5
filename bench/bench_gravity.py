"""One spherical-harmonic gravity acceleration: qamar vs Orekit vs heyoka, side by side.

GRGM1200A at degree/order 50, 100 and 200, evaluated at one body-fixed point 100 km above
the surface (lat 30 deg, lon 40 deg). Every timing is a loop of calls divided by the number of
calls, best of several rounds in which all methods take turns (the machine may be shared):

- qamar: ``gravity_accel_pa`` (total acceleration) called from a numba-compiled loop, which is
  how the force model calls it; also a plain Python call and the vectorised
  ``acceleration_pa_km_s2`` over 1000 points.
- Orekit 13: ``HolmesFeatherstoneAttractionModel.gradient`` (the body-frame non-central
  acceleration, the core of ``acceleration()``), called from a Java loop compiled at run time
  against Orekit (no Python in the loop, JIT warmed up); also called once per Python call
  through JPype, which adds the bridge overhead.
- heyoka.py: ``model.sh_gravity_acc`` compiled with ``cfunc(..., compact_mode=True)``, called
  from Python for one point and for a batch of 1000 points.

Run: ``QAMAR_DATA_DIR=../shared/data python bench/bench_gravity.py``; it writes the
``gravity`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import heyoka as hy
import numpy as np
from numba import njit

from qamar.constants import MOON_RADIUS_KM
from qamar.orbit.gravity import acceleration_pa_km_s2, gravity_accel_pa, load_field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine_line, publish  # noqa: E402
from tests import orekit_support  # noqa: E402

DEGREES = (50, 100, 200)
# Calls per timed loop: about 0.05-0.3 s of work each.
LOOP_CALLS = {50: 20_000, 100: 5_000, 200: 1_500}
LAT_RAD, LON_RAD, ALT_KM = np.radians(30.0), np.radians(40.0), 100.0
BATCH = 1000
REPEATS = 9

JAVA_LOOP = """
import org.hipparchus.geometry.euclidean.threed.Vector3D;
import org.orekit.forces.gravity.HolmesFeatherstoneAttractionModel;
import org.orekit.time.AbsoluteDate;

public class QamarGravityLoop {
    /** Calls gradient() count times at positions nudged by 1 mm; returns a checksum. */
    public static double run(HolmesFeatherstoneAttractionModel model, AbsoluteDate date,
                             double x, double y, double z, double mu, int count) {
        double sink = 0.0;
        for (int i = 0; i < count; ++i) {
            sink += model.gradient(date, new Vector3D(x + 1.0e-3 * (i & 7), y, z), mu)[0];
        }
        return sink;
    }
}
"""


@njit(cache=True)
def _qamar_loop(r_pa_km, kdata, count):
    sink = 0.0
    probe = r_pa_km.copy()
    for i in range(count):
        probe[0] = r_pa_km[0] + 1.0e-6 * (i & 7)
        sink += gravity_accel_pa(probe, kdata)[0]
    return sink


def best_us(runs: dict[str, tuple]) -> dict[str, float]:
    """Microseconds per call of each ``name: (run, calls)``: the best of REPEATS rounds, the
    methods taking turns within a round so that a change of machine load hits all of them."""
    best = dict.fromkeys(runs, np.inf)
    for _ in range(REPEATS):
        for name, (run, calls) in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def heyoka_function(field, degree):
    """heyoka compiled function (x, y, z) -> total acceleration, with the coefficients as numbers."""
    x, y, z = hy.make_vars("x", "y", "z")
    coefficients = [[float(field.c_nm[n, m]), float(field.s_nm[n, m])] for n in range(degree + 1) for m in range(n + 1)]
    acc = hy.model.sh_gravity_acc([x, y, z], coefficients, field.gm_km3_s2, field.ref_radius_km)
    return hy.cfunc(acc, [x, y, z], compact_mode=True)


def main() -> None:
    load_at_start = os.getloadavg()[0]
    field = load_field("grgm1200a", max(DEGREES))
    r_km = (MOON_RADIUS_KM + ALT_KM) * np.array(
        [np.cos(LAT_RAD) * np.cos(LON_RAD), np.cos(LAT_RAD) * np.sin(LON_RAD), np.sin(LAT_RAD)]
    )
    batch_km = r_km + 1.0e-3 * np.random.default_rng(1).standard_normal((BATCH, 3))
    batch_by_row = np.ascontiguousarray(batch_km.T)
    central = -field.gm_km3_s2 * r_km / np.linalg.norm(r_km) ** 3
    java_loop = orekit_support.compile_java("QamarGravityLoop", JAVA_LOOP)
    date = orekit_support.tai_date()
    from org.hipparchus.geometry.euclidean.threed import Vector3D

    mu_m3_s2 = field.gm_km3_s2 * 1e9
    r_m = [float(v) * 1e3 for v in r_km]
    position = Vector3D(*r_m)
    rows = []
    for degree in DEGREES:
        kdata = field.kernel_data(degree)
        model = orekit_support.holmes_featherstone(field, degree)
        heyoka = heyoka_function(field, degree)
        # Warm-up: numba's cached kernels, the JVM's JIT, heyoka's first call.
        _qamar_loop(r_km, kdata, 10)
        acceleration_pa_km_s2(field, batch_km, degree)
        for _ in range(3):
            java_loop.run(model, date, *r_m, mu_m3_s2, 20_000)
        heyoka(batch_by_row)
        calls = LOOP_CALLS[degree]
        few = calls // 4
        us = best_us(
            {
                "qamar loop": (lambda: _qamar_loop(r_km, kdata, calls), calls),
                "qamar python": (lambda: [gravity_accel_pa(r_km, kdata) for _ in range(few)], few),
                "qamar batch": (lambda: acceleration_pa_km_s2(field, batch_km, degree), BATCH),
                "orekit loop": (lambda: java_loop.run(model, date, *r_m, mu_m3_s2, calls), calls),
                "orekit jpype": (lambda: [model.gradient(date, position, mu_m3_s2) for _ in range(few)], few),
                "heyoka one": (lambda: [heyoka(r_km) for _ in range(few)], few),
                "heyoka batch": (lambda: heyoka(batch_by_row), BATCH),
            }
        )
        total = gravity_accel_pa(r_km, kdata)
        orekit_total = central + np.array(list(model.gradient(date, position, mu_m3_s2))) * 1e-3
        norm = np.linalg.norm(total)
        rows.append(
            f"| {degree} | **{us['qamar loop']:.1f}** | {us['qamar python']:.1f} | {us['qamar batch']:.1f} "
            f"| **{us['orekit loop']:.1f}** | {us['orekit jpype']:.1f} | {us['heyoka one']:.1f} "
            f"| {us['heyoka batch']:.1f} | {us['orekit loop'] / us['qamar loop']:.1f}x "
            f"| {np.linalg.norm(total - orekit_total) / norm:.0e} "
            f"/ {np.linalg.norm(total - heyoka(r_km)) / norm:.0e} |"
        )
        print(rows[-1], flush=True)

    table = "\n".join(
        [
            "## One gravity acceleration (GRGM1200A)",
            "",
            machine_line(),
            "",
            "Microseconds per acceleration at one point 100 km above the surface (lat 30 deg, lon 40 deg), "
            f"best of {REPEATS} rounds in which the methods take turns, each timing a loop of calls. "
            "Script: `bench/bench_gravity.py`. "
            f"Load average {load_at_start:.1f} at the start of the run (other jobs share the cores: absolute "
            "times are noisy, the interleaved rounds keep the comparison fair).",
            "",
            "| degree/order | qamar, compiled loop | qamar, Python call | qamar, per point of 1000 "
            "| Orekit, Java loop | Orekit, JPype call | heyoka, one point | heyoka, per point of 1000 "
            "| Orekit / qamar (loops) | rel. diff. vs Orekit / heyoka |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "- qamar: `gravity_accel_pa` (central + non-spherical terms, numba, Pines formulation with the "
            "Holmes-Featherstone order recursion) called from a compiled loop, as the force model calls it; "
            "'Python call' adds numba's dispatch; 'per point of 1000' is `acceleration_pa_km_s2` on a "
            "(1000, 3) array.",
            "- Orekit 13.1 (OpenJDK 17): `HolmesFeatherstoneAttractionModel.gradient` (the body-frame "
            "non-central part that `acceleration()` rotates to the inertial frame) in a Java loop compiled "
            "at run time against Orekit, after JIT warm-up; 'JPype call' is one call per Python call.",
            "- heyoka.py 7: `model.sh_gravity_acc` compiled with `cfunc(..., compact_mode=True)`, called "
            "from Python for one point and for a batch of 1000 points (inputs of shape (3, 1000)).",
            "- The relative differences are |a_qamar - a_peer| / |a_qamar| on the total acceleration "
            "(Orekit's non-central part plus -GM r/|r|^3).",
        ]
    )
    publish("gravity", table)


if __name__ == "__main__":
    main()

"""The pipeline behind ``qamar run`` and ``qamar orbit propagate``.

A scenario (or the equivalent CLI options) goes in; products come out into a folder only once
they are complete: everything is written to a staging folder first and moved into place at the
end, so a failed run never leaves files that look valid.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qamar.constants import MOON_RADIUS_KM
from qamar.mission.report import Report
from qamar.mission.scenario import Forces, Orbit, Propagation, Scenario, Spacecraft
from qamar.orbit.elements import state_from_apsides
from qamar.orbit.events import shadow_passes
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import load_field
from qamar.orbit.propagate import PropagationResult, propagate
from qamar.orbit.trajectory import Trajectory
from qamar.time import tdb_s_to_utc, utc_to_tdb_s


@dataclass(frozen=True)
class OrbitRun:
    """A finished propagation with the inputs that made it."""

    spacecraft: Spacecraft
    orbit: Orbit
    forces: Forces
    propagation: Propagation
    result: PropagationResult
    trajectory: Trajectory


def propagate_orbit(
    spacecraft: Spacecraft, orbit: Orbit, forces: Forces, propagation: Propagation, progress: bool = True
) -> OrbitRun:
    """Build the initial state and force model from their specifications and propagate.

    Stops at impact. Raises the qamar errors of its parts: ModelConfigError (gravity model or
    degree), InvalidOrbitError (orbit below the surface), EpochOutOfRangeError (epoch outside
    the kernels).
    """
    field = load_field(forces.gravity, forces.degree)
    t0_tdb_s = float(utc_to_tdb_s(orbit.epoch_utc))
    r_icrf_km, v_icrf_km_s = state_from_apsides(
        orbit.peri_alt_km,
        orbit.apo_alt_km,
        orbit.inc_deg,
        orbit.raan_deg,
        orbit.argp_deg,
        orbit.ta_deg,
        field.gm_km3_s2,
        frame=orbit.frame,
        t_tdb_s=t0_tdb_s,
    )
    model = ForceModel(
        field=field,
        degree=forces.degree,
        third_bodies=tuple(forces.third_bodies),
        srp=forces.srp,
        mass_kg=spacecraft.mass_kg,
        area_m2=spacecraft.area_m2,
        cr=spacecraft.cr,
    )
    result = propagate(
        t0_tdb_s,
        np.concatenate([r_icrf_km, v_icrf_km_s]),
        propagation.duration_days * 86400.0,
        model,
        rtol=propagation.rtol,
        altitude_thresholds_km=propagation.altitude_thresholds_km,
        progress=progress,
    )
    trajectory = Trajectory(
        result.t_tdb_s,
        result.states_icrf,
        result.dense,
        events=result.events,
        meta={"object_name": spacecraft.name, "object_id": spacecraft.name},
    )
    return OrbitRun(spacecraft, orbit, forces, propagation, result, trajectory)


def orbit_summary(run: OrbitRun) -> dict:
    """The summary of a propagation as plain JSON-ready values.

    Positions and velocities are Moon-centred with ICRF axes (km, km/s); altitudes are over the
    1737.4 km sphere; times are UTC ISO-8601.
    """
    result, trajectory = run.result, run.trajectory
    final = result.states_icrf[-1]
    altitudes_km = np.linalg.norm(result.states_icrf[:, :3], axis=1) - MOON_RADIUS_KM
    impact = result.impact
    _, umbra_min = shadow_passes(result.events, "umbra")
    summary = {
        "epoch_utc": tdb_s_to_utc(result.t_tdb_s[0]),
        "end_utc": tdb_s_to_utc(result.t_tdb_s[-1]),
        "duration_days": (result.t_tdb_s[-1] - result.t_tdb_s[0]) / 86400.0,
        "impact_utc": tdb_s_to_utc(impact.t_tdb_s) if impact else None,
        "impact_lat_deg": None,
        "impact_lon_deg": None,
        "final_r_km": [float(x) for x in final[:3]],
        "final_v_km_s": [float(x) for x in final[3:]],
        "min_alt_km": float(min(altitudes_km.min(), _min_periapsis_alt_km(result.events, altitudes_km))),
        "periapsis_passes": sum(e.kind == "periapsis" for e in result.events),
        "umbra_passes": int(umbra_min.size),
        "umbra_total_h": float(umbra_min.sum() / 60.0),
        "umbra_longest_min": float(umbra_min.max()) if umbra_min.size else 0.0,
        "steps": int(result.steps),
        "wall_s": float(result.wall_s),
        "gravity": {
            "model": run.forces.gravity,
            "degree": run.forces.degree,
            "gm_km3_s2": run.result.forces.field.gm_km3_s2,
            "ref_radius_km": run.result.forces.field.ref_radius_km,
        },
        "third_bodies": list(run.forces.third_bodies),
        "srp": run.forces.srp,
        "rtol": run.propagation.rtol,
    }
    if impact:
        lat, lon = trajectory.lat_lon_me_deg(np.array([impact.t_tdb_s]))
        summary["impact_lat_deg"], summary["impact_lon_deg"] = float(lat[0]), float(lon[0])
    return summary


def _min_periapsis_alt_km(events: list, altitudes_km: np.ndarray) -> float:
    peri = [np.linalg.norm(e.state[:3]) - MOON_RADIUS_KM for e in events if e.kind in ("periapsis", "impact")]
    return min(peri) if peri else float(altitudes_km.min())


@contextmanager
def staged_output(out_dir: Path) -> Iterator[Path]:
    """A staging folder whose files move into ``out_dir`` only if the block succeeds."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield staging
        out_dir.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: Path, document: dict) -> Path:
    """Write ``document`` as indented JSON, atomically (temp file then rename)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    os.replace(partial, path)
    return path


def run_scenario(scenario: Scenario, out_dir: Path, progress: bool = True) -> dict:
    """Run every analysis of ``scenario`` and write its products into ``out_dir``.

    Products: summary.json, trajectory.oem, trajectory.csv, PNG plots and report.html.
    Returns the summary. Nothing is written to ``out_dir`` if any analysis fails.
    """
    from qamar.orbit import plots

    run = propagate_orbit(scenario.spacecraft, scenario.orbit, scenario.forces, scenario.propagation, progress)
    summary = {"scenario": scenario.name, "orbit": orbit_summary(run)}
    with staged_output(out_dir) as stage:
        step_s = scenario.propagation.output_step_s
        run.trajectory.to_oem(stage / "trajectory.oem", step_s=step_s, object_name=scenario.spacecraft.name)
        run.trajectory.to_csv(stage / "trajectory.csv", step_s=step_s)
        figures = {
            "altitude.png": (plots.plot_altitude, "Altitude over the 1737.4 km sphere"),
            "apsides.png": (plots.plot_apsides, "Periapsis and apoapsis altitude history"),
            "ground_track.png": (plots.plot_ground_track, "Ground track (Moon ME frame)"),
            "eclipses.png": (plots.plot_eclipses, "Umbra and penumbra passes: duration against date"),
        }
        for name, (plot, _) in figures.items():
            plot(run.trajectory, stage / name)
        write_json(stage / "summary.json", summary)
        _orbit_report(scenario, run, summary["orbit"], figures, stage).write(stage / "report.html")
    return summary


def _orbit_report(scenario: Scenario, run: OrbitRun, orbit: dict, figures: dict, stage: Path) -> Report:
    report = Report(f"{scenario.name}: mission analysis", scenario.description)
    overview = report.section("Orbit and lifetime")
    fate = (
        f"The spacecraft impacts the Moon on {orbit['impact_utc']} at latitude {orbit['impact_lat_deg']:.2f} deg, "
        f"longitude {orbit['impact_lon_deg']:.2f} deg (ME), {orbit['duration_days']:.1f} days after release."
        if orbit["impact_utc"]
        else f"The spacecraft survives the whole {orbit['duration_days']:.1f}-day span; lowest altitude {orbit['min_alt_km']:.1f} km."
    )
    overview.text(fate)
    o, f, s = scenario.orbit, scenario.forces, scenario.spacecraft
    overview.table(
        [
            ("Epoch (UTC)", orbit["epoch_utc"]),
            ("End (UTC)", orbit["end_utc"]),
            ("Initial orbit", f"{o.peri_alt_km:g} x {o.apo_alt_km:g} km, i = {o.inc_deg:g} deg ({o.frame})"),
            ("Gravity", f"{f.gravity} to degree {f.degree} (GM {orbit['gravity']['gm_km3_s2']} km^3/s^2, R {orbit['gravity']['ref_radius_km']} km)"),
            ("Third bodies", ", ".join(f.third_bodies) or "none"),
            ("Solar radiation pressure", f"{'on' if f.srp else 'off'}: {s.mass_kg} kg, {s.area_m2} m^2, Cr {s.cr}"),
            ("Lowest altitude (km)", orbit["min_alt_km"]),
            ("Periapsis passes", orbit["periapsis_passes"]),
            ("Integrator steps", orbit["steps"]),
            ("Wall time (s)", orbit["wall_s"]),
        ],
        header=["quantity", "value"],
    )
    for name, (_, caption) in figures.items():
        if name != "eclipses.png":
            overview.figure(stage / name, caption)
    eclipses = report.section("Eclipses")
    eclipses.text(
        "Shadow of the Moon and the Earth on the Sun's disc (conical model): umbra means no direct "
        "sunlight, penumbra a partly covered disc. Battery sizing follows the longest umbra."
    )
    eclipses.table(
        [
            ("Umbra passes", orbit["umbra_passes"]),
            ("Total umbra (h)", orbit["umbra_total_h"]),
            ("Longest umbra (min)", orbit["umbra_longest_min"]),
        ],
        header=["quantity", "value"],
    )
    eclipses.figure(stage / "eclipses.png", figures["eclipses.png"][1])
    if scenario.assumptions:
        report.section("Assumptions").items(list(scenario.assumptions), css_class="assume")
    return report


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
from qamar.mission.orbiter import (
    CommsAnalysis,
    analyse_comms,
    analyse_imaging,
    scenario_cameras,
)
from qamar.mission.report import Report
from qamar.mission.scenario import Forces, Orbit, Propagation, RoverMission, Scenario, Spacecraft
from qamar.orbit.elements import state_from_apsides
from qamar.orbit.events import shadow_passes
from qamar.orbit.forces import ForceModel
from qamar.orbit.gravity import GravityField, load_field
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


def force_model(forces: Forces, spacecraft: Spacecraft, field: GravityField | None = None,
                degree: int | None = None) -> ForceModel:
    """The ForceModel of a scenario's ``forces`` and ``spacecraft`` (``degree`` overrides theirs).

    Raises ModelConfigError for an unknown gravity model or a degree above the file's.
    """
    degree = forces.degree if degree is None else degree
    field = load_field(forces.gravity, degree) if field is None else field
    return ForceModel(field=field, degree=degree, third_bodies=tuple(forces.third_bodies), srp=forces.srp,
                      mass_kg=spacecraft.mass_kg, area_m2=spacecraft.area_m2, cr=spacecraft.cr)


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
    model = force_model(forces, spacecraft, field)
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
            target = out_dir / item.name
            if target.is_dir():  # a product folder of an earlier run: replaced whole
                shutil.rmtree(target)
            os.replace(item, target)
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

    Products: summary.json and report.html; with an ``orbit`` trajectory.oem/.csv and PNG
    plots; with a ``comms`` block contacts.csv; with a ``payload`` block the imaging plan and
    coverage maps; with a ``rover`` block the site's light and PSR maps (site_light/, psr.*),
    the traverse (route.geojson, route.csv, route_*.png, timeline.png). Returns the summary.
    Nothing is written to ``out_dir`` if any analysis fails.
    """
    report = Report(f"{scenario.name}: mission analysis", scenario.description)
    summary = {"scenario": scenario.name}
    with staged_output(out_dir) as stage:
        if scenario.orbit is not None:
            run = propagate_orbit(scenario.spacecraft, scenario.orbit, scenario.forces, scenario.propagation, progress)
            summary["orbit"] = _orbit_products(scenario, run, stage, report)
        if scenario.comms or scenario.payload:
            comms = analyse_comms(scenario, run.trajectory)
            summary["comms"] = _comms_products(comms, stage, report)
        if scenario.payload:
            cameras = scenario_cameras(scenario, run.trajectory)
            summary["imaging"] = _imaging_products(scenario, run.trajectory, cameras, comms, stage, report)
            summary["coverage"] = _coverage_products(scenario, run.trajectory, cameras, stage, report)
        if scenario.lifetime:
            summary["lifetime"] = _lifetime_products(scenario, stage, report, progress)
        if scenario.rover is not None:
            summary["rover"] = _rover_products(scenario.rover, stage, report, progress)
        if scenario.assumptions:
            report.section("Assumptions").items(list(scenario.assumptions), css_class="assume")
        write_json(stage / "summary.json", summary)
        report.write(stage / "report.html")
    return summary


def _orbit_products(scenario: Scenario, run: OrbitRun, stage: Path, report: Report) -> dict:
    from qamar.orbit import plots

    orbit = orbit_summary(run)
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
    return orbit



def _comms_products(comms: CommsAnalysis, stage: Path, report: Report) -> dict:
    from qamar.comms.budget import write_contacts_csv
    from qamar.comms.link import budget_table
    from qamar.comms.plots import plot_contacts

    spec, found, summary = comms.spec, comms.contacts, comms.summary
    write_contacts_csv(stage / "contacts.csv", found, spec.radio, spec.downlink.setup_s)
    first_week = (found.start_tdb_s, min(found.stop_tdb_s, found.start_tdb_s + 7 * 86400.0))
    plot_contacts(found, stage / "contacts.png", tracks=comms.tracks, span_tdb_s=first_week)
    section = report.section("Earth stations and downlink")
    section.text(
        f"{len(found.passes)} passes over {len(found.stations)} stations between {summary['start_utc']} and "
        f"{summary['stop_utc']} (elevation mask {found.min_elev_deg:g} deg, line of sight clear of the Moon). "
        f"At least one station hears the spacecraft {summary['any_station_contact_h']:.0f} h of "
        f"{summary['span_h']:.0f} h; mean one-way light time {summary['mean_light_time_s']:.3f} s. Downlinking one "
        f"station at a time, the schedule carries {summary['downlink']['total_mbit']:,.0f} Mbit."
    )
    section.table(
        [[s["name"], s["dish_m"], s["passes"], s["total_contact_h"], s["max_elev_deg"], s["g_over_t_db_k"],
          s["margin_db_at_lowest_rate"]] for s in summary["stations"]],
        header=["station", "dish (m)", "passes", "contact (h)", "max elevation (deg)", "G/T (dB/K)",
                f"margin at {spec.radio.rates_bps[0]:g} bit/s (dB)"],
    )
    mean_range_km = float(np.mean([np.mean(p.range_km) for p in found.passes]))
    station = max(found.stations, key=lambda s: len(found.of(s.name)))
    section.text(f"Link budget at the mean pass range through {station.name}:")
    section.table(budget_table(mean_range_km, spec.radio, station), header=["line", "value"])
    section.figure(stage / "contacts.png", "Passes in the first week; scheduled downlinks darker")
    return {k: v for k, v in summary.items() if k != "passes"}  # every pass is in contacts.csv


def _imaging_products(scenario: Scenario, trajectory, cameras, comms: CommsAnalysis, stage: Path,
                      report: Report) -> dict:
    from qamar.comms.plots import plot_backlog
    from qamar.payload.opportunities import Constraints, write_csv
    from qamar.payload.plan import write_plan_csv
    from qamar.payload.plots import plot_opportunities
    from qamar.payload.targets import parse_target
    from qamar.time import tdb_s_to_utc

    payload = scenario.payload
    section = report.section("Imaging plan")
    if not payload.targets:
        section.text("No targets are listed in payload.targets.")
        return {"targets": []}
    constraints = Constraints(sun_elev_deg=payload.sun_elev_deg)
    imaging = analyse_imaging(scenario, trajectory, cameras, [parse_target(t) for t in payload.targets],
                              constraints, comms.tracks)
    for search in imaging.searches:
        section.text(search.explain() + ".")
    plan = imaging.plan
    result = {"targets": [s.target.name for s in imaging.searches],
              "opportunities": len(imaging.opportunities), "images": 0}
    if plan is None or not plan.images:
        section.text("No image fits the conditions, the on-board storage and the downlink.")
        return result
    write_plan_csv(plan, stage / "plan.csv")
    write_csv(sorted(imaging.opportunities, key=lambda o: -o.score), stage / "opportunities.csv")
    span = {"start_tdb_s": trajectory.start_tdb_s, "stop_tdb_s": trajectory.end_tdb_s}
    plot_opportunities(imaging.opportunities, stage / "opportunities.png", planned=plan.images, **span)
    plot_backlog(plan.backlog, stage / "backlog.png", title="Image backlog on board (planned images)")
    section.text(
        f"{len(plan.images)} images ({plan.bits / 1e6:.1f} Mbit) fit {payload.storage_mbit:g} Mbit of storage "
        f"and the downlink; peak backlog {plan.backlog.peak_backlog_bits / 1e6:.1f} Mbit. Every image is in plan.csv."
    )
    section.table(
        [[tdb_s_to_utc(o.best_tdb_s, 0), o.target, o.camera, round(o.gsd_m, 1), round(o.sun_elev_deg, 1),
          round(o.emission_deg, 1)] for o in plan.images[:25]],
        header=["capture (UTC)", "target", "camera", "GSD (m)", "Sun elevation (deg)", "emission (deg)"],
    )
    section.figure(stage / "opportunities.png", "Imaging windows per target and camera; planned images starred")
    section.figure(stage / "backlog.png", "Image data waiting on board for the downlink")
    result.update(images=len(plan.images), image_mbit=plan.bits / 1e6,
                  peak_backlog_mbit=plan.backlog.peak_backlog_bits / 1e6)
    return result


def _coverage_products(scenario: Scenario, trajectory, cameras, stage: Path, report: Report) -> dict:
    from qamar.payload.coverage import coverage
    from qamar.payload.plots import plot_coverage_global, plot_coverage_polar
    from qamar.payload.targets import band

    payload = scenario.payload
    stop = min(trajectory.end_tdb_s, trajectory.start_tdb_s + payload.coverage_days * 86400.0)
    regions = [band(-90, -80, "south of 80 S"), band(80, 90, "north of 80 N")]
    section = report.section("Coverage")
    result = {}
    for light, suffix in ((None, ""), (payload.sun_elev_deg, "_good_light")):
        cmap = coverage(trajectory, cameras, stop_tdb_s=stop, sun_elev_deg=light)
        result["all" if light is None else "good_light"] = cmap.summary(regions)
        plot_coverage_global(cmap, stage / f"coverage_global{suffix}.png")
        plot_coverage_polar(cmap, stage / f"coverage_south{suffix}.png", pole="south", regions=regions[:1])
    everything, lit = result["all"], result["good_light"]
    section.text(
        f"In the first {(stop - trajectory.start_tdb_s) / 86400.0:.0f} days the cameras see "
        f"{everything['covered_pct']:.1f}% of the Moon, {lit['covered_pct']:.1f}% with the Sun "
        f"{payload.sun_elev_deg[0]:g} to {payload.sun_elev_deg[1]:g} deg high (HEALPix pixels of "
        f"{everything['pixel_km']:.1f} km, sampled every {everything['step_s']:g} s)."
    )
    section.table(
        [[name, everything["covered_pct_by_camera"][name], lit["covered_pct_by_camera"][name]]
         for name in everything["covered_pct_by_camera"]]
        + [[region, everything["regions_pct"][region], lit["regions_pct"][region]] for region in everything["regions_pct"]],
        header=["camera or region", "seen (%)", "seen in good light (%)"],
    )
    section.figure(stage / "coverage_global.png", "Hours in view of any camera")
    section.figure(stage / "coverage_global_good_light.png", "Hours in view under good light")
    section.figure(stage / "coverage_south.png", "South polar view")
    return result


def _lifetime_products(scenario: Scenario, stage: Path, report: Report, progress: bool) -> dict:
    from qamar.orbit.dispersion import run_dispersion_study
    from qamar.orbit.lifetime import lifetime
    from qamar.orbit.plots import plot_lifetime
    from qamar.orbit.study import ELEMENT_COLUMNS, StudySetup

    study, orbit = scenario.lifetime, scenario.orbit
    model = force_model(scenario.forces, scenario.spacecraft)
    t0_tdb_s = float(utc_to_tdb_s(orbit.epoch_utc))
    r_km, v_km_s = state_from_apsides(orbit.peri_alt_km, orbit.apo_alt_km, orbit.inc_deg, orbit.raan_deg, orbit.argp_deg,
                                      orbit.ta_deg, model.field.gm_km3_s2, frame=orbit.frame, t_tdb_s=t0_tdb_s)
    nominal = lifetime(t0_tdb_s, np.concatenate([r_km, v_km_s]), model, study.horizon_days, rtol=study.rtol,
                       progress=progress)
    plot_lifetime(nominal, stage / "lifetime.png")
    result = {"nominal": nominal.summary()}
    section = report.section("Lifetime")
    fate = (f"impacts on {result['nominal']['impact_utc']} after {nominal.lifetime_days:.1f} days"
            if nominal.crashed else f"survives the {study.horizon_days:g}-day horizon")
    section.text(f"Without propulsion the nominal orbit ({scenario.forces.gravity} degree {scenario.forces.degree}, "
                 f"{', '.join(scenario.forces.third_bodies) or 'no third bodies'}, SRP {'on' if scenario.forces.srp else 'off'}) "
                 f"{fate}; lowest periapsis {nominal.min_periapsis_alt_km:.1f} km.")
    section.figure(stage / "lifetime.png", "Periapsis altitude of the nominal orbit")
    if study.members:
        setup = StudySetup(t0_tdb_s, force_model(scenario.forces, scenario.spacecraft, degree=study.degree),
                           horizon_days=study.horizon_days, rtol=study.rtol, frame=orbit.frame)
        elements = {c: getattr(orbit, c) for c in ELEMENT_COLUMNS}
        spread = run_dispersion_study(setup, study.dispersion, elements, study.members, stage / "lifetime_study",
                                      progress=progress)
        result["dispersion"] = spread
        life = spread["lifetime_days"]
        beyond = "beyond the horizon"
        section.text(
            f"{spread['members']} dispersed members (degree {study.degree}, on Dask): {spread['impacting']} impact "
            f"within {study.horizon_days:g} days. Lifetime percentiles (days): 5%: {life['p5'] or beyond}, "
            f"50%: {life['p50'] or beyond}, 95%: {life['p95'] or beyond}. Every member is in "
            "lifetime_study/results.parquet."
        )
        section.table([(k, v) for k, v in study.dispersion.model_dump().items() if v not in (0, 0.0, None)],
                      header=["dispersion (1 sigma)", "value"])
        section.figure(stage / "lifetime_study" / "lifetime_hist.png", "Lifetime histogram of the dispersed members")
        section.figure(stage / "lifetime_study" / "lifetime_cdf.png", "Lifetime distribution (CDF)")
    return result


def _rover_products(mission: RoverMission, stage: Path, report: Report, progress: bool) -> dict:
    """The rover's site light, PSRs and traverse: files in ``stage``, report sections, summary."""
    from qamar.mission import rover as analysis
    from qamar.surface.maps import features_on_map, plot_map, write_illumination
    from qamar.surface.psr import psr_summary, write_psr_geojson, write_psr_raster

    site = analysis.load_site(mission, progress)
    block_m = site.grid.pixel_size_m
    result = {"dem": mission.site.dem, "map_pixel_m": round(block_m, 3), "observer_height_m": site.observer_height_m}

    maps = analysis.site_light_maps(mission, site, progress)
    light = write_illumination(maps, site.grid, stage / "site_light")
    result["sun_fraction_mean"] = light["sun_fraction"]["mean"]
    result["earth_fraction_mean"] = light["earth_fraction"]["mean"]
    result["longest_night_h_max"] = light["longest_night_h"]["max"]
    section = report.section("Site light")
    section.text(
        f"Sun and Earth over the site from {maps.start_utc} to {maps.stop_utc} every {maps.step_h:g} h "
        f"({maps.n_samples} samples), on {block_m:.0f} m blocks of the site DEM ({site.grid.shape[1]} x "
        f"{site.grid.shape[0]}), seen {site.observer_height_m:g} m above the ground, horizons to "
        f"{mission.site.horizon_km:g} km. Maps and GeoTIFFs are in site_light/."
    )
    section.table([(name.replace("_", " "), light[name]["mean"], light[name]["min"], light[name]["max"])
                   for name in ("sun_fraction", "earth_fraction", "sun_and_earth_fraction", "longest_night_h")],
                  header=["map", "mean", "min", "max"])
    for name, caption in (("sun_fraction", "Sunlit fraction (disc-weighted)"), ("earth_fraction", "Earth in view"),
                          ("longest_night_h", "Longest continuous night (h)")):
        if f"{name}_png" in light["files"]:
            section.figure(stage / "site_light" / light["files"][f"{name}_png"], caption)

    psr = None
    if mission.psr is not None:
        psr = analysis.site_psr(mission, site, progress)
        write_psr_geojson(psr, site.grid, stage / "psr.geojson")
        write_psr_raster(psr, site.grid, stage / "psr.tif")
        mask = np.where(psr.mask, 1.0, np.nan)
        plot_map(mask, site.grid, stage / "psr.png", cmap="cool", vmin=0.0, vmax=1.0, label="PSR",
                 title=f"Permanently shadowed regions: {psr.area_km2:,.2f} km2 in {psr.count} regions "
                       f"({mission.psr.years:g} years from {mission.psr.start_utc.date()})")
        doc = psr_summary(psr, site.grid, features_on_map(site.grid))
        result["psr_area_km2"], result["psr_count"] = doc["psr_area_km2"], doc["psr_count"]
        section = report.section("Permanently shadowed regions")
        section.text(
            f"{psr.count} regions never see any part of the Sun in {mission.psr.years:g} years from "
            f"{mission.psr.start_utc.date()} (the Sun's declination envelope, solar longitude every "
            f"{mission.psr.lon_step_deg:g} deg), {doc['psr_area_km2']:,.3f} km2 of {doc['dem_area_km2']:,.1f} km2 "
            f"mapped; the largest {doc['largest_km2']:,.3f} km2. The traverse treats them as "
            f"{'no obstacle' if mission.psr.mode == 'ignore' else mission.psr.mode + 's'}. Polygons in psr.geojson, "
            "mask in psr.tif."
        )
        section.figure(stage / "psr.png", "Permanently shadowed regions of the site")
    else:
        result["psr_area_km2"] = result["psr_count"] = None

    result.update(_traverse_products(mission, site, psr, maps, stage, report))
    rover = mission.vehicle
    section = report.section("Rover assumptions")
    section.text(f"{rover.name}, {rover.mass_kg:g} kg. Values not given in the scenario are the documented "
                 "defaults of qamar.rover.model, each with its source:")
    section.table([(a["field"], str(a["value"]), a["source"]) for a in rover.assumptions()],
                  header=["field", "value", "source"])
    result["assumptions"] = rover.assumptions()
    return result


def _traverse_products(mission: RoverMission, site, psr, maps, stage: Path, report: Report) -> dict:
    """The planned traverse: route.geojson, route.csv, maps and timeline, its report section."""
    from qamar.mission import rover as analysis
    from qamar.rover.maps import plot_route_map, plot_route_timeline
    from qamar.rover.spacetime import contact_model

    spec, rover = mission.traverse, mission.vehicle
    traverse = analysis.plan_traverse(mission, site, psr)
    plan = traverse.result
    doc = plan.summary()
    contact = contact_model(rover, analysis.lander_site(mission))
    result = {"feasible": plan.feasible, "reason": plan.reason, "contact_model": contact,
              "planning_factor": traverse.factor,
              "max_slope_limit_deg": traverse.max_slope_limit_deg, "start_utc": doc.get("start_utc"),
              "arrival_utc": doc.get("arrival_utc")}
    for key in ("length_m", "duration_h", "driving_h", "waiting_h", "hibernating_h", "max_slope_deg",
                "min_battery_wh", "end_battery_wh", "reserve_wh"):
        result[key] = doc.get(key)
    section = report.section("Traverse")
    points = analysis.map_points(mission, site.dem)
    route_xy = (np.array([p[2] for p in points[:1]]), np.array([p[3] for p in points[:1]]))
    if plan.feasible:
        events = analysis.route_events(traverse, site.dem)
        events.write_csv(stage / "route.csv")
        plan.route.write_geojson(stage / "route.geojson", {
            "rover": rover.name, "start_utc": result["start_utc"], "arrival_utc": result["arrival_utc"],
            "vertex_utc": events.vertex_utc(plan.route)})
        plot_route_timeline(events.t_tdb_s, events.battery_wh, events.solar_w, events.sun_visible, events.contact,
                            events.action, stage / "timeline.png", reserve_wh=plan.reserve_wh,
                            capacity_wh=rover.power.battery_wh,
                            title=f"{rover.name}: battery, array power, Sun and Earth contact along the traverse")
        route_xy = (plan.route.x, plan.route.y)
        result["events"] = int(events.elapsed_h.size)
        result["contact_fraction"] = float(np.sum(np.diff(events.elapsed_h) * events.contact[1:])
                                           / max(events.elapsed_h[-1], 1e-12))
        section.text(
            f"Feasible: from {result['start_utc']} the rover reaches the goal on {result['arrival_utc']}, "
            f"{plan.route.length_m:,.0f} m in {result['duration_h']:.1f} h ({result['driving_h']:.1f} h driving, "
            f"{result['waiting_h']:.1f} h waiting awake, {result['hibernating_h']:.1f} h hibernating), steepest "
            f"slope {plan.route.max_slope_deg:.1f} deg, battery never below {result['min_battery_wh']:.1f} Wh "
            f"(reserve {plan.reserve_wh:g} Wh). Every event is in route.csv (UTC), the route in route.geojson."
        )
    else:
        section.text(f"Not feasible: {plan.reason}.")
    section.text(f"Earth contact: {contact}; at least once every {rover.comms.max_contact_gap_h:g} h. Light and "
                 f"contact on {traverse.factor} x {traverse.factor} pixel planning blocks, the route refined on the "
                 "DEM's pixels.")
    section.table([
        ("Start (lat, lon deg)", f"{spec.start.lat_deg:.5f}, {spec.start.lon_deg:.4f}"),
        ("Targets", "; ".join(f"{p.lat_deg:.5f}, {p.lon_deg:.4f}" for p in spec.targets) or "none"),
        ("Goal (lat, lon deg)", f"{spec.goal.lat_deg:.5f}, {spec.goal.lon_deg:.4f}"),
        ("Feasible", "yes" if plan.feasible else "no"),
        ("Length (m)", result["length_m"]),
        ("Duration (h)", result["duration_h"]),
        ("Steepest slope (deg)", result["max_slope_deg"]),
        ("Slope limit (deg)", traverse.max_slope_limit_deg),
        ("Lowest battery (Wh)", result["min_battery_wh"]),
        ("Safe haven at the goal (h)", spec.haven_h),
        ("Planning blocks (pixels)", f"{traverse.factor} x {traverse.factor}"),
        ("Light span planned in", f"{spec.days:g} days in {spec.step_h:g} h steps"),
    ], header=["quantity", "value"])
    title = "Planned traverse" if plan.feasible else "Start and goal (no feasible traverse)"
    plot_route_map(site.dem, route_xy, stage / "route_hillshade.png", points=points,
                   title=f"{title} over the terrain (site DEM {site.dem.pixel_size_m:.0f} m)")
    plot_route_map(site.dem, route_xy, stage / "route_sun.png", points=points, values=maps.sun_fraction,
                   values_dem=site.grid, label="sunlit fraction", cmap="inferno", vmin=0.0, vmax=1.0,
                   title=f"{title} over the sunlit fraction, {maps.start_utc[:10]} to {maps.stop_utc[:10]}")
    section.figure(stage / "route_hillshade.png", "The route over the site's relief and elevation")
    section.figure(stage / "route_sun.png", "The route over the site's sunlit fraction")
    if plan.feasible:
        section.figure(stage / "timeline.png", "Battery (with the reserve; grey: waiting, darker: hibernating), array "
                                               "power, Sun visible and Earth contact along the traverse")
    return result

"""Rehearsal: the twin, the link and the ground run together on a traverse (issue 7, item 7).

:func:`rehearse` drives a planned traverse: a spatiotemporal plan
(:func:`qamar.rover.spacetime.plan_spacetime`) as :func:`spacetime_sequence` (its waits kept in
the release times), or the static route (:func:`plan_traverse`, leg by leg through the targets
to the goal) as :func:`traverse_sequence` (SET_MODE DRIVE, one DRIVE_TO per route vertex
released when the previous drive should be done, an IMAGE at each target and at the goal). The
sequence goes to a :class:`~qamar.ops.ground.GroundService`, which releases it over a
:class:`~qamar.ops.link.DelayedLink` to a :class:`~qamar.ops.twin.RoverTwin`, all on one
:class:`~qamar.ops.link.SimClock`, until every command is settled (or ``max_hours``); then the
twin stops and the link drains. Halfway through it replays a copy of the first DRIVE_TO and
sends a NOOP signed with a wrong key (``attacks``): the rover must refuse both. Operators send
failed commands again (``retries``). :func:`rehearse_scenario` does all this for a scenario's
``rover`` block (:func:`load_site`).

Products in the output folder: ``summary.json`` (:func:`summary_counts`), ``report.html``
(timeline, route driven, battery, link windows, alarms), ``route.png``, ``battery.png``,
``route.geojson`` (the plan), ``sequence.txt`` and the archive ``ops.db`` (SQLite; the URL is
``summary['archive']``). Counts close: every telecommand that entered the uplink was refused,
completed, failed, still running, lost or still in the link, and every telemetry packet the
twin emitted was received (and archived once), lost, or is still in the link.

The archive runs with ``synchronous=NORMAL`` and the ground ingests in 60 s batches: a
rehearsal is a simulation, and a multi-day one writes tens of thousands of packets.
"""

from __future__ import annotations

import html
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qamar.errors import ModelConfigError
from qamar.ops.archive import PacketArchive
from qamar.ops.ground import GroundConfig, GroundService
from qamar.ops.link import DelayedLink, Hop, SimClock, describe_windows, lander_rover_hop, range_line_of_sight
from qamar.ops.packets import CommandSigner
from qamar.ops.sequence import CommandSequence, TimedCommand
from qamar.ops.twin import LightModel, RoverTwin, TwinConfig
from qamar.rover.model import RoverSpec
from qamar.rover.plan import Route, plan_route
from qamar.rover.spacetime import SpacetimeResult
from qamar.rover.traverse import CostMap
from qamar.surface.terrain import lat_lon_to_xy, pixel_lat_lon
from qamar.time import tai_s_to_utc, utc_to_tai_s

_log = logging.getLogger(__name__)
FINAL_STAGES = ("COMPLETED", "FAILED")


@dataclass
class RehearsalConfig:
    """How the rehearsal runs (all assumptions, user-changeable).

    ``lead_s``: first release after the start; ``slack``: each DRIVE_TO is released after the
    previous leg's driving time times ``1 + slack`` (the twin queues drives, so an early release
    only waits on board); ``max_hours``: stop even if commands are not settled; ``drain_hours``:
    how long the link may take to empty afterwards; ``attacks``: inject a replayed and a forged
    telecommand halfway; ``retries``: the operators send a command that failed (timeout, lost,
    or refused by the rover's state, e.g. hibernating) again up to this many times, looking
    every ``check_s``, and not while the last HOUSEKEEPING says the rover hibernates (a ground
    console check, not an onboard retransmission: telecommand
    frames are not retransmitted by the link model); ``seed``: the link's loss draws.
    """

    lead_s: float = 60.0
    slack: float = 0.1
    max_hours: float = 72.0
    drain_hours: float = 48.0
    attacks: bool = True
    retries: int = 2
    check_s: float = 600.0
    seed: int = 0
    key: bytes = b"rehearsal-key-not-for-flight-use"  # 32 octets: HMAC-SHA-256 wants at least the hash length
    twin: TwinConfig = field(default_factory=TwinConfig)


def plan_traverse(costs: CostMap, rover: RoverSpec, start_lat_lon: tuple[float, float],
                  waypoints: Sequence[tuple[float, float]]) -> tuple[Route, list[int]]:
    """The static route from the start through ``waypoints`` (ME deg), leg by leg, and the vertex
    index where each waypoint is reached. Raises ModelConfigError with the planner's reason."""
    routes, ends, here = [], [], start_lat_lon
    for i, point in enumerate(waypoints):
        leg = plan_route(costs, here, point, rover)
        if not leg.feasible:
            raise ModelConfigError(f"no route to waypoint {i + 1} ({point[0]:g}, {point[1]:g}): {leg.reason}")
        routes.append(leg)
        here = (float(leg.lat_deg[-1]), float(leg.lon_deg[-1]))
    first = routes[0]
    keys = ("rows", "cols", "x", "y", "lat_deg", "lon_deg", "elevation_m", "segment_max_slope_deg")
    joined = {k: np.concatenate([getattr(first, k)] + [getattr(r, k)[1:] for r in routes[1:]]) for k in keys}
    distance, cost, offset_m, offset_c = [first.distance_m], [first.cum_cost], first.distance_m[-1], first.cum_cost[-1]
    count = first.rows.size
    ends.append(count - 1)
    for r in routes[1:]:
        distance.append(r.distance_m[1:] + offset_m)
        cost.append(r.cum_cost[1:] + offset_c)
        offset_m, offset_c = offset_m + r.distance_m[-1], offset_c + r.cum_cost[-1]
        count += r.rows.size - 1
        ends.append(count - 1)
    route = Route(True, None, distance_m=np.concatenate(distance), cum_cost=np.concatenate(cost),
                  grid_cost=float(sum(r.grid_cost for r in routes)), expanded=sum(r.expanded for r in routes),
                  speed_m_per_s=first.speed_m_per_s, runtime_s=sum(r.runtime_s for r in routes),
                  crs=first.crs, proj4=first.proj4, **joined)
    return route, ends


def traverse_sequence(route: Route, stops: Sequence[int], start_utc: str, speed_m_per_s: float,
                      config: RehearsalConfig | None = None, name: str = "traverse") -> CommandSequence:
    """The route as a time-tagged sequence (offsets from ``start_utc``): SET_MODE DRIVE at
    ``lead_s``, one DRIVE_TO per vertex after the first, each released when the previous drive
    should end (driving time x (1 + slack)), and an IMAGE after the DRIVE_TO of each vertex in
    ``stops``. The speed is sent as ``speed_cm_s`` (the dictionary allows 0.1..5 cm/s)."""
    config = config or RehearsalConfig()
    dictionary_speed_cm_s = min(5.0, max(0.1, speed_m_per_s * 100.0))
    parse = _parser()
    entries = [TimedCommand(parse("SET_MODE mode=DRIVE"), offset_s=config.lead_s)]
    t = config.lead_s
    for i in range(1, route.rows.size):
        lat, lon = float(route.lat_deg[i]), float(route.lon_deg[i]) % 360.0
        entries.append(TimedCommand(parse(f"DRIVE_TO lat={lat:.9f} lon={lon:.9f} speed_cm_s={dictionary_speed_cm_s:g}"),
                                    offset_s=round(t, 3)))
        if i in stops:
            entries.append(TimedCommand(parse("IMAGE camera=NAVCAM_LEFT"), offset_s=round(t, 3)))
        t += (route.distance_m[i] - route.distance_m[i - 1]) / (dictionary_speed_cm_s / 100.0) * (1.0 + config.slack)
    return CommandSequence(name, tuple(entries), start_utc)


def spacetime_sequence(plan: SpacetimeResult, costs: CostMap, start_utc: str, speed_m_per_s: float,
                       config: RehearsalConfig | None = None, spacing_m: float = 100.0,
                       name: str = "spatiotemporal traverse") -> CommandSequence:
    """A spatiotemporal plan's schedule as a sequence (offsets from ``start_utc``, the plan's
    start): SET_MODE DRIVE at ``lead_s``, then a DRIVE_TO to the schedule's position every
    ``spacing_m`` of driving and wherever a wait follows, each released when the schedule
    leaves the previous one (so the waits of the plan are kept), and an IMAGE at the goal."""
    config = config or RehearsalConfig()
    speed_cm_s = min(5.0, max(0.1, speed_m_per_s * 100.0))
    parse = _parser()
    s = plan.schedule
    lat, lon = pixel_lat_lon(costs.dem)
    entries = [TimedCommand(parse("SET_MODE mode=DRIVE"), offset_s=config.lead_s)]
    depart_s, driven_m, n = config.lead_s, 0.0, s.t_h.size
    for i in range(1, n):
        t_s = float(s.t_h[i] - s.t_h[0]) * 3600.0
        if s.action[i] != "drive":
            depart_s = max(depart_s, t_s)
            continue
        steps = math.hypot(float(s.rows[i] - s.rows[i - 1]), float(s.cols[i] - s.cols[i - 1]))
        driven_m += steps * float(costs.step_m[s.rows[i], s.cols[i]])
        if driven_m >= spacing_m or i == n - 1 or s.action[i + 1] != "drive":
            r, c = int(s.rows[i]), int(s.cols[i])
            line = f"DRIVE_TO lat={lat[r, c]:.9f} lon={lon[r, c] % 360.0:.9f} speed_cm_s={speed_cm_s:g}"
            entries.append(TimedCommand(parse(line), offset_s=round(depart_s, 3)))
            depart_s, driven_m = max(depart_s, t_s), 0.0
    entries.append(TimedCommand(parse("IMAGE camera=NAVCAM_LEFT"), offset_s=entries[-1].offset_s))
    return CommandSequence(name, tuple(entries), start_utc)


def _parser():
    from qamar.ops.dictionary import default_dictionary

    return default_dictionary().parse_command


@dataclass
class Rehearsal:
    """What ran: the clock, link, ground, twin, the planned route and sequence, and the attacks sent."""

    clock: SimClock
    link: DelayedLink
    ground: GroundService
    twin: RoverTwin
    route: Route
    sequence: CommandSequence
    start_tai_s: float
    end_tai_s: float = math.nan
    attacks_sent: int = 0
    retries: int = 0
    plan_note: str = ""
    wall_s: float = 0.0


def rehearse(costs: CostMap, rover: RoverSpec, light: LightModel, start_utc: str, start_lat_lon: tuple[float, float],
             waypoints: Sequence[tuple[float, float]], earth_hop: Hop, out_dir: str | Path, *,
             lander_lat_lon: tuple[float, float] | None = None, rover_loss_probability: float = 0.0,
             config: RehearsalConfig | None = None, plan: SpacetimeResult | None = None,
             plan_note: str | None = None) -> dict:
    """Run a rehearsal and write its products to ``out_dir`` (module docstring); the summary.

    ``earth_hop`` is the Earth <-> lander hop (:func:`qamar.ops.link.earth_lander_hop` over the
    span, or any Hop); the lander <-> rover hop is open within ``rover.comms.lander_range_m`` of
    ``lander_lat_lon`` (always, without a lander). Raises ModelConfigError if the traverse
    cannot be planned. With ``plan`` (a feasible :func:`qamar.rover.spacetime.plan_spacetime` result
    on ``costs`` from ``start_utc``) the rover drives that plan's route on its schedule
    (:func:`spacetime_sequence`, absolute times); otherwise the static route, from the first open link.
    """
    config = config or RehearsalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    start_tai_s = float(utc_to_tai_s(start_utc))
    if plan is not None:
        route = plan.route
        sequence = spacetime_sequence(plan, costs, plan.start_utc, rover.mobility.speed_m_per_s, config)
    else:
        route, stops = plan_traverse(costs, rover, start_lat_lon, waypoints)
        sequence = traverse_sequence(route, stops, start_utc, rover.mobility.speed_m_per_s, config)

    clock = SimClock(start_tai_s)
    holder: dict = {}
    available = None
    if lander_lat_lon is not None:
        lander_xy = [float(v) for v in lat_lon_to_xy(lander_lat_lon[0], lander_lat_lon[1], costs.dem)]
        available = range_line_of_sight(lambda t: holder["twin"].position_xy(t), lander_xy, rover.comms.lander_range_m)
    link = DelayedLink(clock, earth_hop, lander_rover_hop(available, loss_probability=rover_loss_probability),
                       seed=config.seed)
    db = out / "ops.db"
    for stale in (db, db.with_name("ops.db-wal"), db.with_name("ops.db-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    drive_offsets_s = [e.offset_s for e in sequence.entries if e.call.command.name == "DRIVE_TO"]
    longest_leg_s = max(float(np.diff(route.distance_m).max(initial=0.0)) / rover.mobility.speed_m_per_s,
                        float(np.diff(drive_offsets_s).max(initial=0.0)))  # a drive may last until the next release
    batch_s = 60.0
    ground_config = GroundConfig(ingest_batch_s=batch_s, ack_margin_s=GroundConfig().ack_margin_s + batch_s)
    ground_config.completion_s["DRIVE_TO"] = 2.0 * longest_leg_s * (1.0 + config.slack) + 3600.0
    ground = GroundService(PacketArchive(url, synchronous="NORMAL"), clock, link, config.key, config=ground_config)
    twin = RoverTwin(clock, link.send_down, costs, rover, light, start_lat_lon, config.key, config=config.twin,
                     state_path=out / "twin-state.json")
    holder["twin"] = twin
    first_contact_tai_s = link.next_all_open(start_tai_s) if plan is None else float(utc_to_tai_s(plan.start_utc))
    if not math.isfinite(first_contact_tai_s):
        raise ModelConfigError(f"the link to the rover never opens after {start_utc}: check the lander's site, the "
                               "stations and the span")
    link.on_uplink_delivered = twin.receive
    twin.start()
    ids = ground.submit_sequence(sequence, start_tai_s=first_contact_tai_s)
    result = Rehearsal(clock, link, ground, twin, route, sequence, start_tai_s,
                       plan_note=plan_note or ("spatiotemporal plan" if plan else "static route (plan_route)"))
    releases = sequence.release_times_tai_s(first_contact_tai_s)
    if config.attacks:
        clock.at(0.5 * (releases[0] + min(releases[-1], start_tai_s + config.max_hours * 3600.0)) + 1.0, _attack,
                 result, ids)

    stop_tai_s = start_tai_s + config.max_hours * 3600.0
    tries = dict.fromkeys(ids, 0)
    origin = {cid: k for k, cid in enumerate(ids)}  # place in the sequence, kept by a command sent again
    while clock.now_tai_s < stop_tai_s:
        clock.run_until(min(stop_tai_s, clock.now_tai_s + config.check_s))
        hibernating = _last_mode(ground, clock.now_tai_s - 86400.0, clock.now_tai_s) == "HIBERNATE"
        driven = max((origin[i] for i in ids if ground.command(i).stage == "COMPLETED"
                      and ground.command(i).line.startswith("DRIVE_TO")), default=-1)
        for cid in sorted(tries, key=origin.get) if not hibernating else ():  # the operators' policy: send a
            record = ground.command(cid)  # failed command again, in sequence order, once the rover is awake,
            if record.line.startswith("DRIVE_TO") and origin[cid] < driven:  # but never back to a passed waypoint
                tries[cid] = config.retries
            if record.stage == "FAILED" and tries[cid] < config.retries:
                again = ground.submit(record.line, sequence="retry")
                tries[again] = tries.pop(cid) + 1
                origin[again] = origin[cid]
                result.retries += 1
                ids.append(again)
        settled = all(ground.command(i).stage in FINAL_STAGES and not (
            ground.command(i).stage == "FAILED" and tries.get(i, config.retries) < config.retries) for i in ids)
        if settled and clock.now_tai_s >= releases[-1] and not twin.busy:
            break
    twin.stop()
    result.end_tai_s = clock.now_tai_s
    drain_until = clock.now_tai_s + config.drain_hours * 3600.0
    down, up = link.counts["down"], link.counts["up"]
    while (down.waiting or down.in_flight or up.waiting or up.in_flight) and clock.now_tai_s < drain_until:
        clock.run_until(min(drain_until, clock.now_tai_s + 600.0))
    clock.run_for(batch_s + 1.0)  # the last batch into the archive
    result.wall_s = time.perf_counter() - began
    summary = summary_counts(result, url)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "sequence.txt").write_text(_sequence_text(sequence, first_contact_tai_s))
    route.write_geojson(out / "route.geojson")
    write_report(result, summary, out)
    ground.archive.close()
    return summary


# --- from a scenario -----------------------------------------------------------------------------

CHINA_DSN = ("Kashgar", "Jiamusi", "Neuquen")  # Chang'e-8 is a CNSA mission: its deep-space network (mission-brief.md sec. 4)


@dataclass
class Site:
    """Everything a twin needs from a scenario's rover block, on a crop of the site DEM.

    ``lander_site`` carries the lander's height (terrain + ``comms.lander_antenna_height_m``)
    and its horizon (the light's horizon map at the lander's cell) for the Earth hop.
    """

    costs: CostMap
    rover: RoverSpec
    light: object
    start_utc: str
    start_lat_lon: tuple[float, float]
    waypoints: list[tuple[float, float]]
    lander_lat_lon: tuple[float, float] | None
    lander_site: object | None
    stations: tuple
    max_hours: float
    haven_h: float = 0.0


def _resolve(name: str, base: Path) -> Path:
    from qamar import data

    local = base / name
    return local if local.exists() else data.path(name)


def load_site(scenario_path: str | Path, *, start_utc: str | None = None, hours: float | None = None,
              light_factor: int = 10, light_step_h: float = 0.25, margin_px: int = 150) -> Site:
    """The site of the scenario's ``rover`` block, ready for a twin or a rehearsal.

    The site DEM (its ``window_px`` if given) is cropped to the box around the traverse's
    points and the lander, ``margin_px`` pixels wider; the cost map keeps the rover's slope
    limit (or the traverse's ``max_slope_deg``) and, with ``craters``, the catalogued craters
    (PSR rasters are not computed here: the scenario's PSR span takes hours). The light comes
    from :meth:`SiteLight.build` on ``light_factor`` blocks (terrain beyond the crop from the
    ``far_dem``) over ``hours`` (default: the traverse's ``days``) from ``start_utc`` (default:
    the traverse's). Stations: the scenario's ``comms`` block, else the China DSN (Kashgar,
    Jiamusi, Neuquen). Raises DataFormatError/ModelConfigError for a scenario without a rover block.
    """
    import functools

    from qamar.comms.stations import station
    from qamar.mission.scenario import load_scenario
    from qamar.ops.link import LanderSite
    from qamar.ops.twin import SiteLight
    from qamar.rover.traverse import cost_map
    from qamar.surface.illumination import pixel_of
    from qamar.surface.terrain import read_dem, xy_to_pixel

    scenario = load_scenario(scenario_path)
    mission = scenario.rover
    if mission is None:
        raise ModelConfigError(f"{scenario_path} has no rover block: give one (see scenarios/change8-rover.yaml)")
    base = Path(scenario_path).parent
    site, traverse = mission.site, mission.traverse
    points = [(p.lat_deg, p.lon_deg) for p in (traverse.start, *traverse.targets, traverse.goal)]
    lander = (mission.lander.lat_deg, mission.lander.lon_deg) if mission.lander else None
    dem_path = _resolve(site.dem, base)
    whole = read_dem(dem_path, window=None if site.window_px is None else
                     ((site.window_px[1], site.window_px[1] + site.window_px[3]),
                      (site.window_px[0], site.window_px[0] + site.window_px[2])))
    rc = [xy_to_pixel(*lat_lon_to_xy(lat, lon, whole), whole) for lat, lon in points + ([lander] if lander else [])]
    rows = [float(r) for r, _ in rc]
    cols = [float(c) for _, c in rc]
    ny, nx = whole.shape
    r0, r1 = max(0, int(min(rows)) - margin_px), min(ny, int(max(rows)) + margin_px + 1)
    c0, c1 = max(0, int(min(cols)) - margin_px), min(nx, int(max(cols)) + margin_px + 1)
    off_r, off_c = (site.window_px[1], site.window_px[0]) if site.window_px else (0, 0)
    dem = read_dem(dem_path, window=((off_r + r0, off_r + r1), (off_c + c0, off_c + c1)))
    rover = mission.vehicle
    costs = cost_map(dem, rover, max_slope_deg=traverse.max_slope_deg, craters=traverse.craters)
    start = start_utc or traverse.start_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    span_h = hours if hours is not None else traverse.days * 24.0
    far = read_dem(_resolve(site.far_dem, base)) if site.far_dem else None
    light = SiteLight.build(dem, start, span_h, step_h=light_step_h, factor=light_factor, far_dem=far,
                            max_distance_km=site.horizon_km,
                            observer_height_m=site.observer_height_m or rover.comms.rover_antenna_height_m)
    lander_site = None
    if lander is not None:
        cell = pixel_of(light.grid, *lander)
        height = float(light.grid.elevation_m[cell]) + rover.comms.lander_antenna_height_m
        lander_site = LanderSite(lander[0], lander[1], height, functools.partial(light.horizon.elevation_deg, *cell))
    stations = scenario.comms.stations if scenario.comms else tuple(station(n) for n in CHINA_DSN)
    return Site(costs, rover, light, start, points[0], points[1:], lander, lander_site, stations, span_h,
                traverse.haven_h)


def rehearse_scenario(scenario_path: str | Path, out_dir: str | Path, *, hours: float | None = None,
                      loss_probability: float = 0.01, config: RehearsalConfig | None = None,
                      light_factor: int | None = None, spatiotemporal: bool = True, margin_px: int = 150) -> dict:
    """:func:`rehearse` on a scenario's site and traverse (:func:`load_site`) with the Earth hop
    from the geometry (:func:`qamar.ops.link.earth_lander_hop`: the stations, the lander's
    site and horizon) losing ``loss_probability`` of the packets; the summary. ``light_factor``
    (default: the scenario's ``site.map_factor``) is the block size of the light and the plan. The traverse is the
    spatiotemporal plan on the light's blocks (the scenario's ``haven_h`` at the goal), or with
    ``spatiotemporal`` False (or when that plan is infeasible: the summary's ``plan`` says why) the
    static route. ``margin_px``: the crop around the traverse (:func:`load_site`)."""
    from qamar.ops.link import earth_lander_hop

    config = config or RehearsalConfig()
    if light_factor is None:
        from qamar.mission.scenario import load_scenario

        mission = load_scenario(scenario_path).rover
        light_factor = mission.site.map_factor if mission is not None else 10
    site = load_site(scenario_path, hours=hours, light_factor=light_factor, margin_px=margin_px)
    config.max_hours = min(config.max_hours, site.max_hours) if hours is None else hours
    t0 = float(utc_to_tai_s(site.start_utc))
    lander_site = site.lander_site
    if lander_site is None:
        from qamar.ops.link import LanderSite

        lander_site = LanderSite(*site.start_lat_lon)
    earth = earth_lander_hop(site.stations, lander_site, t0, t0 + (site.max_hours + config.drain_hours) * 3600.0,
                             loss_probability=loss_probability)
    plan, note = None, "static route (plan_route), from the first open link"
    if spatiotemporal:
        plan = _spacetime_plan(site, light_factor, earth.next_open(t0))
        if plan.feasible:
            note = f"spatiotemporal plan (plan_spacetime) from {plan.start_utc}, the first open link"
            if hours is None:  # long enough for the plan's arrival (and an hour), within the light's span
                arrival_h = (float(utc_to_tai_s(plan.start_utc)) - t0) / 3600.0 + float(plan.schedule.t_h[-1]) + 1.0
                config.max_hours = min(site.max_hours, max(config.max_hours, arrival_h))
        else:
            note = f"static route: the spatiotemporal plan is infeasible ({plan.reason})"
            _log.warning("%s", note)
            plan = None
    return rehearse(site.costs, site.rover, site.light, site.start_utc, site.start_lat_lon, site.waypoints, earth,
                    out_dir, lander_lat_lon=site.lander_lat_lon, config=config, plan=plan, plan_note=note)


def _spacetime_plan(site: Site, factor: int, from_tai_s: float) -> SpacetimeResult:
    """The spatiotemporal plan of the site's traverse on the light's blocks (contact through the
    lander), starting at the first light step at or after ``from_tai_s`` (the first open link)."""
    from qamar.ops.link import LanderSite, tai_to_tdb_s
    from qamar.rover.spacetime import light_grid, plan_spacetime
    from qamar.surface.illumination import BodyTracks
    from qamar.time import tdb_s_to_utc

    light = site.light
    k0 = int(np.searchsorted(light.tracks.t_tdb_s, float(tai_to_tdb_s(from_tai_s)) if math.isfinite(from_tai_s)
                             else light.tracks.t_tdb_s[0]))
    if k0 >= light.tracks.n - 1:
        return SpacetimeResult(False, "the link does not open within the light's span")
    tracks = BodyTracks(light.tracks.t_tdb_s[k0:], light.tracks.sun_me_km[k0:], light.tracks.earth_me_km[k0:])
    lander = LanderSite(*site.lander_lat_lon) if site.lander_lat_lon else None
    grid = light_grid(light.grid, light.horizon, tracks, site.rover, lander)
    return plan_spacetime(site.costs, grid, site.start_lat_lon, site.waypoints, site.rover, factor=factor,
                          start_utc=tdb_s_to_utc(float(tracks.t_tdb_s[0]), 0), haven_h=site.haven_h)


def _last_mode(ground: GroundService, start_tai_s: float, end_tai_s: float) -> str | None:
    """The rover's mode in the last HOUSEKEEPING the ground archived between the two times (None: none)."""
    apid = ground.dictionary.apids[ground.dictionary.telemetry_packet("HOUSEKEEPING").apid]
    mode = None
    for _, decoded in ground.replay(start_tai_s, end_tai_s + 1.0, [apid]):
        if decoded is not None:
            mode = decoded.values["mode"]
    return mode


def _attack(result: Rehearsal, ids: list[int]) -> None:
    """Replay the first DRIVE_TO the ground sent, and send a NOOP signed with a wrong key."""
    ground, link = result.ground, result.link
    sent = [ground.command(i) for i in ids if ground.command(i).packet_hex and ground.command(i).line.startswith("DRIVE")]
    if sent:
        link.send_up(bytes.fromhex(sent[0].packet_hex))
        result.attacks_sent += 1
    forged = CommandSigner(b"an-attacker-without-the-real-key", next_arsn=0xFFFF0000)  # never a real ARSN
    link.send_up(forged.sign("NOOP", result.clock.now_tai_s))
    result.attacks_sent += 1
    result.twin.note(f"rehearsal: {result.attacks_sent} hostile telecommands injected (a replay, a forgery)")


def summary_counts(result: Rehearsal, url: str) -> dict:
    """The rehearsal's numbers (see the module docstring for how they close)."""
    link, ground, twin = result.link, result.ground, result.twin
    up, down = link.counts["up"], link.counts["down"]
    commands = ground.commands()
    stages = {s: sum(1 for r in commands if r.stage == s) for s in ("QUEUED", "RELEASED", "SENT", "ACKNOWLEDGED",
                                                                    "COMPLETED", "FAILED")}
    timeouts = sum(1 for r in commands if r.stage == "FAILED" and (r.reason or "").endswith("TIMEOUT"))
    running = twin.counts.accepted - twin.counts.completed - twin.counts.failed
    tm_apids = {result.ground.dictionary.apids[t.apid] for t in result.ground.dictionary.telemetry}
    checks = ground.archive.check_sequences()
    archived = sum(ground.archive.count(a) for a in tm_apids)
    lat, lon = twin.lat_lon
    soc = [s.battery_wh for s in twin.log] or [twin.battery_wh]
    return {
        "archive": url,
        "plan": result.plan_note,
        "start_utc": tai_s_to_utc(result.start_tai_s), "end_utc": tai_s_to_utc(result.end_tai_s),
        "simulated_h": round((result.end_tai_s - result.start_tai_s) / 3600.0, 3),
        "wall_s": round(result.wall_s, 2),
        "commands_queued": len(commands),
        "commands_retried": result.retries,
        "commands_sent": up.sent,
        "commands_hostile": result.attacks_sent,
        "commands_received": twin.counts.received,
        "commands_accepted": twin.counts.accepted,
        "commands_completed": twin.counts.completed,
        "commands_refused": twin.counts.refused_total,
        "commands_refused_by_reason": dict(twin.counts.refused),
        "commands_failed": twin.counts.failed,
        "commands_running": running,
        "commands_lost": up.lost_total,
        "commands_in_link": up.waiting + up.in_flight,
        "ground_stages": stages,
        "ground_timeouts": timeouts,
        "packets_emitted": twin.counts.emitted,
        "packets_emitted_by_packet": dict(twin.counts.emitted_by_packet),
        "packets_received": down.delivered,
        "packets_lost": down.lost_total,
        "packets_in_link": down.waiting + down.in_flight,
        "packets_archived": archived,
        "archive_sequence_gaps": sum(checks[a].gaps for a in tm_apids if a in checks),
        "archive_sequence_repeated": sum(checks[a].repeated for a in tm_apids if a in checks),
        "archive_sequence_backwards": sum(checks[a].backwards for a in tm_apids if a in checks),
        "alarms": len(ground.alarms()),
        "route_planned_m": round(result.route.length_m, 2),
        "odometer_m": round(twin.odometer_m, 2),
        "final_position": {"lat_deg": lat, "lon_deg": lon},
        "goal": {"lat_deg": float(result.route.lat_deg[-1]), "lon_deg": float(result.route.lon_deg[-1]) % 360.0},
        "battery_min_wh": round(min(soc), 3), "battery_end_wh": round(twin.battery_wh, 3),
        "hibernated_h": round(sum(b.t_tai_s - a.t_tai_s for a, b in zip(twin.log, twin.log[1:])
                                  if b.mode == "HIBERNATE" and a.mode == "HIBERNATE") / 3600.0, 3),
    }


def _sequence_text(sequence: CommandSequence, start_tai_s: float) -> str:
    times = sequence.release_times_tai_s(start_tai_s)
    return "".join(f"{tai_s_to_utc(t)}  {entry.call}\n" for entry, t in zip(sequence.entries, times))


# --- report -------------------------------------------------------------------------------------


def _hours(result: Rehearsal, t_tai_s) -> np.ndarray:
    return (np.asarray(t_tai_s, dtype=float) - result.start_tai_s) / 3600.0


def _plot_route(result: Rehearsal, path: Path) -> None:
    from matplotlib.figure import Figure

    costs, twin = result.twin.costs, result.twin
    dem = costs.dem
    t = dem.transform
    ny, nx = dem.shape
    extent = (t.c, t.c + t.a * nx, t.f + t.e * ny, t.f)
    fig = Figure(figsize=(7, 6.5))
    ax = fig.subplots()
    ax.imshow(dem.elevation_m, cmap="gray", extent=extent)
    blocked = np.ma.masked_where(costs.blocked == 0, np.ones(dem.shape))
    ax.imshow(blocked, cmap="autumn", alpha=0.35, extent=extent)
    ax.plot(result.route.x, result.route.y, "--", color="tab:red", lw=1.5, label="planned")
    track = np.array([(x, y) for _, x, y in twin.track_xy])
    ax.plot(track[:, 0], track[:, 1], color="tab:blue", lw=2, label="driven")
    ax.plot(*track[0], "o", color="tab:green", label="start")
    ax.plot(result.route.x[-1], result.route.y[-1], "*", ms=12, color="gold", label="goal")
    ax.set_xlabel("map x (m)")
    ax.set_ylabel("map y (m)")
    ax.set_title("route planned and driven (orange: blocked for the rover)")
    pad = max(200.0, 0.2 * float(np.ptp(track[:, 0]) + np.ptp(track[:, 1])))
    xs = np.concatenate([track[:, 0], result.route.x])
    ys = np.concatenate([track[:, 1], result.route.y])
    ax.set_xlim(max(extent[0], xs.min() - pad), min(extent[1], xs.max() + pad))
    ax.set_ylim(max(extent[2], ys.min() - pad), min(extent[3], ys.max() + pad))
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_battery(result: Rehearsal, path: Path) -> None:
    from matplotlib.figure import Figure

    log = result.twin.log
    hours = _hours(result, [s.t_tai_s for s in log])
    fig = Figure(figsize=(9, 6))
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    ax1.plot(hours, [s.battery_wh for s in log], color="tab:blue")
    ax1.axhline(result.twin.reserve_wh, color="tab:red", ls="--", lw=1, label="reserve")
    hib = np.array([s.mode == "HIBERNATE" for s in log])
    drive = np.array([s.driving for s in log])
    for mask, colour in ((hib, "0.8"), (drive, "#cfe8cf")):
        ax1.fill_between(hours, 0, 1, where=mask, color=colour, transform=ax1.get_xaxis_transform(), lw=0)
    ax1.set_ylabel("battery (Wh)")
    ax1.legend(loc="lower left")
    ax1.set_title("battery (green: driving, grey: hibernating)")
    ax2.step(hours, [s.solar_w for s in log], where="post", color="tab:orange", label="array")
    ax2.step(hours, [s.load_w for s in log], where="post", color="tab:purple", label="load")
    ax2.set_ylabel("power (W)")
    ax2.legend(loc="upper right")
    probe = np.linspace(result.start_tai_s, result.end_tai_s, 600)
    earth = [result.link.paths["up"][0].is_open(float(t)) for t in probe]
    ax3.step(_hours(result, probe), earth, where="post", color="tab:green")
    ax3.set_yticks([0, 1], ["closed", "open"])
    ax3.set_ylabel("Earth link")
    ax3.set_xlabel("hours from the start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _utc(t: float | None) -> str | None:
    return None if t is None else tai_s_to_utc(t)


def write_report(result: Rehearsal, summary: dict, out: Path) -> Path:
    """report.html (and its two PNG plots) in ``out``: the story of the rehearsal."""
    _plot_route(result, out / "route.png")
    _plot_battery(result, out / "battery.png")
    ground = result.ground
    commands = [[r.command_id, r.line, _utc(r.release_tai_s), _utc(r.sent_tai_s), _utc(r.acknowledged_tai_s),
                 _utc(r.completed_tai_s or r.failed_tai_s), r.stage, r.reason] for r in ground.commands()]
    events = [[_utc(t), text] for t, text in result.twin.events]
    hop = result.link.paths["up"][0]
    if hop.windows_tai_s is None:
        windows = [["(always open)", ""]]
    else:
        w = hop.windows_tai_s
        inside = w[(w[:, 1] > result.start_tai_s) & (w[:, 0] < result.end_tai_s)]
        windows = [list(pair) for pair in describe_windows(inside)] or [["(no window in the span)", ""]]
    alarms = [[a.alarm_id, a.parameter, a.severity, f"{a.value:.3g}", _utc(a.raised_tai_s), _utc(a.cleared_tai_s)]
              for a in ground.alarms()]
    numbers = [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in summary.items()]
    story = (f"Traverse: {summary['plan']}. The rover drove {summary['odometer_m']:.1f} m of a {summary['route_planned_m']:.1f} m planned route "
             f"in {summary['simulated_h']:.1f} simulated hours ({summary['wall_s']:.1f} s of wall time). "
             f"{summary['commands_sent']} telecommands entered the uplink ({summary['commands_hostile']} of them hostile): "
             f"{summary['commands_completed']} completed, {summary['commands_refused']} refused, "
             f"{summary['commands_failed']} failed, {summary['commands_lost']} lost. The twin emitted "
             f"{summary['packets_emitted']} telemetry packets: {summary['packets_received']} received and archived, "
             f"{summary['packets_lost']} lost on the link. {summary['alarms']} alarm(s) were raised.")
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Rehearsal</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table{{border-collapse:collapse;font-size:0.85em}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}} img{{max-width:100%}}</style></head><body>
<h1>Operations rehearsal</h1>
<p>{html.escape(story)}</p>
<h2 id="summary">Summary</h2>{_table(["quantity", "value"], numbers)}
<h2 id="timeline">Timeline</h2>
<h3>Commands (ground)</h3>{_table(["id", "command", "release", "sent", "acknowledged", "ended", "stage", "reason"],
                                  commands)}
<h3>Rover events (twin)</h3>{_table(["UTC", "event"], events)}
<h2 id="route">Route driven</h2><img src="route.png" alt="route planned and driven">
<h2 id="battery">Battery</h2><img src="battery.png" alt="battery, power and Earth link">
<h2 id="link">Link windows</h2>
<p>Earth &lt;-&gt; lander windows during the rehearsal (UTC); the lander &lt;-&gt; rover hop is open within
{result.twin.rover.comms.lander_range_m:g} m of the lander.</p>{_table(["opens", "closes"], windows)}
<h2 id="alarms">Alarms</h2>{_table(["id", "parameter", "severity", "value", "raised", "cleared"], alarms)
                             if alarms else "<p>No alarm was raised.</p>"}
</body></html>
"""
    path = out / "report.html"
    path.write_text(doc)
    return path

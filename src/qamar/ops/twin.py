"""The rover twin: the dictionary's commands run on a real DEM with the rover model (issue 7, item 3).

:class:`RoverTwin` is the rover as the ground sees it through the link. It runs on a
:class:`~qamar.ops.link.SimClock` (discrete events, never sleeping), so a multi-day rehearsal
takes seconds; the live twin (``qamar ops twin``) drives the same core from a wall clock.

**Commands.** Every telecommand goes through :class:`~qamar.ops.packets.CommandVerifier` (MAC,
anti-replay number, ranges). The last accepted anti-replay number is persisted in a small JSON
file (``state_path``) after each accepted command, so a restarted twin refuses a replay of a
command it ran before the restart. A refused packet is counted and answered with a
COMMAND_STATUS REFUSED and the reason. An accepted command is answered ACCEPTED at once, then
STARTED and COMPLETED or FAILED (reason EXECUTION_FAILED). DRIVE_TO, TURN and IMAGE run one
after the other in arrival order; STOP and ABORT_SEQUENCE stop the running one and drop the
queue (those are reported FAILED); SET_MODE, HIBERNATE, WAKE and NOOP act at once. DRIVE_TO and
TURN need mode DRIVE (else they fail, as a rover refuses to move outside its driving mode);
nothing but WAKE, SET_MODE, HIBERNATE, STOP and NOOP runs while hibernating. The twin holds no
stored sequences: RUN_SEQUENCE fails.

**Motion.** DRIVE_TO plans a route from the rover's position to the waypoint on the rover's
:class:`~qamar.rover.traverse.CostMap` (:func:`qamar.rover.plan.plan_route`: slope limit,
craters, keep-out zones, PSRs), so every pixel it crosses is drivable; a waypoint that is off
the map, blocked or cut off fails the command with the planner's reason. The rover then drives
the route's straight segments at the commanded speed, capped at ``mobility.speed_m_per_s``.
Heading is the great-circle bearing of the segment (clockwise from north), tilt the cost map's
slope at the rover's pixel. TURN turns in place at the wheel speed on a circle of half the
footprint (``speed / (footprint / 2)`` rad/s, an assumption).

**Power.** Between events the Sun at the rover's pixel (``light``: a :class:`SiteLight` from
horizon maps, or any function with its call signature) gives the array power through
:func:`qamar.rover.energy.solar_power_w`, and the battery moves by
:func:`qamar.rover.energy.battery_step` with the load of the state: ``drive_w`` driving or
turning, ``idle_w`` awake, ``hibernate_w`` hibernating. The twin hibernates on command
(HIBERNATE for a duration, SET_MODE HIBERNATE until WAKE) and by itself when the battery falls
to the reserve (``power.reserve_fraction``; checked every ``tick_s``, so it may dip below by at
most one tick of drive load); it then wakes when the battery is back to ``wake_fraction`` of
capacity, in the mode it had. The stored energy never goes below 0.

**Telemetry.** HOUSEKEEPING, NAVIGATION and POWER every ``telemetry_period_s`` (once a minute,
as the dictionary says; ``hibernate_telemetry_period_s`` while hibernating). Bus voltage is a
7S Li-ion pack (the dictionary's bus) linear in state of charge from 3.0 V per cell empty to
4.1 V full: charged to 4.1 V rather than 4.2 V for cycle life (a common derating, Battery
University BU-808), which keeps a full battery below the dictionary's 29.0 V warning (real cells
are not linear); temperatures are fixed placeholders per state (no thermal model):
``awake_temp_c``, ``hibernate_temp_c`` with the heater on. **Images**: IMAGE renders a
``image_px`` x ``image_px`` 8-bit hillshade of the DEM around the rover (north-up in map
rows, DEM pixel size; Lambertian, no cast shadows) lit from the Sun's direction at the rover,
scaled by the Sun's visible fraction (a dark image when the Sun is down), and sends it as one
IMAGE_LINE packet per image line, ``image_s`` after the command starts.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qamar.errors import ModelConfigError, QamarError
from qamar.ops.dictionary import CommandCall, Dictionary, default_dictionary
from qamar.ops.errors import CommandRefusedError, PacketError
from qamar.ops.link import SimClock, tai_to_tdb_s
from qamar.ops.packets import CommandVerifier, PacketCodec, SequenceCounters
from qamar.rover.energy import battery_step, solar_power_w
from qamar.rover.model import RoverSpec
from qamar.rover.plan import plan_route
from qamar.rover.traverse import CostMap
from qamar.surface.terrain import Dem, lat_lon_to_xy, xy_to_lat_lon, xy_to_pixel

_log = logging.getLogger(__name__)
QUEUED_COMMANDS = ("DRIVE_TO", "TURN", "IMAGE")
AWAKE_IN_HIBERNATION = ("WAKE", "SET_MODE", "HIBERNATE", "STOP", "NOOP")


@dataclass
class TwinConfig:
    """Rates and placeholders of the twin (all assumptions; see the module docstring)."""

    tick_s: float = 60.0  # motion and energy are brought up to date at least this often
    telemetry_period_s: float = 60.0  # HOUSEKEEPING "once a minute by default" (rover_dictionary.yaml)
    hibernate_telemetry_period_s: float = 900.0  # receiver duty-cycled in hibernation: a beacon every 15 min
    wake_fraction: float = 0.5  # an automatic hibernation ends when the battery is back to half capacity
    start_battery_fraction: float = 1.0
    image_px: int = 64
    image_s: float = 10.0  # exposure, readout and compression of one small image
    awake_temp_c: float = 20.0
    hibernate_temp_c: float = 5.0
    motor_driving_temp_c: float = 40.0
    motor_idle_temp_c: float = 10.0


@dataclass(frozen=True)
class LightSample:
    """The Sun and Earth at the rover: azimuth (deg from north, clockwise) and elevation (deg) of
    the Sun's centre, visible fraction of its disc (0..1), its distance (km), Earth in view."""

    sun_az_deg: float
    sun_el_deg: float
    sun_fraction: float
    sun_distance_km: float
    earth_in_view: bool


LightModel = Callable[[float, float, float], LightSample]  # (t_tai_s, lat_deg, lon_deg) -> LightSample


class SiteLight:
    """Sun and Earth at any point of a site, from the horizon map of a planning grid.

    ``grid`` is the site's DEM (or its factor x factor block means, :func:`qamar.surface.horizon.coarse_dem`),
    ``horizon`` its horizon map (same grid), ``tracks`` the Sun and Earth (:func:`qamar.surface.illumination.body_tracks`).
    A call looks up the step holding the epoch (the light is constant over a step, as in
    :mod:`qamar.rover.spacetime`) in the :func:`qamar.surface.illumination.point_series` of the
    grid cell holding the point (computed once per cell). Raises QamarError for an epoch outside
    the tracks and ModelConfigError for a point off the grid.
    """

    def __init__(self, grid: Dem, horizon, tracks):
        self.grid, self.horizon, self.tracks = grid, horizon, tracks
        self._series: dict[tuple[int, int], object] = {}
        self._sun_km = np.linalg.norm(tracks.sun_me_km, axis=-1)
        self._step_s = tracks.step_h * 3600.0

    def __call__(self, t_tai_s: float, lat_deg: float, lon_deg: float) -> LightSample:
        from qamar.surface.illumination import pixel_of, point_series

        t_tdb = float(tai_to_tdb_s(t_tai_s))
        t0, n = float(self.tracks.t_tdb_s[0]), self.tracks.n
        k = int((t_tdb - t0) // self._step_s) if self._step_s > 0 else 0
        if not 0 <= k < n:
            raise QamarError(f"the light at the site was computed for TDB {t0:.0f}..{t0 + n * self._step_s:.0f} s, "
                             f"not {t_tdb:.0f} s: compute it over a longer span")
        cell = pixel_of(self.grid, lat_deg, lon_deg)
        series = self._series.get(cell)
        if series is None:
            series = self._series[cell] = point_series(self.grid, self.horizon, lat_deg, lon_deg, self.tracks)
        return LightSample(float(series.sun_az_deg[k]), float(series.sun_el_deg[k]), float(series.sun_fraction[k]),
                           float(self._sun_km[k]), bool(series.earth_in_view[k]))

    @classmethod
    def build(cls, dem: Dem, start_utc: str, hours: float, *, step_h: float = 0.25, factor: int = 10,
              far_dem: Dem | None = None, max_distance_km: float = 150.0, observer_height_m: float = 0.5
              ) -> SiteLight:
        """The light of ``dem`` over ``hours`` from ``start_utc`` in steps of ``step_h``: horizon map of
        its ``factor`` x ``factor`` block means (terrain to ``max_distance_km``, beyond ``dem`` from
        ``far_dem``; sites ``observer_height_m`` above the ground) and DE440 Sun and Earth tracks."""
        from qamar.surface.horizon import coarse_dem, compute_horizon
        from qamar.surface.illumination import body_tracks, epochs_tdb_s
        from qamar.time import tdb_s_to_utc, utc_to_tdb_s

        if factor < 1 or not hours > 0 or not step_h > 0:
            raise ModelConfigError(f"the light needs factor >= 1, hours > 0 and step_h > 0 (got {factor}, {hours}, "
                                   f"{step_h})")
        grid = dem if factor == 1 else coarse_dem(dem, factor)
        horizon = compute_horizon(grid, far_dem=far_dem, max_distance_km=max_distance_km, progress=False,
                                  observer_height_m=observer_height_m, allow_holes=True)
        stop_utc = tdb_s_to_utc(float(utc_to_tdb_s(start_utc)) + (hours + step_h) * 3600.0, 0)
        return cls(grid, horizon, body_tracks(epochs_tdb_s(start_utc, stop_utc, step_h)))


@dataclass
class TwinSample:
    """One record of the twin's log: state at ``t_tai_s`` after bringing it up to date."""

    t_tai_s: float
    lat_deg: float
    lon_deg: float
    battery_wh: float
    solar_w: float
    load_w: float
    mode: str
    driving: bool
    earth_in_view: bool


@dataclass
class _Task:
    """A command being run or waiting: its ARSN, the checked call, and for motion the path."""

    arsn: int
    call: CommandCall
    path_xy: np.ndarray | None = None  # (n, 2) map vertices of a drive
    path_m: np.ndarray | None = None  # cumulative ground distance along them
    done_m: float = 0.0
    speed_m_s: float = 0.0
    turn_left_deg: float = 0.0
    end_tai_s: float = math.nan


@dataclass
class TwinCounts:
    """Telecommands the twin saw and telemetry it emitted."""

    received: int = 0
    accepted: int = 0
    refused: collections.Counter = field(default_factory=collections.Counter)
    completed: int = 0
    failed: int = 0
    emitted: int = 0
    emitted_by_packet: collections.Counter = field(default_factory=collections.Counter)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


class RoverTwin:
    """The rover on ``costs`` (its cost map on the site DEM) under ``light``, starting at
    ``start_lat_lon`` (ME deg) at ``clock``'s time; telemetry goes to ``downlink(packet)``.

    ``key`` authenticates telecommands; ``state_path`` (optional) persists the last accepted
    anti-replay number. Raises ModelConfigError if the start is off the map or blocked.
    """

    def __init__(self, clock: SimClock, downlink: Callable[[bytes], None], costs: CostMap, rover: RoverSpec,
                 light: LightModel, start_lat_lon: tuple[float, float], key: bytes, *,
                 config: TwinConfig | None = None, dictionary: Dictionary | None = None,
                 state_path: str | Path | None = None, heading_deg: float = 0.0):
        self.clock, self.downlink, self.costs, self.rover, self.light = clock, downlink, costs, rover, light
        self.config = config or TwinConfig()
        self.codec = PacketCodec(dictionary or default_dictionary())
        self.state_path = Path(state_path) if state_path is not None else None
        self.verifier = CommandVerifier(key, self.codec, last_arsn=self._load_arsn())
        self.counters = SequenceCounters()
        self.counts = TwinCounts()
        x, y = lat_lon_to_xy(start_lat_lon[0], start_lat_lon[1], costs.dem)
        self.xy = np.array([float(x), float(y)])
        row, col = self.pixel
        if not (0 <= row < costs.dem.shape[0] and 0 <= col < costs.dem.shape[1]) or costs.blocked[row, col]:
            raise ModelConfigError(f"the rover's start {start_lat_lon} is off the DEM or on a blocked pixel: "
                                   "choose a drivable start")
        p = rover.power
        self.battery_wh = p.battery_wh * self.config.start_battery_fraction
        self.reserve_wh = p.battery_wh * p.reserve_fraction
        self.heading_deg, self.odometer_m, self.mode = heading_deg % 360.0, 0.0, "STANDBY"
        self.hibernating = False
        self._mode_before_hibernation = "STANDBY"
        self._auto_hibernation = False
        self._hibernation_id = 0
        self._queue: collections.deque[_Task] = collections.deque()
        self._task: _Task | None = None
        self._t = clock.now_tai_s
        self._solar_w = 0.0
        self._load_w = p.idle_w
        self._image_id = 0
        self._running = False
        self.log: list[TwinSample] = []
        self.events: list[tuple[float, str]] = []
        self.track_xy: list[tuple[float, float, float]] = [(self._t, *self.xy)]

    # --- state -------------------------------------------------------------------------------

    def _load_arsn(self) -> int:
        if self.state_path is None or not self.state_path.exists():
            return 0
        try:
            return int(json.loads(self.state_path.read_text())["last_arsn"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise QamarError(f"cannot read the twin state {self.state_path} ({exc}); fix or delete it "
                             "(deleting it lets old commands be replayed)") from None

    def _save_arsn(self) -> None:
        if self.state_path is None:
            return
        partial = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        partial.write_text(json.dumps({"last_arsn": self.verifier.last_arsn}))
        os.replace(partial, self.state_path)

    @property
    def pixel(self) -> tuple[int, int]:
        """(row, col) of the DEM pixel under the rover."""
        r, c = xy_to_pixel(self.xy[0], self.xy[1], self.costs.dem)
        return int(np.floor(float(r) + 0.5)), int(np.floor(float(c) + 0.5))

    @property
    def lat_lon(self) -> tuple[float, float]:
        """The rover's planetocentric latitude and east longitude (ME, deg, 0..360)."""
        lat, lon = xy_to_lat_lon(self.xy[0], self.xy[1], self.costs.dem)
        return float(lat), float(lon) % 360.0

    def position_xy(self, t_tai_s: float | None = None) -> np.ndarray:
        """The rover's map position (DEM CRS units) now (``t_tai_s`` is accepted for link callbacks)."""
        return self.xy.copy()

    @property
    def busy(self) -> bool:
        """Whether a DRIVE_TO, TURN or IMAGE is running or waiting."""
        return self._task is not None or bool(self._queue)

    @property
    def driving(self) -> bool:
        return self._task is not None and self._task.call.command.name in ("DRIVE_TO", "TURN")

    def note(self, text: str) -> None:
        """Add ``text`` to the twin's events (the rehearsal's timeline) at the clock's time."""
        self.events.append((self.clock.now_tai_s, text))
        _log.info("twin %.1f: %s", self.clock.now_tai_s, text)

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the ticks and the periodic telemetry (at the clock's current time)."""
        self._running = True
        self._t = self.clock.now_tai_s
        self.clock.at(self._t, self._tick)
        self.clock.at(self._t, self._telemetry)

    def stop(self) -> None:
        """Stop ticking and emitting (the end of a rehearsal)."""
        self.advance()
        self._running = False

    def _tick(self) -> None:
        if not self._running:
            return
        self.advance()
        self.clock.after(self.config.tick_s, self._tick)

    def _telemetry(self) -> None:
        if not self._running:
            return
        self.advance()
        self.emit_state()
        period = self.config.hibernate_telemetry_period_s if self.hibernating else self.config.telemetry_period_s
        self.clock.after(period, self._telemetry)

    def advance(self) -> None:
        """Bring motion and battery up to the clock's time (light constant over the interval, taken
        at its start), then apply the hibernation rules."""
        now = self.clock.now_tai_s
        dt_s = now - self._t
        if dt_s > 0:
            p = self.rover.power
            sample = self.light(self._t, *self.lat_lon)
            solar_w = float(solar_power_w(self.rover.solar, sample.sun_fraction, sample.sun_az_deg,
                                          sample.sun_el_deg, sample.sun_distance_km))
            moving_s = self._move(dt_s) if self.driving and not self.hibernating else 0.0
            base_w = p.hibernate_w if self.hibernating else p.idle_w
            for seconds, load_w in ((moving_s, p.drive_w), (dt_s - moving_s, base_w)):
                if seconds > 0:
                    self.battery_wh = max(0.0, float(battery_step(self.battery_wh, solar_w, load_w, seconds / 3600.0,
                                                                  p.battery_wh, p.charge_efficiency,
                                                                  p.discharge_efficiency)))
            self._solar_w, self._load_w = solar_w, (p.drive_w if moving_s > 0 else base_w)
            self._t = now
            lat, lon = self.lat_lon
            self.log.append(TwinSample(now, lat, lon, self.battery_wh, solar_w, self._load_w, self.mode,
                                       moving_s > 0, sample.earth_in_view))
        self._check_power()
        if self._task is not None and not self.hibernating and now >= self._task.end_tai_s - 1e-9:
            self._finish(self._task)

    def _move(self, dt_s: float) -> float:
        """Move the running drive or turn by up to ``dt_s``; the seconds spent moving."""
        task = self._task
        if task.call.command.name == "TURN":
            rate = self._turn_rate_deg_s()
            seconds = min(dt_s, abs(task.turn_left_deg) / rate)
            step = math.copysign(seconds * rate, task.turn_left_deg)
            task.turn_left_deg -= step
            self.heading_deg = (self.heading_deg - step) % 360.0  # counter-clockwise seen from above
            return seconds
        total = float(task.path_m[-1])
        along = min(total, task.done_m + task.speed_m_s * dt_s)
        seconds = (along - task.done_m) / task.speed_m_s
        self.odometer_m += along - task.done_m
        task.done_m = along
        i = int(min(np.searchsorted(task.path_m, along, side="right"), len(task.path_m) - 1))
        i = max(i, 1)
        a, b = task.path_xy[i - 1], task.path_xy[i]
        span = task.path_m[i] - task.path_m[i - 1]
        frac = 1.0 if span <= 0 else (along - task.path_m[i - 1]) / span
        before = self.lat_lon
        self.xy = a + (b - a) * min(1.0, max(0.0, frac))
        self.heading_deg = _bearing_deg(before, self.lat_lon, self.heading_deg)
        self.track_xy.append((self.clock.now_tai_s, *self.xy))
        return seconds

    def _turn_rate_deg_s(self) -> float:
        m = self.rover.mobility
        return math.degrees(m.speed_m_per_s / (m.footprint_m / 2.0))

    def _check_power(self) -> None:
        p, cfg = self.rover.power, self.config
        if not self.hibernating and self.battery_wh <= self.reserve_wh:
            self.note(f"battery at the reserve ({self.battery_wh:.1f} Wh): hibernating until "
                       f"{cfg.wake_fraction:.0%} charged")
            self._hibernate(auto=True)
        elif self.hibernating and self._auto_hibernation and self.battery_wh >= cfg.wake_fraction * p.battery_wh:
            self._wake("battery recharged")

    def _hibernate(self, auto: bool, duration_s: float | None = None) -> None:
        self._abort_all("hibernation")
        if not self.hibernating:
            self._mode_before_hibernation = self.mode
        self.hibernating, self._auto_hibernation, self.mode = True, auto, "HIBERNATE"
        self._hibernation_id += 1
        if duration_s is not None:
            self.clock.after(duration_s, self._timed_wake, self._hibernation_id)

    def _timed_wake(self, hibernation_id: int) -> None:
        if self.hibernating and hibernation_id == self._hibernation_id:
            self.advance()
            self._wake("hibernation timer")

    def _wake(self, why: str) -> None:
        self.hibernating, self._auto_hibernation = False, False
        self.mode = self._mode_before_hibernation if self._mode_before_hibernation != "HIBERNATE" else "STANDBY"
        self.note(f"awake ({why}), mode {self.mode}")
        self.emit_state()

    # --- telecommands --------------------------------------------------------------------------

    def receive(self, packet: bytes, t_tai_s: float | None = None) -> None:
        """A telecommand from the link: verify it and run it (see the module docstring)."""
        self.advance()
        self.counts.received += 1
        try:
            call = self.verifier.verify(packet)
        except CommandRefusedError as exc:
            arsn, opcode = _peek_arsn_opcode(self.codec, packet)
            self.counts.refused[exc.reason] += 1
            self.note(f"refused a telecommand (ARSN {arsn}): {exc.reason}")
            self._status(arsn, opcode, "REFUSED", exc.reason)
            return
        self.counts.accepted += 1
        self._save_arsn()
        arsn = self.verifier.last_arsn
        self._status(arsn, call.command.opcode, "ACCEPTED")
        self.note(f"accepted {call} (ARSN {arsn})")
        name = call.command.name
        if self.hibernating and name not in AWAKE_IN_HIBERNATION:
            self._start_report(arsn, call)
            self._fail(arsn, call, "the rover is hibernating")
            return
        if name in QUEUED_COMMANDS:
            self._queue.append(_Task(arsn, call))
            self._next_task()
            return
        self._start_report(arsn, call)
        if name in ("STOP", "ABORT_SEQUENCE"):
            self._abort_all(name)
        elif name == "SET_MODE":
            mode = call.args["mode"]
            if mode == "HIBERNATE":
                self._hibernate(auto=False)
            else:
                if self.hibernating:
                    self._wake(f"SET_MODE {mode}")
                if mode in ("SAFE", "STANDBY", "SCIENCE"):
                    self._abort_all(f"SET_MODE {mode}")
                self.mode = mode
        elif name == "HIBERNATE":
            self._hibernate(auto=False, duration_s=float(call.args["duration_s"]))
        elif name == "WAKE":
            if self.hibernating:
                self._wake("WAKE")
        elif name == "RUN_SEQUENCE":
            self._fail(arsn, call, "the twin holds no stored sequences")
            return
        self._succeed(arsn, call)

    def _status(self, arsn: int, opcode: int, stage: str, reason: str = "NONE") -> None:
        self._emit("COMMAND_STATUS", {"arsn": arsn, "opcode": opcode, "stage": stage, "reason": reason})

    def _start_report(self, arsn: int, call: CommandCall) -> None:
        self._status(arsn, call.command.opcode, "STARTED")

    def _succeed(self, arsn: int, call: CommandCall) -> None:
        self.counts.completed += 1
        self._status(arsn, call.command.opcode, "COMPLETED")

    def _fail(self, arsn: int, call: CommandCall, why: str) -> None:
        self.counts.failed += 1
        self.note(f"{call.command.name} (ARSN {arsn}) failed: {why}")
        self._status(arsn, call.command.opcode, "FAILED", "EXECUTION_FAILED")

    def _abort_all(self, why: str) -> None:
        for task in ([self._task] if self._task else []) + list(self._queue):
            self._fail(task.arsn, task.call, f"stopped by {why}")
        self._task = None
        self._queue.clear()

    def _next_task(self) -> None:
        while self._task is None and self._queue:
            task = self._queue.popleft()
            self._start_report(task.arsn, task.call)
            why = self._begin(task)
            if why is not None:
                self._fail(task.arsn, task.call, why)
                continue
            self._task = task
            self.clock.at(task.end_tai_s, self.advance)

    def _begin(self, task: _Task) -> str | None:
        """Prepare ``task`` to run from now; the reason it cannot run, or None."""
        now, name, args = self.clock.now_tai_s, task.call.command.name, task.call.args
        if name in ("DRIVE_TO", "TURN") and self.mode != "DRIVE":
            return f"mode {self.mode}: command SET_MODE mode=DRIVE first"
        if name == "IMAGE":
            task.end_tai_s = now + self.config.image_s
            return None
        if name == "TURN":
            task.turn_left_deg = float(args["angle_deg"])
            task.end_tai_s = now + abs(task.turn_left_deg) / self._turn_rate_deg_s()
            return None
        route = plan_route(self.costs, self.lat_lon, (float(args["lat"]), float(args["lon"])), self.rover)
        if not route.feasible:
            return route.reason
        path_xy = np.column_stack([route.x, route.y])
        path_xy[0] = self.xy
        path_m = np.concatenate([[0.0], np.cumsum(_ground_lengths_m(route, path_xy))])
        task.path_xy, task.path_m = path_xy, path_m
        task.speed_m_s = min(float(args["speed_cm_s"]) / 100.0, self.rover.mobility.speed_m_per_s)
        task.end_tai_s = now + float(path_m[-1]) / task.speed_m_s
        self.note(f"driving {path_m[-1]:.1f} m to {args['lat']:.5f}, {args['lon']:.5f} in "
                   f"{path_m[-1] / task.speed_m_s / 3600:.2f} h (largest slope {route.max_slope_deg:.1f} deg)")
        return None

    def _finish(self, task: _Task) -> None:
        self._task = None
        if task.call.command.name == "IMAGE":
            self.send_image(task.call.args["camera"])
        self._succeed(task.arsn, task.call)
        self._next_task()

    # --- telemetry -------------------------------------------------------------------------------

    def _emit(self, name: str, values: dict) -> None:
        apid = self.codec.dictionary.apids[self.codec.dictionary.telemetry_packet(name).apid]
        packet = self.codec.encode_telemetry(name, values, self.counters.next(apid), self.clock.now_tai_s)
        self.counts.emitted += 1
        self.counts.emitted_by_packet[name] += 1
        self.downlink(packet)

    def emit_state(self) -> None:
        """One HOUSEKEEPING, NAVIGATION and POWER packet of the current state."""
        p, cfg = self.rover.power, self.config
        soc = self.battery_wh / p.battery_wh
        bus_v = 7 * (3.0 + 1.1 * soc)  # 7S Li-ion, 3.0 V empty .. 4.1 V full per cell, linear
        temp_c = cfg.hibernate_temp_c if self.hibernating else cfg.awake_temp_c
        self._emit("HOUSEKEEPING", {
            "mode": self.mode, "battery_soc_pct": 100.0 * soc, "bus_voltage_v": bus_v, "battery_temp_c": temp_c,
            "avionics_temp_c": temp_c, "heater_on": self.hibernating,
            "motor_temp_c": cfg.motor_driving_temp_c if self.driving else cfg.motor_idle_temp_c,
            "commands_accepted": self.counts.accepted, "commands_refused": self.counts.refused_total})
        lat, lon = self.lat_lon
        row, col = self.pixel
        tilt = float(np.nan_to_num(self.costs.slope_deg[row, col]))
        speed = self._task.speed_m_s * 100.0 if self.driving and self._task.path_m is not None else 0.0
        self._emit("NAVIGATION", {"lat_deg": lat, "lon_deg": lon, "heading_deg": self.heading_deg, "tilt_deg": tilt,
                                  "odometer_m": self.odometer_m, "speed_cm_s": speed})
        sample = self.light(self.clock.now_tai_s, lat, lon)
        self._emit("POWER", {"solar_power_in_w": self._solar_w, "power_out_w": self._load_w,
                             "battery_current_a": (self._solar_w - self._load_w) / bus_v,
                             "sun_visible_fraction": sample.sun_fraction})

    def render_image(self) -> np.ndarray:
        """The small image: (image_px, image_px) uint8 hillshade around the rover (module docstring)."""
        n, dem = self.config.image_px, self.costs.dem
        row, col = self.pixel
        z = np.full((n + 2, n + 2), np.nan)
        r0, c0 = row - n // 2 - 1, col - n // 2 - 1
        rs, cs = slice(max(r0, 0), min(r0 + n + 2, dem.shape[0])), slice(max(c0, 0), min(c0 + n + 2, dem.shape[1]))
        z[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0] = dem.elevation_m[rs, cs]
        lat, lon = self.lat_lon
        sample = self.light(self.clock.now_tai_s, lat, lon)
        px_x, px_y = abs(dem.transform.a), abs(dem.transform.e)
        dz_dx = (z[1:-1, 2:] - z[1:-1, :-2]) / (2 * px_x)  # map x to the right
        dz_dy = (z[:-2, 1:-1] - z[2:, 1:-1]) / (2 * px_y)  # map y up (rows go down)
        north_x, north_y = _map_north(dem, lat, lon)
        az, el = math.radians(sample.sun_az_deg), math.radians(sample.sun_el_deg)
        east_x, east_y = north_y, -north_x  # north turned clockwise by 90 deg, seen from above
        sx = math.cos(el) * (math.sin(az) * east_x + math.cos(az) * north_x)
        sy = math.cos(el) * (math.sin(az) * east_y + math.cos(az) * north_y)
        sz = math.sin(el)
        shade = (-dz_dx * sx - dz_dy * sy + sz) / np.sqrt(1.0 + dz_dx ** 2 + dz_dy ** 2)
        shade = np.clip(np.nan_to_num(shade), 0.0, 1.0) * sample.sun_fraction
        return np.round(shade * 255.0).astype(np.uint8)

    def send_image(self, camera: str) -> np.ndarray:
        """Render the small image and send it, one IMAGE_LINE packet per line; the image."""
        image = self.render_image()
        self._image_id = (self._image_id + 1) % 65536
        for line, pixels in enumerate(image):
            values = {"image_id": self._image_id, "camera": camera, "line": line}
            values.update({f"pixel_{i:02d}": int(v) for i, v in enumerate(pixels)})
            self._emit("IMAGE_LINE", values)
        self.note(f"image {self._image_id} ({camera}) sent")
        return image


def _ground_lengths_m(route, path_xy: np.ndarray) -> np.ndarray:
    """Ground length (m) of each segment of ``path_xy``: the route's sphere distances, the first
    segment scaled for the rover's exact start."""
    lengths = np.diff(route.distance_m)
    if len(lengths) == 0:
        return np.zeros(0)
    map_first = float(np.hypot(*(np.array([route.x[1], route.y[1]]) - np.array([route.x[0], route.y[0]]))))
    actual_first = float(np.hypot(*(path_xy[1] - path_xy[0])))
    if map_first > 0:
        lengths[0] *= actual_first / map_first
    return lengths


def _map_north(dem: Dem, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Unit vector of local north in the DEM's map coordinates at a point (numerical)."""
    x0, y0 = lat_lon_to_xy(lat_deg, lon_deg, dem)
    x1, y1 = lat_lon_to_xy(lat_deg + 1e-4, lon_deg, dem)
    dx, dy = float(x1 - x0), float(y1 - y0)
    norm = math.hypot(dx, dy)
    return dx / norm, dy / norm


def _bearing_deg(a: tuple[float, float], b: tuple[float, float], keep: float) -> float:
    """Initial great-circle bearing (deg clockwise from north) from a to b (lat, lon deg); ``keep`` if a == b."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    y = math.sin(dlon) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    if abs(x) < 1e-15 and abs(y) < 1e-15:
        return keep
    return math.degrees(math.atan2(y, x)) % 360.0


def _peek_arsn_opcode(codec: PacketCodec, packet: bytes) -> tuple[int, int]:
    """ARSN and opcode of a refused packet, (0, 0) if it cannot even be decoded."""
    try:
        decoded = codec.decode(packet)
    except PacketError:
        return 0, 0
    return getattr(decoded, "arsn", 0), getattr(getattr(decoded, "command", None), "opcode", 0)


# --- the live twin ------------------------------------------------------------------------------


def run_live(make_twin: Callable[[SimClock, Callable[[bytes], None]], RoverTwin], ground: tuple[str, int],
             start_tai_s: float, *, earth_hop=None, rover_hop=None, speed: float = 1.0, seed: int = 0,
             stop: Callable[[], bool] = lambda: False, connect_timeout_s: float = 10.0) -> RoverTwin:
    """Run a twin in real time (``speed`` simulated seconds per wall second) against a ground at ``ground``.

    Connects by TCP to the ground (host, port). Both sides write raw CCSDS space packets back to
    back; telecommands read from the socket are cut with :func:`qamar.ops.packets.split_stream`
    and enter a :class:`~qamar.ops.link.DelayedLink` on this side (``earth_hop``: default a hop
    always open with the light time of mission-brief.md sec. 5, 1.28 s; ``rover_hop``: default
    always open), which delivers them to the twin and its telemetry back to the socket, so delay,
    loss and windows are applied here. ``make_twin(clock, downlink)`` builds the twin on the
    simulated clock (which starts at ``start_tai_s``). Returns when the ground closes the
    connection or ``stop()`` is true. Raises QamarError if the ground cannot be reached.
    """
    import select
    import socket
    import time

    from qamar.ops.link import DelayedLink, Hop, lander_rover_hop
    from qamar.ops.packets import split_stream

    if not speed > 0:
        raise ModelConfigError(f"--speed must be positive, got {speed}")
    try:
        sock = socket.create_connection(ground, timeout=connect_timeout_s)
    except OSError as exc:
        raise QamarError(f"cannot reach the ground at {ground[0]}:{ground[1]} ({exc.strerror or exc}): start it with "
                         "`qamar ops ground` or give --ground HOST:PORT") from None
    clock = SimClock(start_tai_s)
    link = DelayedLink(clock, earth_hop or Hop("earth-lander", 1.28), rover_hop or lander_rover_hop(), seed=seed)
    twin = make_twin(clock, link.send_down)
    link.on_uplink_delivered = twin.receive

    def to_ground(packet: bytes, t_tai_s: float) -> None:
        sock.sendall(packet)

    link.on_downlink_delivered = to_ground
    twin.start()
    wall0, pending = time.monotonic(), b""
    try:
        with sock:
            sock.settimeout(10.0)  # select() says when to read; a send may wait that long
            while not stop():
                clock.run_until(start_tai_s + (time.monotonic() - wall0) * speed)
                wait_s = min(0.1, max(0.0, (clock.next_event_tai_s - clock.now_tai_s) / speed))
                readable, _, _ = select.select([sock], [], [], wait_s)
                if not readable:
                    continue
                chunk = sock.recv(65536)
                if not chunk:
                    _log.info("the ground closed the connection")
                    break
                clock.run_until(start_tai_s + (time.monotonic() - wall0) * speed)
                packets, pending = split_stream(pending + chunk)
                for packet in packets:
                    link.send_up(packet)
    except (ConnectionError, BrokenPipeError) as exc:
        _log.warning("the connection to the ground broke: %s", exc)
    twin.stop()
    return twin

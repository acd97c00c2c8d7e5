"""The delayed link Earth <-> lander <-> rover, on a discrete-event clock (issue 7, item 4).

Time is simulated: :class:`SimClock` runs callbacks in time order (TAI seconds past J2000, the
time scale of the packets' CUC) and never sleeps, so a day of operations runs in milliseconds.

A path is two :class:`Hop` objects, each store-and-forward: a packet that reaches a hop while it
is closed waits in that hop's queue (in order) and leaves when it opens; an open hop transmits
it at once and it arrives ``delay_s(t)`` later. Each transmission is lost with the hop's
``loss_probability`` (one seeded generator per link). Nothing is silently dropped: every packet
is delivered, counted lost, or still waiting or in flight (:class:`LinkCounts`, whose
``accounted`` says so). Packet durations on the air are neglected (a 100-octet packet at
1 kbit/s takes 0.8 s: give a data rate in a later layer if it matters).

The Earth <-> lander hop (:func:`earth_lander_hop`) is open when a station sees the lander's
site above its elevation mask (geometric, light-time corrected: :func:`qamar.comms.visibility.look`
with the site as target) and the site sees the Earth's centre above its horizon (a constant
mask or an azimuth -> elevation profile, e.g. from a :class:`~qamar.surface.horizon.HorizonMap`
pixel; geometric: in the 1.3 s light time the Earth moves < 1 arcsec on the lunar sky), outside
outages. Its delay is the one-way light time station <-> site (DE440 through
qamar's ephemeris; about 1.28 s, mission-brief.md sec. 5: 1.19 to 1.36 s) plus a processing
delay. The light time is tabulated on the window grid and interpolated linearly: the Earth's
rotation makes it wobble by the Earth's radius (21 ms) once a day, so a 300 s grid is good to
21 ms x (7.29e-5 rad/s x 300 s)^2 / 8 = 1.3 us. Up- and downlink use the same light time
(they differ by range rate x light time / c < 5 ns). A window is taken as open for a packet if
it is open when the packet leaves the transmitter.

The lander <-> rover hop (:func:`lander_rover_hop`) is open while a callback says so;
:func:`range_line_of_sight` builds one from the rover's position, a maximum range and an
optional line-of-sight test (the viewshed comes with the rover twin). Callback hops are polled
every ``poll_s`` while closed.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qamar.comms.stations import Station
from qamar.comms.visibility import intervals_where_positive, look, union_intervals
from qamar.constants import MOON_RADIUS_KM
from qamar.ephemeris import Ephemeris
from qamar.errors import QamarError
from qamar.frames import body_vector_from_lat_lon, icrf_to_me
from qamar.surface.illumination import body_tracks, topocentric_az_el_deg
from qamar.time import (
    tai_s_to_tt_s,
    tai_s_to_utc,
    tdb_s_to_tt_s,
    tt_s_to_tai_s,
    tt_s_to_tdb_s,
    utc_to_tai_s,
)

NEVER = math.inf
DEFAULT_STATION_MASK_DEG = 10.0  # deep-space station elevation mask, as qamar.comms.visibility's default
DEFAULT_PROCESSING_DELAY_S = 0.05  # assumption: on-board/ground frame processing per hop (not published)
DEFAULT_ROVER_RANGE_M = 1000.0  # assumption: lander-rover UHF/Wi-Fi range (Pragyan relays via the lander,
#                                 mission-brief.md sec. 3; its range is not published)


def tai_to_tdb_s(t_tai_s):
    """TDB seconds past J2000 of TAI seconds past J2000 (scalar or array)."""
    return tt_s_to_tdb_s(tai_s_to_tt_s(t_tai_s))


def tdb_to_tai_s(t_tdb_s):
    """TAI seconds past J2000 of TDB seconds past J2000 (scalar or array)."""
    return tt_s_to_tai_s(tdb_s_to_tt_s(t_tdb_s))


def utc_intervals_to_tai_s(intervals_utc: Sequence[tuple[str, str]]) -> np.ndarray:
    """``[(start, stop), ...]`` ISO UTC strings as a sorted (n, 2) array of TAI s; QamarError if stop <= start."""
    rows = [(float(utc_to_tai_s(a)), float(utc_to_tai_s(b))) for a, b in intervals_utc]
    for (a, b), (text_a, text_b) in zip(rows, intervals_utc):
        if not b > a:
            raise QamarError(f"interval {text_a} .. {text_b} ends before it starts; give (start, stop) in UTC")
    return union_intervals(np.asarray(rows, dtype=float).reshape(-1, 2))


# --- the clock ----------------------------------------------------------------------------------


class SimClock:
    """A discrete-event clock in TAI seconds past J2000: callbacks run in time order, FIFO at equal times."""

    def __init__(self, start_tai_s: float):
        self.now_tai_s = float(start_tai_s)
        self._events: list[tuple[float, int, Callable, tuple]] = []
        self._order = itertools.count()

    def at(self, t_tai_s: float, callback: Callable, *args) -> None:
        """Run ``callback(*args)`` at ``t_tai_s`` (now if in the past)."""
        heapq.heappush(self._events, (max(float(t_tai_s), self.now_tai_s), next(self._order), callback, args))

    def after(self, delay_s: float, callback: Callable, *args) -> None:
        """Run ``callback(*args)`` ``delay_s`` seconds from now."""
        self.at(self.now_tai_s + delay_s, callback, *args)

    @property
    def next_event_tai_s(self) -> float:
        """Time of the next pending event (inf if none)."""
        return self._events[0][0] if self._events else NEVER

    def run_until(self, t_tai_s: float) -> None:
        """Run every event up to and including ``t_tai_s``, then set the clock to ``t_tai_s``."""
        while self._events and self._events[0][0] <= t_tai_s:
            t, _, callback, args = heapq.heappop(self._events)
            self.now_tai_s = t
            callback(*args)
        self.now_tai_s = max(self.now_tai_s, float(t_tai_s))

    def run_for(self, duration_s: float) -> None:
        """Run the events of the next ``duration_s`` seconds."""
        self.run_until(self.now_tai_s + duration_s)


# --- hops ---------------------------------------------------------------------------------------


@dataclass
class Hop:
    """One store-and-forward hop of the link.

    ``delay_s``: one-way delay (s), a number or a function of the departure time (TAI s).
    ``windows_tai_s``: (n, 2) sorted intervals when the hop can be open (None: always);
    ``available``: an extra test ``f(t_tai_s) -> bool`` (polled every ``poll_s`` while closed);
    ``outages_tai_s``: (n, 2) intervals when it is closed whatever the geometry;
    ``loss_probability``: chance that one transmission is lost (0..1);
    ``poll_horizon_s``: how far one :meth:`next_open` polls a closed callback before handing back
    a time to look again.
    """

    name: str
    delay_s: float | Callable[[float], float] = DEFAULT_PROCESSING_DELAY_S
    windows_tai_s: np.ndarray | None = None
    available: Callable[[float], bool] | None = None
    outages_tai_s: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    loss_probability: float = 0.0
    poll_s: float = 10.0
    poll_horizon_s: float = 3600.0
    max_wait_s: float = 400 * 86400.0  # give up looking for an opening this far ahead (the hop stays closed)

    def __post_init__(self):
        if not 0.0 <= self.loss_probability <= 1.0:
            raise QamarError(f"hop {self.name}: loss_probability must be in 0..1, got {self.loss_probability}")
        if not self.poll_s > 0.0:
            raise QamarError(f"hop {self.name}: poll_s must be > 0, got {self.poll_s}")
        self.outages_tai_s = np.asarray(self.outages_tai_s, dtype=float).reshape(-1, 2)
        if self.windows_tai_s is not None:
            self.windows_tai_s = np.asarray(self.windows_tai_s, dtype=float).reshape(-1, 2)

    def delay_at(self, t_tai_s: float) -> float:
        """One-way delay (s) of a packet leaving at ``t_tai_s``."""
        return float(self.delay_s(t_tai_s)) if callable(self.delay_s) else float(self.delay_s)

    def _in_window(self, t: float) -> bool:
        w = self.windows_tai_s
        return w is None or bool(np.any((w[:, 0] <= t) & (t < w[:, 1])))

    def _in_outage(self, t: float) -> bool:
        o = self.outages_tai_s
        return bool(np.any((o[:, 0] <= t) & (t < o[:, 1])))

    def is_open(self, t_tai_s: float) -> bool:
        """Whether a packet can leave at ``t_tai_s``."""
        return (self._in_window(t_tai_s) and not self._in_outage(t_tai_s)
                and (self.available is None or bool(self.available(t_tai_s))))

    def next_open(self, t_tai_s: float) -> float:
        """The earliest time >= ``t_tai_s`` when the hop is open, or inf if none within ``max_wait_s``.

        A callback is polled at most ``poll_horizon_s`` ahead per call: past that, the time
        returned is only when to look again (the hop may still be closed then).
        """
        t, limit = float(t_tai_s), float(t_tai_s) + self.max_wait_s
        polls = 0
        while t <= limit:
            if self.windows_tai_s is not None and not self._in_window(t):
                later = self.windows_tai_s[self.windows_tai_s[:, 0] > t, 0]
                if not len(later):
                    return NEVER
                t = float(later[0])
                continue
            if self._in_outage(t):
                o = self.outages_tai_s
                t = float(o[(o[:, 0] <= t) & (t < o[:, 1]), 1].max())
                continue
            if self.available is not None and not self.available(t):
                t += self.poll_s
                polls += 1
                if polls * self.poll_s >= self.poll_horizon_s:
                    return t
                continue
            return t
        return NEVER

    def open_throughout(self, t0_tai_s: float, t1_tai_s: float) -> bool:
        """Whether the hop stayed open over [t0, t1] (window and outage edges exact, callbacks every ``poll_s``)."""
        probes = np.arange(t0_tai_s, t1_tai_s, self.poll_s).tolist() + [t1_tai_s]
        for table in (self.windows_tai_s, self.outages_tai_s):
            if table is not None:
                edges = table.ravel()
                probes += edges[(edges > t0_tai_s) & (edges < t1_tai_s)].tolist()
                probes += [e - 1e-6 for e in edges if t0_tai_s < e - 1e-6 < t1_tai_s]
        return all(self.is_open(t) for t in probes)


# --- geometry of the Earth <-> lander hop -------------------------------------------------------


@dataclass(frozen=True)
class LanderSite:
    """The lander's site: planetocentric ``lat_deg``/``lon_deg`` (MOON_ME), ``height_m`` above the
    1737.4 km sphere, and the horizon that hides the Earth: ``horizon_deg`` a constant elevation
    mask (deg) or a function azimuth (deg, clockwise from north) -> horizon elevation (deg), e.g.
    ``functools.partial(hmap.elevation_deg, iy, ix)`` for a HorizonMap pixel.
    """

    lat_deg: float
    lon_deg: float
    height_m: float = 0.0
    horizon_deg: float | Callable = 0.0

    @property
    def radius_km(self) -> float:
        return MOON_RADIUS_KM + self.height_m / 1000.0

    def horizon_at(self, az_deg: np.ndarray) -> np.ndarray:
        """Horizon elevation (deg) at azimuths ``az_deg``."""
        if callable(self.horizon_deg):
            return np.asarray(self.horizon_deg(az_deg), dtype=float)
        return np.full_like(np.asarray(az_deg, dtype=float), float(self.horizon_deg))


class _SiteTrack:
    """The site as a Moon-centred ICRF 'trajectory' (``state_at``) for qamar.comms.visibility.look."""

    def __init__(self, site: LanderSite, ephemeris: Ephemeris):
        self.r_me_km = body_vector_from_lat_lon(site.lat_deg, site.lon_deg, site.radius_km)
        self.ephemeris = ephemeris

    def position(self, t_tdb_s: np.ndarray) -> np.ndarray:
        return np.einsum("nji,j->ni", icrf_to_me(np.atleast_1d(t_tdb_s), self.ephemeris).reshape(-1, 3, 3),
                         self.r_me_km)

    def state_at(self, t_tdb_s: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t_tdb_s, dtype=float))
        v = (self.position(t + 1.0) - self.position(t - 1.0)) / 2.0  # the site's rotation, < 5 m/s
        return np.hstack([self.position(t), v])


def earth_elevation_at_site_deg(site: LanderSite, t_tai_s, ephemeris: Ephemeris | None = None):
    """(azimuth, elevation) in deg of the Earth's centre seen from the site (geometric, MOON_ME), at TAI epochs."""
    tracks = body_tracks(np.atleast_1d(tai_to_tdb_s(np.asarray(t_tai_s, dtype=float))), ephemeris)
    return topocentric_az_el_deg(tracks.earth_me_km, site.lat_deg, site.lon_deg, site.radius_km)


def station_site_look(station: Station, site: LanderSite, t_tai_s, ephemeris: Ephemeris | None = None):
    """The station's view of the site (qamar.comms.visibility.Look: elevation, range, light time) at TAI epochs."""
    eph = ephemeris or Ephemeris.default()
    t_tdb = np.atleast_1d(tai_to_tdb_s(np.asarray(t_tai_s, dtype=float)))
    return look(station, t_tdb, _SiteTrack(site, eph), ephemeris=eph)


def light_time_s(station: Station, site: LanderSite, t_tai_s, ephemeris: Ephemeris | None = None) -> np.ndarray:
    """One-way light time (s) station <-> lander site at TAI epochs (reception at the station)."""
    return station_site_look(station, site, t_tai_s, ephemeris).light_time_s


def earth_lander_windows(stations: Sequence[Station], site: LanderSite, start_tai_s: float, stop_tai_s: float,
                         station_mask_deg: float = DEFAULT_STATION_MASK_DEG, step_s: float = 300.0,
                         ephemeris: Ephemeris | None = None) -> np.ndarray:
    """Intervals (n, 2) of TAI s when some station sees the site above its mask and the site sees the Earth.

    Edges refined by bisection to 1 ms; windows shorter than ``step_s`` can be missed. Raises
    EpochOutOfRangeError outside the ephemeris.
    """
    eph = ephemeris or Ephemeris.default()

    def margin(station):
        def f(t_tai):
            t_tai = np.atleast_1d(t_tai)
            az, el = earth_elevation_at_site_deg(site, t_tai, eph)
            seen = station_site_look(station, site, t_tai, eph).elevation_deg - station_mask_deg
            return np.minimum(seen, el - site.horizon_at(az))
        return f

    n = max(2, math.ceil((stop_tai_s - start_tai_s) / step_s) + 1)
    grid = np.linspace(start_tai_s, stop_tai_s, n)
    parts = [intervals_where_positive(grid, margin(s)(grid), margin(s)) for s in stations]
    return union_intervals(np.concatenate(parts)) if parts else np.zeros((0, 2))


def earth_lander_hop(stations: Sequence[Station], site: LanderSite, start_tai_s: float, stop_tai_s: float, *,
                     station_mask_deg: float = DEFAULT_STATION_MASK_DEG, step_s: float = 300.0,
                     processing_delay_s: float = DEFAULT_PROCESSING_DELAY_S,
                     relay_windows_utc: Sequence[tuple[str, str]] = (), relay_extra_delay_s: float = 0.1,
                     outages_utc: Sequence[tuple[str, str]] = (), loss_probability: float = 0.0,
                     ephemeris: Ephemeris | None = None) -> Hop:
    """The Earth <-> lander hop over [start, stop] (TAI s) from the geometry (see the module docstring).

    Its delay is the light time from the first station (in the given order) that is in view,
    interpolated on the ``step_s`` grid, plus ``processing_delay_s``. ``relay_windows_utc`` adds
    the times a Queqiao relay carries the traffic when there is no direct view (its orbit is not
    modelled here: give its passes), with ``relay_extra_delay_s`` more delay (assumption:
    Queqiao-2's 200 x 16,000 km orbit lengthens the path by up to ~16,000 km = 0.05 s, plus the
    relay's store-and-forward). Outside [start, stop] the hop is closed.
    """
    eph = ephemeris or Ephemeris.default()
    direct = earth_lander_windows(stations, site, start_tai_s, stop_tai_s, station_mask_deg, step_s, eph)
    relay = utc_intervals_to_tai_s(relay_windows_utc)
    windows = union_intervals(np.concatenate([direct, relay]))
    n = max(2, math.ceil((stop_tai_s - start_tai_s) / step_s) + 1)
    grid = np.linspace(start_tai_s, stop_tai_s, n)
    looks = [station_site_look(s, site, grid, eph) for s in stations]

    def delay(t_tai_s: float) -> float:
        relayed = not np.any((direct[:, 0] <= t_tai_s) & (t_tai_s < direct[:, 1]))
        extra_s = processing_delay_s + (relay_extra_delay_s if relayed else 0.0)
        for view in looks:
            if np.interp(t_tai_s, grid, view.elevation_deg) > station_mask_deg:
                return float(np.interp(t_tai_s, grid, view.light_time_s)) + extra_s
        return float(np.interp(t_tai_s, grid, looks[0].light_time_s)) + extra_s

    return Hop("earth-lander", delay, windows, outages_tai_s=utc_intervals_to_tai_s(outages_utc),
               loss_probability=loss_probability)


def range_line_of_sight(rover_position_m: Callable[[float], Sequence[float]], lander_position_m: Sequence[float],
                        max_range_m: float = DEFAULT_ROVER_RANGE_M,
                        line_of_sight: Callable[[float], bool] | None = None) -> Callable[[float], bool]:
    """An availability test for the lander <-> rover hop: within ``max_range_m`` and in line of sight.

    ``rover_position_m(t_tai_s)`` gives the rover's position in any metric frame shared with
    ``lander_position_m`` (e.g. polar stereographic x, y); ``line_of_sight(t_tai_s)`` (optional)
    says whether terrain blocks the radio path.
    """
    lander = np.asarray(lander_position_m, dtype=float)

    def available(t_tai_s: float) -> bool:
        distance = float(np.linalg.norm(np.asarray(rover_position_m(t_tai_s), dtype=float) - lander))
        return distance <= max_range_m and (line_of_sight is None or bool(line_of_sight(t_tai_s)))

    return available


def lander_rover_hop(available: Callable[[float], bool] | None = None, *,
                     delay_s: float = DEFAULT_PROCESSING_DELAY_S, outages_utc: Sequence[tuple[str, str]] = (),
                     loss_probability: float = 0.0, poll_s: float = 10.0) -> Hop:
    """The lander <-> rover hop: open while ``available(t_tai_s)`` (None: always), outside outages."""
    return Hop("lander-rover", delay_s, None, available, utc_intervals_to_tai_s(outages_utc), loss_probability,
               poll_s)


# --- the link -----------------------------------------------------------------------------------


@dataclass
class LinkCounts:
    """Packets of one direction: sent into the link, delivered, lost (by hop), and still inside."""

    sent: int = 0
    delivered: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    waiting: int = 0  # in a hop's queue, waiting for it to open
    in_flight: int = 0

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def accounted(self) -> bool:
        """Every packet sent is delivered, lost, waiting or in flight."""
        return self.sent == self.delivered + self.lost_total + self.waiting + self.in_flight


class DelayedLink:
    """Earth <-> lander <-> rover over ``clock`` (see the module docstring).

    The uplink goes through ``earth_hop`` then ``rover_hop``, the downlink the other way. Set
    ``on_uplink_delivered(packet, t_tai_s)`` (the rover) and ``on_downlink_delivered(packet,
    t_tai_s)`` (the ground). ``counts['up'|'down']`` account for every packet; ``lost_log`` lists
    (direction, hop, TAI s) of each loss. Losses draw from one generator seeded with ``seed``.
    """

    def __init__(self, clock: SimClock, earth_hop: Hop, rover_hop: Hop, seed: int = 0):
        self.clock = clock
        self.paths = {"up": (earth_hop, rover_hop), "down": (rover_hop, earth_hop)}
        self.counts = {"up": LinkCounts(), "down": LinkCounts()}
        self.lost_log: list[tuple[str, str, float]] = []
        self.on_uplink_delivered: Callable[[bytes, float], None] = lambda packet, t: None
        self.on_downlink_delivered: Callable[[bytes, float], None] = lambda packet, t: None
        self._rng = np.random.default_rng(seed)
        self._queues: dict[tuple[str, int], deque] = {(d, i): deque() for d in self.paths for i in range(2)}
        self._flush_at: dict[tuple[str, int], float] = {}

    def send_up(self, packet: bytes, on_departure: Callable[[float], None] | None = None) -> None:
        """Give a telecommand to the ground transmitter now; ``on_departure(t)`` when it actually leaves."""
        self.counts["up"].sent += 1
        self._enter("up", 0, bytes(packet), on_departure)

    def send_down(self, packet: bytes) -> None:
        """Give a telemetry packet to the rover's transmitter now."""
        self.counts["down"].sent += 1
        self._enter("down", 0, bytes(packet), None)

    def earth_open(self, t_tai_s: float) -> bool:
        """Whether the Earth <-> lander hop is open at ``t_tai_s``."""
        return self.paths["up"][0].is_open(t_tai_s)

    def round_trip_s(self, t_tai_s: float) -> float:
        """Up- plus downlink delay (s) through both hops for a packet leaving the ground at ``t_tai_s``."""
        return 2.0 * sum(hop.delay_at(t_tai_s) for hop in self.paths["up"])

    def open_throughout(self, t0_tai_s: float, t1_tai_s: float) -> bool:
        """Whether every hop stayed open over [t0, t1]."""
        return all(hop.open_throughout(t0_tai_s, t1_tai_s) for hop in self.paths["up"])

    def next_all_open(self, t_tai_s: float) -> float:
        """The earliest time >= ``t_tai_s`` when both hops are open (inf if none in sight)."""
        t = t_tai_s
        for _ in range(1000):
            opens = [hop.next_open(t) for hop in self.paths["up"]]
            if max(opens) == t or NEVER in opens:
                return max(opens)
            t = max(opens)
        return NEVER

    def _enter(self, direction: str, index: int, packet: bytes, on_departure) -> None:
        counts, hop, now = self.counts[direction], self.paths[direction][index], self.clock.now_tai_s
        queue = self._queues[direction, index]
        if queue or not hop.is_open(now):
            queue.append((packet, on_departure))
            counts.waiting += 1
            self._schedule_flush(direction, index)
            return
        self._transmit(direction, index, packet, on_departure)

    def _schedule_flush(self, direction: str, index: int) -> None:
        key = (direction, index)
        t = self.paths[direction][index].next_open(self.clock.now_tai_s)
        if t < NEVER and self._flush_at.get(key, NEVER) > t:
            self._flush_at[key] = t
            self.clock.at(t, self._flush, direction, index, t)

    def _flush(self, direction: str, index: int, planned: float) -> None:
        key = (direction, index)
        if self._flush_at.get(key) != planned:
            return  # superseded by an earlier flush
        del self._flush_at[key]
        hop, queue, counts = self.paths[direction][index], self._queues[key], self.counts[direction]
        while queue and hop.is_open(self.clock.now_tai_s):
            packet, on_departure = queue.popleft()
            counts.waiting -= 1
            self._transmit(direction, index, packet, on_departure)
        if queue:
            self._schedule_flush(direction, index)

    def _transmit(self, direction: str, index: int, packet: bytes, on_departure) -> None:
        hop, now, counts = self.paths[direction][index], self.clock.now_tai_s, self.counts[direction]
        if on_departure is not None:
            on_departure(now)
        if hop.loss_probability and self._rng.random() < hop.loss_probability:
            counts.lost[hop.name] = counts.lost.get(hop.name, 0) + 1
            self.lost_log.append((direction, hop.name, now))
            return
        counts.in_flight += 1
        self.clock.at(now + hop.delay_at(now), self._arrive, direction, index, packet)

    def _arrive(self, direction: str, index: int, packet: bytes) -> None:
        counts = self.counts[direction]
        counts.in_flight -= 1
        if index + 1 < len(self.paths[direction]):
            self._enter(direction, index + 1, packet, None)  # stored at the lander, forwarded when it can
            return
        counts.delivered += 1
        deliver = self.on_uplink_delivered if direction == "up" else self.on_downlink_delivered
        deliver(packet, self.clock.now_tai_s)


def describe_windows(windows_tai_s: np.ndarray) -> list[tuple[str, str]]:
    """Windows as (start, stop) ISO UTC strings, for reports."""
    return [(tai_s_to_utc(a), tai_s_to_utc(b)) for a, b in np.asarray(windows_tai_s).reshape(-1, 2)]

"""The ground service on the network: the rover twin over TCP, an HTTP API and the web console (issue 7, item 6).

:func:`serve_ground` runs a :class:`~qamar.ops.ground.GroundService` on the wall clock with its
archive at a database URL. Everything runs in one asyncio event loop (uvicorn's), so the
service, its database connection and its clock are only ever touched from one thread.

**Clock.** The service keeps its :class:`~qamar.ops.link.SimClock`; a ticker moves it to the
wall-clock TAI (``now_tai_s``, default :func:`wall_clock_tai_s`: UTC from the system clock
through qamar.time's leap seconds) every ``tick_s`` (0.1 s) and before every request, so
releases and timeouts fire at most ``tick_s`` late.

**Twin link.** The rover twin connects to ``tcp`` (default 127.0.0.1:10025). Each side writes raw
CCSDS Space Packets back to back; the ground cuts the stream by the packets' length fields
(:func:`~qamar.ops.packets.split_stream`). Telemetry goes through the service's downlink path
(archived, then limit-checked: alarms, command reports), one batch per read. Released
telecommands are written to the twin; while no twin is connected they wait, and their
acknowledgement timers do not run (:class:`TcpLink`). One twin at a time: a new connection
replaces the old one. The twin stands for the rover *and* the Moon link, so the ground adds no
delay; its timers assume a round trip of ``round_trip_s`` (default 2 x (1.36 s light time, the
upper bound of mission-brief.md sec. 5, + 2 x 0.05 s processing per hop, qamar.ops.link)).

**Refusals.** A command or sequence the dictionary refuses (unknown, out of range, bad time) is
answered 422 with the reason; a telecommand the rover refuses (COMMAND_STATUS REFUSED: bad MAC,
replayed or too old ARSN, out of range) fails its command. Both are logged (logger
``qamar.ops.server``, WARNING) and kept in table ``refusals`` of the archive's database.

**HTTP API** (JSON; see docs/ops-console.md): ``GET /api/status``, ``/api/telemetry/latest``,
``/api/telemetry/{parameter}`` (an interval of the archive, or the last seconds of data),
``/api/alarms`` (+ ``POST /api/alarms/{id}/ack``), ``/api/commands`` (+ ``POST``),
``POST /api/sequences``, ``/api/refusals``, ``/api/rover``, ``/api/map`` and ``/map.png``; the
console at ``/``. The HTTP server binds 127.0.0.1 unless given another address, and then
accepts only the Host names 127.0.0.1 and localhost (against DNS rebinding).

**Key.** The telecommand HMAC key comes from ``QAMAR_OPS_KEY_FILE`` (a file holding the key as
hex, readable by its owner only) or ``QAMAR_OPS_KEY`` (hex), never from the repository
(:func:`load_key`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import io
import json
import logging
import math
import os
import stat
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.middleware.trustedhost import TrustedHostMiddleware

from qamar.errors import QamarError
from qamar.ops.errors import CommandError, PacketError
from qamar.ops.ground import STAGES, CommandRecord, GroundConfig, GroundService
from qamar.ops.link import DEFAULT_PROCESSING_DELAY_S, SimClock
from qamar.ops.packets import PacketCodec, TelemetryPacket, peek_header, split_stream
from qamar.ops.sequence import parse_sequence
from qamar.time import tai_s_to_utc, utc_to_tai_s

_log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).with_name("web")
KEY_ENV, KEY_FILE_ENV = "QAMAR_OPS_KEY", "QAMAR_OPS_KEY_FILE"
MIN_KEY_OCTETS = 32  # HMAC-SHA-256 keys of at least the hash length (RFC 2104 sec. 3)
# One-way light time upper bound 1.36 s (mission-brief.md sec. 5) plus two hops' processing (qamar.ops.link).
DEFAULT_ROUND_TRIP_S = 2.0 * (1.36 + 2 * DEFAULT_PROCESSING_DELAY_S)
DEFAULT_SITE_DEM = "dem_site01_10m"
MAP_MAX_PX = 800  # the console's map is the DEM's hillshade block-averaged to at most this many pixels a side
MAX_POINTS = 5000  # a history answer keeps every k-th sample beyond this
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CUC_TICK_S = 2.0**-16


def wall_clock_tai_s() -> float:
    """Now, from the system clock (UTC), in TAI seconds past J2000."""
    return float(utc_to_tai_s(dt.datetime.now(dt.UTC)))


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` or a bare ``PORT`` (host 127.0.0.1); QamarError if malformed."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 <= number <= 65535:
        raise QamarError(f"{what} {text!r} is not HOST:PORT; write e.g. 127.0.0.1:8080")
    return host, number


def load_key() -> bytes:
    """The telecommand HMAC key: the hex in file ``$QAMAR_OPS_KEY_FILE``, else the hex in ``$QAMAR_OPS_KEY``.

    Raises QamarError if neither is set, the file cannot be read, is readable by group or others,
    or the key is not hex of at least 32 octets.
    """
    path, text = os.environ.get(KEY_FILE_ENV), os.environ.get(KEY_ENV)
    how = (f"create one with `python -c 'import secrets; print(secrets.token_hex(32))' > ops.key; chmod 600 ops.key` "
           f"and set {KEY_FILE_ENV}=ops.key (the rover twin needs the same key)")
    if path:
        try:
            mode = os.stat(path).st_mode
            text = Path(path).read_text()
        except OSError as exc:
            raise QamarError(f"cannot read the key file {path} ({KEY_FILE_ENV}): {exc.strerror}; {how}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise QamarError(f"the key file {path} is readable by others: chmod 600 {path}")
    elif text is None:
        raise QamarError(f"no telecommand key: {how}")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise QamarError(f"the telecommand key is not hex; {how}") from None
    if len(key) < MIN_KEY_OCTETS:
        raise QamarError(f"the telecommand key has {len(key)} octets, fewer than {MIN_KEY_OCTETS}; {how}")
    return key


class TcpLink:
    """The ground <-> twin link over one TCP connection, in the interface GroundService uses of a DelayedLink.

    A telecommand leaves when it is written to the connected twin (at once, or when a twin
    connects); ``open_throughout`` is whether one twin stayed connected, ``next_all_open`` polls
    every ``poll_s`` while none is. ``round_trip_s`` is the assumed round trip (module docstring).
    """

    def __init__(self, clock: SimClock, round_trip_s: float = DEFAULT_ROUND_TRIP_S, poll_s: float = 1.0):
        self.clock, self.poll_s, self._round_trip_s = clock, poll_s, round_trip_s
        self.on_downlink_delivered = lambda packet, t: None
        self.writer: asyncio.StreamWriter | None = None
        self.connected_since_tai_s: float | None = None
        self.sent = 0
        self._waiting: list[tuple[bytes, object]] = []

    def send_up(self, packet: bytes, on_departure=None) -> None:
        self._waiting.append((bytes(packet), on_departure))
        self._flush()

    def _flush(self) -> None:
        while self.writer is not None and self._waiting:
            packet, on_departure = self._waiting.pop(0)
            self.writer.write(packet)
            self.sent += 1
            if on_departure is not None:
                on_departure(self.clock.now_tai_s)

    def connect(self, writer: asyncio.StreamWriter) -> None:
        self.writer, self.connected_since_tai_s = writer, self.clock.now_tai_s
        self._flush()

    def disconnect(self, writer: asyncio.StreamWriter) -> None:
        if self.writer is writer:
            self.writer, self.connected_since_tai_s = None, None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def round_trip_s(self, t_tai_s: float) -> float:
        return self._round_trip_s

    def open_throughout(self, t0_tai_s: float, t1_tai_s: float) -> bool:
        return self.connected_since_tai_s is not None and self.connected_since_tai_s <= t0_tai_s

    def next_all_open(self, t_tai_s: float) -> float:
        return t_tai_s if self.writer is not None else t_tai_s + self.poll_s


class CommandIn(BaseModel):
    line: str
    at_utc: str | None = None


class SequenceIn(BaseModel):
    text: str
    name: str = "sequence"
    start_utc: str | None = None


class AckIn(BaseModel):
    operator: str


def _utc(t_tai_s: float | None) -> str | None:
    return None if t_tai_s is None else tai_s_to_utc(t_tai_s)


def _tai(utc: str, what: str) -> float:
    try:
        return float(utc_to_tai_s(utc))
    except QamarError as exc:
        raise CommandError(f"{what}: {exc}") from None


class GroundNode:
    """One running ground: the service on the wall clock, its twin link, caches for the console.

    Lives in the event loop's thread (SQLite connections stay in the thread that opened them).
    """

    def __init__(self, db_url: str, key: bytes, site_dem: str | None, config: GroundConfig | None,
                 now_tai_s, round_trip_s: float):
        self.now_tai_s, self.site_dem = now_tai_s, site_dem
        self.clock = SimClock(now_tai_s())
        self.link = TcpLink(self.clock, round_trip_s)
        self.ground = GroundService(db_url, self.clock, self.link, key, config=config)
        self.dictionary = self.ground.dictionary
        self.codec = PacketCodec(self.dictionary)  # its own, so that the service's error counts stay its own
        self.parameters = {p.name: (tm, p) for tm in self.dictionary.telemetry for p in tm.parameters}
        self.apids = self.dictionary.apids
        self.tcp_address: tuple[str, int] | None = None
        self.latest: dict[str, dict] = {}
        self.duplicates = 0
        with self.ground.archive.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS refusals (refusal_id BIGINT PRIMARY KEY, "
                        "t_tai_s DOUBLE PRECISION NOT NULL, source TEXT NOT NULL, what TEXT NOT NULL, "
                        "reason TEXT NOT NULL)")
            cur.execute("SELECT refusal_id, t_tai_s, source, what, reason FROM refusals ORDER BY refusal_id")
            names = ("refusal_id", "t_tai_s", "source", "what", "reason")
            self.refusals = [dict(zip(names, row)) for row in cur.fetchall()]
            for tm in self.dictionary.telemetry:
                cur.execute(self.ground.archive.sql("SELECT raw FROM packets WHERE apid = ? "
                                                    "ORDER BY cuc DESC, id DESC LIMIT 1"), (self.apids[tm.apid],))
                row = cur.fetchone()
                if row is not None:
                    self._remember(bytes(row[0]))

    def advance(self) -> None:
        """Run the service's events up to the wall clock."""
        self.clock.run_until(self.now_tai_s())

    # --- telemetry from the twin ---------------------------------------------------------------

    def receive(self, packets: list[bytes]) -> None:
        """Packets read from the twin: through the service's downlink (archive, limits, reports), then cached.

        Packets already in the archive (a twin resending after a reconnection) are counted in
        ``duplicates`` and not processed again: an old value must not clear or raise an alarm twice.
        """
        self.advance()
        packets = self._new(packets)
        for raw in packets:
            self.link.on_downlink_delivered(raw, self.clock.now_tai_s)
        self.advance()
        for raw in packets:
            self._remember(raw)

    def _new(self, packets: list[bytes]) -> list[bytes]:
        """The packets of a batch not yet archived (nor earlier in the batch); unframeable ones pass (to rejects)."""
        keys = []
        for raw in packets:
            try:
                packet_type, apid, seq_count, cuc = peek_header(raw)
                keys.append((cuc, apid, packet_type, seq_count))
            except PacketError:
                keys.append(None)
        cucs = [k[0] for k in keys if k is not None]
        seen = set()
        if cucs:
            with self.ground.archive.transaction() as cur:
                cur.execute(self.ground.archive.sql("SELECT cuc, apid, packet_type, seq_count FROM packets "
                                                    "WHERE cuc >= ? AND cuc <= ?"), (min(cucs), max(cucs)))
                seen = set(cur.fetchall())
        new = []
        for raw, key in zip(packets, keys):
            if key in seen:
                self.duplicates += 1
                continue
            if key is not None:
                seen.add(key)
            new.append(raw)
        return new

    def _remember(self, raw: bytes) -> None:
        try:
            packet = self.codec.decode(raw)
        except PacketError:
            return
        if not isinstance(packet, TelemetryPacket):
            return
        for name, value in packet.values.items():
            if name not in self.latest or packet.t_tai_s >= self.latest[name]["t_tai_s"]:
                self.latest[name] = {"t_tai_s": packet.t_tai_s, "value": value}
        if packet.definition.name == "COMMAND_STATUS" and packet.values["stage"] == "REFUSED":
            arsn = packet.values["arsn"]
            record = next((r for r in self.ground.commands() if r.arsn == arsn), None)
            what = f"ARSN {arsn}" + (f" (command {record.command_id}: {record.line})" if record else "")
            self.refuse("rover", what, packet.values["reason"])

    def refuse(self, source: str, what: str, reason: str) -> None:
        """Log a refusal (logger and table ``refusals``)."""
        entry = {"refusal_id": len(self.refusals) + 1, "t_tai_s": self.clock.now_tai_s, "source": source,
                 "what": what, "reason": reason}
        _log.warning("refused by the %s: %s: %s", source, what, reason)
        with self.ground.archive.transaction() as cur:
            cur.execute(self.ground.archive.sql("INSERT INTO refusals (refusal_id, t_tai_s, source, what, reason) "
                                                "VALUES (?, ?, ?, ?, ?)"), list(entry.values()))
        self.refusals.append(entry)

    async def serve_twin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One twin connection: read packets until it closes; telecommands go to it meanwhile."""
        peer = writer.get_extra_info("peername")
        if self.link.writer is not None:
            _log.warning("a new twin connected from %s: closing the previous connection", peer)
            self.link.writer.close()
        self.advance()
        self.link.connect(writer)
        _log.info("twin connected from %s", peer)
        pending = b""
        try:
            while chunk := await reader.read(1 << 16):
                packets, pending = split_stream(pending + chunk)
                if packets:
                    self.receive(packets)
                await writer.drain()
        except ConnectionError as exc:
            _log.warning("twin connection from %s lost: %s", peer, exc)
        finally:
            self.advance()
            self.link.disconnect(writer)
            if pending:
                self.receive([pending])  # archived as a reject (MALFORMED), never dropped silently
            writer.close()
            _log.info("twin from %s disconnected", peer)

    async def tick(self, tick_s: float) -> None:
        while True:
            try:
                self.advance()
            except Exception:  # noqa: BLE001 - a database error must not stop the clock for good; it is logged
                _log.exception("ground clock tick failed")
            await asyncio.sleep(tick_s)

    # --- views for the API ---------------------------------------------------------------------

    def command_view(self, record: CommandRecord) -> dict:
        view = asdict(record)
        view.pop("packet_hex")
        for stage in ("release", "queued", *(s.lower() for s in STAGES[1:])):
            view[f"{stage}_utc"] = _utc(view[f"{stage}_tai_s"])
        return view

    def history(self, name: str, start_tai_s: float, end_tai_s: float, max_points: int = MAX_POINTS) -> dict:
        """Samples of parameter ``name`` with time tags in [start, end) (TAI s) from the archive."""
        tm, parameter = self.parameters[name]
        t, values = [], []
        for archived, decoded in self.ground.replay(start_tai_s, end_tai_s, [self.apids[tm.apid]]):
            if decoded is not None:
                t.append(archived.t_tai_s)
                values.append(decoded.values[name])
        stride = max(1, math.ceil(len(t) / max_points))
        limits = parameter.limits.model_dump() if parameter.limits else None
        return {"parameter": name, "units": parameter.units, "limits": limits, "start_tai_s": start_tai_s,
                "end_tai_s": end_tai_s, "t_tai_s": t[::stride], "values": values[::stride],
                "first_utc": _utc(t[0]) if t else None, "last_utc": _utc(t[-1]) if t else None}

    @functools.cached_property
    def site_map(self) -> dict:
        """The site's hillshade as PNG octets and the DEM it came from; QamarError if the DEM cannot be read."""
        import numpy as np
        from PIL import Image

        from qamar import data
        from qamar.surface.maps import hillshade
        from qamar.surface.terrain import read_dem

        path = Path(self.site_dem) if self.site_dem else data.path(DEFAULT_SITE_DEM)
        dem = read_dem(path)
        shade = hillshade(dem)
        factor = max(1, math.ceil(max(dem.shape) / MAP_MAX_PX))
        ny, nx = (n // factor * factor for n in dem.shape)
        blocks = shade[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
        png = io.BytesIO()
        Image.fromarray(np.round(blocks * 255.0).astype(np.uint8)).save(png, format="PNG")
        return {"dem": dem, "factor": factor, "png": png.getvalue(), "name": path.name,
                "width_px": nx // factor, "height_px": ny // factor}

    def to_image(self, lat_deg: list[float], lon_deg: list[float]) -> tuple[list[float], list[float]]:
        """Map-image coordinates (x right, y down, in image pixels) of ME latitudes/longitudes."""
        from qamar.surface.terrain import lat_lon_to_xy, xy_to_pixel

        m = self.site_map
        row, col = xy_to_pixel(*lat_lon_to_xy(lat_deg, lon_deg, m["dem"]), m["dem"])
        return ((col + 0.5) / m["factor"]).tolist(), ((row + 0.5) / m["factor"]).tolist()


def create_app(db_url: str, key: bytes, tcp: str = "127.0.0.1:10025", site_dem: str | None = None,
               config: GroundConfig | None = None, now_tai_s=wall_clock_tai_s,
               round_trip_s: float = DEFAULT_ROUND_TRIP_S, tick_s: float = 0.1,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The ground service's FastAPI application (see the module docstring).

    The service starts with the application (its lifespan): the archive at ``db_url`` opens and
    the twin listener binds ``tcp`` (port 0: any free port, see ``GET /api/status``).
    ``site_dem`` is a DEM file (default: the registered ``dem_site01_10m``). ``allowed_hosts``
    restricts the Host header (None: any).
    """
    tcp_host, tcp_port = parse_address(tcp, "twin TCP address")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        node = GroundNode(db_url, key, site_dem, config, now_tai_s, round_trip_s)
        server = await asyncio.start_server(node.serve_twin, tcp_host, tcp_port)
        node.tcp_address = server.sockets[0].getsockname()[:2]
        _log.info("listening for the rover twin on %s:%d", *node.tcp_address)
        ticker = asyncio.create_task(node.tick(tick_s))
        app.state.node = node
        try:
            yield
        finally:
            ticker.cancel()
            server.close()
            if node.link.writer is not None:
                node.link.writer.close()
            node.ground.archive.close()

    app = FastAPI(title="qamar ground service", lifespan=lifespan)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    def live() -> GroundNode:
        node: GroundNode = app.state.node
        node.advance()
        return node

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/console.{kind}", include_in_schema=False)
    async def asset(kind: str):
        if kind not in ("js", "css"):
            raise HTTPException(404, "no such file")
        return FileResponse(WEB_DIR / f"console.{kind}")

    @app.get("/api/status")
    async def status():
        node = live()
        return {"now_tai_s": node.clock.now_tai_s, "now_utc": _utc(node.clock.now_tai_s),
                "twin_connected": node.link.writer is not None, "twin_since_utc": _utc(node.link.connected_since_tai_s),
                "tcp": "{}:{}".format(*node.tcp_address), "telecommands_sent": node.link.sent,
                "telecommands_waiting": node.link.waiting, "packets_archived": node.ground.archive.count(),
                "packets_duplicate": node.duplicates,
                "dictionary": f"{node.dictionary.name} {node.dictionary.version}",
                "parameters": {name: {"packet": tm.name, "units": p.units, "limits": p.limits is not None,
                                      "numeric": p.type not in ("enum", "bool")}
                               for name, (tm, p) in node.parameters.items()},
                "commands": {c.name: [a.name + "=" + a.range_text() for a in c.arguments]
                             for c in node.dictionary.commands}}

    @app.get("/api/telemetry/latest")
    async def telemetry_latest():
        node = live()
        return {name: {**v, "utc": _utc(v["t_tai_s"])} for name, v in node.latest.items()}

    @app.get("/api/telemetry/{name}")
    async def telemetry(name: str, start_utc: str | None = None, end_utc: str | None = None,
                        start_tai_s: float | None = None, end_tai_s: float | None = None,
                        after_tai_s: float | None = None, last_s: float = 600.0, max_points: int = MAX_POINTS):
        """Samples of one parameter: [start, end) (UTC or TAI s), or after ``after_tai_s``, or the
        ``last_s`` seconds up to the parameter's latest sample (the twin's time, not the wall clock)."""
        node = live()
        if name not in node.parameters:
            raise HTTPException(404, f"no telemetry parameter {name!r}; see /api/status for the list")
        try:
            start = _tai(start_utc, "start_utc") if start_utc else start_tai_s
            end = _tai(end_utc, "end_utc") if end_utc else end_tai_s
        except CommandError as exc:
            raise HTTPException(422, str(exc)) from None
        latest = node.latest.get(name, {}).get("t_tai_s")
        if after_tai_s is not None:
            start = after_tai_s + _CUC_TICK_S
        if end is None:
            end = math.inf if latest is None else latest + _CUC_TICK_S
        if start is None:
            start = -math.inf if latest is None else latest - last_s
        if not end > start:
            return node.history(name, 0.0, 0.0)
        finite_end = min(end, float(2**32))
        return node.history(name, max(start, -1.0e9), finite_end, max(1, max_points))

    @app.get("/api/alarms")
    async def alarms(active_only: bool = False):
        node = live()
        return [{**asdict(a), "raised_utc": _utc(a.raised_tai_s), "cleared_utc": _utc(a.cleared_tai_s),
                 "acknowledged_utc": _utc(a.acknowledged_tai_s)} for a in node.ground.alarms(active_only)]

    @app.post("/api/alarms/{alarm_id}/ack")
    async def acknowledge(alarm_id: int, body: AckIn):
        node = live()
        try:
            return asdict(node.ground.acknowledge_alarm(alarm_id, body.operator))
        except CommandError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/commands")
    async def commands(stage: str | None = None):
        node = live()
        return [node.command_view(r) for r in node.ground.commands(stage)]

    @app.post("/api/commands", status_code=201)
    async def submit(body: CommandIn):
        node = live()
        try:
            at = None if body.at_utc is None else _tai(body.at_utc, "at_utc")
            command_id = node.ground.submit(body.line, at)
        except CommandError as exc:
            node.refuse("ground", body.line, str(exc))
            raise HTTPException(422, str(exc)) from None
        node.advance()  # a command due now is released at once
        return node.command_view(node.ground.command(command_id))

    @app.post("/api/sequences", status_code=201)
    async def upload(body: SequenceIn):
        node = live()
        try:
            sequence = parse_sequence(body.text, node.dictionary, body.name)
            start = None if body.start_utc is None else _tai(body.start_utc, "start_utc")
            sequence.release_times_tai_s(start)  # refuse a sequence without a start before queueing any of it
            ids = node.ground.submit_sequence(sequence, start)
        except CommandError as exc:
            node.refuse("ground", f"sequence {body.name}", str(exc))
            raise HTTPException(422, str(exc)) from None
        node.advance()
        return {"name": sequence.name, "commands": [node.command_view(node.ground.command(i)) for i in ids]}

    @app.get("/api/refusals")
    async def refusals():
        node = live()
        return [{**r, "utc": _utc(r["t_tai_s"])} for r in node.refusals]

    async def site_map(node: GroundNode) -> dict:
        """The node's map, rendered in a worker thread the first time (about a second for 1600 x 1600)."""
        try:
            return await asyncio.to_thread(getattr, node, "site_map")
        except QamarError as exc:
            raise HTTPException(404, f"no site map: {exc}") from None

    @app.get("/api/map")
    async def map_info():
        m = await site_map(live())
        return {"png": "/map.png", "dem": m["name"], "width_px": m["width_px"], "height_px": m["height_px"],
                "pixel_m": m["dem"].pixel_size_m * m["factor"]}

    @app.get("/map.png", include_in_schema=False)
    async def map_png():
        return Response((await site_map(live()))["png"], media_type="image/png")

    @app.get("/api/rover")
    async def rover(last_s: float = 86400.0, after_tai_s: float | None = None):
        """The rover's last position and its track (NAVIGATION): the ``last_s`` seconds before the last
        position, or the positions after ``after_tai_s``."""
        node = live()
        if "lat_deg" not in node.latest:
            return {"position": None, "track": []}
        t_last = node.latest["lat_deg"]["t_tai_s"]
        start = t_last - last_s if after_tai_s is None else after_tai_s + _CUC_TICK_S
        lat = node.history("lat_deg", start, t_last + _CUC_TICK_S)
        lon = node.history("lon_deg", start, t_last + _CUC_TICK_S)
        track = {"t_tai_s": lat["t_tai_s"], "lat_deg": lat["values"], "lon_deg": lon["values"]}
        with contextlib.suppress(HTTPException):  # no map: positions without image coordinates
            await site_map(node)
            track["x_px"], track["y_px"] = node.to_image(lat["values"], lon["values"])
        position = {k: v[-1] for k, v in track.items()} if track["t_tai_s"] else None
        if position is not None:
            position["utc"] = _utc(position["t_tai_s"])
        return {"position": position, "track": track}

    return app


def serve_ground(db_url: str, http: str = "127.0.0.1:8080", tcp: str = "127.0.0.1:10025",
                 site_dem: str | None = None) -> None:
    """Run the ground service until Ctrl-C or SIGTERM: HTTP API and console on ``http``, the twin on ``tcp``.

    Binds 127.0.0.1 unless another host is given. The telecommand key comes from the environment
    (:func:`load_key`). Raises QamarError for a bad address or a missing key, DataFormatError if
    the database cannot be opened.
    """
    import uvicorn

    host, port = parse_address(http, "HTTP address")
    parse_address(tcp, "twin TCP address")
    key = load_key()
    loopback = host in _LOOPBACK
    if not loopback:
        _log.warning("the console and command API listen on %s, beyond this machine: anyone who reaches it can "
                     "command the rover; put it behind an authenticating proxy", host)
    app = create_app(db_url, key, tcp, site_dem, allowed_hosts=["127.0.0.1", "localhost"] if loopback else None)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run()


def post_command(line: str, at_utc: str | None = None, http: str = "127.0.0.1:8080") -> dict:
    """Queue ``line`` on the ground service running at ``http`` (release at ``at_utc``, default now).

    Returns the queued command record (JSON fields of GET /api/commands). Raises CommandError
    with the ground's reason if it refuses the command, QamarError if the ground cannot be reached.
    """
    host, port = parse_address(http, "HTTP address")
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/api/commands"
    request = urllib.request.Request(url, data=json.dumps({"line": line, "at_utc": at_utc}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        raise CommandError(f"the ground refused {line!r}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QamarError(f"cannot reach the ground service at {url} ({reason}): start it with "
                         f"`qamar ops ground --db sqlite:///ops.db --http {host}:{port}` or give its address "
                         "with --http") from None

"""The ground service core: archive, limits and alarms, command queue with verification (issue 7, item 5).

:class:`GroundService` runs on a :class:`~qamar.ops.link.SimClock` and a
:class:`~qamar.ops.link.DelayedLink`. Everything it must remember lives in the archive's database
(SQLite by default, PostgreSQL through a URL), beside the packets: tables ``commands`` and
``alarms``. A service built again on the same database carries on: queued commands are
scheduled again, released ones not yet sent go back to the transmitter with the same packet,
sent ones get their timers back, active alarms stay active (and are not raised again).

**Telemetry.** :meth:`GroundService.receive` archives packets (one transaction, acknowledged
after the commit: :class:`~qamar.ops.archive.PacketArchive`), decodes them and checks limits.
Packets the link delivers are gathered and archived together ``ingest_batch_s`` of simulated
time after the first of them (0: after the other events of the same instant), so that a
rehearsal does not pay one commit per packet; their processing is delayed by at most that.

**Limits and alarms.** A parameter's level is CRITICAL beyond a critical limit, WARNING beyond a
warning limit (the dictionary's ``limits``), else nominal. An alarm is raised when the level
leaves nominal and no alarm of that parameter is active; while it is active its severity is the
worst level seen (escalation updates it, it does not raise another). It clears when the value
is back inside the innermost limits by a deadband (hysteresis, so a value dithering on a limit
raises one alarm, not hundreds): ``deadband[name]`` if given, else ``deadband_fraction`` (1 %)
of the parameter's min..max span, or of the limit's magnitude when there is no span. Operators
acknowledge alarms (:meth:`acknowledge_alarm`); acknowledgement and clearing are independent.

**Commands.** Stages QUEUED (waiting for its release time) -> RELEASED (signed with the next
anti-replay number, archived, given to the transmitter, which holds it until the link opens)
-> SENT (it left the antenna) -> ACKNOWLEDGED (the rover's COMMAND_STATUS ACCEPTED) ->
COMPLETED; FAILED when the rover reports FAILED or REFUSED, or on a timeout. Timeouts:

- acknowledgement: from the time the command actually left, the round-trip delay of the link
  plus ``ack_margin_s``; a command waiting in the transmitter for a window never times out;
- completion: from the acknowledgement, the command's expected duration
  (``completion_s[name]`` or ``default_completion_s``) plus ``ack_margin_s``;
- when a timer expires but a hop of the link was closed at some time since the timer started
  (the answer may be waiting for the next window), the timer starts again when the link is
  next fully open, with the same length. Only a timer that ran while the link was open all
  along fails the command (reason ACK_TIMEOUT or COMPLETION_TIMEOUT). If the link's windows
  end for good (past the span they were computed for), the command keeps its stage and a
  warning is logged: compute windows further ahead.

A report arriving after a timeout still moves the command on (reason keeps ``LATE``). Stages
never go backwards (a duplicate or out-of-order report is ignored); the rover's STARTED report
is archived but moves no stage; a REFUSED report for a command the rover already accepted
concerns a copy of it (a replay on the link) and is only logged. Reports are matched to commands by anti-replay number (ARSN).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from qamar.ops.archive import ArchivedPacket, PacketArchive
from qamar.ops.dictionary import CommandCall, Dictionary, Parameter, default_dictionary
from qamar.ops.errors import CommandError, PacketError
from qamar.ops.link import DelayedLink, SimClock
from qamar.ops.packets import (
    CommandSigner,
    PacketCodec,
    SequenceCounters,
    TelemetryPacket,
)
from qamar.ops.sequence import CommandSequence

_log = logging.getLogger(__name__)

STAGES = ("QUEUED", "RELEASED", "SENT", "ACKNOWLEDGED", "COMPLETED", "FAILED")
_RANK = {stage: i for i, stage in enumerate(STAGES)}
_REPORTED = {"ACCEPTED": "ACKNOWLEDGED", "COMPLETED": "COMPLETED", "FAILED": "FAILED", "REFUSED": "FAILED"}
DEFAULT_ACK_MARGIN_S = 30.0  # assumption: rover and lander processing, a few frame retries
DEFAULT_COMPLETION_S = 600.0  # assumption: most commands finish within ten minutes
# DRIVE_TO: a 100 m drive at the default 1 cm/s (Pragyan, mission-brief.md sec. 3) takes 10,000 s: 4 h assumed.
DEFAULT_COMPLETION_BY_COMMAND_S = {"DRIVE_TO": 14_400.0}

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS commands (
        command_id INTEGER PRIMARY KEY, line TEXT NOT NULL, sequence TEXT, stage TEXT NOT NULL,
        release_tai_s DOUBLE PRECISION NOT NULL, queued_tai_s DOUBLE PRECISION NOT NULL,
        released_tai_s DOUBLE PRECISION, sent_tai_s DOUBLE PRECISION, acknowledged_tai_s DOUBLE PRECISION,
        completed_tai_s DOUBLE PRECISION, failed_tai_s DOUBLE PRECISION, timer_start_tai_s DOUBLE PRECISION,
        arsn BIGINT UNIQUE, reason TEXT, packet_hex TEXT)""",
    """CREATE TABLE IF NOT EXISTS alarms (
        alarm_id INTEGER PRIMARY KEY, parameter TEXT NOT NULL, severity TEXT NOT NULL, value DOUBLE PRECISION,
        raised_tai_s DOUBLE PRECISION NOT NULL, cleared_tai_s DOUBLE PRECISION,
        acknowledged_tai_s DOUBLE PRECISION, acknowledged_by TEXT)""",
]


@dataclass
class CommandRecord:
    """One command in the queue (times in TAI s past J2000; None until the stage is reached)."""

    command_id: int
    line: str
    sequence: str | None
    stage: str
    release_tai_s: float
    queued_tai_s: float
    released_tai_s: float | None = None
    sent_tai_s: float | None = None
    acknowledged_tai_s: float | None = None
    completed_tai_s: float | None = None
    failed_tai_s: float | None = None
    timer_start_tai_s: float | None = None  # when the running ack/completion timer (re)started
    arsn: int | None = None
    reason: str | None = None
    packet_hex: str | None = None


@dataclass
class Alarm:
    """One alarm of a telemetry parameter: active while ``cleared_tai_s`` is None."""

    alarm_id: int
    parameter: str
    severity: str
    value: float
    raised_tai_s: float
    cleared_tai_s: float | None = None
    acknowledged_tai_s: float | None = None
    acknowledged_by: str | None = None


@dataclass
class GroundConfig:
    """Timeouts and alarm hysteresis of the ground service (see the module docstring); all assumptions."""

    ack_margin_s: float = DEFAULT_ACK_MARGIN_S
    default_completion_s: float = DEFAULT_COMPLETION_S
    completion_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COMPLETION_BY_COMMAND_S))
    deadband_fraction: float = 0.01
    deadband: dict[str, float] = field(default_factory=dict)
    ingest_batch_s: float = 0.0


def limit_level(value: float, parameter: Parameter) -> str | None:
    """CRITICAL, WARNING or None (nominal) for ``value`` of ``parameter`` against its limits."""
    lim = parameter.limits
    if lim is None:
        return None
    if (lim.critical_low is not None and value < lim.critical_low) or \
            (lim.critical_high is not None and value > lim.critical_high):
        return "CRITICAL"
    if (lim.warning_low is not None and value < lim.warning_low) or \
            (lim.warning_high is not None and value > lim.warning_high):
        return "WARNING"
    return None


class GroundService:
    """The ground service on ``archive`` (a PacketArchive or its URL), ``clock`` and ``link``.

    ``key`` is the telecommand authentication key shared with the rover. The service takes over
    ``link.on_downlink_delivered``. Raises DataFormatError if the database cannot be opened.
    """

    def __init__(self, archive: PacketArchive | str | Path, clock: SimClock, link: DelayedLink, key: bytes,
                 dictionary: Dictionary | None = None, config: GroundConfig | None = None):
        self.archive = archive if isinstance(archive, PacketArchive) else PacketArchive(archive)
        self.clock, self.link, self.config = clock, link, config or GroundConfig()
        self.dictionary = dictionary or default_dictionary()
        self.codec = PacketCodec(self.dictionary)
        self._parameters = {p.name: p for tm in self.dictionary.telemetry for p in tm.parameters}
        with self.archive.transaction() as cur:
            for statement in _SCHEMA:
                cur.execute(statement)
        self._commands = {r.command_id: r for r in self._load(CommandRecord, "commands", "command_id")}
        self._alarms = {a.alarm_id: a for a in self._load(Alarm, "alarms", "alarm_id")}
        self._active = {a.parameter: a for a in self._alarms.values() if a.cleared_tai_s is None}
        tc_apids = {self.dictionary.apids[c.apid] for c in self.dictionary.commands}
        next_counts = {apid: check.last + 1 for apid, check in self.archive.sequences.items()
                       if apid in tc_apids and check.last is not None}
        arsns = [r.arsn for r in self._commands.values() if r.arsn is not None]
        self.signer = CommandSigner(key, self.codec, next_arsn=max(arsns, default=0) + 1,
                                    counters=SequenceCounters(next_counts))
        self._inbox: list[bytes] = []
        link.on_downlink_delivered = self._deliver
        self._restore()

    # --- persistence ---------------------------------------------------------------------------

    def _load(self, kind, table: str, key: str) -> list:
        names = [f.name for f in fields(kind)]
        with self.archive.transaction() as cur:
            cur.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY {key}")
            return [kind(**dict(zip(names, row))) for row in cur.fetchall()]

    def _save(self, table: str, key: str, record) -> None:
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        names = list(values)
        update = ", ".join(f"{n} = excluded.{n}" for n in names if n != key)
        with self.archive.transaction() as cur:
            cur.execute(self.archive.sql(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                                         f"({', '.join('?' * len(names))}) ON CONFLICT ({key}) DO UPDATE SET {update}"),
                        list(values.values()))

    def _restore(self) -> None:
        """Timers and transmissions of a restarted service, from the commands table."""
        for record in self._commands.values():
            if record.stage == "QUEUED":
                self.clock.at(record.release_tai_s, self._release, record.command_id)
            elif record.stage == "RELEASED":
                self._transmit(record)
            elif record.stage in ("SENT", "ACKNOWLEDGED"):
                self._arm(record, record.stage, record.timer_start_tai_s)

    # --- commands ------------------------------------------------------------------------------

    def submit(self, command: CommandCall | str, at_tai_s: float | None = None, sequence: str | None = None) -> int:
        """Queue ``command`` (a CommandCall or an operator line) for release at ``at_tai_s`` (default: now).

        Returns the command id. Raises CommandError for a bad command.
        """
        call = self.dictionary.parse_command(command) if isinstance(command, str) else \
            CommandCall.checked(command.command, command.args)
        now = self.clock.now_tai_s
        record = CommandRecord(max(self._commands, default=0) + 1, str(call), sequence, "QUEUED",
                               now if at_tai_s is None else float(at_tai_s), now)
        self._commands[record.command_id] = record
        self._save("commands", "command_id", record)
        self.clock.at(record.release_tai_s, self._release, record.command_id)
        return record.command_id

    def submit_sequence(self, sequence: CommandSequence, start_tai_s: float | None = None) -> list[int]:
        """Queue every command of ``sequence`` at its release time; the command ids in entry order."""
        times = sequence.release_times_tai_s(start_tai_s)
        return [self.submit(entry.call, t, sequence.name) for entry, t in zip(sequence.entries, times)]

    def command(self, command_id: int) -> CommandRecord:
        """The record of command ``command_id``; CommandError if there is none."""
        try:
            return self._commands[command_id]
        except KeyError:
            raise CommandError(f"no command {command_id} in the queue") from None

    def commands(self, stage: str | None = None) -> list[CommandRecord]:
        """Every command (of one stage if given), by id."""
        return [r for r in self._commands.values() if stage is None or r.stage == stage]

    def _move(self, record: CommandRecord, stage: str, reason: str | None = None) -> None:
        now = self.clock.now_tai_s
        record.stage = stage
        if stage != "QUEUED":
            setattr(record, f"{stage.lower()}_tai_s", now)
        if reason is not None:
            record.reason = reason
        self._save("commands", "command_id", record)
        _log.info("command %d %s: %s%s", record.command_id, record.line, stage, f" ({reason})" if reason else "")

    def _release(self, command_id: int) -> None:
        record = self._commands[command_id]
        if record.stage != "QUEUED":
            return
        call = self.dictionary.parse_command(record.line)
        packet = self.signer.sign(call, self.clock.now_tai_s)
        record.arsn = self.signer.next_arsn - 1
        record.packet_hex = packet.hex()
        self.archive.ingest([packet], self.clock.now_tai_s)
        self._move(record, "RELEASED")
        self._transmit(record)

    def _transmit(self, record: CommandRecord) -> None:
        self.link.send_up(bytes.fromhex(record.packet_hex), lambda t: self._sent(record.command_id))

    def _sent(self, command_id: int) -> None:
        record = self._commands[command_id]
        if record.stage == "RELEASED":
            self._arm(record, "SENT", self.clock.now_tai_s)
            self._move(record, "SENT")

    def _timeout_s(self, record: CommandRecord, stage: str, start_tai_s: float) -> float:
        if stage == "SENT":
            return self.link.round_trip_s(start_tai_s) + self.config.ack_margin_s
        name = record.line.split()[0]
        return self.config.completion_s.get(name, self.config.default_completion_s) + self.config.ack_margin_s

    def _arm(self, record: CommandRecord, stage: str, start_tai_s: float) -> None:
        """Start the timer of ``stage`` at ``start_tai_s`` (the caller saves the record)."""
        record.timer_start_tai_s = start_tai_s
        self.clock.at(start_tai_s + self._timeout_s(record, stage, start_tai_s), self._expire, record.command_id,
                      stage, start_tai_s)

    def _expire(self, command_id: int, stage: str, start_tai_s: float) -> None:
        record = self._commands[command_id]
        if record.stage != stage or record.timer_start_tai_s != start_tai_s:
            return  # the command moved on, or the timer was restarted
        now = self.clock.now_tai_s
        if not self.link.open_throughout(start_tai_s, now):
            restart = self.link.next_all_open(now)
            if restart == float("inf"):
                _log.warning("command %d: the link does not open again within its windows; waiting", command_id)
                return
            self._arm(record, stage, restart)
            self._save("commands", "command_id", record)
            return
        self._move(record, "FAILED", "ACK_TIMEOUT" if stage == "SENT" else "COMPLETION_TIMEOUT")

    def _report(self, packet: TelemetryPacket) -> None:
        """A COMMAND_STATUS from the rover moves its command on."""
        arsn, reported = packet.values["arsn"], packet.values["stage"]
        record = next((r for r in self._commands.values() if r.arsn == arsn), None)
        stage = _REPORTED.get(reported)
        if record is None or stage is None:
            if record is None:
                _log.warning("COMMAND_STATUS for ARSN %d, which this ground did not send", arsn)
            return
        late = record.stage == "FAILED" and (record.reason or "").endswith("TIMEOUT")
        if not late and _RANK[stage] <= _RANK[record.stage]:
            return
        if reported == "REFUSED" and record.stage in ("ACKNOWLEDGED", "COMPLETED"):
            _log.warning("the rover refused a copy of command %d (ARSN %d), which it had accepted: %s",
                         record.command_id, arsn, packet.values["reason"])
            return  # a replayed copy, not the command: it keeps its stage
        reason = None if reported in ("ACCEPTED", "COMPLETED") else f"{reported} {packet.values['reason']}"
        if late:
            reason = f"LATE after {record.reason}" + (f", {reason}" if reason else "")
        if stage == "ACKNOWLEDGED":
            self._arm(record, stage, self.clock.now_tai_s)
        self._move(record, stage, reason)

    # --- telemetry and alarms ------------------------------------------------------------------

    def _deliver(self, packet: bytes, t_tai_s: float) -> None:
        if not self._inbox:
            self.clock.after(self.config.ingest_batch_s, self._ingest_inbox)
        self._inbox.append(packet)

    def _ingest_inbox(self) -> None:
        packets, self._inbox = self._inbox, []
        self.receive(packets)

    def receive(self, packets: Sequence[bytes]) -> None:
        """Archive ``packets`` (received now), then check limits and command reports."""
        now = self.clock.now_tai_s
        self.archive.ingest(packets, now)
        for raw in packets:
            try:
                packet = self.codec.decode(raw)
            except PacketError:
                continue  # counted in codec.errors; the raw octets are in the archive
            if not isinstance(packet, TelemetryPacket):
                continue
            if packet.definition.name == "COMMAND_STATUS":
                self._report(packet)
            for name, value in packet.values.items():
                parameter = self._parameters[name]
                if parameter.limits is not None:
                    self._check_limit(parameter, float(value), now)

    def _deadband(self, parameter: Parameter, limit: float) -> float:
        if parameter.name in self.config.deadband:
            return self.config.deadband[parameter.name]
        if parameter.min is not None and parameter.max is not None:
            return self.config.deadband_fraction * (parameter.max - parameter.min)
        return self.config.deadband_fraction * abs(limit)

    def _cleared(self, value: float, parameter: Parameter) -> bool:
        lim = parameter.limits
        low = lim.warning_low if lim.warning_low is not None else lim.critical_low
        high = lim.warning_high if lim.warning_high is not None else lim.critical_high
        return ((low is None or value >= low + self._deadband(parameter, low))
                and (high is None or value <= high - self._deadband(parameter, high)))

    def _check_limit(self, parameter: Parameter, value: float, now: float) -> None:
        level, active = limit_level(value, parameter), self._active.get(parameter.name)
        if active is None:
            if level is not None:
                alarm = Alarm(max(self._alarms, default=0) + 1, parameter.name, level, value, now)
                self._alarms[alarm.alarm_id] = self._active[parameter.name] = alarm
                self._save("alarms", "alarm_id", alarm)
                _log.warning("alarm %d raised: %s = %g (%s)", alarm.alarm_id, parameter.name, value, level)
        elif level == "CRITICAL" and active.severity == "WARNING":
            active.severity, active.value = level, value
            self._save("alarms", "alarm_id", active)
        elif level is None and self._cleared(value, parameter):
            active.cleared_tai_s = now
            del self._active[parameter.name]
            self._save("alarms", "alarm_id", active)

    def alarms(self, active_only: bool = False) -> list[Alarm]:
        """Every alarm (only the active ones if asked), by id."""
        return [a for a in self._alarms.values() if not active_only or a.cleared_tai_s is None]

    def acknowledge_alarm(self, alarm_id: int, operator: str) -> Alarm:
        """Record that ``operator`` acknowledged alarm ``alarm_id`` now; CommandError if there is none."""
        alarm = self._alarms.get(alarm_id)
        if alarm is None:
            raise CommandError(f"no alarm {alarm_id}; the alarms are {sorted(self._alarms)}")
        if alarm.acknowledged_tai_s is None:
            alarm.acknowledged_tai_s, alarm.acknowledged_by = self.clock.now_tai_s, operator
            self._save("alarms", "alarm_id", alarm)
        return alarm

    # --- replay --------------------------------------------------------------------------------

    def replay(self, start_tai_s: float, end_tai_s: float, apids: Sequence[int] | None = None
               ) -> Iterator[tuple[ArchivedPacket, TelemetryPacket | None]]:
        """Archived packets with time tags in [start, end) (TAI s), in time order, with their decoding
        (None for a packet this dictionary cannot decode, and for telecommands, which stay raw)."""
        for archived in self.archive.replay(start_tai_s, end_tai_s, apids):
            decoded = None
            if archived.packet_type == 0:
                try:
                    decoded = self.codec.decode(archived.raw)
                except PacketError:
                    pass
            yield archived, decoded

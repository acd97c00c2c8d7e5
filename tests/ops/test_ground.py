"""The ground service core over the simulated link: command stages and timeouts (windows included),
limit alarms with hysteresis, time-tagged sequences, replay, and a restart that keeps queue and alarms."""


import numpy as np
import pytest

from qamar.ops import link as lk
from qamar.ops.errors import CommandError, CommandRefusedError
from qamar.ops.ground import GroundConfig, GroundService, limit_level
from qamar.ops.packets import CommandVerifier, PacketCodec, SequenceCounters
from qamar.ops.sequence import parse_sequence

KEY = b"k" * 32
UP_S, ROVER_S = 1.28, 0.05  # one-way light time and lander-rover hop delay of the test link
RTT_S = 2 * (UP_S + ROVER_S)
NOMINAL_HK = {"mode": "STANDBY", "battery_soc_pct": 80.0, "bus_voltage_v": 27.0, "battery_temp_c": 20.0,
              "avionics_temp_c": 20.0, "motor_temp_c": 10.0, "heater_on": False, "commands_accepted": 0,
              "commands_refused": 0}


class EchoRover:
    """Stand-in for the rover twin: verifies each telecommand, reports ACCEPTED ``ack_after_s`` later
    and COMPLETED ``work_s`` after that (REFUSED with the reason if the verifier refuses it)."""

    def __init__(self, clock, link, key=KEY, ack_after_s=0.0, work_s=5.0):
        self.clock, self.link, self.ack_after_s, self.work_s = clock, link, ack_after_s, work_s
        self.codec = PacketCodec()
        self.verifier = CommandVerifier(key, self.codec)
        self.counters = SequenceCounters()
        self.received = []
        link.on_uplink_delivered = self.receive

    def report(self, arsn, opcode, stage, reason="NONE"):
        values = {"arsn": arsn, "opcode": opcode, "stage": stage, "reason": reason}
        self.link.send_down(self.codec.encode_telemetry("COMMAND_STATUS", values, self.counters.next(0x104),
                                                        self.clock.now_tai_s))

    def receive(self, packet, t):
        decoded = self.codec.decode(packet)
        self.received.append((decoded.arsn, t))
        try:
            self.verifier.verify(packet)
        except CommandRefusedError as exc:
            self.report(decoded.arsn, decoded.command.opcode, "REFUSED", exc.reason)
            return
        self.clock.after(self.ack_after_s, self.report, decoded.arsn, decoded.command.opcode, "ACCEPTED")
        self.clock.after(self.ack_after_s + self.work_s, self.report, decoded.arsn, decoded.command.opcode, "COMPLETED")


def _setup(db, windows=((0.0, 1e6),), loss=0.0, config=None, start=0.0, **rover):
    clock = lk.SimClock(start)
    earth = lk.Hop("earth-lander", UP_S, np.asarray(windows, dtype=float), loss_probability=loss)
    link = lk.DelayedLink(clock, earth, lk.Hop("lander-rover", ROVER_S), seed=3)
    ground = GroundService(db, clock, link, KEY, config=config)
    return clock, link, ground, EchoRover(clock, link, **rover)


def test_a_command_goes_through_every_stage(tmp_path):
    clock, _link, ground, rover = _setup(tmp_path / "ops.db")
    cid = ground.submit("NOOP", at_tai_s=10.0)
    assert ground.command(cid).stage == "QUEUED"
    clock.run_until(100.0)
    r = ground.command(cid)
    assert r.stage == "COMPLETED" and r.arsn == 1 and r.reason is None
    assert r.released_tai_s == r.sent_tai_s == 10.0
    assert r.acknowledged_tai_s == pytest.approx(10.0 + RTT_S)
    assert r.completed_tai_s == pytest.approx(10.0 + RTT_S + 5.0)
    assert rover.received == [(1, pytest.approx(10.0 + UP_S + ROVER_S))]
    with pytest.raises(CommandError, match="unknown command"):
        ground.submit("FLY_AWAY")


def test_a_command_outside_a_window_waits_without_timing_out(tmp_path):
    clock, _link, ground, rover = _setup(tmp_path / "ops.db", windows=[(5000.0, 9000.0)])
    cid = ground.submit("TURN angle_deg=30")
    clock.run_until(4999.0)  # far beyond round trip + margin, but it never left
    r = ground.command(cid)
    assert r.stage == "RELEASED" and r.sent_tai_s is None and rover.received == []
    clock.run_until(6000.0)
    r = ground.command(cid)
    assert r.sent_tai_s == 5000.0 and rover.received == [(1, pytest.approx(5000.0 + UP_S + ROVER_S))]
    assert r.stage == "COMPLETED"


def test_a_lost_command_times_out_after_the_round_trip_and_margin(tmp_path):
    config = GroundConfig(ack_margin_s=20.0)
    clock, link, ground, _rover = _setup(tmp_path / "ops.db", loss=1.0, config=config)
    cid = ground.submit("STOP", at_tai_s=100.0)
    clock.run_until(100.0 + RTT_S + 19.9)
    assert ground.command(cid).stage == "SENT"
    clock.run_until(100.0 + RTT_S + 20.1)
    r = ground.command(cid)
    assert r.stage == "FAILED" and r.reason == "ACK_TIMEOUT"
    assert r.failed_tai_s == pytest.approx(100.0 + RTT_S + 20.0)
    assert link.counts["up"].lost_total == 1 and link.counts["up"].accounted


def test_the_ack_timer_waits_for_the_next_window(tmp_path):
    """Sent at 90 s, the window closes at 100 s before the rover's answer (at 111 s) can leave the
    lander: the timer that would expire at 90 + RTT + 10 starts again at the next opening (1000 s)."""
    config = GroundConfig(ack_margin_s=10.0)
    clock, _link, ground, _rover = _setup(tmp_path / "ops.db", windows=[(0.0, 100.0), (1000.0, 2000.0)],
                                        config=config, ack_after_s=20.0, work_s=5.0)
    cid = ground.submit("NOOP", at_tai_s=90.0)
    clock.run_until(999.0)
    assert ground.command(cid).stage == "SENT"
    clock.run_until(1100.0)
    r = ground.command(cid)
    assert r.stage == "COMPLETED" and r.reason is None
    assert r.acknowledged_tai_s == pytest.approx(1000.0 + UP_S)  # waited at the lander


def test_an_ack_later_than_the_timeout_fails_then_is_recorded_late(tmp_path):
    config = GroundConfig(ack_margin_s=10.0)
    clock, _link, ground, _rover = _setup(tmp_path / "ops.db", config=config, ack_after_s=20.0)
    cid = ground.submit("NOOP", at_tai_s=90.0)
    clock.run_until(90.0 + RTT_S + 10.5)
    assert ground.command(cid).reason == "ACK_TIMEOUT"
    clock.run_until(500.0)
    r = ground.command(cid)
    assert r.stage == "COMPLETED" and r.reason == "LATE after ACK_TIMEOUT"


def test_a_refused_command_fails_with_the_rovers_reason(tmp_path):
    clock, _link, ground, rover = _setup(tmp_path / "ops.db")
    rover.verifier = CommandVerifier(b"another key", rover.codec)
    cid = ground.submit("WAKE")
    clock.run_until(60.0)
    r = ground.command(cid)
    assert r.stage == "FAILED" and r.reason == "REFUSED BAD_MAC"


def test_a_refused_replay_of_an_accepted_command_leaves_the_command_completed(tmp_path):
    """Someone replays the uplink packet of a command the rover ran: the rover refuses the copy
    (REPLAYED) and reports it; the genuine command stays COMPLETED."""
    clock, link, ground, rover = _setup(tmp_path / "ops.db")
    cid = ground.submit("NOOP")
    clock.run_until(20.0)
    assert ground.command(cid).stage == "COMPLETED"
    link.on_uplink_delivered(bytes.fromhex(ground.command(cid).packet_hex), clock.now_tai_s)
    clock.run_until(40.0)
    assert rover.verifier.refused == {"REPLAYED": 1}
    r = ground.command(cid)
    assert r.stage == "COMPLETED" and r.reason is None


def _hk(ground, clock, t, **values):
    clock.run_until(t)
    packet = ground.codec.encode_telemetry("HOUSEKEEPING", {**NOMINAL_HK, **values}, int(t) % 16384, t)
    ground.receive([packet])


def test_a_limit_violation_raises_one_alarm_until_it_clears(tmp_path):
    """battery_soc_pct: warning below 30 %, critical below 15 %, deadband 1 % of 0..100 = 1 point."""
    clock, _link, ground, _rover = _setup(tmp_path / "ops.db")
    for t, soc in enumerate([50.0, 29.0, 28.0, 29.9, 30.5, 25.0, 14.0, 29.0, 30.9]):
        _hk(ground, clock, float(t), battery_soc_pct=soc)
    (alarm,) = ground.alarms()
    assert alarm.parameter == "battery_soc_pct" and alarm.severity == "CRITICAL" and alarm.value == 14.0
    assert alarm.raised_tai_s == 1.0 and alarm.cleared_tai_s is None  # 30.5 and 30.9 are inside the deadband
    _hk(ground, clock, 9.0, battery_soc_pct=31.0)
    assert ground.alarms()[0].cleared_tai_s == 9.0 and ground.alarms(active_only=True) == []
    _hk(ground, clock, 10.0, battery_soc_pct=29.0)
    assert [a.alarm_id for a in ground.alarms(active_only=True)] == [2]
    acked = ground.acknowledge_alarm(1, "operator-1")
    assert acked.acknowledged_by == "operator-1" and acked.acknowledged_tai_s == 10.0
    with pytest.raises(CommandError, match="no alarm 7"):
        ground.acknowledge_alarm(7, "operator-1")
    bus = ground._parameters["bus_voltage_v"]
    assert [limit_level(v, bus) for v in (20.0, 22.0, 27.0, 29.3, 30.0)] == \
        ["CRITICAL", "WARNING", None, "WARNING", "CRITICAL"]


def test_a_time_tagged_sequence_releases_each_command_at_its_time(tmp_path):
    start = float(lk.utc_to_tai_s("2028-06-01T01:59:00Z"))
    clock, _link, ground, rover = _setup(tmp_path / "ops.db", windows=[(start, start + 1e6)], start=start)
    sequence = parse_sequence("""
        # drive day 1
        2028-06-01T02:00:00Z  SET_MODE mode=DRIVE
        +60                   DRIVE_TO lat=-89.45 lon=222.7
        T+600                 IMAGE camera=NAVCAM_LEFT exposure_ms=20
        +30                   STOP
    """)
    t0 = float(lk.utc_to_tai_s("2028-06-01T02:00:00Z"))
    ids = ground.submit_sequence(sequence, start_tai_s=t0 + 1000.0)
    clock.run_until(t0 + 3000.0)
    released = [ground.command(i).released_tai_s for i in ids]
    assert released == pytest.approx([t0, t0 + 60.0, t0 + 1600.0, t0 + 1630.0])
    assert [ground.command(i).line.split()[0] for i in ids] == ["SET_MODE", "DRIVE_TO", "IMAGE", "STOP"]
    assert [arsn for arsn, _ in rover.received] == [1, 2, 3, 4]
    assert all(ground.command(i).stage == "COMPLETED" for i in ids)


def test_sequence_files_yaml_and_errors():
    yaml_sequence = parse_sequence("""
        name: hop
        start: 2028-06-01T02:00:00Z
        commands:
          - {offset_s: 10, command: "NOOP"}
          - {after_s: 5, command: "TURN angle_deg=-45"}
          - {at: "2028-06-01T01:00:00Z", command: "WAKE"}
    """)
    t0 = float(lk.utc_to_tai_s("2028-06-01T02:00:00Z"))
    assert yaml_sequence.name == "hop"
    assert yaml_sequence.release_times_tai_s() == pytest.approx([t0 + 10.0, t0 + 15.0, t0 - 3600.0])
    with pytest.raises(CommandError, match="has no start"):
        parse_sequence("T+10 NOOP").release_times_tai_s()
    with pytest.raises(CommandError, match="line 2.*angle_deg"):
        parse_sequence("+0 NOOP\n+5 TURN angle_deg=500")
    with pytest.raises(CommandError, match="line 1.*not a time"):
        parse_sequence("T+soon NOOP")
    with pytest.raises(CommandError, match="exactly one of"):
        parse_sequence("commands:\n  - {command: NOOP}\n")


def test_a_restarted_service_restores_its_queue_alarms_and_anti_replay_numbers(url):
    windows = [(0.0, 50.0), (1000.0, 5000.0)]
    clock, _link, ground, rover = _setup(url, windows=windows)
    done = ground.submit("NOOP", at_tai_s=10.0)
    waiting = ground.submit("TURN angle_deg=10", at_tai_s=100.0)  # released at 100, waits for the window
    later = ground.submit("STOP", at_tai_s=2000.0)
    _hk(ground, clock, 200.0, battery_temp_c=50.0)
    assert [ground.command(i).stage for i in (done, waiting, later)] == ["COMPLETED", "RELEASED", "QUEUED"]
    ground.archive.close()  # the service dies; the rover lives on
    clock2 = lk.SimClock(300.0)
    earth = lk.Hop("earth-lander", UP_S, np.asarray(windows))
    link2 = lk.DelayedLink(clock2, earth, lk.Hop("lander-rover", ROVER_S))
    ground2 = GroundService(url, clock2, link2, KEY)
    rover.clock, rover.link = clock2, link2
    link2.on_uplink_delivered = rover.receive
    assert [ground2.command(i).stage for i in (done, waiting, later)] == ["COMPLETED", "RELEASED", "QUEUED"]
    assert [a.parameter for a in ground2.alarms(active_only=True)] == ["battery_temp_c"]
    _hk(ground2, clock2, 400.0, battery_temp_c=52.0)
    assert len(ground2.alarms()) == 1  # still the same alarm, not raised again
    new = ground2.submit("WAKE", at_tai_s=3000.0)
    clock2.run_until(6000.0)
    assert [ground2.command(i).stage for i in (done, waiting, later, new)] == ["COMPLETED"] * 4
    assert [arsn for arsn, _ in rover.received] == [1, 2, 3, 4]  # the rover refused none
    assert rover.verifier.refused == {}
    tc = [p for p, _ in ground2.replay(0.0, 6000.0) if p.packet_type == 1]
    assert len(tc) == 4 and ground2.archive.check_sequences()[0x030].gaps == 0


def test_replay_of_a_past_interval(tmp_path):
    clock, _link, ground, _rover = _setup(tmp_path / "ops.db")
    for t in range(0, 100, 10):
        _hk(ground, clock, float(t), battery_soc_pct=50.0 + t / 10)
    got = [(a.t_tai_s, d.values["battery_soc_pct"]) for a, d in ground.replay(20.0, 50.0) if d is not None]
    assert got == [(20.0, 52.0), (30.0, 53.0), (40.0, 54.0)]


def test_a_command_waits_for_the_geometric_window_and_arrives_one_light_time_later(tmp_path):
    """Kashgar and a site near the Leibnitz-beta plateau (85.4 S, longitude assumed): a command
    released in a gap between windows leaves at the next opening and arrives one light time later."""
    from qamar.comms.stations import station

    site = lk.LanderSite(-85.4, 31.7)
    t0 = float(lk.utc_to_tai_s("2028-06-08T20:00:00Z"))
    earth = lk.earth_lander_hop([station("Kashgar")], site, t0, t0 + 2 * 86400.0)
    gap = 0.5 * (earth.windows_tai_s[0, 1] + earth.windows_tai_s[1, 0])
    clock = lk.SimClock(gap)
    link = lk.DelayedLink(clock, earth, lk.lander_rover_hop())
    ground = GroundService(tmp_path / "ops.db", clock, link, KEY)
    rover = EchoRover(clock, link)
    cid = ground.submit("SET_MODE mode=SCIENCE")
    clock.run_until(t0 + 2 * 86400.0)
    opening = earth.windows_tai_s[1, 0]
    r = ground.command(cid)
    assert r.sent_tai_s == pytest.approx(opening) and r.stage == "COMPLETED"
    arrival = opening + earth.delay_at(opening) + lk.DEFAULT_PROCESSING_DELAY_S
    assert rover.received == [(1, pytest.approx(arrival))]
    assert earth.delay_at(opening) == pytest.approx(1.28 + lk.DEFAULT_PROCESSING_DELAY_S, abs=0.06)


def test_ten_thousand_telemetry_packets_through_a_lossy_link_are_all_accounted_for(tmp_path):
    """Housekeeping every second for 10,000 s, 5 % loss per hop and a window gap: the archive holds
    exactly the delivered packets; delivered + lost == sent; gaps in the sequence == lost."""
    config = GroundConfig(ingest_batch_s=60.0)
    clock, link, ground, _rover = _setup(tmp_path / "ops.db", windows=[(0.0, 3000.0), (4000.0, 20_000.0)],
                                         loss=0.05, config=config)
    link.paths["down"][0].loss_probability = 0.05  # the rover's hop too
    codec = ground.codec
    n = 10_000
    for i in range(n):
        packet = codec.encode_telemetry("HOUSEKEEPING", NOMINAL_HK, i % 16384, float(i))
        clock.at(float(i), link.send_down, packet)
    clock.run_until(20_000.0)
    down = link.counts["down"]
    assert down.sent == n and down.delivered + down.lost_total == n and down.waiting == down.in_flight == 0
    assert ground.archive.count(0x101) == down.delivered
    counts = [p.seq_count for p in ground.archive.replay(apids=[0x101])]
    missing_at_ends = counts[0] + (n - 1 - counts[-1])
    assert ground.archive.check_sequences()[0x101].gaps + missing_at_ends == down.lost_total
    assert 0.06 < down.lost_total / n < 0.12  # two hops at 5 %: 9.75 %

"""Packet archive: exactly-once ingest, sequence checks, replay, and crash safety under SIGKILL.

PostgreSQL is tested only when QAMAR_TEST_POSTGRES_URL names a server (and psycopg is
installed); otherwise these tests run on SQLite alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from qamar.ops.archive import PacketArchive, SequenceCheck
from qamar.ops.packets import PacketCodec

CODEC = PacketCodec()
T0_TAI_S = 896_709_637.0  # 2028-06-01T02:00:00Z
HK = {"mode": "DRIVE", "battery_soc_pct": 80.0, "bus_voltage_v": 27.5, "battery_temp_c": 20.0,
      "avionics_temp_c": 25.0, "motor_temp_c": 10.0, "heater_on": False, "commands_accepted": 3,
      "commands_refused": 0}
NAV = {"lat_deg": -89.45, "lon_deg": 222.7, "heading_deg": 10.0, "tilt_deg": 3.0, "odometer_m": 12.0,
       "speed_cm_s": 1.0}
POWER = {"solar_power_in_w": 40.0, "power_out_w": 25.0, "battery_current_a": 0.5, "sun_visible_fraction": 1.0}
STREAMS = (("HOUSEKEEPING", HK), ("NAVIGATION", NAV), ("POWER", POWER))


def make_packets(n: int, step_s: float = 0.01) -> list[bytes]:
    """``n`` telemetry packets, the three packets in turn, each APID counting on from 0 (wrapping)."""
    return [CODEC.encode_telemetry(*STREAMS[i % 3], seq_count=(i // 3) % 16384, t_tai_s=T0_TAI_S + i * step_s)
            for i in range(n)]


@pytest.fixture
def archive(url):
    with PacketArchive(url) as a:
        yield a


def test_100k_packets_are_archived_once_each_in_sequence(archive):
    packets = make_packets(100_000)
    for start in range(0, len(packets), 2000):
        report = archive.ingest(packets[start:start + 2000])
        assert report.stored == len(packets[start:start + 2000])
    assert archive.count() == 100_000
    assert archive.totals.gaps == archive.totals.repeated == archive.totals.backwards == 0
    checks = archive.check_sequences()
    assert sorted(checks) == [0x101, 0x102, 0x103]
    for check in checks.values():  # 33,334 per APID: the 14-bit counters wrapped twice
        assert (check.gaps, check.repeated, check.backwards) == (0, 0, 0) and check.packets >= 33_333
    assert [p.raw for p in archive.replay()] == packets

    again = archive.ingest(packets[500:1500])
    assert (again.stored, again.duplicates) == (0, 1000) and archive.count() == 100_000


def test_gaps_repeats_and_wrap_are_counted():
    check = SequenceCheck()
    for count in (16382, 16383, 0, 1, 4, 4, 2, 3):
        check.add(count)
    assert (check.gaps, check.repeated, check.backwards, check.packets) == (2, 1, 1, 8)


def test_ingest_reports_gaps_and_rejects_unframeable_packets(archive):
    packets = make_packets(30)
    kept = [p for i, p in enumerate(packets) if i not in (9, 12, 13)]  # HK counts 3 and 4, NAV count 4 lost
    report = archive.ingest(kept + [b"\x00\x01garbage", packets[0][:-1]])
    assert (report.stored, report.rejected, report.gaps) == (27, 2, 3)
    assert [reason for reason, _ in archive.rejects()] == ["MALFORMED", "MALFORMED"]
    assert archive.sequences[0x101].gaps == 2 and archive.sequences[0x102].gaps == 1


def test_replay_returns_an_interval_in_time_order(archive):
    packets = make_packets(300, step_s=1.0)
    archive.ingest(packets[150:])  # arrive out of order
    archive.ingest(packets[:150])
    got = list(archive.replay(T0_TAI_S + 10, T0_TAI_S + 20))
    assert [p.raw for p in got] == packets[10:20]
    assert got[0].t_tai_s == T0_TAI_S + 10 and got[0].apid == 0x102 and got[0].seq_count == 3
    nav = list(archive.replay(T0_TAI_S, T0_TAI_S + 30, apids=[0x102]))
    assert [p.raw for p in nav] == packets[1:30:3]
    assert list(archive.replay(T0_TAI_S, T0_TAI_S + 30, apids=[])) == []


def test_a_batch_that_fails_before_its_commit_stores_nothing(archive, monkeypatch):
    packets = make_packets(10)
    insert = archive._insert

    def insert_then_fail(cur, rows):
        insert(cur, rows)
        raise OSError("disk full")

    monkeypatch.setattr(archive, "_insert", insert_then_fail)
    with pytest.raises(OSError):
        archive.ingest(packets)
    monkeypatch.undo()
    assert archive.count() == 0 and archive.totals.stored == 0
    assert archive.ingest(packets).stored == 10


def test_a_reopened_archive_carries_on_the_sequence(tmp_path):
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    packets = make_packets(60)
    with PacketArchive(url) as a:
        a.ingest(packets[:30])
    with PacketArchive(url, synchronous="NORMAL") as a:
        report = a.ingest(packets[30:])
        assert (report.stored, report.gaps, report.backwards) == (30, 0, 0)


def test_bad_urls_are_qamar_errors(tmp_path):
    from qamar.errors import DataFormatError

    with pytest.raises(DataFormatError, match="sqlite:///PATH"):
        PacketArchive("mysql://host/db")
    with pytest.raises(DataFormatError, match="cannot open"):
        PacketArchive(f"sqlite:///{tmp_path / 'missing-dir' / 'ops.db'}")


_CHILD = ("import sys; from qamar.ops.archive import PacketArchive, serve_stream; "
          "serve_stream(PacketArchive(sys.argv[1]), sys.stdin.buffer, sys.stdout, max_batch=500)")


def _start_ingest(url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=False, bufsize=0)


def _send(child: subprocess.Popen, packets: list[bytes]) -> threading.Thread:
    def write():
        try:
            for start in range(0, len(packets), 200):
                child.stdin.write(b"".join(packets[start:start + 200]))
            child.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the child was killed

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_sigkill_mid_ingest_loses_no_acknowledged_packet_and_restart_carries_on(url):
    packets = make_packets(60_000)
    child = _start_ingest(url)
    writer = _send(child, packets)
    acked = 0
    while acked < 15_000:
        line = child.stdout.readline()
        assert line, "the ingest process ended early"
        acked = int(line)
    child.send_signal(signal.SIGKILL)
    child.wait()
    writer.join()
    assert child.returncode == -signal.SIGKILL and acked < len(packets)

    with PacketArchive(url) as a:
        stored = a.count()
        archived = {p.raw for p in a.replay()}
    assert acked <= stored < len(packets)  # it was killed mid-ingest...
    assert all(p in archived for p in packets[:acked])  # ...and kept all it had acknowledged

    # The sender resends everything after the last acknowledgement it saw; say it missed the
    # last 2000 acknowledgements: those packets come twice and must be stored once.
    resend_from = acked - 2000
    child = _start_ingest(url)
    writer = _send(child, packets[resend_from:])
    out = child.stdout.read()
    writer.join()
    child.wait()
    assert child.returncode == 0 and int(out.split()[-1]) == len(packets) - resend_from
    with PacketArchive(url) as a:
        assert a.count() == len(packets) and a.rejects() == []
        assert [p.raw for p in a.replay()] == packets
        assert all((c.gaps, c.repeated, c.backwards) == (0, 0, 0) for c in a.check_sequences().values())

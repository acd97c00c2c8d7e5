"""The ground service on the network: HTTP API (FastAPI TestClient), a fake rover twin over a real
TCP socket, refusals logged, replay of an interval, the site map and the default bind address."""

import contextlib
import inspect
import logging
import socket
import threading
import time

import numpy as np
import pytest
import rasterio
import uvicorn
from affine import Affine
from fastapi.testclient import TestClient

from qamar.errors import QamarError
from qamar.ops import server
from qamar.ops.errors import CommandError, CommandRefusedError
from qamar.ops.packets import CommandVerifier, PacketCodec, SequenceCounters, split_stream
from qamar.surface.terrain import read_dem, xy_to_lat_lon
from qamar.time import utc_to_tai_s

KEY = bytes(range(32))
T0_UTC = "2028-06-01T02:00:00Z"  # the twin's clock (simulated), far from the ground's wall clock
NOMINAL_HK = {"mode": "STANDBY", "battery_soc_pct": 80.0, "bus_voltage_v": 27.0, "battery_temp_c": 20.0,
              "avionics_temp_c": 20.0, "motor_temp_c": 10.0, "heater_on": False, "commands_accepted": 0,
              "commands_refused": 0}
NAV = {"heading_deg": 90.0, "tilt_deg": 3.0, "odometer_m": 0.0, "speed_cm_s": 1.0}


def wait_for(predicate, timeout_s=5.0, what="condition"):
    """Poll ``predicate`` until it is true (returns its value) or fail after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class FakeTwin:
    """A stand-in rover twin on a real TCP connection: sends telemetry packets, verifies the
    telecommands it reads (HMAC, anti-replay) and answers COMMAND_STATUS ACCEPTED then COMPLETED,
    or REFUSED with the verifier's reason. ``replay=True`` feeds every telecommand to the verifier
    twice, as if an attacker replayed it on the link."""

    def __init__(self, address, key=KEY, replay=False, t0_tai_s=None):
        host, port = server.parse_address(address)
        self.sock = socket.create_connection((host, port), timeout=5.0)
        self.codec = PacketCodec()
        self.verifier = CommandVerifier(key, self.codec)
        self.counters = SequenceCounters()
        self.replay = replay
        self.t_tai_s = float(utc_to_tai_s(T0_UTC)) if t0_tai_s is None else t0_tai_s
        self.received, self.refused = [], []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def telemetry(self, name, values, t_tai_s=None):
        apid = self.codec.dictionary.apids[self.codec.dictionary.telemetry_packet(name).apid]
        return self.codec.encode_telemetry(name, values, self.counters.next(apid),
                                           self.t_tai_s if t_tai_s is None else t_tai_s)

    def send(self, *packets):
        with self._lock:
            self.sock.sendall(b"".join(packets))

    def housekeeping(self, t_tai_s, **values):
        return self.telemetry("HOUSEKEEPING", {**NOMINAL_HK, **values}, t_tai_s)

    def navigation(self, t_tai_s, lat_deg, lon_deg):
        return self.telemetry("NAVIGATION", {**NAV, "lat_deg": lat_deg, "lon_deg": lon_deg}, t_tai_s)

    def _status(self, packet, stage, reason="NONE"):
        values = {"arsn": packet.arsn, "opcode": packet.command.opcode, "stage": stage, "reason": reason}
        return self.telemetry("COMMAND_STATUS", values)

    def _read(self):
        pending = b""
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                packets, pending = split_stream(pending + chunk)
                for raw in packets:
                    for _ in range(2 if self.replay else 1):
                        self._verify(raw)

    def _verify(self, raw):
        packet = self.codec.decode(raw)
        self.received.append(packet)
        try:
            self.verifier.verify(raw)
        except CommandRefusedError as exc:
            self.refused.append((packet.arsn, exc.reason))
            self.send(self._status(packet, "REFUSED", exc.reason))
            return
        self.send(self._status(packet, "ACCEPTED"), self._status(packet, "COMPLETED"))

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        self.sock.close()
        self._thread.join(5.0)


def write_test_dem(path, nx=120):
    """A small south-polar stereographic DEM (10 m pixels, a Gaussian hill) like the LOLA site DEMs."""
    crs = "+proj=stere +lat_0=-90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=1737400 +units=m +no_defs"
    transform = Affine(10.0, 0.0, -12_000.0, 0.0, -10.0, -10_000.0)
    yy, xx = np.mgrid[0:nx, 0:nx] - nx / 2
    height = (50.0 * np.exp(-(xx**2 + yy**2) / (2 * (nx / 6) ** 2))).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=nx, height=nx, count=1, dtype="float32", crs=crs,
                       transform=transform) as ds:
        ds.write(height, 1)
    return path


def site_lat_lon(dem_path, col, row):
    """ME latitude and longitude (deg, 0..360) of a pixel centre of the test DEM."""
    dem = read_dem(dem_path)
    t = dem.transform
    lat, lon = xy_to_lat_lon(t.c + t.a * (col + 0.5), t.f + t.e * (row + 0.5), dem)
    return float(lat), float(lon) % 360.0


@pytest.fixture
def dem_path(tmp_path):
    return str(write_test_dem(tmp_path / "site.tif"))


@pytest.fixture
def client(url, dem_path):
    with TestClient(server.create_app(url, KEY, "127.0.0.1:0", dem_path)) as test_client:
        yield test_client


@pytest.fixture
def twin_address(client):
    return client.get("/api/status").json()["tcp"]


def command_stage(client, command_id):
    return client.get("/api/commands").json()[command_id - 1]["stage"]


def test_commands_are_queued_or_refused_with_their_reasons_and_logged(client, caplog):
    ok = client.post("/api/commands", json={"line": "TURN angle_deg=30", "at_utc": "2099-01-01T00:00:00Z"})
    assert ok.status_code == 201
    record = ok.json()
    assert record["stage"] == "QUEUED" and record["line"] == "TURN angle_deg=30.0"
    assert record["release_utc"].startswith("2099-01-01T00:00:00")
    caplog.set_level(logging.WARNING, logger="qamar.ops.server")
    refused = {
        "DRIVE_TO lat=-95 lon=222.7": "argument 'lat': -95 is out of range [-90, -80] deg",
        "FLY_AWAY": "unknown command 'FLY_AWAY'",
        "IMAGE camera=PANCAM": "'PANCAM' is not one of NAVCAM_LEFT",
    }
    for line, reason in refused.items():
        answer = client.post("/api/commands", json={"line": line})
        assert answer.status_code == 422 and reason in answer.json()["detail"]
    answer = client.post("/api/commands", json={"line": "NOOP", "at_utc": "soon"})
    assert answer.status_code == 422 and "at_utc" in answer.json()["detail"]
    logged = client.get("/api/refusals").json()
    assert [r["what"] for r in logged] == [*refused, "NOOP"] and {r["source"] for r in logged} == {"ground"}
    assert sum("refused by the ground" in r.message for r in caplog.records) == 4
    assert [c["command_id"] for c in client.get("/api/commands").json()] == [1]  # nothing refused was queued


def test_telemetry_from_a_twin_is_archived_once_and_raises_an_alarm(client, twin_address):
    twin = FakeTwin(twin_address)
    try:
        t0 = twin.t_tai_s
        packets = [twin.housekeeping(t0 + i, battery_soc_pct=soc) for i, soc in enumerate([60.0, 40.0, 25.0, 20.0])]
        twin.send(*packets[:2])
        twin.send(packets[2][:10])  # a packet cut across two writes
        twin.send(packets[2][10:] + packets[3])
        wait_for(lambda: client.get("/api/status").json()["packets_archived"] == 4, what="4 packets archived")
        twin.send(*packets)  # sent again (e.g. after a reconnection): archived once
        alarms = wait_for(lambda: client.get("/api/alarms").json(), what="an alarm")
        assert [(a["parameter"], a["severity"], a["value"]) for a in alarms] == [("battery_soc_pct", "WARNING", 25.0)]
        wait_for(lambda: client.get("/api/status").json()["packets_duplicate"] == 4, what="4 duplicates")
        assert client.get("/api/status").json()["packets_archived"] == 4
        assert len(client.get("/api/alarms").json()) == 1
        latest = client.get("/api/telemetry/latest").json()
        assert latest["battery_soc_pct"]["value"] == 20.0 and latest["battery_soc_pct"]["t_tai_s"] == t0 + 3
        ack = client.post(f"/api/alarms/{alarms[0]['alarm_id']}/ack", json={"operator": "op-1"})
        assert ack.json()["acknowledged_by"] == "op-1"
        assert client.post("/api/alarms/99/ack", json={"operator": "op-1"}).status_code == 404
    finally:
        twin.close()


def test_a_command_goes_to_the_twin_and_through_its_stages(client, twin_address):
    waiting = client.post("/api/commands", json={"line": "NOOP"}).json()
    assert waiting["stage"] == "RELEASED"  # no twin yet: it waits in the transmitter
    assert client.get("/api/status").json()["telecommands_waiting"] == 1
    twin = FakeTwin(twin_address)
    try:
        wait_for(lambda: command_stage(client, 1) == "COMPLETED", what="command 1 completed")
        client.post("/api/commands", json={"line": "SET_MODE mode=DRIVE"})
        wait_for(lambda: command_stage(client, 2) == "COMPLETED", what="command 2 completed")
        records = client.get("/api/commands").json()
        assert [r["arsn"] for r in records] == [1, 2] and twin.verifier.accepted == 2
        assert all(r["sent_utc"] and r["acknowledged_utc"] and r["completed_utc"] for r in records)
    finally:
        twin.close()


def test_a_bad_signature_and_a_replayed_number_are_refused_by_the_rover_and_logged(client, twin_address, caplog):
    caplog.set_level(logging.WARNING, logger="qamar.ops.server")
    forger = FakeTwin(twin_address, key=b"another key" * 3)
    try:
        client.post("/api/commands", json={"line": "WAKE"})
        wait_for(lambda: command_stage(client, 1) == "FAILED", what="command 1 failed")
        assert client.get("/api/commands").json()[0]["reason"] == "REFUSED BAD_MAC"
    finally:
        forger.close()
    replayer = FakeTwin(twin_address, replay=True)
    try:
        client.post("/api/commands", json={"line": "NOOP"})
        wait_for(lambda: len(client.get("/api/refusals").json()) == 2, what="the replay refused")
        assert command_stage(client, 2) == "COMPLETED"  # the genuine one went through
        assert replayer.refused == [(2, "REPLAYED")]
    finally:
        replayer.close()
    logged = client.get("/api/refusals").json()
    assert [(r["source"], r["reason"]) for r in logged] == [("rover", "BAD_MAC"), ("rover", "REPLAYED")]
    assert logged[1]["what"] == "ARSN 2 (command 2: NOOP)"
    assert sum("refused by the rover" in r.message for r in caplog.records) == 2


def test_replay_of_a_past_interval_from_the_archive(client, twin_address):
    twin = FakeTwin(twin_address)
    try:
        t0 = twin.t_tai_s
        twin.send(*[twin.housekeeping(t0 + 10.0 * i, battery_temp_c=float(i)) for i in range(30)])
        wait_for(lambda: client.get("/api/status").json()["packets_archived"] == 30, what="30 packets")
    finally:
        twin.close()
    part = client.get("/api/telemetry/battery_temp_c",
                      params={"start_utc": "2028-06-01T02:01:00Z", "end_utc": "2028-06-01T02:02:00Z"}).json()
    assert part["values"] == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]  # [start, end): 60 s .. 110 s after T0
    assert part["t_tai_s"] == pytest.approx([t0 + 60.0 + 10.0 * i for i in range(6)])
    assert part["units"] == "degC" and part["limits"]["warning_high"] == 45.0
    assert part["first_utc"].startswith("2028-06-01T02:01:00")
    last = client.get("/api/telemetry/battery_temp_c", params={"last_s": 50.0}).json()
    assert last["values"] == [24.0, 25.0, 26.0, 27.0, 28.0, 29.0]  # the last 50 s of data, its end included
    newer = client.get("/api/telemetry/battery_temp_c", params={"after_tai_s": t0 + 270.0}).json()
    assert newer["values"] == [28.0, 29.0]
    thin = client.get("/api/telemetry/battery_temp_c", params={"last_s": 1e6, "max_points": 10}).json()
    assert thin["values"] == [float(i) for i in range(0, 30, 3)]
    assert client.get("/api/telemetry/no_such").status_code == 404
    assert client.get("/api/telemetry/battery_temp_c", params={"start_utc": "yesterday"}).status_code == 422


def test_sequence_upload_queues_each_command_at_its_time(client):
    text = "# drive day 1\n2099-06-01T02:00:00Z SET_MODE mode=DRIVE\n+60 DRIVE_TO lat=-89.45 lon=222.7\nT+600 STOP\n"
    answer = client.post("/api/sequences", json={"text": text, "name": "day1", "start_utc": "2099-06-01T03:00:00Z"})
    assert answer.status_code == 201
    body = answer.json()
    assert body["name"] == "day1" and [c["stage"] for c in body["commands"]] == ["QUEUED"] * 3
    assert [c["release_utc"][:19] for c in body["commands"]] == \
        ["2099-06-01T02:00:00", "2099-06-01T02:01:00", "2099-06-01T03:10:00"]
    yaml_text = "name: hop\ncommands:\n  - {at: '2099-01-01T00:00:00Z', command: NOOP}\n"
    assert client.post("/api/sequences", json={"text": yaml_text}).json()["name"] == "hop"
    bad = client.post("/api/sequences", json={"text": "+0 NOOP\n+5 TURN angle_deg=500", "name": "bad"})
    assert bad.status_code == 422 and "line 2" in bad.json()["detail"]
    unstarted = client.post("/api/sequences", json={"text": "T+10 NOOP", "name": "loose"})
    assert unstarted.status_code == 422 and "has no start" in unstarted.json()["detail"]
    assert len(client.get("/api/commands").json()) == 4  # nothing of a refused sequence was queued
    assert [r["what"] for r in client.get("/api/refusals").json()] == ["sequence bad", "sequence loose"]


def test_the_site_map_and_the_rover_on_it(client, twin_address, dem_path):
    info = client.get("/api/map").json()
    assert (info["width_px"], info["height_px"], info["pixel_m"]) == (120, 120, 10.0)
    png = client.get("/map.png")
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/api/rover").json() == {"position": None, "track": []}
    twin = FakeTwin(twin_address)
    try:
        t0 = twin.t_tai_s
        twin.send(*[twin.navigation(t0 + i, *site_lat_lon(dem_path, 20 + 10 * i, 30)) for i in range(5)])
        wait_for(lambda: client.get("/api/rover").json()["position"], what="a position")
        time.sleep(0.2)
    finally:
        twin.close()
    rover = client.get("/api/rover").json()
    assert rover["track"]["x_px"] == pytest.approx([20.5, 30.5, 40.5, 50.5, 60.5], abs=1e-6)
    assert rover["track"]["y_px"] == pytest.approx([30.5] * 5, abs=1e-6)
    assert rover["position"]["x_px"] == pytest.approx(60.5, abs=1e-6)
    newer = client.get("/api/rover", params={"after_tai_s": t0 + 2}).json()
    assert newer["track"]["t_tai_s"] == [t0 + 3, t0 + 4] and newer["position"]["t_tai_s"] == t0 + 4


def test_the_site_map_is_reported_missing_with_the_reason(url, tmp_path):
    with TestClient(server.create_app(url, KEY, "127.0.0.1:0", str(tmp_path / "none.tif"))) as client:
        answer = client.get("/api/map")
        assert answer.status_code == 404 and "cannot read DEM" in answer.json()["detail"]
        assert client.get("/").status_code == 200 and "console.js" in client.get("/").text


def test_the_default_bind_address_is_loopback(monkeypatch, tmp_path):
    for function in (server.serve_ground, server.post_command, server.create_app):
        for name in ("http", "tcp"):
            if name in inspect.signature(function).parameters:
                assert inspect.signature(function).parameters[name].default.startswith("127.0.0.1:")
    assert server.parse_address("8080") == ("127.0.0.1", 8080)
    assert server.parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(QamarError, match="HOST:PORT"):
        server.parse_address("localhost:http")
    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append(self.config))
    monkeypatch.setenv(server.KEY_ENV, KEY.hex())
    monkeypatch.delenv(server.KEY_FILE_ENV, raising=False)
    server.serve_ground(f"sqlite:///{tmp_path / 'ops.db'}", tcp="127.0.0.1:0")
    server.serve_ground(f"sqlite:///{tmp_path / 'ops.db'}", http="0.0.0.0:8081", tcp="127.0.0.1:0")
    assert [(c.host, c.port) for c in started] == [("127.0.0.1", 8080), ("0.0.0.0", 8081)]
    with TestClient(started[0].app, base_url="http://evil.example") as client:  # DNS rebinding
        assert client.get("/api/status").status_code == 400
    with TestClient(started[0].app, base_url="http://127.0.0.1:8080") as client:
        assert client.get("/api/status").status_code == 200


def test_the_key_comes_from_a_private_file_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(server.KEY_ENV, raising=False)
    monkeypatch.delenv(server.KEY_FILE_ENV, raising=False)
    with pytest.raises(QamarError, match="no telecommand key.*chmod 600"):
        server.load_key()
    key_file = tmp_path / "ops.key"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o644)
    monkeypatch.setenv(server.KEY_FILE_ENV, str(key_file))
    with pytest.raises(QamarError, match="readable by others"):
        server.load_key()
    key_file.chmod(0o600)
    assert server.load_key() == KEY
    monkeypatch.delenv(server.KEY_FILE_ENV)
    monkeypatch.setenv(server.KEY_ENV, "abcd")
    with pytest.raises(QamarError, match="2 octets"):
        server.load_key()


def test_post_command_reports_an_unreachable_ground():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    with pytest.raises(QamarError, match="cannot reach the ground service.*qamar ops ground"):
        server.post_command("NOOP", http=f"127.0.0.1:{port}")


@contextlib.contextmanager
def running_ground(db_url, site_dem, **options):
    """The ground's app under uvicorn in a thread on a free loopback port; yields (HTTP address, twin address)."""
    app = server.create_app(db_url, KEY, "127.0.0.1:0", site_dem, **options)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: uv.started, what="uvicorn to start")
        yield f"127.0.0.1:{sock.getsockname()[1]}", "{}:{}".format(*app.state.node.tcp_address)
    finally:
        uv.should_exit = True
        thread.join(10.0)
        sock.close()


def test_post_command_queues_on_a_running_ground_or_says_why_not(url, dem_path):
    with running_ground(url, dem_path) as (http, _twin):
        record = server.post_command("DRIVE_TO lat=-89.45 lon=222.7", at_utc="2099-06-01T02:00:00Z", http=http)
        assert record["command_id"] == 1 and record["stage"] == "QUEUED"
        assert record["line"] == "DRIVE_TO lat=-89.45 lon=222.7 speed_cm_s=1.0"
        with pytest.raises(CommandError, match="the ground refused 'TURN angle_deg=500'.*angle_deg.*out of range"):
            server.post_command("TURN angle_deg=500", http=http)

"""CCSDS packets: layout, CUC time, round trips, authenticated telecommands, decoder fuzzing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qamar import time as qtime
from qamar.ops.dictionary import CommandCall, default_dictionary
from qamar.ops.errors import CommandError, CommandRefusedError, PacketError
from qamar.ops.packets import (
    CUC_PFIELD,
    CommandPacket,
    CommandSigner,
    CommandVerifier,
    PacketCodec,
    SequenceCounters,
    TelemetryPacket,
    cuc_to_tai_s,
    peek_header,
    split_stream,
    tai_s_to_cuc,
)

KEY = bytes(range(32))
T_TAI_S = qtime.utc_to_tai_s("2028-06-01T02:00:00Z")
ROVER = default_dictionary()
CODEC = PacketCodec()


def _value(field, draw):
    """A hypothesis strategy value inside the field's range and wire type."""
    if field.type == "enum":
        return draw(st.sampled_from(sorted(field.choices)))
    if field.type == "bool":
        return draw(st.booleans())
    low, high = field.limits_of_type()
    if field.type.startswith(("int", "uint")):
        return draw(st.integers(int(low), int(high)))
    low = -3.0e38 if math.isinf(low) else low  # inside float32's +-3.4e38
    high = 3.0e38 if math.isinf(high) else high
    return draw(st.floats(low, high, allow_nan=False))


@st.composite
def telemetry(draw):
    tm = draw(st.sampled_from(ROVER.telemetry))
    return tm, {p.name: _value(p, draw) for p in tm.parameters}


@st.composite
def commands(draw):
    cmd = draw(st.sampled_from(ROVER.commands))
    return CommandCall.checked(cmd, {a.name: _value(a, draw) for a in cmd.arguments})


def _valid_packets() -> list[bytes]:
    signer = CommandSigner(KEY)
    out = [signer.sign(line, T_TAI_S) for line in ("DRIVE_TO lat=-89.45 lon=222.7", "STOP", "SET_MODE mode=SAFE",
                                                   "IMAGE camera=HAZCAM_REAR")]
    hk = {"mode": "DRIVE", "battery_soc_pct": 80, "bus_voltage_v": 27, "battery_temp_c": 20, "avionics_temp_c": 25,
              "motor_temp_c": 10, "heater_on": True, "commands_accepted": 3, "commands_refused": 1}
    return out + [CODEC.encode_telemetry("HOUSEKEEPING", hk, 7, T_TAI_S)]


VALID = _valid_packets()


def test_cuc_counts_tai_seconds_from_1958():
    # Independent: calendar seconds from 1958-01-01 by datetime, plus TAI - UTC = 37 s since
    # 2017-01-01 (IERS Bulletin C 52); no leap second has been announced after it.
    since_1958_s = (dt.datetime(2028, 6, 1, 2) - dt.datetime(1958, 1, 1)).total_seconds() + 37
    code = tai_s_to_cuc(T_TAI_S + 0.5)
    assert struct.unpack(">IH", code) == (since_1958_s, 32768)
    assert cuc_to_tai_s(code) == T_TAI_S + 0.5
    assert CUC_PFIELD == 0b0_001_11_10
    with pytest.raises(PacketError):
        tai_s_to_cuc(-1.4e9)  # before 1958


@given(st.floats(-1.3e9, 2.9e9))
def test_cuc_round_trip_to_its_resolution(t_tai_s):
    assert abs(cuc_to_tai_s(tai_s_to_cuc(t_tai_s)) - t_tai_s) <= 2**-17 + 1e-6


def test_primary_header_bits():
    hk = VALID[-1]
    # version 000, type 0 (TM), sec. header 1, APID 0x101 -> 0000 1001 0000 0001; flags 11, count 7.
    assert hk[:4] == bytes([0x09, 0x01, 0xC0, 0x07])
    assert int.from_bytes(hk[4:6], "big") == len(hk) - 7
    drive = VALID[0]
    assert drive[0] >> 4 == 0b0001 and (drive[0] & 0x07) << 8 | drive[1] == ROVER.apids["mobility"]
    assert peek_header(hk) == (0, 0x101, 7, int.from_bytes(tai_s_to_cuc(T_TAI_S), "big"))


def test_telecommand_layout_and_mac():
    packet = VALID[0]
    spi, arsn, opcode = struct.unpack_from(">HIH", packet, 12)
    assert (spi, arsn, opcode) == (1, 1, 1)
    assert struct.unpack_from(">ddf", packet, 20) == (-89.45, 222.7, 1.0)
    assert len(packet) == 20 + 20 + 16
    assert packet[-16:] == hmac.new(KEY, packet[:-16], hashlib.sha256).digest()[:16]


def test_sequence_counts_wrap_at_14_bits():
    counters = SequenceCounters()
    counts = [counters.next(0x101) for _ in range(16385)]
    assert counts[16383] == 16383 and counts[16384] == 0 and counters.next(0x102) == 0


def _edge_values(fields, edge: str) -> dict:
    """Each field at its lower or upper bound (enums at their first/last choice)."""
    values = {}
    for f in fields:
        if f.type == "enum":
            values[f.name] = sorted(f.choices)[0 if edge == "low" else -1]
        elif f.type == "bool":
            values[f.name] = edge == "high"
        else:
            low, high = f.limits_of_type()
            values[f.name] = max(low, -1e30) if edge == "low" else min(high, 1e30)
    return values


@pytest.mark.parametrize("edge", ["low", "high"])
@pytest.mark.parametrize("name", [c.name for c in ROVER.commands])
def test_each_command_round_trips_at_its_bounds(name, edge):
    cmd = ROVER.command(name)
    call = CommandCall.checked(cmd, _edge_values(cmd.arguments, edge))
    assert CommandVerifier(KEY).verify(CommandSigner(KEY).sign(call, T_TAI_S)) == call


@pytest.mark.parametrize("edge", ["low", "high"])
@pytest.mark.parametrize("name", [t.name for t in ROVER.telemetry])
def test_each_telemetry_packet_round_trips_at_its_bounds(name, edge):
    values = _edge_values(ROVER.telemetry_packet(name).parameters, edge)
    packet = CODEC.decode(CODEC.encode_telemetry(name, values, 16383, T_TAI_S))
    assert packet.seq_count == 16383
    for key, value in values.items():
        assert packet.values[key] == (value if isinstance(value, (str, bool)) else pytest.approx(value, rel=1e-7))


@settings(max_examples=300, deadline=None)
@given(telemetry(), st.integers(0, 16383))
def test_every_telemetry_packet_round_trips(tm_values, seq_count):
    tm, values = tm_values
    packet = CODEC.decode(CODEC.encode_telemetry(tm.name, values, seq_count, T_TAI_S))
    assert isinstance(packet, TelemetryPacket)
    assert (packet.definition.name, packet.seq_count, packet.t_tai_s) == (tm.name, seq_count, T_TAI_S)
    for p in tm.parameters:
        expected = values[p.name]
        if p.type == "float32":
            expected = struct.unpack(">f", struct.pack(">f", expected))[0]
        assert packet.values[p.name] == expected


@settings(max_examples=300, deadline=None)
@given(commands())
def test_every_command_round_trips_through_signer_and_verifier(call):
    signer = CommandSigner(KEY, next_arsn=41)
    verifier = CommandVerifier(KEY, last_arsn=40)
    raw = signer.sign(call, T_TAI_S)
    assert verifier.verify(raw) == call
    decoded = CODEC.decode(raw)
    assert isinstance(decoded, CommandPacket) and decoded.arsn == 41 and decoded.command == call.command


def _refusal(verifier: CommandVerifier, raw: bytes) -> str:
    with pytest.raises(CommandRefusedError) as info:
        verifier.verify(raw)
    return info.value.reason


def test_forged_replayed_old_and_out_of_range_commands_are_refused_counted_and_logged(caplog):
    signer = CommandSigner(KEY)
    verifier = CommandVerifier(KEY, window=8)
    first = signer.sign("TURN angle_deg=30", T_TAI_S)
    assert verifier.verify(first).args == {"angle_deg": 30.0}

    forged = bytearray(signer.sign("TURN angle_deg=-30", T_TAI_S))
    forged[22] ^= 0x01  # one bit of the angle
    assert _refusal(verifier, bytes(forged)) == "BAD_MAC"
    stranger = CommandSigner(b"not the key", next_arsn=3).sign("STOP", T_TAI_S)
    assert _refusal(verifier, stranger) == "BAD_MAC"
    assert verifier.last_arsn == 1  # forgeries do not move the anti-replay state

    assert _refusal(verifier, first) == "REPLAYED"
    third = signer.sign("STOP", T_TAI_S)  # ARSN 3 (2 was the forgery's number)
    assert verifier.verify(third).command.name == "STOP"
    assert _refusal(verifier, CommandSigner(KEY, next_arsn=2).sign("STOP", T_TAI_S)) == "TOO_OLD"
    assert _refusal(verifier, CommandSigner(KEY, next_arsn=12).sign("STOP", T_TAI_S)) == "TOO_FAR_AHEAD"

    bad = CommandCall(ROVER.command("DRIVE_TO"), {"lat": -45.0, "lon": 10.0, "speed_cm_s": 1.0})
    with pytest.raises(CommandError, match="'lat'"):
        signer.sign(bad, T_TAI_S)  # the ground checks first...
    raw = CODEC.encode_command(bad, 0, T_TAI_S, arsn=4, key=KEY, check=False)
    assert _refusal(verifier, raw) == "OUT_OF_RANGE"  # ...and the rover again
    assert verifier.last_arsn == 3
    assert dict(verifier.refused) == {"BAD_MAC": 2, "REPLAYED": 1, "TOO_OLD": 1, "TOO_FAR_AHEAD": 1,
                                      "OUT_OF_RANGE": 1}
    assert verifier.accepted == 2
    assert sum("telecommand refused: BAD_MAC" in r.getMessage() for r in caplog.records) == 2


def test_telemetry_is_not_a_command():
    assert _refusal(CommandVerifier(KEY), VALID[-1]) == "MALFORMED"


def _decodes_or_counted(raw: bytes) -> None:
    codec = PacketCodec()
    try:
        codec.decode(raw)
    except PacketError as exc:
        assert codec.errors == {exc.reason: 1}
    verifier = CommandVerifier(KEY)
    try:
        verifier.verify(raw)
    except CommandRefusedError as exc:
        assert sum(verifier.refused.values()) == 1 and verifier.refused[exc.reason] == 1
    try:
        peek_header(raw)
    except PacketError:
        pass
    packets, tail = split_stream(raw)
    assert b"".join(packets) + tail == raw


def _random_bytes(raw):
    _decodes_or_counted(raw)


def _mutations(packet, data):
    cut = data.draw(st.integers(0, len(packet)))
    _decodes_or_counted(packet[:cut])
    flips = data.draw(st.lists(st.integers(0, 8 * len(packet) - 1), min_size=1, max_size=4))
    mutated = bytearray(packet)
    for bit in flips:
        mutated[bit // 8] ^= 0x80 >> (bit % 8)
    _decodes_or_counted(bytes(mutated))
    extra = data.draw(st.binary(min_size=1, max_size=8))
    _decodes_or_counted(packet + extra)


def _fuzz(function, strategies, examples):
    return settings(max_examples=examples, deadline=None)(given(*strategies)(function))


RANDOM, MUTATED = (st.binary(max_size=80),), (st.sampled_from(VALID), st.data())
test_decoder_survives_random_bytes = _fuzz(_random_bytes, RANDOM, 1000)
test_decoder_survives_truncations_and_bit_flips = _fuzz(_mutations, MUTATED, 500)
test_decoder_survives_random_bytes_long = pytest.mark.slow(_fuzz(_random_bytes, RANDOM, 20_000))
test_decoder_survives_truncations_and_bit_flips_long = pytest.mark.slow(_fuzz(_mutations, MUTATED, 10_000))


def test_flipped_command_bits_never_pass_authentication():
    packet = VALID[0]
    for bit in range(8 * len(packet)):
        mutated = bytearray(packet)
        mutated[bit // 8] ^= 0x80 >> (bit % 8)
        verifier = CommandVerifier(KEY)
        with pytest.raises(CommandRefusedError):
            verifier.verify(bytes(mutated))

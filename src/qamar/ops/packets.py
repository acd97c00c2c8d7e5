"""CCSDS Space Packets of the rover: telemetry, and telecommands authenticated as in SDLS.

Every packet is one CCSDS Space Packet (CCSDS 133.0-B-2), unsegmented (sequence flags 0b11),
version 0, with the secondary-header flag set; the primary header is packed and read by the
``spacepackets`` library. Multi-octet fields are big-endian. Layouts (octets):

Telemetry (packet type 0)::

    0   primary header (6): version, type, sec. header flag, APID, seq. flags, 14-bit count, length
    6   CUC time (6): 4 octets of TAI seconds since 1958-01-01 + 2 octets of 1/65536 s
    12  parameters of the dictionary's telemetry packet for this APID, in order, no padding

Telecommand (packet type 1)::

    0   primary header (6)
    6   CUC time (6): when the command was released by the ground
    12  security header (6): SPI (uint16, security association), ARSN (uint32, anti-replay number)
    18  opcode (uint16)
    20  arguments of the command, in dictionary order, no padding
    end-L  MAC (L octets, default 16): HMAC-SHA-256 of octets 0 .. end-L-1, truncated to L octets

The time code is the CCSDS Unsegmented Code (CCSDS 301.0-B-4 sec. 3.2) with the 1958-01-01
TAI epoch (level 1), 4 + 2 octets, its P-field implicit: 0x1E (0 | 001 | 11 | 10), resolution
2**-16 s = 15.3 us, valid to 2094. TAI comes from UTC through qamar.time (leap seconds).

Authentication follows the spirit of CCSDS SDLS (355.0-B-2): the MAC covers the primary header,
the time, the security header and the data, so no bit can be changed without the key. The MAC is
HMAC-SHA-256 (RFC 2104, FIPS 198-1) truncated to 128 bits by default, as HMAC-SHA-256-128 of
IPsec (RFC 4868 sec. 2.6); the length is a parameter (16..32 octets). The anti-replay sequence
number (ARSN) must increase from one accepted command to the next by at most ``window``: a
number already accepted is refused as REPLAYED, any other number at or below the last accepted
as TOO_OLD (SDLS has no reordering on the uplink), a jump beyond the window as TOO_FAR_AHEAD.
The MAC is checked first so that a forged packet never moves the anti-replay state.

Decoders never raise anything but PacketError (``reason`` in MALFORMED, UNKNOWN_APID,
UNKNOWN_COMMAND, BAD_MAC, REPLAYED, TOO_OLD, TOO_FAR_AHEAD, OUT_OF_RANGE) and count each
refusal by reason in ``errors``/``refused``; the command verifier also logs each refusal
(logger ``qamar.ops.packets``, level WARNING).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import math
import struct
from dataclasses import dataclass, field

from spacepackets.ccsds.spacepacket import PacketType, SequenceFlags, SpacePacketHeader

from qamar.ops.dictionary import (
    CommandCall,
    CommandDef,
    Dictionary,
    TelemetryDef,
    default_dictionary,
)
from qamar.ops.errors import CommandError, CommandRefusedError, PacketError

PRIMARY_HEADER_LEN = 6
CUC_LEN = 6  # 4 coarse + 2 fine octets
CUC_PFIELD = 0x1E  # CCSDS 301.0-B-4 3.2.2: no extension, code 001 (1958 TAI epoch), 4 coarse, 2 fine octets
SECURITY_HEADER_LEN = 6  # SPI uint16 + ARSN uint32
OPCODE_LEN = 2
TM_HEADER_LEN = PRIMARY_HEADER_LEN + CUC_LEN
TC_HEADER_LEN = PRIMARY_HEADER_LEN + CUC_LEN + SECURITY_HEADER_LEN + OPCODE_LEN
SEQ_COUNT_MODULO = 1 << 14
ARSN_MODULO = 1 << 32
DEFAULT_MAC_LEN = 16  # HMAC-SHA-256-128, RFC 4868 sec. 2.6
DEFAULT_ARSN_WINDOW = 64
_log = logging.getLogger(__name__)

# 1958-01-01T00:00:00 TAI to 2000-01-01T12:00:00 TAI (qamar's TAI origin): 15340.5 days of 86400 s.
TAI_1958_TO_J2000_S = 1_325_419_200
_FINE_PER_S = 1 << 16
_CUC = struct.Struct(">IH")
_SECURITY = struct.Struct(">HIH")  # SPI, ARSN, opcode


def tai_s_to_cuc(t_tai_s: float) -> bytes:
    """The 6-octet CUC time code (1958 TAI epoch, 2**-16 s) of TAI seconds past J2000.

    Rounds to the nearest 2**-16 s. Raises PacketError (MALFORMED) outside 1958..2094.
    """
    ticks = round((t_tai_s + TAI_1958_TO_J2000_S) * _FINE_PER_S) if math.isfinite(t_tai_s) else -1
    if not 0 <= ticks < (1 << 48):
        raise PacketError("MALFORMED", f"epoch {t_tai_s} s TAI past J2000 is outside the CUC range 1958..2094")
    return _CUC.pack(ticks >> 16, ticks & 0xFFFF)


def cuc_to_tai_s(code: bytes) -> float:
    """TAI seconds past J2000 of a 6-octet CUC time code (1958 TAI epoch, 2**-16 s)."""
    coarse, fine = _CUC.unpack_from(code)
    return coarse - TAI_1958_TO_J2000_S + fine / _FINE_PER_S


def cuc_ticks(packet: bytes) -> int:
    """The 48-bit CUC of a packet (units of 2**-16 s since 1958 TAI), read after its primary header."""
    coarse, fine = _CUC.unpack_from(packet, PRIMARY_HEADER_LEN)
    return (coarse << 16) | fine


@dataclass(frozen=True)
class TelemetryPacket:
    """A decoded telemetry packet: values in engineering units (enum names, bools)."""

    definition: TelemetryDef = field(repr=False)
    apid: int
    seq_count: int
    t_tai_s: float
    values: dict


@dataclass(frozen=True)
class CommandPacket:
    """A decoded telecommand; ``args`` are raw wire values (enum codes), not yet range-checked."""

    command: CommandDef = field(repr=False)
    apid: int
    seq_count: int
    t_tai_s: float
    spi: int
    arsn: int
    args: dict
    mac: bytes


class SequenceCounters:
    """Per-APID 14-bit source sequence counters (CCSDS 133.0-B-2 sec. 4.1.3.4.2: wrap at 16384)."""

    def __init__(self, start: dict[int, int] | None = None):
        """``start``: the next count per APID (e.g. after a restart); others start at 0."""
        self._next: dict[int, int] = collections.defaultdict(int)
        for apid, count in (start or {}).items():
            self._next[apid] = count % SEQ_COUNT_MODULO

    def next(self, apid: int) -> int:
        count = self._next[apid]
        self._next[apid] = (count + 1) % SEQ_COUNT_MODULO
        return count


def _primary_header(packet_type: PacketType, apid: int, seq_count: int, packet_len: int) -> bytes:
    header = SpacePacketHeader(packet_type=packet_type, apid=apid, seq_count=seq_count % SEQ_COUNT_MODULO,
                               data_len=packet_len - PRIMARY_HEADER_LEN - 1, sec_header_flag=True)
    return bytes(header.pack())


class PacketCodec:
    """Encodes and decodes the packets of a dictionary (default: the shipped rover dictionary).

    ``errors`` counts the packets :meth:`decode` refused, by reason.
    """

    def __init__(self, dictionary: Dictionary | None = None, mac_len: int = DEFAULT_MAC_LEN):
        if not 16 <= mac_len <= 32:
            raise ValueError(f"mac_len must be 16..32 octets (128..256 bits), got {mac_len}")
        self.dictionary = dictionary or default_dictionary()
        self.mac_len = mac_len
        self.errors: collections.Counter[str] = collections.Counter()
        apids = self.dictionary.apids
        self._tm_by_apid = {apids[t.apid]: t for t in self.dictionary.telemetry}
        self._tm_struct = {t.name: struct.Struct(">" + "".join(p.struct_code for p in t.parameters))
                           for t in self.dictionary.telemetry}
        self._tc_by_opcode = {c.opcode: c for c in self.dictionary.commands}
        self._tc_apids = {apids[c.apid] for c in self.dictionary.commands}
        self._tc_struct = {c.name: struct.Struct(">" + "".join(a.struct_code for a in c.arguments))
                           for c in self.dictionary.commands}

    # --- telemetry -----------------------------------------------------------------------------

    def encode_telemetry(self, name: str, values: dict, seq_count: int, t_tai_s: float) -> bytes:
        """One telemetry packet ``name`` with ``values`` (engineering units; enums by name).

        Raises KeyError for an unknown packet or a missing value, CommandError for a value the
        wire type cannot carry (values outside min/max are sent: telemetry reports them).
        """
        tm = self.dictionary.telemetry_packet(name)
        wire = []
        for p in tm.parameters:
            value = values[p.name]
            if p.type == "enum":
                value = p.choices[value]
            elif p.type == "bool":
                value = int(bool(value))
            wire.append(value)
        try:
            body = self._tm_struct[name].pack(*wire)
        except struct.error as exc:
            raise CommandError(f"telemetry {name}: a value does not fit its wire type ({exc})") from None
        packet_len = TM_HEADER_LEN + len(body)
        return _primary_header(PacketType.TM, self.dictionary.apids[tm.apid], seq_count, packet_len) + \
            tai_s_to_cuc(t_tai_s) + body

    # --- telecommands --------------------------------------------------------------------------

    def encode_command(self, call: CommandCall, seq_count: int, t_tai_s: float, arsn: int, key: bytes,
                       spi: int = 1, check: bool = True) -> bytes:
        """One authenticated telecommand packet for ``call`` (see the module docstring for the layout).

        ``check=False`` packs the values without range checks (to test the rover's own checks).
        Raises CommandError for values out of range or that the wire type cannot carry.
        """
        cmd = call.command
        if check:
            call = CommandCall.checked(cmd, call.args)
        if not 0 <= arsn < ARSN_MODULO or not 0 <= spi <= 0xFFFF:
            raise CommandError(f"ARSN {arsn} or SPI {spi} out of range (32 and 16 bits); change the key to restart ARSNs")
        wire = [a.choices[call.args[a.name]] if a.type == "enum" and isinstance(call.args[a.name], str)
                else call.args[a.name] for a in cmd.arguments]
        try:
            body = self._tc_struct[cmd.name].pack(*wire)
        except struct.error as exc:
            raise CommandError(f"{cmd.name}: an argument does not fit its wire type ({exc})") from None
        packet_len = TC_HEADER_LEN + len(body) + self.mac_len
        signed = (_primary_header(PacketType.TC, self.dictionary.apids[cmd.apid], seq_count, packet_len)
                  + tai_s_to_cuc(t_tai_s) + _SECURITY.pack(spi, arsn, cmd.opcode) + body)
        return signed + self.mac(signed, key)

    def mac(self, signed: bytes, key: bytes) -> bytes:
        """The truncated HMAC-SHA-256 of ``signed`` octets under ``key``."""
        return hmac.new(key, signed, hashlib.sha256).digest()[: self.mac_len]

    # --- decoding ------------------------------------------------------------------------------

    def decode(self, raw: bytes) -> TelemetryPacket | CommandPacket:
        """Decode one packet (exactly one, no trailing octets); commands are not authenticated here.

        Raises PacketError, and counts it in ``errors``, for anything that is not a packet of
        this dictionary: never another exception.
        """
        try:
            return self._decode(bytes(raw))
        except PacketError as exc:
            self.errors[exc.reason] += 1
            raise

    def _decode(self, raw: bytes) -> TelemetryPacket | CommandPacket:
        if len(raw) < TM_HEADER_LEN:
            raise PacketError("MALFORMED", f"{len(raw)} octets, shorter than the {TM_HEADER_LEN}-octet headers")
        header = SpacePacketHeader.unpack(raw)
        if header.ccsds_version != 0 or header.seq_flags != SequenceFlags.UNSEGMENTED or not header.sec_header_flag:
            raise PacketError("MALFORMED", "not an unsegmented version-0 space packet with a secondary header")
        if header.packet_len != len(raw):
            raise PacketError("MALFORMED", f"length field says {header.packet_len} octets, got {len(raw)}")
        t_tai_s = cuc_to_tai_s(raw[PRIMARY_HEADER_LEN:])
        if header.packet_type == PacketType.TM:
            return self._decode_telemetry(raw, header, t_tai_s)
        return self._decode_command(raw, header, t_tai_s)

    def _decode_telemetry(self, raw: bytes, header: SpacePacketHeader, t_tai_s: float) -> TelemetryPacket:
        tm = self._tm_by_apid.get(header.apid)
        if tm is None:
            raise PacketError("UNKNOWN_APID", f"no telemetry packet has APID {header.apid:#05x}")
        layout = self._tm_struct[tm.name]
        if len(raw) != TM_HEADER_LEN + layout.size:
            raise PacketError("MALFORMED", f"{tm.name} is {TM_HEADER_LEN + layout.size} octets, got {len(raw)}")
        values = {}
        for p, value in zip(tm.parameters, layout.unpack_from(raw, TM_HEADER_LEN)):
            if p.type == "enum":
                names = [n for n, code in p.choices.items() if code == value]
                if not names:
                    raise PacketError("MALFORMED", f"{tm.name}.{p.name}: enum code {value} is not defined")
                value = names[0]
            elif p.type == "bool":
                if value > 1:
                    raise PacketError("MALFORMED", f"{tm.name}.{p.name}: boolean octet {value}")
                value = bool(value)
            values[p.name] = value
        return TelemetryPacket(tm, header.apid, header.seq_count, t_tai_s, values)

    def _decode_command(self, raw: bytes, header: SpacePacketHeader, t_tai_s: float) -> CommandPacket:
        if header.apid not in self._tc_apids:
            raise PacketError("UNKNOWN_APID", f"no command goes to APID {header.apid:#05x}")
        if len(raw) < TC_HEADER_LEN + self.mac_len:
            raise PacketError("MALFORMED", f"{len(raw)} octets, shorter than a telecommand's headers and MAC")
        spi, arsn, opcode = _SECURITY.unpack_from(raw, TM_HEADER_LEN)
        cmd = self._tc_by_opcode.get(opcode)
        if cmd is None or self.dictionary.apids[cmd.apid] != header.apid:
            raise PacketError("UNKNOWN_COMMAND", f"no command has opcode {opcode} on APID {header.apid:#05x}")
        layout = self._tc_struct[cmd.name]
        if len(raw) != TC_HEADER_LEN + layout.size + self.mac_len:
            raise PacketError("MALFORMED", f"{cmd.name} is {TC_HEADER_LEN + layout.size + self.mac_len} octets, "
                              f"got {len(raw)}")
        args = dict(zip([a.name for a in cmd.arguments], layout.unpack_from(raw, TC_HEADER_LEN)))
        return CommandPacket(cmd, header.apid, header.seq_count, t_tai_s, spi, arsn, args, raw[-self.mac_len:])


@dataclass
class CommandVerifier:
    """The rover's telecommand gate: decode, check the MAC, the ARSN and the argument ranges.

    ``last_arsn`` is the last accepted anti-replay number (ground starts at ``last_arsn + 1``);
    ``window`` bounds how far a new number may jump ahead of it. ``refused`` counts refusals
    by reason; ``accepted`` counts accepted commands.
    """

    key: bytes
    codec: PacketCodec = field(default_factory=PacketCodec)
    window: int = DEFAULT_ARSN_WINDOW
    last_arsn: int = 0
    spi: int = 1
    accepted: int = 0
    refused: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        self._recent: collections.deque[int] = collections.deque([self.last_arsn], maxlen=self.window)

    def verify(self, raw: bytes) -> CommandCall:
        """The checked command carried by ``raw``; CommandRefusedError (counted) with the reason if refused."""
        try:
            call = self._verify(raw)
        except PacketError as exc:
            self.refused[exc.reason] += 1
            _log.warning("telecommand refused: %s", exc)
            raise CommandRefusedError(exc.reason, str(exc).partition(": ")[2]) from None
        self.accepted += 1
        return call

    def _verify(self, raw: bytes) -> CommandCall:
        packet = self.codec.decode(raw)
        if not isinstance(packet, CommandPacket):
            raise PacketError("MALFORMED", "a telemetry packet is not a telecommand")
        raw = bytes(raw)
        if packet.spi != self.spi or not hmac.compare_digest(self.codec.mac(raw[: -self.codec.mac_len], self.key),
                                                             packet.mac):
            raise PacketError("BAD_MAC", f"{packet.command.name} ARSN {packet.arsn}: authentication failed")
        if packet.arsn <= self.last_arsn:
            reason = "REPLAYED" if packet.arsn in self._recent else "TOO_OLD"
            raise PacketError(reason, f"{packet.command.name} ARSN {packet.arsn} <= last accepted {self.last_arsn}")
        if packet.arsn > self.last_arsn + self.window:
            raise PacketError("TOO_FAR_AHEAD", f"{packet.command.name} ARSN {packet.arsn} is more than "
                              f"{self.window} past the last accepted {self.last_arsn}")
        try:
            call = CommandCall.checked(packet.command, packet.args)
        except CommandError as exc:
            raise PacketError("OUT_OF_RANGE", str(exc)) from None
        self.last_arsn = packet.arsn
        self._recent.append(packet.arsn)
        return call


@dataclass
class CommandSigner:
    """The ground's side: checks a command, numbers it (ARSN, per-APID sequence count), signs it."""

    key: bytes
    codec: PacketCodec = field(default_factory=PacketCodec)
    next_arsn: int = 1
    spi: int = 1
    counters: SequenceCounters = field(default_factory=SequenceCounters)

    def sign(self, call: CommandCall | str, t_tai_s: float) -> bytes:
        """The authenticated packet of ``call`` (a CommandCall or an operator line) released at ``t_tai_s``.

        Raises CommandError for a bad command or argument.
        """
        if isinstance(call, str):
            call = self.codec.dictionary.parse_command(call)
        apid = self.codec.dictionary.apids[call.command.apid]
        packet = self.codec.encode_command(call, self.counters.next(apid), t_tai_s, self.next_arsn, self.key, self.spi)
        self.next_arsn += 1
        return packet


_PRIMARY = struct.Struct(">HHH")


def peek_header(raw: bytes) -> tuple[int, int, int, int]:
    """(packet type, APID, sequence count, CUC ticks) of a packet, checked only for framing.

    A fast reader for the archive, independent of any dictionary. Raises PacketError
    (MALFORMED) if ``raw`` is not one version-0 unsegmented packet with a CUC secondary header
    whose length field matches ``len(raw)``.
    """
    if len(raw) < TM_HEADER_LEN:
        raise PacketError("MALFORMED", f"{len(raw)} octets, shorter than the {TM_HEADER_LEN}-octet headers")
    word0, word1, data_len = _PRIMARY.unpack_from(raw)
    if word0 >> 13 != 0 or not word0 & 0x0800 or word1 >> 14 != 0b11:
        raise PacketError("MALFORMED", "not an unsegmented version-0 space packet with a secondary header")
    if data_len + PRIMARY_HEADER_LEN + 1 != len(raw):
        raise PacketError("MALFORMED", f"length field says {data_len + PRIMARY_HEADER_LEN + 1} octets, got {len(raw)}")
    return (word0 >> 12) & 1, word0 & 0x07FF, word1 & 0x3FFF, cuc_ticks(raw)


def split_stream(buffer: bytes | bytearray) -> tuple[list[bytes], bytes]:
    """Cut a byte stream of concatenated space packets into packets by their length fields.

    Returns the complete packets and the unfinished tail. Does not check the packets.
    """
    packets, start, end = [], 0, len(buffer)
    while end - start >= PRIMARY_HEADER_LEN:
        size = PRIMARY_HEADER_LEN + 1 + ((buffer[start + 4] << 8) | buffer[start + 5])
        if end - start < size:
            break
        packets.append(bytes(buffer[start:start + size]))
        start += size
    return packets, bytes(buffer[start:])

"""Export a command and telemetry dictionary as XTCE (OMG XML Telemetric and Command Exchange) for Yamcs.

The space system is built with yamcs-pymdb on its CCSDS primary header
(``yamcs.pymdb.ccsds.add_ccsds_header``) and written as XTCE 1.2:

- an abstract telemetry container adds the CUC time (48-bit count of 2**-16 s since the TAI
  epoch 1958, CCSDS 301.0-B-4) after the primary header; each telemetry packet is a container
  derived from it, selected by its APID, with its parameters in wire order, their units, ranges
  and threshold alarms (warning/critical limits);
- an abstract command adds the CUC time, the SDLS-style security header (SPI, ARSN) and the
  opcode; each command derives from it with its APID and opcode assigned, its arguments
  (ranges, enums, units) and the MAC trailer as a zero-filled placeholder. The time, ARSN and
  MAC are written by qamar's command signer (qamar.ops.packets): XTCE cannot express an HMAC,
  so a Yamcs deployment needs a command post-processor that fills them.
"""

from __future__ import annotations

from yamcs import pymdb

from qamar.ops.dictionary import Dictionary, Field, default_dictionary
from qamar.ops.packets import DEFAULT_MAC_LEN

_INT_ENCODING = {
    "int8": pymdb.int8_t, "int16": pymdb.int16_t, "int32": pymdb.int32_t,
    "uint8": pymdb.uint8_t, "uint16": pymdb.uint16_t, "uint32": pymdb.uint32_t,
}
_CUC_ENCODING = pymdb.IntegerTimeEncoding(bits=48, scale=2.0**-16)  # 4 coarse + 2 fine octets


def _choices(f: Field) -> list[tuple[int, str]]:
    return [(code, name) for name, code in f.choices.items()]


def _alarm(p) -> pymdb.ThresholdAlarm | None:
    if p.limits is None:
        return None
    lim = p.limits
    return pymdb.ThresholdAlarm(warning_low=lim.warning_low, warning_high=lim.warning_high,
                                critical_low=lim.critical_low, critical_high=lim.critical_high)


def _parameter(system: pymdb.System, p) -> pymdb.Parameter:
    common = {"system": system, "name": p.name, "short_description": p.description or None, "units": p.units}
    if p.type == "enum":
        return pymdb.EnumeratedParameter(choices=_choices(p), encoding=pymdb.uint8_t, **common)
    if p.type == "bool":
        return pymdb.BooleanParameter(encoding=pymdb.uint8_t, **common)
    if p.type in _INT_ENCODING:
        return pymdb.IntegerParameter(signed=not p.type.startswith("u"), bits=_INT_ENCODING[p.type].bits,
                                      minimum=None if p.min is None else int(p.min),
                                      maximum=None if p.max is None else int(p.max),
                                      encoding=_INT_ENCODING[p.type], alarm=_alarm(p), **common)
    bits = 32 if p.type == "float32" else 64
    return pymdb.FloatParameter(bits=bits, minimum=p.min, maximum=p.max, encoding=pymdb.FloatEncoding(bits=bits),
                                alarm=_alarm(p), **common)


def _argument(a) -> pymdb.Argument:
    common = {"name": a.name, "short_description": a.description or None, "units": a.units}
    if a.type == "enum":
        return pymdb.EnumeratedArgument(choices=_choices(a), encoding=pymdb.uint8_t, default=a.default, **common)
    if a.type == "bool":
        return pymdb.BooleanArgument(encoding=pymdb.uint8_t, default=a.default, **common)
    if a.type in _INT_ENCODING:
        return pymdb.IntegerArgument(signed=not a.type.startswith("u"), bits=_INT_ENCODING[a.type].bits,
                                     minimum=None if a.min is None else int(a.min),
                                     maximum=None if a.max is None else int(a.max),
                                     encoding=_INT_ENCODING[a.type], default=a.default, **common)
    bits = 32 if a.type == "float32" else 64
    return pymdb.FloatArgument(bits=bits, minimum=a.min, maximum=a.max, encoding=pymdb.FloatEncoding(bits=bits),
                               default=a.default, **common)


def build_space_system(dictionary: Dictionary | None = None, mac_len: int = DEFAULT_MAC_LEN) -> pymdb.System:
    """The yamcs-pymdb System of ``dictionary`` (default: the shipped rover dictionary)."""
    d = dictionary or default_dictionary()
    system = pymdb.System(d.name, short_description=f"{d.name} command and telemetry dictionary {d.version}",
                          extra={"version": d.version})
    header = pymdb.ccsds.add_ccsds_header(system)

    time = pymdb.AbsoluteTimeParameter(system=system, name="cuc_time_tai", reference=pymdb.Epoch.TAI,
                                       encoding=_CUC_ENCODING,
                                       short_description="CCSDS CUC, 2**-16 s since 1958-01-01 TAI")
    tm_base = pymdb.Container(system=system, name="rover_tm", base=header.tm_container, abstract=True,
                              entries=[pymdb.ParameterEntry(time)])
    for tm in d.telemetry:
        pymdb.Container(system=system, name=tm.name, base=tm_base, short_description=tm.description or None,
                        condition=pymdb.eq(header.tm_apid, d.apids[tm.apid]),
                        entries=[pymdb.ParameterEntry(_parameter(system, p)) for p in tm.parameters])

    opcode = pymdb.IntegerArgument(name="opcode", signed=False, bits=16, encoding=pymdb.uint16_t)
    tc_base = pymdb.Command(
        system=system, name="rover_tc", base=header.tc_command, abstract=True,
        short_description="Telecommand with CUC release time, SDLS-style security header and opcode",
        arguments=[opcode],
        entries=[
            pymdb.FixedValueEntry(name="cuc_time_tai", binary="00" * 6, bits=48,
                                  short_description="release time, set by the command signer"),
            pymdb.FixedValueEntry(name="spi", binary="0001", bits=16, short_description="security association"),
            pymdb.FixedValueEntry(name="arsn", binary="00" * 4, bits=32,
                                  short_description="anti-replay sequence number, set by the command signer"),
            pymdb.ArgumentEntry(opcode),
        ],
    )
    mac = pymdb.FixedValueEntry(name="mac", binary="00" * mac_len, bits=8 * mac_len,
                                short_description=f"HMAC-SHA-256 truncated to {mac_len} octets, set by the signer")
    for cmd in d.commands:
        args = [_argument(a) for a in cmd.arguments]
        pymdb.Command(system=system, name=cmd.name, base=tc_base, short_description=cmd.description or None,
                      assignments={"ccsds_apid": d.apids[cmd.apid], "ccsds_secondary_header": True,
                                   "opcode": cmd.opcode},
                      arguments=args, entries=[pymdb.ArgumentEntry(a) for a in args] + [mac])
    return system


def to_xtce(dictionary: Dictionary | None = None, mac_len: int = DEFAULT_MAC_LEN) -> str:
    """The XTCE 1.2 XML text of ``dictionary`` (default: the shipped rover dictionary)."""
    return build_space_system(dictionary, mac_len).dumps(format="xtce-1.2")

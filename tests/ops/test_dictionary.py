"""The rover dictionary: loading, validation errors, operator command lines, XTCE export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import yaml

from qamar.errors import QamarError
from qamar.ops.dictionary import default_dictionary, load_dictionary
from qamar.ops.errors import CommandError, DictionaryError
from qamar.ops.xtce import to_xtce

XTCE_NS = {"x": "http://www.omg.org/spec/XTCE/20180204"}


@pytest.fixture(scope="module")
def rover():
    return default_dictionary()


def test_shipped_dictionary_has_the_commands_and_telemetry_of_the_issue(rover):
    assert rover.version == "1.1.0"
    for name in ("DRIVE_TO", "TURN", "STOP", "IMAGE", "HIBERNATE", "WAKE", "SET_MODE", "RUN_SEQUENCE"):
        rover.command(name)
    params = {p.name: p for tm in rover.telemetry for p in tm.parameters}
    for name in ("battery_soc_pct", "bus_voltage_v", "battery_temp_c", "lat_deg", "lon_deg", "heading_deg",
                 "solar_power_in_w", "power_out_w", "mode"):
        assert name in params
    assert params["battery_soc_pct"].units == "%" and params["battery_soc_pct"].limits.critical_low == 15.0


def test_drive_to_line_is_parsed_with_defaults(rover):
    call = rover.parse_command("DRIVE_TO lat=-89.45 lon=222.7")
    assert call.command.name == "DRIVE_TO"
    assert call.args == {"lat": -89.45, "lon": 222.7, "speed_cm_s": 1.0}
    assert rover.parse_command("set_mode mode=DRIVE").args == {"mode": "DRIVE"}
    assert rover.parse_command("HIBERNATE duration_s=0x100").args == {"duration_s": 256}
    assert rover.parse_command("STOP").args == {}


@pytest.mark.parametrize(("line", "expected"), [
    ("DRIVE_TO lat=-70 lon=222.7", "argument 'lat': -70 is out of range [-90, -80] deg"),
    ("DRIVE_TO lat=-89 lon=400", "argument 'lon': 400 is out of range [0, 360] deg"),
    ("DRIVE_TO lat=nan lon=1", "argument 'lat'"),
    ("DRIVE_TO lat=-89", "argument 'lon' is required ([0, 360] deg)"),
    ("DRIVE_TO lat=-89 lon=1 speed=3", "unknown argument(s) speed; it takes lat, lon, speed_cm_s"),
    ("DRIVE_TO lat=x lon=1", "'x' is not a number"),
    ("DRIVE_TO lat=-89 lat=-88 lon=1", "given twice"),
    ("SET_MODE mode=FAST", "'FAST' is not one of SAFE, STANDBY, DRIVE, SCIENCE, HIBERNATE"),
    ("HIBERNATE duration_s=59", "59 is out of range [60, 1.3824e+06] s"),
    ("HIBERNATE duration_s=100.5", "is not an integer"),
    ("FLY_TO x=1", "unknown command 'FLY_TO'"),
    ("TURN 30", "'30' is not arg=value"),
    ("", "empty command line"),
    ("TURN angle_deg='30", "cannot read command line"),
])
def test_bad_command_lines_name_the_argument_and_range(rover, line, expected):
    with pytest.raises(CommandError) as info:
        rover.parse_command(line)
    assert expected in str(info.value)
    assert isinstance(info.value, QamarError)


def test_float32_bounds_are_checked_as_sent(rover):
    # 0.01 is not a float32; the ground and the rover compare the same rounded numbers.
    call = rover.parse_command("IMAGE camera=NAVCAM_LEFT exposure_ms=0.01")
    assert call.args["exposure_ms"] == pytest.approx(0.01, rel=1e-7)


def _shipped_yaml() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("qamar.ops").joinpath("rover_dictionary.yaml").read_text())


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["commands"][1].update(opcode=1), "duplicate command opcode: 1"),
    (lambda d: d["commands"][0].update(apid="wheels"), "APID name 'wheels' is not in 'apids'"),
    (lambda d: d["commands"][1]["arguments"][0].update(min=200.0), "min 200.0 > max 180.0"),
    (lambda d: d["commands"][4]["arguments"][0].update(max=2**40), "is not a uint32"),
    (lambda d: d["commands"][6]["arguments"][0].pop("choices"), "'choices' go with type enum"),
    (lambda d: d["telemetry"][0]["parameters"][1].update(limits={"warning_low": 10, "critical_low": 20}),
     "critical_low <= warning_low"),
    (lambda d: d.update(version="one"), "MAJOR.MINOR.PATCH"),
    (lambda d: d["apids"].update(mobility=4000), "is not 0..2046"),
    (lambda d: d["commands"][0].update(colour="red"), "commands.0.colour"),
    (lambda d: d["telemetry"][1].update(apid="mobility"), "carry both commands and telemetry"),
])
def test_bad_dictionaries_raise_dictionary_error_naming_the_entry(tmp_path, edit, expected):
    raw = _shipped_yaml()
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DictionaryError) as info:
        load_dictionary(path)
    assert expected in str(info.value) and "bad.yaml" in str(info.value)


def test_unreadable_or_non_mapping_dictionary(tmp_path):
    with pytest.raises(DictionaryError, match="cannot read"):
        load_dictionary(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(DictionaryError, match="is a mapping"):
        load_dictionary(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("version: [1\n")
    with pytest.raises(DictionaryError, match="not valid YAML"):
        load_dictionary(tmp_path / "broken.yaml")


def test_xtce_is_well_formed_and_carries_every_command_argument_range_and_parameter(rover):
    root = ET.fromstring(to_xtce(rover))
    assert root.tag == "{http://www.omg.org/spec/XTCE/20180204}SpaceSystem"
    assert root.get("name") == rover.name
    assert root.find("x:AncillaryDataSet/x:AncillaryData[@name='version']", XTCE_NS).text == rover.version

    commands = {m.get("name"): m for m in root.iterfind(".//x:MetaCommand", XTCE_NS)}
    arg_types = {t.get("name"): t for t in root.find(".//x:ArgumentTypeSet", XTCE_NS)}
    for cmd in rover.commands:
        meta = commands[cmd.name]
        assigned = {a.get("argumentName"): a.get("argumentValue") for a in meta.iterfind(".//x:ArgumentAssignment",
                                                                                         XTCE_NS)}
        assert assigned["ccsds_apid"] == str(rover.apids[cmd.apid]) and assigned["opcode"] == str(cmd.opcode)
        listed = {a.get("name"): a.get("argumentTypeRef") for a in meta.iterfind("x:ArgumentList/x:Argument", XTCE_NS)}
        assert list(listed) == [a.name for a in cmd.arguments]
        for arg in cmd.arguments:
            xtype = arg_types[listed[arg.name]]
            if arg.type == "enum":
                labels = {e.get("label"): int(e.get("value")) for e in xtype.iterfind(".//x:Enumeration", XTCE_NS)}
                assert labels == arg.choices
            elif arg.min is not None:
                valid = xtype.find("x:ValidRangeSet/x:ValidRange", XTCE_NS)
                assert float(valid.get("minInclusive")) == arg.min and float(valid.get("maxInclusive")) == arg.max
            if arg.units:
                assert xtype.find("x:UnitSet/x:Unit", XTCE_NS).text == arg.units

    parameters = {p.get("name"): p.get("parameterTypeRef") for p in root.iterfind(".//x:Parameter", XTCE_NS)}
    param_types = {t.get("name"): t for t in root.find(".//x:ParameterTypeSet", XTCE_NS)}
    containers = {c.get("name"): c for c in root.iterfind(".//x:SequenceContainer", XTCE_NS)}
    for tm in rover.telemetry:
        entries = [e.get("parameterRef") for e in containers[tm.name].iterfind(".//x:ParameterRefEntry", XTCE_NS)]
        assert entries == [p.name for p in tm.parameters]
        for p in tm.parameters:
            xtype = param_types[parameters[p.name]]
            if p.limits and p.limits.critical_low is not None:
                critical = xtype.find(".//x:CriticalRange", XTCE_NS)
                assert float(critical.get("minInclusive")) == p.limits.critical_low


def test_xtce_validates_against_the_xtce_1_2_schema(tmp_path, rover):
    # The OMG XTCE 1.2 schema (SpaceSystem.xsd, namespace 20180204) as shipped by LASP's
    # space-packet-parser, an independent XTCE reader; no network is used.
    validation = pytest.importorskip("space_packet_parser.xtce.validation")
    from pathlib import Path

    xsd = Path(validation.__file__).parent / "schemas" / "SpaceSystem.xsd"
    path = tmp_path / "rover.xml"
    path.write_text(to_xtce(rover))
    result = validation.validate_xtce(path, level="schema", print_results=False, raise_on_error=False,
                                      local_xsd=xsd, allow_schema_download=False)
    assert result.valid, result.errors

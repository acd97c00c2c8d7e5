"""The rover: a YAML description of its mobility, power and radio, with every unknown value
defaulted from a comparable rover and labelled as an assumption.

SUPARCO's rover for Chang'e-8 is about 35 kg and is driven from Earth through the lander and
the Queqiao relays (mission-brief.md sec. 3); its speed, slope limit, power, battery and
radios are not published. Each default below names where it comes from (mission-brief.md's
table of comparable rovers: Pragyan 26 kg, 1 cm/s, 50 W solar, relays via its lander; Rashid
10 kg, 10 cm obstacles, 20 deg slopes; Yutu-2; VIPER, vertical arrays, sunlit routes). A value
given in the rover file is the user's; :meth:`RoverSpec.assumptions` lists the others.

Units are in the names (``_kg``, ``_m_per_s``, ``_deg``, ``_w``, ``_wh``, ``_m``). A file with
an unknown key, a wrong type or an impossible value raises ModelConfigError naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qamar.errors import DataFormatError, ModelConfigError

SOLAR_CONSTANT_W_M2 = 1361.0  # total solar irradiance at 1 au, Kopp & Lean (2011), GRL 38, L01706


def _default(value, source: str):
    """A field default with the source of the value (shown by RoverSpec.assumptions)."""
    return Field(value, json_schema_extra={"source": source})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mobility(_Section):
    """How and where the rover can drive."""

    speed_m_per_s: float = _default(0.01, "Pragyan (Chandrayaan-3) drove at 1 cm/s (mission-brief.md)")
    max_slope_deg: float = _default(20.0, "Rashid (UAE) was built for 20 deg slopes (mission-brief.md)")
    max_obstacle_m: float = _default(0.10, "Rashid (UAE) climbs 10 cm obstacles (mission-brief.md)")
    footprint_m: float = _default(
        1.0, "assumption: a rover of about a metre (Pragyan-class, 26 kg, mission-brief.md); slopes are taken "
             "over this length on DEMs finer than it")
    max_roughness_m: float | None = _default(
        None, "no limit: a 5-10 m DEM pixel is much coarser than the rover's 10 cm obstacles (Rashid), so "
              "DEM roughness does not decide passability; set it for DEMs finer than the rover")
    slope_cost_deg: float = _default(
        5.0, "planning preference, not physics: each 5 deg of slope costs as much as one more metre on the flat "
             "(the cost 1 + slope/5 deg of the peer benchmark in peers.md)")
    roughness_cost_m: float | None = _default(
        None, "planning preference: no roughness cost unless set (each roughness_cost_m of RMS roughness then "
              "costs as much as one more metre on the flat)")
    crater_margin: float = _default(
        1.0, "catalogued craters are kept out to their rim (1.0 crater radius); crater walls and shadowed "
             "floors are the hazards VIPER's planners avoided (mission-brief.md)")
    crater_max_diameter_m: float = _default(
        10000.0, "assumption: craters wider than 10 km (basins, far beyond a rover's drive: Pragyan made 101 m in "
                 "12 days, mission-brief.md) are landforms the slope map resolves, not obstacles to keep out")

    @model_validator(mode="after")
    def _check(self) -> Mobility:
        if not self.speed_m_per_s > 0:
            raise ValueError(f"speed_m_per_s must be positive, got {self.speed_m_per_s}")
        if not 0 < self.max_slope_deg < 90:
            raise ValueError(f"max_slope_deg must lie in (0, 90) deg, got {self.max_slope_deg}")
        for name in ("max_obstacle_m", "footprint_m", "slope_cost_deg", "crater_max_diameter_m", "max_roughness_m", "roughness_cost_m"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not self.crater_margin >= 0:
            raise ValueError(f"crater_margin must be 0 or more crater radii, got {self.crater_margin}")
        return self


class Solar(_Section):
    """The solar array."""

    efficiency: float = _default(
        0.28, "triple-junction GaAs space cells, about 28-30 % at beginning of life (e.g. AZUR SPACE 3G30C)")
    area_m2: float = _default(
        0.13, "sized to Pragyan's 50 W (mission-brief.md) at normal incidence: 50 W / (1361 W/m2 x 0.28)")
    tilt_deg: float = _default(
        90.0, "vertical panel: usual at the pole where the Sun skims the horizon (VIPER, mission-brief.md)")
    azimuth_deg: float | None = _default(
        None, "the rover turns its panel to the Sun's azimuth (None); a number fixes it, deg from north")

    @model_validator(mode="after")
    def _check(self) -> Solar:
        if not 0 < self.efficiency <= 1:
            raise ValueError(f"efficiency must lie in (0, 1], got {self.efficiency}")
        if not self.area_m2 > 0:
            raise ValueError(f"area_m2 must be positive, got {self.area_m2}")
        if not 0 <= self.tilt_deg <= 90:
            raise ValueError(f"tilt_deg must lie in 0..90 deg from horizontal, got {self.tilt_deg}")
        return self

    @property
    def peak_w(self) -> float:
        """Power at normal incidence at 1 au (W)."""
        return SOLAR_CONSTANT_W_M2 * self.efficiency * self.area_m2


class Power(_Section):
    """Battery and power draw."""

    battery_wh: float = _default(
        100.0, "assumption: about two hours of driving at the rover's array power (Pragyan-class 50 W)")
    reserve_fraction: float = _default(0.2, "assumption: keep 20 % of the battery in reserve")
    drive_w: float = _default(40.0, "assumption: most of a Pragyan-class 50 W array (mission-brief.md)")
    idle_w: float = _default(15.0, "assumption: avionics, heaters and radio awake, not driving")
    hibernate_w: float = _default(3.0, "assumption: survival heaters and a wake-up timer")
    charge_efficiency: float = _default(
        0.95, "assumption: Li-ion cells store about 95 % of the charging energy (about 90 % round trip)")
    discharge_efficiency: float = _default(
        0.95, "assumption: Li-ion cells deliver about 95 % of the energy drawn from them (about 90 % round trip)")

    @model_validator(mode="after")
    def _check(self) -> Power:
        for name in ("battery_wh", "drive_w", "idle_w", "hibernate_w"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.reserve_fraction < 1:
            raise ValueError(f"reserve_fraction must lie in [0, 1), got {self.reserve_fraction}")
        for name in ("charge_efficiency", "discharge_efficiency"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)}")
        return self


class Comms(_Section):
    """Radio links: rover to lander, and Earth through the lander."""

    rover_antenna_height_m: float = _default(0.5, "assumption: a mast on a sub-metre rover (Pragyan-class)")
    lander_antenna_height_m: float = _default(3.0, "assumption: an antenna on top of a lander a few metres tall")
    lander_range_m: float = _default(
        1000.0, "assumption: a short UHF link to the lander (Pragyan relayed through Vikram, mission-brief.md)")
    earth_link: Literal["via_lander", "direct"] = _default(
        "via_lander", "mission-brief.md: the link to Earth goes through the Chang'e-8 lander and Queqiao")
    max_contact_gap_h: float = _default(
        24.0, "operations-concept assumption: the rover is in contact (Earth in view) at least once a day; "
              "VIPER planned routes around Earth blackouts (mission-brief.md)")

    @model_validator(mode="after")
    def _check(self) -> Comms:
        for name in ("rover_antenna_height_m", "lander_antenna_height_m", "lander_range_m", "max_contact_gap_h"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        return self


class RoverSpec(_Section):
    """A rover: its mass and the sections above. All defaults are documented assumptions."""

    name: str = _default("SUPARCO rover", "mission-brief.md")
    mass_kg: float = _default(35.0, "mission-brief.md: SUPARCO's rover is about 35 kg")
    mobility: Mobility = Field(default_factory=Mobility)
    solar: Solar = Field(default_factory=Solar)
    power: Power = Field(default_factory=Power)
    comms: Comms = Field(default_factory=Comms)

    @model_validator(mode="after")
    def _check(self) -> RoverSpec:
        if not self.mass_kg > 0:
            raise ValueError(f"mass_kg must be positive, got {self.mass_kg}")
        return self

    def assumptions(self) -> list[dict]:
        """Every value the rover file did not give: ``field`` (dotted), ``value``, ``source``."""
        return _assumptions(self, "")


def _assumptions(model: BaseModel, prefix: str) -> list[dict]:
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out += _assumptions(value, f"{prefix}{name}.")
        elif name not in model.model_fields_set:
            out.append({"field": prefix + name, "value": value, "source": (info.json_schema_extra or {})["source"]})
    return out


def load_rover(path: str | Path | None = None) -> RoverSpec:
    """The rover described by a YAML file (None: every default).

    Raises DataFormatError for a missing or unreadable file, ModelConfigError naming the field
    for an unknown key or a bad value.
    """
    if path is None:
        return RoverSpec()
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DataFormatError(f"cannot read the rover file {path}: {exc.strerror}; check the path") from None
    except yaml.YAMLError as exc:
        raise DataFormatError(f"the rover file {path} is not valid YAML: {exc}") from None
    try:
        return RoverSpec.model_validate(document or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise ModelConfigError(f"rover file {path}: {field}: {message}") from None

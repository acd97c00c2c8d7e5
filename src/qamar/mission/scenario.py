"""The scenario file: one YAML document that describes a mission for ``qamar run``.

Every assumption a result depends on is a field here, with its source or the word
"assumption" in the scenario's ``assumptions`` list, so a reader of the report sees what was
taken and a user can change it. Validation errors name the field and the line of the file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from qamar.comms import CommsSpec
from qamar.errors import DataFormatError, DataNotFoundError
from qamar.orbit.dispersion import Dispersion
from qamar.payload.camera import PayloadSpec


def _utc_aware(value: object) -> object:
    # YAML turns unquoted ISO stamps into naive datetimes; they are UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(_utc_aware)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spacecraft(_Strict):
    """Spacecraft properties for solar radiation pressure (cannonball model)."""

    name: str = "spacecraft"
    mass_kg: float = Field(gt=0)
    area_m2: float = Field(gt=0, description="cross-section facing the Sun, m^2")
    cr: float = Field(ge=1.0, le=2.0, description="radiation pressure coefficient, 1 absorbs, 2 mirrors")


class Orbit(_Strict):
    """Initial orbit from apsis altitudes over the 1737.4 km sphere and angles in degrees."""

    epoch_utc: UtcDatetime
    peri_alt_km: float
    apo_alt_km: float
    inc_deg: float = Field(ge=0, le=180)
    raan_deg: float = 0.0
    argp_deg: float = 0.0
    ta_deg: float = 0.0
    frame: Literal["moon-icrf", "moon-pa"] = "moon-icrf"

    @model_validator(mode="after")
    def _apsides_ordered(self) -> Orbit:
        if self.peri_alt_km <= 0:
            raise ValueError(f"peri_alt_km = {self.peri_alt_km} puts periapsis at or below the surface; give a positive altitude in km")
        if self.apo_alt_km < self.peri_alt_km:
            raise ValueError("apo_alt_km is below peri_alt_km; swap them")
        return self


class OemOrbit(_Strict):
    """Initial orbit read from a Moon-centred CCSDS OEM (an orbit-determination product, say):
    the file's first state, or its state interpolated at ``epoch_utc`` (see
    :func:`qamar.orbit.trajectory.initial_state_from_oem`). It becomes an :class:`Orbit` of
    osculating elements in ``frame``, which give the state back exactly."""

    oem: Path
    epoch_utc: UtcDatetime | None = None
    frame: Literal["moon-icrf", "moon-pa"] = "moon-icrf"

    def to_orbit(self, gm_km3_s2: float, base_dir: Path = Path(".")) -> Orbit:
        """The Orbit of the OEM's state, elements computed with ``gm_km3_s2`` (the propagation's
        GM); a relative ``oem`` path is taken from ``base_dir``. Raises DataFormatError or
        EpochOutOfRangeError for the file, InvalidOrbitError for an unbound state."""
        from qamar.orbit.elements import apsides_from_state
        from qamar.orbit.trajectory import initial_state_from_oem
        from qamar.time import tdb_s_to_utc

        path = self.oem if self.oem.is_absolute() else base_dir / self.oem
        if not path.is_file():
            raise DataNotFoundError(f"OEM file {path} does not exist; give its path (relative to the scenario's folder).")
        epoch = None if self.epoch_utc is None else self.epoch_utc.isoformat().replace("+00:00", "Z")
        t_tdb_s, state = initial_state_from_oem(path, epoch)
        elements = apsides_from_state(state[:3], state[3:], gm_km3_s2, frame=self.frame, t_tdb_s=t_tdb_s)
        return Orbit(epoch_utc=epoch or tdb_s_to_utc(t_tdb_s), frame=self.frame, **elements)


class Forces(_Strict):
    """Force model: lunar gravity field and degree, third bodies and solar radiation pressure."""

    gravity: str = "grgm1200a"
    degree: int = Field(default=100, ge=0)
    third_bodies: tuple[Literal["earth", "sun"], ...] = ("earth", "sun")
    srp: bool = True


class Propagation(_Strict):
    """How long and how precisely to propagate."""

    duration_days: float = Field(gt=0)
    rtol: float = Field(default=1e-12, gt=0, lt=1e-3)
    altitude_thresholds_km: tuple[float, ...] = ()
    output_step_s: float = Field(default=60.0, gt=0, description="sampling of the OEM and CSV products")


class LifetimeStudy(_Strict):
    """The lifetime analysis of the report: the nominal orbit to impact or the horizon with the
    scenario's force model, and a dispersion study of ``members`` orbits on Dask."""

    horizon_days: float = Field(default=1095.0, gt=0)
    members: int = Field(default=100, ge=0, description="0 skips the dispersion study")
    degree: int = Field(default=50, ge=0, description="gravity degree of the members (the nominal run uses forces.degree)")
    rtol: float = Field(default=1e-10, gt=0, lt=1e-3)
    dispersion: Dispersion = Dispersion()


class Scenario(_Strict):
    """A whole mission scenario as read from YAML."""

    name: str
    description: str = ""
    spacecraft: Spacecraft
    orbit: Orbit
    forces: Forces = Forces()
    propagation: Propagation
    comms: CommsSpec | None = None
    payload: PayloadSpec | None = None
    lifetime: LifetimeStudy | None = None
    assumptions: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _orbit_from_oem(cls, data: object, info: ValidationInfo) -> object:
        # An orbit given as {oem: FILE, ...} becomes osculating elements with the GM of the
        # scenario's gravity field, so it propagates from the file's state exactly.
        orbit = data.get("orbit") if isinstance(data, dict) else None
        if not (isinstance(orbit, dict) and "oem" in orbit):
            return data
        from qamar.orbit.gravity import load_field

        try:
            source = OemOrbit.model_validate(orbit)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in ("orbit", *first["loc"]))
            raise ValueError(f"{where}: {first['msg']} (an orbit read from an OEM takes oem, epoch_utc and frame)") from None
        forces = Forces.model_validate(data.get("forces") or {})
        base_dir = (info.context or {}).get("base_dir", Path("."))
        return {**data, "orbit": source.to_orbit(load_field(forces.gravity, 0).gm_km3_s2, base_dir)}


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file.

    Raises DataFormatError naming the file, the field and its line when the file is missing,
    is not YAML, or does not match the schema.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataFormatError(f"cannot read scenario {path}: {exc.strerror}; check the path") from None
    try:
        document = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise DataFormatError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(document, dict):
        raise DataFormatError(f"{path} must be a YAML mapping with keys name, spacecraft, orbit, propagation")
    try:
        return Scenario.model_validate(document, context={"base_dir": path.parent})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        line = _line_of(tree, first["loc"])
        where = f", line {line}" if line else ""
        message = first["msg"].removeprefix("Value error, ")
        raise DataFormatError(f"{path}: field '{field}'{where}: {message}") from None


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the deepest YAML node on the path ``loc`` (None if not found)."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line

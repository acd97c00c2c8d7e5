"""The scenario file: one YAML document that describes a mission for ``qamar run``.

A scenario describes an orbiter (``spacecraft``, ``orbit``, ``propagation`` and optionally
``comms``, ``payload``, ``lifetime``), a rover at a landing site (``rover``: the site DEM, the
rover, the lander, the site's light and PSRs, the planned traverse), or both; it must have at
least an ``orbit`` or a ``rover`` block.

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
    field_validator,
    model_validator,
)

from qamar.comms import CommsSpec
from qamar.errors import DataFormatError, DataNotFoundError
from qamar.orbit.dispersion import Dispersion
from qamar.payload.camera import PayloadSpec
from qamar.rover.model import RoverSpec


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


class LatLon(_Strict):
    """A point on the Moon: planetocentric latitude and east longitude (deg, MOON_ME)."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float


class RoverSite(_Strict):
    """The landing site's terrain and how its horizons and maps are computed.

    ``dem`` and ``far_dem`` are data keys of :mod:`qamar.data` (e.g. ``dem_site01_10m``) or
    GeoTIFF paths (relative to the scenario's folder), in one polar stereographic CRS.
    ``window_px`` crops the site DEM to (col_off, row_off, width, height) pixels; the site
    light and PSR maps are computed on ``map_factor`` x ``map_factor`` block means (1: every
    pixel) for an observer ``observer_height_m`` above the ground (None: the rover's mast,
    ``comms.rover_antenna_height_m``).
    """

    dem: str
    far_dem: str | None = None
    window_px: tuple[int, int, int, int] | None = None
    map_factor: int = Field(default=1, ge=1)
    observer_height_m: float | None = Field(default=None, ge=0)
    azimuths: int = Field(default=360, ge=8)
    horizon_km: float = Field(default=150.0, gt=0)

    @field_validator("dem", "far_dem")
    @classmethod
    def _relative_to_scenario(cls, name: str | None, info: ValidationInfo) -> str | None:
        # a path (not a data key) is taken from the scenario's folder
        from qamar import data

        if name is None or name in data.REGISTRY or Path(name).is_absolute():
            return name
        return str(((info.context or {}).get("base_dir", Path(".")) / name).resolve())

    @field_validator("window_px")
    @classmethod
    def _window(cls, window: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if window is not None:
            col, row, width, height = window
            if col < 0 or row < 0 or width < 2 or height < 2:
                raise ValueError(f"window_px = {list(window)}: give [col_off, row_off, width, height] with "
                                 "offsets >= 0 and a size of at least 2 x 2 pixels")
        return window


class SiteLight(_Strict):
    """The span of the site's light maps (Sun fraction, Earth fraction, longest night)."""

    start_utc: UtcDatetime
    days: float = Field(gt=0)
    step_h: float = Field(default=1.0, gt=0)


class SitePsr(_Strict):
    """Permanently shadowed regions of the site, over ``years`` from ``start_utc`` (a precession
    cycle is 18.6 years), Sun envelope sampled every ``lon_step_deg`` of solar longitude.
    ``mode`` is how the traverse treats them: 'hazard' (kept out), 'target' (drivable) or
    'ignore' (not passed to the planner)."""

    start_utc: UtcDatetime = datetime(2024, 1, 1, tzinfo=UTC)
    years: float = Field(default=18.6, gt=0)
    lon_step_deg: float = Field(default=0.1, gt=0)
    mode: Literal["hazard", "target", "ignore"] = "hazard"


class Lander(_Strict):
    """The lander: its position (its antenna height is the rover's ``comms.lander_antenna_height_m``)."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float


class Traverse(_Strict):
    """The planned traverse: from ``start`` through ``targets`` (in order) to ``goal``, beginning
    at ``start_utc``, light over ``days`` in steps of ``step_h``; the rover must then be able to
    stay ``haven_h`` hours at the goal (a lit safe haven). ``max_slope_deg`` overrides the
    rover's limit; ``plan_factor`` is the planning block size in DEM pixels (None: automatic);
    ``detour`` multiplies block drive times (see :func:`qamar.rover.spacetime.plan_spacetime`)."""

    start: LatLon
    targets: tuple[LatLon, ...] = ()
    goal: LatLon
    start_utc: UtcDatetime
    days: float = Field(gt=0)
    step_h: float = Field(default=1.0, gt=0)
    haven_h: float = Field(default=0.0, ge=0)
    max_slope_deg: float | None = Field(default=None, gt=0, lt=90)
    plan_factor: int | None = Field(default=None, ge=1)
    detour: float = Field(default=1.1, ge=1.0)
    craters: bool = True


class RoverMission(_Strict):
    """A rover at a landing site: the site, the rover (``vehicle``: a rover YAML path relative to
    the scenario's folder, an inline mapping of :class:`qamar.rover.model.RoverSpec`, or absent
    for every documented default), the lander, the light span, the PSRs and the traverse."""

    site: RoverSite
    vehicle: RoverSpec = Field(default_factory=RoverSpec)
    lander: Lander | None = None
    light: SiteLight
    psr: SitePsr | None = Field(default_factory=SitePsr)
    traverse: Traverse

    @model_validator(mode="before")
    @classmethod
    def _vehicle_file(cls, data: object, info: ValidationInfo) -> object:
        # vehicle: FILE reads the rover YAML (qamar.rover.model.load_rover) from the scenario's folder
        vehicle = data.get("vehicle") if isinstance(data, dict) else None
        if not isinstance(vehicle, str):
            return data
        from qamar.errors import QamarError
        from qamar.rover.model import load_rover

        base_dir = (info.context or {}).get("base_dir", Path("."))
        path = Path(vehicle) if Path(vehicle).is_absolute() else base_dir / vehicle
        try:
            return {**data, "vehicle": load_rover(path)}
        except QamarError as exc:
            raise ValueError(str(exc)) from None


class Scenario(_Strict):
    """A whole mission scenario as read from YAML: an orbiter, a rover, or both."""

    name: str
    description: str = ""
    spacecraft: Spacecraft | None = None
    orbit: Orbit | None = None
    forces: Forces = Forces()
    propagation: Propagation | None = None
    comms: CommsSpec | None = None
    payload: PayloadSpec | None = None
    lifetime: LifetimeStudy | None = None
    rover: RoverMission | None = None
    assumptions: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _orbiter_or_rover(self) -> Scenario:
        if self.orbit is None and self.rover is None:
            raise ValueError("a scenario needs an orbit block (an orbiter), a rover block (a rover at a landing "
                             "site) or both: see scenarios/icube-q.yaml and scenarios/change8-rover.yaml")
        if self.orbit is not None:
            missing = [name for name in ("spacecraft", "propagation") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"an orbit needs {' and '.join(missing)} too: add the block(s) (see "
                                 "scenarios/icube-q.yaml)")
        else:
            given = [name for name in ("spacecraft", "propagation", "comms", "payload", "lifetime")
                     if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} describe(s) an orbiter: add an orbit block or remove them")
        return self

    def require_orbit(self, command: str) -> Orbit:
        """The scenario's orbit; DataFormatError saying that ``command`` needs one if it has none
        (a rover-only scenario)."""
        if self.orbit is None:
            raise DataFormatError(f"scenario {self.name!r} has no orbit block (it describes a rover): {command} needs "
                                  "an orbiter scenario such as scenarios/icube-q.yaml")
        return self.orbit

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
        raise DataFormatError(f"{path} must be a YAML mapping with keys name and orbit (with spacecraft, "
                              "propagation) or rover")
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
    """1-based line of the deepest YAML node on the path ``loc`` (None if not found; the
    document's first line for the top level)."""
    line = node.start_mark.line + 1 if node is not None and not loc else None
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

"""Earth stations and the data link: who sees the orbiter, how fast it can talk, what piles up.

- :mod:`qamar.comms.stations`: the mission-brief stations and user-defined ones (WGS84).
- :mod:`qamar.comms.earth`: Earth orientation (IAU 2006/2000A, ERA) through ERFA.
- :mod:`qamar.comms.visibility`: elevation, range, light time, range rate, Doppler; windows
  above a mask and clear of the Moon; passes.
- :mod:`qamar.comms.link`: link budget, data rate and volume.
- :mod:`qamar.comms.budget`: downlink schedule and on-board backlog; contact products.
- :mod:`qamar.comms.plots`: contact timeline and backlog plots.

:class:`CommsSpec` is the ``comms:`` block of a scenario.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qamar.comms.budget import DownlinkPolicy
from qamar.comms.link import Radio
from qamar.comms.stations import STATIONS, Station, station
from qamar.errors import DataFormatError


class CommsSpec(BaseModel):
    """Ground segment and radio of a scenario.

    ``stations``: names from :data:`~qamar.comms.stations.STATIONS` or full definitions
    (name, lat_deg, lon_deg, dish_m...); after validation every entry is a
    :class:`~qamar.comms.stations.Station`. ``min_elev_deg``: elevation mask.
    ``dut1_s``: UT1 - UTC (0 unless given; see :mod:`qamar.comms.earth`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stations: tuple[Station | str, ...] = tuple(STATIONS.values())
    min_elev_deg: float = Field(default=10.0, ge=-5.0, le=90.0)
    dut1_s: float = Field(default=0.0, ge=-0.9, le=0.9)
    radio: Radio = Radio()
    downlink: DownlinkPolicy = DownlinkPolicy()

    @field_validator("stations")
    @classmethod
    def _resolve(cls, entries: tuple[Station | str, ...]) -> tuple[Station, ...]:
        try:
            resolved = tuple(station(e) if isinstance(e, str) else e for e in entries)
        except DataFormatError as exc:
            raise ValueError(str(exc)) from None
        names = [s.name.lower() for s in resolved]
        if not resolved or len(set(names)) != len(names):
            raise ValueError("give at least one station, each name once")
        return resolved


__all__ = ["STATIONS", "CommsSpec", "DownlinkPolicy", "Radio", "Station", "station"]

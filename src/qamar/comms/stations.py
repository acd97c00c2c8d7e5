"""Earth ground stations: where they are (WGS84 geodetic -> ITRF) and what they can hear.

A :class:`Station` is a pydantic model, so the same object is built in Python, listed in a
scenario's ``comms.stations`` block or taken by name from :data:`STATIONS`, the stations of
``mission-brief.md`` section 4:

========================  =============  ==============  ======  ==================================
station                   latitude       longitude       height  dish
========================  =============  ==============  ======  ==================================
Kashgar (China DSN)       38.4214 N      76.7144 E       0 *     35 m (array of four since 2020)
Jiamusi (China DSN)       46.4939 N      130.7706 E      0 *     66 m (some sources: 64 m)
Neuquen (Espacio Lejano)  38.1914 S      70.1495 W       0 *     35 m
New Norcia DSA-1 (ESA)    31.0482 S      116.1915 E      252 m   35 m
Cebreros DSA-2 (ESA)      40.4527 N      4.3675 W        0 *     35 m
Malargue DSA-3 (ESA)      35.7760 S      69.3982 W       1550 m  35 m
SUPARCO Karachi           24.8607 N      67.0011 E       0 *     assumption (city centre, 12 m)
IST Islamabad             33.6844 N      73.0479 E       0 *     assumption (city centre, 12 m)
========================  =============  ==============  ======  ==================================

``*`` height not given in the brief: 0 m on the ellipsoid. Real sites sit up to ~1.3 km higher
(Kashgar); a 1.3 km radial error moves the topocentric direction of the Moon by
1.3 / 384,400 rad = 0.7 arcsec, i.e. AOS/LOS by well under 0.1 s. The two Pakistani sites
are city coordinates because the antennas' positions are not published.

Receiving performance (dish diameter, aperture efficiency, system noise temperature) feeds
:func:`qamar.comms.link.g_over_t_db_k`. The per-size values are assumptions chosen to land on
published figures: a 35 m X-band deep-space antenna with efficiency 0.60 and a 45 K system
(G/T = 51.0 dB/K at 8.4 GHz) sits between the ESA DSA X-band G/T of about 50 dB/K (ESA ESTRACK
facilities, DSA-1/2/3) and the DSN 34 m BWG value of about 53 dB/K (DSN 810-005 module 104,
X-band gain ~68 dBi over an operating noise temperature of ~25-30 K at high elevation). The
same assumptions give 56.5 dB/K for the 66 m Jiamusi dish (Kashgar's four-dish array is
counted as one 35 m dish, a conservative choice). The Pakistani stations are taken as 12 m
X-band dishes with efficiency 0.55 and a 150 K system (G/T = 36.1 dB/K), a regional
earth-observation class of station; nothing about them is published.
"""

from __future__ import annotations

import difflib

import erfa
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from qamar.errors import DataFormatError

# ERFA's identifier of the WGS84 ellipsoid (eraGd2gc note 1).
_ERFA_WGS84 = 1


class Station(BaseModel):
    """A ground station: WGS84 geodetic position and X-band receiving performance.

    ``lat_deg`` geodetic latitude, ``lon_deg`` east longitude (either -180..180 or 0..360),
    ``height_m`` above the WGS84 ellipsoid. ``dish_m``, ``aperture_efficiency`` and
    ``system_noise_k`` (operating system noise temperature at the downlink frequency) give the
    station's G/T. ``source`` says where the numbers come from or that they are assumed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    lat_deg: float = Field(ge=-90.0, le=90.0)
    lon_deg: float = Field(ge=-180.0, le=360.0)
    height_m: float = Field(default=0.0, ge=-500.0, le=9000.0)
    dish_m: float = Field(gt=0.0, description="antenna diameter, m")
    aperture_efficiency: float = Field(default=0.60, gt=0.0, le=1.0)
    system_noise_k: float = Field(default=45.0, gt=0.0, description="operating system noise temperature, K")
    source: str = ""

    @property
    def r_itrf_km(self) -> np.ndarray:
        """Position in the ITRF (Earth-fixed, WGS84), km: shape (3,)."""
        xyz_m = erfa.gd2gc(_ERFA_WGS84, np.radians(self.lon_deg), np.radians(self.lat_deg), self.height_m)
        return np.asarray(xyz_m, dtype=float) / 1000.0

    @property
    def enu_from_itrf(self) -> np.ndarray:
        """Rotation ITRF -> local east/north/up (geodetic vertical): rows e, n, u; shape (3, 3)."""
        lat, lon = np.radians(self.lat_deg), np.radians(self.lon_deg)
        sin_lat, cos_lat, sin_lon, cos_lon = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
        return np.array([
            [-sin_lon, cos_lon, 0.0],
            [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
            [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
        ])


_DEEP_SPACE_35M = "35 m X-band: efficiency 0.60 and 45 K are assumptions matched to published ESA/DSN G/T (about 50-53 dB/K)"
_ZERO_HEIGHT = "height not given in mission-brief.md: 0 m on the WGS84 ellipsoid"

STATIONS: dict[str, Station] = {
    s.name.lower(): s
    for s in (
        Station(name="Kashgar", lat_deg=38.4214, lon_deg=76.7144, dish_m=35.0,
                source=f"mission-brief.md (China DSN; array of four 35 m dishes, counted as one); {_ZERO_HEIGHT}; {_DEEP_SPACE_35M}"),
        Station(name="Jiamusi", lat_deg=46.4939, lon_deg=130.7706, dish_m=66.0,
                source=f"mission-brief.md (China DSN, 66 m; some sources 64 m); {_ZERO_HEIGHT}; efficiency 0.60 and 45 K assumed as for 35 m"),
        Station(name="Neuquen", lat_deg=-38.1914, lon_deg=-70.1495, dish_m=35.0,
                source=f"mission-brief.md (Espacio Lejano, China DSN in Argentina); {_ZERO_HEIGHT}; {_DEEP_SPACE_35M}"),
        Station(name="New Norcia", lat_deg=-31.0482, lon_deg=116.1915, height_m=252.0, dish_m=35.0,
                source=f"mission-brief.md (ESA DSA-1, 252 m altitude); {_DEEP_SPACE_35M}"),
        Station(name="Cebreros", lat_deg=40.4527, lon_deg=-4.3675, dish_m=35.0,
                source=f"mission-brief.md (ESA DSA-2); {_ZERO_HEIGHT}; {_DEEP_SPACE_35M}"),
        Station(name="Malargue", lat_deg=-35.7760, lon_deg=-69.3982, height_m=1550.0, dish_m=35.0,
                source=f"mission-brief.md (ESA DSA-3, 1,550 m altitude); {_DEEP_SPACE_35M}"),
        Station(name="Karachi", lat_deg=24.8607, lon_deg=67.0011, dish_m=12.0, aperture_efficiency=0.55,
                system_noise_k=150.0,
                source=f"assumption: SUPARCO station at Karachi city coordinates (not published); {_ZERO_HEIGHT}; "
                       "12 m X-band dish, efficiency 0.55, 150 K assumed"),
        Station(name="Islamabad", lat_deg=33.6844, lon_deg=73.0479, dish_m=12.0, aperture_efficiency=0.55,
                system_noise_k=150.0,
                source=f"assumption: IST station at Islamabad city coordinates (not published); {_ZERO_HEIGHT}; "
                       "12 m X-band dish, efficiency 0.55, 150 K assumed"),
    )
}
"""The mission-brief stations by lower-case name."""


def station(name: str) -> Station:
    """The catalogue station called ``name`` (case-insensitive; 'new-norcia' = 'New Norcia').

    Raises DataFormatError for an unknown name, suggesting close matches.
    """
    key = name.strip().lower().replace("-", " ").replace("_", " ")
    if key in STATIONS:
        return STATIONS[key]
    close = difflib.get_close_matches(key, list(STATIONS), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(STATIONS[c].name for c in close)}? " if close else ""
    raise DataFormatError(
        f"unknown ground station {name!r}: {hint}known stations are "
        f"{', '.join(s.name for s in STATIONS.values())}; or define one with name, lat_deg, lon_deg and dish_m"
    )

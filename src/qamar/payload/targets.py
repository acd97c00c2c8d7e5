"""Imaging targets and regions: named features from the IAU gazetteer, points, polygons, bands.

Coordinates are planetocentric MOON_ME latitude and east longitude in degrees. The gazetteer
(``qamar.data`` key ``gazetteer``, IAU/USGS Gazetteer of Planetary Nomenclature) gives
"planetographic" centres; for the Moon, whose IAU reference surface is a sphere, planetographic
and planetocentric latitudes are the same. A named feature becomes a circle of its catalogue
diameter around its centre.

A target is imaged when its centre (or, on request, its whole outline) is in a footprint; as a
region it answers ``contains(lat, lon)`` for coverage percentages. Polygons are spherical (great
circle edges), tested in the gnomonic projection about their centre, where great circles are
straight lines; they must lie within a hemisphere.
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from qamar import data
from qamar.constants import MOON_RADIUS_KM
from qamar.errors import DataFormatError, QamarError
from qamar.frames import body_vector_from_lat_lon, lat_lon_deg

_OUTLINE_POINTS = 16


class TargetNotFoundError(QamarError):
    """A target name that is not in the gazetteer."""


@dataclass(frozen=True)
class Target:
    """A point, a circular feature, a spherical polygon or a latitude band on the Moon (MOON_ME).

    ``kind`` is 'point', 'feature', 'polygon' or 'band'. ``outline_lat_deg``/``outline_lon_deg``
    are the outline vertices (empty for a point; for a band the two bounding latitudes are in
    ``band_deg``). ``diameter_km`` is the feature diameter (0 otherwise).
    """

    name: str
    kind: str
    lat_deg: float
    lon_deg: float
    diameter_km: float = 0.0
    outline_lat_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    outline_lon_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    band_deg: tuple[float, float] | None = None

    def points_me_km(self, radius_km: float = MOON_RADIUS_KM) -> np.ndarray:
        """Centre then outline vertices as ME vectors (km) on the sphere: (1 + m, 3)."""
        lat = np.concatenate([[self.lat_deg], self.outline_lat_deg])
        lon = np.concatenate([[self.lon_deg], self.outline_lon_deg])
        return body_vector_from_lat_lon(lat, lon, radius_km)

    def contains(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
        """Boolean array: which (lat, lon) points (deg) lie in the target's area (none for a point)."""
        lat = np.asarray(lat_deg, float)
        lon = np.asarray(lon_deg, float)
        if self.kind == "point":
            return np.zeros(np.broadcast(lat, lon).shape, dtype=bool)
        if self.kind == "band":
            lo, hi = self.band_deg
            return np.broadcast_to((lat >= lo) & (lat <= hi), np.broadcast(lat, lon).shape)
        if self.kind == "feature":
            return _central_angle_deg(self.lat_deg, self.lon_deg, lat, lon) <= np.degrees(
                self.diameter_km / 2.0 / MOON_RADIUS_KM)
        return _in_spherical_polygon(self, lat, lon)


def _central_angle_deg(lat1, lon1, lat2, lon2) -> np.ndarray:
    p1 = body_vector_from_lat_lon(lat1, lon1, 1.0)
    p2 = body_vector_from_lat_lon(lat2, lon2, 1.0)
    return np.degrees(np.arccos(np.clip(np.sum(p1 * p2, axis=-1), -1.0, 1.0)))


def _gnomonic(centre: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gnomonic (x, y) of unit vectors p about unit ``centre``, and the cosine of the distance."""
    east = np.cross([0.0, 0.0, 1.0], centre)
    if np.linalg.norm(east) < 1e-12:
        east = np.array([0.0, 1.0, 0.0])
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    cos_c = p @ centre
    with np.errstate(divide="ignore", invalid="ignore"):
        return (p @ east) / cos_c, (p @ north) / cos_c, cos_c


def _in_spherical_polygon(target: Target, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as MplPath

    centre = body_vector_from_lat_lon(target.lat_deg, target.lon_deg, 1.0)
    vx, vy, _ = _gnomonic(centre, body_vector_from_lat_lon(target.outline_lat_deg, target.outline_lon_deg, 1.0))
    shape = np.broadcast(lat, lon).shape
    px, py, cos_c = _gnomonic(centre, body_vector_from_lat_lon(lat, lon, 1.0).reshape(-1, 3))
    front = cos_c > 0.0
    inside = np.zeros(len(cos_c), dtype=bool)
    inside[front] = MplPath(np.column_stack([vx, vy])).contains_points(np.column_stack([px[front], py[front]]))
    return inside.reshape(shape)


def point(lat_deg: float, lon_deg: float, name: str | None = None) -> Target:
    """A point target at planetocentric (lat, lon) degrees. Raises ValueError off the globe."""
    if not (-90.0 <= lat_deg <= 90.0 and np.isfinite(lon_deg)):
        raise ValueError(f"latitude {lat_deg} must lie in -90..90 and longitude {lon_deg} be finite")
    lon = (lon_deg + 180.0) % 360.0 - 180.0
    return Target(name or f"{lat_deg:.4f},{lon:.4f}", "point", float(lat_deg), float(lon))


def circle(lat_deg: float, lon_deg: float, diameter_km: float, name: str) -> Target:
    """A circular feature: outline of 16 points at diameter/2 great-circle distance from the centre."""
    if not diameter_km > 0:
        raise ValueError(f"the diameter of {name!r} must be positive, got {diameter_km} km")
    centre = body_vector_from_lat_lon(lat_deg, lon_deg, 1.0)
    east = np.cross([0.0, 0.0, 1.0], centre)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-12 else np.array([0.0, 1.0, 0.0])
    north = np.cross(centre, east)
    angle = diameter_km / 2.0 / MOON_RADIUS_KM
    az = np.linspace(0.0, 2 * np.pi, _OUTLINE_POINTS, endpoint=False)
    ring = np.cos(angle) * centre + np.sin(angle) * (np.cos(az)[:, None] * north + np.sin(az)[:, None] * east)
    lat, lon = lat_lon_deg(ring)
    c_lat, c_lon = lat_lon_deg(centre)
    return Target(name, "feature", c_lat, c_lon, float(diameter_km), np.asarray(lat), np.asarray(lon))


def polygon(lat_deg, lon_deg, name: str = "polygon") -> Target:
    """A spherical polygon from vertex latitudes/longitudes (deg), at least three, within a hemisphere.

    Its centre is the normalised mean of the vertices. Raises ValueError otherwise.
    """
    lat = np.asarray(lat_deg, float)
    lon = np.asarray(lon_deg, float)
    if lat.shape != lon.shape or lat.ndim != 1 or len(lat) < 3:
        raise ValueError(f"polygon {name!r} needs at least three (lat, lon) vertices")
    p = body_vector_from_lat_lon(lat, lon, 1.0)
    mean = p.mean(axis=0)
    if np.linalg.norm(mean) < 1e-9 or np.any(p @ (mean / np.linalg.norm(mean)) <= 0.0):
        raise ValueError(f"polygon {name!r} does not fit within a hemisphere; split it")
    c_lat, c_lon = lat_lon_deg(mean)
    return Target(name, "polygon", c_lat, c_lon, 0.0, lat, (lon + 180.0) % 360.0 - 180.0)


def band(lat_min_deg: float, lat_max_deg: float, name: str | None = None) -> Target:
    """A latitude band (e.g. ``band(-90, -80)``: the south polar region poleward of 80 S)."""
    if not -90.0 <= lat_min_deg < lat_max_deg <= 90.0:
        raise ValueError(f"band latitudes {lat_min_deg}..{lat_max_deg} must increase within -90..90")
    centre = 90.0 if lat_max_deg == 90.0 else -90.0 if lat_min_deg == -90.0 else 0.5 * (lat_min_deg + lat_max_deg)
    return Target(name or f"lat {lat_min_deg:g}..{lat_max_deg:g}", "band", centre, 0.0,
                  band_deg=(float(lat_min_deg), float(lat_max_deg)))


def _key(name: str) -> str:
    """Case-, accent- and spacing-insensitive form of a name."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().replace("-", " ").split())


@functools.cache
def _gazetteer() -> dict[str, tuple[str, float, float, float]]:
    path = data.path("gazetteer")
    out = {}
    with open(path, newline="", encoding="utf-8") as stream:
        for line, row in enumerate(csv.DictReader(stream), start=2):
            try:
                name = row["Feature_Name"].strip()
                diameter = float(row["Diameter"] or 0.0)
                lat, lon = float(row["Center_Latitude"]), float(row["Center_Longitude"])
            except (KeyError, ValueError, TypeError, AttributeError):
                raise DataFormatError(f"{path}, line {line}: expected Feature_Name, Diameter, Center_Latitude "
                                      "and Center_Longitude; use the registered gazetteer") from None
            out[_key(name)] = (name, diameter, lat, lon)
    return out


def feature(name: str) -> Target:
    """The IAU-named feature ``name`` (case, accents and spacing ignored) as a circular target.

    Features without a diameter become points. Raises TargetNotFoundError with the closest
    names when there is no such feature.
    """
    table = _gazetteer()
    key = _key(name)
    if key not in table:
        close = difflib.get_close_matches(key, table.keys(), n=5, cutoff=0.6)
        hint = ("did you mean " + ", ".join(repr(table[c][0]) for c in close) + "?") if close else (
            "no similar name either; check the spelling or give a point by latitude and longitude.")
        raise TargetNotFoundError(f"no lunar feature is named {name!r} in the IAU gazetteer; {hint}")
    official, diameter, lat, lon = table[key]
    return circle(lat, lon, diameter, official) if diameter > 0 else point(lat, lon, official)


_LAT_LON = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?)\s*,\s*([-+]?\d+(?:\.\d*)?)\s*$")


def parse_target(text: str) -> Target:
    """A target from text: ``"LAT,LON"`` in degrees (a point) or an IAU feature name.

    Raises TargetNotFoundError (with close names) for an unknown feature.
    """
    match = _LAT_LON.match(text)
    return point(float(match[1]), float(match[2])) if match else feature(text)

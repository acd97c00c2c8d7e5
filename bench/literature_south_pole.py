"""qamar's south-pole PSRs and illumination on the 240 m LOLA DEM against the published studies.

A reproducible analysis, run by hand (14 minutes on 2 shared cores at load average 4-8 with
the full 0 m horizon map cached; computing that map first takes another ~15-30 minutes):

    QAMAR_DATA_DIR=../shared/data QAMAR_CACHE_DIR=/tmp/qamar_cache python bench/literature_south_pole.py [--write-doc]

It prints the comparison table (markdown) and with ``--write-doc`` puts it between the
``<!-- literature-table -->`` markers of docs/south-pole-light.md. Horizon maps of windows
(2 m and 10 m observers, the coarse far DEM, the 10 m Site01 DEM) are cached in ``$QAMAR_CACHE_DIR/literature``.

Published figures (each with the study's DEM, span and observer height; abstracts as cited):
- Mazarico et al. (2011), Icarus 211, 1066-1081: LOLA 240 m polar DEMs to 75 deg, horizons,
  PSRs (never any direct sunlight) totalling 16,055 km^2 in the south (maps to 80 S).
- Bussey et al. (2010), Icarus 208, 558-564: Kaguya LALT topography (not LOLA), year 2020,
  surface: most illuminated place 86 % of the year at 88.74 S 124.5 E "close to the rim of
  Shackleton"; two areas less than 10 km apart collectively lit 94 % of the year.
- Glaeser et al. (2014), Icarus 243, 78-90: LOLA 20 m DTM, a 19-year span (the precession
  cycle), connecting ridge (Shackleton - de Gerlache): 92.27 % at 2 m, 95.65 % at 10 m above
  the ground; longest darkness at those places "typically only 3-5 days".
- Glaeser et al. (2018), Planet. Space Sci. 162, 170-178: LOLA 20 m DTMs, hourly 2017-01-01
  to 2037-01-01, 50 x 50 km around each pole: surface averages of the best regions at both
  poles 69.5-82.9 % (82.9 % is the north, Whipple rim), at 2 m 77.1-88.0 % with the 88.0 %
  maximum on the Shackleton - de Gerlache ridge.
- PSR areas of named craters: the ``psr_craters`` catalogue (moonpies crater list; the areas
  carry no source column; Faustini's 664 km^2 is also in Williams et al. 2024, "The Faustini
  Permanently Shadowed Region on the Moon", Planetary Science Journal).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import scipy.ndimage
from affine import Affine
from rasterio.windows import Window

from qamar import data
from qamar.surface.horizon import (
    HorizonMap,
    compute_horizon,
    read_horizon,
    write_horizon,
)
from qamar.surface.illumination import (
    body_tracks,
    epochs_tdb_s,
    illumination_maps,
    point_series,
)
from qamar.surface.psr import find_psr, pixel_areas_km2, sun_envelope
from qamar.surface.terrain import (
    Dem,
    lat_lon_to_xy,
    pixel_lat_lon,
    read_dem,
    xy_to_pixel,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "south-pole-light.md"
MARK_BEGIN, MARK_END = "<!-- literature-table -->", "<!-- /literature-table -->"
N_AZ, MAX_KM = 360, 150.0  # horizon settings of every map here (far DEM beyond the 240 m DEM)
HORIZON_METHOD = "exact"  # every sample along every ray (the table was made so; "sweep" is faster)
R_KM = 1737.4

MAZARICO_PSR_SOUTH_KM2 = 16055.0
BUSSEY_POINT = (-88.74, 124.5)
BUSSEY_BEST_PCT, BUSSEY_PAIR_PCT, BUSSEY_PAIR_KM = 86.0, 94.0, 10.0
GLAESER2014_PCT = {2.0: 92.27, 10.0: 95.65}
GLAESER2014_NIGHT_D = (3.0, 5.0)
GLAESER2018_SURFACE_MAX_PCT, GLAESER2018_2M_MAX_PCT = 82.9, 88.0
SPAN_2018 = ("2017-01-01", "2037-01-01")  # Glaeser et al. 2018; also used for the 2014 figures (dates not given)
POLE_HALF_KM = 25.0  # Glaeser et al. 2018: 50 x 50 km centred on the pole
BUSSEY_HALF_KM = 45.0  # a square holding Bussey's point (38 km from the pole) and the Shackleton region
# crater centres and diameters (IAU gazetteer) that name the places of the best-lit pixels
SHACKLETON = (-89.67, 129.78, 20.92)
DE_GERLACHE = (-88.48, -88.34, 32.71)
RIDGE_DETOUR_KM = 4.0
SITE_HALF_PX = 60  # 1.2 km square of the 10 m Site01 DEM around the best 240 m ridge pixel


def cache_dir() -> Path:
    path = data.cache_dir() / "literature"
    path.mkdir(parents=True, exist_ok=True)
    return path


def full_horizon_path() -> Path:
    """The full 0 m horizon map of the 240 m DEM (as bench/bench_illumination.py caches it)."""
    return data.cache_dir() / "bench" / f"horizon_south_pole_240m_{N_AZ}az_{MAX_KM:g}km_obs0m.tif"


def pole_window(dem: Dem, half_km: float) -> Window:
    """Pixel window of the square of half-size ``half_km`` centred on the pole."""
    r0, c0 = (math.floor(v) for v in xy_to_pixel(-half_km * 1e3, half_km * 1e3, dem))
    r1, c1 = (math.ceil(v) for v in xy_to_pixel(half_km * 1e3, -half_km * 1e3, dem))
    return Window(c0, r0, c1 - c0, r1 - r0)


def window_horizon(dem: Dem, far: Dem, window: Window, observer_m: float) -> HorizonMap:
    """Horizon map of ``window`` of ``dem`` (read from the full 0 m map when cached, else
    computed and cached)."""
    if observer_m == 0.0 and full_horizon_path().exists():
        return read_horizon(full_horizon_path(), window=window)
    path = cache_dir() / (f"h_{window.col_off}_{window.row_off}_{window.width}x{window.height}_"
                          f"obs{observer_m:g}m_{HORIZON_METHOD}.tif")
    if path.exists():
        return read_horizon(path)
    hmap = compute_horizon(dem, far_dem=far, window=window, n_azimuths=N_AZ, max_distance_km=MAX_KM,
                           observer_height_m=observer_m, method=HORIZON_METHOD, progress=False)
    write_horizon(hmap, path)
    return hmap


def sub_dem(dem: Dem, window: Window) -> Dem:
    r, c = int(window.row_off), int(window.col_off)
    return Dem(dem.elevation_m[r:r + int(window.height), c:c + int(window.width)],
               dem.transform @ Affine.translation(c, r), dem.crs)


def arc_km(lat_deg, lon_deg, lat0_deg: float, lon0_deg: float) -> np.ndarray:
    """Great-circle distance (km) on the 1737.4 km sphere."""
    la, lo = np.radians(lat_deg), np.radians(lon_deg)
    la0, lo0 = math.radians(lat0_deg), math.radians(lon0_deg)
    c = np.sin(la) * math.sin(la0) + np.cos(la) * math.cos(la0) * np.cos(lo - lo0)
    return R_KM * np.arccos(np.clip(c, -1.0, 1.0))


def place_names(lat_deg, lon_deg) -> np.ndarray:
    """"Shackleton rim" within 1.5 km of its rim circle; "connecting ridge" farther out, outside
    de Gerlache's rim, where the path from Shackleton's centre via the point to de Gerlache's is
    at most RIDGE_DETOUR_KM longer than the direct one (the ridge bends toward 200-230 E, up to
    9 km off the line between the centres); else "elsewhere"."""
    d_shack = arc_km(lat_deg, lon_deg, *SHACKLETON[:2])
    d_gerl = arc_km(lat_deg, lon_deg, *DE_GERLACHE[:2])
    span = float(arc_km(SHACKLETON[0], SHACKLETON[1], *DE_GERLACHE[:2]))
    ridge = ((d_shack > SHACKLETON[2] / 2 + 1.5) & (d_gerl > DE_GERLACHE[2] / 2)
             & (d_shack + d_gerl < span + RIDGE_DETOUR_KM))
    return np.where(np.abs(d_shack - SHACKLETON[2] / 2) < 1.5, "Shackleton rim",
                    np.where(ridge, "connecting ridge", "elsewhere"))


def place_name(lat_deg: float, lon_deg: float) -> str:
    return str(place_names(lat_deg, lon_deg))


# ---------------------------------------------------------------------------------------
# PSRs
# ---------------------------------------------------------------------------------------


def psr_catalogue() -> list[dict]:
    """Craters of the ``psr_craters`` catalogue that give a PSR area and its centroid."""
    out = []
    with open(data.path("psr_craters"), newline="") as stream:
        for row in csv.DictReader(stream):
            if row["PSR Area (km^2)"] and row["PSR centroid Lat (deg)"] != "NaN":
                out.append({"name": row["Crater Name"], "area_km2": float(row["PSR Area (km^2)"]),
                            "lat_deg": float(row["PSR centroid Lat (deg)"]),
                            "lon_deg": float(row["PSR centroid Lon (deg)"]), "ref": row["Age Ref."]})
    return out


def region_at(labels: np.ndarray, dem: Dem, lat_deg: float, lon_deg: float, search_px: int = 4) -> int:
    """Label of the PSR region at a point, else the commonest within ``search_px`` pixels (0: none
    or outside)."""
    x, y = lat_lon_to_xy(lat_deg, lon_deg, dem)
    r, c = (round(float(v)) for v in xy_to_pixel(x, y, dem))
    ny, nx = labels.shape
    if not (0 <= r < ny and 0 <= c < nx):
        return 0
    if labels[r, c]:
        return int(labels[r, c])
    near = labels[max(0, r - search_px):r + search_px + 1, max(0, c - search_px):c + search_px + 1]
    near = near[near > 0]
    return int(np.bincount(near).argmax()) if near.size else 0


def crater_rows(mask: np.ndarray, dem: Dem) -> list[dict]:
    """qamar's area of the PSR region holding each catalogue crater's PSR centroid."""
    labels, _ = scipy.ndimage.label(mask)
    area = np.bincount(labels.ravel(), weights=pixel_areas_km2(dem).ravel())
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    rows = []
    for c in psr_catalogue():
        label = region_at(labels, dem, c["lat_deg"], c["lon_deg"])
        if label:
            rows.append({**c, "qamar_km2": float(area[label]), "at_dem_edge": label in edge})
    return rows


def band_areas(mask: np.ndarray, dem: Dem, bands_deg=(85.0, 87.5, 89.0)) -> dict:
    """PSR area poleward of each latitude band the DEM covers completely."""
    lat, _ = pixel_lat_lon(dem)
    edge = np.ones(mask.shape, bool)
    edge[1:-1, 1:-1] = False
    complete_deg = float(np.abs(lat[edge]).max())
    areas = pixel_areas_km2(dem)
    return {b: float(areas[(np.abs(lat) >= b) & mask].sum()) for b in bands_deg if b > complete_deg}


def far_dem_psr(far: Dem, envelope) -> dict:
    """PSR areas (km^2) poleward of 80/85 deg on the coarse far DEM (1787 m), its own horizons."""
    half_px = 172  # 80 S is 303 km from the pole: 170 pixels
    cy, cx = (round(float(v)) for v in xy_to_pixel(0.0, 0.0, far))
    window = Window(cx - half_px, cy - half_px, 2 * half_px, 2 * half_px)
    path = cache_dir() / f"h_far_1787m_80S_obs0m_{HORIZON_METHOD}.tif"
    if path.exists():
        hmap = read_horizon(path)
    else:
        hmap = compute_horizon(far, window=window, n_azimuths=N_AZ, max_distance_km=MAX_KM, method=HORIZON_METHOD,
                               progress=False)
        write_horizon(hmap, path)
    dem = sub_dem(far, window)
    result = find_psr(dem, hmap, envelope=envelope, progress=False)
    lat, _ = pixel_lat_lon(dem)
    a = result.pixel_area_km2
    return {b: float(a[(np.abs(lat) >= b) & result.mask].sum()) for b in (80.0, 85.0)}


# ---------------------------------------------------------------------------------------
# Illumination
# ---------------------------------------------------------------------------------------


def best_pixels(fraction: np.ndarray, dem: Dem, night_h: np.ndarray) -> dict:
    """The best-lit pixel overall and per named place: fraction, lat/lon, longest night (days)."""
    lat, lon = pixel_lat_lon(dem)
    names = place_names(lat, lon)
    out = {}
    for name in ("overall", "connecting ridge", "Shackleton rim"):
        pick = np.isfinite(fraction) if name == "overall" else (names == name)
        k = int(np.argmax(np.where(pick, fraction, -1.0)))
        r, c = divmod(k, fraction.shape[1])
        out[name] = {"pct": 100 * float(fraction[r, c]), "lat": float(lat[r, c]), "lon": float(lon[r, c]) % 360,
                     "night_d": float(night_h[r, c]) / 24, "place": names[r, c], "row": r, "col": c}
    return out


def any_part_pct(dem: Dem, hmap: HorizonMap, where: dict, tracks) -> float:
    """Percentage of samples with any part of the disc visible at a pixel."""
    series = point_series(dem, hmap, where["lat"], where["lon"], tracks)
    return 100 * float((series.sun_fraction > 0).mean())


def bussey_comparison(dem: Dem, far: Dem) -> dict:
    """Year 2020 hourly at the surface: the pixel at Bussey's point, the best within 5 km of it,
    the best overall, and the best pair of pixels within 10 km lit together (disc-weighted
    union: the larger of the two visible fractions at each hour)."""
    window = pole_window(dem, BUSSEY_HALF_KM)
    d = sub_dem(dem, window)
    hmap = window_horizon(dem, far, window, 0.0)
    tracks = body_tracks(epochs_tdb_s("2020-01-01", "2021-01-01", 1.0))
    maps = illumination_maps(d, hmap, tracks, with_earth=False, progress=False)
    frac = maps.sun_fraction
    lat, lon = pixel_lat_lon(d)
    x, y = lat_lon_to_xy(*BUSSEY_POINT, d)
    r, c = (round(float(v)) for v in xy_to_pixel(x, y, d))
    near = arc_km(lat, lon, *BUSSEY_POINT) <= 5.0
    k_near = int(np.argmax(np.where(near, frac, -1.0)))
    best = best_pixels(frac, d, maps.longest_night_h)["overall"]
    # pairs among the 400 best-lit pixels
    order = np.argsort(np.nan_to_num(frac, nan=-1.0).ravel())[::-1][:400]
    series = np.array([point_series(d, hmap, float(lat.flat[k]), float(lon.flat[k]), tracks).sun_fraction
                       for k in order])
    plat, plon = lat.flat[order], lon.flat[order]
    pair, pair_at = 0.0, None
    for i in range(len(order)):
        close = np.flatnonzero(arc_km(plat, plon, float(plat[i]), float(plon[i])) <= BUSSEY_PAIR_KM)
        union = np.maximum(series[i], series[close]).mean(axis=1)
        j = int(np.argmax(union))
        if union[j] > pair:
            pair, pair_at = float(union[j]), (i, int(close[j]))
    i, j = pair_at
    return {
        "at_point_pct": 100 * float(frac[r, c]),
        "near_best_pct": 100 * float(frac.flat[k_near]),
        "near_best_at": (float(lat.flat[k_near]), float(lon.flat[k_near]) % 360),
        "best": best, "pair_pct": 100 * pair,
        "pair_at": [(float(plat[k]), float(plon[k]) % 360, place_name(float(plat[k]), float(plon[k]))) for k in (i, j)],
    }


def span_comparison(dem: Dem, far: Dem) -> dict:
    """Hourly 2017-2037 in the 50 x 50 km square around the pole at 0, 2 and 10 m."""
    window = pole_window(dem, POLE_HALF_KM)
    d = sub_dem(dem, window)
    tracks = body_tracks(epochs_tdb_s(*SPAN_2018, 1.0))
    out = {}
    for obs in (0.0, 2.0, 10.0):
        hmap = window_horizon(dem, far, window, obs)
        maps = illumination_maps(d, hmap, tracks, with_earth=False, progress=False)
        best = best_pixels(maps.sun_fraction, d, maps.longest_night_h)
        for where in best.values():
            where["any_part_pct"] = any_part_pct(d, hmap, where, tracks)
        out[obs] = best
    return out


def site_comparison(dem: Dem, where: dict) -> dict:
    """Hourly 2017-2037 at 2 and 10 m on the 10 m Site01 DEM (the 240 m DEM beyond it), in a
    square of 2 SITE_HALF_PX pixels centred on ``where`` (the best 240 m ridge pixel)."""
    site = read_dem(data.path("dem_site01_10m"))
    x, y = lat_lon_to_xy(where["lat"], where["lon"], site)
    r, c = (round(float(v)) for v in xy_to_pixel(x, y, site))
    window = Window(c - SITE_HALF_PX, r - SITE_HALF_PX, 2 * SITE_HALF_PX, 2 * SITE_HALF_PX)
    sub = sub_dem(site, window)
    lat, lon = pixel_lat_lon(sub)
    tracks = body_tracks(epochs_tdb_s(*SPAN_2018, 1.0))
    out = {}
    for obs in (2.0, 10.0):
        path = cache_dir() / f"h_site01_{c}_{r}_{2 * SITE_HALF_PX}px_obs{obs:g}m_{HORIZON_METHOD}.tif"
        if path.exists():
            hmap = read_horizon(path)
        else:
            hmap = compute_horizon(site, far_dem=dem, window=window, n_azimuths=N_AZ, max_distance_km=MAX_KM,
                                   observer_height_m=obs, method=HORIZON_METHOD, progress=False)
            write_horizon(hmap, path)
        maps = illumination_maps(sub, hmap, tracks, with_earth=False, progress=False)
        k = int(np.nanargmax(maps.sun_fraction))
        out[obs] = {"pct": 100 * float(maps.sun_fraction.flat[k]), "lat": float(lat.flat[k]),
                    "lon": float(lon.flat[k]) % 360, "night_d": float(maps.longest_night_h.flat[k]) / 24}
    return out


# ---------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------


def table(psr: dict, bussey: dict, span: dict, site: dict) -> str:
    def at(w: dict) -> str:
        return f"{w['lat']:.3f}, {w['lon']:.1f} E ({w['place']})"

    lines = [
        ("| quantity (definition) | source: DEM, span, observer | published | qamar (240 m LOLA, 360 az, 150 km) | "
        "difference |"),
        "|---|---|---|---|---|",
    ]
    for c in psr["craters"]:
        diff = 100 * (c["qamar_km2"] / c["area_km2"] - 1)
        note = " (region cut by the DEM edge)" if c["at_dem_edge"] else ""
        lines.append(f"| PSR area of {c['name']} (the 4-connected PSR region holding the catalogue's PSR centroid) | "
                     f"`psr_craters` catalogue (LOLA-based PSR map) | {c['area_km2']:.1f} km² | "
                     f"{c['qamar_km2']:.1f} km²{note} | {diff:+.1f} % |")
    bands = psr["bands"]
    far, far240 = psr["far"], bands[85.0]
    estimate = far240 + far[80.0] - far[85.0]
    scaled = far240 + (far[80.0] - far[85.0]) * far240 / far[85.0]
    lines.append(f"| total PSR area poleward of 80 S | Mazarico et al. 2011: 240 m, 0 m | "
                 f"{MAZARICO_PSR_SOUTH_KM2:,.0f} km² (whole south polar map) | "
                 f"{scaled:,.0f} km² estimated: {far240:,.0f} km² poleward of 85 S (240 m) + "
                 f"{far[80.0] - far[85.0]:,.0f} km² in 80-85 S from the 1.8 km far DEM, scaled by the 240 m / 1.8 km "
                 f"ratio poleward of 85 S ({far240:,.0f} / {far[85.0]:,.0f}); unscaled {estimate:,.0f} km² | "
                 f"{100 * (scaled / MAZARICO_PSR_SOUTH_KM2 - 1):+.0f} % (indicative) |")
    for b, a in bands.items():
        lines.append(f"| PSR area poleward of {b:g} S | not found in the sources reachable here | — | "
                     f"{a:,.0f} km² | — |")
    b = bussey
    lines += [
        (f"| sunlit fraction at 88.74 S, 124.5 E, year 2020, surface | Bussey et al. 2010: Kaguya LALT, 2020, 0 m | "
        f"{BUSSEY_BEST_PCT:.0f} % | {b['at_point_pct']:.1f} % at the pixel; best within 5 km "
        f"{b['near_best_pct']:.1f} % at {b['near_best_at'][0]:.3f}, {b['near_best_at'][1]:.1f} E | "
        f"{b['at_point_pct'] - BUSSEY_BEST_PCT:+.1f} pp; best near it "
        f"{b['near_best_pct'] - BUSSEY_BEST_PCT:+.1f} pp |"),
        (f"| most illuminated place, 2020, surface | Bussey et al. 2010 | {BUSSEY_BEST_PCT:.0f} % (Shackleton rim) | "
        f"{b['best']['pct']:.1f} % at {at(b['best'])} | {b['best']['pct'] - BUSSEY_BEST_PCT:+.1f} pp |"),
        (f"| two places < 10 km apart lit together, 2020, surface | Bussey et al. 2010 | {BUSSEY_PAIR_PCT:.0f} % | "
        f"{b['pair_pct']:.1f} % ({b['pair_at'][0][2]} + {b['pair_at'][1][2]}) | "
        f"{b['pair_pct'] - BUSSEY_PAIR_PCT:+.1f} pp |"),
    ]
    s0, s2, s10 = span[0.0], span[2.0], span[10.0]
    lines += [
        (f"| best-lit place within 25 km of the pole, 2017-2037 hourly, surface | Gläser et al. 2018: 20 m, 0 m | "
        f"≤ {GLAESER2018_SURFACE_MAX_PCT} % (82.9 % is the north's best; south not given in the abstract) | "
        f"{s0['overall']['pct']:.1f} % at {at(s0['overall'])}; ridge {s0['connecting ridge']['pct']:.1f} % | "
        f"≥ {s0['overall']['pct'] - GLAESER2018_SURFACE_MAX_PCT:+.1f} pp |"),
        (f"| best-lit place, 2 m above ground, 2017-2037 hourly | Gläser et al. 2018: 20 m, 2 m | "
        f"{GLAESER2018_2M_MAX_PCT} % (connecting ridge) | {s2['overall']['pct']:.1f} % at {at(s2['overall'])} | "
        f"{s2['overall']['pct'] - GLAESER2018_2M_MAX_PCT:+.1f} pp |"),
    ]
    for obs, s in ((2.0, s2), (10.0, s10)):
        ridge = s["connecting ridge"]
        lines.append(f"| best-lit connecting-ridge place, {obs:g} m above ground (2017-2037 for the 19 years) | "
                     f"Gläser et al. 2014: 20 m, 19 years, {obs:g} m | {GLAESER2014_PCT[obs]} % | "
                     f"{ridge['pct']:.1f} % at {at(ridge)}; any part of the disc {ridge['any_part_pct']:.1f} % | "
                     f"{ridge['pct'] - GLAESER2014_PCT[obs]:+.1f} pp |")
    lines.append(f"| best-lit place on the 10 m Site01 DEM within 600 m of that ridge pixel, 2 m / 10 m, 2017-2037 | "
                 f"Gläser et al. 2014 (2 m / 10 m); Gläser et al. 2018 (2 m) | {GLAESER2014_PCT[2.0]} / "
                 f"{GLAESER2014_PCT[10.0]} %; {GLAESER2018_2M_MAX_PCT} % | {site[2.0]['pct']:.1f} / "
                 f"{site[10.0]['pct']:.1f} % at {site[2.0]['lat']:.4f}, {site[2.0]['lon']:.2f} E / "
                 f"{site[10.0]['lat']:.4f}, {site[10.0]['lon']:.2f} E; nights {site[2.0]['night_d']:.1f} / "
                 f"{site[10.0]['night_d']:.1f} d | {site[2.0]['pct'] - GLAESER2014_PCT[2.0]:+.1f} / "
                 f"{site[10.0]['pct'] - GLAESER2014_PCT[10.0]:+.1f} pp; "
                 f"{site[2.0]['pct'] - GLAESER2018_2M_MAX_PCT:+.1f} pp |")
    lines.append(f"| longest night at the best-lit ridge place, 2 m / 10 m | Gläser et al. 2014 | "
                 f"typically {GLAESER2014_NIGHT_D[0]:g}-{GLAESER2014_NIGHT_D[1]:g} days | "
                 f"{s2['connecting ridge']['night_d']:.1f} d / {s10['connecting ridge']['night_d']:.1f} d | — |")
    lines.append(f"| best-lit Shackleton-rim place, 0 / 2 / 10 m, 2017-2037 | (Bussey 2010, Gläser 2018 name it; "
                 f"no figure for it alone in the abstracts) | — | {s0['Shackleton rim']['pct']:.1f} / "
                 f"{s2['Shackleton rim']['pct']:.1f} / {s10['Shackleton rim']['pct']:.1f} %; night "
                 f"{s0['Shackleton rim']['night_d']:.1f} d at 0 m | — |")
    return "\n".join(lines)


def write_doc(md: str) -> None:
    text = DOC.read_text()
    block = f"{MARK_BEGIN}\n{md}\n{MARK_END}"
    pattern = re.compile(re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {MARK_BEGIN} ... {MARK_END} block")
    DOC.write_text(pattern.sub(lambda _: block, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help=f"put the table into {DOC.name}")
    args = parser.parse_args()
    t0 = time.perf_counter()
    dem, far = read_dem(data.path("dem_south_pole_240m")), read_dem(data.path("dem_south_pole_far"))
    horizon = full_horizon_path()
    if not horizon.exists():
        print(f"computing the full 0 m horizon map into {horizon} (~15 min on 2 cores) ...", flush=True)
        horizon.parent.mkdir(parents=True, exist_ok=True)
        write_horizon(compute_horizon(dem, far_dem=far, n_azimuths=N_AZ, max_distance_km=MAX_KM,
                                      method=HORIZON_METHOD), horizon)
    envelope = sun_envelope()
    result = find_psr(dem, horizon, envelope=envelope, progress=False)
    far_bands = far_dem_psr(far, envelope)
    psr = {"craters": crater_rows(result.mask, dem), "bands": band_areas(result.mask, dem), "far": far_bands,
           "total_km2": result.area_km2}
    print(f"PSR done ({time.perf_counter() - t0:.0f} s): {result.area_km2:,.0f} km² in the DEM", flush=True)
    bussey = bussey_comparison(dem, far)
    print(f"2020 done ({time.perf_counter() - t0:.0f} s)", flush=True)
    span = span_comparison(dem, far)
    site = site_comparison(dem, span[2.0]["connecting ridge"])
    md = table(psr, bussey, span, site)
    load = os.getloadavg()[0]
    md += (f"\n\nComputed by `bench/literature_south_pole.py` in {time.perf_counter() - t0:.0f} s "
           f"(load average {load:.1f} on {os.cpu_count()} cores).")
    print(md)
    if args.write_doc:
        write_doc(md)
        print("wrote", DOC)


if __name__ == "__main__":
    main()

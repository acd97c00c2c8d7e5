"""Shared pieces of qamar's PNG figures: UTC time axes, the lunar map background, atomic saving.

Every figure module (orbit, comms, payload, surface, studies) draws with matplotlib's
object-oriented ``Figure`` (no global pyplot state) and saves through :func:`save_png`.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from qamar import data
from qamar.errors import DataNotFoundError
from qamar.io import atomic_write
from qamar.time import tdb_s_to_utc

DPI = 120


def utc_datetimes(t_tdb_s: np.ndarray) -> np.ndarray:
    """UTC epochs as datetime64[ms] for a time axis (a leap second 23:59:60.x plots as 59.x)."""
    text = tdb_s_to_utc(np.atleast_1d(np.asarray(t_tdb_s, dtype=float)), digits=3)
    return np.array([s.rstrip("Z").replace(":60.", ":59.") for s in text], dtype="datetime64[ms]")


def utc_time_axis(ax) -> None:
    """Format the x axis of ``ax`` as concise UTC dates, with a grid."""
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("UTC")
    ax.grid(True, alpha=0.4)


def save_png(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` as PNG and write it atomically to ``path``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    path = Path(path)
    with atomic_write(path, binary=True) as stream:
        stream.write(buffer.getvalue())
    return path


@functools.cache
def moon_map() -> np.ndarray | None:
    """Grey-level global lunar map (rows +90 to -90 deg, columns -180 to 180 deg east), or
    None when the registered ``moon_map`` is not installed (figures then draw a plain grid)."""
    try:
        map_path = data.path("moon_map")
    except DataNotFoundError:
        return None
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # a trusted, registered file
    with Image.open(map_path) as image:
        grey = image.convert("L")
        grey = grey.reduce(max(1, grey.width // 2048))
        return np.asarray(grey)

"""Shared test set-up. Tests read reference data through qamar.data (QAMAR_DATA_DIR)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(scope="session")
def spice_kernels():
    """SPICE loaded with the same kernels qamar reads: the independent reference of many tests."""
    spice = pytest.importorskip("spiceypy")
    from qamar import data

    kernels = [str(data.path(k)) for k in ("leapseconds", "de440s", "moon_pa_de440", "moon_frames_de440", "pck00011")]
    for kernel in kernels:
        spice.furnsh(kernel)
    yield spice
    for kernel in kernels:
        spice.unload(kernel)

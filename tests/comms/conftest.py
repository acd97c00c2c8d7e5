"""Shared fixtures of the comms tests: a short iCube-Q propagation and skyfield's view of DE440."""

from pathlib import Path

import pytest

from qamar import data

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "icube-q.yaml"


@pytest.fixture(scope="session")
def icube_trajectory():
    """Three days of the iCube-Q scenario (GRGM1200A degree 100, Earth, Sun, SRP) from release."""
    from qamar.mission.run import propagate_orbit
    from qamar.mission.scenario import load_scenario

    scenario = load_scenario(SCENARIO)
    propagation = scenario.propagation.model_copy(update={"duration_days": 3.0})
    return propagate_orbit(scenario.spacecraft, scenario.orbit, scenario.forces, propagation, progress=False).trajectory


@pytest.fixture(scope="session")
def skyfield_sky():
    """(timescale with skyfield's built-in UT1 and leap-second tables, de440s read by skyfield)."""
    api = pytest.importorskip("skyfield.api")
    return api.load.timescale(builtin=True), api.load_file(str(data.path("de440s")))

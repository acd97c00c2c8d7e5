"""Orekit (orekit-jpype) as an independent lunar orbit propagator: gravity field only, no third bodies, no SRP.

Set-up, all in Java once built (no Python call inside a force evaluation):

- inertial frame: GCRF standing in for the Moon-centred ICRF (the dynamics only has the Moon,
  so the frame origin is immaterial and Orekit needs no data files);
- Moon principal-axes frame: a child of GCRF whose ``TransformProvider`` is the Java class
  ``java/MoonPaEulerProvider.java``, compiled against Orekit at run time; it evaluates the
  Chebyshev fits of :mod:`tests.peers.moon_pa_fit` (DE440 PA PCK read by jplephem);
- forces: ``NumericalPropagator``'s central attraction with the field's GM plus
  ``HolmesFeatherstoneAttractionModel`` (the non-central part) in that frame, the field
  written to Orekit's SHA layout and read back by ``GravityFieldFactory``
  (:mod:`tests.orekit_support`);
- integrator: ``DormandPrince853Integrator`` with Orekit's default tolerances for a position
  tolerance ``pos_tolerance_m`` in Cartesian coordinates.

Time: dates are built in TAI and the propagation's seconds are taken as TDB seconds (the
Moon's orientation is the only time-dependent input, evaluated at ``t0_tdb_s`` plus the
elapsed seconds), so the integration variable is the same as qamar's and heyoka's.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from qamar.orbit.gravity import GravityField
from qamar.time import tdb_s_to_tt_s, tt_s_to_tai_s
from tests import orekit_support
from tests.peers.moon_pa_fit import EulerFit

JAVA_PROVIDER = Path(__file__).resolve().parent / "java" / "MoonPaEulerProvider.java"
MIN_STEP_S = 1e-3
MAX_STEP_S = 3600.0


@lru_cache(maxsize=1)
def _provider_class():
    return orekit_support.compile_java("MoonPaEulerProvider", JAVA_PROVIDER.read_text())


def tai_date(t_tdb_s: float):
    """Orekit AbsoluteDate (built in TAI) of an epoch given in TDB seconds past J2000."""
    from org.orekit.time import AbsoluteDate, TimeScalesFactory

    j2000_tai = AbsoluteDate("2000-01-01T12:00:00", TimeScalesFactory.getTAI())
    return j2000_tai.shiftedBy(float(tt_s_to_tai_s(tdb_s_to_tt_s(t_tdb_s))))


def moon_pa_frame(euler_fit: EulerFit, t0_tdb_s: float):
    """A child frame of GCRF rotating as the Moon PA frame, from ``euler_fit``.

    Orekit date ``tai_date(t0_tdb_s) + s`` is read as TDB epoch ``t0_tdb_s + s``.
    """
    orekit_support.start()
    import jpype
    from org.orekit.frames import Frame, FramesFactory

    start = tai_date(t0_tdb_s).shiftedBy(euler_fit.start_tdb_s - t0_tdb_s)
    phi, theta, psi = (jpype.JArray(jpype.JDouble)(list(map(float, c))) for c in euler_fit.coef_rad)
    provider = _provider_class()(start, float(euler_fit.span_s), phi, theta, psi)
    return Frame(FramesFactory.getGCRF(), provider, "MOON_PA_EULER_FIT", False)


@lru_cache(maxsize=4)
def _gravity_provider(field: GravityField, degree: int):
    return orekit_support.normalized_provider(field, degree)


def propagate_orekit(
    t0_tdb_s: float,
    state0_icrf: np.ndarray,
    duration_s: float,
    field: GravityField,
    degree: int,
    pos_tolerance_m: float,
    euler_fit: EulerFit,
) -> tuple[np.ndarray, float, int]:
    """Propagate a Moon-centred ICRF state (km, km/s) for ``duration_s`` under ``field`` to ``degree``.

    Returns the final state (6,) in km and km/s, the wall time of ``propagate`` alone (s; JVM
    start, Java compilation and field loading excluded) and the number of force evaluations.
    ``euler_fit`` must cover ``[t0_tdb_s, t0_tdb_s + duration_s]``.
    """
    orekit_support.start()
    from org.hipparchus.geometry.euclidean.threed import Vector3D
    from org.hipparchus.ode.nonstiff import DormandPrince853Integrator
    from org.orekit.forces.gravity import HolmesFeatherstoneAttractionModel
    from org.orekit.frames import FramesFactory
    from org.orekit.orbits import CartesianOrbit, OrbitType
    from org.orekit.propagation import SpacecraftState, ToleranceProvider
    from org.orekit.propagation.numerical import NumericalPropagator
    from org.orekit.utils import PVCoordinates

    gcrf = FramesFactory.getGCRF()
    date0 = tai_date(t0_tdb_s)
    state_m = np.asarray(state0_icrf, dtype=float) * 1e3
    pv = PVCoordinates(Vector3D(*map(float, state_m[:3])), Vector3D(*map(float, state_m[3:])))
    orbit = CartesianOrbit(pv, gcrf, date0, field.gm_km3_s2 * 1e9)
    tolerances = ToleranceProvider.getDefaultToleranceProvider(float(pos_tolerance_m)).getTolerances(
        orbit, OrbitType.CARTESIAN
    )
    integrator = DormandPrince853Integrator(MIN_STEP_S, MAX_STEP_S, tolerances[0], tolerances[1])
    propagator = NumericalPropagator(integrator)
    propagator.setOrbitType(OrbitType.CARTESIAN)
    propagator.setInitialState(SpacecraftState(orbit))
    propagator.addForceModel(
        HolmesFeatherstoneAttractionModel(moon_pa_frame(euler_fit, t0_tdb_s), _gravity_provider(field, degree))
    )
    start = time.perf_counter()
    final = propagator.propagate(date0.shiftedBy(float(duration_s)))
    wall_s = time.perf_counter() - start
    pv_end = final.getPVCoordinates(gcrf)
    state = np.array([*pv_end.getPosition().toArray(), *pv_end.getVelocity().toArray()]) * 1e-3
    return state, wall_s, int(integrator.getEvaluations())

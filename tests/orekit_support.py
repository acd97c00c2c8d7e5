"""Orekit (through orekit-jpype) as an independent reference for tests and benchmarks.

Orekit needs no data files here: dates are built in TAI and the only frame used is GCRF (which
stands in for a body-fixed frame when a field is evaluated at body-fixed positions).

- :func:`start` starts the JVM once per process.
- :func:`write_sha_file` writes a qamar :class:`~qamar.orbit.gravity.GravityField` in the
  SHA layout Orekit's ``SHAFormatReader`` reads (header ``GM R nmax mmax`` in SI, then rows
  ``n m C S sigma_C sigma_S``); :func:`normalized_provider` loads it through
  ``GravityFieldFactory`` and returns a ``NormalizedSphericalHarmonicsProvider``.
- :func:`holmes_featherstone` builds Orekit's ``HolmesFeatherstoneAttractionModel`` for a field
  and :func:`nonspherical_accel_km_s2` evaluates its non-central acceleration at body-fixed
  positions.
- :func:`compile_java` compiles a small Java class against Orekit in the running JVM, so that a
  benchmark loop (or a frame) can run on the Java side without a Python call per evaluation.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from qamar.orbit.gravity import GravityField


def start() -> None:
    """Start the JVM with Orekit on its class path (once per process; later calls do nothing).

    The JVM is left to die with the process: JPype's destruction of it at interpreter exit
    crashes now and then (SIGSEGV in a Java shutdown thread after pytest has reported, seen
    once in a CI rehearsal; jpype-project/jpype issues 1144 and 1261), and tests have nothing
    in Java to flush."""
    import jpype
    import jpype.config
    import orekit_jpype

    if not jpype.isJVMStarted():
        jpype.config.destroy_jvm = False
        orekit_jpype.initVM()


def tai_date(iso: str = "2024-05-08T08:14:37"):
    """An Orekit AbsoluteDate from an ISO-8601 string read in TAI (needs no leap-second file)."""
    start()
    from org.orekit.time import AbsoluteDate, TimeScalesFactory

    return AbsoluteDate(iso, TimeScalesFactory.getTAI())


def write_sha_file(field: GravityField, path: Path, degree: int | None = None) -> Path:
    """Write ``field`` (to ``degree``, default its ``max_degree``) in Orekit's SHA layout, SI units.

    Degree 1 rows are written too (as zeros if absent): Orekit's reader leaves C10, C11
    undefined otherwise. Sigmas are written as zero.
    """
    degree = field.max_degree if degree is None else degree
    rows = [f"{field.gm_km3_s2 * 1e9:.16e} {field.ref_radius_km * 1e3:.16e} {degree} {degree}"]
    for n in range(1, degree + 1):
        for m in range(n + 1):
            rows.append(f"{n} {m} {field.c_nm[n, m]:.16e} {field.s_nm[n, m]:.16e} 0.0e+00 0.0e+00")
    path = Path(path)
    path.write_text("\n".join(rows) + "\n")
    return path


def normalized_provider(field: GravityField, degree: int | None = None):
    """Orekit ``NormalizedSphericalHarmonicsProvider`` for ``field`` to ``degree`` (default all).

    The field goes through a temporary SHA file, ``SHAFormatReader`` and
    ``GravityFieldFactory``; the reader and the temporary folder are removed afterwards, so
    several fields can be loaded in one JVM.
    """
    start()
    from java.io import File
    from org.orekit.data import DataContext, DirectoryCrawler
    from org.orekit.forces.gravity.potential import GravityFieldFactory, SHAFormatReader

    degree = field.max_degree if degree is None else degree
    manager = DataContext.getDefault().getDataProvidersManager()
    with tempfile.TemporaryDirectory(prefix="qamar-orekit-") as folder:
        sha = write_sha_file(field, Path(folder) / f"{field.name.lower()}_{degree}.sha", degree)
        crawler = DirectoryCrawler(File(folder))
        manager.addProvider(crawler)
        GravityFieldFactory.clearPotentialCoefficientsReaders()
        GravityFieldFactory.addPotentialCoefficientsReader(SHAFormatReader(re.escape(sha.name), False))
        try:
            return GravityFieldFactory.getNormalizedProvider(degree, degree)
        finally:
            GravityFieldFactory.clearPotentialCoefficientsReaders()
            manager.removeProvider(crawler)


def holmes_featherstone(field: GravityField, degree: int | None = None):
    """Orekit ``HolmesFeatherstoneAttractionModel`` for ``field``, its body frame being GCRF."""
    start()
    from org.orekit.forces.gravity import HolmesFeatherstoneAttractionModel
    from org.orekit.frames import FramesFactory

    return HolmesFeatherstoneAttractionModel(FramesFactory.getGCRF(), normalized_provider(field, degree))


def nonspherical_accel_km_s2(model, r_km: np.ndarray, gm_km3_s2: float) -> np.ndarray:
    """Orekit's non-central acceleration (km/s^2) at body-fixed positions ``r_km`` (n, 3).

    Uses ``HolmesFeatherstoneAttractionModel.gradient``: the gradient of the non-central
    potential in the body frame, which is what ``acceleration()`` returns before rotating to
    the inertial frame.
    """
    from org.hipparchus.geometry.euclidean.threed import Vector3D

    date = tai_date()
    points = np.atleast_2d(r_km) * 1e3
    out = [list(model.gradient(date, Vector3D(*map(float, p)), gm_km3_s2 * 1e9)) for p in points]
    return np.array(out) * 1e-3


def compile_java(class_name: str, source: str):
    """Compile the Java class ``class_name`` from ``source`` against Orekit and load it.

    Uses the JDK compiler inside the running JVM (``javax.tools``); returns the loaded class
    (a JPype ``JClass``). Raises RuntimeError with the compiler's messages if compilation fails.
    """
    start()
    import jpype
    from java.io import ByteArrayOutputStream, File, PrintStream
    from java.lang import System
    from java.net import URLClassLoader
    from javax.tools import ToolProvider

    compiler = ToolProvider.getSystemJavaCompiler()
    if compiler is None:
        raise RuntimeError("the JVM has no Java compiler (javax.tools): run it from a JDK, not a JRE")
    folder = Path(tempfile.mkdtemp(prefix="qamar-java-"))
    (folder / f"{class_name}.java").write_text(source)
    messages = ByteArrayOutputStream()
    args = ["-classpath", System.getProperty("java.class.path"), "-d", str(folder), str(folder / f"{class_name}.java")]
    status = compiler.run(None, None, PrintStream(messages), jpype.JArray(jpype.JString)(args))
    if status != 0:
        raise RuntimeError(f"javac failed for {class_name}:\n{messages.toString()}")
    parent = jpype.JClass("java.lang.Thread").currentThread().getContextClassLoader()
    loader = URLClassLoader([File(str(folder)).toURI().toURL()], parent)
    return jpype.JClass(class_name, loader=loader)

"""SPICE SPK export: type 13 segments (Hermite interpolation, unequal time steps) via spiceypy.

A written file loads into SPICE (``furnsh``, then ``spkezr``) and the tools built on it, next to
the JPL planetary kernels:

- **Centre**: the Moon (NAIF 301), as every qamar trajectory is Moon-centred.
- **Frame**: SPICE's ``J2000`` label. qamar's states are on ICRF axes; SPICE and the DE
  kernels use the ``J2000`` label for ICRF data (see :mod:`qamar.frames`), so the states are
  written unrotated and compose exactly with de440s.bsp.
- **Time**: SPK epochs are TDB seconds past J2000, which is qamar's internal time: no
  conversion is made.
- **Object**: NAIF ID :data:`DEFAULT_NAIF_ID` unless told otherwise (NAIF has assigned none
  to ICUBE-Q). The file stores only the integer; to call the object by name in SPICE, load a
  text kernel with ``NAIF_BODY_NAME += 'ICUBE-Q'`` / ``NAIF_BODY_CODE += -1000001`` or call
  ``boddef``. The file's comment area records the name, the ID and how it was made.

Type 13 interpolates ``(degree + 1) / 2`` consecutive states (positions and velocities) with
Hermite polynomials of odd ``degree`` (1 to 27, SPICELIB SPKW13 2.0.0). The error grows as
h^(degree + 1) with the spacing h and is largest at a low periapsis. Measured with the default
degree 7 on the 200 x 8,600 km iCube-Q release orbit (1 day, GRGM1200A 10x10): 0.5 mm at
h = 120 s, 0.6 m at 300 s, 58 m at 600 s, so about 2e-9 km at the default 60 s, below the
integrator's dense output's own 2e-8 km at rtol 1e-12. Keep 60 s for low orbits.

SPICE puts no limit on the length of a segment; qamar starts a new segment every
``states_per_segment`` states so each ``spkw13`` call copies a bounded array. Each segment
also stores the ``(degree + 1) / 2`` states beyond both of its ends, so SPICE interpolates a
split file exactly as it would a single segment.

Files are written atomically (a hidden partial file in the same folder, renamed when
complete); an existing file is replaced only when asked (SPICE's ``spkopn`` itself refuses
to overwrite). SPICE is not thread-safe: do not write SPK files from several threads at once.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import spiceypy
from spiceypy.utils.exceptions import SpiceyError

from qamar import __version__
from qamar.errors import QamarError
from qamar.time import tdb_s_to_utc

if TYPE_CHECKING:
    from qamar.orbit.trajectory import Trajectory

DEFAULT_NAIF_ID = -1_000_001
"""NAIF ID written when none is given. Spacecraft IDs are negative; NAIF assigns -1 to -999
(from DSN IDs), spacecraft-part and instrument IDs are the spacecraft's ID times 1000 minus a
number (down to -999,999), and Earth orbiters without a DSN ID get -100000 minus their NORAD
number (NAIF IDs Required Reading). -1,000,001 lies outside all three ranges, so it collides
with no assigned code; pass ``naif_id`` to use an official one."""

DEFAULT_OBJECT_NAME = "ICUBE-Q"
"""Object name recorded in the comments and the default segment ID when the trajectory names
none (``meta['object_name']``)."""

MOON_NAIF_ID = 301
SPK_FRAME = "J2000"  # SPICE's label for ICRF axes in the DE kernels
MAX_DEGREE = 27  # largest type 13 degree (SPICELIB SPKW13 2.0.0, MAXDEG)
SEGMENT_ID_MAX_CHARS = 40  # SPK segment identifier length (SPK Required Reading)
DEFAULT_STATES_PER_SEGMENT = 100_000  # 69 days at 60 s
SPICE_PATH_MAX_CHARS = 255  # CSPICE N0067 silently cuts longer file names (and writes to the cut one)
_COMMENT_WIDTH = 78


def _printable_ascii(text: str) -> bool:
    return all(32 <= ord(c) <= 126 for c in text)


def _check_options(naif_id: int, degree: int, segment_id: str, states_per_segment: int) -> None:
    """QamarError for a non-spacecraft ID, a degree type 13 cannot take or a bad segment ID."""
    if not (isinstance(naif_id, (int, np.integer)) and -(2**31) <= naif_id < 0):
        raise QamarError(
            f"naif_id={naif_id!r} is not a spacecraft ID: give a negative integer such as {DEFAULT_NAIF_ID}."
        )
    if not (isinstance(degree, (int, np.integer)) and 1 <= degree <= MAX_DEGREE and degree % 2 == 1):
        raise QamarError(
            f"degree={degree!r}: SPK type 13 needs an odd Hermite degree from 1 to {MAX_DEGREE}; 7 is a good choice."
        )
    if not (segment_id.strip() and len(segment_id) <= SEGMENT_ID_MAX_CHARS and _printable_ascii(segment_id)):
        raise QamarError(
            f"segment_id {segment_id!r} must be 1 to {SEGMENT_ID_MAX_CHARS} printable ASCII characters; shorten it or pass segment_id."
        )
    if not (isinstance(states_per_segment, (int, np.integer)) and states_per_segment >= 2):
        raise QamarError(f"states_per_segment={states_per_segment!r} must be an integer of at least 2.")


def _comment_lines(
    trajectory: Trajectory, name: str, naif_id: int, degree: int, step_s: float | None,
    t_tdb_s: np.ndarray, n_segments: int, states_per_segment: int, comments: str | Sequence[str],
) -> list[str]:
    """The SPK comment area: what the file holds and how it was made, then the user's lines."""
    start, end = tdb_s_to_utc(np.array([t_tdb_s[0], t_tdb_s[-1]]))
    sampling = (
        f"sampled every {step_s:g} s (and at the end) from the qamar trajectory"
        if step_s is not None else "the trajectory's own samples"
    )
    source = trajectory.meta.get("source")
    lines = [
        f"SPK written by qamar {__version__}.",
        (f"Object: {name}, NAIF ID {naif_id}. Map the name to the ID with NAIF_BODY_NAME/NAIF_BODY_CODE "
         "in a text kernel (or boddef) to use it by name."),
        f"Centre: MOON ({MOON_NAIF_ID}). Frame: {SPK_FRAME}, i.e. ICRF axes as in the JPL DE kernels.",
        f"Coverage: {start} to {end} UTC (epochs stored as TDB seconds past J2000).",
        (f"Type 13 (Hermite, unequal steps), degree {degree}: {len(t_tdb_s)} states, {sampling}; "
         f"{n_segments} segment(s) of at most {states_per_segment} states."),
    ]
    if source:
        lines.append(f"Source: {source}")
    lines.extend([comments] if isinstance(comments, str) else comments)
    out = []
    for line in lines:
        for part in str(line).splitlines() or [""]:
            if not _printable_ascii(part):
                raise QamarError(f"SPK comments must be printable ASCII; rewrite {part!r} without other characters.")
            out.extend(textwrap.wrap(part, _COMMENT_WIDTH) or [""])
    return out


def _segment_bounds(n: int, states_per_segment: int) -> list[int]:
    """Indices where segments start and end: consecutive segments share their boundary state."""
    return list(range(0, n - 1, states_per_segment - 1)) + [n - 1]


def write_spk(
    trajectory: Trajectory,
    path: str | Path,
    *,
    naif_id: int = DEFAULT_NAIF_ID,
    object_name: str | None = None,
    segment_id: str | None = None,
    step_s: float | None = 60.0,
    degree: int = 7,
    states_per_segment: int = DEFAULT_STATES_PER_SEGMENT,
    comments: str | Sequence[str] = (),
    overwrite: bool = False,
) -> Path:
    """Write a trajectory as a SPICE SPK of type 13 segments (Moon-centred, J2000 = ICRF axes).

    States are taken every ``step_s`` seconds from the start plus the end
    (:meth:`Trajectory.sample`, i.e. the dense output when there is one), or the trajectory's
    own samples for ``step_s=None`` (right for an OEM read back; a propagation's own samples are
    its integrator steps, too sparse near a low periapsis). ``degree`` is the odd Hermite
    degree (window of ``(degree + 1) / 2`` states). ``object_name`` (default
    ``meta['object_name']``, else ICUBE-Q) goes into the comment area and the default
    ``segment_id``; ``comments`` (text or lines, printable ASCII) is added to the comment area
    after qamar's description. A new segment starts every ``states_per_segment`` states.
    Returns the path.

    Raises QamarError if the file exists and ``overwrite`` is false, if its folder does not
    exist, for a non-negative ``naif_id``, an even or out-of-range degree, fewer states than one
    interpolation window, a segment ID that is not 1-40 printable ASCII characters, non-ASCII
    comments, or when SPICE cannot write the file; ValueError for a bad ``step_s``.
    """
    path = Path(path)
    name = object_name or trajectory.meta.get("object_name") or DEFAULT_OBJECT_NAME
    segment_id = segment_id if segment_id is not None else name[:SEGMENT_ID_MAX_CHARS]
    _check_options(naif_id, degree, segment_id, states_per_segment)
    if path.is_dir():
        raise QamarError(f"{path} is a folder; give the name of the SPK file to write inside it.")
    if path.exists() and not overwrite:
        raise QamarError(f"{path} already exists; choose another name or allow overwriting (overwrite=True).")
    if not path.parent.is_dir():
        raise QamarError(f"the folder {path.parent} does not exist; create it or write the SPK elsewhere.")

    if step_s is None:
        t, states = trajectory.t_tdb_s, trajectory.states_icrf
    else:
        t, states = trajectory.sample(step_s)
    window = (degree + 1) // 2
    if len(t) < window:
        raise QamarError(
            f"degree {degree} interpolates {window} states at a time but the trajectory gives {len(t)}; "
            "lower the degree or the sampling step."
        )
    bounds = _segment_bounds(len(t), states_per_segment)
    lines = _comment_lines(trajectory, name, naif_id, degree, step_s, t, len(bounds) - 1, states_per_segment,
                           comments)

    folder = tempfile.mkdtemp(prefix=".qamar-spk-", dir=path.parent)
    partial = os.path.join(folder, "p.bsp")
    try:
        if len(os.fsencode(partial)) > SPICE_PATH_MAX_CHARS:
            raise QamarError(
                f"{path}: SPICE takes file paths of at most {SPICE_PATH_MAX_CHARS} characters, and writing this one "
                f"goes through {len(os.fsencode(partial))}; write to a shorter path."
            )
        handle = spiceypy.spkopn(partial, f"qamar {name}"[:60], sum(len(line) + 1 for line in lines))
        written = 0
        try:
            spiceypy.dafac(handle, lines)
            for first, last in itertools.pairwise(bounds):
                # Pad with neighbouring states so the window around any epoch is the unsplit one;
                # copies, as spiceypy refuses read-only arrays (Trajectory samples are read-only).
                lo, hi = max(first - window, 0), min(last + window, len(t) - 1)
                spiceypy.spkw13(
                    handle, int(naif_id), MOON_NAIF_ID, SPK_FRAME, float(t[first]), float(t[last]), segment_id,
                    int(degree), hi - lo + 1, np.array(states[lo:hi + 1]), np.array(t[lo:hi + 1]),
                )
                written += 1
        finally:
            # spkcls refuses a file without segments; dafcls closes any DAF.
            (spiceypy.spkcls if written else spiceypy.dafcls)(handle)
        with open(partial, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except SpiceyError as exc:
        reason = " ".join(part for part in (exc.short, exc.long) if part) or str(exc)
        raise QamarError(f"SPICE could not write {path}: {reason} Check the folder and the options.") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path

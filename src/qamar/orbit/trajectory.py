"""The result of a propagation or of a file read: Moon-centred ICRF states over a time span.

A :class:`Trajectory` holds samples (TDB seconds past J2000; states in km and km/s, Moon
centre, ICRF axes), optionally the integrator's dense output and the events found on the way.
Between samples it uses the dense output when there is one, else a cubic Hermite interpolant on
position and velocity (exact at the samples; its position error is about h^4/384 |r''''|, e.g.
0.1 m at 60 s spacing at the periapsis of a 200 km lunar orbit, 4 cm for LRO at 60 s).

Altitudes are over the 1737.4 km sphere (``MOON_RADIUS_KM``), as the impact event uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from qamar import __version__
from qamar.constants import MOON_RADIUS_KM
from qamar.errors import DataFormatError, EpochOutOfRangeError
from qamar.frames import icrf_to_me, lat_lon_deg
from qamar.io import atomic_write
from qamar.io.oem import OemSegment, read_oem, write_oem
from qamar.io.spk import write_spk
from qamar.time import tdb_s_to_utc, utc_to_tdb_s

OEM_FRAMES = ("ICRF", "EME2000")
"""REF_FRAME values :meth:`Trajectory.from_oem` accepts (Moon-centred). EME2000 is taken as
ICRF, as SPICE and the Nyx/ANISE tools that write such files do: the two differ by the ~23 mas
frame bias (IERS Conventions 2010, sec. 5.5.6), about 0.2 m at 1,800 km from the Moon's centre
and 1 m at 10,000 km."""

_BISECTIONS = 50  # apsis refinement: 50 halvings take a 1-day bracket below 1e-10 s
_EDGE_S = 1e-6  # epochs this close outside the span are taken at its ends (OEM epochs are to 1 us)


class InitialState(NamedTuple):
    """A state to propagate from: epoch (TDB s past J2000) and Moon-centred ICRF state (km, km/s)."""

    t_tdb_s: float
    state_icrf: np.ndarray


class Apsides(NamedTuple):
    """Periapsis and apoapsis passes: epochs (TDB s past J2000) and altitudes (km), in time order."""

    peri_t_tdb_s: np.ndarray
    peri_alt_km: np.ndarray
    apo_t_tdb_s: np.ndarray
    apo_alt_km: np.ndarray


def hermite_states(t_nodes_tdb_s: np.ndarray, states: np.ndarray, t_tdb_s: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation of (n, 6) position/velocity samples at times inside the nodes.

    Position is the cubic matching position and velocity at both ends of each interval;
    velocity is its time derivative, so both are exact at the nodes. Returns (m, 6).
    """
    i = np.clip(np.searchsorted(t_nodes_tdb_s, t_tdb_s, side="right") - 1, 0, len(t_nodes_tdb_s) - 2)
    h = (t_nodes_tdb_s[i + 1] - t_nodes_tdb_s[i])[:, None]
    s = (t_tdb_s - t_nodes_tdb_s[i])[:, None] / h
    p0, p1 = states[i, :3], states[i + 1, :3]
    m0, m1 = states[i, 3:] * h, states[i + 1, 3:] * h
    s2, s3 = s * s, s * s * s
    position = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0 + (3 * s2 - 2 * s3) * p1 + (s3 - s2) * m1
    velocity = ((6 * s2 - 6 * s) * p0 + (3 * s2 - 4 * s + 1) * m0 + (6 * s - 6 * s2) * p1 + (3 * s2 - 2 * s) * m1) / h
    return np.concatenate([position, velocity], axis=1)


def _lat_lon_me_deg(t_tdb_s: np.ndarray, r_icrf_km: np.ndarray):
    """Planetocentric MOON_ME latitude/longitude (deg) of Moon-centred ICRF positions at epochs."""
    return lat_lon_deg(np.einsum("...ij,...j->...i", icrf_to_me(t_tdb_s), r_icrf_km))


class Trajectory:
    """Moon-centred ICRF states (km, km/s) at TDB seconds past J2000, with interpolation and export.

    ``t_tdb_s`` (n,) strictly increasing, ``states_icrf`` (n, 6), n >= 2. ``dense``, if given,
    is a callable ``dense(t_tdb_s (m,)) -> (m, 6)`` valid over the same span (the integrator's
    dense output). ``events`` are records with ``.kind``, ``.t_tdb_s`` and ``.state``;
    ``meta`` is free-form (``object_name`` and ``object_id`` are used by :meth:`to_oem`).
    Raises DataFormatError for samples that do not make a trajectory.
    """

    def __init__(
        self,
        t_tdb_s: Sequence[float] | np.ndarray,
        states_icrf: np.ndarray,
        dense: Callable[[np.ndarray], np.ndarray] | None = None,
        *,
        events: Sequence[Any] = (),
        meta: dict[str, Any] | None = None,
    ):
        t = np.array(t_tdb_s, dtype=float)
        states = np.array(states_icrf, dtype=float)
        if t.ndim != 1 or len(t) < 2 or states.shape != (len(t), 6):
            raise DataFormatError(
                f"a trajectory needs n >= 2 epochs and (n, 6) states, got {t.shape} and {states.shape}; "
                "pass at least two samples."
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(states))):
            raise DataFormatError("trajectory epochs and states must be finite; drop the NaN/inf samples.")
        if np.any(np.diff(t) <= 0.0):
            raise DataFormatError("trajectory epochs must increase strictly; sort them and drop duplicates.")
        t.flags.writeable = False
        states.flags.writeable = False
        self.t_tdb_s = t
        self.states_icrf = states
        self.dense = dense
        self.events = tuple(events)
        self.meta = dict(meta or {})

    @property
    def start_tdb_s(self) -> float:
        """First epoch, TDB seconds past J2000."""
        return float(self.t_tdb_s[0])

    @property
    def end_tdb_s(self) -> float:
        """Last epoch, TDB seconds past J2000."""
        return float(self.t_tdb_s[-1])

    def __repr__(self) -> str:
        return (f"Trajectory({tdb_s_to_utc(self.start_tdb_s)} .. {tdb_s_to_utc(self.end_tdb_s)}, "
                f"{len(self.t_tdb_s)} samples, {len(self.events)} events)")

    def _within_span(self, t: np.ndarray) -> np.ndarray:
        """``t`` clipped to the span; raises EpochOutOfRangeError beyond _EDGE_S outside it."""
        outside = (t < self.t_tdb_s[0] - _EDGE_S) | (t > self.t_tdb_s[-1] + _EDGE_S) | ~np.isfinite(t)
        if np.any(outside):
            bad = float(t[outside][0])
            when = tdb_s_to_utc(bad) + " UTC" if np.isfinite(bad) else repr(bad)
            raise EpochOutOfRangeError(
                f"epoch {when} is outside the trajectory, which spans {tdb_s_to_utc(self.start_tdb_s)} "
                f"to {tdb_s_to_utc(self.end_tdb_s)} UTC; ask for times within that span."
            )
        return np.clip(t, self.t_tdb_s[0], self.t_tdb_s[-1])

    def state_at(self, t_tdb_s: float | np.ndarray) -> np.ndarray:
        """State (km, km/s; Moon-centred ICRF) at TDB seconds past J2000: (6,) or (m, 6).

        Uses the dense output if there is one, else cubic Hermite interpolation of the samples.
        Raises EpochOutOfRangeError (span given in UTC) for times outside the trajectory by
        more than 1 us (closer ones are taken at the ends, as OEM epochs are rounded to 1 us).
        """
        t = np.asarray(t_tdb_s, dtype=float)
        flat = self._within_span(np.atleast_1d(t).ravel())
        if self.dense is not None:
            out = np.asarray(self.dense(flat), dtype=float).reshape(len(flat), 6)
        else:
            out = hermite_states(self.t_tdb_s, self.states_icrf, flat)
        return out[0] if t.ndim == 0 else out

    def sample(self, step_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Epochs every ``step_s`` seconds from the start, plus the end; and the states there.

        Returns (t_tdb_s (m,), states (m, 6)). A grid point within 1 ms of the end is replaced
        by the end itself. Raises ValueError for a step that is not a positive number.
        """
        if not (np.isfinite(step_s) and step_s > 0.0):
            raise ValueError(f"the sampling step must be a positive number of seconds, got {step_s!r}")
        span = self.end_tdb_s - self.start_tdb_s
        grid = self.start_tdb_s + step_s * np.arange(int(np.floor(span / step_s)) + 1)
        t = np.append(grid[grid < self.end_tdb_s - 1e-3], self.end_tdb_s)
        return t, self.state_at(t)

    def altitude_km(self, t_tdb_s: float | np.ndarray | None = None) -> float | np.ndarray:
        """Altitude (km) over the 1737.4 km sphere at the samples (``None``) or the given epochs.

        Raises EpochOutOfRangeError for epochs outside the span.
        """
        states = self.states_icrf if t_tdb_s is None else self.state_at(t_tdb_s)
        alt = np.linalg.norm(states[..., :3], axis=-1) - MOON_RADIUS_KM
        return float(alt) if np.ndim(alt) == 0 else alt

    def apsides(self) -> Apsides:
        """Periapsis and apoapsis passes with their altitudes over the 1737.4 km sphere.

        Taken from the events of kind ``periapsis``/``apoapsis`` when the trajectory has any;
        otherwise found where the radial velocity r.v changes sign between samples and refined
        by bisection on :meth:`state_at` (to < 1e-6 s); a pass at the very first sample is not
        counted, as the event finder does not report one at the start either.
        """
        if any(e.kind in ("periapsis", "apoapsis") for e in self.events):
            out = []
            for kind in ("periapsis", "apoapsis"):
                found = sorted((e for e in self.events if e.kind == kind), key=lambda e: e.t_tdb_s)
                out.append(np.array([e.t_tdb_s for e in found], dtype=float))
                out.append(np.array([np.linalg.norm(np.asarray(e.state)[:3]) for e in found]) - MOON_RADIUS_KM)
            return Apsides(*out)
        r, v = self.states_icrf[:, :3], self.states_icrf[:, 3:]
        rdot = np.sum(r * v, axis=1)
        # r.v within rounding of zero counts as zero: a pass exactly at a sample is found once,
        # and one at the first sample (e.g. a release at periapsis) is not a turn inside the span.
        rdot[np.abs(rdot) <= 1e-12 * np.linalg.norm(r, axis=1) * np.linalg.norm(v, axis=1)] = 0.0
        peri_t = self._radial_turns(rdot, +1.0)
        apo_t = self._radial_turns(rdot, -1.0)
        return Apsides(peri_t, self._altitudes(peri_t), apo_t, self._altitudes(apo_t))

    def _altitudes(self, t: np.ndarray) -> np.ndarray:
        return self.altitude_km(t) if len(t) else np.zeros(0)

    def _radial_turns(self, rdot: np.ndarray, sign: float) -> np.ndarray:
        """Epochs where ``sign * r.v`` goes from negative to non-negative (sign +1: periapsis)."""
        g = sign * rdot
        i = np.flatnonzero((g[:-1] < 0.0) & (g[1:] >= 0.0))
        lo, hi = self.t_tdb_s[i].copy(), self.t_tdb_s[i + 1].copy()
        if len(i) == 0:
            return lo
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            x = self.state_at(mid)
            below = sign * np.sum(x[:, :3] * x[:, 3:], axis=1) < 0.0
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def lat_lon_me_deg(self, t_tdb_s: float | np.ndarray | None = None):
        """Sub-spacecraft planetocentric latitude and east longitude (deg, lon in [-180, 180)), MOON_ME.

        At the samples (``None``) or the given epochs; floats for a scalar epoch, else arrays.
        Raises EpochOutOfRangeError outside the span or the lunar orientation kernels.
        """
        t = self.t_tdb_s if t_tdb_s is None else np.asarray(t_tdb_s, dtype=float)
        states = self.states_icrf if t_tdb_s is None else self.state_at(t)
        return _lat_lon_me_deg(t, states[..., :3])

    def to_oem(
        self,
        path: str | Path,
        step_s: float = 60.0,
        *,
        object_name: str | None = None,
        object_id: str | None = None,
        originator: str = "qamar",
    ) -> Path:
        """Write the trajectory sampled every ``step_s`` s as a CCSDS OEM 2.0 (KVN), atomically.

        Moon-centred, REF_FRAME = ICRF, TIME_SYSTEM = TDB, INTERPOLATION = HERMITE of degree 3
        (what :meth:`state_at` does without dense output). Names default to
        ``meta['object_name']``/``meta['object_id']``, else ``UNKNOWN``. Raises ValueError for
        a bad step or a name that is not one line; OSError if the folder is not writable.
        """
        t, states = self.sample(step_s)
        name = object_name or self.meta.get("object_name") or "UNKNOWN"
        segment = OemSegment(
            object_name=name,
            object_id=object_id or self.meta.get("object_id") or "UNKNOWN",
            t_tdb_s=t,
            states=states,
            center_name="MOON",
            ref_frame="ICRF",
            interpolation="HERMITE",
            interpolation_degree=3,
            comments=(
                "Moon-centred states, ICRF axes, km and km/s; epochs in TDB.",
                f"Sampled every {step_s:g} s from the qamar {__version__} trajectory.",
            ),
        )
        return write_oem(path, [segment], originator=originator)

    def to_spk(self, path: str | Path, step_s: float | None = 60.0, **options: Any) -> Path:
        """Write the trajectory as a SPICE SPK (type 13, Moon-centred, J2000 = ICRF), atomically.

        Sampled every ``step_s`` s (``None``: the samples themselves); ``options`` are those of
        :func:`qamar.io.spk.write_spk` (``naif_id``, ``object_name``, ``degree``,
        ``overwrite``...), which states what it raises.
        """
        return write_spk(self, path, step_s=step_s, **options)

    def to_csv(self, path: str | Path, step_s: float = 60.0) -> Path:
        """Write the trajectory sampled every ``step_s`` s as CSV, atomically.

        Columns: utc (ISO 8601, ms), tdb_s (past J2000), x_km, y_km, z_km, vx_km_s, vy_km_s,
        vz_km_s (Moon-centred ICRF), alt_km (over the 1737.4 km sphere), lat_deg, lon_deg
        (planetocentric, MOON_ME). Raises ValueError for a bad step, EpochOutOfRangeError
        outside the lunar orientation kernels, OSError if the folder is not writable.
        """
        t, states = self.sample(step_s)
        alt = np.linalg.norm(states[:, :3], axis=1) - MOON_RADIUS_KM
        lat, lon = _lat_lon_me_deg(t, states[:, :3])
        utc = tdb_s_to_utc(t, digits=3)
        header = "utc,tdb_s,x_km,y_km,z_km,vx_km_s,vy_km_s,vz_km_s,alt_km,lat_deg,lon_deg"
        rows = [
            f"{u},{tk:.6f},{x[0]:.6f},{x[1]:.6f},{x[2]:.6f},{x[3]:.9f},{x[4]:.9f},{x[5]:.9f},{a:.6f},{la:.6f},{lo:.6f}"
            for u, tk, x, a, la, lo in zip(utc, t.tolist(), states.tolist(), alt.tolist(), lat.tolist(), lon.tolist())
        ]
        path = Path(path)
        with atomic_write(path) as stream:
            stream.write(header + "\n" + "\n".join(rows) + "\n")
        return path

    @classmethod
    def from_oem(cls, path: str | Path, segment: int | None = None) -> Trajectory:
        """Read a Moon-centred CCSDS OEM (ICRF or EME2000 axes, any supported time system).

        ``segment`` picks one segment (0-based); by default all segments are joined in file
        order, a boundary epoch repeated by the next segment being taken from that next segment
        (the interpolant does not keep a velocity jump there: read segments one by one to keep
        manoeuvres exact). ``meta`` records the names, the file's REF_FRAME and TIME_SYSTEM,
        the header and the covariances. Raises DataFormatError for a malformed file, another
        centre or frame, overlapping segments or a bad segment index.
        """
        oem = read_oem(path)
        if segment is not None and not 0 <= segment < len(oem.segments):
            raise DataFormatError(
                f"{path} has {len(oem.segments)} segment(s); pick a segment from 0 to {len(oem.segments) - 1}."
            )
        chosen = oem.segments if segment is None else (oem.segments[segment],)
        for seg in chosen:
            if seg.center_name.upper() != "MOON":
                raise DataFormatError(f"{path}: CENTER_NAME is {seg.center_name}; qamar reads Moon-centred OEMs only.")
            if seg.ref_frame.upper() not in OEM_FRAMES:
                raise DataFormatError(
                    f"{path}: REF_FRAME is {seg.ref_frame}; qamar reads {' or '.join(OEM_FRAMES)} axes only, "
                    "convert the file to one of them."
                )
        t_parts, state_parts = [], []
        for seg in chosen:
            t, states = seg.t_tdb_s, seg.states
            if t_parts and t[0] < t_parts[-1][-1]:
                raise DataFormatError(
                    f"{path}: segments overlap in time at {tdb_s_to_utc(float(t[0]))} UTC; "
                    "read them one by one with segment=."
                )
            if t_parts and t[0] == t_parts[-1][-1]:
                t_parts[-1], state_parts[-1] = t_parts[-1][:-1], state_parts[-1][:-1]
            t_parts.append(t)
            state_parts.append(states)
        first = chosen[0]
        meta = {
            "object_name": first.object_name,
            "object_id": first.object_id,
            "source": str(path),
            "ref_frame": [seg.ref_frame for seg in chosen],
            "time_system": [seg.metadata.get("TIME_SYSTEM") for seg in chosen],
            "oem_header": dict(oem.header),
            "covariances": [cov for seg in chosen for cov in seg.covariances],
        }
        return cls(np.concatenate(t_parts), np.concatenate(state_parts), meta=meta)


def initial_state_from_oem(path: str | Path, epoch_utc: str | None = None) -> InitialState:
    """The state to start a propagation from, read from a Moon-centred CCSDS OEM.

    Without ``epoch_utc``: the file's first epoch and state, as written. With it (ISO 8601
    UTC, see :func:`qamar.time.utc_to_tdb_s`): the state interpolated there by
    :meth:`Trajectory.state_at` (cubic Hermite on the file's samples, exact at them); the
    epoch must lie within the file's span. Interpolation trusts the file: where its states
    scatter about a smooth orbit (estimates), the velocity between samples is off by about
    1.5 x scatter / spacing (10 m/s between the 100-300 m scattered, 1-minute LRO test
    states), so start such files at a sample epoch. EME2000 states are taken as ICRF
    (:data:`OEM_FRAMES`). Returns ``(t_tdb_s, state_icrf (6,))``.

    Raises DataFormatError for a malformed file, another centre or frame, or an epoch that is
    not ISO 8601; EpochOutOfRangeError (naming the file's span in UTC) for an epoch outside it.
    """
    trajectory = Trajectory.from_oem(path)
    if epoch_utc is None:
        return InitialState(trajectory.start_tdb_s, trajectory.states_icrf[0].copy())
    t_tdb_s = float(utc_to_tdb_s(epoch_utc))
    if not trajectory.start_tdb_s - _EDGE_S <= t_tdb_s <= trajectory.end_tdb_s + _EDGE_S:
        raise EpochOutOfRangeError(
            f"epoch {epoch_utc} is outside {path}, which spans {tdb_s_to_utc(trajectory.start_tdb_s)} to "
            f"{tdb_s_to_utc(trajectory.end_tdb_s)} UTC; pick an epoch within that span, or none to start "
            "from the file's first state."
        )
    return InitialState(t_tdb_s, trajectory.state_at(t_tdb_s))

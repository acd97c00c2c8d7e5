"""Chebyshev series of the Moon's ICRF -> PA Euler angles, shared by the Orekit and heyoka peers.

The DE440 lunar principal-axes orientation is stored in the binary PCK ``moon_pa_de440`` as
piecewise (8-day) Chebyshev series of the 3-1-3 Euler angles (phi, theta, psi), with
ICRF -> PA = R3(psi) R1(theta) R3(phi) (NAIF PCK Required Reading, "Binary PCK" and the
"J2000 to body-fixed" convention). The peers need the rotation as one smooth function of time
(a Java method for Orekit, an expression of time for heyoka), so each angle is refitted here
by a single Chebyshev series over the propagation span, from values read with jplephem's PCK
reader (independent of qamar's own reader).

Phi and psi are shifted by whole turns before fitting so that the series' constant terms stay
small; the rotation is unchanged. The fit error is measured against jplephem on a grid four
times denser than the fit nodes. Its floor is jplephem's own rounding of psi (a value of about
4.6e3 rad in 2024, hence ~5e-12 rad); the PCK's record boundaries (kinks at 1e-12 rad level)
slow the convergence of a single series, so the degree grows with the span.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial import chebyshev

from qamar import data

J2000_JD = 2451545.0
DAY_S = 86400.0


@lru_cache(maxsize=1)
def _pck_segments() -> tuple:
    from jplephem.pck import PCK

    return tuple(PCK.open(data.path("moon_pa_de440")).segments)


def pck_euler_angles_rad(t_tdb_s: np.ndarray) -> np.ndarray:
    """(3, n) Euler angles phi, theta, psi (rad) of ICRF -> PA from the DE440 PA PCK (jplephem).

    ``t_tdb_s`` (TDB seconds past J2000) must lie in one segment of the kernel; raises
    ValueError otherwise.
    """
    t = np.atleast_1d(np.asarray(t_tdb_s, dtype=float))
    for segment in _pck_segments():
        if segment.initial_second <= t.min() and t.max() <= segment.final_second:
            day = np.floor(t / DAY_S)
            return np.asarray(segment.compute(J2000_JD + day, (t - day * DAY_S) / DAY_S, derivative=False))
    raise ValueError(f"epochs {t.min()}..{t.max()} TDB s are not inside one segment of the Moon PA kernel")


def euler_313_matrix(phi_rad: float, theta_rad: float, psi_rad: float) -> np.ndarray:
    """R3(psi) R1(theta) R3(phi): the frame rotation whose rows are the new axes in old coordinates."""

    def r1(a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])

    def r3(a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    return r3(psi_rad) @ r1(theta_rad) @ r3(phi_rad)


@dataclass(frozen=True)
class EulerFit:
    """Chebyshev series of (phi, theta, psi) over ``[start_tdb_s, start_tdb_s + span_s]``.

    ``coef_rad[i, k]`` multiplies ``T_k(x)``, ``x = 2 (t_tdb_s - start_tdb_s) / span_s - 1``;
    ``max_error_rad`` is the largest difference from jplephem found on the check grid.
    """

    start_tdb_s: float
    span_s: float
    coef_rad: np.ndarray
    max_error_rad: float

    @property
    def degree(self) -> int:
        return self.coef_rad.shape[1] - 1

    def scaled_time(self, t_tdb_s):
        """The Chebyshev variable x in [-1, 1] of TDB epochs."""
        return 2.0 * (np.asarray(t_tdb_s, dtype=float) - self.start_tdb_s) / self.span_s - 1.0

    def angles_rad(self, t_tdb_s) -> np.ndarray:
        """(3, ...) fitted phi, theta, psi (rad) at TDB epochs (psi, phi shifted by whole turns)."""
        return np.stack([chebyshev.chebval(self.scaled_time(t_tdb_s), c) for c in self.coef_rad])

    def icrf_to_pa(self, t_tdb_s: float) -> np.ndarray:
        """(3, 3) rotation ICRF -> PA at one TDB epoch, from the fitted angles."""
        return euler_313_matrix(*self.angles_rad(float(t_tdb_s)))


def default_degree(span_s: float) -> int:
    """Series degree that brings a single fit near the jplephem floor (~5e-12 rad) for spans up to ~35 days."""
    return int(min(260, 40 + 6 * span_s / DAY_S))


def fit_euler_angles(
    t0_tdb_s: float, duration_s: float, degree: int | None = None, margin_s: float = 600.0
) -> EulerFit:
    """Fit the ICRF -> PA Euler angles over ``[t0_tdb_s - margin_s, t0_tdb_s + duration_s + margin_s]``.

    The fit is a least-squares Chebyshev series on ``2 (degree + 1)`` Chebyshev nodes of the
    first kind. Raises ValueError if the span is not inside one segment of the PCK.
    """
    start = t0_tdb_s - margin_s
    span = duration_s + 2.0 * margin_s
    degree = default_degree(span) if degree is None else degree
    n = 2 * (degree + 1)
    x = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    angles = pck_euler_angles_rad(start + 0.5 * (x + 1.0) * span)
    turns = 2.0 * np.pi * np.round(angles[:, :1] / (2.0 * np.pi))
    coef = np.stack([chebyshev.chebfit(x, a, degree) for a in angles - turns])
    x_check = np.linspace(-1.0, 1.0, 4 * n + 1)
    truth = pck_euler_angles_rad(start + 0.5 * (x_check + 1.0) * span) - turns
    fitted = np.stack([chebyshev.chebval(x_check, c) for c in coef])
    return EulerFit(float(start), float(span), coef, float(np.max(np.abs(fitted - truth))))

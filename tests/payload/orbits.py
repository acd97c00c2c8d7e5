"""Analytic test trajectories: Keplerian circles around the Moon (no propagation)."""

from __future__ import annotations

import numpy as np

from qamar.constants import GM_MOON_DE440_KM3_S2, MOON_RADIUS_KM
from qamar.orbit.trajectory import Trajectory
from qamar.time import utc_to_tdb_s


def circular(alt_km: float, inc_deg: float = 90.0, raan_deg: float = 0.0, epoch_utc: str = "2024-05-10T00:00:00Z",
             days: float = 1.0, phase_deg: float = 0.0) -> Trajectory:
    """A circular orbit at ``alt_km`` over the 1737.4 km sphere, Moon-centred ICRF, exact dense output."""
    a = MOON_RADIUS_KM + alt_km
    n = np.sqrt(GM_MOON_DE440_KM3_S2 / a**3)
    i, o = np.radians(inc_deg), np.radians(raan_deg)
    e1 = np.array([np.cos(o), np.sin(o), 0.0])
    e2 = np.array([-np.sin(o) * np.cos(i), np.cos(o) * np.cos(i), np.sin(i)])
    t0 = float(utc_to_tdb_s(epoch_utc))

    def dense(t):
        u = n * (np.asarray(t, float) - t0) + np.radians(phase_deg)
        r = a * (np.cos(u)[:, None] * e1 + np.sin(u)[:, None] * e2)
        v = a * n * (-np.sin(u)[:, None] * e1 + np.cos(u)[:, None] * e2)
        return np.hstack([r, v])

    t = t0 + np.linspace(0.0, days * 86400.0, max(3, int(days * 86400.0 / 60.0) + 1))
    return Trajectory(t, dense(t), dense)

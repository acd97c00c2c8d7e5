"""Imaging windows on a circular polar orbit against the analytic pass duration."""

import numpy as np
import pytest

from qamar.constants import GM_MOON_DE440_KM3_S2, MOON_RADIUS_KM
from qamar.payload.camera import camera
from qamar.payload.opportunities import Constraints, find_opportunities, write_csv
from qamar.payload.targets import point
from tests.payload.orbits import circular

NADIR = camera("nadir", 5.5, focal_length_mm=25)


def _target_under_track(trajectory, t):
    lat, lon = trajectory.lat_lon_me_deg(np.array([t]))
    return point(float(lat[0]), float(lon[0]), "under")


def test_a_point_on_the_ground_track_is_seen_for_the_analytic_time():
    """A ground point crossed by the track stays in a nadir footprint while its central angle from
    the sub-spacecraft point is below gamma = asin((r/R) sin a) - a along-track (see
    test_footprint): for 2 gamma / n seconds, n the mean motion; the Moon turns under the orbit
    by 0.3 % of the footprint in that time."""
    h_km = 100.0
    trajectory = circular(h_km, inc_deg=90.0, days=0.1)
    t_mid = trajectory.start_tdb_s + 3000.0
    a = np.radians(NADIR.fov_deg[0]) / 2
    r = MOON_RADIUS_KM + h_km
    gamma = np.arcsin(r / MOON_RADIUS_KM * np.sin(a)) - a
    expected_s = 2 * gamma / np.sqrt(GM_MOON_DE440_KM3_S2 / r**3)
    search = find_opportunities(trajectory, [NADIR], _target_under_track(trajectory, t_mid),
                                Constraints(sun_elev_deg=(-90.0, 90.0), max_emission_deg=None), step_s=5.0,
                                start_tdb_s=t_mid - 600.0, stop_tdb_s=t_mid + 600.0)
    (window,) = search.opportunities
    assert window.duration_s == pytest.approx(expected_s, rel=0.005)
    assert window.best_tdb_s == pytest.approx(t_mid, abs=5.0)
    assert window.gsd_m == pytest.approx(h_km * 1e3 * NADIR.ifov_rad, rel=1e-3)


def test_no_window_names_the_condition_that_failed(tmp_path):
    trajectory = circular(100.0, inc_deg=90.0, days=0.1)
    t_mid = trajectory.start_tdb_s + 3000.0
    target = _target_under_track(trajectory, t_mid)
    span = {"start_tdb_s": t_mid - 600.0, "stop_tdb_s": t_mid + 600.0, "step_s": 5.0}
    elev = find_opportunities(trajectory, [NADIR], target, Constraints(sun_elev_deg=(-90, 90)), **span).opportunities[0].sun_elev_deg
    # Exclude the Sun elevation actually seen there, then demand a GSD finer than possible.
    lo, hi = (elev + 5.0, 90.0) if elev < 80.0 else (-90.0, elev - 5.0)
    dark = find_opportunities(trajectory, [NADIR], target, Constraints(sun_elev_deg=(lo, hi)), **span)
    assert not dark.opportunities and "Sun stood between" in dark.explain()
    blurred = find_opportunities(trajectory, [NADIR], target, Constraints(sun_elev_deg=(-90, 90), max_gsd_m=1.0), **span)
    assert not blurred.opportunities and "GSD" in blurred.explain()
    with pytest.raises(ValueError):
        write_csv(blurred.opportunities, tmp_path / "o.csv")


def test_tracking_widens_the_window_and_ranks_best_first(tmp_path):
    trajectory = circular(100.0, inc_deg=90.0, days=0.1)
    t_mid = trajectory.start_tdb_s + 3000.0
    target = _target_under_track(trajectory, t_mid)
    span = {"start_tdb_s": t_mid - 900.0, "stop_tdb_s": t_mid + 900.0, "step_s": 5.0}
    c = Constraints(sun_elev_deg=(-90, 90), max_emission_deg=None)
    fixed = find_opportunities(trajectory, [NADIR], target, c, **span).opportunities[0]
    tracked = find_opportunities(trajectory, [NADIR], target, Constraints(sun_elev_deg=(-90, 90), track=True,
                                                                         max_off_nadir_deg=30.0), **span).opportunities[0]
    assert tracked.duration_s > 3 * fixed.duration_s
    write_csv([tracked, fixed], tmp_path / "o.csv")
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0].startswith("rank,camera,target,start_utc") and len(lines) == 3

"""The orbiter at work: Earth contacts and downlinks, imaging plans and coverage of a scenario.

One function an analysis, shared by ``qamar comms``, ``qamar payload`` and the ``qamar run``
report, so the command line and the report can never disagree. Times are TDB seconds past
J2000 unless a name says UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qamar.comms import CommsSpec
from qamar.comms.budget import Track, contact_summary, schedule_downlinks
from qamar.comms.visibility import MAX_LIGHT_TIME_S, Contacts, contacts
from qamar.errors import DataFormatError
from qamar.mission.scenario import Scenario
from qamar.orbit.trajectory import Trajectory
from qamar.payload.camera import Camera, cameras_from_spec
from qamar.payload.footprint import check_sees_moon
from qamar.payload.opportunities import Constraints, OpportunitySearch, find_opportunities
from qamar.payload.plan import ImagingPlan, plan_imaging
from qamar.payload.targets import Target


@dataclass(frozen=True)
class CommsAnalysis:
    """Passes over the scenario's stations, the downlink tracks chosen, and their summary."""

    spec: CommsSpec
    contacts: Contacts
    tracks: list[Track]
    summary: dict


def analyse_comms(
    scenario: Scenario,
    trajectory: Trajectory,
    start_tdb_s: float | None = None,
    stop_tdb_s: float | None = None,
    min_elev_deg: float | None = None,
    step_s: float = 30.0,
) -> CommsAnalysis:
    """Contacts of ``trajectory`` with the scenario's stations (default: the mission-brief set).

    The span defaults to the whole trajectory, less the first light time. Raises
    NoContactError when no station hears the spacecraft at all.
    """
    spec = scenario.comms or CommsSpec()
    first = trajectory.start_tdb_s + MAX_LIGHT_TIME_S  # the signal needs the light time to arrive
    start = first if start_tdb_s is None else max(start_tdb_s, first)
    stop = trajectory.end_tdb_s if stop_tdb_s is None else min(stop_tdb_s, trajectory.end_tdb_s)
    found = contacts(
        trajectory, spec.stations, start, stop, spec.min_elev_deg if min_elev_deg is None else min_elev_deg,
        step_s=step_s, dut1_s=spec.dut1_s,
    )
    found.require_passes()
    tracks = schedule_downlinks(found.passes, spec.radio, spec.downlink)
    summary = {"scenario": scenario.name, "spacecraft": scenario.spacecraft.name,
               **contact_summary(found, spec.radio, spec.downlink)}
    return CommsAnalysis(spec, found, tracks, summary)


def scenario_cameras(scenario: Scenario, trajectory: Trajectory) -> list[Camera]:
    """The scenario's cameras, each checked to see the Moon somewhere along ``trajectory``.

    Raises DataFormatError without a payload block, PointingError for a camera that never
    sees the Moon.
    """
    if scenario.payload is None:
        raise DataFormatError(f"scenario {scenario.name!r} has no payload block; add payload.cameras "
                              "(see scenarios/icube-q.yaml)")
    cameras = cameras_from_spec(scenario.payload)
    for cam in cameras:
        check_sees_moon(cam, trajectory)
    return cameras


@dataclass(frozen=True)
class ImagingAnalysis:
    """Opportunity searches for each target and the plan that fits storage and downlink."""

    searches: list[OpportunitySearch]
    plan: ImagingPlan | None

    @property
    def opportunities(self) -> list:
        """Every opportunity of every target."""
        return [o for s in self.searches for o in s.opportunities]


def analyse_imaging(
    scenario: Scenario,
    trajectory: Trajectory,
    cameras: Sequence[Camera],
    targets: Sequence[Target],
    constraints: Constraints,
    tracks: Sequence[Track],
    *,
    images_per_target: int = 1,
    step_s: float = 10.0,
) -> ImagingAnalysis:
    """Search every target, then plan images that fit on-board storage and the downlink tracks.

    ``plan`` is None when no target has an opportunity (each search's ``explain()`` says why).
    """
    searches = [find_opportunities(trajectory, cameras, target, constraints, step_s=step_s) for target in targets]
    found = [o for s in searches for o in s.opportunities]
    if not found:
        return ImagingAnalysis(searches, None)
    plan = plan_imaging(found, cameras, tracks, scenario.payload.storage_mbit * 1e6, trajectory.start_tdb_s,
                        trajectory.end_tdb_s, images_per_target=images_per_target)
    return ImagingAnalysis(searches, plan)

"""Shared helpers of the scenario tests."""

from __future__ import annotations

from qamar.mission.scenario import Scenario


def scenario_with_changes(document: dict, changes: dict) -> Scenario:
    """The scenario of a YAML ``document`` after setting each dotted key of ``changes``
    (e.g. ``{"rover.light.days": 2}``) to its value."""
    for dotted, value in changes.items():
        node = document
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    return Scenario.model_validate(document)

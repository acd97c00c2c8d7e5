"""Targets: gazetteer look-up (IAU values quoted from the catalogue file), suggestions, areas."""

import numpy as np
import pytest

from qamar.payload.targets import TargetNotFoundError, band, feature, point, polygon


def test_named_features_ignore_case_accents_and_spacing():
    shackleton = feature("  shackleton ")
    # IAU gazetteer: Shackleton, diameter 20.92 km, centre 89.67 S, 129.78 E.
    assert (shackleton.name, shackleton.diameter_km) == ("Shackleton", 20.92)
    assert (shackleton.lat_deg, shackleton.lon_deg) == pytest.approx((-89.67, 129.78), abs=1e-9)
    assert feature("ABUL WAFA").name == "Abul Wáfa"
    assert shackleton.contains(np.array([-90.0, -89.0]), np.array([0.0, 129.78])).tolist() == [True, False]


def test_unknown_names_suggest_close_matches():
    with pytest.raises(TargetNotFoundError, match="did you mean 'Shackleton'"):
        feature("Shakleton")
    with pytest.raises(TargetNotFoundError, match="no similar name"):
        feature("Xqzzyv")


def test_polygons_and_bands_across_the_antimeridian_and_poles():
    square = polygon([-10, -10, 10, 10], [170, -170, -170, 170], "dateline")
    assert square.contains(np.array([0.0, 0.0, 0.0]), np.array([180.0, -175.0, 160.0])).tolist() == [True, True, False]
    assert band(-90, -80).contains(np.array([-85.0, -75.0]), np.array([0.0, 0.0])).tolist() == [True, False]
    with pytest.raises(ValueError, match="hemisphere"):
        polygon([0, 0, 0], [0, 120, 240])
    assert point(10.0, 190.0).lon_deg == pytest.approx(-170.0)

"""The imaging payload: cameras, footprints, targets, opportunities, imaging plans and coverage.

- :mod:`qamar.payload.camera`: pinhole cameras, mounts, LVLH and target-tracking attitude;
  :class:`~qamar.payload.camera.PayloadSpec` is the ``payload:`` block of a scenario.
- :mod:`qamar.payload.footprint`: footprints on the sphere (limb-closed), image-centre GSD and
  light angles, points in view.
- :mod:`qamar.payload.targets`: IAU-named features, points, polygons and latitude bands.
- :mod:`qamar.payload.opportunities`: imaging windows under light/GSD/emission limits, ranked.
- :mod:`qamar.payload.plan`: an imaging plan that fits on-board storage and the downlink.
- :mod:`qamar.payload.coverage`: cumulative coverage on an equal-area HEALPix grid.
- :mod:`qamar.payload.plots`: coverage maps and the opportunity timeline.
"""

from qamar.payload.camera import Camera, CameraSpec, PayloadSpec, PointingError, camera, cameras_from_spec

__all__ = ["Camera", "CameraSpec", "PayloadSpec", "PointingError", "camera", "cameras_from_spec"]

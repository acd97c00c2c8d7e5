"""qamar: mission analysis for small lunar missions.

Data flows one way: ``qamar.data`` (files) -> ``qamar.time`` / ``qamar.ephemeris`` /
``qamar.frames`` -> physics engines (``qamar.orbit``) -> ``qamar.mission`` -> ``qamar.cli``.
"""

__version__ = "0.1.0"

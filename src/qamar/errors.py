"""qamar's own exception types.

Every error a user can cause raises one of these with a sentence that says what to do.
The CLI turns them into a one-line message and exit code 2.
"""


class QamarError(Exception):
    """Base class of every error a user can cause and fix."""


class DataNotFoundError(QamarError):
    """A registered data file could not be found or fetched."""


class DataIntegrityError(QamarError):
    """A data file's SHA-256 does not match the registry."""


class DataFormatError(QamarError):
    """A data file could not be parsed (malformed gravity field, OEM, scenario...)."""


class EpochOutOfRangeError(QamarError):
    """An epoch lies outside the coverage of a kernel or table."""


class InvalidOrbitError(QamarError):
    """An orbit definition is not physical (periapsis below the surface, e < 0...)."""


class ModelConfigError(QamarError):
    """A force model was asked for something it cannot do (unknown field, degree too high...)."""

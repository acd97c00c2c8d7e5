"""Errors of the operations layer: a bad dictionary, a bad command, a packet that cannot be used.

They derive from qamar's own types (qamar.errors), so the CLI reports them as user errors.
"""

from __future__ import annotations

from qamar.errors import DataFormatError, QamarError


class DictionaryError(DataFormatError):
    """A command/telemetry dictionary file is malformed or inconsistent."""


class CommandError(QamarError):
    """A command line or command argument is invalid (unknown name, wrong type, out of range)."""


class PacketError(QamarError):
    """A packet could not be decoded or was refused.

    ``reason`` is a short upper-case code (``MALFORMED``, ``UNKNOWN_APID``, ``BAD_MAC``...)
    under which decoders and verifiers count it.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class CommandRefusedError(PacketError):
    """A telecommand was refused by the rover: bad MAC, replayed or too old, out-of-range argument."""

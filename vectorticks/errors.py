"""The one error hierarchy of vectorticks: catch ``VectorticksError`` to catch them all."""

from __future__ import annotations


class VectorticksError(Exception):
    """Base class of every error raised by vectorticks."""


class SchemaError(VectorticksError, ValueError):
    """Columns of the wrong name, dtype or length were given."""


class InstrumentError(VectorticksError, ValueError):
    """An instruments file or table is malformed."""


class PayloadError(VectorticksError, ValueError):
    """A packed window payload is malformed: truncated, corrupted or of an unknown version."""


class SinkError(VectorticksError):
    """A sink failed to write; the sender retries it."""


class ConfigError(VectorticksError, ValueError):
    """Settings are inconsistent (for example a Redis sink without a URL)."""


class FrameError(VectorticksError, ValueError):
    """A Kite binary frame is malformed: a count or length runs past the end, a packet
    length is unknown, or bytes trail the last packet. ``offset`` is the byte offset of
    the fault within the frame."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.offset = offset


class TickLogError(VectorticksError, ValueError):
    """A tick log is not a tick log, or a record before its end is corrupt."""


class PreviewError(VectorticksError):
    """Prometheus could not be reached or answered garbage, or a dashboard is unreadable.

    A query Prometheus *rejects* (bad PromQL, a variable left unsubstituted) is not raised:
    ``vectorticks.preview`` reports it per panel in its summary."""

"""Tick log: the raw Kite frames of a session with their receive times, for exact replay.

Format (all integers little-endian, like the window payload)::

    file header   8 B   magic b"VTKL", uint16 version (1), uint16 flags (0)
    record       16 B   uint32 length, int64 received_ns, uint32 crc32
                        then ``length`` bytes: the WebSocket binary message as received

The CRC-32 (zlib) covers the 8 ``received_ns`` bytes followed by the frame. A record of
length 0 is a *clock mark*: the engine was polled at ``received_ns`` with no frame (the
live loop's idle polls), so a replay cuts windows exactly where the live run did. A
record is at most :data:`MAX_RECORD` bytes (Kite's largest frame, 3,000 full-mode
packets, is 558,002 bytes); the reader bounds-checks every length before reading it.

Files rotate per IST date of ``received_ns``: ``<prefix>-YYYY-MM-DD.vtl``, and
``<prefix>-YYYY-MM-DD.<k>.vtl`` (k = 1, 2, …) when a writer starts on a day whose file
exists — a writer never appends to an existing file, so a torn tail left by a crash
stays where it is and the reader skips it with a warning. Next to each log file the
writer can leave the instruments it ran with, ``<log name>.instruments.csv`` (Kite CSV
format), which :func:`sidecar_path` names and ``vectorticks replay`` loads by default.

:class:`FrameFeeder` is the one path from frames to the engine, shared by the live
source and :func:`replay`: log (when live), decode, ingest, poll the engine at the
frame's receive time, count. Replaying a log with the same settings therefore gives the
same windows and byte-identical payloads as the run that recorded it.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from .errors import FrameError, TickLogError
from .kite import decode_frame

__all__ = [
    "MAGIC",
    "MAX_RECORD",
    "FeedStats",
    "FrameFeeder",
    "Record",
    "TickLogError",
    "TickLogReader",
    "TickLogWriter",
    "log_files",
    "replay",
    "sidecar_path",
]

log = logging.getLogger(__name__)

MAGIC = b"VTKL"
VERSION = 1
#: Largest frame a record may hold (bytes).
MAX_RECORD = 1 << 20
_FILE_HEADER = struct.Struct("<4sHH")
_RECORD = struct.Struct("<IqI")
_NS = struct.Struct("<q")
_SUFFIX = ".vtl"
_IST_OFFSET_NS = (5 * 3600 + 30 * 60) * 1_000_000_000
_DAY_NS = 86_400 * 1_000_000_000
_NAME = re.compile(r"^(?P<prefix>.+)-(?P<date>\d{4}-\d{2}-\d{2})(?:\.(?P<part>\d+))?\.vtl$")


def _crc(received_ns: int, frame: bytes | memoryview) -> int:
    return zlib.crc32(frame, zlib.crc32(_NS.pack(received_ns)))


def ist_date(received_ns: int) -> str:
    """The IST calendar date (``YYYY-MM-DD``) of an instant in ns since the epoch."""
    day = (received_ns + _IST_OFFSET_NS) // _DAY_NS
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


def sidecar_path(log_path: str | os.PathLike[str]) -> Path:
    """Where the instruments CSV of a log file lives: ``<log name>.instruments.csv``."""
    p = Path(log_path)
    return p.with_name(p.name.removesuffix(_SUFFIX) + ".instruments.csv")


def log_files(directory: str | os.PathLike[str], prefix: str | None = None) -> list[Path]:
    """The log files of a directory in replay order (by date, then part)."""
    found = []
    for p in Path(directory).iterdir():
        m = _NAME.match(p.name)
        if m and (prefix is None or m["prefix"] == prefix):
            found.append((m["date"], int(m["part"] or 0), m["prefix"], p))
    return [p for *_, p in sorted(found)]


# -- writing -----------------------------------------------------------------------------------


class TickLogWriter:
    """Append frames to the day's log file; rotate when the IST date of a record changes.

    Parameters
    ----------
    directory
        Where log files go (created if missing).
    prefix
        File name prefix (``kite`` → ``kite-2026-11-23.vtl``).
    instruments_csv
        Bytes of the instruments CSV the session runs with, written next to every log
        file this writer opens (see :func:`sidecar_path`).
    fsync
        ``os.fsync`` on every :meth:`flush` (durable across power loss).
    buffer_size
        Write buffer; records reach the OS on :meth:`flush`, rotation and :meth:`close`
        (or when the buffer fills). A crash can lose what is buffered and tear the last
        record; everything flushed before replays.

    Not thread-safe: one writer per engine loop.
    """

    def __init__(self, directory: str | os.PathLike[str], *, prefix: str = "kite",
                 instruments_csv: bytes | None = None, fsync: bool = False,
                 buffer_size: int = 1 << 20):
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"invalid log prefix {prefix!r}")
        self.directory = Path(directory)
        self.prefix = prefix
        self.instruments_csv = instruments_csv
        self.fsync = fsync
        self.buffer_size = buffer_size
        self.records = 0
        self.bytes_written = 0
        self.path: Path | None = None
        self._file: IO[bytes] | None = None
        self._day: int | None = None
        self.directory.mkdir(parents=True, exist_ok=True)

    def append(self, frame: bytes | bytearray | memoryview, received_ns: int) -> None:
        """Append one frame received at ``received_ns`` (an empty frame is a clock mark)."""
        n = len(frame)
        if n > MAX_RECORD:
            raise ValueError(f"frame of {n} bytes exceeds the log's {MAX_RECORD}-byte limit")
        day = (received_ns + _IST_OFFSET_NS) // _DAY_NS
        if day != self._day or self._file is None:
            self._open(day, received_ns)
        assert self._file is not None
        self._file.write(_RECORD.pack(n, received_ns, _crc(received_ns, frame)))
        if n:
            self._file.write(frame)
        self.records += 1
        self.bytes_written += _RECORD.size + n

    def mark(self, now_ns: int) -> None:
        """Record that the engine was polled at ``now_ns`` with no frame."""
        self.append(b"", now_ns)

    def flush(self) -> None:
        """Hand buffered records to the OS (and the disk, with ``fsync``)."""
        if self._file is not None:
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the current file (idempotent)."""
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self) -> TickLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, day: int, received_ns: int) -> None:
        self.close()
        date = ist_date(received_ns)
        part = 0
        while True:
            name = f"{self.prefix}-{date}{f'.{part}' if part else ''}{_SUFFIX}"
            path = self.directory / name
            try:
                f = open(path, "xb", buffering=self.buffer_size)  # never an existing file
            except FileExistsError:
                part += 1
                continue
            break
        f.write(_FILE_HEADER.pack(MAGIC, VERSION, 0))
        self._file, self.path, self._day = f, path, day
        self.bytes_written += _FILE_HEADER.size
        if self.instruments_csv is not None:
            sidecar_path(path).write_bytes(self.instruments_csv)
        log.info("tick log: writing %s", path)


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One log record: a frame (``b""`` for a clock mark) and its receive time."""

    received_ns: int
    frame: bytes
    offset: int  # of the record header in its file

    @property
    def is_mark(self) -> bool:
        return not self.frame


@dataclass(frozen=True, slots=True)
class TornTail:
    """The unreadable end of a log file that was skipped."""

    path: Path
    offset: int
    size: int  # bytes skipped
    reason: str


class TickLogReader:
    """Iterate the records of one log file, checking every length and CRC.

    A torn last record — the file ends inside it, its CRC fails and nothing follows it,
    or the rest of the file is zero bytes (a crash while writing) — ends the iteration
    with a warning and is described by :attr:`torn`. A bad record with valid data after
    it, a wrong magic or an unknown version raise :class:`TickLogError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_record: int = MAX_RECORD):
        self.path = Path(path)
        self.max_record = max_record
        self.torn: TornTail | None = None
        self.size = self.path.stat().st_size

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as f:
            head = f.read(_FILE_HEADER.size)
            if len(head) < _FILE_HEADER.size:
                if head.strip(b"\0") and not MAGIC.startswith(head[:4]):
                    raise TickLogError(f"{self.path} is not a tick log (magic {head[:4]!r})")
                self._torn(0, f"{len(head)} bytes, shorter than the file header")
                return
            magic, version, _flags = _FILE_HEADER.unpack(head)
            if magic != MAGIC:
                raise TickLogError(f"{self.path} is not a tick log (magic {magic!r})")
            if version != VERSION:
                raise TickLogError(f"{self.path}: unsupported tick log version {version}")
            offset = _FILE_HEADER.size
            while offset < self.size:
                remaining = self.size - offset
                if remaining < _RECORD.size:
                    self._torn(offset, f"{remaining} bytes, shorter than a record header")
                    return
                length, received_ns, crc = _RECORD.unpack(f.read(_RECORD.size))
                if length > self.max_record:
                    if self._zero_from(f, offset):
                        self._torn(offset, "zero bytes")
                        return
                    raise TickLogError(f"{self.path}: record at byte offset {offset} "
                                       f"announces {length} bytes (limit {self.max_record})")
                end = offset + _RECORD.size + length
                if end > self.size:
                    self._torn(offset, f"record announces {length} bytes, "
                                       f"{remaining - _RECORD.size} present")
                    return
                frame = f.read(length)
                if _crc(received_ns, frame) != crc:
                    if end == self.size or self._zero_from(f, offset):
                        self._torn(offset, "CRC mismatch in the last record")
                        return
                    raise TickLogError(f"{self.path}: CRC mismatch in the record at byte "
                                       f"offset {offset}")
                yield Record(received_ns, frame, offset)
                offset = end

    def _zero_from(self, f: IO[bytes], offset: int) -> bool:
        """Whether every byte from ``offset`` to the end is zero (restores the position)."""
        pos = f.tell()
        try:
            f.seek(offset)
            while chunk := f.read(1 << 20):
                if chunk.strip(b"\0"):
                    return False
            return True
        finally:
            f.seek(pos)

    def _torn(self, offset: int, reason: str) -> None:
        self.torn = TornTail(self.path, offset, self.size - offset, reason)
        log.warning("tick log %s: torn last record at byte offset %d (%s); skipping %d "
                    "bytes, everything before it replays", self.path, offset, reason,
                    self.size - offset)


# -- frames → engine ---------------------------------------------------------------------------


class _EngineLike(Protocol):
    def ingest(self, batch: Any) -> None: ...
    def poll(self, now_ns: int) -> int: ...
    def frame_rejected(self) -> None: ...


@dataclass
class FeedStats:
    """Counters of a :class:`FrameFeeder` (a plain dataclass; ``vars()`` for JSON)."""

    frames: int = 0             # binary messages fed, heartbeats and rejected ones included
    heartbeats: int = 0         # 1-byte messages (and empty ones)
    frames_rejected: int = 0    # malformed: FrameError, nothing of them ingested
    frame_bytes: int = 0
    ticks: int = 0              # ticks ingested
    clock_marks: int = 0        # engine polls without a frame
    last_error: str | None = field(default=None)


class FrameFeeder:
    """Frames → engine: (log,) decode, ingest, poll at the receive time, count.

    Parameters
    ----------
    engine
        Anything with ``ingest(TickBatch)`` and ``poll(now_ns)`` (an :class:`Engine`).
    log
        When given, every frame and clock mark is appended before it is processed —
        malformed frames too, so a replay counts the same rejections.
    warn_every_s
        Malformed frames are logged at most once per this many seconds (with a count).
    """

    def __init__(self, engine: _EngineLike, *, log: TickLogWriter | None = None,
                 warn_every_s: float = 5.0):
        self.engine = engine
        self.log = log
        self.stats = FeedStats()
        self.warn_every_s = warn_every_s
        self._warned_at = float("-inf")
        self._unwarned = 0
        decode_frame(b"\x00\x00", 0)  # compile (or load) the decoder before live frames

    def frame(self, frame: bytes, received_ns: int) -> int:
        """Feed one binary message received at ``received_ns``; returns ticks ingested."""
        if self.log is not None:
            self.log.append(frame, received_ns)
        s = self.stats
        s.frames += 1
        s.frame_bytes += len(frame)
        if len(frame) < 2:
            s.heartbeats += 1
            self.engine.poll(received_ns)
            return 0
        try:
            batch = decode_frame(frame, received_ns)
        except FrameError as exc:
            s.frames_rejected += 1
            s.last_error = str(exc)
            self.engine.frame_rejected()
            self._warn(exc)
            self.engine.poll(received_ns)
            return 0
        n = len(batch)
        if n:
            self.engine.ingest(batch)
            s.ticks += n
        self.engine.poll(received_ns)
        return n

    def clock(self, now_ns: int) -> int:
        """Poll the engine at ``now_ns`` with no frame (logged as a clock mark)."""
        if self.log is not None:
            self.log.mark(now_ns)
        self.stats.clock_marks += 1
        return self.engine.poll(now_ns)

    def _warn(self, exc: FrameError) -> None:
        self._unwarned += 1
        now = time.monotonic()
        if now - self._warned_at >= self.warn_every_s:
            log.warning("rejected %d malformed frame(s); last: %s", self._unwarned, exc)
            self._warned_at = now
            self._unwarned = 0


# -- replay ------------------------------------------------------------------------------------


@dataclass
class ReplayStats:
    """What :func:`replay` read."""

    files: int = 0
    records: int = 0
    bytes_read: int = 0
    torn: list[TornTail] = field(default_factory=list)
    first_ns: int | None = None
    last_ns: int | None = None


def replay(paths: Iterable[str | os.PathLike[str]], feeder: FrameFeeder, *,
           pace: Literal["max", "recorded"] = "max",
           progress: Callable[[int], None] | None = None,
           sleep: Callable[[float], None] = time.sleep,
           monotonic: Callable[[], float] = time.monotonic) -> ReplayStats:
    """Feed the records of log files, in order, through ``feeder``.

    Parameters
    ----------
    paths
        Log files, replayed one after the other.
    feeder
        A :class:`FrameFeeder` without a log; frames are fed at their recorded
        ``received_ns`` and clock marks poll the engine, so windows never depend on the
        wall clock.
    pace
        ``"max"``: as fast as possible. ``"recorded"``: sleep so that records are fed
        at the pace they were received (gaps between files included).
    progress
        Called with the bytes consumed since the previous call.
    """
    stats = ReplayStats()
    t0_wall: float | None = None
    for path in paths:
        reader = TickLogReader(path)
        stats.files += 1
        consumed = 0
        for rec in reader:
            if stats.first_ns is None:
                stats.first_ns = rec.received_ns
                t0_wall = monotonic()
            if pace == "recorded" and t0_wall is not None:
                due = t0_wall + (rec.received_ns - stats.first_ns) / 1e9
                delay = due - monotonic()
                if delay > 0:
                    sleep(delay)
            if rec.is_mark:
                feeder.clock(rec.received_ns)
            else:
                feeder.frame(rec.frame, rec.received_ns)
            stats.records += 1
            stats.last_ns = rec.received_ns
            size = _RECORD.size + len(rec.frame)
            stats.bytes_read += size
            consumed += size
            if progress is not None:
                progress(size)
        if reader.torn is not None:
            stats.torn.append(reader.torn)
        if progress is not None:  # the file header and a torn tail count as consumed too
            rest = reader.size - consumed
            if rest > 0:
                progress(rest)
    return stats

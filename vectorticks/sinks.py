"""Sinks: where packed window payloads go. The only module that talks to Redis.

A sink is a small interface (bytewax-style) called by the engine's sender thread only::

    sink.write(seq, end_ns, payload)   # publish one window; SinkError on failure
    sink.last_seq()                    # last seq already in the target, or None
    sink.close()

The sender retries a failed ``write`` with the *same* ``(seq, payload)`` until it
succeeds, and a write whose connection broke may already have been applied, so every
``write`` here is safe to repeat: the stream sink uses deterministic entry IDs, the file
and memory sinks skip a ``seq`` they already hold. Pub/Sub cannot be deduplicated on the
server; its consumers dedupe by ``seq`` (every window carries one).

Every Redis (and socket) error leaves ``write`` as :class:`~vectorticks.errors.SinkError`
chained to the original, so the engine only ever catches ``SinkError``. ``redis`` is
imported only when a Redis sink or client is created: the file and memory sinks work
without it.

Sinks
-----
:class:`RedisStreamSink`
    ``XADD key MAXLEN ~ n ID <end_ms>-<seq> seq <seq> payload <bytes>``: durable,
    trimmed, consumer groups possible, idempotent retries.
:class:`RedisPubSubSink`
    ``PUBLISH`` (or ``SPUBLISH``) of the payload bytes: at-most-once fan-out.
:class:`RedisLegacySink`
    the old per-item behaviour: one JSON message per bar and per option snapshot on a
    per-instrument channel.
:class:`FileSink`
    payloads appended back to back to a local file (read back with
    :func:`vectorticks.payload.iter_file`).
:class:`MemorySink`
    a list in memory, for tests and notebooks.

:func:`make_sink` builds any of them from settings; :func:`redis_client` builds a client
with sensible timeouts from a URL; :func:`redact_url` hides credentials for logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import string
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from . import payload as _payload
from .columns import BAR_COLUMNS, MISSING_INT, OPTION_COLUMNS
from .errors import ConfigError, PayloadError, SinkError

if TYPE_CHECKING:
    import redis

__all__ = [
    "FileSink",
    "MemorySink",
    "RedisLegacySink",
    "RedisPubSubSink",
    "RedisStreamSink",
    "Sink",
    "SinkKind",
    "dead_letter_sink",
    "legacy_messages",
    "make_sink",
    "read_channel",
    "read_stream",
    "redact_url",
    "redis_client",
    "stream_id",
]

log = logging.getLogger(__name__)

SinkKind = Literal["stream", "pubsub", "spubsub", "legacy", "file", "memory"]
REDIS_KINDS: frozenset[str] = frozenset({"stream", "pubsub", "spubsub", "legacy"})

DEFAULT_STREAM_KEY = "vt:windows"
DEFAULT_STREAM_MAXLEN = 10_000
DEFAULT_CHANNEL = "vt:windows"
DEFAULT_LEGACY_TEMPLATE = "ticks:{instrument_token}"

_MS = 1_000_000
_ID_TOO_SMALL = "equal or smaller than the target stream top item"


@runtime_checkable
class Sink(Protocol):
    """Where the sender thread puts packed window payloads."""

    def write(self, seq: int, end_ns: int, payload: bytes) -> None:
        """Publish one window; raise :class:`SinkError` on failure. Must be safe to
        repeat with the same arguments (the sender retries until it succeeds)."""

    def last_seq(self) -> int | None:
        """The last ``seq`` already in the target, ``None`` if empty or unknown."""

    def close(self) -> None:
        """Release resources (idempotent)."""


# -- Redis client and URLs -------------------------------------------------------------------


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - redis is in the [redis] extra
        raise ConfigError("the Redis sinks need redis-py: pip install 'vectorticks[redis]'") \
            from exc
    return redis


def redis_client(url: str, **kw: Any) -> redis.Redis:
    """A ``redis.Redis`` for ``url`` with timeouts suited to a sender thread.

    Parameters
    ----------
    url
        ``redis://[user:password@]host:port/db``, ``rediss://…`` for TLS, or
        ``unix:///path/to/socket``. Credentials and TLS come from the URL.
    **kw
        Passed to ``redis.Redis.from_url`` and override the defaults below, e.g.
        ``ssl_cert_reqs="required"``, ``ssl_ca_certs=…``, ``socket_timeout=…``.

    Defaults: 5 s connect and socket timeouts, TCP keepalive, a ``PING`` health check on a
    connection idle for 30 s, and at most one immediate reconnect-and-retry inside
    redis-py (redis-py's own default retries up to 10 times; the engine's sender already
    retries with backoff, so a write against a dead server fails fast instead of
    blocking). Responses are bytes (``decode_responses=False``): payloads are binary.

    Raises
    ------
    ConfigError
        The URL is malformed (the message shows it with the password redacted).
    """
    redis = _import_redis()
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        "socket_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=1),
        "decode_responses": False,
    }
    options.update(kw)
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from exc


_SECRET_QUERY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password (and any password-like query value) replaced by ``***``.

    The user name is kept (``redis://alice:***@host:6379/0``); a user-info part without a
    colon is redacted whole, because some clients read ``redis://secret@host`` as a
    password. Use this for every URL that goes into a log line or a message.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else f"***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v) for k, v in pairs],
                          safe="*")
    # Rebuilt by hand: urlunsplit would turn "unix:///path" into "unix:/path".
    head = f"{parts.scheme}:" if parts.scheme else ""
    if url[len(head):].startswith("//"):
        head += "//"
    return (head + netloc + parts.path + (f"?{query}" if parts.query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


class _RedisErrors:
    """Turns every redis-py (and socket) error into a chained :class:`SinkError`."""

    def __init__(self) -> None:
        redis = _import_redis()
        self.response_error: type[Exception] = redis.exceptions.ResponseError
        self.catch: tuple[type[Exception], ...] = (redis.exceptions.RedisError, OSError)

    @contextmanager
    def wrap(self, action: str) -> Iterator[None]:
        try:
            yield
        except SinkError:
            raise
        except self.catch as exc:
            raise SinkError(f"{action} failed: {type(exc).__name__}: {exc}") from exc


def _check_client(client: Any) -> None:
    kwargs = getattr(client, "get_connection_kwargs", lambda: {})()
    if isinstance(kwargs, dict) and kwargs.get("decode_responses"):
        raise ConfigError("the Redis client must use decode_responses=False: payloads are "
                          "binary (use vectorticks.sinks.redis_client)")


def _field(fields: dict[Any, Any], name: str) -> Any:
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


# -- Redis stream ----------------------------------------------------------------------------


def stream_id(end_ns: int, seq: int) -> str:
    """The deterministic stream entry ID of a window: ``<end_ns in ms>-<seq>``."""
    return f"{end_ns // _MS}-{seq}"


def _id_above(last_id: bytes | str, seq: int) -> str:
    """The smallest ID of the form ``<ms>-<seq>`` greater than ``last_id``."""
    text = last_id.decode() if isinstance(last_id, bytes) else last_id
    ms_text, _, seq_text = text.partition("-")
    ms, top = int(ms_text), int(seq_text or 0)
    return f"{ms}-{seq}" if seq > top else f"{ms + 1}-{seq}"


class RedisStreamSink:
    """Append each window to a Redis stream, trimmed to about ``maxlen`` entries.

    One ``XADD key MAXLEN ~ maxlen ID <end_ms>-<seq> seq <seq> payload <bytes>`` per
    window, where ``end_ms = end_ns // 1_000_000``.

    Idempotency scheme
    ------------------
    The entry ID is derived from the window, so a retried write of the same window asks
    for the same ID. Redis refuses an ID that is not greater than the stream's last ID
    ("equal or smaller than the target stream top item"); that error means *either* the
    window is already there (a retry after a broken connection whose first attempt was
    applied) *or* a genuinely new window has an ID that is too small (the wall clock went
    backwards, or two windows end in the same millisecond with an older top). The sink
    tells them apart by reading the stream's state (``XINFO STREAM``: last entry and last
    generated ID), never by guessing:

    1. the last entry's ``seq`` field is ≥ ours, or an entry with our exact ID exists
       (``XRANGE id id``) → the window is already delivered: success, counted in
       :attr:`duplicates`. (The sender writes windows in ``seq`` order and retries one
       until it succeeds, so a window that was applied is the last entry, or older than
       it — it cannot be hidden behind a smaller ``seq``.)
    2. otherwise the window is new → ``XADD`` again with the smallest ID of the form
       ``<ms>-<seq>`` above the last generated ID: ``<top_ms>-<seq>`` when ``seq`` is
       greater than the top ID's sequence part, else ``<top_ms + 1>-<seq>``. Counted in
       :attr:`relocated` and logged. A retry of *that* write again collides on its
       preferred ID and is recognised by rule 1 (its ``seq`` is now the top's).

    Every entry's ID therefore ends in its own ``seq``, IDs grow with ``seq``, and
    ``XRANGE`` order is ``seq`` order. The happy path costs one round trip; the check
    two more, only after a collision. If the resolution races another writer three
    times in a row, ``write`` raises :class:`SinkError` and the sender retries.

    Parameters
    ----------
    client
        A ``redis.Redis`` with ``decode_responses=False`` (see :func:`redis_client`).
    key
        Stream key; in Redis Cluster give related keys one hash tag (``vt:{NIFTY}:w``).
    maxlen
        Approximate length cap (``MAXLEN ~``); ``None`` keeps every entry.
    owns_client
        Close the client in :meth:`close` (set by :func:`make_sink`).
    """

    def __init__(self, client: redis.Redis, key: str = DEFAULT_STREAM_KEY,
                 maxlen: int | None = DEFAULT_STREAM_MAXLEN, *, owns_client: bool = False):
        if maxlen is not None and maxlen <= 0:
            raise ConfigError(f"stream maxlen must be positive or None, got {maxlen}")
        _check_client(client)
        self.client = client
        self.key = key
        self.maxlen = maxlen
        self.owns_client = owns_client
        self.duplicates = 0
        self.relocated = 0
        self._errors = _RedisErrors()

    def write(self, seq: int, end_ns: int, payload: bytes) -> None:
        """``XADD`` the window (idempotent; see the class docstring)."""
        preferred = stream_id(end_ns, seq)
        entry_id = preferred
        with self._errors.wrap(f"XADD {self.key} id={preferred}"):
            for _ in range(3):
                try:
                    self.client.xadd(self.key, {"seq": seq, "payload": payload}, id=entry_id,
                                     maxlen=self.maxlen, approximate=True)
                except self._errors.response_error as exc:
                    if _ID_TOO_SMALL not in str(exc):
                        raise
                else:
                    if entry_id != preferred:
                        self.relocated += 1
                        log.warning("stream %s: window seq=%d written as %s instead of %s "
                                    "(its end time is not after the stream's top entry)",
                                    self.key, seq, entry_id, preferred)
                    return
                top_seq, last_id = self._top()
                if (top_seq is not None and top_seq >= seq) or self._exists(preferred):
                    self.duplicates += 1
                    if top_seq is not None and top_seq > seq:
                        log.warning("stream %s: top entry has seq=%d > %d; window seq=%d "
                                    "treated as already delivered", self.key, top_seq, seq, seq)
                    return
                entry_id = preferred if last_id is None else _id_above(last_id, seq)
        raise SinkError(f"XADD {self.key}: no free entry ID for seq={seq} after 3 attempts "
                        f"(another writer on the stream?)")

    def _top(self) -> tuple[int | None, bytes | None]:
        """The last entry's ``seq`` field and the stream's last generated ID."""
        try:
            info = self.client.xinfo_stream(self.key)
        except self._errors.response_error as exc:
            if "no such key" in str(exc).lower():
                return None, None
            raise
        last = info.get("last-entry")
        top_seq = None
        if last is not None and last[0] is not None:
            value = _field(last[1], "seq")
            top_seq = int(value) if value is not None else None
        return top_seq, info.get("last-generated-id")

    def _exists(self, entry_id: str) -> bool:
        return bool(self.client.xrange(self.key, entry_id, entry_id, count=1))

    def last_seq(self) -> int | None:
        """``seq`` of the stream's top entry (``XREVRANGE key + - COUNT 1``); ``None`` if the
        stream is empty or its top entry has no ``seq`` field."""
        with self._errors.wrap(f"XREVRANGE {self.key}"):
            entries = self.client.xrevrange(self.key, "+", "-", count=1)
        if not entries:
            return None
        value = _field(entries[0][1], "seq")
        return int(value) if value is not None else None

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


# -- Redis Pub/Sub ---------------------------------------------------------------------------


class RedisPubSubSink:
    """``PUBLISH`` (or ``SPUBLISH``) each payload on one channel.

    Pub/Sub is at-most-once: a subscriber that is not connected, or that falls behind and
    is disconnected at ``client-output-buffer-limit``, silently loses windows. It is also
    not deduplicated: a retry after a broken connection may deliver a window twice.
    Consumers therefore track ``seq`` (in every payload header): skip a ``seq`` already
    seen, report a jump as a gap.

    Parameters
    ----------
    client
        A ``redis.Redis`` with ``decode_responses=False`` (see :func:`redis_client`).
    channel
        The channel; in Redis Cluster with ``sharded=True`` the channel's hash slot picks
        the shard (give related channels one hash tag: ``vt:{NIFTY}:windows``).
    sharded
        ``SPUBLISH`` instead of ``PUBLISH`` (Redis ≥ 7; also works on a non-cluster
        server), keeping fan-out on one shard.
    owns_client
        Close the client in :meth:`close` (set by :func:`make_sink`).
    """

    def __init__(self, client: redis.Redis, channel: str = DEFAULT_CHANNEL, *,
                 sharded: bool = False, owns_client: bool = False):
        _check_client(client)
        self.client = client
        self.channel = channel
        self.sharded = sharded
        self.owns_client = owns_client
        #: Subscribers that received the last published window (shard-local for SPUBLISH).
        self.last_receivers: int | None = None
        self._errors = _RedisErrors()

    def write(self, seq: int, end_ns: int, payload: bytes) -> None:
        command = "SPUBLISH" if self.sharded else "PUBLISH"
        with self._errors.wrap(f"{command} {self.channel} seq={seq}"):
            if self.sharded:
                self.last_receivers = int(self.client.spublish(self.channel, payload))
            else:
                self.last_receivers = int(self.client.publish(self.channel, payload))

    def last_seq(self) -> int | None:
        """Always ``None``: a channel keeps nothing."""
        return None

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


# -- legacy per-item JSON --------------------------------------------------------------------

_LEGACY_EXTRA = ("kind", "seq", "window_end_ns")
_LEGACY_FIELDS = frozenset(
    {c.name for c in BAR_COLUMNS} & {c.name for c in OPTION_COLUMNS} | set(_LEGACY_EXTRA))
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _json_column(a: np.ndarray) -> list[Any]:
    """A column as plain Python values (int/float/bool), missing values as ``None``:
    non-finite floats, and :data:`~vectorticks.columns.MISSING_INT` in int64 columns."""
    if a.dtype.kind == "f":
        missing = ~np.isfinite(a)
    elif a.dtype == np.int64:
        missing = a == MISSING_INT
    else:
        return a.tolist()
    if not missing.any():
        return a.tolist()
    out = a.astype(object)
    out[missing] = None
    return out.tolist()


def _template_fields(template: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"legacy channel template {template!r}: {exc}") from exc
    return {re.split(r"[.\[]", name, maxsplit=1)[0] for _, name, _, _ in parsed if name}


def legacy_messages(window: _payload.Window,
                    channel_template: str = DEFAULT_LEGACY_TEMPLATE) -> list[tuple[str, str]]:
    """The legacy ``(channel, json)`` messages of a decoded window (pure; no I/O).

    One JSON object per bar row (``"kind": "bar"``) then per option row
    (``"kind": "option"``): the table's columns plus ``"kind"``, ``"seq"`` and
    ``"window_end_ns"``. Values are plain JSON numbers and booleans; NaN/±inf and the
    integer missing value become ``null``. The channel is ``channel_template`` formatted
    with the object's fields (default ``ticks:{instrument_token}``).
    """
    messages: list[tuple[str, str]] = []
    extra = {"seq": int(window.seq), "window_end_ns": int(window.end_ns)}
    for kind, name in (("bar", "bars"), ("option", "options")):
        table = window.table(name)
        if table.num_rows == 0:
            continue
        names = table.column_names
        columns = [_json_column(table.column(i).to_numpy()) for i in range(len(names))]
        for row in zip(*columns, strict=True):
            record = dict(zip(names, row, strict=True))
            record["kind"] = kind
            record.update(extra)
            messages.append((channel_template.format_map(record), _JSON.encode(record)))
    return messages


class RedisLegacySink:
    """The old per-item behaviour, kept for existing consumers.

    Decodes each payload and publishes one JSON message per bar and per option snapshot
    (see :func:`legacy_messages`) on its instrument's channel, e.g. ``ticks:256265``. All
    messages of a window go in one non-transactional pipeline (one round trip; each is
    still its own ``PUBLISH``). Pub/Sub semantics apply: at-most-once, and a retried
    window may re-deliver some messages — consumers dedupe by
    ``(seq, kind, instrument_token)``.

    Parameters
    ----------
    client
        A ``redis.Redis`` with ``decode_responses=False`` (see :func:`redis_client`).
    channel_template
        ``str.format`` template over the message fields common to bars and options
        (``instrument_token``, ``kind``, ``seq``, …).
    owns_client
        Close the client in :meth:`close` (set by :func:`make_sink`).
    """

    def __init__(self, client: redis.Redis,
                 channel_template: str = DEFAULT_LEGACY_TEMPLATE, *, owns_client: bool = False):
        unknown = _template_fields(channel_template) - _LEGACY_FIELDS
        if unknown:
            raise ConfigError(f"legacy channel template {channel_template!r} uses unknown "
                              f"fields {sorted(unknown)}; known: {sorted(_LEGACY_FIELDS)}")
        _check_client(client)
        self.client = client
        self.channel_template = channel_template
        self.owns_client = owns_client
        #: Messages published by the last write.
        self.last_messages = 0
        self._errors = _RedisErrors()

    def write(self, seq: int, end_ns: int, payload: bytes) -> None:
        try:
            window = _payload.decode(payload)
            messages = legacy_messages(window, self.channel_template)
        except (PayloadError, KeyError, ValueError, IndexError) as exc:
            raise SinkError(f"legacy sink: cannot convert window seq={seq}: {exc}") from exc
        self.last_messages = len(messages)
        if not messages:
            return
        with self._errors.wrap(f"legacy PUBLISH of {len(messages)} messages seq={seq}"):
            pipe = self.client.pipeline(transaction=False)
            for channel, message in messages:
                pipe.publish(channel, message)
            pipe.execute()

    def last_seq(self) -> int | None:
        """Always ``None``: channels keep nothing."""
        return None

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


# -- reading back (tail, tests) --------------------------------------------------------------


def _block_ms(idle_timeout: float | None, block_s: float) -> int:
    wait = block_s if idle_timeout is None else min(block_s, idle_timeout)
    return max(1, int(wait * 1000))  # never 0: BLOCK 0 waits forever


def read_stream(client: redis.Redis, key: str = DEFAULT_STREAM_KEY, *,
                from_start: bool = False, idle_timeout: float | None = None,
                count: int = 100) -> Iterator[bytes]:
    """Yield payloads of a stream in order: all of them (``from_start``) or those added
    after the call. Stops after ``idle_timeout`` seconds without a new entry (``None``:
    never). Redis errors raise :class:`SinkError`."""
    errors = _RedisErrors()
    with errors.wrap(f"reading stream {key}"):
        last: bytes | str = "0-0"
        if not from_start:
            top = client.xrevrange(key, "+", "-", count=1)
            if top:
                last = top[0][0]
        idle_since = time.monotonic()
        while True:
            response = client.xread({key: last}, count=count, block=_block_ms(idle_timeout, 1.0))
            got = False
            for _key, entries in response or ():
                for entry_id, fields in entries:
                    last = entry_id
                    got = True
                    yield _field(fields, "payload")
            now = time.monotonic()
            if got:
                idle_since = now
            elif idle_timeout is not None and now - idle_since >= idle_timeout:
                return


def read_channel(client: redis.Redis, channel: str = DEFAULT_CHANNEL, *, sharded: bool = False,
                 idle_timeout: float | None = None) -> Iterator[bytes]:
    """Yield payloads published on ``channel`` from now on (``SSUBSCRIBE`` if
    ``sharded``). Stops after ``idle_timeout`` idle seconds (``None``: never)."""
    errors = _RedisErrors()
    with errors.wrap(f"reading channel {channel}"):
        sub = client.pubsub(ignore_subscribe_messages=True)
        try:
            (sub.ssubscribe if sharded else sub.subscribe)(channel)
            idle_since = time.monotonic()
            wait = 1.0 if idle_timeout is None else max(0.001, min(1.0, idle_timeout))
            while True:
                message = sub.get_message(timeout=wait)
                now = time.monotonic()
                if message is not None and message["type"] in ("message", "smessage"):
                    idle_since = now
                    yield message["data"]
                elif idle_timeout is not None and now - idle_since >= idle_timeout:
                    return
        finally:
            sub.close()


# -- file --------------------------------------------------------------------------------------


class FileSink:
    """Append payloads back to back to a local file, readable by
    :func:`vectorticks.payload.iter_file`.

    Each write appends one payload (``O_APPEND``), so records are never interleaved or
    overwritten; ``fsync=True`` also forces it to disk before ``write`` returns.

    Opening recovers the file: it steps through the record headers to find the last
    ``seq``, and a torn last record — the file ends inside it (a writer crashed
    mid-append), its CRC fails, or it is all zero bytes (a crash on some filesystems) —
    is truncated away with a warning so appends stay readable. A corrupt record *before*
    the tail is not guessed at: opening raises :class:`SinkError` (move the file aside).

    A write whose ``seq`` is ≤ the last one in the file is skipped (counted in
    :attr:`duplicates`), so the sender's retries are idempotent. A failed write is rolled
    back (the file is truncated to its previous length), so a retry never appends after a
    partial record. One writer per file.

    Parameters
    ----------
    path
        The file; created (with its parent directories) if missing.
    fsync
        ``os.fsync`` after every write (durable across power loss, slower).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.duplicates = 0
        #: Bytes cut from a torn tail when the file was opened.
        self.truncated_bytes = 0
        self._lock = threading.Lock()
        self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] | None = open(self.path, "a+b", buffering=0)
        except OSError as exc:
            raise SinkError(f"cannot open file sink {self.path}: {exc}") from exc
        try:
            self._last_seq, self._size = self._recover()
        except BaseException:
            self._file.close()
            raise

    def _read_at(self, offset: int, size: int) -> bytes:
        assert self._file is not None
        self._file.seek(offset)
        chunks = []
        while size > 0:
            chunk = self._file.read(size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _all_zero(self, offset: int, end: int) -> bool:
        step = 1 << 20
        for pos in range(offset, end, step):
            if self._read_at(pos, min(step, end - pos)).strip(b"\0"):
                return False
        return True

    def _recover(self) -> tuple[int | None, int]:
        """Scan the record headers; truncate a torn tail. Returns (last seq, size)."""
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        offset = 0
        seqs: list[tuple[int, int]] = []  # (offset, seq) of the last two complete records
        reason = ""
        while offset < size:
            remaining = size - offset
            if remaining < _payload.HEADER_SIZE:
                reason = f"{remaining} bytes, shorter than a header"
                break
            head = self._read_at(offset, _payload.HEADER_SIZE)
            try:
                header = _payload.read_header(head)
            except PayloadError as exc:
                if self._all_zero(offset, size):
                    reason = "zero bytes"
                    break
                raise SinkError(f"file sink {self.path}: record at offset {offset} is corrupt "
                                f"({exc}); refusing to append — move the file aside") from exc
            if header.total_len > remaining:
                reason = (f"header announces {header.total_len} bytes, "
                          f"{remaining} present")
                break
            seqs = [*seqs[-1:], (offset, header.seq)]
            offset += header.total_len
        if offset == size and seqs:  # a complete-looking last record: check its CRC
            last_offset = seqs[-1][0]
            try:
                _payload.decode(self._read_at(last_offset, size - last_offset))
            except PayloadError as exc:
                reason = f"last record does not decode: {exc}"
                offset = last_offset
                seqs = seqs[:-1]
        if offset < size:
            log.warning("file sink %s: torn last record at offset %d (%s); truncating "
                        "%d bytes", self.path, offset, reason, size - offset)
            try:
                self._file.truncate(offset)
            except OSError as exc:
                raise SinkError(f"file sink {self.path}: cannot truncate torn tail at offset "
                                f"{offset}: {exc}") from exc
            self.truncated_bytes = size - offset
        return (seqs[-1][1] if seqs else None), offset

    def write(self, seq: int, end_ns: int, payload: bytes) -> None:
        """Append ``payload`` unless ``seq`` is already in the file."""
        with self._lock:
            if self._file is None:
                raise SinkError(f"file sink {self.path} is closed")
            if self._last_seq is not None and seq <= self._last_seq:
                self.duplicates += 1
                return
            try:
                header = _payload.read_header(payload)
            except PayloadError as exc:
                raise SinkError(f"file sink: window seq={seq} is not a payload: {exc}") from exc
            if header.seq != seq or header.total_len != len(payload):
                raise SinkError(f"file sink: payload of seq={header.seq}, "
                                f"{header.total_len} bytes announced, {len(payload)} given, "
                                f"written as seq={seq}")
            try:
                if self._dirty:  # a failed write left bytes behind: cut them first
                    self._file.truncate(self._size)
                    self._dirty = False
                view = memoryview(payload)
                while view:
                    n = self._file.write(view)
                    if not n:
                        raise OSError(f"write returned {n!r}")
                    view = view[n:]
                if self.fsync:
                    os.fsync(self._file.fileno())
            except OSError as exc:
                self._dirty = True
                try:
                    self._file.truncate(self._size)
                    self._dirty = False
                except OSError:
                    pass  # retried before the next write
                raise SinkError(f"file sink {self.path}: write of seq={seq} failed: {exc}") \
                    from exc
            self._size += len(payload)
            self._last_seq = seq

    def last_seq(self) -> int | None:
        """The last ``seq`` in the file (found on open, then kept up to date)."""
        return self._last_seq

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# -- memory ------------------------------------------------------------------------------------


class MemorySink:
    """Keep ``(seq, end_ns, payload)`` tuples in :attr:`items` (tests, notebooks).

    Like the durable sinks it skips a ``seq`` ≤ the last one held (counted in
    :attr:`duplicates`). :meth:`fail_next` injects failures for retry tests. ``close``
    does not discard anything, and the sink stays usable afterwards (an engine restarted
    on the same sink resumes after :meth:`last_seq`).
    """

    def __init__(self) -> None:
        self.items: list[tuple[int, int, bytes]] = []
        self.duplicates = 0
        self.closed = False
        self._fail = 0
        self._fail_applied = False
        self._lock = threading.Lock()

    def fail_next(self, n: int = 1, *, applied: bool = False) -> None:
        """Make the next ``n`` writes raise :class:`SinkError`. With ``applied=True`` the
        failing writes still store the window first (a reply lost after the write landed),
        so the retry must be recognised as a duplicate."""
        with self._lock:
            self._fail = n
            self._fail_applied = applied

    def write(self, seq: int, end_ns: int, payload: bytes) -> None:
        with self._lock:
            fail = self._fail > 0
            if fail:
                self._fail -= 1
                if not self._fail_applied:
                    raise SinkError(f"injected failure writing seq={seq}")
            if self.items and seq <= self.items[-1][0]:
                self.duplicates += 1
            else:
                self.items.append((seq, end_ns, bytes(payload)))
            if fail:
                raise SinkError(f"injected failure after writing seq={seq}")

    def windows(self) -> list[_payload.Window]:
        """The stored payloads, decoded."""
        return [_payload.decode(p) for _, _, p in list(self.items)]

    def last_seq(self) -> int | None:
        items = self.items
        return items[-1][0] if items else None

    def close(self) -> None:
        self.closed = True


# -- factory -----------------------------------------------------------------------------------


def make_sink(kind: SinkKind, *, redis_url: Any = None, file_path: str | os.PathLike[str] |
              None = None, stream_key: str = DEFAULT_STREAM_KEY,
              stream_maxlen: int | None = DEFAULT_STREAM_MAXLEN,
              channel: str = DEFAULT_CHANNEL,
              legacy_channel_template: str = DEFAULT_LEGACY_TEMPLATE,
              client: redis.Redis | None = None, fsync: bool = False,
              client_options: dict[str, Any] | None = None) -> Sink:
    """Build the sink ``kind`` (the settings' ``sink_kind``).

    Parameters
    ----------
    kind
        ``stream``, ``pubsub``, ``spubsub`` (sharded), ``legacy``, ``file`` or ``memory``.
    redis_url
        Needed by the Redis kinds unless ``client`` is given (a ``str`` or a pydantic
        ``SecretStr``). The sink owns the client built from it and closes it.
    file_path
        Needed by ``file``.
    stream_key, stream_maxlen, channel, legacy_channel_template
        Passed to the sink of that kind.
    client
        An existing Redis client to use instead of ``redis_url`` (not closed by the sink).
    fsync
        ``file``: fsync every write.
    client_options
        Extra keyword arguments for :func:`redis_client` (TLS options, timeouts).

    Raises
    ------
    ConfigError
        Unknown kind, a Redis kind without a URL or client, ``file`` without a path.
    """
    if kind == "memory":
        return MemorySink()
    if kind == "file":
        if file_path is None:
            raise ConfigError("sink 'file' needs file_path (VECTORTICKS_FILE_PATH)")
        return FileSink(file_path, fsync=fsync)
    if kind not in REDIS_KINDS:
        raise ConfigError(f"unknown sink kind {kind!r}; expected one of stream, pubsub, "
                          f"spubsub, legacy, file, memory")
    owns = client is None
    if client is None:
        url = redis_url.get_secret_value() if hasattr(redis_url, "get_secret_value") \
            else redis_url
        if not url:
            raise ConfigError(f"sink {kind!r} needs a Redis URL (VECTORTICKS_REDIS_URL, "
                              f"e.g. redis://localhost:6379/0)")
        client = redis_client(str(url), **(client_options or {}))
    makers: dict[str, Callable[[], Sink]] = {
        "stream": lambda: RedisStreamSink(client, stream_key, stream_maxlen, owns_client=owns),
        "pubsub": lambda: RedisPubSubSink(client, channel, owns_client=owns),
        "spubsub": lambda: RedisPubSubSink(client, channel, sharded=True, owns_client=owns),
        "legacy": lambda: RedisLegacySink(client, legacy_channel_template, owns_client=owns),
    }
    return makers[kind]()


def dead_letter_sink(settings: Any) -> Sink | None:
    """The dead-letter stream of ``settings`` (``dead_letter_stream`` on ``redis_url``),
    or ``None`` when it is not configured. Its entries are idempotent like the main
    stream's: ``<end_ms>-<seq>`` of the window whose quarantine they hold."""
    if not settings.dead_letter_stream:
        return None
    return make_sink("stream", redis_url=settings.redis_url,
                     stream_key=settings.dead_letter_stream,
                     stream_maxlen=settings.dead_letter_maxlen)

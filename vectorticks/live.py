"""The live Kite source: kiteconnect's ``KiteTicker`` connections, raw frames, one queue.

kiteconnect does the WebSocket work — connecting, reconnecting with backoff, subscribing,
switching modes and resubscribing after a reconnect — but its per-tick parsing is
bypassed: :class:`LiveSource` subclasses ``KiteTicker`` and overrides its message hook
(``_on_message``), so every binary message is stamped with the receive time and put on a
bounded :class:`FrameQueue` as raw bytes. That is all the WebSocket thread does; it never
blocks (a full queue drops its oldest frame and counts it). The engine loop
(:func:`run_live`) takes frames off the queue and feeds them through a
:class:`~vectorticks.ticklog.FrameFeeder` (optional tick log, :func:`decode_frame`,
``Engine.ingest``, ``Engine.poll``).

Kite allows 3,000 instruments per connection and 3 connections per API key, so the
instruments are split evenly over as few connections as fit (:func:`split_tokens`). All
connections share twisted's reactor, run in one daemon thread; twisted's reactor cannot
be restarted, so a process runs one live source in its life.

Credentials come from ``VECTORTICKS_KITE_API_KEY`` and ``VECTORTICKS_KITE_ACCESS_TOKEN``
(:meth:`KiteCredentials.from_env`) and are never logged: the access token is kept out of
``repr`` and the connection URL, which carries it, is never printed. A ``wss://``
connection verifies the server's certificate and host name (kiteconnect's own ``connect``
verifies neither), against certifi's authorities or a given PEM bundle.

Importing this module does not import kiteconnect or twisted; :meth:`LiveSource.start`
does (``pip install kiteconnect``).
"""

from __future__ import annotations

import collections
import io
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from os import PathLike
from typing import IO, Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from .errors import ConfigError, InstrumentError
from .instruments import INDEX_SYMBOLS, KITE_CSV_COLUMNS, write_csv
from .kite import frame_packet_count
from .ticklog import FeedStats, FrameFeeder, TickLogWriter

__all__ = [
    "KITE_MAX_CONNECTIONS",
    "KITE_MAX_INSTRUMENTS_PER_CONNECTION",
    "KITE_WS_URL",
    "ConnectionStats",
    "Frame",
    "FrameQueue",
    "KiteCredentials",
    "LiveSource",
    "open_tick_log",
    "read_instruments",
    "run_live",
    "select_instruments",
    "split_tokens",
]

log = logging.getLogger(__name__)

KITE_WS_URL = "wss://ws.kite.trade"
KITE_MAX_INSTRUMENTS_PER_CONNECTION = 3000
KITE_MAX_CONNECTIONS = 3
Mode = Literal["full", "quote", "ltp"]
Clock = Callable[[], int]

_IST = timezone(timedelta(hours=5, minutes=30))
# TODO(settings): move to Settings as kite_api_key / kite_access_token (SecretStr) and
# kite_ws_url; until then they are read here, from the environment only.
ENV_API_KEY = "VECTORTICKS_KITE_API_KEY"
ENV_ACCESS_TOKEN = "VECTORTICKS_KITE_ACCESS_TOKEN"
ENV_WS_URL = "VECTORTICKS_KITE_WS_URL"
ENV_CA_FILE = "VECTORTICKS_KITE_CA_FILE"


# -- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KiteCredentials:
    """Kite Connect API key and the day's access token (the token never shows in repr)."""

    api_key: str
    access_token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"KiteCredentials(api_key={self.api_key!r}, access_token='***')"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KiteCredentials:
        """Read ``VECTORTICKS_KITE_API_KEY`` and ``VECTORTICKS_KITE_ACCESS_TOKEN``.

        Raises
        ------
        ConfigError
            Either is missing or empty (the message names the variable, never a value).
        """
        env = os.environ if environ is None else environ
        missing = [name for name in (ENV_API_KEY, ENV_ACCESS_TOKEN) if not env.get(name)]
        if missing:
            raise ConfigError(f"Kite credentials missing: set {' and '.join(missing)}")
        return cls(env[ENV_API_KEY], env[ENV_ACCESS_TOKEN])


# -- instruments -------------------------------------------------------------------------------


def read_instruments(source: str | PathLike[str] | IO[str]) -> pd.DataFrame:
    """Kite's instruments CSV as a DataFrame, read the way
    :meth:`InstrumentRegistry.from_csv` reads it."""
    try:
        frame = pd.read_csv(source, dtype={"tradingsymbol": str, "name": str, "expiry": str,
                                           "instrument_type": str, "segment": str,
                                           "exchange": str},
                            keep_default_na=False, na_values={"strike": [""],
                                                              "tick_size": [""]})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InstrumentError(f"cannot read instruments CSV: {exc}") from exc
    missing = [c for c in KITE_CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise InstrumentError(f"instruments table lacks columns {missing}")
    return frame


def ist_today(now_ns: int) -> date:
    """The IST calendar date of an instant (ns since the epoch)."""
    return datetime.fromtimestamp(now_ns / 1e9, _IST).date()


def select_instruments(frame: pd.DataFrame, underlyings: Iterable[str] = (), *,
                       expiries: int | None = None, today: date) -> pd.DataFrame:
    """The instruments to subscribe, as rows of a Kite instruments table.

    Parameters
    ----------
    frame
        Kite's instruments table (:func:`read_instruments`).
    underlyings
        Derivative ``name``s (``NIFTY``, ``BANKNIFTY``, ``RELIANCE`` …): their index (via
        :data:`~vectorticks.instruments.INDEX_SYMBOLS`) or equity row, futures and
        options are kept. Empty: every row.
    expiries
        Keep the options of the ``expiries`` nearest expiry dates (on or after
        ``today``) of each underlying; futures are all kept. ``None``: all.
    today
        Contracts that expired before this date are dropped.
    """
    itype = frame["instrument_type"].astype(str).str.upper()
    segment = frame["segment"].astype(str).str.upper()
    name = frame["name"].astype(str).str.upper()
    symbol = frame["tradingsymbol"].astype(str)
    expiry = pd.to_datetime(frame["expiry"].astype(str).replace("", None), errors="coerce",
                            format="%Y-%m-%d").to_numpy().astype("datetime64[D]")
    is_derivative = itype.isin(["FUT", "CE", "PE"]).to_numpy()
    is_option = itype.isin(["CE", "PE"]).to_numpy()
    today64 = np.datetime64(today, "D")
    keep = ~(is_derivative & (expiry < today64))
    wanted = [u.upper() for u in underlyings]
    if wanted:
        index_symbols = [INDEX_SYMBOLS.get(u, u) for u in wanted]
        is_index = (segment == "INDICES") & symbol.isin(index_symbols)
        is_equity = (itype == "EQ") & (segment != "INDICES") & symbol.str.upper().isin(wanted)
        keep &= (is_index | is_equity).to_numpy() | (is_derivative & name.isin(wanted)
                                                     .to_numpy())
    if expiries is not None:
        if expiries < 1:
            raise ConfigError(f"expiries must be >= 1, got {expiries}")
        allowed = np.zeros(len(frame), bool)
        candidates = keep & is_option
        for n in pd.unique(name[candidates]):
            rows = candidates & (name == n).to_numpy()
            nearest = np.unique(expiry[rows])[:expiries]
            allowed |= rows & np.isin(expiry, nearest)
        keep &= ~is_option | allowed
    return frame[keep].reset_index(drop=True)


def split_tokens(tokens: Sequence[int] | np.ndarray, *,
                 per_connection: int = KITE_MAX_INSTRUMENTS_PER_CONNECTION,
                 max_connections: int = KITE_MAX_CONNECTIONS) -> list[list[int]]:
    """Split instrument tokens evenly over as few connections as hold them.

    Raises
    ------
    ConfigError
        More tokens than ``per_connection × max_connections`` (Kite's limits are 3,000
        and 3 per API key), no tokens, or limits above Kite's.
    """
    unique = list(dict.fromkeys(int(t) for t in tokens))
    if not 1 <= per_connection <= KITE_MAX_INSTRUMENTS_PER_CONNECTION:
        raise ConfigError(f"per_connection must be in 1..{KITE_MAX_INSTRUMENTS_PER_CONNECTION}")
    if not 1 <= max_connections <= KITE_MAX_CONNECTIONS:
        raise ConfigError(f"max_connections must be in 1..{KITE_MAX_CONNECTIONS}")
    if not unique:
        raise ConfigError("no instruments to subscribe")
    n = math.ceil(len(unique) / per_connection)
    if n > max_connections:
        raise ConfigError(f"{len(unique)} instruments need {n} connections of "
                          f"{per_connection}; an API key allows {max_connections} — narrow "
                          f"the selection (--underlying, --expiries)")
    return [part.tolist() for part in np.array_split(np.array(unique, np.int64), n)]


# -- the queue between the WebSocket thread and the engine loop --------------------------------


class Frame(NamedTuple):
    """One binary message as received: when, on which connection, the bytes."""

    received_ns: int
    connection: int
    data: bytes


class FrameQueue:
    """A bounded FIFO whose producer never waits: when full, the oldest frame is dropped
    and counted (with the ticks its header announces)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ConfigError("queue capacity must be >= 1")
        self.capacity = capacity
        self.dropped_frames = 0
        self.dropped_ticks = 0
        self.high_water = 0
        self._items: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Frame) -> None:
        with self._cond:
            if len(self._items) >= self.capacity:
                old = self._items.popleft()
                self.dropped_frames += 1
                self.dropped_ticks += frame_packet_count(old.data)
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame, waiting up to ``timeout`` seconds; ``None`` if none came."""
        with self._cond:
            if not self._items and timeout != 0:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None


# -- connections -------------------------------------------------------------------------------


@dataclass
class ConnectionStats:
    """Counters of one Kite connection (updated by the reactor thread)."""

    instruments: int = 0
    connects: int = 0
    disconnects: int = 0
    errors: int = 0
    frames: int = 0
    bytes: int = 0
    gave_up: bool = False
    connected: bool = False

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


def _ticker_class() -> type:
    """``KiteTicker`` with its per-tick parsing replaced by a raw-frame callback."""
    try:
        from kiteconnect import KiteTicker
    except ImportError as exc:  # pragma: no cover - kiteconnect is an optional extra
        raise ConfigError("the live Kite source needs kiteconnect: pip install kiteconnect") \
            from exc

    class RawKiteTicker(KiteTicker):  # type: ignore[misc]
        """Binary messages go to ``on_frame(bytes)`` unparsed; text messages (errors,
        order updates) are parsed by kiteconnect as usual."""

        on_frame: Callable[[bytes], None] | None = None
        initial_delay: float | None = None
        tls: Any = None  # verifying TLS options for a wss:// root (_verified_tls)

        def _on_message(self, ws: Any, payload: bytes, is_binary: bool) -> None:
            if is_binary:
                if self.on_frame is not None and payload:
                    self.on_frame(payload)
            else:
                self._parse_text_message(payload)

        def _create_connection(self, url: str, **kwargs: Any) -> None:
            super()._create_connection(url, **kwargs)
            if self.initial_delay is not None:  # twisted's first reconnect delay
                self.factory.initialDelay = self.factory.delay = self.initial_delay

        def connect(self) -> None:
            """kiteconnect's ``connect`` with ``tls``, which verifies the server (see
            :func:`_verified_tls`); the reactor is run by :class:`LiveSource`."""
            from autobahn.twisted.websocket import connectWS

            self._create_connection(self.socket_url, useragent=self._user_agent(),
                                    headers={"X-Kite-Version": "3"})
            if self.factory.isSecure and self.tls is None:
                raise ConfigError("a wss:// connection needs verifying TLS options")
            connectWS(self.factory, contextFactory=self.tls, timeout=self.connect_timeout)

    return RawKiteTicker


def _verified_tls(host: str, ca_file: str | None) -> Any:
    """twisted TLS options that verify the server's certificate chain, against the PEM
    bundle ``ca_file`` (else certifi's, as kiteconnect's HTTP API verifies with
    ``requests``), and that the certificate names ``host``. kiteconnect's own ``connect``
    uses twisted's ``ClientContextFactory``, which checks neither: anyone on the path could
    present any certificate and read the access token in the connection URL."""
    import certifi
    from twisted.internet import ssl

    with open(ca_file or certifi.where(), "rb") as f:
        pem = f.read()
    end = b"-----END CERTIFICATE-----"
    certificates = [ssl.Certificate.loadPEM(block + end) for block in pem.split(end)
                    if b"-----BEGIN CERTIFICATE-----" in block]
    if not certificates:
        raise ConfigError(f"no PEM certificate in the CA file {ca_file!r}")
    return ssl.optionsForClientTLS(host, trustRoot=ssl.trustRootFromCertificates(certificates))


class LiveSource:
    """Kite WebSocket connections feeding one :class:`FrameQueue` with raw frames.

    Parameters
    ----------
    credentials
        API key and access token.
    tokens
        Instrument tokens to subscribe (split over connections by :func:`split_tokens`).
    mode
        Kite streaming mode of every instrument (``full`` carries depth, OI, timestamps).
    root
        WebSocket endpoint (``KiteTicker``'s ``root``); default Kite's.
    per_connection, max_connections
        Split limits (Kite's: 3,000 and 3).
    queue_capacity
        Frames waiting for the engine loop before the oldest are dropped.
    reconnect_initial_delay
        First reconnect delay in seconds (twisted's backoff multiplies it by e per
        attempt up to ``reconnect_max_delay``; kiteconnect's minimum for that is 5 s).
    ca_file
        PEM bundle of the certificate authorities that a ``wss://`` root's certificate must
        chain to (default certifi's); the certificate must also name the root's host.
    clock
        Receive-time stamp in ns (wall clock; windows are cut on it).
    """

    def __init__(self, credentials: KiteCredentials, tokens: Sequence[int] | np.ndarray, *,
                 mode: Mode = "full", root: str | None = None,
                 per_connection: int = KITE_MAX_INSTRUMENTS_PER_CONNECTION,
                 max_connections: int = KITE_MAX_CONNECTIONS, queue_capacity: int = 10_000,
                 reconnect_initial_delay: float = 1.0, reconnect_max_delay: int = 60,
                 reconnect_max_tries: int = 50, ca_file: str | PathLike[str] | None = None,
                 clock: Clock = time.time_ns):
        if mode not in ("full", "quote", "ltp"):
            raise ConfigError(f"mode must be full, quote or ltp, got {mode!r}")
        self._cls = _ticker_class()  # kiteconnect missing: ConfigError now, not on start
        self.credentials = credentials
        self.mode = mode
        self.root = root or KITE_WS_URL
        from autobahn.websocket.util import parse_url  # kiteconnect's dependency

        try:
            self._secure, self._host = parse_url(self.root)[:2]
        except ValueError as exc:
            raise ConfigError(f"bad Kite WebSocket URL: {exc}") from None
        self.groups = split_tokens(tokens, per_connection=per_connection,
                                   max_connections=max_connections)
        self.queue = FrameQueue(queue_capacity)
        self.stats = [ConnectionStats(instruments=len(g)) for g in self.groups]
        self.reconnect_initial_delay = reconnect_initial_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.reconnect_max_tries = reconnect_max_tries
        self.ca_file = None if ca_file is None else os.fspath(ca_file)
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConfigError(f"CA file not found: {self.ca_file}")
        self._clock = clock
        self._tickers: list[Any] = []
        self._reactor: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # The callbacks below run in the reactor thread: they only count and enqueue.

    def _make_ticker(self, cls: type, i: int) -> Any:
        tokens = self.groups[i]
        stats = self.stats[i]
        put, clock = self.queue.put, self._clock
        ticker = cls(self.credentials.api_key, self.credentials.access_token, root=self.root,
                     reconnect=True, reconnect_max_tries=self.reconnect_max_tries,
                     reconnect_max_delay=self.reconnect_max_delay)
        ticker.initial_delay = self.reconnect_initial_delay
        subscribed = False

        def on_frame(data: bytes) -> None:
            put(Frame(clock(), i, data))
            stats.frames += 1
            stats.bytes += len(data)

        def on_connect(ws: Any, response: Any) -> None:
            nonlocal subscribed
            stats.connects += 1
            stats.connected = True
            if stats.connects > 1:
                log.warning("kite connection %d: reconnected (%d instruments resubscribed)",
                            i, len(tokens))
            if not subscribed:  # later connects: KiteTicker resubscribes by itself
                ws.subscribe(tokens)
                ws.set_mode(self.mode, tokens)
                subscribed = True
                log.info("kite connection %d: subscribed %d instruments in %s mode", i,
                         len(tokens), self.mode)

        def on_close(ws: Any, code: Any, reason: Any) -> None:
            stats.connected = False
            if self._stopping:
                log.info("kite connection %d closed", i)
                return
            stats.disconnects += 1
            log.warning("kite connection %d closed (%s); reconnecting", i, code)

        def on_error(ws: Any, code: Any, reason: Any) -> None:
            if not self._stopping:
                stats.errors += 1
                log.warning("kite connection %d error %s: %s", i, code, reason)

        def on_noreconnect(ws: Any) -> None:
            stats.gave_up = True
            log.error("kite connection %d: giving up after %d reconnect attempts", i,
                      self.reconnect_max_tries)

        ticker.on_frame = on_frame
        ticker.on_connect = on_connect
        ticker.on_close = on_close
        ticker.on_error = on_error
        ticker.on_noreconnect = on_noreconnect
        return ticker

    def start(self) -> None:
        """Start twisted's reactor (in a daemon thread, if not running) and connect."""
        if self._tickers:
            raise RuntimeError("live source already started")
        from twisted.internet import reactor

        tls = _verified_tls(self._host, self.ca_file) if self._secure else None
        self._reactor = reactor
        self._tickers = [self._make_ticker(self._cls, i) for i in range(len(self.groups))]
        for ticker in self._tickers:
            ticker.tls = tls
        if not reactor.running:
            self._thread = threading.Thread(target=reactor.run, name="vectorticks-kite",
                                            kwargs={"installSignalHandlers": False},
                                            daemon=True)
            self._thread.start()
        for ticker in self._tickers:
            reactor.callFromThread(ticker.connect)
        log.info("kite: %d connection(s) to %s for %d instruments", len(self._tickers),
                 self.root.split("?")[0], sum(len(g) for g in self.groups))

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connections (no reconnect; waiting up to half of ``timeout`` for the
        close handshakes) and stop the reactor thread we started."""
        reactor = self._reactor
        if reactor is None:
            return
        self._stopping = True
        for ticker in self._tickers:
            reactor.callFromThread(ticker.close, 1000, "client stopping")
        deadline = time.monotonic() + timeout / 2
        while any(s.connected for s in self.stats) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._thread is not None:
            reactor.callFromThread(reactor.stop)
            self._thread.join(timeout)
            self._thread = None
        self._reactor = None

    def summary(self) -> dict[str, Any]:
        """Connection and queue counters (JSON-ready)."""
        s = self.stats
        return {
            "connections": len(s),
            "connected": sum(c.connected for c in s),
            "connects": sum(c.connects for c in s),
            "reconnects": sum(c.reconnects for c in s),
            "disconnects": sum(c.disconnects for c in s),
            "connection_errors": sum(c.errors for c in s),
            "frames_received": sum(c.frames for c in s),
            "bytes_received": sum(c.bytes for c in s),
            "frames_dropped": self.queue.dropped_frames,
            "ticks_dropped_in_queue": self.queue.dropped_ticks,
            "queue_high_water": self.queue.high_water,
            "connections_given_up": sum(c.gave_up for c in s),
        }


# -- the engine loop ---------------------------------------------------------------------------


def run_live(feeder: FrameFeeder, source: LiveSource, stop: threading.Event, *,
             poll_interval_s: float = 0.025, flush_every_s: float = 1.0,
             clock: Clock = time.time_ns,
             on_progress: Callable[[FeedStats, LiveSource], None] | None = None) -> None:
    """Feed the live source's frames to the engine until ``stop`` is set.

    Each frame is fed (logged, decoded, ingested) and the engine polled at its receive
    time; when no frame arrives for ``poll_interval_s`` the engine is polled at the
    wall clock (a clock mark in the tick log), so windows are published on time in quiet
    markets. On stop the connections are closed and every frame already queued is fed;
    the caller then closes the engine (which publishes the partial window).
    """
    source.start()
    log_writer = feeder.log
    next_flush = time.monotonic() + flush_every_s
    try:
        while not stop.is_set():
            item = source.queue.get(timeout=poll_interval_s)
            if item is None:
                feeder.clock(clock())
            else:
                feeder.frame(item.data, item.received_ns)
            if log_writer is not None and time.monotonic() >= next_flush:
                log_writer.flush()
                next_flush = time.monotonic() + flush_every_s
            if on_progress is not None:
                on_progress(feeder.stats, source)
    finally:
        source.stop()
        while (item := source.queue.get(timeout=0)) is not None:
            feeder.frame(item.data, item.received_ns)
        if log_writer is not None:
            log_writer.flush()


def open_tick_log(directory: str | PathLike[str] | None, instruments: pd.DataFrame
                  ) -> TickLogWriter | None:
    """A tick log writer for ``directory`` (``None`` → no log) that leaves the selected
    instruments next to each log file, so a replay builds the same registry."""
    if directory is None:
        return None
    buf = io.StringIO()
    write_csv(instruments, buf)
    return TickLogWriter(directory, instruments_csv=buf.getvalue().encode())

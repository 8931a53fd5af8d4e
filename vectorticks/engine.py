"""Engine: ticks in → windows cut → computed → encoded → bounded outbox → sender → sink.

The window loop (``ingest``/``poll``) runs in the caller's thread and never touches the
network: it hands each encoded window to a bounded :class:`Outbox`. One sender thread
writes windows to the sink in order, retrying a failed write with capped exponential
backoff until it succeeds or ``close()`` runs out of time. When the outbox is full the
overflow policy drops the oldest waiting window (default, the freshest data matters most
to a live consumer) or the new one; either way the window and its ticks are counted, and
the gap shows in the consumer's sequence numbers.

Accounting: once ``close()`` returns, ``ticks_in == ticks_published + ticks_dropped +
ticks_rejected + ticks_in_rejected_windows`` (quarantined ticks travel inside published
windows, so they count as published; strict validation rejects whole windows).

Metrics (optional, :class:`vectorticks.metrics.EngineMetrics`) are updated once per window
and once per delivery; the engine never imports ``prometheus_client`` itself.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import payload
from .columns import TickBatch
from .compute import Carry, compute_window
from .config import OverflowPolicy, Settings
from .errors import SchemaError, SinkError
from .instruments import InstrumentRegistry
from .kite import ticks_from_dicts
from .masks import reason_counts
from .window import CutWindow, WindowAccumulator

if TYPE_CHECKING:
    from .metrics import EngineMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One encoded window waiting for the sender."""

    seq: int
    end_ns: int
    payload: bytes
    ticks: int
    dead_letter: bytes | None = None  # its quarantine alone, for the dead-letter sink
    tally: Any = None                 # metrics.WindowTicks: counted when the window leaves


class Outbox:
    """A bounded FIFO between the window loop and the sender thread."""

    def __init__(self, capacity: int, policy: OverflowPolicy = "drop_oldest"):
        self.capacity = capacity
        self.policy = policy
        self._items: collections.deque[Outgoing] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> Outgoing | None:
        """Queue ``item``; returns the window dropped to make room, if any."""
        with self._cond:
            if self._closed:
                raise RuntimeError("outbox is closed")
            dropped = None
            if len(self._items) >= self.capacity:
                if self.policy == "drop_newest":
                    return item
                dropped = self._items.popleft()
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self) -> Outgoing | None:
        """The next window, waiting for one; ``None`` once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> list[Outgoing]:
        """Remove and return everything still queued."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items


class _Stats:
    """Counters shared by the window loop and the sender (updated once per window)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ticks_in = 0
        self.ticks_rejected = 0  # never reached a window (malformed input at the edge)
        self.ticks_quarantined = 0
        self.ticks_published = 0
        self.ticks_dropped = 0
        self.windows_cut = 0
        self.windows_published = 0
        self.windows_dropped = 0
        self.windows_rejected = 0  # strict validation: a bad tick rejects its window
        self.ticks_in_rejected_windows = 0
        self.quarantined_by_reason: collections.Counter[str] = collections.Counter()
        self.payload_bytes = 0
        self.payload_bytes_max = 0
        self.send_errors = 0
        self.last_published_seq = 0
        self.frames_rejected = 0  # malformed Kite frames (nothing of them was ingested)
        self.dead_letter_windows = 0
        self.compute_ns: collections.deque[int] = collections.deque(maxlen=100_000)

    def dropped(self, item: Outgoing, metrics: EngineMetrics | None) -> None:
        with self.lock:
            self.windows_dropped += 1
            self.ticks_dropped += item.ticks
        if metrics is not None:
            metrics.on_dropped(item.tally, item.ticks)


class Engine:
    """The synchronous window loop plus its sender thread.

    Parameters
    ----------
    registry
        Instruments the ticks refer to.
    sink
        Where payloads go (see :mod:`vectorticks.sinks`); only the sender thread calls it.
    settings
        Windowing, outbox and retry settings (``Settings()`` reads the environment).
    batching
        ``False`` cuts and publishes a window on every ``ingest`` (legacy behaviour).
        Default: ``False`` only for the legacy sink.
    clock
        Wall clock in ns, used only to time latencies for the metrics.
    metrics
        Where to count (``EngineMetrics(registry)``); ``None`` counts only the summary.
    dead_letter
        A sink that also receives each window's quarantined rows (a payload holding only
        the ``quarantine`` section, same ``seq``), e.g. a Redis stream. Default: built
        from ``settings.dead_letter_stream`` when that is set.
    """

    def __init__(self, registry: InstrumentRegistry, sink: Any, settings: Settings | None = None,
                 *, batching: bool | None = None, clock: Clock = time.time_ns,
                 metrics: EngineMetrics | None = None, dead_letter: Any = None):
        self.settings = settings or Settings()
        self.registry = registry
        self.sink = sink
        if dead_letter is None and self.settings.dead_letter_stream:
            from .sinks import dead_letter_sink

            dead_letter = dead_letter_sink(self.settings)
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.batching = self.settings.sink_kind != "legacy" if batching is None else batching
        self._clock = clock
        self._acc = WindowAccumulator(self.settings.window_ns, self.settings.tick_batch_max_size)
        self._carry = Carry.initial(len(registry))
        self._greeks = self.settings.greeks_params
        self._limits = self.settings.validation_limits
        self._seq = sink.last_seq() or 0  # resume numbering after what the target holds
        self._stats = _Stats()
        self._outbox = Outbox(self.settings.outbox_capacity, self.settings.outbox_overflow)
        if metrics is not None:
            metrics.bind_outbox(self._outbox.__len__)
        self._abort = threading.Event()
        self._closed = False
        self._sender = threading.Thread(target=self._send_loop, name="vectorticks-sender",
                                        daemon=True)
        self._sender.start()
        self._warm_up()

    def _warm_up(self) -> None:
        """Load (or compile) the JIT kernels now, not inside the first live window."""
        t0 = time.perf_counter()
        warm = TickBatch.from_columns(instrument_token=self.registry.token,
                                      received_ns=0, last_price=100.0, bid_price=99.0,
                                      ask_price=101.0)
        result, _ = compute_window(warm, self.registry, self._carry, seq=0, start_ns=0,
                                   end_ns=0, greeks=self._greeks, validation=self._limits)
        payload.encode(result)
        if self.metrics is not None:
            self.metrics.warm_up(result, warm, self.registry.kind)
            self.metrics.on_warm_up(time.perf_counter() - t0)

    # -- window loop (caller's thread) -------------------------------------------------

    def ingest(self, batch: TickBatch) -> None:
        """Add ticks (in arrival order); full windows are cut and queued right away."""
        if self._closed:
            raise RuntimeError("engine is closed")
        with self._stats.lock:
            self._stats.ticks_in += len(batch)
        self._acc.add(batch)
        if not self.batching:
            self._publish(self._acc.flush())
        elif self._acc.due:
            self._publish(self._acc.cut())

    def poll(self, now_ns: int) -> int:
        """Cut, compute and queue every window whose time has passed; returns how many."""
        return self._publish(self._acc.cut(now_ns))

    def reject(self, n: int, reason: str) -> None:
        """Count ``n`` ticks refused at the edge (they never reach a window)."""
        log.warning("rejected %d ticks: %s", n, reason)
        with self._stats.lock:
            self._stats.ticks_in += n
            self._stats.ticks_rejected += n
        if self.metrics is not None:
            self.metrics.on_input_rejected(n)

    def frame_rejected(self) -> None:
        """Count a Kite frame that failed to decode (nothing of it was ingested)."""
        with self._stats.lock:
            self._stats.frames_rejected += 1
        if self.metrics is not None:
            self.metrics.frames_rejected(1)

    def close(self, timeout: float | None = None) -> dict[str, Any]:
        """Publish the partial window, drain the outbox within ``timeout`` seconds
        (default ``settings.close_timeout_s``), stop the sender; returns the summary.
        Windows not delivered in time are counted as dropped."""
        if not self._closed:
            self._publish(self._acc.flush())
            self._closed = True
            self._outbox.close()
            self._sender.join(self.settings.close_timeout_s if timeout is None else timeout)
            if self._sender.is_alive():
                self._abort.set()
                self._sender.join()
            for item in self._outbox.drain():
                self._stats.dropped(item, self.metrics)
            self.sink.close()
            if self.dead_letter is not None:
                self.dead_letter.close()
        return self.summary()

    def _publish(self, windows: list[CutWindow]) -> int:
        for w in windows:
            t0 = time.perf_counter_ns()
            result, carry = compute_window(w.ticks, self.registry, self._carry,
                                           seq=self._seq + 1, start_ns=w.start_ns,
                                           end_ns=w.end_ns, greeks=self._greeks,
                                           validation=self._limits)
            t1 = time.perf_counter_ns()
            s = self._stats
            reasons = result.quarantine["reason"]
            with s.lock:
                s.windows_cut += 1
                s.quarantined_by_reason.update(reason_counts(reasons))
            if self.settings.tick_validation_strict and len(reasons):
                # The whole window is refused: nothing of it is published or carried.
                log.warning("strict validation rejected a window of %d ticks (%s)",
                            result.ticks_in, reason_counts(reasons))
                with s.lock:
                    s.windows_rejected += 1
                    s.ticks_in_rejected_windows += result.ticks_in
                self._observe(result, w, t0, t1, t1, rejected=True)
                continue
            self._seq += 1
            self._carry = carry
            data = payload.encode(result)
            t2 = time.perf_counter_ns()
            dead = None
            if self.dead_letter is not None and len(reasons):
                dead = payload.encode_sections(
                    self._seq, w.start_ns, w.end_ns, len(reasons),
                    {"quarantine": result.quarantine},
                    reason_counts=payload.reason_bit_counts(reasons))
            item = Outgoing(self._seq, w.end_ns, data, result.ticks_in, dead,
                            self._observe(result, w, t0, t1, t2, rejected=False))
            with s.lock:
                s.ticks_quarantined += len(reasons)
                s.payload_bytes += len(data)
                s.payload_bytes_max = max(s.payload_bytes_max, len(data))
                s.compute_ns.append(t2 - t0)
            dropped = self._outbox.put(item)
            if dropped is not None:
                log.warning("outbox full: dropped window seq=%d (%d ticks)", dropped.seq,
                            dropped.ticks)
                s.dropped(dropped, self.metrics)
        return len(windows)

    def _observe(self, result: Any, w: CutWindow, t0: int, t1: int, t2: int, *,
                 rejected: bool) -> Any:
        if self.metrics is None:
            return None
        return self.metrics.on_window(
            result, w.ticks, self.registry.kind, compute_s=(t1 - t0) / 1e9,
            greeks_s=None if self._greeks is None else result.greeks_ns / 1e9,
            encode_s=(t2 - t1) / 1e9, rejected=rejected)

    # -- sender thread ------------------------------------------------------------------

    def _send_loop(self) -> None:
        while (item := self._outbox.get()) is not None:
            if not self._deliver(item):
                self._stats.dropped(item, self.metrics)

    def _deliver(self, item: Outgoing) -> bool:
        flush_s = self._write(self.sink, item.seq, item.end_ns, item.payload)
        if flush_s is None:
            return False
        with self._stats.lock:
            self._stats.windows_published += 1
            self._stats.ticks_published += item.ticks
            self._stats.last_published_seq = item.seq
        if self.metrics is not None:
            self.metrics.on_published(item.tally, item.seq, item.end_ns, len(item.payload),
                                      flush_s)
        if item.dead_letter is not None and self._write(
                self.dead_letter, item.seq, item.end_ns, item.dead_letter) is not None:
            with self._stats.lock:
                self._stats.dead_letter_windows += 1
        return True

    def _write(self, sink: Any, seq: int, end_ns: int, data: bytes) -> float | None:
        """Write with capped exponential retry until it succeeds (returns the seconds the
        successful write took) or the engine aborts (``None``)."""
        delay = self.settings.retry_initial_s
        while not self._abort.is_set():
            t0 = time.perf_counter()
            try:
                sink.write(seq, end_ns, data)
            except Exception as exc:  # a dead sender thread would lose every later window
                with self._stats.lock:
                    self._stats.send_errors += 1
                if self.metrics is not None:
                    self.metrics.on_publish_error(retrying=True)
                log.warning("write of window seq=%d failed (%s); retrying in %.2fs",
                            seq, exc, delay, exc_info=not isinstance(exc, SinkError))
                self._abort.wait(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
                continue
            return time.perf_counter() - t0
        return None

    # -- reporting ------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counters and timings so far (a plain dict, JSON-ready)."""
        s = self._stats
        with s.lock:
            compute = np.fromiter(s.compute_ns, np.int64, len(s.compute_ns))
            out = {k: v for k, v in vars(s).items() if isinstance(v, int)}
        out["ticks_pending"] = (out["ticks_in"] - out["ticks_rejected"] - out["ticks_published"]
                                - out["ticks_dropped"] - out["ticks_in_rejected_windows"])
        with s.lock:
            out["quarantined_by_reason"] = dict(s.quarantined_by_reason)
        out["outbox_depth"] = len(self._outbox)
        out["last_seq"] = self._seq
        for q in (50, 99):
            out[f"compute_p{q}_ms"] = float(np.percentile(compute, q)) / 1e6 if len(compute) \
                else None
        return out


class TickProcessor:
    """The asyncio facade for the platform: feed tick dicts, windows flush periodically.

    ``process_ticks`` converts and ingests at once (cheap, in the event loop);
    ``start()`` runs a task that cuts due windows every quarter window; ``stop()`` cancels
    it and closes the engine (flushing everything) in a worker thread.
    """

    def __init__(self, engine: Engine, *, clock: Clock = time.time_ns):
        self.engine = engine
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def process_ticks(self, ticks: Sequence[Mapping[str, Any]]) -> int:
        """Ingest Kite tick dicts (``on_ticks`` payload); returns the ticks accepted."""
        try:
            batch, rejected = ticks_from_dicts(ticks, self._clock(), errors="reject")
        except SchemaError as exc:  # not a sequence of tick dicts at all
            self.engine.reject(len(ticks), str(exc))
            return 0
        if rejected:
            self.engine.reject(len(rejected), rejected.summary())
        if len(batch):
            self.engine.ingest(batch)
        return len(batch)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_periodically())

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        return await asyncio.to_thread(self.engine.close)

    async def _flush_periodically(self) -> None:
        interval = self.engine.settings.tick_batch_window_ms / 4000
        while True:
            await asyncio.sleep(interval)
            self.engine.poll(self._clock())

"""Prometheus metrics of the engine, updated once per window, exposed by one collector.

The window loop and the sender thread never call ``prometheus_client`` (about 1 µs a
call): they add to NumPy arrays and Python ints under one lock, and
:class:`EngineMetrics` turns them into metric families when Prometheus scrapes. Per-tick
latencies are counted into bucket arrays by a Numba pass over the window's receive
times. Histograms are exposed exactly as ``prometheus_client.Histogram`` would expose the
same observations (cumulative ``_bucket{le}``, ``+Inf``, ``_count``, ``_sum``,
``_created``). Names, labels and buckets: ``docs/metrics.md``.

>>> from prometheus_client import CollectorRegistry      # doctest: +SKIP
>>> registry = CollectorRegistry()                       # doctest: +SKIP
>>> engine = Engine(instruments, sink, settings, metrics=EngineMetrics(registry))  # doctest: +SKIP
>>> server = serve(registry, port=9464)                  # loopback by default  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import copy
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
from prometheus_client import CollectorRegistry, make_asgi_app, make_wsgi_app
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ._jit import jit
from .greeks import IVStatus
from .instruments import Kind
from .masks import REASONS

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from .columns import TickBatch
    from .compute import WindowResult

__all__ = [
    "BUCKETS",
    "EngineMetrics",
    "NumpyHistogram",
    "WindowTicks",
    "asgi_app",
    "serve",
    "wsgi_app",
]

# -- label values (bounded, see docs/metrics.md) ------------------------------------------

TICK_TYPES = ("index", "equity", "future", "option", "unknown")
STATUSES = ("ok", "quarantined", "rejected")
BATCH_TYPES = ("ticks", "bars", "options", "quarantine")
ERROR_TYPES = ("validation", "input_rejected", "window_rejected", "frame_decode", "publish",
               "outbox_drop")
REASON_LABELS = tuple(r.name.lower() for r in REASONS)
IV_STATUS_LABELS = tuple(s.name.lower() for s in sorted(IVStatus, key=int))
_UNKNOWN = TICK_TYPES.index("unknown")
# Kind (INDEX 0, EQUITY 1, FUTURE 2, CALL 3, PUT 4) -> index into TICK_TYPES
_TICK_TYPE_OF_KIND = np.array([0, 1, 2, 3, 3], np.int64)
assert [k.name for k in sorted(Kind, key=int)] == ["INDEX", "EQUITY", "FUTURE", "CALL", "PUT"]

# Every alert threshold is a boundary: 0.15 s (P99 latency), 0.2 s (publish SLO).
_TICK_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25,
                 0.5, 1.0, 2.5, 5.0, 10.0)
_STAGE = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
          0.25, 0.5, 1.0)
BUCKETS: dict[str, tuple[float, ...]] = {
    "tick_processing_latency_seconds": _TICK_LATENCY,
    "vectorticks_end_to_end_latency_seconds": _TICK_LATENCY,
    "vectorticks_window_compute_seconds": _STAGE,
    "vectorticks_greeks_compute_seconds": _STAGE,
    "vectorticks_payload_encode_seconds": _STAGE,
    "tick_batch_flush_latency_seconds": _STAGE,
    "tick_batch_size": (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000),
    "vectorticks_payload_bytes": (1024, 4096, 16384, 65536, 262144, 524288, 1048576, 2097152,
                                  4194304),
    "vectorticks_window_fill_ratio": (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
}


class NumpyHistogram:
    """A labelled histogram kept as NumPy arrays: per label set, the count of each bucket
    (not cumulative; the last is ``+Inf``) and the sum of the observations.

    Bucket ``i`` holds observations ``v`` with ``bounds[i-1] < v <= bounds[i]``, the
    ``le`` semantics of ``prometheus_client.Histogram``. Not thread-safe by itself: the
    owner serialises updates and :meth:`family` (``EngineMetrics`` holds one lock).
    """

    def __init__(self, name: str, documentation: str, bounds: Sequence[float],
                 labelnames: Sequence[str] = (), labelvalues: Sequence[Sequence[str]] = ((),),
                 *, created: float | None = None):
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"{name}: bounds must be strictly increasing and non-empty")
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(b) for b in bounds)
        self.labelnames = tuple(labelnames)
        self.labelvalues = [tuple(v) for v in labelvalues]
        self.counts = np.zeros((len(self.labelvalues), len(self.bounds) + 1), np.int64)
        self.sums = np.zeros(len(self.labelvalues), np.float64)
        # single observations land in plain lists (~0.2 µs, against ~1 µs for NumPy
        # scalar updates) and are folded into the arrays when read
        self._counts = [[0] * (len(self.bounds) + 1) for _ in self.labelvalues]
        self._sums = [0.0] * len(self.labelvalues)
        self.created = time.time() if created is None else created
        self._le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]

    def observe(self, value: float, row: int = 0) -> None:
        """One observation (a per-window value): a bisect, not a NumPy call."""
        self._counts[row][bisect.bisect_left(self.bounds, value)] += 1
        self._sums[row] += value

    def observe_many(self, values: np.ndarray, row: int = 0) -> None:
        """Many observations at once (vectorised)."""
        values = np.asarray(values, np.float64)
        idx = np.searchsorted(np.asarray(self.bounds), values, side="left")
        self.counts[row] += np.bincount(idx, minlength=len(self.bounds) + 1)
        self.sums[row] += float(values.sum())

    def copy(self) -> NumpyHistogram:
        """A snapshot whose arrays no later update touches."""
        snap = copy.copy(self)
        snap.counts = self.counts + np.array(self._counts, np.int64)
        snap.sums = self.sums + np.array(self._sums)
        snap._counts = [[0] * len(row) for row in self._counts]
        snap._sums = [0.0] * len(self._sums)
        return snap

    def family(self) -> HistogramMetricFamily:
        counts = self.counts + np.array(self._counts, np.int64)
        sums = self.sums + np.array(self._sums)
        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        cumulative = np.cumsum(counts, axis=1)
        for row, values in enumerate(self.labelvalues):
            fam.add_metric(list(values), list(zip(self._le, cumulative[row].tolist(),
                                                  strict=True)),
                           float(sums[row]))
            # prometheus_client.Histogram also exposes when the series started
            fam.samples.append(Sample(self.name + "_created", dict(zip(self.labelnames, values,
                                                                       strict=True)),
                                      self.created))
        return fam


def _bounds_ns(bounds: Sequence[float]) -> np.ndarray:
    return np.array([round(b * 1e9) for b in bounds], np.int64)


@jit
def _tick_pass(rows, reasons, type_of_row, received_ns, computed_ns, acked_ns, bounds_ns, bid,
               rejected, latency_counts, latency_sums_ns, e2e_counts, ticks, reason_counts):
    """One pass over a window's ticks, adding into the metrics' own arrays: per tick type
    the latency bucket of receive → ``computed_ns`` and the outcome (ok / quarantined, or
    rejected with the window); the receive → ``acked_ns`` bucket (skipped when
    ``acked_ns < 0``: the window was never delivered); the reason bits of the quarantined.
    Returns (valid ticks with a best bid, sum of receive → acked in ns).

    A receive time after ``computed_ns`` counts as 0. Receive times are nearly sorted
    within a window, so each tick's bucket is found by stepping from the previous tick's
    (amortised O(1)) instead of a binary search; counts gather in local arrays first (no
    read-modify-write through memory the compiler must assume aliased)."""
    nb = len(bounds_ns)
    n_types = ticks.shape[0]
    lat_counts = np.zeros((n_types, nb + 1), np.int64)
    lat_sums = np.zeros(n_types, np.int64)
    outcome = np.zeros((n_types, 2), np.int64)
    e2e = np.zeros(nb + 1, np.int64)
    b = nb
    e = nb
    depth = 0
    e2e_sum = 0
    for i in range(len(rows)):
        r = rows[i]
        t = type_of_row[r] if r >= 0 else n_types - 1
        lat = max(computed_ns - received_ns[i], 0)
        while b > 0 and lat <= bounds_ns[b - 1]:
            b -= 1
        while b < nb and lat > bounds_ns[b]:
            b += 1
        lat_counts[t, b] += 1
        lat_sums[t] += lat
        if acked_ns >= 0:
            lat = max(acked_ns - received_ns[i], 0)
            while e > 0 and lat <= bounds_ns[e - 1]:
                e -= 1
            while e < nb and lat > bounds_ns[e]:
                e += 1
            e2e[e] += 1
            e2e_sum += lat
        bits = reasons[i]
        if bits == 0:
            outcome[t, 0] += 1
            if bid[i] == bid[i]:  # a best bid (not NaN)
                depth += 1
        else:
            outcome[t, 1] += 1
            k = 0
            while bits:
                if bits & 1:
                    reason_counts[k] += 1
                bits >>= 1
                k += 1
    latency_counts += lat_counts
    latency_sums_ns += lat_sums
    e2e_counts += e2e
    if rejected:
        ticks[:, 2] += outcome[:, 0] + outcome[:, 1]
        depth = 0
    else:
        ticks[:, :2] += outcome
    return depth, e2e_sum


@dataclass(frozen=True, slots=True)
class WindowTicks:
    """What the per-tick pass needs of a window, kept from compute until the window is
    delivered or dropped (the engine carries it opaquely in its outbox)."""

    rows: np.ndarray
    reasons: np.ndarray
    received_ns: np.ndarray
    bid: np.ndarray
    computed_ns: int
    iv_status: np.ndarray | None  # of the window's options; None: Greeks off
    # per-window observations, folded in with the ticks (not in the window loop)
    compute_s: float
    greeks_s: float | None
    encode_s: float | None        # None: rejected by strict validation, never encoded
    sizes: tuple[int, int, int, int]  # ticks, bars, options, quarantine rows


class EngineMetrics(Collector):
    """Every metric of docs/metrics.md, registered on ``registry`` as one collector.

    The engine calls the ``on_*`` methods once per window (window loop) or per delivery
    (sender thread); sources call :meth:`frames_rejected` and :meth:`set_active_sources`.

    Parameters
    ----------
    registry
        Where to register (a new ``CollectorRegistry`` when ``None``; see ``.registry``).
    sink_kind
        Label value of the per-sink series (``stream``, ``pubsub``, ``file``, …).
    outbox_capacity, max_batch_size
        Exposed as the outbox capacity gauge, and the denominator of the fill ratio.
    clock
        Wall clock in ns for latencies (the engine's clock).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, sink_kind: str = "file",
                 outbox_capacity: int = 1024, max_batch_size: int = 20_000,
                 clock: Callable[[], int] = time.time_ns):
        self.registry = CollectorRegistry() if registry is None else registry
        self.sink_kind = sink_kind
        self.outbox_capacity = outbox_capacity
        self.max_batch_size = max_batch_size
        self.clock = clock
        self._lock = threading.Lock()
        self._created = time.time()
        self._outbox_depth: Callable[[], int] = lambda: 0
        h = self._histogram
        self.tick_latency = h("tick_processing_latency_seconds",
                              "Tick receive time to its window computed (payload ready).",
                              ("tick_type",), [(t,) for t in TICK_TYPES])
        self.end_to_end = h("vectorticks_end_to_end_latency_seconds",
                            "Tick receive time to the sink acknowledging its window.")
        self.batch_size = h("tick_batch_size", "Rows per window, by section.",
                            ("batch_type",), [(b,) for b in BATCH_TYPES])
        self.flush_latency = h("tick_batch_flush_latency_seconds",
                               "One successful sink write of a window.", ("batch_type",),
                               [(sink_kind,)])
        self.window_compute = h("vectorticks_window_compute_seconds",
                                "compute_window of one window (validation, bars, snapshots, "
                                "Greeks).")
        self.greeks_compute = h("vectorticks_greeks_compute_seconds",
                                "Forwards, time to expiry, IV and Greeks of one window.")
        self.encode = h("vectorticks_payload_encode_seconds", "payload.encode of one window.")
        self.payload_bytes = h("vectorticks_payload_bytes", "Encoded payload size per window.")
        self.fill_ratio = h("vectorticks_window_fill_ratio",
                            "Ticks in the window / tick_batch_max_size.")
        self._histograms = (self.tick_latency, self.end_to_end, self.batch_size,
                            self.flush_latency, self.window_compute, self.greeks_compute,
                            self.encode, self.payload_bytes, self.fill_ratio)
        # one kernel buckets both per-tick latencies: they share their boundaries
        assert (BUCKETS["tick_processing_latency_seconds"]
                == BUCKETS["vectorticks_end_to_end_latency_seconds"])
        self._bounds_ns = _bounds_ns(BUCKETS["tick_processing_latency_seconds"])
        self._e2e_sum_ns = 0
        self._latency_sums_ns = np.zeros(len(TICK_TYPES), np.int64)
        self._type_of_row = self._type_of_row_for = np.zeros(0, np.int64)
        # counters
        self.ticks = np.zeros((len(TICK_TYPES), len(STATUSES)), np.int64)
        self.errors = dict.fromkeys(ERROR_TYPES, 0)
        self.rejects_by_reason = np.zeros(32, np.int64)
        self.greeks_by_status = np.zeros(len(IV_STATUS_LABELS), np.int64)
        self.quarantined = 0
        self.frame_errors = 0
        self.windows_published = 0
        self.windows_rejected = 0
        self.dropped_windows = 0
        self.dropped_ticks = 0
        self.publish_errors = 0
        self.publish_retries = 0
        self.depth_updates = 0
        # gauges
        self.active_sources = 0
        self.last_seq = 0
        self.last_window_end_s = 0.0
        self.jit_warmup_s = 0.0
        self.registry.register(self)

    def _histogram(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                   labelvalues: Sequence[Sequence[str]] = ((),)) -> NumpyHistogram:
        return NumpyHistogram(name, documentation, BUCKETS[name], labelnames, labelvalues,
                              created=self._created)

    def warm_up(self, result: WindowResult, ticks: TickBatch, kind_of_row: np.ndarray) -> None:
        """Compile (or load) the counting kernel on a window, counting nothing."""
        n, nb = len(TICK_TYPES), len(self._bounds_ns) + 1
        _tick_pass(result.tick_rows, result.tick_reasons, self._types(kind_of_row),
                   ticks.received_ns, 0, 0, self._bounds_ns, ticks.bid_price, False,
                   np.zeros((n, nb), np.int64), np.zeros(n, np.int64), np.zeros(nb, np.int64),
                   np.zeros((n, len(STATUSES)), np.int64), np.zeros(32, np.int64))

    def _types(self, kind_of_row: np.ndarray) -> np.ndarray:
        """Tick type index per registry row (kept for the registry's ``kind`` array)."""
        if self._type_of_row_for is not kind_of_row:
            self._type_of_row = _TICK_TYPE_OF_KIND[kind_of_row]
            self._type_of_row_for = kind_of_row
        return self._type_of_row

    def bind_outbox(self, depth: Callable[[], int]) -> None:
        """Read the outbox depth from ``depth()`` at scrape time."""
        self._outbox_depth = depth

    # -- window loop -----------------------------------------------------------------------

    def on_window(self, result: WindowResult, ticks: TickBatch, kind_of_row: np.ndarray, *,
                  compute_s: float, greeks_s: float | None, encode_s: float,
                  rejected: bool) -> WindowTicks | None:
        """A window was computed (and encoded unless ``rejected`` by strict validation);
        ``greeks_s`` is ``None`` when Greeks are off.

        Only a few counters move here, in the window loop. Everything else — the
        per-tick pass and the window's timings and sizes — is counted when the window
        leaves the engine: give the returned :class:`WindowTicks` to :meth:`on_published`
        or :meth:`on_dropped` (a rejected window is counted now)."""
        quarantined = len(result.quarantine["reason"])
        pending = WindowTicks(result.tick_rows, result.tick_reasons, ticks.received_ns,
                              ticks.bid_price, self.clock(),
                              None if greeks_s is None else result.options["iv_status"],
                              compute_s, greeks_s, None if rejected else encode_s,
                              (result.ticks_in, len(result.bars["instrument_token"]),
                               len(result.options["instrument_token"]), quarantined))
        if self._type_of_row_for is not kind_of_row:
            self._types(kind_of_row)
        with self._lock:
            if rejected:
                self.windows_rejected += 1
                self.errors["window_rejected"] += result.ticks_in
            self.quarantined += quarantined
            self.errors["validation"] += quarantined
        if rejected:
            self._count_ticks(pending, acked_ns=-1, rejected=True)
            return None
        return pending

    def _count_ticks(self, w: WindowTicks, *, acked_ns: int, rejected: bool = False) -> None:
        iv = None
        if w.iv_status is not None and not rejected:
            # -1 (no Greeks for that row) goes to bin 0, dropped
            iv = np.bincount(w.iv_status.astype(np.intp) + 1,
                             minlength=len(IV_STATUS_LABELS) + 1)[1:]
        with self._lock:
            if iv is not None:
                self.greeks_by_status += iv
            self.window_compute.observe(w.compute_s)
            if w.greeks_s is not None:
                self.greeks_compute.observe(w.greeks_s)
            if w.encode_s is not None:
                self.encode.observe(w.encode_s)
            for row, n in enumerate(w.sizes):
                self.batch_size.observe(n, row)
            self.fill_ratio.observe(w.sizes[0] / self.max_batch_size)
            depth, e2e_sum = _tick_pass(
                w.rows, w.reasons, self._type_of_row, w.received_ns, w.computed_ns, acked_ns,
                self._bounds_ns, w.bid, rejected, self.tick_latency.counts,
                self._latency_sums_ns, self.end_to_end.counts[0], self.ticks,
                self.rejects_by_reason)
            self.depth_updates += depth
            self._e2e_sum_ns += e2e_sum

    def on_input_rejected(self, n: int) -> None:
        """Ticks refused at the edge (malformed dicts): never in a window."""
        with self._lock:
            self.ticks[_UNKNOWN, 2] += n
            self.errors["input_rejected"] += n

    def frames_rejected(self, n: int = 1) -> None:
        """Kite frames that failed to decode."""
        with self._lock:
            self.frame_errors += n
            self.errors["frame_decode"] += n

    def set_active_sources(self, n: int) -> None:
        with self._lock:
            self.active_sources = n

    def on_warm_up(self, seconds: float) -> None:
        with self._lock:
            self.jit_warmup_s = seconds

    # -- sender thread ---------------------------------------------------------------------

    def on_published(self, window: WindowTicks | None, seq: int, end_ns: int,
                     payload_bytes: int, flush_s: float) -> None:
        """The sink acknowledged window ``seq``; its ticks are counted now."""
        if window is not None:
            self._count_ticks(window, acked_ns=self.clock())
        with self._lock:
            self.flush_latency.observe(flush_s)
            self.payload_bytes.observe(payload_bytes)
            self.windows_published += 1
            self.last_seq = max(self.last_seq, seq)
            self.last_window_end_s = max(self.last_window_end_s, end_ns / 1e9)

    def on_publish_error(self, *, retrying: bool) -> None:
        with self._lock:
            self.publish_errors += 1
            self.errors["publish"] += 1
            self.publish_retries += retrying

    def on_dropped(self, window: WindowTicks | None, ticks: int) -> None:
        """A window dropped on outbox overflow, or left undelivered at shutdown: its ticks
        are counted (they were processed), with no end-to-end latency."""
        if window is not None:
            self._count_ticks(window, acked_ns=-1)
        with self._lock:
            self.dropped_windows += 1
            self.dropped_ticks += ticks
            self.errors["outbox_drop"] += 1

    # -- exposition ------------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are built at collect time; no name clash to pre-check

    def collect(self) -> Iterator[Metric]:
        # Copy under the lock (microseconds), build the families outside it, so a scrape
        # never holds up the window loop.
        with self._lock:
            self.tick_latency.sums = self._latency_sums_ns / 1e9
            self.end_to_end.sums[0] = self._e2e_sum_ns / 1e9
            st = SimpleNamespace(**{k: getattr(self, k) for k in _SCALARS},
                                 **{k: getattr(self, k).copy() for k in _ARRAYS},
                                 histograms=[h.copy() for h in self._histograms])
        yield from [h.family() for h in st.histograms]
        yield from self._counters(st) + self._gauges(st, self._outbox_depth())

    def _counter(self, name: str, documentation: str, value: float | None = None, *,
                 labels: Sequence[str] = (),
                 values: Sequence[tuple[Sequence[str], float]] = ()) -> CounterMetricFamily:
        fam = CounterMetricFamily(name, documentation, labels=labels)
        for labelvalues, v in values if labels else [((), value)]:
            fam.add_metric(list(labelvalues), float(v), created=self._created)
        return fam

    def _counters(self, st: SimpleNamespace) -> list[Metric]:
        c = self._counter
        return [
            c("ticks_processed_total", "Ticks by outcome, counted when their window is "
              "computed.", labels=("tick_type", "status"),
              values=[((t, s), st.ticks[i, j]) for i, t in enumerate(TICK_TYPES)
                      for j, s in enumerate(STATUSES)]),
            c("tick_processing_errors_total", "Error events: ticks (validation, "
              "input_rejected, window_rejected), frames, sink attempts or dropped windows.",
              labels=("error_type",), values=[((e,), n) for e, n in st.errors.items()]),
            c("vectorticks_validation_rejects_total", "Quarantined ticks by reason bit.",
              labels=("reason",), values=[((r,), st.rejects_by_reason[
                  int(reason).bit_length() - 1]) for r, reason in zip(REASON_LABELS, REASONS,
                                                                       strict=True)]),
            c("vectorticks_quarantined_ticks_total", "Quarantined ticks.", st.quarantined),
            c("vectorticks_frame_decode_errors_total", "Kite frames that failed to decode.",
              st.frame_errors),
            c("vectorticks_windows_published_total", "Windows the sink acknowledged.",
              st.windows_published),
            c("vectorticks_windows_rejected_total", "Windows rejected whole (strict mode).",
              st.windows_rejected),
            c("vectorticks_outbox_dropped_windows_total", "Windows dropped on outbox overflow "
              "or left undelivered at shutdown.", st.dropped_windows),
            c("vectorticks_outbox_dropped_ticks_total", "Ticks in dropped windows.",
              st.dropped_ticks),
            c("vectorticks_publish_errors_total", "Failed sink write attempts.",
              labels=("sink",), values=[((self.sink_kind,), st.publish_errors)]),
            c("vectorticks_publish_retries_total", "Retries after a failed sink write.",
              labels=("sink",), values=[((self.sink_kind,), st.publish_retries)]),
            c("vectorticks_greeks_computed_total", "Options given IV and Greeks, by IV status.",
              labels=("iv_status",), values=list(zip([(s,) for s in IV_STATUS_LABELS],
                                                     st.greeks_by_status.tolist(),
                                                     strict=True))),
            c("vectorticks_depth_updates_total", "Valid ticks carrying market depth.",
              st.depth_updates),
        ]

    def _gauges(self, st: SimpleNamespace, outbox_depth: int) -> list[Metric]:
        def g(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, value=float(value))

        info = GaugeMetricFamily("vectorticks_build_info", "What is running (value 1).",
                                 labels=("version", "python", "numpy", "numba"))
        info.add_metric([_version(), platform.python_version(), np.__version__,
                         numba.__version__], 1.0)
        return [
            g("tick_processor_active_accounts", "Tick sources connected now.",
              st.active_sources),
            g("vectorticks_outbox_depth", "Windows waiting for the sender thread.",
              outbox_depth),
            g("vectorticks_outbox_capacity", "The outbox bound.", self.outbox_capacity),
            g("vectorticks_last_published_window_seq",
              "Sequence number of the newest acknowledged window.", st.last_seq),
            g("vectorticks_last_published_window_timestamp_seconds",
              "End of the newest acknowledged window, Unix seconds.", st.last_window_end_s),
            g("vectorticks_jit_warmup_seconds", "Time spent loading or compiling the Numba "
              "kernels at start.", st.jit_warmup_s),
            info,
        ]


# What a scrape copies under the lock (EngineMetrics.collect).
_SCALARS = ("active_sources", "depth_updates", "dropped_ticks", "dropped_windows",
            "frame_errors", "publish_errors", "publish_retries", "quarantined",
            "windows_published", "windows_rejected", "last_seq", "last_window_end_s",
            "jit_warmup_s")
_ARRAYS = ("ticks", "errors", "rejects_by_reason", "greeks_by_status")


def _version() -> str:
    from . import __version__

    return __version__


# -- exposition ---------------------------------------------------------------------------


def serve(registry: CollectorRegistry, port: int = 9464,
          host: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` of ``registry`` from a daemon thread (loopback by default; pass
    ``host="0.0.0.0"`` deliberately to expose it). ``port=0`` picks a free port: read it
    from ``server.server_port``. Stop with ``server.shutdown(); server.server_close()``."""
    return _start_http_server(port, addr=host, registry=registry)


def wsgi_app(registry: CollectorRegistry) -> Any:
    """A WSGI app serving ``registry`` (mount it at ``/metrics`` of your own server)."""
    return make_wsgi_app(registry)


def asgi_app(registry: CollectorRegistry) -> Any:
    """An ASGI app serving ``registry`` (e.g. ``app.mount("/metrics", asgi_app(r))``)."""
    return make_asgi_app(registry)

"""vectorticks.metrics: values after known windows, and the NumPy histogram against
prometheus_client.Histogram."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from small_registry import CE, FUT, NIFTY, PE, STOCK, small_registry

from vectorticks import Engine, Settings, TickBatch
from vectorticks.metrics import (
    BUCKETS,
    ERROR_TYPES,
    REASON_LABELS,
    TICK_TYPES,
    EngineMetrics,
    NumpyHistogram,
    serve,
    wsgi_app,
)
from vectorticks.sinks import MemorySink

T0 = 1_795_000_000_000_000_000  # 2026-11-18, before the small registry's expiries
MS = 1_000_000
BOUNDS = BUCKETS["tick_processing_latency_seconds"]


# -- the NumPy histogram is a prometheus_client.Histogram ---------------------------------


def exposition(registry: CollectorRegistry) -> str:
    """The text format with the ``_created`` timestamps blanked (they differ by design)."""
    return re.sub(r"(_created\{?[^ ]*) \S+", r"\1 T", generate_latest(registry).decode())


def both(labelnames: tuple[str, ...] = (), labelvalues: tuple[tuple[str, ...], ...] = ((),)):
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = NumpyHistogram("x_seconds", "doc", BOUNDS, labelnames, labelvalues)
    ours_registry.register(_Single(ours))
    theirs = Histogram("x_seconds", "doc", labelnames, registry=theirs_registry, buckets=BOUNDS)
    return ours, ours_registry, theirs, theirs_registry


class _Single:
    def __init__(self, hist: NumpyHistogram):
        self.hist = hist

    def collect(self):
        yield self.hist.family()


def test_boundaries_fall_in_their_own_bucket_like_prometheus_client() -> None:
    ours, ours_reg, theirs, theirs_reg = both()
    values = [0.0, *BOUNDS, *(np.nextafter(b, np.inf) for b in BOUNDS), 11.0, 1e9]
    for v in values:
        theirs.observe(v)
    ours.observe_many(np.array(values[: len(values) // 2]))
    for v in values[len(values) // 2:]:
        ours.observe(v)
    assert exposition(ours_reg) == exposition(theirs_reg)
    text = exposition(ours_reg)
    assert 'x_seconds_bucket{le="0.15"} 20.0' in text  # 0, 10 bounds, 9 just above a bound
    assert 'x_seconds_bucket{le="+Inf"} 37.0' in text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=50),
       st.lists(st.sampled_from(BOUNDS), max_size=20))
def test_any_observations_match_prometheus_client(values: list[float],
                                                  exact: list[float]) -> None:
    ours, ours_reg, theirs, theirs_reg = both(("tick_type",), (("index",), ("option",)))
    theirs.labels("index"), theirs.labels("option")  # ours creates every labelled series
    for i, v in enumerate(values + exact):
        theirs.labels(("index", "option")[i % 2]).observe(v)
    arr = np.array(values + exact, np.float64)
    ours.observe_many(arr[0::2], row=0)
    ours.observe_many(arr[1::2], row=1)
    # sums may differ in the last bits (NumPy sums pairwise); compare them approximately
    ours_text, theirs_text = exposition(ours_reg), exposition(theirs_reg)
    strip = re.compile(r"(_sum\{[^}]*\}) (\S+)")
    assert strip.sub(r"\1", ours_text) == strip.sub(r"\1", theirs_text)
    for (k, a), (_, b) in zip(strip.findall(ours_text), strip.findall(theirs_text),
                              strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-12, abs=1e-12), k


def test_bounds_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        NumpyHistogram("x", "doc", (0.1, 0.1))


# -- the engine's metrics after known windows ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def ticks(tokens, received, price, bid=None, ask=None) -> TickBatch:
    n = len(tokens)
    nan = np.full(n, np.nan)
    return TickBatch.from_columns(
        instrument_token=np.array(tokens, np.uint32),
        received_ns=np.array(received, np.int64), last_price=np.array(price, np.float64),
        bid_price=nan if bid is None else np.array(bid, np.float64),
        ask_price=nan if ask is None else np.array(ask, np.float64))


@pytest.fixture
def run():
    clock = Clock()
    metrics = EngineMetrics(CollectorRegistry(), sink_kind="memory", outbox_capacity=8,
                            max_batch_size=100, clock=clock)
    sink = MemorySink()
    engine = Engine(small_registry(), sink, Settings(sink="memory", outbox_capacity=8,
                                                     tick_batch_max_size=100),
                    metrics=metrics, clock=clock)
    yield engine, metrics, clock, sink
    engine.close()


def value(metrics: EngineMetrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, labels)
    assert v is not None, (name, labels)
    return v


def test_counts_after_known_windows(run) -> None:
    engine, m, clock, sink = run
    # window 1 [T0, T0+100ms): index, future, stock, call with depth, put, unknown,
    # a negative index price (quarantined), a NaN call price (quarantined)
    engine.ingest(ticks([NIFTY, FUT, STOCK, CE, PE, 999, NIFTY, CE],
                        [T0 + 1 * MS, T0 + 2 * MS, T0 + 3 * MS, T0 + 4 * MS, T0 + 5 * MS,
                         T0 + 6 * MS, T0 + 7 * MS, T0 + 8 * MS],
                        [24000, 24100, 1500, 150, 140, 1, -1, np.nan],
                        bid=[np.nan, np.nan, np.nan, 149, np.nan, np.nan, np.nan, 1],
                        ask=[np.nan, np.nan, np.nan, 151, np.nan, np.nan, np.nan, np.nan]))
    clock.now = T0 + 150 * MS  # computed at 150 ms: latencies 149..142 ms
    assert engine.poll(clock.now) == 1
    # window 2: two futures ticks, computed 10 ms after they arrived
    engine.ingest(ticks([FUT, FUT], [T0 + 150 * MS, T0 + 160 * MS], [24110, 24120]))
    clock.now = T0 + 210 * MS
    assert engine.poll(clock.now) == 1
    engine.reject(3, "test")  # malformed dicts at the edge
    engine.frame_rejected()
    summary = engine.close()
    assert summary["windows_published"] == 2

    def processed(t: str, s: str) -> float:
        return value(m, "ticks_processed_total", tick_type=t, status=s)

    assert [processed(t, "ok") for t in TICK_TYPES] == [1, 1, 3, 2, 0]
    assert [processed(t, "quarantined") for t in TICK_TYPES] == [1, 0, 0, 1, 1]
    assert processed("unknown", "rejected") == 3
    assert value(m, "vectorticks_quarantined_ticks_total") == 3
    assert value(m, "vectorticks_validation_rejects_total", reason="unknown_instrument") == 1
    assert value(m, "vectorticks_validation_rejects_total", reason="non_positive_price") == 1
    assert value(m, "vectorticks_validation_rejects_total", reason="non_finite_price") == 1
    assert sum(value(m, "vectorticks_validation_rejects_total", reason=r)
               for r in REASON_LABELS) == 3
    errors = {e: value(m, "tick_processing_errors_total", error_type=e) for e in ERROR_TYPES}
    assert errors == {"validation": 3, "input_rejected": 3, "window_rejected": 0,
                      "frame_decode": 1, "publish": 0, "outbox_drop": 0}
    assert value(m, "vectorticks_frame_decode_errors_total") == 1
    assert value(m, "vectorticks_depth_updates_total") == 1  # the valid call with a book

    # per-tick latency: window 1 at 142..149 ms (8 ticks), window 2 at 50 and 60 ms
    def bucket(t: str, le: str) -> float:
        return value(m, "tick_processing_latency_seconds_bucket", tick_type=t, le=le)

    assert bucket("index", "0.125") == 0 and bucket("index", "0.15") == 2
    assert bucket("future", "0.05") == 1 and bucket("future", "0.075") == 2
    assert bucket("future", "0.15") == 3
    assert value(m, "tick_processing_latency_seconds_count", tick_type="option") == 3
    assert value(m, "tick_processing_latency_seconds_sum", tick_type="future") == \
        pytest.approx(0.148 + 0.060 + 0.050)
    # end to end: acknowledged at the clock of the sender (unchanged after the poll)
    assert value(m, "vectorticks_end_to_end_latency_seconds_count") == 10
    assert value(m, "vectorticks_windows_published_total") == 2
    assert value(m, "vectorticks_last_published_window_seq") == 2
    assert value(m, "vectorticks_last_published_window_timestamp_seconds") == \
        pytest.approx((T0 + 200 * MS) / 1e9)
    assert value(m, "tick_batch_size_count", batch_type="ticks") == 2
    assert value(m, "tick_batch_size_sum", batch_type="ticks") == 10
    assert value(m, "tick_batch_size_sum", batch_type="bars") == 3 + 1
    assert value(m, "tick_batch_size_sum", batch_type="options") == 2
    assert value(m, "tick_batch_size_sum", batch_type="quarantine") == 3
    assert value(m, "vectorticks_window_fill_ratio_sum") == pytest.approx(0.10)
    assert value(m, "vectorticks_payload_bytes_sum") == sum(len(p) for _, _, p in sink.items)
    assert value(m, "tick_batch_flush_latency_seconds_count", batch_type="memory") == 2
    assert value(m, "vectorticks_window_compute_seconds_count") == 2
    assert value(m, "vectorticks_greeks_compute_seconds_count") == 2
    # both options priced: the call at its mid, the put at its last price
    assert sum(value(m, "vectorticks_greeks_computed_total", iv_status=s)
               for s in ("ok", "below_intrinsic", "above_maximum", "expired", "bad_input",
                         "no_convergence", "at_intrinsic")) == 2
    assert value(m, "vectorticks_outbox_capacity") == 8
    assert value(m, "vectorticks_outbox_depth") == 0
    assert value(m, "vectorticks_jit_warmup_seconds") > 0


def test_strict_rejection_and_outbox_drops_are_counted() -> None:
    clock = Clock()
    m = EngineMetrics(CollectorRegistry(), sink_kind="memory", clock=clock)
    sink = MemorySink()
    engine = Engine(small_registry(), sink,
                    Settings(sink="memory", tick_validation_strict=True), metrics=m, clock=clock)
    engine.ingest(ticks([NIFTY, FUT, FUT], [T0, T0 + MS, T0 + 2 * MS], [24000, -5, 24100]))
    engine.poll(T0 + 100 * MS)
    engine.close()
    assert value(m, "ticks_processed_total", tick_type="index", status="rejected") == 1
    assert value(m, "ticks_processed_total", tick_type="future", status="rejected") == 2
    assert value(m, "ticks_processed_total", tick_type="future", status="ok") == 0
    assert value(m, "vectorticks_windows_rejected_total") == 1
    assert value(m, "tick_processing_errors_total", error_type="window_rejected") == 3
    assert value(m, "vectorticks_windows_published_total") == 0
    assert sink.items == []


def test_publish_errors_retries_and_drops(run) -> None:
    engine, m, _, sink = run
    sink.fail_next(2)
    engine.ingest(ticks([FUT], [T0], [24000]))
    engine.poll(T0 + 100 * MS)
    engine.close()
    assert value(m, "vectorticks_publish_errors_total", sink="memory") == 2
    assert value(m, "vectorticks_publish_retries_total", sink="memory") == 2
    assert value(m, "tick_processing_errors_total", error_type="publish") == 2
    assert value(m, "vectorticks_windows_published_total") == 1
    m.on_dropped(None, 7)
    assert value(m, "vectorticks_outbox_dropped_windows_total") == 1
    assert value(m, "vectorticks_outbox_dropped_ticks_total") == 7


def test_every_labelled_series_exists_from_the_start() -> None:
    m = EngineMetrics(CollectorRegistry())
    text = generate_latest(m.registry).decode()
    for t in TICK_TYPES:
        for s in ("ok", "quarantined", "rejected"):
            assert f'ticks_processed_total{{status="{s}",tick_type="{t}"}} 0.0' in text
    for r in REASON_LABELS:
        assert f'vectorticks_validation_rejects_total{{reason="{r}"}} 0.0' in text
    assert "vectorticks_build_info{" in text


def test_metric_names_match_the_documented_contract() -> None:
    doc = (__import__("pathlib").Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| (?:counter|gauge|histogram)", doc, re.M))
    families = {f.name + ("_total" if f.type == "counter" else "")
                for f in EngineMetrics(CollectorRegistry()).collect()}
    assert families == documented
    assert len(documented) >= 6 + 14


def test_serve_on_loopback_and_wsgi_app() -> None:
    m = EngineMetrics(CollectorRegistry())
    server, _ = serve(m.registry, port=0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert "vectorticks_outbox_capacity 1024.0" in body
    finally:
        server.shutdown()
        server.server_close()
    app = wsgi_app(m.registry)
    status: list[str] = []
    chunks = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
                 lambda s, h: status.append(s))
    assert status == ["200 OK"] and b"ticks_processed_total" in b"".join(chunks)

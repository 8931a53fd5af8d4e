"""Engine: accounting, sequence numbers, outbox overflow, retries, close, asyncio facade."""

import asyncio
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from vectorticks import payload
from vectorticks.columns import MISSING_INT
from vectorticks.config import Settings
from vectorticks.engine import Engine, Outbox, Outgoing, TickProcessor
from vectorticks.errors import SchemaError, SinkError
from vectorticks.kite import ticks_from_dicts
from vectorticks.sinks import MemorySink
from vectorticks.sources import SyntheticMarket

MS = 1_000_000


@pytest.fixture(scope="module")
def market_batches():
    market = SyntheticMarket(300, rate=20_000, seed=3)
    batches = [market.next_batch(market.now_ns + 10 * MS) for _ in range(100)]  # 1 s
    return market.registry, batches


def run_engine(registry, batches, sink, **settings):
    engine = Engine(registry, sink, Settings(sink="memory", **settings))
    for b in batches:
        engine.ingest(b)
        if len(b):
            engine.poll(int(b.received_ns[-1]))
    return engine, engine.close(timeout=5)


def decoded(sink):
    return [payload.decode(p) for _, _, p in sink.items]


def test_every_tick_in_exactly_one_window_with_gapless_seq(market_batches):
    registry, batches = market_batches
    sink = MemorySink()
    _, summary = run_engine(registry, batches, sink)
    windows = decoded(sink)
    ticks_in = sum(len(b) for b in batches)
    assert summary["ticks_in"] == summary["ticks_published"] == ticks_in
    assert summary["ticks_dropped"] == 0 and summary["ticks_pending"] == 0
    assert [w.seq for w in windows] == list(range(1, len(windows) + 1))
    assert len(windows) == 10                             # 1 s of 100 ms windows
    counted = sum(int(w.bars.tick_count.sum() + w.options.tick_count.sum()) +
                  len(w.quarantine) for w in windows)
    assert counted == sum(w.ticks_in for w in windows) == ticks_in
    # the received times of each window lie inside its bounds
    assert all(w.bars.first_received_ns.min() >= w.start_ns for w in windows if len(w.bars))
    assert all(w.options.last_received_ns.max() < w.end_ns for w in windows if len(w.options))


def test_close_publishes_the_partial_window(market_batches):
    registry, batches = market_batches
    sink = MemorySink()
    engine = Engine(registry, sink, Settings(sink="memory"))
    engine.ingest(batches[0])                             # 10 ms: no window is due yet
    assert engine.poll(int(batches[0].received_ns[-1])) == 0
    summary = engine.close()
    (window,) = decoded(sink)
    assert window.ticks_in == len(batches[0]) == summary["ticks_published"]
    assert window.end_ns == int(batches[0].received_ns.max()) + 1


def test_size_cut_windows(market_batches):
    registry, batches = market_batches
    sink = MemorySink()
    _, summary = run_engine(registry, batches[:20], sink, tick_batch_max_size=500)
    windows = decoded(sink)
    assert max(w.ticks_in for w in windows) == 500
    assert summary["ticks_published"] == sum(len(b) for b in batches[:20])


def test_batching_disabled_publishes_every_ingest(market_batches):
    registry, batches = market_batches
    sink = MemorySink()
    engine = Engine(registry, sink, Settings(sink="memory"), batching=False)
    for b in batches[:5]:
        engine.ingest(b)
    engine.close()
    assert [w.ticks_in for w in decoded(sink)] == [len(b) for b in batches[:5]]


def test_resumes_sequence_after_what_the_sink_holds(market_batches):
    registry, batches = market_batches
    sink = MemorySink()
    run_engine(registry, batches[:30], sink)
    last = sink.last_seq()
    run_engine(registry, batches[30:60], sink)
    seqs = [w.seq for w in decoded(sink)]
    assert last == 3 and seqs == list(range(1, len(seqs) + 1))


def test_retries_until_the_sink_accepts(market_batches):
    registry, batches = market_batches
    sink = MemorySink()
    sink.fail_next(3)
    _, summary = run_engine(registry, batches[:30], sink, retry_initial_s=0.001)
    assert summary["send_errors"] == 3
    assert summary["ticks_published"] == sum(len(b) for b in batches[:30])
    assert [w.seq for w in decoded(sink)] == [1, 2, 3]


class GatedSink(MemorySink):
    """Blocks every write until the gate opens (to fill the outbox)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()

    def write(self, seq, end_ns, data):
        self.gate.wait()
        super().write(seq, end_ns, data)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_outbox_overflow_drops_and_counts(market_batches, policy):
    registry, batches = market_batches
    sink = GatedSink()
    engine = Engine(registry, sink, Settings(sink="memory", outbox_capacity=2,
                                             outbox_overflow=policy))
    for b in batches:                                     # 10 windows, the sender is stuck
        engine.ingest(b)
        engine.poll(int(b.received_ns[-1]))
    sink.gate.set()
    deadline = time.monotonic() + 30
    while engine.summary()["outbox_depth"] and time.monotonic() < deadline:
        time.sleep(0.01)  # drained before close() flushes window 10 (no race over room)
    summary = engine.close()
    seqs = [w.seq for w in decoded(sink)]
    assert summary["windows_dropped"] == 10 - len(seqs) > 0
    assert summary["ticks_in"] == summary["ticks_published"] + summary["ticks_dropped"]
    assert seqs[0] == 1                                   # already in flight when it filled
    if policy == "drop_oldest":
        assert 2 not in seqs and seqs[-3:] == [8, 9, 10]  # the freshest windows survive
    else:
        assert seqs[:3] == [1, 2, 3] and 4 not in seqs    # the first queued ones survive


def test_close_gives_up_after_timeout_and_counts_undelivered(market_batches):
    registry, batches = market_batches

    class DeadSink(MemorySink):
        def write(self, seq, end_ns, data):
            raise SinkError("down")

    engine = Engine(registry, DeadSink(), Settings(sink="memory", retry_initial_s=0.01))
    for b in batches[:25]:
        engine.ingest(b)
    summary = engine.close(timeout=0.2)
    assert summary["windows_published"] == 0
    assert summary["ticks_dropped"] == summary["ticks_in"] == sum(len(b) for b in batches[:25])
    assert summary["send_errors"] >= 1


def test_outbox_policies_directly():
    item = [Outgoing(i, 0, b"", 1) for i in range(4)]
    box = Outbox(2, "drop_oldest")
    assert box.put(item[0]) is None and box.put(item[1]) is None
    assert box.put(item[2]) is item[0]
    box = Outbox(2, "drop_newest")
    box.put(item[0]), box.put(item[1])
    assert box.put(item[2]) is item[2]
    box.close()
    assert [box.get().seq, box.get().seq, box.get()] == [0, 1, None]


def test_ticks_from_dicts_both_key_generations():
    when = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    new = {"instrument_token": 256265, "last_price": 24000.5, "volume_traded": 10,
           "last_traded_quantity": 75, "average_traded_price": 23990.0,
           "total_buy_quantity": 1, "total_sell_quantity": 2, "oi": 30,
           "exchange_timestamp": when, "ohlc": {"close": 23900.0},
           "depth": {"buy": [{"price": 24000.0, "quantity": 150, "orders": 2}],
                     "sell": [{"price": 24001.0, "quantity": 75, "orders": 1}]}}
    old = {"instrument_token": 256265, "last_price": 24000.5, "volume": 10,
           "last_quantity": 75, "average_price": 23990.0, "buy_quantity": 1,
           "sell_quantity": 2, "oi": 30, "timestamp": when.timestamp(),
           "ohlc": {"close": 23900.0},
           "depth": {"buy": [{"price": 24000.0, "quantity": 150}],
                     "sell": [{"price": 24001.0, "quantity": 75}]}}
    ltp_only = {"instrument_token": 408065, "last_price": 1500.0}
    b = ticks_from_dicts([new, old, ltp_only], received_ns=123)
    for name, col in b:
        if name != "instrument_token":
            assert col[0] == col[1] or (np.isnan(col[0]) and np.isnan(col[1])), name
    assert b.exchange_ts[0] == when.timestamp() * 1e9
    assert (b.bid_price[0], b.bid_quantity[0], b.ask_price[0]) == (24000.0, 150, 24001.0)
    assert b.prev_close[0] == 23900.0 and b.volume_traded[1] == 10
    assert b.received_ns.tolist() == [123, 123, 123]
    assert b.volume_traded[2] == MISSING_INT and np.isnan(b.bid_price[2])


@pytest.mark.parametrize("bad", [
    {"last_price": 1.0},                                   # no token
    {"instrument_token": 1, "last_price": "12.5"},         # string price
    {"instrument_token": 1, "volume_traded": 2**70},       # overflows int64
    {"instrument_token": -5},                              # negative token
])
def test_ticks_from_dicts_rejects_wrong_types(bad):
    with pytest.raises(SchemaError):
        ticks_from_dicts([{"instrument_token": 256265, "last_price": 1.0}, bad], 0)


def test_tick_processor_asyncio_facade(market_batches):
    registry, _ = market_batches
    tokens = registry.token[:50]
    sink = MemorySink()
    engine = Engine(registry, sink, Settings(sink="memory", tick_batch_window_ms=20))

    async def main():
        proc = TickProcessor(engine)
        await proc.start()
        sent = 0
        for i in range(10):
            ticks = [{"instrument_token": int(t), "last_price": 100.0 + i, "volume": i}
                     for t in tokens]
            sent += await proc.process_ticks(ticks)
            await asyncio.sleep(0.01)
        rejected = await proc.process_ticks([{"instrument_token": "x"}])
        summary = await proc.stop()
        return sent, rejected, summary

    sent, rejected, summary = asyncio.run(main())
    assert sent == 500 and rejected == 0
    assert summary["ticks_published"] == 500 and summary["ticks_rejected"] == 1
    assert summary["ticks_in"] == 501
    assert sum(w.ticks_in for w in decoded(sink)) == 500
    assert len(decoded(sink)) >= 2                       # flushed periodically, not only at stop

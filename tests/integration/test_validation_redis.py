"""Validation in the engine against a real redis-server: every tick that enters is in a
bar/snapshot, in its window's quarantine, or in the count of strictly rejected windows;
and bad ticks change no bar and no Greek of the good ones."""

import numpy as np
import pandas as pd
import pytest

from vectorticks import payload
from vectorticks.chain import GreeksParams
from vectorticks.columns import MISSING_INT, TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.config import Settings
from vectorticks.engine import Engine
from vectorticks.masks import Limits, Reason, tick_reasons
from vectorticks.sinks import make_sink, redis_client
from vectorticks.sources import SyntheticMarket

MS = 1_000_000


def corrupt(batch: TickBatch, rng: np.random.Generator, share: float = 0.05) -> TickBatch:
    """A copy of ``batch`` with about ``share`` of its ticks broken in assorted ways, plus
    exact duplicates and unknown tokens appended."""
    cols = {name: col.copy() for name, col in batch}
    n = len(batch)
    bad = np.flatnonzero(rng.random(n) < share)
    kinds = rng.integers(0, 6, len(bad))
    cols["last_price"][bad[kinds == 0]] = np.nan
    cols["last_price"][bad[kinds == 1]] = -5.0
    cols["last_traded_quantity"][bad[kinds == 2]] = -1
    cols["oi"][bad[kinds == 3]] = -100
    crossed = bad[kinds == 4]
    cols["bid_price"][crossed] = cols["ask_price"][crossed] + 10.0
    cols["ask_quantity"][crossed] = 1
    cols["exchange_ts"][bad[kinds == 5]] = cols["received_ns"][bad[kinds == 5]] + 3_600 * 10**9
    broken = TickBatch(**cols)
    dup_idx = rng.choice(n, size=max(1, n // 100), replace=False)
    dups = broken.take(np.sort(dup_idx))
    dups = TickBatch(**{**dups.as_table(), "received_ns": dups.received_ns + 1})
    unknown = TickBatch.from_columns(instrument_token=np.full(3, 7), last_price=1.0,
                                     received_ns=np.full(3, int(batch.received_ns[-1])))
    merged = TickBatch.concat([broken, dups, unknown])
    order = np.argsort(merged.received_ns, kind="stable")
    return merged.take(order)


@pytest.fixture(scope="module")
def dirty_market():
    m = SyntheticMarket(500, rate=30_000, seed=21)
    rng = np.random.default_rng(5)
    batches = [corrupt(m.next_batch(m.now_ns + 10 * MS), rng) for _ in range(45)]
    return m.registry, batches


def run(registry, batches, url, **settings):
    s = Settings(sink="stream", redis_url=url, **settings)
    engine = Engine(registry, make_sink("stream", redis_url=url), s)
    for b in batches:
        engine.ingest(b)
        engine.poll(int(b.received_ns[-1]))
    summary = engine.close(timeout=10)
    windows = [payload.decode(f[b"payload"]) for _, f in redis_client(url).xrange("vt:windows")]
    return summary, windows


@pytest.mark.redis
def test_every_tick_is_in_a_bar_a_snapshot_or_the_quarantine(redis_url, dirty_market):
    registry, batches = dirty_market
    ticks_in = sum(len(b) for b in batches)
    summary, windows = run(registry, batches, redis_url)
    in_tables = sum(int(w.bars.tick_count.sum() + w.options.tick_count.sum()) for w in windows)
    quarantined = sum(len(w.quarantine) for w in windows)
    assert in_tables + quarantined == ticks_in == summary["ticks_in"]
    assert quarantined == summary["ticks_quarantined"] > ticks_in * 0.04
    assert [w.seq for w in windows] == list(range(1, len(windows) + 1))
    reasons = np.bitwise_or.reduce(np.concatenate([w.quarantine.reason.to_numpy()
                                                   for w in windows]))
    for r in (Reason.UNKNOWN_INSTRUMENT, Reason.NON_FINITE_PRICE, Reason.NON_POSITIVE_PRICE,
              Reason.BAD_QUANTITY, Reason.BAD_OI, Reason.CROSSED_BOOK,
              Reason.EXCHANGE_TS_FUTURE, Reason.DUPLICATE):
        assert reasons & r, r.name
    by_reason = summary["quarantined_by_reason"]
    assert by_reason["DUPLICATE"] > 0 and by_reason["UNKNOWN_INSTRUMENT"] == 3 * len(batches)
    # the published bars and snapshots hold only valid values
    for w in windows:
        assert (w.bars.low > 0).all() and np.isfinite(w.bars.close).all()
        quoted = w.options.bid_price.notna() & w.options.ask_price.notna()
        assert (w.options.bid_price[quoted] <= w.options.ask_price[quoted]).all()


@pytest.mark.redis
def test_strict_mode_rejects_whole_windows_and_counts_them(redis_url, dirty_market):
    registry, batches = dirty_market
    ticks_in = sum(len(b) for b in batches)
    clean_tail = SyntheticMarket(500, rate=30_000, seed=22, start_ns=int(
        batches[-1].received_ns[-1]) + 200 * MS)
    # The synthetic indices tick faster than Kite's ~1/s, so a level can repeat within one
    # exchange second (a DUPLICATE); clean data is what the rules accept.
    reg = clean_tail.registry
    carry = Carry.initial(len(reg))
    ticks = clean_tail.next_batch(clean_tail.now_ns + 200 * MS)
    cell = ticks.received_ns // (100 * MS)                     # the engine's windows
    clean = []
    for c in np.unique(cell):
        b = ticks.take(cell == c)
        ok = tick_reasons(b, reg.rows_of(b.instrument_token), reg.kind, carry.last_price,
                          carry.volume_traded, carry.volume_day) == 0
        clean.append(b.take(ok))
    summary, windows = run(registry, batches + clean, redis_url, tick_validation_strict=True)
    ticks_in += sum(len(b) for b in clean)
    assert summary["windows_rejected"] >= 4                   # every dirty window
    assert all(len(w.quarantine) == 0 for w in windows)       # only clean ones published
    published = sum(w.ticks_in for w in windows)
    assert published == summary["ticks_published"] > 0
    assert published + summary["ticks_in_rejected_windows"] == ticks_in
    assert [w.seq for w in windows] == list(range(1, len(windows) + 1))  # no gap for them


def test_a_burst_of_bad_ticks_changes_no_bar_and_no_greek():
    m = SyntheticMarket(800, rate=40_000, seed=8)
    registry = m.registry
    carry = Carry.initial(len(registry))
    for _ in range(5):                                        # warm carry: futures known
        b = m.next_batch(m.now_ns + 100 * MS)
        _, carry = compute_window(b, registry, carry, seq=1, start_ns=0, end_ns=m.now_ns)
    good = m.next_batch(m.now_ns + 100 * MS)
    end = m.now_ns
    repeats = corrupt(good, np.random.default_rng(1), share=0.0)  # duplicates + unknown
    bad = TickBatch.from_columns(
        instrument_token=np.resize(good.instrument_token, 2000),
        received_ns=np.full(2000, end - 1),
        last_price=np.resize([np.nan, np.inf, -1.0, 1e12], 2000),
        volume_traded=np.resize([-5, MISSING_INT], 2000))
    dirty = TickBatch.concat([good, repeats, bad])
    kwargs = dict(seq=1, start_ns=0, end_ns=end, greeks=GreeksParams(), validation=Limits())
    clean_result, clean_carry = compute_window(good, registry, carry, **kwargs)
    dirty_result, dirty_carry = compute_window(dirty, registry, carry, **kwargs)
    assert len(dirty_result.quarantine["reason"]) >= 2000
    pd.testing.assert_frame_equal(pd.DataFrame(clean_result.bars),
                                  pd.DataFrame(dirty_result.bars))
    pd.testing.assert_frame_equal(pd.DataFrame(clean_result.options),
                                  pd.DataFrame(dirty_result.options))
    np.testing.assert_array_equal(clean_carry.last_price, dirty_carry.last_price)
    np.testing.assert_array_equal(clean_carry.volume_traded, dirty_carry.volume_traded)

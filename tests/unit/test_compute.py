"""compute_window against a pandas reference, volume carry-over, snapshots, quarantine."""

import numpy as np
import pandas as pd
import pytest
from small_registry import CE, FUT, NIFTY, PE, STOCK, small_registry

from vectorticks.columns import MISSING_INT, TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.masks import Limits, Reason, tick_reasons
from vectorticks.sources import SyntheticMarket


@pytest.fixture(scope="module")
def registry():
    return small_registry()


def run(registry, batch, carry=None, seq=1):
    carry = carry or Carry.initial(len(registry))
    return compute_window(batch, registry, carry, seq=seq, start_ns=0, end_ns=100)


def test_bars_match_pandas_groupby_on_random_data(registry):
    rng = np.random.default_rng(7)
    n = 5000
    tokens = rng.choice([NIFTY, FUT, STOCK, CE, PE, 999], n)
    price = rng.uniform(90, 110, n)
    price[rng.random(n) < 0.05] = np.nan          # missing prices are skipped
    batch = TickBatch.from_columns(instrument_token=tokens, received_ns=np.arange(n) * 10,
                                   last_price=price, oi=rng.integers(0, 1000, n))
    result, _ = run(registry, batch)

    df = batch.to_pandas()
    df = df[df.instrument_token.isin([NIFTY, FUT, STOCK])]
    g = df.groupby("instrument_token", sort=True)
    priced = df.dropna(subset=["last_price"]).groupby("instrument_token", sort=True)
    bars = pd.DataFrame(result.bars).set_index("instrument_token")
    assert bars.index.tolist() == sorted([NIFTY, FUT, STOCK])
    np.testing.assert_array_equal(bars.open, priced.last_price.first())
    np.testing.assert_array_equal(bars.close, priced.last_price.last())
    np.testing.assert_array_equal(bars.high, priced.last_price.max())
    np.testing.assert_array_equal(bars.low, priced.last_price.min())
    np.testing.assert_array_equal(bars.tick_count, g.size())
    np.testing.assert_array_equal(bars.oi, g.oi.last())
    np.testing.assert_array_equal(bars.first_received_ns, g.received_ns.min())
    np.testing.assert_array_equal(bars.last_received_ns, g.received_ns.max())
    # every tick is in a bar, a snapshot or the quarantine
    assert result.ticks_in == n
    assert result.ticks_published + len(result.quarantine["instrument_token"]) == n


def vol_batch(tokens, cum, start=0):
    return TickBatch.from_columns(instrument_token=tokens, received_ns=np.arange(len(tokens)) +
                                  start, last_price=100.0, volume_traded=cum)


def test_volume_from_cumulative_with_carry_gaps_and_day_reset(registry):
    r1, carry = run(registry, vol_batch([FUT, FUT, FUT], [1000, 1010, 1025]))
    assert r1.bars["volume"].tolist() == [25]      # first tick is the baseline
    assert r1.bars["volume_traded"].tolist() == [1025]
    # next window: carried baseline 1025; ticks in between were missed (a gap) → still exact
    r2, carry = run(registry, vol_batch([FUT, FUT], [1100, 1150]), carry)
    assert r2.bars["volume"].tolist() == [125]
    # a window without this instrument leaves its carry alone
    _, carry = run(registry, vol_batch([STOCK], [5]), carry)
    r3, carry = run(registry, vol_batch([FUT], [1160]), carry)
    assert r3.bars["volume"].tolist() == [10]
    # day reset: the counter restarts from zero, so the new value is the day's volume so far
    r4, carry = run(registry, vol_batch([FUT, FUT], [40, 55]), carry)
    assert r4.bars["volume"].tolist() == [55]
    # missing cumulative volume neither adds volume nor breaks the baseline
    r5, _ = run(registry, vol_batch([FUT, FUT], [MISSING_INT, 60]), carry)
    assert r5.bars["volume"].tolist() == [5]
    assert r5.bars["volume_traded"].tolist() == [60]


def test_carry_is_not_modified_in_place(registry):
    carry = Carry.initial(len(registry))
    _, new = run(registry, vol_batch([FUT], [7]), carry)
    assert (carry.volume_traded == MISSING_INT).all()
    assert new.volume_traded[registry.rows_of(np.array([FUT]))[0]] == 7


def test_option_snapshot_takes_latest_present_values(registry):
    nan = np.nan
    batch = TickBatch.from_columns(
        instrument_token=[CE, PE, CE, CE],
        received_ns=[1, 2, 3, 4],
        last_price=[100.0, 80.0, 101.0, nan],
        bid_price=[99.5, 79.5, nan, 100.0],
        bid_quantity=[75, 150, MISSING_INT, 300],
        ask_price=[100.5, nan, 101.5, nan],
        ask_quantity=[75, MISSING_INT, 225, MISSING_INT],
        oi=[5000, 6000, 5100, MISSING_INT],
        volume_traded=[10, 20, 25, 30],
    )
    result, _ = run(registry, batch)
    opt = pd.DataFrame(result.options).set_index("instrument_token")
    ce, pe = opt.loc[CE], opt.loc[PE]
    assert (ce.last_price, ce.bid_price, ce.bid_quantity) == (101.0, 100.0, 300)
    assert (ce.ask_price, ce.ask_quantity, ce.mid_price) == (101.5, 225, 100.75)
    assert (ce.oi, ce.volume_traded, ce.volume, ce.tick_count) == (5100, 30, 20, 3)
    assert ce.is_call and not pe.is_call
    assert (ce.strike, ce.underlying_token, ce.future_token) == (24000.0, NIFTY, FUT)
    assert ce.expiry_ns == pd.Timestamp("2026-12-01 15:30", tz="Asia/Kolkata").value
    assert np.isnan(pe.mid_price)                  # one-sided quote has no mid
    assert np.isnan(opt.iv).all()                  # filled by the Greeks stage
    assert ce.last_received_ns == 4


def test_unknown_tokens_are_quarantined_with_reason(registry):
    batch = TickBatch.from_columns(instrument_token=[NIFTY, 42, 43], received_ns=[1, 2, 3],
                                   last_price=[1.0, 2.0, 3.0])
    result, _ = run(registry, batch)
    q = result.quarantine
    assert q["instrument_token"].tolist() == [42, 43]
    assert q["reason"].tolist() == [Reason.UNKNOWN_INSTRUMENT] * 2
    assert q["last_price"].tolist() == [2.0, 3.0]
    assert result.bars["instrument_token"].tolist() == [NIFTY]


def test_empty_window(registry):
    result, _carry = run(registry, TickBatch.empty())
    assert result.ticks_in == 0 and len(result.bars["open"]) == 0
    assert len(result.options["iv"]) == 0


def validated(registry, batch, carry):
    return compute_window(batch, registry, carry, seq=1, start_ns=0, end_ns=100,
                          validation=Limits())


def test_a_volume_decrease_is_quarantined_and_not_counted(registry):
    _, carry = validated(registry, vol_batch([FUT], [1000]), Carry.initial(len(registry)))
    batch = vol_batch([FUT, FUT, FUT, FUT, FUT, STOCK], [990, 1005, 1001, MISSING_INT, 1010, 3],
                      start=10)
    result, new_carry = validated(registry, batch, carry)
    q = result.quarantine
    assert q["received_ns"].tolist() == [10, 12]                  # 990 < 1000, 1001 < 1005
    assert q["reason"].tolist() == [Reason.VOLUME_DECREASE] * 2
    bar = pd.DataFrame(result.bars).set_index("instrument_token").loc[FUT]
    assert (bar.volume, bar.volume_traded, bar.tick_count) == (10, 1010, 3)
    assert (bar.first_received_ns, bar.last_received_ns) == (11, 14)
    assert result.ticks_published + len(q["reason"]) == result.ticks_in == 6
    assert new_carry.volume_traded[registry.rows_of(np.array([FUT]))[0]] == 1010


def test_an_instrument_whose_every_tick_decreases_gets_no_bar(registry):
    _, carry = validated(registry, vol_batch([FUT, STOCK], [1000, 50]),
                         Carry.initial(len(registry)))
    result, new_carry = validated(registry, vol_batch([STOCK, FUT, FUT, STOCK], [40, 900, 950, 60],
                                                      start=10), carry)
    assert result.bars["instrument_token"].tolist() == [STOCK]
    assert result.bars["tick_count"].tolist() == [1] and result.bars["volume"].tolist() == [10]
    assert result.quarantine["received_ns"].tolist() == [10, 11, 12]
    assert new_carry.volume_traded[registry.rows_of(np.array([FUT]))[0]] == 1000  # kept


def test_window_reasons_equal_tick_reasons_with_volume_decreases_and_days():
    # compute_window judges VOLUME_DECREASE in its per-instrument pass; tick_reasons in
    # arrival order: the two must agree tick for tick.
    market = SyntheticMarket(300, rate=20_000, seed=2)
    reg = market.registry
    rng = np.random.default_rng(0)
    carry = Carry.initial(len(reg))
    decreases = 0
    for trial in range(40):
        cols = {name: col.copy() for name, col in market.next_batch(market.now_ns + 50 * 10**6)}
        n = len(cols["volume_traded"])
        volume = cols["volume_traded"]
        hit = rng.integers(0, n, n // 10)
        volume[hit] = np.where(volume[hit] != MISSING_INT,
                               volume[hit] - rng.integers(0, 3000, len(hit)), MISSING_INT)
        volume[rng.integers(0, n, n // 30)] = MISSING_INT
        if trial % 3 == 0:  # the rest of the window is on the next IST day
            cut = rng.integers(0, n)
            cols["exchange_ts"][cut:] += 86_400 * 10**9
            cols["received_ns"][cut:] += 86_400 * 10**9
        cols["instrument_token"][rng.integers(0, n, 2)] = 7  # unknown
        batch = TickBatch.from_columns(**cols)
        expected = tick_reasons(batch, reg.rows_of(batch.instrument_token), reg.kind,
                                carry.last_price, carry.volume_traded, carry.volume_day)
        result, carry = validated(reg, batch, carry)
        np.testing.assert_array_equal(result.tick_reasons, expected)
        assert result.ticks_published + len(result.quarantine["reason"]) == n
        decreases += int((expected & Reason.VOLUME_DECREASE).astype(bool).sum())
    assert decreases > 1000

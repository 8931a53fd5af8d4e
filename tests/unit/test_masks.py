"""tick_reasons: every rule on both sides of its bound, rules combined, reason counts, and a
large window cut into parts on several cores."""

import numpy as np
import pytest
from small_registry import CE, FUT, NIFTY, PE, STOCK, small_registry

import vectorticks.masks as masks
from vectorticks.columns import MISSING_INT, TickBatch
from vectorticks.errors import ConfigError
from vectorticks.masks import (
    IST_OFFSET_NS,
    NS_PER_DAY,
    Limits,
    Reason,
    describe,
    ist_day,
    reason_counts,
    tick_reasons,
)
from vectorticks.sources import SyntheticMarket

UNKNOWN = 999
S = 1_000_000_000
T0 = 1_795_000_000 * S  # 2026-11-18 ~04:03 UTC, within an IST trading day
DAY = ist_day(np.array([T0]), np.array([T0]))[0]


@pytest.fixture(scope="module")
def registry():
    return small_registry()


def reasons(registry, limits=None, carry_price=None, carry_volume=None, carry_day=None,
            **columns):
    """tick_reasons of ticks given as columns (received_ns defaults to T0 + i ns, the
    exchange timestamp to T0, every other column to a valid value)."""
    n = len(np.atleast_1d(columns["instrument_token"]))
    defaults = dict(received_ns=T0 + np.arange(n), exchange_ts=T0, last_price=100.0,
                    last_traded_quantity=75, volume_traded=1000 + np.arange(n),
                    total_buy_quantity=10, total_sell_quantity=10, oi=500,
                    bid_price=99.95, bid_quantity=75, ask_price=100.05, ask_quantity=75)
    batch = TickBatch.from_columns(**{**defaults, **columns})
    m = len(registry)
    return tick_reasons(
        batch, registry.rows_of(batch.instrument_token), registry.kind,
        np.full(m, np.nan) if carry_price is None else np.asarray(carry_price, float),
        np.full(m, MISSING_INT) if carry_volume is None else np.asarray(carry_volume),
        np.full(m, MISSING_INT) if carry_day is None else np.asarray(carry_day),
        limits or Limits())


def per_row(registry, fill, values):
    """A per-registry-row carry array: ``fill`` except ``{token: value}``."""
    a = np.full(len(registry), fill)
    for token, value in values.items():
        a[registry.rows_of(np.array([token]))[0]] = value
    return a


def test_bit_values_are_stable():
    assert Reason.UNKNOWN_INSTRUMENT == 1  # published before this module grew
    assert {r.name: int(r) for r in Reason} == {
        "UNKNOWN_INSTRUMENT": 1 << 0, "NON_FINITE_PRICE": 1 << 1,
        "NON_POSITIVE_PRICE": 1 << 2, "PRICE_ABOVE_MAX": 1 << 3, "PRICE_JUMP": 1 << 4,
        "BAD_QUANTITY": 1 << 5, "BAD_OI": 1 << 6, "VOLUME_DECREASE": 1 << 7,
        "EXCHANGE_TS_FUTURE": 1 << 8, "EXCHANGE_TS_STALE": 1 << 9, "DUPLICATE": 1 << 10,
        "CROSSED_BOOK": 1 << 11, "BAD_DEPTH": 1 << 12,
    }


def test_valid_ticks_have_no_reason(registry):
    tokens = [NIFTY, FUT, CE, PE, STOCK]
    got = reasons(registry, instrument_token=tokens)
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, 0)


def test_empty_batch(registry):
    got = reasons(registry, instrument_token=np.array([], np.uint32))
    assert got.dtype == np.uint32 and got.shape == (0,)


def test_unknown_instrument(registry):
    got = reasons(registry, instrument_token=[UNKNOWN, STOCK])
    np.testing.assert_array_equal(got, [Reason.UNKNOWN_INSTRUMENT, 0])


@pytest.mark.parametrize("price", [np.nan, np.inf, -np.inf])
def test_non_finite_price_gets_only_its_own_reason(registry, price):
    got = reasons(registry, instrument_token=[STOCK, STOCK], last_price=[price, 100.0])
    np.testing.assert_array_equal(got, [Reason.NON_FINITE_PRICE, 0])


def test_non_positive_price_depends_on_kind(registry):
    tokens = [NIFTY, FUT, STOCK, CE, PE, CE, STOCK]
    prices = [0.0, 0.0, -0.0, 0.0, 0.0, -0.05, 0.05]
    got = reasons(registry, instrument_token=tokens, last_price=prices,
                  bid_price=np.nan, ask_price=np.nan)
    bad = Reason.NON_POSITIVE_PRICE
    np.testing.assert_array_equal(got, [bad, bad, bad, 0, 0, bad, 0])


def test_price_above_max(registry):
    limits = Limits(max_price=1000.0)
    got = reasons(registry, limits, instrument_token=[STOCK] * 3,
                  last_price=[1000.0, np.nextafter(1000.0, 2000.0), 1e300],
                  bid_price=np.nan, ask_price=np.nan)
    np.testing.assert_array_equal(got, [0, Reason.PRICE_ABOVE_MAX, Reason.PRICE_ABOVE_MAX])


def test_price_jump_against_the_carried_price(registry):
    carry = per_row(registry, np.nan, {STOCK: 100.0, CE: 10.0})
    f, fo = 1.0 + Limits().max_move, 1.0 + Limits().max_move_option
    prices = [100.0 * f, np.nextafter(100.0 * f, np.inf), 100.0 / f,
              np.nextafter(100.0 / f, 0.0), 10.0 * fo, np.nextafter(10.0 * fo, np.inf),
              10.0 / fo, np.nextafter(10.0 / fo, 0.0)]
    tokens = [STOCK] * 4 + [CE] * 4
    got = reasons(registry, carry_price=carry, instrument_token=tokens, last_price=prices,
                  prev_close=1e6, bid_price=np.nan, ask_price=np.nan)  # prev_close unused
    j = Reason.PRICE_JUMP
    np.testing.assert_array_equal(got, [0, j, 0, j, 0, j, 0, j])


def test_price_jump_against_prev_close_when_no_carry(registry):
    limits = Limits()
    f = 1.0 + limits.max_move_prev_close
    fo = 1.0 + limits.max_move_option_prev_close
    carry = per_row(registry, np.nan, {STOCK: -5.0, FUT: np.inf})  # unusable carries
    tokens = [STOCK, STOCK, FUT, FUT, CE, CE, NIFTY, NIFTY]
    prices = [50.0 * f, np.nextafter(50.0 * f, np.inf), 50.0 / f,
              np.nextafter(50.0 / f, 0), 2.0 * fo, np.nextafter(2.0 * fo, np.inf),
              1e6, 1e6]
    prev = [50.0, 50.0, 50.0, 50.0, 2.0, 2.0, 0.0, np.nan]  # no reference: no band
    got = reasons(registry, carry_price=carry, instrument_token=tokens, last_price=prices,
                  prev_close=prev, bid_price=np.nan, ask_price=np.nan)
    j = Reason.PRICE_JUMP
    np.testing.assert_array_equal(got, [0, j, 0, j, 0, j, 0, 0])


def test_zero_option_price_is_not_a_jump(registry):
    carry = per_row(registry, np.nan, {CE: 10.0})
    got = reasons(registry, carry_price=carry, instrument_token=[CE], last_price=[0.0],
                  bid_price=np.nan, ask_price=np.nan)
    np.testing.assert_array_equal(got, [0])


def test_unknown_instruments_use_option_limits(registry):
    # 0 is allowed (as for options); prev_close band with the option factor.
    fo = 1.0 + Limits().max_move_option_prev_close
    got = reasons(registry, instrument_token=[UNKNOWN] * 3,
                  last_price=[0.0, 2.0 * fo, np.nextafter(2.0 * fo, np.inf)], prev_close=2.0,
                  bid_price=np.nan, ask_price=np.nan)
    u = Reason.UNKNOWN_INSTRUMENT
    np.testing.assert_array_equal(got, [u, u, u | Reason.PRICE_JUMP])


@pytest.mark.parametrize("column", ["last_traded_quantity", "volume_traded",
                                    "total_buy_quantity", "total_sell_quantity"])
def test_bad_quantity(registry, column):
    maxq = Limits().max_quantity
    values = [0, maxq, MISSING_INT, -1, maxq + 1, np.iinfo(np.int64).max]
    got = reasons(registry, instrument_token=[UNKNOWN] * len(values), **{column: values})
    bad = Reason.BAD_QUANTITY
    np.testing.assert_array_equal(got & ~np.uint32(Reason.UNKNOWN_INSTRUMENT),
                                  [0, 0, 0, bad, bad, bad])


def test_bad_oi(registry):
    maxq = Limits().max_quantity
    values = [0, maxq, MISSING_INT, -1, maxq + 1, MISSING_INT + 1]
    got = reasons(registry, instrument_token=[FUT] * len(values), oi=values,
                  volume_traded=1000)
    b = Reason.BAD_OI
    dup = Reason.DUPLICATE  # ticks 0..2 differ by oi only, so none is a duplicate
    assert not (got & dup).any()
    np.testing.assert_array_equal(got, [0, 0, 0, b, b, b])


QUANTITY_RULES = {"last_traded_quantity": Reason.BAD_QUANTITY,
                  "volume_traded": Reason.BAD_QUANTITY,
                  "total_buy_quantity": Reason.BAD_QUANTITY,
                  "total_sell_quantity": Reason.BAD_QUANTITY, "oi": Reason.BAD_OI,
                  "bid_quantity": Reason.BAD_DEPTH, "ask_quantity": Reason.BAD_DEPTH}


@pytest.mark.parametrize("max_quantity", [2**48, 1000])
@pytest.mark.parametrize("column", list(QUANTITY_RULES))
def test_quantity_bounds_of_a_known_instrument(registry, column, max_quantity):
    # The vectorized screen clears quantities up to the largest 2**k - 1 ≤ max_quantity;
    # the exact rules judge the rest (and every value of an unknown instrument).
    imax = np.iinfo(np.int64).max
    good = [0, 1, max_quantity - 1, max_quantity, MISSING_INT]
    bad = [-1, max_quantity + 1, MISSING_INT + 1, imax]
    values = good + bad
    n = len(values)
    got = reasons(registry, Limits(max_quantity=max_quantity), instrument_token=[FUT] * n,
                  **{"volume_traded": np.arange(n), column: values})
    want = [0] * len(good) + [QUANTITY_RULES[column]] * len(bad)
    np.testing.assert_array_equal(got, want)


def test_exchange_time_of_a_known_instrument(registry):
    limits = Limits()
    skew, lag = limits.max_ts_skew_ns, limits.max_ts_lag_ns
    imax, imin = np.iinfo(np.int64).max, MISSING_INT
    ex = [T0 + skew, T0 + skew + 1, T0 - lag, T0 - lag - 1, MISSING_INT, 5, -1, imin + 1, imax]
    recv = [T0] * 5 + [-1, 5, imax, imin + 1]  # times of opposite signs, extreme differences
    got = reasons(registry, instrument_token=[FUT] * len(ex), exchange_ts=ex, received_ns=recv,
                  volume_traded=np.arange(len(ex)))
    f, s = Reason.EXCHANGE_TS_FUTURE, Reason.EXCHANGE_TS_STALE
    np.testing.assert_array_equal(got, [0, f, 0, s, 0, 0, 0, s, f])


def test_volume_decrease_within_the_window(registry):
    got = reasons(registry, instrument_token=[FUT, FUT, FUT, FUT, STOCK],
                  volume_traded=[100, 150, 149, 151, 10])
    np.testing.assert_array_equal(got, [0, 0, Reason.VOLUME_DECREASE, 0, 0])


def test_volume_decrease_against_the_carry_of_the_same_day(registry):
    carry_volume = per_row(registry, MISSING_INT, {FUT: 500, STOCK: 500, CE: 500})
    carry_day = per_row(registry, MISSING_INT, {FUT: DAY, STOCK: DAY - 1})  # CE: no day
    got = reasons(registry, carry_volume=carry_volume, carry_day=carry_day,
                  instrument_token=[FUT, FUT, STOCK, CE], volume_traded=[499, 500, 1, 1])
    np.testing.assert_array_equal(got, [Reason.VOLUME_DECREASE, 0, 0, 0])


def test_volume_reset_on_a_new_ist_day(registry):
    # IST midnight is 18:30 UTC: the tick one second later is on the next trading day.
    midnight = (DAY + 1) * NS_PER_DAY - IST_OFFSET_NS
    ex = [midnight - S, midnight + 0, midnight + S]
    got = reasons(registry, instrument_token=[FUT] * 3, exchange_ts=ex,
                  received_ns=np.array(ex) + 1, volume_traded=[1000, 5, 3])
    np.testing.assert_array_equal(got, [0, 0, Reason.VOLUME_DECREASE])


def test_day_from_received_time_when_exchange_ts_is_missing(registry):
    midnight = (DAY + 1) * NS_PER_DAY - IST_OFFSET_NS
    got = reasons(registry, instrument_token=[FUT] * 3, exchange_ts=MISSING_INT,
                  received_ns=[midnight - 1, midnight, midnight + 1], volume_traded=[9, 1, 0])
    np.testing.assert_array_equal(got, [0, 0, Reason.VOLUME_DECREASE])


def test_only_valid_ticks_are_the_previous_tick(registry):
    # The 2nd tick is invalid (negative OI): the 3rd compares with the 1st, not the 2nd.
    got = reasons(registry, instrument_token=[FUT] * 3, volume_traded=[100, 200, 150],
                  oi=[1, -1, 1])
    np.testing.assert_array_equal(got, [0, Reason.BAD_OI, 0])
    # A tick that decreased is not "previous valid" either.
    got = reasons(registry, instrument_token=[FUT] * 3, volume_traded=[100, 50, 60])
    np.testing.assert_array_equal(got, [0, Reason.VOLUME_DECREASE, Reason.VOLUME_DECREASE])
    # Volume is only judged on ticks that pass every other rule.
    got = reasons(registry, instrument_token=[FUT] * 2, volume_traded=[100, 50],
                  last_price=[100.0, np.nan])
    np.testing.assert_array_equal(got, [0, Reason.NON_FINITE_PRICE])


def test_missing_volume_is_skipped(registry):
    got = reasons(registry, instrument_token=[FUT] * 3,
                  volume_traded=[100, MISSING_INT, 99], last_traded_quantity=[1, 2, 3])
    np.testing.assert_array_equal(got, [0, 0, Reason.VOLUME_DECREASE])


def test_exchange_timestamp_skew_and_lag(registry):
    limits = Limits()
    skew, lag = limits.max_ts_skew_ns, limits.max_ts_lag_ns
    ex = [T0 + skew, T0 + skew + 1, T0 - lag, T0 - lag - 1, MISSING_INT,
          np.iinfo(np.int64).max, MISSING_INT + 1]
    got = reasons(registry, instrument_token=[UNKNOWN] * len(ex), exchange_ts=ex,
                  received_ns=T0)
    got &= ~np.uint32(Reason.UNKNOWN_INSTRUMENT | Reason.DUPLICATE)
    f, s = Reason.EXCHANGE_TS_FUTURE, Reason.EXCHANGE_TS_STALE
    np.testing.assert_array_equal(got, [0, f, 0, s, 0, f, s])


def test_extreme_receive_times_do_not_wrap(registry):
    imax, imin = np.iinfo(np.int64).max, MISSING_INT
    got = reasons(registry, instrument_token=[UNKNOWN] * 2, exchange_ts=[imin + 1, imax],
                  received_ns=[imax, imin + 1])
    got &= ~np.uint32(Reason.UNKNOWN_INSTRUMENT)
    np.testing.assert_array_equal(got, [Reason.EXCHANGE_TS_STALE, Reason.EXCHANGE_TS_FUTURE])


def test_duplicates_keep_the_first(registry):
    tokens = [FUT, CE, FUT, FUT, CE, FUT]
    got = reasons(registry, instrument_token=tokens, received_ns=T0 + np.arange(6) * S // 10,
                  volume_traded=[10, 7, 10, 11, 7, 10], last_price=[100, 5, 100, 100, 5, 100])
    d = Reason.DUPLICATE
    np.testing.assert_array_equal(got, [0, 0, d, 0, d, d])


def test_duplicates_treat_nan_as_equal_and_any_difference_as_new(registry):
    nan_payload = np.array([0x7FF8000000000001], np.uint64).view(np.float64)[0]
    got = reasons(registry, instrument_token=[UNKNOWN] * 5,
                  average_traded_price=[np.nan, nan_payload, -0.0, 0.0, 0.0],
                  total_buy_quantity=[1, 1, 2, 2, 3], volume_traded=5)
    got &= ~np.uint32(Reason.UNKNOWN_INSTRUMENT)
    d = Reason.DUPLICATE
    np.testing.assert_array_equal(got, [0, d, 0, d, 0])


def test_same_values_of_different_tokens_are_not_duplicates(registry):
    got = reasons(registry, instrument_token=[FUT, STOCK], volume_traded=5)
    np.testing.assert_array_equal(got, [0, 0])


def test_many_duplicates_across_partitions(registry):
    # Enough ticks for several hash partitions: every tick appears three times.
    n = 30_000
    base = np.arange(n)
    idx = np.concatenate([base, base, base])
    got = reasons(registry, instrument_token=np.full(3 * n, UNKNOWN),
                  volume_traded=idx, oi=idx % 7, received_ns=T0 + np.arange(3 * n))
    dup = (got & np.uint32(Reason.DUPLICATE)) != 0
    np.testing.assert_array_equal(dup, np.arange(3 * n) >= n)


def after_filler(n, **tail):
    """Columns of a few ticks (``tail``, equal lengths) after ``n`` distinct ticks of an
    unknown instrument: with those, the window is searched for duplicates in hash
    partitions. Columns not in ``tail`` take the defaults of ``reasons``."""
    k = len(next(iter(tail.values())))
    head = {"instrument_token": np.full(n, UNKNOWN), "volume_traded": np.arange(n),
            "received_ns": T0 + np.arange(n), "last_traded_quantity": np.full(n, 75),
            "average_traded_price": np.full(n, 100.0), "prev_close": np.full(n, np.nan)}
    tail.setdefault("received_ns", T0 + n + np.arange(k))
    return {c: np.concatenate([head[c], np.asarray(v)]) for c, v in tail.items()}


@pytest.mark.parametrize("n_filler", [0, 20_000])
@pytest.mark.parametrize("column, a, b", [("last_traded_quantity", 1, 2),
                                          ("average_traded_price", 100.0, 100.5),
                                          ("prev_close", np.nan, 100.0)])
def test_equal_hashes_are_confirmed_column_by_column(registry, n_filler, column, a, b):
    # The hash leaves these columns out, so ticks A and B, equal but in one of them, have
    # equal hashes yet are no duplicates; later copies of either are.
    got = reasons(registry, **after_filler(n_filler, instrument_token=[FUT] * 4,
                                           volume_traded=[1000] * 4, **{column: [a, b, b, a]}))
    np.testing.assert_array_equal(got[:n_filler], Reason.UNKNOWN_INSTRUMENT)
    np.testing.assert_array_equal(got[n_filler:], [0, 0, Reason.DUPLICATE, Reason.DUPLICATE])


@pytest.mark.parametrize("n_filler", [0, 20_000])
def test_a_duplicate_is_not_judged_by_the_volume_rule(registry, n_filler):
    # A' copies A (volume 100) after B (volume 200) of the same instrument: A' is only a
    # duplicate, and C (150) is compared with B, the last valid tick.
    got = reasons(registry, **after_filler(n_filler, instrument_token=[FUT] * 4,
                                           volume_traded=[100, 200, 100, 150],
                                           last_traded_quantity=[1, 2, 1, 3]))
    np.testing.assert_array_equal(got[n_filler:],
                                  [0, 0, Reason.DUPLICATE, Reason.VOLUME_DECREASE])


@pytest.mark.parametrize("n", [50, 20_000])
def test_given_or_found_days_agree(registry, n):
    # Ticks around IST midnight, on either side; exchange_ts sometimes missing.
    rng = np.random.default_rng(n)
    midnight = (DAY + 1) * NS_PER_DAY - IST_OFFSET_NS
    received = midnight + rng.integers(-3 * S, 3 * S, n)
    exchange = np.where(rng.random(n) < 0.2, MISSING_INT, received - rng.integers(0, S, n))
    tokens = rng.choice([NIFTY, FUT, CE, PE, STOCK, UNKNOWN], n)
    batch = TickBatch.from_columns(instrument_token=tokens, received_ns=received,
                                   exchange_ts=exchange, last_price=100.0,
                                   volume_traded=rng.integers(0, 50, n), bid_price=np.nan,
                                   ask_price=np.nan)
    m = len(registry)
    carry = (np.full(m, 100.0), np.full(m, 20, np.int64), np.full(m, DAY, np.int64))
    rows = registry.rows_of(batch.instrument_token)
    found = tick_reasons(batch, rows, registry.kind, *carry)
    given = tick_reasons(batch, rows, registry.kind, *carry,
                         day=ist_day(batch.exchange_ts, batch.received_ns))
    np.testing.assert_array_equal(found, given)
    assert (found & np.uint32(Reason.VOLUME_DECREASE)).any()


def test_crossed_book(registry):
    bid = [100.0, 100.05, 100.0, 100.0, 100.05, np.nan]
    ask = [100.0, 100.0, 0.0, np.nan, np.nan, 100.0]
    got = reasons(registry, instrument_token=[FUT] * 6, bid_price=bid, ask_price=ask,
                  volume_traded=1000 + np.arange(6))
    c = Reason.CROSSED_BOOK
    np.testing.assert_array_equal(got, [0, c, 0, 0, 0, 0])


def test_bad_depth(registry):
    maxq = Limits().max_quantity
    cases = [  # bid, ask, bid_qty, ask_qty, bad
        (0.0, 0.0, 0, 0, False), (np.nan, np.nan, MISSING_INT, MISSING_INT, False),
        (-0.05, 100.0, 1, 1, True), (99.0, -1.0, 1, 1, True), (np.inf, 100.0, 1, 1, True),
        (99.0, np.inf, 1, 1, True), (-np.inf, 100.0, 1, 1, True),
        (99.0, 100.0, -1, 1, True), (99.0, 100.0, 1, maxq + 1, True),
        (99.0, 100.0, maxq, maxq, False),
    ]
    bid, ask, bq, aq, bad = map(list, zip(*cases, strict=True))
    got = reasons(registry, instrument_token=[UNKNOWN] * len(cases), bid_price=bid,
                  ask_price=ask, bid_quantity=bq, ask_quantity=aq,
                  volume_traded=np.arange(len(cases)))
    got &= ~np.uint32(Reason.UNKNOWN_INSTRUMENT)
    want = np.where(bad, np.uint32(Reason.BAD_DEPTH), 0)  # an +inf bid is not "crossed"
    np.testing.assert_array_equal(got, want)


def test_several_rules_at_once_or_their_bits(registry):
    carry = per_row(registry, np.nan, {STOCK: 100.0})
    got = reasons(
        registry, carry_price=carry,
        instrument_token=[UNKNOWN, STOCK, FUT, FUT],
        last_price=[-1.0, 1000.0, np.inf, 100.0],
        oi=[-5, 1, 1, 1],
        total_buy_quantity=[-1, 1, 1, 1],
        exchange_ts=[T0 + 10 * S, T0, T0 - 100 * S, T0],
        bid_price=[101.0, 99.0, -1.0, 99.0], ask_price=[100.0, 100.0, 100.0, 100.0],
        volume_traded=[1, 2, 3, 2],
    )
    R = Reason
    assert got[0] == (R.UNKNOWN_INSTRUMENT | R.NON_POSITIVE_PRICE | R.BAD_OI
                      | R.BAD_QUANTITY | R.EXCHANGE_TS_FUTURE | R.CROSSED_BOOK)
    assert got[1] == R.PRICE_JUMP
    assert got[2] == R.NON_FINITE_PRICE | R.EXCHANGE_TS_STALE | R.BAD_DEPTH
    assert got[3] == 0  # the 3rd tick is invalid, so the 4th's volume has no predecessor
    assert describe(got[1]) == ["PRICE_JUMP"]


def test_carries_are_not_modified(registry):
    carry_volume = per_row(registry, MISSING_INT, {FUT: 5})
    carry_day = per_row(registry, MISSING_INT, {FUT: DAY})
    carry_price = per_row(registry, np.nan, {FUT: 100.0})
    copies = carry_volume.copy(), carry_day.copy(), carry_price.copy()
    reasons(registry, carry_price=carry_price, carry_volume=carry_volume,
            carry_day=carry_day, instrument_token=[FUT], volume_traded=[10])
    for a, b in zip((carry_volume, carry_day, carry_price), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_argument_errors(registry):
    batch = TickBatch.from_columns(instrument_token=[FUT], received_ns=T0)
    m = len(registry)
    carry = (np.full(m, np.nan), np.full(m, MISSING_INT), np.full(m, MISSING_INT))
    with pytest.raises(ValueError, match="rows"):
        tick_reasons(batch, np.array([0, 1]), registry.kind, *carry)
    with pytest.raises(ValueError, match="registry row"):
        tick_reasons(batch, np.array([0]), registry.kind, carry[0][:2], *carry[1:])
    with pytest.raises(ValueError, match="registry"):
        tick_reasons(batch, np.array([m]), registry.kind, *carry)


@pytest.mark.parametrize("bad", [dict(max_price=0.0), dict(max_move=-1.0),
                                 dict(max_move_option=np.nan), dict(max_quantity=-1),
                                 dict(max_ts_lag_ns=2**63), dict(max_ts_skew_ns=1.5)])
def test_limits_are_checked(bad):
    with pytest.raises(ConfigError):
        Limits(**bad)


def test_reason_counts_and_describe():
    r = np.array([0, Reason.DUPLICATE, Reason.DUPLICATE | Reason.BAD_OI,
                  Reason.UNKNOWN_INSTRUMENT, 1 << 31], np.uint32)
    counts = reason_counts(r)
    assert list(counts)[:13] == [x.name for x in sorted(Reason, key=int)]
    assert counts["DUPLICATE"] == 2 and counts["BAD_OI"] == 1
    assert counts["UNKNOWN_INSTRUMENT"] == 1 and counts["BIT_31"] == 1
    assert sum(counts.values()) == 5
    assert reason_counts(np.array([], np.uint32)) == {x.name: 0 for x in
                                                      sorted(Reason, key=int)}
    assert describe(0) == []
    assert describe(Reason.DUPLICATE | Reason.UNKNOWN_INSTRUMENT | (1 << 20)) == [
        "UNKNOWN_INSTRUMENT", "DUPLICATE", "BIT_20"]
    with pytest.raises(ValueError):
        describe(1 << 32)


@pytest.mark.parametrize("first", [np.iinfo(np.int64).max, MISSING_INT + 1, T0])
def test_ist_day_is_exact_at_the_int64_limits(first):
    t = np.array([first, np.iinfo(np.int64).max, MISSING_INT + 1, 0, -1, T0, T0 + NS_PER_DAY],
                 np.int64)
    got = ist_day(t, t)
    want = [(int(x) + IST_OFFSET_NS) // NS_PER_DAY for x in t]
    assert got.tolist() == want
    # exchange_ts missing: the day of received_ns.
    assert ist_day(np.full(len(t), MISSING_INT), t).tolist() == want


def test_empty_registry_makes_every_tick_unknown():
    batch = TickBatch.from_columns(instrument_token=[FUT, CE], received_ns=T0,
                                   last_price=[1.0, 1.0], volume_traded=[5, 5])
    empty = (np.array([], np.int8), np.array([]), np.array([], np.int64),
             np.array([], np.int64))
    got = tick_reasons(batch, np.array([-1, -1]), *empty)
    np.testing.assert_array_equal(got, [Reason.UNKNOWN_INSTRUMENT] * 2)
    with pytest.raises(ValueError, match="registry"):
        tick_reasons(batch, np.array([0, -1]), *empty)


# -- large windows: parts on several cores --------------------------------------------------


@pytest.fixture(params=[1, 3], ids=["one call", "3 parts"])
def parts(request, monkeypatch):
    """Every window in one kernel call, or cut into three parts however few its ticks (they
    then run as a large window's, on the pool's threads where there are several cores)."""
    monkeypatch.setattr(masks, "_parts", lambda n: request.param)
    return request.param


@pytest.mark.parametrize("column", ["last_traded_quantity", "average_traded_price",
                                    "prev_close"])
def test_ticks_equal_but_in_a_column_the_hash_leaves_out(registry, parts, column):
    # 4,000 ticks of one instrument that differ only in `column`, 500 values of it: every
    # hash search matches them all; a tick is a duplicate iff its value came before (the
    # colliding ticks are confirmed through their hash over every column, in linear time:
    # 2 s for 20,000 such ticks when each was compared with every earlier one).
    n = 4000
    rng = np.random.default_rng(len(column))
    value = rng.integers(0, 500, n)
    varying = 90.0 + value * 0.05 if column != "last_traded_quantity" else value
    got = reasons(registry, instrument_token=np.full(n, FUT), volume_traded=1000,
                  received_ns=T0 + np.arange(n), **{column: varying})
    first = np.zeros(n, bool)
    first[np.unique(value, return_index=True)[1]] = True
    np.testing.assert_array_equal(got, np.where(first, 0, np.uint32(Reason.DUPLICATE)))


def test_duplicates_across_parts(registry, parts):
    # Two ticks per part: each repeat's twin is in an earlier part, an unknown token's too.
    got = reasons(registry, instrument_token=[FUT, UNKNOWN, CE, FUT, UNKNOWN, CE],
                  volume_traded=[10, 5, 7, 10, 5, 8], last_price=[100, 1, 5, 100, 1, 5])
    d, u = Reason.DUPLICATE, Reason.UNKNOWN_INSTRUMENT
    np.testing.assert_array_equal(got, [0, u, 0, d, u | d, 0])


def test_far_duplicates_across_parts(registry, parts):
    # Each tick three times, 30,000 ticks apart (one part each): the partitioned search
    # finds the repeats.
    n = 30_000
    idx = np.tile(np.arange(n), 3)
    got = reasons(registry, instrument_token=np.full(3 * n, UNKNOWN), volume_traded=idx,
                  oi=idx % 7, received_ns=T0 + np.arange(3 * n))
    dup = (got & np.uint32(Reason.DUPLICATE)) != 0
    np.testing.assert_array_equal(dup, np.arange(3 * n) >= n)


@pytest.mark.parametrize("n_filler", [0, 30_000])
def test_a_duplicate_in_a_later_part_is_not_judged_by_the_volume_rule(registry, parts,
                                                                     n_filler):
    # A, B, then n_filler ticks of an unknown instrument, then A' (a repeat of A, in the
    # last part) and C: A' is only a duplicate, C is compared with B. With the filler, A'
    # is found by the partitioned search after the parts judged its volume: they judge
    # their volumes again.
    head = dict(instrument_token=[FUT, FUT], volume_traded=[100, 200],
                last_traded_quantity=[1, 2])
    filler = dict(instrument_token=np.full(n_filler, UNKNOWN),
                  volume_traded=np.arange(n_filler), last_traded_quantity=np.full(n_filler, 5))
    tail = dict(instrument_token=[FUT, FUT], volume_traded=[100, 150],
                last_traded_quantity=[1, 3])
    cols = {c: np.concatenate([head[c], filler[c], tail[c]]) for c in head}
    got = reasons(registry, **cols)
    np.testing.assert_array_equal(got[[0, 1, -2, -1]],
                                  [0, 0, Reason.DUPLICATE, Reason.VOLUME_DECREASE])


def test_volume_decreases_across_parts(registry, parts):
    # Parts [100, 500] [300, 400] [600, 550]: 300 and 400 are below 500 of the first part
    # (400 is above 300, the maximum of its own part); 550 is below 600.
    got = reasons(registry, instrument_token=[FUT] * 6,
                  volume_traded=[100, 500, 300, 400, 600, 550])
    v = Reason.VOLUME_DECREASE
    np.testing.assert_array_equal(got, [0, 0, v, v, 0, v])


def test_volume_decreases_against_the_carry_in_later_parts(registry, parts):
    # FUT's carry (1,000, today) holds in every part: a decrease is no tick's "previous
    # valid" volume, nor is a tick with another reason (the NaN price). STOCK's carry is of
    # yesterday: its first tick sets the state.
    carry_volume = per_row(registry, MISSING_INT, {FUT: 1000, STOCK: 1000})
    carry_day = per_row(registry, MISSING_INT, {FUT: DAY, STOCK: DAY - 1})
    got = reasons(registry, carry_volume=carry_volume, carry_day=carry_day,
                  instrument_token=[FUT, STOCK, FUT, FUT, STOCK, FUT],
                  volume_traded=[900, 5, 2000, 950, 4, 1500],
                  last_price=[100.0, 100.0, np.nan, 100.0, 100.0, 100.0])
    v = Reason.VOLUME_DECREASE
    np.testing.assert_array_equal(got, [v, 0, Reason.NON_FINITE_PRICE, v, v, 0])


def test_volume_rule_left_out(registry, parts):
    # Several days and a duplicate that pass 3 would judge again: no tick gets the bit,
    # every other bit stays.
    midnight = (DAY + 1) * NS_PER_DAY - IST_OFFSET_NS
    ex = midnight + np.array([-2, -1, 1, 2, 3, 4]) * S
    cols = dict(instrument_token=[FUT] * 6, exchange_ts=ex, received_ns=ex + 1,
                volume_traded=[1000, 900, 5, 3, 5, 6], last_traded_quantity=[1, 1, 1, 1, 1, 2])
    cols["exchange_ts"][4] = ex[2]
    cols["received_ns"][4] = ex[2] + 9
    full = reasons(registry, **cols)
    v, d = Reason.VOLUME_DECREASE, Reason.DUPLICATE
    np.testing.assert_array_equal(full, [0, v, 0, v, d, 0])
    batch = TickBatch.from_columns(**{**dict(last_price=100.0, oi=500, bid_price=99.95,
                                             ask_price=100.05, bid_quantity=75,
                                             ask_quantity=75, total_buy_quantity=10,
                                             total_sell_quantity=10), **cols})
    m = len(registry)
    got = tick_reasons(batch, registry.rows_of(batch.instrument_token), registry.kind,
                       np.full(m, np.nan), np.full(m, MISSING_INT), np.full(m, MISSING_INT),
                       volume=False)
    np.testing.assert_array_equal(got, [0, 0, 0, 0, d, 0])


def test_volume_resets_on_a_new_ist_day_across_parts(registry, parts):
    midnight = (DAY + 1) * NS_PER_DAY - IST_OFFSET_NS
    ex = midnight + np.arange(-2, 4) * S
    got = reasons(registry, instrument_token=[FUT] * 6, exchange_ts=ex, received_ns=ex + 1,
                  volume_traded=[1000, 1200, 5, 3, 7, 6])
    v = Reason.VOLUME_DECREASE
    np.testing.assert_array_equal(got, [0, 0, 0, v, 0, v])


def test_rows_past_the_registry(registry, parts):
    batch = TickBatch.from_columns(instrument_token=[FUT] * 7, received_ns=T0)
    m = len(registry)
    carry = (np.full(m, np.nan), np.full(m, MISSING_INT), np.full(m, MISSING_INT))
    with pytest.raises(ValueError, match="registry"):
        tick_reasons(batch, np.array([0, 1, 2, 3, 4, 5, m]), registry.kind, *carry)


def test_an_error_in_a_thread_reaches_the_caller_after_every_call():
    ended = []

    def work(k):
        ended.append(k)
        if k:
            raise KeyError(k)
        return k

    with pytest.raises(KeyError, match="1"):
        masks._on_cores(work, [(0,), (1,), (2,)])
    assert sorted(ended) == [0, 1, 2]
    assert masks._on_cores(lambda k: 2 * k, [(1,), (2,), (3,)]) == [2, 4, 6]


@pytest.mark.parametrize("n_parts", [2, 7])
def test_parts_equal_one_call_on_the_synthetic_market(monkeypatch, n_parts):
    market = SyntheticMarket(500, rate=200_000.0, seed=3, burst_probability=0)
    batch = market.next_batch(market.now_ns + 500_000_000)
    registry = market.registry
    m = len(registry)
    rng = np.random.default_rng(n_parts)
    # Repeats of earlier ticks, near and far (then mostly in another part).
    n = len(batch)
    src = rng.integers(0, n - 1, 2000)
    dst = np.minimum(src + np.where(rng.random(2000) < 0.5, 3, n // 2), n - 1)
    columns = {name: a.copy() for name, a in batch}
    for name, a in columns.items():
        if name != "received_ns":
            a[dst] = a[src]
    batch = TickBatch(**columns)
    rows = registry.rows_of(batch.instrument_token)
    # Carries of today that some first ticks are below, prices that some ticks jump from.
    first = np.unique(rows, return_index=True)[1]
    carry_volume = np.full(m, MISSING_INT)
    carry_volume[rows[first]] = batch.volume_traded[first] + rng.integers(-50, 50, len(first))
    carry_day = np.full(m, ist_day(batch.exchange_ts[:1], batch.received_ns[:1])[0])
    carry_price = np.where(rng.random(m) < 0.5, np.nan, 1.0)
    args = (batch, rows, registry.kind, carry_price, carry_volume, carry_day)
    monkeypatch.setattr(masks, "_parts", lambda n: 1)
    one = tick_reasons(*args)
    monkeypatch.setattr(masks, "_parts", lambda n: n_parts)
    np.testing.assert_array_equal(tick_reasons(*args), one)
    counts = reason_counts(one)
    assert counts["DUPLICATE"] and counts["VOLUME_DECREASE"] and counts["PRICE_JUMP"]
    # Without the volume rule: the same bits but VOLUME_DECREASE, in one call or in parts
    # (compute_window judges it in its own per-instrument pass).
    without = one & ~np.uint32(Reason.VOLUME_DECREASE)
    np.testing.assert_array_equal(tick_reasons(*args, volume=False), without)
    monkeypatch.setattr(masks, "_parts", lambda n: 1)
    np.testing.assert_array_equal(tick_reasons(*args, volume=False), without)


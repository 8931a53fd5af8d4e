"""The pandera schemas against the Numba masks (property test), and the schemas of the
published tables against a real computed window."""

import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pandera")

from pandera.errors import SchemaError, SchemaErrors

from vectorticks import payload
from vectorticks.chain import GreeksParams
from vectorticks.columns import MISSING_INT, TICK_COLUMNS, TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.masks import IST_OFFSET_NS, NS_PER_DAY, Limits, Reason, tick_reasons
from vectorticks.sources import SyntheticMarket
from vectorticks.validate import (
    CONTEXT_COLUMNS,
    bar_schema,
    option_schema,
    reject_mask,
    reject_reasons,
    tick_frame,
    tick_schema,
)

S = 1_000_000_000
IMAX, IMIN = np.iinfo(np.int64).max, MISSING_INT
T0 = 1_795_000_000 * S
DAY = (T0 + IST_OFFSET_NS) // NS_PER_DAY
MIDNIGHT = (DAY + 1) * NS_PER_DAY - IST_OFFSET_NS  # next IST midnight, in UTC ns


@pytest.fixture(scope="module")
def market():
    return SyntheticMarket(60, rate=20_000, seed=11, burst_probability=0)


def test_importing_vectorticks_does_not_import_pandera():
    import subprocess

    code = ("import sys, vectorticks, vectorticks.masks; "
            "print('pandera' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_tick_frame_adds_the_context(market):
    registry = market.registry
    batch = TickBatch.concat([
        market.next_batch(market.now_ns + 50_000_000),
        TickBatch.from_columns(instrument_token=[999], received_ns=market.now_ns)])
    m = len(registry)
    last = np.arange(m, dtype=float)
    frame = tick_frame(batch, registry, last_price=last,
                       volume_traded=np.arange(m) * 10, volume_day=np.full(m, 7))
    assert list(frame.columns) == [c.name for c in TICK_COLUMNS] + list(CONTEXT_COLUMNS)
    rows = registry.rows_of(batch.instrument_token)
    known = rows >= 0
    np.testing.assert_array_equal(frame["known"], known)
    np.testing.assert_array_equal(frame["kind"], np.where(known, registry.kind[rows], -1))
    np.testing.assert_array_equal(frame["carry_price"], np.where(known, last[rows], np.nan))
    np.testing.assert_array_equal(frame["carry_volume"],
                                  np.where(known, rows * 10, MISSING_INT))
    np.testing.assert_array_equal(frame["carry_day"], np.where(known, 7, MISSING_INT))
    for name, (dtype, _) in CONTEXT_COLUMNS.items():
        assert frame[name].dtype == np.dtype(dtype)
    first = tick_frame(batch, registry)  # no carry
    assert first["carry_price"].isna().all()
    assert (first["carry_volume"] == MISSING_INT).all()


def test_synthetic_window_agrees_and_is_valid(market):
    registry = market.registry
    batch = market.next_batch(market.now_ns + 200_000_000)
    m = len(registry)
    frame = tick_frame(batch, registry)
    rows = registry.rows_of(batch.instrument_token)
    want = tick_reasons(batch, rows, registry.kind, np.full(m, np.nan),
                        np.full(m, MISSING_INT), np.full(m, MISSING_INT))
    got = reject_reasons(frame)
    np.testing.assert_array_equal(got.to_numpy(), want)
    # The synthetic market's only rejects are repeated index quotes within one second.
    bad = want != 0
    assert (want[bad] == Reason.DUPLICATE).all()
    tick_schema().validate(frame[~bad], lazy=True)


def test_schema_errors_on_a_malformed_frame(market):
    frame = tick_frame(market.next_batch(market.now_ns + 10_000_000), market.registry)
    with pytest.raises(SchemaErrors):
        reject_mask(frame.drop(columns=["carry_day"]))
    with pytest.raises(SchemaErrors):
        reject_mask(frame.astype({"oi": "float64"}))


def test_reject_mask_keeps_the_index(market):
    registry = market.registry
    batch = TickBatch.from_columns(instrument_token=[registry.token[0], 999],
                                   received_ns=T0, last_price=100.0)
    frame = tick_frame(batch, registry)
    frame.index = ["a", "b"]
    got = reject_mask(frame)
    assert got.index.tolist() == ["a", "b"] and got.tolist() == [False, True]
    assert reject_reasons(frame)["b"] == Reason.UNKNOWN_INSTRUMENT


# -- property test: the pandera schema and tick_reasons reject the same rows for the same
# reasons -------------------------------------------------------------------------------

LIMITS = [Limits(), Limits(max_price=500.0, max_move=0.01, max_move_option=1.0,
                           max_move_prev_close=0.02, max_move_option_prev_close=2.0,
                           max_quantity=1000, max_ts_skew_ns=0, max_ts_lag_ns=S)]
QTY = st.one_of(st.sampled_from([MISSING_INT, 0, 1, -1, 2**48, 2**48 + 1, IMAX, IMIN + 1,
                                 1000, 1001]),
                st.integers(0, 5))
PRICE = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e7, 1e7 * (1 + 2**-52),
                     100.0, 120.0, 83.0, 2.0, 22.0, 0.05, 1e-300, 5e-324]),
    st.floats(-10.0, 2e7, allow_nan=False))
TIME = st.sampled_from([T0, T0 + 1, T0 + 2 * S, T0 + 2 * S + 1, T0 - 60 * S,
                        T0 - 60 * S - 1, MIDNIGHT - 1, MIDNIGHT, MIDNIGHT + S, IMAX, IMIN + 1,
                        0, -1])
EXCHANGE = st.one_of(st.just(MISSING_INT), TIME)


GOOD_PRICE = st.sampled_from([100.0, 100.5, 99.0, 101.0, 2.0])
GOOD_QTY = st.integers(0, 5)
GOOD_QUOTE = st.sampled_from([np.nan, 0.0, 99.0, 99.5, 100.0])


@st.composite
def windows(draw, tokens):
    """A window of up to 30 ticks, plausible values mixed with edge cases (every value,
    1 in 8 or 1 in 64 of them: the volume rule needs valid ticks), some exact
    duplicates; plus carries and limits."""
    n = draw(st.integers(0, 30))
    noisy = draw(st.sampled_from([1, 8, 64]))  # an edge value 1 time in `noisy`

    def pick(good, edge):
        return draw(edge) if draw(st.integers(1, noisy)) == 1 else draw(good)

    known = [int(t) for t in tokens]
    columns = {c.name: [] for c in TICK_COLUMNS}
    for i in range(n):
        if i and draw(st.integers(0, 5)) == 0:  # an exact duplicate of an earlier tick
            j = draw(st.integers(0, i - 1))
            for name in columns:
                columns[name].append(columns[name][j])
            columns["received_ns"][-1] = draw(TIME)
            continue
        received = pick(st.sampled_from([T0, MIDNIGHT - 1, MIDNIGHT + S]), TIME)
        tick = {
            "instrument_token": pick(st.sampled_from(known), st.just(999)),
            "received_ns": received,
            "exchange_ts": pick(st.sampled_from([MISSING_INT, received,
                                                 max(received - S, IMIN + 1)]), EXCHANGE),
            "last_price": pick(GOOD_PRICE, PRICE),
            "average_traded_price": pick(GOOD_PRICE, PRICE),
            "prev_close": pick(st.sampled_from([np.nan, 100.0]), PRICE),
            "bid_price": pick(GOOD_QUOTE, PRICE),
            "ask_price": pick(GOOD_QUOTE.map(lambda q: q if q != q or q == 0 else q + 1.0),
                              PRICE),
            "oi": pick(GOOD_QTY, QTY), "bid_quantity": pick(GOOD_QTY, QTY),
            "ask_quantity": pick(GOOD_QTY, QTY),
            "last_traded_quantity": pick(GOOD_QTY, QTY),
            "volume_traded": pick(GOOD_QTY, QTY),
            "total_buy_quantity": pick(GOOD_QTY, QTY),
            "total_sell_quantity": pick(GOOD_QTY, QTY),
        }
        for name, value in tick.items():
            columns[name].append(value)
    batch = TickBatch.from_columns(
        n=n, **{c.name: np.array(columns[c.name], dtype=c.dtype) for c in TICK_COLUMNS})
    m = len(tokens)
    carry_price = np.array(draw(st.lists(st.sampled_from([np.nan, 100.0, 2.0, 0.0, -1.0,
                                                          np.inf, 100.0, np.nan]),
                                         min_size=m, max_size=m)))
    carry_volume = np.array(draw(st.lists(st.sampled_from([MISSING_INT, 0, 3, 1000]),
                                          min_size=m, max_size=m)), np.int64)
    carry_day = np.array(draw(st.lists(st.sampled_from([MISSING_INT, DAY, DAY + 1, DAY - 1]),
                                       min_size=m, max_size=m)), np.int64)
    limits = draw(st.sampled_from(LIMITS))
    return batch, carry_price, carry_volume, carry_day, limits


@pytest.fixture(scope="module")
def option_registry(market):
    # The instruments the generated ticks use: two indices, two futures, a call, a put.
    reg = market.registry
    first = {k: np.flatnonzero(reg.kind == k) for k in (0, 2, 3, 4)}
    order = np.concatenate([first[0][:2], first[2][:2], first[3][:1], first[4][:1]])
    return reg, order


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_schema_and_masks_reject_the_same_rows(option_registry, data):
    reg, order = option_registry
    batch, carry_price, carry_volume, carry_day, limits = data.draw(
        windows(reg.token[order]))
    m = len(reg)

    def per_row(values, fill, dtype):
        a = np.full(m, fill, dtype=dtype)
        a[order] = values
        return a

    lp = per_row(carry_price, np.nan, np.float64)
    vt = per_row(carry_volume, MISSING_INT, np.int64)
    vd = per_row(carry_day, MISSING_INT, np.int64)
    want = tick_reasons(batch, reg.rows_of(batch.instrument_token), reg.kind, lp, vt, vd,
                        limits)
    frame = tick_frame(batch, reg, last_price=lp, volume_traded=vt, volume_day=vd)
    got = reject_reasons(frame, limits).to_numpy()
    # Same rows, and for the same reasons (reject_mask is reject_reasons != 0).
    np.testing.assert_array_equal(got, want, err_msg=f"\n{frame.to_string()}")


# -- published tables -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def window():
    market = SyntheticMarket(400, rate=50_000, seed=5, burst_probability=0)
    registry = market.registry
    carry = Carry.initial(len(registry))
    result = None
    for seq in range(1, 4):
        batch = market.next_batch(market.now_ns + 100_000_000)
        result, carry = compute_window(batch, registry, carry, seq=seq,
                                       start_ns=market.now_ns - 100_000_000,
                                       end_ns=market.now_ns, greeks=GreeksParams())
    return payload.decode(payload.encode(result))


def test_a_computed_window_validates(window):
    bars, options = window.bars, window.options
    assert len(bars) > 0 and len(options) > 0
    assert options["iv"].notna().any()
    bar_schema().validate(bars, lazy=True)
    option_schema().validate(options, lazy=True)


def failing_checks(schema, frame):
    with pytest.raises(SchemaErrors) as info:
        schema.validate(frame, lazy=True)
    return set(info.value.failure_cases["check"].astype(str))


def test_corrupted_bars_are_rejected(window):
    schema = bar_schema()
    bars = window.bars
    priced = bars.index[bars["close"].notna()][0]
    cases = {
        "high": lambda b: b.assign(high=b["low"] - 1.0),
        "open": lambda b: b.assign(open=b["high"] + 1.0),
        "volume": lambda b: b.assign(volume=-1),
        "tick_count": lambda b: b.assign(tick_count=np.int32(0)),
        "oi": lambda b: b.assign(oi=-5),
        "received": lambda b: b.assign(first_received_ns=b["last_received_ns"] + 1),
    }
    for name, corrupt in cases.items():
        bad = bars.copy()
        bad.loc[[priced]] = corrupt(bars.loc[[priced]])
        assert failing_checks(schema, bad.astype(bars.dtypes.to_dict())), name
    dup = pd.concat([bars, bars.iloc[:1]], ignore_index=True)
    assert failing_checks(schema, dup)
    with pytest.raises((SchemaError, SchemaErrors)):
        schema.validate(bars.drop(columns=["oi"]))


def test_corrupted_options_are_rejected(window):
    schema = option_schema()
    options = window.options
    quoted = options.index[(options["bid_price"] > 0) & (options["ask_price"] > 0)][0]
    with_iv = options.index[options["iv"].notna()][0]
    cases = {
        "strike": ("strike", 0.0, quoted),
        "crossed": ("bid_price", float(options.loc[quoted, "ask_price"]) + 1.0, quoted),
        "iv negative": ("iv", -0.1, with_iv),
        "iv with bad status": ("iv_status", np.int8(1), with_iv),
        "unknown status": ("iv_status", np.int8(9), with_iv),
        "delta": ("delta", 1.5, with_iv),
        "tick_count": ("tick_count", np.int32(0), quoted),
        "forward source": ("forward_source", np.uint8(7), quoted),
    }
    for name, (column, value, row) in cases.items():
        bad = options.copy()
        bad.loc[row, column] = value
        bad = bad.astype(options.dtypes.to_dict())
        assert failing_checks(schema, bad), name

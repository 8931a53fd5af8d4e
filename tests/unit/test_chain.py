"""IV and Greeks inside compute_window: forward sources, time to expiry, price used."""

import math

import numpy as np
import pandas as pd
import pytest

from vectorticks import greeks
from vectorticks.chain import (
    NS_PER_YEAR,
    ForwardSource,
    GreeksParams,
    price_to_invert,
    time_to_expiry,
)
from vectorticks.columns import TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.greeks import IVStatus
from vectorticks.instruments import InstrumentRegistry

NIFTY, FUT_DEC, FUT_JAN = 256265, 13238786, 13300226
STRIKES = [23800, 24000, 24200]
R = 0.065
NOW = pd.Timestamp("2026-11-23 10:00", tz="Asia/Kolkata").value      # a Monday
EXPIRY = pd.Timestamp("2026-12-01 15:30", tz="Asia/Kolkata").value


def token(strike, call):
    return 10_000_002 + (STRIKES.index(strike) * 2 + (0 if call else 1)) * 256


@pytest.fixture(scope="module")
def registry():
    rows = [(NIFTY, "NIFTY 50", "NIFTY 50", "", 0, "EQ", "INDICES"),
            (FUT_JAN, "NIFTY27JANFUT", "NIFTY", "2027-01-27", 0, "FUT", "NFO-FUT")]
    for k in STRIKES:
        for call in (True, False):
            rows.append((token(k, call), f"NIFTY26D01{k}{'CE' if call else 'PE'}", "NIFTY",
                         "2026-12-01", k, "CE" if call else "PE", "NFO-OPT"))
    frame = pd.DataFrame(rows, columns=["instrument_token", "tradingsymbol", "name", "expiry",
                                        "strike", "instrument_type", "segment"])
    frame["exchange_token"], frame["last_price"] = 1, 0.0
    frame["tick_size"], frame["lot_size"], frame["exchange"] = 0.05, 75, "NFO"
    return InstrumentRegistry.from_frame(frame)


def chain_ticks(forward, sigma, t, with_future=True, with_index=True, spot=None):
    """Option quotes priced by Black-76 at ``sigma`` on ``forward``, plus the future/index."""
    tokens, last, bid, ask = [], [], [], []
    for k in STRIKES:
        for call in (True, False):
            p = float(greeks.price(forward, k, t, sigma, R, 0.0, call))
            tokens.append(token(k, call))
            last.append(p + 3.0)                     # stale last trade: the mid must win
            bid.append(p - 0.5)
            ask.append(p + 0.5)
    if with_future:
        t_jan = (pd.Timestamp("2027-01-27 15:30", tz="Asia/Kolkata").value - NOW) / NS_PER_YEAR
        tokens.append(FUT_JAN)
        last.append(forward * math.exp(R * (t_jan - t)))  # the later future carries more
        bid.append(np.nan)
        ask.append(np.nan)
    if with_index:
        tokens.append(NIFTY)
        last.append(spot if spot is not None else forward * math.exp(-R * t))
        bid.append(np.nan)
        ask.append(np.nan)
    n = len(tokens)
    return TickBatch.from_columns(instrument_token=tokens, received_ns=np.full(n, NOW - 1),
                                  last_price=last, bid_price=bid, ask_price=ask)


def options_of(registry, batch, params=None):
    result, _ = compute_window(batch, registry, Carry.initial(len(registry)), seq=1,
                               start_ns=NOW - 10, end_ns=NOW, greeks=params or GreeksParams())
    return pd.DataFrame(result.options)


T = (EXPIRY - NOW) / NS_PER_YEAR


@pytest.mark.parametrize("with_future, with_index, source", [
    (True, True, ForwardSource.FUTURE),
    (False, True, ForwardSource.PARITY),
])
def test_recovers_the_vol_from_future_or_parity_forward(registry, with_future, with_index,
                                                         source):
    o = options_of(registry, chain_ticks(24_100.0, 0.14, T, with_future, with_index))
    assert (o.forward_source == source).all()
    np.testing.assert_allclose(o.forward, 24_100.0, rtol=1e-12)
    np.testing.assert_allclose(o.iv, 0.14, atol=1e-10)
    assert (o.iv_status == IVStatus.OK).all()
    np.testing.assert_allclose(o.time_to_expiry, T, rtol=1e-15)
    g = greeks.greeks(o.forward, o.strike, o.time_to_expiry, o.iv, R, 0.0, o.is_call)
    np.testing.assert_allclose(o.delta, g.delta, rtol=1e-12)
    np.testing.assert_allclose(o.vega, g.vega, rtol=1e-12)
    np.testing.assert_allclose(o.price_used, o.last_price - 3.0, rtol=1e-12)  # the mid


def test_spot_forward_when_only_the_index_ticked(registry):
    batch = chain_ticks(24_100.0, 0.14, T, with_future=False)
    calls_only = batch.take(np.isin(batch.instrument_token,
                                    [token(k, True) for k in STRIKES] + [NIFTY]))
    o = options_of(registry, calls_only)
    assert (o.forward_source == ForwardSource.SPOT).all()
    np.testing.assert_allclose(o.forward, 24_100.0, rtol=1e-12)   # S·e^{rt} = F
    np.testing.assert_allclose(o.iv, 0.14, atol=1e-10)


def test_no_forward_gives_nan_with_bad_input_status(registry):
    batch = chain_ticks(24_100.0, 0.14, T, with_future=False, with_index=False)
    o = options_of(registry, batch.take(batch.instrument_token != token(24000, False)))
    no_pair = o[o.strike != 24000]                      # 23800 and 24200 still have pairs
    assert (no_pair.forward_source == ForwardSource.PARITY).all()
    calls = options_of(registry, batch.take(np.isin(batch.instrument_token,
                                                    [token(k, True) for k in STRIKES])))
    assert (calls.forward_source == ForwardSource.NONE).all()
    assert calls.iv.isna().all() and (calls.iv_status == IVStatus.BAD_INPUT).all()
    assert calls.delta.isna().all()


def test_bsm_model_uses_spot(registry):
    spot = 24_000.0
    forward = spot * math.exp(R * T)
    o = options_of(registry, chain_ticks(forward, 0.2, T, spot=spot),
                   GreeksParams(model="bsm"))
    np.testing.assert_allclose(o.iv, 0.2, atol=1e-10)
    g = greeks.greeks(spot, o.strike, T, o.iv, R, 0.0, o.is_call, model="bsm")
    np.testing.assert_allclose(o.delta, g.delta, rtol=1e-12)


def test_greeks_off_leaves_columns_missing(registry):
    result, _ = compute_window(chain_ticks(24_100.0, 0.14, T), registry,
                               Carry.initial(len(registry)), seq=1, start_ns=0, end_ns=NOW)
    o = pd.DataFrame(result.options)
    assert o.iv.isna().all() and (o.iv_status == -1).all()
    assert (o.forward_source == ForwardSource.NONE).all()


def test_time_to_expiry_calendars():
    expiry = np.array([EXPIRY, NOW - 1], np.int64)
    act = time_to_expiry(expiry, NOW)
    assert act[0] == pytest.approx((8 * 24 * 3600 + 5.5 * 3600) / (365 * 86400))
    assert act[1] < 0
    # Monday 10:00 → Tuesday Dec 1 15:30: today's session has 5.5 of 6.25 hours left,
    # then Tue 24th … Tue 1st are 6 weekdays, minus one holiday
    t252 = time_to_expiry(expiry, NOW, "trading252", holidays=("2026-11-24",))
    assert t252[0] == pytest.approx((5.5 / 6.25 + 5) / 252)
    assert t252[1] < 0
    saturday = pd.Timestamp("2026-11-28 11:00", tz="Asia/Kolkata").value
    assert time_to_expiry(expiry[:1], saturday, "trading252")[0] == pytest.approx(2 / 252)


def test_price_to_invert_prefers_a_sane_mid():
    last = np.array([10.0, 10.0, 10.0, 10.0, 10.0])
    bid = np.array([9.0, np.nan, 0.0, 11.0, 5.0])
    ask = np.array([9.5, 9.5, 9.5, 10.0, 15.0])        # ok, one-sided, no bid, crossed, wide
    np.testing.assert_array_equal(price_to_invert(last, bid, ask, 0.25),
                                  [9.25, 10.0, 10.0, 10.0, 10.0])

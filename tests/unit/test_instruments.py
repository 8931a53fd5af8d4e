"""Instrument registry from Kite's CSV format; settings from the environment."""

import io

import numpy as np
import pandas as pd
import pytest

from vectorticks.columns import MISSING_INT
from vectorticks.config import Settings
from vectorticks.errors import InstrumentError
from vectorticks.instruments import InstrumentRegistry, Kind

CSV = """instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
260105,1016,NIFTY BANK,NIFTY BANK,0,,0,0,0,EQ,INDICES,NSE
256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE
408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE
13238786,51714,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.05,75,FUT,NFO-FUT,NFO
13300226,51954,NIFTY27JANFUT,NIFTY,0,2027-01-27,0,0.05,75,FUT,NFO-FUT,NFO
10000002,39062,NIFTY26D0124000CE,NIFTY,0,2026-12-01,24000,0.05,75,CE,NFO-OPT,NFO
10000258,39063,NIFTY26D0124000PE,NIFTY,0,2026-12-01,24000.0,0.05,75,PE,NFO-OPT,NFO
10100002,39454,NIFTY27JAN24000CE,NIFTY,0,2027-01-27,24000,0.05,75,CE,NFO-OPT,NFO
10200002,39845,NIFTY27FEB24000CE,NIFTY,0,2027-02-24,24000,0.05,75,CE,NFO-OPT,NFO
10300002,40236,BANKNIFTY26D0152000CE,BANKNIFTY,0,2026-12-01,52000,0.05,35,CE,NFO-OPT,NFO
10400002,40627,INFY26DEC1500CE,INFY,0,2026-12-29,1500,0.05,400,CE,NFO-OPT,NFO
"""


@pytest.fixture(scope="module")
def registry():
    return InstrumentRegistry.from_csv(io.StringIO(CSV))


def row(reg, token):
    return reg.rows_of(np.array([token]))[0]


def test_sorted_by_token_and_rows_of(registry):
    assert (np.diff(registry.token.astype(np.int64)) > 0).all()
    rows = registry.rows_of(np.array([256265, 5, 10000002, 4294967295]))
    assert registry.token[rows[0]] == 256265 and registry.token[rows[2]] == 10000002
    assert rows[1] == -1 and rows[3] == -1


@pytest.mark.parametrize("n", [0, 1, 7, 5000, 40_000])
def test_rows_of_equals_a_search_of_the_sorted_tokens(n):
    from vectorticks.instruments import _rows_of, _token_table

    rng = np.random.default_rng(n)
    # Random tokens, and runs of consecutive ones (Kite's are exchange_token << 8 | segment:
    # neighbours differ in the low bits, where a poor hash would cluster them).
    token = np.unique(np.concatenate([
        rng.integers(0, 2**32, n // 2, dtype=np.uint64),
        (rng.integers(0, 2**24) << 8) + 256 * np.arange(n - n // 2, dtype=np.uint64),
    ]).astype(np.uint32))
    probes = np.concatenate([token, rng.integers(0, 2**32, 3 * n + 10, dtype=np.uint64)
                             .astype(np.uint32), np.array([0, 2**32 - 1], np.uint32)])
    at = np.searchsorted(token, probes)
    found = (at < len(token)) & (token[np.minimum(at, max(len(token) - 1, 0))] == probes) \
        if len(token) else np.zeros(len(probes), bool)
    expected = np.where(found, at, -1)
    np.testing.assert_array_equal(_rows_of(probes, *_token_table(token)), expected)


def test_a_token_listed_twice_maps_to_its_first_row():
    from vectorticks.instruments import _rows_of, _token_table

    token = np.array([5, 9, 9, 12], np.uint32)
    np.testing.assert_array_equal(_rows_of(np.array([9, 12, 7], np.uint32),
                                           *_token_table(token)), [1, 3, -1])


def test_kinds(registry):
    kinds = dict(zip(registry.tradingsymbol, registry.kind, strict=True))
    assert kinds["NIFTY 50"] == Kind.INDEX and kinds["INFY"] == Kind.EQUITY
    assert kinds["NIFTY26DECFUT"] == Kind.FUTURE
    assert kinds["NIFTY26D0124000CE"] == Kind.CALL and kinds["NIFTY26D0124000PE"] == Kind.PUT


def test_option_links_underlying_future_strike_expiry(registry):
    r = row(registry, 10000258)
    assert registry.underlying_token[r] == 256265           # NIFTY → "NIFTY 50"
    assert registry.future_token[r] == 13238786             # next future on/after expiry
    assert registry.strike[r] == 24000.0
    assert registry.expiry_ns[r] == pd.Timestamp("2026-12-01 15:30", tz="Asia/Kolkata").value
    assert registry.future_token[row(registry, 10100002)] == 13300226  # same-day future
    assert registry.future_token[row(registry, 10200002)] == 13300226  # none later: last one
    assert registry.underlying_token[row(registry, 10300002)] == 260105  # BANKNIFTY
    assert registry.future_token[row(registry, 10300002)] == 0           # no BANKNIFTY future
    assert registry.underlying_token[row(registry, 10400002)] == 408065  # stock option
    assert registry.underlying_token[row(registry, 13238786)] == 256265  # future → index
    assert registry.expiry_ns[row(registry, 256265)] == MISSING_INT
    assert np.isnan(registry.strike[row(registry, 256265)])


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.replace("instrument_token,", "token,"), "lacks columns"),
    (lambda s: s.replace("260105,", "abc,"), "integer"),
    (lambda s: s.replace("408065,", "260105,"), "duplicate"),
    (lambda s: s.replace("2026-12-01,24000,", ",24000,", 1), "no expiry"),
    (lambda s: s.replace("2026-12-01,24000,", "2026-12-01,0,", 1), "no positive strike"),
    (lambda s: s.replace("260105,", "-1,"), "uint32"),
])
def test_malformed_instruments_raise(mutate, message):
    with pytest.raises(InstrumentError, match=message):
        InstrumentRegistry.from_csv(io.StringIO(mutate(CSV)))


def test_missing_file_raises_instrument_error(tmp_path):
    with pytest.raises(InstrumentError):
        InstrumentRegistry.from_csv(tmp_path / "nope.csv")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("VECTORTICKS_TICK_BATCH_WINDOW_MS", "250")
    monkeypatch.setenv("VECTORTICKS_TICK_BATCH_MAX_SIZE", "777")
    monkeypatch.setenv("VECTORTICKS_REDIS_URL", "rediss://u:secret@h:6380/1")
    s = Settings()
    assert (s.tick_batch_window_ms, s.tick_batch_max_size, s.window_ns) == (250, 777, 250 * 10**6)
    assert s.sink_kind == "stream"
    assert "secret" not in repr(s)                          # credentials never printed
    assert s.redis_url.get_secret_value() == "rediss://u:secret@h:6380/1"


def test_settings_defaults_and_validation(monkeypatch):
    for k in ("VECTORTICKS_REDIS_URL", "VECTORTICKS_SINK"):
        monkeypatch.delenv(k, raising=False)
    s = Settings()
    assert (s.tick_batch_window_ms, s.sink_kind, s.outbox_overflow) == (100, "file", "drop_oldest")
    with pytest.raises(ValueError, match="redis_url"):
        Settings(sink="pubsub")
    with pytest.raises(ValueError):
        Settings(tick_batch_window_ms=0)

"""SyntheticMarket: Kite-format instruments, registry links, determinism, arrival process,
and the economics of the generated ticks (tick grid, spreads, volumes, put-call parity)."""

import io
import math
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from vectorticks.columns import MISSING_INT, TICK_COLUMNS, TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.errors import ConfigError
from vectorticks.instruments import INDEX_SYMBOLS, KITE_CSV_COLUMNS, InstrumentRegistry, Kind
from vectorticks.masks import Limits
from vectorticks.sources import DEFAULT_START_NS, SyntheticMarket

MS = 1_000_000
S = 1_000_000_000
IST = timezone(timedelta(hours=5, minutes=30))
INDEX_TOKENS = {"NIFTY 50": 256265, "NIFTY BANK": 260105, "NIFTY FIN SERVICE": 257801,
                "NIFTY MID SELECT": 288009}
GRID = {"NIFTY": 50, "BANKNIFTY": 100, "FINNIFTY": 50, "MIDCPNIFTY": 25}


@pytest.fixture(scope="module")
def market():
    return SyntheticMarket(5000, seed=7)


@pytest.fixture(scope="module")
def session():
    """Two seconds of a 300-instrument market in 10 ms steps, and the market itself."""
    m = SyntheticMarket(300, rate=40_000, seed=5)
    start = m.now_ns
    batches = list(m.batches(2.0, 10 * MS))
    return m, start, batches


def is_tick_multiple(prices, tick=0.05):
    steps = prices / tick
    return np.abs(steps - np.round(steps)) < 1e-6


def rows(registry, tokens):
    r = registry.rows_of(tokens)
    assert (r >= 0).all()
    return r


# -- instruments ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 17, 20, 21, 100, 1001, 5000])
def test_exact_instrument_count_and_kinds(n):
    m = SyntheticMarket(n, seed=1)
    frame = m.instruments
    assert list(frame.columns) == list(KITE_CSV_COLUMNS)
    assert len(frame) == len(m.registry) == n
    assert frame["instrument_token"].is_unique and frame["tradingsymbol"].is_unique
    kinds = np.bincount(m.registry.kind, minlength=5)
    assert kinds[Kind.INDEX] == 4 and kinds[Kind.FUTURE] == 12 and kinds[Kind.EQUITY] == 0
    assert kinds[Kind.CALL] + kinds[Kind.PUT] == n - 16
    assert kinds[Kind.CALL] - kinds[Kind.PUT] == (n - 16) % 2     # CE and PE per strike
    if n >= 100:
        per_name = frame[frame["segment"] == "NFO-OPT"].groupby("name").size()
        assert per_name.idxmax() == "NIFTY"
        assert per_name.drop("NIFTY").idxmax() == "BANKNIFTY"
        assert set(per_name.index) == set(GRID)


def test_indices_are_kite_rows(market):
    idx = market.instruments[market.instruments["segment"] == "INDICES"]
    assert dict(zip(idx["tradingsymbol"], idx["instrument_token"], strict=True)) \
        == INDEX_TOKENS
    assert (idx["name"] == idx["tradingsymbol"]).all()
    assert (idx["exchange"] == "NSE").all() and (idx["instrument_type"] == "EQ").all()
    assert (idx["expiry"] == "").all() and (idx["strike"] == 0).all()
    assert (idx["tick_size"] == 0).all() and (idx["lot_size"] == 0).all()
    token = idx["instrument_token"].to_numpy()
    assert (idx["exchange_token"].to_numpy() == token >> 8).all()
    assert (token & 0xFF == 9).all()                              # segment byte: indices


def test_derivatives_are_kite_rows(market):
    frame = market.instruments
    der = frame[frame["exchange"] == "NFO"]
    assert len(der) == 4996
    assert (der["instrument_token"].to_numpy()
            == (der["exchange_token"].to_numpy() << 8) | 2).all()  # segment byte: NFO
    assert (der["tick_size"] == 0.05).all()
    lots = der.groupby("name")["lot_size"].unique()
    assert {k: list(v) for k, v in lots.items()} == {
        "NIFTY": [75], "BANKNIFTY": [35], "FINNIFTY": [65], "MIDCPNIFTY": [140]}
    assert set(der["name"]) <= set(INDEX_SYMBOLS)
    start = datetime.fromtimestamp(DEFAULT_START_NS / S, IST).date()
    expiries = pd.to_datetime(der["expiry"], format="%Y-%m-%d").dt.date
    assert (expiries > start).all()

    fut = der[der["instrument_type"] == "FUT"]
    assert (fut["segment"] == "NFO-FUT").all()
    assert fut.groupby("name").size().to_dict() == dict.fromkeys(GRID, 3)
    nifty_fut = fut[fut["name"] == "NIFTY"]
    assert nifty_fut["tradingsymbol"].tolist() == ["NIFTY26NOVFUT", "NIFTY26DECFUT",
                                                   "NIFTY27JANFUT"]
    assert nifty_fut["expiry"].tolist() == ["2026-11-24", "2026-12-29", "2027-01-26"]

    opt = der[der["segment"] == "NFO-OPT"]
    assert set(opt["instrument_type"]) == {"CE", "PE"}
    assert (opt["strike"] > 0).all()
    assert (opt["strike"] % opt["name"].map(GRID) == 0).all()
    # NIFTY: weekly and monthly expiries; the others monthly only
    nifty_expiries = sorted(set(opt.loc[opt["name"] == "NIFTY", "expiry"]))
    assert nifty_expiries == ["2026-11-24", "2026-12-01", "2026-12-08", "2026-12-15",
                              "2026-12-29", "2027-01-26"]
    assert sorted(set(opt.loc[opt["name"] == "BANKNIFTY", "expiry"])) == [
        "2026-11-24", "2026-12-29", "2027-01-26"]
    symbols = set(opt["tradingsymbol"])
    weekly = opt[(opt["name"] == "NIFTY") & (opt["expiry"] == "2026-12-01")].iloc[0]
    assert weekly["tradingsymbol"] == f"NIFTY26D01{int(weekly['strike'])}CE"
    monthly = opt[(opt["name"] == "NIFTY") & (opt["expiry"] == "2026-12-29")].iloc[0]
    assert monthly["tradingsymbol"] == f"NIFTY26DEC{int(monthly['strike'])}CE"
    # both sides of the chain exist around the money
    for name in GRID:
        chain = opt[(opt["name"] == name) & (opt["expiry"] == "2026-12-29")]
        assert chain.groupby("strike").size().eq(2).mean() > 0.99
        middle = int(chain["strike"].sort_values().iloc[len(chain) // 2])
        assert {f"{name}26DEC{middle}CE", f"{name}26DEC{middle}PE"} <= symbols


def test_registry_links_every_option_to_its_index_and_a_future(market):
    reg = market.registry
    opt = np.flatnonzero(reg.is_option)
    index_token = {s: INDEX_TOKENS[INDEX_SYMBOLS[s]] for s in GRID}
    assert (reg.underlying_token[opt] == [index_token[n] for n in reg.name[opt]]).all()
    fut_rows = rows(reg, reg.future_token[opt])
    assert (reg.kind[fut_rows] == Kind.FUTURE).all()
    assert (reg.name[fut_rows] == reg.name[opt]).all()
    # the future expires with or after the option, else it is the last one of its name
    last_fut = {n: reg.expiry_ns[(reg.kind == Kind.FUTURE) & (reg.name == n)].max()
                for n in GRID}
    later = reg.expiry_ns[fut_rows] >= reg.expiry_ns[opt]
    is_last = reg.expiry_ns[fut_rows] == [last_fut[n] for n in reg.name[opt]]
    assert (later | is_last).all()
    # monthly options use the future of their own expiry
    same = np.isin(reg.expiry_ns[opt], reg.expiry_ns[reg.kind == Kind.FUTURE])
    assert (reg.expiry_ns[fut_rows][same] == reg.expiry_ns[opt][same]).all()
    fut = np.flatnonzero(reg.kind == Kind.FUTURE)
    assert (reg.underlying_token[fut] == [index_token[n] for n in reg.name[fut]]).all()
    expiry = market.instruments.set_index("instrument_token").loc[reg.token[opt], "expiry"]
    at_1530_ist = {e: pd.Timestamp(f"{e} 15:30", tz="Asia/Kolkata").value for e in set(expiry)}
    assert (reg.expiry_ns[opt] == expiry.map(at_1530_ist).to_numpy()).all()


@pytest.mark.parametrize("target", ["path", "stream"])
def test_csv_round_trip_gives_the_same_registry(market, tmp_path, target):
    if target == "path":
        path = tmp_path / "instruments.csv"
        market.write_instruments_csv(path)
        assert path.read_text().splitlines()[0] == ",".join(KITE_CSV_COLUMNS)
        loaded = InstrumentRegistry.from_csv(path)
    else:
        buf = io.StringIO()
        market.write_instruments_csv(buf)
        loaded = InstrumentRegistry.from_csv(io.StringIO(buf.getvalue()))
    reg = market.registry
    for field in ("token", "kind", "underlying_token", "future_token", "expiry_ns",
                  "tick_size", "lot_size", "tradingsymbol", "name"):
        assert np.array_equal(getattr(loaded, field), getattr(reg, field)), field
    assert np.array_equal(loaded.strike, reg.strike, equal_nan=True)
    opt = reg.is_option
    assert (loaded.underlying_token[opt] != 0).all() and (loaded.future_token[opt] != 0).all()


def test_instruments_follow_the_start_date():
    tuesday = int(datetime(2027, 3, 30, 10, 0, tzinfo=IST).timestamp()) * S  # monthly expiry
    m = SyntheticMarket(200, seed=2, start_ns=tuesday)
    assert m.now_ns == tuesday
    expiries = sorted(set(m.instruments["expiry"]) - {""})
    assert expiries[0] == "2027-04-06"                 # the next Tuesday, not today
    fut = m.instruments[m.instruments["instrument_type"] == "FUT"]
    assert sorted(set(fut["expiry"])) == ["2027-04-27", "2027-05-25", "2027-06-29"]
    assert (m.next_batch(tuesday + 10 * MS).received_ns >= tuesday).all()


def test_default_start_is_fixed_not_the_wall_clock():
    assert DEFAULT_START_NS == int(datetime(2026, 11, 23, 3, 45, tzinfo=UTC)
                                   .timestamp()) * S
    assert SyntheticMarket(20).now_ns == DEFAULT_START_NS
    assert datetime.fromtimestamp(DEFAULT_START_NS / S, IST).date() == date(2026, 11, 23)


def test_large_markets_add_expiries_and_keep_strikes_positive():
    m = SyntheticMarket(30_000, seed=4, rate=1000)
    opt = m.instruments[m.instruments["segment"] == "NFO-OPT"]
    assert len(opt) == 30_000 - 16
    assert (opt["strike"] > 0).all()
    assert opt.groupby("name")["expiry"].nunique().min() > 3
    assert len(m.next_batch(m.now_ns + 100 * MS)) > 0


def test_invalid_arguments():
    with pytest.raises(ConfigError):
        SyntheticMarket(15)
    with pytest.raises(ConfigError):
        SyntheticMarket(100, rate=-1.0)
    with pytest.raises(ConfigError):
        SyntheticMarket(100, burst_factor=0.0)
    m = SyntheticMarket(20)
    m.next_batch(m.now_ns + MS)
    with pytest.raises(ConfigError, match="backwards"):
        m.next_batch(m.now_ns - 1)
    with pytest.raises(ConfigError):
        m.batches(1.0, step_ns=0)


# -- determinism and the clock ----------------------------------------------------------


def same_batches(a, b):
    return len(a) == len(b) and all(
        np.array_equal(getattr(x, c.name), getattr(y, c.name),
                       equal_nan=c.dtype.kind == "f")
        for x, y in zip(a, b, strict=True) for c in TICK_COLUMNS)


def run(seed, steps_ms=(10, 30, 1, 100, 250, 7)):
    m = SyntheticMarket(500, rate=30_000, seed=seed, burst_probability=2.0)
    return m, [m.next_batch(m.now_ns + s * MS) for s in steps_ms]


def test_same_seed_same_batches_other_seed_other_batches():
    m1, a = run(3)
    m2, b = run(3)
    _, c = run(4)
    assert sum(len(x) for x in a) > 2000
    assert same_batches(a, b)
    assert m1.instruments.equals(m2.instruments)
    assert not same_batches(a, c)
    assert not np.array_equal(a[-1].last_price[:50], c[-1].last_price[:50])


def test_next_batch_covers_the_interval_in_receive_order():
    m = SyntheticMarket(200, rate=50_000, seed=9)
    prev = m.now_ns
    seen = 0
    for step in [1, 10 * MS, 3 * MS, 0, 100 * MS, 7, 50 * MS, S]:
        until = prev + step
        b = m.next_batch(until)
        assert m.now_ns == until
        r = b.received_ns
        assert (r >= prev).all() and (r < until).all()
        assert (np.diff(r) >= 0).all()
        if step == 0:
            assert len(b) == 0
        seen += len(b)
        prev = until
    assert seen > 10_000


def test_batches_cover_the_requested_span(session):
    m, start, batches = session
    assert len(batches) == 200
    assert m.now_ns == start + 2 * S
    r = np.concatenate([b.received_ns for b in batches])
    assert r.min() >= start and r.max() < start + 2 * S and (np.diff(r) >= 0).all()
    lengths = [len(b) for b in SyntheticMarket(20, rate=1000).batches(0.025, 10 * MS)]
    assert len(lengths) == 3                           # 10 + 10 + 5 ms


def test_tick_rate_matches_rate_without_bursts():
    rate, seconds = 10_000.0, 100.0
    m = SyntheticMarket(50, rate=rate, seed=11, burst_probability=0)
    counts = np.array([len(b) for b in m.batches(seconds, 100 * MS)])
    mean = rate * seconds
    assert abs(counts.sum() - mean) < 5 * math.sqrt(mean)     # Poisson: sd = sqrt(mean)
    # per 100 ms window: Poisson(1000), so the dispersion index is about 1
    assert 0.8 < counts.var() / counts.mean() < 1.2
    assert counts.max() < 1000 + 6 * math.sqrt(1000)


def test_bursts_raise_the_rate_but_rate_stays_the_long_run_mean():
    rate, seconds = 10_000.0, 100.0
    m = SyntheticMarket(50, rate=rate, seed=11, burst_probability=5.0,
                        burst_duration_s=0.1, burst_factor=5.0)
    counts = np.array([len(b) for b in m.batches(seconds, 100 * MS)])
    # empirical sd of the total over seeds is 1.7 %: this bound is about 5 sd
    assert abs(counts.sum() / (rate * seconds) - 1) < 0.09
    quiet = rate / (1 + 4 * (1 - math.exp(-0.5)))
    assert counts.min() < 1.2 * quiet * 0.1           # some windows without a burst
    assert counts.max() > 3.0 * quiet * 0.1           # and windows inside one
    assert counts.var() / counts.mean() > 10           # far from Poisson


def test_tick_weights_favour_futures_and_near_the_money(market):
    b = TickBatch.concat(list(market.batches(1.0, 100 * MS)))
    reg = market.registry
    per_row = np.bincount(rows(reg, b.instrument_token), minlength=len(reg))
    kind = reg.kind
    option_mean = per_row[reg.is_option].mean()
    near_month = (kind == Kind.FUTURE) & (reg.expiry_ns == reg.expiry_ns[kind == Kind.FUTURE]
                                          .min())
    assert per_row[near_month].min() > 5 * option_mean
    # NIFTY options of the nearest monthly expiry: ATM strikes tick more than far ones
    nifty = reg.is_option & (reg.name == "NIFTY") & (reg.expiry_ns == reg.expiry_ns[
        reg.is_option & (reg.name == "NIFTY")].min())
    spot = b.last_price[b.instrument_token == INDEX_TOKENS["NIFTY 50"]][-1]
    dist = np.abs(reg.strike - spot)
    near = nifty & (dist < 300)
    far = nifty & (dist > 2000)
    assert near.sum() >= 10 and far.sum() >= 10
    assert per_row[near].mean() > 10 * per_row[far].mean()


@pytest.mark.parametrize("rate", [2_000, 200_000])
def test_indices_tick_about_once_a_second_at_any_rate(rate):
    # As NSE disseminates them; at a derivative's pace an index would repeat its level
    # within one whole exchange second, which validation rightly quarantines as DUPLICATE.
    m = SyntheticMarket(200, rate=rate, seed=11, burst_probability=0)
    b = TickBatch.concat(list(m.batches(60.0, S)))
    reg = m.registry
    per_index = np.bincount(rows(reg, b.instrument_token), minlength=len(reg))[
        reg.kind == Kind.INDEX]
    assert len(per_index) == 4
    assert (per_index > 35).all() and (per_index < 90).all()  # Poisson(60): ±3.3 sd


def test_a_clean_market_quarantines_nothing():
    m = SyntheticMarket(1000, rate=100_000, seed=3)
    carry = Carry.initial(len(m.registry))
    for batch in m.batches(3.0, 100 * MS):
        window, carry = compute_window(batch, m.registry, carry, seq=1, start_ns=0, end_ns=1,
                                       validation=Limits())
        assert len(window.quarantine["reason"]) == 0


def test_exchange_timestamps_are_whole_seconds_before_receipt(session):
    m, _, batches = session
    b = TickBatch.concat(batches)
    assert (b.exchange_ts % S == 0).all()
    lag = b.received_ns - b.exchange_ts
    assert (lag >= m.latency_ns).all() and (lag < S + m.latency_ns).all()


# -- tick contents ----------------------------------------------------------------------


def test_index_ticks_carry_no_volume_oi_or_depth(session):
    m, _, batches = session
    b = TickBatch.concat(batches)
    idx = m.registry.kind[rows(m.registry, b.instrument_token)] == Kind.INDEX
    assert idx.sum() >= 4  # about one per index and second
    for name in ("volume_traded", "last_traded_quantity", "oi", "total_buy_quantity",
                 "total_sell_quantity", "bid_quantity", "ask_quantity"):
        col = getattr(b, name)
        assert (col[idx] == MISSING_INT).all(), name
        assert (col[~idx] != MISSING_INT).all(), name
    for name in ("bid_price", "ask_price", "average_traded_price"):
        col = getattr(b, name)
        assert np.isnan(col[idx]).all() and np.isfinite(col[~idx]).all(), name
    assert (b.last_price[idx] > 1000).all() and (b.prev_close[idx] > 1000).all()
    levels = pd.Series(b.last_price[idx]).groupby(b.instrument_token[idx]).agg(["min", "max"])
    assert ((levels["max"] / levels["min"]) < 1.01).all()   # two seconds of a 15 % vol walk


def test_derivative_prices_on_the_tick_grid_with_a_spread(session):
    m, _, batches = session
    b = TickBatch.concat(batches)
    der = m.registry.kind[rows(m.registry, b.instrument_token)] != Kind.INDEX
    for name in ("last_price", "bid_price", "ask_price", "prev_close"):
        p = getattr(b, name)[der]
        assert (p >= 0.05).all() and is_tick_multiple(p).all(), name
    bid, ask = b.bid_price[der], b.ask_price[der]
    assert (bid < ask).all()
    spread_ticks = np.round((ask - bid) / 0.05)
    assert set(np.unique(spread_ticks)) == {1, 2, 3, 4}
    assert (b.average_traded_price[der] > 0).all()
    lot = m.registry.lot_size[rows(m.registry, b.instrument_token[der])]
    for name in ("last_traded_quantity", "bid_quantity", "ask_quantity", "oi",
                 "total_buy_quantity", "total_sell_quantity", "volume_traded"):
        q = getattr(b, name)[der]
        assert (q >= 0).all() and (q % lot == 0).all(), name
    assert (b.last_traded_quantity[der] > 0).all() and (b.bid_quantity[der] > 0).all()


def test_volume_only_increases_per_instrument_by_lots(session):
    m, _, batches = session
    b = TickBatch.concat(batches)
    der = m.registry.kind[rows(m.registry, b.instrument_token)] != Kind.INDEX
    frame = pd.DataFrame({"token": b.instrument_token[der], "vol": b.volume_traded[der],
                          "ltq": b.last_traded_quantity[der], "last": b.last_price[der]})
    frame["lot"] = m.registry.lot_size[rows(m.registry, frame["token"].to_numpy())]
    step = frame.groupby("token")["vol"].diff().dropna()
    assert (step >= 0).all() and (step % frame.loc[step.index, "lot"] == 0).all()
    assert (step > 0).mean() > 0.5                      # most ticks are trades
    traded = step > 0
    # a trade's volume increment is its last traded quantity
    assert (step[traded] == frame.loc[step[traded].index, "ltq"]).all()
    # and volume keeps rising across batches: the last value of each batch never drops
    last_per_batch = [pd.Series(x.volume_traded, x.instrument_token).groupby(level=0).last()
                      for x in batches]
    joined = pd.concat(last_per_batch, axis=1).ffill(axis=1)
    moves = joined.diff(axis=1).iloc[:, 1:].to_numpy()
    assert (moves[np.isfinite(moves)] >= 0).all()


def test_ticks_of_one_instrument_differ_within_an_interval(market):
    b = market.next_batch(market.now_ns + 100 * MS)
    fut = market.registry.token_of("NIFTY26NOVFUT")
    mine = b.instrument_token == fut
    assert mine.sum() >= 10
    assert len(np.unique(b.last_price[mine])) > 1
    assert len(np.unique(b.bid_price[mine])) > 1
    assert b.last_price[mine].max() - b.last_price[mine].min() < 5.0   # ticks, not jumps


def test_futures_trade_at_the_carry_forward(session):
    m, _, batches = session
    reg = m.registry
    ticks = TickBatch.concat(batches)  # indices tick about once a second: their last level
    spot = {reg.name[i]: p for i, p in zip(rows(reg, ticks.instrument_token),
                                           ticks.last_price, strict=True)
            if reg.kind[i] == Kind.INDEX}
    b = batches[-1]
    r = rows(reg, b.instrument_token)
    t = b.received_ns[-1]
    checked = 0
    for i, mid in zip(r, (b.bid_price + b.ask_price) / 2, strict=True):
        if reg.kind[i] != Kind.FUTURE:
            continue
        underlying = reg.tradingsymbol[reg.rows_of(np.array([reg.underlying_token[i]]))[0]]
        if underlying not in spot:
            continue
        years = (reg.expiry_ns[i] - t) / (365 * 86400 * S)
        carry = spot[underlying] * math.exp(m.interest_rate * years)
        assert abs(mid / carry - 1) < 0.0015              # basis sd is 2 bp
        checked += 1
    assert checked >= 8


def test_put_call_parity_near_the_money():
    """C - P = e^{-rT} (F - K) on mid prices, F the same-expiry future, within a few ticks
    (each mid is within a tick of its fair value; the path moves little in 10 ms)."""
    m = SyntheticMarket(400, rate=2_000_000, seed=3, burst_probability=0)
    b = m.next_batch(m.now_ns + 10 * MS)
    reg = m.registry
    last = pd.DataFrame({"token": b.instrument_token,
                         "mid": (b.bid_price + b.ask_price) / 2}).groupby("token").last()
    r = rows(reg, last.index.to_numpy())
    last["kind"], last["strike"] = reg.kind[r], reg.strike[r]
    last["expiry"], last["future"], last["name"] = reg.expiry_ns[r], reg.future_token[r], \
        reg.name[r]
    opt = last[last["kind"] >= Kind.CALL]
    key = ["name", "expiry", "strike"]
    pairs = (opt[opt["kind"] == Kind.CALL].reset_index().set_index(key)
             .join(opt[opt["kind"] == Kind.PUT].set_index(key)[["mid"]].rename(
                 columns={"mid": "put"}), how="inner"))
    errors = []
    for (_, expiry, strike), row in pairs.iterrows():
        if row["future"] not in last.index:
            continue
        fut_row = reg.rows_of(np.array([row["future"]]))[0]
        if reg.expiry_ns[fut_row] != expiry:
            continue                                     # weekly: no future of its expiry
        forward = last.loc[row["future"], "mid"]
        if abs(forward - strike) > 0.02 * forward:
            continue
        years = (expiry - m.now_ns) / (365 * 86400 * S)
        parity = math.exp(-m.interest_rate * years) * (forward - strike)
        errors.append((row["mid"] - row["put"] - parity) / 0.05)
    errors = np.array(errors)
    assert len(errors) >= 30
    assert np.abs(errors).max() < 4.0
    assert abs(errors.mean()) < 1.0


def test_otm_puts_are_richer_than_otm_calls(market):
    """The smile's skew: at the same distance from the forward, the OTM put costs more."""
    b = TickBatch.concat(list(market.batches(1.0, 100 * MS)))
    reg = market.registry
    mid = pd.Series((b.bid_price + b.ask_price) / 2, b.instrument_token).groupby(level=0).last()
    r = rows(reg, mid.index.to_numpy())
    fut_token = reg.token_of("NIFTY26DECFUT")
    forward = mid[fut_token]
    chain = pd.DataFrame({"strike": reg.strike[r], "kind": reg.kind[r], "mid": mid.to_numpy(),
                          "expiry": reg.expiry_ns[r], "name": reg.name[r]})
    chain = chain[(chain["name"] == "NIFTY") & (chain["expiry"] == reg.expiry_ns[
        reg.rows_of(np.array([fut_token]))[0]])]
    calls = chain[chain["kind"] == Kind.CALL].set_index("strike")["mid"]
    puts = chain[chain["kind"] == Kind.PUT].set_index("strike")["mid"]
    compared = 0
    for d in range(300, 1500, 100):
        up = round((forward + d) / 50) * 50
        down = round((forward - d) / 50) * 50
        if up in calls.index and down in puts.index:
            assert puts[down] > calls[up]
            compared += 1
    assert compared >= 5

"""Kite frames and tick dicts → columns: the decoder against kiteconnect's own parser (the
oracle), malformed frames, the encoder, and the dict adapter's rejection of bad rows."""

from __future__ import annotations

import struct
import time
from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorticks.columns import MISSING_INT, TICK_COLUMNS, TickBatch
from vectorticks.errors import ConfigError, FrameError, SchemaError, VectorticksError
from vectorticks.kite import (
    DictTicks,
    decode_frame,
    encode_frame,
    frame_packet_count,
    price_divisor,
    ticks_from_dicts,
)
from vectorticks.live import (
    Frame,
    FrameQueue,
    KiteCredentials,
    _ticker_class,
    read_instruments,
    select_instruments,
    split_tokens,
)
from vectorticks.sources import SyntheticMarket

SIZES = (8, 28, 32, 44, 184)
# Every segment Kite defines (nse..indices, nco), plus ones it does not (divisor 100).
SEGMENTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 0, 10, 11, 13, 200, 255)
EXTREMES = np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 1], np.uint64)
NAT = np.iinfo(np.int64).min


@pytest.fixture(scope="module")
def ticker():
    """kiteconnect's ticker: its ``_parse_binary`` is the oracle (tests skip without it)."""
    kiteconnect = pytest.importorskip("kiteconnect")
    return kiteconnect.KiteTicker("api_key", "access_token")


# -- frame building (independent of the code under test) -------------------------------------


def random_packet(rng: np.random.Generator, size: int, segment: int) -> bytes:
    """A packet of ``size`` bytes: uint32 fields, each random or an extreme value."""
    words = rng.integers(0, 2**32, size // 4, dtype=np.uint64)
    extreme = rng.random(len(words)) < 0.3
    words[extreme] = rng.choice(EXTREMES, int(extreme.sum()))
    words[0] = (words[0] & ~np.uint64(0xFF)) | np.uint64(segment)
    return words.astype(">u4").tobytes()


def build_frame(packets: list[bytes]) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(
        struct.pack(">H", len(p)) + p for p in packets)


def random_frame(rng: np.random.Generator, n: int, sizes=SIZES) -> bytes:
    return build_frame([random_packet(rng, int(rng.choice(sizes)), int(rng.choice(SEGMENTS)))
                        for _ in range(n)])


# -- the oracle: kiteconnect's dicts → expected columns --------------------------------------


def expected_columns(ticks: list[dict]) -> dict[str, np.ndarray]:
    """What our columns must hold, read field by field from kiteconnect's tick dicts."""
    def col(get, dtype, missing):
        return np.array([missing if (v := get(t)) is None else v for t in ticks], dtype)

    def depth(side, field):
        return lambda t: t["depth"][side][0][field] if "depth" in t else None

    def epoch(t):
        ts = t.get("exchange_timestamp")
        return None if ts is None else round(ts.timestamp()) * 10**9

    return {
        "instrument_token": col(lambda t: t["instrument_token"], np.uint32, 0),
        "exchange_ts": col(epoch, np.int64, NAT),
        "last_price": col(lambda t: t["last_price"], np.float64, np.nan),
        "last_traded_quantity": col(lambda t: t.get("last_traded_quantity"), np.int64, NAT),
        "average_traded_price": col(lambda t: t.get("average_traded_price"), np.float64,
                                    np.nan),
        "volume_traded": col(lambda t: t.get("volume_traded"), np.int64, NAT),
        "total_buy_quantity": col(lambda t: t.get("total_buy_quantity"), np.int64, NAT),
        "total_sell_quantity": col(lambda t: t.get("total_sell_quantity"), np.int64, NAT),
        "oi": col(lambda t: t.get("oi"), np.int64, NAT),
        "prev_close": col(lambda t: t["ohlc"]["close"] if "ohlc" in t else None, np.float64,
                          np.nan),
        "bid_price": col(depth("buy", "price"), np.float64, np.nan),
        "bid_quantity": col(depth("buy", "quantity"), np.int64, NAT),
        "ask_price": col(depth("sell", "price"), np.float64, np.nan),
        "ask_quantity": col(depth("sell", "quantity"), np.int64, NAT),
    }


def assert_matches_ticks(ticks: list[dict], batch: TickBatch) -> None:
    """Our columns hold exactly what kiteconnect's tick dicts say, field by field."""
    assert len(ticks) == len(batch)
    expected = expected_columns(ticks)
    for name, want in expected.items():
        got = getattr(batch, name)
        assert got.dtype == want.dtype, name
        same = (got == want) | (np.isnan(got) & np.isnan(want)) if got.dtype.kind == "f" \
            else got == want
        assert same.all(), (name, np.flatnonzero(~same)[:5])
    # naive local datetimes, as kiteconnect makes them, compared as such too
    ts = [t.get("exchange_timestamp") for t in ticks]
    ours = [None if v == NAT else datetime.fromtimestamp(v // 10**9)
            for v in batch.exchange_ts.tolist()]
    assert ours == ts


def assert_matches_kiteconnect(ticker, frame: bytes, batch: TickBatch) -> None:
    assert_matches_ticks(ticker._parse_binary(frame), batch)


def test_oracle_thousands_of_random_frames(ticker):
    """Every packet kind, every segment, mixed frames, extreme values: field by field
    equal to kiteconnect's parser, and so is the dict adapter fed kiteconnect's dicts."""
    rng = np.random.default_rng(20261123)
    frames = [random_frame(rng, int(n)) for n in rng.integers(1, 16, 2500)]
    frames += [random_frame(rng, 12, sizes=(size,)) for size in SIZES for _ in range(100)]
    batches, all_ticks = [], []
    for frame in frames:
        batch = decode_frame(frame, received_ns=123)
        ticks = ticker._parse_binary(frame)
        via_dicts = ticks_from_dicts(ticks, 123)
        for name, col in batch:
            assert np.array_equal(col, getattr(via_dicts, name), equal_nan=True), name
        batches.append(batch)
        all_ticks.extend(ticks)
    batch = TickBatch.concat(batches)
    assert_matches_ticks(all_ticks, batch)
    assert (batch.received_ns == 123).all()
    assert len(frames) == 3000 and len(batch) > 25_000
    kinds = {(t["mode"], t["tradable"], "depth" in t) for t in all_ticks}
    assert kinds >= {("ltp", True, False), ("quote", False, False), ("full", False, False),
                     ("quote", True, False), ("full", True, True)}  # every packet kind
    assert set(SEGMENTS) == set((batch.instrument_token & 0xFF).tolist())


def test_every_segment_divisor_and_kind(ticker):
    """One packet per (kind, segment) with known values."""
    rows = []
    for size in SIZES:
        for seg in SEGMENTS:
            words = np.arange(1, size // 4 + 1, dtype=np.uint64) * 1_000_003
            words[0] = (77 << 8) | seg
            rows.append(words.astype(">u4").tobytes())
    frame = build_frame(rows)
    batch = decode_frame(frame, 5)
    assert_matches_kiteconnect(ticker, frame, batch)
    div = {3: 1e7, 6: 1e4, 12: 1e4}
    seg = batch.instrument_token & 0xFF
    want = np.array([div.get(int(s), 100.0) for s in seg])
    assert np.array_equal(price_divisor(batch.instrument_token), want)
    assert np.array_equal(batch.last_price, 2 * 1_000_003 / want)


def test_packet_kinds_map_to_columns():
    def packet(size: int, token: int, **fields: int) -> bytes:
        words = np.zeros(size // 4, np.uint64)
        words[0] = token
        for offset, value in fields.items():
            words[int(offset[1:]) // 4] = value
        return words.astype(">u4").tobytes()

    nifty, future = 256265, 13238786   # indices (9), nfo (2)
    frame = build_frame([
        packet(8, future, o4=2_400_005),
        packet(28, nifty, o4=2_600_010, o20=2_590_000),
        packet(32, nifty, o4=2_600_020, o20=2_590_000, o28=1_795_000_000),
        packet(44, future, o4=2_400_005, o8=75, o12=2_399_000, o16=1500, o20=300, o24=450,
               o40=2_380_000),
        packet(184, future, o4=2_400_010, o8=150, o12=2_399_100, o16=1650, o20=301, o24=451,
               o40=2_380_000, o48=90_000, o60=1_795_000_001, o64=225, o68=2_400_005,
               o124=75, o128=2_400_015),
    ])
    b = decode_frame(frame, 9)
    assert b.instrument_token.tolist() == [future, nifty, nifty, future, future]
    assert b.last_price.tolist() == [24000.05, 26000.1, 26000.2, 24000.05, 24000.1]
    assert np.isnan(b.prev_close[0]) and b.prev_close[1:].tolist() == [25900, 25900, 23800,
                                                                       23800]
    assert b.exchange_ts.tolist() == [NAT, NAT, 1_795_000_000 * 10**9, NAT,
                                      1_795_000_001 * 10**9]
    assert b.volume_traded.tolist() == [NAT, NAT, NAT, 1500, 1650]
    assert b.last_traded_quantity.tolist() == [NAT, NAT, NAT, 75, 150]
    assert b.oi.tolist() == [NAT, NAT, NAT, NAT, 90_000]
    assert b.bid_quantity.tolist()[-2:] == [NAT, 225] and b.ask_quantity[-1] == 75
    assert b.bid_price[-1] == 24000.05 and b.ask_price[-1] == 24000.15
    assert np.isnan(b.bid_price[:4]).all() and np.isnan(b.average_traded_price[:3]).all()
    assert b.total_sell_quantity[3] == 450 and b.average_traded_price[4] == 23991.0


def test_unsigned_fields_beyond_int32():
    words = np.full(46, 2**32 - 1, np.uint64)
    words[0] = 2**32 - 1          # token 4294967295, segment 255
    b = decode_frame(build_frame([words.astype(">u4").tobytes()]), 0)
    assert b.instrument_token[0] == 2**32 - 1
    assert b.volume_traded[0] == b.oi[0] == 2**32 - 1
    assert b.exchange_ts[0] == (2**32 - 1) * 10**9
    assert b.last_price[0] == (2**32 - 1) / 100


@pytest.mark.parametrize("message", [b"", b"\x00", b"\xff", b"\x00\x00"])
def test_heartbeats_and_empty_frames(message):
    b = decode_frame(message, 1)
    assert len(b) == 0 and isinstance(b, TickBatch)


def test_decode_accepts_any_buffer():
    frame = random_frame(np.random.default_rng(1), 5)
    want = decode_frame(frame, 3)
    for buf in (bytearray(frame), memoryview(frame)):
        got = decode_frame(buf, 3)
        assert all(np.array_equal(a, getattr(got, n), equal_nan=True) for n, a in want)


# -- malformed frames --------------------------------------------------------------------------


GOOD = build_frame([bytes(8), bytes(44)])  # 2 + 10 + 46 = 58 bytes

MALFORMED = [
    # frame, offset, message fragment
    (b"\x00\x01", 2, "length field runs past the end"),
    (b"\x00\x01\x00", 2, "length field runs past the end"),
    (b"\x00\x01\x00\x08" + bytes(4), 2, "packet runs past the end"),
    (b"\x00\x02\x00\x08" + bytes(8), 12, "length field runs past the end"),
    (b"\x00\x02\x00\x08" + bytes(8) + b"\x00\xb8" + bytes(100), 12, "packet runs past"),
    (b"\x00\x01\x00\x09" + bytes(9), 2, "unknown packet length"),
    (b"\x00\x01\x00\x00", 2, "unknown packet length"),
    (b"\x00\x01\xff\xff" + bytes(100), 2, "unknown packet length"),
    (b"\x00\x02\x00\x08" + bytes(8) + b"\x00\x0c" + bytes(12), 12, "unknown packet length"),
    (GOOD + b"\x00", 58, "trailing bytes"),
    (GOOD + bytes(46), 58, "trailing bytes"),
    (b"\x00\x00\x00", 2, "trailing bytes"),
    (b"\xff\xff" + GOOD[2:], 58, "length field runs past the end"),
    (b"\x00\x01" + GOOD[2:], 12, "trailing bytes"),
]


@pytest.mark.parametrize(("frame", "offset", "fragment"), MALFORMED)
def test_malformed_frames_name_the_offset(frame, offset, fragment):
    with pytest.raises(FrameError) as info:
        decode_frame(frame, 0)
    assert info.value.offset == offset
    assert f"byte offset {offset}" in str(info.value) and fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, VectorticksError)


def test_frame_packet_count():
    assert frame_packet_count(GOOD) == 2 and frame_packet_count(b"\x00") == 0


def _decode_or_frame_error(ticker, data: bytes) -> None:
    try:
        batch = decode_frame(data, 1)
    except FrameError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(data)
        return
    if len(data) >= 2:  # a frame we accept is well formed: kiteconnect reads it the same
        assert_matches_kiteconnect(ticker, data, batch)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_frame_error(ticker, data):
    _decode_or_frame_error(ticker, data)


@st.composite
def mutated_frames(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frame = bytearray(random_frame(rng, draw(st.integers(0, 8))))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "extend", "count", "length"]))
        if op == "flip" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate" and frame:
            del frame[draw(st.integers(0, len(frame) - 1)):]
        elif op == "extend":
            frame += draw(st.binary(min_size=1, max_size=200))
        elif op == "count" and len(frame) >= 2:
            frame[0:2] = struct.pack(">H", draw(st.integers(0, 65535)))
        elif op == "length" and len(frame) >= 4:
            frame[2:4] = struct.pack(">H", draw(st.sampled_from([0, 7, 8, 28, 32, 44, 184,
                                                                 185, 65535])))
    return bytes(frame)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_frames())
def test_mutated_frames_only_raise_frame_error(ticker, data):
    _decode_or_frame_error(ticker, data)


# -- encoder -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def market_batch():
    market = SyntheticMarket(400, rate=2_000, seed=11)  # 2 s: every index ticks
    return market.next_batch(market.now_ns + 2_000_000_000)


def test_encode_decode_round_trip_full(market_batch):
    b = market_batch
    got = decode_frame(encode_frame(b, "full"), 0)
    is_index = (b.instrument_token & 0xFF) == 9
    assert is_index.any() and (~is_index).any()
    for name, col in b:
        if name == "received_ns":
            continue
        assert np.array_equal(getattr(got, name), col, equal_nan=True), name


@pytest.mark.parametrize("mode", ["quote", "ltp"])
def test_encode_decode_round_trip_short_modes(market_batch, mode):
    b = market_batch
    got = decode_frame(encode_frame(b, mode), 0)
    assert np.array_equal(got.instrument_token, b.instrument_token)
    assert np.array_equal(got.last_price, b.last_price)
    assert (got.exchange_ts == MISSING_INT).all() and (got.oi == MISSING_INT).all()
    assert np.isnan(got.bid_price).all()
    if mode == "quote":
        assert np.array_equal(got.volume_traded, b.volume_traded)
        assert np.array_equal(got.prev_close, b.prev_close, equal_nan=True)
    else:
        assert (got.volume_traded == MISSING_INT).all()


def test_encode_matches_kiteconnect(ticker, market_batch):
    for mode in ("ltp", "quote", "full"):
        frame = encode_frame(market_batch, mode)
        assert_matches_kiteconnect(ticker, frame, decode_frame(frame, 0))


def test_encode_rejects_what_does_not_fit():
    b = TickBatch.from_columns(instrument_token=[13238786], received_ns=0, last_price=[-1.0])
    with pytest.raises(ValueError, match="last_price"):
        encode_frame(b)
    b = TickBatch.from_columns(instrument_token=[13238786], received_ns=0,
                               volume_traded=[2**32])
    with pytest.raises(ValueError, match="volume_traded"):
        encode_frame(b)
    with pytest.raises(ValueError, match="65535"):
        encode_frame(TickBatch.from_columns(instrument_token=np.ones(65536), received_ns=0))
    with pytest.raises(ValueError, match="mode"):
        encode_frame(b, "depth")  # type: ignore[arg-type]


# -- tick dicts --------------------------------------------------------------------------------


WHEN = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
NEW = {"instrument_token": 256265, "last_price": 24000.5, "volume_traded": 10,
       "last_traded_quantity": 75, "average_traded_price": 23990.0,
       "total_buy_quantity": 1, "total_sell_quantity": 2, "oi": 30,
       "exchange_timestamp": WHEN, "ohlc": {"close": 23900.0},
       "depth": {"buy": [{"price": 24000.0, "quantity": 150, "orders": 2}],
                 "sell": [{"price": 24001.0, "quantity": 75, "orders": 1}]}}
OLD = {"instrument_token": 256265, "last_price": 24000.5, "volume": 10, "last_quantity": 75,
       "average_price": 23990.0, "buy_quantity": 1, "sell_quantity": 2, "oi": 30,
       "timestamp": WHEN.timestamp(), "ohlc": {"close": 23900.0},
       "depth": {"buy": [{"price": 24000.0, "quantity": 150}],
                 "sell": [{"price": 24001.0, "quantity": 75}]}}


def rows_equal(a: TickBatch, b: TickBatch) -> bool:
    return all(np.array_equal(col, getattr(b, name), equal_nan=True) for name, col in a)


def test_dicts_both_key_generations_and_missing_fields():
    ltp_only = {"instrument_token": 408065, "last_price": 1500.0}
    b = ticks_from_dicts([NEW, OLD, ltp_only], received_ns=123)
    assert rows_equal(b.take([0]), b.take([1]))
    assert b.exchange_ts[0] == int(WHEN.timestamp()) * 10**9 == 1_795_406_400 * 10**9
    assert (b.bid_price[0], b.bid_quantity[0], b.ask_price[0], b.ask_quantity[0]) == (
        24000.0, 150, 24001.0, 75)
    assert b.prev_close[0] == 23900.0 and b.oi[1] == 30
    assert b.volume_traded[2] == MISSING_INT and np.isnan(b.bid_price[2])
    assert b.received_ns.tolist() == [123, 123, 123]
    assert len(ticks_from_dicts([], 0)) == 0


def test_dicts_explicit_none_falls_back_to_the_old_key():
    row = dict(NEW, volume_traded=None, volume=99)
    assert ticks_from_dicts([row], 0).volume_traded[0] == 99


def test_kiteconnect_dicts_of_mixed_shapes(ticker, market_batch):
    """LTP, quote, full and index dicts in one list (the grouped fast path) give what each
    row gives alone."""
    b = market_batch.take(slice(0, 60))
    frames = [encode_frame(b.take(slice(i, i + 20)), mode)
              for i, mode in ((0, "full"), (20, "quote"), (40, "ltp"))]
    ticks = [t for f in frames for t in ticker._parse_binary(f)]
    ticks = [ticks[i] for i in np.random.default_rng(4).permutation(len(ticks))]
    batch = ticks_from_dicts(ticks, 7)
    alone = TickBatch.concat([ticks_from_dicts([t], 7) for t in ticks])
    assert rows_equal(batch, alone)
    assert (batch.oi != MISSING_INT).sum() == ((b.instrument_token[:20] & 0xFF) != 9).sum()


def test_shaped_rows_with_a_missing_key_take_the_general_path(ticker, market_batch):
    ticks = ticker._parse_binary(encode_frame(market_batch.take(slice(0, 10)), "quote"))
    del ticks[3]["volume_traded"]
    ticks[3]["volume"] = 5  # old key generation on one row
    b = ticks_from_dicts(ticks, 0)
    assert b.volume_traded[3] == 5 and b.volume_traded[4] == ticks[4]["volume_traded"]


BAD_ROWS = [
    ({"last_price": 1.0}, "no instrument_token"),
    ({"instrument_token": None}, "no instrument_token"),
    ({"instrument_token": 1, "last_price": "12.5"}, "last_price must be a number, got str"),
    ({"instrument_token": 1, "volume_traded": 2**70}, "volume_traded"),
    ({"instrument_token": 1, "last_price": 10**400}, "last_price"),
    ({"instrument_token": -5}, "instrument_token -5"),
    ({"instrument_token": 2**32}, "instrument_token"),
    ({"instrument_token": 1, "oi": 5.5}, "oi must be a whole number"),
    ({"instrument_token": 1, "oi": MISSING_INT}, "oi"),
    ({"instrument_token": 1, "last_traded_quantity": [1]}, "must be a number, got list"),
    ({"instrument_token": 1, "ohlc": 5}, "ohlc must be a mapping"),
    ({"instrument_token": 1, "depth": {"buy": 3}}, "depth"),
    ({"instrument_token": 1, "depth": [1]}, "depth must be a mapping"),
    ({"instrument_token": 1, "exchange_timestamp": "09:15"}, "exchange_ts must be a number"),
    ("not a dict", "a tick must be a mapping, got str"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_ROWS)
def test_bad_rows_are_rejected_with_a_reason(bad, reason):
    good = {"instrument_token": 256265, "last_price": 1.0, "volume_traded": 7}
    result = ticks_from_dicts([good, bad, good], 5, errors="reject")
    assert isinstance(result, DictTicks)
    assert result.rejected.index.tolist() == [1]
    assert reason in result.rejected.reasons[0] and result.rejected.reasons[0].startswith(
        "tick 1: ")
    assert len(result.batch) == 2 and result.batch.volume_traded.tolist() == [7, 7]
    with pytest.raises(SchemaError, match="tick 1: "):
        ticks_from_dicts([good, bad, good], 5)


def test_reject_keeps_good_rows_in_order_and_summarises():
    rows = [{"instrument_token": i + 1, "last_price": float(i)} for i in range(10)]
    for i in (2, 5, 6, 9):
        rows[i] = dict(rows[i], last_price="x")
    batch, rejected = ticks_from_dicts(rows, 0, errors="reject")
    assert rejected.index.tolist() == [2, 5, 6, 9] and len(rejected) == 4
    assert batch.instrument_token.tolist() == [1, 2, 4, 5, 8, 9]
    assert rejected.summary(2).endswith("and 2 more")
    batch, rejected = ticks_from_dicts(rows[:2], 0, errors="reject")
    assert len(rejected) == 0 and rejected.summary() == "" and len(batch) == 2


def test_numpy_scalars_and_float_quantities_are_accepted():
    row = {"instrument_token": np.uint32(256265), "last_price": np.float32(1.5),
           "volume_traded": np.int64(3), "oi": 4.0, "total_buy_quantity": float("nan")}
    b = ticks_from_dicts([row], 0)
    assert (b.instrument_token[0], b.last_price[0], b.volume_traded[0], b.oi[0]) == (
        256265, 1.5, 3, 4)
    assert b.total_buy_quantity[0] == MISSING_INT


def test_invalid_errors_argument():
    with pytest.raises(ValueError, match="errors"):
        ticks_from_dicts([], 0, errors="ignore")  # type: ignore[call-overload]


VALUES = st.one_of(st.none(), st.integers(-(2**65), 2**65), st.floats(), st.text(max_size=3),
                   st.sampled_from([10**400, -(2**63), 2**63, 2**64, 2**32]),
                   st.booleans(), st.lists(st.integers(), max_size=2))
KEYS = st.sampled_from([*(k for c in TICK_COLUMNS for k in (c.name,)), "volume",
                        "last_quantity", "exchange_timestamp", "timestamp", "mode"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(KEYS, VALUES, max_size=6), max_size=8))
def test_batch_equals_rows_alone(rows):
    """Whatever the rows hold, converting them together gives the rows converted alone:
    rejected rows are the same, good rows identical (the vectorized path and the
    row-by-row checks agree)."""
    batch, rejected = ticks_from_dicts(rows, 3, errors="reject")
    alone = [ticks_from_dicts([r], 3, errors="reject") for r in rows]
    assert rejected.index.tolist() == [i for i, a in enumerate(alone) if len(a.rejected)]
    good = [a.batch for a in alone if not len(a.rejected)]
    assert rows_equal(batch, TickBatch.concat(good))


# -- live source: the parts that need no network -----------------------------------------------


@pytest.fixture(scope="module")
def instruments(tmp_path_factory):
    market = SyntheticMarket(2000, seed=2)
    path = tmp_path_factory.mktemp("csv") / "instruments.csv"
    market.write_instruments_csv(path)
    return read_instruments(path)


def test_select_instruments_by_underlying_and_expiry(instruments):
    today = date(2026, 11, 23)
    everything = select_instruments(instruments, today=today)
    assert len(everything) == len(instruments)
    nifty = select_instruments(instruments, ["nifty"], today=today)
    assert set(nifty["name"]) == {"NIFTY", "NIFTY 50"}
    assert (nifty["segment"] == "INDICES").sum() == 1
    assert set(nifty["instrument_type"]) == {"EQ", "FUT", "CE", "PE"}
    two = select_instruments(instruments, ["NIFTY", "BANKNIFTY"], expiries=1, today=today)
    options = two[two["instrument_type"].isin(["CE", "PE"])]
    assert options.groupby("name")["expiry"].nunique().to_dict() == {"BANKNIFTY": 1,
                                                                   "NIFTY": 1}
    assert (two["instrument_type"] == "FUT").sum() == 6
    nearest = sorted(nifty.loc[nifty["instrument_type"] == "CE", "expiry"].unique())[0]
    later = select_instruments(instruments, ["NIFTY"], today=date.fromisoformat(nearest)
                               + (date(2026, 1, 2) - date(2026, 1, 1)))
    assert nearest not in set(later["expiry"])          # expired contracts are dropped
    with pytest.raises(ConfigError):
        select_instruments(instruments, expiries=0, today=today)


def test_split_tokens_over_connections():
    assert split_tokens([5, 6, 7]) == [[5, 6, 7]]
    parts = split_tokens(range(7000))
    assert [len(p) for p in parts] == [2334, 2333, 2333]
    assert [t for p in parts for t in p] == list(range(7000))
    assert [len(p) for p in split_tokens(range(250), per_connection=100)] == [84, 83, 83]
    assert split_tokens([1, 1, 2]) == [[1, 2]]
    with pytest.raises(ConfigError, match="9001 instruments need 4 connections"):
        split_tokens(range(9001))
    with pytest.raises(ConfigError):
        split_tokens([])
    with pytest.raises(ConfigError):
        split_tokens([1], per_connection=3001)


def test_frame_queue_drops_the_oldest_and_counts():
    q = FrameQueue(2)
    frames = [Frame(i, 0, struct.pack(">H", 10 * i) + b"..") for i in range(1, 5)]
    for f in frames:
        q.put(f)
    assert q.dropped_frames == 2 and q.dropped_ticks == 10 + 20 and q.high_water == 2
    assert [q.get(0), q.get(0), q.get(0)] == [frames[2], frames[3], None]
    t0 = time.monotonic()
    assert q.get(0.05) is None and time.monotonic() - t0 >= 0.04


def test_credentials_from_env_are_never_shown():
    creds = KiteCredentials.from_env({"VECTORTICKS_KITE_API_KEY": "key",
                                      "VECTORTICKS_KITE_ACCESS_TOKEN": "tok3n"})
    assert creds.access_token == "tok3n" and "tok3n" not in repr(creds) + str(creds)
    with pytest.raises(ConfigError, match="VECTORTICKS_KITE_ACCESS_TOKEN") as info:
        KiteCredentials.from_env({"VECTORTICKS_KITE_API_KEY": "key"})
    assert "key" not in str(info.value).replace("KITE_API_KEY", "").replace("TOKEN", "")


def test_raw_ticker_hands_binary_messages_over_unparsed(ticker):
    cls = _ticker_class()
    ticker = cls("key", "token", root="ws://127.0.0.1:9")
    got, errors = [], []
    ticker.on_frame = got.append
    ticker.on_ticks = lambda ws, ticks: pytest.fail("kiteconnect parsed a frame")
    ticker.on_error = lambda ws, code, reason: errors.append((code, reason))
    frame = build_frame([bytes(184)])
    ticker._on_message(None, frame, True)
    ticker._on_message(None, b"\x00", True)
    ticker._on_message(None, b'{"type": "error", "data": "Invalid token"}', False)
    assert got == [frame, b"\x00"] and errors == [(0, "Invalid token")]


def test_run_needs_credentials(ticker, tmp_path, monkeypatch, capsys):
    from vectorticks.cli import main

    monkeypatch.delenv("VECTORTICKS_KITE_API_KEY", raising=False)
    monkeypatch.delenv("VECTORTICKS_KITE_ACCESS_TOKEN", raising=False)
    csv = tmp_path / "i.csv"
    SyntheticMarket(100).write_instruments_csv(csv)
    assert main(["run", "--instruments-csv", str(csv)]) == 2
    assert "VECTORTICKS_KITE_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("VECTORTICKS_KITE_API_KEY", "k")
    monkeypatch.setenv("VECTORTICKS_KITE_ACCESS_TOKEN", "t")
    assert main(["run", "--instruments-csv", str(csv), "--per-connection", "10"]) == 2
    assert "100 instruments need 10 connections" in capsys.readouterr().err

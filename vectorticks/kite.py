"""Kite ticks → columns: the binary frame decoder and the tick-dict adapter.

:func:`decode_frame` turns one binary WebSocket message of Kite's ticker (DESIGN §4) into
a :class:`~vectorticks.columns.TickBatch` in one JIT-compiled pass over the bytes: the
packet length table is walked and bounds-checked, and every packet's fields are read
straight into preallocated columns (no per-packet Python, no ``struct`` calls). It decodes
exactly what kiteconnect's own parser (``KiteTicker._parse_binary``) decodes — every field
an *unsigned* big-endian integer, prices divided per segment — but refuses what that
parser silently skips or truncates: a malformed frame raises :class:`FrameError` naming
the byte offset, and nothing of it is returned.

:func:`encode_frame` is the inverse for the fields a ``TickBatch`` carries (test servers,
benchmarks, recorded sessions). :func:`ticks_from_dicts` adapts the dicts that
kiteconnect's ``on_ticks`` delivers (both key generations: pykiteconnect renamed
``volume``→``volume_traded`` and others in 3.9.5), rejecting malformed rows one by one.

Packet layouts (offsets in bytes; all fields ``uint32`` unless noted)::

    LTP          8 B   0 token  4 last_price
    index quote 28 B   0 token  4 last_price  8 high  12 low  16 open  20 close  24 change
    index full  32 B   index quote + 28 exchange_timestamp
    quote       44 B   0 token  4 last_price  8 last_traded_quantity  12 average_traded_price
                       16 volume_traded  20 total_buy_quantity  24 total_sell_quantity
                       28 open  32 high  36 low  40 close
    full       184 B   quote + 44 last_trade_time  48 oi  52 oi_day_high  56 oi_day_low
                       60 exchange_timestamp  64 depth: 5 bid then 5 ask entries of 12 B
                       (quantity, price, orders uint16, 2 B padding)

Columns a ``TickBatch`` does not have — day open/high/low, ``change`` (derived by
kiteconnect), ``last_trade_time``, ``oi_day_high``/``oi_day_low``, depth levels 1-4 and
order counts — are not decoded; the raw frames (see :mod:`vectorticks.ticklog`) keep them.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from ._jit import jit
from .columns import MISSING_INT, TICK_COLUMNS, TickBatch
from .errors import FrameError, SchemaError

__all__ = [
    "DICT_KEYS",
    "PACKET_LENGTHS",
    "DictTicks",
    "FrameError",
    "Rejected",
    "decode_frame",
    "encode_frame",
    "frame_packet_count",
    "price_divisor",
    "ticks_from_dicts",
]

# -- binary frames ---------------------------------------------------------------------------

#: Packet length → packet kind.
PACKET_LENGTHS: Mapping[int, str] = {
    8: "ltp", 28: "index_quote", 32: "index_full", 44: "quote", 184: "full",
}

#: Segments (``token & 0xFF``) whose prices are not in paise. kiteconnect 5.x divides
#: cds (3) by 1e7 and bcd (6) and nco (12) by 1e4; every other segment by 100.
_CDS, _BCD, _NCO, _INDICES = 3, 6, 12, 9

_NS = 1_000_000_000
_MISSING = int(MISSING_INT)

# Error codes of the kernel (0 = ok), each with the offset of the faulty field.
_ERRORS = {
    1: "packet length field runs past the end of the frame",
    2: "unknown packet length",
    3: "packet runs past the end of the frame",
    4: "trailing bytes after the last packet",
}


def price_divisor(tokens: np.ndarray) -> np.ndarray:
    """The price divisor of each instrument token (float64): 1e7 for cds, 1e4 for bcd
    and nco, 100 for every other segment (kiteconnect's table)."""
    seg = np.asarray(tokens, dtype=np.uint32) & 0xFF
    return np.where(seg == _CDS, 1e7, np.where((seg == _BCD) | (seg == _NCO), 1e4, 100.0))


@jit(inline="always")
def _u32(buf: np.ndarray, p: int) -> int:
    """The big-endian uint32 at ``buf[p:p + 4]`` (as int64)."""
    return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))


@jit
def _decode_kernel(buf: np.ndarray, token: np.ndarray, flt: np.ndarray,
                   ints: np.ndarray) -> tuple[int, int]:
    """Walk the packets of ``buf`` (count already read) and decode them into ``token``,
    ``flt`` (last_price, average_traded_price, prev_close, bid_price, ask_price) and
    ``ints`` (exchange_ts, last_traded_quantity, volume_traded, total_buy_quantity,
    total_sell_quantity, oi, bid_quantity, ask_quantity). Returns (error code, offset)."""
    nb = len(buf)
    missing = np.int64(-9223372036854775808)
    nan = np.nan
    j = 2
    for i in range(len(token)):
        if j + 2 > nb:
            return 1, j
        size = (np.int64(buf[j]) << 8) | np.int64(buf[j + 1])
        if size != 8 and size != 28 and size != 32 and size != 44 and size != 184:
            return 2, j
        p = j + 2
        if p + size > nb:
            return 3, j
        t = _u32(buf, p)
        seg = t & 0xFF
        d = 1e7 if seg == 3 else (1e4 if seg == 6 or seg == 12 else 100.0)
        token[i] = t
        flt[0, i] = _u32(buf, p + 4) / d
        if size == 8:
            flt[2, i] = nan
            ints[0, i] = missing
        elif size <= 32:  # index quote / full: high, low, open, close
            flt[2, i] = _u32(buf, p + 20) / d
            ints[0, i] = _u32(buf, p + 28) * 1_000_000_000 if size == 32 else missing
        else:
            flt[2, i] = _u32(buf, p + 40) / d
        if size < 44:
            flt[1, i] = nan
            for k in range(1, 8):
                ints[k, i] = missing
            flt[3, i] = nan
            flt[4, i] = nan
        else:
            ints[1, i] = _u32(buf, p + 8)
            flt[1, i] = _u32(buf, p + 12) / d
            ints[2, i] = _u32(buf, p + 16)
            ints[3, i] = _u32(buf, p + 20)
            ints[4, i] = _u32(buf, p + 24)
            if size == 184:
                ints[5, i] = _u32(buf, p + 48)
                ints[0, i] = _u32(buf, p + 60) * 1_000_000_000
                ints[6, i] = _u32(buf, p + 64)
                flt[3, i] = _u32(buf, p + 68) / d
                ints[7, i] = _u32(buf, p + 124)
                flt[4, i] = _u32(buf, p + 128) / d
            else:
                ints[0, i] = missing
                ints[5, i] = missing
                ints[6, i] = missing
                ints[7, i] = missing
                flt[3, i] = nan
                flt[4, i] = nan
        j = p + size
    if j != nb:
        return 4, j
    return 0, j


def frame_packet_count(frame: bytes | bytearray | memoryview) -> int:
    """The packet count a frame announces (0 for a heartbeat); not validated."""
    return int.from_bytes(frame[:2], "big") if len(frame) >= 2 else 0


def decode_frame(frame: bytes | bytearray | memoryview, received_ns: int) -> TickBatch:
    """Decode one binary Kite ticker message into a :class:`TickBatch`.

    Parameters
    ----------
    frame
        The WebSocket binary message: ``uint16`` packet count, then per packet a
        ``uint16`` length and the packet. A message shorter than 2 bytes (Kite's 1-byte
        heartbeat) gives an empty batch.
    received_ns
        Local receive time (ns since the epoch) stamped on every tick.

    Returns
    -------
    TickBatch
        One row per packet in frame order. Prices are divided by the segment's divisor
        (:func:`price_divisor`); ``prev_close`` is the packet's ``close``; ``exchange_ts``
        is the exchange timestamp in ns (full modes only); bid/ask come from depth level
        0 (full mode only). Fields a packet kind lacks are missing values (index packets
        have no volume, OI or depth; LTP packets only a price).

    Raises
    ------
    FrameError
        The count or a length runs past the end, a packet length is not one of 8, 28,
        32, 44, 184, or bytes follow the last packet. ``offset`` names the byte offset
        of the fault (of the length field of the faulty packet).
    """
    buf = np.frombuffer(frame, dtype=np.uint8)
    if len(buf) < 2:
        return TickBatch.empty()
    n = (int(buf[0]) << 8) | int(buf[1])
    token = np.empty(n, np.uint32)
    flt = np.empty((5, n), np.float64)
    ints = np.empty((8, n), np.int64)
    code, offset = _decode_kernel(buf, token, flt, ints)
    if code:
        raise FrameError(f"malformed Kite frame ({len(buf)} bytes, {n} packets announced): "
                         f"{_ERRORS[code]} at byte offset {offset}", offset)
    return TickBatch(
        instrument_token=token, received_ns=np.full(n, received_ns, np.int64),
        exchange_ts=ints[0], last_price=flt[0], last_traded_quantity=ints[1],
        average_traded_price=flt[1], volume_traded=ints[2], total_buy_quantity=ints[3],
        total_sell_quantity=ints[4], oi=ints[5], prev_close=flt[2], bid_price=flt[3],
        bid_quantity=ints[6], ask_price=flt[4], ask_quantity=ints[7])


Mode = Literal["ltp", "quote", "full"]

# Words (uint32 positions) of each packet layout that a TickBatch fills, by column.
_INDEX_WORDS = {"last_price": 1, "prev_close": 5, "exchange_ts": 7}
_QUOTE_WORDS = {"last_price": 1, "last_traded_quantity": 2, "average_traded_price": 3,
                "volume_traded": 4, "total_buy_quantity": 5, "total_sell_quantity": 6,
                "prev_close": 10, "oi": 12, "exchange_ts": 15, "bid_quantity": 16,
                "bid_price": 17, "ask_quantity": 31, "ask_price": 32}
_PRICES = frozenset({"last_price", "average_traded_price", "prev_close", "bid_price",
                     "ask_price"})
_U32_MAX = 2**32 - 1


def _packet_words(batch: TickBatch, rows: np.ndarray, size: int) -> np.ndarray:
    """The packets of ``rows`` as a (rows, size / 4) uint32 matrix (native order)."""
    words = np.zeros((len(rows), size // 4), np.uint32)
    token = batch.instrument_token[rows]
    words[:, 0] = token
    div = price_divisor(token)
    layout = _QUOTE_WORDS if size >= 44 else _INDEX_WORDS
    for name, w in layout.items():
        if w >= size // 4:
            continue
        col = getattr(batch, name)[rows]
        if name in _PRICES:
            scaled = np.round(col * div)
            valid = np.isfinite(scaled)
        elif name == "exchange_ts":
            valid = col != MISSING_INT
            scaled = np.floor_divide(col, _NS, where=valid, out=np.zeros(len(col), np.int64))
        else:
            valid = col != MISSING_INT
            scaled = col
        if (valid & ((scaled < 0) | (scaled > _U32_MAX))).any():
            raise ValueError(f"{name} does not fit the packet's unsigned 32-bit field")
        words[:, w] = np.where(valid, scaled, 0).astype(np.uint32)
    return words


def encode_frame(batch: TickBatch, mode: Mode = "full") -> bytes:
    """Encode ticks as one Kite binary frame (the inverse of :func:`decode_frame` for the
    columns a ``TickBatch`` has).

    Indices (segment 9) become index packets (28 B in quote mode, 32 B in full mode), all
    other instruments quote (44 B) or full (184 B) packets; ``ltp`` mode gives 8 B
    packets for all. Prices are multiplied by the segment divisor and rounded; missing
    values, the day open/high/low, ``change``, ``last_trade_time``, day OI range, depth
    levels 1-4 and order counts are written as 0.

    Raises
    ------
    ValueError
        More than 65,535 ticks, or a value outside its unsigned 32-bit field.
    """
    n = len(batch)
    if n > 0xFFFF:
        raise ValueError(f"a frame holds at most 65535 packets, got {n}")
    is_index = (batch.instrument_token & 0xFF) == _INDICES
    if mode == "ltp":
        sizes = np.full(n, 8, np.int64)
    elif mode == "quote":
        sizes = np.where(is_index, 28, 44)
    elif mode == "full":
        sizes = np.where(is_index, 32, 184)
    else:
        raise ValueError(f"mode must be 'ltp', 'quote' or 'full', got {mode!r}")
    starts = 2 + np.cumsum(sizes + 2) - (sizes + 2)  # offset of each length prefix
    buf = np.zeros(2 + int((sizes + 2).sum()), np.uint8)
    buf[0], buf[1] = n >> 8, n & 0xFF
    buf[starts] = sizes >> 8
    buf[starts + 1] = sizes & 0xFF
    for size in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == size)
        body = _packet_words(batch, rows, size).astype(">u4").view(np.uint8)
        buf[(starts[rows] + 2)[:, None] + np.arange(size)] = body.reshape(len(rows), size)
    return buf.tobytes()


# -- tick dicts ------------------------------------------------------------------------------

#: Tick column → dict keys that carry it, newest generation first.
DICT_KEYS: Mapping[str, tuple[str, ...]] = {
    "instrument_token": ("instrument_token",),
    "last_price": ("last_price",),
    "last_traded_quantity": ("last_traded_quantity", "last_quantity"),
    "average_traded_price": ("average_traded_price", "average_price"),
    "volume_traded": ("volume_traded", "volume"),
    "total_buy_quantity": ("total_buy_quantity", "buy_quantity"),
    "total_sell_quantity": ("total_sell_quantity", "sell_quantity"),
    "oi": ("oi",),
    "exchange_ts": ("exchange_timestamp", "timestamp"),
}

_DTYPES = {c.name: c.dtype for c in TICK_COLUMNS}
_MISSING_OF = {c.name: c.missing for c in TICK_COLUMNS}
_INT64_MAX = 2**63 - 1
_EMPTY: Mapping[str, Any] = {}
_NO_LEVELS = (_EMPTY,)
_TOKEN = "instrument_token"
_FLOAT_COLUMNS = tuple(c.name for c in TICK_COLUMNS if c.dtype.kind == "f")
_INT_COLUMNS = tuple(c.name for c in TICK_COLUMNS if c.dtype == np.int64
                     and c.name != "received_ns")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Rows of a tick-dict batch refused by :func:`ticks_from_dicts`.

    ``index`` holds their positions in the input (ascending, int64), ``reasons`` one
    message per position naming the row, the field and the offending type or value.
    """

    index: np.ndarray
    reasons: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.reasons)

    def summary(self, limit: int = 3) -> str:
        """The first ``limit`` reasons joined, with a count of the rest."""
        text = "; ".join(self.reasons[:limit])
        more = len(self.reasons) - limit
        return f"{text}; and {more} more" if more > 0 else text


class DictTicks(NamedTuple):
    """What ``ticks_from_dicts(..., errors="reject")`` returns: the good rows (input order
    kept) and the rejected ones."""

    batch: TickBatch
    rejected: Rejected


class _NotShaped(Exception):
    """Rows are not all shaped like the first one (fall back to the general path)."""


# Values → columns ----------------------------------------------------------------------------


def _fast_column(name: str, values: list[Any], *, allow_missing: bool = False
                 ) -> np.ndarray | None:
    """One C-speed conversion, or ``None`` where it does not apply.

    ``array.array`` is both the conversion and the type check: ``"d"`` takes ints and
    floats, the integer codes ints only; all raise on ``None``, strings and containers
    (a ``bool``, being an ``int``, passes). Integers go through the unsigned codes first
    (CPython converts those several times faster), negative ones through ``"q"``."""
    kind = _DTYPES[name].kind
    try:
        if kind == "f":
            return np.frombuffer(array("d", values), np.float64)
        if kind == "u":
            return np.frombuffer(array("I", values), np.uint32)
        try:
            a = np.frombuffer(array("Q", values), np.uint64)
        except OverflowError:  # a negative value
            a = np.frombuffer(array("q", values), np.int64)
            if not allow_missing and len(a) and a.min() == _MISSING:
                return None  # the missing sentinel itself is not a value
            return a
    except (TypeError, OverflowError):
        return None
    if len(a) and a.max() > _INT64_MAX:
        return None
    return a.view(np.int64)


def _check_value(name: str, v: Any) -> str | None:
    """Why one (non-``None``) value cannot go into column ``name`` (``None`` if it can).
    The same rules as the fast path: ints and floats (a ``bool`` is an ``int``)."""
    if not isinstance(v, int | float | np.integer | np.floating | np.bool_):
        return f"{name} must be a number, got {type(v).__name__}"
    kind = _DTYPES[name].kind
    if kind == "f":
        try:
            float(v)
        except OverflowError:
            return f"{name} {v} does not fit a 64-bit float"
        return None
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            return None  # a NaN/inf quantity is missing, as in TickBatch.from_columns
        if v != int(v):
            return f"{name} must be a whole number, got {v!r}"
    v = int(v)
    if kind == "u":
        if not 0 <= v <= _U32_MAX:
            return f"{name} {v} is outside 0..{_U32_MAX}"
    elif not _MISSING < v <= _INT64_MAX:  # the smallest int64 is the missing value
        return f"{name} {v} does not fit a 64-bit integer"
    return None


def _slow_column(name: str, values: list[Any], bad: dict[int, str]) -> np.ndarray:
    """Row by row: ``None`` is missing (a bad row for the token), a bad value marks its
    row in ``bad`` (the first reason per row is kept) and leaves the missing value."""
    dtype = _DTYPES[name]
    out = np.full(len(values), _MISSING_OF[name], dtype)
    for i, v in enumerate(values):
        if v is None:
            if name == _TOKEN:
                bad.setdefault(i, "no instrument_token")
            continue
        reason = _check_value(name, v)
        if reason is not None:
            bad.setdefault(i, reason)
        elif dtype.kind == "f":
            out[i] = v
        elif not isinstance(v, float | np.floating) or np.isfinite(v):
            out[i] = int(v)
    return out


def _convert(name: str, values: list[Any], bad: dict[int, str]) -> np.ndarray | None:
    """Values (``None`` = missing) → the column; ``None`` if every value is missing.
    Fast path first; with missing values, fast path on the filled-in list; row by row
    only when a value has the wrong type or range."""
    fast = _fast_column(name, values)
    if fast is not None:
        return fast
    nones = values.count(None)
    if nones == len(values) and name != _TOKEN:
        return None
    if nones and name != _TOKEN:
        fill = _MISSING_OF[name]
        fast = _fast_column(name, [fill if v is None else v for v in values],
                            allow_missing=True)
        # (an integer column must not hold the missing sentinel as a value)
        if fast is not None and (fast.dtype.kind == "f"
                                 or np.count_nonzero(fast == _MISSING) == nones):
            return fast
    return _slow_column(name, values, bad)


def _epoch_ns(value: Any) -> Any:
    """A datetime (aware, or naive in local time as kiteconnect makes them) or epoch
    seconds → ns; anything else passes through for the type check."""
    if isinstance(value, datetime):
        return int(value.timestamp() // 1) * _NS + value.microsecond * 1000
    if isinstance(value, int) and not isinstance(value, bool):
        return value * _NS
    if isinstance(value, float):
        ns = value * 1e9
        return round(ns) if np.isfinite(ns) else None
    return value


def _timestamps(values: list[Any]) -> list[Any]:
    """Timestamps → ns; a batch shares few distinct (whole-second) values, so each is
    converted once."""
    try:
        table = {v: _epoch_ns(v) for v in set(values)}
    except TypeError:  # an unhashable value: convert one by one
        return [_epoch_ns(v) for v in values]
    return [table[v] for v in values]


# Rows → values -----------------------------------------------------------------------------


def _nested_values(ticks: list[Mapping[str, Any]], key: str, field: str,
                   bad: dict[int, str]) -> list[Any]:
    """``tick[key][field]`` per tick (``None`` where absent); a ``tick[key]`` that is not
    a mapping marks its row bad."""
    try:
        return [None if o is None else o.get(field) for o in [t.get(key) for t in ticks]]
    except AttributeError:
        pass
    values: list[Any] = []
    for i, t in enumerate(ticks):
        o = t.get(key)
        if o is not None and not isinstance(o, Mapping):
            bad.setdefault(i, f"{key} must be a mapping, got {type(o).__name__}")
            o = None
        values.append(None if o is None else o.get(field))
    return values


def _best_level(depth: list[Any], side: str,
                bad: dict[int, str]) -> tuple[list[Any], list[Any]]:
    """(price, quantity) of depth level 0 on ``side`` per tick (``None`` where absent)."""
    try:
        levels = [_EMPTY if d is None else (d.get(side) or _NO_LEVELS)[0] for d in depth]
        return [lv.get("price") for lv in levels], [lv.get("quantity") for lv in levels]
    except (AttributeError, TypeError, KeyError, IndexError):
        pass
    prices: list[Any] = []
    quantities: list[Any] = []
    for i, d in enumerate(depth):
        level: Any = _EMPTY
        if d is not None and not isinstance(d, Mapping):
            bad.setdefault(i, f"depth must be a mapping, got {type(d).__name__}")
        elif d is not None:
            try:
                level = (d.get(side) or _NO_LEVELS)[0]
                if not isinstance(level, Mapping):
                    raise TypeError(f"a level is a {type(level).__name__}")
            except (AttributeError, TypeError, KeyError, IndexError) as exc:
                bad.setdefault(i, f"depth must map buy/sell to lists of mappings ({exc})")
                level = _EMPTY
        prices.append(level.get("price"))
        quantities.append(level.get("quantity"))
    return prices, quantities


def _close_and_depth(ticks: list[Mapping[str, Any]], columns: dict[str, np.ndarray | None],
                     bad: dict[int, str], *, ohlc: bool, depth: bool) -> None:
    """``prev_close`` from ``ohlc.close`` and the best bid/ask from ``depth``."""
    if ohlc:
        try:
            close = [t["ohlc"]["close"] for t in ticks]
        except (KeyError, TypeError):
            close = _nested_values(ticks, "ohlc", "close", bad)
        columns["prev_close"] = _convert("prev_close", close, bad)
    if depth:
        books = [t.get("depth") for t in ticks]
        for side, prefix in (("buy", "bid"), ("sell", "ask")):
            prices, quantities = _best_level(books, side, bad)
            columns[f"{prefix}_price"] = _convert(f"{prefix}_price", prices, bad)
            columns[f"{prefix}_quantity"] = _convert(f"{prefix}_quantity", quantities, bad)


def _uniform_columns(ticks: list[Mapping[str, Any]],
                     bad: dict[int, str]) -> dict[str, np.ndarray | None]:
    """Columns of rows that all have the first row's keys: one subscript pass per key
    present, nothing for keys absent. Raises :class:`_NotShaped` if a row lacks one."""
    first = ticks[0]
    columns: dict[str, np.ndarray | None] = {}
    for name, keys in DICT_KEYS.items():
        key = next((k for k in keys if k in first), None)
        if key is None:
            continue
        try:
            values = [t[key] for t in ticks]
        except KeyError as exc:
            raise _NotShaped from exc
        if name == "exchange_ts":
            values = _timestamps(values)
        columns[name] = _convert(name, values, bad)
    _close_and_depth(ticks, columns, bad, ohlc="ohlc" in first, depth="depth" in first)
    return columns


def _shaped_columns(ticks: list[Mapping[str, Any]],
                    bad: dict[int, str]) -> dict[str, np.ndarray | None]:
    """Columns of kiteconnect-shaped rows: rows with the same number of keys are taken to
    have the same keys (each kiteconnect packet kind has its own count), so each group is
    converted by :func:`_uniform_columns` and scattered back in input order."""
    lens = list(map(len, ticks))
    n = len(ticks)
    if lens.count(lens[0]) == n:
        return _uniform_columns(ticks, bad)
    by_len = np.array(lens)
    # Scatter each group's columns back to input order into one preallocated block per
    # dtype (one allocation instead of one per column).
    token = np.empty(n, np.uint32)
    floats = np.full((len(_FLOAT_COLUMNS), n), np.nan)
    ints = np.full((len(_INT_COLUMNS), n), _MISSING, np.int64)
    for size in np.unique(by_len).tolist():
        index = np.flatnonzero(by_len == size)
        group_bad: dict[int, str] = {}
        part = _uniform_columns([ticks[i] for i in index.tolist()], group_bad)
        for j, reason in group_bad.items():
            bad.setdefault(int(index[j]), reason)
        token[index] = part[_TOKEN]
        for names, block in ((_FLOAT_COLUMNS, floats), (_INT_COLUMNS, ints)):
            for k, name in enumerate(names):
                col = part.get(name)
                if col is not None:
                    block[k][index] = col  # (a row view: 1-D fancy assignment is fast)
    columns: dict[str, np.ndarray | None] = {_TOKEN: token}
    columns.update(zip(_FLOAT_COLUMNS, floats, strict=True))
    columns.update(zip(_INT_COLUMNS, ints, strict=True))
    return columns


def _general_columns(ticks: list[Mapping[str, Any]],
                     bad: dict[int, str]) -> dict[str, np.ndarray | None]:
    """Columns of arbitrary mapping rows: ``.get`` per key, older key names tried for
    rows where the newest is absent or ``None``."""
    columns: dict[str, np.ndarray | None] = {}
    for name, keys in DICT_KEYS.items():
        values = [t.get(keys[0]) for t in ticks]
        for alt in keys[1:]:
            if None not in values:
                break
            values = [t.get(alt) if v is None else v
                      for v, t in zip(values, ticks, strict=True)]
        if name == "exchange_ts":
            values = _timestamps(values)
        columns[name] = _convert(name, values, bad)
    _close_and_depth(ticks, columns, bad, ohlc=True,
                     depth=any(t.get("depth") is not None for t in ticks))
    return columns


def _dict_columns(ticks: list[Any], bad: dict[int, str]) -> dict[str, np.ndarray | None]:
    """The tick columns (``None`` = all missing); bad rows are recorded in ``bad``."""
    try:
        shaped = bool(ticks) and "mode" in ticks[0] and "tradable" in ticks[0]
    except TypeError:
        shaped = False
    if shaped:  # made by kiteconnect's parser
        try:
            attempt: dict[int, str] = {}
            columns = _shaped_columns(ticks, attempt)
        except (_NotShaped, AttributeError, TypeError):
            pass
        else:
            bad.update(attempt)
            return columns
    try:
        return _general_columns(ticks, bad)
    except AttributeError:  # a row is not a mapping (no .get): mark it and go again
        bad.clear()
        for i, t in enumerate(ticks):
            if not isinstance(t, Mapping):
                bad[i] = f"a tick must be a mapping, got {type(t).__name__}"
        return _general_columns([t if isinstance(t, Mapping) else _EMPTY for t in ticks],
                                bad)


@functools.cache
def _absent_layout(present: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(float, integer) columns missing from a set of converted ones (the token is never
    missing; ``received_ns`` is stamped separately)."""
    absent = [c for c in TICK_COLUMNS if c.name not in present and c.name != "received_ns"]
    return (tuple(c.name for c in absent if c.dtype.kind == "f"),
            tuple(c.name for c in absent if c.dtype.kind != "f"))


def _batch(columns: dict[str, np.ndarray | None], n: int, received_ns: int,
           keep: np.ndarray | None = None) -> TickBatch:
    """The batch of converted columns (dtypes already exact), absent ones missing: one
    allocation for the float and one for the int64 columns that are not converted."""
    present = {k: v for k, v in columns.items() if v is not None}
    floats, ints = _absent_layout(frozenset(present))
    full: dict[str, np.ndarray] = {}
    if floats:
        full.update(zip(floats, np.full((len(floats), n), np.nan), strict=True))
    block = np.empty((1 + len(ints), n), np.int64)
    block[0] = received_ns
    block[1:] = _MISSING
    full.update(zip(("received_ns", *ints), block, strict=True))
    for name, col in present.items():
        full[name] = col if keep is None else col[keep]
    return TickBatch(**full)


@overload
def ticks_from_dicts(ticks: Sequence[Mapping[str, Any]], received_ns: int, *,
                     errors: Literal["raise"] = ...) -> TickBatch: ...
@overload
def ticks_from_dicts(ticks: Sequence[Mapping[str, Any]], received_ns: int, *,
                     errors: Literal["reject"]) -> DictTicks: ...
def ticks_from_dicts(ticks: Sequence[Mapping[str, Any]], received_ns: int, *,
                     errors: Literal["raise", "reject"] = "raise") -> TickBatch | DictTicks:
    """Kite tick dicts → a :class:`TickBatch`, all stamped with ``received_ns``.

    Accepts both key generations, datetime or epoch-second timestamps, nested ``ohlc``
    (its ``close`` is the previous day's close) and ``depth`` (best level used). Missing
    fields become the column's missing value. Each column is built with one list pass
    and one C-level conversion; only a column holding a wrong type is checked row by row.

    Parameters
    ----------
    ticks
        The ``on_ticks`` payload: a sequence of tick mappings.
    received_ns
        Local receive time (ns since the epoch) stamped on every tick.
    errors
        ``"raise"`` (default): a row that is not a mapping, has no ``instrument_token``,
        or holds a value of the wrong type or range raises :class:`SchemaError` naming
        the first such row. ``"reject"``: such rows are left out and reported; the result
        is :class:`DictTicks` ``(batch, rejected)``.

    Notes
    -----
    A number is an ``int``/``float`` (or NumPy number), never a string; ``None`` is
    missing. A float quantity must be whole (NaN is missing); the token must fit uint32.
    A ``bool``, being an ``int``, is taken as 0/1 (rejecting it would cost a check per
    value).

    Rows shaped like kiteconnect's (the first has ``mode`` and ``tradable`` keys) take a
    faster path: rows with the same number of keys are taken to have the same keys, as
    kiteconnect's packet kinds do (every key actually read is checked to be there).
    """
    if errors not in ("raise", "reject"):
        raise ValueError(f"errors must be 'raise' or 'reject', got {errors!r}")
    rows: list[Any] = ticks if isinstance(ticks, list) else list(ticks)
    bad: dict[int, str] = {}
    columns = _dict_columns(rows, bad)
    n = len(rows)
    if errors == "raise":
        if bad:
            i = min(bad)
            raise SchemaError(f"tick {i}: {bad[i]}")
        return _batch(columns, n, received_ns)
    index = np.array(sorted(bad), dtype=np.int64)
    rejected = Rejected(index, tuple(f"tick {i}: {bad[i]}" for i in index.tolist()))
    keep = None
    if len(index):
        keep = np.ones(n, bool)
        keep[index] = False
        n -= len(index)
    return DictTicks(_batch(columns, n, received_ns, keep), rejected)

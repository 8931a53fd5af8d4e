"""Vectorized validation masks and their reason codes.

:func:`tick_reasons` gives every tick of a window a ``uint32`` bitmask of :class:`Reason`
codes (0 = the tick is good). A rejected tick carries that bitmask into the window's
quarantine section; the set of codes is bounded (at most 32) and their bit values are part
of the payload contract: a code, once published, keeps its bit.

A window runs in one Numba call (see :func:`tick_reasons`): a vectorized screen clears the
ticks that surely break no stateless rule in a few operations per column (the rare others
get the exact rules), a hash finds duplicate candidates that are then confirmed column by
column, and the volume rule follows in arrival order. A large window (65,536 ticks or
more) is cut into parts, and each stage runs on them in threads, one per core. The rules
as NumPy expressions over whole columns would cost about 65 ns per tick on a million
ticks (every operation streams a fresh temporary through memory).
:mod:`vectorticks.validate` states the same rules as pandera schemas, written
independently, for notebooks, replays and tests. ``docs/validation.md`` documents each code
with its defaults.
"""

from __future__ import annotations

import enum
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ._jit import jit
from .columns import MISSING_INT, TickBatch
from .errors import ConfigError
from .instruments import Kind

__all__ = ["IST_OFFSET_NS", "NS_PER_DAY", "REASONS", "Limits", "Reason", "describe", "ist_day",
           "reason_counts", "tick_reasons"]


class Reason(enum.IntFlag):
    """Why a tick was quarantined (bit values are stable: consumers decode them).

    Every rule is documented with its bound in :class:`Limits` and in
    ``docs/validation.md``.
    """

    UNKNOWN_INSTRUMENT = 1 << 0
    """The token is not in the instrument registry (``rows == -1``)."""
    NON_FINITE_PRICE = 1 << 1
    """``last_price`` is NaN, +inf or -inf."""
    NON_POSITIVE_PRICE = 1 << 2
    """``last_price`` ≤ 0 for an index, equity or future; < 0 for an option (an option
    at 0 has simply not traded)."""
    PRICE_ABOVE_MAX = 1 << 3
    """Finite ``last_price`` above :attr:`Limits.max_price`."""
    PRICE_JUMP = 1 << 4
    """Finite, positive ``last_price`` outside the ratio band around the instrument's
    reference price (last good price carried from earlier windows, else the tick's
    ``prev_close``); see :class:`Limits`."""
    BAD_QUANTITY = 1 << 5
    """``last_traded_quantity``, ``volume_traded``, ``total_buy_quantity`` or
    ``total_sell_quantity`` negative or above :attr:`Limits.max_quantity`
    (``MISSING_INT`` is missing, not an error)."""
    BAD_OI = 1 << 6
    """``oi`` negative or above :attr:`Limits.max_quantity` (``MISSING_INT`` is fine)."""
    VOLUME_DECREASE = 1 << 7
    """Cumulative ``volume_traded`` below the previous valid tick's of the same
    instrument on the same IST trading day. Evaluated only for ticks that pass every
    other rule."""
    EXCHANGE_TS_FUTURE = 1 << 8
    """``exchange_ts`` later than ``received_ns`` + :attr:`Limits.max_ts_skew_ns`."""
    EXCHANGE_TS_STALE = 1 << 9
    """``exchange_ts`` earlier than ``received_ns`` − :attr:`Limits.max_ts_lag_ns`."""
    DUPLICATE = 1 << 10
    """Same token and identical values in every column but ``received_ns`` as an earlier
    tick of the window (NaN equals NaN, -0.0 equals 0.0); the first one is kept."""
    CROSSED_BOOK = 1 << 11
    """Best bid above best ask, both finite and > 0."""
    BAD_DEPTH = 1 << 12
    """``bid_price``/``ask_price`` negative or infinite (NaN and 0 mean an empty side), or
    ``bid_quantity``/``ask_quantity`` negative or above :attr:`Limits.max_quantity`."""


#: Every defined reason, lowest bit first.
REASONS: tuple[Reason, ...] = tuple(sorted(Reason, key=int))

#: IST is UTC+05:30; the trading day of a timestamp is ``floor((t + IST_OFFSET_NS) / day)``.
IST_OFFSET_NS = (5 * 3600 + 30 * 60) * 1_000_000_000
NS_PER_DAY = 86_400 * 1_000_000_000

_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the validation rules (the defaults are documented in
    ``docs/validation.md``).

    The relative price band of an instrument with reference price ``ref`` and allowed
    move ``m`` is ``[ref / (1 + m), ref * (1 + m)]``, computed exactly so (a price ``p`` is
    out of band when ``p < ref / (1 + m)`` or ``p > ref * (1 + m)``). The reference is the
    instrument's last good price carried from earlier windows when it is finite and > 0,
    else the tick's ``prev_close`` when finite and > 0, else there is no band check.
    Options move far more in percent than their underlyings, and a reference taken from
    ``prev_close`` may be a whole trading day old (an engine started mid-session), so each
    pair of kind and reference source has its own ``m``: a too-tight band on a stale
    reference would reject every tick of the instrument until the next day.

    Attributes
    ----------
    max_price
        Absolute upper bound of ``last_price`` (default 1e7; the dearest NSE share trades
        near 1.5e5, index levels below 1e5).
    max_move
        ``m`` of indices, equities and futures against the carried last good price
        (default 0.2: −16.7 % … +20 %, NSE's widest price band).
    max_move_option
        ``m`` of options against the carried last good price (default 10: 1/11 … 11×).
    max_move_prev_close
        ``m`` of indices, equities and futures against ``prev_close`` (default 0.5:
        −33 % … +50 %).
    max_move_option_prev_close
        ``m`` of options against ``prev_close`` (default 100: 1/101 … 101×; an
        out-of-the-money option can go from 0.05 to several rupees on expiry day).
    max_quantity
        Upper bound of every quantity, volume and OI (default 2**48 ≈ 2.8e14, so that the
        sum of a window's quantities can never wrap an int64).
    max_ts_skew_ns
        How far ``exchange_ts`` may be ahead of ``received_ns`` (default 2 s: clock skew
        plus the exchange's whole-second rounding).
    max_ts_lag_ns
        How far ``exchange_ts`` may be behind ``received_ns`` (default 60 s).
    """

    max_price: float = 1e7
    max_move: float = 0.2
    max_move_option: float = 10.0
    max_move_prev_close: float = 0.5
    max_move_option_prev_close: float = 100.0
    max_quantity: int = 2**48
    max_ts_skew_ns: int = 2_000_000_000
    max_ts_lag_ns: int = 60_000_000_000

    def __post_init__(self) -> None:
        for name in ("max_price", "max_move", "max_move_option", "max_move_prev_close",
                     "max_move_option_prev_close"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"Limits.{name} must be a finite number > 0, got {value!r}")
        for name in ("max_quantity", "max_ts_skew_ns", "max_ts_lag_ns"):
            value = getattr(self, name)
            if not (isinstance(value, int | np.integer) and 0 <= value <= _INT64_MAX):
                raise ConfigError(f"Limits.{name} must be an integer in [0, 2**63), "
                                  f"got {value!r}")

    def band_factor(self, is_option: bool, from_carry: bool) -> float:
        """``1 + m`` for a kind (option or not) and a reference source (carry or
        ``prev_close``)."""
        if is_option:
            m = self.max_move_option if from_carry else self.max_move_option_prev_close
        else:
            m = self.max_move if from_carry else self.max_move_prev_close
        return 1.0 + float(m)


_DEFAULT_LIMITS = Limits()


def ist_day(exchange_ts: np.ndarray, received_ns: np.ndarray) -> np.ndarray:
    """IST trading day (days since 1970-01-01 IST) of each tick: of ``exchange_ts``, or
    of ``received_ns`` where ``exchange_ts`` is missing. Exact for every int64 input."""
    exchange_ts = np.asarray(exchange_ts, np.int64)
    received_ns = np.asarray(received_ns, np.int64)
    if exchange_ts.shape != received_ns.shape or exchange_ts.ndim != 1:
        raise ValueError("exchange_ts and received_ns must be 1-d and of one length")
    out = np.empty(len(exchange_ts), np.int64)
    _ist_day_kernel(exchange_ts, received_ns, out)
    return out


def tick_reasons(batch: TickBatch, rows: np.ndarray, kind: np.ndarray, last_price: np.ndarray,
                 volume_traded: np.ndarray, volume_day: np.ndarray,
                 limits: Limits = _DEFAULT_LIMITS, *, day: np.ndarray | None = None,
                 volume: bool = True) -> np.ndarray:
    """Reason bitmask of every tick (0 = good), in the order of ``batch``.

    Parameters
    ----------
    batch
        The window's ticks in arrival order.
    rows
        Registry row of each tick (int64; -1, or any negative value, for an unknown token),
        as given by :meth:`~vectorticks.instruments.InstrumentRegistry.rows_of`.
    kind
        :class:`~vectorticks.instruments.Kind` code per registry row (``registry.kind``).
        An unknown instrument is checked with the option limits (the most permissive).
    last_price
        Carry: last good price per registry row (float64, NaN where none).
    volume_traded
        Carry: last valid cumulative day volume per registry row (int64, ``MISSING_INT``
        where none).
    volume_day
        Carry: IST trading day (see :func:`ist_day`) of ``volume_traded`` per registry row
        (int64, ``MISSING_INT`` where none: the volume is then not compared with the
        carry).
    limits
        The bounds of the rules.
    day
        ``ist_day(batch.exchange_ts, batch.received_ns)`` when the caller has it already
        (``compute_window`` needs it too); computed here otherwise.
    volume
        ``False`` leaves VOLUME_DECREASE out (no tick gets it): for a caller that judges it
        in its own per-instrument pass, as ``compute_window`` does.

    Returns
    -------
    numpy.ndarray
        ``uint32`` per tick: the OR of the :class:`Reason` bits of every rule it breaks.
        ``VOLUME_DECREASE`` is only evaluated for ticks that break no other rule, and only
        ticks with mask 0 and a present volume become an instrument's "previous valid"
        tick. The carries are not modified.

    Notes
    -----
    One Numba call of up to three passes. 1. Arrival order, in chunks of 8,192 ticks: a
    vectorized screen (a few operations per column) clears the ticks that surely break no
    stateless rule, the exact rules judge the others (an unknown token, a price within
    2**-50 of its band's edge, odd values); the same loops hash 11 columns. 2. The
    duplicates: up to 8,192 ticks, one open-addressing table in arrival order, with the
    volume rule in the same loop; above, a cache of recent hashes in pass 1 finds most
    duplicates while their columns are in cache, and the other ticks are partitioned by
    hash, one table per partition of ≈8,192 (each stays in cache). Every hash match is
    confirmed column by column: a collision costs a comparison, never a wrong bit. 3. Only
    for ticks of several IST days, or a duplicate that pass 1 judged as a valid volume:
    the volume rule in general. Expected O(n) time; about 24 bytes of scratch per tick
    plus 8 per registry row.

    A window of 65,536 ticks or more, on a machine with several usable cores, is cut into
    parts contiguous in arrival order, one to four per core, that threads (this one and a
    pool's, one per core up to 8, started on first use) take one after the other: each
    part takes pass 1 and the volume rule on one day from its own state, a sequential
    step of O(parts · registry rows) joins the parts' volume states (a row's first volume
    in a part below its earlier maximum is judged again), then the threads search groups
    of the hash partitions, gathered from every part. Ticks of several IST days still take
    the sequential pass 3. About 16 bytes of scratch per tick plus 16 per registry row and
    part. The results are the same, bit for bit, for every input.
    """
    n = len(batch.instrument_token)
    rows = np.asarray(rows)
    if rows.shape != (n,) or rows.dtype.kind not in "iu":
        raise ValueError(f"rows must be {n} integers, one per tick, got shape {rows.shape} "
                         f"{rows.dtype}")
    m = len(kind)
    if not len(last_price) == len(volume_traded) == len(volume_day) == m:
        raise ValueError("kind, last_price, volume_traded and volume_day must have one entry "
                         "per registry row")
    if n >= 2**32 - 1:
        raise ValueError("a window holds fewer than 2**32 - 1 ticks")
    if not m:  # an empty registry: every token is unknown; one dummy row
        if n and rows.max() >= 0:
            raise ValueError("rows must be below the registry's length")
        kind, last_price = np.array([Kind.CALL], np.int8), np.array([np.nan])
        volume_traded = volume_day = np.array([MISSING_INT])
    if day is None:
        day = _NO_DAY  # the kernel finds the days it needs
    elif len(day) != n:
        raise ValueError(f"day must have one entry per tick ({n}), got {len(day)}")
    b = batch
    args = (_as(rows, _I64), _as(kind, _I8), _as(last_price, _F64), _as(volume_traded, _I64),
            _as(volume_day, _I64), _as(day, _I64))
    columns = (b.instrument_token, b.received_ns, b.exchange_ts, b.last_price,
               b.last_traded_quantity, b.average_traded_price, b.volume_traded,
               b.total_buy_quantity, b.total_sell_quantity, b.oi, b.prev_close, b.bid_price,
               b.bid_quantity, b.ask_price, b.ask_quantity)
    n_parts = min(_parts(n), n)
    if n_parts > 1:
        return _reasons_in_parts(n_parts, *args, columns, _params(limits), volume)
    return _reasons_kernel(*args, *columns, _params(limits), volume)


_I8, _I64, _F64 = np.dtype(np.int8), np.dtype(np.int64), np.dtype(np.float64)


def _as(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` as an array of ``dtype``; as it is when it already is one (a window's call
    should not pay ~0.3 µs per ``np.asarray``)."""
    return a if type(a) is np.ndarray and a.dtype == dtype else np.asarray(a, dtype)


def _params(limits: Limits) -> tuple[float, float, float, float, float, int, int, int]:
    """The bounds of ``limits`` as the kernel takes them, cached by identity (a window's
    call should not pay for hashing a Limits, eight attribute reads and four band
    factors; the cache holds the Limits, so its id is not reused)."""
    hit = _PARAMS.get(id(limits))
    if hit is not None and hit[0] is limits:
        return hit[1]
    f = limits.band_factor
    params = (float(limits.max_price), f(False, True), f(True, True), f(False, False),
              f(True, False), int(limits.max_quantity), int(limits.max_ts_skew_ns),
              int(limits.max_ts_lag_ns))
    if len(_PARAMS) >= 64:
        _PARAMS.clear()
    _PARAMS[id(limits)] = (limits, params)
    return params


_PARAMS: dict[int, tuple[Limits, tuple[float, float, float, float, float, int, int, int]]] = {}


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE bits of a float64 as a uint64 (a bitcast: no instruction, no array view)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


_U = np.uint64
_MISSING = int(MISSING_INT)
_CALL = int(Kind.CALL)
_DAY = NS_PER_DAY
_IST = IST_OFFSET_NS
_S32 = _U(32)
_LOW32 = _U(0xFFFFFFFF)
_HIGH32 = _U(0xFFFFFFFF00000000)
# Hash of a tick: NH (the multiply-add hash of UMAC) over 11 of its columns, in pairs: a
# sum of (a + k) · (b + k') over 32-bit words, one AVX2 multiply per two columns. Integers
# enter by their low 32 bits (quantities fit; exchange_ts is whole seconds, whose low bits
# differ within four seconds), floats folded to 32 bits. last_traded_quantity,
# average_traded_price and prev_close are left out: in a feed they change with
# volume_traded and last_price, or never. A collision only costs a comparison: every hash
# match is confirmed column by column. Table slots and partitions take the top bits of
# the hash times a 64-bit odd constant (Fibonacci hashing), in scalar code where that
# product is cheap.
_K = tuple(_U((0x9E3779B9 * (2 * k + 1) + 0x85EBCA6B * k) % 2**32) for k in range(12))
_K0, _K1, _K2, _K3, _K4, _K5, _K6, _K7, _K8, _K9, _K10, _K11 = _K
_MIX = _U(0x9E3779B97F4A7C15)
# The price band's low edge is ref / (1 + m), and a vector division costs ~6 ns per tick
# here. A price p is surely not below it when p · (1 + m) > ref · (1 + 2**-50): both
# products are within 2**-53 of exact (p ≥ 2**-960 keeps them normal; an infinite
# p · (1 + m) is above any finite product), so then p > ref / (1 + m) · (1 + 2**-51),
# above its rounding. Prices closer to the edge take the exact rules.
_TINY = 2.0**-960
_ABOVE = 1.0 + 2.0**-50
# `x > _MAX_FLOAT` tests x == +inf with a float comparison (LLVM rewrites `x == inf` into
# integer operations that cost more in a vector loop).
_MAX_FLOAT = float(np.finfo(np.float64).max)
_CHUNK = 8192  # ticks per chunk of pass 1 (each call of a loop costs ~0.2 µs)
_BUCKET_TICKS = 8192  # ticks per partition of the duplicate search: its table stays in L2
_RECENT = 4096  # slots of pass 1's cache of recent hashes (64 KiB, in L2)
_HOLE = _U(0xFFFFFFFFFFFFFFFF)  # no entry (its index, 2**32 - 1, is no tick's)
_SCATTER_BLOCK = 2048  # entries per block of _scatter (its places stay in L1)
_NO_DAY = np.empty(0, np.int64)

_UNKNOWN_INSTRUMENT = np.uint32(Reason.UNKNOWN_INSTRUMENT)
_NON_FINITE_PRICE = np.uint32(Reason.NON_FINITE_PRICE)
_NON_POSITIVE_PRICE = np.uint32(Reason.NON_POSITIVE_PRICE)
_PRICE_ABOVE_MAX = np.uint32(Reason.PRICE_ABOVE_MAX)
_PRICE_JUMP = np.uint32(Reason.PRICE_JUMP)
_BAD_QUANTITY = np.uint32(Reason.BAD_QUANTITY)
_BAD_OI = np.uint32(Reason.BAD_OI)
_VOLUME_DECREASE = np.uint32(Reason.VOLUME_DECREASE)
_EXCHANGE_TS_FUTURE = np.uint32(Reason.EXCHANGE_TS_FUTURE)
_EXCHANGE_TS_STALE = np.uint32(Reason.EXCHANGE_TS_STALE)
_DUPLICATE = np.uint32(Reason.DUPLICATE)
_CROSSED_BOOK = np.uint32(Reason.CROSSED_BOOK)
_BAD_DEPTH = np.uint32(Reason.BAD_DEPTH)


# -- IST days ----------------------------------------------------------------------------


@jit(inline="always")
def _exact_day(t):
    """floor((t + IST_OFFSET_NS) / day) without overflowing: whole days of t plus the
    rest."""
    return t // _DAY + (t % _DAY + _IST) // _DAY


@jit(inline="always")
def _day_span(d):
    """[lo, hi): the UTC instants of IST day d (empty far from 1970, where they would
    overflow)."""
    lo = d * _DAY - _IST if abs(d) < 100_000 else 0
    return lo, lo + _DAY if abs(d) < 100_000 else 0


@jit
def _ist_day_kernel(ex, recv, out):
    """IST day of every tick. The ticks of a window almost always share the first one's
    day: a vectorized range test settles those, the 64-bit divisions run for the others."""
    n = len(out)
    if n == 0:
        return
    d0 = _exact_day(ex[0] if ex[0] != _MISSING else recv[0])
    lo, hi = _day_span(d0)
    others = 0
    for i in range(n):
        t = ex[i] if ex[i] != _MISSING else recv[i]
        out[i] = d0
        others += (t < lo) | (t >= hi)
    for i in range(n if others else 0):
        t = ex[i] if ex[i] != _MISSING else recv[i]
        if (t < lo) | (t >= hi):
            out[i] = _exact_day(t)


# -- pass 1: the stateless rules and the hash ----------------------------------------------


@jit(inline="always")
def _flag(condition, reason):
    """``reason`` if ``condition`` else 0, without a branch."""
    return np.uint32(condition) * reason


@jit(inline="always")
def _bad_quantity(q, max_quantity):
    """Negative or above ``max_quantity``; ``MISSING_INT`` is missing, not bad. (As uint64 a
    negative value exceeds any ``max_quantity < 2**63``.)"""
    return (_U(q) > max_quantity) & (q != _MISSING)


@jit(inline="always")
def _exact_rules(known, is_option, carry_ref, p, prev_close, ltq, vol, tbq, tsq, oi, ex, recv,
                 bid, bq, ask, aq, max_price, f_carry, f_close, max_quantity, skew, lag):
    """Every stateless rule of one tick, exactly as documented (for the ticks the screen
    could not clear). ``carry_ref`` is the row's carried last good price when finite and
    > 0, else NaN; ``f_carry``/``f_close`` are the row's band factors ``1 + m`` against the
    carry and against ``prev_close``."""
    finite = (p - p) == 0.0  # False for NaN and ±inf
    from_carry = carry_ref == carry_ref
    ref = carry_ref if from_carry else prev_close
    f = f_carry if from_carry else f_close
    outside = (p < ref / f) | (p > ref * f)
    jump = outside & (ref > 0.0) & (ref < np.inf) & (p > 0.0) & finite
    non_positive = ((p < 0.0) | ((p == 0.0) & (not is_option))) & finite
    bits = (_flag(not known, _UNKNOWN_INSTRUMENT) | _flag(not finite, _NON_FINITE_PRICE)
            | _flag(non_positive, _NON_POSITIVE_PRICE)
            | _flag((p > max_price) & finite, _PRICE_ABOVE_MAX) | _flag(jump, _PRICE_JUMP))
    bad_qty = (_bad_quantity(ltq, max_quantity) | _bad_quantity(vol, max_quantity)
               | _bad_quantity(tbq, max_quantity) | _bad_quantity(tsq, max_quantity))
    bits |= _flag(bad_qty, _BAD_QUANTITY) | _flag(_bad_quantity(oi, max_quantity), _BAD_OI)
    # A present exchange_ts: uint64 differences are exact once the sign of ex - recv is
    # known.
    present = ex != _MISSING
    future = present & (ex > recv) & (_U(ex) - _U(recv) > skew)
    stale = present & (ex < recv) & (_U(recv) - _U(ex) > lag)
    bits |= _flag(future, _EXCHANGE_TS_FUTURE) | _flag(stale, _EXCHANGE_TS_STALE)
    crossed = (ask > 0.0) & (bid > ask) & (bid < np.inf)
    bad_depth = ((bid < 0.0) | (bid == np.inf) | (ask < 0.0) | (ask == np.inf)
                 | _bad_quantity(bq, max_quantity) | _bad_quantity(aq, max_quantity))
    return bits | _flag(crossed, _CROSSED_BOOK) | _flag(bad_depth, _BAD_DEPTH)


@jit
def _row_loop(rows, kind, carry_price, s_carry, s_kind):
    """The row's carried last good price and kind for each tick (those of row 0 for an
    unknown token), gathered into scratch arrays so that the screen's loop vectorizes."""
    for i in range(len(rows)):
        at = max(rows[i], 0)
        s_carry[i] = carry_price[at]
        s_kind[i] = kind[at]


@jit(inline="always")
def _present(q):
    """q, or 0 for a missing quantity."""
    return q if q != _MISSING else 0


@jit(inline="always")
def _float_key(x):
    """A float64's bits with the duplicate rule's equalities: NaN and ±0.0 all give 0."""
    return _float_bits(x) if (x != 0.0) & (x == x) else _U(0)


@jit(inline="always")
def _table_bits(slots, least):
    """log2 of the smallest power of two ≥ ``slots`` and ≥ 2**``least``: a table's size."""
    bits = least
    while (1 << bits) < slots:
        bits += 1
    return bits


@jit(inline="always")
def _low_bits(max_q):
    """The quantity screen's bound: the largest 2**k - 1 ≤ max_quantity."""
    low = 0
    while low <= (max_q - 1) // 2:
        low = low * 2 + 1
    return low


@jit(inline="always")
def _fold_float(x):
    """A float64's bits folded to 32 bits (in the low half; the high half is junk that
    the 32 × 32-bit multiply ignores), equal values alike: NaN, 0.0 and -0.0 all fold to
    0 (they then collide, which only costs a comparison)."""
    u = _float_key(x)
    return u ^ (u >> _S32)


@jit(inline="always")
def _nh(a, ka, b, kb):
    """One NH term: (a + ka) · (b + kb) over the low 32 bits of a and b."""
    return ((_U(a) + ka) & _LOW32) * ((_U(b) + kb) & _LOW32)


@jit
def _price_time_book(rows, carry, kind, price, prev_close, ex, recv, bid, ask, token, max_price,
                     f_carry, f_option_carry, f_close, f_option_close, lag, skew, suspect,
                     hashes):
    """The screen of the price, exchange-time and book rules and of UNKNOWN_INSTRUMENT
    into ``suspect``; the hash terms of token, exchange_ts, last_price, bid and ask into
    ``hashes``."""
    for i in range(len(suspect)):
        p = price[i]
        c = carry[i]
        pc = prev_close[i]
        is_option = kind[i] >= _CALL
        from_carry = (c > 0.0) & (c <= _MAX_FLOAT)
        r = c if from_carry else pc
        f_option = f_option_carry if from_carry else f_option_close
        f_other = f_carry if from_carry else f_close
        f = f_option if is_option else f_other
        # Surely not below r / f (see _ABOVE) and not above r · f, or a NaN reference.
        band = ((p * f > r * _ABOVE) & (p <= r * f)) | (r != r)
        price_ok = (rows[i] >= 0) & (p <= max_price) & (((p == 0.0) & is_option)
                                                        | ((p >= _TINY) & band))
        e = ex[i]
        t = recv[i]
        d = e - t  # exact when both have one sign
        time_bad = (e != _MISSING) & (((e ^ t) < 0) | (d < -lag) | (d > skew))
        b = bid[i]
        a = ask[i]
        book_bad = ((b < 0.0) | (a < 0.0) | (b > _MAX_FLOAT) | (a > _MAX_FLOAT)
                    | ((b > a) & (a > 0.0)))
        suspect[i] = np.uint32((not price_ok) | time_bad | book_bad)
        hashes[i] = (_nh(token[i], _K0, e, _K1) + _nh(_fold_float(p), _K2, _fold_float(b), _K3)
                     + _nh(_fold_float(a), _K4, 0, _K5))


@jit
def _quantities(ltq, vol, tbq, tsq, oi, bq, aq, quantity_mask, suspect, hashes):
    """The screen of the quantity rules (no bit of ``quantity_mask`` in any present
    quantity) into ``suspect``; the hash terms of the quantities but last_traded_quantity
    into ``hashes``."""
    for i in range(len(suspect)):
        v = vol[i]
        b = tbq[i]
        s = tsq[i]
        o = oi[i]
        x = bq[i]
        y = aq[i]
        q = (_present(ltq[i]) | _present(v) | _present(b) | _present(s) | _present(o)
             | _present(x) | _present(y))
        suspect[i] |= np.uint32((q & quantity_mask) != 0)
        hashes[i] += _nh(v, _K6, b, _K7) + _nh(s, _K8, o, _K9) + _nh(x, _K10, y, _K11)


@jit
def _judge_chunk(lo, hi, rows, s_carry, s_kind, token, recv, ex, lp, ltq, vol, tbq, tsq, oi, pc,
                 bid, bq, ask, aq, params, low_bits, reasons, h):
    """Pass 1 on the ticks [lo, hi), their rows' carried price and kind gathered into
    ``s_carry``/``s_kind`` (_row_loop): the screen, then the exact rules for its suspects,
    into ``reasons[lo:hi]``; the hash into ``h``."""
    max_price, f_carry, f_option_carry, f_close, f_option_close, max_q, skew_, lag_ = params
    c = slice(lo, hi)
    _price_time_book(rows[c], s_carry, s_kind, lp[c], pc[c], ex[c], recv[c], bid[c], ask[c],
                     token[c], max_price, f_carry, f_option_carry, f_close, f_option_close,
                     np.int64(lag_), np.int64(skew_), reasons[c], h)
    _quantities(ltq[c], vol[c], tbq[c], tsq[c], oi[c], bq[c], aq[c], ~low_bits, reasons[c], h)
    suspects = 0
    for i in range(lo, hi):
        suspects += reasons[i]
    for i in range(lo, hi if suspects else lo):
        if reasons[i]:
            row = rows[i]
            known = row >= 0
            cp = s_carry[i - lo]
            is_option = (s_kind[i - lo] >= _CALL) | (not known)
            reasons[i] = _exact_rules(
                known, is_option, cp if known & (cp > 0.0) & (cp < np.inf) else np.nan,
                lp[i], pc[i], ltq[i], vol[i], tbq[i], tsq[i], oi[i], ex[i], recv[i],
                bid[i], bq[i], ask[i], aq[i], max_price,
                f_option_carry if is_option else f_carry,
                f_option_close if is_option else f_close, _U(max_q), _U(skew_), _U(lag_))


# -- pass 2: the duplicates and the volume rule on one day -----------------------------------


@jit(inline="always")
def _same_float(a, b):
    """Equal as the duplicate rule compares floats: NaN equals NaN, -0.0 equals 0.0."""
    return (a == b) | ((a != a) & (b != b))


@jit(inline="always")
def _same_tick(i, k, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq):
    """Ticks i and k are equal in every column but received_ns. (`&`, not `and`: the
    loads go out together instead of one after a branch each.)"""
    return ((token[i] == token[k]) & (ex[i] == ex[k]) & (vol[i] == vol[k])
            & _same_float(lp[i], lp[k]) & (ltq[i] == ltq[k]) & _same_float(atp[i], atp[k])
            & (tbq[i] == tbq[k]) & (tsq[i] == tsq[k]) & (oi[i] == oi[k])
            & _same_float(pc[i], pc[k]) & _same_float(bid[i], bid[k]) & (bq[i] == bq[k])
            & _same_float(ask[i], ask[k]) & (aq[i] == aq[k]))


@jit(inline="always")
def _full_hash(i, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq):
    """A 64-bit hash of every column of tick i but received_ns (equal ticks alike)."""
    h = _U(token[i])
    for x in (_U(ex[i]), _float_key(lp[i]), _U(ltq[i]), _float_key(atp[i]), _U(vol[i]),
              _U(tbq[i]), _U(tsq[i]), _U(oi[i]), _float_key(pc[i]), _float_key(bid[i]),
              _U(bq[i]), _float_key(ask[i]), _U(aq[i])):
        h = (h ^ x) * _MIX
        h ^= h >> _U(29)
    return h


@jit
def _confirm_pairs(pairs, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq):
    """Whether each pair (tick << 32 | earlier tick) of a hash search, in arrival order of
    its tick, is a duplicate: the two ticks are equal column by column, or, after a hash
    collision, the tick equals an earlier tick that collided with it. The colliding ticks
    go into a table of their hash over every column (made on the first collision), so a
    window of ticks equal but in the columns the search's hash leaves out costs a probe
    each, not a comparison with every earlier one."""
    n = len(pairs)
    same = np.empty(n, np.bool_)
    keys = np.empty(0, np.uint64)
    ticks = np.empty(0, np.int64)
    shift = _U(0)
    for q in range(n):
        i = np.int64(pairs[q] >> _S32)
        k = np.int64(pairs[q] & _LOW32)
        s = _same_tick(i, k, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq)
        if not s:
            if not len(ticks):
                bits = _table_bits(2 * n, 2)
                keys = np.empty(1 << bits, np.uint64)
                ticks = np.full(1 << bits, -1, np.int64)
                shift = _U(64 - bits)
            h = _full_hash(i, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq)
            j = np.int64((h * _MIX) >> shift)
            while ticks[j] >= 0 and not s:
                s = (keys[j] == h) and _same_tick(i, ticks[j], token, ex, lp, ltq, atp, vol,
                                                  tbq, tsq, oi, pc, bid, bq, ask, aq)
                j = (j + 1) & (len(ticks) - 1)
            if not s:
                keys[j] = h
                ticks[j] = i
        same[q] = s
    return same


@jit(inline="always")
def _judge_volume(bits, v, at, state_volume):
    """VOLUME_DECREASE on one IST day, in arrival order: a volume below the row's last
    valid one. The state is a running maximum per row (MISSING_INT where none: it is below
    every volume); a tick with any reason or no volume is not judged, and does not count."""
    w = v if bits == 0 else _MISSING  # the volume to judge, if any (then the row is known)
    prev = state_volume[at]
    state_volume[at] = max(prev, w)
    return bits | _flag((w < prev) & (w != _MISSING), _VOLUME_DECREASE)


@jit
def _matches_and_volume(hashes, table, shift, rows, vol, state_volume, one_day, reasons,
                        pairs):
    """One table, arrival order: each tick whose hash an earlier one has is marked
    DUPLICATE and goes into ``pairs`` (tick << 32 | earlier) for confirmation; then, on
    one day, the volume rule. ``table`` is zero, a power of two of ≥ 4 slots per tick
    (linear probing from the top bits, above ``shift``, of the mixed hash; a slot holds 1
    + a tick's index; a matching tick is not inserted). Returns the number of pairs. (The
    columns stay out: this loop needs its registers.)"""
    mask = _U(len(table) - 1)
    n_pairs = 0
    for i in range(len(reasons)):
        h = hashes[i]
        bits = reasons[i]
        j = (h * _MIX) >> shift
        while True:
            e = table[j]
            if e == 0:
                table[j] = i + 1
                break
            k = e - 1
            if hashes[k] == h:
                pairs[n_pairs] = (_U(i) << _S32) | _U(k)
                n_pairs += 1
                bits |= _DUPLICATE
                break
            j = (j + _U(1)) & mask
        if one_day:
            bits = _judge_volume(bits, vol[i], max(rows[i], 0), state_volume)
        reasons[i] = bits
    return n_pairs


@jit
def _entries(first, hashes, entries, counts, p_shift, recent, token, ex, lp, ltq, atp, vol, tbq,
             tsq, oi, pc, bid, bq, ask, aq, reasons):
    """The entries of a chunk of ticks (``first`` is the index of its first) for the
    partitioned search: the top 32 bits of the mixed hash over the tick's index; counts
    each partition's (the entry's bits above ``p_shift``).

    A tick equal to the last earlier one in its slot of ``recent`` (a direct-mapped cache
    of (hash, index), flattened) is a duplicate found while both are in cache; it gets no
    entry (_HOLE). The partitioned search would find it too, but would compare columns
    scattered over the whole call (a cache miss per column at a million ticks)."""
    r_shift = _U(64 - np.int64(np.log2(len(recent) // 2)))
    for k in range(len(hashes)):
        h = hashes[k]
        g = h * _MIX
        i = first + k
        slot = np.int64(g >> r_shift) * 2
        e = (g & _HIGH32) | _U(i)
        j = np.int64(recent[slot + 1])
        if (recent[slot] == h) & (j < i):
            if _same_tick(i, j, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask,
                          aq):
                reasons[i] |= _DUPLICATE
                e = _HOLE
        recent[slot] = h
        recent[slot + 1] = _U(i)
        entries[k] = e
    _count_partitions(entries, p_shift, counts)


@jit
def _count_partitions(entries, p_shift, counts):
    """Adds each partition's entries (holes left out) to ``counts[1:]``. A loop of its own:
    an increment at an address loaded in the same iteration, in the loop of _entries,
    stalled the loads of later iterations (twice that loop's time)."""
    for k in range(len(entries)):
        e = entries[k]
        counts[np.int64(e >> p_shift) + 1] += e != _HOLE


@jit
def _partition_matches(part, p_bits, table, pairs, n_pairs):
    """The hash matches among the entries of one partition (in arrival order; their top
    ``p_bits`` are the partition's), as _matches_and_volume finds them, into ``pairs``
    from ``n_pairs`` on. Returns the new count."""
    m = len(part)
    s_bits = _table_bits(4 * m, 2)
    mask = _U((1 << s_bits) - 1)
    shift = _U(32 - s_bits)
    table[: (1 << s_bits)] = 0
    for q in range(m):
        entry = part[q]
        fp = entry >> _S32
        j = ((fp << _U(p_bits)) & _LOW32) >> shift
        while True:
            e = table[j]
            if e == 0:
                table[j] = q + 1
                break
            other = part[e - 1]
            if (other >> _S32) == fp:
                pairs[n_pairs] = ((entry & _LOW32) << _S32) | (other & _LOW32)
                n_pairs += 1
                break
            j = (j + _U(1)) & mask
    return n_pairs


@jit
def _one_day_volume(rows, vol, state_volume, reasons):
    """The volume rule on one IST day over a chunk (see _judge_volume)."""
    for i in range(len(reasons)):
        reasons[i] = _judge_volume(reasons[i], vol[i], max(rows[i], 0), state_volume)


# -- pass 3 (rare): the volume rule in general ------------------------------------------------


@jit
def _volume_loop(rows, vol, day, state_volume, state_day, reasons):
    """VOLUME_DECREASE, arrival order: cumulative volume against the last valid one of the
    row (the state, the carry before the first), on the same IST day."""
    for i in range(len(reasons)):
        v = vol[i]
        d = day[i]
        at = max(rows[i], 0)
        prev = state_volume[at]
        prev_day = state_day[at]
        candidate = (reasons[i] == 0) & (v != _MISSING)  # then the row is known
        decrease = candidate & (prev != _MISSING) & (prev_day == d) & (v < prev)
        update = candidate & (not decrease)
        state_volume[at] = v if update else prev
        state_day[at] = d if update else prev_day
        reasons[i] |= _flag(decrease, _VOLUME_DECREASE)


@jit
def _reasons_kernel(rows, kind, carry_price, carry_volume, carry_day, day,
                    token, recv, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq,
                    params, volume):
    """tick_reasons in one call (``day`` may be empty: not given; ``volume``: judge
    VOLUME_DECREASE)."""
    max_q = params[5]
    n = len(token)
    n_rows = len(kind)
    reasons = np.empty(n, np.uint32)
    if n == 0:
        return reasons
    # The rare cases first, in vectorized loops: a row past the registry; ticks of several
    # IST days (the volume rule then takes pass 3).
    past = 0
    for i in range(n):
        past += rows[i] >= n_rows
    if past:
        raise ValueError("rows must be below the registry's length")
    other_days = 0
    if len(day):
        d0 = day[0]
        for i in range(n):
            other_days += day[i] != d0
    else:
        d0 = _exact_day(ex[0] if ex[0] != _MISSING else recv[0])
        lo_t, hi_t = _day_span(d0)
        for i in range(n):
            t = ex[i] if ex[i] != _MISSING else recv[i]
            other_days += (t < lo_t) | (t >= hi_t)
    one_day = other_days == 0
    # The volume rule's state per row on one day: the last valid volume, at first the
    # carry's if of day d0 (else none).
    state_volume = np.empty(n_rows if volume else 0, np.int64)
    for r in range(len(state_volume)):
        state_volume[r] = carry_volume[r] if carry_day[r] == d0 else _MISSING
    low_bits = _low_bits(max_q)
    # Duplicates: up to _BUCKET_TICKS ticks, one table; above, 2**p_bits partitions of the
    # ticks by hash, one table each (a table then stays in cache).
    p_bits = 0
    while (_BUCKET_TICKS << p_bits) < n:
        p_bits += 1
    p_shift = _U(64 - p_bits)
    hashes = np.empty(0 if p_bits else n, np.uint64)
    entries = np.empty(n if p_bits else 0, np.uint64)
    recent = np.zeros(2 * _RECENT if p_bits else 0, np.uint64)
    counts = np.zeros((1 << p_bits) + 1, np.int64)

    # Pass 1, arrival order, in chunks whose columns stay in cache, each loop over slices
    # (their indices are provably non-negative: no wraparound checks).
    chunk = min(n, _CHUNK)
    s_carry = np.empty(chunk, np.float64)
    s_kind = np.empty(chunk, np.int64)
    s_hash = np.empty(chunk if p_bits else 0, np.uint64)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        c = slice(lo, hi)
        _row_loop(rows[c], kind, carry_price, s_carry, s_kind)
        # The screen: 0 for a tick that surely breaks no stateless rule, 1 for one that may,
        # in few operations per column, and the hash, in loops LLVM vectorizes. A valid
        # but odd value makes a suspect too (an unknown instrument, a price within 2**-50
        # of its band's edge or below 2**-960, a zero or infinite reference, a quantity
        # above the largest 2**k - 1 ≤ max_quantity, exchange and receive times of opposite
        # signs); the exact rules then judge the suspects.
        h = s_hash[: hi - lo] if p_bits else hashes[c]
        _judge_chunk(lo, hi, rows, s_carry, s_kind, token, recv, ex, lp, ltq, vol, tbq, tsq, oi,
                     pc, bid, bq, ask, aq, params, low_bits, reasons, h)
        if p_bits:
            # The partitioned search's entries, then the volume rule as if no tick were a
            # duplicate but those found already (pass 2 redoes it if one was).
            _entries(lo, h, entries[c], counts, p_shift, recent, token, ex, lp, ltq, atp, vol,
                     tbq, tsq, oi, pc, bid, bq, ask, aq, reasons)
            if one_day & volume:
                _one_day_volume(rows[c], vol[c], state_volume, reasons[c])

    # Pass 2: the hash matches, (tick, earlier tick) pairs; then each confirmed column by
    # column.
    pairs = np.empty(n, np.uint64)
    if not p_bits:
        t_bits = _table_bits(4 * n, 4)  # load ≤ 1/4
        n_pairs = _matches_and_volume(hashes, np.zeros(1 << t_bits, np.uint16),
                                      _U(64 - t_bits), rows, vol, state_volume,
                                      one_day & volume,
                                      reasons, pairs)
    else:
        # A stable partition of the entries by their top bits, then each partition's table.
        for b in range(1 << p_bits):
            counts[b + 1] += counts[b]
        part = np.empty(counts[1 << p_bits], np.uint64)
        _scatter(entries, p_bits, counts[:-1].copy(), part)
        largest = 0
        for b in range(1 << p_bits):
            largest = max(largest, counts[b + 1] - counts[b])
        size = 1 << _table_bits(4 * largest, 2)
        n_pairs = 0
        if largest < 2**16:
            table16 = np.empty(size, np.uint16)
            for b in range(1 << p_bits):
                n_pairs = _partition_matches(part[counts[b]:counts[b + 1]], p_bits, table16,
                                             pairs, n_pairs)
        else:
            table32 = np.empty(size, np.uint32)
            for b in range(1 << p_bits):
                n_pairs = _partition_matches(part[counts[b]:counts[b + 1]], p_bits, table32,
                                             pairs, n_pairs)
    revote = False  # the volume rule judged a tick by a wrong guess of its DUPLICATE bit
    same = _confirm_pairs(pairs[:n_pairs], token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid,
                          bq, ask, aq)
    for q in range(n_pairs):
        i = np.int64(pairs[q] >> _S32)
        # One table marked its matches before the volume rule; with partitions, pass 1
        # judged their volumes as if they were no duplicates.
        bits = reasons[i] & ~_DUPLICATE
        if same[q] != (not p_bits):
            revote |= ((bits & ~_VOLUME_DECREASE) == 0) & (vol[i] != _MISSING)
        reasons[i] = bits | _flag(same[q], _DUPLICATE)

    if volume & ((not one_day) | revote):
        # Pass 3, arrival order: the volume rule in general (several days), or again.
        if not len(day):
            day = np.empty(n, np.int64)
            _ist_day_kernel(ex, recv, day)
        for i in range(n):
            reasons[i] &= ~_VOLUME_DECREASE
        _volume_loop(rows, vol, day, carry_volume.copy(), carry_day.copy(), reasons)
    return reasons


# -- large windows: parts on several cores ------------------------------------------------
#
# A window of _PARALLEL_TICKS ticks or more is cut into contiguous parts in arrival order
# (_parts), and each stage runs on them in Python threads, one per usable core, each
# taking the next part as it ends one (_on_cores; every kernel releases the GIL, and the
# work splits evenly: two halves of a million ticks take half the time of the whole on two
# cores). A (_judge_part): a part's pass 1 as _reasons_kernel does it (recent-hash cache
# included), its volume rule on one day from its own state, and its entries partitioned
# by hash. Then, sequentially and in O(parts · registry rows), the seams of the volume
# rule (_volume_seams). C (_search): groups of partitions, as many as parts, each
# partition gathered from every part and searched. A duplicate that pass 1 judged as a
# valid volume has the parts judge their volumes again; ticks of several IST days take
# pass 3 as in _reasons_kernel.


@jit
def _judge_part(lo, hi, from_carry, day, rows, kind, carry_price, carry_volume, carry_day,
                token, recv, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq,
                params, volume, p_bits, entries, part, starts, state_volume, first_volume,
                reasons):
    """Stage A over the ticks [lo, hi) of a large window: pass 1 of _reasons_kernel (the
    stateless rules, the hash, the recent-hash cache, the entries of the partitioned search
    in ``entries[lo:hi]``) and the volume rule on one day from this part's own state (the
    carry's if ``from_carry``, else none: see _part_volume, _volume_seams); then the part's
    entries into ``part`` from ``lo`` on, partition b at ``starts[b]:starts[b + 1]``
    (_scatter). Returns the number of rows past the registry in [lo - _RECENT, hi) (then
    nothing else is done) and of ticks on another IST day than the window's first (then
    the volume rule is left to pass 3)."""
    max_price, f_carry, f_option_carry, f_close, f_option_close, max_q, skew_, lag_ = params
    n_rows = len(kind)
    w_lo = max(lo - _RECENT, 0)  # the ticks that warm the recent-hash cache (see below)
    part_rows = rows[w_lo:hi]
    past = 0
    for i in range(len(part_rows)):
        past += part_rows[i] >= n_rows
    if past:
        return past, 0
    other_days = 0
    d0 = _first_day(day, ex, recv)
    if len(day):
        part_day = day[lo:hi]
        for i in range(len(part_day)):
            other_days += part_day[i] != d0
    else:
        lo_t, hi_t = _day_span(d0)
        part_ex = ex[lo:hi]
        part_recv = recv[lo:hi]
        for i in range(len(part_ex)):
            t = part_ex[i] if part_ex[i] != _MISSING else part_recv[i]
            other_days += (t < lo_t) | (t >= hi_t)
    one_day = other_days == 0
    _start_volume(from_carry, carry_volume, carry_day, d0, state_volume, first_volume)
    low_bits = _low_bits(max_q)
    p_shift = _U(64 - p_bits)
    counts = np.zeros((1 << p_bits) + 1, np.int64)
    recent = np.zeros(2 * _RECENT, np.uint64)
    chunk = min(max(hi - lo, lo - w_lo), _CHUNK)
    s_carry = np.empty(chunk, np.float64)
    s_kind = np.empty(chunk, np.int64)
    s_hash = np.empty(chunk, np.uint64)
    # The recent-hash cache starts with the hashes of the _RECENT ticks before the part, as
    # if the part went on from them: a repeat of one of them would otherwise be found in
    # stage C, and if its volume had been judged, every part would judge its volumes again.
    c = slice(w_lo, lo)
    h = s_hash[: lo - w_lo]
    suspect = np.empty(lo - w_lo, np.uint32)
    _row_loop(rows[c], kind, carry_price, s_carry, s_kind)
    _price_time_book(rows[c], s_carry, s_kind, lp[c], pc[c], ex[c], recv[c], bid[c], ask[c],
                     token[c], max_price, f_carry, f_option_carry, f_close, f_option_close,
                     np.int64(lag_), np.int64(skew_), suspect, h)
    _quantities(ltq[c], vol[c], tbq[c], tsq[c], oi[c], bq[c], aq[c], ~low_bits, suspect, h)
    r_shift = _U(64 - np.int64(np.log2(_RECENT)))
    for k in range(lo - w_lo):
        slot = np.int64((h[k] * _MIX) >> r_shift) * 2
        recent[slot] = h[k]
        recent[slot + 1] = _U(w_lo + k)
    for c_lo in range(lo, hi, _CHUNK):
        c_hi = min(c_lo + _CHUNK, hi)
        c = slice(c_lo, c_hi)
        h = s_hash[: c_hi - c_lo]
        _row_loop(rows[c], kind, carry_price, s_carry, s_kind)
        _judge_chunk(c_lo, c_hi, rows, s_carry, s_kind, token, recv, ex, lp, ltq, vol, tbq, tsq,
                     oi, pc, bid, bq, ask, aq, params, low_bits, reasons, h)
        _entries(c_lo, h, entries[c], counts, p_shift, recent, token, ex, lp, ltq, atp, vol,
                 tbq, tsq, oi, pc, bid, bq, ask, aq, reasons)
        if one_day & volume:
            _part_volume(rows[c], vol[c], state_volume, first_volume, reasons[c])
    starts[0] = lo
    for b in range(1 << p_bits):
        starts[b + 1] = starts[b] + counts[b + 1]
    _scatter(entries[lo:hi], p_bits, starts[:-1].copy(), part)
    return 0, other_days


@jit(inline="always")
def _first_day(day, ex, recv):
    """The IST day of a window's first tick (``day`` may be empty: not given)."""
    return day[0] if len(day) else _exact_day(ex[0] if ex[0] != _MISSING else recv[0])


@jit
def _start_volume(from_carry, carry_volume, carry_day, d0, state_volume, first_volume):
    """A part's state of the volume rule on day d0 before its first tick: the carry's (if
    ``from_carry``: the first part) or none."""
    for r in range(len(state_volume)):
        state_volume[r] = carry_volume[r] if from_carry & (carry_day[r] == d0) else _MISSING
        first_volume[r] = _MISSING


@jit
def _part_volume(rows, vol, state_volume, first_volume, reasons):
    """The volume rule on one IST day over a chunk of a part (see _judge_volume), keeping
    also each row's first judged volume while the row's state is none (MISSING_INT): what
    _volume_seams needs."""
    for i in range(len(reasons)):
        bits = reasons[i]
        w = vol[i] if bits == 0 else _MISSING
        at = max(rows[i], 0)
        if (state_volume[at] == _MISSING) & (w != _MISSING):
            first_volume[at] = w
        reasons[i] = _judge_volume(bits, vol[i], at, state_volume)


@jit
def _volume_seams(bounds, state_volume, first_volume, rows, vol, reasons):
    """The volume rule across the parts of a large window (``bounds``: their first ticks,
    and the end). The state of a row is the running maximum of its judged volumes (a
    decrease leaves it as it was), so part k > 0, which started from none, judged each
    volume against the maximum within the part, and the true state also holds ``before``,
    the maximum over the earlier parts and the carry: a tick decreased iff its volume is
    below either. Nothing changes unless a row's first judged volume in part k is below
    ``before``; then each of its judged volumes in part k below ``before`` decreased too
    (a scan of the part)."""
    n_rows = state_volume.shape[1]
    before = state_volume[0].copy()
    threshold = np.empty(n_rows, np.int64)
    for k in range(1, len(bounds) - 1):
        fixes = 0
        for r in range(n_rows):
            first = first_volume[k, r]
            fix = (first != _MISSING) & (first < before[r])
            threshold[r] = before[r] if fix else _MISSING
            fixes += fix
            before[r] = max(before[r], state_volume[k, r])
        for i in range(bounds[k], bounds[k + 1] if fixes else bounds[k]):
            bits = reasons[i]
            v = vol[i]
            decrease = ((bits & ~_VOLUME_DECREASE) == 0) & (v != _MISSING) & (
                v < threshold[max(rows[i], 0)])
            reasons[i] = bits | _flag(decrease, _VOLUME_DECREASE)


@jit
def _scatter(entries, p_bits, cursor, part):
    """Entries into their partitions (their top ``p_bits``), from ``cursor`` of each, in
    arrival order; holes are left out. In blocks: first each entry's place (a loop over the
    cursors only), then the stores. A store at a place loaded in the same iteration stalled
    the cursor loads of later iterations: 6.6 ns an entry in one loop, 2.3 in two."""
    p_shift = _U(64 - p_bits)
    place = np.empty(min(len(entries), _SCATTER_BLOCK), np.int64)
    for lo in range(0, len(entries), _SCATTER_BLOCK):
        block = entries[lo:lo + _SCATTER_BLOCK]
        for k in range(len(block)):
            e = block[k]
            b = np.int64(e >> p_shift)
            kept = e != _HOLE
            place[k] = cursor[b] if kept else -1
            cursor[b] += kept
        for k in range(len(block)):
            if place[k] >= 0:
                part[place[k]] = block[k]


@jit
def _groups(starts, n_groups):
    """Bounds of ``n_groups`` ranges of partitions with about as many entries each (the
    partition b of part k is ``starts[k, b]:starts[k, b + 1]``)."""
    n_buckets = starts.shape[1] - 1
    size = np.zeros(n_buckets + 1, np.int64)
    for k in range(starts.shape[0]):
        for b in range(n_buckets):
            size[b + 1] += starts[k, b + 1] - starts[k, b]
    for b in range(n_buckets):
        size[b + 1] += size[b]
    bounds = np.empty(n_groups + 1, np.int64)
    b = 0
    for g in range(n_groups):
        while size[b] * n_groups < size[n_buckets] * g:
            b += 1
        bounds[g] = b
    bounds[n_groups] = n_buckets
    return bounds


@jit
def _search(part, starts, b0, b1, p_bits, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid,
            bq, ask, aq, reasons):
    """Stage C: each partition b0 ≤ b < b1 gathered from every part (arrival order) and
    searched for hash matches (_partition_matches), then each match confirmed column by
    column (_confirm). Returns whether a confirmed duplicate had been judged as a valid
    volume (the volumes must then be judged again)."""
    n_parts = starts.shape[0]
    largest = 0
    total = 0
    for b in range(b0, b1):
        m = 0
        for k in range(n_parts):
            m += starts[k, b + 1] - starts[k, b]
        largest = max(largest, m)
        total += m
    bucket = np.empty(largest, np.uint64)
    pairs = np.empty(total, np.uint64)
    size = 1 << _table_bits(4 * largest, 2)
    table16 = np.empty(size if largest < 2**16 else 0, np.uint16)
    table32 = np.empty(0 if largest < 2**16 else size, np.uint32)
    n_pairs = 0
    for b in range(b0, b1):
        m = 0
        for k in range(n_parts):
            segment = part[starts[k, b]:starts[k, b + 1]]
            bucket[m:m + len(segment)] = segment
            m += len(segment)
        if largest < 2**16:
            n_pairs = _partition_matches(bucket[:m], p_bits, table16, pairs, n_pairs)
        else:
            n_pairs = _partition_matches(bucket[:m], p_bits, table32, pairs, n_pairs)
    return _confirm(pairs[:n_pairs], token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq,
                    ask, aq, reasons)


@jit
def _confirm(pairs, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq,
             reasons):
    """The pairs of a partitioned search confirmed (_confirm_pairs; a partition's pairs are
    in arrival order, and equal ticks share a partition); a confirmed one is a DUPLICATE.
    Returns whether one had been judged as a valid volume."""
    revote = False
    same = _confirm_pairs(pairs, token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask,
                          aq)
    for q in range(len(pairs)):
        i = np.int64(pairs[q] >> _S32)
        if same[q]:
            bits = reasons[i]
            revote |= ((bits & ~_VOLUME_DECREASE) == 0) & (vol[i] != _MISSING)
            reasons[i] = bits | _DUPLICATE
    return revote


@jit
def _revote_part(lo, hi, from_carry, day, ex, recv, rows, vol, carry_volume, carry_day,
                 state_volume, first_volume, reasons):
    """The volume rule on one day over the part [lo, hi) again, as stage A judged it but
    with every DUPLICATE known (_volume_seams follows)."""
    _start_volume(from_carry, carry_volume, carry_day, _first_day(day, ex, recv),
                  state_volume, first_volume)
    part = reasons[lo:hi]
    for i in range(len(part)):
        part[i] &= ~_VOLUME_DECREASE
    _part_volume(rows[lo:hi], vol[lo:hi], state_volume, first_volume, part)


@jit
def _several_days_volume(rows, vol, day, ex, recv, carry_volume, carry_day, reasons):
    """Pass 3 of a large window of several IST days: the volume rule in general, in
    arrival order (see _volume_loop)."""
    if not len(day):
        day = np.empty(len(reasons), np.int64)
        _ist_day_kernel(ex, recv, day)
    for i in range(len(reasons)):
        reasons[i] &= ~_VOLUME_DECREASE
    _volume_loop(rows, vol, day, carry_volume.copy(), carry_day.copy(), reasons)


def _reasons_in_parts(n_parts, rows, kind, carry_price, carry_volume, carry_day, day, columns,
                      params, volume):
    """tick_reasons of a large window in ``n_parts`` parts on the threads of _on_cores (see
    the stages above; ``columns`` are the batch's in TICK_COLUMNS order)."""
    n = len(rows)
    token, recv, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq = columns
    p_bits = 1
    while (_BUCKET_TICKS << p_bits) < n:
        p_bits += 1
    bounds = np.array([n * k // n_parts for k in range(n_parts + 1)], np.int64)
    reasons = np.empty(n, np.uint32)
    entries = np.empty(n, np.uint64)
    part = np.empty(n, np.uint64)
    starts = np.empty((n_parts, (1 << p_bits) + 1), np.int64)
    state_volume = np.empty((n_parts, len(kind)), np.int64)
    first_volume = np.empty((n_parts, len(kind)), np.int64)
    judged = _on_cores(_judge_part, [
        (bounds[k], bounds[k + 1], k == 0, day, rows, kind, carry_price, carry_volume,
         carry_day, *columns, params, volume, p_bits, entries, part, starts[k],
         state_volume[k], first_volume[k], reasons) for k in range(n_parts)])
    if any(past for past, _ in judged):
        raise ValueError("rows must be below the registry's length")
    one_day = not any(other_days for _, other_days in judged)
    if one_day and volume:
        _volume_seams(bounds, state_volume, first_volume, rows, vol, reasons)
    groups = _groups(starts, n_parts)
    revotes = _on_cores(_search, [(part, starts, groups[g], groups[g + 1], p_bits, token, ex,
                                   lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq,
                                   reasons) for g in range(n_parts)])
    if not volume:
        return reasons
    if not one_day:
        _several_days_volume(rows, vol, day, ex, recv, carry_volume, carry_day, reasons)
    elif any(revotes):
        _on_cores(_revote_part, [
            (bounds[k], bounds[k + 1], k == 0, day, ex, recv, rows, vol, carry_volume,
             carry_day, state_volume[k], first_volume[k], reasons) for k in range(n_parts)])
        _volume_seams(bounds, state_volume, first_volume, rows, vol, reasons)
    return reasons


# Windows of this many ticks or more are cut into parts. A large window pays ~0.25 ms for
# its hand-offs to the pool's threads (waking an idle core takes up to 0.1 ms here) and
# each part hashes 4,096 ticks more; from about 32,768 ticks on, two cores take less time
# than one (at 65,536 ticks, 20 ns per tick instead of 24).
_PARALLEL_TICKS = 2**16
_PART_TICKS = 2**16  # ticks that each of several parts per thread keeps at least


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_THREADS = min(_usable_cores(), 8)  # threads on a large window: the caller's and the pool's
_POOL: ThreadPoolExecutor | None = None  # _THREADS - 1 threads, made by the first large window
_POOL_LOCK = threading.Lock()


def _parts(n: int) -> int:
    """Parts of a window of ``n`` ticks: one below _PARALLEL_TICKS or on one core, else one
    per thread, or up to four while each keeps _PART_TICKS ticks. More parts than threads
    even out the threads' times, each thread taking the next part as it ends one: with
    another process on one of two cores, a million ticks took 26-27 ns per tick in 8
    parts, 31-34 in 2 (the same on idle cores)."""
    if n < _PARALLEL_TICKS or _THREADS < 2:
        return 1
    return _THREADS * min(4, max(1, n // (_THREADS * _PART_TICKS)))


def _on_cores(fn, calls):
    """``[fn(*args) for args in calls]`` on up to _THREADS threads at once, this one and the
    pool's, each taking the next call as it ends one. Every call has ended when it returns
    or raises (the first exception in call order)."""
    global _POOL
    outcomes = [None] * len(calls)
    errors = {}
    order = iter(range(len(calls)))
    lock = threading.Lock()

    def take_calls():
        while True:
            with lock:
                k = next(order, None)
            if k is None:
                return
            try:
                outcomes[k] = fn(*calls[k])
            except BaseException as e:
                errors[k] = e

    helpers = min(_THREADS, len(calls)) - 1
    if helpers > 0 and _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(_THREADS - 1, "vectorticks-masks")
    futures = [_POOL.submit(take_calls) for _ in range(helpers)]
    take_calls()
    for f in futures:
        f.result()
    if errors:
        raise errors[min(errors)]
    return outcomes


def _forget_pool() -> None:
    """A forked child has none of its parent's threads: a new pool when it needs one."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def reason_counts(reasons: np.ndarray) -> dict[str, int]:
    """Number of ticks carrying each reason bit.

    Every :class:`Reason` name is a key (0 when absent), in bit order; a set bit that no
    reason defines (a newer producer's code) is counted under ``"BIT_<k>"``.
    """
    per_bit = _bit_counts(np.ascontiguousarray(reasons).astype(np.uint32, copy=False)).tolist()
    out = {name: per_bit[k] for name, k in _REASON_BITS}
    for k in range(32):
        if per_bit[k] and k not in _DEFINED_BITS:
            out[f"BIT_{k}"] = per_bit[k]
    return out


_REASON_BITS = tuple((r.name, int(r).bit_length() - 1) for r in REASONS)
_DEFINED_BITS = frozenset(k for _, k in _REASON_BITS)


@jit
def _bit_counts(reasons):
    """How many values have each of the 32 bits set: one pass to see which bits occur,
    then a vectorized count of each that does (a window's quarantine has few)."""
    seen = np.uint32(0)
    for r in reasons:
        seen |= r
    counts = np.zeros(32, np.int64)
    for k in range(32):
        if (seen >> np.uint32(k)) & np.uint32(1):
            c = 0
            for r in reasons:
                c += (r >> np.uint32(k)) & np.uint32(1)
            counts[k] = c
    return counts


def describe(bits: int) -> list[str]:
    """Names of the reasons set in one bitmask, lowest bit first (``"BIT_<k>"`` for a bit
    that no reason defines)."""
    bits = int(bits)
    if bits < 0 or bits >= 1 << 32:
        raise ValueError(f"a reason bitmask is a uint32, got {bits}")
    names = {int(r).bit_length() - 1: r.name for r in REASONS}
    return [names.get(k, f"BIT_{k}") for k in range(32) if bits >> k & 1]

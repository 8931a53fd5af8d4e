"""Vectorized validation masks and their reason codes.

:func:`tick_reasons` gives every tick of a window a ``uint32`` bitmask of :class:`Reason`
codes (0 = the tick is good). A rejected tick carries that bitmask into the window's
quarantine section; the set of codes is bounded (at most 32) and their bit values are part
of the payload contract: a code, once published, keeps its bit.

Everything runs in one Numba call. The stateless rules are short branch-free loops over
cache-sized chunks of the columns, which LLVM vectorizes (as NumPy expressions over whole
columns they cost about 65 ns per tick on a million ticks: every operation streams a fresh
temporary through memory); the two stateful rules (exact duplicates within the window,
cumulative volume decreasing within a day) follow in arrival order.
:mod:`vectorticks.validate` states the same rules as pandera schemas, written
independently, for notebooks, replays and tests. ``docs/validation.md`` documents each code
with its defaults.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

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
    t = np.where(exchange_ts != MISSING_INT, exchange_ts, received_ns)
    # floor((t + offset) / day) without overflowing: split t into whole days and the rest.
    return t // NS_PER_DAY + (t % NS_PER_DAY + IST_OFFSET_NS) // NS_PER_DAY


def tick_reasons(batch: TickBatch, rows: np.ndarray, kind: np.ndarray, last_price: np.ndarray,
                 volume_traded: np.ndarray, volume_day: np.ndarray,
                 limits: Limits = _DEFAULT_LIMITS) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        ``uint32`` per tick: the OR of the :class:`Reason` bits of every rule it breaks.
        ``VOLUME_DECREASE`` is only evaluated for ticks that break no other rule, and only
        ticks with mask 0 and a present volume become an instrument's "previous valid"
        tick. The carries are not modified.

    Notes
    -----
    One Numba call of three passes: the stateless rules and a 64-bit hash of every tick
    (arrival order, vectorized loops over chunks of 1,024 ticks); the duplicates, found
    with small open-addressing hash tables after a stable radix partition of the hashes
    (partitions of at most ~8,192 ticks on average, so that each table stays in cache;
    a hash match is confirmed column by column); the volume rule (arrival order, per-row
    state). Expected O(n) time; about 20 bytes of scratch per tick plus two copies of the
    volume carries.
    """
    n = len(batch)
    rows = np.asarray(rows)
    if rows.shape != (n,) or rows.dtype.kind not in "iu":
        raise ValueError(f"rows must be {n} integers, one per tick, got shape {rows.shape} "
                         f"{rows.dtype}")
    if not len(last_price) == len(volume_traded) == len(volume_day) == len(kind):
        raise ValueError("kind, last_price, volume_traded and volume_day must have one entry "
                         "per registry row")
    if n >= 2**32 - 1:
        raise ValueError("a window holds fewer than 2**32 - 1 ticks")
    if not len(kind):  # an empty registry: every token is unknown; one dummy row
        if n and rows.max() >= 0:
            raise ValueError("rows must be below the registry's length")
        kind, last_price = np.array([Kind.CALL], np.int8), np.array([np.nan])
        volume_traded = volume_day = np.array([MISSING_INT])
    f = limits.band_factor
    return _reasons_kernel(
        rows.astype(np.int64, copy=False), np.asarray(kind, np.int8),
        np.asarray(last_price, np.float64), np.asarray(volume_traded, np.int64),
        np.asarray(volume_day, np.int64),
        batch.instrument_token, batch.received_ns, batch.exchange_ts, batch.last_price,
        batch.prev_close, batch.bid_price, batch.ask_price,
        _bits(batch.last_price), batch.last_traded_quantity,
        _bits(batch.average_traded_price), batch.volume_traded, batch.total_buy_quantity,
        batch.total_sell_quantity, batch.oi, _bits(batch.prev_close),
        _bits(batch.bid_price), batch.bid_quantity, _bits(batch.ask_price),
        batch.ask_quantity,
        float(limits.max_price), f(False, True), f(True, True), f(False, False),
        f(True, False), np.uint64(limits.max_quantity), np.uint64(limits.max_ts_skew_ns),
        np.uint64(limits.max_ts_lag_ns))


def _bits(a: np.ndarray) -> np.ndarray:
    """A float64 column as its uint64 bit patterns (no copy)."""
    return a.view(np.uint64)


_U = np.uint64
# Hash: a multilinear form (odd 32-bit constants, 64-bit sums) of the 14 column values
# folded to 32 bits, then murmur3's fmix64. The 32 × 32 → 64-bit products are one AVX2
# instruction (vpmuludq). Collisions only cost a column-by-column comparison.
_K = tuple(_U((0x9E3779B9 * (2 * k + 1) + 0x85EBCA6B * k) % 2**32 | 1) for k in range(14))
_K0, _K1, _K2, _K3, _K4, _K5, _K6, _K7, _K8, _K9, _K10, _K11, _K12, _K13 = _K
_M1 = _U(0xFF51AFD7ED558CCD)
_M2 = _U(0xC4CEB9FE1A85EC53)
_S33 = _U(33)
_S32 = _U(32)
_ABS = _U(0x7FFFFFFFFFFFFFFF)
_INF_BITS = _U(0x7FF0000000000000)
_NAN_BITS = _U(0x7FF8000000000000)
_ZERO = _U(0)
_ONE = _U(1)
_LOW32 = _U(0xFFFFFFFF)
_MISSING = int(MISSING_INT)
_CALL = int(Kind.CALL)
_DAY = NS_PER_DAY
_IST = IST_OFFSET_NS
_CHUNK = 1024  # ticks per pass-1 chunk: its columns stay in L2 between the loops
_BUCKET_TICKS = 8192  # most ticks per partition on average: its table (≤ 128 KiB) stays in L2

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


@jit(inline="always")
def _canon(b):
    """Bits of a float64 with every NaN made one NaN and -0.0 made 0.0: equal bits then
    mean equal values, NaN equal to NaN. (Branch-free: selects, no jumps.)"""
    a = b & _ABS
    b = _NAN_BITS if a > _INF_BITS else b
    return _ZERO if a == _ZERO else b


@jit(inline="always")
def _fold(x):
    """A 64-bit value folded to 32 bits, as uint64 (for the hash's 32 × 32-bit products)."""
    u = _U(x)
    return (u ^ (u >> _S32)) & _LOW32


@jit(inline="always")
def _flag(condition, reason):
    """``reason`` if ``condition`` else 0, without a branch (the data decide the
    conditions, so a branch would be mispredicted often)."""
    return np.uint32(condition) * reason


@jit(inline="always")
def _bad_quantity(q, max_quantity):
    """Negative or above ``max_quantity``; ``MISSING_INT`` is missing, not bad. (As uint64 a
    negative value exceeds any ``max_quantity < 2**63``.)"""
    return (_U(q) > max_quantity) & (q != _MISSING)


@jit(inline="always")
def _price_rules(p, is_option, carry_ref, prev_close, f_carry, f_close, max_price):
    """NON_FINITE_PRICE, NON_POSITIVE_PRICE, PRICE_ABOVE_MAX and PRICE_JUMP of one price.

    ``carry_ref`` is the row's carried last good price when finite and > 0, else NaN;
    ``f_carry``/``f_close`` are the row's band factors ``1 + m`` against the carry and
    against ``prev_close``. A non-finite price only gets NON_FINITE_PRICE; the band needs a
    finite reference > 0 and a price > 0 (a zero option price is no trade, not a jump).
    """
    finite = (p - p) == 0.0  # False for NaN and ±inf
    from_carry = carry_ref == carry_ref  # predictable: the carry is there after a window
    ref = carry_ref if from_carry else prev_close
    f = f_carry if from_carry else f_close
    outside = (p < ref / f) | (p > ref * f)
    jump = outside & (ref > 0.0) & (ref < np.inf) & (p > 0.0) & finite
    non_positive = ((p < 0.0) | ((p == 0.0) & (not is_option))) & finite
    return (_flag(not finite, _NON_FINITE_PRICE) | _flag(non_positive, _NON_POSITIVE_PRICE)
            | _flag((p > max_price) & finite, _PRICE_ABOVE_MAX) | _flag(jump, _PRICE_JUMP))


@jit(inline="always")
def _time_rules(ex, recv, skew, lag):
    """EXCHANGE_TS_FUTURE and EXCHANGE_TS_STALE of a present ``exchange_ts``: uint64
    differences are exact once the sign of ``ex - recv`` is known."""
    present = ex != _MISSING
    future = present & (ex > recv) & (_U(ex) - _U(recv) > skew)
    stale = present & (ex < recv) & (_U(recv) - _U(ex) > lag)
    return _flag(future, _EXCHANGE_TS_FUTURE) | _flag(stale, _EXCHANGE_TS_STALE)


@jit(inline="always")
def _book_rules(bid, ask, bid_qty, ask_qty, max_quantity):
    """CROSSED_BOOK and BAD_DEPTH (NaN or 0 is an empty side)."""
    crossed = (ask > 0.0) & (bid > ask) & (bid < np.inf)
    bad = ((bid < 0.0) | (bid == np.inf) | (ask < 0.0) | (ask == np.inf)
           | _bad_quantity(bid_qty, max_quantity) | _bad_quantity(ask_qty, max_quantity))
    return _flag(crossed, _CROSSED_BOOK) | _flag(bad, _BAD_DEPTH)


@jit(inline="always")
def _quantity_rules(ltq, vol, tbq, tsq, oi, max_quantity):
    """BAD_QUANTITY and BAD_OI."""
    bad = (_bad_quantity(ltq, max_quantity) | _bad_quantity(vol, max_quantity)
           | _bad_quantity(tbq, max_quantity) | _bad_quantity(tsq, max_quantity))
    return _flag(bad, _BAD_QUANTITY) | _flag(_bad_quantity(oi, max_quantity), _BAD_OI)


@jit
def _row_rules(rows, kind, carry_price, price, prev_close, max_price, f_carry,
               f_option_carry, f_close, f_option_close, reasons, option, ref):
    """UNKNOWN_INSTRUMENT and the price rules. The per-row values are gathered first into
    the scratch arrays ``option`` and ``ref`` (at least as long as ``rows``), so that the
    rules themselves run in a loop LLVM vectorizes. An unknown instrument is an option
    (the most permissive limits) without a carried price."""
    for i in range(len(rows)):
        row = rows[i]
        known = row >= 0
        at = row if known else 0
        cp = carry_price[at]
        option[i] = (kind[at] >= _CALL) | (not known)
        ref[i] = cp if known & (cp > 0.0) & (cp < np.inf) else np.nan
    for i in range(len(rows)):
        is_option = option[i]
        reasons[i] = _flag(rows[i] < 0, _UNKNOWN_INSTRUMENT) | _price_rules(
            price[i], is_option, ref[i], prev_close[i],
            f_option_carry if is_option else f_carry,
            f_option_close if is_option else f_close, max_price)


@jit
def _quantity_loop(ltq, vol, tbq, tsq, oi, max_quantity, reasons):
    for i in range(len(reasons)):
        reasons[i] |= _quantity_rules(ltq[i], vol[i], tbq[i], tsq[i], oi[i], max_quantity)


@jit
def _time_book_loop(ex, recv, skew, lag, bid_price, ask_price, bq, aq, max_quantity,
                    reasons):
    for i in range(len(reasons)):
        reasons[i] |= _time_rules(ex[i], recv[i], skew, lag)
    for i in range(len(reasons)):
        reasons[i] |= _book_rules(bid_price[i], ask_price[i], bq[i], aq[i], max_quantity)


@jit
def _hash_loop(token, ex, lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq,
               hashes):
    """64-bit hash of every column but received_ns of ticks ``lo:hi``: a multilinear form
    of the columns folded to 32 bits (floats canonical), then murmur3's fmix64."""
    for i in range(len(hashes)):
        hashes[i] = (_fold(token[i]) * _K0 + _fold(ex[i]) * _K1 + _fold(_canon(lp[i])) * _K2
                     + _fold(ltq[i]) * _K3 + _fold(_canon(atp[i])) * _K4
                     + _fold(vol[i]) * _K5 + _fold(tbq[i]) * _K6)
    for i in range(len(hashes)):
        hashes[i] += (_fold(tsq[i]) * _K7 + _fold(oi[i]) * _K8 + _fold(_canon(pc[i])) * _K9
                      + _fold(_canon(bid[i])) * _K10 + _fold(bq[i]) * _K11
                      + _fold(_canon(ask[i])) * _K12 + _fold(aq[i]) * _K13)
    for i in range(len(hashes)):
        h = hashes[i]
        h ^= h >> _S33
        h *= _M1
        h ^= h >> _S33
        h *= _M2
        h ^= h >> _S33
        hashes[i] = h


@jit
def _reasons_kernel(rows, kind, carry_price, carry_volume, carry_day,
                    token, recv, ex, price, prev_close, bid_price, ask_price,
                    lp, ltq, atp, vol, tbq, tsq, oi, pc, bid, bq, ask, aq,
                    max_price, f_carry, f_option_carry, f_close, f_option_close,
                    max_quantity, skew, lag):
    n = len(token)
    n_rows = len(kind)
    if n and rows.max() >= n_rows:
        raise ValueError("rows must be below the registry's length")
    state_volume = carry_volume.copy()
    state_day = carry_day.copy()
    reasons = np.empty(n, np.uint32)
    hashes = np.empty(n, np.uint64)
    n_buckets = 1
    while n_buckets * _BUCKET_TICKS < n:
        n_buckets *= 2
    nb = _U(n_buckets)
    counts = np.zeros(n_buckets + 1, np.int64)

    # Pass 1, arrival order, in chunks that stay in cache: the stateless rules and the
    # hash, each group of columns in its own short loop over slices (LLVM vectorizes those:
    # the indices are provably non-negative, so no wraparound checks).
    s_option = np.empty(_CHUNK, np.bool_)
    s_ref = np.empty(_CHUNK, np.float64)
    for lo in range(0, n, _CHUNK):
        c = slice(lo, min(lo + _CHUNK, n))
        _row_rules(rows[c], kind, carry_price, price[c], prev_close[c], max_price,
                   f_carry, f_option_carry, f_close, f_option_close, reasons[c], s_option,
                   s_ref)
        _quantity_loop(ltq[c], vol[c], tbq[c], tsq[c], oi[c], max_quantity, reasons[c])
        _time_book_loop(ex[c], recv[c], skew, lag, bid_price[c], ask_price[c], bq[c], aq[c],
                        max_quantity, reasons[c])
        _hash_loop(token[c], ex[c], lp[c], ltq[c], atp[c], vol[c], tbq[c], tsq[c], oi[c],
                   pc[c], bid[c], bq[c], ask[c], aq[c], hashes[c])
        if n_buckets > 1:
            for h in hashes[c]:
                counts[np.int64((h >> _S32) * nb >> _S32) + 1] += 1
    if n_buckets == 1:
        counts[1] = n

    # Pass 2: stable partition of the ticks by the high hash bits (skipped when there is
    # one partition), then one small open-addressing table per partition (linear probing,
    # load ≤ 1/4) over the low 32 bits. An entry of a partition packs the low 32 hash bits
    # over the tick's index; a table slot holds 1 + the entry's position in its partition.
    # A match of the low hash bits is confirmed column by column. Within a partition the
    # ticks keep arrival order, so the first of equal ticks is the one kept.
    for b in range(n_buckets):
        counts[b + 1] += counts[b]
    part = np.empty(n, np.uint64)
    if n_buckets == 1:
        for i in range(n):
            part[i] = (hashes[i] << _S32) | _U(i)
    else:
        cursor = counts[:-1].copy()
        for i in range(n):
            h = hashes[i]
            b = np.int64((h >> _S32) * nb >> _S32)
            pos = cursor[b]
            cursor[b] = pos + 1
            part[pos] = (h << _S32) | _U(i)
    largest = 0
    for b in range(n_buckets):
        largest = max(largest, counts[b + 1] - counts[b])
    table = np.empty(4 * largest + 1, np.uint32)
    for b in range(n_buckets):
        lo = counts[b]
        m = counts[b + 1] - lo
        size = _U(4 * m + 1)
        table[: 4 * m + 1] = 0
        for q in range(m):
            entry = part[lo + q]
            h = entry >> _S32
            j = (h * size) >> _S32
            while True:
                e = table[j]
                if e == 0:
                    table[j] = q + 1
                    break
                other = part[lo + e - 1]
                # Every column but received_ns, compared here rather than in a helper
                # taking the arrays: an inlined call would pay an atomic reference count
                # per array argument.
                i = np.int64(entry & _LOW32)
                k = np.int64(other & _LOW32)
                if ((other >> _S32) == h and token[i] == token[k] and ex[i] == ex[k]
                        and vol[i] == vol[k] and _canon(lp[i]) == _canon(lp[k])
                        and ltq[i] == ltq[k] and _canon(atp[i]) == _canon(atp[k])
                        and tbq[i] == tbq[k] and tsq[i] == tsq[k] and oi[i] == oi[k]
                        and _canon(pc[i]) == _canon(pc[k]) and _canon(bid[i]) == _canon(bid[k])
                        and bq[i] == bq[k] and _canon(ask[i]) == _canon(ask[k])
                        and aq[i] == aq[k]):
                    reasons[i] |= _DUPLICATE
                    break
                j += _ONE
                if j == size:
                    j = _ZERO

    # Pass 3, arrival order: cumulative volume against the previous valid tick of the
    # same row (the carry before the first), on the same IST day. Branch-free: whether a
    # tick is a candidate depends on the data, so a branch would be mispredicted often.
    for i in range(n):
        v = vol[i]
        candidate = (reasons[i] == 0) & (v != _MISSING)  # then the row is known
        t = ex[i] if ex[i] != _MISSING else recv[i]
        day = t // _DAY + (t % _DAY + _IST) // _DAY
        row = max(rows[i], 0)
        prev = state_volume[row]
        prev_day = state_day[row]
        decrease = candidate & (prev != _MISSING) & (prev_day == day) & (v < prev)
        update = candidate & (not decrease)
        state_volume[row] = v if update else prev
        state_day[row] = day if update else prev_day
        reasons[i] |= _flag(decrease, _VOLUME_DECREASE)
    return reasons


def reason_counts(reasons: np.ndarray) -> dict[str, int]:
    """Number of ticks carrying each reason bit.

    Every :class:`Reason` name is a key (0 when absent), in bit order; a set bit that no
    reason defines (a newer producer's code) is counted under ``"BIT_<k>"``.
    """
    le = np.ascontiguousarray(reasons).astype("<u4", copy=False)  # bytes low to high
    bits = np.unpackbits(le.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    per_bit = bits.sum(axis=0, dtype=np.int64)
    out = {r.name: int(per_bit[int(r).bit_length() - 1]) for r in REASONS}
    defined = {int(r).bit_length() - 1 for r in REASONS}
    for k in range(32):
        if k not in defined and per_bit[k]:
            out[f"BIT_{k}"] = int(per_bit[k])
    return out  # type: ignore[return-value]


def describe(bits: int) -> list[str]:
    """Names of the reasons set in one bitmask, lowest bit first (``"BIT_<k>"`` for a bit
    that no reason defines)."""
    bits = int(bits)
    if bits < 0 or bits >= 1 << 32:
        raise ValueError(f"a reason bitmask is a uint32, got {bits}")
    names = {int(r).bit_length() - 1: r.name for r in REASONS}
    return [names.get(k, f"BIT_{k}") for k in range(32) if bits >> k & 1]

"""compute_window: one window of ticks → bars, option snapshots and quarantine (pure).

No I/O, no clock, no globals: the previous window's per-instrument carry goes in, the new
carry comes out, so replaying the same ticks gives the same results. (A performance
counter times the Greeks stage for the metrics; it changes no result.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._jit import jit
from .chain import GreeksParams, fill_greeks
from .columns import (
    BAR_COLUMNS,
    MISSING_INT,
    OPTION_COLUMNS,
    QUARANTINE_COLUMNS,
    Table,
    TickBatch,
    empty_table,
)
from .instruments import InstrumentRegistry, Kind
from .masks import Limits, Reason, ist_day, tick_reasons


@dataclass(frozen=True, slots=True)
class Carry:
    """What one window leaves for the next, per registry row.

    ``volume_traded`` is the last cumulative day volume seen (``MISSING_INT`` before the
    first), from which each window's volume is a difference that survives gaps.
    """

    volume_traded: np.ndarray  # int64
    last_price: np.ndarray     # float64, last good price
    volume_day: np.ndarray     # int64, IST day of volume_traded (masks.ist_day)

    @classmethod
    def initial(cls, n_instruments: int) -> Carry:
        return cls(np.full(n_instruments, MISSING_INT, np.int64),
                   np.full(n_instruments, np.nan, np.float64),
                   np.full(n_instruments, MISSING_INT, np.int64))


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Everything a window publishes; tables follow the schemas of :mod:`vectorticks.columns`.

    ``ticks_in`` counts every tick that entered the window: it equals the ticks summed over
    ``bars`` and ``options`` (``tick_count``) plus the rows of ``quarantine``.
    """

    seq: int
    start_ns: int
    end_ns: int
    ticks_in: int
    bars: Table
    options: Table
    quarantine: Table
    tick_rows: np.ndarray | None = None
    """Per input tick, its registry row (-1: unknown token); for metrics, not published."""
    tick_reasons: np.ndarray | None = None
    """Per input tick, its reason bits (0: valid); for metrics, not published."""
    greeks_ns: int = 0
    """Time spent on forwards, IV and Greeks (``perf_counter_ns``); for metrics."""

    @property
    def ticks_published(self) -> int:
        """Ticks that made it into a bar or a snapshot."""
        return int(self.bars["tick_count"].sum() + self.options["tick_count"].sum())


def compute_window(batch: TickBatch, registry: InstrumentRegistry, carry: Carry, *,
                   seq: int, start_ns: int, end_ns: int,
                   greeks: GreeksParams | None = None,
                   validation: Limits | None = None) -> tuple[WindowResult, Carry]:
    """Compute one window.

    Parameters
    ----------
    batch
        The window's ticks in arrival order.
    registry
        Instruments; ``carry`` is indexed by its rows.
    carry
        State left by the previous window (``Carry.initial`` for the first); not modified.
    seq, start_ns, end_ns
        Window sequence number and bounds, copied into the result.
    greeks
        How to compute each option's IV and Greeks (as of ``end_ns``); ``None`` leaves
        those columns missing.
    validation
        Bounds of the validation rules (:mod:`vectorticks.masks`): rows that break any go
        to the quarantine with their reason bits, never into a bar, snapshot or Greek.
        ``None`` checks only that the instrument is known.

    Returns
    -------
    (WindowResult, Carry)
        The window's tables (bars and snapshots sorted by instrument token) and the carry
        for the next window.
    """
    rows = registry.rows_of(batch.instrument_token)
    day = ist_day(batch.exchange_ts, batch.received_ns)  # for the volume rule and the carry
    if validation is None:
        # UNKNOWN_INSTRUMENT is bit 0, so this is the reason bits (3x np.where's speed).
        reasons = (rows < 0).astype(np.uint32)
    else:
        # VOLUME_DECREASE is judged below, in the per-instrument pass that follows each
        # instrument's volume anyway (tick_reasons would keep a state per row for it).
        reasons = tick_reasons(batch, rows, registry.kind, carry.last_price,
                               carry.volume_traded, carry.volume_day, validation, day=day,
                               volume=False)
    bad = reasons != 0
    good_rows = np.where(bad, -1, rows)

    order, starts = _group_order(good_rows, len(registry))
    sorted_rows = good_rows[order]

    new_volume = carry.volume_traded.copy()
    new_price = carry.last_price.copy()
    new_day = carry.volume_day.copy()
    g = _Groups(len(starts))
    decreases = _group_kernel(
        order, starts, sorted_rows, validation is not None, reasons, batch.last_price,
        batch.volume_traded, batch.oi, batch.received_ns, day, batch.bid_price,
        batch.bid_quantity, batch.ask_price, batch.ask_quantity, new_volume, new_price,
        new_day, g.open, g.high, g.low, g.close, g.volume, g.volume_traded, g.count, g.oi,
        g.first_ns, g.last_ns, g.bid, g.bid_qty, g.ask, g.ask_qty)
    group_rows = sorted_rows[starts]
    if decreases:
        bad = reasons != 0
        if not g.count.all():  # every tick of an instrument was a volume decrease
            group_rows = g.keep(g.count > 0, group_rows)
    quarantine = _quarantine(batch, bad, reasons)

    is_option = registry.kind[group_rows] >= Kind.CALL
    bars = _bars(registry, group_rows, g, ~is_option)
    options = _options(registry, group_rows, g, is_option)
    greeks_ns = 0
    if greeks is not None:
        t0 = time.perf_counter_ns()
        fill_greeks(options, group_rows[is_option], registry, new_price, end_ns, greeks)
        greeks_ns = time.perf_counter_ns() - t0
    result = WindowResult(seq=seq, start_ns=start_ns, end_ns=end_ns, ticks_in=len(batch),
                          bars=bars, options=options, quarantine=quarantine, tick_rows=rows,
                          tick_reasons=reasons, greeks_ns=greeks_ns)
    return result, Carry(new_volume, new_price, new_day)


class _Groups:
    """Per-instrument outputs of the kernel, one slot per instrument that ticked."""

    def __init__(self, n: int) -> None:
        self.open = np.empty(n, np.float64)
        self.high = np.empty(n, np.float64)
        self.low = np.empty(n, np.float64)
        self.close = np.empty(n, np.float64)
        self.volume = np.empty(n, np.int64)
        self.volume_traded = np.empty(n, np.int64)
        self.count = np.empty(n, np.int32)
        self.oi = np.empty(n, np.int64)
        self.first_ns = np.empty(n, np.int64)
        self.last_ns = np.empty(n, np.int64)
        self.bid = np.empty(n, np.float64)
        self.bid_qty = np.empty(n, np.int64)
        self.ask = np.empty(n, np.float64)
        self.ask_qty = np.empty(n, np.int64)

    def keep(self, selected: np.ndarray, group_rows: np.ndarray) -> np.ndarray:
        """Keep only the ``selected`` groups (in place); returns their rows."""
        for name, values in vars(self).items():
            setattr(self, name, values[selected])
        return group_rows[selected]


@jit
def _group_order(rows, n_rows):
    """Counting sort of the known ticks by registry row, stable (arrival order kept within
    an instrument): returns the tick order and the position where each instrument's group
    starts. O(ticks + instruments), unlike a comparison sort."""
    counts = np.zeros(n_rows + 1, np.int64)
    for r in rows:
        if r >= 0:
            counts[r + 1] += 1
    groups = 0
    for r in range(n_rows):
        if counts[r + 1]:
            groups += 1
        counts[r + 1] += counts[r]
    # Each tick's place first, then the stores: a store at a place loaded in the same
    # iteration stalls the loads of later iterations (a quarter of this kernel's time).
    place = np.empty(len(rows), np.int64)
    for i in range(len(rows)):
        r = max(rows[i], 0)
        known = rows[i] >= 0
        place[i] = counts[r] if known else -1
        counts[r] += known
    order = np.empty(counts[n_rows], np.int64)
    for i in range(len(rows)):
        if place[i] >= 0:
            order[place[i]] = i
    starts = np.empty(groups, np.int64)
    g = 0
    pos = 0
    for r in range(n_rows):
        end = counts[r]  # after the fill, counts[r] is where row r's group ends
        if end > pos:
            starts[g] = pos
            g += 1
            pos = end
    return order, starts


_VOLUME_DECREASE = np.uint32(Reason.VOLUME_DECREASE)


@jit
def _group_kernel(order, starts, sorted_rows, judge_volume, reasons, price, cum_volume, oi,
                  received, day, bid, bid_qty, ask, ask_qty, carry_volume, carry_price,
                  carry_day, o_open, o_high, o_low, o_close, o_volume, o_volume_traded,
                  o_count, o_oi, o_first, o_last, o_bid, o_bid_qty, o_ask, o_ask_qty):
    """One pass over the ticks grouped by instrument (``order`` sorts them, ``starts`` marks
    each group's first position). Missing values are skipped: the last *present* value wins.
    Window volume sums the increments of cumulative ``volume_traded`` against the carry; a
    decrease means the day's counter restarted, so the new value is itself the increment.

    With ``judge_volume``, a volume below the previous valid one of the same IST day (the
    carry's, then the last counted tick's) is the rule VOLUME_DECREASE of
    :mod:`vectorticks.masks`: the tick gets that bit in ``reasons`` and is not counted (a
    group may then count no tick). Returns the number of such ticks.
    """
    missing = np.iinfo(np.int64).min
    n = len(order)
    decreases = 0
    for g in range(len(starts)):
        lo = starts[g]
        hi = starts[g + 1] if g + 1 < len(starts) else n
        row = sorted_rows[lo]
        first_px = np.nan
        high = np.nan
        low = np.nan
        last_px = np.nan
        vol = 0
        last_cum = missing
        last_oi = missing
        b = np.nan
        bq = missing
        a = np.nan
        aq = missing
        prev_cum = carry_volume[row]
        prev_day = carry_day[row]
        count = 0
        first_ns = 0
        last_ns = 0
        for k in range(lo, hi):
            i = order[k]
            v = cum_volume[i]
            # (v < prev_cum first: rarely true, so one predictable branch per tick)
            if v < prev_cum and judge_volume and v != missing and prev_day == day[i]:
                reasons[i] |= _VOLUME_DECREASE
                decreases += 1
                continue
            if count == 0:
                first_ns = received[i]
            last_ns = received[i]
            count += 1
            p = price[i]
            if np.isfinite(p):
                if not np.isfinite(first_px):
                    first_px = p
                    high = p
                    low = p
                else:
                    high = max(high, p)
                    low = min(low, p)
                last_px = p
            if v != missing:
                if prev_cum != missing:
                    vol += v - prev_cum if v >= prev_cum else v
                prev_cum = v
                prev_day = day[i]
                last_cum = v
            if oi[i] != missing:
                last_oi = oi[i]
            if np.isfinite(bid[i]):
                b = bid[i]
                bq = bid_qty[i]
            if np.isfinite(ask[i]):
                a = ask[i]
                aq = ask_qty[i]
        carry_volume[row] = prev_cum
        carry_day[row] = prev_day
        if np.isfinite(last_px):
            carry_price[row] = last_px
        o_open[g] = first_px
        o_high[g] = high
        o_low[g] = low
        o_close[g] = last_px
        o_volume[g] = vol
        o_volume_traded[g] = last_cum
        o_count[g] = count
        o_oi[g] = last_oi
        o_first[g] = first_ns
        o_last[g] = last_ns
        o_bid[g] = b
        o_bid_qty[g] = bq
        o_ask[g] = a
        o_ask_qty[g] = aq
    return decreases


def _bars(registry: InstrumentRegistry, rows: np.ndarray, g: _Groups, sel: np.ndarray) -> Table:
    table = {
        "instrument_token": registry.token[rows[sel]],
        "open": g.open[sel], "high": g.high[sel], "low": g.low[sel], "close": g.close[sel],
        "volume": g.volume[sel], "volume_traded": g.volume_traded[sel],
        "tick_count": g.count[sel], "oi": g.oi[sel],
        "first_received_ns": g.first_ns[sel], "last_received_ns": g.last_ns[sel],
    }
    return {c.name: table[c.name] for c in BAR_COLUMNS}


def _options(registry: InstrumentRegistry, rows: np.ndarray, g: _Groups,
             sel: np.ndarray) -> Table:
    r = rows[sel]
    bid, ask = g.bid[sel], g.ask[sel]
    quoted = (bid > 0) & (ask > 0)
    table = empty_table(OPTION_COLUMNS, len(r))  # IV and Greeks stay NaN until computed
    table.update({
        "instrument_token": registry.token[r],
        "underlying_token": registry.underlying_token[r],
        "future_token": registry.future_token[r],
        "strike": registry.strike[r],
        "expiry_ns": registry.expiry_ns[r],
        "is_call": registry.kind[r] == Kind.CALL,
        "last_price": g.close[sel],
        "bid_price": bid, "bid_quantity": g.bid_qty[sel],
        "ask_price": ask, "ask_quantity": g.ask_qty[sel],
        "mid_price": np.where(quoted, (bid + ask) * 0.5, np.nan),
        "oi": g.oi[sel], "volume_traded": g.volume_traded[sel], "volume": g.volume[sel],
        "tick_count": g.count[sel], "last_received_ns": g.last_ns[sel],
    })
    return table


def _quarantine(batch: TickBatch, rejected: np.ndarray, reasons: np.ndarray) -> Table:
    idx = np.flatnonzero(rejected)
    table = {
        "instrument_token": batch.instrument_token[idx],
        "received_ns": batch.received_ns[idx],
        "reason": reasons[idx].astype(np.uint32),
        "last_price": batch.last_price[idx],
        "volume_traded": batch.volume_traded[idx],
    }
    return {c.name: table[c.name] for c in QUARANTINE_COLUMNS}

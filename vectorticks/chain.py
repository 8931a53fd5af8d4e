"""Option-chain inputs of the Greeks, per window (pure): each option's forward, time to
expiry and the premium to invert, then implied volatility and Greeks by the kernels of
:mod:`vectorticks.greeks`.

Forward of an option, first available of:

1. its futures contract's latest price, carried to the option's expiry when the future
   expires later or earlier: ``F = F_fut · exp(-(r - q)·(t_fut - t))``;
2. a synthetic forward from put–call parity at the strike where ``|C - P|`` is smallest
   among the strikes whose call and put both ticked in this window:
   ``F = K + (C - P)·exp(r·t)``;
3. the underlying's latest price grown to expiry: ``S·exp((r - q)·t)``.

With ``model="bsm"`` the kernels take the spot instead: the underlying's latest price, or
the forward discounted back, ``F·exp(-(r - q)·t)``, when the index has not ticked yet.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import greeks as _greeks
from .columns import Table
from .instruments import InstrumentRegistry

Calendar = Literal["act365", "trading252"]

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_YEAR = 365 * NS_PER_DAY
IST_OFFSET_NS = 19_800 * 1_000_000_000          # UTC+05:30
SESSION_OPEN_NS = (9 * 3600 + 15 * 60) * 1_000_000_000   # 09:15 IST, from local midnight
SESSION_CLOSE_NS = (15 * 3600 + 30 * 60) * 1_000_000_000  # 15:30 IST
SESSION_NS = SESSION_CLOSE_NS - SESSION_OPEN_NS


class ForwardSource(enum.IntEnum):
    """Where an option's forward came from (the ``forward_source`` column)."""

    NONE = 0
    FUTURE = 1
    PARITY = 2
    SPOT = 3


@dataclass(frozen=True, slots=True)
class GreeksParams:
    """How IV and Greeks are computed (see :class:`vectorticks.config.Settings`)."""

    model: _greeks.Model = "black76"
    rate: float = 0.065                 # continuously compounded risk-free rate
    dividend_yield: float = 0.0         # continuous yield q (BSM; carry of the forward)
    calendar: Calendar = "act365"
    holidays: tuple[str, ...] = ()      # ISO dates the 252-day calendar skips
    max_relative_spread: float = 0.25   # mid is used when (ask - bid) <= this · mid


def time_to_expiry(expiry_ns: np.ndarray, now_ns: int, calendar: Calendar = "act365",
                   holidays: tuple[str, ...] = ()) -> np.ndarray:
    """Years from ``now_ns`` to each expiry instant (≤ 0 once expired).

    ``act365``: calendar time, ``(expiry - now) / 365 days``. ``trading252``: trading
    sessions left / 252, where a session is 09:15–15:30 IST on a weekday that is not in
    ``holidays``, counted in full except today's, which counts by the fraction left.
    """
    expiry_ns = np.asarray(expiry_ns, np.int64)
    calendar_years = (expiry_ns - now_ns) / NS_PER_YEAR
    if calendar == "act365":
        return calendar_years
    local_now = now_ns + IST_OFFSET_NS
    today = np.datetime64(local_now // NS_PER_DAY, "D")
    holidays_d = np.array(holidays, dtype="datetime64[D]")
    into_day = local_now % NS_PER_DAY
    fraction_today = min(max((SESSION_CLOSE_NS - into_day) / SESSION_NS, 0.0), 1.0)
    if not np.is_busday(today, holidays=holidays_d):
        fraction_today = 0.0
    expiry_day = ((expiry_ns + IST_OFFSET_NS) // NS_PER_DAY).astype("datetime64[D]")
    later = np.maximum(expiry_day, today)
    full_days = np.busday_count(today + 1, later + 1, holidays=holidays_d)
    sessions = fraction_today + full_days
    return np.where(calendar_years > 0, sessions / 252.0, calendar_years)


def price_to_invert(last: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                    max_relative_spread: float) -> np.ndarray:
    """The mid when both sides are quoted with a sane spread, else the last price."""
    mid = (bid + ask) * 0.5
    sane = (bid > 0) & (ask >= bid) & (ask - bid <= max_relative_spread * mid)
    return np.where(sane, mid, last)


def fill_greeks(options: Table, rows: np.ndarray, registry: InstrumentRegistry,
                last_price: np.ndarray, now_ns: int, params: GreeksParams) -> None:
    """Fill the IV and Greek columns of an options snapshot in place.

    ``rows`` are the options' registry rows; ``last_price`` is the latest price of every
    registry row after this window (the carry).
    """
    if not len(rows):
        return
    r, q = params.rate, params.dividend_yield
    t = time_to_expiry(options["expiry_ns"], now_ns, params.calendar, params.holidays)
    price = price_to_invert(options["last_price"], options["bid_price"],
                            options["ask_price"], params.max_relative_spread)
    forward, source = _forwards(options, rows, registry, last_price, t, price, now_ns, params)
    spot = _latest(last_price, registry.underlying_row[rows])
    if params.model == "bsm":
        underlying = np.where(np.isfinite(spot), spot, forward * np.exp(-(r - q) * t))
    else:
        underlying = forward
    is_call = options["is_call"]
    strike = options["strike"]
    iv, status = _greeks.implied_vol(price, underlying, strike, t, r, q, is_call,
                                     model=params.model, return_status=True)
    g = _greeks.greeks(underlying, strike, t, iv, r, q, is_call, model=params.model)
    options.update(iv=iv, delta=g.delta, gamma=g.gamma, theta=g.theta, vega=g.vega,
                   rho=g.rho, forward=forward, time_to_expiry=t, price_used=price,
                   iv_status=status.astype(np.int8),
                   forward_source=source)


def _latest(last_price: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Latest positive price of each row, NaN for row -1 or no price yet."""
    p = np.where(rows >= 0, last_price[np.maximum(rows, 0)], np.nan)
    return np.where(p > 0, p, np.nan)


def _forwards(options: Table, rows: np.ndarray, registry: InstrumentRegistry,
              last_price: np.ndarray, t: np.ndarray, price: np.ndarray, now_ns: int,
              params: GreeksParams) -> tuple[np.ndarray, np.ndarray]:
    """Each option's forward and its source, trying the sources best first and computing a
    fallback only for the options still without a forward."""
    carry = params.rate - params.dividend_yield
    future_rows = registry.future_row[rows]
    future_expiry = np.where(future_rows >= 0, registry.expiry_ns[np.maximum(future_rows, 0)],
                             options["expiry_ns"])
    future_t = time_to_expiry(future_expiry, now_ns, params.calendar, params.holidays)
    forward = _latest(last_price, future_rows) * np.exp(-carry * (future_t - t))
    source = np.where(np.isfinite(forward), ForwardSource.FUTURE, ForwardSource.NONE)
    if np.isnan(forward).any():
        parity = _parity_forwards(options["underlying_token"], options["expiry_ns"],
                                  options["strike"], options["is_call"], price, t, params.rate)
        _fill_missing(forward, source, parity, ForwardSource.PARITY)
    if np.isnan(forward).any():
        spot = _latest(last_price, registry.underlying_row[rows]) * np.exp(carry * t)
        _fill_missing(forward, source, spot, ForwardSource.SPOT)
    return forward, source.astype(np.uint8)


def _fill_missing(forward: np.ndarray, source: np.ndarray, candidate: np.ndarray,
                  src: ForwardSource) -> None:
    take = np.isnan(forward) & np.isfinite(candidate)
    forward[take] = candidate[take]
    source[take] = src


def _parity_forwards(underlying: np.ndarray, expiry: np.ndarray, strike: np.ndarray,
                     is_call: np.ndarray, price: np.ndarray, t: np.ndarray,
                     rate: float) -> np.ndarray:
    """Synthetic forward per (underlying, expiry) from the call/put pair with the smallest
    ``|C - P|``; NaN for chains without a priced pair in the snapshot."""
    out = np.full(len(underlying), np.nan)
    priced = np.flatnonzero(np.isfinite(price) & (price > 0))
    if len(priced) < 2:
        return out
    # puts sort before calls (False < True), so a put/call pair at one strike is adjacent
    order = priced[np.lexsort((is_call[priced], strike[priced], expiry[priced],
                               underlying[priced]))]
    a, b = order[:-1], order[1:]
    pair = ((underlying[a] == underlying[b]) & (expiry[a] == expiry[b])
            & (strike[a] == strike[b]) & ~is_call[a] & is_call[b])
    puts, calls = a[pair], b[pair]
    if not len(puts):
        return out
    diff = price[calls] - price[puts]
    new_chain = np.r_[True, (underlying[puts][1:] != underlying[puts][:-1])
                      | (expiry[puts][1:] != expiry[puts][:-1])]
    chain = np.cumsum(new_chain) - 1
    by_gap = np.lexsort((np.abs(diff), chain))
    best = by_gap[np.r_[True, chain[by_gap][1:] != chain[by_gap][:-1]]]
    for i in best:  # one per chain (a handful per window)
        p = puts[i]
        members = (underlying == underlying[p]) & (expiry == expiry[p])
        out[members] = strike[p] + diff[i] * np.exp(rate * t[p])
    return out

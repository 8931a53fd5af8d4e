"""Tick sources. :class:`SyntheticMarket` is the shipped, seeded, deterministic market of
NSE indices, their futures and option chains, used by the demo, tests and benchmarks.

The synthetic market is generated interval by interval: each :meth:`~SyntheticMarket.next_batch`
call advances the market clock to ``until_ns`` and returns every tick received in between,
in receive-time order. Per interval it costs a handful of NumPy calls plus one Numba pass
over the ticks (no Python code per tick), so a million ticks take a fraction of a second.

Model (deliberately simple, documented so that users know what they look at):

- each index follows a driftless geometric random walk (annualised vol 13-17 %, time in
  calendar years, ACT/365), sampled on a few sub-steps per interval and interpolated at
  every tick's receive time, so every instrument of an index sees the same path;
- the forward of each (index, expiry) is ``spot · exp(r·T + basis)`` with a small
  mean-reverting basis; futures trade at the forward of their expiry;
- options are priced with Black-76 on the forward of their own expiry, with a skewed
  smile in standardised moneyness (the private kernel :func:`_black76`; the Greeks module
  is the real pricer);
- ticks arrive as a Poisson process whose intensity is ``burst_factor`` times higher
  during bursts (``rate`` is the long-run mean), spread over instruments by fixed
  weights - per-instrument Poisson arrivals, indices and futures the most active,
  near-the-money and near-expiry options more than far ones;
- a derivative tick quotes a 1-4 tick spread around its fair value (plus up to half a
  tick of noise) and is a trade with probability 0.7, at the bid or the ask, raising the
  cumulative volume by lot multiples; index ticks carry no volume, OI or depth (missing
  values, as in Kite's index packets).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from os import PathLike
from typing import IO

import numpy as np
import pandas as pd

from ._jit import jit
from .columns import MISSING_INT, TickBatch
from .errors import ConfigError
from .instruments import (
    EXPIRY_UTC_OFFSET_NS,
    INDEX_SYMBOLS,
    KITE_CSV_COLUMNS,
    InstrumentRegistry,
    Kind,
    write_csv,
)

__all__ = ["DEFAULT_START_NS", "SyntheticMarket"]

_NS = 1_000_000_000
_NS_PER_YEAR = 365 * 86_400 * _NS  # ACT/365, the desk convention for time to expiry
_IST = timezone(timedelta(hours=5, minutes=30))
#: Default market clock start: Monday 2026-11-23 09:15 IST (03:45 UTC), the market open.
DEFAULT_START_NS = int(datetime(2026, 11, 23, 9, 15, tzinfo=_IST).timestamp()) * _NS

_NFO_SEGMENT = 2          # low byte of an NFO token
_FIRST_EXCHANGE_TOKEN = 35_001
_TICK = 0.05              # NFO price tick; prices are handled in "nickels" (units of 0.05)
_N_FUTURES = 3            # monthly futures per index
_N_WEEKLIES = 4           # weekly expiries of the indices that have them
_N_MONTHLIES = 3          # monthly expiries at least
_MAX_MONEYNESS = 0.5      # strikes stay within ±50 % of spot; more options → more expiries

# Kind codes as plain ints for the kernels.
_INDEX = int(Kind.INDEX)
_FUTURE = int(Kind.FUTURE)
_CALL = int(Kind.CALL)

# Smile: vol = atm · (1 + SKEW·x + CURVATURE·x²), x = ln(K/F) / (atm·√T) clipped to ±3.
_SKEW = -0.10
_CURVATURE = 0.04
_MIN_SMILE_T = 1.0 / (365.0 * 24.0)  # one hour, so expiry-day smiles stay finite
_MIN_SMILE_SQRT_T = math.sqrt(_MIN_SMILE_T)
_YEARS_PER_NS = 1.0 / _NS_PER_YEAR
_INV_SQRT2 = 1.0 / math.sqrt(2.0)

_TRADE_PROBABILITY = 0.7   # share of derivative ticks that are trades
_INDEX_TICKS_PER_S = 1.0   # NSE disseminates index values about once a second
_BASIS_SD = 2e-4           # stationary sd of log(F / (S·e^{rT}))
_BASIS_TAU_S = 60.0        # its mean-reversion time
_SUB_STEP_NS = 5_000_000   # resolution of the index path inside an interval
_MAX_SUB_STEPS = 64
_MISSING = int(MISSING_INT)
#: -ln(1 - u) at 1024 evenly spaced u: exponential draws from 10 random bits (sizes).
_QTY_TABLE = -np.log1p(-(np.arange(1024) + 0.5) / 1024)


@dataclass(frozen=True, slots=True)
class _Index:
    name: str          # derivative name (a key of INDEX_SYMBOLS)
    token: int         # real Kite token of the index
    level: float       # typical index level
    grid: int          # strike step
    lot: int           # lot size
    vol: float         # annualised vol of the walk = ATM implied vol
    share: float       # share of the option instruments
    activity: float    # relative tick rate of its derivatives
    weekly: bool       # has weekly expiries (NIFTY only, since 2024)


_INDICES = (
    _Index("NIFTY", 256265, 26_000.0, 50, 75, 0.13, 0.45, 1.0, True),
    _Index("BANKNIFTY", 260105, 59_000.0, 100, 35, 0.15, 0.25, 0.8, False),
    _Index("FINNIFTY", 257801, 27_500.0, 50, 65, 0.14, 0.15, 0.4, False),
    _Index("MIDCPNIFTY", 288009, 13_500.0, 25, 140, 0.17, 0.15, 0.4, False),
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKLY_MONTH_CODES = "123456789OND"  # Kite's month letter in weekly option symbols


class SyntheticMarket:
    """A seeded synthetic market of NSE index, futures and option ticks.

    Parameters
    ----------
    n_instruments
        Exact number of instruments (at least 16: four indices and their twelve monthly
        futures come first, the rest are options spread over the indices, NIFTY and
        BANKNIFTY the largest).
    rate
        Long-run mean ticks per second of market time, bursts included: outside bursts
        the rate is ``rate / (1 + (burst_factor - 1) · (1 - exp(-burst_probability ·
        burst_duration_s)))``, the last factor being the share of time spent in bursts.
        Each index ticks about once a second outside bursts (as NSE disseminates index
        values), whatever the rate; the derivatives share the rest.
    seed
        Seed of the ``numpy.random.Generator(PCG64(seed))`` behind every random choice:
        the same seed and the same sequence of :meth:`next_batch` calls give identical
        batches.
    start_ns
        Market clock at construction, ns since the epoch. Default :data:`DEFAULT_START_NS`
        (2026-11-23 09:15 IST), not the wall clock. Expiries follow the start date.
    burst_probability
        Expected number of bursts starting per second of market time (0 disables them).
    burst_factor
        Tick-rate multiplier during a burst.
    burst_duration_s
        Length of a burst in seconds of market time.
    interest_rate
        Continuously compounded rate ``r`` of the forwards and of option discounting.
    latency_ns
        Exchange-to-receiver latency: ``exchange_ts`` is ``received_ns - latency_ns``
        floored to whole seconds.

    Attributes
    ----------
    instruments : pandas.DataFrame
        The instruments in Kite's CSV format (columns ``KITE_CSV_COLUMNS``).
    registry : InstrumentRegistry
        ``InstrumentRegistry.from_frame(instruments)``.
    interest_rate : float
        The ``r`` above (what a put-call parity or IV check needs).

    Notes
    -----
    A market is a mutable state machine: drive it from one thread at a time.
    """

    def __init__(self, n_instruments: int = 5000, *, rate: float = 50_000.0, seed: int = 0,
                 start_ns: int | None = None, burst_probability: float = 0.2,
                 burst_factor: float = 5.0, burst_duration_s: float = 0.3,
                 interest_rate: float = 0.065, latency_ns: int = 3_000_000) -> None:
        n_min = len(_INDICES) * (1 + _N_FUTURES)
        if int(n_instruments) != n_instruments or n_instruments < n_min:
            raise ConfigError(f"n_instruments must be an integer >= {n_min}, "
                              f"got {n_instruments!r}")
        if not (math.isfinite(rate) and rate >= 0):
            raise ConfigError(f"rate must be finite and >= 0, got {rate!r}")
        if not (math.isfinite(burst_probability) and burst_probability >= 0):
            raise ConfigError(f"burst_probability must be >= 0, got {burst_probability!r}")
        if not (math.isfinite(burst_factor) and burst_factor > 0):
            raise ConfigError(f"burst_factor must be > 0, got {burst_factor!r}")
        if not (math.isfinite(burst_duration_s) and burst_duration_s > 0):
            raise ConfigError(f"burst_duration_s must be > 0, got {burst_duration_s!r}")
        if not math.isfinite(interest_rate):
            raise ConfigError(f"interest_rate must be finite, got {interest_rate!r}")
        if latency_ns < 0:
            raise ConfigError(f"latency_ns must be >= 0, got {latency_ns!r}")

        self.seed = seed
        self.rate = float(rate)
        self.interest_rate = float(interest_rate)
        self.burst_probability = float(burst_probability)
        self.burst_factor = float(burst_factor)
        self.burst_duration_ns = round(burst_duration_s * _NS)
        in_burst = 1.0 - math.exp(-self.burst_probability * burst_duration_s)
        self._quiet_rate = self.rate / (1.0 + (self.burst_factor - 1.0) * in_burst)
        self.latency_ns = int(latency_ns)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._now = DEFAULT_START_NS if start_ns is None else int(start_ns)
        self._burst_end = self._now

        rng = self._rng
        n_idx = len(_INDICES)
        spot = np.array([ix.level for ix in _INDICES]) * np.exp(rng.normal(0.0, 0.02, n_idx))
        self._log_spot = np.log(np.round(spot, 2))
        self._atm_vol = np.array([ix.vol for ix in _INDICES])

        start_date = datetime.fromtimestamp(self._now / _NS, _IST).date()
        layout = _layout(int(n_instruments), start_date, np.exp(self._log_spot))
        self.instruments = layout.frame
        self.registry = InstrumentRegistry.from_frame(self.instruments)
        self._token = layout.frame["instrument_token"].to_numpy(np.uint32)
        self._kind = layout.kind
        self._und = layout.und
        self._fwd = layout.fwd
        self._strike = layout.strike
        self._lot = layout.lot
        self._fwd_expiry_ns = layout.fwd_expiry_ns
        self._basis = rng.normal(0.0, _BASIS_SD, len(layout.fwd_expiry_ns))

        fair = np.empty(len(self._kind))
        _fair_kernel(self._kind, self._und, self._fwd, self._strike, np.exp(self._log_spot),
                     self._atm_vol, self._fwd_expiry_ns, self._basis, self._now,
                     self.interest_rate, fair)
        weight, self._liq = _activity(layout, np.exp(self._log_spot), self._atm_vol,
                                      self._now, _INDEX_TICKS_PER_S / self._quiet_rate
                                      if self._quiet_rate > 0 else 0.0)
        self._alias_prob, self._alias_index = _alias_table(weight)

        # Per-instrument state carried from tick to tick (index rows are never read).
        n = len(self._kind)
        is_index = self._kind == _INDEX
        day_move = np.exp(rng.normal(0.0, 0.006, n))
        option_move = np.exp(rng.normal(0.0, 0.15, n))
        prev = np.where(self._kind >= _CALL, fair * option_move, fair * day_move)
        self._prev_close = np.where(is_index, np.round(prev, 2), _to_tick(prev))
        self._last = _to_tick(fair)
        self._ltq = self._lot.copy()
        self._vol = self._lot * np.floor(self._liq * rng.uniform(0.0, 10.0, n)).astype(np.int64)
        self._atp = fair * np.exp(rng.normal(0.0, 0.003, n))
        self._oi = self._lot * np.floor(self._liq * rng.uniform(5.0, 15.0, n)).astype(np.int64)

    # -- public API ---------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """The market clock: end of the last generated interval (ns since the epoch)."""
        return self._now

    def next_batch(self, until_ns: int) -> TickBatch:
        """Advance the market to ``until_ns`` and return the ticks received in between.

        Parameters
        ----------
        until_ns
            New market clock; every returned tick has ``now_ns <= received_ns < until_ns``
            (``now_ns`` before the call), in non-decreasing ``received_ns`` order.

        Returns
        -------
        TickBatch
            The interval's ticks (empty when ``until_ns == now_ns``).
        """
        t0, t1 = self._now, int(until_ns)
        if t1 < t0:
            raise ConfigError(f"market time cannot go backwards: until_ns {t1} < now_ns {t0}")
        if t1 == t0:
            return TickBatch.empty()
        rng = self._rng
        dt = t1 - t0

        # Normals for the index path (a few sub-steps) and the forward basis; arrivals: a
        # Poisson count, exponential spacings for sorted receive times, and two random
        # 64-bit words per tick (instrument choice, quote and trade details).
        n_sub = int(min(_MAX_SUB_STEPS, max(1, dt // _SUB_STEP_NS)))
        normals = rng.standard_normal(len(self._log_spot) * n_sub + len(self._basis))
        knots, cum = self._intensity(t0, t1)
        n = int(rng.poisson(cum[-1])) if cum[-1] > 0 else 0
        spacing = rng.standard_exponential(n + 1)
        bits = rng.bit_generator.random_raw(2 * n).view(np.int64).reshape(2, n)
        token = np.empty(n, np.uint32)
        floats = np.empty((5, n))
        ints = np.empty((9, n), np.int64)
        _tick_kernel(normals, n_sub, spacing, knots, cum, bits, t0, dt, self.latency_ns,
                     self._alias_prob, self._alias_index, self._token, self._kind, self._und,
                     self._fwd, self._strike, self._lot, self._liq, self._prev_close,
                     self._atm_vol, self._fwd_expiry_ns, self.interest_rate, _QTY_TABLE,
                     self._log_spot, self._basis, self._last, self._ltq, self._vol,
                     self._atp, self._oi, token, floats, ints)
        self._now = t1
        last, atp, prev, bid, ask = floats
        recv, exch, ltq, vol, tbq, tsq, oi, bidq, askq = ints
        return TickBatch(instrument_token=token, received_ns=recv, exchange_ts=exch,
                         last_price=last, last_traded_quantity=ltq, average_traded_price=atp,
                         volume_traded=vol, total_buy_quantity=tbq, total_sell_quantity=tsq,
                         oi=oi, prev_close=prev, bid_price=bid, bid_quantity=bidq,
                         ask_price=ask, ask_quantity=askq)

    def batches(self, seconds: float, step_ns: int = 10_000_000) -> Iterator[TickBatch]:
        """Successive :meth:`next_batch` calls of ``step_ns`` covering ``seconds`` of market
        time from the current clock (the last step may be shorter)."""
        if step_ns <= 0:
            raise ConfigError(f"step_ns must be positive, got {step_ns!r}")
        end = self._now + round(seconds * _NS)

        def gen() -> Iterator[TickBatch]:
            while self._now < end:
                yield self.next_batch(min(self._now + step_ns, end))

        return gen()

    def write_instruments_csv(self, path: str | PathLike[str] | IO[str]) -> None:
        """Write the instruments in Kite's instruments CSV format (``GET /instruments``);
        :meth:`InstrumentRegistry.from_csv` reads back :attr:`registry`."""
        write_csv(self.instruments, path)

    # -- internals ----------------------------------------------------------------------

    def _intensity(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """Knots of the cumulative tick intensity over ``[t0, t1)``: (offsets in ns from
        ``t0``, expected ticks up to each offset). Bursts start as a Poisson process of
        ``burst_probability`` per second and raise the rate ``burst_factor`` times."""
        dt = t1 - t0
        segments: list[tuple[int, int]] = []
        if self._burst_end > t0:
            segments.append((0, min(self._burst_end, t1) - t0))
        if self.burst_probability > 0:
            k = int(self._rng.poisson(self.burst_probability * dt / _NS))
            if k:
                for s in np.sort(self._rng.integers(0, dt, k)).tolist():
                    end = s + self.burst_duration_ns
                    self._burst_end = max(self._burst_end, t0 + end)
                    segments.append((s, min(end, dt)))
        knots = [0.0]
        cum = [0.0]
        cursor = 0
        for a, b in [*_merge(segments), (dt, dt)]:
            if a > cursor:
                knots.append(float(a))
                cum.append(cum[-1] + (a - cursor) * self._quiet_rate / _NS)
            if b > a:
                knots.append(float(b))
                cum.append(cum[-1] + (b - a) * self._quiet_rate * self.burst_factor / _NS)
            cursor = b
        return np.array(knots), np.array(cum)


def _merge(segments: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of half-open segments, sorted, empty ones dropped."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(s for s in segments if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _to_tick(price: np.ndarray) -> np.ndarray:
    """Round to the 0.05 tick (as the nearest double to the decimal), at least 0.05."""
    return np.maximum(np.round(price * 20.0), 1.0) * 5.0 / 100.0


# -- instrument layout ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    frame: pd.DataFrame
    kind: np.ndarray           # int8 Kind per row
    und: np.ndarray            # int64 index position (into _INDICES) per row
    fwd: np.ndarray            # int64 forward (index, expiry) per row, -1 for indices
    strike: np.ndarray         # float64, 0 for non-options
    lot: np.ndarray            # int64
    month_rank: np.ndarray     # int64: futures' month rank (0 = near month)
    expiry_rank: np.ndarray    # int64: options' expiry rank within the index (0 = nearest)
    fwd_expiry_ns: np.ndarray  # int64 expiry instant per forward


def _layout(n_instruments: int, start: date, spot: np.ndarray) -> _Layout:
    """Indices, their futures, then option chains: exactly ``n_instruments`` rows."""
    n_idx = len(_INDICES)
    n_options = n_instruments - n_idx * (1 + _N_FUTURES)
    # CE/PE pairs in proportion to the shares; an odd option out is a NIFTY call.
    per_index = 2 * _apportion(n_options // 2, np.array([ix.share for ix in _INDICES]))
    per_index[0] += n_options % 2

    rows: list[tuple[int, str, str, str, float, int, str]] = []  # symbol..type per row
    kind: list[int] = []
    und: list[int] = []
    fwd: list[int] = []
    month_rank: list[int] = []
    expiry_rank: list[int] = []
    fwd_index: dict[tuple[int, date], int] = {}
    fwd_expiry: list[int] = []

    def forward(u: int, d: date) -> int:
        if (u, d) not in fwd_index:
            fwd_index[u, d] = len(fwd_expiry)
            fwd_expiry.append(_expiry_ns(d))
        return fwd_index[u, d]

    for u, ix in enumerate(_INDICES):
        symbol = INDEX_SYMBOLS[ix.name]
        rows.append((ix.token, symbol, symbol, "", 0.0, 0, "EQ"))
        kind.append(_INDEX)
        und.append(u)
        fwd.append(-1)
        month_rank.append(-1)
        expiry_rank.append(-1)
    monthlies = _monthly_expiries(start, _N_MONTHLIES)
    for u, ix in enumerate(_INDICES):
        for m, d in enumerate(monthlies[:_N_FUTURES]):
            rows.append((0, f"{ix.name}{d:%y}{_MONTHS[d.month - 1]}FUT", ix.name,
                         d.isoformat(), 0.0, ix.lot, "FUT"))
            kind.append(_FUTURE)
            und.append(u)
            fwd.append(forward(u, d))
            month_rank.append(m)
            expiry_rank.append(-1)
    for u, ix in enumerate(_INDICES):
        count = int(per_index[u])
        atm = round(spot[u] / ix.grid) * ix.grid
        side = max(1, int(_MAX_MONEYNESS * spot[u] / ix.grid))
        per_expiry_cap = 2 * (2 * side + 1)
        expiries, monthly = _expiries(start, ix.weekly, -(-count // per_expiry_cap))
        pairs, odd = divmod(count, 2)
        for e, (d, is_monthly) in enumerate(zip(expiries, monthly, strict=True)):
            m = 2 * (pairs // len(expiries) + (e < pairs % len(expiries))) + (odd and e == 0)
            f = forward(u, d)
            prefix = _option_prefix(ix.name, d, is_monthly)
            expiry = d.isoformat()
            for k, types in _strikes(m):
                strike = atm + k * ix.grid
                for t in types:
                    rows.append((0, f"{prefix}{strike}{t}", ix.name, expiry, float(strike),
                                 ix.lot, t))
                    kind.append(int(Kind.CALL) if t == "CE" else int(Kind.PUT))
                    und.append(u)
                    fwd.append(f)
                    month_rank.append(-1)
                    expiry_rank.append(e)

    n = len(rows)
    assert n == n_instruments, (n, n_instruments)
    kind_a = np.array(kind, np.int8)
    is_deriv = kind_a != _INDEX
    exchange_token = np.array([r[0] >> 8 for r in rows], np.int64)
    exchange_token[is_deriv] = _FIRST_EXCHANGE_TOKEN + np.arange(int(is_deriv.sum()))
    token = np.array([r[0] for r in rows], np.int64)
    token[is_deriv] = (exchange_token[is_deriv] << 8) | _NFO_SEGMENT
    lot = np.array([r[5] for r in rows], np.int64)
    strike = np.array([r[4] for r in rows], np.float64)
    columns = {
        "instrument_token": token,
        "exchange_token": exchange_token,
        "tradingsymbol": [r[1] for r in rows],
        "name": [r[2] for r in rows],
        "last_price": np.zeros(n),
        "expiry": [r[3] for r in rows],
        "strike": strike,
        "tick_size": np.where(is_deriv, _TICK, 0.0),
        "lot_size": lot,
        "instrument_type": [r[6] for r in rows],
        "segment": np.where(kind_a == _INDEX, "INDICES",
                            np.where(kind_a == _FUTURE, "NFO-FUT", "NFO-OPT")).tolist(),
        "exchange": np.where(is_deriv, "NFO", "NSE").tolist(),
    }
    frame = pd.DataFrame({c: columns[c] for c in KITE_CSV_COLUMNS})
    return _Layout(frame=frame, kind=kind_a, und=np.array(und, np.int64),
                   fwd=np.array(fwd, np.int64), strike=strike, lot=lot,
                   month_rank=np.array(month_rank, np.int64),
                   expiry_rank=np.array(expiry_rank, np.int64),
                   fwd_expiry_ns=np.array(fwd_expiry, np.int64))


def _apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Integers proportional to ``shares`` summing to ``total`` (largest remainder)."""
    exact = total * shares / shares.sum()
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out


def _strikes(m: int) -> list[tuple[int, tuple[str, ...]]]:
    """``m`` options as (strike offset from ATM, types), nearest strikes first filled with
    CE and PE; an odd ``m`` leaves the outermost strike with a CE only. Sorted by offset."""
    pairs, odd = divmod(m, 2)
    offsets = [(i + 1) // 2 * (1 if i % 2 else -1) for i in range(pairs + odd)]
    out = [(k, ("CE", "PE")) for k in offsets[:pairs]]
    if odd:
        out.append((offsets[-1], ("CE",)))
    return sorted(out)


def _expiry_ns(d: date) -> int:
    """15:30 IST of date ``d`` in ns since the epoch."""
    midnight = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return int(midnight.timestamp()) * _NS + EXPIRY_UTC_OFFSET_NS


def _last_tuesday(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 1) % 7)


def _monthly_expiries(after: date, count: int) -> list[date]:
    """The next ``count`` monthly expiries (last Tuesday of the month) after ``after``."""
    out: list[date] = []
    year, month = after.year, after.month
    while len(out) < count:
        d = _last_tuesday(year, month)
        if d > after:
            out.append(d)
        year, month = year + month // 12, month % 12 + 1
    return out


def _expiries(after: date, weekly: bool, at_least: int) -> tuple[list[date], list[bool]]:
    """Option expiries of an index: weeklies (if it has them) and monthlies, plus further
    monthlies until there are ``at_least``. Returns (dates, is_monthly) sorted by date."""
    monthly = _monthly_expiries(after, _N_MONTHLIES)
    dates = set(monthly)
    if weekly:
        first = after + timedelta(days=(1 - after.weekday()) % 7 or 7)
        dates |= {first + timedelta(weeks=w) for w in range(_N_WEEKLIES)}
    extra = _N_MONTHLIES
    while len(dates) < at_least:
        extra += 1
        monthly = _monthly_expiries(after, extra)
        dates.add(monthly[-1])
    out = sorted(dates)
    monthly_set = set(monthly)
    return out, [d in monthly_set for d in out]


def _option_prefix(name: str, d: date, is_monthly: bool) -> str:
    """Kite style option symbols are this prefix + strike + CE/PE: ``NIFTY26DEC24000CE``
    (monthly) or ``NIFTY26D0124000CE`` (weekly: month letter and day)."""
    if is_monthly:
        return f"{name}{d.year % 100:02d}{_MONTHS[d.month - 1]}"
    return f"{name}{d.year % 100:02d}{_WEEKLY_MONTH_CODES[d.month - 1]}{d.day:02d}"


def _activity(layout: _Layout, spot: np.ndarray, atm_vol: np.ndarray, now_ns: int,
              index_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Relative tick rate of every instrument, and its liquidity in lots (depth and book
    sizes scale with it). Futures 40/10/4 by month, options up to ~3 at the money of the
    nearest expiry, falling with standardised moneyness and expiry rank; each index gets
    ``index_share`` of all ticks (at most 1/(2 · indices)): indices tick at a fixed pace,
    whatever the rate of the derivatives. (At a derivative's pace an index would repeat
    its level within one whole exchange second: an exact duplicate tick.)"""
    kind = layout.kind
    scale = np.array([ix.activity for ix in _INDICES])[layout.und]
    weight = np.ones(len(kind))
    fut = kind == _FUTURE
    weight[fut] = np.array([40.0, 10.0, 4.0])[np.minimum(layout.month_rank[fut], 2)]
    opt = kind >= _CALL
    t = np.maximum((layout.fwd_expiry_ns[layout.fwd[opt]] - now_ns) / _NS_PER_YEAR,
                   _MIN_SMILE_T)
    u = layout.und[opt]
    x = np.log(layout.strike[opt] / spot[u]) / (atm_vol[u] * np.sqrt(t))
    weight[opt] = (0.05 + 3.0 * np.exp(-0.5 * x * x)) / (1.0 + 0.5 * layout.expiry_rank[opt])
    index = kind == _INDEX
    weight[~index] *= scale[~index]
    share = min(index_share, 0.5 / index.sum())
    weight[index] = share * weight[~index].sum() / (1.0 - share * index.sum())
    liq = 5.0 + 500.0 * weight  # (an index has no book: its liquidity is never read)
    return weight, liq


# -- kernels (private; the Greeks module is the real pricer) ----------------------------


@jit
def _ncdf(x):
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@jit
def _black76(is_call, f, k, t, atm, df):
    """Black-76 price of a European option on forward ``f`` with the synthetic smile
    (vol from the ATM vol ``atm`` and the standardised moneyness); ``df = e^{-rT}``.
    Intrinsic at or after expiry. ``ln(F/K)`` serves both the smile and ``d1``."""
    if t <= 0.0 or f <= 0.0 or k <= 0.0:
        return df * (max(f - k, 0.0) if is_call else max(k - f, 0.0))
    m = math.log(f / k)
    rt = math.sqrt(t)
    x = min(max(-m / (atm * max(rt, _MIN_SMILE_SQRT_T)), -3.0), 3.0)
    sd = atm * (1.0 + _SKEW * x + _CURVATURE * x * x) * rt
    d1 = m / sd + 0.5 * sd
    d2 = d1 - sd
    if is_call:
        return df * (f * _ncdf(d1) - k * _ncdf(d2))
    return df * (k * _ncdf(-d2) - f * _ncdf(-d1))


@jit
def _fair_value(kind, s, t, growth, carry, strike, atm):
    """Index level, future (the forward) or option value of an instrument whose index is at
    ``s``, ``t`` years before its expiry; ``growth = e^{r·max(t, 0)}`` and
    ``carry = e^{basis}`` make the forward ``s · growth · carry``."""
    if kind == _INDEX:
        return s
    f = s * growth * carry
    if kind == _FUTURE:
        return f
    return _black76(kind == _CALL, f, strike, t, atm, 1.0 / growth)


@jit
def _fair_kernel(kind, und, fwd, strike, spot, atm_vol, fwd_expiry_ns, basis, now_ns, r, out):
    """Fair value of every instrument at ``now_ns`` (used once, at construction)."""
    for j in range(len(kind)):
        u = und[j]
        t = (fwd_expiry_ns[fwd[j]] - now_ns) * _YEARS_PER_NS if kind[j] != _INDEX else 0.0
        out[j] = _fair_value(kind[j], spot[u], t, math.exp(r * max(t, 0.0)),
                             math.exp(basis[fwd[j]]) if kind[j] != _INDEX else 1.0,
                             strike[j], atm_vol[u])


@jit
def _alias_table(weight):
    """Walker/Vose alias table: draw ``j`` with probability ``weight[j] / sum`` in O(1)
    (column ``int(u·n)``, kept if the fraction of ``u·n`` is below ``prob``, else its
    ``alias``)."""
    n = len(weight)
    p = weight * (n / weight.sum())
    prob = np.ones(n)
    alias = np.arange(n)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = 0
    nl = 0
    for j in range(n):
        if p[j] < 1.0:
            small[ns] = j
            ns += 1
        else:
            large[nl] = j
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        lo = small[ns]
        hi = large[nl - 1]
        prob[lo] = p[lo]
        alias[lo] = hi
        p[hi] = (p[hi] + p[lo]) - 1.0
        if p[hi] < 1.0:
            nl -= 1
            small[ns] = hi
            ns += 1
    return prob, alias


@jit
def _tick_kernel(normals, n_sub, spacing, knots, cum, bits, t0_ns, dt_ns, latency_ns,
                 alias_prob, alias_index, token, kind, und, fwd, strike, lot, liq, prev_close,
                 atm_vol, fwd_expiry_ns, r, qty_table, log_spot, basis, st_last, st_ltq,
                 st_vol, st_atp, st_oi, o_token, o_float, o_int):
    """Advance the market over one interval and fill its ticks, in receive order.

    Updates the state in place: ``log_spot`` (per index), ``basis`` (per forward) and the
    per-instrument ``st_*``. Outputs: ``o_token``; ``o_float`` rows last, average, prev
    close, bid, ask; ``o_int`` rows received, exchange ts, last qty, volume, total buy,
    total sell, OI, bid qty, ask qty.

    Each index takes ``n_sub`` geometric random-walk steps (the first ``normals``) over the
    interval, and every tick reads the index level interpolated at its receive time; the
    forward basis of each expiry then reverts towards 0 (the remaining ``normals``).

    Receive times are the order statistics of ``len(spacing) - 1`` uniform points (the
    normalised partial sums of exponential ``spacing``) mapped through the cumulative
    intensity (``cum`` at offsets ``knots``). ``path[u, :]`` is index ``u``'s level at
    evenly spaced knots over the interval. Per tick, word ``bits[0]`` picks the instrument
    (alias method, 53 bits) and jitters the fair value (low 11 bits, ±half a tick); word
    ``bits[1]`` holds the fields: 0-7 trade and side, 8-9 spread, 10-19 trade size,
    20-29 bid size, 30-39 ask size, 40-47 OI change, 48-53 its size, 54-58 total buy,
    59-63 total sell. Prices are computed in nickels (units of 0.05) and written as
    ``nickels * 5 / 100``, the nearest double to the decimal price.
    """
    n_und = len(log_spot)
    h = dt_ns / n_sub * _YEARS_PER_NS
    path = np.empty((n_und, n_sub + 1))
    for u in range(n_und):
        sd = atm_vol[u] * math.sqrt(h)
        x = log_spot[u]
        path[u, 0] = math.exp(x)
        for k in range(n_sub):
            x += sd * normals[u * n_sub + k] - 0.5 * sd * sd
            path[u, k + 1] = math.exp(x)
        log_spot[u] = x
    decay = math.exp(-dt_ns / (_BASIS_TAU_S * 1e9))
    shock = _BASIS_SD * math.sqrt(1.0 - decay * decay)
    carry = np.empty(len(basis))
    for fi in range(len(basis)):
        basis[fi] = basis[fi] * decay + shock * normals[n_und * n_sub + fi]
        carry[fi] = math.exp(basis[fi])

    n = len(o_token)
    missing = _MISSING
    n_inst = len(alias_prob)
    scale = cum[-1] / spacing.sum() if n > 0 else 0.0
    pick_scale = n_inst / 9007199254740992.0  # 2**53
    sub_scale = n_sub / dt_ns
    acc = 0.0
    seg = 0
    trade_cut = int(_TRADE_PROBABILITY * 256)
    for i in range(n):
        # receive time
        acc += spacing[i]
        x = acc * scale
        while seg < len(cum) - 2 and x >= cum[seg + 1]:
            seg += 1
        width = cum[seg + 1] - cum[seg]
        frac = (x - cum[seg]) / width if width > 0.0 else 0.0
        rel = min(int(knots[seg] + frac * (knots[seg + 1] - knots[seg])), dt_ns - 1)
        recv = t0_ns + rel
        o_int[0, i] = recv
        o_int[1, i] = (recv - latency_ns) // 1_000_000_000 * 1_000_000_000
        # instrument
        a = bits[0, i]
        b = bits[1, i]
        pick = ((a >> 11) & 0x1FFFFFFFFFFFFF) * pick_scale
        j = min(int(pick), n_inst - 1)
        if pick - j >= alias_prob[j]:
            j = alias_index[j]
        o_token[i] = token[j]
        o_float[2, i] = prev_close[j]
        # index level on the interval's path
        y = rel * sub_scale
        k = min(int(y), n_sub - 1)
        w = y - k
        u = und[j]
        s = path[u, k] * (1.0 - w) + path[u, k + 1] * w
        kd = kind[j]
        if kd == _INDEX:
            o_float[0, i] = round(s * 100.0) / 100.0
            o_float[1, i] = np.nan
            o_float[3, i] = np.nan
            o_float[4, i] = np.nan
            for c in range(2, 9):
                o_int[c, i] = missing
            continue
        # fair value and quote
        fi = fwd[j]
        t = (fwd_expiry_ns[fi] - recv) * _YEARS_PER_NS
        jitter = ((a & 0x7FF) + 0.5) * (1.0 / 2048.0) - 0.5
        fair = (_fair_value(kd, s, t, math.exp(r * max(t, 0.0)), carry[fi], strike[j],
                            atm_vol[u]) + jitter * _TICK)
        spread = 1 + ((b >> 8) & 3)
        bid_n = max(1, round(fair * 20.0 - 0.5 * spread))
        ask_n = bid_n + spread
        lq = liq[j]
        lt = lot[j]
        side = b & 0xFF
        if side < trade_cut:
            px = (bid_n if side < trade_cut // 2 else ask_n) * 5 / 100.0
            q = lt * (1 + int(qty_table[(b >> 10) & 0x3FF] * min(1.0 + lq * 0.001, 20.0)))
            v = st_vol[j]
            st_atp[j] = (st_atp[j] * v + px * q) / (v + q)
            st_vol[j] = v + q
            st_last[j] = px
            st_ltq[j] = q
        oi_move = (b >> 40) & 0xFF
        if oi_move < 77:  # 30 %: half down, half up
            step = lt * (1 + int((((b >> 48) & 0x3F) + 0.5) * (1.0 / 64.0) * (1.0 + lq * 0.01)))
            st_oi[j] = max(0, st_oi[j] - step) if oi_move < 38 else st_oi[j] + step
        depth = 1.0 + lq * 0.005
        o_float[0, i] = st_last[j]
        o_float[1, i] = round(st_atp[j] * 100.0) / 100.0
        o_float[3, i] = bid_n * 5 / 100.0
        o_float[4, i] = ask_n * 5 / 100.0
        o_int[2, i] = st_ltq[j]
        o_int[3, i] = st_vol[j]
        o_int[4, i] = lt * int(lq * (0.5 + (((b >> 54) & 0x1F) + 0.5) * (1.0 / 32.0)))
        o_int[5, i] = lt * int(lq * (0.5 + (((b >> 59) & 0x1F) + 0.5) * (1.0 / 32.0)))
        o_int[6, i] = st_oi[j]
        o_int[7, i] = lt * (1 + int(qty_table[(b >> 20) & 0x3FF] * depth))
        o_int[8, i] = lt * (1 + int(qty_table[(b >> 30) & 0x3FF] * depth))

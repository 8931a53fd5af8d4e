"""The validation rules of :mod:`vectorticks.masks` as pandera schemas, for notebooks,
replays and tests.

The rules are written here a second time, independently, in pandas idiom (group-bys,
``duplicated``, cumulative maxima): they do not call :func:`vectorticks.masks.tick_reasons`,
so that comparing the two implementations checks both. Check names are the
:class:`~vectorticks.masks.Reason` names, so a failure case says which rule it broke.

A tick DataFrame carries, besides :data:`~vectorticks.columns.TICK_COLUMNS` in arrival
order, the context a rule needs from outside the tick (:data:`CONTEXT_COLUMNS`);
:func:`tick_frame` builds one from a :class:`~vectorticks.columns.TickBatch`, an
instrument registry and the previous window's carry::

    frame = tick_frame(batch, registry, last_price=carry.last_price)
    bad = reject_mask(frame)                 # boolean Series, True = rejected
    frame[bad].assign(why=reject_reasons(frame)[bad].map(describe))

:func:`bar_schema` and :func:`option_schema` validate the published tables (for example
``vectorticks.payload.decode(data).bars``).

This module imports pandera; ``import vectorticks`` does not import this module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from .chain import ForwardSource
from .columns import BAR_COLUMNS, MISSING_INT, OPTION_COLUMNS, TICK_COLUMNS, TickBatch
from .greeks import IVStatus
from .instruments import InstrumentRegistry, Kind
from .masks import IST_OFFSET_NS, NS_PER_DAY, Limits, Reason

__all__ = ["CONTEXT_COLUMNS", "bar_schema", "option_schema", "reject_mask", "reject_reasons",
           "tick_frame", "tick_schema"]

#: Columns a tick frame carries besides ``TICK_COLUMNS``: name → (dtype, meaning).
CONTEXT_COLUMNS: dict[str, tuple[str, str]] = {
    "known": ("bool", "the token is in the instrument registry"),
    "kind": ("int8", "vectorticks.instruments.Kind code of the instrument, -1 if unknown"),
    "carry_price": ("float64", "last good price of the instrument from earlier windows "
                               "(NaN if none)"),
    "carry_volume": ("int64", "last valid cumulative volume of the instrument from earlier "
                              "windows (MISSING_INT if none)"),
    "carry_day": ("int64", "IST trading day of carry_volume (MISSING_INT if none)"),
}

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_DEFAULT_LIMITS = Limits()
_QUANTITY_COLUMNS = ("last_traded_quantity", "volume_traded", "total_buy_quantity",
                     "total_sell_quantity")
#: Columns compared by the duplicate rule: every tick column but received_ns.
_DUPLICATE_KEY = [c.name for c in TICK_COLUMNS if c.name != "received_ns"]


def tick_frame(batch: TickBatch, registry: InstrumentRegistry,
               last_price: np.ndarray | None = None, volume_traded: np.ndarray | None = None,
               volume_day: np.ndarray | None = None) -> pd.DataFrame:
    """The ticks of ``batch`` as a DataFrame with the :data:`CONTEXT_COLUMNS`.

    Parameters
    ----------
    batch
        Ticks in arrival order (the frame keeps that order, with a RangeIndex).
    registry
        The instrument registry; the carries below are indexed by its rows.
    last_price, volume_traded, volume_day
        The previous window's carry per registry row (as for
        :func:`vectorticks.masks.tick_reasons`); ``None`` means no carry (a first window).
    """
    frame = batch.to_pandas()
    n_rows = len(registry)
    row = pd.Index(registry.token.astype(np.int64)).get_indexer(
        frame["instrument_token"].astype(np.int64))
    known = row >= 0

    def per_tick(values: np.ndarray | None, missing: object, dtype: str) -> np.ndarray:
        if values is None:
            return np.full(len(frame), missing, dtype=dtype)
        values = np.asarray(values, dtype=dtype)
        if len(values) != n_rows:
            raise ValueError(f"a carry has {len(values)} entries for {n_rows} instruments")
        return np.where(known, values[np.where(known, row, 0)] if n_rows else missing,
                        missing).astype(dtype)

    frame["known"] = known
    frame["kind"] = per_tick(registry.kind, -1, "int8")
    frame["carry_price"] = per_tick(last_price, np.nan, "float64")
    frame["carry_volume"] = per_tick(volume_traded, MISSING_INT, "int64")
    frame["carry_day"] = per_tick(volume_day, MISSING_INT, "int64")
    return frame


# -- the rules, in pandas: each gives True where a tick breaks it ------------------------

_Rule = Callable[[pd.DataFrame, Limits], pd.Series]


def _is_option(df: pd.DataFrame) -> pd.Series:
    """Options, and unknown instruments (checked with the option limits)."""
    return (df["kind"] >= int(Kind.CALL)) | ~df["known"]


def _finite(s: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(s.to_numpy()), index=s.index)


def _bad_int(s: pd.Series, limits: Limits) -> pd.Series:
    """Present (not MISSING_INT) and outside ``[0, max_quantity]``."""
    return s.ne(MISSING_INT) & (s.lt(0) | s.gt(limits.max_quantity))


def _unknown_instrument(df: pd.DataFrame, limits: Limits) -> pd.Series:
    return ~df["known"]


def _non_finite_price(df: pd.DataFrame, limits: Limits) -> pd.Series:
    return ~_finite(df["last_price"])


def _non_positive_price(df: pd.DataFrame, limits: Limits) -> pd.Series:
    p = df["last_price"]
    zero_allowed = _is_option(df)
    return _finite(p) & (p.lt(0) | (p.eq(0) & ~zero_allowed))


def _price_above_max(df: pd.DataFrame, limits: Limits) -> pd.Series:
    p = df["last_price"]
    return _finite(p) & p.gt(limits.max_price)


def _price_jump(df: pd.DataFrame, limits: Limits) -> pd.Series:
    p = df["last_price"]
    carry = df["carry_price"]
    has_carry = _finite(carry) & carry.gt(0)
    reference = carry.where(has_carry, df["prev_close"])
    option = _is_option(df)
    move = pd.Series(np.select(
        [option & has_carry, option & ~has_carry, ~option & has_carry],
        [limits.max_move_option, limits.max_move_option_prev_close, limits.max_move],
        limits.max_move_prev_close), index=df.index)
    factor = 1.0 + move
    low, high = reference / factor, reference * factor
    checked = _finite(reference) & reference.gt(0) & _finite(p) & p.gt(0)
    return checked & (p.lt(low) | p.gt(high))


def _bad_quantity(df: pd.DataFrame, limits: Limits) -> pd.Series:
    bad = pd.Series(False, index=df.index)
    for name in _QUANTITY_COLUMNS:
        bad |= _bad_int(df[name], limits)
    return bad


def _bad_oi(df: pd.DataFrame, limits: Limits) -> pd.Series:
    return _bad_int(df["oi"], limits)


def _exchange_ts_future(df: pd.DataFrame, limits: Limits) -> pd.Series:
    """exchange_ts > received_ns + skew, i.e. exchange_ts - skew > received_ns, where the
    subtraction cannot underflow (below that, exchange_ts - skew < any int64)."""
    ex = df["exchange_ts"].to_numpy()
    recv = df["received_ns"].to_numpy()
    skew = limits.max_ts_skew_ns
    defined = ex >= _INT64_MIN + skew
    with np.errstate(over="ignore"):
        shifted = np.where(defined, ex - skew, _INT64_MIN)
    return pd.Series((ex != MISSING_INT) & defined & (shifted > recv), index=df.index)


def _exchange_ts_stale(df: pd.DataFrame, limits: Limits) -> pd.Series:
    """exchange_ts < received_ns - lag, i.e. exchange_ts + lag < received_ns, where the
    addition cannot overflow (above that, exchange_ts + lag > any int64)."""
    ex = df["exchange_ts"].to_numpy()
    recv = df["received_ns"].to_numpy()
    lag = limits.max_ts_lag_ns
    defined = ex <= _INT64_MAX - lag
    with np.errstate(over="ignore"):
        shifted = np.where(defined, ex + lag, _INT64_MAX)
    return pd.Series((ex != MISSING_INT) & defined & (shifted < recv), index=df.index)


def _duplicate(df: pd.DataFrame, limits: Limits) -> pd.Series:
    return df.duplicated(subset=_DUPLICATE_KEY, keep="first")


def _crossed_book(df: pd.DataFrame, limits: Limits) -> pd.Series:
    bid, ask = df["bid_price"], df["ask_price"]
    return _finite(bid) & ask.gt(0) & bid.gt(ask)


def _bad_depth(df: pd.DataFrame, limits: Limits) -> pd.Series:
    bad = pd.Series(False, index=df.index)
    for name in ("bid_price", "ask_price"):
        price = df[name]
        bad |= price.lt(0) | pd.Series(np.isinf(price.to_numpy()), index=df.index)
    for name in ("bid_quantity", "ask_quantity"):
        bad |= _bad_int(df[name], limits)
    return bad


def _trading_day(df: pd.DataFrame) -> pd.Series:
    """IST trading day of each tick (of exchange_ts, else of received_ns), exactly."""
    ex = df["exchange_ts"].to_numpy()
    t = np.where(ex != MISSING_INT, ex, df["received_ns"].to_numpy())
    fits = t <= _INT64_MAX - IST_OFFSET_NS
    with np.errstate(over="ignore"):
        # floor((t + offset) / day); where t + offset would overflow, use
        # floor((t + offset - day) / day) + 1 instead.
        day = np.where(fits, (t + IST_OFFSET_NS) // NS_PER_DAY,
                       (t - NS_PER_DAY + IST_OFFSET_NS) // NS_PER_DAY + 1)
    return pd.Series(day, index=df.index)


def _volume_decrease(df: pd.DataFrame, limits: Limits) -> pd.Series:
    """Among the ticks that break no other rule and carry a volume: per instrument, in
    arrival order, split into runs of consecutive ticks of one IST day (the carry joins
    the first run when it is of that day); a tick decreases the volume when it is below
    the running maximum of the earlier ticks of its run. (The valid ticks of a run never
    decrease, and a tick below the maximum is itself invalid and leaves the maximum as it
    was, so the running maximum is the last valid volume.)"""
    other = pd.Series(False, index=df.index)
    for reason, rule in _RULES.items():
        if reason is not Reason.VOLUME_DECREASE:
            other |= rule(df, limits)
    candidates = ~other & df["volume_traded"].ne(MISSING_INT)
    c = pd.DataFrame({
        "token": df["instrument_token"], "volume": df["volume_traded"],
        "day": _trading_day(df), "carry_volume": df["carry_volume"],
        "carry_day": df["carry_day"],
    })[candidates]
    if c.empty:
        return pd.Series(False, index=df.index)
    by_token = c.groupby("token", sort=False)
    run = (c["day"] != by_token["day"].shift()).astype(np.int64).groupby(c["token"]).cumsum()
    first_run = run == 1
    seed = c["carry_volume"].where(
        first_run & c["carry_volume"].ne(MISSING_INT) & c["carry_day"].eq(c["day"]),
        MISSING_INT)
    # Running maximum of the earlier ticks of the run, the carry standing before them.
    keys = [c["token"], run]
    running_max = c.groupby(keys, sort=False)["volume"].cummax()
    before = running_max.groupby(keys, sort=False).shift(fill_value=MISSING_INT)
    previous = np.maximum(before.to_numpy(), seed.to_numpy())
    decrease = c["volume"].to_numpy() < previous
    out = pd.Series(False, index=df.index)
    out[c.index[decrease]] = True
    return out


_RULES: dict[Reason, _Rule] = {
    Reason.UNKNOWN_INSTRUMENT: _unknown_instrument,
    Reason.NON_FINITE_PRICE: _non_finite_price,
    Reason.NON_POSITIVE_PRICE: _non_positive_price,
    Reason.PRICE_ABOVE_MAX: _price_above_max,
    Reason.PRICE_JUMP: _price_jump,
    Reason.BAD_QUANTITY: _bad_quantity,
    Reason.BAD_OI: _bad_oi,
    Reason.VOLUME_DECREASE: _volume_decrease,
    Reason.EXCHANGE_TS_FUTURE: _exchange_ts_future,
    Reason.EXCHANGE_TS_STALE: _exchange_ts_stale,
    Reason.DUPLICATE: _duplicate,
    Reason.CROSSED_BOOK: _crossed_book,
    Reason.BAD_DEPTH: _bad_depth,
}

#: Rules stated on one column; the others are DataFrame-wide checks.
_COLUMN_RULES: dict[Reason, tuple[str, ...]] = {
    Reason.UNKNOWN_INSTRUMENT: ("known",),
    Reason.NON_FINITE_PRICE: ("last_price",),
    Reason.BAD_QUANTITY: _QUANTITY_COLUMNS,
    Reason.BAD_OI: ("oi",),
}


def _check(reason: Reason, limits: Limits, column: str | None = None) -> pa.Check:
    """A pandera check of one rule: passes where the rule holds. NaN is data here, never
    skipped (``ignore_na=False``)."""
    rule = _RULES[reason]
    if column is None:
        def fn(df: pd.DataFrame) -> pd.Series:
            return ~rule(df, limits)
    elif reason is Reason.UNKNOWN_INSTRUMENT:
        def fn(s: pd.Series) -> pd.Series:
            return s.astype(bool)
    elif reason is Reason.NON_FINITE_PRICE:
        def fn(s: pd.Series) -> pd.Series:
            return _finite(s)
    else:
        def fn(s: pd.Series) -> pd.Series:
            return ~_bad_int(s, limits)
    return pa.Check(fn, name=reason.name, ignore_na=False)


def tick_schema(limits: Limits = _DEFAULT_LIMITS) -> pa.DataFrameSchema:
    """The tick rules as a pandera schema of a :func:`tick_frame` DataFrame.

    Every column of :data:`~vectorticks.columns.TICK_COLUMNS` and
    :data:`CONTEXT_COLUMNS` must be there with its dtype (extra columns are allowed, and
    the row order is the arrival order). Each check is named after the
    :class:`~vectorticks.masks.Reason` it enforces: one-column rules are column checks,
    the others DataFrame-wide checks.
    """
    columns: dict[str, pa.Column] = {}
    for c in TICK_COLUMNS:
        columns[c.name] = pa.Column(c.dtype, nullable=True)
    for name, (dtype, _) in CONTEXT_COLUMNS.items():
        columns[name] = pa.Column(np.dtype(dtype), nullable=True)
    wide: list[pa.Check] = []
    for reason in _RULES:
        if reason in _COLUMN_RULES:
            for name in _COLUMN_RULES[reason]:
                columns[name].checks.append(_check(reason, limits, name))
        else:
            wide.append(_check(reason, limits))
    return pa.DataFrameSchema(columns, checks=wide, strict=False, ordered=False,
                              name="vectorticks ticks")


def reject_reasons(df: pd.DataFrame, limits: Limits = _DEFAULT_LIMITS) -> pd.Series:
    """The :class:`~vectorticks.masks.Reason` bitmask of every row (uint32, 0 = valid),
    read from the failure cases of ``tick_schema(limits).validate(df, lazy=True)``.

    Raises :class:`pandera.errors.SchemaErrors` when the frame itself is malformed (a
    column missing or of the wrong dtype): that is no row's fault.
    """
    work = df.reset_index(drop=True)
    bits = np.zeros(len(work), np.uint32)
    try:
        tick_schema(limits).validate(work, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        structural = cases["index"].isna() | ~cases["check"].isin(Reason.__members__)
        if structural.any():
            raise
        for name, group in cases.groupby("check"):
            rows = np.unique(group["index"].to_numpy(np.int64))
            bits[rows] |= np.uint32(Reason[str(name)])
    return pd.Series(bits, index=df.index, name="reason")


def reject_mask(df: pd.DataFrame, limits: Limits = _DEFAULT_LIMITS) -> pd.Series:
    """True for every row that ``tick_schema(limits)`` rejects (see
    :func:`reject_reasons`)."""
    return (reject_reasons(df, limits) != 0).rename("rejected")


# -- published tables ---------------------------------------------------------------------


def _present_nonneg(s: pd.Series) -> pd.Series:
    """MISSING_INT or ≥ 0."""
    return s.eq(MISSING_INT) | s.ge(0)


def _nan_or(check: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series]:
    return lambda s: s.isna() | check(s)


def _bar_prices(df: pd.DataFrame) -> pd.Series:
    """A bar has no price at all (every tick's price missing) or an ordered, positive one:
    0 < low ≤ open, close ≤ high."""
    prices = df[["open", "high", "low", "close"]]
    none = prices.isna().all(axis=1)
    ordered = (prices.notna().all(axis=1) & df["low"].gt(0)
               & df["low"].le(df[["open", "close"]].min(axis=1))
               & df["high"].ge(df[["open", "close"]].max(axis=1)))
    return none | ordered


def bar_schema() -> pa.DataFrameSchema:
    """Schema of a window's bars table (``BAR_COLUMNS``; e.g. ``decode(data).bars``)."""
    spec: dict[str, list[pa.Check]] = {
        "instrument_token": [pa.Check.gt(0)],
        "volume": [pa.Check.ge(0)],
        "volume_traded": [pa.Check(_present_nonneg, name="volume_traded >= 0 or missing")],
        "tick_count": [pa.Check.ge(1)],
        "oi": [pa.Check(_present_nonneg, name="oi >= 0 or missing")],
        "first_received_ns": [pa.Check.ne(MISSING_INT)],
        "last_received_ns": [pa.Check.ne(MISSING_INT)],
    }
    columns = {c.name: pa.Column(c.dtype, checks=spec.get(c.name, []),
                                 nullable=c.dtype.kind == "f",
                                 unique=c.name == "instrument_token")
               for c in BAR_COLUMNS}
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name="vectorticks bars",
                              checks=[
        pa.Check(_bar_prices, name="no price, or 0 < low <= open, close <= high",
                 ignore_na=False),
        pa.Check(lambda df: df["first_received_ns"].le(df["last_received_ns"]),
                 name="first_received_ns <= last_received_ns"),
    ])


def _option_quotes(df: pd.DataFrame) -> pd.Series:
    """bid ≤ ask when both sides are quoted (> 0); mid is NaN or (bid + ask) / 2."""
    bid, ask, mid = df["bid_price"], df["ask_price"], df["mid_price"]
    quoted = bid.gt(0) & ask.gt(0)
    uncrossed = ~quoted | bid.le(ask)
    mid_ok = mid.isna() | (quoted & mid.ge(bid) & mid.le(ask))
    return uncrossed & mid_ok


def _iv_status(df: pd.DataFrame) -> pd.Series:
    """A volatility only with status OK or AT_INTRINSIC; every other status, and -1 (not
    computed), comes with NaN."""
    has_iv = df["iv_status"].isin([int(IVStatus.OK), int(IVStatus.AT_INTRINSIC)])
    return has_iv | df["iv"].isna()


def option_schema() -> pa.DataFrameSchema:
    """Schema of a window's option snapshots (``OPTION_COLUMNS``; e.g.
    ``decode(data).options``)."""
    finite_positive = _nan_or(lambda s: s.gt(0) & s.lt(np.inf))
    nonneg_or_nan = _nan_or(lambda s: s.ge(0) & s.lt(np.inf))
    spec: dict[str, list[pa.Check]] = {
        "instrument_token": [pa.Check.gt(0)],
        "strike": [pa.Check.gt(0), pa.Check.lt(np.inf)],
        "expiry_ns": [pa.Check.ne(MISSING_INT)],
        "last_price": [pa.Check(nonneg_or_nan, name="last_price >= 0 or NaN")],
        "bid_price": [pa.Check(nonneg_or_nan, name="bid_price >= 0 or NaN")],
        "ask_price": [pa.Check(nonneg_or_nan, name="ask_price >= 0 or NaN")],
        "bid_quantity": [pa.Check(_present_nonneg, name="bid_quantity >= 0 or missing")],
        "ask_quantity": [pa.Check(_present_nonneg, name="ask_quantity >= 0 or missing")],
        "oi": [pa.Check(_present_nonneg, name="oi >= 0 or missing")],
        "volume_traded": [pa.Check(_present_nonneg, name="volume_traded >= 0 or missing")],
        "volume": [pa.Check.ge(0)],
        "tick_count": [pa.Check.ge(1)],
        "last_received_ns": [pa.Check.ne(MISSING_INT)],
        "iv": [pa.Check(nonneg_or_nan, name="iv >= 0 or NaN")],
        "delta": [pa.Check(_nan_or(lambda s: s.between(-1.0, 1.0)), name="|delta| <= 1")],
        "gamma": [pa.Check(nonneg_or_nan, name="gamma >= 0 or NaN")],
        "vega": [pa.Check(nonneg_or_nan, name="vega >= 0 or NaN")],
        "forward": [pa.Check(finite_positive, name="forward > 0 or NaN")],
        "time_to_expiry": [pa.Check(_nan_or(lambda s: s.abs().lt(np.inf)),
                                    name="time_to_expiry finite or NaN")],
        "price_used": [pa.Check(nonneg_or_nan, name="price_used >= 0 or NaN")],
        "iv_status": [pa.Check.isin([-1, *(int(s) for s in IVStatus)])],
        "forward_source": [pa.Check.isin([int(s) for s in ForwardSource])],
    }
    columns = {c.name: pa.Column(c.dtype, checks=spec.get(c.name, []),
                                 nullable=c.dtype.kind == "f",
                                 unique=c.name == "instrument_token")
               for c in OPTION_COLUMNS}
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name="vectorticks options",
                              checks=[
        pa.Check(_option_quotes, name="bid <= ask when both quoted; mid between them",
                 ignore_na=False),
        pa.Check(_iv_status, name="iv only with status OK or AT_INTRINSIC", ignore_na=False),
    ])

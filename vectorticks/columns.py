"""Column schemas: the single source of truth for column names, dtypes and missing values.

A ``TickBatch`` is a struct of equal-length NumPy arrays, one per tick column. The output
tables of a window (bars, option snapshots, quarantine) are plain ``dict[str, ndarray]``
whose columns are described by :data:`BAR_COLUMNS`, :data:`OPTION_COLUMNS` and
:data:`QUARANTINE_COLUMNS`; the payload encoder writes them in exactly that order.

Missing values: ``NaN`` for floats, :data:`MISSING_INT` (the smallest int64) for integer
quantities and timestamps, so that a missing value can never be mistaken for zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from .errors import SchemaError

#: Missing value of every int64 column (quantities, timestamps).
MISSING_INT = np.iinfo(np.int64).min

Table = dict[str, np.ndarray]
"""A columnar table: equal-length arrays keyed by column name."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: np.dtype[Any]
    doc: str
    missing_value: Any = None  # overrides the dtype's default missing value

    @property
    def missing(self) -> Any:
        """The value a column holds where the source gave nothing."""
        if self.missing_value is not None:
            return self.missing_value
        if self.dtype.kind == "f":
            return np.nan
        if self.dtype == np.int64:
            return MISSING_INT
        if self.dtype.kind == "b":
            return False
        return 0


def _cols(*spec: tuple[Any, ...]) -> tuple[Column, ...]:
    return tuple(Column(name, np.dtype(dtype), *rest) for name, dtype, *rest in spec)


TICK_COLUMNS = _cols(
    ("instrument_token", "uint32", "Kite instrument token; its low byte is the segment"),
    ("received_ns", "int64", "local receive time, ns since the Unix epoch (windows cut on it)"),
    ("exchange_ts", "int64", "exchange timestamp, ns since the Unix epoch (whole seconds)"),
    ("last_price", "float64", "last traded price (index value for indices)"),
    ("last_traded_quantity", "int64", "quantity of the last trade"),
    ("average_traded_price", "float64", "volume-weighted average price of the day"),
    ("volume_traded", "int64", "cumulative volume of the day"),
    ("total_buy_quantity", "int64", "total pending buy quantity"),
    ("total_sell_quantity", "int64", "total pending sell quantity"),
    ("oi", "int64", "open interest"),
    ("prev_close", "float64", "previous day's close (Kite's ohlc.close)"),
    ("bid_price", "float64", "best bid price"),
    ("bid_quantity", "int64", "best bid quantity"),
    ("ask_price", "float64", "best ask price"),
    ("ask_quantity", "int64", "best ask quantity"),
)

BAR_COLUMNS = _cols(
    ("instrument_token", "uint32", "instrument token"),
    ("open", "float64", "first finite price of the window"),
    ("high", "float64", "highest price of the window"),
    ("low", "float64", "lowest price of the window"),
    ("close", "float64", "last finite price of the window"),
    ("volume", "int64", "volume traded in the window, from cumulative volume_traded"),
    ("volume_traded", "int64", "cumulative volume of the day at the window's last tick"),
    ("tick_count", "int32", "ticks of this instrument in the window"),
    ("oi", "int64", "last open interest seen in the window"),
    ("first_received_ns", "int64", "receive time of the instrument's first tick in the window"),
    ("last_received_ns", "int64", "receive time of the instrument's last tick in the window"),
)

OPTION_COLUMNS = _cols(
    ("instrument_token", "uint32", "option's instrument token"),
    ("underlying_token", "uint32", "token of the option's underlying index (0 if unknown)"),
    ("future_token", "uint32", "token of the futures contract used as forward (0 if none)"),
    ("strike", "float64", "strike price"),
    ("expiry_ns", "int64", "expiry instant (15:30 IST of the expiry date), ns since epoch"),
    ("is_call", "bool", "True for a call (CE), False for a put (PE)"),
    ("last_price", "float64", "latest traded price"),
    ("bid_price", "float64", "latest best bid"),
    ("bid_quantity", "int64", "latest best bid quantity"),
    ("ask_price", "float64", "latest best ask"),
    ("ask_quantity", "int64", "latest best ask quantity"),
    ("mid_price", "float64", "(bid + ask) / 2 when both sides are quoted, else NaN"),
    ("oi", "int64", "latest open interest"),
    ("volume_traded", "int64", "cumulative volume of the day"),
    ("volume", "int64", "volume traded in the window"),
    ("tick_count", "int32", "ticks of this option in the window"),
    ("last_received_ns", "int64", "receive time of the option's last tick in the window"),
    ("iv", "float64", "implied volatility (annualised, 0.2 = 20 %)"),
    ("delta", "float64", "delta"),
    ("gamma", "float64", "gamma"),
    ("theta", "float64", "theta per calendar day"),
    ("vega", "float64", "vega per 1 vol point"),
    ("rho", "float64", "rho per 1 % rate"),
    ("forward", "float64", "forward used for IV and Greeks (see forward_source)"),
    ("time_to_expiry", "float64", "years from the window end to expiry (per the calendar)"),
    ("price_used", "float64", "premium inverted: mid with a sane spread, else last price"),
    ("iv_status", "int8", "vectorticks.greeks.IVStatus code (0 ok; -1 not computed)", -1),
    ("forward_source", "uint8", "vectorticks.chain.ForwardSource: 1 future, 2 parity, 3 spot"),
)

QUARANTINE_COLUMNS = _cols(
    ("instrument_token", "uint32", "token of the rejected tick"),
    ("received_ns", "int64", "receive time of the rejected tick"),
    ("reason", "uint32", "bitmask of reason codes (see vectorticks.masks.Reason)"),
    ("last_price", "float64", "raw last price"),
    ("volume_traded", "int64", "raw cumulative volume"),
)


def empty_table(columns: tuple[Column, ...], n: int = 0) -> Table:
    """A table of ``n`` rows holding every column's missing value."""
    return {c.name: np.full(n, c.missing, dtype=c.dtype) for c in columns}


def check_table(table: Mapping[str, np.ndarray], columns: tuple[Column, ...]) -> int:
    """Check that ``table`` has exactly ``columns`` with their dtypes and one length.

    Returns the row count; raises :class:`SchemaError` otherwise.
    """
    names = [c.name for c in columns]
    if list(table) != names:
        raise SchemaError(f"expected columns {names}, got {list(table)}")
    lengths = {len(a) for a in table.values()}
    if len(lengths) > 1:
        raise SchemaError(f"columns have different lengths: {sorted(lengths)}")
    for c in columns:
        a = table[c.name]
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype != c.dtype:
            got = getattr(a, "dtype", type(a).__name__)
            raise SchemaError(f"column {c.name!r} must be a 1-d {c.dtype} array, got {got}")
    return lengths.pop() if lengths else 0


@dataclass(frozen=True, slots=True)
class TickBatch:
    """Ticks as columns: one 1-d array per field of :data:`TICK_COLUMNS`, all one length.

    Build one with :meth:`from_columns` (casts, fills omitted columns with their missing
    value) or :meth:`empty`; the constructor itself only checks.
    """

    instrument_token: np.ndarray
    received_ns: np.ndarray
    exchange_ts: np.ndarray
    last_price: np.ndarray
    last_traded_quantity: np.ndarray
    average_traded_price: np.ndarray
    volume_traded: np.ndarray
    total_buy_quantity: np.ndarray
    total_sell_quantity: np.ndarray
    oi: np.ndarray
    prev_close: np.ndarray
    bid_price: np.ndarray
    bid_quantity: np.ndarray
    ask_price: np.ndarray
    ask_quantity: np.ndarray

    COLUMNS: ClassVar[tuple[Column, ...]] = TICK_COLUMNS

    def __post_init__(self) -> None:
        check_table(self.as_table(), TICK_COLUMNS)

    @classmethod
    def from_columns(cls, n: int | None = None, **columns: Any) -> TickBatch:
        """Build a batch from array-likes, casting each to its dtype.

        ``instrument_token`` and ``received_ns`` are required; any other column left out
        is filled with its missing value. A scalar is broadcast to the batch length.
        """
        unknown = set(columns) - {c.name for c in TICK_COLUMNS}
        if unknown:
            raise SchemaError(f"unknown tick columns: {sorted(unknown)}")
        for required in ("instrument_token", "received_ns"):
            if required not in columns:
                raise SchemaError(f"missing required tick column {required!r}")
        if n is None:
            n = len(np.atleast_1d(columns["instrument_token"]))
        out = {}
        for c in TICK_COLUMNS:
            if c.name in columns:
                a = np.asarray(columns[c.name])
                if a.ndim == 0:
                    a = np.full(n, a, dtype=c.dtype)
                elif c.dtype.kind in "iu" and a.dtype.kind == "f":
                    # A float quantity (NaN = missing) must not wrap to a garbage integer.
                    a = np.where(np.isfinite(a), a, c.missing).astype(c.dtype)
                else:
                    a = a.astype(c.dtype, copy=False)
                out[c.name] = a
            else:
                out[c.name] = np.full(n, c.missing, dtype=c.dtype)
        return cls(**out)

    @classmethod
    def empty(cls, n: int = 0) -> TickBatch:
        """A batch of ``n`` rows of missing values (token 0, time 0)."""
        return cls(**empty_table(TICK_COLUMNS, n))

    @classmethod
    def concat(cls, batches: list[TickBatch]) -> TickBatch:
        """Concatenate batches in order."""
        if not batches:
            return cls.empty()
        return cls(**{c.name: np.concatenate([getattr(b, c.name) for b in batches])
                      for c in TICK_COLUMNS})

    def __len__(self) -> int:
        return len(self.instrument_token)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(self.as_table().items())

    def as_table(self) -> Table:
        """The columns as an ordered dict (no copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def take(self, index: np.ndarray | slice) -> TickBatch:
        """The rows selected by a slice, integer index array or boolean mask."""
        return TickBatch(**{name: a[index] for name, a in self})

    def to_pandas(self) -> Any:
        """The batch as a pandas DataFrame (one column per tick field)."""
        import pandas as pd

        return pd.DataFrame(self.as_table())

"""Instrument registry: Kite's instruments CSV as columns, with option ↔ underlying links.

The registry is sorted by token and keeps a hash table of its tokens, so mapping a whole
column of tokens to registry rows is one Numba pass of a probe or two per token. For every
option it knows the underlying index (or stock), the futures contract to use as its
forward, strike, expiry instant and call/put.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import IO, Any

import numpy as np
import pandas as pd

from ._jit import jit
from .columns import MISSING_INT
from .errors import InstrumentError

#: Columns of Kite's instruments CSV (``GET /instruments``), in Kite's order.
KITE_CSV_COLUMNS = (
    "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry",
    "strike", "tick_size", "lot_size", "instrument_type", "segment", "exchange",
)

#: Derivative ``name`` → tradingsymbol of its index in the INDICES segment.
INDEX_SYMBOLS: Mapping[str, str] = {
    "NIFTY": "NIFTY 50",
    "BANKNIFTY": "NIFTY BANK",
    "FINNIFTY": "NIFTY FIN SERVICE",
    "MIDCPNIFTY": "NIFTY MID SELECT",
    "NIFTYNXT50": "NIFTY NEXT 50",
    "SENSEX": "SENSEX",
    "BANKEX": "BANKEX",
}

#: Indian index options expire at 15:30 IST (= 10:00 UTC) on the expiry date.
EXPIRY_UTC_OFFSET_NS = 10 * 3600 * 1_000_000_000


class Kind(enum.IntEnum):
    """Instrument kind; ``CALL`` and ``PUT`` get option snapshots, the rest get bars."""

    INDEX = 0
    EQUITY = 1
    FUTURE = 2
    CALL = 3
    PUT = 4


@dataclass(frozen=True, slots=True, eq=False)
class InstrumentRegistry:
    """Instruments as columns sorted by ``token``; row ``i`` of every array is one instrument."""

    token: np.ndarray             # uint32, strictly increasing
    kind: np.ndarray              # int8, a Kind
    underlying_token: np.ndarray  # uint32, 0 where none
    future_token: np.ndarray      # uint32, options only, 0 where none
    strike: np.ndarray            # float64, NaN for non-options
    expiry_ns: np.ndarray         # int64, MISSING_INT where none
    tick_size: np.ndarray         # float64
    lot_size: np.ndarray          # int64
    tradingsymbol: np.ndarray     # object (str)
    name: np.ndarray              # object (str)
    underlying_row: np.ndarray    # int64, row of underlying_token, -1 where none
    future_row: np.ndarray        # int64, row of future_token, -1 where none
    _lookup: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", _token_table(self.token))

    def __len__(self) -> int:
        return len(self.token)

    def rows_of(self, tokens: np.ndarray) -> np.ndarray:
        """Registry row of each token (int64), ``-1`` for unknown tokens."""
        return _rows_of(np.asarray(tokens, dtype=np.uint32), *self._lookup)

    def token_of(self, tradingsymbol: str) -> int:
        """Token of a tradingsymbol (raises ``KeyError`` if absent)."""
        hits = np.flatnonzero(self.tradingsymbol == tradingsymbol)
        if not len(hits):
            raise KeyError(tradingsymbol)
        return int(self.token[hits[0]])

    @property
    def is_option(self) -> np.ndarray:
        return self.kind >= Kind.CALL

    @classmethod
    def from_csv(cls, source: str | PathLike[str] | IO[str]) -> InstrumentRegistry:
        """Load Kite's instruments CSV (a path or a text stream)."""
        try:
            frame = pd.read_csv(source, dtype={"tradingsymbol": str, "name": str,
                                               "expiry": str, "instrument_type": str,
                                               "segment": str, "exchange": str},
                                keep_default_na=False, na_values={"strike": [""],
                                                                  "tick_size": [""]})
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise InstrumentError(f"cannot read instruments CSV: {exc}") from exc
        return cls.from_frame(frame)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> InstrumentRegistry:
        """Build the registry from a DataFrame with Kite's instruments columns."""
        missing = [c for c in KITE_CSV_COLUMNS if c not in frame.columns]
        if missing:
            raise InstrumentError(f"instruments table lacks columns {missing}")
        try:
            token = frame["instrument_token"].to_numpy(np.int64)
        except (TypeError, ValueError) as exc:
            raise InstrumentError(f"instrument_token is not an integer column: {exc}") from exc
        if len(token) and (token.min() <= 0 or token.max() > np.iinfo(np.uint32).max):
            raise InstrumentError("instrument_token out of the uint32 range")
        order = np.argsort(token, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        token = token[order].astype(np.uint32)
        if len(token) > 1 and (np.diff(token.astype(np.int64)) == 0).any():
            dup = token[1:][np.diff(token.astype(np.int64)) == 0][0]
            raise InstrumentError(f"duplicate instrument_token {dup}")

        itype = frame["instrument_type"].astype(str).str.upper().to_numpy()
        segment = frame["segment"].astype(str).str.upper().to_numpy()
        kind = np.full(len(frame), Kind.EQUITY, dtype=np.int8)
        kind[segment == "INDICES"] = Kind.INDEX
        kind[np.char.endswith(segment.astype(str), "-FUT") | (itype == "FUT")] = Kind.FUTURE
        kind[itype == "CE"] = Kind.CALL
        kind[itype == "PE"] = Kind.PUT
        is_option = kind >= Kind.CALL

        expiry_ns = _expiry_ns(frame["expiry"])
        strike = pd.to_numeric(frame["strike"], errors="coerce").to_numpy(np.float64)
        strike = np.where(is_option, strike, np.nan)
        if (is_option & ~(strike > 0)).any():
            bad = frame["tradingsymbol"].to_numpy()[is_option & ~(strike > 0)][0]
            raise InstrumentError(f"option {bad!r} has no positive strike")
        if (is_option & (expiry_ns == MISSING_INT)).any():
            bad = frame["tradingsymbol"].to_numpy()[is_option & (expiry_ns == MISSING_INT)][0]
            raise InstrumentError(f"option {bad!r} has no expiry")

        symbol = frame["tradingsymbol"].astype(str).to_numpy(dtype=object)
        name = frame["name"].astype(str).to_numpy(dtype=object)
        underlying = _underlying_tokens(kind, symbol, name, token)
        future = _future_tokens(kind, name, expiry_ns, token)
        lookup = _token_table(token)
        return cls(
            token=token,
            kind=kind,
            underlying_token=underlying,
            future_token=future,
            strike=strike,
            expiry_ns=expiry_ns,
            tick_size=pd.to_numeric(frame["tick_size"], errors="coerce").to_numpy(np.float64),
            lot_size=pd.to_numeric(frame["lot_size"], errors="coerce")
            .fillna(0).to_numpy(np.int64),
            tradingsymbol=symbol,
            name=name,
            underlying_row=np.where(underlying > 0, _rows_of(underlying, *lookup), -1),
            future_row=np.where(future > 0, _rows_of(future, *lookup), -1),
        )

    def to_frame(self) -> pd.DataFrame:
        """The registry's own columns as a DataFrame (one row per instrument)."""
        return pd.DataFrame({
            "instrument_token": self.token, "tradingsymbol": self.tradingsymbol,
            "name": self.name, "kind": [Kind(k).name for k in self.kind],
            "underlying_token": self.underlying_token, "future_token": self.future_token,
            "strike": self.strike, "expiry_ns": self.expiry_ns,
            "tick_size": self.tick_size, "lot_size": self.lot_size,
        })


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd


@jit
def _token_table(token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing hash table of the tokens (at most half full): keys and rows (-1: an
    empty slot), linear probing from the top bits of the token times a 64-bit odd constant
    (Fibonacci hashing). A token listed twice maps to its first row."""
    size = 2
    while size < 2 * len(token):
        size *= 2
    keys = np.zeros(size, np.uint32)
    rows = np.full(size, -1, np.int32)
    shift = np.uint64(64 - np.log2(size))
    for r in range(len(token)):
        j = np.int64((np.uint64(token[r]) * _FIBONACCI) >> shift)
        while rows[j] >= 0 and keys[j] != token[r]:
            j = (j + 1) & (size - 1)
        if rows[j] < 0:
            keys[j] = token[r]
            rows[j] = r
    return keys, rows


@jit
def _rows_of(tokens: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each token's row in the table of :func:`_token_table`, -1 where absent (about 2.4
    ns a token at 5,000 instruments: a binary search of the sorted tokens took 31)."""
    size = len(keys)
    shift = np.uint64(64 - np.log2(size))
    out = np.empty(len(tokens), np.int64)
    for i in range(len(tokens)):
        t = tokens[i]
        j = np.int64((np.uint64(t) * _FIBONACCI) >> shift)
        while rows[j] >= 0 and keys[j] != t:
            j = (j + 1) & (size - 1)
        out[i] = rows[j]
    return out


def _expiry_ns(expiry: pd.Series) -> np.ndarray:
    """Expiry dates (``YYYY-MM-DD`` or empty) → 15:30 IST of that date in ns, else missing."""
    dates = pd.to_datetime(expiry.astype(str).replace("", None), errors="coerce",
                           format="%Y-%m-%d")
    ns = dates.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(dates.isna().to_numpy(), MISSING_INT, ns + EXPIRY_UTC_OFFSET_NS)


def _underlying_tokens(kind: np.ndarray, symbol: np.ndarray, name: np.ndarray,
                       token: np.ndarray) -> np.ndarray:
    """For derivatives: the index named by ``INDEX_SYMBOLS`` (or by its own name), else the
    equity of that tradingsymbol (the first listed); 0 where none is listed."""
    def by_symbol(k: Kind) -> pd.Series:
        table = pd.Series(token[kind == k], index=symbol[kind == k])
        return table[~table.index.duplicated()]

    derivative = kind >= Kind.FUTURE
    names = pd.Series(name[derivative], dtype=object)
    index_names = names.map(lambda n: INDEX_SYMBOLS.get(n, n))
    found = index_names.map(by_symbol(Kind.INDEX)).fillna(names.map(by_symbol(Kind.EQUITY)))
    out = np.zeros(len(token), dtype=np.uint32)
    out[derivative] = found.fillna(0).to_numpy(np.int64)
    return out


def _future_tokens(kind: np.ndarray, name: np.ndarray, expiry_ns: np.ndarray,
                   token: np.ndarray) -> np.ndarray:
    """For options: the future of the same name expiring on or next after the option, else
    the last-expiring one of that name; 0 where the name has no future."""
    out = np.zeros(len(token), dtype=np.uint32)
    futures: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fut = np.flatnonzero((kind == Kind.FUTURE) & (expiry_ns != MISSING_INT))
    for n in set(name[fut]):
        rows = fut[name[fut] == n]
        rows = rows[np.argsort(expiry_ns[rows], kind="stable")]
        futures[n] = (expiry_ns[rows], token[rows])
    opt = np.flatnonzero(kind >= Kind.CALL)
    for n in set(name[opt]) & set(futures):
        rows = opt[name[opt] == n]
        expiries, tokens = futures[n]
        pos = np.minimum(np.searchsorted(expiries, expiry_ns[rows]), len(expiries) - 1)
        out[rows] = tokens[pos]
    return out


def write_csv(frame: pd.DataFrame, target: Any) -> None:
    """Write a Kite-format instruments table (``KITE_CSV_COLUMNS``) as CSV."""
    frame.loc[:, list(KITE_CSV_COLUMNS)].to_csv(target, index=False)

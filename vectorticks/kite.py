"""Kite ticks → columns.

``ticks_from_dicts`` adapts the dicts that kiteconnect's ``on_ticks`` delivers (both key
generations: pykiteconnect renamed ``volume``→``volume_traded`` and others in 3.9.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from .columns import TICK_COLUMNS, TickBatch
from .errors import SchemaError

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

def _get(tick: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = tick.get(key)
        if value is not None:
            return value
    return None


def _depth(tick: Mapping[str, Any], side: str, field: str) -> Any:
    levels = (tick.get("depth") or {}).get(side) or ()
    return levels[0].get(field) if levels else None


def _epoch_ns(value: Any) -> Any:
    """A datetime (aware, or naive in local time as kiteconnect makes them) or epoch
    seconds → ns; anything else passes through for the type check."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1e9)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(value * 1e9)
    return value


def _column(name: str, values: list[Any]) -> np.ndarray:
    """Values (``None`` = missing) → the column's dtype; wrong types raise SchemaError."""
    c = next(col for col in TICK_COLUMNS if col.name == name)
    missing = c.missing
    for i, v in enumerate(values):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise SchemaError(f"tick {i}: {name} must be a number, got {type(v).__name__}")
    if c.dtype.kind == "f":
        return np.array([missing if v is None else v for v in values], dtype=np.float64)
    try:
        return np.array([missing if v is None else int(v) for v in values], dtype=c.dtype)
    except (OverflowError, ValueError) as exc:
        raise SchemaError(f"{name}: {exc}") from exc


def ticks_from_dicts(ticks: Sequence[Mapping[str, Any]], received_ns: int) -> TickBatch:
    """Kite tick dicts → a :class:`TickBatch`, all stamped with ``received_ns``.

    Accepts both key generations, datetime or epoch-second timestamps, nested ``ohlc``
    (its ``close`` is the previous day's close) and ``depth`` (best level used). Missing
    fields become the column's missing value; a value of the wrong type raises
    :class:`SchemaError` naming the tick and field.
    """
    columns: dict[str, Any] = {}
    for name, keys in DICT_KEYS.items():
        values = [_get(t, keys) for t in ticks]
        if name == "instrument_token" and None in values:
            raise SchemaError(f"tick {values.index(None)} has no instrument_token")
        if name == "exchange_ts":
            values = [None if v is None else _epoch_ns(v) for v in values]
        columns[name] = _column(name, values)
    columns["prev_close"] = _column("prev_close",
                                    [(t.get("ohlc") or {}).get("close") for t in ticks])
    for side, prefix in (("buy", "bid"), ("sell", "ask")):
        columns[f"{prefix}_price"] = _column(f"{prefix}_price",
                                             [_depth(t, side, "price") for t in ticks])
        columns[f"{prefix}_quantity"] = _column(f"{prefix}_quantity",
                                                [_depth(t, side, "quantity") for t in ticks])
    return TickBatch.from_columns(n=len(ticks), received_ns=received_ns, **columns)

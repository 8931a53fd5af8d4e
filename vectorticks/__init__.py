"""vectorticks: market ticks → columnar windows → bars, option snapshots → one packed
payload per window → Redis.

Importing the package loads neither redis nor prometheus_client nor pandera; the sinks
(:mod:`vectorticks.sinks`) import redis when used.
"""

from .columns import MISSING_INT, TickBatch
from .compute import Carry, WindowResult, compute_window
from .config import Settings
from .engine import Engine, TickProcessor
from .errors import (
    ConfigError,
    FrameError,
    InstrumentError,
    PayloadError,
    SchemaError,
    SinkError,
    TickLogError,
    VectorticksError,
)
from .instruments import InstrumentRegistry, Kind
from .kite import decode_frame, ticks_from_dicts
from .payload import Window, decode, encode
from .sources import SyntheticMarket
from .window import CutWindow, WindowAccumulator

__version__ = "0.1.0"

__all__ = [
    "MISSING_INT",
    "Carry",
    "ConfigError",
    "CutWindow",
    "Engine",
    "FrameError",
    "InstrumentError",
    "InstrumentRegistry",
    "Kind",
    "PayloadError",
    "SchemaError",
    "Settings",
    "SinkError",
    "SyntheticMarket",
    "TickBatch",
    "TickLogError",
    "TickProcessor",
    "VectorticksError",
    "Window",
    "WindowAccumulator",
    "WindowResult",
    "compute_window",
    "decode",
    "decode_frame",
    "encode",
    "ticks_from_dicts",
]

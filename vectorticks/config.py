"""Settings: every knob with a documented default, read from ``VECTORTICKS_*`` variables.

``Settings()`` reads the environment (and a ``.env`` file if present); keyword arguments
override both. The seed processor's names are kept: ``VECTORTICKS_TICK_BATCH_WINDOW_MS``
and ``VECTORTICKS_TICK_BATCH_MAX_SIZE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .chain import GreeksParams
from .errors import ConfigError
from .masks import Limits

SinkKind = Literal["file", "stream", "pubsub", "spubsub", "legacy", "memory"]
OverflowPolicy = Literal["drop_oldest", "drop_newest"]


class Settings(BaseSettings):
    """vectorticks settings (environment variables ``VECTORTICKS_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="VECTORTICKS_", env_file=".env",
                                      extra="ignore", frozen=True)

    def __init__(self, **values: Any) -> None:
        """Raises :class:`~vectorticks.errors.ConfigError` naming each bad variable."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    # Windows
    tick_batch_window_ms: int = Field(100, gt=0, description="window length in ms of receive time")
    tick_batch_max_size: int = Field(20_000, gt=0, description="ticks that cut a window early")

    # Where windows go
    sink: SinkKind | None = Field(
        None, description="file, stream, pubsub, spubsub, legacy or memory; "
                          "default: stream when redis_url is set, else file")
    redis_url: SecretStr | None = Field(
        None, description="redis://[user:password@]host:port/db, rediss:// for TLS")
    stream_key: str = "vt:windows"
    stream_maxlen: int = Field(10_000, gt=0, description="approximate MAXLEN of the stream")
    channel: str = Field("vt:windows", description="pub/sub channel of the packed payloads")
    legacy_channel_template: str = Field(
        "ticks:{instrument_token}", description="per-instrument channel of legacy mode")
    file_path: Path = Field(Path("vectorticks-windows.vtw"),
                            description="file sink: payloads appended back to back")
    dead_letter_stream: str | None = Field(
        None, description="Redis stream that also gets each window's quarantined rows "
                          "(e.g. vt:deadletter; needs redis_url); unset: none")
    dead_letter_maxlen: int = Field(100_000, gt=0,
                                    description="approximate MAXLEN of the dead-letter stream")

    # Metrics (/metrics of the CLI commands; 0 turns the endpoint off)
    metrics_port: int = Field(9464, ge=0, le=65535, description="/metrics port, 0 = off")
    metrics_host: str = Field("127.0.0.1", description="/metrics address (loopback default)")

    # Outbox and sender
    outbox_capacity: int = Field(1024, gt=0, description="windows waiting for the sender")
    outbox_overflow: OverflowPolicy = Field(
        "drop_oldest", description="which window is dropped (and counted) when the outbox is full")
    retry_initial_s: float = Field(0.05, gt=0, description="first retry delay")
    retry_max_s: float = Field(2.0, gt=0, description="retry delays double up to this")
    close_timeout_s: float = Field(10.0, ge=0, description="how long close() drains the outbox")

    # Validation (vectorticks.masks); the seed's names
    tick_validation_enabled: bool = Field(
        True, description="quarantine ticks that break a validation rule (unknown "
                          "instruments are always quarantined)")
    tick_validation_strict: bool = Field(
        False, description="reject a window whole (counted) when any tick in it is bad")

    @property
    def validation_limits(self) -> Limits | None:
        return Limits() if self.tick_validation_enabled else None

    # Implied volatility and Greeks of every option snapshot
    greeks_enabled: bool = Field(True, description="compute IV and Greeks per window")
    greeks_model: Literal["black76", "bsm"] = Field(
        "black76", description="black76 on the forward, or bsm on spot with dividend_yield")
    risk_free_rate: float = Field(0.065, description="continuously compounded, 0.065 = 6.5 %")
    dividend_yield: float = Field(0.0, description="continuous dividend yield (bsm; carry)")
    time_calendar: Literal["act365", "trading252"] = Field(
        "act365", description="time to expiry: calendar ACT/365, or trading sessions / 252")
    trading_holidays: tuple[str, ...] = Field(
        (), description="ISO dates skipped by the trading252 calendar")
    max_relative_spread: float = Field(
        0.25, gt=0, description="mid is inverted when (ask - bid) <= this * mid, else last")

    @property
    def greeks_params(self) -> GreeksParams | None:
        """The Greeks settings for compute_window, ``None`` when disabled."""
        if not self.greeks_enabled:
            return None
        return GreeksParams(model=self.greeks_model, rate=self.risk_free_rate,
                            dividend_yield=self.dividend_yield, calendar=self.time_calendar,
                            holidays=self.trading_holidays,
                            max_relative_spread=self.max_relative_spread)

    @property
    def window_ns(self) -> int:
        return self.tick_batch_window_ms * 1_000_000

    @property
    def sink_kind(self) -> SinkKind:
        """The sink in effect: explicit, else a Redis stream when a URL is set, else file."""
        if self.sink is not None:
            return self.sink
        return "stream" if self.redis_url is not None else "file"

    @model_validator(mode="after")
    def _redis_url_given(self) -> Settings:
        if self.sink in ("stream", "pubsub", "spubsub", "legacy") and self.redis_url is None:
            raise ValueError(f"sink {self.sink!r} needs redis_url (VECTORTICKS_REDIS_URL)")
        if self.dead_letter_stream and self.redis_url is None:
            raise ValueError("dead_letter_stream needs redis_url (VECTORTICKS_REDIS_URL)")
        return self


_SECRET_FIELDS = frozenset({"redis_url"})


def _describe(exc: ValidationError) -> str:
    """One line per problem, named by its environment variable; a secret's value is never
    echoed (a Redis URL may hold a password)."""
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else ""
        if not field:
            problems.append(message)
            continue
        shown = "" if field in _SECRET_FIELDS else f" (got {error['input']!r})"
        problems.append(f"{field} (VECTORTICKS_{field.upper()}): {message}{shown}")
    return "invalid settings: " + "; ".join(problems)

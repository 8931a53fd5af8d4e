"""Shared fixtures: real redis-server processes on free loopback ports, and window results.

``redis_server`` (session) starts one ``redis-server`` for the whole run; ``redis_url``
empties it (FLUSHALL) and hands its URL to one test; ``redis_server_factory`` starts extra
servers with their own arguments (``--requirepass``, …) that are stopped after the test.
Servers are stopped by pid (SIGTERM, then SIGKILL if they do not exit).
Tests that need one carry ``@pytest.mark.redis``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from vectorticks.columns import (
    BAR_COLUMNS,
    MISSING_INT,
    OPTION_COLUMNS,
    QUARANTINE_COLUMNS,
    empty_table,
)
from vectorticks.compute import WindowResult

REDIS_INSTALL_HINT = "apt-get install -y redis-server"
MS = 1_000_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_ping(port: int) -> bool:
    """True once the server accepts a connection and replies to PING (``+PONG``, or
    ``-NOAUTH`` from a server that needs a password: it is up either way)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


class RedisServer:
    """One ``redis-server`` subprocess on a loopback port (no persistence).

    ``start()`` (re)starts it — on the same port after a ``stop()``, so URLs stay valid —
    and waits until it answers PING; ``stop()`` terminates it by pid.
    """

    def __init__(self, binary: str, workdir: Path, *extra_args: str):
        self.binary = binary
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"redis-{self.port}.log"

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        # A fresh port could be taken between probing and binding: try a few.
        ports = [self.port] if self.port is not None else [_free_port() for _ in range(3)]
        for port in ports:
            self.port = port
            if self._launch(timeout):
                return
        raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1:{self.port} within "
                           f"{timeout} s; log:\n{self._log_tail()}")

    def _launch(self, timeout: float) -> bool:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", str(self.workdir), *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited: port taken, bad argument, …
                self.proc = None
                return False
            if _answers_ping(self.port):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM to this pid only
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(f"redis-server is not on PATH; install it with: {REDIS_INSTALL_HINT} "
                    f"(`make test` installs it)")
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session: ``.url``, ``.port``, ``.pid``, ``stop()``,
    ``start()`` (restarts on the same port)."""
    server = RedisServer(_redis_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied for this test (restarted if a test stopped it)."""
    import redis

    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers: ``redis_server_factory("--requirepass", "secret")``; all are
    stopped when the test ends."""
    binary = _redis_binary()
    servers: list[RedisServer] = []

    def start(*extra_args: str) -> RedisServer:
        workdir = tmp_path / f"redis-{len(servers)}"
        workdir.mkdir()
        server = RedisServer(binary, workdir, *extra_args)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


# -- window results --------------------------------------------------------------------------

T0_NS = 1_795_000_000_000_000_000  # 2026-11-18, a plausible receive time
EXPIRY_NS = 1_796_032_800_000_000_000


def build_result(seq: int = 1, end_ns: int | None = None, *, n_bars: int = 3,
                 n_options: int = 4, n_quarantine: int = 1) -> WindowResult:
    """A WindowResult with known values, including missing ones (NaN, MISSING_INT), whose
    ``ticks_in`` equals its published plus quarantined ticks."""
    end_ns = T0_NS + seq * 100 * MS if end_ns is None else end_ns
    start_ns = end_ns - 100 * MS
    i = np.arange(n_bars)
    bars = empty_table(BAR_COLUMNS, n_bars)
    bars.update(
        instrument_token=(256265 + 256 * i).astype(np.uint32),
        open=100.0 + i + seq, high=101.5 + i + seq, low=99.25 + i + seq, close=100.75 + i + seq,
        volume=(10 * (i + 1)).astype(np.int64),
        volume_traded=(1_000 + 10 * (i + 1)).astype(np.int64),
        tick_count=(i + 1).astype(np.int32),
        oi=np.where(i == 0, MISSING_INT, 5_000 + i).astype(np.int64),  # an index has no OI
        first_received_ns=(start_ns + 1_000 * i).astype(np.int64),
        last_received_ns=(end_ns - 1_000 * (i + 1)).astype(np.int64),
    )
    if n_bars > 1:
        bars["open"][1] = np.nan  # a bar without a price
    j = np.arange(n_options)
    options = empty_table(OPTION_COLUMNS, n_options)
    options.update(
        instrument_token=(10_000_002 + 256 * j).astype(np.uint32),
        underlying_token=np.full(n_options, 256265, np.uint32),
        future_token=np.full(n_options, 13238786, np.uint32),
        strike=24_000.0 + 50.0 * (j // 2),
        expiry_ns=np.full(n_options, EXPIRY_NS, np.int64),
        is_call=j % 2 == 0,
        last_price=120.5 - j,
        bid_price=np.where(j == 1, np.nan, 120.0 - j),
        bid_quantity=np.where(j == 1, MISSING_INT, 75 * (j + 1)).astype(np.int64),
        ask_price=121.0 - j,
        ask_quantity=(150 * (j + 1)).astype(np.int64),
        oi=(1_000 * (j + 1)).astype(np.int64),
        volume_traded=(500 + j).astype(np.int64),
        volume=(j + 2).astype(np.int64),
        tick_count=(j + 2).astype(np.int32),
        last_received_ns=(end_ns - 500 * (j + 1)).astype(np.int64),
        iv=np.where(j == 2, np.nan, 0.12 + 0.01 * j),
        delta=np.where(j % 2 == 0, 0.5, -0.5) - 0.01 * j,
        gamma=0.001 * (j + 1), theta=-1.5 * (j + 1), vega=2.0 + j, rho=0.3 * (j + 1),
    )
    options["mid_price"] = np.where(np.isfinite(options["bid_price"]),
                                    (options["bid_price"] + options["ask_price"]) / 2, np.nan)
    k = np.arange(n_quarantine)
    quarantine = empty_table(QUARANTINE_COLUMNS, n_quarantine)
    quarantine.update(
        instrument_token=(999 + k).astype(np.uint32),
        received_ns=(start_ns + 7 + k).astype(np.int64),
        reason=np.ones(n_quarantine, np.uint32),
        last_price=np.full(n_quarantine, 1.5),
    )
    ticks_in = int(bars["tick_count"].sum() + options["tick_count"].sum()) + n_quarantine
    return WindowResult(seq=seq, start_ns=start_ns, end_ns=end_ns, ticks_in=ticks_in,
                        bars=bars, options=options, quarantine=quarantine)


@pytest.fixture
def make_result() -> Callable[..., WindowResult]:
    """:func:`build_result`: ``make_result(seq, end_ns, n_bars=…, n_options=…)``."""
    return build_result

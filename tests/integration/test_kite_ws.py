"""Live Kite source end to end: a loopback WebSocket server speaking Kite's binary
protocol, the real ``KiteTicker`` (inside ``vectorticks run``, in a subprocess: twisted's
reactor runs once per process) and the engine with a file sink.

The server (``websockets``, in a thread of the test process) serves synthetic frames
built from :class:`SyntheticMarket` ticks to each connection for the tokens it
subscribed, in the mode it asked for; sends heartbeats, an error text message and one
malformed frame; and drops one connection mid-stream. The test checks that every tick
served is in a published window, that the dropped connection was reconnected (and
resubscribed) and counted, that the malformed frame was counted and nothing else lost,
that no credential leaked into the output, and that replaying the recorded tick log
gives the same payload bytes as the live run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from vectorticks import payload
from vectorticks.kite import encode_frame
from vectorticks.sources import SyntheticMarket
from vectorticks.ticklog import TickLogReader, log_files

pytest.importorskip("kiteconnect")
websockets = pytest.importorskip("websockets")
from websockets.asyncio.server import serve  # noqa: E402

API_KEY = "test_api_key"
ACCESS_TOKEN = "s3cret-access-token-do-not-log"


def merge_frames(frames: list[bytes]) -> bytes:
    """One frame holding the packets of several (as Kite mixes modes in one message)."""
    count = sum(int.from_bytes(f[:2], "big") for f in frames)
    return count.to_bytes(2, "big") + b"".join(f[2:] for f in frames)


class FakeKite:
    """Kite's ticker protocol on a loopback port, driven by a synthetic market."""

    def __init__(self, market: SyntheticMarket, *, connections: int, steps: int = 100,
                 step_s: float = 0.02, drop_at: int = 30, timeout_s: float = 45.0):
        self.market = market
        self.connections = connections
        self.steps = steps
        self.step_s = step_s
        self.drop_at = drop_at
        self.timeout_s = timeout_s
        self.served: collections.Counter[int] = collections.Counter()
        self.data_frames = 0            # binary messages with packets (the malformed one too)
        self.handshakes: list[dict[str, list[str]]] = []
        self.modes_seen: set[str] = set()
        self.subscriptions: list[frozenset[int]] = []
        self.dropped: list[frozenset[int]] = []
        self.frames_after_reconnect = 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._conns: dict[int, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- protocol --------------------------------------------------------------------------

    async def _handler(self, ws: Any) -> None:
        self.handshakes.append(parse_qs(urlsplit(ws.request.path).query))
        conn: dict[str, Any] = {"ws": ws, "modes": {}, "reconnected": False}
        self._conns[id(conn)] = conn
        try:
            async for message in ws:
                m = json.loads(message)
                if m["a"] == "subscribe":
                    for t in m["v"]:
                        conn["modes"].setdefault(t, "quote")   # Kite's default mode
                    tokens = frozenset(conn["modes"])
                    self.subscriptions.append(tokens)
                    conn["reconnected"] = tokens in self.dropped
                elif m["a"] == "mode":
                    mode, tokens = m["v"]
                    self.modes_seen.add(mode)
                    for t in tokens:
                        conn["modes"][t] = mode
                elif m["a"] == "unsubscribe":
                    for t in m["v"]:
                        conn["modes"].pop(t, None)
        except websockets.ConnectionClosed:
            pass
        finally:
            self._conns.pop(id(conn), None)

    def _frame_for(self, conn: dict[str, Any], batch: Any) -> tuple[bytes | None, np.ndarray]:
        modes = dict(conn["modes"])
        if not modes or not len(batch):
            return None, np.empty(0, np.uint32)
        wanted = np.isin(batch.instrument_token, np.fromiter(modes, np.int64))
        sub = batch.take(wanted)
        if not len(sub):
            return None, np.empty(0, np.uint32)
        per_token = np.array([modes[int(t)] for t in sub.instrument_token])
        parts, tokens = [], []
        for mode in ("full", "quote", "ltp"):
            rows = per_token == mode
            if rows.any():
                parts.append(encode_frame(sub.take(rows), mode))
                tokens.append(sub.instrument_token[rows])
        return merge_frames(parts), np.concatenate(tokens)

    async def _send_all(self, message: bytes | str) -> None:
        for conn in list(self._conns.values()):
            try:
                await conn["ws"].send(message)
            except websockets.ConnectionClosed:
                pass

    async def _produce(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while (sum(1 for c in self._conns.values() if c["modes"]) < self.connections
               or len(self.modes_seen) == 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self._conns)} client connections came")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # let the mode messages of every connection arrive
        step = 0
        while step < self.steps or self.frames_after_reconnect < 10:
            if time.monotonic() > deadline:
                raise TimeoutError("the dropped connection did not come back")
            batch = self.market.next_batch(self.market.now_ns + int(self.step_s * 1e9))
            for conn in list(self._conns.values()):
                frame, tokens = self._frame_for(conn, batch)
                if frame is None:
                    continue
                try:
                    await conn["ws"].send(frame)
                except websockets.ConnectionClosed:
                    continue
                self.served.update(tokens.tolist())
                self.data_frames += 1
                if conn["reconnected"]:
                    self.frames_after_reconnect += 1
            conns = list(self._conns.values())
            if step == 10 and conns:   # Kite's text error message: counted, not fatal
                await conns[-1]["ws"].send(json.dumps({"type": "error", "data": "test"}))
            if step == 20 and conns:   # a malformed frame: counted and skipped
                try:
                    await conns[-1]["ws"].send(b"\x00\x02\x00\x08" + bytes(8))
                    self.data_frames += 1
                except websockets.ConnectionClosed:
                    pass
            if step == self.drop_at and conns:   # drop the connection, no close handshake
                victim = conns[0]
                self.dropped.append(frozenset(victim["modes"]))
                self._conns.pop(id(victim), None)   # serve it nothing more
                victim["ws"].transport.close()
            if step % 5 == 0:
                await self._send_all(b"\x00")     # heartbeat
            step += 1
            await asyncio.sleep(self.step_s)
        self.done.set()
        while True:                                # idle: heartbeats only
            await self._send_all(b"\x00")
            await asyncio.sleep(0.1)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            async with serve(self._handler, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                producer = asyncio.create_task(self._produce())
                producer.add_done_callback(self._producer_done)
                await self._stop
                producer.cancel()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        self._thread.start()
        assert ready.wait(10), "server did not start"
        return f"ws://127.0.0.1:{self.port}"

    def _producer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
            self.done.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._stop.done():
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        if self._thread is not None:
            self._thread.join(10)


def logged_data_frames(directory: Path) -> int:
    n = 0
    for path in log_files(directory):
        n += sum(1 for r in TickLogReader(path) if len(r.frame) > 1)
    return n


def per_token_ticks(windows: list[payload.Window]) -> collections.Counter[int]:
    counts: collections.Counter[int] = collections.Counter()
    for w in windows:
        for table in (w.bars, w.options):
            counts.update(dict(zip(table.instrument_token.tolist(), table.tick_count.tolist(),
                                   strict=True)))
        counts.update(w.quarantine.instrument_token.tolist())
    return counts


def test_kiteticker_through_a_dropped_connection_into_windows(tmp_path):
    market = SyntheticMarket(300, rate=20_000, seed=5, start_ns=time.time_ns())
    csv = tmp_path / "instruments.csv"
    market.write_instruments_csv(csv)
    server = FakeKite(market, connections=3)
    url = server.start()
    out, log_dir = tmp_path / "live.vtw", tmp_path / "ticks"
    env = {**os.environ, "VECTORTICKS_KITE_API_KEY": API_KEY,
           "VECTORTICKS_KITE_ACCESS_TOKEN": ACCESS_TOKEN}
    cmd = [sys.executable, "-m", "vectorticks.cli", "run", "--instruments-csv", str(csv),
           "--ws-url", url, "--per-connection", "100", "--reconnect-delay", "0.2",
           "--tick-log", str(log_dir), "--file", str(out), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not server.done.wait(0.2):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "server never finished"
        assert server.error is None, server.error
        while logged_data_frames(log_dir) < server.data_frames:  # the client has them all
            assert time.monotonic() < deadline, "frames did not reach the tick log"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stop()

    assert proc.returncode == 0, stderr[-3000:]
    assert ACCESS_TOKEN not in stdout + stderr            # credentials are never printed
    summary = json.loads(stdout.strip().splitlines()[-1])
    served = sum(server.served.values())
    assert served > 10_000

    # the protocol: 3 connections of 100, full mode, credentials in the URL
    assert summary["connections"] == 3 and summary["instruments"] == 300
    assert {h["api_key"][0] for h in server.handshakes} == {API_KEY}
    assert {h["access_token"][0] for h in server.handshakes} == {ACCESS_TOKEN}
    assert server.modes_seen == {"full"}
    first_three = server.subscriptions[:3]
    assert sorted(len(s) for s in first_three) == [100, 100, 100]
    assert frozenset().union(*first_three) == set(market.registry.token.tolist())

    # the dropped connection: reconnected, resubscribed, counted
    assert server.dropped and server.dropped[0] in server.subscriptions[3:]
    assert server.frames_after_reconnect >= 10
    assert summary["reconnects"] >= 1 and summary["disconnects"] >= 1
    assert summary["connection_errors"] >= 2  # the unclean drop and the error message
    assert summary["frames_dropped"] == 0 and summary["connected"] == 0  # closed at exit
    assert "1006" not in stderr.split("reconnected")[-1]  # clean close at shutdown

    # every served tick is in a published window; the malformed frame is counted
    assert summary["frames_rejected"] == 1
    assert summary["ticks_in"] == summary["ticks_published"] == served
    windows = list(payload.iter_file(out))
    assert sum(w.ticks_in for w in windows) == served
    assert [w.seq for w in windows] == list(range(1, len(windows) + 1))
    assert per_token_ticks(windows) == server.served

    # the tick log replays to the same payload bytes
    replayed = tmp_path / "replayed.vtw"
    rep = subprocess.run([sys.executable, "-m", "vectorticks.cli", "replay", str(log_dir),
                          "--file", str(replayed), "--json"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert replayed.read_bytes() == out.read_bytes()

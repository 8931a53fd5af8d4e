"""The engine against a real redis-server: every tick in exactly one published window,
gapless sequence numbers, and close() publishing the partial window — per publish mode."""

import json
import time

import pytest

from vectorticks import payload
from vectorticks.config import Settings
from vectorticks.engine import Engine
from vectorticks.sinks import make_sink, redis_client
from vectorticks.sources import SyntheticMarket

pytestmark = pytest.mark.redis
MS = 1_000_000


@pytest.fixture(scope="module")
def market():
    m = SyntheticMarket(400, rate=30_000, seed=11)
    batches = [m.next_batch(m.now_ns + 10 * MS) for _ in range(55)]  # 550 ms: ends mid-window
    return m.registry, batches


def run(registry, batches, kind, url, **settings):
    s = Settings(sink=kind, redis_url=url, **settings)
    sink = make_sink(kind, redis_url=url, stream_key=s.stream_key, channel=s.channel,
                     legacy_channel_template=s.legacy_channel_template)
    engine = Engine(registry, sink, s)
    for b in batches:
        engine.ingest(b)
        engine.poll(int(b.received_ns[-1]))
    return engine.close(timeout=10)


def check_windows(windows, summary, ticks_in):
    assert summary["ticks_in"] == summary["ticks_published"] == ticks_in
    assert summary["ticks_dropped"] == 0
    assert [w.seq for w in windows] == list(range(1, len(windows) + 1))
    assert sum(w.ticks_in for w in windows) == ticks_in
    for w in windows:
        in_tables = int(w.bars.tick_count.sum() + w.options.tick_count.sum()) + len(w.quarantine)
        assert in_tables == w.ticks_in
    # the last window is the partial one flushed by close(): it ends after its last tick
    last = windows[-1]
    assert last.end_ns - last.start_ns < 100 * MS


def test_stream_mode(redis_url, market):
    registry, batches = market
    summary = run(registry, batches, "stream", redis_url)
    client = redis_client(redis_url)
    entries = client.xrange("vt:windows")
    windows = [payload.decode(fields[b"payload"]) for _, fields in entries]
    check_windows(windows, summary, sum(len(b) for b in batches))
    assert len(windows) == 6                                # 5 full windows + the partial one
    ids = [eid.decode() for eid, _ in entries]
    assert ids == [f"{w.end_ns // MS}-{w.seq}" for w in windows]   # deterministic IDs


@pytest.mark.parametrize("kind", ["pubsub", "spubsub"])
def test_pubsub_modes(redis_url, market, kind):
    registry, batches = market
    client = redis_client(redis_url)
    sub = client.pubsub()
    (sub.ssubscribe if kind == "spubsub" else sub.subscribe)("vt:windows")
    assert sub.get_message(timeout=5)["type"] in ("subscribe", "ssubscribe")
    summary = run(registry, batches, kind, redis_url)
    windows = []
    deadline = time.monotonic() + 10
    while len(windows) < summary["windows_published"] and time.monotonic() < deadline:
        msg = sub.get_message(timeout=1)
        if msg and msg["type"] in ("message", "smessage"):
            windows.append(payload.decode(msg["data"]))
    sub.close()
    check_windows(windows, summary, sum(len(b) for b in batches))


def test_legacy_mode_one_json_message_per_item(redis_url, market):
    registry, batches = market
    batches = batches[:12]
    client = redis_client(redis_url)
    sub = client.pubsub()
    sub.psubscribe("ticks:*")
    assert sub.get_message(timeout=5)["type"] == "psubscribe"
    summary = run(registry, batches, "legacy", redis_url)
    assert summary["windows_published"] == len(batches)    # batching off: a window per ingest
    messages = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = sub.get_message(timeout=0.5)
        if msg is None:
            break
        if msg["type"] == "pmessage":
            messages.append((msg["channel"].decode(), json.loads(msg["data"])))
    sub.close()
    ticks_in = sum(len(b) for b in batches)
    # legacy consumers never had a quarantine: its ticks are only counted by the engine
    assert sum(m["tick_count"] for _, m in messages) + summary["ticks_quarantined"] == ticks_in
    assert all(ch == f"ticks:{m['instrument_token']}" for ch, m in messages)
    kinds = {m["kind"] for _, m in messages}
    assert kinds == {"bar", "option"}
    seqs = sorted({m["seq"] for _, m in messages})
    assert seqs == list(range(1, len(batches) + 1))

"""Sinks against a real redis-server: stream IDs and idempotent retries, trimming, Pub/Sub
and sharded Pub/Sub delivery, legacy per-item JSON, credentials, a stopped server."""

import itertools
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
import redis

from vectorticks import payload
from vectorticks.columns import MISSING_INT, TickBatch
from vectorticks.compute import Carry, compute_window
from vectorticks.errors import SinkError
from vectorticks.instruments import InstrumentRegistry
from vectorticks.sinks import (
    RedisLegacySink,
    RedisPubSubSink,
    RedisStreamSink,
    make_sink,
    read_channel,
    read_stream,
    redis_client,
)

pytestmark = pytest.mark.redis
MS = 1_000_000
KEY = "vt:windows"


@pytest.fixture
def client(redis_url):
    c = redis_client(redis_url)
    yield c
    c.close()


def encoded(make_result, seq, end_ns=None, **kw):
    r = make_result(seq, end_ns, **kw)
    return r, payload.encode(r)


def wait_for_messages(sub, n, timeout=5.0):
    """Up to ``n`` data messages from a PubSub, within ``timeout`` seconds."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = sub.get_message(timeout=0.2)
        if msg and msg["type"] in ("message", "smessage", "pmessage"):
            out.append(msg)
    return out


# -- stream -------------------------------------------------------------------------------


def test_stream_entries_have_deterministic_ids_and_fields(client, make_result):
    sink = RedisStreamSink(client)
    assert sink.last_seq() is None  # no stream yet
    results = [make_result(seq) for seq in (1, 2, 3)]
    for r in results:
        sink.write(r.seq, r.end_ns, payload.encode(r))
    entries = client.xrange(KEY)
    assert [eid.decode() for eid, _ in entries] == [f"{r.end_ns // MS}-{r.seq}" for r in results]
    assert [int(f[b"seq"]) for _, f in entries] == [1, 2, 3]
    for (_, fields), r in zip(entries, results, strict=True):
        assert sorted(fields) == [b"payload", b"seq"]
        w = payload.decode(fields[b"payload"])
        assert (w.seq, w.end_ns, w.ticks_in) == (r.seq, r.end_ns, r.ticks_in)
        np.testing.assert_array_equal(w.options["iv"].to_numpy(), r.options["iv"])
        np.testing.assert_array_equal(w.bars["oi"].to_numpy(), r.bars["oi"])
    assert sink.last_seq() == 3 and sink.duplicates == 0 and sink.relocated == 0


def test_stream_retry_of_a_written_window_is_a_counted_duplicate(client, make_result):
    sink = RedisStreamSink(client)
    r1, d1 = encoded(make_result, 1)
    r2, d2 = encoded(make_result, 2)
    sink.write(1, r1.end_ns, d1)
    sink.write(1, r1.end_ns, d1)  # retry after a "broken" connection: already applied
    assert client.xlen(KEY) == 1 and sink.duplicates == 1
    sink.write(2, r2.end_ns, d2)
    sink.write(2, r2.end_ns, d2)
    sink.write(1, r1.end_ns, d1)  # a stale retry of an older window is not re-appended
    assert client.xlen(KEY) == 2 and sink.duplicates == 3
    assert sink.last_seq() == 2


def test_stream_new_window_with_a_too_small_id_is_not_dropped(client, make_result):
    """The clock went backwards: seq 2 ends before seq 1. It must still be appended (above
    the top, its ID ending in its seq), and its own retry must be recognised."""
    sink = RedisStreamSink(client)
    t = make_result(1).end_ns
    r1, d1 = encoded(make_result, 1, t)
    r2, d2 = encoded(make_result, 2, t - 50 * MS)   # earlier than the top entry
    r3, d3 = encoded(make_result, 3, t)             # same millisecond as the top entry
    r4, d4 = encoded(make_result, 4, t + 100 * MS)  # the clock is back
    sink.write(1, r1.end_ns, d1)
    sink.write(2, r2.end_ns, d2)
    assert sink.relocated == 1 and sink.duplicates == 0
    sink.write(2, r2.end_ns, d2)                    # retry of the relocated window
    assert sink.duplicates == 1
    sink.write(3, r3.end_ns, d3)
    sink.write(4, r4.end_ns, d4)
    entries = client.xrange(KEY)
    ms = t // MS
    assert [eid.decode() for eid, _ in entries] == [f"{ms}-1", f"{ms}-2", f"{ms}-3",
                                                   f"{ms + 100}-4"]
    assert [payload.decode(f[b"payload"]).seq for _, f in entries] == [1, 2, 3, 4]
    assert sink.relocated == 1 and sink.last_seq() == 4


def test_stream_above_a_foreign_top_entry(client, make_result):
    client.xadd(KEY, {"note": "written by someone else"}, id="9999999999999-7")
    sink = RedisStreamSink(client)
    assert sink.last_seq() is None  # the top entry has no seq field
    r, d = encoded(make_result, 3)
    sink.write(3, r.end_ns, d)
    assert client.xrevrange(KEY, count=1)[0][0] == b"10000000000000-3"
    sink.write(3, r.end_ns, d)
    assert client.xlen(KEY) == 2 and sink.duplicates == 1 and sink.last_seq() == 3


def test_stream_after_the_top_entry_was_deleted(client, make_result):
    """Redis remembers the last generated ID even when that entry is gone; the relocated
    ID must be above it, not just above the remaining top entry."""
    sink = RedisStreamSink(client)
    t = make_result(1).end_ns
    r1, d1 = encoded(make_result, 1, t)
    r2, d2 = encoded(make_result, 2, t - 50 * MS)
    sink.write(1, r1.end_ns, d1)
    client.xdel(KEY, f"{t // MS}-1")
    assert sink.last_seq() is None
    sink.write(2, r2.end_ns, d2)
    assert [eid for eid, _ in client.xrange(KEY)] == [f"{t // MS}-2".encode()]
    assert sink.relocated == 1 and sink.last_seq() == 2


def test_stream_maxlen_trims_approximately(client, make_result):
    sink = RedisStreamSink(client, maxlen=10)
    r, d = encoded(make_result, 1, n_bars=1, n_options=1, n_quarantine=0)
    base = r.end_ns
    for seq in range(1, 301):
        sink.write(seq, base + seq * 100 * MS, d)  # the payload's own seq does not matter
    n = client.xlen(KEY)
    assert 10 <= n < 300 - 100  # "~": whole macro nodes (100 entries by default) are cut
    assert client.xrange(KEY)[-1][1][b"seq"] == b"300" and sink.last_seq() == 300


def test_read_stream_from_start(client, make_result):
    sink = RedisStreamSink(client)
    for seq in (1, 2, 3):
        r, d = encoded(make_result, seq)
        sink.write(seq, r.end_ns, d)
    seqs = [payload.decode(p).seq for p in read_stream(client, KEY, from_start=True,
                                                         idle_timeout=0.3)]
    assert seqs == [1, 2, 3]
    assert list(read_stream(client, KEY, idle_timeout=0.2)) == []  # only new entries


# -- pub/sub ------------------------------------------------------------------------------


@pytest.mark.parametrize("sharded", [False, True])
def test_pubsub_delivers_payload_bytes(client, make_result, sharded):
    sub = client.pubsub()
    (sub.ssubscribe if sharded else sub.subscribe)("vt:windows")
    assert sub.get_message(timeout=5)["type"] == ("ssubscribe" if sharded else "subscribe")
    sink = make_sink("spubsub" if sharded else "pubsub", client=client)
    sent = [encoded(make_result, seq) for seq in (1, 2, 3)]
    for r, d in sent:
        sink.write(r.seq, r.end_ns, d)
    assert sink.last_receivers == 1 and sink.last_seq() is None
    messages = wait_for_messages(sub, 3)
    sub.close()
    assert [m["type"] for m in messages] == ["smessage" if sharded else "message"] * 3
    assert [m["data"] for m in messages] == [d for _, d in sent]
    assert [payload.decode(m["data"]).seq for m in messages] == [1, 2, 3]


def test_read_channel(client, redis_url, make_result):
    got = []
    reader = threading.Thread(target=lambda: got.extend(itertools.islice(
        read_channel(redis_client(redis_url), "vt:c", idle_timeout=5), 2)))
    reader.start()
    deadline = time.monotonic() + 5
    while client.pubsub_numsub("vt:c")[0][1] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sink = RedisPubSubSink(client, "vt:c")
    sent = [encoded(make_result, seq)[1] for seq in (1, 2)]
    for seq, d in enumerate(sent, 1):
        sink.write(seq, 0, d)
    reader.join(10)
    assert got == sent


# -- legacy -------------------------------------------------------------------------------


def legacy_messages_received(client, sink, writes, expected):
    sub = client.pubsub()
    sub.psubscribe("ticks:*")
    assert sub.get_message(timeout=5)["type"] == "psubscribe"
    for seq, end_ns, data in writes:
        sink.write(seq, end_ns, data)
    messages = wait_for_messages(sub, expected)
    assert sub.get_message(timeout=0.2) is None  # nothing more than expected
    sub.close()
    return [(m["channel"].decode(), json.loads(m["data"])) for m in messages]


def test_legacy_one_json_message_per_bar_and_option(client, make_result):
    r, d = encoded(make_result, 7, n_bars=3, n_options=4)
    sink = RedisLegacySink(client)
    messages = legacy_messages_received(client, sink, [(7, r.end_ns, d)], 7)
    assert sink.last_messages == 7 and len(messages) == 7
    assert all(ch == f"ticks:{m['instrument_token']}" for ch, m in messages)
    assert all(m["seq"] == 7 and m["window_end_ns"] == r.end_ns for _, m in messages)
    for kind, table in (("bar", r.bars), ("option", r.options)):
        got = pd.DataFrame([m for _, m in messages if m["kind"] == kind])
        assert len(got) == len(table["instrument_token"])
        for col, expected in table.items():
            values = got[col].tolist()
            for v, e in zip(values, expected.tolist(), strict=True):
                missing = (isinstance(e, float) and np.isnan(e)) or e == MISSING_INT
                assert (v is None or (isinstance(v, float) and np.isnan(v))) if missing \
                    else v == e, (kind, col, v, e)
    raw = {m["instrument_token"]: m for _, m in messages}
    assert raw[256265]["oi"] is None and raw[256521]["open"] is None  # NaN/MISSING → null
    assert raw[10000258]["bid_price"] is None and raw[10000514]["iv"] is None
    assert raw[10000002]["is_call"] is True and raw[10000258]["is_call"] is False


def test_legacy_from_a_computed_window(client):
    nifty, ce = 256265, 10000002
    frame = pd.DataFrame(
        [(nifty, 1, "NIFTY 50", "NIFTY 50", "", 0, "EQ", "INDICES", "NSE"),
         (ce, 2, "NIFTY26D0124000CE", "NIFTY", "2026-12-01", 24000, "CE", "NFO-OPT", "NFO")],
        columns=["instrument_token", "exchange_token", "tradingsymbol", "name", "expiry",
                 "strike", "instrument_type", "segment", "exchange"])
    frame["last_price"], frame["tick_size"], frame["lot_size"] = 0.0, 0.05, 75
    registry = InstrumentRegistry.from_frame(frame)
    batch = TickBatch.from_columns(
        instrument_token=[nifty, ce, nifty, 999, ce], received_ns=[10, 20, 30, 40, 50],
        last_price=[24000.0, 120.0, 24010.5, 1.0, 121.5],
        volume_traded=[MISSING_INT, 100, MISSING_INT, 0, 130],
        bid_price=[np.nan, 119.5, np.nan, np.nan, 121.0],
        bid_quantity=[MISSING_INT, 75, MISSING_INT, MISSING_INT, 150],
        ask_price=[np.nan, 120.5, np.nan, np.nan, 122.0],
        ask_quantity=[MISSING_INT, 75, MISSING_INT, MISSING_INT, 300])
    result, _ = compute_window(batch, registry, Carry.initial(len(registry)), seq=1,
                               start_ns=0, end_ns=100)
    sink = RedisLegacySink(client)
    messages = legacy_messages_received(client, sink, [(1, 100, payload.encode(result))], 2)
    (bar_channel, bar), (option_channel, option) = sorted(messages, key=lambda m: m[1]["kind"])
    assert bar_channel == f"ticks:{nifty}" and option_channel == f"ticks:{ce}"
    assert (bar["kind"], bar["open"], bar["high"], bar["close"], bar["tick_count"]) == \
        ("bar", 24000.0, 24010.5, 24010.5, 2)
    assert bar["volume_traded"] is None and bar["oi"] is None  # index: no volume, no OI
    assert (option["kind"], option["last_price"], option["volume"], option["mid_price"]) == \
        ("option", 121.5, 30, 121.5)
    assert option["iv"] is None  # not computed in this window → NaN → null
    assert sum(m["tick_count"] for _, m in messages) == 4  # the fifth tick is quarantined


def test_legacy_empty_window_publishes_nothing(client, make_result):
    r, d = encoded(make_result, 1, n_bars=0, n_options=0)
    sink = RedisLegacySink(client)
    assert legacy_messages_received(client, sink, [(1, r.end_ns, d)], 0) == []
    assert sink.last_messages == 0


# -- credentials and failures -------------------------------------------------------------


def test_password_from_the_url(redis_server_factory, make_result):
    server = redis_server_factory("--requirepass", "secret")
    base = f"127.0.0.1:{server.port}/0"
    r, d = encoded(make_result, 1)

    sink = make_sink("stream", redis_url=f"redis://:secret@{base}")
    sink.write(1, r.end_ns, d)
    assert sink.last_seq() == 1
    sink.close()

    for url in (f"redis://:wrong@{base}", f"redis://{base}"):
        sink = make_sink("stream", redis_url=url)
        with pytest.raises(SinkError) as info:
            sink.write(2, r.end_ns, d)
        assert isinstance(info.value.__cause__, redis.RedisError)
        assert "wrong" not in str(info.value)
        sink.close()


def test_acl_user_from_the_url(redis_server_factory, make_result):
    server = redis_server_factory("--requirepass", "adminpw")
    admin = redis.Redis(port=server.port, password="adminpw")
    admin.acl_setuser("alice", enabled=True, passwords=["+alicepw"], keys=["vt:*"],
                      channels=["vt:*"], commands=["+@all"])
    admin.close()
    r, d = encoded(make_result, 1)
    base = f"127.0.0.1:{server.port}/0"
    stream = make_sink("stream", redis_url=f"redis://alice:alicepw@{base}")
    stream.write(1, r.end_ns, d)
    assert stream.last_seq() == 1
    pub = make_sink("pubsub", redis_url=f"redis://alice:alicepw@{base}")
    pub.write(1, r.end_ns, d)
    assert pub.last_receivers == 0
    denied = make_sink("stream", redis_url=f"redis://alice:alicepw@{base}",
                       stream_key="other:windows")  # outside alice's key pattern
    with pytest.raises(SinkError, match="NoPermissionError") as info:
        denied.write(1, r.end_ns, d)
    assert isinstance(info.value.__cause__, redis.exceptions.NoPermissionError)
    for s in (stream, pub, denied):
        s.close()


def test_stopped_server_raises_sink_error_then_recovers(redis_server, redis_url, make_result):
    stream = make_sink("stream", redis_url=redis_url)
    pub = make_sink("pubsub", redis_url=redis_url)
    legacy = make_sink("legacy", redis_url=redis_url)
    r1, d1 = encoded(make_result, 1)
    r2, d2 = encoded(make_result, 2)
    stream.write(1, r1.end_ns, d1)
    port = redis_server.port
    redis_server.stop()
    try:
        for sink in (stream, pub, legacy):
            t0 = time.monotonic()
            with pytest.raises(SinkError) as info:
                sink.write(2, r2.end_ns, d2)
            assert isinstance(info.value.__cause__, redis.ConnectionError)
            assert time.monotonic() - t0 < 3  # fails fast: the sender does the backoff
        with pytest.raises(SinkError):
            stream.last_seq()
    finally:
        redis_server.start()
    assert redis_server.port == port and redis_server.running
    stream.write(2, r2.end_ns, d2)  # the same sink reconnects (the restarted server is empty)
    pub.write(2, r2.end_ns, d2)
    assert stream.last_seq() == 2
    for sink in (stream, pub, legacy):
        sink.close()

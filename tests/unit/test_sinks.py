"""Sinks without a server: memory and file sinks, legacy JSON conversion, stream IDs, URL
redaction, the factory, and redis errors surfacing as SinkError."""

import json
import logging
import os

import numpy as np
import pytest
import redis
from pydantic import SecretStr

from vectorticks import payload
from vectorticks.columns import BAR_COLUMNS, MISSING_INT, OPTION_COLUMNS
from vectorticks.errors import ConfigError, SinkError
from vectorticks.sinks import (
    FileSink,
    MemorySink,
    RedisLegacySink,
    RedisPubSubSink,
    RedisStreamSink,
    Sink,
    _id_above,
    legacy_messages,
    make_sink,
    redact_url,
    redis_client,
    stream_id,
)

MS = 1_000_000


def encoded(make_result, seq, **kw):
    r = make_result(seq, **kw)
    return r, payload.encode(r)


def assert_same_window(window, result):
    assert (window.seq, window.start_ns, window.end_ns, window.ticks_in) == \
        (result.seq, result.start_ns, result.end_ns, result.ticks_in)
    for name in ("bars", "options", "quarantine"):
        got = getattr(window, name)
        for col, expected in getattr(result, name).items():
            np.testing.assert_array_equal(got[col].to_numpy(), expected, err_msg=col)


# -- MemorySink ---------------------------------------------------------------------------


def test_memory_sink_keeps_and_decodes_windows(make_result):
    sink = MemorySink()
    assert isinstance(sink, Sink) and sink.last_seq() is None
    results = [make_result(seq) for seq in (1, 2, 3)]
    for r in results:
        sink.write(r.seq, r.end_ns, payload.encode(r))
    assert [(s, e) for s, e, _ in sink.items] == [(r.seq, r.end_ns) for r in results]
    assert sink.last_seq() == 3
    for w, r in zip(sink.windows(), results, strict=True):
        assert_same_window(w, r)
    sink.close()
    r4 = make_result(4)
    sink.write(4, r4.end_ns, payload.encode(r4))  # still usable after close (engine restart)
    assert sink.last_seq() == 4


def test_memory_sink_skips_a_seq_it_holds(make_result):
    sink = MemorySink()
    r, data = encoded(make_result, 1)
    sink.write(1, r.end_ns, data)
    sink.write(1, r.end_ns, data)
    assert len(sink.items) == 1 and sink.duplicates == 1


def test_memory_sink_injected_failures(make_result):
    sink = MemorySink()
    r, data = encoded(make_result, 1)
    sink.fail_next(2)
    for _ in range(2):
        with pytest.raises(SinkError, match="injected"):
            sink.write(1, r.end_ns, data)
    assert sink.items == []
    sink.write(1, r.end_ns, data)
    assert sink.last_seq() == 1 and sink.duplicates == 0


def test_memory_sink_failure_after_applied_write_is_deduplicated(make_result):
    sink = MemorySink()
    r, data = encoded(make_result, 1)
    sink.fail_next(1, applied=True)  # the write lands, the acknowledgement is lost
    with pytest.raises(SinkError):
        sink.write(1, r.end_ns, data)
    sink.write(1, r.end_ns, data)    # the sender's retry
    assert len(sink.items) == 1 and sink.duplicates == 1


# -- FileSink -------------------------------------------------------------------------------


def test_file_sink_appends_readable_payloads(tmp_path, make_result):
    path = tmp_path / "sub" / "w.vtw"
    sink = FileSink(path, fsync=True)
    assert isinstance(sink, Sink) and sink.last_seq() is None
    results = [make_result(seq) for seq in (1, 2, 3)]
    sizes = []
    for r in results:
        data = payload.encode(r)
        sink.write(r.seq, r.end_ns, data)
        sizes.append(len(data))
    assert sink.last_seq() == 3
    sink.close()
    assert os.path.getsize(path) == sum(sizes)
    windows = list(payload.iter_file(path))
    assert [w.seq for w in windows] == [1, 2, 3]
    for w, r in zip(windows, results, strict=True):
        assert_same_window(w, r)


def test_file_sink_rewrite_of_same_or_older_seq_is_skipped(tmp_path, make_result):
    path = tmp_path / "w.vtw"
    sink = FileSink(path)
    r1, d1 = encoded(make_result, 1)
    r2, d2 = encoded(make_result, 2)
    sink.write(1, r1.end_ns, d1)
    sink.write(2, r2.end_ns, d2)
    size = os.path.getsize(path)
    sink.write(2, r2.end_ns, d2)  # a retry of the last window
    sink.write(1, r1.end_ns, d1)  # an older one
    assert os.path.getsize(path) == size and sink.duplicates == 2
    sink.close()


def test_file_sink_reopen_resumes_last_seq(tmp_path, make_result):
    path = tmp_path / "w.vtw"
    sink = FileSink(path)
    for seq in (1, 2):
        r, d = encoded(make_result, seq)
        sink.write(seq, r.end_ns, d)
    sink.close()
    sink = FileSink(path)
    assert sink.last_seq() == 2 and sink.truncated_bytes == 0
    r, d = encoded(make_result, 2)
    sink.write(2, r.end_ns, d)  # already there
    r, d = encoded(make_result, 3)
    sink.write(3, r.end_ns, d)
    sink.close()
    assert [w.seq for w in payload.iter_file(path)] == [1, 2, 3]


@pytest.mark.parametrize("tear", ["half_record", "half_header", "zeros", "bad_crc"])
def test_file_sink_truncates_a_torn_tail_on_open(tmp_path, make_result, caplog, tear):
    path = tmp_path / "w.vtw"
    sink = FileSink(path)
    for seq in (1, 2):
        r, d = encoded(make_result, seq)
        sink.write(seq, r.end_ns, d)
    sink.close()
    good = os.path.getsize(path)
    _, d3 = encoded(make_result, 3)
    torn = {
        "half_record": d3[: len(d3) // 2],
        "half_header": d3[:20],
        "zeros": bytes(len(d3)),
        "bad_crc": d3[:-1] + bytes([d3[-1] ^ 0xFF]),  # complete length, body corrupted
    }[tear]
    with open(path, "ab") as f:
        f.write(torn)
    with pytest.raises(payload.PayloadError):
        list(payload.iter_file(path))  # readers choke on it ...

    with caplog.at_level(logging.WARNING, logger="vectorticks.sinks"):
        sink = FileSink(path)  # ... so opening repairs it
    assert "torn last record" in caplog.text
    assert os.path.getsize(path) == good and sink.truncated_bytes == len(torn)
    assert sink.last_seq() == 2
    r3, d3 = encoded(make_result, 3)
    sink.write(3, r3.end_ns, d3)
    sink.close()
    assert [w.seq for w in payload.iter_file(path)] == [1, 2, 3]


def test_file_sink_refuses_a_corrupt_record_before_the_tail(tmp_path, make_result):
    path = tmp_path / "w.vtw"
    _, d1 = encoded(make_result, 1)
    _, d2 = encoded(make_result, 2)
    path.write_bytes(b"XXXX" + d1[4:] + d2)  # bad magic in the first record
    with pytest.raises(SinkError, match="offset 0 is corrupt"):
        FileSink(path)
    assert path.read_bytes()[:4] == b"XXXX"  # left alone for the operator


def test_file_sink_rolls_back_a_failed_write(tmp_path, make_result):
    path = tmp_path / "w.vtw"
    sink = FileSink(path)
    r1, d1 = encoded(make_result, 1)
    sink.write(1, r1.end_ns, d1)
    real = sink._file

    class HalfThenFail:  # writes part of the record, then the disk is full
        def __init__(self):
            self.calls = 0

        def write(self, data):
            self.calls += 1
            if self.calls == 1:
                return real.write(bytes(data[:100]))
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(real, name)

    sink._file = HalfThenFail()
    r2, d2 = encoded(make_result, 2)
    with pytest.raises(SinkError, match="No space left") as info:
        sink.write(2, r2.end_ns, d2)
    assert isinstance(info.value.__cause__, OSError)
    assert os.path.getsize(path) == len(d1) and sink.last_seq() == 1
    sink._file = real
    sink.write(2, r2.end_ns, d2)  # the sender's retry
    sink.close()
    assert [w.seq for w in payload.iter_file(path)] == [1, 2]


def test_file_sink_rejects_non_payloads_and_writes_after_close(tmp_path, make_result):
    sink = FileSink(tmp_path / "w.vtw")
    r, d = encoded(make_result, 1)
    with pytest.raises(SinkError, match="not a payload"):
        sink.write(1, r.end_ns, b"not a payload at all, not even close to 48 bytes")
    with pytest.raises(SinkError, match="written as seq=7"):
        sink.write(7, r.end_ns, d)  # header says seq 1
    sink.close()
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.write(1, r.end_ns, d)


# -- legacy JSON ----------------------------------------------------------------------------


def test_legacy_messages_one_json_object_per_row(make_result):
    r = make_result(5, n_bars=3, n_options=4)
    window = payload.decode(payload.encode(r))
    messages = legacy_messages(window)
    assert len(messages) == 3 + 4
    objects = [json.loads(m) for _, m in messages]
    assert [ch for ch, _ in messages] == [f"ticks:{o['instrument_token']}" for o in objects]
    assert [o["kind"] for o in objects] == ["bar"] * 3 + ["option"] * 4
    assert {o["seq"] for o in objects} == {5}
    assert {o["window_end_ns"] for o in objects} == {r.end_ns}
    for kind, table, cols, rows in (("bar", r.bars, BAR_COLUMNS, objects[:3]),
                                    ("option", r.options, OPTION_COLUMNS, objects[3:])):
        assert list(rows[0]) == [c.name for c in cols] + ["kind", "seq", "window_end_ns"]
        for i, o in enumerate(rows):
            for c in cols:
                v = table[c.name][i]
                missing = np.isnan(v) if c.dtype.kind == "f" else v == MISSING_INT
                if missing and c.dtype.kind in "fi":
                    assert o[c.name] is None, (kind, i, c.name)
                else:
                    assert o[c.name] == v and type(o[c.name]) is type(v.item()), (kind, c.name)
    # the known missing values of make_result
    assert objects[0]["oi"] is None and objects[1]["open"] is None
    assert objects[4]["bid_price"] is None and objects[4]["bid_quantity"] is None
    assert objects[5]["iv"] is None and objects[3]["is_call"] is True


def test_legacy_messages_of_an_empty_window_and_custom_template(make_result):
    empty = payload.decode(payload.encode(make_result(1, n_bars=0, n_options=0)))
    assert legacy_messages(empty) == []
    window = payload.decode(payload.encode(make_result(2, n_bars=1, n_options=1)))
    channels = [ch for ch, _ in legacy_messages(window, "md:{kind}:{instrument_token}")]
    assert channels == ["md:bar:256265", "md:option:10000002"]


def test_legacy_sink_rejects_unknown_template_fields():
    client = redis_client("redis://127.0.0.1:1/0")  # never connected
    with pytest.raises(ConfigError, match="strike"):
        RedisLegacySink(client, "ticks:{strike}")  # options only: bars have no strike
    with pytest.raises(ConfigError):
        RedisLegacySink(client, "ticks:{instrument_token")


# -- stream IDs -----------------------------------------------------------------------------


def test_stream_ids():
    assert stream_id(1_795_000_000_123_456_789, 42) == "1795000000123-42"
    assert _id_above(b"2000-5", 6) == "2000-6"    # greater seq: same millisecond
    assert _id_above("2000-5", 5) == "2001-5"     # not greater: next millisecond
    assert _id_above(b"2000-9", 3) == "2001-3"


# -- redis errors, client, URLs, factory ----------------------------------------------------


class BrokenClient:
    """A client whose every command fails like a dropped connection."""

    def get_connection_kwargs(self):
        return {}

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise redis.ConnectionError("Connection reset by peer")
        return fail


@pytest.mark.parametrize("sink", [
    lambda c: RedisStreamSink(c), lambda c: RedisPubSubSink(c),
    lambda c: RedisPubSubSink(c, sharded=True), lambda c: RedisLegacySink(c)])
def test_redis_errors_surface_as_sink_error(sink, make_result):
    r, data = encoded(make_result, 1)
    s = sink(BrokenClient())
    with pytest.raises(SinkError) as info:
        s.write(1, r.end_ns, data)
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_sinks_refuse_a_decoding_client():
    client = redis.Redis(decode_responses=True)
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisStreamSink(client)


def test_redis_client_defaults_and_overrides():
    client = redis_client("redis://alice:pw@127.0.0.1:6390/2", socket_timeout=1.5)
    kw = client.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"]) == ("127.0.0.1", 6390, 2)
    assert (kw["username"], kw["password"]) == ("alice", "pw")
    assert kw["socket_connect_timeout"] == 5.0 and kw["socket_timeout"] == 1.5
    assert kw["health_check_interval"] == 30 and kw["retry"].get_retries() == 1
    tls = redis_client("rediss://127.0.0.1:6390/0", ssl_cert_reqs="none")
    assert tls.connection_pool.connection_class.__name__ == "SSLConnection"
    with pytest.raises(ConfigError) as info:
        redis_client("http://u:hunter2@host/0")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://alice:s3cr%40t@host:6379/0", "redis://alice:***@host:6379/0"),
    ("rediss://alice:p:w@[::1]:6380/1", "rediss://alice:***@[::1]:6380/1"),
    ("redis://secretonly@host/0", "redis://***@host/0"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize("kind", ["stream", "pubsub", "spubsub", "legacy"])
def test_make_sink_redis_kind_without_url(kind):
    with pytest.raises(ConfigError, match=f"sink '{kind}' needs a Redis URL"):
        make_sink(kind)
    with pytest.raises(ConfigError):
        make_sink(kind, redis_url="")


def test_make_sink_kinds(tmp_path):
    assert isinstance(make_sink("memory"), MemorySink)
    f = make_sink("file", file_path=tmp_path / "w.vtw")
    assert isinstance(f, FileSink)
    f.close()
    with pytest.raises(ConfigError, match="file_path"):
        make_sink("file")
    with pytest.raises(ConfigError, match="unknown sink kind"):
        make_sink("kafka")
    url = SecretStr("redis://:pw@127.0.0.1:1/0")  # clients connect lazily: no I/O here
    stream = make_sink("stream", redis_url=url, stream_key="k", stream_maxlen=5)
    assert isinstance(stream, RedisStreamSink) and (stream.key, stream.maxlen) == ("k", 5)
    assert stream.owns_client
    spub = make_sink("spubsub", redis_url="redis://127.0.0.1:1/0", channel="c")
    assert isinstance(spub, RedisPubSubSink) and spub.sharded and spub.channel == "c"
    legacy = make_sink("legacy", redis_url="redis://127.0.0.1:1/0",
                       legacy_channel_template="t:{instrument_token}")
    assert legacy.channel_template == "t:{instrument_token}"
    for s in (stream, spub, legacy):
        s.close()
    with pytest.raises(ConfigError, match="must be positive"):
        make_sink("stream", redis_url="redis://127.0.0.1:1/0", stream_maxlen=0)

"""Tick log: records, CRCs, daily rotation, torn tails; frames → engine; deterministic
replay (record → replay twice → byte-identical payloads, equal to the recorded run)."""

from __future__ import annotations

import json
import logging
import struct
from datetime import datetime, timedelta, timezone

import pytest

from vectorticks import payload
from vectorticks.cli import main
from vectorticks.columns import TickBatch
from vectorticks.config import Settings
from vectorticks.engine import Engine
from vectorticks.kite import encode_frame
from vectorticks.sinks import FileSink, MemorySink
from vectorticks.sources import SyntheticMarket
from vectorticks.ticklog import (
    MAGIC,
    MAX_RECORD,
    FrameFeeder,
    TickLogError,
    TickLogReader,
    TickLogWriter,
    ist_date,
    log_files,
    replay,
    sidecar_path,
)

IST = timezone(timedelta(hours=5, minutes=30))
T0 = int(datetime(2026, 11, 23, 9, 15, tzinfo=IST).timestamp()) * 10**9
MS = 1_000_000
HEADER, RECORD = 8, 16


def write_log(path_dir, records, **kw):
    with TickLogWriter(path_dir, **kw) as w:
        for frame, ns in records:
            w.append(frame, ns)
    return w.path


def read_all(path):
    reader = TickLogReader(path)
    return [(r.frame, r.received_ns) for r in reader], reader


RECORDS = [(b"\x00", T0), (b"", T0 + 5), (bytes(range(200)), T0 + 10),
           (b"\x00\x00", T0 + 11), (b"x" * 5000, T0 + 20)]


def test_round_trip_and_layout(tmp_path):
    path = write_log(tmp_path, RECORDS, instruments_csv=b"instrument_token\n1\n")
    assert path.name == "kite-2026-11-23.vtl"
    raw = path.read_bytes()
    assert raw[:8] == MAGIC + struct.pack("<HH", 1, 0)
    length, ns, _crc = struct.unpack_from("<IqI", raw, 8)
    assert (length, ns) == (1, T0)
    assert len(raw) == HEADER + sum(RECORD + len(f) for f, _ in RECORDS)
    records, reader = read_all(path)
    assert records == RECORDS and reader.torn is None
    assert [r.is_mark for r in TickLogReader(path)] == [False, True, False, False, False]
    assert sidecar_path(path).read_bytes() == b"instrument_token\n1\n"
    assert sidecar_path(path).name == "kite-2026-11-23.instruments.csv"


def test_daily_rotation_by_ist_date_and_parts(tmp_path):
    midnight = int(datetime(2026, 11, 24, tzinfo=IST).timestamp()) * 10**9
    assert ist_date(midnight - 1) == "2026-11-23" and ist_date(midnight) == "2026-11-24"
    with TickLogWriter(tmp_path, instruments_csv=b"x") as w:
        w.append(b"\x00", midnight - 1)
        first = w.path
        w.append(b"\x00", midnight)
        second = w.path
    assert (first.name, second.name) == ("kite-2026-11-23.vtl", "kite-2026-11-24.vtl")
    # a new writer on a day that has a file starts a part instead of appending
    third = write_log(tmp_path, [(b"\x00\x00", midnight + 5)])
    assert third.name == "kite-2026-11-24.1.vtl"
    assert log_files(tmp_path) == [first, second, third]
    assert read_all(second)[0] == [(b"\x00", midnight)]
    assert sidecar_path(first).exists() and not sidecar_path(third).exists()


def test_writer_limits(tmp_path):
    w = TickLogWriter(tmp_path)
    with pytest.raises(ValueError, match="limit"):
        w.append(bytes(MAX_RECORD + 1), T0)
    w.append(bytes(MAX_RECORD), T0)  # the largest record fits
    w.close()
    assert read_all(w.path)[0] == [(bytes(MAX_RECORD), T0)]
    with pytest.raises(ValueError, match="prefix"):
        TickLogWriter(tmp_path, prefix="a/b")


def test_every_truncation_of_the_last_record_is_a_torn_tail(tmp_path, caplog):
    path = write_log(tmp_path, RECORDS[:3])
    raw = path.read_bytes()
    last = HEADER + sum(RECORD + len(f) for f, _ in RECORDS[:2])
    torn = tmp_path / "torn.vtl"
    for cut in range(last, len(raw)):
        torn.write_bytes(raw[:cut])
        records, reader = read_all(torn)
        assert records == RECORDS[:2], cut
        if cut > last:
            assert reader.torn is not None and reader.torn.offset == last
            assert reader.torn.size == cut - last
    for cut in range(HEADER):  # a crash right after creating the file
        torn.write_bytes(raw[:cut])
        records, reader = read_all(torn)
        assert records == [] and (cut == 0 or reader.torn.offset == 0)
    assert "torn last record" in caplog.text


def test_zero_filled_and_corrupt_tails(tmp_path):
    path = write_log(tmp_path, RECORDS)
    raw = path.read_bytes()
    zeros = tmp_path / "zeros.vtl"
    zeros.write_bytes(raw + bytes(4096))   # the file system extended it, data never came
    records, reader = read_all(zeros)
    assert records == RECORDS and reader.torn.size == 4096
    bad_last = tmp_path / "crc.vtl"
    bad_last.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    records, reader = read_all(bad_last)
    assert records == RECORDS[:-1] and "CRC" in reader.torn.reason


def test_corruption_before_the_end_raises(tmp_path):
    path = write_log(tmp_path, RECORDS)
    raw = bytearray(path.read_bytes())
    third = HEADER + RECORD + 1 + RECORD + 0
    flipped = bytearray(raw)
    flipped[third + RECORD + 7] ^= 0xFF      # a byte of the third frame
    bad = tmp_path / "bad.vtl"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(TickLogError, match=f"CRC mismatch in the record at byte offset {third}"):
        read_all(bad)
    huge = bytearray(raw)
    huge[third:third + 4] = struct.pack("<I", MAX_RECORD + 1)
    bad.write_bytes(bytes(huge))
    with pytest.raises(TickLogError, match=f"offset {third} announces"):
        read_all(bad)
    bad.write_bytes(b"NOPE" + bytes(raw[4:]))
    with pytest.raises(TickLogError, match="not a tick log"):
        read_all(bad)
    bad.write_bytes(MAGIC + struct.pack("<HH", 9, 0) + bytes(raw[8:]))
    with pytest.raises(TickLogError, match="version 9"):
        read_all(bad)


# -- frames → engine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def market_frames():
    """A recorded session: 1 s of a 300-instrument market as full-mode frames every 10 ms,
    with heartbeats, a malformed frame and idle clock marks in between."""
    market = SyntheticMarket(300, rate=20_000, seed=7, start_ns=T0)
    records: list[tuple[bytes, int]] = []
    for step in range(100):
        batch = market.next_batch(market.now_ns + 10 * MS)
        if len(batch):
            records.append((encode_frame(batch), int(batch.received_ns[-1])))
        if step % 10 == 3:
            records.append((b"\x00", market.now_ns - 1))                # heartbeat
        if step % 25 == 7:
            records.append((b"", market.now_ns))                        # idle poll
        if step == 50:
            records.append((b"\x00\x02\x00\x08" + bytes(8), market.now_ns))  # malformed
    return market, records


def feed(engine, records, log=None):
    feeder = FrameFeeder(engine, log=log)
    for frame, ns in records:
        if frame:
            feeder.frame(frame, ns)
        else:
            feeder.clock(ns)
    return feeder


def test_feeder_counts_and_rejects_malformed_frames(market_frames):
    market, records = market_frames
    engine = Engine(market.registry, MemorySink(), Settings(sink="memory"))
    feeder = feed(engine, records)
    summary = engine.close()
    s = feeder.stats
    good = sum(int.from_bytes(f[:2], "big") for f, _ in records if len(f) > 12)
    assert s.frames_rejected == 1 and "byte offset 12" in s.last_error
    assert s.heartbeats == 10 and s.clock_marks == 4 and s.ticks == good
    assert summary["ticks_in"] == summary["ticks_published"] == good   # nothing of the bad one
    windows = [payload.decode(p) for _, _, p in engine.sink.items]
    assert sum(w.ticks_in for w in windows) == good and len(windows) == 10


def record_session(tmp_path, market, records):
    """The 'live' run: feed with a tick log, file sink; returns (log path, payload file)."""
    out = tmp_path / "live.vtw"
    engine = Engine(market.registry, FileSink(out), Settings(sink="file", file_path=out))
    csv = tmp_path / "instruments.csv"
    market.write_instruments_csv(csv)
    with TickLogWriter(tmp_path / "log", instruments_csv=csv.read_bytes()) as w:
        feed(engine, records, log=w)
    engine.close()
    return w.path, out


def replay_cli(args, capsys):
    code = main(["replay", *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_record_then_replay_twice_is_byte_identical(tmp_path, market_frames, capsys):
    market, records = market_frames
    log_path, live = record_session(tmp_path, market, records)
    assert [(f, ns) for f, ns in read_all(log_path)[0]] == records
    runs = []
    for name in ("a.vtw", "b.vtw"):
        code, summary = replay_cli([log_path, "--file", tmp_path / name], capsys)
        assert code == 0 and summary["frames_rejected"] == 1
        assert summary["ticks_in"] == summary["ticks_published"] > 15_000
        runs.append((tmp_path / name).read_bytes())
    assert runs[0] == runs[1] == live.read_bytes()
    # a directory replays its files in order, instruments from the sidecar by default
    code, summary = replay_cli([log_path.parent, "--file", tmp_path / "c.vtw"], capsys)
    assert code == 0 and (tmp_path / "c.vtw").read_bytes() == runs[0]


def test_truncated_log_replays_up_to_the_torn_record(tmp_path, market_frames, capsys, caplog):
    market, records = market_frames
    log_path, _ = record_session(tmp_path, market, records)
    raw = log_path.read_bytes()
    frames = [f for f, _ in records]
    last_len = len(frames[-1])
    assert last_len > 100
    log_path.write_bytes(raw[:-last_len // 2])                  # crash mid-append
    with caplog.at_level(logging.WARNING):
        code, summary = replay_cli([log_path, "--file", tmp_path / "t.vtw"], capsys)
    assert code == 0 and summary["torn_bytes"] == RECORD + last_len - last_len // 2
    good = sum(int.from_bytes(f[:2], "big") for f in frames[:-1] if len(f) > 12)
    assert summary["ticks_in"] == summary["ticks_published"] == good
    assert "torn last record" in caplog.text


def test_replay_of_a_corrupt_log_fails_cleanly(tmp_path, market_frames, capsys):
    market, records = market_frames
    log_path, _ = record_session(tmp_path, market, records)
    raw = bytearray(log_path.read_bytes())
    raw[HEADER + RECORD + 40] ^= 0xFF                           # inside the first frame
    log_path.write_bytes(bytes(raw))
    code, summary = replay_cli([log_path, "--file", tmp_path / "x.vtw"], capsys)
    assert code == 1 and "CRC mismatch" in summary["error"]
    assert main(["replay", str(tmp_path / "missing.vtl")]) == 2
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / log_path.name).write_bytes(log_path.read_bytes())
    assert main(["replay", str(bare / log_path.name)]) == 2    # no instruments: exit 2
    capsys.readouterr()


def test_recorded_pace_sleeps_to_the_recorded_times(tmp_path):
    path = write_log(tmp_path, [(b"\x00", T0), (b"\x00", T0 + 500 * MS), (b"", T0 + 2000 * MS)])
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s):
        sleeps.append(round(s, 6))
        now[0] += s

    class Engine_:
        def ingest(self, batch):
            raise AssertionError("heartbeats have no ticks")

        def poll(self, now_ns):
            return 0

    feeder = FrameFeeder(Engine_())
    progress: list[int] = []
    stats = replay([path], feeder, pace="recorded", sleep=sleep, monotonic=lambda: now[0],
                   progress=progress.append)
    assert sleeps == [0.5, 1.5] and stats.records == 3
    assert sum(progress) == path.stat().st_size
    assert feeder.stats.heartbeats == 2 and feeder.stats.clock_marks == 1


def test_a_frame_of_no_packets_polls_only():
    class Engine_:
        def __init__(self):
            self.polled: list[int] = []

        def ingest(self, batch: TickBatch):
            raise AssertionError

        def poll(self, now_ns):
            self.polled.append(now_ns)
            return 0

    engine = Engine_()
    feeder = FrameFeeder(engine)
    assert feeder.frame(b"\x00\x00", 5) == 0 and engine.polled == [5]
    assert feeder.stats.ticks == 0 and feeder.stats.frames == 1

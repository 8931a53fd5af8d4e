"""The `vectorticks` command end to end: demo to a file and to a real Redis, then tail."""

import json

import pytest

from vectorticks import payload
from vectorticks.cli import main
from vectorticks.sinks import FileSink


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_demo_to_file_then_tail(tmp_path, capsys):
    path = tmp_path / "w.vtw"
    assert main(["demo", "--instruments", "300", "--seconds", "1.05", "--rate", "20000",
                 "--max-speed", "--json", "--file", str(path)]) == 0
    summary = last_json(capsys.readouterr().out)
    assert summary["ticks_in"] == summary["ticks_published"] > 15_000
    assert summary["windows_published"] == 11 and summary["sink"] == "file"
    windows = list(payload.iter_file(path))
    assert sum(w.ticks_in for w in windows) == summary["ticks_in"]

    assert main(["tail", "--file", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "11 windows, 0 missing"
    assert lines[0].startswith("seq=1 ") and "options=" in lines[0]


def test_tail_reports_gaps_and_a_torn_tail(tmp_path, capsys):
    path = tmp_path / "w.vtw"
    main(["demo", "--instruments", "100", "--seconds", "0.5", "--max-speed", "--file",
          str(path)])
    records = [w for w in payload.iter_file(path)]
    gapped = tmp_path / "gapped.vtw"
    sink = FileSink(gapped)
    raw = path.read_bytes()
    offsets, pos = [], 0
    while pos < len(raw):
        offsets.append(pos)
        pos += payload.read_header(raw[pos:pos + 48]).total_len
    offsets.append(len(raw))
    for i in (0, 1, 3, 4):                               # seq 3 is missing
        w = records[i]
        sink.write(w.seq, w.end_ns, raw[offsets[i]:offsets[i + 1]])
    sink.close()
    with open(gapped, "ab") as f:
        f.write(raw[offsets[0]:offsets[0] + 100])        # a record cut mid-write
    capsys.readouterr()
    assert main(["tail", "--file", str(gapped)]) == 1
    out = capsys.readouterr().out
    assert "GAP: missing seq 3..3 (1 windows)" in out
    assert "stopped: torn record" in out
    assert out.strip().splitlines()[-1] == "4 windows, 1 missing"


@pytest.mark.redis
def test_demo_to_redis_stream_then_tail(redis_url, capsys):
    assert main(["demo", "--instruments", "300", "--seconds", "0.55", "--max-speed", "--json",
                 "--redis-url", redis_url]) == 0
    summary = last_json(capsys.readouterr().out)
    assert summary["sink"] == "stream" and summary["ticks_dropped"] == 0
    assert "127.0.0.1" in summary["target"]
    assert main(["tail", "--redis-url", redis_url, "--from-start", "--timeout", "0.5",
                 "--count", str(summary["windows_published"])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"{summary['windows_published']} windows, 0 missing"

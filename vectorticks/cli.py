"""The ``vectorticks`` command: ``demo`` runs the synthetic market through the engine,
``tail`` reads published windows back and reports sequence gaps."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .config import Settings
from .engine import Engine
from .errors import PayloadError
from .payload import Window
from .sources import SyntheticMarket

STEP_NS = 10_000_000  # the demo feeds the engine every 10 ms of market time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vectorticks", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the synthetic market through the whole engine")
    demo.add_argument("--instruments", type=int, default=5000)
    demo.add_argument("--seconds", type=float, default=10.0, help="market seconds to run")
    demo.add_argument("--rate", type=float, default=50_000.0, help="mean ticks per second")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--redis-url", help="publish to this Redis (default: the file sink)")
    demo.add_argument("--sink", choices=["file", "stream", "pubsub", "spubsub", "legacy"],
                      help="default: stream with --redis-url, else file")
    demo.add_argument("--file", help="file sink path (default: settings.file_path)")
    demo.add_argument("--max-speed", action="store_true",
                      help="run market time as fast as possible instead of in real time")
    demo.add_argument("--json", action="store_true",
                      help="print the summary as one JSON object on the last line")
    demo.set_defaults(run=run_demo)

    tail = sub.add_parser("tail", help="print published windows and report sequence gaps")
    source = tail.add_mutually_exclusive_group()
    source.add_argument("--file", help="read a file written by the file sink")
    source.add_argument("--stream", help="Redis stream key (default with --redis-url)")
    source.add_argument("--channel", help="Redis pub/sub channel")
    tail.add_argument("--sharded", action="store_true", help="the channel is sharded (SSUBSCRIBE)")
    tail.add_argument("--redis-url")
    tail.add_argument("--count", type=int, help="stop after this many windows")
    tail.add_argument("--from-start", action="store_true",
                      help="stream: read from the first entry instead of new ones only")
    tail.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    tail.set_defaults(run=run_tail)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


def run_demo(args: argparse.Namespace) -> int:
    from .sinks import make_sink

    overrides: dict[str, Any] = {}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.sink:
        overrides["sink"] = args.sink
    if args.file:
        overrides["file_path"] = args.file
    settings = Settings(**overrides)
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    sink = make_sink(settings.sink_kind, redis_url=url, file_path=settings.file_path,
                     stream_key=settings.stream_key, stream_maxlen=settings.stream_maxlen,
                     channel=settings.channel,
                     legacy_channel_template=settings.legacy_channel_template)
    wall0 = time.perf_counter()
    start_ns = None if args.max_speed else time.time_ns()
    market = SyntheticMarket(args.instruments, rate=args.rate, seed=args.seed, start_ns=start_ns)
    engine = Engine(market.registry, sink, settings)
    progress = _Progress(engine)
    if args.max_speed:
        wall0 = time.perf_counter()  # throughput of the engine alone, set-up excluded
    end_ns = market.now_ns + int(args.seconds * 1e9)
    while market.now_ns < end_ns:
        until = min(market.now_ns + STEP_NS, end_ns)
        if not args.max_speed:
            time.sleep(max(0.0, (until - time.time_ns()) / 1e9))
        engine.ingest(market.next_batch(until))
        engine.poll(until)
        progress.maybe_print(market.now_ns - (end_ns - int(args.seconds * 1e9)))
    summary = engine.close()
    elapsed = time.perf_counter() - wall0
    progress.done()
    summary.update(
        instruments=args.instruments, market_seconds=args.seconds, wall_seconds=elapsed,
        ticks_per_second=summary["ticks_in"] / elapsed if elapsed else None,
        sink=settings.sink_kind,
        target=str(settings.file_path) if settings.sink_kind == "file" else _redacted(url),
    )
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    lost = summary["ticks_in"] - summary["ticks_published"] - summary["ticks_dropped"]
    return 0 if lost == 0 else 1


def _redacted(url: str | None) -> str | None:
    from .sinks import redact_url

    return redact_url(url) if url else None


class _Progress:
    """A live progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, engine: Engine, every_s: float = 0.5):
        self.engine = engine
        self.every_s = every_s
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._t0 = time.perf_counter()

    def maybe_print(self, market_ns: int) -> None:
        now = time.perf_counter()
        if now - self._last < (self.every_s if self.tty else 2.0):
            return
        self._last = now
        s = self.engine.summary()
        p99 = s["compute_p99_ms"]
        line = (f"t={market_ns / 1e9:6.1f}s ticks={s['ticks_in']:>10,} "
                f"windows={s['windows_published']:>6,} "
                f"rate={s['ticks_in'] / (now - self._t0):>10,.0f}/s "
                f"p99={'-' if p99 is None else f'{p99:.2f}ms'} outbox={s['outbox_depth']}")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _print_summary(s: dict[str, Any]) -> None:
    mean_bytes = s["payload_bytes"] / s["windows_cut"] if s["windows_cut"] else 0
    p50, p99 = s["compute_p50_ms"], s["compute_p99_ms"]
    lines = [
        ("ticks in", f"{s['ticks_in']:,}"),
        ("ticks published", f"{s['ticks_published']:,}"),
        ("ticks quarantined", f"{s['ticks_quarantined']:,}"),
        ("ticks dropped", f"{s['ticks_dropped']:,}"),
        ("windows", f"{s['windows_published']:,} published, {s['windows_dropped']:,} dropped"),
        ("throughput", f"{s['ticks_per_second']:,.0f} ticks/s over {s['wall_seconds']:.2f} s"),
        ("window compute", "-" if p50 is None else f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"),
        ("payload bytes", f"{s['payload_bytes']:,} total, {mean_bytes:,.0f} mean, "
                          f"{s['payload_bytes_max']:,} max"),
        ("sink", f"{s['sink']} → {s['target']}"),
    ]
    print("vectorticks demo summary")
    for name, value in lines:
        print(f"  {name:<18} {value}")


def run_tail(args: argparse.Namespace) -> int:
    windows = _tail_source(args)
    expected: int | None = None
    gaps = 0
    seen = 0
    try:
        for w in windows:
            expected, gaps = _check_seq(w.seq, expected, gaps)
            print(_window_line(w), flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    except PayloadError as exc:  # e.g. the file's last record is still being written
        print(f"stopped: {exc}")
    print(f"{seen} windows, {gaps} missing")
    return 0 if gaps == 0 else 1


def _check_seq(seq: int, expected: int | None, gaps: int) -> tuple[int, int]:
    """Report a gap or reordering before window ``seq``; returns (next expected, gaps)."""
    if expected is not None and seq != expected:
        if seq > expected:
            gaps += seq - expected
            print(f"GAP: missing seq {expected}..{seq - 1} ({seq - expected} windows)")
        else:
            print(f"OUT OF ORDER: seq {seq} after {expected - 1}")
    return seq + 1, gaps


def _window_line(w: Window) -> str:
    n = {name: t.num_rows for name, t in w.tables.items()}
    return (f"seq={w.seq} start_ns={w.start_ns} end_ns={w.end_ns} ticks={w.ticks_in} "
            f"bars={n.get('bars', 0)} options={n.get('options', 0)} "
            f"quarantined={n.get('quarantine', 0)} bytes={w.nbytes}")


def _tail_source(args: argparse.Namespace) -> Iterable[Window]:
    from . import payload

    if args.file or not (args.redis_url or args.stream or args.channel):
        path = args.file or str(Settings().file_path)
        return payload.iter_file(path)
    from .sinks import read_channel, read_stream, redis_client

    settings = Settings()
    url = args.redis_url or (settings.redis_url.get_secret_value() if settings.redis_url
                             else None)
    if not url:
        raise SystemExit("tail: --redis-url (or VECTORTICKS_REDIS_URL) is needed for Redis")
    client = redis_client(url)
    raw: Iterator[bytes]
    if args.channel:
        raw = read_channel(client, args.channel, sharded=args.sharded,
                           idle_timeout=args.timeout)
    else:
        raw = read_stream(client, args.stream or settings.stream_key,
                          from_start=args.from_start, idle_timeout=args.timeout)
    return (payload.decode(data) for data in raw)


if __name__ == "__main__":
    sys.exit(main())

"""The ``vectorticks`` command: ``demo`` runs the synthetic market through the engine,
``run`` runs it on live Kite ticks, ``replay`` replays a recorded tick log, ``tail`` reads
published windows back and reports sequence gaps."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from . import preview
from .config import Settings
from .engine import Engine
from .errors import ConfigError, PayloadError
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
    _metrics_arguments(demo)
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

    live = sub.add_parser(
        "run", help="run the engine on live Kite ticks (credentials from "
                    "VECTORTICKS_KITE_API_KEY and VECTORTICKS_KITE_ACCESS_TOKEN)")
    live.add_argument("--instruments-csv", required=True, metavar="PATH",
                      help="Kite's instruments CSV (GET /instruments)")
    live.add_argument("--underlying", action="extend", nargs="+", default=[], metavar="NAME",
                      help="subscribe these underlyings' index/equity, futures and options "
                           "(default: every instrument in the CSV)")
    live.add_argument("--expiries", type=int, metavar="N",
                      help="only the N nearest option expiries of each underlying")
    live.add_argument("--mode", choices=["full", "quote", "ltp"], default="full")
    live.add_argument("--tick-log", metavar="DIR",
                      help="append every raw frame to a daily tick log in DIR (for replay)")
    live.add_argument("--ws-url", help="WebSocket endpoint (default: VECTORTICKS_KITE_WS_URL, "
                                       "else Kite's)")
    live.add_argument("--ca-file", metavar="PEM",
                      help="certificate authorities a wss:// endpoint must chain to "
                           "(default: VECTORTICKS_KITE_CA_FILE, else certifi's bundle)")
    live.add_argument("--per-connection", type=int, default=3000, metavar="N",
                      help="instruments per connection (Kite's limit: 3000; 3 per API key)")
    live.add_argument("--queue-capacity", type=int, default=10_000, metavar="FRAMES",
                      help="frames waiting for the engine before the oldest are dropped")
    live.add_argument("--reconnect-delay", type=float, default=1.0, metavar="SECONDS",
                      help="first reconnect delay (then exponential backoff)")
    _sink_arguments(live)
    live.set_defaults(run=run_live_cmd)

    dash = sub.add_parser("dashboards", help="the Grafana dashboard (dashboards/vectorticks.json)")
    dash_sub = dash.add_subparsers(dest="dashboards_command", required=True)
    prev = dash_sub.add_parser("preview", help="render every panel to one PNG from a "
                                               "Prometheus' data (no Grafana needed)")
    preview.add_arguments(prev)
    prev.set_defaults(run=preview.run_cli)

    rep = sub.add_parser("replay", help="replay a recorded tick log through the engine")
    rep.add_argument("paths", nargs="+", metavar="FILE",
                     help="tick log files, or directories of them (replayed in date order)")
    rep.add_argument("--instruments-csv", metavar="PATH",
                     help="default: the instruments the log was recorded with "
                          "(<log>.instruments.csv)")
    rep.add_argument("--pace", choices=["max", "recorded"], default="max",
                     help="as fast as possible, or at the pace the frames were received")
    _sink_arguments(rep)
    rep.set_defaults(run=run_replay)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except ConfigError as exc:  # bad VECTORTICKS_* settings: a message, not a traceback
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_demo(args: argparse.Namespace) -> int:
    settings, sink, target = _settings_and_sink(args)
    start_ns = None if args.max_speed else time.time_ns()
    market = SyntheticMarket(args.instruments, rate=args.rate, seed=args.seed, start_ns=start_ns)
    metrics = _serve_metrics(args, settings)
    # compiles or loads the JIT kernels
    engine = Engine(market.registry, sink, settings, metrics=metrics)
    if metrics is not None:
        metrics.set_active_sources(1)
    progress = _Progress(engine)
    # Set-up is excluded: market time starts now and, unless --max-speed, keeps wall pace.
    wall0 = time.perf_counter()
    lag_ns = time.time_ns() - market.now_ns
    begin_ns = market.now_ns
    end_ns = begin_ns + int(args.seconds * 1e9)
    while market.now_ns < end_ns:
        until = min(market.now_ns + STEP_NS, end_ns)
        if not args.max_speed:
            time.sleep(max(0.0, (until + lag_ns - time.time_ns()) / 1e9))
        engine.ingest(market.next_batch(until))
        engine.poll(until)
        progress.maybe_print(market.now_ns - begin_ns)
    summary = engine.close()
    elapsed = time.perf_counter() - wall0
    progress.done()
    summary.update(
        instruments=args.instruments, market_seconds=args.seconds, wall_seconds=elapsed,
        ticks_per_second=summary["ticks_in"] / elapsed if elapsed else None,
        sink=settings.sink_kind,
        target=target,
    )
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    lost = summary["ticks_in"] - summary["ticks_published"] - summary["ticks_dropped"]
    return 0 if lost == 0 else 1


def _redacted(url: str | None) -> str | None:
    from .sinks import redact_url

    return redact_url(url) if url else None


class _StatusLine:
    """A live status line on stderr: rewritten in place on a terminal every ``every_s``,
    else printed as a new line every 2 s."""

    def __init__(self, engine: Engine, every_s: float = 0.5):
        self.engine = engine
        self.tty = sys.stderr.isatty()
        self.every_s = every_s if self.tty else 2.0
        self._t0 = time.perf_counter()
        self._last = 0.0

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True

    def emit(self, line: str) -> None:
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


class _Progress(_StatusLine):
    """The demo's progress: market time, ticks, windows, rate, compute p99."""

    def maybe_print(self, market_ns: int) -> None:
        if not self.due():
            return
        s = self.engine.summary()
        p99 = s["compute_p99_ms"]
        rate = s["ticks_in"] / (time.perf_counter() - self._t0)
        self.emit(f"t={market_ns / 1e9:6.1f}s ticks={s['ticks_in']:>10,} "
                  f"windows={s['windows_published']:>6,} rate={rate:>10,.0f}/s "
                  f"p99={'-' if p99 is None else f'{p99:.2f}ms'} outbox={s['outbox_depth']}")


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


# -- run and replay ------------------------------------------------------------------------------


def _metrics_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus /metrics on this port (default: settings."
                        "metrics_port, 9464; 0 = off)")
    p.add_argument("--metrics-host", metavar="ADDR",
                   help="address of /metrics (default: settings.metrics_host, 127.0.0.1)")


def _serve_metrics(args: argparse.Namespace, settings: Settings) -> Any:
    """Start /metrics as asked; the engine's metrics, or ``None`` when turned off. A busy
    port is reported and the job runs on without the endpoint."""
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    if not port:
        return None
    from prometheus_client import CollectorRegistry

    from .metrics import EngineMetrics, serve

    host = args.metrics_host or settings.metrics_host
    registry = CollectorRegistry()
    try:
        serve(registry, port, host)
    except OSError as exc:
        print(f"metrics: cannot serve on {host}:{port} ({exc}); running without /metrics",
              file=sys.stderr)
    else:
        print(f"metrics: http://{host}:{port}/metrics", file=sys.stderr)
    return EngineMetrics(registry, sink_kind=settings.sink_kind,
                         outbox_capacity=settings.outbox_capacity,
                         max_batch_size=settings.tick_batch_max_size)


def _sink_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="publish to this Redis (default: the file sink)")
    p.add_argument("--sink", choices=["file", "stream", "pubsub", "spubsub", "legacy"],
                   help="default: stream with --redis-url, else file")
    p.add_argument("--file", help="file sink path (default: settings.file_path)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on the last line")
    _metrics_arguments(p)


def _settings_and_sink(args: argparse.Namespace) -> tuple[Settings, Any, str | None]:
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
    target = str(settings.file_path) if settings.sink_kind == "file" else _redacted(url)
    return settings, sink, target


def run_live_cmd(args: argparse.Namespace) -> int:
    import os
    import signal
    import threading

    from .errors import VectorticksError
    from .instruments import InstrumentRegistry
    from .live import (
        ENV_CA_FILE,
        ENV_WS_URL,
        KiteCredentials,
        LiveSource,
        ist_today,
        open_tick_log,
        read_instruments,
        run_live,
        select_instruments,
    )
    from .ticklog import FrameFeeder

    try:
        credentials = KiteCredentials.from_env()
        frame = select_instruments(read_instruments(args.instruments_csv), args.underlying,
                                   expiries=args.expiries, today=ist_today(time.time_ns()))
        registry = InstrumentRegistry.from_frame(frame)
        source = LiveSource(credentials, registry.token, mode=args.mode,
                            root=args.ws_url or os.environ.get(ENV_WS_URL) or None,
                            per_connection=args.per_connection,
                            queue_capacity=args.queue_capacity,
                            reconnect_initial_delay=args.reconnect_delay,
                            ca_file=args.ca_file or os.environ.get(ENV_CA_FILE) or None)
        settings, sink, target = _settings_and_sink(args)
    except VectorticksError as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 2
    tick_log = open_tick_log(args.tick_log, frame)
    metrics = _serve_metrics(args, settings)
    engine = Engine(registry, sink, settings, metrics=metrics)
    feeder = FrameFeeder(engine, log=tick_log)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress = _FeedProgress(engine)

    def on_progress(stats: Any, source_summary: dict[str, Any]) -> None:
        if metrics is not None:
            metrics.set_active_sources(source_summary["connected"])
        progress.maybe_print(stats, source_summary)

    print(f"vectorticks run: {len(registry):,} instruments over {len(source.groups)} "
          f"connection(s), {args.mode} mode; Ctrl-C to stop", file=sys.stderr, flush=True)
    wall0 = time.perf_counter()
    try:
        run_live(feeder, source, stop, poll_interval_s=settings.tick_batch_window_ms / 4000,
                 on_progress=lambda stats, src: on_progress(stats, src.summary()))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        summary = engine.close()
        if tick_log is not None:
            tick_log.close()
    progress.done()
    summary.update(_feed_summary(feeder), **source.summary(),
                   instruments=len(registry), wall_seconds=time.perf_counter() - wall0,
                   sink=settings.sink_kind, target=target,
                   tick_log=str(tick_log.path) if tick_log and tick_log.path else None)
    _print_feed_summary("vectorticks run summary", summary)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0 if _lost(summary) == 0 else 1


def run_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .errors import VectorticksError
    from .instruments import InstrumentRegistry
    from .ticklog import FrameFeeder, TickLogError, log_files, replay, sidecar_path

    paths: list[Path] = []
    for p in map(Path, args.paths):
        paths.extend(log_files(p) if p.is_dir() else [p])
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        print(f"replay: no tick log at {', '.join(missing) or ' '.join(args.paths)}",
              file=sys.stderr)
        return 2
    csv = Path(args.instruments_csv) if args.instruments_csv else sidecar_path(paths[0])
    try:
        registry = InstrumentRegistry.from_csv(csv)
        settings, sink, target = _settings_and_sink(args)
    except (VectorticksError, OSError) as exc:
        print(f"replay: {exc} (instruments from {csv}; pass --instruments-csv)",
              file=sys.stderr)
        return 2
    metrics = _serve_metrics(args, settings)
    engine = Engine(registry, sink, settings, metrics=metrics)
    if metrics is not None:
        metrics.set_active_sources(1)
    feeder = FrameFeeder(engine)
    bar = _ByteProgress(sum(p.stat().st_size for p in paths))
    wall0 = time.perf_counter()
    error = None
    try:
        stats = replay(paths, feeder, pace=args.pace, progress=bar.update)
    except TickLogError as exc:
        error, stats = str(exc), None
    finally:
        bar.close()
        summary = engine.close()
    elapsed = time.perf_counter() - wall0
    summary.update(_feed_summary(feeder), files=len(paths), wall_seconds=elapsed,
                   ticks_per_second=summary["ticks_in"] / elapsed if elapsed else None,
                   sink=settings.sink_kind, target=target, error=error,
                   torn_bytes=sum(t.size for t in stats.torn) if stats else None,
                   recorded_seconds=((stats.last_ns - stats.first_ns) / 1e9
                                     if stats and stats.first_ns is not None
                                     and stats.last_ns is not None else None))
    _print_feed_summary("vectorticks replay summary", summary)
    if error:
        print(f"replay: stopped: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 1 if error or _lost(summary) else 0


def _lost(s: dict[str, Any]) -> int:
    return int(s["ticks_in"] - s["ticks_rejected"] - s["ticks_published"] - s["ticks_dropped"])


def _feed_summary(feeder: Any) -> dict[str, Any]:
    stats = vars(feeder.stats).copy()
    stats["frame_error"] = stats.pop("last_error")
    stats["ticks_decoded"] = stats.pop("ticks")
    return stats


class _FeedProgress(_StatusLine):
    """The live progress line of ``run``: connections, frames, ticks, drops."""

    def maybe_print(self, feed: Any, source: dict[str, Any]) -> None:
        if not self.due():
            return
        s = self.engine.summary()
        self.emit(f"conns={source['connected']}/{source['connections']} "
                  f"frames={feed.frames:,} ticks={s['ticks_in']:>10,} "
                  f"windows={s['windows_published']:>6,} rejected={feed.frames_rejected} "
                  f"dropped={source['frames_dropped']} reconnects={source['reconnects']} "
                  f"outbox={s['outbox_depth']}")


class _ByteProgress:
    """A progress bar over bytes: tqdm if installed, else a plain line every 2 s."""

    def __init__(self, total: int):
        self._done = 0
        self.total = total
        self._last = time.perf_counter()
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar: Any = None
        else:
            self._bar = tqdm(total=total, unit="B", unit_scale=True, desc="replay",
                             file=sys.stderr, mininterval=0.5)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)
            return
        self._done += n
        now = time.perf_counter()
        if now - self._last >= 2.0:
            self._last = now
            pct = 100 * self._done / self.total if self.total else 100.0
            print(f"replay: {self._done:,}/{self.total:,} bytes ({pct:.0f} %)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _print_feed_summary(title: str, s: dict[str, Any]) -> None:
    p50, p99 = s["compute_p50_ms"], s["compute_p99_ms"]
    lines = [
        ("frames", f"{s['frames']:,} ({s['heartbeats']:,} heartbeats, "
                   f"{s['frames_rejected']:,} malformed)"),
        ("ticks in", f"{s['ticks_in']:,}"),
        ("ticks published", f"{s['ticks_published']:,}"),
        ("ticks quarantined", f"{s['ticks_quarantined']:,}"),
        ("ticks dropped", f"{s['ticks_dropped']:,}"),
        ("windows", f"{s['windows_published']:,} published, {s['windows_dropped']:,} dropped"),
        ("window compute", "-" if p50 is None else f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"),
        ("wall time", f"{s['wall_seconds']:.2f} s"),
        ("sink", f"{s['sink']} → {s['target']}"),
    ]
    if "connections" in s:
        lines[1:1] = [("connections", f"{s['connections']} ({s['reconnects']} reconnects, "
                                      f"{s['frames_dropped']:,} frames dropped in queue)")]
    print(title)
    for name, value in lines:
        print(f"  {name:<18} {value}")


if __name__ == "__main__":
    sys.exit(main())

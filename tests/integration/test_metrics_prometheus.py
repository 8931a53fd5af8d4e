"""The whole observability loop against real parts: `vectorticks demo` publishing to a real
redis-server serves /metrics on loopback; a real Prometheus scrapes it every second with
the alert rules loaded; every dashboard panel's query returns data; `promtool check
metrics` accepts a scrape; stopping Redis drives the publish alert to pending/firing."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_server import prometheus_factory, query, wait_for

from vectorticks.preview import render_preview

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "alerts" / "vectorticks.rules.yml"
DASHBOARD = ROOT / "dashboards" / "vectorticks.json"


@pytest.fixture
def prometheus(tmp_path):
    yield from prometheus_factory(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo(redis_server_factory, tmp_path):
    """`vectorticks demo` in real time on a real redis-server, /metrics on a free port."""
    redis = redis_server_factory()
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vectorticks", "demo", "--instruments", "1000", "--rate",
         "5000", "--seconds", "300", "--redis-url", redis.url, "--metrics-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                timeout=2).status == 200,
                 timeout=120, message="the demo's /metrics")
        yield proc, port, redis
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def active_alerts(url: str) -> dict[str, str]:
    data = query(url, 'ALERTS{job="vectorticks"}')
    return {a["metric"]["alertname"]: a["metric"]["alertstate"] for a in data}


@pytest.mark.redis
@pytest.mark.prometheus
def test_prometheus_scrapes_the_engine_and_the_alerts_follow_a_fault(demo, prometheus,
                                                                      tmp_path):
    proc, port, redis = demo
    prom = prometheus(jobs={"vectorticks": [f"127.0.0.1:{port}"]}, rule_files=[RULES])
    # ticks flow, as Prometheus sees them
    wait_for(lambda: (query(prom.url, 'sum(rate(ticks_processed_total{job="vectorticks"}'
                                      '[5s])) > 100')), timeout=60, message="ticks/s")

    # a scrape is valid exposition by promtool's rules
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

    # every dashboard panel's queries return data (over the last 30 s, 1 s scrapes)
    time.sleep(10)  # enough samples for the panels' $__rate_interval (4 scrapes)
    now = time.time()
    summary = render_preview(prom.url, DASHBOARD, tmp_path / "preview.png", start=now - 30,
                             end=now, step=1, variables={"job": "vectorticks"},
                             scrape_interval=1)
    assert summary.failed == {}, summary.failed
    assert summary.no_data == [], summary.no_data
    assert len(summary.with_data) == summary.drawn >= 15
    assert (tmp_path / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    healthy = active_alerts(prom.url)
    assert "VectorticksPublishFailing" not in healthy, healthy
    assert "VectorticksTargetDown" not in healthy, healthy

    # the fault: Redis goes away; failed writes are retried, counted and alerted on
    redis.stop()
    state = wait_for(lambda: active_alerts(prom.url).get("VectorticksPublishFailing"),
                     timeout=60, message="VectorticksPublishFailing pending")
    assert state in ("pending", "firing")
    api = [a for a in prom.api("/api/v1/alerts")["alerts"]
           if a["labels"]["alertname"] == "VectorticksPublishFailing"]
    assert api and api[0]["labels"]["severity"] and api[0]["annotations"]["runbook_url"]
    assert proc.poll() is None  # the engine keeps running while the sink is down

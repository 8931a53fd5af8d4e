"""``dashboards preview`` against a real Prometheus (scraping itself every second).

The dashboard here queries Prometheus' own metrics, so data exists without the engine;
the checked-in vectorticks dashboard is also run against it, which proves that every one
of its queries, variables substituted, is PromQL the real server accepts.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_server import query, running_prometheus, wait_for

from vectorticks.errors import VectorticksError
from vectorticks.preview import (
    PreviewError,
    grafana_duration,
    main,
    render_preview,
    substitute_variables,
)

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCOPE = 'job=~"$job", instance=~"$instance"'
DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(panel_id: int, title: str, unit: str, *exprs: str, kind: str = "timeseries",
          legend: str = "", y: int = 0, x: int = 0, fmt: str | None = None) -> dict:
    targets = [{"refId": chr(65 + i), "expr": e, "legendFormat": legend, "datasource": DS,
                **({"format": fmt} if fmt else {})} for i, e in enumerate(exprs)]
    return {"id": panel_id, "type": kind, "title": title, "description": title,
            "datasource": DS, "fieldConfig": {"defaults": {"unit": unit}},
            "gridPos": {"x": x, "y": y, "w": 8, "h": 8}, "targets": targets}


def self_dashboard() -> dict:
    """Panels on Prometheus' own series, in two rows; the last two have no data / a bad
    query on purpose."""
    http = f"prometheus_http_requests_total{{{SCOPE}}}"
    duration = f"prometheus_http_request_duration_seconds_bucket{{{SCOPE}}}"
    return {"title": "self", "panels": [
        {"id": 1, "type": "row", "title": "Prometheus", "gridPos": {"x": 0, "y": 0, "w": 24,
                                                                     "h": 1}},
        panel(2, "HTTP requests", "reqps",
              f"sum by (handler) (rate({http}[$__rate_interval]))", legend="{{handler}}", y=1),
        panel(3, "Up", "short", f"up{{{SCOPE}}}", kind="stat", y=1, x=8),
        panel(4, "Request latency p99", "s",
              f"histogram_quantile(0.99, sum by (le) (rate({duration}[$__rate_interval])))",
              y=1, x=16),
        panel(5, "Request latency buckets", "short",
              f"sum by (le) (increase({duration}[$__rate_interval]))", kind="heatmap",
              legend="{{le}}", fmt="heatmap", y=9),
        panel(6, "Series by name", "short",
              f'count by (__name__) ({{__name__=~"prometheus_tsdb_head_.*", {SCOPE}}})',
              y=9, x=8),  # many series: the legend is capped
        {"id": 7, "type": "row", "title": "Broken on purpose",
         "gridPos": {"x": 0, "y": 17, "w": 24, "h": 1}},
        panel(8, "Missing metric", "ops",
              f"sum(rate(vectorticks_does_not_exist_total{{{SCOPE}}}[$__rate_interval]))", y=18),
        panel(9, "Bad query", "ops", "sum(rate(up[$__rate_interval])", y=18, x=8),
    ]}


def assert_png(path: Path, min_bytes: int = 20_000) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert len(data) > min_bytes, f"PNG is only {len(data)} bytes"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """One Prometheus scraping itself every second, with a few samples in it already."""
    with running_prometheus(tmp_path_factory.mktemp("prom"), self_job="prometheus",
                            scrape_interval=1.0) as prom:
        # rate() over $__rate_interval (4 s here) needs two samples per window; wait for 8.
        wait_for(lambda: query(prom.url, 'count_over_time(up{job="prometheus"}[1m]) >= 8'),
                 timeout=40, message="8 self-scrapes")
        yield prom


@pytest.mark.prometheus
def test_preview_draws_every_panel_and_reports_missing_data(prometheus, tmp_path):
    out = tmp_path / "preview.png"
    end = time.time()
    summary = render_preview(prometheus.url, self_dashboard(), out, start=end - 30, end=end,
                             step=1, scrape_interval=1.0, variables={"job": "prometheus"})
    width, height = assert_png(out)
    assert width > 800 and height > 400
    assert summary.drawn == 7
    assert summary.with_data == ["HTTP requests", "Up", "Request latency p99",
                                 "Request latency buckets", "Series by name"]
    assert summary.no_data == ["Missing metric"]
    assert list(summary.failed) == ["Bad query"]
    assert "parse error" in summary.failed["Bad query"][0]
    assert summary.variables["__rate_interval"] == "4s"  # max(1 s + 1 s, 4 × 1 s)
    assert summary.variables["job"] == "prometheus"
    by_title = {p.title: p for p in summary.panels}
    assert by_title["HTTP requests"].row == "Prometheus"
    assert by_title["Missing metric"].row == "Broken on purpose"
    assert by_title["Series by name"].series > 5
    text = str(summary)
    assert "no data: Missing metric" in text and "failed:  Bad query" in text


@pytest.mark.prometheus
def test_job_variable_filters_the_queries(prometheus, tmp_path):
    end = time.time()
    summary = render_preview(prometheus.url, self_dashboard(), tmp_path / "p.png",
                             start=end - 30, end=end, step=1, scrape_interval=1.0,
                             variables={"job": "vectorticks"})
    assert summary.with_data == []  # nothing is scraped under that job here
    assert list(summary.failed) == ["Bad query"]


@pytest.mark.prometheus
def test_every_vectorticks_dashboard_query_is_accepted_by_prometheus(prometheus, tmp_path):
    """No engine is scraped, so every panel is empty — but none is rejected: the real
    PromQL parser accepts all of the checked-in dashboard's queries."""
    dashboard = json.loads((ROOT / "dashboards" / "vectorticks.json").read_text())
    out = tmp_path / "vectorticks.png"
    summary = render_preview(prometheus.url, dashboard, out, step=5, scrape_interval=1.0,
                             start=time.time() - 120)
    assert summary.failed == {}
    assert summary.drawn >= 15
    # Only the health panel has data: up{} of Prometheus itself, since $job is "all".
    assert summary.with_data == ["Targets up"]
    assert_png(out)


@pytest.mark.prometheus
def test_cli_main_writes_the_png_and_a_json_summary(prometheus, tmp_path, capsys):
    out = tmp_path / "cli.png"
    code = main(["--prometheus-url", prometheus.url, "--out", str(out), "--minutes", "0.5",
                 "--step", "1", "--scrape-interval", "1", "--job", "prometheus", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["failed"] == {} and summary["panels_with_data"] == 1
    assert_png(out)


def test_unreachable_prometheus_is_a_vectorticks_error(tmp_path):
    with pytest.raises(PreviewError, match="cannot query Prometheus") as info:
        render_preview("http://127.0.0.1:9", self_dashboard(), tmp_path / "x.png",
                       timeout=2)
    assert isinstance(info.value, VectorticksError)
    assert not (tmp_path / "x.png").exists()
    assert main(["--prometheus-url", "http://127.0.0.1:9", "--out",
                 str(tmp_path / "y.png"), "--timeout", "2"]) == 2


def test_unreadable_dashboard_is_a_vectorticks_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PreviewError, match="cannot read the dashboard"):
        render_preview("http://127.0.0.1:9", bad, tmp_path / "x.png")


def test_variables_are_substituted_like_grafana():
    values = {"job": "vectorticks", "instance": ".+", "__rate_interval": "1m",
              "__interval": "15s"}
    expr = 'rate(x{job=~"$job", instance=~"${instance}"}[$__rate_interval]) [[__interval]] $nope'
    assert substitute_variables(expr, values) == (
        'rate(x{job=~"vectorticks", instance=~".+"}[1m]) 15s $nope')
    assert [grafana_duration(s) for s in (60, 4, 1.5, 3600, 90)] == ["1m", "4s", "1500ms",
                                                                     "1h", "90s"]


def test_importing_vectorticks_does_not_import_matplotlib():
    code = ("import sys, vectorticks, vectorticks.preview; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0

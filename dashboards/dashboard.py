"""The vectorticks Grafana dashboard, as code (grafana-foundation-sdk).

``python dashboards/dashboard.py`` writes ``dashboards/vectorticks.json`` next to this file;
``--check`` only compares and exits 1 if the checked-in file is stale; ``--out PATH`` writes
elsewhere. ``build()`` returns the dashboard as a plain dict, ``render()`` the exact text of
the file (sorted keys, two-space indent, trailing newline), so the output is deterministic
and a test can compare it byte for byte.

Every metric, label and label value used here is in ``docs/metrics.md`` (the test checks
it). Every query is filtered by ``job=~"$job", instance=~"$instance"``, reads the
``$datasource`` variable, and takes rates over ``$__rate_interval`` — the rules of
grafana/dashboard-linter, which ``tests/unit/test_dashboard.py`` re-implements.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

OUTPUT = Path(__file__).with_name("vectorticks.json")

UID = "vectorticks-overview"
TITLE = "vectorticks"
ROW_TITLES = ("Overview", "Latency", "Batching", "Errors", "Business")

# Every panel and variable query reads the data source chosen in the $datasource variable.
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")

# The job and instance matchers every selector carries (dashboard-linter target-job-rule
# and target-instance-rule); regex matches, so the variables' "All" value ".+" works.
SCOPE = ('job=~"$job"', 'instance=~"$instance"')

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))

# The SLO of docs/metrics.md: 99 % of ticks published within 200 ms (a bucket boundary).
SLO_BUCKET = 'le="0.2"'


# -- PromQL helpers ---------------------------------------------------------------------------


def sel(metric: str, *matchers: str) -> str:
    """``metric{job=~"$job", instance=~"$instance", <matchers>}``."""
    return f"{metric}{{{', '.join((*SCOPE, *matchers))}}}"


def rate(metric: str, *matchers: str, fn: str = "rate") -> str:
    """``rate(metric{…}[$__rate_interval])`` (or ``increase`` with ``fn="increase"``)."""
    return f"{fn}({sel(metric, *matchers)}[$__rate_interval])"


def sum_rate(metric: str, *matchers: str, by: Sequence[str] = (), fn: str = "rate") -> str:
    """``sum [by (…)] (rate(metric{…}[$__rate_interval]))``: counters are summed over
    instances after the rate, never before (a restart would read as a huge drop)."""
    head = f"sum by ({', '.join(by)}) " if by else "sum"
    return f"{head}({rate(metric, *matchers, fn=fn)})"


def quantile(q: float, histogram: str, *matchers: str, by: Sequence[str] = ()) -> str:
    """``histogram_quantile(q, sum by (…, le) (rate(histogram_bucket{…}[…])))``."""
    return f"histogram_quantile({q}, {sum_rate(f'{histogram}_bucket', *matchers, by=(*by, 'le'))})"


def mean(histogram: str, *matchers: str, by: Sequence[str] = ()) -> str:
    """Mean observation over the rate interval: rate of ``_sum`` over rate of ``_count``."""
    return (f"{sum_rate(f'{histogram}_sum', *matchers, by=by)} / "
            f"{sum_rate(f'{histogram}_count', *matchers, by=by)}")


def slo_ratio() -> str:
    """Share of ticks published within the SLO threshold (good over all observations)."""
    return (f"{sum_rate('vectorticks_end_to_end_latency_seconds_bucket', SLO_BUCKET)} / "
            f"{sum_rate('vectorticks_end_to_end_latency_seconds_count')}")


def query(expr: str, legend: str, ref_id: str, *,
          fmt: prometheus_models.PromQueryFormat | None = None) -> prometheus.Dataquery:
    target = (prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
              .datasource(DATASOURCE).range())
    if fmt is not None:
        target = target.format(fmt)
    return target


def targets(*pairs: tuple[str, str]) -> list[prometheus.Dataquery]:
    """Targets from ``(expr, legend)`` pairs, with ref ids A, B, C, …"""
    return [query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def quantile_targets(histogram: str, *matchers: str, by: Sequence[str] = (),
                     legend_prefix: str = "") -> list[prometheus.Dataquery]:
    return targets(*((quantile(q, histogram, *matchers, by=by), f"{legend_prefix}{name}")
                     for name, q in QUANTILES))


# -- panel helpers ----------------------------------------------------------------------------


def thresholds(base: str, *steps: tuple[float, str]) -> dashboard_builders.ThresholdsConfig:
    """Absolute thresholds: ``base`` colour below the first step."""
    return (dashboard_builders.ThresholdsConfig()
            .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
            .steps([dashboard_models.Threshold(value=None, color=base),
                    *(dashboard_models.Threshold(value=v, color=c) for v, c in steps)]))


def stat_panel(title: str, description: str, unit: str, expr: str, *,
               steps: Sequence[tuple[float, str]] = (), base: str = "green",
               decimals: float | None = None) -> stat.Panel:
    """A single-number panel (last non-null value, sparkline underneath)."""
    panel = (stat.Panel().title(title).description(description).unit(unit)
             .datasource(DATASOURCE).height(4).span(4)
             .targets(targets((expr, title)))
             .graph_mode(common_models.BigValueGraphMode.AREA)
             .color_mode(common_models.BigValueColorMode.VALUE)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
             .thresholds(thresholds(base, *steps)))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def series_panel(title: str, description: str, unit: str,
                 panel_targets: list[prometheus.Dataquery], *, span: int = 12,
                 min_val: float | None = 0, max_val: float | None = None) -> timeseries.Panel:
    """A time-series panel with a table legend (mean, max, last)."""
    panel = (timeseries.Panel().title(title).description(description).unit(unit)
             .datasource(DATASOURCE).height(8).span(span).targets(panel_targets)
             .fill_opacity(10).line_width(1).show_points(common_models.VisibilityMode.NEVER)
             .legend(common_builders.VizLegendOptions()
                     .display_mode(common_models.LegendDisplayMode.TABLE)
                     .placement(common_models.LegendPlacement.BOTTOM)
                     .show_legend(True).calcs(["mean", "max", "lastNotNull"]))
             .tooltip(common_builders.VizTooltipOptions()
                      .mode(common_models.TooltipDisplayMode.MULTI)
                      .sort(common_models.SortOrder.DESCENDING)))
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    return panel


def heatmap_panel(title: str, description: str, unit: str, expr: str, *,
                  span: int = 12) -> heatmap.Panel:
    """A heatmap of a histogram's buckets: ``increase`` of the cumulative ``le`` series,
    which Grafana de-accumulates itself (``format: heatmap``)."""
    return (heatmap.Panel().title(title).description(description).unit(unit)
            .datasource(DATASOURCE).height(8).span(span)
            .with_target(query(expr, "{{le}}", "A",
                               fmt=prometheus_models.PromQueryFormat.HEATMAP))
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit(unit))
            .cell_gap(1))


# -- the five rows ----------------------------------------------------------------------------


def overview_panels() -> list:
    ticks = sum_rate("ticks_processed_total")
    errors = sum_rate("tick_processing_errors_total")
    window_ts = sel("vectorticks_last_published_window_timestamp_seconds")
    return [
        stat_panel(
            "Throughput",
            "Ticks counted per second, all outcomes (ok, quarantined, rejected): the "
            "engine's input rate. VectorticksThroughputLow fires below 100/s for 10 min.",
            "ops", ticks, base="red", steps=[(100, "green")]),
        stat_panel(
            "Active sources",
            "Tick sources connected now (tick_processor_active_accounts): Kite WebSocket "
            "connections, or 1 per synthetic or replay source. 0 means no input at all.",
            "short", f"sum({sel('tick_processor_active_accounts')})",
            base="red", steps=[(1, "green")], decimals=0),
        stat_panel(
            "Error ratio",
            "Error events per processed tick (tick_processing_errors_total over "
            "ticks_processed_total). VectorticksErrorRateHigh fires above 1 % for 5 min.",
            "percentunit", f"{errors} / {ticks}",
            steps=[(0.001, "orange"), (0.01, "red")]),
        stat_panel(
            "Targets up",
            "Scrape targets of the selected job and instance that answered their last "
            "scrape (sum of up). VectorticksTargetDown fires when one is down for 2 min.",
            "short", f"sum({sel('up')})", base="red", steps=[(1, "green")], decimals=0),
        stat_panel(
            "Last window age",
            "Seconds since the end of the newest window a sink acknowledged. Windows are "
            "100 ms apart, so more than a second means publishing is stalled or behind.",
            "s", f"time() - max({window_ts})",
            steps=[(1, "orange"), (5, "red")]),
        stat_panel(
            "Published within 200 ms",
            "Share of ticks whose window the sink acknowledged within 200 ms of receipt "
            "(the publish SLO: 99 %). Below it the SLO burn-rate alerts start counting.",
            "percentunit", slo_ratio(),
            base="red", steps=[(0.99, "orange"), (0.999, "green")]),
        series_panel(
            "Ticks processed by outcome",
            "Ticks per second by status: ok (in a bar or snapshot), quarantined (failed "
            "validation, published in the quarantine section), rejected (malformed input, "
            "or a strict-mode window rejected whole).",
            "ops", targets((sum_rate("ticks_processed_total", by=["status"]), "{{status}}"))),
        series_panel(
            "Publish lag by instance",
            "Now minus the end of the newest acknowledged window, per instance: a rising "
            "line is a publisher falling behind (or stopped).",
            "s", targets((f"time() - max by (instance) ({window_ts})", "{{instance}}"))),
    ]


def latency_panels() -> list:
    return [
        series_panel(
            "Tick processing latency",
            "Receive time to window computed (payload ready), per tick: p50, p95, p99 "
            "from tick_processing_latency_seconds. VectorticksTickLatencyP99High fires "
            "when p99 exceeds 150 ms for 5 min.",
            "s", quantile_targets("tick_processing_latency_seconds")),
        series_panel(
            "End-to-end latency",
            "Receive time to the sink acknowledging the window holding the tick (Redis "
            "write included): p50, p95, p99 of vectorticks_end_to_end_latency_seconds. "
            "The SLO is 99 % within 200 ms.",
            "s", quantile_targets("vectorticks_end_to_end_latency_seconds")),
        series_panel(
            "Tick latency p99 by instrument type",
            "p99 of tick processing latency per tick_type (index, equity, future, option, "
            "unknown): shows whether options (Greeks) or underlyings are slow.",
            "s", targets((quantile(0.99, "tick_processing_latency_seconds", by=["tick_type"]),
                          "{{tick_type}}")), span=6),
        series_panel(
            "Sink flush latency",
            "One successful sink write of a window, by sink kind (stream, pubsub, spubsub, "
            "legacy, file, memory): p50 and p99 of tick_batch_flush_latency_seconds.",
            "s", targets(
                (quantile(0.5, "tick_batch_flush_latency_seconds", by=["batch_type"]),
                 "p50 {{batch_type}}"),
                (quantile(0.99, "tick_batch_flush_latency_seconds", by=["batch_type"]),
                 "p99 {{batch_type}}")), span=6),
        series_panel(
            "Window compute, Greeks and encode (p99)",
            "p99 per window of compute_window (validation, bars, snapshots, Greeks), of "
            "its forward/IV/Greeks part, and of payload.encode. Windows are 100 ms apart: "
            "compute near that means the engine cannot keep up.",
            "s", targets(
                (quantile(0.99, "vectorticks_window_compute_seconds"), "window compute"),
                (quantile(0.99, "vectorticks_greeks_compute_seconds"), "Greeks"),
                (quantile(0.99, "vectorticks_payload_encode_seconds"), "payload encode")),
            span=6),
        series_panel(
            "Ticks published within 200 ms",
            "Share of ticks acknowledged by the sink within 200 ms of receipt, over time "
            "(the ratio the SLO burn-rate alerts use; objective 99 %).",
            "percentunit", targets((slo_ratio(), "within 200 ms")), span=6, max_val=1),
    ]


def batching_panels() -> list:
    return [
        series_panel(
            "Rows per window by section",
            "Mean rows per window of each payload section (ticks in, bars, option "
            "snapshots, quarantine) and the p99 of ticks per window, from tick_batch_size.",
            "short", targets(
                (mean("tick_batch_size", by=["batch_type"]), "mean {{batch_type}}"),
                (quantile(0.99, "tick_batch_size", 'batch_type="ticks"'), "p99 ticks"))),
        heatmap_panel(
            "Ticks per window distribution",
            "How many windows fell into each tick_batch_size bucket (batch_type=ticks) per "
            "rate interval: the shape of the load, bursts included.",
            "short", sum_rate("tick_batch_size_bucket", 'batch_type="ticks"', by=["le"],
                              fn="increase")),
        series_panel(
            "Windows per second",
            "Windows computed (one tick_batch_size observation each) and windows the sink "
            "acknowledged. Both should sit at 10/s (100 ms windows); a gap between them "
            "is the outbox filling or dropping.",
            "ops", targets(
                (sum_rate("tick_batch_size_count", 'batch_type="ticks"'), "computed"),
                (sum_rate("vectorticks_windows_published_total"), "published")), span=6),
        series_panel(
            "Window fill ratio",
            "Ticks in a window over tick_batch_max_size: p50, p99 and mean. Near 1 the "
            "window bound is reached and windows are cut early.",
            "percentunit", [*targets(
                (quantile(0.5, "vectorticks_window_fill_ratio"), "p50"),
                (quantile(0.99, "vectorticks_window_fill_ratio"), "p99"),
                (mean("vectorticks_window_fill_ratio"), "mean"))], span=6, max_val=1),
        series_panel(
            "Outbox depth vs capacity",
            "Windows waiting for the sender thread, against the outbox bound. Depth at "
            "capacity means the sink is slower than the engine and windows are dropped.",
            "short", targets(
                (f"max({sel('vectorticks_outbox_depth')})", "depth"),
                (f"max({sel('vectorticks_outbox_capacity')})", "capacity")), span=6),
        series_panel(
            "Payload size per window",
            "Encoded payload bytes per window: p50, p99 and mean of "
            "vectorticks_payload_bytes.",
            "bytes", targets(
                (quantile(0.5, "vectorticks_payload_bytes"), "p50"),
                (quantile(0.99, "vectorticks_payload_bytes"), "p99"),
                (mean("vectorticks_payload_bytes"), "mean")), span=6),
    ]


def errors_panels() -> list:
    return [
        series_panel(
            "Validation rejects by reason",
            "Quarantined ticks per second by reason bit (a tick with two bits counts under "
            "both): unknown_instrument, price_jump, exchange_ts_stale, crossed_book, …",
            "ops", targets((sum_rate("vectorticks_validation_rejects_total", by=["reason"]),
                            "{{reason}}"))),
        series_panel(
            "Processing errors by type",
            "tick_processing_errors_total per second by error_type: validation and "
            "input_rejected / window_rejected count ticks, frame_decode frames, publish "
            "attempts, outbox_drop windows.",
            "ops", targets((sum_rate("tick_processing_errors_total", by=["error_type"]),
                            "{{error_type}}"))),
        series_panel(
            "Publish errors and retries by sink",
            "Failed sink write attempts and the retries after them, per second, by sink "
            "kind. Errors without a matching stream of acknowledged windows are an outage "
            "(VectorticksPublishFailing).",
            "ops", targets(
                (sum_rate("vectorticks_publish_errors_total", by=["sink"]), "errors {{sink}}"),
                (sum_rate("vectorticks_publish_retries_total", by=["sink"]),
                 "retries {{sink}}")), span=8),
        series_panel(
            "Lost windows and frames",
            "Per rate interval: windows dropped on outbox overflow (their ticks are lost; "
            "VectorticksOutboxDropping), windows rejected whole in strict mode, and Kite "
            "frames that failed to decode.",
            "short", targets(
                (sum_rate("vectorticks_outbox_dropped_windows_total", fn="increase"),
                 "outbox dropped windows"),
                (sum_rate("vectorticks_outbox_dropped_ticks_total", fn="increase"),
                 "ticks in dropped windows"),
                (sum_rate("vectorticks_windows_rejected_total", fn="increase"),
                 "strict-mode rejected windows"),
                (sum_rate("vectorticks_frame_decode_errors_total", fn="increase"),
                 "undecodable frames")), span=8),
        series_panel(
            "Quarantined tick ratio",
            "Quarantined ticks (each counted once) over all processed ticks. A step up "
            "usually means bad upstream data for some instruments; see the reasons panel.",
            "percentunit", targets((
                f"{sum_rate('vectorticks_quarantined_ticks_total')} / "
                f"{sum_rate('ticks_processed_total')}", "quarantined")), span=8),
    ]


def business_panels() -> list:
    solved = sum_rate("vectorticks_greeks_computed_total", 'iv_status="ok"')
    iv_ok = f"{solved} / {sum_rate('vectorticks_greeks_computed_total')}"
    return [
        series_panel(
            "Underlying ticks by type",
            "Ticks per second of indices, index futures and equities (all outcomes).",
            "ops", targets((sum_rate("ticks_processed_total", 'tick_type=~"index|future|equity"',
                                     by=["tick_type"]), "{{tick_type}}")), span=8),
        series_panel(
            "Option ticks by outcome",
            "Option ticks per second by status (ok, quarantined, rejected).",
            "ops", targets((sum_rate("ticks_processed_total", 'tick_type="option"',
                                     by=["status"]), "{{status}}")), span=8),
        series_panel(
            "Depth updates",
            "Valid ticks per second carrying market depth (a finite best bid or ask).",
            "ops", targets((sum_rate("vectorticks_depth_updates_total"), "depth updates")),
            span=8),
        series_panel(
            "Greeks computed by IV status",
            "Options given an implied volatility and Greeks per second, by IV status: ok, "
            "or why no IV exists (below_intrinsic, above_maximum, expired, bad_input, "
            "no_convergence, at_intrinsic).",
            "ops", targets((sum_rate("vectorticks_greeks_computed_total", by=["iv_status"]),
                            "{{iv_status}}"))),
        series_panel(
            "Implied volatility solved",
            "Share of option snapshots whose IV solved (iv_status=ok). A drop points at "
            "stale underlying prices or quotes outside no-arbitrage bounds.",
            "percentunit", targets((iv_ok, "IV ok")), max_val=1),
    ]


ROWS = (overview_panels, latency_panels, batching_panels, errors_panels, business_panels)


# -- the dashboard ----------------------------------------------------------------------------


def variables() -> list:
    """$datasource, $job and $instance, as dashboard-linter's template rules want them:
    multi-select query variables on $datasource whose "All" value is ``.+``."""
    all_option = dashboard_models.VariableOption(text=["All"], value=["$__all"])
    return [
        dashboard_builders.DatasourceVariable("datasource").label("Data source")
        .type("prometheus"),
        dashboard_builders.QueryVariable("job").label("Job").datasource(DATASOURCE)
        .query("label_values(up, job)").multi(True).include_all(True).all_value(".+")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .current(dashboard_models.VariableOption(text=["vectorticks"], value=["vectorticks"])),
        dashboard_builders.QueryVariable("instance").label("Instance").datasource(DATASOURCE)
        .query('label_values(up{job=~"$job"}, instance)').multi(True).include_all(True)
        .all_value(".+").refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC).current(all_option),
    ]


def build() -> dict:
    """The dashboard as a plain JSON-compatible dict."""
    board = (dashboard_builders.Dashboard(TITLE).uid(UID)
             .description("vectorticks: tick throughput, latency, batching, errors and "
                          "option analytics. Metrics: docs/metrics.md; alerts: "
                          "dashboards/alerts/; runbook: docs/runbook.md.")
             .tags(["vectorticks", "prometheus"]).editable()
             .refresh("10s").time("now-1h", "now").timezone("browser")
             .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
             .variables(variables()))
    panel_id = 0
    for row_title, row_panels in zip(ROW_TITLES, ROWS, strict=True):
        panel_id += 1
        board = board.with_row(dashboard_builders.Row(row_title).id(panel_id))
        for panel in row_panels():
            panel_id += 1  # Grafana wants a unique id per panel (links, repeats, edits)
            board = board.with_panel(panel.id(panel_id))
    # Round-trip through JSON so callers get plain dicts/lists, not SDK model objects.
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    """The exact text of ``vectorticks.json``."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the file differs from the generator")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is stale: run python dashboards/dashboard.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

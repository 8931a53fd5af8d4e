"""``vectorticks dashboards preview``: render a Grafana dashboard's panels to one PNG from a
Prometheus server's data — a look at the dashboard without running Grafana.

Each panel's queries are sent to ``/api/v1/query_range`` after substituting the dashboard
variables the way Grafana would (``$job``, ``$instance``, ``$__rate_interval``,
``$__interval``, ``$__range``), and drawn as one matplotlib subplot, laid out row by row
like the dashboard. The summary lists the panels drawn, those with no data and those whose
queries Prometheus rejected.

matplotlib is imported only when drawing, so ``import vectorticks`` stays light; the
figure is rendered with the Agg canvas directly (no pyplot, no display, no global backend
switch).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import PreviewError

DEFAULT_DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "vectorticks.json"
DEFAULT_OUT = Path("dashboard-preview.png")
# Grafana's default Prometheus scrape interval, used for $__rate_interval unless given.
DEFAULT_SCRAPE_INTERVAL = 15.0
# Points per series when no step is given (Grafana derives it from the panel's width).
DEFAULT_POINTS = 300
# What a multi-value variable set to "All" becomes (the dashboard's allValue).
ALL = ".+"

# $var, ${var}, ${var:format}, [[var]], [[var:format]]
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}")


class QueryRejected(Exception):
    """Prometheus refused one query (internal: becomes a panel error in the summary)."""


# -- the result -------------------------------------------------------------------------------


@dataclass
class PanelResult:
    """What one panel showed: how many series had a finite sample, and query errors."""

    row: str
    title: str
    type: str
    unit: str
    series: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.errors:
            return "error"
        return "ok" if self.series else "no data"


@dataclass
class PreviewSummary:
    out_png: Path
    start: float
    end: float
    step: float
    variables: dict[str, str]
    panels: list[PanelResult]

    @property
    def drawn(self) -> int:
        return len(self.panels)

    @property
    def with_data(self) -> list[str]:
        return [p.title for p in self.panels if p.status == "ok"]

    @property
    def no_data(self) -> list[str]:
        return [p.title for p in self.panels if p.status == "no data"]

    @property
    def failed(self) -> dict[str, list[str]]:
        return {p.title: p.errors for p in self.panels if p.errors}

    def to_dict(self) -> dict[str, Any]:
        return {"out_png": str(self.out_png), "start": self.start, "end": self.end,
                "step": self.step, "variables": self.variables, "panels_drawn": self.drawn,
                "panels_with_data": len(self.with_data), "no_data": self.no_data,
                "failed": self.failed}

    def __str__(self) -> str:
        lines = [f"wrote {self.out_png}: {self.drawn} panels, {len(self.with_data)} with data, "
                 f"{len(self.no_data)} without, {len(self.failed)} failed "
                 f"({(self.end - self.start) / 60:g} min, step {self.step:g} s)"]
        lines += [f"  no data: {title}" for title in self.no_data]
        lines += [f"  failed:  {title}: {'; '.join(errors)}"
                  for title, errors in self.failed.items()]
        return "\n".join(lines)


# -- variables and queries --------------------------------------------------------------------


def grafana_duration(seconds: float) -> str:
    """A PromQL duration for a number of seconds: ``60`` → ``1m``, ``1.5`` → ``1500ms``."""
    ms = max(1, round(seconds * 1000))
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def builtin_variables(start: float, end: float, step: float, scrape_interval: float,
                      rate_interval: str | None = None) -> dict[str, str]:
    """Grafana's global range variables. ``$__rate_interval`` is Grafana's formula,
    max(interval + scrape interval, 4 × scrape interval), unless given."""
    if rate_interval is None:
        rate_interval = grafana_duration(max(step + scrape_interval, 4 * scrape_interval))
    span = end - start
    return {"__rate_interval": rate_interval, "__interval": grafana_duration(step),
            "__interval_ms": str(round(step * 1000)), "__range": grafana_duration(span),
            "__range_s": str(round(span)), "__range_ms": str(round(span * 1000))}


def substitute_variables(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name``, ``${name}`` and ``[[name]]`` by ``values[name]``; unknown
    variables are left as written (Prometheus then rejects the query, and the panel is
    reported as failed)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def query_range(prometheus_url: str, expr: str, start: float, end: float, step: float, *,
                timeout: float = 10.0) -> list[dict[str, Any]]:
    """``/api/v1/query_range`` → the ``result`` list (``metric``, ``values``).

    Raises ``PreviewError`` when Prometheus cannot be reached or answers garbage, and
    ``QueryRejected`` when it refuses the query (400/422: bad PromQL, …)."""
    url = prometheus_url.rstrip("/") + "/api/v1/query_range"
    body = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                   "step": f"{step:g}"}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc)
        if exc.code in (400, 422):
            raise QueryRejected(detail) from None
        raise PreviewError(f"Prometheus at {prometheus_url} answered HTTP {exc.code} to "
                           f"{expr!r}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PreviewError(f"cannot query Prometheus at {prometheus_url}: {reason}") from None
    except ValueError as exc:  # not JSON
        raise PreviewError(f"Prometheus at {prometheus_url} did not answer JSON: {exc}") from None
    if payload.get("status") != "success":
        raise QueryRejected(str(payload.get("error", payload)))
    return payload.get("data", {}).get("result", [])


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error") or exc.reason)
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)


def series_label(metric: Mapping[str, str], legend_format: str | None) -> str:
    """The legend entry of a series, as Grafana writes it: the target's ``legendFormat``
    with ``{{label}}`` filled in, else the label set."""
    if legend_format and legend_format != "__auto":
        return _LEGEND_LABEL.sub(lambda m: metric.get(m.group(1), ""), legend_format)
    name = metric.get("__name__", "")
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels or not name else name


# -- the dashboard ----------------------------------------------------------------------------


def load_dashboard(dashboard: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A dashboard dict as given, or read from a JSON file (a Grafana export, or the
    ``{"dashboard": …}`` envelope of the HTTP API)."""
    if isinstance(dashboard, Mapping):
        data = dict(dashboard)
    else:
        path = Path(dashboard)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PreviewError(f"cannot read the dashboard {path}: {exc}") from None
    if "panels" not in data and isinstance(data.get("dashboard"), Mapping):
        data = dict(data["dashboard"])
    if not isinstance(data.get("panels"), list):
        raise PreviewError("the dashboard has no panels list")
    return data


def panels_by_row(dashboard: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Data panels grouped under their rows, in dashboard order (collapsed rows' panels
    included); panels above the first row form a group with an empty title."""
    groups: list[tuple[str, list[dict[str, Any]]]] = [("", [])]
    for panel in sorted(dashboard["panels"], key=_grid_order):
        if panel.get("type") == "row":
            groups.append((panel.get("title", ""), sorted(panel.get("panels") or [],
                                                          key=_grid_order)))
        else:
            groups[-1][1].append(panel)
    return [(title, panels) for title, panels in groups if panels]


def _grid_order(panel: Mapping[str, Any]) -> tuple[int, int]:
    grid = panel.get("gridPos") or {}
    return grid.get("y", 0), grid.get("x", 0)


# -- rendering --------------------------------------------------------------------------------


def _timestamp(value: datetime | float | None, default: float) -> float:
    if value is None:
        return default
    return value.timestamp() if isinstance(value, datetime) else float(value)


def render_preview(prometheus_url: str,
                   dashboard: Mapping[str, Any] | str | Path = DEFAULT_DASHBOARD,
                   out_png: str | Path = DEFAULT_OUT, *,
                   start: datetime | float | None = None, end: datetime | float | None = None,
                   step: float | None = None, variables: Mapping[str, str] | None = None,
                   scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
                   rate_interval: str | None = None, timeout: float = 10.0, columns: int = 4,
                   max_legend: int = 5, dpi: int = 72) -> PreviewSummary:
    """Query every panel of ``dashboard`` from ``prometheus_url`` over [start, end] and
    draw them into ``out_png``.

    ``start``/``end`` are datetimes or Unix seconds (default: the last 30 minutes);
    ``step`` defaults to the range over 300 points, at least 1 s. ``variables`` sets
    dashboard variables (``{"job": "vectorticks"}``, regexes); ``job`` and ``instance``
    default to ``.+`` (Grafana's "All"). Raises ``PreviewError`` if Prometheus is
    unreachable or the dashboard unreadable; rejected queries are reported per panel.
    """
    _require_matplotlib()  # before any query: fail fast, with the install hint
    board = load_dashboard(dashboard)
    end_s = _timestamp(end, time.time())
    start_s = _timestamp(start, end_s - 30 * 60)
    if not start_s < end_s:
        raise PreviewError(f"start {start_s} is not before end {end_s}")
    step_s = float(step) if step else max(1.0, math.ceil((end_s - start_s) / DEFAULT_POINTS))
    values = {"job": ALL, "instance": ALL, "datasource": "", **dict(variables or {})}
    values.update(builtin_variables(start_s, end_s, step_s, scrape_interval, rate_interval))

    rows: list[tuple[str, list[tuple[dict[str, Any], PanelResult, list]]]] = []
    for row_title, panels in panels_by_row(board):
        row = []
        for panel in panels:
            result = PanelResult(row=row_title, title=panel.get("title") or "<untitled>",
                                 type=panel.get("type", ""),
                                 unit=(panel.get("fieldConfig") or {}).get("defaults", {})
                                 .get("unit", ""))
            row.append((panel, result, _query_panel(prometheus_url, panel, result, values,
                                                    start_s, end_s, step_s, timeout)))
        rows.append((row_title, row))

    out = Path(out_png)
    _draw(rows, out, title=board.get("title", "dashboard"), columns=columns,
          max_legend=max_legend, dpi=dpi, period=(start_s, end_s))
    return PreviewSummary(out_png=out, start=start_s, end=end_s, step=step_s,
                          variables={k: v for k, v in values.items() if k != "datasource"},
                          panels=[r for _, row in rows for _, r, _ in row])


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PreviewError("the preview needs matplotlib: pip install 'vectorticks[preview]'"
                           ) from None


def _query_panel(prometheus_url: str, panel: Mapping[str, Any], result: PanelResult,
                 values: Mapping[str, str], start: float, end: float, step: float,
                 timeout: float) -> list[tuple[str, list[float], list[float]]]:
    """(label, times, values) per series of the panel's visible targets."""
    series = []
    for target in panel.get("targets") or []:
        if target.get("hide") or not target.get("expr"):
            continue
        expr = substitute_variables(target["expr"], values)
        try:
            found = query_range(prometheus_url, expr, start, end, step, timeout=timeout)
        except QueryRejected as exc:
            result.errors.append(f"{target.get('refId', '?')}: {exc}")
            continue
        for s in found:
            times = [float(t) for t, _ in s.get("values", [])]
            ys = [float(v) for _, v in s.get("values", [])]  # "NaN", "+Inf" parse too
            label = series_label(s.get("metric", {}), target.get("legendFormat"))
            series.append((label if label.strip("{}") else _shorten(target["expr"]), times, ys))
    result.series = sum(any(math.isfinite(y) for y in ys) for _, _, ys in series)
    return series


_UNIT_LABELS = {"s": "seconds", "ms": "milliseconds", "bytes": "bytes", "decbytes": "bytes",
                "percentunit": "percent", "percent": "percent", "ops": "per second",
                "reqps": "per second", "cps": "per second", "Bps": "bytes/s",
                "short": "count", "none": ""}


def _draw(rows: list, out: Path, *, title: str, columns: int, max_legend: int, dpi: int,
          period: tuple[float, float]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    grid_rows = [max(1, math.ceil(len(panels) / columns)) for _, panels in rows] or [1]
    time_format = DateFormatter("%H:%M:%S" if period[1] - period[0] < 600 else "%H:%M")
    fig = Figure(figsize=(4.6 * columns, 3.1 * sum(grid_rows) + 0.9), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    stamp = (f"{datetime.fromtimestamp(period[0], UTC):%Y-%m-%d %H:%M:%S} – "
             f"{datetime.fromtimestamp(period[1], UTC):%H:%M:%S} UTC")
    fig.suptitle(f"{title}  ({stamp})", fontsize=13, fontweight="bold")
    subfigs = fig.subfigures(len(grid_rows), 1, height_ratios=grid_rows, squeeze=False)[:, 0]
    for subfig, (row_title, panels), n_rows in zip(subfigs, rows, grid_rows, strict=False):
        if row_title:
            subfig.suptitle(row_title, fontsize=11, fontweight="bold", x=0.005, ha="left")
        axes = subfig.subplots(n_rows, columns, squeeze=False).ravel()
        for ax, (panel, result, series) in zip(axes, panels, strict=False):
            _draw_panel(ax, panel, result, series, max_legend, time_format)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")


def _draw_panel(ax, panel: Mapping[str, Any], result: PanelResult, series: list,
                max_legend: int, time_format) -> None:
    ax.set_title(result.title, fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.set_ylabel(_UNIT_LABELS.get(result.unit, result.unit), fontsize=7)
    if result.errors:
        ax.text(0.5, 0.5, "query error:\n" + "\n".join(e[:90] for e in result.errors[:3]),
                ha="center", va="center", fontsize=7, color="crimson", wrap=True,
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    if not result.series:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", fontsize=11, color="grey",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    _set_unit_formatter(ax, result.unit)
    if panel.get("type") == "heatmap":
        _draw_heatmap(ax, series)
    else:
        plotted = 0
        for label, times, ys in series:
            if not any(math.isfinite(y) for y in ys):
                continue
            when = [datetime.fromtimestamp(t, UTC) for t in times]
            clean = [y if math.isfinite(y) else math.nan for y in ys]
            ax.plot(when, clean, linewidth=1, label=label if plotted < max_legend else None)
            plotted += 1
        handles, labels = ax.get_legend_handles_labels()
        if plotted > max_legend:  # cap the legend: the rest are summarised in one entry
            handles.append(ax.plot([], [], alpha=0)[0])
            labels.append(f"… {plotted - max_legend} more")
        if labels:
            ax.legend(handles, labels, fontsize=6, loc="upper left", frameon=False)
        if panel.get("type") == "stat":
            last = _last_finite(series)
            if last is not None:
                ax.set_title(f"{result.title}: {_format_value(last, result.unit)}",
                             fontsize=9, loc="left", fontweight="bold")
    ax.xaxis.set_major_formatter(time_format)


def _shorten(text: str, limit: int = 60) -> str:
    """A one-line legend entry for a series without labels (Grafana shows the query)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _draw_heatmap(ax, series: list) -> None:
    """Cumulative ``le`` bucket series → counts per bucket over time, as an image."""
    buckets = sorted(series, key=lambda s: _le(s[0]))
    times = buckets[0][1]
    rows = []
    below = [0.0] * len(times)
    for _, _, ys in buckets:
        cumulative = [y if math.isfinite(y) else 0.0 for y in ys[:len(times)]]
        cumulative += [0.0] * (len(times) - len(cumulative))
        rows.append([max(0.0, c - b) for c, b in zip(cumulative, below, strict=True)])
        below = cumulative
    when = [datetime.fromtimestamp(t, UTC) for t in times]
    ax.pcolormesh(when, range(len(rows)), rows, shading="nearest", cmap="Oranges")
    ax.set_yticks(range(len(rows)), [label for label, _, _ in buckets], fontsize=6)


def _le(label: str) -> float:
    try:
        return float(label.replace("+Inf", "inf"))
    except ValueError:
        return math.inf


def _set_unit_formatter(ax, unit: str) -> None:
    from matplotlib.ticker import EngFormatter, PercentFormatter

    if unit == "percentunit":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif unit == "s":
        ax.yaxis.set_major_formatter(EngFormatter(unit="s"))
    elif unit in ("bytes", "decbytes"):
        ax.yaxis.set_major_formatter(EngFormatter(unit="B"))
    else:
        ax.yaxis.set_major_formatter(EngFormatter())


def _last_finite(series: list) -> float | None:
    for _, _, ys in series:
        for y in reversed(ys):
            if math.isfinite(y):
                return y
    return None


def _format_value(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.2f} %"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "ops":
        return f"{value:,.1f}/s"
    return f"{value:,.4g}"


# -- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``vectorticks dashboards preview`` (shared with ``python -m``)."""
    parser.add_argument("--prometheus-url", required=True, metavar="URL",
                        help="Prometheus to query, e.g. http://127.0.0.1:9090")
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD, metavar="PATH",
                        help="dashboard JSON (default: dashboards/vectorticks.json)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="PNG",
                        help=f"PNG to write (default: {DEFAULT_OUT})")
    parser.add_argument("--minutes", type=float, default=30.0, metavar="N",
                        help="time range: the last N minutes (default: 30)")
    parser.add_argument("--step", type=float, metavar="SECONDS",
                        help=f"query resolution (default: range / {DEFAULT_POINTS}, >= 1 s)")
    parser.add_argument("--job", default=ALL, metavar="REGEX", help="$job (default: all)")
    parser.add_argument("--instance", default=ALL, metavar="REGEX",
                        help="$instance (default: all)")
    parser.add_argument("--scrape-interval", type=float, default=DEFAULT_SCRAPE_INTERVAL,
                        metavar="SECONDS", help="for $__rate_interval (default: 15)")
    parser.add_argument("--rate-interval", metavar="DURATION",
                        help="$__rate_interval as a PromQL duration (default: Grafana's "
                             "max(step + scrape interval, 4 x scrape interval))")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per query (default: 10)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on the last line")
    return parser


def run_cli(args: argparse.Namespace) -> int:
    """Run a parsed ``dashboards preview`` command: 0 when every query ran (panels with no
    data are listed, not failed), 1 when Prometheus rejected some, 2 when it could not be
    reached or the dashboard could not be read."""
    end = time.time()
    try:
        summary = render_preview(
            args.prometheus_url, args.dashboard, args.out, start=end - args.minutes * 60,
            end=end, step=args.step, variables={"job": args.job, "instance": args.instance},
            scrape_interval=args.scrape_interval, rate_interval=args.rate_interval,
            timeout=args.timeout)
    except PreviewError as exc:
        print(f"dashboards preview: {exc}", file=sys.stderr)
        return 2
    print(summary)
    if args.json:
        print(json.dumps(summary.to_dict(), sort_keys=True))
    return 1 if summary.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vectorticks.preview --prometheus-url URL …``"""
    parser = add_arguments(argparse.ArgumentParser(prog="vectorticks dashboards preview",
                                                   description=__doc__.split("\n\n")[0]))
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""The Grafana dashboard (dashboards/vectorticks.json): lint, contract and regeneration.

The lint re-implements the rules of grafana/dashboard-linter that apply to a Prometheus
dashboard (template-datasource, template-job, template-instance, template-label-promql,
template-on-time-change-reload, panel-datasource, panel-title-description, panel-units,
panel-no-targets, target-promql, target-rate-interval, target-job, target-instance,
target-counter-agg), parsing PromQL with ``promql_parser``. Like the linter, Grafana
variables outside quotes are replaced by placeholders before parsing: ``$__rate_interval``
by a sentinel duration nobody would type, so a range equal to it *is* ``$__rate_interval``;
inside quotes (``job=~"$job"``) they stay literal, so matchers can be compared as written.

Every metric, label, label value and ``le`` bound the dashboard uses is checked against
docs/metrics.md, so the dashboard cannot drift from the metric contract; and the
checked-in JSON must equal what ``dashboards/dashboard.py`` generates, byte for byte.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

promql_parser = pytest.importorskip(
    "promql_parser", reason="the dashboard lint needs promql-parser (pip install promql-parser)")

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_JSON = ROOT / "dashboards" / "vectorticks.json"
GENERATOR = ROOT / "dashboards" / "dashboard.py"
METRICS_MD = ROOT / "docs" / "metrics.md"

ROW_TITLES = ["Overview", "Latency", "Batching", "Errors", "Business"]
MIN_PANELS = 15

# Placeholders for Grafana's built-in range variables: odd durations that no query would
# contain, so a matrix range equal to RATE_INTERVAL was written as $__rate_interval.
RATE_INTERVAL = "211d12h44m22s50ms"
RATE_INTERVAL_RANGE = timedelta(days=211, hours=12, minutes=44, seconds=22, milliseconds=50)
TIME_PLACEHOLDERS = {
    "__rate_interval": RATE_INTERVAL,
    "__interval": "211d12h44m22s51ms",
    "__range": "211d12h44m22s52ms",
}
RATE_FUNCTIONS = {"rate", "irate", "increase"}
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# The units of Grafana's value formats that can make sense here (dashboard-linter accepts
# the full list of grafana-data's categories; these are its generic, time, data,
# throughput and boolean ones).
VALID_UNITS = {
    "none", "short", "percent", "percentunit", "sci", "locale",
    "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations", "hertz",
    "bytes", "decbytes", "bits", "decbits", "kbytes", "mbytes",
    "Bps", "binBps", "bps", "binbps", "pps",
    "ops", "reqps", "rps", "wps", "iops", "cps", "opm", "rpm", "wpm", "cpm",
    "bool", "bool_yes_no", "bool_on_off", "dateTimeAsIso", "dateTimeFromNow",
}
# Panel types that show query results: they need targets, a datasource and a unit.
DATA_PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap",
                    "graph", "singlestat", "histogram", "piechart", "state-timeline"}
TEMPLATE_FUNCTION = re.compile(r"^\s*(label_names|label_values|metrics|query_result)\((.*)\)\s*$",
                               re.DOTALL)
# $var, ${var} or ${var:format}, [[var]] — but not inside a double-quoted string, which
# the alternation consumes whole first so its contents are left alone.
VARIABLE = re.compile(r'"(?:[^"\\]|\\.)*"|\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]')


# -- PromQL helpers ---------------------------------------------------------------------------


def expand_variables(expr: str) -> str:
    """Replace unquoted Grafana variables by parseable placeholders (dashboard-linter's
    ``expandVariables``): built-in ranges by sentinel durations, anything else by a name."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name is None:  # a quoted string: keep as written
            return match.group(0)
        return TIME_PLACEHOLDERS.get(name, f"bgludgvy_{name}")

    return VARIABLE.sub(substitute, expr)


def parse(expr: str):
    """The AST of a dashboard query (variables expanded); raises on invalid PromQL."""
    return promql_parser.parse(expand_variables(expr))


def children(node) -> list:
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr, *([node.param] if isinstance(node.param, promql_parser.Expr) else [])]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, (promql_parser.UnaryExpr, promql_parser.ParenExpr,
                         promql_parser.SubqueryExpr)):
        return [node.expr]
    if isinstance(node, promql_parser.Call):
        return [a for a in node.args if isinstance(a, promql_parser.Expr)]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    return []


def walk(node, parents: tuple = ()) -> Iterator[tuple[object, tuple]]:
    """Every node of the AST depth first, with the tuple of its ancestors (root first)."""
    yield node, parents
    for child in children(node):
        yield from walk(child, (*parents, node))


def selectors(node) -> Iterator[tuple[object, tuple]]:
    for n, parents in walk(node):
        if isinstance(n, promql_parser.VectorSelector):
            yield n, parents


def metric_name(selector) -> str | None:
    if selector.name:
        return selector.name
    for m in selector.matchers.matchers:
        if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
            return m.value
    return None


def under_rate(parents: tuple) -> str | None:
    """The rate-like function a selector is the range argument of, if any:
    ``rate(x[…])`` is Call → MatrixSelector → VectorSelector."""
    if (len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector)
            and isinstance(parents[-2], promql_parser.Call)
            and parents[-2].func.name in RATE_FUNCTIONS):
        return parents[-2].func.name
    return None


# -- dashboard helpers ------------------------------------------------------------------------


def all_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) or []


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


def panel_targets(panel: dict) -> list[dict]:
    return [t for t in panel.get("targets", []) or [] if not t.get("hide")]


def variable(dashboard: dict, name: str) -> dict | None:
    return next((v for v in dashboard.get("templating", {}).get("list", [])
                 if v.get("name") == name), None)


def is_templated_datasource(ref) -> bool:
    uid = ref.get("uid") if isinstance(ref, dict) else ref
    return uid in {"$datasource", "${datasource}"}


# -- lint rules: each returns a list of problems (empty when the rule passes) ----------------


def lint_template_datasource(dashboard: dict) -> list[str]:
    found = [v for v in dashboard.get("templating", {}).get("list", [])
             if v.get("type") == "datasource"]
    if len(found) != 1:
        return [f"template-datasource-rule: want one datasource variable, found {len(found)}"]
    v, problems = found[0], []
    if v.get("name") != "datasource":
        problems.append(f"template-datasource-rule: named {v.get('name')!r}, want 'datasource'")
    if v.get("label") != "Data source":
        problems.append(f"template-datasource-rule: labelled {v.get('label')!r}, "
                        f"want 'Data source'")
    if v.get("query") != "prometheus":
        problems.append(f"template-datasource-rule: query {v.get('query')!r}, want 'prometheus'")
    return problems


def lint_template_variable(dashboard: dict, name: str) -> list[str]:
    """template-job-rule / template-instance-rule (and template-on-time-change-reload)."""
    rule = f"template-{name}-rule"
    v = variable(dashboard, name)
    if v is None:
        return [f"{rule}: missing the {name} variable"]
    problems = []
    if not is_templated_datasource(v.get("datasource")):
        problems.append(f"{rule}: datasource {v.get('datasource')!r}, want $datasource")
    if v.get("type") != "query":
        problems.append(f"{rule}: type {v.get('type')!r}, want 'query'")
    if v.get("label") != name.title():
        problems.append(f"{rule}: label {v.get('label')!r}, want {name.title()!r}")
    if not v.get("multi"):
        problems.append(f"{rule}: not a multi-select")
    if v.get("allValue") != ".+":
        problems.append(f"{rule}: allValue {v.get('allValue')!r}, want '.+'")
    if v.get("refresh") != 2:
        problems.append(f"template-on-time-change-reload-rule: {name} refresh "
                        f"{v.get('refresh')!r}, want 2 (on time range change)")
    return problems


def lint_template_label_promql(dashboard: dict) -> list[str]:
    problems = []
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q or ""
        m = TEMPLATE_FUNCTION.match(q)
        if m is None:
            problems.append(f"template-label-promql-rule: {v.get('name')}: invalid query {q!r}")
            continue
        function, argument = m.groups()
        if function == "label_values" and "," in argument:
            argument, label = (s.strip() for s in argument.rsplit(",", 1))
            if not re.fullmatch(r"[a-zA-Z_]\w*", label):
                problems.append(f"template-label-promql-rule: {v.get('name')}: bad label "
                                f"{label!r}")
        elif function in ("label_names", "label_values"):
            continue  # label_names() / label_values(label): no PromQL to check
        try:
            parse(argument)
        except Exception as exc:  # promql_parser raises plain ValueError-like errors
            problems.append(f"template-label-promql-rule: {v.get('name')}: {argument!r}: {exc}")
    return problems


def lint_panel(panel: dict) -> list[str]:
    """panel-title-description, panel-datasource, panel-units and panel-no-targets."""
    title = panel.get("title") or "<untitled>"
    problems = []
    if not (panel.get("title") or "").strip() or not (panel.get("description") or "").strip():
        problems.append(f"panel-title-description-rule: {title!r} needs a title and a "
                        f"description")
    if panel.get("type") not in DATA_PANEL_TYPES:
        return problems
    if not is_templated_datasource(panel.get("datasource")):
        problems.append(f"panel-datasource-rule: {title!r} uses {panel.get('datasource')!r}, "
                        f"want ${{datasource}}")
    for t in panel_targets(panel):
        if "datasource" in t and not is_templated_datasource(t["datasource"]):
            problems.append(f"panel-datasource-rule: {title!r} target {t.get('refId')} uses "
                            f"{t['datasource']!r}")
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    if unit not in VALID_UNITS:
        problems.append(f"panel-units-rule: {title!r} has no or an invalid unit: {unit!r}")
    if not panel_targets(panel):
        problems.append(f"panel-no-targets-rule: {title!r} has no targets")
    return problems


def lint_target(panel: dict, target: dict) -> list[str]:
    """target-promql, target-rate-interval, target-job, target-instance and
    target-counter-agg for one query."""
    where = f"{panel.get('title')!r} {target.get('refId')}"
    expr = target.get("expr") or ""
    try:
        ast = parse(expr)
    except Exception as exc:
        return [f"target-promql-rule: {where}: invalid PromQL {expr!r}: {exc}"]
    problems = []
    for node, parents in walk(ast):
        if (isinstance(node, promql_parser.MatrixSelector) and parents
                and isinstance(parents[-1], promql_parser.Call)
                and parents[-1].func.name in RATE_FUNCTIONS
                and node.range != RATE_INTERVAL_RANGE):
            problems.append(f"target-rate-interval-rule: {where}: {parents[-1].func.name}() "
                            f"over {node.range}, want $__rate_interval")
    for selector, parents in selectors(ast):
        name = metric_name(selector) or str(selector)
        for label in ("job", "instance"):
            if not any(m.name == label and m.op == promql_parser.MatchOp.Re
                       and m.value == f"${label}" for m in selector.matchers.matchers):
                problems.append(f"target-{label}-rule: {where}: {name} lacks "
                                f'{label}=~"${label}"')
        if name.endswith(COUNTER_SUFFIXES) and under_rate(parents) is None:
            problems.append(f"target-counter-agg-rule: {where}: counter {name} is not inside "
                            f"rate(), irate() or increase()")
    return problems


def lint_dashboard(dashboard: dict) -> list[str]:
    problems = [*lint_template_datasource(dashboard),
                *lint_template_variable(dashboard, "job"),
                *lint_template_variable(dashboard, "instance"),
                *lint_template_label_promql(dashboard)]
    for panel in data_panels(dashboard):
        problems += lint_panel(panel)
        for target in panel_targets(panel):
            problems += lint_target(panel, target)
    return problems


# -- the metric contract (docs/metrics.md) ----------------------------------------------------


def markdown_table(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after ``## heading``, as lists of cell texts."""
    section = text.split(f"## {heading}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("## "):
            break
        if line.startswith("|") and not re.fullmatch(r"\|[-| :]+\|", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header row


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@cache
def contract() -> dict:
    """docs/metrics.md as data: ``types`` (metric → counter/gauge/histogram), ``labels``
    (metric → label names), ``values`` (label → allowed values), ``buckets`` (histogram →
    ``le`` bounds)."""
    text = METRICS_MD.read_text(encoding="utf-8")
    types, labels = {}, {}
    for name, kind, label_cell, *_ in markdown_table(text, "The metrics"):
        (metric,) = backticked(name)
        types[metric] = kind.split()[0]
        labels[metric] = set(backticked(label_cell))
    values: dict[str, set[str]] = {}
    for label_cell, value_cell in markdown_table(text, "Label values"):
        (label,) = backticked(label_cell)
        values[label] = set(backticked(value_cell))
        # "the sink kind, as for `batch_type` above": inherit that label's values
        for other in re.findall(r"as for `(\w+)`", value_cell):
            values[label] |= values.get(other, set())
    buckets = {}
    for names_cell, bounds_cell in markdown_table(text, "Buckets"):
        bounds = re.sub(r"\([^)]*\)", "", bounds_cell).replace("*", "")
        for metric in backticked(names_cell):
            buckets[metric] = {float(b) for b in re.findall(r"\d+(?:\.\d+)?", bounds)}
    return {"types": types, "labels": labels, "values": values, "buckets": buckets}


def contract_series(name: str) -> tuple[str, str] | None:
    """(contract metric, series suffix) for a series name, or None if not in the contract:
    a histogram is exposed as ``_bucket``, ``_sum`` and ``_count`` series."""
    types = contract()["types"]
    if name in types and types[name] != "histogram":
        return name, ""
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and types.get(base) == "histogram":
            return base, suffix
    return None


def lint_contract(panel: dict, target: dict) -> list[str]:
    """The query uses only series, labels, values and ``le`` bounds of docs/metrics.md;
    takes rates of counters and histogram series only; keeps ``le`` under
    histogram_quantile; groups only by labels its series have."""
    c = contract()
    where = f"{panel.get('title')!r} {target.get('refId')}"
    ast = parse(target["expr"])
    problems = []
    for selector, parents in selectors(ast):
        name = metric_name(selector)
        if name == "up":  # Prometheus' own scrape-health series
            continue
        found = contract_series(name or "")
        if found is None:
            problems.append(f"contract: {where}: {name!r} is not in docs/metrics.md")
            continue
        metric, suffix = found
        kind = c["types"][metric]
        if under_rate(parents) and kind == "gauge":
            problems.append(f"contract: {where}: rate of the gauge {name}")
        allowed_labels = c["labels"][metric] | {"job", "instance"} | (
            {"le"} if suffix == "_bucket" else set())
        for m in selector.matchers.matchers:
            if m.name == "__name__":
                continue
            if m.name not in allowed_labels:
                problems.append(f"contract: {where}: {name} has no label {m.name!r}")
            elif m.name == "le":
                if float(m.value) not in c["buckets"][metric]:
                    problems.append(f"contract: {where}: le={m.value} is not a bucket of "
                                    f"{metric}")
            elif m.name not in ("job", "instance"):
                wanted = m.value.split("|") if m.op == promql_parser.MatchOp.Re else [m.value]
                unknown = [v for v in wanted if v not in c["values"].get(m.name, set())]
                if unknown:
                    problems.append(f"contract: {where}: {m.name} values {unknown} are not in "
                                    f"docs/metrics.md")
    for node, _ in walk(ast):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            have = {"job", "instance"}
            for s, _ in selectors(node):
                found = contract_series(metric_name(s) or "")
                if found:
                    have |= c["labels"][found[0]] | ({"le"} if found[1] == "_bucket" else set())
            missing = set(node.modifier.labels) - have
            if missing:
                problems.append(f"contract: {where}: grouping by {sorted(missing)}, which its "
                                f"series do not have")
        if isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile":
            inner = node.args[1]
            if not (isinstance(inner, promql_parser.AggregateExpr) and inner.modifier
                    and "le" in inner.modifier.labels):
                problems.append(f"contract: {where}: histogram_quantile needs "
                                f"sum by (…, le) (…)")
    return problems


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict:
    """The checked-in dashboard, as Grafana would load it."""
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))


def load_generator() -> ModuleType:
    pytest.importorskip("grafana_foundation_sdk",
                        reason="the generator needs grafana-foundation-sdk")
    spec = importlib.util.spec_from_file_location("vectorticks_dashboard", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def minimal_dashboard(*panels: dict) -> dict:
    """A dashboard with valid variables around the given panels (for the negative tests)."""
    return {
        "title": "t", "panels": list(panels),
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Data source",
             "query": "prometheus"},
            *({"type": "query", "name": n, "label": n.title(), "multi": True, "allValue": ".+",
               "refresh": 2, "datasource": {"type": "prometheus", "uid": "${datasource}"},
               "query": q}
              for n, q in (("job", "label_values(up, job)"),
                           ("instance", 'label_values(up{job=~"$job"}, instance)'))),
        ]},
    }


def good_panel(expr: str = 'sum(rate(ticks_processed_total{job=~"$job", '
                            'instance=~"$instance"}[$__rate_interval]))') -> dict:
    return {"type": "timeseries", "title": "Throughput", "description": "ticks per second",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": "ops"}},
            "targets": [{"refId": "A", "expr": expr}]}


# -- the checked-in dashboard passes ----------------------------------------------------------


def test_dashboard_passes_the_lint(dashboard):
    assert lint_dashboard(dashboard) == []


def test_every_query_matches_the_metric_contract(dashboard):
    problems = [p for panel in data_panels(dashboard) for t in panel_targets(panel)
                for p in lint_contract(panel, t)]
    assert problems == []


def test_dashboard_identity_and_time(dashboard):
    assert dashboard["uid"] == "vectorticks-overview"
    assert dashboard["title"] == "vectorticks"
    assert dashboard["refresh"] == "10s"
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "job", "instance"]
    assert variable(dashboard, "job")["query"] == "label_values(up, job)"
    assert variable(dashboard, "instance")["query"] == 'label_values(up{job=~"$job"}, instance)'


def test_five_rows_of_at_least_fifteen_panels(dashboard):
    panels = dashboard["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ROW_TITLES
    assert panels[0]["type"] == "row"  # no panel above the first row
    assert len(data_panels(dashboard)) >= MIN_PANELS
    per_row: dict[str, int] = {}
    current = None
    for p in panels:
        if p["type"] == "row":
            current = p["title"]
            per_row[current] = 0
        else:
            per_row[current] += 1
    assert all(n >= 2 for n in per_row.values()), per_row


def test_panel_ids_unique_and_grid_not_overlapping(dashboard):
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_every_rate_uses_rate_interval_and_counters_are_rated(dashboard):
    """The two rules the brief singles out, counted directly: at least one rate per
    counter family, and each with the sentinel range."""
    rates = 0
    for panel in data_panels(dashboard):
        for t in panel_targets(panel):
            for node, parents in walk(parse(t["expr"])):
                if isinstance(node, promql_parser.MatrixSelector):
                    rates += 1
                    assert node.range == RATE_INTERVAL_RANGE, t["expr"]
                    assert parents[-1].func.name in {"rate", "increase"}, t["expr"]
    assert rates > 30


# -- the lint catches violations --------------------------------------------------------------


def test_lint_catches_a_fixed_rate_range():
    problems = lint_dashboard(minimal_dashboard(good_panel(
        'sum(rate(ticks_processed_total{job=~"$job", instance=~"$instance"}[5m]))')))
    assert len(problems) == 1 and problems[0].startswith("target-rate-interval-rule")


def test_lint_catches_missing_job_and_instance_matchers():
    problems = lint_dashboard(minimal_dashboard(good_panel(
        'sum(rate(ticks_processed_total{job="vectorticks"}[$__rate_interval]))')))
    assert sorted(p.split(":")[0] for p in problems) == ["target-instance-rule",
                                                         "target-job-rule"]


def test_lint_catches_a_counter_outside_rate():
    problems = lint_dashboard(minimal_dashboard(good_panel(
        'sum(ticks_processed_total{job=~"$job", instance=~"$instance"})')))
    assert [p.split(":")[0] for p in problems] == ["target-counter-agg-rule"]
    problems = lint_dashboard(minimal_dashboard(good_panel(
        'max_over_time(tick_batch_size_bucket{job=~"$job", instance=~"$instance"}'
        '[$__rate_interval])')))
    assert [p.split(":")[0] for p in problems] == ["target-counter-agg-rule"]


def test_lint_catches_invalid_promql():
    problems = lint_dashboard(minimal_dashboard(good_panel("sum(rate(x[$__rate_interval])")))
    assert [p.split(":")[0] for p in problems] == ["target-promql-rule"]


def test_lint_catches_bad_panels():
    bare = {"type": "timeseries", "title": "Bare", "id": 1}
    problems = lint_panel(bare)
    rules = sorted(p.split(":")[0] for p in problems)
    assert rules == ["panel-datasource-rule", "panel-no-targets-rule", "panel-title-description-rule",
                     "panel-units-rule"]
    fixed_ds = good_panel()
    fixed_ds["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    assert [p.split(":")[0] for p in lint_panel(fixed_ds)] == ["panel-datasource-rule"]
    bad_unit = good_panel()
    bad_unit["fieldConfig"]["defaults"]["unit"] = "ticks/s"
    assert [p.split(":")[0] for p in lint_panel(bad_unit)] == ["panel-units-rule"]
    assert lint_panel(good_panel()) == []
    assert lint_panel({"type": "row", "title": "Overview", "description": "a row"}) == []


def test_lint_catches_bad_variables():
    d = minimal_dashboard(good_panel())
    assert lint_dashboard(d) == []
    no_ds = copy.deepcopy(d)
    no_ds["templating"]["list"].pop(0)
    assert lint_template_datasource(no_ds)
    bad_job = copy.deepcopy(d)
    job = variable(bad_job, "job")
    job.update(multi=False, allValue=None, datasource={"uid": "prometheus"}, refresh=1)
    assert len(lint_template_variable(bad_job, "job")) == 4
    no_instance = copy.deepcopy(d)
    no_instance["templating"]["list"].pop()
    assert lint_template_variable(no_instance, "instance") == [
        "template-instance-rule: missing the instance variable"]
    bad_query = copy.deepcopy(d)
    variable(bad_query, "instance")["query"] = "label_values(up{job=~, instance)"
    assert lint_template_label_promql(bad_query)
    variable(bad_query, "instance")["query"] = "foo(up, instance)"
    assert lint_template_label_promql(bad_query)


def test_contract_catches_drift():
    panel = good_panel()

    def problems(expr: str) -> list[str]:
        return lint_contract(panel, {"refId": "A", "expr": expr})

    scope = 'job=~"$job", instance=~"$instance"'
    assert problems(f"sum(rate(ticks_processed_total{{{scope}}}[$__rate_interval]))") == []
    assert problems(f"sum(rate(ticks_total{{{scope}}}[$__rate_interval]))")  # renamed metric
    assert problems(f"rate(vectorticks_outbox_depth{{{scope}}}[$__rate_interval])")  # gauge
    assert problems(f'sum(rate(ticks_processed_total{{{scope}, tick_type="crypto"}}'
                    f"[$__rate_interval]))")  # unknown label value
    assert problems(f'sum(rate(ticks_processed_total{{{scope}, sink="stream"}}'
                    f"[$__rate_interval]))")  # label of another metric
    assert problems(f'sum(rate(vectorticks_end_to_end_latency_seconds_bucket{{{scope}, '
                    f'le="0.3"}}[$__rate_interval]))')  # not a bucket boundary
    assert problems(f"histogram_quantile(0.99, sum(rate(tick_processing_latency_seconds_bucket"
                    f"{{{scope}}}[$__rate_interval])))")  # le dropped
    assert problems(f"sum by (sink) (rate(ticks_processed_total{{{scope}}}[$__rate_interval]))")


def test_contract_parses_docs_metrics_md():
    c = contract()
    assert c["types"]["ticks_processed_total"] == "counter"
    assert c["types"]["tick_processing_latency_seconds"] == "histogram"
    assert c["types"]["vectorticks_outbox_depth"] == "gauge"
    assert c["labels"]["ticks_processed_total"] == {"tick_type", "status"}
    assert {"stream", "pubsub", "file"} <= c["values"]["sink"]
    assert len({"unknown_instrument", "bad_depth"} & c["values"]["reason"]) == 2
    assert 0.15 in c["buckets"]["tick_processing_latency_seconds"]
    assert 0.2 in c["buckets"]["vectorticks_end_to_end_latency_seconds"]
    assert 99.0 not in c["buckets"]["tick_processing_latency_seconds"]  # "(P99 alert)" skipped


# -- regeneration -----------------------------------------------------------------------------


def test_checked_in_json_is_what_the_generator_writes(tmp_path):
    generator = load_generator()
    text = generator.render()
    assert json.loads(text) == generator.build()
    assert DASHBOARD_JSON.read_text(encoding="utf-8") == text, (
        "dashboards/vectorticks.json is stale: run python dashboards/dashboard.py")
    # The script itself, as a user runs it: same bytes, and --check agrees.
    out = tmp_path / "vectorticks.json"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True,
                   capture_output=True, timeout=120)
    assert out.read_bytes() == DASHBOARD_JSON.read_bytes()
    assert out.read_bytes().endswith(b"}\n")
    check = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                           timeout=120)
    assert check.returncode == 0, check.stderr


def test_generator_is_deterministic():
    generator = load_generator()
    assert generator.render() == generator.render()


def test_generator_check_flags_a_stale_file(tmp_path):
    stale = tmp_path / "vectorticks.json"
    stale.write_text("{}\n")
    generator = load_generator()
    assert generator.main(["--check", "--out", str(stale)]) == 1
    assert generator.main(["--out", str(stale)]) == 0
    assert generator.main(["--check", "--out", str(stale)]) == 0


def test_expand_variables_leaves_quoted_strings_alone():
    expr = 'rate(x{job=~"$job"}[$__rate_interval]) * ${factor} + [[other]]'
    assert expand_variables(expr) == (f'rate(x{{job=~"$job"}}[{RATE_INTERVAL}]) * '
                                      f"bgludgvy_factor + bgludgvy_other")
    assert promql_parser.parse(f"rate(x[{RATE_INTERVAL}])").args[0].range == RATE_INTERVAL_RANGE

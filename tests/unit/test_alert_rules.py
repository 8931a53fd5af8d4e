"""The Prometheus rules in dashboards/alerts/: promtool's own check and unit tests, and
their consistency with the metric contract (docs/metrics.md) and the runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.utils import floatToGoString

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "alerts" / "vectorticks.rules.yml"
PROMTOOL_TESTS = sorted((ROOT / "dashboards" / "alerts" / "tests").glob("*.yml"))
METRICS_MD = ROOT / "docs" / "metrics.md"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/vectorticks/vectorticks/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}

# PromQL words that look like metric names: aggregation modifiers, set and comparison
# keywords. Function names are recognised by the "(" that follows them.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool missing: run `make test` (installs the Debian prometheus package)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


@cache
def _rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _rule_groups() for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _records() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


@cache
def _promtool_docs() -> tuple[tuple[Path, dict[str, Any]], ...]:
    return tuple((path, yaml.safe_load(path.read_text())) for path in PROMTOOL_TESTS)


def _metric_names(expr: str) -> set[str]:
    """Metric (and recorded series) names an expression selects."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)    # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                   # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                  # range and subquery durations
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group() in _KEYWORDS:
            continue  # a function call, or a keyword
        names.add(m.group())
    return names


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


@cache
def _documented() -> dict[str, str]:
    """docs/metrics.md "The metrics" table: name -> type."""
    rows = re.findall(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*([^|]+?)\s*\|",
                      _section(METRICS_MD.read_text(), "The metrics"), re.MULTILINE)
    return dict(rows)


def _exposed_names() -> set[str]:
    """Every series name the documented metrics expose (histograms: _bucket/_count/_sum)."""
    names = set()
    for name, kind in _documented().items():
        if kind.startswith("histogram"):
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        else:
            names.add(name)
    return names


@cache
def _bucket_boundaries() -> dict[str, list[float]]:
    """docs/metrics.md "Buckets" table: histogram name -> its `le` boundaries."""
    out = {}
    for line in _section(METRICS_MD.read_text(), "Buckets").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        values = re.sub(r"\([^)]*\)", "", cells[1]).replace("*", "")
        bounds = [float(v) for v in values.split(",")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            out[name] = bounds
    return out


def _github_slugs(markdown: str) -> set[str]:
    """Anchors GitHub gives the headings of a Markdown file (fenced code skipped)."""
    slugs: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            base, n = slug, 1
            while slug in slugs:
                slug, n = f"{base}-{n}", n + 1
            slugs.add(slug)
    return slugs


# -- promtool --------------------------------------------------------------------------


def test_promtool_check_rules():
    result = _run("check", "rules", str(RULES.relative_to(ROOT)))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"SUCCESS: {len(_rules())} rules found" in out


def test_promtool_unit_tests_pass():
    assert PROMTOOL_TESTS, "no promtool test files in dashboards/alerts/tests/"
    result = _run("test", "rules", *(str(p.relative_to(ROOT)) for p in PROMTOOL_TESTS))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert out.count("SUCCESS") == len(PROMTOOL_TESTS), out
    assert "FAILED" not in out, out


# -- the rules themselves --------------------------------------------------------------


def test_rule_names_follow_conventions():
    for name in _records():
        assert re.fullmatch(r"[a-z]+:[a-z0-9_]+:[a-z0-9_]+", name), name  # level:metric:ops
    for alert in _alerts():
        assert re.fullmatch(r"Vectorticks[A-Z][A-Za-z0-9]+", alert["alert"]), alert["alert"]
    assert len({a["alert"] for a in _alerts()}) == len(_alerts()), "duplicate alert names"


def test_every_alert_has_severity_and_annotations():
    assert _alerts()
    for alert in _alerts():
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name}: no {key}"
        assert annotations["runbook_url"].startswith(RUNBOOK_URL), name


def test_every_runbook_url_anchor_is_a_runbook_heading():
    slugs = _github_slugs(RUNBOOK.read_text())
    for alert in _alerts():
        anchor = alert["annotations"]["runbook_url"].removeprefix(RUNBOOK_URL)
        assert anchor in slugs, f"{alert['alert']}: no heading for #{anchor} in docs/runbook.md"
        assert anchor == alert["alert"].lower(), "one runbook section per alert, named after it"


def test_no_rule_uses_a_quantile_label():
    # A Histogram exposes _bucket{le}, _sum and _count; only a Summary has `quantile`.
    # `\bquantile` does not match inside histogram_quantile.
    for rule in _rules():
        assert not re.search(r"\bquantile\b", rule["expr"]), rule


def test_histogram_quantile_keeps_le_and_thresholds_are_bucket_boundaries():
    bounds = _bucket_boundaries()
    quantile_alerts = [a for a in _alerts() if "histogram_quantile" in a["expr"]]
    assert quantile_alerts
    for alert in quantile_alerts:
        expr = alert["expr"]
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            assert "le" in {g.strip() for g in grouping.split(",")}, expr
        m = re.search(r"\b([a-z_]+)_bucket\b.*\)\s*>\s*([0-9.]+)\s*$", expr, re.DOTALL)
        assert m, expr
        assert float(m.group(2)) in bounds[m.group(1)], f"{alert['alert']}: not a bucket boundary"


def test_le_values_are_documented_boundaries_as_prometheus_client_renders_them():
    """`le="0.2"` in a rule or a test series must be exactly what the exporter prints,
    else the selector (or the test) silently matches nothing."""
    bounds = _bucket_boundaries()
    pattern = re.compile(r'\b([a-z_]+)_bucket\{[^}]*\ble="([^"]+)"')
    exprs = [rule["expr"] for rule in _rules()]
    for _, doc in _promtool_docs():
        for case in doc["tests"]:
            exprs += [s["series"] for s in case.get("input_series") or []]
    seen = 0
    for expr in exprs:
        for name, le in pattern.findall(expr):
            seen += 1
            if le == "+Inf":
                continue
            assert le == floatToGoString(float(le)), f"{name}: le={le!r}"
            assert float(le) in bounds[name], f"{name}: le={le} is not a bucket boundary"
    assert seen


def test_every_metric_used_is_in_the_contract():
    exposed = _exposed_names() | {"up"}
    records = _records()
    used = set()
    for rule in _rules():
        used |= _metric_names(rule["expr"])
    for _, doc in _promtool_docs():
        for case in doc["tests"]:
            for series in case.get("input_series") or []:
                used.add(series["series"].split("{", 1)[0].strip())
    assert used
    unknown = {n for n in used if n not in exposed and n not in records}
    assert not unknown, f"not in docs/metrics.md: {sorted(unknown)}"


def test_recording_rules_are_defined_before_use():
    defined: set[str] = set()
    for group in _rule_groups():
        for rule in group["rules"]:
            for name in _metric_names(rule["expr"]):
                if ":" in name:
                    assert name in defined, f"{name} used before its recording rule"
            if "record" in rule:
                defined.add(rule["record"])


# -- the promtool tests cover every rule -----------------------------------------------


def test_promtool_tests_target_this_rule_file():
    for path, doc in _promtool_docs():
        files = [(path.parent / f).resolve() for f in doc["rule_files"]]
        assert files == [RULES.resolve()], path


def test_every_alert_fires_in_one_case_and_stays_silent_in_another():
    names = {a["alert"] for a in _alerts()}
    fired: set[str] = set()
    silent: set[str] = set()
    for path, doc in _promtool_docs():
        for case in doc["tests"]:
            for check in case.get("alert_rule_test") or []:
                assert check["alertname"] in names, f"{path.name}: unknown {check['alertname']}"
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
                for exp in check.get("exp_alerts") or []:  # labels and annotations checked
                    assert exp.get("exp_labels", {}).get("severity"), check
                    assert exp.get("exp_annotations", {}).get("runbook_url"), check
    assert not names - fired, f"never fire in a test: {sorted(names - fired)}"
    assert not names - silent, f"never silent in a test: {sorted(names - silent)}"


def test_every_recording_rule_has_an_exact_value_test():
    tested: set[str] = set()
    for _, doc in _promtool_docs():
        for case in doc["tests"]:
            for check in case.get("promql_expr_test") or []:
                if check.get("exp_samples"):
                    tested |= _metric_names(check["expr"])
    assert not _records() - tested, sorted(_records() - tested)

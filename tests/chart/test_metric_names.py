"""Every metric (and label) the dashboards and alert rules query is one the exporter or the
operator actually emits.

The registry comes from the code, not from a hand-kept list: the exporter's exposition
text (`mlfootprint exporter --once` with simulated GPUs and a pod) and the operator's
collector (`OperatorMetrics` holding one run of every kind). Families without a sample in
that exposition (e.g. error counters that stayed at zero) take their labels from
docs/metrics.md. Also: the dashboards are what their generator produces, and every alert's
runbook link points at a heading of docs/alerts.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.conftest import CHART, REPO

DASHBOARDS = CHART / "files" / "dashboards"
RULES = CHART / "files" / "alerts.yaml"
#: Labels every scraped series gets from Prometheus (job, instance) or from the chart's
#: relabelling (node: the exporter pod's node, for the exporter's self-metrics).
TARGET_LABELS = {"job", "instance", "node"}
#: Series Prometheus itself produces for each scrape target.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "atan2",
}
Registry = dict[str, set[str] | None]


def _from_exposition(text: str, registry: Registry) -> None:
    for fam in text_string_to_metric_families(text):
        if fam.type == "counter":
            names = [fam.name + "_total"]
        elif fam.type == "histogram":
            names = [fam.name + suffix for suffix in ("_bucket", "_sum", "_count")]
        else:
            names = [fam.name]
        for name in names:
            labels: set[str] | None = registry.get(name)
            for s in fam.samples:
                if s.name == name:
                    labels = (labels or set()) | set(s.labels)
            registry[name] = labels


def _documented_labels() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        m = re.match(r"\|\s*`(mlfootprint_\w+)`\s*\|\s*\w+\s*\|([^|]*)\|", line)
        if m:
            out[m.group(1)] = {x.strip() for x in m.group(2).split(",") if x.strip()}
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tmp = tmp_path_factory.mktemp("exporter")
    pods = tmp / "pods.yaml"
    pods.write_text("pods:\n  - {namespace: ml, name: p, profile: training, containers: [{name: c, gpus: 1}]}\n")
    out = subprocess.run(
        [sys.executable, "-m", "mlfootprint", "exporter", "--once", "--gpu-source", "sim", "--sim-gpus", "2",
         "--pod-source", "file", "--pods-file", str(pods), "--host-source", "sim", "--node-name", "n0",
         "--metrics-level", "container", "--attribution-interval-s", "0.2", "--sample-interval-s", "0.05",
         "--log-level", "error"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    reg: Registry = {}
    _from_exposition(out, reg)

    from prometheus_client import generate_latest

    from mlfootprint.operator.metrics import OperatorMetrics, RunFigures

    om = OperatorMetrics()
    om.set_run(RunFigures(
        namespace="ml", name="r", kind="InferenceService", phase="inference", model="m", budget_co2e_g=1.0,
        budget_used_ratio=0.5, requests=1.0, joules_per_token=1.0, co2e_g_per_request=1.0, breakeven_ratio=0.1,
        power_cap_w=490.0, power_cap_saving_ratio=0.2,
    ))
    om.set_factors_valid("mlfootprint", "mlfootprint-factors", True)
    om.set_source_up("scrape", True)
    om.observe_refresh("TrainingRun", 0.1, wrote=True)
    om.refresh_error("TrainingRun", "ApiError")
    om.counter_anomaly("Rollback")
    om.status_write_deferred("TrainingRun", "MinInterval")
    om.refresh_lag.labels("TrainingRun").observe(30.0)
    from mlfootprint.operator.scheduler import KindStats

    om.queue.stats = lambda: {"TrainingRun": KindStats(runs=1, overdue=0, in_flight=0, oldest_age_s=1.0)}
    _from_exposition(generate_latest(om.registry).decode(), reg)

    documented = _documented_labels()
    for name, labels in reg.items():
        if labels is None:
            assert name in documented, f"{name}: no sample and not documented in docs/metrics.md"
            reg[name] = documented[name]
    for name, labels in PROMETHEUS_SERIES.items():
        reg[name] = set(labels)
    return reg


# ----------------------------------------------------------------------------- PromQL
def _strip(expr: str) -> tuple[str, set[str]]:
    """Drop strings, Grafana variables, ranges; return (skeleton, label names referenced)."""
    labels: set[str] = set()
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\$\{[^}]*\}|\$__\w+|\$\w+", "1", expr)
    for block in re.findall(r"\{([^{}]*)\}", expr):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", block))
    expr = re.sub(r"\{[^{}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", expr):
        labels |= {x.strip() for x in clause.split(",") if x.strip()}
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", expr)
    expr = re.sub(r"(?<![\w:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w:])", " ", expr)
    return expr, labels


def metrics_and_labels(expr: str) -> tuple[set[str], set[str]]:
    skeleton, labels = _strip(expr)
    names = set()
    for m in re.finditer(r"(?<![\w:])([A-Za-z_:][\w:]*)(\s*\()?", skeleton):
        token, call = m.group(1), m.group(2)
        if call or token in KEYWORDS:
            continue
        names.add(token)
    return names, labels


def _label_values(query: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.S)
    return (m.group(1), m.group(2)) if m else None


def queries() -> list[tuple[str, str, str | None]]:
    """(where, expr, label_values label) for every query of the rules and dashboards."""
    out: list[tuple[str, str, str | None]] = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            out.append((f"alerts.yaml {rule.get('alert') or rule.get('record')}", rule["expr"], None))
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{path.name} panel {panel['title']!r}", t["expr"], None))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                lv = _label_values(q)
                assert lv, f"{path.name} variable {var['name']}: only label_values(...) queries are used"
                out.append((f"{path.name} variable {var['name']}", lv[0], lv[1]))
    return out


def test_extractor_finds_metrics_and_labels() -> None:
    names, labels = metrics_and_labels(
        'sum by (namespace) (rate(foo_total{pod=~"$pods", x="a b"}[5m])) / on (node) group_left () bar * 3.6e+06 '
        "> bool 1 unless baz offset 5m"
    )
    assert names == {"foo_total", "bar", "baz"}
    assert labels == {"namespace", "pod", "x", "node"}


def test_there_are_queries() -> None:
    where = {w.split()[0] for w, _, _ in queries()}
    assert where == {"alerts.yaml", "cluster-overview.json", "run-detail.json", "inference-efficiency.json"}


@pytest.mark.parametrize(("where", "expr", "label"), queries(), ids=lambda v: v if isinstance(v, str) and len(v) < 80 else None)
def test_query_uses_emitted_metrics_and_labels(registry: Registry, where: str, expr: str, label: str | None) -> None:
    names, labels = metrics_and_labels(expr)
    assert names, f"{where}: no metric in {expr!r}"
    unknown = sorted(n for n in names if n not in registry)
    assert not unknown, f"{where}: {unknown} emitted by neither the exporter nor the operator"
    available = set().union(*(registry[n] or set() for n in names)) | TARGET_LABELS
    if label:
        labels.add(label)
    missing = sorted(labels - available)
    assert not missing, f"{where}: labels {missing} are not on {sorted(names)}"


# ----------------------------------------------------------------------------- dashboards
def test_dashboards_are_generated() -> None:
    sys.path.insert(0, str(DASHBOARDS))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(DASHBOARDS))
    for name, text in generate.render_all().items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run {DASHBOARDS / 'generate.py'}"
    assert {p.name for p in DASHBOARDS.glob("*.json")} == set(generate.render_all())


def test_dashboards_use_the_datasource_variable() -> None:
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["templating"]["list"][0]["type"] == "datasource"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${datasource}", f"{path.name}: {panel['title']}"


def test_dashboard_panels_tile_the_grid() -> None:
    """Every panel lies within Grafana's 24 columns and none overlaps another. The SDK's layout
    starts a new line only once a line is exactly full, so a line of widths not summing to 24
    would push a panel past the right edge."""
    for path in DASHBOARDS.glob("*.json"):
        taken: dict[tuple[int, int], str] = {}
        for panel in json.loads(path.read_text())["panels"]:
            g = panel["gridPos"]
            assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, (path.name, panel["title"], g)
            for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
                assert cell not in taken, f"{path.name}: {panel['title']!r} overlaps {taken[cell]!r}"
                taken[cell] = panel["title"]


# ----------------------------------------------------------------------------- runbooks
def _github_anchor(heading: str) -> str:
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def test_every_alert_links_an_existing_runbook() -> None:
    anchors = {
        _github_anchor(m.group(1))
        for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", (REPO / "docs" / "alerts.md").read_text(), re.M)
    }
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            assert url.startswith("https://github.com/mlfootprint/mlfootprint/blob/main/docs/alerts.md#"), url
            anchor = url.split("#", 1)[1]
            assert anchor == rule["alert"].lower(), url
            assert anchor in anchors, f"docs/alerts.md has no heading for #{anchor}"
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}

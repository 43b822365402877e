"""Generate the chart's Grafana dashboards (files/dashboards/*.json) from this one source.

    python charts/mlfootprint/files/dashboards/generate.py

tests/chart/test_dashboards.py regenerates them and fails on any difference, and checks
that every metric they query is one the exporter or the operator emits.
Plain Grafana JSON model (schemaVersion 39), a `datasource` variable of type prometheus so
the dashboards work with any Prometheus data source; no plugin beyond Grafana's built-ins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
J_PER_KWH = 3.6e6


def _target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


class Board:
    """Lays panels out on Grafana's 24-column grid, row by row."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]) -> None:
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict[str, Any]] = []
        self.variables: list[dict[str, Any]] = [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            }
        ]
        self._x = 0
        self._y = 0
        self._row_h = 0

    def var(
        self, name: str, query: str, label: str, multi: bool = True, regex: str = "", all_value: str | None = ".*"
    ) -> None:
        self.variables.append(
            {
                "name": name,
                "label": label,
                "type": "query",
                "datasource": DS,
                "query": {"query": query, "refId": f"{name}-var"},
                "definition": query,
                "refresh": 2,
                "includeAll": multi,
                "multi": multi,
                "allValue": all_value if multi else None,
                "current": {},
                "regex": regex,
                "sort": 1,
                "hide": 0,
            }
        )

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x = 0
            self._row_h = 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[dict[str, Any]],
        *,
        unit: str = "short",
        w: int = 12,
        h: int = 8,
        description: str = "",
        decimals: int | None = None,
        stack: bool = False,
        bars: bool = False,
        thresholds: list[tuple[float | None, str]] | None = None,
        minmax: tuple[float | None, float | None] = (None, None),
    ) -> None:
        if self._x + w > 24:
            self._newline()
        defaults: dict[str, Any] = {"unit": unit}
        if decimals is not None:
            defaults["decimals"] = decimals
        if minmax[0] is not None:
            defaults["min"] = minmax[0]
        if minmax[1] is not None:
            defaults["max"] = minmax[1]
        steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        options: dict[str, Any] = {}
        if kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "bars" if bars else "line",
                "lineWidth": 1,
                "fillOpacity": 60 if bars else (30 if stack else 10),
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                "showPoints": "never",
            }
            options = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                       "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind in ("stat", "gauge", "bargauge"):
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
            if kind == "bargauge":
                options.update({"orientation": "horizontal", "displayMode": "gradient"})
        elif kind == "table":
            options = {"showHeader": True}
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
                "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": options,
            }
        )
        self._x += w
        self._row_h = max(self._row_h, h)

    def render(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "1m",
            "time": {"from": "now-24h", "to": "now"},
            "timezone": "browser",
            "annotations": {"list": []},
            "links": [
                {"title": "mlfootprint dashboards", "type": "dashboards", "tags": ["mlfootprint"], "asDropdown": True}
            ],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def _with_phase(metric: str, selector: str) -> str:
    """A per-run series with the run's phase and model joined from ``mlfootprint_run_info``
    (the phase lives there only, so a phase change does not churn every series)."""
    return (
        f"({metric}{{{selector}}} * on (namespace, name, kind) group_left (phase, model) "
        f'mlfootprint_run_info{{phase=~"$phase"}})'
    )


def _with_model(metric: str, selector: str) -> str:
    """A per-run series with the run's model joined from ``mlfootprint_run_info``."""
    return f"({metric}{{{selector}}} * on (namespace, name, kind) group_left (model) mlfootprint_run_info)"


def cluster_overview() -> Board:
    b = Board(
        "mlfootprint-cluster",
        "mlfootprint / Cluster overview",
        "GPU power and energy, CO2e and water of ML workloads by lifecycle phase and namespace.",
        ["mlfootprint", "energy", "carbon"],
    )
    b.var("namespace", "label_values(mlfootprint_pod_gpu_energy_joules_total, namespace)", "Namespace")
    b.var("phase", "label_values(mlfootprint_run_info, phase)", "Phase")
    ns = 'namespace=~"$namespace"'
    b.row("Now")
    b.panel("stat", "GPU power (all GPUs)", [_target("sum(mlfootprint_gpu_power_watts)")], unit="watt", w=6, h=5)
    b.panel(
        "stat",
        "GPU energy, selected range",
        [_target(f"sum(increase(mlfootprint_gpu_energy_joules_total[$__range])) / {J_PER_KWH:g}", instant=True)],
        unit="kwatth",
        w=6,
        h=5,
    )
    b.panel(
        "stat",
        "Idle share of GPU energy, selected range",
        [
            _target(
                "sum(increase(mlfootprint_gpu_idle_energy_joules_total[$__range])) / "
                "sum(increase(mlfootprint_gpu_energy_joules_total[$__range]))",
                instant=True,
            )
        ],
        unit="percentunit",
        w=6,
        h=5,
        thresholds=[(None, "green"), (0.3, "orange"), (0.5, "red")],
    )
    b.panel(
        "stat",
        "Runs metered",
        [_target(f"count({_with_phase('mlfootprint_run_energy_joules', ns)})", instant=True)],
        w=6,
        h=5,
    )
    b.row("Power and energy")
    b.panel(
        "timeseries",
        "GPU power by namespace",
        [_target(f"sum by (namespace) (mlfootprint_pod_gpu_power_watts{{{ns}}})", "{{namespace}}")],
        unit="watt",
        stack=True,
    )
    b.panel(
        "timeseries",
        "GPU power by node (measured) and idle",
        [
            _target("sum by (node) (mlfootprint_gpu_power_watts)", "{{node}}"),
            _target("sum(rate(mlfootprint_gpu_idle_energy_joules_total[5m]))", "idle (all nodes)"),
        ],
        unit="watt",
    )
    b.panel(
        "bargauge",
        "GPU energy by namespace, selected range",
        [
            _target(
                f"sum by (namespace) (increase(mlfootprint_pod_gpu_energy_joules_total{{{ns}}}[$__range])) / {J_PER_KWH:g}",
                "{{namespace}}",
                instant=True,
            )
        ],
        unit="kwatth",
    )
    b.panel(
        "bargauge",
        "Host (CPU + DRAM) energy by namespace, selected range",
        [
            _target(
                f"sum by (namespace) (increase(mlfootprint_pod_host_energy_joules_total{{{ns}}}[$__range])) / {J_PER_KWH:g}",
                "{{namespace}}",
                instant=True,
            )
        ],
        unit="kwatth",
    )
    b.row("Footprint of metered runs (operator)")
    b.panel(
        "bargauge",
        "Facility energy by phase",
        [_target(f"sum by (phase) ({_with_phase('mlfootprint_run_energy_joules', ns)}) / {J_PER_KWH:g}", "{{phase}}", instant=True)],
        unit="kwatth",
        w=8,
    )
    b.panel(
        "bargauge",
        "CO2e by phase (operational + embodied)",
        [_target(f"sum by (phase) ({_with_phase('mlfootprint_run_co2e_grams', ns)}) / 1000", "{{phase}}", instant=True)],
        unit="masskg",
        w=8,
    )
    b.panel(
        "bargauge",
        "Water by phase",
        [_target(f"sum by (phase) ({_with_phase('mlfootprint_run_water_liters', ns)})", "{{phase}}", instant=True)],
        unit="litre",
        w=8,
    )
    b.panel(
        "timeseries",
        "CO2e by namespace",
        [_target(f"sum by (namespace) ({_with_phase('mlfootprint_run_co2e_grams', ns)}) / 1000", "{{namespace}}")],
        unit="masskg",
        stack=True,
    )
    b.panel(
        "timeseries",
        "Operational vs embodied CO2e",
        [
            _target(f"sum({_with_phase('mlfootprint_run_operational_co2e_grams', ns)}) / 1000", "operational"),
            _target(f"sum({_with_phase('mlfootprint_run_embodied_co2e_grams', ns)}) / 1000", "embodied"),
        ],
        unit="masskg",
        stack=True,
    )
    b.panel(
        "timeseries",
        "Water by namespace",
        [_target(f"sum by (namespace) ({_with_phase('mlfootprint_run_water_liters', ns)})", "{{namespace}}")],
        unit="litre",
        stack=True,
    )
    b.panel(
        "timeseries",
        "GPU-hours held by phase",
        [_target(f"sum by (phase) ({_with_phase('mlfootprint_run_gpu_allocation_seconds', ns)}) / 3600", "{{phase}}")],
        unit="h",
        stack=True,
    )
    b.row("Health")
    b.panel(
        "table",
        "Exporter sources down",
        [_target("mlfootprint_exporter_source_up == 0", instant=True)],
        w=12,
        h=6,
    )
    b.panel(
        "timeseries",
        "Operator refresh duration (p50, p99)",
        [
            _target(
                "histogram_quantile(0.5, sum by (le, kind) (rate(mlfootprint_operator_refresh_duration_seconds_bucket[5m])))",
                "p50 {{kind}}",
            ),
            _target(
                "histogram_quantile(0.99, sum by (le, kind) (rate(mlfootprint_operator_refresh_duration_seconds_bucket[5m])))",
                "p99 {{kind}}",
            ),
        ],
        unit="s",
        w=12,
        h=6,
    )
    return b


def run_detail() -> Board:
    b = Board(
        "mlfootprint-run",
        "mlfootprint / Run detail",
        "One TrainingRun or InferenceService: power trace with swings, footprint and budget.",
        ["mlfootprint", "energy", "carbon"],
    )
    b.var("namespace", "label_values(mlfootprint_run_energy_joules, namespace)", "Namespace", multi=False)
    b.var("run", 'label_values(mlfootprint_run_energy_joules{namespace="$namespace"}, name)', "Run", multi=False)
    # The run's pods as the exporter names them: Job/JobSet/PyTorchJob/Deployment pods carry
    # the workload's name as prefix. "All" joins the matched pods (no catch-all regex).
    b.var(
        "pods",
        'label_values(mlfootprint_pod_gpu_power_watts{namespace="$namespace", pod=~"$run-.*"}, pod)',
        "Pods",
        all_value=None,
    )
    sel = 'namespace="$namespace", name="$run"'
    pods = 'namespace="$namespace", pod=~"$pods"'
    b.row("Footprint")
    b.panel("stat", "Facility energy", [_target(f"sum(mlfootprint_run_energy_joules{{{sel}}}) / {J_PER_KWH:g}")],
            unit="kwatth", w=4, h=5)
    b.panel("stat", "IT energy", [_target(f"sum(mlfootprint_run_it_energy_joules{{{sel}}}) / {J_PER_KWH:g}")],
            unit="kwatth", w=4, h=5)
    b.panel("stat", "CO2e", [_target(f"sum(mlfootprint_run_co2e_grams{{{sel}}}) / 1000")], unit="masskg", w=4, h=5)
    b.panel("stat", "Water", [_target(f"sum(mlfootprint_run_water_liters{{{sel}}})")], unit="litre", w=4, h=5)
    b.panel("stat", "GPU-hours", [_target(f"sum(mlfootprint_run_gpu_allocation_seconds{{{sel}}}) / 3600")],
            unit="h", w=4, h=5)
    b.panel(
        "gauge",
        "Carbon budget used",
        [_target(f"max(mlfootprint_run_budget_used_ratio{{{sel}}})")],
        unit="percentunit",
        w=4,
        h=5,
        minmax=(0, 1.5),
        thresholds=[(None, "green"), (0.8, "orange"), (1, "red")],
    )
    b.row("Power")
    b.panel(
        "timeseries",
        "GPU power by pod (attributed)",
        [
            _target(f"sum by (pod) (mlfootprint_pod_gpu_power_watts{{{pods}}})", "{{pod}}"),
            _target(f"sum(mlfootprint_pod_gpu_power_peak_watts{{{pods}}})", "peak"),
            _target(f"sum(mlfootprint_pod_gpu_power_min_watts{{{pods}}})", "min"),
        ],
        unit="watt",
        w=16,
        h=9,
        description="Pods named <run>-...; pick them in the Pods variable.",
    )
    b.panel(
        "stat",
        "Power swings (run total)",
        [_target(f"sum(mlfootprint_run_power_swings{{{sel}}})")],
        w=8,
        h=9,
        description="Changes larger than --swing-fraction of max power within --swing-window (methodology §6).",
        thresholds=[(None, "green"), (10, "orange"), (60, "red")],
    )
    b.panel(
        "timeseries",
        "Power swings per 5 min, by pod",
        [_target(f"sum by (pod) (increase(mlfootprint_pod_power_swings_total{{{pods}}}[5m]))", "{{pod}}")],
        bars=True,
        w=24,
        h=7,
    )
    b.row("Carbon trajectory")
    b.panel(
        "timeseries",
        "CO2e vs budget, with 6 h projection",
        [
            _target(f"sum(mlfootprint_run_co2e_grams{{{sel}}}) / 1000", "CO2e"),
            _target(f"sum(mlfootprint_run_budget_co2e_grams{{{sel}}}) / 1000", "budget"),
            _target(f"sum(predict_linear(mlfootprint_run_co2e_grams{{{sel}}}[1h], 21600)) / 1000", "projected in 6 h"),
        ],
        unit="masskg",
        w=12,
    )
    b.panel(
        "timeseries",
        "Operational vs embodied CO2e",
        [
            _target(f"sum(mlfootprint_run_operational_co2e_grams{{{sel}}}) / 1000", "operational"),
            _target(f"sum(mlfootprint_run_embodied_co2e_grams{{{sel}}}) / 1000", "embodied"),
        ],
        unit="masskg",
        stack=True,
        w=12,
    )
    return b


def inference_efficiency() -> Board:
    b = Board(
        "mlfootprint-inference",
        "mlfootprint / Inference efficiency",
        "Energy per token, CO2e per request and breakeven against the model's training footprint.",
        ["mlfootprint", "inference", "carbon"],
    )
    b.var("namespace", 'label_values(mlfootprint_inference_requests, namespace)', "Namespace")
    b.var("service", 'label_values(mlfootprint_inference_requests{namespace=~"$namespace"}, name)', "Service")
    sel = 'namespace=~"$namespace", name=~"$service"'
    b.row("Efficiency")
    b.panel(
        "timeseries",
        "Facility energy per output token",
        [_target(f"{_with_model('mlfootprint_inference_joules_per_token', sel)}", "{{namespace}}/{{name}} ({{model}})")],
        unit="J",
    )
    b.panel(
        "timeseries",
        "CO2e per 1,000 requests",
        [_target(f"mlfootprint_inference_co2e_grams_per_request{{{sel}}} * 1000", "{{namespace}}/{{name}}")],
        unit="massg",
    )
    b.panel(
        "timeseries",
        "Requests per second",
        [_target(f"deriv(mlfootprint_inference_requests{{{sel}}}[10m])", "{{namespace}}/{{name}}")],
        unit="reqps",
        description="Derivative of the operator's cumulative request count.",
    )
    b.panel(
        "timeseries",
        "Facility energy per request (since the service started)",
        [
            _target(
                f"sum by (namespace, name) (mlfootprint_run_energy_joules{{{sel}, kind=\"InferenceService\"}}) "
                f"/ sum by (namespace, name) (mlfootprint_inference_requests{{{sel}}})",
                "{{namespace}}/{{name}}",
            )
        ],
        unit="J",
    )
    b.row("Breakeven")
    b.panel(
        "bargauge",
        "Breakeven: inference CO2e / training CO2e of the model",
        [_target(f"{_with_model('mlfootprint_inference_breakeven_ratio', sel)}", "{{name}} ({{model}})", instant=True)],
        unit="percentunit",
        minmax=(0, 1),
        thresholds=[(None, "blue"), (1, "orange")],
        description="100 % means the service has emitted as much as the model's training runs did.",
    )
    b.panel(
        "timeseries",
        "Inference CO2e by service",
        [
            _target(
                f'sum by (namespace, name) (mlfootprint_run_co2e_grams{{{sel}, kind="InferenceService"}}) / 1000',
                "{{namespace}}/{{name}}",
            )
        ],
        unit="masskg",
    )
    return b


BOARDS = {
    "cluster-overview.json": cluster_overview,
    "run-detail.json": run_detail,
    "inference-efficiency.json": inference_efficiency,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text."""
    return {name: json.dumps(make().render(), indent=2, sort_keys=False) + "\n" for name, make in BOARDS.items()}


def main() -> int:
    for name, text in render_all().items():
        (HERE / name).write_text(text)
        print(HERE / name, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate the chart's Grafana dashboards (files/dashboards/*.json) from this one source.

    make venv && .venv/bin/python charts/mlfootprint/files/dashboards/generate.py

Built with Grafana's own typed builders, grafana-foundation-sdk (a development dependency in
the `test` extra: the chart ships the generated JSON, the image never imports this). The SDK
lays panels out on the 24-column grid, row by row, and writes Grafana's field names and enums.
tests/chart/test_metric_names.py regenerates the JSON and fails on any difference, and checks
that every metric and label queried is one the exporter or the operator emits. A `datasource`
variable of type prometheus lets the dashboards use any Prometheus data source; only Grafana's
built-in panels are used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, gauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
    VisibilityMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
J_PER_KWH = 3.6e6
P = TypeVar("P", timeseries.Panel, stat.Panel, gauge.Panel, bargauge.Panel, table.Panel)


def q(expr: str, legend: str = "__auto", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS)
    return query.instant() if instant else query


def var(name: str, query: str, label: str, multi: bool = True, all_value: str | None = ".*") -> QueryVariable:
    v = (
        QueryVariable(name).label(label).datasource(DS).query({"query": query, "refId": f"{name}-var"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi).include_all(multi)
    )
    return v.all_value(all_value) if multi and all_value else v


def board(uid: str, title: str, description: str, tags: list[str], *variables: QueryVariable) -> Dashboard:
    d = (
        Dashboard(title).uid(uid).description(description).tags(tags).editable().refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR).time("now-24h", "now").timezone("browser").annotations([])
        .link(DashboardLink("mlfootprint dashboards").type(DashboardLinkType.DASHBOARDS)
              .tags(["mlfootprint"]).as_dropdown(True))
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for v in variables:
        d.with_variable(v)
    return d


def panel(
    p: P,
    title: str,
    *targets: prometheus.Dataquery,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    description: str = "",
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    minmax: tuple[float, float] | None = None,
) -> P:
    """What every panel here has: title, queries (refId A, B, ...), unit, size, thresholds;
    stat, gauge and bar gauge panels show each series' last value."""
    p.title(title).description(description).datasource(DS).unit(unit).span(w).height(h)
    p.targets([t.ref_id(chr(ord("A") + i)) for i, t in enumerate(targets)])
    steps = [Threshold(value=v, color=c) for v, c in thresholds]
    p.thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
    if minmax:
        p.min(minmax[0]).max(minmax[1])
    if isinstance(p, (stat.Panel, gauge.Panel, bargauge.Panel)):
        p.reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
    return p


def ts(stack: bool = False, bars: bool = False) -> timeseries.Panel:
    """A time series with a table legend (mean, max) and a shared tooltip."""
    return (
        timeseries.Panel().draw_style(GraphDrawStyle.BARS if bars else GraphDrawStyle.LINE).line_width(1)
        .fill_opacity(60 if bars else 30 if stack else 10).show_points(VisibilityMode.NEVER)
        .stacking(StackingConfig().mode(StackingMode.NORMAL if stack else StackingMode.NONE).group("A"))
        .legend(VizLegendOptions().display_mode(LegendDisplayMode.TABLE).placement(LegendPlacement.BOTTOM)
                .show_legend(True).calcs(["mean", "max"]))
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )


def hbars() -> bargauge.Panel:
    return bargauge.Panel().orientation(VizOrientation.HORIZONTAL).display_mode(BarGaugeDisplayMode.GRADIENT)


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


def cluster_overview() -> Dashboard:
    ns = 'namespace=~"$namespace"'

    def run(metric: str) -> str:
        return _with_phase(metric, ns)

    def kwh_by_namespace(metric: str) -> prometheus.Dataquery:
        expr = f"sum by (namespace) (increase({metric}{{{ns}}}[$__range])) / {J_PER_KWH:g}"
        return q(expr, "{{namespace}}", instant=True)

    refresh_s = "sum by (le, kind) (rate(mlfootprint_operator_refresh_duration_seconds_bucket[5m]))"
    return (
        board("mlfootprint-cluster", "mlfootprint / Cluster overview",
              "GPU power and energy, CO2e and water of ML workloads by lifecycle phase and namespace.",
              ["mlfootprint", "energy", "carbon"],
              var("namespace", "label_values(mlfootprint_pod_gpu_energy_joules_total, namespace)", "Namespace"),
              var("phase", "label_values(mlfootprint_run_info, phase)", "Phase"))
        .with_row(Row("Now"))
        .with_panel(panel(stat.Panel(), "GPU power (all GPUs)",
                          q("sum(mlfootprint_gpu_power_watts)"), unit="watt", w=6, h=5))
        .with_panel(panel(stat.Panel(), "GPU energy, selected range",
                          q(f"sum(increase(mlfootprint_gpu_energy_joules_total[$__range])) / {J_PER_KWH:g}",
                            instant=True),
                          unit="kwatth", w=6, h=5))
        .with_panel(panel(stat.Panel(), "Idle share of GPU energy, selected range",
                          q("sum(increase(mlfootprint_gpu_idle_energy_joules_total[$__range])) / "
                            "sum(increase(mlfootprint_gpu_energy_joules_total[$__range]))", instant=True),
                          unit="percentunit", w=6, h=5,
                          thresholds=((None, "green"), (0.3, "orange"), (0.5, "red"))))
        .with_panel(panel(stat.Panel(), "Runs metered",
                          q(f"count({run('mlfootprint_run_energy_joules')})", instant=True), w=6, h=5))
        .with_row(Row("Power and energy"))
        .with_panel(panel(ts(stack=True), "GPU power by namespace",
                          q(f"sum by (namespace) (mlfootprint_pod_gpu_power_watts{{{ns}}})", "{{namespace}}"),
                          unit="watt"))
        .with_panel(panel(ts(), "GPU power by node (measured) and idle",
                          q("sum by (node) (mlfootprint_gpu_power_watts)", "{{node}}"),
                          q("sum(rate(mlfootprint_gpu_idle_energy_joules_total[5m]))", "idle (all nodes)"),
                          unit="watt"))
        .with_panel(panel(hbars(), "GPU energy by namespace, selected range",
                          kwh_by_namespace("mlfootprint_pod_gpu_energy_joules_total"), unit="kwatth"))
        .with_panel(panel(hbars(), "Host (CPU + DRAM) energy by namespace, selected range",
                          kwh_by_namespace("mlfootprint_pod_host_energy_joules_total"), unit="kwatth"))
        .with_row(Row("Footprint of metered runs (operator)"))
        .with_panel(panel(hbars(), "Facility energy by phase",
                          q(f"sum by (phase) ({run('mlfootprint_run_energy_joules')}) / {J_PER_KWH:g}",
                            "{{phase}}", instant=True),
                          unit="kwatth", w=8))
        .with_panel(panel(hbars(), "CO2e by phase (operational + embodied)",
                          q(f"sum by (phase) ({run('mlfootprint_run_co2e_grams')}) / 1000", "{{phase}}",
                            instant=True),
                          unit="masskg", w=8))
        .with_panel(panel(hbars(), "Water by phase",
                          q(f"sum by (phase) ({run('mlfootprint_run_water_liters')})", "{{phase}}", instant=True),
                          unit="litre", w=8))
        .with_panel(panel(ts(stack=True), "CO2e by namespace",
                          q(f"sum by (namespace) ({run('mlfootprint_run_co2e_grams')}) / 1000", "{{namespace}}"),
                          unit="masskg"))
        .with_panel(panel(ts(stack=True), "Operational vs embodied CO2e",
                          q(f"sum({run('mlfootprint_run_operational_co2e_grams')}) / 1000", "operational"),
                          q(f"sum({run('mlfootprint_run_embodied_co2e_grams')}) / 1000", "embodied"),
                          unit="masskg"))
        .with_panel(panel(ts(stack=True), "Water by namespace",
                          q(f"sum by (namespace) ({run('mlfootprint_run_water_liters')})", "{{namespace}}"),
                          unit="litre"))
        .with_panel(panel(ts(stack=True), "GPU-hours held by phase",
                          q(f"sum by (phase) ({run('mlfootprint_run_gpu_allocation_seconds')}) / 3600", "{{phase}}"),
                          unit="h"))
        .with_row(Row("Health"))
        .with_panel(panel(table.Panel().show_header(True), "Exporter sources down",
                          q("mlfootprint_exporter_source_up == 0", instant=True), h=6))
        .with_panel(panel(ts(), "Operator refresh duration (p50, p99)",
                          q(f"histogram_quantile(0.5, {refresh_s})", "p50 {{kind}}"),
                          q(f"histogram_quantile(0.99, {refresh_s})", "p99 {{kind}}"),
                          unit="s", h=6))
    )


def run_detail() -> Dashboard:
    sel = 'namespace="$namespace", name="$run"'
    pods = 'namespace="$namespace", pod=~"$pods"'
    return (
        board("mlfootprint-run", "mlfootprint / Run detail",
              "One TrainingRun or InferenceService: power trace with swings, footprint and budget.",
              ["mlfootprint", "energy", "carbon"],
              var("namespace", "label_values(mlfootprint_run_energy_joules, namespace)", "Namespace", multi=False),
              var("run", 'label_values(mlfootprint_run_energy_joules{namespace="$namespace"}, name)', "Run",
                  multi=False),
              # The run's pods as the exporter names them: Job/JobSet/PyTorchJob/Deployment pods carry
              # the workload's name as prefix. "All" joins the matched pods (no catch-all regex).
              var("pods", 'label_values(mlfootprint_pod_gpu_power_watts{namespace="$namespace", pod=~"$run-.*"}, pod)',
                  "Pods", all_value=None))
        .with_row(Row("Footprint"))
        .with_panel(panel(stat.Panel(), "Facility energy",
                          q(f"sum(mlfootprint_run_energy_joules{{{sel}}}) / {J_PER_KWH:g}"), unit="kwatth", w=4, h=5))
        .with_panel(panel(stat.Panel(), "IT energy",
                          q(f"sum(mlfootprint_run_it_energy_joules{{{sel}}}) / {J_PER_KWH:g}"),
                          unit="kwatth", w=4, h=5))
        .with_panel(panel(stat.Panel(), "CO2e",
                          q(f"sum(mlfootprint_run_co2e_grams{{{sel}}}) / 1000"), unit="masskg", w=4, h=5))
        .with_panel(panel(stat.Panel(), "Water",
                          q(f"sum(mlfootprint_run_water_liters{{{sel}}})"), unit="litre", w=4, h=5))
        .with_panel(panel(stat.Panel(), "GPU-hours",
                          q(f"sum(mlfootprint_run_gpu_allocation_seconds{{{sel}}}) / 3600"), unit="h", w=4, h=5))
        .with_panel(panel(gauge.Panel(), "Carbon budget used",
                          q(f"max(mlfootprint_run_budget_used_ratio{{{sel}}})"), unit="percentunit", w=4, h=5,
                          minmax=(0, 1.5), thresholds=((None, "green"), (0.8, "orange"), (1, "red"))))
        .with_row(Row("Power"))
        .with_panel(panel(ts(), "GPU power by pod (attributed)",
                          q(f"sum by (pod) (mlfootprint_pod_gpu_power_watts{{{pods}}})", "{{pod}}"),
                          q(f"sum(mlfootprint_pod_gpu_power_peak_watts{{{pods}}})", "peak"),
                          q(f"sum(mlfootprint_pod_gpu_power_min_watts{{{pods}}})", "min"),
                          unit="watt", w=16, h=9, description="Pods named <run>-...; pick them in the Pods variable."))
        .with_panel(panel(stat.Panel(), "Power swings (run total)",
                          q(f"sum(mlfootprint_run_power_swings{{{sel}}})"), w=8, h=9,
                          description="Changes larger than --swing-fraction of max power within --swing-window "
                                      "(methodology §6).",
                          thresholds=((None, "green"), (10, "orange"), (60, "red"))))
        .with_panel(panel(ts(bars=True), "Power swings per 5 min, by pod",
                          q(f"sum by (pod) (increase(mlfootprint_pod_power_swings_total{{{pods}}}[5m]))", "{{pod}}"),
                          w=24, h=7))
        .with_row(Row("Carbon trajectory"))
        .with_panel(panel(ts(), "CO2e vs budget, with 6 h projection",
                          q(f"sum(mlfootprint_run_co2e_grams{{{sel}}}) / 1000", "CO2e"),
                          q(f"sum(mlfootprint_run_budget_co2e_grams{{{sel}}}) / 1000", "budget"),
                          q(f"sum(predict_linear(mlfootprint_run_co2e_grams{{{sel}}}[1h], 21600)) / 1000",
                            "projected in 6 h"),
                          unit="masskg"))
        .with_panel(panel(ts(stack=True), "Operational vs embodied CO2e",
                          q(f"sum(mlfootprint_run_operational_co2e_grams{{{sel}}}) / 1000", "operational"),
                          q(f"sum(mlfootprint_run_embodied_co2e_grams{{{sel}}}) / 1000", "embodied"),
                          unit="masskg"))
    )


def inference_efficiency() -> Dashboard:
    sel = 'namespace=~"$namespace", name=~"$service"'
    svc = f'{sel}, kind="InferenceService"'
    return (
        board("mlfootprint-inference", "mlfootprint / Inference efficiency",
              "Energy per token, CO2e per request and breakeven against the model's training footprint.",
              ["mlfootprint", "inference", "carbon"],
              var("namespace", "label_values(mlfootprint_inference_requests, namespace)", "Namespace"),
              var("service", 'label_values(mlfootprint_inference_requests{namespace=~"$namespace"}, name)', "Service"))
        .with_row(Row("Efficiency"))
        .with_panel(panel(ts(), "Facility energy per output token",
                          q(_with_model("mlfootprint_inference_joules_per_token", sel),
                            "{{namespace}}/{{name}} ({{model}})"),
                          unit="J"))
        .with_panel(panel(ts(), "CO2e per 1,000 requests",
                          q(f"mlfootprint_inference_co2e_grams_per_request{{{sel}}} * 1000", "{{namespace}}/{{name}}"),
                          unit="massg"))
        .with_panel(panel(ts(), "Requests per second",
                          q(f"deriv(mlfootprint_inference_requests{{{sel}}}[10m])", "{{namespace}}/{{name}}"),
                          unit="reqps", description="Derivative of the operator's cumulative request count."))
        .with_panel(panel(ts(), "Facility energy per request (since the service started)",
                          q(f"sum by (namespace, name) (mlfootprint_run_energy_joules{{{svc}}}) "
                            f"/ sum by (namespace, name) (mlfootprint_inference_requests{{{sel}}})",
                            "{{namespace}}/{{name}}"),
                          unit="J"))
        .with_row(Row("Breakeven"))
        .with_panel(panel(hbars(), "Breakeven: inference CO2e / training CO2e of the model",
                          q(_with_model("mlfootprint_inference_breakeven_ratio", sel), "{{name}} ({{model}})",
                            instant=True),
                          unit="percentunit", minmax=(0, 1), thresholds=((None, "blue"), (1, "orange")),
                          description="100 % means the service has emitted as much as the model's training runs did."))
        .with_panel(panel(ts(), "Inference CO2e by service",
                          q(f"sum by (namespace, name) (mlfootprint_run_co2e_grams{{{svc}}}) / 1000",
                            "{{namespace}}/{{name}}"),
                          unit="masskg"))
    )


BOARDS: dict[str, Callable[[], Dashboard]] = {
    "cluster-overview.json": cluster_overview,
    "run-detail.json": run_detail,
    "inference-efficiency.json": inference_efficiency,
}


def render(d: Dashboard) -> str:
    model = d.build()
    for i, p in enumerate(model.panels or [], 1):
        p.id_val = i  # unique within the dashboard, as Grafana wants; the builders leave ids unset
    return json.dumps(model, cls=JSONEncoder, indent=2) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text."""
    return {name: render(make()) for name, make in BOARDS.items()}


def main() -> int:
    for name, text in render_all().items():
        (HERE / name).write_text(text)
        print(HERE / name, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

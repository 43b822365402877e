"""The operator's Prometheus metrics (docs/operator.md#metrics).

A custom collector rebuilds the per-run families from the operator's current figures on
each scrape, so deleted runs leave no stale series. Thread-safe: figures are replaced as
whole immutable tuples under a lock. The operator's own health uses prometheus_client's
standard types, as controller-runtime does: a histogram of refresh (reconcile) time, a
counter of refresh errors, writes and counter anomalies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlfootprint.crd.models import LedgerTotals

__all__ = ["OperatorMetrics", "RunFigures"]

#: Labels of the per-run series: identity only. Slow-moving labels (phase, model) live on
#: ``mlfootprint_run_info`` to join on, so a phase change does not churn every series.
RUN_LABELS = ("namespace", "name", "kind")
INFO_LABELS = ("namespace", "name", "kind", "phase", "model")

#: metric name -> (RunFigures attribute, help)
_RUN_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("mlfootprint_run_energy_joules", "facility_j", "Facility energy (IT x PUE) of the run, J."),
    ("mlfootprint_run_it_energy_joules", "it_j", "IT energy (GPU + host) of the run, J."),
    ("mlfootprint_run_co2e_grams", "co2e_g", "Total CO2e (location-based operational + embodied), g."),
    ("mlfootprint_run_operational_co2e_grams", "operational_co2e_g", "Location-based operational CO2e, g."),
    ("mlfootprint_run_embodied_co2e_grams", "embodied_co2e_g", "Embodied (manufacturing) CO2e share, g."),
    ("mlfootprint_run_water_liters", "water_l", "Total water (on-site + off-site + embodied), L."),
    ("mlfootprint_run_gpu_allocation_seconds", "gpu_allocation_s", "GPU device-seconds held."),
    ("mlfootprint_run_budget_co2e_grams", "budget_co2e_g", "CO2e budget of the run, g (only when set)."),
    ("mlfootprint_run_budget_used_ratio", "budget_used_ratio", "Largest used/budget ratio (only when a budget is set)."),
    ("mlfootprint_run_power_swings", "swings", "Power swings of the run's pods."),
    ("mlfootprint_run_completed", "completed", "1 when the run is completed and its figures frozen."),
    ("mlfootprint_inference_requests", "requests", "Requests served (InferenceService)."),
    ("mlfootprint_inference_joules_per_token", "joules_per_token", "Facility J per output token."),
    ("mlfootprint_inference_co2e_grams_per_request", "co2e_g_per_request", "Total gCO2e per request."),
    ("mlfootprint_inference_breakeven_ratio", "breakeven_ratio", "Requests served / breakeven requests."),
    ("mlfootprint_run_power_cap_recommended_watts", "power_cap_w", "Recommended GPU power cap (advice), W per GPU; only when one saves energy."),
    ("mlfootprint_run_power_cap_energy_saved_ratio", "power_cap_saving_ratio", "Estimated share of GPU energy the recommended cap saves."),
)


#: per-model lifecycle totals (summed over the runs of a model and phase, all namespaces):
#: metric name -> (RunFigures attribute, help)
_MODEL_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("mlfootprint_model_energy_joules", "facility_j", "Facility energy of the model's runs in this lifecycle phase, J."),
    ("mlfootprint_model_co2e_grams", "co2e_g", "Total CO2e of the model's runs in this lifecycle phase, g."),
    ("mlfootprint_model_water_liters", "water_l", "Total water of the model's runs in this lifecycle phase, L."),
    ("mlfootprint_model_gpu_allocation_seconds", "gpu_allocation_s", "GPU device-seconds held by the model's runs in this phase."),
    ("mlfootprint_model_runs", "", "Runs (TrainingRuns and InferenceServices) of the model in this phase."),
)


@dataclass(frozen=True)
class RunFigures:
    """One run's exported figures; None leaves the series out."""

    namespace: str
    name: str
    kind: str
    phase: str
    model: str
    facility_j: float = 0.0
    it_j: float = 0.0
    co2e_g: float = 0.0
    operational_co2e_g: float = 0.0
    embodied_co2e_g: float = 0.0
    water_l: float = 0.0
    gpu_allocation_s: float = 0.0
    budget_co2e_g: float | None = None
    budget_used_ratio: float | None = None
    swings: float = 0.0
    completed: float = 0.0
    requests: float | None = None
    joules_per_token: float | None = None
    co2e_g_per_request: float | None = None
    breakeven_ratio: float | None = None
    power_cap_w: float | None = None
    power_cap_saving_ratio: float | None = None


class OperatorMetrics(Collector):
    """Holds the latest figures and renders them on scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str, str], RunFigures] = {}
        self._factors_valid: dict[tuple[str, str], float] = {}
        self._source_up: dict[str, float] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.refresh_seconds = Histogram(
            "mlfootprint_operator_refresh_duration_seconds", "Time to refresh one resource (read, compute, write), s.",
            ["kind"], registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.refresh_errors = Counter(
            "mlfootprint_operator_refresh_errors", "Refreshes that failed (retried), by kind and error.",
            ["kind", "error"], registry=self.registry,
        )
        self.status_writes = Counter(
            "mlfootprint_operator_status_writes", "Status writes (a refresh writes only when something visible changed).",
            ["kind"], registry=self.registry,
        )
        self.status_writes_deferred = Counter(
            "mlfootprint_operator_status_writes_deferred",
            "Figure-only status writes left to a later refresh: MinInterval (--status-min-interval), "
            "ApiBusy (--status-write-concurrency writes already in flight).",
            ["kind", "reason"], registry=self.registry,
        )
        self.refresh_lag = Histogram(
            "mlfootprint_operator_refresh_lag_seconds",
            "Time between two successful refreshes of the same run (the age its figures had reached), s.",
            ["kind"], registry=self.registry, buckets=(1, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800),
        )
        self.queue = QueueCollector()
        self.registry.register(self.queue)
        self.anomalies = Counter(
            "mlfootprint_operator_counter_anomalies",
            "Counter values the ledger refused or rebased: Rollback, StaleSeries, ServingInconsistent, ServingImplausible.",
            ["anomaly"], registry=self.registry,
        )

    # -- updates
    def set_run(self, figures: RunFigures) -> None:
        with self._lock:
            self._runs[(figures.kind, figures.namespace, figures.name)] = figures

    def remove_run(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._runs.pop((kind, namespace, name), None)

    def clear_runs(self) -> None:
        """Forget every run's figures (a replica that lost the leader Lease stops exporting them)."""
        with self._lock:
            self._runs.clear()

    def run(self, kind: str, namespace: str, name: str) -> RunFigures | None:
        with self._lock:
            return self._runs.get((kind, namespace, name))

    def set_factors_valid(self, namespace: str, configmap: str, valid: bool) -> None:
        with self._lock:
            self._factors_valid[(namespace, configmap)] = 1.0 if valid else 0.0

    def set_source_up(self, source: str, up: bool) -> None:
        with self._lock:
            self._source_up[source] = 1.0 if up else 0.0

    def observe_refresh(self, kind: str, duration_s: float, *, wrote: bool) -> None:
        self.refresh_seconds.labels(kind).observe(duration_s)
        if wrote:
            self.status_writes.labels(kind).inc()

    def status_write_deferred(self, kind: str, reason: str) -> None:
        self.status_writes_deferred.labels(kind, reason).inc()

    def refresh_error(self, kind: str, error: str) -> None:
        self.refresh_errors.labels(kind, error).inc()

    def counter_anomaly(self, anomaly: str) -> None:
        self.anomalies.labels(anomaly).inc()

    # -- rendering
    def describe(self) -> Iterator[Metric]:
        """The families ``collect`` yields (no samples): lets ``/metrics?name[]=...`` skip this collector."""
        for metric, _attr, help_text in _RUN_GAUGES:
            yield GaugeMetricFamily(metric, help_text, labels=RUN_LABELS)
        for metric, _attr, help_text in _MODEL_GAUGES:
            yield GaugeMetricFamily(metric, help_text, labels=("model", "phase"))
        yield GaugeMetricFamily("mlfootprint_factors_valid", "", labels=("namespace", "configmap"))
        yield GaugeMetricFamily("mlfootprint_operator_energy_source_up", "", labels=("source",))

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            runs = list(self._runs.values())
            factors = dict(self._factors_valid)
            sources = dict(self._source_up)
        info = GaugeMetricFamily(
            "mlfootprint_run_info", "1 for every run: its lifecycle phase and model, to join the per-run series on.",
            labels=INFO_LABELS,
        )
        for r in runs:
            info.add_metric([r.namespace, r.name, r.kind, r.phase, r.model], 1.0)
        yield info
        for metric, attr, help_text in _RUN_GAUGES:
            fam = GaugeMetricFamily(metric, help_text, labels=RUN_LABELS)
            for r in runs:
                value = getattr(r, attr)
                if value is None:
                    continue
                fam.add_metric([r.namespace, r.name, r.kind], float(value))
            yield fam
        yield from _model_families(runs)
        fv = GaugeMetricFamily(
            "mlfootprint_factors_valid", "1 when the factors ConfigMap is valid, 0 when the last good factors are kept.",
            labels=("namespace", "configmap"),
        )
        for (ns, cm), v in sorted(factors.items()):
            fv.add_metric([ns, cm], v)
        yield fv
        up = GaugeMetricFamily(
            "mlfootprint_operator_energy_source_up", "1 when the last read of the energy source succeeded.",
            labels=("source",),
        )
        for s, v in sorted(sources.items()):
            up.add_metric([s], v)
        yield up


class QueueCollector(Collector):
    """The refresh queue (mlfootprint.operator.scheduler) and leadership, read on each scrape."""

    _FAMILIES = (
        ("mlfootprint_operator_runs", "runs", "Runs this operator keeps refreshed, by kind."),
        ("mlfootprint_operator_refresh_queue_depth", "overdue", "Runs whose refresh is due and not yet started."),
        ("mlfootprint_operator_oldest_refresh_age_seconds", "oldest_age_s",
         "Time since the least recently refreshed run was last refreshed (or first seen), s."),
    )

    def __init__(self) -> None:
        self.stats: Callable[[], Mapping[str, Any]] | None = None
        self.leader: Callable[[], bool] | None = None

    def describe(self) -> Iterator[Metric]:
        for name, _attr, help_text in self._FAMILIES:
            yield GaugeMetricFamily(name, help_text, labels=("kind",))
        yield GaugeMetricFamily("mlfootprint_operator_leader", "")

    def collect(self) -> Iterator[Metric]:
        stats = dict(self.stats()) if self.stats is not None else {}
        for name, attr, help_text in self._FAMILIES:
            fam = GaugeMetricFamily(name, help_text, labels=("kind",))
            for kind, st in sorted(stats.items()):
                fam.add_metric([kind], float(getattr(st, attr)))
            yield fam
        leader = GaugeMetricFamily(
            "mlfootprint_operator_leader", "1 while this replica holds the leader lease and refreshes runs (always 1 without leader election)."
        )
        leader.add_metric([], 1.0 if self.leader is None or self.leader() else 0.0)
        yield leader


def _model_families(runs: list[RunFigures]) -> Iterator[Metric]:
    """Development, training and inference totals per model (METHODOLOGY §1)."""
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for r in runs:
        t = totals.setdefault((r.model, r.phase), {})
        for _metric, attr, _help in _MODEL_GAUGES:
            t[attr] = t.get(attr, 0.0) + (float(getattr(r, attr)) if attr else 1.0)
    for metric, attr, help_text in _MODEL_GAUGES:
        fam = GaugeMetricFamily(metric, help_text, labels=("model", "phase"))
        for (model, phase), t in sorted(totals.items()):
            fam.add_metric([model, phase], t[attr])
        yield fam


def figures_from_totals(base: Mapping[str, str], totals: LedgerTotals, **extra: float | None) -> RunFigures:
    from mlfootprint.operator.status import figures

    f = figures(totals)
    return RunFigures(
        namespace=base["namespace"], name=base["name"], kind=base["kind"], phase=base["phase"], model=base["model"],
        facility_j=f.facility_j, it_j=f.it_j, co2e_g=f.co2e_g, operational_co2e_g=f.operational_co2e_g,
        embodied_co2e_g=f.embodied_co2e_g, water_l=f.water_l, gpu_allocation_s=f.gpu_allocation_s,
        swings=f.swings, **extra,  # type: ignore[arg-type]  # optional figures by name; None only where RunFigures allows it
    )

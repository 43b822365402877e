"""Prometheus collector: renders the monitor's latest snapshot on every scrape.

Families are rebuilt from the immutable snapshot each time (prometheus/client_python custom
collector pattern), so containers that disappear leave no stale series. ``describe()``
returns the families without samples so registration does not trigger a collection.
Names and labels: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal, TypedDict, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from mlfootprint import __version__
from mlfootprint.exporter.model import POWER_RATIO_BUCKETS, ContainerKey, ContainerSeries, Snapshot

MetricsLevel = Literal["node", "pod", "container"]

GPU_LABELS = ["node", "gpu_uuid", "gpu_model"]
POD_GPU_LABELS = ["node", "namespace", "pod", "container", "gpu_uuid", "gpu_model"]
POD_HOST_LABELS = ["node", "namespace", "pod", "container", "component"]
POD_ALLOC_LABELS = ["node", "namespace", "pod", "container", "gpu_model"]
POD_LABELS = ["node", "namespace", "pod", "container"]


class _Families(TypedDict, total=False):
    """The families of one scrape, in exposition order (pod_* only below metrics level node)."""

    gpu_energy: CounterMetricFamily
    gpu_power: GaugeMetricFamily
    gpu_max: GaugeMetricFamily
    gpu_idle: CounterMetricFamily
    gpu_swings: CounterMetricFamily
    host: CounterMetricFamily
    host_unattributed: CounterMetricFamily
    pod_gpu: CounterMetricFamily
    pod_host: CounterMetricFamily
    pod_alloc: CounterMetricFamily
    pod_power: GaugeMetricFamily
    pod_peak: GaugeMetricFamily
    pod_min: GaugeMetricFamily
    pod_swings: CounterMetricFamily
    pod_ratio: HistogramMetricFamily
    pod_limit: GaugeMetricFamily
    pod_start: GaugeMetricFamily
    up: GaugeMetricFamily
    duration: GaugeMetricFamily
    errors: CounterMetricFamily
    build: GaugeMetricFamily


def _metrics(f: _Families) -> Iterator[Metric]:
    yield from cast("dict[str, Metric]", f).values()  # every value of _Families is a Metric


def _families(with_pods: bool) -> _Families:
    f: _Families = {
        "gpu_energy": CounterMetricFamily(
            "mlfootprint_gpu_energy_joules", "Energy measured by the GPU.", labels=GPU_LABELS
        ),
        "gpu_power": GaugeMetricFamily("mlfootprint_gpu_power_watts", "Latest GPU power sample.", labels=GPU_LABELS),
        "gpu_max": GaugeMetricFamily(
            "mlfootprint_gpu_max_power_watts", "Enforced GPU power limit (device maximum).", labels=GPU_LABELS
        ),
        "gpu_idle": CounterMetricFamily(
            "mlfootprint_gpu_idle_energy_joules", "GPU energy attributed to no pod (idle policy).", labels=GPU_LABELS
        ),
        "gpu_swings": CounterMetricFamily(
            "mlfootprint_gpu_power_swings", "GPU power swings beyond the configured fraction of max power.", labels=GPU_LABELS
        ),
        "host": CounterMetricFamily(
            "mlfootprint_host_energy_joules",
            "Host energy by component (cpu, dram); estimated=true from the utilisation model.",
            labels=["node", "component", "estimated"],
        ),
        "host_unattributed": CounterMetricFamily(
            "mlfootprint_host_unattributed_energy_joules",
            "Host energy attributed to no pod (idle, system, processes outside pods): "
            "sum(pods) + unattributed == measured.",
            labels=["node", "component", "estimated"],
        ),
    }
    if with_pods:
        f |= {
            "pod_gpu": CounterMetricFamily(
                "mlfootprint_pod_gpu_energy_joules", "GPU energy attributed to the container.", labels=POD_GPU_LABELS
            ),
            "pod_host": CounterMetricFamily(
                "mlfootprint_pod_host_energy_joules",
                "Host energy attributed to the container by CPU-time share.",
                labels=POD_HOST_LABELS,
            ),
            "pod_alloc": CounterMetricFamily(
                "mlfootprint_pod_gpu_allocation_seconds",
                "Device-seconds of GPU held by the container (embodied share).",
                labels=POD_ALLOC_LABELS,
            ),
            "pod_power": GaugeMetricFamily(
                "mlfootprint_pod_gpu_power_watts", "GPU power attributed to the container.", labels=POD_LABELS
            ),
            "pod_peak": GaugeMetricFamily(
                "mlfootprint_pod_gpu_power_peak_watts", "Highest attributed GPU power sampled.", labels=POD_LABELS
            ),
            "pod_min": GaugeMetricFamily(
                "mlfootprint_pod_gpu_power_min_watts", "Lowest attributed GPU power sampled.", labels=POD_LABELS
            ),
            "pod_swings": CounterMetricFamily(
                "mlfootprint_pod_power_swings", "Swings of the container's attributed GPU power.", labels=POD_LABELS
            ),
            "pod_ratio": HistogramMetricFamily(
                "mlfootprint_pod_gpu_power_ratio",
                "Seconds the container's attributed GPU power spent at or below each ratio of its GPUs' "
                "power limit (time-weighted; _sum/_count is the mean ratio).",
                labels=POD_LABELS,
            ),
            "pod_limit": GaugeMetricFamily(
                "mlfootprint_pod_gpu_power_limit_watts", "Mean power limit of the GPUs the container holds, W per GPU.",
                labels=POD_LABELS,
            ),
            "pod_start": GaugeMetricFamily(
                "mlfootprint_pod_start_time_seconds",
                "Unix time the exporter started counting the container's counters; they start from "
                "zero again only when this changes.",
                labels=POD_LABELS,
            ),
        }
    f |= {
        "up": GaugeMetricFamily(
            "mlfootprint_exporter_source_up", "1 if the last read of the source succeeded.", labels=["source"]
        ),
        "duration": GaugeMetricFamily(
            "mlfootprint_exporter_source_duration_seconds", "Duration of the last read of the source.", labels=["source"]
        ),
        "errors": CounterMetricFamily(
            "mlfootprint_exporter_source_errors", "Failed calls per source and call.", labels=["source", "call"]
        ),
        "build": GaugeMetricFamily("mlfootprint_exporter_build_info", "Exporter build information.", labels=["version"]),
    }
    return f


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot], level: MetricsLevel = "container") -> None:
        self._snapshot = snapshot
        self._level = level

    def describe(self) -> Iterator[Metric]:
        yield from _metrics(_families(self._level != "node"))

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        node = snap.node
        f = _families(self._level != "node")
        for g in snap.gpus:
            labels = [node, g.uuid, g.model]
            f["gpu_energy"].add_metric(labels, g.energy_j)
            f["gpu_power"].add_metric(labels, g.power_w)
            f["gpu_max"].add_metric(labels, g.max_power_w)
            f["gpu_idle"].add_metric(labels, g.idle_energy_j)
            f["gpu_swings"].add_metric(labels, g.swings)
        estimated = "true" if snap.host_estimated else "false"
        for comp in sorted(snap.host_energy_j):
            f["host"].add_metric([node, comp, estimated], snap.host_energy_j[comp])
        for comp in sorted(snap.host_unattributed_j):
            f["host_unattributed"].add_metric([node, comp, estimated], snap.host_unattributed_j[comp])
        if self._level != "node":
            self._pods(f, snap)
        for s in snap.sources:
            f["up"].add_metric([s.source], 1.0 if s.up else 0.0)
            f["duration"].add_metric([s.source], s.duration_s)
        for (source, call), count in sorted(snap.errors.items()):
            f["errors"].add_metric([source, call], count)
        f["build"].add_metric([__version__], 1.0)
        yield from _metrics(f)

    def _pods(self, f: _Families, snap: Snapshot) -> None:
        node = snap.node
        containers = snap.containers
        if self._level == "pod":
            containers = _by_pod(snap)
        pod_gpu, pod_host, pod_alloc = f["pod_gpu"], f["pod_host"], f["pod_alloc"]
        pod_power, pod_peak, pod_min, pod_swings = f["pod_power"], f["pod_peak"], f["pod_min"], f["pod_swings"]
        pod_start, pod_ratio, pod_limit = f["pod_start"], f["pod_ratio"], f["pod_limit"]
        bounds = [*(repr(b) for b in POWER_RATIO_BUCKETS), "+Inf"]
        for c in containers:
            k = c.key
            base = [node, k.namespace, k.pod, k.container]
            pod_start.add_metric(base, c.start_unix)
            for (uuid, model), joules in c.gpu_energy_j.items():
                pod_gpu.add_metric([*base, uuid, model], joules)
            for comp, joules in c.host_energy_j.items():
                pod_host.add_metric([*base, comp], joules)
            for model, seconds in c.allocation_s.items():
                pod_alloc.add_metric([*base, model], seconds)
            if c.gpu_energy_j or c.allocation_s:
                pod_power.add_metric(base, c.power_w)
                pod_peak.add_metric(base, c.peak_power_w)
                pod_min.add_metric(base, c.min_power_w)
                pod_swings.add_metric(base, c.swings)
                if len(c.power_ratio_s) == len(bounds):
                    pod_ratio.add_metric(base, list(zip(bounds, c.power_ratio_s, strict=True)), c.power_ratio_sum)
                if c.power_limit_w > 0:
                    pod_limit.add_metric(base, c.power_limit_w)


def _by_pod(snap: Snapshot) -> tuple[ContainerSeries, ...]:
    """Sum containers into one series per pod (``container=""``) for metrics level ``pod``."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for c in snap.containers:
        m = merged.setdefault(
            (c.key.namespace, c.key.pod),
            {"gpu": {}, "host": {}, "alloc": {}, "power": 0.0, "peak": 0.0, "min": 0.0, "swings": 0, "start": c.start_unix,
             "ratio": [0.0] * len(c.power_ratio_s), "ratio_sum": 0.0, "limit": 0.0},
        )
        if len(m["ratio"]) == len(c.power_ratio_s):
            m["ratio"] = [a + b for a, b in zip(m["ratio"], c.power_ratio_s, strict=True)]
            m["ratio_sum"] += c.power_ratio_sum
        m["limit"] = max(m["limit"], c.power_limit_w)
        m["start"] = min(m["start"], c.start_unix)
        for gpu, v in c.gpu_energy_j.items():
            m["gpu"][gpu] = m["gpu"].get(gpu, 0.0) + v
        for comp, v in c.host_energy_j.items():
            m["host"][comp] = m["host"].get(comp, 0.0) + v
        for model, v in c.allocation_s.items():
            m["alloc"][model] = m["alloc"].get(model, 0.0) + v
        m["power"] += c.power_w
        m["peak"] += c.peak_power_w  # upper bound of the pod's peak
        m["min"] += c.min_power_w
        m["swings"] += c.swings
    return tuple(
        ContainerSeries(
            ContainerKey(ns, pod, ""), snap.pod_starts.get((ns, pod), m["start"]),
            m["gpu"], m["host"], m["alloc"], m["power"], m["peak"], m["min"], m["swings"],
            tuple(m["ratio"]), m["ratio_sum"], m["limit"],
        )
        for (ns, pod), m in sorted(merged.items())
    )

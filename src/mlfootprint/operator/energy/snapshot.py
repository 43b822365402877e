"""An immutable snapshot of the exporters' per-pod series, shared by every run (pure).

Built once per refresh cycle from the parsed pages of all exporters; each run then picks
its pods' series by (namespace, pod) in O(its series).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mlfootprint.operator.energy import Observation
from mlfootprint.operator.energy.parse import Sample
from mlfootprint.operator.ledger import series_key

__all__ = ["POD_METRICS", "PodSeries", "Snapshot", "build_snapshot"]

GPU_ENERGY = "mlfootprint_pod_gpu_energy_joules_total"
HOST_ENERGY = "mlfootprint_pod_host_energy_joules_total"
GPU_ALLOC = "mlfootprint_pod_gpu_allocation_seconds_total"
PEAK = "mlfootprint_pod_gpu_power_peak_watts"
MIN = "mlfootprint_pod_gpu_power_min_watts"
SWINGS = "mlfootprint_pod_power_swings_total"
POD_METRICS = (GPU_ENERGY, HOST_ENERGY, GPU_ALLOC, PEAK, MIN, SWINGS)


@dataclass
class PodSeries:
    counters: dict[str, float] = field(default_factory=dict)
    peak_w: float | None = None
    min_w: float | None = None
    gpus: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """(namespace, pod) -> the pod's series; ``taken_at_s`` is when the scrape finished."""

    pods: dict[tuple[str, str], PodSeries]
    taken_at_s: float
    ok: bool = True
    errors: tuple[str, ...] = ()

    def observe(self, namespace: str, pods: Iterable[str]) -> Observation:
        counters: dict[str, float] = {}
        peaks: list[float] = []
        mins: list[float] = []
        gpus: dict[str, str] = {}
        for pod in pods:
            ps = self.pods.get((namespace, pod))
            if ps is None:
                continue
            counters.update(ps.counters)
            gpus.update(ps.gpus)
            if ps.peak_w is not None:
                peaks.append(ps.peak_w)
            if ps.min_w is not None:
                mins.append(ps.min_w)
        return Observation(
            counters=counters, peak_w=max(peaks) if peaks else None, min_w=min(mins) if mins else None, gpus=gpus
        )


def _add_counter(ps: PodSeries, key: str, value: float) -> None:
    # The same series from two exporters cannot happen (a container runs on one node);
    # the per-pod level sums containers into container="" already, so a plain sum is right.
    ps.counters[key] = ps.counters.get(key, 0.0) + value


def build_snapshot(samples: Iterable[Sample], taken_at_s: float, *, errors: tuple[str, ...] = ()) -> Snapshot:
    pods: dict[tuple[str, str], PodSeries] = {}
    for name, labels, value in samples:
        ns = labels.get("namespace")
        pod = labels.get("pod")
        if not ns or not pod or value != value or value < 0:
            continue
        ps = pods.get((ns, pod))
        if ps is None:
            ps = pods[(ns, pod)] = PodSeries()
        c = labels.get("container", "")
        if name == GPU_ENERGY:
            uuid = labels.get("gpu_uuid", "")
            _add_counter(ps, series_key("gpu", pod, c, uuid), value)
            ps.gpus[uuid] = labels.get("gpu_model", "unknown")
        elif name == HOST_ENERGY:
            comp = labels.get("component", "cpu")
            _add_counter(ps, series_key("dram" if comp == "dram" else "cpu", pod, c), value)
        elif name == GPU_ALLOC:
            _add_counter(ps, series_key("alloc", pod, c, labels.get("gpu_model", "unknown")), value)
        elif name == SWINGS:
            _add_counter(ps, series_key("swings", pod, c), value)
        elif name == PEAK:
            ps.peak_w = value if ps.peak_w is None else max(ps.peak_w, value)
        elif name == MIN:
            ps.min_w = value if ps.min_w is None else min(ps.min_w, value)
    return Snapshot(pods=pods, taken_at_s=taken_at_s, ok=not errors, errors=errors)

"""An immutable snapshot of the exporters' per-container series, shared by every run (pure).

Built once per refresh cycle from the parsed pages of all exporters; each run then picks
its pods' series by (namespace, pod) in O(its series). Every value is validated here, at the
boundary: a non-finite, negative or absurd value is dropped and reported, never summed.
The same series from two pages (which cannot happen for one container on one node) is taken
once, at its largest value, never summed twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from mlfootprint.exporter.model import POWER_RATIO_BUCKETS
from mlfootprint.operator.energy import Observation
from mlfootprint.operator.energy.parse import Sample
from mlfootprint.operator.ledger import ContainerObs, valid_counter

__all__ = ["BUILD_INFO", "POD_METRICS", "Snapshot", "build_snapshot", "observation_from"]

GPU_ENERGY = "mlfootprint_pod_gpu_energy_joules_total"
HOST_ENERGY = "mlfootprint_pod_host_energy_joules_total"
GPU_ALLOC = "mlfootprint_pod_gpu_allocation_seconds_total"
PEAK = "mlfootprint_pod_gpu_power_peak_watts"
MIN = "mlfootprint_pod_gpu_power_min_watts"
SWINGS = "mlfootprint_pod_power_swings_total"
START = "mlfootprint_pod_start_time_seconds"
RATIO = "mlfootprint_pod_gpu_power_ratio_bucket"
LIMIT = "mlfootprint_pod_gpu_power_limit_watts"
BUILD_INFO = "mlfootprint_exporter_build_info"
POD_METRICS = (GPU_ENERGY, HOST_ENERGY, GPU_ALLOC, PEAK, MIN, SWINGS, START, RATIO, LIMIT, BUILD_INFO)
#: the power-ratio histogram's ``le`` labels, in order (the exporter's POWER_RATIO_BUCKETS, then +Inf)
RATIO_BOUNDS: dict[float, int] = {b: i for i, b in enumerate((*POWER_RATIO_BUCKETS, math.inf))}
MAX_POWER_W = 1e5


@dataclass
class ContainerSeries:
    node: str | None = None
    start: float | None = None
    gpu: dict[str, float] = field(default_factory=dict)  # uuid -> J
    gpu_models: dict[str, str] = field(default_factory=dict)
    host: dict[str, float] = field(default_factory=dict)  # cpu|dram -> J
    alloc: dict[str, float] = field(default_factory=dict)  # model -> s
    swings: float = 0.0
    peak_w: float | None = None
    min_w: float | None = None
    ratio: dict[int, float] = field(default_factory=dict)  # bucket index -> cumulative seconds
    limit_w: float | None = None

    def add_bucket(self, le: str | None, value: float) -> bool:
        """One ``_bucket`` sample; False for a bound the exporter does not use."""
        try:
            index = RATIO_BOUNDS.get(float(le or "nan"))
        except ValueError:
            index = None
        if index is None:
            return False
        self.ratio[index] = max(self.ratio.get(index, 0.0), value)
        return True

    def histogram(self) -> tuple[float, ...]:
        if len(self.ratio) != len(RATIO_BOUNDS):
            return ()
        values = tuple(self.ratio[i] for i in range(len(RATIO_BOUNDS)))
        return values if all(a <= b for a, b in zip(values, values[1:], strict=False)) else ()

    def obs(self) -> ContainerObs:
        return ContainerObs(
            node=self.node, start=self.start, gpu_j=sum(self.gpu.values()), cpu_j=self.host.get("cpu", 0.0),
            dram_j=self.host.get("dram", 0.0), swings=self.swings, alloc_s=dict(self.alloc), gpus=dict(self.gpu_models),
            power_s=self.histogram(), limit_w=self.limit_w,
        )


@dataclass(frozen=True)
class Snapshot:
    """(namespace, pod) -> container -> series; ``taken_at_s`` is when the scrape finished."""

    pods: dict[tuple[str, str], dict[str, ContainerSeries]]
    taken_at_s: float
    ok: bool = True
    errors: tuple[str, ...] = ()

    def observe(self, namespace: str, pods: Iterable[str]) -> Observation:
        containers: dict[tuple[str, str], ContainerObs] = {}
        peaks: list[float] = []
        mins: list[float] = []
        gpus: dict[str, str] = {}
        for pod in pods:
            for name, c in (self.pods.get((namespace, pod)) or {}).items():
                containers[(pod, name)] = c.obs()
                gpus.update(c.gpu_models)
                if c.peak_w is not None:
                    peaks.append(c.peak_w)
                if c.min_w is not None:
                    mins.append(c.min_w)
        return observation_from(containers, gpus, peaks, mins, complete=self.ok, problems=self.errors)


def observation_from(
    containers: dict[tuple[str, str], ContainerObs], gpus: dict[str, str], peaks: list[float], mins: list[float],
    *, complete: bool, problems: tuple[str, ...] = (), window_end_s: float | None = None,
) -> Observation:
    return Observation(
        containers=containers, complete=complete, peak_w=max(peaks) if peaks else None,
        min_w=min(mins) if mins else None, gpus=gpus, window_end_s=window_end_s, problems=problems,
    )


def build_snapshot(samples: Iterable[Sample], taken_at_s: float, *, errors: tuple[str, ...] = ()) -> Snapshot:
    pods: dict[tuple[str, str], dict[str, ContainerSeries]] = {}
    invalid: set[str] = set()
    for name, labels, value in samples:
        ns = labels.get("namespace")
        pod = labels.get("pod")
        if not ns or not pod:
            continue
        limit_ok = value <= MAX_POWER_W if name in (PEAK, MIN, LIMIT) else value < 1e11 if name == START else True
        if not (valid_counter(value) or (name == START and 0 < value < 1e11)) or not limit_ok:
            invalid.add(name)
            continue
        c = pods.setdefault((ns, pod), {}).setdefault(labels.get("container", ""), ContainerSeries())
        c.node = labels.get("node") or c.node
        if name == GPU_ENERGY:
            uuid = labels.get("gpu_uuid", "")
            c.gpu[uuid] = max(c.gpu.get(uuid, 0.0), value)
            c.gpu_models[uuid] = labels.get("gpu_model", "unknown")
        elif name == HOST_ENERGY:
            comp = "dram" if labels.get("component") == "dram" else "cpu"
            c.host[comp] = max(c.host.get(comp, 0.0), value)
        elif name == GPU_ALLOC:
            model = labels.get("gpu_model", "unknown")
            c.alloc[model] = max(c.alloc.get(model, 0.0), value)
        elif name == SWINGS:
            c.swings = max(c.swings, value)
        elif name == START:
            c.start = value if c.start is None else max(c.start, value)
        elif name == RATIO:
            if not c.add_bucket(labels.get("le"), value):
                invalid.add(name)
        elif name == LIMIT:
            c.limit_w = value
        elif name == PEAK:
            c.peak_w = value if c.peak_w is None else max(c.peak_w, value)
        elif name == MIN:
            c.min_w = value if c.min_w is None else min(c.min_w, value)
    problems = tuple(errors) + tuple(f"{n}: a value that is not a finite counter was dropped" for n in sorted(invalid))
    return Snapshot(pods=pods, taken_at_s=taken_at_s, ok=not errors, errors=problems)

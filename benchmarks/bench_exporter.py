"""Exporter benchmark: 8 GPUs, 256 containers (32 per GPU, time-sliced).

Prints measured figures and their ratio to the budget (issue 4):
  * one attribution cycle < 5 ms CPU;
  * /metrics render within 1.5x of prometheus-client rendering the same number of static series;
  * resident memory < 100 MB;
  * 100 ms power sampling + 1 s attribution < 2 % of one core.
Run: .venv/bin/python benchmarks/bench_exporter.py
"""

from __future__ import annotations

import resource
import time

from prometheus_client import Gauge, generate_latest
from prometheus_client.registry import CollectorRegistry

from mlfootprint.exporter.collector import SnapshotCollector
from mlfootprint.exporter.model import (
    ContainerInfo,
    ContainerKey,
    ErrorCounter,
    GpuProcess,
    GpuReading,
    HardwareGpuSource,
    PodListing,
)
from mlfootprint.exporter.monitor import Monitor

GPUS, CONTAINERS = 8, 256


class BenchGpus(HardwareGpuSource):
    name = "bench"

    def __init__(self) -> None:
        self.uuids = [f"GPU-{i:08d}-0000-4000-8000-000000000000" for i in range(GPUS)]
        self.energy = [1e9] * GPUS
        self.t = 0

    def read(self, now_s: float) -> list[GpuReading]:
        self.t += 1
        out = []
        for i, u in enumerate(self.uuids):
            self.energy[i] += 500_000 + 1000 * i
            procs = tuple(GpuProcess(10_000 + i * 100 + k, float((k * 7 + self.t) % 5)) for k in range(CONTAINERS // GPUS))
            out.append(GpuReading(u, "NVIDIA H100 80GB HBM3", now_s, self.energy[i], 400.0 + i, 700.0, procs))
        return out

    def read_power(self, now_s: float) -> dict[str, float]:
        self.t += 1
        return {u: 300.0 + 300.0 * ((self.t // 10 + i) % 2) for i, u in enumerate(self.uuids)}

    def close(self) -> None:
        pass


class BenchPods:
    name = "pods"

    def __init__(self, uuids: list[str]) -> None:
        self.containers = tuple(
            ContainerInfo(
                ContainerKey(f"ns{c % 16}", f"pod-{c}", "main"),
                (("nvidia.com/gpu", f"{uuids[c % GPUS]}::{c // GPUS}"),),
                cpu_time_s=0.0,
            )
            for c in range(CONTAINERS)
        )

    def list(self, now_s: float) -> PodListing:
        return PodListing(self.containers, {})

    def close(self) -> None:
        pass


def pid_map_cgroups(gpus: BenchGpus, pods: BenchPods):  # type: ignore[no-untyped-def]
    """A cgroup reader stand-in: pid -> (uid, container id) in memory."""
    mapping = {}
    infos = []
    for c, info in enumerate(pods.containers):
        uid, cid = f"uid-{c}", f"{c:064x}"
        mapping[10_000 + (c % GPUS) * 100 + c // GPUS] = (uid, cid)
        infos.append(ContainerInfo(info.key, info.device_ids, uid, cid))
    pods.containers = tuple(infos)

    class Reader:
        def identity_of_pid(self, pid: int):  # type: ignore[no-untyped-def]
            return mapping.get(pid)

        def container_cpu_seconds(self):  # type: ignore[no-untyped-def]
            return dict.fromkeys(mapping.values(), 1.0)

    return Reader()


def main() -> int:
    gpus = BenchGpus()
    pods = BenchPods(gpus.uuids)
    reader = pid_map_cgroups(gpus, pods)
    clock_t = [0.0]
    mon = Monitor("bench-node", ErrorCounter(), gpu=gpus, pods=pods, cgroups=reader, clock=lambda: clock_t[0])  # type: ignore[arg-type]
    for _ in range(3):  # warm-up
        clock_t[0] += 1.0
        mon.cycle()

    n = 200
    c0 = time.process_time()
    for _ in range(n):
        clock_t[0] += 1.0
        mon.cycle()
    cycle_ms = (time.process_time() - c0) / n * 1000

    c0 = time.process_time()
    for _ in range(n * 10):
        clock_t[0] += 0.1
        mon.sample()
    sample_ms = (time.process_time() - c0) / (n * 10) * 1000

    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: mon.snapshot))
    text = generate_latest(registry)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    static = CollectorRegistry()
    gauge = Gauge("bench_static_series", "static", ["node", "namespace", "pod", "container", "gpu_uuid", "gpu_model"], registry=static)
    for i in range(series):
        gauge.labels("bench-node", f"ns{i % 16}", f"pod-{i}", "main", gpus.uuids[i % GPUS], "NVIDIA H100 80GB HBM3").set(i)
    reps = 50
    c0 = time.perf_counter()
    for _ in range(reps):
        generate_latest(registry)
    ours_ms = (time.perf_counter() - c0) / reps * 1000
    c0 = time.perf_counter()
    for _ in range(reps):
        generate_latest(static)
    static_ms = (time.perf_counter() - c0) / reps * 1000

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    core_pct = (10 * sample_ms + cycle_ms) / 1000 * 100  # per second of wall time

    print(f"exporter benchmark: {GPUS} GPUs, {CONTAINERS} containers (time-sliced), {series} series")
    print(f"attribution cycle      {cycle_ms:8.3f} ms CPU   budget 5 ms      ratio {cycle_ms / 5:.2f}")
    print(f"power sample (100 ms)  {sample_ms:8.3f} ms CPU")
    print(f"/metrics render        {ours_ms:8.3f} ms       static {static_ms:.3f} ms  ratio {ours_ms / static_ms:.2f} (budget 1.5)")
    print(f"max resident memory    {rss_mb:8.1f} MB       budget 100 MB    ratio {rss_mb / 100:.2f}")
    print(f"CPU at 100 ms + 1 s    {core_pct:8.3f} % core  budget 2 %       ratio {core_pct / 2:.2f}")
    missed = [
        name
        for name, ratio in (
            ("attribution cycle", cycle_ms / 5),
            ("/metrics render", ours_ms / static_ms / 1.5),
            ("resident memory", rss_mb / 100),
            ("CPU share", core_pct / 2),
        )
        if ratio > 1.0
    ]
    # CPU figures are sensitive to other load on a 2-core machine: rerun on a quiet one
    # before reading a miss as a regression.
    print("status: " + ("OK" if not missed else "MISSED " + ", ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

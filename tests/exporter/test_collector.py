"""Golden metrics text, metrics levels, promtool check metrics on real output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

import mlfootprint
from mlfootprint.exporter.collector import SnapshotCollector
from mlfootprint.exporter.model import ContainerSeries, GpuSeries, Snapshot, SourceStatus

from .conftest import FIXTURES, key

GOLDEN = FIXTURES / "golden-metrics.txt"

SNAP = Snapshot(
    node="gpu-node-1",
    timestamp_s=0.0,
    gpus=(GpuSeries("GPU-0", "NVIDIA H100 80GB HBM3", 1000.0, 250.0, 612.5, 700.0, 3),),
    containers=(
        ContainerSeries(
            key("train", "trainer"),
            1_700_000_000.0,
            {("GPU-0", "NVIDIA H100 80GB HBM3"): 600.0},
            {"cpu": 40.0, "dram": 4.0},
            {"NVIDIA H100 80GB HBM3": 10.0},
            450.0,
            650.0,
            100.0,
            2,
            (0.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 8.0, 20.0, 20.0),  # 5 s at ~15 %, 15 s at ~85-95 %
            15.75,
            700.0,
        ),
        ContainerSeries(key("train", "loader"), 1_700_000_100.0, {("GPU-0", "NVIDIA H100 80GB HBM3"): 150.0}, {"cpu": 10.0}, {}, 50.0, 60.0, 10.0, 0),
    ),
    host_energy_j={"cpu": 500.0, "dram": 50.0},
    host_unattributed_j={"cpu": 450.0, "dram": 46.0},
    host_estimated=False,
    pod_starts={("ml", "train"): 1_700_000_000.0},
    sources=(SourceStatus("nvml", True, 0.0125), SourceStatus("kubelet", False, 0.5)),
    errors={("nvml", "nvmlDeviceGetPowerUsage"): 2},
)


def render(level: str = "container") -> str:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: SNAP, level))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_golden_text() -> None:
    # the build-info version is the release's (it changes with every version: not golden)
    text = render().replace(f'version="{mlfootprint.__version__}"', 'version="<version>"')
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_levels_bound_cardinality() -> None:
    node = render("node")
    assert "mlfootprint_pod_" not in node and "mlfootprint_gpu_energy_joules_total" in node
    pod = render("pod")
    assert 'container=""' in pod and "trainer" not in pod
    assert (
        'mlfootprint_pod_gpu_energy_joules_total{container="",gpu_model="NVIDIA H100 80GB HBM3",gpu_uuid="GPU-0",'
        'namespace="ml",node="gpu-node-1",pod="train"} 750.0'
    ) in pod
    # the pod-level counters keep the pod's start, not one of its containers' later ones
    assert 'mlfootprint_pod_start_time_seconds{container="",namespace="ml",node="gpu-node-1",pod="train"} 1.7e+09' in pod


def test_describe_has_no_samples() -> None:
    families = list(SnapshotCollector(lambda: SNAP).describe())
    assert families and all(not f.samples for f in families)


@pytest.mark.prometheus
def test_promtool_check_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `bash hack/tools/30-prometheus.sh` (make tools)"
    for level in ("node", "pod", "container"):
        result = subprocess.run([promtool, "check", "metrics"], input=render(level), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr

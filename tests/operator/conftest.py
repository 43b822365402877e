"""Harness for the operator's cluster tests: a fixture exporter (a local HTTP server whose
counters the test advances), serving-engine pages, and the operator run in-process."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlfootprint.devcluster import DevCluster
from tests.conftest import Kubectl
from tests.text_server import TextServer

ROOT = Path(__file__).resolve().parents[2]


class PageServer:
    """Serves text pages at paths; `set(path, text)` changes them atomically."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.lock = threading.Lock()
        self.hits = 0
        self._http = TextServer(self._page)

    def _page(self, path: str) -> str | None:
        with self.lock:
            self.hits += 1
            return self.pages.get(path)

    @property
    def base(self) -> str:
        return self._http.base

    def set(self, path: str, text: str) -> None:
        with self.lock:
            self.pages[path] = text

    def close(self) -> None:
        self._http.close()


@dataclass
class PodCounters:
    gpu_j: float = 0.0
    cpu_j: float = 0.0
    dram_j: float = 0.0
    alloc_s: float = 0.0
    swings: float = 0.0
    peak_w: float = 0.0
    min_w: float = 0.0
    gpu_model: str = "H100"
    start: float | None = None  # mlfootprint_pod_start_time_seconds (None: an exporter without it)
    power_s: tuple[float, ...] | None = None  # mlfootprint_pod_gpu_power_ratio buckets (cumulative seconds)
    limit_w: float = 700.0


@dataclass
class FixtureExporter:
    """An exporter page with per-pod counters (docs/metrics.md names and labels)."""

    server: PageServer
    path: str = "/metrics"
    pods: dict[tuple[str, str], PodCounters] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base + self.path

    def set(self, namespace: str, pod: str, **values: float) -> None:
        pc = self.pods.setdefault((namespace, pod), PodCounters())
        for k, v in values.items():
            setattr(pc, k, v)
        self.publish()

    def publish(self) -> None:
        lines = ['mlfootprint_exporter_build_info{version="test"} 1.0']
        for (ns, pod), c in sorted(self.pods.items()):
            base = f'node="kwok-gpu-0",namespace="{ns}",pod="{pod}",container=""'
            lines += [
                f'mlfootprint_pod_gpu_energy_joules_total{{{base},gpu_uuid="GPU-{pod}",gpu_model="{c.gpu_model}"}} {c.gpu_j!r}',
                f'mlfootprint_pod_host_energy_joules_total{{{base},component="cpu"}} {c.cpu_j!r}',
                f'mlfootprint_pod_host_energy_joules_total{{{base},component="dram"}} {c.dram_j!r}',
                f'mlfootprint_pod_gpu_allocation_seconds_total{{{base},gpu_model="{c.gpu_model}"}} {c.alloc_s!r}',
                f"mlfootprint_pod_power_swings_total{{{base}}} {c.swings!r}",
                f"mlfootprint_pod_gpu_power_peak_watts{{{base}}} {c.peak_w!r}",
                f"mlfootprint_pod_gpu_power_min_watts{{{base}}} {c.min_w!r}",
            ]
            if c.start is not None:
                lines.append(f"mlfootprint_pod_start_time_seconds{{{base}}} {c.start!r}")
            if c.power_s is not None:
                bounds = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0", "+Inf"]
                lines += [f'mlfootprint_pod_gpu_power_ratio_bucket{{{base},le="{le}"}} {v!r}' for le, v in zip(bounds, c.power_s, strict=True)]
                lines.append(f"mlfootprint_pod_gpu_power_limit_watts{{{base}}} {c.limit_w!r}")
        self.server.set(self.path, "\n".join(lines) + "\n")


@pytest.fixture
def pages() -> Iterator[PageServer]:
    s = PageServer()
    yield s
    s.close()


@pytest.fixture
def exporter(pages: PageServer) -> FixtureExporter:
    e = FixtureExporter(pages)
    e.publish()
    return e


@pytest.fixture(scope="session")
def crds(cluster: DevCluster) -> None:
    cluster.apply_crds(ROOT / "crds")


class OperatorHandle:
    """The operator running in a thread of the test process (kopf embedded)."""

    def __init__(self, cfg: Any, energy: Any = None) -> None:
        import kopf

        from mlfootprint.operator.cli import run_operator

        self.cfg = cfg
        self.memo = kopf.Memo()
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None

        def target() -> None:
            try:
                run_operator(cfg, stop_flag=self.stop_flag, ready_flag=self.ready_flag, energy=energy, memo=self.memo)
            except BaseException as e:  # noqa: BLE001 - surfaced by stop()/wait helpers
                self.error = e

        self.thread = threading.Thread(target=target, daemon=True, name="operator")
        self.thread.start()
        if not self.ready_flag.wait(30):
            raise RuntimeError(f"operator did not start: {self.error!r}")

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.memo.metrics_port}/metrics"

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
            return r.read().decode()

    def refreshes(self, kind: str = "TrainingRun") -> float:
        """Refreshes completed so far (the refresh histogram's count; failures included)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("mlfootprint_operator_refresh_duration_seconds_count{") and f'kind="{kind}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_refreshes(self, n: int, kind: str = "TrainingRun", timeout_s: float = 30.0) -> None:
        """Until ``n`` more refreshes of ``kind`` have run (instead of sleeping and hoping)."""
        target = self.refreshes(kind) + n
        wait_for(lambda: self.refreshes(kind) >= target, timeout_s=timeout_s, what=f"{n} more {kind} refreshes")

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        if self.thread.is_alive():
            raise RuntimeError("operator did not stop within 30 s")


@pytest.fixture
def start_operator(cluster: Any, crds: None) -> Iterator[Callable[..., OperatorHandle]]:
    from mlfootprint.operator.config import OperatorConfig

    handles: list[OperatorHandle] = []

    def start(namespace: str, *, energy: Any = None, **overrides: Any) -> OperatorHandle:
        values: dict[str, Any] = dict(
            namespace=namespace, watch_namespaces=(namespace,), kubeconfig=str(cluster.kubeconfig),
            interval_s=0.5, configmap_cache_s=0.0, metrics_port=0, metrics_addr="127.0.0.1",
            exporter_service="none", discovery=False,
        )
        values.update(overrides)
        h = OperatorHandle(OperatorConfig.model_validate(values), energy=energy)
        handles.append(h)
        return h

    yield start
    for h in handles:
        if h.thread.is_alive():
            h.stop()


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def wait_for(fn: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll until fn() returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (KeyError, TypeError, IndexError, AssertionError, subprocess.CalledProcessError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c
    return None


def make_pod(kubectl: Kubectl, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None, gpus: int = 1) -> None:
    """A pod no scheduler places (no node matches): the test drives its phase."""
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "spec": {
            "nodeSelector": {"mlfootprint.io/test": "no-such-node"},
            "containers": [{"name": "main", "image": "train:latest", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))


def set_pod_phase(kubectl: Kubectl, namespace: str, name: str, phase: str, ip: str = "10.0.0.1") -> None:
    status = {"status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}
    kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def apply(kubectl: Kubectl, namespace: str, obj: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def training_run(name: str, *, app: str, model: str = "m", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": app}}, "model": {"name": model}, **spec},
    }


def events(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return get_json(kubectl, "events", "-n", namespace)["items"]

"""The fleet simulator's pages are what the real exporter publishes (names, labels, types as
promtool and the operator's parser read them), its conservation identities hold, and its
counters advance with time."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import pytest

from mlfootprint.devcluster.fleetsim import Fleet, FleetServer, SimPod, prometheus_targets
from mlfootprint.operator.energy.parse import parse_samples
from mlfootprint.operator.energy.snapshot import POD_METRICS, build_snapshot
from tests.chart.conftest import tool_path

T0 = 1_800_000_000.0


def _fleet() -> Fleet:
    pods = [SimPod("team-a", f"p{i}", "node-0", T0 - 100.0 * (i + 1), 400.0 + 10 * i) for i in range(10)]
    return Fleet(nodes=["node-0", "node-1"], pods=pods, gpus_per_node=8, t0=T0 - 3600.0)


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, v) for n, labels, v in parse_samples(text, [name]) if n == name]


def test_pages_conserve_energy_and_advance() -> None:
    fleet = _fleet()
    t = T0 + 60.0
    page = fleet.page("node-0", t)
    assert page is not None and fleet.page("nope", t) is None
    pod_gpu = _samples(page, "mlfootprint_pod_gpu_energy_joules_total")
    gpu = {lab["gpu_uuid"]: v for lab, v in _samples(page, "mlfootprint_gpu_energy_joules_total")}
    idle = {lab["gpu_uuid"]: v for lab, v in _samples(page, "mlfootprint_gpu_idle_energy_joules_total")}
    for uuid, total in gpu.items():
        assert sum(v for lab, v in pod_gpu if lab["gpu_uuid"] == uuid) + idle[uuid] == pytest.approx(total, abs=0.01)
    for comp in ("cpu", "dram"):
        host = [v for lab, v in _samples(page, "mlfootprint_host_energy_joules_total") if lab["component"] == comp]
        un = [v for lab, v in _samples(page, "mlfootprint_host_unattributed_energy_joules_total") if lab["component"] == comp]
        pods = [v for lab, v in _samples(page, "mlfootprint_pod_host_energy_joules_total") if lab["component"] == comp]
        assert sum(pods) + un[0] == pytest.approx(host[0], abs=0.01)
    # 10 pods on 8 GPUs: pods 8 and 9 share GPUs 0 and 1 (half each), the rest hold one
    alloc = {lab["pod"]: v for lab, v in _samples(page, "mlfootprint_pod_gpu_allocation_seconds_total")}
    assert alloc["p0"] == pytest.approx(0.5 * 160.0) and alloc["p2"] == pytest.approx(300.0 + 60.0)
    later = fleet.page("node-0", t + 30.0) or ""
    snap_now = build_snapshot(list(parse_samples(page, POD_METRICS)), t)
    snap_later = build_snapshot(list(parse_samples(later, POD_METRICS)), t + 30.0)
    assert not snap_now.errors and not snap_later.errors
    now_obs, later_obs = snap_now.observe("team-a", ["p2"]), snap_later.observe("team-a", ["p2"])
    assert now_obs.containers is not None and later_obs.containers is not None
    c0, c1 = now_obs.containers[("p2", "")], later_obs.containers[("p2", "")]
    assert c1.gpu_j - c0.gpu_j == pytest.approx(420.0 * 30.0, abs=0.01) and c0.start == T0 - 300.0
    assert len(c0.power_s) == 11 and c0.limit_w == 700.0  # the power-ratio histogram, read whole


def test_pages_pass_promtool_and_are_served_per_node() -> None:
    fleet = _fleet()
    page = fleet.page("node-0", T0) or ""
    lines = page.count("\n")
    assert lines == fleet.series_per_node("node-0")
    proc = subprocess.run([tool_path("promtool"), "check", "metrics"], input=page, capture_output=True, text=True)
    # promtool parses every sample (a syntax error exits 1 naming the line); it also lints the
    # absent HELP text (exit 3), which the readers (Prometheus, the operator) do not need
    assert proc.returncode in (0, 3) and "parsing error" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    srv = FleetServer(fleet).start()
    try:
        with urllib.request.urlopen(srv.url("node-1"), timeout=5) as r:
            assert "mlfootprint_exporter_build_info" in r.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/nodes/none/metrics", timeout=5)
        assert srv.requests == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/-/requests", timeout=5) as r:
            assert r.read().decode().strip() == "1"
    finally:
        srv.close()
    targets = prometheus_targets("127.0.0.1", 9, fleet.node_names)
    assert targets[1] == {"targets": ["127.0.0.1:9"], "labels": {"__metrics_path__": "/nodes/node-1/metrics", "node": "node-1"}}

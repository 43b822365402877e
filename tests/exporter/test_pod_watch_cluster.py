"""The exporter's pod watch cache against a real kube-apiserver (issue 12 goal 1, issue 11 #7).

A dedicated control plane (so that request counts and a frozen API server disturb no other
test) with three kwok GPU nodes and one exporter process per node (`--pod-source kubernetes`,
simulated GPUs: the same watch cache as `--pod-metadata kubernetes` on a real node):

* steady state costs at most one API request per minute per exporter, counted by the API
  server itself (`apiserver_request_total` on its /metrics), while pods come and go and every
  exporter sees them through its watch;
* with the API server frozen (SIGSTOP, 15 s) the exporters keep metering and /healthz stays 200;
  after SIGCONT the watch delivers new pods again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlfootprint.devcluster import DevCluster, DevClusterError, MissingBinaryError
from mlfootprint.devcluster.cluster import free_ports
from tests.realnode.conftest import scrape, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NODES = 3
WINDOW_S = 30.0


@dataclass
class Exporter:
    node: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pods(self) -> set[str]:
        m = scrape(self.url + "/metrics")
        return {lab["pod"] for lab, _ in m.get("mlfootprint_pod_gpu_allocation_seconds_total", [])}

    def energy_j(self) -> float:
        return sum(v for _, v in scrape(self.url + "/metrics")["mlfootprint_gpu_energy_joules_total"])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    dev = DevCluster(tmp_path_factory.mktemp("watch-cluster"), gpu_nodes=NODES, die_with_parent=True)
    try:
        dev.start()
    except (MissingBinaryError, DevClusterError) as e:
        pytest.fail(f"local control plane unavailable: {e}", pytrace=False)
    try:
        yield dev
    finally:
        apiserver = dev.pids().get("kube-apiserver")
        if apiserver:
            try:
                os.kill(apiserver, signal.SIGCONT)  # never leave it frozen
            except ProcessLookupError:
                pass
        dev.stop()


@pytest.fixture(scope="module")
def exporters(api: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Exporter]]:
    logs = tmp_path_factory.mktemp("exporter-logs")
    api.kubectl("create", "namespace", "load")
    api.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "load", "--timeout=60s")
    for i in range(NODES):  # one GPU pod per node before the exporters start
        _create_pod(api, f"seed-{i}", f"kwok-gpu-{i}")
    out = []
    for i, port in enumerate(free_ports(NODES)):
        node = f"kwok-gpu-{i}"
        log = logs / f"{node}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlfootprint", "exporter", "--gpu-source", "sim", "--sim-gpus", "4",
             "--pod-source", "kubernetes", "--kubeconfig", str(api.kubeconfig), "--node-name", node,
             "--host-source", "sim", "--listen-address", "127.0.0.1", "--port", str(port),
             "--attribution-interval-s", "1", "--log-format", "json"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        out.append(Exporter(node, port, proc, log))
    try:
        for i, e in enumerate(out):
            wait_until(lambda e=e, i=i: f"seed-{i}" in e.pods(), 60, f"{e.node}'s exporter to list its pod")
        yield out
    finally:
        for e in out:
            e.proc.terminate()
        for e in out:
            try:
                e.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                e.proc.kill()


def _create_pod(api: DevCluster, name: str, node: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "load"},
           "spec": {"nodeName": node, "containers": [
               {"name": "main", "image": "example.invalid/x:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    api.kubectl("create", "-f", "-", input=json.dumps(pod))


def _pod_list_watch_requests(api: DevCluster) -> dict[str, float]:
    """Cluster-scoped LIST and WATCH requests for pods, from the API server's own metrics."""
    ctx = api._ssl_context()
    with urllib.request.urlopen(f"{api.server}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    out: dict[str, float] = {"LIST": 0.0, "WATCH": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for s in family.samples:
            lab = s.labels
            if s.name == "apiserver_request_total" and lab.get("resource") == "pods" and lab.get("scope") == "cluster" \
                    and lab.get("verb") in out and not lab.get("subresource"):
                out[lab["verb"]] += s.value
    return out


def test_steady_state_costs_at_most_one_request_per_minute_per_exporter(api: DevCluster, exporters: list[Exporter]) -> None:
    before = _pod_list_watch_requests(api)
    t0 = time.monotonic()
    n = 0
    # pods come and go on every node all window long; each exporter sees them from its watch
    while time.monotonic() - t0 < WINDOW_S:
        e = exporters[n % NODES]
        name = f"churn-{n}"
        _create_pod(api, name, e.node)
        wait_until(lambda e=e, name=name: name in e.pods(), 20, f"{e.node}'s exporter to see {name}", poll_s=0.2)
        api.kubectl("delete", "pod", name, "-n", "load", "--grace-period=0", "--force")
        n += 1
    after = _pod_list_watch_requests(api)
    minutes = (time.monotonic() - t0) / 60.0
    sent = sum(after.values()) - sum(before.values())
    budget = max(1.0, NODES * minutes)
    print(f"\n[watch] {n} pods created and seen in {minutes * 60:.0f} s; cluster-scoped pod LIST+WATCH requests: "
          f"{sent:.0f} (budget {budget:.1f}): {before} -> {after}")
    assert n >= 5
    # (the control plane's own informers watch for 5-10 minutes and count here too)
    assert sent <= budget, f"{sent:.0f} pod list/watch requests in {minutes:.2f} min from {NODES} exporters"


def test_metering_and_health_do_not_wait_on_a_frozen_api_server(api: DevCluster, exporters: list[Exporter]) -> None:
    apiserver = api.pids()["kube-apiserver"]
    energy_before = [e.energy_j() for e in exporters]
    os.kill(apiserver, signal.SIGSTOP)
    frozen_s, bad, probes = 15.0, [], 0
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < frozen_s:  # longer than /healthz's 10 s staleness limit
            # (a listing on the metering thread stalled cycles and failed /healthz after ~10 s)
            for e in exporters:
                probes += 1
                try:
                    with urllib.request.urlopen(e.url + "/healthz", timeout=2) as resp:
                        if resp.status != 200:
                            bad.append((round(time.monotonic() - t0, 1), e.node, resp.status))
                except (urllib.error.URLError, OSError) as exc:
                    bad.append((round(time.monotonic() - t0, 1), e.node, str(exc)))
            time.sleep(0.25)
        energy_frozen = [e.energy_j() for e in exporters]
    finally:
        os.kill(apiserver, signal.SIGCONT)
    assert not bad, f"/healthz failed while the API server was frozen: {bad[:10]} ({len(bad)} of {probes})"
    # metering went on: ~15 s of simulated GPU energy (4 GPUs at >= 60 W idle) per exporter
    for before, frozen, e in zip(energy_before, energy_frozen, exporters, strict=True):
        assert frozen - before > 4 * 60 * 12, f"{e.node}: counters stalled ({before} -> {frozen})"
    # and after SIGCONT the watch delivers again
    _create_pod(api, "after-thaw", exporters[0].node)
    wait_until(lambda: "after-thaw" in exporters[0].pods(), 60, "the exporter to see a pod created after the thaw")

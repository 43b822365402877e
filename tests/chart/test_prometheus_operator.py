"""The real Prometheus Operator turns the chart's ServiceMonitors into a Prometheus scrape
configuration (issue 13 #7).

The operator (v0.85.0, built from its Go module by hack/tools/60-prometheus-operator.sh) runs
as a process against the local API server, scoped to the test's namespace, with the real CRDs.
A `Prometheus` object selects the chart's ServiceMonitors by label; the operator writes the
generated configuration into the Secret `prometheus-<name>` (`prometheus.yaml.gz`), which the
test decodes and checks. No Prometheus pod needs to run for that (its StatefulSet lands on a
kwok node).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlfootprint.devcluster.cluster import free_port
from tests.chart.conftest import (
    CHART,
    PROMETHEUS_OPERATOR_VERSION,
    helm,
    monitoring_crd_files,
    prometheus_operator_dir,
)
from tests.realnode.conftest import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.helm]

REPO = Path(__file__).resolve().parents[2]


def test_version_agrees_with_the_build_module() -> None:
    go_mod = (REPO / "hack/prometheus-operator-build/go.mod").read_text()
    assert re.search(rf"github.com/prometheus-operator/prometheus-operator {re.escape(PROMETHEUS_OPERATOR_VERSION)}\b", go_mod)


@pytest.fixture(scope="module")
def all_monitoring_crds(kubectl) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    names = []
    for f in monitoring_crd_files():
        group, plural = f.stem.split("_", 1)  # monitoring.coreos.com_servicemonitors
        names.append(f"{plural}.{group}")
        kubectl("apply", "--server-side", "-f", str(f), timeout_s=120)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    try:
        yield names
    finally:
        kubectl("delete", "crd", *names, "--ignore-not-found", "--timeout=120s", check=False, timeout_s=150)


@pytest.fixture
def prometheus_operator(cluster, namespace: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    pki = cluster.state_dir / "pki"
    log = (tmp_path / "prometheus-operator.log").open("wb")
    proc = subprocess.Popen(
        [str(prometheus_operator_dir() / "operator"), f"--apiserver={cluster.server}", f"--ca-file={pki / 'ca.crt'}",
         f"--cert-file={pki / 'admin.crt'}", f"--key-file={pki / 'admin.key'}", f"--namespaces={namespace}",
         "--kubelet-service=", f"--web.listen-address=127.0.0.1:{free_port()}", "--log-level=info"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_servicemonitors_become_scrape_jobs(
    cluster, kubectl, namespace: str, all_monitoring_crds: list[str], prometheus_operator: subprocess.Popen[bytes],  # type: ignore[no-untyped-def]
) -> None:
    release = "mlf-po"
    helm("install", release, str(CHART), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
         "--set", "serviceMonitor.enabled=true", "--set-json", 'serviceMonitor.labels={"release":"kps"}',
         "--set", "prometheusRule.enabled=true", "--set-json", 'prometheusRule.labels={"release":"kps"}',
         timeout_s=180)
    try:
        monitors = kubectl("get", "servicemonitors", "-n", namespace, "-o", "name").stdout.split()
        assert sorted(monitors) == [f"servicemonitor.monitoring.coreos.com/{release}-mlfootprint-exporter",
                                    f"servicemonitor.monitoring.coreos.com/{release}-mlfootprint-operator"]
        prometheus = {
            "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "kps"},
            "spec": {"replicas": 1, "serviceMonitorSelector": {"matchLabels": {"release": "kps"}},
                     "ruleSelector": {"matchLabels": {"release": "kps"}}},
        }
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(prometheus))

        def generated() -> dict | None:  # type: ignore[type-arg]
            if prometheus_operator.poll() is not None:
                pytest.fail(f"prometheus-operator exited ({prometheus_operator.returncode})")
            out = kubectl("get", "secret", "prometheus-kps", "-n", namespace, "-o", "json", check=False)
            if out.returncode != 0:
                return None
            data = json.loads(out.stdout).get("data", {}).get("prometheus.yaml.gz")
            if not data:
                return None
            config = yaml.safe_load(gzip.decompress(base64.b64decode(data)))
            jobs = {j["job_name"] for j in config.get("scrape_configs") or []}
            return config if f"serviceMonitor/{namespace}/{release}-mlfootprint-exporter/0" in jobs else None

        config = wait_until(generated, 90, "the operator's generated scrape configuration", poll_s=1.0)
        assert isinstance(config, dict)
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        assert set(jobs) == {f"serviceMonitor/{namespace}/{release}-mlfootprint-exporter/0",
                             f"serviceMonitor/{namespace}/{release}-mlfootprint-operator/0"}
        exporter = jobs[f"serviceMonitor/{namespace}/{release}-mlfootprint-exporter/0"]
        (sd,) = exporter["kubernetes_sd_configs"]
        assert sd["role"] in ("endpoints", "endpointslice") and sd["namespaces"]["names"] == [namespace]
        # the chart's selector and port name survive into the relabelling
        relabel = json.dumps(exporter["relabel_configs"])
        assert "app_kubernetes_io_component" in relabel and "exporter" in relabel and "metrics" in relabel
        assert exporter["scrape_interval"] == "30s" and exporter["scrape_timeout"] == "10s"
        # (not `promtool check config`: Debian's Prometheus is built without Kubernetes service
        # discovery and rejects kubernetes_sd_configs as an unknown field)
        assert {"global", "scrape_configs"} <= set(config)
    finally:
        helm("uninstall", release, "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), check=False,
             timeout_s=180)

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
from tests.pki import PASSWORD, make_pki
from tests.realnode.conftest import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.helm]

REPO = Path(__file__).resolve().parents[2]


def test_version_agrees_with_the_build_module() -> None:
    go_mod = (REPO / "hack/prometheus-operator-build/go.mod").read_text()
    assert re.search(rf"github.com/prometheus-operator/prometheus-operator {re.escape(PROMETHEUS_OPERATOR_VERSION)}\b", go_mod)


@pytest.fixture(scope="module")
def all_monitoring_crds(cluster, kubectl) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    files = monitoring_crd_files()
    names = cluster.apply_crds(*files, server_side=True, timeout_s=120)
    assert len(names) == len(files)
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


def _generated_config(kubectl, namespace: str, operator: subprocess.Popen[bytes], job: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """The scrape configuration the operator generated for the `Prometheus` kps, once it has `job`."""

    def generated() -> dict | None:  # type: ignore[type-arg]
        if operator.poll() is not None:
            pytest.fail(f"prometheus-operator exited ({operator.returncode})")
        out = kubectl("get", "secret", "prometheus-kps", "-n", namespace, "-o", "json", check=False)
        if out.returncode != 0:
            return None
        data = json.loads(out.stdout).get("data", {}).get("prometheus.yaml.gz")
        if not data:
            return None
        config = yaml.safe_load(gzip.decompress(base64.b64decode(data)))
        jobs = {j["job_name"] for j in config.get("scrape_configs") or []}
        return config if job in jobs else None

    config = wait_until(generated, 90, "the operator's generated scrape configuration", poll_s=1.0)
    assert isinstance(config, dict)
    return config


KPS = {
    "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "kps"},
    "spec": {"replicas": 1, "serviceMonitorSelector": {"matchLabels": {"release": "kps"}},
             "ruleSelector": {"matchLabels": {"release": "kps"}}},
}


def test_secured_endpoints_are_scraped_with_tls_and_basic_auth(
    cluster, kubectl, namespace: str, all_monitoring_crds: list[str], prometheus_operator: subprocess.Popen[bytes],  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """ci/web-config-values.yaml: the real operator accepts both ServiceMonitors' tlsConfig and
    basicAuth (reading the scrape credentials from their Secret) and turns them into https
    jobs with a client certificate and basic auth."""
    pki = make_pki(tmp_path)
    kubectl("create", "secret", "generic", "mlfootprint-scrape-client", "-n", namespace,
            f"--from-file=ca.crt={pki.ca}", f"--from-file=tls.crt={pki.client_cert}",
            f"--from-file=tls.key={pki.client_key}", "--from-literal=username=prometheus",
            f"--from-literal=password={PASSWORD}")
    release = "mlf-web"
    helm("install", release, str(CHART), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
         "-f", str(CHART / "ci" / "web-config-values.yaml"),
         "--set", "serviceMonitor.enabled=true", "--set-json", 'serviceMonitor.labels={"release":"kps"}', timeout_s=180)
    try:
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(KPS))
        exporter_job = f"serviceMonitor/{namespace}/{release}-mlfootprint-exporter/0"
        operator_job = f"serviceMonitor/{namespace}/{release}-mlfootprint-operator/0"
        config = _generated_config(kubectl, namespace, prometheus_operator, exporter_job)
        jobs = {j["job_name"]: j for j in config["scrape_configs"]}
        assert set(jobs) == {exporter_job, operator_job}
        for name in (exporter_job, operator_job):
            job = jobs[name]
            assert job["scheme"] == "https"
            assert job["basic_auth"]["username"] == "prometheus" and job["basic_auth"]["password"]
            assert job["tls_config"]["ca_file"].endswith("ca.crt")
        exporter = jobs[exporter_job]["tls_config"]
        assert exporter["cert_file"].endswith("tls.crt") and exporter["key_file"].endswith("tls.key")
        assert exporter["server_name"] == "mlfootprint-exporter"
    finally:
        helm("uninstall", release, "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), check=False,
             timeout_s=180)


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
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(KPS))
        config = _generated_config(kubectl, namespace, prometheus_operator,
                                   f"serviceMonitor/{namespace}/{release}-mlfootprint-exporter/0")
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

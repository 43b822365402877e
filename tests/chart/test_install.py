"""`helm install` into the real local API server (etcd + kube-apiserver with RBAC): every
object the chart renders is accepted by the server's validation, the Prometheus Operator
objects follow the API the server actually serves, and the granted RBAC is what the
components need and no more (checked with `kubectl auth can-i` as their ServiceAccounts).

Images need not run (no container runtime here): the release is installed without waiting.
The server reports its real version, so the chart's `kubeVersion` constraint is checked too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import CHART, CI_VALUES, helm, monitoring_crd_files

pytestmark = [pytest.mark.cluster, pytest.mark.helm]

#: The Prometheus Operator's own CRDs (from its Go module: hack/tools/60-prometheus-operator.sh),
#: so the server validates the chart's ServiceMonitor/PodMonitor/PrometheusRule against the real
#: schemas, not only that monitoring.coreos.com/v1 is served.
MONITORING_PLURALS = ("servicemonitors", "podmonitors", "prometheusrules")


def _install(cluster, release: str, namespace: str, *values: Path) -> str:  # type: ignore[no-untyped-def]
    args = ["install", release, str(CHART), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
            "--timeout", "2m"]
    for f in values:
        args += ["-f", str(f)]
    return helm(*args, timeout_s=180).stdout


def _uninstall(cluster, release: str, namespace: str) -> None:  # type: ignore[no-untyped-def]
    helm("uninstall", release, "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), "--timeout", "2m",
         check=False, timeout_s=180)


def _can(kubectl, sa: str, namespace: str, verb: str, resource: str, where: str | None = None) -> bool:  # type: ignore[no-untyped-def]
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{namespace}:{sa}"]
    args += ["-n", where] if where else ["-A"]
    proc = kubectl(*args, check=False)
    return proc.stdout.strip() == "yes"


def _manifest(cluster, release: str, namespace: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    out = helm("get", "manifest", release, "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_install_defaults_and_least_privilege(cluster, kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    release = "mlf"
    served = kubectl("api-versions").stdout.split()
    assert "monitoring.coreos.com/v1" not in served, "run before the monitoring CRDs exist"
    _install(cluster, release, namespace)
    try:
        objs = _manifest(cluster, release, namespace)
        kinds = {o["kind"] for o in objs}
        assert {"Deployment", "DaemonSet", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                "Role", "RoleBinding", "ConfigMap"} <= kinds
        assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}, "no Prometheus Operator API here"
        # Every rendered object exists on the server as rendered (server validation passed).
        for o in objs:
            ns_args = ["-n", o["metadata"]["namespace"]] if o["metadata"].get("namespace") else []
            kubectl("get", f"{o['kind']}/{o['metadata']['name']}", *ns_args, "-o", "name")
        for crd in ("trainingruns.mlfootprint.io", "inferenceservices.mlfootprint.io"):
            kubectl("get", "crd", crd)
        dep = json.loads(kubectl("get", "deployment", f"{release}-mlfootprint-operator", "-n", namespace, "-o", "json").stdout)
        assert dep["spec"]["strategy"]["type"] == "Recreate" and dep["spec"]["replicas"] == 1
        factors = json.loads(kubectl("get", "configmap", "mlfootprint-factors", "-n", namespace, "-o", "json").stdout)
        assert "factors.yaml" in factors["data"]

        op, ex = f"{release}-mlfootprint-operator", f"{release}-mlfootprint-exporter"
        other = "default"
        # The operator: what its code calls...
        assert _can(kubectl, op, namespace, "patch", "trainingruns.mlfootprint.io/status")
        assert _can(kubectl, op, namespace, "patch", "inferenceservices.mlfootprint.io/status")
        assert _can(kubectl, op, namespace, "watch", "trainingruns.mlfootprint.io")
        assert _can(kubectl, op, namespace, "create", "trainingruns.mlfootprint.io", other)  # auto-discovery
        assert _can(kubectl, op, namespace, "watch", "pods")
        assert _can(kubectl, op, namespace, "get", "configmaps", other)
        assert _can(kubectl, op, namespace, "create", "events", other)
        assert _can(kubectl, op, namespace, "list", "endpointslices.discovery.k8s.io", namespace)
        assert _can(kubectl, op, namespace, "get", "jobs.batch", other)
        # ...and nothing else.
        assert not _can(kubectl, op, namespace, "get", "secrets", other)
        assert not _can(kubectl, op, namespace, "list", "configmaps", other)
        assert not _can(kubectl, op, namespace, "delete", "pods", other)
        assert not _can(kubectl, op, namespace, "update", "trainingruns.mlfootprint.io", other)
        assert not _can(kubectl, op, namespace, "delete", "trainingruns.mlfootprint.io", other)
        assert not _can(kubectl, op, namespace, "list", "endpointslices.discovery.k8s.io", other)
        assert not _can(kubectl, op, namespace, "patch", "deployments.apps", other)
        # The exporter (pod metadata from the API server, a watch cache): list and watch pods, nothing more.
        assert _can(kubectl, ex, namespace, "list", "pods")
        assert _can(kubectl, ex, namespace, "watch", "pods")
        assert not _can(kubectl, ex, namespace, "get", "pods", other)
        assert not _can(kubectl, ex, namespace, "get", "secrets", other)
        assert not _can(kubectl, ex, namespace, "get", "configmaps", other)
    finally:
        _uninstall(cluster, release, namespace)
    assert kubectl("get", "clusterrole", f"{release}-mlfootprint-operator", check=False).returncode != 0


@pytest.fixture(scope="module")
def monitoring_api(cluster, kubectl) -> Iterator[None]:  # type: ignore[no-untyped-def]
    files = monitoring_crd_files(MONITORING_PLURALS)
    assert len(files) == len(MONITORING_PLURALS)
    # server-side: the CRDs are too large for client-side apply's annotation
    assert len(cluster.apply_crds(*files, server_side=True)) == len(MONITORING_PLURALS)
    try:
        yield
    finally:
        for plural in MONITORING_PLURALS:
            kubectl("delete", "crd", f"{plural}.monitoring.coreos.com", "--ignore-not-found", "--timeout=60s", check=False)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_install_ci_scenario(cluster, kubectl, namespace: str, monitoring_api: None, values: Path) -> None:  # type: ignore[no-untyped-def]
    release = "mlf-" + values.stem.split("-")[0]
    _install(cluster, release, namespace, values)
    try:
        kinds = {o["kind"] for o in _manifest(cluster, release, namespace)}
        # monitoring.coreos.com/v1 is served now: "auto" and true both create the objects.
        assert {"ServiceMonitor", "PrometheusRule"} <= kinds
        names = kubectl("get", "servicemonitors,prometheusrules", "-n", namespace, "-o", "name").stdout.split()
        assert f"prometheusrule.monitoring.coreos.com/{release}-mlfootprint-alerts" in names
        status = json.loads(helm("status", release, "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
                                 "-o", "json").stdout)
        assert status["info"]["status"] == "deployed"
    finally:
        _uninstall(cluster, release, namespace)

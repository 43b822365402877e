"""The chart with two operator replicas and leader election, installed into the real API
server: the Lease RBAC is exactly what src/mlfootprint/operator/leader.py calls (create a
Lease, get/update its own, in the release namespace only), checked as the ServiceAccount."""

from __future__ import annotations

import json

import pytest

from tests.chart.conftest import CHART
from tests.chart.test_install import _can, _install, _uninstall

pytestmark = [pytest.mark.cluster, pytest.mark.helm]


def test_install_ha_grants_only_its_lease(cluster, kubectl, namespace: str) -> None:  # type: ignore[no-untyped-def]
    release = "mlf-ha"
    _install(cluster, release, namespace, CHART / "ci" / "ha-values.yaml")
    try:
        op = f"{release}-mlfootprint-operator"
        dep = json.loads(kubectl("get", "deployment", op, "-n", namespace, "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"]["type"] == "RollingUpdate"
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--leader-elect" in args and f"--leader-elect-resource-name={op}" in args
        kubectl("get", "poddisruptionbudget", op, "-n", namespace)
        other = "default"
        assert _can(kubectl, op, namespace, "create", "leases.coordination.k8s.io", namespace)
        assert _can(kubectl, op, namespace, "get", f"leases.coordination.k8s.io/{op}", namespace)
        assert _can(kubectl, op, namespace, "update", f"leases.coordination.k8s.io/{op}", namespace)
        assert not _can(kubectl, op, namespace, "update", "leases.coordination.k8s.io/kube-scheduler", namespace)
        assert not _can(kubectl, op, namespace, "delete", f"leases.coordination.k8s.io/{op}", namespace)
        assert not _can(kubectl, op, namespace, "list", "leases.coordination.k8s.io", namespace)
        assert not _can(kubectl, op, namespace, "create", "leases.coordination.k8s.io", other)
    finally:
        _uninstall(cluster, release, namespace)

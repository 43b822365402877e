"""The local control plane is a real Kubernetes API: kubectl, RBAC, scheduler, kwok GPU nodes."""

from __future__ import annotations

import json
import time

import pytest

from mlfootprint.devcluster import GPU_RESOURCE, DevCluster

pytestmark = pytest.mark.cluster


def test_cluster_is_ready_on_loopback(cluster: DevCluster) -> None:
    assert cluster.is_ready()
    assert cluster.server.startswith("https://127.0.0.1:")
    assert cluster.env() == {"KUBECONFIG": str(cluster.kubeconfig)}
    assert set(cluster.running()) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert all(cluster.running().values())


def test_kubectl_lists_and_creates_namespaces(kubectl, namespace: str) -> None:
    names = kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system", namespace} <= set(names)
    version = json.loads(kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.33.")


def test_rbac_is_enforced(kubectl, namespace: str) -> None:
    assert kubectl("auth", "can-i", "create", "pods", "-n", namespace).stdout.strip() == "yes"
    denied = kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace,
        f"--as=system:serviceaccount:{namespace}:default", check=False,
    )
    assert denied.stdout.strip() == "no"


def test_gpu_nodes_are_ready_with_allocatable_gpus(kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-l", "type=kwok", "-o", "json").stdout)["items"]
    assert len(nodes) >= 2
    for node in nodes:
        assert node["status"]["allocatable"][GPU_RESOURCE] == "8"
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"]
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"


def test_gpu_pod_is_scheduled_onto_a_kwok_node_and_runs(kubectl, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "trainer", "labels": {"app": "trainer"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "example.invalid/trainer:1", "resources": {"limits": {GPU_RESOURCE: "1"}}}
            ]
        },
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Running", "pod/trainer", "--timeout=60s")
    got = json.loads(kubectl("get", "-n", namespace, "pod/trainer", "-o", "json").stdout)
    assert got["spec"]["nodeName"].startswith("kwok-gpu-")
    assert got["status"]["podIP"]


def test_controller_manager_deletes_namespaces_and_garbage(kubectl) -> None:
    kubectl("create", "namespace", "gc-check")
    kubectl("create", "-n", "gc-check", "configmap", "owner")
    kubectl("delete", "namespace", "gc-check", "--wait=true", "--timeout=60s")
    assert kubectl("get", "namespace", "gc-check", check=False).returncode != 0


def test_more_gpu_nodes_can_be_added(cluster: DevCluster, kubectl) -> None:
    t0 = time.monotonic()
    names = cluster.create_gpu_nodes(1, gpus_per_node=4, product="NVIDIA-A100-SXM4-40GB", prefix="extra-a100-")
    assert names == ["extra-a100-0"]
    alloc = kubectl("get", "node", names[0], "-o", "jsonpath={.status.allocatable.nvidia\\.com/gpu}").stdout
    assert alloc == "4"
    assert time.monotonic() - t0 < 60
    kubectl("delete", "node", names[0])

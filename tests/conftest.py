"""Top-level test configuration shared by every suite.

Fixtures for tests against the real local control plane (`mlfootprint.devcluster`: etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback; see
docs/dev-cluster.md). Mark such tests `@pytest.mark.cluster`. If the binaries are missing
(`make tools` builds them) the fixtures FAIL with the reason, including the build error
recorded by hack/tools/10-k8s.sh; they never skip.

- `cluster` (session): a started `DevCluster` with 2 simulated GPU nodes (kwok-gpu-0/1,
  `nvidia.com/gpu: 8`, label `nvidia.com/gpu.product`); `.kubeconfig`, `.server`, `.env()`
  (`{"KUBECONFIG": ...}` for subprocesses such as helm or the operator),
  `.create_gpu_nodes(n)`. State in a pytest tmp dir; stopped at session end, and killed by
  the kernel if pytest itself dies.
- `kubectl` (session): `kubectl(*args, check=True, input=None, timeout_s=60)` runs the real
  kubectl against `cluster` and returns `subprocess.CompletedProcess[str]` (text stdout and
  stderr); with check=True a non-zero exit raises `KubectlError` (a CalledProcessError whose
  message includes stderr). Use check=False to assert on rejections.
- `namespace` (function): a fresh namespace for the test (its `default` ServiceAccount exists,
  so pods can be created at once); deleted (without waiting) afterwards.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Protocol

import pytest

from mlfootprint.devcluster import DevCluster, DevClusterError, MissingBinaryError

CLUSTER_GPU_NODES = 2


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


class Kubectl(Protocol):
    def __call__(
        self, *args: str, check: bool = True, input: str | None = None, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]: ...


#: the order in which pytest-xdist hands out work: long tests first, so no worker starts one at the end
_FIRST_MARKERS = ("realnode", "faults", "slow")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Prepare the items for `make test`'s workers (pytest-xdist, ``--dist loadgroup``): every
    real-node test goes to one worker, in its order (only one real node can run on a machine,
    and each of its modules starts its own), and the long tests come first (xdist hands out the
    biggest group first, then single tests in this order). Each worker has its own ``cluster``."""
    for item in items:
        if item.get_closest_marker("realnode"):
            item.add_marker(pytest.mark.xdist_group("realnode"))

    def rank(item: pytest.Item) -> int:
        return next((i for i, m in enumerate(_FIRST_MARKERS) if item.get_closest_marker(m)), len(_FIRST_MARKERS))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """A running local control plane shared by the whole session."""
    dev = DevCluster(tmp_path_factory.mktemp("devcluster"), gpu_nodes=CLUSTER_GPU_NODES, die_with_parent=True)
    error = None
    try:
        dev.start()
    except (MissingBinaryError, DevClusterError) as e:
        error = str(e)
    if error is not None:
        pytest.fail(f"local control plane unavailable: {error}", pytrace=False)
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(scope="session")
def kubectl(cluster: DevCluster) -> Kubectl:
    """The real kubectl, pointed at `cluster`."""
    binary = str(cluster.binaries.kubectl)

    def run(
        *args: str, check: bool = True, input: str | None = None, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        cmd = [binary, "--kubeconfig", str(cluster.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    return run


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique namespace for one test, deleted afterwards."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    # The controller-manager creates the `default` ServiceAccount; pods are refused until it exists.
    kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


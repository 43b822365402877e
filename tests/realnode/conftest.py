"""Fixtures for the real-node tests: a dev cluster with one real worker node (containerd, runc,
CNI bridge, kubelet, kube-proxy, fake GPU device plugin; `mlfootprint.devcluster.node`) and one
kwok GPU node beside it, and the exporter/operator image built here without a registry
(hack/image/build.sh) and imported into the node's containerd.

Mark tests `@pytest.mark.realnode` (and `cluster`). Like the other cluster fixtures these FAIL,
never skip, when something is missing (not root, a tool not installed, another real node
running): the message says what and what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlfootprint.devcluster import DevCluster, DevClusterError, MissingBinaryError
from mlfootprint.devcluster.node import RealNodeError

REPO = Path(__file__).resolve().parents[2]
IMAGE_REF = "ghcr.io/mlfootprint/mlfootprint:" + next(
    line.split(":", 1)[1].strip().strip('"')
    for line in (REPO / "charts/mlfootprint/Chart.yaml").read_text().splitlines()
    if line.startswith("appVersion:")
)
KWOK_NODES = 1


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    archive: Path
    build_s: float
    import_s: float


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """A dev cluster with a real worker node (and one kwok GPU node), for one test module
    (only one real node can run on a machine: modules that start their own come after)."""
    dev = DevCluster(tmp_path_factory.mktemp("realnode"), gpu_nodes=KWOK_NODES, real_node=True, die_with_parent=True)
    error = None
    t0 = time.monotonic()
    try:
        dev.start()
    except (MissingBinaryError, DevClusterError, RealNodeError) as e:
        error = str(e)
    if error is not None:
        pytest.fail(f"real node unavailable: {error}", pytrace=False)
    print(f"\n[realnode] dev cluster with a real node ready in {time.monotonic() - t0:.1f} s")
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """`make image`'s build (hack/image/build.sh) of this tree, into a temp archive."""
    out = tmp_path_factory.mktemp("image") / "mlfootprint.oci.tar"
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "hack/image/build.sh"), str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"image build failed ({proc.returncode}):\n{proc.stderr[-3000:]}", pytrace=False)
    return BuiltImage(IMAGE_REF, out, time.monotonic() - t0, 0.0)


@pytest.fixture(scope="module")
def node_image(real_cluster: DevCluster, built_image: BuiltImage) -> BuiltImage:
    """The image, imported into the real node's containerd (pods use imagePullPolicy Never)."""
    t0 = time.monotonic()
    real_cluster.import_image(built_image.archive)
    return BuiltImage(built_image.ref, built_image.archive, built_image.build_s, time.monotonic() - t0)


def kubectl_json(cluster: DevCluster, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.5) -> object:
    """Poll until `predicate()` is truthy; its value is returned. Fails with `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 (shown on timeout)
            last = e
        else:
            if last:
                return last
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def scrape(url: str, timeout_s: float = 5.0) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text from `url` -> sample name -> [(labels, value)]."""
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def host_pids_of_pod(uid: str) -> set[int]:
    """Host PIDs of every process in the pod's cgroups (cgroupfs driver: .../pod<uid>/...)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"pod{uid}" in (proc / "cgroup").read_text():
                pids.add(int(proc.name))
        except OSError:
            continue
    return pids


def pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def is_root() -> bool:
    return os.geteuid() == 0


def clean_host_state() -> dict[str, object]:
    """:func:`host_state` after cleaning up a node a killed run left behind (as the next start
    would): the baseline a test compares with, so it sees what *its* node leaves."""
    from mlfootprint.devcluster.cluster import reclaim_stale_real_node  # noqa: PLC0415

    reclaim_stale_real_node()
    return host_state()


def host_state() -> dict[str, object]:
    """What a real node may leave on the host outside its state directory."""
    from mlfootprint.devcluster import node as rn  # noqa: PLC0415

    def exists(*paths: str) -> dict[str, bool]:
        return {p: Path(p).exists() for p in paths}

    chains = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    shims = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _cmd(p).startswith("containerd-shim")]
    return {
        "mounts": sorted({line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}),
        "cgroups": sorted(str(c) for c in rn.kubepods_cgroups()),
        "links": sorted(p.name for p in Path("/sys/class/net").iterdir()),
        "iptables": sorted(line for line in chains.splitlines() if "KUBE" in line or "CNI" in line or "mlf" in line),
        "paths": exists("/var/lib/kubelet", "/run/containerd", "/var/lib/cni", "/var/log/containers",
                        "/run/mlfootprint", "/usr/libexec/kubernetes", "/var/lib/mlfootprint", "/run/netns"),
        "kernel": rn.read_kernel_settings(),
        "shims": shims,
    }


def _cmd(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").rsplit("/", 1)[-1]
    except OSError:
        return ""

"""The real-node pod path end to end against a real kube-apiserver (marker ``cluster``).

``--pod-source kubelet --pod-metadata kubernetes``: the kubelet pod-resources API (a real gRPC
PodResourcesLister on a temp unix socket) says which containers hold which GPU replicas but
carries no pod UIDs or container IDs; the exporter lists this node's pods from the API server
(kwok node ``kwok-gpu-0``) to get ``metadata.uid`` and ``status.containerStatuses[].containerID``
and links the GPU processes NVML reports (a fake ``pynvml`` module) to containers through
fixture ``/proc/<pid>/cgroup`` files (cgroup v1/v2; containerd, CRI-O, docker) and their CPU
time through a fixture cgroup tree.

kwok fills pod status but sets no ``containerID``, so the pods carry
``kwok.x-k8s.io/status: custom`` (kwok leaves them alone) and the test writes their status,
container IDs included, through the status subresource — as ``mlfootprint.demo`` does.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import grpc
import pynvml
import pytest

import mlfootprint.exporter.app as exporter_app
from mlfootprint.exporter.app import build_monitor, build_registry
from mlfootprint.exporter.config import load_config
from mlfootprint.exporter.model import ContainerKey, ErrorCounter
from mlfootprint.exporter.podresources import api_pb2, api_pb2_grpc
from mlfootprint.exporter.pods import KubeletPodSource, KubernetesPods
from tests.exporter.conftest import FIXTURES, FakeClock
from tests.exporter.test_nvml import FakeNvml

NODE = "kwok-gpu-0"
OTHER_NODE = "kwok-gpu-1"
SHARED = "GPU-0"  # time-sliced into 4 replicas; FakeNvml names its GPUs GPU-<index>
UNALLOCATED = "GPU-1"
REPLICAS = 4
GPU_RESOURCE = "nvidia.com/gpu"
KWOK_CUSTOM = {"kwok.x-k8s.io/status": "custom"}

# PID -> SM utilisation (%) on the shared GPU. The trainer runs two processes (one in a
# nested cgroup below its container's), the serving pod a server and a restartable init
# container (sidecar) holding a replica too; 4400 is a host process outside any pod.
TRAINER_PIDS = {4100: 45.0, 4101: 15.0}
SERVER_PIDS = {4200: 20.0}
SIDECAR_PIDS = {4300: 10.0}
HOST_PIDS = {4400: 5.0}
CYCLES = 4  # the first is a baseline (no energy)
DT_S = 1.0
TRAINER_CPU_S, SERVER_CPU_S, SIDECAR_CPU_S = 2.0, 1.0, 0.5  # CPU seconds per interval
HOST_BUSY_S = 10.0  # busy CPU seconds of the whole host per interval (/proc/stat)


# ----------------------------------------------------------------- fakes


class SharedGpuNvml(FakeNvml):
    """FakeNvml whose GPU 0 runs ``util_by_pid`` (time-sliced) and GPU 1 nothing; the energy
    counters advance with :meth:`advance` at the fake's constant power."""

    def __init__(self, util_by_pid: dict[int, float]) -> None:
        super().__init__()
        self.util_by_pid = util_by_pid

    def advance(self, dt_s: float) -> None:
        for i, mw in enumerate(self.power_mw):
            self.energy_mj[i] += mw * dt_s  # mW * s = mJ

    def nvmlDeviceGetComputeRunningProcesses(self, h):  # type: ignore[no-untyped-def]  # noqa: N802
        return [SimpleNamespace(pid=p, usedGpuMemory=1) for p in self.util_by_pid] if h[1] == 0 else []

    def nvmlDeviceGetProcessUtilization(self, h, ts):  # type: ignore[no-untyped-def]  # noqa: N802
        if h[1] != 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return [
            SimpleNamespace(pid=p, timeStamp=ts + 1, smUtil=u, memUtil=0, encUtil=0, decUtil=0)
            for p, u in self.util_by_pid.items()
        ]


class Lister(api_pb2_grpc.PodResourcesListerServicer):
    """pod-resources v1 with a fixed assignment (namespace, pod, container) -> device ids."""

    def __init__(self, assignment: dict[ContainerKey, list[str]], allocatable: list[str]) -> None:
        self.assignment = assignment
        self.allocatable = allocatable

    def List(self, request, context):  # noqa: N802
        pods: dict[tuple[str, str], list[api_pb2.ContainerResources]] = {}
        for key, ids in self.assignment.items():
            pods.setdefault((key.namespace, key.pod), []).append(
                api_pb2.ContainerResources(
                    name=key.container, devices=[api_pb2.ContainerDevices(resource_name=GPU_RESOURCE, device_ids=ids)]
                )
            )
        return api_pb2.ListPodResourcesResponse(
            pod_resources=[api_pb2.PodResources(namespace=ns, name=pod, containers=cs) for (ns, pod), cs in pods.items()]
        )

    def GetAllocatableResources(self, request, context):  # noqa: N802
        return api_pb2.AllocatableResourcesResponse(
            devices=[api_pb2.ContainerDevices(resource_name=GPU_RESOURCE, device_ids=self.allocatable)]
        )


def serve_pod_resources(directory: Path, lister: Lister) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(lister, server)
    server.add_insecure_port(f"unix://{directory / 'kubelet.sock'}")
    server.start()
    return server


# ----------------------------------------------------------------- node layouts


@dataclass(frozen=True)
class Layout:
    """How a node's runtime and cgroup driver name a container's cgroup."""

    runtime: str  # containerStatuses[].containerID scheme
    cgroup_v2: bool

    def container_dir(self, uid: str, cid: str) -> str:
        if self.runtime == "containerd":  # cgroup v2, systemd driver
            u = uid.replace("-", "_")
            return (
                f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{cid}.scope"
            )
        leaf = f"crio-{cid}" if self.runtime == "cri-o" else cid  # cgroup v1, cgroupfs driver
        return f"/kubepods/burstable/pod{uid}/{leaf}"

    def proc_cgroup(self, uid: str, cid: str, nested: bool) -> str:
        path = self.container_dir(uid, cid) + ("/worker" if nested else "")
        if self.cgroup_v2:
            return f"0::{path}\n"
        return f"12:cpu,cpuacct:{path}\n11:memory:{path}\n1:name=systemd:{path}\n"

    def write_cpu(self, cgroup_root: Path, uid: str, cid: str, cpu_s: float) -> None:
        if self.cgroup_v2:
            d = cgroup_root / self.container_dir(uid, cid).lstrip("/")
            d.mkdir(parents=True, exist_ok=True)
            (d / "cpu.stat").write_text(f"usage_usec {round(cpu_s * 1e6)}\nuser_usec 0\nsystem_usec 0\n")
        else:
            d = cgroup_root / "cpu,cpuacct" / self.container_dir(uid, cid).lstrip("/")
            d.mkdir(parents=True, exist_ok=True)
            (d / "cpuacct.usage").write_text(f"{round(cpu_s * 1e9)}\n")


LAYOUTS = {
    "containerd-cgroup-v2-systemd": Layout("containerd", True),
    "cri-o-cgroup-v1-cgroupfs": Layout("cri-o", False),
    "docker-cgroup-v1-cgroupfs": Layout("docker", False),
}


# ----------------------------------------------------------------- pods on the API server


def pod_manifest(name: str, node: str, containers: list[str], sidecars: list[str] = ()) -> dict:  # type: ignore[assignment]
    spec: dict = {
        "nodeName": node,
        "containers": [
            {"name": c, "image": f"example.invalid/{c}:1", "resources": {"limits": {GPU_RESOURCE: "1"}}} for c in containers
        ],
    }
    if sidecars:
        spec["initContainers"] = [
            {"name": c, "image": f"example.invalid/{c}:1", "restartPolicy": "Always"} for c in sidecars
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": KWOK_CUSTOM}, "spec": spec}


def running_status(ids: dict[str, str], init_ids: dict[str, str], runtime: str) -> dict:
    def status(name: str, cid: str) -> dict:
        return {
            "name": name,
            "image": f"example.invalid/{name}:1",
            "imageID": f"example.invalid/{name}@sha256:{'0' * 64}",
            "containerID": f"{runtime}://{cid}",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
        }

    return {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [status(n, c) for n, c in ids.items()],
            "initContainerStatuses": [status(n, c) for n, c in init_ids.items()],
        }
    }


def cid() -> str:
    return secrets.token_hex(32)  # 64 hex digits, like containerd/CRI-O/docker IDs


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    (root / "meminfo").write_text((FIXTURES / "proc" / "meminfo").read_text())
    (root / "1").mkdir()
    (root / "1" / "cgroup").write_text("0::/init.scope\n")
    return root


@pytest.fixture
def kubelet_dir(tmp_path: Path) -> Iterator[tuple[Path, Lister]]:
    directory = tmp_path / "pod-resources"
    directory.mkdir()
    lister = Lister({}, [f"{SHARED}::{i}" for i in range(REPLICAS)] + [UNALLOCATED])
    server = serve_pod_resources(directory, lister)
    yield directory, lister
    server.stop(grace=None)


def write_proc_stat(proc_root: Path, busy_s: float, idle_s: float) -> None:
    hz = 100  # USER_HZ
    per = f"{round(busy_s * hz / 2)} 0 0 {round(idle_s * hz / 2)} 0 0 0 0 0 0"
    (proc_root / "stat").write_text(
        f"cpu  {round(busy_s * hz)} 0 0 {round(idle_s * hz)} 0 0 0 0 0 0\ncpu0 {per}\ncpu1 {per}\nintr 0\n"
    )


# ----------------------------------------------------------------- the test


@pytest.mark.cluster
@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_shared_gpu_energy_split_between_api_server_pods(
    layout_name: str,
    cluster,
    kubectl,
    namespace: str,
    kubelet_dir: tuple[Path, Lister],
    proc_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layout = LAYOUTS[layout_name]
    ns = namespace
    # -- pods on the kwok node (and one on the other node, which must not be read)
    ids = {"trainer": cid(), "server": cid(), "log-sidecar": cid(), "elsewhere": cid()}
    manifests = [
        pod_manifest("train", NODE, ["trainer"]),
        pod_manifest("serve", NODE, ["server"], sidecars=["log-sidecar"]),
        pod_manifest("other", OTHER_NODE, ["elsewhere"]),
    ]
    kubectl("create", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
    statuses = {
        "train": running_status({"trainer": ids["trainer"]}, {}, layout.runtime),
        "serve": running_status({"server": ids["server"]}, {"log-sidecar": ids["log-sidecar"]}, layout.runtime),
        "other": running_status({"elsewhere": ids["elsewhere"]}, {}, layout.runtime),
    }
    for pod, status in statuses.items():
        kubectl("patch", "-n", ns, f"pod/{pod}", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    got = json.loads(kubectl("get", "-n", ns, "pods", "-o", "json").stdout)["items"]
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in got}
    for p in got:  # the API server kept what the status subresource was given
        assert p["status"]["phase"] == "Running"
        assert all(s["containerID"].startswith(f"{layout.runtime}://") for s in p["status"]["containerStatuses"])

    trainer = ContainerKey(ns, "train", "trainer")
    server = ContainerKey(ns, "serve", "server")
    sidecar = ContainerKey(ns, "serve", "log-sidecar")
    owners = {trainer: ("train", "trainer"), server: ("serve", "server"), sidecar: ("serve", "log-sidecar")}

    # -- kubelet pod-resources: each container holds one replica of the shared GPU
    directory, lister = kubelet_dir
    lister.assignment = {trainer: [f"{SHARED}::0"], server: [f"{SHARED}::1"], sidecar: [f"{SHARED}::2"]}

    # -- /proc/<pid>/cgroup and the containers' CPU time
    cgroup_root = tmp_path / "cgroup"
    pids = {trainer: TRAINER_PIDS, server: SERVER_PIDS, sidecar: SIDECAR_PIDS}
    for key, by_pid in pids.items():
        pod, container = owners[key]
        for i, pid in enumerate(by_pid):
            (proc_root / str(pid)).mkdir()
            (proc_root / str(pid) / "cgroup").write_text(layout.proc_cgroup(uids[pod], ids[container], nested=i > 0))
    for pid in HOST_PIDS:
        (proc_root / str(pid)).mkdir()
        (proc_root / str(pid) / "cgroup").write_text("0::/system.slice/nvidia-persistenced.service\n")
    cpu_rate = {trainer: TRAINER_CPU_S, server: SERVER_CPU_S, sidecar: SIDECAR_CPU_S}

    def write_counters(cycle: int) -> None:
        for key, rate in cpu_rate.items():
            pod, container = owners[key]
            layout.write_cpu(cgroup_root, uids[pod], ids[container], 100.0 + rate * cycle)
        write_proc_stat(proc_root, 1000.0 + HOST_BUSY_S * cycle, 5000.0 + HOST_BUSY_S * cycle)

    # -- NVML: the fake module stands in for pynvml wherever the exporter imports it
    nvml = SharedGpuNvml({**TRAINER_PIDS, **SERVER_PIDS, **SIDECAR_PIDS, **HOST_PIDS})
    monkeypatch.setitem(sys.modules, "pynvml", nvml)

    cfg = load_config(
        flags={
            "node_name": NODE,
            "gpu_source": "nvml",
            "host_source": "model",
            "pod_source": "kubelet",
            "pod_metadata": "kubernetes",
            "kubeconfig": cluster.kubeconfig,
            "pod_resources_dir": directory,
            "procfs_root": proc_root,
            "cgroup_root": cgroup_root,
        }
    )
    clock = FakeClock()
    errors = ErrorCounter()
    # the cycles below run back to back: the first pod list must be in before them, however
    # slow the API server is on a loaded machine (the exporter waits 5 s, then goes on)
    monkeypatch.setattr(exporter_app, "POD_CACHE_SYNC_S", 60.0)
    monitor = build_monitor(cfg, errors=errors, clock=clock)
    try:
        for cycle in range(CYCLES):
            if cycle:
                clock.advance(DT_S)
                nvml.advance(DT_S)
            write_counters(cycle)
            snap = monitor.cycle()
    finally:
        monitor.close()  # the pod watch thread too

    # -- every source answered, nothing failed (metadata included)
    assert {s.source: s.up for s in snap.sources} == {"kubelet": True, "nvml": True, "host": True}
    assert errors.counts() == {}

    # -- the shared GPU: split by SM utilisation, the host process's and the rest idle
    gpus = {g.uuid: g for g in snap.gpus}
    measured_j = (CYCLES - 1) * DT_S * nvml.power_mw[0] / 1000.0
    assert gpus[SHARED].energy_j == pytest.approx(measured_j)
    by_container = {c.key: c for c in snap.containers}
    assert set(by_container) == {trainer, server, sidecar}  # the other node's pod is not here
    model = gpus[SHARED].model
    gpu_j = {k: by_container[k].gpu_energy_j.get((SHARED, model), 0.0) for k in by_container}
    util = {k: sum(v.values()) for k, v in pids.items()}
    for key, pct in util.items():
        assert gpu_j[key] == pytest.approx(measured_j * pct / 100.0), key
    per_pod = {"train": gpu_j[trainer], "serve": gpu_j[server] + gpu_j[sidecar]}
    assert per_pod["train"] / per_pod["serve"] == pytest.approx(
        sum(TRAINER_PIDS.values()) / (sum(SERVER_PIDS.values()) + sum(SIDECAR_PIDS.values()))
    )
    idle_j = gpus[SHARED].idle_energy_j
    assert idle_j == pytest.approx(measured_j * (1 - sum(util.values()) / 100.0))
    assert math.fsum(gpu_j.values()) + idle_j == pytest.approx(measured_j, rel=1e-12)  # attributed + idle == measured

    # -- the unallocated GPU: all idle
    measured_1 = (CYCLES - 1) * DT_S * nvml.power_mw[1] / 1000.0
    assert gpus[UNALLOCATED].energy_j == pytest.approx(measured_1)
    assert gpus[UNALLOCATED].idle_energy_j == pytest.approx(measured_1)
    assert not any(u == UNALLOCATED for c in snap.containers for u, _m in c.gpu_energy_j)

    # -- allocation: a quarter of the GPU each, for the measured intervals
    for key in by_container:
        assert by_container[key].allocation_s[model] == pytest.approx((CYCLES - 1) * DT_S / REPLICAS)

    # -- host energy by share of the host's CPU capacity (cgroup CPU time found through the
    # same identities); /proc/stat moves by HOST_BUSY_S busy and as many idle seconds per cycle
    capacity_s = 2 * HOST_BUSY_S
    assert sum(cpu_rate.values()) <= HOST_BUSY_S  # the containers' time fits in the busy time
    for key, rate in cpu_rate.items():
        for comp, total_j in snap.host_energy_j.items():
            assert total_j > 0
            assert by_container[key].host_energy_j[comp] == pytest.approx(total_j * rate / capacity_s), (key, comp)
    for comp, total_j in snap.host_energy_j.items():  # pods + unattributed == measured
        pods_j = math.fsum(c.host_energy_j.get(comp, 0.0) for c in snap.containers)
        assert pods_j + snap.host_unattributed_j[comp] == pytest.approx(total_j, rel=1e-12)

    # -- and the per-pod series render with the API server's names
    text = "\n".join(
        f"{m.name} {s.labels} {s.value}" for m in build_registry(monitor, cfg).collect() for s in m.samples
    )
    assert f"'namespace': '{ns}', 'pod': 'train', 'container': 'trainer', 'gpu_uuid': '{SHARED}'" in text


@pytest.mark.cluster
def test_node_pods_metadata_from_the_api_server(cluster, kubectl, namespace: str) -> None:
    """KubernetesPods (the watch cache) .metadata(): this node's live pods only; containerID
    scheme stripped; restartable init containers (sidecars, which pod-resources lists) included."""
    ns = namespace
    a, b, s, o = cid(), cid(), cid(), cid()
    manifests = [
        pod_manifest("live", NODE, ["main"], sidecars=["proxy"]),
        pod_manifest("done", NODE, ["main"]),
        pod_manifest("away", OTHER_NODE, ["main"]),
        pod_manifest("starting", NODE, ["main"]),
    ]
    kubectl("create", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
    patches = {
        "live": running_status({"main": a}, {"proxy": s}, "containerd"),
        "done": running_status({"main": b}, {}, "containerd"),
        "away": running_status({"main": o}, {}, "containerd"),
    }
    patches["done"]["status"]["phase"] = "Succeeded"
    for pod, status in patches.items():
        kubectl("patch", "-n", ns, f"pod/{pod}", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    uids = {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in json.loads(kubectl("get", "-n", ns, "pods", "-o", "json").stdout)["items"]
    }
    cache = KubernetesPods(NODE, cluster.kubeconfig).start()
    try:
        assert cache.wait_synced(30)
        meta = {k: v for k, v in cache.metadata().items() if k.namespace == ns}
    finally:
        cache.close()
    assert meta == {
        ContainerKey(ns, "live", "main"): (uids["live"], a),
        ContainerKey(ns, "live", "proxy"): (uids["live"], s),
        ContainerKey(ns, "starting", "main"): (uids["starting"], None),  # no containerID yet
    }


def test_metadata_failure_keeps_the_last_good_metadata(tmp_path: Path, kubelet_dir: tuple[Path, Lister]) -> None:
    """An API-server blip must not unlink every container for that interval (its shared-GPU
    energy would go to idle): the watch cache keeps the last pods it knew, and the kubelet
    source reads them without waiting on the API server."""
    from tests.exporter.test_pod_watch import FakeApi, pod_json

    directory, lister = kubelet_dir
    key = ContainerKey("ml", "train", "trainer")
    lister.assignment = {key: [f"{SHARED}::0"]}
    api = FakeApi([pod_json("ml", "train", "uid-1", {"trainer": "c" * 64})])
    api.fail_watch = TimeoutError("API server timed out")
    cache = KubernetesPods(NODE, api=api, max_backoff_s=0.05).start()
    errors = ErrorCounter()
    src = KubeletPodSource(errors, directory, pods=cache)
    try:
        assert cache.wait_synced(10)
        assert _wait(lambda: cache.errors >= 2)  # the watch keeps failing...
        for _ in range(2):
            (info,) = src.list(0.0).containers
            assert (info.pod_uid, info.container_id) == ("uid-1", "c" * 64)  # ...the pods stay
    finally:
        src.close()
        cache.close()
    assert errors.counts() == {}


def _wait(predicate, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_nested_cgroup_belongs_to_its_container(layout_name: str) -> None:
    """A process in a cgroup made inside the container (systemd, Ray, docker-in-docker) is
    the container's; the pod cgroup itself and runtime helpers (conmon) are nobody's."""
    from mlfootprint.exporter.cgroups import parse_cgroup_path, parse_proc_cgroup  # noqa: PLC0415

    layout = LAYOUTS[layout_name]
    uid, c = "0a1b2c3d-0000-4000-8000-00000000000f", cid()
    for nested in (False, True):
        assert parse_proc_cgroup(layout.proc_cgroup(uid, c, nested)) == (uid, c)
    deeper = layout.container_dir(uid, c) + "/a/b.scope/c"
    assert parse_cgroup_path(deeper) == (uid, c)
    pod_dir = layout.container_dir(uid, c).rsplit("/", 1)[0]
    assert parse_cgroup_path(pod_dir) is None
    assert parse_cgroup_path(pod_dir + f"/crio-conmon-{c}.scope") is None

"""The fake GPU device plugin (development tooling) and the real node's pure configuration.

The plugin speaks the kubelet's device plugin API v1beta1 over real gRPC unix sockets: here a
stand-in kubelet `Registration` server checks what it registers and re-registers after a
"kubelet restart" (a new kubelet.sock); the real kubelet is in tests/realnode.
"""

from __future__ import annotations

import errno
import filecmp
import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from mlfootprint.devcluster import node as rn
from mlfootprint.devcluster.deviceplugin import FakeGpuPlugin, api_pb2, api_pb2_grpc, simulated_uuids
from mlfootprint.devcluster.deviceplugin.regenerate import PACKAGE_DIR, regenerate
from mlfootprint.exporter.gpu_sim import SimulatedGpuSource
from mlfootprint.exporter.model import ErrorCounter

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    out = regenerate(tmp_path)
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        assert filecmp.cmp(out / name, PACKAGE_DIR / name, shallow=False), f"{name} is stale: run the regenerate module"


def test_device_ids_are_the_nodes_simulated_gpu_uuids() -> None:
    uuids = simulated_uuids("gpu-node-7", 4, seed=3)
    assert uuids == SimulatedGpuSource(ErrorCounter(), count=4, seed=3, node="gpu-node-7").uuids
    assert len(set(uuids)) == 4 and all(u.startswith("GPU-") for u in uuids)
    assert simulated_uuids("gpu-node-8", 4, seed=3) != uuids


class Registrar(api_pb2_grpc.RegistrationServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Register(self, request, context):  # noqa: N802
        self.requests.append(request)
        return api_pb2.Empty()


class Kubelet:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.registrar = Registrar()
        self.server: grpc.Server | None = None

    def start(self) -> None:
        # a restarted kubelet wipes the directory (the plugin's socket too) and makes a new socket
        for f in self.directory.glob("*.sock"):
            f.unlink()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_RegistrationServicer_to_server(self.registrar, self.server)
        self.server.add_insecure_port(f"unix://{self.directory / 'kubelet.sock'}")
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait()


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[tuple[FakeGpuPlugin, Kubelet]]:
    kubelet = Kubelet(tmp_path)
    kubelet.start()
    p = FakeGpuPlugin(simulated_uuids("n1", 3), tmp_path, poll_s=0.05)
    thread = threading.Thread(target=p.run, daemon=True)
    thread.start()
    yield p, kubelet
    p.stop_event.set()
    thread.join(10)
    kubelet.stop()


def _until(pred: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``pred`` until it holds or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


def _wait_registrations(kubelet: Kubelet, n: int, timeout_s: float = 10.0) -> None:
    if not _until(lambda: len(kubelet.registrar.requests) >= n, timeout_s):
        pytest.fail(f"expected {n} registrations, got {len(kubelet.registrar.requests)}")


def test_registers_serves_and_allocates_like_nvidias_plugin(plugin: tuple[FakeGpuPlugin, Kubelet]) -> None:
    p, kubelet = plugin
    _wait_registrations(kubelet, 1)
    req = kubelet.registrar.requests[0]
    assert (req.version, req.resource_name, req.endpoint) == ("v1beta1", "nvidia.com/gpu", p.endpoint)
    assert req.options.get_preferred_allocation_available
    with grpc.insecure_channel(f"unix://{p.socket}") as channel:
        stub = api_pb2_grpc.DevicePluginStub(channel)
        stream = stub.ListAndWatch(api_pb2.Empty(), timeout=5)
        first = next(stream)
        assert [(d.ID, d.health) for d in first.devices] == [(u, "Healthy") for u in p.device_ids]
        stream.cancel()
        resp = stub.Allocate(api_pb2.AllocateRequest(container_requests=[
            api_pb2.ContainerAllocateRequest(devices_ids=p.device_ids[:2])]), timeout=5)
        assert dict(resp.container_responses[0].envs) == {"NVIDIA_VISIBLE_DEVICES": ",".join(p.device_ids[:2])}
        with pytest.raises(grpc.RpcError) as bad:
            stub.Allocate(api_pb2.AllocateRequest(container_requests=[
                api_pb2.ContainerAllocateRequest(devices_ids=["GPU-not-mine"])]), timeout=5)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        pref = stub.GetPreferredAllocation(api_pb2.PreferredAllocationRequest(container_requests=[
            api_pb2.ContainerPreferredAllocationRequest(available_deviceIDs=p.device_ids, must_include_deviceIDs=[p.device_ids[2]],
                                                        allocation_size=2)]), timeout=5)
        assert list(pref.container_responses[0].deviceIDs) == [p.device_ids[2], sorted(p.device_ids)[0]]


def test_registers_again_after_a_kubelet_restart(plugin: tuple[FakeGpuPlugin, Kubelet]) -> None:
    p, kubelet = plugin
    _wait_registrations(kubelet, 1)
    kubelet.stop()
    kubelet.start()  # new kubelet.sock, the plugin's socket wiped
    _wait_registrations(kubelet, 2)
    # The kubelet records the request before the plugin has the reply and counts it.
    _until(lambda: p.registrations >= 2)
    assert p.socket.exists() and p.registrations == 2


# ----------------------------------------------------------------- the node's configuration


def _record() -> rn.NodeRecord:
    return rn.NodeRecord(name="gpu-node-0", ip="192.0.2.10", dir="/var/lib/mlfootprint/nodes/abc", cluster_dir="/tmp/c",
                         kubelet_healthz_port=10248, proxy_healthz_port=10256, proxy_metrics_port=10249)


def test_containerd_config_has_the_setting_this_machine_needs() -> None:
    text = rn.containerd_config(_record(), Path("/usr/sbin/runc"))
    assert "restrict_oom_score_adj = true" in text  # no CAP_SYS_RESOURCE here (docs/dev-cluster.md)
    assert "SystemdCgroup = false" in text and f'sandbox_image = "{rn.PAUSE_IMAGE}"' in text
    assert '"/var/lib/mlfootprint/nodes/abc/containerd/containerd.sock"' in text
    assert "netns_mounts_under_state_dir = true" in text
    # every socket path fits the unix limit even for the longest node id
    rec = _record()
    for sock in (rec.containerd_socket, rec.containerd_dir / "containerd.sock.ttrpc",
                 rec.pod_resources_dir / "kubelet.sock"):
        assert len(str(sock)) < 100, sock


def test_pods_are_routed_only_to_pods_services_and_the_node() -> None:
    conf = rn.cni_conflist(_record())
    (bridge,) = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False and bridge["isDefaultGateway"] is False
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert routes == ["10.0.0.0/24", "192.0.2.10/32"]
    subnet = ipaddress.ip_network(bridge["ipam"]["ranges"][0][0]["subnet"])
    assert subnet.is_private and not subnet.overlaps(ipaddress.ip_network("10.244.0.0/16"))  # kwok's pod IPs


def test_kubelet_needs_certificates_and_writes_under_the_node_dir() -> None:
    cfg = rn.kubelet_config(_record(), Path("/pki/ca.crt"), Path("/pki/k.crt"), Path("/pki/k.key"))
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["authentication"]["x509"]["clientCAFile"] == "/pki/ca.crt"
    assert cfg["authorization"]["mode"] == "Webhook" and cfg["readOnlyPort"] == 0
    assert cfg["cgroupDriver"] == "cgroupfs" and cfg["failSwapOn"] is False and cfg["makeIPTablesUtilChains"] is False
    for key in ("volumePluginDir", "podLogsDir", "resolvConf"):
        assert cfg[key].startswith("/var/lib/mlfootprint/nodes/abc/")
    args = rn.kubelet_args(_record(), Path("/c.json"), Path("/k.kubeconfig"))
    assert "--root-dir=/var/lib/mlfootprint/nodes/abc/kubelet" in args and "--node-ip=192.0.2.10" in args


def test_versions_agree_with_the_scripts() -> None:
    pause = (ROOT / "hack/image/pause.sh").read_text()
    assert re.search(rf"^VERSION={re.escape(rn.PAUSE_VERSION)}\b", pause, re.M)
    assert "kube-proxy" in (ROOT / "hack/tools/10-k8s.sh").read_text()


def test_bad_node_names_are_refused() -> None:
    assert rn.validate_node_name("gpu-node-0") == "gpu-node-0"
    for bad in ("GPU_Node", "-x", "a" * 254):
        with pytest.raises(rn.RealNodeError, match="RFC 1123"):
            rn.validate_node_name(bad)


class _Cgroup:
    """A cgroup whose last (zombie) process is reaped after ``busy_for`` rmdir attempts."""

    def __init__(self, busy_for: float) -> None:
        self.busy_for, self.tries, self.gone = busy_for, 0, False

    def rmdir(self) -> None:
        self.tries += 1
        if self.tries <= self.busy_for:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.gone = True


def test_busy_cgroups_are_retried_until_their_zombies_are_reaped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI: a killed run's cleanup found the containers' cgroups busy (their processes
    killed but not yet reaped) and gave up at once."""
    cg = _Cgroup(busy_for=2)
    monkeypatch.setattr(rn, "kubepods_cgroups", lambda: [] if cg.gone else [cg])
    monkeypatch.setattr(rn, "pids_in", lambda cgroups: set())
    assert rn._remove_cgroups(timeout_s=10) == (1, []) and cg.tries == 3
    stuck = _Cgroup(busy_for=math.inf)  # never freed: reported, not hidden
    monkeypatch.setattr(rn, "kubepods_cgroups", lambda: [stuck])
    removed, busy = rn._remove_cgroups(timeout_s=0.3)
    assert removed == 0 and busy == [f"cgroup {stuck}: Device or resource busy"] and stuck.tries >= 2

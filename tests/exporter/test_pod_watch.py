"""The pod watch cache (informer pattern) and the pod sources that read it, without a server.

``FakeApi`` stands in for ``CoreV1Api.list_pod_for_all_namespaces`` with the API server's wire
format (a JSON list; a newline-delimited stream of watch events). The same cache against a real
kube-apiserver, its request rate from the API server's own metrics, and metering while the API
server is frozen are in test_pod_watch_cluster.py.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from mlfootprint.exporter.config import ConfigError, load_config
from mlfootprint.exporter.gpu_sim import SimulatedGpuSource
from mlfootprint.exporter.model import ContainerKey, ErrorCounter, SourceUnavailable
from mlfootprint.exporter.podresources import api_pb2, api_pb2_grpc
from mlfootprint.exporter.pods import (
    PROFILE_ANNOTATION,
    ContainerMeta,
    FilePodSource,
    KubeletPodSource,
    KubernetesPods,
    KubernetesPodSource,
    PodMeta,
    StaticPods,
    pod_meta,
)

GPU = "nvidia.com/gpu"


def pod_json(
    ns: str, name: str, uid: str, ids: dict[str, str | None], *, gpus: int = 1, phase: str = "Running",
    profile: str | None = None, rv: str = "1", created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    annotations = {PROFILE_ANNOTATION: profile} if profile else {}
    return {
        "metadata": {"namespace": ns, "name": name, "uid": uid, "resourceVersion": rv,
                     "creationTimestamp": created, "annotations": annotations},
        "spec": {"nodeName": "n1", "containers": [
            {"name": c, "resources": {"limits": {GPU: str(gpus)}} if gpus else {}} for c in ids]},
        "status": {"phase": phase, "containerStatuses": [
            {"name": c, "containerID": f"containerd://{i}"} for c, i in ids.items() if i]},
    }


class FakeResponse:
    def __init__(self, status: int, data: bytes = b"", events: queue.Queue[Any] | None = None) -> None:
        self.status = status
        self.data = data
        self._events = events
        self.closed = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        assert self._events is not None
        while not self.closed:
            try:
                item = self._events.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:  # the server ended the watch (its timeout)
                return
            yield (json.dumps(item) + "\n").encode()

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


class FakeApi:
    """``list_pod_for_all_namespaces`` of a tiny API server holding ``pods`` at ``rv``."""

    def __init__(self, pods: list[dict[str, Any]], rv: str = "10") -> None:
        self.pods = pods
        self.rv = rv
        self.events: queue.Queue[Any] = queue.Queue()
        self.calls: list[dict[str, Any]] = []
        self.fail_watch: BaseException | None = None
        self.watch_status = 200

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> FakeResponse:
        self.calls.append(kwargs)
        assert kwargs["field_selector"].startswith("spec.nodeName=")
        assert kwargs["_preload_content"] is False
        if not kwargs.get("watch"):
            return FakeResponse(200, json.dumps({"metadata": {"resourceVersion": self.rv}, "items": self.pods}).encode())
        assert kwargs["allow_watch_bookmarks"] is True
        assert 300 <= kwargs["timeout_seconds"] <= 600
        if self.fail_watch is not None:
            raise self.fail_watch
        return FakeResponse(self.watch_status, b'{"code": 500}', self.events)

    def verbs(self) -> list[str]:
        return ["watch" if c.get("watch") else "list" for c in self.calls]


def wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


# ----------------------------------------------------------------- parsing


def test_pod_meta_keeps_what_the_exporter_needs() -> None:
    raw = pod_json("ml", "train", "u1", {"trainer": "a" * 64, "helper": None}, gpus=2, profile="training")
    raw["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
    raw["status"]["initContainerStatuses"] = [{"name": "proxy", "containerID": "cri-o://" + "b" * 64}]
    meta = pod_meta(raw)
    assert meta == PodMeta("ml", "train", "u1", "Running", "2026-01-01T00:00:00Z", "training", (
        ContainerMeta("trainer", 2, "a" * 64), ContainerMeta("helper", 2, None), ContainerMeta("proxy", 0, "b" * 64, True)))
    assert meta.gpus == 4 and meta.live
    # a status heartbeat (conditions, times) does not change it
    raw["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastProbeTime": "2026-01-01T00:00:01Z"}]
    raw["metadata"]["resourceVersion"] = "2"
    assert pod_meta(raw) == meta
    assert not pod_meta(pod_json("ml", "done", "u2", {"c": None}, phase="Succeeded")).live


# ----------------------------------------------------------------- the cache


def test_lists_once_then_follows_watch_events_and_bookmarks() -> None:
    api = FakeApi([pod_json("ml", "a", "ua", {"c": "1" * 64})])
    cache = KubernetesPods("n1", api=api).start()
    try:
        assert cache.wait_synced(5)
        assert [p.name for p in cache.pods()] == ["a"]
        assert wait(lambda: api.verbs() == ["list", "watch"])
        assert api.calls[1]["resource_version"] == "10"
        gen0 = cache.snapshot()[0]
        api.events.put({"type": "ADDED", "object": pod_json("ml", "b", "ub", {"c": None}, rv="11")})
        assert wait(lambda: [p.name for p in cache.pods()] == ["a", "b"])
        # a status-only change (new resourceVersion, same metadata) does not bump the generation
        gen1 = cache.snapshot()[0]
        assert gen1 > gen0
        api.events.put({"type": "MODIFIED", "object": pod_json("ml", "b", "ub", {"c": None}, rv="12")})
        api.events.put({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "15"}}})
        api.events.put({"type": "MODIFIED", "object": pod_json("ml", "b", "ub", {"c": "2" * 64}, rv="16")})
        assert wait(lambda: cache.metadata().get(ContainerKey("ml", "b", "c")) == ("ub", "2" * 64))
        assert cache.snapshot()[0] == gen1 + 1
        api.events.put({"type": "MODIFIED", "object": pod_json("ml", "a", "ua", {"c": "1" * 64}, phase="Succeeded", rv="17")})
        api.events.put({"type": "DELETED", "object": pod_json("ml", "b", "ub", {"c": None}, rv="18")})
        assert wait(lambda: cache.pods() == ())
        api.events.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}})
        time.sleep(0.2)
        api.events.put(None)  # the server's watch timeout: resume from the bookmark, no list
        assert wait(lambda: len(api.calls) == 3)
        assert api.verbs() == ["list", "watch", "watch"]
        assert api.calls[2]["resource_version"] == "20"
        assert cache.requests == {"list": 1, "watch": 2}
    finally:
        cache.close()


def test_relists_only_when_the_watch_expires() -> None:
    api = FakeApi([pod_json("ml", "a", "ua", {"c": None})])
    cache = KubernetesPods("n1", api=api).start()
    try:
        assert cache.wait_synced(5) and wait(lambda: len(api.calls) == 2)
        api.pods = [pod_json("ml", "z", "uz", {"c": None})]
        api.rv = "99"
        api.events.put({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}})
        assert wait(lambda: [p.name for p in cache.pods()] == ["z"])
        assert wait(lambda: api.verbs() == ["list", "watch", "list", "watch"])
        assert api.calls[3]["resource_version"] == "99" and cache.relists == 1
    finally:
        cache.close()


def test_api_errors_back_off_and_keep_the_last_pods() -> None:
    api = FakeApi([pod_json("ml", "a", "ua", {"c": "1" * 64})])
    api.fail_watch = ConnectionRefusedError("connection refused")
    cache = KubernetesPods("n1", api=api, max_backoff_s=0.2).start()
    try:
        assert cache.wait_synced(5)
        assert wait(lambda: cache.errors >= 4)
        assert [p.name for p in cache.pods()] == ["a"]
        # backing off: a handful of retries in a second, not a busy loop
        n, t0 = len(api.calls), time.monotonic()
        time.sleep(1.0)
        calls, elapsed_s = len(api.calls) - n, time.monotonic() - t0
        # at least 0.16 s between failed calls at the 0.2 s ceiling (with jitter): ~6 a second
        assert calls <= elapsed_s / 0.16 + 2, (calls, elapsed_s)
        api.fail_watch = None
        api.watch_status = 500  # an HTTP error status is an error too
        assert wait(lambda: cache.errors >= 6)
        assert [p.name for p in cache.pods()] == ["a"]
    finally:
        cache.close()


# ----------------------------------------------------------------- sources reading it


def test_kubernetes_source_reads_the_cache_and_never_the_api() -> None:
    errors = ErrorCounter()
    gpu = SimulatedGpuSource(errors, count=4, seed=3)
    pods = StaticPods([
        pod_meta(pod_json("ml", "serve", "us", {"main": None}, profile="inference", created="2026-01-01T00:00:02Z")),
        pod_meta(pod_json("ml", "train", "ut", {"main": None}, gpus=2, profile="training", created="2026-01-01T00:00:01Z")),
        pod_meta(pod_json("ml", "cpu-only", "uc", {"main": None}, gpus=0, created="2026-01-01T00:00:03Z")),
    ])
    src = KubernetesPodSource(errors, pods, lambda: gpu.uuids)
    listing = src.list(0.0)
    uuids = sorted(gpu.uuids)
    assert {c.key.pod: [u for _r, u in c.device_ids] for c in listing.containers} == {
        "train": uuids[:2], "serve": uuids[2:3], "cpu-only": []}  # oldest first
    assert src.profiles(listing) == {uuids[0]: "training", uuids[1]: "training", uuids[2]: "inference"}
    # simulated CPU time grows with the clock, the assignment stays
    later = {c.key.pod: c for c in src.list(10.0).containers}
    assert later["train"].cpu_time_s == pytest.approx(8.0 * 10) and later["serve"].cpu_time_s == pytest.approx(2.0 * 10)

    class Unsynced(StaticPods):
        synced = False

    with pytest.raises(SourceUnavailable, match="not listed"):
        KubernetesPodSource(errors, Unsynced(), lambda: gpu.uuids).list(0.0)


def test_file_source_parses_only_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text("pods:\n  - {name: a, profile: training, containers: [{name: c, gpus: 1}]}\n")
    errors = ErrorCounter()
    gpu = SimulatedGpuSource(errors, count=2)
    src = FilePodSource(errors, path, lambda: gpu.uuids)
    for t in range(5):
        assert [c.key.pod for c in src.list(float(t)).containers] == ["a"]
    assert src.parses == 1
    path.write_text("pods:\n  - {name: b, containers: [{name: c, gpus: 2}]}\n")
    assert [c.key.pod for c in src.list(6.0).containers] == ["b"]
    assert src.parses == 2


# ----------------------------------------------------------------- the kubelet source


class Lister(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self) -> None:
        self.pods: list[tuple[str, str, str, list[str]]] = []  # ns, pod, container, device ids

    def List(self, request, context):  # noqa: N802
        return api_pb2.ListPodResourcesResponse(pod_resources=[
            api_pb2.PodResources(namespace=ns, name=pod, containers=[api_pb2.ContainerResources(
                name=c, devices=[api_pb2.ContainerDevices(resource_name=GPU, device_ids=ids)])])
            for ns, pod, c, ids in self.pods])

    def GetAllocatableResources(self, request, context):  # noqa: N802
        return api_pb2.AllocatableResourcesResponse()


class Kubelet:
    """A pod-resources server that can be restarted (a new socket file, as the kubelet does)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lister = Lister()
        self.server: grpc.Server | None = None
        self.start()

    def start(self) -> None:
        (self.directory / "kubelet.sock").unlink(missing_ok=True)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self.lister, self.server)
        self.server.add_insecure_port(f"unix://{self.directory / 'kubelet.sock'}")
        self.server.start()

    def restart(self) -> None:
        assert self.server is not None
        self.server.stop(grace=None).wait()
        self.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None).wait()


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    k = Kubelet(tmp_path)
    yield k
    k.stop()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


TRAIN = PodMeta("ml", "train", "ut", "Running", profile="training", containers=(ContainerMeta("trainer", 2, "a" * 64),))


def test_kubelet_pods_follow_their_sim_profile_annotation(kubelet: Kubelet) -> None:
    """Issue 17 #2: simulated GPUs on a real node run the profile of the pod holding them."""
    gpu = SimulatedGpuSource(ErrorCounter(), count=3, node="n1")
    held = gpu.uuids[:2]
    kubelet.lister.pods = [("ml", "train", "trainer", held), ("ml", "other", "c", [gpu.uuids[2] + "::1"])]
    src = KubeletPodSource(ErrorCounter(), kubelet.directory, pods=StaticPods([TRAIN]))
    try:
        listing = src.list(0.0)
        assert src.profiles(listing) == {held[0]: "training", held[1]: "training"}  # "other" has none: default
        gpu.set_profiles(src.profiles(listing), 100.0)
        power = gpu.read_power(100.0)
        assert power[held[0]] > 500 and power[held[1]] > 500 and power[gpu.uuids[2]] < 100
    finally:
        src.close()


def test_empty_listing_right_after_a_kubelet_restart_is_distrusted(kubelet: Kubelet) -> None:
    """Issue 17 #3: the restarted kubelet answers List with nothing for about a second."""
    clock = Clock()
    errors = ErrorCounter()
    kubelet.lister.pods = [("ml", "train", "trainer", ["GPU-a", "GPU-b"])]
    src = KubeletPodSource(errors, kubelet.directory, pods=StaticPods([TRAIN]), distrust_s=15.0, monotonic=clock)
    try:
        clock.t += 60
        assert len(src.list(0.0).containers) == 1
        kubelet.lister.pods = []
        kubelet.restart()  # new socket file
        clock.t += 1
        with pytest.raises(SourceUnavailable, match="right after the kubelet"):
            src.list(1.0)
        assert errors.counts() == {("kubelet", "List_empty_after_restart"): 1}
        clock.t += 16  # past the window: an empty answer is the truth again
        assert src.list(2.0).containers == ()
        # without a restart an empty list is believed at once (the pod really ended)
        kubelet.lister.pods = [("ml", "train", "trainer", ["GPU-a"])]
        assert len(src.list(3.0).containers) == 1
        kubelet.lister.pods = []
        assert src.list(4.0).containers == ()
    finally:
        src.close()


def test_empty_listing_after_restart_is_believed_when_no_gpu_pod_runs(kubelet: Kubelet) -> None:
    clock = Clock()
    kubelet.lister.pods = [("ml", "train", "trainer", ["GPU-a"])]
    pods = StaticPods([TRAIN])
    src = KubeletPodSource(ErrorCounter(), kubelet.directory, pods=pods, monotonic=clock)
    try:
        clock.t += 60
        src.list(0.0)
        kubelet.lister.pods = []
        pods.set([])  # the API server agrees: the pod is gone
        kubelet.restart()
        assert src.list(1.0).containers == ()
    finally:
        src.close()


def test_relative_pod_resources_dir_is_refused_with_the_flag_named() -> None:
    """Issue 17 #5: a relative directory made an invalid gRPC target (unix://kubelet-root/...)."""
    with pytest.raises(ConfigError) as e:
        load_config(flags={"pod_resources_dir": "kubelet-root/pod-resources", "node_name": "n"})
    assert "--pod-resources-dir" in str(e.value) and "absolute" in str(e.value)
    with pytest.raises(ValueError, match="absolute"):
        KubeletPodSource(ErrorCounter(), Path("kubelet-root"))


class ClosablePods(StaticPods):
    """A pod index whose thread (the watch cache's) counts the times it was stopped."""

    def __init__(self, pods: list[PodMeta]) -> None:
        super().__init__(pods)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_failed_list_or_kubelet_restart_keeps_the_pod_watch(kubelet: Kubelet) -> None:
    """Reconnecting to the kubelet drops the gRPC channel only: the pod watch (the sim profiles,
    the pod metadata) must go on, else the GPUs fall back to the default load for good."""
    kubelet.lister.pods = [("ml", "train", "trainer", ["GPU-a", "GPU-b"])]
    pods = ClosablePods([TRAIN])
    src = KubeletPodSource(ErrorCounter(), kubelet.directory, pods=pods, distrust_s=0.0)
    try:
        assert src.profiles(src.list(0.0)) == {"GPU-a": "training", "GPU-b": "training"}
        kubelet.stop()  # List fails: the channel is dropped
        with pytest.raises(SourceUnavailable):
            src.list(1.0)
        kubelet.start()  # a new socket: reconnected
        assert src.profiles(src.list(2.0)) == {"GPU-a": "training", "GPU-b": "training"}
        assert pods.closed == 0
    finally:
        src.close()
    assert pods.closed == 1  # at exit

"""Pod sources: which containers run on this node and which GPUs each holds.

* :class:`KubeletPodSource`: the kubelet pod-resources v1 gRPC API (``List`` and
  ``GetAllocatableResources``) on ``unix://<dir>/kubelet.sock``. Mount the *directory*
  (the kubelet recreates the socket on restart). pod-resources carries no pod UIDs or
  container IDs, so linking GPU processes and cgroups to containers needs the optional
  metadata from the Kubernetes API (:class:`KubernetesPods`), which also carries the
  ``mlfootprint.io/sim-profile`` annotation of the pod holding a simulated GPU.
* :class:`FilePodSource` / :class:`KubernetesPodSource`: simulated assignment for the demo —
  pods come from a YAML file or from the API server (pods bound to ``--node-name``, e.g. kwok
  nodes); their ``nvidia.com/gpu`` requests are assigned deterministically to the simulated
  GPUs and the annotation ``mlfootprint.io/sim-profile`` selects the GPU's load.

The Kubernetes API is read by :class:`KubernetesPods`, a watch cache (client-go's informer
pattern): it lists this node's pods once, then watches them with bookmarks on its own thread,
resuming from the last resource version and listing again only when the watch expires (410).
The metering thread only reads its latest immutable snapshot: it never waits on the API
server. In steady state one exporter sends one watch request every 5-10 minutes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from mlfootprint.exporter.cgroups import container_id_of
from mlfootprint.exporter.model import ContainerInfo, ContainerKey, ErrorCounter, PodListing, SourceUnavailable

log = logging.getLogger(__name__)

PROFILE_ANNOTATION = "mlfootprint.io/sim-profile"
GPU_RESOURCE = "nvidia.com/gpu"
#: simulated CPU cores busy per profile (for host-energy attribution in the demo)
SIM_CORES = {"training": 8.0, "inference": 2.0, "failing": 4.0, "idle": 0.1}
#: after the kubelet's socket is new (a kubelet restart) or the connection was re-made, an
#: empty pod-resources listing is distrusted for this long while GPU pods are known to run
RECONNECT_DISTRUST_S = 15.0

Metadata = Mapping[ContainerKey, tuple[str, str | None]]  # -> (pod uid, container id)


# ----------------------------------------------------------------- pod metadata (pure)


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    name: str
    gpus: int = 0
    container_id: str | None = None
    init: bool = False


@dataclass(frozen=True, slots=True)
class PodMeta:
    """What the exporter needs of one pod: identity, phase, the simulation profile and, per
    container, its GPU request and container ID. Status heartbeats do not change it."""

    namespace: str
    name: str
    uid: str
    phase: str = ""
    created: str = ""
    profile: str | None = None
    containers: tuple[ContainerMeta, ...] = ()

    @property
    def live(self) -> bool:
        return self.phase not in ("Succeeded", "Failed")

    @property
    def gpus(self) -> int:
        return sum(c.gpus for c in self.containers if not c.init)


def _gpu_count(resources: Mapping[str, Any] | None) -> int:
    if not resources:
        return 0
    for block in (resources.get("limits"), resources.get("requests")):
        if block and GPU_RESOURCE in block:
            try:
                return int(math.ceil(float(str(block[GPU_RESOURCE]))))
            except (TypeError, ValueError):
                return 0
    return 0


def pod_meta(raw: Mapping[str, Any]) -> PodMeta:
    """A pod as the API server serves it (JSON) -> :class:`PodMeta`."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    ids: dict[str, str] = {}
    for s in [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]:
        if s.get("containerID"):
            ids[s["name"]] = container_id_of(s["containerID"])
    containers = tuple(
        ContainerMeta(c["name"], _gpu_count(c.get("resources")), ids.get(c["name"]), init)
        # pod-resources lists restartable init containers (sidecars) beside the containers
        for init, block in ((False, spec.get("containers")), (True, spec.get("initContainers")))
        for c in (block or [])
    )
    return PodMeta(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        phase=str(status.get("phase") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        profile=(meta.get("annotations") or {}).get(PROFILE_ANNOTATION),
        containers=containers,
    )


def metadata_of(pods: Iterable[PodMeta]) -> dict[ContainerKey, tuple[str, str | None]]:
    """(namespace, pod, container) -> (pod uid, container id) of live pods."""
    return {
        ContainerKey(p.namespace, p.name, c.name): (p.uid, c.container_id)
        for p in pods
        if p.live
        for c in p.containers
    }


class PodIndex(Protocol):
    """This node's pods, as last known; reading never blocks on the API server."""

    @property
    def synced(self) -> bool: ...

    def snapshot(self) -> tuple[int, tuple[PodMeta, ...]]:
        """(generation, live pods); the generation changes whenever the pods change."""
        ...


class StaticPods:
    """A fixed :class:`PodIndex` (tests, tools)."""

    def __init__(self, pods: Iterable[PodMeta] = ()) -> None:
        self.set(pods)

    synced = True

    def set(self, pods: Iterable[PodMeta]) -> None:
        self._pods = tuple(p for p in pods if p.live)
        self._generation = getattr(self, "_generation", 0) + 1

    def snapshot(self) -> tuple[int, tuple[PodMeta, ...]]:
        return self._generation, self._pods


# ----------------------------------------------------------------- the watch cache (I/O thread)


class WatchError(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class KubernetesPods:
    """Watch cache of the pods bound to one node (``--kubeconfig`` or in-cluster).

    ``start()`` runs the list/watch loop on a daemon thread; :meth:`snapshot` returns the
    latest pods. The watch asks for bookmarks and a server-side timeout of 5-10 minutes
    (random, as client-go's reflector); it resumes from the last resource version seen
    (events and bookmarks) and lists again only after a 410 Gone. Errors back off
    exponentially up to ``max_backoff_s``; the last known pods stay in the cache meanwhile.
    """

    def __init__(
        self,
        node_name: str,
        kubeconfig: Path | None = None,
        timeout_s: float = 10.0,
        min_watch_s: int = 300,
        max_backoff_s: float = 30.0,
        api: Any = None,
    ) -> None:
        if api is None:
            from kubernetes import client, config  # noqa: PLC0415

            if kubeconfig is not None:
                api_client = config.new_client_from_config(config_file=str(kubeconfig))
            else:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                api_client = client.ApiClient(configuration)
            api = client.CoreV1Api(api_client)
        self._api = api
        self._node = node_name
        self._selector = f"spec.nodeName={node_name}"
        self._timeout_s = timeout_s
        self._min_watch_s = min_watch_s
        self._max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._by_uid: dict[str, PodMeta] = {}
        self._generation = 0
        self._snapshot: tuple[int, tuple[PodMeta, ...]] = (0, ())
        self._rv: str | None = None
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        #: requests sent to the API server, by verb (list, watch); read by tests and logs
        self.requests: dict[str, int] = {"list": 0, "watch": 0}
        self.errors = 0
        self.relists = 0

    # -- reading (any thread)
    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout_s: float) -> bool:
        return self._synced.wait(timeout_s)

    def snapshot(self) -> tuple[int, tuple[PodMeta, ...]]:
        with self._lock:
            if self._snapshot[0] != self._generation:
                live = tuple(sorted((p for p in self._by_uid.values() if p.live), key=lambda p: (p.namespace, p.name)))
                self._snapshot = (self._generation, live)
            return self._snapshot

    def pods(self) -> tuple[PodMeta, ...]:
        return self.snapshot()[1]

    def metadata(self) -> dict[ContainerKey, tuple[str, str | None]]:
        return metadata_of(self.pods())

    # -- lifecycle
    def start(self) -> KubernetesPods:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"pod-watch-{self._node}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown() if hasattr(response, "shutdown") else response.close()
            except Exception:  # noqa: BLE001 (best effort: the thread is a daemon)
                pass

    # -- the loop
    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self._rv is None:
                    self._list()
                self._watch()
                backoff = 1.0
                continue
            except WatchError as exc:
                if exc.code == 410:  # the resource version expired: list again
                    self.relists += 1
                    self._rv = None
                    log.info("pod watch expired; listing again", extra={"node": self._node})
                    continue
                self._failed(exc)
            except Exception as exc:  # noqa: BLE001 (network, TLS, API errors: retry)
                if self._stop.is_set():
                    return
                self._failed(exc)
            self._stop.wait(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._max_backoff_s)

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        log.warning("pod watch failed; keeping the last known pods", extra={"node": self._node, "reason": str(exc)[:300]})

    def _call(self, **kwargs: Any) -> Any:
        response = self._api.list_pod_for_all_namespaces(
            field_selector=self._selector, _preload_content=False, **kwargs
        )
        status = getattr(response, "status", 200)
        if not 200 <= int(status) <= 299:
            body = response.data.decode(errors="replace") if hasattr(response, "data") else ""
            raise WatchError(int(status), body[:300])
        return response

    def _list(self) -> None:
        self.requests["list"] += 1
        response = self._call(_request_timeout=self._timeout_s)
        doc = json.loads(response.data)
        pods = {}
        for item in doc.get("items", []):
            meta = pod_meta(item)
            pods[meta.uid] = meta
        with self._lock:
            if pods != self._by_uid:
                self._by_uid = pods
                self._generation += 1
        self._rv = str(doc.get("metadata", {}).get("resourceVersion") or "") or None
        self._synced.set()
        log.info("listed pods", extra={"node": self._node, "pods": len(pods), "resource_version": self._rv})

    def _watch(self) -> None:
        timeout = random.randint(self._min_watch_s, 2 * self._min_watch_s)
        self.requests["watch"] += 1
        response = self._call(
            watch=True, resource_version=self._rv, allow_watch_bookmarks=True, timeout_seconds=timeout,
            _request_timeout=(self._timeout_s, timeout + 60),
        )
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    return
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise WatchError(int(obj.get("code") or 0), str(obj.get("message") or obj))
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    meta = pod_meta(obj)
                    with self._lock:
                        if kind == "DELETED":
                            changed = self._by_uid.pop(meta.uid, None) is not None
                        else:
                            changed = self._by_uid.get(meta.uid) != meta
                            self._by_uid[meta.uid] = meta
                        if changed:
                            self._generation += 1
                if rv:
                    self._rv = str(rv)
        finally:
            self._response = None
            response.release_conn() if hasattr(response, "release_conn") else None


def _lines(response: Any) -> Iterator[str]:
    """Newline-delimited JSON events of a streaming (watch) response."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace")


# ----------------------------------------------------------------- the kubelet


def _gpu_uuid(device_id: str) -> str:
    """``GPU-…::3`` (a time-slicing replica) -> ``GPU-…``."""
    return device_id.partition("::")[0]


class KubeletPodSource:
    name = "kubelet"

    def __init__(
        self,
        errors: ErrorCounter,
        directory: Path,
        socket_name: str = "kubelet.sock",
        timeout_s: float = 5.0,
        pods: PodIndex | None = None,
        distrust_s: float = RECONNECT_DISTRUST_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        directory = Path(directory)
        if not directory.is_absolute():
            # a relative path gives an invalid gRPC target (unix://kubelet-root/...)
            raise ValueError(f"pod-resources directory must be an absolute path, got {str(directory)!r}")
        self._errors = errors
        self._target = f"unix://{directory / socket_name}"
        self._socket = directory / socket_name
        self._timeout_s = timeout_s
        self._pods = pods
        self._distrust_s = distrust_s
        self._mono = monotonic
        self._channel: Any = None
        self._stub: Any = None
        self._socket_id: tuple[int, int] | None = None
        self._connected_at: float | None = None
        self._view_generation = -1
        self._meta: Metadata = {}
        self._profiles: dict[tuple[str, str], str] = {}
        self._gpu_pods: tuple[str, ...] = ()
        self._last_had_gpus = False

    def _connect(self) -> Any:
        if self._stub is None:
            import grpc  # noqa: PLC0415 (keep `mlfootprint estimate` light)

            from mlfootprint.exporter.podresources import api_pb2_grpc  # noqa: PLC0415

            self._channel = grpc.insecure_channel(self._target)
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
            self._connected_at = self._mono()
        return self._stub

    def _index_view(self) -> tuple[Metadata, dict[tuple[str, str], str], tuple[str, ...]]:
        """Metadata, profiles and running GPU pods from the pod index, rebuilt only when it changed."""
        if self._pods is None:
            return {}, {}, ()
        generation, pods = self._pods.snapshot()
        if generation != self._view_generation:
            self._view_generation = generation
            self._meta = metadata_of(pods)
            self._profiles = {(p.namespace, p.name): p.profile for p in pods if p.profile}
            self._gpu_pods = tuple(f"{p.namespace}/{p.name}" for p in pods if p.phase == "Running" and p.gpus > 0)
        return self._meta, self._profiles, self._gpu_pods

    def list(self, now_s: float) -> PodListing:
        from mlfootprint.exporter.podresources import api_pb2  # noqa: PLC0415

        try:
            st = self._socket.stat()
        except FileNotFoundError:
            raise SourceUnavailable(f"no kubelet pod-resources socket at {self._socket}") from None
        if (st.st_dev, st.st_ino) != self._socket_id:
            # a new socket file: the kubelet (re)started; talk to the new one
            if self._socket_id is not None:
                log.info("kubelet pod-resources socket replaced (kubelet restart); reconnecting",
                         extra={"socket": str(self._socket)})
            self._disconnect()
            self._socket_id = (st.st_dev, st.st_ino)
        stub = self._connect()
        try:
            response = stub.List(api_pb2.ListPodResourcesRequest(), timeout=self._timeout_s)
        except Exception as exc:
            self._errors.inc(self.name, "List")
            self._disconnect()  # reconnect next time (kubelet restarts recreate the socket)
            raise SourceUnavailable(f"pod-resources List failed: {exc}") from exc
        replicas: dict[str, int] = {}
        try:
            alloc = stub.GetAllocatableResources(api_pb2.AllocatableResourcesRequest(), timeout=self._timeout_s)
            for dev in alloc.devices:
                if dev.resource_name == GPU_RESOURCE:
                    for device_id in dev.device_ids:
                        uuid, sep, _ = device_id.partition("::")
                        if sep:
                            replicas[uuid] = replicas.get(uuid, 0) + 1
        except Exception:  # noqa: BLE001 - optional call (time-slicing replicas): counted, never fatal
            self._errors.inc(self.name, "GetAllocatableResources")
        meta, profiles, gpu_pods = self._index_view()
        containers = []
        for pod in response.pod_resources:
            profile = profiles.get((pod.namespace, pod.name))
            for c in pod.containers:
                key = ContainerKey(pod.namespace, pod.name, c.name)
                devices = tuple((d.resource_name, i) for d in c.devices for i in d.device_ids)
                uid, cid = meta.get(key, (None, None))
                containers.append(ContainerInfo(key, devices, uid, cid, profile))
        has_gpus = any(r == GPU_RESOURCE for c in containers for r, _ in c.device_ids)
        recent = self._connected_at is not None and self._mono() - self._connected_at < self._distrust_s
        if recent and not has_gpus and (gpu_pods or (self._pods is None and self._last_had_gpus)):
            # Right after a kubelet restart, List answers an empty list for about a second
            # while the kubelet rebuilds its pod state. Taking it as true would bill every
            # allocated GPU to idle for an interval and end the containers' series.
            self._errors.inc(self.name, "List_empty_after_restart")
            evidence = f"the API server shows GPU pods on this node: {', '.join(gpu_pods[:5])}" if gpu_pods else (
                "GPU holders were listed before the reconnect")
            raise SourceUnavailable(
                f"pod-resources List holds no GPU right after the kubelet (re)connected, while {evidence}; "
                "keeping the last listing"
            )
        self._last_had_gpus = has_gpus
        return PodListing(tuple(containers), replicas)

    def profiles(self, listing: PodListing) -> dict[str, str]:
        """GPU UUID -> the holding pod's ``mlfootprint.io/sim-profile`` (simulated GPUs on a real
        node); GPUs held by pods without the annotation keep the simulation's default."""
        return {
            _gpu_uuid(device): c.profile
            for c in listing.containers
            if c.profile
            for resource, device in c.device_ids
            if resource == GPU_RESOURCE
        }

    def _disconnect(self) -> None:
        """Drop the gRPC channel (reconnected at the next List); the pod watch stays."""
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None

    def close(self) -> None:
        """At exit: the channel and the pod watch cache's thread."""
        self._disconnect()
        close = getattr(self._pods, "close", None)
        if close is not None:
            close()


# ----------------------------------------------------------------- simulated assignment

PodSpec = tuple[ContainerKey, int, str | None, str | None]  # key, gpus requested, profile, uid


def assign_gpus(
    requests: Sequence[tuple[ContainerKey, int]],
    uuids: Sequence[str],
    previous: Mapping[ContainerKey, tuple[str, ...]],
) -> dict[ContainerKey, tuple[str, ...]]:
    """Deterministic first-fit: containers keep earlier GPUs; new ones take free GPUs in
    UUID order, in request order. A request that cannot be met gets nothing (Pending)."""
    wanted = dict(requests)
    out: dict[ContainerKey, tuple[str, ...]] = {}
    used: set[str] = set()
    valid = set(uuids)
    for key, gpus in previous.items():
        if key in wanted and len(gpus) == wanted[key] and set(gpus) <= valid and not (set(gpus) & used):
            out[key] = gpus
            used |= set(gpus)
    for key, count in requests:
        if key in out or count <= 0:
            continue
        free = [u for u in uuids if u not in used]
        if len(free) >= count:
            out[key] = tuple(free[:count])
            used |= set(out[key])
    return out


class _SimAssigner:
    """Shared by the file and API sources: assignment memory, simulated CPU time.

    The assignment is recomputed only when the pods (``version``) or the GPUs change; each
    interval then only rebuilds the containers' simulated CPU time.
    """

    def __init__(self, gpu_uuids: Callable[[], Sequence[str]]) -> None:
        self._uuids = gpu_uuids
        self._assigned: dict[ContainerKey, tuple[str, ...]] = {}
        self._first_seen: dict[ContainerKey, float] = {}
        self._key: tuple[object, tuple[str, ...]] | None = None
        self._rows: list[tuple[ContainerKey, str | None, str | None, tuple[tuple[str, str], ...], float]] = []

    def listing(self, specs: Sequence[PodSpec], now_s: float, version: object = None) -> PodListing:
        uuids = tuple(sorted(self._uuids()))
        key = (version, uuids)
        if version is None or key != self._key:
            self._key = key
            self._assigned = assign_gpus([(k, n) for k, n, _, _ in specs], uuids, self._assigned)
            present = {k for k, _n, _p, _u in specs}
            for k in present:
                self._first_seen.setdefault(k, now_s)
            self._first_seen = {k: v for k, v in self._first_seen.items() if k in present}
            self._rows = [
                (k, profile, uid, tuple((GPU_RESOURCE, u) for u in self._assigned.get(k, ())),
                 SIM_CORES.get(profile or "idle", SIM_CORES["idle"]))
                for k, _n, profile, uid in specs
            ]
        first = self._first_seen
        containers = tuple(
            ContainerInfo(k, devices, uid, None, profile, cores * max(now_s - first[k], 0.0))
            for k, profile, uid, devices, cores in self._rows
        )
        return PodListing(containers)

    def profiles(self, listing: PodListing) -> dict[str, str]:
        return {u: c.profile or "idle" for c in listing.containers for _r, u in c.device_ids}


class KubernetesPodSource:
    """Simulated assignment of API-server pods on ``node_name`` to simulated GPUs.

    Reads the watch cache (:class:`KubernetesPods`), never the API server itself: while the
    API server is unreachable the last known pods keep being metered.
    """

    name = "kubernetes"

    def __init__(self, errors: ErrorCounter, pods: PodIndex, gpu_uuids: Callable[[], Sequence[str]]) -> None:
        self._errors = errors
        self._pods = pods
        self._sim = _SimAssigner(gpu_uuids)
        self._generation = -1
        self._specs: list[PodSpec] = []

    def list(self, now_s: float) -> PodListing:
        if not self._pods.synced:
            raise SourceUnavailable("pods not listed from the API server yet")
        generation, pods = self._pods.snapshot()
        if generation != self._generation:
            self._generation = generation
            specs: list[PodSpec] = []
            for pod in sorted(pods, key=lambda p: (p.created, p.namespace, p.name)):
                for c in pod.containers:
                    if not c.init:
                        specs.append((ContainerKey(pod.namespace, pod.name, c.name), c.gpus, pod.profile, pod.uid))
            self._specs = specs
        return self._sim.listing(self._specs, now_s, generation)

    def profiles(self, listing: PodListing) -> dict[str, str]:
        return self._sim.profiles(listing)

    def close(self) -> None:
        close = getattr(self._pods, "close", None)
        if close is not None:
            close()


try:  # libyaml's C loader when PyYAML was built with it (its wheels are): ~10x faster
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader


class FilePodSource:
    """Simulated pods from a YAML file, re-read when it changes (size, mtime or inode)::

        pods:
          - namespace: ml
            name: llama-train
            profile: training          # training|inference|idle|failing
            containers:
              - name: trainer
                gpus: 4
    """

    name = "file"

    def __init__(self, errors: ErrorCounter, path: Path, gpu_uuids: Callable[[], Sequence[str]]) -> None:
        self._errors = errors
        self._path = Path(path)
        self._sim = _SimAssigner(gpu_uuids)
        self._stamp: tuple[int, int, int, int] | None = None
        self._specs: list[PodSpec] = []
        self.parses = 0

    def _read(self) -> list[PodSpec]:
        doc = yaml.load(self._path.read_bytes(), Loader=_YamlLoader) or {}
        self.parses += 1
        specs: list[PodSpec] = []
        for pod in doc.get("pods", []):
            for c in pod.get("containers", [{"name": pod["name"], "gpus": pod.get("gpus", 0)}]):
                key = ContainerKey(str(pod.get("namespace", "default")), str(pod["name"]), str(c["name"]))
                specs.append((key, int(c.get("gpus", 0)), pod.get("profile"), pod.get("uid")))
        return specs

    def list(self, now_s: float) -> PodListing:
        try:
            st = os.stat(self._path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if stamp != self._stamp:
                self._specs = self._read()
                self._stamp = stamp
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self._errors.inc(self.name, "read")
            raise SourceUnavailable(f"pods file {self._path}: {exc}") from exc
        return self._sim.listing(self._specs, now_s, self._stamp)

    def profiles(self, listing: PodListing) -> dict[str, str]:
        return self._sim.profiles(listing)

    def close(self) -> None:
        pass

"""Pod sources: which containers run on this node and which GPUs each holds.

* :class:`KubeletPodSource`: the kubelet pod-resources v1 gRPC API (``List`` and
  ``GetAllocatableResources``) on ``unix://<dir>/kubelet.sock``. Mount the *directory*
  (the kubelet recreates the socket on restart). pod-resources carries no pod UIDs or
  container IDs, so linking GPU processes and cgroups to containers needs the optional
  metadata from the Kubernetes API (:class:`KubernetesPods`).
* :class:`FilePodSource` / :class:`KubernetesPodSource`: simulated assignment for the demo —
  pods come from a YAML file or from the API server (pods bound to ``--node-name``, e.g. kwok
  nodes); their ``nvidia.com/gpu`` requests are assigned deterministically to the simulated
  GPUs and the annotation ``mlfootprint.io/sim-profile`` selects the GPU's load.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlfootprint.exporter.cgroups import container_id_of
from mlfootprint.exporter.model import ContainerInfo, ContainerKey, ErrorCounter, PodListing, SourceUnavailable

log = logging.getLogger(__name__)

PROFILE_ANNOTATION = "mlfootprint.io/sim-profile"
GPU_RESOURCE = "nvidia.com/gpu"
#: simulated CPU cores busy per profile (for host-energy attribution in the demo)
SIM_CORES = {"training": 8.0, "inference": 2.0, "failing": 4.0, "idle": 0.1}

Metadata = Mapping[ContainerKey, tuple[str, str | None]]  # -> (pod uid, container id)


class KubeletPodSource:
    name = "kubelet"

    def __init__(
        self,
        errors: ErrorCounter,
        directory: Path,
        socket_name: str = "kubelet.sock",
        timeout_s: float = 5.0,
        metadata: Callable[[], Metadata] | None = None,
    ) -> None:
        self._errors = errors
        self._target = f"unix://{Path(directory) / socket_name}"
        self._socket = Path(directory) / socket_name
        self._timeout_s = timeout_s
        self._metadata = metadata
        self._last_metadata: Metadata = {}
        self._channel: Any = None
        self._stub: Any = None

    def _connect(self) -> Any:
        if self._stub is None:
            import grpc  # noqa: PLC0415 (keep `mlfootprint estimate` light)

            from mlfootprint.exporter.podresources import api_pb2_grpc  # noqa: PLC0415

            self._channel = grpc.insecure_channel(self._target)
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
        return self._stub

    def list(self, now_s: float) -> PodListing:
        from mlfootprint.exporter.podresources import api_pb2  # noqa: PLC0415

        if not self._socket.exists():
            raise SourceUnavailable(f"no kubelet pod-resources socket at {self._socket}")
        stub = self._connect()
        try:
            response = stub.List(api_pb2.ListPodResourcesRequest(), timeout=self._timeout_s)
        except Exception as exc:
            self._errors.inc(self.name, "List")
            self.close()  # reconnect next time (kubelet restarts recreate the socket)
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
        except Exception:
            self._errors.inc(self.name, "GetAllocatableResources")
        meta: Metadata = self._last_metadata
        if self._metadata is not None:
            try:
                meta = self._last_metadata = self._metadata()
            except Exception as exc:
                # keep the last good metadata: without it no process or cgroup links to a
                # container and a shared GPU's whole interval would be billed as idle
                self._errors.inc(self.name, "metadata")
                log.warning("pod metadata unavailable; using the last good one", extra={"reason": str(exc)})
        containers = []
        for pod in response.pod_resources:
            for c in pod.containers:
                key = ContainerKey(pod.namespace, pod.name, c.name)
                devices = tuple((d.resource_name, i) for d in c.devices for i in d.device_ids)
                uid, cid = meta.get(key, (None, None))
                containers.append(ContainerInfo(key, devices, uid, cid))
        return PodListing(tuple(containers), replicas)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None


# ----------------------------------------------------------------- Kubernetes API


class KubernetesPods:
    """Pods bound to one node, read from the API server (``--kubeconfig`` or in-cluster)."""

    def __init__(self, node_name: str, kubeconfig: Path | None = None, timeout_s: float = 10.0) -> None:
        from kubernetes import client, config  # noqa: PLC0415

        if kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(kubeconfig))
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
        self._api = client.CoreV1Api(api_client)
        self._node = node_name
        self._timeout_s = timeout_s

    def pods(self) -> list[Any]:
        result = self._api.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self._node}", _request_timeout=self._timeout_s
        )
        return [p for p in result.items if (p.status.phase or "") not in ("Succeeded", "Failed")]

    def metadata(self) -> dict[ContainerKey, tuple[str, str | None]]:
        out: dict[ContainerKey, tuple[str, str | None]] = {}
        for pod in self.pods():
            statuses = [*(pod.status.container_statuses or []), *(pod.status.init_container_statuses or [])]
            ids = {s.name: container_id_of(s.container_id) for s in statuses if s.container_id}
            # pod-resources lists restartable init containers (sidecars) beside the containers
            for c in [*pod.spec.containers, *(pod.spec.init_containers or [])]:
                out[ContainerKey(pod.metadata.namespace, pod.metadata.name, c.name)] = (pod.metadata.uid, ids.get(c.name))
        return out


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
    """Shared by the file and API sources: assignment memory, simulated CPU time."""

    def __init__(self, gpu_uuids: Callable[[], Sequence[str]]) -> None:
        self._uuids = gpu_uuids
        self._assigned: dict[ContainerKey, tuple[str, ...]] = {}
        self._first_seen: dict[ContainerKey, float] = {}

    def listing(self, specs: Iterable[PodSpec], now_s: float) -> PodListing:
        specs = list(specs)
        uuids = sorted(self._uuids())
        self._assigned = assign_gpus([(k, n) for k, n, _, _ in specs], uuids, self._assigned)
        containers = []
        present = set()
        for key, _n, profile, uid in specs:
            present.add(key)
            started = self._first_seen.setdefault(key, now_s)
            cores = SIM_CORES.get(profile or "idle", SIM_CORES["idle"])
            devices = tuple((GPU_RESOURCE, u) for u in self._assigned.get(key, ()))
            containers.append(ContainerInfo(key, devices, uid, None, profile, cores * max(now_s - started, 0.0)))
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in present}
        return PodListing(tuple(containers))

    def profiles(self, listing: PodListing) -> dict[str, str]:
        return {u: c.profile or "idle" for c in listing.containers for _r, u in c.device_ids}


def _gpu_request(resources: Any) -> int:
    if resources is None:
        return 0
    for block in (getattr(resources, "limits", None), getattr(resources, "requests", None)):
        if block and GPU_RESOURCE in block:
            try:
                return int(math.ceil(float(block[GPU_RESOURCE])))
            except (TypeError, ValueError):
                return 0
    return 0


class KubernetesPodSource:
    """Simulated assignment of API-server pods on ``node_name`` to simulated GPUs."""

    name = "kubernetes"

    def __init__(self, errors: ErrorCounter, pods: KubernetesPods, gpu_uuids: Callable[[], Sequence[str]]) -> None:
        self._errors = errors
        self._pods = pods
        self._sim = _SimAssigner(gpu_uuids)

    def list(self, now_s: float) -> PodListing:
        try:
            pods = self._pods.pods()
        except Exception as exc:
            self._errors.inc(self.name, "list_pods")
            raise SourceUnavailable(f"listing pods failed: {exc}") from exc
        pods.sort(key=lambda p: (p.metadata.creation_timestamp or 0, p.metadata.namespace, p.metadata.name))
        specs: list[PodSpec] = []
        for pod in pods:
            profile = (pod.metadata.annotations or {}).get(PROFILE_ANNOTATION)
            for c in pod.spec.containers:
                key = ContainerKey(pod.metadata.namespace, pod.metadata.name, c.name)
                specs.append((key, _gpu_request(c.resources), profile, pod.metadata.uid))
        return self._sim.listing(specs, now_s)

    def profiles(self, listing: PodListing) -> dict[str, str]:
        return self._sim.profiles(listing)

    def close(self) -> None:
        pass


class FilePodSource:
    """Simulated pods from a YAML file, re-read each interval::

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

    def list(self, now_s: float) -> PodListing:
        try:
            doc = yaml.safe_load(self._path.read_text()) or {}
            specs: list[PodSpec] = []
            for pod in doc.get("pods", []):
                for c in pod.get("containers", [{"name": pod["name"], "gpus": pod.get("gpus", 0)}]):
                    key = ContainerKey(str(pod.get("namespace", "default")), str(pod["name"]), str(c["name"]))
                    specs.append((key, int(c.get("gpus", 0)), pod.get("profile"), pod.get("uid")))
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self._errors.inc(self.name, "read")
            raise SourceUnavailable(f"pods file {self._path}: {exc}") from exc
        return self._sim.listing(specs, now_s)

    def profiles(self, listing: PodListing) -> dict[str, str]:
        return self._sim.profiles(listing)

    def close(self) -> None:
        pass

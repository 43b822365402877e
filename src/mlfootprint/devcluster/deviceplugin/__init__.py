"""A fake GPU device plugin for the dev cluster's real node (development tooling; not in the chart).

It speaks the kubelet's device plugin API v1beta1 (``api.proto``) exactly as NVIDIA's plugin
does: it registers ``nvidia.com/gpu`` with the kubelet on
``/var/lib/kubelet/device-plugins/kubelet.sock``, serves ``ListAndWatch`` and ``Allocate`` on
its own socket in that directory, and its device IDs are GPU UUIDs: the UUIDs of the node's
simulated GPUs (``SimulatedGpuSource(count, seed, node)``, the same the exporter simulates with
``--gpu-source sim``). So a pod requesting ``nvidia.com/gpu`` is placed by the scheduler,
allocated by the kubelet's device manager, and reported by pod-resources ``List`` with the
UUIDs the exporter meters. ``Allocate`` answers ``NVIDIA_VISIBLE_DEVICES=<uuids>`` as NVIDIA's
plugin does (there is no device node to mount).

A kubelet restart removes every socket in the directory: the plugin notices (its socket is
gone, or the kubelet's socket is a new file), starts a new server and registers again.

Run: ``python -m mlfootprint.devcluster.deviceplugin --node NAME [--gpus 8] [--seed 0]``
(``DevCluster(real_node=True)`` starts it).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from mlfootprint.devcluster.deviceplugin import api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)

API_VERSION = "v1beta1"
DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
KUBELET_SOCKET = "kubelet.sock"
RESOURCE = "nvidia.com/gpu"
ENDPOINT = "mlfootprint-fake-gpu.sock"


def simulated_uuids(node: str, count: int, seed: int = 0) -> list[str]:
    """The UUIDs the exporter's simulated GPUs have on ``node`` (same count and seed)."""
    from mlfootprint.exporter.gpu_sim import SimulatedGpuSource  # noqa: PLC0415
    from mlfootprint.exporter.model import ErrorCounter  # noqa: PLC0415

    return SimulatedGpuSource(ErrorCounter(), count=count, seed=seed, node=node).uuids


class _Servicer(api_pb2_grpc.DevicePluginServicer):
    def __init__(self, device_ids: Sequence[str], stop: threading.Event) -> None:
        self._ids = list(device_ids)
        self._stop = stop
        self.allocations: list[list[str]] = []

    def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:  # noqa: N802
        return api_pb2.DevicePluginOptions()

    def ListAndWatch(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        yield api_pb2.ListAndWatchResponse(devices=[api_pb2.Device(ID=i, health="Healthy") for i in self._ids])
        # The devices never change; keep the stream open until the kubelet or the plugin goes away.
        while context.is_active() and not self._stop.wait(1.0):
            pass

    def GetPreferredAllocation(self, request: Any, context: Any) -> Any:  # noqa: N802
        responses = []
        for req in request.container_requests:
            chosen = list(req.must_include_deviceIDs)
            for device in sorted(req.available_deviceIDs):
                if len(chosen) >= req.allocation_size:
                    break
                if device not in chosen:
                    chosen.append(device)
            responses.append(api_pb2.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return api_pb2.PreferredAllocationResponse(container_responses=responses)

    def Allocate(self, request: Any, context: Any) -> Any:  # noqa: N802
        responses = []
        for req in request.container_requests:
            ids = list(req.devices_ids)
            unknown = [i for i in ids if i not in self._ids]
            if unknown:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown device IDs {unknown}")
            self.allocations.append(ids)
            log.info("allocated", extra={"devices": ids})
            responses.append(api_pb2.ContainerAllocateResponse(envs={"NVIDIA_VISIBLE_DEVICES": ",".join(ids)}))
        return api_pb2.AllocateResponse(container_responses=responses)

    def PreStartContainer(self, request: Any, context: Any) -> Any:  # noqa: N802
        return api_pb2.PreStartContainerResponse()


class FakeGpuPlugin:
    """Serve and register; re-register whenever the kubelet restarts. ``run()`` blocks."""

    def __init__(
        self,
        device_ids: Sequence[str],
        directory: Path = DEVICE_PLUGIN_DIR,
        resource: str = RESOURCE,
        endpoint: str = ENDPOINT,
        poll_s: float = 0.5,
    ) -> None:
        self.device_ids = list(device_ids)
        self.directory = Path(directory)
        self.resource = resource
        self.endpoint = endpoint
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        self.registrations = 0
        self._server: grpc.Server | None = None
        self._servicer: _Servicer | None = None
        self._registered_with: tuple[int, int] | None = None  # (st_dev, st_ino) of kubelet.sock

    @property
    def socket(self) -> Path:
        return self.directory / self.endpoint

    @property
    def kubelet_socket(self) -> Path:
        return self.directory / KUBELET_SOCKET

    def _serve(self) -> None:
        self._stop_server()
        self.socket.unlink(missing_ok=True)
        self._servicer = _Servicer(self.device_ids, self.stop_event)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_DevicePluginServicer_to_server(self._servicer, server)
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self._server = server

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def _register(self) -> None:
        with grpc.insecure_channel(f"unix://{self.kubelet_socket}") as channel:
            stub = api_pb2_grpc.RegistrationStub(channel)
            stub.Register(
                api_pb2.RegisterRequest(
                    version=API_VERSION,
                    endpoint=self.endpoint,
                    resource_name=self.resource,
                    options=api_pb2.DevicePluginOptions(get_preferred_allocation_available=True),
                ),
                timeout=5.0,
            )
        self.registrations += 1
        log.info(
            "registered with the kubelet",
            extra={"resource": self.resource, "devices": len(self.device_ids), "registrations": self.registrations},
        )

    def _kubelet_identity(self) -> tuple[int, int] | None:
        try:
            st = self.kubelet_socket.stat()
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def step(self) -> None:
        """One check: (re)serve and (re)register when the kubelet's socket is new or ours is gone."""
        kubelet = self._kubelet_identity()
        if kubelet is None:
            return
        if kubelet != self._registered_with or not self.socket.exists():
            self._serve()
            try:
                self._register()
            except grpc.RpcError as exc:
                log.warning("registration failed; retrying", extra={"reason": str(exc)})
                return
            self._registered_with = kubelet

    def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            while not self.stop_event.is_set():
                self.step()
                self.stop_event.wait(self.poll_s)
        finally:
            self._stop_server()
            self.socket.unlink(missing_ok=True)
            log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlfootprint.devcluster.deviceplugin",
        description="Fake nvidia.com/gpu device plugin whose device IDs are the node's simulated GPU UUIDs "
        "(development tooling for the dev cluster's real node).",
    )
    parser.add_argument("--node", required=True, help="node name (the simulated GPUs' UUIDs depend on it)")
    parser.add_argument("--gpus", type=int, default=8, help="number of GPUs (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed, as the exporter's --sim-seed (default 0)")
    parser.add_argument("--dir", type=Path, default=DEVICE_PLUGIN_DIR, help=f"device plugin directory (default {DEVICE_PLUGIN_DIR})")
    parser.add_argument("--resource", default=RESOURCE, help=f"resource name (default {RESOURCE})")
    parser.add_argument("--log-format", default="json", choices=["json", "text"])
    args = parser.parse_args(argv)
    if not 0 < args.gpus <= 64:
        parser.error(f"--gpus: must be 1-64, got {args.gpus}")
    from mlfootprint.logs import configure  # noqa: PLC0415

    configure("info", args.log_format)
    plugin = FakeGpuPlugin(simulated_uuids(args.node, args.gpus, args.seed), args.dir, args.resource)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: plugin.stop_event.set())
    log.info("fake GPU device plugin starting", extra={"node": args.node, "devices": plugin.device_ids, "pid": os.getpid()})
    t0 = time.monotonic()
    plugin.run()
    log.info("fake GPU device plugin exiting", extra={"ran_s": round(time.monotonic() - t0, 1)})
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

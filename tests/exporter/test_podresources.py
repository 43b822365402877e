"""kubelet pod-resources v1: a real gRPC server on a temp unix socket; stub regeneration."""

from __future__ import annotations

import filecmp
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from mlfootprint.exporter.model import ContainerKey, ErrorCounter, SourceUnavailable
from mlfootprint.exporter.podresources import api_pb2, api_pb2_grpc
from mlfootprint.exporter.podresources.regenerate import PACKAGE_DIR, regenerate
from mlfootprint.exporter.pods import ContainerMeta, KubeletPodSource, PodMeta, StaticPods

UUID = "GPU-8c5a1c3e-0000-4000-8000-000000000001"


class Lister(api_pb2_grpc.PodResourcesListerServicer):
    def List(self, request, context):  # noqa: N802
        return api_pb2.ListPodResourcesResponse(
            pod_resources=[
                api_pb2.PodResources(
                    name="train-0",
                    namespace="ml",
                    containers=[
                        api_pb2.ContainerResources(
                            name="trainer",
                            devices=[api_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=[UUID])],
                            cpu_ids=[0, 1],
                        ),
                        api_pb2.ContainerResources(name="sidecar"),
                    ],
                ),
                api_pb2.PodResources(
                    name="serve-0",
                    namespace="web",
                    containers=[
                        api_pb2.ContainerResources(
                            name="server",
                            devices=[
                                api_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=["GPU-x::1", "GPU-x::2"]),
                                api_pb2.ContainerDevices(resource_name="nvidia.com/mig-1g.10gb", device_ids=["MIG-y"]),
                            ],
                        )
                    ],
                ),
            ]
        )

    def GetAllocatableResources(self, request, context):  # noqa: N802
        return api_pb2.AllocatableResourcesResponse(
            devices=[
                api_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=[f"GPU-x::{i}" for i in range(4)] + [UUID])
            ]
        )


@pytest.fixture
def kubelet_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "pod-resources"
    directory.mkdir()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(Lister(), server)
    server.add_insecure_port(f"unix://{directory / 'kubelet.sock'}")
    server.start()
    yield directory
    server.stop(grace=None)


def test_list_over_unix_socket(kubelet_dir: Path) -> None:
    errors = ErrorCounter()
    pods = StaticPods([PodMeta("ml", "train-0", "uid-1", "Running", containers=(ContainerMeta("trainer", 1, "c" * 64),))])
    src = KubeletPodSource(errors, kubelet_dir, pods=pods)
    listing = src.list(0.0)
    by_key = {c.key: c for c in listing.containers}
    trainer = by_key[ContainerKey("ml", "train-0", "trainer")]
    assert trainer.device_ids == (("nvidia.com/gpu", UUID),)
    assert (trainer.pod_uid, trainer.container_id) == ("uid-1", "c" * 64)
    assert by_key[ContainerKey("ml", "train-0", "sidecar")].device_ids == ()
    server = by_key[ContainerKey("web", "serve-0", "server")]
    assert server.device_ids == (
        ("nvidia.com/gpu", "GPU-x::1"),
        ("nvidia.com/gpu", "GPU-x::2"),
        ("nvidia.com/mig-1g.10gb", "MIG-y"),
    )
    assert dict(listing.replicas_per_gpu) == {"GPU-x": 4}
    assert errors.counts() == {}
    src.close()


def test_missing_socket_is_no_data(tmp_path: Path) -> None:
    src = KubeletPodSource(ErrorCounter(), tmp_path)
    with pytest.raises(SourceUnavailable):
        src.list(0.0)


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    out = regenerate(tmp_path)
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        assert filecmp.cmp(out / name, PACKAGE_DIR / name, shallow=False), f"{name} is stale: run the regenerate module"

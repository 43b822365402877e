"""Shared fakes for the exporter tests (injected clock, GPU and pod sources)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlfootprint.exporter.model import ContainerInfo, ContainerKey, GpuProcess, GpuReading, HardwareGpuSource, PodListing

FIXTURES = Path(__file__).parent / "fixtures"


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@dataclass
class FakeGpu:
    uuid: str
    model: str = "NVIDIA H100 80GB HBM3"
    energy_mj: float | None = 5_000_000.0
    power_w: float = 100.0
    max_power_w: float = 700.0
    processes: tuple[GpuProcess, ...] = ()


@dataclass
class FakeGpuSource(HardwareGpuSource):
    gpus: list[FakeGpu]
    name: str = "fake"
    fail: bool = False

    def read(self, now_s: float) -> list[GpuReading]:
        from mlfootprint.exporter.model import SourceUnavailable

        if self.fail:
            raise SourceUnavailable("down")
        return [
            GpuReading(g.uuid, g.model, now_s, g.energy_mj, g.power_w, g.max_power_w, g.processes) for g in self.gpus
        ]

    def read_power(self, now_s: float) -> dict[str, float]:
        return {g.uuid: g.power_w for g in self.gpus}

    def close(self) -> None:
        pass


@dataclass
class FakePodSource:
    containers: list[ContainerInfo] = field(default_factory=list)
    name: str = "pods"

    def list(self, now_s: float) -> PodListing:
        return PodListing(tuple(self.containers))

    def close(self) -> None:
        pass


def key(pod: str, container: str = "main", ns: str = "ml") -> ContainerKey:
    return ContainerKey(ns, pod, container)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

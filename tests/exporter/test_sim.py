"""Simulated GPUs and simulated pod assignment (file and API-like sources)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfootprint.exporter.gpu_sim import (
    CHECKPOINT_PERIOD_S,
    SimulatedGpuSource,
    profile_edges,
    profile_power_w,
    read_device_file,
)
from mlfootprint.exporter.model import ContainerInfo, ErrorCounter, PodListing
from mlfootprint.exporter.monitor import Monitor
from mlfootprint.exporter.pods import FilePodSource, assign_gpus

from .conftest import FakeClock, key


def test_deterministic_and_seeded() -> None:
    a = SimulatedGpuSource(ErrorCounter(), count=4, seed=7, node="n1")
    b = SimulatedGpuSource(ErrorCounter(), count=4, seed=7, node="n1")
    c = SimulatedGpuSource(ErrorCounter(), count=4, seed=8, node="n1")
    assert a.uuids == b.uuids != c.uuids
    assert a.read(100.0) == b.read(100.0)


def test_training_profile_has_checkpoint_dips() -> None:
    samples = [profile_power_w("training", float(t), 700.0, 0, 0, 0.0) for t in range(0, 3600, 10)]
    high = [p for p in samples if p > 500]
    low = [p for p in samples if p < 150]
    assert 0.8 * 700 < sum(high) / len(high) < 0.9 * 700
    assert low and all(0.13 * 700 < p < 0.17 * 700 for p in low)
    assert len(low) == pytest.approx(2 * 120 / 10, abs=2)  # two 2-minute checkpoints per hour


def test_inference_follows_request_rate_and_idle_is_low() -> None:
    night = profile_power_w("inference", 3 * 3600.0, 700.0, 0, 0, 0.0)
    afternoon = profile_power_w("inference", 15 * 3600.0, 700.0, 0, 0, 0.0)
    assert afternoon > 2 * night
    assert 60 < profile_power_w("idle", 5.0, 700.0, 0, 0, 0.0) < 80


def test_assign_gpus_is_sticky_and_first_fit() -> None:
    a, b, c = key("a"), key("b"), key("c")
    first = assign_gpus([(a, 2), (b, 1)], ["G1", "G2", "G3"], {})
    assert first == {a: ("G1", "G2"), b: ("G3",)}
    second = assign_gpus([(c, 1), (b, 1)], ["G1", "G2", "G3"], first)  # a ended, c new
    assert second == {b: ("G3",), c: ("G1",)}
    assert assign_gpus([(a, 4)], ["G1"], {}) == {}  # cannot be met: pending


def test_file_pods_drive_simulated_load(tmp_path: Path) -> None:
    pods_file = tmp_path / "pods.yaml"
    pods_file.write_text(
        "pods:\n"
        "  - {namespace: ml, name: train, profile: training, containers: [{name: t, gpus: 2}]}\n"
        "  - {namespace: web, name: serve, profile: inference, containers: [{name: s, gpus: 1}]}\n"
    )
    errors = ErrorCounter()
    gpu = SimulatedGpuSource(errors, count=4, seed=1)
    clock = FakeClock(0.0)
    mon = Monitor("n", errors, gpu=gpu, pods=FilePodSource(errors, pods_file, lambda: gpu.uuids), clock=clock)
    mon.cycle()
    clock.advance(60.0)
    snap = mon.cycle()
    train = next(c for c in snap.containers if c.key.pod == "train")
    assert len(train.gpu_energy_j) == 2
    assert sum(train.gpu_energy_j.values()) == pytest.approx(2 * 60 * 0.85 * 700, rel=0.2)
    assert train.allocation_s == {"NVIDIA H100 80GB HBM3": pytest.approx(120.0)}
    idle_total = sum(g.idle_energy_j for g in snap.gpus)
    assert idle_total == pytest.approx(60 * 70, rel=0.2)  # the one unassigned GPU
    pods_file.write_text("pods: [")  # broken file: source down, counted, previous pods kept
    clock.advance(1.0)
    snap = mon.cycle()
    assert {s.source: s.up for s in snap.sources}["file"] is False
    assert errors.counts()[("file", "read")] == 1


def test_api_server_pods_assigned_and_profiles_follow_annotation() -> None:
    """KubernetesPodSource with a stand-in for the API listing (the real one is a cluster test)."""
    from types import SimpleNamespace as NS

    from mlfootprint.exporter.pods import KubernetesPodSource

    def pod(name: str, profile: str | None, gpus: str | None, created: int) -> NS:
        limits = {"nvidia.com/gpu": gpus} if gpus else {}
        return NS(
            metadata=NS(name=name, namespace="ml", uid=f"uid-{name}", creation_timestamp=created,
                        annotations={"mlfootprint.io/sim-profile": profile} if profile else None),
            spec=NS(containers=[NS(name="main", resources=NS(limits=limits, requests=None))]),
            status=NS(phase="Running", container_statuses=None),
        )

    class Pods:
        def pods(self):  # type: ignore[no-untyped-def]
            return [pod("serve", "inference", "1", 2), pod("train", "training", "2", 1), pod("cpu-only", None, None, 3)]

    errors = ErrorCounter()
    gpu = SimulatedGpuSource(errors, count=4, seed=3)
    src = KubernetesPodSource(errors, Pods(), lambda: gpu.uuids)  # type: ignore[arg-type]
    listing = src.list(0.0)
    uuids = sorted(gpu.uuids)
    devices = {c.key.pod: [u for _r, u in c.device_ids] for c in listing.containers}
    assert devices == {"train": uuids[:2], "serve": uuids[2:3], "cpu-only": []}  # oldest first
    assert src.profiles(listing) == {uuids[0]: "training", uuids[1]: "training", uuids[2]: "inference"}
    gpu.set_profiles(src.profiles(listing), 0.0)
    power = gpu.read_power(3600.0 * 10)
    assert power[uuids[3]] < 100 < power[uuids[0]]


def test_device_file_keeps_counting_while_the_exporter_is_down(tmp_path: Path) -> None:
    """Like NVML: the simulated devices' clock and counters outlive the exporter process."""
    wall = FakeClock(1_700_000_000.0)
    device = tmp_path / "gpus.json"
    errors = ErrorCounter()
    a = SimulatedGpuSource(errors, count=2, seed=5, node="n", device_file=device, time_factor=100.0, unix_clock=wall)
    a.set_profiles({a.uuids[0]: "training"}, a.clock())
    first = {r.uuid: r.energy_mj for r in a.read(a.clock())}
    wall.advance(10.0)  # the exporter is down for 10 s = 1,000 simulated seconds
    b = SimulatedGpuSource(errors, count=2, seed=5, node="n", device_file=device, time_factor=100.0, unix_clock=wall)
    assert b.clock() == pytest.approx(a.clock())  # simulated time went on meanwhile
    after = {r.uuid: r.energy_mj for r in b.read(b.clock())}
    gained_j = {u: (after[u] - first[u]) / 1000.0 for u in first}
    assert gained_j[a.uuids[0]] > 1000 * 0.5 * 700  # still training at the load it had
    assert gained_j[a.uuids[1]] == pytest.approx(1000 * 70, rel=0.05)  # idle
    oracle = read_device_file(device)
    assert oracle[a.uuids[0]].energy_j == pytest.approx(after[a.uuids[0]] / 1000.0, abs=1e-3)
    assert errors.counts() == {}


def test_swings_are_sampled_on_the_simulated_clock() -> None:
    """At 1440x a 2-minute checkpoint dip lasts 83 ms of wall time, shorter than the 100 ms
    sampling: samples are taken on the simulated clock, so the dips are still counted."""
    wall = FakeClock(1_700_000_000.0)
    errors = ErrorCounter()
    gpu = SimulatedGpuSource(errors, count=1, seed=2, node="n", time_factor=1440.0, unix_clock=wall)
    pods = [ContainerInfo(key("train"), (("nvidia.com/gpu", gpu.uuids[0]),), profile="training")]

    class Pods:
        name = "pods"

        def list(self, now_s: float) -> PodListing:
            return PodListing(tuple(pods))

        def close(self) -> None:
            pass

    mon = Monitor("n", errors, gpu=gpu, pods=Pods(), clock=gpu.clock, wall_clock=wall, swing_window_s=1.0)
    mon.cycle()
    for tick in range(600):  # one wall minute at 10 Hz = one simulated day
        wall.advance(0.1)
        mon.sample()
        if tick % 10 == 9:
            mon.cycle()
    snap = mon.cycle()
    checkpoints = 86400 / CHECKPOINT_PERIOD_S
    assert snap.gpus[0].swings == pytest.approx(2 * checkpoints, abs=2)  # down and up at each checkpoint
    train = next(c for c in snap.containers if c.key == key("train"))
    assert train.swings == snap.gpus[0].swings
    assert train.min_power_w < 0.2 * 700 < 0.8 * 700 < train.peak_power_w


def test_profile_edges_are_the_power_steps() -> None:
    phase = 100.0
    edges = profile_edges("training", 0.0, 3600.0, phase)
    assert edges == [1580.0, 1700.0, 3380.0, 3500.0]
    for e in edges:
        before = profile_power_w("training", e - 0.1, 700.0, 0, 0, phase)
        at = profile_power_w("training", e, 700.0, 0, 0, phase)
        assert abs(before - at) > 0.5 * 700
    assert profile_edges("idle", 0.0, 3600.0, phase) == []


def test_the_gpus_of_one_job_checkpoint_together() -> None:
    """A data-parallel job checkpoints on all its GPUs at once: its container's power swings
    (with independent phases the dips would average out over its GPUs and never count)."""
    wall = FakeClock(1_700_000_000.0)
    errors = ErrorCounter()
    gpu = SimulatedGpuSource(errors, count=4, seed=2, node="n", time_factor=1440.0, unix_clock=wall)
    job = [ContainerInfo(key("train"), tuple(("nvidia.com/gpu", u) for u in gpu.uuids), profile="training")]

    class Pods:
        name = "pods"

        def list(self, now_s: float) -> PodListing:
            return PodListing(tuple(job))

        def close(self) -> None:
            pass

    mon = Monitor("n", errors, gpu=gpu, pods=Pods(), clock=gpu.clock, wall_clock=wall, swing_window_s=1.0)
    mon.cycle()
    edges = {tuple(profile_edges("training", 0.0, 7200.0, g.phase)) for g in gpu._gpus}
    assert len(edges) == 1  # one phase for the whole job
    for tick in range(300):
        wall.advance(0.1)
        mon.sample()
        if tick % 10 == 9:
            mon.cycle()
    train = next(c for c in mon.cycle().containers if c.key == key("train"))
    assert train.swings >= 2 * (30 * 1440 / CHECKPOINT_PERIOD_S) - 2  # down and up at each checkpoint

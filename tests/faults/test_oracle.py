"""The fault suite's oracle (``oracle.py``): its arithmetic, and that its notion of a GPU's
*held energy* is exactly what the real exporter code bills to the GPU's holders."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from mlfootprint.exporter.gpu_sim import SimulatedGpuSource, read_device_file
from mlfootprint.exporter.model import ContainerInfo, ContainerKey, ErrorCounter, PodListing
from mlfootprint.exporter.monitor import Monitor
from tests.faults.oracle import (
    ClockMap,
    DeviceHistory,
    DeviceRecord,
    GapWindow,
    allowed_loss_j,
    components,
    pods_truth_j,
    tolerance_j,
)


def _history(*records: tuple[float, float, bool], uuid: str = "GPU-a") -> DeviceHistory:
    h = DeviceHistory()
    for t, e, held in records:
        h.add(uuid, DeviceRecord(t, e, held))
    return h


def test_held_energy_counts_the_intervals_ending_at_a_held_reading() -> None:
    h = _history((0, 100, False), (1, 150, False), (2, 250, True), (3, 400, True), (4, 420, False))
    # (1,2] is billed to the pod first listed at 2; (3,4] to nobody (it left before 4)
    assert h.held_j("GPU-a") == 100 + 150
    assert h.held_j("GPU-a", until_s=2) == 100
    # a record the recorder missed merges intervals: the bound only gets looser
    missed = _history((0, 100, False), (2, 250, True), (3, 400, True), (4, 420, False))
    assert missed.held_j("GPU-a") >= h.held_j("GPU-a")


def test_windows_take_whole_intervals_and_each_once() -> None:
    h = _history((0, 0, True), (1, 10, True), (2, 30, True), (3, 60, False), (4, 100, True))
    assert h.held_j_in("GPU-a", [(1.5, 1.6)]) == 20  # inside (1,2]: the whole interval
    assert h.held_j_in("GPU-a", [(0.5, 1.5), (1.2, 2.5)]) == 10 + 20  # overlapping windows: once
    assert h.held_j_in("GPU-a", [(2.5, 3.5)]) == 40  # (2,3] not held at 3; (3,4] held
    assert h.held_j_in("GPU-a", [(-math.inf, math.inf)]) == h.held_j("GPU-a")
    assert h.held_j_in("GPU-a", []) == 0


def test_history_keeps_newer_records_and_reports_counters_going_back() -> None:
    h = DeviceHistory()
    assert h.add("g", DeviceRecord(1, 10, False))
    assert not h.add("g", DeviceRecord(1, 99, True))  # the same write read twice
    assert not h.add("g", DeviceRecord(0.5, 5, False))
    assert h.add("g", DeviceRecord(2, 8, True))
    assert h.regressions == [("g", 10, 8)]
    assert h.readings("g") == 2 and h.latest_t("g") == 2 and h.uuids() == ["g"]


def test_components_join_runs_that_share_pods() -> None:
    comps = components({"TR/a": ["p1"], "TR/b": ["p1", "p2"], "TR/c": ["p3"], "TR/d": ["p2", "p4"], "TR/e": []})
    assert [(sorted(c.runs), sorted(c.pods)) for c in comps] == [
        (["TR/a", "TR/b", "TR/d"], ["p1", "p2", "p4"]),
        (["TR/c"], ["p3"]),
        (["TR/e"], []),
    ]


def test_truth_counts_each_gpu_once_and_allowances_only_the_component_s_pods() -> None:
    h = DeviceHistory()
    for uuid, step in (("g1", 10.0), ("g2", 20.0)):
        for t in range(5):
            h.add(uuid, DeviceRecord(t, step * t, t > 0))
    pod_gpus = {"p1": {"g1"}, "p2": {"g1", "g2"}, "other": {"g2"}}
    truth, readings = pods_truth_j(["p1", "p2"], pod_gpus, h)
    assert truth == 40 + 80 and readings == 10
    assert pods_truth_j(["p1"], pod_gpus, h, until_s={"g1": 2})[0] == 20
    gaps = [GapWindow("p1", 1.5, 2.5, "no state"), GapWindow("other", 0, 4, "no state")]
    assert allowed_loss_j(["p1"], pod_gpus, h, gaps) == 20  # intervals (1,2] and (2,3] of g1
    assert allowed_loss_j(["p2"], pod_gpus, h, gaps) == 0


def test_clock_map_and_tolerance() -> None:
    c = ClockMap(factor=60.0, anchor_unix=1000.0, anchor_sim=5000.0)
    assert c.sim_at(1001.0) == 5060.0 and c.unix_at(c.sim_at(1234.5)) == pytest.approx(1234.5)
    assert tolerance_j(0.0) == 1.0
    assert tolerance_j(1e9, readings=1000) == pytest.approx(1.0 + 1e3 + 1.0)


class _Pods:
    """A pod source whose holders the test changes between intervals."""

    name = "pods"

    def __init__(self) -> None:
        self.listing = PodListing(())

    def list(self, now_s: float) -> PodListing:
        return self.listing

    def close(self) -> None:
        pass


def test_held_energy_is_what_the_real_exporter_bills_to_the_holders(tmp_path: Path) -> None:
    """The oracle's rule against the real code: simulated GPUs with a device file, the real
    Monitor, holders that come, go and switch GPUs at random intervals, and a restart from the
    state file in the middle. Per GPU, the energy billed to containers equals the held energy
    computed from the device file's records (to the mJ rounding of the counter)."""
    rng = random.Random(11)
    now = [1_700_000_000.0]

    def unix() -> float:
        return now[0]

    device_file, state_file = tmp_path / "devices.json", tmp_path / "state.json"

    def monitor() -> tuple[Monitor, SimulatedGpuSource]:
        gpu = SimulatedGpuSource(ErrorCounter(), count=3, node="n", device_file=device_file, time_factor=60.0, unix_clock=unix)
        return Monitor("n", ErrorCounter(), gpu=gpu, pods=pods, clock=gpu.clock, wall_clock=unix, state_file=state_file), gpu

    pods = _Pods()
    mon, gpu = monitor()
    uuids = gpu.uuids
    history = DeviceHistory()
    billed: dict[str, float] = {}
    for step in range(120):
        if step % 7 == 0:  # holders change: each GPU free, or held by a pod named after the step
            containers = []
            for i, u in enumerate(uuids):
                if rng.random() < 0.7:
                    key = ContainerKey("ns", f"pod-{step}-{i}", "main")
                    containers.append(ContainerInfo(key, (("nvidia.com/gpu", u),), profile=rng.choice(["training", "inference"])))
            pods.listing = PodListing(tuple(containers))
        if step == 60:  # kill -9 and a restart from the state file, 3 s later
            now[0] += 3.0
            mon, gpu = monitor()
        now[0] += rng.uniform(0.2, 1.0)
        snap = mon.cycle()
        for uuid, rec in read_device_file(device_file).items():
            history.add(uuid, DeviceRecord(rec.t_s, rec.energy_j, rec.profile is not None))
        billed = {}
        for c in snap.containers:
            for (u, _model), j in c.gpu_energy_j.items():
                billed[u] = billed.get(u, 0.0) + j
    for u in uuids:
        truth = history.held_j(u)
        assert truth > 0
        assert billed.get(u, 0.0) == pytest.approx(truth, abs=tolerance_j(truth, history.readings(u)))

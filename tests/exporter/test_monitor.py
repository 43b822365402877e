"""Monitor end to end with injected clock and fake sources: conservation, resets, restarts,
ended pods, sub-second power statistics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlfootprint.exporter.cgroups import CgroupReader
from mlfootprint.exporter.model import ContainerInfo, ErrorCounter, GpuProcess
from mlfootprint.exporter.monitor import Clock, Monitor
from mlfootprint.exporter.state import load_state

from .conftest import FIXTURES, FakeClock, FakeGpu, FakeGpuSource, FakePodSource, key

G0, G1 = "GPU-0", "GPU-1"
A, B = key("a"), key("b")


def make(clock: FakeClock, **kw):  # type: ignore[no-untyped-def]
    gpus = FakeGpuSource([FakeGpu(G0), FakeGpu(G1, energy_mj=None, power_w=50.0)])
    pods = FakePodSource([ContainerInfo(A, (("nvidia.com/gpu", G0),)), ContainerInfo(B, ())])
    mon = Monitor("node-1", ErrorCounter(), gpu=gpus, pods=pods, clock=clock, **kw)
    return mon, gpus, pods


def pod_gpu(snap, k, uuid):  # type: ignore[no-untyped-def]
    c = next(c for c in snap.containers if c.key == k)
    return sum(j for (u, _m), j in c.gpu_energy_j.items() if u == uuid)


def test_counter_and_integral_paths_conserve(clock: FakeClock) -> None:
    mon, gpus, _ = make(clock)
    mon.cycle()
    for _step in range(10):  # 1 s at 100 ms samples
        clock.advance(0.1)
        gpus.gpus[0].energy_mj += 30_000  # 300 W for 0.1 s
        gpus.gpus[0].power_w = 300.0
        mon.sample()
    snap = mon.cycle()
    g = {s.uuid: s for s in snap.gpus}
    assert g[G0].energy_j == pytest.approx(300.0)
    assert pod_gpu(snap, A, G0) == pytest.approx(300.0)
    assert g[G0].idle_energy_j == pytest.approx(0.0)
    assert g[G1].energy_j == pytest.approx(50.0)  # trapezoid of 50 W samples over 1 s
    assert g[G1].idle_energy_j == pytest.approx(50.0)
    a = next(c for c in snap.containers if c.key == A)
    assert a.allocation_s == {"NVIDIA H100 80GB HBM3": pytest.approx(1.0)}
    assert (a.power_w, a.peak_power_w, a.min_power_w) == (300.0, 300.0, 100.0)


def test_driver_reload_is_neither_negative_nor_doubled(clock: FakeClock) -> None:
    mon, gpus, _ = make(clock)
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 200_000
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj = 100_000  # reset to ~0 by a driver reload, then 100 J since
    snap = mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj = 10**12  # bogus jump: discarded
    snap = mon.cycle()
    assert {s.uuid: s.energy_j for s in snap.gpus}[G0] == pytest.approx(300.0)
    assert pod_gpu(snap, A, G0) == pytest.approx(300.0)


def test_swing_counting_on_checkpoint_dips(clock: FakeClock) -> None:
    mon, gpus, _ = make(clock, swing_fraction=0.5, swing_window_s=1.0)
    mon.cycle()
    mon.cycle()  # shares known: A holds G0
    for step in range(40):
        clock.advance(0.1)
        gpus.gpus[0].power_w = 600.0 if (step // 10) % 2 == 0 else 100.0
        mon.sample()
    snap = mon.cycle()
    assert {s.uuid: s.swings for s in snap.gpus}[G0] == 4
    a = next(c for c in snap.containers if c.key == A)
    assert a.swings == 4 and a.peak_power_w == 600.0 and a.min_power_w == 100.0


def test_ended_pod_kept_for_grace_then_dropped(clock: FakeClock) -> None:
    mon, gpus, pods = make(clock, ended_pod_grace_s=5.0)
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 100_000
    mon.cycle()
    pods.containers = []  # pod a ended
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 100_000
    snap = mon.cycle()
    assert pod_gpu(snap, A, G0) == pytest.approx(100.0)  # final energy still visible
    assert {s.uuid: s.idle_energy_j for s in snap.gpus}[G0] == pytest.approx(100.0)
    clock.advance(4.5)
    assert any(c.key == A for c in mon.cycle().containers)
    clock.advance(1.0)
    assert not any(c.key == A for c in mon.cycle().containers)


def restart(mon: Monitor, clock: FakeClock, gpus: FakeGpuSource, state: Path, **kw) -> Monitor:  # type: ignore[no-untyped-def]
    """A new process on the same node (as after kill -9: nothing is saved on the way out)."""
    return Monitor("node-1", ErrorCounter(), gpu=gpus, pods=mon._pod_source, clock=clock, state_file=state, **kw)


def test_restart_resumes_and_bills_the_downtime_to_the_same_holder(clock: FakeClock, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    mon, gpus, _ = make(clock, state_file=state)
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 400_000
    served = mon.cycle()  # checkpointed before it was served
    start = next(c.start_unix for c in served.containers if c.key == A)
    # kill -9: the hardware counter runs on by 50 J while no exporter is there
    gpus.gpus[0].energy_mj += 50_000
    clock.advance(5.0)
    mon2 = restart(mon, clock, gpus, state)
    assert pod_gpu(mon2.snapshot, A, G0) == pytest.approx(400.0)  # restored: never less than served
    snap = mon2.cycle()
    assert pod_gpu(snap, A, G0) == pytest.approx(450.0)  # the downtime is billed, once
    a = next(c for c in snap.containers if c.key == A)
    assert a.start_unix == start  # same counters: a consumer must not see a reset
    assert a.allocation_s == {"NVIDIA H100 80GB HBM3": pytest.approx(1.0 + 5.0)}
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 100_000
    snap = mon2.cycle()
    assert pod_gpu(snap, A, G0) == pytest.approx(550.0)
    assert {s.uuid: s.energy_j for s in snap.gpus}[G0] == pytest.approx(550.0)
    assert {s.uuid: s.idle_energy_j for s in snap.gpus}[G0] == pytest.approx(0.0)


def test_restart_bills_a_gpu_whose_holder_changed_to_idle(clock: FakeClock, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    mon, gpus, pods = make(clock, state_file=state)
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 100_000
    mon.cycle()
    gpus.gpus[0].energy_mj += 70_000  # used by somebody while we were down
    pods.containers = [ContainerInfo(B, (("nvidia.com/gpu", G0),))]  # a ended, b holds G0 now
    clock.advance(1.0)
    snap = restart(mon, clock, gpus, state).cycle()
    assert pod_gpu(snap, A, G0) == pytest.approx(100.0)
    assert pod_gpu(snap, B, G0) == 0.0
    assert {s.uuid: s.idle_energy_j for s in snap.gpus}[G0] == pytest.approx(70.0)


def test_restart_without_state_file_starts_new_counters(clock: FakeClock, tmp_path: Path) -> None:
    wall = FakeClock(1_700_000_000.0)
    mon, gpus, _ = make(clock, wall_clock=wall)
    mon.cycle()
    first = next(c.start_unix for c in mon.snapshot.containers if c.key == A)
    wall.advance(10.0)
    mon2 = Monitor("node-1", ErrorCounter(), gpu=gpus, pods=mon._pod_source, clock=clock, wall_clock=wall)
    snap = mon2.cycle()
    assert next(c.start_unix for c in snap.containers if c.key == A) == first + 10.0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "not valid JSON"),
        # found by the fault suite (exporter-garbage-state): bytes that are not UTF-8 raised
        # UnicodeDecodeError out of load_state and the exporter exited (a crash loop)
        (b"\x8a\xff\x00 binary \xc3", "not valid JSON"),
        ('{"version": 2}', "node"),  # missing keys
        ('{"version": 2, "node": "node-1", "saved_unix": 1, "clock_s": 0, "gpus": {"G": {"model": 3, "energy_j": "x", "idle_j": 0}}}', "gpus.G"),
        ('{"version": 2, "node": "node-1", "saved_unix": 1, "clock_s": 0, "gpus": {"G": {"model": "m", "energy_j": NaN, "idle_j": 0}}}', "energy_j"),
        ('{"version": 2, "node": "node-1", "saved_unix": 1, "clock_s": 0, "gpus": {"G": {"model": "m", "energy_j": -1e18, "idle_j": 0}}}', "energy_j"),
        ('{"version": 2, "node": "other", "saved_unix": 1, "clock_s": 0}', "another node"),
        ('{"version": 9}', "version"),
        ("[]", "not a JSON object"),
    ],
)
def test_a_bad_state_file_is_set_aside_and_the_exporter_starts(
    clock: FakeClock, tmp_path: Path, content: str | bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.json"
    if isinstance(content, bytes):
        state.write_bytes(content)
    else:
        state.write_text(content)
    errors = ErrorCounter()
    gpus = FakeGpuSource([FakeGpu(G0)])
    pods = FakePodSource([ContainerInfo(A, (("nvidia.com/gpu", G0),))])
    with caplog.at_level("ERROR"):
        mon = Monitor("node-1", errors, gpu=gpus, pods=pods, clock=clock, state_file=state)
    assert errors.counts() == {("state", "load"): 1}
    record = next(r for r in caplog.records if r.getMessage().startswith("state file invalid"))
    assert why in record.reason  # type: ignore[attr-defined]
    assert "-1e18" not in record.reason and "NaN" not in record.reason  # type: ignore[attr-defined]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("state.json.bad-")]
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 10_000
    snap = mon.cycle()  # metering goes on, and a fresh checkpoint replaces the bad one
    assert pod_gpu(snap, A, G0) == pytest.approx(10.0)
    assert load_state(state, "node-1") is not None


def test_version_1_state_is_migrated(clock: FakeClock, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(
        '{"version": 1, "node": "node-1", "gpus": {"GPU-0": {"model": "m", "energy_j": 10.0, "idle_j": 2.0, "swings": 1}},'
        ' "host_j": {"cpu": 5.0}, "containers": [{"namespace": "ml", "pod": "a", "container": "main",'
        ' "gpu_j": [["GPU-0", "m", 8.0]], "host_j": {"cpu": 1.0}, "alloc_s": {"m": 3.0}, "peak_w": 1.0, "min_w": 0.5,'
        ' "swings": 1, "ended_at": null}]}'
    )
    errors = ErrorCounter()
    mon = Monitor("node-1", errors, clock=clock, state_file=state)
    assert errors.counts() == {}
    assert pod_gpu(mon.snapshot, A, G0) == pytest.approx(8.0)
    assert mon.snapshot.host_energy_j == {"cpu": 5.0}


def test_state_document_round_trips_through_validation(clock: FakeClock, tmp_path: Path) -> None:
    """The checkpoint is written as plain JSON for speed; the typed model must accept it."""
    state = tmp_path / "state.json"
    mon, gpus, _ = make(clock, state_file=state)
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 10_000
    mon.cycle()
    loaded = load_state(state, "node-1")
    assert loaded is not None and loaded.gpus[G0].counter_mj == gpus.gpus[0].energy_mj
    assert sorted((c.pod, c.gpu[0].energy_j if c.gpu else 0.0) for c in loaded.containers) == [("a", 10.0), ("b", 0.0)]


def test_shared_gpu_through_cgroups(clock: FakeClock) -> None:
    """Time-sliced GPU: PIDs resolve through /proc/<pid>/cgroup fixtures to containers."""
    gpus = FakeGpuSource(
        [FakeGpu(G0, processes=(GpuProcess(4242, 60.0), GpuProcess(4444, 20.0), GpuProcess(1, 20.0)))]
    )
    pods = FakePodSource(
        [
            ContainerInfo(A, (("nvidia.com/gpu", f"{G0}::0"),), "11111111-2222-3333-4444-555555555555", "a" * 64),
            ContainerInfo(B, (("nvidia.com/gpu", f"{G0}::1"),), "33333333-4444-5555-6666-777777777777", "c" * 64),
        ]
    )
    cg = CgroupReader(FIXTURES / "proc", FIXTURES / "sys/fs/cgroup")
    mon = Monitor("n", ErrorCounter(), gpu=gpus, pods=pods, cgroups=cg, clock=clock)
    mon.cycle()
    clock.advance(1.0)
    gpus.gpus[0].energy_mj += 1_000_000
    snap = mon.cycle()
    assert pod_gpu(snap, A, G0) == pytest.approx(600.0)
    assert pod_gpu(snap, B, G0) == pytest.approx(200.0)
    total = pod_gpu(snap, A, G0) + pod_gpu(snap, B, G0) + snap.gpus[0].idle_energy_j
    assert math.isclose(total, snap.gpus[0].energy_j)


def test_source_down_is_reported_and_pods_kept(clock: FakeClock) -> None:
    mon, gpus, _ = make(clock)
    mon.cycle()
    gpus.fail = True
    clock.advance(1.0)
    snap = mon.cycle()
    assert {s.source: s.up for s in snap.sources} == {"fake": False, "pods": True}


def test_accelerated_clock() -> None:
    t = [100.0]
    clock = Clock(1440.0, now=lambda: 5000.0, mono=lambda: t[0])
    t[0] += 1.0
    assert clock() == 5000.0 + 1440.0


def test_grace_counts_wall_seconds_under_an_accelerated_clock(clock: FakeClock) -> None:
    """Simulated time runs 1440x faster; an ended pod stays for the grace in *real* seconds."""
    wall = FakeClock(0.0)
    mon, _gpus, pods = make(clock, ended_pod_grace_s=5.0, wall_clock=wall)
    mon.cycle()
    pods.containers = []  # pod a ended
    clock.advance(1440.0)  # one accelerated wall second = a simulated day's minute
    wall.advance(1.0)
    mon.cycle()
    clock.advance(4 * 1440.0)
    wall.advance(4.0)
    assert any(c.key == A for c in mon.cycle().containers)  # 5 s not yet passed in real time
    clock.advance(1440.0)
    wall.advance(1.5)
    assert not any(c.key == A for c in mon.cycle().containers)


def test_power_ratio_histogram_counts_seconds_at_each_share_of_the_limit(clock: FakeClock) -> None:
    mon, gpus, _ = make(clock)
    mon.cycle()
    mon.cycle()  # shares known: A holds G0 (700 W limit)
    for step in range(40):  # 1 s at 600 W, 1 s at 100 W, twice, sampled at 10 Hz
        clock.advance(0.1)
        gpus.gpus[0].power_w = 600.0 if (step // 10) % 2 == 0 else 100.0
        mon.sample()
    snap = mon.cycle()
    a = next(c for c in snap.containers if c.key == A)
    buckets = dict(zip((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, math.inf), a.power_ratio_s, strict=True))
    assert buckets[0.1] == 0.0
    assert buckets[0.2] == pytest.approx(2.0)  # 100/700 = 0.14 for 2 s
    assert buckets[0.8] == pytest.approx(2.0)
    assert buckets[0.9] == pytest.approx(4.0)  # 600/700 = 0.86 for 2 s more
    assert buckets[math.inf] == pytest.approx(4.0)  # the cycle's own sample adds no time
    assert a.power_ratio_sum == pytest.approx(2 * 600 / 700 + 2 * 100 / 700)
    assert a.power_limit_w == 700.0


def test_the_power_limit_outlives_the_container(clock: FakeClock) -> None:
    """The histogram's last seconds (sampled before the pod's end was seen) keep their limit."""
    mon, _gpus, pods = make(clock)
    mon.cycle()
    mon.cycle()
    for _ in range(5):
        clock.advance(0.1)
        mon.sample()
    pods.containers = []  # a ended
    snap = mon.cycle()
    a = next(c for c in snap.containers if c.key == A)
    assert a.power_ratio_s[-1] == pytest.approx(0.5) and a.power_limit_w == 700.0

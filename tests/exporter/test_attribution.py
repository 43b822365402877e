from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.exporter.attribution import (
    DeviceInterval,
    attribute,
    build_holdings,
    host_fractions,
    mig_slices_of,
)
from mlfootprint.exporter.model import ContainerInfo, GpuProcess, MigInstance

from .conftest import key

G0, G1 = "GPU-0000", "GPU-1111"
A, B, C = key("a"), key("b"), key("c")


def test_whole_gpu_goes_to_its_pod() -> None:
    holdings = build_holdings([ContainerInfo(A, (("nvidia.com/gpu", G0),))], {})
    r = attribute([DeviceInterval(G0, "H100", 100.0), DeviceInterval(G1, "H100", 40.0)], holdings, {}, 1.0)
    assert r.gpu_energy_j == {(A, G0): 100.0}
    assert r.gpu_idle_j == {G0: 0.0, G1: 40.0}
    assert r.allocation_s == {(A, "H100"): 1.0}


def test_time_slicing_split_by_sm_utilisation() -> None:
    containers = [
        ContainerInfo(A, (("nvidia.com/gpu", f"{G0}::0"),)),
        ContainerInfo(B, (("nvidia.com/gpu", f"{G0}::1"), ("nvidia.com/gpu", f"{G0}::2"))),
    ]
    holdings = build_holdings(containers, {}, {G0: 4})
    procs = (GpuProcess(10, 30.0), GpuProcess(11, 10.0), GpuProcess(20, 40.0), GpuProcess(99, 20.0))
    dev = DeviceInterval(G0, "H100", 200.0, procs)
    r = attribute([dev], holdings, {10: A, 11: A, 20: B}, 2.0)
    assert r.gpu_energy_j[(A, G0)] == pytest.approx(80.0)  # 40 %
    assert r.gpu_energy_j[(B, G0)] == pytest.approx(80.0)  # 40 %
    assert r.gpu_idle_j[G0] == pytest.approx(40.0)  # pid 99 unknown + 0 % rest
    assert r.allocation_s[(A, "H100")] == pytest.approx(0.5)  # 1 of 4 replicas x 2 s
    assert r.allocation_s[(B, "H100")] == pytest.approx(1.0)
    # idle policy allocation: the remainder split 1:2 by replicas held
    r2 = attribute([dev], holdings, {10: A, 11: A, 20: B}, 2.0, "allocation")
    assert r2.gpu_energy_j[(A, G0)] == pytest.approx(80.0 + 40.0 / 3)
    assert r2.gpu_energy_j[(B, G0)] == pytest.approx(80.0 + 80.0 / 3)
    assert r2.gpu_idle_j[G0] == pytest.approx(0.0, abs=1e-9)


def test_oversubscribed_utilisation_is_normalised() -> None:
    containers = [ContainerInfo(A, (("nvidia.com/gpu", f"{G0}::0"),)), ContainerInfo(B, (("nvidia.com/gpu", f"{G0}::1"),))]
    r = attribute(
        [DeviceInterval(G0, "H100", 90.0, (GpuProcess(1, 90.0), GpuProcess(2, 90.0)))],
        build_holdings(containers, {}),
        {1: A, 2: B},
        1.0,
    )
    assert r.gpu_energy_j[(A, G0)] == pytest.approx(45.0)
    assert r.gpu_idle_j[G0] == pytest.approx(0.0, abs=1e-9)


def test_mps_without_utilisation_samples_split_equally_among_running() -> None:
    containers = [ContainerInfo(A, (("nvidia.com/gpu", G0),)), ContainerInfo(B, (("nvidia.com/gpu", G0),))]
    r = attribute([DeviceInterval(G0, "H100", 60.0, (GpuProcess(1), GpuProcess(2)))], build_holdings(containers, {}), {1: A, 2: B}, 1.0)
    assert r.gpu_energy_j == {(A, G0): 30.0, (B, G0): 30.0}


def test_mig_split_by_slices_and_activity() -> None:
    mig_parents = {"MIG-a": (G0, 3, 7), "MIG-b": (G0, 1, 7), "MIG-c": (G0, 2, 7)}
    containers = [
        ContainerInfo(A, (("nvidia.com/mig-3g.40gb", "MIG-a"),)),
        ContainerInfo(B, (("nvidia.com/mig-1g.10gb", "MIG-b"),)),
        ContainerInfo(C, (("nvidia.com/mig-2g.20gb", "MIG-c"),)),
    ]
    dev = DeviceInterval(
        G0,
        "H100",
        700.0,
        (GpuProcess(1, None, "MIG-a"),),
        (MigInstance("MIG-a", 3), MigInstance("MIG-b", 1), MigInstance("MIG-c", 2, activity=0.5)),
    )
    r = attribute([dev], build_holdings(containers, mig_parents), {}, 1.0)
    assert r.gpu_energy_j[(A, G0)] == pytest.approx(300.0)  # 3/7, busy
    assert r.gpu_energy_j.get((B, G0), 0.0) == 0.0  # 1/7, no process
    assert r.gpu_energy_j[(C, G0)] == pytest.approx(100.0)  # 2/7 x 0.5
    assert r.gpu_idle_j[G0] == pytest.approx(300.0)
    assert r.allocation_s[(A, "H100")] == pytest.approx(3 / 7)
    assert mig_slices_of("nvidia.com/mig-3g.40gb") == 3 and mig_slices_of("nvidia.com/gpu") is None


def test_host_by_cpu_time_share() -> None:
    assert host_fractions({A: 1.0, B: 3.0}, 8.0) == {A: 0.125, B: 0.375}
    assert host_fractions({A: 1.0, B: 3.0}, None) == {A: 0.25, B: 0.75}
    assert host_fractions({A: 0.0}, 0.0) == {}
    r = attribute([], {}, {}, 1.0, host_energy_j={"cpu": 80.0, "dram": 8.0}, cpu_delta_s={A: 2.0}, host_busy_delta_s=4.0)
    assert r.host_energy_j == {A: {"cpu": 40.0, "dram": 4.0}}


# ------------------------------------------------------------------ conservation property

uuids = st.sampled_from([G0, G1, "GPU-2222"])
pods = st.sampled_from([A, B, C, key("d", "side")])


@st.composite
def scenarios(draw):  # type: ignore[no-untyped-def]
    containers = []
    for k in draw(st.lists(pods, unique=True, max_size=4)):
        ids = []
        for u in draw(st.lists(uuids, max_size=2)):
            ids.append(("nvidia.com/gpu", u if draw(st.booleans()) else f"{u}::{draw(st.integers(0, 3))}"))
        if draw(st.booleans()):
            ids.append(("nvidia.com/mig-1g.10gb", draw(st.sampled_from(["MIG-x", "MIG-y"]))))
        containers.append(ContainerInfo(k, tuple(ids)))
    pid_map = {i: draw(pods) for i in range(6)}
    devices = []
    for u in [G0, G1, "GPU-2222"]:
        procs = tuple(
            GpuProcess(pid, draw(st.one_of(st.none(), st.floats(0, 100))), draw(st.sampled_from([None, "MIG-x"])))
            for pid in draw(st.lists(st.integers(0, 8), max_size=5))
        )
        migs = (MigInstance("MIG-x", 2, draw(st.one_of(st.none(), st.floats(0, 1)))), MigInstance("MIG-y", 5)) if u == G0 else ()
        energy = draw(st.floats(0, 1e7, allow_nan=False, allow_infinity=False))
        devices.append(DeviceInterval(u, "H100", energy, procs, migs))
    policy = draw(st.sampled_from(["none", "allocation"]))
    return containers, pid_map, devices, policy


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_conservation_attributed_plus_idle_equals_measured(scenario) -> None:  # type: ignore[no-untyped-def]
    containers, pid_map, devices, policy = scenario
    mig_parents = {"MIG-x": (G0, 2, 7), "MIG-y": (G0, 5, 7)}
    r = attribute(devices, build_holdings(containers, mig_parents), pid_map, 1.0, policy)
    for dev in devices:
        attributed = [e for (c, u), e in r.gpu_energy_j.items() if u == dev.uuid]
        assert all(e >= 0 for e in attributed)
        assert r.gpu_idle_j[dev.uuid] >= 0
        total = math.fsum(attributed) + r.gpu_idle_j[dev.uuid]
        assert total == pytest.approx(dev.energy_j, rel=1e-9, abs=1e-9)
        assert math.fsum(r.gpu_shares[dev.uuid].values()) <= 1.0 + 1e-12


def test_host_never_more_than_the_busy_share() -> None:
    # 10 s on a 4-CPU host: 40 CPU-s of capacity, 10 busy
    assert host_fractions({A: 2.0, B: 6.0}, 10.0, 40.0) == {A: pytest.approx(0.05), B: pytest.approx(0.15)}
    # containers claim 20 CPU-s but the host was busy for only 10: scaled to the busy share
    f = host_fractions({A: 5.0, B: 15.0}, 10.0, 40.0)
    assert f == {A: pytest.approx(0.0625), B: pytest.approx(0.1875)} and math.fsum(f.values()) == pytest.approx(0.25)
    r = attribute([], {}, {}, 10.0, host_energy_j={"cpu": 400.0}, cpu_delta_s={A: 5.0, B: 15.0}, host_busy_delta_s=10.0, host_total_delta_s=40.0)
    assert r.host_energy_j == {A: {"cpu": pytest.approx(25.0)}, B: {"cpu": pytest.approx(75.0)}}
    assert r.host_unattributed_j == {"cpu": pytest.approx(300.0)}


@settings(max_examples=300, deadline=None)
@given(
    cpu=st.dictionaries(pods, st.floats(0, 1e4, allow_nan=False), max_size=4),
    busy=st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False)),
    total=st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False)),
    energy=st.floats(0, 1e7, allow_nan=False),
)
def test_host_conservation_pods_plus_unattributed_equals_measured(cpu, busy, total, energy) -> None:  # type: ignore[no-untyped-def]
    r = attribute([], {}, {}, 1.0, host_energy_j={"cpu": energy, "dram": energy / 10}, cpu_delta_s=cpu,
                  host_busy_delta_s=busy, host_total_delta_s=total)
    for comp, measured in (("cpu", energy), ("dram", energy / 10)):
        pods_j = math.fsum(parts[comp] for parts in r.host_energy_j.values())
        assert pods_j + r.host_unattributed_j[comp] == pytest.approx(measured, rel=1e-9, abs=1e-6)
        if busy is not None and total:
            assert pods_j <= measured * (min(busy, total) / total) * (1 + 1e-9) + 1e-6

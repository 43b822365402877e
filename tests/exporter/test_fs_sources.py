"""Fixture trees for powercap/RAPL, /proc and cgroups (v1 and v2; containerd, CRI-O, docker)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlfootprint.exporter.cgroups import CgroupReader, parse_cgroup_path, parse_proc_cgroup
from mlfootprint.exporter.host import ModelHostSource, RaplHostSource, read_proc_stat
from mlfootprint.exporter.model import ErrorCounter, SourceUnavailable
from mlfootprint.exporter.monitor import Monitor

from .conftest import FIXTURES, FakeClock

CID = {c: c * 64 for c in "abcd"}


def test_rapl_zones_and_components() -> None:
    src = RaplHostSource(ErrorCounter(), FIXTURES / "sys", FIXTURES / "proc")
    reading = src.read(0.0)
    assert not reading.estimated
    assert dict(reading.zone_component) == {"package-0": "cpu", "package-0/dram": "dram", "package-1": "cpu"}
    assert reading.counters_uj["package-0"] == (262143000000, 262143328850)
    assert reading.busy_cpu_s == pytest.approx((10000 + 500 + 3000 + 100 + 200) / 100)


def test_rapl_missing_is_no_data(tmp_path: Path) -> None:
    src = RaplHostSource(ErrorCounter(), tmp_path)
    assert not src.available()
    with pytest.raises(SourceUnavailable):
        src.read(0.0)


def test_rapl_wraparound_through_the_monitor(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "sys", tmp_path / "sys")
    pkg0 = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    clock = FakeClock()
    mon = Monitor("n", ErrorCounter(), host=RaplHostSource(ErrorCounter(), tmp_path / "sys"), clock=clock)
    mon.cycle()
    pkg0.write_text("171150\n")  # wrapped: (262143328850 - 262143000000) + 171150 = 500000 uJ
    clock.advance(1.0)
    snap = mon.cycle()
    assert snap.host_energy_j == {"cpu": pytest.approx(0.5), "dram": 0.0}
    assert not snap.host_estimated


def test_model_host_source_is_estimated(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "proc", tmp_path / "proc")
    src = ModelHostSource(ErrorCounter(), tmp_path / "proc", idle_w_per_cpu=1.0, max_w_per_cpu=5.0, dram_w_per_gb=0.5)
    first = src.read(0.0)
    assert first.estimated
    busy, total, cpus = read_proc_stat(tmp_path / "proc")
    assert cpus == 2
    assert first.power_w["cpu"] == pytest.approx(2 * (1 + 4 * busy / total))
    assert first.power_w["dram"] == pytest.approx(16 * 0.5)
    (tmp_path / "proc/stat").write_text("cpu  10100 500 3000 80100 1000 100 200 0 0 0\ncpu0 1\ncpu1 1\n")
    assert src.read(1.0).power_w["cpu"] == pytest.approx(2 * (1 + 4 * 0.5))  # 1 s busy of 2 s


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-"
            + CID["a"] + ".scope",
            ("11111111-2222-3333-4444-555555555555", CID["a"]),
        ),
        ("/kubepods/besteffort/pod22222222-3333-4444-5555-666666666666/" + CID["b"], ("22222222-3333-4444-5555-666666666666", CID["b"])),
        ("/kubepods.slice/kubepods-pod33333333_4444_5555_6666_777777777777.slice/crio-" + CID["c"] + ".scope",
         ("33333333-4444-5555-6666-777777777777", CID["c"])),
        ("/kubepods.slice/kubepods-pod33333333_4444_5555_6666_777777777777.slice/crio-conmon-" + CID["c"] + ".scope", None),
        ("/kubepods.slice/kubepods-pod33333333_4444_5555_6666_777777777777.slice", None),
        ("/system.slice/docker-" + CID["d"] + ".scope", None),
        ("/init.scope", None),
    ],
)
def test_parse_cgroup_path(path: str, expected: tuple[str, str] | None) -> None:
    assert parse_cgroup_path(path) == expected


def test_pid_identity_from_proc_fixture() -> None:
    reader = CgroupReader(FIXTURES / "proc", FIXTURES / "sys/fs/cgroup")
    assert reader.identity_of_pid(4242) == ("11111111-2222-3333-4444-555555555555", CID["a"])
    assert reader.identity_of_pid(4343) == ("22222222-3333-4444-5555-666666666666", CID["b"])  # v1
    assert reader.identity_of_pid(4444)[1] == CID["c"]  # CRI-O
    assert reader.identity_of_pid(4545)[1] == CID["d"]  # docker
    assert reader.identity_of_pid(1) is None
    assert reader.identity_of_pid(99999) is None
    assert parse_proc_cgroup("garbage") is None


def test_container_cpu_seconds_v2_and_v1() -> None:
    v2 = CgroupReader(FIXTURES / "proc", FIXTURES / "sys/fs/cgroup").container_cpu_seconds()
    assert v2 == {
        ("11111111-2222-3333-4444-555555555555", CID["a"]): 12.5,
        ("33333333-4444-5555-6666-777777777777", CID["c"]): 2.0,  # conmon scope ignored
    }
    v1 = CgroupReader(FIXTURES / "proc", FIXTURES / "sys-v1/fs/cgroup").container_cpu_seconds()
    assert v1 == {("22222222-3333-4444-5555-666666666666", CID["b"]): 3.0}

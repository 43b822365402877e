"""The real NVML backend against a fake pynvml-like module (no driver here)."""

from __future__ import annotations

from types import SimpleNamespace

import pynvml
import pytest

from mlfootprint.exporter.gpu_nvml import NvmlGpuSource
from mlfootprint.exporter.model import ErrorCounter, SourceUnavailable


class FakeNvml:
    """Implements the NVML functions the backend calls, raising real pynvml errors."""

    NVMLError = pynvml.NVMLError

    def __init__(self, *, init_error: int | None = None, energy: bool = True, mig: bool = False) -> None:
        self.init_error = init_error
        self.energy_supported = energy
        self.mig = mig
        self.energy_mj = [1_000_000, 2_000_000]
        self.power_mw = [250_000, 90_000]
        self.fail_power_once = False
        self.util_calls: list[int] = []

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> tuple[str, int]:
        return ("gpu", i)

    def nvmlDeviceGetUUID(self, h):  # type: ignore[no-untyped-def]
        return f"GPU-{h[1]}" if h[0] == "gpu" else f"MIG-{h[1]}-{h[2]}"

    def nvmlDeviceGetName(self, h):  # type: ignore[no-untyped-def]
        return b"NVIDIA A100-SXM4-80GB"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):  # type: ignore[no-untyped-def]
        if not self.energy_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self.energy_mj[h[1]]

    def nvmlDeviceGetPowerUsage(self, h):  # type: ignore[no-untyped-def]
        if self.fail_power_once:
            self.fail_power_once = False
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self.power_mw[h[1]]

    def nvmlDeviceGetEnforcedPowerLimit(self, h):  # type: ignore[no-untyped-def]
        return 400_000

    def nvmlDeviceGetComputeRunningProcesses(self, h):  # type: ignore[no-untyped-def]
        if h[0] == "mig":
            return [SimpleNamespace(pid=700 + h[2], usedGpuMemory=1)] if h[2] == 0 else []
        return [SimpleNamespace(pid=100, usedGpuMemory=1), SimpleNamespace(pid=101, usedGpuMemory=1)] if h[1] == 0 else []

    def nvmlDeviceGetProcessUtilization(self, h, ts):  # type: ignore[no-untyped-def]
        self.util_calls.append(ts)
        if h[1] == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)  # no samples: not an error
        return [
            SimpleNamespace(pid=100, timeStamp=ts + 10, smUtil=60, memUtil=1, encUtil=0, decUtil=0),
            SimpleNamespace(pid=100, timeStamp=ts + 20, smUtil=40, memUtil=1, encUtil=0, decUtil=0),
            SimpleNamespace(pid=101, timeStamp=ts + 30, smUtil=20, memUtil=1, encUtil=0, decUtil=0),
        ]

    def nvmlDeviceGetMigMode(self, h):  # type: ignore[no-untyped-def]
        if not self.mig:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return (1, 1) if h[1] == 1 else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, h):  # type: ignore[no-untyped-def]
        return 3

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, j):  # type: ignore[no-untyped-def]
        if j == 2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return ("mig", h[1], j)

    def nvmlDeviceGetAttributes(self, h):  # type: ignore[no-untyped-def]
        return SimpleNamespace(gpuInstanceSliceCount=3 if h[2] == 0 else 4)


def test_reads_energy_power_processes_and_utilisation() -> None:
    errors = ErrorCounter()
    fake = FakeNvml()
    src = NvmlGpuSource(errors, nvml=fake)
    readings = src.read(10.0)
    assert [r.uuid for r in readings] == ["GPU-0", "GPU-1"]
    r0 = readings[0]
    assert r0.model == "NVIDIA A100-SXM4-80GB"
    assert (r0.energy_mj, r0.power_w, r0.max_power_w) == (1_000_000.0, 250.0, 400.0)
    assert {p.pid: p.sm_util_pct for p in r0.processes} == {100: 50.0, 101: 20.0}
    assert readings[1].processes == ()
    src.read(11.0)
    assert fake.util_calls[-2] == 30  # asks only for samples newer than the last seen
    assert src.read_power(12.0) == {"GPU-0": 250.0, "GPU-1": 90.0}
    assert errors.counts() == {}  # MIG not supported and "no samples" are not errors


def test_init_failure_is_no_data_not_a_crash() -> None:
    errors = ErrorCounter()
    src = NvmlGpuSource(errors, nvml=FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    with pytest.raises(SourceUnavailable):
        src.read(0.0)
    assert errors.counts() == {("nvml", "nvmlInit"): 1}


def test_real_pynvml_without_driver_is_no_data() -> None:
    errors = ErrorCounter()
    src = NvmlGpuSource(errors)  # imports the real pynvml; no libnvidia-ml here
    with pytest.raises(SourceUnavailable):
        src.read(0.0)
    assert errors.counts() == {("nvml", "nvmlInit"): 1}


def test_failing_calls_are_counted_and_reading_continues() -> None:
    errors = ErrorCounter()
    fake = FakeNvml(energy=False)
    src = NvmlGpuSource(errors, nvml=fake)
    fake.fail_power_once = True
    readings = src.read(0.0)
    assert readings[0].energy_mj is None and readings[0].power_w is None  # lost GPU call
    assert readings[1].power_w == 90.0
    src.read(1.0)
    counts = errors.counts()
    assert counts[("nvml", "nvmlDeviceGetPowerUsage")] == 1
    # not supported: counted once per device, then the power integral is used instead
    assert counts[("nvml", "nvmlDeviceGetTotalEnergyConsumption")] == 2


def test_mig_instances_and_their_processes() -> None:
    src = NvmlGpuSource(ErrorCounter(), nvml=FakeNvml(mig=True))
    r1 = src.read(0.0)[1]
    assert [(m.uuid, m.slices) for m in r1.mig_instances] == [("MIG-1-0", 3), ("MIG-1-1", 4)]
    assert [(p.pid, p.mig_uuid) for p in r1.processes] == [(700, "MIG-1-0")]

"""NVML GPU source (``nvidia-ml-py``, imported as ``pynvml``).

The NVML module is injected (``nvml=``) so tests run the real code against a fake module
that implements the same functions. Every failing call is counted in the error counter as
``(source="nvml", call=<NVML function>)`` and the exporter keeps going with what it got.
Failing ``nvmlInit`` means "no data here" (:class:`SourceUnavailable`), not a crash.

Calls used (NVML API reference): nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex,
nvmlDeviceGetUUID, nvmlDeviceGetName, nvmlDeviceGetTotalEnergyConsumption (mJ since driver
load, Volta+), nvmlDeviceGetPowerUsage (mW), nvmlDeviceGetEnforcedPowerLimit (mW),
nvmlDeviceGetComputeRunningProcesses, nvmlDeviceGetProcessUtilization (per-process SM %
samples since a timestamp), nvmlDeviceGetMigMode, nvmlDeviceGetMaxMigDeviceCount,
nvmlDeviceGetMigDeviceHandleByIndex, nvmlDeviceGetAttributes (gpuInstanceSliceCount).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from mlfootprint.exporter.model import (
    ErrorCounter,
    GpuProcess,
    GpuReading,
    HardwareGpuSource,
    MigInstance,
    SourceUnavailable,
)

log = logging.getLogger(__name__)

_NO_SAMPLES = {0, 6}  # NVML_SUCCESS with zero samples, NVML_ERROR_NOT_FOUND
_NOT_SUPPORTED = 3


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Device:
    handle: Any
    uuid: str
    model: str
    energy_supported: bool = True
    util_supported: bool = True
    last_util_ts_us: int = 0
    mig_handles: list[tuple[Any, str, int]] = field(default_factory=list)  # (handle, uuid, slices)


class NvmlGpuSource(HardwareGpuSource):
    """Real NVML backend."""

    name = "nvml"

    def __init__(self, errors: ErrorCounter, nvml: ModuleType | Any | None = None, mig_total_slices: int = 7) -> None:
        self._errors = errors
        self._nvml: Any = nvml  # pynvml (untyped) or a test's fake with the same functions
        self._mig_total = mig_total_slices
        self._devices: list[_Device] | None = None

    # -- helpers
    def _call(self, fn_name: str, *args: Any, default: Any = None) -> Any:
        nvml = self._nvml
        try:
            return getattr(nvml, fn_name)(*args)
        except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError and friends: counted, never fatal
            self._errors.inc(self.name, fn_name)
            log.debug("nvml call failed", extra={"call": fn_name, "error": str(exc)})
            return default

    def _init(self) -> list[_Device]:
        if self._devices is not None:
            return self._devices
        if self._nvml is None:
            try:
                import pynvml  # noqa: PLC0415 (optional at runtime)
            except ImportError as exc:  # pragma: no cover - declared dependency
                self._errors.inc(self.name, "import")
                raise SourceUnavailable("pynvml is not installed") from exc
            self._nvml = pynvml
        try:
            self._nvml.nvmlInit()
        except Exception as exc:
            self._errors.inc(self.name, "nvmlInit")
            raise SourceUnavailable(f"NVML unavailable: {exc}") from exc
        devices: list[_Device] = []
        count = self._call("nvmlDeviceGetCount", default=0) or 0
        for i in range(int(count)):
            handle = self._call("nvmlDeviceGetHandleByIndex", i)
            if handle is None:
                continue
            uuid = self._call("nvmlDeviceGetUUID", handle)
            if uuid is None:
                continue
            model = self._call("nvmlDeviceGetName", handle, default="unknown")
            dev = _Device(handle, _text(uuid), _text(model))
            self._discover_mig(dev)
            devices.append(dev)
        self._devices = devices
        log.info("nvml initialised", extra={"gpus": len(devices)})
        return devices

    def _discover_mig(self, dev: _Device) -> None:
        try:
            mode = self._nvml.nvmlDeviceGetMigMode(dev.handle)
        except Exception as exc:  # noqa: BLE001 - any NVML failure: counted, never fatal
            if getattr(exc, "value", None) != _NOT_SUPPORTED:  # non-MIG GPUs: not an error
                self._errors.inc(self.name, "nvmlDeviceGetMigMode")
            return
        if not mode or int(mode[0]) != 1:
            return
        max_count = self._call("nvmlDeviceGetMaxMigDeviceCount", dev.handle, default=0) or 0
        for j in range(int(max_count)):
            try:
                mig = self._nvml.nvmlDeviceGetMigDeviceHandleByIndex(dev.handle, j)
            except Exception:  # noqa: BLE001 - empty slots raise NOT_FOUND: not an error
                continue
            uuid = self._call("nvmlDeviceGetUUID", mig)
            attrs = self._call("nvmlDeviceGetAttributes", mig)
            slices = int(getattr(attrs, "gpuInstanceSliceCount", 1) or 1) if attrs is not None else 1
            if uuid is not None:
                dev.mig_handles.append((mig, _text(uuid), slices))

    def _processes(self, handle: Any, fn: str = "nvmlDeviceGetComputeRunningProcesses") -> list[int]:
        procs = self._call(fn, handle, default=[]) or []
        return [int(p.pid) for p in procs]

    def _utilisation(self, dev: _Device) -> dict[int, float]:
        if not dev.util_supported:
            return {}
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(dev.handle, dev.last_util_ts_us)
        except Exception as exc:  # noqa: BLE001 - any NVML failure: counted, never fatal
            value = getattr(exc, "value", None)
            if value in _NO_SAMPLES:
                return {}
            self._errors.inc(self.name, "nvmlDeviceGetProcessUtilization")
            if value == _NOT_SUPPORTED:
                dev.util_supported = False
            return {}
        sums: dict[int, list[float]] = {}
        for s in samples:
            sums.setdefault(int(s.pid), []).append(float(s.smUtil))
            dev.last_util_ts_us = max(dev.last_util_ts_us, int(s.timeStamp))
        return {pid: sum(v) / len(v) for pid, v in sums.items()}

    # -- GpuSource
    def read(self, now_s: float) -> list[GpuReading]:
        out: list[GpuReading] = []
        for dev in self._init():
            energy_mj = None
            if dev.energy_supported:
                try:
                    energy_mj = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(dev.handle))
                except Exception as exc:  # noqa: BLE001 - any NVML failure: counted, power integrated instead
                    self._errors.inc(self.name, "nvmlDeviceGetTotalEnergyConsumption")
                    if getattr(exc, "value", None) == _NOT_SUPPORTED:
                        dev.energy_supported = False  # integrate power instead
            power_mw = self._call("nvmlDeviceGetPowerUsage", dev.handle)
            limit_mw = self._call("nvmlDeviceGetEnforcedPowerLimit", dev.handle)
            util = self._utilisation(dev)
            procs: list[GpuProcess] = []
            migs: list[MigInstance] = []
            if dev.mig_handles:
                for mig, mig_uuid, slices in dev.mig_handles:
                    pids = self._processes(mig)
                    migs.append(MigInstance(mig_uuid, slices, None))
                    procs.extend(GpuProcess(pid, None, mig_uuid) for pid in pids)
            else:
                procs = [GpuProcess(pid, util.get(pid)) for pid in self._processes(dev.handle)]
            out.append(
                GpuReading(
                    uuid=dev.uuid,
                    model=dev.model,
                    timestamp_s=now_s,
                    energy_mj=energy_mj,
                    power_w=None if power_mw is None else float(power_mw) / 1000.0,
                    max_power_w=None if limit_mw is None else float(limit_mw) / 1000.0,
                    processes=tuple(procs),
                    mig_instances=tuple(migs),
                    mig_total_slices=self._mig_total,
                )
            )
        return out

    def read_power(self, now_s: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for dev in self._init():
            mw = self._call("nvmlDeviceGetPowerUsage", dev.handle)
            if mw is not None:
                out[dev.uuid] = float(mw) / 1000.0
        return out

    def close(self) -> None:
        if self._devices is not None and self._nvml is not None:
            self._call("nvmlShutdown")
        self._devices = None


NvmlFactory = Callable[[ErrorCounter], NvmlGpuSource]

"""Data types shared by the exporter's sources, attribution, monitor and collector.

Everything here is immutable (frozen dataclasses, tuples) so that a published snapshot can
be read by the HTTP thread while the monitor builds the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

# ---------------------------------------------------------------- errors and availability


class SourceUnavailable(Exception):
    """The source has no data here (no driver, no socket, no powercap): "no data", not a crash."""


class ErrorCounter:
    """Thread-safe counts of failed calls per (source, call); injected into every source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def inc(self, source: str, call: str) -> None:
        with self._lock:
            key = (source, call)
            self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


# ---------------------------------------------------------------- GPUs


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A compute process on a GPU. ``sm_util_pct``: NVML per-process SM utilisation over the
    last interval (0-100), None when unknown. ``mig_uuid``: the MIG instance it runs on."""

    pid: int
    sm_util_pct: float | None = None
    mig_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class MigInstance:
    """A MIG GPU instance. ``slices``: compute slices it owns; ``activity``: 0-1 share of
    time it was busy (DCGM GR_ENGINE_ACTIVE), None when only process presence is known."""

    uuid: str
    slices: int
    activity: float | None = None


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One full read of one GPU at ``timestamp_s`` (monitor clock)."""

    uuid: str
    model: str
    timestamp_s: float
    energy_mj: float | None  # cumulative counter (mJ) where supported
    power_w: float | None
    max_power_w: float | None  # enforced power limit
    processes: tuple[GpuProcess, ...] = ()
    mig_instances: tuple[MigInstance, ...] = ()
    mig_total_slices: int = 7
    activity: float | None = None  # device-level 0-1 (DCGM), informative


#: GPU UUID -> power samples (time on the monitor clock, W), oldest first
PowerTrace = dict[str, list[tuple[float, float]]]


@runtime_checkable
class GpuSource(Protocol):
    """A GPU backend: NVML, DCGM (dcgm-exporter) or simulated."""

    name: str

    def read(self, now_s: float) -> list[GpuReading]:
        """Full read: energy counters, power, processes, MIG. Raises SourceUnavailable."""
        ...

    def read_power(self, now_s: float) -> dict[str, float]:
        """Fast path for sub-second sampling: power in W per GPU UUID."""
        ...

    def power_trace(self, since_s: float | None, now_s: float, interval_s: float) -> PowerTrace:
        """The power samples since the last call (hardware: one sample, now)."""
        ...

    def set_profiles(self, profiles: Mapping[str, str | None], now_s: float, holders: Mapping[str, str] | None = None) -> None:
        """Which load (the holding pod's ``mlfootprint.io/sim-profile``) each GPU runs, and
        which container holds it; only simulated devices act on it."""
        ...

    def close(self) -> None: ...


class HardwareGpuSource:
    """Defaults of the :class:`GpuSource` methods that only simulation needs."""

    def read_power(self, now_s: float) -> dict[str, float]:
        raise NotImplementedError

    def power_trace(self, since_s: float | None, now_s: float, interval_s: float) -> PowerTrace:
        return {uuid: [(now_s, w)] for uuid, w in self.read_power(now_s).items()}

    def set_profiles(self, profiles: Mapping[str, str | None], now_s: float, holders: Mapping[str, str] | None = None) -> None:
        pass


# ---------------------------------------------------------------- host


@dataclass(frozen=True, slots=True)
class HostReading:
    """Host energy counters. ``counters_uj`` maps zone name (e.g. ``package-0``,
    ``package-0/dram``) -> (energy_uj, max_energy_range_uj) for RAPL; for the estimated
    model ``power_w`` maps component -> watts instead. ``busy_cpu_s`` / ``total_cpu_s``:
    cumulative busy and total (busy + idle) CPU seconds of the whole host (``/proc/stat``)."""

    timestamp_s: float
    estimated: bool
    counters_uj: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    zone_component: Mapping[str, str] = field(default_factory=dict)  # zone -> cpu|dram
    power_w: Mapping[str, float] = field(default_factory=dict)
    busy_cpu_s: float | None = None
    total_cpu_s: float | None = None


class HostSource(Protocol):
    name: str

    def read(self, now_s: float) -> HostReading: ...


# ---------------------------------------------------------------- pods


class ContainerKey(NamedTuple):
    """A NamedTuple (not a dataclass): it is hashed thousands of times per cycle."""

    namespace: str
    pod: str
    container: str


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A container on this node with the devices the kubelet assigned to it.

    ``device_ids`` pairs (resource_name, device_id), e.g. ("nvidia.com/gpu", "GPU-…"),
    ("nvidia.com/gpu", "GPU-…::3") for a time-slicing replica, ("nvidia.com/mig-1g.10gb",
    "MIG-…"). ``pod_uid``/``container_id`` link cgroups to the container when known.
    ``cpu_time_s`` may be supplied by a simulated source (real ones use cgroups).
    """

    key: ContainerKey
    device_ids: tuple[tuple[str, str], ...] = ()
    pod_uid: str | None = None
    container_id: str | None = None
    profile: str | None = None  # simulated load profile (annotation mlfootprint.io/sim-profile)
    cpu_time_s: float | None = None


@dataclass(frozen=True, slots=True)
class PodListing:
    containers: tuple[ContainerInfo, ...]
    replicas_per_gpu: Mapping[str, int] = field(default_factory=dict)  # from allocatable


class PodSource(Protocol):
    name: str

    def list(self, now_s: float) -> PodListing: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class GpuSeries:
    uuid: str
    model: str
    energy_j: float
    idle_energy_j: float
    power_w: float
    max_power_w: float
    swings: int


#: Upper bounds of the power histogram: attributed GPU power as a ratio of the power limit
#: of the GPUs (shares) the container holds. The histogram counts *seconds* (time-weighted),
#: so irregular sampling (the simulated clock) does not skew it.
POWER_RATIO_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class ContainerSeries:
    key: ContainerKey
    #: unix time the exporter started counting the container: its counters' identity
    start_unix: float
    gpu_energy_j: Mapping[tuple[str, str], float]  # (gpu_uuid, gpu_model) -> J
    host_energy_j: Mapping[str, float]  # cpu|dram -> J
    allocation_s: Mapping[str, float]  # gpu_model -> device-seconds
    power_w: float
    peak_power_w: float
    min_power_w: float
    swings: int
    #: seconds spent at power ratio <= each POWER_RATIO_BUCKETS bound, then +Inf (cumulative)
    power_ratio_s: tuple[float, ...] = ()
    power_ratio_sum: float = 0.0  # time integral of the ratio (s)
    power_limit_w: float = 0.0  # mean power limit of the GPUs held (W per GPU)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    source: str
    up: bool
    duration_s: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the collector renders; built by the monitor once per attribution interval."""

    node: str
    timestamp_s: float
    gpus: tuple[GpuSeries, ...] = ()
    containers: tuple[ContainerSeries, ...] = ()
    host_energy_j: Mapping[str, float] = field(default_factory=dict)  # cpu|dram -> J
    host_unattributed_j: Mapping[str, float] = field(default_factory=dict)  # cpu|dram -> J
    host_estimated: bool = False
    #: (namespace, pod) -> start time of the pod-level (``metrics_level=pod``) counters
    pod_starts: Mapping[tuple[str, str], float] = field(default_factory=dict)
    sources: tuple[SourceStatus, ...] = ()
    errors: Mapping[tuple[str, str], int] = field(default_factory=dict)

"""Pure energy attribution: one interval of measured device energy -> containers + idle.

Conservation (METHODOLOGY §2): per device and interval, ``sum(attributed) + idle ==
measured``. Every rule below computes *fractions* ``f_c >= 0`` with ``sum f_c <= 1``; the
container gets ``E * f_c`` and idle is the remainder, so conservation holds by construction.

GPU rules, per device:

* **unallocated**: all energy is idle;
* **whole GPU** (one container holds the UUID itself): that container gets all of it;
* **shared** (time-slicing replicas ``<uuid>::N``, MPS, or several holders): each holder's
  fraction is the NVML per-process SM utilisation of its processes, ``u_c / 100``; if the
  utilisations add up to more than 100 % they are normalised to 1. The rest is idle.
  Processes whose PID does not resolve to a holder are not billed to anyone (idle). If no
  utilisation samples exist but processes do, the device is split equally among the
  holders running processes;
* **MIG**: no per-instance power exists (NVML/DCGM report power per physical GPU only), so
  an instance's fraction is ``slices / total_slices * activity``; ``activity`` is DCGM's
  GR_ENGINE_ACTIVE where available, otherwise 1 when a process runs on the instance and 0
  when none does. This assumes power scales with the busy compute slices — a known limit:
  memory-bound instances are under-, compute-bound over-charged relative to each other.

Idle policy ``allocation``: the idle remainder of an *allocated* device is split among its
holders by allocation fraction (an unallocated device stays idle).

Host CPU/DRAM: each container gets ``E * cpu_c / host_total``, where ``cpu_c`` is the
container's CPU seconds in the interval (cgroup ``cpu.stat``) and ``host_total`` the host's
CPU capacity in the interval (busy + idle CPU seconds, ``/proc/stat``); if the containers
claim more than the host's measured busy time, their fractions are scaled down so that
together they never get more than the host's busy share ``host_busy / host_total`` of the
energy. The remainder (idle, system, processes outside pods) is *unattributed* and
exported as such, so ``sum(pods) + unattributed == measured`` per component. Without
``/proc/stat`` totals the share is ``cpu_c / max(host_busy, sum cpu)``.

Allocation seconds (embodied shares, METHODOLOGY §4): whole GPU 1, replica
``replicas_held / replicas_of_device``, MIG ``slices / total_slices``, times the interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from mlfootprint.exporter.model import ContainerInfo, ContainerKey, GpuProcess, MigInstance

IdlePolicy = Literal["none", "allocation"]

GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


@dataclass(frozen=True, slots=True)
class DeviceInterval:
    """What one GPU measured over one attribution interval."""

    uuid: str
    model: str
    energy_j: float
    processes: tuple[GpuProcess, ...] = ()
    mig_instances: tuple[MigInstance, ...] = ()
    mig_total_slices: int = 7


@dataclass(frozen=True, slots=True)
class Holding:
    """A container's claim on (part of) a GPU."""

    container: ContainerKey
    kind: Literal["whole", "replica", "mig"]
    fraction: float  # allocation fraction of the physical device
    mig_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Result of one interval (immutable)."""

    gpu_energy_j: Mapping[tuple[ContainerKey, str], float] = field(default_factory=dict)
    gpu_idle_j: Mapping[str, float] = field(default_factory=dict)
    gpu_shares: Mapping[str, Mapping[ContainerKey, float]] = field(default_factory=dict)
    host_energy_j: Mapping[ContainerKey, Mapping[str, float]] = field(default_factory=dict)
    host_unattributed_j: Mapping[str, float] = field(default_factory=dict)
    allocation_s: Mapping[tuple[ContainerKey, str], float] = field(default_factory=dict)


def mig_slices_of(resource_name: str) -> int | None:
    """Compute slices from a MIG resource name: ``nvidia.com/mig-3g.40gb`` -> 3."""
    if not resource_name.startswith(MIG_RESOURCE_PREFIX):
        return None
    head = resource_name[len(MIG_RESOURCE_PREFIX) :].split("g.", 1)[0]
    return int(head) if head.isdigit() else None


def build_holdings(
    containers: Iterable[ContainerInfo],
    mig_parents: Mapping[str, tuple[str, int, int]],
    replicas_per_gpu: Mapping[str, int] | None = None,
) -> dict[str, list[Holding]]:
    """GPU UUID -> holdings. ``mig_parents``: MIG UUID -> (GPU UUID, slices, total slices)."""
    replica_ids: dict[str, set[str]] = {}
    raw: list[tuple[ContainerKey, str, str, str]] = []  # (container, kind, gpu uuid, id)
    for info in containers:
        for resource, device_id in info.device_ids:
            if resource == GPU_RESOURCE:
                uuid, sep, replica = device_id.partition("::")
                if sep:
                    replica_ids.setdefault(uuid, set()).add(replica)
                    raw.append((info.key, "replica", uuid, replica))
                else:
                    raw.append((info.key, "whole", uuid, ""))
            elif resource.startswith(MIG_RESOURCE_PREFIX) and device_id in mig_parents:
                raw.append((info.key, "mig", device_id, ""))
    held: dict[tuple[ContainerKey, str, str], float] = {}
    mig_of: dict[tuple[ContainerKey, str], str] = {}
    for key, kind, ident, _replica in raw:
        if kind == "whole":
            held[(key, ident, kind)] = 1.0
        elif kind == "replica":
            total = (replicas_per_gpu or {}).get(ident) or len(replica_ids[ident])
            held[(key, ident, kind)] = held.get((key, ident, kind), 0.0) + 1.0 / max(total, 1)
        else:
            gpu, slices, total_slices = mig_parents[ident]
            held[(key, gpu, f"mig:{ident}")] = slices / max(total_slices, 1)
            mig_of[(key, gpu)] = ident
    out: dict[str, list[Holding]] = {}
    for (key, gpu, kind), fraction in held.items():
        if kind.startswith("mig:"):
            out.setdefault(gpu, []).append(Holding(key, "mig", min(fraction, 1.0), kind[4:]))
        else:
            share: Literal["whole", "replica"] = "replica" if kind == "replica" else "whole"
            out.setdefault(gpu, []).append(Holding(key, share, min(fraction, 1.0)))
    return out


def gpu_fractions(
    device: DeviceInterval,
    holdings: list[Holding],
    pid_container: Mapping[int, ContainerKey],
    idle_policy: IdlePolicy = "none",
) -> dict[ContainerKey, float]:
    """Fraction of the device's interval energy that each container gets (sum <= 1)."""
    if not holdings:
        return {}
    holders = {h.container for h in holdings}
    fractions: dict[ContainerKey, float] = {}
    if any(h.kind == "mig" for h in holdings) and device.mig_instances:
        total = max(device.mig_total_slices, 1)
        busy = {p.mig_uuid for p in device.processes if p.mig_uuid}
        by_mig: dict[str, list[ContainerKey]] = {}
        for h in holdings:
            if h.kind == "mig" and h.mig_uuid:
                by_mig.setdefault(h.mig_uuid, []).append(h.container)
        for inst in device.mig_instances:
            owners = by_mig.get(inst.uuid)
            if not owners:
                continue
            activity = inst.activity if inst.activity is not None else (1.0 if inst.uuid in busy else 0.0)
            weight = inst.slices / total * min(max(activity, 0.0), 1.0)
            for c in owners:
                fractions[c] = fractions.get(c, 0.0) + weight / len(owners)
    elif len(holders) == 1 and all(h.kind == "whole" for h in holdings):
        fractions = {holdings[0].container: 1.0}
    else:
        util: dict[ContainerKey, float] = {}
        running: set[ContainerKey] = set()
        known_util = False
        for proc in device.processes:
            owner = pid_container.get(proc.pid)
            if owner is None or owner not in holders:
                continue
            running.add(owner)
            if proc.sm_util_pct is not None:
                known_util = True
                util[owner] = util.get(owner, 0.0) + max(proc.sm_util_pct, 0.0)
        if known_util:
            total_util = math.fsum(util.values())
            scale = 1.0 / total_util if total_util > 100.0 else 0.01
            fractions = {c: u * scale for c, u in util.items() if u > 0}
        elif running:
            fractions = {c: 1.0 / len(running) for c in running}
    explained = math.fsum(fractions.values())
    if explained > 1.0:  # rounding guard
        fractions = {c: f / explained for c, f in fractions.items()}
        explained = 1.0
    if idle_policy == "allocation" and explained < 1.0:
        alloc: dict[ContainerKey, float] = {}
        for h in holdings:
            alloc[h.container] = alloc.get(h.container, 0.0) + h.fraction
        alloc_sum = math.fsum(alloc.values())
        if alloc_sum > 0:
            rest = 1.0 - explained
            for c, a in alloc.items():
                fractions[c] = fractions.get(c, 0.0) + rest * a / alloc_sum
    return fractions


def host_fractions(
    cpu_delta_s: Mapping[ContainerKey, float],
    host_busy_delta_s: float | None,
    host_total_delta_s: float | None = None,
) -> dict[ContainerKey, float]:
    """CPU-time shares of the host energy (sum <= the host's busy share <= 1)."""
    positive = {c: d for c, d in cpu_delta_s.items() if d > 0 and math.isfinite(d)}
    claimed = math.fsum(positive.values())
    if claimed <= 0:
        return {}
    if host_total_delta_s is not None and host_total_delta_s > 0:
        busy = host_total_delta_s if host_busy_delta_s is None else min(max(host_busy_delta_s, 0.0), host_total_delta_s)
        if claimed <= busy:
            return {c: d / host_total_delta_s for c, d in positive.items()}
        busy_share = busy / host_total_delta_s
        return {c: d / claimed * busy_share for c, d in positive.items()}
    denominator = max(claimed, host_busy_delta_s or 0.0)
    return {c: d / denominator for c, d in positive.items()}


def attribute(
    devices: Iterable[DeviceInterval],
    holdings: Mapping[str, list[Holding]],
    pid_container: Mapping[int, ContainerKey],
    duration_s: float,
    idle_policy: IdlePolicy = "none",
    host_energy_j: Mapping[str, float] | None = None,
    cpu_delta_s: Mapping[ContainerKey, float] | None = None,
    host_busy_delta_s: float | None = None,
    host_total_delta_s: float | None = None,
) -> Attribution:
    """Attribute one interval. Pure: same inputs, same output; never negative energy."""
    gpu_energy: dict[tuple[ContainerKey, str], float] = {}
    idle: dict[str, float] = {}
    shares: dict[str, dict[ContainerKey, float]] = {}
    allocation: dict[tuple[ContainerKey, str], float] = {}
    for dev in devices:
        energy = max(dev.energy_j, 0.0) if math.isfinite(dev.energy_j) else 0.0
        dev_holdings = holdings.get(dev.uuid, [])
        fractions = gpu_fractions(dev, dev_holdings, pid_container, idle_policy)
        attributed = 0.0
        for c, f in fractions.items():
            e = energy * f
            gpu_energy[(c, dev.uuid)] = e
            attributed += e
        idle[dev.uuid] = max(energy - attributed, 0.0)
        shares[dev.uuid] = fractions
        for h in dev_holdings:
            k = (h.container, dev.model)
            allocation[k] = allocation.get(k, 0.0) + h.fraction * max(duration_s, 0.0)
    host: dict[ContainerKey, dict[str, float]] = {}
    measured = {comp: (max(e, 0.0) if math.isfinite(e) else 0.0) for comp, e in (host_energy_j or {}).items()}
    unattributed = dict(measured)
    if measured and cpu_delta_s:
        for c, f in host_fractions(cpu_delta_s, host_busy_delta_s, host_total_delta_s).items():
            host[c] = {comp: e * f for comp, e in measured.items()}
            for comp in measured:
                unattributed[comp] -= host[c][comp]
    unattributed = {comp: max(e, 0.0) for comp, e in unattributed.items()}
    return Attribution(gpu_energy, idle, shares, host, unattributed, allocation)

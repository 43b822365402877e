"""The monitor: samples power sub-second, attributes energy each interval, publishes snapshots.

Measure, then render (Kepler's device -> monitor -> exporter split): the collector only
reads :attr:`Monitor.snapshot`, an immutable :class:`~.model.Snapshot` replaced atomically
once per attribution interval. All mutable state lives here and is touched by one thread.

Each interval is a fixed sequence of steps with one job each (:meth:`Monitor.cycle`): read
the pods, read the GPUs, link GPU processes and cgroups to containers, measure the host,
attribute, accumulate, track sampling shares, reap ended containers, checkpoint, publish.

Counters survive restarts (docs/exporter.md#restarts):

* with a state file the checkpoint is written *before* the interval's snapshot is served, so
  a served value is always on disk and a restart never serves less;
* the checkpoint keeps each device's last hardware counter reading (NVML energy, RAPL) and
  the CPU seconds of each container, so the first interval after a restart spans the
  downtime: the GPU energy used meanwhile goes to the containers that held the GPU both
  before and after, otherwise to idle (GPUs without an energy counter, whose energy is
  integrated from power samples, lose the downtime);
* every container's counters carry the unix time the exporter started counting them
  (``mlfootprint_pod_start_time_seconds``); it changes only when the counters really start
  from zero (a new container, or a lost state file), so a consumer never has to guess
  whether a lower value is a reset.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlfootprint.accounting.power import SwingCounter
from mlfootprint.exporter import state as statefile
from mlfootprint.exporter.attribution import (
    Attribution,
    DeviceInterval,
    Holding,
    IdlePolicy,
    attribute,
    build_holdings,
)
from mlfootprint.exporter.cgroups import CgroupReader
from mlfootprint.exporter.counters import DeviceEnergyState, add_power_sample, counter_delta, take_energy
from mlfootprint.exporter.model import (
    POWER_RATIO_BUCKETS,
    ContainerKey,
    ContainerSeries,
    ErrorCounter,
    GpuReading,
    GpuSeries,
    GpuSource,
    HostReading,
    HostSource,
    PodListing,
    PodSource,
    PowerTrace,
    Snapshot,
    SourceStatus,
    SourceUnavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: After a restart, wait this long (wall seconds) for a pod listing before billing the
#: downtime's GPU energy to idle for want of knowing who held the GPUs.
RESTORE_WAIT_S = 30.0
#: The downtime's host energy is billed only for gaps shorter than this, in wall seconds
#: (RAPL counters wrap after ``max_energy_range_uj``, minutes at full load).
HOST_GAP_MAX_S = 300.0


class Clock:
    """Wall-clock seconds, optionally accelerated (simulation): ``t0 + factor * elapsed``."""

    def __init__(self, factor: float = 1.0, now: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic) -> None:
        self._factor = factor
        self._t0 = now()
        self._m0 = mono()
        self._mono = mono

    def __call__(self) -> float:
        return self._t0 + (self._mono() - self._m0) * self._factor


@dataclass
class _Gpu:
    uuid: str
    model: str = "unknown"
    max_power_w: float = 0.0
    energy: DeviceEnergyState = field(default_factory=DeviceEnergyState)
    has_counter: bool | None = None
    last_read_t: float | None = None
    total_j: float = 0.0
    idle_j: float = 0.0
    power_w: float = 0.0
    swings_base: int = 0
    swing: SwingCounter | None = None
    last_sample_t: float | None = None

    @property
    def swings(self) -> int:
        return self.swings_base + (self.swing.swings if self.swing else 0)


@dataclass
class _Container:
    key: ContainerKey
    start_unix: float
    gpu_j: dict[tuple[str, str], float] = field(default_factory=dict)
    host_j: dict[str, float] = field(default_factory=dict)
    alloc_s: dict[str, float] = field(default_factory=dict)
    power_w: float = 0.0
    peak_w: float | None = None
    min_w: float | None = None
    swings_base: int = 0
    swing: SwingCounter | None = None
    swing_max_w: float = 0.0
    last_cpu_s: float | None = None
    #: measurement-clock time the container was first seen ended (kept for the snapshot)
    ended_at: float | None = None
    #: unix time it was first seen ended: the grace period counts real seconds, also under an
    #: accelerated clock and across restarts
    ended_unix: float | None = None
    shares: tuple[tuple[str, float], ...] = ()
    last_sample_t: float | None = None
    #: seconds at power ratio in each bucket (not cumulative; the last one is above 1.0)
    ratio_s: list[float] = field(default_factory=lambda: [0.0] * (len(POWER_RATIO_BUCKETS) + 1))
    ratio_sum: float = 0.0

    @property
    def swings(self) -> int:
        return self.swings_base + (self.swing.swings if self.swing else 0)

    #: mean power limit of the GPUs held (W per GPU), kept after the container ends so the
    #: histogram's last seconds keep their limit
    limit_w: float = 0.0

    def add_ratio(self, dt: float, power_w: float) -> None:
        """Time-weighted power histogram: ``dt`` seconds at ``power_w`` / the shares' limit."""
        if dt <= 0 or self.swing_max_w <= 0:
            return
        ratio = power_w / self.swing_max_w
        self.ratio_s[bisect.bisect_left(POWER_RATIO_BUCKETS, ratio)] += dt
        self.ratio_sum += ratio * dt


@dataclass
class _Restored:
    """What a checkpoint says about the moment before a restart (for the downtime interval)."""

    shares: dict[str, dict[ContainerKey, float]]
    waited_from_s: float


class Monitor:
    def __init__(
        self,
        node: str,
        errors: ErrorCounter,
        gpu: GpuSource | None = None,
        host: HostSource | None = None,
        pods: PodSource | None = None,
        cgroups: CgroupReader | None = None,
        clock: Callable[[], float] = time.time,
        idle_policy: IdlePolicy = "none",
        swing_fraction: float = 0.5,
        swing_window_s: float = 1.0,
        ended_pod_grace_s: float = 600.0,
        state_file: Path | None = None,
        wall_clock: Callable[[], float] | None = None,
        sample_interval_s: float = 0.1,
    ) -> None:
        self.node = node
        self.errors = errors
        self._gpu_source = gpu
        self._host_source = host
        self._pod_source = pods
        self._cgroups = cgroups
        self._clock = clock
        # Unix time: counter start times, and grace periods, which are about real time, not
        # the (possibly accelerated) measurement clock; tests inject one fake clock for both.
        self._wall = wall_clock or clock
        self._idle_policy: IdlePolicy = idle_policy
        self._swing_fraction = swing_fraction
        self._swing_window_s = swing_window_s
        self._grace_s = ended_pod_grace_s
        self._sample_interval_s = sample_interval_s
        self._state_file = state_file
        self._gpus: dict[str, _Gpu] = {}
        self._containers: dict[ContainerKey, _Container] = {}
        self._pod_starts: dict[tuple[str, str], float] = {}
        self._listing = PodListing(())
        self._listing_seen = False
        self._host_j: dict[str, float] = {}
        self._host_unattributed_j: dict[str, float] = {}
        self._host_estimated = False
        self._host_prev: HostReading | None = None
        self._status: dict[str, SourceStatus] = {}
        self._last_cycle_t: float | None = None
        self._sampled: list[_Container] = []
        self._restored: _Restored | None = None
        self.snapshot = Snapshot(node=node, timestamp_s=clock())
        self.last_cycle_monotonic = time.monotonic()
        if state_file is not None:
            self._load_state(state_file)
            self.snapshot = self._build_snapshot(self.snapshot.timestamp_s)

    # ------------------------------------------------------------------ sampling
    def sample(self) -> None:
        """Sub-second power samples: GPU power, swings, per-container power stats."""
        if self._gpu_source is None:
            return
        now = self._clock()
        since = min((g.last_sample_t for g in self._gpus.values() if g.last_sample_t is not None), default=None)
        try:
            trace = self._gpu_source.power_trace(since, now, self._sample_interval_s)
        except SourceUnavailable:
            return
        self._apply_trace(trace)

    def _apply_trace(self, trace: PowerTrace) -> None:
        gpus = self._gpus
        for uuid, samples in trace.items():
            dev = gpus.get(uuid)
            if dev is None:
                continue
            for t, power in samples:
                if not math.isfinite(power) or power < 0 or (dev.last_sample_t is not None and t <= dev.last_sample_t):
                    continue
                dev.power_w = power
                dev.last_sample_t = t
                if dev.has_counter is not True:
                    dev.energy = add_power_sample(dev.energy, t, power)
                if dev.swing is not None:
                    dev.swing.add(t, power)
        steps = {uuid: _held_power(samples) for uuid, samples in trace.items()}
        for c in self._sampled:
            for t, p in _container_power(c.shares, steps):
                if c.last_sample_t is not None and t <= c.last_sample_t:
                    continue
                if c.last_sample_t is not None:
                    c.add_ratio(t - c.last_sample_t, p)
                c.last_sample_t = t
                c.power_w = p
                if c.peak_w is None or p > c.peak_w:
                    c.peak_w = p
                if c.min_w is None or p < c.min_w:
                    c.min_w = p
                if c.swing is not None:
                    c.swing.add(t, p)

    # ------------------------------------------------------------------ one interval
    def _timed(self, name: str, fn: Callable[[], T]) -> T | None:
        start = time.perf_counter()
        was_up = self._status.get(name, SourceStatus(name, True, 0)).up
        try:
            result = fn()
        except SourceUnavailable as exc:
            if was_up:
                log.warning("source has no data", extra={"source": name, "reason": str(exc)})
            self._status[name] = SourceStatus(name, False, time.perf_counter() - start)
            return None
        except Exception:
            self.errors.inc(name, "read")
            log.exception("source failed", extra={"source": name})
            self._status[name] = SourceStatus(name, False, time.perf_counter() - start)
            return None
        if not was_up:
            log.info("source recovered", extra={"source": name})
        self._status[name] = SourceStatus(name, True, time.perf_counter() - start)
        return result

    def cycle(self) -> Snapshot:
        """One attribution interval; returns (and publishes) the new snapshot."""
        now = self._clock()
        listing_ok = self._read_pods(now)
        if (
            self._restored is not None
            and self._pod_source is not None
            and not self._listing_seen
            and self._wall() - self._restored.waited_from_s < RESTORE_WAIT_S
        ):
            return self._publish(self.snapshot.timestamp_s, persist=False)  # who held the GPUs?
        duration_s = 0.0 if self._last_cycle_t is None else max(now - self._last_cycle_t, 0.0)
        self._last_cycle_t = now
        listing = self._listing
        self._tell_gpu_source(listing, now)
        readings = self._read_gpus(now)
        devices = self._measure_gpus(now, readings)
        pid_container, cid_key = self._link_processes(listing, readings)
        cpu_delta = self._cpu_deltas(listing, cid_key)
        host_delta, busy_delta, total_delta = self._measure_host(now)
        present = self._track_containers(listing)
        mig_parents = {
            inst.uuid: (r.uuid, inst.slices, r.mig_total_slices) for r in readings for inst in r.mig_instances
        }
        holdings = build_holdings(listing.containers, mig_parents, listing.replicas_per_gpu)
        if self._restored is not None:
            holdings = _downtime_holdings(holdings, self._restored.shares)
            self._restored = None
        result = attribute(
            devices, holdings, pid_container, duration_s, self._idle_policy, host_delta, cpu_delta, busy_delta, total_delta
        )
        self._accumulate(result, devices, host_delta)
        self._track_shares(result, present)
        if listing_ok:
            self._reap(present, now)
        self._apply_trace({r.uuid: [(now, r.power_w)] for r in readings if r.power_w is not None})
        return self._publish(now)

    def _read_pods(self, now: float) -> bool:
        if self._pod_source is None:
            return False
        source = self._pod_source
        listing = self._timed(source.name, lambda: source.list(now))
        if listing is None:
            return False
        self._listing = listing
        self._listing_seen = True
        return True

    def _tell_gpu_source(self, listing: PodListing, now: float) -> None:
        """Simulated GPUs run the load the holding pod's annotation names; hardware ignores it."""
        if self._gpu_source is None:
            return
        held = [(uuid.partition("::")[0], c) for c in listing.containers for _r, uuid in c.device_ids]
        profiles = {uuid: c.profile for uuid, c in held}
        holders = {uuid: "/".join(c.key) for uuid, c in held}
        self._gpu_source.set_profiles(profiles, now, holders)

    def _read_gpus(self, now: float) -> list[GpuReading]:
        if self._gpu_source is None:
            return []
        source = self._gpu_source
        return self._timed(source.name, lambda: source.read(now)) or []

    def _measure_gpus(self, now: float, readings: list[GpuReading]) -> list[DeviceInterval]:
        devices: list[DeviceInterval] = []
        for r in readings:
            dev = self._gpus.get(r.uuid)
            if dev is None:
                dev = self._gpus[r.uuid] = _Gpu(r.uuid)
            dev.model = r.model
            if r.max_power_w is not None and math.isfinite(r.max_power_w) and r.max_power_w > 0:
                if dev.swing is None or r.max_power_w != dev.max_power_w:
                    dev.swings_base = dev.swings
                    dev.swing = SwingCounter(r.max_power_w, self._swing_fraction, self._swing_window_s)
                dev.max_power_w = r.max_power_w
            dev.has_counter = r.energy_mj is not None
            if r.energy_mj is None and r.power_w is not None and math.isfinite(r.power_w) and r.power_w >= 0:
                dev.energy = add_power_sample(dev.energy, now, r.power_w)
            elapsed = None if dev.last_read_t is None else now - dev.last_read_t
            dev.last_read_t = now
            dev.energy, joules, _event = take_energy(dev.energy, r.energy_mj, elapsed, dev.max_power_w or None)
            dev.total_j += joules
            devices.append(DeviceInterval(r.uuid, r.model, joules, r.processes, r.mig_instances, r.mig_total_slices))
        return devices

    def _link_processes(
        self, listing: PodListing, readings: list[GpuReading]
    ) -> tuple[dict[int, ContainerKey], Callable[[tuple[str, str]], ContainerKey | None]]:
        """GPU process PID -> container (through /proc/<pid>/cgroup), and a resolver from
        cgroup identities (pod uid, container id) to containers."""
        by_identity: dict[tuple[str | None, str | None], ContainerKey] = {}
        by_cid: dict[str, ContainerKey] = {}
        for info in listing.containers:
            if info.container_id:
                by_identity[(info.pod_uid, info.container_id)] = info.key
                by_cid[info.container_id] = info.key

        def resolve(ident: tuple[str, str]) -> ContainerKey | None:
            return by_identity.get(ident) or by_cid.get(ident[1])

        pid_container: dict[int, ContainerKey] = {}
        if self._cgroups is not None and by_cid:
            for reading in readings:
                for proc in reading.processes:
                    ident = self._cgroups.identity_of_pid(proc.pid)
                    if ident is not None:
                        key = resolve(ident)
                        if key is not None:
                            pid_container[proc.pid] = key
        return pid_container, resolve

    def _cpu_deltas(
        self, listing: PodListing, resolve: Callable[[tuple[str, str]], ContainerKey | None]
    ) -> dict[ContainerKey, float]:
        cpu_now: dict[ContainerKey, float] = {
            info.key: info.cpu_time_s for info in listing.containers if info.cpu_time_s is not None
        }
        if self._cgroups is not None and any(info.container_id for info in listing.containers):
            for ident, seconds in self._cgroups.container_cpu_seconds().items():
                key = resolve(ident)
                if key is not None:
                    cpu_now[key] = seconds
        deltas: dict[ContainerKey, float] = {}
        for key, seconds in cpu_now.items():
            c = self._container(key)
            deltas[key], _ = counter_delta(c.last_cpu_s, seconds)
            c.last_cpu_s = seconds
        return deltas

    def _measure_host(self, now: float) -> tuple[dict[str, float], float | None, float | None]:
        """Host energy per component in the interval, and the host's busy and total CPU seconds."""
        if self._host_source is None:
            return {}, None, None
        source = self._host_source
        reading: HostReading | None = self._timed("host", lambda: source.read(now))
        if reading is None:
            return {}, None, None
        prev, self._host_prev = self._host_prev, reading
        delta: dict[str, float] = {}
        if reading.estimated:
            dt = max(now - prev.timestamp_s, 0.0) if prev is not None else 0.0
            for comp, watts in reading.power_w.items():
                delta[comp] = max(watts, 0.0) * dt if math.isfinite(watts) else 0.0
        else:
            for zone, (energy_uj, max_uj) in reading.counters_uj.items():
                before = None if prev is None else prev.counters_uj.get(zone, (None, None))[0]
                d_uj, _ = counter_delta(before, energy_uj, max_uj)
                comp = reading.zone_component.get(zone, "cpu")
                delta[comp] = delta.get(comp, 0.0) + d_uj / 1e6
        self._host_estimated = reading.estimated
        busy = total = None
        if prev is not None:
            if reading.busy_cpu_s is not None and prev.busy_cpu_s is not None:
                busy = max(reading.busy_cpu_s - prev.busy_cpu_s, 0.0)
            if reading.total_cpu_s is not None and prev.total_cpu_s is not None:
                total = max(reading.total_cpu_s - prev.total_cpu_s, 0.0)
        return delta, busy, total

    def _container(self, key: ContainerKey) -> _Container:
        c = self._containers.get(key)
        if c is None:
            c = self._containers[key] = _Container(key, start_unix=self._wall())
            self._pod_starts.setdefault((key.namespace, key.pod), c.start_unix)
        return c

    def _track_containers(self, listing: PodListing) -> set[ContainerKey]:
        present = {info.key for info in listing.containers}
        for key in present:
            c = self._container(key)
            c.ended_at = None
            c.ended_unix = None
        return present

    def _accumulate(self, result: Attribution, devices: Iterable[DeviceInterval], host_delta: Mapping[str, float]) -> None:
        models = {d.uuid: d.model for d in devices}
        for uuid in models:
            self._gpus[uuid].idle_j += result.gpu_idle_j.get(uuid, 0.0)
        for (key, uuid), joules in result.gpu_energy_j.items():
            c = self._container(key)
            k = (uuid, models[uuid])
            c.gpu_j[k] = c.gpu_j.get(k, 0.0) + joules
        for key, parts in result.host_energy_j.items():
            c = self._container(key)
            for comp, joules in parts.items():
                c.host_j[comp] = c.host_j.get(comp, 0.0) + joules
        for comp, joules in host_delta.items():
            self._host_j[comp] = self._host_j.get(comp, 0.0) + joules
        for comp, joules in result.host_unattributed_j.items():
            self._host_unattributed_j[comp] = self._host_unattributed_j.get(comp, 0.0) + joules
        for (key, model), seconds in result.allocation_s.items():
            c = self._container(key)
            c.alloc_s[model] = c.alloc_s.get(model, 0.0) + seconds

    def _track_shares(self, result: Attribution, present: set[ContainerKey]) -> None:
        """Which containers the sub-second samples are split to, and their swing thresholds."""
        shares: dict[ContainerKey, list[tuple[str, float]]] = {}
        for uuid, per in result.gpu_shares.items():
            for key, share in per.items():
                if share > 0:
                    shares.setdefault(key, []).append((uuid, share))
        sampled = []
        for key, c in self._containers.items():
            c.shares = tuple(shares.get(key, ()))
            if not (c.shares and key in present):
                c.power_w = 0.0
                continue
            sampled.append(c)
            max_w = sum(self._gpus[u].max_power_w * s for u, s in c.shares if u in self._gpus)
            held = sum(s for u, s in c.shares if u in self._gpus)
            if max_w > 0 and held > 0:
                c.limit_w = max_w / held
            if max_w > 0 and c.swing is None:
                c.swing = SwingCounter(max_w, self._swing_fraction, self._swing_window_s)
                c.swing_max_w = max_w
            elif c.swing is not None and max_w > 0 and abs(max_w - c.swing_max_w) > 0.01 * max_w:
                # a time-sliced/MPS share moved: new threshold, same window of samples
                c.swing.set_device_max(max_w)
                c.swing_max_w = max_w
        self._sampled = sampled

    def _reap(self, present: set[ContainerKey], now: float) -> None:
        """Keep an ended container's final counters visible for the grace period (real
        seconds), then forget it."""
        unix_now = self._wall()
        for key, c in list(self._containers.items()):
            if key in present:
                continue
            if c.ended_at is None:
                c.ended_at = now
            if c.ended_unix is None:
                c.ended_unix = unix_now
            elif unix_now - c.ended_unix > self._grace_s:
                del self._containers[key]
        live_pods = {(k.namespace, k.pod) for k in self._containers}
        self._pod_starts = {p: s for p, s in self._pod_starts.items() if p in live_pods}

    def _publish(self, now: float, persist: bool = True) -> Snapshot:
        """Checkpoint, then serve: a value a scraper sees is always on disk already."""
        snap = self._build_snapshot(now)
        if persist and self._state_file is not None:
            self.save_state()
        self.snapshot = snap
        self.last_cycle_monotonic = time.monotonic()
        return snap

    def _build_snapshot(self, now: float) -> Snapshot:
        gpus = tuple(
            GpuSeries(d.uuid, d.model, d.total_j, d.idle_j, d.power_w, d.max_power_w, d.swings)
            for d in sorted(self._gpus.values(), key=lambda d: d.uuid)
        )
        containers = tuple(
            ContainerSeries(
                c.key,
                c.start_unix,
                dict(c.gpu_j),
                dict(c.host_j),
                dict(c.alloc_s),
                c.power_w,
                c.peak_w if c.peak_w is not None else 0.0,
                c.min_w if c.min_w is not None else 0.0,
                c.swings,
                tuple(itertools.accumulate(c.ratio_s)),
                c.ratio_sum,
                c.limit_w,
            )
            for c in sorted(self._containers.values(), key=lambda c: c.key)
        )
        return Snapshot(
            node=self.node,
            timestamp_s=now,
            gpus=gpus,
            containers=containers,
            host_energy_j=dict(self._host_j),
            host_unattributed_j=dict(self._host_unattributed_j),
            host_estimated=self._host_estimated,
            pod_starts=dict(self._pod_starts),
            sources=tuple(self._status[k] for k in sorted(self._status)),
            errors=self.errors.counts(),
        )

    # ------------------------------------------------------------------ state file
    def state_document(self) -> dict[str, Any]:
        """The checkpoint as plain data (the shape of :class:`~.state.StateFile`)."""
        prev = self._host_prev
        return {
            "version": 2,
            "node": self.node,
            "saved_unix": self._wall(),
            "clock_s": self._last_cycle_t if self._last_cycle_t is not None else self._clock(),
            "gpus": {
                d.uuid: {
                    "model": d.model,
                    "energy_j": d.total_j,
                    "idle_j": d.idle_j,
                    "swings": d.swings,
                    "max_power_w": d.max_power_w,
                    "counter_mj": d.energy.last_counter_mj if d.has_counter else None,
                    "shares": [
                        {"namespace": c.key.namespace, "pod": c.key.pod, "container": c.key.container, "fraction": s}
                        for c in self._containers.values()
                        for u, s in c.shares
                        if u == d.uuid
                    ],
                }
                for d in self._gpus.values()
            },
            "host": {
                "energy_j": self._host_j,
                "unattributed_j": self._host_unattributed_j,
                "estimated": self._host_estimated,
                "zones": {}
                if prev is None
                else {
                    z: {"energy_uj": e, "max_uj": m, "component": prev.zone_component.get(z, "cpu")}
                    for z, (e, m) in prev.counters_uj.items()
                },
                "busy_cpu_s": None if prev is None else prev.busy_cpu_s,
                "total_cpu_s": None if prev is None else prev.total_cpu_s,
            },
            "containers": [
                {
                    "namespace": c.key.namespace,
                    "pod": c.key.pod,
                    "container": c.key.container,
                    "start_unix": c.start_unix,
                    "gpu": [{"gpu_uuid": u, "gpu_model": m, "energy_j": j} for (u, m), j in c.gpu_j.items()],
                    "host_j": c.host_j,
                    "alloc_s": c.alloc_s,
                    "peak_w": c.peak_w,
                    "min_w": c.min_w,
                    "swings": c.swings,
                    "last_cpu_s": c.last_cpu_s,
                    "ended_unix": c.ended_unix,
                    "ratio_s": c.ratio_s,
                    "ratio_sum": c.ratio_sum,
                    "limit_w": c.limit_w,
                }
                for c in self._containers.values()
            ],
            "pod_starts": [[ns, pod, s] for (ns, pod), s in self._pod_starts.items()],
        }

    def save_state(self) -> bool:
        """Write the checkpoint atomically; False (counted and logged) when it failed."""
        if self._state_file is None:
            return False
        try:
            statefile.save_state(self._state_file, self.state_document())
        except (OSError, ValueError) as exc:
            self.errors.inc("state", "save")
            log.error("could not save state", extra={"path": str(self._state_file), "reason": str(exc)})
            return False
        return True

    def _load_state(self, path: Path) -> None:
        try:
            state = statefile.load_state(path, self.node, self._wall())
        except statefile.StateError as exc:
            self.errors.inc("state", "load")
            aside = statefile.set_aside(path, self._wall())
            log.error(
                "state file invalid; set aside, counters start afresh",
                extra={"path": str(path), "reason": str(exc), "moved_to": str(aside) if aside else None},
            )
            return
        if state is None:
            return
        self._restore(state)
        log.info("state restored", extra={"path": str(path), "containers": len(self._containers)})

    def _restore(self, state: statefile.StateFile) -> None:
        for uuid, g in state.gpus.items():
            dev = _Gpu(uuid, g.model, max_power_w=g.max_power_w, total_j=g.energy_j, idle_j=g.idle_j, swings_base=g.swings)
            if g.counter_mj is not None:
                dev.energy = DeviceEnergyState(last_counter_mj=g.counter_mj)
                dev.has_counter = True
                dev.last_read_t = state.clock_s
            self._gpus[uuid] = dev
        host = state.host
        self._host_j = dict(host.energy_j.items())  # .items(): cpu|dram keys into a dict[str, float]
        self._host_unattributed_j = dict(host.unattributed_j.items())
        self._host_estimated = host.estimated
        # RAPL counters wrap within minutes: the downtime is billed only for short gaps
        if (host.zones or host.busy_cpu_s is not None) and self._wall() - state.saved_unix <= HOST_GAP_MAX_S:
            self._host_prev = HostReading(
                timestamp_s=state.clock_s,
                estimated=host.estimated,
                counters_uj={z: (v.energy_uj, v.max_uj) for z, v in host.zones.items()},
                zone_component={z: v.component for z, v in host.zones.items()},
                busy_cpu_s=host.busy_cpu_s,
                total_cpu_s=host.total_cpu_s,
            )
        for c in state.containers:
            key = ContainerKey(c.namespace, c.pod, c.container)
            self._containers[key] = _Container(
                key,
                start_unix=c.start_unix,
                gpu_j={(g.gpu_uuid, g.gpu_model): g.energy_j for g in c.gpu},
                host_j=dict(c.host_j.items()),
                alloc_s=dict(c.alloc_s),
                peak_w=c.peak_w,
                min_w=c.min_w,
                swings_base=c.swings,
                last_cpu_s=c.last_cpu_s,
                ended_at=state.clock_s if c.ended_unix is not None else None,
                ended_unix=c.ended_unix,
                ratio_s=list(c.ratio_s) if len(c.ratio_s) == len(POWER_RATIO_BUCKETS) + 1 else [0.0] * (len(POWER_RATIO_BUCKETS) + 1),
                ratio_sum=c.ratio_sum,
                limit_w=c.limit_w,
            )
        self._pod_starts = {(ns, pod): s for ns, pod, s in state.pod_starts}
        for key, cont in self._containers.items():
            self._pod_starts.setdefault((key.namespace, key.pod), cont.start_unix)
        if state.clock_s > 0:
            self._last_cycle_t = state.clock_s
        shares = {
            uuid: {ContainerKey(s.namespace, s.pod, s.container): s.fraction for s in g.shares}
            for uuid, g in state.gpus.items()
        }
        self._restored = _Restored(shares=shares, waited_from_s=self._wall())

    def close(self) -> None:
        """Release the sources (NVML, the kubelet channel, the pod watch thread)."""
        for name, source in (("gpu", self._gpu_source), ("pods", self._pod_source)):
            if source is None:
                continue
            try:
                source.close()
            except Exception:
                log.exception("closing a source failed", extra={"source": name})

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event, sample_interval_s: float, attribution_interval_s: float) -> None:
        """Sample every ``sample_interval_s`` and attribute every ``attribution_interval_s``
        (real seconds) until ``stop`` is set; saves state on the way out."""
        next_sample = next_cycle = time.monotonic()
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_cycle:
                    try:
                        self.cycle()
                    except Exception:
                        log.exception("attribution cycle failed")
                    next_cycle += attribution_interval_s
                    if next_cycle < now:
                        next_cycle = now + attribution_interval_s
                elif now >= next_sample:
                    try:
                        self.sample()
                    except Exception:
                        log.exception("power sample failed")
                    next_sample += sample_interval_s
                    if next_sample < now:
                        next_sample = now + sample_interval_s
                stop.wait(max(0.0, min(next_sample, next_cycle) - time.monotonic()))
        finally:
            if self._state_file is not None:
                self.save_state()


def _held_power(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A GPU's power at each of its sample times, a bad sample (NaN, negative) holding the
    latest good one (0 before any)."""
    out: list[tuple[float, float]] = []
    held = 0.0
    for t, w in sorted(samples, key=lambda sample: sample[0]):
        if math.isfinite(w) and w >= 0:
            held = w
        if out and out[-1][0] == t:
            out[-1] = (t, held)  # one point per time, the latest sample winning
        else:
            out.append((t, held))
    return out


def _container_power(shares: tuple[tuple[str, float], ...], steps: Mapping[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """A container's attributed power at each sample time of its GPUs (each GPU's power
    held from its latest sample)."""
    if len(shares) == 1:  # the common case: one GPU (or a share of one)
        uuid, share = shares[0]
        return [(t, w * share) for t, w in steps.get(uuid, ())]
    points = sorted({t for uuid, _s in shares for t, _w in steps.get(uuid, ())})
    current: dict[str, float] = {}
    cursor = dict.fromkeys((uuid for uuid, _s in shares), 0)
    out = []
    for t in points:
        for uuid, _s in shares:
            gpu = steps.get(uuid, [])
            i = cursor[uuid]
            while i < len(gpu) and gpu[i][0] <= t:
                current[uuid] = gpu[i][1]
                i += 1
            cursor[uuid] = i
        out.append((t, sum(current.get(uuid, 0.0) * s for uuid, s in shares)))
    return out


def _downtime_holdings(
    holdings: dict[str, list[Holding]], before: Mapping[str, Mapping[ContainerKey, float]]
) -> dict[str, list[Holding]]:
    """Holdings for the interval that spans a restart: a GPU keeps holders only when the
    same containers held it before the restart and hold it now; otherwise nobody is known
    to have used it meanwhile and its energy goes to idle."""
    out: dict[str, list[Holding]] = {}
    for uuid, hs in holdings.items():
        now_holders = {h.container for h in hs}
        then_holders = {k for k, f in before.get(uuid, {}).items() if f > 0}
        if now_holders and now_holders == then_holders:
            out[uuid] = hs
    return out

"""The monitor: samples power sub-second, attributes energy each interval, publishes snapshots.

Measure, then render (Kepler's device -> monitor -> exporter split): the collector only
reads :attr:`Monitor.snapshot`, an immutable :class:`~.model.Snapshot` replaced atomically
once per attribution interval. All mutable state lives here and is touched by one thread.

Restarts: with a state file, cumulative totals are restored and the first hardware reading
after a restart is only a baseline (delta 0) — never negative, never doubled.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfootprint.accounting.power import SwingCounter
from mlfootprint.exporter.attribution import DeviceInterval, IdlePolicy, attribute, build_holdings
from mlfootprint.exporter.cgroups import CgroupReader
from mlfootprint.exporter.counters import DeviceEnergyState, add_power_sample, counter_delta, take_energy
from mlfootprint.exporter.model import (
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
    Snapshot,
    SourceStatus,
    SourceUnavailable,
)

log = logging.getLogger(__name__)

STATE_VERSION = 1


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

    @property
    def swings(self) -> int:
        return self.swings_base + (self.swing.swings if self.swing else 0)


@dataclass
class _Container:
    key: ContainerKey
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
    ended_at: float | None = None
    #: wall-clock (monotonic) time the container was first seen ended; the grace period counts
    #: real seconds even when the measurement clock is accelerated (simulation)
    ended_wall_s: float | None = None
    shares: tuple[tuple[str, float], ...] = ()

    @property
    def swings(self) -> int:
        return self.swings_base + (self.swing.swings if self.swing else 0)


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
        state_save_interval_s: float = 30.0,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.node = node
        self.errors = errors
        self._gpu_source = gpu
        self._host_source = host
        self._pod_source = pods
        self._cgroups = cgroups
        self._clock = clock
        # Grace periods and state checkpoints are about real time, not the (possibly
        # accelerated) measurement clock; tests inject one fake clock for both.
        self._wall = wall_clock or clock
        self._idle_policy: IdlePolicy = idle_policy
        self._swing_fraction = swing_fraction
        self._swing_window_s = swing_window_s
        self._grace_s = ended_pod_grace_s
        self._state_file = state_file
        self._state_every_s = state_save_interval_s
        self._state_saved_at: float | None = None
        self._gpus: dict[str, _Gpu] = {}
        self._containers: dict[ContainerKey, _Container] = {}
        self._listing = PodListing(())
        self._host_j: dict[str, float] = {}
        self._host_estimated = False
        self._host_prev: HostReading | None = None
        self._status: dict[str, SourceStatus] = {}
        self._last_cycle_t: float | None = None
        self._sampled: list[_Container] = []
        self.snapshot = Snapshot(node=node, timestamp_s=clock())
        self.last_cycle_monotonic = time.monotonic()
        if state_file is not None:
            self._load_state(state_file)

    # ------------------------------------------------------------------ sampling
    def sample(self) -> None:
        """One sub-second power sample: GPU power, swings, per-container power stats."""
        if self._gpu_source is None:
            return
        now = self._clock()
        try:
            powers = self._gpu_source.read_power(now)
        except SourceUnavailable:
            return
        self._apply_power(now, powers)

    def _apply_power(self, now: float, powers: dict[str, float]) -> None:
        gpus = self._gpus
        for uuid, power in powers.items():
            dev = gpus.get(uuid)
            if dev is None or not math.isfinite(power) or power < 0:
                continue
            dev.power_w = power
            if dev.has_counter is not True:
                dev.energy = add_power_sample(dev.energy, now, power)
            if dev.swing is not None:
                dev.swing.add(now, power)
        for c in self._sampled:
            p = 0.0
            for uuid, share in c.shares:
                dev = gpus.get(uuid)
                if dev is not None:
                    p += dev.power_w * share
            c.power_w = p
            if c.peak_w is None or p > c.peak_w:
                c.peak_w = p
            if c.min_w is None or p < c.min_w:
                c.min_w = p
            if c.swing is not None:
                c.swing.add(now, p)

    # ------------------------------------------------------------------ attribution
    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            result = fn()
            if not self._status.get(name, SourceStatus(name, True, 0)).up:
                log.warning("source recovered", extra={"source": name})
            self._status[name] = SourceStatus(name, True, time.perf_counter() - start)
            return result
        except SourceUnavailable as exc:
            if self._status.get(name, SourceStatus(name, True, 0)).up:
                log.warning("source has no data", extra={"source": name, "reason": str(exc)})
            self._status[name] = SourceStatus(name, False, time.perf_counter() - start)
            return None
        except Exception:
            self.errors.inc(name, "read")
            log.exception("source failed", extra={"source": name})
            self._status[name] = SourceStatus(name, False, time.perf_counter() - start)
            return None

    def cycle(self) -> Snapshot:
        """One attribution interval; returns (and publishes) the new snapshot."""
        now = self._clock()
        duration_s = 0.0 if self._last_cycle_t is None else max(now - self._last_cycle_t, 0.0)
        self._last_cycle_t = now

        listing_ok = False
        if self._pod_source is not None:
            listing = self._timed(self._pod_source.name, lambda: self._pod_source.list(now))  # type: ignore[union-attr]
            if listing is not None:
                self._listing, listing_ok = listing, True
                set_profiles = getattr(self._gpu_source, "set_profiles", None)
                profiles = getattr(self._pod_source, "profiles", None)
                if set_profiles is not None and profiles is not None:
                    set_profiles(profiles(listing))
        listing = self._listing

        readings: list[GpuReading] = []
        if self._gpu_source is not None:
            readings = self._timed(self._gpu_source.name, lambda: self._gpu_source.read(now)) or []  # type: ignore[union-attr]
        devices = self._measure_gpus(now, readings)

        by_identity: dict[tuple[str | None, str | None], ContainerKey] = {}
        by_cid: dict[str, ContainerKey] = {}
        for info in listing.containers:
            if info.container_id:
                by_identity[(info.pod_uid, info.container_id)] = info.key
                by_cid[info.container_id] = info.key
        pid_container: dict[int, ContainerKey] = {}
        if self._cgroups is not None and by_cid:
            for reading in readings:
                for proc in reading.processes:
                    ident = self._cgroups.identity_of_pid(proc.pid)
                    if ident is not None:
                        key = by_identity.get(ident) or by_cid.get(ident[1])
                        if key is not None:
                            pid_container[proc.pid] = key

        cpu_now: dict[ContainerKey, float] = {}
        for info in listing.containers:
            if info.cpu_time_s is not None:
                cpu_now[info.key] = info.cpu_time_s
        if self._cgroups is not None and by_cid:
            for ident, seconds in self._cgroups.container_cpu_seconds().items():
                key = by_identity.get(ident) or by_cid.get(ident[1])
                if key is not None:
                    cpu_now[key] = seconds

        host_delta, busy_delta = self._measure_host(now)

        containers = self._containers
        present = {info.key for info in listing.containers}
        for key in present:
            if key not in containers:
                containers[key] = _Container(key)
        cpu_delta: dict[ContainerKey, float] = {}
        for key, seconds in cpu_now.items():
            c = containers[key]
            delta, _ = counter_delta(c.last_cpu_s, seconds)
            c.last_cpu_s = seconds
            cpu_delta[key] = delta

        mig_parents = {
            inst.uuid: (r.uuid, inst.slices, r.mig_total_slices) for r in readings for inst in r.mig_instances
        }
        holdings = build_holdings(listing.containers, mig_parents, listing.replicas_per_gpu)
        result = attribute(devices, holdings, pid_container, duration_s, self._idle_policy, host_delta, cpu_delta, busy_delta)

        models = {d.uuid: d.model for d in devices}
        for dev in devices:
            self._gpus[dev.uuid].idle_j += result.gpu_idle_j.get(dev.uuid, dev.energy_j)
        for (key, uuid), joules in result.gpu_energy_j.items():
            c = containers[key]
            k = (uuid, models[uuid])
            c.gpu_j[k] = c.gpu_j.get(k, 0.0) + joules
        for key, parts in result.host_energy_j.items():
            c = containers[key]
            for comp, joules in parts.items():
                c.host_j[comp] = c.host_j.get(comp, 0.0) + joules
        for (key, model), seconds in result.allocation_s.items():
            c = containers[key]
            c.alloc_s[model] = c.alloc_s.get(model, 0.0) + seconds
        for key in present:
            c = containers[key]
            c.ended_at = None
            c.ended_wall_s = None
        shares: dict[ContainerKey, list[tuple[str, float]]] = {}
        for uuid, per in result.gpu_shares.items():
            for key, share in per.items():
                if share > 0:
                    shares.setdefault(key, []).append((uuid, share))
        sampled = []
        for key, c in containers.items():
            c.shares = tuple(shares.get(key, ()))
            if c.shares and key in present:
                sampled.append(c)
                max_w = sum(self._gpus[u].max_power_w * s for u, s in c.shares if u in self._gpus)
                if max_w > 0 and c.swing is None:
                    c.swing = SwingCounter(max_w, self._swing_fraction, self._swing_window_s)
                    c.swing_max_w = max_w
                elif max_w > 0 and abs(max_w - c.swing_max_w) > 0.01 * max_w:
                    # a time-sliced/MPS share moved: new threshold, same window of samples
                    c.swing.set_device_max(max_w)  # type: ignore[union-attr]
                    c.swing_max_w = max_w
            else:
                c.power_w = 0.0
        self._sampled = sampled
        if listing_ok:
            for key, c in list(containers.items()):
                if key in present:
                    continue
                wall_s = self._wall()
                if c.ended_at is None:
                    c.ended_at = now
                if c.ended_wall_s is None:  # just ended, or restored from the state file
                    c.ended_wall_s = wall_s
                elif wall_s - c.ended_wall_s > self._grace_s:
                    del containers[key]
        # fold the cycle's own power reading into the per-container stats as one sample
        self._apply_power(now, {r.uuid: r.power_w for r in readings if r.power_w is not None})
        snap = self._build_snapshot(now)
        self.snapshot = snap
        self.last_cycle_monotonic = time.monotonic()
        if self._state_file is not None and (
            self._state_saved_at is None or self._wall() - self._state_saved_at >= self._state_every_s
        ):
            self.save_state()
        return snap

    def _measure_gpus(self, now: float, readings: list[GpuReading]) -> list[DeviceInterval]:
        devices: list[DeviceInterval] = []
        for r in readings:
            dev = self._gpus.get(r.uuid)
            if dev is None:
                dev = self._gpus[r.uuid] = _Gpu(r.uuid)
            dev.model = r.model
            if r.max_power_w is not None and r.max_power_w > 0:
                if dev.swing is None or r.max_power_w != dev.max_power_w:
                    dev.swings_base = dev.swings
                    dev.swing = SwingCounter(r.max_power_w, self._swing_fraction, self._swing_window_s)
                dev.max_power_w = r.max_power_w
            dev.has_counter = r.energy_mj is not None
            if r.energy_mj is None and r.power_w is not None:
                dev.energy = add_power_sample(dev.energy, now, r.power_w)
            elapsed = None if dev.last_read_t is None else now - dev.last_read_t
            dev.last_read_t = now
            dev.energy, joules, _event = take_energy(dev.energy, r.energy_mj, elapsed, dev.max_power_w or None)
            dev.total_j += joules
            devices.append(DeviceInterval(r.uuid, r.model, joules, r.processes, r.mig_instances, r.mig_total_slices))
        return devices

    def _measure_host(self, now: float) -> tuple[dict[str, float], float | None]:
        if self._host_source is None:
            return {}, None
        reading: HostReading | None = self._timed("host", lambda: self._host_source.read(now))  # type: ignore[union-attr]
        if reading is None:
            return {}, None
        prev, self._host_prev = self._host_prev, reading
        delta: dict[str, float] = {}
        if reading.estimated:
            dt = 0.0 if prev is None else max(now - prev.timestamp_s, 0.0)
            for comp, watts in reading.power_w.items():
                delta[comp] = max(watts, 0.0) * dt
        else:
            for zone, (energy_uj, max_uj) in reading.counters_uj.items():
                before = None if prev is None else prev.counters_uj.get(zone, (None, None))[0]
                d_uj, _ = counter_delta(before, energy_uj, max_uj)
                comp = reading.zone_component.get(zone, "cpu")
                delta[comp] = delta.get(comp, 0.0) + d_uj / 1e6
        self._host_estimated = reading.estimated
        for comp, joules in delta.items():
            self._host_j[comp] = self._host_j.get(comp, 0.0) + joules
        busy = None
        if prev is not None and reading.busy_cpu_s is not None and prev.busy_cpu_s is not None:
            busy = max(reading.busy_cpu_s - prev.busy_cpu_s, 0.0)
        return delta, busy

    def _build_snapshot(self, now: float) -> Snapshot:
        gpus = tuple(
            GpuSeries(d.uuid, d.model, d.total_j, d.idle_j, d.power_w, d.max_power_w, d.swings)
            for d in sorted(self._gpus.values(), key=lambda d: d.uuid)
        )
        containers = tuple(
            ContainerSeries(
                c.key,
                dict(c.gpu_j),
                dict(c.host_j),
                dict(c.alloc_s),
                c.power_w,
                c.peak_w if c.peak_w is not None else 0.0,
                c.min_w if c.min_w is not None else 0.0,
                c.swings,
            )
            for c in sorted(self._containers.values(), key=lambda c: c.key)
        )
        return Snapshot(
            node=self.node,
            timestamp_s=now,
            gpus=gpus,
            containers=containers,
            host_energy_j=dict(self._host_j),
            host_estimated=self._host_estimated,
            sources=tuple(self._status[k] for k in sorted(self._status)),
            errors=self.errors.counts(),
        )

    # ------------------------------------------------------------------ state file
    def save_state(self) -> None:
        """Write cumulative totals atomically (temp file + rename)."""
        if self._state_file is None:
            return
        doc = {
            "version": STATE_VERSION,
            "node": self.node,
            "gpus": {
                d.uuid: {"model": d.model, "energy_j": d.total_j, "idle_j": d.idle_j, "swings": d.swings}
                for d in self._gpus.values()
            },
            "host_j": self._host_j,
            "containers": [
                {
                    "namespace": c.key.namespace,
                    "pod": c.key.pod,
                    "container": c.key.container,
                    "gpu_j": [[u, m, j] for (u, m), j in c.gpu_j.items()],
                    "host_j": c.host_j,
                    "alloc_s": c.alloc_s,
                    "peak_w": c.peak_w,
                    "min_w": c.min_w,
                    "swings": c.swings,
                    "ended_at": c.ended_at,
                }
                for c in self._containers.values()
            ],
        }
        path = self._state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh)
            os.replace(tmp, path)
        except OSError:
            self.errors.inc("state", "save")
            log.exception("could not save state", extra={"path": str(path)})
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        self._state_saved_at = self._wall()

    def _load_state(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            self.errors.inc("state", "load")
            log.exception("state file unreadable; starting from zero", extra={"path": str(path)})
            return
        if doc.get("version") != STATE_VERSION:
            log.warning("state file version differs; ignored", extra={"path": str(path)})
            return
        for uuid, g in doc.get("gpus", {}).items():
            self._gpus[uuid] = _Gpu(uuid, g["model"], total_j=g["energy_j"], idle_j=g["idle_j"], swings_base=g["swings"])
        self._host_j = {k: float(v) for k, v in doc.get("host_j", {}).items()}
        for c in doc.get("containers", []):
            key = ContainerKey(c["namespace"], c["pod"], c["container"])
            self._containers[key] = _Container(
                key,
                gpu_j={(u, m): float(j) for u, m, j in c["gpu_j"]},
                host_j=dict(c["host_j"]),
                alloc_s=dict(c["alloc_s"]),
                peak_w=c.get("peak_w"),
                min_w=c.get("min_w"),
                swings_base=int(c.get("swings", 0)),
                ended_at=c.get("ended_at"),
            )
        log.info("state restored", extra={"path": str(path), "containers": len(self._containers)})

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

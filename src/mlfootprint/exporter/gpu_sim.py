"""Simulated GPUs: deterministic (seeded) and realistic load profiles, same interface as NVML.

Profiles (per GPU, set from the holding pod's annotation ``mlfootprint.io/sim-profile``):

* ``training``: ~85 % of max power while computing, dropping to ~15 % for a 2-minute
  checkpoint save every 30 minutes (H100 observation, METHODOLOGY §6);
* ``inference``: idle floor plus a dynamic part following a request-rate profile (diurnal
  sine peaking mid-afternoon, with deterministic per-minute jitter);
* ``failing``: a crash loop — 10 minutes at training power, 5 minutes idle (back-off);
* ``idle``: ~10 % of max (an H100 idles around 60-70 W of 700 W).

Like real hardware, the simulated devices live on their own clock and keep their own energy
counters (mJ, integrated from the power function, like NVML's
``nvmlDeviceGetTotalEnergyConsumption``). With a *device file* the devices outlive the
exporter process: the clock is a pure function of wall time anchored in that file
(``sim = anchor_sim + factor * (unix - anchor_unix)``) and each counter is saved there, so
after an exporter restart (or ``kill -9``) the counters have kept counting through the
downtime at the load the GPU last had, exactly as NVML's do. Tests read the file
(:func:`read_device_file`) to know the true energy. Without a file the devices live in the
process (unit tests).

Sampling happens on the simulated clock: :meth:`SimulatedGpuSource.power_trace` returns the
samples a sampler with the configured interval would have taken *in simulated time* where
the power changes (checkpoint dips, crash-loop edges) plus the latest one, so swings are
counted under ``--sim-time-factor`` too (a 2-minute dip lasts 83 ms of wall time at 1440x).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlfootprint.exporter.model import ErrorCounter, GpuReading, PowerTrace

log = logging.getLogger(__name__)

PROFILES = ("training", "inference", "idle", "failing")

TRAIN_FRACTION = 0.85
CHECKPOINT_FRACTION = 0.15
IDLE_FRACTION = 0.10
INFERENCE_PEAK_FRACTION = 0.75
CHECKPOINT_PERIOD_S = 1800.0
CHECKPOINT_LENGTH_S = 120.0
FAIL_PERIOD_S = 900.0
FAIL_RUN_S = 600.0
#: at most this many power edges are replayed per trace (a long pause of the sampler)
MAX_TRACE_EDGES = 64
DEVICE_FILE_VERSION = 1


def _noise(seed: int, index: int, bucket: int) -> float:
    """Deterministic noise in [-1, 1] for (seed, gpu, time bucket)."""
    digest = hashlib.blake2b(f"{seed}:{index}:{bucket}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def request_rate(t_s: float) -> float:
    """Normalised request rate (0-1): diurnal, lowest ~03:00, highest ~15:00 (UTC)."""
    day = (t_s % 86400.0) / 86400.0
    return 0.5 + 0.4 * math.sin(2 * math.pi * (day - 0.375))


#: The request mix drifts: mean prompt and output sizes vary independently (periods of 5 and
#: 7 hours), so that a per-request energy model e(Tin, Tout) can be fitted from the demo's
#: interval counters (METHODOLOGY §5).
MIX_AMPLITUDE = 0.35
PROMPT_MIX_PERIOD_S = 5 * 3600.0
OUTPUT_MIX_PERIOD_S = 7 * 3600.0
OUTPUT_MIX_PHASE = 1.0
#: share of an inference GPU's dynamic power that scales with prompt vs output tokens
PROMPT_POWER_SHARE = 0.3


def request_mix(t_s: float) -> tuple[float, float]:
    """Mean prompt and output tokens per request at ``t_s``, relative to their averages."""
    return (
        1.0 + MIX_AMPLITUDE * math.sin(2 * math.pi * t_s / PROMPT_MIX_PERIOD_S),
        1.0 + MIX_AMPLITUDE * math.sin(2 * math.pi * t_s / OUTPUT_MIX_PERIOD_S + OUTPUT_MIX_PHASE),
    )


def profile_power_w(profile: str, t_s: float, max_w: float, seed: int, index: int, phase_s: float) -> float:
    """Power (W) of a simulated GPU at time ``t_s`` (pure, deterministic)."""
    jitter = _noise(seed, index, int(t_s))
    idle_w = IDLE_FRACTION * max_w * (1 + 0.02 * jitter)
    if profile == "training":
        in_period = (t_s + phase_s) % CHECKPOINT_PERIOD_S
        if in_period >= CHECKPOINT_PERIOD_S - CHECKPOINT_LENGTH_S:
            return CHECKPOINT_FRACTION * max_w * (1 + 0.03 * jitter)
        return min(max_w, TRAIN_FRACTION * max_w * (1 + 0.03 * jitter))
    if profile == "inference":
        minute_jitter = 0.1 * _noise(seed, index, int(t_s // 60) + 10**9)
        prompt, output = request_mix(t_s)
        work = request_rate(t_s) * (PROMPT_POWER_SHARE * prompt + (1 - PROMPT_POWER_SHARE) * output)
        util = min(1.0, max(0.0, work + minute_jitter))
        return idle_w + (INFERENCE_PEAK_FRACTION * max_w - idle_w) * util
    if profile == "failing":
        if (t_s + phase_s) % FAIL_PERIOD_S < FAIL_RUN_S:
            return min(max_w, TRAIN_FRACTION * max_w * (1 + 0.03 * jitter))
        return idle_w
    return idle_w


def profile_edges(profile: str, since_s: float, now_s: float, phase_s: float) -> list[float]:
    """Times in ``(since_s, now_s]`` where the profile's power steps (pure)."""
    if profile == "training":
        period, offsets = CHECKPOINT_PERIOD_S, (CHECKPOINT_PERIOD_S - CHECKPOINT_LENGTH_S, 0.0)
    elif profile == "failing":
        period, offsets = FAIL_PERIOD_S, (FAIL_RUN_S, 0.0)
    else:
        return []
    edges: list[float] = []
    for offset in offsets:
        # t + phase = k * period + offset
        k = math.floor((since_s + phase_s - offset) / period) + 1
        while True:
            t = k * period + offset - phase_s
            if t > now_s:
                break
            if t > since_s:
                edges.append(t)
            k += 1
    edges.sort()
    return edges[-MAX_TRACE_EDGES:]


class SimClock:
    """Simulated seconds as a pure function of wall time:
    ``anchor_sim + factor * (unix_now - anchor_unix)``. Continues across process restarts
    when the anchor is kept (the device file keeps it). :meth:`hourly` anchors at the start
    of the current wall-clock hour, so simulators started separately (the exporters, the
    demo's serving simulator) share one simulated time."""

    def __init__(self, factor: float, anchor_unix: float, anchor_sim: float, now: Callable[[], float] = time.time) -> None:
        self.factor = factor
        self.anchor_unix = anchor_unix
        self.anchor_sim = anchor_sim
        self._now = now

    @classmethod
    def hourly(cls, factor: float, now: Callable[[], float] = time.time) -> SimClock:
        hour = math.floor(now() / 3600.0) * 3600.0
        return cls(factor, hour, hour, now)

    def at(self, unix_s: float) -> float:
        return self.anchor_sim + self.factor * (unix_s - self.anchor_unix)

    def __call__(self) -> float:
        return self.at(self._now())


@dataclass
class _SimGpu:
    uuid: str
    index: int
    phase_s: float
    energy_mj: float
    last_t_s: float | None = None
    profile: str | None = None
    #: the holding container: GPUs of one job checkpoint (and crash-loop) together
    holder: str | None = None

    @property
    def phase(self) -> float:
        if self.holder is None:
            return self.phase_s
        digest = hashlib.blake2b(self.holder.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 * CHECKPOINT_PERIOD_S


@dataclass(frozen=True)
class DeviceRecord:
    """One simulated GPU as its device file holds it (the test oracle's view)."""

    uuid: str
    t_s: float
    energy_j: float
    profile: str | None


def read_device_file(path: Path) -> dict[str, DeviceRecord]:
    """The simulated GPUs' counters as last written (uuid -> record)."""
    doc = json.loads(Path(path).read_text())
    return {
        g["uuid"]: DeviceRecord(g["uuid"], float(g["t_s"]), float(g["energy_mj"]) / 1000.0, g.get("profile"))
        for g in doc["gpus"]
        if g.get("t_s") is not None
    }


class SimulatedGpuSource:
    """``count`` simulated GPUs of ``model`` with power limit ``max_power_w``.

    ``device_file``: where the devices keep their clock anchor and counters (see module doc);
    ``time_factor``: simulated seconds per wall second. ``clock`` is the devices' clock, which
    the monitor uses as its measurement clock.
    """

    name = "sim"

    def __init__(
        self,
        errors: ErrorCounter,
        count: int = 8,
        model: str = "NVIDIA H100 80GB HBM3",
        max_power_w: float = 700.0,
        seed: int = 0,
        default_profile: str = "idle",
        node: str = "",
        device_file: Path | None = None,
        time_factor: float = 1.0,
        unix_clock: Callable[[], float] = time.time,
    ) -> None:
        self._errors = errors
        self._model = model
        self._max_w = max_power_w
        self._seed = seed
        self._default = default_profile
        self._device_file = Path(device_file) if device_file is not None else None
        rng = random.Random(f"{seed}:{node}")
        self._gpus = [
            _SimGpu(
                uuid=f"GPU-{uuidlib.UUID(int=rng.getrandbits(128), version=4)}",
                index=i,
                phase_s=rng.uniform(0, CHECKPOINT_PERIOD_S),
                energy_mj=float(rng.randint(10**8, 10**10)),  # "since driver load"
            )
            for i in range(count)
        ]
        now = unix_clock()
        self.clock = SimClock.hourly(time_factor, unix_clock)
        if self._device_file is not None:
            self._load_device_file(self._device_file, now, time_factor, unix_clock)

    @property
    def uuids(self) -> list[str]:
        return [g.uuid for g in self._gpus]

    # -- the devices outliving the process
    def _load_device_file(self, path: Path, now: float, factor: float, unix_clock: Callable[[], float]) -> None:
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") != DEVICE_FILE_VERSION:
                raise ValueError("unknown version")
            old = SimClock(float(doc["factor"]), float(doc["anchor_unix"]), float(doc["anchor_sim"]))
            saved = {g["uuid"]: g for g in doc["gpus"]}
            values = [(float(g["energy_mj"]), g.get("t_s"), g.get("profile")) for g in saved.values()]
            if not all(math.isfinite(e) and e >= 0 for e, _t, _p in values):
                raise ValueError("counter out of range")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("simulated device file unusable; devices start afresh", extra={"path": str(path), "reason": str(e)})
            return
        # re-anchor where the old clock is now: simulated time continues, at the new factor
        self.clock = SimClock(factor, now, old.at(now), unix_clock)
        for gpu in self._gpus:
            g = saved.get(gpu.uuid)
            if g is None:
                continue
            gpu.energy_mj = float(g["energy_mj"])
            gpu.last_t_s = None if g.get("t_s") is None else float(g["t_s"])
            gpu.profile = g.get("profile") if g.get("profile") in PROFILES else None
            gpu.holder = g.get("holder") if isinstance(g.get("holder"), str) else None

    def _save_device_file(self) -> None:
        if self._device_file is None:
            return
        doc = {
            "version": DEVICE_FILE_VERSION,
            "factor": self.clock.factor,
            "anchor_unix": self.clock.anchor_unix,
            "anchor_sim": self.clock.anchor_sim,
            "gpus": [
                {"uuid": g.uuid, "t_s": g.last_t_s, "energy_mj": g.energy_mj, "profile": g.profile, "holder": g.holder}
                for g in self._gpus
            ],
        }
        try:
            self._device_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sim-", dir=self._device_file.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh)
            os.replace(tmp, self._device_file)
        except OSError:
            self._errors.inc(self.name, "device_file")

    # -- GpuSource
    def set_profiles(self, profiles: Mapping[str, str | None], now_s: float, holders: Mapping[str, str] | None = None) -> None:
        """GPU UUID -> profile name; GPUs not mentioned run the default profile. ``holders``:
        GPU UUID -> the container holding it; the GPUs of one container run in step (a
        data-parallel job checkpoints on all its GPUs at once). The load changes at
        ``now_s``: energy up to then is integrated at the previous load first."""
        for gpu in self._gpus:
            wanted = profiles.get(gpu.uuid)
            wanted = wanted if wanted in PROFILES else None
            holder = (holders or {}).get(gpu.uuid)
            if wanted != gpu.profile or holder != gpu.holder:
                self._advance(gpu, now_s)
                gpu.profile = wanted
                gpu.holder = holder

    def _profile(self, gpu: _SimGpu) -> str:
        return gpu.profile or self._default

    def _power(self, gpu: _SimGpu, t_s: float) -> float:
        return profile_power_w(self._profile(gpu), t_s, self._max_w, self._seed, gpu.index, gpu.phase)

    def _advance(self, gpu: _SimGpu, now_s: float) -> None:
        if gpu.last_t_s is None or now_s <= gpu.last_t_s:
            gpu.last_t_s = now_s if gpu.last_t_s is None else gpu.last_t_s
            return
        span = now_s - gpu.last_t_s
        steps = max(1, min(512, math.ceil(span)))  # ~1 s resolution, bounded cost
        dt = span / steps
        energy_j = 0.0
        prev = self._power(gpu, gpu.last_t_s)
        for k in range(1, steps + 1):
            cur = self._power(gpu, gpu.last_t_s + k * dt)
            energy_j += 0.5 * (prev + cur) * dt
            prev = cur
        gpu.energy_mj += energy_j * 1000.0
        gpu.last_t_s = now_s

    def read(self, now_s: float) -> list[GpuReading]:
        out = []
        for gpu in self._gpus:
            self._advance(gpu, now_s)
            out.append(
                GpuReading(
                    uuid=gpu.uuid,
                    model=self._model,
                    timestamp_s=now_s,
                    energy_mj=round(gpu.energy_mj),
                    power_w=self._power(gpu, now_s),
                    max_power_w=self._max_w,
                )
            )
        self._save_device_file()
        return out

    def read_power(self, now_s: float) -> dict[str, float]:
        return {gpu.uuid: self._power(gpu, now_s) for gpu in self._gpus}

    def power_trace(self, since_s: float | None, now_s: float, interval_s: float) -> PowerTrace:
        """Samples in ``(since_s, now_s]`` on the simulated clock: at each power step the
        sample one ``interval_s`` before it and the one at it, then the sample at now."""
        out: PowerTrace = {}
        for gpu in self._gpus:
            samples: list[tuple[float, float]] = []
            if since_s is not None:
                for edge in profile_edges(self._profile(gpu), since_s, now_s, gpu.phase):
                    before = edge - interval_s
                    if before > since_s and (not samples or before > samples[-1][0]):
                        samples.append((before, self._power(gpu, before)))
                    if not samples or edge > samples[-1][0]:
                        samples.append((edge, self._power(gpu, edge)))
            if not samples or now_s > samples[-1][0]:
                samples.append((now_s, self._power(gpu, now_s)))
            out[gpu.uuid] = samples
        return out

    def close(self) -> None:
        pass

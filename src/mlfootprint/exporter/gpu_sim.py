"""Simulated GPUs: deterministic (seeded) and realistic load profiles, same interface as NVML.

Profiles (per GPU, set from the holding pod's annotation ``mlfootprint.io/sim-profile``):

* ``training``: ~85 % of max power while computing, dropping to ~15 % for a 2-minute
  checkpoint save every 30 minutes (H100 observation, METHODOLOGY §6);
* ``inference``: idle floor plus a dynamic part following a request-rate profile (diurnal
  sine peaking mid-afternoon, with deterministic per-minute jitter);
* ``failing``: a crash loop — 10 minutes at training power, 5 minutes idle (back-off);
* ``idle``: ~10 % of max (an H100 idles around 60-70 W of 700 W).

Times are the monitor's clock, which may be accelerated (``--sim-time-factor``; the demo
runs a day in about a minute). Energy is a cumulative counter in mJ, integrated from the
power function, like NVML's ``nvmlDeviceGetTotalEnergyConsumption``.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass

from mlfootprint.exporter.model import ErrorCounter, GpuReading

PROFILES = ("training", "inference", "idle", "failing")

TRAIN_FRACTION = 0.85
CHECKPOINT_FRACTION = 0.15
IDLE_FRACTION = 0.10
INFERENCE_PEAK_FRACTION = 0.75
CHECKPOINT_PERIOD_S = 1800.0
CHECKPOINT_LENGTH_S = 120.0
FAIL_PERIOD_S = 900.0
FAIL_RUN_S = 600.0


def _noise(seed: int, index: int, bucket: int) -> float:
    """Deterministic noise in [-1, 1] for (seed, gpu, time bucket)."""
    digest = hashlib.blake2b(f"{seed}:{index}:{bucket}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def request_rate(t_s: float) -> float:
    """Normalised request rate (0-1): diurnal, lowest ~03:00, highest ~15:00 (UTC)."""
    day = (t_s % 86400.0) / 86400.0
    return 0.5 + 0.4 * math.sin(2 * math.pi * (day - 0.375))


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
        util = min(1.0, max(0.0, request_rate(t_s) + minute_jitter))
        return idle_w + (INFERENCE_PEAK_FRACTION * max_w - idle_w) * util
    if profile == "failing":
        if (t_s + phase_s) % FAIL_PERIOD_S < FAIL_RUN_S:
            return min(max_w, TRAIN_FRACTION * max_w * (1 + 0.03 * jitter))
        return idle_w
    return idle_w


@dataclass
class _SimGpu:
    uuid: str
    index: int
    phase_s: float
    energy_mj: float
    last_t_s: float | None = None


class SimulatedGpuSource:
    """``count`` simulated GPUs of ``model`` with power limit ``max_power_w``."""

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
    ) -> None:
        self._errors = errors
        self._model = model
        self._max_w = max_power_w
        self._seed = seed
        self._default = default_profile
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
        self._profiles: dict[str, str] = {}

    @property
    def uuids(self) -> list[str]:
        return [g.uuid for g in self._gpus]

    def set_profiles(self, profiles: Mapping[str, str]) -> None:
        """GPU UUID -> profile name; GPUs not mentioned run the default profile."""
        self._profiles = {u: p for u, p in profiles.items() if p in PROFILES}

    def _power(self, gpu: _SimGpu, t_s: float) -> float:
        profile = self._profiles.get(gpu.uuid, self._default)
        return profile_power_w(profile, t_s, self._max_w, self._seed, gpu.index, gpu.phase_s)

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
        return out

    def read_power(self, now_s: float) -> dict[str, float]:
        return {gpu.uuid: self._power(gpu, now_s) for gpu in self._gpus}

    def close(self) -> None:
        pass

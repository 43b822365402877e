"""Serving-efficiency figures as the literature defines them, and power percentiles.

* **GPU-only** J per output token and J per response: GPU energy / tokens or responses — the
  figure of the MIT LLaMA-65B inference study (Samsi et al. 2023, "From Words to Watts"),
  which measured GPU energy only. Comparable with that study.
* **facility** J per output token and J per response: (GPU + host) IT energy x PUE / count —
  what the operator has shown as "J/token" so far; it includes the host and the data centre.
* **kWh per 1,000 requests** (facility and GPU-only): the unit of Luccioni et al., "Power
  Hungry Processing" (FAccT 2024), e.g. ~0.047 kWh per 1,000 text generations on an A100
  (that study measured GPU + CPU + RAM with CodeCarbon, without PUE: closest to our IT figure,
  so we also give ``it_kwh_per_1000_requests``).
* **power percentiles** p50/p90/p99 from power samples (numpy's linear interpolation), or from
  a cumulative histogram the way Prometheus' ``histogram_quantile`` interpolates within buckets.
  Sample percentiles equal time-weighted ones only for uniformly spaced samples.

Pure functions; None where a denominator is zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from mlfootprint.accounting.units import J_PER_KWH

__all__ = [
    "EfficiencyByBasis",
    "PowerPercentiles",
    "efficiency_by_basis",
    "power_percentiles",
    "power_percentiles_from_histogram",
]


class EfficiencyByBasis(BaseModel):
    """Per-token, per-response and per-1,000-request energy on each basis (names say which)."""

    model_config = ConfigDict(frozen=True)

    requests: int
    output_tokens: int | None
    gpu_j_per_output_token: float | None
    gpu_j_per_response: float | None
    facility_j_per_output_token: float | None
    facility_j_per_response: float | None
    gpu_kwh_per_1000_requests: float | None
    it_kwh_per_1000_requests: float | None
    facility_kwh_per_1000_requests: float | None


def _check(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def efficiency_by_basis(
    *, gpu_energy_j: float, it_energy_j: float, pue: float, requests: int, output_tokens: int | None = None
) -> EfficiencyByBasis:
    """GPU-only and facility (IT x PUE) efficiency figures (module docstring for sources).

    ``it_energy_j`` is GPU + host IT energy (it must include the GPU energy). Raises ValueError
    for negative or non-finite inputs, ``pue < 1`` or GPU energy larger than IT energy.
    """
    _check("gpu_energy_j", gpu_energy_j)
    _check("it_energy_j", it_energy_j)
    if not (math.isfinite(pue) and pue >= 1.0):
        raise ValueError(f"pue must be >= 1, got {pue!r}")
    if gpu_energy_j > it_energy_j * (1 + 1e-12):
        raise ValueError(f"gpu_energy_j ({gpu_energy_j}) exceeds it_energy_j ({it_energy_j}): IT energy includes the GPU")
    if requests < 0 or (output_tokens is not None and output_tokens < 0):
        raise ValueError("requests and output_tokens must be >= 0")
    fac_j = it_energy_j * pue

    def per(amount: float, count: int | None) -> float | None:
        return amount / count if count else None

    def per_1000_kwh(amount: float) -> float | None:
        return amount / requests * 1000.0 / J_PER_KWH if requests else None

    return EfficiencyByBasis(
        requests=requests,
        output_tokens=output_tokens,
        gpu_j_per_output_token=per(gpu_energy_j, output_tokens),
        gpu_j_per_response=per(gpu_energy_j, requests),
        facility_j_per_output_token=per(fac_j, output_tokens),
        facility_j_per_response=per(fac_j, requests),
        gpu_kwh_per_1000_requests=per_1000_kwh(gpu_energy_j),
        it_kwh_per_1000_requests=per_1000_kwh(it_energy_j),
        facility_kwh_per_1000_requests=per_1000_kwh(fac_j),
    )


class PowerPercentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50_w: float
    p90_w: float
    p99_w: float


def power_percentiles(power_w: Sequence[float] | np.ndarray) -> PowerPercentiles:
    """p50/p90/p99 of power samples (linear interpolation between order statistics)."""
    p = np.asarray(power_w, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("power_w must be a non-empty 1-D sequence of samples")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("power_w must be finite and >= 0")
    p50, p90, p99 = (float(x) for x in np.percentile(p, [50.0, 90.0, 99.0]))
    return PowerPercentiles(p50_w=p50, p90_w=p90, p99_w=p99)


def _histogram_quantile(q: float, upper_w: np.ndarray, cumulative: np.ndarray) -> float:
    total = cumulative[-1]
    rank = q * total
    i = int(np.searchsorted(cumulative, rank, side="left"))
    if i >= upper_w.size:  # only reachable with a +Inf bucket: the highest finite bound
        return float(upper_w[-1])
    lower = 0.0 if i == 0 else float(upper_w[i - 1])
    below = 0.0 if i == 0 else float(cumulative[i - 1])
    in_bucket = float(cumulative[i]) - below
    if in_bucket <= 0:
        return float(upper_w[i])
    return float(lower + (float(upper_w[i]) - lower) * (rank - below) / in_bucket)


def power_percentiles_from_histogram(upper_w: Sequence[float], cumulative_counts: Sequence[float]) -> PowerPercentiles:
    """p50/p90/p99 from a cumulative histogram of power (bucket upper bounds in W, ``le``
    semantics, the last bound may be ``inf``), interpolating linearly within a bucket from the
    previous bound (0 W for the first), as Prometheus' ``histogram_quantile`` does. A quantile
    that falls in the ``+Inf`` bucket is the highest finite bound."""
    u = np.asarray(upper_w, dtype=np.float64)
    c = np.asarray(cumulative_counts, dtype=np.float64)
    if u.ndim != 1 or u.shape != c.shape or u.size == 0:
        raise ValueError("upper_w and cumulative_counts must be non-empty 1-D sequences of equal length")
    if np.any(np.diff(u) <= 0) or u[0] < 0:
        raise ValueError("upper_w must be strictly increasing bounds >= 0")
    if np.any(~np.isfinite(c)) or np.any(c < 0) or np.any(np.diff(c) < 0):
        raise ValueError("cumulative_counts must be finite, >= 0 and non-decreasing")
    if c[-1] <= 0:
        raise ValueError("the histogram is empty")
    finite = np.isfinite(u)
    if not finite[:-1].all():
        raise ValueError("only the last bound may be +Inf")
    if not finite[-1]:
        u_f, c_f = u[:-1], c
        if u_f.size == 0:
            raise ValueError("a histogram with only a +Inf bucket has no finite bound")
        vals = [_histogram_quantile(q, u_f, c_f) for q in (0.5, 0.9, 0.99)]
    else:
        vals = [_histogram_quantile(q, u, c) for q in (0.5, 0.9, 0.99)]
    return PowerPercentiles(p50_w=vals[0], p90_w=vals[1], p99_w=vals[2])

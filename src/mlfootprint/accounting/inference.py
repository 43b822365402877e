"""Inference efficiency, breakeven against training/development, and the workload model.

Sources (METHODOLOGY §5):
* efficiency per second, per output token and per response — MIT LLaMA-65B inference
  study; per 1,000 inferences — Luccioni et al., "Power Hungry Processing" (2024);
* breakeven N = footprint(training [+ development]) / footprint per inference — e.g.
  BLOOMz-7B: (51,686 + 7,571) kWh / 1.0e-4 kWh = 592,570,000 inferences (same study);
* the workload model e(Tin, Tout) lives in :mod:`mlfootprint.accounting.workload_model`
  (re-exported here for existing callers).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.accounting.workload_model import UnderdeterminedError, WorkloadModel, fit_workload_model

__all__ = [
    "Breakeven",
    "BreakevenMetric",
    "Efficiency",
    "Impact",
    "UnderdeterminedError",
    "WorkloadModel",
    "breakeven",
    "efficiency",
    "fit_workload_model",
]

_FROZEN = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")


class Impact(BaseModel):
    """An amount of energy, carbon and water (carbon/water optional)."""

    model_config = _FROZEN

    energy_j: float = Field(ge=0)
    co2e_g: float | None = Field(default=None, ge=0)
    water_l: float | None = Field(default=None, ge=0)


class BreakevenMetric(BaseModel):
    model_config = ConfigDict(frozen=True)

    upfront: float
    per_inference: float
    breakeven_inferences: float | None  # None when per_inference is 0 (never breaks even)
    progress: float | None  # inferences served / breakeven; None when either is unknown


class Breakeven(BaseModel):
    """Breakeven for each metric; a metric is None when either side lacks it."""

    model_config = ConfigDict(frozen=True)

    energy: BreakevenMetric
    carbon: BreakevenMetric | None
    water: BreakevenMetric | None
    inferences_served: int | None


def _metric(upfront: float, per: float, served: int | None) -> BreakevenMetric:
    n = None if per <= 0 else upfront / per
    progress = None if (n is None or served is None or n == 0) else served / n
    return BreakevenMetric(upfront=upfront, per_inference=per, breakeven_inferences=n, progress=progress)


def breakeven(upfront: Impact, per_inference: Impact, *, inferences_served: int | None = None) -> Breakeven:
    """Inferences for serving to equal the upfront (training [+ development]) footprint:
    N = upfront / per_inference, per metric; progress = served / N (METHODOLOGY §5)."""
    if inferences_served is not None and inferences_served < 0:
        raise ValueError("inferences_served must be >= 0")
    carbon = (
        _metric(upfront.co2e_g, per_inference.co2e_g, inferences_served)
        if upfront.co2e_g is not None and per_inference.co2e_g is not None
        else None
    )
    water = (
        _metric(upfront.water_l, per_inference.water_l, inferences_served)
        if upfront.water_l is not None and per_inference.water_l is not None
        else None
    )
    return Breakeven(
        energy=_metric(upfront.energy_j, per_inference.energy_j, inferences_served),
        carbon=carbon,
        water=water,
        inferences_served=inferences_served,
    )


class Efficiency(BaseModel):
    """Serving efficiency over a window (None where the denominator is zero or unknown)."""

    model_config = ConfigDict(frozen=True)

    energy_j: float
    duration_s: float
    requests: int
    output_tokens: int | None
    mean_power_w: float | None
    j_per_request: float | None
    j_per_output_token: float | None
    kwh_per_1000_requests: float | None
    co2e_g_per_request: float | None
    water_l_per_request: float | None


def efficiency(
    energy_j: float,
    duration_s: float,
    requests: int,
    output_tokens: int | None = None,
    *,
    co2e_g: float | None = None,
    water_l: float | None = None,
) -> Efficiency:
    """Energy per second (W), per response, per output token and per 1,000 requests =
    total over the window / count (MIT LLaMA-65B study; "Power Hungry Processing")."""
    for name, value in (("energy_j", energy_j), ("duration_s", duration_s)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if requests < 0 or (output_tokens is not None and output_tokens < 0):
        raise ValueError("requests and output_tokens must be >= 0")
    per_req = energy_j / requests if requests > 0 else None
    return Efficiency(
        energy_j=energy_j,
        duration_s=duration_s,
        requests=requests,
        output_tokens=output_tokens,
        mean_power_w=energy_j / duration_s if duration_s > 0 else None,
        j_per_request=per_req,
        j_per_output_token=energy_j / output_tokens if output_tokens else None,
        kwh_per_1000_requests=per_req * 1000.0 / J_PER_KWH if per_req is not None else None,
        co2e_g_per_request=co2e_g / requests if co2e_g is not None and requests > 0 else None,
        water_l_per_request=water_l / requests if water_l is not None and requests > 0 else None,
    )

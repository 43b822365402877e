"""Power-cap advice: which GPU power limit would have saved energy, at what cost in time.

Source of the default curve (METHODOLOGY §5): Samsi et al., "From Words to Watts: Benchmarking
the Energy Costs of Large Language Model Inference" (IEEE HPEC 2023), LLaMA-65B inference on
A100 GPUs: capping the power limit from 250 W to 175 W cut energy by ~23% for ~6.7% more time;
a 150 W cap cost ~19.5% more time (its energy change is not quoted in our reference, so that
point carries no energy figure and is never recommended).

Model (a first-order estimate, docs/methodology.md §5):

* a curve gives, at caps expressed as a fraction of the GPU's power limit, the energy and time
  of a run *that was limited by the cap all the time* relative to the uncapped run;
* a cap only acts while the GPU would draw more than the cap, so the curve's effect is scaled
  by the fraction of time ``f(cap)`` the run's measured power exceeded the cap:
  ``energy saved % = (1 - energy_factor) * f * 100``, ``time added % = (time_factor - 1) * f * 100``;
* among the curve's points whose time added stays within ``max_time_added_pct``, the one that
  saves most energy is recommended; CO2e saved = the GPU's operational CO2e so far x saved %.

Curves for one GPU model transfer to another by fraction of the power limit (175/250 = 0.7):
an assumption, flagged in the advice (``transferred``). Advice only: nothing is actuated.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlfootprint.accounting.bom import camel

__all__ = [
    "DEFAULT_CAP_CURVES",
    "CapCurve",
    "CapCurves",
    "CapPoint",
    "PowerCapAdvice",
    "PowerDistribution",
    "fraction_above",
    "recommend_power_cap",
]

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, alias_generator=camel, populate_by_name=True)

WORDS_TO_WATTS = (
    "Samsi et al., 'From Words to Watts: Benchmarking the Energy Costs of Large Language Model Inference' "
    "(IEEE HPEC 2023): A100, LLaMA-65B; 250 W -> 175 W: energy -23%, time +6.7%; 150 W: time +19.5%"
)


class CapPoint(BaseModel):
    """Energy and time at a cap, relative to the uncapped run (1.0 = unchanged)."""

    model_config = _CONFIG

    cap_fraction: float = Field(gt=0, le=1, description="cap / the GPU's default power limit")
    energy_factor: float | None = Field(default=None, gt=0, description="energy at the cap / uncapped; None if unknown")
    time_factor: float = Field(gt=0, description="run time at the cap / uncapped")


class CapCurve(BaseModel):
    """Measured effect of power caps for one GPU model and workload."""

    model_config = _CONFIG

    reference_limit_w: float = Field(gt=0, description="power limit of the measured baseline, W")
    points: list[CapPoint] = Field(min_length=1)
    source: str = ""

    @model_validator(mode="after")
    def _distinct(self) -> CapCurve:
        caps = [p.cap_fraction for p in self.points]
        if len(set(caps)) != len(caps):
            raise ValueError("points: capFraction values must be distinct")
        return self


#: The A100 / LLaMA-65B curve of "From Words to Watts" (250 W baseline).
A100_LLAMA65B = CapCurve(
    reference_limit_w=250.0,
    points=[
        CapPoint(cap_fraction=175.0 / 250.0, energy_factor=1.0 - 0.23, time_factor=1.067),
        CapPoint(cap_fraction=150.0 / 250.0, energy_factor=None, time_factor=1.195),
    ],
    source=WORDS_TO_WATTS,
)


class CapCurves(BaseModel):
    """Curves by name, which GPU names use which (case-insensitive substring, first match), and
    the curve used (transferred by fraction of the power limit) for other GPUs."""

    model_config = _CONFIG

    curves: dict[str, CapCurve] = Field(default_factory=lambda: {"a100-llama65b": A100_LLAMA65B})
    select: dict[str, str] = Field(default_factory=lambda: {"A100": "a100-llama65b"})
    default_curve: str | None = "a100-llama65b"

    @model_validator(mode="after")
    def _names_resolve(self) -> CapCurves:
        for pattern, name in self.select.items():
            if name not in self.curves:
                raise ValueError(f"select.{pattern}: unknown curve {name!r} (have: {', '.join(sorted(self.curves))})")
        if self.default_curve is not None and self.default_curve not in self.curves:
            raise ValueError(f"defaultCurve: unknown curve {self.default_curve!r}")
        return self

    def curve_for(self, gpu_model: str) -> tuple[str, CapCurve, bool] | None:
        """(name, curve, transferred) for a GPU name; None when no curve applies."""
        for pattern, name in self.select.items():
            if pattern.casefold() in gpu_model.casefold():
                return name, self.curves[name], False
        if self.default_curve is None:
            return None
        return self.default_curve, self.curves[self.default_curve], True


DEFAULT_CAP_CURVES = CapCurves()


class PowerDistribution(BaseModel):
    """A run's measured GPU power, per GPU: raw samples (uniformly spaced in time), or the
    summary the exporter keeps (min, p50, p90, p99, peak). Samples win when both are given."""

    model_config = _CONFIG

    samples_w: list[float] | None = None
    min_w: float | None = Field(default=None, ge=0)
    p50_w: float | None = Field(default=None, ge=0)
    p90_w: float | None = Field(default=None, ge=0)
    p99_w: float | None = Field(default=None, ge=0)
    peak_w: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _usable(self) -> PowerDistribution:
        if self.samples_w is not None:
            if not self.samples_w:
                raise ValueError("samplesW: needs at least one sample")
            if any(not np.isfinite(s) or s < 0 for s in self.samples_w):
                raise ValueError("samplesW: samples must be finite and >= 0")
            return self
        given = (self.min_w, self.p50_w, self.p90_w, self.p99_w, self.peak_w)
        summary = [v for v in given if v is not None]
        if len(summary) < len(given):
            raise ValueError("give samplesW, or all of minW, p50W, p90W, p99W and peakW")
        if any(b < a for a, b in zip(summary, summary[1:], strict=False)):
            raise ValueError("minW <= p50W <= p90W <= p99W <= peakW is required")
        return self


def fraction_above(dist: PowerDistribution, threshold_w: float) -> float:
    """Fraction of the time the power exceeded ``threshold_w``.

    From samples: the share of samples above it. From the summary: 1 - F(threshold) with F the
    piecewise-linear CDF through (min, 0), (p50, .5), (p90, .9), (p99, .99), (peak, 1).
    """
    if dist.samples_w is not None:
        s = np.asarray(dist.samples_w, dtype=np.float64)
        return float(np.mean(s > threshold_w))
    # all five are set without samples (the model's validator); zip(strict=True) below says so
    xs = [x for x in (dist.min_w, dist.p50_w, dist.p90_w, dist.p99_w, dist.peak_w) if x is not None]
    qs = [0.0, 0.5, 0.9, 0.99, 1.0]
    if threshold_w < xs[0]:
        return 1.0
    if threshold_w >= xs[-1]:
        return 0.0
    # right-continuous CDF on repeated x (a flat trace): take the highest quantile at that x
    cdf = 0.0
    for (x0, q0), (x1, q1) in zip(zip(xs, qs, strict=True), zip(xs[1:], qs[1:], strict=True), strict=False):
        if x1 == x0 and threshold_w >= x1:
            cdf = q1
        elif x0 <= threshold_w < x1:
            cdf = q0 + (q1 - q0) * (threshold_w - x0) / (x1 - x0)
            break
        elif threshold_w >= x1:
            cdf = q1
    return float(1.0 - cdf)


class PowerCapAdvice(BaseModel):
    """The recommendation (``status`` says whether there is one) and its estimated effect."""

    model_config = ConfigDict(frozen=True)

    status: Literal["recommend", "no_benefit", "no_curve"]
    gpu_model: str
    power_limit_w: float
    recommended_cap_w: float | None
    energy_saved_pct: float
    time_added_pct: float
    energy_saved_j: float
    co2e_saved_kg: float | None
    fraction_above_cap: float
    curve: str | None
    transferred: bool
    source: str
    reason: str

    def to_status(self) -> dict[str, Any]:
        """Proposed ``status.powerCap`` shape (camelCase; advice only)."""
        return {
            "status": self.status,
            "powerLimitW": self.power_limit_w,
            "recommendedCapW": self.recommended_cap_w,
            "energySavedPct": self.energy_saved_pct,
            "timeAddedPct": self.time_added_pct,
            "co2eSavedKg": self.co2e_saved_kg,
            "fractionAboveCap": self.fraction_above_cap,
            "curve": self.curve,
            "transferred": self.transferred,
            "reason": self.reason,
        }


def recommend_power_cap(
    *,
    gpu_model: str,
    power_limit_w: float,
    power: PowerDistribution,
    gpu_energy_j: float,
    gpu_co2e_kg: float | None = None,
    curves: CapCurves = DEFAULT_CAP_CURVES,
    max_time_added_pct: float = 10.0,
    min_energy_saved_pct: float = 1.0,
) -> PowerCapAdvice:
    """Recommend a GPU power cap for a run from its measured power distribution (module docstring).

    ``power_limit_w``: the GPU's current (default) power limit; ``gpu_energy_j`` /
    ``gpu_co2e_kg``: the run's GPU energy and operational CO2e so far (the cap changes GPU
    energy only). Raises ValueError for non-positive limits or negative amounts.
    """
    for name, value in (("power_limit_w", power_limit_w), ("max_time_added_pct", max_time_added_pct)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    for name, amount in (("gpu_energy_j", gpu_energy_j), ("gpu_co2e_kg", gpu_co2e_kg)):
        if amount is not None and not (np.isfinite(amount) and amount >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {amount!r}")
    found = curves.curve_for(gpu_model)
    if found is None:
        return PowerCapAdvice(
            status="no_curve", recommended_cap_w=None, energy_saved_pct=0.0, time_added_pct=0.0, energy_saved_j=0.0,
            co2e_saved_kg=None if gpu_co2e_kg is None else 0.0, fraction_above_cap=0.0, curve=None, transferred=False,
            source="", reason=f"no power-cap curve for {gpu_model!r} and no default curve", gpu_model=gpu_model, power_limit_w=power_limit_w,
        )
    name, curve, transferred = found
    best: tuple[float, float, float, float] | None = None  # (saved %, added %, cap W, f)
    for point in sorted(curve.points, key=lambda p: -p.cap_fraction):
        if point.energy_factor is None:
            continue
        cap_w = point.cap_fraction * power_limit_w
        f = fraction_above(power, cap_w)
        saved = (1.0 - point.energy_factor) * f * 100.0
        added = (point.time_factor - 1.0) * f * 100.0
        if added <= max_time_added_pct and (best is None or saved > best[0]):
            best = (saved, added, cap_w, f)
    why_transferred = (
        f" (curve measured on another GPU, transferred by fraction of the {curve.reference_limit_w:g} W limit)"
        if transferred else ""
    )
    if best is None or best[0] < min_energy_saved_pct:
        f = 0.0 if best is None else best[3]
        return PowerCapAdvice(
            status="no_benefit", recommended_cap_w=None, energy_saved_pct=0.0, time_added_pct=0.0, energy_saved_j=0.0,
            co2e_saved_kg=None if gpu_co2e_kg is None else 0.0, fraction_above_cap=f, curve=name,
            transferred=transferred, source=curve.source,
            reason=(
                f"the run's power exceeded the candidate caps only {f:.0%} of the time: a cap would save less than "
                f"{min_energy_saved_pct:g}% energy within +{max_time_added_pct:g}% time{why_transferred}"
            ),
            gpu_model=gpu_model, power_limit_w=power_limit_w,
        )
    saved, added, cap_w, f = best
    return PowerCapAdvice(
        status="recommend",
        recommended_cap_w=cap_w,
        energy_saved_pct=saved,
        time_added_pct=added,
        energy_saved_j=gpu_energy_j * saved / 100.0,
        co2e_saved_kg=None if gpu_co2e_kg is None else gpu_co2e_kg * saved / 100.0,
        fraction_above_cap=f,
        curve=name,
        transferred=transferred,
        source=curve.source,
        reason=(
            f"power was above {cap_w:g} W {f:.0%} of the time; capping there is estimated to save {saved:.1f}% "
            f"of GPU energy for {added:.1f}% more time{why_transferred}"
        ),
        gpu_model=gpu_model, power_limit_w=power_limit_w,
    )


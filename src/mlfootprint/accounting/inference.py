"""Inference efficiency, breakeven against training/development, and the workload model.

Sources (METHODOLOGY §5):
* efficiency per second, per output token and per response — MIT LLaMA-65B inference
  study; per 1,000 inferences — Luccioni et al., "Power Hungry Processing" (2024);
* breakeven N = footprint(training [+ development]) / footprint per inference — e.g.
  BLOOMz-7B: (51,686 + 7,571) kWh / 1.0e-4 kWh = 592,570,000 inferences (same study);
* workload model e(Tin, Tout) = a0*Tin + a1*Tout + a2*Tin*Tout by least squares — the
  Cambridge energy-aware LLM routing poster (R^2 0.96-0.98 for 7B-70B models).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from mlfootprint.accounting.units import J_PER_KWH

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


class UnderdeterminedError(ValueError):
    """Too few (or collinear) observations to fit the workload model."""


class WorkloadModel(BaseModel):
    """e(Tin, Tout) = a0*Tin + a1*Tout + a2*Tin*Tout (joules per request), no intercept.

    ``r_squared`` is the usual centred R^2 = 1 - SS_res / Σ(e - mean e)^2 (comparable with
    published fits); ``f_statistic`` tests a0 = a1 = a2 = 0 against the zero model, as is
    proper without an intercept: F = ((Σe^2 - SS_res) / 3) / (SS_res / (n - 3)); it is None
    when n = 3 or the fit is exact.
    """

    model_config = ConfigDict(frozen=True)

    a0_j_per_input_token: float
    a1_j_per_output_token: float
    a2_j_per_token_product: float
    r_squared: float
    f_statistic: float | None
    n: int

    def predict(self, tokens_in: npt.ArrayLike, tokens_out: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Predicted joules per request for each (Tin, Tout)."""
        tin = np.asarray(tokens_in, dtype=np.float64)
        tout = np.asarray(tokens_out, dtype=np.float64)
        return np.asarray(
            self.a0_j_per_input_token * tin + self.a1_j_per_output_token * tout + self.a2_j_per_token_product * tin * tout
        )


def fit_workload_model(
    tokens_in: npt.ArrayLike, tokens_out: npt.ArrayLike, energy_j: npt.ArrayLike
) -> WorkloadModel:
    """Least-squares fit of e(Tin, Tout) (Cambridge routing poster, METHODOLOGY §5).

    Raises UnderdeterminedError with fewer than 3 observations or when the design
    [Tin, Tout, Tin*Tout] has rank < 3 (e.g. every request has the same Tin); ValueError
    for non-finite or negative inputs.
    """
    tin = np.asarray(tokens_in, dtype=np.float64)
    tout = np.asarray(tokens_out, dtype=np.float64)
    y = np.asarray(energy_j, dtype=np.float64)
    if not (tin.ndim == tout.ndim == y.ndim == 1 and tin.shape == tout.shape == y.shape):
        raise ValueError("tokens_in, tokens_out and energy_j must be 1-D arrays of equal length")
    for name, arr in (("tokens_in", tin), ("tokens_out", tout), ("energy_j", y)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{name} must be finite and >= 0")
    n, p = y.size, 3
    if n < p:
        raise UnderdeterminedError(f"the workload model has 3 coefficients and needs at least 3 observations, got {n}")
    x = np.column_stack([tin, tout, tin * tout])
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    if rank < p:
        raise UnderdeterminedError(
            f"observations do not determine the 3 coefficients (design rank {rank} < 3): "
            "vary both input and output token counts independently"
        )
    resid = y - x @ coef
    ss_res = float(resid @ resid)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_unc = float(y @ y)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    tol = 1e-12 * max(ss_unc, 1e-300)
    f_stat = None if n == p or ss_res <= tol else ((ss_unc - ss_res) / p) / (ss_res / (n - p))
    return WorkloadModel(
        a0_j_per_input_token=float(coef[0]),
        a1_j_per_output_token=float(coef[1]),
        a2_j_per_token_product=float(coef[2]),
        r_squared=r2,
        f_statistic=f_stat,
        n=n,
    )

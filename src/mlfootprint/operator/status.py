"""Pure builders of the status of a TrainingRun / InferenceService (no I/O).

The status is built through the typed models of :mod:`mlfootprint.crd.models` (the same
models the CRDs are generated from), so a field the schema does not know is an error here
rather than a value the API server silently drops. Conditions follow the Kubernetes API
conventions (type, status, CamelCase reason, message, lastTransitionTime,
observedGeneration), with a summary ``Ready`` condition for ``kubectl wait``, Argo CD and
kstatus. Displayed figures are rounded to 4 significant digits (kWh, kg, L, W); the ledger
keeps full precision so rounding never accumulates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlfootprint import rfc3339
from mlfootprint.accounting.efficiency import PowerPercentiles, power_percentiles_from_histogram
from mlfootprint.accounting.inference import Impact, breakeven
from mlfootprint.accounting.powercap import CapCurves, PowerDistribution, recommend_power_cap
from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.accounting.workload_model import UnderdeterminedError, WorkloadStats
from mlfootprint.crd.models import (
    BreakevenStatus,
    BudgetStatus,
    CarbonStatus,
    EnergyStatus,
    FactorsSource,
    FactorsStatus,
    InferenceStatus,
    LedgerTotals,
    PowerCapStatus,
    PowerStatus,
    WaterStatus,
    WorkloadModelStatus,
)
from mlfootprint.exporter.model import POWER_RATIO_BUCKETS
from mlfootprint.operator.factors_config import ResolvedFactors

__all__ = [
    "READY_INPUTS",
    "Figures",
    "budget_status",
    "build_inference_status",
    "build_status",
    "condition_status",
    "figures",
    "power_cap_status",
    "power_distribution",
    "ready_condition",
    "round_sig",
    "set_condition",
]

SIG_DIGITS = 4

#: Conditions whose False makes the summary Ready condition False (they name a problem with
#: the run's inputs); the others (Completed, BudgetExceeded, PhaseDerived) are informational.
READY_INPUTS = ("FactorsValid", "EnergySourceReady", "PodsFound", "ServingMetricsValid", "PodsExclusive", "SpecValid")


def round_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """Round to ``digits`` significant digits (0 stays 0, non-finite becomes 0)."""
    if not math.isfinite(x):
        return 0.0
    if x == 0:
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def condition_status(conditions: Sequence[Mapping[str, Any]] | None, ctype: str) -> str | None:
    for c in conditions or ():
        if c.get("type") == ctype:
            return str(c.get("status"))
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    ctype: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Return (new conditions, transitioned). ``lastTransitionTime`` moves only when the
    status or the reason changes (a phase change is a transition of its reason)."""
    status_s = status if isinstance(status, str) else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    transitioned = True
    found = False
    for c in conditions or ():
        if c.get("type") != ctype:
            out.append(dict(c))
            continue
        found = True
        transitioned = c.get("status") != status_s or c.get("reason") != reason
        new = {
            "type": ctype,
            "status": status_s,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now if transitioned else c.get("lastTransitionTime", now),
        }
        if generation is not None:
            new["observedGeneration"] = generation
        out.append(new)
    if not found:
        new = {"type": ctype, "status": status_s, "reason": reason, "message": message, "lastTransitionTime": now}
        if generation is not None:
            new["observedGeneration"] = generation
        out.append(new)
    return out, transitioned


def drop_condition(conditions: Sequence[Mapping[str, Any]], ctype: str) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions if c.get("type") != ctype]


def ready_condition(
    conditions: Sequence[Mapping[str, Any]], *, completed: bool, now: str, generation: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """The summary ``Ready``: True when the figures are final (Completed) or current with
    valid inputs; False naming the first failing condition otherwise."""
    failing = [c for c in conditions if c.get("type") in READY_INPUTS and c.get("status") == "False"]
    if completed:
        return set_condition(conditions, "Ready", True, "Completed", "figures final", now=now, generation=generation)
    if failing:
        first = failing[0]
        names = ", ".join(str(c["type"]) for c in failing)
        return set_condition(
            conditions, "Ready", False, str(first.get("reason") or "NotReady"), f"not ready: {names}: {first.get('message', '')}",
            now=now, generation=generation,
        )
    return set_condition(conditions, "Ready", True, "Metering", "figures current", now=now, generation=generation)


# ----------------------------------------------------------------------------- budget


def budget_status(budget: Mapping[str, Any] | None, totals: LedgerTotals) -> tuple[dict[str, Any] | None, float | None]:
    """``status.budget`` and the largest used/budget ratio (None when no budget is set).
    A limit of 0 or less is no budget (the CRD refuses it; older objects may hold one)."""
    if not budget:
        return None, None
    f = figures(totals)
    used = {
        "co2e": (f.co2e_g / 1000.0, budget.get("co2eKg"), "CO2e"),
        "energy": (f.facility_j / J_PER_KWH, budget.get("energyKWh"), "energy"),
        "water": (f.water_l, budget.get("waterL"), "water"),
    }
    out: dict[str, Any] = {}
    worst: tuple[float, str] | None = None
    for key, (value, limit, label) in used.items():
        if limit is None or not float(limit) > 0:
            continue
        r = value / float(limit)
        out[f"{key}Percent"] = round_sig(r * 100.0, 3)
        if worst is None or r > worst[0]:
            worst = (r, label)
    if worst is None:
        return None, None
    out["exceeded"] = worst[0] > 1.0
    out["summary"] = f"{worst[0] * 100.0:.0f}% {worst[1]}" + (" (exceeded)" if out["exceeded"] else "")
    return BudgetStatus.model_validate(out).to_api(), worst[0]


# ----------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figures:
    """Headline figures in base units (J, g, L, s) from ledger totals, for metrics and indexes."""

    facility_j: float
    it_j: float
    co2e_g: float
    operational_co2e_g: float
    embodied_co2e_g: float
    water_l: float
    gpu_allocation_s: float
    swings: float
    requests: float
    tokens_out: float


def figures(t: LedgerTotals) -> Figures:
    return Figures(
        facility_j=t.facility_j,
        it_j=t.it_j,
        co2e_g=t.co2e_op_g + t.co2e_emb_g,
        operational_co2e_g=t.co2e_op_g,
        embodied_co2e_g=t.co2e_emb_g,
        water_l=t.water_on_l + t.water_off_l + t.water_emb_l,
        gpu_allocation_s=t.alloc_s,
        swings=t.swings,
        requests=t.requests,
        tokens_out=t.tokens_out,
    )


def factors_status(resolved: ResolvedFactors, intensity_g_per_kwh: float, embodied_nodes: Sequence[str] | None = None) -> FactorsStatus:
    f = resolved.factors
    mi = f.market_carbon_intensity_g_per_kwh
    source = FactorsSource(config_map=resolved.source, resource_version=resolved.resource_version or None, preset=f.region)
    return FactorsStatus(
        pue=f.pue,
        carbon_intensity_g_per_k_wh=round_sig(intensity_g_per_kwh, 6),
        carbon_intensity_kind=resolved.carbon_intensity.kind,
        market_intensity_g_per_k_wh=float(mi) if isinstance(mi, (int, float)) else None,
        wue_onsite_l_per_k_wh=f.wue_onsite_l_per_kwh,
        wue_offsite_l_per_k_wh=f.wue_offsite_l_per_kwh,
        onsite_water_basis=f.onsite_water_basis,
        gpu_lifetime_years=f.gpu_lifetime_years,
        host_lifetime_years=f.host_lifetime_years,
        embodied_nodes=sorted(set(embodied_nodes)) if embodied_nodes else None,
        source=source if source.to_api() else None,
    )


def build_status(
    totals: LedgerTotals,
    *,
    resolved: ResolvedFactors,
    intensity_g_per_kwh: float,
    budget: Mapping[str, Any] | None = None,
    pods: int | None = None,
    gpus: int | None = None,
    gpu_models: Sequence[str] | None = None,
    embodied_nodes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The figures part of the status (energy, carbon, water, power, factors, budget)."""
    t = totals
    f = figures(t)
    co2e_kg = f.co2e_g / 1000.0
    # Average total GPU power while the run held its GPUs, on the exporters' measurement
    # clock (ledger.held_seconds); activeS (wall clock) only for ledgers from before heldS.
    held_s = t.held_s or t.active_s
    status: dict[str, Any] = {
        "gpuHours": round_sig(t.alloc_s / 3600.0),
        "energy": EnergyStatus(
            gpu_k_wh=round_sig(t.gpu_j / J_PER_KWH),
            host_k_wh=round_sig((t.cpu_j + t.dram_j) / J_PER_KWH),
            it_k_wh=round_sig(t.it_j / J_PER_KWH),
            facility_k_wh=round_sig(t.facility_j / J_PER_KWH),
        ).to_api(),
        "carbon": CarbonStatus(
            operational_kg=round_sig(t.co2e_op_g / 1000.0),
            market_kg=None if t.co2e_market_g is None else round_sig(t.co2e_market_g / 1000.0),
            embodied_kg=round_sig(t.co2e_emb_g / 1000.0),
            embodied_gpu_kg=round_sig(t.co2e_emb_gpu_g / 1000.0) if t.co2e_emb_g else None,
            embodied_host_kg=round_sig(t.co2e_emb_host_g / 1000.0) if t.co2e_emb_g else None,
            total_kg=round_sig(co2e_kg),
            total_tonnes=round_sig(co2e_kg / 1000.0),
        ).to_api(),
        "water": WaterStatus(
            onsite_l=round_sig(t.water_on_l),
            offsite_l=round_sig(t.water_off_l),
            embodied_l=round_sig(t.water_emb_l),
            embodied_gpu_l=round_sig(t.water_emb_gpu_l) if t.water_emb_l else None,
            embodied_host_l=round_sig(t.water_emb_host_l) if t.water_emb_l else None,
            total_l=round_sig(f.water_l),
        ).to_api(),
        "power": _power_status(t, held_s),
        "factors": factors_status(resolved, intensity_g_per_kwh, embodied_nodes).to_api(),
    }
    if pods is not None:
        status["pods"] = pods
    if gpus is not None:
        status["gpus"] = gpus
    if gpu_models:
        status["gpuModels"] = sorted(set(gpu_models))
    b, _ = budget_status(budget, t)
    if b is not None:
        status["budget"] = b
    return status


def power_distribution(t: LedgerTotals) -> tuple[float, PowerPercentiles, float, float] | None:
    """(mean limit W, p50/p90/p99 W, lowest W, highest W) of the run's per-GPU power from its
    time-weighted power-ratio histogram (None before any sample). Percentiles interpolate
    within a bucket as Prometheus' ``histogram_quantile``; the lowest and highest are the
    edges of the outermost non-empty buckets."""
    if not t.power_s or t.power_s[-1] <= 0 or t.power_limit_s <= 0:
        return None
    limit_w = t.power_limit_s / t.power_s[-1]
    bounds = [b * limit_w for b in POWER_RATIO_BUCKETS]
    finite = len(bounds)
    if len(t.power_s) != finite + 1:
        return None
    pct = power_percentiles_from_histogram([*bounds, math.inf], t.power_s)
    counts = [t.power_s[0]] + [b - a for a, b in zip(t.power_s, t.power_s[1:], strict=False)]
    nonzero = [i for i, c in enumerate(counts) if c > 0]
    low = 0.0 if nonzero[0] == 0 else bounds[nonzero[0] - 1]
    high = bounds[min(nonzero[-1], finite - 1)]
    return limit_w, pct, min(low, pct.p50_w), max(high, pct.p99_w)


def _power_status(t: LedgerTotals, held_s: float) -> dict[str, Any]:
    dist = power_distribution(t)
    return PowerStatus(
        avg_w=round_sig(t.gpu_j / held_s) if held_s > 0 else 0.0,
        peak_w=round_sig(t.peak_w or 0.0),
        min_w=round_sig(t.min_w or 0.0),
        swings=int(t.swings),
        p50_w=None if dist is None else round_sig(dist[1].p50_w),
        p90_w=None if dist is None else round_sig(dist[1].p90_w),
        p99_w=None if dist is None else round_sig(dist[1].p99_w),
        limit_w=None if dist is None else round_sig(dist[0]),
    ).to_api()


def _histogram_samples(cumulative_s: Sequence[float], limit_w: float, points: int = 1000) -> list[float]:
    """Evenly spaced stand-in samples reproducing a time-weighted power-ratio histogram (each
    bucket's share of the time spread uniformly inside it), so that the share of time above
    any cap is read from the histogram itself rather than from a few percentiles."""
    total = cumulative_s[-1]
    lows = [0.0, *POWER_RATIO_BUCKETS]  # the +Inf bucket (above the limit) is put at the limit
    highs = [*POWER_RATIO_BUCKETS, 1.0]
    seconds = [cumulative_s[0]] + [b - a for a, b in zip(cumulative_s, cumulative_s[1:], strict=False)]
    out: list[float] = []
    for low, high, sec in zip(lows, highs, seconds, strict=True):
        k = round(points * sec / total)
        out += [(low + (high - low) * (j + 0.5) / k) * limit_w for j in range(k)]
    return out or [0.0]


def power_cap_status(t: LedgerTotals, curves: CapCurves) -> dict[str, Any] | None:
    """``status.powerCap``: advice from the run's power distribution and the cap curve of its
    main GPU model (From Words to Watts, METHODOLOGY §5; advice only). The CO2e saved is the
    operational CO2e of the GPU energy times the energy saved."""
    dist = power_distribution(t)
    models = t.alloc_s_by_model or {}
    if dist is None or not models or t.gpu_j <= 0:
        return None
    limit_w = dist[0]
    gpu_co2e_kg = t.co2e_op_g / 1000.0 * (t.gpu_j / t.it_j) if t.it_j > 0 else None
    advice = recommend_power_cap(
        gpu_model=max(models, key=lambda m: models[m]),
        power_limit_w=limit_w,
        power=PowerDistribution(samples_w=_histogram_samples(t.power_s or [], limit_w)),
        gpu_energy_j=t.gpu_j,
        gpu_co2e_kg=gpu_co2e_kg,
        curves=curves,
    )
    out = advice.to_status()
    for key in ("powerLimitW", "recommendedCapW", "energySavedPct", "timeAddedPct", "co2eSavedKg", "fractionAboveCap"):
        if out.get(key) is not None:
            out[key] = round_sig(float(out[key]))
    return PowerCapStatus.model_validate(out).to_api()


def build_inference_status(
    totals: LedgerTotals,
    *,
    upfront_co2e_g: float | None,
    upfront_energy_j: float | None,
    basis: str,
    fitted_at_s: float | None = None,
) -> dict[str, Any]:
    """``status.inference``: counts, J/token, J/request, gCO2e per 1,000 requests and
    breakeven N = upfront CO2e / CO2e per request with progress = served / N (METHODOLOGY §5)."""
    requests = int(totals.requests)
    tokens_out = int(totals.tokens_out)
    facility_j = totals.facility_j
    co2e_g = figures(totals).co2e_g
    out = InferenceStatus(requests=requests, input_tokens=int(totals.tokens_in), output_tokens=tokens_out)
    if tokens_out > 0:
        out.joules_per_token = round_sig(facility_j / tokens_out)
        out.gpu_joules_per_token = round_sig(totals.gpu_j / tokens_out)
    if requests > 0:
        out.joules_per_request = round_sig(facility_j / requests)
        out.gpu_joules_per_request = round_sig(totals.gpu_j / requests)
        out.k_wh_per1k_requests = round_sig(facility_j / requests * 1000.0 / J_PER_KWH)
        out.co2e_g_per1k_requests = round_sig(co2e_g / requests * 1000.0)
        if upfront_co2e_g is not None and upfront_co2e_g > 0 and co2e_g > 0:
            be = breakeven(
                Impact(energy_j=upfront_energy_j or 0.0, co2e_g=upfront_co2e_g),
                Impact(energy_j=facility_j / requests, co2e_g=co2e_g / requests),
                inferences_served=requests,
            )
            if be.carbon is not None and be.carbon.breakeven_inferences is not None:
                progress = be.carbon.progress or 0.0
                out.breakeven = BreakevenStatus(
                    inferences=round_sig(be.carbon.breakeven_inferences),
                    progress=round_sig(progress),
                    progress_percent=round_sig(progress * 100.0),
                    basis=basis,
                )
    if totals.workload is not None and totals.workload.intervals >= 3:
        w = totals.workload.model_dump()
        w["n"] = w.pop("intervals")
        stats = WorkloadStats.model_validate(w)
        try:
            fitted = stats.fit(fitted_at_s=fitted_at_s)
        except UnderdeterminedError:
            fitted = None
        if fitted is not None and all(math.isfinite(v) for v in (fitted.a0_j_per_input_token, fitted.a1_j_per_output_token,
                                                                  fitted.a2_j_per_token_product, fitted.r_squared)):
            out.workload_model = WorkloadModelStatus(
                a0=_sig(fitted.a0_j_per_input_token), a1=_sig(fitted.a1_j_per_output_token),
                a2=_sig(fitted.a2_j_per_token_product), r2=round(fitted.r_squared, 4), intervals=fitted.n,
                fitted_at=None if fitted_at_s is None else rfc3339.format_micro(fitted_at_s),
            )
    return out.to_api()


def _sig(x: float) -> float:
    """4 significant digits, keeping the sign (workload coefficients may be negative)."""
    return math.copysign(round_sig(abs(x)), x)

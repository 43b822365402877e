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

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlfootprint.accounting.inference import Impact, breakeven
from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.crd.models import (
    BreakevenStatus,
    BudgetStatus,
    CarbonStatus,
    EnergyStatus,
    FactorsSource,
    FactorsStatus,
    InferenceStatus,
    LedgerTotals,
    PowerStatus,
    WaterStatus,
)
from mlfootprint.operator.factors_config import ResolvedFactors

__all__ = [
    "READY_INPUTS",
    "Figures",
    "budget_status",
    "build_inference_status",
    "build_status",
    "condition_status",
    "figures",
    "iso",
    "parse_iso",
    "ready_condition",
    "round_sig",
    "set_condition",
]

SIG_DIGITS = 4

#: Conditions whose False makes the summary Ready condition False (they name a problem with
#: the run's inputs); the others (Completed, BudgetExceeded, PhaseDerived) are informational.
READY_INPUTS = ("FactorsValid", "EnergySourceReady", "PodsFound", "ServingMetricsValid", "PodsExclusive", "SpecValid")


def iso(t_s: float) -> str:
    """RFC 3339 UTC timestamp with microseconds (Kubernetes date-time)."""
    return dt.datetime.fromtimestamp(t_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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


def factors_status(resolved: ResolvedFactors, intensity_g_per_kwh: float) -> FactorsStatus:
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
            total_kg=round_sig(co2e_kg),
            total_tonnes=round_sig(co2e_kg / 1000.0),
        ).to_api(),
        "water": WaterStatus(
            onsite_l=round_sig(t.water_on_l),
            offsite_l=round_sig(t.water_off_l),
            embodied_l=round_sig(t.water_emb_l),
            total_l=round_sig(f.water_l),
        ).to_api(),
        "power": PowerStatus(
            avg_w=round_sig(t.gpu_j / held_s) if held_s > 0 else 0.0,
            peak_w=round_sig(t.peak_w or 0.0),
            min_w=round_sig(t.min_w or 0.0),
            swings=int(t.swings),
        ).to_api(),
        "factors": factors_status(resolved, intensity_g_per_kwh).to_api(),
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


def build_inference_status(
    totals: LedgerTotals,
    *,
    upfront_co2e_g: float | None,
    upfront_energy_j: float | None,
    basis: str,
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
    if requests > 0:
        out.joules_per_request = round_sig(facility_j / requests)
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
    return out.to_api()

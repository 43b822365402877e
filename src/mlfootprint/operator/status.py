"""Pure builders of the status patch of a TrainingRun / InferenceService (no I/O).

Conditions follow the Kubernetes API conventions (type, status, CamelCase reason, message,
lastTransitionTime, observedGeneration). Displayed figures are rounded to 4 significant
digits (kWh, kg, L, W); the ledger keeps full precision so rounding never accumulates.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlfootprint.accounting.inference import Impact, breakeven
from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.operator.factors_config import ResolvedFactors

__all__ = [
    "budget_status",
    "build_inference_status",
    "build_status",
    "condition_status",
    "iso",
    "parse_iso",
    "round_sig",
    "set_condition",
]

SIG_DIGITS = 4


def iso(t_s: float) -> str:
    """RFC 3339 UTC timestamp with microseconds (Kubernetes date-time)."""
    return dt.datetime.fromtimestamp(t_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def round_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """Round to ``digits`` significant digits (0 stays 0)."""
    if x == 0 or not math.isfinite(x):
        return 0.0 if not math.isfinite(x) else x
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


def _ratio(used: float, budget: float) -> float:
    if budget > 0:
        return used / budget
    return math.inf if used > 0 else 0.0


def budget_status(budget: Mapping[str, Any] | None, totals: Mapping[str, float]) -> tuple[dict[str, Any] | None, float | None]:
    """``status.budget`` and the largest used/budget ratio (None when no budget is set)."""
    if not budget:
        return None, None
    used = {
        "co2e": (_co2e_total_g(totals) / 1000.0, budget.get("co2eKg"), "CO2e"),
        "energy": (totals.get("facilityJ", 0.0) / J_PER_KWH, budget.get("energyKWh"), "energy"),
        "water": (_water_total_l(totals), budget.get("waterL"), "water"),
    }
    out: dict[str, Any] = {}
    worst: tuple[float, str] | None = None
    for key, (value, limit, label) in used.items():
        if limit is None:
            continue
        r = _ratio(value, float(limit))
        out[f"{key}Percent"] = round_sig(min(r, 1e9) * 100.0, 3)
        if worst is None or r > worst[0]:
            worst = (r, label)
    if worst is None:
        return None, None
    out["exceeded"] = worst[0] > 1.0
    pct = min(worst[0], 1e9) * 100.0
    out["summary"] = f"{pct:.0f}% {worst[1]}" + (" (exceeded)" if out["exceeded"] else "")
    return out, worst[0]


def _co2e_total_g(t: Mapping[str, float]) -> float:
    return t.get("co2eOpG", 0.0) + t.get("co2eEmbG", 0.0)


def _water_total_l(t: Mapping[str, float]) -> float:
    return t.get("waterOnL", 0.0) + t.get("waterOffL", 0.0) + t.get("waterEmbL", 0.0)


def figures(totals: Mapping[str, float]) -> dict[str, float]:
    """Headline figures in base units (J, g, L, s) from ledger totals, for metrics."""
    return {
        "facility_j": totals.get("facilityJ", 0.0),
        "it_j": totals.get("itJ", 0.0),
        "co2e_g": _co2e_total_g(totals),
        "operational_co2e_g": totals.get("co2eOpG", 0.0),
        "embodied_co2e_g": totals.get("co2eEmbG", 0.0),
        "water_l": _water_total_l(totals),
        "gpu_allocation_s": totals.get("allocS", 0.0),
        "swings": totals.get("swings", 0.0),
        "requests": totals.get("requests", 0.0),
        "tokens_out": totals.get("tokensOut", 0.0),
    }


def factors_status(resolved: ResolvedFactors, intensity_g_per_kwh: float) -> dict[str, Any]:
    f = resolved.factors
    out: dict[str, Any] = {
        "pue": f.pue,
        "carbonIntensityGPerKWh": round_sig(intensity_g_per_kwh, 6),
        "carbonIntensityKind": resolved.carbon_intensity.kind,
        "wueOnsiteLPerKWh": f.wue_onsite_l_per_kwh,
        "wueOffsiteLPerKWh": f.wue_offsite_l_per_kwh,
        "onsiteWaterBasis": f.onsite_water_basis,
        "gpuLifetimeYears": f.gpu_lifetime_years,
        "hostLifetimeYears": f.host_lifetime_years,
    }
    mi = f.market_carbon_intensity_g_per_kwh
    if isinstance(mi, (int, float)):
        out["marketIntensityGPerKWh"] = mi
    source: dict[str, Any] = {}
    if resolved.source:
        source["configMap"] = resolved.source
    if resolved.resource_version:
        source["resourceVersion"] = resolved.resource_version
    if f.region:
        source["preset"] = f.region
    if source:
        out["source"] = source
    return out


def build_status(
    totals: Mapping[str, float],
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
    gpu_kwh = t.get("gpuJ", 0.0) / J_PER_KWH
    host_kwh = (t.get("cpuJ", 0.0) + t.get("dramJ", 0.0)) / J_PER_KWH
    co2e_kg = _co2e_total_g(t) / 1000.0
    # Average total GPU power while the run held its GPUs, on the exporters' measurement
    # clock (ledger.held_seconds); activeS (wall clock) only for ledgers from before heldS.
    held_s = t.get("heldS", t.get("activeS", 0.0))
    status: dict[str, Any] = {
        "gpuHours": round_sig(t.get("allocS", 0.0) / 3600.0),
        "energy": {
            "gpuKWh": round_sig(gpu_kwh),
            "hostKWh": round_sig(host_kwh),
            "itKWh": round_sig(t.get("itJ", 0.0) / J_PER_KWH),
            "facilityKWh": round_sig(t.get("facilityJ", 0.0) / J_PER_KWH),
        },
        "carbon": {
            "operationalKg": round_sig(t.get("co2eOpG", 0.0) / 1000.0),
            "embodiedKg": round_sig(t.get("co2eEmbG", 0.0) / 1000.0),
            "totalKg": round_sig(co2e_kg),
            "totalTonnes": round_sig(co2e_kg / 1000.0),
        },
        "water": {
            "onsiteL": round_sig(t.get("waterOnL", 0.0)),
            "offsiteL": round_sig(t.get("waterOffL", 0.0)),
            "embodiedL": round_sig(t.get("waterEmbL", 0.0)),
            "totalL": round_sig(_water_total_l(t)),
        },
        "power": {
            "avgW": round_sig(t.get("gpuJ", 0.0) / held_s) if held_s > 0 else 0.0,
            "peakW": round_sig(t.get("peakW", 0.0)),
            "minW": round_sig(t.get("minW", 0.0)),
            "swings": int(t.get("swings", 0.0)),
        },
        "factors": factors_status(resolved, intensity_g_per_kwh),
    }
    if "co2eMarketG" in t:
        status["carbon"]["marketKg"] = round_sig(t["co2eMarketG"] / 1000.0)
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
    totals: Mapping[str, float],
    *,
    upfront_co2e_g: float | None,
    upfront_energy_j: float | None,
    basis: str,
) -> dict[str, Any]:
    """``status.inference``: counts, J/token, J/request, gCO2e per 1,000 requests and
    breakeven N = upfront CO2e / CO2e per request with progress = served / N (METHODOLOGY §5)."""
    requests = int(totals.get("requests", 0.0))
    tokens_out = int(totals.get("tokensOut", 0.0))
    facility_j = totals.get("facilityJ", 0.0)
    co2e_g = _co2e_total_g(totals)
    out: dict[str, Any] = {
        "requests": requests,
        "inputTokens": int(totals.get("tokensIn", 0.0)),
        "outputTokens": tokens_out,
    }
    if tokens_out > 0:
        out["joulesPerToken"] = round_sig(facility_j / tokens_out)
    if requests > 0:
        out["joulesPerRequest"] = round_sig(facility_j / requests)
        out["co2eGPer1kRequests"] = round_sig(co2e_g / requests * 1000.0)
        if upfront_co2e_g is not None and upfront_co2e_g > 0 and co2e_g > 0:
            be = breakeven(
                Impact(energy_j=upfront_energy_j or 0.0, co2e_g=upfront_co2e_g),
                Impact(energy_j=facility_j / requests, co2e_g=co2e_g / requests),
                inferences_served=requests,
            )
            if be.carbon is not None and be.carbon.breakeven_inferences is not None:
                progress = be.carbon.progress or 0.0
                out["breakeven"] = {
                    "inferences": round_sig(be.carbon.breakeven_inferences),
                    "progress": round_sig(progress),
                    "progressPercent": round_sig(progress * 100.0),
                    "basis": basis,
                }
    return out

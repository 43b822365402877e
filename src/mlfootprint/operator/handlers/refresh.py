"""Refresh one TrainingRun / InferenceService: read energy, advance the ledger, patch status.

The only I/O here is through the runtime's sources and kopf's ``patch`` and events;
the arithmetic lives in the pure modules (ledger, status, phases, factors_config).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from mlfootprint.operator.energy.serving import names_for, pod_url
from mlfootprint.operator.factors_config import factors_for_interval, intensity_now
from mlfootprint.operator.kube import NotFound
from mlfootprint.operator.ledger import advance_counters, apply_increment, increment_from_deltas
from mlfootprint.operator.metrics import figures_from_totals
from mlfootprint.operator.phases import derive_phase
from mlfootprint.operator.pods import PodInfo, pods_of_run, state_from_pods, workload_state_from_conditions
from mlfootprint.operator.runtime import Runtime
from mlfootprint.operator.status import (
    budget_status,
    build_inference_status,
    build_status,
    condition_status,
    iso,
    parse_iso,
    set_condition,
)

__all__ = ["refresh_resource", "upfront_for_model"]

log = logging.getLogger(__name__)


def _newer_ledger(status_ledger: Mapping[str, Any] | None, memo_ledger: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ledger to continue from: our last written one when the body lags behind it."""
    a = dict(status_ledger or {})
    if not memo_ledger:
        return a
    ta = parse_iso(a.get("observedAt")) or 0.0
    tb = parse_iso(memo_ledger.get("observedAt")) or 0.0
    return dict(memo_ledger) if tb > ta else a


async def _workload_state(rt: Runtime, namespace: str, spec: Mapping[str, Any], pods: list[PodInfo], ledger: Mapping[str, Any]) -> tuple[str, str]:
    ref = spec.get("workloadRef")
    if ref:
        try:
            obj = await rt.kube.get_object(ref["apiVersion"], ref["kind"], namespace, ref["name"])
        except NotFound:
            seen = bool((ledger.get("totals") or {}).get("workloadSeen"))
            return ("succeeded", "WorkloadDeleted") if seen else ("pending", "WorkloadNotFound")
        return workload_state_from_conditions(ref["kind"], obj)
    state, reason = state_from_pods(pods)
    if state == "pending" and (ledger.get("counters") or {}):
        return "succeeded", "PodsGone"  # pods ran (we counted them) and have been deleted since
    return state, reason


def upfront_for_model(entries: Iterable[Mapping[str, float]], include_development: bool) -> tuple[float, float]:
    """(facility J, gCO2e) of a model's training [+ development] runs from the model index."""
    energy_j = co2e_g = 0.0
    for e in entries:
        if e.get("phase") == "training" or (include_development and e.get("phase") == "development"):
            energy_j += float(e.get("facility_j", 0.0))
            co2e_g += float(e.get("co2e_g", 0.0))
    return energy_j, co2e_g


def _event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]


async def refresh_resource(
    *,
    kind: str,
    body: Mapping[str, Any],
    patch: kopf.Patch,
    memo: Any,
    pods: Iterable[PodInfo],
    models: Mapping[str, Iterable[Mapping[str, float]]] | None = None,
) -> None:
    rt: Runtime = memo.runtime
    t0 = time.perf_counter()
    try:
        await _refresh(rt, kind, body, patch, memo, pods, models)
    except kopf.TemporaryError:
        rt.metrics.refresh_error()
        raise
    except Exception as e:
        rt.metrics.refresh_error()
        log.exception("refresh failed", extra={"kind": kind, "resource": body.get("metadata", {}).get("name")})
        raise kopf.TemporaryError(f"refresh failed: {e}", delay=rt.cfg.interval_s) from e
    finally:
        rt.metrics.observe_refresh(time.perf_counter() - t0)


async def _refresh(
    rt: Runtime,
    kind: str,
    body: Mapping[str, Any],
    patch: kopf.Patch,
    memo: Any,
    pod_pool: Iterable[PodInfo],
    models: Mapping[str, Iterable[Mapping[str, float]]] | None,
) -> None:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ns, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    model = (spec.get("model") or {}).get("name", "")
    conditions = list(status.get("conditions") or [])
    ledger = _newer_ledger(status.get("ledger"), getattr(memo, "last_ledger", None))
    totals: dict[str, float] = dict(ledger.get("totals") or {})
    counters: dict[str, float] = dict(ledger.get("counters") or {})
    labels_base = {"namespace": ns, "name": name, "kind": kind, "model": model}

    if condition_status(conditions, "Completed") == "True":
        # Frozen: figures no longer change; keep exporting them (also after a restart).
        phase = status.get("phase") or "development"
        b = (spec.get("budget") or {})
        _, ratio = budget_status(b, totals)
        rt.metrics.set_run(
            figures_from_totals(
                {**labels_base, "phase": phase}, totals, completed=1.0,
                budget_co2e_g=float(b["co2eKg"]) * 1000.0 if b.get("co2eKg") is not None else None,
                budget_used_ratio=ratio,
            )
        )
        return

    now_s = rt.clock()
    pods = pods_of_run(pod_pool, spec) if kind == "TrainingRun" else pods_of_run(pod_pool, {"selector": spec.get("selector")})
    resolved, problems = await rt.factors.resolve(ns, spec.get("factorsRef"), status.get("factors"))
    rules = await rt.factors.phase_rules()

    created_s = parse_iso(meta.get("creationTimestamp")) or now_s
    since_s = parse_iso(ledger.get("observedAt"))
    obs, source_ok = await rt.energy.observe(ns, [p.name for p in pods], since_s if since_s is not None else created_s)
    rt.metrics.set_source_up(rt.energy.name, source_ok)
    end_s = obs.window_end_s if obs.window_end_s is not None else now_s

    serving_missing: list[str] = []
    if kind == "InferenceService" and obs.counters is not None:
        names = names_for(spec.get("servingMetrics") or {})
        urls = {p.name: pod_url(p.ip, p.annotation_map, names) for p in pods if p.phase == "Running"}
        serving, serving_missing = await rt.serving.counters(urls, names)
        obs.counters.update(serving)

    start_s = since_s if since_s is not None else min(created_s, end_s)
    if since_s is not None and end_s <= since_s:
        deltas: dict[str, float] = {}
    elif obs.counters is not None:
        deltas, counters = advance_counters(counters, obs.counters)
    else:
        deltas = dict(obs.deltas or {})
    inc = increment_from_deltas(deltas)
    live = await rt.intensity.value(resolved.carbon_intensity)
    if not inc.is_empty():
        factors = factors_for_interval(resolved, start_s, end_s, live)
        totals = apply_increment(totals, inc, factors, start_s, end_s)
    if obs.peak_w is not None:
        totals["peakW"] = max(totals.get("peakW", 0.0), obs.peak_w)
    if obs.min_w is not None:
        totals["minW"] = min(totals["minW"], obs.min_w) if "minW" in totals else obs.min_w

    state, state_reason = ("running", "Serving") if kind == "InferenceService" else await _workload_state(
        rt, ns, spec, pods, ledger
    )
    if kind == "TrainingRun" and spec.get("workloadRef") and state_reason != "WorkloadNotFound":
        totals["workloadSeen"] = 1.0

    now = iso(now_s)
    events: list[tuple[str, str, str]] = []

    # Phase
    decision = derive_phase(
        kind, spec, meta.get("labels"), meta.get("annotations"), failed=state == "failed", rules=rules
    )
    old_phase = status.get("phase")
    conditions, _ = set_condition(
        conditions, "PhaseDerived", True, decision.reason, f"phase {decision.phase}: {decision.message}",
        now=now, generation=generation,
    )
    if old_phase and old_phase != decision.phase:
        events.append(("Normal", "PhaseChanged", f"phase {old_phase} -> {decision.phase} ({decision.message})"))

    # Factors
    if problems:
        p = problems[0]
        conditions, changed = set_condition(conditions, "FactorsValid", False, p.reason, p.text(), now=now, generation=generation)
        if changed:
            events.append(("Warning", "FactorsInvalid", p.text()))
    else:
        src = resolved.source or "built-in defaults"
        conditions, _ = set_condition(
            conditions, "FactorsValid", True, "Valid", f"factors from {src}", now=now, generation=generation
        )

    # Energy source
    conditions, _ = set_condition(
        conditions, "EnergySourceReady", source_ok and not serving_missing,
        "Scraped" if source_ok and not serving_missing else "SourceIncomplete",
        f"{rt.energy.name}: {len(pods)} pod(s)" + (f"; serving metrics missing for {', '.join(serving_missing)}" if serving_missing else ""),
        now=now, generation=generation,
    )

    # Figures and budget
    figures_status = build_status(
        totals,
        resolved=resolved,
        intensity_g_per_kwh=intensity_now(resolved, now_s, live),
        budget=spec.get("budget"),
        pods=len(pods),
        gpus=sum(p.gpus for p in pods if p.phase in ("Pending", "Running")) or (len(obs.gpus) or None),
        gpu_models=sorted(set(obs.gpus.values())) or None,
    )
    b_status, ratio = budget_status(spec.get("budget"), totals)
    if b_status is not None:
        exceeded = bool(b_status["exceeded"])
        conditions, changed = set_condition(
            conditions, "BudgetExceeded", exceeded, "OverBudget" if exceeded else "WithinBudget",
            f"budget used: {b_status['summary']}", now=now, generation=generation,
        )
        if changed and exceeded:
            events.append(("Warning", "BudgetExceeded", f"budget exceeded: {b_status['summary']}"))

    # Completion (TrainingRun)
    completed = kind == "TrainingRun" and state in ("succeeded", "failed")
    if kind == "TrainingRun":
        conditions, changed = set_condition(
            conditions, "Completed", completed, state_reason,
            "figures frozen" if completed else f"workload {state}", now=now, generation=generation,
        )
        if completed and changed:
            events.append(("Normal", "Completed", f"run {state}: figures frozen"))

    new_ledger = {"observedAt": iso(end_s), "counters": counters, "totals": totals}
    memo.last_ledger = new_ledger
    new_status: dict[str, Any] = {
        **figures_status,
        "phase": decision.phase,
        "conditions": conditions,
        "observedGeneration": generation,
        "lastUpdated": now,
        "ledger": new_ledger,
    }
    if not status.get("startTime"):
        new_status["startTime"] = iso(created_s)
    if completed:
        new_status["completionTime"] = now

    extra: dict[str, float | None] = {}
    if kind == "InferenceService":
        include_dev = (spec.get("breakeven") or {}).get("includeDevelopment")
        include_dev = rt.cfg.breakeven_include_development if include_dev is None else bool(include_dev)
        entries = list((models or {}).get(model, ()))
        up_j, up_g = upfront_for_model(entries, include_dev)
        inf = build_inference_status(
            totals, upfront_co2e_g=up_g if entries else None, upfront_energy_j=up_j,
            basis="training+development" if include_dev else "training",
        )
        new_status["inference"] = inf
        requests = float(inf["requests"])
        extra = {
            "requests": requests,
            "joules_per_token": inf.get("joulesPerToken"),
            "co2e_g_per_request": (totals.get("co2eOpG", 0.0) + totals.get("co2eEmbG", 0.0)) / requests if requests else None,
            "breakeven_ratio": (inf.get("breakeven") or {}).get("progress"),
        }
    patch.status.update(new_status)

    for type_, reason, message in events:
        _event(body, type_, reason, message)

    b = spec.get("budget") or {}
    rt.metrics.set_run(
        figures_from_totals(
            {**labels_base, "phase": decision.phase}, totals,
            completed=1.0 if completed else 0.0,
            budget_co2e_g=float(b["co2eKg"]) * 1000.0 if b.get("co2eKg") is not None else None,
            budget_used_ratio=ratio,
            **extra,
        )
    )

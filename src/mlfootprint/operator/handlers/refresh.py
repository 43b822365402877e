"""Refresh one TrainingRun / InferenceService: read energy, advance the ledger, write status.

The arithmetic lives in the pure modules (ledger, status, phases, ownership,
factors_config); this module reads the sources and writes the status itself, through the
operator's API client, so that:

* the in-memory copy of the ledger (``Runtime.written``) is only ever what the API server
  accepted: a failed write leaves nothing behind that a later refresh could build on, so
  fixing a bad input unfreezes the run (and an operator restart resumes from the same place);
* the status is written only when something a user can see changed (a printed figure, a
  condition) or the ledger is older than ``status_max_age_s``: no heartbeat, no write per
  run per interval. Skipping a write loses nothing: the next refresh takes its deltas from
  the written ledger, so they cover the skipped interval too;
* every failure is a condition (``Ready=False``, reason ``RefreshFailed``), a log line and a
  metric (``mlfootprint_operator_refresh_errors_total``), and is retried by kopf.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import kopf
from pydantic import ValidationError

from mlfootprint import rfc3339
from mlfootprint.crd.models import InferenceServiceStatus, LedgerTotals, TrainingRunStatus
from mlfootprint.operator.energy.serving import names_for, pod_url
from mlfootprint.operator.factors_config import embodied_resolver, factors_for_interval, intensity_now
from mlfootprint.operator.kube import NotFound
from mlfootprint.operator.ledger import Anomaly, advance, apply_increment, ledger_from_status
from mlfootprint.operator.metrics import figures_from_totals
from mlfootprint.operator.ownership import RunClaim, claim_from, split_pods
from mlfootprint.operator.phases import derive_phase
from mlfootprint.operator.pods import PodInfo, state_from_pods, workload_state_from_conditions
from mlfootprint.operator.runtime import Runtime
from mlfootprint.operator.status import (
    budget_status,
    build_inference_status,
    build_status,
    condition_status,
    power_cap_status,
    ready_condition,
    set_condition,
)

__all__ = ["PLURALS", "refresh_resource", "upfront_for_model"]

log = logging.getLogger(__name__)

PLURALS = {"TrainingRun": "trainingruns", "InferenceService": "inferenceservices"}
STATUS_MODELS: dict[str, type[TrainingRunStatus | InferenceServiceStatus]] = {
    "TrainingRun": TrainingRunStatus, "InferenceService": InferenceServiceStatus,
}
AWAITING_FINAL_READ = "AwaitingFinalRead"


def _known(kind: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """The stored status without fields this version no longer has (e.g. 0.1's lastUpdated)."""
    model = STATUS_MODELS[kind]
    names = {f.alias or n for n, f in model.model_fields.items()}
    return {k: v for k, v in status.items() if k in names}


def upfront_for_model(entries: Iterable[Mapping[str, float | str]], include_development: bool) -> tuple[float, float]:
    """(facility J, gCO2e) of a model's training [+ development] runs from the model index."""
    energy_j = co2e_g = 0.0
    for e in entries:
        if e.get("phase") == "training" or (include_development and e.get("phase") == "development"):
            energy_j += float(e.get("facility_j", 0.0))
            co2e_g += float(e.get("co2e_g", 0.0))
    return energy_j, co2e_g


def current_status(body: Mapping[str, Any], written: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status to continue from: the one we last wrote when the watched body lags behind it."""
    stored = dict(body.get("status") or {})
    if not written:
        return stored
    mine = rfc3339.parse((written.get("ledger") or {}).get("observedAt")) or 0.0
    theirs = rfc3339.parse((stored.get("ledger") or {}).get("observedAt")) or 0.0
    return dict(written) if mine >= theirs else stored


@dataclass
class _Outcome:
    """What one refresh decided (for the write, the events and the metrics)."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    extra: dict[str, float | None] = field(default_factory=dict)
    completed: bool = False
    budget_ratio: float | None = None


async def refresh_resource(
    *,
    kind: str,
    body: Mapping[str, Any],
    memo: Any,
    pods: Iterable[PodInfo],
    claims: Iterable[RunClaim] = (),
    models: Mapping[str, Iterable[Mapping[str, float]]] | None = None,
    nodes: Mapping[str, Iterable[Mapping[str, str]]] | None = None,
) -> None:
    rt: Runtime = memo.runtime
    t0 = time.perf_counter()
    meta = body.get("metadata") or {}
    try:
        wrote = await _refresh(rt, kind, body, pods, claims, models, nodes or {})
        rt.metrics.observe_refresh(kind, time.perf_counter() - t0, wrote=wrote)
    except kopf.TemporaryError:
        rt.metrics.refresh_error(kind, "temporary")
        raise
    except Exception as e:
        rt.metrics.refresh_error(kind, type(e).__name__)
        log.exception("refresh failed", extra={"kind": kind, "namespace": meta.get("namespace"), "resource": meta.get("name")})
        await _report_failure(rt, kind, body, e)
        raise kopf.TemporaryError(f"refresh failed: {type(e).__name__}", delay=rt.cfg.interval_s) from e


async def _report_failure(rt: Runtime, kind: str, body: Mapping[str, Any], error: BaseException) -> None:
    """Set Ready=False RefreshFailed on what is already written (no new figures)."""
    meta = body.get("metadata") or {}
    status = current_status(body, rt.written.get(meta.get("uid", "")))
    now = rfc3339.format_micro(rt.clock())
    conditions, changed = set_condition(
        status.get("conditions"), "Ready", False, "RefreshFailed",
        f"the last refresh failed ({type(error).__name__}); figures are as of the ledger's observedAt",
        now=now, generation=meta.get("generation"),
    )
    if not changed:
        return
    status["conditions"] = conditions
    try:
        await rt.kube.replace_status(PLURALS[kind], meta["namespace"], meta["name"], status)
    except Exception as e:  # noqa: BLE001 - the API server may be the problem; the log line and the metric remain
        log.warning("could not record the refresh failure", extra={"resource": meta.get("name"), "error": type(e).__name__})
        return
    rt.written[meta.get("uid", "")] = status


def _event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    # kopf annotates its own Body wrapper; at runtime it reads any mapping's metadata
    kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]


async def _workload_state(
    rt: Runtime, namespace: str, spec: Mapping[str, Any], pods: list[PodInfo], totals: LedgerTotals, seen_series: bool
) -> tuple[str, str]:
    ref = spec.get("workloadRef")
    if ref:
        try:
            obj = await rt.kube.get_object(ref["apiVersion"], ref["kind"], namespace, ref["name"])
        except NotFound:
            return ("succeeded", "WorkloadDeleted") if totals.workload_seen else ("pending", "WorkloadNotFound")
        return workload_state_from_conditions(ref["kind"], obj)
    state, reason = state_from_pods(pods)
    if state == "pending" and (seen_series or totals.it_j > 0):
        return "succeeded", "PodsGone"  # pods ran (we counted them) and have been deleted since
    return state, reason


def _selector_empty(selector: Mapping[str, Any] | None) -> bool:
    return selector is not None and not (selector.get("matchLabels") or selector.get("matchExpressions"))


async def _refresh(
    rt: Runtime,
    kind: str,
    body: Mapping[str, Any],
    pod_pool: Iterable[PodInfo],
    claims: Iterable[RunClaim],
    models: Mapping[str, Iterable[Mapping[str, float]]] | None,
    nodes: Mapping[str, Iterable[Mapping[str, str]]],
) -> bool:
    """One refresh; True when the status was written."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    ns, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    generation = meta.get("generation")
    model = (spec.get("model") or {}).get("name", "")
    stored = current_status(body, rt.written.get(uid))
    conditions = list(stored.get("conditions") or [])
    now_s = rt.clock()
    now = rfc3339.format_micro(now_s)
    labels_base = {"namespace": ns, "name": name, "kind": kind, "model": model}
    try:
        ledger = ledger_from_status(stored.get("ledger"))
    except ValidationError as e:
        where = ".".join(str(p) for p in e.errors()[0]["loc"])
        conditions, _ = set_condition(
            conditions, "Ready", False, "LedgerInvalid",
            f"status.ledger.{where} is not a valid ledger value; the run is not updated until it is repaired",
            now=now, generation=generation,
        )
        log.error("invalid ledger in status", extra={"namespace": ns, "resource": name, "field": where})
        rt.metrics.refresh_error(kind, "LedgerInvalid")
        if conditions != list(stored.get("conditions") or []):
            # the conditions alone: the ledger is left exactly as it is, for a person to repair
            await rt.kube.replace_status_field(PLURALS[kind], ns, name, "conditions", conditions)
            return True
        return False
    totals = ledger.totals or LedgerTotals()
    budget = spec.get("budget") or {}
    budget_g = float(budget["co2eKg"]) * 1000.0 if budget.get("co2eKg") else None

    if condition_status(conditions, "Completed") == "True":
        # Frozen: figures no longer change; keep exporting them (also after a restart).
        _, ratio = budget_status(budget, totals)
        rt.metrics.set_run(
            figures_from_totals({**labels_base, "phase": stored.get("phase") or "development"}, totals, completed=1.0,
                                budget_co2e_g=budget_g, budget_used_ratio=ratio)
        )
        conditions, _ = ready_condition(conditions, completed=True, now=now, generation=generation)
        return await _write(rt, kind, ns, name, uid, stored, {**_known(kind, stored), "conditions": conditions}, now_s)

    # -- which pods are ours
    me = claim_from(kind, meta, spec, stored)
    pool = list(pod_pool)
    owned, taken = split_pods(me, pool, claims)
    resolved, problems = await rt.factors.resolve(ns, spec.get("factorsRef"), stored.get("factors"))
    rules = await rt.factors.phase_rules()

    # -- read the counters
    created_s = rfc3339.parse(meta.get("creationTimestamp")) or now_s
    since_s = rfc3339.parse(ledger.observed_at)
    obs, source_ok = await rt.energy.observe(ns, [p.name for p in owned], since_s if since_s is not None else created_s)
    rt.metrics.set_source_up(rt.energy.name, source_ok)
    end_s = obs.window_end_s if obs.window_end_s is not None else now_s
    containers = obs.containers
    if since_s is not None and end_s <= since_s:
        containers = None
    serving_obs: dict[str, Any] | None = None
    serving_problems: dict[str, str] = {}
    if kind == "InferenceService" and containers is not None:
        names = names_for(spec.get("servingMetrics") or {})
        urls = {p.name: pod_url(p.ip, p.annotation_map, names) for p in owned if p.phase == "Running"}
        serving_obs, serving_problems = await rt.serving.counters(urls, names)
        restarts = {p.name: p.restarts for p in owned}
        serving_obs = {pod: replace(o, restarts=restarts.get(pod)) for pod, o in serving_obs.items()}
    elapsed_s = None if since_s is None else max(end_s - since_s, 0.0)
    new_ledger, inc, anomalies = advance(
        ledger, containers, serving_obs, live_pods={p.name for p in owned},
        complete=obs.complete and source_ok, elapsed_s=elapsed_s, serving_rate_scale=rt.cfg.serving_rate_scale,
        read_s=end_s,
    )
    _record_anomalies(rt, kind, ns, name, anomalies)
    start_s = since_s if since_s is not None else min(created_s, end_s)
    quiet_s = rt.quiet.get(uid)
    if quiet_s is not None and since_s is not None and since_s < quiet_s < end_s:
        # nothing happened between the written observation and the last quiet one (an empty
        # increment that was not written): the new energy belongs after it
        start_s = quiet_s
    live = await rt.intensity.value(resolved.carbon_intensity)
    plan = embodied_resolver(resolved, lambda node: next(iter(nodes.get(node, ())), {}))
    embodied_nodes = sorted({plan(m, n).gpu_key.split(":", 1)[0] for m, n in inc.alloc_nodes} - {"gpu", "none"})
    if not inc.is_empty():
        totals = apply_increment(
            totals, inc, factors_for_interval(resolved, start_s, end_s, live), start_s, end_s,
            embodied=plan, workload=kind == "InferenceService",
        )
    peak = obs.peak_w if obs.peak_w is None else max(totals.peak_w or 0.0, obs.peak_w)
    low = obs.min_w if obs.min_w is None or totals.min_w is None else min(totals.min_w, obs.min_w)
    totals = totals.model_copy(update={"peak_w": peak if peak is not None else totals.peak_w, "min_w": low if low is not None else totals.min_w})

    # the workload's state from every pod the run selects, also those another run meters: a
    # run whose running pods are metered elsewhere has not completed
    selected = [*owned, *(p for p in pool if p.name in taken)]
    state, state_reason = ("running", "Serving") if kind == "InferenceService" else await _workload_state(
        rt, ns, spec, selected, totals, bool(new_ledger.series) or bool(ledger.series) or bool(ledger.counters)
    )
    if kind == "TrainingRun" and state in ("succeeded", "failed"):
        # Completion freezes the figures: only once the counters were read far enough past the
        # pods' end that the exporters' last attribution of them is in (a read taken before
        # lost the run's tail: the scrape snapshot, or Prometheus' lagged window, predates it).
        ended_s = max((p.finished_s for p in selected if p.finished_s is not None), default=None)
        read_s = end_s if containers is not None else since_s
        if ended_s is not None and (read_s is None or read_s < ended_s + rt.cfg.final_read_delay_s):
            state_reason = AWAITING_FINAL_READ
    if kind == "TrainingRun" and spec.get("workloadRef") and state_reason != "WorkloadNotFound":
        totals = totals.model_copy(update={"workload_seen": 1.0})
    if containers is not None:
        new_ledger = new_ledger.model_copy(update={"observed_at": rfc3339.format_micro(end_s)})
    new_ledger = new_ledger.model_copy(update={"totals": totals})

    out = _conditions_and_status(
        rt, kind, body, stored, conditions, now, totals,
        owned=owned, taken=taken, problems=problems, source_ok=source_ok, obs_problems=obs.problems,
        serving_problems=serving_problems, anomalies=anomalies, state=state, state_reason=state_reason,
        resolved=resolved, live=live, now_s=now_s, rules=rules, gpus_seen=obs.gpus,
        embodied_nodes=embodied_nodes or (stored.get("factors") or {}).get("embodiedNodes"),
    )
    cap = power_cap_status(totals, resolved.cap_curves)
    if cap is not None:
        out.status["powerCap"] = cap
    out.status["ledger"] = new_ledger.to_api()
    if not stored.get("startTime"):
        out.status["startTime"] = rfc3339.format_micro(created_s)
    if out.completed:
        out.status["completionTime"] = now
    if kind == "InferenceService":
        include_dev = (spec.get("breakeven") or {}).get("includeDevelopment")
        include_dev = rt.cfg.breakeven_include_development if include_dev is None else bool(include_dev)
        entries = list((models or {}).get(model, ()))
        up_j, up_g = upfront_for_model(entries, include_dev)
        fitted_at = ((stored.get("inference") or {}).get("workloadModel") or {}).get("fittedAt")
        inf = build_inference_status(
            totals, upfront_co2e_g=up_g if entries else None, upfront_energy_j=up_j,
            basis="training+development" if include_dev else "training",
            fitted_at_s=end_s if inc.requests > 0 or fitted_at is None else rfc3339.parse(fitted_at),
        )
        out.status["inference"] = inf
        requests = float(inf["requests"])
        f_co2e = totals.co2e_op_g + totals.co2e_emb_g
        out.extra = {
            "requests": requests,
            "joules_per_token": inf.get("joulesPerToken"),
            "co2e_g_per_request": f_co2e / requests if requests else None,
            "breakeven_ratio": (inf.get("breakeven") or {}).get("progress"),
        }

    # a rebased, new or folded ledger entry must be written, or the next refresh would read the
    # old one again (a rollback repeated, growth below the old value lost)
    reshaped = bool(anomalies) or _entries(new_ledger) != _entries(ledger)
    wrote = await _write(rt, kind, ns, name, uid, stored, out.status, now_s, force=bool(out.events) or reshaped, metering=True)
    if wrote:
        rt.quiet.pop(uid, None)
    elif containers is not None and inc.is_empty():
        rt.quiet[uid] = end_s
    for type_, reason, message in out.events:
        _event(body, type_, reason, message)
    cap_w = (cap or {}).get("recommendedCapW") if (cap or {}).get("status") == "recommend" else None
    rt.metrics.set_run(
        figures_from_totals(
            {**labels_base, "phase": out.status["phase"]}, totals, completed=1.0 if out.completed else 0.0,
            budget_co2e_g=budget_g, budget_used_ratio=out.budget_ratio,
            power_cap_w=cap_w, power_cap_saving_ratio=(cap or {}).get("energySavedPct", 0.0) / 100.0 if cap_w else None,
            **out.extra,
        )
    )
    return wrote


def _record_anomalies(rt: Runtime, kind: str, ns: str, name: str, anomalies: list[Anomaly]) -> None:
    for a in anomalies:
        rt.metrics.counter_anomaly(a.kind)
        log.warning("counter anomaly", extra={"kind": kind, "namespace": ns, "resource": name, "anomaly": a.kind, "series": a.subject})


def _conditions_and_status(
    rt: Runtime, kind: str, body: Mapping[str, Any], stored: Mapping[str, Any], conditions: list[dict[str, Any]],
    now: str, totals: LedgerTotals, *, owned: list[PodInfo], taken: Mapping[str, RunClaim], problems: list[Any],
    source_ok: bool, obs_problems: tuple[str, ...], serving_problems: Mapping[str, str], anomalies: list[Anomaly],
    state: str, state_reason: str, resolved: Any, live: float | None, now_s: float, rules: Any, gpus_seen: Mapping[str, str],
    embodied_nodes: list[str] | None = None,
) -> _Outcome:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    gen = meta.get("generation")
    events: list[tuple[str, str, str]] = []

    def cond(ctype: str, ok: bool | str, reason: str, message: str, event: tuple[str, str] | None = None) -> None:
        nonlocal conditions
        conditions, changed = set_condition(conditions, ctype, ok, reason, message, now=now, generation=gen)
        if changed and event is not None:
            events.append((event[0], event[1], message))

    # Phase
    decision = derive_phase(kind, spec, meta.get("labels"), meta.get("annotations"), failed=state == "failed", rules=rules)
    old_phase = stored.get("phase")
    cond("PhaseDerived", True, decision.reason, f"phase {decision.phase}: {decision.message}")
    if old_phase and old_phase != decision.phase:
        events.append(("Normal", "PhaseChanged", f"phase {old_phase} -> {decision.phase} ({decision.message})"))

    # Factors
    if problems:
        p = problems[0]
        cond("FactorsValid", False, p.reason, p.text(), ("Warning", "FactorsInvalid"))
    else:
        cond("FactorsValid", True, "Valid", f"factors from {resolved.source or 'built-in defaults'}")

    # Pods: found, and not metered by another run
    selector = spec.get("selector")
    if _selector_empty(selector):
        cond("PodsFound", False, "EmptySelector",
             "spec.selector has neither matchLabels nor matchExpressions: it selects no pods", ("Warning", "EmptySelector"))
    elif state_reason == "WorkloadNotFound":
        ref = spec.get("workloadRef") or {}
        cond("PodsFound", False, "WorkloadNotFound",
             f"spec.workloadRef: {ref.get('kind')} {ref.get('name')} does not exist in this namespace (yet)",
             ("Warning", "WorkloadNotFound"))
    elif owned:
        cond("PodsFound", True, "PodsSelected", f"{len(owned)} pod(s)")
    elif taken:
        cond("PodsFound", False, "AllPodsOwnedElsewhere", "every selected pod is metered by another run (see PodsExclusive)")
    elif totals.it_j > 0 or state in ("succeeded", "failed"):
        cond("PodsFound", True, "PodsGone", "the run's pods have ended")
    else:
        cond("PodsFound", False, "NoPods", "no pod matches spec.selector/spec.workloadRef (yet)")
    if taken:
        owners = sorted({c.label for c in taken.values()})
        cond("PodsExclusive", False, "OwnedByOtherRun",
             f"{len(taken)} selected pod(s) are metered by {', '.join(owners[:3])} (created first) and not counted here",
             ("Warning", "PodsOwnedByOtherRun"))
    else:
        cond("PodsExclusive", True, "Exclusive", "no other run meters these pods")

    # Energy source
    if source_ok and not obs_problems:
        cond("EnergySourceReady", True, "Read", f"{rt.energy.name}: {len(owned)} pod(s)")
    else:
        if any("not an mlfootprint" in p or "answered" in p for p in obs_problems):
            reason = "InvalidMetricsPage"
        elif any("finite counter" in p for p in obs_problems):
            reason = "InvalidValues"
        else:
            reason = "SourceUnavailable"
        detail = "; ".join(obs_problems[:2]) or "no exporter answered"
        cond("EnergySourceReady", False, reason, f"{rt.energy.name}: {detail}")
    if kind == "InferenceService":
        inconsistent = [a for a in anomalies if a.kind.startswith("Serving")]
        if serving_problems:
            pod, why = sorted(serving_problems.items())[0]
            cond("ServingMetricsValid", False, "MetricsUnavailable",
                 f"{len(serving_problems)} pod(s) without serving counters, e.g. {pod}: {why}", ("Warning", "ServingMetricsUnavailable"))
        elif inconsistent:
            a = inconsistent[0]
            what = ("a counter went down without an engine restart (not counted)" if a.kind == "ServingInconsistent"
                    else "a counter jumped faster than physically plausible (not counted)")
            cond("ServingMetricsValid", False, a.kind, f"pod {a.subject}: {what}", ("Warning", a.kind))
        else:
            cond("ServingMetricsValid", True, "Read", "serving counters read")

    # Figures and budget
    # without a new reading (Prometheus has no newer sample yet) the GPUs are the last ones seen
    f_status = build_status(
        totals, resolved=resolved, intensity_g_per_kwh=intensity_now(resolved, now_s, live), budget=spec.get("budget"),
        pods=len(owned),
        gpus=sum(p.gpus for p in owned if p.phase in ("Pending", "Running")) or len(gpus_seen) or stored.get("gpus"),
        gpu_models=sorted(set(gpus_seen.values())) or stored.get("gpuModels"), embodied_nodes=embodied_nodes,
    )
    b_status, ratio = budget_status(spec.get("budget"), totals)
    if b_status is not None:
        exceeded = bool(b_status["exceeded"])
        cond("BudgetExceeded", exceeded, "OverBudget" if exceeded else "WithinBudget", f"budget used: {b_status['summary']}",
             ("Warning", "BudgetExceeded") if exceeded else None)

    # Completion (TrainingRun)
    completed = kind == "TrainingRun" and state in ("succeeded", "failed") and state_reason != AWAITING_FINAL_READ
    if kind == "TrainingRun":
        waiting = f"workload {state}, waiting for the exporters' last reading of its pods"
        cond("Completed", completed, state_reason, "figures frozen" if completed else
             waiting if state_reason == AWAITING_FINAL_READ else f"workload {state}",
             ("Normal", "Completed") if completed else None)
    conditions, _ = ready_condition(conditions, completed=completed, now=now, generation=gen)
    status = {**f_status, "phase": decision.phase, "conditions": conditions, "observedGeneration": gen}
    for key in ("startTime", "completionTime"):
        if stored.get(key):
            status[key] = stored[key]
    return _Outcome(status=status, events=events, completed=completed, budget_ratio=ratio)


def _entries(ledger: Any) -> tuple[frozenset[str], frozenset[str], tuple[tuple[str, float], ...]]:
    return (
        frozenset(ledger.series or ()), frozenset(ledger.serving or ()), tuple(sorted((ledger.folded or {}).items()))
    )


def _visible(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "ledger"}


async def _write(
    rt: Runtime, kind: str, ns: str, name: str, uid: str, stored: Mapping[str, Any], status: dict[str, Any], now_s: float,
    *, force: bool = False, metering: bool = False,
) -> bool:
    """Write ``status`` when a user can see a change (or, while ``metering``, when the written
    ledger is older than ``status_max_age_s``); remember it only once the API server has
    accepted it."""
    observed = rfc3339.parse((stored.get("ledger") or {}).get("observedAt"))
    fresh = not metering or (observed is not None and now_s - observed < rt.cfg.status_max_age_s)
    if not force and stored and fresh and _visible(status) == _visible(stored):
        return False
    if not force and metering and _defer_figures(rt, kind, stored, status, observed, now_s, fresh=fresh):
        return False
    # through the typed model the CRD is generated from: a field the schema does not know is
    # an error here, not a value the API server silently drops
    status = STATUS_MODELS[kind].model_validate(status).to_api()
    await rt.kube.replace_status(PLURALS[kind], ns, name, status)
    rt.written[uid] = status
    return True


# -- performance: pacing of figure-only writes (issue 12, "no API storms") ------------------
#: status keys that only carry figures (they change at nearly every refresh of a running run
#: at 4 significant digits); everything else (phase, factors, pods, GPUs, the power-cap advice,
#: conditions' type, status and reason) is written as soon as it changes.
_FIGURE_KEYS = frozenset({"energy", "carbon", "water", "power", "gpuHours", "inference", "budget"})


#: of ``powerCap``, the advice itself; its savings and fractions are figures
_POWER_CAP_ADVICE = ("status", "recommendedCapW", "curve")


def _shape(status: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k != "ledger" and k not in _FIGURE_KEYS}
    if isinstance(out.get("powerCap"), Mapping):
        out["powerCap"] = {k: out["powerCap"].get(k) for k in _POWER_CAP_ADVICE}
    out["conditions"] = sorted(
        (c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []
    )
    return out


def _defer_figures(
    rt: Runtime, kind: str, stored: Mapping[str, Any], status: Mapping[str, Any], observed: float | None, now_s: float,
    *, fresh: bool,
) -> bool:
    """True when only figures (or condition messages quoting them) changed and the write can
    wait: the written ledger is younger than ``status_min_interval_s``, or ``status_write_concurrency``
    status writes are already in flight (the API server is slow) and the written ledger is
    younger than ``status_max_age_s``. Nothing is lost by waiting: the next refresh starts
    from the written ledger, so its deltas span the skipped refreshes; the run's metrics
    carry every refresh's figures meanwhile."""
    if not stored or observed is None or _shape(status) != _shape(stored):
        return False
    if rt.cfg.status_min_interval_s > 0 and now_s - observed < rt.cfg.status_min_interval_s:
        rt.metrics.status_write_deferred(kind, "MinInterval")
        return True
    if fresh and rt.kube.status_writes_in_flight >= rt.cfg.status_write_concurrency:
        rt.metrics.status_write_deferred(kind, "ApiBusy")
        return True
    return False

"""The refresh queue's handlers: runs enter and leave it with their watch events, pods and
claims invalidate their namespace's selection, and the queue (with leader election, only
on the leader) calls :func:`refresh_due` for each run when it is due.

Everything lives in ``memo.queue`` (a :class:`Queue`), made at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from mlfootprint import rfc3339
from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.handlers import refresh
from mlfootprint.operator.leader import LeaderElector, default_identity
from mlfootprint.operator.ownership import RunClaim, claim_from
from mlfootprint.operator.runtime import Runtime
from mlfootprint.operator.scheduler import RefreshScheduler
from mlfootprint.operator.selection import Selections

__all__ = ["Queue", "on_pod_event", "on_run_event", "refresh_due", "start", "stop"]

log = logging.getLogger(__name__)


@dataclass
class Queue:
    scheduler: RefreshScheduler
    selections: Selections
    elector: LeaderElector | None = None
    models: Mapping[str, Any] = field(default_factory=dict)
    nodes: Mapping[str, Any] = field(default_factory=dict)
    claims: dict[str, RunClaim] = field(default_factory=dict)  # uid -> the claim last seen
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the queue's loop, from within a kopf event handler: its tasks inherit the
        handler's context, which ``kopf.event`` needs to post Events."""
        if self.runner is None:
            self.runner = asyncio.create_task(self.scheduler.run(), name="refresh queue")
            self.tasks.append(self.runner)

    @property
    def leader(self) -> bool:
        return self.elector is None or self.elector.leader


def _delay(error: BaseException) -> float | None:
    return float(error.delay) if isinstance(error, kopf.TemporaryError) and error.delay is not None else None


def start(cfg: OperatorConfig, memo: Any) -> Queue:
    """Make the queue and start the leader elector; the queue's loop starts with the first
    run event (kopf delivers none before its indexes are complete)."""
    rt: Runtime = memo.runtime

    async def do_refresh(kind: str, body: Mapping[str, Any]) -> None:
        await refresh_due(kind, body, memo)

    scheduler = RefreshScheduler(
        interval_s=cfg.interval_s, refresh=do_refresh, concurrency=cfg.refresh_concurrency,
        on_refreshed=lambda kind, lag: rt.metrics.refresh_lag.labels(kind).observe(lag), delay_of=_delay,
        start_paused=cfg.leader_election,  # until the lease is held
    )
    q = Queue(scheduler=scheduler, selections=Selections(max_age_s=cfg.interval_s))
    rt.metrics.queue.stats = scheduler.stats
    if cfg.leader_election:
        q.elector = LeaderElector(
            kube=rt.kube, namespace=cfg.lease_namespace, name=cfg.leader_election_lease,
            identity=cfg.leader_election_identity or default_identity(),
            on_start=scheduler.activate, on_stop=lambda: _step_down(q, rt),
            lease_duration_s=cfg.lease_duration_s, renew_deadline_s=cfg.renew_deadline_s, retry_period_s=cfg.retry_period_s,
        )
        rt.metrics.queue.leader = lambda: q.leader
        q.tasks.append(asyncio.create_task(q.elector.run(), name="leader election"))
    return q


async def _step_down(q: Queue, rt: Runtime) -> None:
    """Leadership lost: stop refreshing at once, and stop exporting per-run figures (they would
    freeze beside the new leader's)."""
    await q.scheduler.deactivate()
    rt.metrics.clear_runs()


async def stop(q: Queue) -> None:
    """Stop refreshing, then (as leader) release the Lease: the elector's task releases it
    when cancelled."""
    await q.scheduler.deactivate()
    for t in reversed(q.tasks):
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - stopping anyway
            log.warning("queue task ended with an error", extra={"task": t.get_name(), "error": repr(e)})


def on_run_event(
    kind: str, event_type: str | None, body: Mapping[str, Any], memo: Any, indexes: Mapping[str, Any]
) -> None:
    """A TrainingRun/InferenceService event: track or forget the run, invalidate its
    namespace's selection when what it selects changed."""
    q: Queue = memo.queue
    rt: Runtime = memo.runtime
    meta = body.get("metadata") or {}
    uid, ns, name = str(meta.get("uid", "")), str(meta.get("namespace", "")), str(meta.get("name", ""))
    q.selections.bind(indexes["pods_index"], indexes["tr_claims"], indexes["is_claims"])
    q.models = indexes["models_index"]
    q.nodes = indexes["nodes_index"]
    if event_type == "DELETED":
        q.scheduler.remove(uid)
        rt.metrics.remove_run(kind, ns, name)
        rt.written.pop(uid, None)
        rt.quiet.pop(uid, None)
        if q.claims.pop(uid, None) is not None:
            q.selections.touch(ns)
        return
    _forget_written_once_watched(rt, uid, body)
    claim = claim_from(kind, meta, body.get("spec") or {})
    if q.claims.get(uid) != claim:
        q.claims[uid] = claim
        q.selections.touch(ns)
    q.scheduler.upsert(kind, uid, body)
    q.ensure_running()


def _forget_written_once_watched(rt: Runtime, uid: str, body: Mapping[str, Any]) -> None:
    """Drop the copy of a status this operator wrote once the watch has delivered it (or a
    newer one): the body then carries it, and refreshes continue from the body
    (``refresh.current_status``). One copy of each run's status in memory, not two
    (~150 MB at 10,000 runs)."""
    written = rt.written.get(uid)
    if written is None:
        return
    mine = rfc3339.parse((written.get("ledger") or {}).get("observedAt"))
    seen = rfc3339.parse((((body.get("status") or {}).get("ledger")) or {}).get("observedAt"))
    if mine is not None and seen is not None and seen >= mine:
        rt.written.pop(uid, None)


def on_pod_event(namespace: str | None, memo: Any) -> None:
    """A pod event (after kopf has updated the pods index): its namespace's selection is stale."""
    q: Queue | None = getattr(memo, "queue", None)
    if q is not None and namespace:
        q.selections.touch(namespace)


async def refresh_due(kind: str, body: Mapping[str, Any], memo: Any) -> None:
    """Refresh one run with just the pods it selects and the claims competing for them."""
    q: Queue = memo.queue
    meta = body.get("metadata") or {}
    ns = str(meta.get("namespace", ""))
    me = claim_from(kind, meta, body.get("spec") or {})
    pods, claims = q.selections.get(ns).for_claim(me)
    await refresh.refresh_resource(
        kind=kind, body=body, memo=memo, pods=pods, claims=claims,
        models=q.models if kind == "InferenceService" else None, nodes=q.nodes,
    )

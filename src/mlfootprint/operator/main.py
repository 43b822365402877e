"""Thin registration module: only kopf decorators, each delegating to a handler module.

Handlers are registered into an explicit registry by :func:`register` (called by the CLI
and by tests), so intervals come from the typed configuration, not from import time.
"""

from __future__ import annotations

from typing import Any

import kopf

from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.handlers import discovery, indexes, lifecycle, queue
from mlfootprint.operator.kube import Kube
from mlfootprint.operator.runtime import EnergySource

GROUP_VERSION = ("mlfootprint.io", "v1alpha1")
DISCOVERABLE = (
    ("batch", "v1", "jobs", "Job"),
    ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"),
    ("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet"),
    ("apps", "v1", "deployments", "Deployment"),
)


def register(
    registry: kopf.OperatorRegistry, cfg: OperatorConfig, kube: Kube, *, energy: EnergySource | None = None
) -> None:
    g, v = GROUP_VERSION

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        lifecycle.configure_settings(settings, cfg)
        memo.runtime = lifecycle.build_runtime(cfg, kube, energy)
        memo.metrics_port = lifecycle.start_metrics(memo.runtime)
        memo.queue = queue.start(cfg, memo)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        await queue.stop(memo.queue)
        await memo.runtime.close()

    # Every handler is async: kopf runs sync handlers in its thread pool, which for the
    # index and event handlers meant two thread hops per watch event (every status patch).
    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        return await lifecycle.login(kube, cfg)

    @kopf.index("pods", registry=registry, id="pods_index")
    async def pods_index(body: Any, **_: Any) -> Any:
        return indexes.index_pod(body)

    @kopf.on.event("pods", registry=registry, id="pods_changed")
    async def pods_changed(namespace: str | None, memo: Any, **_: Any) -> None:
        queue.on_pod_event(namespace, memo)

    @kopf.index(g, v, "trainingruns", registry=registry, id="models_index")
    async def models_index(spec: Any, status: Any, namespace: str | None, name: str, **_: Any) -> Any:
        return indexes.index_run_by_model(spec, status, namespace or "", name)  # namespaced: never None

    @kopf.index("nodes", registry=registry, id="nodes_index")
    async def nodes_index(name: str, labels: Any, **_: Any) -> Any:
        return {name: dict(labels or {})}  # embodied: a node's labels select its bill of materials

    @kopf.index(g, v, "trainingruns", registry=registry, id="tr_claims")
    async def tr_claims(meta: Any, spec: Any, status: Any, **_: Any) -> Any:
        return indexes.index_claim("TrainingRun", meta, spec, status)

    @kopf.index(g, v, "inferenceservices", registry=registry, id="is_claims")
    async def is_claims(meta: Any, spec: Any, status: Any, **_: Any) -> Any:
        return indexes.index_claim("InferenceService", meta, spec, status)

    # One refresh queue for all runs (handlers/queue.py, operator/scheduler.py) instead of a
    # kopf timer per object: the runs' watch events keep it up to date.
    @kopf.on.event(g, v, "trainingruns", registry=registry, id="track")
    async def track_trainingrun(type: str | None, body: Any, memo: Any, **kwargs: Any) -> None:
        queue.on_run_event("TrainingRun", type, body, memo, kwargs)

    @kopf.on.event(g, v, "inferenceservices", registry=registry, id="track")
    async def track_inferenceservice(type: str | None, body: Any, memo: Any, **kwargs: Any) -> None:
        queue.on_run_event("InferenceService", type, body, memo, kwargs)

    if not cfg.discovery:
        return

    @kopf.index("namespaces", registry=registry, id="namespaces_index")
    async def namespaces_index(name: str, labels: Any, **_: Any) -> Any:
        return indexes.index_namespace(name, labels)

    for group, version, plural, kind in DISCOVERABLE:

        @kopf.on.event(group, version, plural, registry=registry, id=f"discover_{plural}")
        async def discover(body: Any, type: str | None, memo: Any, _kind: str = kind, **kwargs: Any) -> None:
            if not memo.queue.leader:  # with leader election only the leader creates runs
                return
            await discovery.discover_workload(
                kind=_kind, body=body, event_type=type, memo=memo, namespaces=kwargs["namespaces_index"]
            )

"""Thin registration module: only kopf decorators, each delegating to a handler module.

Handlers are registered into an explicit registry by :func:`register` (called by the CLI
and by tests), so intervals come from the typed configuration, not from import time.
"""

from __future__ import annotations

from typing import Any

import kopf

from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.handlers import discovery, indexes, lifecycle, refresh
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

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        await memo.runtime.close()

    # Every handler is async: kopf runs sync handlers in its thread pool, which for the
    # index and event handlers meant two thread hops per watch event (every status patch).
    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        return await lifecycle.login(kube, cfg)

    @kopf.index("pods", registry=registry, id="pods_index")
    async def pods_index(body: Any, **_: Any) -> Any:
        return indexes.index_pod(body)

    @kopf.index(g, v, "trainingruns", registry=registry, id="models_index")
    async def models_index(spec: Any, status: Any, namespace: str, name: str, **_: Any) -> Any:
        return indexes.index_run_by_model(spec, status, namespace, name)

    @kopf.index("nodes", registry=registry, id="nodes_index")
    async def nodes_index(name: str, labels: Any, **_: Any) -> Any:
        return {name: dict(labels or {})}  # embodied: a node's labels select its bill of materials

    @kopf.index(g, v, "trainingruns", registry=registry, id="tr_claims")
    async def tr_claims(meta: Any, spec: Any, status: Any, **_: Any) -> Any:
        return indexes.index_claim("TrainingRun", meta, spec, status)

    @kopf.index(g, v, "inferenceservices", registry=registry, id="is_claims")
    async def is_claims(meta: Any, spec: Any, status: Any, **_: Any) -> Any:
        return indexes.index_claim("InferenceService", meta, spec, status)

    def claims(ns: str, tr_claims: Any, is_claims: Any) -> list[Any]:
        return [*tr_claims.get(ns, ()), *is_claims.get(ns, ())]

    @kopf.timer(g, v, "trainingruns", interval=cfg.interval_s, initial_delay=0.1, registry=registry, id="refresh")
    async def refresh_trainingrun(
        body: Any, memo: Any, pods_index: Any, tr_claims: Any, is_claims: Any, nodes_index: Any, **_: Any
    ) -> None:
        ns = body["metadata"]["namespace"]
        await refresh.refresh_resource(
            kind="TrainingRun", body=body, memo=memo, pods=pods_index.get(ns, ()), claims=claims(ns, tr_claims, is_claims),
            nodes=nodes_index,
        )

    @kopf.timer(g, v, "inferenceservices", interval=cfg.interval_s, initial_delay=0.1, registry=registry, id="refresh")
    async def refresh_inferenceservice(
        body: Any, memo: Any, pods_index: Any, models_index: Any, tr_claims: Any, is_claims: Any, nodes_index: Any, **_: Any
    ) -> None:
        ns = body["metadata"]["namespace"]
        await refresh.refresh_resource(
            kind="InferenceService", body=body, memo=memo, pods=pods_index.get(ns, ()),
            claims=claims(ns, tr_claims, is_claims), models=models_index, nodes=nodes_index,
        )

    @kopf.on.event(g, v, "trainingruns", registry=registry, id="forget")
    async def forget_trainingrun(type: str, namespace: str, name: str, uid: str, memo: Any, **_: Any) -> None:
        if type == "DELETED":
            memo.runtime.metrics.remove_run("TrainingRun", namespace, name)
            memo.runtime.written.pop(uid, None)
            memo.runtime.quiet.pop(uid, None)

    @kopf.on.event(g, v, "inferenceservices", registry=registry, id="forget")
    async def forget_inferenceservice(type: str, namespace: str, name: str, uid: str, memo: Any, **_: Any) -> None:
        if type == "DELETED":
            memo.runtime.metrics.remove_run("InferenceService", namespace, name)
            memo.runtime.written.pop(uid, None)
            memo.runtime.quiet.pop(uid, None)

    if not cfg.discovery:
        return

    @kopf.index("namespaces", registry=registry, id="namespaces_index")
    async def namespaces_index(name: str, labels: Any, **_: Any) -> Any:
        return indexes.index_namespace(name, labels)

    for group, version, plural, kind in DISCOVERABLE:

        @kopf.on.event(group, version, plural, registry=registry, id=f"discover_{plural}")
        async def discover(
            body: Any, type: str | None, memo: Any, namespaces_index: Any, _kind: str = kind, **_: Any
        ) -> None:
            await discovery.discover_workload(
                kind=_kind, body=body, event_type=type, memo=memo, namespaces=namespaces_index
            )

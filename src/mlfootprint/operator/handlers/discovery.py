"""Opt-in auto-discovery: namespaces labelled ``mlfootprint.io/auto-discover=true`` get a
TrainingRun for each GPU Job / PyTorchJob / JobSet and an InferenceService for each GPU
Deployment labelled ``mlfootprint.io/serving-engine``. The created objects carry an
ownerReference to the workload, so Kubernetes garbage-collects them with it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mlfootprint.crd.models import API_VERSION
from mlfootprint.operator.runtime import Runtime

log = logging.getLogger(__name__)

DISCOVER_LABEL = "mlfootprint.io/auto-discover"
ENGINE_LABEL = "mlfootprint.io/serving-engine"
MODEL_LABEL = "mlfootprint.io/model"
DISCOVERED_LABEL = "mlfootprint.io/discovered"


def _template_gpus(template: Mapping[str, Any] | None) -> int:
    spec = (template or {}).get("spec") or {}
    total = 0
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        v = (res.get("limits") or {}).get("nvidia.com/gpu") or (res.get("requests") or {}).get("nvidia.com/gpu")
        try:
            total += int(str(v)) if v is not None else 0
        except ValueError:
            pass
    return total


def workload_gpus(kind: str, spec: Mapping[str, Any]) -> int:
    """GPUs requested by one replica set of the workload's pod templates (0 = not a GPU workload)."""
    if kind in ("Job", "Deployment"):
        return _template_gpus(spec.get("template"))
    if kind == "PyTorchJob":
        return sum(_template_gpus((r or {}).get("template")) for r in (spec.get("pytorchReplicaSpecs") or {}).values())
    if kind == "JobSet":
        return sum(
            _template_gpus(((rj.get("template") or {}).get("spec") or {}).get("template"))
            for rj in spec.get("replicatedJobs") or []
        )
    return 0


def desired_object(kind: str, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(plural, object) to create for a discovered workload, or None (pure)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if workload_gpus(kind, spec) <= 0:
        return None
    name = meta["name"]
    model = labels.get(MODEL_LABEL) or annotations.get(MODEL_LABEL) or name
    owner = {
        "apiVersion": body.get("apiVersion", ""),
        "kind": kind,
        "name": name,
        "uid": meta.get("uid", ""),
        "controller": False,
        "blockOwnerDeletion": False,
    }
    obj_meta = {
        "name": name,
        "namespace": meta.get("namespace"),
        "labels": {DISCOVERED_LABEL: "true"},
        "ownerReferences": [owner],
    }
    if kind == "Deployment":
        engine = labels.get(ENGINE_LABEL)
        if not engine:
            return None
        serving: dict[str, Any] = {"engine": engine if engine in ("vllm", "sglang", "tgi") else "vllm"}
        if annotations.get("mlfootprint.io/serving-port"):
            serving["port"] = int(annotations["mlfootprint.io/serving-port"])
        selector = spec.get("selector") or {"matchLabels": (spec.get("template") or {}).get("metadata", {}).get("labels", {})}
        return "inferenceservices", {
            "apiVersion": API_VERSION, "kind": "InferenceService", "metadata": obj_meta,
            "spec": {"selector": selector, "model": {"name": model}, "servingMetrics": serving},
        }
    tr_spec: dict[str, Any] = {
        "workloadRef": {"apiVersion": body.get("apiVersion", ""), "kind": kind, "name": name},
        "model": {"name": model},
    }
    return "trainingruns", {"apiVersion": API_VERSION, "kind": "TrainingRun", "metadata": obj_meta, "spec": tr_spec}


async def discover_workload(
    *, kind: str, body: Mapping[str, Any], event_type: str | None, memo: Any, namespaces: Mapping[str, Any]
) -> None:
    meta = body.get("metadata") or {}
    if event_type == "DELETED":
        memo.runtime.discovered.discard(meta.get("uid", ""))  # bounded by the live workloads
        return
    ns = meta.get("namespace", "")
    ns_labels: dict[str, str] = {}
    for labels in namespaces.get(ns, ()):
        ns_labels = labels
    if ns_labels.get(DISCOVER_LABEL) != "true":
        log.debug("namespace not labelled for discovery", extra={"namespace": ns, "kind": kind})
        return
    wanted = desired_object(kind, body)
    if wanted is None:
        log.debug("not a GPU workload", extra={"namespace": ns, "kind": kind, "workload": meta.get("name")})
        return
    rt: Runtime = memo.runtime
    done = rt.discovered
    uid = meta.get("uid", "")
    if uid in done:
        return
    plural, obj = wanted
    try:
        created = await rt.kube.create_custom(ns, plural, obj)
    except Exception as e:  # noqa: BLE001 - retried on the workload's next event
        log.warning("auto-discovery could not create the run", extra={"kind": kind, "namespace": ns, "workload": meta.get("name"), "error": str(e)})
        return
    done.add(uid)
    if created:
        log.info("auto-discovered workload", extra={"kind": kind, "namespace": ns, "workload": meta.get("name")})

"""Which pods belong to a run (pure): label selectors, workload references, pod records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlfootprint import rfc3339

__all__ = ["PodInfo", "matches_selector", "pod_info", "pods_of_run", "workload_state_from_conditions"]

#: Labels that controllers put on their pods, naming the workload (value = its name).
WORKLOAD_POD_LABELS: dict[str, tuple[str, ...]] = {
    "Job": ("batch.kubernetes.io/job-name", "job-name"),
    "PyTorchJob": ("training.kubeflow.org/job-name",),
    "JobSet": ("jobset.sigs.k8s.io/jobset-name",),
}


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    owners: tuple[tuple[str, str], ...]  # (kind, name)
    phase: str
    ip: str | None
    gpus: int
    #: when its last container ended (unix s), for a pod that has ended
    finished_s: float | None = None
    #: its containers' restarts (sum of ``restartCount``); None without container statuses
    restarts: int | None = None

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def annotation_map(self) -> dict[str, str]:
        return dict(self.annotations)


def _gpus(spec: Mapping[str, Any]) -> int:
    total = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        for part in ("limits", "requests"):
            v = (res.get(part) or {}).get("nvidia.com/gpu")
            if v is not None:
                try:
                    total += int(str(v))
                except ValueError:
                    pass
                break
    return total


def _finished_s(status: Mapping[str, Any]) -> float | None:
    """The latest ``state.terminated.finishedAt`` of an ended pod's containers (None while
    it runs, or when no container reports a readable one, e.g. a pod that never started)."""
    if status.get("phase") not in ("Succeeded", "Failed"):
        return None
    ends = [rfc3339.parse(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for c in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]]
    return max((t for t in ends if t is not None), default=None)


def _restarts(status: Mapping[str, Any]) -> int | None:
    """Sum of the containers' ``restartCount`` (the kubelet's, monotone for a pod); None when
    the status has no container statuses or a count that is not a non-negative integer."""
    statuses = status.get("containerStatuses") or []
    counts = [c.get("restartCount") for c in statuses if isinstance(c, Mapping)]
    valid = [n for n in counts if isinstance(n, int) and not isinstance(n, bool) and n >= 0]
    return sum(valid) if valid and len(valid) == len(counts) else None


def pod_info(body: Mapping[str, Any]) -> PodInfo:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return PodInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        labels=tuple(sorted((meta.get("labels") or {}).items())),
        annotations=tuple(
            sorted((k, v) for k, v in (meta.get("annotations") or {}).items() if k.startswith("mlfootprint.io/"))
        ),
        owners=tuple((o.get("kind", ""), o.get("name", "")) for o in meta.get("ownerReferences") or []),
        phase=status.get("phase") or "Pending",
        ip=status.get("podIP"),
        gpus=_gpus(body.get("spec") or {}),
        finished_s=_finished_s(status),
        restarts=_restarts(status),
    )


def matches_selector(labels: Mapping[str, str], selector: Mapping[str, Any] | None) -> bool:
    """Kubernetes LabelSelector semantics; an empty or missing selector matches nothing here."""
    if not selector:
        return False
    ml = selector.get("matchLabels") or {}
    me = selector.get("matchExpressions") or []
    if not ml and not me:
        return False
    for k, v in ml.items():
        if labels.get(k) != v:
            return False
    for req in me:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _of_workload(pod: PodInfo, ref: Mapping[str, Any]) -> bool:
    kind, name = ref.get("kind", ""), ref.get("name", "")
    if (kind, name) in pod.owners:
        return True
    labels = pod.label_map
    return any(labels.get(label) == name for label in WORKLOAD_POD_LABELS.get(kind, ()))


def pods_of_run(pods: Iterable[PodInfo], spec: Mapping[str, Any]) -> list[PodInfo]:
    selector = spec.get("selector")
    ref = spec.get("workloadRef")
    out = []
    for p in pods:
        if (selector and matches_selector(p.label_map, selector)) or (ref and _of_workload(p, ref)):
            out.append(p)
    return sorted(out, key=lambda p: p.name)


def workload_state_from_conditions(kind: str, obj: Mapping[str, Any]) -> tuple[str, str]:
    """(state, reason) of a workload object: state is running | succeeded | failed."""
    conds = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    if conds.get("Failed") == "True" or conds.get("FailureTarget") == "True":
        return "failed", "WorkloadFailed"
    for t in ("Complete", "Completed", "Succeeded", "SuccessCriteriaMet"):
        if conds.get(t) == "True":
            return "succeeded", "WorkloadSucceeded"
    if (obj.get("spec") or {}).get("suspend") is True and kind == "Job":
        return "running", "Suspended"
    return "running", "WorkloadRunning"


def state_from_pods(pods: Iterable[PodInfo]) -> tuple[str, str]:
    """(state, reason) from the pods' phases: terminal when all have ended."""
    phases = [p.phase for p in pods]
    if not phases:
        return "pending", "NoPods"
    if all(ph in ("Succeeded", "Failed") for ph in phases):
        if "Succeeded" in phases:
            return "succeeded", "PodsSucceeded"
        return "failed", "PodsFailed"
    return "running", "PodsRunning"

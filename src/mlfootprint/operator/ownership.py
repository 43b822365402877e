"""Which run meters a pod (pure): one pod, one owner, so no energy is billed twice.

Two runs whose selectors (or workload references) both match a pod would otherwise both take
all of its energy and double the model's totals. The owner is the run that claimed it first:
the oldest by ``creationTimestamp``, then kind and name (deterministic, stable as runs come
and go). The others leave the pod out and report it in their ``PodsExclusive`` condition,
naming the owner. Runs of both kinds in the namespace compete (a TrainingRun and an
InferenceService selecting the same serving pod).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlfootprint.operator.pods import PodInfo, pods_of_run

__all__ = ["RunClaim", "claim_from", "split_pods"]


@dataclass(frozen=True)
class RunClaim:
    """What a run selects, as the runs index keeps it."""

    kind: str
    name: str
    created: str  # RFC 3339, sorts in time order
    selector: Mapping[str, Any] | None = None
    workload_ref: Mapping[str, Any] | None = None

    @property
    def order(self) -> tuple[str, str, str]:
        return (self.created, self.kind, self.name)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def selects(self, pods: Iterable[PodInfo]) -> list[PodInfo]:
        spec: dict[str, Any] = {"selector": self.selector}
        if self.kind == "TrainingRun":
            spec["workloadRef"] = self.workload_ref
        return pods_of_run(pods, spec)


def claim_from(kind: str, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> RunClaim:
    return RunClaim(
        kind=kind,
        name=str(meta.get("name", "")),
        created=str(meta.get("creationTimestamp") or ""),
        selector=spec.get("selector"),
        workload_ref=spec.get("workloadRef") if kind == "TrainingRun" else None,
    )


def split_pods(me: RunClaim, pods: Iterable[PodInfo], claims: Iterable[RunClaim]) -> tuple[list[PodInfo], dict[str, RunClaim]]:
    """(the pods ``me`` owns, pod name -> owner for the selected pods another run owns)."""
    pool = list(pods)
    mine = me.selects(pool)
    earlier = [c for c in claims if c.order < me.order and (c.kind, c.name) != (me.kind, me.name)]
    if not earlier or not mine:
        return mine, {}
    taken: dict[str, RunClaim] = {}
    for other in sorted(earlier, key=lambda c: c.order):
        for pod in other.selects(mine):
            taken.setdefault(pod.name, other)
    return [p for p in mine if p.name not in taken], taken

"""Which run meters a pod (pure): one pod, one owner, so no energy is billed twice.

Two runs whose selectors (or workload references) both match a pod would otherwise both take
all of its energy and double the model's totals. The owner is the run that already meters it
(the pod's counters are in the run's ledger, ``status.ledger.series``); when none does, the
run that claimed it first: the oldest by ``creationTimestamp``, then kind and name
(deterministic, stable as runs come and go). The others leave the pod out and report it in
their ``PodsExclusive`` condition, naming the owner. Runs of both kinds in the namespace
compete (a TrainingRun and an InferenceService selecting the same serving pod).

Metering wins over age because ownership must not move while the owner's ledger holds the
pod: the new owner would count the pod's whole history (a container seen for the first time)
while the old one keeps what it counted. ``creationTimestamp`` has a resolution of one second,
so a run created within the same second as the one metering a pod, with a name that sorts
first, used to take the pod over and count it twice (found by the fault suite,
``overlap-same-second``).
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
    #: pods whose counters are in the run's ledger (it meters them)
    counted: frozenset[str] = frozenset()

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


def claim_from(kind: str, meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> RunClaim:
    series = ((status or {}).get("ledger") or {}).get("series") or {}
    return RunClaim(
        kind=kind,
        name=str(meta.get("name", "")),
        created=str(meta.get("creationTimestamp") or ""),
        selector=spec.get("selector"),
        workload_ref=spec.get("workloadRef") if kind == "TrainingRun" else None,
        counted=frozenset(str(key).split("/", 1)[0] for key in series),
    )


def split_pods(me: RunClaim, pods: Iterable[PodInfo], claims: Iterable[RunClaim]) -> tuple[list[PodInfo], dict[str, RunClaim]]:
    """(the pods ``me`` owns, pod name -> owner for the selected pods another run owns).

    A pod's owner among the runs selecting it: the oldest of those that meter it (``counted``),
    else the oldest of all. Only runs older than ``me`` or metering one of its pods can win,
    so only those are matched against the pods."""
    pool = list(pods)
    mine = me.selects(pool)
    names = {p.name for p in mine}
    rivals = [
        c for c in claims
        if (c.kind, c.name) != (me.kind, me.name) and (c.order < me.order or c.counted & names)
    ]
    if not rivals or not mine:
        return mine, {}
    selected = [(c, {p.name for p in c.selects(mine)}) for c in rivals]
    taken: dict[str, RunClaim] = {}
    for pod in names:
        contenders = [me, *(c for c, sel in selected if pod in sel)]
        if len(contenders) == 1:
            continue
        metering = [c for c in contenders if pod in c.counted]
        owner = min(metering or contenders, key=lambda c: c.order)
        if owner is not me:
            taken[pod] = owner
    return [p for p in mine if p.name not in taken], taken

"""The fault suite's oracle: the true energy of simulated GPUs, and what runs may be billed.

Pure functions and small value types (unit-tested in ``test_oracle.py``); the campaign
(``harness.py``) feeds them what it recorded.

**Where the truth comes from.** A simulated GPU with ``--sim-device-file`` keeps its clock and
its energy counter in that file (``mlfootprint.exporter.gpu_sim``), like NVML's counter it
keeps counting while no exporter runs, and the exporter rewrites the file at every reading
(once per attribution interval). The recorder polls the files and keeps every write it sees
as a :class:`DeviceRecord`: simulated time, counter, and whether a pod held the GPU at that
reading (the file's ``profile`` is set exactly while the exporter's pod listing assigns the
GPU to a container).

**What a pod may be billed.** The exporter bills the energy of an interval ``(a, b]`` to the
containers that hold the GPU at the reading ``b`` (``Monitor.cycle``: the listing is read,
then the GPUs), so the *held energy* of a GPU is the sum of ``E(b) - E(a)`` over consecutive
records whose later record is held. That includes the interval before a pod's first listing
(billed to the pod by the same rule), so no boundary tolerance is needed at the start; the
only tolerance is numerical (:func:`tolerance_j`: the exporter rounds hardware readings to
whole millijoules). A missed record (the recorder polls ten times per interval) can only
merge intervals, which makes the bound looser, never tighter.

**What a run may be billed.** Runs whose selectors share pods form a *component*; one pod is
metered by one run only, so the sum of a component's runs' GPU energy may not exceed the held
energy of its pods' GPUs. More is double counting. Less is a loss, allowed only inside
documented gaps (:class:`GapWindow`: downtime of an exporter without a usable state file,
docs/exporter.md#restarts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ClockMap",
    "Component",
    "DeviceHistory",
    "DeviceRecord",
    "GapWindow",
    "components",
    "tolerance_j",
]

#: Relative and absolute numerical tolerance of the upper bound (see :func:`tolerance_j`).
TOLERANCE_REL = 1e-6
TOLERANCE_ABS_J = 1.0


def tolerance_j(truth_j: float, readings: int = 0) -> float:
    """What the comparison of a billed figure with the truth forgives: 1 J + 1 ppm, plus
    1 mJ per hardware reading (the exporter rounds the simulated counter to whole mJ, as
    NVML reports mJ). Nothing forgives an attribution interval: the oracle bills the
    boundary interval exactly as the exporter does."""
    return TOLERANCE_ABS_J + TOLERANCE_REL * abs(truth_j) + 1e-3 * readings


@dataclass(frozen=True)
class DeviceRecord:
    """One write of a simulated device file as the recorder saw it."""

    t_s: float  # simulated seconds of the reading
    energy_j: float  # the counter at that reading
    held: bool  # a container held the GPU at that reading


@dataclass(frozen=True)
class ClockMap:
    """Simulated seconds as a function of unix time (the device file's anchor)."""

    factor: float
    anchor_unix: float
    anchor_sim: float

    def sim_at(self, unix_s: float) -> float:
        return self.anchor_sim + self.factor * (unix_s - self.anchor_unix)

    def unix_at(self, sim_s: float) -> float:
        return self.anchor_unix + (sim_s - self.anchor_sim) / self.factor


@dataclass(frozen=True)
class GapWindow:
    """A documented gap: energy of ``pod`` measured in simulated ``[start_s, end_s]`` may be
    missing from its run (``why`` names the documented cause)."""

    pod: str
    start_s: float
    end_s: float
    why: str


class DeviceHistory:
    """Per GPU, the device-file records in time order."""

    def __init__(self) -> None:
        self._records: dict[str, list[DeviceRecord]] = {}
        #: counters seen going back (a simulated device never does; a harness or sim bug)
        self.regressions: list[tuple[str, float, float]] = []

    def add(self, uuid: str, rec: DeviceRecord) -> bool:
        """Keep ``rec`` if it is newer than the last one of ``uuid``; True if kept."""
        recs = self._records.setdefault(uuid, [])
        if recs and rec.t_s <= recs[-1].t_s:
            return False
        if recs and rec.energy_j < recs[-1].energy_j:
            self.regressions.append((uuid, recs[-1].energy_j, rec.energy_j))
        recs.append(rec)
        return True

    def uuids(self) -> list[str]:
        return sorted(self._records)

    def records(self, uuid: str) -> Sequence[DeviceRecord]:
        return tuple(self._records.get(uuid, ()))

    def latest_t(self, uuid: str) -> float | None:
        recs = self._records.get(uuid)
        return recs[-1].t_s if recs else None

    def held_j(self, uuid: str, until_s: float = math.inf) -> float:
        """Energy of the intervals ending at a held reading no later than ``until_s``."""
        total = 0.0
        recs = self._records.get(uuid, [])
        for a, b in zip(recs, recs[1:], strict=False):
            if b.t_s > until_s:
                break
            if b.held:
                total += b.energy_j - a.energy_j
        return total

    def held_j_in(self, uuid: str, windows: Iterable[tuple[float, float]]) -> float:
        """Energy of the held intervals that overlap any of ``windows`` (whole intervals: an
        allowance computed this way is never smaller than the energy inside the windows)."""
        spans = sorted(windows)
        if not spans:
            return 0.0
        total = 0.0
        recs = self._records.get(uuid, [])
        for a, b in zip(recs, recs[1:], strict=False):
            if b.held and any(a.t_s < hi and b.t_s > lo for lo, hi in spans):
                total += b.energy_j - a.energy_j
        return total

    def readings(self, uuid: str) -> int:
        return len(self._records.get(uuid, ()))


@dataclass
class Component:
    """Runs that share pods (directly or through each other) and those pods."""

    runs: set[str] = field(default_factory=set)
    pods: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return "+".join(sorted(self.runs))


def components(run_pods: Mapping[str, Iterable[str]]) -> list[Component]:
    """Group runs that select a common pod (union-find over runs), with all their pods."""
    parent: dict[str, str] = {r: r for r in run_pods}

    def find(r: str) -> str:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    owner_of: dict[str, str] = {}
    for run, pods in run_pods.items():
        for pod in pods:
            other = owner_of.setdefault(pod, run)
            if other != run:
                parent[find(run)] = find(other)
    groups: dict[str, Component] = {}
    for run, pods in run_pods.items():
        c = groups.setdefault(find(run), Component())
        c.runs.add(run)
        c.pods.update(pods)
    return sorted(groups.values(), key=lambda c: c.label)


def pods_truth_j(
    pods: Iterable[str], pod_gpus: Mapping[str, Iterable[str]], history: DeviceHistory, until_s: Mapping[str, float] | None = None
) -> tuple[float, int]:
    """(held energy of the GPUs of ``pods``, readings involved). Each GPU counts once even if
    several of the pods were seen on it. ``until_s``: per GPU, the last simulated time to
    count (default: everything recorded)."""
    gpus = sorted({g for p in pods for g in pod_gpus.get(p, ())})
    total = 0.0
    readings = 0
    for g in gpus:
        total += history.held_j(g, (until_s or {}).get(g, math.inf))
        readings += history.readings(g)
    return total, readings


def allowed_loss_j(
    pods: Iterable[str], pod_gpus: Mapping[str, Iterable[str]], history: DeviceHistory, gaps: Iterable[GapWindow]
) -> float:
    """The held energy of ``pods``' GPUs inside their documented gaps (each interval once)."""
    wanted = set(pods)
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for gap in gaps:
        if gap.pod in wanted:
            for g in pod_gpus.get(gap.pod, ()):
                by_gpu.setdefault(g, []).append((gap.start_s, gap.end_s))
    return sum(history.held_j_in(g, spans) for g, spans in by_gpu.items())

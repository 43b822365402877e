"""The status ledger: counter deltas, folding and accumulated totals (pure functions, no I/O).

Every refresh reads cumulative counters and turns them into increments. The exporters'
per-container counters carry the unix time the exporter started counting them
(``mlfootprint_pod_start_time_seconds``), which makes the rules exact instead of guessed:

* a container seen for the first time (or with a *newer* start: its counters really started
  again from zero) -> all of its value is new;
* the same start and a higher value -> the difference;
* the same start and a *lower* value -> a rollback (an exporter restored an older
  checkpoint, e.g. after its checkpoint writes failed): nothing is added, the anomaly is
  reported, and the baseline stays the highest value already counted (the high-water mark).
  A rollback is never mistaken for a reset, and the counter's climb back to the old value is
  not counted again: the exporter re-bills the rolled-back span from the hardware counter
  (docs/exporter.md#restarts), so rebasing on the lower value would add that span twice;
* an *older* start than the ledger's -> a stale incarnation (an old series that reappeared):
  ignored;
* a start where the ledger has none (its last value came from an exporter older than 0.2, or
  from a ledger written by operator 0.1): a start *after* the ledger's last observation means
  the counters began after that value was read (an exporter that came up without its state,
  e.g. replacing 0.1.0's, whose state was in an emptyDir) -> all of the value is new; a start
  before it means the same counters (an exporter that migrated 0.1's state file: its series
  carry the start :data:`mlfootprint.exporter.state.V1_START_UNIX`) -> growth, a drop is a
  rollback. The classic rule below would take a young run's fresh counters, once they exceed
  its old value, for growth and drop that old value (found by tests/realnode/test_upgrade.py);
* no start on either side, or none in the observation (an exporter older than 0.2) -> the
  classic Prometheus rule: lower means reset, the new value is new.

Serving engines' counters (InferenceService) are kept per pod and per label set, so a label
set that vanishes from a sum is not a reset. A decrease is a reset only when the engine
restarted: ``process_start_time_seconds`` changed or, without that metric, the pod's
containers restarted (``restartCount``). Only when neither is known is the new value judged
by its size: plausible for the time since the last read, at most :data:`RESTART_RATE_MARGIN`
times the run's average rate (once the run has one) over that time. Otherwise the source is
inconsistent
(e.g. replicas behind one URL answering in turn): nothing is added, the high-water mark is
kept (so swings back up are not counted again) and the anomaly is reported. Increments
above a physical rate are refused the same way.

Bounded: a container that left the run (its pod is gone) and that the exporters no longer
report is *folded*: its counters leave the ledger (its energy stays in the totals) and the
node's newest folded start is kept as a watermark, so a folded series that reappears is
recognised as stale instead of being counted again.

The ledger and the totals are written in one status update, so an operator restart resumes
from exactly what was accounted: nothing dropped, nothing doubled. Increments are converted
into carbon and water with the factors in force for the interval they were measured in
(``mlfootprint.accounting.footprint``): a change of factors applies from its time forward.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlfootprint import rfc3339
from mlfootprint.accounting.factors import EmbodiedSpec, Factors
from mlfootprint.accounting.footprint import compute_footprint
from mlfootprint.accounting.inputs import EnergyInterval, Usage
from mlfootprint.accounting.workload_model import IntervalAggregate, WorkloadStats
from mlfootprint.crd.models import Ledger, LedgerTotals, SeriesCounters, ServingCounters

__all__ = [
    "MAX_COUNTER",
    "MAX_RATE",
    "Anomaly",
    "ContainerObs",
    "EmbodiedPlan",
    "EmbodiedResolver",
    "Increment",
    "ServingObs",
    "advance",
    "apply_increment",
    "held_seconds",
    "labels_digest",
    "ledger_from_status",
    "migrate_counters",
    "series_name",
]

#: Largest cumulative value accepted from any counter (J, s, count): 10 kW for 30 years.
MAX_COUNTER = 1e13
#: Largest plausible rate of a serving counter per pod and second (refused above it).
MAX_RATE = {"requests": 1e5, "tokens_in": 1e8, "tokens_out": 1e7}
#: Without a process start time, a serving counter that drops is an engine restart only if the
#: new value could have been counted since the last read at this many times the run's
#: average rate (replicas behind one URL answering in turn drop by far more: found by the
#: fault suite, serving-garbage on an engine without process metrics, requests x2).
RESTART_RATE_MARGIN = 4.0
#: Label sets of one serving counter kept apart per pod; beyond this their sum is one series.
MAX_LABEL_SETS = 32
#: The key of the sum of all label sets (used past MAX_LABEL_SETS and for 0.1 ledgers).
SUM_KEY = "*"


def series_name(pod: str, container: str) -> str:
    """Ledger key of one container's counters (pod and container names contain no '/')."""
    return f"{pod}/{container}"


def labels_digest(labels: Mapping[str, str]) -> str:
    """A short stable key of a label set (the labels themselves are not stored)."""
    text = "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def valid_counter(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= MAX_COUNTER


# ----------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class ContainerObs:
    """One container's cumulative counters as an exporter reports them."""

    node: str | None = None
    start: float | None = None
    gpu_j: float = 0.0
    cpu_j: float = 0.0
    dram_j: float = 0.0
    swings: float = 0.0
    alloc_s: Mapping[str, float] = field(default_factory=dict)  # GPU model -> device-seconds
    gpus: Mapping[str, str] = field(default_factory=dict)  # GPU UUID -> model
    power_s: tuple[float, ...] = ()  # power-ratio histogram, cumulative seconds per bound
    limit_w: float | None = None  # mean power limit of the GPUs held, W


@dataclass(frozen=True)
class ServingObs:
    """One serving pod's counters: kind (requests|tokens_in|tokens_out) -> label digest -> value."""

    start: float | None = None  # the engine's process_start_time_seconds, when exposed
    counters: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    restarts: int | None = None  # the pod's container restarts (sum of restartCount), when known


@dataclass(frozen=True)
class Anomaly:
    """Something the ledger refused or corrected; ``kind`` is a CamelCase reason."""

    kind: str  # Rollback | StaleSeries | ServingInconsistent | ServingImplausible
    subject: str  # pod/container or pod:metric (names only, never values)


@dataclass
class Increment:
    """What a run used since the last ledger update (summed over its series)."""

    gpu_j: float = 0.0
    cpu_j: float = 0.0
    dram_j: float = 0.0
    alloc_s: dict[str, float] = field(default_factory=dict)  # GPU model -> device-seconds held
    #: (GPU model, node) -> device-seconds held: which node's host the embodied share is of
    alloc_nodes: dict[tuple[str, str | None], float] = field(default_factory=dict)
    gpus: int = 0  # GPUs of the containers that held GPUs in the interval
    power_s: list[float] = field(default_factory=list)  # power-ratio histogram seconds, per bound
    power_limit_s: float = 0.0  # Σ limit x seconds (W·s)
    swings: float = 0.0
    requests: float = 0.0
    tokens_in: float = 0.0
    tokens_out: float = 0.0

    @property
    def it_j(self) -> float:
        return self.gpu_j + self.cpu_j + self.dram_j

    def is_empty(self) -> bool:
        return not (self.it_j or any(self.alloc_s.values()) or self.swings or self.requests or self.tokens_out or self.tokens_in)


# ----------------------------------------------------------------------------- migration


def migrate_counters(
    counters: Mapping[str, float], read_s: float | None = None
) -> tuple[dict[str, SeriesCounters], dict[str, ServingCounters]]:
    """Operator 0.1 kept ``kind|pod|container[|extra]`` keys; regroup them per container
    (no start, read at ``read_s``, the 0.1 ledger's ``observedAt``: the first new observation
    adopts the exporter's start if it is older, else the counters are new) and per serving pod
    (as the sum of its label sets)."""
    series: dict[str, dict[str, Any]] = {}
    serving: dict[str, dict[str, float]] = {}
    for key, value in counters.items():
        if not valid_counter(value):
            continue
        kind, *parts = key.split("|")
        if kind in ("requests", "tokens_in", "tokens_out"):
            pod = parts[0] if parts else ""
            serving.setdefault(pod, {})[kind] = serving.get(pod, {}).get(kind, 0.0) + value
            continue
        if len(parts) < 2:
            continue
        s = series.setdefault(series_name(parts[0], parts[1]), {"gpuJ": 0.0, "cpuJ": 0.0, "dramJ": 0.0, "swings": 0.0, "allocS": {},
                                                                 "gpus": 0, "readAt": read_s})
        if kind == "gpu":
            s["gpuJ"] += value
            s["gpus"] += 1
        elif kind in ("cpu", "dram"):
            s[f"{kind}J"] += value
        elif kind == "swings":
            s["swings"] += value
        elif kind == "alloc":
            model = parts[2] if len(parts) > 2 else "unknown"
            s["allocS"][model] = s["allocS"].get(model, 0.0) + value
    return (
        {k: SeriesCounters.model_validate(v) for k, v in series.items()},
        {
            pod: ServingCounters.model_validate({_WIRE[k]: {SUM_KEY: v} for k, v in kinds.items()})
            for pod, kinds in serving.items()
        },
    )


_WIRE = {"requests": "requests", "tokens_in": "tokensIn", "tokens_out": "tokensOut"}


# ----------------------------------------------------------------------------- advancing


def _hist_delta(last: Sequence[float] | None, cur: Sequence[float]) -> tuple[list[float], bool]:
    """Per-bound growth of a cumulative histogram, and whether any bound went down."""
    if not cur:
        return [], False
    if not last or len(last) != len(cur):
        return list(cur), False
    out, down = [], False
    for a, b in zip(last, cur, strict=True):
        d, dec = _grow(a, b)
        out.append(d)
        down |= dec
    return out, down


def _grow(last: float, cur: float) -> tuple[float, bool]:
    """(delta, decreased) of a counter within one incarnation."""
    if cur >= last:
        return cur - last, False
    return 0.0, True


def _container_delta(
    entry: SeriesCounters | None, obs: ContainerObs, folded: Mapping[str, float], last_read_s: float | None = None,
    read_s: float | None = None,
) -> tuple[SeriesCounters | None, Increment, str | None]:
    """New ledger entry, the increment, and an anomaly kind (or None). ``last_read_s``: unix
    time of the ledger's last observation (its ``observedAt``); ``read_s``: this one's."""
    inc = Increment()
    new = SeriesCounters(
        node=obs.node, start=obs.start, gpu_j=obs.gpu_j, cpu_j=obs.cpu_j, dram_j=obs.dram_j,
        swings=obs.swings, alloc_s=dict(obs.alloc_s), gpus=len(obs.gpus),
        power_s=list(obs.power_s) or None, limit_w=obs.limit_w, read_at=read_s if obs.start is None else None,
    )
    if entry is None:
        watermark = folded.get(obs.node or "")
        if obs.start is not None and watermark is not None and obs.start <= watermark:
            return None, inc, "StaleSeries"
        _fill(inc, obs.gpu_j, obs.cpu_j, obs.dram_j, obs.swings, obs.alloc_s, obs.node)
        _fill_power(inc, list(obs.power_s), obs.limit_w)
        return new, inc, None
    # when these start-less counters were last read: the ledger's observedAt may be later
    # without them in it (a read before the new exporter published them: its start, though
    # older than that read, is newer than the counters the ledger holds)
    since_s = entry.read_at if entry.read_at is not None else last_read_s
    if entry.start is None and obs.start is not None and since_s is not None and obs.start > since_s:
        # counters that began after the ledger's last read of this series: from zero
        _fill(inc, obs.gpu_j, obs.cpu_j, obs.dram_j, obs.swings, obs.alloc_s, obs.node)
        _fill_power(inc, list(obs.power_s), obs.limit_w)
        return new, inc, None
    if entry.start is None and obs.start is not None:  # the same counters, now with their start
        entry = entry.model_copy(update={"start": obs.start, "read_at": None})
    if entry.start is not None and obs.start is not None:
        if obs.start < entry.start:
            return entry, inc, "StaleSeries"
        if obs.start > entry.start:  # the counters really restarted from zero
            _fill(inc, obs.gpu_j, obs.cpu_j, obs.dram_j, obs.swings, obs.alloc_s, obs.node)
            _fill_power(inc, list(obs.power_s), obs.limit_w)
            return new, inc, None
        # same incarnation: growth, or a rollback (never a reset). The baseline is the
        # high-water mark: after a rollback only growth above the highest value counted is new
        decreased = False
        deltas = []
        for last, cur in ((entry.gpu_j, obs.gpu_j), (entry.cpu_j, obs.cpu_j), (entry.dram_j, obs.dram_j), (entry.swings, obs.swings)):
            d, down = _grow(last, cur)
            deltas.append(d)
            decreased |= down
        alloc: dict[str, float] = {}
        for model, cur in obs.alloc_s.items():
            d, down = _grow(entry.alloc_s.get(model, 0.0), cur)
            alloc[model] = d
            decreased |= down
        hist, down = _hist_delta(entry.power_s, obs.power_s)
        decreased |= down
        gpu_d, cpu_d, dram_d, swings_d = deltas
        _fill(inc, gpu_d, cpu_d, dram_d, swings_d, alloc, obs.node)
        _fill_power(inc, hist, obs.limit_w)
        if decreased:
            same = entry.power_s is not None and len(entry.power_s) == len(obs.power_s)
            new = new.model_copy(update={
                "gpu_j": max(entry.gpu_j, obs.gpu_j), "cpu_j": max(entry.cpu_j, obs.cpu_j),
                "dram_j": max(entry.dram_j, obs.dram_j), "swings": max(entry.swings, obs.swings),
                "alloc_s": {m: max(entry.alloc_s.get(m, 0.0), obs.alloc_s.get(m, 0.0)) for m in {*entry.alloc_s, *obs.alloc_s}},
                "power_s": [max(a, b) for a, b in zip(entry.power_s or (), obs.power_s, strict=True)] if same else new.power_s,
            })
        return new, inc, "Rollback" if decreased else None
    # no start on one side: the classic rule, lower means reset (the new value is new)
    deltas = [
        cur if cur < last else cur - last
        for last, cur in ((entry.gpu_j, obs.gpu_j), (entry.cpu_j, obs.cpu_j), (entry.dram_j, obs.dram_j), (entry.swings, obs.swings))
    ]
    alloc = {}
    for model, cur in obs.alloc_s.items():
        last = entry.alloc_s.get(model, 0.0)
        alloc[model] = cur if cur < last else cur - last
    hist, down = _hist_delta(entry.power_s, obs.power_s)
    gpu_d, cpu_d, dram_d, swings_d = deltas
    _fill(inc, gpu_d, cpu_d, dram_d, swings_d, alloc, obs.node)
    _fill_power(inc, list(obs.power_s) if down else hist, obs.limit_w)
    return new, inc, None


def _fill(
    inc: Increment, gpu_j: float, cpu_j: float, dram_j: float, swings: float, alloc: Mapping[str, float],
    node: str | None = None,
) -> None:
    inc.gpu_j += gpu_j
    inc.cpu_j += cpu_j
    inc.dram_j += dram_j
    inc.swings += swings
    for model, s in alloc.items():
        if s:
            inc.alloc_s[model] = inc.alloc_s.get(model, 0.0) + s
            inc.alloc_nodes[(model, node)] = inc.alloc_nodes.get((model, node), 0.0) + s


def _fill_power(inc: Increment, hist: list[float], limit_w: float | None) -> None:
    """Add a container's histogram growth (seconds per bound) to the increment."""
    if not hist:
        return
    if not inc.power_s:
        inc.power_s = [0.0] * len(hist)
    if len(inc.power_s) != len(hist):
        return
    inc.power_s = [a + b for a, b in zip(inc.power_s, hist, strict=True)]
    if limit_w:
        inc.power_limit_s += limit_w * hist[-1]  # the last bound (+Inf) holds every second


def _restart_bound(kind: str, elapsed_s: float, rates: Mapping[str, float] | None, rate_scale: float = 1.0) -> float:
    """The largest value a counter of ``kind`` can show ``elapsed_s`` after an engine restart:
    ``RESTART_RATE_MARGIN`` x the run's average rate x the time (at least 1 s, and at least
    10^-4 of the physical ceiling), never above the physical ceiling; just the ceiling while
    the run has no rate yet."""
    ceiling = MAX_RATE[kind] * rate_scale * elapsed_s
    rate = (rates or {}).get(kind, 0.0)
    if not rate > 0:
        return ceiling
    return min(ceiling, max(MAX_RATE[kind] * rate_scale * 1e-4, RESTART_RATE_MARGIN * rate * max(elapsed_s, 1.0)))


def _serving_sets(entry: ServingCounters | None, obs: ServingObs, kind: str) -> tuple[dict[str, float], Mapping[str, float]]:
    """This page's and the ledger's values of one kind, per label set (summed when too many,
    or when the ledger kept a 0.1 sum)."""
    cur_sets = dict(obs.counters.get(kind, {}))
    if len(cur_sets) > MAX_LABEL_SETS:
        cur_sets = {SUM_KEY: math.fsum(cur_sets.values())}
    last_sets: Mapping[str, float] = {} if entry is None else getattr(entry, _ATTR[_WIRE[kind]])
    if SUM_KEY in last_sets and SUM_KEY not in cur_sets:  # a 0.1 ledger kept sums
        last_sets = {SUM_KEY: last_sets[SUM_KEY]}
        cur_sets = {SUM_KEY: math.fsum(cur_sets.values())}
    return cur_sets, last_sets


def _serving_delta(
    entry: ServingCounters | None, obs: ServingObs, elapsed_s: float | None, rates: Mapping[str, float] | None = None,
    rate_scale: float = 1.0,
) -> tuple[ServingCounters, dict[str, float], list[str]]:
    """New entry, deltas per kind, anomaly kinds. ``rates``: the run's average rate per kind
    (per second), which bounds what a restarted engine without a start time (nor known
    container restarts) can show; ``rate_scale`` multiplies the ceilings :data:`MAX_RATE`."""
    anomalies: list[str] = []
    deltas: dict[str, float] = {}
    sets = {kind: _serving_sets(entry, obs, kind) for kind in _WIRE}
    restarted = entry is not None and obs.start is not None and entry.start is not None and obs.start > entry.start
    # Without a start time, the pod's container restarts tell an engine restart from a source
    # that went backwards (a replica behind the same URL, a page served stale): a drop is a
    # restart only if they rose. Only when either side lacks them is a drop judged by its size.
    last_restarts = None if entry is None else entry.restarts
    restarts_rose = (None if obs.start is not None or last_restarts is None or obs.restarts is None
                     else obs.restarts > last_restarts)  # None: not known
    if restarts_rose:
        restarted = any(cur < last_sets.get(d, -math.inf) for cur_sets, last_sets in sets.values() for d, cur in cur_sets.items())
    progressed = entry is None or restarted  # the counters' level was (re)established by this read
    new_values: dict[str, dict[str, float]] = {}
    for kind, wire in _WIRE.items():
        cur_sets, last_sets = sets[kind]
        total = 0.0
        for digest, cur in cur_sets.items():
            last = last_sets.get(digest)
            if last is None or restarted:
                d = cur  # a new label set, pod or engine process: all of it is new
            elif cur >= last:
                d = cur - last
                progressed = progressed or d > 0
            elif (obs.start is None and restarts_rose is None and elapsed_s is not None
                  and cur <= _restart_bound(kind, elapsed_s, rates, rate_scale)):
                d = cur  # nothing to tell by: a plausible restart of the engine
                progressed = True
            else:
                # lower, same engine: not a reset (e.g. replicas behind one URL answering in
                # turn). Keep the high-water mark: rebasing down would count every swing back up.
                d = 0.0
                cur_sets[digest] = last
                anomalies.append("ServingInconsistent")
            if entry is not None and elapsed_s is not None and d > MAX_RATE[kind] * rate_scale * max(elapsed_s, 1.0):
                anomalies.append("ServingImplausible")
                d = 0.0
                if last is not None and not restarted:
                    cur_sets[digest] = last
            total += d
        deltas[kind] = total
        # a label set missing from this page keeps its last value: if it comes back, only
        # its growth is new (a vanished label set is not a reset)
        kept = cur_sets if restarted else {**last_sets, **cur_sets}
        new_values[wire] = kept if len(kept) <= MAX_LABEL_SETS else cur_sets
    # The restarts stay those at which the counters' level was established until they move
    # on: a page served stale (cached, or by a replica) just after a container restart is not
    # the new level, and the drop that follows it is still the restart's.
    restarts = obs.restarts if progressed or last_restarts is None else last_restarts
    new = ServingCounters.model_validate({"start": obs.start, "restarts": restarts, **new_values})
    return new, deltas, anomalies


_ATTR = {"requests": "requests", "tokensIn": "tokens_in", "tokensOut": "tokens_out"}


def advance(
    ledger: Ledger,
    containers: Mapping[tuple[str, str], ContainerObs] | None,
    serving: Mapping[str, ServingObs] | None,
    *,
    live_pods: Iterable[str],
    complete: bool,
    elapsed_s: float | None,
    serving_rate_scale: float = 1.0,
    read_s: float | None = None,
) -> tuple[Ledger, Increment, list[Anomaly]]:
    """Advance the ledger by one observation (pure).

    ``containers``: (pod, container) -> counters, None when nothing was read; ``serving``:
    pod -> engine counters; ``live_pods``: the run's pods that still exist; ``complete``:
    every exporter answered (only then may absent series be folded); ``elapsed_s``: wall
    seconds since the ledger's last observation (plausibility of serving counters);
    ``serving_rate_scale``: multiplies the serving counters' ceilings :data:`MAX_RATE`;
    ``read_s``: unix time of this observation (kept with counters that have no start).
    Returns the new ledger (totals unchanged: see :func:`apply_increment`), the increment
    and the anomalies found.
    """
    live = set(live_pods)
    last_read_s = rfc3339.parse(ledger.observed_at)
    series = dict(ledger.series or {})
    serving_entries = dict(ledger.serving or {})
    folded = dict(ledger.folded or {})
    if ledger.counters:  # written by operator 0.1
        old_series, old_serving = migrate_counters(ledger.counters, last_read_s)
        for k, v in old_series.items():
            series.setdefault(k, v)
        for k, sv in old_serving.items():
            serving_entries.setdefault(k, sv)
    inc = Increment()
    anomalies: list[Anomaly] = []
    seen: set[str] = set()
    t = ledger.totals
    rates = None
    if t is not None and t.active_s > 0:
        rates = {"requests": t.requests / t.active_s, "tokens_in": t.tokens_in / t.active_s, "tokens_out": t.tokens_out / t.active_s}
    for (pod, container), obs in sorted((containers or {}).items()):
        name = series_name(pod, container)
        seen.add(name)
        entry, part, problem = _container_delta(series.get(name), obs, folded, last_read_s, read_s)
        if entry is not None:
            series[name] = entry
        if problem:
            anomalies.append(Anomaly(problem, name))
        inc.gpu_j += part.gpu_j
        inc.cpu_j += part.cpu_j
        inc.dram_j += part.dram_j
        inc.swings += part.swings
        for model, sec in part.alloc_s.items():
            inc.alloc_s[model] = inc.alloc_s.get(model, 0.0) + sec
        for key, sec in part.alloc_nodes.items():
            inc.alloc_nodes[key] = inc.alloc_nodes.get(key, 0.0) + sec
        _fill_power(inc, part.power_s, None)
        inc.power_limit_s += part.power_limit_s
        if any(part.alloc_s.values()):
            inc.gpus += len(obs.gpus)
    for pod, sobs in sorted((serving or {}).items()):
        serving_entry, deltas, problems = _serving_delta(serving_entries.get(pod), sobs, elapsed_s, rates, serving_rate_scale)
        serving_entries[pod] = serving_entry
        inc.requests += deltas.get("requests", 0.0)
        inc.tokens_in += deltas.get("tokens_in", 0.0)
        inc.tokens_out += deltas.get("tokens_out", 0.0)
        anomalies.extend(Anomaly(p, pod) for p in dict.fromkeys(problems))
    if containers is not None and complete:
        for name, entry in list(series.items()):
            pod = name.split("/", 1)[0]
            if name in seen or pod in live:
                continue
            del series[name]  # the pod is gone and no exporter reports it: fold
            if entry.start is not None and entry.node:
                folded[entry.node] = max(folded.get(entry.node, entry.start), entry.start)
    for pod in list(serving_entries):
        if pod not in live and pod not in (serving or {}):
            del serving_entries[pod]
    new = ledger.model_copy(
        update={"series": series or None, "serving": serving_entries or None, "folded": folded or None, "counters": None}
    )
    return new, inc, anomalies


# ----------------------------------------------------------------------------- totals


def held_seconds(inc: Increment, start_s: float, end_s: float) -> float:
    """Seconds the run's GPUs were held during the increment, on the exporters' measurement
    clock: GPU device-seconds / GPUs (``mlfootprint_pod_gpu_allocation_seconds_total`` is
    counted on the same clock as the energy counters, so a simulated clock running faster
    than the wall clock cancels out of energy / held time). Without allocation counters
    (an exporter that lacks them) the wall-clock length of the interval is used."""
    alloc_s = sum(inc.alloc_s.values())
    if alloc_s > 0 and inc.gpus > 0:
        return alloc_s / inc.gpus
    return end_s - start_s


@dataclass(frozen=True)
class EmbodiedPlan:
    """How a (GPU model, node) pair is charged embodied impact (see accounting.embodied):
    per GPU ``gpu`` over the GPU lifetime, and the node's ``host`` spread over its
    ``gpus_per_node`` GPUs over the host lifetime (None: no host share, e.g. a per-GPU figure
    that already covers the whole server)."""

    gpu_key: str
    gpu: EmbodiedSpec
    host_key: str | None = None
    host: EmbodiedSpec | None = None
    gpus_per_node: int = 8


#: (GPU model, node name or None) -> how its device-seconds are charged
EmbodiedResolver = Callable[[str, "str | None"], EmbodiedPlan]


def _with_embodied(factors: Factors, inc: Increment, embodied: EmbodiedResolver | None) -> tuple[Factors, dict[str, float], dict[str, float]]:
    """Factors whose embodied tables hold exactly the plans of this increment's GPUs, and the
    GPU-hours and host share-hours to charge."""
    gpu_hours: dict[str, float] = {}
    host_hours: dict[str, float] = {}
    if embodied is None:
        return factors, {m: s / 3600.0 for m, s in inc.alloc_s.items() if s > 0}, host_hours
    gpu_specs: dict[str, EmbodiedSpec] = {}
    host_specs: dict[str, EmbodiedSpec] = {}
    for (model, node), seconds in inc.alloc_nodes.items():
        if seconds <= 0:
            continue
        plan = embodied(model, node)
        gpu_specs[plan.gpu_key] = plan.gpu
        gpu_hours[plan.gpu_key] = gpu_hours.get(plan.gpu_key, 0.0) + seconds / 3600.0
        if plan.host is not None and plan.host_key is not None and plan.gpus_per_node > 0:
            host_specs[plan.host_key] = plan.host
            host_hours[plan.host_key] = host_hours.get(plan.host_key, 0.0) + seconds / 3600.0 / plan.gpus_per_node
    return factors.model_copy(update={"embodied_gpu": gpu_specs, "embodied_host": host_specs}), gpu_hours, host_hours


def apply_increment(
    totals: LedgerTotals, inc: Increment, factors: Factors, start_s: float, end_s: float,
    *, embodied: EmbodiedResolver | None = None, workload: bool = False,
) -> LedgerTotals:
    """New totals after adding ``inc``, measured over ``[start_s, end_s)`` under ``factors``.

    Carbon, water and embodied impact come from :func:`compute_footprint` (METHODOLOGY §3-4):
    with a time-varying carbon intensity the increment is spread uniformly over its interval
    and integrated against the intensity, so the ledger integrates per interval (never total
    x average). Embodied impact is charged by part: ``embodied`` says, per GPU model and node,
    the per-GPU figure and the node's host figure (the host share is the fraction of the
    node's GPUs held x time); without it, ``factors.embodied_gpu`` per GPU model. ``heldS``
    (:func:`held_seconds`) is the denominator of ``status.power.avgW``; ``activeS`` the
    wall-clock seconds of intervals with GPU energy. ``workload``: add the interval to the
    per-request energy model's statistics (InferenceService).
    """
    if inc.is_empty():
        return totals
    if not end_s > start_s:
        start_s = end_s - 1e-3  # a zero-length interval still carries its energy
    t = totals.model_dump()
    intervals = [
        EnergyInterval(start_s=start_s, end_s=end_s, component=comp, energy_j=e)
        for comp, e in (("gpu", inc.gpu_j), ("cpu", inc.cpu_j), ("dram", inc.dram_j))
        if e > 0
    ]
    charged, gpu_hours, host_hours = _with_embodied(factors, inc, embodied)
    if intervals or gpu_hours:
        fp = compute_footprint(Usage(intervals=intervals, gpu_hours=gpu_hours, host_hours=host_hours), charged)
        t["it_j"] += fp.energy_it_total_j
        t["facility_j"] += fp.energy_facility_total_j
        t["co2e_op_g"] += fp.operational_co2e_g
        if fp.operational_market_co2e_g is not None:
            t["co2e_market_g"] = (t["co2e_market_g"] or 0.0) + fp.operational_market_co2e_g
        t["co2e_emb_g"] += fp.embodied_co2e_g or 0.0
        t["water_on_l"] += fp.water_onsite_l
        t["water_off_l"] += fp.water_offsite_l
        t["water_emb_l"] += fp.embodied_water_l or 0.0
        for share in fp.embodied:
            part = "host" if share.kind == "host" else "gpu"
            t[f"co2e_emb_{part}_g"] += share.co2e_g
            t[f"water_emb_{part}_l"] += share.water_l
    t["gpu_j"] += inc.gpu_j
    t["cpu_j"] += inc.cpu_j
    t["dram_j"] += inc.dram_j
    by_model = dict(t["alloc_s_by_model"] or {})
    for model, s in inc.alloc_s.items():
        t["alloc_s"] += s
        by_model[model] = by_model.get(model, 0.0) + s
    t["alloc_s_by_model"] = by_model or None
    if inc.gpu_j > 0:
        t["active_s"] += end_s - start_s
        t["held_s"] += held_seconds(inc, start_s, end_s)
    t["swings"] += inc.swings
    t["requests"] += inc.requests
    t["tokens_in"] += inc.tokens_in
    t["tokens_out"] += inc.tokens_out
    if inc.power_s:
        old = t["power_s"] or [0.0] * len(inc.power_s)
        if len(old) == len(inc.power_s):
            t["power_s"] = [a + b for a, b in zip(old, inc.power_s, strict=True)]
            t["power_limit_s"] += inc.power_limit_s
    if workload and inc.requests > 0:
        old = dict(t["workload"] or {})
        old["n"] = old.pop("intervals", 0)
        stats = WorkloadStats.model_validate(old).add(
            IntervalAggregate(energy_j=inc.gpu_j, tokens_in=inc.tokens_in, tokens_out=inc.tokens_out, requests=inc.requests)
        )
        new = stats.model_dump()
        new["intervals"] = new.pop("n")
        t["workload"] = new
    return LedgerTotals.model_validate(t)


def ledger_from_status(raw: Mapping[str, object] | None) -> Ledger:
    """The ledger stored in a status, in any version this operator wrote (0.1 totals kept
    per-model device-seconds as ``allocS:<model>`` keys). Raises pydantic's ValidationError
    for a ledger that is not one (then nothing may be added to it)."""
    doc = dict(raw or {})
    totals = dict(doc.get("totals") or {})  # type: ignore[call-overload]  # untyped JSON; dict() of a non-object raises
    by_model = {k.split(":", 1)[1]: v for k, v in totals.items() if k.startswith("allocS:")}
    totals = {k: v for k, v in totals.items() if not k.startswith("allocS:")}
    if by_model:
        totals.setdefault("allocSByModel", by_model)
    doc["totals"] = totals
    return Ledger.model_validate(doc)

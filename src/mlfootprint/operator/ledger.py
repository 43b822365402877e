"""The status ledger: counter deltas and accumulated totals (pure functions, no I/O).

Every refresh reads cumulative counters (per metric series) and turns them into
increments with the classic Prometheus counter rule (the same one ``increase()`` uses):

* ``delta = cur - last`` when ``cur >= last``;
* ``delta = cur`` when ``cur < last`` (a reset: exporter restart, driver reload — the
  counter restarted from zero, so everything it holds is new);
* ``delta = cur`` for a series seen for the first time (exporter counters start at the
  exporter's first observation of the container, docs/metrics.md).

The last value of each series lives in ``status.ledger.counters`` and the accumulated
quantities in ``status.ledger.totals``; both are written in the same status patch, so an
operator restart resumes from exactly what was accounted: nothing dropped, nothing doubled.

Increments are converted into carbon and water with the factors in force for the
interval ``[start_s, end_s)`` they were measured in (``mlfootprint.accounting.footprint``);
a change of factors therefore applies from its time forward and never rewrites history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlfootprint.accounting.factors import Factors
from mlfootprint.accounting.footprint import compute_footprint
from mlfootprint.accounting.inputs import EnergyInterval, Usage

__all__ = [
    "COUNTER_KINDS",
    "Increment",
    "advance_counters",
    "apply_increment",
    "counter_delta",
    "held_seconds",
    "increment_from_deltas",
    "series_key",
]

#: Kinds of counter series a run's ledger tracks (the prefix of each series key).
COUNTER_KINDS = ("gpu", "cpu", "dram", "alloc", "swings", "requests", "tokens_in", "tokens_out")


def series_key(kind: str, *parts: str) -> str:
    """Stable ledger key of one counter series, e.g. ``gpu|pod-0|main|GPU-1234``."""
    if kind not in COUNTER_KINDS:
        raise ValueError(f"unknown counter kind {kind!r}")
    return "|".join((kind, *parts))


def counter_delta(last: float | None, cur: float) -> float:
    """Increase of a cumulative counter since ``last`` (None: never seen), reset-aware."""
    if cur < 0:
        raise ValueError(f"counter value must be >= 0, got {cur}")
    if last is None or cur < last:
        return cur
    return cur - last


def advance_counters(
    last: Mapping[str, float], observed: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Deltas of the observed series and the new ``counters`` map.

    Series not observed this time keep their last value (a pod that ended, an exporter that
    did not answer): when they come back the reset rule applies.
    """
    deltas: dict[str, float] = {}
    counters = dict(last)
    for key, cur in observed.items():
        d = counter_delta(last.get(key), cur)
        if d:
            deltas[key] = d
        counters[key] = cur
    return deltas, counters


@dataclass
class Increment:
    """What a run used during one interval (summed over its series)."""

    gpu_j: float = 0.0
    cpu_j: float = 0.0
    dram_j: float = 0.0
    alloc_s: dict[str, float] = field(default_factory=dict)  # GPU model -> device-seconds held
    gpus: int = 0  # distinct GPUs whose energy rose in the interval
    swings: float = 0.0
    requests: float = 0.0
    tokens_in: float = 0.0
    tokens_out: float = 0.0

    @property
    def it_j(self) -> float:
        return self.gpu_j + self.cpu_j + self.dram_j

    def is_empty(self) -> bool:
        return not (self.it_j or any(self.alloc_s.values()) or self.swings or self.requests or self.tokens_out)


def increment_from_deltas(deltas: Mapping[str, float]) -> Increment:
    """Sum series deltas by kind; ``alloc`` keys end with the GPU model, ``gpu`` keys with
    the GPU's UUID (``gpus`` counts the distinct GPUs with an energy increase)."""
    inc = Increment()
    gpus: set[str] = set()
    for key, d in deltas.items():
        kind, _, rest = key.partition("|")
        if kind == "gpu":
            inc.gpu_j += d
            if d > 0:
                uuid = rest.rsplit("|", 1)[-1]
                gpus.add(uuid or rest)  # no UUID label: one GPU per series
        elif kind == "cpu":
            inc.cpu_j += d
        elif kind == "dram":
            inc.dram_j += d
        elif kind == "alloc":
            model = rest.rsplit("|", 1)[-1] or "unknown"
            inc.alloc_s[model] = inc.alloc_s.get(model, 0.0) + d
        elif kind == "swings":
            inc.swings += d
        elif kind == "requests":
            inc.requests += d
        elif kind == "tokens_in":
            inc.tokens_in += d
        elif kind == "tokens_out":
            inc.tokens_out += d
    inc.gpus = len(gpus)
    return inc


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


def _add(totals: dict[str, float], key: str, value: float) -> None:
    if value:
        totals[key] = totals.get(key, 0.0) + value


def apply_increment(
    totals: Mapping[str, float], inc: Increment, factors: Factors, start_s: float, end_s: float
) -> dict[str, float]:
    """New totals after adding ``inc``, measured over ``[start_s, end_s)`` under ``factors``.

    Carbon, water and embodied impact come from :func:`compute_footprint` (METHODOLOGY §3-4):
    with a time-varying carbon intensity the increment is spread uniformly over its interval
    and integrated against the intensity, so the ledger integrates per interval (never total
    x average). Keys (units in the name): gpuJ, cpuJ, dramJ, itJ, facilityJ, co2eOpG,
    co2eMarketG, co2eEmbG, waterOnL, waterOffL, waterEmbL, allocS, allocS:<model>, activeS
    (wall-clock seconds of intervals with GPU energy), heldS (:func:`held_seconds`, the
    denominator of ``status.power.avgW``), swings, requests, tokensIn, tokensOut.
    """
    out = dict(totals)
    if inc.is_empty():
        return out
    if not end_s > start_s:
        start_s = end_s - 1e-3  # a zero-length interval still carries its energy
    intervals = [
        EnergyInterval(start_s=start_s, end_s=end_s, component=comp, energy_j=e)
        for comp, e in (("gpu", inc.gpu_j), ("cpu", inc.cpu_j), ("dram", inc.dram_j))
        if e > 0
    ]
    gpu_hours = {m: s / 3600.0 for m, s in inc.alloc_s.items() if s > 0}
    fp = compute_footprint(Usage(intervals=intervals, gpu_hours=gpu_hours), factors)
    _add(out, "gpuJ", inc.gpu_j)
    _add(out, "cpuJ", inc.cpu_j)
    _add(out, "dramJ", inc.dram_j)
    _add(out, "itJ", fp.energy_it_total_j)
    _add(out, "facilityJ", fp.energy_facility_total_j)
    _add(out, "co2eOpG", fp.operational_co2e_g)
    if fp.operational_market_co2e_g is not None:
        _add(out, "co2eMarketG", fp.operational_market_co2e_g)
    _add(out, "co2eEmbG", fp.embodied_co2e_g or 0.0)
    _add(out, "waterOnL", fp.water_onsite_l)
    _add(out, "waterOffL", fp.water_offsite_l)
    _add(out, "waterEmbL", fp.embodied_water_l or 0.0)
    for model, s in inc.alloc_s.items():
        _add(out, "allocS", s)
        _add(out, f"allocS:{model}", s)
    if inc.gpu_j > 0:
        if "heldS" not in out and out.get("activeS"):
            # a ledger written before heldS existed: its wall-clock activeS is the held time
            # of every exporter on a real clock (status.power.avgW stays continuous)
            out["heldS"] = out["activeS"]
        _add(out, "activeS", end_s - start_s)
        _add(out, "heldS", held_seconds(inc, start_s, end_s))
    _add(out, "swings", inc.swings)
    _add(out, "requests", inc.requests)
    _add(out, "tokensIn", inc.tokens_in)
    _add(out, "tokensOut", inc.tokens_out)
    return out

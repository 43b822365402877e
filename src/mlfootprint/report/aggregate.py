"""Pure report arithmetic: period pro-rating, idle energy, selection, grouping, cost,
lifecycle per model and time series. Plain data in (a :class:`RunTable`), plain data out
(a :class:`Report`); no I/O. Every step is a numpy operation over all rows (linear).

Rules (docs/report.md has the worked examples):

* **Period.** A row's figures are its totals over [start, end] (end = completion, else last
  update, else now). With a period, a row counts with the fraction of its interval inside
  the period (uniform rate assumed; Prometheus mode gives exact period figures instead).
  Rows without a start time are left out of bounded periods and counted in the notes.
* **Idle** (METHODOLOGY §2). Idle rows carry IT energy no pod was charged for. Their
  facility energy, carbon and water use the fleet's own ratios over the period
  (Σfacility/ΣIT, Σoperational/ΣIT, Σon-site/ΣIT, Σoff-site/ΣIT); no embodied share.
  ``separate``: one "(idle)" row. ``share``: each idle row is split among the runs of the
  same node pool (all runs when its pool has none) by GPU-hours held (allocation share),
  before any selection, so a team's share does not depend on what else is selected.
* **Cost.** energy cost = facility kWh × price per kWh; carbon cost = total tCO2e
  (location-based operational + embodied) × carbon price per tonne.
* **Lifecycle** per model: development, training, inference (METHODOLOGY §1); development
  as a share of training; breakeven N = (training [+ development]) / footprint per request
  on facility energy, total CO2e and total water (METHODOLOGY §5, accounting.inference);
  equivalents from accounting.equivalents (U.S. EPA factors, cited there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from mlfootprint.accounting.equivalents import Equivalents, equivalents
from mlfootprint.accounting.inference import Breakeven, Impact, breakeven
from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.report.model import COL, PHASES, RunTable
from mlfootprint.report.period import Period, UsageError
from mlfootprint.report.selectors import Selector, validate_label_key

__all__ = [
    "DIMENSIONS",
    "QUANTITIES",
    "Filters",
    "GroupRow",
    "ModelLifecycle",
    "Report",
    "ReportOptions",
    "TimeSeries",
    "build_report",
    "fill_idle",
    "parse_group_by",
    "prorate",
    "share_idle",
]

DIMENSIONS = ("namespace", "phase", "model", "node-pool", "kind")
#: Figures reported per group, in display order (COLUMNS minus token counters).
QUANTITIES: tuple[str, ...] = (
    "gpu_hours",
    "gpu_kwh",
    "host_kwh",
    "it_kwh",
    "facility_kwh",
    "operational_kg",
    "market_kg",
    "embodied_kg",
    "embodied_gpu_kg",
    "embodied_host_kg",
    "total_kg",
    "onsite_l",
    "offsite_l",
    "embodied_l",
    "total_l",
    "requests",
    "cap_saving_kg",
)
#: Stack order of charts: the three phases, then idle energy.
STACKS: tuple[str, ...] = (*PHASES, "idle")
NONE_KEY = "(none)"
IDLE_KEY = "(idle)"


def parse_group_by(text: str, flag: str = "--group-by") -> tuple[str, ...]:
    """``namespace,label:team`` -> ("namespace", "label:team"); UsageError when unknown."""
    dims: list[str] = []
    for raw in text.split(","):
        dim = raw.strip()
        if dim.startswith("label:"):
            key = dim[len("label:") :]
            why = validate_label_key(key) if key else "label: needs a key, e.g. label:team"
            if why:
                raise UsageError(flag, why)
        elif dim == "nodepool":
            dim = "node-pool"
        elif dim not in DIMENSIONS:
            raise UsageError(
                flag, f"unknown grouping {dim!r}; use {', '.join(DIMENSIONS)} or label:KEY (comma-separated)"
            )
        if dim in dims:
            raise UsageError(flag, f"{dim!r} given twice")
        dims.append(dim)
    return tuple(dims)


@dataclass(frozen=True)
class Filters:
    namespaces: tuple[str, ...] = ()
    selector: Selector | None = None
    phases: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.namespaces or self.selector or self.phases or self.models)


@dataclass(frozen=True)
class ReportOptions:
    group_by: tuple[str, ...] = ("namespace",)
    idle: Literal["separate", "share"] = "separate"
    price_per_kwh: float | None = None
    carbon_price_per_tonne: float | None = None
    currency: str = ""
    breakeven_basis: Literal["training+development", "training"] = "training+development"
    now_s: float = 0.0


@dataclass(frozen=True)
class GroupRow:
    key: tuple[str, ...]
    runs: int
    values: dict[str, float | None]  # QUANTITIES; market_kg None when no run reported it
    idle_shared_kwh: float  # facility kWh of idle energy shared into this group
    stack_facility_kwh: dict[str, float]  # by STACKS
    stack_total_kg: dict[str, float]
    cost: dict[str, float] | None  # energy, carbon, total

    @property
    def label(self) -> str:
        return " / ".join(self.key)


@dataclass(frozen=True)
class PhaseFigures:
    runs: int
    gpu_hours: float
    facility_kwh: float
    total_kg: float
    total_l: float


@dataclass(frozen=True)
class ModelLifecycle:
    model: str
    phases: dict[str, PhaseFigures]
    development_share_energy: float | None  # development / training, facility kWh
    development_share_co2e: float | None
    requests: float
    facility_kwh_per_1k_requests: float | None
    co2e_g_per_request: float | None
    breakeven: Breakeven | None
    breakeven_basis: str
    equivalents: Equivalents


@dataclass(frozen=True)
class TimeSeries:
    bucket_s: float
    starts_s: list[float]
    facility_kwh: dict[str, list[float]]  # by STACKS
    total_kg: dict[str, list[float]]


@dataclass(frozen=True)
class Report:
    period: Period
    source: dict[str, object]
    options: ReportOptions
    dimensions: tuple[str, ...]
    groups: list[GroupRow]
    idle: GroupRow | None
    total: GroupRow
    lifecycle: list[ModelLifecycle]
    series: TimeSeries | None
    equivalents: Equivalents
    market_coverage: tuple[int, int]  # runs with a market-based figure, runs
    notes: list[str] = field(default_factory=list)
    generated_s: float = 0.0


# ----------------------------------------------------------------------------- steps


def prorate(table: RunTable, period: Period, now_s: float) -> tuple[RunTable, int]:
    """Scale each row by the fraction of [start, end] inside the period; drop rows with none.

    Returns the new table (start/end clipped to the period) and how many rows were left
    out for lack of a start time (only when the period is bounded).
    """
    start = table.start_s
    end = np.where(np.isnan(table.end_s), now_s, table.end_s)
    end = np.where(np.isnan(start), end, np.maximum(end, np.nan_to_num(start, nan=-np.inf)))
    if not period.bounded:
        return RunTable(**{**table.__dict__, "end_s": np.where(np.isnan(start), table.end_s, end)}), 0
    lo = -np.inf if period.since_s is None else period.since_s
    hi = np.inf if period.until_s is None else period.until_s
    no_start = np.isnan(start)
    clip_start = np.maximum(start, lo)
    clip_end = np.minimum(end, hi)
    duration = end - start
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(
            duration > 0,
            np.clip((clip_end - clip_start) / np.where(duration > 0, duration, 1.0), 0.0, 1.0),
            ((start >= lo) & (start < hi)).astype(np.float64),
        )
    frac[no_start] = 0.0
    keep = frac > 0
    values = table.values[keep] * frac[keep, None]
    out = table.take(keep, values)
    out = RunTable(**{**out.__dict__, "start_s": clip_start[keep], "end_s": np.maximum(clip_end[keep], clip_start[keep])})
    return out, int(no_start.sum())


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def fill_idle(table: RunTable) -> tuple[RunTable, list[str]]:
    """Derive the idle rows' missing figures from the fleet's ratios (see module doc)."""
    idle = table.is_idle
    notes: list[str] = []
    if not idle.any():
        return table, notes
    v = table.values.copy()
    runs = v[~idle]
    it = float(runs[:, COL["it_kwh"]].sum())
    market_rows = runs[~np.isnan(runs[:, COL["market_kg"]])]
    ratios = {
        "facility_kwh": _ratio(float(runs[:, COL["facility_kwh"]].sum()), it) or 1.0,
        "operational_kg": _ratio(float(runs[:, COL["operational_kg"]].sum()), it),
        "onsite_l": _ratio(float(runs[:, COL["onsite_l"]].sum()), it),
        "offsite_l": _ratio(float(runs[:, COL["offsite_l"]].sum()), it),
    }
    market_ratio = (
        _ratio(float(market_rows[:, COL["market_kg"]].sum()), float(market_rows[:, COL["it_kwh"]].sum()))
        if len(market_rows)
        else None
    )
    if it <= 0:
        notes.append("idle energy: no run energy in the period to derive PUE, carbon and water ratios from; PUE 1 and zero carbon/water assumed")
    iv = v[idle]

    def fill(column: str, derived: npt.NDArray[np.float64]) -> None:
        c = COL[column]
        iv[:, c] = np.where(np.isnan(iv[:, c]), derived, iv[:, c])

    fill("it_kwh", np.nan_to_num(iv[:, COL["gpu_kwh"]]) + np.nan_to_num(iv[:, COL["host_kwh"]]))
    it_idle = iv[:, COL["it_kwh"]]
    for column, ratio in ratios.items():
        fill(column, it_idle * ratio)
    if market_ratio is not None:
        fill("market_kg", it_idle * market_ratio)
    for column in ("embodied_kg", "embodied_gpu_kg", "embodied_host_kg", "cap_saving_kg"):
        fill(column, np.zeros(len(iv)))
    fill("embodied_l", np.zeros(len(iv)))
    fill("total_kg", iv[:, COL["operational_kg"]] + iv[:, COL["embodied_kg"]])
    fill("total_l", iv[:, COL["onsite_l"]] + iv[:, COL["offsite_l"]] + iv[:, COL["embodied_l"]])
    for column in ("gpu_hours", "gpu_kwh", "host_kwh", "requests", "input_tokens", "output_tokens"):
        fill(column, np.zeros(len(iv)))
    v[idle] = iv
    notes.append(
        f"idle energy converted with the fleet's ratios over the period: PUE {ratios['facility_kwh']:.3f}, "
        f"{ratios['operational_kg'] * 1000:.1f} gCO2e/kWh (IT), water {ratios['onsite_l']:.3f} L/kWh on-site + "
        f"{ratios['offsite_l']:.3f} L/kWh off-site (IT); no embodied share"
    )
    return table.with_values(v), notes


#: Columns that idle energy adds to when shared (not GPU-hours, embodied or counters).
_SHARED = ("gpu_kwh", "host_kwh", "it_kwh", "facility_kwh", "operational_kg", "market_kg", "total_kg", "onsite_l", "offsite_l", "total_l")


def share_idle(table: RunTable) -> tuple[RunTable, npt.NDArray[np.float64], list[str]]:
    """Split idle rows among runs by GPU-hours within the node pool (module doc).

    Returns the table without idle rows, the values shared into each run (``[rows, COLUMNS]``)
    and notes. Conservation: the shared values sum to the idle rows' values.
    """
    idle = table.is_idle
    runs = table.take(~idle)
    shared = np.zeros_like(runs.values)
    notes: list[str] = []
    if not idle.any():
        return runs, shared, notes
    weight = runs.col("gpu_hours")
    if weight.sum() <= 0:
        notes.append("idle energy could not be shared: no GPU-hours in the period; shown separately")
        return table, np.zeros_like(table.values), notes
    idle_rows = table.take(idle)
    cols = [COL[c] for c in _SHARED]
    for pool in np.unique(idle_rows.node_pool):
        amount = np.nan_to_num(idle_rows.values[idle_rows.node_pool == pool][:, cols]).sum(axis=0)
        mask = runs.node_pool == pool
        if not pool or weight[mask].sum() <= 0:
            if pool:
                notes.append(f"idle energy of node pool {pool!r} shared over all runs (no GPU-hours in that pool)")
            mask = np.ones(len(runs), dtype=bool)
        w = np.where(mask, weight, 0.0)
        shared[:, cols] += (w / w.sum())[:, None] * amount[None, :]
    market = runs.col("market_kg")
    shared[:, COL["market_kg"]] = np.where(np.isnan(market), 0.0, shared[:, COL["market_kg"]])
    values = runs.values + shared
    return runs.with_values(values), shared, notes


def _select(table: RunTable, filters: Filters) -> npt.NDArray[np.bool_]:
    keep = np.ones(len(table), dtype=bool)
    if filters.namespaces:
        keep &= np.isin(table.namespace, np.array(filters.namespaces, dtype=object))
    if filters.phases:
        keep &= np.isin(table.phase, np.array(filters.phases, dtype=object))
    if filters.models:
        keep &= np.isin(table.model, np.array(filters.models, dtype=object))
    if filters.selector is not None:
        sel = filters.selector
        keep &= np.fromiter((sel.matches(lab) for lab in table.labels), dtype=bool, count=len(table))
    return keep


def _dimension(table: RunTable, dim: str) -> npt.NDArray[np.object_]:
    if dim == "namespace":
        arr = table.namespace
    elif dim == "phase":
        arr = table.phase
    elif dim == "model":
        arr = table.model
    elif dim == "node-pool":
        arr = table.node_pool
    elif dim == "kind":
        arr = table.kind
    else:
        key = dim[len("label:") :]
        out = np.empty(len(table), dtype=object)
        out[:] = [lab.get(key, "") for lab in table.labels]
        arr = out
    return np.where(arr == "", NONE_KEY, arr)


def _sums(values: npt.NDArray[np.float64], inverse: npt.NDArray[np.intp], n: int) -> npt.NDArray[np.float64]:
    """Per-group column sums (NaN treated as 0): [n, columns]."""
    clean = np.nan_to_num(values)
    return np.stack([np.bincount(inverse, weights=clean[:, j], minlength=n) for j in range(clean.shape[1])], axis=1)


def _cost(values: dict[str, float | None], options: ReportOptions) -> dict[str, float] | None:
    if options.price_per_kwh is None and options.carbon_price_per_tonne is None:
        return None
    energy = (values["facility_kwh"] or 0.0) * (options.price_per_kwh or 0.0)
    carbon = (values["total_kg"] or 0.0) / 1000.0 * (options.carbon_price_per_tonne or 0.0)
    return {"energy": energy, "carbon": carbon, "total": energy + carbon}


def _row(
    key: tuple[str, ...],
    runs: int,
    sums: npt.NDArray[np.float64],
    market_present: bool,
    idle_fac: float,
    stack_fac: npt.NDArray[np.float64],
    stack_kg: npt.NDArray[np.float64],
    options: ReportOptions,
) -> GroupRow:
    values: dict[str, float | None] = {q: float(sums[COL[q]]) for q in QUANTITIES}
    if not market_present:
        values["market_kg"] = None
    return GroupRow(
        key=key,
        runs=runs,
        values=values,
        idle_shared_kwh=idle_fac,
        stack_facility_kwh={s: float(stack_fac[i]) for i, s in enumerate(STACKS)},
        stack_total_kg={s: float(stack_kg[i]) for i, s in enumerate(STACKS)},
        cost=_cost(values, options),
    )


def _stack_index(table: RunTable) -> npt.NDArray[np.intp]:
    idx = np.full(len(table), len(PHASES), dtype=np.intp)  # idle
    for i, phase in enumerate(PHASES):
        idx[table.phase == phase] = i
    return idx


def _factorize(keys: npt.NDArray[np.object_]) -> tuple[list[str], npt.NDArray[np.intp]]:
    """Sorted unique keys and each row's index into them (a dict pass: linear, no object sort)."""
    uniq = sorted(set(keys.tolist()))
    index = {k: i for i, k in enumerate(uniq)}
    return uniq, np.fromiter((index[k] for k in keys.tolist()), dtype=np.intp, count=len(keys))


def _spread(edges: npt.NDArray[np.float64], start: npt.NDArray[np.float64], end: npt.NDArray[np.float64],
            amount: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Amounts spread uniformly over [start, end], summed per bucket between ``edges``.

    With rate r_i = amount_i / (end_i - start_i), the cumulative amount up to t is
    F(t) = Σ r_i (min(t, end_i) - min(t, start_i)); Σ r_i min(t, x_i) comes from one sort and
    prefix sums, so all buckets cost O(n log n + buckets). Zero-length rows go to the bucket
    holding their start. Times are shifted to the first edge to keep the sums well conditioned.
    """
    t0 = edges[0]
    e = edges - t0
    duration = end - start
    point = duration <= 0
    out = np.zeros(len(edges) - 1)
    if point.any():
        b = np.searchsorted(e, start[point] - t0, side="right") - 1
        ok = (b >= 0) & (b < len(out))
        out += np.bincount(b[ok], weights=amount[point][ok], minlength=len(out))
    span = ~point
    if span.any():
        rate = amount[span] / duration[span]

        def part(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            order = np.argsort(x, kind="stable")
            xs, rs = x[order], rate[order]
            c_rx = np.concatenate([[0.0], np.cumsum(rs * xs)])
            c_r = np.concatenate([[0.0], np.cumsum(rs)])
            k = np.searchsorted(xs, e, side="left")
            out: npt.NDArray[np.float64] = c_rx[k] + e * (c_r[-1] - c_r[k])
            return out

        cumulative = part(end[span] - t0) - part(start[span] - t0)
        out += np.diff(cumulative)
    return out


def _time_series(
    table: RunTable, own_fac: npt.NDArray[np.float64], own_kg: npt.NDArray[np.float64],
    idle_fac: npt.NDArray[np.float64], idle_kg: npt.NDArray[np.float64], period: Period,
) -> TimeSeries | None:
    ok = ~np.isnan(table.start_s)
    if not ok.any():
        return None
    start, end = table.start_s[ok], table.end_s[ok]
    lo = period.since_s if period.since_s is not None else float(start.min())
    hi = period.until_s if period.until_s is not None else float(end.max())
    span = max(hi - lo, 1.0)
    if span <= 3 * 86400:
        bucket = 3600.0
    else:
        bucket = 86400.0 * max(1, math.ceil(span / 86400.0 / 120))
    lo = math.floor(lo / bucket) * bucket if bucket <= 86400 else math.floor(lo / 86400) * 86400
    n = max(1, math.ceil((hi - lo) / bucket))
    edges = lo + bucket * np.arange(n + 1, dtype=np.float64)
    stack = _stack_index(table)[ok]
    fo, ko, fi, ki = own_fac[ok], own_kg[ok], idle_fac[ok], idle_kg[ok]
    idle_i = len(PHASES)
    fac: dict[str, list[float]] = {}
    kg: dict[str, list[float]] = {}
    for i, name in enumerate(STACKS):
        mask = stack == i
        if i == idle_i:  # idle rows' own energy plus what was shared into runs
            f = _spread(edges, start, end, np.where(mask, fo, 0.0) + fi)
            k = _spread(edges, start, end, np.where(mask, ko, 0.0) + ki)
        else:
            f = _spread(edges, start[mask], end[mask], fo[mask])
            k = _spread(edges, start[mask], end[mask], ko[mask])
        fac[name] = f.tolist()
        kg[name] = k.tolist()
    return TimeSeries(bucket_s=bucket, starts_s=edges[:-1].tolist(), facility_kwh=fac, total_kg=kg)


def _lifecycle(table: RunTable, options: ReportOptions) -> list[ModelLifecycle]:
    runs = table.take(~table.is_idle)
    if not len(runs):
        return []
    models, inverse = _factorize(runs.model)
    nph = len(PHASES)
    stack = _stack_index(runs)
    key = inverse * nph + np.minimum(stack, nph - 1)
    m = len(models) * nph
    cols = ("gpu_hours", "facility_kwh", "total_kg", "total_l", "requests")
    sums = {c: np.bincount(key, weights=np.nan_to_num(runs.col(c)), minlength=m).reshape(-1, nph) for c in cols}
    counts = np.bincount(key, minlength=m).reshape(-1, nph)
    out: list[ModelLifecycle] = []
    inf = PHASES.index("inference")
    with_dev = options.breakeven_basis == "training+development"
    for i, model in enumerate(models):
        phases = {
            phase: PhaseFigures(
                runs=int(counts[i, p]),
                gpu_hours=float(sums["gpu_hours"][i, p]),
                facility_kwh=float(sums["facility_kwh"][i, p]),
                total_kg=float(sums["total_kg"][i, p]),
                total_l=float(sums["total_l"][i, p]),
            )
            for p, phase in enumerate(PHASES)
        }
        d, t, f = phases["development"], phases["training"], phases["inference"]
        requests = float(sums["requests"][i, inf])
        upfront_kwh = t.facility_kwh + (d.facility_kwh if with_dev else 0.0)
        upfront_kg = t.total_kg + (d.total_kg if with_dev else 0.0)
        upfront_l = t.total_l + (d.total_l if with_dev else 0.0)
        be: Breakeven | None = None
        if requests > 0 and upfront_kwh > 0:
            be = breakeven(
                Impact(energy_j=upfront_kwh * J_PER_KWH, co2e_g=upfront_kg * 1000.0, water_l=upfront_l),
                Impact(
                    energy_j=f.facility_kwh * J_PER_KWH / requests,
                    co2e_g=f.total_kg * 1000.0 / requests,
                    water_l=f.total_l / requests,
                ),
                inferences_served=int(round(requests)),
            )
        total_kg = d.total_kg + t.total_kg + f.total_kg
        total_l = d.total_l + t.total_l + f.total_l
        out.append(
            ModelLifecycle(
                model=model or NONE_KEY,
                phases=phases,
                development_share_energy=d.facility_kwh / t.facility_kwh if t.facility_kwh > 0 else None,
                development_share_co2e=d.total_kg / t.total_kg if t.total_kg > 0 else None,
                requests=requests,
                facility_kwh_per_1k_requests=f.facility_kwh / requests * 1000.0 if requests > 0 else None,
                co2e_g_per_request=f.total_kg * 1000.0 / requests if requests > 0 else None,
                breakeven=be,
                breakeven_basis=options.breakeven_basis,
                equivalents=equivalents(max(total_kg, 0.0), max(total_l, 0.0)),
            )
        )
    return out


def build_report(
    table: RunTable,
    period: Period,
    options: ReportOptions,
    filters: Filters = Filters(),
    *,
    source: dict[str, object] | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """The whole report from a table of rows (see the module doc for the rules)."""
    all_notes = list(notes)
    rows, no_start = prorate(table, period, options.now_s)
    if no_start:
        all_notes.append(f"{no_start} row(s) without a start time left out of the period")
    rows, idle_notes = fill_idle(rows)
    all_notes.extend(idle_notes)
    if not rows.is_idle.any():
        all_notes.append("no idle (unattributed) energy in the source; use --prometheus-url to include the exporter's idle counters")
    if options.idle == "share":
        rows, shared, share_notes = share_idle(rows)
        all_notes.extend(share_notes)
    else:
        shared = np.zeros_like(rows.values)
    keep = _select(rows, filters) | (rows.is_idle if options.idle == "separate" else False)
    if filters.active and rows.is_idle[keep].any():
        all_notes.append("the (idle) row is cluster-wide: selections apply to runs only")
    rows, shared = rows.take(keep), shared[keep]
    idle_mask = rows.is_idle
    run_rows = rows.take(~idle_mask)
    run_shared = shared[~idle_mask]

    fac, kg = rows.col("facility_kwh"), rows.col("total_kg")
    idle_fac, idle_kg = shared[:, COL["facility_kwh"]], shared[:, COL["total_kg"]]
    own_fac, own_kg = np.nan_to_num(fac - idle_fac), np.nan_to_num(kg - idle_kg)
    stack_all = _stack_index(rows)

    # groups over runs (idle rows, if any remain, form their own row)
    dims = options.group_by
    if dims:
        parts = [_dimension(run_rows, d) for d in dims]
        if len(parts) == 1:
            keys = parts[0]
        else:
            keys = np.empty(len(run_rows), dtype=object)
            keys[:] = ["\x1f".join(t) for t in zip(*parts, strict=True)]
    else:
        keys = np.full(len(run_rows), "all", dtype=object)
    groups: list[GroupRow] = []
    nst = len(STACKS)
    if len(run_rows):
        uniq, inverse = _factorize(keys)
        n = len(uniq)
        sums = _sums(run_rows.values, inverse, n)
        counts = np.bincount(inverse, minlength=n)
        market_n = np.bincount(inverse, weights=(~np.isnan(run_rows.col("market_kg"))).astype(float), minlength=n)
        rf, rk = run_shared[:, COL["facility_kwh"]], run_shared[:, COL["total_kg"]]
        idle_sum = np.bincount(inverse, weights=rf, minlength=n)
        sk = inverse * nst + stack_all[~idle_mask]
        st_fac = np.bincount(sk, weights=own_fac[~idle_mask], minlength=n * nst).reshape(n, nst)
        st_kg = np.bincount(sk, weights=own_kg[~idle_mask], minlength=n * nst).reshape(n, nst)
        st_fac[:, nst - 1] += idle_sum
        st_kg[:, nst - 1] += np.bincount(inverse, weights=rk, minlength=n)
        for g in range(n):
            key = tuple(str(uniq[g]).split("\x1f")) if len(dims) > 1 else (str(uniq[g]),)
            groups.append(_row(key, int(counts[g]), sums[g], market_n[g] > 0, float(idle_sum[g]), st_fac[g], st_kg[g], options))

    idle_row: GroupRow | None = None
    if idle_mask.any():
        iv = rows.values[idle_mask]
        isum = np.nan_to_num(iv).sum(axis=0)
        st = np.zeros(nst)
        st[nst - 1] = isum[COL["facility_kwh"]]
        stk = np.zeros(nst)
        stk[nst - 1] = isum[COL["total_kg"]]
        idle_row = _row(
            (IDLE_KEY,) * max(1, len(dims)), int(idle_mask.sum()), isum,
            bool((~np.isnan(iv[:, COL["market_kg"]])).any()), 0.0, st, stk, options,
        )

    total_sums = np.nan_to_num(rows.values).sum(axis=0)
    market_runs = int((~np.isnan(run_rows.col("market_kg"))).sum())
    # float64 already (weighted); numpy's stubs type every bincount as intp, so astype (no copy) says so
    tot_fac = np.bincount(stack_all, weights=own_fac, minlength=nst).astype(np.float64, copy=False)
    tot_kg = np.bincount(stack_all, weights=own_kg, minlength=nst).astype(np.float64, copy=False)
    tot_fac[nst - 1] += idle_fac.sum()
    tot_kg[nst - 1] += idle_kg.sum()
    total = _row(
        ("TOTAL",) * max(1, len(dims)), len(run_rows), total_sums,
        market_runs > 0 or (idle_row is not None and idle_row.values["market_kg"] is not None),
        float(idle_fac.sum()), tot_fac, tot_kg, options,
    )
    if 0 < market_runs < len(run_rows):
        all_notes.append(f"market-based CO2e reported by {market_runs} of {len(run_rows)} runs; its sums cover those only")
    return Report(
        period=period,
        source=dict(source or table.meta.get("source") or {}),
        options=options,
        dimensions=dims,
        groups=groups,
        idle=idle_row,
        total=total,
        lifecycle=_lifecycle(rows, options),
        series=_time_series(rows, own_fac, own_kg, idle_fac, idle_kg, period) if len(rows) else None,
        equivalents=equivalents(max(float(total_sums[COL["total_kg"]]), 0.0), max(float(total_sums[COL["total_l"]]), 0.0)),
        market_coverage=(market_runs, len(run_rows)),
        notes=all_notes,
        generated_s=options.now_s,
    )

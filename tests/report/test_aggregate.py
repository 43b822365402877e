"""Report arithmetic with hand-computed numbers: pro-rating, grouping, idle (separate and
shared), cost, lifecycle/breakeven, equivalents, selection, time series."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.report.aggregate import Filters, ReportOptions, build_report, fill_idle, share_idle
from mlfootprint.report.model import COL, table_from_records
from mlfootprint.report.period import Period, parse_period
from mlfootprint.report.selectors import parse_selector

NOV = parse_period(month="2026-11")
NOW = NOV.until_s or 0.0


def run(name: str, *, ns: str = "a", phase: str = "development", kind: str = "TrainingRun", model: str = "m",
        pool: str = "", labels: dict[str, str] | None = None, start: str | None = "2026-11-02T00:00:00Z",
        end: str | None = "2026-11-03T00:00:00Z", gpu_hours: float = 10.0, it: float = 100.0, pue: float = 1.2,
        ci_kg: float = 0.4, market: float | None = None, embodied_kg: float = 0.0, onsite: float = 0.2,
        offsite: float = 1.5, embodied_l: float = 0.0, requests: int = 0) -> dict[str, Any]:
    """A run record whose figures follow from IT energy and simple factors."""
    fac = it * pue
    op = fac * ci_kg
    rec: dict[str, Any] = {
        "kind": kind, "namespace": ns, "name": name, "labels": labels or {}, "model": model, "phase": phase,
        "nodePool": pool, "startTime": start, "endTime": end, "gpuHours": gpu_hours,
        "energy": {"gpuKWh": it * 0.8, "hostKWh": it * 0.2, "itKWh": it, "facilityKWh": fac},
        "carbon": {"operationalKg": op, "embodiedKg": embodied_kg, "totalKg": op + embodied_kg},
        "water": {"onsiteL": it * onsite, "offsiteL": fac * offsite, "embodiedL": embodied_l,
                  "totalL": it * onsite + fac * offsite + embodied_l},
    }
    if market is not None:
        rec["carbon"]["marketKg"] = market
    if kind == "InferenceService":
        rec["inference"] = {"requests": requests, "inputTokens": 0, "outputTokens": 0}
    return rec


def idle(node: str, gpu_kwh: float, host_kwh: float = 0.0, pool: str = "") -> dict[str, Any]:
    return {"node": node, "nodePool": pool, "startTime": "2026-11-01T00:00:00Z", "endTime": "2026-12-01T00:00:00Z",
            "energy": {"gpuKWh": gpu_kwh, "hostKWh": host_kwh}}


def report(runs: list[dict[str, Any]], idles: list[dict[str, Any]] = (), period: Period = NOV,  # type: ignore[assignment]
           filters: Filters = Filters(), **options: Any):
    table = table_from_records(runs, idles)
    return build_report(table, period, ReportOptions(now_s=NOW, **options), filters)


def by_key(rep: Any) -> dict[tuple[str, ...], Any]:
    return {g.key: g for g in rep.groups}


def test_grouping_sums_runs_per_namespace_and_label() -> None:
    rep = report([run("r1", ns="a", it=100, labels={"team": "x"}), run("r2", ns="a", it=50, labels={"team": "y"}),
                  run("r3", ns="b", it=10)], group_by=("namespace",))
    g = by_key(rep)
    assert g[("a",)].runs == 2
    assert g[("a",)].values["it_kwh"] == pytest.approx(150.0)
    assert g[("a",)].values["facility_kwh"] == pytest.approx(180.0)  # 150 * 1.2
    assert g[("a",)].values["gpu_hours"] == pytest.approx(20.0)
    assert g[("b",)].values["operational_kg"] == pytest.approx(4.8)  # 10 * 1.2 * 0.4
    assert rep.total.values["facility_kwh"] == pytest.approx(192.0)
    rep = report([run("r1", labels={"team": "x"}), run("r2", labels={"team": "y"}), run("r3")], group_by=("label:team", "namespace"))
    assert sorted(by_key(rep)) == [("(none)", "a"), ("x", "a"), ("y", "a")]


def test_prorate_by_period_overlap() -> None:
    straddle = run("half", start="2026-10-31T12:00:00Z", end="2026-11-01T12:00:00Z", it=100, gpu_hours=24)
    inside = run("in", it=10)
    outside = run("out", start="2026-10-01T00:00:00Z", end="2026-10-02T00:00:00Z", it=1000)
    point_in = run("point", start="2026-11-01T00:00:00Z", end="2026-11-01T00:00:00Z", it=1)
    point_out = run("edge", start="2026-12-01T00:00:00Z", end="2026-12-01T00:00:00Z", it=1000)
    no_start = run("nostart", start=None, end=None, it=1000)
    open_run = run("open", start="2026-11-30T00:00:00Z", end=None, it=3)  # runs to now = Dec 1
    rep = report([straddle, inside, outside, point_in, point_out, no_start, open_run], group_by=())
    assert rep.total.values["it_kwh"] == pytest.approx(50 + 10 + 1 + 3)
    assert rep.total.values["gpu_hours"] == pytest.approx(12 + 10 + 10 + 10)
    assert rep.total.runs == 4
    assert any("1 row(s) without a start time" in n for n in rep.notes)
    # without a period everything counts
    everything = report([straddle, inside, outside, no_start], period=Period(), group_by=())
    assert everything.total.values["it_kwh"] == pytest.approx(2110.0)


def test_idle_separate_uses_fleet_ratios() -> None:
    # fleet: IT 100, facility 120 (PUE 1.2), operational 48 kg, on-site 20 L, off-site 180 L
    rep = report([run("r", it=100, pue=1.2, ci_kg=0.4, onsite=0.2, offsite=1.5)], [idle("n1", 8.0, 2.0)])
    assert rep.idle is not None
    v = rep.idle.values
    assert v["it_kwh"] == pytest.approx(10.0)
    assert v["facility_kwh"] == pytest.approx(12.0)
    assert v["operational_kg"] == pytest.approx(4.8)
    assert v["onsite_l"] == pytest.approx(2.0)
    assert v["offsite_l"] == pytest.approx(18.0)
    assert v["embodied_kg"] == 0.0 and v["total_kg"] == pytest.approx(4.8)
    assert v["total_l"] == pytest.approx(20.0)
    assert rep.total.values["facility_kwh"] == pytest.approx(132.0)
    assert rep.idle.stack_facility_kwh["idle"] == pytest.approx(12.0)


def test_idle_share_by_gpu_hours_within_node_pool() -> None:
    runs = [run("a", ns="a", pool="p1", gpu_hours=30, it=100), run("b", ns="b", pool="p1", gpu_hours=10, it=100),
            run("c", ns="c", pool="p2", gpu_hours=5, it=100)]
    # p1 idle: 8 kWh IT -> a 6, b 2; pool without runs (p3): 9 kWh over all 45 GPU-h -> a 6, b 2, c 1
    rep = report(runs, [idle("n1", 8.0, pool="p1"), idle("n3", 9.0, pool="p3")], idle="share")
    g = by_key(rep)
    assert rep.idle is None
    assert g[("a",)].values["it_kwh"] == pytest.approx(100 + 6 + 6)
    assert g[("b",)].values["it_kwh"] == pytest.approx(100 + 2 + 2)
    assert g[("c",)].values["it_kwh"] == pytest.approx(100 + 1)
    assert g[("a",)].idle_shared_kwh == pytest.approx(12 * 1.2)  # facility kWh
    assert g[("a",)].values["gpu_hours"] == 30  # allocation is not shared
    assert g[("a",)].stack_facility_kwh["development"] == pytest.approx(120.0)
    assert g[("a",)].stack_facility_kwh["idle"] == pytest.approx(14.4)
    assert rep.total.values["it_kwh"] == pytest.approx(317.0)  # conserved
    assert any("p3" in n for n in rep.notes)


def test_share_is_computed_before_selection() -> None:
    runs = [run("a", ns="a", gpu_hours=30), run("b", ns="b", gpu_hours=10)]
    rep = report(runs, [idle("n1", 8.0)], idle="share", filters=Filters(namespaces=("b",)))
    assert [g.key for g in rep.groups] == [("b",)]
    assert rep.total.values["it_kwh"] == pytest.approx(102.0)  # b's quarter only


def test_cost_from_facility_energy_and_total_co2e() -> None:
    # facility 120 kWh x 0.25 = 30; total CO2e 48 + 2 = 50 kg = 0.05 t x 100 = 5
    rep = report([run("r", it=100, embodied_kg=2.0)], price_per_kwh=0.25, carbon_price_per_tonne=100.0)
    assert rep.total.cost == pytest.approx({"energy": 30.0, "carbon": 5.0, "total": 35.0})
    assert report([run("r")]).total.cost is None


def test_market_based_kept_apart() -> None:
    rep = report([run("r1", it=100, market=7.0), run("r2", ns="b", it=100)])
    g = by_key(rep)
    assert g[("a",)].values["market_kg"] == 7.0
    assert g[("b",)].values["market_kg"] is None
    assert rep.total.values["total_kg"] == pytest.approx(96.0)  # location-based only
    assert rep.market_coverage == (1, 2)
    assert report([run("r")]).total.values["market_kg"] is None


def test_lifecycle_development_share_and_breakeven() -> None:
    runs = [
        run("dev", phase="development", it=25, pue=1.2, ci_kg=1 / 3),      # 30 kWh, 10 kg
        run("final", phase="training", it=100, pue=1.0, ci_kg=0.4),        # 100 kWh, 40 kg
        run("serve", phase="inference", kind="InferenceService", it=50, pue=1.0, ci_kg=0.4, requests=1000),  # 50 kWh, 20 kg
        run("other", model="n", it=10),
    ]
    rep = report(runs)
    lc = {m.model: m for m in rep.lifecycle}["m"]
    assert lc.phases["development"].facility_kwh == pytest.approx(30.0)
    assert lc.development_share_energy == pytest.approx(0.3)
    assert lc.development_share_co2e == pytest.approx(0.25)
    assert lc.requests == 1000
    assert lc.co2e_g_per_request == pytest.approx(20.0)
    assert lc.facility_kwh_per_1k_requests == pytest.approx(50.0)
    assert lc.breakeven is not None and lc.breakeven.carbon is not None
    assert lc.breakeven.carbon.breakeven_inferences == pytest.approx(2500.0)  # (10 + 40) kg / 20 g
    assert lc.breakeven.carbon.progress == pytest.approx(0.4)
    assert lc.breakeven.energy.breakeven_inferences == pytest.approx(2600.0)  # 130 kWh / 0.05 kWh
    training_only = {m.model: m for m in report(runs, breakeven_basis="training").lifecycle}["m"]
    assert training_only.breakeven.carbon.breakeven_inferences == pytest.approx(2000.0)  # type: ignore[union-attr]
    assert {m.model: m for m in rep.lifecycle}["n"].breakeven is None


def test_equivalents_use_epa_factors() -> None:
    # 403 kg / 0.403 kg per mile = 1000 miles
    rep = report([run("r", it=1000, pue=1.0, ci_kg=0.403)])
    assert rep.equivalents.vehicle_miles == pytest.approx(1000.0)
    assert "EPA" in rep.equivalents.source


def test_selection_filters() -> None:
    runs = [run("a", ns="a", labels={"team": "x"}, phase="training", model="m1"),
            run("b", ns="b", labels={"team": "y"}, model="m2"), run("c", ns="c")]
    assert [g.key for g in report(runs, filters=Filters(namespaces=("a", "c"))).groups] == [("a",), ("c",)]
    assert [g.key for g in report(runs, filters=Filters(selector=parse_selector("team in (y)"))).groups] == [("b",)]
    assert [g.key for g in report(runs, filters=Filters(selector=parse_selector("!team"))).groups] == [("c",)]
    assert [g.key for g in report(runs, filters=Filters(phases=("training",))).groups] == [("a",)]
    assert [g.key for g in report(runs, filters=Filters(models=("m2",))).groups] == [("b",)]
    rep = report(runs, [idle("n", 1.0)], filters=Filters(namespaces=("a",)))
    assert rep.idle is not None and any("cluster-wide" in n for n in rep.notes)


def test_time_series_conserves_energy() -> None:
    runs = [run("a", start="2026-11-01T00:00:00Z", end="2026-11-01T05:30:00Z", it=11),
            run("b", phase="training", start="2026-11-01T10:00:00Z", end="2026-11-01T10:00:00Z", it=1)]
    rep = report(runs, [idle("n", 2.0)], period=parse_period("2026-11-01", "2026-11-01"))
    s = rep.series
    assert s is not None and s.bucket_s == 3600 and len(s.starts_s) == 24
    assert s.facility_kwh["development"][0] == pytest.approx(11 * 1.2 / 5.5)
    assert s.facility_kwh["training"][10] == pytest.approx(1.2)
    total = sum(sum(v) for v in s.facility_kwh.values())
    assert total == pytest.approx(rep.total.values["facility_kwh"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1e4), st.floats(0, 1e3), st.sampled_from(["", "p1", "p2"])), min_size=1, max_size=12),
    st.lists(st.tuples(st.floats(0, 1e3), st.sampled_from(["", "p1", "p2", "p3"])), min_size=0, max_size=5),
)
def test_shared_idle_is_conserved(runs: list[tuple[float, float, str]], idles: list[tuple[float, str]]) -> None:
    table = table_from_records(
        [run(f"r{i}", gpu_hours=gh, it=it, pool=pool) for i, (gh, it, pool) in enumerate(runs)],
        [idle(f"n{i}", e, pool=pool) for i, (e, pool) in enumerate(idles)],
    )
    filled, _ = fill_idle(table)
    out, shared, _ = share_idle(filled)
    idle_it = float(np.nansum(filled.values[filled.is_idle][:, COL["it_kwh"]]))
    total_before = float(np.nansum(filled.values[:, COL["it_kwh"]]))
    total_after = float(np.nansum(out.values[:, COL["it_kwh"]]))
    assert total_after == pytest.approx(total_before, rel=1e-9, abs=1e-9)
    if not out.is_idle.any():
        assert shared[:, COL["it_kwh"]].sum() == pytest.approx(idle_it, rel=1e-9, abs=1e-9)
    assert (shared >= 0).all()

"""Ledger arithmetic: restarts, rollbacks, resets and folding neither drop nor double energy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.accounting.factors import Factors, IntensityInterval
from mlfootprint.crd.models import Ledger, LedgerTotals
from mlfootprint.operator.ledger import (
    ContainerObs,
    Increment,
    ServingObs,
    advance,
    apply_increment,
    labels_digest,
    ledger_from_status,
)

KEY = ("pod-0", "main")


def obs(gpu_j: float, start: float | None = 1000.0, node: str = "n1", **kw: float) -> ContainerObs:
    return ContainerObs(node=node, start=start, gpu_j=gpu_j, gpus={"GPU-1": "H100"}, **kw)  # type: ignore[arg-type]


def step(ledger: Ledger, containers: dict, live: set[str] | None = None, complete: bool = True, serving: dict | None = None,
         elapsed_s: float | None = 30.0) -> tuple[Ledger, Increment, list]:  # type: ignore[type-arg]
    return advance(ledger, containers, serving, live_pods=live if live is not None else {"pod-0"}, complete=complete,
                   elapsed_s=elapsed_s)


# ----------------------------------------------------------------------------- exporter series


def test_first_sight_growth_rollback_and_reset() -> None:
    ledger = Ledger()
    ledger, inc, a = step(ledger, {KEY: obs(100.0)})
    assert inc.gpu_j == 100.0 and a == []  # first sight: all of it is the run's
    ledger, inc, a = step(ledger, {KEY: obs(150.0)})
    assert inc.gpu_j == 50.0
    # an exporter restored an older checkpoint: same start, lower value -> nothing added
    ledger, inc, a = step(ledger, {KEY: obs(120.0)})
    assert inc.gpu_j == 0.0 and [x.kind for x in a] == ["Rollback"]
    ledger, inc, _ = step(ledger, {KEY: obs(130.0)})
    assert inc.gpu_j == 0.0  # climbing back through values already counted adds nothing
    ledger, inc, _ = step(ledger, {KEY: obs(160.0)})
    assert inc.gpu_j == 10.0  # growth above the high-water mark (150) is new
    # counters that really started again from zero carry a newer start: all new
    ledger, inc, a = step(ledger, {KEY: obs(7.0, start=2000.0)})
    assert inc.gpu_j == 7.0 and a == []
    # an older incarnation that reappears (a stale series) is ignored
    ledger, inc, a = step(ledger, {KEY: obs(500.0, start=1000.0)})
    assert inc.gpu_j == 0.0 and [x.kind for x in a] == ["StaleSeries"]


def test_a_restored_value_is_never_taken_for_a_reset() -> None:
    """The bug this design fixes: operator 0.1 read 'lower' as 'reset' and re-added the
    whole history after an exporter restart that restored an older checkpoint (+90%)."""
    ledger, _, _ = step(Ledger(), {KEY: obs(9_000.0)})
    ledger, inc, _ = step(ledger, {KEY: obs(8_500.0)})  # restored from a checkpoint 500 J older
    assert inc.gpu_j == 0.0
    assert ledger.series is not None and ledger.series["pod-0/main"].gpu_j == 9_000.0  # the high-water mark


def test_a_rollback_is_not_counted_again_when_the_exporter_rebills_it() -> None:
    """Found by the fault suite (exporter-stale-state): checkpoint writes fail, the exporter
    is killed and restarts from the last checkpoint written. It re-bills the energy since that
    checkpoint from the hardware counter (docs/exporter.md#restarts), so its counter climbs
    back through the values already counted. Rebasing on the restored value counted the
    failed-checkpoint span twice (+150 kJ on a 2-GPU run in the suite)."""
    ledger, inc, _ = step(Ledger(), {KEY: obs(1_000.0, cpu_j=10.0, swings=2.0, alloc_s={"H100": 100.0})})
    served = [1_200.0, 1_500.0]  # served while checkpoints failed (the last checkpoint says 1,000)
    for v in served:
        ledger, inc, _ = step(ledger, {KEY: obs(v, cpu_j=10.0 + v / 100, swings=2.0, alloc_s={"H100": v / 10})})
    total = 1_500.0
    # restarted from the stale checkpoint: 1,000 served once, then the re-billed span and 300 J more
    for v, new in ((1_000.0, 0.0), (1_800.0, 300.0), (1_900.0, 100.0)):
        ledger, inc, a = step(ledger, {KEY: obs(v, cpu_j=10.0 + v / 100, swings=2.0, alloc_s={"H100": v / 10})})
        assert inc.gpu_j == pytest.approx(new)
        total += inc.gpu_j
        assert [x.kind for x in a] == (["Rollback"] if v == 1_000.0 else [])
    assert total == pytest.approx(1_900.0)  # the true energy, not 1,900 + 500
    assert ledger.series is not None and ledger.series["pod-0/main"].alloc_s == {"H100": 190.0}


def test_without_start_times_lower_means_reset() -> None:
    """Exporters older than the start gauge: the classic Prometheus rule."""
    ledger, _, _ = step(Ledger(), {KEY: obs(100.0, start=None)})
    ledger, inc, _ = step(ledger, {KEY: obs(40.0, start=None)})
    assert inc.gpu_j == 40.0


def test_repeating_an_observation_adds_nothing() -> None:
    ledger, _, _ = step(Ledger(), {KEY: obs(100.0, cpu_j=5.0, alloc_s={"H100": 60.0})})
    for _ in range(3):
        ledger, inc, _ = step(ledger, {KEY: obs(100.0, cpu_j=5.0, alloc_s={"H100": 60.0})})
        assert inc.is_empty()


def test_unobserved_series_keep_their_last_value_until_folded() -> None:
    other = ("pod-1", "main")
    ledger, _, _ = step(Ledger(), {KEY: obs(10.0), other: obs(5.0)}, live={"pod-0", "pod-1"})
    # pod-1's exporter did not answer (incomplete): kept
    ledger, inc, _ = step(ledger, {KEY: obs(12.0)}, live={"pod-0"}, complete=False)
    assert inc.gpu_j == 2.0 and set(ledger.series or {}) == {"pod-0/main", "pod-1/main"}
    # pod-1 still exists: kept even when absent
    ledger, _, _ = step(ledger, {KEY: obs(12.0)}, live={"pod-0", "pod-1"})
    assert "pod-1/main" in (ledger.series or {})
    # pod-1 is gone and no exporter reports it: folded, its node's watermark recorded
    ledger, _, _ = step(ledger, {KEY: obs(12.0)}, live={"pod-0"})
    assert set(ledger.series or {}) == {"pod-0/main"} and ledger.folded == {"n1": 1000.0}
    # the folded series reappears (an exporter restored a checkpoint): stale, not counted
    ledger, inc, a = step(ledger, {KEY: obs(12.0), other: obs(5.0)}, live={"pod-0"})
    assert inc.gpu_j == 0.0 and [x.kind for x in a] == ["StaleSeries"]
    # a genuinely new container on that node starts later than the watermark: counted
    ledger, inc, _ = step(ledger, {KEY: obs(12.0), ("pod-2", "main"): obs(3.0, start=1500.0)}, live={"pod-0", "pod-2"})
    assert inc.gpu_j == 3.0


def test_churn_keeps_the_ledger_bounded_and_the_sum_exact() -> None:
    """5,000 pod replacements behind one service: the ledger holds only the live pods,
    the totals hold every pod's energy."""
    ledger = Ledger()
    counted = 0.0
    for i in range(5000):
        pod = f"serve-{i}"
        ledger, inc, _ = step(ledger, {(pod, "main"): obs(100.0 + i, start=1000.0 + i)}, live={pod})
        counted += inc.gpu_j
        ledger, inc, _ = step(ledger, {(pod, "main"): obs(200.0 + i, start=1000.0 + i)}, live={pod})
        counted += inc.gpu_j
    ledger, inc, _ = step(ledger, {}, live=set())  # the last pod leaves too
    assert counted == pytest.approx(sum(200.0 + i for i in range(5000)))
    assert not ledger.series and ledger.folded == {"n1": 1000.0 + 4999}
    assert len(ledger.model_dump_json()) < 1024


# A container's life seen by the operator: increments, exporter restarts with a state file
# (same start; the checkpoint is written before serving, so never below the served value,
# and the downtime is billed), restarts without one (a new start, counters from zero),
# operator restarts (the ledger reloaded from what was written), unobserved stretches.
life = st.lists(
    st.one_of(
        st.tuples(st.just("inc"), st.floats(0, 1e6, allow_nan=False)),
        st.tuples(st.just("restart_state"), st.floats(0, 1e4, allow_nan=False)),
        st.tuples(st.just("restart_fresh"), st.just(0.0)),
        st.tuples(st.just("observe"), st.just(0.0)),
        st.tuples(st.just("operator_restart"), st.just(0.0)),
    ),
    min_size=1,
    max_size=60,
)


@given(life)
@settings(max_examples=300, deadline=None)
def test_property_accounted_energy_equals_the_true_energy_less_documented_gaps(events: list[tuple[str, float]]) -> None:
    ledger = Ledger()
    written = ledger
    start, value = 1000.0, 0.0
    true_j = lost_j = accounted = 0.0
    observed_value = 0.0  # the value at the last observation of the current incarnation
    for kind, x in events:
        if kind == "inc":
            value += x
            true_j += x
        elif kind == "restart_state":
            value += x  # the downtime, billed from the hardware counter
            true_j += x
        elif kind == "restart_fresh":  # no state file: what was never observed is lost (documented)
            lost_j += value - observed_value
            start += 1.0
            value = observed_value = 0.0
        elif kind == "operator_restart":
            ledger = written
        else:
            ledger, inc, anomalies = step(ledger, {KEY: obs(value, start=start)})
            assert not anomalies
            accounted += inc.gpu_j
            written = ledger
            observed_value = value
    ledger, inc, _ = step(ledger, {KEY: obs(value, start=start)})
    accounted += inc.gpu_j
    assert accounted <= true_j * (1 + 1e-12) + 1e-6  # never double
    assert math.isclose(accounted, true_j - lost_j, rel_tol=1e-9, abs_tol=1e-6)


# ----------------------------------------------------------------------------- serving counters


def serving(start: float | None = None, **sets: dict[str, float]) -> ServingObs:
    return ServingObs(start=start, counters=sets)


def test_serving_counters_per_label_set() -> None:
    a, b = labels_digest({"finished_reason": "stop"}), labels_digest({"finished_reason": "length"})
    ledger, inc, _ = step(Ledger(), {}, serving={"pod-0": serving(requests={a: 7.0, b: 3.0})})
    assert inc.requests == 10.0
    # a label set vanishes from the page: not a reset of the sum
    ledger, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(requests={a: 9.0})})
    assert inc.requests == 2.0 and anomalies == []
    ledger, inc, _ = step(ledger, {}, serving={"pod-0": serving(requests={a: 9.0, b: 4.0})})
    assert inc.requests == 1.0


def test_replicas_behind_one_url_are_not_multiplied() -> None:
    """Two replicas answer one URL in turn: their counters alternate (x1,400 requests in 0.1)."""
    d = labels_digest({})
    ledger, inc, _ = step(Ledger(), {}, serving={"pod-0": serving(start=5.0, requests={d: 5000.0})})
    counted = inc.requests
    for i in range(20):
        value = 9000.0 + i if i % 2 else 5000.0 + i  # replica A, replica B, A, ...
        ledger, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(start=5.0, requests={d: value})})
        counted += inc.requests
    assert counted <= 9019.0 + 5019.0  # bounded by what the replicas served, not multiplied
    assert {a.kind for a in anomalies} <= {"ServingInconsistent"}


def test_replicas_without_a_start_time_are_not_multiplied() -> None:
    """Found by the fault suite (serving-garbage, an engine without process metrics such as
    TGI): replicas behind one URL answering in turn looked like engine restarts, since any
    value below 10^5 requests per second since the last read was 'plausible', and each swing
    back up was counted again (4,379 requests counted, 2,281 served)."""
    d = labels_digest({})
    ledger = Ledger(totals=LedgerTotals(requests=5000.0, active_s=100.0))  # the run serves ~50/s
    ledger, inc, _ = step(ledger, {}, serving={"pod-0": serving(requests={d: 5000.0})}, elapsed_s=0.5)
    counted = inc.requests
    for i in range(20):
        value = 9000.0 + i if i % 2 else 5000.0 + i  # replica A, replica B, A, ...
        ledger, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(requests={d: value})}, elapsed_s=0.5)
        counted += inc.requests
        assert {a.kind for a in anomalies} <= {"ServingInconsistent"}
    assert counted <= 9019.0  # the highest value either replica showed, never a sum of swings
    # a real restart shows a value the run could have served since the last read: a reset
    ledger, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(requests={d: 60.0})}, elapsed_s=0.5)
    assert inc.requests == 60.0 and anomalies == []


def test_a_drop_without_a_container_restart_is_not_a_reset_however_long_since_the_last_read() -> None:
    """Found by the fault campaign (seed 143091): an API-server freeze left 80 s since the
    last written observation, then a TGI-like page (no start time) showed 30 % of its count
    (a replica far behind the same URL). By size alone the drop was a plausible restart; the
    ledger rebased on it and counted the climb back again (5,833 requests for 5,235 served).
    The pod's containers had not restarted, so it is no reset."""
    d = labels_digest({})
    ledger = Ledger(totals=LedgerTotals(requests=1000.0, active_s=100.0))  # the run serves ~10/s
    ledger, inc, _ = step(ledger, {}, serving={"pod-0": ServingObs(counters={"requests": {d: 1000.0}}, restarts=0)}, elapsed_s=2.0)
    counted = inc.requests
    served = [(300.0, 80.0), (1010.0, 1.0), (303.0, 1.0), (1030.0, 1.0)]  # stale replica, true count, ...
    for value, elapsed_s in served:
        ledger, inc, anomalies = step(
            ledger, {}, serving={"pod-0": ServingObs(counters={"requests": {d: value}}, restarts=0)}, elapsed_s=elapsed_s)
        counted += inc.requests
        assert [a.kind for a in anomalies] == ([] if value > 1000 else ["ServingInconsistent"])
    assert counted == 1030.0  # what the engine served, not 1,030 + 300 + 303
    # without container restarts known, the same drop is judged by its size (and passes)
    ledger = Ledger(totals=LedgerTotals(requests=1000.0, active_s=100.0))
    ledger, _, _ = step(ledger, {}, serving={"pod-0": serving(requests={d: 1000.0})}, elapsed_s=2.0)
    _, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(requests={d: 300.0})}, elapsed_s=80.0)
    assert inc.requests == 300.0 and anomalies == []


def test_a_container_restart_is_a_reset_even_after_a_stale_page() -> None:
    a, b = labels_digest({"finished_reason": "stop"}), labels_digest({"finished_reason": "length"})

    def page(restarts: int, **sets: float) -> dict[str, ServingObs]:
        digests = {"a": a, "b": b}
        return {"pod-0": ServingObs(counters={"requests": {digests[k]: v for k, v in sets.items()}}, restarts=restarts)}

    ledger, inc, _ = step(Ledger(), {}, serving=page(0, a=700.0, b=300.0))
    assert inc.requests == 1000.0
    # the container restarted, but the page read is still the old one (cached): no change
    ledger, inc, anomalies = step(ledger, {}, serving=page(1, a=700.0, b=300.0))
    assert inc.requests == 0.0 and anomalies == []
    # then the restarted engine's own page: all of it is new, and the label set it has not
    # shown yet starts again from zero
    ledger, inc, anomalies = step(ledger, {}, serving=page(1, a=12.0))
    assert inc.requests == 12.0 and anomalies == []
    ledger, inc, anomalies = step(ledger, {}, serving=page(1, a=15.0, b=4.0))
    assert inc.requests == 7.0 and anomalies == []
    # a later drop without another restart is not one
    ledger, inc, anomalies = step(ledger, {}, serving=page(1, a=5.0, b=4.0))
    assert inc.requests == 0.0 and [x.kind for x in anomalies] == ["ServingInconsistent"]
    assert ledger.serving is not None and ledger.serving["pod-0"].restarts == 1


# A serving engine without a start time (TGI) seen by the operator, with any time between
# reads (an API-server freeze makes it long): it serves; its container restarts (counters
# from zero, restartCount + 1); a replica behind its URL answers with a fraction of the
# count; the previous page comes again (cached: after a restart the kubelet's count is
# already new). Restarts and replicas are drawn apart: a replica's page after this engine
# restarted is another engine's count, which no counter can tell apart (docs/operator.md).
_serve = st.tuples(st.just("serve"), st.integers(0, 10_000))
_page = st.sampled_from([("cached", 0), ("read", 0)])
engine_life = st.one_of(
    st.lists(st.one_of(_serve, _page, st.tuples(st.just("replica"), st.integers(0, 99))), min_size=1, max_size=60),
    st.lists(st.one_of(_serve, _page, st.just(("restart", 0))), min_size=1, max_size=60),
)


@given(engine_life, st.lists(st.floats(0.1, 3600.0), min_size=60, max_size=60))
@settings(max_examples=400, deadline=None)
def test_property_serving_requests_are_never_counted_twice(events: list[tuple[str, int]], gaps_s: list[float]) -> None:
    d = labels_digest({})
    ledger = Ledger(totals=LedgerTotals(requests=1.0, active_s=1.0))
    counter, restarts, served, counted, page = 0, 0, 0, 0.0, 0
    for (kind, x), gap_s in zip(events, gaps_s, strict=False):
        if kind == "serve":
            counter += x
            served += x
        elif kind == "restart":
            counter, restarts = 0, restarts + 1
        else:
            page = {"replica": counter * x // 100, "cached": page, "read": counter}[kind]
            obs = ServingObs(counters={"requests": {d: float(page)}}, restarts=restarts)
            ledger, inc, _ = step(ledger, {}, serving={"pod-0": obs}, elapsed_s=gap_s)
            counted += inc.requests
            assert counted <= served  # never more than the engine served
    if not any(k in ("replica", "cached", "restart") for k, _ in events):  # plain reads: nothing lost
        assert counted == sum(x for i, (k, x) in enumerate(events) if k == "serve" and ("read", 0) in events[i:])


def test_an_engine_restart_is_a_reset() -> None:
    d = labels_digest({})
    ledger, _, _ = step(Ledger(), {}, serving={"pod-0": serving(start=5.0, requests={d: 1000.0})})
    ledger, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(start=6.0, requests={d: 12.0})})
    assert inc.requests == 12.0 and anomalies == []
    # without a start time: a small value after a drop is a plausible restart
    ledger, _, _ = step(Ledger(), {}, serving={"pod-0": serving(requests={d: 1000.0})})
    ledger, inc, _ = step(ledger, {}, serving={"pod-0": serving(requests={d: 12.0})})
    assert inc.requests == 12.0


def test_an_implausible_jump_is_refused() -> None:
    d = labels_digest({})
    ledger, _, _ = step(Ledger(), {}, serving={"pod-0": serving(start=5.0, tokens_out={d: 10.0})})
    ledger, inc, anomalies = step(ledger, {}, serving={"pod-0": serving(start=5.0, tokens_out={d: 1e12})}, elapsed_s=30.0)
    assert inc.tokens_out == 0.0 and [a.kind for a in anomalies] == ["ServingImplausible"]


def test_serving_data_never_stops_energy_accounting() -> None:
    d = labels_digest({})
    ledger, _, _ = step(Ledger(), {KEY: obs(100.0)}, serving={"pod-0": serving(start=5.0, requests={d: 10.0})})
    ledger, inc, anomalies = step(ledger, {KEY: obs(250.0)}, serving={"pod-0": serving(start=5.0, requests={d: 1.0})})
    assert inc.gpu_j == 150.0 and [a.kind for a in anomalies] == ["ServingInconsistent"]


# ----------------------------------------------------------------------------- migration


def test_a_ledger_of_operator_0_1_migrates_without_double_counting() -> None:
    old = {
        "observedAt": "2026-01-01T00:00:00.000000Z",
        "counters": {"gpu|pod-0|main|GPU-1": 900.0, "gpu|pod-0|main|GPU-2": 100.0, "cpu|pod-0|main": 10.0,
                     "alloc|pod-0|main|H100": 60.0, "requests|pod-0": 50.0},
        "totals": {"gpuJ": 1000.0, "cpuJ": 10.0, "allocS": 60.0, "allocS:H100": 60.0, "requests": 50.0, "workloadSeen": 1.0},
    }
    ledger = ledger_from_status(old)
    assert ledger.totals is not None and ledger.totals.alloc_s_by_model == {"H100": 60.0}
    d = labels_digest({})
    ledger, inc, _ = step(
        ledger, {KEY: ContainerObs(node="n1", start=1000.0, gpu_j=1100.0, cpu_j=12.0, alloc_s={"H100": 90.0},
                                   gpus={"GPU-1": "H100", "GPU-2": "H100"})},
        serving={"pod-0": serving(requests={d: 55.0})},
    )
    assert (inc.gpu_j, inc.cpu_j, inc.alloc_s, inc.requests) == (100.0, 2.0, {"H100": 30.0}, 5.0)
    assert ledger.counters is None and ledger.series is not None and ledger.series["pod-0/main"].start == 1000.0


# ----------------------------------------------------------------------------- totals


def test_apply_increment_matches_the_formulas() -> None:
    f = Factors(pue=1.5, carbon_intensity_g_per_kwh=400.0, wue_onsite_l_per_kwh=0.5, wue_offsite_l_per_kwh=2.0)
    t = apply_increment(LedgerTotals(), Increment(gpu_j=3.6e6, cpu_j=3.6e6, alloc_s={"default": 3600.0}), f, 0.0, 3600.0)
    assert t.it_j == pytest.approx(7.2e6)
    assert t.facility_j == pytest.approx(1.08e7)
    assert t.co2e_op_g == pytest.approx(2 * 1.5 * 400.0)  # 2 kWh IT x PUE x CI
    assert t.water_on_l == pytest.approx(2 * 0.5)  # basis it
    assert t.water_off_l == pytest.approx(2 * 1.5 * 2.0)
    # 1 GPU-hour of a 463.013 kg GPU over 4 years
    assert t.co2e_emb_g == pytest.approx(463.013e3 / (4 * 8760))
    assert t.active_s == 3600.0 and t.alloc_s_by_model == {"default": 3600.0}


def test_time_varying_intensity_is_integrated_per_interval_not_total_times_average() -> None:
    # 100 gCO2e/kWh in hour 0, 500 in hour 1; 3 kWh in hour 0, 1 kWh in hour 1.
    ci = [IntensityInterval(start_s=0, end_s=3600, g_per_kwh=100), IntensityInterval(start_s=3600, end_s=7200, g_per_kwh=500)]
    f = Factors(pue=1.0, carbon_intensity_g_per_kwh=ci)
    t = apply_increment(LedgerTotals(), Increment(gpu_j=3 * 3.6e6), f, 0, 3600)
    t = apply_increment(t, Increment(gpu_j=1 * 3.6e6), f, 3600, 7200)
    assert t.co2e_op_g == pytest.approx(3 * 100 + 1 * 500)  # 800 g
    assert t.co2e_op_g != pytest.approx(4 * (100 + 500) / 2)  # not total x average (1200 g)


def test_factor_change_applies_from_its_time_forward() -> None:
    a = Factors(pue=1.0, carbon_intensity_g_per_kwh=100.0)
    b = Factors(pue=1.0, carbon_intensity_g_per_kwh=300.0)
    t = apply_increment(LedgerTotals(), Increment(gpu_j=3.6e6), a, 0, 10)
    t = apply_increment(t, Increment(gpu_j=3.6e6), b, 10, 20)
    assert t.co2e_op_g == pytest.approx(400.0)


def test_a_ledger_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ledger_from_status({"totals": {"gpuJ": "lots"}})
    with pytest.raises(ValueError):
        ledger_from_status({"totals": {"gpuJ": -5.0}})


def test_the_workload_model_is_fitted_from_the_services_intervals() -> None:
    """e(Tin, Tout) from the ledger's interval aggregates, as status.inference.workloadModel."""
    from mlfootprint.operator.status import build_inference_status

    a0, a1, a2 = 0.05, 2.0, 1e-4
    totals = LedgerTotals()
    f = Factors()
    for i in range(12):
        r = 100.0 + 10 * i
        tin, tout = 200.0 + 37.0 * (i % 5), 50.0 + 23.0 * (i % 7)  # per-request sizes vary independently
        inc = Increment(gpu_j=r * (a0 * tin + a1 * tout + a2 * tin * tout), requests=r, tokens_in=r * tin, tokens_out=r * tout)
        totals = apply_increment(totals, inc, f, 60.0 * i, 60.0 * (i + 1), workload=True)
    assert totals.workload is not None and totals.workload.intervals == 12
    inf = build_inference_status(totals, upfront_co2e_g=None, upfront_energy_j=None, basis="training", fitted_at_s=0.0)
    wm = inf["workloadModel"]
    assert (wm["a0"], wm["a1"], wm["a2"]) == (pytest.approx(a0, rel=1e-3), pytest.approx(a1, rel=1e-3), pytest.approx(a2, rel=1e-3))
    assert wm["r2"] == pytest.approx(1.0) and wm["intervals"] == 12 and wm["fittedAt"] == "1970-01-01T00:00:00.000000Z"
    assert inf["gpuJoulesPerRequest"] == pytest.approx(totals.gpu_j / totals.requests, rel=1e-3)
    assert inf["kWhPer1kRequests"] == pytest.approx(totals.facility_j / totals.requests * 1000 / 3.6e6, rel=1e-3)


def test_embodied_is_charged_by_part_with_the_nodes_host_share() -> None:
    """One GPU-hour on an 8-GPU node: the GPU over its life, 1/8 of the host over its life."""
    from mlfootprint.accounting.factors import EmbodiedSpec
    from mlfootprint.operator.ledger import EmbodiedPlan

    gpu = EmbodiedSpec(co2e_kg=100.0, water_l=10.0)
    host = EmbodiedSpec(co2e_kg=4000.0, water_l=80.0)
    plan = EmbodiedPlan(gpu_key="n:gpu", gpu=gpu, host_key="n:host", host=host, gpus_per_node=8)
    f = Factors(gpu_lifetime_years=4.0, host_lifetime_years=5.0)
    inc = Increment(gpu_j=1.0, alloc_s={"H100": 3600.0}, alloc_nodes={("H100", "node-1"): 3600.0}, gpus=1)
    t = apply_increment(LedgerTotals(), inc, f, 0.0, 3600.0, embodied=lambda model, node: plan)
    hours_gpu, hours_host = 4 * 8760, 5 * 8760
    assert t.co2e_emb_gpu_g == pytest.approx(100e3 / hours_gpu)
    assert t.co2e_emb_host_g == pytest.approx(4000e3 / 8 / hours_host)
    assert t.co2e_emb_g == pytest.approx(t.co2e_emb_gpu_g + t.co2e_emb_host_g)
    assert t.water_emb_host_l == pytest.approx(80.0 / 8 / hours_host)


def test_the_serving_ceilings_scale_with_the_setting() -> None:
    """A simulated clock x3600 (the demo) serves 3600 x the wall rate: with the scale the jump
    counts, without it it is refused (the demo's output tokens were, and its e(Tin, Tout) fit
    had no output tokens to fit)."""
    d = labels_digest({})
    jump = 2e7 * 30.0  # 2e7 output tokens per wall second: above the 1e7 ceiling
    base, _, _ = step(Ledger(), {}, serving={"pod-0": serving(start=5.0, tokens_out={d: 10.0})})
    _, inc, anomalies = step(base, {}, serving={"pod-0": serving(start=5.0, tokens_out={d: 10.0 + jump})}, elapsed_s=30.0)
    assert inc.tokens_out == 0.0 and [a.kind for a in anomalies] == ["ServingImplausible"]
    _, inc, anomalies = advance(base, {}, {"pod-0": serving(start=5.0, tokens_out={d: 10.0 + jump})},
                                live_pods={"pod-0"}, complete=True, elapsed_s=30.0, serving_rate_scale=3600.0)
    assert inc.tokens_out == jump and anomalies == []

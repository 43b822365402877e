"""Pure builders: factors parsing (errors name the field), phases, status, breakeven, parsing."""

from __future__ import annotations

import pytest

from mlfootprint.crd.models import Ledger, LedgerTotals
from mlfootprint.operator.energy.parse import parse_samples
from mlfootprint.operator.energy.serving import counters_from_page, names_for
from mlfootprint.operator.energy.snapshot import POD_METRICS, build_snapshot
from mlfootprint.operator.factors_config import (
    FactorsError,
    factors_for_interval,
    parse_factors,
    resolve_factors,
)
from mlfootprint.operator.factors_store import FactorsProblem
from mlfootprint.operator.ledger import ContainerObs, Increment, advance, apply_increment
from mlfootprint.operator.ownership import RunClaim, claim_from, split_pods
from mlfootprint.operator.phases import PhaseRules, derive_phase, parse_phase_rules
from mlfootprint.operator.pods import PodInfo, matches_selector, pod_info
from mlfootprint.operator.status import (
    budget_status,
    build_inference_status,
    build_status,
    ready_condition,
    round_sig,
    set_condition,
)

# ----------------------------------------------------------------------------- factors


def test_factors_fields_and_layers() -> None:
    cluster = parse_factors({"pue": "1.3", "carbonIntensity": "400", "wueOnsite": "0.1"}, source="op/mlfootprint-factors")
    ns = parse_factors({"factors.yaml": "pue: 1.1\nonsiteWaterBasis: facility\n"}, source="team/mlfootprint-factors")
    r = resolve_factors([cluster, ns])
    assert r.factors.pue == 1.1
    assert r.factors.carbon_intensity_g_per_kwh == 400.0
    assert r.factors.wue_onsite_l_per_kwh == 0.1
    assert r.factors.onsite_water_basis == "facility"
    assert r.source == "team/mlfootprint-factors"
    assert r.sources == ("op/mlfootprint-factors", "team/mlfootprint-factors")


def test_defaults_without_configmaps() -> None:
    r = resolve_factors([])
    assert (r.factors.pue, r.factors.carbon_intensity_g_per_kwh) == (1.2, 332.0)
    assert r.carbon_intensity.kind == "constant"


def test_region_preset_then_override() -> None:
    r = resolve_factors([parse_factors({"region": "FRA", "pue": "1.15"})])
    assert r.factors.region == "FRA"
    assert 0 < r.factors.carbon_intensity_g_per_kwh < 200  # France's low-carbon grid


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"pue": "0.9"}, "pue"),
        ({"pue": "abc"}, "pue"),
        ({"carbonIntensity": "-1"}, "carbonIntensity"),
        ({"carbonIntensity": "{schedule: [1, 2, 3]}"}, "carbonIntensity.schedule"),
        ({"carbonIntensity": "{schedule: [" + ",".join(["1"] * 23) + ", -5]}"}, "carbonIntensity.schedule[23]"),
        ({"carbonIntensity": "{provider: {name: foo, zone: DE}}"}, "carbonIntensity.provider.name"),
        ({"carbonIntensity": "{prometheus: {}}"}, "carbonIntensity.prometheus.query"),
        ({"onsiteWaterBasis": "both"}, "onsiteWaterBasis"),
        ({"embodiedGpu": "{H100: {co2eKg: -1, waterL: 3}}"}, "embodiedGpu.H100.co2eKg"),
        ({"gpuLifetimeYears": "0"}, "gpuLifetimeYears"),
        ({"region": "XXX"}, "region"),
        ({"puee": "1.2"}, "data"),
        ({"factors.yaml": "[1, 2"}, "factors.yaml"),
        ({"carbonIntensity": "1e308"}, "carbonIntensity"),  # was accepted: CO2e became +Inf
        ({"carbonIntensity": ".inf"}, "carbonIntensity"),
        ({"pue": "nan"}, "pue"),
        ({"wueOffsite": "1e9"}, "wueOffsite"),
        ({"carbonIntensity": "{schedule: [" + ",".join(["1"] * 23) + ", 1e12]}"}, "carbonIntensity.schedule[23]"),
        ({"embodiedGpu": "{H100: {co2eKg: 1e300, waterL: 3}}"}, "embodiedGpu.H100.co2eKg"),
    ],
)
def test_invalid_factors_name_the_field(data: dict[str, str], field: str) -> None:
    with pytest.raises(FactorsError) as e:
        parse_factors(data)
    assert e.value.field == field
    assert str(e.value).startswith(field)


@pytest.mark.parametrize(
    "data",
    [
        {"pue": "s3cr3t-v4lue"},
        {"s3cr3t-v4lue": "1"},
        {"carbonIntensity": "{provider: {name: s3cr3t-v4lue, zone: DE}}"},
        {"region": "s3cr3t-v4lue"},
        {"onsiteWaterBasis": "s3cr3t-v4lue"},
        {"factors.yaml": "pue: [s3cr3t-v4lue"},
        {"embodiedGpu": "{'s3cr3t v4lue!': {co2eKg: -1, waterL: 2}}"},
        {"carbonIntensity": "{s3cr3t-v4lue: 1, constant: 2}"},
    ],
)
def test_errors_never_echo_a_value_or_an_unknown_key(data: dict[str, str]) -> None:
    """The ConfigMap may be someone else's (the cluster default); its errors end up in
    tenants' conditions and Events."""
    with pytest.raises(FactorsError) as e:
        parse_factors(data)
    assert "s3cr3t" not in str(e.value)


def test_problem_reason_is_a_valid_condition_reason() -> None:
    p = FactorsProblem("ns/cm", "carbonIntensity.schedule[3]", "must be >= 0", "last good")
    assert p.reason == "InvalidCarbonIntensity"
    assert "carbonIntensity.schedule[3]" in p.text() and "ns/cm" in p.text()


def test_schedule_becomes_hourly_intervals_in_utc() -> None:
    sched = [float(h * 10) for h in range(24)]
    r = resolve_factors([parse_factors({"carbonIntensity": {"schedule": sched}})])  # type: ignore[dict-item]
    f = factors_for_interval(r, 86400 + 1800, 86400 + 3 * 3600)  # 00:30 to 03:00 UTC of day 2
    ivs = f.carbon_intensity_g_per_kwh
    assert isinstance(ivs, list)
    assert [i.g_per_kwh for i in ivs] == [0.0, 10.0, 20.0]


def test_live_value_used_when_available_else_fallback() -> None:
    r = resolve_factors([parse_factors({"carbonIntensity": "{prometheus: {query: grid_ci}, fallback: 250}"})])
    assert factors_for_interval(r, 0, 10, 123.0).carbon_intensity_g_per_kwh == 123.0
    assert factors_for_interval(r, 0, 10, None).carbon_intensity_g_per_kwh == 250.0


# ----------------------------------------------------------------------------- phases


@pytest.mark.parametrize(
    ("spec", "labels", "failed", "phase", "reason"),
    [
        ({"phase": "training", "experiment": "x"}, {}, False, "training", "Explicit"),
        ({"final": True}, {}, False, "training", "FinalRun"),
        ({}, {"mlfootprint.io/final": "true"}, False, "training", "FinalRun"),
        ({"experiment": "sweep-1"}, {}, False, "development", "Experiment"),
        ({}, {"katib.kubeflow.org/experiment": "lr"}, False, "development", "TuningLabel"),
        ({}, {}, True, "development", "FailedRun"),
        ({"phase": "training"}, {}, True, "training", "Explicit"),
        ({}, {}, False, "development", "Default"),
    ],
)
def test_phase_rules(spec: dict, labels: dict, failed: bool, phase: str, reason: str) -> None:
    d = derive_phase("TrainingRun", spec, labels, {}, failed=failed)
    assert (d.phase, d.reason) == (phase, reason)


def test_inference_service_is_inference() -> None:
    assert derive_phase("InferenceService", {"phase": "training"}, {}, {}).phase == "inference"


def test_phase_rules_from_configmap() -> None:
    rules = parse_phase_rules("developmentLabels: [team.io/ablation]\ndefault: training\n")
    assert derive_phase("TrainingRun", {}, {"team.io/ablation": "a"}, {}, rules=rules).reason == "TuningLabel"
    assert derive_phase("TrainingRun", {}, {}, {}, rules=rules).phase == "training"
    with pytest.raises(ValueError, match="default"):
        parse_phase_rules("default: pretraining\n")
    assert isinstance(parse_phase_rules(None), PhaseRules)


# ----------------------------------------------------------------------------- status


def test_conditions_transition_only_on_status_or_reason_change() -> None:
    c, changed = set_condition(None, "Completed", False, "Running", "m", now="t1", generation=1)
    assert changed and c[0]["lastTransitionTime"] == "t1"
    c, changed = set_condition(c, "Completed", False, "Running", "m2", now="t2", generation=2)
    assert not changed and c[0]["lastTransitionTime"] == "t1" and c[0]["observedGeneration"] == 2
    c, changed = set_condition(c, "Completed", True, "PodsSucceeded", "done", now="t3")
    assert changed and c[0]["status"] == "True" and c[0]["lastTransitionTime"] == "t3"


def test_budget_status_and_summary() -> None:
    totals = LedgerTotals(co2e_op_g=400_000.0, co2e_emb_g=20_000.0, facility_j=3.6e6 * 50)
    b, ratio = budget_status({"co2eKg": 1000, "energyKWh": 100}, totals)
    assert b is not None and ratio == pytest.approx(0.5)
    assert b["co2ePercent"] == 42.0 and b["energyPercent"] == 50.0
    assert b["summary"] == "50% energy" and b["exceeded"] is False
    b, ratio = budget_status({"co2eKg": 100}, totals)
    assert b is not None and b["exceeded"] is True and "exceeded" in b["summary"]
    assert budget_status(None, totals) == (None, None)
    # a zero budget (refused by the CRD; an older object may hold one) is no budget, not
    # "100000000000% CO2e"
    assert budget_status({"co2eKg": 0}, totals) == (None, None)


Minute = dict[tuple[str, str], ContainerObs]


def _run_minutes(observations: list[Minute]) -> LedgerTotals:
    """Refresh once a wall-clock minute with these cumulative counters (scrape mode)."""
    resolved = resolve_factors([])
    ledger, totals = Ledger(), LedgerTotals()
    for minute, observed in enumerate(observations):
        ledger, inc, _ = advance(ledger, observed, None, live_pods={p for p, _c in observed}, complete=True, elapsed_s=60.0)
        start_s, end_s = 60.0 * minute, 60.0 * (minute + 1)
        totals = apply_increment(totals, inc, factors_for_interval(resolved, start_s, end_s), start_s, end_s)
    return totals


def _c(gpus: dict[str, float], alloc_s: float | None, model: str = "H100") -> ContainerObs:
    return ContainerObs(node="n", start=1.0, gpu_j=sum(gpus.values()), alloc_s={model: alloc_s} if alloc_s else {},
                        gpus=dict.fromkeys(gpus, model))


def _avg_w(totals: LedgerTotals) -> float:
    return float(build_status(totals, resolved=resolve_factors([]), intensity_g_per_kwh=332.0)["power"]["avgW"])


def test_avg_power_is_on_the_measurement_clock_of_an_accelerated_exporter() -> None:
    # The demo's exporters run a simulated clock 1,440x the wall clock: each wall-clock minute
    # a pod holding 2 H100s at 400 W each reports 86,400 s of allocation per GPU and
    # 400 W x 86,400 s of energy per GPU. The run's average GPU power is 800 W.
    sim_s = 1440.0 * 60.0
    totals = _run_minutes([
        {("p", "c"): _c({"GPU-1": 400.0 * sim_s * m, "GPU-2": 400.0 * sim_s * m}, 2 * sim_s * m)} for m in (1, 2, 3)
    ])
    assert _avg_w(totals) == pytest.approx(800.0)
    assert totals.held_s == pytest.approx(3 * sim_s)
    # the old definition, GPU energy / wall-clock seconds, reads 1,440x too high
    assert totals.gpu_j / totals.active_s == pytest.approx(800.0 * 1440.0)


def test_avg_power_weights_a_changing_gpu_count_by_held_time() -> None:
    # minute 1: 1 GPU at 300 W; minute 2: 3 GPUs at 300 W each (900 W) -> 1,200 W-min / 2 min
    totals = _run_minutes([
        {("p", "c"): _c({"G1": 300.0 * 60}, 60.0, "A100")},
        {("p", "c"): _c({"G1": 300.0 * 120}, 120.0, "A100"), ("q", "c"): _c({"G2": 300.0 * 60, "G3": 300.0 * 60}, 120.0, "A100")},
    ])
    assert _avg_w(totals) == pytest.approx(600.0)


def test_avg_power_without_allocation_counters_uses_the_wall_clock() -> None:
    totals = _run_minutes([{("p", "c"): _c({"G1": 250.0 * 60 * m}, None)} for m in (1, 2)])
    assert _avg_w(totals) == pytest.approx(250.0)


def test_avg_power_continues_a_ledger_written_before_held_seconds() -> None:
    old = LedgerTotals(gpu_j=500.0 * 600, active_s=600.0)  # 10 minutes at 500 W, no heldS
    assert _avg_w(old) == pytest.approx(500.0)
    f = factors_for_interval(resolve_factors([]), 600, 660)
    t = apply_increment(old.model_copy(update={"held_s": old.active_s}), Increment(gpu_j=500.0 * 60, alloc_s={"H100": 60.0}, gpus=1), f, 600, 660)
    assert t.held_s == pytest.approx(660.0) and _avg_w(t) == pytest.approx(500.0)


def test_round_sig() -> None:
    assert round_sig(1234.5678) == 1235.0
    assert round_sig(0.000123456) == 0.0001235
    assert round_sig(0.0) == 0.0


def test_breakeven_matches_a_hand_computation() -> None:
    # Model: training 2,000 kgCO2e (+ development 500 kg). Serving so far: 1,000 requests that
    # cost 3.6e6 J (1 kWh) facility and 400 g CO2e in total -> 0.4 g per request.
    totals = LedgerTotals(facility_j=3.6e6, co2e_op_g=400.0, requests=1000.0, tokens_out=50_000.0)
    s = build_inference_status(totals, upfront_co2e_g=2_500_000.0, upfront_energy_j=0.0, basis="training+development")
    assert s["joulesPerToken"] == pytest.approx(72.0)  # 3.6e6 / 50,000
    assert s["joulesPerRequest"] == pytest.approx(3600.0)
    assert s["co2eGPer1kRequests"] == pytest.approx(400.0)
    n = 2_500_000.0 / 0.4  # 6,250,000 inferences
    assert s["breakeven"]["inferences"] == pytest.approx(n)
    assert s["breakeven"]["progress"] == pytest.approx(1000 / n)
    assert s["breakeven"]["progressPercent"] == pytest.approx(100 * 1000 / n)


# ----------------------------------------------------------------------------- parsing


PAGE = """\
# HELP mlfootprint_pod_gpu_energy_joules_total x
# TYPE mlfootprint_pod_gpu_energy_joules_total counter
mlfootprint_pod_gpu_energy_joules_total{node="n1",namespace="a",pod="p-0",container="",gpu_uuid="GPU-1",gpu_model="H100"} 1000.5
mlfootprint_pod_gpu_energy_joules_total{node="n1",namespace="a",pod="p-0",container="",gpu_uuid="GPU-2",gpu_model="H100"} 500
mlfootprint_pod_host_energy_joules_total{node="n1",namespace="a",pod="p-0",container="",component="cpu"} 20
mlfootprint_pod_host_energy_joules_total{node="n1",namespace="a",pod="p-0",container="",component="dram"} 5
mlfootprint_pod_gpu_allocation_seconds_total{node="n1",namespace="a",pod="p-0",container="",gpu_model="H100"} 120
mlfootprint_pod_gpu_power_peak_watts{node="n1",namespace="a",pod="p-0",container=""} 690
mlfootprint_pod_gpu_power_min_watts{node="n1",namespace="a",pod="p-0",container=""} 95
mlfootprint_pod_power_swings_total{node="n1",namespace="a",pod="p-0",container=""} 3
mlfootprint_pod_start_time_seconds{node="n1",namespace="a",pod="p-0",container=""} 1700000000.25
mlfootprint_pod_gpu_energy_joules_total{node="n1",namespace="b",pod="q",container="",gpu_uuid="GPU-3",gpu_model="A100"} 7 1700000000000
mlfootprint_gpu_energy_joules_total{node="n1",gpu_uuid="GPU-1",gpu_model="H100"} 99999
weird_metric{label="a\\"b"} 1
"""


def test_snapshot_from_exporter_page() -> None:
    snap = build_snapshot(parse_samples(PAGE, POD_METRICS), 10.0)
    obs = snap.observe("a", ["p-0", "absent"])
    assert obs.containers == {
        ("p-0", ""): ContainerObs(node="n1", start=1700000000.25, gpu_j=1500.5, cpu_j=20.0, dram_j=5.0, swings=3.0,
                                  alloc_s={"H100": 120.0}, gpus={"GPU-1": "H100", "GPU-2": "H100"}),
    }
    assert (obs.peak_w, obs.min_w, obs.gpus) == (690.0, 95.0, {"GPU-1": "H100", "GPU-2": "H100"})
    assert obs.complete and obs.problems == ()
    q = snap.observe("b", ["q"]).containers
    assert q is not None and q[("q", "")].gpu_j == 7.0 and q[("q", "")].start is None


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf", "-5", "1e300"])
def test_snapshot_drops_values_that_are_not_counters(bad: str) -> None:
    page = PAGE.replace("} 1000.5", "} " + bad)
    snap = build_snapshot(parse_samples(page, POD_METRICS), 10.0)
    containers = snap.observe("a", ["p-0"]).containers
    assert containers is not None and containers[("p-0", "")].gpu_j == 500.0  # the bad series alone is dropped
    assert snap.errors == ("mlfootprint_pod_gpu_energy_joules_total: a value that is not a finite counter was dropped",)


def test_parser_unescapes_labels() -> None:
    [(_name, labels, value)] = list(parse_samples('m{a="x\\"y\\\\z",b="n\\nl"} 2.5\n', ["m"]))
    assert labels == {"a": 'x"y\\z', "b": "n\nl"} and value == 2.5


@pytest.mark.parametrize(
    ("engine", "page", "expected"),
    [
        ("vllm", ('vllm:request_success_total{finished_reason="stop"} 7\nvllm:request_success_total{finished_reason="length"} 3\n'
                  "vllm:prompt_tokens_total 100\nvllm:generation_tokens_total 400\n"), (10, 100, 400)),
        ("sglang", "sglang:num_requests_total 4\nsglang:prompt_tokens_total 40\nsglang:generation_tokens_total 80\n", (4, 40, 80)),
        ("tgi", ("tgi_request_success 5\ntgi_request_input_length_sum 50\ntgi_request_generated_tokens_sum 500\n"
                 "tgi_request_generated_tokens_count 5\n"), (5, 50, 500)),
    ],
)
def test_serving_engine_presets(engine: str, page: str, expected: tuple[int, int, int]) -> None:
    got = counters_from_page(page, names_for({"engine": engine}))
    assert got.obs is not None and got.problem is None
    c = got.obs.counters
    assert tuple(sum(c[k].values()) for k in ("requests", "tokens_in", "tokens_out")) == expected


def test_custom_engine_names() -> None:
    names = names_for({"engine": "custom", "requestsMetric": "app_requests_total", "outputTokensMetric": "app_out_total", "port": 9090})
    got = counters_from_page("app_requests_total 3\napp_out_total 9\nprocess_start_time_seconds 1.7e9\n", names)
    assert got.obs is not None and names.port == 9090
    assert {k: sum(v.values()) for k, v in got.obs.counters.items()} == {"requests": 3.0, "tokens_out": 9.0}
    assert got.obs.start == 1.7e9


def test_serving_page_validation() -> None:
    names = names_for({"engine": "vllm"})
    html = counters_from_page("<html><body>502 Bad Gateway</body></html>", names)
    assert html.obs is None and html.problem is not None and "none of the counters" in html.problem
    nan = counters_from_page("vllm:request_success_total NaN\nvllm:generation_tokens_total -4\n", names)
    assert nan.obs is not None and nan.obs.counters == {}
    assert nan.problem == "vllm:generation_tokens_total, vllm:request_success_total: a value that is not a finite counter was dropped"


def test_label_selectors() -> None:
    labels = {"app": "x", "tier": "gpu"}
    assert matches_selector(labels, {"matchLabels": {"app": "x"}})
    assert not matches_selector(labels, {"matchLabels": {"app": "y"}})
    assert matches_selector(labels, {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]})
    assert not matches_selector(labels, {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
    assert not matches_selector(labels, {})


# ----------------------------------------------------------------------------- ownership, Ready


def _pod(name: str, **labels: str) -> PodInfo:
    return PodInfo(name=name, namespace="ns", labels=tuple(sorted(labels.items())), annotations=(), owners=(),
                   phase="Running", ip=None, gpus=1)


def test_a_pod_selected_by_several_runs_is_metered_by_the_oldest() -> None:
    pods = [_pod("a-0", app="a"), _pod("a-1", app="a", tier="x"), _pod("b-0", app="b")]
    old = RunClaim("TrainingRun", "old", "2026-01-01T00:00:00Z", {"matchLabels": {"app": "a"}})
    new = RunClaim("InferenceService", "new", "2026-01-02T00:00:00Z", {"matchLabels": {"tier": "x"}})
    other = RunClaim("TrainingRun", "b", "2025-01-01T00:00:00Z", {"matchLabels": {"app": "b"}})
    claims = [old, new, other]
    mine, taken = split_pods(old, pods, claims)
    assert [p.name for p in mine] == ["a-0", "a-1"] and taken == {}
    mine, taken = split_pods(new, pods, claims)
    assert mine == [] and taken == {"a-1": old}
    # the same creation second: kind then name decide, deterministically
    twin = RunClaim("TrainingRun", "twin", "2026-01-01T00:00:00Z", {"matchLabels": {"app": "a"}})
    assert split_pods(twin, pods, [old, twin])[0] == []  # "old" < "twin"
    assert [p.name for p in split_pods(old, pods, [old, twin])[0]] == ["a-0", "a-1"]


def test_a_run_that_meters_a_pod_keeps_it() -> None:
    """Found by the fault suite (overlap-same-second): a run created within the same second as
    the run metering a pod, with a name that sorts first, took the pod over and counted its
    whole history again while the first run kept what it had counted (+20 kJ)."""
    pods = [_pod("x-0", app="x"), _pod("x-1", app="x")]
    sel = {"matchLabels": {"app": "x"}}
    metering = RunClaim("TrainingRun", "r-b", "2026-01-01T00:00:00Z", sel, counted=frozenset({"x-0"}))
    late_twin = RunClaim("TrainingRun", "r-a", "2026-01-01T00:00:00Z", sel)  # same second, sorts first
    claims = [metering, late_twin]
    mine, taken = split_pods(late_twin, pods, claims)
    assert [p.name for p in mine] == ["x-1"] and taken == {"x-0": metering}  # x-1: nobody meters it, age decides
    mine, taken = split_pods(metering, pods, claims)
    assert [p.name for p in mine] == ["x-0"] and taken == {"x-1": late_twin}
    # an older run (say its selector was widened) does not take a metered pod either
    older = RunClaim("TrainingRun", "older", "2025-01-01T00:00:00Z", sel)
    assert split_pods(older, pods, [older, metering])[1] == {"x-0": metering}
    assert split_pods(metering, pods, [older, metering]) == ([pods[0]], {"x-1": older})
    # both metered it (their refreshes raced): the oldest keeps it, one owner either way
    both = RunClaim("TrainingRun", "r-a", "2026-01-01T00:00:00Z", sel, counted=frozenset({"x-0"}))
    assert split_pods(both, pods, [metering, both])[1] == {}
    assert split_pods(metering, pods, [metering, both])[1] == {"x-0": both, "x-1": both}
    # what a run meters comes from its ledger's series
    claim = claim_from("TrainingRun", {"name": "r", "creationTimestamp": "t"}, {"selector": sel},
                       {"ledger": {"series": {"x-0/main": {"gpuJ": 1.0}, "x-0/sidecar": {}, "x-1/main": {}}}})
    assert claim.counted == {"x-0", "x-1"}
    assert claim_from("TrainingRun", {"name": "r"}, {"selector": sel}).counted == frozenset()


def test_ready_summarises_the_input_conditions() -> None:
    c, _ = set_condition(None, "FactorsValid", True, "Valid", "ok", now="t")
    c, _ = set_condition(c, "EnergySourceReady", False, "InvalidMetricsPage", "html", now="t")
    c, _ = ready_condition(c, completed=False, now="t", generation=3)
    ready = next(x for x in c if x["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidMetricsPage", 3)
    assert "EnergySourceReady" in ready["message"]
    c, _ = set_condition(c, "EnergySourceReady", True, "Read", "ok", now="t")
    c, changed = ready_condition(c, completed=False, now="t2", generation=3)
    ready = next(x for x in c if x["type"] == "Ready")
    assert changed and (ready["status"], ready["reason"]) == ("True", "Metering")
    c, _ = ready_condition(c, completed=True, now="t3", generation=3)
    assert next(x for x in c if x["type"] == "Ready")["reason"] == "Completed"


@pytest.mark.parametrize(
    ("statuses", "restarts"),
    [
        ([{"name": "engine", "restartCount": 2}, {"name": "proxy", "restartCount": 1}], 3),
        ([{"name": "engine", "restartCount": 0}], 0),
        ([], None),  # not started: nothing known
        ([{"name": "engine"}], None),
        ([{"name": "engine", "restartCount": -1}], None),
        ([{"name": "engine", "restartCount": "2"}], None),
        ([{"name": "engine", "restartCount": True}], None),
    ],
)
def test_pod_restarts_are_the_containers_restart_counts(statuses: list[dict[str, object]], restarts: int | None) -> None:
    body = {"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Running", "containerStatuses": statuses}}
    assert pod_info(body).restarts == restarts

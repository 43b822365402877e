"""Pure builders: factors parsing (errors name the field), phases, status, breakeven, parsing."""

from __future__ import annotations

import pytest

from mlfootprint.operator.energy.parse import parse_samples
from mlfootprint.operator.energy.serving import counters_from_page, names_for
from mlfootprint.operator.energy.snapshot import build_snapshot
from mlfootprint.operator.factors_config import (
    FactorsError,
    factors_for_interval,
    parse_factors,
    resolve_factors,
)
from mlfootprint.operator.factors_store import FactorsProblem
from mlfootprint.operator.ledger import Increment, advance_counters, apply_increment, increment_from_deltas
from mlfootprint.operator.phases import PhaseRules, derive_phase, parse_phase_rules
from mlfootprint.operator.pods import matches_selector
from mlfootprint.operator.status import (
    budget_status,
    build_inference_status,
    build_status,
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
        ({"puee": "1.2"}, "puee"),
        ({"factors.yaml": "[1, 2"}, "factors.yaml"),
    ],
)
def test_invalid_factors_name_the_field(data: dict[str, str], field: str) -> None:
    with pytest.raises(FactorsError) as e:
        parse_factors(data)
    assert e.value.field == field
    assert str(e.value).startswith(field)


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
    totals = {"co2eOpG": 400_000.0, "co2eEmbG": 20_000.0, "facilityJ": 3.6e6 * 50}
    b, ratio = budget_status({"co2eKg": 1000, "energyKWh": 100}, totals)
    assert b is not None and ratio == pytest.approx(0.5)
    assert b["co2ePercent"] == 42.0 and b["energyPercent"] == 50.0
    assert b["summary"] == "50% energy" and b["exceeded"] is False
    b, ratio = budget_status({"co2eKg": 100}, totals)
    assert b is not None and b["exceeded"] is True and "exceeded" in b["summary"]
    assert budget_status(None, totals) == (None, None)


def _run_minutes(observations: list[dict[str, float]], totals: dict[str, float] | None = None) -> dict[str, float]:
    """Refresh once a wall-clock minute with these cumulative counters (scrape mode)."""
    resolved = resolve_factors([])
    totals, counters = dict(totals or {}), {}
    for minute, observed in enumerate(observations):
        deltas, counters = advance_counters(counters, observed)
        start_s, end_s = 60.0 * minute, 60.0 * (minute + 1)
        totals = apply_increment(
            totals, increment_from_deltas(deltas), factors_for_interval(resolved, start_s, end_s), start_s, end_s
        )
    return totals


def _avg_w(totals: dict[str, float]) -> float:
    return float(build_status(totals, resolved=resolve_factors([]), intensity_g_per_kwh=332.0)["power"]["avgW"])


def test_avg_power_is_on_the_measurement_clock_of_an_accelerated_exporter() -> None:
    # The demo's exporters run a simulated clock 1,440x the wall clock: each wall-clock minute
    # a pod holding 2 H100s at 400 W each reports 86,400 s of allocation per GPU and
    # 400 W x 86,400 s of energy per GPU. The run's average GPU power is 800 W.
    sim_s = 1440.0 * 60.0
    totals = _run_minutes([
        {"gpu|p|c|GPU-1": 400.0 * sim_s * m, "gpu|p|c|GPU-2": 400.0 * sim_s * m, "alloc|p|c|H100": 2 * sim_s * m}
        for m in (1, 2, 3)
    ])
    assert _avg_w(totals) == pytest.approx(800.0)
    assert totals["heldS"] == pytest.approx(3 * sim_s)
    # the old definition, GPU energy / wall-clock seconds, reads 1,440x too high
    assert totals["gpuJ"] / totals["activeS"] == pytest.approx(800.0 * 1440.0)


def test_avg_power_weights_a_changing_gpu_count_by_held_time() -> None:
    # minute 1: 1 GPU at 300 W; minute 2: 3 GPUs at 300 W each (900 W) -> 1,200 W-min / 2 min
    totals = _run_minutes([
        {"gpu|p|c|G1": 300.0 * 60, "alloc|p|c|A100": 60.0},
        {"gpu|p|c|G1": 300.0 * 120, "gpu|q|c|G2": 300.0 * 60, "gpu|q|c|G3": 300.0 * 60, "alloc|p|c|A100": 120.0,
         "alloc|q|c|A100": 120.0},
    ])
    assert _avg_w(totals) == pytest.approx(600.0)


def test_avg_power_without_allocation_counters_uses_the_wall_clock() -> None:
    totals = _run_minutes([{"gpu|p|c|G1": 250.0 * 60 * m} for m in (1, 2)])
    assert _avg_w(totals) == pytest.approx(250.0)


def test_avg_power_continues_a_ledger_written_before_held_seconds() -> None:
    old = {"gpuJ": 500.0 * 600, "activeS": 600.0}  # 10 minutes at 500 W, no heldS
    assert _avg_w(old) == pytest.approx(500.0)
    f = factors_for_interval(resolve_factors([]), 600, 660)
    t = apply_increment(old, Increment(gpu_j=500.0 * 60, alloc_s={"H100": 60.0}, gpus=1), f, 600, 660)
    assert t["heldS"] == pytest.approx(660.0) and _avg_w(t) == pytest.approx(500.0)


def test_round_sig() -> None:
    assert round_sig(1234.5678) == 1235.0
    assert round_sig(0.000123456) == 0.0001235
    assert round_sig(0.0) == 0.0


def test_breakeven_matches_a_hand_computation() -> None:
    # Model: training 2,000 kgCO2e (+ development 500 kg). Serving so far: 1,000 requests that
    # cost 3.6e6 J (1 kWh) facility and 400 g CO2e in total -> 0.4 g per request.
    totals = {"facilityJ": 3.6e6, "co2eOpG": 400.0, "requests": 1000.0, "tokensOut": 50_000.0}
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
mlfootprint_pod_gpu_energy_joules_total{node="n1",namespace="b",pod="q",container="",gpu_uuid="GPU-3",gpu_model="A100"} 7 1700000000000
mlfootprint_gpu_energy_joules_total{node="n1",gpu_uuid="GPU-1",gpu_model="H100"} 99999
weird_metric{label="a\\"b"} 1
"""


def test_snapshot_from_exporter_page() -> None:
    snap = build_snapshot(parse_samples(PAGE, ("mlfootprint_pod_gpu_energy_joules_total", "mlfootprint_pod_host_energy_joules_total",
        "mlfootprint_pod_gpu_allocation_seconds_total", "mlfootprint_pod_gpu_power_peak_watts",
        "mlfootprint_pod_gpu_power_min_watts", "mlfootprint_pod_power_swings_total")), 10.0)
    obs = snap.observe("a", ["p-0", "absent"])
    assert obs.counters == {
        "gpu|p-0||GPU-1": 1000.5, "gpu|p-0||GPU-2": 500.0, "cpu|p-0|": 20.0, "dram|p-0|": 5.0,
        "alloc|p-0||H100": 120.0, "swings|p-0|": 3.0,
    }
    assert (obs.peak_w, obs.min_w, obs.gpus) == (690.0, 95.0, {"GPU-1": "H100", "GPU-2": "H100"})
    assert snap.observe("b", ["q"]).counters == {"gpu|q||GPU-3": 7.0}


def test_parser_unescapes_labels() -> None:
    [(name, labels, value)] = list(parse_samples('m{a="x\\"y\\\\z",b="n\\nl"} 2.5\n', ["m"]))
    assert labels == {"a": 'x"y\\z', "b": "n\nl"} and value == 2.5


@pytest.mark.parametrize(
    ("engine", "page", "expected"),
    [
        ("vllm", 'vllm:request_success_total{finished_reason="stop"} 7\nvllm:request_success_total{finished_reason="length"} 3\n'
         "vllm:prompt_tokens_total 100\nvllm:generation_tokens_total 400\n", (10, 100, 400)),
        ("sglang", "sglang:num_requests_total 4\nsglang:prompt_tokens_total 40\nsglang:generation_tokens_total 80\n", (4, 40, 80)),
        ("tgi", "tgi_request_success 5\ntgi_request_input_length_sum 50\ntgi_request_generated_tokens_sum 500\n"
         "tgi_request_generated_tokens_count 5\n", (5, 50, 500)),
    ],
)
def test_serving_engine_presets(engine: str, page: str, expected: tuple[int, int, int]) -> None:
    c = counters_from_page(page, "pod", names_for({"engine": engine}))
    assert (c["requests|pod"], c["tokens_in|pod"], c["tokens_out|pod"]) == expected


def test_custom_engine_names() -> None:
    names = names_for({"engine": "custom", "requestsMetric": "app_requests_total", "outputTokensMetric": "app_out_total", "port": 9090})
    c = counters_from_page("app_requests_total 3\napp_out_total 9\n", "p", names)
    assert c == {"requests|p": 3.0, "tokens_out|p": 9.0} and names.port == 9090


def test_label_selectors() -> None:
    labels = {"app": "x", "tier": "gpu"}
    assert matches_selector(labels, {"matchLabels": {"app": "x"}})
    assert not matches_selector(labels, {"matchLabels": {"app": "y"}})
    assert matches_selector(labels, {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]})
    assert not matches_selector(labels, {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
    assert not matches_selector(labels, {})

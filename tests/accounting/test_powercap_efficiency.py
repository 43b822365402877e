"""Power-cap advice against the paper's own numbers; efficiency figures by basis; percentiles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlfootprint.accounting.efficiency import (
    efficiency_by_basis,
    power_percentiles,
    power_percentiles_from_histogram,
)
from mlfootprint.accounting.powercap import (
    CapCurves,
    PowerDistribution,
    fraction_above,
    recommend_power_cap,
)
from mlfootprint.accounting.units import J_PER_KWH


def test_a100_run_always_at_the_limit_reproduces_the_paper() -> None:
    # A run that drew more than 175 W all the time: the paper's 250 -> 175 W result applies
    # whole: -23% energy, +6.7% time. 100 kWh and 40 kg so far -> 23 kWh and 9.2 kg saved.
    adv = recommend_power_cap(
        gpu_model="NVIDIA A100-PCIE-40GB", power_limit_w=250.0,
        power=PowerDistribution(samples_w=[240.0, 245.0, 250.0, 230.0]),
        gpu_energy_j=100 * J_PER_KWH, gpu_co2e_kg=40.0,
    )
    assert adv.status == "recommend" and not adv.transferred
    assert adv.recommended_cap_w == pytest.approx(175.0)
    assert adv.energy_saved_pct == pytest.approx(23.0)
    assert adv.time_added_pct == pytest.approx(6.7)
    assert adv.energy_saved_j == pytest.approx(23 * J_PER_KWH)
    assert adv.co2e_saved_kg == pytest.approx(9.2)
    assert "From Words to Watts" in adv.source


def test_cap_effect_scales_with_the_time_above_the_cap() -> None:
    adv = recommend_power_cap(
        gpu_model="A100", power_limit_w=250.0,
        power=PowerDistribution(samples_w=[240.0, 100.0, 240.0, 100.0]),
        gpu_energy_j=1.0e6,
    )
    assert adv.fraction_above_cap == pytest.approx(0.5)
    assert adv.energy_saved_pct == pytest.approx(11.5)
    assert adv.time_added_pct == pytest.approx(3.35)
    assert adv.co2e_saved_kg is None  # not given, not invented


def test_no_benefit_below_the_cap_and_time_budget() -> None:
    low = recommend_power_cap(gpu_model="A100", power_limit_w=250.0,
                              power=PowerDistribution(samples_w=[120.0, 150.0]), gpu_energy_j=1.0, gpu_co2e_kg=1.0)
    assert low.status == "no_benefit" and low.recommended_cap_w is None and low.co2e_saved_kg == 0.0
    tight = recommend_power_cap(gpu_model="A100", power_limit_w=250.0, power=PowerDistribution(samples_w=[240.0]),
                                gpu_energy_j=1.0, max_time_added_pct=5.0)
    assert tight.status == "no_benefit"  # +6.7% exceeds a 5% time budget


def test_other_gpus_use_the_transferred_curve_or_none() -> None:
    adv = recommend_power_cap(gpu_model="NVIDIA H100 80GB HBM3", power_limit_w=700.0,
                              power=PowerDistribution(samples_w=[650.0] * 9 + [100.0]), gpu_energy_j=1.0)
    assert adv.transferred and adv.recommended_cap_w == pytest.approx(490.0)  # 0.7 x 700 W
    assert adv.energy_saved_pct == pytest.approx(23.0 * 0.9)
    assert "transferred" in adv.reason
    none = recommend_power_cap(gpu_model="H100", power_limit_w=700.0, power=PowerDistribution(samples_w=[650.0]),
                               gpu_energy_j=1.0, curves=CapCurves(select={}, default_curve=None))
    assert none.status == "no_curve"


def test_summary_distribution_cdf_by_hand() -> None:
    d = PowerDistribution(min_w=100, p50_w=200, p90_w=300, p99_w=400, peak_w=500)
    assert fraction_above(d, 50) == 1.0
    assert fraction_above(d, 200) == pytest.approx(0.5)
    assert fraction_above(d, 250) == pytest.approx(0.3)  # halfway 0.5 -> 0.9
    assert fraction_above(d, 450) == pytest.approx(0.005)
    assert fraction_above(d, 500) == 0.0
    flat = PowerDistribution(min_w=300, p50_w=300, p90_w=300, p99_w=300, peak_w=300)
    assert fraction_above(flat, 299) == 1.0 and fraction_above(flat, 300) == 0.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "samplesW"),
        ({"samplesW": []}, "samplesW"),
        ({"samplesW": [-1.0]}, "samplesW"),
        ({"minW": 1, "p50W": 3, "p90W": 2, "p99W": 4, "peakW": 5}, "p50W"),
        ({"minW": -1, "p50W": 3, "p90W": 3, "p99W": 4, "peakW": 5}, "minW"),
    ],
)
def test_distribution_validation_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        PowerDistribution.model_validate(data)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"curves": {"c": {"referenceLimitW": 250, "points": [{"capFraction": 1.5, "timeFactor": 1}]}},
          "defaultCurve": "c", "select": {}}, "capFraction"),
        ({"select": {"A100": "missing"}}, "select.A100"),
        ({"defaultCurve": "missing"}, "defaultCurve"),
        ({"curves": {"c": {"referenceLimitW": 250, "points": [
            {"capFraction": 0.7, "timeFactor": 1}, {"capFraction": 0.7, "timeFactor": 1.1}]}}}, "capFraction"),
    ],
)
def test_curve_config_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CapCurves.model_validate(data)
    assert field in str(info.value)


def test_advice_input_errors() -> None:
    d = PowerDistribution(samples_w=[1.0])
    with pytest.raises(ValueError, match="power_limit_w"):
        recommend_power_cap(gpu_model="A100", power_limit_w=0, power=d, gpu_energy_j=1)
    with pytest.raises(ValueError, match="gpu_energy_j"):
        recommend_power_cap(gpu_model="A100", power_limit_w=250, power=d, gpu_energy_j=-1)


@settings(max_examples=60, deadline=None)
@given(samples=st.lists(st.floats(0, 400), min_size=1, max_size=50), budget=st.floats(0.1, 30))
def test_advice_respects_the_time_budget_and_never_exceeds_the_curve(samples: list[float], budget: float) -> None:
    adv = recommend_power_cap(gpu_model="A100", power_limit_w=250.0, power=PowerDistribution(samples_w=samples),
                              gpu_energy_j=1000.0, max_time_added_pct=budget)
    assert 0.0 <= adv.energy_saved_pct <= 23.0 + 1e-9
    assert adv.time_added_pct <= budget + 1e-9
    assert adv.energy_saved_j == pytest.approx(1000.0 * adv.energy_saved_pct / 100)


# ---------------------------------------------------------------- efficiency
def test_efficiency_by_basis_by_hand() -> None:
    # 3.6 MJ GPU (1 kWh) + 0.9 MJ host, PUE 1.2, 1,000 responses, 200,000 output tokens
    e = efficiency_by_basis(gpu_energy_j=3.6e6, it_energy_j=4.5e6, pue=1.2, requests=1000, output_tokens=200_000)
    assert e.gpu_j_per_output_token == pytest.approx(18.0)
    assert e.gpu_j_per_response == pytest.approx(3600.0)
    assert e.facility_j_per_output_token == pytest.approx(4.5e6 * 1.2 / 200_000)
    assert e.facility_j_per_response == pytest.approx(5400.0)
    assert e.gpu_kwh_per_1000_requests == pytest.approx(1.0)
    assert e.it_kwh_per_1000_requests == pytest.approx(1.25)
    assert e.facility_kwh_per_1000_requests == pytest.approx(1.5)
    z = efficiency_by_basis(gpu_energy_j=1.0, it_energy_j=1.0, pue=1.0, requests=0)
    assert z.gpu_j_per_response is None and z.facility_kwh_per_1000_requests is None and z.gpu_j_per_output_token is None
    with pytest.raises(ValueError, match="exceeds"):
        efficiency_by_basis(gpu_energy_j=2.0, it_energy_j=1.0, pue=1.0, requests=1)
    with pytest.raises(ValueError, match="pue"):
        efficiency_by_basis(gpu_energy_j=1.0, it_energy_j=1.0, pue=0.9, requests=1)


def test_power_hungry_processing_unit() -> None:
    # text generation ~0.047 kWh per 1,000 inferences (Luccioni et al.): 169.2 J each
    e = efficiency_by_basis(gpu_energy_j=169.2 * 1000, it_energy_j=169.2 * 1000, pue=1.0, requests=1000)
    assert e.it_kwh_per_1000_requests == pytest.approx(0.047)


def test_power_percentiles_samples_and_histogram() -> None:
    p = power_percentiles(np.arange(1, 101, dtype=float))
    assert (p.p50_w, p.p90_w, p.p99_w) == pytest.approx((50.5, 90.1, 99.01))
    # 100 samples uniform in (0, 1000] W in 10 buckets of 100 W: quantiles interpolate linearly
    upper = [100.0 * k for k in range(1, 11)]
    cum = [10.0 * k for k in range(1, 11)]
    h = power_percentiles_from_histogram(upper, cum)
    assert (h.p50_w, h.p90_w, h.p99_w) == pytest.approx((500.0, 900.0, 990.0))
    inf = power_percentiles_from_histogram([100.0, 200.0, float("inf")], [50.0, 90.0, 100.0])
    assert inf.p50_w == pytest.approx(100.0) and inf.p99_w == pytest.approx(200.0)
    for bad in (([], []), ([1.0, 1.0], [1.0, 2.0]), ([1.0, 2.0], [2.0, 1.0]), ([1.0], [0.0])):
        with pytest.raises(ValueError):
            power_percentiles_from_histogram(*bad)
    with pytest.raises(ValueError):
        power_percentiles([])


def test_advice_status_shape() -> None:
    adv = recommend_power_cap(gpu_model="A100", power_limit_w=250.0, power=PowerDistribution(samples_w=[240.0]),
                              gpu_energy_j=1.0, gpu_co2e_kg=2.0)
    s = adv.to_status()
    assert s["recommendedCapW"] == pytest.approx(175.0) and s["co2eSavedKg"] == pytest.approx(0.46)
    assert s["status"] == "recommend" and s["transferred"] is False

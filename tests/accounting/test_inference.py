"""Breakeven, efficiency and the workload model; EPA equivalents; region presets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.accounting.equivalents import EPA_2024, equivalents
from mlfootprint.accounting.inference import (
    Impact,
    UnderdeterminedError,
    breakeven,
    efficiency,
    fit_workload_model,
)
from mlfootprint.accounting.presets import UnknownRegionError, factors_for_region, list_regions, region_preset
from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.accounting.workload_model import IntervalAggregate, fit_workload_model_from_intervals


def test_bloomz_breakeven() -> None:
    # BLOOMz-7B: 51,686 kWh training + 7,571 kWh fine-tuning vs 1.0e-4 kWh per inference
    up = Impact(energy_j=(51_686 + 7_571) * J_PER_KWH, co2e_g=1.0, water_l=None)
    per = Impact(energy_j=1.0e-4 * J_PER_KWH, co2e_g=0.0)
    b = breakeven(up, per, inferences_served=59_257_000)
    assert b.energy.breakeven_inferences == pytest.approx(592_570_000)
    assert b.energy.progress == pytest.approx(0.1)
    assert b.carbon is not None and b.carbon.breakeven_inferences is None  # never breaks even
    assert b.water is None


def test_efficiency_by_hand() -> None:
    e = efficiency(energy_j=3.6e6, duration_s=3600, requests=1000, output_tokens=200_000, co2e_g=400.0, water_l=2.0)
    assert e.mean_power_w == pytest.approx(1000.0)
    assert e.j_per_request == pytest.approx(3600.0)
    assert e.j_per_output_token == pytest.approx(18.0)
    assert e.kwh_per_1000_requests == pytest.approx(1.0)
    assert e.co2e_g_per_request == pytest.approx(0.4)
    assert e.water_l_per_request == pytest.approx(0.002)
    z = efficiency(energy_j=1.0, duration_s=0.0, requests=0)
    assert z.j_per_request is None and z.mean_power_w is None and z.j_per_output_token is None
    with pytest.raises(ValueError, match="energy_j"):
        efficiency(energy_j=float("nan"), duration_s=1, requests=1)


def test_workload_model_recovers_coefficients() -> None:
    rng = np.random.default_rng(7)
    tin = rng.integers(10, 2000, 200).astype(float)
    tout = rng.integers(10, 1000, 200).astype(float)
    true = 0.05 * tin + 2.0 * tout + 1e-4 * tin * tout
    y = true * (1 + rng.normal(0, 0.02, 200))
    m = fit_workload_model(tin, tout, y)
    assert m.n == 200
    assert m.a1_j_per_output_token == pytest.approx(2.0, rel=0.05)
    assert m.r_squared > 0.95
    assert m.f_statistic is not None and m.f_statistic > 100
    assert m.predict([100.0], [100.0])[0] == pytest.approx(0.05 * 100 + 200 + 1.0, rel=0.1)


def test_workload_model_exact_fit_and_underdetermined() -> None:
    tin, tout = np.array([1.0, 2.0, 3.0, 5.0]), np.array([4.0, 1.0, 7.0, 2.0])
    y = 1.0 * tin + 2.0 * tout + 0.5 * tin * tout
    m = fit_workload_model(tin, tout, y)
    assert (m.a0_j_per_input_token, m.a1_j_per_output_token, m.a2_j_per_token_product) == pytest.approx((1.0, 2.0, 0.5))
    assert m.r_squared == pytest.approx(1.0) and m.f_statistic is None
    with pytest.raises(UnderdeterminedError, match="at least 3"):
        fit_workload_model([1, 2], [1, 2], [1, 2])
    with pytest.raises(UnderdeterminedError, match="rank"):
        fit_workload_model([5, 5, 5, 5], [1, 2, 3, 4], [1, 2, 3, 4])  # Tin constant: Tin ~ Tin*Tout collinear
    with pytest.raises(ValueError, match="energy_j"):
        fit_workload_model([1, 2, 3], [1, 2, 3], [1, -2, 3])


def test_equivalents_by_hand() -> None:
    eq = equivalents(co2e_kg=7940.0, water_l=82 * 3.785411784)
    assert eq.home_years_energy == pytest.approx(1.0)
    assert eq.person_days_water == pytest.approx(1.0)
    assert eq.vehicle_miles == pytest.approx(7940 / 0.403)
    assert eq.gallons_gasoline == pytest.approx(7940 / 8.89)
    assert eq.source == EPA_2024.source and "EPA" in eq.source


def test_region_presets() -> None:
    usa = region_preset("USA")
    assert region_preset("us") == usa
    assert 50 < usa.carbon_intensity_g_per_kwh < 1000 and usa.wue_offsite_l_per_kwh > 0
    assert "FRA" in list_regions() and "WOR" in list_regions()
    f = factors_for_region("fra", pue=1.1)
    assert f.region == "FRA" and f.pue == 1.1
    assert f.carbon_intensity_g_per_kwh == pytest.approx(region_preset("FRA").carbon_intensity_g_per_kwh)
    with pytest.raises(UnknownRegionError, match="--list-regions"):
        region_preset("Atlantis")


# ---------------------------------------------------------------- workload model: basis, intervals


def test_r2_is_centred_and_f_on_the_same_basis_by_hand() -> None:
    tin = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    tout = np.array([5.0, 1.0, 4.0, 2.0, 6.0, 3.0])
    y = 0.5 * tin + 2.0 * tout + 0.01 * tin * tout + np.array([0.3, -0.2, 0.1, -0.4, 0.2, 0.1])
    m = fit_workload_model(tin, tout, y)
    x = np.column_stack([tin, tout, tin * tout])
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    ss_res = float(np.sum((y - x @ coef) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    assert m.basis == "centred"
    assert m.r_squared == pytest.approx(1 - ss_res / ss_tot)  # scikit-learn's r2_score
    assert m.f_statistic == pytest.approx(((ss_tot - ss_res) / 2) / (ss_res / 3))
    # the uncentred R² of the same fit is higher: not the figure comparable with the poster
    assert 1 - ss_res / float(y @ y) > m.r_squared


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 60), noise=st.floats(0.01, 0.5))
def test_f_and_r2_are_one_basis(seed: int, n: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    tin = rng.integers(1, 500, n).astype(float)
    tout = rng.integers(1, 500, n).astype(float)
    y = (0.02 * tin + 1.5 * tout + 1e-3 * tin * tout) * (1 + rng.normal(0, noise, n)).clip(0.01)
    try:
        m = fit_workload_model(tin, tout, y)
    except UnderdeterminedError:
        return
    if m.f_statistic is not None and m.r_squared < 1:
        assert m.f_statistic == pytest.approx((m.r_squared / 2) / ((1 - m.r_squared) / (n - 3)), rel=1e-6)


def _intervals_same_tin(rng: np.random.Generator, a: tuple[float, float, float], k: int) -> list[IntervalAggregate]:
    """k intervals; within each, every request has the same Tin (no within-interval covariance)."""
    out = []
    for _ in range(k):
        tin = float(rng.integers(10, 2000))
        touts = rng.integers(10, 800, int(rng.integers(1, 40))).astype(float)
        e = a[0] * tin * touts.size + a[1] * touts.sum() + a[2] * tin * touts.sum()
        out.append(IntervalAggregate(energy_j=e, tokens_in=tin * touts.size, tokens_out=float(touts.sum()),
                                     requests=float(touts.size)))
    return out


def test_interval_fit_exact_without_within_interval_covariance() -> None:
    rng = np.random.default_rng(3)
    a = (0.05, 2.0, 1e-4)
    ivs = _intervals_same_tin(rng, a, 30) + [IntervalAggregate(energy_j=500.0, tokens_in=0, tokens_out=0, requests=0)]
    m = fit_workload_model_from_intervals(ivs, fitted_at_s=1_700_000_000.0)
    assert (m.a0_j_per_input_token, m.a1_j_per_output_token, m.a2_j_per_token_product) == pytest.approx(a, rel=1e-6)
    assert m.estimator == "intervals" and m.n == 30  # the idle interval is skipped
    assert m.requests == sum(int(iv.requests) for iv in ivs)
    assert m.fitted_at_s == 1_700_000_000.0 and m.r_squared == pytest.approx(1.0)


def test_interval_fit_cross_term_needs_no_covariance() -> None:
    # Within-interval covariance of Tin and Tout makes Σ Tin*Tout / R differ from m_in*m_out:
    # the aggregate estimator is then biased (documented limit), the per-request fit is not.
    rng = np.random.default_rng(5)
    a = (0.05, 2.0, 1e-3)
    ivs, tins, touts, ys = [], [], [], []
    for _ in range(40):
        base = rng.integers(10, 1000, 20).astype(float)
        tin, tout = base, base * float(rng.uniform(0.2, 2.0))  # Tout grows with Tin within the interval
        e = a[0] * tin + a[1] * tout + a[2] * tin * tout
        ivs.append(IntervalAggregate(energy_j=float(e.sum()), tokens_in=float(tin.sum()), tokens_out=float(tout.sum()),
                                     requests=20.0))
        tins.extend(tin)
        touts.extend(tout)
        ys.extend(e)
    per_request = fit_workload_model(tins, touts, ys)
    assert per_request.a2_j_per_token_product == pytest.approx(a[2], rel=1e-6)
    aggregated = fit_workload_model_from_intervals(ivs)
    assert aggregated.a2_j_per_token_product != pytest.approx(a[2], rel=0.05)


def test_interval_fit_underdetermined_names_the_skipped() -> None:
    ivs = [IntervalAggregate(energy_j=1.0, tokens_in=1.0, tokens_out=1.0, requests=1.0)] * 2 + [
        IntervalAggregate(energy_j=5.0, tokens_in=0.0, tokens_out=0.0, requests=0.0)
    ]
    with pytest.raises(UnderdeterminedError, match="1 interval"):
        fit_workload_model_from_intervals(ivs)
    with pytest.raises(ValueError):
        IntervalAggregate(energy_j=-1.0, tokens_in=0, tokens_out=0, requests=1)
    m = fit_workload_model([1.0, 2.0, 3.0, 5.0], [4.0, 1.0, 7.0, 2.0], [12.0, 5.0, 32.5, 14.0])
    with pytest.raises(ValueError, match="tokens_in"):
        m.predict_one(-1, 3)

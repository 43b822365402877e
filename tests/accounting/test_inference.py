"""Breakeven, efficiency and the workload model; EPA equivalents; region presets."""

from __future__ import annotations

import numpy as np
import pytest

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

"""Footprint engine: hand-computed references and hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlfootprint.accounting import units
from mlfootprint.accounting.factors import Factors, IntensityInterval, IntensitySeries
from mlfootprint.accounting.footprint import (
    compute_footprint,
    energy_weighted_intensity,
    samples_co2e_g,
    samples_energy_j,
)
from mlfootprint.accounting.inputs import EnergyInterval, Usage

KWH = units.J_PER_KWH
REF = Factors()  # METHODOLOGY §3 reference cluster: PUE 1.2, CI 332, WUE 0.2, EWIF 1.29


def test_reference_cluster_by_hand() -> None:
    # 1,000 kWh of IT energy: facility 1,200 kWh; 1,200 * 332 g = 398.4 kg;
    # on-site 1,000 * 0.2 = 200 L; off-site 1,200 * 1.29 = 1,548 L.
    fp = compute_footprint(Usage(untimed_energy_j={"gpu": 800 * KWH, "cpu": 200 * KWH}), REF)
    assert fp.energy_it_total_j == pytest.approx(1000 * KWH)
    assert fp.energy_facility_j["cpu"] == pytest.approx(240 * KWH)
    assert fp.operational_co2e_g == pytest.approx(398_400.0)
    assert fp.water_onsite_l == pytest.approx(200.0)
    assert fp.water_offsite_l == pytest.approx(1548.0)
    assert fp.embodied_co2e_g is None and fp.embodied_water_l is None
    assert any("embodied" in n for n in fp.notes)
    assert fp.total_water_l == pytest.approx(1748.0)


def test_facility_basis_by_hand() -> None:
    f = Factors(onsite_water_basis="facility")
    fp = compute_footprint(Usage(untimed_energy_j={"gpu": 1000 * KWH}), f)
    assert fp.water_onsite_l == pytest.approx(240.0)  # 1,000 * 1.2 * 0.2
    assert fp.water_offsite_l == pytest.approx(1548.0)


def test_embodied_check_from_methodology() -> None:
    # 1.17M GPU-hours over a 4-year life -> ~16 tCO2e and ~3.4 kL (METHODOLOGY §4);
    # exactly 463.013 kg * 1.17e6 / 35,040 h = 15.46 t and 102.6 L * ... = 3,426 L.
    fp = compute_footprint(Usage(gpu_hours={"H100": 1.17e6}), REF)
    assert fp.embodied_co2e_g is not None and fp.embodied_water_l is not None
    assert fp.embodied_co2e_g / 1e6 == pytest.approx(16.0, rel=0.05)
    assert fp.embodied_co2e_g == pytest.approx(463.013e3 * 1.17e6 / 35_040)
    assert fp.embodied_water_l / 1e3 == pytest.approx(3.4, rel=0.02)
    # per GPU-hour: ~0.013 kgCO2e and ~0.003 L
    assert fp.embodied_co2e_g / 1.17e6 / 1e3 == pytest.approx(0.013, rel=0.05)
    assert fp.embodied_water_l / 1.17e6 == pytest.approx(0.003, rel=0.05)


def test_host_hours_need_a_factor_and_use_host_lifetime() -> None:
    with pytest.raises(ValueError, match="embodied_host"):
        compute_footprint(Usage(host_hours={"dgx": 10.0}), REF)
    f = Factors(embodied_host={"default": {"co2e_kg": 1000.0, "water_l": 50.0}}, host_lifetime_years=5)
    fp = compute_footprint(Usage(host_hours={"dgx": 43_800.0}), f)  # one whole life
    assert fp.embodied_co2e_g == pytest.approx(1e6)
    assert fp.embodied_water_l == pytest.approx(50.0)


def test_market_based_is_separate() -> None:
    f = Factors(market_carbon_intensity_g_per_kwh=0.0)
    fp = compute_footprint(Usage(untimed_energy_j={"gpu": KWH}), f)
    assert fp.operational_market_co2e_g == 0.0
    assert fp.total_co2e_g == pytest.approx(1.2 * 332)


def test_time_series_split_by_hand() -> None:
    # 2 kWh spread over [0.5 h, 1.5 h): half at 100 g/kWh, half at 300 g/kWh, PUE 1
    series = [IntensityInterval(start_s=0, end_s=3600, g_per_kwh=100), IntensityInterval(start_s=3600, end_s=7200, g_per_kwh=300)]
    f = Factors(pue=1.0, carbon_intensity_g_per_kwh=series)
    u = Usage(intervals=[EnergyInterval(start_s=1800, end_s=5400, component="gpu", energy_j=2 * KWH)])
    assert compute_footprint(u, f).operational_co2e_g == pytest.approx(400.0)


def test_series_gaps_and_untimed_energy_are_errors() -> None:
    series = [IntensityInterval(start_s=0, end_s=10, g_per_kwh=1), IntensityInterval(start_s=20, end_s=30, g_per_kwh=1)]
    f = Factors(carbon_intensity_g_per_kwh=series)
    with pytest.raises(ValueError, match="does not cover"):
        compute_footprint(Usage(intervals=[EnergyInterval(start_s=5, end_s=25, component="gpu", energy_j=1)]), f)
    with pytest.raises(ValueError, match="does not cover"):
        compute_footprint(Usage(intervals=[EnergyInterval(start_s=25, end_s=35, component="gpu", energy_j=1)]), f)
    with pytest.raises(ValueError, match="untimed"):
        compute_footprint(Usage(untimed_energy_j={"gpu": 1.0}), f)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"pue": 0.99}, "pue"),
        ({"pue": float("nan")}, "pue"),
        ({"wueOnsiteLPerKwh": -1}, "wueOnsiteLPerKwh"),
        ({"onsite_water_basis": "site"}, "onsite_water_basis"),
        ({"carbon_intensity_g_per_kwh": -5}, "carbon_intensity_g_per_kwh"),
        ({"gpu_lifetime_years": 0}, "gpu_lifetime_years"),
        ({"typo": 1}, "typo"),
        ({"carbon_intensity_g_per_kwh": [{"start_s": 10, "end_s": 5, "g_per_kwh": 1}]}, "carbon_intensity_g_per_kwh"),
        (
            {"carbon_intensity_g_per_kwh": [{"start_s": 0, "end_s": 5, "g_per_kwh": 1}, {"start_s": 4, "end_s": 8, "g_per_kwh": 1}]},
            "carbon_intensity_g_per_kwh",
        ),
    ],
)
def test_factor_validation_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Factors.model_validate(data)
    assert field in str(info.value)


def test_factors_round_trip_json_and_camel_case() -> None:
    f = Factors(carbon_intensity_g_per_kwh=[IntensityInterval(start_s=0, end_s=1, g_per_kwh=5)])
    again = Factors.model_validate_json(f.model_dump_json(by_alias=True))
    assert again == f
    assert Factors.model_validate({"onsiteWaterBasis": "facility"}).onsite_water_basis == "facility"


# ---------------------------------------------------------------- properties
energies = st.floats(min_value=0, max_value=1e12, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(e=energies, k=st.floats(min_value=0, max_value=1e3), pue=st.floats(min_value=1, max_value=3))
def test_linear_in_energy(e: float, k: float, pue: float) -> None:
    f = Factors(pue=pue)
    a = compute_footprint(Usage(untimed_energy_j={"gpu": e}), f)
    b = compute_footprint(Usage(untimed_energy_j={"gpu": e * k}), f)
    for name in ("operational_co2e_g", "water_onsite_l", "water_offsite_l", "energy_facility_total_j"):
        assert getattr(b, name) == pytest.approx(k * getattr(a, name), rel=1e-9, abs=1e-9)


@st.composite
def timed_usage(draw: st.DrawFn) -> list[EnergyInterval]:
    n = draw(st.integers(1, 8))
    out = []
    for _ in range(n):
        s = draw(st.floats(0, 86_000))
        d = draw(st.floats(1, 3600))
        out.append(EnergyInterval(
            start_s=s, end_s=min(s + d, 86_400.0) if s + d <= 86_400 else 86_400.0,
            component=draw(st.sampled_from(["gpu", "cpu", "dram", "other"])), energy_j=draw(st.floats(0, 1e9)),
        ))
    return [i for i in out if i.end_s > i.start_s] or [EnergyInterval(start_s=0, end_s=1, component="gpu", energy_j=1)]


@settings(max_examples=60, deadline=None)
@given(ivs=timed_usage(), ci=st.floats(0, 1000), cuts=st.lists(st.floats(1, 86_399), max_size=6))
def test_constant_series_equals_scalar(ivs: list[EnergyInterval], ci: float, cuts: list[float]) -> None:
    bounds = sorted({0.0, 86_400.0, *cuts})
    series = [IntensityInterval(start_s=a, end_s=b, g_per_kwh=ci) for a, b in zip(bounds, bounds[1:], strict=False)]
    scalar = compute_footprint(Usage(intervals=ivs), Factors(carbon_intensity_g_per_kwh=ci))
    timed = compute_footprint(Usage(intervals=ivs), Factors(carbon_intensity_g_per_kwh=series))
    assert timed.operational_co2e_g == pytest.approx(scalar.operational_co2e_g, rel=1e-9, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    ivs=timed_usage(),
    values=st.lists(st.floats(0, 1000), min_size=24, max_size=24),
    frac=st.floats(0.01, 0.99),
)
def test_splitting_intervals_never_changes_totals(ivs: list[EnergyInterval], values: list[float], frac: float) -> None:
    series = [IntensityInterval(start_s=h * 3600.0, end_s=(h + 1) * 3600.0, g_per_kwh=v) for h, v in enumerate(values)]
    f = Factors(carbon_intensity_g_per_kwh=series)
    split: list[EnergyInterval] = []
    for i in ivs:
        m = i.start_s + frac * (i.end_s - i.start_s)
        if not (i.start_s < m < i.end_s):
            split.append(i)
            continue
        split.append(EnergyInterval(start_s=i.start_s, end_s=m, component=i.component, energy_j=i.energy_j * frac))
        split.append(EnergyInterval(start_s=m, end_s=i.end_s, component=i.component, energy_j=i.energy_j * (1 - frac)))
    a = compute_footprint(Usage(intervals=ivs), f)
    b = compute_footprint(Usage(intervals=split), f)
    assert b.operational_co2e_g == pytest.approx(a.operational_co2e_g, rel=1e-7, abs=1e-6)
    assert b.energy_it_total_j == pytest.approx(a.energy_it_total_j, rel=1e-9, abs=1e-6)
    assert b.water_offsite_l == pytest.approx(a.water_offsite_l, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(e=energies, pue=st.floats(1, 3), wue=st.floats(0, 10), ewif=st.floats(0, 10))
def test_water_bases_differ_by_pue_on_onsite_part(e: float, pue: float, wue: float, ewif: float) -> None:
    u = Usage(untimed_energy_j={"gpu": e})
    it = compute_footprint(u, Factors(pue=pue, wue_onsite_l_per_kwh=wue, wue_offsite_l_per_kwh=ewif))
    fac = compute_footprint(u, Factors(pue=pue, wue_onsite_l_per_kwh=wue, wue_offsite_l_per_kwh=ewif, onsite_water_basis="facility"))
    assert fac.water_onsite_l == pytest.approx(it.water_onsite_l * pue, rel=1e-12, abs=1e-12)
    assert fac.water_offsite_l == it.water_offsite_l


@settings(max_examples=60, deadline=None)
@given(x=st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_unit_round_trips(x: float) -> None:
    assert units.j_to_kwh(units.kwh_to_j(x)) == pytest.approx(x, rel=1e-12, abs=1e-300)
    assert units.g_to_kg(units.kg_to_g(x)) == pytest.approx(x, rel=1e-12, abs=1e-300)
    assert units.s_to_hours(units.hours_to_s(x)) == pytest.approx(x, rel=1e-12, abs=1e-300)
    assert units.us_gallons_to_l(units.l_to_us_gallons(x)) == pytest.approx(x, rel=1e-12, abs=1e-300)


def test_units_by_hand() -> None:
    assert units.kwh_to_j(1) == 3.6e6
    assert units.years_to_hours(4) == 35_040
    assert units.l_to_us_gallons(3.785411784) == pytest.approx(1.0)


# ---------------------------------------------------------------- samples
def test_samples_trapezoid_and_hourly_series() -> None:
    t = np.array([0.0, 1800.0, 3600.0, 5400.0])
    p = np.array([1000.0, 1000.0, 1000.0, 1000.0])  # 1 kW for 1.5 h = 1.5 kWh
    assert samples_energy_j(t, p) == pytest.approx(1.5 * KWH)
    series = IntensitySeries([0.0, 3600.0], [3600.0, 7200.0], [100.0, 300.0])
    # 1 kWh at 100 + 0.5 kWh at 300, PUE 1.2
    assert samples_co2e_g(t, p, series, pue=1.2) == pytest.approx((100 + 150) * 1.2)


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 500.0), min_size=1, max_size=40),
    watts=st.lists(st.floats(0.0, 1000.0), min_size=41, max_size=41),
    values=st.lists(st.floats(0, 1000), min_size=12, max_size=12),
)
def test_samples_match_interval_engine(gaps: list[float], watts: list[float], values: list[float]) -> None:
    t = np.concatenate([[0.0], np.cumsum(gaps)])
    p = np.asarray(watts[: t.size])
    series = IntensitySeries(np.arange(12) * 3600.0, np.arange(1, 13) * 3600.0, values)
    keep = np.diff(t) > 0
    s, e = t[:-1][keep], t[1:][keep]
    en = (0.5 * (p[1:] + p[:-1]) * np.diff(t))[keep]
    expected = energy_weighted_intensity(s, e, en, series) / KWH
    assert samples_co2e_g(t, p, series) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert math.isfinite(samples_energy_j(t, p))


def test_samples_outside_series_rejected() -> None:
    series = IntensitySeries([0.0], [3600.0], [100.0])
    with pytest.raises(ValueError, match="does not cover"):
        samples_co2e_g([0.0, 4000.0], [1.0, 1.0], series)

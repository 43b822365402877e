"""Ledger arithmetic: counter resets, exporter and operator restarts neither drop nor double."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.accounting.factors import Factors, IntensityInterval
from mlfootprint.operator.ledger import (
    Increment,
    advance_counters,
    apply_increment,
    counter_delta,
    increment_from_deltas,
    series_key,
)


def test_counter_delta_rules() -> None:
    assert counter_delta(None, 5.0) == 5.0  # first sight: all of it
    assert counter_delta(5.0, 7.5) == 2.5
    assert counter_delta(7.5, 2.0) == 2.0  # reset: the new value is all new energy
    assert counter_delta(3.0, 3.0) == 0.0
    with pytest.raises(ValueError):
        counter_delta(1.0, -1.0)


# A counter's life: increments, occasionally reset to zero (exporter restart) before an increment.
steps = st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), st.booleans()), min_size=1, max_size=60)


@given(steps, st.data())
@settings(max_examples=200, deadline=None)
def test_energy_is_conserved_across_resets_and_operator_restarts(life: list[tuple[float, bool]], data: st.DataObject) -> None:
    """Sum of ledger deltas == true energy, whatever the observation and operator-restart
    pattern, given the exporter is scraped before it restarts and once right after (a reset
    that climbs back above the last value before being seen is indistinguishable from growth)."""
    key = series_key("gpu", "pod", "c", "GPU-1")
    true_total = 0.0
    value = 0.0
    counters: dict[str, float] = {}
    accounted = 0.0
    pending_since_obs = 0.0
    for inc, reset in life:
        if reset:
            if pending_since_obs:  # observe just before the reset (the exporter's last scrape)
                deltas, counters = advance_counters(counters, {key: value})
                accounted += sum(deltas.values())
            value = 0.0
            deltas, counters = advance_counters(counters, {key: value})  # first scrape after the restart
            accounted += sum(deltas.values())
        value += inc
        true_total += inc
        pending_since_obs = inc
        if data.draw(st.booleans()):
            # operator restart: the ledger is reloaded from what was written (the status)
            counters = dict(counters)
        if data.draw(st.booleans()):
            deltas, counters = advance_counters(counters, {key: value})
            accounted += sum(deltas.values())
            pending_since_obs = 0.0
    deltas, counters = advance_counters(counters, {key: value})
    accounted += sum(deltas.values())
    assert math.isclose(accounted, true_total, rel_tol=1e-9, abs_tol=1e-6)


@given(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=30))
def test_repeating_an_observation_adds_nothing(values: list[float]) -> None:
    key = series_key("gpu", "p", "", "u")
    counters: dict[str, float] = {}
    running = 0.0
    total = 0.0
    for v in values:
        running += v
        d1, counters = advance_counters(counters, {key: running})
        d2, counters = advance_counters(counters, {key: running})  # e.g. a refresh re-run after a crash
        total += sum(d1.values()) + sum(d2.values())
    assert math.isclose(total, running, rel_tol=1e-9, abs_tol=1e-6)


def test_unobserved_series_keep_their_last_value() -> None:
    _, counters = advance_counters({}, {"gpu|a": 10.0, "gpu|b": 5.0})
    deltas, counters = advance_counters(counters, {"gpu|a": 12.0})
    assert deltas == {"gpu|a": 2.0}
    assert counters == {"gpu|a": 12.0, "gpu|b": 5.0}


def test_increment_sums_by_kind() -> None:
    inc = increment_from_deltas(
        {"gpu|p|c|u1": 10.0, "gpu|p|c|u2": 5.0, "cpu|p|c": 3.0, "dram|p|c": 1.0, "alloc|p|c|H100": 60.0, "swings|p|c": 2.0}
    )
    assert (inc.gpu_j, inc.cpu_j, inc.dram_j, inc.alloc_s, inc.swings) == (15.0, 3.0, 1.0, {"H100": 60.0}, 2.0)


def test_apply_increment_matches_the_formulas() -> None:
    f = Factors(pue=1.5, carbon_intensity_g_per_kwh=400.0, wue_onsite_l_per_kwh=0.5, wue_offsite_l_per_kwh=2.0)
    t = apply_increment({}, Increment(gpu_j=3.6e6, cpu_j=3.6e6, alloc_s={"default": 3600.0}), f, 0.0, 3600.0)
    assert t["itJ"] == pytest.approx(7.2e6)
    assert t["facilityJ"] == pytest.approx(1.08e7)
    assert t["co2eOpG"] == pytest.approx(2 * 1.5 * 400.0)  # 2 kWh IT x PUE x CI
    assert t["waterOnL"] == pytest.approx(2 * 0.5)  # basis it
    assert t["waterOffL"] == pytest.approx(2 * 1.5 * 2.0)
    # 1 GPU-hour of a 463.013 kg GPU over 4 years
    assert t["co2eEmbG"] == pytest.approx(463.013e3 / (4 * 8760))
    assert t["activeS"] == 3600.0


def test_time_varying_intensity_is_integrated_per_interval_not_total_times_average() -> None:
    # 100 gCO2e/kWh in hour 0, 500 in hour 1; 3 kWh in hour 0, 1 kWh in hour 1.
    ci = [IntensityInterval(start_s=0, end_s=3600, g_per_kwh=100), IntensityInterval(start_s=3600, end_s=7200, g_per_kwh=500)]
    f = Factors(pue=1.0, carbon_intensity_g_per_kwh=ci)
    t = apply_increment({}, Increment(gpu_j=3 * 3.6e6), f, 0, 3600)
    t = apply_increment(t, Increment(gpu_j=1 * 3.6e6), f, 3600, 7200)
    assert t["co2eOpG"] == pytest.approx(3 * 100 + 1 * 500)  # 800 g
    assert t["co2eOpG"] != pytest.approx(4 * (100 + 500) / 2)  # not total x average (1200 g)


def test_factor_change_applies_from_its_time_forward() -> None:
    a = Factors(pue=1.0, carbon_intensity_g_per_kwh=100.0)
    b = Factors(pue=1.0, carbon_intensity_g_per_kwh=300.0)
    t = apply_increment({}, Increment(gpu_j=3.6e6), a, 0, 10)
    t = apply_increment(t, Increment(gpu_j=3.6e6), b, 10, 20)
    assert t["co2eOpG"] == pytest.approx(400.0)

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlfootprint.exporter.counters import (
    CounterEvent,
    DeviceEnergyState,
    add_power_sample,
    counter_delta,
    take_energy,
    trapezoid_j,
)

MAX = 262_143_328_850


@pytest.mark.parametrize(
    ("prev", "cur", "max_range", "plausible", "expected", "event"),
    [
        (None, 100, None, None, 0.0, CounterEvent.FIRST),  # exporter (re)start: baseline only
        (100, 150, None, None, 50.0, CounterEvent.NORMAL),
        (100, 100, None, None, 0.0, CounterEvent.NORMAL),
        (MAX - 10, 5, MAX, None, 15.0, CounterEvent.WRAP),  # RAPL wrap-around
        (MAX, 0, MAX, None, 0.0, CounterEvent.WRAP),
        (5000, 30, None, None, 30.0, CounterEvent.RESET),  # driver reload: restart from 0
        (MAX + 5, 3, MAX, None, 3.0, CounterEvent.RESET),  # prev beyond range: not a wrap
        (100, 10**12, None, 1000.0, 0.0, CounterEvent.IMPLAUSIBLE),
        (5000, 10**9, None, 1000.0, 0.0, CounterEvent.IMPLAUSIBLE),  # reset to a huge value
        (100, None, None, None, 0.0, CounterEvent.INVALID),
        (100, -1, None, None, 0.0, CounterEvent.INVALID),
        (100, math.nan, None, None, 0.0, CounterEvent.INVALID),
        (100, math.inf, None, None, 0.0, CounterEvent.INVALID),
    ],
)
def test_counter_delta_cases(prev, cur, max_range, plausible, expected, event) -> None:
    assert counter_delta(prev, cur, max_range, plausible) == (expected, event)


@given(
    start=st.integers(0, 1000),
    increments=st.lists(st.integers(0, 400), min_size=1, max_size=50),
    max_range=st.integers(500, 2000),
)
def test_wrapping_counter_sums_to_true_energy(start: int, increments: list[int], max_range: int) -> None:
    """A counter that wraps at max_range, read at least once per wrap, loses nothing."""
    start %= max_range
    true_total = 0
    value = start
    prev: int | None = None
    total = 0.0
    for i, inc in enumerate([0, *increments]):
        true_total += inc if i else 0
        value = (value + inc) % max_range if i else value
        delta, _event = counter_delta(prev, value, max_range)
        assert delta >= 0
        total += delta
        prev = value
    assert total == pytest.approx(true_total)


@given(st.lists(st.one_of(st.none(), st.floats(-10, 1e6), st.just(math.nan), st.just(math.inf)), max_size=40))
def test_never_negative(values: list[float | None]) -> None:
    prev = None
    for v in values:
        delta, event = counter_delta(prev, v, None, 1e5)
        assert delta >= 0 and math.isfinite(delta)
        if event is not CounterEvent.INVALID:
            prev = v


def test_trapezoid() -> None:
    assert trapezoid_j(0, 100, 2, 300) == 400
    assert trapezoid_j(2, 100, 1, 300) == 0  # time going backwards
    assert trapezoid_j(0, math.nan, 1, 1) == 0


def test_take_energy_counter_and_integral_paths() -> None:
    s = DeviceEnergyState()
    s, j, ev = take_energy(s, 1_000_000, None, 700)
    assert (j, ev) == (0.0, CounterEvent.FIRST)
    s, j, ev = take_energy(s, 1_500_000, 1.0, 700)
    assert (j, ev) == (500.0, CounterEvent.NORMAL)
    s, j, ev = take_energy(s, 200_000, 1.0, 700)  # driver reload
    assert (j, ev) == (200.0, CounterEvent.RESET)
    s, j, ev = take_energy(s, None, 1.0, 700)  # counter vanished: integral path (empty)
    assert j == 0.0
    s = add_power_sample(DeviceEnergyState(), 0.0, 100.0)
    s = add_power_sample(s, 0.1, 300.0)
    s = add_power_sample(s, 0.2, 300.0)
    s, j, ev = take_energy(s, None, 0.2, 700)
    assert j == pytest.approx(50.0) and ev is None
    assert s.integrated_j == 0.0 and s.last_sample_w == 300.0

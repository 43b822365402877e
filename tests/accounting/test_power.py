"""Power-fluctuation statistics: hand-computed cases and batch == incremental."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.accounting.power import PowerStats, SwingCounter, power_stats


def test_flat_trace_has_no_swings() -> None:
    s = power_stats([0.0, 1.0, 2.0], [100.0, 100.0, 100.0], device_max_w=700.0)
    assert s == PowerStats(count=3, mean_w=100.0, peak_w=100.0, min_w=100.0, p50_w=100.0, p90_w=100.0, p99_w=100.0, swings=0)


def test_checkpoint_dips_count_once_per_step() -> None:
    # 10 Hz, 650 W training with a 100 W checkpoint dip from t=1.0 s to t=2.0 s
    t = np.arange(0.0, 4.0, 0.1)
    p = np.where((t >= 1.0 - 1e-9) & (t < 2.0 - 1e-9), 100.0, 650.0)
    s = power_stats(t, p, device_max_w=700.0, swing_fraction=0.5, swing_window_s=1.0)
    assert s.swings == 2  # down once, up once
    assert s.peak_w == 650.0 and s.min_w == 100.0


def test_time_weighted_mean() -> None:
    # trapezoid: 0..1 s at 100 W, then ramp to 300 W over 1 s -> (100 + 200) / 2 s
    s = power_stats([0.0, 1.0, 2.0], [100.0, 100.0, 300.0], device_max_w=700.0)
    assert s.mean_w == pytest.approx(150.0)


def test_swing_outside_window_not_counted() -> None:
    s = power_stats([0.0, 5.0], [600.0, 100.0], device_max_w=700.0, swing_window_s=1.0)
    assert s.swings == 0
    s = power_stats([0.0, 1.0], [600.0, 100.0], device_max_w=700.0, swing_window_s=1.0)
    assert s.swings == 1  # window inclusive of t_i - window


def test_incremental_returns_flags() -> None:
    c = SwingCounter(device_max_w=700.0)
    flags = [c.add(t, p) for t, p in [(0.0, 600.0), (0.1, 100.0), (0.2, 100.0), (0.3, 650.0)]]
    assert flags == [False, True, False, True]
    assert c.swings == 2


@pytest.mark.parametrize(
    ("t", "p", "kw"),
    [
        ([], [], {}),
        ([0.0, 1.0], [1.0], {}),
        ([1.0, 0.0], [1.0, 1.0], {}),
        ([0.0, 1.0], [float("nan"), 1.0], {}),
        ([0.0, 1.0], [-1.0, 1.0], {}),
        ([0.0, 1.0], [1.0, 1.0], {"device_max_w": 0.0}),
        ([0.0, 1.0], [1.0, 1.0], {"swing_window_s": -1.0}),
    ],
)
def test_invalid_input(t: list[float], p: list[float], kw: dict[str, float]) -> None:
    kwargs = {"device_max_w": 700.0, **kw}
    with pytest.raises(ValueError):
        power_stats(t, p, **kwargs)


def test_counter_rejects_time_going_back() -> None:
    c = SwingCounter(700.0)
    c.add(1.0, 10.0)
    with pytest.raises(ValueError, match="decrease"):
        c.add(0.5, 10.0)


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    n = draw(st.integers(min_value=1, max_value=60))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5]), min_size=n, max_size=n))
    t = np.cumsum(gaps).tolist()
    p = draw(st.lists(st.sampled_from([0.0, 50.0, 100.0, 300.0, 349.0, 351.0, 450.0, 650.0, 700.0]), min_size=n, max_size=n))
    return t, p


@settings(max_examples=150, deadline=None)
@given(trace=traces(), frac=st.sampled_from([0.1, 0.3, 0.5, 0.8]), window=st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0]))
def test_batch_equals_incremental(trace: tuple[list[float], list[float]], frac: float, window: float) -> None:
    t, p = trace
    c = SwingCounter(700.0, frac, window)
    flags = [c.add(ti, pi) for ti, pi in zip(t, p, strict=True)]
    s = power_stats(t, p, device_max_w=700.0, swing_fraction=frac, swing_window_s=window)
    assert s.swings == c.swings == sum(flags)
    assert s.min_w <= s.p50_w <= s.p90_w <= s.p99_w <= s.peak_w
    assert s.min_w - 1e-9 <= s.mean_w <= s.peak_w + 1e-9


def test_set_device_max_changes_the_threshold_and_keeps_the_window() -> None:
    counter = SwingCounter(device_max_w=700.0, swing_fraction=0.5, swing_window_s=1.0)
    counter.add(0.0, 600.0)
    counter.set_device_max(350.0)  # the consumer's share halved: threshold 350 W -> 175 W
    assert counter.add(0.5, 400.0) is True  # 200 W drop within the kept window > 175 W
    assert counter.swings == 1
    fresh = SwingCounter(device_max_w=700.0, swing_fraction=0.5, swing_window_s=1.0)
    fresh.add(0.0, 600.0)
    assert fresh.add(0.5, 400.0) is False  # the same drop is no swing at 350 W threshold
    with pytest.raises(ValueError, match="device_max_w"):
        counter.set_device_max(0.0)

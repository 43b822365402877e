"""Pure counter arithmetic: cumulative hardware counters -> energy per interval.

Rules (never negative, never doubled):

* first observation (exporter start or restart, new device): delta 0 — the reading is only
  a baseline; whatever the counter accumulated before we saw it is not ours to count;
* ``cur >= prev``: ``cur - prev``;
* ``cur < prev`` with a known range (RAPL ``max_energy_range_uj``): wrap-around,
  ``(max_range - prev) + cur`` (Linux powercap ABI: the counter wraps to 0 after
  ``max_energy_range_uj``; Kepler and node_exporter use the same formula);
* ``cur < prev`` without a range (NVML/DCGM energy since driver load): a reset (driver
  reload, GPU reset) — the counter restarted from 0, so ``cur`` is new energy;
* any delta above ``max_plausible`` (e.g. 2 × power limit × elapsed time) is discarded
  (delta 0, new baseline): a bogus jump must not be billed to anybody.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class CounterEvent(str, Enum):
    FIRST = "first"
    NORMAL = "normal"
    WRAP = "wrap"
    RESET = "reset"
    IMPLAUSIBLE = "implausible"
    INVALID = "invalid"


def counter_delta(
    prev: float | None,
    cur: float | None,
    max_range: float | None = None,
    max_plausible: float | None = None,
) -> tuple[float, CounterEvent]:
    """Increase of a cumulative counter between two reads (same unit as the counter)."""
    if cur is None or not math.isfinite(cur) or cur < 0:
        return 0.0, CounterEvent.INVALID
    if prev is None:
        return 0.0, CounterEvent.FIRST
    if cur >= prev:
        delta, event = cur - prev, CounterEvent.NORMAL
    elif max_range is not None and max_range > 0 and prev <= max_range:
        delta, event = (max_range - prev) + cur, CounterEvent.WRAP
    else:
        delta, event = cur, CounterEvent.RESET
    if max_plausible is not None and delta > max_plausible:
        return 0.0, CounterEvent.IMPLAUSIBLE
    return float(delta), event


def trapezoid_j(t0_s: float, p0_w: float, t1_s: float, p1_w: float) -> float:
    """Energy (J) between two power samples by the trapezoid rule (METHODOLOGY §2)."""
    dt = t1_s - t0_s
    if dt <= 0 or not (math.isfinite(p0_w) and math.isfinite(p1_w)):
        return 0.0
    return max(0.0, 0.5 * (p0_w + p1_w) * dt)


@dataclass(frozen=True, slots=True)
class DeviceEnergyState:
    """Integration state of one GPU: its last counter value and last power sample."""

    last_counter_mj: float | None = None
    last_sample_t_s: float | None = None
    last_sample_w: float | None = None
    integrated_j: float = 0.0  # trapezoid energy since the last attribution (no-counter path)


def add_power_sample(state: DeviceEnergyState, t_s: float, power_w: float) -> DeviceEnergyState:
    """Fold a power sample into the trapezoid integral (used when no energy counter exists)."""
    add = 0.0
    if state.last_sample_t_s is not None and state.last_sample_w is not None:
        add = trapezoid_j(state.last_sample_t_s, state.last_sample_w, t_s, power_w)
    return DeviceEnergyState(state.last_counter_mj, t_s, power_w, state.integrated_j + add)


def take_energy(
    state: DeviceEnergyState,
    counter_mj: float | None,
    elapsed_s: float | None,
    max_power_w: float | None,
) -> tuple[DeviceEnergyState, float, CounterEvent | None]:
    """Energy (J) of one GPU since the previous attribution.

    Uses the cumulative counter when the device has one, otherwise the trapezoid integral of
    the power samples folded in since the last call. Returns the new state, the joules and
    the counter event (None on the integral path).
    """
    if counter_mj is not None:
        plausible = None
        if elapsed_s is not None and max_power_w and elapsed_s > 0:
            plausible = 2.0 * max_power_w * elapsed_s * 1000.0 + 1000.0  # mJ, 2x headroom
        delta_mj, event = counter_delta(state.last_counter_mj, counter_mj, None, plausible)
        new_counter = state.last_counter_mj if event is CounterEvent.INVALID else counter_mj
        return (
            DeviceEnergyState(new_counter, state.last_sample_t_s, state.last_sample_w, 0.0),
            delta_mj / 1000.0,
            event,
        )
    energy_j = state.integrated_j
    return DeviceEnergyState(None, state.last_sample_t_s, state.last_sample_w, 0.0), energy_j, None

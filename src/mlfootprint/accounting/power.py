"""Power-fluctuation statistics from (time, watts) samples (docs/methodology.md §Power fluctuation).

Training power is not flat: on H100 nodes it sits above ~85% of the 700 W maximum while
computing and drops to ~15% at every checkpoint save; thousands of such swings per run
stress the grid (METHODOLOGY §6). We report mean, peak, minimum, percentiles and the count
of *swings*.

Swing definition (shared exactly by :func:`power_stats` and :class:`SwingCounter`):

* threshold ``thr = swing_fraction * device_max_w``;
* sample ``i`` (time ``t_i``, power ``p_i``) completes a swing when some earlier sample
  ``j`` in the current *reference window* satisfies ``|p_i - p_j| > thr``;
* the reference window of sample ``i`` holds the earlier samples ``j < i`` with
  ``t_j >= t_i - swing_window_s`` that were seen at or after the last counted swing;
* when a swing is counted the reference window restarts at the current sample, so one
  step (e.g. 650 W -> 100 W sampled at 10 Hz) counts once, not once per later sample.

Pure functions: no I/O, no global state.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

__all__ = ["PowerStats", "SwingCounter", "power_stats"]

ArrayLike = Sequence[float] | npt.NDArray[np.floating]


class PowerStats(BaseModel):
    """Summary of a power trace. ``mean_w`` is time-weighted (trapezoid energy / duration);
    percentiles are over samples (linear interpolation, numpy's default)."""

    model_config = ConfigDict(frozen=True)

    count: int
    mean_w: float
    peak_w: float
    min_w: float
    p50_w: float
    p90_w: float
    p99_w: float
    swings: int


def _check_params(device_max_w: float, swing_fraction: float, swing_window_s: float) -> None:
    if not (math.isfinite(device_max_w) and device_max_w > 0):
        raise ValueError(f"device_max_w must be a finite number > 0, got {device_max_w!r}")
    if not (math.isfinite(swing_fraction) and swing_fraction > 0):
        raise ValueError(f"swing_fraction must be a finite number > 0, got {swing_fraction!r}")
    if not (math.isfinite(swing_window_s) and swing_window_s >= 0):
        raise ValueError(f"swing_window_s must be a finite number >= 0, got {swing_window_s!r}")


class SwingCounter:
    """Incremental swing counter; same semantics as :func:`power_stats` (see module doc).

    Uses two monotonic deques (sliding-window max and min), so each sample costs O(1)
    amortised and memory is bounded by the samples inside one window.
    """

    def __init__(
        self, device_max_w: float, swing_fraction: float = 0.5, swing_window_s: float = 1.0
    ) -> None:
        _check_params(device_max_w, swing_fraction, swing_window_s)
        self._threshold_w = swing_fraction * device_max_w
        self._device_max_w = device_max_w
        self._window_s = swing_window_s
        self._max: deque[tuple[float, float]] = deque()  # (t, p), p decreasing
        self._min: deque[tuple[float, float]] = deque()  # (t, p), p increasing
        self._last_t: float | None = None
        self._swings = 0

    @property
    def swings(self) -> int:
        """Swings counted so far."""
        return self._swings

    def set_device_max(self, device_max_w: float) -> None:
        """Change the device maximum (hence the swing threshold) from the next sample on.

        The window of recent samples is kept: a consumer whose share of a device changes
        (time-slicing, MPS) keeps detecting swings across the change.
        """
        _check_params(device_max_w, 1.0, self._window_s)
        self._threshold_w = self._threshold_w / self._device_max_w * device_max_w
        self._device_max_w = device_max_w

    def add(self, t_s: float, power_w: float) -> bool:
        """Add one sample; return True when it completes a swing.

        Raises ValueError for non-finite values, negative power or time going backwards.
        """
        t_s = float(t_s)
        power_w = float(power_w)
        if not math.isfinite(t_s):
            raise ValueError(f"t_s must be finite, got {t_s!r}")
        if not (math.isfinite(power_w) and power_w >= 0):
            raise ValueError(f"power_w must be finite and >= 0, got {power_w!r}")
        if self._last_t is not None and t_s < self._last_t:
            raise ValueError(f"t_s must not decrease: {t_s!r} after {self._last_t!r}")
        self._last_t = t_s
        cutoff = t_s - self._window_s
        while self._max and self._max[0][0] < cutoff:
            self._max.popleft()
        while self._min and self._min[0][0] < cutoff:
            self._min.popleft()
        swing = bool(
            self._max
            and (self._max[0][1] - power_w > self._threshold_w or power_w - self._min[0][1] > self._threshold_w)
        )
        if swing:
            self._swings += 1
            self._max.clear()
            self._min.clear()
        while self._max and self._max[-1][1] <= power_w:
            self._max.pop()
        self._max.append((t_s, power_w))
        while self._min and self._min[-1][1] >= power_w:
            self._min.pop()
        self._min.append((t_s, power_w))
        return swing


def _as_arrays(times_s: ArrayLike, power_w: ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    t = np.asarray(times_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    if t.ndim != 1 or p.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"times_s and power_w must be 1-D arrays of equal length, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("no samples: times_s and power_w are empty")
    if not np.all(np.isfinite(t)):
        raise ValueError("times_s must be finite")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("power_w must be finite and >= 0")
    if np.any(np.diff(t) < 0):
        raise ValueError("times_s must be non-decreasing")
    return t, p


def _count_swings(
    t: npt.NDArray[np.float64], p: npt.NDArray[np.float64], threshold_w: float, window_s: float
) -> int:
    """Vectorised swing count.

    Without resets the window of sample i is [lo_i, i-1]; with resets it is a suffix of
    that, so every swing is among the no-reset *candidates* (found with a sparse table of
    range max/min). Candidates are then resolved in order with the reset rule.
    """
    n = t.size
    if n < 2:
        return 0
    idx = np.arange(n)
    lo = np.searchsorted(t, t - window_s, side="left")  # first j with t_j >= t_i - window
    length = idx - lo  # samples in the window, all strictly before i
    has = length >= 1
    if not np.any(has):
        return 0
    k_all = np.zeros(n, dtype=np.int64)
    k_all[has] = np.floor(np.log2(length[has])).astype(np.int64)
    # guard floating log2 rounding: ensure 2**k <= length < 2**(k+1)
    k_all[has] -= (np.left_shift(1, k_all[has]) > length[has]).astype(np.int64)
    k_all[has] += (np.left_shift(1, k_all[has] + 1) <= length[has]).astype(np.int64)
    candidate = np.zeros(n, dtype=bool)
    level_max = p.copy()
    level_min = p.copy()
    k_top = int(k_all[has].max())
    for k in range(k_top + 1):
        if k > 0:
            half = 1 << (k - 1)
            level_max = np.maximum(level_max[:-half], level_max[half:])
            level_min = np.minimum(level_min[:-half], level_min[half:])
        sel = np.nonzero(has & (k_all == k))[0]
        if sel.size == 0:
            continue
        a = lo[sel]
        b = sel - (1 << k)
        wmax = np.maximum(level_max[a], level_max[b])
        wmin = np.minimum(level_min[a], level_min[b])
        pi = p[sel]
        candidate[sel] = (wmax - pi > threshold_w) | (pi - wmin > threshold_w)
    swings = 0
    reset = -1
    for i in np.nonzero(candidate)[0].tolist():
        start = max(int(lo[i]), reset)
        if start > i - 1:
            continue
        seg = p[start:i]
        pi = p[i]
        if float(seg.max()) - pi > threshold_w or pi - float(seg.min()) > threshold_w:
            swings += 1
            reset = i
    return swings


def power_stats(
    times_s: ArrayLike,
    power_w: ArrayLike,
    *,
    device_max_w: float,
    swing_fraction: float = 0.5,
    swing_window_s: float = 1.0,
) -> PowerStats:
    """Mean (time-weighted), peak, min, p50/p90/p99 and swing count of a power trace.

    ``times_s`` must be non-decreasing; ``power_w`` finite and >= 0. A single sample (or
    zero duration) gives the arithmetic mean. Swings are defined in the module docstring
    (METHODOLOGY §6: count of swings larger than a fraction of device max within a window).
    Raises ValueError on empty or invalid input.
    """
    _check_params(device_max_w, swing_fraction, swing_window_s)
    t, p = _as_arrays(times_s, power_w)
    duration_s = float(t[-1] - t[0])
    if duration_s > 0:
        energy_j = float(np.sum((p[1:] + p[:-1]) * 0.5 * np.diff(t)))
        mean_w = energy_j / duration_s
    else:
        mean_w = float(np.mean(p))
    p50, p90, p99 = (float(x) for x in np.percentile(p, [50.0, 90.0, 99.0]))
    return PowerStats(
        count=int(p.size),
        mean_w=mean_w,
        peak_w=float(p.max()),
        min_w=float(p.min()),
        p50_w=p50,
        p90_w=p90,
        p99_w=p99,
        swings=_count_swings(t, p, swing_fraction * device_max_w, swing_window_s),
    )

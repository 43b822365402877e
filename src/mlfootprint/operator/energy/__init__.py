"""Energy sources of the operator: exporter scrape (default) and Prometheus (counters read back)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Observation"]


@dataclass
class Observation:
    """What a source saw for one run's pods.

    Exactly one of ``counters`` (cumulative values per ledger series key; the ledger takes
    reset-aware deltas) or ``deltas`` (increments already taken; empty when there is nothing
    new to account) is set.
    ``peak_w``/``min_w`` are the highest/lowest attributed GPU power of the pods (None: no data).
    """

    counters: dict[str, float] | None = None
    deltas: dict[str, float] | None = None
    peak_w: float | None = None
    min_w: float | None = None
    gpus: dict[str, str] = field(default_factory=dict)  # gpu_uuid -> gpu_model
    window_end_s: float | None = None  # Prometheus mode: the aligned end of the window

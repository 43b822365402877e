"""Energy sources of the operator: exporter scrape (default) and Prometheus (counters read back)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlfootprint.operator.ledger import ContainerObs

__all__ = ["Observation"]


@dataclass
class Observation:
    """What a source saw for one run's pods.

    ``containers``: (pod, container) -> cumulative counters; None when nothing new was read
    (Prometheus has no newer sample, or the source failed). ``complete``: every exporter
    answered, so a series that is absent has really gone (only then may the ledger fold it).
    ``peak_w``/``min_w``: the highest/lowest attributed GPU power of the pods (None: no data).
    ``problems``: what was wrong with the source (names and reasons, never values).
    """

    containers: dict[tuple[str, str], ContainerObs] | None = None
    complete: bool = False
    peak_w: float | None = None
    min_w: float | None = None
    gpus: dict[str, str] = field(default_factory=dict)  # gpu_uuid -> gpu_model
    window_end_s: float | None = None  # the time the counters were read (Prometheus: aligned)
    problems: tuple[str, ...] = ()

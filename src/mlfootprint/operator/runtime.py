"""The operator's runtime state, built once at startup and shared through kopf's ``memo``.

No module globals: every handler reaches these objects as ``memo.runtime``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.energy import Observation
from mlfootprint.operator.energy.intensity import IntensityReader
from mlfootprint.operator.energy.scrape import ExporterScraper
from mlfootprint.operator.energy.serving import ServingScraper
from mlfootprint.operator.factors_store import FactorsStore
from mlfootprint.operator.kube import Kube
from mlfootprint.operator.metrics import OperatorMetrics

__all__ = ["EnergySource", "Runtime", "ScrapeSource"]


class EnergySource(Protocol):
    name: str

    async def observe(self, namespace: str, pods: Sequence[str], since_s: float | None) -> tuple[Observation, bool]: ...

    async def close(self) -> None: ...


class ScrapeSource:
    """Exporter-scrape mode: cumulative counters from the shared snapshot."""

    name = "scrape"

    def __init__(self, scraper: ExporterScraper) -> None:
        self.scraper = scraper

    async def observe(self, namespace: str, pods: Sequence[str], since_s: float | None) -> tuple[Observation, bool]:
        snap = await self.scraper.snapshot()
        obs = snap.observe(namespace, pods)
        obs.window_end_s = snap.taken_at_s
        return obs, snap.ok

    async def close(self) -> None:
        await self.scraper.close()


@dataclass
class Runtime:
    cfg: OperatorConfig
    kube: Kube
    metrics: OperatorMetrics
    factors: FactorsStore
    energy: EnergySource
    serving: ServingScraper
    intensity: IntensityReader
    post_event: Callable[[dict[str, Any], str, str, str], None]
    clock: Callable[[], float] = time.time
    metrics_server: Any = None
    #: uid -> the status this operator last wrote and the API server accepted (never ahead of it)
    written: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: uid -> measurement time of the last reading that added nothing to the written ledger and
    #: was not written: the start of the next increment's interval (time attribution only)
    quiet: dict[str, float] = field(default_factory=dict)
    #: uids of workloads auto-discovery has created a run for (entries leave with the workload)
    discovered: set[str] = field(default_factory=set)

    async def close(self) -> None:
        await self.energy.close()
        await self.serving.close()
        await self.intensity.close()
        await self.kube.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()

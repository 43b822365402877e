"""PrometheusSource reads counters back and loses no energy when Prometheus scrapes sparsely.

`increase()` over back-to-back refresh windows returns nothing for a window holding fewer
than two samples (every window when Prometheus scrapes less often than the operator
refreshes) and drops the rise between windows; reading the counters' values and differencing
them in the ledger accounts every joule. The fake answers Prometheus' instant-query API the
way Prometheus does for a plain selector: the latest sample at or before the query time.
"""

from __future__ import annotations

import asyncio
import re

from mlfootprint.crd.models import Ledger
from mlfootprint.operator.energy.prometheus import PrometheusSource
from mlfootprint.operator.energy.snapshot import GPU_ENERGY
from mlfootprint.operator.ledger import advance

SCRAPE_S = 60.0  # Prometheus scrapes every minute...
REFRESH_S = 30.0  # ...the operator refreshes every 30 s
POWER_W = 700.0


class SparsePrometheus(PrometheusSource):
    """Samples of one pod's GPU energy counter every SCRAPE_S; instant queries only."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__("http://prometheus.invalid", step_s=REFRESH_S, lag_s=0.0, clock=lambda: clock[0])
        self.seen: list[str] = []

    async def _query(self, promql: str, t_s: float) -> list[dict]:  # type: ignore[type-arg]
        self.seen.append(promql)
        if not re.fullmatch(rf"max by \([a-z_, ]+\) \({GPU_ENERGY}\)", promql):
            return []  # other families have no series here; increase() of <2 samples is empty too
        last_sample_t = (t_s // SCRAPE_S) * SCRAPE_S
        labels = {"namespace": "ns", "pod": "p", "container": "c", "gpu_uuid": "GPU-1", "gpu_model": "H100"}
        return [{"metric": labels, "value": [t_s, str(POWER_W * last_sample_t)]}]


def test_sparse_scrapes_lose_no_energy() -> None:
    clock = [0.0]
    source = SparsePrometheus(clock)
    ledger = Ledger()
    since = 0.0
    total_j = 0.0

    async def cycles() -> None:
        nonlocal ledger, since, total_j
        for _ in range(20):
            clock[0] += REFRESH_S
            obs, ok = await source.observe("ns", ["p"], since)
            assert ok
            if obs.containers is not None:
                ledger, inc, _ = advance(ledger, obs.containers, None, live_pods={"p"}, complete=obs.complete, elapsed_s=None)
                total_j += inc.gpu_j
            since = obs.window_end_s if obs.window_end_s is not None else since

    asyncio.run(cycles())
    # 20 refreshes x 30 s = 600 s; the last sample is at 600 s: every joule of it is accounted.
    assert total_j == POWER_W * 600.0
    assert not any("increase(" in q for q in source.seen)


class SlowPrometheus(SparsePrometheus):
    """Loads of grid points at or after ``slow_from`` wait for ``release`` (a load that takes
    about an interval, as at 10,000 runs)."""

    def __init__(self, clock: list[float], slow_from: float) -> None:
        super().__init__(clock)
        self._prefetch = False
        self.slow_from = slow_from
        self.release = asyncio.Event()

    async def _query(self, promql: str, t_s: float) -> list[dict]:  # type: ignore[type-arg]
        if t_s >= self.slow_from:
            await self.release.wait()
        return await super()._query(promql, t_s)


def test_a_run_reads_the_loaded_point_while_the_newest_one_loads() -> None:
    """While the newest grid point loads, a run that has not read the previous one reads it at
    once (nothing lost: the next read takes the rest); a run that has read it waits."""
    clock = [REFRESH_S * 2]

    async def scenario() -> None:
        source = SlowPrometheus(clock, slow_from=REFRESH_S * 3)
        first, _ = await source.observe("ns", ["p"], None)  # loads t=60
        assert first.window_end_s == REFRESH_S * 2
        clock[0] = REFRESH_S * 3  # t=90 is due; its load hangs
        obs, ok = await asyncio.wait_for(source.observe("ns", ["q"], REFRESH_S), timeout=5)  # read t=30 before
        assert ok and obs.window_end_s == REFRESH_S * 2  # the loaded point, without waiting
        waiting = asyncio.ensure_future(source.observe("ns", ["p"], REFRESH_S * 2))  # has read t=60: waits
        await asyncio.sleep(0.05)
        assert not waiting.done()  # its load is held by `release`: done now would mean it read t=60 again
        source.release.set()
        obs, ok = await asyncio.wait_for(waiting, timeout=5)
        assert ok and obs.window_end_s == REFRESH_S * 3
        assert obs.containers is not None
        assert obs.containers[("p", "c")].gpu_j == POWER_W * 60.0  # the last scrape before t=90

    asyncio.run(scenario())

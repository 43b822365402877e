"""Prometheus mode: the exporters' per-pod counters, read back from Prometheus.

For clusters that already scrape the exporters with Prometheus (the path for large clusters:
the operator then makes a handful of queries per cycle instead of scraping every node).
Each cycle evaluates, at a grid point ``lag_s`` behind now (so Prometheus has scraped),
one instant query per counter family, ``max by (namespace, pod, container, ...) (m)``,
shared by all runs, and hands the *cumulative values* (with each container's counter start
time) to the ledger, which takes deltas exactly as in scrape mode
(``mlfootprint.operator.ledger.advance``).

Why values and not ``increase(m[window])`` per refresh window: ``increase()`` over
back-to-back windows drops the rise between the last sample of one window and the first
of the next (only partly restored by its extrapolation), and returns nothing at all for a
window holding fewer than two samples, which is every window when Prometheus scrapes less
often than the operator refreshes. Either way energy would be lost. Reading the counters
and differencing them in the ledger loses nothing, handles resets the way ``increase()``
does, and makes both modes give the same status for the same energy.

At scale (10,000 runs, 1,000 nodes: ~80,000 series per grid point) the families' queries
run concurrently; only the newest two grid points are kept in memory (a cycle's runs all read
the same one or two; keeping 64, as before, held ~64 x 10 MB of parsed series at 10,000 pods);
and the next grid point is loaded as soon as Prometheus can answer for it (``lag_s`` after
it), so the cycle's refreshes find it loaded instead of all waiting on the queries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from mlfootprint.operator.energy import Observation
from mlfootprint.operator.energy.snapshot import (
    GPU_ALLOC,
    GPU_ENERGY,
    HOST_ENERGY,
    LIMIT,
    MIN,
    PEAK,
    RATIO,
    START,
    SWINGS,
    ContainerSeries,
    observation_from,
)
from mlfootprint.operator.ledger import ContainerObs, valid_counter

__all__ = ["PrometheusSource", "aligned_eval_time"]

log = logging.getLogger(__name__)

#: metric -> the labels that identify its series once the scrape labels (instance, job) are
#: dropped. ``max``, not ``sum``: the same series scraped twice (an HA pair of Prometheus
#: servers behind one query API, an exporter pod replaced while its old series are not yet
#: stale) must count once.
_SERIES = {
    GPU_ENERGY: "namespace, pod, container, gpu_uuid, gpu_model",
    HOST_ENERGY: "namespace, pod, container, component",
    GPU_ALLOC: "namespace, pod, container, gpu_model",
    SWINGS: "namespace, pod, container",
    START: "namespace, pod, container, node",
    RATIO: "namespace, pod, container, le",
    LIMIT: "namespace, pod, container",
}


def aligned_eval_time(now_s: float, step_s: float, lag_s: float) -> float:
    """The latest grid point at least ``lag_s`` behind now."""
    return math.floor((now_s - lag_s) / step_s) * step_s


Pods = dict[tuple[str, str], dict[str, ContainerSeries]]  # (namespace, pod) -> container -> series


class PrometheusSource:
    name = "prometheus"

    def __init__(
        self, url: str, *, step_s: float, lag_s: float, timeout_s: float = 30.0, clock: Callable[[], float] = time.time,
        prefetch: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.step_s = step_s
        self.lag_s = lag_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        #: grid time -> the load of every container's series at that time (shared by all runs);
        #: only the newest KEEP are kept: one cycle's runs all read the same one or two points
        self._loads: dict[float, asyncio.Task[tuple[Pods, tuple[str, ...]]]] = {}
        self._prefetch = prefetch
        self._prefetcher: asyncio.Task[None] | None = None
        self.queries = 0

    KEEP = 2

    async def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.cancel()
            self._prefetcher = None
        for task in self._loads.values():
            task.cancel()
        self._loads.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _query(self, promql: str, t_s: float) -> list[dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self.queries += 1
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": promql, "time": f"{t_s:.3f}"}) as r:
            r.raise_for_status()
            doc = json.loads(await r.read())  # bytes: no intermediate str of a multi-MB answer
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus query failed: {doc.get('error')}")
        return list(doc["data"]["result"])

    async def _load(self, t_s: float) -> tuple[Pods, tuple[str, ...]]:
        """Every container's series at ``t_s`` (validated): the families' queries run at once."""
        pods: Pods = {}
        invalid: set[str] = set()
        queries = [(m, f"max by ({by}) ({m})") for m, by in _SERIES.items()]
        queries += [(PEAK, f"max by (namespace, pod, container) ({PEAK})"), (MIN, f"min by (namespace, pod, container) ({MIN})")]
        answers = await asyncio.gather(*(self._query(promql, t_s) for _metric, promql in queries))
        for (metric, _promql), rows in zip(queries, answers, strict=True):
            for row in rows:
                m = row["metric"]
                try:
                    v = float(row["value"][1])
                except (TypeError, ValueError, IndexError, KeyError):
                    invalid.add(metric)
                    continue
                ok = (0 < v < 1e11) if metric == START else (0 <= v <= 1e5) if metric in (PEAK, MIN, LIMIT) else valid_counter(v)
                if not ok:
                    invalid.add(metric)
                    continue
                c = pods.setdefault((m.get("namespace", ""), m.get("pod", "")), {}).setdefault(m.get("container", ""), ContainerSeries())
                if metric == GPU_ENERGY:
                    c.gpu[m.get("gpu_uuid", "")] = v
                    c.gpu_models[m.get("gpu_uuid", "")] = m.get("gpu_model", "unknown")
                elif metric == HOST_ENERGY:
                    c.host["dram" if m.get("component") == "dram" else "cpu"] = v
                elif metric == GPU_ALLOC:
                    c.alloc[m.get("gpu_model", "unknown")] = v
                elif metric == SWINGS:
                    c.swings = v
                elif metric == START:
                    c.start = v if c.start is None else max(c.start, v)
                    c.node = m.get("node") or c.node
                elif metric == RATIO:
                    if not c.add_bucket(m.get("le"), v):
                        invalid.add(metric)
                elif metric == LIMIT:
                    c.limit_w = v
                elif metric == PEAK:
                    c.peak_w = v
                else:
                    c.min_w = v
        problems = tuple(f"{n}: a value that is not a finite counter was dropped" for n in sorted(invalid))
        return pods, problems

    def _start_load(self, t_s: float) -> asyncio.Task[tuple[Pods, tuple[str, ...]]]:
        task = self._loads.get(t_s)
        if task is None:
            task = asyncio.create_task(self._load(t_s), name=f"prometheus load {t_s:.0f}")
            self._loads[t_s] = task
            for old in sorted(self._loads)[: -self.KEEP]:
                self._loads.pop(old)  # a run still awaiting it keeps its own reference
        return task

    async def _values(self, t_s: float) -> tuple[Pods, tuple[str, ...]]:
        """Every container's series at ``t_s``, loaded once for all runs (a failed load is
        forgotten, so the next refresh tries again)."""
        task = self._start_load(t_s)
        try:
            out = await asyncio.shield(task)
        except BaseException:
            if task.done() and self._loads.get(t_s) is task:
                self._loads.pop(t_s, None)
            raise
        if self._prefetch:
            self._schedule_prefetch(t_s + self.step_s)
        return out

    def _schedule_prefetch(self, t_s: float) -> None:
        """Load the next grid point as soon as Prometheus can answer for it (``lag_s`` after
        it), so the cycle's refreshes find it loaded instead of all waiting for the queries."""
        if self._prefetcher is not None and not self._prefetcher.done():
            return
        if t_s in self._loads:
            return

        async def later() -> None:
            await asyncio.sleep(max(t_s + self.lag_s - self._clock(), 0.0))
            try:
                await self._values(t_s)
            except Exception as e:  # noqa: BLE001 - a refresh will try again and report it
                log.debug("Prometheus prefetch failed", extra={"error": str(e)})

        self._prefetcher = asyncio.create_task(later(), name="prometheus prefetch")

    async def observe(self, namespace: str, pods: Sequence[str], since_s: float | None) -> tuple[Observation, bool]:
        """The pods' counters at the latest aligned time after ``since_s`` (the ledger's last read)."""
        end = aligned_eval_time(self._clock(), self.step_s, self.lag_s)
        if since_s is not None and end <= since_s:
            return Observation(containers=None, window_end_s=since_s), True  # nothing new to read yet
        if not self._start_load(end).done():
            # while the newest point loads, a run that has not read the one before reads that
            # (nothing is lost: the ledger differences cumulative counters, and the next refresh
            # reads the newest); at 10,000 runs every refresh waited on a load that took about an
            # interval, and only --refresh-concurrency runs were refreshed per load
            loaded = [t for t, task in self._loads.items() if t < end and (since_s is None or t > since_s)
                      and task.done() and not task.cancelled() and task.exception() is None]
            if loaded:
                end = max(loaded)
        try:
            series, problems = await self._values(end)
        except (TimeoutError, aiohttp.ClientError, RuntimeError, KeyError, ValueError) as e:
            reason = str(e) or type(e).__name__  # a timeout's text is empty
            log.warning("Prometheus query failed", extra={"error": reason})
            return Observation(containers=None, window_end_s=since_s, problems=(f"Prometheus query failed: {reason}",)), False
        containers: dict[tuple[str, str], ContainerObs] = {}
        gpus: dict[str, str] = {}
        peaks: list[float] = []
        mins: list[float] = []
        for pod in pods:
            for name, c in (series.get((namespace, pod)) or {}).items():
                containers[(pod, name)] = c.obs()
                gpus.update(c.gpu_models)
                if c.peak_w is not None:
                    peaks.append(c.peak_w)
                if c.min_w is not None:
                    mins.append(c.min_w)
        return observation_from(containers, gpus, peaks, mins, complete=True, problems=problems, window_end_s=end), True

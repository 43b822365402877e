"""Prometheus mode: the exporters' per-pod counters, read back from Prometheus.

For clusters that already scrape the exporters with Prometheus (the path for large clusters:
the operator then makes a handful of queries per cycle instead of scraping every node).
Each cycle evaluates, at a grid point ``lag_s`` behind now (so Prometheus has scraped),
one instant query per counter family, ``sum by (namespace, pod, ...) (m)``, shared by all
runs, and hands the *cumulative values* to the ledger, which takes reset-aware deltas
exactly as in scrape mode (``mlfootprint.operator.ledger.advance_counters``).

Why values and not ``increase(m[window])`` per refresh window: ``increase()`` over
back-to-back windows drops the rise between the last sample of one window and the first
of the next (only partly restored by its extrapolation), and returns nothing at all for a
window holding fewer than two samples, which is every window when Prometheus scrapes less
often than the operator refreshes. Either way energy would be lost. Reading the counters
and differencing them in the ledger loses nothing, handles resets the way ``increase()``
does, and makes both modes give the same status for the same energy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence

import aiohttp

from mlfootprint.operator.energy import Observation
from mlfootprint.operator.energy.snapshot import GPU_ALLOC, GPU_ENERGY, HOST_ENERGY, MIN, PEAK, SWINGS
from mlfootprint.operator.ledger import series_key

__all__ = ["PrometheusSource", "aligned_eval_time"]

log = logging.getLogger(__name__)

_COUNTERS = {
    GPU_ENERGY: "namespace, pod, container, gpu_uuid, gpu_model",
    HOST_ENERGY: "namespace, pod, container, component",
    GPU_ALLOC: "namespace, pod, container, gpu_model",
    SWINGS: "namespace, pod, container",
}


def aligned_eval_time(now_s: float, step_s: float, lag_s: float) -> float:
    """The latest grid point at least ``lag_s`` behind now."""
    return math.floor((now_s - lag_s) / step_s) * step_s


Result = dict[tuple[str, str], dict[str, float]]  # (namespace, pod) -> series key -> value


class PrometheusSource:
    name = "prometheus"

    def __init__(
        self, url: str, *, step_s: float, lag_s: float, timeout_s: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.url = url.rstrip("/")
        self.step_s = step_s
        self.lag_s = lag_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[float, tuple[Result, dict[tuple[str, str], dict[str, str]]]] = {}
        self._gauges: dict[float, Result] = {}
        self._locks: dict[float, asyncio.Lock] = {}
        self.queries = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _query(self, promql: str, t_s: float) -> list[dict]:  # type: ignore[type-arg]
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self.queries += 1
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": promql, "time": f"{t_s:.3f}"}) as r:
            r.raise_for_status()
            doc = await r.json()
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus query failed: {doc.get('error')}")
        return list(doc["data"]["result"])

    async def _values(self, t_s: float) -> tuple[Result, dict[tuple[str, str], dict[str, str]]]:
        """Cumulative counter values per (namespace, pod) at ``t_s``, and the pods' GPUs (uuid -> model)."""
        lock = self._locks.setdefault(t_s, asyncio.Lock())
        async with lock:
            if t_s in self._cache:
                return self._cache[t_s]
            out: Result = {}
            gpus: dict[tuple[str, str], dict[str, str]] = {}
            for metric, by in _COUNTERS.items():
                # A pod's series come from the one exporter on its node, so the sum only drops
                # the scrape labels (instance, job, node).
                for row in await self._query(f"sum by ({by}) ({metric})", t_s):
                    m = row["metric"]
                    v = float(row["value"][1])
                    pod, c = m.get("pod", ""), m.get("container", "")
                    if metric == GPU_ENERGY:  # as in scrape mode: every GPU series seen names a GPU
                        gpus.setdefault((m.get("namespace", ""), pod), {})[m.get("gpu_uuid", "")] = m.get("gpu_model", "unknown")
                    if not (v >= 0 and math.isfinite(v)):
                        continue
                    if metric == GPU_ENERGY:
                        k = series_key("gpu", pod, c, m.get("gpu_uuid", ""))
                    elif metric == HOST_ENERGY:
                        k = series_key("dram" if m.get("component") == "dram" else "cpu", pod, c)
                    elif metric == GPU_ALLOC:
                        k = series_key("alloc", pod, c, m.get("gpu_model", "unknown"))
                    else:
                        k = series_key("swings", pod, c)
                    out.setdefault((m.get("namespace", ""), pod), {})[k] = v
            if len(self._cache) > 64:
                self._cache.clear()
                self._locks = {t_s: lock}
            self._cache[t_s] = (out, gpus)
            return out, gpus

    async def _peaks(self, t_s: float) -> Result:
        if t_s in self._gauges:
            return self._gauges[t_s]
        out: Result = {}
        for metric, name in ((PEAK, "peak"), (MIN, "min")):
            for row in await self._query(f"max by (namespace, pod) ({metric})" if name == "peak" else f"min by (namespace, pod) ({metric})", t_s):
                m = row["metric"]
                out.setdefault((m.get("namespace", ""), m.get("pod", "")), {})[name] = float(row["value"][1])
        self._gauges = {t_s: out}
        return out

    async def observe(self, namespace: str, pods: Sequence[str], since_s: float | None) -> tuple[Observation, bool]:
        """The pods' counters at the latest aligned time after ``since_s`` (the ledger's last read)."""
        end = aligned_eval_time(self._clock(), self.step_s, self.lag_s)
        obs = Observation(counters={}, window_end_s=end)
        if since_s is not None and end <= since_s:
            obs.counters = None
            obs.deltas = {}  # nothing new to read yet
            obs.window_end_s = since_s
            return obs, True
        try:
            result, gpus = await self._values(end)
            gauges = await self._peaks(end)
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, KeyError, ValueError) as e:
            log.warning("Prometheus query failed", extra={"error": str(e)})
            obs.counters = None
            obs.deltas = {}  # nothing accounted; the counters are read again next cycle
            obs.window_end_s = since_s
            return obs, False
        peaks, mins = [], []
        assert obs.counters is not None
        for pod in pods:
            obs.counters.update(result.get((namespace, pod), {}))
            obs.gpus.update(gpus.get((namespace, pod), {}))
            g = gauges.get((namespace, pod), {})
            if "peak" in g:
                peaks.append(g["peak"])
            if "min" in g:
                mins.append(g["min"])
        obs.peak_w = max(peaks) if peaks else None
        obs.min_w = min(mins) if mins else None
        return obs, True

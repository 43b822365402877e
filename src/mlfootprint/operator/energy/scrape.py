"""Exporter-scrape mode (the embedded default): scrape every exporter once per cycle.

Exporters are found through their Service's EndpointSlices (or Endpoints), plus any static
URLs given with ``--exporter-url``. The parsed pages become one immutable
:class:`~mlfootprint.operator.energy.snapshot.Snapshot` that every run's refresh shares
(memoised for ``max_age_s``, renewed in the background), so the cost per cycle is one GET
per exporter, not per run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from mlfootprint.operator.energy.parse import parse_samples
from mlfootprint.operator.energy.snapshot import BUILD_INFO, POD_METRICS, Snapshot, build_snapshot

__all__ = ["ExporterScraper", "NotMetrics", "fetch_text"]

log = logging.getLogger(__name__)


class NotMetrics(ValueError):
    """A page that is not Prometheus text (an HTML error page, a login form, ...)."""


async def fetch_text(session: aiohttp.ClientSession, url: str, timeout_s: float) -> str:
    """The page at ``url``; raises for HTTP errors and for pages that are not metrics text."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
        resp.raise_for_status()
        ctype = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml", "application/json"):
            raise NotMetrics(f"answered {ctype}, not Prometheus metrics text")
        return await resp.text()


class ExporterScraper:
    """Shared, memoised snapshot of all exporters' per-pod series."""

    source = "scrape"

    def __init__(
        self,
        discover: Callable[[], Awaitable[list[str]]] | None,
        static_urls: Sequence[str] = (),
        *,
        max_age_s: float = 15.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._discover = discover
        self._static = list(static_urls)
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._scraping: asyncio.Task[Snapshot] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.scrapes = 0

    async def close(self) -> None:
        if self._scraping is not None:
            self._scraping.cancel()
            self._scraping = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def urls(self) -> list[str]:
        found = list(self._static)
        if self._discover is not None:
            try:
                found += await self._discover()
            except Exception as e:  # noqa: BLE001 - discovery failure is reported as the source being down
                log.warning("exporter discovery failed", extra={"error": str(e)})
        return sorted(set(found))

    async def snapshot(self) -> Snapshot:
        """The latest snapshot, scraping again when it is older than ``max_age_s``.

        While a new scrape runs, a snapshot younger than twice ``max_age_s`` (the refresh
        interval) is handed out instead of making every refresh wait for all exporters: at
        100 nodes the scrape took seconds, and the whole refresh queue stalled behind it
        twice per interval. Older than that, the refresh waits for the new one.
        """
        now = self._clock()
        snap = self._snapshot
        if snap is not None and now - snap.taken_at_s < self._max_age_s:
            return snap
        if self._scraping is None or self._scraping.done():
            self._scraping = asyncio.create_task(self._scrape_and_keep(), name="exporter scrape")
        if snap is not None and now - snap.taken_at_s < 2 * self._max_age_s:
            return snap
        return await asyncio.shield(self._scraping)

    async def _scrape_and_keep(self) -> Snapshot:
        async with self._lock:
            snap = await self._scrape()
            self._snapshot = snap
            return snap

    async def _scrape(self) -> Snapshot:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        urls = await self.urls()
        pages = await asyncio.gather(
            *(fetch_text(self._session, u, self._timeout_s) for u in urls), return_exceptions=True
        )
        errors: list[str] = []
        samples = []
        for url, page in zip(urls, pages, strict=True):
            if isinstance(page, BaseException):
                errors.append(f"{url}: {type(page).__name__}: {page}".rstrip(": "))
                continue
            parsed = list(parse_samples(page, POD_METRICS))
            if not any(name == BUILD_INFO for name, _labels, _value in parsed):
                errors.append(f"{url}: not an mlfootprint exporter page (no {BUILD_INFO})")
                continue
            samples.extend(parsed)
        if not urls:
            errors.append("no exporter endpoints found")
        self.scrapes += 1
        snap = build_snapshot(samples, self._clock(), errors=tuple(errors))
        if errors:
            log.warning("exporter scrape incomplete", extra={"errors": errors[:5], "exporters": len(urls)})
        return snap

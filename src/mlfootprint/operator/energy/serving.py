"""Request and token counters of serving engines (InferenceService), scraped per pod.

Presets name each engine's own Prometheus counters (sums over all their label sets):

* vLLM (docs "Production Metrics"): ``vllm:request_success_total``,
  ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``;
* SGLang (docs "Production Metrics"): ``sglang:num_requests_total``,
  ``sglang:prompt_tokens_total``, ``sglang:generation_tokens_total``;
* TGI (docs "Metrics"): ``tgi_request_success`` (counter), and the sums of the histograms
  ``tgi_request_input_length`` / ``tgi_request_generated_tokens`` (``_sum``);
* ``custom``: names from ``spec.servingMetrics``.

Each serving pod is scraped at ``http://<podIP>:<port><path>``, or at the URL in its
annotation ``mlfootprint.io/serving-metrics-url`` (simulated pods, sidecars, proxies).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from mlfootprint.operator.energy.parse import parse_samples
from mlfootprint.operator.energy.scrape import NotMetrics, fetch_text
from mlfootprint.operator.ledger import ServingObs, labels_digest, valid_counter

__all__ = [
    "ENGINE_PRESETS",
    "SERVING_URL_ANNOTATION",
    "ServingMetricNames",
    "ServingPage",
    "ServingScraper",
    "counters_from_page",
    "names_for",
    "pod_url",
]

SERVING_URL_ANNOTATION = "mlfootprint.io/serving-metrics-url"


@dataclass(frozen=True)
class ServingMetricNames:
    requests: str | None
    tokens_in: str | None
    tokens_out: str | None
    port: int
    path: str = "/metrics"


ENGINE_PRESETS: dict[str, ServingMetricNames] = {
    "vllm": ServingMetricNames("vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total", 8000),
    "sglang": ServingMetricNames(
        "sglang:num_requests_total", "sglang:prompt_tokens_total", "sglang:generation_tokens_total", 30000
    ),
    "tgi": ServingMetricNames("tgi_request_success", "tgi_request_input_length_sum", "tgi_request_generated_tokens_sum", 80),
}


def names_for(serving: Mapping[str, Any]) -> ServingMetricNames:
    """Preset names overridden by any names, port or path in ``spec.servingMetrics``."""
    engine = str(serving.get("engine", "custom"))
    base = ENGINE_PRESETS.get(engine, ServingMetricNames(None, None, None, 8000))
    return ServingMetricNames(
        requests=serving.get("requestsMetric") or base.requests,
        tokens_in=serving.get("inputTokensMetric") or base.tokens_in,
        tokens_out=serving.get("outputTokensMetric") or base.tokens_out,
        port=int(serving.get("port") or base.port),
        path=str(serving.get("path") or base.path),
    )


def pod_url(pod_ip: str | None, annotations: Mapping[str, str] | None, names: ServingMetricNames) -> str | None:
    url = (annotations or {}).get(SERVING_URL_ANNOTATION)
    if url:
        return url
    if not pod_ip:
        return None
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    return f"http://{host}:{names.port}{names.path}"


PROCESS_START = "process_start_time_seconds"


@dataclass(frozen=True)
class ServingPage:
    """One serving pod's counters (validated), or what was wrong with its page."""

    obs: ServingObs | None
    problem: str | None = None


def counters_from_page(text: str, names: ServingMetricNames) -> ServingPage:
    """Per label set values of the engine's counters, and its process start time.

    Validated at the boundary: a page without any of the expected counters is not the
    engine's metrics (an HTML error page, a wrong port or path), and a non-finite or
    negative value is dropped and reported, never counted."""
    by_name = {n: k for k, n in (("requests", names.requests), ("tokens_in", names.tokens_in), ("tokens_out", names.tokens_out)) if n}
    counters: dict[str, dict[str, float]] = {}
    start: float | None = None
    invalid: set[str] = set()
    found = False
    for name, labels, value in parse_samples(text, [*by_name, PROCESS_START]):
        if name == PROCESS_START:
            if 0 < value < 1e11:
                start = value if start is None else max(start, value)
            continue
        found = True
        if not valid_counter(value):
            invalid.add(name)
            continue
        sets = counters.setdefault(by_name[name], {})
        digest = labels_digest(labels)
        sets[digest] = sets.get(digest, 0.0) + value
    if not found:
        return ServingPage(None, f"none of the counters {', '.join(sorted(by_name))} on the page")
    problem = f"{', '.join(sorted(invalid))}: a value that is not a finite counter was dropped" if invalid else None
    return ServingPage(ServingObs(start=start, counters=counters), problem)


class ServingScraper:
    """Scrapes serving pods; a page is reused for ``max_age_s`` (one GET per pod per cycle)."""

    def __init__(self, *, max_age_s: float = 15.0, timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._pages: dict[str, tuple[float, str | None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def page(self, url: str) -> str | None:
        hit = self._pages.get(url)
        now = self._clock()
        if hit is not None and now - hit[0] < self._max_age_s:
            return hit[1]
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            text: str | None = await fetch_text(self._session, url, self._timeout_s)
        except (TimeoutError, aiohttp.ClientError, OSError, NotMetrics):
            text = None
        self._pages[url] = (now, text)
        return text

    async def counters(
        self, pods: Mapping[str, str | None], names: ServingMetricNames
    ) -> tuple[dict[str, ServingObs], dict[str, str]]:
        """Counters of the pods (pod -> URL); the second item maps pods whose counters could
        not be read to the reason (no URL, no answer, not the engine's metrics)."""
        items = [(p, u) for p, u in pods.items() if u]
        pages = await asyncio.gather(*(self.page(u) for _, u in items))
        out: dict[str, ServingObs] = {}
        problems = {p: "no pod IP or metrics URL" for p, u in pods.items() if not u}
        for (pod, _), text in zip(items, pages, strict=True):
            if text is None:
                problems[pod] = "metrics endpoint did not answer"
                continue
            page = counters_from_page(text, names)
            if page.obs is not None:
                out[pod] = page.obs
            if page.problem:
                problems[pod] = page.problem
        return out, problems

"""Operator start and stop: settings, login, the runtime and its metrics server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.energy.intensity import IntensityReader
from mlfootprint.operator.energy.scrape import ExporterScraper
from mlfootprint.operator.energy.serving import ServingScraper
from mlfootprint.operator.factors_store import FactorsStore
from mlfootprint.operator.kube import Kube
from mlfootprint.operator.metrics import OperatorMetrics
from mlfootprint.operator.runtime import EnergySource, Runtime, ScrapeSource
from mlfootprint.web import metrics_app, serve

log = logging.getLogger(__name__)

PREFIX = "kopf.mlfootprint.io"

#: Connections to the API server for requests (status patches, events) on top of the
#: long-lived watch streams. kopf's own session has no limit (``TCPConnector(limit=0)``),
#: so a cycle of 1,000 timers opened 1,000 TLS connections at once (~330 MB of OpenSSL
#: buffers that glibc then kept); a bounded pool reuses a few keep-alive connections.
API_REQUEST_CONNECTIONS = 16


def watch_streams(cfg: OperatorConfig) -> int:
    """Upper bound of kopf's concurrent watch streams: each watched resource per namespace
    (pods, TrainingRuns, InferenceServices; with discovery also namespaces, Jobs,
    PyTorchJobs, JobSets, Deployments), the cluster-scoped nodes, plus kopf's CRD and
    namespace observers."""
    resources = 3 + (5 if cfg.discovery else 0)
    return resources * max(1, len(cfg.watch_namespaces)) + 1 + 2


def api_connection_limit(cfg: OperatorConfig) -> int:
    return watch_streams(cfg) + API_REQUEST_CONNECTIONS


async def login(kube: Kube, cfg: OperatorConfig) -> kopf.AiohttpSession:
    """kopf's API session: the kubeconfig's credentials over a bounded connection pool.

    Async so the session is created on the operator's event loop; kopf closes it when the
    credentials are invalidated (re-login) or the operator stops.
    """
    info = kube.connection_info()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=api_connection_limit(cfg), ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
    )
    return kopf.AiohttpSession(aiohttp_session=session, server=info.server, default_namespace=info.default_namespace)


def configure_settings(settings: kopf.OperatorSettings, cfg: OperatorConfig) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    # Paginated LISTs (as client-go's informers do, 500 per page): kopf's default (None) reads
    # every object of a kind in one answer, ~55 MB of JSON and ~150 MB of dicts for 10,000
    # TrainingRuns at once, on each start and re-list.
    settings.watching.chunk_size = 500


def build_runtime(cfg: OperatorConfig, kube: Kube, energy: EnergySource | None = None) -> Runtime:
    metrics = OperatorMetrics()

    def post_event(obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        # kopf annotates its own Body wrapper; at runtime it reads any mapping's metadata
        kopf.event(obj, type=type_, reason=reason, message=message)  # type: ignore[arg-type]

    if energy is None:
        if cfg.energy_source == "prometheus":
            from mlfootprint.operator.energy.prometheus import PrometheusSource

            energy = PrometheusSource(cfg.prometheus_url or "", step_s=cfg.interval_s, lag_s=cfg.prometheus_lag_s)
        else:
            async def discover() -> list[str]:
                return await kube.exporter_urls(cfg.exporter_ns, cfg.exporter_service)

            energy = ScrapeSource(
                ExporterScraper(
                    discover, cfg.exporter_urls, max_age_s=cfg.interval_s / 2, timeout_s=cfg.scrape_timeout_s
                )
            )
    return Runtime(
        cfg=cfg,
        kube=kube,
        metrics=metrics,
        factors=FactorsStore(
            kube, metrics, operator_namespace=cfg.namespace, configmap_name=cfg.factors_configmap,
            rules_configmap=cfg.phase_rules_configmap, cache_s=cfg.configmap_cache_s, post_event=post_event,
        ),
        energy=energy,
        serving=ServingScraper(max_age_s=cfg.interval_s / 2, timeout_s=cfg.scrape_timeout_s),
        intensity=IntensityReader(
            prometheus_url=cfg.prometheus_url, providers_enabled=cfg.live_providers,
            electricitymaps_url=cfg.electricitymaps_url, electricitymaps_token=cfg.electricitymaps_token,
            watttime_url=cfg.watttime_url, watttime_username=cfg.watttime_username,
            watttime_password=cfg.watttime_password, max_age_s=max(cfg.interval_s, 1.0),
            on_status=metrics.set_source_up,
        ),
        post_event=post_event,
    )


def start_metrics(runtime: Runtime) -> int | None:
    cfg = runtime.cfg
    if cfg.metrics_port < 0:
        return None
    web_config = Path(cfg.web_config_file) if cfg.web_config_file else None
    # /healthz answers while the endpoint serves (kopf's liveness endpoint is the probes')
    server = serve(metrics_app(runtime.metrics.registry), cfg.metrics_addr, cfg.metrics_port, web_config, name="metrics-http")
    runtime.metrics_server = server
    log.info("operator metrics listening", extra={"port": server.port, "web_config_file": cfg.web_config_file or ""})
    return server.port

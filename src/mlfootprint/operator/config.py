"""One typed configuration object for the operator: defaults <- environment <- flags.

Validated when built (``OperatorConfig.model_validate``); nothing reads configuration at
import time. Environment variables (``MLFOOTPRINT_OPERATOR_*``) are read only by
:func:`from_env`, which the CLI calls once at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OperatorConfig", "from_env"]


class OperatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(default="mlfootprint", description="the operator's own namespace (cluster default factors)")
    watch_namespaces: tuple[str, ...] = Field(default=(), description="watch only these; empty = cluster-wide")
    kubeconfig: str | None = None
    interval_s: float = Field(default=30.0, gt=0, description="refresh interval of each resource")
    status_max_age_s: float = Field(
        default=300.0, gt=0, description="rewrite a running run's status at least this often even when no printed figure changed"
    )
    status_min_interval_s: float = Field(
        default=0.0, ge=0,
        description="write a running run's figures at most this often (0: at every refresh that changes a printed figure); "
        "phase, condition and factor changes are written at once",
    )
    status_write_concurrency: int = Field(
        default=16, ge=1, le=1024,
        description="status writes in flight at most before figure-only writes are left to a later refresh",
    )
    energy_source: Literal["scrape", "prometheus"] = "scrape"
    exporter_service: str = Field(default="mlfootprint-exporter", description="Service of the exporters")
    exporter_namespace: str | None = Field(default=None, description="namespace of that Service (default: namespace)")
    exporter_urls: tuple[str, ...] = Field(default=(), description="static exporter /metrics URLs (added to discovery)")
    scrape_timeout_s: float = Field(default=10.0, gt=0)
    prometheus_url: str | None = None
    prometheus_lag_s: float = Field(default=30.0, ge=0, description="how far behind now Prometheus is queried")
    serving_rate_scale: float = Field(
        default=1.0, ge=1.0, le=1e6, allow_inf_nan=False,
        description="multiplies the per-pod ceilings of serving counters (1e5 requests, 1e8 input and 1e7 output "
        "tokens per second; faster increases are refused as ServingImplausible): for engines beyond them, or a "
        "simulated clock (the demo passes its time factor)",
    )
    factors_configmap: str = "mlfootprint-factors"
    phase_rules_configmap: str = "mlfootprint-phase-rules"
    configmap_cache_s: float = Field(default=10.0, ge=0, description="how long a read ConfigMap is reused")
    live_providers: bool = Field(default=False, description="allow live carbon-intensity providers (network)")
    electricitymaps_url: str = "https://api.electricitymap.org"
    electricitymaps_token: str | None = None
    watttime_url: str = "https://api.watttime.org"
    watttime_username: str | None = None
    watttime_password: str | None = None
    breakeven_include_development: bool = True
    discovery: bool = Field(default=True, description="watch workloads for namespaces labelled for auto-discovery")
    metrics_port: int = Field(default=9090, ge=-1, le=65535, description="-1 disables; 0 picks a free port")
    metrics_addr: str = "0.0.0.0"
    web_config_file: str | None = Field(default=None, description="web config (TLS, basic auth) of the metrics endpoint; checked at start")
    log_format: Literal["json", "text"] = "json"
    log_level: str = "info"
    liveness_endpoint: str | None = None
    standalone: bool = True
    refresh_concurrency: int = Field(default=32, ge=1, le=1024, description="refreshes in flight at once")
    leader_election: bool = Field(default=False, description="refresh only while holding a coordination.k8s.io Lease")
    leader_election_namespace: str | None = Field(default=None, description="namespace of the Lease (default: namespace)")
    leader_election_lease: str = Field(default="mlfootprint-operator", description="name of the Lease")
    leader_election_identity: str | None = Field(default=None, description="this replica's holder identity (default: $POD_NAME, else host-pid)")
    lease_duration_s: float = Field(default=15.0, gt=0, description="a holder that has not renewed for this long is replaced")
    renew_deadline_s: float = Field(default=10.0, gt=0, description="the holder steps down when it could not renew for this long")
    retry_period_s: float = Field(default=2.0, gt=0, description="how often the Lease is renewed or tried")

    @model_validator(mode="after")
    def _prometheus_needs_url(self) -> OperatorConfig:
        if self.energy_source == "prometheus" and not self.prometheus_url:
            raise ValueError("energy_source prometheus needs prometheus_url (--prometheus-url)")
        return self

    @model_validator(mode="after")
    def _lease_timing(self) -> OperatorConfig:
        if self.leader_election and not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("leader election needs retry period < renew deadline < lease duration")
        return self

    @property
    def lease_namespace(self) -> str:
        return self.leader_election_namespace or self.namespace

    @property
    def clusterwide(self) -> bool:
        return not self.watch_namespaces

    @property
    def exporter_ns(self) -> str:
        return self.exporter_namespace or self.namespace


_ENV = {
    "namespace": "MLFOOTPRINT_OPERATOR_NAMESPACE",
    "electricitymaps_token": "MLFOOTPRINT_ELECTRICITYMAPS_TOKEN",
    "watttime_username": "MLFOOTPRINT_WATTTIME_USERNAME",
    "watttime_password": "MLFOOTPRINT_WATTTIME_PASSWORD",
    "prometheus_url": "MLFOOTPRINT_PROMETHEUS_URL",
    "leader_election_identity": "POD_NAME",
}


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Configuration values found in the environment (secrets and the pod's namespace)."""
    env = os.environ if environ is None else environ
    out = {field: env[var] for field, var in _ENV.items() if env.get(var)}
    if "namespace" not in out and env.get("POD_NAMESPACE"):
        out["namespace"] = env["POD_NAMESPACE"]
    return out

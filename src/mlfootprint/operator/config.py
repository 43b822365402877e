"""One typed configuration object for the operator, layered defaults -> ``--config`` YAML ->
environment -> flags by :mod:`mlfootprint.settings` (shared with the exporter).

Environment variables are ``MLFOOTPRINT_OPERATOR_<FIELD>``, then the older names each field
lists (``POD_NAMESPACE``, ``MLFOOTPRINT_PROMETHEUS_URL``, the providers' credentials,
``POD_NAME``); nothing reads configuration at import time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlfootprint.settings import Opt, Settings

__all__ = ["SETTINGS", "OperatorConfig"]

CLUSTER, ENERGY, FACTORS, SCALE, OUTPUT = "cluster", "energy", "factors", "scale and high availability", "output"


class OperatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kubeconfig: Annotated[str | None, Opt(metavar="FILE", group=CLUSTER)] = Field(
        None, description="kubeconfig file (unset: in-cluster service account, then ~/.kube/config)"
    )
    watch_namespaces: Annotated[tuple[str, ...], Opt("--namespace", "-n", metavar="NS", group=CLUSTER)] = Field(
        (), description="watch only this namespace (repeatable); unset: cluster-wide"
    )
    namespace: Annotated[str, Opt("--operator-namespace", env=("POD_NAMESPACE",), metavar="NS", group=CLUSTER)] = Field(
        "mlfootprint", description="the operator's own namespace, where the cluster default factors ConfigMap lives"
    )
    discovery: Annotated[bool, Opt(group=CLUSTER)] = Field(
        True, description="watch workloads in namespaces labelled mlfootprint.io/auto-discover=true"
    )
    interval_s: Annotated[float, Opt("--interval", group=ENERGY)] = Field(
        30.0, gt=0, description="refresh interval of each resource"
    )
    status_max_age_s: Annotated[float, Opt("--status-max-age", group=ENERGY)] = Field(
        300.0, gt=0, description="rewrite a running run's status at least this often even when no printed figure changed"
    )
    status_min_interval_s: Annotated[float, Opt("--status-min-interval", group=ENERGY)] = Field(
        0.0, ge=0,
        description="write a running run's figures at most this often (0: at every refresh that changes a printed figure); "
        "phase, condition and factor changes are written at once. Large clusters: see docs/install.md#sizing",
    )
    energy_source: Annotated[Literal["scrape", "prometheus"], Opt(group=ENERGY)] = Field(
        "scrape", description="where energy comes from: the exporters' /metrics or Prometheus"
    )
    final_read_delay_s: Annotated[float, Opt("--final-read-delay", group=ENERGY)] = Field(
        5.0, ge=0, le=3600,
        description="a finished TrainingRun completes (its figures freeze) only on counters read at least this long "
        "after its pods ended, so that the exporters' last attribution of the ended containers is in: raise it for "
        "exporters attributing less often than every second, or nodes slow to release ended pods",
    )
    serving_rate_scale: Annotated[float, Opt(metavar="FACTOR", group=ENERGY)] = Field(
        1.0, ge=1.0, le=1e6,
        description="multiplies the per-pod ceilings of serving counters (1e5 requests, 1e8 input and 1e7 output "
        "tokens per second; faster increases are refused as ServingImplausible): for engines beyond them, or a "
        "simulated clock (the demo passes its time factor)",
    )
    exporter_service: Annotated[str, Opt(metavar="NAME", group=ENERGY)] = Field(
        "mlfootprint-exporter", description="Service of the exporters (scrape mode)"
    )
    exporter_namespace: Annotated[str | None, Opt(metavar="NS", group=ENERGY)] = Field(
        None, description="namespace of that Service (unset: the operator's namespace)"
    )
    exporter_urls: Annotated[tuple[str, ...], Opt("--exporter-url", metavar="URL", group=ENERGY)] = Field(
        (), description="static exporter /metrics URL, added to discovery (repeatable)"
    )
    scrape_timeout_s: Annotated[float, Opt("--scrape-timeout", group=ENERGY)] = Field(
        10.0, gt=0, description="timeout of one exporter scrape"
    )
    prometheus_url: Annotated[str | None, Opt(env=("MLFOOTPRINT_PROMETHEUS_URL",), metavar="URL", group=ENERGY)] = Field(
        None, description="Prometheus base URL (prometheus mode, carbon-intensity queries)"
    )
    prometheus_lag_s: Annotated[float, Opt("--prometheus-lag", group=ENERGY)] = Field(
        30.0, ge=0, description="query Prometheus this far behind now"
    )
    factors_configmap: Annotated[str, Opt(metavar="NAME", group=FACTORS)] = Field(
        "mlfootprint-factors", description="name of the factors ConfigMaps (docs/factors.md)"
    )
    phase_rules_configmap: Annotated[str, Opt(metavar="NAME", group=FACTORS)] = Field(
        "mlfootprint-phase-rules", description="ConfigMap with rules.yaml"
    )
    configmap_cache_s: Annotated[float, Opt("--configmap-cache", group=FACTORS)] = Field(
        10.0, ge=0, description="how long a read ConfigMap is reused"
    )
    breakeven_include_development: Annotated[bool, Opt(group=FACTORS)] = Field(
        True, description="count development energy in the inference break-even"
    )
    live_providers: Annotated[bool, Opt(group=FACTORS)] = Field(
        False, description="allow live carbon-intensity providers (Electricity Maps, WattTime; network)"
    )
    electricitymaps_url: Annotated[str, Opt(metavar="URL", group=FACTORS)] = Field(
        "https://api.electricitymap.org", description="Electricity Maps API base URL"
    )
    electricitymaps_token: Annotated[str | None, Opt(env=("MLFOOTPRINT_ELECTRICITYMAPS_TOKEN",), secret=True)] = Field(
        None, description="Electricity Maps API token"
    )
    watttime_url: Annotated[str, Opt(metavar="URL", group=FACTORS)] = Field(
        "https://api.watttime.org", description="WattTime API base URL"
    )
    watttime_username: Annotated[str | None, Opt(env=("MLFOOTPRINT_WATTTIME_USERNAME",), secret=True)] = Field(
        None, description="WattTime user name"
    )
    watttime_password: Annotated[str | None, Opt(env=("MLFOOTPRINT_WATTTIME_PASSWORD",), secret=True)] = Field(
        None, description="WattTime password"
    )
    refresh_concurrency: Annotated[int, Opt(group=SCALE)] = Field(32, ge=1, le=1024, description="refreshes in flight at once")
    status_write_concurrency: Annotated[int, Opt(group=SCALE)] = Field(
        16, ge=1, le=1024,
        description="status writes in flight at most; beyond, figure-only writes wait for a later refresh",
    )
    leader_election: Annotated[bool, Opt("--leader-elect", group=SCALE)] = Field(
        False, description="run as one of several replicas: refresh only while holding a coordination.k8s.io Lease"
    )
    leader_election_lease: Annotated[str, Opt("--leader-elect-resource-name", metavar="NAME", group=SCALE)] = Field(
        "mlfootprint-operator", description="name of the Lease"
    )
    leader_election_namespace: Annotated[str | None, Opt("--leader-elect-resource-namespace", metavar="NS", group=SCALE)] = Field(
        None, description="namespace of the Lease (unset: the operator's namespace)"
    )
    leader_election_identity: Annotated[str | None, Opt("--leader-elect-identity", env=("POD_NAME",), metavar="NAME", group=SCALE)] = (
        Field(None, description="this replica's holder identity (unset: host name and pid)")
    )
    lease_duration_s: Annotated[float, Opt("--leader-elect-lease-duration", group=SCALE)] = Field(
        15.0, gt=0, description="a holder that has not renewed for this long is replaced"
    )
    renew_deadline_s: Annotated[float, Opt("--leader-elect-renew-deadline", group=SCALE)] = Field(
        10.0, gt=0, description="the holder stops refreshing when it could not renew for this long"
    )
    retry_period_s: Annotated[float, Opt("--leader-elect-retry-period", group=SCALE)] = Field(
        2.0, gt=0, description="how often the Lease is renewed or tried"
    )
    metrics_port: Annotated[int, Opt(group=OUTPUT)] = Field(
        9090, ge=-1, le=65535, description="Prometheus metrics port (-1 disables; 0 picks a free port)"
    )
    metrics_addr: Annotated[str, Opt(metavar="ADDRESS", group=OUTPUT)] = Field("0.0.0.0", description="metrics listen address")
    web_config_file: Annotated[str | None, Opt(metavar="FILE", group=OUTPUT)] = Field(
        None, description="TLS and basic auth of the metrics endpoint, Prometheus exporter-toolkit format (docs/operator.md)"
    )
    liveness_endpoint: Annotated[str | None, Opt("--liveness", metavar="URL", group=OUTPUT)] = Field(
        None, description="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    standalone: Annotated[bool, Opt(group=OUTPUT)] = Field(
        True, description="kopf without peering (replicas coordinate through the Lease)"
    )
    log_format: Annotated[Literal["json", "text"], Opt(group=OUTPUT)] = Field("json", description="log format")
    log_level: Annotated[Literal["debug", "info", "warning", "error"], Opt(group=OUTPUT)] = Field("info", description="log level")

    @model_validator(mode="after")
    def _prometheus_needs_url(self) -> OperatorConfig:
        if self.energy_source == "prometheus" and not self.prometheus_url:
            raise ValueError("energy_source prometheus needs prometheus_url (--prometheus-url)")
        return self

    @model_validator(mode="after")
    def _lease_timing(self) -> OperatorConfig:
        if self.leader_election and not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "leader election needs --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration"
            )
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


SETTINGS = Settings(OperatorConfig, "operator")

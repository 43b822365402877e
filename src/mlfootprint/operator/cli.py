"""`mlfootprint operator`: the kopf operator, run embedded (no `kopf run` needed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading

HELP = "kopf operator: TrainingRun/InferenceService footprint status"
DESCRIPTION = """\
Keep the status of every TrainingRun and InferenceService (mlfootprint.io/v1alpha1) as a
ledger of energy, carbon, water and embodied impact, and export per-run gauges.

Energy comes from the mlfootprint exporters (scraped through their Service's endpoints,
the default) or from Prometheus (--energy-source prometheus: the same counters, read back).
Factors come from the ConfigMap `mlfootprint-factors` in the operator's namespace,
overridden per namespace (a ConfigMap of the same name there) and by spec.factorsRef
(docs/factors.md). Namespaces labelled mlfootprint.io/auto-discover=true get runs
created for their GPU Jobs, PyTorchJobs, JobSets and labelled serving Deployments.

Examples:
  mlfootprint operator                                  # cluster-wide, in-cluster credentials
  mlfootprint operator --kubeconfig ~/.kube/config --namespace team-a --namespace team-b
  mlfootprint operator --energy-source prometheus --prometheus-url http://prometheus:9090
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("cluster")
    g.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account, then ~/.kube/config)")
    g.add_argument(
        "--namespace", "-n", action="append", default=[], metavar="NS",
        help="watch only this namespace (repeatable); default: cluster-wide",
    )
    g.add_argument(
        "--operator-namespace", default=None,
        help="the operator's own namespace, where the cluster default factors ConfigMap lives "
        "(default: $POD_NAMESPACE or mlfootprint)",
    )
    g.add_argument("--no-discovery", action="store_true", help="never auto-discover workloads")
    e = parser.add_argument_group("energy")
    e.add_argument("--interval", type=float, default=30.0, metavar="SECONDS", help="refresh interval per resource (default 30)")
    e.add_argument(
        "--status-max-age", type=float, default=300.0, metavar="SECONDS",
        help="rewrite a running run's status at least this often, even when no printed figure changed (default 300)",
    )
    e.add_argument(
        "--status-min-interval", type=float, default=0.0, metavar="SECONDS",
        help="write a running run's figures at most this often (default 0: whenever a printed figure changes); "
        "phase, condition and factor changes are written at once. Large clusters: see docs/install.md#sizing",
    )
    e.add_argument("--energy-source", choices=("scrape", "prometheus"), default="scrape", help="where energy comes from")
    e.add_argument(
        "--serving-rate-scale", type=float, default=1.0, metavar="FACTOR",
        help="multiply the per-pod ceilings of serving counters (1e5 requests, 1e8 input, 1e7 output tokens per "
        "second; faster increases are refused as implausible) by FACTOR (default 1)",
    )
    e.add_argument("--exporter-service", default="mlfootprint-exporter", help="Service of the exporters (scrape mode)")
    e.add_argument("--exporter-namespace", default=None, help="namespace of that Service (default: operator namespace)")
    e.add_argument("--exporter-url", action="append", default=[], metavar="URL", help="static exporter /metrics URL (repeatable)")
    e.add_argument(
        "--prometheus-url", default=None,
        help="Prometheus base URL (prometheus mode, carbon-intensity queries; default: $MLFOOTPRINT_PROMETHEUS_URL)",
    )
    e.add_argument("--prometheus-lag", type=float, default=30.0, metavar="SECONDS", help="query Prometheus this far behind now")
    f = parser.add_argument_group("factors")
    f.add_argument("--factors-configmap", default="mlfootprint-factors", help="name of the factors ConfigMaps")
    f.add_argument("--phase-rules-configmap", default="mlfootprint-phase-rules", help="ConfigMap with rules.yaml")
    f.add_argument(
        "--live-providers", action="store_true",
        help="allow live carbon-intensity providers (Electricity Maps, WattTime); tokens from "
        "$MLFOOTPRINT_ELECTRICITYMAPS_TOKEN, $MLFOOTPRINT_WATTTIME_USERNAME/_PASSWORD",
    )
    h = parser.add_argument_group("scale and high availability")
    h.add_argument(
        "--refresh-concurrency", type=int, default=32, metavar="N", help="refreshes in flight at once (default 32)",
    )
    h.add_argument(
        "--status-write-concurrency", type=int, default=16, metavar="N",
        help="status writes in flight at most; beyond, figure-only writes wait for a later refresh (default 16)",
    )
    h.add_argument(
        "--leader-elect", action="store_true",
        help="run as one of several replicas: refresh only while holding a coordination.k8s.io Lease",
    )
    h.add_argument("--leader-elect-resource-name", default="mlfootprint-operator", metavar="NAME", help="name of the Lease")
    h.add_argument(
        "--leader-elect-resource-namespace", default=None, metavar="NS", help="namespace of the Lease (default: operator namespace)",
    )
    h.add_argument(
        "--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS",
        help="a holder that has not renewed for this long is replaced (default 15)",
    )
    h.add_argument(
        "--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS",
        help="the holder stops refreshing when it could not renew for this long (default 10)",
    )
    h.add_argument(
        "--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS", help="renew/retry period (default 2)",
    )
    o = parser.add_argument_group("output")
    o.add_argument("--metrics-port", type=int, default=9090, help="Prometheus metrics port (-1 disables; default 9090)")
    o.add_argument("--metrics-addr", default="0.0.0.0", help="metrics listen address")
    o.add_argument(
        "--web-config-file", default=None, metavar="FILE",
        help="TLS and basic auth of the metrics endpoint, Prometheus exporter-toolkit format (docs/operator.md)",
    )
    o.add_argument("--liveness", default=None, metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    o.add_argument("--log-format", choices=("json", "text"), default="json", help="log format (default json)")
    o.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"), help="log level")


def _bad(flag: str, reason: str) -> SystemExit:
    import sys

    print(f"mlfootprint operator: error: {flag}: {reason}", file=sys.stderr)
    return SystemExit(2)


def config_from_args(args: argparse.Namespace) -> object:
    from pydantic import ValidationError

    from mlfootprint.operator.config import OperatorConfig, from_env

    values: dict[str, object] = dict(from_env())
    values.update(
        watch_namespaces=tuple(args.namespace),
        kubeconfig=args.kubeconfig,
        interval_s=args.interval,
        status_max_age_s=args.status_max_age,
        status_min_interval_s=args.status_min_interval,
        energy_source=args.energy_source,
        exporter_service=args.exporter_service,
        exporter_namespace=args.exporter_namespace,
        exporter_urls=tuple(args.exporter_url),
        prometheus_lag_s=args.prometheus_lag,
        serving_rate_scale=args.serving_rate_scale,
        factors_configmap=args.factors_configmap,
        phase_rules_configmap=args.phase_rules_configmap,
        live_providers=args.live_providers,
        discovery=not args.no_discovery,
        metrics_port=args.metrics_port,
        metrics_addr=args.metrics_addr,
        web_config_file=args.web_config_file,
        liveness_endpoint=args.liveness,
        log_format=args.log_format,
        log_level=args.log_level,
        refresh_concurrency=args.refresh_concurrency,
        status_write_concurrency=args.status_write_concurrency,
        leader_election=args.leader_elect,
        leader_election_lease=args.leader_elect_resource_name,
        leader_election_namespace=args.leader_elect_resource_namespace,
        lease_duration_s=args.leader_elect_lease_duration,
        renew_deadline_s=args.leader_elect_renew_deadline,
        retry_period_s=args.leader_elect_retry_period,
    )
    if args.operator_namespace:
        values["namespace"] = args.operator_namespace
    if args.prometheus_url:
        values["prometheus_url"] = args.prometheus_url
    try:
        return OperatorConfig.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        if not field and "prometheus_url" in err["msg"]:
            field = "prometheus_url"
        if not field and "leader election" in err["msg"]:
            field = "lease_duration_s"
        flag = _FLAGS.get(field, "--" + field.replace("_", "-") if field else "arguments")
        raise _bad(flag, err["msg"].removeprefix("Value error, ")) from None


#: OperatorConfig field -> the flag that sets it (for error messages naming the flag)
_FLAGS = {
    "namespace": "--operator-namespace",
    "watch_namespaces": "--namespace",
    "interval_s": "--interval",
    "status_max_age_s": "--status-max-age",
    "status_min_interval_s": "--status-min-interval",
    "exporter_urls": "--exporter-url",
    "prometheus_lag_s": "--prometheus-lag",
    "serving_rate_scale": "--serving-rate-scale",
    "discovery": "--no-discovery",
    "liveness_endpoint": "--liveness",
    "leader_election": "--leader-elect",
    "leader_election_lease": "--leader-elect-resource-name",
    "leader_election_namespace": "--leader-elect-resource-namespace",
    "lease_duration_s": "--leader-elect-lease-duration",
    "renew_deadline_s": "--leader-elect-renew-deadline",
    "retry_period_s": "--leader-elect-retry-period",
}


def run_operator(cfg: object, *, stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None, energy: object = None, memo: object = None) -> None:
    """Run the operator until stopped (blocking; its own event loop). Used by the CLI and tests."""
    import kopf

    from mlfootprint.operator import kopf_compat
    from mlfootprint.operator.config import OperatorConfig
    from mlfootprint.operator.kube import Kube
    from mlfootprint.operator.main import register

    assert isinstance(cfg, OperatorConfig)
    kopf_compat.install()
    registry = kopf.OperatorRegistry()
    # a connection per status write in flight (ConfigMap and workload reads share them)
    kube = Kube.from_kubeconfig(cfg.kubeconfig, connections=max(cfg.status_write_concurrency, 16))
    register(registry, cfg, kube, energy=energy)  # type: ignore[arg-type]
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=cfg.clusterwide,
            namespaces=list(cfg.watch_namespaces),
            standalone=cfg.standalone,
            liveness_endpoint=cfg.liveness_endpoint,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=memo if memo is not None else kopf.Memo(),
        )
    )


def run(args: argparse.Namespace) -> int:
    import math

    from mlfootprint.logs import configure

    for flag, value in (
        ("--interval", args.interval), ("--prometheus-lag", args.prometheus_lag), ("--status-max-age", args.status_max_age),
        ("--status-min-interval", args.status_min_interval),
        ("--leader-elect-lease-duration", args.leader_elect_lease_duration),
        ("--leader-elect-renew-deadline", args.leader_elect_renew_deadline),
        ("--leader-elect-retry-period", args.leader_elect_retry_period),
    ):
        if not math.isfinite(value):
            raise _bad(flag, "must be a finite number of seconds")
    if args.interval <= 0:
        raise _bad("--interval", "must be > 0")
    # --energy-source prometheus without any URL (flag or $MLFOOTPRINT_PROMETHEUS_URL) is
    # refused by the configuration, naming --prometheus-url
    cfg = config_from_args(args)
    if args.web_config_file:  # checked before kopf starts: a bad file fails the start, naming the flag
        from pathlib import Path

        from mlfootprint.web import WebConfigError, load_web_config

        try:
            load_web_config(Path(args.web_config_file))
        except WebConfigError as e:
            raise _bad("--web-config-file", str(e)) from None
    configure(args.log_level, args.log_format)
    logging.getLogger("kopf").setLevel(logging.WARNING if args.log_level != "debug" else logging.DEBUG)
    run_operator(cfg)
    return 0

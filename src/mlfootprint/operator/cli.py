"""`mlfootprint operator`: the kopf operator, run embedded (no `kopf run` needed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mlfootprint.operator.config import SETTINGS, OperatorConfig
from mlfootprint.settings import SettingsError

if TYPE_CHECKING:
    from mlfootprint.operator.runtime import EnergySource

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
    SETTINGS.add_arguments(parser)


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    """The configuration from flags, the environment and --config; exit 2 naming the bad setting."""
    try:
        return SETTINGS.from_args(args)
    except SettingsError as e:
        raise SystemExit(SETTINGS.fail(e)) from None


def run_operator(
    cfg: OperatorConfig, *, stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None,
    energy: EnergySource | None = None, memo: object = None,
) -> None:
    """Run the operator until stopped (blocking; its own event loop). Used by the CLI and tests."""
    import kopf

    from mlfootprint.operator import kopf_compat
    from mlfootprint.operator.kube import Kube
    from mlfootprint.operator.main import register

    kopf_compat.install()
    registry = kopf.OperatorRegistry()
    # a connection per status write in flight (ConfigMap and workload reads share them)
    kube = Kube.from_kubeconfig(cfg.kubeconfig, connections=max(cfg.status_write_concurrency, 16))
    register(registry, cfg, kube, energy=energy)
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
    from mlfootprint.logs import configure

    cfg = config_from_args(args)
    if cfg.web_config_file:  # checked before kopf starts: a bad file fails the start, naming the flag
        from mlfootprint.web import WebConfigError, load_web_config

        try:
            load_web_config(Path(cfg.web_config_file))
        except WebConfigError as e:
            raise SystemExit(SETTINGS.fail(f"--web-config-file: {e}")) from None
    configure(cfg.log_level, cfg.log_format)
    logging.getLogger("kopf").setLevel(logging.WARNING if cfg.log_level != "debug" else logging.DEBUG)
    run_operator(cfg)
    return 0

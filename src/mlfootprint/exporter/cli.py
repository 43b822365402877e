"""`mlfootprint exporter`: the node exporter (DaemonSet) serving /metrics and /healthz."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from mlfootprint.exporter.config import SETTINGS, ConfigError

HELP = "node exporter: GPU and host energy attributed to pods (Prometheus)"
DESCRIPTION = """\
Meter GPU (NVML, dcgm-exporter or simulated) and host (RAPL or an estimate) energy on this
node, attribute it to the pods holding the devices (energy is conserved: attributed + idle
== measured per GPU and interval) and serve it as Prometheus metrics on /metrics
(names: docs/metrics.md), with /healthz.

Demo (a simulated day in a minute, pods from the API server of a kwok cluster):
  mlfootprint exporter --gpu-source sim --sim-time-factor 1440 --pod-source kubernetes \\
      --kubeconfig kubeconfig --node-name kwok-gpu-0 --host-source sim
"""

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="Attribute two intervals, print the metrics text to stdout and exit (debugging, promtool).",
    )
    SETTINGS.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mlfootprint.logs import configure

    try:
        cfg = SETTINGS.from_args(args)
    except ConfigError as exc:
        return SETTINGS.fail(exc)
    configure(cfg.log_level, cfg.log_format)
    from prometheus_client import generate_latest

    from mlfootprint.exporter.app import build_monitor, build_registry, freshness_check
    from mlfootprint.web import Server, WebConfigError, WebConfigFile, metrics_app

    try:  # checked before metering starts: a bad file fails the start, naming the setting
        web = WebConfigFile(cfg.web_config_file) if cfg.web_config_file is not None else None
    except WebConfigError as exc:
        return SETTINGS.fail(f"web_config_file: {exc}")
    try:
        monitor = build_monitor(cfg)
    except ConfigError as exc:  # e.g. an unreadable kubeconfig or no in-cluster service account
        return SETTINGS.fail(exc)
    registry = build_registry(monitor, cfg)
    if args.once:
        monitor.cycle()
        deadline = time.monotonic() + cfg.attribution_interval_s
        while time.monotonic() < deadline:
            monitor.sample()
            time.sleep(cfg.sample_interval_s)
        monitor.cycle()
        sys.stdout.write(generate_latest(registry).decode())
        if cfg.state_file is not None:
            monitor.save_state()
        monitor.close()
        return 0
    healthy = freshness_check(lambda: monitor.last_cycle_monotonic, max(10.0, 5 * cfg.attribution_interval_s))
    try:
        server = Server(metrics_app(registry, healthy), cfg.listen_address, cfg.port, web).start("metrics-http")
    except OSError as exc:
        return SETTINGS.fail(f"--port {cfg.port}: cannot listen on {cfg.listen_address}: {exc}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "exporter listening",
        extra={"address": cfg.listen_address, "port": server.port, "gpu_source": cfg.gpu_source,
               "pod_source": cfg.pod_source, "node": cfg.node_name, "web_config_file": str(cfg.web_config_file or "")},
    )
    try:
        monitor.run(stop, cfg.sample_interval_s, cfg.attribution_interval_s)
    finally:
        server.close()
        monitor.close()
    return 0

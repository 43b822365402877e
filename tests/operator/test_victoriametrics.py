"""Prometheus mode against VictoriaMetrics single-node: the same status as scrape mode.

tests/operator/test_prometheus_mode.py's check, with the store swapped: a real VictoriaMetrics
built here from its Go module (hack/tools/50-victoriametrics.sh) scrapes the ramp exporter
itself, from a Prometheus-format scrape config (plus ``honor_timestamps: true``; the real
exporter publishes no timestamps, the ramp does), and the Prometheus-mode operator reads the
counters back through the same Prometheus query API with unchanged PromQL (``max by (...)``
instant queries at grid points). The carbon intensity query goes to it too.

VictoriaMetrics moves an instant query closer to now than ``-search.latencyOffset`` (30 s by
default) back to now - offset; the operator's ``--prometheus-lag`` (30 s by default) must not
be shorter (docs/install.md). The test reads 3 s behind now, so it runs the store with a 1 s
offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kubectl
from tests.operator.test_prometheus_mode import SCRAPE_MS, check_modes_agree, second_namespace  # noqa: F401 - fixture
from tests.victoriametrics_server import RealVictoriaMetrics

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

LAG_S = 3.0
STEP_S = 4.0  # longer than the store's 7 concurrent queries take on a loaded machine


@pytest.fixture
def victoriametrics_for(tmp_path: Path) -> Iterator[Any]:
    """start(target_port, path) -> base URL of a real VictoriaMetrics scraping that target."""
    started: list[RealVictoriaMetrics] = []

    def start(target_port: int, path: str) -> str:
        vm = RealVictoriaMetrics(
            tmp_path,
            f"global: {{scrape_interval: {SCRAPE_MS}ms, scrape_timeout: {SCRAPE_MS - 50}ms}}\n"
            "scrape_configs:\n"
            f"  - job_name: fixture\n    metrics_path: {path}\n    honor_timestamps: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n",
            latency_offset="1s",
        )
        started.append(vm)
        return vm.start()

    yield start
    for vm in started:
        vm.stop()


def test_prometheus_mode_on_victoriametrics_gives_the_scrape_mode_status(
    kubectl: Kubectl, namespace: str, second_namespace: str, start_operator: Any, victoriametrics_for: Any  # noqa: F811 - the fixture
) -> None:
    check_modes_agree(kubectl, namespace, second_namespace, start_operator, victoriametrics_for, lag_s=LAG_S, step_s=STEP_S)

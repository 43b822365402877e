"""`mlfootprint report --prometheus-url` against VictoriaMetrics single-node, unchanged.

The same history, targets and hand-computed figures as tests/report/test_prometheus_real.py,
ingested by a real VictoriaMetrics built here from its Go module (hack/tools/50-victoriametrics.sh),
which scrapes the targets itself from the same Prometheus-format scrape config (plus
``honor_timestamps: true``: VictoriaMetrics ignores the pages' timestamps unless told). The
report's PromQL (``last_over_time``, ``increase``, ``sum by``) runs as is.

One documented difference (docs/report.md): MetricsQL's ``increase()`` does not extrapolate,
so the deleted pod's host counter counts what it counted, where Prometheus adds half a
sample interval past its last sample; the idle host figure is then exactly the counters'.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.report.test_prometheus_real import check_report_figures, ingest_history, scrape_config
from tests.victoriametrics_server import RealVictoriaMetrics

pytestmark = [pytest.mark.prometheus]


@pytest.fixture
def victoriametrics_history(tmp_path: Path) -> Iterator[tuple[str, int]]:
    def start(target: str) -> RealVictoriaMetrics:
        return RealVictoriaMetrics(tmp_path, scrape_config(target, honor_timestamps=True)).__enter__()

    yield from ingest_history(start, timeout_s=90.0)


def test_report_period_figures_from_victoriametrics(
    victoriametrics_history: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, t0 = victoriametrics_history
    check_report_figures(url, t0, tmp_path, capsys, extrapolates=False)

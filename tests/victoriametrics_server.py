"""A real VictoriaMetrics single-node (built from its Go module by hack/tools/50-victoriametrics.sh)
for tests: the Prometheus-compatible store that scales beyond one Prometheus (docs/install.md).

Same interface as :class:`tests.prometheus_server.RealPrometheus`: it scrapes the targets of a
Prometheus-format scrape config itself (``-promscrape.config``) and answers the Prometheus
query API. Loopback only, a temp data directory, bounded waits; a missing binary fails the
test with the reason (and the recorded build error), never skips.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.prometheus_server import RealPrometheus

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hack" / "tools" / "50-victoriametrics.sh"


def victoriametrics_version() -> str:
    m = re.search(r'VICTORIAMETRICS_VERSION:-(v[0-9.]+)', SCRIPT.read_text())
    assert m, f"no default version in {SCRIPT}"
    return m.group(1)


def victoriametrics_binary() -> Path:
    cache = Path(os.environ.get("MLFOOTPRINT_CACHE") or Path.home() / ".cache" / "mlfootprint")
    version = os.environ.get("VICTORIAMETRICS_VERSION") or victoriametrics_version()
    binary = cache / "bin" / f"victoria-metrics-{version}" / "victoria-metrics"
    if not binary.exists():
        error = cache / "bin" / "victoria-metrics.build-error.log"
        detail = f"; last build failed:\n{error.read_text()[-2000:]}" if error.exists() else ""
        pytest.fail(f"{binary} not found: run `bash hack/tools/50-victoriametrics.sh` (make tools){detail}", pytrace=False)
    return binary


class RealVictoriaMetrics(RealPrometheus):
    """``with RealVictoriaMetrics(tmp_path, scrape_config_yaml) as vm:`` -> ``vm.url`` answers once ready.

    ``latency_offset``: VictoriaMetrics shifts instant queries closer than this to now back to
    now - offset (``-search.latencyOffset``, 30 s by default); tests that read a few seconds
    behind now lower it, as an operator whose ``--prometheus-lag`` is shorter must.
    """

    NAME = "VictoriaMetrics"
    READY_PATH = "/health"
    CONFIG_NAME = "scrape.yml"

    def __init__(self, workdir: Path, config_yaml: str, *, latency_offset: str = "30s", ready_timeout_s: float = 30.0) -> None:
        super().__init__(workdir, config_yaml, ready_timeout_s=ready_timeout_s)
        self.latency_offset = latency_offset

    def argv(self) -> list[str]:
        return [str(victoriametrics_binary()), f"-storageDataPath={self.workdir / 'vm-data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}", f"-promscrape.config={self.config}",
                f"-search.latencyOffset={self.latency_offset}", "-search.disableCache",
                # one sample per series and millisecond: a page scraped twice with the same
                # timestamps (as Prometheus drops them) is stored once
                "-dedup.minScrapeInterval=1ms", "-retentionPeriod=2d", "-loggerLevel=WARN"]

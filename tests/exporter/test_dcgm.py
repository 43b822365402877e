"""DCGM source against a real local HTTP server serving dcgm-exporter text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlfootprint.exporter.gpu_dcgm import DcgmGpuSource, parse_dcgm_metrics
from mlfootprint.exporter.model import ErrorCounter, SourceUnavailable
from tests.text_server import TextServer

from .conftest import FIXTURES

TEXT = (FIXTURES / "dcgm-exporter.txt").read_text()


@pytest.fixture
def dcgm_url() -> Iterator[str]:
    server = TextServer(lambda path: TEXT if path == "/metrics" else None)
    yield f"{server.base}/metrics"
    server.close()


def test_parse_fixture() -> None:
    gpus = parse_dcgm_metrics(TEXT)
    assert set(gpus) == {"GPU-aaaa-0", "GPU-bbbb-1"}
    g = gpus["GPU-aaaa-0"]
    assert (g.energy_mj, g.power_w, g.active, g.model) == (123456789.0, 612.5, 0.93, "NVIDIA H100 80GB HBM3")


def test_reads_over_http(dcgm_url: str) -> None:
    errors = ErrorCounter()
    src = DcgmGpuSource(errors, dcgm_url)
    readings = {r.uuid: r for r in src.read(5.0)}
    assert readings["GPU-bbbb-1"].power_w == 98.25
    assert readings["GPU-bbbb-1"].energy_mj == 555000.0
    assert readings["GPU-aaaa-0"].activity == 0.93
    assert src.read_power(5.1) == {"GPU-aaaa-0": 612.5, "GPU-bbbb-1": 98.25}
    assert errors.counts() == {}


def test_unreachable_is_no_data() -> None:
    errors = ErrorCounter()
    src = DcgmGpuSource(errors, "http://127.0.0.1:9/metrics", timeout_s=0.5)
    with pytest.raises(SourceUnavailable):
        src.read(0.0)
    assert errors.counts() == {("dcgm", "fetch"): 1}

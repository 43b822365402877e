"""The exporter's HTTP endpoints as the CLI wires them: /metrics is a valid OpenMetrics page
when the scraper asks for one (Prometheus does by default), and /healthz turns 503 "stale"
once attribution has not published a snapshot for max_age_s."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from mlfootprint.exporter.app import build_monitor, build_registry, freshness_check
from mlfootprint.exporter.config import load_config
from mlfootprint.web.server import Server, metrics_app
from tests.exporter.conftest import FakeClock


def _status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_served_page_is_openmetrics_and_healthz_follows_the_cycles(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods:\n  - {namespace: ml, name: train, profile: training, containers: [{name: t, gpus: 1}]}\n")
    cfg = load_config(flags={"gpu_source": "sim", "sim_gpus": 2, "pod_source": "file", "pods_file": str(pods),
                             "host_source": "sim", "node_name": "n1"})
    clock = FakeClock(0.0)
    monitor = build_monitor(cfg, clock=clock)
    monitor.cycle()
    clock.advance(30.0)
    monitor.cycle()
    published = [monitor.last_cycle_monotonic]
    healthy = freshness_check(lambda: published[0], max_age_s=10.0)
    with Server(metrics_app(build_registry(monitor, cfg), healthy)).start() as server:
        base = f"http://127.0.0.1:{server.port}"
        request = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        energy = families["mlfootprint_pod_gpu_energy_joules"]
        assert energy.type == "counter"
        assert any(s.labels.get("pod") == "train" and s.value > 0 for s in energy.samples)
        assert _status(base + "/healthz") == (200, b"ok\n")
        published[0] -= 11.0  # the last snapshot is now older than max_age_s
        assert _status(base + "/healthz") == (503, b"stale\n")

"""A real Prometheus (Debian package) scrapes the exporter and answers a PromQL query."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.prometheus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _wait(url: str, deadline: float) -> bytes:
    while time.monotonic() < deadline:
        try:
            status, body = _get(url)
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in time")


def test_prometheus_scrapes_per_pod_energy(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: run `bash hack/tools/30-prometheus.sh` (make tools)"
    pods = tmp_path / "pods.yaml"
    pods.write_text(
        "pods:\n"
        "  - {namespace: ml, name: llama-train, profile: training, containers: [{name: trainer, gpus: 2}]}\n"
        "  - {namespace: web, name: chat, profile: inference, containers: [{name: server, gpus: 1}]}\n"
    )
    exporter_port, prom_port = _free_port(), _free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "mlfootprint", "exporter", "--gpu-source", "sim", "--sim-gpus", "4",
         "--pod-source", "file", "--pods-file", str(pods), "--host-source", "sim", "--sim-time-factor", "60",
         "--listen-address", "127.0.0.1", "--port", str(exporter_port), "--node-name", "sim-node-0",
         "--attribution-interval-s", "0.5"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "exporter.log", "w"),
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: mlfootprint\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    prom = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"),
    )
    try:
        deadline = time.monotonic() + 60
        _wait(f"http://127.0.0.1:{exporter_port}/healthz", deadline)
        _wait(f"http://127.0.0.1:{prom_port}/-/ready", deadline)
        query = "sum by (namespace, pod) (mlfootprint_pod_gpu_energy_joules_total)"
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        result: list = []  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            result = json.loads(_wait(url, deadline))["data"]["result"]
            if {r["metric"].get("pod") for r in result} >= {"llama-train", "chat"} and all(float(r["value"][1]) > 0 for r in result):
                break
            time.sleep(0.5)
        energy = {r["metric"]["pod"]: float(r["value"][1]) for r in result}
        assert set(energy) == {"llama-train", "chat"}, result
        assert energy["llama-train"] > energy["chat"] > 0  # 2 GPUs training vs 1 serving
        up = json.loads(_wait(f"http://127.0.0.1:{prom_port}/api/v1/query?query=up", deadline))["data"]["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        for proc in (prom, exporter):
            proc.terminate()
        for proc in (prom, exporter):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

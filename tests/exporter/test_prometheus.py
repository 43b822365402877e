"""A real Prometheus (Debian package) scrapes the exporter and answers a PromQL query."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mlfootprint.devcluster.cluster import free_port
from tests.prometheus_server import RealPrometheus

pytestmark = pytest.mark.prometheus


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
    pods = tmp_path / "pods.yaml"
    pods.write_text(
        "pods:\n"
        "  - {namespace: ml, name: llama-train, profile: training, containers: [{name: trainer, gpus: 2}]}\n"
        "  - {namespace: web, name: chat, profile: inference, containers: [{name: server, gpus: 1}]}\n"
    )
    exporter_port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "mlfootprint", "exporter", "--gpu-source", "sim", "--sim-gpus", "4",
         "--pod-source", "file", "--pods-file", str(pods), "--host-source", "sim", "--sim-time-factor", "60",
         "--listen-address", "127.0.0.1", "--port", str(exporter_port), "--node-name", "sim-node-0",
         "--attribution-interval-s", "0.5"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "exporter.log", "w"),  # noqa: SIM115 - the child keeps it
    )
    prom = RealPrometheus(
        tmp_path,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: mlfootprint\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n",
    )
    try:
        deadline = time.monotonic() + 60
        _wait(f"http://127.0.0.1:{exporter_port}/healthz", deadline)
        prom.start()
        query = "sum by (namespace, pod) (mlfootprint_pod_gpu_energy_joules_total)"
        url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        result: list = []  # type: ignore[type-arg]
        up: list = []  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            result = json.loads(_wait(url, deadline))["data"]["result"]
            # `up` is the latest scrape's (a 1 s timeout): wait for it too, not just for energy
            up = json.loads(_wait(f"{prom.url}/api/v1/query?query=up", deadline))["data"]["result"]
            if ({r["metric"].get("pod") for r in result} >= {"llama-train", "chat"} and all(float(r["value"][1]) > 0 for r in result)
                    and up and up[0]["value"][1] == "1"):
                break
            time.sleep(0.5)
        energy = {r["metric"]["pod"]: float(r["value"][1]) for r in result}
        assert set(energy) == {"llama-train", "chat"}, result
        assert energy["llama-train"] > energy["chat"] > 0  # 2 GPUs training vs 1 serving
        assert up and up[0]["value"][1] == "1", up
    finally:
        prom.stop()
        exporter.terminate()
        try:
            exporter.wait(timeout=15)
        except subprocess.TimeoutExpired:
            exporter.kill()

"""A real Prometheus scrapes the real exporter over TLS with a client certificate and basic
auth (the web config as node_exporter takes it); a job with the wrong password is refused."""

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
from tests.pki import PASSWORD, Pki
from tests.prometheus_server import RealPrometheus

pytestmark = pytest.mark.prometheus


def _query(prom: RealPrometheus, query: str) -> list[dict]:  # type: ignore[type-arg]
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]["result"]  # type: ignore[no-any-return]


def test_prometheus_scrapes_over_tls_with_client_cert_and_basic_auth(pki: Pki, password_hash: str, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.client_ca}\n"
        f"basic_auth_users:\n  prometheus: '{password_hash}'\n"
    )
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods:\n  - {namespace: ml, name: train, profile: training, containers: [{name: t, gpus: 1}]}\n")
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "mlfootprint", "exporter", "--gpu-source", "sim", "--sim-gpus", "2",
         "--pod-source", "file", "--pods-file", str(pods), "--host-source", "sim", "--node-name", "tls-node",
         "--listen-address", "127.0.0.1", "--port", str(port), "--attribution-interval-s", "0.5",
         "--web-config-file", str(web)],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "exporter.log", "w"),  # noqa: SIM115 - the child keeps it
    )
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "wrong").write_text("not the password")

    def job(name: str, password_file: str) -> str:
        return (
            f"  - job_name: {name}\n    scheme: https\n"
            f"    tls_config: {{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.client_key}, server_name: localhost}}\n"
            f"    basic_auth: {{username: prometheus, password_file: {tmp_path / password_file}}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )

    prom = RealPrometheus(tmp_path, "global: {scrape_interval: 1s}\nscrape_configs:\n" + job("secured", "password") + job("wrong", "wrong"))
    try:
        prom.start()
        deadline = time.monotonic() + 90
        up: dict[str, str] = {}
        energy: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            prom.assert_running()
            assert exporter.poll() is None, (tmp_path / "exporter.log").read_text()[-2000:]
            up = {r["metric"]["job"]: r["value"][1] for r in _query(prom, "up")}
            energy = _query(prom, 'mlfootprint_pod_gpu_energy_joules_total{job="secured", pod="train"}')
            if up.get("secured") == "1" and "wrong" in up and energy and float(energy[0]["value"][1]) > 0:
                break
            time.sleep(0.5)
        assert up == {"secured": "1", "wrong": "0"}, (up, prom.log_tail())
        assert energy and float(energy[0]["value"][1]) > 0
        assert not _query(prom, '{job="wrong", __name__=~"mlfootprint_.*"}')  # nothing scraped with a wrong password
    finally:
        prom.stop()
        exporter.terminate()
        try:
            exporter.wait(timeout=15)
        except subprocess.TimeoutExpired:
            exporter.kill()

"""`make demo` on a real node (issue 13 #6): the shortened demo with `--node real` runs the
chart's exporter and operator under the real kubelet and the project's pods as real containers;
every run gets energy and tCO2e, and `down` leaves the machine as it found it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.realnode.conftest import clean_host_state, host_state

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]


def _demo(state: Path, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlfootprint.demo", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "MLFOOTPRINT_DEMO_SHORT": "", "MLFOOTPRINT_DEMO_NODE": ""})


def test_short_demo_on_a_real_node(tmp_path: Path) -> None:
    before = clean_host_state()
    state = tmp_path / "demo"
    t0 = time.monotonic()
    try:
        up = _demo(state, "up", "--short", "--node", "real", "--time-factor", "7200", "--port-base", "0",
                   "--settle-timeout", "120")
        up_s = time.monotonic() - t0
        assert up.returncode == 0, f"demo up failed:\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}"
        assert "on a real node" in up.stdout and "helm install" in up.stdout
        kc = str(state / "cluster" / "kubeconfig")
        pods = json.loads(subprocess.run(["kubectl", "--kubeconfig", kc, "get", "pods", "-A", "-o", "json"],
                                         capture_output=True, text=True, check=True).stdout)["items"]
        by_name = {p["metadata"]["name"]: p for p in pods}
        exporter = [p for n, p in by_name.items() if n.startswith("mlfootprint-exporter-")]
        assert exporter and exporter[0]["status"]["phase"] == "Running"
        # the runs' pods ran in containers and ended by themselves (one sweep run fails on purpose)
        phases = {p["metadata"]["labels"].get("mlfootprint.io/run"): p["status"]["phase"] for p in pods
                  if p["metadata"]["namespace"] == "llm-team" and "mlfootprint.io/run" in p["metadata"]["labels"]}
        assert phases == {"sweep-lr1e-4": "Succeeded", "sweep-lr3e-4": "Succeeded", "sweep-lr1e-3": "Failed",
                          "llama-8b-final": "Succeeded"}
        report = json.loads((state / "report.json").read_text())
        assert report
        print(f"\n[realnode] short demo on a real node: up in {up_s:.0f} s")
    finally:
        down = _demo(state, "down", timeout_s=120)
    assert down.returncode == 0, down.stderr
    after = host_state()
    assert {k: v for k, v in after.items() if v != before[k]} == {}


def test_auto_falls_back_to_kwok_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io  # noqa: PLC0415

    from mlfootprint.demo import orchestrator  # noqa: PLC0415

    monkeypatch.setattr(orchestrator.rn, "real_node_problems", lambda: ["it needs root (containerd, runc, ...)"])
    out = io.StringIO()
    assert orchestrator.Demo(orchestrator.Options(tmp_path, node="auto"), out)._mode() == "kwok"
    assert "simulated (kwok) nodes: a real worker node needs it needs root" in out.getvalue()
    assert orchestrator.Demo(orchestrator.Options(tmp_path, node="kwok"), out)._mode() == "kwok"
    with pytest.raises(orchestrator.DemoError, match="--node real: this machine cannot run a real node: it needs root"):
        orchestrator.Demo(orchestrator.Options(tmp_path, node="real"), out)._mode()
    monkeypatch.setattr(orchestrator.rn, "real_node_problems", list)
    assert orchestrator.Demo(orchestrator.Options(tmp_path, node="auto"), io.StringIO())._mode() == "real"

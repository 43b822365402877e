"""The shortened `make demo`, end to end, as CI runs it (issue 8).

Runs ``python -m mlfootprint.demo up --short`` with its own state directory and free ports
against the real local control plane, exporter, operator and report; asserts that every run
shows non-zero energy and tCO2e, that development, training and inference all appear in the
lifecycle report, and that ``down`` leaves no process. It FAILS (never skips) when a piece is
missing (binaries: `make tools`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlfootprint.demo.procs import DemoState, group_members, is_running
from mlfootprint.devcluster.cluster import pid_alive

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

UP_TIMEOUT_S = 420


def _demo(state: Path, *args: str, timeout_s: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlfootprint.demo", *args, "--state-dir", str(state)],
        capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "MLFOOTPRINT_DEMO_SHORT": ""},
    )


def _all_pids(state: Path) -> list[tuple[str, int, str | None]]:
    demo = DemoState.load(state / "demo.json")
    out: list[tuple[str, int, str | None]] = [(p.name, p.pid, None) for p in demo.processes]
    cluster_state = Path(demo.cluster_dir) / "state.json"
    if cluster_state.exists():
        out += [(p["name"], p["pid"], p["binary"]) for p in json.loads(cluster_state.read_text())["processes"]]
    return out


def test_short_demo_end_to_end(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    t0 = time.monotonic()
    try:
        up = _demo(state, "up", "--short", "--port-base", "0", "--settle-timeout", "90", "--log-level", "info")
    except subprocess.TimeoutExpired as e:
        _demo(state, "down", timeout_s=60)
        pytest.fail(f"demo up did not finish in {UP_TIMEOUT_S} s:\n{e.stdout}\n{e.stderr}", pytrace=False)
    up_s = time.monotonic() - t0
    pids: list[tuple[str, int, str | None]] = []
    try:
        assert up.returncode == 0, f"demo up failed ({up.returncode}):\n{up.stdout}\n{up.stderr[-6000:]}"
        demo = DemoState.load(state / "demo.json")
        pids = _all_pids(state)
        # everything was started detached and still runs after `up` returned
        names = {n for n, _, _ in pids}
        assert {"exporter-kwok-gpu-0", "operator", "vllm-sim", "kube-apiserver", "etcd", "kwok"} <= names
        assert all(is_running(p) for p in demo.processes), demo.processes

        kubectl = ["kubectl", "--kubeconfig", demo.kubeconfig]
        objs = json.loads(subprocess.run(
            [*kubectl, "get", "trainingruns,inferenceservices.mlfootprint.io", "-A", "-o", "json"],
            capture_output=True, text=True, check=True, timeout=60).stdout)["items"]
        kinds = [o["kind"] for o in objs]
        assert kinds.count("TrainingRun") >= 4 and kinds.count("InferenceService") == 1, kinds
        for o in objs:
            st = o.get("status") or {}
            who = f"{o['kind']}/{o['metadata']['name']}"
            assert (st.get("energy") or {}).get("facilityKWh", 0) > 0, f"{who}: no energy: {st}"
            assert (st.get("carbon") or {}).get("totalTonnes", 0) > 0, f"{who}: no tCO2e: {st}"
        # the table a person sees shows the tCO2e column with the figures
        assert "TCO2E" in up.stdout and "llama-8b-final" in up.stdout
        # and the methodology's models (issue 14): host embodied, checkpoint swings, cap advice, e(Tin, Tout)
        final = next(o["status"] for o in objs if o["metadata"]["name"] == "llama-8b-final")
        assert final["carbon"]["embodiedHostKg"] > 0 and final["power"]["swings"] > 0, final
        assert final["powerCap"]["status"] == "recommend", final.get("powerCap")
        serving = next(o["status"] for o in objs if o["kind"] == "InferenceService")
        assert serving["inference"]["workloadModel"]["intervals"] >= 3, serving["inference"]
        assert "power-cap advice:" in up.stdout and "e(Tin, Tout) =" in up.stdout and "power swings" in up.stdout

        report = json.loads((state / "report.json").read_text())
        lifecycle = {lc["model"]: lc for lc in report["lifecycle"]}
        assert "llama-8b" in lifecycle, report["lifecycle"]
        phases = lifecycle["llama-8b"]["phases"]
        for phase in ("development", "training", "inference"):
            assert phase in phases and phases[phase]["runs"] > 0 and phases[phase]["facility_kwh"] > 0, phases
        assert phases["development"]["runs"] >= 3  # including the failed trials
        assert (state / "report.html").stat().st_size > 1000
        assert "mlfootprint.demo down --state-dir" in up.stdout and "/metrics" in up.stdout
    finally:
        down = _demo(state, "down", timeout_s=120)
    assert down.returncode == 0, f"demo down failed:\n{down.stdout}\n{down.stderr}"
    time.sleep(0.2)
    survivors = [f"{n} ({p})" for n, p, binary in pids
                 if (pid_alive(p, binary) if binary else group_members(p))]
    assert not survivors, f"left running after down: {survivors}"
    print(f"short demo: up {up_s:.0f} s, {len(pids)} processes stopped")

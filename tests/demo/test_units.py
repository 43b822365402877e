"""Unit tests of the demo's pure parts: simulated vLLM counters, scenario, manifests, processes."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlfootprint.demo import scenario as scn
from mlfootprint.demo.procs import DemoState, group_members, is_running, spawn, stop_all
from mlfootprint.demo.servingsim import SimClock, TrafficProfile, cumulative_mixed_rate_s, cumulative_rate_s, make_server, render
from mlfootprint.exporter.gpu_sim import OUTPUT_MIX_PERIOD_S, OUTPUT_MIX_PHASE, PROMPT_MIX_PERIOD_S, request_mix, request_rate


def test_cumulative_rate_is_the_integral_of_the_exporters_profile() -> None:
    for t0, t1 in ((0.0, 3600.0), (1.7e9, 1.7e9 + 86400.0), (1.7e9 + 5000.0, 1.7e9 + 9000.0)):
        n = 20000  # midpoint rule
        h = (t1 - t0) / n
        expected = sum(request_rate(t0 + (i + 0.5) * h) for i in range(n)) * h
        assert cumulative_rate_s(t1) - cumulative_rate_s(t0) == pytest.approx(expected, rel=1e-6)


@given(st.floats(0, 2e9), st.floats(0, 1e6))
def test_counters_never_decrease(t0: float, dt: float) -> None:
    p = TrafficProfile()
    assert p.requests_between(t0, t0 + dt) >= -1e-6 * max(1.0, t0)


def _value(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_mixed_rate_is_the_integral_of_rate_times_mix() -> None:
    for t0, t1 in ((0.0, 3600.0), (1.7e9, 1.7e9 + 86400.0)):
        n = 20000  # midpoint rule
        h = (t1 - t0) / n
        for period, phase, which in ((PROMPT_MIX_PERIOD_S, 0.0, 0), (OUTPUT_MIX_PERIOD_S, OUTPUT_MIX_PHASE, 1)):
            expected = sum(request_rate(t) * request_mix(t)[which] for t in (t0 + (i + 0.5) * h for i in range(n))) * h
            got = cumulative_mixed_rate_s(t1, period, phase) - cumulative_mixed_rate_s(t0, period, phase)
            assert got == pytest.approx(expected, rel=1e-6)


def test_render_uses_vllm_names_and_per_pod_share() -> None:
    p = TrafficProfile(peak_requests_per_s=10.0, prompt_tokens_per_request=100, output_tokens_per_request=50)
    whole = render(p, 0.0, 86400.0)
    half = render(p, 0.0, 86400.0, share=0.5)
    # one day of the profile averages 0.5 of the peak: 10 * 0.5 * 86400 requests
    assert _value(whole, "vllm:request_success_total") == pytest.approx(432000, abs=2)
    # tokens: the drifting mix changes the mean sizes, within the mix amplitude
    prompt, output = p.tokens_between(0.0, 86400.0)
    assert _value(whole, "vllm:prompt_tokens_total") == pytest.approx(prompt, abs=1)
    assert _value(whole, "vllm:generation_tokens_total") == pytest.approx(output, abs=1)
    assert 0.65 * 43_200_000 < prompt < 1.35 * 43_200_000 and 0.65 * 21_600_000 < output < 1.35 * 21_600_000
    assert _value(half, "vllm:request_success_total") == pytest.approx(216000, abs=2)
    assert "# TYPE vllm:request_success_total counter" in whole


def test_server_paths() -> None:
    clock = SimClock.hourly(3600.0)
    server = make_server("127.0.0.1", 0, TrafficProfile(), clock, replicas=2).start()
    port = server.port
    try:
        time.sleep(0.3)
        # the pod's page first: the clock runs 3,600x, so the whole read later must be larger
        pod = urllib.request.urlopen(f"http://127.0.0.1:{port}/pods/chat-7d9f-x2/metrics").read().decode()
        whole = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert _value(whole, "vllm:request_success_total") > 0
        assert 0 < _value(pod, "vllm:request_success_total") < _value(whole, "vllm:request_success_total")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope")
    finally:
        server.close()


@pytest.mark.parametrize("short", [False, True])
def test_scenario_has_three_phases_and_fits_the_nodes(short: bool) -> None:
    sc = scn.load(short=short)
    assert any(r.outcome == "Failed" for r in sc.sweep) and any(r.outcome == "Succeeded" for r in sc.sweep)
    assert sc.final.phase == "training" and all(r.phase == "development" for r in sc.sweep)
    assert sum(r.gpus for r in sc.sweep) <= 8 * sc.gpu_nodes
    assert sc.final.gpus <= 8 * sc.gpu_nodes and sc.final.gpus_per_pod <= 8
    assert sc.serving.replicas * sc.serving.gpus_per_replica <= 8 * sc.gpu_nodes
    # a day of training in about a minute (full), well under a minute in all (short)
    assert 40 <= sc.wall_s(24) <= 90 if not short else sc.total_wall_s <= 40


def test_manifests() -> None:
    sc = scn.load(short=True)
    failing = next(r for r in sc.sweep if r.outcome == "Failed")
    job = scn.job(sc, failing)
    ann = job["spec"]["template"]["metadata"]["annotations"]
    assert ann["mlfootprint.io/sim-profile"] == "failing" and ann["kwok.x-k8s.io/status"] == "custom"
    assert job["spec"]["backoffLimit"] == 0
    tr = scn.training_run(sc, failing)
    assert tr["spec"]["experiment"] and "final" not in tr["spec"]
    assert scn.training_run(sc, sc.final)["spec"]["final"] is True
    isvc = scn.inference_service(sc)
    assert isvc["spec"]["servingMetrics"]["engine"] == "vllm"
    pod = {"spec": {"containers": [{"name": "trainer", "image": "x"}]}, "status": {"startTime": "t0"}}
    ended = scn.ended_status(pod, "t1", "Failed", "CUDA out of memory")["status"]
    assert ended["phase"] == "Failed"
    assert ended["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_scenario_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("namespace: x\n")
    with pytest.raises(scn.ScenarioError, match=r"s\.yaml"):
        scn.load(bad)


def test_spawned_processes_outlive_the_starter_and_stop_all_kills_the_group(tmp_path) -> None:
    # a process that itself starts a child in the same group: both must go
    code = "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    rec = spawn("sleeper", [sys.executable, "-c", code], tmp_path / "s.log")
    state = DemoState(processes=[rec])
    state.save(tmp_path / "demo.json")
    loaded = DemoState.load(tmp_path / "demo.json")
    deadline = time.monotonic() + 5
    while len(group_members(rec.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_running(loaded.processes[0]) and len(group_members(rec.pid)) == 2
    assert stop_all(loaded.processes, timeout_s=5) == ["sleeper"]
    assert not group_members(rec.pid) and not is_running(rec)
    # a recorded process that no longer runs is never signalled
    assert stop_all(loaded.processes) == []


def test_demo_cli_rejects_bad_flags() -> None:
    proc = subprocess.run([sys.executable, "-m", "mlfootprint.demo", "up", "--port-base", "80"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--port-base" in proc.stderr


def test_port_in_use_is_a_clear_error() -> None:
    import socket

    from mlfootprint.demo.orchestrator import DemoError, pick_ports

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(DemoError, match=rf"{busy} \(exporter kwok-gpu-0\).*MLFOOTPRINT_DEMO_PORT_BASE"):
            pick_ports(busy, [("exporter kwok-gpu-0", 0)])
    free = pick_ports(0, [("a", 0), ("b", 1), ("c", 2)])
    assert len(set(free.values())) == 3


def test_missing_binaries_say_run_make_tools(tmp_path) -> None:
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "mlfootprint.demo", "up", "--short", "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, env={**os.environ, "MLFOOTPRINT_CACHE": str(tmp_path / "empty-cache")},
        timeout=60,
    )
    assert proc.returncode == 1
    assert "make tools" in proc.stderr and "kube-apiserver" in proc.stderr


def test_down_without_a_demo_is_fine(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mlfootprint.demo", "down", "--state-dir", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "no demo running" in proc.stdout


def test_models_summary_lines() -> None:
    from mlfootprint.demo.models_summary import models_lines

    figs = {
        "TrainingRun/final": {
            "carbon": {"embodiedKg": 3.0, "embodiedGpuKg": 0.5, "embodiedHostKg": 2.5},
            "factors": {"embodiedNodes": ["dgx-h100"]},
            "power": {"swings": 96, "p50W": 583.3, "p90W": 612.8, "p99W": 619.5, "limitW": 700},
            "powerCap": {"status": "recommend", "recommendedCapW": 490, "energySavedPct": 13.8, "timeAddedPct": 4.0,
                         "co2eSavedKg": 5.8},
        },
        "InferenceService/chat": {
            "inference": {"gpuJoulesPerToken": 0.2, "joulesPerToken": 0.26, "kWhPer1kRequests": 0.0138,
                          "workloadModel": {"a0": 0.0047, "a1": 0.17, "a2": 5.1e-5, "r2": 0.93, "intervals": 10}},
        },
    }
    text = "\n".join(models_lines(figs, "final", "chat"))
    assert "GPUs 0.5 + hosts 2.5 (dgx-h100 bill of materials)" in text
    assert "96 power swings" in text and "p50/p90/p99 583.3/612.8/619.5 W of a 700 W limit" in text
    assert "power-cap advice: 490 W saves ~13.8 % GPU energy for +4 % time (5.8 kgCO2e so far)" in text
    assert "e(Tin, Tout) = 0.0047·Tin + 0.17·Tout + 5.1e-05·Tin·Tout GPU J per request (R² 0.93, 10 intervals)" in text
    assert "not enough intervals" in "\n".join(models_lines({"InferenceService/chat": {"inference": {}}}, "final", "chat"))


def test_status_lists_each_process_and_fails_when_one_is_down(tmp_path) -> None:
    import io

    from mlfootprint.demo.orchestrator import status
    from mlfootprint.demo.procs import ProcRecord

    alive = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log")
    gone = ProcRecord("exited", 2**22 + 7, ["nothing"], str(tmp_path / "g.log"), start_ticks=1)
    try:
        DemoState(processes=[alive]).save(tmp_path / "demo.json")
        out = io.StringIO()
        assert status(tmp_path, out) == 0
        assert [line.split() for line in out.getvalue().splitlines()][1] == ["sleeper", str(alive.pid), "running"]
        DemoState(processes=[alive, gone]).save(tmp_path / "demo.json")
        out = io.StringIO()
        assert status(tmp_path, out) == 1
        assert "exited" in out.getvalue() and "NOT RUNNING" in out.getvalue()
    finally:
        stop_all([alive], timeout_s=5)


def test_progress_is_a_line_rewritten_on_a_terminal_and_plain_lines_elsewhere(tmp_path) -> None:
    """On a terminal the status line is redrawn in place (events print above it); piped,
    each status is its own plain line, without escape sequences."""
    import io

    from mlfootprint.demo.orchestrator import Demo, Driver, Options

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    sc = scn.load(None, short=True)
    texts = {}
    for name, out in (("tty", Tty()), ("pipe", io.StringIO())):
        demo = Demo(Options(state_dir=tmp_path / name), out=out)
        t = [0.0]
        driver = Driver(demo, kube=None, sc=sc, serving_port=0, clock=lambda t=t: t[0])  # type: ignore[arg-type]
        with driver._status_line():
            for step in range(3):
                t[0] += 6.0
                driver._progress("development sweep", force=False)
                driver._event(f"event {step}")
        texts[name] = out.getvalue()
    assert "\x1b[" in texts["tty"] and "\x1b[" not in texts["pipe"]
    pipe_lines = texts["pipe"].splitlines()
    assert [line for line in pipe_lines if "event" in line][-1].endswith("| event 2")
    assert sum("development sweep" in line for line in pipe_lines) == 3
    # the terminal's last redrawn status stays on screen after the stage, below the events
    import re

    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", texts["tty"]).replace("\r", "\n")
    shown = [line.strip() for line in screen.splitlines() if line.strip()]
    assert shown[-1].startswith("simulated hour") and "development sweep" in shown[-1]
    assert any(line.endswith("| event 2") for line in shown)

"""`mlfootprint report --prometheus-url` against a real Prometheus (Debian package).

A fixture HTTP server plays three scrape targets: two operator pods (the same operator
before and after a restart, told apart by their ``pod`` target label, as a ServiceMonitor
labels them) serving the operator's cumulative per-run gauges, and the node exporters'
counters (two nodes). Every sample carries an explicit timestamp, and each page moves one
step of ``STEP_S`` along a virtual grid per request, so one real scrape every
``SCRAPE_MS`` lays down one minute of history: ~40 minutes in ~20 s, with timestamps and
values that owe nothing to scheduling jitter. The history sits in the hour before now
(Prometheus refuses samples older than an hour before the newest one in its head, and
its own ``up`` series are written at the wall clock).

The period [since, until) lies on the grid, so the figures are exact (to float rounding
and the JSON's 6 decimals, hence ``abs=1e-6``):

* run gauges: Δ = value at ``until`` − value at ``since`` (0 for a run created inside
  the period; the last value for a run deleted inside it). The samples at the period's
  edges are on the page, so nothing is interpolated.
* idle counters: ``increase()`` over a window whose edges hold samples (Prometheus 2.x
  range selectors include both ends) does not extrapolate; a counter reset counts its
  post-reset value, as Prometheus does. The one deliberate exception is a pod deleted
  inside the period: Prometheus extrapolates its series half a sample interval past its
  last sample (``extrapolatedRate``: the end lies more than 1.1 intervals away), and the
  expected figure applies that factor, (n + 1/2) / n for n intervals sampled. A pod
  created inside the period starts its counter at 0, so the start is not extrapolated
  (the zero clamp).

Scenarios: a training run spanning the period; an InferenceService created inside it; a
run completed before it (its gauges still exported, frozen); a run deleted inside it
(only Prometheus knows it); the operator restarting inside the period (the same run's
gauges in two series, the old one stale); an exporter restart (counter reset) on node 2.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlfootprint.cli import main
from mlfootprint.report.model import format_time
from tests.prometheus_server import RealPrometheus
from tests.text_server import TextServer

pytestmark = [pytest.mark.prometheus]

KWH = 3.6e6
STEP_S = 60  # virtual seconds per step (per scrape)
SCRAPE_MS = 500  # with a 450 ms scrape timeout: a slow page on a loaded machine is not a lost step
SINCE_K, UNTIL_K, LAST_K = 4, 34, 36  # the period is [step 4, step 34); history ends at step 36
RESTART_K = 14  # the old operator pod's last sample; the new pod serves from RESTART_K + 2
B_START_K = 8  # the InferenceService is created: its gauges and pod counters start here
D_END_K = 20  # research/ablation-7 is deleted after this step: its gauges and pod series end
RESET_K = 24  # node 2's exporter restarts between RESET_K - 1 and RESET_K
OLD_POD, NEW_POD = "mlfootprint-operator-7d4b9-zx2kq", "mlfootprint-operator-7d4b9-ab3cd"

# ----------------------------------------------------------------------------- history

Series = dict[str, list[tuple[int, float]]]  # exposition line head -> [(step, value)]


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in kw.items()) + "}"


# Runs: cumulative facility kWh as a function of the step (non-linear, so any
# interpolation or extrapolation would show), then every gauge a fixed multiple of it.
RUNS: dict[str, dict[str, Any]] = {
    "A": {"labels": dict(namespace="nlp", name="llama-pretrain", kind="TrainingRun", phase="training", model="llama-3-8b"),
          "kwh": lambda k: 200 + 3.0 * k + 0.05 * k * k, "steps": range(LAST_K + 1), "pue": 1.2, "ci": 400.0},
    "B": {"labels": dict(namespace="serving", name="llama-chat", kind="InferenceService", phase="inference", model="llama-3-8b"),
          "kwh": lambda k: 0.75 * (k - B_START_K) + 0.02 * (k - B_START_K) ** 2, "steps": range(B_START_K, LAST_K + 1),
          "pue": 1.25, "ci": 350.0, "requests_per_kwh": 30_000.0},
    "C": {"labels": dict(namespace="vision", name="resnet-sweep-3", kind="TrainingRun", phase="development", model="resnet-50"),
          "kwh": lambda k: 7.2, "steps": range(LAST_K + 1), "pue": 1.2, "ci": 400.0},
    "D": {"labels": dict(namespace="research", name="ablation-7", kind="TrainingRun", phase="development", model="llama-3-8b"),
          "kwh": lambda k: 40 + 1.5 * k, "steps": range(D_END_K + 1), "pue": 1.2, "ci": 420.0},
}
EMB_G_PER_KWH, WATER_L_PER_KWH, GPU_H_PER_KWH = 15.0, 1.8, 1.6


def gauges(run: dict[str, Any], k: int) -> dict[str, float]:
    """The operator's gauges for one run at step k (docs/operator.md)."""
    kwh = run["kwh"](k)
    it_kwh = kwh / run["pue"]
    op_g = it_kwh * run["ci"]
    emb_g = kwh * EMB_G_PER_KWH
    out = {
        "mlfootprint_run_energy_joules": kwh * KWH,
        "mlfootprint_run_it_energy_joules": it_kwh * KWH,
        "mlfootprint_run_operational_co2e_grams": op_g,
        "mlfootprint_run_embodied_co2e_grams": emb_g,
        "mlfootprint_run_co2e_grams": op_g + emb_g,
        "mlfootprint_run_water_liters": kwh * WATER_L_PER_KWH,
        "mlfootprint_run_gpu_allocation_seconds": kwh * GPU_H_PER_KWH * 3600,
        "mlfootprint_run_completed": 1.0 if run is RUNS["C"] else 0.0,
    }
    if "requests_per_kwh" in run:
        out["mlfootprint_inference_requests"] = kwh * run["requests_per_kwh"]
    return out


def operator_series(pod: str) -> Series:
    steps = range(RESTART_K + 1) if pod == OLD_POD else range(RESTART_K + 2, LAST_K + 1)
    out: Series = {}
    for run in RUNS.values():
        for k in steps:
            if k in run["steps"]:
                for metric, value in gauges(run, k).items():
                    out.setdefault(metric + _labels(**run["labels"]), []).append((k, value))
    return out


def counter(increments: Callable[[int], float], steps: range, *, reset_k: int | None = None, kept: float = 0.4) -> list[tuple[int, float]]:
    """Cumulative J from per-step increments (kWh), 0 at the first step; an exporter restart
    at ``reset_k`` starts again from the part of that step measured after it (``kept``)."""
    out, total = [], 0.0
    for k in steps:
        if k != steps.start:
            inc = increments(k) * KWH
            total = total + inc if k != reset_k else inc * kept
        out.append((k, total))
    return out


def alive(steps: range) -> Callable[[int], float]:
    return lambda k: 1.0 if k in steps else 0.0


ALL = range(LAST_K + 1)
POD_A, POD_B, POD_D = alive(ALL), alive(range(B_START_K + 1, LAST_K + 1)), alive(range(D_END_K + 1))


def exporter_series() -> Series:
    n1, n2 = dict(node="gpu-node-1"), dict(node="gpu-node-2")
    a = dict(namespace="nlp", pod="llama-pretrain-worker-0", container="trainer")
    b = dict(namespace="serving", pod="llama-chat-7f9c-x2x9q", container="vllm")
    d = dict(namespace="research", pod="ablation-7-worker-0", container="trainer")
    g = "mlfootprint_gpu_idle_energy_joules_total"
    h = "mlfootprint_host_energy_joules_total"
    p = "mlfootprint_pod_host_energy_joules_total"
    return {
        # node 1: two GPUs, pods of runs A (all along) and D (deleted at D_END_K)
        g + _labels(**n1, gpu_uuid="GPU-0", gpu_model="H100"): counter(lambda k: 0.10, ALL),
        g + _labels(**n1, gpu_uuid="GPU-1", gpu_model="H100"): counter(lambda k: 0.05 + 0.002 * k, ALL),
        h + _labels(**n1, component="cpu", estimated="false"): counter(lambda k: 0.5 * POD_A(k) + 0.15 * POD_D(k) + 0.10, ALL),
        h + _labels(**n1, component="dram", estimated="false"): counter(lambda k: 0.1 * POD_A(k) + 0.03 * POD_D(k) + 0.02, ALL),
        p + _labels(**n1, **a, component="cpu"): counter(lambda k: 0.5, ALL),
        p + _labels(**n1, **a, component="dram"): counter(lambda k: 0.1, ALL),
        p + _labels(**n1, **d, component="cpu"): counter(lambda k: 0.15, range(D_END_K + 1)),
        p + _labels(**n1, **d, component="dram"): counter(lambda k: 0.03, range(D_END_K + 1)),
        # node 2: one GPU, the InferenceService's pod from B_START_K; exporter restart at RESET_K
        g + _labels(**n2, gpu_uuid="GPU-2", gpu_model="L4"): counter(lambda k: 0.02 if POD_B(k) else 0.2, ALL, reset_k=RESET_K),
        h + _labels(**n2, component="cpu", estimated="true"): counter(lambda k: 0.2 * POD_B(k) + 0.3, ALL, reset_k=RESET_K),
        h + _labels(**n2, component="dram", estimated="true"): counter(lambda k: 0.05 * POD_B(k) + 0.05, ALL, reset_k=RESET_K),
        p + _labels(**n2, **b, component="cpu"): counter(lambda k: 0.2, range(B_START_K, LAST_K + 1), reset_k=RESET_K),
        p + _labels(**n2, **b, component="dram"): counter(lambda k: 0.05, range(B_START_K, LAST_K + 1), reset_k=RESET_K),
    }


# ----------------------------------------------------------------------------- targets


class HistoryServer:
    """Serves, per path, the k-th step of its series on its k-th request (then the last
    step again): ``name value timestamp_ms`` lines, timestamp ``t0 + k * STEP_S``."""

    def __init__(self, pages: dict[str, Series], t0_s: int) -> None:
        self.pages, self.t0_s = pages, t0_s
        self.served = dict.fromkeys(pages, 0)
        self.lock = threading.Lock()
        self._http = TextServer(self._serve)

    def _serve(self, path: str) -> str | None:
        if path not in self.pages:
            return None
        with self.lock:
            k = min(self.served[path], LAST_K)
            self.served[path] += 1
        return self.page(path, k)

    def page(self, path: str, k: int) -> str:
        ts_ms = (self.t0_s + k * STEP_S) * 1000
        lines = [f"{head} {value!r} {ts_ms}" for head, samples in self.pages[path].items() for kk, value in samples if kk == k]
        return "\n".join(lines) + "\n"

    @property
    def port(self) -> int:
        return self._http.port

    def done(self) -> bool:
        with self.lock:
            return all(n > LAST_K for n in self.served.values())

    def close(self) -> None:
        self._http.close()


def _query(url: str, q: str, at_s: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": q, "time": str(at_s)})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=5) as r:
        return list(json.loads(r.read())["data"]["result"])


def scrape_config(target: str, *, honor_timestamps: bool = False) -> str:
    """The operator pods and the exporter as scrape targets (Prometheus' format). Prometheus
    honours the pages' timestamps by default; VictoriaMetrics only when told."""
    ts = "    honor_timestamps: true\n" if honor_timestamps else ""
    return (
        f"global: {{scrape_interval: {SCRAPE_MS}ms, scrape_timeout: {SCRAPE_MS - 50}ms}}\n"
        "scrape_configs:\n"
        f"  - job_name: mlfootprint-operator\n    honor_labels: true\n{ts}    static_configs:\n"
        f"      - {{targets: ['{target}'], labels: {{__metrics_path__: /operator/old, pod: {OLD_POD}}}}}\n"
        f"      - {{targets: ['{target}'], labels: {{__metrics_path__: /operator/new, pod: {NEW_POD}}}}}\n"
        f"  - job_name: mlfootprint-exporter\n    honor_labels: true\n{ts}    metrics_path: /exporter\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )


def ingest_history(start_store: Callable[[str], Any], timeout_s: float = 50.0) -> Iterator[tuple[str, int]]:
    """Serve the history to a store that scrapes it (``start_store(target)`` -> its handle,
    started, with ``url``, ``assert_running``, ``log_tail`` and ``stop``); yield (URL, t0 in s)
    once every sample is queryable."""
    # history from t0 to t0 + LAST_K steps, ending a few minutes before now
    t0 = (int(time.time()) // 60) * 60 - (LAST_K + 4) * STEP_S
    pages = {"/operator/old": operator_series(OLD_POD), "/operator/new": operator_series(NEW_POD), "/exporter": exporter_series()}
    server = HistoryServer(pages, t0)
    store = None
    try:
        deadline = time.monotonic() + timeout_s
        store = start_store(f"127.0.0.1:{server.port}")
        url = store.url
        while not server.done():
            store.assert_running()
            assert time.monotonic() < deadline, f"history not scraped within {timeout_s:.0f} s (served {server.served}): " + store.log_tail()
            time.sleep(0.1)
        # every page's scrapes must all have been ingested: one sample per step per series
        expected = {"/operator/old": RESTART_K + 1, "/operator/new": LAST_K - RESTART_K - 1, "/exporter": LAST_K + 1}
        sentinels = {
            "/operator/old": f'mlfootprint_run_energy_joules{{name="llama-pretrain",pod="{OLD_POD}"}}',
            "/operator/new": f'mlfootprint_run_energy_joules{{name="llama-pretrain",pod="{NEW_POD}"}}',
            "/exporter": 'mlfootprint_gpu_idle_energy_joules_total{gpu_uuid="GPU-0"}',
        }
        end = t0 + LAST_K * STEP_S
        counts: dict[str, float] = {}
        while time.monotonic() < deadline + 5:
            counts = {}
            for path, sel in sentinels.items():
                result = _query(url, f"count_over_time({sel}[{(LAST_K + 1) * STEP_S}s])", end)
                counts[path] = float(result[0]["value"][1]) if result else 0.0
            if all(counts[p] == n for p, n in expected.items()):
                break
            time.sleep(0.2)
        assert counts == {p: float(n) for p, n in expected.items()}, (
            f"samples ingested {counts}, expected {expected} (a scrape lost or refused): " + store.log_tail()
        )
        yield url, t0
    finally:
        if store is not None:
            store.stop()
        server.close()


@pytest.fixture
def prometheus_history(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real Prometheus that has ingested the whole history; yields (URL, t0 in s)."""
    yield from ingest_history(lambda target: RealPrometheus(tmp_path, scrape_config(target)).__enter__())


def _snapshot(path: Path, t0: int) -> None:
    """The base rows (--from-file): labels, intervals and the status splits (GPU vs host,
    market-based, water) that Prometheus does not carry. Run D is not here (deleted)."""
    at = lambda k: format_time(t0 + k * STEP_S)  # noqa: E731
    runs = [
        {"kind": "TrainingRun", "namespace": "nlp", "name": "llama-pretrain", "labels": {"team": "nlp"},
         "model": "llama-3-8b", "phase": "training", "nodePool": "h100", "startTime": format_time(t0 - 86400),
         "gpuHours": 768.0, "energy": {"gpuKWh": 400.0, "hostKWh": 100.0, "itKWh": 500.0, "facilityKWh": 600.0},
         "carbon": {"operationalKg": 200.0, "marketKg": 50.0, "embodiedKg": 8.0, "totalKg": 208.0},
         "water": {"onsiteL": 100.0, "offsiteL": 774.0, "embodiedL": 4.0, "totalL": 878.0}},
        {"kind": "InferenceService", "namespace": "serving", "name": "llama-chat", "labels": {"team": "platform"},
         "model": "llama-3-8b", "phase": "inference", "nodePool": "l4", "startTime": at(B_START_K),
         "gpuHours": 36.0, "energy": {"gpuKWh": 90.0, "hostKWh": 30.0, "itKWh": 120.0, "facilityKWh": 150.0},
         "carbon": {"operationalKg": 50.0, "embodiedKg": 1.0, "totalKg": 51.0},
         "water": {"onsiteL": 24.0, "offsiteL": 193.5, "embodiedL": 0.5, "totalL": 218.0},
         "inference": {"requests": 1_000_000, "inputTokens": 200_000_000, "outputTokens": 50_000_000}},
        {"kind": "TrainingRun", "namespace": "vision", "name": "resnet-sweep-3", "labels": {"team": "vision"},
         "model": "resnet-50", "phase": "development", "nodePool": "h100", "startTime": format_time(t0 - 3 * 3600),
         "endTime": format_time(t0 - 2 * 3600), "gpuHours": 12.0,
         "energy": {"gpuKWh": 5.0, "hostKWh": 1.0, "itKWh": 6.0, "facilityKWh": 7.2},
         "carbon": {"operationalKg": 2.4, "embodiedKg": 0.1, "totalKg": 2.5},
         "water": {"onsiteL": 1.2, "offsiteL": 9.3, "embodiedL": 0.05, "totalL": 10.55}},
    ]
    doc = {"format": "mlfootprint.io/report-snapshot", "version": 1, "generatedAt": at(LAST_K),
           "source": {"kind": "fixture"}, "runs": runs, "idle": []}
    path.write_text(json.dumps(doc), encoding="utf-8")


def _counted(samples: list[tuple[int, float]]) -> float:
    """What a counter counted over [SINCE_K, UNTIL_K]: the sum of its steps, a drop (reset)
    counting the value after it."""
    vals = [v for k, v in samples if SINCE_K <= k <= UNTIL_K]
    return sum(b - a if b >= a else b for a, b in zip(vals, vals[1:], strict=False))


def test_report_period_figures_from_real_prometheus(
    prometheus_history: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, t0 = prometheus_history
    check_report_figures(url, t0, tmp_path, capsys, extrapolates=True)


def check_report_figures(url: str, t0: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], *, extrapolates: bool) -> None:
    """The report's figures over [SINCE_K, UNTIL_K) from a store holding the history, by hand.
    ``extrapolates``: the store's ``increase()`` extrapolates a series that ends inside the
    window by half a sample interval, as Prometheus does (VictoriaMetrics' does not)."""
    since, until = format_time(t0 + SINCE_K * STEP_S), format_time(t0 + UNTIL_K * STEP_S)
    snapshot = tmp_path / "base.json"
    _snapshot(snapshot, t0)
    rc = main(["report", "--from-file", str(snapshot), "--prometheus-url", url, "--since", since, "--until", until,
               "--now", until, "-f", "json", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    groups = {g["key"]["namespace"]: g for g in doc["groups"]}

    # --- runs: Δ of the cumulative gauges over the period, by hand (facility kWh) ---------
    # A spans the period: (200 + 3*34 + 0.05*34²) - (200 + 3*4 + 0.05*4²) = 90 + 57 = 147
    # B is created at step 8: 0.75*26 + 0.02*26² = 33.02 (absent at since: from 0)
    # D is deleted after step 20: 1.5 * (20 - 4) = 24 (its last value; only in Prometheus)
    # C completed before the period: its frozen gauges change by 0, and it is not listed
    fac = {"nlp": 147.0, "serving": 33.02, "research": 24.0}
    assert sorted(groups) == sorted(fac), groups.keys()
    pue = {"nlp": 1.2, "serving": 1.25, "research": 1.2}
    ci = {"nlp": 400.0, "serving": 350.0, "research": 420.0}
    tol = {"abs": 1e-6}  # the JSON's 6 decimals; the figures are otherwise exact
    for ns, kwh in fac.items():
        g = groups[ns]
        it = kwh / pue[ns]
        assert g["runs"] == 1, (ns, g)
        assert g["facility_kwh"] == pytest.approx(kwh, **tol), ns
        assert g["it_kwh"] == pytest.approx(it, **tol), ns
        assert g["operational_kg"] == pytest.approx(it * ci[ns] / 1000, **tol), ns
        assert g["embodied_kg"] == pytest.approx(kwh * EMB_G_PER_KWH / 1000, **tol), ns
        assert g["total_kg"] == pytest.approx((it * ci[ns] + kwh * EMB_G_PER_KWH) / 1000, **tol), ns
        assert g["total_l"] == pytest.approx(kwh * WATER_L_PER_KWH, **tol), ns
        assert g["gpu_hours"] == pytest.approx(kwh * GPU_H_PER_KWH, **tol), ns
    # splits by the base rows' ratios: A's GPU 400/500 of IT, market 50/200 of operational,
    # water on-site 100/878; B has no market figure; D (no base row) shows IT as GPU energy
    nlp = groups["nlp"]
    assert nlp["gpu_kwh"] == pytest.approx(147.0 / 1.2 * 0.8, **tol)
    assert nlp["host_kwh"] == pytest.approx(147.0 / 1.2 * 0.2, **tol)
    assert nlp["market_kg"] == pytest.approx(147.0 / 1.2 * 0.4 * 0.25, **tol)
    assert nlp["onsite_l"] == pytest.approx(147.0 * 1.8 * 100 / 878, **tol)
    assert groups["serving"]["market_kg"] is None
    assert groups["serving"]["requests"] == pytest.approx(33.02 * 30_000, **tol)
    assert groups["research"]["gpu_kwh"] == pytest.approx(24.0 / 1.2, **tol)
    assert any("only in Prometheus" in n for n in doc["notes"]), doc["notes"]

    # --- idle: exporter counters over the period, by hand -----------------------------------
    series = exporter_series()

    def node_sum(prefix: str, node: str, *, d_factor: float = 1.0) -> float:
        total = 0.0
        for head, samples in series.items():
            if head.startswith(prefix + "{") and f'node="{node}"' in head:
                total += _counted(samples) * (d_factor if "ablation-7" in head else 1.0)
        return total

    # D's pod series ends at step 20, 14 steps before until: increase() extrapolates it half
    # an interval past its last sample, (16 + 0.5) / 16 of what it counted from since
    d_factor = (D_END_K - SINCE_K + 0.5) / (D_END_K - SINCE_K) if extrapolates else 1.0
    idle_gpu_j = idle_host_j = 0.0
    for node in ("gpu-node-1", "gpu-node-2"):
        idle_gpu_j += node_sum("mlfootprint_gpu_idle_energy_joules_total", node)
        host = node_sum("mlfootprint_host_energy_joules_total", node)
        pods = node_sum("mlfootprint_pod_host_energy_joules_total", node, d_factor=d_factor)
        idle_host_j += max(0.0, host - pods)
    # node 1: GPUs 30*0.10 + Σ(0.05 + 0.002k, k=5..34) = 3 + 1.5 + 1.17; host idle 0.12/step
    # less D's extrapolated half step (0.09); node 2: GPU 0.2*4 + 0.02*(15 + 0.4 + 10), host
    # idle 0.35/step, the step of the reset counting 40% (its pod's likewise)
    assert idle_gpu_j / KWH == pytest.approx(3.0 + 1.5 + 1.17 + 0.8 + 0.02 * 25.4, rel=1e-12)
    assert idle_host_j / KWH == pytest.approx(0.12 * 30 - (0.09 if extrapolates else 0.0) + 0.35 * 29.4, rel=1e-12)
    idle = doc["idle"]
    assert idle is not None and idle["runs"] == 2
    assert idle["gpu_kwh"] == pytest.approx(idle_gpu_j / KWH, **tol)
    assert idle["host_kwh"] == pytest.approx(idle_host_j / KWH, **tol)
    it_idle = (idle_gpu_j + idle_host_j) / KWH
    assert idle["it_kwh"] == pytest.approx(it_idle, **tol)
    # converted with the fleet's PUE over the period (Σ facility / Σ IT of the runs)
    fleet_pue = sum(fac.values()) / sum(fac[ns] / pue[ns] for ns in fac)
    assert idle["facility_kwh"] == pytest.approx(it_idle * fleet_pue, **tol)
    assert doc["total"]["facility_kwh"] == pytest.approx(sum(fac.values()) + it_idle * fleet_pue, **tol)
    assert doc["total"]["runs"] == 3
    assert doc["source"]["kind"] == "prometheus"

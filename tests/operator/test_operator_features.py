"""Operator features against the real API server: time-varying carbon intensity, inference
and breakeven, auto-discovery."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from mlfootprint import rfc3339
from mlfootprint.operator.energy.scrape import ExporterScraper
from mlfootprint.operator.runtime import ScrapeSource
from tests.conftest import Kubectl
from tests.operator.conftest import (
    FixtureExporter,
    PageServer,
    apply,
    configmap,
    get_json,
    make_pod,
    set_pod_phase,
    training_run,
    wait_for,
)

pytestmark = pytest.mark.cluster
KWH = 3.6e6


def _status(kubectl: Kubectl, kind: str, ns: str, name: str) -> dict[str, Any]:
    return get_json(kubectl, kind, name, "-n", ns).get("status") or {}


def test_time_varying_intensity_is_integrated_per_interval(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    schedule = [100.0, 500.0] + [200.0] * 22  # UTC hours 0 and 1
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.0", "carbonIntensity": json.dumps({"schedule": schedule})}))
    apply(kubectl, ns, training_run("tv", app="tv"))
    make_pod(kubectl, ns, "tv-0", {"app": "tv"})
    set_pod_phase(kubectl, ns, "tv-0", "Running")
    exporter.set(ns, "tv-0", gpu_j=0.0)
    day = (int(time.time()) // 86400 + 1) * 86400  # tomorrow 00:00 UTC
    clock = [float(day)]
    source = ScrapeSource(ExporterScraper(None, [exporter.url], max_age_s=0.25, clock=lambda: clock[0]))
    start_operator(ns, energy=source)
    wait_for(lambda: _status(kubectl, "trainingrun", ns, "tv")["ledger"]["observedAt"] == rfc3339.format_micro(day), what="t0")

    exporter.set(ns, "tv-0", gpu_j=3 * KWH)  # 3 kWh during 00:00-01:00 at 100 g/kWh
    clock[0] = day + 3600.0
    wait_for(lambda: _status(kubectl, "trainingrun", ns, "tv")["ledger"]["totals"].get("co2eOpG") == pytest.approx(300.0), what="hour 0")
    exporter.set(ns, "tv-0", gpu_j=4 * KWH)  # 1 kWh during 01:00-02:00 at 500 g/kWh
    clock[0] = day + 7200.0
    wait_for(lambda: _status(kubectl, "trainingrun", ns, "tv")["ledger"]["totals"].get("co2eOpG") == pytest.approx(800.0), what="hour 1")
    st = _status(kubectl, "trainingrun", ns, "tv")
    assert st["carbon"]["operationalKg"] == 0.8  # not 4 kWh x mean(100, 500) = 1.2 kg
    assert st["factors"]["carbonIntensityKind"] == "schedule"


def test_inference_service_efficiency_and_breakeven(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, pages: PageServer, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.0", "carbonIntensity": "360"}))
    apply(kubectl, ns, training_run("llm-final", app="final", model="llm", final=True))
    apply(kubectl, ns, training_run("llm-sweep", app="sweep", model="llm", experiment="lr-sweep"))
    for name, app, kwh in (("final-0", "final", 10.0), ("sweep-0", "sweep", 5.0)):
        make_pod(kubectl, ns, name, {"app": app})
        set_pod_phase(kubectl, ns, name, "Running")
        exporter.set(ns, name, gpu_j=kwh * KWH)
    for isvc, include_dev in (("chat", True), ("chat-train-only", False)):
        apply(kubectl, ns, {
            "apiVersion": "mlfootprint.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": isvc},
            "spec": {"selector": {"matchLabels": {"app": isvc}}, "model": {"name": "llm"},
                     "servingMetrics": {"engine": "vllm"}, "breakeven": {"includeDevelopment": include_dev}},
        })
        pod = f"{isvc}-0"
        make_pod(kubectl, ns, pod, {"app": isvc}, annotations={"mlfootprint.io/serving-metrics-url": f"{pages.base}/vllm/{pod}"})
        set_pod_phase(kubectl, ns, pod, "Running")
        exporter.set(ns, pod, gpu_j=1 * KWH)
        pages.set(f"/vllm/{pod}", 'vllm:request_success_total{finished_reason="stop"} 100\n'
                  "vllm:prompt_tokens_total 1000\nvllm:generation_tokens_total 5000\n")
    op = start_operator(ns, exporter_urls=(exporter.url,))

    # training 10 kWh x 360 = 3,600 g; development 5 kWh x 360 = 1,800 g; serving 360 g / 100 requests
    def ready(name: str, inferences: float) -> dict[str, Any] | None:
        inf = _status(kubectl, "inferenceservices.mlfootprint.io", ns, name).get("inference") or {}
        return inf if (inf.get("breakeven") or {}).get("inferences") == inferences else None

    inf = wait_for(lambda: ready("chat", 1500.0), what="breakeven with development")
    assert (inf["requests"], inf["inputTokens"], inf["outputTokens"]) == (100, 1000, 5000)
    assert inf["joulesPerToken"] == 720.0  # 3.6e6 J / 5,000 tokens
    assert inf["joulesPerRequest"] == 36000.0
    assert inf["co2eGPer1kRequests"] == 3600.0  # 360 g / 100 x 1,000
    assert inf["breakeven"]["progress"] == pytest.approx(100 / 1500, rel=1e-3)
    assert inf["breakeven"]["basis"] == "training+development"
    inf2 = wait_for(lambda: ready("chat-train-only", 1000.0), what="breakeven training only")
    assert inf2["breakeven"]["progress"] == 0.1
    st = _status(kubectl, "inferenceservices.mlfootprint.io", ns, "chat")
    assert st["phase"] == "inference"
    # the gauges are set as the refresh ends, just after the status it wrote is visible
    gauges = ("mlfootprint_inference_requests{", "mlfootprint_inference_breakeven_ratio{",
              "mlfootprint_inference_joules_per_token{", "mlfootprint_inference_co2e_grams_per_request{")
    wait_for(lambda: all(g in op.metrics() for g in gauges), timeout_s=10, what="the inference gauges")

    # more requests served: counted from the serving engine's counters
    pages.set("/vllm/chat-0", 'vllm:request_success_total{finished_reason="stop"} 250\n'
              "vllm:prompt_tokens_total 2500\nvllm:generation_tokens_total 12000\n")
    wait_for(lambda: (_status(kubectl, "inferenceservices.mlfootprint.io", ns, "chat").get("inference") or {}).get("requests") == 250)


def test_auto_discovery_creates_and_links_runs(kubectl: Kubectl, namespace: str, start_operator: Any) -> None:
    ns = namespace
    kubectl("label", "namespace", ns, "mlfootprint.io/auto-discover=true")
    gpu = {"limits": {"nvidia.com/gpu": "1"}}
    apply(kubectl, ns, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pretrain", "labels": {"mlfootprint.io/model": "llm"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "x", "resources": gpu}]}}},
    })
    apply(kubectl, ns, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "cpu-only"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "x"}]}}},
    })
    apply(kubectl, ns, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "serve", "labels": {"mlfootprint.io/serving-engine": "vllm", "mlfootprint.io/model": "llm"}},
        "spec": {"selector": {"matchLabels": {"app": "serve"}}, "template": {
            "metadata": {"labels": {"app": "serve"}},
            "spec": {"containers": [{"name": "s", "image": "vllm", "resources": gpu}]}}},
    })
    start_operator(ns, discovery=True)
    tr = wait_for(lambda: get_json(kubectl, "trainingrun", "pretrain", "-n", ns), what="discovered TrainingRun")
    job = get_json(kubectl, "job", "pretrain", "-n", ns)
    assert tr["spec"]["workloadRef"] == {"apiVersion": "batch/v1", "kind": "Job", "name": "pretrain"}
    assert tr["spec"]["model"] == {"name": "llm"}
    assert tr["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    isvc = wait_for(lambda: get_json(kubectl, "inferenceservices.mlfootprint.io", "serve", "-n", ns), what="discovered InferenceService")
    assert isvc["spec"]["selector"] == {"matchLabels": {"app": "serve"}}
    assert isvc["spec"]["servingMetrics"]["engine"] == "vllm"
    names = kubectl("get", "trainingruns", "-n", ns, "-o", "name").stdout.split()
    assert names == ["trainingrun.mlfootprint.io/pretrain"]  # the CPU-only Job is not a GPU run
    # the run is linked to its workload: it follows the Job and is garbage-collected with it
    wait_for(lambda: _status(kubectl, "trainingrun", ns, "pretrain").get("phase"), what="discovered run refreshed")
    kubectl("delete", "job", "pretrain", "-n", ns, "--cascade=background")
    wait_for(lambda: "pretrain" not in kubectl("get", "trainingruns", "-n", ns, "-o", "name").stdout, what="GC of the run")

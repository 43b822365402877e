"""The methodology's models in the status (issue 14), each against the real API server:
embodied impact by part (node bill of materials, host share, node-label selection), power
percentiles and power-cap advice from the exporters' power histograms, the per-request
energy model and efficiency figures of an InferenceService."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlfootprint.accounting.embodied import embodied_specs, node_embodied, node_preset
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
HOUR_S = 3600.0


def _status(kubectl: Kubectl, ns: str, name: str, kind: str = "trainingrun") -> dict[str, Any]:
    return get_json(kubectl, kind, name, "-n", ns).get("status") or {}


def test_embodied_by_part_from_the_node_bill_of_materials(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    # nodes labelled like the dev cluster's kwok-gpu-0 use the L40S server; the rest by GPU model
    labels = get_json(kubectl, "node", "kwok-gpu-0")["metadata"]["labels"]
    rule = {"select": [{"nodeLabels": {"kubernetes.io/hostname": labels["kubernetes.io/hostname"]}, "node": "l40s-4gpu"},
                       {"gpuModel": "H100", "node": "dgx-h100"}]}
    apply(kubectl, ns, configmap("mlfootprint-factors", {
        "pue": "1.0", "carbonIntensity": "0", "gpuLifetimeYears": "4", "hostLifetimeYears": "5", "embodied": json.dumps(rule),
    }))
    apply(kubectl, ns, training_run("r", app="r"))
    make_pod(kubectl, ns, "r-0", {"app": "r"})
    set_pod_phase(kubectl, ns, "r-0", "Running")
    exporter.set(ns, "r-0", gpu_j=KWH, alloc_s=8 * HOUR_S, gpu_model="NVIDIA H100 80GB HBM3", start=1.7e9)  # on kwok-gpu-0
    start_operator(ns, exporter_urls=(exporter.url,))
    st = wait_for(lambda: (s := _status(kubectl, ns, "r")) and s.get("gpuHours") == 8.0 and s, what="8 GPU-hours")
    node = node_embodied(node_preset("l40s-4gpu"))
    gpu, host = embodied_specs(node)
    gpu_kg = gpu.co2e_kg * 8 / (4 * 8760)
    host_kg = host.co2e_kg * (8 / node.gpu_count) / (5 * 8760)  # 8 GPU-hours on a 4-GPU node: 2 node-hours
    assert st["carbon"]["embodiedGpuKg"] == pytest.approx(gpu_kg, rel=1e-3)
    assert st["carbon"]["embodiedHostKg"] == pytest.approx(host_kg, rel=1e-3)
    assert st["carbon"]["embodiedKg"] == pytest.approx(gpu_kg + host_kg, rel=1e-3)
    assert st["factors"]["embodiedNodes"] == ["l40s-4gpu"]
    out = kubectl("get", "trainingrun", "r", "-n", ns, "-o", "wide").stdout
    assert "HOST EMB." in out.upper()


def test_power_percentiles_and_cap_advice_from_the_power_histogram(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, training_run("t", app="t"))
    make_pod(kubectl, ns, "t-0", {"app": "t"})
    set_pod_phase(kubectl, ns, "t-0", "Running")
    # 1 h: 10 % of the time at 10-20 % of the 700 W limit (checkpoints), 90 % at 80-90 %
    hist = (0.0, 360.0, 360.0, 360.0, 360.0, 360.0, 360.0, 360.0, 3600.0, 3600.0, 3600.0)
    exporter.set(ns, "t-0", gpu_j=0.85 * 700 * HOUR_S, alloc_s=HOUR_S, gpu_model="NVIDIA A100-SXM4-80GB", start=1.7e9,
                 power_s=hist, limit_w=700.0)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    st = wait_for(lambda: (s := _status(kubectl, ns, "t")) and "powerCap" in s and s, what="power-cap advice")
    power = st["power"]
    assert power["limitW"] == 700.0
    assert power["p50W"] == pytest.approx(0.8 * 700 + 0.1 * 700 * (1800 - 360) / 3240, rel=1e-3)  # histogram_quantile
    assert power["p50W"] <= power["p90W"] <= power["p99W"] <= 0.9 * 700
    cap = st["powerCap"]
    assert cap["status"] == "recommend" and cap["recommendedCapW"] == pytest.approx(490.0)  # 175/250 of the limit
    assert 0 < cap["energySavedPct"] <= 23.0 and cap["timeAddedPct"] <= 10.0 and cap["curve"]
    wait_for(lambda: "mlfootprint_run_power_cap_recommended_watts{" in op.metrics(), timeout_s=10, what="the cap gauge")


def test_inference_efficiency_and_the_workload_model(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, pages: PageServer, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.5", "carbonIntensity": "100"}))
    apply(kubectl, ns, {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "chat"},
        "spec": {"selector": {"matchLabels": {"app": "chat"}}, "model": {"name": "m"}, "servingMetrics": {"engine": "vllm"}},
    })
    make_pod(kubectl, ns, "chat-0", {"app": "chat"}, annotations={"mlfootprint.io/serving-metrics-url": f"{pages.base}/v"})
    set_pod_phase(kubectl, ns, "chat-0", "Running")
    op = start_operator(ns, exporter_urls=(exporter.url,), interval_s=0.5)
    a0, a1, a2 = 0.05, 2.0, 1e-4  # requests of known per-request energy
    energy = requests = tin_total = tout_total = 0.0

    def refreshes() -> float:
        text = op.metrics()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("mlfootprint_operator_status_writes_total{") and 'kind="InferenceService"' in line)

    for i in range(6):  # intervals with different request mixes, each read once
        r, tin, tout = 100.0 + 10 * i, 200.0 + 37.0 * (i % 5), 50.0 + 23.0 * (i % 4)
        energy += r * (a0 * tin + a1 * tout + a2 * tin * tout)
        requests, tin_total, tout_total = requests + r, tin_total + r * tin, tout_total + r * tout
        before = refreshes()
        exporter.set(ns, "chat-0", gpu_j=energy, cpu_j=0.1 * energy, start=1.7e9)
        pages.set("/v", f"vllm:request_success_total {requests}\nvllm:prompt_tokens_total {tin_total}\n"
                        f"vllm:generation_tokens_total {tout_total}\nprocess_start_time_seconds 1.7e9\n")
        wait_for(lambda before=before: refreshes() > before, what=f"interval {i} written")
    # the exporter page and the serving page are read separately (the exporter's from the shared
    # snapshot, renewed in the background), so a refresh may pair the last requests with the
    # previous energy: wait for the refresh that has both
    inf = wait_for(lambda: (x := _status(kubectl, ns, "chat", "inferenceservices.mlfootprint.io").get("inference") or {})
                   and x.get("requests") == int(requests)
                   and x.get("gpuJoulesPerRequest") == pytest.approx(energy / requests, rel=1e-3) and x,
                   what="all requests and all their energy")
    assert inf["gpuJoulesPerToken"] == pytest.approx(energy / tout_total, rel=1e-3)
    assert inf["gpuJoulesPerRequest"] == pytest.approx(energy / requests, rel=1e-3)
    assert inf["joulesPerToken"] == pytest.approx(1.1 * energy * 1.5 / tout_total, rel=1e-3)  # facility: GPU + host, x PUE
    assert inf["kWhPer1kRequests"] == pytest.approx(1.1 * energy * 1.5 / requests * 1000 / KWH, rel=1e-3)
    # the fit itself is checked against known coefficients in tests/operator/test_ledger.py; here
    # the exporter page and the serving page are read at slightly different times, so an
    # interval's energy and requests may land in neighbouring refreshes
    wm = inf["workloadModel"]
    assert wm["intervals"] >= 3 and wm["r2"] <= 1.0 and wm["fittedAt"]
    assert all(isinstance(wm[k], (int, float)) for k in ("a0", "a1", "a2"))

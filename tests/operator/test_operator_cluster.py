"""The operator against the real API server (tests/conftest.py `cluster`), with a fixture
exporter whose counters the test advances. Operator runs in-process with 0.5 s refreshes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import Kubectl
from tests.operator.conftest import (
    FixtureExporter,
    apply,
    condition,
    configmap,
    events,
    get_json,
    make_pod,
    set_pod_phase,
    training_run,
    wait_for,
)

pytestmark = pytest.mark.cluster

KWH = 3.6e6
FACTORS = {
    "pue": "1.5",
    "carbonIntensity": "400",
    "wueOnsite": "0.5",
    "wueOffsite": "2",
    "embodiedGpu": "{H100: {co2eKg: 876, waterL: 87.6}}",
    "gpuLifetimeYears": "1",
}


def _if(value: Any, pred: Any) -> Any:
    return value if pred(value) else None


def _tr(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    return get_json(kubectl, "trainingrun", name, "-n", ns)


def _totals(kubectl: Kubectl, ns: str, name: str) -> dict[str, float]:
    return ((_tr(kubectl, ns, name).get("status") or {}).get("ledger") or {}).get("totals") or {}


def test_training_run_from_creation_to_completion(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, configmap("mlfootprint-factors", FACTORS))
    op = start_operator(ns, exporter_urls=(exporter.url,))
    apply(kubectl, ns, training_run("llm", app="train", model="llm-7b", final=True, budget={"co2eKg": 0.5}))
    make_pod(kubectl, ns, "train-0", {"app": "train"})
    set_pod_phase(kubectl, ns, "train-0", "Running")
    exporter.set(ns, "train-0", gpu_j=1 * KWH, cpu_j=0.2 * KWH, dram_j=0.05 * KWH, alloc_s=3600, swings=2, peak_w=690, min_w=95)

    def first() -> dict[str, Any] | None:
        tr = _tr(kubectl, ns, "llm")
        return tr if (tr.get("status") or {}).get("energy", {}).get("itKWh") == 1.25 else None

    tr = wait_for(first, what="first energy in status")
    st = tr["status"]
    assert st["phase"] == "training"
    assert st["energy"] == {"gpuKWh": 1.0, "hostKWh": 0.25, "itKWh": 1.25, "facilityKWh": 1.875}
    # 1.25 kWh x 1.5 x 400 g/kWh = 750 g; embodied 1 GPU-hour of 876 kg over 1 year = 100 g
    # the embodied share by part: a per-GPU figure (embodiedGpu) covers the whole server, no host share
    assert st["carbon"] == {"operationalKg": 0.75, "embodiedKg": 0.1, "embodiedGpuKg": 0.1, "embodiedHostKg": 0.0,
                            "totalKg": 0.85, "totalTonnes": 0.00085}
    # on-site 1.25 x 0.5; off-site 1.25 x 1.5 x 2; embodied 87.6 L / 8760 h
    assert st["water"] == {"onsiteL": 0.625, "offsiteL": 3.75, "embodiedL": 0.01, "embodiedGpuL": 0.01, "embodiedHostL": 0.0,
                           "totalL": 4.385}
    assert st["power"]["peakW"] == 690 and st["power"]["minW"] == 95 and st["power"]["swings"] == 2
    assert st["gpuHours"] == 1.0 and st["pods"] == 1 and st["gpus"] == 1 and st["gpuModels"] == ["H100"]
    assert st["factors"]["pue"] == 1.5 and st["factors"]["source"]["configMap"] == f"{ns}/mlfootprint-factors"
    assert st["budget"]["exceeded"] is True and st["budget"]["summary"] == "170% CO2e (exceeded)"
    assert condition(tr, "BudgetExceeded")["status"] == "True"
    assert condition(tr, "FactorsValid")["status"] == "True"
    assert condition(tr, "Completed")["status"] == "False"
    assert condition(tr, "PhaseDerived")["reason"] == "FinalRun"
    for c in st["conditions"]:
        assert set(c) >= {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}

    # kubectl shows the tCO2e column
    out = kubectl("get", "trainingruns", "-n", ns).stdout
    assert "0.00085" in out and "training" in out

    # the run keeps going
    exporter.set(ns, "train-0", gpu_j=2 * KWH, alloc_s=7200)
    wait_for(lambda: _tr(kubectl, ns, "llm")["status"]["energy"]["itKWh"] == 2.25, what="second increment")

    # it completes: the figures freeze
    set_pod_phase(kubectl, ns, "train-0", "Succeeded")
    tr = wait_for(lambda: _if(_tr(kubectl, ns, "llm"), lambda t: condition(t, "Completed")["status"] == "True"), what="Completed")
    frozen = tr["status"]
    assert frozen["completionTime"] and condition(tr, "Completed")["reason"] == "PodsSucceeded"
    exporter.set(ns, "train-0", gpu_j=50 * KWH)
    op.wait_refreshes(3)  # refreshes that read the new counters
    assert _tr(kubectl, ns, "llm")["status"]["energy"] == frozen["energy"]

    reasons = {e["reason"] for e in events(kubectl, ns) if e["involvedObject"].get("name") == "llm"}
    assert {"BudgetExceeded", "Completed"} <= reasons

    metrics = op.metrics()
    labels = f'kind="TrainingRun",name="llm",namespace="{ns}"'
    assert f"mlfootprint_run_completed{{{labels}}} 1.0" in metrics
    assert f"mlfootprint_run_budget_co2e_grams{{{labels}}} 500.0" in metrics
    assert f'mlfootprint_run_info{{kind="TrainingRun",model="llm-7b",name="llm",namespace="{ns}",phase="training"}} 1.0' in metrics
    assert "mlfootprint_run_co2e_grams{" in metrics and "mlfootprint_operator_energy_source_up" in metrics


def test_operator_restart_mid_run_continues_totals_exactly(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, training_run("r", app="r"))
    make_pod(kubectl, ns, "r-0", {"app": "r"})
    set_pod_phase(kubectl, ns, "r-0", "Running")
    exporter.set(ns, "r-0", gpu_j=1000.0, cpu_j=100.0)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 1000.0, what="first observation")
    op.stop()

    # while the operator is down the run goes on
    exporter.set(ns, "r-0", gpu_j=1750.0, cpu_j=130.0)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 1750.0, what="continued after restart")
    op.wait_refreshes(3)  # several more refreshes with unchanged counters: nothing doubles
    t = _totals(kubectl, ns, "r")
    assert (t["gpuJ"], t["cpuJ"]) == (1750.0, 130.0)

    # the exporter restarts: its counters start again from a small value -> counted once, in full
    exporter.set(ns, "r-0", gpu_j=40.0, cpu_j=4.0)
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 1790.0, what="reset handled")
    exporter.set(ns, "r-0", gpu_j=60.0, cpu_j=5.0)
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 1810.0, what="growth after reset")
    assert _totals(kubectl, ns, "r")["cpuJ"] == 135.0


def test_broken_configmap_keeps_last_good_factors(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.4", "carbonIntensity": "300"}))
    apply(kubectl, ns, training_run("b", app="b"))
    make_pod(kubectl, ns, "b-0", {"app": "b"})
    set_pod_phase(kubectl, ns, "b-0", "Running")
    exporter.set(ns, "b-0", gpu_j=KWH)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _tr(kubectl, ns, "b")["status"]["carbon"]["operationalKg"] == 0.42, what="1 kWh x 1.4 x 300")

    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "0.8", "carbonIntensity": "300"}))
    tr = wait_for(
        lambda: _if(_tr(kubectl, ns, "b"), lambda t: condition(t, "FactorsValid")["status"] == "False"),
        what="FactorsValid=False",
    )
    c = condition(tr, "FactorsValid")
    assert c["reason"] == "InvalidPue" and "pue" in c["message"] and "last good" in c["message"]
    exporter.set(ns, "b-0", gpu_j=2 * KWH)
    wait_for(lambda: _tr(kubectl, ns, "b")["status"]["energy"]["gpuKWh"] == 2.0, what="second kWh")
    st = _tr(kubectl, ns, "b")["status"]
    assert st["factors"]["pue"] == 1.4 and st["carbon"]["operationalKg"] == 0.84  # last good kept
    evs = events(kubectl, ns)
    assert any(e["reason"] == "InvalidPue" and e["involvedObject"]["kind"] == "ConfigMap" for e in evs)
    assert any(e["reason"] == "FactorsInvalid" and e["involvedObject"]["name"] == "b" for e in evs)
    wait_for(lambda: f'mlfootprint_factors_valid{{configmap="mlfootprint-factors",namespace="{ns}"}} 0.0' in op.metrics(),
             timeout_s=10, what="the factors gauge")

    # fixed again: valid, and the new factors apply from now on
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.0", "carbonIntensity": "300"}))
    wait_for(lambda: condition(_tr(kubectl, ns, "b"), "FactorsValid")["status"] == "True", what="valid again")
    exporter.set(ns, "b-0", gpu_j=3 * KWH)
    wait_for(lambda: _tr(kubectl, ns, "b")["status"]["carbon"]["operationalKg"] == 1.14, what="0.84 + 1 x 1.0 x 0.3")


def test_invalid_spec_is_rejected_by_the_api_server(kubectl: Kubectl, namespace: str, crds: None) -> None:
    bad = {"apiVersion": "mlfootprint.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "x"},
           "spec": {"model": {"name": "m"}, "budget": {"co2eKg": -1}}}
    proc = kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "spec.budget.co2eKg" in proc.stderr


def test_two_factor_sets_give_the_expected_different_results(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    ns = namespace
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.5", "carbonIntensity": "400"}))
    apply(kubectl, ns, configmap("green", {"pue": "1.1", "carbonIntensity": "50", "wueOffsite": "0.5"}))
    apply(kubectl, ns, training_run("dflt", app="a"))
    apply(kubectl, ns, training_run("grn", app="g", factorsRef={"name": "green"}))
    for pod, app in (("a-0", "a"), ("g-0", "g")):
        make_pod(kubectl, ns, pod, {"app": app})
        set_pod_phase(kubectl, ns, pod, "Running")
        exporter.set(ns, pod, gpu_j=2 * KWH)
    start_operator(ns, exporter_urls=(exporter.url,))
    a = wait_for(lambda: _if(_tr(kubectl, ns, "dflt").get("status") or {}, lambda s: s["energy"]["itKWh"] == 2))
    g = wait_for(lambda: _if(_tr(kubectl, ns, "grn").get("status") or {}, lambda s: s["energy"]["itKWh"] == 2))
    assert a["energy"]["facilityKWh"] == 3.0 and g["energy"]["facilityKWh"] == 2.2
    assert a["carbon"]["operationalKg"] == 1.2  # 2 x 1.5 x 400 g
    assert g["carbon"]["operationalKg"] == 0.11  # 2 x 1.1 x 50 g
    assert a["water"]["offsiteL"] == 2 * 1.5 * 1.29 and g["water"]["offsiteL"] == 1.1  # 2 x 1.1 x 0.5
    assert g["factors"]["source"]["configMap"] == f"{ns}/green"


def test_completion_waits_for_a_reading_after_the_pods_ended(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """The exporters attribute an ended container's last interval after it ended; a run that
    completed (froze) on the reading before that lost its tail (the real-node test saw 600 J of
    23,867 J missing). The run completes only on counters read after its pods' end."""
    ns = namespace
    apply(kubectl, ns, training_run("tail", app="tail"))
    make_pod(kubectl, ns, "tail-0", {"app": "tail"})
    set_pod_phase(kubectl, ns, "tail-0", "Running")
    exporter.set(ns, "tail-0", gpu_j=1000.0)
    # the test's own steps between the pod's end and the exporter's last attribution (a
    # patch, two refreshes, on a loaded machine) must fit in the delay: 15 s, not the default 5
    op = start_operator(ns, exporter_urls=(exporter.url,), interval_s=0.5, final_read_delay_s=15.0)
    wait_for(lambda: _totals(kubectl, ns, "tail").get("gpuJ") == 1000.0, what="first observation")
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kubectl("patch", "pod", "tail-0", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "phase": "Succeeded",
        "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0, "image": "train:latest", "imageID": "",
                               "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": finished}}}],
    }}))
    op.wait_refreshes(2)  # refreshes that saw the pod ended, before the exporter's last attribution
    exporter.set(ns, "tail-0", gpu_j=1600.0)  # the exporter's last attribution of the ended container
    tr = wait_for(lambda: _if(_tr(kubectl, ns, "tail"), lambda t: condition(t, "Completed")["status"] == "True"),
                  timeout_s=45, what="Completed")
    assert tr["status"]["ledger"]["totals"]["gpuJ"] == 1600.0
    assert condition(tr, "Completed")["reason"] == "PodsSucceeded"

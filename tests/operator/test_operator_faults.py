"""Faults that doubled, multiplied or froze the figures (issue 11), each against the real API
server with the operator in-process and a fixture exporter the test drives."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.conftest import Kubectl
from tests.operator.conftest import (
    FixtureExporter,
    PageServer,
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
ISVC = "inferenceservices.mlfootprint.io"


def _tr(kubectl: Kubectl, ns: str, name: str, kind: str = "trainingrun") -> dict[str, Any]:
    return get_json(kubectl, kind, name, "-n", ns)


def _totals(kubectl: Kubectl, ns: str, name: str, kind: str = "trainingrun") -> dict[str, float]:
    return ((_tr(kubectl, ns, name, kind).get("status") or {}).get("ledger") or {}).get("totals") or {}


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _when(get: Any, pred: Any) -> Any:
    """For wait_for: the value of get() when pred(value) holds, else None."""
    value = get()
    return value if pred(value) else None


def _running(kubectl: Kubectl, ns: str, pod: str, app: str, **annotations: str) -> None:
    make_pod(kubectl, ns, pod, {"app": app}, annotations=annotations or None)
    set_pod_phase(kubectl, ns, pod, "Running")


def test_an_exporter_restored_from_an_older_checkpoint_is_not_counted_twice(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """Finding 1: operator 0.1 read 'lower' as 'reset' and re-added the whole history (+90%)."""
    ns = namespace
    apply(kubectl, ns, training_run("r", app="r"))
    _running(kubectl, ns, "r-0", "r")
    exporter.set(ns, "r-0", gpu_j=9000.0, start=1_700_000_000.0)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 9000.0, what="first reading")
    # kill -9 of an exporter that restored a checkpoint 500 J older (same counter start)
    exporter.set(ns, "r-0", gpu_j=8500.0)
    wait_for(lambda: _metric(op.metrics(), "mlfootprint_operator_counter_anomalies_total", anomaly="Rollback") >= 1,
             what="the rollback seen")
    assert _totals(kubectl, ns, "r")["gpuJ"] == 9000.0  # not 9000 + 8500
    # the exporter re-bills the rolled-back span from the hardware counter: climbing back
    # through values already counted adds nothing, growth above the high-water mark does
    exporter.set(ns, "r-0", gpu_j=8700.0)
    refreshed = _metric(op.metrics(), "mlfootprint_operator_refresh_duration_seconds_count", kind="TrainingRun")
    wait_for(lambda: _metric(op.metrics(), "mlfootprint_operator_refresh_duration_seconds_count", kind="TrainingRun") >= refreshed + 2,
             what="two refreshes after 8,700 J")
    assert _totals(kubectl, ns, "r")["gpuJ"] == 9000.0
    assert (_tr(kubectl, ns, "r")["status"]["ledger"]["series"]["r-0/"])["gpuJ"] == 9000.0  # the high-water mark
    exporter.set(ns, "r-0", gpu_j=9200.0)
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 9200.0, what="growth above the high-water mark")
    # a restart that really lost its state: a newer start, counters from zero, counted in full
    exporter.set(ns, "r-0", gpu_j=50.0, start=1_700_000_100.0)
    wait_for(lambda: _totals(kubectl, ns, "r").get("gpuJ") == 9250.0, what="new counters counted once")


def test_non_finite_factors_and_serving_values_never_freeze_a_run(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, pages: PageServer, start_operator: Any
) -> None:
    """Finding 2: carbonIntensity 1e308 (CO2e +Inf) or NaN from a serving endpoint entered the
    in-memory ledger, every later status write failed, and fixing the input did not help."""
    ns = namespace
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.0", "carbonIntensity": "100"}))
    apply(kubectl, ns, training_run("t", app="t"))
    _running(kubectl, ns, "t-0", "t")
    exporter.set(ns, "t-0", gpu_j=KWH)
    apply(kubectl, ns, {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "chat"},
        "spec": {"selector": {"matchLabels": {"app": "chat"}}, "model": {"name": "m"}, "servingMetrics": {"engine": "vllm"}},
    })
    _running(kubectl, ns, "chat-0", "chat", **{"mlfootprint.io/serving-metrics-url": f"{pages.base}/vllm"})
    exporter.set(ns, "chat-0", gpu_j=KWH)
    pages.set("/vllm", "vllm:request_success_total 10\nvllm:generation_tokens_total 100\n")
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _tr(kubectl, ns, "t")["status"]["carbon"]["operationalKg"] == 0.1, what="1 kWh x 100 g")
    wait_for(lambda: _tr(kubectl, ns, "chat", ISVC)["status"]["inference"]["requests"] == 10, what="10 requests")

    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.0", "carbonIntensity": "1e308"}))
    pages.set("/vllm", "vllm:request_success_total NaN\nvllm:generation_tokens_total +Inf\n")
    tr = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "t"), lambda t: condition(t, "FactorsValid")["status"] == "False"),
                  what="FactorsValid=False")
    assert condition(tr, "FactorsValid")["reason"] == "InvalidCarbonIntensity"
    assert "1e308" not in json.dumps(tr["status"]["conditions"])
    isvc = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "chat", ISVC), lambda t: condition(t, "ServingMetricsValid")["status"] == "False"),
                    what="ServingMetricsValid=False")
    assert condition(isvc, "Ready")["status"] == "False"
    # energy goes on being accounted with the last good factors, never +Inf
    exporter.set(ns, "t-0", gpu_j=2 * KWH)
    exporter.set(ns, "chat-0", gpu_j=2 * KWH)
    wait_for(lambda: _tr(kubectl, ns, "t")["status"]["carbon"]["operationalKg"] == 0.2, what="second kWh at 100 g")
    wait_for(lambda: _tr(kubectl, ns, "chat", ISVC)["status"]["energy"]["gpuKWh"] == 2.0, what="serving garbage does not stop energy")
    # fixed: the runs move on, nothing frozen, nothing doubled
    apply(kubectl, ns, configmap("mlfootprint-factors", {"pue": "1.0", "carbonIntensity": "300"}))
    pages.set("/vllm", "vllm:request_success_total 25\nvllm:generation_tokens_total 250\n")
    exporter.set(ns, "t-0", gpu_j=3 * KWH)
    wait_for(lambda: _tr(kubectl, ns, "t")["status"]["carbon"]["operationalKg"] == 0.5, what="0.2 + 1 kWh x 300 g")
    wait_for(lambda: _tr(kubectl, ns, "chat", ISVC)["status"]["inference"]["requests"] == 25, what="requests again")
    wait_for(lambda: condition(_tr(kubectl, ns, "t"), "Ready")["status"] == "True", what="Ready again")
    assert _metric(op.metrics(), "mlfootprint_operator_refresh_errors_total") == 0  # rejected at the boundary, not failed


def test_serving_counters_that_go_down_are_not_multiplied(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, pages: PageServer, start_operator: Any
) -> None:
    """Finding 3: two replicas behind one URL; every drop counted as a full reset (x1,400)."""
    ns = namespace
    apply(kubectl, ns, {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "chat"},
        "spec": {"selector": {"matchLabels": {"app": "chat"}}, "model": {"name": "m"}, "servingMetrics": {"engine": "vllm"}},
    })
    _running(kubectl, ns, "chat-0", "chat", **{"mlfootprint.io/serving-metrics-url": f"{pages.base}/vllm"})
    exporter.set(ns, "chat-0", gpu_j=KWH)
    start = "process_start_time_seconds 1700000000\n"
    pages.set("/vllm", start + "vllm:request_success_total 1000\nvllm:generation_tokens_total 10000\n")
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _tr(kubectl, ns, "chat", ISVC)["status"]["inference"]["requests"] == 1000, what="first read")
    for i in range(6):  # replica B (lower counters) and replica A answer in turn
        low = i % 2 == 0
        pages.set("/vllm", start + f"vllm:request_success_total {400 if low else 1000 + i}\nvllm:generation_tokens_total {4000 if low else 10000 + i}\n")
        if low:
            wait_for(lambda: _when(lambda: _tr(kubectl, ns, "chat", ISVC), lambda t: condition(t, "ServingMetricsValid")["reason"] == "ServingInconsistent"),
                     what="inconsistent counters reported")
        else:
            op.wait_refreshes(2, kind="InferenceService")
    isvc = _tr(kubectl, ns, "chat", ISVC)
    assert isvc["status"]["inference"]["requests"] <= 1005  # not 1,000 x number of swings
    assert _metric(op.metrics(), "mlfootprint_operator_counter_anomalies_total", anomaly="ServingInconsistent") >= 3
    # an engine restart (a new process start) is a reset, counted once
    pages.set("/vllm", "process_start_time_seconds 1700000500\nvllm:request_success_total 7\nvllm:generation_tokens_total 70\n")
    wait_for(lambda: _tr(kubectl, ns, "chat", ISVC)["status"]["inference"]["requests"] == isvc["status"]["inference"]["requests"] + 7,
             what="restart counted once")


def test_without_a_start_time_only_a_container_restart_resets_serving_counters(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, pages: PageServer, start_operator: Any
) -> None:
    """Found by the fault campaign (seed 143091): a TGI-like engine (no process start time) whose
    page showed 30 % of its count after a long gap between reads passed as a restart by size,
    and the climb back was counted again. The pod's containers had not restarted."""
    ns = namespace
    apply(kubectl, ns, {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "chat"},
        "spec": {"selector": {"matchLabels": {"app": "chat"}}, "model": {"name": "m"}, "servingMetrics": {"engine": "tgi"}},
    })
    _running(kubectl, ns, "chat-0", "chat", **{"mlfootprint.io/serving-metrics-url": f"{pages.base}/tgi"})

    def restarts(n: int) -> None:
        kubectl("patch", "pod", "chat-0", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
            "containerStatuses": [{"name": "main", "ready": True, "restartCount": n, "image": "train:latest", "imageID": "",
                                   "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}))

    def requests() -> float:
        return float((_tr(kubectl, ns, "chat", ISVC).get("status") or {}).get("inference", {}).get("requests") or 0.0)

    restarts(0)
    exporter.set(ns, "chat-0", gpu_j=KWH)
    pages.set("/tgi", "tgi_request_success 1000\n")
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: requests() == 1000, what="first read")
    ledger = _tr(kubectl, ns, "chat", ISVC)["status"]["ledger"]
    assert ledger["serving"]["chat-0"]["restarts"] == 0  # the pod's restart count reached the ledger
    # a lagging replica: 30 % of the count, the containers unchanged: not a reset
    pages.set("/tgi", "tgi_request_success 300\n")
    wait_for(lambda: _when(lambda: _tr(kubectl, ns, "chat", ISVC),
                           lambda t: condition(t, "ServingMetricsValid")["reason"] == "ServingInconsistent"),
             what="inconsistent counters reported")
    pages.set("/tgi", "tgi_request_success 1010\n")
    wait_for(lambda: requests() == 1010, what="growth above the high-water mark")
    # the engine restarted: its page starts again from zero, but until the kubelet reports the
    # container restart the drop is not a reset; then it is, counted once
    seen = _metric(op.metrics(), "mlfootprint_operator_counter_anomalies_total", anomaly="ServingInconsistent")
    pages.set("/tgi", "tgi_request_success 12\n")
    wait_for(lambda: _metric(op.metrics(), "mlfootprint_operator_counter_anomalies_total", anomaly="ServingInconsistent") > seen,
             what="the drop refused while the containers have not restarted")
    assert requests() == 1010
    restarts(1)
    wait_for(lambda: requests() == 1022, what="the restarted engine's requests")
    op.wait_refreshes(2, kind="InferenceService")
    assert requests() == 1022
    assert _metric(op.metrics(), "mlfootprint_operator_counter_anomalies_total", anomaly="ServingInconsistent") >= 1


def test_overlapping_runs_meter_each_pod_once(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """Finding 5: two runs selecting one pod both took all its energy (model totals doubled)."""
    ns = namespace
    apply(kubectl, ns, training_run("first", app="x", model="llm"))
    time.sleep(1.1)  # creationTimestamp has 1 s resolution: make 'first' older
    apply(kubectl, ns, training_run("second", app="x", model="llm"))
    _running(kubectl, ns, "x-0", "x")
    exporter.set(ns, "x-0", gpu_j=KWH)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _totals(kubectl, ns, "first").get("gpuJ") == KWH, what="owner metered")
    second = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "second"), lambda t: condition(t, "PodsExclusive")), what="second refreshed")
    c = condition(second, "PodsExclusive")
    assert c["status"] == "False" and c["reason"] == "OwnedByOtherRun" and "TrainingRun first" in c["message"]
    assert _totals(kubectl, ns, "second").get("gpuJ", 0.0) == 0.0
    wait_for(lambda: any(e["reason"] == "PodsOwnedByOtherRun" and e["involvedObject"]["name"] == "second" for e in events(kubectl, ns)),
             what="Event on the second run")
    # once, x default PUE (the gauge is set as the refresh ends, after the status is written)
    wait_for(lambda: _metric(op.metrics(), "mlfootprint_model_energy_joules", model="llm") == pytest.approx(KWH * 1.2),
             timeout_s=10, what="the model's energy gauge")


def test_spec_problems_get_a_condition_and_an_event(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """Finding 5: a missing workloadRef waited forever without a hint."""
    ns = namespace
    apply(kubectl, ns, {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "w"},
        "spec": {"workloadRef": {"apiVersion": "batch/v1", "kind": "Job", "name": "not-yet"}, "model": {"name": "m"}},
    })
    start_operator(ns, exporter_urls=(exporter.url,))
    tr = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "w"), lambda t: condition(t, "PodsFound")), what="refreshed")
    c = condition(tr, "PodsFound")
    assert (c["status"], c["reason"]) == ("False", "WorkloadNotFound") and "Job not-yet" in c["message"]
    assert condition(tr, "Ready")["status"] == "False"
    wait_for(lambda: any(e["reason"] == "WorkloadNotFound" for e in events(kubectl, ns)), what="WorkloadNotFound Event")
    # kubectl wait works on the summary condition
    proc = kubectl("wait", "--for=condition=Ready=False", "trainingrun/w", "-n", ns, "--timeout=10s", check=False)
    assert proc.returncode == 0, proc.stderr


def test_factors_refs_stay_in_the_run_namespace_and_never_echo_values(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """Finding 6: spec.factorsRef could read another tenant's ConfigMap, and parse errors
    echoed its keys and values into the run's condition and Event."""
    ns = namespace
    other = f"{ns}-other"
    kubectl("create", "namespace", other)
    try:
        apply(kubectl, other, configmap("secretish", {"pue": "1.1", "carbonIntensity": "50"}))
        apply(kubectl, ns, training_run("steal", app="s", factorsRef={"name": "secretish", "namespace": other}))
        apply(kubectl, ns, configmap("mine", {"pue": "hunter2-pa55word", "token-hunter2": "x"}))
        apply(kubectl, ns, training_run("own", app="o", factorsRef={"name": "mine"}))
        start_operator(ns, exporter_urls=(exporter.url,))
        st = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "steal"), lambda t: condition(t, "FactorsValid")), what="steal refreshed")
        c = condition(st, "FactorsValid")
        assert (c["status"], c["reason"]) == ("False", "FactorsRefForbidden")
        assert st["status"]["factors"]["pue"] == 1.2  # the other tenant's 1.1 was not read
        own = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "own"), lambda t: condition(t, "FactorsValid")), what="own refreshed")
        assert condition(own, "FactorsValid")["status"] == "False"
        visible = json.dumps(own["status"]) + json.dumps(list(events(kubectl, ns)))
        assert "hunter2" not in visible and "pa55word" not in visible
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_an_html_error_page_is_not_a_ready_energy_source(
    kubectl: Kubectl, namespace: str, pages: PageServer, start_operator: Any
) -> None:
    """Finding 8: EnergySourceReady=True "Scraped" when the metrics URL returned an HTML page."""
    ns = namespace
    pages.set("/bad", "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n")
    apply(kubectl, ns, training_run("h", app="h"))
    _running(kubectl, ns, "h-0", "h")
    start_operator(ns, exporter_urls=(f"{pages.base}/bad",))
    tr = wait_for(lambda: _when(lambda: _tr(kubectl, ns, "h"), lambda t: condition(t, "EnergySourceReady")), what="refreshed")
    c = condition(tr, "EnergySourceReady")
    assert (c["status"], c["reason"]) == ("False", "InvalidMetricsPage") and "not an mlfootprint exporter page" in c["message"]
    assert condition(tr, "Ready")["status"] == "False"


def test_the_status_is_written_only_when_something_visible_changes(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """Issue 12: every refresh used to rewrite the whole status and a lastUpdated heartbeat."""
    ns = namespace
    apply(kubectl, ns, training_run("q", app="q"))
    _running(kubectl, ns, "q-0", "q")
    exporter.set(ns, "q-0", gpu_j=KWH)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _totals(kubectl, ns, "q").get("gpuJ") == KWH, what="first reading")

    def counts() -> tuple[float, float]:
        m = op.metrics()
        return (_metric(m, "mlfootprint_operator_refresh_duration_seconds_count", kind="TrainingRun"),
                _metric(m, "mlfootprint_operator_status_writes_total", kind="TrainingRun"))

    # the refresh that wrote the first reading counts its write when it ends, just after the
    # API server has it: let it (and the next, which counts its refresh before) end first
    op.wait_refreshes(2)
    refreshes0, writes0 = counts()
    rv0 = _tr(kubectl, ns, "q")["metadata"]["resourceVersion"]
    wait_for(lambda: counts()[0] >= refreshes0 + 5, what="five more refreshes")  # 0.5 s interval
    _refreshes1, writes1 = counts()
    assert writes1 == writes0 and _tr(kubectl, ns, "q")["metadata"]["resourceVersion"] == rv0
    assert "lastUpdated" not in _tr(kubectl, ns, "q")["status"]
    exporter.set(ns, "q-0", gpu_j=2 * KWH)  # a printed figure changes: written
    wait_for(lambda: _totals(kubectl, ns, "q").get("gpuJ") == 2 * KWH, what="second reading")
    # the refresh counts its write when it ends, just after the API server has it
    wait_for(lambda: counts()[1] > writes1, timeout_s=10, what="the write counted")
    assert re.match(r"\d{4}-\d\d-\d\dT", _tr(kubectl, ns, "q")["status"]["ledger"]["observedAt"])


def test_a_run_whose_running_pods_are_metered_elsewhere_is_not_completed(
    kubectl: Kubectl, namespace: str, exporter: FixtureExporter, start_operator: Any
) -> None:
    """Found by the fault suite (overlap-same-second, then factors-cross-namespace): a run that
    had counted energy and then metered none of its pods (its own ended, the others are
    metered by an older run) was marked Completed (PodsGone) although pods it selects still
    run: its figures froze and its conditions never changed again (a factorsRef it was then
    given was never reported)."""
    ns = namespace
    apply(kubectl, ns, training_run("first", app="x"))
    time.sleep(1.1)  # creationTimestamp has 1 s resolution: make 'first' older
    apply(kubectl, ns, {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "second"},
        "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x", "y"]}]},
                 "model": {"name": "m"}},
    })
    _running(kubectl, ns, "x-0", "x")
    _running(kubectl, ns, "y-0", "y")
    exporter.set(ns, "x-0", gpu_j=KWH, start=1_700_000_000.0)
    exporter.set(ns, "y-0", gpu_j=KWH / 2, start=1_700_000_000.0)
    op = start_operator(ns, exporter_urls=(exporter.url,))
    wait_for(lambda: _totals(kubectl, ns, "second").get("gpuJ") == KWH / 2, what="second meters y-0 only")
    kubectl("delete", "pod", "y-0", "-n", ns, "--wait=false")
    exporter.pods.pop((ns, "y-0"))
    exporter.publish()
    wait_for(lambda: not (_tr(kubectl, ns, "second")["status"]["ledger"].get("series")), what="y-0 folded")
    refreshed = _metric(op.metrics(), "mlfootprint_operator_refresh_duration_seconds_count", kind="TrainingRun")
    wait_for(lambda: _metric(op.metrics(), "mlfootprint_operator_refresh_duration_seconds_count", kind="TrainingRun") >= refreshed + 4,
             what="refreshes after y-0 ended")
    second = _tr(kubectl, ns, "second")
    assert condition(second, "Completed")["status"] == "False"  # x-0, which it selects, still runs
    assert not second["status"].get("completionTime")
    assert condition(second, "PodsExclusive")["reason"] == "OwnedByOtherRun"
    # and it is still refreshed: a new input is reported
    kubectl("patch", "trainingrun", "second", "-n", ns, "--type=merge", "-p",
            json.dumps({"spec": {"factorsRef": {"name": "f", "namespace": f"{ns}-other"}}}))
    wait_for(lambda: condition(_tr(kubectl, ns, "second"), "FactorsValid")["reason"] == "FactorsRefForbidden",
             what="the forbidden factorsRef reported")
    assert _totals(kubectl, ns, "first")["gpuJ"] == KWH and _totals(kubectl, ns, "second")["gpuJ"] == KWH / 2

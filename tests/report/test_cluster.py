"""`mlfootprint report` against a real kube-apiserver: CRDs applied, objects created, statuses
written through the status subresource (as the operator does), then read back by the report
(paginated lists, namespaces, server-side label selectors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlfootprint.cli import main
from mlfootprint.devcluster import DevCluster
from mlfootprint.report.progress import NullTasks
from mlfootprint.report.sources import ClusterSource
from tests.conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


def _status(phase: str, start: str, end: str | None, gpu_h: float, it: float, **extra: object) -> dict:
    fac = it * 1.2
    op = fac * 0.4
    status = {
        "phase": phase, "startTime": start, "gpuHours": gpu_h,
        "energy": {"gpuKWh": it * 0.75, "hostKWh": it * 0.25, "itKWh": it, "facilityKWh": fac},
        "carbon": {"operationalKg": op, "embodiedKg": 1.0, "totalKg": op + 1.0, "totalTonnes": (op + 1.0) / 1000},
        "water": {"onsiteL": it * 0.2, "offsiteL": fac * 1.5, "embodiedL": 0.5, "totalL": it * 0.2 + fac * 1.5 + 0.5},
        **extra,
    }
    if end:
        status["completionTime"] = end
    return status


OBJECTS = [
    ("TrainingRun", "sweep-1", {"team": "nlp"}, {"model": {"name": "llama-8b"}, "experiment": "lr-sweep",
                                                  "selector": {"matchLabels": {"job-name": "sweep-1"}}},
     _status("development", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", 16, 100)),
    ("TrainingRun", "final", {"team": "nlp"}, {"model": {"name": "llama-8b"}, "final": True,
                                                "selector": {"matchLabels": {"job-name": "final"}}},
     _status("training", "2026-11-10T00:00:00Z", "2026-11-12T00:00:00Z", 96, 500)),
    ("InferenceService", "chat", {"team": "platform"},
     {"model": {"name": "llama-8b"}, "selector": {"matchLabels": {"app": "chat"}}, "servingMetrics": {"engine": "vllm"}},
     _status("inference", "2026-11-15T00:00:00Z", None, 48, 50, lastUpdated="2026-11-25T00:00:00Z",
             inference={"requests": 10000, "inputTokens": 1000000, "outputTokens": 2000000})),
]


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: DevCluster) -> None:
    cluster.apply_crds(ROOT / "crds")


@pytest.fixture
def runs(kubectl: Kubectl, namespace: str) -> str:
    for kind, name, labels, spec, status in OBJECTS:
        obj = {"apiVersion": "mlfootprint.io/v1alpha1", "kind": kind,
               "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))
        plural = "trainingruns" if kind == "TrainingRun" else "inferenceservices"
        kubectl("patch", f"{plural}.mlfootprint.io", name, "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}))
    return namespace


def test_report_reads_statuses(runs: str, cluster, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    args = ["report", "--kubeconfig", str(cluster.kubeconfig), "-n", runs, "--month", "2026-11",
            "--now", "2026-12-01T00:00:00Z", "--group-by", "label:team", "-f", "json", "-q"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    groups = {g["key"]["label:team"]: g for g in doc["groups"]}
    assert groups["nlp"]["runs"] == 2
    assert groups["nlp"]["facility_kwh"] == pytest.approx(720.0)  # (100 + 500) * 1.2
    assert groups["nlp"]["gpu_hours"] == pytest.approx(112.0)
    assert groups["platform"]["facility_kwh"] == pytest.approx(60.0)
    assert doc["total"]["total_kg"] == pytest.approx(780 * 0.4 + 3)
    (lc,) = doc["lifecycle"]
    assert lc["model"] == "llama-8b"
    assert lc["developmentShareOfTraining"]["energy"] == pytest.approx(0.2)
    assert lc["requests"] == 10000
    # breakeven on CO2e: development (48 + 1) + training (240 + 1) = 290 kg over (24 + 1) kg / 10,000 requests
    assert lc["breakeven"]["carbon"]["breakevenInferences"] == pytest.approx(290 / 25 * 10000)
    assert doc["source"]["kind"] == "cluster"


def test_selector_period_and_pagination(runs: str, cluster) -> None:  # type: ignore[no-untyped-def]
    source = ClusterSource(str(cluster.kubeconfig), None, (runs,), "team=nlp", page_size=1)
    table = source.load(NullTasks())
    assert sorted(table.name.tolist()) == ["final", "sweep-1"]
    assert sorted(table.phase.tolist()) == ["development", "training"]


def test_markdown_and_table_from_cluster(runs: str, cluster, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["report", "--kubeconfig", str(cluster.kubeconfig), "-n", runs, "--since", "2026-11-10",
                 "--until", "2026-11-30", "--group-by", "phase", "-f", "markdown", "-q", "--now", "2026-12-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "| training | 1 |" in out and "| inference | 1 |" in out and "development" not in out.split("## Water")[0].split("|---")[1]


def test_bad_context_exits_1(cluster, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["report", "--kubeconfig", str(cluster.kubeconfig), "--context", "no-such-context", "-q"]) == 1
    assert "cannot load the Kubernetes configuration" in capsys.readouterr().err

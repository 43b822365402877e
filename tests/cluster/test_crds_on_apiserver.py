"""The generated CRDs on a real kube-apiserver: Established, samples accepted, invalid objects
rejected with a message naming the field, status written through the status subresource and
shown by the real `kubectl get` printer columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlfootprint.devcluster import DevCluster
from tests.conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: DevCluster) -> None:
    cluster.apply_crds(ROOT / "crds")


def test_crds_are_established_with_names_and_categories(kubectl: Kubectl) -> None:
    out = kubectl("get", "crd", "trainingruns.mlfootprint.io", "-o", "json").stdout
    crd = json.loads(out)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["tr", "trun"]
    resources = kubectl("api-resources", "--api-group=mlfootprint.io", "-o", "name").stdout.split()
    assert sorted(resources) == ["inferenceservices.mlfootprint.io", "trainingruns.mlfootprint.io"]


def test_samples_apply(kubectl: Kubectl, namespace: str) -> None:
    for sample in sorted((ROOT / "samples").glob("*.yaml")):
        kubectl("apply", "-n", namespace, "-f", str(sample))
    names = kubectl("get", "mlfootprint", "-n", namespace, "-o", "name").stdout.split()
    assert len(names) == len(list((ROOT / "samples").glob("*.yaml")))


def _apply(kubectl: Kubectl, namespace: str, obj: dict) -> tuple[int, str]:
    proc = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=False)
    return proc.returncode, proc.stderr


def _run(**spec: object) -> dict:
    return {
        "apiVersion": "mlfootprint.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": "bad"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"model": {"name": "m"}}, "spec.selector", "spec.selector or spec.workloadRef is required"),
        ({"selector": {}, "model": {"name": "m"}, "phase": "pretraining"}, "spec.phase", "Unsupported value"),
        ({"selector": {"matchLabels": {"a": "b"}}, "model": {"name": "m"}, "budget": {"co2eKg": -5}}, "spec.budget.co2eKg", "greater than 0"),
        ({"selector": {"matchLabels": {"a": "b"}}, "model": {"name": "m"}, "budget": {"co2eKg": 0}}, "spec.budget.co2eKg", "greater than 0"),
        ({"selector": {}, "model": {"name": "m"}}, "spec.selector", "needs matchLabels or matchExpressions"),
        ({"selector": {}}, "spec.model", "Required value"),
        ({"selector": {}, "model": {"name": ""}}, "spec.model.name", "at least 1 chars long"),
        (
            {"workloadRef": {"apiVersion": "batch/v1", "kind": "job", "name": "x"}, "model": {"name": "m"}},
            "spec.workloadRef.kind",
            "should match",
        ),
        ({"selector": {}, "model": {"name": "m"}, "phase": "development", "final": True}, "spec.phase", "final"),
    ],
    ids=["no-selector", "bad-phase", "negative-budget", "zero-budget", "empty-selector", "no-model", "empty-model-name", "bad-kind", "final-dev"],
)
def test_invalid_training_runs_are_rejected_naming_the_field(
    kubectl: Kubectl, namespace: str, spec: dict, field: str, reason: str
) -> None:
    rc, err = _apply(kubectl, namespace, _run(**spec))
    assert rc != 0
    assert field in err, err
    assert reason in err, err


def test_custom_engine_needs_metric_names(kubectl: Kubectl, namespace: str) -> None:
    obj = yaml.safe_load((ROOT / "samples" / "inferenceservice-custom.yaml").read_text())
    del obj["spec"]["servingMetrics"]["requestsMetric"]
    rc, err = _apply(kubectl, namespace, obj)
    assert rc != 0
    assert "spec.servingMetrics" in err and "requestsMetric" in err, err


def test_status_subresource_and_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(ROOT / "samples" / "trainingrun-final.yaml"))
    # Status sent with the main resource is ignored (status subresource semantics)...
    kubectl(
        "patch", "-n", namespace, "trainingrun", "llama-8b-final", "--type=merge",
        "-p", json.dumps({"status": {"phase": "training"}}),
    )
    got = json.loads(kubectl("get", "-n", namespace, "tr", "llama-8b-final", "-o", "json").stdout)
    assert "status" not in got
    # ...and accepted through it, validated against the schema.
    status = {
        "phase": "training",
        "gpus": 16,
        "gpuHours": 4200.5,
        "energy": {"gpuKWh": 2800.0, "hostKWh": 420.0, "itKWh": 3220.0, "facilityKWh": 3864.0},
        "carbon": {"operationalKg": 1282.8, "embodiedKg": 55.6, "totalKg": 1338.4, "totalTonnes": 1.3384},
        "water": {"onsiteL": 644.0, "offsiteL": 4984.6, "embodiedL": 12.3, "totalL": 5640.9},
        "power": {"avgW": 612.5, "peakW": 699.0, "minW": 98.0, "swings": 37},
        "budget": {"co2ePercent": 53.5, "exceeded": False, "summary": "54% CO2e"},
    }
    kubectl(
        "patch", "-n", namespace, "trainingrun", "llama-8b-final", "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )
    table = kubectl("get", "-n", namespace, "trainingruns").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "MODEL", "GPUS", "ENERGY", "(KWH)", "TCO2E", "WATER", "(L)", "AGE"]
    row = table[1].split()
    assert row[:7] == ["llama-8b-final", "training", "llama-8b", "16", "3864", "1.3384", "5640.9"]
    wide = kubectl("get", "-n", namespace, "trainingruns", "-o", "wide").stdout.splitlines()
    assert "EMBODIED (KGCO2E)" in wide[0] and "AVG POWER (W)" in wide[0] and "BUDGET" in wide[0]
    assert wide[1].split()[-4:] == ["55.6", "612.5", "54%", "CO2e"]
    # Schema validation applies to the status subresource too.
    bad = kubectl(
        "patch", "-n", namespace, "trainingrun", "llama-8b-final", "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"energy": {"gpuKWh": -1}}}), check=False,
    )
    assert bad.returncode != 0 and "status.energy.gpuKWh" in bad.stderr


def test_inference_service_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(ROOT / "samples" / "inferenceservice-vllm.yaml"))
    status = {
        "phase": "inference",
        "inference": {
            "requests": 125000,
            "outputTokens": 31250000,
            "joulesPerToken": 0.42,
            "co2eGPer1kRequests": 3.9,
            "breakeven": {"inferences": 3.4e8, "progress": 0.000368, "progressPercent": 0.0368},
        },
    }
    kubectl(
        "patch", "-n", namespace, "inferenceservices.mlfootprint.io", "llama-8b-chat",
        "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
    )
    table = kubectl("get", "-n", namespace, "inferenceservices.mlfootprint.io").stdout.splitlines()
    header = table[0]
    for column in ("PHASE", "MODEL", "REQUESTS", "J/TOKEN", "GCO2E/1K REQ", "BREAKEVEN (%)", "AGE"):
        assert column in header, header
    assert table[1].split()[:7] == ["llama-8b-chat", "inference", "llama-8b", "125000", "0.42", "3.9", "0.0368"]
    short = kubectl("get", "-n", namespace, "mlis", "-o", "name").stdout.strip()
    assert short == "inferenceservice.mlfootprint.io/llama-8b-chat"

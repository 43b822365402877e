"""The CRDs in crds/ are generated from the pydantic models and structurally valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mlfootprint.cli import main
from mlfootprint.crd.generate import all_crds, render, to_structural
from mlfootprint.crd.models import InferenceService, TrainingRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_checked_in_crds_match_the_models(name: str) -> None:
    checked_in = (ROOT / "crds" / name).read_text()
    assert checked_in == render(all_crds()[name]), f"crds/{name} is stale: run `make crds`"


def _walk(node: dict[str, Any], path: str = "") -> list[str]:
    """Return the paths of nodes that break the structural-schema rules."""
    bad = []
    if "type" not in node:
        bad.append(path or "/")
    for key in ("$ref", "anyOf", "oneOf", "allOf", "title", "default", "const"):
        if key in node:
            bad.append(f"{path}:{key}")
    for name, sub in node.get("properties", {}).items():
        bad += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        bad += _walk(node["additionalProperties"], f"{path}{{*}}")
    if "items" in node:
        bad += _walk(node["items"], f"{path}[]")
    return bad


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_schemas_are_structural(name: str) -> None:
    schema = all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []


def test_exclusive_minimum_becomes_openapi_v3_boolean() -> None:
    node = to_structural({"type": "number", "exclusiveMinimum": 0}, {})
    assert node == {"type": "number", "minimum": 0, "exclusiveMinimum": True}


def test_unions_of_several_types_are_refused() -> None:
    with pytest.raises(ValueError, match="union"):
        to_structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})


def test_printer_columns_and_names() -> None:
    tr = all_crds()["mlfootprint.io_trainingruns.yaml"]["spec"]
    cols = {c["name"]: c for c in tr["versions"][0]["additionalPrinterColumns"]}
    assert [n for n, c in cols.items() if not c.get("priority")] == [
        "Phase", "Model", "GPUs", "Energy (kWh)", "tCO2e", "Water (L)", "Age",
    ]
    assert [n for n, c in cols.items() if c.get("priority") == 1] == [
        "Embodied (kgCO2e)", "Host emb. (kgCO2e)", "Avg power (W)", "Cap advice (W)", "Budget",
    ]
    assert cols["tCO2e"]["jsonPath"] == ".status.carbon.totalTonnes"
    isvc = all_crds()["mlfootprint.io_inferenceservices.yaml"]["spec"]
    assert "isvc" not in isvc["names"]["shortNames"]
    assert isvc["names"]["categories"] == ["mlfootprint"]
    names = [c["name"] for c in isvc["versions"][0]["additionalPrinterColumns"] if not c.get("priority")]
    assert names == ["Phase", "Model", "Requests", "J/token", "gCO2e/1k req", "Breakeven (%)", "Age"]
    for crd in (tr, isvc):
        assert crd["versions"][0]["subresources"] == {"status": {}}


@pytest.mark.parametrize("path", sorted((ROOT / "samples").glob("*.yaml")), ids=lambda p: p.name)
def test_samples_validate_against_the_models(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    model = {"TrainingRun": TrainingRun, "InferenceService": InferenceService}[obj["kind"]]
    parsed = model.model_validate(obj)
    assert parsed.to_api()["spec"] == obj["spec"]


def test_invalid_spec_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        TrainingRun.model_validate(
            {"spec": {"model": {"name": "m"}, "selector": {}, "budget": {"co2eKg": -1}}}
        )
    [error] = err.value.errors()
    assert error["loc"] == ("spec", "budget", "co2eKg")
    assert "greater than 0" in error["msg"]


def test_crds_command_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert sorted(d["spec"]["names"]["kind"] for d in docs) == ["InferenceService", "TrainingRun"]


def test_crd_reference_doc_is_current() -> None:
    from mlfootprint.crd.reference import render_reference

    assert (ROOT / "docs" / "crds.md").read_text() == render_reference(), "docs/crds.md is stale: run `make crds`"


def test_no_schema_key_is_a_yaml_1_1_boolean() -> None:
    """The API server decodes CRD YAML with a YAML 1.1 parser: a property or required entry
    named y/n/yes/no/on/off would become a boolean (a field `n` broke the CRD once)."""
    from mlfootprint.crd.generate import all_crds

    booleans = {"y", "n", "yes", "no", "on", "off", "true", "false"}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    assert not booleans & {k.lower() for k in value}, value.keys()
                if key == "required":
                    assert not booleans & {k.lower() for k in value}, value
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for crd in all_crds().values():
        walk(crd)


def test_the_charts_factors_schema_is_generated_from_the_operators_model() -> None:
    """values.schema.json's factors subtree accepts what the operator accepts (make crds)."""
    import json
    from pathlib import Path

    from mlfootprint.crd.chartschema import SCHEMA, updated

    path = Path(__file__).resolve().parents[2] / SCHEMA
    current = json.loads(path.read_text())
    assert current == updated(current), "charts/mlfootprint/values.schema.json is stale: run `make crds`"
    factors = current["properties"]["factors"]["properties"]
    regions = factors["region"]["anyOf"][1]["enum"]
    assert "DEU" in regions and "DE" in regions and "XX" not in regions  # the codes the operator knows
    assert factors["pue"]["anyOf"][0]["maximum"] == 5.0

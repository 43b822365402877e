"""Generate the CustomResourceDefinitions in `crds/` from the pydantic models.

Pydantic emits JSON Schema (2020-12 flavour, `$ref`s, `anyOf` for optionals); the API server
wants a *structural* OpenAPI v3.0 schema: every node typed, no `$ref`, no `anyOf` of types,
`exclusiveMinimum` as a boolean. `to_structural` does that translation; the CRD envelope adds
names, printer columns, the status subresource and CEL rules that span fields.

Run `python -m mlfootprint.crd.generate --out crds` (or `make crds`); a test regenerates and
fails on any difference with the checked-in files.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from mlfootprint import __version__
from mlfootprint.crd.models import (
    GROUP,
    VERSION,
    InferenceServiceSpec,
    InferenceServiceStatus,
    TrainingRunSpec,
    TrainingRunStatus,
)

_KEEP = {
    "type",
    "description",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "nullable",
}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    # Field-level description wins over the referenced model's docstring.
    if "description" in node:
        target["description"] = node["description"]
    return target


def to_structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Translate one pydantic JSON-schema node into a structural OpenAPI v3.0 schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types structurally: {node}")
        merged = {**_resolve(options[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
        return to_structural(merged, defs)
    if "const" in node:
        node = {**node, "enum": [node["const"]], "type": node.get("type", "string")}
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
    if "exclusiveMinimum" in node:
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        out["maximum"] = node["exclusiveMaximum"]
        out["exclusiveMaximum"] = True
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties")
        if props:
            out["properties"] = {name: to_structural(sub, defs) for name, sub in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = to_structural(extra, defs)
    elif kind == "array":
        out["items"] = to_structural(node["items"], defs)
    if "type" not in out:
        raise ValueError(f"schema node without a type: {node}")
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return to_structural(raw, defs)


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    spec_model: type[BaseModel],
    status_model: type[BaseModel],
    columns: list[dict[str, Any]],
    spec_rules: list[dict[str, str]],
    description: str,
) -> dict[str, Any]:
    spec_schema = model_schema(spec_model)
    if spec_rules:
        spec_schema["x-kubernetes-validations"] = spec_rules
    status_schema = model_schema(status_model)
    status_schema["description"] = "Footprint figures written by the mlfootprint operator."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            # the release that shipped this schema: `kubectl get crd -L app.kubernetes.io/version`
            # shows whether the CRDs were applied with the chart (docs/install.md#upgrading)
            "labels": {"app.kubernetes.io/part-of": "mlfootprint", "app.kubernetes.io/version": __version__},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["mlfootprint"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def _col(name: str, kind: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path, "description": description}
    if priority:
        col["priority"] = priority
    return col


_AGE = _col("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

#: An empty selector would silently select nothing (Kubernetes' own meaning, everything, would
#: bill every pod of the namespace): refuse it.
_SELECTOR_NOT_EMPTY = {
    "rule": "!has(self.selector) || (has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || "
    "(has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",
    "message": "spec.selector needs matchLabels or matchExpressions (an empty selector selects no pods)",
    "fieldPath": ".selector",
}


def training_run_crd() -> dict[str, Any]:
    return _crd(
        kind="TrainingRun",
        plural="trainingruns",
        singular="trainingrun",
        short_names=["tr", "trun"],
        spec_model=TrainingRunSpec,
        status_model=TrainingRunStatus,
        description=(
            "A training or development run whose energy, carbon, water and embodied footprint "
            "mlfootprint meters."
        ),
        spec_rules=[
            {
                "rule": "has(self.selector) || has(self.workloadRef)",
                "message": "spec.selector or spec.workloadRef is required to find the run's pods",
                "fieldPath": ".selector",
            },
            _SELECTOR_NOT_EMPTY,
            {
                "rule": "!has(self.phase) || !has(self.final) || !self.final || self.phase == 'training'",
                "message": "spec.final: true requires spec.phase training (or no phase)",
                "fieldPath": ".phase",
            },
        ],
        columns=[
            _col("Phase", "string", ".status.phase", "Lifecycle phase."),
            _col("Model", "string", ".spec.model.name", "Model the run belongs to."),
            _col("GPUs", "integer", ".status.gpus", "GPUs allocated."),
            _col("Energy (kWh)", "number", ".status.energy.facilityKWh", "Facility energy (IT x PUE), kWh."),
            _col("tCO2e", "number", ".status.carbon.totalTonnes", "Operational + embodied, tonnes CO2e."),
            _col("Water (L)", "number", ".status.water.totalL", "On-site + off-site + embodied water, L."),
            _AGE,
            _col("Embodied (kgCO2e)", "number", ".status.carbon.embodiedKg", "Embodied CO2e share, kg.", 1),
            _col("Host emb. (kgCO2e)", "number", ".status.carbon.embodiedHostKg", "Embodied CO2e share of the hosts, kg.", 1),
            _col("Avg power (W)", "number", ".status.power.avgW", "Average GPU power, W.", 1),
            _col("Cap advice (W)", "number", ".status.powerCap.recommendedCapW", "Recommended GPU power cap, W (advice).", 1),
            _col("Budget", "string", ".status.budget.summary", "Share of the budget used.", 1),
        ],
    )


def inference_service_crd() -> dict[str, Any]:
    return _crd(
        kind="InferenceService",
        plural="inferenceservices",
        singular="inferenceservice",
        # Not "isvc": KServe owns that short name for its own InferenceService kind.
        short_names=["mlis", "mlisvc"],
        spec_model=InferenceServiceSpec,
        status_model=InferenceServiceStatus,
        description=(
            "A model-serving workload whose per-request and per-token footprint and breakeven "
            "mlfootprint meters."
        ),
        spec_rules=[
            _SELECTOR_NOT_EMPTY,
            {
                "rule": "self.servingMetrics.engine != 'custom' || "
                "(has(self.servingMetrics.requestsMetric) && has(self.servingMetrics.outputTokensMetric))",
                "message": "servingMetrics.engine custom needs requestsMetric and outputTokensMetric",
                "fieldPath": ".servingMetrics",
            }
        ],
        columns=[
            _col("Phase", "string", ".status.phase", "Lifecycle phase (inference)."),
            _col("Model", "string", ".spec.model.name", "Model served."),
            _col("Requests", "integer", ".status.inference.requests", "Requests served."),
            _col("J/token", "number", ".status.inference.joulesPerToken", "Facility joules per output token."),
            _col(
                "gCO2e/1k req", "number", ".status.inference.co2eGPer1kRequests", "gCO2e per 1,000 requests."
            ),
            _col(
                "Breakeven (%)",
                "number",
                ".status.inference.breakeven.progressPercent",
                "Inference CO2e so far as a share of the model's training footprint.",
            ),
            _AGE,
            _col("GPUs", "integer", ".status.gpus", "GPUs allocated.", 1),
            _col("tCO2e", "number", ".status.carbon.totalTonnes", "Operational + embodied, tonnes CO2e.", 1),
            _col("kWh/1k req", "number", ".status.inference.kWhPer1kRequests", "Facility kWh per 1,000 requests.", 1),
            _col("GPU J/token", "number", ".status.inference.gpuJoulesPerToken", "GPU joules per output token.", 1),
        ],
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD object."""
    return {
        f"{GROUP}_trainingruns.yaml": training_run_crd(),
        f"{GROUP}_inferenceservices.yaml": inference_service_crd(),
    }


HEADER = (
    "# Generated by `make crds` (python -m mlfootprint.crd.generate) from src/mlfootprint/crd/models.py.\n"
    "# Do not edit by hand: a test fails on any difference.\n"
)


def render(crd: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)


def write(out_dirs: list[Path]) -> list[Path]:
    written: list[Path] = []
    for out in out_dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, crd in all_crds().items():
            path = out / name
            path.write_text(render(crd))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        action="append",
        type=Path,
        help="output directory (repeatable); default: crds/ and charts/mlfootprint/crds/ when present",
    )
    args = parser.parse_args(argv)
    outs = args.out or [Path("crds")]
    chart_crds = Path("charts/mlfootprint/crds")
    if chart_crds.parent.exists() and chart_crds not in outs:
        outs.append(chart_crds)
    for path in write(outs):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

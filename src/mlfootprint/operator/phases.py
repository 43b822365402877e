"""Lifecycle phase of a run (METHODOLOGY §1), from its spec, labels and outcome (pure).

Order (first match wins):
1. an explicit ``spec.phase``;
2. ``spec.final: true`` (or the final label/annotation) -> training;
3. a failed or cancelled workload -> development;
4. ``spec.experiment`` or a sweep / tuning label or annotation (Katib, W&B, ...) -> development;
5. otherwise the rules' default (development: everything before the final run is).
InferenceServices are always in the inference phase.

The rules come from the phase-rules ConfigMap (``rules.yaml``); see docs/operator.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

__all__ = ["PhaseDecision", "PhaseRules", "derive_phase", "parse_phase_rules"]

RunPhase = Literal["development", "training"]

#: Labels that mark a run as one trial of a sweep or hyperparameter search.
DEFAULT_DEVELOPMENT_LABELS = (
    "katib.kubeflow.org/experiment",
    "katib.kubeflow.org/trial",
    "mlfootprint.io/experiment",
    "mlfootprint.io/sweep",
    "wandb.ai/sweep-id",
    "ray.io/tune-trial",
)


class PhaseRules(BaseModel):
    """Configurable phase rules (ConfigMap ``rules.yaml``; camelCase or snake_case keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    development_labels: tuple[str, ...] = Field(default=DEFAULT_DEVELOPMENT_LABELS)
    development_annotations: tuple[str, ...] = ()
    final_label: str = "mlfootprint.io/final"
    failed_is_development: bool = True
    default: RunPhase = "development"


class PhaseDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    phase: Literal["development", "training", "inference"]
    reason: str  # CamelCase, for the PhaseDerived condition
    message: str


def parse_phase_rules(text: str | None) -> PhaseRules:
    """Parse ``rules.yaml``; ValueError naming the field on bad input."""
    if not text:
        return PhaseRules()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"rules.yaml: not valid YAML: {e}") from None
    try:
        return PhaseRules.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        raise ValueError(f"rules.yaml: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def derive_phase(
    kind: str,
    spec: Mapping[str, Any],
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    *,
    failed: bool = False,
    rules: PhaseRules | None = None,
) -> PhaseDecision:
    """Decide the phase; the reason says which rule decided."""
    if kind == "InferenceService":
        return PhaseDecision(phase="inference", reason="InferenceService", message="serving is the inference phase")
    rules = rules or PhaseRules()
    labels = labels or {}
    annotations = annotations or {}
    explicit = spec.get("phase")
    if explicit in ("development", "training"):
        return PhaseDecision(phase=explicit, reason="Explicit", message=f"spec.phase is {explicit}")
    if spec.get("final") is True or _truthy(labels.get(rules.final_label)) or _truthy(
        annotations.get(rules.final_label)
    ):
        return PhaseDecision(phase="training", reason="FinalRun", message="the run is marked final")
    if failed and rules.failed_is_development:
        return PhaseDecision(
            phase="development", reason="FailedRun", message="failed or cancelled runs count as development"
        )
    if spec.get("experiment"):
        return PhaseDecision(
            phase="development", reason="Experiment", message=f"part of experiment {spec['experiment']}"
        )
    for key in rules.development_labels:
        if key in labels:
            return PhaseDecision(phase="development", reason="TuningLabel", message=f"label {key}={labels[key]}")
    for key in rules.development_annotations:
        if key in annotations:
            return PhaseDecision(phase="development", reason="TuningAnnotation", message=f"annotation {key}")
    return PhaseDecision(phase=rules.default, reason="Default", message=f"no rule matched: default {rules.default}")

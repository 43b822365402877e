"""Which node bill of materials applies to a GPU: presets, selection rules and overrides.

:class:`EmbodiedConfig` is the typed shape the operator reads from a factors ConfigMap (phase B,
key ``embodied``); YAML/JSON in camelCase or snake_case::

    embodied:
      select:                                  # first match wins
        - nodeLabels: {node.kubernetes.io/instance-type: p5.48xlarge}
          node: dgx-h100
        - gpuModel: A100                       # case-insensitive substring of the GPU name
          node: dgx-a100
      defaultNode: bloom-8gpu                  # when no rule matches
      nodes:                                   # nodes of your own (full NodeSpec each)
        my-node: {...}
      overrides:                               # any part of a preset or node, deep-merged
        dgx-h100: {host: {ssdGb: 7680, memoryGb: 1024}}
      componentFactors: {ssdKgPerGb: 0.05}     # any per-component factor

Validation happens when the model is built: an override that makes a node invalid, a rule
naming an unknown node, a bad factor — each error names the field path (pydantic ``loc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlfootprint.accounting.bom import DEFAULT_COMPONENT_FACTORS, ComponentFactors, NodeSpec, camel
from mlfootprint.accounting.embodied import NodeEmbodied, UnknownNodeError, node_embodied, node_presets

__all__ = ["DEFAULT_SELECTORS", "EmbodiedConfig", "NodeSelector"]

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, alias_generator=camel, populate_by_name=True)


class NodeSelector(BaseModel):
    """A rule: nodes whose labels include all ``node_labels`` and whose GPU name contains
    ``gpu_model`` (case-insensitive) use ``node``. At least one condition is required."""

    model_config = _CONFIG

    gpu_model: str | None = Field(default=None, min_length=1)
    node_labels: dict[str, str] = Field(default_factory=dict)
    node: str = Field(min_length=1)

    @model_validator(mode="after")
    def _has_condition(self) -> NodeSelector:
        if self.gpu_model is None and not self.node_labels:
            raise ValueError("a selector needs gpuModel or nodeLabels (use defaultNode for a fallback)")
        return self

    def matches(self, gpu_model: str, labels: Mapping[str, str]) -> bool:
        if self.gpu_model is not None and self.gpu_model.casefold() not in gpu_model.casefold():
            return False
        return all(labels.get(k) == v for k, v in self.node_labels.items())


#: GPU names as NVML reports them ("NVIDIA H100 80GB HBM3", "NVIDIA L40S", ...). "L40S" comes
#: before "L4" because "L4" is a substring of "L40S".
DEFAULT_SELECTORS: tuple[NodeSelector, ...] = (
    NodeSelector(gpu_model="H100", node="dgx-h100"),
    NodeSelector(gpu_model="A100", node="dgx-a100"),
    NodeSelector(gpu_model="L40S", node="l40s-4gpu"),
    NodeSelector(gpu_model="L4", node="l4-8gpu"),
)


def _deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _by_alias(spec: NodeSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True)


def _camel_keys(value: Any) -> Any:
    """Normalise snake_case keys of an override to the camelCase the dump uses."""
    if isinstance(value, Mapping):
        return {camel(str(k)): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


class EmbodiedConfig(BaseModel):
    """Node presets, custom nodes, overrides and selection rules (see the module docstring)."""

    model_config = _CONFIG

    component_factors: ComponentFactors = DEFAULT_COMPONENT_FACTORS
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    select: list[NodeSelector] = Field(default_factory=lambda: list(DEFAULT_SELECTORS))
    default_node: str | None = "bloom-8gpu"

    @model_validator(mode="after")
    def _references_resolve(self) -> EmbodiedConfig:
        known = set(node_presets()) | set(self.nodes)
        for i, rule in enumerate(self.select):
            if rule.node not in known:
                raise ValueError(f"select[{i}].node: unknown node {rule.node!r} (known: {', '.join(sorted(known))})")
        if self.default_node is not None and self.default_node not in known:
            raise ValueError(f"defaultNode: unknown node {self.default_node!r} (known: {', '.join(sorted(known))})")
        for name in self.overrides:
            if name not in known:
                raise ValueError(f"overrides.{name}: unknown node {name!r} (known: {', '.join(sorted(known))})")
            self.node(name)  # raises naming the field path
        for name, spec in self.nodes.items():
            if spec.name != name:
                raise ValueError(f"nodes.{name}.name: must equal its key {name!r}, got {spec.name!r}")
        return self

    def node(self, name: str) -> NodeSpec:
        """The node ``name`` (custom node, else preset) with its override applied."""
        base = self.nodes.get(name) or node_presets().get(name)
        if base is None:
            known = sorted(set(node_presets()) | set(self.nodes))
            raise UnknownNodeError(f"unknown node {name!r} (known: {', '.join(known)})")
        patch = self.overrides.get(name)
        if not patch:
            return base
        merged = _deep_merge(_by_alias(base), _camel_keys(patch))
        try:
            return NodeSpec.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            # drop the discriminator tags pydantic puts in the location (gpu.components.x -> gpu.x)
            path = ".".join(str(p) for p in err["loc"] if p not in ("components", "flat"))
            raise ValueError(f"overrides.{name}.{path}: {err['msg']}") from None

    def node_for(self, gpu_model: str, labels: Mapping[str, str] | None = None) -> NodeSpec | None:
        """The node of the first matching rule, else ``default_node`` (None when unset)."""
        labels = labels or {}
        for rule in self.select:
            if rule.matches(gpu_model, labels):
                return self.node(rule.node)
        return None if self.default_node is None else self.node(self.default_node)

    def embodied_for(self, gpu_model: str, labels: Mapping[str, str] | None = None) -> NodeEmbodied | None:
        """The embodied impact of the node a GPU (and its node's labels) selects."""
        spec = self.node_for(gpu_model, labels)
        return None if spec is None else node_embodied(spec, self.component_factors)

"""Footprint factors from ConfigMaps: parsing, validation and layering (pure, no I/O).

A factors ConfigMap holds either one key ``factors.yaml`` (a YAML mapping) or one key per
field (each value parsed as YAML), or both (single keys win). Fields (docs/factors.md):

``region`` (preset code, EcoLogits table), ``pue``, ``carbonIntensity``,
``marketCarbonIntensity``, ``wueOnsite``, ``wueOffsite`` (L/kWh), ``onsiteWaterBasis``
(``it`` | ``facility``), ``embodiedGpu`` / ``embodiedHost`` (model -> {co2eKg, waterL}),
``gpuLifetimeYears``, ``hostLifetimeYears``.

``carbonIntensity`` is one of: a number (gCO2e/kWh); ``{constant: N}``; ``{schedule: [24
numbers]}`` (hourly, UTC, repeating daily; or a mapping hour -> value with all 24 hours);
``{prometheus: {query: Q}}`` (instant PromQL value at each refresh); ``{provider: {name:
electricitymaps|watttime, zone: Z}}`` (live API; off unless the operator enables providers).
Live kinds take ``fallback: N``, used while no live value is available.

Layers: built-in defaults <- cluster default ConfigMap <- namespace ConfigMap <-
``spec.factorsRef``; later layers override field by field.

Validated at the boundary through one typed wire model,
:class:`~mlfootprint.operator.factors_wire.FactorsConfigMap` (the chart's values schema is
generated from it too): every number must be finite and within physical bounds
(:data:`BOUNDS`; e.g. 1e308 g/kWh is refused, not turned into +Inf CO2e). Errors name the
field and the reason and never echo a value or an unknown key: the ConfigMap may belong to
someone else (the cluster default), and messages end up in tenants' conditions and Events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from mlfootprint.accounting.embodied import NodeEmbodied, embodied_specs, node_embodied
from mlfootprint.accounting.factors import DEFAULT_CARBON_INTENSITY_G_PER_KWH, EmbodiedSpec, Factors, IntensityInterval
from mlfootprint.accounting.node_config import EmbodiedConfig
from mlfootprint.accounting.powercap import DEFAULT_CAP_CURVES, CapCurves
from mlfootprint.accounting.presets import region_preset
from mlfootprint.operator.factors_wire import (
    BOUNDS,
    ConstantIntensity,
    FactorsConfigMap,
    PrometheusIntensity,
    ProviderIntensity,
    ScheduleIntensity,
)
from mlfootprint.operator.ledger import EmbodiedPlan

__all__ = [
    "BOUNDS",
    "CarbonIntensitySpec",
    "FactorsError",
    "FactorsLayer",
    "ResolvedFactors",
    "embodied_resolver",
    "factors_for_interval",
    "parse_factors",
    "resolve_factors",
]

CIKind = Literal["constant", "schedule", "prometheus", "provider"]
_DOC_KEY = "factors.yaml"


class FactorsError(ValueError):
    """An invalid factors ConfigMap; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class CarbonIntensitySpec:
    """How the location-based carbon intensity is obtained."""

    kind: CIKind
    constant_g_per_kwh: float | None = None  # constant, or the fallback of live kinds
    schedule_g_per_kwh: tuple[float, ...] = ()  # 24 hourly values (UTC)
    query: str | None = None  # prometheus
    provider: str | None = None  # electricitymaps | watttime
    zone: str | None = None
    url: str | None = None

    @property
    def is_live(self) -> bool:
        return self.kind in ("prometheus", "provider")


@dataclass(frozen=True)
class FactorsLayer:
    """The fields one ConfigMap sets (Factors field names), already validated."""

    fields: dict[str, Any] = field(default_factory=dict)
    carbon_intensity: CarbonIntensitySpec | None = None
    source: str | None = None  # namespace/name
    resource_version: str | None = None
    embodied: EmbodiedConfig | None = None
    cap_curves: CapCurves | None = None


@dataclass(frozen=True)
class ResolvedFactors:
    """Factors after layering, plus how carbon intensity is obtained and where it came from.

    ``embodied``: the node bills of materials and selection rules (default: the presets);
    ``per_gpu_embodied``: the per-GPU figures a ConfigMap gave with ``embodiedGpu`` (they win
    over the node model for their GPU models, with ``embodiedHost`` as the host share)."""

    factors: Factors
    carbon_intensity: CarbonIntensitySpec
    source: str | None = None
    resource_version: str | None = None
    sources: tuple[str, ...] = ()
    embodied: EmbodiedConfig = field(default_factory=EmbodiedConfig)
    cap_curves: CapCurves = DEFAULT_CAP_CURVES
    per_gpu_embodied: bool = False


def _yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f"not valid YAML (line {mark.line + 1})" if mark is not None else "not valid YAML"


_FIELDS = tuple(f.alias or n for n, f in FactorsConfigMap.model_fields.items())


def _load_data(data: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if _DOC_KEY in data:
        try:
            doc = yaml.safe_load(data[_DOC_KEY]) or {}
        except yaml.YAMLError as e:
            raise FactorsError(_DOC_KEY, _yaml_error(e)) from None
        if not isinstance(doc, Mapping):
            raise FactorsError(_DOC_KEY, "must be a YAML mapping of factor fields")
        raw.update(doc)
    for key, text in data.items():
        if key == _DOC_KEY:
            continue
        try:
            raw[key] = yaml.safe_load(text) if isinstance(text, str) else text
        except yaml.YAMLError as e:
            raise FactorsError(key if key in _FIELDS else "data", _yaml_error(e)) from None
    return raw


_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")
#: union tags and pydantic type names that pydantic puts in an error's location
_TAGS = {"number", "constant", "schedule", "prometheus", "provider", "components", "flat"}


def _no_quotes(text: str) -> str:
    """Drop quoted values a library message may carry (the ConfigMap may be someone else's)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", text)


def _error(e: ValidationError) -> FactorsError:
    """The first error as a field path (``carbonIntensity.schedule[23]``) and a reason, with no
    value and no unknown key of the ConfigMap in either."""
    err = e.errors()[0]
    loc = list(err["loc"])
    parts: list[str] = []
    for i, part in enumerate(loc[:-1] if err["type"] == "extra_forbidden" else loc):
        text = str(part)
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif "[" in text or text in ("PrometheusQuery", "components", "flat"):
            continue  # a pydantic type name or a bill-of-materials tag, not a field
        elif i > 0 and loc[i - 1] == "carbonIntensity" and text in _TAGS:
            continue  # the tag of the carbon-intensity form
        else:
            parts.append(text if _SAFE_KEY.match(text) else "<key>")
    path = "".join(p if p.startswith("[") else f".{p}" for p in parts).lstrip(".")
    reason = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        reason = "has an unknown field" if path else f"an unknown field (known: {', '.join(_FIELDS)})"
    inner = re.match(r"^([\w\[\].-]+): (.*)$", reason)
    if inner and err["type"] == "value_error":  # a model validator that names the field itself
        path, reason = f"{path}.{inner.group(1)}" if path else inner.group(1), inner.group(2)
    return FactorsError(path or "data", _no_quotes(reason))


def _intensity(wire: Any) -> CarbonIntensitySpec:
    if isinstance(wire, (int, float)):
        return CarbonIntensitySpec("constant", constant_g_per_kwh=float(wire))
    if isinstance(wire, ConstantIntensity):
        return CarbonIntensitySpec("constant", constant_g_per_kwh=wire.constant)
    if isinstance(wire, ScheduleIntensity):
        return CarbonIntensitySpec("schedule", schedule_g_per_kwh=wire.hourly())
    if isinstance(wire, PrometheusIntensity):
        q = wire.query()
        return CarbonIntensitySpec("prometheus", constant_g_per_kwh=wire.fallback, query=q.query, url=q.url)
    assert isinstance(wire, ProviderIntensity)
    p = wire.provider
    return CarbonIntensitySpec("provider", constant_g_per_kwh=wire.fallback, provider=p.name, zone=p.zone, url=p.url)


def parse_factors(
    data: Mapping[str, str] | None, *, source: str | None = None, resource_version: str | None = None
) -> FactorsLayer:
    """Validate one ConfigMap's ``data`` through :class:`FactorsConfigMap`; raise
    :class:`FactorsError` naming the field and the reason."""
    try:
        wire = FactorsConfigMap.model_validate(_load_data(data or {}))
    except ValidationError as e:
        raise _error(e) from None
    fields: dict[str, Any] = {}
    ci: CarbonIntensitySpec | None = None
    if wire.region is not None:
        preset = region_preset(wire.region)
        fields["region"] = preset.code
        fields["wue_offsite_l_per_kwh"] = preset.wue_offsite_l_per_kwh
        ci = CarbonIntensitySpec("constant", constant_g_per_kwh=preset.carbon_intensity_g_per_kwh)
    if wire.carbon_intensity is not None:
        ci = _intensity(wire.carbon_intensity)
    for name, target in (
        ("pue", "pue"), ("market_carbon_intensity", "market_carbon_intensity_g_per_kwh"),
        ("wue_onsite", "wue_onsite_l_per_kwh"), ("wue_offsite", "wue_offsite_l_per_kwh"),
        ("onsite_water_basis", "onsite_water_basis"), ("gpu_lifetime_years", "gpu_lifetime_years"),
        ("host_lifetime_years", "host_lifetime_years"),
    ):
        value = getattr(wire, name)
        if value is not None:
            fields[target] = value
    for name in ("embodied_gpu", "embodied_host"):
        table = getattr(wire, name)
        if table is not None:
            fields[name] = {
                model: EmbodiedSpec(co2e_kg=e.co2e_kg, water_l=e.water_l, source=e.source) for model, e in table.items()
            }
    return FactorsLayer(
        fields=fields, carbon_intensity=ci, source=source, resource_version=resource_version,
        embodied=wire.embodied, cap_curves=wire.power_cap_curves,
    )


def resolve_factors(layers: Sequence[FactorsLayer]) -> ResolvedFactors:
    """Merge layers (least specific first) over the built-in defaults (METHODOLOGY §3-4)."""
    fields: dict[str, Any] = {}
    ci = CarbonIntensitySpec("constant", constant_g_per_kwh=DEFAULT_CARBON_INTENSITY_G_PER_KWH)
    source: str | None = None
    rv: str | None = None
    used: list[str] = []
    embodied = EmbodiedConfig()
    curves = DEFAULT_CAP_CURVES
    for layer in layers:
        fields.update(layer.fields)
        if layer.carbon_intensity is not None:
            ci = layer.carbon_intensity
        if layer.embodied is not None:
            embodied = layer.embodied
        if layer.cap_curves is not None:
            curves = layer.cap_curves
        if layer.source:
            source, rv = layer.source, layer.resource_version
            used.append(layer.source)
    base_ci = ci.constant_g_per_kwh
    if base_ci is None:
        base_ci = ci.schedule_g_per_kwh[0] if ci.schedule_g_per_kwh else DEFAULT_CARBON_INTENSITY_G_PER_KWH
    factors = Factors.model_validate({**fields, "carbon_intensity_g_per_kwh": base_ci})
    return ResolvedFactors(
        factors=factors, carbon_intensity=ci, source=source, resource_version=rv, sources=tuple(used),
        embodied=embodied, cap_curves=curves, per_gpu_embodied="embodied_gpu" in fields,
    )


def embodied_resolver(
    resolved: ResolvedFactors, node_labels: Callable[[str], Mapping[str, str]]
) -> Callable[[str, str | None], EmbodiedPlan]:
    """(GPU model, node) -> how its device-seconds are charged embodied impact (METHODOLOGY §4).

    The node's bill of materials (``embodied`` rules: GPU model and node labels; presets by
    default) gives the per-GPU figure and the host, spread over the node's GPUs. A ConfigMap's
    ``embodiedGpu`` entry for the GPU model (or its ``default``) wins for the GPU part, with
    ``embodiedHost`` for the model (or ``default``) as the host, none without one (a per-GPU
    figure such as BLOOM's already covers the whole server).
    """
    cfg = resolved.embodied
    factors = resolved.factors
    nodes: dict[str, NodeEmbodied] = {}

    def plan(model: str, node: str | None) -> EmbodiedPlan:
        labels = node_labels(node) if node else {}
        spec = cfg.node_for(model, labels)
        per_node = spec.gpu_count if spec is not None else 8
        if resolved.per_gpu_embodied and (model in factors.embodied_gpu or "default" in factors.embodied_gpu):
            host = factors.embodied_host.get(model) or factors.embodied_host.get("default")
            return EmbodiedPlan(
                gpu_key=f"gpu:{model}", gpu=factors.embodied_for_gpu(model),
                host_key=f"host:{model}" if host is not None else None, host=host, gpus_per_node=per_node,
            )
        if spec is None:
            return EmbodiedPlan(gpu_key="none", gpu=EmbodiedSpec(co2e_kg=0.0, water_l=0.0, source="no node selected"))
        if spec.name not in nodes:
            nodes[spec.name] = node_embodied(spec, cfg.component_factors)
        gpu, host = embodied_specs(nodes[spec.name])
        return EmbodiedPlan(gpu_key=f"{spec.name}:gpu", gpu=gpu, host_key=f"{spec.name}:host", host=host, gpus_per_node=per_node)

    return plan


def factors_for_interval(
    resolved: ResolvedFactors, start_s: float, end_s: float, live_g_per_kwh: float | None = None
) -> Factors:
    """The factors in force over ``[start_s, end_s)``.

    A schedule becomes hourly intensity intervals (UTC hours, repeating daily) covering the
    interval, so :func:`compute_footprint` integrates per hour; a live kind uses the value
    read at this refresh (or its fallback / the default while none is available).
    """
    ci = resolved.carbon_intensity
    f = resolved.factors
    if ci.kind == "schedule":
        first = math.floor(start_s / 3600.0)
        last = math.ceil(end_s / 3600.0)
        intervals = [
            IntensityInterval(start_s=h * 3600.0, end_s=(h + 1) * 3600.0, g_per_kwh=ci.schedule_g_per_kwh[h % 24])
            for h in range(first, max(last, first + 1))
        ]
        return f.model_copy(update={"carbon_intensity_g_per_kwh": intervals})
    if ci.is_live and live_g_per_kwh is not None:
        return f.model_copy(update={"carbon_intensity_g_per_kwh": float(live_g_per_kwh)})
    return f


def intensity_now(resolved: ResolvedFactors, now_s: float, live_g_per_kwh: float | None = None) -> float:
    """The carbon intensity in force at ``now_s`` (for the status' audit trail)."""
    ci = resolved.carbon_intensity
    if ci.kind == "schedule":
        return ci.schedule_g_per_kwh[int(now_s // 3600) % 24]
    if ci.is_live and live_g_per_kwh is not None:
        return float(live_g_per_kwh)
    value = resolved.factors.carbon_intensity_g_per_kwh
    return float(value) if isinstance(value, (int, float)) else 0.0

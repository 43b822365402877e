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

Validated at the boundary: every number must be finite and within physical bounds
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
from mlfootprint.accounting.factors import EmbodiedSpec, Factors, IntensityInterval
from mlfootprint.accounting.node_config import EmbodiedConfig
from mlfootprint.accounting.powercap import DEFAULT_CAP_CURVES, CapCurves
from mlfootprint.accounting.presets import UnknownRegionError, region_preset
from mlfootprint.operator.ledger import EmbodiedPlan

__all__ = [
    "CarbonIntensitySpec",
    "FactorsError",
    "FactorsLayer",
    "ResolvedFactors",
    "factors_for_interval",
    "parse_factors",
    "embodied_resolver",
    "resolve_factors",
]

CIKind = Literal["constant", "schedule", "prometheus", "provider"]
PROVIDERS = ("electricitymaps", "watttime")
_FIELDS = (
    "region", "pue", "carbonIntensity", "marketCarbonIntensity", "wueOnsite", "wueOffsite",
    "onsiteWaterBasis", "embodied", "embodiedGpu", "embodiedHost", "gpuLifetimeYears", "hostLifetimeYears",
    "powerCapCurves",
)
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


#: Physical bounds of each number (inclusive; lifetimes exclude 0). The highest grid
#: intensities are ~1,100 gCO2e/kWh (lignite); PUEs of real facilities are 1.0-3.0; on-site
#: WUE up to ~10 L/kWh (evaporative towers); water per kWh of electricity up to ~60 L/kWh
#: (hydro reservoir evaporation, Macknick et al.). Values beyond these are typos or garbage.
BOUNDS: dict[str, tuple[float, float]] = {
    "pue": (1.0, 5.0),
    "carbonIntensity": (0.0, 3000.0),
    "marketCarbonIntensity": (0.0, 3000.0),
    "wueOnsite": (0.0, 100.0),
    "wueOffsite": (0.0, 200.0),
    "co2eKg": (0.0, 1e6),
    "waterL": (0.0, 1e7),
    "lifetimeYears": (0.0, 50.0),
}


def _number(value: Any, name: str, *, bounds: str, strict_min: bool = False) -> float:
    """A finite number within ``BOUNDS[bounds]``; the error names the field, never the value."""
    low, high = BOUNDS[bounds]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FactorsError(name, f"must be a number, not a {type(value).__name__}")
    try:
        x = float(value)
    except ValueError:
        raise FactorsError(name, "must be a number") from None
    if not math.isfinite(x):
        raise FactorsError(name, "must be a finite number")
    if x < low or (strict_min and x == low):
        raise FactorsError(name, f"must be {'>' if strict_min else '>='} {low:g}")
    if x > high:
        raise FactorsError(name, f"must be <= {high:g} (a larger value is not physical)")
    return x


def _schedule(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, Mapping):
        try:
            hours = {int(str(k)): v for k, v in value.items()}
        except ValueError:
            raise FactorsError(name, "hour keys must be integers 0-23") from None
        missing = [h for h in range(24) if h not in hours]
        extra = [h for h in hours if not 0 <= h < 24]
        if missing or extra:
            raise FactorsError(name, f"needs exactly the hours 0-23 (missing {missing}, extra {extra})")
        values: Sequence[Any] = [hours[h] for h in range(24)]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 24:
            raise FactorsError(name, f"needs 24 hourly values (UTC), got {len(value)}")
        values = value
    else:
        raise FactorsError(name, "must be a list of 24 hourly values or a mapping hour -> value")
    return tuple(_number(v, f"{name}[{i}]", bounds="carbonIntensity") for i, v in enumerate(values))


def _carbon_intensity(value: Any, name: str) -> CarbonIntensitySpec:
    if not isinstance(value, Mapping):
        return CarbonIntensitySpec("constant", constant_g_per_kwh=_number(value, name, bounds="carbonIntensity"))
    kinds = [k for k in ("constant", "schedule", "prometheus", "provider") if k in value]
    if set(map(str, value)) - {"constant", "schedule", "prometheus", "provider", "fallback"}:
        raise FactorsError(name, "has an unknown key (use constant, schedule, prometheus or provider, and fallback)")
    if len(kinds) != 1:
        raise FactorsError(name, f"needs exactly one of constant, schedule, prometheus, provider (got {len(kinds)})")
    kind = kinds[0]
    fallback = _number(value["fallback"], f"{name}.fallback", bounds="carbonIntensity") if "fallback" in value else None
    body = value[kind]
    if kind == "constant":
        return CarbonIntensitySpec("constant", constant_g_per_kwh=_number(body, f"{name}.constant", bounds="carbonIntensity"))
    if kind == "schedule":
        return CarbonIntensitySpec("schedule", schedule_g_per_kwh=_schedule(body, f"{name}.schedule"))
    if kind == "prometheus":
        if isinstance(body, str):
            body = {"query": body}
        if not isinstance(body, Mapping) or not str(body.get("query") or "").strip():
            raise FactorsError(f"{name}.prometheus.query", "a PromQL query is required")
        return CarbonIntensitySpec(
            "prometheus", constant_g_per_kwh=fallback, query=str(body["query"]), url=body.get("url")
        )
    if not isinstance(body, Mapping):
        raise FactorsError(f"{name}.provider", "must be a mapping with name and zone")
    provider = str(body.get("name", "")).lower()
    if provider not in PROVIDERS:
        raise FactorsError(f"{name}.provider.name", f"must be one of {', '.join(PROVIDERS)}")
    zone = str(body.get("zone") or "").strip()
    if not zone:
        raise FactorsError(f"{name}.provider.zone", "a grid zone (Electricity Maps zone / WattTime region) is required")
    return CarbonIntensitySpec(
        "provider", constant_g_per_kwh=fallback, provider=provider, zone=zone, url=body.get("url")
    )


def _embodied(value: Any, name: str) -> dict[str, EmbodiedSpec]:
    if not isinstance(value, Mapping) or not value:
        raise FactorsError(name, "must be a mapping model -> {co2eKg, waterL}")
    out: dict[str, EmbodiedSpec] = {}
    for model, spec in value.items():
        label = _safe_key(model)
        if not isinstance(spec, Mapping):
            raise FactorsError(f"{name}.{label}", "must be a mapping with co2eKg and waterL")
        keys = {"co2eKg": "co2e_kg", "co2e_kg": "co2e_kg", "waterL": "water_l", "water_l": "water_l", "source": "source"}
        if any(k not in keys for k in spec):
            raise FactorsError(f"{name}.{label}", "has an unknown key (use co2eKg, waterL, source)")
        values = {keys[k]: v for k, v in spec.items()}
        for py, wire in (("co2e_kg", "co2eKg"), ("water_l", "waterL")):
            if py not in values:
                raise FactorsError(f"{name}.{label}.{wire}", "required")
            values[py] = _number(values[py], f"{name}.{label}.{wire}", bounds=wire)
        try:
            out[str(model)] = EmbodiedSpec.model_validate(values)
        except ValidationError as e:
            raise FactorsError(f"{name}.{label}", e.errors()[0]["type"]) from None
    return out


_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")


def _safe_key(key: Any) -> str:
    """A mapping key fit to appear in a message (a GPU model name), else a placeholder."""
    text = str(key)
    return text if _SAFE_KEY.match(text) else "<key>"


def _yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f"not valid YAML (line {mark.line + 1})" if mark is not None else "not valid YAML"


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


def parse_factors(
    data: Mapping[str, str] | None, *, source: str | None = None, resource_version: str | None = None
) -> FactorsLayer:
    """Validate one ConfigMap's ``data``; raise :class:`FactorsError` naming the field."""
    raw = _load_data(data or {})
    unknown = sorted(set(map(str, raw)) - set(_FIELDS))
    if unknown:
        raise FactorsError("data", f"{len(unknown)} unknown field(s) (known: {', '.join(_FIELDS)})")
    fields: dict[str, Any] = {}
    ci: CarbonIntensitySpec | None = None
    if "region" in raw:
        try:
            preset = region_preset(str(raw["region"]))
        except UnknownRegionError:
            raise FactorsError(
                "region", "unknown region code: use an ISO 3166-1 alpha-3 country code such as USA, FRA, DEU "
                "(`mlfootprint estimate --list-regions` prints them all)"
            ) from None
        fields["region"] = preset.code
        fields["wue_offsite_l_per_kwh"] = preset.wue_offsite_l_per_kwh
        ci = CarbonIntensitySpec("constant", constant_g_per_kwh=preset.carbon_intensity_g_per_kwh)
    if "pue" in raw:
        fields["pue"] = _number(raw["pue"], "pue", bounds="pue")
    if "carbonIntensity" in raw:
        ci = _carbon_intensity(raw["carbonIntensity"], "carbonIntensity")
    if "marketCarbonIntensity" in raw:
        fields["market_carbon_intensity_g_per_kwh"] = _number(
            raw["marketCarbonIntensity"], "marketCarbonIntensity", bounds="marketCarbonIntensity"
        )
    if "wueOnsite" in raw:
        fields["wue_onsite_l_per_kwh"] = _number(raw["wueOnsite"], "wueOnsite", bounds="wueOnsite")
    if "wueOffsite" in raw:
        fields["wue_offsite_l_per_kwh"] = _number(raw["wueOffsite"], "wueOffsite", bounds="wueOffsite")
    if "onsiteWaterBasis" in raw:
        basis = str(raw["onsiteWaterBasis"])
        if basis not in ("it", "facility"):
            raise FactorsError("onsiteWaterBasis", "must be 'it' or 'facility'")
        fields["onsite_water_basis"] = basis
    for key, name in (("embodiedGpu", "embodied_gpu"), ("embodiedHost", "embodied_host")):
        if key in raw:
            fields[name] = _embodied(raw[key], key)
    embodied = _typed(EmbodiedConfig, raw["embodied"], "embodied") if "embodied" in raw else None
    curves = _typed(CapCurves, raw["powerCapCurves"], "powerCapCurves") if "powerCapCurves" in raw else None
    for key, name in (("gpuLifetimeYears", "gpu_lifetime_years"), ("hostLifetimeYears", "host_lifetime_years")):
        if key in raw:
            fields[name] = _number(raw[key], key, bounds="lifetimeYears", strict_min=True)
    return FactorsLayer(
        fields=fields, carbon_intensity=ci, source=source, resource_version=resource_version, embodied=embodied,
        cap_curves=curves,
    )


def _typed(model: Any, value: Any, name: str) -> Any:
    """Validate a typed section; the error names the field path and the reason, not the value."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if p not in ("components", "flat"))
        reason = str(err["msg"]).removeprefix("Value error, ")
        inner = re.match(r"^([\w\[\].-]+): (.*)$", reason)
        if not loc and inner:  # a model validator that names the field itself
            loc, reason = inner.group(1), inner.group(2)
        raise FactorsError(f"{name}.{loc}".rstrip("."), _no_quotes(reason)) from None
    except ValueError as e:
        raise FactorsError(name, _no_quotes(str(e))) from None


def _no_quotes(text: str) -> str:
    """Drop quoted values a library message may carry (the ConfigMap may be someone else's)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", text)


def resolve_factors(layers: Sequence[FactorsLayer]) -> ResolvedFactors:
    """Merge layers (least specific first) over the built-in defaults (METHODOLOGY §3-4)."""
    fields: dict[str, Any] = {}
    ci = CarbonIntensitySpec("constant", constant_g_per_kwh=Factors().carbon_intensity_g_per_kwh)  # type: ignore[arg-type]
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
        base_ci = ci.schedule_g_per_kwh[0] if ci.schedule_g_per_kwh else Factors().carbon_intensity_g_per_kwh
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

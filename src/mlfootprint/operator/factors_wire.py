"""The factors ConfigMap as a typed wire model: one source of truth for its validation, its
documentation and the Helm chart's ``values.schema.json`` ``factors`` subtree.

Every number is bounded (finite, within physical bounds: a value such as 1e308 gCO2e/kWh is a
typo, not a footprint). Carbon intensity is a discriminated union told apart by its key
(``constant``, ``schedule``, ``prometheus``, ``provider``) or a bare number. Errors carry
pydantic's location, which :func:`mlfootprint.operator.factors_config.parse_factors` turns
into a field path (``carbonIntensity.schedule[23]``) and a reason, never a value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from mlfootprint.accounting.node_config import EmbodiedConfig
from mlfootprint.accounting.powercap import CapCurves
from mlfootprint.accounting.presets import UnknownRegionError, list_regions, region_preset
from mlfootprint.crd.models import to_camel

__all__ = [
    "BOUNDS",
    "CarbonIntensityWire",
    "EmbodiedWire",
    "FactorsConfigMap",
    "IntensityProvider",
    "PrometheusQuery",
]

#: Physical bounds of each number (inclusive; lifetimes exclude 0). The highest grid
#: intensities are ~1,100 gCO2e/kWh (lignite); PUEs of real facilities are 1.0-3.0; on-site
#: WUE up to ~10 L/kWh (evaporative towers); water per kWh of electricity up to ~60 L/kWh
#: (hydro reservoir evaporation, Macknick et al.). Values beyond these are typos or garbage.
BOUNDS: dict[str, tuple[float, float]] = {
    "pue": (1.0, 5.0),
    "carbonIntensity": (0.0, 3000.0),
    "wueOnsite": (0.0, 100.0),
    "wueOffsite": (0.0, 200.0),
    "co2eKg": (0.0, 1e6),
    "waterL": (0.0, 1e7),
    "lifetimeYears": (0.0, 50.0),
}


def _bounded(name: str, *, exclusive_min: bool = False) -> Any:
    low, high = BOUNDS[name]
    if exclusive_min:
        return Field(gt=low, le=high, allow_inf_nan=False)
    return Field(ge=low, le=high, allow_inf_nan=False)


Intensity = Annotated[float, _bounded("carbonIntensity")]


class _Wire(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, alias_generator=to_camel, populate_by_name=True
    )


class ConstantIntensity(_Wire):
    constant: Intensity = Field(description="gCO2e/kWh.")


class ScheduleIntensity(_Wire):
    schedule: Annotated[list[Intensity], Field(min_length=24, max_length=24)] | dict[int, Intensity] = Field(
        description="24 hourly values (UTC), repeating daily; or a mapping hour -> value with all 24 hours."
    )
    fallback: Intensity | None = None

    @field_validator("schedule")
    @classmethod
    def _hours(cls, value: list[float] | dict[int, float]) -> list[float] | dict[int, float]:
        if isinstance(value, dict) and sorted(value) != list(range(24)):
            raise ValueError("needs exactly the hours 0-23")
        return value

    def hourly(self) -> tuple[float, ...]:
        s = self.schedule
        return tuple(s[h] for h in range(24)) if isinstance(s, dict) else tuple(s)


class PrometheusQuery(_Wire):
    query: str = Field(min_length=1, description="An instant PromQL query returning gCO2e/kWh.")
    url: str | None = Field(default=None, description="Prometheus base URL (default: the operator's --prometheus-url).")


class PrometheusIntensity(_Wire):
    prometheus: PrometheusQuery | Annotated[str, Field(min_length=1)]
    fallback: Intensity | None = None

    def query(self) -> PrometheusQuery:
        p = self.prometheus
        return PrometheusQuery(query=p) if isinstance(p, str) else p


class IntensityProvider(_Wire):
    name: Literal["electricitymaps", "watttime"]
    zone: str = Field(min_length=1, description="Electricity Maps zone or WattTime region.")
    url: str | None = None


class ProviderIntensity(_Wire):
    provider: IntensityProvider
    fallback: Intensity | None = None


def _intensity_kind(value: Any) -> str | None:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return "number"
    if isinstance(value, dict):
        kinds = [k for k in ("constant", "schedule", "prometheus", "provider") if k in value]
        return kinds[0] if len(kinds) == 1 else None
    if isinstance(value, BaseModel):
        return {ConstantIntensity: "constant", ScheduleIntensity: "schedule", PrometheusIntensity: "prometheus",
                ProviderIntensity: "provider"}.get(type(value))
    return None


CarbonIntensityWire = Annotated[
    Annotated[Intensity, Tag("number")]
    | Annotated[ConstantIntensity, Tag("constant")]
    | Annotated[ScheduleIntensity, Tag("schedule")]
    | Annotated[PrometheusIntensity, Tag("prometheus")]
    | Annotated[ProviderIntensity, Tag("provider")],
    Discriminator(
        _intensity_kind,
        custom_error_type="carbon_intensity_form",
        custom_error_message="needs a number or exactly one of constant, schedule, prometheus, provider",
    ),
]


class EmbodiedWire(_Wire):
    co2e_kg: Annotated[float, _bounded("co2eKg")] = Field(description="Embodied carbon per device, kgCO2e.")
    water_l: Annotated[float, _bounded("waterL")] = Field(description="Embodied water per device, L.")
    source: str = ""


class FactorsConfigMap(_Wire):
    """One factors ConfigMap (every key optional: a layer overrides only what it sets)."""

    region: str | None = Field(
        default=None,
        description="Region preset (ISO 3166-1 alpha-3, e.g. USA, FRA, DEU; WOR = world): grid carbon intensity and "
        "off-site water intensity of the country (EcoLogits).",
        json_schema_extra={"enum": [*sorted(list_regions())]},
    )
    pue: Annotated[float, _bounded("pue")] | None = Field(default=None, description="Power usage effectiveness (>= 1).")
    carbon_intensity: CarbonIntensityWire | None = Field(
        default=None,
        description="Location-based grid carbon intensity: a number (gCO2e/kWh), {constant: N}, {schedule: [24 hourly "
        "values]}, {prometheus: {query: Q}, fallback: N} or {provider: {name: electricitymaps|watttime, zone: Z}, fallback: N}.",
    )
    market_carbon_intensity: Intensity | None = Field(
        default=None, description="Market-based carbon intensity, gCO2e/kWh (reported separately)."
    )
    wue_onsite: Annotated[float, _bounded("wueOnsite")] | None = Field(default=None, description="On-site WUE, L/kWh.")
    wue_offsite: Annotated[float, _bounded("wueOffsite")] | None = Field(
        default=None, description="Water consumed by electricity generation (EWIF), L/kWh."
    )
    onsite_water_basis: Literal["it", "facility"] | None = Field(default=None, description="Basis of on-site water.")
    embodied: EmbodiedConfig | None = Field(
        default=None, description="Node bills of materials and selection rules (docs/factors.md#embodied-impact-embodied)."
    )
    embodied_gpu: dict[str, EmbodiedWire] | None = Field(
        default=None, description="Per-GPU embodied figures by GPU model ('default' is the fallback); win over `embodied`."
    )
    embodied_host: dict[str, EmbodiedWire] | None = Field(default=None, description="Host figures for those GPU models.")
    gpu_lifetime_years: Annotated[float, _bounded("lifetimeYears", exclusive_min=True)] | None = None
    host_lifetime_years: Annotated[float, _bounded("lifetimeYears", exclusive_min=True)] | None = None
    power_cap_curves: CapCurves | None = Field(default=None, description="Cap curves of the power-cap advice.")

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return region_preset(value).code
        except UnknownRegionError:
            raise ValueError(
                "unknown region code: use an ISO 3166-1 alpha-3 country code such as USA, FRA, DEU "
                "(`mlfootprint estimate --list-regions` prints them all)"
            ) from None

    @field_validator("embodied_gpu", "embodied_host")
    @classmethod
    def _not_empty(cls, value: dict[str, EmbodiedWire] | None) -> dict[str, EmbodiedWire] | None:
        if value is not None and not value:
            raise ValueError("must be a mapping model -> {co2eKg, waterL}")
        return value

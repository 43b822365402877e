"""Typed models of the `mlfootprint.io/v1alpha1` custom resources: the one source of truth.

`mlfootprint.crd.generate` turns these into the CustomResourceDefinitions under `crds/`
(structural OpenAPI v3 schemas, printer columns, status subresource); the operator and the
report read and write objects through them. Field names are camelCase on the wire (Kubernetes
API conventions) and snake_case in Python.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "mlfootprint.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: RFC 1123 label / subdomain names, as the API server validates object names.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: Prometheus metric names (https://prometheus.io/docs/concepts/data_model/).
PROM_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"

NonNegFloat = Annotated[float, Field(ge=0)]
NonNegInt = Annotated[int, Field(ge=0)]


def to_camel(name: str) -> str:
    """snake_case -> camelCase, leaving letters after digits alone (co2e_kg -> co2eKg)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Model(BaseModel):
    """Base: camelCase aliases, unknown fields rejected, Python names accepted too."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    def to_api(self) -> dict[str, Any]:
        """Serialise as the API server expects: camelCase, no unset/None fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# ----------------------------------------------------------------------------- spec parts


class LabelSelectorRequirement(_Model):
    key: str = Field(min_length=1, max_length=317, description="Label key the selector applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="Relationship of the key to the values."
    )
    values: list[str] | None = Field(
        default=None, description="Values for In/NotIn; must be empty for Exists/DoesNotExist."
    )


class LabelSelector(_Model):
    """A standard Kubernetes label selector for the pods of the run or service."""

    match_labels: dict[str, str] | None = Field(default=None, description="Exact label matches.")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="Set-based requirements, ANDed."
    )


class WorkloadRef(_Model):
    """The workload object whose pods belong to the run (Job, PyTorchJob, JobSet, ...)."""

    api_version: str = Field(
        min_length=1, description="API version of the workload, e.g. batch/v1 or kubeflow.org/v1."
    )
    kind: str = Field(
        min_length=1, pattern=r"^[A-Z][A-Za-z0-9]*$", description="Kind, e.g. Job, PyTorchJob, JobSet."
    )
    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="Name in the same namespace."
    )


class ModelRef(_Model):
    """The ML model the work belongs to; lifecycle totals are kept per model."""

    name: str = Field(min_length=1, max_length=253, description="Model name, e.g. llama-3-8b.")
    version: str | None = Field(default=None, max_length=128, description="Model version or tag.")


class FactorsRef(_Model):
    """A ConfigMap of footprint factors (PUE, carbon intensity, WUE, embodied) to use instead of the defaults."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="ConfigMap name.")
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="ConfigMap namespace; defaults to the resource's namespace.",
    )


class Budget(_Model):
    """Limits that set the BudgetExceeded condition and post an Event when passed."""

    co2e_kg: NonNegFloat | None = Field(default=None, description="Total CO2e budget in kg.")
    energy_k_wh: NonNegFloat | None = Field(
        default=None, alias="energyKWh", description="Facility energy budget in kWh."
    )
    water_l: NonNegFloat | None = Field(default=None, description="Total water budget in litres.")


class TrainingRunSpec(_Model):
    selector: LabelSelector | None = Field(default=None, description="Labels of the run's pods.")
    workload_ref: WorkloadRef | None = Field(
        default=None, description="The Job/PyTorchJob/JobSet whose pods make up the run."
    )
    model: ModelRef
    phase: Literal["development", "training"] | None = Field(
        default=None,
        description=(
            "Lifecycle phase. Explicit values win; otherwise the operator derives it "
            "(sweeps, tuning and failed runs are development; a run marked final is training)."
        ),
    )
    experiment: str | None = Field(
        default=None, max_length=253, description="Sweep or experiment id; runs with one are development."
    )
    final: bool | None = Field(
        default=None, description="Marks the run that produced the released model (phase training)."
    )
    factors_ref: FactorsRef | None = None
    budget: Budget | None = None


ENGINE_NAMES = ("vllm", "sglang", "tgi", "custom")


class ServingMetrics(_Model):
    """Where the serving engine's request and token counters come from.

    Presets name the engines' own Prometheus counters; `custom` needs the names spelled out.
    """

    engine: Literal["vllm", "sglang", "tgi", "custom"] = Field(description="Serving engine preset.")
    requests_metric: str | None = Field(
        default=None, pattern=PROM_METRIC_NAME, description="Counter of completed requests (custom engine)."
    )
    input_tokens_metric: str | None = Field(
        default=None, pattern=PROM_METRIC_NAME, description="Counter of prompt (input) tokens."
    )
    output_tokens_metric: str | None = Field(
        default=None, pattern=PROM_METRIC_NAME, description="Counter of generated (output) tokens."
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="Port of the engine's /metrics.")
    path: str | None = Field(default=None, pattern=r"^/", description="Path of the engine's metrics endpoint.")


class BreakevenSpec(_Model):
    include_development: bool | None = Field(
        default=None,
        description="Count the model's development footprint (not only training) in breakeven. Default true.",
    )


class InferenceServiceSpec(_Model):
    selector: LabelSelector = Field(description="Labels of the serving pods.")
    model: ModelRef
    serving_metrics: ServingMetrics
    factors_ref: FactorsRef | None = None
    budget: Budget | None = None
    breakeven: BreakevenSpec | None = None


# ----------------------------------------------------------------------------- status parts


class Condition(_Model):
    """Kubernetes API conventions condition."""

    type: str = Field(min_length=1, max_length=316, pattern=r"^[A-Z][A-Za-z0-9]*$")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: NonNegInt | None = None


class EnergyStatus(_Model):
    gpu_k_wh: NonNegFloat = Field(default=0.0, alias="gpuKWh", description="GPU energy (IT), kWh.")
    host_k_wh: NonNegFloat = Field(default=0.0, alias="hostKWh", description="Host CPU+DRAM energy (IT), kWh.")
    it_k_wh: NonNegFloat = Field(default=0.0, alias="itKWh", description="IT energy, kWh.")
    facility_k_wh: NonNegFloat = Field(default=0.0, alias="facilityKWh", description="IT energy x PUE, kWh.")


class CarbonStatus(_Model):
    operational_kg: NonNegFloat = Field(default=0.0, description="Location-based operational CO2e, kg.")
    market_kg: NonNegFloat | None = Field(
        default=None, description="Market-based operational CO2e, kg (separate; never added to totals)."
    )
    embodied_kg: NonNegFloat = Field(default=0.0, description="Embodied (manufacturing) CO2e share, kg.")
    total_kg: NonNegFloat = Field(default=0.0, description="Operational (location) + embodied, kg.")
    total_tonnes: NonNegFloat = Field(default=0.0, description="total_kg / 1000 (tCO2e column).")


class WaterStatus(_Model):
    onsite_l: NonNegFloat = Field(default=0.0, description="On-site (cooling) water consumption, L.")
    offsite_l: NonNegFloat = Field(default=0.0, description="Off-site (electricity generation) water, L.")
    embodied_l: NonNegFloat = Field(default=0.0, description="Embodied (manufacturing) water share, L.")
    total_l: NonNegFloat = Field(default=0.0, description="On-site + off-site + embodied, L.")


class PowerStatus(_Model):
    avg_w: NonNegFloat = Field(default=0.0, description="Average total GPU power of the run while it held its GPUs, W: GPU energy / (GPU device-seconds held / GPUs), both on the exporters' measurement clock.")
    peak_w: NonNegFloat = Field(default=0.0, description="Peak sampled GPU power, W.")
    min_w: NonNegFloat = Field(default=0.0, description="Minimum sampled GPU power, W.")
    swings: NonNegInt = Field(default=0, description="Power swings larger than the configured fraction.")


class BreakevenStatus(_Model):
    inferences: NonNegFloat | None = Field(
        default=None, description="Inferences needed for inference CO2e to equal the model's training footprint."
    )
    progress: NonNegFloat | None = Field(default=None, description="Inferences served / breakeven (fraction).")
    progress_percent: NonNegFloat | None = Field(default=None, description="progress x 100.")
    basis: str | None = Field(default=None, description="What the breakeven compares, e.g. training+development.")


class InferenceStatus(_Model):
    requests: NonNegInt = 0
    input_tokens: NonNegInt = 0
    output_tokens: NonNegInt = 0
    joules_per_token: NonNegFloat | None = Field(default=None, description="Facility J per output token.")
    joules_per_request: NonNegFloat | None = Field(default=None, description="Facility J per request.")
    co2e_g_per1k_requests: NonNegFloat | None = Field(
        default=None, alias="co2eGPer1kRequests", description="gCO2e per 1,000 requests."
    )
    breakeven: BreakevenStatus | None = None


class FactorsSource(_Model):
    config_map: str | None = Field(default=None, description="namespace/name of the ConfigMap used.")
    resource_version: str | None = None
    preset: str | None = Field(default=None, description="Region preset code, if one was used.")


class FactorsStatus(_Model):
    """The factors the figures were computed with, so every number can be audited."""

    pue: float | None = Field(default=None, ge=1)
    carbon_intensity_g_per_k_wh: NonNegFloat | None = Field(default=None, alias="carbonIntensityGPerKWh")
    carbon_intensity_kind: Literal["constant", "schedule", "prometheus", "provider"] | None = None
    market_intensity_g_per_k_wh: NonNegFloat | None = Field(default=None, alias="marketIntensityGPerKWh")
    wue_onsite_l_per_k_wh: NonNegFloat | None = Field(default=None, alias="wueOnsiteLPerKWh")
    wue_offsite_l_per_k_wh: NonNegFloat | None = Field(default=None, alias="wueOffsiteLPerKWh")
    onsite_water_basis: Literal["it", "facility"] | None = None
    gpu_lifetime_years: NonNegFloat | None = None
    host_lifetime_years: NonNegFloat | None = None
    source: FactorsSource | None = None


class BudgetStatus(_Model):
    co2e_percent: NonNegFloat | None = None
    energy_percent: NonNegFloat | None = None
    water_percent: NonNegFloat | None = None
    exceeded: bool = False
    summary: str | None = Field(default=None, description="Short text for the Budget column, e.g. '42% CO2e'.")


class Ledger(_Model):
    """Operator bookkeeping that makes the status a ledger across restarts.

    `counters` holds the last counter value seen per metric series (so a restart resumes from
    it rather than double counting); `totals` holds accumulated quantities by name (J, s, g, L).
    """

    observed_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    counters: dict[str, float] | None = None
    totals: dict[str, float] | None = None


Phase = Literal["development", "training", "inference"]


class FootprintStatus(_Model):
    phase: Phase | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: NonNegInt | None = None
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    last_updated: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    gpus: NonNegInt | None = Field(default=None, description="GPUs currently (or last) allocated.")
    gpu_models: list[str] | None = None
    gpu_hours: NonNegFloat = 0.0
    pods: NonNegInt | None = None
    energy: EnergyStatus | None = None
    carbon: CarbonStatus | None = None
    water: WaterStatus | None = None
    power: PowerStatus | None = None
    factors: FactorsStatus | None = None
    budget: BudgetStatus | None = None
    ledger: Ledger | None = None


class TrainingRunStatus(FootprintStatus):
    pass


class InferenceServiceStatus(FootprintStatus):
    inference: InferenceStatus | None = None


class ObjectMeta(BaseModel):
    """The subset of metadata the models need; the API server owns the rest."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class TrainingRun(_Model):
    api_version: Literal["mlfootprint.io/v1alpha1"] = API_VERSION
    kind: Literal["TrainingRun"] = "TrainingRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TrainingRunSpec
    status: TrainingRunStatus | None = None


class InferenceService(_Model):
    api_version: Literal["mlfootprint.io/v1alpha1"] = API_VERSION
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None

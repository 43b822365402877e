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
PosFloat = Annotated[float, Field(gt=0)]


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
    """Limits that set the BudgetExceeded condition and post an Event when passed (each > 0)."""

    co2e_kg: PosFloat | None = Field(default=None, description="Total CO2e budget in kg.")
    energy_k_wh: PosFloat | None = Field(
        default=None, alias="energyKWh", description="Facility energy budget in kWh."
    )
    water_l: PosFloat | None = Field(default=None, description="Total water budget in litres.")


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
    embodied_gpu_kg: NonNegFloat | None = Field(
        default=None, description="Embodied CO2e share of the GPUs held (each over the GPU lifetime), kg."
    )
    embodied_host_kg: NonNegFloat | None = Field(
        default=None,
        description="Embodied CO2e share of the GPU nodes' hosts (fraction of the node's GPUs held x time, over the host lifetime), kg.",
    )
    total_kg: NonNegFloat = Field(default=0.0, description="Operational (location) + embodied, kg.")
    total_tonnes: NonNegFloat = Field(default=0.0, description="total_kg / 1000 (tCO2e column).")


class WaterStatus(_Model):
    onsite_l: NonNegFloat = Field(default=0.0, description="On-site (cooling) water consumption, L.")
    offsite_l: NonNegFloat = Field(default=0.0, description="Off-site (electricity generation) water, L.")
    embodied_l: NonNegFloat = Field(default=0.0, description="Embodied (manufacturing) water share, L.")
    embodied_gpu_l: NonNegFloat | None = Field(default=None, description="Embodied water share of the GPUs, L.")
    embodied_host_l: NonNegFloat | None = Field(default=None, description="Embodied water share of the hosts, L.")
    total_l: NonNegFloat = Field(default=0.0, description="On-site + off-site + embodied, L.")


class PowerStatus(_Model):
    avg_w: NonNegFloat = Field(default=0.0, description=(
        "Average total GPU power of the run while it held its GPUs, W: GPU energy / (GPU device-seconds held / GPUs), "
        "both on the exporters' measurement clock."))
    peak_w: NonNegFloat = Field(default=0.0, description="Peak sampled GPU power, W.")
    min_w: NonNegFloat = Field(default=0.0, description="Minimum sampled GPU power, W.")
    swings: NonNegInt = Field(default=0, description="Power swings larger than the configured fraction.")
    p50_w: NonNegFloat | None = Field(
        default=None, description="Median GPU power per GPU, W (time-weighted, from the exporters' power histograms)."
    )
    p90_w: NonNegFloat | None = Field(default=None, description="90th percentile of GPU power per GPU, W.")
    p99_w: NonNegFloat | None = Field(default=None, description="99th percentile of GPU power per GPU, W.")
    limit_w: NonNegFloat | None = Field(default=None, description="Mean power limit of the GPUs held, W per GPU.")


class BreakevenStatus(_Model):
    inferences: NonNegFloat | None = Field(
        default=None, description="Inferences needed for inference CO2e to equal the model's training footprint."
    )
    progress: NonNegFloat | None = Field(default=None, description="Inferences served / breakeven (fraction).")
    progress_percent: NonNegFloat | None = Field(default=None, description="progress x 100.")
    basis: str | None = Field(default=None, description="What the breakeven compares, e.g. training+development.")


class WorkloadModelStatus(_Model):
    """e(Tin, Tout) = a0*Tin + a1*Tout + a2*Tin*Tout, GPU joules per request, fitted from the
    service's interval aggregates (METHODOLOGY §5; docs/methodology.md for its limits)."""

    a0: float = Field(description="GPU J per input token.")
    a1: float = Field(description="GPU J per output token.")
    a2: float = Field(description="GPU J per (input x output) token.")
    r2: float = Field(description="Centred R², comparable with the published 0.96-0.98.")
    intervals: NonNegInt = Field(description="Intervals behind the fit (n).")
    fitted_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class InferenceStatus(_Model):
    requests: NonNegInt = 0
    input_tokens: NonNegInt = 0
    output_tokens: NonNegInt = 0
    joules_per_token: NonNegFloat | None = Field(default=None, description="Facility J (GPU + host, x PUE) per output token.")
    joules_per_request: NonNegFloat | None = Field(default=None, description="Facility J per request.")
    gpu_joules_per_token: NonNegFloat | None = Field(
        default=None, description="GPU J per output token (comparable with GPU-only published figures)."
    )
    gpu_joules_per_request: NonNegFloat | None = Field(default=None, description="GPU J per request (response).")
    k_wh_per1k_requests: NonNegFloat | None = Field(
        default=None, alias="kWhPer1kRequests", description="Facility kWh per 1,000 requests (the 'Power hungry processing' unit)."
    )
    co2e_g_per1k_requests: NonNegFloat | None = Field(
        default=None, alias="co2eGPer1kRequests", description="gCO2e per 1,000 requests."
    )
    breakeven: BreakevenStatus | None = None
    workload_model: WorkloadModelStatus | None = None


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
    embodied_nodes: list[str] | None = Field(
        default=None, description="Node bills of materials the embodied shares came from (presets or the factors' own)."
    )
    source: FactorsSource | None = None


class PowerCapStatus(_Model):
    """Advice only (nothing is capped): the GPU power cap that would have saved the most
    energy within the time budget, from the run's power distribution and a cap curve."""

    status: Literal["recommend", "no_benefit", "no_curve"]
    power_limit_w: NonNegFloat = Field(description="The GPUs' current power limit, W.")
    recommended_cap_w: NonNegFloat | None = Field(default=None, description="Recommended cap, W per GPU.")
    energy_saved_pct: NonNegFloat = Field(default=0.0, description="Estimated GPU energy saved, %.")
    time_added_pct: NonNegFloat = Field(default=0.0, description="Estimated run time added, %.")
    co2e_saved_kg: NonNegFloat | None = Field(default=None, description="Estimated operational CO2e saved so far, kg.")
    fraction_above_cap: NonNegFloat = Field(default=0.0, description="Share of the time the GPUs drew more than the cap.")
    curve: str | None = Field(default=None, description="Cap curve used.")
    transferred: bool = Field(default=False, description="The curve was measured on another GPU (scaled by power limit).")
    reason: str = ""


class BudgetStatus(_Model):
    co2e_percent: NonNegFloat | None = None
    energy_percent: NonNegFloat | None = None
    water_percent: NonNegFloat | None = None
    exceeded: bool = False
    summary: str | None = Field(default=None, description="Short text for the Budget column, e.g. '42% CO2e'.")


class WorkloadStatsLedger(_Model):
    """Running sums of the weighted least-squares fit of e(Tin, Tout) (accounting.workload_model.WorkloadStats;
    ``intervals`` is its ``n``: a key named ``n`` would be a boolean to YAML 1.1 parsers)."""

    intervals: NonNegInt = 0
    sw: NonNegFloat = 0.0
    swy: float = 0.0
    swyy: NonNegFloat = 0.0
    swx: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    swxx: list[float] = Field(default_factory=lambda: [0.0] * 6)
    swxy: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])


class LedgerTotals(_Model):
    """Accumulated quantities of the run at full precision (the figures above are rounded).
    Units are in the names: J, g (CO2e), L, s (device-seconds or wall seconds), W."""

    gpu_j: NonNegFloat = Field(default=0.0, description="GPU energy, J.")
    cpu_j: NonNegFloat = Field(default=0.0, description="Host CPU energy, J.")
    dram_j: NonNegFloat = Field(default=0.0, description="Host DRAM energy, J.")
    it_j: NonNegFloat = Field(default=0.0, description="IT energy (GPU + host), J.")
    facility_j: NonNegFloat = Field(default=0.0, description="IT energy x PUE, J.")
    co2e_op_g: NonNegFloat = Field(default=0.0, description="Location-based operational CO2e, g.")
    co2e_market_g: NonNegFloat | None = Field(default=None, description="Market-based operational CO2e, g.")
    co2e_emb_g: NonNegFloat = Field(default=0.0, description="Embodied CO2e share, g.")
    water_on_l: NonNegFloat = Field(default=0.0, description="On-site water, L.")
    water_off_l: NonNegFloat = Field(default=0.0, description="Off-site water, L.")
    water_emb_l: NonNegFloat = Field(default=0.0, description="Embodied water share, L.")
    alloc_s: NonNegFloat = Field(default=0.0, description="GPU device-seconds held.")
    alloc_s_by_model: dict[str, NonNegFloat] | None = Field(default=None, description="GPU device-seconds held per GPU model.")
    active_s: NonNegFloat = Field(default=0.0, description="Wall seconds of intervals with GPU energy.")
    held_s: NonNegFloat = Field(default=0.0, description="Seconds the GPUs were held, on the exporters' clock (avgW denominator).")
    swings: NonNegFloat = Field(default=0.0, description="Power swings.")
    requests: NonNegFloat = Field(default=0.0, description="Requests served.")
    tokens_in: NonNegFloat = Field(default=0.0, description="Input (prompt) tokens.")
    tokens_out: NonNegFloat = Field(default=0.0, description="Output (generated) tokens.")
    peak_w: NonNegFloat | None = Field(default=None, description="Highest attributed GPU power sampled, W.")
    min_w: NonNegFloat | None = Field(default=None, description="Lowest attributed GPU power sampled, W.")
    workload_seen: NonNegFloat | None = Field(default=None, description="1 once the workloadRef object was seen.")
    co2e_emb_gpu_g: NonNegFloat = Field(default=0.0, description="Embodied CO2e share of the GPUs, g.")
    co2e_emb_host_g: NonNegFloat = Field(default=0.0, description="Embodied CO2e share of the hosts, g.")
    water_emb_gpu_l: NonNegFloat = Field(default=0.0, description="Embodied water share of the GPUs, L.")
    water_emb_host_l: NonNegFloat = Field(default=0.0, description="Embodied water share of the hosts, L.")
    power_s: list[NonNegFloat] | None = Field(
        default=None, description="Seconds of GPU power at or below each power-ratio bound (cumulative; the run's histogram)."
    )
    power_limit_s: NonNegFloat = Field(default=0.0, description="Integral of the GPUs' power limit over those seconds, W·s.")
    workload: WorkloadStatsLedger | None = Field(
        default=None, description="Sufficient statistics of the per-request energy model (InferenceService)."
    )


class SeriesCounters(_Model):
    """Last counter values of one container as its exporter reported them."""

    node: str | None = Field(default=None, description="Node of the exporter.")
    start: float | None = Field(
        default=None, description="The exporter's mlfootprint_pod_start_time_seconds: the counters' identity."
    )
    gpu_j: NonNegFloat = 0.0
    cpu_j: NonNegFloat = 0.0
    dram_j: NonNegFloat = 0.0
    swings: NonNegFloat = 0.0
    alloc_s: dict[str, NonNegFloat] = Field(default_factory=dict, description="GPU model -> device-seconds.")
    gpus: NonNegInt = Field(default=0, description="GPU series of the container.")
    power_s: list[NonNegFloat] | None = Field(
        default=None, description="Seconds at or below each power-ratio bound of the exporter's histogram (cumulative)."
    )
    limit_w: NonNegFloat | None = Field(default=None, description="Mean power limit of the GPUs held, W per GPU.")
    read_at: float | None = Field(
        default=None,
        description="Counters without a start (an exporter or operator before 0.2): unix time they were last "
        "read; counters that report a later start are new ones.",
    )


class ServingCounters(_Model):
    """Last values of one serving pod's engine counters, per label set (keyed by a digest)."""

    start: float | None = Field(default=None, description="The engine's process_start_time_seconds, if exposed.")
    restarts: NonNegInt | None = Field(
        default=None,
        description="The pod's container restarts (sum of restartCount) when the counters' level was last "
        "established; without a start time, a drop is an engine restart only if this has risen since.",
    )
    requests: dict[str, NonNegFloat] = Field(default_factory=dict)
    tokens_in: dict[str, NonNegFloat] = Field(default_factory=dict)
    tokens_out: dict[str, NonNegFloat] = Field(default_factory=dict)


class Ledger(_Model):
    """Operator bookkeeping that makes the status a ledger across restarts (bounded: the
    counters of containers that have left are folded into the totals).

    `series` holds the last counter values per container incarnation, `serving` the serving
    engines' counters per pod, `folded` per node the newest counter start folded into the
    totals (an older series that reappears is stale), `totals` the accumulated quantities.
    """

    observed_at: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="Time the counters below were read (the figures are totals up to then).",
    )
    series: dict[str, SeriesCounters] | None = Field(default=None, description="pod/container -> counters.")
    serving: dict[str, ServingCounters] | None = Field(default=None, description="pod -> serving counters.")
    folded: dict[str, float] | None = Field(default=None, description="node -> newest counter start folded.")
    totals: LedgerTotals | None = None
    counters: dict[str, float] | None = Field(
        default=None, description="Deprecated (operator 0.1): per-series counters, migrated on the next refresh."
    )


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
    power_cap: PowerCapStatus | None = None
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
    api_version: Literal["mlfootprint.io/v1alpha1"] = "mlfootprint.io/v1alpha1"  # == API_VERSION
    kind: Literal["TrainingRun"] = "TrainingRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TrainingRunSpec
    status: TrainingRunStatus | None = None


class InferenceService(_Model):
    api_version: Literal["mlfootprint.io/v1alpha1"] = "mlfootprint.io/v1alpha1"  # == API_VERSION
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None

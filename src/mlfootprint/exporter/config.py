"""Typed, layered exporter configuration: defaults -> YAML file -> environment -> flags.

Environment variables are ``MLFOOTPRINT_EXPORTER_<FIELD>`` (e.g.
``MLFOOTPRINT_EXPORTER_GPU_SOURCE=sim``); flags are ``--<field-with-dashes>``; YAML keys are
the field names (``gpu_source: sim``); the layering is :mod:`mlfootprint.settings`, shared
with the operator. Validation errors name where the bad value came from.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlfootprint.settings import Opt, Settings, SettingsError

#: invalid configuration (also raised by the wiring, e.g. an unusable kubeconfig)
ConfigError = SettingsError


class ExporterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    node_name: Annotated[str, Opt(env=("NODE_NAME",))] = Field(
        "", validate_default=True, description="Kubernetes node name for the `node` label (unset: the host name)."
    )
    listen_address: str = Field("0.0.0.0", description="Address the HTTP server (/metrics, /healthz) binds to.")
    port: int = Field(9860, ge=1, le=65535, description="HTTP port for /metrics and /healthz.")
    metrics_level: Literal["node", "pod", "container"] = Field(
        "container", description="Cardinality: node (no per-pod series), pod (containers summed), container."
    )
    gpu_source: Literal["nvml", "dcgm", "sim", "none"] = Field(
        "nvml", description="GPU backend: nvml (nvidia-ml-py), dcgm (node-local dcgm-exporter), sim (simulated), none."
    )
    dcgm_url: str = Field("http://localhost:9400/metrics", description="dcgm-exporter /metrics URL (gpu_source=dcgm).")
    mig_total_slices: int = Field(7, ge=1, le=8, description="Compute slices of a full MIG-capable GPU (7 on A100/H100).")
    sim_gpus: int = Field(8, ge=0, le=64, description="Number of simulated GPUs (gpu_source=sim).")
    sim_gpu_model: str = Field("NVIDIA H100 80GB HBM3", description="Model name of the simulated GPUs.")
    sim_max_power_w: float = Field(700.0, gt=0, description="Power limit of the simulated GPUs, W.")
    sim_seed: int = Field(0, description="Seed of the simulation (same seed and node, same UUIDs and load).")
    sim_default_profile: Literal["training", "inference", "idle", "failing"] = Field(
        "idle", description="Load of simulated GPUs that no pod's annotation sets."
    )
    sim_time_factor: float = Field(
        1.0, gt=0, le=100000, description="Clock acceleration for simulation (1440 runs a day in a minute)."
    )
    host_source: Literal["auto", "rapl", "model", "sim", "none"] = Field(
        "auto", description="Host energy: rapl (powercap), model (estimated from utilisation), sim, auto (rapl else model), none."
    )
    sysfs_root: Path = Field(Path("/sys"), description="sysfs root (powercap zones).")
    procfs_root: Path = Field(Path("/proc"), description="procfs root (/proc/<pid>/cgroup, /proc/stat).")
    cgroup_root: Path = Field(Path("/sys/fs/cgroup"), description="cgroup root (container cpu.stat).")
    host_idle_w_per_cpu: float = Field(0.71, ge=0, description="Model: idle W per logical CPU (Cloud Carbon Footprint).")
    host_max_w_per_cpu: float = Field(4.26, gt=0, description="Model: max W per logical CPU (Cloud Carbon Footprint).")
    host_dram_w_per_gb: float = Field(0.392, ge=0, description="Model: DRAM W per GB (Cloud Carbon Footprint).")
    pod_source: Literal["kubelet", "file", "kubernetes", "none"] = Field(
        "kubelet",
        description="Pods: kubelet (pod-resources gRPC), file or kubernetes (simulated GPU assignment, needs gpu_source=sim), none.",
    )
    pod_resources_dir: Path = Field(
        Path("/var/lib/kubelet/pod-resources"), description="Directory holding the kubelet pod-resources socket (mount the directory)."
    )
    pod_resources_socket: str = Field("kubelet.sock", description="Socket file name inside pod_resources_dir.")
    pod_metadata: Literal["kubernetes", "none"] = Field(
        "none", description="With pod_source=kubelet: read pod UIDs/container IDs from the API server to link GPU processes and cgroups."
    )
    pods_file: Path | None = Field(None, description="YAML list of simulated pods (pod_source=file).")
    kubeconfig: Path | None = Field(None, description="kubeconfig for the API server (default: in-cluster).")
    sample_interval_s: float = Field(0.1, ge=0.01, le=60, description="Power sampling interval, s (sub-second for swings).")
    attribution_interval_s: float = Field(1.0, ge=0.05, le=600, description="Attribution interval, s.")
    swing_fraction: float = Field(0.5, gt=0, le=1, description="A swing is a change larger than this fraction of device max power.")
    swing_window_s: float = Field(1.0, ge=0, description="... within this window, s.")
    idle_policy: Literal["none", "allocation"] = Field(
        "none", description="Idle energy of allocated GPUs: none (stays idle) or allocation (split among holders)."
    )
    ended_pod_grace_s: float = Field(600.0, ge=0, description=(
        "Keep an ended container's final energy visible this long, in wall-clock seconds (also under --sim-time-factor)."))
    state_file: Path | None = Field(
        None,
        description="Checkpoint the counters here every interval (before serving them) so they continue across restarts and the downtime is billed.",
    )
    sim_device_file: Path | None = Field(
        None,
        description="Where the simulated GPUs keep their clock and energy counters, so they keep counting while the exporter is down, "
        "as NVML's do (gpu_source=sim).",
    )
    web_config_file: Path | None = Field(
        None,
        description="Web config (Prometheus exporter-toolkit format): TLS and basic auth for /metrics (docs/exporter.md#securing-the-endpoint).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="Log format.")

    @field_validator("node_name")
    @classmethod
    def _node(cls, value: str) -> str:
        return value or socket.gethostname()

    @field_validator("pod_resources_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # the gRPC target is unix://<dir>/<socket>: a relative directory is not a valid address
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path (the kubelet's pod-resources directory), got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExporterConfig:
        if self.attribution_interval_s < self.sample_interval_s:
            raise ValueError("attribution_interval_s must be >= sample_interval_s")
        if self.sample_interval_s >= self.swing_window_s:
            raise ValueError(
                "sample_interval_s must be shorter than swing_window_s: two samples must fit in one swing "
                "window, or no swing can ever be counted"
            )
        if self.pod_source == "file" and self.pods_file is None:
            raise ValueError("pods_file is required when pod_source=file")
        if self.pod_source in ("file", "kubernetes") and self.gpu_source != "sim":
            raise ValueError(f"pod_source={self.pod_source} assigns simulated GPUs: it needs gpu_source=sim")
        if self.host_idle_w_per_cpu > self.host_max_w_per_cpu:
            raise ValueError("host_idle_w_per_cpu must be <= host_max_w_per_cpu")
        return self


SETTINGS = Settings(ExporterConfig, "exporter")
#: the settings from a YAML file, an environment and flags (by field name; None: not given)
load_config = SETTINGS.load

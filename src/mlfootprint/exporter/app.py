"""Wiring: configuration -> sources -> monitor -> registry (kept apart from the CLI for tests)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client.registry import CollectorRegistry

from mlfootprint.exporter.cgroups import CgroupReader
from mlfootprint.exporter.collector import SnapshotCollector
from mlfootprint.exporter.config import ConfigError, ExporterConfig
from mlfootprint.exporter.gpu_dcgm import DcgmGpuSource
from mlfootprint.exporter.gpu_nvml import NvmlGpuSource
from mlfootprint.exporter.gpu_sim import SimulatedGpuSource
from mlfootprint.exporter.host import ModelHostSource, RaplHostSource, SimHostSource
from mlfootprint.exporter.model import ErrorCounter, GpuSource, HostSource, PodSource
from mlfootprint.exporter.monitor import Clock, Monitor
from mlfootprint.exporter.pods import FilePodSource, KubeletPodSource, KubernetesPods, KubernetesPodSource

log = logging.getLogger(__name__)

#: how long start-up waits for the pod watch cache's first list
POD_CACHE_SYNC_S = 5.0


def build_gpu(cfg: ExporterConfig, errors: ErrorCounter) -> GpuSource | None:
    if cfg.gpu_source == "nvml":
        return NvmlGpuSource(errors, mig_total_slices=cfg.mig_total_slices)
    if cfg.gpu_source == "dcgm":
        return DcgmGpuSource(errors, cfg.dcgm_url)
    if cfg.gpu_source == "sim":
        return SimulatedGpuSource(
            errors,
            count=cfg.sim_gpus,
            model=cfg.sim_gpu_model,
            max_power_w=cfg.sim_max_power_w,
            seed=cfg.sim_seed,
            default_profile=cfg.sim_default_profile,
            node=cfg.node_name,
            device_file=cfg.sim_device_file,
            time_factor=cfg.sim_time_factor,
        )
    return None


def build_host(cfg: ExporterConfig, errors: ErrorCounter) -> HostSource | None:
    model = ModelHostSource(
        errors, cfg.procfs_root, cfg.host_idle_w_per_cpu, cfg.host_max_w_per_cpu, cfg.host_dram_w_per_gb
    )
    if cfg.host_source == "rapl":
        return RaplHostSource(errors, cfg.sysfs_root, cfg.procfs_root)
    if cfg.host_source == "model":
        return model
    if cfg.host_source == "sim":
        return SimHostSource(errors)
    if cfg.host_source == "auto":
        rapl = RaplHostSource(errors, cfg.sysfs_root, cfg.procfs_root)
        return rapl if rapl.available() else model
    return None


def _api_pods(cfg: ExporterConfig) -> KubernetesPods:
    try:
        return KubernetesPods(cfg.node_name, cfg.kubeconfig)
    except Exception as exc:  # an unreadable kubeconfig, or no in-cluster service account
        where = f"--kubeconfig {cfg.kubeconfig}" if cfg.kubeconfig else "--pod-source/--pod-metadata (in-cluster config)"
        raise ConfigError(f"{where}: cannot set up the API client: {exc}") from exc


def build_pods(cfg: ExporterConfig, errors: ErrorCounter, gpu: GpuSource | None) -> PodSource | None:
    def sim_uuids() -> list[str]:
        return list(getattr(gpu, "uuids", []))

    def watch() -> KubernetesPods:
        # The watch cache's own thread reads the API server; metering only reads its snapshot.
        # Like an informer's WaitForCacheSync, give the first list a moment at start-up so the
        # first intervals already see the pods (if the API server is down, metering starts
        # anyway and the pods appear once it answers).
        cache = _api_pods(cfg).start()
        if not cache.wait_synced(POD_CACHE_SYNC_S):
            log.warning("pods not listed from the API server yet; metering starts without them",
                        extra={"node": cfg.node_name, "waited_s": POD_CACHE_SYNC_S})
        return cache

    if cfg.pod_source == "kubelet":
        index = watch() if cfg.pod_metadata == "kubernetes" else None
        return KubeletPodSource(errors, cfg.pod_resources_dir, cfg.pod_resources_socket, pods=index)
    if cfg.pod_source == "file":
        assert cfg.pods_file is not None  # validated
        return FilePodSource(errors, cfg.pods_file, sim_uuids)
    if cfg.pod_source == "kubernetes":
        return KubernetesPodSource(errors, watch(), sim_uuids)
    return None


def build_monitor(cfg: ExporterConfig, errors: ErrorCounter | None = None, clock: Callable[[], float] | None = None) -> Monitor:
    errors = errors or ErrorCounter()
    gpu = build_gpu(cfg, errors)
    real_pods = cfg.pod_source == "kubelet"
    if clock is None:
        # simulated devices run on their own (possibly accelerated, persistent) clock
        clock = gpu.clock if isinstance(gpu, SimulatedGpuSource) else Clock()
    return Monitor(
        node=cfg.node_name,
        errors=errors,
        gpu=gpu,
        host=build_host(cfg, errors),
        pods=build_pods(cfg, errors, gpu),
        cgroups=CgroupReader(cfg.procfs_root, cfg.cgroup_root) if real_pods else None,
        clock=clock,
        idle_policy=cfg.idle_policy,
        swing_fraction=cfg.swing_fraction,
        swing_window_s=cfg.swing_window_s,
        ended_pod_grace_s=cfg.ended_pod_grace_s,
        state_file=cfg.state_file,
        wall_clock=time.time,
        sample_interval_s=cfg.sample_interval_s,
    )


def freshness_check(last_cycle: Callable[[], float], max_age_s: float) -> Callable[[], bool]:
    """/healthz: healthy while the monitor published a snapshot within ``max_age_s`` (real seconds)."""

    def healthy() -> bool:
        return time.monotonic() - last_cycle() <= max_age_s

    return healthy


def build_registry(monitor: Monitor, cfg: ExporterConfig) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SnapshotCollector(lambda: monitor.snapshot, cfg.metrics_level))
    return registry

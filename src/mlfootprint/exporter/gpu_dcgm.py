"""DCGM GPU source: reads a node-local NVIDIA dcgm-exporter's ``/metrics`` text.

Fields (dcgm-exporter default counters): ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ since
boot), ``DCGM_FI_DEV_POWER_USAGE`` (W), ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (0-1),
``DCGM_FI_DEV_POWER_MGMT_LIMIT`` (W, optional). Series are keyed by the ``UUID`` label;
``modelName`` gives the model. Parsed with prometheus_client's text parser.

Limits: dcgm-exporter exposes no per-process utilisation and labels MIG instances by
``GPU_I_ID`` rather than MIG UUID, so shared and MIG GPUs fall back to process presence
unknown (idle) — use the NVML source for those.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from mlfootprint.exporter.model import ErrorCounter, GpuReading, HardwareGpuSource, SourceUnavailable

log = logging.getLogger(__name__)

ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
POWER = "DCGM_FI_DEV_POWER_USAGE"
ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
LIMIT = "DCGM_FI_DEV_POWER_MGMT_LIMIT"


@dataclass
class _Gpu:
    model: str = "unknown"
    energy_mj: float | None = None
    power_w: float | None = None
    active: float | None = None
    limit_w: float | None = None


def parse_dcgm_metrics(text: str) -> dict[str, _Gpu]:
    """UUID -> fields, from dcgm-exporter's exposition text (pure)."""
    gpus: dict[str, _Gpu] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in (ENERGY, POWER, ACTIVE, LIMIT) and family.name not in (ENERGY, POWER, ACTIVE, LIMIT):
                continue
            field_name = name if name in (ENERGY, POWER, ACTIVE, LIMIT) else family.name
            uuid = sample.labels.get("UUID")
            if not uuid or sample.labels.get("GPU_I_ID"):  # MIG series: see module doc
                continue
            gpu = gpus.setdefault(uuid, _Gpu())
            gpu.model = sample.labels.get("modelName", gpu.model)
            value = float(sample.value)
            if field_name == ENERGY:
                gpu.energy_mj = value
            elif field_name == POWER:
                gpu.power_w = value
            elif field_name == ACTIVE:
                gpu.active = value
            else:
                gpu.limit_w = value
    return gpus


class DcgmGpuSource(HardwareGpuSource):
    """dcgm-exporter backend; ``url`` e.g. ``http://localhost:9400/metrics``."""

    name = "dcgm"

    def __init__(self, errors: ErrorCounter, url: str, timeout_s: float = 2.0, power_refresh_s: float = 1.0) -> None:
        self._errors = errors
        self._url = url
        self._timeout_s = timeout_s
        self._refresh_s = power_refresh_s
        self._cache: dict[str, _Gpu] = {}
        self._fetched_at = -1e18

    def _fetch(self) -> dict[str, _Gpu]:
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout_s) as resp:  # noqa: S310 (configured URL)
                text = resp.read().decode("utf-8", "replace")
        except Exception as exc:
            self._errors.inc(self.name, "fetch")
            raise SourceUnavailable(f"dcgm-exporter at {self._url}: {exc}") from exc
        try:
            gpus = parse_dcgm_metrics(text)
        except Exception as exc:
            self._errors.inc(self.name, "parse")
            raise SourceUnavailable(f"dcgm-exporter text did not parse: {exc}") from exc
        self._cache = gpus
        self._fetched_at = time.monotonic()
        return gpus

    def read(self, now_s: float) -> list[GpuReading]:
        gpus = self._fetch()
        return [
            GpuReading(
                uuid=uuid,
                model=g.model,
                timestamp_s=now_s,
                energy_mj=g.energy_mj,
                power_w=g.power_w,
                max_power_w=g.limit_w,
                activity=g.active,
            )
            for uuid, g in sorted(gpus.items())
        ]

    def read_power(self, now_s: float) -> dict[str, float]:
        # dcgm-exporter refreshes its own values every few seconds: don't hammer it.
        if time.monotonic() - self._fetched_at >= self._refresh_s:
            try:
                self._fetch()
            except SourceUnavailable:
                return {}
        return {u: g.power_w for u, g in self._cache.items() if g.power_w is not None}

    def close(self) -> None:
        pass

"""What was measured or planned: energy per interval and component, and device-hours held."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = ["COMPONENTS", "Component", "EnergyInterval", "Usage"]

Component = Literal["gpu", "cpu", "dram", "other"]
COMPONENTS: tuple[Component, ...] = ("gpu", "cpu", "dram", "other")

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, alias_generator=to_camel, populate_by_name=True)


class EnergyInterval(BaseModel):
    """IT energy one component used in [start_s, end_s) (seconds; Unix epoch in practice).
    The energy is taken as spread uniformly over the interval (METHODOLOGY §3)."""

    model_config = _CONFIG

    start_s: float
    end_s: float
    component: Component
    energy_j: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> EnergyInterval:
        if not self.end_s > self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be greater than start_s ({self.start_s})")
        return self


class Usage(BaseModel):
    """Inputs to :func:`mlfootprint.accounting.footprint.compute_footprint`.

    * ``intervals``: timed IT energy, needed when carbon intensity is a time series;
    * ``untimed_energy_j``: IT energy totals by component with no time (e.g. the CLI's
      ``--energy-kwh``); only valid with constant intensities;
    * ``gpu_hours``: GPU-hours *held* (allocated, not utilised), by GPU model;
    * ``host_hours``: host share-hours held (fraction of a host x hours), by host model.
    Embodied impact is computed only when some device-hours are given.
    """

    model_config = _CONFIG

    intervals: list[EnergyInterval] = Field(default_factory=list)
    untimed_energy_j: dict[Component, float] = Field(default_factory=dict)
    gpu_hours: dict[str, float] = Field(default_factory=dict)
    host_hours: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _non_negative(self) -> Usage:
        for name in ("untimed_energy_j", "gpu_hours", "host_hours"):
            for key, value in getattr(self, name).items():
                if value < 0:
                    raise ValueError(f"{name}[{key!r}] must be >= 0, got {value}")
        return self

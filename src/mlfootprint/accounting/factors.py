"""Conversion factors: PUE, carbon and water intensities, embodied impacts and lifetimes.

Every default below is cited (see docs/methodology.md for the full discussion) and every
one can be overridden: the operator builds a :class:`Factors` from the cluster's factor
ConfigMaps (JSON or YAML; snake_case or camelCase keys), the CLI from its flags.
Validation errors name the offending field (pydantic's ``loc``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "DEFAULT_CARBON_INTENSITY_G_PER_KWH",
    "DEFAULT_GPU_EMBODIED",
    "DEFAULT_GPU_LIFETIME_YEARS",
    "DEFAULT_HOST_LIFETIME_YEARS",
    "DEFAULT_PUE",
    "DEFAULT_WUE_OFFSITE_L_PER_KWH",
    "DEFAULT_WUE_ONSITE_L_PER_KWH",
    "EmbodiedSpec",
    "Factors",
    "IntensityInterval",
    "IntensitySeries",
    "OnsiteWaterBasis",
]

OnsiteWaterBasis = Literal["it", "facility"]

# --- Defaults: the reference cluster of METHODOLOGY §3 (one real cluster, Texas, 2024). ---
#: PUE 1.2 (provider quoted 1.1-1.2). METHODOLOGY §3.
DEFAULT_PUE = 1.2
#: 332 gCO2e/kWh, the provider's 2021 location-based figure. METHODOLOGY §3.
DEFAULT_CARBON_INTENSITY_G_PER_KWH = 332.0
#: 0.2 L/kWh on-site (closed-loop cooling, no evaporative towers). METHODOLOGY §3.
DEFAULT_WUE_ONSITE_L_PER_KWH = 0.2
#: 1.29 L/kWh off-site EWIF: Texas generation average, WRI (Reig et al. 2020). METHODOLOGY §3.
DEFAULT_WUE_OFFSITE_L_PER_KWH = 1.29
#: GPUs are refreshed every 3-4 years (HotCarbon'24; BLOOM/H100 accountings use 4). METHODOLOGY §4.
DEFAULT_GPU_LIFETIME_YEARS = 4.0
#: Hosts are kept 5-6 years (HotCarbon'24 "Towards carbon-efficient LLM life cycle"); we take
#: the shorter end, which charges each hour a slightly larger share. METHODOLOGY §4.
DEFAULT_HOST_LIFETIME_YEARS = 5.0


_CONFIG = ConfigDict(
    extra="forbid",
    allow_inf_nan=False,
    frozen=True,
    alias_generator=to_camel,
    populate_by_name=True,
)


class EmbodiedSpec(BaseModel):
    """Manufacturing (embodied) impact of one device over its whole life."""

    model_config = _CONFIG

    co2e_kg: float = Field(ge=0, description="embodied carbon per device, kgCO2e")
    water_l: float = Field(ge=0, description="embodied water per device, litres")
    source: str = Field(default="", description="where the figures come from")


#: Default per-GPU embodied impact (METHODOLOGY §4, from the BLOOM accounting, reused for
#: H100s): 3,700 kgCO2e per 8-GPU server node = 463 kgCO2e per GPU, plus ~0.013 kgCO2e
#: rare-earth mining; water 12.33 L/cm2 of fabricated silicon (TSMC) = 100.4 L per H100,
#: plus 2.2 L rare-earth mining. The node figure already spreads the *whole server* over its
#: 8 GPUs, so there is deliberately no default host entry (adding one would double count).
DEFAULT_GPU_EMBODIED = EmbodiedSpec(
    co2e_kg=round(463.0 + 0.013, 9),
    water_l=round(100.4 + 2.2, 9),
    source=(
        "BLOOM accounting: 3,700 kgCO2e per 8-GPU node (463/GPU) + 0.013 kgCO2e rare-earth; "
        "TSMC 12.33 L/cm2 silicon = 100.4 L per H100 + 2.2 L rare-earth (METHODOLOGY §4)"
    ),
)


class IntensityInterval(BaseModel):
    """One interval [start_s, end_s) of constant carbon intensity (gCO2e/kWh).
    Times are seconds on any common clock (Unix epoch in practice)."""

    model_config = _CONFIG

    start_s: float
    end_s: float
    g_per_kwh: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> IntensityInterval:
        if not self.end_s > self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be greater than start_s ({self.start_s})")
        return self


class IntensitySeries:
    """Vectorised view of sorted, non-overlapping intensity intervals (gaps allowed).

    Holds the cumulative integral F(t) = ∫ CI dt (g/kWh·s) and the covered time C(t) at
    strictly increasing breakpoints, both piecewise linear, so that the integral of CI over
    any [a, b] is F(b) - F(a) (evaluated with ``np.interp``) and [a, b] is fully covered
    exactly when C(b) - C(a) = b - a.
    """

    def __init__(self, start_s: npt.ArrayLike, end_s: npt.ArrayLike, g_per_kwh: npt.ArrayLike) -> None:
        s = np.asarray(start_s, dtype=np.float64)
        e = np.asarray(end_s, dtype=np.float64)
        v = np.asarray(g_per_kwh, dtype=np.float64)
        if s.ndim != 1 or s.shape != e.shape or s.shape != v.shape or s.size == 0:
            raise ValueError("intensity series needs equal-length, non-empty 1-D start/end/value arrays")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(e)) and np.all(np.isfinite(v))):
            raise ValueError("intensity series values must be finite")
        if np.any(e <= s):
            raise ValueError("intensity intervals must have end_s > start_s")
        if np.any(v < 0):
            raise ValueError("intensity values must be >= 0")
        if np.any(s[1:] < e[:-1]):
            raise ValueError("intensity intervals must be sorted by start_s and must not overlap")
        xp = np.unique(np.concatenate([s, e]))
        mid = 0.5 * (xp[:-1] + xp[1:])
        k = np.searchsorted(s, mid, side="right") - 1
        kc = np.clip(k, 0, None)
        covered = (k >= 0) & (mid < e[kc])
        seg_s = np.diff(xp)
        self.breakpoints_s = xp
        self.cum_intensity = np.concatenate([[0.0], np.cumsum(np.where(covered, v[kc], 0.0) * seg_s)])
        self.cum_covered_s = np.concatenate([[0.0], np.cumsum(np.where(covered, seg_s, 0.0))])
        self.is_constant_value: float | None = float(v[0]) if np.all(v == v[0]) else None

    @classmethod
    def from_intervals(cls, intervals: list[IntensityInterval]) -> IntensitySeries:
        return cls(
            [i.start_s for i in intervals], [i.end_s for i in intervals], [i.g_per_kwh for i in intervals]
        )

    def integral(self, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """F(t) in (gCO2e/kWh)·s at each time (clamped outside the series)."""
        return np.asarray(np.interp(t_s, self.breakpoints_s, self.cum_intensity), dtype=np.float64)

    def covered(self, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """C(t): seconds covered by the series up to t (clamped outside the series)."""
        return np.asarray(np.interp(t_s, self.breakpoints_s, self.cum_covered_s), dtype=np.float64)


CarbonIntensity = float | list[IntensityInterval]


def _check_series(value: CarbonIntensity | None) -> CarbonIntensity | None:
    if isinstance(value, list):
        if not value:
            raise ValueError("a carbon-intensity series needs at least one interval")
        for prev, cur in zip(value, value[1:], strict=False):
            if cur.start_s < prev.end_s:
                raise ValueError(
                    f"intervals must be sorted and must not overlap: start_s {cur.start_s} < previous end_s {prev.end_s}"
                )
    elif value is not None and value < 0:
        raise ValueError("carbon intensity must be >= 0 gCO2e/kWh")
    return value


class Factors(BaseModel):
    """Every factor used to turn energy and device-hours into a footprint (all auditable).

    ``carbon_intensity_g_per_kwh`` is location-based (grid average): a constant or a series
    of intervals. ``market_carbon_intensity_g_per_kwh`` (contracts, certificates) is optional
    and always reported separately, never mixed into totals (GHG Protocol Scope 2 dual
    reporting; METHODOLOGY §3).
    """

    model_config = _CONFIG

    pue: float = Field(default=DEFAULT_PUE, ge=1.0, description="power usage effectiveness (>= 1)")
    carbon_intensity_g_per_kwh: CarbonIntensity = Field(default=DEFAULT_CARBON_INTENSITY_G_PER_KWH)
    market_carbon_intensity_g_per_kwh: CarbonIntensity | None = None
    wue_onsite_l_per_kwh: float = Field(default=DEFAULT_WUE_ONSITE_L_PER_KWH, ge=0)
    wue_offsite_l_per_kwh: float = Field(default=DEFAULT_WUE_OFFSITE_L_PER_KWH, ge=0)
    onsite_water_basis: OnsiteWaterBasis = "it"
    embodied_gpu: dict[str, EmbodiedSpec] = Field(default_factory=lambda: {"default": DEFAULT_GPU_EMBODIED})
    embodied_host: dict[str, EmbodiedSpec] = Field(default_factory=dict)
    gpu_lifetime_years: float = Field(default=DEFAULT_GPU_LIFETIME_YEARS, gt=0)
    host_lifetime_years: float = Field(default=DEFAULT_HOST_LIFETIME_YEARS, gt=0)
    region: str | None = Field(default=None, description="region preset the defaults came from, if any")
    sources: dict[str, str] = Field(default_factory=dict, description="field -> where its value came from")

    @field_validator("carbon_intensity_g_per_kwh", "market_carbon_intensity_g_per_kwh")
    @classmethod
    def _series_ok(cls, value: CarbonIntensity | None) -> CarbonIntensity | None:
        return _check_series(value)

    def location_series(self) -> IntensitySeries | None:
        """The location-based intensity as a vectorised series, or None when constant."""
        ci = self.carbon_intensity_g_per_kwh
        return IntensitySeries.from_intervals(ci) if isinstance(ci, list) else None

    def embodied_for_gpu(self, model: str) -> EmbodiedSpec:
        """Embodied spec of a GPU model, falling back to the ``default`` entry."""
        return _lookup(self.embodied_gpu, model, "embodied_gpu")

    def embodied_for_host(self, model: str) -> EmbodiedSpec:
        """Embodied spec of a host model, falling back to the ``default`` entry."""
        return _lookup(self.embodied_host, model, "embodied_host")


def _lookup(table: dict[str, EmbodiedSpec], model: str, field: str) -> EmbodiedSpec:
    if model in table:
        return table[model]
    if "default" in table:
        return table["default"]
    raise ValueError(f"{field}: no entry for model {model!r} and no 'default' entry (have: {sorted(table)})")

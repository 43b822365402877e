"""Footprint of a usage under a set of factors: energy, operational carbon and water,
embodied carbon and water (docs/methodology.md has the derivations and sources).

Formulas (E_IT = IT energy in kWh):

* facility energy  E_fac = E_IT * PUE                                    (The Green Grid PUE)
* location carbon  C_op = Σ_intervals E_IT(t) * PUE * CI(t)              (METHODOLOGY §3)
  — energy spread uniformly within each measured interval and split where intensity
  intervals cut it; market-based carbon the same with the market series, kept apart.
* on-site water    W_on = E_IT * WUE_on            (basis "it", The Green Grid WUE)
                   W_on = E_IT * PUE * WUE_on      (basis "facility", one LLM accounting)
* off-site water   W_off = E_IT * PUE * EWIF       (Li et al. 2023, "Making AI less thirsty")
* embodied         M = Σ_devices embodied * held_hours / lifetime_hours  (GSF SCI, METHODOLOGY §4)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from mlfootprint.accounting.factors import CarbonIntensity, Factors, IntensitySeries
from mlfootprint.accounting.inputs import COMPONENTS, Component, Usage
from mlfootprint.accounting.units import HOURS_PER_YEAR, J_PER_KWH

__all__ = [
    "EmbodiedShare",
    "Footprint",
    "compute_footprint",
    "energy_weighted_intensity",
    "samples_co2e_g",
    "samples_energy_j",
]


class EmbodiedShare(BaseModel):
    """Embodied impact charged for the hours one kind of device was held."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "gpu" | "host"
    model: str
    held_hours: float
    lifetime_hours: float
    co2e_g: float
    water_l: float


class Footprint(BaseModel):
    """The result, with the factors used so that every number can be audited.

    ``embodied_*`` are None when no device-hours were given (never a silent zero); totals
    then cover operational impact only and ``notes`` says so. Market-based carbon is
    reported separately and never included in ``total_co2e_g``.
    """

    model_config = ConfigDict(frozen=True)

    energy_it_j: dict[Component, float]
    energy_facility_j: dict[Component, float]
    energy_it_total_j: float
    energy_facility_total_j: float
    operational_co2e_g: float
    operational_market_co2e_g: float | None
    water_onsite_l: float
    water_offsite_l: float
    embodied_co2e_g: float | None
    embodied_water_l: float | None
    embodied: list[EmbodiedShare]
    total_co2e_g: float
    total_water_l: float
    gpu_hours: float
    host_hours: float
    notes: list[str]
    factors: Factors


def energy_weighted_intensity(
    start_s: npt.ArrayLike,
    end_s: npt.ArrayLike,
    energy_j: npt.ArrayLike,
    series: IntensitySeries,
) -> float:
    """Σ_i E_i * mean CI over [start_i, end_i), in J·gCO2e/kWh (divide by J_PER_KWH for g).

    Energy is spread uniformly within each interval, so its carbon is
    E_i / (end_i - start_i) * (F(end_i) - F(start_i)) with F the cumulative intensity
    integral — the exact split of the interval at every intensity boundary, vectorised.
    Raises ValueError when any interval is not fully covered by the series.
    """
    s = np.asarray(start_s, dtype=np.float64)
    e = np.asarray(end_s, dtype=np.float64)
    en = np.asarray(energy_j, dtype=np.float64)
    if s.size == 0:
        return 0.0
    duration = e - s
    if np.any(duration <= 0):
        raise ValueError("energy intervals must have end_s > start_s")
    _require_covered(series, s, e)
    return float(np.sum(en / duration * (series.integral(e) - series.integral(s))))


def _require_covered(series: IntensitySeries, s: npt.NDArray[np.float64], e: npt.NDArray[np.float64]) -> None:
    covered = series.covered(e) - series.covered(s)
    scale = max(1.0, float(np.max(np.abs(series.breakpoints_s))))
    short = (e - s) - covered > 1e-9 * (e - s) + 1e-12 * scale
    if np.any(short):
        i = int(np.argmax(short))
        raise ValueError(
            f"carbon intensity series does not cover energy interval [{s[i]}, {e[i]}) "
            f"(series spans {series.breakpoints_s[0]}..{series.breakpoints_s[-1]}, gaps not allowed)"
        )


def _as_samples(times_s: npt.ArrayLike, power_w: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    t = np.asarray(times_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError("times_s and power_w must be 1-D arrays of equal length")
    if t.size >= 2 and np.any(t[1:] < t[:-1]):
        raise ValueError("times_s must be non-decreasing")
    return t, p


def samples_energy_j(times_s: npt.ArrayLike, power_w: npt.ArrayLike) -> float:
    """Trapezoid-rule energy of (time, watts) samples (METHODOLOGY §2: integrate NVML power)."""
    t, p = _as_samples(times_s, power_w)
    if t.size < 2:
        return 0.0
    return float(0.5 * np.dot(p[1:] + p[:-1], np.diff(t)))


def samples_co2e_g(
    times_s: npt.ArrayLike,
    power_w: npt.ArrayLike,
    series: IntensitySeries,
    *,
    pue: float = 1.0,
) -> float:
    """Location-based gCO2e of a power trace against an intensity series (e.g. hourly).

    Each sample interval [t_i, t_{i+1}) carries the trapezoid energy
    (p_i + p_{i+1}) / 2 * (t_{i+1} - t_i), spread uniformly, so its carbon is
    (p_i + p_{i+1}) / 2 * (F(t_{i+1}) - F(t_i)) * PUE / J_PER_KWH. Vectorised: F is evaluated
    once per sample time; the peak extra memory is about three float64 arrays of n.
    The samples must lie inside the series (checked once: the trace is contiguous).
    """
    t, p = _as_samples(times_s, power_w)
    if pue < 1.0:
        raise ValueError("pue must be >= 1")
    if t.size < 2:
        return 0.0
    _require_covered(series, t[:1], t[-1:])
    f = series.integral(t)
    df = np.diff(f)
    del f
    psum = p[1:] + p[:-1]
    weighted = float(np.dot(psum, df))
    return 0.5 * weighted * pue / J_PER_KWH


def _intensity_carbon_g(
    intensity: CarbonIntensity,
    usage: Usage,
    starts: npt.NDArray[np.float64],
    ends: npt.NDArray[np.float64],
    energies: npt.NDArray[np.float64],
    total_it_j: float,
    pue: float,
    field: str,
) -> float:
    if not isinstance(intensity, list):
        return total_it_j * pue * float(intensity) / J_PER_KWH
    if any(v > 0 for v in usage.untimed_energy_j.values()):
        raise ValueError(f"{field}: a time series needs timed energy intervals, but untimed_energy_j was given")
    series = IntensitySeries.from_intervals(intensity)
    return energy_weighted_intensity(starts, ends, energies, series) * pue / J_PER_KWH


def compute_footprint(usage: Usage, factors: Factors) -> Footprint:
    """Energy, operational carbon (location; market if given), water and embodied impact.

    See the module docstring for the formulas and their sources. Raises ValueError when a
    time-series intensity does not cover the timed energy, when untimed energy is combined
    with a series, or when device-hours name a model with no embodied entry and no default.
    """
    ivs = usage.intervals
    starts = np.fromiter((i.start_s for i in ivs), dtype=np.float64, count=len(ivs))
    ends = np.fromiter((i.end_s for i in ivs), dtype=np.float64, count=len(ivs))
    energies = np.fromiter((i.energy_j for i in ivs), dtype=np.float64, count=len(ivs))
    comp_idx = np.fromiter((COMPONENTS.index(i.component) for i in ivs), dtype=np.int64, count=len(ivs))
    by_comp = np.bincount(comp_idx, weights=energies, minlength=len(COMPONENTS)) if ivs else np.zeros(len(COMPONENTS))
    energy_it_j: dict[Component, float] = {
        c: float(by_comp[k]) + float(usage.untimed_energy_j.get(c, 0.0)) for k, c in enumerate(COMPONENTS)
    }
    total_it_j = sum(energy_it_j.values())
    pue = factors.pue
    energy_fac_j: dict[Component, float] = {c: v * pue for c, v in energy_it_j.items()}
    total_it_kwh = total_it_j / J_PER_KWH

    co2e_g = _intensity_carbon_g(
        factors.carbon_intensity_g_per_kwh, usage, starts, ends, energies, total_it_j, pue,
        "carbon_intensity_g_per_kwh",
    )
    market_g = (
        None
        if factors.market_carbon_intensity_g_per_kwh is None
        else _intensity_carbon_g(
            factors.market_carbon_intensity_g_per_kwh, usage, starts, ends, energies, total_it_j, pue,
            "market_carbon_intensity_g_per_kwh",
        )
    )

    onsite_basis_kwh = total_it_kwh if factors.onsite_water_basis == "it" else total_it_kwh * pue
    water_on_l = onsite_basis_kwh * factors.wue_onsite_l_per_kwh
    water_off_l = total_it_kwh * pue * factors.wue_offsite_l_per_kwh

    notes: list[str] = []
    shares = _embodied_shares(usage, factors)
    if shares:
        emb_g: float | None = sum(s.co2e_g for s in shares)
        emb_l: float | None = sum(s.water_l for s in shares)
    else:
        emb_g = emb_l = None
        notes.append(
            "embodied carbon and water not computed: they are charged per device-hour held, "
            "and no GPU-hours or host-hours were given"
        )
    if factors.market_carbon_intensity_g_per_kwh is not None:
        notes.append("market-based carbon is reported separately and is not included in total_co2e_g")
    return Footprint(
        energy_it_j=energy_it_j,
        energy_facility_j=energy_fac_j,
        energy_it_total_j=total_it_j,
        energy_facility_total_j=total_it_j * pue,
        operational_co2e_g=co2e_g,
        operational_market_co2e_g=market_g,
        water_onsite_l=water_on_l,
        water_offsite_l=water_off_l,
        embodied_co2e_g=emb_g,
        embodied_water_l=emb_l,
        embodied=shares,
        total_co2e_g=co2e_g + (emb_g or 0.0),
        total_water_l=water_on_l + water_off_l + (emb_l or 0.0),
        gpu_hours=float(sum(usage.gpu_hours.values())),
        host_hours=float(sum(usage.host_hours.values())),
        notes=notes,
        factors=factors,
    )


def _embodied_shares(usage: Usage, factors: Factors) -> list[EmbodiedShare]:
    """M = TE * held_hours / lifetime_hours per device kind (GSF SCI, allocation-based)."""
    shares: list[EmbodiedShare] = []
    plan: Sequence[tuple[str, dict[str, float], float]] = (
        ("gpu", usage.gpu_hours, factors.gpu_lifetime_years),
        ("host", usage.host_hours, factors.host_lifetime_years),
    )
    for kind, hours_by_model, lifetime_years in plan:
        lifetime_h = lifetime_years * HOURS_PER_YEAR
        for model, hours in sorted(hours_by_model.items()):
            spec = factors.embodied_for_gpu(model) if kind == "gpu" else factors.embodied_for_host(model)
            frac = hours / lifetime_h
            shares.append(
                EmbodiedShare(
                    kind=kind,
                    model=model,
                    held_hours=hours,
                    lifetime_hours=lifetime_h,
                    co2e_g=spec.co2e_kg * 1000.0 * frac,
                    water_l=spec.water_l * frac,
                )
            )
    return shares

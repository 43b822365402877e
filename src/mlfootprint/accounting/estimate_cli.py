"""`mlfootprint estimate`: offline footprint calculator for a past or planned run.

The JSON output is a stable contract documented in docs/estimate.md. Bad input exits with
status 2 and a message naming the flag and the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any, TextIO

from mlfootprint.accounting.factors import (
    DEFAULT_CARBON_INTENSITY_G_PER_KWH,
    DEFAULT_GPU_EMBODIED,
    DEFAULT_GPU_LIFETIME_YEARS,
    DEFAULT_PUE,
    DEFAULT_WUE_OFFSITE_L_PER_KWH,
    DEFAULT_WUE_ONSITE_L_PER_KWH,
    EmbodiedSpec,
    Factors,
)
from mlfootprint.accounting.footprint import Footprint, compute_footprint
from mlfootprint.accounting.inputs import Usage
from mlfootprint.accounting.presets import UnknownRegionError, list_regions, region_preset
from mlfootprint.accounting.units import J_PER_KWH

HELP = "offline footprint calculator for a past or planned run"
DESCRIPTION = """\
Estimate the energy, operational carbon and water, and embodied (manufacturing) carbon and
water of a past or planned run.

  energy_facility = E_IT * PUE
  operational CO2e = E_IT * PUE * CI                       (location-based)
  water on-site   = E_IT * WUE_on        (--onsite-water-basis it, default; The Green Grid)
                  = E_IT * PUE * WUE_on  (--onsite-water-basis facility)
  water off-site  = E_IT * PUE * EWIF                      (Li et al. 2023)
  embodied        = per-GPU embodied * GPU-hours / (lifetime years * 8760 h)  (GSF SCI)

Defaults are the reference cluster of docs/methodology.md (Texas, 2024): PUE 1.2,
332 gCO2e/kWh, WUE on-site 0.2 L/kWh, EWIF 1.29 L/kWh (WRI, Reig et al. 2020).
--region takes per-country averages from EcoLogits (MPL-2.0). Explicit flags override
the region. Embodied impact needs --gpu-hours; with --energy-kwh alone it is reported as
not computed. JSON keys: docs/estimate.md.

examples:
  mlfootprint estimate --gpu-hours 1000 --gpu-power-w 700
  mlfootprint estimate --energy-kwh 51686 --region FRA --output json
  mlfootprint estimate --energy-kwh 500 --gpu-hours 1000 --onsite-water-basis facility
"""


def _number(flag: str, *, minimum: float = 0.0, strict: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float >= minimum (> minimum when strict)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value < minimum or (strict and value == minimum):
            relation = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g}, got {text!r}")
        return value

    parse.__name__ = flag  # argparse names the type in some messages
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    energy = parser.add_argument_group("energy (one of --energy-kwh, or --gpu-hours with --gpu-power-w)")
    energy.add_argument("--energy-kwh", type=_number("--energy-kwh"), metavar="KWH",
                        help="measured IT energy of the run, kWh (GPU + host; before PUE)")
    energy.add_argument("--gpu-hours", type=_number("--gpu-hours"), metavar="H",
                        help="GPU-hours held by the run (GPUs x wall-clock hours); gives energy with "
                             "--gpu-power-w and enables the embodied share")
    energy.add_argument("--gpu-power-w", type=_number("--gpu-power-w", strict=True), metavar="W",
                        help="average IT power per GPU in watts (include the host share if you want "
                             "it counted); energy = gpu-hours * W / 1000")
    fac = parser.add_argument_group("factors (defaults: reference cluster, docs/methodology.md)")
    fac.add_argument("--region", metavar="CODE",
                     help="country preset (ISO 3166-1 alpha-3, e.g. USA, FRA, DEU; WOR = world): sets the "
                          "carbon intensity and off-site water intensity from EcoLogits' electricity mixes "
                          "(MPL-2.0); see --list-regions")
    fac.add_argument("--list-regions", action="store_true", help="print the region codes and exit")
    fac.add_argument("--pue", type=_number("--pue", minimum=1.0), metavar="PUE",
                     help=f"power usage effectiveness, >= 1 (default {DEFAULT_PUE}, reference cluster)")
    fac.add_argument("--carbon-intensity", type=_number("--carbon-intensity"), metavar="G_PER_KWH",
                     help="location-based grid carbon intensity, gCO2e/kWh (default "
                          f"{DEFAULT_CARBON_INTENSITY_G_PER_KWH:g}, provider's 2021 figure; or from --region)")
    fac.add_argument("--wue-onsite", type=_number("--wue-onsite"), metavar="L_PER_KWH",
                     help=f"on-site water usage effectiveness, L/kWh (default {DEFAULT_WUE_ONSITE_L_PER_KWH:g}, "
                          "closed-loop cooling)")
    fac.add_argument("--wue-offsite", type=_number("--wue-offsite"), metavar="L_PER_KWH",
                     help="off-site water intensity of electricity generation (EWIF), L/kWh (default "
                          f"{DEFAULT_WUE_OFFSITE_L_PER_KWH:g}, Texas average, WRI/Reig et al. 2020; or from --region)")
    fac.add_argument("--onsite-water-basis", choices=("it", "facility"), default=None,
                     help="multiply WUE on-site by IT energy (it, default: The Green Grid's definition) or by "
                          "facility energy (facility: E_IT * PUE, as one published LLM accounting does)")
    emb = parser.add_argument_group("embodied (needs --gpu-hours)")
    emb.add_argument("--embodied-kg-per-gpu", type=_number("--embodied-kg-per-gpu"), metavar="KG",
                     help=f"embodied carbon per GPU over its life, kgCO2e (default {DEFAULT_GPU_EMBODIED.co2e_kg:g}: "
                          "3,700 kg per 8-GPU node + rare-earth mining, BLOOM accounting)")
    emb.add_argument("--embodied-water-l-per-gpu", type=_number("--embodied-water-l-per-gpu"), metavar="L",
                     help=f"embodied water per GPU, litres (default {DEFAULT_GPU_EMBODIED.water_l:g}: "
                          "12.33 L/cm2 of silicon (TSMC) = 100.4 L per H100 + 2.2 L rare-earth)")
    emb.add_argument("--gpu-lifetime-years", type=_number("--gpu-lifetime-years", strict=True), metavar="Y",
                     help=f"GPU service life over which embodied impact is spread, years (default "
                          f"{DEFAULT_GPU_LIFETIME_YEARS:g}; GPUs are refreshed every 3-4 years)")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format (default table)")


class InputError(Exception):
    """Bad or inconsistent flags; str(self) names the flag."""


def build_inputs(args: argparse.Namespace) -> tuple[Usage, Factors]:
    """Turn flags into (Usage, Factors); InputError names the offending flag."""
    if args.energy_kwh is not None and args.gpu_power_w is not None:
        raise InputError("--gpu-power-w: conflicts with --energy-kwh (give measured energy or GPU power, not both)")
    if args.gpu_power_w is not None and args.gpu_hours is None:
        raise InputError("--gpu-power-w: needs --gpu-hours to compute energy")
    if args.energy_kwh is None and args.gpu_hours is None:
        raise InputError("--energy-kwh: missing; give --energy-kwh, or --gpu-hours with --gpu-power-w")
    if args.energy_kwh is None and args.gpu_power_w is None:
        raise InputError("--gpu-power-w: missing; --gpu-hours alone gives no energy (or give --energy-kwh)")
    if args.gpu_hours is None:
        for flag, value in (
            ("--embodied-kg-per-gpu", args.embodied_kg_per_gpu),
            ("--embodied-water-l-per-gpu", args.embodied_water_l_per_gpu),
            ("--gpu-lifetime-years", args.gpu_lifetime_years),
        ):
            if value is not None:
                raise InputError(f"{flag}: needs --gpu-hours (embodied impact is charged per GPU-hour held)")

    energy_kwh = args.energy_kwh if args.energy_kwh is not None else args.gpu_hours * args.gpu_power_w / 1000.0
    usage = Usage(
        untimed_energy_j={"gpu" if args.energy_kwh is None else "other": energy_kwh * J_PER_KWH},
        gpu_hours={"gpu": args.gpu_hours} if args.gpu_hours is not None else {},
    )

    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if args.region is not None:
        try:
            preset = region_preset(args.region)
        except UnknownRegionError as exc:
            raise InputError(f"--region: {exc}") from None
        fields.update(
            region=preset.code,
            carbon_intensity_g_per_kwh=preset.carbon_intensity_g_per_kwh,
            wue_offsite_l_per_kwh=preset.wue_offsite_l_per_kwh,
        )
        world = " (world default: no national figure)" if "electricity-mix-wue-world" in preset.warnings else ""
        sources["carbon_intensity_g_per_kwh"] = f"--region {preset.code}: {preset.source}"
        sources["wue_offsite_l_per_kwh"] = f"--region {preset.code}: {preset.source}{world}"
    for flag, field, value in (
        ("--pue", "pue", args.pue),
        ("--carbon-intensity", "carbon_intensity_g_per_kwh", args.carbon_intensity),
        ("--wue-onsite", "wue_onsite_l_per_kwh", args.wue_onsite),
        ("--wue-offsite", "wue_offsite_l_per_kwh", args.wue_offsite),
        ("--onsite-water-basis", "onsite_water_basis", args.onsite_water_basis),
        ("--gpu-lifetime-years", "gpu_lifetime_years", args.gpu_lifetime_years),
    ):
        if value is not None:
            fields[field] = value
            sources[field] = flag
    if args.embodied_kg_per_gpu is not None or args.embodied_water_l_per_gpu is not None:
        fields["embodied_gpu"] = {
            "default": EmbodiedSpec(
                co2e_kg=DEFAULT_GPU_EMBODIED.co2e_kg if args.embodied_kg_per_gpu is None else args.embodied_kg_per_gpu,
                water_l=DEFAULT_GPU_EMBODIED.water_l
                if args.embodied_water_l_per_gpu is None
                else args.embodied_water_l_per_gpu,
                source="; ".join(
                    [
                        "co2e_kg from --embodied-kg-per-gpu"
                        if args.embodied_kg_per_gpu is not None
                        else "co2e_kg default (BLOOM: 3,700 kg per 8-GPU node + rare-earth)",
                        "water_l from --embodied-water-l-per-gpu"
                        if args.embodied_water_l_per_gpu is not None
                        else "water_l default (TSMC 12.33 L/cm2 silicon + rare-earth)",
                    ]
                ),
            )
        }
    fields["sources"] = sources
    return usage, Factors.model_validate(fields)


def to_contract(fp: Footprint, energy_only: bool) -> dict[str, Any]:
    """The documented JSON contract (docs/estimate.md)."""
    f = fp.factors
    emb = f.embodied_for_gpu("gpu")
    default_source = "default (docs/methodology.md)"
    factor_names = (
        "pue", "carbon_intensity_g_per_kwh", "wue_onsite_l_per_kwh", "wue_offsite_l_per_kwh",
        "onsite_water_basis", "gpu_lifetime_years",
    )
    notes = list(fp.notes)
    if energy_only:
        notes = [n for n in notes if not n.startswith("embodied")]
        notes.insert(0, "embodied carbon and water not computed: give --gpu-hours (embodied impact is "
                        "charged per GPU-hour held); totals cover operational impact only")
    return {
        "energy_it_kwh": fp.energy_it_total_j / J_PER_KWH,
        "energy_facility_kwh": fp.energy_facility_total_j / J_PER_KWH,
        "operational_co2e_kg": fp.operational_co2e_g / 1000.0,
        "water_onsite_l": fp.water_onsite_l,
        "water_offsite_l": fp.water_offsite_l,
        "embodied_co2e_kg": None if fp.embodied_co2e_g is None else fp.embodied_co2e_g / 1000.0,
        "embodied_water_l": fp.embodied_water_l,
        "total_co2e_kg": fp.total_co2e_g / 1000.0,
        "total_water_l": fp.total_water_l,
        "gpu_hours": None if energy_only else fp.gpu_hours,
        "factors": {
            "pue": f.pue,
            "carbon_intensity_g_per_kwh": f.carbon_intensity_g_per_kwh,
            "wue_onsite_l_per_kwh": f.wue_onsite_l_per_kwh,
            "wue_offsite_l_per_kwh": f.wue_offsite_l_per_kwh,
            "onsite_water_basis": f.onsite_water_basis,
            "embodied_kg_per_gpu": emb.co2e_kg,
            "embodied_water_l_per_gpu": emb.water_l,
            "gpu_lifetime_years": f.gpu_lifetime_years,
            "region": f.region,
            "sources": {
                **{name: f.sources.get(name, default_source) for name in factor_names},
                "embodied_kg_per_gpu": emb.source,
                "embodied_water_l_per_gpu": emb.source,
            },
        },
        "notes": notes,
    }


def render_table(doc: dict[str, Any], out: TextIO) -> None:
    def row(label: str, value: str) -> None:
        out.write(f"  {label:<28} {value}\n")

    out.write("Footprint estimate\n")
    row("IT energy", f"{doc['energy_it_kwh']:,.3f} kWh")
    row("facility energy (x PUE)", f"{doc['energy_facility_kwh']:,.3f} kWh")
    row("operational CO2e", f"{doc['operational_co2e_kg']:,.3f} kg")
    row("water on-site", f"{doc['water_onsite_l']:,.3f} L")
    row("water off-site", f"{doc['water_offsite_l']:,.3f} L")
    if doc["embodied_co2e_kg"] is None:
        row("embodied CO2e", "not computed (needs --gpu-hours)")
        row("embodied water", "not computed (needs --gpu-hours)")
    else:
        row("GPU-hours", f"{doc['gpu_hours']:,.3f} h")
        row("embodied CO2e", f"{doc['embodied_co2e_kg']:,.3f} kg")
        row("embodied water", f"{doc['embodied_water_l']:,.3f} L")
    row("total CO2e", f"{doc['total_co2e_kg']:,.3f} kg")
    row("total water", f"{doc['total_water_l']:,.3f} L")
    out.write("Factors\n")
    fac = doc["factors"]
    for key in ("pue", "carbon_intensity_g_per_kwh", "wue_onsite_l_per_kwh", "wue_offsite_l_per_kwh",
                "onsite_water_basis", "embodied_kg_per_gpu", "embodied_water_l_per_gpu", "gpu_lifetime_years"):
        source = fac["sources"].get(key, "")
        row(key, f"{fac[key]}" + (f"  [{source}]" if source else ""))
    if fac["region"]:
        row("region", fac["region"])
    for note in doc["notes"]:
        out.write(f"note: {note}\n")


def run(args: argparse.Namespace) -> int:
    if args.list_regions:
        sys.stdout.write(" ".join(list_regions()) + "\n")
        return 0
    try:
        usage, factors = build_inputs(args)
    except InputError as exc:
        sys.stderr.write(f"mlfootprint estimate: error: {exc}\n")
        return 2
    except ValueError as exc:  # pydantic validation of the assembled factors
        sys.stderr.write(f"mlfootprint estimate: error: {exc}\n")
        return 2
    fp = compute_footprint(usage, factors)
    doc = to_contract(fp, energy_only=args.gpu_hours is None)
    if args.output == "json":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_table(doc, sys.stdout)
    return 0

"""`mlfootprint estimate`: offline footprint calculator for a past or planned run.

Three outputs (JSON contracts in docs/estimate.md):

* a **footprint** (``--energy-kwh`` and/or ``--gpu-hours``), optionally with a **request**
  prediction and the **breakeven** against it (``--per-inference-kwh`` or ``--workload-model``);
* a **request** prediction alone;
* a **node**'s bill of materials and embodied impact over its life (``--node`` alone).

Bad input exits with status 2 and a message naming the flag and the reason.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console, JustifyMethod
from rich.table import Table

from mlfootprint.accounting.embodied import (
    NodeEmbodied,
    UnknownNodeError,
    charge_embodied,
    embodied_specs,
    list_node_presets,
    node_embodied,
    node_preset,
)
from mlfootprint.accounting.equivalents import published_equivalents
from mlfootprint.accounting.factors import (
    DEFAULT_CARBON_INTENSITY_G_PER_KWH,
    DEFAULT_GPU_EMBODIED,
    DEFAULT_GPU_LIFETIME_YEARS,
    DEFAULT_HOST_LIFETIME_YEARS,
    DEFAULT_PUE,
    DEFAULT_WUE_OFFSITE_L_PER_KWH,
    DEFAULT_WUE_ONSITE_L_PER_KWH,
    EmbodiedSpec,
    Factors,
)
from mlfootprint.accounting.footprint import Footprint, compute_footprint
from mlfootprint.accounting.inference import Impact, breakeven
from mlfootprint.accounting.inputs import Usage
from mlfootprint.accounting.presets import UnknownRegionError, list_regions, region_preset
from mlfootprint.accounting.units import J_PER_KWH
from mlfootprint.accounting.workload_model import request_energy_j

HELP = "offline footprint calculator for a past or planned run"
DESCRIPTION = """\
Estimate the energy, operational carbon and water, and embodied (manufacturing) carbon and
water of a past or planned run; a request's energy from a fitted workload model; the
breakeven between a training footprint and a per-inference footprint; a GPU node's embodied
impact from its bill of materials.

  energy_facility = E_IT * PUE
  operational CO2e = E_IT * PUE * CI                       (location-based)
  water on-site   = E_IT * WUE_on        (--onsite-water-basis it, default; The Green Grid)
                  = E_IT * PUE * WUE_on  (--onsite-water-basis facility)
  water off-site  = E_IT * PUE * EWIF                      (Li et al. 2023)
  embodied        = per-GPU embodied * GPU-hours / (GPU life * 8760 h)
                  [+ host embodied * GPU-hours / GPUs per node / (host life * 8760 h), --node]
  request energy  = a0*Tin + a1*Tout + a2*Tin*Tout         (Cambridge routing poster)
  breakeven       = footprint(training) / footprint(one inference)

Published energy figures are often FACILITY energy (PUE already included): give
--energy-basis facility and E_IT = E / PUE is used, so PUE is not applied twice.

Defaults are the reference cluster of docs/methodology.md (Texas, 2024): PUE 1.2,
332 gCO2e/kWh, WUE on-site 0.2 L/kWh, EWIF 1.29 L/kWh (WRI, Reig et al. 2020).
--region takes per-country averages from EcoLogits (MPL-2.0). Explicit flags override
the region. Embodied impact needs --gpu-hours. JSON keys: docs/estimate.md.

examples:
  mlfootprint estimate --gpu-hours 1000 --gpu-power-w 700
  mlfootprint estimate --gpu-hours 1000 --gpu-power-w 700 --node dgx-h100
  mlfootprint estimate --list-nodes
  mlfootprint estimate --node dgx-a100 --output json
  mlfootprint estimate --energy-kwh 59257 --energy-basis facility --per-inference-kwh 1e-4
  mlfootprint estimate --workload-model 0.05,2.0,1e-4 --tokens-in 500 --tokens-out 200
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


def _coefficients(text: str) -> tuple[float, float, float]:
    """argparse type for --workload-model: three finite numbers A0,A1,A2."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"needs three numbers A0,A1,A2 (J per input token, per output token, "
                                         f"per token product), got {text!r}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs three numbers A0,A1,A2, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"coefficients must be finite, got {text!r}")
    return values[0], values[1], values[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    energy = parser.add_argument_group("energy (one of --energy-kwh, or --gpu-hours with --gpu-power-w)")
    energy.add_argument("--energy-kwh", type=_number("--energy-kwh"), metavar="KWH",
                        help="measured energy of the run, kWh (GPU + host); IT energy unless --energy-basis facility")
    energy.add_argument("--energy-basis", choices=("it", "facility"), default=None,
                        help="what --energy-kwh and --per-inference-kwh are: it (default: IT energy, before PUE) or "
                             "facility (PUE already included, as many published figures are: E_IT = E / PUE)")
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
    emb.add_argument("--node", metavar="NAME",
                     help="node preset whose bill of materials gives the per-GPU and host embodied impact "
                          "(with --gpu-hours: both shares charged); alone: print its bill of materials and "
                          "total embodied impact; see --list-nodes")
    emb.add_argument("--list-nodes", action="store_true", help="print the node presets and their embodied totals, exit")
    emb.add_argument("--embodied-kg-per-gpu", type=_number("--embodied-kg-per-gpu"), metavar="KG",
                     help=f"embodied carbon per GPU over its life, kgCO2e (default {DEFAULT_GPU_EMBODIED.co2e_kg:g}: "
                          "3,700 kg per 8-GPU node + rare-earth mining, BLOOM accounting)")
    emb.add_argument("--embodied-water-l-per-gpu", type=_number("--embodied-water-l-per-gpu"), metavar="L",
                     help=f"embodied water per GPU, litres (default {DEFAULT_GPU_EMBODIED.water_l:g}: "
                          "12.33 L/cm2 of silicon (TSMC) = 100.4 L per H100 + 2.2 L rare-earth)")
    emb.add_argument("--gpu-lifetime-years", type=_number("--gpu-lifetime-years", strict=True), metavar="Y",
                     help=f"GPU service life over which embodied impact is spread, years (default "
                          f"{DEFAULT_GPU_LIFETIME_YEARS:g}; GPUs are refreshed every 3-4 years)")
    emb.add_argument("--host-lifetime-years", type=_number("--host-lifetime-years", strict=True), metavar="Y",
                     help=f"host service life, years (default {DEFAULT_HOST_LIFETIME_YEARS:g}; needs --node)")
    inf = parser.add_argument_group("inference (per request, breakeven)")
    inf.add_argument("--per-inference-kwh", type=_number("--per-inference-kwh", strict=True), metavar="KWH",
                     help="energy of one inference, kWh (basis as --energy-basis); with a training footprint "
                          "(--energy-kwh / --gpu-hours) gives the breakeven")
    inf.add_argument("--workload-model", type=_coefficients, metavar="A0,A1,A2",
                     help="fitted e(Tin,Tout) = A0*Tin + A1*Tout + A2*Tin*Tout, joules of IT energy per request "
                          "(status.inference.workloadModel); needs --tokens-in and --tokens-out")
    inf.add_argument("--tokens-in", type=_number("--tokens-in"), metavar="N", help="prompt size, tokens")
    inf.add_argument("--tokens-out", type=_number("--tokens-out"), metavar="N", help="response size, tokens")
    inf.add_argument("--inferences-served", type=_number("--inferences-served"), metavar="N",
                     help="inferences served so far: breakeven progress")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format (default table)")


class InputError(Exception):
    """Bad or inconsistent flags; str(self) names the flag."""


def _has_footprint(args: argparse.Namespace) -> bool:
    return args.energy_kwh is not None or args.gpu_hours is not None


def _has_request(args: argparse.Namespace) -> bool:
    return args.per_inference_kwh is not None or args.workload_model is not None


def _check_modes(args: argparse.Namespace) -> None:
    """Flag combinations that the three outputs accept (InputError names the flag)."""
    if args.per_inference_kwh is not None and args.workload_model is not None:
        raise InputError("--per-inference-kwh: conflicts with --workload-model (give one per-inference energy)")
    if args.workload_model is not None:
        for flag, value in (("--tokens-in", args.tokens_in), ("--tokens-out", args.tokens_out)):
            if value is None:
                raise InputError(f"{flag}: missing; --workload-model predicts a request of given prompt/response sizes")
    else:
        for flag, value in (("--tokens-in", args.tokens_in), ("--tokens-out", args.tokens_out)):
            if value is not None:
                raise InputError(f"{flag}: needs --workload-model")
    if args.energy_basis is not None and args.energy_kwh is None and args.per_inference_kwh is None:
        raise InputError("--energy-basis: applies to --energy-kwh and --per-inference-kwh, and neither was given")
    if args.inferences_served is not None and not (_has_footprint(args) and _has_request(args)):
        raise InputError("--inferences-served: needs a breakeven (a training footprint and a per-inference energy)")
    if args.node is not None:
        for flag, value in (("--embodied-kg-per-gpu", args.embodied_kg_per_gpu),
                            ("--embodied-water-l-per-gpu", args.embodied_water_l_per_gpu)):
            if value is not None:
                raise InputError(f"{flag}: conflicts with --node (the node's bill of materials gives the per-GPU figure)")
    if args.host_lifetime_years is not None and (args.node is None or args.gpu_hours is None):
        raise InputError("--host-lifetime-years: needs --node and --gpu-hours (the host share is charged per node)")
    if not (_has_footprint(args) or _has_request(args) or args.node is not None):
        raise InputError("--energy-kwh: missing; give --energy-kwh, or --gpu-hours with --gpu-power-w "
                         "(or --node, --per-inference-kwh, --workload-model)")


def _node(args: argparse.Namespace) -> NodeEmbodied | None:
    if args.node is None:
        return None
    try:
        return node_embodied(node_preset(args.node))
    except UnknownNodeError as exc:
        raise InputError(f"--node: {exc}; see --list-nodes") from None


def build_factors(args: argparse.Namespace, node: NodeEmbodied | None = None) -> Factors:
    """Factors from the flags (region preset, then explicit flags, then the node's embodied)."""
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
        ("--host-lifetime-years", "host_lifetime_years", args.host_lifetime_years),
    ):
        if value is not None:
            fields[field] = value
            sources[field] = flag
    if node is not None:
        gpu_spec, host_spec = embodied_specs(node)
        fields["embodied_gpu"] = {"default": gpu_spec}
        fields["embodied_host"] = {"default": host_spec}
    elif args.embodied_kg_per_gpu is not None or args.embodied_water_l_per_gpu is not None:
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
    return Factors.model_validate(fields)


def _it_kwh(energy_kwh: float, basis: str | None, pue: float) -> float:
    return energy_kwh / pue if basis == "facility" else energy_kwh


def build_inputs(args: argparse.Namespace, node: NodeEmbodied | None = None) -> tuple[Usage, Factors]:
    """Turn the footprint flags into (Usage, Factors); InputError names the offending flag."""
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
    factors = build_factors(args, node)
    if args.energy_kwh is not None:
        energy_kwh = _it_kwh(args.energy_kwh, args.energy_basis, factors.pue)
    else:
        energy_kwh = args.gpu_hours * args.gpu_power_w / 1000.0
    gpu_hours = {"gpu": args.gpu_hours} if args.gpu_hours is not None else {}
    host_hours = {"host": args.gpu_hours / node.gpu_count} if node is not None and args.gpu_hours is not None else {}
    usage = Usage(
        untimed_energy_j={"gpu" if args.energy_kwh is None else "other": energy_kwh * J_PER_KWH},
        gpu_hours=gpu_hours,
        host_hours=host_hours,
    )
    return usage, factors


def _part_doc(part: Any) -> dict[str, Any]:
    return {"co2e_kg": part.co2e_kg, "water_l": part.water_l, "lines_co2e_kg": dict(part.lines_co2e_kg), "source": part.source}


def node_doc(node: NodeEmbodied) -> dict[str, Any]:
    """The node output: its bill of materials and embodied impact over its whole life."""
    spec = node_preset(node.node)
    return {
        "node": {
            "name": spec.name,
            "description": spec.description,
            "gpu_model": spec.gpu_model,
            "gpu_count": spec.gpu_count,
            "bill_of_materials": spec.model_dump(by_alias=True, include={"gpu", "host"}),
            "sources": list(spec.sources),
        },
        "node_embodied_co2e_kg": node.node_co2e_kg,
        "node_embodied_water_l": node.node_water_l,
        "gpu_embodied_each": _part_doc(node.gpu_each),
        "gpu_embodied_total_co2e_kg": node.gpu_total_co2e_kg,
        "gpu_embodied_total_water_l": node.gpu_total_water_l,
        "host_embodied": _part_doc(node.host),
        "notes": [
            (
                "embodied water covers fabricated logic silicon (12.33 L/cm2) and rare-earth mining only: "
                "memory, SSD and boards have no per-unit water factor here, so it is a lower bound"
            ),
        ],
    }


def _impact_doc(fp: Footprint) -> Impact:
    return Impact(energy_j=fp.energy_facility_total_j, co2e_g=fp.total_co2e_g, water_l=fp.total_water_l)


def request_doc(args: argparse.Namespace, factors: Factors) -> tuple[dict[str, Any], Footprint]:
    """One request's energy (IT, facility), operational CO2e and water."""
    if args.workload_model is not None:
        a0, a1, a2 = args.workload_model
        energy_j = request_energy_j((a0, a1, a2), args.tokens_in, args.tokens_out)
        if energy_j < 0:
            raise InputError(f"--workload-model: predicts negative energy ({energy_j:g} J) for this request")
        source = f"workload model {a0:g}*Tin + {a1:g}*Tout + {a2:g}*Tin*Tout (IT energy)"
    else:
        energy_j = _it_kwh(args.per_inference_kwh, args.energy_basis, factors.pue) * J_PER_KWH
        source = f"--per-inference-kwh ({args.energy_basis or 'it'} basis)"
    fp = compute_footprint(Usage(untimed_energy_j={"gpu": energy_j}), factors)
    doc = {
        "tokens_in": args.tokens_in,
        "tokens_out": args.tokens_out,
        "energy_it_j": fp.energy_it_total_j,
        "energy_it_kwh": fp.energy_it_total_j / J_PER_KWH,
        "energy_facility_kwh": fp.energy_facility_total_j / J_PER_KWH,
        "co2e_g": fp.operational_co2e_g,
        "water_l": fp.water_onsite_l + fp.water_offsite_l,
        "source": source,
    }
    return doc, fp


def _breakeven_doc(upfront: Footprint, per: Footprint, served: float | None) -> dict[str, Any]:
    be = breakeven(_impact_doc(upfront), _impact_doc(per), inferences_served=None if served is None else int(served))

    def metric(m: Any, scale: float) -> dict[str, Any] | None:
        if m is None:
            return None
        return {
            "upfront": m.upfront * scale,
            "per_inference": m.per_inference * scale,
            "breakeven_inferences": m.breakeven_inferences,
            "progress": m.progress,
        }

    return {
        "energy_facility_kwh": metric(be.energy, 1.0 / J_PER_KWH),
        "co2e_kg": metric(be.carbon, 1.0 / 1000.0),
        "water_l": metric(be.water, 1.0),
        "inferences_served": be.inferences_served,
    }


def to_contract(fp: Footprint, energy_only: bool, *, node: NodeEmbodied | None = None,
                energy_basis: str = "it", gpu_hours: float | None = None) -> dict[str, Any]:
    """The documented footprint JSON contract (docs/estimate.md)."""
    f = fp.factors
    emb = f.embodied_for_gpu("gpu")
    default_source = "default (docs/methodology.md)"
    factor_names = (
        "pue", "carbon_intensity_g_per_kwh", "wue_onsite_l_per_kwh", "wue_offsite_l_per_kwh",
        "onsite_water_basis", "gpu_lifetime_years", "host_lifetime_years",
    )
    notes = list(fp.notes)
    if energy_only:
        notes = [n for n in notes if not n.startswith("embodied")]
        notes.insert(0, "embodied carbon and water not computed: give --gpu-hours (embodied impact is "
                        "charged per GPU-hour held); totals cover operational impact only")
    if energy_basis == "facility":
        notes.append(f"--energy-kwh taken as facility energy (PUE included): IT energy = energy / PUE ({f.pue:g})")
    by_part = None
    if node is not None and gpu_hours is not None:
        c = charge_embodied(node, gpu_hours, gpu_lifetime_years=f.gpu_lifetime_years,
                            host_lifetime_years=f.host_lifetime_years)
        by_part = {
            part.part: {"co2e_kg": part.co2e_kg, "water_l": part.water_l, "held_hours": part.held_hours,
                        "lifetime_hours": part.lifetime_hours}
            for part in (c.gpu, c.host)
        }
    total_kg = fp.total_co2e_g / 1000.0
    doc: dict[str, Any] = {
        "energy_it_kwh": fp.energy_it_total_j / J_PER_KWH,
        "energy_facility_kwh": fp.energy_facility_total_j / J_PER_KWH,
        "energy_basis": energy_basis,
        "operational_co2e_kg": fp.operational_co2e_g / 1000.0,
        "water_onsite_l": fp.water_onsite_l,
        "water_offsite_l": fp.water_offsite_l,
        "embodied_co2e_kg": None if fp.embodied_co2e_g is None else fp.embodied_co2e_g / 1000.0,
        "embodied_water_l": fp.embodied_water_l,
        "embodied_by_part": by_part,
        "total_co2e_kg": total_kg,
        "total_water_l": fp.total_water_l,
        "gpu_hours": None if energy_only else fp.gpu_hours,
        "node": None if node is None else node.node,
        "node_embodied_co2e_kg": None if node is None else node.node_co2e_kg,
        "node_embodied_water_l": None if node is None else node.node_water_l,
        "equivalents": [
            e.model_dump()
            for e in published_equivalents(
                co2e_kg=max(total_kg, 0.0), facility_energy_kwh=fp.energy_facility_total_j / J_PER_KWH,
                water_l=max(fp.total_water_l, 0.0),
            )
        ],
        "request": None,
        "breakeven": None,
        "factors": {
            "pue": f.pue,
            "carbon_intensity_g_per_kwh": f.carbon_intensity_g_per_kwh,
            "wue_onsite_l_per_kwh": f.wue_onsite_l_per_kwh,
            "wue_offsite_l_per_kwh": f.wue_offsite_l_per_kwh,
            "onsite_water_basis": f.onsite_water_basis,
            "embodied_kg_per_gpu": emb.co2e_kg,
            "embodied_water_l_per_gpu": emb.water_l,
            "gpu_lifetime_years": f.gpu_lifetime_years,
            "host_lifetime_years": f.host_lifetime_years,
            "region": f.region,
            "sources": {
                **{name: f.sources.get(name, default_source) for name in factor_names},
                "embodied_kg_per_gpu": emb.source,
                "embodied_water_l_per_gpu": emb.source,
            },
        },
        "notes": notes,
    }
    return doc


def _factors_doc(f: Factors) -> dict[str, Any]:
    return {
        "pue": f.pue, "carbon_intensity_g_per_kwh": f.carbon_intensity_g_per_kwh,
        "wue_onsite_l_per_kwh": f.wue_onsite_l_per_kwh, "wue_offsite_l_per_kwh": f.wue_offsite_l_per_kwh,
        "onsite_water_basis": f.onsite_water_basis, "region": f.region,
    }


class _Printer:
    """rich tables to ``out``: colour only on a terminal and never with $NO_COLOR
    (no-color.org); lines without rich's trailing padding."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        tty = out.isatty() if hasattr(out, "isatty") else False
        self._buf = io.StringIO()
        self._console = Console(file=self._buf, width=120, no_color=bool(os.environ.get("NO_COLOR")) or not tty,
                                force_terminal=tty, highlight=False, emoji=False)

    def print(self, *objects: Any, markup: bool = True) -> None:
        self._console.print(*objects, markup=markup)
        text = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        self._out.write("".join(line.rstrip() + "\n" for line in text.splitlines()))


def _console(out: TextIO) -> _Printer:
    return _Printer(out)


def _section(title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column(min_width=28)
    table.add_column(overflow="fold")
    return table


def render_table(doc: dict[str, Any], out: TextIO) -> None:
    console = _console(out)
    t = _section("Footprint estimate")
    t.add_row("IT energy", f"{doc['energy_it_kwh']:,.3f} kWh")
    t.add_row("facility energy (x PUE)", f"{doc['energy_facility_kwh']:,.3f} kWh")
    t.add_row("operational CO2e", f"{doc['operational_co2e_kg']:,.3f} kg")
    t.add_row("water on-site", f"{doc['water_onsite_l']:,.3f} L")
    t.add_row("water off-site", f"{doc['water_offsite_l']:,.3f} L")
    if doc["embodied_co2e_kg"] is None:
        t.add_row("embodied CO2e", "not computed (needs --gpu-hours)")
        t.add_row("embodied water", "not computed (needs --gpu-hours)")
    else:
        t.add_row("GPU-hours", f"{doc['gpu_hours']:,.3f} h")
        t.add_row("embodied CO2e", f"{doc['embodied_co2e_kg']:,.3f} kg")
        by_part = doc.get("embodied_by_part")
        if by_part:
            t.add_row("  of which GPU / host", f"{by_part['gpu']['co2e_kg']:,.3f} / {by_part['host']['co2e_kg']:,.3f} kg"
                      f"  (node {doc['node']}: {doc['node_embodied_co2e_kg']:,.0f} kg over its life)")
        t.add_row("embodied water", f"{doc['embodied_water_l']:,.3f} L")
    t.add_row("total CO2e", f"{doc['total_co2e_kg']:,.3f} kg")
    t.add_row("total water", f"{doc['total_water_l']:,.3f} L")
    console.print(t)
    if doc.get("request"):
        console.print(_request_table(doc["request"]))
    if doc.get("breakeven"):
        b = _section("Breakeven (inferences for serving to equal this footprint)")
        for key, label in (("energy_facility_kwh", "energy"), ("co2e_kg", "carbon"), ("water_l", "water")):
            m = doc["breakeven"][key]
            if m is not None and m["breakeven_inferences"] is not None:
                progress = "" if m["progress"] is None else f"  (progress {m['progress']:.1%})"
                b.add_row(label, f"{m['breakeven_inferences']:,.0f}{progress}")
        console.print(b)
    e = _section("Equivalents")
    for eq in doc["equivalents"]:
        e.add_row(eq["name"], f"{eq['value']:,.4g} {eq['unit']}  [{eq['factor']:,.5g} {eq['factor_unit']}]")
    console.print(e)
    f = _section("Factors")
    fac = doc["factors"]
    for key in ("pue", "carbon_intensity_g_per_kwh", "wue_onsite_l_per_kwh", "wue_offsite_l_per_kwh",
                "onsite_water_basis", "embodied_kg_per_gpu", "embodied_water_l_per_gpu", "gpu_lifetime_years",
                "host_lifetime_years"):
        source = fac["sources"].get(key, "")
        value = fac[key]
        shown = f"{value:.6g}" if isinstance(value, float) else f"{value}"
        f.add_row(key, shown + (f"  [{source}]" if source else ""))
    if fac["region"]:
        f.add_row("region", fac["region"])
    console.print(f)
    sources = {eq["source"] for eq in doc["equivalents"]}
    console.print("Equivalence sources: " + "; ".join(sorted(sources)), markup=False)
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False)


def _request_table(req: dict[str, Any]) -> Table:
    t = _section("Request")
    if req.get("tokens_in") is not None:
        t.add_row("tokens in / out", f"{req['tokens_in']:,.0f} / {req['tokens_out']:,.0f}")
    t.add_row("IT energy", f"{req['energy_it_j']:,.3f} J ({req['energy_it_kwh']:.3e} kWh)")
    t.add_row("facility energy", f"{req['energy_facility_kwh']:.3e} kWh")
    t.add_row("operational CO2e", f"{req['co2e_g']:,.4f} g")
    t.add_row("water", f"{req['water_l']:,.5f} L")
    t.add_row("source", req["source"])
    return t


def _render_request(req: dict[str, Any], out: TextIO) -> None:
    _console(out).print(_request_table(req))


def render_node(doc: dict[str, Any], out: TextIO) -> None:
    console = _console(out)
    n = doc["node"]
    console.print(f"Node {n['name']}: {n['description']} ({n['gpu_count']} x {n['gpu_model']})", markup=False)
    for label, part, count in (("GPU (one)", doc["gpu_embodied_each"], n["gpu_count"]), ("host", doc["host_embodied"], 1)):
        t = _section(f"{label}: {part['co2e_kg']:,.1f} kgCO2e, {part['water_l']:,.1f} L"
                     + (f"  (x {count} = {part['co2e_kg'] * count:,.1f} kgCO2e)" if count > 1 else ""))
        for line, kg in part["lines_co2e_kg"].items():
            t.add_row(f"  {line}", f"{kg:,.2f} kgCO2e")
        console.print(t)
    console.print(f"Node total over its life: {doc['node_embodied_co2e_kg']:,.1f} kgCO2e, "
                  f"{doc['node_embodied_water_l']:,.1f} L water", markup=False)
    console.print("Sources", markup=False)
    for s in n["sources"]:
        console.print(f"  - {s}", markup=False)
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False)


def _list_nodes(out: TextIO, as_json: bool) -> None:
    rows: list[dict[str, Any]] = []
    for name in list_node_presets():
        e = node_embodied(node_preset(name))
        rows.append({"name": name, "description": node_preset(name).description, "gpu_count": e.gpu_count,
                     "node_embodied_co2e_kg": e.node_co2e_kg, "node_embodied_water_l": e.node_water_l})
    if as_json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    table = Table(box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("node", "left"), ("kgCO2e (life)", "right"), ("water L", "right"), ("GPUs", "right"), ("description", "left"),
    )
    for header, justify in columns:
        table.add_column(header, justify=justify)
    for r in rows:
        table.add_row(r["name"], f"{r['node_embodied_co2e_kg']:,.0f}", f"{r['node_embodied_water_l']:,.0f}",
                      str(r["gpu_count"]), r["description"])
    _console(out).print(table)


def _emit(doc: Any, args: argparse.Namespace, render: Callable[[Any, TextIO], None]) -> None:
    if args.output == "json":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(doc, sys.stdout)


def _run(args: argparse.Namespace) -> int:
    _check_modes(args)
    node = _node(args)
    if not _has_footprint(args) and not _has_request(args):
        assert node is not None  # _check_modes: --node alone
        _emit(node_doc(node), args, render_node)
        return 0
    if not _has_footprint(args):
        factors = build_factors(args)
        req, _ = request_doc(args, factors)
        request_only: dict[str, Any] = {
            "request": req, "factors": _factors_doc(factors),
            "notes": ["a request's operational impact only: no embodied share per request"],
        }
        _emit(request_only, args, lambda d, out: _render_request(d["request"], out))
        return 0
    usage, factors = build_inputs(args, node)
    fp = compute_footprint(usage, factors)
    doc = to_contract(fp, energy_only=args.gpu_hours is None, node=node,
                      energy_basis=args.energy_basis or "it", gpu_hours=args.gpu_hours)
    if _has_request(args):
        req, per_fp = request_doc(args, factors)
        doc["request"] = req
        doc["breakeven"] = _breakeven_doc(fp, per_fp, args.inferences_served)
        doc["notes"].append("breakeven compares facility energy, total CO2e and total water; the per-inference side "
                            "has no embodied share, the upfront side has one when --gpu-hours is given")
    _emit(doc, args, render_table)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_regions:
        sys.stdout.write(" ".join(list_regions()) + "\n")
        return 0
    if args.list_nodes:
        _list_nodes(sys.stdout, args.output == "json")
        return 0
    try:
        return _run(args)
    except InputError as exc:
        sys.stderr.write(f"mlfootprint estimate: error: {exc}\n")
        return 2
    except ValueError as exc:  # pydantic validation of the assembled factors
        sys.stderr.write(f"mlfootprint estimate: error: {exc}\n")
        return 2

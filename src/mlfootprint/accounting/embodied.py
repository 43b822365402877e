"""Embodied carbon and water of a node from its bill of materials, and a usage's share by part.

Node totals (HotCarbon'24 component model, factors in :mod:`mlfootprint.accounting.bom`):

* GPU (one):  Σ dies area_cm² * CPA(node) + memory_GB * f_mem + PCB(area, layers)
              + PDN_ref * TDP / TDP_ref + cooling_ref * TDP / TDP_ref
              + packages * 0.15 kg + interconnect share + rare-earth mining
* host:       CPUs' dies * CPA + packages * 0.15 kg + DRAM_GB * f_mem + SSD_GB * f_ssd
              + mainboard_cm² * f_mainboard + add-in cards (bare PCB) + PSU_W * f_psu
              + rack units * (chassis + fans)
* water:      logic die area * 12.33 L/cm² (+ rare-earth water per GPU); memory, SSD and
              boards have no published per-unit water factor here, so water is a lower bound.

where CPA(node) = (CI_fab * EPA + GPA + MPA) / yield (ACT).

Charging a usage (GSF SCI, allocation-based, METHODOLOGY §4): a workload that held
``gpu_hours`` GPU-hours on a node with ``gpu_count`` GPUs is charged

* GPU part:  gpu_each * gpu_hours / (GPU lifetime h)
* host part: host_total * (gpu_hours / gpu_count) / (host lifetime h)

i.e. the host share is the fraction of the node's GPUs held times wall time. CPU-only pods on
a GPU node are charged no host share (the node exists for its GPUs; its whole host is spread
over the GPU holders), and the share of GPUs nobody holds is charged to nobody, like idle
energy under the default attribution policy (docs/methodology.md §4).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlfootprint.accounting.bom import (
    DEFAULT_COMPONENT_FACTORS,
    ComponentFactors,
    Die,
    FlatPart,
    GpuBom,
    HostBom,
    NodeSpec,
)
from mlfootprint.accounting.factors import EmbodiedSpec
from mlfootprint.accounting.units import HOURS_PER_YEAR

__all__ = [
    "EmbodiedByPart",
    "NodeEmbodied",
    "PartCharge",
    "PartEmbodied",
    "UnknownNodeError",
    "charge_embodied",
    "embodied_specs",
    "gpu_embodied",
    "host_embodied",
    "list_node_presets",
    "node_embodied",
    "node_preset",
    "node_presets",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
_PRESETS_FILE = "data/node_presets.json"


class UnknownNodeError(ValueError):
    """A node name with no preset (and no custom node of that name)."""


class PartEmbodied(BaseModel):
    """Embodied impact of one part over its whole life, with the carbon of each BOM line."""

    model_config = _FROZEN

    co2e_kg: float
    water_l: float
    lines_co2e_kg: dict[str, float]
    source: str = ""


class NodeEmbodied(BaseModel):
    """A node's embodied impact: one GPU, all GPUs, the host, and the node total."""

    model_config = _FROZEN

    node: str
    gpu_model: str
    gpu_count: int
    gpu_each: PartEmbodied
    gpu_total_co2e_kg: float
    gpu_total_water_l: float
    host: PartEmbodied
    node_co2e_kg: float
    node_water_l: float


def _dies(dies: list[Die], f: ComponentFactors) -> tuple[float, float, float]:
    """(carbon kg, area cm², water L) of a list of dies."""
    area = sum(d.area_mm2 / 100.0 * d.count for d in dies)
    kg = sum(d.area_mm2 / 100.0 * d.count * f.logic_kg_per_cm2(d.process) for d in dies)
    return kg, area, area * f.silicon_water_l_per_cm2


def _flat(part: FlatPart) -> PartEmbodied:
    return PartEmbodied(co2e_kg=part.co2e_kg, water_l=part.water_l, lines_co2e_kg={"total": part.co2e_kg}, source=part.source)


def gpu_embodied(part: GpuBom | FlatPart, f: ComponentFactors = DEFAULT_COMPONENT_FACTORS) -> PartEmbodied:
    """Embodied impact of one GPU (see the module docstring for the formula)."""
    if isinstance(part, FlatPart):
        return _flat(part)
    die_kg, _, die_water = _dies(part.dies, f)
    if part.cooling not in f.gpu_cooling:
        raise ValueError(f"gpuCooling: no reference for cooling kind {part.cooling!r}")
    lines = {
        "dies": die_kg,
        "memory": f.memory_kg(part.memory_kind, part.memory_gb),
        "board": f.pcb_kg(part.board_area_cm2, part.board_layers),
        "powerDelivery": f.gpu_power_delivery.scaled_kg(part.tdp_w),
        "cooling": f.gpu_cooling[part.cooling].scaled_kg(part.tdp_w),
        "packaging": part.packages * f.ic_packaging_kg,
        "interconnect": part.interconnect_co2e_kg,
        "rareEarth": part.rare_earth_co2e_kg,
    }
    return PartEmbodied(
        co2e_kg=sum(lines.values()),
        water_l=die_water + part.rare_earth_water_l,
        lines_co2e_kg=lines,
        source="component model (HotCarbon'24; ACT for dies)",
    )


def host_embodied(part: HostBom | FlatPart, f: ComponentFactors = DEFAULT_COMPONENT_FACTORS) -> PartEmbodied:
    """Embodied impact of a node's host (everything but the GPUs)."""
    if isinstance(part, FlatPart):
        return _flat(part)
    cpu_kg, _, cpu_water = _dies(part.cpu_dies, f)
    lines = {
        "cpus": part.cpu_count * cpu_kg,
        "packaging": part.cpu_count * f.ic_packaging_kg,
        "memory": f.memory_kg(part.memory_kind, part.memory_gb),
        "ssd": part.ssd_gb * f.ssd_kg_per_gb,
        "mainboard": part.mainboard_area_cm2 * f.mainboard_kg_per_cm2,
        "addInCards": f.pcb_kg(part.add_in_card_area_cm2, f.pcb_reference_layers),
        "powerSupplies": part.psu_rated_w * f.host_power_supply_kg_per_w,
        "chassis": part.rack_units * f.chassis_kg_per_rack_unit,
        "fans": part.rack_units * f.fans_kg_per_rack_unit,
    }
    return PartEmbodied(
        co2e_kg=sum(lines.values()),
        water_l=part.cpu_count * cpu_water,
        lines_co2e_kg=lines,
        source="component model (HotCarbon'24; ACT for dies; Dell R740 LCA references)",
    )


def node_embodied(spec: NodeSpec, f: ComponentFactors = DEFAULT_COMPONENT_FACTORS) -> NodeEmbodied:
    """A node's embodied carbon and water over its whole life, by part."""
    gpu = gpu_embodied(spec.gpu, f)
    host = host_embodied(spec.host, f)
    gpu_total_kg = gpu.co2e_kg * spec.gpu_count
    gpu_total_l = gpu.water_l * spec.gpu_count
    return NodeEmbodied(
        node=spec.name,
        gpu_model=spec.gpu_model,
        gpu_count=spec.gpu_count,
        gpu_each=gpu,
        gpu_total_co2e_kg=gpu_total_kg,
        gpu_total_water_l=gpu_total_l,
        host=host,
        node_co2e_kg=gpu_total_kg + host.co2e_kg,
        node_water_l=gpu_total_l + host.water_l,
    )


class PartCharge(BaseModel):
    """The share of one part's life a usage is charged for, and its carbon and water."""

    model_config = _FROZEN

    part: Literal["gpu", "host"]
    held_hours: float = Field(description="GPU-hours (gpu) or whole-node hours (host) held")
    lifetime_hours: float
    co2e_kg: float
    water_l: float


class EmbodiedByPart(BaseModel):
    """A usage's embodied impact by part (``gpu``, ``host``) and in total."""

    model_config = _FROZEN

    node: str
    gpu: PartCharge
    host: PartCharge
    co2e_kg: float
    water_l: float

    def to_status(self) -> dict[str, Any]:
        """Proposed ``status.carbon.embodied`` shape: ``{node, gpu: {co2eKg, waterL, heldHours},
        host: {...}, co2eKg, waterL}`` (host heldHours are node-hours = GPU-hours / GPUs)."""

        def part(c: PartCharge) -> dict[str, float]:
            return {"co2eKg": c.co2e_kg, "waterL": c.water_l, "heldHours": c.held_hours}

        return {"node": self.node, "gpu": part(self.gpu), "host": part(self.host),
                "co2eKg": self.co2e_kg, "waterL": self.water_l}


def charge_embodied(
    node: NodeEmbodied, gpu_hours: float, *, gpu_lifetime_years: float, host_lifetime_years: float
) -> EmbodiedByPart:
    """Embodied impact charged to a usage that held ``gpu_hours`` GPU-hours on ``node``.

    GPU part: ``gpu_each * gpu_hours / L_gpu``; host part: ``host * (gpu_hours / gpu_count) /
    L_host`` (host share = fraction of the node's GPUs held x wall time), lifetimes in years of
    8,760 h (GSF SCI, METHODOLOGY §4). Raises ValueError for negative hours or lifetimes <= 0.
    """
    if not gpu_hours >= 0:
        raise ValueError(f"gpu_hours must be >= 0, got {gpu_hours!r}")
    for name, years in (("gpu_lifetime_years", gpu_lifetime_years), ("host_lifetime_years", host_lifetime_years)):
        if not years > 0:
            raise ValueError(f"{name} must be > 0, got {years!r}")
    gpu_life_h = gpu_lifetime_years * HOURS_PER_YEAR
    host_life_h = host_lifetime_years * HOURS_PER_YEAR
    node_hours = gpu_hours / node.gpu_count
    gpu = PartCharge(
        part="gpu",
        held_hours=gpu_hours,
        lifetime_hours=gpu_life_h,
        co2e_kg=node.gpu_each.co2e_kg * gpu_hours / gpu_life_h,
        water_l=node.gpu_each.water_l * gpu_hours / gpu_life_h,
    )
    host = PartCharge(
        part="host",
        held_hours=node_hours,
        lifetime_hours=host_life_h,
        co2e_kg=node.host.co2e_kg * node_hours / host_life_h,
        water_l=node.host.water_l * node_hours / host_life_h,
    )
    return EmbodiedByPart(
        node=node.node, gpu=gpu, host=host, co2e_kg=gpu.co2e_kg + host.co2e_kg, water_l=gpu.water_l + host.water_l
    )


def embodied_specs(node: NodeEmbodied) -> tuple[EmbodiedSpec, EmbodiedSpec]:
    """(per-GPU, per-host) :class:`EmbodiedSpec` entries for :class:`Factors` ``embodied_gpu`` /
    ``embodied_host``, so that :func:`compute_footprint` with ``gpu_hours`` and ``host_hours =
    gpu_hours / gpu_count`` charges exactly what :func:`charge_embodied` does."""
    src = f"node preset {node.node}"
    return (
        EmbodiedSpec(co2e_kg=node.gpu_each.co2e_kg, water_l=node.gpu_each.water_l, source=f"{src}: one GPU"),
        EmbodiedSpec(co2e_kg=node.host.co2e_kg, water_l=node.host.water_l, source=f"{src}: host"),
    )


@lru_cache(maxsize=1)
def node_presets() -> dict[str, NodeSpec]:
    """The packaged node presets (``accounting/data/node_presets.json``), by name."""
    text = resources.files("mlfootprint.accounting").joinpath(_PRESETS_FILE).read_text(encoding="utf-8")
    nodes = [NodeSpec.model_validate(n) for n in json.loads(text)["nodes"]]
    return {n.name: n for n in nodes}


def list_node_presets() -> list[str]:
    return sorted(node_presets())


def node_preset(name: str) -> NodeSpec:
    """The preset called ``name``; UnknownNodeError (listing the names) otherwise."""
    presets = node_presets()
    if name not in presets:
        raise UnknownNodeError(f"unknown node {name!r}: presets are {', '.join(sorted(presets))}")
    return presets[name]

"""Bill of materials of a GPU node and the per-component embodied factors (typed, no I/O).

The component model is the one of the HotCarbon'24 paper "Towards Carbon-efficient LLM Life
Cycle" (Li, Graif and Gupta; METHODOLOGY §4) and of the open calculator its authors published
with it (Cornell S4AI *server_carbon*): memory and SSD per GB, printed circuit boards per cm²,
logic dies by area and process node (the ACT model, Gupta et al., ISCA 2022), power delivery
and cooling scaled by power, and IC packaging per package. Every default below names its
source; docs/methodology.md §4 discusses them and the choices that are ours.

Everything here is a pydantic v2 model with camelCase aliases, ``extra="forbid"`` and no
NaN/inf, so that the operator can read it from a factors ConfigMap (phase B) and a bad value
is refused with an error naming the field. Units are in the names (``_kg``, ``_gb``,
``_cm2``, ``_mm2``, ``_w``, ``_l``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "DEFAULT_COMPONENT_FACTORS",
    "ComponentFactors",
    "CoolingKind",
    "Die",
    "FlatPart",
    "GpuBom",
    "GpuPart",
    "HostBom",
    "HostPart",
    "LogicProcessFactors",
    "MemoryKind",
    "NodeSpec",
    "ProcessNode",
    "ScaledReference",
]



def camel(name: str) -> str:
    """camelCase alias, with ``co2e`` kept whole (``co2e_kg`` -> ``co2eKg``, not ``co2EKg``)."""
    return to_camel(name).replace("Co2E", "Co2e").replace("co2E", "co2e")


_CONFIG = ConfigDict(
    extra="forbid", allow_inf_nan=False, frozen=True, alias_generator=camel, populate_by_name=True
)

MemoryKind = Literal["HBM3e", "HBM3", "HBM2e", "HBM2", "DDR5", "DDR4", "LPDDR5", "GDDR6"]
ProcessNode = Literal["28nm", "20nm", "14nm", "10nm", "8nm", "7nm", "5nm", "3nm"]
#: ``sxm``: module with a cold plate or module heatsink (HGX/DGX); ``pcie``: add-in card with its
#: own heatsink and shroud. The two have different reference LCAs (HotCarbon'24 calculator).
CoolingKind = Literal["sxm", "pcie"]


class LogicProcessFactors(BaseModel):
    """Fab inputs of one logic process node, per cm² of die (ACT, Gupta et al. ISCA 2022)."""

    model_config = _CONFIG

    epa_kwh_per_cm2: float = Field(gt=0, description="fab electricity per cm² of die, kWh")
    gpa_g_per_cm2: float = Field(ge=0, description="fab process gases per cm², gCO2e")
    mpa_g_per_cm2: float = Field(ge=0, description="raw materials per cm², gCO2e")


def _act_node(epa: float, gpa_95: float, gpa_99: float) -> LogicProcessFactors:
    # ACT's default abatement ("97") is the mean of its 95% and 99% gas-abatement tables;
    # materials are 500 g/cm² for every node (ACT logic/materials.json).
    return LogicProcessFactors(epa_kwh_per_cm2=epa, gpa_g_per_cm2=(gpa_95 + gpa_99) / 2.0, mpa_g_per_cm2=500.0)


#: ACT (facebookresearch/ACT, MIT licence) logic/epa.json, gpa_95.json, gpa_99.json and
#: materials.json, as transcribed numbers (the data, not the code).
ACT_LOGIC: dict[ProcessNode, LogicProcessFactors] = {
    "28nm": _act_node(0.90, 175, 100),
    "20nm": _act_node(1.20, 190, 110),
    "14nm": _act_node(1.20, 200, 125),
    "10nm": _act_node(1.475, 240, 150),
    "8nm": _act_node(1.52, 240, 150),
    "7nm": _act_node(2.15, 350, 200),
    "5nm": _act_node(2.75, 430, 225),
    "3nm": _act_node(3.25, 470, 275),
}


class ScaledReference(BaseModel):
    """A reference LCA figure scaled linearly by power: ``kg = co2e_kg * W / at_w``."""

    model_config = _CONFIG

    co2e_kg: float = Field(ge=0)
    at_w: float = Field(gt=0)
    source: str = ""

    def scaled_kg(self, power_w: float) -> float:
        return self.co2e_kg * power_w / self.at_w


_MEMORY_KG_PER_GB: dict[MemoryKind, float] = {
    "HBM3e": 0.24, "HBM3": 0.24, "HBM2e": 0.24, "HBM2": 0.28,
    "DDR5": 0.29, "DDR4": 0.29, "LPDDR5": 0.29, "GDDR6": 0.62,
}

_HOTCARBON = "HotCarbon'24 'Towards Carbon-efficient LLM Life Cycle' (Li, Graif, Gupta) and its server_carbon calculator"

_GPU_COOLING: dict[CoolingKind, ScaledReference] = {
    "sxm": ScaledReference(co2e_kg=6.5, at_w=700.0, source=_HOTCARBON),
    "pcie": ScaledReference(co2e_kg=23.63, at_w=300.0, source=_HOTCARBON),
}


class ComponentFactors(BaseModel):
    """Per-component embodied factors. Defaults and sources (docs/methodology.md §4):

    * memory, kgCO2e/GB: HBM2e/HBM3/HBM3e 0.24, HBM2 0.28, DDR4/LPDDR5 0.29, GDDR6 0.62
      (HotCarbon'24); DDR5 0.29 is *our* assumption (no published per-GB DDR5 factor in that
      source; DDR4's is used);
    * SSD 0.11 kgCO2e/GB (HotCarbon'24: the Dell PowerEdge R740 LCA scaled per GB);
    * bare PCB 0.048 kgCO2e/cm² for a 12-layer board, scaled by layers / 12 (HotCarbon'24
      calculator) — used for GPU boards and add-in cards, whose chips are counted separately;
    * populated host mainboard 175.8 kgCO2e per 1,925 cm² = 0.0913 kgCO2e/cm² (the Dell R740
      LCA mainboard as HotCarbon'24 quotes it) — its small chips are not counted elsewhere;
    * logic dies: ACT carbon per area, ``(CI_fab * EPA + GPA + MPA) / yield`` with the fab in
      Taiwan (583 gCO2e/kWh, ACT location table) and ACT's default yield 0.875;
    * IC packaging 0.15 kgCO2e per package (ACT ``CARBON_PER_IC_PACKAGE``);
    * GPU power delivery 28.75 kgCO2e at 700 W TDP; GPU cooling 6.5 kgCO2e at 700 W (``sxm``)
      or 23.63 kgCO2e at 300 W (``pcie``) (HotCarbon'24 calculator's reference LCAs);
    * host power supplies 28.75 kgCO2e per 1,100 W of rated capacity (the same reference
      power-delivery LCA, per watt of rated board power; applying it to node PSUs is ours);
    * host chassis 34.304 and fans 12.864 kgCO2e for the 2U R740 (HotCarbon'24 calculator),
      i.e. per rack unit 17.152 and 6.432 (scaling by rack units is ours);
    * silicon water 12.33 L per cm² of fabricated logic die (TSMC estimate, METHODOLOGY §4).
    """

    model_config = _CONFIG

    memory_kg_per_gb: dict[MemoryKind, Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: dict(_MEMORY_KG_PER_GB))
    ssd_kg_per_gb: float = Field(default=0.11, ge=0)
    pcb_kg_per_cm2: float = Field(default=0.048, ge=0, description="bare PCB at pcb_reference_layers")
    pcb_reference_layers: int = Field(default=12, ge=1)
    mainboard_kg_per_cm2: float = Field(default=175.8 / 1925.0, ge=0, description="populated host mainboard")
    logic: dict[ProcessNode, LogicProcessFactors] = Field(default_factory=lambda: dict(ACT_LOGIC))
    fab_carbon_intensity_g_per_kwh: float = Field(default=583.0, ge=0)
    fab_yield: float = Field(default=0.875, gt=0, le=1)
    ic_packaging_kg: float = Field(default=0.15, ge=0)
    gpu_power_delivery: ScaledReference = ScaledReference(co2e_kg=28.75, at_w=700.0, source=_HOTCARBON)
    gpu_cooling: dict[CoolingKind, ScaledReference] = Field(default_factory=lambda: dict(_GPU_COOLING))
    host_power_supply_kg_per_w: float = Field(default=28.75 / 1100.0, ge=0)
    chassis_kg_per_rack_unit: float = Field(default=34.304 / 2.0, ge=0)
    fans_kg_per_rack_unit: float = Field(default=12.864 / 2.0, ge=0)
    silicon_water_l_per_cm2: float = Field(default=12.33, ge=0)

    def logic_kg_per_cm2(self, node: ProcessNode) -> float:
        """ACT carbon per area of a logic die, kgCO2e/cm²."""
        if node not in self.logic:
            raise ValueError(f"logic: no factors for process node {node!r} (have: {sorted(self.logic)})")
        p = self.logic[node]
        grams = (self.fab_carbon_intensity_g_per_kwh * p.epa_kwh_per_cm2 + p.gpa_g_per_cm2 + p.mpa_g_per_cm2) / self.fab_yield
        return grams / 1000.0

    def memory_kg(self, kind: MemoryKind, gb: float) -> float:
        if kind not in self.memory_kg_per_gb:
            raise ValueError(f"memoryKgPerGb: no factor for memory kind {kind!r}")
        return self.memory_kg_per_gb[kind] * gb

    def pcb_kg(self, area_cm2: float, layers: int) -> float:
        return self.pcb_kg_per_cm2 * area_cm2 * layers / self.pcb_reference_layers


DEFAULT_COMPONENT_FACTORS = ComponentFactors()


class Die(BaseModel):
    """One logic die (a GPU, a CPU tile or chiplet, an I/O die)."""

    model_config = _CONFIG

    area_mm2: float = Field(gt=0)
    process: ProcessNode
    count: int = Field(default=1, ge=1, description="identical dies of this kind in the package")


class GpuBom(BaseModel):
    """One GPU (module or card), component by component."""

    model_config = _CONFIG

    kind: Literal["components"] = "components"
    dies: list[Die] = Field(min_length=1)
    memory_kind: MemoryKind
    memory_gb: float = Field(ge=0)
    board_area_cm2: float = Field(ge=0)
    board_layers: int = Field(ge=1)
    tdp_w: float = Field(gt=0)
    cooling: CoolingKind
    packages: int = Field(default=1, ge=0, description="IC packages charged at icPackagingKg")
    interconnect_co2e_kg: float = Field(default=0.0, ge=0, description="share of NVLink/NVSwitch per GPU")
    rare_earth_co2e_kg: float = Field(default=0.013, ge=0, description="rare-earth mining (METHODOLOGY §4)")
    rare_earth_water_l: float = Field(default=2.2, ge=0, description="rare-earth mining water (METHODOLOGY §4)")


class HostBom(BaseModel):
    """Everything of a node that is not a GPU, component by component."""

    model_config = _CONFIG

    kind: Literal["components"] = "components"
    cpu_count: int = Field(ge=0)
    cpu_dies: list[Die] = Field(default_factory=list, description="dies of one CPU package")
    memory_kind: MemoryKind
    memory_gb: float = Field(ge=0)
    ssd_gb: float = Field(ge=0)
    mainboard_area_cm2: float = Field(ge=0)
    add_in_card_area_cm2: float = Field(default=0.0, ge=0, description="NICs, controllers, risers (bare PCB)")
    psu_rated_w: float = Field(ge=0, description="rated capacity of all power supplies installed")
    rack_units: float = Field(gt=0)

    @model_validator(mode="after")
    def _cpus_have_dies(self) -> HostBom:
        if self.cpu_count > 0 and not self.cpu_dies:
            raise ValueError("cpuDies: a host with CPUs needs the dies of one CPU package")
        return self


class FlatPart(BaseModel):
    """A part given as published totals instead of a bill of materials."""

    model_config = _CONFIG

    kind: Literal["flat"] = "flat"
    co2e_kg: float = Field(ge=0)
    water_l: float = Field(ge=0)
    source: str = ""


GpuPart = Annotated[GpuBom | FlatPart, Field(discriminator="kind")]
HostPart = Annotated[HostBom | FlatPart, Field(discriminator="kind")]


class NodeSpec(BaseModel):
    """A GPU node: ``gpu_count`` identical GPUs (``gpu`` is *one* of them) and the host."""

    model_config = _CONFIG

    name: str = Field(min_length=1)
    description: str = ""
    gpu_model: str = Field(min_length=1, description="GPU the preset describes, e.g. H100-SXM5-80GB")
    gpu_count: int = Field(ge=1)
    gpu: GpuPart
    host: HostPart
    sources: list[str] = Field(default_factory=list)

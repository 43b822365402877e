"""Bill-of-materials embodied model: hand-computed component lines, presets, charging by part,
the ConfigMap-shaped configuration (selection, overrides, errors naming the field)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlfootprint.accounting.bom import ComponentFactors, Die, FlatPart, GpuBom, HostBom, NodeSpec
from mlfootprint.accounting.embodied import (
    UnknownNodeError,
    charge_embodied,
    embodied_specs,
    gpu_embodied,
    host_embodied,
    list_node_presets,
    node_embodied,
    node_preset,
)
from mlfootprint.accounting.factors import Factors
from mlfootprint.accounting.footprint import compute_footprint
from mlfootprint.accounting.inputs import Usage
from mlfootprint.accounting.node_config import EmbodiedConfig

F = ComponentFactors()


def test_act_carbon_per_area_by_hand() -> None:
    # ACT: (CI_fab * EPA + (GPA95 + GPA99) / 2 + MPA) / yield, Taiwan 583 g/kWh, yield 0.875
    assert F.logic_kg_per_cm2("5nm") == pytest.approx((583 * 2.75 + (430 + 225) / 2 + 500) / 0.875 / 1000)
    assert F.logic_kg_per_cm2("7nm") == pytest.approx((583 * 2.15 + (350 + 200) / 2 + 500) / 0.875 / 1000)
    assert F.logic_kg_per_cm2("5nm") > F.logic_kg_per_cm2("7nm") > F.logic_kg_per_cm2("14nm")


def test_h100_gpu_lines_by_hand() -> None:
    gpu = gpu_embodied(node_preset("dgx-h100").gpu)
    lines = gpu.lines_co2e_kg
    assert lines["dies"] == pytest.approx(8.14 * 2.778)  # 814 mm2 at 5nm: 2,778 g/cm2
    assert lines["memory"] == pytest.approx(80 * 0.24)  # HBM3
    assert lines["board"] == pytest.approx(0.048 * 297.48 * 16 / 12)  # 16-layer board
    assert lines["powerDelivery"] == pytest.approx(28.75)  # reference is the 700 W H100 itself
    assert lines["cooling"] == pytest.approx(6.5)
    assert lines["packaging"] == pytest.approx(0.15)
    assert gpu.co2e_kg == pytest.approx(sum(lines.values()))
    # water: 12.33 L/cm2 of silicon = 100.4 L per H100 (METHODOLOGY §4) + 2.2 L rare earth
    assert gpu.water_l == pytest.approx(100.4 + 2.2, abs=0.05)


def test_pcie_cooling_and_power_scale_with_tdp() -> None:
    l4 = gpu_embodied(node_preset("l4-8gpu").gpu).lines_co2e_kg
    assert l4["cooling"] == pytest.approx(23.63 * 72 / 300)
    assert l4["powerDelivery"] == pytest.approx(28.75 * 72 / 700)
    assert l4["memory"] == pytest.approx(24 * 0.62)  # GDDR6


def test_host_lines_by_hand() -> None:
    host = host_embodied(node_preset("dgx-h100").host).lines_co2e_kg
    assert host["ssd"] == pytest.approx(34_560 * 0.11)
    assert host["memory"] == pytest.approx(2048 * 0.29)
    assert host["mainboard"] == pytest.approx(175.8)  # the R740 LCA mainboard, 1,925 cm2
    assert host["powerSupplies"] == pytest.approx(19_800 * 28.75 / 1100)
    assert host["chassis"] == pytest.approx(8 * 34.304 / 2)
    assert host["fans"] == pytest.approx(8 * 12.864 / 2)
    assert host["cpus"] == pytest.approx(2 * 4 * 4.0 * F.logic_kg_per_cm2("10nm"))


def test_presets_present_with_sources_and_totals() -> None:
    assert {"dgx-h100", "dgx-a100", "l40s-4gpu", "l4-8gpu", "bloom-8gpu"} <= set(list_node_presets())
    for name in list_node_presets():
        spec = node_preset(name)
        assert spec.sources, name
        e = node_embodied(spec)
        assert e.node_co2e_kg == pytest.approx(e.gpu_each.co2e_kg * spec.gpu_count + e.host.co2e_kg)
    # the component model's finding (HotCarbon'24): the host dominates a server's embodied carbon
    h100 = node_embodied(node_preset("dgx-h100"))
    assert h100.host.co2e_kg > h100.gpu_total_co2e_kg
    # the old default kept as a preset: 8 x 463.013 kg, no host part
    bloom = node_embodied(node_preset("bloom-8gpu"))
    assert bloom.node_co2e_kg == pytest.approx(8 * 463.013)
    assert bloom.host.co2e_kg == 0.0
    with pytest.raises(UnknownNodeError, match="dgx-h100"):
        node_preset("dgx-z")


def test_charge_by_part_by_hand() -> None:
    h100 = node_embodied(node_preset("dgx-h100"))
    # 4 GPUs for 10 h = 40 GPU-hours: GPU part 40 / 35,040 h of one GPU's life; host share
    # = half the node's GPUs x 10 h = 5 node-hours of the host's 43,800 h life.
    c = charge_embodied(h100, 40.0, gpu_lifetime_years=4, host_lifetime_years=5)
    assert c.gpu.co2e_kg == pytest.approx(h100.gpu_each.co2e_kg * 40 / 35_040)
    assert c.host.held_hours == pytest.approx(5.0)
    assert c.host.co2e_kg == pytest.approx(h100.host.co2e_kg * 5 / 43_800)
    assert c.co2e_kg == pytest.approx(c.gpu.co2e_kg + c.host.co2e_kg)
    assert c.water_l == pytest.approx(c.gpu.water_l + c.host.water_l)
    with pytest.raises(ValueError, match="gpu_hours"):
        charge_embodied(h100, -1.0, gpu_lifetime_years=4, host_lifetime_years=5)
    with pytest.raises(ValueError, match="host_lifetime_years"):
        charge_embodied(h100, 1.0, gpu_lifetime_years=4, host_lifetime_years=0)


def test_whole_node_for_whole_lives_charges_the_node_total() -> None:
    # Holding all 8 GPUs for the host's whole life with equal lifetimes charges exactly the node.
    e = node_embodied(node_preset("dgx-a100"))
    hours = 8 * 5 * 8760.0
    c = charge_embodied(e, hours, gpu_lifetime_years=5, host_lifetime_years=5)
    assert c.co2e_kg == pytest.approx(e.node_co2e_kg)
    assert c.water_l == pytest.approx(e.node_water_l)


def test_bloom_preset_charges_what_the_old_default_did() -> None:
    bloom = node_embodied(node_preset("bloom-8gpu"))
    c = charge_embodied(bloom, 1.17e6, gpu_lifetime_years=4, host_lifetime_years=5)
    old = compute_footprint(Usage(gpu_hours={"H100": 1.17e6}), Factors())
    assert old.embodied_co2e_g is not None
    assert c.co2e_kg * 1000 == pytest.approx(old.embodied_co2e_g)
    assert c.host.co2e_kg == 0.0


@settings(max_examples=50, deadline=None)
@given(
    gpu_hours=st.floats(0, 1e7),
    gpu_years=st.floats(0.5, 10),
    host_years=st.floats(0.5, 10),
    name=st.sampled_from(["dgx-h100", "dgx-a100", "l40s-4gpu", "l4-8gpu", "bloom-8gpu"]),
)
def test_charge_equals_compute_footprint_with_specs(gpu_hours: float, gpu_years: float, host_years: float, name: str) -> None:
    # The same charge through the existing engine: per-GPU and per-host EmbodiedSpec entries,
    # host_hours = gpu_hours / gpu_count.
    e = node_embodied(node_preset(name))
    gpu_spec, host_spec = embodied_specs(e)
    f = Factors(
        embodied_gpu={"g": gpu_spec}, embodied_host={"h": host_spec},
        gpu_lifetime_years=gpu_years, host_lifetime_years=host_years,
    )
    fp = compute_footprint(Usage(gpu_hours={"g": gpu_hours}, host_hours={"h": gpu_hours / e.gpu_count}), f)
    c = charge_embodied(e, gpu_hours, gpu_lifetime_years=gpu_years, host_lifetime_years=host_years)
    assert fp.embodied_co2e_g == pytest.approx(c.co2e_kg * 1000, rel=1e-9, abs=1e-9)
    assert fp.embodied_water_l == pytest.approx(c.water_l, rel=1e-9, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(a=st.floats(0, 1e5), b=st.floats(0, 1e5))
def test_charge_is_additive_in_hours(a: float, b: float) -> None:
    e = node_embodied(node_preset("dgx-h100"))
    kw = {"gpu_lifetime_years": 4.0, "host_lifetime_years": 5.0}
    assert charge_embodied(e, a + b, **kw).co2e_kg == pytest.approx(
        charge_embodied(e, a, **kw).co2e_kg + charge_embodied(e, b, **kw).co2e_kg, rel=1e-9, abs=1e-12
    )


# ---------------------------------------------------------------- configuration
def test_selection_by_gpu_name_label_and_default() -> None:
    c = EmbodiedConfig()
    assert c.node_for("NVIDIA H100 80GB HBM3") is not None
    assert c.node_for("NVIDIA H100 80GB HBM3").name == "dgx-h100"  # type: ignore[union-attr]
    assert c.node_for("NVIDIA L40S").name == "l40s-4gpu"  # type: ignore[union-attr]
    assert c.node_for("NVIDIA L4").name == "l4-8gpu"  # type: ignore[union-attr]
    assert c.node_for("Tesla T4").name == "bloom-8gpu"  # type: ignore[union-attr]
    labelled = EmbodiedConfig.model_validate(
        {"select": [{"nodeLabels": {"pool": "inference"}, "node": "l4-8gpu"}, {"gpuModel": "h100", "node": "dgx-h100"}],
         "defaultNode": None}
    )
    assert labelled.node_for("NVIDIA H100 80GB HBM3", {"pool": "inference"}).name == "l4-8gpu"  # type: ignore[union-attr]
    assert labelled.node_for("NVIDIA H100 80GB HBM3", {"pool": "train"}).name == "dgx-h100"  # type: ignore[union-attr]
    assert labelled.node_for("Tesla T4") is None


def test_override_any_part_and_component_factor() -> None:
    base = node_embodied(node_preset("dgx-h100"))
    c = EmbodiedConfig.model_validate(
        {"overrides": {"dgx-h100": {"host": {"ssdGb": 0}, "gpu": {"memory_gb": 96}}},
         "componentFactors": {"memoryKgPerGb": {"HBM3": 0.5, "DDR5": 0.29}}}
    )
    e = c.embodied_for("NVIDIA H100 80GB HBM3")
    assert e is not None
    assert e.host.lines_co2e_kg["ssd"] == 0.0
    assert e.gpu_each.lines_co2e_kg["memory"] == pytest.approx(96 * 0.5)
    assert e.host.co2e_kg == pytest.approx(base.host.co2e_kg - 34_560 * 0.11)
    # other parts untouched
    assert e.gpu_each.lines_co2e_kg["dies"] == pytest.approx(base.gpu_each.lines_co2e_kg["dies"])


def test_custom_node_flat_parts() -> None:
    c = EmbodiedConfig.model_validate(
        {"nodes": {"mine": {"name": "mine", "gpuModel": "X1", "gpuCount": 4,
                            "gpu": {"kind": "flat", "co2eKg": 100, "waterL": 10},
                            "host": {"kind": "flat", "co2eKg": 2000, "waterL": 50}}},
         "select": [{"gpuModel": "X1", "node": "mine"}]}
    )
    e = c.embodied_for("Vendor X1")
    assert e is not None and e.node_co2e_kg == pytest.approx(2400.0) and e.node_water_l == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"overrides": {"dgx-h100": {"host": {"ssdGb": -1}}}}, "overrides.dgx-h100.host.ssdGb"),
        ({"overrides": {"dgx-h100": {"gpu": {"cooling": "water"}}}}, "overrides.dgx-h100.gpu.cooling"),
        ({"overrides": {"dgx-h100": {"gpu": {"dies": [{"areaMm2": 800, "process": "6nm"}]}}}}, "process"),
        ({"overrides": {"nope": {}}}, "overrides.nope"),
        ({"select": [{"gpuModel": "X", "node": "nope"}]}, "select[0].node"),
        ({"select": [{"node": "dgx-h100"}]}, "gpuModel or nodeLabels"),
        ({"defaultNode": "nope"}, "defaultNode"),
        ({"componentFactors": {"ssdKgPerGb": -0.1}}, "ssdKgPerGb"),
        ({"componentFactors": {"fabYield": 1.5}}, "fabYield"),
        ({"componentFactors": {"memoryKgPerGb": {"HBM9": 1}}}, "memoryKgPerGb"),
        ({"componentFactors": {"typo": 1}}, "typo"),
        ({"nodes": {"a": {"name": "b", "gpuModel": "x", "gpuCount": 1,
                          "gpu": {"kind": "flat", "co2eKg": 1, "waterL": 1},
                          "host": {"kind": "flat", "co2eKg": 1, "waterL": 1}}}}, "nodes.a.name"),
        ({"nodes": {"a": {"name": "a", "gpuModel": "x", "gpuCount": 0,
                          "gpu": {"kind": "flat", "co2eKg": 1, "waterL": 1},
                          "host": {"kind": "flat", "co2eKg": 1, "waterL": 1}}}}, "gpuCount"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        EmbodiedConfig.model_validate(data)
    assert field in str(info.value)


def test_bom_validation() -> None:
    with pytest.raises(ValidationError, match="cpuDies"):
        HostBom(cpu_count=2, memory_kind="DDR4", memory_gb=1, ssd_gb=0, mainboard_area_cm2=1, psu_rated_w=1, rack_units=1)
    with pytest.raises(ValidationError, match="tdpW"):
        GpuBom.model_validate({"dies": [{"areaMm2": 1, "process": "7nm"}], "memoryKind": "HBM2", "memoryGb": 1,
                               "boardAreaCm2": 1, "boardLayers": 1, "tdpW": 0, "cooling": "sxm"})
    spec = NodeSpec(name="n", gpu_model="m", gpu_count=1, gpu=FlatPart(co2e_kg=1, water_l=0),
                    host=HostBom(cpu_count=1, cpu_dies=[Die(area_mm2=100, process="7nm")], memory_kind="DDR4",
                                 memory_gb=0, ssd_gb=0, mainboard_area_cm2=0, psu_rated_w=0, rack_units=1))
    e = node_embodied(spec)
    assert e.host.water_l == pytest.approx(1.0 * 12.33)  # 1 cm2 of silicon
    assert NodeSpec.model_validate_json(spec.model_dump_json(by_alias=True)) == spec


def test_status_shape_by_part() -> None:
    e = node_embodied(node_preset("dgx-h100"))
    st_ = charge_embodied(e, 80.0, gpu_lifetime_years=4, host_lifetime_years=5).to_status()
    assert set(st_) == {"node", "gpu", "host", "co2eKg", "waterL"}
    assert st_["host"]["heldHours"] == pytest.approx(10.0)
    assert st_["co2eKg"] == pytest.approx(st_["gpu"]["co2eKg"] + st_["host"]["co2eKg"])

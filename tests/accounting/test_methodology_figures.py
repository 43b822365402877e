"""The figures docs/methodology.md quotes for the node presets and for the published
comparison are the ones the code computes and the installed EcoLogits carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from ecologits.impacts.llm import GPU_EMBODIED_IMPACT_GWP, GPU_MEMORY, SERVER_EMBODIED_IMPACT_GWP, SERVER_GPUS

from mlfootprint.accounting.embodied import list_node_presets, node_embodied, node_preset

DOC = (Path(__file__).resolve().parents[2] / "docs" / "methodology.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list_node_presets())
def test_preset_totals_in_the_docs_are_computed(name: str) -> None:
    e = node_embodied(node_preset(name))
    row = next(line for line in DOC.splitlines() if line.startswith(f"| `{name}` |"))
    assert f"**{e.node_co2e_kg:,.0f} kgCO2e**" in row
    assert f"{e.host.co2e_kg:,.1f} kg" in row
    assert f"{e.node_water_l:,.0f} L" in row


def test_ecologits_comparison_figures_match_the_installed_package() -> None:
    assert (SERVER_GPUS, GPU_MEMORY) == (8, 80)
    total = SERVER_EMBODIED_IMPACT_GWP + SERVER_GPUS * GPU_EMBODIED_IMPACT_GWP
    assert f"{total:,} kg (server without GPUs {SERVER_EMBODIED_IMPACT_GWP:,} kg + 8 × {GPU_EMBODIED_IMPACT_GWP} kg" in DOC
    h100 = node_embodied(node_preset("dgx-h100")).node_co2e_kg
    assert f"{round((1 - h100 / total) * 100)} % below" in DOC

"""Docs stay true: configuration examples load with the real parsers, relative links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlfootprint.exporter.config import load_config
from mlfootprint.operator.factors_config import parse_factors

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S)


def test_configuration_exporter_example_loads(tmp_path: Path) -> None:
    [exporter_yaml] = [b for b in _yaml_blocks(ROOT / "docs/configuration.md") if "gpu_source" in b]
    file = tmp_path / "exporter.yaml"
    file.write_text(exporter_yaml)
    cfg = load_config(file=file)
    assert cfg.gpu_source == "nvml" and cfg.metrics_level == "container"
    assert cfg.state_file == Path("/var/lib/mlfootprint/exporter-state.json")


#: ConfigMap key -> the Factors field it sets
_WIRE = {
    "pue": "pue", "marketCarbonIntensity": "market_carbon_intensity_g_per_kwh", "wueOnsite": "wue_onsite_l_per_kwh",
    "wueOffsite": "wue_offsite_l_per_kwh", "onsiteWaterBasis": "onsite_water_basis", "embodiedGpu": "embodied_gpu",
    "embodiedHost": "embodied_host", "gpuLifetimeYears": "gpu_lifetime_years", "hostLifetimeYears": "host_lifetime_years",
    "region": "region",
}
_WIRE = {v: k for k, v in _WIRE.items()}


@pytest.mark.parametrize("doc", ["docs/configuration.md", "docs/factors.md"])
def test_factors_configmap_examples_parse(doc: str) -> None:
    maps = [
        y for y in (yaml.safe_load(b) for b in _yaml_blocks(ROOT / doc))
        if isinstance(y, dict) and y.get("kind") == "ConfigMap" and y["metadata"]["name"] == "mlfootprint-factors"
    ]
    assert maps, f"{doc} has no mlfootprint-factors example"
    for cm in maps:
        layer = parse_factors(cm["data"], source=f"{doc} example")  # raises FactorsError naming the field
        # every key of the example took effect (a field the parser ignored would be a doc lie)
        keys = set(cm["data"]) | set(yaml.safe_load(cm["data"].get("factors.yaml", "")) or {})
        keys.discard("factors.yaml")
        taken = {_WIRE.get(k, k) for k in layer.fields}
        if layer.carbon_intensity is not None:
            taken |= {"carbonIntensity", "region"} & keys
        if layer.embodied is not None:
            taken.add("embodied")
        if layer.cap_curves is not None:
            taken.add("powerCapCurves")
        assert keys <= taken, f"{doc}: example keys without effect: {sorted(keys - taken)}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code (e.g. regex patterns) holds no links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            broken.append(target)
    assert broken == [], f"{path.name}: broken links {broken}"

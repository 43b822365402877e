"""Region presets: per-country average grid carbon intensity and off-site water intensity.

Source: the maintained open-data package **EcoLogits** (GenAI Impact, MPL-2.0,
https://ecologits.ai), file ``ecologits/data/electricity_mixes.json``, one entry per
ISO 3166-1 alpha-3 code (plus ``WOR`` world and ``EEE`` Europe) with

* ``gwp`` — life-cycle greenhouse-gas intensity of the electricity mix, kgCO2e/kWh
  (EcoLogits takes it from ADEME's Base Empreinte®);
* ``wue`` — water consumed by electricity generation, L/kWh (EWIF, the off-site factor of
  Li et al. 2023);
* ``warnings`` — e.g. ``electricity-mix-wue-world`` when the country has no figure of its
  own and the world default is used: we pass such warnings on in the preset.

We read the data file directly (package data via importlib.resources) instead of importing
``ecologits`` (which would pull in its tracers). Why this package and its licence:
docs/licences.md and docs/methodology.md. The only I/O in ``mlfootprint.accounting``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict

from mlfootprint.accounting.factors import Factors

__all__ = ["RegionPreset", "UnknownRegionError", "factors_for_region", "list_regions", "region_preset"]

_PACKAGE = "ecologits"
_DATA_FILE = "data/electricity_mixes.json"
_SOURCE = "EcoLogits electricity_mixes.json (MPL-2.0; GWP from ADEME Base Empreinte)"

#: The few alpha-2 codes people type most; others: use the alpha-3 code.
_ALPHA2_TO_ALPHA3: dict[str, str] = {
    "US": "USA", "GB": "GBR", "UK": "GBR", "FR": "FRA", "DE": "DEU", "IE": "IRL", "NL": "NLD",
    "BE": "BEL", "ES": "ESP", "IT": "ITA", "PT": "PRT", "SE": "SWE", "NO": "NOR", "FI": "FIN",
    "DK": "DNK", "PL": "POL", "CH": "CHE", "AT": "AUT", "CA": "CAN", "MX": "MEX", "BR": "BRA",
    "CN": "CHN", "JP": "JPN", "KR": "KOR", "IN": "IND", "SG": "SGP", "AU": "AUS", "NZ": "NZL",
    "TW": "TWN", "IL": "ISR", "ZA": "ZAF", "AE": "ARE", "SA": "SAU", "IS": "ISL", "CL": "CHL",
}


class UnknownRegionError(ValueError):
    """Raised for a region code with no preset."""


class RegionPreset(BaseModel):
    """Per-country averages for one region code."""

    model_config = ConfigDict(frozen=True)

    code: str
    carbon_intensity_g_per_kwh: float
    wue_offsite_l_per_kwh: float
    warnings: list[str]
    source: str = _SOURCE


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files(_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
    rows = json.loads(text)["electricity_mixes"]
    return {str(r["name"]).upper(): r for r in rows}


def list_regions() -> list[str]:
    """All preset codes (ISO 3166-1 alpha-3, plus WOR = world, EEE = Europe)."""
    return sorted(_table())


def region_preset(code: str) -> RegionPreset:
    """The preset for an alpha-3 (or common alpha-2) code; UnknownRegionError otherwise."""
    key = code.strip().upper()
    key = _ALPHA2_TO_ALPHA3.get(key, key)
    row = _table().get(key)
    if row is None:
        raise UnknownRegionError(
            f"unknown region {code!r}: use an ISO 3166-1 alpha-3 country code such as USA, FRA, DEU "
            "(or WOR for the world average); `mlfootprint estimate --list-regions` prints them all"
        )
    return RegionPreset(
        code=key,
        carbon_intensity_g_per_kwh=round(float(row["gwp"]) * 1000.0, 9),  # kgCO2e/kWh -> gCO2e/kWh
        wue_offsite_l_per_kwh=float(row["wue"]),
        warnings=list(row.get("warnings") or []),
    )


def factors_for_region(code: str, **overrides: Any) -> Factors:
    """Factors with the region's carbon intensity and off-site water intensity; PUE, on-site
    WUE and embodied keep their defaults unless given in ``overrides``."""
    preset = region_preset(code)
    fields: dict[str, Any] = {
        "carbon_intensity_g_per_kwh": preset.carbon_intensity_g_per_kwh,
        "wue_offsite_l_per_kwh": preset.wue_offsite_l_per_kwh,
        "region": preset.code,
        "sources": {
            "carbon_intensity_g_per_kwh": f"{_SOURCE}, region {preset.code}",
            "wue_offsite_l_per_kwh": f"{_SOURCE}, region {preset.code}"
            + (" (world default)" if "electricity-mix-wue-world" in preset.warnings else ""),
        },
    }
    fields.update(overrides)
    return Factors.model_validate(fields)

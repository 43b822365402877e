"""Familiar equivalents for carbon and water totals (METHODOLOGY §7).

Carbon: U.S. EPA Greenhouse Gas Equivalencies Calculator, "Calculations and References"
(https://www.epa.gov/energy/greenhouse-gases-equivalencies-calculator-calculations-and-references),
2024 edition factors:
* miles driven by an average gasoline-powered passenger vehicle: 4.03e-4 tCO2e/mile;
* gallons of gasoline burned: 8.89e-3 tCO2/gallon;
* homes' energy use for one year (electricity + heating fuels): 7.94 tCO2/home/year.
EPA revises these yearly; pass your own :class:`EquivalenceFactors` to use another edition.

Water: U.S. EPA WaterSense "Statistics and Facts": the average American uses about 82
gallons of water a day at home (https://www.epa.gov/watersense/statistics-and-facts).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mlfootprint.accounting.units import L_PER_GALLON_US

__all__ = ["EPA_2024", "EquivalenceFactors", "Equivalents", "equivalents"]


class EquivalenceFactors(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kg_co2e_per_vehicle_mile: float = Field(gt=0)
    kg_co2_per_gallon_gasoline: float = Field(gt=0)
    kg_co2_per_home_year: float = Field(gt=0)
    us_gallons_water_per_person_day: float = Field(gt=0)
    source: str


EPA_2024 = EquivalenceFactors(
    kg_co2e_per_vehicle_mile=0.403,  # 4.03e-4 t/mile
    kg_co2_per_gallon_gasoline=8.89,  # 8.89e-3 t/gallon
    kg_co2_per_home_year=7940.0,  # 7.94 t/home/year
    us_gallons_water_per_person_day=82.0,
    source="U.S. EPA GHG Equivalencies Calculator (2024 edition); EPA WaterSense (82 gal/person/day at home)",
)


class Equivalents(BaseModel):
    model_config = ConfigDict(frozen=True)

    vehicle_miles: float
    gallons_gasoline: float
    home_years_energy: float
    person_days_water: float
    source: str


def equivalents(co2e_kg: float, water_l: float, factors: EquivalenceFactors = EPA_2024) -> Equivalents:
    """Carbon as car miles, gallons of gasoline and homes' yearly energy; water as days of
    one person's home use. Pure division by the cited factors."""
    if co2e_kg < 0 or water_l < 0:
        raise ValueError("co2e_kg and water_l must be >= 0")
    return Equivalents(
        vehicle_miles=co2e_kg / factors.kg_co2e_per_vehicle_mile,
        gallons_gasoline=co2e_kg / factors.kg_co2_per_gallon_gasoline,
        home_years_energy=co2e_kg / factors.kg_co2_per_home_year,
        person_days_water=water_l / (factors.us_gallons_water_per_person_day * L_PER_GALLON_US),
        source=factors.source,
    )

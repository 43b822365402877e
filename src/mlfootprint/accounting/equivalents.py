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

__all__ = [
    "EPA_2024",
    "PUBLISHED_2024",
    "Equivalence",
    "EquivalenceFactors",
    "Equivalents",
    "PublishedFactors",
    "equivalents",
    "published_equivalents",
]


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


# ---------------------------------------------------------------- published-accounting equivalences
class Equivalence(BaseModel):
    """One equivalence: ``value`` of ``unit`` = the amount / ``factor`` (per ``factor_unit``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float
    unit: str
    factor: float
    factor_unit: str
    basis: str  # what is divided: "co2e", "energy" or "water"
    source: str


class PublishedFactors(BaseModel):
    """The equivalences published LLM accountings use, each with its edition and source.

    * gasoline: 8.89e-3 tCO2 per gallon burned (EPA GHG Equivalencies Calculator,
      "Calculations and References", 2024 edition, as :data:`EPA_2024`);
    * gasoline tanker trucks: 8,500 gallons per tanker x the gasoline factor (EPA's method on the
      same page) = 75.565 tCO2 per truck;
    * homes' energy for a year: 7.94 tCO2 per home (EPA, 2024 edition, as :data:`EPA_2024`);
    * homes' electricity for a year, on an *energy* basis: 10,791 kWh per home (U.S. EIA,
      average annual electricity consumption of a U.S. residential customer, 2022 data);
    * acres of U.S. forest for a year: 0.84 tCO2 sequestered per acre per year (EPA, 2024
      edition);
    * person-years of water: 82 U.S. gallons per person per day at home x 365 (EPA WaterSense).
    EPA and EIA revise these: pass another :class:`PublishedFactors` for another edition.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kg_co2_per_gallon_gasoline: float = Field(gt=0)
    gallons_per_tanker_truck: float = Field(gt=0)
    kg_co2_per_home_year_energy: float = Field(gt=0)
    kwh_per_home_year_electricity: float = Field(gt=0)
    kg_co2_per_acre_forest_year: float = Field(gt=0)
    us_gallons_water_per_person_day: float = Field(gt=0)
    epa_edition: str
    electricity_source: str
    water_source: str


PUBLISHED_2024 = PublishedFactors(
    kg_co2_per_gallon_gasoline=8.89,
    gallons_per_tanker_truck=8500.0,
    kg_co2_per_home_year_energy=7940.0,
    kwh_per_home_year_electricity=10_791.0,
    kg_co2_per_acre_forest_year=840.0,
    us_gallons_water_per_person_day=82.0,
    epa_edition="U.S. EPA GHG Equivalencies Calculator, Calculations and References (2024 edition)",
    electricity_source="U.S. EIA, average annual electricity use of a U.S. residential customer (2022: 10,791 kWh)",
    water_source="U.S. EPA WaterSense (82 gal/person/day at home)",
)


def published_equivalents(
    *, co2e_kg: float, facility_energy_kwh: float, water_l: float, factors: PublishedFactors = PUBLISHED_2024
) -> list[Equivalence]:
    """Carbon as gallons of gasoline, tanker trucks, homes' energy and acres of forest for a
    year; facility energy as homes' electricity for a year; water as person-years of home use."""
    for name, value in (("co2e_kg", co2e_kg), ("facility_energy_kwh", facility_energy_kwh), ("water_l", water_l)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    f = factors
    tanker_kg = f.gallons_per_tanker_truck * f.kg_co2_per_gallon_gasoline
    person_year_l = f.us_gallons_water_per_person_day * 365.0 * L_PER_GALLON_US
    return [
        Equivalence(name="gasoline", value=co2e_kg / f.kg_co2_per_gallon_gasoline, unit="gallons of gasoline burned",
                    factor=f.kg_co2_per_gallon_gasoline, factor_unit="kgCO2/gallon", basis="co2e", source=f.epa_edition),
        Equivalence(name="tanker_trucks", value=co2e_kg / tanker_kg, unit="gasoline tanker trucks",
                    factor=tanker_kg, factor_unit="kgCO2/truck (8,500 gallons)", basis="co2e", source=f.epa_edition),
        Equivalence(name="homes_energy", value=co2e_kg / f.kg_co2_per_home_year_energy, unit="homes' energy use for a year",
                    factor=f.kg_co2_per_home_year_energy, factor_unit="kgCO2/home/year", basis="co2e", source=f.epa_edition),
        Equivalence(name="homes_electricity", value=facility_energy_kwh / f.kwh_per_home_year_electricity,
                    unit="homes' electricity use for a year", factor=f.kwh_per_home_year_electricity,
                    factor_unit="kWh/home/year", basis="energy", source=f.electricity_source),
        Equivalence(name="forest_acres", value=co2e_kg / f.kg_co2_per_acre_forest_year,
                    unit="acres of U.S. forest sequestering for a year", factor=f.kg_co2_per_acre_forest_year,
                    factor_unit="kgCO2/acre/year", basis="co2e", source=f.epa_edition),
        Equivalence(name="person_years_water", value=water_l / person_year_l, unit="person-years of home water use",
                    factor=person_year_l, factor_unit="L/person/year", basis="water", source=f.water_source),
    ]

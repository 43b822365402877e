"""Unit constants and converters. Internally: joules, seconds, grams, litres (SI-ish);
people see kWh, kg and tonnes. Names carry units (``energy_j``, ``co2e_g``)."""

from __future__ import annotations

__all__ = [
    "GALLONS_US_PER_L",
    "G_PER_KG",
    "HOURS_PER_YEAR",
    "J_PER_KWH",
    "J_PER_WH",
    "KG_PER_TONNE",
    "L_PER_GALLON_US",
    "S_PER_HOUR",
    "g_to_kg",
    "hours_to_s",
    "j_to_kwh",
    "kg_to_g",
    "kwh_to_j",
    "l_to_us_gallons",
    "s_to_hours",
    "us_gallons_to_l",
    "years_to_hours",
]

S_PER_HOUR = 3600.0
J_PER_WH = 3600.0
J_PER_KWH = 3.6e6  # 1 kWh = 1000 W * 3600 s
G_PER_KG = 1000.0
KG_PER_TONNE = 1000.0
#: 365-day year; lifetimes in years are converted with this (documented in docs/methodology.md).
HOURS_PER_YEAR = 8760.0
#: U.S. liquid gallon = 231 cubic inches = 3.785411784 L (exact, NIST Handbook 44).
L_PER_GALLON_US = 3.785411784
GALLONS_US_PER_L = 1.0 / L_PER_GALLON_US


def kwh_to_j(energy_kwh: float) -> float:
    return energy_kwh * J_PER_KWH


def j_to_kwh(energy_j: float) -> float:
    return energy_j / J_PER_KWH


def g_to_kg(mass_g: float) -> float:
    return mass_g / G_PER_KG


def kg_to_g(mass_kg: float) -> float:
    return mass_kg * G_PER_KG


def hours_to_s(duration_h: float) -> float:
    return duration_h * S_PER_HOUR


def s_to_hours(duration_s: float) -> float:
    return duration_s / S_PER_HOUR


def years_to_hours(duration_years: float) -> float:
    return duration_years * HOURS_PER_YEAR


def l_to_us_gallons(volume_l: float) -> float:
    return volume_l / L_PER_GALLON_US


def us_gallons_to_l(volume_gal: float) -> float:
    return volume_gal * L_PER_GALLON_US

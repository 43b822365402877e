"""`mlfootprint estimate`: the JSON contract, table output and every bad-input path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlfootprint.cli import main

CONTRACT = {
    "energy_it_kwh", "energy_facility_kwh", "operational_co2e_kg", "water_onsite_l", "water_offsite_l",
    "embodied_co2e_kg", "embodied_water_l", "total_co2e_kg", "total_water_l", "gpu_hours", "factors",
}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        rc = main(["estimate", *args])
    except SystemExit as exc:  # argparse errors
        rc = int(exc.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_contract_reference_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["--gpu-hours", "1000", "--gpu-power-w", "700", "--output", "json"], capsys)
    assert rc == 0
    doc = json.loads(out)
    assert CONTRACT <= set(doc)
    assert doc["energy_it_kwh"] == pytest.approx(700.0)
    assert doc["energy_facility_kwh"] == pytest.approx(840.0)
    assert doc["operational_co2e_kg"] == pytest.approx(840 * 0.332)
    assert doc["water_onsite_l"] == pytest.approx(140.0)
    assert doc["water_offsite_l"] == pytest.approx(840 * 1.29)
    assert doc["embodied_co2e_kg"] == pytest.approx(463.013 * 1000 / 35_040)
    assert doc["embodied_water_l"] == pytest.approx(102.6 * 1000 / 35_040)
    assert doc["total_co2e_kg"] == pytest.approx(doc["operational_co2e_kg"] + doc["embodied_co2e_kg"])
    assert doc["total_water_l"] == pytest.approx(140 + 840 * 1.29 + doc["embodied_water_l"])
    assert doc["gpu_hours"] == 1000
    assert doc["factors"]["pue"] == 1.2 and doc["factors"]["onsite_water_basis"] == "it"


def test_energy_only_says_embodied_not_computed(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["--energy-kwh", "100", "--output", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["embodied_co2e_kg"] is None and doc["embodied_water_l"] is None
    assert doc["gpu_hours"] is None
    assert any("not computed" in n for n in doc["notes"])
    rc, out, _ = run(["--energy-kwh", "100"], capsys)
    assert rc == 0 and "not computed" in out


def test_energy_plus_gpu_hours_and_facility_basis(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(
        ["--energy-kwh", "500", "--gpu-hours", "1000", "--onsite-water-basis", "facility", "--pue", "1.5",
         "--wue-onsite", "1", "--wue-offsite", "2", "--carbon-intensity", "100", "--output", "json"],
        capsys,
    )
    doc = json.loads(out)
    assert rc == 0
    assert doc["water_onsite_l"] == pytest.approx(750.0)
    assert doc["water_offsite_l"] == pytest.approx(1500.0)
    assert doc["operational_co2e_kg"] == pytest.approx(75.0)
    assert doc["embodied_co2e_kg"] is not None


def test_region_and_override(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["--energy-kwh", "1", "--region", "FRA", "--carbon-intensity", "10", "--output", "json"], capsys)
    doc = json.loads(out)
    assert rc == 0 and doc["factors"]["region"] == "FRA"
    assert doc["factors"]["carbon_intensity_g_per_kwh"] == 10.0  # explicit flag wins
    assert "EcoLogits" in doc["factors"]["sources"]["wue_offsite_l_per_kwh"]
    rc, out, _ = run(["--list-regions"], capsys)
    assert rc == 0 and "USA" in out.split()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--energy-kwh", "-1"], "--energy-kwh"),
        (["--energy-kwh", "nan"], "--energy-kwh"),
        (["--energy-kwh", "inf"], "--energy-kwh"),
        (["--energy-kwh", "abc"], "--energy-kwh"),
        (["--gpu-hours", "-5", "--gpu-power-w", "700"], "--gpu-hours"),
        (["--gpu-hours", "5", "--gpu-power-w", "0"], "--gpu-power-w"),
        (["--gpu-hours", "5", "--gpu-power-w", "nan"], "--gpu-power-w"),
        (["--energy-kwh", "1", "--pue", "0.99"], "--pue"),
        (["--energy-kwh", "1", "--pue", "nan"], "--pue"),
        (["--energy-kwh", "1", "--carbon-intensity", "-3"], "--carbon-intensity"),
        (["--energy-kwh", "1", "--wue-onsite", "-0.1"], "--wue-onsite"),
        (["--energy-kwh", "1", "--wue-offsite", "inf"], "--wue-offsite"),
        (["--energy-kwh", "1", "--onsite-water-basis", "site"], "--onsite-water-basis"),
        (["--energy-kwh", "1", "--region", "XYZ"], "--region"),
        (["--energy-kwh", "1", "--output", "xml"], "--output"),
        (["--gpu-hours", "1", "--embodied-kg-per-gpu", "-1", "--gpu-power-w", "1"], "--embodied-kg-per-gpu"),
        (["--gpu-hours", "1", "--embodied-water-l-per-gpu", "nan", "--gpu-power-w", "1"], "--embodied-water-l-per-gpu"),
        (["--gpu-hours", "1", "--gpu-lifetime-years", "0", "--gpu-power-w", "1"], "--gpu-lifetime-years"),
        # missing and conflicting
        ([], "--energy-kwh"),
        (["--gpu-hours", "10"], "--gpu-power-w"),
        (["--gpu-power-w", "700"], "--gpu-power-w"),
        (["--energy-kwh", "1", "--gpu-hours", "1", "--gpu-power-w", "700"], "--gpu-power-w"),
        (["--energy-kwh", "1", "--embodied-kg-per-gpu", "400"], "--embodied-kg-per-gpu"),
        (["--energy-kwh", "1", "--embodied-water-l-per-gpu", "100"], "--embodied-water-l-per-gpu"),
        (["--energy-kwh", "1", "--gpu-lifetime-years", "3"], "--gpu-lifetime-years"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(args, capsys)
    assert rc == 2
    assert flag in err
    assert out == ""


def test_console_script_subprocess() -> None:
    exe = Path(sys.executable).with_name("mlfootprint")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlfootprint"]
    ok = subprocess.run([*cmd, "estimate", "--energy-kwh", "10", "--output", "json"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and CONTRACT <= set(json.loads(ok.stdout))
    bad = subprocess.run([*cmd, "estimate", "--pue", "0.5", "--energy-kwh", "1"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "--pue" in bad.stderr and "must be >= 1" in bad.stderr
    helptext = subprocess.run([*cmd, "estimate", "--help"], capture_output=True, text=True, check=False).stdout
    for flag in ("--energy-kwh", "--gpu-hours", "--gpu-power-w", "--pue", "--carbon-intensity", "--wue-onsite",
                 "--wue-offsite", "--onsite-water-basis", "--embodied-kg-per-gpu", "--embodied-water-l-per-gpu",
                 "--gpu-lifetime-years", "--region", "--output"):
        assert flag in helptext

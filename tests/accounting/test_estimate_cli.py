"""`mlfootprint estimate`: the JSON contract, table output and every bad-input path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlfootprint.accounting.embodied import node_embodied, node_preset
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
    assert set(doc) >= CONTRACT
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
    assert ok.returncode == 0 and set(json.loads(ok.stdout)) >= CONTRACT
    bad = subprocess.run([*cmd, "estimate", "--pue", "0.5", "--energy-kwh", "1"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "--pue" in bad.stderr and "must be >= 1" in bad.stderr
    helptext = subprocess.run([*cmd, "estimate", "--help"], capture_output=True, text=True, check=False).stdout
    for flag in ("--energy-kwh", "--gpu-hours", "--gpu-power-w", "--pue", "--carbon-intensity", "--wue-onsite",
                 "--wue-offsite", "--onsite-water-basis", "--embodied-kg-per-gpu", "--embodied-water-l-per-gpu",
                 "--gpu-lifetime-years", "--region", "--output"):
        assert flag in helptext


# ---------------------------------------------------------------- nodes, energy basis, requests, breakeven
def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    rc, out, err = run([*args, "--output", "json"], capsys)
    assert rc == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_list_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["--list-nodes"], capsys)
    assert rc == 0 and all(n in out for n in ("dgx-h100", "dgx-a100", "l40s-4gpu", "bloom-8gpu"))
    rows = json.loads(run(["--list-nodes", "--output", "json"], capsys)[1])
    h100 = next(r for r in rows if r["name"] == "dgx-h100")
    assert h100["node_embodied_co2e_kg"] == pytest.approx(node_embodied(node_preset("dgx-h100")).node_co2e_kg)


def test_node_alone_prints_bom_and_life_total(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(["--node", "dgx-a100"], capsys)
    e = node_embodied(node_preset("dgx-a100"))
    assert doc["node_embodied_co2e_kg"] == pytest.approx(e.node_co2e_kg)
    assert doc["node_embodied_water_l"] == pytest.approx(e.node_water_l)
    assert doc["node"]["bill_of_materials"]["host"]["ssdGb"] == 34_560
    assert doc["host_embodied"]["lines_co2e_kg"]["ssd"] == pytest.approx(34_560 * 0.11)
    assert doc["node"]["sources"]
    rc, out, _ = run(["--node", "dgx-a100"], capsys)
    assert rc == 0 and "Node total over its life" in out and "ssd" in out


def test_gpu_hours_with_node_charges_both_shares(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(["--gpu-hours", "1000", "--gpu-power-w", "700", "--node", "dgx-h100", "--host-lifetime-years", "6"], capsys)
    e = node_embodied(node_preset("dgx-h100"))
    gpu_kg = e.gpu_each.co2e_kg * 1000 / 35_040
    host_kg = e.host.co2e_kg * (1000 / 8) / (6 * 8760)
    assert doc["embodied_by_part"]["gpu"]["co2e_kg"] == pytest.approx(gpu_kg)
    assert doc["embodied_by_part"]["host"]["co2e_kg"] == pytest.approx(host_kg)
    assert doc["embodied_by_part"]["host"]["held_hours"] == pytest.approx(125.0)
    assert doc["embodied_co2e_kg"] == pytest.approx(gpu_kg + host_kg)
    assert doc["total_co2e_kg"] == pytest.approx(doc["operational_co2e_kg"] + gpu_kg + host_kg)
    assert doc["node"] == "dgx-h100" and doc["node_embodied_co2e_kg"] == pytest.approx(e.node_co2e_kg)
    assert doc["factors"]["host_lifetime_years"] == 6.0


def test_energy_basis_facility_does_not_apply_pue_twice(capsys: pytest.CaptureFixture[str]) -> None:
    it = _json(["--energy-kwh", "120"], capsys)
    fac = _json(["--energy-kwh", "120", "--energy-basis", "facility"], capsys)
    assert it["energy_basis"] == "it" and fac["energy_basis"] == "facility"
    assert fac["energy_it_kwh"] == pytest.approx(100.0)
    assert fac["energy_facility_kwh"] == pytest.approx(120.0)
    assert fac["operational_co2e_kg"] == pytest.approx(120 * 0.332)
    assert it["operational_co2e_kg"] == pytest.approx(120 * 1.2 * 0.332)


def test_bloomz_breakeven_from_published_facility_figures(capsys: pytest.CaptureFixture[str]) -> None:
    # BLOOMz-7B: (51,686 + 7,571) kWh vs 1.0e-4 kWh per inference -> 592,570,000 (METHODOLOGY §5)
    doc = _json(["--energy-kwh", "59257", "--energy-basis", "facility", "--per-inference-kwh", "1e-4",
                 "--inferences-served", "59257000"], capsys)
    be = doc["breakeven"]
    assert be["energy_facility_kwh"]["breakeven_inferences"] == pytest.approx(592_570_000)
    assert be["energy_facility_kwh"]["progress"] == pytest.approx(0.1)
    assert be["co2e_kg"]["breakeven_inferences"] == pytest.approx(592_570_000)  # same factors both sides
    assert doc["request"]["energy_facility_kwh"] == pytest.approx(1e-4)


def test_workload_model_predicts_a_request(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(["--workload-model", "0.05,2.0,1e-4", "--tokens-in", "500", "--tokens-out", "200"], capsys)
    e_j = 0.05 * 500 + 2.0 * 200 + 1e-4 * 500 * 200
    req = doc["request"]
    assert req["energy_it_j"] == pytest.approx(e_j)
    assert req["energy_facility_kwh"] == pytest.approx(e_j * 1.2 / 3.6e6)
    assert req["co2e_g"] == pytest.approx(e_j / 3.6e6 * 1.2 * 332)
    assert req["water_l"] == pytest.approx(e_j / 3.6e6 * (0.2 + 1.2 * 1.29))
    with_training = _json(["--energy-kwh", "1000", "--workload-model", "0.05,2.0,1e-4", "--tokens-in", "500",
                           "--tokens-out", "200"], capsys)
    assert with_training["breakeven"]["energy_facility_kwh"]["breakeven_inferences"] == pytest.approx(1000 * 3.6e6 / e_j)


def test_published_equivalents(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(["--energy-kwh", "1000"], capsys)
    eq = {e["name"]: e for e in doc["equivalents"]}
    kg = doc["total_co2e_kg"]
    assert eq["gasoline"]["value"] == pytest.approx(kg / 8.89)
    assert eq["tanker_trucks"]["value"] == pytest.approx(kg / (8500 * 8.89))
    assert eq["homes_energy"]["value"] == pytest.approx(kg / 7940)
    assert eq["homes_electricity"]["value"] == pytest.approx(1200 / 10_791)
    assert eq["forest_acres"]["value"] == pytest.approx(kg / 840)
    assert eq["person_years_water"]["value"] == pytest.approx(doc["total_water_l"] / (82 * 365 * 3.785411784))
    assert all(e["source"] for e in doc["equivalents"]) and "2024 edition" in eq["gasoline"]["source"]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--node", "dgx-z"], "--node"),
        (["--gpu-hours", "1", "--gpu-power-w", "1", "--node", "dgx-h100", "--embodied-kg-per-gpu", "1"],
         "--embodied-kg-per-gpu"),
        (["--energy-kwh", "1", "--host-lifetime-years", "5"], "--host-lifetime-years"),
        (["--gpu-hours", "1", "--gpu-power-w", "1", "--node", "dgx-h100", "--host-lifetime-years", "0"],
         "--host-lifetime-years"),
        (["--energy-kwh", "1", "--energy-basis", "site"], "--energy-basis"),
        (["--gpu-hours", "1", "--gpu-power-w", "1", "--energy-basis", "facility"], "--energy-basis"),
        (["--tokens-in", "5"], "--tokens-in"),
        (["--workload-model", "1,2", "--tokens-in", "1", "--tokens-out", "1"], "--workload-model"),
        (["--workload-model", "1,2,nan", "--tokens-in", "1", "--tokens-out", "1"], "--workload-model"),
        (["--workload-model", "1,2,3", "--tokens-in", "1"], "--tokens-out"),
        (["--workload-model", "-10,0,0", "--tokens-in", "1", "--tokens-out", "1"], "--workload-model"),
        (["--workload-model", "1,2,3", "--tokens-in", "-1", "--tokens-out", "1"], "--tokens-in"),
        (["--per-inference-kwh", "1e-4", "--workload-model", "1,2,3", "--tokens-in", "1", "--tokens-out", "1"],
         "--per-inference-kwh"),
        (["--per-inference-kwh", "0"], "--per-inference-kwh"),
        (["--energy-kwh", "1", "--inferences-served", "5"], "--inferences-served"),
    ],
)
def test_new_bad_input_exits_2_naming_the_flag(args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(args, capsys)
    assert rc == 2
    assert flag in err
    assert out == ""


def test_help_notes_the_energy_basis(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    text = capsys.readouterr().out
    assert "--energy-basis" in text and "PUE already included" in text and "--node" in text
    assert "--workload-model" in text and "--list-nodes" in text

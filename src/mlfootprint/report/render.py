"""Text renderings of a :class:`Report`: terminal table (rich), CSV, JSON and Markdown.

All renderers are pure (report in, text out) and deterministic, so golden files can pin
them (tests/report/golden/). The HTML rendering is in :mod:`mlfootprint.report.html`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from mlfootprint.accounting.equivalents import Equivalents
from mlfootprint.report.aggregate import QUANTITIES, STACKS, GroupRow, ModelLifecycle, Report
from mlfootprint.report.model import PHASES, format_time

__all__ = ["JSON_FORMAT", "JSON_VERSION", "chargeback_columns", "render_csv", "render_json", "render_markdown", "render_table", "report_document"]

JSON_FORMAT = "mlfootprint.io/report"
JSON_VERSION = 1

#: quantity -> (header, decimals)
LABELS: dict[str, tuple[str, int]] = {
    "gpu_hours": ("GPU-h", 1),
    "gpu_kwh": ("GPU kWh", 1),
    "host_kwh": ("Host kWh", 1),
    "it_kwh": ("IT kWh", 1),
    "facility_kwh": ("Facility kWh", 1),
    "operational_kg": ("CO2e op. kg", 2),
    "market_kg": ("CO2e market kg", 2),
    "embodied_kg": ("CO2e emb. kg", 2),
    "embodied_gpu_kg": ("emb. GPU kg", 2),
    "embodied_host_kg": ("emb. host kg", 2),
    "cap_saving_kg": ("Cap saving kg", 2),
    "total_kg": ("CO2e total kg", 2),
    "onsite_l": ("Water on-site L", 1),
    "offsite_l": ("Water off-site L", 1),
    "embodied_l": ("Water emb. L", 1),
    "total_l": ("Water total L", 1),
    "requests": ("Requests", 0),
}
#: CSV/JSON names (snake_case with units).
ENERGY_CARBON = (
    "gpu_hours", "gpu_kwh", "host_kwh", "facility_kwh", "operational_kg", "market_kg", "embodied_kg", "embodied_host_kg",
    "total_kg", "cap_saving_kg",
)
WATER = ("onsite_l", "offsite_l", "embodied_l", "total_l")


def fmt(value: float | None, decimals: int = 1) -> str:
    """Thousands separators, fixed decimals; '–' for unknown."""
    if value is None:
        return "–"
    if decimals == 0:
        return f"{value:,.0f}"
    return f"{value:,.{decimals}f}"


def fmt_share(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def fmt_count(value: float | None) -> str:
    """Large counts readably: 592,570,000 -> 592.6 M."""
    if value is None:
        return "–"
    for limit, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= limit:
            return f"{value / limit:,.1f}{suffix}"
    return f"{value:,.0f}"


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None:
        return None
    return round(value, digits) + 0.0  # +0.0 turns -0.0 into 0.0


def _dim_header(dim: str) -> str:
    return dim[len("label:") :] if dim.startswith("label:") else dim


def _has_market(report: Report) -> bool:
    return report.total.values["market_kg"] is not None


def _has_cost(report: Report) -> bool:
    return report.total.cost is not None


def _cost_header(report: Report, what: str) -> str:
    cur = report.options.currency
    return f"{what} cost{' ' + cur if cur else ''}"


def chargeback_columns(report: Report, quantities: Sequence[str]) -> list[str]:
    return [q for q in quantities if q != "market_kg" or _has_market(report)]


def _all_rows(report: Report) -> list[GroupRow]:
    rows = list(report.groups)
    if report.idle is not None:
        rows.append(report.idle)
    return rows


def _header_lines(report: Report) -> list[tuple[str, str]]:
    src = report.source
    src_text = str(src.get("kind", "?"))
    for k in ("file", "context", "prometheusUrl"):
        if src.get(k):
            src_text += f" ({k}: {src[k]})"
    return [
        ("Period", report.period.label),
        ("Source", src_text),
        ("Grouped by", ", ".join(_dim_header(d) for d in report.dimensions) or "all"),
        ("Idle energy", report.options.idle),
    ]


def _eq_sentence(eq: Equivalents) -> str:
    return (
        f"≈ {fmt(eq.vehicle_miles, 0)} miles driven by an average gasoline car, "
        f"{fmt(eq.gallons_gasoline, 0)} gallons of gasoline, {fmt(eq.home_years_energy, 2)} homes' energy for a year; "
        f"water ≈ {fmt(eq.person_days_water, 0)} person-days of home water use"
    )


def _lifecycle_cells(lc: ModelLifecycle) -> list[str]:
    be = lc.breakeven
    carbon = be.carbon if be is not None else None
    return [
        lc.model,
        *(fmt(lc.phases[p].facility_kwh, 1) for p in PHASES),
        *(fmt(lc.phases[p].total_kg, 2) for p in PHASES),
        fmt_share(lc.development_share_energy),
        fmt(lc.requests, 0),
        fmt_count(carbon.breakeven_inferences if carbon else None),
        fmt_share(carbon.progress if carbon else None),
    ]


LIFECYCLE_HEADERS = [
    "Model",
    "Dev kWh",
    "Training kWh",
    "Inference kWh",
    "Dev kgCO2e",
    "Training kgCO2e",
    "Inference kgCO2e",
    "Dev/Training",
    "Requests",
    "Breakeven (CO2e)",
    "Progress",
]


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) for the text formats."""
    dims = [_dim_header(d) for d in report.dimensions] or ["group"]
    rows = _all_rows(report) + [report.total]
    ec = chargeback_columns(report, ENERGY_CARBON)
    t1 = [[*r.key, str(r.runs), *(fmt(r.values[q], LABELS[q][1]) for q in ec)] for r in rows]
    wc = list(WATER)
    extra_h: list[str] = []
    if report.options.idle == "share":
        extra_h.append("Idle shared kWh")
    if _has_cost(report):
        extra_h += [_cost_header(report, "Energy"), _cost_header(report, "Carbon"), _cost_header(report, "Total")]

    def extra(r: GroupRow) -> list[str]:
        cells: list[str] = []
        if report.options.idle == "share":
            cells.append(fmt(r.idle_shared_kwh, 1))
        if r.cost is not None:
            cells += [fmt(r.cost["energy"], 2), fmt(r.cost["carbon"], 2), fmt(r.cost["total"], 2)]
        return cells

    t2 = [[*r.key, *(fmt(r.values[q], LABELS[q][1]) for q in wc), *extra(r)] for r in rows]
    out = [
        ("Energy and carbon", [*dims, "Runs", *(LABELS[q][0] for q in ec)], t1),
        ("Water" + (" and cost" if _has_cost(report) else ""), [*dims, *(LABELS[q][0] for q in wc), *extra_h], t2),
    ]
    if report.lifecycle:
        out.append(("Lifecycle per model", LIFECYCLE_HEADERS, [_lifecycle_cells(lc) for lc in report.lifecycle]))
    return out


def _footer_lines(report: Report) -> list[str]:
    lines = [f"Total {fmt(report.total.values['total_kg'], 2)} kgCO2e, {fmt(report.total.values['total_l'], 1)} L water: {_eq_sentence(report.equivalents)}."]
    lines.append(f"Equivalence factors: {report.equivalents.source}.")
    if report.lifecycle:
        lines.append(
            f"Breakeven: requests for inference CO2e to equal {report.options.breakeven_basis.replace('+', ' + ')} "
            "CO2e (facility energy and water in the JSON output)."
        )
    return lines + [f"Note: {n}" for n in report.notes]


# ----------------------------------------------------------------------------- terminal


def render_table(report: Report, *, width: int | None = 160, color: bool = False) -> str:
    """Rich tables as plain text (``color`` for a terminal)."""
    buf = io.StringIO()
    console = Console(
        file=buf, width=width or 160, color_system="auto" if color else None,
        force_terminal=color, no_color=not color, highlight=False, emoji=False, legacy_windows=False,
    )
    console.print("[bold]mlfootprint report[/bold]")
    for k, v in _header_lines(report):
        console.print(f"{k}: {v}", markup=False)
    for title, headers, rows in _tables(report):
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 or h in ("Model",) or not rows or not _numeric(rows[0][i]) else "right", no_wrap=i == 0)
        for j, row in enumerate(rows):
            table.add_row(*row, end_section=(j == len(rows) - 2 and title != "Lifecycle per model"))
        console.print(table)
    for line in _footer_lines(report):
        console.print(line, markup=False)
    return buf.getvalue()


def _numeric(cell: str) -> bool:
    return cell == "–" or cell[:1].isdigit() or cell[:1] == "-"


# ----------------------------------------------------------------------------- markdown


def _md_escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def render_markdown(report: Report) -> str:
    lines = ["# mlfootprint report", ""]
    lines += [f"- **{k}:** {_md_escape(v)}" for k, v in _header_lines(report)]
    for title, headers, rows in _tables(report):
        lines += ["", f"## {title}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" if i == 0 or not rows or not _numeric(rows[0][i]) else "---:" for i in range(len(headers))) + "|")
        for row in rows:
            cells = [_md_escape(c) for c in row]
            if row[0] == "TOTAL":
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{line}  " if not line.startswith("Note") else f"> {line}" for line in _footer_lines(report)]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- CSV


def render_csv(report: Report, view: str = "chargeback") -> str:
    """One table: ``chargeback`` (groups, idle, total) or ``lifecycle`` (per model x phase)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if view == "lifecycle":
        w.writerow(["model", "phase", "runs", "gpu_hours", "facility_kwh", "total_kg", "total_l", "development_share_energy",
                    "development_share_co2e", "requests", "breakeven_requests_co2e", "breakeven_progress_co2e"])
        for lc in report.lifecycle:
            be = lc.breakeven.carbon if lc.breakeven is not None else None
            for phase in PHASES:
                f = lc.phases[phase]
                w.writerow([lc.model, phase, f.runs, _round(f.gpu_hours), _round(f.facility_kwh), _round(f.total_kg), _round(f.total_l),
                            _csv(_round(lc.development_share_energy)), _csv(_round(lc.development_share_co2e)),
                            _round(lc.requests) if phase == "inference" else "",
                            _csv(_round(be.breakeven_inferences, 3) if be else None), _csv(_round(be.progress) if be else None)])
        return buf.getvalue()
    dims = list(report.dimensions) or ["group"]
    quantities = ["gpu_hours", "gpu_kwh", "host_kwh", "it_kwh", "facility_kwh", "operational_kg", "market_kg", "embodied_kg",
                  "embodied_gpu_kg", "embodied_host_kg", "total_kg", "onsite_l", "offsite_l", "embodied_l", "total_l", "requests",
                  "cap_saving_kg"]
    header = [*dims, "runs", *quantities, "idle_shared_kwh"]
    if _has_cost(report):
        header += ["energy_cost", "carbon_cost", "total_cost"]
    w.writerow(header)
    for r in [*_all_rows(report), report.total]:
        row: list[Any] = [*r.key, r.runs, *(_csv(_round(r.values[q])) for q in quantities), _round(r.idle_shared_kwh)]
        if r.cost is not None:
            row += [_round(r.cost["energy"]), _round(r.cost["carbon"]), _round(r.cost["total"])]
        w.writerow(row)
    return buf.getvalue()


def _csv(value: float | None) -> Any:
    return "" if value is None else value


# ----------------------------------------------------------------------------- JSON


def _group_doc(report: Report, r: GroupRow) -> dict[str, Any]:
    keys = list(report.dimensions) or ["group"]
    return {
        "key": dict(zip(keys, r.key, strict=True)),
        "runs": r.runs,
        **{q: _round(r.values[q]) for q in QUANTITIES},
        "idleSharedKWh": _round(r.idle_shared_kwh),
        "byPhase": {s: {"facility_kwh": _round(r.stack_facility_kwh[s]), "total_kg": _round(r.stack_total_kg[s])} for s in STACKS},
        "cost": None if r.cost is None else {k: _round(v) for k, v in r.cost.items()},
    }


def _eq_doc(eq: Equivalents) -> dict[str, Any]:
    return {
        "vehicleMiles": _round(eq.vehicle_miles, 3),
        "gallonsGasoline": _round(eq.gallons_gasoline, 3),
        "homeYearsEnergy": _round(eq.home_years_energy, 6),
        "personDaysWater": _round(eq.person_days_water, 3),
        "source": eq.source,
    }


def _metric_doc(m: Any) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "upfront": _round(m.upfront),
        "perInference": _round(m.per_inference, 12),
        "breakevenInferences": _round(m.breakeven_inferences, 3),
        "progress": _round(m.progress),
    }


def report_document(report: Report) -> dict[str, Any]:
    """The JSON report (format ``mlfootprint.io/report`` version 1)."""
    lifecycle = []
    for lc in report.lifecycle:
        be = lc.breakeven
        lifecycle.append({
            "model": lc.model,
            "phases": {p: {"runs": f.runs, "gpu_hours": _round(f.gpu_hours), "facility_kwh": _round(f.facility_kwh),
                           "total_kg": _round(f.total_kg), "total_l": _round(f.total_l)} for p, f in lc.phases.items()},
            "developmentShareOfTraining": {"energy": _round(lc.development_share_energy), "co2e": _round(lc.development_share_co2e)},
            "requests": _round(lc.requests),
            "facilityKWhPer1kRequests": _round(lc.facility_kwh_per_1k_requests),
            "co2eGPerRequest": _round(lc.co2e_g_per_request),
            "breakeven": None if be is None else {
                "basis": lc.breakeven_basis,
                "units": {"energy": "J", "carbon": "gCO2e", "water": "L"},
                "energy": _metric_doc(be.energy), "carbon": _metric_doc(be.carbon), "water": _metric_doc(be.water),
            },
            "equivalents": _eq_doc(lc.equivalents),
        })
    series = None
    if report.series is not None:
        s = report.series
        series = {
            "bucketSeconds": s.bucket_s,
            "starts": [format_time(t) for t in s.starts_s],
            "facility_kwh": {k: [_round(v) for v in vs] for k, vs in s.facility_kwh.items()},
            "total_kg": {k: [_round(v) for v in vs] for k, vs in s.total_kg.items()},
        }
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "generatedAt": format_time(report.generated_s),
        "period": {"label": report.period.label,
                   "since": format_time(report.period.since_s) if report.period.since_s is not None else None,
                   "until": format_time(report.period.until_s) if report.period.until_s is not None else None},
        "source": report.source,
        "groupBy": list(report.dimensions),
        "idlePolicy": report.options.idle,
        "units": {"energy": "kWh", "carbon": "kg CO2e", "water": "L", "gpu": "GPU-hours",
                  "currency": report.options.currency or None},
        "prices": {"perKWh": report.options.price_per_kwh, "carbonPerTonne": report.options.carbon_price_per_tonne},
        "groups": [_group_doc(report, g) for g in report.groups],
        "idle": None if report.idle is None else _group_doc(report, report.idle),
        "total": _group_doc(report, report.total),
        "marketCoverage": {"runs": report.market_coverage[0], "of": report.market_coverage[1]},
        "lifecycle": lifecycle,
        "equivalents": _eq_doc(report.equivalents),
        "series": series,
        "notes": report.notes,
    }


def render_json(report: Report) -> str:
    return json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "markdown": render_markdown,
    "json": render_json,
}

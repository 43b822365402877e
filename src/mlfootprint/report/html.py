"""One self-contained HTML report with charts drawn as inline SVG.

No script, no web fonts, no external resource: a Content-Security-Policy of
``default-src 'none'`` (inline styles only) makes the browser refuse any network fetch, so
the file works offline, in mail attachments and in CI artefacts. Charts:

* lifecycle per model — stacked bars by phase (total kgCO2e);
* per group — stacked bars by phase and idle (facility kWh);
* time series — stacked areas by phase and idle (facility kWh per bucket).

Colours are the Okabe-Ito palette (distinguishable with colour-vision deficiencies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from mlfootprint.report.aggregate import STACKS, Report
from mlfootprint.report.model import format_time
from mlfootprint.report.render import _footer_lines, _header_lines, _tables, fmt

__all__ = ["COLOURS", "render_html"]

COLOURS = {"development": "#E69F00", "training": "#0072B2", "inference": "#009E73", "idle": "#999999"}
_W, _H = 860, 320
_M = {"l": 70, "r": 150, "t": 20, "b": 60}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1100px;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem;color:#444}dl.meta dt{font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;min-width:150px}
.card .v{font-size:1.4rem;font-weight:700}.card .k{color:#555;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0;width:100%}th,td{padding:.25rem .5rem;border-bottom:1px solid #eee}
th{background:#f6f6f6;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:700;border-top:2px solid #999}
figure{margin:1rem 0}figcaption{color:#444;font-size:.9rem;margin-bottom:.3rem}svg{max-width:100%;height:auto;font-size:12px}
svg text{fill:#333}.axis line,.axis path{stroke:#888}.grid line{stroke:#eee}
.notes{color:#444;font-size:.85rem}footer{margin-top:2rem;color:#666;font-size:.8rem}
"""


def _nice(max_value: float) -> tuple[float, float]:
    """A rounded axis maximum and tick step for 0..max_value."""
    if max_value <= 0 or not math.isfinite(max_value):
        return 1.0, 0.25
    raw = max_value / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return step * math.ceil(max_value / step), step


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _axis_label(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _legend(x: float, stacks: Sequence[str]) -> list[str]:
    out = ['<g class="legend">']
    for i, s in enumerate(stacks):
        y = _M["t"] + 10 + i * 20
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{COLOURS[s]}"/>')
        out.append(f'<text x="{x + 18}" y="{y + 10}">{s}</text>')
    out.append("</g>")
    return out


def _y_axis(ymax: float, step: float, unit: str) -> list[str]:
    ph = _H - _M["t"] - _M["b"]
    out = ['<g class="axis grid">']
    n = int(round(ymax / step))
    for i in range(n + 1):
        v = i * step
        y = _M["t"] + ph - ph * v / ymax
        out.append(f'<line x1="{_M["l"]}" x2="{_W - _M["r"]}" y1="{_num(y)}" y2="{_num(y)}"/>')
        out.append(f'<text x="{_M["l"] - 6}" y="{_num(y + 4)}" text-anchor="end">{_axis_label(v)}</text>')
    out.append(f'<text transform="translate(14,{_M["t"] + ph / 2}) rotate(-90)" text-anchor="middle">{escape(unit)}</text>')
    out.append("</g>")
    return out


def stacked_bars(chart_id: str, title: str, labels: Sequence[str], stacks: Sequence[str],
                 data: Sequence[dict[str, float]], unit: str) -> str:
    """Vertical bars, one per label, stacked by ``stacks`` (SVG; rect.bar per segment)."""
    ymax, step = _nice(max((sum(max(d.get(s, 0.0), 0.0) for s in stacks) for d in data), default=0.0))
    pw, ph = _W - _M["l"] - _M["r"], _H - _M["t"] - _M["b"]
    slot = pw / max(len(labels), 1)
    bw = min(60.0, slot * 0.7)
    parts = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" xmlns="http://www.w3.org/2000/svg">']
    parts += _y_axis(ymax, step, unit)
    for i, (label, d) in enumerate(zip(labels, data, strict=True)):
        x = _M["l"] + slot * i + (slot - bw) / 2
        y0: float = _M["t"] + ph
        for s in stacks:
            v = max(d.get(s, 0.0), 0.0)
            if v <= 0:
                continue
            h = ph * v / ymax
            y0 -= h
            parts.append(
                f'<rect class="bar" data-stack="{s}" x="{_num(x)}" y="{_num(y0)}" width="{_num(bw)}" height="{_num(max(h, 0.5))}" '
                f'fill="{COLOURS[s]}"><title>{escape(label)} — {s}: {fmt(v, 2)} {escape(unit)}</title></rect>'
            )
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(f'<text x="{_num(x + bw / 2)}" y="{_H - _M["b"] + 16}" text-anchor="middle">{escape(short)}</text>')
    parts.append(f'<line class="axis" x1="{_M["l"]}" x2="{_W - _M["r"]}" y1="{_M["t"] + ph}" y2="{_M["t"] + ph}" stroke="#888"/>')
    parts += _legend(_W - _M["r"] + 20, stacks)
    parts.append("</svg>")
    return "\n".join(parts)


def stacked_area(chart_id: str, title: str, starts: Sequence[float], bucket_s: float,
                 series: dict[str, list[float]], stacks: Sequence[str], unit: str) -> str:
    """Stacked areas over time (SVG; path.series per stack)."""
    n = len(starts)
    totals = [sum(max(series[s][i], 0.0) for s in stacks) for i in range(n)]
    ymax, step = _nice(max(totals, default=0.0))
    pw, ph = _W - _M["l"] - _M["r"], _H - _M["t"] - _M["b"]

    def xy(i: float, v: float) -> str:
        x = _M["l"] + pw * (i / max(n, 1))
        y = _M["t"] + ph - ph * v / ymax
        return f"{_num(x)},{_num(y)}"

    parts = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" xmlns="http://www.w3.org/2000/svg">']
    parts += _y_axis(ymax, step, unit)
    base = [0.0] * n
    for s in stacks:
        vals = [max(v, 0.0) for v in series[s]]
        if not any(vals):
            continue
        top = [b + v for b, v in zip(base, vals, strict=True)]
        pts = []  # step shape: each bucket is flat over its width
        for i in range(n):
            pts += [xy(i, top[i]), xy(i + 1, top[i])]
        for i in reversed(range(n)):
            pts += [xy(i + 1, base[i]), xy(i, base[i])]
        parts.append(
            f'<path class="series" data-stack="{s}" d="M{" L".join(pts)} Z" fill="{COLOURS[s]}" fill-opacity="0.85" stroke="{COLOURS[s]}">'
            f"<title>{s}: {fmt(sum(vals), 2)} {escape(unit)} in the period</title></path>"
        )
        base = top
    ticks = max(1, math.ceil(n / 6))
    for i in range(0, n, ticks):
        t = format_time(starts[i]) or ""
        label = t[:10] if bucket_s >= 86400 else t[5:16].replace("T", " ")
        x = _M["l"] + pw * (i / n)
        parts.append(f'<text x="{_num(x)}" y="{_H - _M["b"] + 16}" text-anchor="start">{label}</text>')
    parts.append(f'<line class="axis" x1="{_M["l"]}" x2="{_W - _M["r"]}" y1="{_M["t"] + ph}" y2="{_M["t"] + ph}" stroke="#888"/>')
    parts += _legend(_W - _M["r"] + 20, stacks)
    parts.append("</svg>")
    return "\n".join(parts)


def _bucket_name(bucket_s: float) -> str:
    if bucket_s == 3600:
        return "hour"
    days = bucket_s / 86400
    return "day" if days == 1 else f"{days:g} days"


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead>", "<tbody>"]
    for row in rows:
        cls = ' class="total"' if row and row[0] == "TOTAL" else ""
        cells = "".join(
            f'<td{" class=" + chr(34) + "n" + chr(34) if i and (c[:1].isdigit() or c == "–" or c[:1] == "-") else ""}>{escape(c)}</td>'
            for i, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    """The whole report as one HTML document (no network, no script)."""
    t = report.total.values
    eq = report.equivalents
    cards = [
        ("GPU-hours", fmt(t["gpu_hours"], 1)),
        ("Facility energy", f"{fmt(t['facility_kwh'], 1)} kWh"),
        ("CO2e (location + embodied)", f"{fmt(t['total_kg'], 1)} kg"),
        ("Water", f"{fmt(t['total_l'], 0)} L"),
        ("≈ car miles", fmt(eq.vehicle_miles, 0)),
        ("≈ person-days of water", fmt(eq.person_days_water, 0)),
    ]
    if report.total.cost is not None:
        cards.append((f"Cost {report.options.currency}".strip(), fmt(report.total.cost["total"], 2)))
    body: list[str] = [
        "<header><h1>mlfootprint report</h1>",
        '<dl class="meta">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in _header_lines(report)) + "</dl></header>",
        '<section class="cards">'
        + "".join(f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>' for k, v in cards)
        + "</section>",
    ]
    if report.lifecycle:
        labels = [lc.model for lc in report.lifecycle]
        data = [{p: lc.phases[p].total_kg for p in lc.phases} for lc in report.lifecycle]
        body += ["<h2>Lifecycle per model</h2>", "<figure><figcaption>Total CO2e (location-based operational + embodied) by phase</figcaption>",
                 stacked_bars("chart-lifecycle", "CO2e by model and phase", labels, STACKS[:3], data, "kg CO2e"), "</figure>"]
    groups = list(report.groups) + ([report.idle] if report.idle is not None else [])
    if groups:
        body += ["<h2>By group</h2>", "<figure><figcaption>Facility energy by phase (idle energy grey)</figcaption>",
                 stacked_bars("chart-groups", "Facility energy by group and phase", [g.label for g in groups], STACKS,
                              [g.stack_facility_kwh for g in groups], "kWh"), "</figure>"]
    if report.series is not None:
        s = report.series
        body += ["<h2>Over time</h2>", f"<figure><figcaption>Facility energy per {_bucket_name(s.bucket_s)} by phase</figcaption>",
                 stacked_area("chart-series", "Facility energy over time", s.starts_s, s.bucket_s, s.facility_kwh, STACKS, "kWh"), "</figure>"]
    for title, headers, rows in _tables(report):
        body += [f"<h2>{escape(title)}</h2>", _html_table(headers, rows)]
    body.append('<section class="notes">' + "".join(f"<p>{escape(line)}</p>" for line in _footer_lines(report)) + "</section>")
    body.append(
        "<footer>Methods: facility energy = IT energy × PUE; location-based operational CO2e from grid intensity; "
        "water on-site (WUE) and off-site (EWIF, Li et al. 2023); embodied CO2e and water amortised over device lifetimes "
        "by GPU-hours held (GSF SCI). Market-based CO2e is never added to totals. "
        f"Generated {escape(format_time(report.generated_s) or '')} by mlfootprint.</footer>"
    )
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>mlfootprint report — {escape(report.period.label)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )

"""The campaign's summary table (rich): faults injected by kind, J double-counted, J lost and
whether documented, max freeze seconds, frozen runs, crashes; and the verdict."""

from __future__ import annotations

import io
from collections import defaultdict

from rich.console import Console
from rich.table import Table

from tests.faults.harness import FAULT_KINDS, Campaign


def summary_table(c: Campaign, wall_s: float) -> Table:
    by_kind: dict[str, list] = defaultdict(list)  # type: ignore[type-arg]
    for e in c.events:
        by_kind[e.kind].append(e)
    title = (f"fault campaign: seed {c.cfg.seed}, {wall_s:.0f} s wall, {len(c.events)} faults, "
             f"sim clock x{c.cfg.time_factor:g}, exporter interval {c.cfg.attribution_interval_s:g} s, "
             f"operator interval {c.cfg.operator_interval_s:g} s")
    t = Table(title=title, title_justify="left")
    t.add_column("fault")
    t.add_column("injected", justify="right")
    t.add_column("J double-counted", justify="right")
    t.add_column("documented gaps (J)", justify="right")
    t.add_column("max freeze s", justify="right")
    t.add_column("frozen runs", justify="right")
    t.add_column("problems", justify="right")
    for kind in FAULT_KINDS:
        events = by_kind.get(kind, [])
        if not events:
            t.add_row(kind, "0", "-", "-", "-", "-", "-")
            continue
        gaps = [g for e in events for g in e.gaps]
        t.add_row(
            kind, str(len(events)), f"{sum(e.excess_j for e in events):.0f}",
            f"{len(gaps)}: {sum(g.allowed_j for g in gaps):.0f} J" if gaps else "-",
            f"{max(e.freeze_s for e in events):.1f}", str(sum(len(e.frozen) for e in events)),
            str(sum(len(e.problems) for e in events)),
        )
    lost = c.final.get("lost_j", float("nan"))
    allowed = c.final.get("allowed_j", float("nan"))
    documented = "yes" if lost <= allowed + 1.0 else "NO"
    t.add_section()
    t.add_row(
        "total", str(len(c.events)), f"{c.double_counted_j:.0f}",
        f"lost {lost:.0f} J of {allowed:.0f} J allowed: {documented}",
        f"{max((e.freeze_s for e in c.events), default=0.0):.1f}", str(sum(len(e.frozen) for e in c.events)),
        str(len(c.failures)),
    )
    return t


def render(c: Campaign, wall_s: float) -> str:
    """The table and the findings as plain text (for the terminal and the failure message)."""
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False, color_system=None)
    console.print(summary_table(c, wall_s))
    console.print(f"requests double-counted: {sum(c._excess_requests.values()):.0f}")
    console.print(f"targets: 0 J double-counted, 0 runs frozen, 0 crashes; "
                  f"reproduce: make faults SEED={c.cfg.seed} DURATION={c.cfg.duration_s:.0f}")
    if c.final_components:
        console.print("at the end, per component (runs sharing pods): truth = held energy of their pods' GPUs at the cut; "
                      "billed = read once the ledgers were observed 2 s after it (so it may exceed the truth at the cut)")
        for label, truth, billed, lost, allowed in c.final_components:
            console.print(f"  {label:<60} truth {truth / 1e6:9.3f} MJ  billed {billed / 1e6:9.3f} MJ  "
                          f"lost {lost / 1e6:8.3f} MJ  documented gaps {allowed / 1e6:8.3f} MJ", highlight=False)
    console.print("faults in order:")
    for e in c.events:
        console.print(f"  {e.kind:<30} {e.detail}", highlight=False)
    if c.failures:
        console.print(f"{len(c.failures)} finding(s):")
        for f in c.failures:
            console.print(f"  - {f}", highlight=False)
    return buf.getvalue()

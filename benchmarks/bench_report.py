"""Report benchmark (issue 7): a snapshot of 100,000 runs reports in < 5 s.

Writes a synthetic snapshot (100,000 TrainingRuns/InferenceServices over 40 namespaces,
8 teams, 50 models, 3 node pools, spread over two months, plus 64 nodes' idle energy) and
times `mlfootprint report --from-file` end to end in this process (JSON parse, table,
period pro-rating, idle sharing, grouping, lifecycle, time series, rendering) for the
formats people use. Prints each figure and its ratio to the target; exits 1 when missed.
Run: .venv/bin/python benchmarks/bench_report.py
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from mlfootprint.cli import main as cli_main
from mlfootprint.report.model import SNAPSHOT_FORMAT, SNAPSHOT_VERSION, format_time

N_RUNS = 100_000
TARGET_S = 5.0
T0 = 1_790_812_800.0  # 2026-10-01T00:00:00Z


def synthetic_snapshot(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        kind = "InferenceService" if i % 10 == 0 else "TrainingRun"
        phase = "inference" if kind == "InferenceService" else ("training" if i % 7 == 0 else "development")
        start = T0 + rng.uniform(0, 60 * 86400)
        hours = rng.uniform(0.1, 72)
        it = hours * rng.uniform(0.3, 6.0)
        fac = it * 1.2
        op = fac * 0.35
        rec = {
            "kind": kind, "namespace": f"ns-{i % 40}", "name": f"run-{i}",
            "labels": {"team": f"team-{i % 8}", "app": "train"}, "model": f"model-{i % 50}",
            "phase": phase, "nodePool": ("h100", "a100", "l4")[i % 3],
            "startTime": format_time(start), "endTime": format_time(start + hours * 3600),
            "gpuHours": hours * 8,
            "energy": {"gpuKWh": it * 0.8, "hostKWh": it * 0.2, "itKWh": it, "facilityKWh": fac},
            "carbon": {"operationalKg": op, "embodiedKg": hours * 0.1, "totalKg": op + hours * 0.1},
            "water": {"onsiteL": it * 0.2, "offsiteL": fac * 1.29, "embodiedL": hours * 0.024,
                      "totalL": it * 0.2 + fac * 1.29 + hours * 0.024},
        }
        if i % 4 == 0:
            rec["carbon"]["marketKg"] = op * 0.3
        if kind == "InferenceService":
            rec["inference"] = {"requests": rng.randrange(1, 10**6), "inputTokens": 0, "outputTokens": 0}
        runs.append(rec)
    idle = [{"node": f"node-{j}", "nodePool": ("h100", "a100", "l4")[j % 3], "startTime": format_time(T0),
             "endTime": format_time(T0 + 61 * 86400), "energy": {"gpuKWh": 500.0, "hostKWh": 120.0}} for j in range(64)]
    return {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "generatedAt": format_time(T0),
            "source": {"kind": "synthetic"}, "runs": runs, "idle": idle}


def timed(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one in-process run of the command."""
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli_main(args)
    elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    if rc != 0:
        raise SystemExit(f"report failed with exit status {rc}: {args}")
    return elapsed, cpu_s


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.json"
        path.write_text(json.dumps(synthetic_snapshot(N_RUNS)))
        size_mb = path.stat().st_size / 1e6
        print(f"snapshot: {N_RUNS:,} runs, {size_mb:.1f} MB")
        base = ["report", "--from-file", str(path), "--month", "2026-11", "--now", "2026-12-01T00:00:00Z", "-q"]
        cases = {
            "table, by namespace": [*base],
            "json, by team x phase, idle shared, cost": [*base, "-f", "json", "--group-by", "label:team,phase",
                                                         "--idle", "share", "--price-per-kwh", "0.15"],
            "csv, by model, selector": [*base, "-f", "csv", "--group-by", "model", "-l", "team in (team-1,team-2)"],
            "html, by node pool": [*base, "-f", "html", "--group-by", "node-pool"],
        }
        worst = 0.0
        for name, args in cases.items():
            best, cpu_s = min(timed(args) for _ in range(2))
            worst = max(worst, best)
            print(f"{name:45s} {best:6.2f} s wall ({best / TARGET_S:.2f} x the {TARGET_S:.0f} s target), {cpu_s:5.2f} s CPU")
    ok = worst < TARGET_S
    print(f"report of {N_RUNS:,} runs: {worst:.2f} s worst case; target < {TARGET_S:.0f} s: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

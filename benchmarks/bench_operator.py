"""Benchmark (issues 5 and 12): scrape mode at 100 nodes: 1,000 TrainingRuns refreshed every
30 s, the operator scraping the 100 nodes' exporter pages itself.

The stack (benchmarks/operator_harness.py): a real control plane (mlfootprint.devcluster) with
100 kwok GPU nodes (8 GPUs time-sliced in 2), 10 namespaces, one single-GPU pod per run bound
to a node and run by kwok; mlfootprint.devcluster.fleetsim serving each node's exporter page
(the real exporter's names and labels, counters advancing with time); the operator
(`mlfootprint operator`, default scrape mode, the 100 pages as --exporter-url) as its own
process, with default settings (every figure change written).

Figure age: `mlfootprint_operator_oldest_refresh_age_seconds` (time since the least recently
refreshed run was last refreshed), sampled every 2 s; see bench_operator_scale.py.
Prints the figures and their ratios to the targets (every run refreshed within 2 intervals,
< 0.5 core, < 300 MB RSS: issue 5's for 1,000 runs) and the machine's load; exits 1 on a miss.
Run: .venv/bin/python benchmarks/bench_operator.py [--runs 1000 --nodes 100]
"""

from __future__ import annotations

import argparse
import sys

from operator_harness import Layout, http_get, measure, report, stack, warm_up

from mlfootprint.devcluster.cluster import free_port

CORES_TARGET = 0.5
RSS_TARGET_MB = 300.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1_000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--cycles", type=int, default=3, help="measured intervals after the warm-up")
    args = ap.parse_args()

    layout = Layout(runs=args.runs, nodes=args.nodes, namespaces=args.namespaces)
    port = free_port()
    with stack(layout, prometheus=False) as st:
        urls = [a for u in st.node_urls() for a in ("--exporter-url", u)]
        op = st.start_operator("--interval", str(args.interval), *urls, metrics_port=port)
        startup_peak = warm_up(st, op, port, args.runs, args.interval, timeout_s=1800)
        served0 = int(http_get(f"http://127.0.0.1:{st.fleet_port}/-/requests"))
        figures = measure(st, op, port, args.runs, args.interval, args.cycles, startup_peak)
        served = int(http_get(f"http://127.0.0.1:{st.fleet_port}/-/requests")) - served0
        ok = report(figures, cores_target=CORES_TARGET, rss_target_mb=RSS_TARGET_MB, extra={
            "mode": "scrape",
            "nodes": str(args.nodes),
            "exporter pages scraped per interval": f"{served / figures.window_s * args.interval:.0f} ({args.nodes} nodes)",
        })
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

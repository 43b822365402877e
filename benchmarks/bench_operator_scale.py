"""Benchmark (issue 12 goal 3): 10,000 TrainingRuns on 1,000 kwok GPU nodes (8 GPUs each) in
Prometheus mode, a real Prometheus scraping a fleet simulator.

The stack (benchmarks/operator_harness.py): a real control plane (mlfootprint.devcluster) with
1,000 kwok nodes (8 GPUs time-sliced in 2), 10 namespaces, one single-GPU pod per run bound
to a node and run by kwok; mlfootprint.devcluster.fleetsim serving every node's exporter page
(the real exporter's names and labels, counters advancing with time) from one process; a real
Prometheus scraping it (one target per node, every 30 s, as the chart's ServiceMonitor) and
the operator; the operator (`mlfootprint operator --energy-source prometheus`) as its own
process with the configuration docs/install.md#sizing gives for this size.

Figure age, defined: a run's figures are recomputed from the newest counters at every
refresh; the status is written only when a printed figure changes and at most every
--status-min-interval, so the status' own age says nothing about how current the figures
are. What is measured is the operator's `mlfootprint_operator_oldest_refresh_age_seconds`:
the time since the least recently refreshed run was last refreshed successfully (or first
seen), sampled every 2 s; target <= 2 refresh intervals.

Prints the figures, their ratios to the targets (<= 2 intervals, < 1 core, < 1 GiB RSS) and
the machine's load; exits 1 on a miss. The warm-up (every run's first status written) is
not measured. Run: .venv/bin/python benchmarks/bench_operator_scale.py [--runs 10000 --nodes 1000]
"""

from __future__ import annotations

import argparse
import sys

from operator_harness import Layout, http_get, measure, report, stack, warm_up

from mlfootprint.devcluster.cluster import free_port

CORES_TARGET = 1.0
RSS_TARGET_MB = 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=1_000)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--interval", type=float, nargs="+", default=[30.0],
                    help="refresh interval(s); several are measured one after the other on the same stack (sizing)")
    ap.add_argument("--cycles", type=int, default=3, help="measured intervals after the warm-up")
    ap.add_argument("--scrape-interval", type=float, default=30.0, help="Prometheus' scrape interval")
    ap.add_argument("--status-min-interval", type=float, default=300.0)
    ap.add_argument("--status-max-age", type=float, default=600.0)
    args = ap.parse_args()

    layout = Layout(runs=args.runs, nodes=args.nodes, namespaces=args.namespaces)
    port = free_port()
    with stack(layout, prometheus=True, scrape_interval_s=args.scrape_interval, operator_metrics_port=port) as st:
        ok = True
        for interval in args.interval:
            op = st.start_operator(
                "--energy-source", "prometheus", "--prometheus-url", st.prometheus_url or "", "--interval", str(interval),
                "--status-min-interval", str(args.status_min_interval), "--status-max-age", str(args.status_max_age),
                metrics_port=port,
            )
            startup_peak = warm_up(st, op, port, args.runs, interval, timeout_s=3600)
            figures = measure(st, op, port, args.runs, interval, args.cycles, startup_peak)
            prom = http_get(f"{st.prometheus_url}/metrics")
            series = next((line.split()[1] for line in prom.splitlines() if line.startswith("prometheus_tsdb_head_series ")), "?")
            ok &= report(figures, cores_target=CORES_TARGET, rss_target_mb=RSS_TARGET_MB, extra={
                "mode": "prometheus",
                "nodes": str(args.nodes),
                "Prometheus series (head)": series,
                "status pacing": f"--status-min-interval {args.status_min_interval:g} --status-max-age {args.status_max_age:g}",
            })
            st.stop_operator()
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

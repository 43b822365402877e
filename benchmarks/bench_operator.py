"""Benchmark: N TrainingRuns (default 1,000) refreshed every INTERVAL s (default 30) by the
operator against the local API server (mlfootprint.devcluster), energy scraped from one
fixture exporter page holding every run's pod (counters advance with time).

Prints: CPU-seconds per cycle, cores used (CPU-seconds / interval), peak RSS, exporter
scrapes per cycle, and whether every run was refreshed within each interval.
Targets (issue 5): every cycle within its interval, < 0.5 core, < 300 MB.

    .venv/bin/python benchmarks/bench_operator.py [--runs 1000] [--interval 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KWH = 3.6e6


def exporter_server(namespace: str, pods: int) -> ThreadingHTTPServer:
    t0 = time.time()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            age = time.time() - t0
            lines = []
            for i in range(pods):
                base = f'node="n{i % 16}",namespace="{namespace}",pod="p-{i}",container=""'
                lines.append(f'mlfootprint_pod_gpu_energy_joules_total{{{base},gpu_uuid="GPU-{i}",gpu_model="H100"}} {500.0 * age:.3f}')
                lines.append(f'mlfootprint_pod_host_energy_joules_total{{{base},component="cpu"}} {80.0 * age:.3f}')
                lines.append(f'mlfootprint_pod_gpu_allocation_seconds_total{{{base},gpu_model="H100"}} {age:.3f}')
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            H.hits += 1  # type: ignore[attr-defined]

        def log_message(self, *a: object) -> None:
            pass

    H.hits = 0  # type: ignore[attr-defined]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--cycles", type=int, default=3, help="measured cycles after the warm-up cycle")
    args = ap.parse_args()

    from mlfootprint.devcluster import DevCluster

    state = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    cluster = DevCluster(state, gpu_nodes=0, die_with_parent=True)
    t = time.monotonic()
    cluster.start()
    print(f"control plane up in {time.monotonic() - t:.1f} s", flush=True)
    kc = ["kubectl", "--kubeconfig", str(cluster.kubeconfig)]
    ns = "bench"
    op = None
    try:
        subprocess.run([*kc, "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
        subprocess.run([*kc, "wait", "--for=condition=Established", "crd/trainingruns.mlfootprint.io"], check=True, capture_output=True)
        subprocess.run([*kc, "create", "namespace", ns], check=True, capture_output=True)
        subprocess.run([*kc, "wait", "--for=create", "serviceaccount/default", "-n", ns, "--timeout=60s"], check=True, capture_output=True)
        items = []
        for i in range(args.runs):
            items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "labels": {"run": f"r-{i}"}},
                          "spec": {"nodeSelector": {"none": "none"}, "containers": [{"name": "c", "image": "x"}]}})
            items.append({"apiVersion": "mlfootprint.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": f"r-{i}"},
                          "spec": {"selector": {"matchLabels": {"run": f"r-{i}"}}, "model": {"name": f"m-{i % 10}"}}})
        t = time.monotonic()
        for k in range(0, len(items), 400):
            doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items[k : k + 400]})
            p = subprocess.run([*kc, "create", "-n", ns, "-f", "-"], input=doc, text=True, capture_output=True)
            if p.returncode != 0:
                print(p.stderr[-2000:])
                return 1
        print(f"created {args.runs} pods and TrainingRuns in {time.monotonic() - t:.1f} s", flush=True)

        srv = exporter_server(ns, args.runs)
        url = f"http://127.0.0.1:{srv.server_port}/metrics"
        op = subprocess.Popen(
            [sys.executable, "-m", "mlfootprint", "operator", "--kubeconfig", str(cluster.kubeconfig),
             "--namespace", ns, "--operator-namespace", ns, "--exporter-url", url, "--exporter-service", "none",
             "--interval", str(args.interval), "--metrics-port", "-1", "--log-level", "info", "--log-format", "text", "--no-discovery"],
            stdout=subprocess.DEVNULL, stderr=open(state / "operator.log", "w"),
        )
        # warm-up: wait until every run has a status
        t = time.monotonic()
        while True:
            out = subprocess.run([*kc, "get", "trainingruns", "-n", ns, "-o", "json"], check=True, capture_output=True, text=True).stdout
            done = sum(1 for it in json.loads(out)["items"] if (it.get("status") or {}).get("lastUpdated"))
            if done == args.runs:
                break
            if time.monotonic() - t > 10 * args.interval:
                print(f"FAIL: only {done}/{args.runs} runs refreshed after {10 * args.interval:.0f} s")
                return 1
            time.sleep(2)
        print(f"all {args.runs} runs have a status after {time.monotonic() - t:.1f} s (warm-up)", flush=True)

        cpu0, hits0, t0 = proc_cpu_s(op.pid), srv.RequestHandlerClass.hits, time.monotonic()  # type: ignore[attr-defined]
        rss_peak = proc_rss_mb(op.pid)
        late_max = 0.0
        for _ in range(args.cycles):
            end = time.monotonic() + args.interval
            while time.monotonic() < end:
                rss_peak = max(rss_peak, proc_rss_mb(op.pid))
                time.sleep(1)
            out = subprocess.run([*kc, "get", "trainingruns", "-n", ns, "-o", "json"], check=True, capture_output=True, text=True).stdout
            now = dt.datetime.now(dt.UTC).timestamp()
            ages = [now - dt.datetime.fromisoformat(it["status"]["lastUpdated"].replace("Z", "+00:00")).timestamp()
                    for it in json.loads(out)["items"]]
            late_max = max(late_max, max(ages))
        cpu = proc_cpu_s(op.pid) - cpu0
        wall = time.monotonic() - t0
        hits = srv.RequestHandlerClass.hits - hits0  # type: ignore[attr-defined]
        per_cycle = cpu / args.cycles
        cores = cpu / wall
        within = late_max <= args.interval * 1.5
        print(f"runs={args.runs} interval={args.interval:.0f}s cycles={args.cycles}")
        print(f"cpu_seconds_per_cycle={per_cycle:.2f} cores={cores:.3f} (target < 0.5)")
        print(f"rss_peak_mb={rss_peak:.0f} (target < 300)")
        print(f"exporter_scrapes_per_cycle={hits / args.cycles:.1f}")
        print(f"oldest_status_age_s={late_max:.1f} -> every run refreshed within its interval: {within}")
        ok = cores < 0.5 and rss_peak < 300 and within
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if op is not None:
            op.terminate()
            try:
                op.wait(20)
            except subprocess.TimeoutExpired:
                op.kill()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())

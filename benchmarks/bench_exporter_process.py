"""The exporter process's CPU with 250 containers at a 1 s attribution interval (issue 12, goal 4).

Runs the real `mlfootprint exporter` as a process with simulated GPUs and the simulated file pod
source (250 containers in 125 pods on 8 GPUs, the pods file unchanged, as in a steady demo),
lets it warm up, then reads its CPU time (utime + stime from /proc/<pid>/stat) over a window,
scraping /metrics once per 15 s like Prometheus. Target: <= 1.33 % of one core.

Run: .venv/bin/python benchmarks/bench_exporter_process.py [--window 30] [--sample-interval 0.1]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CONTAINERS = 250
GPUS = 8
TARGET_PCT = 1.33


def pods_yaml(containers: int = CONTAINERS) -> str:
    lines = ["pods:"]
    profiles = ("training", "inference", "idle")
    for p in range(containers // 2):
        lines.append(f"  - {{namespace: ns{p % 10}, name: pod-{p}, profile: {profiles[p % 3]}, containers: "
                     f"[{{name: main, gpus: {1 if p < GPUS else 0}}}, {{name: sidecar, gpus: 0}}]}}")
    return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"exporter not ready at {url}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default 5)")
    ap.add_argument("--sample-interval", default="0.1", help="power sampling interval, s (default 0.1, the exporter's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pods = Path(tmp) / "pods.yaml"
        pods.write_text(pods_yaml())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlfootprint", "exporter", "--gpu-source", "sim", "--sim-gpus", str(GPUS),
             "--pod-source", "file", "--pods-file", str(pods), "--host-source", "sim", "--node-name", "bench",
             "--listen-address", "127.0.0.1", "--port", str(port), "--attribution-interval-s", "1",
             "--sample-interval-s", args.sample_interval, "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_ready(url + "/healthz")
            time.sleep(args.warmup)
            with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
                series = sum(1 for line in r.read().splitlines() if line and not line.startswith(b"#"))
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            next_scrape = t0
            while time.monotonic() - t0 < args.window:
                if time.monotonic() >= next_scrape:
                    urllib.request.urlopen(url + "/metrics", timeout=5).read()
                    next_scrape += 15.0
                time.sleep(0.5)
            pct = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0) * 100
            rss_mb = int(Path(f"/proc/{proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"exporter process: {CONTAINERS} containers (file pod source, unchanged), {GPUS} simulated GPUs, "
          f"1 s attribution, {args.sample_interval} s sampling, {series} series, scraped every 15 s")
    print(f"CPU                    {pct:8.3f} % core  budget {TARGET_PCT} %   ratio {pct / TARGET_PCT:.2f}")
    print(f"resident memory        {rss_mb:8.1f} MB")
    # CPU figures are sensitive to other load on a 2-core machine: rerun on a quiet one
    # before reading a miss as a regression.
    missed = pct > TARGET_PCT
    print("status: " + ("MISSED CPU share" if missed else "OK"))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

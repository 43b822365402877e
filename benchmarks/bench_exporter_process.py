"""The exporter process's CPU with 250 containers at a 1 s attribution interval (issue 12, goal 4).

Runs the real `mlfootprint exporter` as a process with simulated GPUs and 250 containers in 125
pods on 8 GPUs, lets it warm up, then reads its CPU time (utime + stime from /proc/<pid>/stat)
over a window, scraping /metrics once per 15 s like Prometheus. Target: <= 1.33 % of one core
(Kepler v0.11 measured side by side, issue 12), for both pod sources:
  * file: the simulated pods file, unchanged, as in a steady demo;
  * kubelet: the kubelet's pod-resources gRPC API (the production source) answered by a
    server in this process over the same unix socket protocol, holding the simulated GPUs'
    UUIDs as device IDs (as the real node's fake device plugin does); its CPU is not counted.

Run: .venv/bin/python benchmarks/bench_exporter_process.py [--pod-source file|kubelet|both] [--window 30]
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
from concurrent import futures
from pathlib import Path

import grpc

from mlfootprint.exporter.gpu_sim import SimulatedGpuSource
from mlfootprint.exporter.model import ErrorCounter
from mlfootprint.exporter.podresources import api_pb2, api_pb2_grpc

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


class Lister(api_pb2_grpc.PodResourcesListerServicer):
    """The kubelet's List answer for the same 125 pods as :func:`pods_yaml`."""

    def __init__(self, gpu_uuids: list[str]) -> None:
        self._response = api_pb2.ListPodResourcesResponse(pod_resources=[
            api_pb2.PodResources(name=f"pod-{p}", namespace=f"ns{p % 10}", containers=[
                api_pb2.ContainerResources(name="main", devices=[
                    api_pb2.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=[gpu_uuids[p]])
                ] if p < len(gpu_uuids) else []),
                api_pb2.ContainerResources(name="sidecar"),
            ])
            for p in range(CONTAINERS // 2)
        ])

    def List(self, request: object, context: object) -> api_pb2.ListPodResourcesResponse:  # noqa: N802
        return self._response


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


def measure(pod_source: str, args: argparse.Namespace, tmp: Path) -> tuple[float, float, int]:
    """CPU % of a core, RSS MB and series of one exporter process."""
    pods = tmp / "pods.yaml"
    pods.write_text(pods_yaml())
    argv = ["--pod-source", "file", "--pods-file", str(pods)]
    server = None
    if pod_source == "kubelet":
        uuids = SimulatedGpuSource(ErrorCounter(), count=GPUS, node="bench").uuids
        sockets = tmp / "pod-resources"
        sockets.mkdir(exist_ok=True)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(Lister(uuids), server)
        server.add_insecure_port(f"unix://{sockets / 'kubelet.sock'}")
        server.start()
        argv = ["--pod-source", "kubelet", "--pod-resources-dir", str(sockets)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlfootprint", "exporter", "--gpu-source", "sim", "--sim-gpus", str(GPUS),
         *argv, "--host-source", "sim", "--node-name", "bench",
         "--listen-address", "127.0.0.1", "--port", str(port), "--attribution-interval-s", "1",
         "--sample-interval-s", args.sample_interval, "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_ready(url + "/healthz")
        time.sleep(args.warmup)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            text = r.read()
        series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
        held = text.count(b'mlfootprint_pod_gpu_energy_joules_total{')
        if held < GPUS:
            raise SystemExit(f"{pod_source}: only {held} containers metered on GPUs (expected {GPUS})")
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
        if server is not None:
            server.stop(grace=None)
    return pct, rss_mb, series


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pod-source", choices=("file", "kubelet", "both"), default="both")
    ap.add_argument("--window", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default 5)")
    ap.add_argument("--sample-interval", default="0.1", help="power sampling interval, s (default 0.1, the exporter's)")
    args = ap.parse_args()
    missed = []
    sources = ("file", "kubelet") if args.pod_source == "both" else (args.pod_source,)
    print(f"exporter process: {CONTAINERS} containers, {GPUS} simulated GPUs, 1 s attribution, "
          f"{args.sample_interval} s sampling, scraped every 15 s")
    for source in sources:
        with tempfile.TemporaryDirectory() as tmp:
            pct, rss_mb, series = measure(source, args, Path(tmp))
        print(f"{source + ' pod source':<22} CPU {pct:6.3f} % core  budget {TARGET_PCT} %  ratio {pct / TARGET_PCT:.2f}"
              f"   RSS {rss_mb:6.1f} MB   {series} series")
        if pct > TARGET_PCT:
            missed.append(f"CPU share ({source})")
    # CPU figures are sensitive to other load on a 2-core machine: rerun on a quiet one
    # before reading a miss as a regression.
    print("status: " + ("MISSED " + ", ".join(missed) if missed else "OK"))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

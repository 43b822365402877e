"""A fleet simulator: one process serving the exporter pages of many simulated GPU nodes.

A real exporter per node cannot run 1,000 times on one machine; this serves, for each node of
a fleet, the page its exporter would publish (docs/metrics.md names and labels: per GPU, per
host, per pod, build info), with counters that advance with wall time. It lets a real
Prometheus scrape 1,000 "nodes" (one target per node: ``/nodes/<node>/metrics``) and the
operator scrape them directly (scrape mode), for the operator's scale benchmarks
(benchmarks/bench_operator*.py).

Model (deterministic, so a benchmark can reason about the figures):

* each node has ``gpus`` physical GPUs; a pod holds one GPU, and when a node carries more
  pods than GPUs the GPUs are time-sliced (NVIDIA device-plugin time-slicing): pod ``i`` of a
  node uses GPU ``i % gpus`` and holds ``1 / (pods on that GPU)`` of it;
* a pod's counters start at its ``start_s`` (``mlfootprint_pod_start_time_seconds``) and grow
  linearly: GPU ``power_w`` x its share of the device, host CPU 40 W and DRAM 8 W, allocation
  = its device share per second; peak/min power are fixed fractions of its GPU power;
* a pod's attributed power is steady, so its power-ratio histogram
  (``mlfootprint_pod_gpu_power_ratio``, seconds at or below each share of the GPU's power
  limit) puts all of its time in the first bucket at or above ``power / limit``;
* each GPU measures its pods' energy plus 30 W of idle (``..._gpu_idle_energy_joules_total``),
  each host its pods' energy plus 120 W CPU / 20 W DRAM unattributed, so the conservation
  identities of docs/metrics.md hold exactly on every page.

Pages are rendered on request from precomputed label strings (about 0.1 ms per node).

    python -m mlfootprint.devcluster.fleetsim --spec fleet.json --port 0 --port-file port.txt

``fleet.json``: ``{"gpus_per_node": 8, "t0": <unix s>, "pods": [[namespace, pod, node,
start_s, power_w], ...], "nodes": [node, ...]}`` (:meth:`Fleet.to_json`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlfootprint.exporter.model import POWER_RATIO_BUCKETS

__all__ = ["Fleet", "FleetServer", "SimPod", "prometheus_targets"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HOST_CPU_W = 40.0
HOST_DRAM_W = 8.0
GPU_IDLE_W = 30.0
NODE_CPU_UNATTRIBUTED_W = 120.0
NODE_DRAM_UNATTRIBUTED_W = 20.0
GPU_MODEL = "H100"
MAX_POWER_W = 700.0
PEAK_FRACTION = 1.15
MIN_FRACTION = 0.25
SWING_EVERY_S = 600.0


@dataclass(frozen=True)
class SimPod:
    namespace: str
    name: str
    node: str
    start_s: float
    power_w: float


@dataclass
class _PodRow:
    pod: SimPod
    gpu: int
    share: float
    labels: str  # node, namespace, pod, container
    gpu_labels: str  # + gpu_uuid, gpu_model


@dataclass
class _Node:
    name: str
    gpus: list[str]  # uuids
    pods: list[_PodRow] = field(default_factory=list)


@dataclass
class Fleet:
    """The nodes, their GPUs and the pods placed on them."""

    nodes: Sequence[str]
    pods: Sequence[SimPod]
    gpus_per_node: int = 8
    t0: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self._nodes: dict[str, _Node] = {
            n: _Node(n, [f"GPU-{n}-{g}" for g in range(self.gpus_per_node)]) for n in self.nodes
        }
        for pod in self.pods:
            node = self._nodes[pod.node]
            gpu = len(node.pods) % self.gpus_per_node
            base = f'node="{pod.node}",namespace="{pod.namespace}",pod="{pod.name}",container=""'
            node.pods.append(_PodRow(pod, gpu, 1.0, base, f'{base},gpu_uuid="{node.gpus[gpu]}",gpu_model="{GPU_MODEL}"'))
        for node in self._nodes.values():
            per_gpu = [0] * self.gpus_per_node
            for row in node.pods:
                per_gpu[row.gpu] += 1
            for row in node.pods:
                row.share = 1.0 / per_gpu[row.gpu]

    @property
    def node_names(self) -> list[str]:
        return list(self._nodes)

    def series_per_node(self, node: str) -> int:
        n = self._nodes[node]
        return 5 * len(n.gpus) + 4 + (10 + len(POWER_RATIO_BUCKETS) + 3) * len(n.pods) + 1

    def to_json(self) -> str:
        return json.dumps({
            "gpus_per_node": self.gpus_per_node, "t0": self.t0, "nodes": list(self.nodes),
            "pods": [[p.namespace, p.name, p.node, p.start_s, p.power_w] for p in self.pods],
        })

    @classmethod
    def from_json(cls, text: str) -> Fleet:
        doc = json.loads(text)
        return cls(
            nodes=doc["nodes"], gpus_per_node=int(doc["gpus_per_node"]), t0=float(doc["t0"]),
            pods=[SimPod(ns, name, node, float(start), float(w)) for ns, name, node, start, w in doc["pods"]],
        )

    def pod_counters(self, pod: SimPod, t: float, share: float = 1.0) -> dict[str, float]:
        """The counters of ``pod`` at unix time ``t`` (0 before its start)."""
        age = max(t - pod.start_s, 0.0)
        return {
            "gpu_j": pod.power_w * share * age, "cpu_j": HOST_CPU_W * age, "dram_j": HOST_DRAM_W * age,
            "alloc_s": share * age, "swings": float(int(age // SWING_EVERY_S)),
        }

    def page(self, node: str, t: float | None = None) -> str | None:
        """The exporter page of ``node`` at time ``t`` (default now); None for an unknown node."""
        n = self._nodes.get(node)
        if n is None:
            return None
        t = time.time() if t is None else t
        up = max(t - self.t0, 0.0)
        out: list[str] = []
        add = out.append
        gpu_pod_j = [0.0] * len(n.gpus)
        pod_cpu = pod_dram = 0.0
        for row in n.pods:
            p = row.pod
            if t < p.start_s:
                continue
            c = self.pod_counters(p, t, row.share)
            gpu_pod_j[row.gpu] += c["gpu_j"]
            pod_cpu += c["cpu_j"]
            pod_dram += c["dram_j"]
            b = row.labels
            add(f"mlfootprint_pod_gpu_energy_joules_total{{{row.gpu_labels}}} {c['gpu_j']:.3f}")
            add(f'mlfootprint_pod_host_energy_joules_total{{{b},component="cpu"}} {c["cpu_j"]:.3f}')
            add(f'mlfootprint_pod_host_energy_joules_total{{{b},component="dram"}} {c["dram_j"]:.3f}')
            add(f'mlfootprint_pod_gpu_allocation_seconds_total{{{b},gpu_model="{GPU_MODEL}"}} {c["alloc_s"]:.3f}')
            add(f"mlfootprint_pod_start_time_seconds{{{b}}} {p.start_s:.3f}")
            w = p.power_w * row.share
            add(f"mlfootprint_pod_gpu_power_watts{{{b}}} {w:.1f}")
            add(f"mlfootprint_pod_gpu_power_peak_watts{{{b}}} {w * PEAK_FRACTION:.1f}")
            add(f"mlfootprint_pod_gpu_power_min_watts{{{b}}} {w * MIN_FRACTION:.1f}")
            add(f"mlfootprint_pod_power_swings_total{{{b}}} {c['swings']:.0f}")
            ratio = w / MAX_POWER_W
            age = c["alloc_s"] / row.share
            for bound in POWER_RATIO_BUCKETS:
                add(f'mlfootprint_pod_gpu_power_ratio_bucket{{{b},le="{bound!r}"}} {age if ratio <= bound else 0.0:.3f}')
            add(f'mlfootprint_pod_gpu_power_ratio_bucket{{{b},le="+Inf"}} {age:.3f}')
            add(f"mlfootprint_pod_gpu_power_ratio_count{{{b}}} {age:.3f}")
            add(f"mlfootprint_pod_gpu_power_ratio_sum{{{b}}} {ratio * age:.3f}")
            add(f"mlfootprint_pod_gpu_power_limit_watts{{{b}}} {MAX_POWER_W:.1f}")
        for g, uuid in enumerate(n.gpus):
            gl = f'node="{node}",gpu_uuid="{uuid}",gpu_model="{GPU_MODEL}"'
            idle = GPU_IDLE_W * up
            add(f"mlfootprint_gpu_energy_joules_total{{{gl}}} {gpu_pod_j[g] + idle:.3f}")
            add(f"mlfootprint_gpu_idle_energy_joules_total{{{gl}}} {idle:.3f}")
            add(f"mlfootprint_gpu_power_watts{{{gl}}} {GPU_IDLE_W:.1f}")
            add(f"mlfootprint_gpu_max_power_watts{{{gl}}} {MAX_POWER_W:.1f}")
            add(f"mlfootprint_gpu_power_swings_total{{{gl}}} 0")
        for comp, watts, pods_j in (("cpu", NODE_CPU_UNATTRIBUTED_W, pod_cpu), ("dram", NODE_DRAM_UNATTRIBUTED_W, pod_dram)):
            hl = f'node="{node}",component="{comp}",estimated="true"'
            add(f"mlfootprint_host_energy_joules_total{{{hl}}} {pods_j + watts * up:.3f}")
            add(f"mlfootprint_host_unattributed_energy_joules_total{{{hl}}} {watts * up:.3f}")
        add('mlfootprint_exporter_build_info{version="fleetsim"} 1')
        return "\n".join(out) + "\n"


def prometheus_targets(host: str, port: int, nodes: Iterable[str]) -> list[dict[str, Any]]:
    """``file_sd_configs`` content: one target per node (``__metrics_path__`` per node)."""
    return [
        {"targets": [f"{host}:{port}"], "labels": {"__metrics_path__": f"/nodes/{n}/metrics", "node": n}}
        for n in nodes
    ]


class FleetServer:
    """Serves ``/nodes/<node>/metrics`` for every node of ``fleet``; counts the pages served
    (``/-/requests``)."""

    def __init__(self, fleet: Fleet, *, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.requests = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses connections per target

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                text: str | None = None
                if path.startswith("/nodes/") and path.endswith("/metrics"):
                    text = fleet.page(path[len("/nodes/") : -len("/metrics")], clock())
                    if text is not None:
                        with lock:
                            outer.requests += 1
                elif path == "/-/ready":
                    text = "ok\n"
                elif path == "/-/requests":  # pages served so far (the benchmarks count scrapes)
                    with lock:
                        text = f"{outer.requests}\n"
                if text is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.request_queue_size = 1024
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fleetsim")

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.port}/nodes/{node}/metrics"

    def start(self) -> FleetServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True, help="fleet JSON (Fleet.to_json)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = ap.parse_args(argv)
    srv = FleetServer(Fleet.from_json(args.spec.read_text()), port=args.port).start()
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(srv.port))
        tmp.replace(args.port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

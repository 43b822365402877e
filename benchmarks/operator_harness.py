"""Shared harness of the operator benchmarks (bench_operator.py, bench_operator_scale.py).

A real local control plane (mlfootprint.devcluster) with N kwok GPU nodes, one namespace per
team, one single-GPU pod per TrainingRun bound to a node (kwok runs it), the fleet simulator
(mlfootprint.devcluster.fleetsim) serving every node's exporter page from one process, and,
in Prometheus mode, a real Prometheus scraping the fleet (one target per node) and the
operator. The operator runs as its own process (`mlfootprint operator`), so its CPU time and
RSS are read from /proc, apart from everything else on the machine.

Nodes advertise 8 physical GPUs time-sliced in 2 replicas (`nvidia.com/gpu: 16`, as the NVIDIA
device plugin's time-slicing does, labels `nvidia.com/gpu.count: 8`, `.replicas: 2`), so 10
single-GPU pods fit per node: pods 8 and 9 of a node share GPUs 0 and 1 with pods 0 and 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlfootprint.devcluster import DevCluster  # noqa: E402
from mlfootprint.devcluster.cluster import free_port  # noqa: E402
from mlfootprint.devcluster.fleetsim import Fleet, SimPod, prometheus_targets  # noqa: E402

GPUS_PER_NODE = 8
TIME_SLICE_REPLICAS = 2
OPERATOR_NS = "team-0"  # the operator's namespace (its cluster-default factors ConfigMap, as the chart ships)


def load() -> str:
    """The machine's load averages, printed next to every figure (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head = line.rsplit(" ", 1)[0]
        if head != name and not head.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metric_max(text: str, name: str, **labels: str) -> float | None:
    best: float | None = None
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            v = float(value)
            best = v if best is None else max(best, v)
    return best


def _label(head: str, name: str) -> str:
    m = re.search(f'[{{,]{name}="([^"]*)"', head)
    return m.group(1) if m else ""


def histogram(text: str, name: str) -> dict[float, float]:
    """Upper bound -> cumulative count of the histogram ``name`` (all label sets summed)."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            head, _, value = line.rpartition(" ")
            le = float(_label(head, "le").replace("+Inf", "inf"))
            out[le] = out.get(le, 0.0) + float(value)
    return out


def quantile_bucket(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper bound) holding the ``q`` quantile of the observations between two scrapes."""
    counts = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = counts.get(float("inf"), 0.0)
    lower = 0.0
    for le in sorted(counts):
        if total and counts[le] >= q * total:
            return lower, le
        lower = le
    return float("nan"), float("nan")


def http_get(url: str, timeout_s: float = 30.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.read().decode()


def prom_query(base: str, promql: str) -> list[dict[str, Any]]:
    doc = json.loads(http_get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"))
    return list(doc["data"]["result"])


def pod_name(i: int) -> str:
    return f"r-{i}-0"


@dataclass
class Layout:
    runs: int
    nodes: int
    namespaces: int
    pods_per_node: int = 10
    max_age_h: float = 48.0  # pods started up to this long before the benchmark (a cluster in steady state)

    def namespace(self, i: int) -> str:
        return f"team-{i % self.namespaces}"

    def node(self, i: int) -> str:
        return f"gpu-node-{(i // self.pods_per_node) % self.nodes}"

    def fleet(self, now: float) -> Fleet:
        pods = []
        for i in range(self.runs):
            age_s = ((i * 7919) % 1000) / 1000.0 * self.max_age_h * 3600.0 + 60.0
            power = 300.0 + ((i * 104729) % 351)  # 300-650 W per GPU
            pods.append(SimPod(self.namespace(i), pod_name(i), self.node(i), now - age_s, power))
        return Fleet(nodes=[f"gpu-node-{n}" for n in range(self.nodes)], pods=pods, gpus_per_node=GPUS_PER_NODE, t0=now)


def _node(name: str) -> dict[str, Any]:
    res = {"cpu": "96", "memory": "1536Gi", "pods": "110", "ephemeral-storage": "2Ti", "nvidia.com/gpu": str(GPUS_PER_NODE * TIME_SLICE_REPLICAS)}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/gpu.count": str(GPUS_PER_NODE), "nvidia.com/gpu.replicas": str(TIME_SLICE_REPLICAS),
                "nvidia.com/gpu.sharing-strategy": "time-slicing",
            },
        },
        "spec": {},
        "status": {"capacity": res, "allocatable": res},
    }


def _pod(layout: Layout, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name(i), "namespace": layout.namespace(i), "labels": {"run": f"r-{i}"}},
        "spec": {
            "nodeName": layout.node(i),
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "train", "image": "train:latest", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
    }


def _run(layout: Layout, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "mlfootprint.io/v1alpha1", "kind": "TrainingRun",
        "metadata": {"name": f"r-{i}", "namespace": layout.namespace(i)},
        "spec": {"selector": {"matchLabels": {"run": f"r-{i}"}}, "model": {"name": f"model-{i % 50}"}, "final": i % 4 == 0},
    }


async def _create_all(kubeconfig: Path, objects: Sequence[tuple[str, dict[str, Any]]], concurrency: int = 32) -> None:
    from mlfootprint.operator.kube import Conflict, Kube

    kube = Kube.from_kubeconfig(str(kubeconfig))
    sem = asyncio.Semaphore(concurrency)

    async def one(path: str, body: dict[str, Any]) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    await kube.request("POST", path, body=body)
                    return
                except Conflict:
                    return
                except Exception:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(1.0)

    try:
        await asyncio.gather(*(one(p, b) for p, b in objects))
    finally:
        await kube.close()


@dataclass
class Stack:
    """Everything the benchmark started; stopped in reverse order by :func:`stack`."""

    layout: Layout
    state: Path
    cluster: DevCluster
    fleet: Fleet
    fleet_port: int = 0
    prometheus_url: str | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubectl(self) -> list[str]:
        return [str(self.cluster.binaries.kubectl), "--kubeconfig", str(self.cluster.kubeconfig)]

    def node_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.fleet_port}/nodes/{n}/metrics" for n in self.fleet.node_names]

    def apiserver_metrics(self) -> str:
        return subprocess.run([*self.kubectl, "get", "--raw", "/metrics"], check=True, capture_output=True, text=True).stdout

    def status_patches(self) -> float:
        """PATCHes of TrainingRun status the API server counted (its own request metrics)."""
        text = self.apiserver_metrics()
        return metric_sum(text, "apiserver_request_total", verb="PATCH", resource="trainingruns", subresource="status")

    def api_requests(self) -> dict[tuple[str, str, str], float]:
        """(verb, resource, subresource) -> requests, by the API server's own counter (all clients)."""
        out: dict[tuple[str, str, str], float] = {}
        for line in self.apiserver_metrics().splitlines():
            if line.startswith("apiserver_request_total{"):
                head, _, value = line.rpartition(" ")
                key = (_label(head, "verb"), _label(head, "resource"), _label(head, "subresource"))
                out[key] = out.get(key, 0.0) + float(value)
        return out

    def trainingrun_requests(self) -> dict[str, float]:
        """verb -> requests on trainingruns (any subresource) by the API server's own metrics."""
        out: dict[str, float] = {}
        for line in self.apiserver_metrics().splitlines():
            if line.startswith("apiserver_request_total{") and 'resource="trainingruns"' in line:
                verb = re.search(r'verb="([^"]+)"', line)
                if verb:
                    out[verb.group(1)] = out.get(verb.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def stop_operator(self) -> None:
        p = self.procs.pop("operator", None)
        if p is not None:
            t = time.monotonic()
            p.terminate()
            try:
                p.wait(60)
                print(f"operator stopped {time.monotonic() - t:.1f} s after SIGTERM (exit {p.returncode})", flush=True)
            except subprocess.TimeoutExpired:
                print("operator did not stop within 60 s of SIGTERM; killed", flush=True)
                p.kill()
                p.wait(10)

    def start_operator(self, *args: str, metrics_port: int) -> subprocess.Popen[bytes]:
        log = open(self.state / "operator.log", "ab")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(
            [sys.executable, "-m", "mlfootprint", "operator", "--kubeconfig", str(self.cluster.kubeconfig),
             "--operator-namespace", OPERATOR_NS, "--exporter-service", "none", "--no-discovery",
             "--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1", "--log-format", "text", *args],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        self.procs["operator"] = p
        return p


def _wait(what: str, fn: Any, timeout_s: float, every_s: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last is True or (last and not isinstance(last, (int, float))):
            return last
        time.sleep(every_s)
    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


@contextmanager
def stack(layout: Layout, *, prometheus: bool, scrape_interval_s: float = 30.0, operator_metrics_port: int = 0) -> Iterator[Stack]:
    """Start the control plane, the nodes, pods and runs, the fleet simulator and (optionally) Prometheus."""
    import tempfile

    state = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    cluster = DevCluster(state / "cluster", gpu_nodes=0, die_with_parent=True)
    t = time.monotonic()
    cluster.start()
    print(f"control plane up in {time.monotonic() - t:.1f} s", flush=True)
    st = Stack(layout, state, cluster, layout.fleet(time.time()))
    try:
        kc = st.kubectl
        subprocess.run([*kc, "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
        subprocess.run([*kc, "wait", "--for=condition=Established", "crd/trainingruns.mlfootprint.io"], check=True, capture_output=True)
        t = time.monotonic()
        nodes = [("/api/v1/nodes", _node(n)) for n in st.fleet.node_names]
        asyncio.run(_create_all(cluster.kubeconfig, nodes))
        namespaces = sorted({layout.namespace(i) for i in range(layout.runs)})
        asyncio.run(_create_all(cluster.kubeconfig, [("/api/v1/namespaces", {"metadata": {"name": ns}}) for ns in namespaces]))
        for ns in namespaces:
            subprocess.run([*kc, "wait", "--for=create", "serviceaccount/default", "-n", ns, "--timeout=120s"], check=True, capture_output=True)
        objects: list[tuple[str, dict[str, Any]]] = []
        for i in range(layout.runs):
            ns = layout.namespace(i)
            objects.append((f"/api/v1/namespaces/{ns}/pods", _pod(layout, i)))
            objects.append((f"/apis/mlfootprint.io/v1alpha1/namespaces/{ns}/trainingruns", _run(layout, i)))
        asyncio.run(_create_all(cluster.kubeconfig, objects))
        factors = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mlfootprint-factors", "namespace": OPERATOR_NS},
                   "data": {"factors.yaml": "pue: 1.2\nwueOnsite: 0.2\nonsiteWaterBasis: it\ngpuLifetimeYears: 4\nhostLifetimeYears: 5\n"}}
        asyncio.run(_create_all(cluster.kubeconfig, [(f"/api/v1/namespaces/{OPERATOR_NS}/configmaps", factors)]))
        print(f"created {layout.nodes} nodes, {len(namespaces)} namespaces, {layout.runs} pods and TrainingRuns "
              f"in {time.monotonic() - t:.1f} s ({load()})", flush=True)

        def running() -> bool | int:
            out = subprocess.run([*kc, "get", "pods", "-A", "--field-selector=status.phase=Running", "--no-headers", "-o", "name"],
                                 check=True, capture_output=True, text=True).stdout
            n = len(out.split())
            return True if n >= layout.runs else n

        t = time.monotonic()
        _wait("kwok to run every pod", running, timeout_s=600, every_s=5)
        print(f"all {layout.runs} pods Running (kwok) after {time.monotonic() - t:.1f} s", flush=True)

        spec = state / "fleet.json"
        spec.write_text(st.fleet.to_json())
        port_file = state / "fleet.port"
        st.procs["fleetsim"] = subprocess.Popen(
            [sys.executable, "-m", "mlfootprint.devcluster.fleetsim", "--spec", str(spec), "--port-file", str(port_file)],
            stdout=subprocess.DEVNULL, stderr=open(state / "fleetsim.log", "wb"),  # noqa: SIM115
        )
        _wait("the fleet simulator", port_file.exists, timeout_s=30, every_s=0.2)
        st.fleet_port = int(port_file.read_text())

        if prometheus:
            binary = shutil.which("prometheus")
            if not binary:
                raise RuntimeError("prometheus not found: run `bash hack/tools/30-prometheus.sh` (make tools)")
            port = free_port()
            (state / "fleet-targets.json").write_text(json.dumps(prometheus_targets("127.0.0.1", st.fleet_port, st.fleet.node_names)))
            scrape = f"{scrape_interval_s:g}s"
            (state / "prometheus.yml").write_text(
                f"global: {{scrape_interval: {scrape}, scrape_timeout: 10s}}\n"
                "scrape_configs:\n"
                "  - job_name: mlfootprint-exporter\n    honor_labels: true\n"
                f"    file_sd_configs: [{{files: ['{state / 'fleet-targets.json'}']}}]\n"
                "  - job_name: mlfootprint-operator\n    honor_labels: true\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{operator_metrics_port}']}}]\n"
            )
            st.procs["prometheus"] = subprocess.Popen(
                [binary, f"--config.file={state / 'prometheus.yml'}", f"--storage.tsdb.path={state / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=open(state / "prometheus.log", "wb"),  # noqa: SIM115
            )
            st.prometheus_url = f"http://127.0.0.1:{port}"

            def targets_up() -> bool | int:
                try:
                    up = prom_query(st.prometheus_url or "", 'count(up{job="mlfootprint-exporter"} == 1)')
                except OSError:
                    return 0
                n = int(float(up[0]["value"][1])) if up else 0
                return True if n >= layout.nodes else n

            t = time.monotonic()
            _wait("Prometheus to scrape every node", targets_up, timeout_s=3 * scrape_interval_s + 60, every_s=2)
            print(f"Prometheus scrapes all {layout.nodes} node targets after {time.monotonic() - t:.1f} s", flush=True)
        yield st
    finally:
        for name in ("operator", "prometheus", "fleetsim"):
            p = st.procs.get(name)
            if p is None:
                continue
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        cluster.stop()
        if os.environ.get("BENCH_KEEP_STATE") != "1":
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"state kept in {state}")


# ----------------------------------------------------------------------------- measuring
HEALTH = ("mlfootprint_operator_oldest_refresh_age_seconds", "mlfootprint_operator_runs",
          "mlfootprint_operator_refresh_queue_depth", "mlfootprint_operator_refresh_duration_seconds_count",
          "mlfootprint_operator_status_writes_total", "mlfootprint_operator_refresh_errors_total",
          "mlfootprint_operator_status_writes_deferred_total", "mlfootprint_operator_refresh_lag_seconds_bucket")
LAG = "mlfootprint_operator_refresh_lag_seconds"
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def health(port: int) -> str:
    """The operator's own health families only (its per-run families are skipped server-side)."""
    query = "&".join(f"name[]={n}" for n in HEALTH)
    try:
        return http_get(f"http://127.0.0.1:{port}/metrics?{query}", timeout_s=10)
    except OSError:
        return ""


@dataclass
class Figures:
    runs: int
    interval_s: float
    window_s: float
    cpu_s: float
    rss_peak_mb: float
    rss_startup_peak_mb: float
    oldest_age_s: float
    refreshes: float
    writes_api: float
    deferred: float
    errors: float
    load: str
    lag_p50_s: tuple[float, float] = (float("nan"), float("nan"))
    lag_max_s: tuple[float, float] = (float("nan"), float("nan"))
    api: dict[tuple[str, str, str], float] = field(default_factory=dict)
    prometheus: str = ""

    @property
    def cores(self) -> float:
        return self.cpu_s / self.window_s

    @property
    def cpu_per_cycle(self) -> float:
        return self.cpu_s / self.window_s * self.interval_s

    @property
    def writes_per_s(self) -> float:
        return self.writes_api / self.window_s


def warm_up(st: Stack, op: subprocess.Popen[bytes], port: int, runs: int, interval_s: float, timeout_s: float) -> float:
    """Until every run has been refreshed, every run's first status written, and none is
    older than 2 intervals; returns the peak RSS seen meanwhile (start-up)."""
    t0 = time.monotonic()
    peak = 0.0
    last_print = 0.0
    first_full = False
    while True:
        if op.poll() is not None:
            raise RuntimeError(f"operator exited {op.returncode}: {(st.state / 'operator.log').read_text()[-3000:]}")
        peak = max(peak, proc_rss_mb(op.pid))
        text = health(port)
        n = metric_sum(text, "mlfootprint_operator_refresh_duration_seconds_count")
        oldest = metric_max(text, "mlfootprint_operator_oldest_refresh_age_seconds")
        known = metric_sum(text, "mlfootprint_operator_runs")
        depth = metric_sum(text, "mlfootprint_operator_refresh_queue_depth")
        if not first_full and n >= runs:
            first_full = True
            print(f"first full refresh (refreshes >= runs) after {time.monotonic() - t0:.0f} s ({load()})", flush=True)
        if known >= runs and n >= runs and oldest is not None and oldest < 2 * interval_s and (
            metric_sum(text, "mlfootprint_operator_status_writes_total") >= runs
        ):
            print(f"warm: every run refreshed, oldest {oldest:.0f} s, after {time.monotonic() - t0:.0f} s ({load()})", flush=True)
            return peak
        if time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            print(f"  warming up {time.monotonic() - t0:.0f} s: runs {known:.0f}, refreshes {n:.0f}, queue {depth:.0f}, "
                  f"oldest {oldest if oldest is None else round(oldest)} s, writes {metric_sum(text, 'mlfootprint_operator_status_writes_total'):.0f}, "
                  f"rss {proc_rss_mb(op.pid):.0f} MB ({load()})", flush=True)
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"not warm after {timeout_s:.0f} s (runs {known}, refreshes {n}, oldest {oldest})")
        time.sleep(5)


def measure(st: Stack, op: subprocess.Popen[bytes], port: int, runs: int, interval_s: float, cycles: int, startup_peak: float) -> Figures:
    """``cycles`` intervals of steady state: the operator's CPU and RSS from /proc, the oldest
    refresh age sampled every 2 s, status writes from the API server's own request counter."""
    text = health(port)
    n0, d0, e0 = (metric_sum(text, m) for m in ("mlfootprint_operator_refresh_duration_seconds_count",
                                                  "mlfootprint_operator_status_writes_deferred_total",
                                                  "mlfootprint_operator_refresh_errors_total"))
    lag0, api0, prom0 = histogram(text, LAG), st.api_requests(), _prometheus_self(st)
    w0, c0, t0 = st.status_patches(), proc_cpu_s(op.pid), time.monotonic()
    rss, oldest = proc_rss_mb(op.pid), 0.0
    while time.monotonic() - t0 < cycles * interval_s:
        time.sleep(2)
        rss = max(rss, proc_rss_mb(op.pid))
        oldest = max(oldest, metric_max(health(port), "mlfootprint_operator_oldest_refresh_age_seconds") or 0.0)
    cpu, window = proc_cpu_s(op.pid) - c0, time.monotonic() - t0
    writes = st.status_patches() - w0
    api1, prom1 = st.api_requests(), _prometheus_self(st)
    api = {k: v - api0.get(k, 0.0) for k, v in api1.items() if v - api0.get(k, 0.0) > 0}
    text = health(port)
    lag1 = histogram(text, LAG)
    n1, d1, e1 = (metric_sum(text, m) for m in ("mlfootprint_operator_refresh_duration_seconds_count",
                                                  "mlfootprint_operator_status_writes_deferred_total",
                                                  "mlfootprint_operator_refresh_errors_total"))
    return Figures(runs=runs, interval_s=interval_s, window_s=window, cpu_s=cpu, rss_peak_mb=rss, rss_startup_peak_mb=startup_peak,
                   oldest_age_s=oldest, refreshes=n1 - n0, writes_api=writes, deferred=d1 - d0, errors=e1 - e0, load=load(),
                   lag_p50_s=quantile_bucket(lag0, lag1, 0.5), lag_max_s=quantile_bucket(lag0, lag1, 1.0), api=api,
                   prometheus=_prometheus_queries(prom0, prom1, window))


def _prometheus_self(st: Stack) -> str:
    """Prometheus' own /metrics (its query handler's request count and latency), "" without Prometheus."""
    return http_get(f"{st.prometheus_url}/metrics") if st.prometheus_url else ""


def _prometheus_queries(before: str, after: str, window_s: float) -> str:
    """Instant queries Prometheus answered in the window (its own counters), per minute, with mean and bucket p99 latency."""
    if not after:
        return ""
    name, labels = "prometheus_http_request_duration_seconds", {"handler": "/api/v1/query"}
    n = metric_sum(after, name + "_count", **labels) - metric_sum(before, name + "_count", **labels)
    total_s = metric_sum(after, name + "_sum", **labels) - metric_sum(before, name + "_sum", **labels)
    p99 = quantile_bucket(_buckets(before, name, labels), _buckets(after, name, labels), 0.99)[1]
    mean_ms = total_s / n * 1000 if n else float("nan")
    return f"{n / window_s * 60:.1f} queries/min, mean {mean_ms:.0f} ms, p99 <= {p99:g} s (Prometheus' own /api/v1/query counters)"


def _buckets(text: str, name: str, labels: dict[str, str]) -> dict[float, float]:
    lines = [ln for ln in text.splitlines() if all(f'{k}="{v}"' in ln for k, v in labels.items())]
    return histogram("\n".join(lines), name)


def report(f: Figures, *, cores_target: float, rss_target_mb: float, extra: dict[str, str] | None = None) -> bool:
    """Print the figures and their ratios to the targets; True when all are met."""
    age_target = 2 * f.interval_s
    checks = [
        ("oldest refresh age", f.oldest_age_s, age_target, "s"),
        ("operator cores", f.cores, cores_target, ""),
        ("operator RSS peak (steady state)", f.rss_peak_mb, rss_target_mb, "MB"),
    ]
    print(f"runs={f.runs} interval={f.interval_s:g}s window={f.window_s:.0f}s ({f.load})")
    print(f"refreshes per interval = {f.refreshes / f.window_s * f.interval_s:.0f} (runs {f.runs}); refresh errors {f.errors:.0f}")
    print(f"CPU-seconds per interval = {f.cpu_per_cycle:.2f}")
    print(f"status writes (API server's count) = {f.writes_per_s:.1f}/s; figure writes deferred = {f.deferred / f.window_s:.1f}/s")
    print(f"RSS start-up peak = {f.rss_startup_peak_mb:.0f} MB")
    print("refresh lag (the age a run's figures reached before each refresh; histogram buckets) "
          f"p50 in ({f.lag_p50_s[0]:g}, {f.lag_p50_s[1]:g}] s, max in ({f.lag_max_s[0]:g}, {f.lag_max_s[1]:g}] s")
    per_min = 60.0 / f.window_s
    writes = sum(v for (verb, _, _), v in f.api.items() if verb in WRITE_VERBS)
    ours = {k: v for k, v in f.api.items() if k[1] in ("trainingruns", "inferenceservices", "pods", "events", "configmaps")}
    print(f"API server requests/min (all clients, kwok's node heartbeats included) = {sum(f.api.values()) * per_min:.0f}, "
          f"writes/min = {writes * per_min:.0f}")
    for (verb, resource, sub), v in sorted(ours.items(), key=lambda kv: -kv[1]):
        print(f"  {verb} {resource}{'/' + sub if sub else ''}: {v * per_min:.1f}/min")
    if f.prometheus:
        print(f"Prometheus = {f.prometheus}")
    for k, v in (extra or {}).items():
        print(f"{k} = {v}")
    ok = True
    for name, value, target, unit in checks:
        met = value < target if name != "oldest refresh age" else value <= target
        ok &= met
        print(f"{name} = {value:.3f}{unit} target {'<=' if name == 'oldest refresh age' else '<'} {target:g}{unit} "
              f"ratio {value / target:.2f} {'ok' if met else 'MISSED'}")
    ok &= f.errors == 0
    print("PASS" if ok else "FAIL")
    return ok

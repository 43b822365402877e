"""`make demo`: the whole product on one machine, and `make demo-down`.

``up``: local control plane with simulated GPU nodes (detached) -> CRDs and the factors
ConfigMap -> one exporter per simulated node (sim GPUs, accelerated clock) -> the operator
(static exporter URLs, short refresh) -> the sample project (development sweep, final
training run, InferenceService under simulated vLLM traffic), driven through simulated time
-> ``kubectl get`` and the lifecycle report. Everything started is recorded in
``<state>/demo.json`` (pids, command lines, kernel start times) and in the control plane's
own ``state.json``; ``down`` stops all of it and verifies that nothing is left.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mlfootprint.demo import realnode as rn
from mlfootprint.demo import scenario as scn
from mlfootprint.demo.kube import Kube, KubeError
from mlfootprint.demo.models_summary import models_lines
from mlfootprint.demo.procs import DemoState, ProcRecord, group_members, is_running, spawn, stop_all
from mlfootprint.devcluster import DevCluster, DevClusterError, MissingBinaryError
from mlfootprint.devcluster.binaries import Binaries, cache_dir
from mlfootprint.devcluster.cluster import STATE_FILE, free_ports, pid_alive
from mlfootprint.devcluster.node import RealNodeError

log = logging.getLogger(__name__)

STATE_NAME = "demo.json"
OPERATOR_NAMESPACE = "mlfootprint"
#: offsets from --port-base
EXPORTER_PORT_OFFSET = 0  # one per node: base, base+1, ...
OPERATOR_PORT_OFFSET = 10
SERVING_PORT_OFFSET = 20
DEFAULT_PORT_BASE = 9860


class DemoError(RuntimeError):
    """The demo could not start; the message says what to do."""


def default_state_dir() -> Path:
    return cache_dir() / "demo"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Options:
    state_dir: Path
    short: bool = False
    port_base: int = DEFAULT_PORT_BASE
    time_factor: float | None = None
    operator_interval_s: float = 2.0
    settle_timeout_s: float = 120.0
    #: auto (the real node when the machine allows it, else kwok), real, kwok
    node: str = "auto"


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------- ports


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def pick_ports(base: int, names: Sequence[tuple[str, int]]) -> dict[str, int]:
    """name -> port: base + offset each (refusing ports in use), or free ports when base is 0."""
    if base == 0:
        return {name: port for (name, _), port in zip(names, free_ports(len(names)), strict=True)}
    ports = {name: base + offset for name, offset in names}
    busy = [(name, p) for name, p in ports.items() if not port_free(p)]
    if busy:
        raise DemoError(
            f"port(s) in use on 127.0.0.1: {', '.join(f'{p} ({name})' for name, p in busy)}. Stop whatever listens "
            f"there (`ss -ltnp 'sport = :{busy[0][1]}'` shows it), run `make demo-down` if an earlier demo is still up, "
            "or choose other ports: MLFOOTPRINT_DEMO_PORT_BASE=N make demo (0 = any free ports)."
        )
    return ports


def wait_http(url: str, timeout_s: float, proc: ProcRecord | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and not is_running(proc):
            raise DemoError(f"{proc.name} exited during start-up; last log lines ({proc.log}):\n{tail(Path(proc.log))}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    where = f"; last log lines ({proc.log}):\n{tail(Path(proc.log))}" if proc else ""
    raise DemoError(f"{url} not answering after {timeout_s:.0f} s ({last}){where}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# ----------------------------------------------------------------- the demo


class Demo:
    """One demo instance, rooted in a state directory."""

    def __init__(self, opts: Options, out: TextIO = sys.stdout) -> None:
        self.opts = opts
        self.state_dir = opts.state_dir.absolute()
        self.out = out
        # plain text off a terminal; NO_COLOR and the terminal's width honoured on one
        self.console = Console(file=out, highlight=False, markup=False, emoji=False, soft_wrap=True)
        self.state = DemoState(cluster_dir=str(self.state_dir / "cluster"))

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_NAME

    def say(self, text: str = "") -> None:
        self.console.print(text)
        self.out.flush()

    def _save(self) -> None:
        self.state.save(self.state_file)

    # ------------------------------------------------------------- up
    def _mode(self) -> str:
        """real or kwok, from --node; auto says why it falls back to kwok."""
        if self.opts.node == "kwok":
            return "kwok"
        problems = rn.real_node_problems()
        if not problems:
            return "real"
        if self.opts.node == "real":
            raise DemoError("--node real: this machine cannot run a real node: " + "; ".join(problems))
        self.say("Running on simulated (kwok) nodes: a real worker node needs " + "; ".join(problems)
                 + ". (`make tools` as root installs them; --node kwok skips this check.)")
        return "kwok"

    def up(self) -> int:
        t0 = time.monotonic()
        mode = self._mode()
        if mode == "real":
            # one real node with 8 GPUs: the one-node project; real pods need a slower clock
            factor = self.opts.time_factor or (3600.0 if self.opts.short else 1440.0)
            sc = scn.load(short=True, time_factor=factor)
        else:
            sc = scn.load(short=self.opts.short, time_factor=self.opts.time_factor)
        try:
            bins = Binaries.find()
        except MissingBinaryError as e:
            raise DemoError(f"{e}") from None
        if (self.state_file.exists() or (self.state_dir / "cluster" / STATE_FILE).exists()) and down(
            self.state_dir, quiet=True
        ):
            self.say("stopped the previous demo first")
        nodes = [f"kwok-gpu-{i}" for i in range(sc.gpu_nodes)] if mode == "kwok" else []
        ports = pick_ports(self.opts.port_base, [
            *((f"exporter {n}", EXPORTER_PORT_OFFSET + i) for i, n in enumerate(nodes)),
            *((("operator metrics", OPERATOR_PORT_OFFSET),) if mode == "kwok" else ()),
            ("simulated vLLM metrics", SERVING_PORT_OFFSET),
        ])
        self._prepare_dir()
        self.state.short = self.opts.short
        self.state.time_factor = sc.time_factor
        self.state.namespace = sc.namespace
        self._save()
        variant = "short" if self.opts.short else "full"
        where = "on a real node (kubelet, containerd, the chart's images)" if mode == "real" else "on simulated (kwok) nodes"
        self.say(f"mlfootprint demo ({variant}, {where}): {len(sc.sweep)} sweep runs, 1 final run, 1 InferenceService; "
                 f"simulated clock x{sc.time_factor:g} (1 simulated hour = {sc.wall_s(1):.1f} s)")
        log.info("demo starting", extra={"state_dir": str(self.state_dir), "mode": variant, "node": mode, "ports": ports})
        try:
            if mode == "real":
                self._up_real(sc, bins, ports)
            else:
                self._up(sc, bins, nodes, ports)
        except BaseException as e:
            log.error("demo failed; stopping what it started", extra={"error": str(e)})
            down(self.state_dir, quiet=True)
            raise
        self.say(f"\ndemo ready in {time.monotonic() - t0:.0f} s")
        return 0

    def _prepare_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "cluster", "certs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        for name in ("report.html", "report.json", "report.txt"):
            (self.state_dir / name).unlink(missing_ok=True)
        (self.state_dir / "logs").mkdir()

    def _py(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mlfootprint", *args]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.state.kubeconfig, "PYTHONUNBUFFERED": "1"}

    def _up(self, sc: scn.Scenario, bins: Binaries, nodes: list[str], ports: dict[str, int]) -> None:
        # 1. control plane (its processes are recorded in cluster/state.json)
        self.say(f"[1/6] starting the local control plane with {len(nodes)} simulated 8-GPU node(s) ...")
        t = time.monotonic()
        try:
            cluster = DevCluster(Path(self.state.cluster_dir), gpu_nodes=len(nodes), binaries=bins).start()
        except DevClusterError as e:
            raise DemoError(f"control plane: {e}") from None
        self.state.kubeconfig = str(cluster.kubeconfig)
        self._save()
        self.say(f"      API server {cluster.server} ready in {time.monotonic() - t:.1f} s")
        kube = Kube(cluster.kubeconfig)

        # 2. CRDs, namespaces, factors
        self.say("[2/6] applying the CRDs and the factors ConfigMap (PUE 1.2, 332 gCO2e/kWh, WUE 0.2 + 1.29 L/kWh) ...")
        root = repo_root()
        try:
            cluster.apply_crds(root / "crds")
        except DevClusterError as e:
            raise DemoError(f"CRDs: {e}") from None
        for ns in (OPERATOR_NAMESPACE, sc.namespace):
            self.kubectl("apply", "-f", "-", input=json.dumps(scn.namespace(ns)))
        self.kubectl("apply", "-f", str(root / "samples" / "demo" / "factors.yaml"))
        self._wait_service_account(kube, sc.namespace)

        # 3. exporters
        self.say(f"[3/6] starting {len(nodes)} exporter(s) on simulated H100s ...")
        logs = self.state_dir / "logs"
        grace_s = 24 * 3600  # keep ended pods' final totals visible for the whole demo (wall seconds)
        exporter_urls = []
        for i, node in enumerate(nodes):
            port = ports[f"exporter {node}"]
            url = f"http://127.0.0.1:{port}/metrics"
            argv = self._py(
                "exporter", "--gpu-source", "sim", "--sim-time-factor", f"{sc.time_factor:g}", "--sim-seed", str(i),
                "--pod-source", "kubernetes", "--kubeconfig", self.state.kubeconfig, "--node-name", node,
                "--host-source", "sim", "--listen-address", "127.0.0.1", "--port", str(port),
                "--sample-interval-s", "0.1", "--attribution-interval-s", "1",
                "--ended-pod-grace-s", f"{grace_s:.0f}", "--log-format", "json",
            )
            rec = spawn(f"exporter-{node}", argv, logs / f"exporter-{node}.log", self._env(), url)
            self.state.processes.append(rec)
            self.state.urls[f"exporter {node}"] = url
            self._save()
            exporter_urls.append((url, rec))
        for url, rec in exporter_urls:
            wait_http(url, 60, rec)
            self.say(f"      {rec.name}: {url}")

        # 4. operator
        self.say(f"[4/6] starting the operator (scrape mode, refresh every {self.opts.operator_interval_s:g} s) ...")
        op_port = ports["operator metrics"]
        argv = self._py(
            "operator", "--kubeconfig", self.state.kubeconfig, "--operator-namespace", OPERATOR_NAMESPACE,
            "--no-discovery", "--interval", f"{self.opts.operator_interval_s:g}",
            # the simulated clock runs time_factor x faster: so do the serving counters
            "--serving-rate-scale", f"{max(sc.time_factor, 1.0):g}",
            *(a for url, _ in exporter_urls for a in ("--exporter-url", url)),
            "--metrics-port", str(op_port), "--metrics-addr", "127.0.0.1", "--log-format", "json",
        )
        op_url = f"http://127.0.0.1:{op_port}/metrics"
        rec = spawn("operator", argv, logs / "operator.log", self._env(), op_url)
        self.state.processes.append(rec)
        self.state.urls["operator"] = op_url
        self._save()
        wait_http(op_url, 60, rec)
        self.say(f"      operator metrics: {op_url}")

        # 5. the sample project, through simulated time
        driver = Driver(self, kube, sc, serving_port=ports["simulated vLLM metrics"])
        driver.run()

        # 6. results
        self.say("[6/6] waiting for the operator's final figures ...")
        self.wait_figures(kube, sc)
        self.print_results(sc)

    def _up_real(self, sc: scn.Scenario, bins: Binaries, ports: dict[str, int]) -> None:
        """The product as a platform engineer installs it, on the dev cluster's real node."""
        self.say("[1/6] starting the local control plane and a real worker node (containerd, kubelet, 8 fake GPUs) ...")
        t = time.monotonic()
        try:
            cluster = DevCluster(Path(self.state.cluster_dir), gpu_nodes=0, binaries=bins, real_node=True).start()
        except (DevClusterError, RealNodeError) as e:
            raise DemoError(f"control plane / real node: {e}") from None
        node = cluster.node
        assert node is not None
        self.state.kubeconfig = str(cluster.kubeconfig)
        self._save()
        self.say(f"      API server {cluster.server}, node {node.name} ({node.ip}) Ready in {time.monotonic() - t:.1f} s")
        kube = Kube(cluster.kubeconfig)
        root = repo_root()

        self.say("[2/6] building the exporter/operator image without a registry (hack/image/build.sh) ...")
        try:
            image, build_s = rn.build_image(root, self.state_dir / "image.oci.tar", self.state_dir / "logs" / "image-build.log")
        except RuntimeError as e:
            raise DemoError(str(e)) from None
        t = time.monotonic()
        cluster.import_image(self.state_dir / "image.oci.tar")
        self.say(f"      {image}: built in {build_s:.0f} s, imported into the node's containerd in {time.monotonic() - t:.1f} s")

        self.say("[3/6] helm install charts/mlfootprint (exporter DaemonSet: pod-resources + cgroups; operator "
                 "Deployment) and the factors ConfigMap ...")
        t = time.monotonic()
        for ns in (OPERATOR_NAMESPACE, sc.namespace):
            self.kubectl("apply", "-f", "-", input=json.dumps(scn.namespace(ns)))
        self.kubectl("apply", "-f", str(root / "samples" / "demo" / "factors.yaml"))
        values = rn.chart_values(image, node.pod_resources_dir, sc.time_factor, self.opts.operator_interval_s,
                                 self.state_dir / "exporter-state")
        try:
            rn.helm_install(cluster.kubeconfig, root / "charts" / "mlfootprint", values, self.state_dir)
        except RuntimeError as e:
            raise DemoError(f"{e}\n  pods: {self.kubectl('get', 'pods', '-A', check=False).stdout}") from None
        self._wait_service_account(kube, sc.namespace)
        ips = rn.pod_ips(json.loads(self.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "json").stdout))
        self.say(f"      exporter and operator Running and Ready in {time.monotonic() - t:.1f} s")
        self.say("[4/6] endpoints:")
        for component, port in (("exporter", 9860), ("operator", 9090)):
            if component in ips:
                url = f"http://{ips[component]}:{port}/metrics"
                self.state.urls[component] = url
                self.say(f"      {component}: {url}")
        self._save()

        driver = Driver(self, kube, sc, serving_port=ports["simulated vLLM metrics"], real_image=image,
                        serving_address=node.ip)
        driver.run()
        self.say("[6/6] waiting for the operator's final figures ...")
        self.wait_figures(kube, sc)
        self.print_results(sc)

    def _wait_service_account(self, kube: Kube, namespace: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
                return
            except KubeError:
                time.sleep(0.2)
        raise DemoError(f"namespace {namespace}: the default ServiceAccount did not appear in {timeout_s:.0f} s "
                        "(is kube-controller-manager running? see its log)")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", self.state.kubeconfig, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def add_process(self, rec: ProcRecord) -> None:
        self.state.processes.append(rec)
        if rec.url:
            self.state.urls[rec.name] = rec.url
        self._save()

    # ------------------------------------------------------------- results
    def figures(self, kube: Kube, sc: scn.Scenario) -> dict[str, dict[str, Any]]:
        """kind/name -> status of every demo run."""
        out = {}
        for plural, kind in (("trainingruns", "TrainingRun"), ("inferenceservices", "InferenceService")):
            for obj in kube.list(f"/apis/mlfootprint.io/v1alpha1/namespaces/{sc.namespace}/{plural}"):
                out[f"{kind}/{obj['metadata']['name']}"] = obj.get("status") or {}
        return out

    @staticmethod
    def missing_figures(figs: dict[str, dict[str, Any]], expected: Sequence[str]) -> list[str]:
        missing = []
        for key in expected:
            st = figs.get(key)
            if st is None:
                missing.append(f"{key} (not found)")
                continue
            kwh = float(((st.get("energy") or {}).get("facilityKWh")) or 0)
            t = float(((st.get("carbon") or {}).get("totalTonnes")) or 0)
            if kwh <= 0 or t <= 0:
                missing.append(f"{key} (energy {kwh:g} kWh, {t:g} tCO2e)")
        return missing

    def wait_figures(self, kube: Kube, sc: scn.Scenario) -> None:
        """Until every run shows energy and tCO2e and every TrainingRun is completed (figures frozen)."""
        expected = [f"TrainingRun/{r.name}" for r in sc.runs] + [f"InferenceService/{sc.serving.name}"]
        deadline = time.monotonic() + self.opts.settle_timeout_s
        while True:
            figs = self.figures(kube, sc)
            missing = self.missing_figures(figs, expected)
            open_runs = [r.name for r in sc.runs if not (figs.get(f"TrainingRun/{r.name}") or {}).get("completionTime")]
            # the per-request energy model needs a few intervals of traffic (e(Tin, Tout), issue 14)
            fitted = bool(((figs.get(f"InferenceService/{sc.serving.name}") or {}).get("inference") or {}).get("workloadModel"))
            if not missing and not open_runs and fitted:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        if not missing:
            log.warning("runs not marked completed (or no workload model fitted) by the operator",
                        extra={"runs": open_runs, "workload_model": fitted})
            return
        raise DemoError(
            "the operator did not report energy and tCO2e for: " + ", ".join(missing)
            + f"\n  operator log: {self.state_dir / 'logs' / 'operator.log'}\n" + tail(self.state_dir / "logs" / "operator.log")
        )

    def print_results(self, sc: scn.Scenario) -> None:
        kc = self.state.kubeconfig
        self.say("\n$ kubectl get trainingruns,inferenceservices.mlfootprint.io -A")
        self.say(self.kubectl("get", "trainingruns,inferenceservices.mlfootprint.io", "-A").stdout.rstrip())
        figures = self.figures(Kube(Path(kc)), sc)
        self.say("\n" + "\n".join(models_lines(figures, sc.final.name, sc.serving.name)))
        html = self.state_dir / "report.html"
        report_json = self.state_dir / "report.json"
        base = ["report", "--kubeconfig", kc, "-n", sc.namespace, "-q"]
        text = self._report(*base, "--group-by", "phase", "--width", "150")
        (self.state_dir / "report.txt").write_text(text)
        self.say(f"\n$ mlfootprint report -n {sc.namespace} --group-by phase")
        self.say(text.rstrip())
        self._report(*base, "--group-by", "phase", "-f", "json", "-o", str(report_json))
        self._report(*base, "--group-by", "phase", "-f", "html", "-o", str(html))
        self.state.report_html = str(html)
        self._save()
        self.print_explore()

    def _report(self, *args: str) -> str:
        proc = subprocess.run(self._py(*args), capture_output=True, text=True, timeout=120, env=self._env())
        if proc.returncode != 0:
            raise DemoError(f"mlfootprint {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def print_explore(self) -> None:
        q = shlex.quote
        s = self.state
        self.say("\nExplore (the demo keeps running; the InferenceService keeps serving simulated traffic):")
        self.say(f"  export KUBECONFIG={q(s.kubeconfig)}")
        self.say("  kubectl get trainingruns,inferenceservices.mlfootprint.io -A -o wide")
        self.say(f"  kubectl -n {s.namespace} get trainingrun llama-8b-final -o yaml     # the full ledger in .status")
        self.say(f"  kubectl -n {s.namespace} get jobs,pods -o wide")
        for name, url in s.urls.items():
            self.say(f"  curl -s {url}    # {name}")
        cli = Path(sys.executable).parent / "mlfootprint"
        cli_text = os.path.relpath(cli) if cli.exists() and not os.path.relpath(cli).startswith("..") else "mlfootprint"
        self.say(f"  {cli_text} report -n {s.namespace} --group-by phase    # or: -f html -o report.html, -f json")
        self.say(f"  HTML report: {s.report_html}")
        self.say(f"  logs: {self.state_dir / 'logs'}  (control plane: {Path(s.cluster_dir) / 'logs'})")
        if self.state_dir == default_state_dir().absolute():
            self.say("Stop everything: make demo-down")
        else:
            self.say(f"Stop everything: {q(sys.executable)} -m mlfootprint.demo down --state-dir {q(str(self.state_dir))}")


# ----------------------------------------------------------------- the timeline


class Driver:
    """Moves the sample project through simulated time: sweep -> final run -> inference.

    Job pods carry ``kwok.x-k8s.io/status: custom`` so kwok leaves them alone: the driver marks
    them Running once scheduled, and Succeeded or Failed when their simulated duration has
    passed (the Job controller then completes or fails the Job). Serving pods are left to kwok
    (Running) and annotated with their simulated vLLM metrics URL.
    """

    def __init__(self, demo: Demo, kube: Kube, sc: scn.Scenario, serving_port: int,
                 clock: Callable[[], float] = time.monotonic, real_image: str | None = None,
                 serving_address: str = "127.0.0.1") -> None:
        self.demo = demo
        self.kube = kube
        self.sc = sc
        self.serving_port = serving_port
        #: on a real node: the image of the runs' containers (they run and end by themselves)
        self.real_image = real_image
        #: where the simulated vLLM server listens (the node's IP: pods reach it, loopback not)
        self.serving_address = serving_address
        self.clock = clock
        self.t0 = clock()
        self.started: dict[str, float] = {}  # run -> wall time its pods started
        self.ended: dict[str, str] = {}  # run -> outcome
        self._ips = 0
        self._last_progress = -1.0
        self._live: Live | None = None  # the status line, rewritten in place on a terminal

    def sim_h(self) -> float:
        return (self.clock() - self.t0) * self.sc.time_factor / 3600.0

    def run(self) -> None:
        sc = self.sc
        ns = sc.namespace
        self.demo.say(f"[5/6] sample project in namespace {ns}: development sweep ({len(sc.sweep)} runs, "
                      f"{sum(r.outcome == 'Failed' for r in sc.sweep)} failing) -> final training run -> inference "
                      f"(about {sc.total_wall_s:.0f} s) ...")
        self.t0 = self.clock()
        for run in sc.sweep:
            self._create_run(run)
        self._drive(list(sc.sweep), "development sweep")
        self._create_run(sc.final)
        self._drive([sc.final], "final training")
        self._start_serving()
        self._event(f"{sc.serving.name} serving: {sc.serving.replicas} vLLM replica(s) x {sc.serving.gpus_per_replica} GPU, "
                    f"diurnal traffic peaking at {sc.serving.peak_requests_per_s:g} requests/s")
        end = self.clock() + sc.wall_s(sc.serving.hours)
        with self._status_line():
            while self.clock() < end:
                self._annotate_serving()
                self._progress("inference", force=False)
                time.sleep(0.25)
            self._progress("inference", force=True)

    def _create_run(self, run: scn.Run) -> None:
        ns = self.sc.namespace
        self.kube.create(f"/apis/batch/v1/namespaces/{ns}/jobs", scn.job(self.sc, run, self.real_image))
        self.kube.create(f"/apis/mlfootprint.io/v1alpha1/namespaces/{ns}/trainingruns", scn.training_run(self.sc, run))
        log.info("created run", extra={"run": run.name, "phase": run.phase, "gpus": run.gpus, "sim_hours": run.hours})

    def _pods(self, label: str) -> list[dict[str, Any]]:
        return self.kube.list(f"/api/v1/namespaces/{self.sc.namespace}/pods", label_selector=label)

    def _drive(self, runs: list[scn.Run], stage: str) -> None:
        with self._status_line():
            self._drive_stage(runs, stage)

    def _drive_stage(self, runs: list[scn.Run], stage: str) -> None:
        pending = {r.name: r for r in runs}
        stuck_deadline = self.clock() + 60.0
        while pending:
            now = self.clock()
            for run in list(pending.values()):
                pods = self._pods(f"{scn.RUN_LABEL}={run.name}")
                if self.real_image is not None:
                    if self._drive_real(run, pods, now, stuck_deadline):
                        del pending[run.name]
                    continue
                if run.name not in self.started:
                    scheduled = [p for p in pods if p["spec"].get("nodeName")]
                    if len(scheduled) < run.pods:
                        if now > stuck_deadline:
                            raise DemoError(f"run {run.name}: {len(scheduled)}/{run.pods} pods scheduled after 60 s "
                                            "(not enough simulated GPUs?)")
                        continue
                    for p in scheduled:
                        self._patch_pod(p, scn.running_status(p, utcnow(), self._next_ip()))
                    self.started[run.name] = now
                    if run.phase == "training":
                        self._event(f"{run.name} started: {run.pods} pod(s) x {run.gpus_per_pod} GPUs, {run.hours:g} h")
                    log.info("run started", extra={"run": run.name, "pods": run.pods, "sim_hour": round(self.sim_h(), 2)})
                elif now - self.started[run.name] >= self.sc.wall_s(run.hours):
                    for p in pods:
                        if (p.get("status") or {}).get("phase") == "Running":
                            self._patch_pod(p, scn.ended_status(p, utcnow(), run.outcome, run.reason))
                    self.ended[run.name] = run.outcome
                    del pending[run.name]
                    why = f" ({run.reason})" if run.reason else ""
                    self._event(f"{run.name} {run.outcome.lower()}{why} after {run.hours:g} h on {run.gpus} GPUs")
                    log.info("run ended", extra={"run": run.name, "outcome": run.outcome, "sim_hour": round(self.sim_h(), 2)})
            self._progress(stage, force=not pending)
            if pending:
                time.sleep(0.2)

    def _drive_real(self, run: scn.Run, pods: list[dict[str, Any]], now: float, stuck_deadline: float) -> bool:
        """On the real node the kubelet runs the pods and they end by themselves; True when ended."""
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        if run.name not in self.started:
            if len(pods) == run.pods and all(ph in ("Running", "Succeeded", "Failed") for ph in phases):
                self.started[run.name] = now
                if run.phase == "training":
                    self._event(f"{run.name} started: {run.pods} pod(s) x {run.gpus_per_pod} GPUs, {run.hours:g} h")
                log.info("run started", extra={"run": run.name, "pods": run.pods, "sim_hour": round(self.sim_h(), 2)})
            elif now > stuck_deadline:
                raise DemoError(f"run {run.name}: pods not running after 60 s: {phases} "
                                f"(kubectl -n {self.sc.namespace} describe pods -l {scn.RUN_LABEL}={run.name})")
            return False
        if len(pods) == run.pods and all(ph in ("Succeeded", "Failed") for ph in phases):
            outcome = "Failed" if "Failed" in phases else "Succeeded"
            self.ended[run.name] = outcome
            why = f" ({run.reason})" if outcome == "Failed" and run.reason else ""
            self._event(f"{run.name} {outcome.lower()}{why} after {run.hours:g} h on {run.gpus} GPUs")
            log.info("run ended", extra={"run": run.name, "outcome": outcome, "sim_hour": round(self.sim_h(), 2)})
            return True
        return False

    def _next_ip(self) -> str:
        self._ips += 1
        return f"10.244.{200 + self._ips // 250}.{1 + self._ips % 250}"

    def _patch_pod(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.kube.merge_patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", status)

    def _start_serving(self) -> None:
        sc = self.sc
        port = self.serving_port
        url = f"http://{self.serving_address}:{port}/metrics"
        argv = [sys.executable, "-m", "mlfootprint.demo.servingsim", "--address", self.serving_address, "--port", str(port),
                "--time-factor", f"{sc.time_factor:g}", "--model", sc.model,
                "--peak-rps", f"{sc.serving.peak_requests_per_s:g}", "--replicas", str(sc.serving.replicas)]
        rec = spawn("vllm-sim", argv, self.demo.state_dir / "logs" / "vllm-sim.log", None, url)
        self.demo.add_process(rec)
        wait_http(f"http://{self.serving_address}:{port}/healthz", 30, rec)
        ns = sc.namespace
        self.kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", scn.deployment(sc, self.real_image))
        self.kube.create(f"/apis/mlfootprint.io/v1alpha1/namespaces/{ns}/inferenceservices", scn.inference_service(sc))
        self.serving_t0 = self.clock()
        log.info("serving started", extra={"service": sc.serving.name, "replicas": sc.serving.replicas, "metrics": url})

    def _annotate_serving(self) -> None:
        for p in self._pods(f"app={self.sc.serving.name}"):
            meta = p["metadata"]
            if scn.SERVING_URL_ANNOTATION in (meta.get("annotations") or {}):
                continue
            url = f"http://{self.serving_address}:{self.serving_port}/pods/{meta['name']}/metrics"
            self.kube.merge_patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                  {"metadata": {"annotations": {scn.SERVING_URL_ANNOTATION: url}}})
            log.info("annotated serving pod", extra={"pod": meta["name"], "url": url})

    def _event(self, text: str) -> None:
        self.demo.say(f"      simulated hour {self.sim_h():5.1f} | {text}")  # above the status line

    @contextlib.contextmanager
    def _status_line(self) -> Iterator[None]:
        """On a terminal, a status line rewritten in place (left printed at the end)."""
        if not self.demo.console.is_terminal:
            yield
            return
        with Live(Text(""), console=self.demo.console, auto_refresh=False) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def _progress(self, stage: str, force: bool) -> None:
        """The status line: rewritten in place on a terminal, else printed every 5 s."""
        now = self.clock()
        if not force and now - self._last_progress < (0.5 if self._live else 5.0):
            return
        self._last_progress = now
        running = [r.name for r in self.sc.runs if r.name in self.started and r.name not in self.ended]
        ok = sum(1 for o in self.ended.values() if o == "Succeeded")
        failed = sum(1 for o in self.ended.values() if o == "Failed")
        if stage == "inference":
            what = f"{self.sc.serving.name}: {self._requests_served():,.0f} requests served"
        else:
            what = f"running: {', '.join(running) or '-'}"
        line = f"      simulated hour {self.sim_h():5.1f} | {stage:<17} | {what} | runs succeeded {ok}, failed {failed}"
        if self._live is not None:
            self._live.update(Text(line, no_wrap=True, overflow="ellipsis"), refresh=True)
        else:
            self.demo.say(line)

    def _requests_served(self) -> float:
        """Requests counted so far by the simulated vLLM server (0 if it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://{self.serving_address}:{self.serving_port}/metrics", timeout=2.0) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError):
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vllm:request_success_total{"))


# ----------------------------------------------------------------- down / status


def down(state_dir: Path, *, quiet: bool = False, out: TextIO = sys.stdout) -> bool:
    """Stop every process of the demo in ``state_dir`` and its control plane; verify none is left.

    Returns True if anything was running. Raises DemoError if a process survives.
    """
    state_dir = state_dir.absolute()
    state_file = state_dir / STATE_NAME
    state = DemoState.load(state_file) if state_file.exists() else DemoState(cluster_dir=str(state_dir / "cluster"))
    stopped = stop_all(state.processes)
    cluster_dir = Path(state.cluster_dir or state_dir / "cluster")
    cluster_pids: dict[str, int] = {}
    cluster_bins: dict[str, str] = {}
    if (cluster_dir / STATE_FILE).exists():
        cluster = DevCluster.load(cluster_dir)
        raw = json.loads((cluster_dir / STATE_FILE).read_text())
        cluster_bins = {p["name"]: p["binary"] for p in raw["processes"]}
        cluster_pids = {n: p for n, p in cluster.pids().items() if cluster.running().get(n)}
        cluster.stop()
    left = [f"{r.name} (pid {r.pid})" for r in state.processes if is_running(r) or group_members(r.pid)]
    left += [f"{n} (pid {p})" for n, p in cluster_pids.items() if pid_alive(p, cluster_bins.get(n))]
    if left:
        raise DemoError("still running after stop: " + ", ".join(left))
    anything = bool(stopped or cluster_pids)
    if state_file.exists():
        state.processes = []
        state.save(state_file)
    if not quiet:
        if anything:
            names = [*stopped, *cluster_pids]
            print(f"stopped {len(names)} demo processes: {', '.join(names)}; none left running", file=out)
            print(f"(logs and reports kept in {state_dir})", file=out)
        else:
            print(f"no demo running from {state_dir}", file=out)
    log.info("demo stopped", extra={"state_dir": str(state_dir), "stopped": [*stopped, *cluster_pids]})
    return anything


def status(state_dir: Path, out: TextIO = sys.stdout) -> int:
    """Print each recorded process and whether it runs; 0 if all do."""
    state_file = state_dir.absolute() / STATE_NAME
    if not state_file.exists():
        print(f"no demo state in {state_dir}", file=out)
        return 1
    state = DemoState.load(state_file)
    ok = True
    rows: list[tuple[str, int, bool]] = [(r.name, r.pid, is_running(r)) for r in state.processes]
    cluster_dir = Path(state.cluster_dir)
    if (cluster_dir / STATE_FILE).exists():
        cluster = DevCluster.load(cluster_dir)
        rows += [(n, cluster.pids()[n], up) for n, up in cluster.running().items()]
    if not rows:
        print("demo not running", file=out)
        return 1
    table = Table("process", "pid", "state", box=None, pad_edge=False)
    for name, pid, up in rows:
        ok &= up
        table.add_row(name, str(pid), "running" if up else "NOT RUNNING")
    Console(file=out, highlight=False, soft_wrap=True).print(table)
    return 0 if ok else 1

"""The fault-injection campaign (issue 11): real control plane, real exporter and operator
processes, simulated GPUs whose true energy is known, and faults injected at random points
(docs/faults.md).

One :class:`Campaign` owns everything it starts (a dedicated :class:`DevCluster`, one exporter
per kwok GPU node, the operator, the simulated serving-engine pages and the device-file
recorder) and stops all of it in :meth:`Campaign.close`, also after a failure: every process
runs in its own process group, started with ``die_with_parent`` so the kernel kills it if the
test process dies.

The workload: TrainingRuns and InferenceServices whose pods run on the kwok nodes with
``mlfootprint.io/sim-profile`` set, each pod pinned to its node (``spec.nodeName``) and named in
creation order, so the exporter's simulated GPU assignment (first fit in creation order) is
the same after every restart and each GPU is held by one pod for the whole campaign.

Faults (:data:`FAULT_KINDS`), each at a random point with seeded random parameters:
``kill -9`` of an exporter (restarted with its state file, without one, with a garbage one, or
with a stale one after its checkpoint writes failed; also while the API server hangs), a
graceful exporter restart, an exporter that hangs, ``kill -9`` of the operator (also while the
API server hangs), kill and freeze (SIGSTOP/SIGCONT) of kube-apiserver, garbage factors (NaN,
1e308, wrong types, a cross-namespace ``factorsRef``), garbage serving metrics (NaN, decreasing
counters, an HTML error page, HTTP 500; engines with and without a process start time),
overlapping runs (also two created in the same second), late runs (created after their pods
started) and new runs.

After each fault (:meth:`Campaign.recover`): no managed process exited on its own (no crash
loop), every run that meters pods moves again within ``freeze_limit_s`` of the fix, every
component of runs sharing pods is billed no more GPU energy than its pods' GPUs used
(``oracle.py``), no pod is in two runs' ledgers, no InferenceService counts more requests than
served. At the end (:meth:`Campaign.finish`): every component is billed at least the truth
minus its documented gaps. Every miss is collected in :attr:`Campaign.failures`; the test
fails on any.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfootprint import rfc3339
from mlfootprint.demo.kube import Kube, KubeError
from mlfootprint.demo.orchestrator import tail
from mlfootprint.demo.procs import ProcRecord, group_members, is_running, spawn, stop_all
from mlfootprint.devcluster import DevCluster
from mlfootprint.devcluster.cluster import free_ports
from mlfootprint.exporter.gpu_sim import read_device_file
from mlfootprint.operator.energy.parse import parse_samples
from tests.faults.oracle import (
    ClockMap,
    DeviceHistory,
    DeviceRecord,
    GapWindow,
    allowed_loss_j,
    components,
    pods_truth_j,
    tolerance_j,
)
from tests.text_server import Reply, TextServer

log = logging.getLogger("tests.faults")

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "faults"
OPERATOR_NAMESPACE = "mlfootprint"
OTHER_TENANT = "other-tenant"
GROUP_LABEL = "faults.mlfootprint.io/group"
PROFILE_ANNOTATION = "mlfootprint.io/sim-profile"
SERVING_URL_ANNOTATION = "mlfootprint.io/serving-metrics-url"
CRD_API = "/apis/mlfootprint.io/v1alpha1"
PLURAL = {"TrainingRun": "trainingruns", "InferenceService": "inferenceservices"}
GPUS_PER_NODE = 8
#: the namespace's factors (valid); garbage replaces them during a factors fault
GOOD_FACTORS = {"pue": "1.2", "carbonIntensity": "300", "wueOnsite": "0.2", "wueOffsite": "1.3"}
#: a value in another tenant's ConfigMap that must never appear in this namespace's runs
OTHER_TENANT_SECRET = "s3cr3t-hunter2-token"

FAULT_KINDS = (
    "exporter-kill9-state",
    "exporter-kill9-nostate",
    "exporter-garbage-state",
    "exporter-stale-state",
    "exporter-restart",
    "exporter-freeze",
    "operator-kill9",
    "apiserver-kill9",
    "apiserver-freeze",
    "exporter-kill9-apiserver-down",
    "operator-kill9-apiserver-down",
    "factors-garbage",
    "factors-cross-namespace",
    "serving-garbage",
    "overlap-run",
    "overlap-same-second",
    "late-run",
    "new-run",
)


class CampaignError(RuntimeError):
    """The campaign itself could not go on (set-up failed, a wait ran out)."""


class Falsy(dict):  # type: ignore[type-arg]
    """A false value that still shows what was seen (for the timeout message of a wait)."""

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class CampaignConfig:
    """What one campaign does. ``seed`` fixes the sequence of faults and their parameters
    (not the exact moments relative to the processes' own cycles)."""

    seed: int
    duration_s: float = 120.0
    every_kind_once: bool = True  # CI: each kind at least once (in seeded random order)
    time_factor: float = 60.0  # simulated seconds per wall second: ~36 kJ per GPU and second
    attribution_interval_s: float = 0.5
    operator_interval_s: float = 0.5
    freeze_limit_s: float = 45.0  # a run that does not move this long after a fix is frozen
    recover_timeout_s: float = 60.0
    nodes: int = 2
    kinds: tuple[str, ...] = ()  # only these fault kinds, in this order (reproducing one finding)


# ----------------------------------------------------------------------------- processes


class Managed:
    """One campaign process (an exporter or the operator), started detached in its own
    process group with :func:`mlfootprint.demo.procs.spawn`. An exit the campaign did not
    cause is recorded in :attr:`crashes` (and the process started again, as a kubelet would)."""

    def __init__(self, name: str, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env
        self.rec: ProcRecord | None = None
        self.starts = 0
        self.crashes: list[str] = []
        self.paused = False

    def argv(self) -> list[str]:
        raise NotImplementedError

    def health_url(self) -> str:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0, *, wait: bool = True) -> float:
        """Start (and wait until healthy); returns the unix time it was started."""
        t = time.time()
        self.rec = spawn(self.name, self.argv(), self.log_path, self.env, die_with_parent=True)
        self.starts += 1
        if wait:
            self.wait_healthy(timeout_s)
        return t

    def pause(self) -> None:
        """SIGSTOP the process group (a hung process: its port accepts, nothing answers)."""
        if self.rec is not None:
            os.killpg(self.rec.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.rec is not None and self.paused:
            os.killpg(self.rec.pid, signal.SIGCONT)
        self.paused = False

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise CampaignError(f"{self.name} exited while starting; log tail:\n{tail(self.log_path, 30)}")
            try:
                with urllib.request.urlopen(self.health_url(), timeout=2.0) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise CampaignError(f"{self.name} not healthy after {timeout_s:.0f} s ({last}); log tail:\n{tail(self.log_path, 30)}")

    def alive(self) -> bool:
        return self.rec is not None and is_running(self.rec)

    def kill(self, sig: signal.Signals = signal.SIGKILL, timeout_s: float = 15.0) -> None:
        """Signal the process group and wait until it is gone (reaping the leader)."""
        rec = self.rec
        if rec is None:
            return
        if is_running(rec):
            try:
                os.killpg(rec.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (is_running(rec) or group_members(rec.pid)):
            _reap(rec.pid)
            time.sleep(0.02)
        if is_running(rec) or group_members(rec.pid):
            os.killpg(rec.pid, signal.SIGKILL)
            while is_running(rec) or group_members(rec.pid):
                _reap(rec.pid)
                time.sleep(0.02)
        _reap(rec.pid)
        self.rec = None

    def check_alive(self) -> bool:
        """False (and the exit recorded, the process restarted) when it died on its own."""
        if self.rec is None or self.alive():
            return True
        _reap(self.rec.pid)
        self.crashes.append(f"{self.name} (pid {self.rec.pid}) exited on its own; log tail:\n{tail(self.log_path, 20)}")
        log.error("process exited on its own", extra={"component": self.name, "pid": self.rec.pid})
        self.rec = None
        self.start()
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class Exporter(Managed):
    """``mlfootprint exporter`` for one kwok node: simulated GPUs with a device file (the
    truth), a state file, pods from the API server."""

    def __init__(self, node: str, index: int, port: int, work: Path, kubeconfig: Path, cfg: CampaignConfig, env: dict[str, str]) -> None:
        super().__init__(f"exporter-{node}", work / "logs" / f"exporter-{node}.log", env)
        self.node = node
        self.index = index
        self.port = port
        self.dir = work / node
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file = self.dir / "state.json"
        self.device_file = self.dir / "devices.json"
        self.kubeconfig = kubeconfig
        self.cfg = cfg

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "mlfootprint", "exporter",
            "--gpu-source", "sim", "--sim-seed", str(self.index), "--sim-time-factor", f"{self.cfg.time_factor:g}",
            "--sim-device-file", str(self.device_file), "--state-file", str(self.state_file),
            "--pod-source", "kubernetes", "--kubeconfig", str(self.kubeconfig), "--node-name", self.node,
            "--host-source", "sim", "--listen-address", "127.0.0.1", "--port", str(self.port),
            "--sample-interval-s", "0.1", "--attribution-interval-s", f"{self.cfg.attribution_interval_s:g}",
            "--ended-pod-grace-s", "86400", "--log-format", "json",
        ]

    def page(self) -> str:
        with urllib.request.urlopen(self.url, timeout=5.0) as resp:
            return resp.read().decode()


class Operator(Managed):
    """``mlfootprint operator`` as a process (kill -9 is real), scrape mode, one namespace."""

    def __init__(self, work: Path, kubeconfig: Path, exporter_urls: list[str], cfg: CampaignConfig, env: dict[str, str]) -> None:
        super().__init__("operator", work / "logs" / "operator.log", env)
        self.kubeconfig = kubeconfig
        self.exporter_urls = exporter_urls
        self.cfg = cfg
        self.port = 0

    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self, timeout_s: float = 60.0, *, wait: bool = True) -> float:
        self.port = free_ports(1)[0]
        return super().start(timeout_s, wait=wait)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "mlfootprint", "operator", "--kubeconfig", str(self.kubeconfig),
            "--operator-namespace", OPERATOR_NAMESPACE, "--namespace", NAMESPACE, "--no-discovery",
            "--interval", f"{self.cfg.operator_interval_s:g}", "--exporter-service", "none",
            *(a for u in self.exporter_urls for a in ("--exporter-url", u)),
            "--metrics-port", str(self.port), "--metrics-addr", "127.0.0.1", "--log-format", "json",
        ]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.health_url(), timeout=5.0) as resp:
            return resp.read().decode()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for _n, lab, v in parse_samples(text, (name,)) if all(lab.get(k) == x for k, x in labels.items()))


# ----------------------------------------------------------------------------- serving truth


class ServingPages:
    """Simulated serving-engine ``/metrics``, one page per serving pod. The counters grow with
    wall time from the campaign's start (the truth); during a fault a pod's page is garbage.

    Engines: ``vllm`` exposes ``process_start_time_seconds`` (the operator tells an engine
    restart from an inconsistent source by it); ``tgi`` does not (the operator has only the
    plausibility of a drop to go by)."""

    REQUESTS_PER_S = 40.0
    PROMPT_TOKENS = 20.0
    OUTPUT_TOKENS = 100.0
    MODES = ("ok", "nan", "decreasing", "html", "http500")

    def __init__(self) -> None:
        self.t0 = time.time()
        self.engines: dict[str, str] = {}
        self.modes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._http = TextServer(self._page)

    def add(self, pod: str, engine: str) -> str:
        """Serve ``pod``'s page as ``engine``; returns its URL."""
        with self._lock:
            self.engines[pod] = engine
        return f"{self._http.base}/pods/{pod}/metrics"

    def true_requests(self, at: float | None = None) -> float:
        return math.floor(self.REQUESTS_PER_S * max((time.time() if at is None else at) - self.t0, 0.0))

    def set_mode(self, pod: str, mode: str) -> None:
        with self._lock:
            self.modes[pod] = mode

    def _page(self, path: str) -> str | Reply | None:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "pods":
            return None
        pod = parts[1]
        with self._lock:
            engine = self.engines.get(pod)
            mode = self.modes.get(pod, "ok")
        if engine is None:
            return None
        req = self.true_requests()
        if mode == "html":
            return Reply(502, "text/html", "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n")
        if mode == "http500":
            return Reply(500, "text/plain", "internal server error\n")
        if mode == "decreasing":
            req = math.floor(req * 0.3)  # another replica behind the same URL, far behind
        values = [f"{v:.1f}" for v in (req, req * self.PROMPT_TOKENS, req * self.OUTPUT_TOKENS)]
        if mode == "nan":
            values = ["NaN", "+Inf", "NaN"]
        if engine == "vllm":
            return (
                f"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {self.t0:.3f}\n"
                f"# TYPE vllm:request_success_total counter\n"
                f'vllm:request_success_total{{finished_reason="stop",model_name="m"}} {values[0]}\n'
                f'vllm:prompt_tokens_total{{model_name="m"}} {values[1]}\n'
                f'vllm:generation_tokens_total{{model_name="m"}} {values[2]}\n'
            )
        return (  # tgi: no process metrics
            f"# TYPE tgi_request_success counter\ntgi_request_success {values[0]}\n"
            f"tgi_request_input_length_sum {values[1]}\ntgi_request_input_length_count {values[0]}\n"
            f"tgi_request_generated_tokens_sum {values[2]}\ntgi_request_generated_tokens_count {values[0]}\n"
        )

    def close(self) -> None:
        self._http.close()


# ----------------------------------------------------------------------------- device recorder


class DeviceRecorder:
    """Polls every node's simulated device file (10 per attribution interval) and keeps the
    records in a :class:`DeviceHistory`; the truth the checks compare with."""

    def __init__(self, device_files: dict[str, Path], poll_s: float) -> None:
        self.files = device_files
        self.poll_s = poll_s
        self.history = DeviceHistory()
        self.clocks: dict[str, ClockMap] = {}
        self.gpu_node: dict[str, str] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="device-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_s)

    def poll(self) -> None:
        for node, path in self.files.items():
            try:
                records = read_device_file(path)
                doc = json.loads(path.read_text())
                clock = ClockMap(float(doc["factor"]), float(doc["anchor_unix"]), float(doc["anchor_sim"]))
            except (OSError, ValueError, KeyError):
                continue  # not written yet, or replaced right now
            with self.lock:
                self.clocks[node] = clock
                for uuid, r in records.items():
                    self.gpu_node[uuid] = node
                    self.history.add(uuid, DeviceRecord(r.t_s, r.energy_j, r.profile is not None))

    def first_record_at_or_after(self, uuid: str, sim_s: float) -> float:
        with self.lock:
            for r in self.history.records(uuid):
                if r.t_s >= sim_s:
                    return r.t_s
        return math.inf

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ----------------------------------------------------------------------------- bookkeeping


@dataclass
class Group:
    """Pods of one workload, on one node, created together (names sort in creation order)."""

    name: str
    node: str
    pods: list[str]
    gpus_per_pod: int
    profile: str
    engine: str | None = None  # serving pods: the engine their metrics page imitates
    created_unix: float = field(default_factory=time.time)


@dataclass
class Run:
    kind: str
    name: str
    group: str

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class GapEvent:
    """An exporter restart that lost its counters (no state file, or an unusable one): the
    energy its pods used between the operator's last read of the old counters and the new
    exporter's first reading is missing (docs/exporter.md#restarts)."""

    node: str
    kill_unix: float
    spawn_unix: float
    why: str
    allowed_j: float = 0.0  # the held energy inside it (computed at the end)


@dataclass
class FaultEvent:
    kind: str
    detail: str
    t_start: float
    t_fixed: float = 0.0
    freeze_s: float = 0.0
    frozen: list[str] = field(default_factory=list)
    excess_j: float = 0.0
    gaps: list[GapEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Totals:
    """One run's figures as the API server holds them."""

    gpu_j: float
    requests: float
    observed_at: float
    conditions: dict[str, dict[str, Any]]
    series: set[str]
    created: str
    co2e_finite: bool
    #: serving pod -> its containers' restarts as the ledger holds them (None: not known)
    serving_restarts: dict[str, int | None]


# ----------------------------------------------------------------------------- the campaign


class Campaign:
    """Everything one campaign starts, the faults, the checks and the findings."""

    def __init__(self, work: Path, cfg: CampaignConfig) -> None:
        self.work = work
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.failures: list[str] = []
        self.events: list[FaultEvent] = []
        self.groups: list[Group] = []
        self.runs: list[Run] = []
        self.pod_gpus: dict[str, set[str]] = {}
        self.pod_node: dict[str, str] = {}
        self.gaps: list[GapEvent] = []
        self._excess: dict[str, float] = {}
        self._excess_requests: dict[str, float] = {}
        self._restarts_unknown: set[str] = set()  # runs reported for serving pods without restarts
        self.final: dict[str, float] = {}
        #: (runs, truth J, billed J, lost J, documented gap J) per component at the end
        self.final_components: list[tuple[str, float, float, float, float]] = []
        self.cluster: DevCluster | None = None
        self.exporters: dict[str, Exporter] = {}
        self.operator: Operator | None = None
        self.serving: ServingPages | None = None
        self.recorder: DeviceRecorder | None = None
        self.kube: Kube | None = None
        self._seq = 0
        self._run_seq = 0
        self._paused = False

    # ------------------------------------------------------------------ set-up / tear-down
    def start(self) -> None:
        """The dedicated control plane, CRDs, namespaces and factors, the exporters, the
        recorder, the serving pages, the operator and the first workload."""
        t0 = time.monotonic()
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self.cluster = DevCluster(self.work / "cluster", gpu_nodes=self.cfg.nodes, die_with_parent=True).start()
        kc = self.cluster.kubeconfig
        self.kube = Kube(kc, timeout_s=5.0)
        self.cluster.apply_crds(ROOT / "crds")
        for ns in (NAMESPACE, OPERATOR_NAMESPACE, OTHER_TENANT):
            self.kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self._put_factors(GOOD_FACTORS)
        self.kube.create(f"/api/v1/namespaces/{OTHER_TENANT}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mlfootprint-factors"},
            "data": {"pue": "1.05", "carbonIntensity": "20", "apiToken": OTHER_TENANT_SECRET},
        })
        self._wait(self._sa_ready, 30, "the namespace's default ServiceAccount")
        env = {**os.environ, "KUBECONFIG": str(kc), "PYTHONUNBUFFERED": "1"}
        nodes = [f"kwok-gpu-{i}" for i in range(self.cfg.nodes)]
        ports = free_ports(len(nodes))
        for i, (node, port) in enumerate(zip(nodes, ports, strict=True)):
            self.exporters[node] = Exporter(node, i, port, self.work, kc, self.cfg, env)
        self.recorder = DeviceRecorder({n: e.device_file for n, e in self.exporters.items()}, self.cfg.attribution_interval_s / 10)
        for e in self.exporters.values():
            e.start()
        self.serving = ServingPages()
        self.operator = Operator(self.work, kc, [e.url for e in self.exporters.values()], self.cfg, env)
        self.operator.start()
        # the workload: two training runs, two InferenceServices (an engine with a process
        # start time and one without), pods waiting for a late run
        self._new_group("training", gpus_per_pod=1, pods=2, node=nodes[0])
        self._create_run("TrainingRun", self.groups[-1].name)
        self._new_group("training", gpus_per_pod=2, pods=1, node=nodes[-1])
        self._create_run("TrainingRun", self.groups[-1].name)
        self._new_group("inference", gpus_per_pod=1, pods=1, node=nodes[0], engine="vllm")
        self._create_run("InferenceService", self.groups[-1].name)
        self._new_group("inference", gpus_per_pod=1, pods=1, node=nodes[-1], engine="tgi")
        self._create_run("InferenceService", self.groups[-1].name)
        self._new_group("training", gpus_per_pod=1, pods=1, node=nodes[-1])  # orphans: a late run's
        self._wait_pods_metered()
        self._wait(lambda: all(self._totals_of(r) and self._totals_of(r).gpu_j > 0 for r in self.runs), 60,
                   "every run's first figures")
        log.info("campaign ready", extra={"seed": self.cfg.seed, "start_s": round(time.monotonic() - t0, 1),
                                          "groups": len(self.groups), "runs": len(self.runs)})

    def dump(self) -> None:
        """Keep the runs, the operator's and the exporters' metrics next to the logs."""
        out = self.work / "logs"
        for name, fetch in (
            ("runs.json", lambda: json.dumps(self._objects(), indent=1)),
            ("operator-metrics.txt", lambda: self.operator.metrics() if self.operator else ""),
            *((f"exporter-{n}-metrics.txt", e.page) for n, e in self.exporters.items()),
        ):
            try:
                (out / name).write_text(fetch())
            except Exception as e:  # noqa: BLE001 - diagnostics only
                (out / name).write_text(f"unavailable: {e!r}\n")

    def close(self) -> None:
        """Stop everything started, in reverse order (resuming what is paused, keeping the
        runs and metrics next to the logs first); never raises."""
        if self.cluster is not None and self._paused:
            try:
                self.cluster.resume("kube-apiserver")
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
            self._paused = False
        managed = [m for m in (self.operator, *self.exporters.values()) if m is not None]
        for m in managed:
            m.resume()
        if self.kube is not None:
            self.dump()
        recs = [m.rec for m in managed if m.rec is not None]
        try:
            stop_all(recs, timeout_s=10.0)
        except Exception as e:  # noqa: BLE001
            log.error("could not stop campaign processes", extra={"error": str(e)})
        for r in recs:
            _reap(r.pid)
        for closer in (self.recorder, self.serving):
            if closer is not None:
                closer.close()
        if self.cluster is not None:
            self.cluster.stop()

    # ------------------------------------------------------------------ API helpers
    def _api(self) -> Kube:
        assert self.kube is not None
        return self.kube

    def _sa_ready(self) -> bool:
        try:
            self._api().request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default")
            return True
        except KubeError:
            return False

    def _put_factors(self, data: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mlfootprint-factors"}, "data": data}
        path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
        try:
            self._api().request("PUT", f"{path}/mlfootprint-factors", body)
        except KubeError as e:
            if e.status != 404:
                raise
            self._api().create(path, body)

    def _retry(self, what: str, fn: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        """Call ``fn`` until the API server answers it (it may be restarting)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return fn()
            except KubeError as e:
                if time.monotonic() > deadline or (e.status is not None and e.status < 500 and e.status != 429):
                    raise CampaignError(f"{what}: {e}") from None
                time.sleep(0.3)

    def _wait(self, fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = fn()
            except (KubeError, OSError, KeyError, TypeError, ValueError) as e:
                last = e
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise CampaignError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")

    # ------------------------------------------------------------------ workload
    def _gpus_free(self, node: str) -> int:
        used = sum(g.gpus_per_pod * len(g.pods) for g in self.groups if g.node == node)
        return GPUS_PER_NODE - used

    def _node_with(self, gpus: int) -> str | None:
        nodes = [n for n in self.exporters if self._gpus_free(n) >= gpus]
        return self.rng.choice(nodes) if nodes else None

    def _new_group(self, profile: str, *, gpus_per_pod: int, pods: int, node: str, engine: str | None = None) -> Group:
        name = f"g{self._seq:02d}"
        self._seq += 1
        group = Group(name, node, [f"{name}-p{i}" for i in range(pods)], gpus_per_pod, profile, engine)
        for pod in group.pods:
            annotations = {PROFILE_ANNOTATION: profile}
            if engine is not None:
                assert self.serving is not None
                annotations[SERVING_URL_ANNOTATION] = self.serving.add(pod, engine)
            body = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "labels": {GROUP_LABEL: name}, "annotations": annotations},
                "spec": {
                    "nodeName": node,  # bound at creation: the exporter sees pods in creation order
                    "containers": [{"name": "main", "image": "trainer:latest",
                                    "resources": {"limits": {"nvidia.com/gpu": str(gpus_per_pod)},
                                                  "requests": {"nvidia.com/gpu": str(gpus_per_pod)}}}],
                },
            }
            self._retry(f"create pod {pod}", lambda b=body: self._api().create(f"/api/v1/namespaces/{NAMESPACE}/pods", b))
            self.pod_node[pod] = node
        self.groups.append(group)
        log.info("pods created", extra={"group": name, "node": node, "pods": pods, "gpus_per_pod": gpus_per_pod, "profile": profile})
        return group

    def _create_run(self, kind: str, group: str, name: str | None = None) -> Run:
        if name is None:
            name = f"r{self._run_seq:02d}-{group}"
            self._run_seq += 1
        spec: dict[str, Any] = {"selector": {"matchLabels": {GROUP_LABEL: group}}, "model": {"name": "faults-llm"}}
        if kind == "InferenceService":
            spec["servingMetrics"] = {"engine": self._group(group).engine or "vllm"}
        body = {"apiVersion": "mlfootprint.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        self._retry(f"create {kind} {name}", lambda: self._api().create(f"{CRD_API}/namespaces/{NAMESPACE}/{PLURAL[kind]}", body))
        run = Run(kind, name, group)
        self.runs.append(run)
        log.info("run created", extra={"kind": kind, "run": name, "group": group})
        return run

    def _group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    def _wait_pods_metered(self, timeout_s: float = 60.0) -> None:
        """Until every pod's GPUs are reported by its node's exporter."""
        def done() -> bool:
            self._learn_gpus()
            return all(len(self.pod_gpus.get(p, ())) == g.gpus_per_pod for g in self.groups for p in g.pods)
        self._wait(done, timeout_s, "every pod's GPUs on its exporter's page")

    def _learn_gpus(self) -> None:
        """Which GPUs each pod holds, from the exporters' pages (a pod keeps its GPUs: a
        change would mean the oracle's assumption broke, which is reported)."""
        for e in self.exporters.values():
            try:
                page = e.page()
            except OSError:
                continue
            seen: dict[str, set[str]] = {}
            for _n, labels, _v in parse_samples(page, ("mlfootprint_pod_gpu_energy_joules_total",)):
                if labels.get("namespace") == NAMESPACE and labels.get("gpu_uuid"):
                    seen.setdefault(labels["pod"], set()).add(labels["gpu_uuid"])
            for pod, gpus in seen.items():
                known = self.pod_gpus.setdefault(pod, set())
                if known and not gpus <= known:
                    self._fail(f"pod {pod} moved from GPUs {sorted(known)} to {sorted(gpus)} (oracle assumption broken)")
                known.update(gpus)

    # ------------------------------------------------------------------ reading figures
    def _objects(self) -> dict[str, dict[str, Any]]:
        out = {}
        for kind, plural in PLURAL.items():
            for obj in self._api().list(f"{CRD_API}/namespaces/{NAMESPACE}/{plural}"):
                out[f"{kind}/{obj['metadata']['name']}"] = obj
        return out

    @staticmethod
    def _totals(obj: dict[str, Any]) -> Totals:
        st = obj.get("status") or {}
        ledger = st.get("ledger") or {}
        t = ledger.get("totals") or {}
        observed = ledger.get("observedAt")
        co2e = [t.get(k, 0.0) for k in ("co2eOpG", "co2eEmbG")]
        return Totals(
            gpu_j=float(t.get("gpuJ") or 0.0),
            requests=float(t.get("requests") or 0.0),
            observed_at=rfc3339.parse(observed) or 0.0,
            conditions={c["type"]: c for c in st.get("conditions") or []},
            series=set((ledger.get("series") or {}).keys()),
            created=obj["metadata"].get("creationTimestamp", ""),
            co2e_finite=all(isinstance(v, (int, float)) and math.isfinite(v) for v in co2e),
            serving_restarts={pod: e.get("restarts") for pod, e in (ledger.get("serving") or {}).items()},
        )

    def _totals_of(self, run: Run) -> Totals | None:
        obj = self._objects().get(run.key)
        return None if obj is None else self._totals(obj)

    def _all_totals(self) -> dict[str, Totals]:
        return {k: self._totals(o) for k, o in self._objects().items()}

    def _run_pods(self) -> dict[str, list[str]]:
        return {r.key: list(self._group(r.group).pods) for r in self.runs}

    def _owners(self, totals: dict[str, Totals]) -> dict[str, str]:
        """pod -> the run that meters it (docs/operator.md, PodsExclusive): the oldest run whose
        ledger holds the pod, else the oldest run selecting it (by creationTimestamp, then
        kind and name)."""
        selecting: dict[str, list[tuple[bool, str, str, str]]] = {}
        for r in self.runs:
            t = totals.get(r.key)
            if t is None:
                continue
            metering = {s.split("/", 1)[0] for s in t.series}
            for pod in self._group(r.group).pods:
                # sort key: metering runs first, then age
                selecting.setdefault(pod, []).append((pod not in metering, t.created, r.kind, r.name))
        return {pod: f"{min(c)[2]}/{min(c)[3]}" for pod, c in selecting.items()}

    def _active_runs(self, totals: dict[str, Totals]) -> list[str]:
        """Runs that meter at least one pod (their figures must move)."""
        return sorted(set(self._owners(totals).values()))

    # ------------------------------------------------------------------ checks
    def _fail(self, message: str) -> None:
        log.error("check failed", extra={"failure": message})
        self.failures.append(message)

    def check_processes(self) -> list[str]:
        """Every managed and control-plane process still runs (none exited on its own)."""
        problems = []
        for m in (self.operator, *self.exporters.values()):
            if m is not None and not m.check_alive():
                problems.append(m.crashes[-1])
        assert self.cluster is not None
        dead = [n for n, up in self.cluster.running().items() if not up]
        if dead:
            problems.append(f"control plane component(s) exited: {', '.join(dead)}")
        return problems

    def wait_moving(self, since: float, runs: list[str] | None = None, *, what: str = "gpu") -> tuple[float, list[str]]:
        """Wait until each of ``runs`` (default: the active ones) shows figures observed after
        ``since`` that are higher than at ``since``; returns (longest wait in s, runs that did
        not move within ``freeze_limit_s``: frozen)."""
        base = self._retry("read runs", self._all_totals)
        runs = self._active_runs(base) if runs is None else runs
        start = {r: (base[r].requests if what == "requests" else base[r].gpu_j) for r in runs if r in base}
        moved: dict[str, float] = {}
        deadline = time.time() + self.cfg.freeze_limit_s
        while time.time() < deadline and len(moved) < len(start):
            try:
                now_totals = self._all_totals()
            except KubeError:
                time.sleep(0.25)
                continue
            for r, v0 in start.items():
                t = now_totals.get(r)
                if r in moved or t is None:
                    continue
                value = t.requests if what == "requests" else t.gpu_j
                if t.observed_at > since and value > v0:
                    moved[r] = time.time() - since
            time.sleep(0.25)
        frozen = sorted(set(start) - set(moved))
        return (max(moved.values(), default=0.0) if not frozen else self.cfg.freeze_limit_s), frozen

    def check_bounds(self, after: str = "") -> float:
        """Never more than the truth: per component of runs sharing pods, the GPU energy billed
        is at most the held energy of the pods' GPUs; no pod in two runs' ledgers. Returns the
        J double-counted since the previous check (a component's excess is reported when it
        appears or grows, not again at every later check)."""
        totals = self._retry("read runs", self._all_totals)
        self._learn_gpus()
        assert self.recorder is not None
        self.recorder.poll()  # the truth is read after the figures: it can only be larger
        new_j = 0.0
        with self.recorder.lock:
            for comp in components(self._run_pods()):
                counted = sum(totals[r].gpu_j for r in comp.runs if r in totals)
                truth, readings = pods_truth_j(comp.pods, self.pod_gpus, self.recorder.history)
                excess = counted - truth
                # a component grows when a run joins it: its excess is tracked by pod set
                key = comp.label
                prev = max((v for k, v in self._excess.items() if set(k.split("+")) <= comp.runs), default=0.0)
                if excess > tolerance_j(truth, readings) and excess > prev + tolerance_j(truth, readings):
                    new_j += excess - prev
                    self._fail(f"{comp.label}: billed {counted:.0f} J of GPU energy, its pods' GPUs used {truth:.0f} J "
                               f"(+{excess:.0f} J double-counted{', seen after ' + after if after else ''})")
                self._excess[key] = max(self._excess.get(key, 0.0), excess if excess > tolerance_j(truth, readings) else 0.0, prev)
        counted_by: dict[str, list[str]] = {}
        for key, t in totals.items():
            for s in t.series:
                counted_by.setdefault(s.split("/", 1)[0], []).append(key)
        for pod, keys in counted_by.items():
            if len(keys) > 1:
                self._fail(f"pod {pod} is counted by {len(keys)} runs: {', '.join(sorted(keys))}")
        for key, t in totals.items():
            if not t.co2e_finite:
                self._fail(f"{key}: a CO2e total is not a finite number")
        if self.recorder.history.regressions:
            self._fail(f"a simulated device counter went back: {self.recorder.history.regressions[:3]}")
            self.recorder.history.regressions.clear()
        return new_j

    @property
    def double_counted_j(self) -> float:
        """J billed beyond the truth now, summed over components (the largest seen each)."""
        labels = sorted(self._excess, key=lambda k: -len(k.split("+")))
        kept: list[set[str]] = []
        total = 0.0
        for k in labels:  # a grown component's excess includes its parts'
            runs = set(k.split("+"))
            if any(runs <= big for big in kept):
                continue
            kept.append(runs)
            total += self._excess[k]
        return total

    def recover(self, event: FaultEvent) -> None:
        """After a fix: processes healthy, every active run moving again, bounds hold."""
        crashes = self.check_processes()
        event.problems += crashes
        for c in crashes:
            self._fail(c)
        event.freeze_s, event.frozen = self.wait_moving(event.t_fixed)
        for r in event.frozen:
            self._fail(f"{r} frozen: no new GPU energy within {self.cfg.freeze_limit_s:.0f} s after {event.kind} was fixed")
        event.excess_j = self.check_bounds(after=f"{event.kind} ({event.detail})")
        log.info("fault checked", extra={"fault": event.kind, "detail": event.detail, "freeze_s": round(event.freeze_s, 1),
                                         "frozen": event.frozen, "excess_j": round(event.excess_j, 1)})

    # ------------------------------------------------------------------ the schedule
    def schedule(self) -> Iterator[str]:
        if self.cfg.kinds:
            yield from self.cfg.kinds
            return
        kinds = list(FAULT_KINDS)
        if self.cfg.every_kind_once:
            self.rng.shuffle(kinds)
            yield from kinds
        while True:
            yield self.rng.choice(FAULT_KINDS)

    def run(self) -> None:
        """Inject faults until ``duration_s`` has passed (after every kind once, in CI)."""
        t_end = time.monotonic() + self.cfg.duration_s
        for injected, kind in enumerate(self.schedule()):
            if time.monotonic() > t_end and not self.cfg.kinds and not (self.cfg.every_kind_once and injected < len(FAULT_KINDS)):
                break
            time.sleep(self.rng.uniform(0.0, 2.0))  # a random point in the processes' cycles
            event = self.inject(kind)
            self.events.append(event)
            self.recover(event)

    def inject(self, kind: str) -> FaultEvent:
        handler = getattr(self, "_fault_" + kind.replace("-", "_"))
        event = FaultEvent(kind, "", time.time())
        log.info("injecting fault", extra={"fault": kind})
        handler(event)
        if not event.t_fixed:
            event.t_fixed = time.time()
        return event

    # ------------------------------------------------------------------ exporter faults
    def _pick_exporter(self) -> Exporter:
        return self.exporters[self.rng.choice(sorted(self.exporters))]

    def _starts_of(self, e: Exporter) -> dict[str, float]:
        """pod -> mlfootprint_pod_start_time_seconds on ``e``'s page."""
        out = {}
        for _n, labels, v in parse_samples(e.page(), ("mlfootprint_pod_start_time_seconds",)):
            if labels.get("namespace") == NAMESPACE:
                out[labels["pod"]] = v
        return out

    def _restart_exporter(self, event: FaultEvent, e: Exporter, *, state: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop ``e`` with ``sig``, leave its state file as ``state`` says, wait a random
        downtime, start it; check its counters' identity (start times) across the restart.

        ``kept``: the state file as the exporter left it; ``none``: deleted; ``garbage``:
        replaced by garbage; ``stale``: its checkpoint writes fail for a while before the kill
        (the state path is a directory), then the last checkpoint that was written, older than
        the values already served, is put back (a silent save failure, or a restored backup).
        """
        before = self._starts_of(e)
        backup = e.dir / "state.backup"
        if state == "stale":
            shutil.copy2(e.state_file, backup)
            for _ in range(50):
                e.state_file.unlink(missing_ok=True)
                try:
                    e.state_file.mkdir()
                    break
                except FileExistsError:  # the exporter's checkpoint (an atomic rename) landed in between
                    continue
            else:
                raise CampaignError(f"{e.name}: could not put a directory in place of the state file")
            (e.state_file / "blocker").write_text("checkpoint writes fail while this directory is here\n")
            t_fail = time.monotonic()
            failing = self.rng.uniform(1.0, 4.0)
            # a failed write shows in the next interval's snapshot (the count is taken before the save)
            try:
                self._wait(lambda: metric_sum(e.page(), "mlfootprint_exporter_source_errors_total", source="state", call="save") >= 1,
                           10, "the failed checkpoint writes counted")
            except CampaignError:
                self._fail(f"{e.name}: failed checkpoint writes not counted in source_errors_total{{source=state,call=save}}")
            time.sleep(max(0.0, failing - (time.monotonic() - t_fail)))
            event.detail += f", checkpoints failing for {time.monotonic() - t_fail:.1f} s"
        kill_unix = time.time()
        e.kill(sig)
        if state == "none":
            e.state_file.unlink(missing_ok=True)
        elif state == "garbage":
            event.detail += ", " + self._garble_state(e.state_file)
        elif state == "stale":
            shutil.rmtree(e.state_file)
            os.replace(backup, e.state_file)
        downtime = self.rng.uniform(0.2, 3.0)
        time.sleep(downtime)
        try:
            spawn_unix = e.start()
        except CampaignError as err:  # it exits at start: with the file still there, a crash loop
            self._fail(f"{e.name} exits at start after a restart with state '{state}' (a crash loop): {err}")
            event.problems.append(f"{e.name} crash loop")
            e.kill()
            e.state_file.unlink(missing_ok=True)  # what a person would do: the campaign goes on
            spawn_unix = e.start()
            state = "none"
        event.t_fixed = time.time()
        event.detail = f"{e.node}, down {downtime:.1f} s{event.detail}"
        after = self._wait(lambda: self._starts_of(e), 30, f"{e.name}'s pod series after the restart")
        if state in ("kept", "stale"):
            changed = sorted(p for p, s in before.items() if p in after and after[p] != s)
            if changed:
                self._fail(f"{e.name} restarted with a state file but changed the counter start of {changed}")
        else:
            gap = GapEvent(e.node, kill_unix, spawn_unix, "exporter restart without a usable state file")
            event.gaps.append(gap)
            self.gaps.append(gap)
            same = sorted(p for p, s in before.items() if p in after and after[p] == s)
            if same:
                self._fail(f"{e.name} lost its counters but kept the counter start of {same}: a reset would look like a rollback")

    def _fault_exporter_kill9_state(self, event: FaultEvent) -> None:
        self._restart_exporter(event, self._pick_exporter(), state="kept")

    def _fault_exporter_kill9_nostate(self, event: FaultEvent) -> None:
        self._restart_exporter(event, self._pick_exporter(), state="none")

    def _fault_exporter_stale_state(self, event: FaultEvent) -> None:
        self._restart_exporter(event, self._pick_exporter(), state="stale")

    def _fault_exporter_restart(self, event: FaultEvent) -> None:
        """A graceful restart (SIGTERM: an upgrade, a node drain): state saved on the way out."""
        self._restart_exporter(event, self._pick_exporter(), state="kept", sig=signal.SIGTERM)

    def _fault_exporter_garbage_state(self, event: FaultEvent) -> None:
        e = self._pick_exporter()
        self._restart_exporter(event, e, state="garbage")
        bad = list(e.dir.glob("state.json.bad-*"))
        if not bad:
            self._fail(f"{e.name}: a garbage state file was not set aside")
        for b in bad:
            b.unlink()
        errors = metric_sum(e.page(), "mlfootprint_exporter_source_errors_total", source="state", call="load")
        if errors < 1:
            self._fail(f"{e.name}: a garbage state file was not counted in source_errors_total{{source=state,call=load}}")

    def _garble_state(self, path: Path) -> str:
        """Replace the state file by one of several kinds of garbage; returns which."""
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = {"version": 2, "node": "x", "saved_unix": time.time(), "clock_s": 0.0, "containers": []}
        kind = self.rng.choice(["truncated", "binary", "nan", "negative", "wrong-type", "missing-key", "other-node", "list"])
        containers = doc.get("containers") or [{}]
        if kind == "truncated":
            text = json.dumps(doc)[: self.rng.randint(1, 40)]
        elif kind == "binary":
            text = bytes(self.rng.randrange(256) for _ in range(64)).decode("latin-1")
        elif kind == "nan":
            containers[0]["start_unix"] = float("nan")
            doc["containers"] = containers
            text = json.dumps(doc)
        elif kind == "negative":
            for g in (doc.get("gpus") or {}).values():
                g["energy_j"] = -1e18
            text = json.dumps(doc)
        elif kind == "wrong-type":
            doc["gpus"] = ["not", "a", "mapping"]
            text = json.dumps(doc)
        elif kind == "missing-key":
            doc.pop("node", None)
            doc.pop("saved_unix", None)
            text = json.dumps(doc)
        elif kind == "other-node":
            doc["node"] = "some-other-node"
            text = json.dumps(doc)
        else:
            text = json.dumps([doc])
        path.write_text(text, encoding="latin-1")
        return f"garbage state: {kind}"

    # ------------------------------------------------------------------ operator / API server
    def _fault_exporter_freeze(self, event: FaultEvent) -> None:
        """An exporter hangs (SIGSTOP: its port accepts, nothing answers; the operator's scrape
        times out) and comes back: the hardware counter kept counting, nothing is lost."""
        e = self._pick_exporter()
        frozen = self.rng.uniform(2.0, 8.0)
        e.pause()
        try:
            time.sleep(frozen)
        finally:
            e.resume()
        event.detail = f"{e.node}, hung {frozen:.1f} s"

    @contextmanager
    def _apiserver_down(self, event: FaultEvent) -> Iterator[None]:
        """The API server hangs (SIGSTOP) for the block and a random while after it."""
        assert self.cluster is not None
        self.cluster.pause("kube-apiserver")
        self._paused = True
        t = time.monotonic()
        try:
            yield
            time.sleep(self.rng.uniform(1.0, 6.0))
        finally:
            self.cluster.resume("kube-apiserver")
            self._paused = False
        event.detail += f", API server frozen {time.monotonic() - t:.1f} s"

    def _fault_exporter_kill9_apiserver_down(self, event: FaultEvent) -> None:
        """kill -9 of an exporter while the API server hangs: it restarts from its state file
        without a pod listing (it waits up to 30 s for one before billing the downtime to
        idle, docs/exporter.md#restarts); back within that, nothing is lost or doubled."""
        e = self._pick_exporter()
        before = self._starts_of(e)
        with self._apiserver_down(event):
            e.kill(signal.SIGKILL)
            time.sleep(self.rng.uniform(0.2, 2.0))
            e.start()
        event.t_fixed = time.time()
        event.detail = e.node + event.detail
        after = self._wait(lambda: self._starts_of(e), 30, f"{e.name}'s pod series after the restart")
        changed = sorted(p for p, s in before.items() if p in after and after[p] != s)
        if changed:
            self._fail(f"{e.name} restarted with its state file but changed the counter start of {changed}")

    def _fault_operator_kill9_apiserver_down(self, event: FaultEvent) -> None:
        """kill -9 of the operator, started again while the API server hangs: it must come up
        (or keep trying) once the API server answers, not crash-loop."""
        assert self.operator is not None
        with self._apiserver_down(event):
            self.operator.kill(signal.SIGKILL)
            time.sleep(self.rng.uniform(0.2, 2.0))
            self.operator.start(wait=False)
        self.operator.wait_healthy(self.cfg.recover_timeout_s)
        event.t_fixed = time.time()
        event.detail = event.detail.lstrip(", ")

    def _fault_operator_kill9(self, event: FaultEvent) -> None:
        assert self.operator is not None
        self.operator.kill(signal.SIGKILL)
        downtime = self.rng.uniform(0.2, 3.0)
        time.sleep(downtime)
        self.operator.start()
        event.detail = f"down {downtime:.1f} s"

    def _fault_apiserver_kill9(self, event: FaultEvent) -> None:
        assert self.cluster is not None
        t = time.monotonic()
        self.cluster.restart("kube-apiserver")
        event.detail = f"back in {time.monotonic() - t:.1f} s"

    def _fault_apiserver_freeze(self, event: FaultEvent) -> None:
        assert self.cluster is not None
        frozen = self.rng.uniform(2.0, 8.0)
        self.cluster.pause("kube-apiserver")
        self._paused = True
        try:
            time.sleep(frozen)
        finally:
            self.cluster.resume("kube-apiserver")
            self._paused = False
        event.detail = f"frozen {frozen:.1f} s"

    # ------------------------------------------------------------------ bad input
    def _fault_factors_garbage(self, event: FaultEvent) -> None:
        """Garbage in the namespace's factors: FactorsValid=False, energy still counted
        (with the last good factors), CO2e finite; fixed: valid again, moving."""
        garbage = self.rng.choice([
            {"pue": "NaN"}, {"carbonIntensity": "1e308"}, {"pue": "abc"}, {"carbonIntensity": "[1, 2, 3]"},
            {"wueOnsite": "-5"}, {"factors.yaml": "pue: [unclosed"}, {"pue": "{a: 1}"}, {"carbonIntensity": ".inf"},
        ])
        event.detail = json.dumps(garbage)
        self._retry("garble factors", lambda: self._put_factors({**GOOD_FACTORS, **garbage}))
        t_bad = time.time()
        runs = [r.key for r in self.runs]
        self._wait(lambda: all(self._cond(r, "FactorsValid") == "False" for r in runs), self.cfg.freeze_limit_s,
                   "FactorsValid=False on every run")
        _, frozen = self.wait_moving(t_bad)
        for r in frozen:
            self._fail(f"{r}: energy stopped while the factors were invalid")
        self._retry("fix factors", lambda: self._put_factors(GOOD_FACTORS))
        event.t_fixed = time.time()
        self._wait(lambda: all(self._cond(r, "FactorsValid") == "True" for r in runs), self.cfg.freeze_limit_s,
                   "FactorsValid=True again")

    def _cond(self, key: str, ctype: str) -> str | None:
        t = self._all_totals().get(key)
        c = None if t is None else t.conditions.get(ctype)
        return None if c is None else str(c.get("status"))

    def _fault_factors_cross_namespace(self, event: FaultEvent) -> None:
        """A run names another tenant's factors ConfigMap: refused (FactorsRefForbidden), none
        of its values read or echoed, energy still counted; removed: valid again."""
        run = self.rng.choice([r for r in self.runs if r.kind == "TrainingRun"])
        path = f"{CRD_API}/namespaces/{NAMESPACE}/trainingruns/{run.name}"
        patch = {"spec": {"factorsRef": {"name": "mlfootprint-factors", "namespace": OTHER_TENANT}}}
        self._retry("set factorsRef", lambda: self._api().merge_patch(path, patch))
        t_bad = time.time()
        event.detail = run.name

        def refused() -> bool:
            obj = self._objects()[run.key]
            c = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}.get("FactorsValid") or {}
            if OTHER_TENANT_SECRET in json.dumps(obj.get("status")):
                self._fail(f"{run.key}: another tenant's ConfigMap value leaked into the status")
            return (c.get("status") == "False" and c.get("reason") == "FactorsRefForbidden") or Falsy(c)

        self._wait(refused, self.cfg.freeze_limit_s, f"FactorsRefForbidden on {run.key}")
        if run.key in self._active_runs(self._all_totals()):
            _, frozen = self.wait_moving(t_bad, [run.key])
            for r in frozen:
                self._fail(f"{r}: energy stopped while its factorsRef was refused")
        self._retry("drop factorsRef", lambda: self._api().merge_patch(path, {"spec": {"factorsRef": None}}))
        event.t_fixed = time.time()
        self._wait(lambda: self._cond(run.key, "FactorsValid") == "True", self.cfg.freeze_limit_s, "FactorsValid=True again")

    def _fault_serving_garbage(self, event: FaultEvent) -> None:
        """A serving endpoint answers garbage: energy is still counted, requests never more
        than served; fixed: requests move again."""
        assert self.serving is not None
        isvc = self.rng.choice([r for r in self.runs if r.kind == "InferenceService"])
        pod = self._group(isvc.group).pods[0]
        mode = self.rng.choice(ServingPages.MODES[1:])
        lasting = self.rng.uniform(2.0, 5.0)
        event.detail = f"{isvc.name} ({self._group(isvc.group).engine}): {mode} for {lasting:.1f} s"
        self.serving.set_mode(pod, mode)
        t_bad = time.time()
        try:
            time.sleep(lasting)
            self._check_requests()
            _, frozen = self.wait_moving(t_bad, [isvc.key])
            for r in frozen:
                self._fail(f"{r}: energy stopped while its serving metrics were garbage ({mode})")
        finally:
            self.serving.set_mode(pod, "ok")
        event.t_fixed = time.time()
        freeze, frozen = self.wait_moving(event.t_fixed, [isvc.key], what="requests")
        for r in frozen:
            self._fail(f"{r}: requests frozen after the serving metrics were fixed ({mode})")
        event.freeze_s = max(event.freeze_s, freeze)
        self._check_requests()

    def _check_requests(self, at: float | None = None) -> None:
        """No InferenceService counts more requests than its pod served (read after the figures)."""
        assert self.serving is not None
        totals = self._retry("read runs", self._all_totals)
        truth = self.serving.true_requests(at)
        for r in self.runs:
            t = totals.get(r.key)
            if (r.kind == "InferenceService" and t is not None and t.requests > truth
                    and t.requests - truth > self._excess_requests.get(r.key, 0.0)):
                self._fail(f"{r.key}: {t.requests:.0f} requests counted, {truth:.0f} served (double-counted requests)")
                self._excess_requests[r.key] = t.requests - truth
            unknown = sorted(p for p, n in (t.serving_restarts if t is not None else {}).items() if n is None)
            if unknown and r.key not in self._restarts_unknown:
                # kwok reports restartCount like a kubelet; without it a drop is judged by size only
                self._fail(f"{r.key}: no container restarts in the ledger for {', '.join(unknown)}")
                self._restarts_unknown.add(r.key)

    # ------------------------------------------------------------------ runs
    def _fault_overlap_run(self, event: FaultEvent) -> None:
        """A second TrainingRun selecting pods another run meters: it must not count them."""
        target = self.rng.choice([r for r in self.runs if r.kind == "TrainingRun"])
        run = self._create_run("TrainingRun", target.group)
        event.detail = f"{run.name} over {target.name}"

        def exclusive() -> bool:
            t = self._totals_of(run)
            c = None if t is None else t.conditions.get("PodsExclusive")
            return bool(c and c.get("status") == "False" and c.get("reason") == "OwnedByOtherRun")

        owner = self._owners(self._all_totals()).get(self._group(target.group).pods[0])
        if owner != run.key:
            self._wait(exclusive, self.cfg.freeze_limit_s, f"PodsExclusive=False on {run.key}")

    def _fault_overlap_same_second(self, event: FaultEvent) -> None:
        """Two runs over the same new pods, created within one second, the second with a name
        that sorts first: by creationTimestamp (1 s resolution) and name the second is the
        owner, while the first has already metered the pods."""
        node = self._node_with(1)
        if node is None:
            event.detail = "no free GPU: an overlapping run instead"
            self._fault_overlap_run(event)
            return
        group = self._new_group("training", gpus_per_pod=1, pods=1, node=node)
        self._wait_pods_metered()
        seq = self._run_seq
        self._run_seq += 1
        time.sleep(1.0 - (time.time() % 1.0) + 0.02)  # just after a second starts
        first = self._create_run("TrainingRun", group.name, name=f"r{seq:02d}-b")
        deadline = time.time() + 0.75
        while time.time() < deadline:
            t = self._totals_of(first)
            if t is not None and t.gpu_j > 0:
                break
            time.sleep(0.05)
        second = self._create_run("TrainingRun", group.name, name=f"r{seq:02d}-a")
        totals = self._all_totals()
        same = totals[first.key].created == totals[second.key].created
        event.detail = f"{first.name} then {second.name}, {'same second' if same else 'different seconds'}"

    def _fault_late_run(self, event: FaultEvent) -> None:
        """A run created long after its pods started: it gets their energy since they started."""
        claimed = {r.group for r in self.runs}
        orphans = [g for g in self.groups if g.name not in claimed and g.engine is None]
        if not orphans:
            node = self._node_with(1)
            if node is None:
                event.detail = "no orphan pods and no free GPU: an overlapping run instead"
                self._fault_overlap_run(event)
                return
            orphans = [self._new_group("training", gpus_per_pod=1, pods=1, node=node)]
            self._wait_pods_metered()
        group = orphans[0]
        run = self._create_run("TrainingRun", group.name)
        event.detail = f"{run.name} over pods started {time.time() - group.created_unix:.0f} s before"
        node = self._node_with(1)
        if node is not None:  # pods for the next late run
            self._new_group("training", gpus_per_pod=1, pods=1, node=node)
            self._wait_pods_metered()

    def _fault_new_run(self, event: FaultEvent) -> None:
        gpus = self.rng.choice([1, 2])
        node = self._node_with(gpus)
        if node is None:
            event.detail = "no free GPU: an overlapping run instead"
            self._fault_overlap_run(event)
            return
        group = self._new_group("training", gpus_per_pod=gpus, pods=1, node=node)
        run = self._create_run("TrainingRun", group.name)
        self._wait_pods_metered()
        event.detail = f"{run.name} on {node}"

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """Quiet end: the truth at a moment T, then each component's billed energy once the
        operator has read counters measured after T: at least the truth minus the documented
        gaps, and (checked again) never more."""
        assert self.recorder is not None
        crashes = self.check_processes()
        for c in crashes:
            self._fail(c)
        self._learn_gpus()
        self.recorder.poll()
        t_cut = time.time()
        with self.recorder.lock:
            until = {g: self.recorder.history.latest_t(g) or 0.0 for g in self.recorder.history.uuids()}
        # counters read at a refresh come from a scrape at most interval/2 older, of a snapshot
        # at most one attribution interval older, plus scheduling slack
        slack = self.cfg.operator_interval_s / 2 + self.cfg.attribution_interval_s + 1.5
        # runs metering nothing (the other runs of an overlap) write nothing new: not waited for
        active = self._active_runs(self._all_totals())
        self._wait(lambda: all(t.observed_at >= t_cut + slack for k, t in self._all_totals().items() if k in active),
                   self.cfg.freeze_limit_s, "every metering run's ledger observed after the final cut")
        totals = self._all_totals()
        lost_total = allowed_total = 0.0
        with self.recorder.lock:
            for comp in components(self._run_pods()):
                counted = sum(totals[r].gpu_j for r in comp.runs if r in totals)
                truth, readings = pods_truth_j(comp.pods, self.pod_gpus, self.recorder.history, until)
                windows = self._gap_windows(comp, totals)
                allowed = allowed_loss_j(comp.pods, self.pod_gpus, self.recorder.history, windows)
                lost = truth - counted
                lost_total += max(lost, 0.0)
                allowed_total += allowed
                self.final_components.append((comp.label, truth, counted, lost, allowed))
                for gap in self.gaps:  # what each gap alone allows (for the table, per fault kind)
                    gap.allowed_j += allowed_loss_j(comp.pods, self.pod_gpus, self.recorder.history,
                                                    self._gap_windows(comp, totals, [gap]))
                if lost > allowed + tolerance_j(truth, readings):
                    self._fail(f"{comp.label}: {lost:.0f} J of GPU energy lost, documented gaps allow {allowed:.0f} J "
                               f"(truth {truth:.0f} J, billed {counted:.0f} J)")
        self.final = {"lost_j": lost_total, "allowed_j": allowed_total}
        self.check_bounds(after="the end")
        if self.serving is not None:
            served = self.serving.true_requests(t_cut)
            for r in self.runs:
                if r.kind == "InferenceService" and totals[r.key].requests < served * 0.5:
                    self._fail(f"{r.key}: {totals[r.key].requests:.0f} requests counted of {served:.0f} served before the cut")
            self._check_requests()

    def _gap_windows(self, comp: Any, totals: dict[str, Totals], gaps: list[GapEvent] | None = None) -> list[GapWindow]:
        """The documented gaps of a component's pods, in simulated time per pod: from the
        operator's last possible read of the lost counters (one refresh interval, the scrape's
        memo and one attribution interval before the kill, plus 1 s of scheduling) to the new
        exporter's first reading; from the pods' start when none of the component's runs
        existed before the kill (a late run never saw the lost counters)."""
        assert self.recorder is not None
        lag = self.cfg.operator_interval_s * 1.5 + self.cfg.attribution_interval_s + 1.0
        created = [rfc3339.parse(totals[r].created) or 0.0 for r in comp.runs if r in totals]
        first_run = min(created, default=math.inf)
        out = []
        for gap in self.gaps if gaps is None else gaps:
            lo_unix = gap.kill_unix - lag
            for pod in comp.pods:
                if self.pod_node.get(pod) != gap.node:
                    continue
                lo = -math.inf if first_run > lo_unix else self.recorder.clocks[gap.node].sim_at(lo_unix)
                spawn_sim = self.recorder.clocks[gap.node].sim_at(gap.spawn_unix)
                hi = max((self.recorder.first_record_at_or_after(g, spawn_sim) for g in self.pod_gpus.get(pod, ())), default=math.inf)
                out.append(GapWindow(pod, lo, hi, gap.why))
        return out

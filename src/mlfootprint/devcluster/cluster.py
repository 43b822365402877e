"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes and pods), each its own process group; optionally one
real worker node (containerd, kubelet, kube-proxy, a fake GPU device plugin: `node.py`).

Used by the pytest fixtures (tests/conftest.py), `mlfootprint dev-cluster` and the demo. See
docs/dev-cluster.md. Everything lives in one state directory::

    state.json   ports, pids and binaries of the running processes (read by `down`/`status`)
    kubeconfig   admin (system:masters) kubeconfig with embedded certificates
    pki/         CA, serving and client certificates, service-account keys
    etcd/        etcd data
    logs/        one log per process
    the real node's own directory (configs, containerd root and state, the kubelet's root dir)
    is /var/lib/mlfootprint/nodes/<id> (unix socket paths must be short); its logs are in logs/
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from mlfootprint import rfc3339
from mlfootprint.devcluster import node as rn
from mlfootprint.devcluster import pki
from mlfootprint.devcluster.binaries import Binaries

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
SERVICE_CIDR = "10.0.0.0/24"
#: kwok hands out pod IPs from the first address of this CIDR on
POD_CIDR = "10.244.0.1/16"
#: annotation that marks a node as managed (simulated) by kwok
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"

#: start order; stop runs in reverse
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class DevClusterError(RuntimeError):
    """The control plane could not be started, or is in an unexpected state."""


class PortTakenError(DevClusterError):
    """A component exited at start because its port was taken after it was picked."""


#: Attempts of :meth:`DevCluster.start` when a component finds its port taken (fresh ports each time).
START_ATTEMPTS = 3
#: Lowest loopback port picked: below it are well-known ones (the real node's kubelet: 10250).
PORT_FLOOR = 20000


@dataclass
class Ports:
    """Loopback ports, all picked free at start."""

    etcd_client: int = 0
    etcd_peer: int = 0
    apiserver: int = 0
    controller_manager: int = 0
    scheduler: int = 0


@dataclass
class ProcessRecord:
    """One started process (its own session, so pid == process-group id)."""

    name: str
    pid: int
    binary: str
    log: str


@dataclass
class _State:
    ports: Ports = field(default_factory=Ports)
    processes: list[ProcessRecord] = field(default_factory=list)
    #: the real node's NodeRecord (as a dict) while one is part of this cluster
    node: dict[str, Any] | None = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (see :func:`free_ports`)."""
    return free_ports(1)[0]


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (net.ipv4.ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _all_threads_stopped(pid: int) -> bool:
    """Every thread of `pid` is in the stopped state (T) per /proc; False if it cannot tell."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except (OSError, IndexError):
        return False
    return bool(states) and all(state in ("T", "t") for state in states)


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1 that are free now.

    Picked at random between :data:`PORT_FLOOR` and the kernel's ephemeral range, not by the
    OS: a port from the ephemeral range can be taken as the source port of an outgoing
    connection between being picked and being bound (a controller-manager failed to start
    so under 4 test workers). Only where that gap is too small does the OS pick. Every
    socket stays bound until all are chosen, so that no two are the same.
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    socks: list[socket.socket] = []
    tries = 0
    try:
        while len(socks) < n:
            tries += 1
            port = rng.randrange(PORT_FLOOR, low) if low - PORT_FLOOR >= 1000 and tries <= 100 * n else 0
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _pick_ports() -> Ports:
    return Ports(*free_ports(5))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(server: str, ca: Path, client: pki.CertPair, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "mlfootprint-dev", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(client.cert), "client-key-data": _b64(client.key)},
            }
        ],
        "contexts": [{"name": "mlfootprint-dev", "context": {"cluster": "mlfootprint-dev", "user": user}}],
        "current-context": "mlfootprint-dev",
    }


def set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL the child if its parent dies (the pytest fixture's safety net)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def pid_alive(pid: int, binary: str | None = None) -> bool:
    """True while `pid` runs (zombies count as gone); with `binary`, only if it runs that file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    if binary is not None:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
        return exe.removesuffix(" (deleted)") == os.path.realpath(binary)
    return True


class DevCluster:
    """A local control plane; `start()`/`stop()` or `with DevCluster(dir) as c: ...`.

    `die_with_parent=True` (the pytest fixture) makes the kernel kill every component if the
    starting process dies without calling `stop()`; `mlfootprint dev-cluster up` leaves it off
    so that the processes outlive the command.

    `real_node=True` adds one real worker node (root and `make tools` needed; see
    `mlfootprint.devcluster.node`): the API server then also listens on the node's IP (pods
    reach it through the `kubernetes` Service and kube-proxy) and reaches the kubelet with its
    own client certificate. `real_node_gpus` fake GPUs are registered by a device plugin whose
    device IDs are the UUIDs of the node's simulated GPUs (seed `real_node_seed`).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        gpu_nodes: int = 0,
        binaries: Binaries | None = None,
        start_timeout_s: float = 90.0,
        die_with_parent: bool = False,
        real_node: bool = False,
        real_node_name: str | None = None,
        real_node_ip: str | None = None,
        real_node_gpus: int = 8,
        real_node_seed: int = 0,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.gpu_nodes = gpu_nodes
        self.start_timeout_s = start_timeout_s
        self.die_with_parent = die_with_parent
        self.real_node = real_node
        self._real_node_name = real_node_name
        self._real_node_ip = real_node_ip
        self._real_node_gpus = real_node_gpus
        self._real_node_seed = real_node_seed
        self._binaries = binaries
        self._state = _State()
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        #: component -> the arguments it was started with (for `restart`)
        self._args: dict[str, list[str]] = {}
        self._envs: dict[str, dict[str, str] | None] = {}

    # ----------------------------------------------------------------- public API
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user `mlfootprint-admin`, group `system:masters`)."""
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        """The API server URL, e.g. https://127.0.0.1:PORT."""
        return f"https://127.0.0.1:{self._state.ports.apiserver}"

    @property
    def ports(self) -> Ports:
        return self._state.ports

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = Binaries.find()
        return self._binaries

    def env(self) -> dict[str, str]:
        """Environment variables that point clients (kubectl, kopf, helm) at this cluster."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def pids(self) -> dict[str, int]:
        """Component name -> pid (also its process-group id)."""
        return {p.name: p.pid for p in self._state.processes}

    @property
    def node(self) -> rn.NodeRecord | None:
        """The real node's record (name, IP, paths such as `pod_resources_dir`), if it has one."""
        return rn.NodeRecord.from_dict(self._state.node) if self._state.node else None

    def import_image(self, archive: Path) -> str:
        """Import an image archive (hack/image/build.sh) into the real node's containerd."""
        node = self.node
        if node is None:
            raise DevClusterError("this dev cluster has no real node (start it with real_node=True / --real-node)")
        return rn.import_image(node, Path(archive))

    @classmethod
    def load(cls, state_dir: Path) -> DevCluster:
        """A handle on a cluster started earlier (e.g. by `dev-cluster up`) from its state file."""
        cluster = cls(state_dir)
        path = cluster.state_dir / STATE_FILE
        if not path.exists():
            raise DevClusterError(f"no dev cluster state in {cluster.state_dir} ({STATE_FILE} missing)")
        raw = json.loads(path.read_text())
        cluster._state = _State(Ports(**raw["ports"]), [ProcessRecord(**p) for p in raw["processes"]], raw.get("node"))
        return cluster

    def running(self) -> dict[str, bool]:
        """Component name -> whether its recorded process is alive."""
        return {p.name: pid_alive(p.pid, p.binary) for p in self._state.processes}

    def is_ready(self) -> bool:
        """The API server answers /readyz with ok."""
        try:
            return self._get(f"{self.server}/readyz", timeout_s=2.0) == "ok"
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def start(self) -> DevCluster:
        """Generate certificates, start every component and wait until the API server is ready
        and the controller-manager and scheduler are healthy. A component whose port was taken
        after it was picked is retried with fresh ports (:data:`START_ATTEMPTS` in all)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start_once()
            except PortTakenError as e:
                if attempt == START_ATTEMPTS:
                    raise
                logger.warning("a port was taken during start-up; starting again on fresh ports",
                               extra={"attempt": attempt, "reason": str(e).splitlines()[0]})
        raise AssertionError("unreachable")

    def _start_once(self) -> DevCluster:
        t0 = time.monotonic()
        bins = self.binaries  # raises MissingBinaryError (-> "run `make tools`") first
        node_bins = rn.NodeBinaries.find() if self.real_node else None
        self._refuse_if_running()
        node = self._plan_real_node() if self.real_node else None
        self._prepare_dirs()
        self._state = _State(_pick_ports())
        certs = pki.generate(self.state_dir / "pki", extra_ips=(node.ip,) if node else ())
        node_certs = self._issue_node_certs(node, certs) if node else {}
        self._write_kubeconfigs(certs)
        t_node = 0.0
        try:
            self._spawn("etcd", bins.etcd, self._etcd_args())
            self._spawn("kube-apiserver", bins.kube_apiserver, self._apiserver_args(certs, node))
            self._wait_ready(t0)
            t_api = time.monotonic()
            self._spawn("kube-controller-manager", bins.kube_controller_manager, self._kcm_args(certs))
            self._spawn("kube-scheduler", bins.kube_scheduler, self._scheduler_args())
            self._spawn("kwok", bins.kwok, self._kwok_args())
            self._wait_healthy(t0, {"kube-controller-manager": self._state.ports.controller_manager,
                                    "kube-scheduler": self._state.ports.scheduler})
            if self.gpu_nodes:
                self.create_gpu_nodes(self.gpu_nodes)
            if node is not None and node_bins is not None:
                t_node = time.monotonic()
                self._start_real_node(node, node_bins, certs, node_certs)
                t_node = time.monotonic() - t_node
        except BaseException:
            self.stop()
            raise
        logger.info(
            "dev cluster ready",
            extra={
                "server": self.server,
                "kubeconfig": str(self.kubeconfig),
                "apiserver_ready_s": round(t_api - t0, 2),
                "real_node_s": round(t_node, 2) if node else None,
                "start_s": round(time.monotonic() - t0, 2),
            },
        )
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM each component's process group (reverse start order), SIGKILL what remains.

        A real node goes first: its kubelet, kube-proxy and device plugin, then its containers
        (through containerd), containerd, and whatever it left on the host (`node.cleanup_host`).
        """
        node_error: DevClusterError | None = None
        if self._state.node is not None:
            try:
                self._stop_real_node()
            except DevClusterError as e:  # still stop the control plane; report afterwards
                node_error = e
        # etcd last: an API server whose etcd is gone hangs in its graceful shutdown
        # (it deletes its endpoint lease) until SIGKILL.
        others = [p.name for p in self._state.processes if p.name != "etcd"]
        self._stop_processes(list(reversed(others)), timeout_s)
        self._stop_processes(["etcd"], timeout_s)
        self._state.processes = []
        state = self.state_dir / STATE_FILE
        if node_error is not None:
            self._save_state()  # keeps the node record: `down` again retries the cleanup
            raise node_error
        if state.exists():
            state.unlink()
        logger.info("dev cluster stopped", extra={"state_dir": str(self.state_dir)})

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def restart(self, name: str, *, sig: signal.Signals = signal.SIGKILL, timeout_s: float = 15.0) -> int:
        """Stop one component with ``sig`` (SIGKILL: a crash) and start it again with the same
        arguments, ports and certificates; for kube-apiserver, wait until ``/readyz`` is ok.
        Returns the new pid. Fault-injection tests use it (an API server that dies and
        comes back); only a component this object started can be restarted."""
        index, rec = self._record(name)
        if name not in self._args:
            raise DevClusterError(f"{name}: not started by this DevCluster object; cannot restart it")
        t0 = time.monotonic()
        self._signal(rec, signal.SIGCONT)
        self._signal(rec, sig)
        deadline = t0 + timeout_s
        while self._alive(rec) and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._alive(rec):
            self._signal(rec, signal.SIGKILL)
            while self._alive(rec) and time.monotonic() < deadline + 5:
                time.sleep(0.02)
        popen = self._popen.pop(rec.pid, None)
        if popen is not None:
            popen.wait(timeout=5)
        new = self._start_process(name, Path(rec.binary), self._args[name], self._envs[name])
        self._state.processes[index] = new
        self._save_state()
        if name == "kube-apiserver":
            self._wait_ready(time.monotonic())
        logger.info("component restarted", extra={"component": name, "old_pid": rec.pid, "pid": new.pid,
                                                  "signal": sig.name, "restart_s": round(time.monotonic() - t0, 2)})
        return new.pid

    def pause(self, name: str) -> None:
        """SIGSTOP one component's process group: it hangs, holding its connections open
        (the API server freezing, as under memory pressure or a stuck etcd). `resume` undoes it;
        `stop` resumes paused components first. Returns once every thread of the process has
        stopped: kill() returns before a busy multi-threaded process has, and a request sent in
        that gap would still be answered (seen on a loaded machine)."""
        rec = self._record(name)[1]
        self._signal(rec, signal.SIGSTOP)
        deadline = time.monotonic() + 5.0
        while self._alive(rec) and not _all_threads_stopped(rec.pid):
            if time.monotonic() > deadline:
                raise DevClusterError(f"{name} did not stop within 5 s of SIGSTOP")
            time.sleep(0.005)
        logger.info("component paused", extra={"component": name})

    def resume(self, name: str) -> None:
        """SIGCONT one component's process group (after `pause`)."""
        self._signal(self._record(name)[1], signal.SIGCONT)
        logger.info("component resumed", extra={"component": name})

    def _record(self, name: str) -> tuple[int, ProcessRecord]:
        for i, p in enumerate(self._state.processes):
            if p.name == name:
                return i, p
        raise DevClusterError(f"no component named {name!r} (known: {', '.join(p.name for p in self._state.processes)})")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; raise DevClusterError on failure if `check`."""
        cmd = [str(self.binaries.kubectl), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise DevClusterError(f"{' '.join(cmd[3:])!s} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply_crds(self, *paths: Path | str, server_side: bool = False, timeout_s: float = 60.0) -> list[str]:
        """``kubectl apply`` CustomResourceDefinition manifests (files or directories) and wait
        until each is Established; returns their names. Polls the condition: ``kubectl wait
        --for=condition=Established`` fails at once ("accessor error: <nil>") instead of waiting
        while a new CRD has no ``status.conditions`` yet."""
        mode = ["--server-side", "--force-conflicts"] if server_side else []
        names = [
            line.split("/", 1)[1]
            for path in paths
            for line in self.kubectl("apply", *mode, "-f", str(path), "-o", "name", timeout_s=timeout_s).stdout.split()
            if line.startswith("customresourcedefinition")
        ]
        deadline = time.monotonic() + timeout_s
        for name in names:
            jsonpath = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
            while self.kubectl("get", "crd", name, "-o", jsonpath, check=False).stdout.strip() != "True":
                if time.monotonic() > deadline:
                    raise DevClusterError(f"CRD {name} not Established within {timeout_s:.0f} s")
                time.sleep(0.1)
        return names

    def create_gpu_nodes(
        self,
        count: int,
        *,
        gpus_per_node: int = 8,
        product: str = DEFAULT_GPU_PRODUCT,
        prefix: str = "kwok-gpu-",
        labels: Mapping[str, str] | None = None,
        wait_ready_s: float | None = 60.0,
    ) -> list[str]:
        """Create `count` kwok-managed nodes advertising `nvidia.com/gpu`; wait until Ready.

        Labels follow NVIDIA GPU feature discovery (`nvidia.com/gpu.product`, `.count`,
        `.present`). Names are `<prefix><i>` continuing after existing ones.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        existing = set(self.kubectl("get", "nodes", "-o", "name").stdout.split())
        names: list[str] = []
        i = 0
        while len(names) < count:
            if f"node/{prefix}{i}" not in existing:
                names.append(f"{prefix}{i}")
            i += 1
        items = [self._gpu_node(n, gpus_per_node, product, labels or {}) for n in names]
        if items:
            self.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            if wait_ready_s:
                self.kubectl(
                    "wait", "--for=condition=Ready", f"--timeout={int(wait_ready_s)}s",
                    *(f"node/{n}" for n in names), timeout_s=wait_ready_s + 10,
                )
        logger.info("created simulated GPU nodes", extra={"nodes": names, "gpus_per_node": gpus_per_node})
        return names

    # ----------------------------------------------------------------- the real node
    def _plan_real_node(self) -> rn.NodeRecord:
        """Check the host (cleaning up a node a killed run left behind) and choose name, IP, ports."""
        reclaim_stale_real_node()
        problems = rn.host_problems()
        if problems:
            raise DevClusterError("the real node cannot run here: " + "; ".join(problems))
        try:
            name = rn.validate_node_name(self._real_node_name or rn.default_node_name())
            ip = self._real_node_ip or rn.default_node_ip()
        except rn.RealNodeError as e:
            raise DevClusterError(str(e)) from None
        healthz, proxy_healthz, proxy_metrics = free_ports(3)
        return rn.NodeRecord(
            name=name,
            ip=ip,
            dir=str(rn.NODE_ROOT / hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:10]),
            cluster_dir=str(self.state_dir),
            gpus=self._real_node_gpus,
            seed=self._real_node_seed,
            service_cidr=SERVICE_CIDR,
            kubelet_healthz_port=healthz,
            proxy_healthz_port=proxy_healthz,
            proxy_metrics_port=proxy_metrics,
        )

    def _issue_node_certs(self, rec: rn.NodeRecord, certs: pki.Pki) -> dict[str, pki.CertPair]:
        """The API server's kubelet client (system:masters), the node's identity
        (system:node:<name> in system:nodes), the kubelet's serving certificate and kube-proxy's."""
        pki_dir = self.state_dir / "pki"
        return {
            "apiserver-kubelet-client": pki.issue_client(
                pki_dir, certs.ca, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
            "node-client": pki.issue_client(pki_dir, certs.ca, "node-client", f"system:node:{rec.name}", ("system:nodes",)),
            "kubelet-serving": pki.issue_server(pki_dir, certs.ca, "kubelet-serving", f"system:node:{rec.name}",
                                                (rec.ip, "127.0.0.1"), (rec.name, "localhost")),
            "kube-proxy-client": pki.issue_client(pki_dir, certs.ca, "kube-proxy-client", "system:kube-proxy"),
        }

    def _start_real_node(
        self, rec: rn.NodeRecord, nb: rn.NodeBinaries, certs: pki.Pki, node_certs: Mapping[str, pki.CertPair]
    ) -> None:
        """containerd -> the sandbox image -> kubelet, kube-proxy, device plugin -> node Ready with GPUs."""
        node_client, serving = node_certs["node-client"], node_certs["kubelet-serving"]
        proxy_client = node_certs["kube-proxy-client"]
        rec.kube_proxy = str(nb.kube_proxy)
        rec.ctr = str(nb.ctr)
        rec.kernel_settings = rn.read_kernel_settings()
        rec.created = rn.record_created(rn.HOST_PATHS)
        root = rec.root
        shutil.rmtree(root, ignore_errors=True)
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "kubelet-pki", "volume-plugins", "pod-logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # Record the node before it can change the host, so `down` (or the next start) undoes it.
        self._state.node = asdict(rec)
        self._save_state()
        rn.register(rec)
        # Pods get no name server: a lookup fails inside the pod instead of leaving the machine.
        (root / "resolv.conf").write_text("options ndots:1 timeout:1 attempts:1\n")
        (root / "containerd" / "config.toml").write_text(rn.containerd_config(rec, nb.runc))
        (root / "cni" / "net.d" / "10-mlfootprint.conflist").write_text(json.dumps(rn.cni_conflist(rec), indent=2))
        (root / "kubelet-config.json").write_text(
            json.dumps(rn.kubelet_config(rec, certs.ca.cert, serving.cert, serving.key), indent=2))
        (root / "kube-proxy-config.json").write_text(
            json.dumps(rn.kube_proxy_config(rec, root / "kube-proxy.kubeconfig"), indent=2))
        for path, client, user in (
            (root / "kubelet.kubeconfig", node_client, f"system:node:{rec.name}"),
            (root / "kube-proxy.kubeconfig", proxy_client, "system:kube-proxy"),
        ):
            path.write_text(json.dumps(_kubeconfig(self.server, certs.ca.cert, client, user), indent=2))
            path.chmod(0o600)
        env = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"}

        self._spawn("containerd", nb.containerd, ["--config", str(root / "containerd" / "config.toml")], env)
        ctr = [str(nb.ctr), "--address", str(rec.containerd_socket)]
        rn.wait_for(lambda: rec.containerd_socket.exists() and subprocess.run(
            [*ctr, "version"], capture_output=True, timeout=10).returncode == 0, 30, "containerd not answering")
        rn.import_image(rec, nb.pause_archive)
        self._spawn("kubelet", nb.kubelet, rn.kubelet_args(rec, root / "kubelet-config.json", root / "kubelet.kubeconfig"), env)
        self._spawn("kube-proxy", nb.kube_proxy, [f"--config={root / 'kube-proxy-config.json'}", "--v=1"], env)
        self._spawn("gpu-device-plugin", Path(sys.executable), [
            "-m", "mlfootprint.devcluster.deviceplugin", "--node", rec.name, "--gpus", str(rec.gpus),
            "--seed", str(rec.seed), "--dir", str(rn.DEVICE_PLUGIN_DIR)], env)
        deadline = time.monotonic() + 90
        self._wait_node(rec, deadline)
        logger.info("real node ready", extra={"node": rec.name, "ip": rec.ip, "gpus": rec.gpus})

    def restart_kubelet(self, timeout_s: float = 60.0) -> float:
        """Stop the real node's kubelet (SIGTERM) and start it again, as an upgrade or a crash
        would; containers keep running under containerd. Returns the seconds until the node is
        Ready again with its GPUs (the device plugin registers with the new kubelet)."""
        rec = self.node
        if rec is None:
            raise DevClusterError("this dev cluster has no real node")
        nb = rn.NodeBinaries.find()
        self._stop_processes(["kubelet"])
        t0 = time.monotonic()
        env = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"}
        started = time.time()
        self._spawn("kubelet", nb.kubelet, rn.kubelet_args(rec, rec.root / "kubelet-config.json",
                                                            rec.root / "kubelet.kubeconfig"), env)
        deadline = time.monotonic() + timeout_s

        def new_kubelet_serving() -> bool:
            # the node object still says Ready (the old kubelet's status): wait for the new
            # kubelet's health, its first heartbeat, and the device plugin's new registration
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rec.kubelet_healthz_port}/healthz", timeout=2) as r:
                    if r.read() != b"ok":
                        return False
            except OSError:
                return False
            plugin = rn.DEVICE_PLUGIN_DIR / "mlfootprint-fake-gpu.sock"
            kubelet_sock = rn.DEVICE_PLUGIN_DIR / "kubelet.sock"
            try:
                if plugin.stat().st_mtime < kubelet_sock.stat().st_mtime:
                    return False
            except FileNotFoundError:
                return False
            out = self.kubectl("get", "node", rec.name, "-o", "json", check=False)
            if out.returncode != 0:
                return False
            conds = {c["type"]: c for c in json.loads(out.stdout)["status"].get("conditions", [])}
            beat = conds.get("Ready", {}).get("lastHeartbeatTime", "")
            beat_s = rfc3339.parse(beat)
            return beat_s is not None and beat_s >= started - 1.0

        while not new_kubelet_serving():
            if time.monotonic() > deadline:
                raise DevClusterError(f"the restarted kubelet did not come back in {timeout_s:.0f} s; log:\n"
                                      f"{_tail(self.state_dir / 'logs' / 'kubelet.log')}")
            time.sleep(0.1)
        self._wait_node(rec, deadline)
        return time.monotonic() - t0

    def _wait_node(self, rec: rn.NodeRecord, deadline: float) -> None:
        """Until the node is Ready and advertises its GPUs (the device plugin registered)."""
        last = ""
        while time.monotonic() < deadline:
            for p in self._state.processes:
                if p.name in rn.NODE_COMPONENTS and not self._alive(p):
                    raise DevClusterError(f"{p.name} exited during start-up; last log lines:\n{_tail(Path(p.log))}")
            out = self.kubectl("get", "node", rec.name, "-o", "json", check=False)
            if out.returncode == 0:
                obj = json.loads(out.stdout)
                ready = {c["type"]: c["status"] for c in obj["status"].get("conditions", [])}.get("Ready")
                gpus = obj["status"].get("allocatable", {}).get(GPU_RESOURCE)
                if ready == "True" and gpus == str(rec.gpus):
                    return
                last = f"Ready={ready}, allocatable {GPU_RESOURCE}={gpus}"
            else:
                last = out.stderr.strip()
            time.sleep(0.3)
        raise DevClusterError(
            f"real node {rec.name} not ready with {rec.gpus} GPUs in time ({last}); kubelet log:\n"
            f"{_tail(self.state_dir / 'logs' / 'kubelet.log')}"
        )

    def _stop_processes(self, names: Sequence[str], timeout_s: float = 10.0) -> None:
        procs = [p for p in self._state.processes if p.name in names]
        for p in procs:
            self._signal(p, signal.SIGCONT)  # a paused component could not handle SIGTERM
            self._signal(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(self._alive(p) for p in procs):
            time.sleep(0.05)
        for p in procs:
            if self._alive(p):
                logger.warning("component ignored SIGTERM; killing", extra={"component": p.name, "pid": p.pid})
                self._signal(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(self._alive(p) for p in procs):
            time.sleep(0.05)
        for p in procs:
            popen = self._popen.pop(p.pid, None)
            if popen is not None:
                popen.wait(timeout=5)
        self._state.processes = [p for p in self._state.processes if p not in procs]
        if (self.state_dir / STATE_FILE).exists():
            self._save_state()

    def _stop_real_node(self) -> None:
        rec = rn.NodeRecord.from_dict(self._state.node or {})
        self._stop_processes(["gpu-device-plugin", "kube-proxy", "kubelet"])
        containerd = [p for p in self._state.processes if p.name == "containerd" and self._alive(p)]
        if containerd and rec.ctr:
            removed = rn.remove_containers(rec.ctr, rec.containerd_socket)
            logger.info("removed the real node's containers", extra={"containers": removed})
        self._stop_processes(["containerd"])
        try:
            rn.cleanup_host(rec)
        except rn.RealNodeError as e:
            raise DevClusterError(str(e)) from None
        self._state.node = None
        self._save_state()

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _gpu_node(name: str, gpus: int, product: str, labels: Mapping[str, str]) -> dict[str, Any]:
        resources = {"cpu": "64", "memory": "1024Gi", "pods": "110", "ephemeral-storage": "2Ti", GPU_RESOURCE: str(gpus)}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/hostname": name,
                    "nvidia.com/gpu.present": "true",
                    "nvidia.com/gpu.product": product,
                    "nvidia.com/gpu.count": str(gpus),
                    **labels,
                },
            },
            "spec": {},
            "status": {"capacity": resources, "allocatable": resources},
        }

    def _refuse_if_running(self) -> None:
        if (self.state_dir / STATE_FILE).exists():
            previous = DevCluster.load(self.state_dir)
            alive = [n for n, up in previous.running().items() if up]
            if alive:
                raise DevClusterError(
                    f"a dev cluster is already running from {self.state_dir} ({', '.join(alive)}); "
                    "stop it first (`mlfootprint dev-cluster down`)"
                )

    def _prepare_dirs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("etcd", "pki", "logs", "kubeconfigs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        (self.state_dir / "logs").mkdir()
        (self.state_dir / "kubeconfigs").mkdir(mode=0o700)
        (self.state_dir / "kwok.yaml").write_text(
            # An explicit (empty) configuration so that ~/.kwok/kwok.yaml is never read.
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
        )

    def _write_kubeconfigs(self, certs: pki.Pki) -> None:
        def write(path: Path, client: pki.CertPair, user: str) -> None:
            path.write_text(json.dumps(_kubeconfig(self.server, certs.ca.cert, client, user), indent=2))
            path.chmod(0o600)

        write(self.kubeconfig, certs.admin, "mlfootprint-admin")
        write(self._kc("kube-controller-manager"), certs.controller_manager, "system:kube-controller-manager")
        write(self._kc("kube-scheduler"), certs.scheduler, "system:kube-scheduler")

    def _kc(self, component: str) -> Path:
        return self.state_dir / "kubeconfigs" / f"{component}.kubeconfig"

    def _etcd_args(self) -> list[str]:
        p = self._state.ports
        client, peer = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
        return [
            "--name=dev",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=dev={peer}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=warn",
        ]

    def _apiserver_args(self, c: pki.Pki, node: rn.NodeRecord | None = None) -> list[str]:
        p = self._state.ports
        if node is not None:
            # Pods on the real node reach the API server through the `kubernetes` Service, whose
            # endpoint is the node's IP (kube-proxy DNATs the service IP to it); the API server
            # reaches the kubelet (logs, exec) with its own client certificate and verifies the
            # kubelet's serving certificate against the cluster CA.
            extra = [
                "--bind-address=0.0.0.0",
                f"--advertise-address={node.ip}",
                "--endpoint-reconciler-type=lease",
                f"--kubelet-client-certificate={self.state_dir / 'pki' / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={self.state_dir / 'pki' / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={c.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
            ]
            args = self._apiserver_args(c)
            drop = ("--bind-address=", "--advertise-address=", "--endpoint-reconciler-type=")
            return [a for a in args if not a.startswith(drop)] + extra
        return [
            f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p.apiserver}",
            f"--tls-cert-file={c.apiserver.cert}",
            f"--tls-private-key-file={c.apiserver.key}",
            f"--client-ca-file={c.ca.cert}",
            # Published in kube-system/extension-apiserver-authentication for delegated authn
            # (controller-manager, scheduler, aggregated APIs); no front-proxy cert is issued.
            f"--requestheader-client-ca-file={c.ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={c.sa_pub}",
            f"--service-account-signing-key-file={c.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The `kubernetes` Service would get 127.0.0.1 as endpoint, which validation rejects.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def _kcm_args(self, c: pki.Pki) -> list[str]:
        return [
            f"--kubeconfig={self._kc('kube-controller-manager')}",
            f"--authentication-kubeconfig={self._kc('kube-controller-manager')}",
            f"--authorization-kubeconfig={self._kc('kube-controller-manager')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._state.ports.controller_manager}",
            "--leader-elect=false",
            # Each controller gets its own service-account token, as in kubeadm (RBAC bootstrap roles).
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={c.sa_key}",
            f"--root-ca-file={c.ca.cert}",
            f"--cluster-signing-cert-file={c.ca.cert}",
            f"--cluster-signing-key-file={c.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # its FlexVolume prober would create /usr/libexec/kubernetes on the host
            f"--flex-volume-plugin-dir={self.state_dir / 'flexvolume'}",
            "--profiling=false",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self._kc('kube-scheduler')}",
            f"--authentication-kubeconfig={self._kc('kube-scheduler')}",
            f"--authorization-kubeconfig={self._kc('kube-scheduler')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._state.ports.scheduler}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--config={self.state_dir / 'kwok.yaml'}",
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.255.0.1",
            "--node-lease-duration-seconds=40",
        ]

    def _spawn(self, name: str, binary: Path, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._state.processes.append(self._start_process(name, binary, args, env))
        self._save_state()

    def _start_process(self, name: str, binary: Path, args: Sequence[str],
                       env: Mapping[str, str] | None = None) -> ProcessRecord:
        log = self.state_dir / "logs" / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                [str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=set_pdeathsig if self.die_with_parent and sys.platform == "linux" else None,  # noqa: PLW1509 - PR_SET_PDEATHSIG must be set in the child; it only calls prctl
            )
        self._popen[popen.pid] = popen
        self._args[name] = list(args)
        self._envs[name] = dict(env) if env is not None else None
        logger.debug("started", extra={"component": name, "pid": popen.pid})
        return ProcessRecord(name, popen.pid, str(binary), str(log))

    def _save_state(self) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self._state), indent=2))
        tmp.replace(path)

    def _alive(self, p: ProcessRecord) -> bool:
        popen = self._popen.get(p.pid)
        if popen is not None:
            return popen.poll() is None
        return pid_alive(p.pid, p.binary)

    def _signal(self, p: ProcessRecord, sig: signal.Signals) -> None:
        # Only signal a process group we started: the leader must still run the recorded binary.
        if not self._alive(p):
            return
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.state_dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(self.state_dir / "pki" / "admin.crt"), str(self.state_dir / "pki" / "admin.key"))
        return ctx

    def _get(self, url: str, timeout_s: float, context: ssl.SSLContext | None = None) -> str:
        """GET with the admin's credentials against the cluster CA, unless ``context`` is given."""
        with urllib.request.urlopen(url, context=context or self._ssl_context(), timeout=timeout_s) as resp:
            return str(resp.read().decode(errors="replace"))

    def _exited_during_start(self) -> None:
        """Raise if a started component has exited (PortTakenError when its port was taken)."""
        for p in self._state.processes:
            if not self._alive(p):
                tail = _tail(Path(p.log))
                error = PortTakenError if "address already in use" in tail else DevClusterError
                raise error(f"{p.name} exited during start-up; last log lines:\n{tail}")

    def _wait_healthy(self, t0: float, ports: Mapping[str, int]) -> None:
        """Until each component's /healthz on its secure port answers ok (always allowed
        without credentials; their serving certificates are self-signed)."""
        deadline = t0 + self.start_timeout_s
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        waiting = dict(ports)
        while waiting and time.monotonic() < deadline:
            self._exited_during_start()
            for name, port in list(waiting.items()):
                try:
                    if self._get(f"https://127.0.0.1:{port}/healthz", timeout_s=2.0, context=ctx) == "ok":
                        del waiting[name]
                except (OSError, urllib.error.URLError, ssl.SSLError):
                    pass
            if waiting:
                time.sleep(0.1)
        if waiting:
            raise DevClusterError(f"not healthy after {self.start_timeout_s:.0f} s: {', '.join(sorted(waiting))}")

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.start_timeout_s
        last = ""
        while time.monotonic() < deadline:
            self._exited_during_start()
            try:
                body = self._get(f"{self.server}/readyz", timeout_s=2.0)
                if body == "ok":
                    return
                last = body
            except urllib.error.HTTPError as e:
                last = e.read().decode(errors="replace")
            except (OSError, urllib.error.URLError, ssl.SSLError) as e:
                last = str(e)
            time.sleep(0.1)
        raise DevClusterError(
            f"kube-apiserver not ready after {self.start_timeout_s:.0f} s: {last[-2000:]}\n"
            f"apiserver log:\n{_tail(self.state_dir / 'logs' / 'kube-apiserver.log')}"
        )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def iter_logs(state_dir: Path) -> Iterator[Path]:
    """The component logs of a state directory."""
    yield from sorted((Path(state_dir) / "logs").glob("*.log"))


def reclaim_stale_real_node() -> None:
    """Clean up the real node a killed run left behind on this machine (containers, mounts,
    cgroups, links, kernel settings); DevClusterError when it still runs."""
    stale = rn.registered_node()
    if stale is None:
        return
    owner = Path(stale.cluster_dir) / STATE_FILE
    alive: list[str] = []
    if owner.exists():
        try:
            alive = [n for n, up in DevCluster.load(Path(stale.cluster_dir)).running().items() if up]
        except (OSError, ValueError, KeyError, TypeError):
            alive = []
    if alive:
        raise DevClusterError(
            f"a real node already runs on this machine, in the dev cluster at {stale.cluster_dir} "
            f"({', '.join(alive)} running); only one can. Stop it first: "
            f"mlfootprint dev-cluster down --state-dir {stale.cluster_dir}"
        )
    logger.warning("cleaning up a real node left behind", extra={"cluster_dir": stale.cluster_dir})
    try:
        rn.cleanup_host(stale)
    except rn.RealNodeError as e:
        raise DevClusterError(f"a real node left behind by {stale.cluster_dir} could not be cleaned up: {e}") from None

"""The dev cluster's real worker node: containerd + runc, a CNI bridge, a kubelet, kube-proxy and
a fake GPU device plugin on this machine, registered with the local control plane.

`DevCluster(real_node=True)` (and `mlfootprint dev-cluster up --real-node`) uses this module;
docs/dev-cluster.md ("A real worker node") lists every path and setting. This module holds the
pure configuration builders (unit-tested), the host checks, and the teardown that removes
everything a node creates, including what lives outside its state directory:

* processes: containerd, the kubelet, kube-proxy, the device plugin, containerd's shims and
  every process in the node's ``kubepods`` cgroups;
* mounts under the node directory (container root filesystems, pod volumes, network
  namespaces), the ``kubepods`` cgroups of every hierarchy, the ``mlf0`` bridge, kube-proxy's
  iptables chains, ``/var/lib/kubelet/device-plugins``, the CNI result cache in
  ``/var/lib/cni``, ``/run/containerd`` (shim sockets), ``/var/log/containers`` links;
* the kernel settings the kubelet, the bridge plugin and kube-proxy change (restored).

Only one real node can run per machine (port 10250, the fixed device-plugin directory, the
``/kubepods`` cgroups). ``/run/mlfootprint/real-node.json`` names the running one; a node whose
processes died without a teardown (a killed test run) is cleaned up by the next start.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlfootprint.devcluster.binaries import KUBERNETES_VERSION, cache_dir, cached_binary

logger = logging.getLogger(__name__)

PAUSE_VERSION = "1.0"  # hack/image/pause.sh VERSION
PAUSE_IMAGE = f"mlfootprint.local/pause:{PAUSE_VERSION}"
CNI_NETWORK = "mlfootprint"
BRIDGE = "mlf0"
#: pods' addresses; the bridge is the gateway (.1). Pods get routes only to this subnet, the
#: service range and the node's IP: they cannot send traffic anywhere else.
POD_SUBNET = "10.123.0.0/24"
KUBELET_PORT = 10250
CNI_BIN_DIR = Path("/usr/lib/cni")
DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
CNI_CACHE_DIR = Path("/var/lib/cni")
CONTAINERD_RUN_DIR = Path("/run/containerd")  # containerd 1.6 shims' sockets: /run/containerd/s/<hash>
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # the kubelet's fixed symlink directory
REGISTRY = Path("/run/mlfootprint/real-node.json")
#: the node's own directory (containerd root/state/socket, the kubelet's --root-dir, CNI state):
#: short and fixed, because unix socket paths are limited to ~104 bytes (containerd's ttrpc
#: socket, the kubelet's pod-resources socket) and a test's temp state dir is longer. Logs stay
#: in the dev cluster's state directory; the teardown removes this directory.
NODE_ROOT = Path("/var/lib/mlfootprint/nodes")
NODE_LABEL = "mlfootprint.dev/real-node"
#: kernel settings changed by the kubelet (setupKernelTunables), the bridge plugin (ip_forward)
#: and kube-proxy; recorded before the node starts and restored by the teardown
KERNEL_SETTINGS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "gpu-device-plugin")


class RealNodeError(RuntimeError):
    """The real node cannot run here, or failed to start; the message says why and what to do."""


# ----------------------------------------------------------------- binaries and host checks


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_proxy: Path
    containerd: Path
    runc: Path
    ctr: Path
    iptables: Path
    pause_archive: Path

    @classmethod
    def find(cls, cache: Path | None = None) -> NodeBinaries:
        """Locate every binary, or raise RealNodeError naming each missing one and `make tools`."""
        cache = cache or cache_dir()
        missing: list[str] = []

        def built(name: str) -> Path:
            path = cached_binary(name, KUBERNETES_VERSION, cache)
            if not os.access(path, os.X_OK):
                missing.append(f"{name} {KUBERNETES_VERSION} (expected at {path}; hack/tools/10-k8s.sh)")
            return path

        def on_path(name: str, package: str) -> Path:
            found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
            if found is None:
                missing.append(f"{name} (Debian {package}; hack/tools/50-node.sh)")
                return Path(name)
            return Path(found)

        found = cls(
            kubelet=built("kubelet"),
            kube_proxy=built("kube-proxy"),
            containerd=on_path("containerd", "containerd"),
            runc=on_path("runc", "runc"),
            ctr=on_path("ctr", "containerd"),
            iptables=on_path("iptables", "iptables"),
            pause_archive=cache / "image" / f"pause-{PAUSE_VERSION}.tar",
        )
        on_path("containerd-shim-runc-v2", "containerd")
        for plugin in ("bridge", "host-local", "loopback"):
            if not os.access(CNI_BIN_DIR / plugin, os.X_OK):
                missing.append(f"CNI plugin {CNI_BIN_DIR / plugin} (Debian containernetworking-plugins; hack/tools/50-node.sh)")
        if not found.pause_archive.is_file():
            missing.append(f"the pod sandbox image {found.pause_archive} (hack/image/pause.sh)")
        if missing:
            raise RealNodeError("the real node needs: " + "; ".join(missing) + ". Run `make tools`.")
        return found


def host_problems() -> list[str]:
    """Why a real node cannot run on this machine now (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("it needs root (containerd, runc, the kubelet's cgroups and mounts)")
    if not any((CGROUP_ROOT / c).is_dir() for c in ("cpu", "cpuacct", "cpu,cpuacct")) and not (
        CGROUP_ROOT / "cgroup.controllers"
    ).exists():
        problems.append(f"no cgroup hierarchy with the cpu controller under {CGROUP_ROOT}")
    if (CONTAINERD_RUN_DIR / "containerd.sock").exists():
        problems.append(f"a system containerd seems to run ({CONTAINERD_RUN_DIR / 'containerd.sock'} exists); "
                        "the real node would share its shim directory")
    if not port_free(KUBELET_PORT):
        problems.append(f"port {KUBELET_PORT} (the kubelet's) is in use: another kubelet runs here")
    return problems


def port_free(port: int, address: str = "0.0.0.0") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def default_node_ip() -> str:
    """The machine's first global (non-loopback) IPv4 address; the kubelet refuses loopback."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True)
    if out.returncode == 0:
        for link in json.loads(out.stdout or "[]"):
            if link.get("ifname") == BRIDGE:
                continue
            for addr in link.get("addr_info", []):
                if addr.get("family") == "inet" and not ipaddress.ip_address(addr["local"]).is_loopback:
                    return str(addr["local"])
    raise RealNodeError("no non-loopback IPv4 address on this machine: pass --real-node-ip (the kubelet refuses loopback)")


_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def default_node_name() -> str:
    """The hostname, lower-cased (as the kubelet would register it)."""
    return socket.gethostname().lower()


def validate_node_name(name: str) -> str:
    if len(name) > 253 or not _DNS1123.match(name):
        raise RealNodeError(f"node name {name!r}: must be a lower-case DNS name (RFC 1123), e.g. gpu-node-0")
    return name


# ----------------------------------------------------------------- the record


@dataclass
class NodeRecord:
    """What a running real node is made of; kept in the dev cluster's state.json and in REGISTRY."""

    name: str
    ip: str
    dir: str
    cluster_dir: str
    gpus: int = 8
    seed: int = 0
    service_cidr: str = "10.0.0.0/24"
    kubelet_healthz_port: int = 0
    proxy_healthz_port: int = 0
    proxy_metrics_port: int = 0
    kube_proxy: str = ""
    ctr: str = ""
    #: /proc/sys path -> value before the node started
    kernel_settings: dict[str, str] = field(default_factory=dict)
    #: host paths outside `dir` that did not exist before and are removed by the teardown
    created: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return Path(self.dir)

    @property
    def containerd_dir(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        """The kubelet's --root-dir (pod-resources socket: <kubelet_dir>/pod-resources/kubelet.sock)."""
        return self.root / "kubelet"

    @property
    def pod_resources_dir(self) -> Path:
        return self.kubelet_dir / "pod-resources"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NodeRecord:
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


# ----------------------------------------------------------------- configuration (pure)


def containerd_config(rec: NodeRecord, runc: Path) -> str:
    """containerd 1.6 config (version 2) with its own root, state and socket; the CRI plugin
    with runc (cgroupfs), our CNI config and the local pause image."""
    d = rec.containerd_dir
    q = json.dumps  # TOML basic strings are JSON strings for these paths
    return f"""version = 2
root = {q(str(d / "root"))}
state = {q(str(d / "state"))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = {q(str(rec.containerd_socket))}

[ttrpc]
  address = {q(str(d / "containerd.sock.ttrpc"))}

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = {q(str(d / "opt"))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {q(PAUSE_IMAGE)}
  # Required here: the machine lacks CAP_SYS_RESOURCE; without it runc fails to raise
  # oom_score_adj and every sandbox fails ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = {q(str(runc))}
        Root = {q(str(d / "runc"))}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {q(str(CNI_BIN_DIR))}
    conf_dir = {q(str(rec.root / "cni" / "net.d"))}
    max_conf_num = 1
"""


def cni_conflist(rec: NodeRecord) -> dict[str, Any]:
    """A bridge network with host-local addresses (state in the node directory); pods are routed
    only to pods, Services (kube-proxy DNATs them on the node) and the node itself."""
    subnet = ipaddress.ip_network(POD_SUBNET)
    gateway = str(next(subnet.hosts()))
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(rec.root / "cni" / "ipam"),
                    "ranges": [[{"subnet": str(subnet), "gateway": gateway}]],
                    "routes": [{"dst": rec.service_cidr}, {"dst": f"{rec.ip}/32"}],
                },
            }
        ],
    }


def kubelet_config(rec: NodeRecord, ca: Path, serving_cert: Path, serving_key: Path) -> dict[str, Any]:
    """KubeletConfiguration: webhook authn/authz with the cluster CA (no anonymous access),
    cgroupfs, the node's own containerd, every path it would write under the node directory
    where the kubelet allows it (the device-plugin directory and /var/log/containers are fixed)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": rec.ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": rec.kubelet_healthz_port,
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "30s", "cacheUnauthorizedTTL": "5s"}},
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "containerRuntimeEndpoint": f"unix://{rec.containerd_socket}",
        "volumePluginDir": str(rec.root / "volume-plugins"),
        "podLogsDir": str(rec.root / "pod-logs"),
        "resolvConf": str(rec.root / "resolv.conf"),
        "clusterDomain": "cluster.local",
        "clusterDNS": [],
        "maxPods": 32,
        "serializeImagePulls": False,
        # Images are imported, never pulled: never garbage-collect them on a small disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "shutdownGracePeriod": "0s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
    }


def kube_proxy_config(rec: NodeRecord, kubeconfig: Path) -> dict[str, Any]:
    """kube-proxy (iptables mode) for the node, so pods reach Services (the API server's
    `kubernetes` Service first); it leaves the conntrack limits alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": rec.name,
        "bindAddress": rec.ip,
        "healthzBindAddress": f"127.0.0.1:{rec.proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{rec.proxy_metrics_port}",
        "clusterCIDR": POD_SUBNET,
        "nodePortAddresses": [f"{rec.ip}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def kubelet_args(rec: NodeRecord, config: Path, kubeconfig: Path) -> list[str]:
    return [
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={rec.kubelet_dir}",
        f"--cert-dir={rec.root / 'kubelet-pki'}",
        f"--hostname-override={rec.name}",
        f"--node-ip={rec.ip}",
        f"--node-labels={NODE_LABEL}=true",
        "--v=2",  # logs "Killing container with a grace period" (the e2e test times SIGTERM from it)
    ]


# ----------------------------------------------------------------- host state


def read_kernel_settings(names: Iterable[str] = KERNEL_SETTINGS) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = (Path("/proc/sys") / name).read_text().strip()
        except OSError:
            continue
    return out


def restore_kernel_settings(before: dict[str, str]) -> list[str]:
    """Write back every recorded setting that changed; returns the names restored."""
    restored = []
    for name, value in before.items():
        path = Path("/proc/sys") / name
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
                restored.append(name)
        except OSError as e:
            logger.warning("could not restore a kernel setting", extra={"setting": name, "error": str(e)})
    return restored


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape_mount(line.split()[4])
        if point == str(root) or point.startswith(prefix):
            points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount(point: str) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.umount2(point.encode(), 0) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
            return
        if libc.umount2(point.encode(), 2) != 0:  # MNT_DETACH
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):
                raise OSError(err, f"umount {point}: {os.strerror(err)}")


def kubepods_cgroups() -> list[Path]:
    """Every `kubepods*` cgroup directory (all hierarchies), deepest first."""
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    tops = [CGROUP_ROOT / n for n in ("kubepods", "kubepods.slice")]
    for hierarchy in CGROUP_ROOT.iterdir():
        tops += [hierarchy / "kubepods", hierarchy / "kubepods.slice"]
    for top in tops:
        if top.is_dir() and not top.is_symlink():
            for dirpath, _dirs, _files in os.walk(top):
                found.append(Path(dirpath))
    return sorted(set(found), key=lambda p: (-len(p.parts), str(p)))


def pids_in(cgroups: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for cg in cgroups:
        try:
            pids |= {int(x) for x in (cg / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            continue
    return pids


def shim_pids(containerd_socket: Path) -> list[int]:
    """containerd-shim-runc-v2 processes started by the containerd listening on `containerd_socket`."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(containerd_socket).encode() in argv:
            out.append(int(proc.name))
    return out


def _kill_and_wait(pids: Iterable[int], timeout_s: float = 10.0) -> list[int]:
    pids = [p for p in pids if p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    left = pids
    while left and time.monotonic() < deadline:
        left = [p for p in left if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if left:
            time.sleep(0.05)
    return left


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _run(cmd: list[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)


def remove_containers(ctr: str, socket_path: Path, timeout_s: float = 20.0) -> int:
    """Kill and delete every container of the CRI namespace through containerd (still running):
    the shims exit and containerd unmounts the root filesystems. Returns how many it removed."""
    base = [ctr, "--address", str(socket_path), "--namespace", "k8s.io"]
    listed = _run([*base, "containers", "list", "--quiet"], timeout_s=20)
    if listed.returncode != 0:
        return 0
    ids = listed.stdout.split()
    if not ids:
        return 0
    # every container process at once (they all live in the kubepods cgroups), then let
    # containerd reap the tasks and remove them: three ctr calls, not three per container
    _kill_and_wait(pids_in(kubepods_cgroups()), timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tasks = _run([*base, "tasks", "list"], timeout_s=20).stdout.splitlines()[1:]
        if not any(line.split()[-1] == "RUNNING" for line in tasks if line.split()):
            break
        time.sleep(0.1)
    _run([*base, "tasks", "delete", "--force", *ids], timeout_s=60)
    _run([*base, "containers", "delete", *ids], timeout_s=60)
    return len(ids)


def _remove_cgroups(timeout_s: float = 10.0) -> tuple[int, list[str]]:
    """rmdir every kubepods cgroup, deepest first; (how many were removed, what could not be).

    A cgroup stays busy while it holds a process, and also while it holds a zombie not yet
    reaped (its shim was killed, and its new parent reaps it when it gets to it: a killed
    run's cleanup failed so under load): kill what lives there again and retry, up to
    ``timeout_s``."""
    removed = 0
    deadline = time.monotonic() + timeout_s
    while True:
        busy: list[str] = []
        for cg in kubepods_cgroups():
            try:
                cg.rmdir()
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                busy.append(f"cgroup {cg}: {e.strerror}")
        if not busy or time.monotonic() > deadline:
            return removed, busy
        _kill_and_wait(pids_in(kubepods_cgroups()), timeout_s=1.0)
        time.sleep(0.1)


def cleanup_host(rec: NodeRecord) -> list[str]:
    """Remove whatever the node left on the host (after its processes were stopped). Idempotent.

    Returns what it had to clean (for logs and tests); raises RealNodeError if something
    could not be removed.
    """
    did: list[str] = []
    problems: list[str] = []
    # 1. stragglers: containers (their cgroups) and shims of this node's containerd
    cgroups = kubepods_cgroups()
    pods = pids_in(cgroups)
    shims = shim_pids(rec.containerd_socket)
    if pods or shims:
        left = _kill_and_wait([*pods, *shims])
        did.append(f"killed {len(pods)} container and {len(shims)} shim process(es)")
        if left:
            problems.append(f"processes survived SIGKILL: {left}")
    # 2. mounts under the node directory: root filesystems, pod volumes, network namespaces
    points = mounts_under(rec.root)
    for point in points:
        try:
            unmount(point)
        except OSError as e:
            problems.append(str(e))
    if points:
        did.append(f"unmounted {len(points)} mount(s)")
    # 3. cgroups, deepest first (a cgroup with processes cannot be removed)
    removed, busy = _remove_cgroups()
    problems += busy
    if removed:
        did.append(f"removed {removed} cgroup(s)")
    # 4. network: the bridge (veths went with the pods' network namespaces), kube-proxy's rules
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        out = _run(["ip", "link", "delete", BRIDGE])
        if out.returncode != 0:
            problems.append(f"ip link delete {BRIDGE}: {out.stderr.strip()}")
        else:
            did.append(f"deleted bridge {BRIDGE}")
    if _has_kube_chains():
        if rec.kube_proxy and os.access(rec.kube_proxy, os.X_OK):
            _run([rec.kube_proxy, "--cleanup", "--v=0"], timeout_s=60)
        _remove_kube_chains()  # what --cleanup leaves: the KUBE-PROXY-CANARY chains
        did.append("removed kube-proxy's iptables rules")
        if _has_kube_chains():
            problems.append("iptables still has KUBE-* chains after `kube-proxy --cleanup`")
    # 5. host paths outside the node directory
    if DEVICE_PLUGIN_DIR.is_dir():
        for entry in DEVICE_PLUGIN_DIR.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        did.append(f"emptied {DEVICE_PLUGIN_DIR}")
    results = CNI_CACHE_DIR / "results"
    if results.is_dir():
        for entry in results.glob(f"{CNI_NETWORK}-*"):
            entry.unlink(missing_ok=True)
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(rec.root)):
                link.unlink()
    if CONTAINERD_RUN_DIR.is_dir() and not (CONTAINERD_RUN_DIR / "containerd.sock").exists():
        shim_dir = CONTAINERD_RUN_DIR / "s"
        if shim_dir.is_dir():
            for sock in shim_dir.iterdir():
                sock.unlink(missing_ok=True)
    # 6. kernel settings
    restored = restore_kernel_settings(rec.kernel_settings)
    if restored:
        did.append(f"restored {', '.join(restored)}")
    # 7. the node directory (images, root filesystems, configs); logs are in the cluster's state dir
    if not mounts_under(rec.root):
        shutil.rmtree(rec.root, ignore_errors=True)
    else:
        problems.append(f"mounts left under {rec.root}: {mounts_under(rec.root)[:5]}")
    for created in sorted(rec.created, key=lambda p: -p.count("/")):
        path = Path(created)
        if path.is_dir() and not path.is_symlink():
            if path in (CONTAINERD_RUN_DIR, CNI_CACHE_DIR):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    path.rmdir()
                except OSError:
                    pass  # not empty: something else uses it now
    if problems:  # the registry stays: the next start (or `down`) tries again
        raise RealNodeError("real node teardown incomplete: " + "; ".join(problems))
    if REGISTRY.exists():
        try:
            if json.loads(REGISTRY.read_text()).get("dir") == rec.dir:
                REGISTRY.unlink()
        except (OSError, ValueError):
            REGISTRY.unlink(missing_ok=True)
    if str(REGISTRY.parent) in rec.created:
        try:
            REGISTRY.parent.rmdir()
        except OSError:
            pass
    logger.info("real node cleaned up", extra={"node": rec.name, "did": did})
    return did


def _sbin(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _kube_rules() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, list[str]]]]:
    """KUBE-* chains (binary, table, chain) and the rules of other chains that jump to them
    (binary, table, rule arguments after -A), in iptables and ip6tables."""
    chains: list[tuple[str, str, str]] = []
    jumps: list[tuple[str, str, list[str]]] = []
    for family in ("iptables", "ip6tables"):
        save, tool = _sbin(f"{family}-save"), _sbin(family)
        if save is None or tool is None:
            continue
        table = ""
        for line in _run([save], timeout_s=20).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(":KUBE-"):
                chains.append((tool, table, line[1:].split()[0]))
            elif line.startswith("-A ") and not line.startswith("-A KUBE-") and " KUBE-" in line:
                jumps.append((tool, table, shlex.split(line)[1:]))
    return chains, jumps


def _has_kube_chains() -> bool:
    return bool(_kube_rules()[0])


def _remove_kube_chains() -> None:
    """Remove every KUBE-* chain and the jumps to it (kube-proxy's canaries, the kubelet's
    KUBE-FIREWALL), which `kube-proxy --cleanup` leaves."""
    chains, jumps = _kube_rules()
    for tool, table, rule in jumps:
        _run([tool, "-t", table, "-D", *rule], timeout_s=20)
    for tool, table, chain in chains:
        _run([tool, "-t", table, "-F", chain], timeout_s=20)
    for tool, table, chain in chains:
        _run([tool, "-t", table, "-X", chain], timeout_s=20)


def record_created(paths: Iterable[Path]) -> list[str]:
    """The paths (outside the node directory) that do not exist yet: the teardown removes them."""
    return [str(p) for p in paths if not p.exists()]


HOST_PATHS = (
    NODE_ROOT.parent,
    NODE_ROOT,
    Path("/var/lib/kubelet"),
    DEVICE_PLUGIN_DIR,
    CNI_CACHE_DIR,
    CONTAINERD_RUN_DIR,
    CONTAINER_LOG_LINKS,
    REGISTRY.parent,
)


def registered_node() -> NodeRecord | None:
    """The real node this machine runs (or ran without a teardown), from REGISTRY."""
    try:
        return NodeRecord.from_dict(json.loads(REGISTRY.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def register(rec: NodeRecord) -> None:
    REGISTRY.parent.mkdir(parents=True, exist_ok=True)
    tmp = REGISTRY.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(rec), indent=2))
    tmp.replace(REGISTRY)


def import_image(rec: NodeRecord, archive: Path, timeout_s: float = 300.0) -> str:
    """`ctr images import` an image archive into the node's containerd (CRI namespace k8s.io)."""
    out = _run([rec.ctr or "ctr", "--address", str(rec.containerd_socket), "--namespace", "k8s.io",
                "images", "import", str(archive)], timeout_s=timeout_s)
    if out.returncode != 0:
        raise RealNodeError(f"ctr images import {archive}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout.strip()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise RealNodeError(f"{what} after {timeout_s:.0f} s")

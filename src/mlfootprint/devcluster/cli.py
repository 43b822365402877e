"""`mlfootprint dev-cluster up|down|env|status`: the local control plane from a shell."""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import sys
import time
from pathlib import Path

from mlfootprint.devcluster.binaries import MissingBinaryError, cache_dir
from mlfootprint.devcluster.cluster import STATE_FILE, DevCluster, DevClusterError
from mlfootprint.devcluster.node import RealNodeError

HELP = "local control plane (etcd + kube-apiserver + controller-manager + scheduler + kwok) for tests and the demo"
DESCRIPTION = """\
Start a real Kubernetes control plane on loopback (binaries built by `make tools`), with
simulated (kwok) GPU nodes, and optionally one real worker node (--real-node: containerd, runc,
a CNI bridge, a kubelet, kube-proxy and a fake GPU device plugin on this machine; needs root).

  up      start it detached; the processes keep running after the command returns
  env     print `export KUBECONFIG=...` (use: eval "$(mlfootprint dev-cluster env)")
  status  show each component and API-server readiness (exit 1 unless all are up)
  down    stop every process it started (and remove what the real node created)

State (certificates, kubeconfig, etcd data, logs, pids) lives in --state-dir,
default $MLFOOTPRINT_CACHE/dev-cluster (~/.cache/mlfootprint/dev-cluster).
"""


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if not 0 < value <= 64:
        raise argparse.ArgumentTypeError(f"must be 1-64, got {value}")
    return value


def default_state_dir() -> Path:
    return cache_dir() / "dev-cluster"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "env", "status"], help="what to do")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="state directory (default: $MLFOOTPRINT_CACHE/dev-cluster)"
    )
    parser.add_argument(
        "--gpu-nodes", type=_non_negative_int, default=2, help="simulated GPU nodes to create on `up` (default: 2)"
    )
    parser.add_argument(
        "--real-node", action="store_true",
        help="also start one real worker node on this machine (root; `make tools`); off by default",
    )
    parser.add_argument(
        "--real-node-gpus", type=_positive_int, default=8,
        help="fake GPUs the real node's device plugin registers as nvidia.com/gpu (default: 8)",
    )
    parser.add_argument("--real-node-name", default=None, help="the real node's name (default: the hostname)")
    parser.add_argument(
        "--real-node-ip", default=None,
        help="the real node's IP, non-loopback (default: the machine's first global IPv4 address)",
    )
    parser.add_argument("--log-level", default="warning", help="log level (default: warning)")


def run(args: argparse.Namespace) -> int:
    from mlfootprint.logs import configure

    configure(args.log_level, fmt="text")
    state_dir: Path = (args.state_dir or default_state_dir()).absolute()
    try:
        return _ACTIONS[args.action](state_dir, args)
    except (MissingBinaryError, DevClusterError, RealNodeError) as e:
        print(f"mlfootprint dev-cluster {args.action}: {e}", file=sys.stderr)
        return 1


def _up(state_dir: Path, args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    if args.real_node_ip is not None:
        try:
            ipaddress.IPv4Address(args.real_node_ip)
        except ValueError:
            print(f"mlfootprint dev-cluster up: --real-node-ip: not an IPv4 address: {args.real_node_ip!r}", file=sys.stderr)
            return 2
    if not args.real_node and (args.real_node_name or args.real_node_ip):
        print("mlfootprint dev-cluster up: --real-node-name/--real-node-ip need --real-node", file=sys.stderr)
        return 2
    cluster = DevCluster(
        state_dir, gpu_nodes=args.gpu_nodes, real_node=args.real_node, real_node_name=args.real_node_name,
        real_node_ip=args.real_node_ip, real_node_gpus=args.real_node_gpus,
    ).start()
    q = shlex.quote
    flag = "" if state_dir == default_state_dir().absolute() else f" --state-dir {q(str(state_dir))}"
    node = cluster.node
    real = f", real node {node.name} ({node.ip}, {node.gpus} GPUs)" if node else ""
    print(f"dev cluster ready at {cluster.server} in {time.monotonic() - t0:.1f} s "
          f"({args.gpu_nodes} simulated GPU nodes{real}); pids: "
          + ", ".join(f"{n}={p}" for n, p in cluster.pids().items()))
    if node:
        print(f"  real node pod-resources socket: {node.pod_resources_dir / 'kubelet.sock'}")
        print(f"  load an image (`make image` builds one): "
              f"ctr --address {node.containerd_socket} -n k8s.io images import IMAGE.tar")
    print(f"  export KUBECONFIG={q(str(cluster.kubeconfig))}   # or: eval \"$(mlfootprint dev-cluster env{flag})\"")
    print("  kubectl get nodes")
    print(f"  logs: {state_dir / 'logs'}")
    print(f"stop it with: mlfootprint dev-cluster down{flag}")
    return 0


def _load(state_dir: Path) -> DevCluster:
    if not (state_dir / STATE_FILE).exists():
        raise DevClusterError(f"no dev cluster in {state_dir}; start one with `mlfootprint dev-cluster up`")
    return DevCluster.load(state_dir)


def _env(state_dir: Path, args: argparse.Namespace) -> int:
    cluster = _load(state_dir)
    for key, value in cluster.env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _status(state_dir: Path, args: argparse.Namespace) -> int:
    cluster = _load(state_dir)
    running = cluster.running()
    for name, up in running.items():
        print(f"{name:<24} pid {cluster.pids()[name]:<8} {'running' if up else 'NOT RUNNING'}")
    ready = cluster.is_ready()
    print(f"{'kube-apiserver /readyz':<24} {cluster.server:<40} {'ok' if ready else 'NOT READY'}")
    node = cluster.node
    if node is not None:
        print(f"{'real node':<24} {node.name} ({node.ip}), {node.gpus} GPUs, state in {node.dir}")
    return 0 if ready and all(running.values()) else 1


def _down(state_dir: Path, args: argparse.Namespace) -> int:
    if not (state_dir / STATE_FILE).exists():
        print(f"no dev cluster running from {state_dir}")
        return 0
    cluster = DevCluster.load(state_dir)
    pids = cluster.pids()
    cluster.stop()
    print(f"stopped {', '.join(f'{n} ({p})' for n, p in pids.items())}")
    return 0


_ACTIONS = {"up": _up, "down": _down, "env": _env, "status": _status}

"""The demo on a real node: which mode this machine allows, the image, the chart.

``make demo`` (``--node auto``) runs the product on the dev cluster's real worker node when the
machine allows it (root, containerd/runc/CNI, the kubelet, helm and the image tools from
``make tools``) and falls back to simulated (kwok) nodes with a message saying what is
missing. On the real node the exporter and the operator are the chart's DaemonSet and
Deployment running the image built here (hack/image/build.sh), and the sample project's pods
are real containers holding the node's (fake) GPUs through its device plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from mlfootprint.devcluster.binaries import cache_dir
from mlfootprint.devcluster.node import NodeBinaries, RealNodeError, host_problems

HELM_VERSION = "v4.1.4"  # hack/tools/20-helm.sh
RELEASE = "mlfootprint"
NAMESPACE = "mlfootprint"


def helm_binary() -> Path:
    override = os.environ.get("MLFOOTPRINT_HELM")
    return Path(override) if override else cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm"


def real_node_problems() -> list[str]:
    """What keeps this machine from running the demo on a real node (empty: nothing)."""
    problems = list(host_problems())
    try:
        NodeBinaries.find()
    except RealNodeError as e:
        problems.append(str(e))
    if not os.access(helm_binary(), os.X_OK):
        problems.append(f"helm {HELM_VERSION} ({helm_binary()}; `make tools`)")
    for tool in ("mmdebstrap", "umoci"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} to build the image (`make tools`)")
    return problems


def build_image(repo_root: Path, out: Path, log: Path) -> tuple[str, float]:
    """hack/image/build.sh into ``out``; returns (image reference, seconds)."""
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.run(["bash", str(repo_root / "hack" / "image" / "build.sh"), str(out)], cwd=repo_root,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"image build failed (hack/image/build.sh, log {log}):\n" + log.read_text()[-2000:])
    chart = yaml.safe_load((repo_root / "charts" / "mlfootprint" / "Chart.yaml").read_text())
    return f"ghcr.io/mlfootprint/mlfootprint:{chart['appVersion']}", time.monotonic() - t0


def chart_values(
    image: str, pod_resources_dir: Path, time_factor: float, operator_interval_s: float, state_host_path: Path
) -> dict[str, Any]:
    """The chart's values on the demo's real node; ``state_host_path``: the exporter's state
    hostPath, inside the demo's state directory (the chart's default is /var/lib/mlfootprint,
    which would outlive `make demo-down`)."""
    repo, tag = image.rsplit(":", 1)
    return {
        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
        "exporter": {
            "gpuSource": "sim",
            "podSource": "kubelet",
            "podMetadata": "kubernetes",
            "hostSource": "auto",
            "kubelet": {"podResourcesDir": str(pod_resources_dir)},
            "state": {"hostPath": str(state_host_path)},
            "sim": {"gpus": 8, "timeFactor": time_factor, "defaultProfile": "idle"},
            "attributionIntervalSeconds": 1,
            # keep ended pods' final totals visible for the whole demo (wall seconds)
            "endedPodGraceSeconds": 86400,
            # the node runs a device plugin without GPU feature discovery: select it by its label
            "gpuNodeAffinity": {"enabled": False},
            "nodeSelector": {"mlfootprint.dev/real-node": "true"},
        },
        "operator": {"refreshIntervalSeconds": operator_interval_s, "discovery": False,
                     # the simulated clock runs time_factor x faster: so do the serving counters
                     "extraArgs": [f"--serving-rate-scale={max(time_factor, 1.0):g}"],
                     "nodeSelector": {"mlfootprint.dev/real-node": "true"}},
        # the demo's own factors ConfigMap (samples/demo/factors.yaml) is applied instead
        "factors": {"create": False},
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
    }


def helm_install(kubeconfig: Path, chart: Path, values: dict[str, Any], state_dir: Path, timeout_s: int = 300) -> str:
    """`helm install --wait` of the chart; helm's config and cache live in the state directory."""
    path = state_dir / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    home = state_dir / "helm"
    env = {**os.environ, "HELM_CONFIG_HOME": str(home / "config"), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_DATA_HOME": str(home / "data")}
    proc = subprocess.run(
        [str(helm_binary()), "install", RELEASE, str(chart), "-n", NAMESPACE, "--create-namespace", "-f", str(path),
         "--kubeconfig", str(kubeconfig), "--wait", "--timeout", f"{timeout_s}s"],
        capture_output=True, text=True, timeout=timeout_s + 60, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"helm install failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def pod_ips(kubectl_json: dict[str, Any]) -> dict[str, str]:
    """component -> pod IP of the release's pods (from `kubectl get pods -o json`)."""
    out = {}
    for pod in kubectl_json.get("items", []):
        component = pod["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        ip = (pod.get("status") or {}).get("podIP")
        if component and ip:
            out[component] = ip
    return out

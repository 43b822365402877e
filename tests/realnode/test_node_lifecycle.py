"""A real node leaves the machine as it found it: after `mlfootprint dev-cluster down`, and after
a run that was killed without any teardown (the next start cleans up), issue 13 #2.

These start their own dev clusters (one at a time: one real node per machine), so they run
after the modules that share one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlfootprint.devcluster import DevCluster
from mlfootprint.devcluster.cluster import pid_alive
from mlfootprint.devcluster.node import PAUSE_IMAGE
from tests.realnode.conftest import clean_host_state, host_state, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

#: a pod that exercises what the node creates on the host: a network namespace on the bridge,
#: a GPU from the device plugin, an emptyDir and a projected service-account token (tmpfs)
POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder", "namespace": "default"},
    "spec": {
        "nodeSelector": {"mlfootprint.dev/real-node": "true"},
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "c", "image": PAUSE_IMAGE, "imagePullPolicy": "Never",
                        "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
    },
}


def _cli(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlfootprint", "dev-cluster", *args], capture_output=True, text=True,
                          timeout=timeout_s)


def _run_pod(kubeconfig: Path) -> None:
    kc = ["kubectl", "--kubeconfig", str(kubeconfig)]
    subprocess.run([*kc, "wait", "--for=create", "serviceaccount/default", "--timeout=60s"], check=True,
                   capture_output=True)
    subprocess.run([*kc, "apply", "-f", "-"], input=json.dumps(POD), text=True, check=True, capture_output=True)
    out = subprocess.run([*kc, "wait", "--for=condition=Ready", "pod/holder", "--timeout=90s"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


def _assert_same(before: dict, after: dict) -> None:  # type: ignore[type-arg]
    diff = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if "mounts" in diff:
        b, a = (set(x) for x in diff["mounts"])
        diff["mounts"] = (sorted(b - a), sorted(a - b))
    assert not diff, f"left on the host: {diff}"


def test_down_removes_everything_the_node_created(tmp_path: Path) -> None:
    before = clean_host_state()
    state = tmp_path / "state"
    up = _cli("up", "--state-dir", str(state), "--gpu-nodes", "1", "--real-node", "--real-node-gpus", "4")
    try:
        assert up.returncode == 0, up.stderr
        assert "real node" in up.stdout and "4 GPUs" in up.stdout
        _run_pod(state / "kubeconfig")
        during = host_state()
        # the node really made things on the host (so the comparison below means something)
        assert "mlf0" in during["links"] and during["cgroups"] and during["shims"]
        assert len(during["mounts"]) > len(before["mounts"])  # type: ignore[arg-type]
        # one real node per machine
        again = _cli("up", "--state-dir", str(tmp_path / "second"), "--real-node")
        assert again.returncode == 1 and "already runs" in again.stderr and str(state) in again.stderr
    finally:
        down = _cli("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    _assert_same(before, host_state())


def test_a_killed_run_is_cleaned_up_by_the_next_start(tmp_path: Path) -> None:
    """pytest (or the machine's user) killed with SIGKILL: PR_SET_PDEATHSIG stops the node's
    processes, but containers, shims, mounts and cgroups stay; the next start removes them."""
    before = clean_host_state()
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import json, pathlib, time
        from mlfootprint.devcluster import DevCluster
        dev = DevCluster(pathlib.Path({str(tmp_path / 'killed')!r}), real_node=True, die_with_parent=True).start()
        pathlib.Path({str(ready)!r}).write_text(json.dumps(dev.pids()))
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, 120, "the first dev cluster")
        assert ready.exists(), proc.stderr.read().decode() if proc.stderr else ""
        pids = json.loads(ready.read_text())
        _run_pod(tmp_path / "killed" / "kubeconfig")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    wait_until(lambda: not any(pid_alive(p) for p in pids.values()), 30, "PDEATHSIG to stop the components")
    left = host_state()
    assert left["shims"] and left["cgroups"], "the killed run should have left containers behind"
    t0 = time.monotonic()
    with DevCluster(tmp_path / "next", real_node=True, die_with_parent=True) as dev:
        assert dev.node is not None
        cleanup_and_start_s = time.monotonic() - t0
        node = json.loads(dev.kubectl("get", "node", dev.node.name, "-o", "json").stdout)
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    print(f"\n[realnode] stale node cleaned up and a new one started in {cleanup_and_start_s:.1f} s")
    _assert_same(before, host_state())
    assert not os.path.exists("/run/mlfootprint/real-node.json")

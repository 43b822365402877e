"""Starting and stopping leaves nothing behind; the `mlfootprint dev-cluster` CLI round trip."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlfootprint.devcluster import DevCluster
from mlfootprint.devcluster.cluster import pid_alive

pytestmark = pytest.mark.cluster


def _gone(pids: list[int], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    with DevCluster(tmp_path / "c", die_with_parent=True) as dev:
        assert dev.is_ready()
        pids = list(dev.pids().values())
        assert len(pids) == 5 and all(pid_alive(p) for p in pids)
    assert _gone(pids)
    assert not (tmp_path / "c" / "state.json").exists()
    for p in pids:  # not even in another process of the same group
        with pytest.raises(ProcessLookupError):
            os.killpg(p, 0)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlfootprint", "dev-cluster", *args],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
    )


def test_cli_up_env_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = _cli("up", "--state-dir", str(state), "--gpu-nodes", "1")
    try:
        assert up.returncode == 0, up.stderr
        assert "export KUBECONFIG=" in up.stdout and "dev-cluster down" in up.stdout
        # `up` returned: the processes run on, detached in their own sessions.
        loaded = DevCluster.load(state)
        pids = list(loaded.pids().values())
        assert all(loaded.running().values())
        assert all(os.getsid(p) == p for p in pids)

        env = _cli("env", "--state-dir", str(state))
        assert env.returncode == 0
        assert env.stdout.strip() == f"export KUBECONFIG={state / 'kubeconfig'}"
        nodes = subprocess.run(
            ["bash", "-c", f"{env.stdout}\nkubectl get nodes -o name"], capture_output=True, text=True, timeout=30
        )
        assert nodes.stdout.split() == ["node/kwok-gpu-0"], nodes.stderr

        status = _cli("status", "--state-dir", str(state))
        assert status.returncode == 0, status.stdout + status.stderr
        assert "NOT" not in status.stdout

        again = _cli("up", "--state-dir", str(state))
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = _cli("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert _gone(pids)
    assert _cli("status", "--state-dir", str(state)).returncode == 1
    assert _cli("down", "--state-dir", str(state)).returncode == 0  # idempotent


def test_cli_rejects_bad_gpu_node_count(tmp_path: Path) -> None:
    bad = _cli("up", "--state-dir", str(tmp_path), "--gpu-nodes", "-1")
    assert bad.returncode == 2 and "--gpu-nodes" in bad.stderr


def test_restart_pause_and_resume_a_component(tmp_path: Path) -> None:
    """The fault suite kills and freezes the API server: `restart` brings it back on the same
    port with the same certificates (clients reconnect unchanged), `pause` makes it hang
    without closing connections, `resume` undoes that, and `stop` also ends a paused one."""
    with DevCluster(tmp_path / "c", die_with_parent=True) as dev:
        old = dev.pids()["kube-apiserver"]
        dev.kubectl("create", "namespace", "before-restart")
        # the controller-manager is up (it created the ServiceAccount): a restart of the API
        # server while it still starts makes it exit (RBAC not served yet), a start-up race
        dev.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "before-restart", "--timeout=30s")
        new = dev.restart("kube-apiserver")
        assert new != old and not pid_alive(old) and dev.pids()["kube-apiserver"] == new
        assert dev.is_ready() and all(dev.running().values())
        assert "before-restart" in dev.kubectl("get", "ns", "-o", "name").stdout  # same etcd, same kubeconfig
        assert DevCluster.load(tmp_path / "c").pids()["kube-apiserver"] == new  # state.json follows
        dev.pause("kube-apiserver")
        t = time.monotonic()
        assert not dev.is_ready()  # hangs until the client's 2 s timeout
        assert time.monotonic() - t >= 1.5
        assert Path(f"/proc/{new}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"  # stopped, not gone
        dev.pause("kube-apiserver")  # paused again: stop() must still end it
        pids = list(dev.pids().values())
    assert _gone(pids)
    with pytest.raises(Exception, match="no component named"):
        DevCluster(tmp_path / "d").pause("kube-apiserver")


def test_a_port_taken_after_it_was_picked_starts_again_on_fresh_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen under 4 test workers: the controller-manager's port, picked free, was bound by
    something else before it started; it exited, and the cluster came up without it (no
    ServiceAccounts: every later test's namespace timed out). Start-up now waits for its and
    the scheduler's health, and starts again on fresh ports when a port was taken."""
    from mlfootprint.devcluster import cluster as cluster_mod

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = int(taken.getsockname()[1])
    picks: list[cluster_mod.Ports] = []
    pick = cluster_mod._pick_ports

    def first_taken() -> cluster_mod.Ports:
        ports = pick() if picks else dataclasses.replace(pick(), controller_manager=port)
        picks.append(ports)
        return ports

    monkeypatch.setattr(cluster_mod, "_pick_ports", first_taken)
    try:
        with caplog.at_level(logging.WARNING), DevCluster(tmp_path / "c", die_with_parent=True) as dev:
            assert len(picks) == 2 and picks[0].controller_manager == port
            assert dev._state.ports.controller_manager != port
            assert all(dev.running().values()) and len(dev.pids()) == 5
            assert "a port was taken during start-up" in caplog.text
            dev.kubectl("create", "namespace", "after-retry")
            dev.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "after-retry", "--timeout=30s")
    finally:
        taken.close()


def test_free_ports_are_outside_the_ephemeral_range() -> None:
    from mlfootprint.devcluster.cluster import PORT_FLOOR, _ephemeral_low, free_ports

    ports = free_ports(50)
    assert len(set(ports)) == 50
    assert all(PORT_FLOOR <= p < _ephemeral_low() for p in ports), ports

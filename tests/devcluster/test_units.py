"""Unit tests of mlfootprint.devcluster that need no running server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlfootprint.devcluster import pki
from mlfootprint.devcluster.binaries import KUBERNETES_VERSION, KWOK_VERSION, Binaries, MissingBinaryError
from mlfootprint.devcluster.cluster import _pick_ports, pid_alive

ROOT = Path(__file__).resolve().parents[2]


def test_versions_agree_with_the_build_scripts() -> None:
    go_mod = (ROOT / "hack/k8s-build/go.mod").read_text()
    assert re.search(rf"^require k8s.io/kubernetes {re.escape(KUBERNETES_VERSION)}$", go_mod, re.M)
    staging = re.findall(r"^\t(k8s.io/[a-z-]+) => \1 (v\S+)$", go_mod, re.M)
    assert len(staging) > 20
    assert {v for _, v in staging} == {"v0." + KUBERNETES_VERSION.removeprefix("v1.")}
    assert f'KWOK_VERSION="${{KWOK_VERSION:-{KWOK_VERSION}}}"' in (ROOT / "hack/tools/10-k8s.sh").read_text()


def test_missing_binaries_say_run_make_tools_and_quote_the_build_error(tmp_path: Path) -> None:
    log = tmp_path / "bin" / f"kubernetes-{KUBERNETES_VERSION}.build-error.log"
    log.parent.mkdir()
    log.write_text("# k8s.io/kubernetes/pkg/foo\nundefined: bar\n")
    with pytest.raises(MissingBinaryError) as e:
        Binaries.find(tmp_path)
    assert "make tools" in str(e.value)
    assert f"kube-apiserver {KUBERNETES_VERSION}" in str(e.value)
    assert "undefined: bar" in str(e.value)


def test_certificates_chain_to_the_ca_with_the_right_identities(tmp_path: Path) -> None:
    certs = pki.generate(tmp_path)
    for pair in (certs.apiserver, certs.admin, certs.controller_manager, certs.scheduler):
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", str(certs.ca.cert), str(pair.cert)], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(certs.admin.cert), "-noout", "-subject"], capture_output=True, text=True
    ).stdout
    assert "O = system:masters" in text and "CN = mlfootprint-admin" in text
    server = subprocess.run(
        ["openssl", "x509", "-in", str(certs.apiserver.cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True,
    ).stdout
    assert "IP Address:127.0.0.1" in server and "DNS:kubernetes.default.svc" in server
    assert (tmp_path / "sa.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_ports_are_distinct_and_on_loopback() -> None:
    ports = _pick_ports()
    values = list(vars(ports).values())
    assert len(set(values)) == len(values) and all(1024 < p < 65536 for p in values)


def test_pid_alive_checks_the_binary() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(proc.pid)
        assert pid_alive(proc.pid, "/usr/bin/sleep") or pid_alive(proc.pid, "/bin/sleep")
        assert not pid_alive(proc.pid, "/usr/bin/etcd")
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid)


def test_cluster_fixture_fails_not_skips_without_binaries(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs",
         "tests/devcluster/test_cluster.py::test_cluster_is_ready_on_loopback"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MLFOOTPRINT_CACHE": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert "make tools" in proc.stdout

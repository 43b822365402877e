"""Helpers for the chart tests: the real helm and promtool, and rendering the chart.

helm is installed by hack/tools/20-helm.sh into
``$MLFOOTPRINT_CACHE/bin/helm-<version>/helm`` (``MLFOOTPRINT_HELM`` overrides the path);
promtool and prometheus come from Debian's ``prometheus`` (hack/tools/30-prometheus.sh).
Tests that need them fail, never skip, when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlfootprint"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM_VERSION = "v4.1.4"
#: hack/prometheus-operator-build/go.mod pins it; a test checks that they agree
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"


def cache_dir() -> Path:
    return Path(os.environ.get("MLFOOTPRINT_CACHE") or Path.home() / ".cache" / "mlfootprint")


def helm_path() -> Path:
    """The helm binary hack/tools/20-helm.sh installed; fails the test when it is missing."""
    override = os.environ.get("MLFOOTPRINT_HELM")
    path = Path(override) if override else cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"helm not found at {path}: run `bash hack/tools/20-helm.sh` (make tools)", pytrace=False)
    return path


def prometheus_operator_dir() -> Path:
    """$MLFOOTPRINT_CACHE/prometheus-operator-<version> with `crds/` (the real CRDs from the Go
    module) and `operator` (hack/tools/60-prometheus-operator.sh); fails the test when missing."""
    path = cache_dir() / f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}"
    if not (path / "crds" / "done").is_file() or not os.access(path / "operator", os.X_OK):
        log = path / "build-error.log"
        why = f"\nlast build failed:\n{log.read_text()[-2000:]}" if log.exists() else ""
        pytest.fail(f"prometheus-operator {PROMETHEUS_OPERATOR_VERSION} not found in {path}: run "
                    f"`bash hack/tools/60-prometheus-operator.sh` (make tools){why}", pytrace=False)
    return path


def monitoring_crd_files(kinds: Sequence[str] | None = None) -> list[Path]:
    """The Prometheus Operator's CRD manifests (all, or those of the given plurals)."""
    crds = sorted((prometheus_operator_dir() / "crds").glob("monitoring.coreos.com_*.yaml"))
    if kinds is not None:
        crds = [c for c in crds if c.stem.split("_", 1)[1] in kinds]
    return crds


def tool_path(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: run `bash hack/tools/30-prometheus.sh` (make tools)", pytrace=False)
    return found


def helm(*args: str, check: bool = True, timeout_s: float = 120.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real helm with an isolated config/cache (no repositories, no plugins)."""
    home = cache_dir() / "helm-home"
    full_env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        **(env or {}),
    }
    proc = subprocess.run(
        [str(helm_path()), *args], capture_output=True, text=True, timeout=timeout_s, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    return proc


def render(values_files: Sequence[Path] = (), *args: str, release: str = "mlf", namespace: str = "mlfootprint") -> list[dict[str, Any]]:
    """`helm template` the chart; returns the rendered objects (empty documents dropped)."""
    cmd = ["template", release, str(CHART), "--namespace", namespace]
    for f in values_files:
        cmd += ["-f", str(f)]
    out = helm(*cmd, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]


def one(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = find(objs, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]

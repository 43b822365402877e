"""Where the control-plane binaries built by `make tools` (hack/tools/10-k8s.sh) live.

Versions are pinned here and in hack/k8s-build/go.mod / hack/tools/10-k8s.sh; a unit test
checks that they agree.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.33.13"
KWOK_VERSION = "v0.7.0"


class MissingBinaryError(RuntimeError):
    """A control-plane binary is not installed/built."""


def cache_dir() -> Path:
    """`$MLFOOTPRINT_CACHE` (default ~/.cache/mlfootprint), read when called."""
    return Path(os.environ.get("MLFOOTPRINT_CACHE") or Path.home() / ".cache" / "mlfootprint")


def cached_binary(name: str, version: str, cache: Path | None = None) -> Path:
    """Path of a binary built by hack/tools/10-k8s.sh: <cache>/bin/<name>-<version>/<name>."""
    return (cache or cache_dir()) / "bin" / f"{name}-{version}" / name


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the binaries the dev cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kubectl: Path

    @classmethod
    def find(cls, cache: Path | None = None) -> Binaries:
        """Locate every binary or raise MissingBinaryError naming each one missing."""
        missing: list[str] = []

        def built(name: str, version: str) -> Path:
            path = cached_binary(name, version, cache)
            if not os.access(path, os.X_OK):
                missing.append(f"{name} {version} (expected at {path})")
            return path

        def on_path(name: str, hint: str) -> Path:
            found = shutil.which(name)
            if found is None:
                missing.append(f"{name} ({hint})")
                return Path(name)
            return Path(found)

        found = cls(
            etcd=on_path("etcd", "Debian etcd-server"),
            kube_apiserver=built("kube-apiserver", KUBERNETES_VERSION),
            kube_controller_manager=built("kube-controller-manager", KUBERNETES_VERSION),
            kube_scheduler=built("kube-scheduler", KUBERNETES_VERSION),
            kwok=built("kwok", KWOK_VERSION),
            kubectl=on_path("kubectl", "expected at /usr/bin/kubectl"),
        )
        if missing:
            raise MissingBinaryError(
                "local control plane binaries missing: " + "; ".join(missing)
                + ". Run `make tools` (hack/tools/10-k8s.sh builds them from Go modules)."
                + "".join(_build_errors(cache or cache_dir()))
            )
        return found


def build_error_logs(cache: Path | None = None) -> list[Path]:
    """Logs kept by hack/tools/10-k8s.sh when a build of the pinned versions failed."""
    bin_dir = (cache or cache_dir()) / "bin"
    names = [f"kubernetes-{KUBERNETES_VERSION}", f"kwok-{KWOK_VERSION}"]
    return [p for p in (bin_dir / f"{n}.build-error.log" for n in names) if p.exists()]


def _build_errors(cache: Path, lines: int = 40) -> list[str]:
    out = []
    for log in build_error_logs(cache):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        out.append(f"\nThe last build failed ({log}):\n{tail}")
    return out

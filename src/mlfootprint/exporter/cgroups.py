"""PID -> container -> pod through cgroups, and per-container CPU time.

``/proc/<pid>/cgroup`` lines look like (cgroup v2, systemd driver, containerd)::

    0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<64 hex>.scope

or with the cgroupfs driver / cgroup v1 (``12:cpu,cpuacct:/kubepods/burstable/pod<uid>/<64 hex>``);
CRI-O uses ``crio-<id>.scope``, docker ``docker-<id>.scope``. The container is the pod cgroup's
child; a process in a cgroup nested below it (made inside the container) belongs to it too. CPU time comes from
``cpu.stat`` ``usage_usec`` (v2) or ``cpuacct.usage`` ns (v1) in the container's cgroup.
Roots are injected (fixture trees in tests).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_POD_RE = re.compile(r"pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})")
_CONTAINER_RE = re.compile(r"^(?:cri-containerd-|crio-|docker-)?([0-9a-f]{64})(?:\.scope)?$")

CgroupIdentity = tuple[str, str]  # (pod uid with dashes, container id)


def parse_cgroup_path(path: str) -> CgroupIdentity | None:
    """(pod uid, container id) from one cgroup path, or None if it is not a pod container."""
    if "kubepods" not in path:
        return None
    parts = path.strip("/").split("/")
    for i in range(len(parts) - 1, -1, -1):
        pod_match = _POD_RE.search(parts[i])
        if pod_match is None:
            continue
        # the container's cgroup is the pod's child; a process may sit in a cgroup *below* it
        # (nested cgroups made inside the container, e.g. by systemd, Ray or docker-in-docker)
        if i + 1 < len(parts):
            match = _CONTAINER_RE.match(parts[i + 1])
            if match is not None:
                return pod_match.group(1).replace("_", "-").lower(), match.group(1)
        return None
    return None


def parse_proc_cgroup(text: str) -> CgroupIdentity | None:
    """Identity from the whole ``/proc/<pid>/cgroup`` text (v1 or v2)."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            ident = parse_cgroup_path(parts[2])
            if ident is not None:
                return ident
    return None


def container_id_of(status_container_id: str) -> str:
    """``containerd://<id>`` (Kubernetes containerStatuses) -> ``<id>``."""
    return status_container_id.split("://", 1)[-1]


class CgroupReader:
    def __init__(self, procfs_root: Path, cgroup_root: Path) -> None:
        self._proc = Path(procfs_root)
        self._cgroup = Path(cgroup_root)

    def identity_of_pid(self, pid: int) -> CgroupIdentity | None:
        try:
            return parse_proc_cgroup((self._proc / str(pid) / "cgroup").read_text())
        except OSError:
            return None

    def container_cpu_seconds(self) -> dict[CgroupIdentity, float]:
        """Cumulative CPU seconds of every pod container found under the cgroup root."""
        out: dict[CgroupIdentity, float] = {}
        starts = [
            self._cgroup / "kubepods.slice",
            self._cgroup / "kubepods",
            self._cgroup / "cpu,cpuacct" / "kubepods.slice",
            self._cgroup / "cpu,cpuacct" / "kubepods",
            self._cgroup / "cpuacct" / "kubepods.slice",
            self._cgroup / "cpuacct" / "kubepods",
        ]
        for start in starts:
            if not start.is_dir():
                continue
            for dirpath, dirnames, _files in os.walk(start):
                rel = dirpath[len(str(self._cgroup)) :]
                ident = parse_cgroup_path(rel)
                if ident is None:
                    continue
                dirnames[:] = []  # a container's sub-cgroups are included in its usage
                seconds = _cpu_seconds(Path(dirpath))
                if seconds is not None and ident not in out:
                    out[ident] = seconds
        return out


def _cpu_seconds(directory: Path) -> float | None:
    try:
        for line in (directory / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        pass
    try:
        return int((directory / "cpuacct.usage").read_text().strip()) / 1e9
    except (OSError, ValueError):
        return None

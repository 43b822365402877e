"""Host (CPU package, DRAM) energy sources.

* :class:`RaplHostSource`: Linux powercap ``<sysfs>/class/powercap/intel-rapl:*`` zones —
  ``energy_uj`` (wraps to 0 after ``max_energy_range_uj``, handled by
  :func:`~mlfootprint.exporter.counters.counter_delta`). Top-level ``package-N`` zones are
  ``cpu``; zones or sub-zones named ``dram`` are ``dram``; ``core``/``uncore`` (subsets of
  the package) and ``psys`` (whole platform, would double count) are skipped.
* :class:`ModelHostSource`: where no RAPL exists (most VMs), an *estimate*
  ``P_cpu = n_cpu * (P_idle + (P_max - P_idle) * u)`` with ``u`` the busy share from
  ``/proc/stat``, and ``P_dram = GB * W_per_GB`` (defaults: Cloud Carbon Footprint
  methodology, AWS averages: 0.71 W idle and 4.26 W max per vCPU, 0.392 W per GB of
  memory). Its series are labelled ``estimated="true"``.
* :class:`SimHostSource`: a deterministic simulated server for the demo (estimated).

Roots are injected so tests read fixture trees.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from mlfootprint.exporter.model import ErrorCounter, HostReading, SourceUnavailable

log = logging.getLogger(__name__)

USER_HZ = 100  # /proc/stat unit (sysconf(_SC_CLK_TCK) on Linux)
CCF_IDLE_W_PER_CPU = 0.71
CCF_MAX_W_PER_CPU = 4.26
CCF_DRAM_W_PER_GB = 0.392


def read_proc_stat(procfs_root: Path) -> tuple[float, float, int]:
    """(busy CPU seconds, total CPU seconds, logical CPUs) from ``/proc/stat``."""
    busy = total = 0.0
    cpus = 0
    for line in (procfs_root / "stat").read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu":
            values = [float(x) for x in parts[1:9]] + [0.0] * max(0, 8 - len(parts[1:9]))
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            busy = (user + nice + system + irq + softirq + steal) / USER_HZ
            total = busy + (idle + iowait) / USER_HZ
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            cpus += 1
    return busy, total, max(cpus, 1)


def read_mem_total_gb(procfs_root: Path) -> float:
    for line in (procfs_root / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return float(line.split()[1]) / 1024 / 1024
    return 0.0


class RaplHostSource:
    name = "rapl"

    def __init__(self, errors: ErrorCounter, sysfs_root: Path, procfs_root: Path | None = None) -> None:
        self._errors = errors
        self._base = Path(sysfs_root) / "class" / "powercap"
        self._procfs = procfs_root

    def zones(self) -> dict[str, tuple[Path, str]]:
        """zone label -> (directory, component)."""
        found: dict[str, tuple[Path, str]] = {}
        if not self._base.is_dir():
            return found
        for top in sorted(self._base.glob("intel-rapl:*")):
            parts = top.name.split(":")
            if len(parts) != 2:
                continue  # sub-zones are listed inside their parent
            name = _read(top / "name")
            if name is None:
                continue
            if name.startswith("package"):
                found[name] = (top, "cpu")
            elif name == "dram":
                found[f"{top.name}/dram"] = (top, "dram")
            for sub in sorted(top.glob(f"{top.name}:*")):
                if _read(sub / "name") == "dram":
                    found[f"{name}/dram"] = (sub, "dram")
        return found

    def available(self) -> bool:
        return bool(self.zones())

    def read(self, now_s: float) -> HostReading:
        zones = self.zones()
        if not zones:
            raise SourceUnavailable(f"no powercap RAPL zones under {self._base}")
        counters: dict[str, tuple[int, int]] = {}
        components: dict[str, str] = {}
        for label, (path, component) in zones.items():
            try:
                energy = int((path / "energy_uj").read_text().strip())
                max_range = int((path / "max_energy_range_uj").read_text().strip())
            except (OSError, ValueError):
                self._errors.inc(self.name, "energy_uj")
                continue
            counters[label] = (energy, max_range)
            components[label] = component
        busy = total = None
        if self._procfs is not None:
            try:
                busy, total, _cpus = read_proc_stat(self._procfs)
            except (OSError, ValueError):
                self._errors.inc(self.name, "proc_stat")
        return HostReading(now_s, False, counters, components, {}, busy, total)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class ModelHostSource:
    """Utilisation model (estimate); see module doc for the formula and its source."""

    name = "model"

    def __init__(
        self,
        errors: ErrorCounter,
        procfs_root: Path,
        idle_w_per_cpu: float = CCF_IDLE_W_PER_CPU,
        max_w_per_cpu: float = CCF_MAX_W_PER_CPU,
        dram_w_per_gb: float = CCF_DRAM_W_PER_GB,
    ) -> None:
        self._errors = errors
        self._procfs = Path(procfs_root)
        self._idle = idle_w_per_cpu
        self._max = max_w_per_cpu
        self._dram = dram_w_per_gb
        self._prev: tuple[float, float] | None = None

    def read(self, now_s: float) -> HostReading:
        try:
            busy, total, cpus = read_proc_stat(self._procfs)
            mem_gb = read_mem_total_gb(self._procfs)
        except (OSError, ValueError) as exc:
            self._errors.inc(self.name, "proc_stat")
            raise SourceUnavailable(f"cannot read {self._procfs}/stat: {exc}") from exc
        if self._prev is None or total <= self._prev[1]:
            util = busy / total if total > 0 else 0.0
        else:
            util = (busy - self._prev[0]) / (total - self._prev[1])
        self._prev = (busy, total)
        util = min(max(util, 0.0), 1.0)
        cpu_w = cpus * (self._idle + (self._max - self._idle) * util)
        return HostReading(now_s, True, {}, {}, {"cpu": cpu_w, "dram": mem_gb * self._dram}, busy, total)


class SimHostSource:
    """Deterministic simulated host: ``cpus`` logical CPUs, diurnal utilisation 25-45 %."""

    name = "sim"

    def __init__(self, errors: ErrorCounter, cpus: int = 128, mem_gb: float = 1024.0) -> None:
        self._cpus = cpus
        self._mem_gb = mem_gb

    def read(self, now_s: float) -> HostReading:
        w = 2 * math.pi / 86400.0
        util = 0.35 + 0.1 * math.sin(w * now_s)
        busy_s = self._cpus * (0.35 * now_s - 0.1 / w * math.cos(w * now_s))
        cpu_w = self._cpus * (CCF_IDLE_W_PER_CPU + (CCF_MAX_W_PER_CPU - CCF_IDLE_W_PER_CPU) * util)
        dram_w = self._mem_gb * CCF_DRAM_W_PER_GB
        return HostReading(now_s, True, {}, {}, {"cpu": cpu_w, "dram": dram_w}, busy_s, self._cpus * now_s)

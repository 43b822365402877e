"""The exporter's state file: a typed, validated checkpoint of its cumulative counters.

Written after every attribution interval, *before* the interval's snapshot is served (see
:class:`~mlfootprint.exporter.monitor.Monitor`), so a value a scraper has seen is always on
disk: a restart (an OOM kill, ``kill -9``) resumes from it and never serves a lower value.
The last hardware counter reading of each GPU and RAPL zone is kept too, so the energy the
devices used while the exporter was down is billed after the restart (NVML's and RAPL's
counters keep counting without us).

Every number is validated when loaded (finite, non-negative, within physical bounds). A file
that does not validate is set aside (renamed ``<name>.bad-<unix time>``) with a log line and
an error count; the exporter then starts from zero with new counter start times, which the
operator reads as new series (``mlfootprint_pod_start_time_seconds``), so nothing is doubled.
Version 1 files (0.1.0: before start times and hardware baselines existed) are migrated: their
containers' counters continue, with the start :data:`V1_START_UNIX`, which is older than any
observation an operator made of them, so that it reads them as the counters it knew
(mlfootprint.operator.ledger), not as new ones.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ContainerState",
    "GpuState",
    "HostState",
    "StateError",
    "StateFile",
    "load_state",
    "save_state",
]

log = logging.getLogger(__name__)

#: Upper bound of any cumulative energy (J): 10 kW for 30 years. A larger value is corrupt.
MAX_ENERGY_J = 1e13
#: Upper bound of any cumulative time (s): 30 years of device-seconds on 64 devices.
MAX_SECONDS = 64 * 30 * 365.25 * 86400.0
MAX_POWER_W = 1e5

EnergyJ = Annotated[float, Field(ge=0, le=MAX_ENERGY_J, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
#: cumulative CPU seconds of a host (all its CPUs since boot; a simulated host counts from 1970)
CpuSeconds = Annotated[float, Field(ge=0, le=1e13, allow_inf_nan=False)]
PowerW = Annotated[float, Field(ge=0, le=MAX_POWER_W, allow_inf_nan=False)]
UnixTime = Annotated[float, Field(gt=0, lt=1e11, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=10**12)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: Start of the counters of a container migrated from a version 1 file, which kept none: the
#: counters continue 0.1.0's, begun at an unknown time before any operator read them (one
#: second after the epoch, as the start time must be positive). A migration time here would
#: tell an operator that they started after its last read: from zero, all new (doubled).
V1_START_UNIX = 1.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Share(_Model):
    """A container's share of a GPU's energy in the last interval before the checkpoint."""

    namespace: str
    pod: str
    container: str
    fraction: Fraction


class GpuState(_Model):
    model: str
    energy_j: EnergyJ
    idle_j: EnergyJ
    swings: Count = 0
    max_power_w: PowerW = 0.0
    #: last reading of the hardware energy counter (mJ since driver load), None without one
    counter_mj: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    #: holders' energy shares in the last interval (who the downtime is billed to)
    shares: list[Share] = Field(default_factory=list)


class GpuEnergy(_Model):
    gpu_uuid: str
    gpu_model: str
    energy_j: EnergyJ


class ContainerState(_Model):
    namespace: str = Field(min_length=1)
    pod: str = Field(min_length=1)
    container: str
    #: unix time the exporter started counting this container (its counters' identity)
    start_unix: UnixTime
    gpu: list[GpuEnergy] = Field(default_factory=list)
    host_j: dict[Literal["cpu", "dram"], EnergyJ] = Field(default_factory=dict)
    alloc_s: dict[str, Seconds] = Field(default_factory=dict)
    peak_w: PowerW | None = None
    min_w: PowerW | None = None
    swings: Count = 0
    last_cpu_s: Seconds | None = None
    #: unix time the container was first seen ended (grace period), None while it runs
    ended_unix: UnixTime | None = None
    #: seconds at each power ratio bucket (exporter.model.POWER_RATIO_BUCKETS, then above)
    ratio_s: list[Seconds] = Field(default_factory=list)
    ratio_sum: Seconds = 0.0
    limit_w: PowerW = 0.0


class RaplZone(_Model):
    energy_uj: Annotated[int, Field(ge=0)]
    max_uj: Annotated[int, Field(ge=0)]
    component: Literal["cpu", "dram"] = "cpu"


class HostState(_Model):
    energy_j: dict[Literal["cpu", "dram"], EnergyJ] = Field(default_factory=dict)
    unattributed_j: dict[Literal["cpu", "dram"], EnergyJ] = Field(default_factory=dict)
    estimated: bool = False
    #: last RAPL reading (zone -> counter) and the host's cumulative busy and total CPU seconds
    zones: dict[str, RaplZone] = Field(default_factory=dict)
    busy_cpu_s: CpuSeconds | None = None
    total_cpu_s: CpuSeconds | None = None


class StateFile(_Model):
    version: Literal[2] = 2
    node: str
    saved_unix: UnixTime
    #: the monitor's measurement clock at the last attribution (simulated time under --sim-time-factor)
    clock_s: Annotated[float, Field(allow_inf_nan=False)]
    gpus: dict[str, GpuState] = Field(default_factory=dict)
    host: HostState = Field(default_factory=HostState)
    containers: list[ContainerState] = Field(default_factory=list)
    pod_starts: list[tuple[str, str, UnixTime]] = Field(default_factory=list)


class StateError(ValueError):
    """The state file exists but cannot be used; the message names the field, never a value."""


def _migrate_v1(doc: dict[str, Any], now_unix: float) -> dict[str, Any]:
    """Version 1 (no start times, no hardware baselines) -> version 2."""
    containers = []
    for c in doc.get("containers", []):
        containers.append(
            {
                "namespace": c.get("namespace"),
                "pod": c.get("pod"),
                "container": c.get("container"),
                "start_unix": V1_START_UNIX,
                "gpu": [{"gpu_uuid": u, "gpu_model": m, "energy_j": j} for u, m, j in c.get("gpu_j", [])],
                "host_j": c.get("host_j", {}),
                "alloc_s": c.get("alloc_s", {}),
                "peak_w": c.get("peak_w"),
                "min_w": c.get("min_w"),
                "swings": c.get("swings", 0),
                "ended_unix": now_unix if c.get("ended_at") is not None else None,
            }
        )
    return {
        "version": 2,
        "node": doc.get("node", ""),
        "saved_unix": now_unix,
        "clock_s": 0.0,
        "gpus": {
            u: {"model": g.get("model"), "energy_j": g.get("energy_j"), "idle_j": g.get("idle_j"), "swings": g.get("swings", 0)}
            for u, g in doc.get("gpus", {}).items()
        },
        "host": {"energy_j": doc.get("host_j", {})},
        "containers": containers,
    }


def _describe(exc: ValidationError) -> str:
    """Field locations and reasons only (the file's values are not echoed)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "document"
        parts.append(f"{loc}: {err['type']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def load_state(path: Path, node: str, now_unix: float | None = None) -> StateFile | None:
    """The validated state in ``path`` (None when there is none).

    Raises :class:`StateError` naming what is wrong when the file exists but is unreadable,
    not JSON, of an unknown version, for another node, or fails validation.
    """
    now_unix = time.time() if now_unix is None else now_unix
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(raw)  # bytes that are not UTF-8 are a ValueError too (not a crash)
    except ValueError:
        raise StateError("not valid JSON") from None
    if not isinstance(doc, dict):
        raise StateError("not a JSON object")
    if doc.get("version") == 1:
        doc = _migrate_v1(doc, now_unix)
    elif doc.get("version") != 2:
        raise StateError("version: unknown state file version")
    try:
        state = StateFile.model_validate(doc)
    except ValidationError as e:
        raise StateError(_describe(e)) from None
    if state.node and node and state.node != node:
        raise StateError("node: the state file belongs to another node")
    return state


def set_aside(path: Path, now_unix: float | None = None) -> Path | None:
    """Rename an unusable state file to ``<name>.bad-<unix time>``; None if that fails."""
    target = path.with_name(f"{path.name}.bad-{int(time.time() if now_unix is None else now_unix)}")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def save_state(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` (a :class:`StateFile` as plain data) atomically: temp file + rename.

    Plain ``json.dumps`` rather than building models: this runs every interval, and
    :func:`load_state` validates on the way back in (a test round-trips both).
    Raises OSError.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, separators=(",", ":"), allow_nan=False)
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

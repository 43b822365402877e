"""The report's data: a columnar table of runs (one row per TrainingRun, InferenceService or
node's idle energy) and the versioned JSON snapshot format that stores it.

Rows keep the units of the CRD status (kWh, kg, L, GPU-hours) so that a snapshot reads like
the objects it came from. Numbers live in one float64 matrix (``values[row, column]``) so
that filtering, pro-rating and grouping are numpy operations, linear in the number of runs.

Snapshot format (``format: mlfootprint.io/report-snapshot``, ``version: 1``)::

    {"format": "mlfootprint.io/report-snapshot", "version": 1,
     "generatedAt": "2026-11-30T12:00:00Z",
     "source": {"kind": "cluster", ...},
     "runs": [{"kind": "TrainingRun", "namespace": "nlp", "name": "sweep-1",
               "labels": {"team": "nlp"}, "model": "llama-3-8b", "modelVersion": "v1",
               "phase": "development", "nodePool": "h100",
               "startTime": "2026-11-02T00:00:00Z", "endTime": "2026-11-03T00:00:00Z",
               "gpuHours": 192.0,
               "energy": {"gpuKWh": ..., "hostKWh": ..., "itKWh": ..., "facilityKWh": ...},
               "carbon": {"operationalKg": ..., "marketKg": ..., "embodiedKg": ..., "totalKg": ...},
               "water": {"onsiteL": ..., "offsiteL": ..., "embodiedL": ..., "totalL": ...},
               "inference": {"requests": ..., "inputTokens": ..., "outputTokens": ...}}],
     "idle": [{"node": "gpu-1", "nodePool": "h100", "startTime": ..., "endTime": ...,
               "energy": {"gpuKWh": ..., "hostKWh": ...}}]}

``idle`` rows are energy the exporter attributed to no pod (METHODOLOGY §2); fields that are
missing (facility energy, carbon, water) are derived when the report is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "COLUMNS",
    "IDLE_KIND",
    "PHASES",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "RunTable",
    "SnapshotError",
    "format_time",
    "parse_time",
    "read_snapshot",
    "record_from_object",
    "table_from_records",
    "table_to_snapshot",
    "write_snapshot",
]

SNAPSHOT_FORMAT = "mlfootprint.io/report-snapshot"
SNAPSHOT_VERSION = 1

#: Lifecycle phases (METHODOLOGY §1) in display order; idle rows have phase "idle".
PHASES: tuple[str, ...] = ("development", "training", "inference")
IDLE_KIND = "Idle"
IDLE_PHASE = "idle"

#: (column name, snapshot section, snapshot key). Units are in the names.
_COLUMN_SPEC: tuple[tuple[str, str | None, str], ...] = (
    ("gpu_hours", None, "gpuHours"),
    ("gpu_kwh", "energy", "gpuKWh"),
    ("host_kwh", "energy", "hostKWh"),
    ("it_kwh", "energy", "itKWh"),
    ("facility_kwh", "energy", "facilityKWh"),
    ("operational_kg", "carbon", "operationalKg"),
    ("market_kg", "carbon", "marketKg"),  # NaN where not configured; never added to totals
    ("embodied_kg", "carbon", "embodiedKg"),
    ("total_kg", "carbon", "totalKg"),
    ("onsite_l", "water", "onsiteL"),
    ("offsite_l", "water", "offsiteL"),
    ("embodied_l", "water", "embodiedL"),
    ("total_l", "water", "totalL"),
    ("requests", "inference", "requests"),
    ("input_tokens", "inference", "inputTokens"),
    ("output_tokens", "inference", "outputTokens"),
)
COLUMNS: tuple[str, ...] = tuple(c for c, _, _ in _COLUMN_SPEC)
COL: dict[str, int] = {c: i for i, c in enumerate(COLUMNS)}


_PROGRESS_STEP = 4096  # rows between progress callbacks


class SnapshotError(ValueError):
    """A snapshot file that cannot be read (wrong format, version or field)."""


def parse_time(value: str | None) -> float:
    """RFC 3339 / ISO 8601 timestamp -> Unix seconds (NaN for None/empty). Naive = UTC."""
    if not value:
        return float("nan")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def format_time(epoch_s: float) -> str | None:
    """Unix seconds -> RFC 3339 UTC with a Z (None for NaN)."""
    if epoch_s != epoch_s:  # NaN
        return None
    dt = datetime.fromtimestamp(epoch_s, tz=UTC)
    fmt = "%Y-%m-%dT%H:%M:%S" + (".%fZ" if dt.microsecond else "Z")
    return dt.strftime(fmt)


@dataclass(frozen=True)
class RunTable:
    """Columnar rows. String columns are numpy object arrays; times are Unix seconds (NaN =
    unknown); ``values`` is float64 ``[rows, len(COLUMNS)]``."""

    kind: npt.NDArray[np.object_]
    namespace: npt.NDArray[np.object_]
    name: npt.NDArray[np.object_]
    phase: npt.NDArray[np.object_]
    model: npt.NDArray[np.object_]
    model_version: npt.NDArray[np.object_]
    node_pool: npt.NDArray[np.object_]
    labels: npt.NDArray[np.object_]  # dict[str, str] per row
    start_s: npt.NDArray[np.float64]
    end_s: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def col(self, name: str) -> npt.NDArray[np.float64]:
        return self.values[:, COL[name]]

    @property
    def is_idle(self) -> npt.NDArray[np.bool_]:
        return self.kind == IDLE_KIND

    def take(self, index: npt.NDArray[Any], values: npt.NDArray[np.float64] | None = None) -> RunTable:
        """Rows selected by a boolean mask or index array (optionally with new values)."""
        return RunTable(
            kind=self.kind[index],
            namespace=self.namespace[index],
            name=self.name[index],
            phase=self.phase[index],
            model=self.model[index],
            model_version=self.model_version[index],
            node_pool=self.node_pool[index],
            labels=self.labels[index],
            start_s=self.start_s[index],
            end_s=self.end_s[index],
            values=self.values[index] if values is None else values,
            meta=self.meta,
        )

    def with_values(self, values: npt.NDArray[np.float64]) -> RunTable:
        return self.take(np.arange(len(self)), values)


def _obj(items: list[Any]) -> npt.NDArray[np.object_]:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def _num(value: Any, where: str) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SnapshotError(f"{where}: expected a number, got {value!r}")
    return float(value)


def table_from_records(
    runs: Iterable[Mapping[str, Any]],
    idle: Iterable[Mapping[str, Any]] = (),
    *,
    meta: Mapping[str, Any] | None = None,
    on_row: Callable[[int], None] | None = None,
) -> RunTable:
    """Build the table from snapshot records (``runs`` then ``idle``). One linear pass.

    Missing numbers are 0, except ``carbon.marketKg`` (NaN: not configured) and the idle
    rows' derived quantities (NaN: filled in by :func:`mlfootprint.report.aggregate.fill_idle`).
    """
    kinds: list[str] = []
    nss: list[str] = []
    names: list[str] = []
    phases: list[str] = []
    models: list[str] = []
    versions: list[str] = []
    pools: list[str] = []
    labels: list[dict[str, str]] = []
    starts: list[float] = []
    ends: list[float] = []
    rows: list[list[float]] = []
    spec = _COLUMN_SPEC
    nan = float("nan")
    for is_idle, records in ((False, runs), (True, idle)):
        for i, rec in enumerate(records):
            where = f"{'idle' if is_idle else 'runs'}[{i}]"
            if not isinstance(rec, Mapping):
                raise SnapshotError(f"{where}: expected an object")
            try:
                if is_idle:
                    kinds.append(IDLE_KIND)
                    nss.append("")
                    names.append(str(rec.get("node") or ""))
                    phases.append(IDLE_PHASE)
                    models.append("")
                    versions.append("")
                else:
                    kind = rec.get("kind")
                    if kind not in ("TrainingRun", "InferenceService"):
                        raise SnapshotError(f"{where}.kind: expected TrainingRun or InferenceService, got {kind!r}")
                    phase = rec.get("phase") or ("inference" if kind == "InferenceService" else "development")
                    if phase not in PHASES:
                        raise SnapshotError(f"{where}.phase: expected one of {', '.join(PHASES)}, got {phase!r}")
                    kinds.append(kind)
                    nss.append(str(rec.get("namespace") or ""))
                    names.append(str(rec.get("name") or ""))
                    phases.append(phase)
                    models.append(str(rec.get("model") or ""))
                    versions.append(str(rec.get("modelVersion") or ""))
                pools.append(str(rec.get("nodePool") or ""))
                lab = rec.get("labels") or {}
                if not isinstance(lab, Mapping):
                    raise SnapshotError(f"{where}.labels: expected an object")
                labels.append(dict(lab))
                starts.append(parse_time(rec.get("startTime")))
                ends.append(parse_time(rec.get("endTime")))
            except (TypeError, ValueError) as exc:
                if isinstance(exc, SnapshotError):
                    raise
                raise SnapshotError(f"{where}: {exc}") from exc
            row: list[float] = []
            for column, section, key in spec:
                part = rec if section is None else rec.get(section)
                value = part.get(key) if isinstance(part, Mapping) else None
                if value is None:
                    if column == "market_kg" or (is_idle and column not in ("gpu_kwh", "host_kwh", "gpu_hours")):
                        row.append(nan)
                    else:
                        row.append(0.0)
                else:
                    row.append(_num(value, f"{where}.{section + '.' if section else ''}{key}"))
            rows.append(row)
            if on_row is not None and len(rows) % _PROGRESS_STEP == 0:
                on_row(_PROGRESS_STEP)
    if on_row is not None and len(rows) % _PROGRESS_STEP:
        on_row(len(rows) % _PROGRESS_STEP)
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(COLUMNS))
    return RunTable(
        kind=_obj(kinds),
        namespace=_obj(nss),
        name=_obj(names),
        phase=_obj(phases),
        model=_obj(models),
        model_version=_obj(versions),
        node_pool=_obj(pools),
        labels=_obj(labels),
        start_s=np.array(starts, dtype=np.float64),
        end_s=np.array(ends, dtype=np.float64),
        values=values,
        meta=dict(meta or {}),
    )


#: Label or annotation naming a run's node pool (the report's `node-pool` grouping).
NODE_POOL_KEY = "mlfootprint.io/node-pool"


def record_from_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A TrainingRun/InferenceService object (as the API returns it) -> a snapshot record.

    Phase: ``status.phase``, else ``spec.phase``, else training for ``spec.final``, inference
    for an InferenceService and development otherwise (the operator's rule, docs/operator.md).
    End time: ``status.completionTime``, else ``status.lastUpdated`` (figures are totals up
    to then). Node pool: the label or annotation ``mlfootprint.io/node-pool``.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    kind = obj.get("kind") or ""
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    phase = status.get("phase") or spec.get("phase")
    if not phase:
        phase = "inference" if kind == "InferenceService" else ("training" if spec.get("final") else "development")
    model = spec.get("model") or {}
    energy = status.get("energy") or {}
    carbon = status.get("carbon") or {}
    water = status.get("water") or {}
    inference = status.get("inference") or {}
    record: dict[str, Any] = {
        "kind": kind,
        "namespace": meta.get("namespace") or "",
        "name": meta.get("name") or "",
        "labels": dict(labels),
        "model": model.get("name") or "",
        "modelVersion": model.get("version"),
        "phase": phase,
        "nodePool": labels.get(NODE_POOL_KEY) or annotations.get(NODE_POOL_KEY) or "",
        "startTime": status.get("startTime"),
        "endTime": status.get("completionTime") or status.get("lastUpdated"),
        "gpuHours": status.get("gpuHours", 0.0),
        "energy": {k: energy[k] for k in ("gpuKWh", "hostKWh", "itKWh", "facilityKWh") if k in energy},
        "carbon": {k: carbon[k] for k in ("operationalKg", "marketKg", "embodiedKg", "totalKg") if k in carbon},
        "water": {k: water[k] for k in ("onsiteL", "offsiteL", "embodiedL", "totalL") if k in water},
    }
    if kind == "InferenceService":
        record["inference"] = {
            k: inference.get(k, 0) for k in ("requests", "inputTokens", "outputTokens")
        }
    return record


def _clean(value: float) -> float | None:
    return None if value != value else round(float(value), 9)


def table_to_snapshot(table: RunTable, *, source: Mapping[str, Any], generated_at: float) -> dict[str, Any]:
    """The inverse of :func:`table_from_records`: a snapshot document (format version 1)."""
    runs: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    values = table.values.tolist()
    for i in range(len(table)):
        row = values[i]
        sections: dict[str, dict[str, float]] = {}
        top: dict[str, Any] = {}
        for j, (_column, section, key) in enumerate(_COLUMN_SPEC):
            v = _clean(row[j])
            if v is None:
                continue
            if section is None:
                top[key] = v
            else:
                sections.setdefault(section, {})[key] = int(v) if section == "inference" else v
        times = {"startTime": format_time(table.start_s[i]), "endTime": format_time(table.end_s[i])}
        if table.kind[i] == IDLE_KIND:
            rec: dict[str, Any] = {"node": table.name[i], "nodePool": table.node_pool[i], **times}
            rec["energy"] = sections.get("energy", {})
            for section in ("carbon", "water"):
                if section in sections:
                    rec[section] = sections[section]
            idle.append(rec)
            continue
        rec = {
            "kind": table.kind[i],
            "namespace": table.namespace[i],
            "name": table.name[i],
            "labels": table.labels[i],
            "model": table.model[i],
            "modelVersion": table.model_version[i] or None,
            "phase": table.phase[i],
            "nodePool": table.node_pool[i],
            **times,
            **top,
            "energy": sections.get("energy", {}),
            "carbon": sections.get("carbon", {}),
            "water": sections.get("water", {}),
        }
        if table.kind[i] == "InferenceService":
            rec["inference"] = sections.get("inference", {})
        runs.append(rec)
    return {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "generatedAt": format_time(generated_at),
        "source": dict(source),
        "runs": runs,
        "idle": idle,
    }


def write_snapshot(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def read_snapshot(
    path: Path, *, on_total: Callable[[int], None] | None = None, on_row: Callable[[int], None] | None = None
) -> RunTable:
    """Read and validate a snapshot file (format and version checked first)."""
    try:
        with path.open("rb") as fh:
            document = json.load(fh)
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path} is not an mlfootprint report snapshot (format {SNAPSHOT_FORMAT!r} expected)")
    version = document.get("version")
    if version != SNAPSHOT_VERSION:
        raise SnapshotError(f"{path}: snapshot version {version!r} is not supported (this mlfootprint reads {SNAPSHOT_VERSION})")
    runs = document.get("runs", [])
    idle = document.get("idle", [])
    if not isinstance(runs, list) or not isinstance(idle, list):
        raise SnapshotError(f"{path}: 'runs' and 'idle' must be lists")
    if on_total is not None:
        on_total(len(runs) + len(idle))
    source = dict(document.get("source") or {})
    source.setdefault("kind", "file")
    source["file"] = str(path)
    return table_from_records(runs, idle, meta={"source": source}, on_row=on_row)

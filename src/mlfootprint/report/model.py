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

import contextlib
import gc
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    ("embodied_gpu_kg", "carbon", "embodiedGpuKg"),  # by part (issue 14): GPUs, and the nodes' hosts
    ("embodied_host_kg", "carbon", "embodiedHostKg"),
    ("total_kg", "carbon", "totalKg"),
    ("onsite_l", "water", "onsiteL"),
    ("offsite_l", "water", "offsiteL"),
    ("embodied_l", "water", "embodiedL"),
    ("total_l", "water", "totalL"),
    ("requests", "inference", "requests"),
    ("input_tokens", "inference", "inputTokens"),
    ("output_tokens", "inference", "outputTokens"),
    ("cap_saving_kg", "powerCap", "co2eSavedKg"),  # CO2e a recommended GPU power cap would have saved (advice)
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
        idle: npt.NDArray[np.bool_] = self.kind == IDLE_KIND
        return idle

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


def _times(values: list[Any], where: str, key: str) -> npt.NDArray[np.float64]:
    """Timestamps -> Unix seconds, vectorised for the usual ``...Z`` form; NaN when absent."""
    if all(v is None or (type(v) is str and v.endswith("Z") and "+" not in v) for v in values):
        try:
            stamps = np.array([v[:-1] if v else "NaT" for v in values], dtype="datetime64[us]")
        except ValueError:
            pass  # fall through to the exact per-value parser for the message
        else:
            out = stamps.astype(np.int64).astype(np.float64) / 1e6
            out[np.isnat(stamps)] = np.nan
            return out
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = parse_time(v)
        except (TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"{where}[{i}].{key}: bad timestamp {v!r}: {exc}") from None
    return out


_NUMBER_TYPES = (int, float, type(None))


def _numbers(values: list[Any], where: str, key: str, missing: float) -> npt.NDArray[np.float64]:
    if not {type(v) for v in values} <= set(_NUMBER_TYPES):
        i = next(i for i, v in enumerate(values) if type(v) not in _NUMBER_TYPES)
        raise SnapshotError(f"{where}[{i}].{key}: expected a number, got {values[i]!r}")
    arr = np.array(values, dtype=np.float64)  # None -> NaN
    if missing == missing:  # not NaN
        arr[np.isnan(arr)] = missing
    return arr


def _part(records: list[Mapping[str, Any]], section: str | None, where: str) -> list[Mapping[str, Any]]:
    if section is None:
        return records
    parts = [r.get(section) or _EMPTY for r in records]
    if not all(type(p) is dict or isinstance(p, Mapping) for p in parts):
        i = next(i for i, p in enumerate(parts) if not isinstance(p, Mapping))
        raise SnapshotError(f"{where}[{i}].{section}: expected an object")
    return parts


_EMPTY: Mapping[str, Any] = {}


def _rows(records: list[Mapping[str, Any]], *, idle: bool) -> dict[str, Any]:
    """Column arrays for one list of records (runs or idle)."""
    where = "idle" if idle else "runs"
    for i, rec in enumerate(records):
        if type(rec) is not dict and not isinstance(rec, Mapping):
            raise SnapshotError(f"{where}[{i}]: expected an object")
    n = len(records)
    if idle:
        kinds: list[Any] = [IDLE_KIND] * n
        nss = [""] * n
        names = [str(r.get("node") or "") for r in records]
        phases = [IDLE_PHASE] * n
        models = [""] * n
        versions = [""] * n
    else:
        kinds = [r.get("kind") for r in records]
        bad = next((i for i, k in enumerate(kinds) if k != "TrainingRun" and k != "InferenceService"), None)
        if bad is not None:
            raise SnapshotError(f"runs[{bad}].kind: expected TrainingRun or InferenceService, got {kinds[bad]!r}")
        phases = [r.get("phase") or ("inference" if k == "InferenceService" else "development") for r, k in zip(records, kinds, strict=True)]
        bad = next((i for i, p in enumerate(phases) if p not in PHASES), None)
        if bad is not None:
            raise SnapshotError(f"runs[{bad}].phase: expected one of {', '.join(PHASES)}, got {phases[bad]!r}")
        nss = [str(r.get("namespace") or "") for r in records]
        names = [str(r.get("name") or "") for r in records]
        models = [str(r.get("model") or "") for r in records]
        versions = [str(r.get("modelVersion") or "") for r in records]
    labels = [r.get("labels") or {} for r in records]
    bad = next((i for i, lab in enumerate(labels) if type(lab) is not dict and not isinstance(lab, Mapping)), None)
    if bad is not None:
        raise SnapshotError(f"{where}[{bad}].labels: expected an object")
    values = np.empty((n, len(COLUMNS)), dtype=np.float64)
    sections: dict[str | None, list[Mapping[str, Any]]] = {}
    for j, (column, section, key) in enumerate(_COLUMN_SPEC):
        if section not in sections:
            sections[section] = _part(records, section, where)
        raw = [p.get(key) for p in sections[section]]
        nan_default = column == "market_kg" or (idle and column not in ("gpu_kwh", "host_kwh", "gpu_hours"))
        values[:, j] = _numbers(raw, where, f"{section + '.' if section else ''}{key}", float("nan") if nan_default else 0.0)
    return {
        "kind": kinds, "namespace": nss, "name": names, "phase": phases, "model": models,
        "model_version": versions, "node_pool": [str(r.get("nodePool") or "") for r in records],
        "labels": [dict(lab) for lab in labels],
        "start_s": _times([r.get("startTime") for r in records], where, "startTime"),
        "end_s": _times([r.get("endTime") for r in records], where, "endTime"),
        "values": values,
    }


def table_from_records(
    runs: Iterable[Mapping[str, Any]],
    idle: Iterable[Mapping[str, Any]] = (),
    *,
    meta: Mapping[str, Any] | None = None,
    on_row: Callable[[int], None] | None = None,
) -> RunTable:
    """Build the table from snapshot records (``runs`` then ``idle``), column by column.

    Missing numbers are 0, except ``carbon.marketKg`` (NaN: not configured) and the idle
    rows' derived quantities (NaN: filled in by :func:`mlfootprint.report.aggregate.fill_idle`).
    Raises :class:`SnapshotError` naming the first bad record and field.
    """
    parts = []
    for is_idle, given in ((False, runs), (True, idle)):
        records = given if isinstance(given, list) else list(given)
        for lo in range(0, max(len(records), 1), _PROGRESS_STEP):
            chunk = records[lo : lo + _PROGRESS_STEP]
            try:
                part = _rows(chunk, idle=is_idle)
            except SnapshotError as exc:
                raise SnapshotError(_shift_index(str(exc), lo)) from None
            parts.append(part)
            if on_row is not None and chunk:
                on_row(len(chunk))
    strings = ("kind", "namespace", "name", "phase", "model", "model_version", "node_pool", "labels")
    merged: dict[str, Any] = {f: _obj([x for p in parts for x in p[f]]) for f in strings}
    return RunTable(
        **merged,
        start_s=np.concatenate([p["start_s"] for p in parts]) if parts else np.empty(0),
        end_s=np.concatenate([p["end_s"] for p in parts]) if parts else np.empty(0),
        values=np.concatenate([p["values"] for p in parts]) if parts else np.empty((0, len(COLUMNS))),
        meta=dict(meta or {}),
    )


def _shift_index(message: str, offset: int) -> str:
    """Chunk-relative ``runs[3]`` -> absolute ``runs[4099]`` in an error message."""
    import re

    return re.sub(r"^(runs|idle)\[(\d+)\]", lambda m: f"{m.group(1)}[{int(m.group(2)) + offset}]", message)


#: Label or annotation naming a run's node pool (the report's `node-pool` grouping).
NODE_POOL_KEY = "mlfootprint.io/node-pool"


def record_from_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A TrainingRun/InferenceService object (as the API returns it) -> a snapshot record.

    Phase: ``status.phase``, else ``spec.phase``, else training for ``spec.final``, inference
    for an InferenceService and development otherwise (the operator's rule, docs/operator.md).
    End time: ``status.completionTime``, else ``status.ledger.observedAt`` (the figures are
    totals up to then; ``status.lastUpdated`` of operator 0.1 is read too). Node pool: the label or annotation ``mlfootprint.io/node-pool``.
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
        "endTime": status.get("completionTime") or (status.get("ledger") or {}).get("observedAt") or status.get("lastUpdated"),
        "gpuHours": status.get("gpuHours", 0.0),
        "energy": {k: energy[k] for k in ("gpuKWh", "hostKWh", "itKWh", "facilityKWh") if k in energy},
        "carbon": {
            k: carbon[k] for k in ("operationalKg", "marketKg", "embodiedKg", "embodiedGpuKg", "embodiedHostKg", "totalKg")
            if k in carbon
        },
        "water": {k: water[k] for k in ("onsiteL", "offsiteL", "embodiedL", "totalL") if k in water},
    }
    if kind == "InferenceService":
        record["inference"] = {
            k: inference.get(k, 0) for k in ("requests", "inputTokens", "outputTokens")
        }
    cap = status.get("powerCap") or {}
    if cap.get("status") == "recommend" and cap.get("co2eSavedKg") is not None:
        record["powerCap"] = {"co2eSavedKg": cap["co2eSavedKg"]}
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
        if sections.get("powerCap", {}).get("co2eSavedKg"):
            rec["powerCap"] = sections["powerCap"]
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
        with path.open("rb") as fh, _gc_paused():
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
    with _gc_paused():
        return table_from_records(runs, idle, meta={"source": source}, on_row=on_row)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of acyclic objects are made
    (JSON parsing, column building): it would otherwise rescan them again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

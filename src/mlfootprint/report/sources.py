"""Where report rows come from, behind one narrow interface: ``load(tasks) -> RunTable``.

* :class:`SnapshotSource` — a JSON snapshot (``--from-file``; format in :mod:`.model`).
* :class:`ClusterSource` — TrainingRun and InferenceService objects listed through the
  Kubernetes API (``kubernetes`` client, paginated, all namespaces or some).
* :class:`PrometheusSource` — exact period figures from the operator's per-run gauges and
  the exporter's idle counters, laid over a base source (cluster or snapshot) that supplies
  labels, node pools and the splits Prometheus does not carry (docs/report.md).
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlfootprint.crd.models import GROUP, VERSION
from mlfootprint.report.model import (
    COL,
    RunTable,
    format_time,
    read_snapshot,
    record_from_object,
    table_from_records,
)
from mlfootprint.report.period import Period
from mlfootprint.report.progress import Tasks

__all__ = ["NODE_POOL_LABELS", "ClusterSource", "PrometheusSource", "SnapshotSource", "Source", "SourceError"]

log = logging.getLogger(__name__)

PLURALS = {"TrainingRun": "trainingruns", "InferenceService": "inferenceservices"}
#: Node labels that name a node pool, first match wins.
NODE_POOL_LABELS = (
    "mlfootprint.io/node-pool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "kubernetes.azure.com/agentpool",
)


class SourceError(RuntimeError):
    """A source could not be read (exit status 1)."""


class Source(Protocol):
    def load(self, tasks: Tasks) -> RunTable: ...

    def node_pools(self) -> dict[str, str]:
        """node name -> node pool, where the source knows it."""
        ...


@dataclass(frozen=True)
class SnapshotSource:
    path: Path

    def load(self, tasks: Tasks) -> RunTable:
        task = tasks.task(f"reading {self.path.name}")
        return read_snapshot(self.path, on_total=task.total, on_row=task.advance)

    def node_pools(self) -> dict[str, str]:
        return {}


@dataclass
class ClusterSource:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: Sequence[str] = ()
    label_selector: str | None = None
    page_size: int = 500
    _api: Any = field(default=None, repr=False)

    def _client(self) -> Any:
        if self._api is not None:
            return self._api
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        try:
            if self.kubeconfig is None and self.context is None:
                try:
                    config.load_incluster_config()
                    from kubernetes import client

                    self._api = client.ApiClient()
                    return self._api
                except ConfigException:
                    pass
            self._api = config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        except (ConfigException, OSError, ValueError) as exc:
            raise SourceError(f"cannot load the Kubernetes configuration: {exc}") from exc
        return self._api

    def _list(self, kind: str, namespace: str | None, tasks: Tasks) -> list[dict[str, Any]]:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = client.CustomObjectsApi(self._client())
        plural = PLURALS[kind]
        task = tasks.task(f"listing {plural}{' in ' + namespace if namespace else ''}")
        items: list[dict[str, Any]] = []
        token: str | None = None
        kwargs: dict[str, Any] = {"limit": self.page_size}
        if self.label_selector:
            kwargs["label_selector"] = self.label_selector
        while True:
            if token:
                kwargs["_continue"] = token
            try:
                if namespace:
                    page = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs)
                else:
                    page = api.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs)
            except ApiException as exc:
                if exc.status == 404:
                    raise SourceError(f"{plural}.{GROUP} not found: are the mlfootprint CRDs installed? (kubectl apply -f crds/)") from exc
                raise SourceError(f"listing {plural}: HTTP {exc.status} {exc.reason}") from exc
            except Exception as exc:  # urllib3 connection errors and friends
                raise SourceError(f"listing {plural}: cannot reach the API server: {exc}") from exc
            if not isinstance(page, dict):
                raise SourceError(f"listing {plural}: the API server's answer is no object")
            page_items = page.get("items") or []
            for obj in page_items:
                obj.setdefault("kind", kind)
            items.extend(page_items)
            meta = page.get("metadata") or {}
            remaining = meta.get("remainingItemCount")
            if remaining is not None:
                task.total(len(items) + int(remaining))
            task.advance(len(page_items))
            token = meta.get("continue")
            if not token:
                task.total(len(items))
                return items

    def load(self, tasks: Tasks) -> RunTable:
        objects: list[dict[str, Any]] = []
        for kind in PLURALS:
            for ns in self.namespaces or (None,):
                objects.extend(self._list(kind, ns, tasks))
        records = [record_from_object(o) for o in objects]
        source: dict[str, Any] = {"kind": "cluster"}
        if self.context:
            source["context"] = self.context
        if self.namespaces:
            source["namespaces"] = list(self.namespaces)
        log.info("listed objects", extra={"objects": len(objects)})
        return table_from_records(records, meta={"source": source})

    def node_pools(self) -> dict[str, str]:
        from kubernetes import client

        try:
            nodes = client.CoreV1Api(self._client()).list_node().items
        except Exception as exc:  # noqa: BLE001 - nodes are optional context: an RBAC denial is no failure
            log.warning("cannot list nodes for node pools", extra={"error": str(exc)})
            return {}
        pools: dict[str, str] = {}
        for node in nodes:
            if node.metadata is None or not node.metadata.name:
                continue
            labels = node.metadata.labels or {}
            pool = next((labels[k] for k in NODE_POOL_LABELS if labels.get(k)), "")
            pools[node.metadata.name] = pool
        return pools


# ----------------------------------------------------------------------------- Prometheus

#: operator gauge (docs/operator.md) -> (column, scale to the column's unit)
RUN_GAUGES: dict[str, tuple[str, float]] = {
    "mlfootprint_run_energy_joules": ("facility_kwh", 1 / 3.6e6),
    "mlfootprint_run_it_energy_joules": ("it_kwh", 1 / 3.6e6),
    "mlfootprint_run_co2e_grams": ("total_kg", 1e-3),
    "mlfootprint_run_operational_co2e_grams": ("operational_kg", 1e-3),
    "mlfootprint_run_embodied_co2e_grams": ("embodied_kg", 1e-3),
    "mlfootprint_run_water_liters": ("total_l", 1.0),
    "mlfootprint_run_gpu_allocation_seconds": ("gpu_hours", 1 / 3600),
    "mlfootprint_inference_requests": ("requests", 1.0),
}
#: columns split from a measured one by the base row's ratio: column -> measured column
_SPLITS = {
    "gpu_kwh": "it_kwh",
    "host_kwh": "it_kwh",
    "market_kg": "operational_kg",
    "onsite_l": "total_l",
    "offsite_l": "total_l",
    "embodied_l": "total_l",
    "embodied_gpu_kg": "embodied_kg",
    "embodied_host_kg": "embodied_kg",
    "cap_saving_kg": "operational_kg",
    "input_tokens": "requests",
    "output_tokens": "requests",
}
_KEY_LABELS = ("namespace", "name", "kind")


@dataclass
class PrometheusSource:
    """Period deltas of the operator's cumulative per-run gauges (docs/report.md):
    Δ = last value at ``until`` − last value at ``since`` (0 before the run existed; a drop
    is a reset and counts the later value), both with ``last_over_time`` over a look-back of
    the period's length, a run's series combined by their largest value (see :meth:`_at`).
    Idle energy per node = ``increase`` of the exporter's
    ``mlfootprint_gpu_idle_energy_joules_total`` plus host energy not attributed to pods."""

    url: str
    base: Source
    period: Period
    now_s: float
    timeout_s: float = 30.0
    notes: list[str] = field(default_factory=list)

    def node_pools(self) -> dict[str, str]:
        return self.base.node_pools()

    def _query(self, query: str, at_s: float) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": query, "time": f"{at_s:.3f}"})
        url = f"{self.url.rstrip('/')}/api/v1/query?{params}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:  # noqa: S310 (user-given URL)
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise SourceError(f"Prometheus query failed (HTTP {exc.code}): {query}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SourceError(f"cannot query Prometheus at {self.url}: {exc}") from exc
        if body.get("status") != "success":
            raise SourceError(f"Prometheus query failed: {query}: {body.get('error')}")
        return list(body.get("data", {}).get("result", []))

    def _at(self, metric: str, at_s: float, lookback_s: int) -> dict[tuple[str, ...], tuple[float, dict[str, str]]]:
        """run (namespace, name, kind) -> (latest cumulative value, labels of that series).

        One run can have several series: the scrape adds target labels (``pod``,
        ``instance``), so an operator restarted in the look-back leaves a stale series with
        an older value beside the new one, and HA replicas export the same figures twice; a
        relabelled run (phase, model) changes series too. The gauges are cumulative, so the
        largest value is the newest figure (a stale series' value is never above it)."""
        out: dict[tuple[str, ...], tuple[float, dict[str, str]]] = {}
        for series in self._query(f"last_over_time({metric}[{lookback_s}s])", at_s):
            labels = series.get("metric", {})
            key = tuple(labels.get(k, "") for k in _KEY_LABELS)
            value = float(series["value"][1])
            if key not in out or value > out[key][0]:
                out[key] = (value, labels)
        return out

    def load(self, tasks: Tasks) -> RunTable:
        since = self.period.since_s
        until = self.period.until_s if self.period.until_s is not None else self.now_s
        if since is None:
            raise SourceError("Prometheus mode needs the start of the period (--since or --month)")
        base = self.base.load(tasks)
        lookback = max(300, int(math.ceil(until - since)))
        task = tasks.task("querying Prometheus", total=len(RUN_GAUGES) * 2 + 4)
        deltas: dict[tuple[str, ...], dict[str, float]] = {}
        meta: dict[tuple[str, ...], tuple[float, dict[str, str]]] = {}
        for metric, (column, scale) in RUN_GAUGES.items():
            end = self._at(metric, until, lookback)
            task.advance()
            start = self._at(metric, since, lookback)
            task.advance()
            for run, (value, labels) in end.items():
                before = start.get(run, (0.0, {}))[0]
                delta = value - before if value >= before else value
                deltas.setdefault(run, {})[column] = delta * scale
                if run not in meta or value > meta[run][0]:
                    meta[run] = (value, labels)
        # phase and model live on mlfootprint_run_info (the per-run series carry identity only)
        for run, (_value, labels) in self._at("mlfootprint_run_info", until, lookback).items():
            if run in meta:
                meta[run] = (meta[run][0], {**meta[run][1], **{k: labels[k] for k in ("phase", "model") if k in labels}})
        table = self._overlay(base, deltas, meta, since, until)
        idle = self._idle(since, until, task)
        source = {"kind": "prometheus", "prometheusUrl": self.url, "base": dict(base.meta.get("source") or {})}
        out = _concat(table, idle)
        return RunTable(**{**out.__dict__, "meta": {"source": source}})

    def _overlay(
        self, base: RunTable, deltas: Mapping[tuple[str, ...], Mapping[str, float]],
        meta: Mapping[tuple[str, ...], tuple[float, dict[str, str]]], since: float, until: float,
    ) -> RunTable:
        runs = base.take(~base.is_idle)
        index: dict[tuple[str, ...], int] = {(runs.namespace[i], runs.name[i], runs.kind[i]): i for i in range(len(runs))}
        # a run only Prometheus knows whose figures did not move (frozen before the period) is left out
        deltas = {k: v for k, v in deltas.items() if k in index or any(x != 0 for x in v.values())}
        extra = [k for k in deltas if k not in index]
        if extra:
            records = []
            for ns, name, kind in extra:
                labels = meta[(ns, name, kind)][1]
                records.append({"kind": kind if kind in PLURALS else "TrainingRun", "namespace": ns, "name": name,
                                "phase": labels.get("phase") or None, "model": labels.get("model", "")})
            runs = _concat(runs, table_from_records(records))
            for j, key in enumerate(extra):
                index[key] = len(runs) - len(extra) + j
            self.notes.append(
                f"{len(extra)} run(s) found only in Prometheus (deleted objects?): IT energy shown as GPU energy, "
                "water other than embodied as off-site"
            )
        old = runs.values
        new = np.zeros_like(old)
        new[:, COL["market_kg"]] = np.nan
        for key, cols in deltas.items():
            i = index[key]
            for column, value in cols.items():
                new[i, COL[column]] = value
            for column, measured in _SPLITS.items():
                den = old[i, COL[measured]]
                num = old[i, COL[column]]
                if column == "market_kg" and np.isnan(num):
                    continue
                if den > 0:
                    new[i, COL[column]] = new[i, COL[measured]] * num / den
                elif column == "gpu_kwh":
                    new[i, COL[column]] = new[i, COL["it_kwh"]]
                elif column == "offsite_l":
                    new[i, COL[column]] = new[i, COL["total_l"]]
        # A run counts when its figures moved in the period or its interval overlaps it: the
        # operator keeps exporting completed runs' frozen gauges, and a run finished before
        # the period is no run of the period (as in cluster and snapshot mode).
        with np.errstate(invalid="ignore"):
            overlaps = (runs.start_s < until) & ~(runs.end_s <= since)
        moved = np.zeros(len(runs), dtype=bool)
        for key, cols in deltas.items():
            moved[index[key]] = any(v != 0 for v in cols.values())
        # figures are for [since, until]: clip each run's interval to it (re-prorating keeps them whole)
        start = np.where(np.isnan(runs.start_s), since, np.maximum(runs.start_s, since))
        end = np.where(np.isnan(runs.end_s), until, np.minimum(runs.end_s, until))
        end = np.maximum(end, start)
        has = np.array([k in deltas for k in index], dtype=bool)
        order = np.array([index[k] for k in index], dtype=np.intp)
        keep = np.zeros(len(runs), dtype=bool)
        keep[order[has]] = True
        keep &= moved | overlaps
        out = RunTable(**{**runs.__dict__, "values": new, "start_s": start, "end_s": end})
        return out.take(keep)

    def _idle(self, since: float, until: float, task: Any) -> RunTable:
        window = f"[{max(60, int(math.ceil(until - since)))}s]"
        gpu = self._query(f"sum by (node) (increase(mlfootprint_gpu_idle_energy_joules_total{window}))", until)
        task.advance()
        host = self._query(f"sum by (node) (increase(mlfootprint_host_energy_joules_total{window}))", until)
        task.advance()
        pods = self._query(f"sum by (node) (increase(mlfootprint_pod_host_energy_joules_total{window}))", until)
        task.advance()
        pools = self.node_pools()

        def by_node(result: list[dict[str, Any]]) -> dict[str, float]:
            return {s["metric"].get("node", ""): float(s["value"][1]) for s in result}

        g, h, p = by_node(gpu), by_node(host), by_node(pods)
        records = []
        for node in sorted(set(g) | set(h)):
            host_idle = max(0.0, h.get(node, 0.0) - p.get(node, 0.0))
            records.append({
                "node": node, "nodePool": pools.get(node, ""),
                "startTime": format_time(since), "endTime": format_time(until),
                "energy": {"gpuKWh": g.get(node, 0.0) / 3.6e6, "hostKWh": host_idle / 3.6e6},
            })
        return table_from_records([], records)


def _concat(a: RunTable, b: RunTable) -> RunTable:
    if not len(b):
        return a
    if not len(a):
        return RunTable(**{**b.__dict__, "meta": a.meta})
    fields = ("kind", "namespace", "name", "phase", "model", "model_version", "node_pool", "labels", "start_s", "end_s")
    merged = {f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in fields}
    return RunTable(**merged, values=np.concatenate([a.values, b.values]), meta=a.meta)

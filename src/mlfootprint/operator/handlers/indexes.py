"""Index functions (registered with ``@kopf.index``): pods by namespace, runs by model,
namespaces' labels. Each returns ``{key: value}``; kopf keeps the union over objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mlfootprint.crd.models import LedgerTotals
from mlfootprint.operator.ledger import ledger_from_status
from mlfootprint.operator.ownership import RunClaim, claim_from
from mlfootprint.operator.pods import PodInfo, pod_info
from mlfootprint.operator.status import figures


def index_pod(body: Mapping[str, Any]) -> dict[str, PodInfo]:
    info = pod_info(body)
    return {info.namespace: info}


def index_run_by_model(spec: Mapping[str, Any], status: Mapping[str, Any], namespace: str, name: str) -> dict[str, dict[str, Any]]:
    model = (spec.get("model") or {}).get("name")
    if not model:
        return {}
    try:
        totals = ledger_from_status((status or {}).get("ledger")).totals or LedgerTotals()
    except ValidationError:
        totals = LedgerTotals()  # the run's own refresh reports the invalid ledger
    f = figures(totals)
    return {
        model: {
            "namespace": namespace,
            "name": name,
            "phase": (status or {}).get("phase") or spec.get("phase") or "development",
            "facility_j": f.facility_j,
            "co2e_g": f.co2e_g,
            "water_l": f.water_l,
        }
    }


def index_claim(kind: str, meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> dict[str, RunClaim]:
    """namespace -> what the run selects and meters (ownership of pods selected by several runs)."""
    return {str(meta.get("namespace", "")): claim_from(kind, meta, spec, status)}


def index_namespace(name: str, labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
    return {name: dict(labels or {})}

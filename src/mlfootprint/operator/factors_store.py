"""Reading factor and phase-rule ConfigMaps, with a short cache and the last good factors.

Thin I/O around the pure parsers in :mod:`factors_config` and :mod:`phases`: each
ConfigMap is read at most once per ``cache_s``; when one turns invalid the last good parse
is kept (or, after an operator restart, the factors recorded in the run's status), the
``mlfootprint_factors_valid`` gauge drops to 0 and one Warning Event is posted on the
ConfigMap per bad resourceVersion.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlfootprint.operator.factors_config import (
    CarbonIntensitySpec,
    FactorsError,
    FactorsLayer,
    ResolvedFactors,
    parse_factors,
    resolve_factors,
)
from mlfootprint.operator.kube import Kube, NotFound
from mlfootprint.operator.metrics import OperatorMetrics
from mlfootprint.operator.phases import PhaseRules, parse_phase_rules

__all__ = ["FactorsProblem", "FactorsStore", "layer_from_status"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FactorsProblem:
    configmap: str  # namespace/name
    field: str
    message: str
    kept: str  # "last good" | "status" | "defaults"
    code: str | None = None  # a reason other than Invalid<Field>

    @property
    def reason(self) -> str:
        if self.code:
            return self.code
        head = self.field.split(".", 1)[0].split("[", 1)[0]
        camel = "".join(ch for ch in head[:1].upper() + head[1:] if ch.isalnum())
        return f"Invalid{camel or 'ConfigMap'}"

    def text(self) -> str:
        if self.code:
            return f"{self.field}: {self.message}; using the {self.kept} factors"
        return f"ConfigMap {self.configmap} is invalid: {self.field}: {self.message}; using the {self.kept} factors"


def layer_from_status(factors: Mapping[str, Any] | None) -> FactorsLayer | None:
    """Rebuild the scalar factors a run last used from its ``status.factors`` (restart fallback)."""
    if not factors:
        return None
    fields: dict[str, Any] = {}
    for key, name in (
        ("pue", "pue"), ("wueOnsiteLPerKWh", "wue_onsite_l_per_kwh"), ("wueOffsiteLPerKWh", "wue_offsite_l_per_kwh"),
        ("onsiteWaterBasis", "onsite_water_basis"), ("gpuLifetimeYears", "gpu_lifetime_years"),
        ("hostLifetimeYears", "host_lifetime_years"),
    ):
        if factors.get(key) is not None:
            fields[name] = factors[key]
    ci = None
    if factors.get("carbonIntensityGPerKWh") is not None:
        ci = CarbonIntensitySpec("constant", constant_g_per_kwh=float(factors["carbonIntensityGPerKWh"]))
    src = (factors.get("source") or {}).get("configMap")
    return FactorsLayer(fields=fields, carbon_intensity=ci, source=src)


class FactorsStore:
    def __init__(
        self,
        kube: Kube,
        metrics: OperatorMetrics,
        *,
        operator_namespace: str,
        configmap_name: str,
        rules_configmap: str,
        cache_s: float = 10.0,
        post_event: Callable[[dict[str, Any], str, str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._metrics = metrics
        self._op_ns = operator_namespace
        self._name = configmap_name
        self._rules_name = rules_configmap
        self._cache_s = cache_s
        self._post_event = post_event
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._last_good: dict[str, FactorsLayer] = {}
        #: (ConfigMap, resourceVersion) -> its parse: parsing (YAML) took ~1.2 ms, once per
        #: refresh, ~0.4 core at 10,000 runs; a ConfigMap's content changes with its version
        self._parsed: dict[tuple[str, str], FactorsLayer] = {}
        self._evented: set[tuple[str, str]] = set()
        self._rules: tuple[str | None, PhaseRules] = (None, PhaseRules())

    async def _read(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._cache.get(key)
            now = self._clock()
            if hit is not None and now - hit[0] < self._cache_s:
                return hit[1]
            try:
                cm: dict[str, Any] | None = await self._kube.get_configmap(namespace, name)
            except NotFound:
                cm = None
            self._cache[key] = (now, cm)
            return cm

    def _layer(self, cm: dict[str, Any], status_factors: Mapping[str, Any] | None) -> tuple[FactorsLayer | None, FactorsProblem | None]:
        meta = cm.get("metadata") or {}
        cm_id = f"{meta.get('namespace')}/{meta.get('name')}"
        rv = str(meta.get("resourceVersion") or "")
        hit = self._parsed.get((cm_id, rv)) if rv else None
        if hit is not None:
            self._metrics.set_factors_valid(meta.get("namespace", ""), meta.get("name", ""), True)
            self._last_good[cm_id] = hit
            return hit, None
        try:
            layer = parse_factors(cm.get("data") or {}, source=cm_id, resource_version=rv)
        except FactorsError as e:
            self._metrics.set_factors_valid(meta.get("namespace", ""), meta.get("name", ""), False)
            kept = self._last_good.get(cm_id)
            how = "last good"
            if kept is None:
                kept = layer_from_status(status_factors) if status_factors else None
                how = "previously recorded" if kept is not None else "default"
            problem = FactorsProblem(configmap=cm_id, field=e.field, message=e.message, kept=how)
            if (cm_id, rv) not in self._evented and self._post_event is not None:
                self._evented.add((cm_id, rv))
                self._post_event(cm, "Warning", problem.reason, problem.text())
            log.warning("invalid factors ConfigMap", extra={"configmap": cm_id, "field": e.field, "error": e.message})
            return kept, problem
        self._metrics.set_factors_valid(meta.get("namespace", ""), meta.get("name", ""), True)
        self._last_good[cm_id] = layer
        if rv:
            self._parsed = {k: v for k, v in self._parsed.items() if k[0] != cm_id}  # one version per ConfigMap
            self._parsed[(cm_id, rv)] = layer
        return layer, None

    async def resolve(
        self, namespace: str, factors_ref: Mapping[str, Any] | None, status_factors: Mapping[str, Any] | None = None
    ) -> tuple[ResolvedFactors, list[FactorsProblem]]:
        """Layered factors for a resource in ``namespace``; problems name the bad field."""
        wanted = [(self._op_ns, self._name)]
        if namespace != self._op_ns:
            wanted.append((namespace, self._name))
        ref_missing: str | None = None
        forbidden: FactorsProblem | None = None
        if factors_ref and factors_ref.get("name"):
            ref = (factors_ref.get("namespace") or namespace, str(factors_ref["name"]))
            if ref[0] not in (namespace, self._op_ns):
                # a tenant may not make the operator read another tenant's ConfigMaps
                forbidden = FactorsProblem(
                    configmap=f"{ref[0]}/{ref[1]}", field="spec.factorsRef.namespace",
                    message=f"may name only the run's own namespace or the operator's ({self._op_ns})",
                    kept="remaining", code="FactorsRefForbidden",
                )
            elif ref not in wanted:
                wanted.append(ref)
        cms = await asyncio.gather(*(self._read(ns, n) for ns, n in wanted))
        layers: list[FactorsLayer] = []
        problems: list[FactorsProblem] = []
        for (ns, n), cm in zip(wanted, cms, strict=True):
            if cm is None:
                if factors_ref and (ns, n) == wanted[-1] and n == factors_ref.get("name") and len(wanted) > 1:
                    ref_missing = f"{ns}/{n}"
                continue
            layer, problem = self._layer(cm, status_factors)
            if layer is not None:
                layers.append(layer)
            if problem is not None:
                problems.append(problem)
        if ref_missing:
            problems.append(
                FactorsProblem(configmap=ref_missing, field="spec.factorsRef", message="ConfigMap not found", kept="remaining")
            )
        if forbidden is not None:
            problems.append(forbidden)
        return resolve_factors(layers), problems

    async def phase_rules(self) -> PhaseRules:
        cm = await self._read(self._op_ns, self._rules_name)
        if cm is None:
            return PhaseRules()
        rv = str((cm.get("metadata") or {}).get("resourceVersion") or "")
        if self._rules[0] == rv:
            return self._rules[1]
        try:
            rules = parse_phase_rules((cm.get("data") or {}).get("rules.yaml"))
        except ValueError as e:
            log.warning("invalid phase rules ConfigMap; keeping the previous rules", extra={"error": str(e)})
            if (f"{self._op_ns}/{self._rules_name}", rv) not in self._evented and self._post_event is not None:
                self._evented.add((f"{self._op_ns}/{self._rules_name}", rv))
                self._post_event(cm, "Warning", "InvalidPhaseRules", str(e))
            return self._rules[1]
        self._rules = (rv, rules)
        return rules

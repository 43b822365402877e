"""Which pods and competing claims a run's refresh needs, found through indexes (pure).

A refresh decides which pods a run meters with :func:`mlfootprint.operator.ownership.split_pods`
over the pods of its namespace and the claims (selectors, workload references) of every run
there. Handing it the whole namespace made each refresh O(pods + runs) and the cycle
O(runs x (pods + runs)): at 1,000 runs per namespace, ~10^7 selector evaluations and label
dicts per cycle, and the earlier-claims loop re-selecting for every older run on top.

:class:`NamespaceSelection` indexes one namespace's pods once, by label pair, label key and
owner, and resolves every claim to the pods it selects. For one run, :meth:`for_claim`
returns exactly the pods it selects and the claims that select any of them, so
``split_pods(me, pods, claims)`` gives the same answer as over the whole namespace (a claim
that selects none of my pods cannot take one; tests/operator/test_selection.py checks the
equivalence on random namespaces) in O(its pods + their claims).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mlfootprint.operator.ownership import RunClaim
from mlfootprint.operator.pods import WORKLOAD_POD_LABELS, PodInfo

__all__ = ["NamespaceSelection", "Selections"]


class NamespaceSelection:
    """One namespace's pods, indexed; each claim resolved to the pods it selects."""

    def __init__(self, pods: Iterable[PodInfo], claims: Iterable[RunClaim]) -> None:
        self.pods: dict[str, PodInfo] = {}
        self._by_pair: dict[tuple[str, str], set[str]] = {}
        self._by_key: dict[str, set[str]] = {}
        self._by_owner: dict[tuple[str, str], set[str]] = {}
        for p in pods:
            self.pods[p.name] = p
            for k, v in p.labels:
                self._by_pair.setdefault((k, v), set()).add(p.name)
                self._by_key.setdefault(k, set()).add(p.name)
            for owner in p.owners:
                self._by_owner.setdefault(owner, set()).add(p.name)
        self.claims: dict[tuple[str, str], RunClaim] = {}
        self._claims_of_pod: dict[str, list[RunClaim]] = {}
        for c in claims:
            self.claims[(c.kind, c.name)] = c
            for p in self.selected(c):
                self._claims_of_pod.setdefault(p.name, []).append(c)

    def _selector_candidates(self, selector: Mapping[str, Any] | None) -> set[str] | None:
        """A superset of the pods ``selector`` matches (None: all pods)."""
        if not selector:
            return set()
        ml = selector.get("matchLabels") or {}
        me = selector.get("matchExpressions") or []
        if not ml and not me:
            return set()  # an empty selector matches nothing here (pods.matches_selector)
        sets: list[set[str]] = [self._by_pair.get((str(k), str(v)), set()) for k, v in ml.items()]
        for req in me:
            key, op = str(req.get("key")), req.get("operator")
            if op == "In":
                union: set[str] = set()
                for v in req.get("values") or []:
                    union |= self._by_pair.get((key, str(v)), set())
                sets.append(union)
            elif op == "Exists":
                sets.append(self._by_key.get(key, set()))
        if not sets:
            return None  # only NotIn / DoesNotExist: no index narrows it
        smallest = min(sets, key=len)
        return set(smallest)

    def _candidates(self, claim: RunClaim) -> Iterable[PodInfo]:
        names = self._selector_candidates(claim.selector) if claim.selector else set()
        if names is None:
            return list(self.pods.values())
        ref = claim.workload_ref
        if ref:
            kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
            names = names | self._by_owner.get((kind, name), set())
            for label in WORKLOAD_POD_LABELS.get(kind, ()):
                names = names | self._by_pair.get((label, name), set())
        return [self.pods[n] for n in names]

    def selected(self, claim: RunClaim) -> list[PodInfo]:
        """The pods ``claim`` selects (sorted by name), exactly as ``claim.selects(all pods)``."""
        return claim.selects(self._candidates(claim))

    def for_claim(self, me: RunClaim) -> tuple[list[PodInfo], list[RunClaim]]:
        """(the pods ``me`` selects, the claims that select any of them, ``me`` included when indexed)."""
        mine = self.selected(me)
        seen: set[tuple[str, str]] = set()
        claims: list[RunClaim] = []
        for p in mine:
            for c in self._claims_of_pod.get(p.name, ()):
                k = (c.kind, c.name)
                if k not in seen:
                    seen.add(k)
                    claims.append(c)
        return mine, claims


class Selections:
    """Per-namespace :class:`NamespaceSelection`s over the operator's kopf indexes, rebuilt
    when a pod or a run's claim in the namespace changed (:meth:`touch`, called from the
    watch-event handlers, which kopf runs after it has updated its indexes) and at least
    every ``max_age_s`` (a safety net: an invalidation can never be lost for longer)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._built: dict[str, tuple[float, NamespaceSelection]] = {}
        self._dirty: set[str] = set()
        self._pods: Mapping[str, Iterable[PodInfo]] = {}
        self._claims: tuple[Mapping[str, Iterable[RunClaim]], ...] = ()
        self.rebuilds = 0

    def bind(self, pods: Mapping[str, Iterable[PodInfo]], *claims: Mapping[str, Iterable[RunClaim]]) -> None:
        """The live kopf indexes (namespace -> values) to build from."""
        self._pods = pods
        self._claims = claims

    def touch(self, namespace: str) -> None:
        self._dirty.add(namespace)

    def get(self, namespace: str) -> NamespaceSelection:
        hit = self._built.get(namespace)
        now = self._clock()
        if hit is not None and namespace not in self._dirty and now - hit[0] < self.max_age_s:
            return hit[1]
        self._dirty.discard(namespace)
        pods = list(self._pods.get(namespace, ()))
        claims: list[RunClaim] = []
        for index in self._claims:
            if namespace in index:
                claims.extend(index[namespace])
        sel = NamespaceSelection(pods, claims)
        self._built[namespace] = (now, sel)
        self.rebuilds += 1
        return sel

"""The indexed selection hands a refresh exactly what the whole namespace would decide.

`split_pods(me, pods, claims)` over the pods and claims `NamespaceSelection.for_claim(me)`
returns must equal `split_pods` over every pod and claim of the namespace, for any labels,
owners, selectors (matchLabels, In/NotIn/Exists/DoesNotExist) and workload references.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlfootprint.operator.ownership import RunClaim, split_pods
from mlfootprint.operator.pods import PodInfo
from mlfootprint.operator.selection import NamespaceSelection, Selections

KEYS = ["app", "team", "job-name", "batch.kubernetes.io/job-name", "training.kubeflow.org/job-name", "tier"]
VALUES = ["a", "b", "c", "j1", "j2"]


@st.composite
def pods(draw: Any) -> list[PodInfo]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        labels = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3))
        owners = draw(st.lists(st.tuples(st.sampled_from(["Job", "PyTorchJob", "ReplicaSet", "JobSet"]), st.sampled_from(VALUES)), max_size=2))
        out.append(PodInfo(
            name=f"p{i}", namespace="ns", labels=tuple(sorted(labels.items())), annotations=(), owners=tuple(owners),
            phase=draw(st.sampled_from(["Pending", "Running", "Succeeded"])), ip=None, gpus=1,
        ))
    return out


@st.composite
def selectors(draw: Any) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    ml = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2))
    me = draw(st.lists(st.fixed_dictionaries({
        "key": st.sampled_from(KEYS),
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
        "values": st.lists(st.sampled_from(VALUES), max_size=3),
    }), max_size=2))
    out: dict[str, Any] = {}
    if ml or draw(st.booleans()):
        out["matchLabels"] = ml
    if me:
        out["matchExpressions"] = me
    return out


@st.composite
def claims(draw: Any) -> list[RunClaim]:
    out = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["TrainingRun", "InferenceService"]))
        ref = None
        if kind == "TrainingRun" and draw(st.booleans()):
            ref = {"apiVersion": "batch/v1", "kind": draw(st.sampled_from(["Job", "PyTorchJob", "JobSet"])), "name": draw(st.sampled_from(VALUES))}
        out.append(RunClaim(kind=kind, name=f"r{i}", created=f"2025-01-01T00:00:0{draw(st.integers(0, 3))}Z",
                            selector=draw(selectors()), workload_ref=ref))
    return out


@settings(max_examples=200, deadline=None)
@given(pods(), claims())
def test_for_claim_decides_like_the_whole_namespace(pool: list[PodInfo], cs: list[RunClaim]) -> None:
    sel = NamespaceSelection(pool, cs)
    for me in cs:
        assert sel.selected(me) == me.selects(pool)
        narrow_pods, narrow_claims = sel.for_claim(me)
        assert split_pods(me, narrow_pods, narrow_claims) == split_pods(me, pool, cs)


def test_a_claim_not_in_the_index_is_still_resolved() -> None:
    """A run whose spec changed since the index was built: its pods come from its current claim."""
    pool = [PodInfo("p0", "ns", (("app", "x"),), (), (), "Running", None, 1),
            PodInfo("p1", "ns", (("app", "y"),), (), (), "Running", None, 1)]
    old = RunClaim("TrainingRun", "r", "2025-01-01T00:00:00Z", {"matchLabels": {"app": "x"}})
    sel = NamespaceSelection(pool, [old])
    new = RunClaim("TrainingRun", "r", "2025-01-01T00:00:00Z", {"matchLabels": {"app": "y"}})
    assert [p.name for p in sel.for_claim(new)[0]] == ["p1"]


def test_selections_rebuild_only_when_touched_or_old() -> None:
    now = [0.0]
    pods_index: dict[str, list[PodInfo]] = {"ns": [PodInfo("p0", "ns", (("app", "x"),), (), (), "Running", None, 1)]}
    claims_index: dict[str, list[RunClaim]] = {"ns": [RunClaim("TrainingRun", "r", "t", {"matchLabels": {"app": "x"}})]}
    s = Selections(max_age_s=30.0, clock=lambda: now[0])
    s.bind(pods_index, claims_index)
    first = s.get("ns")
    assert s.get("ns") is first and s.rebuilds == 1
    pods_index["ns"].append(PodInfo("p1", "ns", (("app", "x"),), (), (), "Running", None, 1))
    s.touch("ns")
    second = s.get("ns")
    assert second is not first and [p.name for p in second.for_claim(claims_index["ns"][0])[0]] == ["p0", "p1"]
    now[0] = 31.0
    assert s.get("ns") is not second and s.rebuilds == 3
    assert s.get("other").pods == {}

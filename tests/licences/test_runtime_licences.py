"""What users install (mlfootprint's runtime dependency closure) carries no GPL/AGPL licence,
and docs/licences.md lists every package of that closure (project rule: Apache-2.0 compatible)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> dict[str, metadata.Distribution]:
    """Installed distributions reachable from mlfootprint's requirements (no extras)."""
    env = dict(default_environment())
    seen: dict[str, metadata.Distribution] = {}
    todo = [(r, ()) for r in metadata.distribution("mlfootprint").requires or []]
    while todo:
        raw, extras = todo.pop()
        req = Requirement(raw)
        if req.marker is not None and not any(
            req.marker.evaluate({**env, "extra": e}) for e in (extras or ("",))
        ):
            continue
        name = _canon(req.name)
        if name in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[name] = dist
        todo += [(r, tuple(req.extras)) for r in dist.requires or []]
    return seen


def licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    parts = [meta.get("License-Expression") or ""]
    licence = meta.get("License") or ""
    if len(licence) < 100:  # some packages paste the whole licence text here
        parts.append(licence)
    parts += [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return " | ".join(p for p in parts if p)


def test_no_gpl_in_the_runtime_closure() -> None:
    closure = runtime_closure()
    assert "pydantic" in closure and "kopf" in closure
    offenders = {
        name: licence_of(d)
        for name, d in closure.items()
        if re.search(r"(?<!L)GPL|General Public License", licence_of(d))
        and not re.search(r"LGPL|Lesser General Public", licence_of(d))
    }
    assert offenders == {}


def test_licences_doc_lists_the_whole_closure() -> None:
    text = _canon((ROOT / "docs" / "licences.md").read_text())
    missing = sorted(name for name in runtime_closure() if f"`{name}`" not in text)
    assert missing == [], f"docs/licences.md does not list: {missing}"

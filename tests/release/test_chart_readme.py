"""The chart's README is generated from the `# --` comments of values.yaml (one source of truth)
and is current; every value is documented (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlfootprint.crd.chartreadme import SECTION, UndocumentedValue, render, rows

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/mlfootprint"


def test_readme_is_current() -> None:
    assert (CHART / "README.md").read_text() == render(CHART), "charts/mlfootprint/README.md is stale: run `make docs`"


def _leaves(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict) and value:
        return set().union(*(_leaves(v, f"{prefix}{k}.") for k, v in value.items()))
    return {prefix.rstrip(".")}


def test_every_value_has_a_row_with_its_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = rows((CHART / "values.yaml").read_text())
    keys = [r.key for r in table]
    assert len(keys) == len(set(keys))
    for leaf in _leaves(values):  # each leaf is a row or lies under one
        assert any(leaf == k or leaf.startswith(k + ".") for k in keys), leaf
    for r in table:
        node = values
        for part in r.key.split("."):
            node = node[part]
        assert r.default is SECTION or r.default == node, r.key
        assert r.description, r.key
    readme = (CHART / "README.md").read_text()
    assert "| `exporter.state.hostPath` | string | `\"/var/lib/mlfootprint\"` |" in readme


def test_comment_rules() -> None:
    text = """\
# file header, not a value's doc

# an ordinary comment
# -- The port
# of /metrics | and more.
port: 9860
section:
  # -- Inner value.
  inner: [1, 2]
# -- A documented map is one row.
whole:
  a: 1
"""
    got = {r.key: (r.type, r.default, r.description) for r in rows(text)}
    assert got == {
        "port": ("int", 9860, "The port of /metrics | and more."),
        "section.inner": ("list", [1, 2], "Inner value."),
        "whole": ("object", {"a": 1}, "A documented map is one row."),
    }
    with pytest.raises(UndocumentedValue, match=r"other\.bare has no `# --` comment"):
        rows(text + "other:\n  bare: 1\n")


def test_undocumented_value_is_named() -> None:
    with pytest.raises(UndocumentedValue, match=r"values.yaml: image.pullPolicy has no `# --` comment"):
        rows("image:\n  # -- Repo.\n  repository: x\n  pullPolicy: Always\n")

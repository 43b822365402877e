"""Generate the Helm chart's ``values.schema.json`` ``factors`` subtree from the typed wire
model of the factors ConfigMap (:class:`mlfootprint.operator.factors_wire.FactorsConfigMap`),
so the chart accepts exactly what the operator accepts (it once accepted region codes the
operator refused). Each factor may also be null (the chart leaves it out: the operator's
cited default applies), the region also "" (unset); ``create`` is the chart's own switch.

Run ``python -m mlfootprint.crd.chartschema`` (``make crds``); a test fails on any difference.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from mlfootprint.accounting.presets import _ALPHA2_TO_ALPHA3, list_regions
from mlfootprint.operator.factors_wire import FactorsConfigMap

SCHEMA = Path("charts/mlfootprint/values.schema.json")
_DROP = {"title", "default"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every ``$ref`` replaced by its definition (no titles or defaults)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline(merged, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k not in _DROP}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def factors_schema() -> dict[str, Any]:
    raw = FactorsConfigMap.model_json_schema(by_alias=True)
    defs = raw.pop("$defs", {})
    props = {name: _inline(prop, defs) for name, prop in raw["properties"].items()}
    codes = sorted({*list_regions(), *_ALPHA2_TO_ALPHA3})
    props["region"] = {
        "description": props["region"].get("description", ""),
        "anyOf": [{"type": "null"}, {"type": "string", "enum": ["", *codes]}],
    }
    return {
        "type": "object",
        "description": "Conversion factors rendered into the ConfigMap mlfootprint-factors (docs/factors.md); "
        "generated from mlfootprint.operator.factors_wire.FactorsConfigMap.",
        "properties": {"create": {"type": "boolean", "description": "Render the ConfigMap."}, **props},
        "additionalProperties": False,
    }


def updated(schema: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(schema)
    out["properties"]["factors"] = factors_schema()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", type=Path, default=SCHEMA, help=f"values.schema.json to update (default {SCHEMA})")
    args = parser.parse_args(argv)
    doc = json.loads(args.schema.read_text())
    args.schema.write_text(json.dumps(updated(doc), indent=2) + "\n")
    print(args.schema)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

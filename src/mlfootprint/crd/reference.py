"""Render docs/crds.md, the CRD field reference, from the generated structural schemas.

`python -m mlfootprint.crd.reference > docs/crds.md` (run by `make crds`); a test fails when
the checked-in file differs, so the reference cannot drift from the CRDs.
"""

from __future__ import annotations

from typing import Any

from mlfootprint.crd.generate import all_crds

INTRO = """# CRD reference (`mlfootprint.io/v1alpha1`)

Generated from `src/mlfootprint/crd/models.py` by `make crds`; do not edit by hand.
Both kinds are namespaced, in the category `mlfootprint` (`kubectl get mlfootprint -A`).
KServe also defines an `InferenceService` kind: name ours in full,
`kubectl get inferenceservices.mlfootprint.io`, or by its short name `mlis`.
Samples: [`samples/`](../samples).
"""


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "minimum" in node:
        parts.append((">" if node.get("exclusiveMinimum") else ">=") + f" {node['minimum']}")
    if "maximum" in node:
        parts.append(f"<= {node['maximum']}")
    if "minLength" in node:
        parts.append(f"length >= {node['minLength']}")
    if "maxLength" in node:
        parts.append(f"length <= {node['maxLength']}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "format" in node:
        parts.append(node["format"])
    return "; ".join(parts)


def _type(node: dict[str, Any]) -> str:
    kind: str = node["type"]
    if kind == "array":
        return f"[]{_type(node['items'])}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return kind


def _rows(node: dict[str, Any], path: str, required: bool) -> list[str]:
    desc = " ".join(node.get("description", "").split()).replace("|", "\\|")
    rows = [f"| `{path}` | {_type(node)} | {'yes' if required else ''} | {_constraints(node)} | {desc} |"]
    target = node["items"] if node["type"] == "array" else node
    for name, sub in target.get("properties", {}).items():
        suffix = "[]" if node["type"] == "array" else ""
        rows += _rows(sub, f"{path}{suffix}.{name}", name in target.get("required", []))
    return rows


def render_reference() -> str:
    out = [INTRO]
    for crd in all_crds().values():
        spec = crd["spec"]
        version = spec["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        names = spec["names"]
        out.append(f"\n## {names['kind']}\n")
        out.append(f"{schema['description']}\n")
        out.append(
            f"Plural `{names['plural']}`, short names {', '.join(f'`{s}`' for s in names['shortNames'])}.\n"
        )
        out.append("\nPrinter columns (`-o wide` adds those marked wide):\n")
        out.append("\n| column | from | |\n|---|---|---|")
        for col in version["additionalPrinterColumns"]:
            out.append(f"| {col['name']} | `{col['jsonPath']}` | {'wide' if col.get('priority') else ''} |")
        rules = schema["properties"]["spec"].get("x-kubernetes-validations", [])
        if rules:
            out.append("\nCross-field rules (checked by the API server):\n")
            out += [f"- {r['message']}" for r in rules]
        for part in ("spec", "status"):
            out.append(f"\n### {names['kind']} `.{part}`\n")
            out.append("| field | type | required | constraints | description |\n|---|---|---|---|---|")
            node = schema["properties"][part]
            for name, sub in node.get("properties", {}).items():
                out += _rows(sub, f"{part}.{name}", name in node.get("required", []))
    text = "\n".join(out) + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


if __name__ == "__main__":  # pragma: no cover
    print(render_reference(), end="")

"""Write each component's settings reference into its doc, from its model (`make docs`).

A test fails when a checked-in table differs, so the docs list every setting with its YAML
key, flags, environment variables and default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfootprint.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- settings reference: generated from the model by `make docs`; do not edit -->"
END = "<!-- end of settings reference -->"


def references() -> dict[str, Settings[Any]]:
    """doc (relative to the repository) -> the settings it documents."""
    from mlfootprint.exporter.config import SETTINGS as EXPORTER
    from mlfootprint.operator.config import SETTINGS as OPERATOR

    return {"docs/exporter.md": EXPORTER, "docs/operator.md": OPERATOR}


def render(doc: str, settings: Settings[Any]) -> str:
    """The doc with the table between its markers replaced by the current one."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{settings.markdown()}\n{END}{tail}"


def main() -> None:
    for doc, settings in references().items():
        path = ROOT / doc
        path.write_text(render(path.read_text(), settings))


if __name__ == "__main__":
    main()

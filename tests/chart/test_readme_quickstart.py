"""The README's Helm quickstart command renders with the chart (values schema included)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import helm

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.helm


def _readme_helm_install_args() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^\$ (helm install .*?)(?=^\$ )", text, flags=re.S | re.M)
    assert match, "README has no `$ helm install` quickstart"
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_readme_quickstart_renders() -> None:
    args = _readme_helm_install_args()
    assert args[:4] == ["helm", "install", "mlfootprint", "charts/mlfootprint"]
    sets = [a for a in args[4:] if a.startswith("--set") or "=" in a]
    assert sets, "the quickstart sets no values"
    out = helm("template", "mlfootprint", str(ROOT / "charts/mlfootprint"), *args[4:]).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = {d["kind"] for d in docs}
    assert {"DaemonSet", "Deployment", "ConfigMap"} <= kinds
    # issue 16: the image comes from the user's registry, tagged with the chart's version
    import mlfootprint  # noqa: PLC0415

    images = {c["image"] for d in docs if d["kind"] in ("DaemonSet", "Deployment")
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {f"registry.example.com/mlfootprint:{mlfootprint.__version__}"}

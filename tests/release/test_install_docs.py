"""docs/install.md's path from a clone to a running install and its upgrade commands are the
ones the project builds and tests (issue 16): the make targets exist, the helm command renders
the user's image, the verification manifest is valid, and the CRD command is the same
everywhere it is written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

import mlfootprint
from mlfootprint.crd.models import TrainingRun
from tests.chart.conftest import helm

ROOT = Path(__file__).resolve().parents[2]
INSTALL = (ROOT / "docs/install.md").read_text()
CRD_COMMAND = "kubectl apply --server-side --force-conflicts -f"


def _section(title: str) -> str:
    start = INSTALL.index(f"## {title}\n")
    end = INSTALL.find("\n## ", start + 1)
    return INSTALL[start:end if end > 0 else None]


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_make_targets_named_in_the_walkthrough_exist() -> None:
    walkthrough = _section("From a clone to a running install")
    targets = set(re.findall(r"\bmake (?:-s )?([a-z][a-z-]*)", walkthrough))
    assert {"image", "version"} <= targets
    makefile = (ROOT / "Makefile").read_text()
    for target in targets | {"dist", "docs"}:
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target} is not a target"


@pytest.mark.helm
def test_walkthrough_helm_install_renders_the_users_image() -> None:
    (block, *_) = _sh_blocks(_section("From a clone to a running install"))
    command = re.search(r"^(helm install .*?)(?:\n\n|\n#)", block, flags=re.S | re.M)
    assert command, "no helm install in the walkthrough"
    args = shlex.split(command.group(1).replace("\\\n", " "), comments=True)
    assert args[:4] == ["helm", "install", "mlfootprint", "charts/mlfootprint"]
    out = helm("template", "mlfootprint", str(ROOT / "charts/mlfootprint"), *args[4:]).stdout
    objs = [d for d in yaml.safe_load_all(out) if d]
    images = {c["image"] for o in objs if o["kind"] in ("DaemonSet", "Deployment")
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {f"registry.example.com/mlfootprint:{mlfootprint.__version__}"}
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    # the rollout commands name the objects the chart creates
    for kind, name in re.findall(r"rollout status (daemonset|deployment)/(\S+)", block):
        assert ({"daemonset": "DaemonSet", "deployment": "Deployment"}[kind], name) in names


def test_verification_manifest_is_valid() -> None:
    walkthrough = _section("From a clone to a running install")
    manifest = re.search(r"<<'END'\n(.*?)\nEND\n", walkthrough, flags=re.S)
    assert manifest
    job, run = [d for d in yaml.safe_load_all(manifest.group(1)) if d]
    assert job["kind"] == "Job"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    parsed = TrainingRun.model_validate(run)  # the CRD's own model (its schema is generated from it)
    assert parsed.spec.selector.match_labels == {"job-name": job["metadata"]["name"]}  # type: ignore[union-attr]
    assert f"wait --for=condition=Ready trainingrun/{run['metadata']['name']}" in walkthrough


def test_the_crd_command_is_the_same_everywhere() -> None:
    upgrading = _section("Upgrading")
    assert f"{CRD_COMMAND} crds/" in upgrading
    assert "helm upgrade mlfootprint charts/mlfootprint -n mlfootprint --reset-then-reuse-values" in upgrading
    assert "never upgrades or deletes them" in upgrading
    assert CRD_COMMAND in (ROOT / "charts/mlfootprint/README.md").read_text()
    assert CRD_COMMAND in (ROOT / "hack/release/dist.sh").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"{CRD_COMMAND} crds/" in changelog

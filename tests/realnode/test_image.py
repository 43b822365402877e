"""The image built here (`make image`: hack/image/build.sh) and the Dockerfile users build
install the same packages: the runtime lock and the package, no test tools (issue 13 #3)."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.realnode.conftest import REPO, BuiltImage

pytestmark = [pytest.mark.realnode]

TEST_TOOLS = {"pytest", "pytest-timeout", "pytest-benchmark", "hypothesis", "grpcio-tools", "iniconfig", "pluggy"}
SITE = "opt/mlfootprint/lib/python3.11/site-packages/"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: Path) -> dict[str, str]:
    return {_norm(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", lock.read_text(), re.M)}


def test_dockerfile_and_image_build_install_only_the_runtime_lock() -> None:
    def code(path: Path) -> str:  # without comments
        return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))

    docker = code(REPO / "Dockerfile")
    build = code(REPO / "hack/image/build.sh")
    installs = re.findall(r"pip install[^\n]*", docker)
    assert any("--require-hashes -r requirements.lock" in i for i in installs), installs
    assert any("--no-deps ." in i for i in installs), installs
    assert "requirements-dev" not in docker and "requirements-dev" not in build
    assert "COPY pyproject.toml requirements.lock" in docker
    assert "--require-hashes -r /tmp/requirements.lock" in build and "--no-deps" in build
    runtime, dev = _pins(REPO / "requirements.lock"), _pins(REPO / "requirements-dev.lock")
    assert not TEST_TOOLS & set(runtime), "test tools in the runtime lock"
    assert TEST_TOOLS - {"iniconfig", "pluggy"} <= set(dev)
    assert {n: dev[n] for n in runtime} == runtime, "the dev lock pins other versions than the runtime lock"


def _image_files(archive: Path) -> tuple[dict, set[str]]:  # type: ignore[type-arg]
    """(image config, every path in its layers) read from the archive itself."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_json = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        (desc,) = index["manifests"]
        manifest = json.load(tar.extractfile("blobs/" + desc["digest"].replace(":", "/")))  # type: ignore[arg-type]
        config = json.load(tar.extractfile("blobs/" + manifest["config"]["digest"].replace(":", "/")))  # type: ignore[arg-type]
        assert manifest_json[0]["Config"] == "blobs/" + manifest["config"]["digest"].replace(":", "/")
        paths: set[str] = set()
        for layer in manifest["layers"]:
            blob = tar.extractfile("blobs/" + layer["digest"].replace(":", "/"))
            with tarfile.open(fileobj=blob, mode="r|*") as inner:
                paths |= {m.name.lstrip("./") for m in inner}
    return {"config": config, "index": index, "docker": manifest_json}, paths


def test_image_installs_the_runtime_lock_and_no_test_tools(built_image: BuiltImage) -> None:
    meta, paths = _image_files(built_image.archive)
    dists = {}
    for p in paths:
        m = re.match(re.escape(SITE) + r"([^/]+)-([^-/]+)\.dist-info/METADATA$", p)
        if m:
            dists[_norm(m.group(1))] = m.group(2)
    runtime = _pins(REPO / "requirements.lock")
    extra = {n: v for n, v in dists.items() if n not in runtime}
    assert {n: dists.get(n) for n in runtime} == runtime, "the image's packages differ from the runtime lock"
    assert set(extra) <= {"mlfootprint", "pip", "setuptools"}, extra  # venv's own pip (and setuptools)
    assert "mlfootprint" in extra
    assert not TEST_TOOLS & set(dists), TEST_TOOLS & set(dists)
    assert not [p for p in paths if p.startswith(SITE + "tests/")]
    cfg = meta["config"]["config"]
    assert cfg["Entrypoint"] == ["mlfootprint"] and cfg["User"] == "65534:65534"
    assert any(e.startswith("PATH=/opt/mlfootprint/bin") for e in cfg["Env"])
    ref = built_image.ref
    assert meta["index"]["manifests"][0]["annotations"]["io.containerd.image.name"] == ref
    assert meta["docker"][0]["RepoTags"] == [ref]


def test_archive_loads_as_oci_and_docker_archive(built_image: BuiltImage) -> None:
    """skopeo reads it both ways (what `podman load` / `docker load` read)."""
    for transport in ("oci-archive", "docker-archive"):
        out = subprocess.run(["skopeo", "inspect", f"{transport}:{built_image.archive}"], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["Architecture"] == "amd64" and len(info["Layers"]) == 2

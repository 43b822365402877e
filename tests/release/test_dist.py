"""`make dist` (hack/release/dist.sh): the wheel, the sdist, the packaged chart and the CRD bundle
of one version; the packaged chart lints and renders with the image tag of that version."""

from __future__ import annotations

import email.parser
import hashlib
import os
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml

import mlfootprint
from tests.chart.conftest import helm, helm_path

pytestmark = [pytest.mark.helm]

ROOT = Path(__file__).resolve().parents[2]
VERSION = mlfootprint.__version__


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "dist"
    env = {**os.environ, "HELM": str(helm_path())}
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "hack/release/dist.sh"), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"\n[dist] make dist took {time.monotonic() - t0:.1f} s")
    return out


def test_artefacts_of_one_version(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    assert names == sorted([
        f"mlfootprint-{VERSION}-py3-none-any.whl", f"mlfootprint-{VERSION}.tar.gz", f"mlfootprint-{VERSION}.tgz",
        f"mlfootprint-crds-{VERSION}.yaml", "SHA256SUMS",
    ])
    with zipfile.ZipFile(dist / f"mlfootprint-{VERSION}-py3-none-any.whl") as whl:
        meta = email.parser.Parser().parsestr(whl.read(f"mlfootprint-{VERSION}.dist-info/METADATA").decode())
        init = whl.read("mlfootprint/__init__.py").decode()
        assert not [n for n in whl.namelist() if n.startswith("tests/")]
    assert meta["Name"] == "mlfootprint" and meta["Version"] == VERSION
    assert f'__version__ = "{VERSION}"' in init
    with tarfile.open(dist / f"mlfootprint-{VERSION}.tar.gz") as sdist:
        pkg = email.parser.Parser().parsestr(sdist.extractfile(f"mlfootprint-{VERSION}/PKG-INFO").read().decode())  # type: ignore[union-attr]
    assert pkg["Version"] == VERSION
    with tarfile.open(dist / f"mlfootprint-{VERSION}.tgz") as chart:
        chart_yaml = yaml.safe_load(chart.extractfile("mlfootprint/Chart.yaml").read())  # type: ignore[union-attr]
        members = set(chart.getnames())
    assert chart_yaml["version"] == chart_yaml["appVersion"] == VERSION
    assert {"mlfootprint/README.md", "mlfootprint/values.schema.json", "mlfootprint/crds/mlfootprint.io_trainingruns.yaml"} <= members
    assert not [m for m in members if "/ci/" in m or m.endswith(".py")], "test scenarios or scripts packaged"
    sums = dict(reversed(line.split()) for line in (dist / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == set(names) - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name


def test_crd_bundle_is_crds_dir_with_the_version(dist: Path) -> None:
    bundle = [d for d in yaml.safe_load_all((dist / f"mlfootprint-crds-{VERSION}.yaml").read_text()) if d]
    expected = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))]
    assert bundle == expected
    assert {d["metadata"]["name"] for d in bundle} == {"trainingruns.mlfootprint.io", "inferenceservices.mlfootprint.io"}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/version"] == VERSION for d in bundle)


def test_packaged_chart_lints_and_renders_the_versions_image(dist: Path) -> None:
    chart = str(dist / f"mlfootprint-{VERSION}.tgz")
    assert "0 chart(s) failed" in helm("lint", chart, "--strict").stdout
    objs = [d for d in yaml.safe_load_all(helm("template", "mlfootprint", chart, "-n", "mlfootprint").stdout) if d]
    images = {c["image"] for o in objs if o["kind"] in ("DaemonSet", "Deployment")
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {f"ghcr.io/mlfootprint/mlfootprint:{VERSION}"}
    # the user's registry, as docs/install.md says
    objs = [d for d in yaml.safe_load_all(helm("template", "mlfootprint", chart, "-n", "mlfootprint", "--set",
                                                "image.repository=registry.example.com/mlfootprint").stdout) if d]
    images = {c["image"] for o in objs if o["kind"] in ("DaemonSet", "Deployment")
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {f"registry.example.com/mlfootprint:{VERSION}"}

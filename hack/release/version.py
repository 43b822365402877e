#!/usr/bin/env python3
"""One version for everything a release ships (issue 16), taken from one place:
``__version__`` in src/mlfootprint/__init__.py. Derived from it:

* the package's version (pyproject.toml reads the attribute: ``dynamic = ["version"]``);
* charts/mlfootprint/Chart.yaml ``version`` and ``appVersion`` (helm needs literals: stamped here);
* the image tag (hack/image/build.sh and the chart's default ``image.tag`` use ``appVersion``);
* the CRDs' ``app.kubernetes.io/version`` label (crds/, the chart's copy, the dist bundle: the
  generator reads ``__version__``; ``make crds`` rewrites them);
* a ``## [X.Y.Z]`` section in CHANGELOG.md.

Usage (``make version``):
  hack/release/version.py                  print the version
  hack/release/version.py --check          exit 1 naming every file that disagrees
  hack/release/version.py --write [X.Y.Z]  set __version__ (if given) and stamp Chart.yaml
                                           (then run `make crds` for the CRD labels)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INIT = Path("src/mlfootprint/__init__.py")
CHART = Path("charts/mlfootprint/Chart.yaml")
CHANGELOG = Path("CHANGELOG.md")
CRD_DIRS = (Path("crds"), Path("charts/mlfootprint/crds"))
#: X.Y.Z only: the same string is a PEP 440 version and a SemVer 2 chart version
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_INIT_RE = re.compile(r'^__version__ = "([^"]*)"$', re.M)


def read_version(root: Path = ROOT) -> str:
    match = _INIT_RE.search((root / INIT).read_text())
    if match is None:
        raise SystemExit(f"{INIT}: no `__version__ = \"X.Y.Z\"` line")
    return match.group(1)


def _chart_field(text: str, key: str) -> str | None:
    match = re.search(rf"^{key}:\s*\"?([^\"\s]*)\"?\s*$", text, re.M)
    return match.group(1) if match else None


def changelog_section(root: Path, version: str) -> str | None:
    """The body of CHANGELOG.md's ``## [version]`` section (None when there is none)."""
    path = root / CHANGELOG
    if not path.exists():
        return None
    match = re.search(rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## \[|\Z)", path.read_text(), re.M | re.S)
    return match.group(1) if match else None


def problems(root: Path = ROOT) -> list[str]:
    """Every place that disagrees with __version__, as `file: what` lines."""
    version = read_version(root)
    out = []
    if not VERSION_RE.match(version):
        out.append(f"{INIT}: __version__ must be X.Y.Z (a PEP 440 and SemVer 2 version at once)")
    chart = (root / CHART).read_text()
    for key in ("version", "appVersion"):
        if _chart_field(chart, key) != version:
            out.append(f"{CHART}: {key} is not {version}: run `make version`")
    for d in CRD_DIRS:
        for crd in sorted((root / d).glob("*.yaml")):
            if not re.search(rf"^    app\.kubernetes\.io/version: ['\"]?{re.escape(version)}['\"]?$", crd.read_text(), re.M):
                out.append(f"{d / crd.name}: label app.kubernetes.io/version is not {version}: run `make crds`")
    section = changelog_section(root, version)
    if section is None:
        out.append(f"{CHANGELOG}: no `## [{version}]` section (Keep a Changelog)")
    elif not re.search(r"^- ", section, re.M):
        out.append(f"{CHANGELOG}: the `## [{version}]` section lists no change")
    return out


def write(root: Path, version: str | None) -> str:
    if version is not None:
        if not VERSION_RE.match(version):
            raise SystemExit(f"version: {version!r} is not X.Y.Z")
        init = root / INIT
        init.write_text(_INIT_RE.sub(f'__version__ = "{version}"', init.read_text(), count=1))
    version = read_version(root)
    chart = root / CHART
    text = re.sub(r"^version:.*$", f"version: {version}", chart.read_text(), count=1, flags=re.M)
    text = re.sub(r"^appVersion:.*$", f'appVersion: "{version}"', text, count=1, flags=re.M)
    chart.write_text(text)
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail naming every file that disagrees with __version__")
    mode.add_argument("--write", nargs="?", const="", metavar="X.Y.Z", help="set __version__ (if given) and stamp Chart.yaml")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write is not None:
        print(write(args.root, args.write or None))
        return 0
    if args.check:
        found = problems(args.root)
        for line in found:
            print(f"version: {line}", file=sys.stderr)
        if found:
            return 1
    print(read_version(args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

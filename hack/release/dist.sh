#!/usr/bin/env bash
# `make dist`: what a release publishes, with ONE version (mlfootprint.__version__,
# hack/release/version.py), into _out/dist/ (or $1):
#
#   mlfootprint-<v>-py3-none-any.whl   the package (what the image installs, --no-deps)
#   mlfootprint-<v>.tar.gz             its sdist
#   mlfootprint-<v>.tgz                the chart (`helm package`; version = appVersion = <v>)
#   mlfootprint-crds-<v>.yaml          both CRDs in one file, for `kubectl apply --server-side`
#                                      before `helm upgrade` (Helm never upgrades crds/)
#   SHA256SUMS
#
# It refuses to package a tree whose derived files disagree with the version (Chart.yaml,
# the CRDs' labels), whose generated files are stale (CRDs, the chart's README) or whose
# CHANGELOG.md has no section for the version; the chart must pass `helm lint --strict` and
# render from the package. The image is `make image` (root, no daemon): _out/mlfootprint-<v>.oci.tar.
# Environment: PYTHON (default .venv/bin/python), HELM (default the one `make tools` installs).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
HELM="${HELM:-${MLFOOTPRINT_HELM:-$CACHE/bin/helm-v4.1.4/helm}}"
OUT="${1:-$ROOT/_out/dist}"
log() { echo "[dist] $*" >&2; }
die() { log "$*"; exit 1; }

[[ -x "$PYTHON" ]] || die "$PYTHON not found: run \`make venv\`"
[[ -x "$HELM" ]] || die "helm not found at $HELM: run \`make tools\` (or set HELM)"
start=$SECONDS

# 1. one version, every derived place current
"$PYTHON" hack/release/version.py --check >/dev/null || die "the tree disagrees with its version (above)"
VERSION="$("$PYTHON" hack/release/version.py)"
"$PYTHON" - <<'PY' || die "crds/ is stale: run \`make crds\`"
from pathlib import Path
from mlfootprint.crd.generate import all_crds, render
stale = [f"{d}/{n}" for d in ("crds", "charts/mlfootprint/crds") for n, c in all_crds().items()
         if not Path(d, n).exists() or Path(d, n).read_text() != render(c)]
raise SystemExit(f"[dist] stale: {', '.join(stale)}" if stale else 0)
PY
"$PYTHON" -m mlfootprint.crd.chartreadme --check || die "charts/mlfootprint/README.md is stale: run \`make docs\`"
if "$PYTHON" - "$VERSION" <<'PY'
import re, sys
text = open("CHANGELOG.md").read()
head = re.search(rf"^## \[{re.escape(sys.argv[1])}\]([^\n]*)", text, re.M)
raise SystemExit(0 if head and "unreleased" in head.group(1).lower() else 1)
PY
then log "note: CHANGELOG.md's [$VERSION] section says Unreleased: date it before tagging v$VERSION"; fi

rm -rf "$OUT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# 2. the wheel (as hack/image/build.sh builds it) and the sdist (setuptools' PEP 517 hook, as
# `python -m build --sdist` calls it), in a copy of the package's sources (package-tree.sh); no
# build isolation: the venv has the pinned setuptools
tree="$(mktemp -d "${TMPDIR:-/tmp}/mlfootprint-dist.XXXXXX")"
trap 'rm -rf "$tree"' EXIT
bash hack/release/package-tree.sh "$ROOT" "$tree"
{
  (cd "$tree" && "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" . &&
    "$PYTHON" -c 'import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])' "$OUT")
} >"$OUT/.build.log" 2>&1 || { cat "$OUT/.build.log" >&2; die "the package build failed"; }
rm -f "$OUT/.build.log"
for f in "$OUT/mlfootprint-$VERSION-py3-none-any.whl" "$OUT/mlfootprint-$VERSION.tar.gz"; do
  [[ -f "$f" ]] || die "the package build wrote no $f"
done
# 3. the chart: lint, package, render the package
"$HELM" lint --strict charts/mlfootprint >/dev/null || { "$HELM" lint --strict charts/mlfootprint; die "helm lint failed"; }
"$HELM" package charts/mlfootprint --destination "$OUT" >/dev/null
chart="$OUT/mlfootprint-$VERSION.tgz"
[[ -f "$chart" ]] || die "helm package wrote no $chart"
"$HELM" template mlfootprint "$chart" --namespace mlfootprint >/dev/null || die "the packaged chart does not render"
# 4. the CRD bundle: crds/ (identical to the chart's copy, tested) in one file
bundle="$OUT/mlfootprint-crds-$VERSION.yaml"
{
  echo "# mlfootprint $VERSION: the CustomResourceDefinitions (TrainingRun, InferenceService)."
  echo "# Helm installs a chart's crds/ once and never upgrades them; apply this before \`helm upgrade\`:"
  echo "#   kubectl apply --server-side --force-conflicts -f mlfootprint-crds-$VERSION.yaml"
  for f in crds/*.yaml; do
    echo "---"
    grep -v '^#' "$f"
  done
} >"$bundle"
(cd "$OUT" && sha256sum -- * >SHA256SUMS)
log "mlfootprint $VERSION in $OUT ($((SECONDS - start)) s):"
(cd "$OUT" && ls -l -- * | awk '{printf "[dist]   %-40s %8d bytes\n", $NF, $5}' >&2)
log "the image: \`make image\` -> _out/mlfootprint-$VERSION.oci.tar (ghcr.io/mlfootprint/mlfootprint:$VERSION)"

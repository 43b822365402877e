#!/usr/bin/env bash
# The real Prometheus Operator for the chart tests (tests/chart): its CRDs (ServiceMonitor,
# PodMonitor, PrometheusRule, Prometheus, ...) instead of permissive stand-ins, and the operator
# itself, which turns the chart's ServiceMonitor into a Prometheus scrape configuration.
#   CRDs      <- Go module github.com/prometheus-operator/prometheus-operator (example/prometheus-operator-crd)
#   operator  <- the same module's cmd/operator, built with hack/prometheus-operator-build/go.mod
#                (`go install ...@version` refuses the module: its go.mod has replace directives)
# Both Apache-2.0. Idempotent: $MLFOOTPRINT_CACHE/prometheus-operator-<version>/{crds,operator}
# are only made when missing. Environment: MLFOOTPRINT_CACHE (default ~/.cache/mlfootprint).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="$ROOT/hack/prometheus-operator-build"
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
MODULE=github.com/prometheus-operator/prometheus-operator
log() { echo "[60-prometheus-operator] $*" >&2; }
# One source of truth: the require line in hack/prometheus-operator-build/go.mod.
VERSION="$(awk -v m="$MODULE" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$BUILD_DIR/go.mod")"
[[ -n "$VERSION" ]] || { log "no $MODULE version in $BUILD_DIR/go.mod"; exit 1; }
DEST="$CACHE/prometheus-operator-$VERSION"

if [[ -x "$DEST/operator" && -f "$DEST/crds/done" ]]; then
  log "prometheus-operator $VERSION: cached in $DEST"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed: install Go >= 1.24 first"; exit 1; }
mkdir -p "$DEST"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$SECONDS
if [[ ! -f "$DEST/crds/done" ]]; then
  dir="$(cd "$BUILD_DIR" && go mod download -json "$MODULE@$VERSION" | awk -F'"' '$2 == "Dir" {print $4}')"
  [[ -d "$dir/example/prometheus-operator-crd" ]] || { log "no example/prometheus-operator-crd in $MODULE@$VERSION"; exit 1; }
  rm -rf "$DEST/crds"
  mkdir -p "$DEST/crds"
  cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$DEST/crds/"
  chmod 0644 "$DEST"/crds/*.yaml
  touch "$DEST/crds/done"
  log "CRDs of $MODULE@$VERSION in $DEST/crds"
fi
if [[ ! -x "$DEST/operator" ]]; then
  log "building the prometheus-operator $VERSION (a few minutes the first time)"
  out="$(mktemp)"
  if ! (cd "$BUILD_DIR" && go build -trimpath -ldflags="-s -w" -o "$DEST/operator.tmp" "$MODULE/cmd/operator") >"$out" 2>&1; then
    cat "$out" >&2
    mv -f "$out" "$DEST/build-error.log"
    log "build failed; output kept in $DEST/build-error.log"
    exit 1
  fi
  rm -f "$out" "$DEST/build-error.log"
  mv -f "$DEST/operator.tmp" "$DEST/operator"
  log "built the prometheus-operator $VERSION in $((SECONDS - start)) s"
fi

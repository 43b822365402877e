#!/usr/bin/env bash
# Builds VictoriaMetrics single-node (Apache-2.0), a horizontally scalable Prometheus-compatible
# store (its cluster version shares the query engine and API), from its Go module, for the tests
# that run the Prometheus-mode operator and `mlfootprint report` against something other than
# Prometheus (tests/operator/test_victoriametrics.py).
#
#   victoria-metrics  <- Go module github.com/VictoriaMetrics/VictoriaMetrics (app/victoria-metrics)
#
# The module has no replace directives, so `go install pkg@version` is pinned and checksummed
# (sum.golang.org). Idempotent: the binary lives in
# $MLFOOTPRINT_CACHE/bin/victoria-metrics-<version>/victoria-metrics and is only built when
# missing; a failed build leaves its output in $MLFOOTPRINT_CACHE/bin/victoria-metrics.build-error.log,
# which the tests quote (they fail with it, never skip).
# Environment: MLFOOTPRINT_CACHE (default ~/.cache/mlfootprint), VICTORIAMETRICS_VERSION.
set -euo pipefail
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
# v1.148.x: the newest line whose go.mod accepts Go 1.26 (later ones need Go 1.27).
VM_VERSION="${VICTORIAMETRICS_VERSION:-v1.148.8}"
DEST="$CACHE/bin/victoria-metrics-$VM_VERSION"
MODULE="github.com/VictoriaMetrics/VictoriaMetrics"

log() { echo "[50-victoriametrics] $*" >&2; }

if [[ -x "$DEST/victoria-metrics" ]]; then
  log "victoria-metrics $VM_VERSION: cached in $DEST"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed: install Go >= 1.26 first"; exit 1; }

mkdir -p "$CACHE/bin"
tmp="$(mktemp -d "$CACHE/bin/.build-vm.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
log "building victoria-metrics $VM_VERSION from Go modules"
# Stamp the version as VictoriaMetrics' Makefile does (lib/buildinfo), so `-version` and the
# vm_app_version metric name it.
ldflags="-s -w -X $MODULE/lib/buildinfo.Version=victoria-metrics-$VM_VERSION"
if ! CGO_ENABLED=0 GOFLAGS= GOBIN="$tmp" go install -trimpath "-ldflags=$ldflags" \
  "$MODULE/app/victoria-metrics@$VM_VERSION" >"$tmp/build.log" 2>&1; then
  cat "$tmp/build.log" >&2
  mv -f "$tmp/build.log" "$CACHE/bin/victoria-metrics.build-error.log"
  log "build failed; output kept in $CACHE/bin/victoria-metrics.build-error.log"
  exit 1
fi
got="$("$tmp/victoria-metrics" -version 2>&1 | head -n1)"
if [[ "$got" != "victoria-metrics-$VM_VERSION"* ]]; then
  log "expected victoria-metrics-$VM_VERSION, the binary says '$got'"
  exit 1
fi
mkdir -p "$DEST"
mv -f "$tmp/victoria-metrics" "$DEST/victoria-metrics"
rm -f "$CACHE/bin/victoria-metrics.build-error.log"
log "built $got in $DEST in $((SECONDS - start)) s"

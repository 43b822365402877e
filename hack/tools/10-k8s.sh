#!/usr/bin/env bash
# Builds/installs the local control plane used by tests and the demo (see docs/dev-cluster.md):
#   kube-apiserver, kube-controller-manager, kube-scheduler,
#   kubelet, kube-proxy (the real worker node)               <- Go module k8s.io/kubernetes
#                                                               (pinned in hack/k8s-build/go.mod)
#   kwok                                                     <- Go module sigs.k8s.io/kwok
#   etcd                                                     <- Debian etcd-server
# Idempotent: each binary lives in $MLFOOTPRINT_CACHE/bin/<name>-<version>/<name> and is only
# built when missing. Environment: MLFOOTPRINT_CACHE (default ~/.cache/mlfootprint).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_DIR="$ROOT/hack/k8s-build"
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
# One source of truth for the Kubernetes version: the require line in hack/k8s-build/go.mod.
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$BUILD_DIR/go.mod")"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
GO_BUILD_FLAGS=(-trimpath -ldflags=-s\ -w)
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "[10-k8s] $*" >&2; }
# shellcheck source=hack/lib/apt.sh
source "$ROOT/hack/lib/apt.sh"

# run_build NAME CMD...: on failure keep the output in $CACHE/bin/NAME.build-error.log, which the
# test fixtures quote (cluster tests fail with the build error, they never skip).
run_build() {
  local name=$1 out
  shift
  out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    mv -f "$out" "$CACHE/bin/$name.build-error.log"
    log "build of $name failed; output kept in $CACHE/bin/$name.build-error.log"
    exit 1
  fi
  cat "$out" >&2
  rm -f "$out" "$CACHE/bin/$name.build-error.log"
}

need_go() {
  command -v go >/dev/null || { log "go is not installed: install Go >= 1.24 first"; exit 1; }
}

build_kubernetes() {
  local missing=() name
  for name in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [[ -x "$CACHE/bin/$name-$K8S_VERSION/$name" ]] || missing+=("$name")
  done
  if ((${#missing[@]} == 0)); then
    log "kubernetes $K8S_VERSION: cached in $CACHE/bin"
    return
  fi
  need_go
  local tmp start
  tmp="$(mktemp -d "$CACHE/bin/.build-k8s.XXXXXX")"
  start=$SECONDS
  log "building ${missing[*]} $K8S_VERSION (slow the first time: several minutes)"
  local pkgs=() ldflags="-s -w" ver="${K8S_VERSION#v}" pkg
  for name in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  # Stamp the version as hack/lib/version.sh does (otherwise the server reports
  # v0.0.0-master, which breaks kubectl's skew check and Helm's kubeVersion constraints).
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=${ver%%.*}"
    ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$ver") -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.gitCommit=go-module-k8s.io/kubernetes@$K8S_VERSION"
  done
  # One `go build` for all of them so the shared packages compile once.
  run_build "kubernetes-$K8S_VERSION" bash -c 'cd "$1" && shift && exec go build "$@"' _ \
    "$BUILD_DIR" -trimpath "-ldflags=$ldflags" -o "$tmp/" "${pkgs[@]}"
  for name in "${missing[@]}"; do
    mkdir -p "$CACHE/bin/$name-$K8S_VERSION"
    mv -f "$tmp/$name" "$CACHE/bin/$name-$K8S_VERSION/$name"
  done
  rmdir "$tmp"
  log "built ${missing[*]} $K8S_VERSION in $((SECONDS - start)) s"
}

build_kwok() {
  local dest="$CACHE/bin/kwok-$KWOK_VERSION"
  if [[ -x "$dest/kwok" ]]; then
    log "kwok $KWOK_VERSION: cached in $dest"
    return
  fi
  need_go
  local tmp start
  tmp="$(mktemp -d "$CACHE/bin/.build-kwok.XXXXXX")"
  start=$SECONDS
  log "building kwok $KWOK_VERSION"
  # A plain module (no staging replaces): `go install pkg@version` is pinned and checksummed.
  GOFLAGS= GOBIN="$tmp" run_build "kwok-$KWOK_VERSION" \
    go install "${GO_BUILD_FLAGS[@]}" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mkdir -p "$dest"
  mv -f "$tmp/kwok" "$dest/kwok"
  rmdir "$tmp"
  log "built kwok $KWOK_VERSION in $((SECONDS - start)) s"
}

install_etcd() {
  if command -v etcd >/dev/null; then
    log "etcd: $(etcd --version 2>/dev/null | head -1)"
    return
  fi
  log "installing Debian etcd-server"
  apt_install etcd etcd-server
}

mkdir -p "$CACHE/bin"
case "${1:-all}" in
  all) install_etcd; build_kubernetes; build_kwok ;;
  etcd) install_etcd ;;
  kubernetes) build_kubernetes ;;
  kwok) build_kwok ;;
  *) log "usage: $0 [all|etcd|kubernetes|kwok]"; exit 2 ;;
esac

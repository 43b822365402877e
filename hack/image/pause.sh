#!/usr/bin/env bash
# Builds the real node's pod sandbox image, mlfootprint.local/pause:<version>: the static Go
# program in hack/image/pause (no module dependencies) as the only file of a one-layer image,
# written as an archive by hack/image/archive.py. containerd's CRI plugin runs it as every pod's
# sandbox (`sandbox_image`); src/mlfootprint/devcluster/node.py imports it at node start.
# Idempotent: $MLFOOTPRINT_CACHE/image/pause-<version>.tar is only built when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
VERSION=1.0  # src/mlfootprint/devcluster/node.py PAUSE_IMAGE; a unit test checks they agree
OUT="$CACHE/image/pause-$VERSION.tar"
PYTHON="${PYTHON:-python3}"
log() { echo "[pause] $*" >&2; }
if [[ -f "$OUT" ]]; then
  log "mlfootprint.local/pause:$VERSION: cached in $OUT"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed: install Go >= 1.24 first"; exit 1; }
command -v umoci >/dev/null || { log "umoci not found: run hack/tools/50-node.sh"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$ROOT/hack/image/pause" && CGO_ENABLED=0 GOFLAGS= go build -trimpath -ldflags='-s -w' -o "$work/pause" .)
"$PYTHON" - "$work/pause" "$work/layer.tar" <<'PY'
import sys, tarfile
src, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w") as tar:
    info = tar.gettarinfo(src, arcname="pause")
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755
    info.mtime = 0
    with open(src, "rb") as fh:
        tar.addfile(info, fh)
PY
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$VERSION"
umoci raw add-layer --image "$work/oci:$VERSION" --history.created_by "hack/image/pause" "$work/layer.tar"
umoci config --image "$work/oci:$VERSION" --config.entrypoint /pause --config.user 65535:65535 \
  --history.created_by "image config (hack/image/pause.sh)"
mkdir -p "$(dirname "$OUT")"
"$PYTHON" "$ROOT/hack/image/archive.py" "$work/oci" "$VERSION" "mlfootprint.local/pause:$VERSION" "$OUT"
log "built mlfootprint.local/pause:$VERSION in $OUT"

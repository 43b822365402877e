#!/usr/bin/env bash
# `make image`: the exporter/operator image, built here WITHOUT a registry or a container daemon,
# as one archive that `docker load`, `podman load`, `skopeo copy` and `ctr images import` all read
# (an OCI image layout plus Docker's manifest.json, as `docker save` writes since Docker 25).
#
#   base layer  Debian bookworm minbase + python3 (3.11) + /opt/mlfootprint venv with the RUNTIME
#               lock (requirements.lock, --require-hashes): the same dependency set the
#               Dockerfile installs (tests/realnode/test_image.py checks both). Built with
#               mmdebstrap from the host's Debian sources; wheels from PyPI (pip download).
#               Cached in $MLFOOTPRINT_CACHE/image/base-<key>, key = lock + this recipe.
#   app layer   the mlfootprint wheel (built from this tree), installed --no-deps.
#   config      ENTRYPOINT ["mlfootprint"], CMD ["--help"], USER 65534:65534, PATH, labels.
#
# Usage: hack/image/build.sh [OUT]   (default _out/mlfootprint-<version>.oci.tar)
# Environment: IMAGE (reference stored in the archive, default the chart's
#   ghcr.io/mlfootprint/mlfootprint:<appVersion>), SOURCE (the source tree whose package goes
#   into the app layer and whose chart's appVersion tags it, default this tree; e.g. a
#   `git archive` of an older release, which has no builder of its own: its runtime lock must
#   pin what this tree's does, tests/realnode/test_upgrade.py checks that), MIRROR (Debian sources for mmdebstrap, default
#   the host's /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian),
#   PYTHON (a Python 3.11 with pip, default .venv/bin/python), MLFOOTPRINT_CACHE.
# Needs root (mmdebstrap, chroot and umoci keep file ownership) and `make tools`
# (hack/tools/50-node.sh installs mmdebstrap and umoci).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SOURCE="$(cd "${SOURCE:-$ROOT}" && pwd)"
VERSION="$(awk '/^appVersion:/ {gsub(/"/, "", $2); print $2}' "$SOURCE/charts/mlfootprint/Chart.yaml")"
IMAGE="${IMAGE:-ghcr.io/mlfootprint/mlfootprint:$VERSION}"
OUT="${1:-$ROOT/_out/mlfootprint-$VERSION.oci.tar}"
SUITE=bookworm
# Debian packages of the base layer (python3 is 3.11 in bookworm, as python:3.11-slim).
PACKAGES=python3,python3-venv,ca-certificates
RECIPE=2  # bump when the base recipe below changes
log() { echo "[image] $*" >&2; }
die() { log "$*"; exit 1; }

((EUID == 0)) || die "needs root (mmdebstrap, chroot and umoci keep the files' owners); run as root"
for tool in mmdebstrap umoci; do
  command -v "$tool" >/dev/null || die "$tool not found: run \`make tools\` (hack/tools/50-node.sh)"
done
[[ -x "$PYTHON" ]] || die "$PYTHON not found: run \`make venv\` (or set PYTHON to a Python 3.11 with pip)"
pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$pyver" == 3.11 ]] || die "PYTHON is $pyver; the image's Python is 3.11 (Debian $SUITE), wheels must match"
if [[ -z "${MIRROR:-}" ]]; then
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then MIRROR=/etc/apt/sources.list.d/debian.sources
  else MIRROR=http://deb.debian.org/debian; fi
fi

start=$SECONDS
key="$( { echo "$RECIPE $SUITE $PACKAGES"; cat requirements.lock; [[ -f $MIRROR ]] && cat "$MIRROR" || echo "$MIRROR"; } | sha256sum | cut -c1-16)"
base="$CACHE/image/base-$key"
work="$(mktemp -d "${TMPDIR:-/tmp}/mlfootprint-image.XXXXXX")"
cleanup() {
  # the unpacked bundle holds root-owned files; never leave a half-built one behind
  rm -rf "$work"
}
trap cleanup EXIT

if [[ ! -f "$base/done" ]]; then
  log "building the base layer (Debian $SUITE minbase + python3 + the runtime lock): about 1-2 minutes"
  rm -rf "$base"
  mkdir -p "$CACHE/image/wheels"
  # Wheels for the runtime lock, hash-checked; cp311 manylinux wheels run on Debian's Python 3.11.
  "$PYTHON" -m pip download -q --require-hashes --only-binary=:all: --no-deps \
    -d "$CACHE/image/wheels" -r requirements.lock
  mkdir -p "$work/wheels"
  # only the lock's wheels go into the image build (the cache may hold older versions)
  "$PYTHON" - "$CACHE/image/wheels" "$work/wheels" <<'PY'
import re, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", Path("requirements.lock").read_text(), re.M))
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
want = {(norm(n), v) for n, v in pins.items()}
for whl in src.glob("*.whl"):
    name, version = whl.name.split("-")[:2]
    if (norm(name), version) in want:
        shutil.copy2(whl, dst / whl.name)
PY
  cp requirements.lock "$work/requirements.lock"
  mmdebstrap --variant=minbase --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='mkdir -p "$1/tmp/wheels"' \
    --customize-hook="sync-in $work/wheels /tmp/wheels" \
    --customize-hook="upload $work/requirements.lock /tmp/requirements.lock" \
    --customize-hook='chroot "$1" python3 -m venv /opt/mlfootprint' \
    --customize-hook='chroot "$1" env PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/mlfootprint/bin/pip install -q --no-cache-dir --no-index --find-links /tmp/wheels --require-hashes -r /tmp/requirements.lock' \
    --customize-hook='rm -rf "$1/tmp/wheels" "$1/tmp/requirements.lock" "$1/var/cache/apt"/*.bin "$1/var/lib/apt/lists"/*' \
    "$SUITE" "$work/rootfs.tar" "$MIRROR" >"$work/mmdebstrap.log" 2>&1 \
    || { tail -30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed (full log above)"; }
  mkdir -p "$base"
  umoci init --layout "$base/oci"
  umoci new --image "$base/oci:base"
  umoci raw add-layer --image "$base/oci:base" --history.created_by "mmdebstrap $SUITE minbase $PACKAGES + requirements.lock" "$work/rootfs.tar"
  rm -f "$work/rootfs.tar"
  touch "$base/done"
  log "base layer cached in $base ($((SECONDS - start)) s)"
else
  log "base layer: cached in $base"
fi

# App layer: the wheel of the source tree, installed into the base's venv in a chroot.
bash "$ROOT/hack/release/package-tree.sh" "$SOURCE" "$work/source"  # a build tree of its own
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/source" >/dev/null
wheel="$(ls "$work"/dist/mlfootprint-*.whl)"
cp -a "$base/oci" "$work/oci"
umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
cp "$wheel" "$work/bundle/rootfs/tmp/"
chroot "$work/bundle/rootfs" env -i PATH=/usr/bin:/bin PIP_DISABLE_PIP_VERSION_CHECK=1 \
  /opt/mlfootprint/bin/pip install -q --no-cache-dir --no-deps --no-index "/tmp/$(basename "$wheel")"
rm -f "$work/bundle/rootfs/tmp/$(basename "$wheel")"
umoci repack --image "$work/oci:app" --history.created_by "pip install --no-deps $(basename "$wheel")" "$work/bundle"
umoci config --image "$work/oci:app" --tag "$VERSION" \
  --config.entrypoint mlfootprint --config.cmd --help --config.user 65534:65534 \
  --config.env PATH=/opt/mlfootprint/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env PYTHONUNBUFFERED=1 \
  --config.label org.opencontainers.image.source=https://github.com/mlfootprint/mlfootprint \
  --config.label org.opencontainers.image.licenses=Apache-2.0 \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --history.created_by "image config (hack/image/build.sh)"
mkdir -p "$(dirname "$OUT")"
"$PYTHON" "$ROOT/hack/image/archive.py" "$work/oci" "$VERSION" "$IMAGE" "$OUT"
log "wrote $OUT ($IMAGE, $(du -m "$OUT" | cut -f1) MB) in $((SECONDS - start)) s"
log "load it with: docker load -i $OUT | podman load -i $OUT | skopeo copy oci-archive:$OUT ... | ctr -n k8s.io images import $OUT"

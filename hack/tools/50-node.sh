#!/usr/bin/env bash
# Installs what the real worker node and the registry-free image build need (docs/dev-cluster.md,
# "A real worker node"; docs/install.md, "Building the image"):
#   containerd 1.6, runc 1.1           <- Debian `containerd`, `runc` (Apache-2.0; dev tooling)
#   CNI plugins (bridge, host-local,   <- Debian `containernetworking-plugins` (/usr/lib/cni)
#     loopback)
#   iptables, conntrack                <- Debian `iptables`, `conntrack` (kube-proxy's service rules,
#                                         the node's forward guard; GPL-2.0, dev tooling only)
#   mmdebstrap, umoci, skopeo          <- Debian `mmdebstrap`, `umoci`, `skopeo` (build the image
#                                         without a registry or a daemon: hack/image/build.sh)
#   the pod sandbox image              <- hack/image/pause.sh (a static Go program, cached)
# The kubelet and kube-proxy are built by 10-k8s.sh in the same cached Go build as the control
# plane. Idempotent: installs only what is missing (apt-get update only when needed).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=hack/lib/apt.sh
source "$ROOT/hack/lib/apt.sh"
log() { echo "[50-node] $*" >&2; }

# command -> Debian package
declare -A PACKAGES=(
  [containerd]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables
  [conntrack]=conntrack
  [mmdebstrap]=mmdebstrap
  [umoci]=umoci
  [skopeo]=skopeo
)
missing=()
for cmd in "${!PACKAGES[@]}"; do
  if [[ $cmd == /* ]]; then [[ -x $cmd ]] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  missing+=("${PACKAGES[$cmd]}")
done
if ((${#missing[@]} == 0)); then
  log "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1 {print $3}'), CNI plugins, iptables, mmdebstrap, umoci, skopeo: installed"
  exec bash "$ROOT/hack/image/pause.sh"
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
log "installing Debian ${missing[*]}"
# `containerd` ships a systemd unit only; policy-rc.d (apt.sh) keeps any service from starting.
apt_install node "${missing[@]}"
for cmd in "${!PACKAGES[@]}"; do
  if [[ $cmd == /* ]]; then [[ -x $cmd ]]; else command -v "$cmd" >/dev/null; fi ||
    { log "$cmd still missing after installing ${PACKAGES[$cmd]}"; exit 1; }
done
log "installed ${missing[*]}"
exec bash "$ROOT/hack/image/pause.sh"

#!/usr/bin/env bash
# Checks the prerequisites no installer here provides, and says what is missing. (Go is
# checked by 10-k8s.sh only when a binary must be built; apt-get, with root or sudo, by the
# scripts that install Debian packages, only when a package is missing.)
set -euo pipefail
missing=()
command -v kubectl >/dev/null || missing+=("kubectl >= 1.32 (https://kubernetes.io/docs/tasks/tools/): the tests and the demo use the real kubectl")
command -v openssl >/dev/null || missing+=("openssl: generates the local control plane's certificates")
if ((${#missing[@]})); then
  echo "[00-prereqs] missing prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "[00-prereqs] kubectl and openssl found" >&2

#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package (Apache-2.0).
# Idempotent: does nothing when both are already on PATH; runs `apt-get update` only when
# the package cannot be installed from the current package lists.
# Used by the exporter's and the Helm chart's tests (`promtool check metrics|rules`,
# a real `prometheus` started with a temp config and --storage.tsdb.path).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: already installed ($(prometheus --version 2>&1 | head -n1))" >&2
  exit 0
fi

# shellcheck source=hack/lib/apt.sh
source "$(dirname "$0")/../lib/apt.sh"
apt_install prometheus prometheus

command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "prometheus: installed ($(prometheus --version 2>&1 | head -n1))" >&2

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

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "prometheus: need root (or sudo) to apt-get install prometheus" >&2; exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# The package's postinst tries to start a service; there is no init system here, so
# policy-rc.d tells invoke-rc.d not to start anything.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

install() { $SUDO apt-get install -y --no-install-recommends prometheus >/dev/null; }
if ! install; then
  echo "prometheus: refreshing package lists" >&2
  $SUDO apt-get update >/dev/null
  install
fi

command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "prometheus: installed ($(prometheus --version 2>&1 | head -n1))" >&2

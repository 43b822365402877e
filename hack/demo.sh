#!/usr/bin/env bash
# `make demo`: the whole product on this machine (docs/demo.md). Run after `make venv tools`.
# Environment: MLFOOTPRINT_DEMO_SHORT=1 (the shortened CI variant), MLFOOTPRINT_DEMO_PORT_BASE=N
# (loopback ports N.. ; 0 = any free ports), MLFOOTPRINT_DEMO_NODE=auto|real|kwok (default auto:
# a real worker node where the machine allows it, else simulated kwok nodes, with the reason),
# MLFOOTPRINT_CACHE (state under $MLFOOTPRINT_CACHE/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "demo: $PY not found; run 'make venv' first (or simply 'make demo')" >&2
  exit 2
fi
exec "$PY" -m mlfootprint.demo up "$@"

#!/usr/bin/env bash
# `make demo-down`: stop every process `make demo` started (exporters, operator, simulated vLLM
# metrics, the local control plane) and verify that none is left. Logs and reports are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "demo-down: $PY not found; nothing to stop (the demo needs the virtual environment)" >&2
  exit 0
fi
exec "$PY" -m mlfootprint.demo down "$@"

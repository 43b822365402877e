#!/usr/bin/env bash
# Run every benchmarks/bench_*.py with the project's virtual environment and print the
# figures each one measures. Exits non-zero if any benchmark misses its target or fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "bench: $PY not found; run 'make venv' first" >&2
  exit 2
fi
status=0
shopt -s nullglob
for bench in benchmarks/bench_*.py; do
  echo "== $bench"
  if ! "$PY" "$bench"; then
    echo "!! $bench failed or missed its target" >&2
    status=1
  fi
done
exit "$status"

#!/usr/bin/env bash
# Installs or builds every real tool the tests and the demo use. Each hack/tools/*.sh is
# idempotent: it checks for its tool first and only installs/builds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in hack/tools/*.sh; do
  echo ">> $script" >&2
  bash "$script"
done

#!/usr/bin/env bash
# Installs headless Chromium from Debian's `chromium` package (BSD-3-Clause and others).
# Idempotent: does nothing when `chromium` is already on PATH; runs `apt-get update` only
# when the package cannot be installed from the current package lists.
# Used by the report's browser tests (tests/report/test_html_browser.py): the self-contained
# HTML report is opened with --headless --dump-dom / --screenshot to check its charts.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "chromium: already installed ($(chromium --version 2>/dev/null | head -n1))" >&2
  exit 0
fi

# shellcheck source=hack/lib/apt.sh
source "$(dirname "$0")/../lib/apt.sh"
# fonts-dejavu-core: a font for text in screenshots (headless Chromium draws boxes without one).
apt_install chromium chromium fonts-dejavu-core

command -v chromium >/dev/null
echo "chromium: installed ($(chromium --version 2>/dev/null | head -n1))" >&2

#!/usr/bin/env bash
# `make lock`: re-pin both lock files from pyproject.toml with uv (from PyPI, pinned below,
# installed once into $MLFOOTPRINT_CACHE/tools/uv-<version>):
#   requirements.lock      the RUNTIME closure (no extras): what the image and the Dockerfile
#                          install (hack/image/build.sh, Dockerfile), with sha256 hashes
#   requirements-dev.lock  runtime + the `test` extra: what `make venv` installs, with hashes;
#                          constrained by requirements.lock so both pin the same versions
# Existing pins are kept unless UPGRADE=1 (uv prefers the versions already in an output file).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MLFOOTPRINT_CACHE:-$HOME/.cache/mlfootprint}"
UV_VERSION=0.13.9
UV_DIR="$CACHE/tools/uv-$UV_VERSION"
PYTHON="${PYTHON:-python3}"
if [[ ! -x "$UV_DIR/bin/uv" ]]; then
  echo "[lock] installing uv $UV_VERSION into $UV_DIR" >&2
  "$PYTHON" -m venv "$UV_DIR"
  "$UV_DIR/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
uv=("$UV_DIR/bin/uv" pip compile pyproject.toml --python-version 3.11 --generate-hashes --quiet)
if [[ "${UPGRADE:-0}" == 1 ]]; then uv+=(--upgrade); fi
"${uv[@]}" -o requirements.lock \
  --custom-compile-command "make lock   # runtime closure: the image and the Dockerfile install this"
"${uv[@]}" --extra test -c requirements.lock -o requirements-dev.lock \
  --custom-compile-command "make lock   # runtime + test tools: make venv installs this"
echo "[lock] wrote requirements.lock ($(grep -c '==' requirements.lock) packages) and requirements-dev.lock ($(grep -c '==' requirements-dev.lock) packages)" >&2

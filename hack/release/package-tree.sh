#!/usr/bin/env bash
# package-tree.sh SRC DEST: copies what the package build reads from the source tree SRC
# (pyproject.toml, README.md, LICENSE, src/; no __pycache__, *.egg-info or build leftovers) into
# DEST, so that every wheel or sdist is built in a tree of its own: setuptools writes
# src/*.egg-info, build/ and the sdist's staging directory into the tree it builds, and `make
# test` builds the dist and the image at the same time (hack/release/dist.sh, hack/image/build.sh).
set -euo pipefail
src="$1" dest="$2"
mkdir -p "$dest"
tar -C "$src" --exclude='__pycache__' --exclude='*.egg-info' --exclude='*.pyc' \
  -cf - pyproject.toml README.md LICENSE src | tar -C "$dest" -xf -

#!/usr/bin/env bash
# Build the book offline into _build/html; every Sphinx warning is an error.
# Run from anywhere (it changes to the repository root). Needs: pip install -e ".[book]".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jupyter-book build . -n -W --keep-going

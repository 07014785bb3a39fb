#!/usr/bin/env bash
# Build the book offline into _build/html; every Sphinx warning is an error.
# Run from anywhere (it changes to the repository root). Needs: pip install --no-deps -r requirements-book.txt
# (what `make book` installs into .venv-book; the build never imports zfcore, so torch is not needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jupyter-book build . -n -W --keep-going

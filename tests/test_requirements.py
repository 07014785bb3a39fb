"""The pinned environments: `make book`'s light pins are the CI pins of the same packages, and hold no torch."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.static  # needs no dataset

ROOT = Path(__file__).resolve().parents[1]


def pins(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    found = [re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip()) for line in lines
             if line.strip() and not line.startswith("#")]
    assert all(found), f"{name}: every line is an exact pin 'name==version'"
    return {match.group(1).lower().replace("_", "-"): match.group(2) for match in found}


def test_book_pins_are_the_ci_pins_and_need_no_torch() -> None:
    book, ci = pins("requirements-book.txt"), pins("requirements-ci.txt")
    assert "jupyter-book" in book and "sphinxcontrib-bibtex" in book
    assert not {"torch", "torchvision", "zfcore"} & set(book), "make book must not install torch or zfcore"
    different = {name: (version, ci.get(name)) for name, version in book.items() if ci.get(name) != version}
    assert not different, f"requirements-book.txt and requirements-ci.txt pin these differently: {different}"


def test_the_book_build_imports_nothing_of_zfcore() -> None:
    # the reason `make book` can skip torch: neither the Sphinx extension nor the config imports zfcore
    extension = ast.parse((ROOT / "book" / "_ext" / "zfbook_offline.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(extension) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(extension)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "zfcore" not in imported and "torch" not in imported
    assert (ROOT / "_config.yml").read_text().count('execute_notebooks: "off"') == 1

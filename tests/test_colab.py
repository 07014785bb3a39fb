"""Colab: one setup cell, safe after a runtime restart; one repository URL; paths through zfcore; short code cells;
the widgets check."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from zfcore import paths, weights, widgets  # noqa: E402
from zfcore.paths import REPOSITORY_BRANCH, REPOSITORY_ROOT, REPOSITORY_URL  # noqa: E402

pytestmark = pytest.mark.static  # needs no dataset

NOTEBOOKS = sorted((REPOSITORY_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CLONE = "/content/zfbook"


def _cells(notebook: Path, kind: str = "code") -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
            if cell["cell_type"] == kind]


def _setup_cell(notebook: Path) -> str:
    return _cells(notebook)[0]


def test_every_notebook_has_the_same_setup_cell_naming_the_repository() -> None:
    assert len(NOTEBOOKS) == 10
    cells = {notebook.name: _setup_cell(notebook) for notebook in NOTEBOOKS}
    first = cells[NOTEBOOKS[0].name]
    different = [name for name, cell in cells.items() if cell != first]
    assert not different, f"the setup cell of {different} differs from {NOTEBOOKS[0].name}'s: keep them identical"
    assert "google.colab" in first and f'"{REPOSITORY_URL}"' in first, "the setup cell must clone zfcore.paths.REPOSITORY_URL"
    assert ".." not in first
    compile(first, NOTEBOOKS[0].name, "exec")


def test_the_repository_is_one_setting() -> None:
    config = (REPOSITORY_ROOT / "_config.yml").read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n)+)", config, re.MULTILINE)
    assert block, "_config.yml has no repository: block"
    settings = dict(re.findall(r"^\s+(\w+):\s*(\S+)", block.group(1), re.MULTILINE))
    assert settings["url"] == REPOSITORY_URL, "_config.yml's repository.url and zfcore.paths.REPOSITORY_URL differ"
    assert settings["branch"] == REPOSITORY_BRANCH
    assert REPOSITORY_URL.startswith("https://github.com/") and REPOSITORY_URL.count("/") == 4
    owner_and_name = REPOSITORY_URL.removeprefix("https://github.com/")
    assert weights.REFERENCE_URL == paths.raw_url("data/reference") == (
        f"https://raw.githubusercontent.com/{owner_and_name}/{REPOSITORY_BRANCH}/data/reference")


def _project_texts() -> dict[str, str]:
    """What a reader or a user sees of the project: docs, config, code, the notebooks' cells (not their outputs)."""
    files = [REPOSITORY_ROOT / name for name in ("README.md", "ARCHITECTURE.md", "_config.yml", "_toc.yml",
                                                 "pyproject.toml", "Makefile")]
    files += sorted((REPOSITORY_ROOT / "book").glob("**/*.md")) + sorted((REPOSITORY_ROOT / "zfcore").glob("**/*.py"))
    texts = {str(path.relative_to(REPOSITORY_ROOT)): path.read_text(encoding="utf-8") for path in files if path.is_file()}
    for notebook in NOTEBOOKS:
        texts[f"notebooks/{notebook.name}"] = "\n".join(_cells(notebook, "code") + _cells(notebook, "markdown"))
    return texts


def test_every_copy_of_the_repository_url_is_the_setting() -> None:
    """A copy that cannot import zfcore (Markdown, the setup cell, _config.yml) must spell REPOSITORY_URL exactly."""
    owner, name = REPOSITORY_URL.removeprefix("https://github.com/").split("/")
    link = re.compile(r"(?:github\.com|githubusercontent\.com)/([\w.-]+)/([\w.-]+)")
    stale = [f"{path}: {found[0]}/{found[1]}" for path, text in _project_texts().items()
             for found in link.findall(text)
             if {"zfbook", owner, name} & {found[0], found[1].removesuffix(".git")} and
             (found[0], found[1].removesuffix(".git")) != (owner, name)]
    assert not stale, f"GitHub URLs of this project that are not zfcore.paths.REPOSITORY_URL: {stale}"
    intro = (REPOSITORY_ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    assert intro.count(REPOSITORY_URL) >= 2  # the clone command and the citation


def test_notebooks_find_data_through_zfcore() -> None:
    """No chapter relies on its working folder: data and results come from zfcore.paths (or zfcore.book)."""
    relative = re.compile(r"""["']\.\.(?:/|["'])|["']data/""")
    found = [f"{notebook.name}: {line.strip()}" for notebook in NOTEBOOKS for cell in _cells(notebook)
             for line in cell.splitlines() if relative.search(line)]
    assert not found, f"relative data paths in notebooks (use zfcore.paths): {found}"
    assert (paths.ANNOTATIONS_DIR / "dog_parts.json").is_file() and (paths.EXPERIMENTS_DIR / "paper-init.csv").is_file()


MAX_CELL_LINES = 10
"""The longest code cell a chapter may have: anything longer is logic, and belongs in zfcore with its tests."""


def test_code_cells_are_short_and_the_logic_is_in_zfcore() -> None:
    lengths = {f"{notebook.name} code cell {index + 1}": len(cell.splitlines())
               for notebook in NOTEBOOKS for index, cell in enumerate(_cells(notebook))}
    long = {cell: lines for cell, lines in lengths.items() if lines > MAX_CELL_LINES}
    assert not long, f"code cells over {MAX_CELL_LINES} lines (move the logic into zfcore, or split at a step): {long}"


class _Colab:
    """The parts of a Colab runtime the setup cell touches: the clone folder, the install, the working folder."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, cloned: bool, installed: bool) -> None:
        self.cloned, self.installed, self.commands, self.folder = cloned, installed, [], None
        isdir, find_spec = os.path.isdir, importlib.util.find_spec
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
        monkeypatch.setattr(sys, "path", list(sys.path))
        monkeypatch.setattr(os.path, "isdir", lambda path: self.cloned if str(path) == CLONE else isdir(path))
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *args: (object() if self.installed else None) if name == "zfcore"
                            else find_spec(name, *args))
        monkeypatch.setattr(subprocess, "run", self.run)
        monkeypatch.setattr(os, "chdir", lambda folder: setattr(self, "folder", str(folder)))

    def run(self, command, check=False, **kwargs):
        self.commands.append(command[:2] if command[0] == "git" else command[1:4])
        if command[:2] == ["git", "clone"]:
            assert command[-2:] == [REPOSITORY_URL, CLONE] and check
            self.cloned = True
        else:
            assert command[-2:] == ["-e", CLONE] and check
            self.installed = True
        return subprocess.CompletedProcess(command, 0)


@pytest.mark.parametrize(("cloned", "installed", "commands"), [
    (False, False, [["git", "clone"], ["-m", "pip", "install"]]),  # a fresh runtime
    (True, True, []),  # after a runtime restart (or running the cell again): nothing is fetched or installed
    (True, False, [["-m", "pip", "install"]]),  # the first run stopped after the clone
], ids=["fresh", "restarted", "install-interrupted"])
def test_the_setup_cell_always_works_from_the_clone(monkeypatch: pytest.MonkeyPatch, cloned: bool, installed: bool,
                                                      commands: list[list[str]]) -> None:
    colab = _Colab(monkeypatch, cloned=cloned, installed=installed)
    exec(compile(_setup_cell(NOTEBOOKS[0]), "setup cell", "exec"), {})
    assert colab.commands == commands
    assert colab.folder == f"{CLONE}/notebooks" and sys.path[0] == CLONE
    assert (REPOSITORY_ROOT / "notebooks").is_dir()  # the folder the cell moves to, in the clone


def test_the_setup_cell_does_nothing_outside_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    colab = _Colab(monkeypatch, cloned=False, installed=False)
    monkeypatch.delitem(sys.modules, "google.colab")
    before = list(sys.path)
    exec(compile(_setup_cell(NOTEBOOKS[0]), "setup cell", "exec"), {})
    assert colab.commands == [] and colab.folder is None and sys.path == before


def _render(value: int):
    return plt.figure()


@pytest.mark.parametrize("found", ["7.7.1", "6.0.0", "unknown"])
def test_an_old_ipywidgets_is_one_line_with_the_fix(monkeypatch: pytest.MonkeyPatch, found: str) -> None:
    ipywidgets = pytest.importorskip("ipywidgets")
    monkeypatch.setattr(ipywidgets, "__version__", found)
    with pytest.raises(widgets.WidgetsVersionError) as info:
        widgets.explorer(_render, value=(0, 3))
    message = str(info.value)
    assert "\n" not in message and f"found {found}" in message
    assert 'pip install -U "ipywidgets>=8"' in message and "restart the runtime" in message
    assert isinstance(info.value, ImportError)


def test_a_missing_ipywidgets_is_the_same_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    with pytest.raises(widgets.WidgetsVersionError, match=r'found none: run pip install -U "ipywidgets>=8"'):
        widgets.explorer(_render, value=(0, 3))


def test_a_current_ipywidgets_builds_the_explorer(monkeypatch: pytest.MonkeyPatch) -> None:
    ipywidgets = pytest.importorskip("ipywidgets")
    monkeypatch.setattr(ipywidgets, "__version__", "8.1.5")
    try:
        assert isinstance(widgets.explorer(_render, value=(0, 3)), ipywidgets.interactive)
    finally:
        plt.close("all")

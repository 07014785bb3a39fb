"""ARCHITECTURE.md stays true: every zfcore module imports only the zfcore modules its row allows, and only their
public names; every allowance is used.

The imports are read with :mod:`ast`, in every form: ``import zfcore.x``, ``from zfcore.x import y``,
``from zfcore import x`` (a module, or a name of ``zfcore/__init__.py``), relative imports (``from . import x``,
``from .store import y``, ``from ..models import z``) and imports inside functions. Each is resolved to the
module it loads, named as in the table (``analysis.top9``, ``data.__init__`` for the names of a package).
These tests read source files only: they need no data set.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.static  # needs no dataset

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zfcore"
ROW = re.compile(r"^\| `zfcore/(?P<path>[\w/]+)\.py` \|[^|]*\| (?P<allowed>[^|]*) \|$")


@dataclass(frozen=True)
class Import:
    """One zfcore module that a source file loads: ``module`` as the table names it, ``name`` taken from it
    (``None`` for the module itself), and the line."""

    module: str
    name: str | None
    line: int


def allowed_imports() -> dict[str, str]:
    """module -> its "may import (zfcore)" cell, from ARCHITECTURE.md's table."""
    rows = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        if match := ROW.match(line):
            rows[match["path"].replace("/", ".")] = match["allowed"]
    return rows


def module_names() -> set[str]:
    """Every module of zfcore as the table names it: ``models``, ``analysis.top9``, ``data.__init__``, ``__init__``."""
    return {str(path.relative_to(PACKAGE).with_suffix("")).replace("/", ".") for path in PACKAGE.rglob("*.py")}


def _join(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def _resolve(dotted: str, modules: set[str]) -> str:
    """A dotted name under zfcore (``""`` for zfcore itself) -> the module that importing it runs."""
    if dotted in modules and not dotted.endswith("__init__"):
        return dotted
    package = _join(dotted, "__init__")
    return package if package in modules else dotted  # an unknown name stays as it is, and matches no row


def _package_of(module: str) -> str:
    """The package a module's relative imports start from: ``analysis.top9`` -> ``analysis``, ``data.__init__`` -> ``data``."""
    parts = module.split(".")
    return ".".join(parts[:-1])


def _is_module(dotted: str, modules: set[str]) -> bool:
    return dotted in modules or _join(dotted, "__init__") in modules


def _from_base(node: ast.ImportFrom, module: str) -> str | None:
    """The zfcore name (dotted, ``""`` for zfcore) that a ``from ... import`` in ``module`` reads from; ``None`` outside zfcore."""
    if node.level:
        base = _package_of(module).split(".") if _package_of(module) else []
        if node.level - 1 > len(base):
            raise ValueError(f"zfcore/{module}: line {node.lineno} imports from above the zfcore package")
        return _join(*base[: len(base) - (node.level - 1)], node.module or "")
    if node.module == "zfcore" or (node.module or "").startswith("zfcore."):
        return node.module.removeprefix("zfcore").lstrip(".")
    return None


def zfcore_imports(source: str, module: str, modules: set[str]) -> list[Import]:
    """The zfcore modules that ``source`` (the file of ``module``) imports, and the names it takes from each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "zfcore" or alias.name.startswith("zfcore."):
                    dotted = alias.name.removeprefix("zfcore").lstrip(".")
                    found.append(Import(_resolve(dotted, modules), None, node.lineno))
        elif isinstance(node, ast.ImportFrom) and (dotted := _from_base(node, module)) is not None:
            for alias in node.names:
                if alias.name != "*" and _is_module(_join(dotted, alias.name), modules):
                    found.append(Import(_resolve(_join(dotted, alias.name), modules), None, node.lineno))
                else:
                    found.append(Import(_resolve(dotted, modules), alias.name, node.lineno))
    return found


def private_uses(source: str, module: str, modules: set[str]) -> list[str]:
    """``module.name`` for each private name (``_name``, not ``__dunder__``) that ``source`` takes from another
    zfcore module: imported by name, or read as an attribute of an imported module."""

    def private(name: str | None) -> bool:
        return bool(name) and name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    tree = ast.parse(source)
    uses = [f"{item.module}.{item.name}" for item in zfcore_imports(source, module, modules)
            if private(item.name) and item.module != module]
    bound: dict[str, str] = {}  # a local name -> the zfcore module it names (dotted; "" for zfcore)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "zfcore" or alias.name.startswith("zfcore."):
                    if alias.asname:
                        bound[alias.asname] = alias.name.removeprefix("zfcore").lstrip(".")
                    else:
                        bound["zfcore"] = ""
        elif isinstance(node, ast.ImportFrom) and (dotted := _from_base(node, module)) is not None:
            for alias in node.names:
                if alias.name != "*" and _is_module(_join(dotted, alias.name), modules):
                    bound[alias.asname or alias.name] = _join(dotted, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                target = _join(bound[value.id], *chain)
                if _is_module(target, modules) and _resolve(target, modules) != module:
                    uses.append(f"{_resolve(target, modules)}.{node.attr}")
    return sorted(set(uses))


def permitted(imported: str, allowed: str) -> bool:
    if allowed.strip() == "everything":
        return True
    names = re.findall(r"`([\w.*]+)`", allowed)
    return any(imported == name or (name.endswith(".*") and imported.startswith(name[:-1])) for name in names)


def violations(module: str, source: str, allowed: str, modules: set[str]) -> list[str]:
    """What ``module``'s ``source`` breaks: imports its row does not allow, and private names of other modules."""
    path = f"zfcore/{module.replace('.', '/')}.py"
    wrong = [f"{path}:{item.line} imports zfcore.{item.module or '__init__'}"
             for item in zfcore_imports(source, module, modules)
             if item.module != module and not permitted(item.module, allowed)]
    wrong += [f"{path} uses the private name zfcore.{name}" for name in private_uses(source, module, modules)]
    return sorted(set(wrong))


def unused_allowances(module: str, source: str, allowed: str, modules: set[str]) -> list[str]:
    """The entries of ``module``'s "may import" cell that no import of ``source`` uses."""
    if allowed.strip() == "everything":
        return []
    used = {item.module for item in zfcore_imports(source, module, modules)} - {module}
    return [name for name in re.findall(r"`([\w.*]+)`", allowed)
            if not any(imported == name or (name.endswith(".*") and imported.startswith(name[:-1]))
                       for imported in used)]


def _source(module: str) -> str:
    return (PACKAGE / (module.replace(".", "/") + ".py")).read_text()


# -- the table against the code -----------------------------------------------------------------------------------


def test_every_module_has_a_row_and_every_row_a_module() -> None:
    rows, modules = allowed_imports(), module_names()
    assert modules == set(rows), f"missing rows: {modules - set(rows)}; rows without a module: {set(rows) - modules}"


def test_imports_follow_the_table() -> None:
    modules = module_names()
    wrong = [line for module, allowed in allowed_imports().items() if module in modules
             for line in violations(module, _source(module), allowed, modules)]
    assert not wrong, "imports that ARCHITECTURE.md does not allow:\n" + "\n".join(wrong)


def test_every_allowance_is_used() -> None:
    modules = module_names()
    stale = [f"zfcore/{module.replace('.', '/')}.py may import `{name}` but does not"
             for module, allowed in allowed_imports().items() if module in modules
             for name in unused_allowances(module, _source(module), allowed, modules)]
    assert not stale, "allowances in ARCHITECTURE.md that no import uses (drop them):\n" + "\n".join(stale)


# -- the checker itself ---------------------------------------------------------------------------------------------

MODULES = {"__init__", "__main__", "book", "models", "store", "checks", "analysis.__init__", "analysis.top9",
           "analysis.sanity", "analysis.journal", "data.__init__", "data.loader", "data.images"}


@pytest.mark.parametrize("module, source, expected", [
    ("analysis.sanity", "from zfcore import book", {("book", None)}),
    ("analysis.sanity", "from .. import book", {("book", None)}),
    ("analysis.sanity", "from . import top9, journal", {("analysis.top9", None), ("analysis.journal", None)}),
    ("analysis.sanity", "from .top9 import TopActivations", {("analysis.top9", "TopActivations")}),
    ("analysis.sanity", "from ..models import zfnet", {("models", "zfnet")}),
    ("analysis.sanity", "from ..data.loader import normalize", {("data.loader", "normalize")}),
    ("analysis.sanity", "from zfcore import zfnet", {("__init__", "zfnet")}),
    ("analysis.sanity", "import zfcore.data.loader as loader", {("data.loader", None)}),
    ("analysis.sanity", "import zfcore", {("__init__", None)}),
    ("analysis.sanity", "def f():\n    from zfcore.store import cached\n", {("store", "cached")}),
    ("analysis.sanity", "import numpy\nfrom torch import nn\nfrom .missing import x", {("analysis.missing", "x")}),
    ("data.__init__", "from .loader import normalize\nfrom . import images", {("data.loader", "normalize"),
                                                                               ("data.images", None)}),
    ("book", "from zfcore.data import normalize", {("data.__init__", "normalize")}),
    ("book", "from . import models", {("models", None)}),
    ("models", "from .checks import check_whole", {("checks", "check_whole")}),
])
def test_the_parser_resolves_every_kind_of_import(module, source, expected) -> None:
    assert {(item.module, item.name) for item in zfcore_imports(source, module, MODULES)} == expected


def test_the_checker_catches_a_forbidden_import() -> None:
    assert not permitted("train", "`checkpoints`, `models`")
    assert permitted("data.loader", "`data.*`, `profiles`")
    assert not permitted("datasets", "`data.*`")
    allowed = "`deconv`, `models`"
    for source, line in (("from zfcore import book", 1), ("from .. import book", 1), ("import zfcore.book", 1),
                         ("import torch\ndef f():\n    from ..book import probe_images\n", 3)):
        assert violations("analysis.sanity", source, allowed, MODULES) == [
            f"zfcore/analysis/sanity.py:{line} imports zfcore.book"]
    assert violations("analysis.sanity", "from zfcore import zfnet", allowed, MODULES) == [
        "zfcore/analysis/sanity.py:1 imports zfcore.__init__"]
    assert violations("analysis.sanity", "from ..models import zfnet\nfrom . import top9", "`models`", MODULES) == [
        "zfcore/analysis/sanity.py:2 imports zfcore.analysis.top9"]
    assert violations("analysis.sanity", "from .sanity import x", "nothing", MODULES) == []  # itself


@pytest.mark.parametrize("source, expected", [
    ("from zfcore.analysis.top9 import _check_positive", ["analysis.top9._check_positive"]),
    ("from .top9 import check, _conv_layers as layers", ["analysis.top9._conv_layers"]),
    ("from zfcore import models\nmodels._check_int('n', 1)", ["models._check_int"]),
    ("from .. import models as m\nm._build", ["models._build"]),
    ("import zfcore.models\nzfcore.models._build", ["models._build"]),
    ("import zfcore.analysis.top9 as top9\ntop9._conv_layers", ["analysis.top9._conv_layers"]),
    ("from . import top9\ntop9.content_digest(x)\ntop9.__name__", []),
    ("from .sanity import _mean_std", []),  # its own private names
    ("from torch import _C\nself._private", []),
])
def test_the_checker_catches_private_names(source, expected) -> None:
    assert private_uses(source, "analysis.sanity", MODULES) == expected


def test_the_checker_finds_unused_allowances() -> None:
    source = "from zfcore.models import zfnet\nfrom zfcore.data.loader import normalize"
    assert unused_allowances("book", source, "`data.*`, `models`, `store`", MODULES) == ["store"]
    assert unused_allowances("book", source, "`models`, `data.loader`", MODULES) == []
    assert unused_allowances("book", source, "`data.*`, `analysis.*`", MODULES) == ["analysis.*"]
    assert unused_allowances("__main__", "", "everything", MODULES) == []
    assert unused_allowances("checks", "import torch", "nothing", MODULES) == []

"""ARCHITECTURE.md stays true: every zfcore module imports only the zfcore modules its row allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `zfcore/(?P<path>[\w/]+)\.py` \|[^|]*\| (?P<allowed>[^|]*) \|$")


def allowed_imports() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        if match := ROW.match(line):
            rows[match["path"].replace("/", ".")] = match["allowed"]
    return rows


def zfcore_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zfcore"):
            found.add(node.module.removeprefix("zfcore").lstrip("."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("zfcore").lstrip(".") for a in node.names if a.name.startswith("zfcore."))
    found.discard("")
    return found


def permitted(imported: str, allowed: str) -> bool:
    if allowed.strip() == "everything":
        return True
    names = re.findall(r"`([\w.*]+)`", allowed)
    return any(imported == name or (name.endswith(".*") and imported.startswith(name[:-1])) for name in names)


def test_every_module_has_a_row_and_every_row_a_module() -> None:
    rows = allowed_imports()
    modules = {str(p.relative_to(ROOT / "zfcore").with_suffix("")).replace("/", ".")
               for p in (ROOT / "zfcore").rglob("*.py")}
    assert modules == set(rows), f"missing rows: {modules - set(rows)}; rows without a module: {set(rows) - modules}"


def test_imports_follow_the_table() -> None:
    rows = allowed_imports()
    wrong = []
    for module, allowed in rows.items():
        path = ROOT / "zfcore" / (module.replace(".", "/") + ".py")
        for imported in sorted(zfcore_imports(path)):
            own_package = module.startswith("data.") and imported.startswith("data.") and module == "data.__init__"
            if imported != module and not own_package and not permitted(imported, allowed):
                wrong.append(f"zfcore/{module.replace('.', '/')}.py imports zfcore.{imported}")
    assert not wrong, "imports that ARCHITECTURE.md does not allow:\n" + "\n".join(wrong)


def test_the_checker_catches_a_forbidden_import() -> None:
    assert not permitted("train", "`checkpoints`, `models`")
    assert permitted("data.loader", "`data.*`, `profiles`")
    assert not permitted("datasets", "`data.*`")

"""zfcore.provenance: results name the clean commit, command, data digest and device that produced them, and the
committed results files come from committed code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import zfcore.provenance as provenance_module
from zfcore.paths import EXPERIMENTS_DIR
from zfcore.provenance import (DIRTY, RESULTS_METADATA_KEY, DirtyTreeError, code_version, provenance, read_committed,
                               refuse_dirty)
from zfcore.store import command_line, sha256
from zfcore.transfer_run import write_results
from zfcore.weights import ReferenceWeights

ROOT = Path(__file__).resolve().parents[1]

PUBLISHED_FROM_A_DIRTY_TREE: dict[str, str] = {}
"""Dirty code versions the repository still holds, each with the reason (none now: Fig. 6's GPU runs, the last,
were replaced by verdict runs at clean commits). The test below fails when one is no longer there, so this list
only shrinks."""


WHAT_PRODUCED_IT = ("code_version", "command", "data_sha256", "device")
"""What a results file records of the run that wrote it (:func:`zfcore.provenance.provenance`). A run of an
experiment records its code version, data digest (``dataset_sha256``) and device; its command is the
experiment's (``python -m zfcore experiment NAME``) with the run's recorded config."""

LACKING_WHAT_PRODUCED_IT = {
    "data/benchmarks/gpu_check-h100.json":
        "the last GPU check, run before bench/gpu_check.py recorded the code version and command; the next GPU "
        "check replaces it",
}
"""Committed results files that do not record all of :data:`WHAT_PRODUCED_IT`, each with the reason. The test
below fails when one is complete again, so this list only shrinks."""


def missing_provenance(value: dict) -> list[str]:
    """What a results file (or each run of an experiment's file) does not record of :data:`WHAT_PRODUCED_IT`."""
    if "experiment" in value and "runs" in value:
        wanted = ("code_version", "dataset_sha256", "device")
        return sorted({f"runs.{name}.{field}" for name, run in value["runs"].items() for field in wanted
                       if not run.get(field)})
    return [field for field in WHAT_PRODUCED_IT if field not in value or (field != "data_sha256" and not value[field])]


def test_every_committed_result_says_what_produced_it() -> None:
    lacking = {}
    for path in committed_results():
        name = path.relative_to(ROOT).as_posix()
        if path.suffix == ".json" and name.startswith(("data/experiments/", "data/benchmarks/")):
            missing = missing_provenance(json.loads(path.read_text()))
            if missing:
                lacking[name] = missing
    unexplained = {name: missing for name, missing in lacking.items() if name not in LACKING_WHAT_PRODUCED_IT}
    assert not unexplained, f"results that do not say what produced them: {unexplained}"
    stale = set(LACKING_WHAT_PRODUCED_IT) - set(lacking)
    assert not stale, f"complete now, drop from the list: {stale}"


def test_a_missing_provenance_field_is_found() -> None:
    complete = {"code_version": "a" * 40, "command": "python -m zfcore transfer", "data_sha256": None, "device": "cpu"}
    assert missing_provenance(complete) == []
    assert missing_provenance({**complete, "device": ""}) == ["device"]
    assert missing_provenance({"code_version": "a" * 40}) == ["command", "data_sha256", "device"]
    runs = {"experiment": "e", "runs": {"one": {"code_version": "a", "dataset_sha256": "b", "device": "cpu"},
                                        "two": {"code_version": "a", "device": "cpu"}}}
    assert missing_provenance(runs) == ["runs.two.dataset_sha256"]


def is_dirty(version: str) -> bool:
    """A code version made from uncommitted changes: ``...+dirty``, or said in words."""
    return version.endswith(DIRTY) or "uncommitted" in version


def test_a_dirty_version_in_words_is_dirty() -> None:
    assert is_dirty("409536a" + DIRTY) and is_dirty("4a63143 (trained from its parent with its changes uncommitted)")
    assert not is_dirty("4a63143d" * 5)


def code_versions(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every ``code_version`` / ``code_versions`` value inside a JSON value, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "code_version" and isinstance(item, str):
                yield f"{where}.{key}".lstrip("."), item
            elif key == "code_versions" and isinstance(item, list):
                yield from ((f"{where}.{key}".lstrip("."), str(version)) for version in item)
            else:
                yield from code_versions(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from code_versions(item, f"{where}[{index}]")


def committed_results() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in listed.split() if name.endswith((".json", ".jsonl"))]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_every_committed_result_names_a_clean_commit() -> None:
    dirty = {}
    for path in committed_results():
        name = path.relative_to(ROOT).as_posix()
        if path.suffix == ".jsonl":
            values = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            found = [(f"line {index + 1}.{where}", version) for index, value in enumerate(values)
                     for where, version in code_versions(value, "")]
        else:
            found = list(code_versions(json.loads(path.read_text()), ""))
        for where, version in found:
            if is_dirty(version):
                dirty.setdefault(f"{name} {where.replace('.code_versions', '.code_version')}", version)
    unexplained = {where: version for where, version in dirty.items() if where not in PUBLISHED_FROM_A_DIRTY_TREE}
    assert not unexplained, f"results from uncommitted code: {unexplained}"
    stale = set(PUBLISHED_FROM_A_DIRTY_TREE) - set(dirty)
    assert not stale, f"no longer dirty, drop from the list: {stale}"


def test_the_published_networks_name_their_code() -> None:
    for member in ReferenceWeights:
        version = str(member.value.load().meta.get("code_version", "unknown"))
        assert version != "unknown" and not version.endswith(DIRTY), (member.name, version)


def test_a_dirty_result_is_refused_inside_the_repository_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(provenance_module, "REPOSITORY_ROOT", tmp_path / "repo")
    inside = tmp_path / "repo" / "data" / "x.json"
    with pytest.raises(DirtyTreeError, match=r"uncommitted changes, and .*x\.json is tracked.*--allow-dirty"):
        refuse_dirty(inside, allow_dirty=False, version="abc" + DIRTY)
    assert refuse_dirty(inside, allow_dirty=True, version="abc" + DIRTY) == "abc" + DIRTY
    assert refuse_dirty(inside, allow_dirty=False, version="abc") == "abc"
    assert refuse_dirty(tmp_path / "elsewhere.json", allow_dirty=False, version="abc" + DIRTY) == "abc" + DIRTY


def test_a_record_says_what_produced_it(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(ROOT / "zfcore" / "__main__.py"), "transfer", "--what", "probes",
                                      "--out", "a folder"])
    record = provenance(data_sha256="d" * 64, device="cpu: test")
    assert record["command"] == "python -m zfcore transfer --what probes --out 'a folder'" == command_line()
    assert record["code_version"] == code_version() and record["data_sha256"] == "d" * 64
    assert record["device"] == "cpu: test" and record["recorded"].endswith("+00:00")


def test_transfer_results_from_a_dirty_tree_are_refused_unless_allowed(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(provenance_module, "REPOSITORY_ROOT", tmp_path / "repo")
    dirty = {"probes": {"code_version": "abc" + DIRTY}}
    outside = write_results(dirty, tmp_path / "outside")  # not tracked: written, its code version saying so
    assert "allow_dirty" not in json.loads(outside[0].read_text())
    results = {**dirty, "transfer": {"code_version": "abc"}}
    with pytest.raises(DirtyTreeError):
        write_results(results, tmp_path / "repo" / "out")
    assert not (tmp_path / "repo" / "out").exists()  # nothing written, not even the clean part
    written = write_results(results, tmp_path / "repo" / "out", allow_dirty=True)
    saved = {path.name: json.loads(path.read_text()) for path in written}
    assert saved["probes.json"]["allow_dirty"] is True and "allow_dirty" not in saved["transfer.json"]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(notebook: Path) -> list[dict]:
    return [cell for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]


def shown_digests(cell: dict) -> dict[str, str]:
    return {name: digest for output in cell.get("outputs", [])
            for name, digest in output.get("metadata", {}).get(RESULTS_METADATA_KEY, {}).items()}


def test_stored_outputs_were_made_from_the_committed_results() -> None:
    """A chapter's stored outputs name the digest of each results file they were made from: it must be the
    committed file's (else re-run the chapter under the book profile)."""
    shown = 0
    for notebook in NOTEBOOKS:
        for cell in code_cells(notebook):
            for name, digest in shown_digests(cell).items():
                shown += 1
                path = EXPERIMENTS_DIR / name
                assert path.is_file(), f"{notebook.name} shows results of {name}, which is not committed"
                assert sha256(path) == digest, (f"{notebook.name} shows outputs made from another {name} than the "
                                                f"committed one: run it again under the book profile")
    assert shown >= 8  # 08 (ablations, verdict runs) and 09 (transfer, probes, cv layer, duplicates, controls)


def test_chapters_read_committed_results_only_through_read_committed() -> None:
    for notebook in NOTEBOOKS:
        for cell in code_cells(notebook):
            source = "".join(cell["source"])
            assert "json.loads((RESULTS_DIR" not in source and "json.loads((EXPERIMENTS_DIR" not in source, notebook.name
            # the runner's status reads the results file too, but shows no digest: a stale output would pass
            assert "experiment_status(" not in source, f"{notebook.name}: read the verdict runs with read_committed"
            if "read_committed(" in source or "book.transfer_results(" in source:
                assert shown_digests(cell), f"{notebook.name}: a cell reads committed results without showing them"


def test_read_committed_names_each_file_and_refuses_a_missing_one(tmp_path) -> None:
    (tmp_path / "runs-1").mkdir()
    (tmp_path / "runs-1" / "a.json").write_text('{"code_version": "0123456789abc"}')
    (tmp_path / "b.json").write_text('{"rows": []}')
    results = read_committed("b.json", "runs-*/a.json", folder=tmp_path)
    assert results["b.json"] == {"rows": []} and results.matching("runs-*/a.json") == {"runs-1/a.json":
                                                                                      {"code_version": "0123456789abc"}}
    bundle, metadata = results._repr_mimebundle_()
    assert "`runs-1/a.json` (code 0123456" in bundle["text/markdown"]
    assert metadata[RESULTS_METADATA_KEY] == {"b.json": sha256(tmp_path / "b.json"),
                                              "runs-1/a.json": sha256(tmp_path / "runs-1" / "a.json")}
    with pytest.raises(FileNotFoundError, match=r"no results file 'c\.json' in .*run the command"):
        read_committed("b.json", "c.json", folder=tmp_path)

"""The scorecard page and the chapters agree: the page is generated from the saved verdicts, and every saved verdict
is the one its chapter's stored outputs show.

A chapter run under the ``book`` profile saves each verdict it shows (``zfcore.book.verdict``) in
``data/verdicts/<claim>.json`` and keeps the same record in the output's metadata; ``python -m zfcore
scorecard`` writes ``book/scorecard.md`` from the saved records. These tests read files only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zfcore.__main__ import main
from zfcore.verdicts import CLAIMS, METADATA_KEY, SCORECARD_PAGE, recorded, scorecard

pytestmark = pytest.mark.static  # needs no dataset

ROOT = Path(__file__).resolve().parents[1]


def shown_verdicts(notebook: Path) -> list[dict]:
    """The verdict records in a notebook's stored outputs."""
    cells = json.loads(notebook.read_text())["cells"]
    return [output["metadata"][METADATA_KEY] for cell in cells if cell["cell_type"] == "code"
            for output in cell.get("outputs", ()) if METADATA_KEY in output.get("metadata", {})]


def opening_boxes(notebook: Path) -> str:
    """The text of a chapter's "Paper vs ours" boxes."""
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells
                     if cell["cell_type"] == "markdown" and "Paper vs ours" in "".join(cell["source"]))


def test_the_scorecard_page_is_generated_from_the_saved_verdicts() -> None:
    assert SCORECARD_PAGE.read_text() == scorecard(recorded()), "run: python -m zfcore scorecard"
    assert "book/scorecard" in (ROOT / "_toc.yml").read_text()


def test_every_saved_verdict_is_the_one_its_chapter_shows() -> None:
    for claim, verdict in recorded().items():
        notebook = ROOT / "notebooks" / f"{CLAIMS[claim].chapter}.ipynb"
        shown = [record for record in shown_verdicts(notebook) if record["claim"] == claim]
        assert shown == [verdict.as_dict()], (
            f"{notebook.name} shows {len(shown)} {claim} verdicts, and the last book run saved another: re-run "
            "the chapter under the book profile, then python -m zfcore scorecard")
        box = opening_boxes(notebook)
        assert re.search(rf"\b{claim}: {re.escape(verdict.outcome)}\b", box, re.IGNORECASE), (
            f"{notebook.name}'s Paper-vs-ours box does not say '{claim}: {verdict.outcome}'")


def test_every_verdict_a_chapter_shows_is_saved() -> None:
    saved = recorded()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for record in shown_verdicts(notebook):
            assert record["claim"] in saved, f"{notebook.name} shows a {record['claim']} verdict that is not saved"


def test_the_check_command_fails_on_an_out_of_date_page(tmp_path, monkeypatch, capsys) -> None:
    assert main(["scorecard", "--check"]) == 0
    page = tmp_path / "scorecard.md"
    page.write_text("# typed by hand\n")
    monkeypatch.setattr("zfcore.verdicts.SCORECARD_PAGE", page)
    assert main(["scorecard", "--check"]) == 1
    assert "is out of date: run python -m zfcore scorecard" in capsys.readouterr().err

"""zfcore.verdicts: the Verdict record, its checks, and how a chapter shows it."""

from __future__ import annotations

import json

import pytest

from zfcore.stats import bootstrap
from zfcore.verdicts import CLAIMS, METADATA_KEY, OUTCOMES, Verdict, pending, recorded, save, scorecard

pytestmark = pytest.mark.static  # needs no dataset


def verdict(**changes):
    values = dict(claim="C6", measure="p(true) outside minus inside the box, per image",
                  estimate=bootstrap([0.02, 0.05, 0.03, 0.04, 0.01]), control="a random box of the same size",
                  control_estimate=bootstrap([0.0, 0.01, -0.01, 0.0, 0.005]),
                  rule="agree if the interval excludes 0 and the control's does not", outcome="agree",
                  reason="the drop is real and the control shows none.")
    values.update(changes)
    return Verdict(**values)


def test_every_claim_has_words_a_source_and_a_chapter() -> None:
    assert [claim for claim in CLAIMS if claim.startswith("C")] == [f"C{n}" for n in range(1, 11)]
    for claim in CLAIMS.values():
        assert claim.words and claim.source and claim.chapter[:2].isdigit(), claim.id


def test_a_verdict_shows_claim_measure_control_rule_and_outcome_in_order() -> None:
    shown = verdict()._repr_markdown_()
    labels = [line.split("|")[1].strip() for line in shown.splitlines()[2:]]
    assert labels == ["**Claim**", "**Measure**", "**Control**", "**Rule**", "**Verdict**"]
    assert "§4.2, Fig. 7, C6" in shown and "**C6: agree.**" in shown and "95 % bootstrap percentile interval" in shown
    record = verdict().as_dict()
    assert json.loads(json.dumps(record)) == record and record["estimate"]["n"] == 5
    assert record["chapter"] == "06_occlusion"
    bundle, metadata = verdict()._repr_mimebundle_()
    assert bundle["text/markdown"] == shown and "Rule: agree if" in bundle["text/plain"]
    assert metadata == {METADATA_KEY: record}


def test_a_pipe_in_the_text_does_not_break_the_table() -> None:
    shown = verdict(measure="|a − b|")._repr_markdown_()
    assert all(line.count("|") - line.count("\\|") == 3 for line in shown.splitlines()[2:])


@pytest.mark.parametrize("changes, message", [
    ({"claim": "C11"}, r"claim='C11' is not valid; valid claims: \('C1'"),
    ({"outcome": "agrees"}, r"outcome='agrees' is not valid; valid outcomes: \('agree', 'partly', 'differ'"),
    ({"rule": " "}, "rule of the C6 verdict is empty"),
    ({"outcome": "inconclusive"}, "outcome='inconclusive' needs settle: say what would settle C6"),
    ({"outcome": "not testable here"}, "needs settle"),
])
def test_an_incomplete_verdict_is_refused(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        verdict(**changes)


def test_a_pending_verdict_states_its_rule_before_the_number() -> None:
    waiting = pending("C8", measure="val top-1 difference to the seed-0..2 mean", control="the dropout-0 run",
                      rule="real beyond the 28-epoch seed band", waiting_for="the verdict-runs no-fc6-fc7 run")
    assert waiting.outcome == "pending" and waiting.estimate is None
    assert "waiting for the verdict-runs no-fc6-fc7 run." in waiting._repr_markdown_()
    assert set(OUTCOMES) >= {"agree", "partly", "differ", "inconclusive", "not testable here", "pending"}


def test_a_saved_verdict_reads_back_equal_and_the_scorecard_lists_every_claim(tmp_path) -> None:
    first, second = verdict(), pending("C8", measure="m", control="c", rule="r", waiting_for="run 4")
    for record in (first, second):
        save(record, tmp_path)
    assert recorded(tmp_path) == {"C6": first, "C8": second}  # in the order of CLAIMS
    page = scorecard(recorded(tmp_path))
    rows = [line for line in page.splitlines() if line.startswith("| **")]
    assert [row.split("**")[1] for row in rows] == list(CLAIMS)
    assert "**agree**: the drop is real" in rows[5] and "{doc}`chapter 06 <../notebooks/06_occlusion>`" in rows[5]
    assert "**pending**: waiting for run 4." in rows[7] and "*not yet scored*" in rows[0]


def test_a_record_under_the_wrong_name_or_incomplete_is_refused(tmp_path) -> None:
    save(verdict(), tmp_path)
    (tmp_path / "C6.json").rename(tmp_path / "C7.json")
    with pytest.raises(ValueError, match=r"C7.json holds the verdict on C6; name it C6.json"):
        recorded(tmp_path)
    (tmp_path / "C7.json").write_text(json.dumps({"claim": "C7", "outcome": "agree"}))
    with pytest.raises(ValueError, match=r"C7.json is not a valid verdict record: a verdict record needs measure"):
        recorded(tmp_path)

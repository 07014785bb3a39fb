"""The book's verdicts on the paper's claims, as tested records: one :class:`Verdict` per claim.

Zeiler & Fergus (2014, arXiv 1311.2901) make ten claims that the book re-tests (C1-C10), and its critics
make more (Adebayo et al. 2018; Mahendran & Vedaldi 2016). A verdict a reader can trust has six parts
(the book's scoring rules): the claim in the paper's words; the measure that stands for it; a control
that could make it fail; an interval on every estimate; a decision rule fixed before the number is
seen, stated as code with its thresholds; and the outcome with one sentence of reason. A
:class:`Verdict` holds all six, a chapter computes it with a tested function and only displays it, and
the scorecard page lists every record.

:data:`CLAIMS` holds what each claim says and where (section, figure or table, the chapter that tests
it); :data:`OUTCOMES` the outcomes a verdict may have. A chapter run under the ``book`` profile saves its
records (:func:`save`, as ``data/verdicts/<claim>.json``); :func:`scorecard` turns the saved records into the
book's scorecard page (``python -m zfcore scorecard``), so that page is never typed by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zfcore.paths import REPOSITORY_ROOT, VERDICTS_DIR
from zfcore.stats import Estimate
from zfcore.store import write_json_atomic, write_text_atomic

__all__ = ["CLAIMS", "METADATA_KEY", "OUTCOMES", "SCORECARD_PAGE", "Claim", "Verdict", "pending", "recorded", "save",
           "scorecard", "write_scorecard"]

METADATA_KEY = "zfbook_verdict"
"""The key under which a displayed verdict stores its record (:meth:`Verdict.as_dict`) in the notebook output's
metadata, so that a test can compare a chapter's stored output with ``data/verdicts``."""
SCORECARD_PAGE = REPOSITORY_ROOT / "book" / "scorecard.md"
"""The generated scorecard page (:func:`write_scorecard`)."""

OUTCOMES = ("agree", "partly", "differ", "inconclusive", "not testable here", "pending")
"""``agree``, ``partly``, ``differ``: what the rule decided; ``inconclusive``: the interval spans the rule's
boundary, or the control explains the effect; ``not testable here``: our scale or budget cannot reach the
claim (the verdict says what would); ``pending``: a run the verdict needs has not been recorded yet."""


@dataclass(frozen=True)
class Claim:
    """One claim: ``id`` (``"C1"`` ... ``"C10"``, or a critic's), where it is made, its words and the chapter."""

    id: str
    source: str
    words: str
    chapter: str


CLAIMS: dict[str, Claim] = {claim.id: claim for claim in (
    Claim("C1", "§4, Fig. 2", "the projected features grow in complexity with depth: edges and colour blobs "
          "(layer 1), corners and conjunctions (2), textures (3), class-specific parts (4), whole objects with pose "
          "variation (5)", "02_deconvnet"),
    Claim("C2", "§4, Fig. 4", "the lower layers converge within a few epochs; the upper layers develop only after a "
          "considerable number of epochs (40-50 of 70)", "03_feature_evolution"),
    Claim("C3", "§4, Fig. 5", "\"Small transformations have a dramatic effect in the first layer of the model, but a "
          "lesser impact at the top feature layer, being quasi-linear for translation & scaling.\"", "04_invariance"),
    Claim("C4", "§4, Fig. 5", "\"The network output is stable to translations and scalings. In general, the output "
          "is not invariant to rotation, except for object with rotational symmetry (e.g. entertainment center).\"",
          "04_invariance"),
    Claim("C5", "§4.1, Fig. 6, Table 2", "Krizhevsky et al.'s first layer is \"a mix of extremely high and low "
          "frequency information, with little coverage of the mid frequencies\", with \"dead\" filters, and their "
          "second layer shows \"aliasing artifacts caused by the large stride 4\"; conv1 7x7 with stride 2 fixes "
          "both and improves accuracy", "05_architecture_selection"),
    Claim("C6", "§4.2, Fig. 7", "\"The examples clearly show the model is localizing the objects within the scene, "
          "as the probability of the correct class drops significantly when the object is occluded.\"",
          "06_occlusion"),
    Claim("C7", "§4.3, Table 1", "masking the same part of the face (an eye, the nose) changes the layer-5 features "
          "of different dog images more consistently than masking random regions: the network implicitly "
          "establishes correspondence between parts", "07_correspondence"),
    Claim("C8", "§5.1, Table 3", "\"a minimum depth, rather than any individual section, is vital\" to the model's "
          "performance", "08_ablations"),
    Claim("C9", "§5.2, Tables 4-5, Fig. 9", "the ImageNet-trained features generalise: with layers 1-7 fixed and "
          "a new softmax on top they beat the best reported results on Caltech-101 and Caltech-256, while the same "
          "network trained on Caltech alone \"does terribly\"", "09_transfer"),
    Claim("C10", "§5.3, Table 7", "deeper layers are more discriminative: \"a steady improvement can be seen as we "
          "ascend the model, with best results being obtained by using all layers\"", "09_transfer"),
    Claim("Adebayo", "Adebayo et al. 2018", "\"some existing saliency methods are independent both of the model and "
          "of the data generating process\": guided backpropagation fails the model-randomisation test, the "
          "gradient passes it", "10_beyond"),
    Claim("Mahendran", "Mahendran & Vedaldi 2016", "a deconvnet reconstruction is shaped mostly by the bottleneck "
          "information the image leaves in the network (its max-pooling switches), and only weakly by the neuron "
          "chosen (our paraphrase)", "10_beyond"),
)}


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict, with everything a reader needs to check it.

    Attributes:
        claim: a key of :data:`CLAIMS`.
        measure: what number stands for the claim, and why it tests it.
        estimate: that number with its interval (``None`` while ``pending``, or where only the control speaks).
        control: what could make the claim fail, and its value in words.
        control_estimate: the control's number with its interval, where it has one.
        rule: the decision rule with its thresholds, in words (printed above the number in the chapter).
        outcome: one of :data:`OUTCOMES`.
        reason: one sentence.
        settle: for ``inconclusive`` and ``not testable here``: what would settle it (required then).
        details: further named numbers (JSON-ready) the chapter or the scorecard shows.
        scale, digits, unit: how the estimates are printed (:meth:`Estimate.format`), e.g. ``100, 1, " %"``.

    Raises:
        ValueError: an unknown claim or outcome, an empty measure, rule or reason, or an ``inconclusive`` /
            ``not testable here`` verdict without ``settle``.
    """

    claim: str
    measure: str
    estimate: Estimate | None
    control: str
    control_estimate: Estimate | None
    rule: str
    outcome: str
    reason: str
    settle: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0
    digits: int = 3
    unit: str = ""

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"claim={self.claim!r} is not valid; valid claims: {tuple(CLAIMS)}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome={self.outcome!r} is not valid; valid outcomes: {OUTCOMES}")
        empty = [name for name in ("measure", "control", "rule", "reason") if not str(getattr(self, name)).strip()]
        if empty:
            raise ValueError(f"{', '.join(empty)} of the {self.claim} verdict is empty; every verdict states them")
        if self.outcome in ("inconclusive", "not testable here") and not self.settle.strip():
            raise ValueError(f"outcome={self.outcome!r} needs settle: say what would settle {self.claim}")

    @property
    def about(self) -> Claim:
        """The claim this verdict is on."""
        return CLAIMS[self.claim]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (estimates as ``value``, ``low``, ``high``, ``n``, ``method``, ``confidence``); the claim's
        source, words and chapter are included for a reader of the file and ignored by :meth:`from_dict`."""
        def estimate(value: Estimate | None) -> dict[str, Any] | None:
            return None if value is None else {"value": value.value, "low": value.low, "high": value.high,
                                               "n": value.n, "method": value.method, "confidence": value.confidence}

        return {"claim": self.claim, "source": self.about.source, "words": self.about.words,
                "chapter": self.about.chapter, "measure": self.measure, "estimate": estimate(self.estimate),
                "control": self.control, "control_estimate": estimate(self.control_estimate), "rule": self.rule,
                "outcome": self.outcome, "reason": self.reason, "settle": self.settle, "details": self.details,
                "scale": self.scale, "digits": self.digits, "unit": self.unit}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Verdict:
        """The inverse of :meth:`as_dict` (checked like any new verdict).

        Raises:
            ValueError: a record that is not a verdict (a key missing), or one :class:`Verdict` refuses.
        """
        needed = ("claim", "measure", "estimate", "control", "control_estimate", "rule", "outcome", "reason")
        missing = [key for key in needed if key not in record]
        if missing:
            raise ValueError(f"a verdict record needs {', '.join(missing)}; it has {sorted(record)}")
        values = {key: record[key] for key in needed}
        for key in ("estimate", "control_estimate"):
            values[key] = None if record[key] is None else Estimate(**record[key])
        for key in ("settle", "details", "scale", "digits", "unit"):
            if key in record:
                values[key] = record[key]
        return cls(**values)

    def shown(self, estimate: Estimate | None) -> str:
        """An estimate as this verdict prints it: ``"2.4 % [1.1 %, 3.6 %] (n = 166)"``."""
        if estimate is None:
            return ""
        return f"{estimate.format(scale=self.scale, digits=self.digits, unit=self.unit)} (n = {estimate.n})"

    def rows(self) -> list[tuple[str, str]]:
        """(label, markdown) pairs in the book's order: claim, measure, control, rule, outcome (+ settle)."""
        def interval(estimate: Estimate | None) -> str:
            if estimate is None:
                return ""
            return (f": **{self.shown(estimate)}**, {100 * estimate.confidence:.0f} % {estimate.method} interval")

        rows = [("Claim", f"{self.about.source}, {self.claim}: {self.about.words}"),
                ("Measure", self.measure + interval(self.estimate)),
                ("Control", self.control + interval(self.control_estimate).replace("**", "")),
                ("Rule", self.rule),
                ("Verdict", f"**{self.claim}: {self.outcome}.** {self.reason}")]
        if self.settle:
            rows.append(("What would settle it", self.settle))
        return rows

    def _repr_markdown_(self) -> str:
        escaped = [(label, text.replace("|", "\\|")) for label, text in self.rows()]
        return "| | |\n|---|---|\n" + "\n".join(f"| **{label}** | {text} |" for label, text in escaped)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, str], dict[str, Any]]:
        """Markdown for JupyterLab and the book, plain text elsewhere, and the record in the output's metadata
        (under :data:`METADATA_KEY`)."""
        plain = "\n".join(f"{label}: {text}" for label, text in self.rows())
        return {"text/markdown": self._repr_markdown_(), "text/plain": plain}, {METADATA_KEY: self.as_dict()}


def pending(claim: str, *, measure: str, control: str, rule: str, waiting_for: str) -> Verdict:
    """The verdict of a claim whose runs are not recorded yet: what will be measured and by which rule.

    Args:
        claim: a key of :data:`CLAIMS`.
        measure, control, rule: as :class:`Verdict` (fixed now, before the number is seen).
        waiting_for: the runs or results still missing, in words.
    """
    return Verdict(claim, measure, None, control, None, rule, "pending", f"waiting for {waiting_for}.")


def save(verdict: Verdict, folder: str | Path = VERDICTS_DIR) -> Path:
    """Write ``verdict`` as ``<folder>/<claim>.json`` (atomically) and return the path."""
    return write_json_atomic(Path(folder) / f"{verdict.claim}.json", verdict.as_dict())


def recorded(folder: str | Path = VERDICTS_DIR) -> dict[str, Verdict]:
    """The saved verdicts (claim -> :class:`Verdict`), in the order of :data:`CLAIMS`.

    Raises:
        ValueError: a file whose name is not its record's claim, or whose record is not a valid verdict.
    """
    records = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            verdict = Verdict.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a valid verdict record: {error}") from error
        if verdict.claim != path.stem:
            raise ValueError(f"{path} holds the verdict on {verdict.claim}; name it {verdict.claim}.json")
        records[verdict.claim] = verdict
    return {claim: records[claim] for claim in CLAIMS if claim in records}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def scorecard(records: dict[str, Verdict]) -> str:
    """The scorecard page (MyST Markdown): one row per claim of :data:`CLAIMS` with a link to its chapter, the paper's
    words, and what the book found: the outcome and its reason, our measure with its interval, the control, and
    what would settle it (three columns, so that the table fits the book's text column).

    A claim without a record is listed as not yet scored, so a missing chapter run shows on the page.
    """
    lines = ["# Scorecard: what the book found", "",
             "<!-- Generated by `python -m zfcore scorecard` from data/verdicts/*.json; do not edit by hand. -->", "",
             "Each row is one claim of the paper {cite}`zeiler2014visualizing` or of its critics, scored as the chapter",
             "that tests it scores it: a measure with its 95 % interval, a control that could make the claim fail, a",
             "decision rule fixed before the number was seen, and one of the outcomes *agree*, *partly*, *differ*,",
             "*inconclusive*, *not testable here* or *pending* (a run it needs has not finished). Our numbers come from",
             "64-px networks trained on Tiny ImageNet (200 classes) for 28 epochs on a CPU; the paper's from ImageNet at",
             "224 px after 70 epochs on a GPU. The chapter gives the rule, the numbers and the deviations that bear on",
             "each claim.", "",
             "| claim | the paper's words | what the book found |",
             "|---|---|---|"]
    for claim in CLAIMS.values():
        where = f"**{claim.id}** ({claim.source}), {{doc}}`chapter {claim.chapter[:2]} <../notebooks/{claim.chapter}>`"
        verdict = records.get(claim.id)
        if verdict is None:
            lines.append(f"| {where} | {_cell(claim.words)} | *not yet scored* |")
            continue
        found = [f"**{verdict.outcome}**: {verdict.reason}", f"*Measure:* {verdict.measure}"
                 + (f": **{verdict.shown(verdict.estimate)}**" if verdict.estimate else ""),
                 f"*Control:* {verdict.control}"
                 + (f": {verdict.shown(verdict.control_estimate)}" if verdict.control_estimate else "")]
        if verdict.settle:
            found.append(f"*What would settle it:* {verdict.settle}")
        lines.append(f"| {where} | {_cell(claim.words)} | {_cell(' '.join(found))} |")
    return "\n".join(lines) + "\n"


def write_scorecard(folder: str | Path = VERDICTS_DIR, page: str | Path = SCORECARD_PAGE) -> Path:
    """Write :func:`scorecard` of the records in ``folder`` to ``page`` and return it."""
    return write_text_atomic(page, scorecard(recorded(folder)))

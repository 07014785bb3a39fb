"""The book's verdicts on the paper's claims, as tested records: one :class:`Verdict` per claim.

Zeiler & Fergus (2014, arXiv 1311.2901) make ten claims that the book re-tests (C1-C10), and its critics
make more (Adebayo et al. 2018; Mahendran & Vedaldi 2016). A verdict a reader can trust has six parts
(the book's scoring rules): the claim in the paper's words; the measure that stands for it; a control
that could make it fail; an interval on every estimate; a decision rule fixed before the number is
seen, stated as code with its thresholds; and the outcome with one sentence of reason. A
:class:`Verdict` holds all six, a chapter computes it with a tested function and only displays it, and
the scorecard page lists every record.

:data:`CLAIMS` holds what each claim says and where (section, figure or table, the chapter that tests
it); :data:`OUTCOMES` the outcomes a verdict may have.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from zfcore.stats import Estimate

__all__ = ["CLAIMS", "OUTCOMES", "Claim", "Verdict", "pending"]

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
        """JSON-ready (estimates as ``value``, ``low``, ``high``, ``n``, ``method``)."""
        def estimate(value: Estimate | None) -> dict[str, Any] | None:
            return None if value is None else {"value": value.value, "low": value.low, "high": value.high,
                                               "n": value.n, "method": value.method, "confidence": value.confidence}

        return {"claim": self.claim, "source": self.about.source, "words": self.about.words,
                "chapter": self.about.chapter, "measure": self.measure, "estimate": estimate(self.estimate),
                "control": self.control, "control_estimate": estimate(self.control_estimate), "rule": self.rule,
                "outcome": self.outcome, "reason": self.reason, "settle": self.settle, "details": self.details}

    def rows(self) -> list[tuple[str, str]]:
        """(label, markdown) pairs in the book's order: claim, measure, control, rule, outcome (+ settle)."""
        rows = [("Claim", f"{self.about.source}, {self.claim}: {self.about.words}"),
                ("Measure", self.measure + ("" if self.estimate is None else f": **{self.estimate}**")),
                ("Control", self.control + ("" if self.control_estimate is None else f": {self.control_estimate}")),
                ("Rule", self.rule),
                ("Verdict", f"**{self.claim}: {self.outcome}.** {self.reason}")]
        if self.settle:
            rows.append(("What would settle it", self.settle))
        return rows

    def _repr_markdown_(self) -> str:
        escaped = [(label, text.replace("|", "\\|")) for label, text in self.rows()]
        return "| | |\n|---|---|\n" + "\n".join(f"| **{label}** | {text} |" for label, text in escaped)

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
                        for label, text in self.rows())
        return f'<table class="zf-verdict">{cells}</table>'


def pending(claim: str, *, measure: str, control: str, rule: str, waiting_for: str) -> Verdict:
    """The verdict of a claim whose runs are not recorded yet: what will be measured and by which rule.

    Args:
        claim: a key of :data:`CLAIMS`.
        measure, control, rule: as :class:`Verdict` (fixed now, before the number is seen).
        waiting_for: the runs or results still missing, in words.
    """
    return Verdict(claim, measure, None, control, None, rule, "pending", f"waiting for {waiting_for}.")

"""The deconvnet's first critic, measured: Adebayo et al.'s model-randomisation sanity check (beyond Zeiler & Fergus 2014).

Zeiler & Fergus (2014, §2.1) read a deconvnet projection as what one activation responds to. Two later
papers question that reading; this module measures the first (the second is :mod:`zfcore.analysis.switches`;
later attribution methods beside them are :mod:`zfcore.analysis.attribution`).

**Sanity checks** (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"). A map that explains
the network should change when the network's weights are destroyed. :func:`randomization_similarity`
re-initialises layers on a copy of the network, from the top down, and compares each image's map with
the trained network's map of the same image:

The maps are compared with :func:`zfcore.analysis.maps.map_similarity` against a baseline of another image's map (:mod:`zfcore.analysis.maps`).

Their second test, **data randomisation**, compares each image's map with the map of the same class in a
network of the same recipe trained on permuted labels (:func:`data_randomization_similarity`): a map that
explains what the network learned from its labels must change when there was nothing to learn.

**Verdict** (:func:`adebayo_verdict`): the claim scored with the book's rules (:mod:`zfcore.verdicts`), thresholds in the module constants.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.analysis.maps import (MEASURE_NAMES, MEASURES, batched_maps, check_images_and_methods, derangement,
                                  finite_values, map_similarity, nan_mean_std)
from zfcore.checks import check_choice, check_layers, check_number, check_positive, check_whole
from zfcore.deconv import MODES, project_signal
from zfcore.devices import model_device
from zfcore.models import INITS, ZFNet
from zfcore.stats import bootstrap
from zfcore.verdicts import Verdict

__all__ = ["ADEBAYO_STEP", "FIT_PERMUTED_LABELS", "KEPT_SIMILARITY", "ORDERS", "DataRandomization",
           "RandomizationSimilarity", "adebayo_verdict", "data_randomization_similarity", "kept_through", "randomization_similarity",
           "randomization_steps", "randomized_copy"]

ORDERS = ("cascading", "independent")
"""How :func:`randomization_similarity` re-initialises layers (Adebayo et al. 2018: cascading and independent randomisation)."""

KEPT_SIMILARITY = 0.9
"""A map *survives* a randomisation step when its mean Spearman correlation (absolute maps) with the trained
map is at least this (:func:`kept_through`; :func:`adebayo_verdict`)."""

ADEBAYO_STEP = "fc6"
"""The cascading step :func:`adebayo_verdict` scores: ``fc8``, ``fc7`` and ``fc6`` re-initialised, the whole
classifier. A class's map that survives it cannot show what the classifier learned."""

FIT_PERMUTED_LABELS = 0.5
"""The data-randomisation test counts only when the network trained on permuted labels gets at least this share of
its training images' permuted labels right (top-1 in eval mode): it must have learned them, as Adebayo et al.'s
networks did, or its maps differ from the trained network's merely because it learned nothing
(:func:`adebayo_verdict`)."""


@dataclass(frozen=True)
class RandomizationSimilarity:
    """Similarity of each image's map to its trained-network map, after each randomisation step.

    Attributes:
        order: ``"cascading"`` or ``"independent"``.
        steps: ``("original", "fc8", "fc7", ..., "conv1")``: the step's label, the last layer re-initialised.
        randomized: per step, the layers re-initialised (``()`` for ``"original"``).
        methods: the projection modes compared (:data:`zfcore.deconv.MODES`).
        labels: ``[N]`` the classes whose logit was projected.
        similarity: method -> measure -> ``[N, len(steps)]`` float64 (NaN where a map is constant).
        baseline: method -> measure -> ``[N]``: the trained map of each image against that of another image.
        examples: method -> ``[E, len(steps), 3, S, S]`` the maps of the first ``E`` images, for display.
    """

    order: str
    steps: tuple[str, ...]
    randomized: tuple[tuple[str, ...], ...]
    methods: tuple[str, ...]
    labels: torch.Tensor
    similarity: dict[str, dict[str, torch.Tensor]]
    baseline: dict[str, dict[str, torch.Tensor]]
    examples: dict[str, torch.Tensor]

    def summary(self, step: int = -1) -> dict[str, dict[str, tuple[float, float, int]]]:
        """method -> measure -> ``(mean, std, images)`` over the images at ``step`` (NaNs left out)."""
        return {method: {measure: nan_mean_std(values[:, step]) for measure, values in measures.items()}
                for method, measures in self.similarity.items()}

    def still_similar(self, step: int = -1) -> dict[str, dict[str, float]]:
        """method -> measure -> share of images whose map at ``step`` is more like its original than the baseline's."""
        shares = {}
        for method, measures in self.similarity.items():
            shares[method] = {}
            for measure, values in measures.items():
                both = ~(values[:, step].isnan() | self.baseline[method][measure].isnan())
                above = values[both, step] > self.baseline[method][measure][both]
                shares[method][measure] = float(above.double().mean()) if bool(both.any()) else float("nan")
        return shares


@dataclass(frozen=True)
class DataRandomization:
    """Similarity of each image's map in the trained network to its map in a network trained on permuted labels.

    Attributes:
        methods: the projection modes compared (:data:`zfcore.deconv.MODES`).
        labels: ``[N]`` the classes whose logit was projected, in both networks.
        similarity: method -> measure -> ``[N]`` float64 (NaN where a map is constant).
        baseline: method -> measure -> ``[N]``: the trained map of each image against that of another image.
    """

    methods: tuple[str, ...]
    labels: torch.Tensor
    similarity: dict[str, dict[str, torch.Tensor]]
    baseline: dict[str, dict[str, torch.Tensor]]

    def summary(self, measure: str = "spearman_abs") -> str:
        """One line per method: the mean ``measure`` between each image's maps in the two networks (over the
        images whose maps are not constant, and how many they are) beside the baseline of two different images."""
        lines = []
        for method in self.methods:
            reported = _unscored(self.similarity[method][measure], self.baseline[method][measure])
            value = "n/a" if reported["value"] is None else f"{reported['value']:.2f}"
            lines.append(f"{method}: mean {MEASURE_NAMES[measure]} with the trained network's map {value} "
                         f"(n = {reported['n']}); two different images' maps {reported['baseline']:.2f}")
        return "\n".join(lines)


def randomization_steps(model: ZFNet, order: str = "cascading") -> tuple[tuple[str, ...], ...]:
    """The layers re-initialised at each step: ``()`` first, then from ``fc8`` down to ``conv1``.

    ``"cascading"``: ``(), ("fc8",), ("fc8", "fc7"), ...``; ``"independent"``: ``(), ("fc8",), ("fc7",), ...``.

    Raises:
        ValueError: ``order`` not one of :data:`ORDERS`.
    """
    check_choice("order", order, ORDERS, "orders")
    top_down = tuple(reversed(model.layer_names))
    if order == "cascading":
        return tuple(top_down[:k] for k in range(len(top_down) + 1))
    return ((),) + tuple((layer,) for layer in top_down)


def randomized_copy(model: ZFNet, layers: Sequence[str], *, init: str = "he", seed: int = 0) -> ZFNet:
    """A deep copy of ``model`` whose ``layers`` are re-initialised (weights and biases); ``model`` is untouched.

    The new values come from a copy of the whole network initialised by ``initialize(init)`` under
    ``torch.manual_seed(seed)`` (the global generators are restored after), so a layer gets the same
    values whichever other layers are re-initialised with it.

    Args:
        model: a :class:`~zfcore.models.ZFNet`.
        layers: names of ``model.layer_names`` (may be empty), or one name.
        init: the initialisation (:meth:`~zfcore.models.ZFNet.initialize`); the book's networks: ``"he"``
            (``reference.config.init``).
        seed: seeds the new values.

    Raises:
        ValueError: an unknown layer or init; ``seed`` not an int.
    """
    return _take_layers(model, _initialized(model, init, seed), layers)


def randomization_similarity(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                             methods: Sequence[str] = MODES, order: str = "cascading", *, init: str = "he",
                             seed: int = 0, examples: int = 4, batch_size: int = 64) -> RandomizationSimilarity:
    """Adebayo et al.'s model-parameter randomisation test for the projections of :mod:`zfcore.deconv`.

    Args:
        model: the trained :class:`~zfcore.models.ZFNet` (never modified: every step works on a copy).
        images: float ``[N, 3, S, S]`` network inputs, ``N >= 2``.
        labels: ``[N]`` true classes; the map of image ``n`` is that of its class's logit (``fc8``).
        methods: modes of :func:`~zfcore.deconv.project_signal`, any of :data:`~zfcore.deconv.MODES`.
        order: ``"cascading"`` or ``"independent"`` (:func:`randomization_steps`).
        init, seed: how layers are re-initialised (:func:`randomized_copy`).
        examples: keep the maps of the first this many images (:attr:`RandomizationSimilarity.examples`).
        batch_size: images per projection pass.

    Returns:
        A :class:`RandomizationSimilarity`, on the CPU.

    Raises:
        ValueError: bad images, labels, methods, order, init, seed, ``examples`` or ``batch_size``.
    """
    labels = check_images_and_methods(model, images, labels, methods, MODES, "modes")
    steps = randomization_steps(model, order)
    check_whole("examples", examples, minimum=0)
    check_positive("batch_size", batch_size)
    donor = _initialized(model, init, seed)
    partner = derangement(len(images), seed)

    def maps(network: ZFNet, method: str) -> torch.Tensor:
        return _class_maps(network, images, labels, method, batch_size)

    original = {method: maps(model, method) for method in methods}
    similarity = {method: {measure: [] for measure in MEASURES} for method in methods}
    kept = {method: [] for method in methods}
    for layers in steps:
        network = _take_layers(model, donor, layers) if layers else None
        for method in methods:
            randomized = maps(network, method) if layers else original[method]  # step "original": nothing re-initialised
            for measure, values in map_similarity(original[method], randomized).items():
                similarity[method][measure].append(values)
            kept[method].append(randomized[:examples])
    return RandomizationSimilarity(
        order=order, steps=("original",) + tuple(layers[-1] for layers in steps[1:]), randomized=steps,
        methods=tuple(methods), labels=labels,
        similarity={method: {measure: torch.stack(values, 1) for measure, values in measures.items()}
                    for method, measures in similarity.items()},
        baseline={method: map_similarity(original[method], original[method][partner]) for method in methods},
        examples={method: torch.stack(values, 1) for method, values in kept.items()},
    )


def data_randomization_similarity(model: ZFNet, random_labels_model: ZFNet, images: torch.Tensor,
                                  labels: torch.Tensor | Sequence[int], methods: Sequence[str] = MODES, *,
                                  seed: int = 0, batch_size: int = 64) -> DataRandomization:
    """Adebayo et al.'s data randomisation test for the projections of :mod:`zfcore.deconv`.

    Args:
        model: the trained :class:`~zfcore.models.ZFNet` (not modified).
        random_labels_model: the same architecture trained with the same recipe on permuted training labels
            (verdict run ``random-labels``; not modified).
        images: float ``[N, 3, S, S]`` network inputs, ``N >= 2``.
        labels: ``[N]`` true classes; in both networks the map of image ``n`` is that of its class's logit.
        methods: modes of :func:`~zfcore.deconv.project_signal`, any of :data:`~zfcore.deconv.MODES`.
        seed: seeds the pairing of the baseline (each image with another).
        batch_size: images per projection pass.

    Returns:
        A :class:`DataRandomization`, on the CPU.

    Raises:
        ValueError: bad images, labels, methods, seed or ``batch_size``; two networks of different layers,
            classes or input size.
    """
    labels = check_images_and_methods(model, images, labels, methods, MODES, "modes")
    check_positive("batch_size", batch_size)
    check_whole("seed", seed, minimum=0)
    shape = (model.layer_names, model.num_classes, model.input_size)
    other = (random_labels_model.layer_names, random_labels_model.num_classes, random_labels_model.input_size)
    if other != shape:
        raise ValueError(f"random_labels_model has layers, classes and input size {other}; the trained model {shape}: "
                         "give a network of the same recipe trained on permuted labels")
    partner = derangement(len(images), seed)
    similarity, baseline = {}, {}
    for method in methods:
        original = _class_maps(model, images, labels, method, batch_size)
        similarity[method] = map_similarity(original, _class_maps(random_labels_model, images, labels, method,
                                                                  batch_size))
        baseline[method] = map_similarity(original, original[partner])
    return DataRandomization(methods=tuple(methods), labels=labels, similarity=similarity, baseline=baseline)


def kept_through(result: RandomizationSimilarity, method: str, measure: str = "spearman_abs",
                 threshold: float = KEPT_SIMILARITY) -> str:
    """The last step up to which ``method``'s map survives: every step from the first has a mean ``>= threshold``.

    Args:
        result: a :func:`randomization_similarity` result.
        method: one of ``result.methods``.
        measure: one of :data:`MEASURES` (default the absolute maps' Spearman, which a sign flip cannot move).
        threshold: the mean similarity that counts as kept (default :data:`KEPT_SIMILARITY`).

    Returns:
        A name of ``result.steps`` (``"original"`` when the first randomisation already takes it below).

    Raises:
        ValueError: a method not in the result, an unknown measure, ``threshold`` not in (0, 1].
    """
    check_choice("method", method, result.methods, "methods")
    check_choice("measure", measure, MEASURES, "measures")
    threshold = check_number("threshold", threshold, "in (0, 1]", lambda value: 0 < value <= 1)
    means = result.similarity[method][measure].nanmean(0)
    last = 0
    while last + 1 < len(result.steps) and float(means[last + 1]) >= threshold:
        last += 1
    return result.steps[last]


def adebayo_verdict(cascading: RandomizationSimilarity, data: DataRandomization | None = None, *,
                    random_labels_fit: float | None = None, step: str = ADEBAYO_STEP,
                    threshold: float = KEPT_SIMILARITY, fit_needed: float = FIT_PERMUTED_LABELS,
                    seed: int = 0) -> Verdict:
    """Adebayo et al.'s claim scored on their two tests (claim ``"Adebayo"``): model and data randomisation.

    **Measure**: guided back-propagation's mean Spearman correlation (absolute maps; a sign flip cannot move it)
    between each image's trained map and its map after cascading re-initialisation down to ``step``, with a
    bootstrap interval over the images; with ``data``, also between its map in the trained network and in the
    network trained on permuted labels. **Control**: the same for the gradient, the method Adebayo et al. find
    passes both tests, so that each test is shown able to change a map on this network. **Rule**, per test: a
    method *fails* (its map does not depend on what was destroyed) when the interval lies at or above
    ``threshold`` (:data:`KEPT_SIMILARITY`) and *passes* when it lies below; the test *agrees* when guided fails
    and the gradient passes, *differs* when guided passes and the gradient fails, agrees *partly* when one of
    the two does as Adebayo et al. found, and is *inconclusive* when an interval straddles ``threshold``. The
    outcome is the model test's while the data test is pending (``data=None``); with both, it is theirs when
    they have the same outcome, ``inconclusive`` when either is, and ``partly`` otherwise. The data test is
    ``not testable here``, and the outcome the model test's, when the network trained on permuted labels did not
    learn them (``random_labels_fit`` below ``fit_needed``, :data:`FIT_PERMUTED_LABELS`): its similarities are
    then reported in ``details``, not scored. The deconvnet (which Adebayo et al. did not test) and the baselines
    are in ``details``.

    Args:
        cascading: a cascading :func:`randomization_similarity` holding ``"guided"`` and ``"backprop"``.
        data: a :func:`data_randomization_similarity` of the same images holding both methods, or ``None``
            while the network trained on permuted labels is missing (default).
        random_labels_fit: with ``data``: that network's top-1 on its own training images and permuted labels,
            eval mode, in [0, 1] (its weights' recorded ``train_top1_eval``).
        fit_needed: the fit at which the data test counts, in (0, 1].
        step: the step scored, one of ``cascading.steps`` after ``"original"``.
        threshold: the similarity at which a map counts as kept, in (0, 1).
        seed: seeds the bootstrap.

    Returns:
        A :class:`~zfcore.verdicts.Verdict` on ``"Adebayo"``.

    Raises:
        ValueError: not a cascading result, a method missing, ``data`` of other images, an unknown step,
            ``threshold`` not in (0, 1), ``data`` without ``random_labels_fit`` or a fit outside [0, 1].
    """
    if not isinstance(cascading, RandomizationSimilarity) or cascading.order != "cascading":
        raise ValueError(f"cascading={getattr(cascading, 'order', type(cascading).__name__)!r} is not valid; "
                         "give a cascading randomization_similarity result")
    for result, name in ((cascading, "cascading"), (data, "data")):
        missing = [method for method in ("guided", "backprop") if result is not None and method not in result.methods]
        if missing:
            raise ValueError(f"{name} has methods {result.methods}; adebayo_verdict needs 'guided' and 'backprop'")
    if data is not None and not torch.equal(data.labels, cascading.labels):
        raise ValueError("data holds other images or labels than cascading: give both tests the same images")
    check_choice("step", step, cascading.steps[1:], "steps")
    threshold = check_number("threshold", threshold, "in (0, 1)", lambda value: 0 < value < 1)
    fit_needed = check_number("fit_needed", fit_needed, "in (0, 1]", lambda value: 0 < value <= 1)
    if data is not None and random_labels_fit is None:
        raise ValueError("random_labels_fit=None is not valid with data: give the permuted-labels network's top-1 on "
                         "its own training labels (its weights' meta['metrics']['train_top1_eval'])")
    if random_labels_fit is not None:
        random_labels_fit = check_number("random_labels_fit", random_labels_fit, "in [0, 1]",
                                         lambda value: 0 <= value <= 1)
    index = cascading.steps.index(step)
    model_test = _scored_test({method: values["spearman_abs"][:, index]
                               for method, values in cascading.similarity.items()}, threshold, seed)
    learned = data is not None and random_labels_fit >= fit_needed
    data_test = None if not learned else _scored_test(
        {method: values["spearman_abs"] for method, values in data.similarity.items()}, threshold, seed)
    layers = f"fc8 … {step}" if step != "fc8" else "fc8"
    model_part = _test_sentence(model_test, f"With {layers} re-initialised")
    if data is None:
        outcome = model_test["outcome"]
        data_part = "Adebayo et al.'s data-randomisation test is pending (the verdict run random-labels)."
    elif not learned:
        outcome = model_test["outcome"]
        data_part = (f"Their data-randomisation test is not testable here: the network trained on permuted labels "
                     f"fits {100 * random_labels_fit:.1f} % of them (the test needs {100 * fit_needed:g} %): it has not "
                     "learned them, so a map it changes shows nothing; the model test alone decides.")
    else:
        outcomes = {model_test["outcome"], data_test["outcome"]}
        outcome = ("inconclusive" if "inconclusive" in outcomes else outcomes.pop() if len(outcomes) == 1
                   else "partly")
        data_part = _test_sentence(data_test, "In the network trained on permuted labels")
    scored = model_test["estimates"]
    deconvnet = "" if "deconvnet" not in scored else (
        f" The deconvnet, which Adebayo et al. did not test, keeps {scored['deconvnet'].value:.2f}: it "
        f"{model_test['fates']['deconvnet']} (a new result).")

    def recorded(test: dict, baseline: dict[str, dict[str, torch.Tensor]]) -> dict:
        return {method: {"value": e.value, "low": e.low, "high": e.high, "n": e.n, "fate": test["fates"][method],
                         "baseline": float(baseline[method]["spearman_abs"].nanmean())}
                for method, e in test["estimates"].items()}

    details = {"step": step, "threshold": threshold, "images": int(cascading.labels.numel()),
               "methods": recorded(model_test, cascading.baseline), "model_randomisation": model_test["outcome"],
               "data_randomisation": "pending: waiting for the verdict run random-labels" if data is None else
               {"outcome": data_test["outcome"], "random_labels_fit": random_labels_fit, "fit_needed": fit_needed,
                "methods": recorded(data_test, data.baseline)} if learned else
               {"outcome": "not testable here", "random_labels_fit": random_labels_fit, "fit_needed": fit_needed,
                "methods": {method: _unscored(values["spearman_abs"], data.baseline[method]["spearman_abs"])
                            for method, values in data.similarity.items()},
                "settle": "a network that learns the permuted labels (Zhang et al. 2017 fit random labels with longer "
                          "training and less regularisation), then this test by the same rule"}}
    half = ("pending" if data is None else "not testable here: the network trained on permuted labels did not "
            "learn them")
    tests = (f"cascading re-initialisation of {layers} (model randomisation; the data-randomisation half is {half})"
             if not learned else f"cascading re-initialisation of {layers} (model randomisation), and in the "
             "network trained on permuted labels (data randomisation)")
    return Verdict(
        claim="Adebayo",
        measure=(f"guided backpropagation's mean Spearman correlation (absolute maps) between each image's map of "
                 f"its true class in the trained network and after {tests}"),
        estimate=scored["guided"],
        control="the same for the gradient, which Adebayo et al. find passes (a map the test can change)",
        control_estimate=scored["backprop"],
        rule=(f"a method fails a test when the interval lies at or above KEPT_SIMILARITY = {threshold:g}, passes "
              "when it lies below; a test agrees if guided backpropagation fails and the gradient passes, differs "
              "if the reverse, agrees partly if one of the two, is inconclusive if an interval straddles the "
              "threshold; with both tests: their outcome if the same, inconclusive if either is, partly otherwise; "
              f"the data test counts only if the network trained on permuted labels fits at least "
              f"FIT_PERMUTED_LABELS = {fit_needed:g} of them (top-1, eval mode)"),
        outcome=outcome, reason=f"{model_part}{deconvnet} {data_part}",
        settle=("" if outcome != "inconclusive"
                else "more images, or the step's similarity measured on a larger network"),
        details=details, digits=2)


def _scored_test(similarity: dict[str, torch.Tensor], threshold: float, seed: int) -> dict:
    """One test of :func:`adebayo_verdict`: per method the bootstrap estimate of the mean similarity and its fate
    (``fails``, ``passes`` or ``unclear`` against ``threshold``), and the test's outcome."""
    estimates = {method: bootstrap(finite_values(method, values), seed=seed) for method, values in similarity.items()}
    fates = {method: "fails" if e.low >= threshold else "passes" if e.high < threshold else "unclear"
             for method, e in estimates.items()}
    if "unclear" in (fates["guided"], fates["backprop"]):
        outcome = "inconclusive"
    else:
        outcome = {2: "agree", 1: "partly", 0: "differ"}[(fates["guided"] == "fails") + (fates["backprop"] == "passes")]
    return {"estimates": estimates, "fates": fates, "outcome": outcome}


def _unscored(similarity: torch.Tensor, baseline: torch.Tensor) -> dict:
    """A similarity reported, not scored: its mean over the images whose maps are not constant (``None`` if none
    are), their count, and the baseline's mean."""
    finite = similarity[~similarity.isnan()]
    return {"value": float(finite.mean()) if len(finite) else None, "n": len(finite),
            "baseline": float(baseline.nanmean())}


def _test_sentence(test: dict, condition: str) -> str:
    """``"<condition>, guided backpropagation keeps 0.98 of its map (fails) and the gradient 0.51 (passes)."``"""
    estimates, fates = test["estimates"], test["fates"]
    return (f"{condition}, guided backpropagation keeps {estimates['guided'].value:.2f} of its map "
            f"({fates['guided']}) and the gradient {estimates['backprop'].value:.2f} ({fates['backprop']}).")


def _class_maps(network: ZFNet, images: torch.Tensor, labels: torch.Tensor, method: str,
                batch_size: int) -> torch.Tensor:
    """Each image's map of its class's logit (``fc8``) in ``network``, ``[N, 3, S, S]`` on the CPU."""
    top = F.one_hot(labels, network.num_classes).to(images.dtype)
    return batched_maps(lambda part, rows: project_signal(network, part, "fc8", top[rows], method), images, batch_size)


def _initialized(model: ZFNet, init: str, seed: int) -> ZFNet:
    """A deep copy of ``model`` re-initialised with ``init`` under ``seed`` (global generators restored)."""
    check_choice("init", init, INITS, "inits")
    check_whole("seed", seed, minimum=0)
    donor = copy.deepcopy(model)
    device = model_device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        donor.initialize(init)
    return donor


def _take_layers(model: ZFNet, donor: ZFNet, layers: Sequence[str]) -> ZFNet:
    """A deep copy of ``model`` with the weights and biases of ``layers`` taken from ``donor``."""
    layers = check_layers("layers", layers, model.layer_names, allow_empty=True)
    network = copy.deepcopy(model)
    with torch.no_grad():
        for layer in layers:
            target, source = _layer_module(network, layer), _layer_module(donor, layer)
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
    return network


def _layer_module(model: ZFNet, layer: str) -> nn.Module:
    """The conv or linear module of ``layer``."""
    return getattr(model.features if layer.startswith("conv") else model.classifier, layer)

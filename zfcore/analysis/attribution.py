"""Later attribution methods beside the deconvnet's projections (beyond Zeiler & Fergus 2014).

**Later attribution methods** (:func:`attribution`, :func:`attribution_comparison`): Grad-CAM
(Selvaraju et al. 2017) at conv5 and integrated gradients (Sundararajan et al. 2017) beside the three
projections, for the true class against the runner-up class and for the trained classifier against a
re-initialised one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from zfcore.analysis.maps import batched_maps, check_images_and_methods, derangement, map_similarity
from zfcore.analysis.sanity import randomized_copy
from zfcore.checks import check_choice, check_labels, check_positive
from zfcore.deconv import MODES, project_signal
from zfcore.devices import exact_float32, model_device
from zfcore.models import ZFNet

__all__ = ["ATTRIBUTIONS", "AttributionComparison", "CLASSIFIER", "attribution", "attribution_comparison"]

CLASSIFIER = ("fc8", "fc7", "fc6")
"""The classifier's layers, re-initialised by :func:`attribution_comparison` (as at :data:`ADEBAYO_STEP`)."""

ATTRIBUTIONS = (*MODES, "grad_cam", "integrated_gradients")
"""The maps of :func:`attribution`: the three projections of the class logit, Grad-CAM at conv5 and integrated
gradients from the all-zero input."""


@dataclass(frozen=True)
class AttributionComparison:
    """Class sensitivity and classifier randomisation of the :data:`ATTRIBUTIONS` (:func:`attribution_comparison`).

    Attributes:
        methods: the attribution methods compared.
        labels: ``[N]`` the true classes; ``runner_up``: ``[N]`` the network's most likely other class.
        other_class: method -> measure -> ``[N]``: the true class's map against the runner-up's.
        randomised: method -> measure -> ``[N]``: the trained network's map against that of the network whose
            :data:`CLASSIFIER` is re-initialised (same image, same class).
        baseline: method -> measure -> ``[N]``: the trained map of each image against that of another image.
        completeness: ``[N]`` for integrated gradients, ``|Σ attributions − (F(x) − F(0))| / |F(x) − F(0)|``
            of the true class's logit ``F`` (``None`` when the method is not among ``methods``).
    """

    methods: tuple[str, ...]
    labels: torch.Tensor
    runner_up: torch.Tensor
    other_class: dict[str, dict[str, torch.Tensor]]
    randomised: dict[str, dict[str, torch.Tensor]]
    baseline: dict[str, dict[str, torch.Tensor]]
    completeness: torch.Tensor | None


def attribution(model: ZFNet, images: torch.Tensor, classes: torch.Tensor | Sequence[int], method: str, *,
                steps: int = 32, batch_size: int = 64) -> torch.Tensor:
    """The map of each image's class logit by ``method`` (one of :data:`ATTRIBUTIONS`), evaluation semantics.

    * ``"deconvnet"``, ``"backprop"``, ``"guided"``: the one-hot of the class at ``fc8`` run down
      (:func:`~zfcore.deconv.project_signal`).
    * ``"grad_cam"``: Grad-CAM (Selvaraju et al. 2017) at conv5: conv5's activation weighted per channel by the
      spatial mean of the logit's gradient, summed over channels and resized bilinearly to the input; the sign
      is kept (as Captum's ``LayerGradCam`` by default; Grad-CAM proper keeps the positive part), repeated
      over the three colours.
    * ``"integrated_gradients"`` (Sundararajan et al. 2017): ``x`` times the mean gradient along the straight path
      from the all-zero input (the training mean) to ``x``, at the ``steps`` midpoints of equal intervals.

    Args:
        model: a :class:`~zfcore.models.ZFNet` (left in its own train/eval mode).
        images: float ``[N, 3, S, S]`` network inputs.
        classes: ``[N]`` the classes whose logits are explained.
        method: one of :data:`ATTRIBUTIONS`.
        steps: path points of integrated gradients.
        batch_size: images per pass.

    Returns:
        ``[N, 3, S, S]`` float, on the CPU.

    Raises:
        ValueError: bad images, classes, method, ``steps`` or ``batch_size``.
    """
    model.check_images(images)
    classes = check_labels("classes", classes, model.num_classes, count=len(images))
    check_choice("method", method, ATTRIBUTIONS, "methods")
    check_positive("steps", steps)
    check_positive("batch_size", batch_size)
    if method in MODES:
        top = F.one_hot(classes, model.num_classes).to(images.dtype)
        return batched_maps(lambda part, rows: project_signal(model, part, "fc8", top[rows], method), images, batch_size)
    explain = _grad_cam if method == "grad_cam" else lambda network, x, c: _integrated_gradients(network, x, c, steps)
    training = model.training
    model.eval()
    try:
        with exact_float32():
            return batched_maps(lambda part, rows: explain(model, model.prepare_images(part),
                                                       classes[rows].to(model_device(model))), images, batch_size)
    finally:
        model.train(training)


def attribution_comparison(model: ZFNet, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                           methods: Sequence[str] = ATTRIBUTIONS, *, init: str = "he", seed: int = 0, steps: int = 32,
                           batch_size: int = 64) -> AttributionComparison:
    """Two of Adebayo et al.'s questions for every method of :func:`attribution`, on the same images.

    **Class sensitivity**: the map of the true class against the map of the runner-up (the most likely other
    class). **Classifier randomisation**: the trained network's map against that of a copy whose
    :data:`CLASSIFIER` layers are re-initialised (:func:`randomized_copy`).

    Args:
        model: the trained network (not modified).
        images: float ``[N, 3, S, S]`` inputs, ``N >= 2``.
        labels: ``[N]`` true classes.
        methods: distinct names of :data:`ATTRIBUTIONS`.
        init, seed: how the classifier is re-initialised (:func:`randomized_copy`); ``seed`` also pairs the
            images for the baseline.
        steps, batch_size: as :func:`attribution`.

    Returns:
        An :class:`AttributionComparison`, on the CPU.

    Raises:
        ValueError: bad images, labels, methods, init, seed, ``steps`` or ``batch_size``.
    """
    labels = check_images_and_methods(model, images, labels, methods, ATTRIBUTIONS, "methods")
    check_positive("steps", steps)
    check_positive("batch_size", batch_size)
    randomised_network = randomized_copy(model, CLASSIFIER, init=init, seed=seed)
    logits = _logits(model, images, batch_size)
    runner_up = logits.scatter(1, labels[:, None], float("-inf")).argmax(1)
    partner = derangement(len(images), seed)
    other_class, randomised, baseline = {}, {}, {}
    for method in methods:
        def explain(network: ZFNet, classes: torch.Tensor) -> torch.Tensor:
            return attribution(network, images, classes, method, steps=steps, batch_size=batch_size)

        trained = explain(model, labels)
        other_class[method] = map_similarity(trained, explain(model, runner_up))
        randomised[method] = map_similarity(trained, explain(randomised_network, labels))
        baseline[method] = map_similarity(trained, trained[partner])
        if method == "integrated_gradients":
            zero = _logits(model, torch.zeros_like(images[:1]), 1)[0]
            change = logits.gather(1, labels[:, None])[:, 0] - zero[labels]
            completeness = (trained.double().sum((1, 2, 3)) - change.double()).abs() / change.double().abs()
    return AttributionComparison(methods=tuple(methods), labels=labels, runner_up=runner_up, other_class=other_class,
                                 randomised=randomised, baseline=baseline,
                                 completeness=completeness if "integrated_gradients" in methods else None)


def _logits(model: ZFNet, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[N, classes]`` logits in evaluation semantics, on the CPU (the model's mode is restored)."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), exact_float32():
            return batched_maps(lambda part, rows: model(model.prepare_images(part)), images, batch_size)
    finally:
        model.train(training)


def _grad_cam(model: ZFNet, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM at conv5, sign kept, resized to the input and repeated over 3 colours (see :func:`attribution`)."""
    kept: dict[str, torch.Tensor] = {}
    handle = model.activation_module("conv5").register_forward_hook(lambda module, inputs, output:
                                                                      kept.__setitem__("conv5", output))
    try:
        with torch.enable_grad():
            logits = model(x)
            (gradient,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), kept["conv5"])
    finally:
        handle.remove()
    cam = (gradient.mean((2, 3), keepdim=True) * kept["conv5"]).sum(1, keepdim=True).detach()
    return F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)


def _integrated_gradients(model: ZFNet, x: torch.Tensor, classes: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrated gradients from the all-zero input, midpoint rule with ``steps`` points (see :func:`attribution`)."""
    total = torch.zeros_like(x)
    for k in range(steps):
        point = (x * ((k + 0.5) / steps)).requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(model(point).gather(1, classes[:, None]).sum(), point)
        total += gradient
    return (x * total / steps).detach()

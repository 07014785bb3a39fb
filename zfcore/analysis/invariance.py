"""Feature invariance (Zeiler & Fergus 2014, §4, Fig. 5).

Fig. 5 translates (vertically), scales and rotates five images and plots, against the amount, the
Euclidean distance between the original's and the transformed image's feature vectors in layer 1 and
layer 7, and the probability of the true class. §4: "Small transformations have a dramatic effect in
the first layer of the model, but a lesser impact at the top feature layer, being quasi-linear for
translation & scaling. The network output is stable to translations and scalings. In general, the
output is not invariant to rotation, except for object with rotational symmetry".

**Views of a larger source.** The network's input is a ``window`` x ``window`` square at the centre
of a (larger) uint8 source image, resampled to the network's input size. A transformation moves,
shrinks or turns that square inside the source (one affine sampling grid, bilinear), so a shift or a
rotation shows real pixels of the source wherever it has them; only beyond the source's border are
pixels mirrored (reflection padding). With the window centred on whole pixels and as large as the
input, the untransformed view is the source's centre crop, pixel for pixel.

**Amounts** (:func:`paper_amounts`) follow Fig. 5's axes, scaled to the input size: vertical shifts
of -60 ... 60 px at 224 px (-17 ... 17 px at 64 px), scale factors 1.0 ... 1.8 (zooming in), rotations
0 ... 350 degrees.

The distance of a layer is taken between the whole activations (every channel and position) of the
original and the transformed view, flattened; :func:`typical_distances` gives the scale that makes
the layers comparable (the median distance between different images).

**Controls.** A zoom of a 64-px image also blurs it: the view at ×1.8 is the central 36 px stretched to
64. :func:`resampled_sweep` separates the two: ``"zoom"`` crops the centre of a *larger* source and
resizes it to the input (antialiased), so every zoom has as much detail as the source holds, and
``"blur"`` resizes the untransformed view to the zoomed crop's size and back, without zooming. A shift
of a larger source brings in real pixels where a shift of a 64-px image mirrors them.

**Scores and verdicts.** How the distances grow (quasi-linear or saturating), how much of p(true) the views keep,
the rotation-symmetric images picked by a rule, and the C3 and C4 verdicts are :mod:`zfcore.analysis.stability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zfcore.checks import check_choice, check_labels, check_layers, check_pixels, check_positive, check_whole
from zfcore.data.loader import normalize
from zfcore.devices import model_device
from zfcore.models import ZFNet

__all__ = ["KINDS", "PAPER_SHIFT_PX", "PAPER_SIZE", "RESAMPLINGS", "InvarianceSweep", "paper_amounts",
           "resampled_sweep", "resampled_views", "transform_sweep", "transformation_sizes", "transformed_views",
           "typical_distances"]

KINDS = ("translate", "scale", "rotate")
"""Fig. 5's rows a-c: vertical translation (pixels of the input), scale (factor), rotation (degrees)."""
PAPER_SIZE = 224
"""The input size of the paper's network, to which Fig. 5's shifts refer."""
PAPER_SHIFT_PX = 60
"""Fig. 5 (a): vertical shifts of -60 ... 60 px at 224 px."""
RESAMPLINGS = ("zoom", "blur")
""":func:`resampled_sweep`'s kinds: a zoom of a larger source (real detail), and the blur-only control."""


@dataclass
class InvarianceSweep:
    """Fig. 5's curves for ``N`` images and ``A`` amounts of one transformation, on the CPU.

    Attributes:
        kind: ``"translate"``, ``"scale"`` or ``"rotate"``.
        amounts: ``[A]`` the amounts (pixels, factor or degrees).
        labels: ``[N]`` the true classes.
        distances: layer -> ``[N, A]`` Euclidean distance between the original's and the transformed
            view's flattened activations.
        true_probability: ``[N, A]`` p(true class) of each view.
        predicted: ``[N, A]`` the most probable class of each view.
        original_probability, original_prediction: ``[N]`` the same of the untransformed view.
    """

    kind: str
    amounts: torch.Tensor
    labels: torch.Tensor
    distances: dict[str, torch.Tensor]
    true_probability: torch.Tensor
    predicted: torch.Tensor
    original_probability: torch.Tensor
    original_prediction: torch.Tensor


def paper_amounts(kind: str, input_size: int = 64) -> torch.Tensor:
    """Fig. 5's amounts for ``kind`` at ``input_size`` px.

    ``"translate"``: 13 whole-pixel shifts over ±60 px x ``input_size`` / 224 (±17 at 64 px);
    ``"scale"``: 1.0 ... 1.8 in steps of 0.1; ``"rotate"``: 0 ... 350 degrees in steps of 10.
    """
    _check_kind(kind)
    if kind == "translate":
        largest = PAPER_SHIFT_PX * input_size / PAPER_SIZE
        return torch.linspace(-largest, largest, 13).round()
    if kind == "scale":
        return torch.linspace(1.0, 1.8, 9, dtype=torch.float64).float()
    return torch.arange(0.0, 360.0, 10.0)


def _check_kind(kind: str) -> None:
    check_choice("kind", kind, KINDS, "kinds")


def _identity(kind: str) -> float:
    return 0.0 if kind in ("translate", "rotate") else 1.0


def transformed_views(pixels: torch.Tensor, kind: str, amounts: torch.Tensor, input_size: int,
                      window: int) -> torch.Tensor:
    """Each source image seen through a transformed window: float ``[N, A, S, S, 3]`` pixels (0-255).

    Args:
        pixels: uint8 (or float 0-255) ``[N, H, W, 3]`` source images, ``H, W >= window``.
        kind: one of :data:`KINDS`; ``amounts``: ``[A]``.
        input_size: ``S``, the side of each view.
        window: the side, in source pixels, of the untransformed view (centred in the source).

    Returns:
        The views; a positive shift moves the content down, a scale ``f`` zooms in by ``f`` about the
        centre, a positive angle turns the content clockwise (as displayed).
    """
    count, height, width = pixels.shape[:3]
    amounts = amounts.double()
    zoom = amounts if kind == "scale" else torch.ones_like(amounts)
    angle = torch.deg2rad(amounts) if kind == "rotate" else torch.zeros_like(amounts)
    shift = -2.0 * amounts * window / input_size / height if kind == "translate" else torch.zeros_like(amounts)
    across, down = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    to_width, to_height = window / width, window / height  # output [-1, 1] -> source [-1, 1], per axis
    theta = torch.stack([
        torch.stack([across * to_width, down * to_width, torch.zeros_like(across)], -1),
        torch.stack([-down * to_height, across * to_height, shift], -1),
    ], -2).float()  # [A, 2, 3]
    grid = F.affine_grid(theta, [len(amounts), 3, input_size, input_size], align_corners=False)
    source = pixels.float().permute(0, 3, 1, 2)
    views = torch.empty(count, len(amounts), 3, input_size, input_size, device=pixels.device)
    for index in range(count):
        expanded = source[index : index + 1].expand(len(amounts), -1, -1, -1)
        views[index] = F.grid_sample(expanded, grid.to(pixels.device), mode="bilinear", padding_mode="reflection",
                                     align_corners=False)
    return views.permute(0, 1, 3, 4, 2)


def resampled_views(pixels: torch.Tensor, kind: str, factors: torch.Tensor, input_size: int,
                    window: int) -> torch.Tensor:
    """The zoom of a larger source, or its blur-only control: float ``[N, A, S, S, 3]`` pixels (0-255).

    Both start from the untransformed view: the central ``window`` x ``window`` square of each source,
    resized to ``S`` (bilinear, antialiased). ``"zoom"`` by ``f`` resizes the central ``window / f`` square
    instead, so a source larger than the input keeps its own detail; ``"blur"`` by ``f`` resizes the
    untransformed view to ``S / f`` and back to ``S``: the loss of detail a zoom of an ``S``-px image
    suffers, without the zoom. Crop and blur sides are whole pixels (a crop keeps the source's parity so
    that it stays centred), so a factor is realised to within one pixel of the crop.

    Args:
        pixels: uint8 (or float 0-255) ``[N, H, W, 3]`` sources, ``H, W >= window``.
        kind: ``"zoom"`` or ``"blur"``; ``factors``: ``[A]`` factors >= 1.
        input_size: ``S``, the side of each view.
        window: the side, in source pixels, of the untransformed view (centred in the source).
    """
    height, width = pixels.shape[1:3]
    source = pixels.float().permute(0, 3, 1, 2)

    def centre(side: int) -> torch.Tensor:
        top, left = (height - side) // 2, (width - side) // 2
        return source[:, :, top : top + side, left : left + side]

    def resize(images: torch.Tensor, side: int) -> torch.Tensor:
        if images.shape[-1] == side and images.shape[-2] == side:
            return images
        return F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)

    untransformed = resize(centre(window), input_size)
    views = []
    for factor in factors.double().tolist():
        if kind == "zoom":
            side = round(window / factor)
            side -= (height - side) % 2  # the same parity as the source: a centred crop
            views.append(resize(centre(max(side, 1)), input_size))
        else:
            views.append(resize(resize(untransformed, max(1, round(input_size / factor))), input_size))
    return torch.stack(views, 1).permute(0, 1, 3, 4, 2)


def _sweep(model: ZFNet, pixels: torch.Tensor, labels: torch.Tensor, kind: str, amounts: torch.Tensor,
           layers: Sequence[str], views_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
           mean_image: torch.Tensor | None, batch_size: int) -> InvarianceSweep:
    """Run the views ``views_of(pixels, [identity] + amounts)`` of every source through ``model``, in batches."""
    device = model_device(model)
    with_identity = torch.cat([torch.tensor([_identity(kind)]), amounts])
    per_image = len(with_identity)
    images_per_batch = max(1, batch_size // per_image)
    distances = {layer: [] for layer in layers}
    probabilities = []
    with torch.no_grad():
        for start in range(0, len(pixels), images_per_batch):
            views = views_of(pixels[start : start + images_per_batch].to(device), with_identity)  # [n, 1 + A, S, S, 3]
            count = len(views)
            inputs = model.prepare_images(normalize(views.flatten(0, 1), mean_image))
            trace = model.trace(inputs, layers)
            for layer in layers:
                features = trace.activations[layer].float().flatten(1).view(count, per_image, -1)
                distances[layer].append((features[:, 1:] - features[:, :1]).norm(dim=2).cpu())
            probabilities.append(trace.logits.float().softmax(1).view(count, per_image, -1).cpu())
    probability = torch.cat(probabilities) if probabilities else torch.empty(0, per_image, model.num_classes)
    true_probability = probability.gather(2, labels[:, None, None].expand(-1, per_image, 1))[..., 0]
    predicted = probability.argmax(2)
    return InvarianceSweep(
        kind=kind, amounts=amounts, labels=labels,
        distances={layer: torch.cat(parts) if parts else torch.empty(0, len(amounts)) for layer, parts in distances.items()},
        true_probability=true_probability[:, 1:], predicted=predicted[:, 1:],
        original_probability=true_probability[:, 0], original_prediction=predicted[:, 0],
    )


def _checked_sweep_inputs(model: ZFNet, pixels: np.ndarray | torch.Tensor, labels: object, kind: str,
                          amounts: torch.Tensor | Sequence[float], layers: Sequence[str], window: int | None,
                          batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str], int]:
    """The checked ``(pixels, labels, amounts, layers, window)`` of a sweep (see :func:`transform_sweep`)."""
    layers = check_layers("layers", layers, model.layer_names)
    check_positive("batch_size", batch_size)
    check_pixels("pixels", pixels)
    pixels = torch.as_tensor(np.asarray(pixels)) if not isinstance(pixels, torch.Tensor) else pixels
    window = check_whole("window", model.input_size if window is None else window, 1, min(pixels.shape[1:3]))
    labels = check_labels("labels", labels, model.num_classes, count=len(pixels))
    amounts = torch.as_tensor(np.asarray(amounts, dtype=np.float64)).reshape(-1).float()
    minimum = {"scale": 0.0, "zoom": 1.0, "blur": 1.0}.get(kind)
    finite = len(amounts) and bool(torch.isfinite(amounts).all())
    if not finite or (minimum == 0.0 and bool((amounts <= 0).any())) or (minimum == 1.0 and bool((amounts < 1).any())):
        valid = {0.0: "positive factors", 1.0: "factors >= 1"}.get(minimum, "finite numbers")
        raise ValueError(f"amounts={amounts.tolist()}: need at least one; valid amounts for {kind!r}: {valid}")
    return pixels, labels, amounts, layers, window


def transform_sweep(model: ZFNet, pixels: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor | Sequence[int],
                    kind: str, amounts: torch.Tensor | Sequence[float], layers: Sequence[str] = ("conv1", "fc7"), *,
                    window: int | None = None, mean_image: torch.Tensor | None = None,
                    batch_size: int = 256) -> InvarianceSweep:
    """Fig. 5's distances and probabilities for ``N`` images under one transformation (§4).

    Args:
        model: a :class:`~zfcore.models.ZFNet` in eval mode; the views are built and run on its device.
        pixels: uint8 ``[N, H, W, 3]`` source images, at least ``window`` px on each side (larger sources
            give shifts and rotations real context; see the module docstring).
        labels: ``[N]`` true classes, whole numbers ``0 .. num_classes - 1`` (floats and bools are refused).
        kind: ``"translate"`` (vertical, pixels of the input), ``"scale"`` (factor > 0) or ``"rotate"``
            (degrees).
        amounts: ``[A]`` amounts (:func:`paper_amounts` gives Fig. 5's); the untransformed view (0, or
            a factor of 1) is always the reference, whether or not it is among them.
        layers: the layers whose activations are compared (Fig. 5: layers 1 and 7), or one layer name.
        window: the side, in source pixels, of the untransformed view (default: the network's input size).
        mean_image: the network's mean image for ``"pixel-mean"`` preprocessing, else ``None``.
        batch_size: views per forward pass.

    Returns:
        :class:`InvarianceSweep` with ``[N, A]`` results, on the CPU.

    Raises:
        ValueError: a bad kind, amount, layer, image array, label, window or batch size.
    """
    _check_kind(kind)
    pixels, labels, amounts, layers, window = _checked_sweep_inputs(model, pixels, labels, kind, amounts, layers,
                                                                    window, batch_size)
    size = model.input_size
    return _sweep(model, pixels, labels, kind, amounts, layers,
                  lambda part, values: transformed_views(part, kind, values, size, window), mean_image, batch_size)


def resampled_sweep(model: ZFNet, pixels: np.ndarray | torch.Tensor,
                    labels: np.ndarray | torch.Tensor | Sequence[int], kind: str,
                    factors: torch.Tensor | Sequence[float], layers: Sequence[str] = ("conv1", "fc7"), *,
                    window: int | None = None, mean_image: torch.Tensor | None = None,
                    batch_size: int = 256) -> InvarianceSweep:
    """Like :func:`transform_sweep`, for the views of :func:`resampled_views`: a zoom of a larger source, or the
    blur-only control (the untransformed view resampled to the zoomed crop's size and back).

    Args:
        kind: ``"zoom"`` or ``"blur"``; ``factors``: ``[A]`` factors >= 1 (the factor 1 is the reference).
        model, pixels, labels, layers, window, mean_image, batch_size: as :func:`transform_sweep`.

    Raises:
        ValueError: a bad kind, factor, layer, image array, label, window or batch size.
    """
    check_choice("kind", kind, RESAMPLINGS, "kinds")
    pixels, labels, factors, layers, window = _checked_sweep_inputs(model, pixels, labels, kind, factors, layers,
                                                                    window, batch_size)
    size = model.input_size
    return _sweep(model, pixels, labels, kind, factors, layers,
                  lambda part, values: resampled_views(part, kind, values, size, window), mean_image, batch_size)


def typical_distances(model: ZFNet, images: torch.Tensor, layers: Sequence[str] = ("conv1", "fc7"),
                      batch_size: int = 256) -> dict[str, float]:
    """Per layer, the median Euclidean distance between the flattened activations of two different images.

    The scale against which a transformation's distance is small or large: dividing Fig. 5's
    distances by it makes layer 1 and layer 7 comparable.

    Args:
        images: float ``[N, 3, S, S]`` network inputs, ``N >= 2``.
        layers: the layers, or one layer name.
        batch_size: images per forward pass.
    """
    model.check_images(images)
    if len(images) < 2:
        raise ValueError(f"{len(images)} images: need at least 2 to measure distances between different images")
    layers = check_layers("layers", layers, model.layer_names)
    check_positive("batch_size", batch_size)
    features = {layer: [] for layer in layers}
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            trace = model.trace(model.prepare_images(images[start : start + batch_size]), layers)
            for layer in layers:
                features[layer].append(trace.activations[layer].float().flatten(1).cpu())
    upper = torch.triu_indices(len(images), len(images), offset=1)
    result = {}
    for layer in layers:
        pairwise = torch.cdist(torch.cat(features[layer]).double(), torch.cat(features[layer]).double())
        result[layer] = float(pairwise[upper[0], upper[1]].median())
    return result


def transformation_sizes(sweep: InvarianceSweep) -> torch.Tensor:
    """``[A]``: how far each of ``sweep``'s views is from the original: |shift|, |angle|, or |factor - 1|."""
    return (sweep.amounts - _identity(sweep.kind)).abs()



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
:func:`rotation_self_similarity` scores how much an image looks like itself when turned, so that
"objects with rotational symmetry" are picked by a rule, not by class names chosen after looking.

**Verdicts.** :func:`c3_verdict` and :func:`c4_verdict` turn the sweeps into the book's records
(:class:`~zfcore.verdicts.Verdict`), with the thresholds below as constants.
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
from zfcore.stats import Estimate, bootstrap, paired_difference
from zfcore.verdicts import Verdict

__all__ = ["FIRST_LAYER", "KINDS", "LINEAR_RATIO_LIMIT", "LINE_RATIO", "PAPER_SHIFT_PX", "PAPER_SIZE", "RESAMPLINGS",
           "SELF_SIMILAR_SHARE", "SQRT_RATIO", "STABLE_RETENTION", "STRATA", "TOP_LAYER", "InvarianceSweep",
           "SaturationFits", "c3_verdict", "c4_verdict", "matched_retention_difference", "paper_amounts",
           "pick_examples", "resampled_sweep", "resampled_views", "retention", "rotation_self_similarity",
           "saturation_fits", "transform_sweep", "transformation_sizes", "transformed_views", "typical_distances"]

KINDS = ("translate", "scale", "rotate")
"""Fig. 5's rows a-c: vertical translation (pixels of the input), scale (factor), rotation (degrees)."""
PAPER_SIZE = 224
"""The input size of the paper's network, to which Fig. 5's shifts refer."""
PAPER_SHIFT_PX = 60
"""Fig. 5 (a): vertical shifts of -60 ... 60 px at 224 px."""
RESAMPLINGS = ("zoom", "blur")
""":func:`resampled_sweep`'s kinds: a zoom of a larger source (real detail), and the blur-only control."""
FIRST_LAYER, TOP_LAYER = "conv1", "fc7"
"""Fig. 5's layers 1 and 7."""
SETTLE_INCONCLUSIVE = ("more images, or the paper's 224-px network, for the parts whose interval spans the rule's "
                       "boundary")
"""What would settle an inconclusive C3 or C4."""
LINE_RATIO, SQRT_RATIO = 0.5, 2**-0.5
"""The half-range-to-maximum ratio of a distance that grows as a line through the origin (0.5) and as √x (0.71)."""
LINEAR_RATIO_LIMIT = 0.6
"""C3's rule: fc7's distance is quasi-linear in a transformation if the 95 % interval of its mean half-range
ratio lies below 0.6 (between a line's 0.5 and √x's 0.71), saturating if the interval lies above."""
STABLE_RETENTION = 0.75
"""C4's rule: the output is stable to a transformation if the views keep at least 75 % of the originals' p(true)
(the interval of the ratio of means lies above 0.75); not stable if the interval lies below."""
SELF_SIMILAR_SHARE = 1 / 3
"""C4's rule for "objects with rotational symmetry": the third of the images most like themselves when turned
(:func:`rotation_self_similarity`) against the third least like themselves."""
STRATA = 4
"""C4's rule: rotation retention is compared within quartiles of the originals' p(true), so that the groups are
matched on starting confidence."""


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


@dataclass
class SaturationFits:
    """Per image, how a layer's distance grows with the size of a transformation (§4's "quasi-linear").

    Attributes:
        half_range_ratio: ``[N]`` the distance at half the largest size over the distance at the largest size:
            :data:`LINE_RATIO` (0.5) for a line through the origin, :data:`SQRT_RATIO` (0.71) for √x, near 1
            for a distance that jumps at once and stays.
        line_r2, sqrt_r2: ``[N]`` R² of the least-squares fits ``a + b x`` and ``a + b √x`` (two parameters each).
        sqrt_better: ``[N]`` whether the √ fit leaves the smaller squared error.
        sizes: ``[U]`` the different sizes, ascending; profile: ``[N, U]`` the mean distance at each over the
            distance at the largest (the curve the ratio is read from).
    """

    half_range_ratio: torch.Tensor
    line_r2: torch.Tensor
    sqrt_r2: torch.Tensor
    sqrt_better: torch.Tensor
    sizes: torch.Tensor
    profile: torch.Tensor


def _fit_r2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per row of ``y`` ``[N, A]``, R² of the least-squares line ``a + b x`` (``x`` ``[A]``)."""
    x_centred, y_centred = x - x.mean(), y - y.mean(1, keepdim=True)
    covariance = (x_centred * y_centred).sum(1)
    return covariance**2 / ((x_centred**2).sum() * (y_centred**2).sum(1))


def saturation_fits(sizes: torch.Tensor | Sequence[float], distances: torch.Tensor) -> SaturationFits:
    """Linear against saturating: per image, the half-range ratio and the R² of a line and of a √ curve.

    R² of a line alone is no test of linearity (a √x curve also gets R² ≈ 0.9); the half-range ratio and the
    comparison of two fits with the same number of parameters are.

    Args:
        sizes: ``[A]`` how far each view is from the original, >= 0 (``sweep.amounts.abs()`` for a shift,
            ``sweep.amounts - 1`` for a factor); the untransformed view, if among them, has size 0. Equal
            sizes (a shift up and down) are averaged for the half-range ratio.
        distances: ``[N, A]`` distances.

    Returns:
        :class:`SaturationFits` (NaN ratios and R² for an image whose distances do not vary).

    Raises:
        ValueError: a shape mismatch, negative or non-finite sizes, or fewer than 3 different sizes.
    """
    x = torch.as_tensor(np.asarray(sizes, dtype=np.float64)).reshape(-1)
    y = distances.double()
    if y.dim() != 2 or y.shape[1] != len(x):
        raise ValueError(f"distances have shape {tuple(distances.shape)}; expected [N, {len(x)}]")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()) or len(x.unique()) < 3:
        raise ValueError(f"sizes={x.tolist()}: need at least 3 different finite sizes >= 0")
    unique = x.unique()
    means = torch.stack([y[:, x == size].mean(1) for size in unique], 1)  # [N, U]
    half = float(unique.max()) / 2
    upper = int(torch.searchsorted(unique, torch.tensor(half, dtype=torch.float64)))
    lower = upper - 1
    weight = (half - float(unique[lower])) / float(unique[upper] - unique[lower])
    at_half = means[:, lower] + weight * (means[:, upper] - means[:, lower])
    ratio = at_half / means[:, -1]
    line_r2, sqrt_r2 = _fit_r2(x, y), _fit_r2(x.sqrt(), y)
    return SaturationFits(ratio.float(), line_r2.float(), sqrt_r2.float(), sqrt_r2 > line_r2, unique.float(),
                          (means / means[:, -1:]).float())


def rotation_self_similarity(pixels: np.ndarray | torch.Tensor, angles: torch.Tensor | Sequence[float],
                             window: int | None = None) -> torch.Tensor:
    """Per image, how much it looks like itself when turned: the mean over ``angles`` of the correlation of its
    grey levels with those of the turned view, inside the central disc (which a turn keeps inside the view).

    1 for a pattern that every turn leaves as it is (a disc, rings), about 0 for a texture or an object that
    a turn moves elsewhere; a rule-based stand-in for "objects with rotational symmetry" (§4).

    Args:
        pixels: uint8 ``[N, H, W, 3]`` sources.
        angles: ``[A]`` angles in degrees (Fig. 5's: 10 ... 350).
        window: the side of the view in source pixels (default: the smaller side).

    Raises:
        ValueError: not uint8 pixels, no angles, or a bad window.
    """
    check_pixels("pixels", pixels)
    source = torch.as_tensor(np.asarray(pixels)) if not isinstance(pixels, torch.Tensor) else pixels
    window = check_whole("window", min(source.shape[1:3]) if window is None else window, 2, min(source.shape[1:3]))
    angles = torch.as_tensor(np.asarray(angles, dtype=np.float64)).reshape(-1)
    if not len(angles):
        raise ValueError("angles=[]: give at least one angle in degrees")
    grey = transformed_views(source, "rotate", torch.cat([torch.zeros(1, dtype=torch.float64), angles]), window,
                             window).mean(-1)  # [N, 1 + A, S, S]
    centre = (torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2
    disc = (centre[:, None] + centre[None, :]) <= (window / 2) ** 2
    values = grey[:, :, disc].double()
    values = values - values.mean(2, keepdim=True)
    norms = values.norm(dim=2).clamp_min(1e-12)
    correlation = (values[:, 1:] * values[:, :1]).sum(2) / (norms[:, 1:] * norms[:, :1])
    return correlation.mean(1).float()


def _ratio_of_means(numerator: torch.Tensor, denominator: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A bootstrap statistic over image indices: sum of ``numerator`` over sum of ``denominator``."""
    def statistic(indices: torch.Tensor) -> torch.Tensor:
        chosen = indices.long()
        return numerator[chosen].sum(-1) / denominator[chosen].sum(-1)
    return statistic


def retention(original: torch.Tensor, views: torch.Tensor, *, seed: int = 0) -> Estimate:
    """How much of p(true) the views keep: mean p(true) of the views over mean p(true) of the originals, with a
    bootstrap interval over images (a ratio of means: per-image ratios blow up for images already wrong).

    Args:
        original: ``[N]`` p(true) of the untransformed views; ``views``: ``[N, A]`` (or ``[N]``) of the views.
        seed: the bootstrap's seed.

    Raises:
        ValueError: fewer than 2 images, mismatched lengths, or originals that sum to 0.
    """
    original = original.double().reshape(-1)
    kept = views.double().reshape(len(views), -1).mean(1)
    if len(kept) != len(original) or len(original) < 2:
        raise ValueError(f"{len(original)} originals and {len(kept)} view rows: need the same number, at least 2")
    if float(original.sum()) <= 0:
        raise ValueError("the originals' p(true) sum to 0: retention is undefined")
    return bootstrap(torch.arange(len(original), dtype=torch.float64), _ratio_of_means(kept, original), seed=seed)


def matched_retention_difference(original: torch.Tensor, views: torch.Tensor, group: torch.Tensor | np.ndarray, *,
                                 strata: int = STRATA, absolute: bool = False, seed: int = 0) -> Estimate:
    """Retention of group A minus group B, matched on starting confidence: within quantile bins of the
    originals' p(true), the difference of the groups' :func:`retention` (or, with ``absolute``, of their mean
    drops of p(true)), averaged with the bins' image counts as weights; bootstrap interval over images.

    Args:
        original: ``[N]`` p(true) of the originals; ``views``: ``[N, A]`` p(true) of the views.
        group: ``[N]`` 1 for group A, 0 for group B, -1 for images in neither.
        strata: the number of bins (quantiles of the originals' p(true) over both groups).
        absolute: compare mean drops (original minus views' mean) instead of retentions.
        seed: the bootstrap's seed.

    Raises:
        ValueError: mismatched lengths, a group value other than -1, 0, 1, fewer than 2 images in a group,
            or fewer than 1 stratum.
    """
    group = torch.as_tensor(np.asarray(group)).long().reshape(-1)
    strata = check_whole("strata", strata, 1)
    if len(group) != len(original) or len(views) != len(original):
        raise ValueError(f"{len(original)} originals, {len(views)} view rows, {len(group)} group labels: need the same")
    if not bool(torch.isin(group, torch.tensor([-1, 0, 1])).all()):
        raise ValueError(f"group values {sorted(set(group.tolist()))}: valid values are -1 (neither), 0 (B), 1 (A)")
    used = group >= 0
    if int((group == 1).sum()) < 2 or int((group == 0).sum()) < 2:
        raise ValueError(f"{int((group == 1).sum())} images in group A and {int((group == 0).sum())} in B: need 2 each")
    start = original.double()[used]
    kept = views.double().reshape(len(views), -1).mean(1)[used]
    in_a = (group[used] == 1).double()
    edges = torch.quantile(start, torch.linspace(0, 1, strata + 1, dtype=torch.float64)[1:-1])
    stratum = torch.bucketize(start, edges)
    one_hot = torch.nn.functional.one_hot(stratum, strata).double()  # [n, K]

    def statistic(indices: torch.Tensor) -> torch.Tensor:
        chosen = indices.long()
        bins, a = one_hot[chosen], in_a[chosen][..., None]
        result = []
        for members in (a, 1 - a):
            weights = bins * members
            if absolute:
                value = ((weights * (start[chosen] - kept[chosen])[..., None]).sum(-2)
                         / weights.sum(-2).clamp_min(1e-12))
            else:
                value = ((weights * kept[chosen][..., None]).sum(-2)
                         / (weights * start[chosen][..., None]).sum(-2).clamp_min(1e-12))
            result.append(value)
        both = ((bins * a).sum(-2) > 0) & ((bins * (1 - a)).sum(-2) > 0)
        counts = bins.sum(-2) * both
        return ((result[0] - result[1]) * counts).sum(-1) / counts.sum(-1).clamp_min(1e-12)

    return bootstrap(torch.arange(len(start), dtype=torch.float64), statistic, seed=seed)


def pick_examples(true_probability: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor,
                  class_names: Sequence[str], *, preferred: Sequence[str] = (),
                  self_similarity: torch.Tensor | None = None, count: int = 5, minimum: float = 0.5) -> list[int]:
    """Fig. 5's examples by a rule fixed before looking: images the network classifies correctly with p(true) >=
    ``minimum``; first those of the ``preferred`` classes (the paper's), then the one most like itself when
    turned (``self_similarity``: a rotation-symmetric example), then the most confident, up to ``count``.

    Args:
        true_probability, predicted, labels: ``[N]`` each, of the untransformed images.
        class_names: the network's class names (for ``preferred``).
        preferred: class names to take first, in this order, where they qualify.
        self_similarity: ``[N]`` :func:`rotation_self_similarity`, or ``None`` to skip that pick.
        count: how many examples at most; ``minimum``: the p(true) they need.

    Returns:
        Indices into the ``N`` images (fewer than ``count`` where fewer qualify).

    Raises:
        ValueError: mismatched lengths, or a bad count.
    """
    count = check_whole("count", count, 1)
    if not len(true_probability) == len(predicted) == len(labels):
        raise ValueError(f"{len(true_probability)} p(true), {len(predicted)} predictions, {len(labels)} labels: "
                         "need one of each per image")
    if self_similarity is not None and len(self_similarity) != len(labels):
        raise ValueError(f"{len(self_similarity)} self-similarities for {len(labels)} images")
    qualifies = (predicted == labels) & (true_probability >= minimum)
    picks = [index for name in preferred if name in class_names
             for index in torch.nonzero(qualifies & (labels == class_names.index(name))).flatten().tolist()[:1]]
    candidates = torch.nonzero(qualifies).flatten()
    if self_similarity is not None and len(candidates):
        most_similar = int(candidates[self_similarity[candidates].argmax()])
        picks += [most_similar] if most_similar not in picks else []
    by_confidence = candidates[true_probability[candidates].argsort(descending=True)].tolist()
    picks += [index for index in by_confidence if index not in picks]
    return picks[:count]


def transformation_sizes(sweep: InvarianceSweep) -> torch.Tensor:
    """``[A]``: how far each of ``sweep``'s views is from the original: |shift|, |angle|, or |factor - 1|."""
    return (sweep.amounts - _identity(sweep.kind)).abs()


def _smallest(sweep: InvarianceSweep) -> torch.Tensor:
    """The columns of ``sweep``'s smallest transformation (the smallest size above 0)."""
    sizes = transformation_sizes(sweep)
    moved = sizes[sizes > 0]
    if not len(moved):
        raise ValueError(f"the {sweep.kind} sweep has no transformed view (amounts {sweep.amounts.tolist()})")
    return sizes == moved.min()


def _decide(estimate: Estimate, limit: float, above_holds: bool) -> bool | None:
    """``True``/``False`` where the interval lies wholly on one side of ``limit``; ``None`` where it spans it."""
    if estimate.low > limit:
        return above_holds
    if estimate.high < limit:
        return not above_holds
    return None


def _outcome(parts: dict[str, bool | None]) -> str:
    """agree (every part holds), differ (every part fails), partly (some hold, some fail), else inconclusive."""
    held = [name for name, value in parts.items() if value is True]
    failed = [name for name, value in parts.items() if value is False]
    if len(held) == len(parts):
        return "agree"
    if len(failed) == len(parts):
        return "differ"
    return "partly" if held and failed else "inconclusive"


def _listed(parts: dict[str, bool | None]) -> str:
    """``"holds: a, b; fails: c; undecided: d"`` (empty groups left out)."""
    groups = (("holds", True), ("fails", False), ("undecided", None))
    return "; ".join(f"{word}: {', '.join(name for name, value in parts.items() if value is wanted)}"
                     for word, wanted in groups if any(value is wanted for value in parts.values()))


def _record(estimate: Estimate) -> dict[str, float | int]:
    return {"value": estimate.value, "low": estimate.low, "high": estimate.high, "n": estimate.n}


def _c3_measures(sweep: InvarianceSweep, typical: dict[str, float]) -> tuple[Estimate, Estimate, SaturationFits]:
    """(layer 1 minus layer 7 after the smallest transformation, in typical distances; fc7's half-range ratio;
    fc7's fits) of one sweep."""
    columns = _smallest(sweep)
    first = sweep.distances[FIRST_LAYER][:, columns].mean(1) / typical[FIRST_LAYER]
    top = sweep.distances[TOP_LAYER][:, columns].mean(1) / typical[TOP_LAYER]
    fits = saturation_fits(transformation_sizes(sweep), sweep.distances[TOP_LAYER])
    return paired_difference(first, top), bootstrap(fits.half_range_ratio), fits


def c3_verdict(translate: InvarianceSweep, scale: InvarianceSweep, typical: dict[str, float],
               control_translate: InvarianceSweep, control_scale: InvarianceSweep,
               control_typical: dict[str, float]) -> Verdict:
    """C3 (§4, Fig. 5): layer 1 moves more than layer 7 under a small transformation, and layer 7's distance is
    quasi-linear in shift and scale.

    Rule (fixed before the numbers): for the vertical shift and the scale, (a) *layer 1 moves more*: the per-image
    paired difference conv1 - fc7 of the distances after the smallest transformation, each divided by its layer's
    typical distance between different images, has a 95 % interval above 0 (below 0: fails); (b) *quasi-linear*:
    the 95 % interval of fc7's mean half-range ratio (:func:`saturation_fits`) lies below
    :data:`LINEAR_RATIO_LIMIT` (above it: saturating, fails). An interval that spans its boundary leaves its part
    undecided. agree: all four parts hold; differ: all fail; partly: some hold and some fail; else inconclusive.

    Args:
        translate, scale: the trained network's sweeps (layers conv1 and fc7; the shift's amounts include 0 and
            the scale's 1, so that the fits see the origin).
        typical: :func:`typical_distances` of the trained network.
        control_translate, control_scale, control_typical: the same for a random-weights network of the same
            architecture (the control: what the architecture alone gives).

    Raises:
        ValueError: a sweep without conv1 and fc7, or without a transformed view.
    """
    for sweep in (translate, scale, control_translate, control_scale):
        missing = [layer for layer in (FIRST_LAYER, TOP_LAYER) if layer not in sweep.distances]
        if missing:
            raise ValueError(f"the {sweep.kind} sweep lacks {missing}; C3 compares {FIRST_LAYER} and {TOP_LAYER}")
    measured = {"shift": _c3_measures(translate, typical), "scale": _c3_measures(scale, typical)}
    control = {"shift": _c3_measures(control_translate, control_typical),
               "scale": _c3_measures(control_scale, control_typical)}
    parts: dict[str, bool | None] = {}
    for kind, (gap, ratio, _) in measured.items():
        parts[f"layer 1 moves more ({kind})"] = _decide(gap, 0.0, above_holds=True)
        parts[f"quasi-linear ({kind})"] = _decide(ratio, LINEAR_RATIO_LIMIT, above_holds=False)
    outcome = _outcome(parts)
    details = {}
    for arm, values in (("trained", measured), ("random weights", control)):
        for kind, (gap, ratio, fits) in values.items():
            details[f"{arm}, {kind}: conv1 - fc7 after the smallest, in typical distances"] = _record(gap)
            details[f"{arm}, {kind}: fc7 half-range ratio"] = _record(ratio)
            details[f"{arm}, {kind}: share of images where a √ fit beats a line"] = float(
                fits.sqrt_better.double().mean())
            details[f"{arm}, {kind}: median R² of a line"] = float(fits.line_r2.nanmedian())
    shift_ratio, scale_ratio = measured["shift"][1], measured["scale"][1]
    reason = (f"{_listed(parts)}: fc7's distance reaches {shift_ratio.value:.2f} (shift) and {scale_ratio.value:.2f} "
              f"(scale) of its largest at half the range, where a line gives {LINE_RATIO} and √x {SQRT_RATIO:.2f}; "
              f"a random-weights network gives {control['shift'][1].value:.2f} and {control['scale'][1].value:.2f}.")
    settle = SETTLE_INCONCLUSIVE if outcome == "inconclusive" else ""
    return Verdict(
        claim="C3",
        measure=("the half-range ratio: per image, a layer's distance to the original at half the largest "
                 "transformation over its distance at the largest (a line through the origin gives 0.5, √x 0.71, a "
                 "jump that stays 1; the chapter's table gives the scale's ratio and layer 1 vs layer 7); here fc7 "
                 "under vertical shift"),
        estimate=shift_ratio,
        control=("a random-weights network of the same architecture (He initialisation): fc7's half-range ratio "
                 "under vertical shift"),
        control_estimate=control["shift"][1],
        rule=(f"for shift and scale each: layer 1 moves more if the interval of the paired difference conv1 − fc7 "
              f"(each over its typical distance) after the smallest transformation lies above 0; quasi-linear if "
              f"the interval of fc7's half-range ratio lies below LINEAR_RATIO_LIMIT = {LINEAR_RATIO_LIMIT}. "
              f"agree: all four hold; differ: all fail; partly: some hold, some fail; else inconclusive"),
        outcome=outcome, reason=reason, settle=settle, details=details, digits=2)


def c4_verdict(shift_real: InvarianceSweep, shift_mirrored: InvarianceSweep, zoom_real: InvarianceSweep,
               zoom_small: InvarianceSweep, blur: InvarianceSweep, rotation: InvarianceSweep,
               self_similarity: torch.Tensor, full_detail_factor: float | None = None) -> Verdict:
    """C4 (§4, Fig. 5): the output is stable to shifts and zooms, not to rotation, except for rotation-symmetric
    objects.

    Rule (fixed before the numbers): *stable to shifts* and *stable to zooms*: the 95 % interval of
    :func:`retention` over all shifts (of sources with real context) and over all zooms (of larger sources)
    lies above :data:`STABLE_RETENTION` (below it: fails); *not invariant to rotation*: the interval of the
    retention over all angles lies below it (above: fails); *except symmetric objects*: the third of the images
    most like themselves when turned keep more of p(true) than the least-like third, matched on starting
    confidence (:func:`matched_retention_difference`, :data:`STRATA` bins), interval above 0 (below 0:
    fails). An interval that spans its boundary leaves its part undecided. agree: all four hold; differ: all
    fail; partly: some hold and some fail; else inconclusive.

    Args:
        shift_real: vertical shifts of sources larger than the view (real pixels where the view moves);
            ``shift_mirrored``: the same views' shifts from the view alone (mirrored beyond its border).
        zoom_real: ``"zoom"`` of larger sources (:func:`resampled_sweep`); ``zoom_small``: ``"scale"`` of the
            same images' 64-px views (:func:`transform_sweep`); ``blur``: the blur-only control of those views.
            All three on the same images, with the same factors.
        rotation: rotations of other images; ``self_similarity``: their :func:`rotation_self_similarity`.
        full_detail_factor: the largest zoom up to which (nearly) all larger sources keep full detail; the
            details then add the three zoom arms' retention over the zooms up to it (``None``: not added).

    Raises:
        ValueError: sweeps of different images where they must be paired, or a self-similarity per image missing.
    """
    if not len(shift_real.labels) == len(shift_mirrored.labels):
        raise ValueError(f"{len(shift_real.labels)} and {len(shift_mirrored.labels)} images in the two shift sweeps; "
                         "they must be the same images")
    if not len(zoom_real.labels) == len(zoom_small.labels) == len(blur.labels):
        raise ValueError(f"{len(zoom_real.labels)}, {len(zoom_small.labels)}, {len(blur.labels)} images in the zoom, "
                         "small-zoom and blur sweeps; they must be the same images")
    if len(self_similarity) != len(rotation.labels):
        raise ValueError(f"{len(self_similarity)} self-similarities for {len(rotation.labels)} rotated images")

    def kept(sweep: InvarianceSweep) -> Estimate:
        return retention(sweep.original_probability, sweep.true_probability[:, transformation_sizes(sweep) > 0])

    shift, mirrored, zoom, small, blurred, turned = (kept(sweep) for sweep in (shift_real, shift_mirrored, zoom_real,
                                                                             zoom_small, blur, rotation))
    order = self_similarity.double().argsort(descending=True)
    third = max(2, round(len(order) * SELF_SIMILAR_SHARE))
    group = torch.full((len(order),), -1, dtype=torch.long)
    group[order[:third]], group[order[-third:]] = 1, 0
    views = rotation.true_probability[:, transformation_sizes(rotation) > 0]
    symmetric = matched_retention_difference(rotation.original_probability, views, group)
    symmetric_drop = matched_retention_difference(rotation.original_probability, views, group, absolute=True)
    parts = {"stable to shifts": _decide(shift, STABLE_RETENTION, above_holds=True),
             "stable to zooms": _decide(zoom, STABLE_RETENTION, above_holds=True),
             "not invariant to rotation": _decide(turned, STABLE_RETENTION, above_holds=False),
             "except symmetric objects": _decide(symmetric, 0.0, above_holds=True)}
    outcome = _outcome(parts)
    largest = transformation_sizes(shift_real) == transformation_sizes(shift_real).max()
    details = {
        "retention, shifts with real context": _record(shift), "retention, shifts mirrored": _record(mirrored),
        "p(true) at the largest shifts, real minus mirrored": _record(paired_difference(
            shift_real.true_probability[:, largest].mean(1), shift_mirrored.true_probability[:, largest].mean(1))),
        "retention, zooms of larger sources": _record(zoom), "retention, zooms of the 64-px views": _record(small),
        "retention, blur only": _record(blurred),
        "p(true) over the zooms, 64-px zoom minus blur only": _record(paired_difference(
            zoom_small.true_probability[:, transformation_sizes(zoom_small) > 0].mean(1),
            blur.true_probability[:, transformation_sizes(blur) > 0].mean(1))),
        "retention, rotations": _record(turned),
        "rotation retention, self-similar third minus least-similar third, matched": _record(symmetric),
        "rotation drop of p(true), self-similar third minus least-similar third, matched": _record(symmetric_drop),
    }
    if full_detail_factor is not None:
        for name, sweep in (("zooms of larger sources", zoom_real), ("zooms of the 64-px views", zoom_small),
                            ("blur only", blur)):
            sizes = transformation_sizes(sweep)
            within = (sizes > 0) & (sweep.amounts <= full_detail_factor + 1e-6)
            details[f"retention, {name}, up to ×{full_detail_factor:g}"] = _record(
                retention(sweep.original_probability, sweep.true_probability[:, within]))
    reason = (f"{_listed(parts)}: larger sources keep {100 * zoom.value:.0f} % of p(true) over the zooms, the blur "
              f"alone {100 * blurred.value:.0f} % and the 64-px zoom {100 * small.value:.0f} %; shifts keep "
              f"{100 * shift.value:.0f} % (mirrored {100 * mirrored.value:.0f} %), rotations "
              f"{100 * turned.value:.0f} %, "
              f"and self-similar images keep {100 * symmetric.value:+.0f} points more.")
    settle = SETTLE_INCONCLUSIVE if outcome == "inconclusive" else ""
    return Verdict(
        claim="C4",
        measure=("retention: the mean p(true) of the transformed views over the originals' mean (the chapter's "
                 "table gives shifts, rotations and the self-similar images' advantage); here zooms ×1.1 … ×1.8 of "
                 "sources larger than the view, which keep the detail the source has"),
        estimate=zoom,
        control=("blur only: the same 64-px views resampled to each zoomed crop's size and back, without zooming "
                 "(what a zoom of a 64-px image loses in detail alone)"),
        control_estimate=blurred,
        rule=(f"stable to shifts / zooms if the interval of the retention lies above STABLE_RETENTION = "
              f"{STABLE_RETENTION}; not invariant to rotation if it lies below; except symmetric objects if the "
              f"third of the images most like themselves when turned (SELF_SIMILAR_SHARE) keep more than the least "
              f"like third, matched within STRATA = {STRATA} bins of starting p(true), interval above 0. agree: "
              f"all four hold; differ: all fail; partly: some hold, some fail; else inconclusive"),
        outcome=outcome, reason=reason, settle=settle, details=details, scale=100, digits=1, unit=" %")

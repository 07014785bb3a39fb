"""Tests of zfcore.analysis.invariance (§4, Fig. 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zfcore.analysis.invariance import (KINDS, InvarianceSweep, paper_amounts, resampled_sweep, resampled_views,
                                        transform_sweep, transformed_views, typical_distances)
from zfcore.analysis.stability import (LINE_RATIO, LINEAR_RATIO_LIMIT, SQRT_RATIO, STABLE_RETENTION, c3_verdict,
                                       c4_verdict, matched_retention_difference, pick_examples, retention,
                                       rotation_self_similarity, saturation_fits)
from zfcore.data.loader import normalize
from zfcore.models import zfnet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zfnet(10, 64, widths=(8, 16, 16, 16, 16), fc=32, init="he").eval()


@pytest.fixture(scope="module")
def sources():
    generator = np.random.default_rng(0)
    return generator.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_untransformed_view_gives_distance_zero_and_the_original_probability(model, sources, kind):
    """The identity (shift 0, factor 1, angle 0) is the source's centre crop, pixel for pixel: distance 0
    in every layer and p(true) of a plain forward pass of that crop; other amounts move the features."""
    amounts = paper_amounts(kind)[:4] if kind != "translate" else torch.tensor([0.0, 3.0, -6.0])
    sweep = transform_sweep(model, sources, [1, 2, 3], kind, amounts, layers=("conv1", "conv5", "fc7"))
    for layer, distances in sweep.distances.items():
        assert tuple(distances.shape) == (3, len(amounts))
        assert float(distances[:, 0].abs().max()) == 0.0, layer
        assert float(distances[:, 1:].min()) > 0.0, layer
    crop = torch.from_numpy(sources[:, 16:80, 16:80].copy())
    with torch.no_grad():
        probability = model(normalize(crop)).softmax(1)
    expected = probability[torch.arange(3), torch.tensor([1, 2, 3])]
    torch.testing.assert_close(sweep.true_probability[:, 0], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(sweep.original_probability, expected, atol=1e-6, rtol=0)
    assert torch.equal(sweep.original_prediction, probability.argmax(1))
    assert tuple(sweep.predicted.shape) == tuple(sweep.true_probability.shape) == (3, len(amounts))


def test_translation_of_a_constant_image_changes_nothing(model):
    constant = np.full((2, 64, 64, 3), 120, dtype=np.uint8)
    sweep = transform_sweep(model, constant, [0, 4], "translate", paper_amounts("translate"))
    for distances in sweep.distances.values():
        assert float(distances.abs().max()) < 1e-3
    torch.testing.assert_close(sweep.true_probability, sweep.original_probability[:, None].expand(-1, 13))


def test_views_shift_and_rotate_the_source():
    """A shift of k px moves the content down k rows of real source pixels; 90 degrees is a rot90."""
    generator = np.random.default_rng(1)
    source = torch.from_numpy(generator.integers(0, 256, (1, 96, 96, 3), dtype=np.uint8))
    views = transformed_views(source, "translate", torch.tensor([0.0, 5.0]), 64, 64)[0]
    torch.testing.assert_close(views[0], source[0, 16:80, 16:80].float(), atol=1e-2, rtol=0)
    torch.testing.assert_close(views[1], source[0, 11:75, 16:80].float(), atol=1e-2, rtol=0)
    turned = transformed_views(source, "rotate", torch.tensor([90.0]), 64, 64)[0, 0]
    expected = torch.rot90(source[0, 16:80, 16:80].float(), -1, (0, 1))  # clockwise
    torch.testing.assert_close(turned, expected, atol=1e-2, rtol=0)
    zoomed = transformed_views(source, "scale", torch.tensor([2.0]), 64, 64)[0, 0]
    assert zoomed.shape == (64, 64, 3)
    torch.testing.assert_close(zoomed[31:33, 31:33].mean(), source[0, 47:49, 47:49].float().mean(), atol=40, rtol=0)


def test_paper_amounts():
    assert paper_amounts("translate").tolist()[0] == -17 and paper_amounts("translate").tolist()[-1] == 17
    assert paper_amounts("translate", 224).tolist()[-1] == 60
    assert paper_amounts("scale").tolist()[0] == 1.0 and abs(paper_amounts("scale").tolist()[-1] - 1.8) < 1e-6
    assert len(paper_amounts("rotate")) == 36


def test_typical_distances(model, sources):
    inputs = normalize(torch.from_numpy(sources[:, :64, :64].copy()))
    typical = typical_distances(model, inputs, ("conv1", "fc7"))
    assert set(typical) == {"conv1", "fc7"} and all(value > 0 for value in typical.values())


@pytest.mark.parametrize("arguments, message", [
    (dict(kind="shear"), "kind='shear'"),
    (dict(kind="scale", amounts=[1.0, 0.0]), "positive factors"),
    (dict(amounts=[]), "need at least one"),
    (dict(amounts=[float("nan")]), "finite"),
    (dict(layers=("conv9",)), "conv9"),
    (dict(labels=[0, 1]), "2 labels for 3 images"),
    (dict(labels=[0, 1, 10]), "valid classes: 0 .. 9"),
    (dict(window=97), "window=97"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(pixels="float"), "expected uint8"),
])
def test_bad_inputs(model, sources, arguments, message):
    call = dict(pixels=sources, labels=[0, 1, 2], kind="translate", amounts=[0.0, 4.0])
    if arguments.get("pixels") == "float":
        arguments = dict(pixels=sources.astype(np.float32))
    call.update(arguments)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        transform_sweep(model, **call)
    with pytest.raises(ValueError, match="at least 2"):
        typical_distances(model, torch.zeros(1, 3, 64, 64))


# --- controls, fits and the C3/C4 verdicts ---------------------------------------------------------------------


def test_zoom_of_a_larger_source_keeps_its_pixels_and_blur_only_does_not_zoom():
    """A zoom by 2 of a 128-px window is the central 64 px, pixel for pixel; the factor 1 of zoom and blur is the
    window resized to the input; the blur keeps a constant image constant and smooths noise without moving it."""
    generator = np.random.default_rng(2)
    source = torch.from_numpy(generator.integers(0, 256, (2, 160, 160, 3), dtype=np.uint8))
    zoom = resampled_views(source, "zoom", torch.tensor([1.0, 2.0]), 64, 128)
    torch.testing.assert_close(zoom[:, 1], source[:, 48:112, 48:112].float())
    blur = resampled_views(source, "blur", torch.tensor([1.0, 2.0]), 64, 128)
    torch.testing.assert_close(blur[:, 0], zoom[:, 0])
    assert float(blur[:, 1].std()) < 0.8 * float(blur[:, 0].std())
    constant = torch.full((1, 64, 64, 3), 77, dtype=torch.uint8)
    torch.testing.assert_close(resampled_views(constant, "blur", torch.tensor([1.8]), 64, 64),
                               torch.full((1, 1, 64, 64, 3), 77.0))


def test_resampled_sweep_reference_and_bad_factors(model, sources):
    sweep = resampled_sweep(model, sources, [0, 1, 2], "zoom", [1.0, 1.5], window=80)
    assert float(sweep.distances["fc7"][:, 0].abs().max()) == 0.0 and float(sweep.distances["fc7"][:, 1].min()) > 0
    blurred = resampled_sweep(model, sources, [0, 1, 2], "blur", [1.0, 1.5], window=80)
    torch.testing.assert_close(blurred.original_probability, sweep.original_probability)
    with pytest.raises(ValueError, match="factors >= 1"):
        resampled_sweep(model, sources, [0, 1, 2], "blur", [0.5])
    with pytest.raises(ValueError, match="kind='scale'"):
        resampled_sweep(model, sources, [0, 1, 2], "scale", [1.5])


def test_saturation_fits_tell_a_line_from_a_square_root():
    sizes = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0, 8.0, -8.0, 6.0, -6.0]).abs()
    line, root = 3 * sizes + 0.1, sizes.sqrt()
    fits = saturation_fits(sizes, torch.stack([line, root]))
    assert abs(float(fits.half_range_ratio[0]) - (12.1 / 24.1)) < 1e-5
    assert abs(float(fits.half_range_ratio[1]) - SQRT_RATIO) < 1e-5
    assert fits.sqrt_better.tolist() == [False, True]
    assert float(fits.line_r2[0]) > 0.999 and float(fits.sqrt_r2[1]) > 0.999 and float(fits.line_r2[1]) < 0.99
    with pytest.raises(ValueError, match="at least 3 different"):
        saturation_fits([0.0, 1.0, 1.0], torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"expected \[N, 3\]"):
        saturation_fits([0.0, 1.0, 2.0], torch.zeros(1, 4))


def test_rotation_self_similarity_ranks_rings_above_noise():
    side = 64
    centre = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
    radius = (centre[:, None] ** 2 + centre[None, :] ** 2).sqrt()
    rings = (127.5 + 127.5 * torch.cos(radius / 3)).round().byte()[..., None].expand(-1, -1, 3)
    stripes = (127.5 + 127.5 * torch.cos(centre / 3)).round().byte()[None, :, None].expand(side, -1, 3)
    noise = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (side, side, 3), dtype=np.uint8))
    score = rotation_self_similarity(torch.stack([rings, stripes, noise]), paper_amounts("rotate")[1:])
    assert float(score[0]) > 0.9 and float(score[0]) > float(score[1]) > float(score[2])
    assert abs(float(score[2])) < 0.1
    with pytest.raises(ValueError, match="at least one angle"):
        rotation_self_similarity(torch.stack([rings]), [])


def test_retention_is_a_ratio_of_means():
    original = torch.tensor([0.2, 0.4, 0.6, 0.8])
    estimate = retention(original, original[:, None] * torch.tensor([[0.5, 0.5]]))
    assert abs(estimate.value - 0.5) < 1e-9 and estimate.low <= 0.5 <= estimate.high and estimate.n == 4
    with pytest.raises(ValueError, match="need the same number"):
        retention(original, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="sum to 0"):
        retention(torch.zeros(4), torch.zeros(4, 2))


def test_matched_difference_removes_a_difference_of_starting_confidence():
    """Retention that depends only on the starting p(true): group A starts higher, so the unmatched comparison
    favours it, the matched one does not; where A truly keeps more, the matched difference sees it."""
    generator = torch.Generator().manual_seed(0)
    start_a, start_b = 0.5 + 0.5 * torch.rand(200, generator=generator), 0.5 * torch.rand(200, generator=generator)
    start_b[:40] = 0.5 + 0.5 * torch.rand(40, generator=generator)
    start_a[:40] = 0.5 * torch.rand(40, generator=generator)
    original = torch.cat([start_a, start_b])
    keeps = original**2  # retention grows with the starting p(true) alone
    group = torch.cat([torch.ones(200), torch.zeros(200)])
    unmatched = retention(start_a, keeps[:200]).value - retention(start_b, keeps[200:]).value
    matched = matched_retention_difference(original, keeps[:, None], group, strata=10)
    assert unmatched > 0.2 and abs(matched.value) < 0.5 * unmatched
    better = keeps * torch.where(group == 1, 1.5, 1.0)
    assert matched_retention_difference(original, better[:, None], group).low > 0
    assert matched_retention_difference(original, better[:, None], 1 - group).high < 0
    assert matched_retention_difference(original, better[:, None], group, absolute=True).high < 0
    with pytest.raises(ValueError, match="valid values are -1"):
        matched_retention_difference(original, keeps[:, None], group * 2)
    with pytest.raises(ValueError, match="need 2 each"):
        matched_retention_difference(original, keeps[:, None], torch.ones(400))


def test_pick_examples_takes_the_paper_classes_a_self_similar_one_then_the_most_confident():
    names = ["lawn mower", "orange", "dog", "cat", "car"]
    labels = torch.tensor([0, 1, 2, 3, 4, 2, 0])
    predicted = torch.tensor([0, 1, 2, 3, 1, 2, 0])
    probability = torch.tensor([0.6, 0.55, 0.9, 0.3, 0.99, 0.7, 0.4])
    similarity = torch.tensor([0.1, 0.9, 0.2, 0.95, 0.3, 0.1, 0.2])
    picks = pick_examples(probability, predicted, labels, names, preferred=["lawn mower"], self_similarity=similarity)
    assert picks == [0, 1, 2, 5]  # image 3 is below 0.5, image 4 wrong, image 6 below 0.5
    assert pick_examples(probability, predicted, labels, names, count=2) == [2, 5]
    with pytest.raises(ValueError, match="one of each per image"):
        pick_examples(probability, predicted[:3], labels, names)


def _sweep(kind, amounts, distances, original, views):
    count = len(original)
    return InvarianceSweep(kind=kind, amounts=torch.as_tensor(amounts, dtype=torch.float32),
                           labels=torch.zeros(count, dtype=torch.long), distances=distances,
                           true_probability=views, predicted=torch.zeros_like(views, dtype=torch.long),
                           original_probability=original, original_prediction=torch.zeros(count, dtype=torch.long))


def _c3_sweeps(top_shape, count=60):
    """Shift and scale sweeps whose conv1 distance jumps at once and whose fc7 distance follows ``top_shape``."""
    generator = torch.Generator().manual_seed(1)
    made = []
    for kind, amounts in (("translate", paper_amounts("translate")), ("scale", paper_amounts("scale"))):
        size = (amounts - (1.0 if kind == "scale" else 0.0)).abs()
        size = size / size.max()
        noise = 1 + 0.05 * torch.randn(count, len(amounts), generator=generator)
        first = torch.where(size > 0, 1.0, 0.0) * noise * 10
        top = top_shape(size) * noise
        original = torch.full((count,), 0.5)
        views = original[:, None].expand(-1, len(amounts))
        made.append(_sweep(kind, amounts, {"conv1": first, "fc7": top}, original, views))
    return made


def test_c3_verdict_agrees_with_a_linear_top_layer_and_not_with_a_saturating_one():
    typical = {"conv1": 10.0, "fc7": 1.0}
    linear, root = _c3_sweeps(lambda size: size * 0.5), _c3_sweeps(lambda size: size.sqrt() * 0.5)
    verdict = c3_verdict(*linear, typical, *root, typical)
    assert verdict.outcome == "agree" and abs(verdict.estimate.value - LINE_RATIO) < 0.03
    assert abs(verdict.control_estimate.value - SQRT_RATIO) < 0.03
    saturating = c3_verdict(*root, typical, *linear, typical)
    assert saturating.outcome == "partly" and saturating.estimate.low > LINEAR_RATIO_LIMIT
    assert "fails: quasi-linear (shift), quasi-linear (scale)" in saturating.reason
    neither = c3_verdict(*_c3_sweeps(lambda size: torch.where(size > 0, 20.0, 0.0)), typical, *linear, typical)
    assert neither.outcome == "differ"
    assert f"LINEAR_RATIO_LIMIT = {LINEAR_RATIO_LIMIT}" in verdict.rule
    with pytest.raises(ValueError, match="lacks"):
        c3_verdict(_sweep("translate", [0.0, 1.0], {}, torch.ones(2), torch.ones(2, 2)), *linear[1:], typical,
                   *linear, typical)


def _c4_arms(shift_keep, zoom_keep, rotation_keep, symmetric_bonus, count=90):
    generator = torch.Generator().manual_seed(2)
    original = 0.2 + 0.6 * torch.rand(count, generator=generator)

    def kept(kind, amounts, keep):
        views = original[:, None] * keep * (1 + 0.05 * torch.randn(count, len(amounts), generator=generator))
        untransformed = (torch.as_tensor(amounts) - (0.0 if kind in ("translate", "rotate") else 1.0)).abs() == 0
        views[:, untransformed] = original[:, None]
        return _sweep(kind, amounts, {}, original, views)

    shift, scale, turn = paper_amounts("translate"), paper_amounts("scale"), paper_amounts("rotate")
    rotation = kept("rotate", turn, rotation_keep)
    similarity = torch.rand(count, generator=generator)
    rotation.true_probability *= 1 + symmetric_bonus * (similarity > similarity.quantile(2 / 3)).float()[:, None]
    return (kept("translate", shift, shift_keep), kept("translate", shift, shift_keep), kept("zoom", scale, zoom_keep),
            kept("scale", scale, 0.4), kept("blur", scale, 0.4), rotation, similarity)


def test_c4_verdict_follows_the_rule():
    agree = c4_verdict(*_c4_arms(0.95, 0.9, 0.3, 1.0))
    assert agree.outcome == "agree" and agree.estimate.low > STABLE_RETENTION
    assert agree.control_estimate.high < STABLE_RETENTION
    unstable_zoom = c4_verdict(*_c4_arms(0.95, 0.4, 0.3, 1.0))
    assert unstable_zoom.outcome == "partly" and "fails: stable to zooms" in unstable_zoom.reason
    assert c4_verdict(*_c4_arms(0.4, 0.4, 0.95, -0.5)).outcome == "differ"
    undecided = c4_verdict(*_c4_arms(STABLE_RETENTION, 0.9, 0.3, 1.0))
    assert undecided.outcome == "inconclusive" and undecided.settle
    arms = list(_c4_arms(0.95, 0.9, 0.3, 1.0))
    with pytest.raises(ValueError, match="self-similarities"):
        c4_verdict(*arms[:6], arms[6][:10])


def test_c4_verdict_adds_the_full_detail_zooms():
    arms = list(_c4_arms(0.95, 0.9, 0.3, 1.0))
    verdict = c4_verdict(*arms, full_detail_factor=1.3)
    assert abs(verdict.details["retention, zooms of larger sources, up to ×1.3"]["value"] - 0.9) < 0.05
    assert abs(verdict.details["retention, blur only, up to ×1.3"]["value"] - 0.4) < 0.05
    assert not any("up to" in name for name in c4_verdict(*arms).details)

"""Tests of zfcore.analysis.occlusion (§4.2, Fig. 7) and the Tiny ImageNet val boxes it uses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from zfcore.analysis.localisation import (CONFIDENT, FILL_MATERIAL, INSIDE_OVERLAP, SQUARE_MATERIAL, C6Measurements,
                                          another_images_box, background_boxes, c6_measurements, c6_table, c6_verdict,
                                          confident_examples, correct_spread, fig7_examples, fill_drops,
                                          occluder_overlap, overlap_grades, position_matched_difference)
from zfcore.analysis.occlusion import (OcclusionMaps, box_masks, box_sensitivity, default_size_and_stride,
                                       fill_and_classify, occlude_boxes, occluder_baseline, occlusion_maps,
                                       occlusion_maps_many, pixel_attribution)
from zfcore.data.loader import normalize
from zfcore.deconv import project
from zfcore.models import zfnet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zfnet(10, 64, widths=(8, 16, 16, 16, 16), fc=32, init="he").eval()


@pytest.fixture(scope="module")
def image():
    torch.manual_seed(1)
    return torch.randn(3, 64, 64)


def _captum(model, image, label, size, stride, baseline):
    from captum.attr import Occlusion

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        occlusion = Occlusion(lambda inputs: model(inputs).softmax(1))
        return occlusion.attribute(image[None], sliding_window_shapes=(3, size, size), strides=(3, stride, stride),
                                   baselines=baseline[None], target=label, perturbations_per_eval=7)[0]


@pytest.mark.parametrize("size, stride", [(16, 16), (12, 12)])
def test_true_probability_equals_captum_at_each_window(model, image, size, stride):
    """With stride = size every pixel a window covers is covered by that window alone, so Captum's
    attribution there is p(unoccluded) - p(occluded) divided by 1: p(occluded) is read back exactly
    from each window's top-left pixel, with the same grey (the normalised mean colour, 0 here)."""
    pytest.importorskip("captum")
    baseline = occluder_baseline(64)
    maps = occlusion_maps(model, image, 3, size, stride)
    captum = _captum(model, image, 3, size, stride, baseline)  # [3, 64, 64], equal over channels
    at_windows = captum[0][maps.tops[:, None], maps.lefts[None, :]]
    torch.testing.assert_close(maps.unoccluded_probability - at_windows, maps.true_probability, atol=1e-5, rtol=0)
    assert (maps.true_probability - maps.unoccluded_probability).abs().max() > 1e-4  # the occluder matters


def test_overlapping_windows_equal_captum_pixel_by_pixel(model, image):
    """Default size and stride (16, 4: windows overlap): Captum's per-pixel mean over covering windows
    equals the same mean rebuilt from our p(true) map (pixel_attribution), everywhere."""
    pytest.importorskip("captum")
    maps = occlusion_maps(model, image, 5)
    assert (maps.size, maps.stride, tuple(maps.true_probability.shape)) == (16, 4, (13, 13))
    captum = _captum(model, image, 5, maps.size, maps.stride, occluder_baseline(64))
    torch.testing.assert_close(pixel_attribution(maps, 64), captum[0], atol=1e-5, rtol=0)


def test_activity_and_prediction_follow_the_occluded_image(model, image):
    """(b) and (e) at one position equal a plain forward pass of that occluded image."""
    maps = occlusion_maps(model, image, 2, 16, 8)
    occluded = image.clone()
    top, left = int(maps.tops[2]), int(maps.lefts[1])
    occluded[:, top : top + 16, left : left + 16] = 0.0
    with torch.no_grad():
        trace = model.trace(occluded[None], ["conv5"])
    activity = trace.activations["conv5"][0, maps.feature_map].sum()
    assert torch.isclose(maps.activity[2, 1], activity, rtol=1e-5)
    assert maps.predicted[2, 1] == trace.logits.argmax()
    with torch.no_grad():
        unoccluded = model.trace(image[None], ["conv5"]).activations["conv5"][0].sum((1, 2))
    assert maps.feature_map == unoccluded.argmax()
    assert torch.isclose(maps.unoccluded_activity, unoccluded.max(), rtol=1e-5)


def test_many_images_equal_one_by_one(model):
    torch.manual_seed(2)
    images, labels = torch.randn(3, 3, 64, 64), torch.tensor([0, 4, 9])
    many = occlusion_maps_many(model, images, labels, 16, 8, batch_size=10)  # batches straddle images
    assert many.true_probability.shape == (3, 7, 7)
    for index in range(3):
        one = occlusion_maps(model, images[index], int(labels[index]), 16, 8)
        torch.testing.assert_close(many.image(index).true_probability, one.true_probability, atol=1e-6, rtol=0)
        assert torch.equal(many.image(index).predicted, one.predicted)


def test_baseline_is_the_mean_colour_through_the_preprocessing():
    assert occluder_baseline(64).abs().max() < 1e-6  # mean-std: ImageNet's mean pixel normalises to 0
    mean_image = torch.rand(64, 64, 3) * 255
    baseline = occluder_baseline(64, mean_image)
    colour = mean_image.mean((0, 1))
    expected = normalize(colour.expand(1, 64, 64, 3), mean_image)[0]
    torch.testing.assert_close(baseline, expected)
    assert baseline.std() > 1  # pixel-mean: the grey minus the mean image varies over the image


def test_defaults_scale_with_the_image():
    assert default_size_and_stride(64) == (16, 4)
    assert default_size_and_stride(224) == (56, 14)


@pytest.mark.parametrize("arguments, message", [
    (dict(size=0), "size=0"), (dict(size=65), "1 .. 64"), (dict(stride=2.5), "stride=2.5"),
    (dict(layer="fc6"), "feature map"), (dict(layer="conv9"), "conv9"), (dict(label=10), "0 .. 9"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_bad_arguments_are_named(model, image, arguments, message):
    call = dict(label=1) | arguments
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        occlusion_maps(model, image, **call)


def test_bad_images_are_named(model):
    with pytest.raises(ValueError, match="expected one image"):
        occlusion_maps(model, torch.zeros(2, 3, 64, 64), 0)
    with pytest.raises(ValueError, match="takes 64x64"):
        occlusion_maps(model, torch.zeros(3, 32, 32), 0)
    with pytest.raises(ValueError, match="one label per image"):
        occlusion_maps_many(model, torch.zeros(2, 3, 64, 64), [0])


def test_box_sensitivity_separates_inside_from_outside(model):
    torch.manual_seed(3)
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([1, 2])
    maps = occlusion_maps_many(model, images, labels, 16, 8)
    boxes = np.array([[0, 0, 31, 31], [0, 0, 63, 63]])  # the second covers every centre: left out
    result = box_sensitivity(maps, boxes)
    assert result.images == 1
    centres = maps.centres
    inside = (centres[..., 0] <= 31) & (centres[..., 1] <= 31)
    assert torch.isclose(result.inside[0], maps.true_probability[0][inside].double().mean())
    assert torch.isclose(result.outside[0], maps.true_probability[0][~inside].double().mean())
    with pytest.raises(ValueError, match="one box per image"):
        box_sensitivity(maps, boxes[:1])


def test_occlude_boxes_fills_the_whole_box(model):
    torch.manual_seed(4)
    images, labels, boxes = torch.randn(2, 3, 64, 64), torch.tensor([0, 1]), np.array([[4, 8, 20, 30], [0, 0, 63, 63]])
    probability, predicted = occlude_boxes(model, images, labels, boxes)
    filled = images.clone()
    filled[0, :, 8:31, 4:21] = 0.0
    filled[1] = 0.0
    with torch.no_grad():
        expected = model(filled).softmax(1)
    torch.testing.assert_close(probability, expected[[0, 1], [0, 1]])
    assert torch.equal(predicted, expected.argmax(1))


def test_val_boxes_follow_the_cached_order(tmp_path):
    from zfcore.data.tiny_imagenet import TinyImageNet

    root = tmp_path / "tiny-imagenet-200"
    (root / "val").mkdir(parents=True)
    (root / "wnids.txt").write_text("n1\nn2\n")
    (root / "words.txt").write_text("n1\tone\nn2\ttwo\n")
    (root / "val" / "val_annotations.txt").write_text(
        "val_10.JPEG\tn1\t1\t2\t3\t4\nval_2.JPEG\tn2\t5\t6\t7\t8\nval_1.JPEG\tn1\t0\t0\t63\t63\n")
    dataset = TinyImageNet(root)
    paths, labels = dataset.files("val")
    assert [path.name for path in paths] == ["val_1.JPEG", "val_10.JPEG", "val_2.JPEG"]
    assert dataset.val_boxes().tolist() == [[0, 0, 63, 63], [1, 2, 3, 4], [5, 6, 7, 8]]
    assert dataset.val_boxes(classes=1, per_class=1).tolist() == [[0, 0, 63, 63]]


# -- C6 over many images: overlap, area-matched fills, the position-matched comparison and the verdict ------------


def _grid(count: int, size: int = 16, stride: int = 4, image_size: int = 64) -> OcclusionMaps:
    """Maps of ``count`` images with only the geometry filled in (the occluder's positions), for overlap tests."""
    starts = torch.arange(0, image_size - size + 1, stride)
    zeros = torch.zeros(count, len(starts), len(starts))
    per_image = torch.zeros(count)
    return OcclusionMaps("conv5", size, stride, starts, starts.clone(), torch.zeros(count, dtype=torch.long),
                         per_image.long(), zeros, zeros, zeros.long(), per_image, per_image, per_image.long(),
                         image_size=image_size)


def _random_boxes(count: int, generator: torch.Generator, image_size: int = 64) -> torch.Tensor:
    """Boxes of 8-40 px sides anywhere in the image, corners inclusive."""
    sides = torch.randint(8, 41, (count, 2), generator=generator)
    corners = (torch.rand(count, 2, generator=generator) * (image_size - sides + 1)).long()
    return torch.cat([corners, corners + sides - 1], 1)


def test_occluder_overlap_counts_the_occluders_pixels_in_the_box():
    maps = _grid(2, size=16, stride=8)
    boxes = torch.tensor([[10, 20, 29, 45], [0, 0, 63, 63]])
    overlap = occluder_overlap(maps, boxes)
    masks = box_masks(boxes, 64)
    for row, top in enumerate(maps.tops.tolist()):
        for col, left in enumerate(maps.lefts.tolist()):
            inside = masks[0, top : top + 16, left : left + 16].double().mean()
            assert overlap[0, row, col] == inside
    assert bool((overlap[1] == 1).all())
    with pytest.raises(ValueError, match="one box per image"):
        occluder_overlap(maps, boxes[:1])


def test_background_boxes_have_the_boxs_size_and_avoid_it():
    boxes = torch.tensor([[0, 0, 19, 29], [40, 10, 55, 60], [0, 0, 63, 63], [10, 10, 49, 49]])
    rectangles, overlap = background_boxes(boxes, 64)
    sizes = lambda b: (b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(sizes(rectangles), sizes(boxes)))
    masks, background = box_masks(boxes, 64), box_masks(rectangles, 64)
    shared = (masks & background).flatten(1).sum(1).double() / background.flatten(1).sum(1)
    torch.testing.assert_close(overlap, shared)
    assert overlap[:2].tolist() == [0.0, 0.0]  # room beside the box: no overlap
    assert overlap[2] == 1.0 and 0 < overlap[3] < 1  # the whole image; a 40-px box in a 64-px image
    assert rectangles[0, 0] >= 20 or rectangles[0, 1] >= 30


def test_another_images_box_is_never_the_images_own():
    boxes = torch.arange(20).view(5, 4).double()
    control = another_images_box(boxes)
    assert not bool((control == boxes).all(1).any())
    assert sorted(map(tuple, control.tolist())) == sorted(map(tuple, boxes.tolist()))
    with pytest.raises(ValueError, match="at least 2"):
        another_images_box(boxes[:1])


def test_fill_and_classify_fills_the_masked_pixels(model):
    torch.manual_seed(5)
    images, labels = torch.randn(3, 3, 64, 64), torch.tensor([0, 1, 2])
    with torch.no_grad():
        plain = model(images).softmax(1)
    probability, predicted = fill_and_classify(model, images, labels)
    torch.testing.assert_close(probability, plain[[0, 1, 2], [0, 1, 2]])
    masks = box_masks(torch.tensor([[0, 0, 31, 63]] * 3), 64)
    probability, _ = fill_and_classify(model, images, labels, ~masks)  # the complement: the right half
    filled = images.clone()
    filled[:, :, :, 32:] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(probability, model(filled).softmax(1)[[0, 1, 2], [0, 1, 2]])
    with pytest.raises(ValueError, match=r"masks=\(3, 64, 64\) is not valid; give a bool tensor"):
        fill_and_classify(model, images, labels, masks.float())


def test_confident_examples_keep_correct_and_confident_images_most_confident_first():
    probability = torch.tensor([0.9, 0.6, 0.95, 0.4, 0.7])
    predicted, labels = torch.tensor([1, 2, 0, 3, 4]), torch.tensor([1, 2, 5, 3, 4])  # image 2 is wrong
    assert confident_examples(probability, predicted, labels, 3).tolist() == [0, 4, 1]
    assert confident_examples(probability, predicted, labels, 5, minimum=0.8).tolist() == [0]
    assert CONFIDENT == 0.5
    with pytest.raises(ValueError, match=r"minimum=1\.5 is not valid; give a probability in \[0, 1\]"):
        confident_examples(probability, predicted, labels, 3, minimum=1.5)
    with pytest.raises(ValueError, match="give one each per image"):
        confident_examples(probability, predicted[:2], labels, 3)


def test_fig7_examples_are_the_most_confident_correct_images_with_their_maps_and_projection(model):
    torch.manual_seed(2)
    images = torch.randn(6, 3, 64, 64)
    with torch.no_grad():
        probability = model(images).softmax(1)
    labels = probability.argmax(1)
    labels[3] = (labels[3] + 1) % 10  # one image wrong: never an example
    examples = fig7_examples(model, images, labels, count=2, minimum=0.0)
    truth = probability[torch.arange(6), labels]
    expected = [index for index in truth.argsort(descending=True).tolist() if index != 3][:2]
    assert examples.picked.tolist() == expected
    assert (examples.candidates, examples.correct, examples.confident) == (6, 5, 5)
    for index, maps, projection in zip(expected, examples.maps, examples.projections):
        single = occlusion_maps(model, images[index], int(labels[index]))
        torch.testing.assert_close(maps.true_probability, single.true_probability)
        torch.testing.assert_close(projection, project(model, images[index : index + 1], "conv5", int(single.feature_map))[0])
    lines = examples.summary([f"image {i}" for i in range(6)]).splitlines()
    assert lines[0].startswith(f"image {expected[0]}: unoccluded p(true) = ") and len(lines) == 3
    assert lines[-1] == "5 of 6 candidates correct, 5 of them with p(true) >= 0.0"
    strict = fig7_examples(model, images, labels, count=3, minimum=1.0)  # nothing is that confident
    assert strict.picked.numel() == 0 and strict.maps == [] and strict.confident == 0


def test_correct_spread_picks_evenly_among_the_correct_images_only(model):
    torch.manual_seed(3)
    images = torch.randn(9, 3, 64, 64)
    with torch.no_grad():
        labels = model(images).argmax(1)
    labels[[1, 4]] = (labels[[1, 4]] + 1) % 10
    picked, correct = correct_spread(model, images, labels, 3)
    assert correct == 7 and picked.tolist() == [0, 5, 8]  # of 0, 2, 3, 5, 6, 7, 8: the first, middle and last
    assert correct_spread(model, images, labels, 50)[0].tolist() == [0, 2, 3, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="count=0"):
        correct_spread(model, images, labels, 0)


def _synthetic(count: int, *, square: float, fill: float, noise: float, seed: int = 0,
               position: float = 0.0, same_control: bool = False) -> C6Measurements:
    """Relative drops that grow by ``square`` with the occluder's overlap of the box (plus ``position`` times a
    centre bump), fills whose box arm exceeds the background arm by ``fill``, and Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    maps = _grid(count)
    boxes = _random_boxes(count, generator)
    overlap = occluder_overlap(maps, boxes)
    centres = maps.centres
    bump = torch.exp(-((centres - 31.5) ** 2).sum(-1) / (2 * 12.0**2))  # [rows, cols], 1 at the centre
    relative_drop = (0.05 + square * overlap + position * bump + noise * torch.randn(overlap.shape, generator=generator,
                                                                                    dtype=torch.float64))
    control_boxes = boxes if same_control else another_images_box(boxes)
    _, background_overlap = background_boxes(boxes, 64)
    background, box = (0.1 + noise * torch.randn(count, generator=generator, dtype=torch.float64) for _ in range(2))
    return C6Measurements(relative_drop, overlap, occluder_overlap(maps, control_boxes), box + fill, background,
                          background_overlap, torch.full((count,), 0.2, dtype=torch.float64), measured=count)


@pytest.mark.parametrize("square, fill, noise, count, outcome", [
    (0.4, 0.6, 0.05, 200, "agree"),  # both well beyond their thresholds
    (0.06, 0.6, 0.05, 200, "partly"),  # the square above 0 but below SQUARE_MATERIAL
    (-0.05, -0.05, 0.02, 200, "differ"),  # covering the object helps: both intervals below their thresholds
    (0.0, 0.0, 2.0, 12, "inconclusive"),  # intervals too wide to decide either way
])
def test_c6_verdict_follows_the_rule(square, fill, noise, count, outcome):
    verdict = c6_verdict(_synthetic(count, square=square, fill=fill, noise=noise))
    assert verdict.outcome == outcome, verdict.reason
    assert verdict.claim == "C6" and f"{100 * SQUARE_MATERIAL:.0f} %" in verdict.rule
    assert f"{100 * FILL_MATERIAL:.0f} %" in verdict.rule
    if outcome == "inconclusive":
        assert verdict.settle


def test_c6_verdict_is_inconclusive_when_the_control_box_shows_the_same_effect():
    """A control given the image's own box (a broken control) shows the effect too: the control explains it."""
    verdict = c6_verdict(_synthetic(200, square=0.4, fill=0.6, noise=0.05, same_control=True))
    assert verdict.outcome == "inconclusive" and "Another image's box" in verdict.reason
    honest = c6_verdict(_synthetic(200, square=0.4, fill=0.6, noise=0.05))
    assert honest.control_estimate.low <= 0 <= honest.control_estimate.high  # another image's box: no effect


def test_position_matching_removes_a_centre_effect():
    """Drops that depend only on the occluder's position (the centre matters) and boxes that sit more often
    in the centre: the per-image inside-minus-outside difference is positive, the position-matched one is not."""
    measurements = _synthetic(300, square=0.0, fill=0.0, noise=0.02, position=0.3)
    inside, outside = measurements.overlap >= INSIDE_OVERLAP, measurements.overlap == 0
    both = inside.flatten(1).any(1) & outside.flatten(1).any(1)
    drop = measurements.relative_drop.flatten(1)[both]
    per_image = ((drop * inside.flatten(1)[both]).sum(1) / inside.flatten(1)[both].sum(1)
                 - (drop * outside.flatten(1)[both]).sum(1) / outside.flatten(1)[both].sum(1))
    assert per_image.mean() > 0.05  # confounded by position
    matched = position_matched_difference(measurements.relative_drop, inside, outside)
    assert matched.low <= 0 <= matched.high and abs(matched.value) < 0.01
    effect = _synthetic(300, square=0.2, fill=0.0, noise=0.02, position=0.3)
    found = position_matched_difference(effect.relative_drop, effect.overlap >= INSIDE_OVERLAP, effect.overlap == 0)
    assert found.low > 0.15  # 0.2 times an overlap of 0.75-1


def test_overlap_grades_rise_with_the_overlap():
    grades = overlap_grades(_synthetic(200, square=0.4, fill=0.0, noise=0.02))
    assert [grade.label for grade in grades] == ["0 (background)", "(0, 25 %)", "[25 %, 75 %)", "[75 %, 100 %]"]
    values = [grade.drop.value for grade in grades]
    assert values == sorted(values) and grades[0].matched is None
    assert all(grade.matched.low > 0 for grade in grades[1:])


def test_c6_measurements_keep_the_correct_images_and_divide_by_their_p(model):
    torch.manual_seed(6)
    images = torch.randn(6, 3, 64, 64)
    with torch.no_grad():
        predicted = model(images).argmax(1)
    labels = predicted.clone()
    labels[[1, 4]] = (predicted[[1, 4]] + 1) % 10  # two misclassified images
    boxes = torch.tensor([[4, 4, 40, 40], [0, 0, 20, 20], [30, 10, 63, 50], [10, 30, 30, 63], [0, 0, 63, 63],
                          [20, 20, 43, 43]])
    maps = occlusion_maps_many(model, images, labels, 16, 8)
    measurements = c6_measurements(model, images, labels, boxes, maps)
    kept = [0, 2, 3, 5]
    assert measurements.images == 4 and measurements.measured == 6
    expected = 1 - maps.true_probability[kept].double() / maps.unoccluded_probability[kept, None, None].double()
    torch.testing.assert_close(measurements.relative_drop, expected)
    box_probability, _ = occlude_boxes(model, images[kept], labels[kept], boxes[kept])
    torch.testing.assert_close(measurements.box_fill_drop,
                               1 - box_probability.double() / maps.unoccluded_probability[kept].double())
    with pytest.raises(ValueError, match="labels are not the labels the maps were measured with"):
        c6_measurements(model, images, (labels + 1) % 10, boxes, maps)


def test_c6_inputs_that_do_not_fit_are_named():
    good = _synthetic(10, square=0.1, fill=0.1, noise=0.01)
    with pytest.raises(ValueError, match=r"box_fill_drop has shape \(9,\); expected \(10,\)"):
        C6Measurements(good.relative_drop, good.overlap, good.control_overlap, good.box_fill_drop[:9],
                       good.background_fill_drop, good.background_overlap, good.complement_fill_drop, measured=10)
    with pytest.raises(ValueError, match=r"overlap holds values outside \[0, 1\]"):
        C6Measurements(good.relative_drop, good.overlap + 1, good.control_overlap, good.box_fill_drop,
                       good.background_fill_drop, good.background_overlap, good.complement_fill_drop, measured=10)
    with pytest.raises(ValueError, match=r"measured=5 is not valid; give a whole number >= 10"):
        C6Measurements(good.relative_drop, good.overlap, good.control_overlap, good.box_fill_drop,
                       good.background_fill_drop, good.background_overlap, good.complement_fill_drop, measured=5)
    with pytest.raises(ValueError, match="measurements=dict is not valid; give C6Measurements"):
        c6_verdict({})
    with pytest.raises(ValueError, match="give a bool mask of relative_drop's shape"):
        position_matched_difference(good.relative_drop, good.overlap, good.overlap == 0)


def test_c6_table_shows_every_grade_and_fill():
    measurements = _synthetic(60, square=0.4, fill=0.3, noise=0.02)
    grades, fills = overlap_grades(measurements), fill_drops(measurements)
    table = c6_table(grades, fills)
    assert len(table.splitlines()) == 2 + len(grades) + len(fills)
    assert grades[-1].drop.format(scale=100, digits=1, unit=" %") in table
    assert f"| box filled | {fills['box'].n} |" in table
    assert fills["box"].value > fills["background"].value  # the synthetic fill effect

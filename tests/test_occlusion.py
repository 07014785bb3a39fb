"""Tests of zfcore.analysis.occlusion (§4.2, Fig. 7) and the Tiny ImageNet val boxes it uses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from zfcore.analysis.occlusion import (box_sensitivity, default_size_and_stride, occlude_boxes, occluder_baseline,
                                       occlusion_maps, occlusion_maps_many, pixel_attribution)
from zfcore.data.loader import normalize
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

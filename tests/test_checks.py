"""zfcore.checks: each validator's accepted and refused values, and the analyses' bad arguments it now refuses.

Static tests: a small random network and random tensors, no data set.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from zfcore.analysis.invariance import transform_sweep, typical_distances
from zfcore.analysis.occlusion import box_sensitivity, occlude_boxes, occlusion_maps, occlusion_maps_many
from zfcore.analysis.sanity import randomization_similarity, randomized_copy
from zfcore.analysis.transfer import pooled_features
from zfcore.checks import (check_bool, check_boxes, check_choice, check_finite, check_labels, check_layers,
                           check_number, check_pixels, check_positive, check_whole)
from zfcore.models import zfnet

pytestmark = pytest.mark.static  # needs no dataset


def refused(call, message: str) -> None:
    """``call()`` raises ``ValueError`` with exactly ``message`` (one line)."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


# -- each validator -----------------------------------------------------------------------------------------------


def test_check_whole() -> None:
    assert check_whole("n", 3, 1) == 3 and type(check_whole("n", np.int64(3), 1)) is int
    assert check_whole("n", 0) == 0 and check_whole("n", 64, 1, 64) == 64
    refused(lambda: check_whole("epochs", 0, 1), "epochs=0 is not valid; give a whole number of at least 1")
    refused(lambda: check_whole("epochs", 2.0, 1), "epochs=2.0 is not valid; give a whole number of at least 1 "
                                                   "(an int, not float)")
    refused(lambda: check_whole("seed", True), "seed=True is not valid; give a whole number of at least 0 "
                                               "(an int, not bool)")
    refused(lambda: check_whole("n", "3", 1), "n='3' is not valid; give a whole number of at least 1 (an int, not str)")
    refused(lambda: check_whole("size", 65, 1, 64), "size=65 is not valid; give a whole number in 1 .. 64")


def test_check_positive() -> None:
    assert check_positive("k", 9) == 9 and check_positive("k", np.int32(1)) == 1
    for value in (0, -1, 1.0, True, "9", None):
        refused(lambda: check_positive("k", value),
                f"k={value!r} is not valid; give a positive integer (a whole number of at least 1)")


def test_check_number() -> None:
    assert check_number("lr", 1, "> 0", lambda v: v > 0) == 1.0
    assert check_number("lr", np.float32(0.5), "> 0", lambda v: v > 0) == 0.5
    for value in (0, -0.1, float("nan"), float("inf"), True, "0.1", None):
        refused(lambda: check_number("lr", value, "> 0", lambda v: v > 0),
                f"lr={value!r} is not valid; give a finite number > 0")


def test_check_choice_and_check_bool() -> None:
    check_choice("init", "he", ("paper", "he"))
    refused(lambda: check_choice("init", "xavier", ("paper", "he")),
            "init='xavier' is not valid; valid values: ('paper', 'he')")
    refused(lambda: check_choice("order", "up", ["a", "b"], "orders"), "order='up' is not valid; valid orders: ('a', 'b')")
    refused(lambda: check_choice("kind", ["a"], {"a"}), "kind=['a'] is not valid; valid values: ('a',)")  # unhashable
    assert check_bool("lrn", False) is False
    for value in (1, "yes", np.bool_(True), None):
        refused(lambda: check_bool("lrn", value), f"lrn={value!r} is not valid; give True or False")


def test_check_finite() -> None:
    check_finite("images", torch.zeros(2, 3))
    check_finite("images", torch.zeros(2, 3, dtype=torch.long))
    check_finite("pixels", np.zeros((2, 3), dtype=np.uint8))
    check_finite("images", torch.zeros(0, 3))
    batch = torch.zeros(3, 2, 2)
    batch[1, 0, 0], batch[2, 1] = float("nan"), float("inf")
    refused(lambda: check_finite("images", batch),
            "images have 3 non-finite values (NaN or inf) in 2 of 3 images (indices 1, 2); drop those images or "
            "repair them (e.g. torch.nan_to_num)")
    refused(lambda: check_finite("pixels", batch.numpy()),
            "pixels have 3 non-finite values (NaN or inf) in 2 of 3 images (indices 1, 2); drop those images or "
            "repair them (e.g. torch.nan_to_num)")
    many = torch.full((12, 1), float("nan"))
    with pytest.raises(ValueError, match=r"in 12 of 12 rows \(indices 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.\)"):
        check_finite("values", many, per="rows")
    with pytest.raises(ValueError, match=r"1 non-finite values \(NaN or inf\) in 1 of 1 images"):
        check_finite("value", torch.tensor(float("nan")))


def test_check_pixels() -> None:
    check_pixels("pixels", np.zeros((2, 8, 8, 3), dtype=np.uint8))
    check_pixels("pixels", torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
    refused(lambda: check_pixels("pixels", [[1, 2, 3]]),
            "pixels must be a uint8 array or tensor [N, H, W, 3], got list")
    refused(lambda: check_pixels("pixels", np.zeros((2, 8, 8), dtype=np.uint8)),
            "pixels have shape (2, 8, 8); expected [N, H, W, 3] uint8")
    floats = np.zeros((2, 8, 8, 3), dtype=np.float32)
    refused(lambda: check_pixels("images", floats),
            "images have dtype float32; expected uint8 0-255 pixels [N, H, W, 3] (as the caches store them): the "
            "analyses normalise them themselves")
    floats[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^images have 1 non-finite values .* \(indices 1\)"):
        check_pixels("images", floats)


def test_check_labels_accepts_whole_numbers_in_every_form() -> None:
    for labels in ([0, 9], (0, 9), np.array([0, 9], dtype=np.uint8), torch.tensor([0, 9]), [np.int64(0), 9]):
        result = check_labels("labels", labels, 10)
        assert result.dtype == torch.int64 and result.tolist() == [0, 9]
    assert check_labels("label", 3, 10).tolist() == [3]
    assert check_labels("label", torch.tensor(3), 10).tolist() == [3]
    assert check_labels("labels", range(3), 10, count=3).tolist() == [0, 1, 2]
    assert check_labels("labels", [], 10).tolist() == []


@pytest.mark.parametrize("labels, message", [
    (2.7, "label=2.7 is not valid; give whole-number classes, not float; valid classes: 0 .. 9"),
    (2.0, "label=2.0 is not valid; give whole-number classes, not float; valid classes: 0 .. 9"),
    (True, "label=True is not valid; give whole-number classes, not bool; valid classes: 0 .. 9"),
    (np.bool_(False), "label=False is not valid; give whole-number classes, not bool; valid classes: 0 .. 9"),
    ("3", "label='3' is not valid; give whole-number classes, not str; valid classes: 0 .. 9"),
    (10, "label=10 is not valid; [10] out of range; valid classes: 0 .. 9"),
    (-1, "label=-1 is not valid; [-1] out of range; valid classes: 0 .. 9"),
])
def test_check_labels_refuses_one_bad_label(labels, message) -> None:
    refused(lambda: check_labels("label", labels, 10), message)


@pytest.mark.parametrize("labels, message", [
    ([0, 2.7], "labels=[0, 2.7] is not valid; give whole-number classes, not float; valid classes: 0 .. 9"),
    ([0, True], "labels=[0, True] is not valid; give whole-number classes, not bool; valid classes: 0 .. 9"),
    (np.array([0.0, 1.0]), "labels=[0.0, 1.0] is not valid; give whole-number classes, not float; valid classes: 0 .. 9"),
    (torch.tensor([0.5]), "labels=[0.5] is not valid; give whole-number classes, not float32; valid classes: 0 .. 9"),
    (torch.tensor([True]), "labels=[True] is not valid; give whole-number classes, not bool; valid classes: 0 .. 9"),
    (list(range(12)), "labels=[0, 1, 2, 3, 4, 5, 6, 7, ...] is not valid; [10, 11] out of range; valid classes: 0 .. 9"),
    ([0, 1], "labels: 2 labels for 3 images is not valid; give 3 integer classes, one label per image"),
])
def test_check_labels_refuses_bad_labels(labels, message) -> None:
    refused(lambda: check_labels("labels", labels, 10, count=3 if len(labels) == 2 else None), message)


def test_check_layers() -> None:
    valid = ("conv1", "conv2", "fc7")
    assert check_layers("layers", "conv1", valid) == ("conv1",)  # one name, not five characters
    assert check_layers("layers", ["fc7", "conv1"], valid) == ("fc7", "conv1")
    assert check_layers("layers", iter(["conv2"]), valid) == ("conv2",)
    assert check_layers("layers", (), valid, allow_empty=True) == ()
    refused(lambda: check_layers("layers", "c", valid), "layer='c' is not valid; valid layers: ('conv1', 'conv2', 'fc7')")
    refused(lambda: check_layers("layers", ("conv1", 3), valid),
            "layer=3 is not valid; valid layers: ('conv1', 'conv2', 'fc7')")
    refused(lambda: check_layers("layers", (), valid, what="conv layer"),
            "layers=() is not valid; give at least one conv layer of ('conv1', 'conv2', 'fc7')")
    refused(lambda: check_layers("layers", 5, valid),
            "layers=5 is not valid; give one layer name or a sequence of them, out of ('conv1', 'conv2', 'fc7')")


def test_check_boxes_accepts_boxes_inside_the_image() -> None:
    exclusive = check_boxes("boxes", [[0, 0, 64, 64], [3, 4, 5, 6]], 64)
    assert exclusive.dtype == torch.float64 and exclusive.shape == (2, 4)
    inclusive = check_boxes("boxes", np.array([[0, 0, 63, 63], [5, 5, 5, 9]]), 64, inclusive=True, whole=True)
    assert inclusive.dtype == torch.int64 and inclusive.tolist() == [[0, 0, 63, 63], [5, 5, 5, 9]]  # one pixel wide
    assert check_boxes("boxes", torch.tensor([[1.5, 2.0, 900.0, 3.0]]), None).shape == (1, 4)  # no size: no upper bound
    assert check_boxes("boxes", np.array([[4.0, 8, 20, 30]]), 64, whole=True).tolist() == [[4, 8, 20, 30]]


@pytest.mark.parametrize("boxes, options, message", [
    ([[0, 0, 64, 10]], dict(inclusive=True),
     "boxes[0]=(0, 0, 64, 10) is not valid; give 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 63 (corners inclusive)"),
    ([[0, 0, 10, 10], [30, 0, 10, 10]], dict(inclusive=True),
     "boxes[1]=(30, 0, 10, 10) is not valid; give 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 63 (corners inclusive)"),
    ([[-1, 0, 10, 10]], dict(),
     "boxes[0]=(-1, 0, 10, 10) is not valid; give 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 (ends exclusive)"),
    ([[5, 5, 5, 9]], dict(),
     "boxes[0]=(5, 5, 5, 9) is not valid; give 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 (ends exclusive)"),
    ([[0.0, float("nan"), 10.0, 10.0]], dict(),
     "boxes have 1 non-finite values (NaN or inf) in 1 of 1 boxes (indices 0); drop those boxes or repair them "
     "(e.g. torch.nan_to_num)"),
    ([[0.5, 0, 10, 10]], dict(whole=True), "boxes[0]=(0.5, 0.0, 10.0, 10.0) is not valid; give whole pixel numbers"),
    ([[0, 0, 10]], dict(), "boxes have shape (1, 3); expected [N, 4]: one box per row, (x0, y0, x1, y1)"),
    ([[0, 0, 10, 10]], dict(count=2), "boxes have shape (1, 4); expected (2, 4): one box per image, (x0, y0, x1, y1)"),
    ([["a", 0, 10, 10]], dict(), "boxes=[['a', 0, 10, 10]] is not valid; give numbers [N, 4], (x0, y0, x1, y1) in pixels"),
    (np.ones((1, 4), dtype=bool), dict(), "boxes=[[True, True, True, True]] is not valid; give numbers [N, 4], "
                                          "(x0, y0, x1, y1) in pixels"),
])
def test_check_boxes_refuses_bad_boxes(boxes, options, message) -> None:
    refused(lambda: check_boxes("boxes", boxes, 64, **options), message)


# -- the analyses refuse what they used to truncate, misread or ignore ------------------------------------------------


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zfnet(10, 64, widths=(4, 8, 8, 8, 8), fc=16, init="he").eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def sources():
    return np.random.default_rng(0).integers(0, 256, (2, 72, 72, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def maps(model, images):
    return occlusion_maps_many(model, images, [1, 2], 16, 16)


FLOAT_LABEL = "give whole-number classes, not float; valid classes: 0 .. 9"
BOOL_LABEL = "give whole-number classes, not bool; valid classes: 0 .. 9"


def test_occlusion_maps_refuses_a_float_label(model, images) -> None:
    refused(lambda: occlusion_maps(model, images[0], 2.7, 16, 16), f"label=2.7 is not valid; {FLOAT_LABEL}")


def test_occlusion_maps_refuses_a_bool_label(model, images) -> None:
    refused(lambda: occlusion_maps(model, images[0], True, 16, 16), f"label=True is not valid; {BOOL_LABEL}")


def test_occlusion_maps_many_refuses_float_labels(model, images) -> None:
    refused(lambda: occlusion_maps_many(model, images, np.array([0.0, 2.7]), 16, 16),
            f"labels=[0.0, 2.7] is not valid; {FLOAT_LABEL}")


def test_occlude_boxes_refuses_float_labels(model, images) -> None:
    refused(lambda: occlude_boxes(model, images, [1, 2.7], [[0, 0, 9, 9]] * 2),
            f"labels=[1, 2.7] is not valid; {FLOAT_LABEL}")


def test_sanity_refuses_bool_labels(model, images) -> None:
    refused(lambda: randomization_similarity(model, images, [0, True]), f"labels=[0, True] is not valid; {BOOL_LABEL}")


def test_transform_sweep_refuses_float_labels(model, sources) -> None:
    refused(lambda: transform_sweep(model, sources, [0, 2.7], "translate", [4.0]),
            f"labels=[0, 2.7] is not valid; {FLOAT_LABEL}")


def test_transform_sweep_takes_one_layer_name(model, sources) -> None:
    sweep = transform_sweep(model, sources, [0, 1], "translate", [4.0], layers="conv1")
    assert list(sweep.distances) == ["conv1"] and sweep.distances["conv1"].shape == (2, 1)
    refused(lambda: transform_sweep(model, sources, [0, 1], "translate", [4.0], layers="conv9"),
            f"layer='conv9' is not valid; valid layers: {model.layer_names}")


def test_other_analyses_take_one_layer_name(model, images, sources) -> None:
    assert set(typical_distances(model, images, layers="fc7")) == {"fc7"}
    assert set(pooled_features(model, sources[:, :64, :64], layers="fc7", cache_dir=False)) == {"fc7"}
    assert set(model.trace(images, "conv1").activations) == {"conv1"}
    copy = randomized_copy(model, "fc8")
    assert not torch.equal(copy.classifier.fc8.weight, model.classifier.fc8.weight)
    assert torch.equal(copy.classifier.fc7.weight, model.classifier.fc7.weight)


def test_box_sensitivity_refuses_a_box_outside_the_image(maps) -> None:
    refused(lambda: box_sensitivity(maps, [[0, 0, 31, 31], [0, 0, 64, 63]]),
            "boxes[1]=(0, 0, 64, 63) is not valid; give 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 63 (corners inclusive)")


def test_box_sensitivity_refuses_a_reversed_box(maps) -> None:
    refused(lambda: box_sensitivity(maps, [[0, 40, 31, 20], [0, 0, 63, 63]]),
            "boxes[0]=(0, 40, 31, 20) is not valid; give 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 63 (corners inclusive)")


def test_box_sensitivity_refuses_a_nan_box(maps) -> None:
    refused(lambda: box_sensitivity(maps, np.array([[0, 0, 31, 31], [0, np.nan, 63, 63]])),
            "boxes have 1 non-finite values (NaN or inf) in 1 of 2 boxes (indices 1); drop those boxes or repair them "
            "(e.g. torch.nan_to_num)")


def test_occlude_boxes_refuses_a_box_outside_the_image(model, images) -> None:
    refused(lambda: occlude_boxes(model, images, [1, 2], [[0, 0, 9, 9], [60, 60, 70, 70]]),
            "boxes[1]=(60, 60, 70, 70) is not valid; give 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 63 (corners inclusive)")


def test_occlude_boxes_refuses_a_reversed_box(model, images) -> None:
    refused(lambda: occlude_boxes(model, images, [1, 2], [[9, 0, 0, 9], [0, 0, 9, 9]]),
            "boxes[0]=(9, 0, 0, 9) is not valid; give 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 63 (corners inclusive)")


def test_occlude_boxes_refuses_a_nan_box(model, images) -> None:
    refused(lambda: occlude_boxes(model, images, [1, 2], torch.tensor([[0.0, 0, 9, 9], [0, 0, float("nan"), 9]])),
            "boxes have 1 non-finite values (NaN or inf) in 1 of 2 boxes (indices 1); drop those boxes or repair them "
            "(e.g. torch.nan_to_num)")


def test_occlude_boxes_refuses_a_fractional_box(model, images) -> None:
    refused(lambda: occlude_boxes(model, images, [1, 2], [[0, 0, 9.5, 9], [0, 0, 9, 9]]),
            "boxes[0]=(0.0, 0.0, 9.5, 9.0) is not valid; give whole pixel numbers")


def test_one_pixel_boxes_are_valid(model, images, maps) -> None:
    """Corners are inclusive: x0 == x1 is a box one pixel wide (41 of Tiny ImageNet's 10,000 val boxes are)."""
    probability, predicted = occlude_boxes(model, images, [1, 2], [[5, 5, 5, 9], [0, 0, 63, 63]])
    assert probability.shape == predicted.shape == (2,)
    assert box_sensitivity(maps, [[5, 5, 5, 9], [0, 0, 63, 0]]).images == 0  # accepted; no occluder centre is in them


# -- the last analysis inputs that were accepted silently --------------------------------------------------------


def test_sign_change_of_two_images_has_no_pair_spread() -> None:
    from zfcore.analysis.correspondence import sign_consistency

    two = sign_consistency(torch.randn(2, 12))
    assert 0 <= two.delta <= 1
    with pytest.raises(ValueError, match=r"pair_std of 2 images: 1 pair has no spread; give at least 3 images"):
        two.pair_std
    assert sign_consistency(torch.randn(3, 12)).pair_std >= 0


def test_map_similarity_refuses_nan_maps() -> None:
    from zfcore.analysis.maps import map_similarity

    maps = torch.rand(2, 3, 8, 8)
    broken = maps.clone()
    broken[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"second .*1 non-finite"):
        map_similarity(maps, broken)
    with pytest.raises(ValueError, match=r"first .*1 non-finite"):
        map_similarity(broken, maps)


def test_pixel_attribution_refuses_another_image_size() -> None:
    from zfcore.analysis.occlusion import occlusion_maps, pixel_attribution

    model = zfnet(10, 64, widths=(8, 16, 24, 24, 16), fc=32).eval()
    maps = occlusion_maps(model, torch.randn(3, 64, 64), 3, size=16, stride=8)
    assert pixel_attribution(maps, 64).shape == (64, 64)
    for wrong in (32, 65):
        with pytest.raises(ValueError, match=rf"image_size={wrong} is not valid; these maps are of 64-px images"):
            pixel_attribution(maps, wrong)


def test_load_annotations_names_the_file_in_every_error(tmp_path) -> None:
    from zfcore.analysis.correspondence import load_annotations

    for name, text in (("broken.json", "{"), ("list.json", "[1, 2]"), ("empty.json", "")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=rf"{tmp_path / name}: "):
            load_annotations(tmp_path / name)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'missing.json'}: cannot be read"):
        load_annotations(tmp_path / "missing.json")


def test_training_refuses_labels_outside_the_classes_before_the_first_step(tmp_path) -> None:
    from zfcore.data.sources import training_data
    from zfcore.profiles import get_profile
    from zfcore.train import train

    config = get_profile("ci").train
    data = training_data(config)
    data.train.labels = data.train.labels.clone()
    data.train.labels[5] = 99
    with pytest.raises(ValueError, match=r"the training labels=.* \[99\] out of range; valid classes: 0 \.\. 9"):
        train(config, tmp_path / "run", data=data, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_chapters_take_the_books_sizes_except_under_ci() -> None:
    from zfcore.profiles import PROFILES, AnalysisSizes

    assert all(profile.sizes == AnalysisSizes() for name, profile in PROFILES.items() if name != "ci")
    ci, book = PROFILES["ci"].sizes, PROFILES["book"].sizes
    assert all(getattr(ci, name) < getattr(book, name) for name in vars(book))
    with pytest.raises(ValueError, match=r"occlusion_images=0 is not valid"):
        AnalysisSizes(occlusion_images=0)

"""Tests of zfcore.analysis.correspondence: the sign-change score Δ (§4.3), masks, the control, annotations."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from PIL import Image

from zfcore import plots
from zfcore.data.images import centre_crop
from zfcore.analysis.consistency import MIN_IMAGES_FOR_INTERVAL, c7_verdict, gap, measure, score, subset_scores
from zfcore.analysis.correspondence import (PARTS, SignChange, box_masks, jitter_boxes, load_annotations, random_boxes,
                                            sign_change, sign_changes, sign_consistency)
from zfcore.plots.correspondence import annotation_figure, gap_figure, predictions_table
from zfcore.data.loader import IMAGENET_MEAN, normalize
from zfcore.models import zfnet

ANNOTATIONS = Path(__file__).resolve().parents[1] / "data" / "annotations" / "dog_parts.json"


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return zfnet(10, 64, widths=(8, 12, 16, 16, 12), fc=16, init="he").eval()


def _images(count: int = 4, seed: int = 1) -> torch.Tensor:
    pixels = np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
    return normalize(torch.from_numpy(pixels))


# --------------------------------------------------------------------------- Δ from the differences
def test_delta_is_zero_when_every_image_changes_with_the_same_signs() -> None:
    pattern = torch.tensor([1.0, -2.0, 0.0, 3.0, -0.5])
    differences = torch.stack([pattern * scale for scale in (1.0, 0.1, 7.0)])  # same signs, other sizes
    result = sign_consistency(differences)
    assert result.delta == 0.0 and result.total == 0


def test_delta_is_maximal_for_opposite_signs() -> None:
    pattern = torch.tensor([1.0, -2.0, 4.0, 3.0])
    result = sign_consistency(torch.stack([pattern, -pattern]))
    assert result.delta == 1.0
    assert result.total == 2 * 4  # both ordered pairs, every feature


def test_delta_is_symmetric_and_ignores_the_order_of_images() -> None:
    differences = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    result = sign_consistency(differences)
    assert torch.equal(result.pair_distances, result.pair_distances.T)
    assert torch.all(result.pair_distances.diagonal() == 0)
    shuffled = sign_consistency(differences[torch.tensor([3, 0, 4, 1, 2])])
    assert shuffled.delta == pytest.approx(result.delta)


def test_delta_of_a_small_example_by_hand() -> None:
    # signs: a = (+, 0, -), b = (+, +, -), c = (-, 0, +); H(a,b) = 1, H(a,c) = 2, H(b,c) = 3
    differences = torch.tensor([[2.0, 0.0, -1.0], [0.5, 4.0, -3.0], [-1.0, 0.0, 2.0]])
    result = sign_consistency(differences)
    assert result.total == 2 * (1 + 2 + 3)  # the paper's sum over i != j
    assert result.delta == pytest.approx(12 / (3 * 2 * 3))  # / (N (N - 1) D)
    assert result.pair_distances[0, 1] == pytest.approx(1 / 3)
    assert result.pair_distances[1, 2] == pytest.approx(3 / 3)
    assert result.unchanged.tolist() == pytest.approx([1 / 3, 0.0, 1 / 3])
    assert result.pair_std == pytest.approx(float(torch.tensor([1 / 3, 2 / 3, 1.0]).std()))


@pytest.mark.parametrize("bad", [torch.zeros(1, 4), torch.zeros(3), torch.zeros(2, 0), torch.zeros(2, 3, dtype=torch.long),
                                 torch.tensor([[1.0, float("nan")], [1.0, 2.0]]), [[1.0, 2.0], [3.0, 4.0]]])
def test_sign_consistency_refuses_bad_differences(bad) -> None:
    with pytest.raises(ValueError):
        sign_consistency(bad)


# --------------------------------------------------------------------------- Δ of a network
def test_mask_fill_zero_is_the_training_mean_of_both_preprocessings() -> None:
    mean_colour = torch.tensor(IMAGENET_MEAN).mul(255).view(1, 1, 1, 3).expand(1, 4, 4, 3)
    assert normalize(mean_colour).abs().max() < 1e-6  # ImageNet mean/std
    mean_image = torch.rand(4, 4, 3) * 255
    assert normalize(mean_image[None], mean_image).abs().max() == 0  # the paper's pixel-mean


def test_sign_change_matches_the_features_computed_by_hand() -> None:
    model, images = _model(), _images(3)
    boxes = torch.tensor([[0, 0, 10, 10], [20, 20, 40, 30], [50, 5, 64, 12]])
    masked = images.clone()
    for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        masked[index, :, y0:y1, x0:x1] = 0
    with torch.no_grad():
        expected = sign_consistency(model.trace(images).activations["fc7"] - model.trace(masked).activations["fc7"])
        pooled = model.features(images).flatten(1) - model.features(masked).flatten(1)
    result = sign_change(model, images, boxes, "fc7")
    assert torch.allclose(result.pair_distances, expected.pair_distances)
    assert result.pair_distances.device.type == "cpu"
    assert sign_change(model, images, boxes, "pool5").features == pooled.shape[1]
    assert sign_change(model, images, box_masks(boxes, 64), "fc7").delta == pytest.approx(result.delta)


def test_sign_change_is_zero_for_identical_images_and_masks() -> None:
    model = _model()
    images = _images(1).expand(4, -1, -1, -1).contiguous()
    boxes = torch.tensor([[10, 10, 20, 20]] * 4)
    for layer in ("pool5", "conv5", "fc7"):
        assert sign_change(model, images, boxes, layer).delta == 0.0


def test_sign_change_keeps_the_model_mode() -> None:
    model = _model().train()
    sign_change(model, _images(2), torch.tensor([[0, 0, 8, 8]] * 2), "fc7")
    assert model.training


@pytest.mark.parametrize("images, masks, layer, fill", [
    (_images(1), torch.tensor([[0, 0, 8, 8]]), "fc7", 0.0),  # one image: no pair
    (_images(2), torch.tensor([[0, 0, 8, 8]]), "fc7", 0.0),  # one mask for two images
    (_images(2), torch.tensor([[0, 0, 8, 70]] * 2), "fc7", 0.0),  # box outside the image
    (_images(2), torch.tensor([[8, 0, 8, 8]] * 2), "fc7", 0.0),  # empty box
    (_images(2), torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2), "fc7", 0.0),  # float boxes
    (_images(2), torch.zeros(2, 64, 64, dtype=torch.bool), "fc7", 0.0),  # masks covering nothing
    (_images(2), torch.ones(2, 32, 32, dtype=torch.bool), "fc7", 0.0),  # masks of another size
    (_images(2), torch.ones(2, 64, 64), "fc7", 0.0),  # float masks
    (_images(2), torch.tensor([[0, 0, 8, 8]] * 2), "fc9", 0.0),  # unknown layer
    (_images(2), torch.tensor([[0, 0, 8, 8]] * 2), "fc7", float("nan")),  # fill
    (torch.zeros(2, 3, 32, 32), torch.tensor([[0, 0, 8, 8]] * 2), "fc7", 0.0),  # wrong input size
])
def test_sign_change_refuses_bad_inputs(images, masks, layer, fill) -> None:
    with pytest.raises(ValueError):
        sign_change(_model(), images, masks, layer, fill=fill)


# --------------------------------------------------------------------------- control and table
def test_random_boxes_keep_sizes_stay_inside_and_repeat_with_the_seed() -> None:
    boxes = torch.tensor([[0, 0, 5, 7], [10, 20, 30, 25], [0, 0, 64, 1]])
    drawn = [random_boxes(boxes, 64, np.random.default_rng(3)) for _ in range(2)]
    assert torch.equal(drawn[0], drawn[1])
    for _ in range(50):
        moved = random_boxes(boxes, 64, np.random.default_rng(_))
        assert torch.equal(moved[:, 2] - moved[:, 0], boxes[:, 2] - boxes[:, 0])
        assert torch.equal(moved[:, 3] - moved[:, 1], boxes[:, 3] - boxes[:, 1])
        assert moved.min() >= 0 and moved[:, 2:].max() <= 64


def test_random_boxes_stay_inside_their_regions() -> None:
    boxes = torch.tensor([[0, 0, 5, 7], [10, 20, 30, 25]])
    regions = torch.tensor([[20, 30, 30, 40], [0, 0, 20, 5]])
    for seed in range(50):
        moved = random_boxes(boxes, 64, np.random.default_rng(seed), regions)
        assert torch.all(moved[:, :2] >= regions[:, :2]) and torch.all(moved[:, 2:] <= regions[:, 2:])
    with pytest.raises(ValueError, match="larger than its region"):
        random_boxes(boxes, 64, np.random.default_rng(0), torch.tensor([[0, 0, 4, 4], [0, 0, 20, 5]]))
    with pytest.raises(ValueError):
        random_boxes(boxes, 64, np.random.default_rng(0), torch.tensor([[0, 0, 70, 70], [0, 0, 20, 5]]))


def test_measure_gives_table_1_with_the_paper_beside() -> None:
    model, images = _model(), _images(3)
    part_boxes = {part: torch.tensor([[k * 10, 5, k * 10 + 8, 13]] * 3) for k, part in enumerate(PARTS)}
    result = measure(model, images, part_boxes, draws=4, seed=0)
    summary = result.summary()
    assert set(summary) == {*PARTS, "random"} and len(result.random["fc7"]) == 4
    assert 0.0 <= result.below_random("nose", "pool5") <= 1.0
    table = result.markdown()
    assert "0.107 ± 0.017" in table and "| random |" in table  # the paper's random row, layer 5
    with pytest.raises(ValueError):
        measure(model, images, part_boxes, draws=1)


# --------------------------------------------------------------------------- annotations, crop, figure
def test_the_committed_annotations_are_valid() -> None:
    annotations = load_annotations(ANNOTATIONS)
    count = len(annotations.files)
    assert count >= 20 and annotations.size == 64 and len(set(annotations.files)) == count
    for part in PARTS:
        assert annotations.boxes[part].shape == (count, 4)
    # the dog's right eye is on the image's left in a frontal image
    assert torch.all(annotations.boxes["right eye"][:, 0] < annotations.boxes["left eye"][:, 0])
    # the selection rule: the nose's centre lies horizontally between the eyes' centres
    def centre_x(part: str) -> torch.Tensor:
        return (annotations.boxes[part][:, 0] + annotations.boxes[part][:, 2]) / 2
    assert torch.all((centre_x("right eye") < centre_x("nose")) & (centre_x("nose") < centre_x("left eye")))
    for part in PARTS:  # every part lies in its dog's box
        assert torch.all(annotations.boxes[part][:, :2] >= annotations.objects[:, :2])
        assert torch.all(annotations.boxes[part][:, 2:] <= annotations.objects[:, 2:])


def test_load_annotations_refuses_a_box_outside_the_crop(tmp_path: Path) -> None:
    data = json.loads(ANNOTATIONS.read_text())
    data["images"][0]["boxes"]["nose"] = [60, 60, 70, 70]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="nose"):
        load_annotations(path)
    del data["images"][0]["object"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="object"):
        load_annotations(path)
    del data["crop_size"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="crop_size"):
        load_annotations(path)


def test_centre_crop_resizes_the_shorter_side_and_takes_the_centre() -> None:
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, 50:150] = 255  # the central square of a 200 x 100 image is white
    crop = centre_crop(Image.fromarray(pixels), 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert crop[:, 2:-2].min() == 255


def test_correspondence_figure_draws_every_panel() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    part_boxes = {part: torch.tensor([[k * 10, 5, k * 10 + 8, 13]] * 2) for k, part in enumerate(PARTS)}
    figure = plots.correspondence_figure(pixels, part_boxes, [part_boxes["nose"] + 20], fill_colour=(124, 116, 104))
    assert len(figure.axes) == 2 * (1 + 3 + 1)
    shown = figure.axes[3].images[0].get_array()  # row 0, nose masked
    assert (np.asarray(shown)[5:13, 20:28] == (124, 116, 104)).all()


# --------------------------------------------------------------------------- Δ split, control off the parts, jitter
def test_delta_splits_into_which_units_change_and_the_sign_among_units_changed_in_both() -> None:
    # signs: a = (+, 0, -, +), b = (+, +, +, 0): changed in one: features 1 and 3; in both: 0 and 2; opposite: 2
    differences = torch.tensor([[2.0, 0.0, -1.0, 3.0], [0.5, 4.0, 3.0, 0.0]])
    result = sign_consistency(differences)
    assert result.changed_in_one[0, 1] == pytest.approx(2 / 4)
    assert result.changed_in_both[0, 1] == pytest.approx(2 / 4)
    assert result.opposite_in_both[0, 1] == pytest.approx(1 / 4)
    assert result.pair_distances[0, 1] == pytest.approx(3 / 4)
    expected_cosine = float(differences[0] @ differences[1] / (differences[0].norm() * differences[1].norm()))
    assert result.cosine[0, 1] == pytest.approx(expected_cosine)
    random = sign_consistency(torch.randn(6, 50, generator=torch.Generator().manual_seed(1)).relu())
    assert torch.allclose(random.pair_distances, random.changed_in_one + random.opposite_in_both)


def test_random_boxes_stay_off_the_boxes_to_avoid() -> None:
    boxes = torch.tensor([[0, 0, 6, 6], [0, 0, 4, 8]])
    parts = [torch.tensor([[20, 20, 30, 30], [0, 0, 64, 20]]), torch.tensor([[40, 10, 50, 16], [10, 30, 20, 40]])]
    for seed in range(30):
        moved = random_boxes(boxes, 64, np.random.default_rng(seed), avoid=parts)
        masks = box_masks(moved, 64)
        for other in parts:
            assert not bool((masks & box_masks(other, 64)).any())
    with pytest.raises(ValueError, match="no place"):  # the only room is taken by a part
        random_boxes(boxes[:1], 64, np.random.default_rng(0), torch.tensor([[0, 0, 8, 8]]), [torch.tensor([[2, 2, 6, 6]])])
    with pytest.raises(ValueError, match="avoid"):
        random_boxes(boxes, 64, np.random.default_rng(0), avoid=[parts[0][:1]])


def test_jitter_boxes_shift_by_at_most_the_pixels_and_stay_inside() -> None:
    boxes = torch.tensor([[0, 0, 6, 6], [58, 58, 64, 64], [30, 30, 36, 40]])
    shifted_any = False
    for seed in range(40):
        moved = jitter_boxes(boxes, 64, np.random.default_rng(seed), pixels=2)
        assert torch.equal(moved[:, 2:] - moved[:, :2], boxes[:, 2:] - boxes[:, :2])
        assert (moved - boxes).abs().max() <= 2 and moved.min() >= 0 and moved.max() <= 64
        shifted_any |= not torch.equal(moved, boxes)
    assert shifted_any
    assert torch.equal(jitter_boxes(boxes, 64, np.random.default_rng(0), pixels=0), boxes)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="pixels"):
            jitter_boxes(boxes, 64, np.random.default_rng(0), pixels=bad)


def test_measure_keeps_random_boxes_off_the_parts_and_measures_jittered_parts() -> None:
    model, images = _model(), _images(3)
    part_boxes = {part: torch.tensor([[k * 10, 5, k * 10 + 8, 13]] * 3) for k, part in enumerate(PARTS)}
    result = measure(model, images, part_boxes, draws=6, seed=0, jitters=2)
    parts_mask = torch.stack([box_masks(boxes, 64) for boxes in part_boxes.values()]).any(0)
    for boxes in result.random_boxes:
        assert not bool((box_masks(boxes, 64) & parts_mask).any())
    assert len(result.jittered) == 2 and set(result.jittered[0]) == set(PARTS)
    both = sign_changes(model, images, part_boxes["nose"], ("pool5", "fc7"))
    assert both["fc7"].delta == pytest.approx(result.parts["nose"]["fc7"].delta)
    with pytest.raises(ValueError, match="jitters"):
        measure(model, images, part_boxes, draws=2, jitters=-1)
    with pytest.raises(ValueError, match="layers"):
        sign_changes(model, images, part_boxes["nose"], "fc7")


# --------------------------------------------------------------------------- scores, gaps and the C7 verdict
def _changes(count: int, features: int, seed: int, *, changed: float, common: torch.Tensor | None = None) -> SignChange:
    """ε of ``count`` images at layer 5: each feature changes with chance ``changed``; its sign is ``common``'s where
    given (the same direction in every image), else a coin flip."""
    generator = torch.Generator().manual_seed(seed)
    which = torch.rand(count, features, generator=generator) < changed
    signs = common.expand(count, -1) if common is not None else torch.randint(0, 2, (count, features),
                                                                              generator=generator) * 2 - 1
    sizes = torch.rand(count, features, generator=generator) + 0.1
    return sign_consistency((which * signs * sizes).double(), "pool5")


def _random_draws(count: int, features: int, changed: float = 0.3, draws: int = 8) -> list[SignChange]:
    return [_changes(count, features, 100 + seed, changed=changed) for seed in range(draws)]


COMMON = torch.randint(0, 2, (1, 300), generator=torch.Generator().manual_seed(7)) * 2 - 1


def test_c7_verdict_agrees_when_every_part_changes_the_same_way() -> None:
    parts = {part: _changes(12, 300, k, changed=0.3, common=COMMON) for k, part in enumerate(PARTS)}
    verdict = c7_verdict(parts, _random_draws(12, 300), draws=300)
    assert verdict.outcome == "agree" and verdict.claim == "C7"
    assert verdict.estimate.low > 0
    assert all(verdict.details["sign gap % (layer 5)"][part]["low"] > 0 for part in PARTS)


def test_c7_verdict_differs_when_parts_change_like_random_boxes() -> None:
    parts = {part: _changes(12, 300, 50 + k, changed=0.3) for k, part in enumerate(PARTS)}
    verdict = c7_verdict(parts, _random_draws(12, 300), draws=300)
    assert verdict.outcome == "differ", verdict.details
    assert verdict.estimate.low < 0 < verdict.estimate.high


def test_c7_verdict_is_partly_when_only_the_sign_among_changed_units_agrees() -> None:
    # the parts change more units than the random boxes (Δ counts that against them) but in one direction
    parts = {part: _changes(12, 300, k, changed=0.5, common=COMMON) for k, part in enumerate(PARTS)}
    verdict = c7_verdict(parts, _random_draws(12, 300, changed=0.2), draws=300)
    assert verdict.outcome == "partly"
    assert all(verdict.details["delta gap % (layer 5)"][part]["high"] < 0 for part in PARTS)
    assert "no part" in verdict.reason and "the right eye, the left eye and the nose" in verdict.reason


def test_c7_verdict_is_partly_when_only_the_nose_corresponds() -> None:
    parts = {"right eye": _changes(12, 300, 60, changed=0.3), "left eye": _changes(12, 300, 61, changed=0.3),
             "nose": _changes(12, 300, 62, changed=0.3, common=COMMON)}
    verdict = c7_verdict(parts, _random_draws(12, 300), draws=300)
    assert verdict.outcome == "partly" and "singles out the nose" in verdict.reason


def test_c7_verdict_reports_jitter_and_layer_7() -> None:
    parts = {part: _changes(12, 300, k, changed=0.3, common=COMMON) for k, part in enumerate(PARTS)}
    random = _random_draws(12, 300)
    verdict = c7_verdict(parts, random, jittered=[parts, parts], layer7=(parts, random), draws=200)
    low, high = verdict.details["delta gap % under jitter (min, max)"]["nose"]
    assert low == pytest.approx(high) and low > 0
    assert verdict.details["delta gap % (layer 7)"]["nose"]["low"] > 0


def test_c7_verdict_refuses_bad_inputs() -> None:
    parts = {part: _changes(12, 300, k, changed=0.3) for k, part in enumerate(PARTS)}
    random = _random_draws(12, 300)
    with pytest.raises(ValueError, match="nose"):
        c7_verdict({part: parts[part] for part in PARTS[:2]}, random)
    with pytest.raises(ValueError, match="at least 2"):
        c7_verdict(parts, random[:1])
    fc7 = {part: SignChange(**{**vars(result), "layer": "fc7"}) for part, result in parts.items()}
    with pytest.raises(ValueError, match="pool5"):
        c7_verdict(fc7, random)


def test_gap_and_score_by_hand_and_their_checks() -> None:
    part = sign_consistency(torch.tensor([[1.0, -1.0]] * 5 + [[-1.0, 1.0]] * 5).double(), "pool5")
    random = [sign_consistency(torch.tensor([[1.0, 1.0], [-1.0, -1.0]] * 5).double(), "pool5")] * 2
    # part: pairs differ in both features between the two halves: 50 of 90 ordered pairs, Δ = 50/90
    assert score(part, draws=100).value == pytest.approx(50 / 90)
    assert score(random, draws=100).value == pytest.approx(50 / 90)
    assert gap(part, random, draws=100).value == pytest.approx(0.0)
    with pytest.raises(ValueError, match="metric"):
        gap(part, random, "hamming")
    small = sign_consistency(torch.randn(MIN_IMAGES_FOR_INTERVAL - 1, 4, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="MIN_IMAGES_FOR_INTERVAL"):
        score(small)


def test_subset_scores_of_all_images_equal_the_full_score() -> None:
    parts = {part: _changes(12, 100, k, changed=0.3) for k, part in enumerate(PARTS)}
    random = _random_draws(12, 100, draws=3)
    whole = subset_scores(parts, random, size=12, count=3)
    assert whole["nose"] == pytest.approx([parts["nose"].delta] * 3)
    fives = subset_scores(parts, random, size=5, count=50, seed=1)
    assert set(fives) == {*PARTS, "random"} and fives["random"].shape == (50,) and fives["nose"].std() > 0
    for bad in (1, 13):
        with pytest.raises(ValueError, match="size"):
            subset_scores(parts, random, size=bad)


def test_annotation_and_gap_figures_draw_every_panel() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    part_boxes = {part: torch.tensor([[k * 10, 5, k * 10 + 8, 13]] * 7) for k, part in enumerate(PARTS)}
    figure = annotation_figure(pixels, part_boxes, torch.tensor([[0, 0, 64, 64]] * 7), [f"dog {k}" for k in range(7)])
    assert len(figure.axes) == 10 and len(figure.axes[0].patches) == 4 and not figure.axes[9].images
    with pytest.raises(ValueError, match="label"):
        annotation_figure(pixels, part_boxes, torch.tensor([[0, 0, 64, 64]] * 7), ["dog"])
    gaps = {"Δ": {part: (1.0, 0.0, 2.0) for part in PARTS}, "sign": {part: (3.0, 1.0, 5.0) for part in PARTS}}
    figure = gap_figure(gaps, paper={part: 30.0 for part in PARTS})
    assert len(figure.axes) == 2


def test_correspondence_tables_gaps_and_verdict_of_a_measurement() -> None:
    model, images = _model(), _images(MIN_IMAGES_FOR_INTERVAL)
    count = MIN_IMAGES_FOR_INTERVAL
    part_boxes = {part: torch.tensor([[k * 10, 5, k * 10 + 8, 13]] * count) for k, part in enumerate(PARTS)}
    result = measure(model, images, part_boxes, draws=3, seed=0, jitters=1)
    table = result.split_markdown(("pool5", "fc7"))
    assert table.count("| pool5 |") == 4 and "cosine" in table
    assert set(result.gaps("pool5")) == {"Δ", "which units change", "sign, changed in both", "cosine of ε (× 100)"}
    subsets = result.subsets_markdown("fc7", count=20, column=1)
    assert "0.073 ± 0.014" in subsets  # the paper's random row, layer 7
    verdict = result.c7_verdict(draws=200)
    assert verdict.claim == "C7" and verdict.details["images"] == count
    assert "delta gap % under jitter (min, max)" in verdict.details and "delta gap % (layer 7)" in verdict.details
    with pytest.raises(ValueError, match="conv1"):
        result.layer("conv1")


def test_predictions_table_names_each_images_class_whether_known_and_the_networks_top_class() -> None:
    probabilities = torch.tensor([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    table = predictions_table(["pug", "tabby"], ["n1", "n9"], probabilities, ["n1", "n2", "n3"], ["pug", "cat", "cow"])
    assert table.splitlines()[2:] == ["| pug | n1 | yes | cat (0.70) |", "| tabby | n9 | no | pug (0.60) |"]
    with pytest.raises(ValueError, match=r"probabilities has shape \(2, 3\); expected \[2 images, 4 classes\]"):
        predictions_table(["pug", "tabby"], ["n1", "n9"], probabilities, ["n1", "n2", "n3", "n4"], ["a", "b", "c", "d"])

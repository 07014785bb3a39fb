"""Tests of zfcore.analysis.transfer and zfcore.analysis.probes (§5.2-5.3, Tables 4, 5, 7, Fig. 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import zfcore.analysis.transfer as transfer
from zfcore.analysis.probes import (DEFAULT_WEIGHT_DECAY, SplitScores, c10_verdict, deeper_is_better, fit_linear,
                                    frozen_transfer, layer_by_cross_validation, layer_probes, paired_split_difference,
                                    select_weight_decay)
from zfcore.analysis.generalisation import c9_verdict, control_minus_reference
from zfcore.analysis.transfer import (FEATURE_LAYERS, NetworkRecipe, dataset_pixels, learning_curve, network_transfer,
                                      pooled_features)
from zfcore.data.caltech import Caltech256, caltech_splits, mean_per_class_accuracy
from zfcore.data.loader import normalize
from zfcore.models import zfnet
from zfcore.profiles import TrainConfig

WIDTHS, FC = (8, 16, 16, 16, 16), 32
COLOURS = np.array([[230, 30, 30], [30, 200, 40], [40, 50, 220], [240, 220, 30], [20, 20, 20]], dtype=np.uint8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zfnet(5, 64, widths=WIDTHS, fc=FC, init="he").eval()


def _coloured(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of 5 classes: each a class colour plus noise (an easy task a random network's features can solve)."""
    labels = np.repeat(np.arange(len(COLOURS)), per_class)
    noise = np.random.default_rng(seed).integers(-40, 41, (len(labels), 64, 64, 3))
    return np.clip(COLOURS[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8), labels


def _clusters(per_class: int, classes: int = 6, dim: int = 12, spread: float = 0.3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = torch.randn(classes, dim, generator=generator) * 3
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=generator), labels


# -- linear classifiers ------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_linear_classifier_separates_clusters_and_decay_shrinks_weights(loss):
    features, labels = _clusters(20)
    weak = fit_linear(features, labels, 6, weight_decay=1e-4, loss=loss)
    strong = fit_linear(features, labels, 6, weight_decay=10.0, loss=loss)
    test, test_labels = _clusters(10, seed=0)
    assert mean_per_class_accuracy(weak.scores(test), test_labels) == 1.0
    assert strong.weight.norm() < 0.2 * weak.weight.norm()
    shuffled = fit_linear(features, np.random.default_rng(1).permutation(labels), 6, weight_decay=1e-4, loss=loss)
    assert mean_per_class_accuracy(shuffled.scores(test), test_labels) < 0.6


def test_linear_classifier_refuses_bad_arguments():
    features, labels = _clusters(3)
    with pytest.raises(ValueError, match="loss='hinge' is not valid; valid values"):
        fit_linear(features, labels, 6, weight_decay=0.0, loss="hinge")
    with pytest.raises(ValueError, match="weight_decay=-1"):
        fit_linear(features, labels, 6, weight_decay=-1)
    with pytest.raises(ValueError, match=r"classes in \[0, 4\)"):
        fit_linear(features, labels, 4, weight_decay=0.0)
    with pytest.raises(ValueError, match="folds=0"):
        select_weight_decay(features, labels, 6, folds=0)
    with pytest.raises(ValueError, match="loss='knn'"):
        layer_probes({"fc7": features}, labels, caltech_splits(labels, 2, seeds=[0]), losses=("knn",))


def test_weight_decay_is_chosen_by_cross_validation_on_the_given_images_only():
    features, labels = _clusters(6, spread=2.5)
    best, scores = select_weight_decay(features, labels, 6, grid=(1e-3, 1.0, 1e3), folds=3)
    assert set(scores) == {1e-3, 1.0, 1e3} and scores[best] == max(scores.values())
    assert best == max(decay for decay in scores if scores[decay] == scores[best])  # ties: the larger decay
    assert len(set(scores.values())) > 1  # the folds score the decays differently
    one_each = select_weight_decay(features[::6], labels[::6], 6)
    assert one_each == (DEFAULT_WEIGHT_DECAY, {})


def test_frozen_transfer_never_sees_the_test_images():
    """The weight decay and the classifier depend on the training images only: scrambling every test image
    and test label changes the accuracy, not the fit."""
    features, labels = _clusters(12, spread=1.5)
    splits = caltech_splits(labels, 5, seeds=[0, 1])
    clean = frozen_transfer(features, labels, splits, grid=(1e-3, 1e-1, 10.0))
    scrambled_features, scrambled_labels = features.clone(), labels.copy()
    test = np.unique(np.concatenate([split.test for split in splits]))
    test = np.setdiff1d(test, np.concatenate([split.train for split in splits]))  # test of every split
    scrambled_features[test] = torch.randn(len(test), features.shape[1], generator=torch.Generator().manual_seed(0)) * 50
    scrambled_labels[test] = np.random.default_rng(0).permutation(scrambled_labels[test])
    scrambled = frozen_transfer(scrambled_features, scrambled_labels, splits, grid=(1e-3, 1e-1, 10.0))
    assert clean.weight_decays == scrambled.weight_decays
    for a, b in zip(clean.classifiers, scrambled.classifiers):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.mean, b.mean)
    assert clean.mean > 0.9 and scrambled.mean < clean.mean - 0.2  # the test images were scored, and only they


def test_split_scores_statistics():
    scores = SplitScores("x", 30, [0, 1, 2], [0.5, 0.6, 0.7], [None] * 3, 1.0)
    assert scores.mean == pytest.approx(0.6) and scores.std == pytest.approx(0.1)
    assert scores.as_dict()["mean_percent"] == 60.0 and scores.as_dict()["std_percent"] == 10.0
    assert SplitScores("x", 30, [0], [0.5], [None], 1.0).std is None


def test_deeper_is_better_verdict():
    def scores(*accuracies):
        return SplitScores("x", 30, [0, 1], list(accuracies), [None, None], 0.0)

    rising = deeper_is_better({"conv1": scores(0.2, 0.3), "conv5": scores(0.5, 0.6), "fc7": scores(0.7, 0.65)})
    assert rising["holds"] and [step["verdict"] for step in rising["steps"]] == ["rise", "rise"]
    falling = deeper_is_better({"conv1": scores(0.2, 0.3), "conv3": scores(0.6, 0.6), "fc7": scores(0.4, 0.5)})
    assert not falling["holds"] and falling["best_layer"] == "conv3" and falling["steps"][1]["verdict"] == "drop"
    with pytest.raises(ValueError, match="two or more layers"):
        deeper_is_better({"fc7": scores(0.1, 0.2)})


# -- features ---------------------------------------------------------------------------------------


def test_pooled_features_are_max_pooled_maps_and_cached(model, tmp_path):
    pixels, _ = _coloured(2)
    features = pooled_features(model, pixels, cache_dir=tmp_path)
    assert list(features) == list(FEATURE_LAYERS)
    trace = model.trace(normalize(torch.from_numpy(pixels)).contiguous())
    for layer in FEATURE_LAYERS:
        expected = trace.activations[layer]
        if expected.dim() == 4:
            assert features[layer].shape == (10, expected.shape[1] * 4)
            expected = F.adaptive_max_pool2d(expected, 2).flatten(1)
        torch.testing.assert_close(features[layer], expected.detach(), rtol=1e-4, atol=1e-5)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    again = pooled_features(model, pixels, cache_dir=tmp_path)
    assert all(torch.equal(again[layer], features[layer]) for layer in FEATURE_LAYERS)
    other = pooled_features(model, pixels[::-1].copy(), layers=("fc7",), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2  # other pixels: computed anew and cached beside the first
    # fp32 sums depend on the batch order and the thread count: equal to rounding, not bitwise
    torch.testing.assert_close(other["fc7"], features["fc7"].flip(0), rtol=1e-5, atol=1e-6)


def test_pooled_features_refuse_bad_arguments(model):
    pixels, _ = _coloured(1)
    with pytest.raises(ValueError, match="layer='fc8' is not valid; valid layers"):
        pooled_features(model, pixels, ("fc8",), cache_dir=False)
    with pytest.raises(ValueError, match="grid=0"):
        pooled_features(model, pixels, grid=0, cache_dir=False)
    with pytest.raises(ValueError, match="dtype float32"):
        pooled_features(model, pixels.astype(np.float32), cache_dir=False)


def test_fake_caltech256_runs_through_the_same_code(model, tmp_path, monkeypatch):
    """Table 5's path on a fake on-disk Caltech-256: files -> 64-px pixels (cached) -> features -> splits -> softmax."""
    folder = tmp_path / "caltech256" / "256_ObjectCategories"
    generator = np.random.default_rng(0)
    for number, (name, colour) in enumerate(zip(("ak47", "american-flag", "backpack", "baseball-bat"), COLOURS), 1):
        for index in range(1, 9):
            size = (80, 50) if index % 2 else (40, 90)  # landscape and portrait, larger and smaller than 64
            noise = generator.integers(-30, 31, (size[1], size[0], 3))
            path = folder / f"{number:03d}.{name}" / f"{number:03d}_{index:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8)).save(path)
    (folder / "257.clutter").mkdir()
    dataset = Caltech256(tmp_path, download=False)
    pixels, labels = dataset_pixels(dataset, 64, cache_dir=tmp_path / "cache")
    assert pixels.shape == (32, 64, 64, 3) and pixels.dtype == np.uint8 and labels.tolist() == dataset.targets
    assert np.abs(pixels[0].reshape(-1, 3).mean(0) - COLOURS[0]).max() < 15  # the centre square, not padding
    from zfcore.data import images

    monkeypatch.setattr(images, "decode_to_cache", lambda *args, **kwargs: pytest.fail("decoded twice"))
    cached, _ = dataset_pixels(dataset, 64, cache_dir=tmp_path / "cache")
    assert np.array_equal(cached, pixels)
    fc7 = pooled_features(model, pixels, ("fc7",), cache_dir=False)["fc7"]
    result = frozen_transfer(fc7, labels, caltech_splits(labels, 3, seeds=range(2)))
    assert result.train_per_class == 3 and len(result.accuracies) == 2 and result.mean > 0.5


# -- networks and Fig. 9 ----------------------------------------------------------------------------


def test_network_training_never_sees_the_test_images(model, monkeypatch):
    """Fine-tuning and training from scratch give bitwise the same network whatever the test images are,
    and fine-tuning leaves the pretrained network untouched."""
    pixels, labels = _coloured(6)
    splits = caltech_splits(labels, 3, seeds=[0])
    trained: list[dict[str, torch.Tensor]] = []
    monkeypatch.setattr(transfer, "_network_accuracy",
                        lambda network, *args: trained.append({k: v.clone() for k, v in network.state_dict().items()}) or 0.0)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=5, widths=WIDTHS, fc=FC, init="he")
    recipe = NetworkRecipe(steps=3, batch_size=8)
    for source, mode in ((model, "finetune"), (config, "scratch")):
        for fill in (0, 255):
            changed = pixels.copy()
            changed[splits[0].test] = fill
            network_transfer(source, changed, labels, splits, mode=mode, recipe=recipe, precision="fp32")
        first, second = trained[-2:]
        assert all(torch.equal(first[key], second[key]) for key in first), mode
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert trained[0]["classifier.fc8.weight"].shape == (5, FC)


def test_networks_learn_an_easy_task():
    pixels, labels = _coloured(12)
    splits = caltech_splits(labels, 8, seeds=[0])
    recipe = NetworkRecipe(steps=60, batch_size=10, lr=0.01, pretrained_lr_scale=1.0)
    # no dropout: with fc 32, dropout 0.5 makes 60 steps too few for these small networks
    config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=5, widths=WIDTHS, fc=FC, init="he",
                         dropout=0.0)
    torch.manual_seed(1)
    pretrained = zfnet(5, 64, widths=WIDTHS, fc=FC, init="he", dropout=0.0).eval()
    for source, mode in ((pretrained, "finetune"), (config, "scratch")):
        result = network_transfer(source, pixels, labels, splits, mode=mode, recipe=recipe, precision="fp32")
        assert result.method == mode and result.weight_decays == [None]
        assert result.mean >= 0.8, mode


def test_network_transfer_and_learning_curve_refuse_bad_arguments(model):
    pixels, labels = _coloured(2)
    splits = caltech_splits(labels, 1, seeds=[0])
    config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=5, widths=WIDTHS, fc=FC)
    with pytest.raises(ValueError, match="mode='linear' is not valid; valid values"):
        network_transfer(model, pixels, labels, splits, mode="linear")
    with pytest.raises(ValueError, match="needs a TrainConfig as source, got ZFNet"):
        network_transfer(model, pixels, labels, splits, mode="scratch")
    with pytest.raises(ValueError, match="needs a ZFNet as source"):
        network_transfer(config, pixels, labels, splits, mode="finetune")
    with pytest.raises(ValueError, match="steps=0"):
        network_transfer(model, pixels, labels, splits, mode="finetune", recipe=NetworkRecipe(steps=0))
    with pytest.raises(ValueError, match="0 splits"):
        network_transfer(model, pixels, labels, [], mode="finetune")
    for sizes in ((), (5, 1), (0, 2), (1, 1)):
        with pytest.raises(ValueError, match="positive integers in increasing order"):
            learning_curve(labels, sizes, lambda splits: None)


def test_learning_curve_scores_each_size_on_its_own_splits():
    features, labels = _clusters(12, spread=1.5)
    curve = learning_curve(labels, (1, 3, 6), lambda splits: frozen_transfer(features, labels, splits), seeds=[0, 1])
    assert [scores.train_per_class for scores in curve] == [1, 3, 6]
    assert all(scores.seeds == [0, 1] for scores in curve)
    assert curve[0].weight_decays == [DEFAULT_WEIGHT_DECAY] * 2  # one image per class: no CV possible


def test_plots_draw_every_curve_and_the_paper_points():
    from zfcore import plots

    rows = [SplitScores("x", n, [0, 1], [0.1 * n / 30, 0.2 * n / 30], [None] * 2, 0.0).as_dict() for n in (1, 15, 30)]
    figure = plots.learning_curve_figure({"frozen": rows, "scratch": rows[1:]}, paper={"pretrained": {"15": [83.8, 0.5]}})
    axis = figure.axes[0]
    assert len(axis.containers) == 3 and [t.get_text() for t in axis.get_legend().get_texts()][-1] == "paper: pretrained"
    np.testing.assert_allclose(np.asarray(axis.containers[0].lines[0].get_ydata(), float), [15 * n / 30 for n in (1, 15, 30)])
    probes = {"softmax": {layer: rows[i % 3] for i, layer in enumerate(("conv1", "conv5", "fc7"))}}
    figure = plots.layer_probe_figure(probes, paper={"svm": {"conv1": [44.8, 0.7], "fc6": [1.0, 0.1], "fc7": [85.5, 0.4]}})
    axis = figure.axes[0]
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["conv1", "conv5", "fc7"]
    np.testing.assert_allclose(np.asarray(axis.containers[1].lines[0].get_xdata(), float), [0, 2])  # fc6 is not among our layers
    import matplotlib.pyplot as plt
    plt.close("all")


# -- the layer chosen by cross-validation -----------------------------------------------------------


def test_the_layer_is_chosen_by_cross_validation_on_the_training_images_only():
    good, labels = _clusters(12, spread=1.0)
    noise = torch.randn(len(labels), 12, generator=torch.Generator().manual_seed(5))
    splits = caltech_splits(labels, 6, seeds=[0, 1])
    chosen = layer_by_cross_validation({"noise": noise, "good": good, "noise again": noise.clone()}, labels, splits,
                                       grid=(1e-2, 1.0), progress=False)
    assert chosen.layers == ["good", "good"] and chosen.mean > 0.9
    assert chosen.as_dict()["layers"] == ["good", "good"]
    alone = frozen_transfer(good, labels, splits, grid=(1e-2, 1.0), progress=False)
    assert chosen.accuracies == alone.accuracies and chosen.weight_decays == alone.weight_decays
    test = np.setdiff1d(np.arange(len(labels)), np.concatenate([split.train for split in splits]))
    scrambled = good.clone()
    scrambled[test] = torch.randn(len(test), 12, generator=torch.Generator().manual_seed(6)) * 50
    again = layer_by_cross_validation({"noise": noise, "good": scrambled}, labels, splits, grid=(1e-2, 1.0),
                                      progress=False)
    assert again.layers == chosen.layers and again.mean < chosen.mean - 0.2  # test images scored, never chosen on
    assert "layers" not in alone.as_dict()
    with pytest.raises(ValueError, match="give at least one layer"):
        layer_by_cross_validation({}, labels, splits)
    with pytest.raises(ValueError, match="one label per feature row"):
        layer_by_cross_validation({"good": good[:10]}, labels, splits)


# -- the C9 and C10 verdicts -------------------------------------------------------------------------


def _row(size, accuracies, seeds=None, decays=None):
    """A result row as SplitScores.as_dict writes it (accuracies in percent)."""
    seeds = list(range(len(accuracies))) if seeds is None else seeds
    return SplitScores("x", size, seeds, [a / 100 for a in accuracies], decays or [0.01] * len(seeds), 1.0).as_dict()


def test_paired_split_differences_pair_by_seed():
    first, second = _row(30, [50, 60, 70]), _row(30, [48.2, 57.9, 68.1])
    difference = paired_split_difference(first, second)
    assert difference.value == pytest.approx(0.058 / 3) and difference.n == 3 and difference.method == "t"
    reordered = _row(30, [68.1, 48.2, 57.9], seeds=[2, 0, 1])
    assert paired_split_difference(first, reordered).value == pytest.approx(difference.value)
    assert difference.low > 0  # the splits' shared spread (50-70 %) cancels
    with pytest.raises(ValueError, match="train_per_class=30 and 15"):
        paired_split_difference(first, _row(15, [1, 2, 3]))
    with pytest.raises(ValueError, match="share 1 split"):
        paired_split_difference(first, _row(30, [1, 2], seeds=[2, 7]))


def test_the_controls_difference_is_paired_per_size_and_skips_sizes_the_reference_lacks():
    reference = [_row(15, [50, 52, 54]), _row(30, [60, 61, 62])]
    control = [_row(30, [59, 60.5, 61]), _row(15, [51, 53, 55]), _row(5, [20, 21, 22])]
    difference = control_minus_reference(reference, control)
    assert list(difference) == [15, 30]  # 5 per class: no reference row
    assert difference[15]["points"] == pytest.approx(1.0) and difference[15]["splits"] == 3
    assert difference[30]["points"] == pytest.approx(-2.5 / 3, abs=0.01) and difference[30]["low"] < difference[30]["high"]
    with pytest.raises(ValueError, match="share 1 split"):
        control_minus_reference(reference, [_row(15, [1, 2], seeds=[2, 7])])


def _probes(means, jitter=(0.0, 0.4, -0.3, 0.2, -0.1), grid=(1e-4, 1e-3, 1e-2, 1e-1), decays=None):
    """A probes result: layer -> mean accuracy (%), the same split pattern added to every layer."""
    return {"config": {"weight_decay_grid": list(grid)},
            "probes": {"softmax": {layer: _row(30, [mean + j for j in jitter],
                                               decays=(decays or {}).get(layer)) for layer, mean in means.items()}}}


RISING = {"conv1": 40, "conv3": 55, "conv5": 60, "fc7": 62}
FALLING = {"conv1": 40, "conv3": 60, "conv5": 56, "fc7": 45}


def test_c10_agrees_when_the_top_layer_is_best_and_differs_when_it_falls_in_both_networks():
    assert c10_verdict(_probes(RISING)).outcome == "agree"
    within = c10_verdict(_probes({**RISING, "fc7": 59.6}))  # 0.4 points below conv5: within C10_TOLERANCE
    assert within.outcome == "agree" and within.estimate.value == pytest.approx(-0.004)
    falling = c10_verdict(_probes(FALLING), _probes(FALLING))
    assert falling.outcome == "differ" and falling.estimate.value == pytest.approx(-0.15)
    assert falling.control_estimate.value == pytest.approx(-0.15)
    assert falling.details["reference"]["best_lower"] == "conv3" and falling.details["reference"]["state"] == "fails"


def test_c10_the_control_decides_whether_label_smoothing_explains_a_fall():
    assert c10_verdict(_probes(FALLING), _probes(RISING)).outcome == "partly"
    missing = c10_verdict(_probes(FALLING))
    assert missing.outcome == "inconclusive" and "label-smoothing-0" in missing.settle
    noisy = _probes({**RISING, "fc7": 59.0}, jitter=(0.0, 3.0, -3.0, 2.5, -2.0))
    noisy["probes"]["softmax"]["fc7"] = _row(30, [59 + j for j in (2.5, -3.0, 3.0, -2.0, 0.0)])  # unpaired noise
    assert c10_verdict(_probes(FALLING), noisy).outcome == "inconclusive"
    edge = c10_verdict(_probes(FALLING, decays={"fc7": [1e-4, 1e-2, 1e-2, 1e-2, 1e-2]}), _probes(FALLING))
    assert edge.outcome == "inconclusive" and "grid" in edge.settle
    assert edge.details["reference"]["grid_edges"] == ["fc7"]


def test_c10_refuses_bad_probes():
    with pytest.raises(ValueError, match="loss='svm' is not valid"):
        c10_verdict(_probes(RISING), loss="svm")
    with pytest.raises(ValueError, match="two or more layers"):
        c10_verdict(_probes({"fc7": 50}))
    with pytest.raises(ValueError, match="probe both networks alike"):
        c10_verdict(_probes(FALLING), _probes({"conv1": 40, "fc7": 50}))


def _transfer(frozen, scratch, *, steps=3000):
    """A transfer result: size -> per-split accuracies (%) of the frozen fc7 softmax and of the from-scratch network."""
    return {"config": {"scratch_recipe": {"steps": steps}},
            "frozen": [_row(n, accuracies) for n, accuracies in frozen.items()],
            "scratch": [_row(n, accuracies) for n, accuracies in scratch.items()]}


SCRATCH = {15: [30.0, 31.0, 29.5, 30.5, 30.2], 30: [40.0, 41.0, 39.5, 40.5, 40.2]}


def _shifted(rows, by, jitter=(0.0, 0.4, -0.3, 0.2, -0.1)):
    """``rows`` raised by ``by`` points, plus a little per-split noise."""
    return {n: [a + by + j for a, j in zip(accuracies, jitter)] for n, accuracies in rows.items()}


def _shorter(change):
    """A shorter from-scratch recipe (half the steps, first split) that was ``change`` points below the long one."""
    return {1500: _transfer({}, {n: [accuracies[0] - change] for n, accuracies in SCRATCH.items()}, steps=1500)}


def test_c9_agrees_only_with_a_wide_margin_over_a_converged_baseline():
    wide = _transfer(_shifted(SCRATCH, 20), SCRATCH)
    verdict = c9_verdict(wide, shorter_scratch=_shorter(0.5))
    assert verdict.outcome == "agree" and verdict.estimate.value == pytest.approx(0.2004)
    assert verdict.control_estimate.value == pytest.approx(np.mean(SCRATCH[30]) / 100)
    unconverged = c9_verdict(wide, shorter_scratch=_shorter(5.0))
    assert unconverged.outcome == "inconclusive" and "doubling" in unconverged.settle
    assert c9_verdict(wide).outcome == "inconclusive"  # nothing shows the baseline converged
    narrow = c9_verdict(_transfer(_shifted(SCRATCH, 4), SCRATCH), shorter_scratch=_shorter(0.5))
    assert narrow.outcome == "partly"


def test_c9_the_layer_chosen_by_cross_validation_can_rescue_or_sink_the_claim():
    level = _transfer(_shifted(SCRATCH, 0.1), SCRATCH)  # frozen fc7 no better than from scratch
    cv_wide = [_row(n, accuracies) for n, accuracies in _shifted(SCRATCH, 15).items()]
    cv_narrow = [_row(n, accuracies) for n, accuracies in _shifted(SCRATCH, 3).items()]
    assert c9_verdict(level, shorter_scratch=_shorter(0.5), cv_layer=cv_wide).outcome == "partly"
    assert c9_verdict(level, shorter_scratch=_shorter(5.0), cv_layer=cv_wide).outcome == "inconclusive"
    sunk = c9_verdict(level, shorter_scratch=_shorter(5.0), cv_layer=cv_narrow)
    assert sunk.outcome == "differ"  # a longer-trained baseline would only narrow the margins
    assert sunk.details["cv_layer_minus_scratch"]["30"]["points"] == pytest.approx(3.04)
    missing = c9_verdict(level, shorter_scratch=_shorter(0.5))
    assert missing.outcome == "inconclusive" and "chosen by CV" in missing.settle


def test_c9_names_the_interval_that_spans_a_threshold():
    level = _transfer(_shifted(SCRATCH, 0.1), SCRATCH)  # frozen fc7 no better than from scratch
    cv_rows = _shifted(SCRATCH, 15)
    cv_rows[30] = [a + 10 + j for a, j in zip(SCRATCH[30], (-2.0, 1.5, -1.0, 2.0, 0.3))]  # 10.2 ± a wide spread
    spanning = c9_verdict(level, shorter_scratch=_shorter(0.5), cv_layer=[_row(n, a) for n, a in cv_rows.items()])
    assert spanning.outcome == "inconclusive"
    assert "the layer chosen by CV − scratch at 30 per class, +10.2 [" in spanning.reason and "across 10" in spanning.reason
    assert "at 15 per class" not in spanning.reason and spanning.settle.startswith("more splits at 30 per class")
    both = c9_verdict(_transfer({n: [a + 5 + j for a, j in zip(SCRATCH[n], (-6.0, 6.0, -5.0, 5.0, 0.0))]
                                 for n in SCRATCH}, SCRATCH), shorter_scratch=_shorter(0.5))
    assert both.outcome == "inconclusive" and "frozen fc7 − scratch at 30 per class, +5.0" in both.reason
    assert "across 0 and 10" in both.reason and both.settle.startswith("more splits at 15, 30 per class")


def test_c9_is_pending_without_from_scratch_rows_on_the_same_splits():
    assert c9_verdict(_transfer({30: [40.0, 41.0]}, {})).outcome == "pending"
    other_splits = _transfer({30: [40.0, 41.0]}, {})
    other_splits["scratch"] = [_row(30, [40.0, 41.0], seeds=[5, 6])]
    assert c9_verdict(other_splits).outcome == "pending"

"""Tests of the critics' measurements: zfcore.analysis.sanity (Adebayo et al. 2018), .switches (Mahendran & Vedaldi
2016), .attribution (Grad-CAM, integrated gradients), .maps, and of deconv.project_signal."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfcore.analysis.attribution import ATTRIBUTIONS, attribution, attribution_comparison
from zfcore.analysis.maps import MEASURES, map_similarity, sign_free
from zfcore.analysis.sanity import (FIT_PERMUTED_LABELS, KEPT_SIMILARITY, DataRandomization, RandomizationSimilarity,
                                    adebayo_verdict, data_randomization_similarity, kept_through,
                                    randomization_similarity, randomization_steps, randomized_copy)
from zfcore.analysis.switches import (MAHENDRAN_MARGIN, SIGNALS, NeuronVsSwitches, mahendran_verdict,
                                     neuron_vs_switches, switch_example, switches_only_signals)
from zfcore.deconv import project, project_signal
from zfcore.models import zfnet
from zfcore.plots import randomization_curves, randomization_examples, randomization_panel, style
from zfcore.plots.sanity import (SIGN_FREE_ROW, SWITCH_COMPARISONS, attribution_table, signed_distribution,
                                 similarity_table, switches_table)

matplotlib.use("Agg")

LABELS = [0, 1, 2, 3, 4, 5, 6, 7]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he").eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def cascading(model, images):
    return randomization_similarity(model, images, LABELS, order="cascading", examples=2)


def test_randomising_nothing_gives_similarity_one_and_the_steps_go_down(cascading):
    assert cascading.steps == ("original", "fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1")
    for method in ("deconvnet", "backprop", "guided"):
        for measure in MEASURES:
            values = cascading.similarity[method][measure]
            assert tuple(values.shape) == (8, 9)
            torch.testing.assert_close(values[:, 0], torch.ones(8, dtype=torch.float64), atol=1e-12, rtol=0)
            assert float(values[:, -1].mean()) < 0.9, (method, measure)
        assert tuple(cascading.examples[method].shape) == (2, 9, 3, 64, 64)


def test_the_callers_model_is_untouched(images):
    torch.manual_seed(0)
    network = zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he").train()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    randomization_similarity(network, images[:3], [0, 1, 2], methods=("backprop",), order="independent", examples=0)
    randomized_copy(network, ("conv1", "fc8"))
    assert network.training
    for name, value in network.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_cascading_order_is_cumulative_and_independent_is_one_layer(model):
    cascading = randomization_steps(model, "cascading")
    independent = randomization_steps(model, "independent")
    assert cascading[0] == independent[0] == ()
    assert cascading[3] == ("fc8", "fc7", "fc6") and independent[3] == ("fc6",)
    assert cascading[-1] == tuple(reversed(model.layer_names))
    two, one = randomized_copy(model, ("fc8", "fc7")), randomized_copy(model, ("fc8",))
    for name, value in model.state_dict().items():
        if name.endswith("bias"):  # zero before and after in an untrained network
            continue
        changed = name.split(".")[1] in ("fc8", "fc7")
        assert torch.equal(two.state_dict()[name], value) != changed, name
    assert torch.equal(two.classifier.fc8.weight, one.classifier.fc8.weight)  # the steps are nested
    assert not torch.equal(randomized_copy(model, ("fc8",), seed=1).classifier.fc8.weight, one.classifier.fc8.weight)


def test_last_cascading_step_is_the_fully_randomised_network(model, images, cascading):
    top = F.one_hot(torch.tensor(LABELS), 10).float()
    original = project_signal(model, images, "fc8", top, "backprop")
    random = randomized_copy(model, model.layer_names)
    expected = map_similarity(original, project_signal(random, images, "fc8", top, "backprop"))
    for measure in MEASURES:
        torch.testing.assert_close(cascading.similarity["backprop"][measure][:, -1], expected[measure])


def test_the_gradient_changes_when_the_top_layer_is_randomised(cascading, model, images):
    fc8 = cascading.steps.index("fc8")
    assert float(cascading.similarity["backprop"]["spearman_signed"][:, fc8].mean()) < 0.5
    independent = randomization_similarity(model, images, LABELS, methods=("backprop", "deconvnet"),
                                           order="independent", examples=0)
    assert independent.steps == cascading.steps
    for method in ("backprop", "deconvnet"):  # conv1 alone changes every map
        assert float(independent.similarity[method]["spearman_abs"][:, -1].max()) < 0.99
    shares = independent.still_similar()
    assert set(shares) == {"backprop", "deconvnet"}
    assert all(0.0 <= share <= 1.0 for row in shares.values() for share in row.values())


def test_map_similarity_measures():
    maps = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    same = map_similarity(maps, maps.clone())
    flipped = map_similarity(maps, -maps)
    zero = map_similarity(maps, torch.zeros_like(maps))
    for measure in MEASURES:
        torch.testing.assert_close(same[measure], torch.ones(3, dtype=torch.float64))
        assert bool(zero[measure].isnan().all())
    torch.testing.assert_close(flipped["spearman_signed"], -torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(flipped["spearman_abs"], torch.ones(3, dtype=torch.float64))
    other = map_similarity(maps, torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)))
    assert float(other["spearman_abs"].abs().max()) < 0.5


def test_project_signal_of_a_one_hot_is_project(model, images):
    activation = model.trace(images[:2], ["conv5"]).activations["conv5"]
    channel = 3
    position = [divmod(int(activation[b, channel].argmax()), activation.shape[-1]) for b in range(2)]
    top = torch.zeros_like(activation)
    for b, (row, col) in enumerate(position):
        top[b, channel, row, col] = activation[b, channel, row, col]
    for mode in ("deconvnet", "backprop", "guided"):
        torch.testing.assert_close(project_signal(model, images[:2], "conv5", top, mode),
                                   project(model, images[:2], "conv5", channel, mode=mode), atol=1e-6, rtol=1e-5)


def test_switches_only_projection_keeps_the_images_switches():
    """Without the contrast norm and with zero biases, 2x an image doubles every activation and keeps every
    switch: its switches-only projection is the same, its neuron's projection doubles; another image's differs."""
    torch.manual_seed(0)
    network = zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he", lrn=False).eval()
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    pair = torch.cat([image, 2 * image])
    ones = torch.ones(2, 32, 4, 4)
    switches_only = project_signal(network, pair, "conv5", ones)
    assert float(switches_only[0].abs().max()) > 0
    torch.testing.assert_close(switches_only[0], switches_only[1], atol=0, rtol=0)
    neuron = project(network, pair, "conv5", 0)
    torch.testing.assert_close(neuron[1], 2 * neuron[0], atol=1e-6, rtol=1e-5)
    other = project_signal(network, torch.randn(1, 3, 64, 64), "conv5", ones[:1])
    assert not torch.allclose(other[0], switches_only[0])

    result = neuron_vs_switches(network, pair, "conv5", units=3)
    assert result.partner.tolist() == [1, 0]
    for measure in MEASURES:  # the partner has the same switches: "other image" is the same image here
        torch.testing.assert_close(result.switches_other_image[measure], result.switches_constant[measure],
                                   equal_nan=True)
        live = ~result.different_images[measure].isnan()
        torch.testing.assert_close(result.different_images[measure][live],
                                   torch.ones(int(live.sum()), dtype=torch.float64), atol=1e-6, rtol=0)


def test_neuron_vs_switches_shapes(model, images):
    result = neuron_vs_switches(model, images, "fc6", units=4, mode="guided")
    assert result.channels.unique().numel() == 4
    assert sorted(result.partner.tolist()) == list(range(8)) and all(p != i for i, p in enumerate(result.partner))
    for measure in MEASURES:
        assert tuple(result.different_channels[measure].shape) == (8, 6)
        for name in ("different_images", "switches_constant", "switches_random", "switches_other_image"):
            assert tuple(getattr(result, name)[measure].shape) == (8, 4)
        assert tuple(result.constant_vs_random[measure].shape) == (8,)
        for name in ("switches_zero_mean", "zero_mean_other_image"):
            assert tuple(getattr(result, name)[measure].shape) == (8, 4)
    torch.testing.assert_close(result.per_image("different_images", "ssim"),
                               result.different_images["ssim"].nanmean(1))
    assert tuple(result.per_image("constant_vs_random").shape) == (8,)
    with pytest.raises(ValueError, match="comparison='units' is not valid"):
        result.per_image("units")
    summary = result.summary()
    assert set(summary) == set(result.COMPARISONS)
    assert all(-1.0 <= mean <= 1.0 for row in summary.values() for mean, _, _ in row.values())


def test_switches_only_signals_are_seeded_and_of_their_kind():
    signals = switches_only_signals((3, 32, 4, 4), seed=5)
    assert tuple(signals) == SIGNALS == ("ones", "uniform", "zero-mean")
    assert all(tuple(signal.shape) == (3, 32, 4, 4) and signal.dtype == torch.float32 for signal in signals.values())
    assert bool((signals["ones"] == 1).all())
    assert 0 <= float(signals["uniform"].min()) and float(signals["uniform"].max()) < 1
    assert float(signals["zero-mean"].min()) < 0 < float(signals["zero-mean"].max())
    assert abs(float(signals["zero-mean"].mean())) < 0.1  # 1536 standard normals
    again, other = switches_only_signals((3, 32, 4, 4), seed=5), switches_only_signals((3, 32, 4, 4), seed=6)
    for name in SIGNALS:
        torch.testing.assert_close(again[name], signals[name], atol=0, rtol=0)
    assert not torch.equal(other["uniform"], signals["uniform"])
    assert switches_only_signals((1, 4), dtype=torch.float64)["zero-mean"].dtype == torch.float64
    with pytest.raises(ValueError, match="seed=-1 is not valid"):
        switches_only_signals((1, 4), seed=-1)


def test_switch_example_is_the_units_then_the_switches_only_maps(model, images):
    one, channels = images[:1], torch.tensor([3, 0, 7])
    maps = switch_example(model, one, "conv5", channels, seed=2)
    assert list(maps) == ["unit 3", "unit 0", "unit 7", *SIGNALS]
    for c in channels.tolist():
        torch.testing.assert_close(maps[f"unit {c}"], project(model, one, "conv5", c)[0], atol=1e-6, rtol=1e-5)
    signals = switches_only_signals((1, 32, 4, 4), seed=2)
    for name in SIGNALS:
        torch.testing.assert_close(maps[name], project_signal(model, one, "conv5", signals[name])[0], atol=0, rtol=0)
    assert not torch.allclose(maps["zero-mean"], maps["ones"])
    guided = switch_example(model, one, "fc6", [1, 2], mode="guided")
    torch.testing.assert_close(guided["unit 2"], project(model, one, "fc6", 2, mode="guided")[0], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="2 images: switch_example takes one image"):
        switch_example(model, images[:2], "conv5", channels)
    with pytest.raises(ValueError, match="mode='bad' is not valid"):
        switch_example(model, one, "conv5", channels, mode="bad")


@pytest.mark.parametrize("arguments, message", [
    (dict(order="bottom-up"), "order='bottom-up' is not valid; valid orders: ('cascading', 'independent')"),
    (dict(methods=("deconv",)), "methods=('deconv',) is not valid"),
    (dict(methods=()), "methods=() is not valid"),
    (dict(labels=[0, 1]), "give 3 integer classes"),
    (dict(labels=[0, 1, 10]), "valid classes: 0 .. 9"),
    (dict(init="xavier"), "init='xavier' is not valid; valid inits: ('paper', 'he', 'torch')"),
    (dict(examples=-1), "examples=-1 is not valid"),
    (dict(batch_size=0), "batch_size=0 is not valid"),
    (dict(images="one"), "need at least 2"),
])
def test_bad_randomization_arguments(model, images, arguments, message):
    call = dict(images=images[:3], labels=[0, 1, 2])
    if arguments.get("images") == "one":
        arguments = dict(images=images[:1], labels=[0])
    call.update(arguments)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        randomization_similarity(model, **call)


def test_bad_neuron_and_copy_arguments(model, images):
    with pytest.raises(ValueError, match="layer='conv9'"):
        randomized_copy(model, ("conv9",))
    with pytest.raises(ValueError, match="units=1 is not valid"):
        neuron_vs_switches(model, images[:2], "conv5", units=1)
    with pytest.raises(ValueError, match=r"units=33 is not valid for 'conv5': valid 2 \.\. 32"):
        neuron_vs_switches(model, images[:2], "conv5", units=33)
    with pytest.raises(ValueError, match="mode='bad' is not valid"):
        neuron_vs_switches(model, images[:2], "conv5", mode="bad")
    with pytest.raises(ValueError, match=r"signal has shape \(2, 32\)"):
        project_signal(model, images[:2], "conv5", torch.ones(2, 32))


def test_plots(cascading):
    figure = randomization_curves(cascading)
    assert len(figure.axes) == len(MEASURES)
    assert len(figure.axes[0].lines) == 2 * len(cascading.methods)  # a mean line and a baseline per method
    panel = randomization_panel(cascading, np.zeros((64, 64, 3), dtype=np.uint8), index=1)
    assert len(panel.axes) == len(cascading.methods) * (1 + len(cascading.steps))
    with pytest.raises(ValueError, match="index=2 is not valid"):
        randomization_panel(cascading, np.zeros((64, 64, 3), dtype=np.uint8), index=2)
    pixels = np.zeros((8, 64, 64, 3), dtype=np.uint8)
    examples = randomization_examples(cascading, pixels, "guided", "conv5")
    rho = cascading.similarity["guided"]["spearman_abs"][:2, cascading.steps.index("conv5")]
    assert len(examples.axes) == 2 * 5 and examples.axes[0].get_ylabel() == f"Spearman |.| {float(rho[0]):.2f}"
    with pytest.raises(ValueError, match=r"randomised='pool5' is not valid; valid steps: \('original', 'fc8'"):
        randomization_examples(cascading, pixels, "guided", "pool5")
    with pytest.raises(ValueError, match=r"method='gradcam' is not valid"):
        randomization_examples(cascading, pixels, "gradcam")
    with pytest.raises(ValueError, match=r"1 images in pixels for 2 kept examples"):
        randomization_examples(cascading, pixels[:1])


STEPS = ("original", "fc8", "fc7", "fc6", "conv5")


def synthetic_randomization(means: dict[str, float], *, spread: float = 0.01, count: int = 40,
                            order: str = "cascading") -> RandomizationSimilarity:
    """A result whose maps keep ``means[method]`` (± ``spread``, per image) after every step; baseline 0.2."""
    generator = torch.Generator().manual_seed(5)
    similarity = {}
    for method, mean in means.items():
        values = mean + spread * torch.randn(count, len(STEPS), generator=generator, dtype=torch.float64)
        values[:, 0] = 1.0
        similarity[method] = {measure: values.clone() for measure in MEASURES}
    baseline = {method: {measure: torch.full((count,), 0.2, dtype=torch.float64) for measure in MEASURES}
                for method in means}
    randomized = ((),) + tuple(STEPS[1 : k + 1] for k in range(1, len(STEPS)))
    return RandomizationSimilarity(order, STEPS, randomized, tuple(means), torch.arange(count), similarity, baseline,
                                   {})


def synthetic_data_randomization(means: dict[str, float], *, count: int = 40) -> DataRandomization:
    """A data-randomisation result whose maps keep ``means[method]`` (± 0.01 per image); baseline 0.2."""
    generator = torch.Generator().manual_seed(7)
    similarity = {method: {measure: mean + 0.01 * torch.randn(count, generator=generator, dtype=torch.float64)
                           for measure in MEASURES} for method, mean in means.items()}
    baseline = {method: {measure: torch.full((count,), 0.2, dtype=torch.float64) for measure in MEASURES}
                for method in means}
    return DataRandomization(tuple(means), torch.arange(count), similarity, baseline)


def synthetic_switches(own: float, unit: float, other: float, *, mode: str = "deconvnet", layer: str = "conv5",
                       count: int = 40, units: int = 4) -> NeuronVsSwitches:
    """A result in which a unit's projection is ``own``-like its image's switches-only maps, ``unit``-like itself on
    another image and ``other``-like another image's switches-only maps (± 0.02 per pair)."""
    generator = torch.Generator().manual_seed(6)

    def filled(mean: float) -> dict[str, torch.Tensor]:
        values = mean + 0.02 * torch.randn(count, units, generator=generator, dtype=torch.float64)
        return {measure: values.clone() for measure in MEASURES}

    return NeuronVsSwitches(layer, mode, torch.arange(units), torch.arange(count).roll(1),
                            different_channels=filled(0.5), different_images=filled(unit),
                            switches_constant=filled(own),
                            switches_random=filled(own), switches_other_image=filled(other),
                            constant_vs_random={measure: torch.ones(count, dtype=torch.float64)
                                                for measure in MEASURES},
                            switches_zero_mean=filled(own), zero_mean_other_image=filled(other))


def test_sign_free_counts_a_map_kept_up_to_its_sign():
    kept = torch.tensor([0.8, -0.8] * 20, dtype=torch.float64)
    lost = torch.tensor([0.02, -0.02] * 20, dtype=torch.float64)
    baseline = torch.tensor([0.01, -0.01] * 20, dtype=torch.float64)
    flipped, gone = sign_free(kept, baseline), sign_free(lost, baseline)
    assert abs(flipped.mean) < 1e-12 and abs(gone.mean) < 1e-12  # the signed mean cannot tell them apart
    assert flipped.mean_abs.low > 0.7 and flipped.share_above == 1.0 and flipped.baseline_abs.excludes(0.8)
    assert gone.mean_abs.high < 0.1 and gone.share_above == 0.0
    assert flipped.quartiles[0] < 0 < flipped.quartiles[2]
    with_nan = sign_free(torch.cat([kept, torch.tensor([float("nan")], dtype=torch.float64)]))
    assert with_nan.mean_abs.n == 40 and with_nan.baseline_abs is None
    assert "100 % > 0.3" in flipped.format()
    with pytest.raises(ValueError, match=r"threshold=1\.5 is not valid; give a finite number in \(0, 1\)"):
        sign_free(kept, threshold=1.5)
    with pytest.raises(ValueError, match="values has 1 values that are not NaN; need at least 2"):
        sign_free(torch.tensor([0.5, float("nan")]))


def test_kept_through_stops_at_the_first_step_below_the_threshold():
    result = synthetic_randomization({"guided": 0.95, "backprop": 0.5})
    assert kept_through(result, "guided") == "conv5"
    assert kept_through(result, "backprop") == "original"
    result.similarity["guided"]["spearman_abs"][:, 3] = 0.5  # fc6 drops: conv5's 0.95 after it does not count
    assert kept_through(result, "guided") == "fc7"
    assert kept_through(result, "guided", threshold=0.4) == "conv5"
    with pytest.raises(ValueError, match="method='deconvnet' is not valid"):
        kept_through(result, "deconvnet")
    with pytest.raises(ValueError, match="threshold=0 is not valid"):
        kept_through(result, "guided", threshold=0)


@pytest.mark.parametrize("guided, gradient, outcome", [
    (0.97, 0.50, "agree"),       # Adebayo et al.: guided survives, the gradient changes
    (0.97, 0.96, "partly"),      # both survive: the gradient fails too
    (0.50, 0.50, "partly"),      # both change: guided passes too
    (0.50, 0.97, "differ"),
    (KEPT_SIMILARITY, 0.50, "inconclusive"),  # guided's interval straddles the threshold
])
def test_adebayo_verdict_follows_its_rule(guided, gradient, outcome):
    verdict = adebayo_verdict(synthetic_randomization({"deconvnet": 0.7, "backprop": gradient, "guided": guided}))
    assert verdict.claim == "Adebayo" and verdict.outcome == outcome
    assert abs(verdict.estimate.value - guided) < 0.01 and abs(verdict.control_estimate.value - gradient) < 0.01
    assert "KEPT_SIMILARITY = 0.9" in verdict.rule and "pending" in verdict.details["data_randomisation"]
    assert "did not test" in verdict.reason and verdict.details["methods"]["deconvnet"]["fate"] == "passes"
    assert bool(verdict.settle) == (outcome == "inconclusive")


@pytest.mark.parametrize("model_test, data_test, outcome", [
    ((0.97, 0.50), (0.97, 0.50), "agree"),          # both tests as Adebayo et al. found
    ((0.50, 0.97), (0.50, 0.97), "differ"),
    ((0.97, 0.50), (0.50, 0.50), "partly"),         # model test agrees, data test partly
    ((0.97, 0.50), (0.50, 0.97), "partly"),         # one agrees, one differs
    ((0.97, 0.50), (KEPT_SIMILARITY, 0.50), "inconclusive"),  # the data test cannot tell
])
def test_adebayo_verdict_with_the_data_test_follows_its_rule(model_test, data_test, outcome):
    (guided, gradient), (data_guided, data_gradient) = model_test, data_test
    cascading = synthetic_randomization({"deconvnet": 0.7, "backprop": gradient, "guided": guided})
    data = synthetic_data_randomization({"backprop": data_gradient, "guided": data_guided})
    verdict = adebayo_verdict(cascading, data, random_labels_fit=FIT_PERMUTED_LABELS)
    assert verdict.outcome == outcome
    assert abs(verdict.estimate.value - guided) < 0.01  # the headline stays the model test's
    recorded = verdict.details["data_randomisation"]
    assert abs(recorded["methods"]["guided"]["value"] - data_guided) < 0.01
    assert recorded["methods"]["guided"]["baseline"] == 0.2 and recorded["outcome"] in ("agree", "partly", "differ",
                                                                                        "inconclusive")
    assert "permuted labels" in verdict.reason and "pending" not in verdict.reason and "pending" not in verdict.measure
    assert verdict.details["model_randomisation"] == adebayo_verdict(cascading).outcome
    with pytest.raises(ValueError, match="data holds other images or labels than cascading"):
        adebayo_verdict(cascading, synthetic_data_randomization({"backprop": 0.5, "guided": 0.9}, count=39),
                        random_labels_fit=0.9)
    with pytest.raises(ValueError, match="data has methods \\('guided',\\); adebayo_verdict needs"):
        adebayo_verdict(cascading, synthetic_data_randomization({"guided": 0.9}), random_labels_fit=0.9)


@pytest.mark.parametrize("data_test", [(0.97, 0.50), (0.50, 0.97), (KEPT_SIMILARITY, 0.50)])
def test_the_data_test_needs_a_network_that_learned_the_permuted_labels(data_test):
    cascading = synthetic_randomization({"deconvnet": 0.7, "backprop": 0.50, "guided": 0.97})
    data = synthetic_data_randomization({"backprop": data_test[1], "guided": data_test[0]})
    unlearned = adebayo_verdict(cascading, data, random_labels_fit=0.004)  # the run stayed at chance (1/200)
    assert unlearned.outcome == adebayo_verdict(cascading).outcome == "agree"  # the model test alone decides
    recorded = unlearned.details["data_randomisation"]
    assert recorded["outcome"] == "not testable here" and recorded["random_labels_fit"] == 0.004
    assert abs(recorded["methods"]["guided"]["value"] - data_test[0]) < 0.01 and recorded["settle"]
    assert "not testable here" in unlearned.reason and "0.4 %" in unlearned.reason
    assert "FIT_PERMUTED_LABELS = 0.5" in unlearned.rule
    kept = data.similarity["guided"]["spearman_abs"].clone()
    data.similarity["guided"]["spearman_abs"][:] = float("nan")  # a dead network: every map constant
    dead = adebayo_verdict(cascading, data, random_labels_fit=0.004).details["data_randomisation"]["methods"]
    assert dead["guided"]["value"] is None and dead["guided"]["n"] == 0 and dead["backprop"]["n"] == 40
    data.similarity["guided"]["spearman_abs"] = kept
    learned = adebayo_verdict(cascading, data, random_labels_fit=0.97)
    assert learned.details["data_randomisation"]["outcome"] != "not testable here" and "settle" not in \
        learned.details["data_randomisation"]
    assert learned.outcome == {(0.97, 0.50): "agree", (0.50, 0.97): "partly",
                               (KEPT_SIMILARITY, 0.50): "inconclusive"}[data_test]
    assert adebayo_verdict(cascading, data, random_labels_fit=0.3, fit_needed=0.25).outcome == learned.outcome
    with pytest.raises(ValueError, match="random_labels_fit=None is not valid with data"):
        adebayo_verdict(cascading, data)
    with pytest.raises(ValueError, match="random_labels_fit=1.5 is not valid"):
        adebayo_verdict(cascading, data, random_labels_fit=1.5)
    with pytest.raises(ValueError, match="fit_needed=0 is not valid"):
        adebayo_verdict(cascading, data, random_labels_fit=0.9, fit_needed=0)


def test_data_randomization_summary_reports_the_non_constant_maps_beside_the_baseline() -> None:
    data = synthetic_data_randomization({"guided": 0.9, "backprop": 0.5}, count=10)
    data.similarity["backprop"]["spearman_abs"][:4] = float("nan")  # constant maps
    data.similarity["guided"]["spearman_abs"][:] = float("nan")
    lines = data.summary().splitlines()
    expected_backprop = data.similarity["backprop"]["spearman_abs"][4:].mean().item()
    assert lines == [
        "guided: mean Spearman (absolute maps) with the trained network's map n/a (n = 0); two different images' maps 0.20",
        f"backprop: mean Spearman (absolute maps) with the trained network's map {expected_backprop:.2f} (n = 6); "
        "two different images' maps 0.20"]


def test_data_randomization_compares_the_same_class_in_both_networks(model, images):
    same = data_randomization_similarity(model, model, images, LABELS, methods=("backprop", "guided"))
    assert same.methods == ("backprop", "guided") and same.labels.tolist() == LABELS
    for method in same.methods:
        for measure in MEASURES:
            assert tuple(same.similarity[method][measure].shape) == (8,)
        live = ~same.similarity[method]["spearman_abs"].isnan()
        torch.testing.assert_close(same.similarity[method]["spearman_abs"][live],
                                   torch.ones(int(live.sum()), dtype=torch.float64), atol=1e-9, rtol=0)
    torch.manual_seed(3)
    other = zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he").eval()
    changed = data_randomization_similarity(model, other, images, LABELS, methods=("backprop",))
    assert float(changed.similarity["backprop"]["spearman_abs"].nanmean()) < 0.9
    torch.testing.assert_close(changed.baseline["backprop"]["ssim"], same.baseline["backprop"]["ssim"])
    wider_classes = zfnet(20, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he").eval()
    with pytest.raises(ValueError, match="random_labels_model has layers, classes and input size"):
        data_randomization_similarity(model, wider_classes, images, LABELS)
    with pytest.raises(ValueError, match="need at least 2"):
        data_randomization_similarity(model, model, images[:1], LABELS[:1])


def test_adebayo_verdict_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="give a cascading randomization_similarity result"):
        adebayo_verdict(synthetic_randomization({"backprop": 0.5, "guided": 0.9}, order="independent"))
    with pytest.raises(ValueError, match="adebayo_verdict needs 'guided' and 'backprop'"):
        adebayo_verdict(synthetic_randomization({"deconvnet": 0.5, "guided": 0.9}))
    with pytest.raises(ValueError, match="step='original' is not valid; valid steps"):
        adebayo_verdict(synthetic_randomization({"backprop": 0.5, "guided": 0.9}), step="original")


@pytest.mark.parametrize("own, unit, other, outcome", [
    (0.50, 0.20, 0.20, "agree"),         # the image's way down shares much more than the unit does
    (0.25, 0.20, 0.20, "partly"),        # more, but by less than the margin
    (0.20, 0.50, 0.20, "differ"),        # the unit decides
    (0.50, 0.20, 0.50, "inconclusive"),  # another image's way down does as well: not this image's switches
    (0.20, 0.20, 0.20, "inconclusive"),  # no difference
])
def test_mahendran_verdict_follows_its_rule(own, unit, other, outcome):
    calibration = [synthetic_switches(0.4, 0.2, 0.2, mode="backprop"), synthetic_switches(0.2, 0.2, 0.2, mode="guided")]
    verdict = mahendran_verdict(synthetic_switches(own, unit, other), calibration)
    assert verdict.claim == "Mahendran" and verdict.outcome == outcome
    assert abs(verdict.estimate.value - (own - unit)) < 0.02
    assert abs(verdict.control_estimate.value - (other - unit)) < 0.02
    assert f"MAHENDRAN_MARGIN = {MAHENDRAN_MARGIN:g}" in verdict.rule
    assert set(verdict.details["modes"]) == {"deconvnet", "backprop", "guided"}
    assert "above the margin also for backprop" in verdict.reason


def test_mahendran_verdict_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="deconvnet='guided' is not valid; give a neuron_vs_switches result"):
        mahendran_verdict(synthetic_switches(0.5, 0.2, 0.2, mode="guided"))
    with pytest.raises(ValueError, match=r"calibration layers \['fc6'\] are not valid"):
        mahendran_verdict(synthetic_switches(0.5, 0.2, 0.2), [synthetic_switches(0.5, 0.2, 0.2, layer="fc6")])
    with pytest.raises(ValueError, match="margin=0 is not valid"):
        mahendran_verdict(synthetic_switches(0.5, 0.2, 0.2), margin=0)
    silent = synthetic_switches(0.5, 0.2, 0.2, count=3)
    for values in silent.switches_zero_mean.values():
        values[:2] = float("nan")  # two images whose units never fired
    with pytest.raises(ValueError, match="1 images of the deconvnet result have every comparison; need 2"):
        mahendran_verdict(silent)


def test_attributions_match_captum(model, images):
    captum = pytest.importorskip("captum.attr")
    classes = torch.tensor(LABELS)
    cam = captum.LayerGradCam(model, model.activation_module("conv5")).attribute(images, target=classes)
    cam = captum.LayerAttribution.interpolate(cam, (64, 64), "bilinear").expand(-1, 3, -1, -1).detach()
    torch.testing.assert_close(attribution(model, images, classes, "grad_cam"), cam)
    integrated = captum.IntegratedGradients(model).attribute(images, target=classes, n_steps=8, method="riemann_middle")
    torch.testing.assert_close(attribution(model, images, classes, "integrated_gradients", steps=8), integrated,
                               atol=1e-6, rtol=1e-4)
    top = F.one_hot(classes, 10).float()
    torch.testing.assert_close(attribution(model, images, classes, "backprop"),
                               project_signal(model, images, "fc8", top, "backprop"))


def test_attribution_comparison(images):
    torch.manual_seed(0)
    network = zfnet(10, 64, widths=(12, 32, 48, 48, 32), fc=64, init="he").train()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    result = attribution_comparison(network, images[:4], [0, 1, 2, 3], steps=64)
    assert network.training and all(torch.equal(v, before[k]) for k, v in network.state_dict().items())
    assert result.methods == ATTRIBUTIONS and bool((result.runner_up != result.labels).all())
    for method in ATTRIBUTIONS:
        for name in ("other_class", "randomised", "baseline"):
            assert tuple(getattr(result, name)[method]["spearman_abs"].shape) == (4,)
    torch.testing.assert_close(result.randomised["deconvnet"]["spearman_abs"],  # the classifier re-initialised
                               map_similarity(attribution(network, images[:4], [0, 1, 2, 3], "deconvnet"),
                                              attribution(randomized_copy(network, ("fc8", "fc7", "fc6")), images[:4],
                                                          [0, 1, 2, 3], "deconvnet"))["spearman_abs"])
    assert float(result.completeness.max()) < 0.05  # integrated gradients add up to the logit's change
    assert attribution_comparison(network, images[:2], [0, 1], methods=("guided",)).completeness is None
    with pytest.raises(ValueError, match="methods=\\('gradcam',\\) is not valid"):
        attribution_comparison(network, images[:2], [0, 1], methods=("gradcam",))
    with pytest.raises(ValueError, match="method='lrp' is not valid; valid methods"):
        attribution(network, images[:2], [0, 1], "lrp")
    with pytest.raises(ValueError, match="steps=0 is not valid"):
        attribution(network, images[:2], [0, 1], "integrated_gradients", steps=0)


def test_chapter_tables_and_signed_distribution(cascading, model, images):
    table = similarity_table(cascading, {"fc8": "fc8", "conv1": "all"})
    assert table.count(SIGN_FREE_ROW) == len(cascading.methods) and "% > 0.3" in table
    with pytest.raises(ValueError, match=r"steps \['conv9'\] are not valid"):
        similarity_table(cascading, {"conv9": "x"})
    with plt.rc_context():
        style.use_book_style()
        figure = signed_distribution(cascading, "backprop")
        assert len(figure.axes) == 2
        png, metadata = style.book_png(figure)
    shown = min(metadata["width"], style.COLUMN_PX)
    assert metadata["width"] <= style.COLUMN_PX  # fits the column, with text of at least 9 CSS px
    assert style.png_text_px(png) * shown / int.from_bytes(png[16:20], "big") >= 9
    with pytest.raises(ValueError, match="method='lrp' is not valid"):
        signed_distribution(cascading, "lrp")
    switches = switches_table({"conv5": neuron_vs_switches(model, images, "conv5", units=3)})
    assert all(title in switches for title in SWITCH_COMPARISONS.values())
    comparison = attribution_comparison(model, images[:3], [0, 1, 2], methods=("backprop", "grad_cam"), steps=4)
    assert attribution_table(comparison).count("\n") == 3

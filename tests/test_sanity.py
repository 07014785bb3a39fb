"""Tests of zfcore.analysis.sanity (Adebayo et al. 2018; Mahendran & Vedaldi 2016) and of deconv.project_signal."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfcore.analysis.sanity import (MEASURES, map_similarity, neuron_vs_switches, randomization_similarity,
                                    randomization_steps, randomized_copy)
from zfcore.deconv import project, project_signal
from zfcore.models import zfnet
from zfcore.plots import randomization_curves, randomization_panel

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
    summary = result.summary()
    assert set(summary) == set(result.COMPARISONS)
    assert all(-1.0 <= mean <= 1.0 for row in summary.values() for mean, _, _ in row.values())


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

"""C1 in numbers: top-9 purity, chance, class selectivity (η²) against brute force, and the verdict's rule."""

import numpy as np
import pytest
import torch

from zfcore.analysis.hierarchy import (DEPTH_RANK_MIN, c1_verdict, chance_purity, class_selectivity, hierarchy_table,
                                       layer_estimates, top9_purity)
from zfcore.analysis.top9 import TopActivations
from zfcore.data.loader import normalize
from zfcore.models import CONV_LAYERS, zfnet
from zfcore.verdicts import Verdict


def _top(image_index: list[list[int]], values: list[list[float]] | None = None) -> TopActivations:
    index = torch.tensor(image_index)
    values = torch.ones(index.shape) if values is None else torch.tensor(values)
    return TopActivations("conv1", values, index, torch.zeros(*index.shape, 2, dtype=torch.long))


def test_top9_purity_is_the_commonest_class_share_and_skips_units_with_silent_images():
    labels = np.array([0, 0, 0, 1, 1, 2])
    top = _top([[0, 1, 2], [0, 3, 5], [3, 4, 0], [0, 1, 2]], [[3, 2, 1], [3, 2, 1], [3, 2, 1], [3, 2, 0]])
    torch.testing.assert_close(top9_purity(top, labels), torch.tensor([1.0, 1 / 3, 2 / 3]))


def test_top9_purity_rejects_labels_that_do_not_cover_the_images():
    with pytest.raises(ValueError, match="labels has 2 entries.*index 5"):
        top9_purity(_top([[0, 5]]), [0, 1])
    with pytest.raises(ValueError, match="labels has dtype float64"):
        top9_purity(_top([[0, 1]]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels holds -1"):
        top9_purity(_top([[0, 1]]), [0, -1])


def test_chance_purity_follows_the_class_sizes():
    assert chance_purity(np.arange(100), k=9) == pytest.approx(1 / 9)  # every image its own class
    assert chance_purity(np.zeros(30, dtype=int), k=9) == 1.0
    many, few = chance_purity(np.repeat(np.arange(200), 50), draws=4000), chance_purity(np.repeat(np.arange(10), 20),
                                                                                     draws=4000)
    assert 1 / 9 < many < few < 1  # fewer, larger classes: random sets share a class more often
    with pytest.raises(ValueError, match="k=12 is more than the 10 labels"):
        chance_purity(np.arange(10), k=12)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return zfnet(3, 64, widths=(6, 8, 8, 8, 8), fc=8, init="he").eval()


def test_class_selectivity_equals_brute_force_eta_squared(network, tmp_path):
    generator = np.random.default_rng(0)
    pixels = generator.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 10)
    result = class_selectivity(network, pixels, labels, layers=("conv1", "conv4"), batch_size=7, cache_dir=tmp_path)
    with torch.no_grad():
        trace = network.trace(normalize(torch.from_numpy(pixels)).contiguous(), layers=("conv1", "conv4"))
    for layer in ("conv1", "conv4"):
        values = trace.activations[layer].flatten(2).max(2).values.double().numpy()  # [N, C]
        total = ((values - values.mean(0)) ** 2).sum(0)
        between = sum(10 * (values[labels == c].mean(0) - values.mean(0)) ** 2 for c in range(3))
        varies = total > 0
        torch.testing.assert_close(result[layer], torch.from_numpy(between[varies] / total[varies]).float(),
                                   rtol=1e-4, atol=1e-5)


def test_class_selectivity_is_high_when_the_class_sets_the_image_and_low_when_it_does_not(network, tmp_path):
    generator = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 12)
    noise = generator.integers(0, 40, (36, 64, 64, 3))
    by_class = (noise + 100 * labels[:, None, None, None]).astype(np.uint8)  # brightness set by the class
    unrelated = generator.permutation(labels)
    tied = class_selectivity(network, by_class, labels, layers=("conv1",), cache_dir=tmp_path)["conv1"]
    untied = class_selectivity(network, by_class, unrelated, layers=("conv1",), cache_dir=tmp_path)["conv1"]
    assert tied.mean() > 0.8 > 0.3 > untied.mean()


def test_class_selectivity_rejects_bad_inputs(network, tmp_path):
    pixels = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="labels has 3 entries for 4 images"):
        class_selectivity(network, pixels, [0, 1, 2], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="layer='fc6'"):
        class_selectivity(network, pixels, [0, 1, 2, 0], layers=("fc6",), cache_dir=tmp_path)


def _per_unit(means: list[float], spread: float = 0.05, units: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {layer: mean + spread * torch.randn(units, generator=generator) for layer, mean in zip(CONV_LAYERS, means)}


RISING, FLAT = [0.2, 0.3, 0.4, 0.5, 0.6], [0.2, 0.2, 0.2, 0.2, 0.2]


def test_c1_agrees_when_both_measures_rise_beyond_the_random_network():
    verdict = c1_verdict(_per_unit(RISING), _per_unit(FLAT, seed=1), _per_unit(RISING, seed=2),
                         _per_unit(FLAT, seed=3), chance=0.12)
    assert verdict.outcome == "agree"
    assert verdict.estimate.value == pytest.approx(0.6, abs=0.03) and verdict.control_estimate.value < 0.25
    assert verdict.details["depth_rank"] >= DEPTH_RANK_MIN


def test_c1_is_partly_when_only_purity_rises_and_differs_when_the_random_network_matches():
    rising, flat = _per_unit(RISING), _per_unit(FLAT, seed=1)
    assert c1_verdict(rising, flat, flat, flat, chance=0.12).outcome == "partly"
    same = c1_verdict(rising, rising, flat, flat, chance=0.12)  # the random network rises alike: the control explains
    assert same.outcome == "differ" and not same.details["beats_random"]["conv5"]
    shuffled = [RISING[i] for i in (4, 0, 3, 1, 2)]  # conv5 > conv1 but out of order with depth
    assert c1_verdict(_per_unit(shuffled), flat, flat, flat, chance=0.12).outcome == "differ"


def test_c1_rejects_missing_layers_and_bad_chance():
    rising = _per_unit(RISING)
    partial = {layer: rising[layer] for layer in ("conv1", "conv2")}
    with pytest.raises(ValueError, match=r"purity_random lacks \['conv3', 'conv4', 'conv5'\]"):
        c1_verdict(rising, partial, rising, rising, chance=0.1)
    with pytest.raises(ValueError, match="chance=1.5 is not valid"):
        c1_verdict(rising, rising, rising, rising, chance=1.5)
    with pytest.raises(ValueError, match="conv2: values has 1 values"):
        layer_estimates({"conv2": torch.tensor([0.5])})


def test_hierarchy_table_lists_every_layer_and_refuses_other_verdicts():
    rising = _per_unit(RISING)
    verdict = c1_verdict(rising, rising, rising, rising, chance=0.12)
    table = hierarchy_table(verdict)
    assert all(f"| {layer} |" in table for layer in CONV_LAYERS) and "Chance purity (9 random images): 12.0 %" in table
    other = Verdict("C2", "m", None, "c", None, "r", "partly", "why")
    with pytest.raises(ValueError, match="a C2 verdict is not valid here"):
        hierarchy_table(other)

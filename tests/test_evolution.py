"""Fig. 4 evolution: correlations reach 1 at the final epoch and fall with the distance from it; when each layer settles."""

import numpy as np
import pytest
import torch

from zfcore.analysis.evolution import (FEW_EPOCHS, Evolution, c2_verdict, conv1_filter_correlation, convergence_table,
                                      evolution, first_epoch_reaching, settling_epoch)
from zfcore.models import zfnet


def test_evolution_measures_distance_to_the_final_filters(tmp_path):
    torch.manual_seed(0)
    model = zfnet(4, 64, widths=(6, 8, 8, 8, 8), fc=8, init="he").eval()
    final = {k: v.clone() for k, v in model.features.state_dict().items()}
    snapshots = {
        epoch: {k: v + noise * torch.randn_like(v) * v.std() for k, v in final.items()}
        for epoch, noise in ((1, 3.0), (2, 1.0), (4, 0.3))
    }
    snapshots[8] = final
    pixels = np.random.default_rng(0).integers(0, 256, (24, 64, 64, 3), dtype=np.uint8)
    result = evolution(model, snapshots, pixels, maps_per_layer=3, batch_size=10, progress=False)
    assert result.epochs == [1, 2, 4, 8]
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        filters = result.filter_correlation[layer]
        assert torch.all(filters[1:] > filters[:-1]), filters  # closer to the end, closer to the final
        torch.testing.assert_close(filters[-1], torch.tensor(1.0))
        torch.testing.assert_close(result.projection_correlation[layer][-1], torch.tensor(1.0), atol=1e-3, rtol=0)
        assert result.projections[layer].shape[:2] == (4, len(result.channels[layer]))
    assert result.conv1_filters.shape == (4, 6, 3, 7, 7)
    torch.testing.assert_close(conv1_filter_correlation(result).mean(1), result.filter_correlation["conv1"], atol=2e-3,
                               rtol=0)  # the per-filter values behind the mean (float16 filters)
    result.save(tmp_path / "fig4.pt")
    assert Evolution.load(tmp_path / "fig4.pt").epochs == [1, 2, 4, 8]
    assert torch.equal(model.features.conv1.weight, final["conv1.weight"])  # the model was not modified


def _evolution_with_filter_curves(curves: dict[str, list[float]], epochs: list[int]) -> Evolution:
    """An :class:`Evolution` holding only the given filter-correlation curves (the rest is empty)."""
    return Evolution(epochs=epochs, channels={}, projections={}, image_index={},
                     filter_correlation={layer: torch.tensor(values) for layer, values in curves.items()},
                     projection_correlation={}, conv1_filters=torch.empty(0))


def test_first_epoch_reaching_finds_the_first_snapshot_at_or_above_the_threshold():
    curves = {"conv1": [0.5, 0.9, 0.95, 1.0], "conv2": [0.2, 0.89, 0.91, 1.0], "conv3": [0.95, 0.8, 0.85, 1.0]}
    evolution_data = _evolution_with_filter_curves(curves, [1, 2, 4, 8])
    assert first_epoch_reaching(evolution_data) == {"conv1": 2, "conv2": 4, "conv3": 1}  # first, not last crossing
    assert list(first_epoch_reaching(evolution_data)) == ["conv1", "conv2", "conv3"]  # the layer order is kept
    assert first_epoch_reaching(evolution_data, threshold=0.96) == {"conv1": 8, "conv2": 8, "conv3": 8}


def test_first_epoch_reaching_gives_none_for_a_layer_that_never_reaches_it():
    evolution_data = _evolution_with_filter_curves({"conv1": [0.1, 0.5], "conv2": [0.2, 0.3]}, [3, 6])
    assert first_epoch_reaching(evolution_data, threshold=0.4) == {"conv1": 6, "conv2": None}


def test_first_epoch_reaching_rejects_a_threshold_outside_the_correlation_range():
    evolution_data = _evolution_with_filter_curves({"conv1": [1.0]}, [1])
    with pytest.raises(ValueError, match=r"threshold=1.5 is not valid.*\[-1, 1\]"):
        first_epoch_reaching(evolution_data, threshold=1.5)


def test_settling_epoch_interpolates_between_snapshots():
    curves = torch.tensor([[0.5, 0.8, 0.95, 1.0], [0.92, 0.95, 0.99, 1.0], [0.1, 0.2, 0.3, 0.4]])
    settled = settling_epoch([1, 2, 4, 8], curves, threshold=0.9)
    torch.testing.assert_close(settled[:2], torch.tensor([2 + 2 * 0.1 / 0.15, 1.0], dtype=torch.float64))
    assert settled[2] == float("inf")  # never reached
    assert float(settling_epoch([1, 2, 4, 8], curves[0], threshold=0.95)) == 4.0
    with pytest.raises(ValueError, match="threshold=2 is not valid"):
        settling_epoch([1, 2], torch.ones(2), threshold=2)
    with pytest.raises(ValueError, match="last dimension must be the 3 snapshot epochs"):
        settling_epoch([1, 2, 3], torch.ones(2))


EPOCHS = [1, 2, 4, 8, 16, 32, 40]
LATER = {"conv2": [0.5, 0.6, 0.7, 0.92, 0.96, 0.99, 1.0], "conv3": [0.4, 0.5, 0.6, 0.7, 0.96, 0.99, 1.0],
         "conv4": [0.3, 0.4, 0.5, 0.6, 0.7, 0.96, 1.0], "conv5": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0]}


def _c2_evolution(conv1_noise: list[float], later: dict[str, list[float]] = LATER) -> Evolution:
    """Fig. 4 data whose 32 conv1 filters are their final values plus noise of the given size per snapshot."""
    generator = torch.Generator().manual_seed(0)
    final = torch.randn(32, 3, 7, 7, generator=generator)
    filters = torch.stack([final + noise * torch.randn(final.shape, generator=generator) for noise in conv1_noise])
    data = _evolution_with_filter_curves({layer: values for layer, values in later.items()}, EPOCHS)
    data.conv1_filters = filters.half()
    data.filter_correlation = {"conv1": conv1_filter_correlation(data).mean(1), **data.filter_correlation}
    return data


FAST, SLOW = [0.1, 0.08, 0.05, 0.02, 0.01, 0.0, 0.0], [3.0, 2.0, 1.5, 0.2, 0.05, 0.0, 0.0]


def test_c2_agrees_when_conv1_settles_in_a_few_epochs_and_the_layers_follow_in_order():
    verdict = c2_verdict(_c2_evolution(FAST), total_epochs=40)
    assert verdict.outcome == "agree", verdict.reason
    assert verdict.estimate.high < FEW_EPOCHS / 70 and verdict.estimate.value == pytest.approx(1 / 40)


def test_c2_is_partly_when_conv1_is_first_but_slow():
    verdict = c2_verdict(_c2_evolution(SLOW), total_epochs=40)
    assert verdict.outcome == "partly", verdict.reason
    assert 4 / 40 < verdict.estimate.low <= verdict.estimate.value <= verdict.estimate.high < 8 / 40
    assert all(verdict.details["order_holds"].values())


def test_c2_differs_when_the_top_layer_settles_first_and_is_inconclusive_when_the_threshold_decides():
    reversed_order = dict(LATER, conv5=[0.97, 0.98, 0.99, 0.99, 0.99, 0.99, 1.0])
    assert c2_verdict(_c2_evolution(SLOW, reversed_order), total_epochs=40).outcome == "differ"
    early_at_08 = dict(LATER, conv2=[0.5, 0.6, 0.85, 0.88, 0.96, 0.99, 1.0])  # before conv1 at 0.8, after it at 0.9
    verdict = c2_verdict(_c2_evolution(SLOW, early_at_08), total_epochs=40)
    assert verdict.outcome == "inconclusive" and verdict.settle
    assert verdict.details["order_holds"] == {"0.8": False, "0.9": True, "0.95": True}


def test_c2_rejects_missing_layers_and_a_run_shorter_than_its_snapshots():
    data = _c2_evolution(FAST)
    with pytest.raises(ValueError, match="total_epochs=30 is not valid.*last snapshot epoch 40"):
        c2_verdict(data, total_epochs=30)
    del data.filter_correlation["conv4"]
    with pytest.raises(ValueError, match=r"lacks \['conv4'\]"):
        c2_verdict(data, total_epochs=40)


def test_convergence_table_has_a_row_per_layer_with_its_settling_epoch():
    table = convergence_table(_c2_evolution(SLOW), total_epochs=40)
    rows = table.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| conv1", "| conv2", "| conv3", "| conv4", "| conv5"]
    assert rows[1].endswith("| 8 | 8 | 16 | epoch 7.6 (19 % of 40) |")  # conv2: 0.7 at 4, 0.92 at 8: 4 + 4 * 0.2 / 0.22
    with pytest.raises(ValueError, match="total_epochs=True is not valid"):
        convergence_table(_c2_evolution(SLOW), total_epochs=True)

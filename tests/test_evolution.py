"""Fig. 4 evolution: correlations reach 1 at the final epoch and fall with the distance from it; when each layer settles."""

import numpy as np
import pytest
import torch

from zfcore.analysis.evolution import Evolution, evolution, first_epoch_reaching
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

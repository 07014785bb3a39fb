"""Fig. 4 evolution: correlations reach 1 at the final epoch and fall with the distance from it."""

import numpy as np
import torch

from zfcore.analysis.evolution import Evolution, evolution
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

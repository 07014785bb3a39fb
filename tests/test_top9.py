"""Top-9 mining: streaming equals brute force, projections match single calls, results are cached."""

import numpy as np
import pytest
import torch

from zfcore.analysis import top9
from zfcore.analysis.top9 import mine_top9, top_activations, top_projections
from zfcore.data.loader import normalize
from zfcore.deconv import project, receptive_field
from zfcore.models import zfnet

LAYERS = ("conv1", "conv3", "conv5")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = zfnet(5, 64, widths=(8, 12, 16, 16, 12), fc=16, init="he").eval()
    pixels = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    return model, pixels


def batches(pixels, size):
    return [normalize(torch.from_numpy(pixels[i : i + size])).contiguous() for i in range(0, len(pixels), size)]


def test_streaming_topk_equals_brute_force_for_any_batch_size(setup):
    model, pixels = setup
    with torch.no_grad():
        full = model.trace(normalize(torch.from_numpy(pixels)).contiguous(), layers=LAYERS).activations
    for batch_size in (7, 40):
        mined = top_activations(model, batches(pixels, batch_size), LAYERS, k=9, progress=False)
        for layer in LAYERS:
            per_image = full[layer].flatten(2).max(dim=2)  # values [N, C], flat positions
            values, images = per_image.values.T.topk(9, dim=1)
            torch.testing.assert_close(mined[layer].values, values)
            alive = values[:, -1] > 0  # dead maps tie at 0, where any order is right
            assert alive.sum() >= len(alive) // 2
            assert torch.equal(mined[layer].image_index[alive], images[alive])
            width = full[layer].shape[-1]
            flat = per_image.indices.T.gather(1, images)
            assert torch.equal(mined[layer].positions[alive], torch.stack([flat // width, flat % width], -1)[alive])
            assert all(len(set(row.tolist())) == 9 for row in mined[layer].image_index)  # distinct images


def test_projections_equal_single_calls_and_patches_sit_in_their_box(setup):
    model, pixels = setup
    top = top_activations(model, batches(pixels, 16), ("conv3",), k=3, progress=False)["conv3"]
    result = top_projections(model, pixels, top, channels=[1, 4], chunk=4, progress=False)
    assert result.projections.shape == (2, 3, 3, 64, 64) and result.patches.shape == (2, 3, 3, 64, 64)
    for row, channel in enumerate((1, 4)):
        for j in range(3):
            index, position = int(top.image_index[channel, j]), tuple(top.positions[channel, j].tolist())
            image = normalize(torch.from_numpy(pixels[index : index + 1])).contiguous()
            single = project(model, image, "conv3", channel, [position])
            torch.testing.assert_close(result.projections[row, j], single[0])
            top_px, left, bottom, right = receptive_field(model, "conv3", position)
            assert result.boxes[row, j].tolist() == [top_px, left, bottom, right]
            patch = result.patches[row, j].permute(1, 2, 0).numpy()
            assert np.array_equal(patch[top_px:bottom, left:right], pixels[index, top_px:bottom, left:right])


def test_mine_top9_caches_by_weights(setup, tmp_path, monkeypatch):
    model, pixels = setup
    first = mine_top9(model, pixels, layers=("conv2",), k=4, channels_per_layer=3,
                      cache_dir=tmp_path, progress=False)
    assert first["conv2"][1].projections.shape[:2] == (3, 4)
    monkeypatch.setattr(top9, "top_activations", lambda *a, **k: pytest.fail("cache not used"))
    again = mine_top9(model, pixels, layers=("conv2",), k=4, channels_per_layer=3,
                      cache_dir=tmp_path, progress=False)
    torch.testing.assert_close(again["conv2"][1].projections, first["conv2"][1].projections)
    other = zfnet(5, 64, widths=(8, 12, 16, 16, 12), fc=16, init="he").eval()
    assert top9.weights_digest(other) != top9.weights_digest(model)


def test_bad_arguments_raise(setup):
    model, pixels = setup
    with pytest.raises(ValueError, match="layer='fc6'"):
        top_activations(model, batches(pixels, 8), ("fc6",), progress=False)
    with pytest.raises(ValueError, match="k=0"):
        top_activations(model, batches(pixels, 8), ("conv1",), k=0, progress=False)

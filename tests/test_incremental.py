"""Tests of zfcore.analysis.incremental: occluded forward passes that recompute only what the occluder changes."""

from __future__ import annotations

import pytest
import torch

from zfcore.analysis.incremental import OccludedForward
from zfcore.analysis.occlusion import occluder_baseline, occlusion_maps
from zfcore.models import alexnet_style, zfnet

SMALL = dict(widths=(8, 16, 16, 16, 16), fc=32, init="he")


def _network(builder, size: int, **options):
    torch.manual_seed(0)
    return builder(10, size, **(SMALL | options)).eval()


NETWORKS = {
    "zf64": lambda: _network(zfnet, 64),
    "alexnet64": lambda: _network(alexnet_style, 64),
    "zf64-no-norm-no-conv3-conv4": lambda: _network(zfnet, 64, lrn=False, remove=("conv3", "conv4")),
    "zf224": lambda: _network(zfnet, 224),
}


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("size_fraction, stride_fraction, layer", [
    (None, None, "conv5"),  # the defaults: 1/4 and 1/16 of the side
    (0.25, 0.0625, "conv1"),  # the recorded layer inside the first stage
    (0.11, 0.08, "conv2"),  # a stride that does not divide the side
    (1 / 64, 0.14, "conv5"),  # a one-pixel occluder
    (1.0, 1 / 64, "conv5"),  # the occluder is the whole image: nothing to reuse
])
def test_incremental_maps_equal_whole_forward_passes(network, size_fraction, stride_fraction, layer):
    model = NETWORKS[network]()
    side = model.input_size
    size = None if size_fraction is None else max(1, round(side * size_fraction))
    stride = None if stride_fraction is None else max(1, round(side * stride_fraction))
    layer = layer if layer in model.layer_names else "conv5"
    torch.manual_seed(1)
    image = torch.randn(3, side, side)
    fast = occlusion_maps(model, image, 3, size, stride, layer)
    whole = occlusion_maps(model, image, 3, size, stride, layer, incremental=False)
    torch.testing.assert_close(fast.true_probability, whole.true_probability, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast.activity, whole.activity, atol=1e-4, rtol=1e-5)
    assert torch.equal(fast.predicted, whole.predicted)
    assert (whole.true_probability - whole.unoccluded_probability).abs().max() > 1e-5  # the occluder matters


def test_a_spatially_varying_grey_is_taken_pixel_by_pixel():
    """With "pixel-mean" inputs the grey differs at every pixel: each occluded pixel takes its own."""
    model = NETWORKS["zf64"]()
    torch.manual_seed(2)
    mean_image = torch.rand(64, 64, 3) * 255
    image = torch.randn(3, 64, 64)
    fast = occlusion_maps(model, image, 1, 12, 5, mean_image=mean_image)
    whole = occlusion_maps(model, image, 1, 12, 5, mean_image=mean_image, incremental=False)
    torch.testing.assert_close(fast.true_probability, whole.true_probability, atol=1e-6, rtol=0)


def test_stages_of_zf64_and_their_windows():
    """The default 16-px square at stride 4 changes 11 of conv1's 32 rows, 7 of pool1's 16, 6 of conv2's 8
    and all of pool2's 4: three incremental stages, then the rest of the network on whole maps."""
    model = zfnet(10, 64, **SMALL).eval()
    starts = torch.arange(0, 49, 4)
    forward = OccludedForward(model, torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), starts, 16, "relu5")
    assert [stage.names for stage in forward.stages] == [["conv1", "relu1"], ["pool1", "norm1"], ["conv2", "relu2"]]
    assert [(stage.size, stage.out_length) for stage in forward.stages] == [(11, 32), (7, 16), (6, 8)]
    assert forward.rest[0][0] == "pool2"


@pytest.mark.parametrize("network", ["zf64", "alexnet64", "zf224"])
def test_each_stage_window_holds_every_changed_value(network):
    """Brute force: occlude every position, run the stages on whole maps, and check that every value that
    differs from the unoccluded image's lies inside that position's window."""
    model = NETWORKS[network]()
    side = model.input_size
    size, stride = side // 4, side // 8
    starts = torch.arange(0, side - size + 1, stride)
    torch.manual_seed(3)
    image = torch.rand(3, side, side) + 0.5  # positive: ReLUs pass, so the occluder's reach shows everywhere
    baseline = occluder_baseline(side)
    forward = OccludedForward(model, image, baseline, starts, size, "relu5")
    assert forward.stages
    for i, top in enumerate(starts.tolist()):
        for j, left in enumerate(starts.tolist()):
            occluded = image.clone()
            occluded[:, top : top + size, left : left + size] = baseline[:, top : top + size, left : left + size]
            x, y = image[None], occluded[None]
            with torch.no_grad():
                for stage in forward.stages:
                    for module in (stage.op, *stage.pointwise):
                        x, y = module(x), module(y)
                    changed = (x != y).any(1)[0].nonzero()
                    rows, cols = changed[:, 0], changed[:, 1]
                    assert len(changed), f"{stage.names}: the occluder changes nothing"
                    assert int(stage.out_start[i]) <= int(rows.min()) and int(rows.max()) < int(stage.out_start[i]) + stage.size
                    assert int(stage.out_start[j]) <= int(cols.min()) and int(cols.max()) < int(stage.out_start[j]) + stage.size


def test_unknown_recorded_step_is_named():
    model = NETWORKS["zf64"]()
    with pytest.raises(ValueError, match="record='relu9'"):
        OccludedForward(model, torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), torch.arange(0, 49, 4), 16, "relu9")

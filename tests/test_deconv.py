"""Tests of zfcore.deconv: the deconvnet, backprop and guided projections, and receptive fields."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

from zfcore.deconv import _backward_step, project, receptive_field
from zfcore.models import CONV_LAYERS, ContrastNorm, alexnet_style, zfnet

captum_attr = pytest.importorskip("captum.attr")

LAYERS = CONV_LAYERS + ("fc6", "fc7", "fc8")
WIDTHS = (16, 24, 32, 32, 24)  # small, so float64 runs fast; the geometry is that of the full nets


def _model(build=zfnet, size: int = 64, lrn: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(10, size, widths=WIDTHS, fc=32, lrn=lrn, init="he").double().eval()


def _images(count: int, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _pick(model, images, layer, seed=2):
    """A random (channel, position) with a positive activation in each image, and its value."""
    activation = model.trace(images, [layer]).activations[layer]
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for single in activation:
        live = (single > 0).nonzero() if layer != "fc8" else torch.arange(single.shape[0])[:, None]
        index = tuple(live[torch.randint(len(live), (1,), generator=generator).item()].tolist())
        picks.append((index, single[index].item()))
    channels = [index[0] for index, _ in picks]
    positions = [index[1:] for index, _ in picks] if activation.dim() == 4 else None
    return picks, channels, positions


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    assert scale > 0, "degenerate test case: the reference projection is zero"
    assert (actual - expected).abs().max().item() <= 1e-5 * scale


def _captum(method, model, layer, images, picks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's notes about hooks and requires_grad
        attribution = method(model, model.activation_module(layer))
        return torch.cat([
            attribution.attribute(images[b : b + 1], index if len(index) > 1 else index[0]) * value
            for b, (index, value) in enumerate(picks)
        ])


@pytest.mark.parametrize("build", [zfnet, alexnet_style])
@pytest.mark.parametrize("layer", LAYERS)
def test_deconvnet_matches_captum(build, layer):
    model, images = _model(build), _images(2)
    picks, channels, positions = _pick(model, images, layer)
    expected = _captum(captum_attr.NeuronDeconvolution, model, layer, images, picks)
    _assert_close(project(model, images, layer, channels, positions), expected)


@pytest.mark.parametrize("layer", ["conv3", "conv5", "fc7"])
def test_deconvnet_through_norm_matches_captum(layer):
    model, images = _model(lrn=True), _images(2)
    picks, channels, positions = _pick(model, images, layer)
    expected = _captum(captum_attr.NeuronDeconvolution, model, layer, images, picks)
    _assert_close(project(model, images, layer, channels, positions, through_norm=True), expected)


def test_deconvnet_passes_norm_as_identity_by_default():
    model, images = _model(lrn=True), _images(2)
    picks, channels, positions = _pick(model, images, "conv5")
    identity = [m.register_full_backward_hook(lambda _, grad_in, grad_out: grad_out)
                for m in model.modules() if isinstance(m, ContrastNorm)]
    expected = _captum(captum_attr.NeuronDeconvolution, model, "conv5", images, picks)
    for handle in identity:
        handle.remove()
    _assert_close(project(model, images, "conv5", channels, positions), expected)
    assert not torch.allclose(project(model, images, "conv5", channels, positions, through_norm=True), expected)


@pytest.mark.parametrize("lrn", [False, True])
@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv4", "fc6", "fc8"])
def test_backprop_is_the_gradient(layer, lrn):
    model, images = _model(lrn=lrn), _images(3)
    picks, channels, positions = _pick(model, images, layer)
    images.requires_grad_(True)
    activation = model.trace(images, [layer]).activations[layer]
    kept = torch.stack([activation[b][index] for b, (index, _) in enumerate(picks)])
    (gradient,) = torch.autograd.grad(kept.sum(), images)
    values = torch.tensor([value for _, value in picks], dtype=images.dtype)
    _assert_close(project(model, images.detach(), layer, channels, positions, "backprop"),
                  gradient * values.view(-1, 1, 1, 1))


@pytest.mark.parametrize("layer", ["conv1", "conv3", "conv5", "fc7"])
def test_guided_matches_captum(layer):
    model, images = _model(), _images(2)
    picks, channels, positions = _pick(model, images, layer)
    expected = _captum(captum_attr.NeuronGuidedBackprop, model, layer, images, picks)
    _assert_close(project(model, images, layer, channels, positions, "guided"), expected)


def test_224_px_deconvnet_matches_captum():
    model, images = _model(size=224), _images(1, size=224)
    picks, channels, positions = _pick(model, images, "conv5")
    expected = _captum(captum_attr.NeuronDeconvolution, model, "conv5", images, picks)
    _assert_close(project(model, images, "conv5", channels, positions), expected)


@pytest.mark.parametrize("mode", ["deconvnet", "backprop", "guided"])
def test_batch_equals_single_calls(mode):
    model, images = _model(lrn=True), _images(4)
    channels, positions = [3, 0, 7, 3], [(0, 1), (2, 2), (3, 0), (1, 3)]
    batched = project(model, images, "conv4", channels, torch.tensor(positions), mode)
    for b in range(4):
        single = project(model, images[b : b + 1], "conv4", channels[b], [positions[b]], mode)
        assert torch.allclose(batched[b : b + 1], single, rtol=1e-12, atol=1e-12 * single.abs().max())


def test_one_image_broadcasts_over_channels_at_their_maxima():
    model, image = _model(), _images(1)
    activation = model.trace(image, ["conv2"]).activations["conv2"][0]  # [C, 8, 8]
    maxima = [divmod(activation[c].flatten().argmax().item(), activation.shape[2]) for c in range(WIDTHS[1])]
    broadcast = project(model, image, "conv2", torch.arange(WIDTHS[1]))
    explicit = project(model, image.expand(WIDTHS[1], -1, -1, -1), "conv2", range(WIDTHS[1]), maxima)
    # one forward pass of 1 image against one of 24 copies: float64 sums depend on the batch size and the
    # thread count, so equal to rounding (as in test_batch_equals_single_calls), not bitwise
    torch.testing.assert_close(broadcast, explicit, rtol=1e-12, atol=1e-12 * float(explicit.abs().max()))


def test_eval_semantics_and_mode_restored():
    model, images = _model(), _images(2)
    expected = project(model, images, "fc7", [1, 2])
    model.train()
    assert torch.equal(project(model, images, "fc7", [1, 2]), expected)
    assert model.training and all(m.training for m in model.modules())


def test_unpooling_sums_repeated_switches_deterministically():
    pool = nn.MaxPool2d(3, 2)
    pool_input = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    pool_input[0, 0, 2, 2] = 1.0  # the centre lies in all four 3x3 windows of the 5x5 map
    _, indices = nn.functional.max_pool2d(pool_input, 3, 2, return_indices=True)
    assert indices.flatten().tolist() == [12, 12, 12, 12]
    signal = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    unpooled = _backward_step(pool, (pool_input, indices), signal, "deconvnet")
    expected = torch.zeros_like(pool_input)
    expected[0, 0, 2, 2] = 10.0
    assert torch.equal(unpooled, expected)


def test_real_pools_repeat_switches_and_projections_are_deterministic():
    model, images = _model(), _images(2)
    switches = model.trace(images).switches["pool1"].flatten(2)  # [B, C, 16*16]
    assert any(len(row.unique()) < len(row) for row in switches.flatten(0, 1))
    first = project(model, images, "conv5", [1, 2])
    assert torch.equal(first, project(model, images, "conv5", [1, 2]))


@pytest.mark.parametrize("size, layer, position", [
    (64, "conv1", (5, 30)), (64, "conv2", (3, 4)), (64, "conv3", (0, 0)), (64, "conv5", (3, 2)),
    (224, "conv2", (12, 4)), (224, "conv4", (6, 6)),
])
def test_receptive_field_contains_everything_the_activation_sees(size, layer, position):
    model = _model(size=size, lrn=True)
    top, left, bottom, right = receptive_field(model, layer, position)
    image = _images(1, size=size)

    def activation(x):
        return model.trace(x, [layer]).activations[layer][0, :, position[0], position[1]]

    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[top:bottom, left:right] = True
    noise = 100 * _images(1, size=size, seed=5)
    assert torch.equal(activation(torch.where(inside, image, noise)), activation(image))
    for line in _edges(top, left, bottom, right, size):  # and the box is tight
        assert not torch.equal(activation(torch.where(line, noise, image)), activation(image))


def _edges(top: int, left: int, bottom: int, right: int, size: int) -> list[torch.Tensor]:
    """Masks of the four outermost pixel lines of a box."""
    masks = []
    for rows, cols in ((slice(top, top + 1), slice(left, right)), (slice(bottom - 1, bottom), slice(left, right)),
                       (slice(top, bottom), slice(left, left + 1)), (slice(top, bottom), slice(right - 1, right))):
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[rows, cols] = True
        masks.append(mask)
    return masks


def test_receptive_field_sizes_match_the_paper_geometry():
    model = _model(size=224)
    for layer, position, expected in [("conv1", (50, 50), 7), ("conv2", (12, 12), 27), ("conv3", (6, 6), 75),
                                      ("conv4", (6, 6), 107), ("conv5", (6, 6), 139)]:
        top, left, bottom, right = receptive_field(model, layer, position)
        assert (bottom - top, right - left) == (expected, expected)
    assert receptive_field(model, "fc6") == (0, 0, 224, 224)
    assert receptive_field(_model(), "conv1", (0, 0)) == (0, 0, 4, 4)  # 7x7 with padding 3, clipped


@pytest.mark.parametrize("call, message", [
    (lambda m, x: project(m, x, "conv9", 0), "layer='conv9'"),
    (lambda m, x: project(m, x, "conv1", 0, mode="deconv"), "mode='deconv'"),
    (lambda m, x: project(m, x, "conv2", [0, 24]), "channels=[24]"),
    (lambda m, x: project(m, x, "conv2", -1), "channels=[-1]"),
    (lambda m, x: project(m, x, "conv2", 0.5), "channels=0.5"),
    (lambda m, x: project(m, x, "conv2", [0, 1, 2]), "2 images but 3 channels"),
    (lambda m, x: project(m, x, "conv2", [0, 1], [(0, 0), (8, 3)]), "positions=[[8, 3]]"),
    (lambda m, x: project(m, x, "conv2", [0, 1], [(0, 0)]), "positions have shape (1, 2)"),
    (lambda m, x: project(m, x, "fc6", [0, 1], [(0, 0), (0, 0)]), "positions=[(0, 0), (0, 0)]"),
    (lambda m, x: project(m, x[0], "conv1", 0), "shape (3, 64, 64)"),
    (lambda m, x: project(m, x[:, :1], "conv1", 0), "shape (2, 1, 64, 64)"),
    (lambda m, x: project(m, (x * 255).long(), "conv1", 0), "dtype torch.int64"),
    (lambda m, x: project(m, x[..., :32, :32], "conv1", 0), "32x32 px"),
    (lambda m, x: receptive_field(m, "conv3", (4, 0)), "(row, col)=(4, 0)"),
    (lambda m, x: receptive_field(m, "conv3"), "position=None"),
    (lambda m, x: receptive_field(m, "fc7", (0, 0)), "position=(0, 0)"),
])
def test_bad_input_raises_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(_model(), _images(2))


def test_tf32_is_off_during_projection_and_restored_after_even_on_error():
    """Projections on CUDA must match the CPU's: TF32 (cuDNN convolutions, matmuls) is off inside ``project``."""
    model = _model()
    images = _images(1)
    seen: list[tuple[bool, bool]] = []
    dict(model.named_steps())["conv1"].register_forward_hook(
        lambda *_: seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
    )
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        project(model, images, "conv2", 0)
        assert seen == [(False, False)]
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with pytest.raises(ValueError, match="channels=.*out of range"):
            project(model, images, "conv2", 10_000)  # fails after the forward pass, inside the TF32-off block
        assert seen == [(False, False)] * 2
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before

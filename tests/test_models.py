"""Shapes, named layers, contrast normalisation, initialisation and renormalisation of the ZFNet family."""

import pytest
import torch

from zfcore.models import ContrastNorm, alexnet_style, renormalize_filters, zfnet

# expected [C, H, W] of every named layer's activation (Fig. 3 at 224 px; ZF-64 at 64 px)
SHAPES = {
    ("zfnet", 224): {"conv1": (96, 110, 110), "conv2": (256, 26, 26), "conv3": (384, 13, 13),
                     "conv4": (384, 13, 13), "conv5": (256, 13, 13), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)},
    ("zfnet", 64): {"conv1": (96, 32, 32), "conv2": (256, 8, 8), "conv3": (384, 4, 4), "conv4": (384, 4, 4),
                    "conv5": (256, 4, 4), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)},
    ("alexnet_style", 224): {"conv1": (96, 55, 55), "conv2": (256, 27, 27), "conv3": (384, 13, 13),
                             "conv4": (384, 13, 13), "conv5": (256, 13, 13), "fc6": (4096,), "fc7": (4096,),
                             "fc8": (1000,)},
    ("alexnet_style", 64): {"conv1": (96, 16, 16), "conv2": (256, 8, 8), "conv3": (384, 4, 4), "conv4": (384, 4, 4),
                            "conv5": (256, 4, 4), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)},
}
SWITCHES_224 = {"pool1": (55, 55), "pool2": (13, 13), "pool5": (6, 6)}


@pytest.mark.parametrize("builder,size", list(SHAPES))
def test_named_layer_shapes(builder, size):
    model = {"zfnet": zfnet, "alexnet_style": alexnet_style}[builder](input_size=size).eval()
    with torch.no_grad():
        trace = model.trace(torch.randn(2, 3, size, size))
    assert {name: tuple(a.shape[1:]) for name, a in trace.activations.items()} == SHAPES[(builder, size)]
    assert trace.logits.shape == (2, 1000)
    if (builder, size) == ("zfnet", 224):
        assert {name: tuple(s.shape[2:]) for name, s in trace.switches.items()} == SWITCHES_224


def test_activation_module_output_is_the_traced_activation():
    model = zfnet(10, 64, fc=32, init="he").eval()
    images = torch.randn(3, 3, 64, 64)
    captured = {}
    handles = [model.activation_module(name).register_forward_hook(
        lambda module, args, output, name=name: captured.__setitem__(name, output)) for name in model.layer_names]
    with torch.no_grad():
        trace = model.trace(images, layers=model.layer_names)
        logits = model(images)
    for handle in handles:
        handle.remove()
    for name in model.layer_names:
        torch.testing.assert_close(captured[name], trace.activations[name], rtol=0, atol=0)
    torch.testing.assert_close(logits, trace.logits)
    assert (trace.activations["conv3"] >= 0).all()  # a ReLU output, before pooling


def test_contrast_norm_equals_local_response_norm():
    torch.manual_seed(0)
    x = torch.randn(4, 96, 9, 9) * 20
    fast, reference = ContrastNorm(96)(x), torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(x)
    assert (fast - reference).abs().max() <= 1e-5 * reference.abs().max()
    x.requires_grad_(True)
    g1, = torch.autograd.grad(ContrastNorm(96)(x).sum(), x)
    g2, = torch.autograd.grad(torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x).sum(), x)
    assert (g1 - g2).abs().max() <= 1e-5 * g2.abs().max()


@pytest.mark.parametrize("removed,present", [
    (("conv3", "conv4"), ("conv1", "conv2", "conv5", "fc6", "fc7", "fc8")),
    (("fc6", "fc7"), ("conv1", "conv2", "conv3", "conv4", "conv5", "fc8")),
    (("conv3", "conv4", "fc6", "fc7"), ("conv1", "conv2", "conv5", "fc8")),
])
def test_remove_layers_for_table3(removed, present):
    model = zfnet(20, 64, fc=64, remove=removed)
    assert model.layer_names == present
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 20)


def test_widths_and_fc_change_the_layers():
    model = zfnet(10, 64, widths=(8, 16, 24, 24, 16), fc=32)
    trace = model.trace(torch.randn(1, 3, 64, 64))
    assert [trace.activations[n].shape[1] for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")] == \
        [8, 16, 24, 24, 16, 32, 32]


def test_paper_init_and_he_init():
    paper = zfnet(10, 64, fc=64, init="paper")
    for name, parameter in paper.named_parameters():
        if name.endswith("bias"):
            assert parameter.abs().max() == 0
        else:
            assert abs(parameter.std().item() - 1e-2) < 2e-3
    he = zfnet(10, 64, fc=64, init="he")
    conv2 = he.features.conv2.weight
    assert abs(conv2.std().item() - (2 / (96 * 25)) ** 0.5) < 3e-3


def test_renormalize_filters_caps_rms_only_above_radius():
    model = zfnet(10, 64, widths=(4, 4, 4, 4, 4), fc=8)
    with torch.no_grad():
        weight = model.features.conv1.weight
        weight.normal_()
        weight[0].mul_(0.01)  # RMS ~0.01: below the radius, untouched
    before = model.features.conv1.weight[0].clone()
    with torch.no_grad():
        model.classifier.fc6.weight.mul_(100)  # fc layers are not renormalised
    fc6_before = model.classifier.fc6.weight.clone()
    renormalize_filters(model, 0.1)
    rms = model.features.conv1.weight.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert torch.equal(model.features.conv1.weight[0], before)
    torch.testing.assert_close(rms[1:], torch.full_like(rms[1:], 0.1))
    assert torch.equal(model.classifier.fc6.weight, fc6_before)


@pytest.mark.parametrize("kwargs,match", [
    ({"input_size": 100}, "input_size=100"),
    ({"remove": ("conv5",)}, "remove='conv5'"),
    ({"init": "xavier"}, "init='xavier'"),
    ({"widths": (1, 2, 3)}, "widths=\\(1, 2, 3\\)"),
    ({"dropout": 1.5}, "dropout=1.5"),
])
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zfnet(**kwargs)


@pytest.mark.parametrize("images,match", [
    (torch.randn(2, 3, 32, 32), "32x32 px"),
    (torch.randn(2, 1, 64, 64), "expected \\[B, 3, H, W\\]"),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "torch.uint8"),
    (torch.randn(3, 64, 64), "expected \\[B, 3, H, W\\]"),
])
def test_bad_images_raise(images, match):
    with pytest.raises(ValueError, match=match):
        zfnet(10, 64, fc=16)(images)


def test_unknown_layer_names_valid_ones():
    with pytest.raises(ValueError, match="layer='conv9'.*conv1"):
        zfnet(10, 64, fc=16).activation_module("conv9")

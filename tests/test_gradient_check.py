"""Tests of zfcore.analysis.gradient_check: the autograd implementation check and the measured differences."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from zfcore.analysis.gradient_check import (
    CHECKED_VARIANTS, autograd_projection, differences_table, implementation_check, projection_differences,
    strongest_units, variant_projections,
)
from zfcore.analysis.top9 import top_activations
from zfcore.data.loader import pixel_batches
from zfcore.deconv import project, receptive_field
from zfcore.models import CONV_LAYERS, zfnet

WIDTHS = (8, 12, 16, 16, 12)


def _model(lrn: bool, seed: int = 0, conv1_gain: float = 1.0):
    torch.manual_seed(seed)
    model = zfnet(10, 64, widths=WIDTHS, fc=16, lrn=lrn, init="he").eval()
    with torch.no_grad():
        model.features.conv1.weight.mul_(conv1_gain)
    return model


def _pixels(count: int = 12, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def _differences(model, pixels, channels_per_layer=4, layers=CONV_LAYERS):
    tops = top_activations(model, pixel_batches(pixels, 6), layers, k=3, progress=False)
    rows = projection_differences(model, pixels, tops, channels_per_layer=channels_per_layer, chunk=5)
    return {row.layer: row for row in rows}


def test_relu_rule_and_norm_make_no_difference_at_conv1():
    differences = _differences(_model(lrn=True), _pixels(), layers=("conv1",))
    conv1 = differences["conv1"]
    assert conv1.count == 4 * 3  # 4 channels x top 3
    # conv1's activation is its own ReLU's output: no ReLU and no norm lie below it
    assert conv1.relu_rule.abs().max() < 1e-9 and conv1.norm.abs().max() < 1e-9


def test_without_the_norm_only_the_relu_rule_differs():
    differences = _differences(_model(lrn=False), _pixels())
    for layer in CONV_LAYERS:
        row = differences[layer]
        assert row.norm.abs().max() < 1e-9, layer
        assert torch.allclose(row.both, row.relu_rule, atol=1e-9), layer
    assert differences["conv5"].relu_rule.mean() > 1e-2  # the ReLU rule is a real difference above conv1


def test_the_norm_differs_from_the_identity_in_its_nonlinear_range():
    mild = _differences(_model(lrn=True), _pixels(), layers=("conv2", "conv3"))
    strong = _differences(_model(lrn=True, conv1_gain=30.0), _pixels(), layers=("conv2", "conv3"))
    for layer in ("conv2", "conv3"):
        assert strong[layer].norm.mean() > 1e-3, layer  # large activations: the norm is far from a scaling
        assert strong[layer].norm.mean() > 10 * mild[layer].norm.mean(), layer


def test_differences_table_has_one_row_per_layer():
    table = differences_table(list(_differences(_model(lrn=True), _pixels(), channels_per_layer=2).values()))
    lines = table.splitlines()
    assert len(lines) == 2 + len(CONV_LAYERS)
    conv1 = lines[2].split(" | ")
    assert conv1[:2] == ["| conv1", "6"]
    assert all(float(cell.split(" ± ")[0]) < 1e-12 for cell in conv1[2:4])  # float64 rounding: the same projections
    assert re.fullmatch(r"\| conv5 \| 6 \| 0\.\d{3} ± 0\.\d{3} \| \S+ ± \S+ \| 0\.\d{3} ± 0\.\d{3} \|", lines[-1])


def test_channels_per_layer_caps_at_the_width_and_bad_values_raise():
    model, pixels = _model(lrn=True), _pixels(4)
    tops = top_activations(model, pixel_batches(pixels, 4), layers=("conv1",), k=2, progress=False)
    assert projection_differences(model, pixels, tops, channels_per_layer=100)[0].count == WIDTHS[0] * 2
    with pytest.raises(ValueError, match="channels_per_layer=0"):
        projection_differences(model, pixels, tops, channels_per_layer=0)
    with pytest.raises(ValueError, match="chunk=0"):
        projection_differences(model, pixels, tops, chunk=0)


@pytest.mark.parametrize("lrn", [True, False])
def test_implementation_check_agrees_for_every_variant(lrn):
    model = _model(lrn=lrn)
    image = next(pixel_batches(_pixels(1), 1))
    check = implementation_check(model, image)
    assert list(check.errors) == list(CONV_LAYERS)
    assert all(list(row) == list(CHECKED_VARIANTS) for row in check.errors.values())
    assert check.worst <= 1e-5
    assert "DIFFERENT" not in check.markdown() and check.markdown().count("equal") == 4 * len(CONV_LAYERS)


def test_implementation_check_reports_a_difference():
    model = _model(lrn=True)
    image = next(pixel_batches(_pixels(1), 1))
    check = implementation_check(model, image)
    check.errors["conv3"]["guided"] = 0.5
    assert "| conv3 | equal | equal | equal | DIFFERENT (5.0e-01) |" in check.markdown()


def test_strongest_units_are_each_layers_largest_activation_and_project_by_every_variant():
    model = _model(lrn=True)
    image = next(pixel_batches(_pixels(1), 1))
    units = strongest_units(model, image)
    with torch.no_grad():
        trace = model.trace(image, CONV_LAYERS)
    assert list(units) == list(CONV_LAYERS)
    for layer, (channel, (row, column)) in units.items():
        activation = trace.activations[layer][0]
        assert float(activation[channel, row, column]) == float(activation.max()) > 0
    shown = variant_projections(model, image, ("conv2", "conv4"))
    assert list(shown.projections) == ["conv2", "conv4"] and shown.labels == [f"{layer}, map {units[layer][0]}"
                                                                             for layer in ("conv2", "conv4")]
    channel, position = units["conv4"]
    assert shown.boxes["conv4"] == receptive_field(model, "conv4", position)
    assert shown.projections["conv4"].shape == (len(CHECKED_VARIANTS), 3, 64, 64)
    for row, (mode, through_norm) in enumerate(CHECKED_VARIANTS.values()):
        expected = project(model, image, "conv4", channel, [position], mode=mode, through_norm=through_norm)[0]
        assert torch.equal(shown.projections["conv4"][row], expected)
    with pytest.raises(ValueError, match=r"expected one image"):
        strongest_units(model, torch.cat([image, image]))


def test_autograd_backprop_through_the_norm_is_the_plain_gradient():
    model = _model(lrn=True, conv1_gain=30.0)
    image = next(pixel_batches(_pixels(1), 1)).requires_grad_(True)
    activation = model.trace(image, ["conv3"]).activations["conv3"][0, 2]
    position = divmod(int(activation.argmax()), activation.shape[-1])
    (gradient,) = torch.autograd.grad(activation[position], image)
    expected = gradient * activation[position].detach()
    ours = autograd_projection(model, image.detach(), "conv3", 2, position, mode="backprop")
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    as_identity = autograd_projection(model, image.detach(), "conv3", 2, position, mode="backprop", through_norm=False)
    assert not torch.allclose(as_identity, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))
    with pytest.raises(ValueError, match="mode='gradient' is not valid"):
        autograd_projection(model, image.detach(), "conv3", 2, position, mode="gradient")

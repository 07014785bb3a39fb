"""Tests of zfcore.analysis.invariance (§4, Fig. 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zfcore.analysis.invariance import (KINDS, linearity, paper_amounts, transform_sweep, transformed_views,
                                        typical_distances)
from zfcore.data.loader import normalize
from zfcore.models import zfnet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zfnet(10, 64, widths=(8, 16, 16, 16, 16), fc=32, init="he").eval()


@pytest.fixture(scope="module")
def sources():
    generator = np.random.default_rng(0)
    return generator.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_untransformed_view_gives_distance_zero_and_the_original_probability(model, sources, kind):
    """The identity (shift 0, factor 1, angle 0) is the source's centre crop, pixel for pixel: distance 0
    in every layer and p(true) of a plain forward pass of that crop; other amounts move the features."""
    amounts = paper_amounts(kind)[:4] if kind != "translate" else torch.tensor([0.0, 3.0, -6.0])
    sweep = transform_sweep(model, sources, [1, 2, 3], kind, amounts, layers=("conv1", "conv5", "fc7"))
    for layer, distances in sweep.distances.items():
        assert tuple(distances.shape) == (3, len(amounts))
        assert float(distances[:, 0].abs().max()) == 0.0, layer
        assert float(distances[:, 1:].min()) > 0.0, layer
    crop = torch.from_numpy(sources[:, 16:80, 16:80].copy())
    with torch.no_grad():
        probability = model(normalize(crop)).softmax(1)
    expected = probability[torch.arange(3), torch.tensor([1, 2, 3])]
    torch.testing.assert_close(sweep.true_probability[:, 0], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(sweep.original_probability, expected, atol=1e-6, rtol=0)
    assert torch.equal(sweep.original_prediction, probability.argmax(1))
    assert tuple(sweep.predicted.shape) == tuple(sweep.true_probability.shape) == (3, len(amounts))


def test_translation_of_a_constant_image_changes_nothing(model):
    constant = np.full((2, 64, 64, 3), 120, dtype=np.uint8)
    sweep = transform_sweep(model, constant, [0, 4], "translate", paper_amounts("translate"))
    for distances in sweep.distances.values():
        assert float(distances.abs().max()) < 1e-3
    torch.testing.assert_close(sweep.true_probability, sweep.original_probability[:, None].expand(-1, 13))


def test_views_shift_and_rotate_the_source():
    """A shift of k px moves the content down k rows of real source pixels; 90 degrees is a rot90."""
    generator = np.random.default_rng(1)
    source = torch.from_numpy(generator.integers(0, 256, (1, 96, 96, 3), dtype=np.uint8))
    views = transformed_views(source, "translate", torch.tensor([0.0, 5.0]), 64, 64)[0]
    torch.testing.assert_close(views[0], source[0, 16:80, 16:80].float(), atol=1e-2, rtol=0)
    torch.testing.assert_close(views[1], source[0, 11:75, 16:80].float(), atol=1e-2, rtol=0)
    turned = transformed_views(source, "rotate", torch.tensor([90.0]), 64, 64)[0, 0]
    expected = torch.rot90(source[0, 16:80, 16:80].float(), -1, (0, 1))  # clockwise
    torch.testing.assert_close(turned, expected, atol=1e-2, rtol=0)
    zoomed = transformed_views(source, "scale", torch.tensor([2.0]), 64, 64)[0, 0]
    assert zoomed.shape == (64, 64, 3)
    torch.testing.assert_close(zoomed[31:33, 31:33].mean(), source[0, 47:49, 47:49].float().mean(), atol=40, rtol=0)


def test_paper_amounts():
    assert paper_amounts("translate").tolist()[0] == -17 and paper_amounts("translate").tolist()[-1] == 17
    assert paper_amounts("translate", 224).tolist()[-1] == 60
    assert paper_amounts("scale").tolist()[0] == 1.0 and abs(paper_amounts("scale").tolist()[-1] - 1.8) < 1e-6
    assert len(paper_amounts("rotate")) == 36


def test_typical_distances_and_linearity(model, sources):
    inputs = normalize(torch.from_numpy(sources[:, :64, :64].copy()))
    typical = typical_distances(model, inputs, ("conv1", "fc7"))
    assert set(typical) == {"conv1", "fc7"} and all(value > 0 for value in typical.values())
    sizes = torch.tensor([1.0, 2.0, 3.0, 4.0])
    r2 = linearity(sizes, torch.stack([2 * sizes + 1, torch.tensor([1.0, 4.0, 1.0, 4.0])]))
    assert abs(float(r2[0]) - 1) < 1e-9 and float(r2[1]) < 0.5


@pytest.mark.parametrize("arguments, message", [
    (dict(kind="shear"), "kind='shear'"),
    (dict(kind="scale", amounts=[1.0, 0.0]), "positive factors"),
    (dict(amounts=[]), "need at least one"),
    (dict(amounts=[float("nan")]), "finite"),
    (dict(layers=("conv9",)), "conv9"),
    (dict(labels=[0, 1]), "2 labels for 3 images"),
    (dict(labels=[0, 1, 10]), "valid classes: 0 .. 9"),
    (dict(window=97), "window=97"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(images="float"), "expected uint8"),
])
def test_bad_inputs(model, sources, arguments, message):
    call = dict(images=sources, labels=[0, 1, 2], kind="translate", amounts=[0.0, 4.0])
    if arguments.get("images") == "float":
        arguments = dict(images=sources.astype(np.float32))
    call.update(arguments)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        transform_sweep(model, **call)
    with pytest.raises(ValueError, match="at least 2"):
        typical_distances(model, torch.zeros(1, 3, 64, 64))

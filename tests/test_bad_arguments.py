"""Bad arguments to the public API and the CLI: each fails at once with one line naming the value and the fix.

Covers the builders (``zfnet``, ``alexnet_style``), ``project`` and the analyses that take images or
pixels (non-finite values, other dtypes), ``TrainConfig`` (a bad recipe fails when it is made) and the
CLI's numbers (one line on stderr, exit code 2, nothing written).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from zfcore import alexnet_style, zfnet
from zfcore.analysis.gradient_check import autograd_projection, implementation_check, projection_differences
from zfcore.analysis.top9 import mine_top9, top_activations, top_projections, weights_digest
from zfcore.data import sources
from zfcore.data.loader import normalize, pixel_batches
from zfcore.deconv import project
from zfcore import models
from zfcore.profiles import DATASETS, INITS, PREPROCESSING, PROFILES, STYLES, TrainConfig

WIDTHS = (4, 8, 8, 8, 8)


def small_model() -> models.ZFNet:
    torch.manual_seed(0)
    return zfnet(5, 64, widths=WIDTHS, fc=16, init="he").eval()


def images(count: int = 3) -> torch.Tensor:
    return torch.randn(count, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def pixels(count: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def with_non_finite(batch: torch.Tensor) -> torch.Tensor:
    """A copy with one NaN in image 1 and two infs in image 2."""
    batch = batch.clone()
    batch[1, 0, 5, 5] = float("nan")
    batch[2, 2, 0, :2] = float("inf")
    return batch


def fails(error: type[Exception], call: Callable[[], object], *fragments: str) -> str:
    """Assert that ``call`` raises exactly ``error`` with a one-line message holding every fragment."""
    with pytest.raises(Exception) as caught:
        call()
    message = str(caught.value)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {message}"
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- the builders ---------------------------------------------------------------------------------------------


def test_remove_takes_one_name_or_a_sequence() -> None:
    assert "conv3" not in zfnet(5, 64, fc=16, remove="conv3").layer_names
    layers = zfnet(5, 64, fc=16, remove=["conv3", "fc7"]).layer_names
    assert layers == ("conv1", "conv2", "conv4", "conv5", "fc6", "fc8")
    assert zfnet(np.int64(5), 64, fc=16).num_classes == 5  # numpy integers are whole numbers too


@pytest.mark.parametrize("options, fragments", [
    ({"remove": ["conv9"]}, ("remove='conv9' is not valid", "'conv3', 'conv4', 'fc6', 'fc7'")),
    ({"remove": 5}, ("remove=5", "'conv3', 'conv4', 'fc6', 'fc7'")),
    ({"num_classes": "10"}, ("num_classes='10'", "whole number", "str")),
    ({"num_classes": 10.0}, ("num_classes=10.0", "whole number", "float")),
    ({"num_classes": True}, ("num_classes=True", "whole number", "bool")),
    ({"num_classes": 0}, ("num_classes=0", "at least 1")),
    ({"input_size": 100}, ("input_size=100 is not valid", "(64, 224)")),
    ({"widths": (96, 256)}, ("widths=(96, 256)", "five positive", "(96, 256, 384, 384, 256)")),
    ({"widths": (96.0, 256, 384, 384, 256)}, ("widths=(96.0, 256, 384, 384, 256)", "whole")),
    ({"widths": "abcde"}, ("widths='abcde'", "five positive")),
    ({"fc": 0}, ("fc=0", "at least 1")),
    ({"dropout": 1.5}, ("dropout=1.5", "[0, 1)")),
    ({"dropout": "0.5"}, ("dropout='0.5'", "[0, 1)")),
    ({"lrn": "yes"}, ("lrn='yes'", "True or False")),
    ({"init": "xavier"}, ("init='xavier' is not valid", "'paper', 'he', 'torch'")),
])
def test_bad_builder_options_name_the_argument_and_valid_values(options, fragments) -> None:
    arguments = {"num_classes": 5, "input_size": 64, "fc": 16, **options}
    fails(ValueError, lambda: zfnet(**arguments), *fragments)


def test_unknown_option_names_the_public_builder_and_lists_the_valid_options() -> None:
    fails(TypeError, lambda: zfnet(5, 64, width=(1, 2, 3, 4, 5)),
          "zfnet() got unknown option(s) 'width'", "valid options: widths, fc, lrn, dropout, remove, init")
    message = fails(TypeError, lambda: alexnet_style(5, 64, drop=0.1), "alexnet_style()", "'drop'")
    assert "_build" not in message


# -- images: non-finite values and other dtypes --------------------------------------------------------------


def test_non_finite_images_are_refused_by_project_naming_count_and_indices() -> None:
    model = small_model()
    digest = weights_digest(model)
    fails(ValueError, lambda: project(model, with_non_finite(images()), "conv2", 0),
          "3 non-finite values (NaN or inf) in 2 of 3 images (indices 1, 2)", "torch.nan_to_num")
    fails(ValueError, lambda: model.trace(with_non_finite(images())), "indices 1, 2")
    assert weights_digest(model) == digest


def test_many_non_finite_images_are_listed_briefly() -> None:
    batch = images(12)
    batch[:, 0, 0, 0] = float("nan")
    fails(ValueError, lambda: project(small_model(), batch, "conv1", 0),
          "12 non-finite values", "12 of 12 images", "indices 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_are_cast_to_the_model_dtype(dtype) -> None:
    model, batch = small_model(), images(2)
    low = batch.to(dtype)
    expected = project(model, low.float(), "conv3", [1, 2])
    result = project(model, low, "conv3", [1, 2])
    assert result.dtype == dtype
    torch.testing.assert_close(result.float(), expected.to(dtype).float())


def test_integer_images_are_refused_naming_the_dtype_and_the_fix() -> None:
    raw = torch.from_numpy(pixels(2)).permute(0, 3, 1, 2)
    fails(ValueError, lambda: project(small_model(), raw, "conv1", 0),
          "dtype torch.uint8", "zfcore.data.loader.normalize")


@pytest.mark.parametrize("call, fragments", [
    (lambda m, x: project(m, x, 3, 0), ("layer=3 is not a layer", "conv1")),
    (lambda m, x: project(m, x, "pool5", 0), ("layer='pool5'", "fc8")),
    (lambda m, x: project(m, x, "conv1", 0, mode="gradient"), ("mode='gradient'", "deconvnet")),
    (lambda m, x: project(m, x, "conv1", "3"), ("channels='3'", "an int")),
    (lambda m, x: project(m, x, "conv1", 1.5), ("channels=1.5", "an int")),
    (lambda m, x: project(m, x, "conv1", 0, [("a", "b")] * 3), ("positions=[('a', 'b')", "(row, col)")),
    (lambda m, x: project(m, x, "conv1", 0, [(0, 32)] * 3), ("positions=[[0, 32]", "cols 0..31")),
    (lambda m, x: project(m, x, "conv1", 0, through_norm="yes"), ("through_norm='yes'", "True, False or None")),
    (lambda m, x: project(m, x.numpy(), "conv1", 0), ("torch.Tensor", "ndarray")),
])
def test_bad_project_arguments(call, fragments) -> None:
    fails(ValueError, lambda: call(small_model(), images()), *fragments)


# -- analyses ---------------------------------------------------------------------------------------------------


def test_top_activations_names_the_bad_batch_and_restores_the_mode() -> None:
    model = small_model().train()
    batches = [images(2), with_non_finite(images())]
    fails(ValueError, lambda: top_activations(model, batches, ("conv1",), progress=False),
          "batch 1 (images from index 2)", "in 2 of 3 images (indices 1, 2)")
    assert model.training


@pytest.mark.parametrize("arguments, fragments", [
    ({"k": 0}, ("k=0", "positive integer")),
    ({"k": "9"}, ("k='9'", "positive integer")),
    ({"layers": ("fc6",)}, ("layer='fc6'", "conv layer", "conv5")),
    ({"layers": ()}, ("layers=()", "at least one conv layer")),
])
def test_bad_mining_arguments(arguments, fragments) -> None:
    fails(ValueError, lambda: top_activations(small_model(), [images()], progress=False, **arguments), *fragments)


def test_mining_takes_one_layer_name_and_refuses_no_batches() -> None:
    model = small_model()
    assert set(top_activations(model, [images()], "conv2", k=2, progress=False)) == {"conv2"}
    fails(ValueError, lambda: top_activations(model, [], progress=False), "no images")


def test_top_projections_refuses_bad_pixels_channels_and_chunk() -> None:
    model, stored = small_model(), pixels()
    top = top_activations(model, pixel_batches(stored, 3), ("conv2",), k=2, progress=False)["conv2"]
    floats = stored.astype(np.float32)
    fails(ValueError, lambda: top_projections(model, floats, top, progress=False),
          "pixels have dtype float32", "uint8")
    floats[4, 0, 0, 0] = np.nan
    fails(ValueError, lambda: top_projections(model, floats, top, progress=False),
          "pixels have 1 non-finite values", "(indices 4)")
    fails(ValueError, lambda: top_projections(model, stored[..., 0], top, progress=False), "shape (6, 64, 64)")
    fails(ValueError, lambda: top_projections(model, stored, top, channels=[0, 8], progress=False),
          "channels=[8] out of range for 'conv2'", "0..7")
    fails(ValueError, lambda: top_projections(model, stored, top, chunk=0, progress=False), "chunk=0")


def test_mine_top9_refuses_bad_input_before_writing_its_cache(tmp_path: Path) -> None:
    model, stored = small_model(), pixels().astype(np.float64)
    stored[2, 1, 1, 1] = np.inf
    fails(ValueError, lambda: mine_top9(model, stored, cache_dir=tmp_path, progress=False),
          "pixels have 1 non-finite values", "(indices 2)")
    fails(ValueError, lambda: mine_top9(model, pixels(), channels_per_layer=0, cache_dir=tmp_path, progress=False),
          "channels_per_layer=0")
    fails(ValueError, lambda: mine_top9(model, pixels(), layers="fc7", cache_dir=tmp_path, progress=False),
          "layer='fc7'")
    assert list(tmp_path.iterdir()) == []


def test_gradient_check_refuses_non_finite_and_batched_images() -> None:
    model, stored = small_model(), pixels()
    tops = top_activations(model, pixel_batches(stored, 3), ("conv1",), k=2, progress=False)
    floats = stored.astype(np.float32)
    floats[0, 0, 0, 0] = np.nan
    fails(ValueError, lambda: projection_differences(model, floats, tops), "pixels have 1 non-finite", "(indices 0)")
    bad = with_non_finite(images())[1:2]
    fails(ValueError, lambda: implementation_check(model, bad), "in 1 of 1 images (indices 0)")
    fails(ValueError, lambda: autograd_projection(model, bad, "conv1", 0, (0, 0)), "non-finite")
    fails(ValueError, lambda: implementation_check(model, images(2)), "image has shape (2, 3, 64, 64)", "[1, 3, S, S]")
    image = normalize(torch.from_numpy(stored[:1]))
    check = implementation_check(model, image.half(), layers="conv1")  # cast to the model's dtype
    assert list(check.errors) == ["conv1"] and check.worst < 1e-4


# -- TrainConfig -------------------------------------------------------------------------------------------


def test_every_profile_is_a_valid_recipe_and_the_choices_agree() -> None:
    for profile in PROFILES.values():
        assert profile.train.replace() == profile.train
    assert DATASETS == sources.DATASETS and PREPROCESSING == sources.PREPROCESSING
    assert INITS == models.INITS and STYLES == models.STYLES


@pytest.mark.parametrize("changes, fragments", [
    ({"epochs": 0}, ("epochs=0 is not valid", "at least 1")),
    ({"epochs": 2.5}, ("epochs=2.5 is not valid", "whole number")),
    ({"batch_size": 0}, ("batch_size=0 is not valid", "at least 1")),
    ({"lr": 0}, ("lr=0 is not valid", "> 0")),
    ({"lr": -0.01}, ("lr=-0.01 is not valid", "> 0")),
    ({"lr": float("nan")}, ("lr=nan is not valid", "finite")),
    ({"lr": "0.01"}, ("lr='0.01' is not valid",)),
    ({"dropout": 1.0}, ("dropout=1.0 is not valid", "[0, 1)")),
    ({"momentum": -0.5}, ("momentum=-0.5 is not valid", "[0, 1)")),
    ({"label_smoothing": 1.0}, ("label_smoothing=1.0 is not valid", "[0, 1)")),
    ({"label_smoothing": -0.1}, ("label_smoothing=-0.1 is not valid", "[0, 1)")),
    ({"weight_decay": -1e-4}, ("weight_decay=-0.0001 is not valid", ">= 0")),
    ({"schedule": "step"}, ("schedule='step' is not valid", "'plateau', 'cosine'")),
    ({"dataset": "mnist"}, ("dataset='mnist' is not valid", "'tiny-imagenet', 'imagenette', 'imagenet'")),
    ({"preprocessing": "zca"}, ("preprocessing='zca' is not valid", "'pixel-mean', 'mean-std'")),
    ({"init": "xavier"}, ("init='xavier' is not valid", "'paper', 'he', 'torch'")),
    ({"widths": [4, 8, 8, 8, 8]}, ("widths=[4, 8, 8, 8, 8]", "tuple of five")),
    ({"seed": -1}, ("seed=-1 is not valid", "at least 0")),
    ({"lrn": 1}, ("lrn=1", "True or False")),
    ({"schedule": "plateau"}, ("warmup_epochs=0.5 needs schedule='cosine'",)),
])
def test_bad_recipe_fails_when_it_is_made(changes, fragments) -> None:
    fails(ValueError, lambda: PROFILES["ci"].train.replace(**changes), *fragments)


def test_unknown_recipe_field_lists_the_valid_ones() -> None:
    fails(TypeError, lambda: PROFILES["ci"].train.replace(epoch=3), "'epoch'", "valid fields: dataset,", "epochs")
    fails(ValueError, lambda: TrainConfig(num_classes=0), "num_classes=0")


# -- the CLI's numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, line", [
    (("train", "--epochs", "-1"),
     "error: argument --epochs: -1 is not valid; give a whole number of at least 1 "
     "(see 'python -m zfcore train --help')"),
    (("evaluate", "--limit", "abc"),
     "error: argument --limit: 'abc' is not valid; give a whole number (see 'python -m zfcore evaluate --help')"),
    (("train", "--stop-after", "0", "--epochs", "2.5"),
     "error: argument --stop-after: 0 is not valid; give a whole number of at least 1 "
     "(see 'python -m zfcore train --help')"),
    (("train", "--renorm-rms", "-0.1"),
     "error: argument --renorm-rms: -0.1 is not valid; give a finite number >= 0 (see 'python -m zfcore train --help')"),
    (("train", "--renorm-rms", "nan"),
     "error: argument --renorm-rms: nan is not valid; give a finite number >= 0 (see 'python -m zfcore train --help')"),
    (("train", "--renorm-rms", "off"),
     "error: argument --renorm-rms: 'off' is not valid; give a number (see 'python -m zfcore train --help')"),
    (("experiment", "table9"),
     "error: experiment='table9' is not valid; valid experiments: ('ablations', 'verdict-runs', 'ci')"),
])
def test_bad_cli_numbers_are_one_line_and_exit_code_2(tmp_path: Path, args, line) -> None:
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "zfcore", *args], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [line]
    assert list(tmp_path.iterdir()) == []  # no run folder made
    assert re.search(r"Traceback|usage:", result.stderr) is None

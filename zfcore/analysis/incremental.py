"""Incremental inference of occluded copies of one image: recompute only what the occluder changes.

An occluder of ``size`` x ``size`` pixels changes only the part of each feature map that lies in its
reach: a window of conv1's output a little larger than the square, a window of pool1's, and so on, until
the windows cover whole maps. Nakandala et al. (2019, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations", SIGMOD) recompute each layer only inside that window and take
the rest from one forward pass of the unoccluded image; this module is the exact form of their idea
(none of their approximations) for :class:`~zfcore.models.ZFNet`, used by
:mod:`zfcore.analysis.occlusion` (Zeiler & Fergus 2014, §4.2, Fig. 7).

**Stages.** The network's steps are read in order as stages: a convolution or a max-pooling, followed
by the steps that act on each position alone (ReLU, the contrast normalisation, dropout in eval mode).
For every occluder position a stage computes a patch of its output of one fixed size (the largest
changed window over all positions, moved inside the map where it would stick out), from a crop of its
input in which each pixel comes from one of three places: the previous stage's patch of this position
(where it was recomputed), the unoccluded image's map (everywhere else), or the padding value (zero
before a convolution, minus infinity before a pooling) outside the map. For the first stage the patch
is the grey occluder itself. Crops are gathered with one index per stage, channels last, so that each
stage is one batched call of :func:`torch.nn.functional.conv2d` or ``max_pool2d`` without padding.

**Where it stops.** Incremental stages go on while the changed window is smaller than the map; the
first stage whose window would cover the whole map (for ZF-64 with the default 16-px square: pool2),
a step that is not one of the above, or the step after the recorded layer ends them. Its input is
assembled whole for every position and the rest of the network runs as usual, on a batch of full maps.

**Exactness.** Every value is computed by the same operations on the same inputs; only the order of
the sums inside a convolution can differ from a full-image call, so results agree with plain forward
passes of the occluded images to float rounding (tested against them and against Captum's
``Occlusion``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zfcore.models import ContrastNorm, ZFNet

__all__ = ["OccludedForward"]

_POINTWISE = (nn.ReLU, ContrastNorm, nn.Dropout)


@dataclass
class _Stage:
    """One convolution or pooling and the pointwise steps after it, with its windows along one axis.

    ``out_start[i]`` is the first row (and column) of the patch computed for the ``i``-th occluder start,
    ``size`` the patch's side; ``in_start[i]`` and ``in_size`` the crop of the input it reads (rows below
    0 or past the map are padding).
    """

    names: list[str]
    op: nn.Module
    pointwise: list[nn.Module]
    kernel: int
    stride: int
    pad_value: float
    out_length: int
    out_start: torch.Tensor
    size: int
    in_start: torch.Tensor
    in_size: int

    def apply(self, crop: torch.Tensor) -> torch.Tensor:
        """The stage on an explicitly padded crop ``[B, C, in_size, in_size]``."""
        if isinstance(self.op, nn.Conv2d):
            x = F.conv2d(crop, self.op.weight, self.op.bias, self.stride)
        else:
            x = F.max_pool2d(crop, self.kernel, self.stride)
        for module in self.pointwise:
            x = module(x)
        return x


def _single(value: int | tuple[int, ...]) -> int | None:
    """The one number of a square kernel, stride, padding or dilation; ``None`` if it is not square."""
    values = (value,) if isinstance(value, int) else tuple(value)
    return int(values[0]) if len(set(values)) == 1 else None


def _spatial_geometry(module: nn.Module) -> tuple[int, int, int, float] | None:
    """``(kernel, stride, padding, pad value)`` of a convolution or pooling it can crop, else ``None``."""
    if isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros" \
            and not isinstance(module.padding, str):
        pad_value = 0.0
    elif isinstance(module, nn.MaxPool2d) and not module.ceil_mode:
        pad_value = float("-inf")
    else:
        return None
    kernel, stride, padding, dilation = (_single(getattr(module, name))
                                         for name in ("kernel_size", "stride", "padding", "dilation"))
    if None in (kernel, stride, padding) or dilation != 1:
        return None
    return kernel, stride, padding, pad_value


class OccludedForward:
    """Forward passes of occluded copies of one image that reuse the unoccluded image's maps.

    Args:
        model: a :class:`~zfcore.models.ZFNet` in eval mode.
        image: the unoccluded network input ``[3, S, S]`` on the model's device, in its dtype.
        baseline: the grey occluder's pixels ``[3, S, S]`` (what an occluded pixel becomes).
        starts: ``[R]`` first row (and first column) of the occluder's positions.
        size: the occluder's side in pixels.
        record: the step whose output is returned with the logits (``model.activation_step(layer)``).

    Call it with the row and column indices (into ``starts``) of a batch of positions to get
    ``(recorded activation [B, ...], logits [B, classes])``.
    """

    def __init__(self, model: ZFNet, image: torch.Tensor, baseline: torch.Tensor, starts: torch.Tensor,
                 size: int, record: str):
        self.record = record
        self.steps = list(model.named_steps())
        if record not in {name for name, _ in self.steps}:
            raise ValueError(f"record={record!r} is not a step of this network; valid steps: "
                             f"{tuple(name for name, _ in self.steps)}")
        device = image.device
        length = image.shape[-1]
        self.starts, self.size = starts.to(device), size
        low = self.starts
        high = low + size - 1
        self.stages: list[_Stage] = []
        index = 0
        recorded = False
        while index < len(self.steps) and not recorded:
            name, module = self.steps[index]
            geometry = _spatial_geometry(module)
            if geometry is None:
                break
            kernel, stride, padding, pad_value = geometry
            out_length = (length + 2 * padding - kernel) // stride + 1
            low_out = torch.div(low + padding - kernel + 1 + stride - 1, stride, rounding_mode="floor").clamp(min=0)
            high_out = torch.div(high + padding, stride, rounding_mode="floor").clamp(max=out_length - 1)
            patch = int((high_out - low_out + 1).max())
            if patch >= out_length:
                break
            out_start = low_out.clamp(max=out_length - patch)
            names, pointwise = [name], []
            recorded = name == record
            index += 1
            while not recorded and index < len(self.steps) and isinstance(self.steps[index][1], _POINTWISE):
                names.append(self.steps[index][0])
                pointwise.append(self.steps[index][1])
                recorded = self.steps[index][0] == record
                index += 1
            self.stages.append(_Stage(names, module, pointwise, kernel, stride, pad_value, out_length, out_start,
                                      patch, out_start * stride - padding,
                                      (patch - 1) * stride + kernel))
            length, low, high = out_length, low_out, high_out
        self.rest = self.steps[index:]

        # the unoccluded maps each stage reads, channels last as rows [H * W, C]
        with torch.no_grad():
            x = image[None]
            self.unoccluded_rows = [image.permute(1, 2, 0).reshape(-1, image.shape[0])]
            for stage in self.stages:
                x = stage.op(x)
                for module in stage.pointwise:
                    x = module(x)
                self.unoccluded_rows.append(x[0].permute(1, 2, 0).reshape(-1, x.shape[1]))
        self.baseline_rows = baseline.permute(1, 2, 0).reshape(-1, baseline.shape[0])
        self.image_length = image.shape[-1]

    def _source_index(self, stage: int, rows: torch.Tensor, cols: torch.Tensor, read_start: torch.Tensor,
                      read_size: int) -> torch.Tensor:
        """For each position (``rows[b]``, ``cols[b]``) and pixel of its ``read_size``-square read from
        ``read_start``, the row of ``[unoccluded map; patches; padding]`` that holds the pixel's value
        in the input of ``stage`` (``len(self.stages)``: the whole map after the last stage)."""
        length = self.image_length if stage == 0 else self.stages[stage - 1].out_length
        if stage == 0:
            patch_start, patch_size = self.starts, self.size
        else:
            patch_start, patch_size = self.stages[stage - 1].out_start, self.stages[stage - 1].size
        offsets = torch.arange(read_size, device=rows.device)
        y = read_start[rows, None] + offsets  # [B, read]
        x = read_start[cols, None] + offsets
        inside_y, inside_x = (y >= 0) & (y < length), (x >= 0) & (x < length)
        local_y, local_x = y - patch_start[rows, None], x - patch_start[cols, None]
        in_patch_y = (local_y >= 0) & (local_y < patch_size)
        in_patch_x = (local_x >= 0) & (local_x < patch_size)
        inside = inside_y[:, :, None] & inside_x[:, None, :]
        in_patch = in_patch_y[:, :, None] & in_patch_x[:, None, :] & inside
        unoccluded = y[:, :, None].clamp(0, length - 1) * length + x[:, None, :].clamp(0, length - 1)
        if stage == 0:  # the "patch" is the grey occluder: the baseline's own pixel
            patched = length * length + unoccluded
            padding = 2 * length * length
        else:
            batch = torch.arange(len(rows), device=rows.device)[:, None, None]
            patched = length * length + (batch * patch_size + local_y[:, :, None]) * patch_size + local_x[:, None, :]
            padding = length * length + len(rows) * patch_size * patch_size
        return torch.where(inside, torch.where(in_patch, patched, unoccluded), padding)

    def _gather(self, stage: int, patch_rows: torch.Tensor | None, index: torch.Tensor, pad_value: float) -> torch.Tensor:
        """``[B, C, n, n]`` (channels-last memory) pixels of the input of ``stage`` at ``index [B, n, n]``."""
        unoccluded = self.unoccluded_rows[stage]
        middle = self.baseline_rows if patch_rows is None else patch_rows
        pad = unoccluded.new_full((1, unoccluded.shape[1]), pad_value)
        source = torch.cat([unoccluded, middle, pad])
        batch, side = index.shape[0], index.shape[1]
        return source.index_select(0, index.reshape(-1)).view(batch, side, side, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def __call__(self, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch_rows = None
        recorded = None
        for number, stage in enumerate(self.stages):
            index = self._source_index(number, rows, cols, stage.in_start, stage.in_size)
            x = stage.apply(self._gather(number, patch_rows, index, stage.pad_value))
            if self.record in stage.names:
                recorded = x
            patch_rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        last = len(self.stages)
        length = self.image_length if last == 0 else self.stages[-1].out_length
        full = torch.zeros(len(self.starts), dtype=torch.long, device=rows.device)
        index = self._source_index(last, rows, cols, full, length)
        x = self._gather(last, patch_rows, index, 0.0)  # padding is never read here
        if recorded is not None:  # recorded in the last stage: its whole map is x
            recorded = x
        for name, module in self.rest:
            if isinstance(module, nn.Conv2d):  # on the small late maps NCHW convolutions are faster on a CPU
                x = x.contiguous()
            x = module(x)
            if name == self.record:
                recorded = x
        return recorded, x

"""Top-9 mining for Fig. 2 (Zeiler & Fergus 2014, §4): the images that excite each feature map most.

For every feature map (channel) of a layer the paper shows the 9 validation images whose strongest
activation of that map (the maximum over positions) is largest, each with the deconvnet projection
of that activation and the image patch it sees. :func:`top_activations` finds them for several layers
in one streaming pass (one forward pass per batch, a batched ``topk`` per layer, no per-channel
loop); :func:`top_projections` projects them all in batches and crops the patches with
:func:`~zfcore.deconv.receptive_field`. :func:`mine_top9` does both and caches the result on disk,
keyed by the checkpoint's weights, the data and the parameters, so a notebook re-run is instant.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from zfcore.checkpoints import read_torch_file
from zfcore.checks import check_layers, check_pixels, check_positive
from zfcore.data.loader import normalize, pixel_batches
from zfcore.deconv import project, receptive_field
from zfcore.devices import model_device
from zfcore.models import CONV_LAYERS, ZFNet
from zfcore.store import cached

__all__ = ["TopActivations", "TopProjections", "content_digest", "mine_top9", "top_activations", "top_projections",
           "weights_digest"]


@dataclass
class TopActivations:
    """The ``k`` strongest images of every channel of one layer, strongest first.

    Attributes:
        layer: the layer name.
        values: ``[C, k]`` the activation (maximum over positions) of the channel in that image.
        image_index: ``[C, k]`` the image's index in the mined data (its order of iteration).
        positions: ``[C, k, 2]`` the (row, col) of that maximum in the activation map.
    """

    layer: str
    values: torch.Tensor
    image_index: torch.Tensor
    positions: torch.Tensor

    @property
    def dead_fraction(self) -> float:
        """The fraction of channels that never fire (largest activation 0) on the mined images."""
        return float((self.values[:, 0] <= 0).float().mean())


@dataclass
class TopProjections:
    """Projections and patches of a :class:`TopActivations`: ``[C, k, 3, S, S]`` float and uint8.

    ``projections`` are deconvnet projections in pixel space (normalise them for display with
    :func:`zfcore.plots.to_display`); ``patches`` are the image pixels inside each activation's
    receptive field, placed at the same spot of an ``S x S`` canvas (grey elsewhere) and
    ``boxes`` ``[C, k, 4]`` give (top, left, bottom, right).
    """

    layer: str
    projections: torch.Tensor
    patches: torch.Tensor
    boxes: torch.Tensor


@torch.no_grad()
def top_activations(model: ZFNet, batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...]],
                    layers: Sequence[str] = CONV_LAYERS, k: int = 9, *, progress: bool = True) -> dict[str, TopActivations]:
    """The ``k`` images with the largest activation of every channel of ``layers``, in one pass.

    Args:
        model: the network (put in eval mode for the pass, restored after); each batch is moved to
            its device.
        batches: float image batches ``[B, 3, S, S]`` (or ``(images, labels)`` tuples), in a fixed
            order: image indices count along it.
        layers: conv layers to mine (default conv1-conv5), or one layer name.
        k: images per channel (the paper: 9).
        progress: show a tqdm bar.

    Returns:
        layer -> :class:`TopActivations` on the CPU (fewer than ``k`` images per channel if there are
        fewer images).

    Raises:
        ValueError: ``k`` not a positive int; a layer that is not a conv layer of ``model``; a batch
            that is not finite float ``[B, 3, S, S]`` (naming its non-finite values and images); no
            batches at all.
    """
    check_positive("k", k)
    layers = _conv_layers(model, layers)
    best: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # values, image, flat position
    widths: dict[str, int] = {}
    seen = 0
    was_training = model.training
    model.eval()
    try:
        bar = tqdm(batches, desc="mining " + ",".join(layers), disable=not progress, unit="batch")
        for number, batch in enumerate(bar):
            try:
                images = model.prepare_images(batch[0] if isinstance(batch, (tuple, list)) else batch)
            except ValueError as error:
                raise ValueError(f"batch {number} (images from index {seen}): {error}") from None
            trace = model.trace(images, layers=layers)
            index = torch.arange(seen, seen + images.shape[0], device=images.device)
            for layer in layers:
                activation = trace.activations[layer].float()
                values, flat_position = activation.flatten(2).max(dim=2)  # [B, C]
                candidates = (values.T, index[None, :].expand_as(values.T), flat_position.T)  # each [C, B]
                if layer in best:
                    candidates = tuple(torch.cat([old, new], dim=1) for old, new in zip(best[layer], candidates))
                top_values, order = candidates[0].topk(min(k, candidates[0].shape[1]), dim=1)
                best[layer] = (top_values, candidates[1].gather(1, order), candidates[2].gather(1, order))
                widths[layer] = activation.shape[-1]
            seen += images.shape[0]
    finally:
        model.train(was_training)
    if not seen:
        raise ValueError("batches gave no images: nothing to mine")
    result = {}
    for layer in layers:
        values, image_index, flat_position = (tensor.cpu() for tensor in best[layer])
        positions = torch.stack([flat_position // widths[layer], flat_position % widths[layer]], dim=-1)
        result[layer] = TopActivations(layer, values, image_index, positions)
    return result


@torch.no_grad()
def top_projections(model: ZFNet, pixels: np.ndarray | torch.Tensor, top: TopActivations, *,
                    channels: Sequence[int] | None = None, mode: str = "deconvnet", chunk: int = 512,
                    progress: bool = True) -> TopProjections:
    """Deconvnet projections and receptive-field patches of the top activations, in batches.

    Args:
        model: the network mined by :func:`top_activations`.
        pixels: the mined images as uint8 ``[N, S, S, 3]`` (indexed by ``top.image_index``).
        top: one layer's :class:`TopActivations`.
        channels: project only these channels (default: all).
        mode: ``"deconvnet"`` (the paper), ``"backprop"`` or ``"guided"``.
        chunk: projections per batched pass.
        progress: show a tqdm bar.

    The projections run on the model's device; the result is on the CPU.

    Raises:
        ValueError: ``pixels`` not uint8 ``[N, S, S, 3]``; a channel out of range; ``chunk`` < 1; as
            :func:`~zfcore.deconv.project` (unknown mode).
    """
    check_pixels("pixels", pixels)
    check_positive("chunk", chunk)
    device = model_device(model)
    width = top.values.shape[0]
    chosen = torch.arange(width) if channels is None else torch.as_tensor(list(channels), dtype=torch.long)
    outside = chosen[(chosen < 0) | (chosen >= width)].tolist()
    if outside:
        raise ValueError(f"channels={outside} out of range for {top.layer!r}: valid 0..{width - 1}")
    k = top.values.shape[1]
    image_index = top.image_index[chosen].flatten()
    channel_of = chosen[:, None].expand(-1, k).flatten()
    positions = top.positions[chosen].flatten(0, 1)
    # the mined images only, copied (a read-only memory map is never wrapped in place); row r is image_index[r]
    selected = pixels[image_index] if isinstance(pixels, torch.Tensor) else torch.from_numpy(
        np.asarray(pixels)[image_index.numpy()])
    outputs = []
    for start in tqdm(range(0, len(image_index), chunk), desc=f"projecting {top.layer}", disable=not progress):
        part = slice(start, start + chunk)
        images = normalize(selected[part]).contiguous().to(device)
        outputs.append(project(model, images, top.layer, channel_of[part], positions[part], mode=mode).cpu())
    projections = torch.cat(outputs).view(len(chosen), k, *outputs[0].shape[1:])
    boxes = torch.tensor([receptive_field(model, top.layer, tuple(p.tolist())) for p in positions]).view(len(chosen), k, 4)
    canvas = torch.full_like(selected, 128)
    for row, (top_px, left, bottom, right) in enumerate(boxes.view(-1, 4).tolist()):
        canvas[row, top_px:bottom, left:right] = selected[row, top_px:bottom, left:right]
    patches = canvas.permute(0, 3, 1, 2).reshape(len(chosen), k, 3, *selected.shape[1:3])
    return TopProjections(top.layer, projections, patches, boxes)


def content_digest(array: np.ndarray | torch.Tensor, chunk: int = 4096) -> str:
    """A short SHA-256 of an array's shape, dtype and bytes: what cached results of that data are keyed by."""
    digest = hashlib.sha256(f"{tuple(array.shape)}-{array.dtype}".encode())
    for start in range(0, len(array), chunk):
        part = array[start : start + chunk]
        part = part.contiguous().numpy() if isinstance(part, torch.Tensor) else np.ascontiguousarray(part)
        digest.update(part.tobytes())
    return digest.hexdigest()[:16]


def weights_digest(model: torch.nn.Module) -> str:
    """A short SHA-256 of the model's weights: what cached results are keyed by."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def mine_top9(model: ZFNet, pixels: np.ndarray, *, layers: Sequence[str] = CONV_LAYERS,
              k: int = 9, channels_per_layer: int | None = None, batch_size: int = 500,
              cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, tuple[TopActivations, TopProjections]]:
    """Mine ``layers`` over ``pixels`` and project the top-``k`` of each channel; cached on disk.

    Args:
        model: the network.
        pixels: uint8 ``[N, S, S, 3]`` images (e.g. the Tiny ImageNet validation cache).
        layers, k: as in :func:`top_activations`.
        channels_per_layer: project only the first this many channels of each layer (default: all).
        batch_size: images per forward pass while mining.
        cache_dir: where results are cached (default: ``<data root>/cache/top9``).
        progress: show tqdm bars.

    The cache key is made of what produced the result: the weights' digest, the pixels' digest
    (:func:`content_digest`) and the parameters (:func:`zfcore.store.cached`). A cache file that cannot
    be read (it is never unpickled beyond tensors and these dataclasses), was made from other inputs or
    was changed is mined again and replaced, with one warning naming it.

    Raises:
        ValueError: as :func:`top_activations` and :func:`top_projections`; ``channels_per_layer`` or
            ``batch_size`` < 1.
    """
    from zfcore.data.locate import data_root

    check_pixels("pixels", pixels)
    check_positive("k", k)
    check_positive("batch_size", batch_size)
    if channels_per_layer is not None:
        check_positive("channels_per_layer", channels_per_layer)
    layers = _conv_layers(model, layers)
    weights, data = weights_digest(model), content_digest(pixels)
    name = f"{weights}-{data}-{'_'.join(layers)}-k{k}-c{channels_per_layer}"
    cache_file = Path(cache_dir or data_root() / "cache" / "top9") / f"{name}.pt"

    def mine() -> dict[str, tuple[TopActivations, TopProjections]]:
        tops = top_activations(model, pixel_batches(pixels, batch_size), layers, k, progress=progress)
        result = {}
        for layer, top in tops.items():
            channels = None if channels_per_layer is None else range(min(channels_per_layer, top.values.shape[0]))
            result[layer] = (top, top_projections(model, pixels, top, channels=channels, progress=progress))
        return result

    # a cache file can never run code; a bad one is mined again and replaced
    return cached({"weights": weights, "pixels": data, "layers": list(layers), "k": k,
                   "channels_per_layer": channels_per_layer}, mine, path=cache_file, load=_read_top9_cache,
                  what="top-9 cache", again="mining again and replacing it")


def _read_top9_cache(path: Path) -> object:
    """A top-9 cache file, read without running code (:func:`~zfcore.checkpoints.read_torch_file`)."""
    return read_torch_file(path, what="top-9 cache", allow=(TopActivations, TopProjections))


def _conv_layers(model: ZFNet, layers: Sequence[str] | str) -> tuple[str, ...]:
    """``layers`` as a tuple (one name allowed), each checked to be a conv layer of ``model``."""
    return check_layers("layers", layers, [layer for layer in CONV_LAYERS if layer in model.layer_names],
                        what="conv layer")

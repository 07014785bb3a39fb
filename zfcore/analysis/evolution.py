"""Feature evolution during training (Zeiler & Fergus 2014, §4, Fig. 4).

Fig. 4 shows, for a few feature maps of every layer, the strongest activation across the training
set projected to pixels at epochs 1, 2, 5, 10, 20, 30, 40 and 64. The paper's reading: "the lower
layers of the model can be seen to converge within a few epochs. However, the upper layers only
develop after a considerable number of epochs (40-50)". :func:`evolution` recomputes the figure from
the conv-weight snapshots the trainer keeps, and measures the claim per layer: how close each
snapshot's filters are to the final ones (mean correlation of each filter with its final self) and
how close its projections are (mean correlation of the chosen maps' projections with the final).
:func:`first_epoch_reaching` turns the filter curves into one number per layer: when it settled.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from zfcore.analysis.top9 import top_activations
from zfcore.checkpoints import CheckpointError, load_checkpoint, read_torch_file
from zfcore.data.loader import normalize, pixel_batches
from zfcore.deconv import project
from zfcore.devices import model_device
from zfcore.models import CONV_LAYERS, ZFNet

__all__ = ["Evolution", "evolution", "first_epoch_reaching", "load_snapshots"]


@dataclass
class Evolution:
    """Fig. 4 data and the convergence measurements.

    Attributes:
        epochs: the snapshot epochs, ascending (the last is the reference for "final").
        channels: layer -> the feature maps shown.
        projections: layer -> ``[E, M, 3, S, S]`` float16 projections of each map's strongest activation.
        image_index: layer -> ``[E, M]`` index (in the probe images) of the image giving it.
        filter_correlation: layer -> ``[E]`` mean over all filters of corr(filter at epoch, final filter).
        projection_correlation: layer -> ``[E]`` mean over the shown maps of corr(projection, final projection).
        conv1_filters: ``[E, 96, 3, k, k]`` float16, the first-layer filters at each epoch.
    """

    epochs: list[int]
    channels: dict[str, list[int]]
    projections: dict[str, torch.Tensor]
    image_index: dict[str, torch.Tensor]
    filter_correlation: dict[str, torch.Tensor]
    projection_correlation: dict[str, torch.Tensor]
    conv1_filters: torch.Tensor

    def save(self, path: str | Path) -> None:
        torch.save(self.__dict__, path)

    @classmethod
    def load(cls, path: str | Path) -> "Evolution":
        """The Fig. 4 data :meth:`save` wrote (e.g. ``data/reference/fig4.pt``), loaded without running code.

        Raises:
            CheckpointError: missing, corrupt or unsafe file (:func:`~zfcore.checkpoints.read_torch_file`),
                or one that does not hold exactly the fields of :class:`Evolution`.
        """
        state = read_torch_file(path, what="Fig. 4 data")
        expected = [field.name for field in fields(cls)]
        if not isinstance(state, dict) or sorted(state) != sorted(expected):
            held = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"Fig. 4 data {path} holds {held}, expected the fields {expected}: pass a file "
                                  f"written by Evolution.save (e.g. data/reference/fig4.pt)")
        return cls(**state)


def load_snapshots(folder: str | Path) -> dict[int, dict[str, torch.Tensor]]:
    """``{epoch: conv weights}`` from the ``snapshots/epoch_NNN.pt`` files a training run wrote.

    Raises:
        FileNotFoundError: no snapshot in ``folder``.
        CheckpointError: a file that is not a snapshot (:func:`~zfcore.checkpoints.load_checkpoint`).
    """
    files = sorted(Path(folder).glob("epoch_*.pt"))
    if not files:
        raise FileNotFoundError(f"no snapshots (epoch_NNN.pt) in {folder}: train with zfcore.train first")
    return {(state := load_checkpoint(file, kind="snapshot"))["epoch"]: state["features"] for file in files}


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of matching rows of ``a`` and ``b`` (``[N, D]`` each)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


@torch.no_grad()
def evolution(model: ZFNet, snapshots: dict[int, dict[str, torch.Tensor]], pixels: np.ndarray, *,
              maps_per_layer: int = 6, layers: Sequence[str] = CONV_LAYERS, batch_size: int = 500,
              progress: bool = True) -> Evolution:
    """Fig. 4 for ``snapshots``: strongest activation of chosen maps per epoch, projected; convergence curves.

    Args:
        model: a network of the snapshots' architecture (its conv weights are replaced in turn; the
            model passed in is not modified: a copy is used). Everything runs on its device; the
            result is on the CPU.
        snapshots: ``{epoch: features state dict}`` (:func:`load_snapshots`).
        pixels: uint8 ``[N, S, S, 3]`` probe images standing in for "the training set".
        maps_per_layer: how many feature maps per layer to show; chosen as the maps with the largest
            final activation, spread over the ranking (so not only the strongest).
        layers: conv layers to follow.
        batch_size: images per forward pass.
        progress: show a tqdm bar.
    """
    network = copy.deepcopy(model).eval()
    device = model_device(network)
    epochs = sorted(snapshots)
    final = snapshots[epochs[-1]]

    def use(weights: dict[str, torch.Tensor]) -> None:
        network.features.load_state_dict({k: v.float() for k, v in weights.items()})

    def strongest() -> dict:
        """Each map's strongest activation over ``pixels`` with the weights in use."""
        return top_activations(network, pixel_batches(pixels, batch_size), layers, k=1, progress=False)

    use(final)
    final_top = strongest()
    channels = {}
    for layer in layers:
        ranking = final_top[layer].values[:, 0].argsort(descending=True)
        alive = ranking[: int((final_top[layer].values[:, 0] > 0).sum())]
        picks = np.linspace(0, max(len(alive) - 1, 0), maps_per_layer).round().astype(int)
        channels[layer] = sorted({int(alive[i]) for i in picks}) if len(alive) else list(range(maps_per_layer))
    projections = {layer: [] for layer in layers}
    image_index = {layer: [] for layer in layers}
    for epoch in tqdm(epochs, desc="Fig. 4 snapshots", disable=not progress):
        use(snapshots[epoch])
        tops = final_top if epoch == epochs[-1] else strongest()
        for layer in layers:
            chosen = torch.tensor(channels[layer])
            index = tops[layer].image_index[chosen, 0]
            images = normalize(torch.from_numpy(np.ascontiguousarray(pixels[index.numpy()]))).contiguous().to(device)
            projections[layer].append(project(network, images, layer, chosen, tops[layer].positions[chosen, 0]).cpu())
            image_index[layer].append(index)
    stacked = {layer: torch.stack(projections[layer]) for layer in layers}
    projection_correlation = {
        layer: torch.stack([_correlation(p.flatten(1), stacked[layer][-1].flatten(1)).mean() for p in stacked[layer]])
        for layer in layers
    }
    filter_correlation = {
        layer: torch.stack([
            _correlation(snapshots[e][f"{layer}.weight"].float().flatten(1), final[f"{layer}.weight"].float().flatten(1)).mean()
            for e in epochs
        ])
        for layer in layers
    }
    return Evolution(
        epochs=epochs, channels=channels,
        projections={layer: stacked[layer].half() for layer in layers},
        image_index={layer: torch.stack(image_index[layer]) for layer in layers},
        filter_correlation=filter_correlation, projection_correlation=projection_correlation,
        conv1_filters=torch.stack([snapshots[e]["conv1.weight"] for e in epochs]).half(),
    )


def first_epoch_reaching(evolution: Evolution, threshold: float = 0.9) -> dict[str, int | None]:
    """Per layer, the first snapshot epoch whose filters correlate at least ``threshold`` with the final ones.

    Our measure of when a layer has "converged" in the sense of the paper's Fig. 4 (§4): "the lower
    layers of the model can be seen to converge within a few epochs", the upper ones "only develop
    after a considerable number of epochs (40-50)".

    Args:
        evolution: the Fig. 4 data (:func:`evolution`); its ``filter_correlation`` is read.
        threshold: the mean filter correlation with the final snapshot that counts as settled, in [-1, 1].

    Returns:
        ``{layer: epoch}`` in the layer order of ``evolution.filter_correlation``; ``None`` for a layer
        that never reaches ``threshold`` (the final snapshot always does, with correlation 1).
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold!r} is not valid; a correlation threshold lies in [-1, 1]")
    first = {}
    for layer, values in evolution.filter_correlation.items():
        # compared at the curve's own precision, so that a stored 0.9 counts as reaching 0.9
        reached = [epoch for epoch, settled in zip(evolution.epochs, (values >= threshold).tolist()) if settled]
        first[layer] = reached[0] if reached else None
    return first

"""Feature evolution during training (Zeiler & Fergus 2014, §4, Fig. 4).

Fig. 4 shows, for a few feature maps of every layer, the strongest activation across the training
set projected to pixels at epochs 1, 2, 5, 10, 20, 30, 40 and 64. The paper's reading: "the lower
layers of the model can be seen to converge within a few epochs. However, the upper layers only
develop after a considerable number of epochs (40-50)". :func:`evolution` recomputes the figure from
the conv-weight snapshots the trainer keeps, and measures the claim per layer: how close each
snapshot's filters are to the final ones (mean correlation of each filter with its final self) and
how close its projections are (mean correlation of the chosen maps' projections with the final).
:func:`first_epoch_reaching` turns the filter curves into one number per layer: when it settled;
:func:`settling_epoch` does the same between snapshots (linear interpolation), and :func:`c2_verdict` scores the
claim: the order of the layers under three thresholds, and the speed of conv1 with a bootstrap interval over
its filters.
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
from zfcore.profiles import PAPER_EPOCHS
from zfcore.stats import bootstrap
from zfcore.verdicts import Verdict

__all__ = ["FEW_EPOCHS", "SETTLED", "THRESHOLDS", "Evolution", "c2_verdict", "conv1_filter_correlation",
           "convergence_table", "evolution", "first_epoch_reaching", "load_snapshots", "settling_epoch"]

SETTLED = 0.9
"""The mean correlation of a layer's filters with their final values that counts as "converged"."""
THRESHOLDS = (0.8, SETTLED, 0.95)
"""The thresholds under which C2's order must hold (the control: an order that holds at one threshold only is
an artefact of the threshold)."""
FEW_EPOCHS = 10
"""The paper's "within a few epochs", generously: its Fig. 4 snapshot at epoch 10 of 70; as a share of training,
``FEW_EPOCHS / PAPER_EPOCHS`` (14 %)."""
BOOTSTRAP_DRAWS = 2000
"""Bootstrap resamples of conv1's filters for the interval on its settling epoch."""


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


def conv1_filter_correlation(evolution: Evolution) -> torch.Tensor:
    """``[E, C]``: the correlation of every conv1 filter at each snapshot with the same filter at the last one.

    Read from ``evolution.conv1_filters`` (float16), the only layer whose every filter the Fig. 4 data keep; its
    mean over filters is ``filter_correlation["conv1"]`` up to float16 rounding.
    """
    filters = evolution.conv1_filters.float().flatten(2)  # [E, C, D]
    return torch.stack([_correlation(snapshot, filters[-1]) for snapshot in filters])


def settling_epoch(epochs: Sequence[int], curves: torch.Tensor, threshold: float = SETTLED) -> torch.Tensor:
    """The epoch at which each curve first reaches ``threshold``, interpolated linearly between snapshots.

    Args:
        epochs: the ``E`` snapshot epochs, ascending.
        curves: ``[..., E]`` correlations with the final snapshot, one curve per leading index.
        threshold: in [-1, 1].

    Returns:
        ``[...]`` float epochs: the first snapshot's epoch where a curve starts at or above ``threshold`` (nothing
        is known before it), ``inf`` where a curve never reaches it.

    Raises:
        ValueError: ``threshold`` outside [-1, 1]; ``curves`` whose last dimension is not ``len(epochs)``;
            ``epochs`` not strictly ascending.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold!r} is not valid; a correlation threshold lies in [-1, 1]")
    times = torch.as_tensor(list(epochs), dtype=torch.float64)
    if curves.shape[-1] != len(times) or len(times) == 0:
        raise ValueError(f"curves has shape {tuple(curves.shape)}; its last dimension must be the {len(times)} "
                         f"snapshot epochs")
    if (times[1:] <= times[:-1]).any():
        raise ValueError(f"epochs={list(epochs)} is not valid; give the snapshot epochs in ascending order")
    reached = curves >= threshold  # at the curves' own precision, so that a stored 0.9 counts as reaching 0.9
    curves = curves.double()
    first = reached.double().argmax(-1)  # the first snapshot at or above the threshold (0 if none)
    before = (first - 1).clamp_min(0)
    low, high = curves.gather(-1, before[..., None])[..., 0], curves.gather(-1, first[..., None])[..., 0]
    fraction = ((threshold - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    epoch = times[before] + fraction * (times[first] - times[before])
    epoch = torch.where(first == 0, times[0], epoch)
    return torch.where(reached.any(-1), epoch, torch.tensor(float("inf"), dtype=torch.float64))


def convergence_table(evolution: Evolution, total_epochs: int) -> str:
    """Per layer, as a Markdown table: the mean filter correlation with the final filters at each snapshot, the
    first snapshot epoch reaching each of :data:`THRESHOLDS`, and the settling epoch at :data:`SETTLED` between
    snapshots (:func:`settling_epoch`) with its share of ``total_epochs``.

    Raises:
        ValueError: ``total_epochs`` not a whole number at least the last snapshot epoch.
    """
    _check_total_epochs(evolution, total_epochs)
    first = {threshold: first_epoch_reaching(evolution, threshold) for threshold in THRESHOLDS}
    lines = [f"| layer | filter correlation at epochs {', '.join(map(str, evolution.epochs))} | "
             + " | ".join(f"first epoch ≥ {threshold}" for threshold in THRESHOLDS)
             + f" | settles at {SETTLED} (between snapshots) |", "|---" * (len(THRESHOLDS) + 3) + "|"]
    for layer, curve in evolution.filter_correlation.items():
        settled = float(settling_epoch(evolution.epochs, curve, SETTLED))
        values = " ".join(f"{value:.2f}" for value in curve.tolist())
        lines.append(f"| {layer} | {values} | " + " | ".join(str(first[t][layer]) for t in THRESHOLDS)
                     + f" | epoch {settled:.1f} ({100 * settled / total_epochs:.0f} % of {total_epochs}) |")
    return "\n".join(lines)


def c2_verdict(evolution: Evolution, total_epochs: int) -> Verdict:
    """C2 (§4, Fig. 4): do the lower layers converge first, and within a few epochs?

    The rule (stated in the chapter above the numbers; written after the chapter's earlier table had shown the
    first epochs at 0.9):

    - **order**: at a threshold, the first snapshot epochs at which each layer's mean filter correlation with its
      final filters reaches it are non-decreasing from conv1 to conv5, with conv5 later than conv1. It must hold
      at every one of :data:`THRESHOLDS` (the control); at none: ``differ``; at some only: ``inconclusive``.
    - **speed**: conv1's settling epoch at :data:`SETTLED` (:func:`settling_epoch`, between snapshots), as a share
      of ``total_epochs``, with a 95 % bootstrap interval over conv1's filters, against the paper's "few epochs",
      ``FEW_EPOCHS / PAPER_EPOCHS``: the interval below it agrees, above it differs, across it is inconclusive.

    ``agree``: order and speed agree; ``partly``: the order holds and the speed differs; ``differ``: the order
    fails at every threshold; ``inconclusive`` otherwise.

    Args:
        evolution: the Fig. 4 data (``filter_correlation`` for conv1 ... conv5, ``conv1_filters``).
        total_epochs: the run's length in epochs (the last snapshot may come before it).

    Raises:
        ValueError: ``filter_correlation`` without all of conv1 ... conv5; ``total_epochs`` not a whole number at
            least the last snapshot epoch; fewer than 2 conv1 filters.
    """
    missing = [layer for layer in CONV_LAYERS if layer not in evolution.filter_correlation]
    if missing:
        raise ValueError(f"evolution.filter_correlation lacks {missing}; C2 compares all of {CONV_LAYERS}")
    _check_total_epochs(evolution, total_epochs)
    first = {threshold: first_epoch_reaching(evolution, threshold) for threshold in THRESHOLDS}

    def ordered(epochs: dict[str, int | None]) -> bool:
        order = [epochs[layer] if epochs[layer] is not None else float("inf") for layer in CONV_LAYERS]
        return order == sorted(order) and order[-1] > order[0]

    order_holds = {threshold: ordered(first[threshold]) for threshold in THRESHOLDS}
    per_filter = conv1_filter_correlation(evolution).T  # [C, E]
    epochs = evolution.epochs

    def share(indices: torch.Tensor) -> torch.Tensor:
        """conv1's settling epoch / total_epochs for the mean curve of the filters ``indices`` ([..., n] floats)."""
        return settling_epoch(epochs, per_filter[indices.long()].mean(-2), SETTLED) / total_epochs

    speed = bootstrap(torch.arange(len(per_filter), dtype=torch.float64), share, draws=BOOTSTRAP_DRAWS, seed=0)
    few = FEW_EPOCHS / PAPER_EPOCHS
    speed_agrees = None if speed.low <= few <= speed.high else speed.high < few
    settled = {layer: float(settling_epoch(epochs, evolution.filter_correlation[layer], SETTLED))
               for layer in CONV_LAYERS}
    if not any(order_holds.values()):
        outcome = "differ"
    elif all(order_holds.values()) and speed_agrees is not None:
        outcome = "agree" if speed_agrees else "partly"
    else:
        outcome = "inconclusive"

    def sweep(threshold: float) -> str:
        return "/".join(str(first[threshold][layer]) for layer in CONV_LAYERS)

    reason = (f"first epochs at {', '.join(f'{t}: {sweep(t)}' for t in THRESHOLDS)} (conv1/.../conv5 of "
              f"{total_epochs}): the order holds at {sum(order_holds.values())} of {len(THRESHOLDS)} thresholds; conv1 "
              f"settles at {100 * speed.value:.0f} % of training [{100 * speed.low:.0f}, {100 * speed.high:.0f}], "
              f"against the paper's few epochs ({100 * few:.0f} %); conv5 at "
              f"{100 * settled['conv5'] / total_epochs:.0f} % (the paper: 40-50 of 70, "
              f"{100 * 40 / PAPER_EPOCHS:.0f}-{100 * 50 / PAPER_EPOCHS:.0f} %).")
    settle = ("" if outcome != "inconclusive" else
              "snapshots every epoch and per-filter correlations of every layer, so that each layer's settling epoch "
              "has an interval")
    return Verdict(
        "C2",
        measure=(f"conv1's settling epoch as a share of training: when the mean correlation of its filters with their "
                 f"final values first reaches SETTLED = {SETTLED} (linear between snapshots), the layer the paper says "
                 f"converges \"within a few epochs\"; the order of all five layers is the rule's other half"),
        estimate=speed,
        control=(f"the threshold: the order must hold at each of THRESHOLDS = {THRESHOLDS}, not just at {SETTLED} "
                 f"(holds at {', '.join(str(t) for t, held in order_holds.items() if held) or 'none'})"),
        control_estimate=None,
        rule=(f"order: at every threshold of THRESHOLDS = {THRESHOLDS}, the first snapshot epochs reaching it rise "
              f"(never fall) from conv1 to conv5 and conv5's is later than conv1's (at none: differ; at some: "
              f"inconclusive); speed: conv1's settling share's 95 % interval (bootstrap over its filters) below "
              f"FEW_EPOCHS / PAPER_EPOCHS = {FEW_EPOCHS}/{PAPER_EPOCHS} = {100 * few:.0f} % agrees, above it "
              f"differs, across it is inconclusive. Agree: order and speed; partly: order, not speed."),
        outcome=outcome, reason=reason, settle=settle,
        details={"total_epochs": total_epochs, "epochs": list(epochs), "few_epochs_share": few,
                 "first_epoch": {str(t): first[t] for t in THRESHOLDS},
                 "order_holds": {str(t): held for t, held in order_holds.items()},
                 "settling_epoch": {layer: epoch if np.isfinite(epoch) else None for layer, epoch in settled.items()},
                 "conv1_filters": len(per_filter)},
        scale=100, digits=1, unit=" %")


def _check_total_epochs(evolution: Evolution, total_epochs: object) -> None:
    """``ValueError`` unless ``total_epochs`` is a whole number at least the last snapshot epoch."""
    if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < evolution.epochs[-1]:
        raise ValueError(f"total_epochs={total_epochs!r} is not valid; give the run's length, a whole number >= the "
                         f"last snapshot epoch {evolution.epochs[-1]}")

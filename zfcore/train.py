"""The paper's training recipe (§3) on CPU or GPU, resumable, with DDP through ``torchrun``.

``train(config, out_dir)`` runs SGD with momentum, dropout in fc6/fc7, filter renormalisation to
RMS 0.1 after every step, and the learning-rate schedule of ``config`` (the paper's: x0.1 on
plateaus). Each epoch it writes, atomically, ``checkpoint.pt`` (model, optimizer, scheduler, epoch,
RNG states, config, metric history) and ``metrics.csv``; at the paper's Fig. 4 epochs (scaled to the
run) it keeps ``snapshots/epoch_NNN.pt`` with the conv weights in fp16. ``resume=`` continues a run
and reaches bitwise the weights of an uninterrupted run on a CPU.

Speed: bf16 autocast + channels-last on CPUs with AVX512-BF16 (about 2x), bf16 (or fp16 with a grad
scaler) autocast on CUDA, optional ``torch.compile``. Under ``torchrun`` every process trains on its
shard (:class:`~torch.utils.data.distributed.DistributedSampler`, ``set_epoch`` each epoch) with
``gloo`` on CPU or ``nccl`` on GPU; ``config.batch_size`` is the global batch.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from zfcore.checkpoints import build_model, checkpoint_state, code_version, load_checkpoint, save_checkpoint
from zfcore.data.sources import TrainingData, training_data
from zfcore.devices import PRECISIONS, autocast, autocast_dtype
from zfcore.evaluation import evaluate
from zfcore.models import renormalize_filters
from zfcore.profiles import TrainConfig

__all__ = ["METRIC_FIELDS", "StepCallback", "read_metrics", "train"]

METRIC_FIELDS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "img_per_s",
                 "epoch_seconds", "wall_seconds")
StepCallback = Callable[[int, int, float], None]
"""Called after every optimiser step as ``callback(epoch, step, loss)``; raising stops the run."""


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: str | Path | None = None,
    callbacks: Iterable[StepCallback] = (),
    precision: str = "auto",
    progress: bool = True,
    data: TrainingData | None = None,
    stop_after: int | None = None,
) -> list[dict[str, float]]:
    """Train ``config`` into ``out_dir``; returns the per-epoch metric rows.

    Args:
        config: the recipe (see :mod:`zfcore.profiles`).
        out_dir: where ``checkpoint.pt``, ``metrics.csv`` and ``snapshots/`` go. Refuses to overwrite an
            earlier run's checkpoint unless ``resume`` points at it.
        resume: a ``checkpoint.pt`` to continue from (same architecture, else :class:`CheckpointError`).
        callbacks: called after every step (see :data:`StepCallback`).
        precision: ``"auto"`` (bf16 autocast where the hardware has it), ``"fp32"`` or ``"bf16"``.
        progress: show a tqdm bar with loss and img/s.
        data: batches to use instead of those ``config`` names (tests).
        stop_after: end after this many epochs (counted from the run's start), with the learning-rate
            schedule still planned for ``config.epochs``; resume later to go on. Default: all epochs.

    A resumed run keeps the schedule it was started with: ``config.epochs`` must equal the
    checkpoint's under the cosine schedule (whose shape depends on it), else :class:`ValueError`;
    use ``stop_after`` to end a run early.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; valid values: {PRECISIONS}")
    if config.schedule not in ("plateau", "cosine"):
        raise ValueError(f"schedule={config.schedule!r} is not valid; valid schedules: ('plateau', 'cosine')")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after={stop_after!r}: must be at least 1 epoch (or None for all)")
    out_dir = Path(out_dir)
    checkpoint_file = out_dir / "checkpoint.pt"
    state = load_checkpoint(resume, expect=config) if resume is not None else None
    if state is not None and config.schedule == "cosine" and state["config"]["epochs"] != config.epochs:
        raise ValueError(
            f"epochs={config.epochs} but {resume} was trained with a cosine schedule planned for "
            f"{state['config']['epochs']} epochs; changing the total would make the learning rate jump. Resume "
            f"with epochs={state['config']['epochs']} (the run's own), or end early with stop_after=N; "
            f"nothing was changed"
        )
    if state is None and checkpoint_file.exists():
        raise FileExistsError(
            f"{checkpoint_file} exists: pass resume={checkpoint_file} to continue that "
            f"run, or choose another output folder; nothing was overwritten"
        )
    rank, world, device = _setup_distributed()
    main_process = rank == 0
    _seed_everything(config.seed)
    model = build_model(config).to(device, memory_format=torch.channels_last)
    optimizer = _optimizer(model, config)
    data = data or training_data(config, num_replicas=world, rank=rank, device=device)
    steps_per_epoch = len(data.train)
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    history: list[dict[str, float]] = []
    start_epoch, wall_before = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], state["history"]
        wall_before = history[-1]["wall_seconds"] if history else 0.0
        _set_rng_states(state["rng"])
    fast_dtype = autocast_dtype(device, precision)
    scaler = torch.amp.GradScaler("cuda") if fast_dtype == torch.float16 else None
    network: nn.Module = model
    if world > 1:
        network = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        network = torch.compile(network)
    started = time.perf_counter()
    snapshot_epochs = set(config.fig4_epochs())
    end_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(start_epoch, end_epoch):
        data.train.set_epoch(epoch)
        network.train()
        epoch_start = time.perf_counter()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
        bar = tqdm(data.train, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (progress and main_process),
                   mininterval=5, unit="batch")
        for step, (images, labels) in enumerate(bar):
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, fast_dtype):
                logits = network(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            if config.renorm_rms > 0:
                renormalize_filters(model, config.renorm_rms)
            if config.schedule == "cosine":
                scheduler.step()
            with torch.no_grad():
                totals += torch.stack([loss.detach().double() * len(labels),
                                       (logits.argmax(1) == labels).sum().double(),
                                       torch.tensor(float(len(labels)), dtype=torch.float64, device=device)])
            for callback in callbacks:
                callback(epoch, step, loss.item())
            if step % 20 == 0 and main_process:
                seen = (step + 1) * len(labels) * world
                bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{seen / (time.perf_counter() - epoch_start):.0f}")
        if world > 1:
            dist.all_reduce(totals)
        train_seconds = time.perf_counter() - epoch_start
        row: dict[str, float] = {}
        if main_process:
            val = evaluate(model, data.val, device=device, precision=precision)
            loss_sum, correct, count = totals.tolist()
            row = {
                "epoch": epoch + 1, "train_loss": loss_sum / count, "train_top1": correct / count,
                "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
                "lr": optimizer.param_groups[0]["lr"], "img_per_s": count / train_seconds,
                "epoch_seconds": time.perf_counter() - epoch_start,
                "wall_seconds": wall_before + time.perf_counter() - started,
            }
        if config.schedule == "plateau":
            val_loss = torch.tensor([row.get("val_loss", 0.0)], device=device)
            if world > 1:
                dist.broadcast(val_loss, 0)
            scheduler.step(val_loss.item())
        if main_process:
            history.append(row)
            if epoch + 1 in snapshot_epochs:
                _save_snapshot(model, out_dir / "snapshots" / f"epoch_{epoch + 1:03d}.pt", epoch + 1)
            save_checkpoint(
                checkpoint_state(
                    config, model=model.state_dict(), optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), epoch=epoch + 1, rng=_rng_states(), history=history,
                    code_version=code_version(), dataset_sha256=data.sha256, classes=data.classes,
                    class_names=data.class_names, mean_image=data.mean_image,
                ),
                checkpoint_file,
            )
            _write_metrics(history, out_dir / "metrics.csv")
            if progress:
                tqdm.write(
                    f"epoch {epoch + 1}: train loss {row['train_loss']:.3f} top-1 {row['train_top1']:.3f} | "
                    f"val loss {row['val_loss']:.3f} top-1 {row['val_top1']:.3f} top-5 {row['val_top5']:.3f} | "
                    f"lr {row['lr']:.4f} | {row['img_per_s']:.0f} img/s"
                )
        if world > 1:
            dist.barrier()
    return history


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv`` written by :func:`train`, as floats."""
    with open(path, newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


# ---------------------------------------------------------------------------------------------- helpers
def _setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cpu":
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return rank, world, device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on weights only (not biases)."""
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    return torch.optim.SGD(
        [{"params": weights, "weight_decay": config.weight_decay}, {"params": biases, "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum,
    )


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    if config.schedule == "plateau":
        if config.warmup_epochs:
            raise ValueError("warmup_epochs needs schedule='cosine'; the paper's plateau schedule has no warm-up")
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=config.plateau_patience)
    total = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1.0, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _save_snapshot(model: nn.Module, path: Path, epoch: int) -> None:
    """The conv weights at ``epoch`` in fp16: what Fig. 4's feature evolution needs, ~7 MB for ZF-64."""
    conv = {key: value.half() for key, value in model.features.state_dict().items()}
    save_checkpoint({"epoch": epoch, "features": conv}, path)


def _write_metrics(history: list[dict[str, float]], path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows({key: row[key] for key in METRIC_FIELDS} for row in history)
    os.replace(partial, path)


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
import tempfile
import time
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from zfcore.checkpoints import (ARCH_FIELDS, build_model, checkpoint_state, code_version, config_from_dict,
                                load_checkpoint, load_weights, save_checkpoint)
from zfcore.data.sources import TrainingData, training_data
from zfcore.devices import PRECISIONS, autocast, autocast_dtype
from zfcore.evaluation import evaluate
from zfcore.models import renormalize_filters
from zfcore.profiles import HOW_RUN_FIELDS, TrainConfig
from zfcore.store import atomic_write

__all__ = ["METRIC_FIELDS", "DivergedError", "StepCallback", "read_metrics", "train"]

METRIC_FIELDS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "img_per_s",
                 "epoch_seconds", "wall_seconds")
StepCallback = Callable[[int, int, float], None]
"""Called after every optimiser step as ``callback(epoch, step, loss)``; raising stops the run."""
CHECK_EVERY = 20
"""Steps between two looks at the loss (each look waits for the device; the progress bar looks as often)."""


class DivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss (or weights); the last good checkpoint is kept."""


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
        resume: a ``checkpoint.pt`` to continue from (see "Resuming" below).
        callbacks: called after every step (see :data:`StepCallback`).
        precision: ``"auto"`` (bf16 autocast where the hardware has it), ``"fp32"`` or ``"bf16"``.
        progress: show a tqdm bar with loss and img/s.
        data: batches to use instead of those ``config`` names (tests).
        stop_after: end after this many epochs (counted from the run's start), with the learning-rate
            schedule still planned for ``config.epochs``; resume later to go on. Default: all epochs.

    Before the data is loaded or anything trained, ``out_dir`` and ``out_dir/snapshots`` are created and
    a file is written to and removed from each, so a bad folder fails at once (:class:`ValueError`).

    Resuming continues one run, so the checkpoint must be of this run and the recipe its own:

    - ``out_dir/checkpoint.pt`` must not exist, or be ``resume`` itself (else :class:`FileExistsError`
      naming both: another run would be overwritten).
    - The architecture (``input_size``, ``num_classes``, ``widths``, ``fc``, ``remove``, ``lrn``) must match, else
      :class:`~zfcore.checkpoints.CheckpointError`.
    - Refused with :class:`ValueError` naming every difference, because they change what is learned
      and the history would mix two recipes: ``dataset``, ``dropout``, ``init``, ``preprocessing``,
      ``batch_size``, ``lr``, ``momentum``, ``weight_decay``, ``schedule``, ``warmup_epochs``,
      ``plateau_patience``, ``renorm_rms``, ``label_smoothing``, ``seed``, ``random_labels``, the subset
      (``classes_limit``, ``train_per_class``, ``val_per_class``), and data whose checksum differs from
      the checkpoint's ``dataset_sha256``. ``epochs`` under the cosine schedule (whose shape depends
      on it) is refused too; use ``stop_after`` to end a run early.
    - Continued with a :class:`UserWarning` naming each difference, saved under the new value:
      ``workers``, ``compile`` (how batches are made and run, not what is learned), ``epochs`` under
      the plateau schedule (the run goes on to the new total) and ``deviations`` (the recipe table's
      prose).

    Nothing is written when a resume is refused.

    Raises:
        DivergedError: the loss (or the weights) became NaN or infinite; the message names the epoch
            and step, and the checkpoint of the last good epoch is kept untouched.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; valid values: {PRECISIONS}")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after={stop_after!r}: must be at least 1 epoch (or None for all)")
    out_dir = Path(out_dir)
    checkpoint_file = out_dir / "checkpoint.pt"
    state = load_checkpoint(resume, expect=config, kind="training") if resume is not None else None
    if state is None and checkpoint_file.exists():
        raise FileExistsError(
            f"{checkpoint_file} exists: pass resume={checkpoint_file} to continue that "
            f"run, or choose another output folder; nothing was overwritten"
        )
    if state is not None:
        if checkpoint_file.exists() and not checkpoint_file.samefile(resume):
            raise FileExistsError(
                f"{checkpoint_file} belongs to another run than resume={resume}: resuming into out_dir={out_dir} "
                f"would overwrite it. Resume into the folder of {resume}, or into a folder without a checkpoint; "
                f"nothing was overwritten"
            )
        _check_resumed_recipe(config_from_dict(state["config"]), config, resume)
    created = _prepare_out_dir(out_dir)
    rank, world, device = _setup_distributed()
    main_process = rank == 0
    _seed_everything(config.seed)
    model = build_model(config).to(device, memory_format=torch.channels_last)
    optimizer = _optimizer(model, config)
    try:
        data = data or training_data(config, num_replicas=world, rank=rank, device=device)
        if state is not None and state.get("dataset_sha256") not in (None, data.sha256):
            raise ValueError(
                f"resume={resume} was trained on data with checksum {state['dataset_sha256']}, but the data found "
                f"now has {data.sha256}: resuming would mix two datasets in one run. Use the data the run was "
                f"started with, or start a new run in another folder; nothing was changed"
            )
    except BaseException:
        for folder in reversed(created):  # leave no trace of a run that never started
            if not any(folder.iterdir()):
                folder.rmdir()
        raise
    steps_per_epoch = len(data.train)
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    history: list[dict[str, float]] = []
    start_epoch, wall_before = 0, 0.0
    if state is not None:
        load_weights(model, state["model"], resume)
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
        first_nonfinite = torch.full((), steps_per_epoch, dtype=torch.long, device=device)  # none yet
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
                # no tensor made from a host number here: on CUDA that copy would wait for the GPU every step
                totals[:2] += torch.stack([loss.detach().double() * len(labels), (logits.argmax(1) == labels).sum().double()])
                totals[2] += len(labels)
                unseen = first_nonfinite == steps_per_epoch
                first_nonfinite.masked_fill_(~torch.isfinite(loss.detach()) & unseen, step)
            for callback in callbacks:
                callback(epoch, step, loss.item())
            if step % CHECK_EVERY == 0 and world == 1:  # under DDP every process checks at the epoch's end
                _stop_if_diverged(first_nonfinite, None, epoch, steps_per_epoch, config, checkpoint_file)
            if step % CHECK_EVERY == 0 and main_process:
                seen = (step + 1) * len(labels) * world
                bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{seen / (time.perf_counter() - epoch_start):.0f}")
        if world > 1:
            dist.all_reduce(totals)
            dist.all_reduce(first_nonfinite, op=dist.ReduceOp.MIN)
        _stop_if_diverged(first_nonfinite, model, epoch, steps_per_epoch, config, checkpoint_file)
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
def _check_resumed_recipe(saved: TrainConfig, config: TrainConfig, resume: str | Path) -> None:
    """Refuse a resume whose recipe differs from the run's (see :func:`train`); warn for harmless changes."""
    if config.schedule == "cosine" and saved.epochs != config.epochs:
        raise ValueError(
            f"epochs={config.epochs} but {resume} was trained with a cosine schedule planned for "
            f"{saved.epochs} epochs; changing the total would make the learning rate jump. Resume "
            f"with epochs={saved.epochs} (the run's own), or end early with stop_after=N; nothing was changed"
        )
    changed = [field.name for field in fields(TrainConfig)
               if field.name not in ARCH_FIELDS and getattr(saved, field.name) != getattr(config, field.name)]
    refused = [name for name in changed if name not in (*HOW_RUN_FIELDS, "epochs")]
    if refused:
        differences = "; ".join(f"{name}: {getattr(saved, name)!r} in the run, {getattr(config, name)!r} now"
                                for name in refused)
        raise ValueError(
            f"resume={resume} was trained with another recipe ({differences}); resuming would mix two recipes in "
            f"one run. Resume with the run's own settings (its checkpoint's config), or start a new run in "
            f"another folder; nothing was changed"
        )
    if changed:
        differences = "; ".join("deviations: the recipe table's text" if name == "deviations" else
                                f"{name}: {getattr(saved, name)!r} in the run, {getattr(config, name)!r} now"
                                for name in changed)
        warnings.warn(f"resuming {resume} with changed settings, continued with the new values ({differences})",
                      UserWarning, stacklevel=3)


def _prepare_out_dir(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and its ``snapshots`` folder and prove both writable; returns the folders it created.

    Raises:
        ValueError: a path is a file, or a folder cannot be created or written to; names the path and the fix.
    """
    created = []
    for folder in (out_dir, out_dir / "snapshots"):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"out_dir={out_dir} cannot hold a run: {folder} is a file, not a folder. Choose another "
                             f"output folder, or move the file away; nothing was written")
        try:
            if not folder.exists():
                folder.mkdir(parents=True)
                created.append(folder)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise ValueError(f"out_dir={out_dir} cannot hold a run: {folder} cannot be created or written to "
                             f"({error.strerror or error}). Choose a writable output folder, or fix its permissions; "
                             f"nothing was written") from error
    return created


def _stop_if_diverged(first_nonfinite: torch.Tensor, model: nn.Module | None, epoch: int, steps: int,
                      config: TrainConfig, checkpoint_file: Path) -> None:
    """Raise :class:`DivergedError` if a step's loss (or, given ``model``, a weight) is NaN or infinite.

    One wait for the device per call: the loss is recorded on the device each step (``first_nonfinite``,
    ``steps`` when all were finite) and looked at only here.
    """
    step = int(first_nonfinite)
    if step < steps:
        what = f"the loss is NaN or infinite in epoch {epoch + 1} at step {step + 1} of {steps}"
    elif model is not None and not bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all()):
        what = f"the weights are NaN or infinite after epoch {epoch + 1} (its last step, {steps} of {steps})"
    else:
        return
    kept = (f"the last good checkpoint {checkpoint_file} was kept untouched" if checkpoint_file.exists()
            else "nothing was saved")
    raise DivergedError(f"training diverged: {what}; {kept}. To go on, lower the learning rate (lr={config.lr}) or "
                        f"add warm-up, and check the data for NaN or infinite values")


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
    if config.schedule == "plateau":  # TrainConfig refuses a warm-up with it
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
    """Write the metrics CSV atomically (:func:`zfcore.store.atomic_write`)."""

    def write(partial: Path) -> None:
        with open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            writer.writerows({key: row[key] for key in METRIC_FIELDS} for row in history)

    atomic_write(path, write)


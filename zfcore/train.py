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

Resuming (``train(..., resume=checkpoint)``) continues one run, so the checkpoint must be of this run and the
recipe its own:

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

A checkpoint that cannot be continued is refused (:class:`~zfcore.checkpoints.CheckpointError`, one line
naming the file and the field) before any data is loaded: an epoch that is not a whole number in
``1..config.epochs``, a history that is empty or not one row per epoch, a row without a metric (a row
without ``wall_seconds``, written by an older version, is filled from its ``epoch_seconds`` with a
warning), RNG states that are missing or not generator states, optimizer or scheduler state of another
network or schedule, and weights holding a NaN or an infinity. The checkpoint keeps every commit the
run was trained under (``code_versions``; ``code_version`` is the latest). Nothing is written when a resume is
refused.

One step of training is :class:`zfcore.training_step.TrainingStep`, the step fine-tuning and the benchmarks take too.
"""

from __future__ import annotations

import contextlib
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
from torch import nn
from tqdm.auto import tqdm

from zfcore.checkpoints import (ARCH_FIELDS, CheckpointError, build_model, check_finite, checkpoint_state,
                                config_from_dict, load_checkpoint, load_weights, save_checkpoint)
from zfcore.data.sources import TrainingData, training_data
from zfcore.devices import PRECISIONS
from zfcore.evaluation import evaluate
from zfcore.profiles import HOW_RUN_FIELDS, TrainConfig
from zfcore.provenance import code_version
from zfcore.checks import check_labels
from zfcore.locks import lock
from zfcore.store import atomic_write
from zfcore.training_step import TrainingStep, sgd_optimizer, warmup_cosine

__all__ = ["LOCK_FILE", "METRIC_FIELDS", "DivergedError", "StepCallback", "TrainingInterrupted", "read_metrics",
           "train"]

METRIC_FIELDS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "img_per_s",
                 "epoch_seconds", "wall_seconds")
StepCallback = Callable[[int, int, float], None]
"""Called after every optimiser step as ``callback(epoch, step, loss)``; raising stops the run."""
CHECK_EVERY = 20
"""Steps between two looks at the loss (each look waits for the device; the progress bar looks as often)."""
LOCK_FILE = "train.lock"
"""The lock file in a run folder while a training process writes it (:func:`zfcore.locks.lock`)."""


class DivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss (or weights); the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run. ``checkpoint`` is where it can be resumed from (``None``: no epoch had
    finished, nothing to resume); ``out_dir`` is the run folder. A :class:`KeyboardInterrupt`, so that code
    that handles one keeps handling it."""

    def __init__(self, out_dir: Path, checkpoint: Path | None) -> None:
        self.out_dir, self.checkpoint = out_dir, checkpoint
        where = (f"it can be resumed from {checkpoint} (resume={checkpoint}, out_dir={out_dir})" if checkpoint
                 else f"no epoch had finished, so there is nothing to resume: start it again (out_dir={out_dir})")
        super().__init__(f"training was interrupted; {where}")


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
        resume: a ``checkpoint.pt`` to continue from (see "Resuming" in the module's docstring).
        callbacks: called after every step (see :data:`StepCallback`).
        precision: ``"auto"`` (bf16 autocast where the hardware has it), ``"fp32"`` or ``"bf16"``.
        progress: show a tqdm bar with loss and img/s.
        data: batches to use instead of those ``config`` names (tests).
        stop_after: end after this many epochs (counted from the run's start), with the learning-rate
            schedule still planned for ``config.epochs``; resume later to go on. Default: all epochs.

    Before the data is loaded or anything trained, ``out_dir`` and ``out_dir/snapshots`` are created and
    a file is written to and removed from each, so a bad folder fails at once (:class:`ValueError`).

    Resuming continues one run: the checkpoint must be of this run and the recipe its own (see "Resuming" in
    the module's docstring). Nothing is written when a resume is refused.

    One process at a time trains into ``out_dir``: it holds ``out_dir/train.lock`` (:func:`zfcore.locks.lock`,
    taken before the existing-checkpoint check, released when training ends however it ends); a second
    process is refused at once (:class:`~zfcore.locks.LockedError` naming the first). Under ``torchrun``
    rank 0 holds it.

    Raises:
        DivergedError: the loss (or the weights) became NaN or infinite; the message names the epoch
            and step, and the checkpoint of the last good epoch is kept untouched.
        TrainingInterrupted: Ctrl-C; names the checkpoint to resume from (the last finished epoch's).
        LockedError: another live process is training into ``out_dir``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; valid values: {PRECISIONS}")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after={stop_after!r}: must be at least 1 epoch (or None for all)")
    out_dir = Path(out_dir)
    created = _prepare_out_dir(out_dir)
    held = lock(out_dir / LOCK_FILE, f"out_dir={out_dir}") if int(os.environ.get("RANK", "0")) == 0 \
        else contextlib.nullcontext()
    try:
        with held:
            return _train(config, out_dir, resume=resume, callbacks=callbacks, precision=precision,
                          progress=progress, data=data, stop_after=stop_after)
    except BaseException as error:
        for folder in reversed(created):  # leave no trace of a run that never started
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if isinstance(error, KeyboardInterrupt) and not isinstance(error, TrainingInterrupted):
            checkpoint = out_dir / "checkpoint.pt"
            point = checkpoint if checkpoint.is_file() else Path(resume) if resume is not None else None
            raise TrainingInterrupted(out_dir, point) from None
        raise


def _train(config: TrainConfig, out_dir: Path, *, resume: str | Path | None, callbacks: Iterable[StepCallback],
           precision: str, progress: bool, data: TrainingData | None, stop_after: int | None) -> list[dict[str, float]]:
    """:func:`train`'s work, once the run folder is checked and locked."""
    checkpoint_file = out_dir / "checkpoint.pt"
    state = _resumable_state(config, resume, checkpoint_file)
    versions = _code_versions(state)
    rank, world, device = _setup_distributed()
    main_process = rank == 0
    _seed_everything(config.seed)
    model = build_model(config).to(device, memory_format=torch.channels_last)
    optimizer = sgd_optimizer(model, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if state is not None:  # the network's, optimizer's and scheduler's states checked before any data is loaded
        load_weights(model, state["model"], resume)
        _load_optimizer(optimizer, model, state["optimizer"], resume)
        state["scheduler"] = _check_scheduler_state(state["scheduler"], config, len(optimizer.param_groups), resume)
    data = data or training_data(config, num_replicas=world, rank=rank, device=device)
    for split, batches in (("training", data.train), ("validation", data.val)):
        if getattr(batches, "labels", None) is not None:  # cached data: every label is known before the first step
            check_labels(f"the {split} labels", batches.labels, config.num_classes)
    if state is not None and state.get("dataset_sha256") not in (None, data.sha256):
        raise ValueError(
            f"resume={resume} was trained on data with checksum {state['dataset_sha256']}, but the data found "
            f"now has {data.sha256}: resuming would mix two datasets in one run. Use the data the run was "
            f"started with, or start a new run in another folder; nothing was changed"
        )
    steps_per_epoch = len(data.train)
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    history: list[dict[str, float]] = []
    start_epoch, wall_before = 0, 0.0
    if state is not None:  # again, after the scheduler's creation set the learning rates to its start's
        _load_state(optimizer, state["optimizer"], resume, "optimizer")
        _load_state(scheduler, state["scheduler"], resume, "scheduler")
        start_epoch, history = state["epoch"], state["history"]
        wall_before = history[-1]["wall_seconds"] if history else 0.0
        _set_rng_states(state["rng"])
    network: nn.Module = model
    if world > 1:
        network = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        network = torch.compile(network)
    step_once = TrainingStep(model, optimizer, precision=precision, label_smoothing=config.label_smoothing,
                             renorm_rms=config.renorm_rms, network=network,
                             scheduler=scheduler if config.schedule == "cosine" else None)  # plateau: once an epoch
    started = time.perf_counter()
    snapshot_epochs = set(config.fig4_epochs())
    end_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(start_epoch, end_epoch):
        data.train.set_epoch(epoch)
        network.train()
        epoch_start = time.perf_counter()
        totals, first_nonfinite = _one_epoch(step_once, data.train, epoch, config, callbacks=callbacks, device=device,
                                             world=world, progress=progress and main_process,
                                             checkpoint_file=checkpoint_file)
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
                    code_version=versions[-1], code_versions=versions, dataset_sha256=data.sha256, classes=data.classes,
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


def _resumable_state(config: TrainConfig, resume: str | Path | None, checkpoint_file: Path) -> dict[str, Any] | None:
    """The checkpoint ``resume`` names, checked to continue this run into ``checkpoint_file``'s folder (``None``: a
    new run); see :func:`train`'s "Resuming"."""
    state = load_checkpoint(resume, expect=config, kind="training") if resume is not None else None
    if state is None and checkpoint_file.exists():
        raise FileExistsError(
            f"{checkpoint_file} exists: pass resume={checkpoint_file} to continue that "
            f"run, or choose another output folder; nothing was overwritten"
        )
    if state is not None:
        if checkpoint_file.exists() and not checkpoint_file.samefile(resume):
            raise FileExistsError(
                f"{checkpoint_file} belongs to another run than resume={resume}: resuming into "
                f"out_dir={checkpoint_file.parent} "
                f"would overwrite it. Resume into the folder of {resume}, or into a folder without a checkpoint; "
                f"nothing was overwritten"
            )
        _check_resumed_recipe(config_from_dict(state["config"]), config, resume)
        state["history"] = _resumable_history(state, resume)
        _check_rng_states(state["rng"], resume)
        check_finite(state["model"], resume)
    return state


def _one_epoch(step_once: TrainingStep, batches: Iterable, epoch: int, config: TrainConfig, *,
               callbacks: Iterable[StepCallback], device: torch.device, world: int, progress: bool,
               checkpoint_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over ``batches``: the training steps, the callbacks, the divergence checks and the progress bar.

    Returns:
        ``totals`` (this process's loss sum, correct predictions and images, float64) and the first step whose
        loss was not finite (``len(batches)`` if none), both on ``device`` for an all-reduce.
    """
    steps_per_epoch = len(batches)
    epoch_start = time.perf_counter()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    first_nonfinite = torch.full((), steps_per_epoch, dtype=torch.long, device=device)  # none yet
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
               mininterval=5, unit="batch")
    for step, (images, labels) in enumerate(bar):
        labels = labels.to(device, non_blocking=True)
        loss, logits = step_once(images.to(device, non_blocking=True), labels)
        with torch.no_grad():
            # no tensor made from a host number here: on CUDA that copy would wait for the GPU every step
            totals[:2] += torch.stack([loss.double() * len(labels), (logits.argmax(1) == labels).sum().double()])
            totals[2] += len(labels)
            unseen = first_nonfinite == steps_per_epoch
            first_nonfinite.masked_fill_(~torch.isfinite(loss) & unseen, step)
        for callback in callbacks:
            callback(epoch, step, loss.item())
        if step % CHECK_EVERY == 0 and world == 1:  # under DDP every process checks at the epoch's end
            _stop_if_diverged(first_nonfinite, None, epoch, steps_per_epoch, config, checkpoint_file)
        if step % CHECK_EVERY == 0 and progress:
            seen = (step + 1) * len(labels) * world
            bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{seen / (time.perf_counter() - epoch_start):.0f}")
    return totals, first_nonfinite


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


def _refuse(resume: str | Path, field: str, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {resume} cannot be resumed: its {field} {problem}; it was written by an "
                           f"older or another version, or damaged. Resume an intact checkpoint, or start a new run; "
                           f"nothing was changed")


def _resumable_history(state: dict[str, Any], resume: str | Path) -> list[dict[str, float]]:
    """The checkpoint's history, checked against its epoch (rows without ``wall_seconds`` filled, with a warning).

    Raises:
        CheckpointError: an epoch that is not a whole number in ``1..epochs``; a history that is not a
            non-empty list of one row per epoch; a row that is not a record or lacks a metric, or holds one
            that is not a number.
    """
    epoch, planned = state["epoch"], config_from_dict(state["config"]).epochs
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise _refuse(resume, "epoch", f"is {epoch!r} (a {type(epoch).__name__}), not a whole number")
    if not 1 <= epoch <= planned:
        raise _refuse(resume, "epoch", f"is {epoch}, outside 1..{planned} (the epochs its config plans)")
    history = state["history"]
    if not isinstance(history, list):
        raise _refuse(resume, "history", f"is a {type(history).__name__}, not a list of per-epoch rows")
    if not history:
        raise _refuse(resume, "history", f"is empty, but its epoch is {epoch}")
    if len(history) != epoch:
        raise _refuse(resume, "history", f"has {len(history)} rows, but its epoch is {epoch} (one row per epoch)")
    rows, filled, wall = [], [], 0.0
    for number, row in enumerate(history, start=1):
        if not isinstance(row, dict):
            raise _refuse(resume, f"history row {number}", f"is a {type(row).__name__}, not a record")
        missing = [key for key in METRIC_FIELDS if key not in row and key != "wall_seconds"]
        if missing:
            raise _refuse(resume, f"history row {number}", f"lacks {', '.join(missing)}")
        for key in METRIC_FIELDS:
            value = row.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise _refuse(resume, f"history row {number} field {key}", f"is {value!r}, not a finite number")
        if "wall_seconds" not in row:
            row = {**row, "wall_seconds": wall + row["epoch_seconds"]}
            filled.append(number)
        wall = row["wall_seconds"]
        rows.append(row)
    if filled:
        warnings.warn(f"checkpoint {resume}: history rows {filled} have no wall_seconds (written by an older "
                      f"version); filled in as the running sum of epoch_seconds", UserWarning, stacklevel=4)
    return rows


def _check_rng_states(states: Any, resume: str | Path) -> None:
    """Refuse RNG states that :func:`_set_rng_states` could not restore (checked on private generators)."""
    if not isinstance(states, dict):
        raise _refuse(resume, "rng", f"is a {type(states).__name__}, not the generators' states")
    missing = [name for name in ("torch", "numpy", "python") if name not in states]
    if missing:
        raise _refuse(resume, "rng", f"lacks the state of the {', '.join(missing)} generator(s)")
    checks = {"torch": lambda value: torch.Generator().set_state(value),
              "numpy": lambda value: np.random.RandomState().set_state(value),
              "python": lambda value: random.Random().setstate(value)}
    for name, check in checks.items():
        try:
            check(states[name])
        except (TypeError, ValueError, RuntimeError, IndexError, KeyError, AttributeError) as error:
            raise _refuse(resume, f"rng {name!r} state", f"is not a generator state ({_first_line(error)})") from None


def _load_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module, saved: Any, resume: str | Path) -> None:
    """``optimizer.load_state_dict(saved)``, refusing the state of another network (group sizes, momentum shapes)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        raise _refuse(resume, "optimizer state", "is not an optimizer's state (param_groups and state)")
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    groups = [group.get("params") if isinstance(group, dict) else None for group in saved["param_groups"]]
    ours = [group["params"] for group in optimizer.param_groups]
    if any(not isinstance(group, list) for group in groups) or [len(g) for g in groups] != [len(g) for g in ours]:
        sizes = [len(group) if isinstance(group, list) else "?" for group in groups]
        raise _refuse(resume, "optimizer state", f"is of another network (parameter groups of {sizes} tensors; this "
                                                 f"network's: {[len(group) for group in ours]})")
    for saved_group, group in zip(groups, ours):
        for index, parameter in zip(saved_group, group):
            entry = saved["state"].get(index, {})
            buffer = entry.get("momentum_buffer") if isinstance(entry, dict) else entry
            if buffer is not None and (not isinstance(buffer, torch.Tensor) or buffer.shape != parameter.shape):
                shape = tuple(buffer.shape) if isinstance(buffer, torch.Tensor) else type(buffer).__name__
                raise _refuse(resume, "optimizer state", f"is of another network: the momentum of "
                                                         f"{names.get(id(parameter), index)} is {shape}, the "
                                                         f"weights' {tuple(parameter.shape)}")
    _load_state(optimizer, saved, resume, "optimizer")


SCHEDULER_KEYS = {"LambdaLR": ("last_epoch", "base_lrs"),
                  "ReduceLROnPlateau": ("last_epoch", "best", "num_bad_epochs", "cooldown_counter")}
"""What a scheduler's saved state must hold to continue the schedule where it was (the rest, if a PyTorch
version lacks it, is filled with a new scheduler's value)."""


def _check_scheduler_state(saved: Any, config: TrainConfig, groups: int, resume: str | Path) -> dict[str, Any]:
    """``saved``, checked to be a state of ``config``'s schedule (keys, kinds of values; missing minor keys filled).

    Raises:
        CheckpointError: not a mapping, a key the schedule needs is missing, or a value of another kind.
    """
    probe_optimizer = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)],
                                      lr=config.lr)
    probe = _scheduler(probe_optimizer, config, 1)
    expected, kind = probe.state_dict(), type(probe).__name__
    if not isinstance(saved, dict):
        raise _refuse(resume, "scheduler state", f"is a {type(saved).__name__}, not a {kind} state")
    missing = [key for key in SCHEDULER_KEYS.get(kind, ()) if key not in saved]
    if missing:
        raise _refuse(resume, "scheduler state", f"is not a {kind} state (it lacks {', '.join(missing)})")
    needed = SCHEDULER_KEYS.get(kind, ())
    for key, value in expected.items():
        if key in saved and not (_same_kind(value, saved[key]) or (saved[key] is None and key not in needed)):
            raise _refuse(resume, f"scheduler state {key}", f"is {saved[key]!r}, not like {value!r} (a {kind} state)")
    filled = {**expected, **{key: value for key, value in saved.items() if key in expected}}
    _load_state(probe, dict(filled), resume, "scheduler")
    return filled


def _same_kind(expected: Any, value: Any) -> bool:
    """Whether ``value`` is of ``expected``'s kind: numbers, flags, text, lists of the same length, mappings."""
    if expected is None:
        return True
    if isinstance(expected, bool):
        return isinstance(value, bool)
    if isinstance(expected, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(expected, str):
        return isinstance(value, str)
    if isinstance(expected, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(expected) and all(
            _same_kind(a, b) for a, b in zip(expected, value))
    if isinstance(expected, dict):
        return isinstance(value, dict)
    return True


def _load_state(target: Any, saved: Any, resume: str | Path, what: str) -> None:
    """``target.load_state_dict(saved)``, with a refusal as one line naming the file."""
    try:
        target.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError) as error:
        raise _refuse(resume, f"{what} state", f"cannot be loaded ({_first_line(error)})") from None


def _code_versions(state: dict[str, Any] | None) -> list[str]:
    """Every commit the run was trained under, oldest first, ending with this one (a resumed run adds its own)."""
    current = code_version()
    earlier: list[str] = []
    if state is not None:
        recorded = state.get("code_versions")
        if isinstance(recorded, list) and all(isinstance(item, str) for item in recorded) and recorded:
            earlier = list(recorded)
        elif isinstance(state.get("code_version"), str):
            earlier = [state["code_version"]]
    return earlier if earlier and earlier[-1] == current else [*earlier, current]


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


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


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    if config.schedule == "plateau":  # TrainConfig refuses a warm-up with it
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=config.plateau_patience)
    return warmup_cosine(optimizer, total_steps=config.epochs * steps_per_epoch,
                         warmup_steps=config.warmup_epochs * steps_per_epoch)


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


"""Experiments: named, versioned lists of training runs, run one after another and recorded as they finish.

An :class:`Experiment` is a list of (run name, :class:`~zfcore.profiles.TrainConfig`) pairs built from a
profile's recipe with ``replace()``. :func:`run_experiment` trains them in order into
``runs/experiments/NAME/RUN`` (each resumable from its ``checkpoint.pt``) and, after every finished
run, rewrites ``data/experiments/NAME.json`` atomically with that run's config, code version, final
metrics, parameter count and wall time, so the file can be committed at once. A restarted runner skips
the recorded runs and resumes the unfinished one; :func:`experiment_status` says what is done, running
and left. Long experiments are started in the background::

    nohup python -m zfcore experiment ablations > runs/experiments/ablations.log 2>&1 &
    python -m zfcore experiment ablations --status

``ablations`` re-does Zeiler & Fergus (2014), Table 3 ("ImageNet 2012 classification error rates with
various architectural changes to the model") and Table 2's single-network rows at a reduced budget on
ZF-64 (see :func:`ablations`); ``verdict-runs`` trains, at the reference run's full 28-epoch budget, the
runs that can test the paper's claims C5, C8, C9 and C10 (see :func:`verdict_runs`); ``ci`` is a two-run
miniature for tests and notebook CI.

The tracked results record where they came from: a runner that writes into the repository refuses a
tree whose ``zfcore`` differs from its commit (``allow_dirty=True`` records the run as dirty), and each
record holds the code version, the data's checksum and the device it was trained on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from zfcore.checkpoints import build_model, code_version, config_from_dict, load_checkpoint
from zfcore.data.locate import sha256
from zfcore.devices import default_device, describe_device
from zfcore.evaluation import evaluate_checkpoint
from zfcore.models import CONV_LAYERS
from zfcore.paths import REPOSITORY_ROOT
from zfcore.profiles import TrainConfig, get_profile
from zfcore.store import atomic_write, write_json_atomic
from zfcore.train import read_metrics, train
from zfcore.weights import ReferenceWeights, export_reference

__all__ = ["EXPERIMENTS", "RESULTS_DIR", "RUNS_DIR", "Experiment", "RunStatus", "Status", "ablations",
           "experiment_status", "get_experiment", "parameter_count", "parameter_matched", "run_experiment",
           "verdict_runs", "widen"]

ROOT = REPOSITORY_ROOT
RESULTS_DIR = ROOT / "data" / "experiments"
"""Where ``NAME.json`` goes: tracked, so that every finished run can be committed."""
RUNS_DIR = ROOT / "runs" / "experiments"
"""Where the runs' folders (checkpoints, metrics.csv) go: not tracked."""
RUN_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


@dataclass(frozen=True)
class Experiment:
    """A named, versioned list of training runs.

    Attributes:
        name: the experiment's name (``data/experiments/NAME.json``).
        version: raised whenever a run is changed, added or removed: results of two versions never mix.
        description: what the experiment measures, and which of the paper's tables it re-does.
        budget: the reduced budget every run shares, stated once.
        runs: (run name, recipe) pairs, trained in this order.
        references: (run name, :class:`~zfcore.weights.ReferenceWeights` member name) pairs: published
            networks recorded as rows of the experiment, read from their files and never trained again
            (default none).
        final_evaluation: after each run, also measure validation accuracy with the paper's 10 crops and
            training accuracy in eval mode (the unaugmented training images, dropout off), as
            ``val_top1_10crop``, ``val_top5_10crop``, ``train_top1_eval`` and ``train_loss_eval``.
        keep_weights: runs whose small bf16 weights file (as the reference's) is written beside the
            results, ``NAME/RUN.pt``, to be committed; every run keeps one in its run folder.
        optional: runs trained only if time allows (``--status`` says so); the others are required.

    Raises:
        ValueError: a version below 1, no runs, a run name that is repeated or not a plain folder name, or
            a reference, kept or optional run that is not one of the runs.
    """

    name: str
    version: int
    description: str
    budget: str
    runs: tuple[tuple[str, TrainConfig], ...]
    references: tuple[tuple[str, str], ...] = ()
    final_evaluation: bool = False
    keep_weights: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version={self.version!r} is not valid; give a whole number of at least 1")
        names = [name for name, _ in self.references] + [name for name, _ in self.runs]
        bad = [name for name in names if not RUN_NAME.match(name)]
        if not self.runs or bad or len(set(names)) != len(names):
            raise ValueError(f"runs={names!r} is not valid; give at least one run, with distinct names of lower-case "
                             f"letters, digits, '.' and '-' (bad: {bad})")
        members = [member for _, member in self.references if member not in ReferenceWeights.__members__]
        if members:
            raise ValueError(f"references={members!r} are not valid; valid: {tuple(ReferenceWeights.__members__)}")
        trained = {name for name, _ in self.runs}
        strays = [name for name in (*self.keep_weights, *self.optional) if name not in trained]
        if strays:
            raise ValueError(f"keep_weights/optional={strays!r} are not valid; give names of trained runs: "
                             f"{tuple(trained)}")


def parameter_count(config: TrainConfig) -> int:
    """The number of parameters of the network ``config`` builds (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in build_model(config).parameters())


def widen(config: TrainConfig, factor: float) -> TrainConfig:
    """``config`` with every layer it keeps widened by ``factor``: conv widths and fc6/fc7, rounded, fc8 unchanged.

    Raises:
        ValueError: ``factor`` is not a positive number.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ValueError(f"factor={factor!r} is not valid; give a number > 0")
    widths = tuple(width if name in config.remove else max(1, round(width * factor))
                   for name, width in zip(CONV_LAYERS, config.widths))
    fc = config.fc if {"fc6", "fc7"} <= set(config.remove) else max(1, round(config.fc * factor))
    return config.replace(widths=widths, fc=fc)


def parameter_matched(config: TrainConfig, parameters: int) -> TrainConfig:
    """:func:`widen` ``config`` by the one factor that brings its parameter count nearest to ``parameters``.

    The count grows with the factor (in steps, as widths are whole numbers), so the factor is found by
    bisection between 1 and the first power of two whose network is large enough; of the two ends of the
    final bracket, the one whose count is nearer to ``parameters`` is returned.

    Args:
        config: a network with fewer parameters than wanted (e.g. with layers removed).
        parameters: the count to match (e.g. ``parameter_count`` of the unmodified network).

    Raises:
        ValueError: ``config`` already has more than ``parameters``, or would need more than 64x the width.
    """
    if parameter_count(config) > parameters:
        raise ValueError(f"parameters={parameters} is fewer than the {parameter_count(config)} of the network to "
                         f"widen; give a count of at least that")
    low, high = 1.0, 2.0
    while parameter_count(widen(config, high)) < parameters:
        low, high = high, high * 2
        if high > 64:
            raise ValueError(f"parameters={parameters} would need the network widened more than 64x; give a "
                             f"smaller count")
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if parameter_count(widen(config, middle)) < parameters else (low, middle)
    return min((widen(config, low), widen(config, high)), key=lambda c: abs(parameter_count(c) - parameters))


# ----------------------------------------------------------------------------------- the experiments
ABLATION_CLASSES = 100
ABLATION_EPOCHS = 6


def ablations() -> Experiment:
    """Table 3 (and Table 2's single-network rows) of the paper on ZF-64, at one reduced budget.

    Budget (fixed for every run): the ``book`` recipe on Tiny ImageNet's first 100 classes with all their
    images (400 train and 50 val each: 40,000 / 5,000) for 6 epochs, warm-up 1 epoch (312 steps), then
    cosine decay. Why: the book run trains at about 450 img/s on the 2-core CPU (28 epochs of 80,000 images
    in 83 min), so an epoch here takes about 1.6 min and the unmodified network about 9.5 min; the widest
    variants (conv3-conv5 512/1024/512) need 2.2x its arithmetic per image (counted with
    ``torch.utils.flop_counter``; timed steps on a busy machine gave 2.0-2.6x), about 21 min, which sets
    the budget's limit of about 20 min per run. 100 classes keep the 400 images per class of the book run
    (Table 3's overfitting rows need data per class) and leave 6 epochs; 200 classes would leave 3.

    Runs (Table 3's rows; ZF-64's fc6/fc7 are 1024 wide where the paper's are 4096, so "halved" and
    "doubled" are 512 and 2048 where the paper has 2048 and 8192; conv3-conv5 are the paper's widths,
    so the widened row is the paper's 512, 1024, 512 maps exactly):

    - ``fig3-seed0``, ``fig3-seed1``, ``fig3-seed2``: the unmodified network (Fig. 3), three seeds: the
      seed noise every other row is read against (they use seed 0);
    - ``no-conv3-conv4``, ``no-fc7``, ``no-fc6-fc7``, ``no-conv3-conv4-fc6-fc7``: layers removed (the
      paper removes them from its replication of Krizhevsky et al.);
    - ``fc-512``, ``fc-2048``: fc6 and fc7 halved and doubled;
    - ``conv3-5-wide``, ``conv3-5-wide-fc-2048``: conv3-conv5 with 512, 1024, 512 maps, without and with
      fc6/fc7 doubled;
    - ``no-conv3-conv4-matched``: conv3 and conv4 removed and the remaining layers widened by one factor
      to the unmodified network's parameter count (:func:`parameter_matched`): does depth matter, or only
      the parameters it brings? (not in the paper)
    """
    book = get_profile("book").train
    budget = (f"ZF-64 with the book recipe on Tiny ImageNet's first {ABLATION_CLASSES} classes (40,000 train / "
              f"5,000 val images), {ABLATION_EPOCHS} epochs (warm-up 1, cosine), one run at a time on the 2-core CPU")
    base = book.replace(num_classes=ABLATION_CLASSES, classes_limit=ABLATION_CLASSES, epochs=ABLATION_EPOCHS,
                        warmup_epochs=1.0, deviations=((budget, "the 12 runs fit a few CPU hours"),
                                                       *book.deviations))
    wide = (*base.widths[:2], 512, 1024, 512)
    no_conv34 = base.replace(remove=("conv3", "conv4"))
    runs = (
        *((f"fig3-seed{seed}", base.replace(seed=seed)) for seed in range(3)),
        ("no-conv3-conv4", no_conv34),
        ("no-fc7", base.replace(remove=("fc7",))),
        ("no-fc6-fc7", base.replace(remove=("fc6", "fc7"))),
        ("no-conv3-conv4-fc6-fc7", base.replace(remove=("conv3", "conv4", "fc6", "fc7"))),
        ("fc-512", base.replace(fc=base.fc // 2)),
        ("fc-2048", base.replace(fc=base.fc * 2)),
        ("conv3-5-wide", base.replace(widths=wide)),
        ("conv3-5-wide-fc-2048", base.replace(widths=wide, fc=base.fc * 2)),
        ("no-conv3-conv4-matched", parameter_matched(no_conv34, parameter_count(base))),
    )
    return Experiment("ablations", 1, "Table 3 and Table 2's single-network rows: layers removed, widened, "
                      "narrowed, three seeds of the unmodified network, and a parameter-matched shallower one",
                      budget, runs)


def _ci() -> Experiment:
    """Two runs of the ``ci`` profile (unmodified, conv3 and conv4 removed): seconds, for tests and notebook CI."""
    ci = get_profile("ci").train
    return Experiment("ci", 1, "a miniature of 'ablations': the unmodified network and one without conv3 and conv4",
                      "the ci profile: ZF-64 at 1/8 width, 10 classes x 32 images, 2 epochs",
                      (("fig3", ci), ("no-conv3-conv4", ci.replace(remove=("conv3", "conv4")))))


def verdict_runs() -> Experiment:
    """The 28-epoch runs that can test the paper's claims C5, C8, C9 and C10, on the reference run's full budget.

    Budget: the ``book`` recipe as it trained the reference network (ZF-64, all 200 Tiny ImageNet classes,
    80,000 train / 10,000 val images, 28 epochs, warm-up 2 then cosine), each run changing one thing. The
    reference networks are its seed-0 rows, read from ``data/reference`` and not trained again:
    ``book-seed0`` (40.9 % top-1) and ``alexnet-seed0`` (Fig. 6's AlexNet-style network). Every run is
    also measured with the paper's 10 crops and on its training images in eval mode. About 83 min a run
    on a 2-core CPU with AVX512-BF16, about 3x that on an AVX2-only CPU, minutes on a GPU.

    Runs, in order (the first eight are required, the rest run if time allows):

    1. ``no-label-smoothing``: label smoothing 0 (the paper's): do C9/C10 (transfer, layer probes) move
       with it? (Kornblith et al. 2021: such objectives make the last layers' features transfer worse.)
    2. ``book-seed1``, 3. ``book-seed2``: with ``book-seed0`` the 28-epoch seed band for C5 and C8.
    4. ``no-fc6-fc7``, 5. ``no-conv3-conv4``: Table 3's cuts (C8, "depth matters").
    6. ``no-conv3-conv4-matched``: conv3/conv4 cut, the rest widened to the reference's parameter count
       (:func:`parameter_matched`): depth or parameters?
    7. ``no-dropout``: dropout 0: removing fc6/fc7 also removes their dropout, so this separates the two.
    8. ``alexnet-seed1``, 9. ``alexnet-seed2``: with ``alexnet-seed0`` the seed band of C5 (7x7/2 vs 11x11/4).
    10. ``paper-inputs-renorm``, 11. ``paper-inputs-no-renorm``: the paper's N(0, 1e-2) init and 0-255
        pixel-minus-mean inputs, with and without filter renormalisation: Fig. 6(a) at the input scale
        the paper ties it to ("the input images are roughly in the [-128,128] range").
    12. ``random-labels``: the training labels permuted once (Adebayo et al. 2018's data randomisation).
    13. ``no-conv3-conv4-fc6-fc7``: the 4-layer network (C8).

    The weights of runs 1, 2, 8 and 11 are kept beside the results (bf16, about 12 MB each) for the
    chapters to probe, mine and transfer from.
    """
    book = get_profile("book").train
    alexnet = get_profile("book-alexnet").train
    no_conv34 = book.replace(remove=("conv3", "conv4"))
    paper_inputs = book.replace(init="paper", preprocessing="pixel-mean")
    runs = (
        ("no-label-smoothing", book.replace(label_smoothing=0.0)),
        ("book-seed1", book.replace(seed=1)),
        ("book-seed2", book.replace(seed=2)),
        ("no-fc6-fc7", book.replace(remove=("fc6", "fc7"))),
        ("no-conv3-conv4", no_conv34),
        ("no-conv3-conv4-matched", parameter_matched(no_conv34, parameter_count(book))),
        ("no-dropout", book.replace(dropout=0.0)),
        ("alexnet-seed1", alexnet.replace(seed=1)),
        ("alexnet-seed2", alexnet.replace(seed=2)),
        ("paper-inputs-renorm", paper_inputs),
        ("paper-inputs-no-renorm", paper_inputs.replace(renorm_rms=0.0)),
        ("random-labels", book.replace(random_labels=True)),
        ("no-conv3-conv4-fc6-fc7", book.replace(remove=("conv3", "conv4", "fc6", "fc7"))),
    )
    return Experiment(
        "verdict-runs", 1,
        "the 28-epoch runs that can test C5 (seed bands of both first layers), C8 (cuts, capacity, dropout), C9/C10 "
        "(label smoothing 0) and Fig. 6(a) at the paper's input scale, plus Adebayo et al.'s random labels",
        "the book recipe at the reference run's full budget: ZF-64, Tiny ImageNet 200 classes (80,000 train / 10,000 "
        "val), 28 epochs (warm-up 2, cosine), one change per run",
        runs, references=(("book-seed0", "ZF64_TINY_IMAGENET"), ("alexnet-seed0", "ALEXNET64_TINY_IMAGENET")),
        final_evaluation=True,
        keep_weights=("no-label-smoothing", "book-seed1", "alexnet-seed1", "paper-inputs-no-renorm"),
        optional=tuple(name for name, _ in runs[8:]))


_DEFINITIONS: dict[str, Callable[[], Experiment]] = {"ablations": ablations, "verdict-runs": verdict_runs, "ci": _ci}
EXPERIMENTS = tuple(_DEFINITIONS)


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in _DEFINITIONS:
        raise ValueError(f"experiment={name!r} is not valid; valid experiments: {EXPERIMENTS}")
    return _DEFINITIONS[name]()


# ------------------------------------------------------------------------------------------- the runner
def run_experiment(name: str, *, results_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                   progress: bool = True, allow_dirty: bool = False, commit: bool = False) -> dict[str, Any]:
    """Train the experiment's runs in order, recording each finished run in ``results_dir/NAME.json`` at once.

    A run already recorded is skipped; a run with a checkpoint but no record (interrupted, or finished just
    before its record was written) is resumed from ``runs_dir/NAME/RUN/checkpoint.pt``. Only one runner
    may work on an experiment's folder at a time (``runner.pid`` in it). The experiment's reference rows
    are recorded first, from their published files (nothing is trained for them).

    Args:
        name: an experiment of :data:`EXPERIMENTS`.
        results_dir: where ``NAME.json`` is written (default :data:`RESULTS_DIR`).
        runs_dir: where the runs' folders go (default :data:`RUNS_DIR`).
        progress: show the runs' progress bars and one line per run.
        allow_dirty: record into the repository even though ``zfcore`` has uncommitted changes (each
            record then says so: its ``code_version`` ends in ``+dirty``). Default ``False``: refused.
        commit: after each record, ``git commit`` the results file (and the run's kept weights) alone.

    Returns:
        The results file's content: ``experiment``, ``version``, ``description``, ``budget`` and ``runs``,
        one record per finished run (see :func:`_record`).

    Raises:
        ValueError: an unknown experiment; a results file of another version or with runs the definition
            does not have (nothing is run); another live runner on the same experiment; results that would
            go into the repository from a tree with uncommitted changes in ``zfcore`` (without
            ``allow_dirty``).
    """
    experiment = get_experiment(name)
    results_file = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    folder = Path(runs_dir or RUNS_DIR) / name
    results = _read_results(results_file, experiment)
    version = code_version()
    if _inside(results_file, ROOT) and version.endswith("+dirty") and not allow_dirty:
        raise ValueError(f"zfcore has uncommitted changes, and {results_file} is tracked: its records must name the "
                         f"commit that produced them. Commit first, or pass --allow-dirty to record them as dirty; "
                         f"nothing was run")
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "runner.pid"
    _claim(lock, name)
    try:
        for run, member in experiment.references:
            if run not in results["runs"]:
                results["runs"][run] = _reference_record(ReferenceWeights[member], experiment.final_evaluation)
                _save(results, results_file, [], commit, f"{name}: {run} recorded (the published {member})")
        for index, (run, config) in enumerate(experiment.runs, start=1):
            if run in results["runs"]:
                continue
            checkpoint = folder / run / "checkpoint.pt"
            resume = checkpoint if checkpoint.exists() else None
            if progress:
                print(f"{name} run {index}/{len(experiment.runs)}: {run}" + (" (resumed)" if resume else ""),
                      flush=True)
            history = train(config, folder / run, resume=resume, progress=progress)
            record = _record(config, history, load_checkpoint(checkpoint, kind="training"))
            if experiment.final_evaluation:
                record.update(_final_evaluation(checkpoint))
            weights = export_reference(checkpoint, folder / run / "weights.pt", metrics=_metrics(record))
            kept = []
            if run in experiment.keep_weights:
                kept = [results_file.parent / name / f"{run}.pt"]
                atomic_write(kept[0], lambda partial: shutil.copyfile(weights, partial))
                record["weights"] = {"file": f"{name}/{run}.pt", "sha256": sha256(kept[0]),
                                     "megabytes": round(kept[0].stat().st_size / 1e6, 2)}
            results["runs"][run] = record
            _save(results, results_file, kept, commit,
                  f"{name}: {run} recorded (val top-1 {record['val_top1']:.1%}, {record['wall_minutes']:.0f} min)")
            if progress:
                print(f"{name}: {run} recorded in {results_file}", flush=True)
    finally:
        lock.unlink(missing_ok=True)
    return results


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies inside ``folder`` (both resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def _save(results: dict[str, Any], results_file: Path, extra: list[Path], commit: bool, message: str) -> None:
    """Write the results atomically and, with ``commit``, commit that file and ``extra`` alone."""
    _write_json(results, results_file)
    if not commit:
        return
    paths = [str(path.resolve()) for path in (results_file, *extra)]
    where = results_file.resolve().parent
    try:
        subprocess.run(["git", "add", "--", *paths], cwd=where, check=True, capture_output=True, text=True)
        subprocess.run(["git", "commit", "--quiet", "-m", message, "--", *paths], cwd=where, check=True,
                       capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise ValueError(f"the record was written to {results_file}, but committing it failed "
                         f"({detail.strip().splitlines()[-1] if detail.strip() else error}); commit it by hand") from None


def _final_evaluation(checkpoint: Path) -> dict[str, float]:
    """10-crop validation accuracy and eval-mode training accuracy of a finished run (see :class:`Experiment`)."""
    evaluation = evaluate_checkpoint(checkpoint, ten_crop=True, train_accuracy=True, device=default_device())
    return {"val_top1_10crop": evaluation["ten_crop"]["top1"], "val_top5_10crop": evaluation["ten_crop"]["top5"],
            "train_top1_eval": evaluation["train"]["top1"], "train_loss_eval": evaluation["train"]["loss"]}


def _metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The metrics a run's weights file carries (as the reference's ``metrics.json``)."""
    keys = ("val_top1", "val_top5", "val_top1_10crop", "val_top5_10crop", "train_top1_eval", "epochs",
            "wall_minutes", "device")
    return {key: record[key] for key in keys if key in record}


def _reference_record(member: ReferenceWeights, final_evaluation: bool) -> dict[str, Any]:
    """The record of a published network: its recipe, code version, metrics and history, read from its file.

    Its training accuracy in eval mode is measured here (the file's bf16 weights; the other metrics are the
    ones published with it, measured on the run's fp32 checkpoint).
    """
    weights = member.value
    reference = weights.load()
    meta, metrics = reference.meta, reference.meta.get("metrics", {})
    history = meta.get("history", [])
    record = {"config": asdict(reference.config), "reference": f"ReferenceWeights.{member.name} ({weights.file})",
              "code_version": meta.get("code_version", "unknown"), "dataset_sha256": meta.get("dataset_sha256"),
              "device": weights.meta.hardware, "parameters": weights.meta.num_params, "epochs": len(history),
              **{key: history[-1][key] for key in ("train_loss", "train_top1")},
              "val_loss": history[-1]["val_loss"], "val_top1": metrics["val_top1"], "val_top5": metrics["val_top5"],
              "wall_minutes": metrics["wall_minutes"] if "wall_minutes" in metrics else weights.meta.train_minutes,
              "finished": None, "history": history}
    if final_evaluation:
        evaluation = evaluate_checkpoint(weights.path(), train_accuracy=True, device=default_device())
        record.update({"val_top1_10crop": metrics["val_top1_10crop"], "val_top5_10crop": metrics["val_top5_10crop"],
                       "train_top1_eval": evaluation["train"]["top1"], "train_loss_eval": evaluation["train"]["loss"]})
    return record


@dataclass(frozen=True)
class RunStatus:
    """One run of an experiment: ``state`` is ``"done"``, ``"running"``, ``"interrupted"`` or ``"left"``."""

    name: str
    state: str
    epochs_done: int
    epochs: int
    wall_minutes: float
    val_top1: float | None
    device: str | None = None
    optional: bool = False
    reference: bool = False


@dataclass(frozen=True)
class Status:
    """Where an experiment stands (:func:`experiment_status`); ``str()`` gives the ``--status`` text."""

    experiment: Experiment
    runs: tuple[RunStatus, ...]
    runner: int | None
    minutes_left: float | None

    def count(self, *states: str) -> int:
        """How many runs are in one of ``states``."""
        return sum(run.state in states for run in self.runs)

    def __str__(self) -> str:
        left = ("none" if self.count("done") == len(self.runs)
                else "unknown until a run has finished" if self.minutes_left is None
                else f"about {self.minutes_left / 60:.1f} h ({self.minutes_left:.0f} min, from the finished runs' "
                     f"mean time per epoch)")
        lines = [f"experiment {self.experiment.name!r} version {self.experiment.version}: {self.count('done')} done, "
                 f"{self.count('running')} running, {self.count('interrupted')} interrupted, {self.count('left')} "
                 f"left of {len(self.runs)} runs; time left: {left}",
                 f"budget: {self.experiment.budget}"]
        for run in self.runs:
            if run.state == "done":
                detail = (f"val top-1 {run.val_top1:.1%}, {run.wall_minutes:.1f} min, {run.device or 'device unknown'}"
                          + (" (published reference, not trained again)" if run.reference else ""))
            elif run.state == "left":
                detail = ("published reference: read from its file when the runner starts" if run.reference
                          else f"{run.epochs} epochs" + (" (if time allows)" if run.optional else ""))
            else:
                detail = f"epoch {run.epochs_done}/{run.epochs} done" + (
                    f" (process {self.runner})" if run.state == "running" else "; no runner: resumes on the next start")
            lines.append(f"  {run.state:<12} {run.name:<26} {detail}")
        return "\n".join(lines)


def experiment_status(name: str, *, results_dir: str | Path | None = None,
                      runs_dir: str | Path | None = None) -> Status:
    """What is done, running and left of experiment ``name``, and the estimated time left; reads files only.

    A run is ``done`` when recorded, ``running`` when it is the unrecorded run that a live runner works
    on, ``interrupted`` when it has finished epochs but no runner, and ``left`` otherwise. The time left
    is the finished runs' mean wall time per epoch times the epochs still to train.

    Raises:
        ValueError: an unknown experiment, or a results file that :func:`run_experiment` would refuse.
    """
    experiment = get_experiment(name)
    results = _read_results(Path(results_dir or RESULTS_DIR) / f"{name}.json", experiment)["runs"]
    folder = Path(runs_dir or RUNS_DIR) / name
    runner = _runner(folder / "runner.pid")
    runs, current = [], runner is not None  # a live runner works on the first unrecorded run
    for run, _ in experiment.references:  # recorded first by a runner, from their files
        record = results.get(run)
        runs.append(RunStatus(run, "left", 0, 0, 0.0, None, reference=True) if record is None else
                    RunStatus(run, "done", record["epochs"], record["epochs"], record["wall_minutes"],
                              record["val_top1"], record.get("device"), reference=True))
    for run, config in experiment.runs:
        if run in results:
            record = results[run]
            runs.append(RunStatus(run, "done", record["epochs"], config.epochs, record["wall_minutes"],
                                  record["val_top1"], record.get("device")))
            continue
        metrics = folder / run / "metrics.csv"
        history = read_metrics(metrics) if metrics.exists() else []
        state = "running" if current else "interrupted" if history else "left"
        current = False
        wall = history[-1]["wall_seconds"] / 60 if history else 0.0
        runs.append(RunStatus(run, state, len(history), config.epochs, wall, None,
                              optional=run in experiment.optional))
    finished = [run for run in runs if run.state == "done" and not run.reference]
    per_epoch = (sum(run.wall_minutes for run in finished) / sum(run.epochs for run in finished)) if finished else None
    minutes_left = (None if per_epoch is None
                    else per_epoch * sum(run.epochs - run.epochs_done for run in runs if run.state != "done"))
    return Status(experiment, tuple(runs), runner, minutes_left)


def _record(config: TrainConfig, history: list[dict[str, float]], state: dict[str, Any]) -> dict[str, Any]:
    """What the results file keeps of a finished run: recipe, code version, data checksum, device, final metrics,
    parameters, wall time, finishing time (UTC) and the per-epoch history."""
    last = history[-1]
    return {"config": asdict(config), "code_version": state.get("code_version", "unknown"),
            "dataset_sha256": state.get("dataset_sha256"), "device": describe_device(default_device()),
            "parameters": parameter_count(config), "epochs": len(history),
            **{key: last[key] for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5")},
            "wall_minutes": last["wall_seconds"] / 60,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "history": history}


def _read_results(path: Path, experiment: Experiment) -> dict[str, Any]:
    """The results recorded so far (an empty record if none), refusing any that the definition did not produce.

    Raises:
        ValueError: unreadable JSON; another experiment or version; a recorded run that the definition does
            not have, or with another recipe (the definition changed without a new version).
    """
    fresh = {"experiment": experiment.name, "version": experiment.version, "description": experiment.description,
             "budget": experiment.budget, "runs": {}}
    if not path.exists():
        return fresh
    try:
        results = json.loads(path.read_text())
        recorded, version = results["runs"], results["version"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a results file of experiment {experiment.name!r} ({error}); move it away "
                         f"and run again; nothing was run") from None
    if results.get("experiment") != experiment.name or version != experiment.version:
        raise ValueError(f"{path} holds results of version {version} of experiment {results.get('experiment')!r}, "
                         f"but {experiment.name!r} is now version {experiment.version}: one file would mix two "
                         f"versions. Commit it, then move it away (e.g. to {experiment.name}-v{version}.json) and "
                         f"run again; nothing was run")
    definition = dict(experiment.runs)
    references = {run for run, _ in experiment.references}
    changed = [run for run in recorded
               if run not in references and (run not in definition or _recipe_changed(recorded[run], definition[run]))]
    if changed:
        raise ValueError(f"{path} records runs {changed} that version {version} of {experiment.name!r} no longer "
                         f"defines as they were run: raise the experiment's version when a run changes; nothing "
                         f"was run")
    return {**fresh, "runs": recorded}


def _recipe_changed(record: Any, config: TrainConfig) -> bool:
    """Whether a recorded run's recipe is not ``config``'s (prose and how batches were run aside), or unreadable."""
    try:
        return bool(config_from_dict(record["config"]).recipe_differences(config))
    except (TypeError, KeyError, ValueError, AttributeError):
        return True


def _write_json(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    write_json_atomic(path, results)


def _runner(lock: Path) -> int | None:
    """The process id in ``lock`` if that process is alive, else ``None``."""
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return pid
    except (OSError, ValueError):
        return None
    return pid


def _claim(lock: Path, name: str) -> None:
    """Write this process's id into ``lock``, taking it over from a dead runner.

    Raises:
        ValueError: a live process holds it.
    """
    holder = _runner(lock)
    if holder is not None and holder != os.getpid():
        raise ValueError(f"experiment {name!r} is already being run by process {holder} ({lock}); see "
                         f"'python -m zfcore experiment {name} --status'; nothing was run")
    lock.write_text(str(os.getpid()))

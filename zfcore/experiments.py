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
ZF-64 (see :func:`ablations`); ``ci`` is a two-run miniature of it for tests and notebook CI.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from zfcore.checkpoints import build_model, load_checkpoint
from zfcore.models import CONV_LAYERS
from zfcore.profiles import TrainConfig, get_profile
from zfcore.train import read_metrics, train

__all__ = ["EXPERIMENTS", "RESULTS_DIR", "RUNS_DIR", "Experiment", "RunStatus", "Status", "ablations",
           "experiment_status", "get_experiment", "parameter_count", "parameter_matched", "run_experiment", "widen"]

ROOT = Path(__file__).resolve().parents[1]
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

    Raises:
        ValueError: a version below 1, no runs, or a run name that is repeated or not a plain folder name.
    """

    name: str
    version: int
    description: str
    budget: str
    runs: tuple[tuple[str, TrainConfig], ...]

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version={self.version!r} is not valid; give a whole number of at least 1")
        names = [name for name, _ in self.runs]
        bad = [name for name in names if not RUN_NAME.match(name)]
        if not names or bad or len(set(names)) != len(names):
            raise ValueError(f"runs={names!r} is not valid; give at least one run, with distinct names of lower-case "
                             f"letters, digits, '.' and '-' (bad: {bad})")


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


_DEFINITIONS: dict[str, Callable[[], Experiment]] = {"ablations": ablations, "ci": _ci}
EXPERIMENTS = tuple(_DEFINITIONS)


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in _DEFINITIONS:
        raise ValueError(f"experiment={name!r} is not valid; valid experiments: {EXPERIMENTS}")
    return _DEFINITIONS[name]()


# ------------------------------------------------------------------------------------------- the runner
def run_experiment(name: str, *, results_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Train the experiment's runs in order, recording each finished run in ``results_dir/NAME.json`` at once.

    A run already recorded is skipped; a run with a checkpoint but no record (interrupted, or finished just
    before its record was written) is resumed from ``runs_dir/NAME/RUN/checkpoint.pt``. Only one runner
    may work on an experiment's folder at a time (``runner.pid`` in it).

    Args:
        name: an experiment of :data:`EXPERIMENTS`.
        results_dir: where ``NAME.json`` is written (default :data:`RESULTS_DIR`).
        runs_dir: where the runs' folders go (default :data:`RUNS_DIR`).
        progress: show the runs' progress bars and one line per run.

    Returns:
        The results file's content: ``experiment``, ``version``, ``description``, ``budget`` and ``runs``,
        one record per finished run (see :func:`_record`).

    Raises:
        ValueError: an unknown experiment; a results file of another version or with runs the definition
            does not have (nothing is run); another live runner on the same experiment.
    """
    experiment = get_experiment(name)
    results_file = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    folder = Path(runs_dir or RUNS_DIR) / name
    results = _read_results(results_file, experiment)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / "runner.pid"
    _claim(lock, name)
    try:
        for index, (run, config) in enumerate(experiment.runs, start=1):
            if run in results["runs"]:
                continue
            checkpoint = folder / run / "checkpoint.pt"
            resume = checkpoint if checkpoint.exists() else None
            if progress:
                print(f"{name} run {index}/{len(experiment.runs)}: {run}" + (" (resumed)" if resume else ""),
                      flush=True)
            history = train(config, folder / run, resume=resume, progress=progress)
            results["runs"][run] = _record(config, history, load_checkpoint(checkpoint, kind="training"))
            _write_json(results, results_file)
    finally:
        lock.unlink(missing_ok=True)
    return results


@dataclass(frozen=True)
class RunStatus:
    """One run of an experiment: ``state`` is ``"done"``, ``"running"``, ``"interrupted"`` or ``"left"``."""

    name: str
    state: str
    epochs_done: int
    epochs: int
    wall_minutes: float
    val_top1: float | None


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
                detail = f"val top-1 {run.val_top1:.1%}, {run.wall_minutes:.1f} min"
            elif run.state == "left":
                detail = f"{run.epochs} epochs"
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
    for run, config in experiment.runs:
        if run in results:
            record = results[run]
            runs.append(RunStatus(run, "done", record["epochs"], config.epochs, record["wall_minutes"],
                                  record["val_top1"]))
            continue
        metrics = folder / run / "metrics.csv"
        history = read_metrics(metrics) if metrics.exists() else []
        state = "running" if current else "interrupted" if history else "left"
        current = False
        wall = history[-1]["wall_seconds"] / 60 if history else 0.0
        runs.append(RunStatus(run, state, len(history), config.epochs, wall, None))
    finished = [run for run in runs if run.state == "done"]
    per_epoch = (sum(run.wall_minutes for run in finished) / sum(run.epochs for run in finished)) if finished else None
    minutes_left = (None if per_epoch is None
                    else per_epoch * sum(run.epochs - run.epochs_done for run in runs if run.state != "done"))
    return Status(experiment, tuple(runs), runner, minutes_left)


def _record(config: TrainConfig, history: list[dict[str, float]], state: dict[str, Any]) -> dict[str, Any]:
    """What the results file keeps of a finished run: recipe, code version, final metrics, parameters, wall time,
    finishing time (UTC) and the per-epoch history."""
    last = history[-1]
    return {"config": asdict(config), "code_version": state.get("code_version", "unknown"),
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
    definition = {run: json.loads(json.dumps(asdict(config))) for run, config in experiment.runs}
    changed = [run for run in recorded if run not in definition or recorded[run].get("config") != definition[run]]
    if changed:
        raise ValueError(f"{path} records runs {changed} that version {version} of {experiment.name!r} no longer "
                         f"defines as they were run: raise the experiment's version when a run changes; nothing "
                         f"was run")
    return {**fresh, "runs": recorded}


def _write_json(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(partial, path)


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

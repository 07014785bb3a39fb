"""The experiment runner: trains an experiment's runs in order, records each at once, and says where it stands.

:func:`run_experiment` trains the runs of an :class:`~zfcore.experiments.Experiment` into
``runs/experiments/NAME/RUN`` (each resumable from its ``checkpoint.pt``) and, after every finished run,
rewrites ``data/experiments/NAME.json`` atomically with that run's config, code version, data checksum,
device, final metrics, parameter count and wall time (``commit=True`` also commits it). A restarted
runner skips the recorded runs and resumes the unfinished one; :func:`experiment_status` says what is
done, running and left. The tracked results record where they came from: a runner that writes into the
repository refuses a tree whose ``zfcore`` differs from its commit (``allow_dirty=True`` records the run
as dirty). ``only`` trains a chosen subset (another machine, a GPU, can take runs from the end of the list),
and :func:`merge_results` brings the records and kept weights it wrote back into this repository's file.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from zfcore.checkpoints import config_from_dict, load_checkpoint
from zfcore.devices import default_device, describe_device
from zfcore.evaluation import evaluate_checkpoint
from zfcore.experiments import RESULTS_DIR, RUNS_DIR, Experiment, get_experiment, parameter_count
from zfcore.profiles import TrainConfig
from zfcore.provenance import DIRTY, code_version, refuse_dirty
from zfcore.locks import lock, lock_holder
from zfcore.store import (command_line, copy_file_atomic, pack_flags, probe_output, sha256, write_json_atomic,
                          write_text_atomic)
from zfcore.train import read_metrics, train
from zfcore.weights import ReferenceWeights, export_reference

__all__ = ["RunStatus", "Status", "experiment_status", "merge_results", "run_experiment"]

RUNNER_LOCK = "runner.pid"
"""The lock file (:func:`zfcore.locks.lock`: process id, host, start) of the runner working on an experiment."""
RUNNER_CURRENT = "runner.current"
"""The name of the run the runner is training, beside its lock: with ``only`` it need not be the first one left."""

def run_experiment(name: str, *, results_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                   progress: bool = True, allow_dirty: bool = False, commit: bool = False,
                   only: Sequence[str] | None = None) -> dict[str, Any]:
    """Train the experiment's runs in order, recording each finished run in ``results_dir/NAME.json`` at once.

    A run already recorded is skipped; a run with a checkpoint but no record (interrupted, or finished just
    before its record was written) is resumed from ``runs_dir/NAME/RUN/checkpoint.pt``. Only one runner
    may work on an experiment's folder at a time (it holds the lock ``runner.pid`` there, taken atomically;
    one left by a runner that is no longer running is taken over with a warning). The experiment's
    reference rows are recorded first, from their published files (nothing is trained for them). Both
    folders are checked before anything is read or run.

    Args:
        name: an experiment of :data:`EXPERIMENTS`.
        results_dir: where ``NAME.json`` is written (default :data:`RESULTS_DIR`).
        runs_dir: where the runs' folders go (default :data:`RUNS_DIR`).
        progress: show the runs' progress bars and one line per run.
        allow_dirty: record into the repository even though ``zfcore`` has uncommitted changes (each
            record then says so: its ``code_version`` ends in ``+dirty``). Default ``False``: refused.
        commit: after each record, ``git commit`` the results file (and the run's kept weights) alone.
        only: train just these runs (names of the experiment's trained runs, trained in the experiment's order);
            default ``None``: every run. Another machine takes runs from the end of the list this way, into a
            copy of the results file, and :func:`merge_results` brings its records back.

    Returns:
        The results file's content: ``experiment``, ``version``, ``description``, ``budget`` and ``runs``,
        one record per finished run (see :func:`_record`).

    Raises:
        ValueError: an unknown experiment; ``only`` naming a run the experiment does not train; a results file
            of another version, with runs the definition does not have, or with a record that is not one
            (nothing is run); another live runner on the same experiment (:class:`~zfcore.locks.LockedError`);
            results that would go into the repository from a tree with uncommitted changes in ``zfcore``
            (without ``allow_dirty``); a results or runs folder that cannot be written
            (:class:`~zfcore.store.OutputError`).
        TrainingInterrupted: Ctrl-C during a run (it names the checkpoint the next start resumes from).
    """
    experiment = get_experiment(name)
    chosen = _chosen_runs(experiment, only)
    results_file = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    folder = Path(runs_dir or RUNS_DIR) / name
    probe_output(results_file.parent, what="results_dir")
    probe_output(results_file, kind="file", what="results file")
    probe_output(folder.parent, what="runs_dir")
    probe_output(folder, what="experiment folder")
    results = _read_results(results_file, experiment)
    refuse_dirty(results_file, allow_dirty=allow_dirty, version=code_version())
    folder.mkdir(parents=True, exist_ok=True)
    with lock(folder / RUNNER_LOCK, f"experiment {name!r}"):
        (folder / RUNNER_CURRENT).unlink(missing_ok=True)
        for run, member in experiment.references:
            if run not in results["runs"]:
                results["runs"][run] = _reference_record(ReferenceWeights[member], experiment.final_evaluation)
                _save(results, results_file, [], commit, f"{name}: {run} recorded (the published {member})")
        if experiment.final_evaluation:
            _add_per_image(results, results_file, experiment, commit)
        for index, (run, config) in enumerate(experiment.runs, start=1):
            if run in results["runs"] or run not in chosen:
                continue
            checkpoint = folder / run / "checkpoint.pt"
            resume = checkpoint if checkpoint.exists() else None
            if progress:
                print(f"{name} run {index}/{len(experiment.runs)}: {run}" + (" (resumed)" if resume else ""),
                      flush=True)
            write_text_atomic(folder / RUNNER_CURRENT, run)
            history = train(config, folder / run, resume=resume, progress=progress)
            record = _record(config, history, load_checkpoint(checkpoint, kind="training"))
            if experiment.final_evaluation:
                record.update(_final_evaluation(checkpoint))
            weights = export_reference(checkpoint, folder / run / "weights.pt", metrics=_metrics(record))
            kept = []
            if run in experiment.keep_weights:
                kept = [results_file.parent / name / f"{run}.pt"]
                copy_file_atomic(weights, kept[0])
                record["weights"] = {"file": f"{name}/{run}.pt", "sha256": sha256(kept[0]),
                                     "megabytes": round(kept[0].stat().st_size / 1e6, 2)}
            results["runs"][run] = record
            _save(results, results_file, kept, commit,
                  f"{name}: {run} recorded (val top-1 {record['val_top1']:.1%}, {record['wall_minutes']:.0f} min)")
            if progress:
                print(f"{name}: {run} recorded in {results_file}", flush=True)
    return results


def _chosen_runs(experiment: Experiment, only: Sequence[str] | None) -> set[str]:
    """The trained runs ``only`` names (all of them for ``None``), refusing a name the experiment does not train."""
    trained = [run for run, _ in experiment.runs]
    if only is None:
        return set(trained)
    if isinstance(only, str) or not only:
        raise ValueError(f"only={only!r} is not valid; give a list of runs of {experiment.name!r}: {tuple(trained)}")
    unknown = [run for run in only if run not in trained]
    if unknown:
        raise ValueError(f"only={unknown!r} are not runs that {experiment.name!r} trains; valid: {tuple(trained)}")
    return set(only)


def merge_results(name: str, other: str | Path, *, results_dir: str | Path | None = None,
                  commit: bool = False) -> list[str]:
    """Add the runs recorded in another copy of ``NAME.json`` (say, from a GPU that trained runs with ``only``).

    Both files must be of the same experiment and version, with the recipes the definition gives; a run
    recorded in both must have the same record. Each kept weights file of an added run is copied from beside
    ``other`` (``OTHER_DIR/NAME/RUN.pt``) after its SHA-256 is checked against the record. The merged file is
    written atomically, and with ``commit`` committed with the weights it gained.

    Args:
        name: an experiment of :data:`EXPERIMENTS`.
        other: the other results file.
        results_dir: where this repository's ``NAME.json`` is (default :data:`RESULTS_DIR`).
        commit: ``git commit`` the merged file and the added weights alone.

    Returns:
        The names of the runs added, in the experiment's order (none when ``other`` adds nothing).

    Raises:
        ValueError: an unknown experiment; either file refused as :func:`run_experiment` refuses one; ``other``
            missing, or the same file; a run recorded in both with different records; a kept weights file
            outside ``other``'s folder, missing, or with another SHA-256 than its record's. Nothing is written then.
    """
    experiment = get_experiment(name)
    results_file = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    other = Path(other)
    if not other.is_file() or (results_file.exists() and other.resolve() == results_file.resolve()):
        raise ValueError(f"other={str(other)!r} is not valid; give another copy of {name}.json, one that exists")
    ours, theirs = _read_results(results_file, experiment), _read_results(other, experiment)
    differing = [run for run in theirs["runs"] if run in ours["runs"] and ours["runs"][run] != theirs["runs"][run]]
    if differing:
        raise ValueError(f"runs {differing} are recorded in both {results_file} and {other} with different records; "
                         f"keep one: remove it from one file, then merge again; nothing was merged")
    order = [run for run, _ in (*experiment.references, *experiment.runs)]
    added = [run for run in order if run in theirs["runs"] and run not in ours["runs"]]
    copies = []
    for run in added:
        weights = theirs["runs"][run].get("weights")
        if weights is None:
            continue
        relative = Path(weights["file"])
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{other} records the weights of {run!r} at {weights['file']!r}, outside the folder of "
                             f"its results; give a results file whose weights sit beside it; nothing was merged")
        source = other.parent / relative
        if not source.is_file() or sha256(source) != weights["sha256"]:
            raise ValueError(f"{source} is missing or not the weights {other} records for {run!r} (SHA-256 "
                             f"{weights['sha256'][:12]}...); copy the file beside it, then merge again; nothing was "
                             f"merged")
        copies.append((source, results_file.parent / relative))
    for source, target in copies:
        copy_file_atomic(source, target)
    if added:
        ours["runs"].update({run: theirs["runs"][run] for run in added})
        ours["runs"] = {run: ours["runs"][run] for run in order if run in ours["runs"]}
        _save(ours, results_file, [target for _, target in copies], commit,
              f"{name}: {', '.join(added)} recorded (merged from another machine's {other.name})")
    return added


def _save(results: dict[str, Any], results_file: Path, extra: list[Path], commit: bool, message: str) -> None:
    """Write the results atomically and, with ``commit``, commit that file and ``extra`` alone."""
    write_json_atomic(results_file, results)
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


def _final_evaluation(checkpoint: Path) -> dict[str, Any]:
    """10-crop validation accuracy, eval-mode training accuracy and per-image correctness of a finished run (see
    :class:`Experiment`)."""
    evaluation = evaluate_checkpoint(checkpoint, ten_crop=True, train_accuracy=True, device=default_device(),
                                     per_image=True)
    return {"val_top1_10crop": evaluation["ten_crop"]["top1"], "val_top5_10crop": evaluation["ten_crop"]["top5"],
            "train_top1_eval": evaluation["train"]["top1"], "train_loss_eval": evaluation["train"]["loss"],
            **_per_image(evaluation, "the run's final checkpoint")}


def _per_image(evaluation: dict[str, Any], source: str) -> dict[str, Any]:
    """The validation images a network gets right, single view and 10-crop, packed (:func:`~zfcore.store.pack_flags`),
    so that two runs can be compared image by image; ``source`` says which weights were evaluated."""
    return {"val_images": len(evaluation["single"]["correct"]),
            "val_correct": pack_flags(evaluation["single"]["correct"].numpy()),
            "val_correct_10crop": pack_flags(evaluation["ten_crop"]["correct"].numpy()),
            "val_correct_of": source}


def _add_per_image(results: dict[str, Any], results_file: Path, experiment: Experiment, commit: bool) -> None:
    """Add per-image correctness to recorded runs that lack it and whose weights are at hand (the references and
    the runs that keep their weights); runs recorded before the runner kept it get it this way."""
    references = dict(experiment.references)
    for run, record in results["runs"].items():
        if "val_correct" in record:
            continue
        if run in references:
            weights, source = ReferenceWeights[references[run]].value.path(), "its published bf16 weights"
        elif "weights" in record:
            weights, source = results_file.parent / record["weights"]["file"], "its kept bf16 weights"
        else:
            continue
        evaluation = evaluate_checkpoint(weights, ten_crop=True, device=default_device(), per_image=True)
        record.update(_per_image(evaluation, source))
        _save(results, results_file, [], commit, f"{experiment.name}: {run}'s per-image correctness recorded")


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
                     f"median time per epoch)")
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
    on (the one it names in :data:`RUNNER_CURRENT`, else the first unrecorded run), ``interrupted`` when it has finished epochs but no runner, and ``left`` otherwise. The time left
    is the finished runs' median time per epoch (:func:`_minutes_per_epoch`) times the epochs still to train.

    Raises:
        ValueError: an unknown experiment, or a results file that :func:`run_experiment` would refuse.
    """
    experiment = get_experiment(name)
    results = _read_results(Path(results_dir or RESULTS_DIR) / f"{name}.json", experiment)["runs"]
    folder = Path(runs_dir or RUNS_DIR) / name
    holder = lock_holder(folder / RUNNER_LOCK)
    runner = holder.pid if holder is not None else None
    named = folder / RUNNER_CURRENT
    working_on = named.read_text(encoding="utf-8").strip() if runner is not None and named.is_file() else None
    # the run the runner names; until it names one (or once that one is recorded), the first unrecorded run
    runs, current = [], runner is not None and (working_on is None or working_on in results)
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
        state = "running" if current or run == working_on else "interrupted" if history else "left"
        current = False
        wall = history[-1]["wall_seconds"] / 60 if history else 0.0
        runs.append(RunStatus(run, state, len(history), config.epochs, wall, None,
                              optional=run in experiment.optional))
    per_epoch = _minutes_per_epoch([results[run.name] for run in runs if run.state == "done" and not run.reference])
    minutes_left = (None if per_epoch is None
                    else per_epoch * sum(run.epochs - run.epochs_done for run in runs if run.state != "done"))
    return Status(experiment, tuple(runs), runner, minutes_left)


def _minutes_per_epoch(records: list[dict[str, Any]]) -> float | None:
    """The median minutes an epoch took in the finished runs' histories, so that epochs slowed by a pause or by a
    shared CPU do not inflate the estimate; a record without per-epoch times counts its mean epoch. ``None``: no
    finished run."""
    minutes = [epoch["epoch_seconds"] / 60 if "epoch_seconds" in epoch else record["wall_minutes"] / record["epochs"]
               for record in records for epoch in record.get("history") or [{}] * record["epochs"]]
    return statistics.median(minutes) if minutes else None


def _record(config: TrainConfig, history: list[dict[str, float]], state: dict[str, Any]) -> dict[str, Any]:
    """What the results file keeps of a finished run: recipe, code version, data checksum, device, the command
    that recorded it (``allow_dirty`` if its code was not committed), final metrics, parameters, wall time,
    finishing time (UTC) and the per-epoch history."""
    last = history[-1]
    version = state.get("code_version", "unknown")
    return {"config": asdict(config), "code_version": version,
            "code_versions": state.get("code_versions", [version]),
            "dataset_sha256": state.get("dataset_sha256"), "device": describe_device(default_device()),
            "command": command_line(), **({"allow_dirty": True} if version.endswith(DIRTY) else {}),
            "parameters": parameter_count(config), "epochs": len(history),
            **{key: last[key] for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5")},
            "wall_minutes": last["wall_seconds"] / 60,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "history": history}


def _read_results(path: Path, experiment: Experiment) -> dict[str, Any]:
    """The results recorded so far (an empty record if none), refusing any that the definition did not produce.

    Raises:
        ValueError: unreadable JSON; another experiment or version; ``runs`` that is not a mapping, a record
            that is not one, or whose ``epochs`` (a whole number >= 1: a run with none is not done),
            ``val_top1`` (a number in [0, 1]) or ``wall_minutes`` (a number >= 0) is missing or wrong (one
            line naming the file and the field); a recorded run that the definition does not have, or with
            another recipe (the definition changed without a new version).
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
    _check_records(path, recorded, fields=False)
    definition = dict(experiment.runs)
    references = {run for run, _ in experiment.references}
    changed = [run for run in recorded
               if run not in references and (run not in definition or _recipe_changed(recorded[run], definition[run]))]
    if changed:
        raise ValueError(f"{path} records runs {changed} that version {version} of {experiment.name!r} no longer "
                         f"defines as they were run: raise the experiment's version when a run changes; nothing "
                         f"was run")
    _check_records(path, recorded, fields=True)
    return {**fresh, "runs": recorded}


def _check_records(path: Path, recorded: Any, *, fields: bool) -> None:
    """Refuse a results file whose ``runs`` are not records (and, with ``fields``, records whose fields
    :func:`experiment_status` cannot read)."""

    def refuse(field: str, problem: str) -> ValueError:
        return ValueError(f"{path}: {field} {problem}; the file was edited or damaged: fix that field, or move the "
                          f"file away and run again; nothing was run")

    def shown(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    if not isinstance(recorded, dict):
        raise refuse("runs", f"is a {type(recorded).__name__}, not a mapping of run names to records")
    for run, record in recorded.items():
        if not isinstance(record, dict):
            raise refuse(f"runs[{run!r}]", f"is a {type(record).__name__} ({shown(record)}), not a record")
    if not fields:
        return
    for run, record in recorded.items():
        if "epochs" not in record:
            raise refuse(f"runs[{run!r}]", "lacks epochs")
        epochs = record["epochs"]
        if isinstance(epochs, bool) or not isinstance(epochs, int):
            raise refuse(f"runs[{run!r}].epochs", f"is {shown(epochs)}, not a whole number")
        if epochs < 1:
            raise refuse(f"runs[{run!r}].epochs", f"is {epochs}: a run with no finished epoch is not done")
        for field, low, high in (("val_top1", 0.0, 1.0), ("wall_minutes", 0.0, math.inf)):
            if field not in record:
                raise refuse(f"runs[{run!r}]", f"lacks {field}")
            value = record[field]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                    or not math.isfinite(value):
                span = "in [0, 1]" if high == 1.0 else ">= 0"
                raise refuse(f"runs[{run!r}].{field}", f"is {shown(value)}, not a finite number {span}")


def _recipe_changed(record: Any, config: TrainConfig) -> bool:
    """Whether a recorded run's recipe is not ``config``'s (prose and how batches were run aside), or unreadable."""
    try:
        return bool(config_from_dict(record["config"]).recipe_differences(config))
    except (TypeError, KeyError, ValueError, AttributeError):
        return True

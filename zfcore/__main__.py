"""The zfcore command line: train, evaluate and export ZFNet / ZF-64 networks, and run experiments.

Run "python -m zfcore COMMAND --help" for a command's options. Datasets are looked for under
--data-root (ZFBOOK_DATA_ROOT), then as archives in --mirror (ZFBOOK_MIRROR), then downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from zfcore.profiles import PROFILES, get_profile

# Python argument names in library error messages -> the flags a CLI user typed
_FLAGS = {"resume": "--resume", "epochs": "--epochs", "stop_after": "--stop-after", "limit": "--limit",
          "out_dir": "--out", "precision": "--precision", "init": "--init", "preprocessing": "--preprocessing",
          "renorm_rms": "--renorm-rms", "frozen_sizes": "--frozen-sizes", "network_sizes": "--network-sizes",
          "scratch_sizes": "--scratch-sizes", "probe_layers": "--probe-layers", "probe_losses": "--probe-losses",
          "probe_weight_decays": "--probe-weight-decays", "probe_poolings": "--probe-poolings",
          "results_dir": "--results", "runs_dir": "--runs", "journal": "--journal", "run": "--run", "out": "--out"}


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, with the one line the CLI prints: where the work can be resumed from, and the command."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2, like every expected CLI failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; give a whole number") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not valid; give a whole number of at least 1")
    return value


def _count(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not valid; give 0 (all) or a positive number")
    return value


def _non_negative_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; give a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not valid; give a finite number >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    plain = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="python -m zfcore", description=__doc__, formatter_class=plain)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     title="commands (run 'python -m zfcore COMMAND --help')")

    train_cmd = commands.add_parser(
        "train", help="train a profile's network (resumable; torchrun for DDP)", formatter_class=plain,
        description="Train a profile's network into a run folder: checkpoint.pt, metrics.csv and snapshots/ are\n"
                    "written after every epoch. --resume continues a run with the schedule it was started with.")
    train_cmd.add_argument("--profile", choices=tuple(PROFILES), default="book", help="what to train (default: book)")
    train_cmd.add_argument("--out", type=Path, help="the run folder (default: runs/PROFILE)")
    train_cmd.add_argument("--resume", type=Path, help="a checkpoint.pt to continue from")
    train_cmd.add_argument("--epochs", type=_positive_int,
                           help="the schedule's length in epochs (default: the profile's; fixed once a run starts)")
    train_cmd.add_argument("--stop-after", type=_positive_int, metavar="N",
                           help="end after N epochs, keeping the schedule planned for --epochs (resume later)")
    train_cmd.add_argument("--init", choices=("paper", "he", "torch"), help="override the profile's initialisation")
    train_cmd.add_argument("--preprocessing", choices=("pixel-mean", "mean-std"),
                           help="override the profile's input normalisation (pixel-mean: the paper's)")
    train_cmd.add_argument("--renorm-rms", type=_non_negative_number, metavar="RMS",
                           help="override the profile's filter renormalisation radius (0: off, as in Fig. 6(a))")
    train_cmd.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                           help="autocast precision (default: auto, bf16 where the hardware has it)")
    train_cmd.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    _data_options(train_cmd)

    eval_cmd = commands.add_parser("evaluate", help="top-1/top-5 of a checkpoint on its validation set",
                                   formatter_class=plain, description="Top-1/top-5 of a checkpoint on the "
                                   "validation set of the data it was trained on, as JSON.")
    eval_cmd.add_argument("--checkpoint", type=Path, help="a checkpoint.pt or reference file (default: the reference)")
    eval_cmd.add_argument("--limit", type=_count, default=0, help="evaluate on the first N val images only (default 0: all)")
    eval_cmd.add_argument("--ten-crop", action="store_true", help="also report 10-crop accuracy")
    _data_options(eval_cmd)

    export_cmd = commands.add_parser(
        "export", help="turn a finished run into reference files (a new folder, or data/reference on request)",
        formatter_class=plain,
        description="Evaluate a finished run (single view and 10-crop) and write its small bf16 weights with\n"
                    "metadata, metrics and Fig. 4 data (about 5 minutes) into a new folder, runs/export-RUN by\n"
                    "default. --replace-reference replaces the committed files in data/reference instead (the\n"
                    "set is swapped in whole; the other files there are kept).")
    export_cmd.add_argument("--run", type=Path, default=Path("runs/book"), help="the run folder (default: runs/book)")
    export_cmd.add_argument("--out", type=Path,
                            help="destination folder, new or empty (default: runs/export-RUN, RUN the run's name)")
    export_cmd.add_argument("--replace-reference", action="store_true",
                            help="replace the committed reference files in data/reference (not with --out)")
    _data_options(export_cmd)

    experiment_cmd = commands.add_parser(
        "experiment", help="run a named, versioned list of training runs (resumable), or show its --status",
        formatter_class=plain,
        description="Train an experiment's runs one after another into runs/experiments/NAME/RUN and record each\n"
                    "finished run in data/experiments/NAME.json at once (commit it). A restart skips recorded runs\n"
                    "and resumes the unfinished one. Start long ones in the background:\n"
                    "  nohup python -m zfcore experiment ablations > runs/experiments/ablations.log 2>&1 &")
    experiment_cmd.add_argument("name", metavar="NAME",
                                help="the experiment: ablations (Table 3 at 6 epochs), verdict-runs (the 28-epoch runs "
                                     "that test C5, C8-C10) or ci (a seconds-long miniature)")
    experiment_cmd.add_argument("--status", action="store_true",
                                help="show what is done, running and left, and the estimated time left; train nothing")
    experiment_cmd.add_argument("--results", type=Path, help="where NAME.json goes (default: data/experiments)")
    experiment_cmd.add_argument("--runs", type=Path, help="where the runs' folders go (default: runs/experiments)")
    experiment_cmd.add_argument("--allow-dirty", action="store_true",
                                help="record into the repository although zfcore has uncommitted changes (recorded as "
                                     "'+dirty'; refused by default)")
    experiment_cmd.add_argument("--commit", action="store_true",
                                help="git-commit the results file (and kept weights) after each finished run")
    experiment_cmd.add_argument("--only", type=_names, metavar="RUN,...",
                                help="train only these runs (another machine, e.g. a GPU, takes runs from the end of "
                                     "the list into a copy of the results: --results elsewhere, then --merge)")
    experiment_cmd.add_argument("--merge", type=Path, metavar="FILE",
                                help="add the runs recorded in another copy of NAME.json (and the kept weights beside "
                                     "it, checked by SHA-256); train nothing")
    _data_options(experiment_cmd)

    transfer_cmd = commands.add_parser(
        "transfer", help="Caltech-101 transfer (Table 4, Fig. 9) and layer probes (Table 7) as JSON",
        formatter_class=plain,
        description="Decode Caltech-101 at the network's input size and write transfer.json (a new softmax on frozen\n"
                    "fc7, fine-tuning, training from scratch) and probes.json (a linear classifier per layer). The\n"
                    "defaults are the committed results' settings (hours on a CPU). The network: --checkpoint, else\n"
                    "the active profile's (ZFBOOK_PROFILE; book: the reference).")
    transfer_cmd.add_argument("--what", choices=("transfer", "probes", "all", "cv-layer", "duplicates"), default="all",
                              help="what to measure (default: all: transfer and probes); cv-layer: frozen transfer "
                                   "from the layer chosen by cross-validation on the training images, at each of "
                                   "--network-sizes on --splits splits (transfer-cv-layer.json); duplicates: "
                                   "Caltech-101 images also in Tiny ImageNet, and the frozen rows of OUT/transfer.json "
                                   "without them (caltech-duplicates.json)")
    transfer_cmd.add_argument("--out", type=Path,
                              help="where the JSON files go (default: data/experiments; runs/transfer-PROFILE for a "
                                   "profile other than book)")
    transfer_cmd.add_argument("--checkpoint", type=Path, help="a checkpoint.pt or reference file to transfer from")
    transfer_cmd.add_argument("--frozen-sizes", type=_sizes, default=(1, 2, 5, 10, 15, 30), metavar="N,N,...",
                              help="training images per class of the frozen-fc7 softmax (default: 1,2,5,10,15,30)")
    transfer_cmd.add_argument("--network-sizes", type=_sizes, default=(15, 30), metavar="N,N,...",
                              help="sizes of the fine-tuned and from-scratch networks (default: 15,30)")
    transfer_cmd.add_argument("--scratch-sizes", type=_sizes, default=(15, 30), metavar="N,N,...",
                              help="sizes of the from-scratch learning curve (Fig. 9), trained besides "
                                   "--network-sizes; by default the same 15,30, so the curve has no points of its own")
    transfer_cmd.add_argument("--splits", type=_positive_int, default=5,
                              help="random splits of the frozen softmax and the probes (default: 5)")
    transfer_cmd.add_argument("--network-seeds", type=_positive_int, default=5, metavar="K",
                              help="splits of the fine-tuned and from-scratch networks (default: 5)")
    transfer_cmd.add_argument("--finetune-steps", type=_sizes, default=(75, 150, 300, 600, 1200), metavar="N,N,...",
                              help="SGD steps of fine-tuning; several: each size trains for the one with the best "
                                   "accuracy on held-out training images of the first split, tried in order until a "
                                   "step count changes it by less than 2 points (default: 75,150,300,600,1200)")
    transfer_cmd.add_argument("--scratch-steps", type=_sizes, default=(1500, 3000, 6000, 12000, 24000),
                              metavar="N,N,...",
                              help="SGD steps of training from scratch, one or several as --finetune-steps "
                                   "(default: 1500,3000,6000,12000,24000)")
    transfer_cmd.add_argument("--probe-layers", type=_names, default=None, metavar="LAYER,...",
                              help="the probes' layers (default: conv1,...,fc7)")
    transfer_cmd.add_argument("--probe-losses", type=_names, default=("softmax",), metavar="LOSS,...",
                              help="the probes' classifiers, of softmax,svm (default: softmax)")
    transfer_cmd.add_argument("--probe-per-class", type=_positive_int, default=30, metavar="N",
                              help="training images per class of the probes (default: 30)")
    transfer_cmd.add_argument("--probe-weight-decays", type=_numbers, default=None, metavar="X,X,...",
                              help="the grid each probe's weight decay is chosen from by CV on the training images "
                                   "(default: 1e-4,1e-3,1e-2,0.1; wide: 1e-7,1e-6,...,100,1000, powers of 10)")
    transfer_cmd.add_argument("--probe-poolings", type=_sizes, default=None, metavar="G,G,...",
                              help="max-pool each conv map to G x G cells; with several, each conv probe reads out the "
                                   "one chosen by CV on the training images (default: 2)")
    transfer_cmd.add_argument("--journal", type=Path, metavar="PATH",
                              help="where each fine-tuned or from-scratch network's split is recorded as it finishes; "
                                   "a repeated run reads them back instead of training again (default: "
                                   "OUT/transfer-journal.jsonl; delete it to train every split again)")
    transfer_cmd.add_argument("--allow-dirty", action="store_true",
                              help="write into the repository although zfcore has uncommitted changes (recorded as "
                                   "'+dirty' and 'allow_dirty'; refused by default)")
    _data_options(transfer_cmd)
    scorecard_cmd = commands.add_parser(
        "scorecard", help="write the book's scorecard page from the chapters' saved verdicts (data/verdicts)",
        description="Write book/scorecard.md from data/verdicts/<claim>.json, the records each chapter saves when it\n"
                    "runs under the book profile. --check writes nothing and fails if the page is out of date.",
        formatter_class=plain)
    scorecard_cmd.add_argument("--check", action="store_true",
                               help="exit 1 if book/scorecard.md differs from what the records give")
    return parser


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(part) for part in text.split(","))


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; give numbers separated by commas, e.g. 1e-4,1e-3")


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(","))


def _data_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--data-root", type=Path, help="where datasets are or will be extracted (ZFBOOK_DATA_ROOT)")
    command.add_argument("--mirror", type=Path, help="a folder of dataset archives to use before downloading (ZFBOOK_MIRROR)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.command == "scorecard":
        return _scorecard(check=args.check)
    if args.data_root is not None:
        os.environ["ZFBOOK_DATA_ROOT"] = str(args.data_root)
    if args.mirror is not None:
        os.environ["ZFBOOK_MIRROR"] = str(args.mirror)
    from zfcore.data.locate import data_root

    data_root()  # a data root that is a file or cannot be written: one clear error before anything else
    if args.command == "train":
        from zfcore.train import TrainingInterrupted, train

        config = get_profile(args.profile).train
        overrides = {"epochs": args.epochs, "init": args.init, "preprocessing": args.preprocessing,
                     "renorm_rms": args.renorm_rms, "compile": True if args.compile else None}
        config = config.replace(**{key: value for key, value in overrides.items() if value is not None})
        out = args.out or Path("runs") / args.profile
        try:
            history = train(config, out, resume=args.resume, precision=args.precision, stop_after=args.stop_after)
        except TrainingInterrupted as error:
            raise _Interrupted(_train_resume_line(argv, out, error)) from None
        print(json.dumps(history[-1] if history else {}, indent=1))
        return 0
    if args.command == "experiment":
        from zfcore.runner import experiment_status, merge_results, run_experiment

        places = {"results_dir": args.results, "runs_dir": args.runs}
        if args.merge is not None:
            added = merge_results(args.name, args.merge, results_dir=args.results, commit=args.commit)
            print(f"merged from {args.merge}: {', '.join(added) if added else 'no new runs'}")
        elif not args.status:
            try:
                run_experiment(args.name, allow_dirty=args.allow_dirty, commit=args.commit, only=args.only, **places)
            except KeyboardInterrupt as error:
                checkpoint = getattr(error, "checkpoint", None)
                where = ("" if not hasattr(error, "checkpoint")
                         else f"; the unfinished run's last finished epoch is in {checkpoint}" if checkpoint is not None
                         else "; the unfinished run had not finished an epoch")
                raise _Interrupted(f"experiment {args.name!r} was interrupted{where}. Resume it with: "
                                   f"{_command(argv)} (recorded runs are skipped, the unfinished one resumes)"
                                   ) from None
        print(experiment_status(args.name, **places))
        return 0
    if args.command == "transfer":
        return _transfer(args)
    if args.command == "export":
        from zfcore.export import export_run
        from zfcore.weights import REFERENCE_DIR

        if args.replace_reference and args.out is not None:
            raise ValueError(f"--replace-reference replaces the committed files in {REFERENCE_DIR}, and --out "
                             f"{args.out} names another folder: give one of them; nothing was run")
        out = REFERENCE_DIR if args.replace_reference else args.out
        print(json.dumps(export_run(args.run, out, replace=args.replace_reference), indent=1))
        return 0
    from zfcore.evaluation import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(args.checkpoint, limit=args.limit, ten_crop=args.ten_crop), indent=1))
    return 0


def _scorecard(*, check: bool) -> int:
    """``scorecard``: write the page (or, with ``check``, compare it) and say where it is."""
    from zfcore.verdicts import SCORECARD_PAGE, recorded, scorecard, write_scorecard

    if not check:
        print(f"wrote {write_scorecard()} ({len(recorded())} verdicts)")
        return 0
    current = SCORECARD_PAGE.read_text() if SCORECARD_PAGE.exists() else ""
    if current != scorecard(recorded()):
        print(f"{SCORECARD_PAGE} is out of date: run python -m zfcore scorecard", file=sys.stderr)
        return 1
    print(f"{SCORECARD_PAGE} is up to date")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    """``transfer``: the network, Caltech-101, the measurements, the JSON files (paths printed)."""
    from zfcore import book
    from zfcore.analysis.transfer import FEATURE_LAYERS
    from zfcore.experiments import RESULTS_DIR, RUNS_DIR
    from zfcore.provenance import refuse_dirty
    from zfcore.store import probe_output
    from zfcore.transfer_run import (RESULT_FILES, TransferPlan, caltech101_files, caltech101_pixels, run_cv_layer,
                                     run_duplicates, run_transfer, write_results)
    from zfcore.weights import load_reference

    plan = TransferPlan(frozen_sizes=args.frozen_sizes, splits=args.splits, network_sizes=args.network_sizes,
                        scratch_sizes=args.scratch_sizes, network_seeds=args.network_seeds,
                        finetune_steps=args.finetune_steps, scratch_steps=args.scratch_steps,
                        probe_layers=args.probe_layers or FEATURE_LAYERS, probe_losses=args.probe_losses,
                        probe_per_class=args.probe_per_class,
                        **{name: value for name in ("probe_weight_decays", "probe_poolings")  # None: the plan's default
                           if (value := getattr(args, name)) is not None})
    profile = book.profile().name
    out = args.out or (RESULTS_DIR if profile == "book" else RUNS_DIR.parent / f"transfer-{profile}")
    journal = args.journal or out / "transfer-journal.jsonl"
    probe_output(out, what="--out")  # before the network is loaded or an image decoded
    probe_output(journal, kind="file", what="--journal")
    refuse_dirty(out, allow_dirty=args.allow_dirty)  # before hours of work, not after
    if args.checkpoint is None:
        reference = book.trained()
    else:
        reference = load_reference(args.checkpoint)
        reference.model.to(book.device())
    pixels, labels, dataset = caltech101_pixels(reference.config.input_size)
    if args.what == "cv-layer":
        results = run_cv_layer(reference, pixels, labels, dataset=dataset, sizes=args.network_sizes,
                               splits=args.splits, layers=plan.probe_layers)
    elif args.what == "duplicates":
        transfer_file = out / RESULT_FILES["transfer"]
        if not transfer_file.is_file():
            raise ValueError(f"--what duplicates re-scores the frozen rows of {transfer_file}, which does not exist: "
                             f"run --what transfer first, or give --out the folder that holds it")
        results = run_duplicates(reference, pixels, labels, dataset=dataset, caltech_files=caltech101_files(),
                                 committed_frozen=json.loads(transfer_file.read_text())["frozen"], splits=args.splits)
    else:
        results = run_transfer(reference, pixels, labels, what=args.what, plan=plan, dataset=dataset,
                               journal=journal)
    for path in write_results(results, out, allow_dirty=args.allow_dirty):
        print(path)
    return 0


def cli_message(message: str) -> str:
    """A library error message in the CLI's words: ``resume=...`` becomes ``--resume ...``."""
    return re.sub(r"\b(" + "|".join(_FLAGS) + r")=", lambda match: _FLAGS[match.group(1)] + " ", message)


def _command(argv: list[str]) -> str:
    """The command line ``argv`` as one would type it again."""
    return shlex.join(["python", "-m", "zfcore", *argv])


def _train_resume_line(argv: list[str], out: Path, error: BaseException) -> str:
    """Where an interrupted ``train`` can be resumed from, and the command that does it."""
    checkpoint = getattr(error, "checkpoint", None)
    if checkpoint is None:
        return f"training was interrupted before its first epoch ended, so there is nothing to resume; start it " \
               f"again with: {_command(argv)}"
    again, skip = [], False
    for item in argv:  # the same command with --out named and --resume the run's checkpoint
        if skip:
            skip = False
        elif item == "--resume":
            skip = True
        elif not item.startswith("--resume="):
            again.append(item)
    if "--out" not in again and not any(item.startswith("--out=") for item in again):
        again += ["--out", str(out)]
    command = _command([*again, "--resume", str(checkpoint)])
    return f"training was interrupted; it can be resumed from {checkpoint}: {command}"


def run(argv: list[str] | None = None) -> int:
    """:func:`main`, with the expected failures (bad checkpoint, missing data, a diverged run, a busy run folder, an
    output that cannot be written, a full disk, ...) as one line, exit code 2; Ctrl-C as one line saying where
    the work can be resumed from, exit code 130."""
    from zfcore.data.locate import DatasetNotFoundError
    from zfcore.store import DiskFullError

    try:
        return main(argv)
    except (ValueError, FileExistsError, FloatingPointError, DatasetNotFoundError, DiskFullError) as error:
        print(f"error: {cli_message(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        message = str(error) if isinstance(error, _Interrupted) else \
            f"{_command(sys.argv[1:] if argv is None else list(argv))} was interrupted before it finished"
        print(f"interrupted: {message}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())

"""Command line: ``python -m zfcore train|evaluate --help``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zfcore.profiles import PROFILES, get_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zfcore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train a profile's network (resumable; torchrun for DDP)")
    train_cmd.add_argument("--profile", choices=tuple(PROFILES), default="book", help="what to train (default: book)")
    train_cmd.add_argument("--data-root", type=Path, help="where datasets are/will be extracted (ZFBOOK_DATA_ROOT)")
    train_cmd.add_argument("--mirror", type=Path, help="folder of dataset archives to use before downloading (ZFBOOK_MIRROR)")
    train_cmd.add_argument("--resume", type=Path, help="a checkpoint.pt to continue from")
    train_cmd.add_argument("--epochs", type=int, help="override the profile's number of epochs")
    train_cmd.add_argument("--out", type=Path, help="output folder (default: runs/<profile>)")
    train_cmd.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    train_cmd.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")

    eval_cmd = commands.add_parser("evaluate", help="top-1/top-5 of a checkpoint on its profile's val set")
    eval_cmd.add_argument("--checkpoint", type=Path, help="a checkpoint.pt or reference file (default: the reference)")
    eval_cmd.add_argument("--limit", type=int, default=0, help="evaluate on the first N val images only")
    eval_cmd.add_argument("--ten-crop", action="store_true", help="also report 10-crop accuracy")
    eval_cmd.add_argument("--data-root", type=Path)
    eval_cmd.add_argument("--mirror", type=Path)

    export_cmd = commands.add_parser(
        "export", help="turn a finished run into the committed reference: weights + metadata, metrics, Fig. 4 data")
    export_cmd.add_argument("--run", type=Path, default=Path("runs/book"), help="the run folder (default: runs/book)")
    export_cmd.add_argument("--out", type=Path, help="destination folder (default: data/reference)")
    export_cmd.add_argument("--data-root", type=Path)
    export_cmd.add_argument("--mirror", type=Path)
    args = parser.parse_args(argv)

    import os

    if args.data_root:
        os.environ["ZFBOOK_DATA_ROOT"] = str(args.data_root)
    if args.mirror:
        os.environ["ZFBOOK_MIRROR"] = str(args.mirror)
    if args.command == "train":
        from zfcore.train import train

        config = get_profile(args.profile).train
        if args.epochs:
            config = config.replace(epochs=args.epochs)
        if args.compile:
            config = config.replace(compile=True)
        out = args.out or Path("runs") / args.profile
        history = train(config, out, resume=args.resume, precision=args.precision)
        print(json.dumps(history[-1] if history else {}, indent=1))
        return 0
    if args.command == "export":
        from zfcore.export import export_run

        print(json.dumps(export_run(args.run, args.out), indent=1))
        return 0
    from zfcore.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, limit=args.limit, ten_crop=args.ten_crop)
    print(json.dumps(result, indent=1))
    return 0


def run(argv: list[str] | None = None) -> int:
    """:func:`main`, with the expected failures (bad checkpoint, missing data, ...) as one line, exit code 2."""
    from zfcore.data.locate import DatasetNotFoundError

    try:
        return main(argv)
    except (ValueError, FileExistsError, DatasetNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run())

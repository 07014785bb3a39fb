"""Turn a finished training run into a set of reference files: a new folder, or ``data/reference`` on request.

``export_run`` evaluates the final checkpoint (single centre view and 10-crop), writes the small
weights file with its metadata (:func:`~zfcore.weights.export_reference`), the run's config and
per-epoch metrics, and the Fig. 4 summary computed from the run's snapshots
(:func:`~zfcore.analysis.evolution.evolution`, probing 50 training images per class).

``data/reference`` holds the book's network with those companion files (``config.json``, ``metrics.csv``,
``metrics.json``, ``fig4.pt``) and Fig. 6's AlexNet-style network as a weights file alone, so replacing a network
there that is not the book's (:attr:`~zfcore.weights.ReferenceWeights.DEFAULT`) writes its weights file only:
the book's companions stay as they are.

The committed reference files are never overwritten by default: the set goes into a new folder
(``runs/export-RUN``, or ``out``, which must not hold files), and only ``replace=True``
(``python -m zfcore export --replace-reference``) replaces an existing set. Either way the set is written
into a staging folder and swapped in whole (:func:`zfcore.store.write_folder_atomic`): a failure part-way
leaves the old set bitwise as it was.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from zfcore.analysis.evolution import evolution, load_snapshots
from zfcore.checkpoints import config_from_dict, load_checkpoint
from zfcore.data.tiny_imagenet import cached_split
from zfcore.evaluation import evaluate_checkpoint
from zfcore.store import copy_file_atomic, probe_output, write_folder_atomic, write_json_atomic
from zfcore.weights import REFERENCE_DIR, ReferenceWeights, export_reference, load_reference, weights_file_name

__all__ = ["default_out", "export_run"]

FIG4_PROBE_PER_CLASS = 50
RUN_FILES = ("checkpoint.pt", "metrics.csv", "snapshots")
"""What a finished run's folder holds that an export reads."""


def default_out(run: str | Path) -> Path:
    """Where :func:`export_run` writes by default: ``runs/export-<run folder's name>`` (a new folder)."""
    return Path("runs") / f"export-{Path(run).resolve().name}"


def export_run(run: str | Path, out: str | Path | None = None, *, replace: bool = False) -> dict[str, Any]:
    """Export ``run`` (a folder with ``checkpoint.pt``, ``metrics.csv``, ``snapshots/``) into ``out``.

    Args:
        run: the finished run's folder.
        out: where the set goes (default :func:`default_out`). Without ``replace`` it must not exist or be
            empty; with ``replace`` an existing set there is replaced (files the export does not write, e.g.
            the other reference network in ``data/reference``, are kept; there, a network other than the
            book's replaces its weights file alone).
        replace: replace the set in ``out`` (``python -m zfcore export --replace-reference`` passes
            ``data/reference``).

    Returns:
        The metrics written, with ``weights`` (the weights file) and ``weights_mb``.

    Raises:
        OutputError: ``out`` cannot be written (a file, a read-only folder); nothing was run.
        ValueError: ``out`` already holds files and ``replace`` is not given; ``run`` lacks a file an export
            reads; nothing was run or written.
        CheckpointError: as :func:`~zfcore.evaluation.evaluate_checkpoint` for the run's checkpoint.
        DiskFullError: the disk filled; ``out`` is as it was.
    """
    run = Path(run)
    out = Path(out) if out is not None else default_out(run)
    probe_output(out, what="out")
    if not replace and out.is_dir() and (held := sorted(path.name for path in out.iterdir())):
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        committed = " (the committed reference files)" if out.resolve() == REFERENCE_DIR.resolve() else ""
        raise ValueError(f"out={out} already holds files{committed} ({shown}): an export writes into a new folder. "
                         f"Choose another --out, or remove that folder; to replace the committed reference files in "
                         f"data/reference, pass --replace-reference; nothing was written")
    missing = [name for name in RUN_FILES if not (run / name).exists()]
    if not run.is_dir() or missing:
        what = "is not a folder" if not run.is_dir() else f"has no {', '.join(missing)}"
        raise ValueError(f"run={run} cannot be exported: it {what} (a finished run's folder holds checkpoint.pt, "
                         f"metrics.csv and snapshots/, written by 'python -m zfcore train'); nothing was written")
    state = load_checkpoint(run / "checkpoint.pt", kind="training")
    config = config_from_dict(state["config"])
    name = weights_file_name(config)
    weights_only = out.resolve() == REFERENCE_DIR.resolve() and name != ReferenceWeights.DEFAULT.value.file
    snapshots = None if weights_only else load_snapshots(run / "snapshots")  # read before the evaluation: fail early
    history = state["history"]
    evaluation = evaluate_checkpoint(run / "checkpoint.pt", ten_crop=True)
    metrics = {
        "val_top1": evaluation["single"]["top1"], "val_top5": evaluation["single"]["top5"],
        "val_top1_10crop": evaluation["ten_crop"]["top1"], "val_top5_10crop": evaluation["ten_crop"]["top5"],
        "val_images": evaluation["images"], "epochs": state["epoch"],
        "wall_minutes": history[-1]["wall_seconds"] / 60,
        "train_img_per_s_mean": float(np.mean([row["img_per_s"] for row in history])),
    }

    def fill(staging: Path) -> None:
        weights = export_reference(run / "checkpoint.pt", staging / name, metrics=metrics)
        if weights_only:
            return
        copy_file_atomic(run / "metrics.csv", staging / "metrics.csv")
        write_json_atomic(staging / "config.json", asdict(config))
        write_json_atomic(staging / "metrics.json", metrics)
        reference = load_reference(weights)
        probe = cached_split("train", per_class=FIG4_PROBE_PER_CLASS).images
        evolution(reference.model, snapshots, probe).save(staging / "fig4.pt")

    write_folder_atomic(out, fill, keep_others=True)
    weights = out / name
    return {**metrics, "weights": str(weights), "weights_mb": weights.stat().st_size / 2**20}

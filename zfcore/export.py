"""Turn a finished training run into the committed reference files under ``data/reference``.

``export_run`` evaluates the final checkpoint (single centre view and 10-crop), writes the small
weights file with its metadata (:func:`~zfcore.weights.export_reference`), the run's config and
per-epoch metrics, and the Fig. 4 summary computed from the run's snapshots
(:func:`~zfcore.analysis.evolution.evolution`, probing 50 training images per class).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from zfcore.analysis.evolution import evolution, load_snapshots
from zfcore.checkpoints import config_from_dict, load_checkpoint
from zfcore.weights import REFERENCE_DIR, export_reference, load_reference, weights_file_name
from zfcore.data.tiny_imagenet import cached_split
from zfcore.evaluation import evaluate_checkpoint

__all__ = ["export_run"]

FIG4_PROBE_PER_CLASS = 50


def export_run(run: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Export ``run`` (a folder with ``checkpoint.pt``, ``metrics.csv``, ``snapshots/``) into ``out``."""
    run = Path(run)
    out = Path(out) if out is not None else REFERENCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(run / "checkpoint.pt")
    config = config_from_dict(state["config"])
    history = state["history"]
    evaluation = evaluate_checkpoint(run / "checkpoint.pt", ten_crop=True)
    metrics = {
        "val_top1": evaluation["single"]["top1"], "val_top5": evaluation["single"]["top5"],
        "val_top1_10crop": evaluation["ten_crop"]["top1"], "val_top5_10crop": evaluation["ten_crop"]["top5"],
        "val_images": evaluation["images"], "epochs": state["epoch"],
        "wall_minutes": history[-1]["wall_seconds"] / 60,
        "train_img_per_s_mean": float(np.mean([row["img_per_s"] for row in history])),
    }
    weights = export_reference(run / "checkpoint.pt", out / weights_file_name(config), metrics=metrics)
    shutil.copyfile(run / "metrics.csv", out / "metrics.csv")
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    reference = load_reference(weights)
    probe = cached_split("train", per_class=FIG4_PROBE_PER_CLASS).images
    evolution(reference.model, load_snapshots(run / "snapshots"), probe).save(out / "fig4.pt")
    return {**metrics, "weights": str(weights), "weights_mb": weights.stat().st_size / 2**20}

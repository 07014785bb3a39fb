"""What a chapter notebook needs under the active profile, in one call each.

``book`` (default): the committed reference run (``data/reference``) and the 10,000 Tiny ImageNet
validation images. ``ci``: a narrow ZF-64 trained for a few seconds (once, cached under the data
root) and 200 validation images, so that every notebook runs top to bottom in CI in seconds.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zfcore.analysis.ablations import PAPER_TABLE2, AblationTable, ablation_table
from zfcore.analysis.duplicates import duplicate_report
from zfcore.analysis.evolution import Evolution, evolution, load_snapshots
from zfcore.analysis.probes import WIDE_WEIGHT_DECAYS
from zfcore.data.imagenet import imagenet_samples
from zfcore.data.images import centre_crop
from zfcore.data.loader import pixel_batches
from zfcore.data.locate import data_root
from zfcore.data.sources import eval_batches, mean_image_for
from zfcore.data.tiny_imagenet import TinyImageNet, cached_split
from zfcore.devices import default_device
from zfcore.evaluation import evaluate
from zfcore.experiments import get_experiment
from zfcore.models import zfnet
from zfcore.paths import EXPERIMENTS_DIR
from zfcore.plots.style import use_book_style
from zfcore.profiles import STYLES, Profile, active_profile, get_profile
from zfcore.provenance import CommittedResults, read_committed
from zfcore.runner import run_experiment
from zfcore.store import json_digest
from zfcore.train import read_metrics
from zfcore.transfer_run import TransferPlan, caltech101_pixels, run_cv_layer, run_transfer
from zfcore.verdicts import Verdict, save
from zfcore.weights import (EXPERIMENT_WEIGHTS_SHA256, Reference, ReferenceWeights, experiment_weights,
                            load_reference, reference_file)

__all__ = ["AblationResults", "TransferResults", "ablation_results", "accuracy_table", "device", "duplicate_pairs",
           "evolution_data", "initial_output_scale", "kept_network", "known_samples", "occlusion_candidates",
           "paper_init_run", "paper_inputs_conv1", "probe_boxes", "probe_images", "profile", "random_labels_network",
           "recipe_table", "start", "trained", "training_fit", "transfer_results", "verdict"]

SEED_RUNS = {"zf": "book-seed", "alexnet": "alexnet-seed"}
"""The verdict runs that repeat each published network's recipe with another seed: name prefix by style."""
NO_RENORM_RUN = "verdict-runs/no-renorm"
"""Fig. 6(a)'s network: the book recipe without the filter renormalisation of §3 (``EXPERIMENT/RUN``,
:func:`kept_network`)."""
RANDOM_LABELS_RUN = "verdict-runs/random-labels"
"""The kept network of Adebayo et al.'s data randomisation (``EXPERIMENT/RUN``, :func:`random_labels_network`)."""
PAPER_INPUTS_RUNS = {"paper inputs, renormalised": "verdict-runs/paper-inputs-renorm",
                     "paper inputs, not renormalised": "verdict-runs/paper-inputs-no-renorm"}
"""Fig. 6(a) at the paper's input scale (N(0, 10⁻²) init, 0-255 pixel-minus-mean inputs), with and without
the filter renormalisation of §3: panel name -> kept network (``EXPERIMENT/RUN``, :func:`paper_inputs_conv1`)."""
CI_PROBE_PER_CLASS = 20  # 10 classes x 20 = 200 validation images under ``ci``


def profile() -> Profile:
    """The active profile (``$ZFBOOK_PROFILE``, default ``book``)."""
    return active_profile()


def start() -> Profile:
    """Begin a chapter: figures in the book's style (:func:`zfcore.plots.style.use_book_style`; call it after
    ``%matplotlib inline``), no warning from progress bars in a kernel without widgets, and the active profile,
    printed with its description.

    Returns:
        the active profile: ``$ZFBOOK_PROFILE``, ``ci`` for a seconds-long run or ``book`` (default) for the
        reference run.
    """
    use_book_style()
    warnings.filterwarnings("ignore", category=UserWarning, module="tqdm")
    active = active_profile()
    print(f"profile: {active.name} — {active.description}")
    return active


def _ci_run(style: str = "zf", **changes: Any) -> Path:
    """Train the ``ci`` profile (with conv1/conv2 of ``style``, and ``changes`` to its recipe, e.g.
    ``random_labels=True``) once, in seconds, and return its run folder, keyed by the recipe."""
    from zfcore.train import train

    config = active_profile().train.replace(style=style, **changes)
    key = json_digest(asdict(config))[:12]
    folder = data_root() / "runs" / f"ci-notebooks-{key}"
    if not (folder / "checkpoint.pt").exists():
        train(config, folder, progress=False)
    return folder


def device() -> torch.device:
    """Where the chapters compute: the GPU when there is one (Colab, JupyterLab on a GPU), else the CPU."""
    return default_device()


def trained(style: str = "zf", *, seed: int = 0) -> Reference:
    """The trained network of the profile with its metadata, on :func:`device`.

    Args:
        style: ``"zf"`` (default): the book's reference run (``ReferenceWeights.DEFAULT``); ``"alexnet"``:
            Fig. 6's AlexNet-style run (``ReferenceWeights.ALEXNET64_TINY_IMAGENET``). Under ``ci``, the
            ``ci`` recipe with that style, trained in seconds.
        seed: 0 (default): the published network; another seed: the verdict run of the same recipe with that
            seed (:data:`SEED_RUNS`), where its weights are kept. Under ``ci``, the ``ci`` recipe with that seed.

    Raises:
        ValueError: another ``style``; a ``seed`` whose network is not kept (naming the seeds that are).
    """
    if style not in STYLES:
        raise ValueError(f"style={style!r} is not valid; valid styles: {STYLES}")
    prefix = f"verdict-runs/{SEED_RUNS[style]}"
    kept = [0] + sorted(int(run.removeprefix(prefix)) for run in EXPERIMENT_WEIGHTS_SHA256 if run.startswith(prefix))
    if seed not in kept:
        raise ValueError(f"seed={seed!r} is not valid for style={style!r}: the networks kept are those of seeds {kept}")
    if seed:
        return kept_network(f"verdict-runs/{SEED_RUNS[style]}{seed}")
    if profile().name == "ci":
        reference = load_reference(_ci_run(style) / "checkpoint.pt")
    else:
        reference = load_reference(ReferenceWeights.DEFAULT if style == "zf" else ReferenceWeights.ALEXNET64_TINY_IMAGENET)
    reference.model.to(device())
    return reference


def _recipe_changes(run: str) -> dict[str, Any]:
    """What the verdict run ``run`` (``EXPERIMENT/RUN``) changes in the ``book`` recipe: field -> value."""
    experiment, name = run.split("/")
    book_recipe = asdict(get_profile("book").train)
    return {field: value for field, value in asdict(dict(get_experiment(experiment).runs)[name]).items()
            if field != "deviations" and value != book_recipe[field]}


def kept_network(run: str) -> Reference | None:
    """The network a verdict run kept, with its metadata, on :func:`device`.

    Args:
        run: ``EXPERIMENT/RUN`` of a run whose weights the experiment keeps, e.g. :data:`NO_RENORM_RUN`.

    Returns:
        The committed network (:func:`zfcore.weights.experiment_weights`), or ``None`` while its weights are not
        committed (the chapter shows that part as pending). Under ``ci``, the ``ci`` recipe with the run's change
        to the ``book`` recipe (e.g. ``renorm_rms=0``), trained here in seconds.

    Raises:
        ValueError: ``run`` names no run whose weights its experiment keeps (naming those that are).
    """
    experiment, _, name = run.partition("/")
    kept = get_experiment(experiment).keep_weights
    if name not in kept:
        raise ValueError(f"run={run!r} is not a run whose weights are kept; valid: "
                         f"{', '.join(f'{experiment}/{kept_run}' for kept_run in kept) or 'none'}")
    if profile().name == "ci":
        reference = load_reference(_ci_run(**_recipe_changes(run)) / "checkpoint.pt")
    elif run in EXPERIMENT_WEIGHTS_SHA256:
        reference = experiment_weights(*run.split("/"))
    else:
        return None
    reference.model.to(device())
    return reference


def random_labels_network() -> Reference | None:
    """The network of the book recipe trained on permuted labels (:data:`RANDOM_LABELS_RUN`), on :func:`device`,
    for Adebayo et al.'s data randomisation; ``None`` while its weights are not committed. Under ``ci``, the ``ci``
    recipe trained on permuted labels, in seconds (:func:`kept_network`)."""
    return kept_network(RANDOM_LABELS_RUN)


def training_fit(network: Reference) -> float:
    """How well ``network`` fits the labels it was trained on: top-1 on its training images, centre view, eval mode
    (for a run on permuted labels, the permuted ones). The value its weights recorded (``train_top1_eval``), or, for
    a network that recorded none (the ``ci`` stand-ins), measured here on its training images."""
    recorded = (network.meta.get("metrics") or {}).get("train_top1_eval")
    if recorded is not None:
        return float(recorded)
    return float(evaluate(network.model, eval_batches(network.config, 250, split="train"), device=device())["top1"])


def paper_inputs_conv1() -> dict[str, torch.Tensor] | None:
    """The conv1 filters ``[96, 3, 7, 7]`` (float32, on the CPU) of Fig. 6(a)'s two runs at the paper's input scale
    (:data:`PAPER_INPUTS_RUNS`: the verdict runs ``paper-inputs-renorm`` and ``paper-inputs-no-renorm``), keyed by
    panel name; ``None`` while either run's weights are not committed. Under ``ci``, the ``ci`` recipe with the
    paper's initialisation and inputs, with and without renormalisation, trained here in seconds."""
    networks = [kept_network(run) for run in PAPER_INPUTS_RUNS.values()]
    if None in networks:
        return None
    return {name: network.model.features.conv1.weight.detach().float().cpu()
            for name, network in zip(PAPER_INPUTS_RUNS, networks)}


def probe_images() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validation images (uint8 ``[N, 64, 64, 3]``), labels, class names: all 10,000, or 200 under ``ci``.

    Under ``ci`` they are the first 20 images of each of the profile's 10 classes (only those are decoded).
    """
    if profile().name == "ci":
        split = cached_split("val", classes=profile().train.classes_limit, per_class=CI_PROBE_PER_CLASS)
    else:
        split = cached_split("val")
    return split.images, split.labels, split.class_names


def probe_boxes() -> np.ndarray:
    """The object box ``[x0, y0, x1, y1]`` (inclusive pixels) of each of :func:`probe_images`, from Tiny ImageNet's
    validation annotations: ``[N, 4]``."""
    if profile().name == "ci":
        return np.asarray(TinyImageNet().val_boxes(classes=profile().train.classes_limit, per_class=CI_PROBE_PER_CLASS))
    return np.asarray(TinyImageNet().val_boxes())


def known_samples(class_names: list[str]) -> tuple[list[Image.Image], list[int]]:
    """The ImageNet sample images (one per ImageNet class, up to 160 px) of the classes in ``class_names``, in the
    sample set's order, with each one's index in ``class_names`` as its label."""
    samples = imagenet_samples()
    known = [index for index, name in enumerate(samples.class_names) if name in class_names]
    return [samples[index].image for index in known], [class_names.index(samples.class_names[index]) for index in known]


def occlusion_candidates(reference: Reference) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The images Fig. 7's examples are chosen from: under ``ci`` the ``ci`` network's validation images
    (:func:`probe_images`); otherwise one ImageNet sample image per class of the network, its central
    ``input_size`` pixels.

    Returns:
        ``(pixels, labels, titles)``: uint8 ``[N, S, S, 3]``, int64 ``[N]``, and a title per image (its class and
        where it comes from).
    """
    class_names = reference.meta["class_names"]
    if profile().name == "ci":
        pixels, labels, _ = probe_images()
        return pixels, np.asarray(labels), [f"{class_names[label]} (val image)" for label in labels]
    samples = imagenet_samples()
    pixels = np.stack([centre_crop(samples[samples.wnids.index(wnid)].image, reference.model.input_size)
                       for wnid in reference.meta["classes"]])
    return pixels, np.arange(len(pixels)), [f"{name} (ImageNet sample)" for name in class_names]


def evolution_data() -> Evolution:
    """Fig. 4 data: the committed summary of the reference run, or computed from the ``ci`` run's snapshots."""
    if profile().name != "ci":
        return Evolution.load(reference_file("fig4.pt"))
    config = profile().train
    reference = trained()
    pixels = cached_split("train", classes=config.classes_limit, per_class=config.train_per_class).images
    return evolution(reference.model, load_snapshots(_ci_run() / "snapshots"), np.asarray(pixels), maps_per_layer=4,
                     progress=False)


@dataclass(frozen=True)
class TransferResults:
    """Chapter 09's results (§5.2-5.3): a miniature computed here under ``ci``, the committed ones otherwise.

    Attributes:
        transfer, probes, cv_layer, duplicates: as ``transfer.json``, ``probes.json``, ``transfer-cv-layer.json``
            and ``caltech-duplicates.json`` (``python -m zfcore transfer``).
        probes_ls0: the label-smoothing-0 network's probes (``None`` under ``ci``).
        cv_layer_ls0: the label-smoothing-0 network's ``transfer-cv-layer.json`` (``None`` under ``ci``).
        probes_cv, probes_cv_ls0: softmax and SVM probes with the weight decay and the conv maps' pooling chosen
            by CV, of both networks (under ``ci`` the miniature's probes, measured that way; no control).
        scratch_runs: other from-scratch recipes (one step count at every size), steps -> result (none under ``ci``).
        committed: the files read, with their digests, to display (``None`` under ``ci``).
    """

    transfer: dict[str, Any]
    probes: dict[str, Any]
    cv_layer: dict[str, Any]
    duplicates: dict[str, Any]
    probes_ls0: dict[str, Any] | None
    cv_layer_ls0: dict[str, Any] | None
    probes_cv: dict[str, Any]
    probes_cv_ls0: dict[str, Any] | None
    scratch_runs: dict[int, dict[str, Any]]
    committed: CommittedResults | None

    def made(self) -> list[str]:
        """One line per result: what it holds, the code that made it, its wall time and where it ran."""
        results = {"Table 4 and Fig. 9 (transfer.json)": self.transfer, "Table 7's probes (probes.json)": self.probes,
                   "the layer chosen by CV (transfer-cv-layer.json)": self.cv_layer,
                   "the label-smoothing-0 network's probes": self.probes_ls0,
                   "the same network's layer chosen by CV": self.cv_layer_ls0,
                   "probes with pooling and weight decay chosen by CV": self.probes_cv,
                   "the same, label-smoothing-0 network": self.probes_cv_ls0,
                   **{f"from scratch, {steps} steps": run for steps, run in sorted(self.scratch_runs.items())}}
        return [f"{what}: code {result['code_version'][:12]}, {result['wall_seconds']:.0f} s on "
                f"{result.get('device') or str(result['torch_threads']) + ' CPU thread(s)'}"
                for what, result in results.items() if result]


def transfer_results() -> TransferResults:
    """Chapter 09's results under the active profile (:class:`TransferResults`)."""
    if profile().name == "ci":  # a miniature of the committed runs, with the ci network, in seconds
        torch.set_num_threads(1)  # thousands of tiny L-BFGS steps: on a shared CPU two threads wait on each other
        reference = trained()
        pixels, labels, dataset = caltech101_pixels(reference.config.input_size)
        plan = TransferPlan(frozen_sizes=(5, 15), splits=2, network_sizes=(15,), scratch_sizes=(15,),
                            finetune_steps=(10, 20), scratch_steps=(10, 20), probe_layers=("conv3", "fc7"), probe_per_class=15,
                            network_seeds=2, probe_losses=("softmax", "svm"), probe_poolings=(1, 2),
                            probe_weight_decays=WIDE_WEIGHT_DECAYS[::5])  # 1e-7, 1e-2, 1000: the ends and the middle
        results = run_transfer(reference, pixels, labels, dataset=dataset, plan=plan)
        cv_layer = run_cv_layer(reference, pixels, labels, dataset=dataset, sizes=(15,), splits=2,
                                layers=plan.probe_layers)["cv_layer"]
        duplicates = duplicate_report(pixels[::10], {"train (ci subset)": cached_split("train", classes=10,
                                                                                      per_class=32).images})
        return TransferResults(results["transfer"], results["probes"], cv_layer, duplicates, None, None,
                               results["probes"], None, {}, None)
    files = {"transfer": "transfer.json", "probes": "probes.json", "cv_layer": "transfer-cv-layer.json",
             "duplicates": "caltech-duplicates.json", "probes_ls0": "probes-no-label-smoothing/probes.json",
             "cv_layer_ls0": "transfer-cv-no-label-smoothing/transfer-cv-layer.json",
             "probes_cv": "probes-cv/probes.json", "probes_cv_ls0": "probes-cv-no-label-smoothing/probes.json"}
    committed = read_committed(*files.values(), "transfer-scratch-*/transfer.json")
    scratch_runs = {run["config"]["scratch_recipe"]["steps"]: run
                    for run in committed.matching("transfer-scratch-*/transfer.json").values()}
    return TransferResults(**{field: committed[name] for field, name in files.items()}, scratch_runs=scratch_runs,
                           committed=committed)


def duplicate_pairs(confirmed: list[dict[str, Any]]) -> np.ndarray:
    """``[P, 2, 64, 64, 3]`` in ``[0, 1]``: each confirmed pair of ``caltech-duplicates.json`` as the Caltech-101 image
    and the Tiny ImageNet training image, side by side."""
    tiny_index = {f"{path.parent.parent.name}/{path.name}": i for i, path in enumerate(TinyImageNet().files("train")[0])}
    caltech, tiny = caltech101_pixels(64)[0], cached_split("train").images
    return np.stack([np.stack([caltech[pair["caltech_index"]], tiny[tiny_index[pair["tiny_imagenet"]]]])
                     for pair in confirmed]) / 255

@dataclass(frozen=True)
class AblationResults:
    """Chapter 08's Table 3 (§5.1) at the short budget: a two-run miniature trained here under ``ci``, the committed
    ``ablations.json`` otherwise.

    Attributes:
        table: the rows (:func:`zfcore.analysis.ablations.ablation_table`).
        committed: the file read, with its digest, to display (``None`` under ``ci``).
    """

    table: AblationTable
    committed: CommittedResults | None


def ablation_results() -> AblationResults:
    """Chapter 08's ablations under the active profile (:class:`AblationResults`); the book never trains them."""
    if profile().name == "ci":  # the two-run miniature of the experiment, trained here in seconds
        scratch = Path(tempfile.mkdtemp())
        results = run_experiment("ci", results_dir=scratch / "results", runs_dir=scratch / "runs", progress=False)
        return AblationResults(ablation_table(results, get_experiment("ci")), None)
    committed = read_committed("ablations.json")
    return AblationResults(ablation_table(committed["ablations.json"], get_experiment("ablations")), committed)

def verdict(record: Verdict) -> Verdict:
    """A chapter's verdict, returned for display; under the ``book`` profile also saved as
    ``data/verdicts/<claim>.json``, the record the scorecard page is generated from.

    Under ``ci`` (a network trained for seconds) nothing is saved: its numbers are not the book's.
    """
    if profile().name == "book":
        save(record)
    return record


def accuracy_table(reference: Reference) -> tuple[str, str]:
    """Chapter 01's comparison with Table 2: the paper's single networks (Krizhevsky et al.'s and Fig. 3's, as
    accuracies) beside ``reference``, on the single centre view and, where measured, 10 crops.

    Returns:
        The markdown table, and one line on how long the reference trained ("" where not recorded).
    """
    final, last = reference.meta.get("metrics", {}), reference.meta["history"][-1]
    krizhevsky, fig3 = PAPER_TABLE2[0], PAPER_TABLE2[3]
    rows = [(f"Krizhevsky et al. (2012), 1 convnet — ImageNet, 224 px (Table 2: {krizhevsky[1]} % / {krizhevsky[2]} % "
             "error)", f"{100 - krizhevsky[1]:.1f} %", f"{100 - krizhevsky[2]:.1f} %"),
            (f"Zeiler & Fergus, 1 convnet as Fig. 3 — ImageNet, 224 px (Table 2: {fig3[1]} % / {fig3[2]} % error)",
             f"{100 - fig3[1]:.1f} %", f"{100 - fig3[2]:.1f} %"),
            (f"ours, ZF-{reference.config.input_size}, {profile().name} profile — single centre view",
             f"{100 * final.get('val_top1', last['val_top1']):.1f} %",
             f"{100 * final.get('val_top5', last['val_top5']):.1f} %")]
    if "val_top1_10crop" in final:
        rows.append(("ours — 10-crop (corners + centre, with flips)", f"{100 * final['val_top1_10crop']:.1f} %",
                     f"{100 * final['val_top5_10crop']:.1f} %"))
    table = "| network, data | top-1 | top-5 |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    trained_for = (f"trained {final['epochs']} epochs in {final['wall_minutes']:.0f} min, "
                   f"{final['train_img_per_s_mean']:.0f} img/s on average" if "wall_minutes" in final else "")
    return table, trained_for


@torch.no_grad()
def initial_output_scale(pixels: np.ndarray) -> str:
    """Chapter 01: why the book scales its inputs by ImageNet's mean/std. A freshly initialised book network with the
    paper's weights (N(0, 1e-2), biases 0; seed 0), fed ``pixels`` with the book's inputs and with the paper's
    per-pixel-mean inputs on the 0-255 scale: the std of each input and of its fc8 output, as a markdown table."""
    mean_image = mean_image_for(profile().train.replace(preprocessing="pixel-mean"))  # the training images' mean
    torch.manual_seed(0)
    fresh = zfnet(200, 64, fc=1024, init="paper").eval()
    rows = ["| inputs | input std | fc8 output std |", "|---|---|---|"]
    for name, mean in (("ImageNet mean/std, 0–1 scale (`book`)", None),
                       ("per-pixel mean, 0–255 scale (the paper)", mean_image)):
        inputs = next(pixel_batches(pixels, len(pixels), mean_image=mean))
        rows.append(f"| {name} | {inputs.std():.3g} | {fresh(inputs).std():.2g} |")
    return f"At initialisation, over {len(pixels)} validation images:\n\n" + "\n".join(rows)


def paper_init_run(history: list[dict[str, float]]) -> tuple[list[dict[str, float]], str]:
    """Chapter 01: the committed run with the paper's initialisation and inputs (``paper-init.csv``), beside the
    validation loss of ``history`` (the profile's own run) and chance (ln 200).

    Returns:
        The run's metric rows, and a markdown table per epoch.
    """
    paper_init = read_metrics(EXPERIMENTS_DIR / "paper-init.csv")
    chance = math.log(200)
    ours = {row["epoch"]: row["val_loss"] for row in history}
    lines = [f"| epoch | train loss | val loss | val loss − ln 200 | val top-1 | lr | val loss, {profile().name} run |",
             "|---|---|---|---|---|---|---|"]
    for row in paper_init:
        our_loss = f"{ours[row['epoch']]:.4f}" if row["epoch"] in ours else "–"
        lines.append(f"| {row['epoch']:.0f} | {row['train_loss']:.4f} | {row['val_loss']:.4f} | "
                     f"{row['val_loss'] - chance:+.4f} | {100 * row['val_top1']:.1f} % | {row['lr']:.4f} | {our_loss} |")
    return paper_init, "\n".join(lines)

def recipe_table() -> str:
    """The paper's recipe (§3) beside the active profile's, as a Markdown table (deviations with reasons below)."""
    config = profile().train
    paper = {
        "data": "ImageNet 2012, 1.3M images, 1000 classes", "image size": "224 px (crops of 256)",
        "input": "0-255 pixels minus the per-pixel mean image",
        "network": "ZFNet, Fig. 3", "epochs": "70", "batch": "128", "optimiser": "SGD, momentum 0.9",
        "weight decay": "not stated",
        "learning rate": "1e-2, annealed by hand on plateaus", "initialisation": "weights N(0, 1e-2), biases 0",
        "dropout": "0.5 (fc6, fc7)", "renormalisation": "filters with RMS > 0.1 scaled to 0.1",
        "augmentation": "10 fixed 224 sub-crops per image: corners + centre of the 256² centre square, with and "
                        "without flips",
        "hardware": "one GTX 580 GPU, 12 days",
    }
    inputs = {"pixel-mean": "0-255 pixels minus the per-pixel mean image",
              "mean-std": "ImageNet mean/std, 0-1 scale"}
    inits = {"paper": "weights N(0, 1e-2), biases 0", "he": "He (Kaiming) normal, biases 0",
             "torch": "PyTorch's default"}
    ours = {
        "data": f"{config.dataset}, {config.num_classes} classes", "image size": f"{config.input_size} px",
        "input": inputs[config.preprocessing],
        "network": f"ZF-{config.input_size}, widths {config.widths}, fc {config.fc}", "epochs": str(config.epochs),
        "batch": str(config.batch_size), "optimiser": f"SGD, momentum {config.momentum}",
        "weight decay": f"{config.weight_decay:g} (Krizhevsky et al.'s)",
        "learning rate": f"{config.lr:g}, {config.schedule}" + (f", {config.warmup_epochs:g}-epoch warm-up" if config.warmup_epochs else ""),
        "initialisation": inits[config.init], "dropout": f"{config.dropout:g} (fc6, fc7)",
        "renormalisation": f"RMS > {config.renorm_rms:g} scaled back" if config.renorm_rms else "off",
        "augmentation": ("random 64 crops of the 4-px reflect-padded image + flips" if config.input_size == 64
                         else "random 224 crops of the 256² centre square + flips"),
        "hardware": "CPU (2 cores, bf16)" if config.input_size == 64 else "GPU",
    }
    lines = ["| | paper | ours |", "|---|---|---|"]
    lines += [f"| {key} | {paper[key]} | {ours[key]} |" for key in paper]
    lines += ["", "**Every deviation and why:**", ""]
    lines += [f"- **{what}** — {why}" for what, why in config.deviations]
    return "\n".join(lines)

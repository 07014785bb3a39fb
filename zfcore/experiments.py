"""Experiments: named, versioned lists of training runs (definitions only: this module imports no trainer).

An :class:`Experiment` is a list of (run name, :class:`~zfcore.profiles.TrainConfig`) pairs built from a
profile's recipe with ``replace()``; :mod:`zfcore.runner` trains them in order into
``runs/experiments/NAME/RUN`` (each resumable from its ``checkpoint.pt``) and records each finished run
in ``data/experiments/NAME.json`` at once, so the file can be committed::

    nohup python -m zfcore experiment ablations > runs/experiments/ablations.log 2>&1 &
    python -m zfcore experiment ablations --status

``ablations`` re-does Zeiler & Fergus (2014), Table 3 ("ImageNet 2012 classification error rates with
various architectural changes to the model") and Table 2's single-network rows at a reduced budget on
ZF-64 (see :func:`ablations`); ``verdict-runs`` trains, at the reference run's full 28-epoch budget, the
runs that can test the paper's claims C5, C8, C9 and C10 (see :func:`verdict_runs`); ``ci`` is a two-run
miniature for tests and notebook CI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

from zfcore.checkpoints import build_model
from zfcore.models import CONV_LAYERS
from zfcore.paths import EXPERIMENTS_DIR, REPOSITORY_ROOT
from zfcore.profiles import TrainConfig, get_profile
from zfcore.weights import ReferenceWeights

__all__ = ["EXPERIMENTS", "RESULTS_DIR", "RUNS_DIR", "Experiment", "ablations", "get_experiment", "parameter_count",
           "parameter_matched", "verdict_runs", "widen"]

RESULTS_DIR = EXPERIMENTS_DIR
"""Where ``NAME.json`` goes: tracked, so that every finished run can be committed."""
RUNS_DIR = REPOSITORY_ROOT / "runs" / "experiments"
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
    8. ``alexnet-seed1``: with ``alexnet-seed0`` and run 10 the seed band of C5 (7x7/2 vs 11x11/4).
    9. ``no-conv3-conv4-fc6-fc7``: the 4-layer network, the cut C8's rule is decided on, and 10.
       ``alexnet-seed2``, the third AlexNet-style seed, which C5's accuracy part waits for: the two runs that
       complete a verdict lead the runs that run if time allows (the issue's list had the 4-layer cut last,
       which would keep C8 pending until every run is done).
    11. ``no-renorm``: the book recipe without filter renormalisation, Fig. 6(a) as the book draws it, at a
        clean commit beside the reference (Fig. 6's first runs were trained on a GPU from uncommitted code).
    12. ``paper-inputs-renorm``, 13. ``paper-inputs-no-renorm``: the paper's N(0, 1e-2) init and 0-255
        pixel-minus-mean inputs, with and without filter renormalisation: Fig. 6(a) at the input scale
        the paper ties it to ("the input images are roughly in the [-128,128] range").
    14. ``random-labels``: the training labels permuted once (Adebayo et al. 2018's data randomisation).

    The weights of runs 1, 2, 8 and 11-14 are kept beside the results (bf16, about 12 MB each) for the
    chapters to probe, mine and transfer from: Fig. 6(a) at the paper's input scale shows the first layers of
    the two paper-inputs runs side by side, and Adebayo et al.'s data randomisation compares the random-labels
    run's maps with the reference's.
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
        ("no-conv3-conv4-fc6-fc7", book.replace(remove=("conv3", "conv4", "fc6", "fc7"))),
        ("alexnet-seed2", alexnet.replace(seed=2)),
        ("no-renorm", book.replace(renorm_rms=0.0)),
        ("paper-inputs-renorm", paper_inputs),
        ("paper-inputs-no-renorm", paper_inputs.replace(renorm_rms=0.0)),
        ("random-labels", book.replace(random_labels=True)),
    )
    return Experiment(
        "verdict-runs", 1,
        "the 28-epoch runs that can test C5 (seed bands of both first layers), C8 (cuts, capacity, dropout), C9/C10 "
        "(label smoothing 0) and Fig. 6(a) at the book's input scale and the paper's, plus Adebayo et al.'s random "
        "labels",
        "the book recipe at the reference run's full budget: ZF-64, Tiny ImageNet 200 classes (80,000 train / 10,000 "
        "val), 28 epochs (warm-up 2, cosine), one change per run",
        runs, references=(("book-seed0", "ZF64_TINY_IMAGENET"), ("alexnet-seed0", "ALEXNET64_TINY_IMAGENET")),
        final_evaluation=True,
        keep_weights=("no-label-smoothing", "book-seed1", "alexnet-seed1", "no-renorm", "paper-inputs-renorm",
                      "paper-inputs-no-renorm", "random-labels"),
        optional=tuple(name for name, _ in runs[8:]))


_DEFINITIONS: dict[str, Callable[[], Experiment]] = {"ablations": ablations, "verdict-runs": verdict_runs, "ci": _ci}
EXPERIMENTS = tuple(_DEFINITIONS)


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in _DEFINITIONS:
        raise ValueError(f"experiment={name!r} is not valid; valid experiments: {EXPERIMENTS}")
    return _DEFINITIONS[name]()

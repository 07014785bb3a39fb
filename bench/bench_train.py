"""Training throughput on Tiny ImageNet: zfcore's pipeline vs the model alone vs a plain torchvision loop.

Three measurements in one run, alternating in rounds so machine noise hits all alike; same model (ZF-64
of the ``book`` profile), batch 128, same machine:

* ``model-only``: the training step (bf16 autocast + channels-last where supported, SGD, filter
  renormalisation) on one synthetic batch held in memory — the ceiling;
* ``zfcore``: the full training step fed by :class:`zfcore.data.TensorBatches` from the uint8 cache
  (random crops + flips on tensors) — goal: >= 90 % of model-only;
* ``plain``: the same network in fp32 through plain autograd (``torch.nn.Conv2d``, the contrast norm
  differentiated by autograd: ``bench_kernels.autograd_variant``), fed by
  ``torchvision.datasets.ImageFolder`` + ``DataLoader`` (PIL decoding,
  ``RandomCrop(64, padding=4, reflect)`` + flip + ``ToTensor`` + ``Normalize``) on the same images —
  what a straightforward implementation does; goal: zfcore >= 2.5x faster.

Usage: ``python bench/bench_train.py [--rounds 3] [--steps 20] [--workers 1]`` (needs Tiny ImageNet: ZFBOOK_MIRROR).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Iterable, Iterator

import torch
import torchvision
from bench_kernels import autograd_variant, make_step, timed
from torchvision import transforms

from zfcore.checkpoints import build_model
from zfcore.data.loader import IMAGENET_MEAN, IMAGENET_STD
from zfcore.data.sources import training_data
from zfcore.data.tiny_imagenet import TinyImageNet
from zfcore.profiles import get_profile


def endless(batches: Iterable) -> Iterator:
    """The batches of ``batches``, epoch after epoch, so that any number of rounds can be timed."""
    while True:
        yield from batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the plain baseline")
    args = parser.parse_args()
    config = get_profile("book").train
    bf16 = torch.cpu._is_avx512_bf16_supported()
    torch.manual_seed(0)

    def fresh(channels_last: bool):
        model = build_model(config)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        else:
            model = autograd_variant(model)
        return make_step(model, "auto" if bf16 and channels_last else "fp32")

    data = training_data(config)
    images, labels = next(iter(data.train))
    plain_transform = transforms.Compose([
        transforms.RandomCrop(64, padding=4, padding_mode="reflect"), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    folder = torchvision.datasets.ImageFolder(TinyImageNet().root / "train", transform=plain_transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=config.batch_size, shuffle=True, num_workers=args.workers,
                                         drop_last=True, persistent_workers=args.workers > 0)
    variants = {
        "model-only": (fresh(True), itertools.repeat((images, labels))),
        "zfcore": (fresh(True), endless(data.train)),
        "plain": (fresh(False), endless(loader)),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (step, batches) in variants.items():
            results[name].append(timed(step, batches, args.steps))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"threads: {torch.get_num_threads()}, bf16 autocast: {bf16}, batch {config.batch_size}, "
          f"{args.rounds} alternating rounds of {args.steps} steps, plain loader workers: {args.workers}")
    for name, value in medians.items():
        print(f"  {name:<11} {value:8.1f} img/s  (rounds: {', '.join(f'{v:.0f}' for v in results[name])})")
    print(f"zfcore / model-only: {medians['zfcore'] / medians['model-only']:.1%}  (goal >= 90 %)")
    print(f"zfcore / plain:      {medians['zfcore'] / medians['plain']:.2f}x  (goal >= 2.5x)")


if __name__ == "__main__":
    main()

"""Time zfcore.deconv.project against a loop of Captum NeuronDeconvolution calls.

Projects the top activation of every conv5 channel of ``--images`` random images to pixel space
(Zeiler & Fergus 2014, Fig. 2 for one layer), once with :func:`zfcore.deconv.project`, batched
(one call per image with all its channels, or ``--batch`` of them), and once with Captum, one
``attribute`` call per (image, channel), scaled by the activation as ``project`` does. Checks that
both agree and prints both times (wall clock and CPU) and the speed-up.

The model has random (He) weights, ``lrn=False`` (Captum cannot treat the contrast norm as the
identity, as the deconvnet does) and is in eval mode. With ``--captum-sample N`` only N random
(image, channel) pairs go through Captum and its time for all pairs is extrapolated from them.

Usage::

    python bench/bench_deconv.py [--images 9] [--size 64|224] [--captum-sample N] [--batch B] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zfcore.deconv import project  # noqa: E402
from zfcore.models import zfnet  # noqa: E402

LAYER = "conv5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=9, help="number of random images (default 9)")
    parser.add_argument("--size", type=int, default=64, choices=(64, 224),
                        help="64: ZF-64 (200 classes, fc 1024; default); 224: ZFNet (1000 classes, fc 4096)")
    parser.add_argument("--captum-sample", type=int, default=None, metavar="N",
                        help="time only N random Captum calls and extrapolate (default: all of them)")
    parser.add_argument("--batch", type=int, default=None,
                        help="projections per project() call (default: all channels at 64 px, 32 at 224 px)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.images < 1:
        parser.error(f"--images={args.images}: must be at least 1")

    from captum.attr import NeuronDeconvolution  # imported late: optional dependency

    warnings.filterwarnings("ignore", module="captum")  # its notes about hooks and requires_grad
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.size == 64:
        model = zfnet(200, 64, fc=1024, lrn=False, init="he").eval()
    else:
        model = zfnet(1000, 224, lrn=False, init="he").eval()
    images = torch.randn(args.images, 3, args.size, args.size)
    with torch.no_grad():
        activation = model.trace(images, [LAYER]).activations[LAYER]  # [N, C, h, w]
    _, channels, _, width = activation.shape
    top = activation.flatten(2).argmax(2)  # [N, C]: where project() looks by default
    pairs = [(i, c) for i in range(args.images) for c in range(channels)]

    batch = args.batch or (channels if args.size == 64 else 32)
    print(f"ZFNet-{args.size}, {LAYER}: {args.images} images x {channels} channels = {len(pairs)} projections "
          f"({batch} per project() call), {args.threads} thread(s)")
    sampled = pairs
    if args.captum_sample is not None and args.captum_sample < len(pairs):
        sampled = sorted(pairs[k] for k in torch.randperm(len(pairs))[: args.captum_sample].tolist())
    deconv = NeuronDeconvolution(model, model.activation_module(LAYER))
    deconv.attribute(images[:1], (0, 0, 0))  # warm-ups
    project(model, images[:1], LAYER, torch.arange(8))

    # Image by image, project() then Captum on the same image, so that both see the same machine load.
    # Times are wall clock and CPU time of this process; the latter is robust to other jobs on the machine.
    ours_time, captum_time = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    worst = scale = 0.0
    progress = tqdm(total=len(sampled), desc="captum", unit="call")
    for i in range(args.images):
        start = _clocks()
        chunks = torch.arange(channels).split(batch)
        ours = torch.cat([project(model, images[i : i + 1], LAYER, chunk) for chunk in chunks])  # [C, 3, S, S]
        ours_time += _clocks() - start
        scale = max(scale, ours.abs().max().item())
        for c in [c for j, c in sampled if j == i]:
            row, col = divmod(top[i, c].item(), width)
            start = _clocks()
            reference = deconv.attribute(images[i : i + 1], (c, row, col))[0] * activation[i, c, row, col]
            captum_time += _clocks() - start
            worst = max(worst, (reference - ours[c]).abs().max().item())
            progress.update()
    progress.close()
    captum_time *= len(pairs) / len(sampled)

    note = f" (extrapolated from {len(sampled)} sampled calls)" if len(sampled) < len(pairs) else ""
    print(f"max |project - captum| / max |project| = {worst / max(scale, 1e-30):.2e} over {len(sampled)} projections")
    for name, (wall, cpu) in (("zfcore.deconv.project", ours_time), ("captum loop", captum_time)):
        print(f"{name:22}: {wall:8.2f} s wall, {cpu:8.2f} s CPU  ({cpu / len(pairs) * 1e3:.2f} ms CPU/projection)"
              + (note if name == "captum loop" else ""))
    wall, cpu = (captum_time / ours_time).tolist()
    print(f"{'speed-up':22}: {wall:8.1f}x wall, {cpu:6.1f}x CPU")


def _clocks() -> torch.Tensor:
    """Wall-clock and process CPU time, in seconds."""
    return torch.tensor([time.perf_counter(), time.process_time()], dtype=torch.float64)


if __name__ == "__main__":
    main()

"""Time zfcore.analysis.occlusion against Captum's Occlusion.

For ``--images`` images, the p(true) occlusion map (§4.2, Fig. 7 (d)) is computed by
:func:`zfcore.analysis.occlusion.occlusion_maps` (which also gives panels (b) and (e) in the same
passes), once incrementally (the default: only what the occluder reaches is recomputed) and once with
every occluded copy run whole, and by Captum's ``Occlusion`` at several ``perturbations_per_eval``,
with the same window, stride and grey baseline. All outputs are checked equal within 1e-5 (ours
rebuilt into Captum's per-pixel attribution with ``pixel_attribution``). Rounds alternate between the
methods (so that all see the same machine load); the median time per image is reported, and the
ratio of Captum's best to ours.

``--input-size 64`` (default): the ZF-64 reference on Tiny ImageNet validation images (16-px square,
stride 4). ``--input-size 224``: ZFNet-224 exactly as Fig. 3, untrained (no 224-px weights are
committed; the time does not depend on the weights), on ImageNet sample images (56-px square,
stride 14). Both: 13 x 13 = 169 positions per image.

Usage::

    python bench/bench_occlusion.py [--images 4] [--rounds 3] [--threads 2] [--input-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zfcore import load_reference  # noqa: E402
from zfcore.analysis.occlusion import occluder_baseline, occlusion_maps, pixel_attribution  # noqa: E402
from zfcore.data.imagenet import imagenet_samples  # noqa: E402
from zfcore.data.tiny_imagenet import cached_split  # noqa: E402
from zfcore.data.transforms import eval_transform  # noqa: E402
from zfcore.devices import default_device  # noqa: E402
from zfcore.models import zfnet  # noqa: E402

PERTURBATIONS_PER_EVAL = (1, 16, 64, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="validation images (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--input-size", type=int, choices=(64, 224), default=64,
                        help="64: the ZF-64 reference (default); 224: ZFNet-224 as in Fig. 3, untrained")
    args = parser.parse_args()
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be at least 1")

    from captum.attr import Occlusion  # imported late: optional dependency

    warnings.filterwarnings("ignore", module="captum")
    torch.set_num_threads(args.threads)
    device = default_device()
    if args.input_size == 64:
        reference = load_reference()
        model, mean_image, network = reference.model, reference.preprocess.mean_image, "ZF-64 reference"
        split = cached_split("val")
        indices = torch.linspace(0, len(split) - 1, args.images).long().tolist()
        images = reference.preprocess(split.images[indices])
        labels = [int(split.labels[i]) for i in indices]
        source = "Tiny ImageNet val images"
    else:
        torch.manual_seed(0)
        model, mean_image, network = zfnet(1000, 224, init="he"), None, "ZFNet-224 (untrained)"
        samples = imagenet_samples()
        indices = torch.linspace(0, len(samples) - 1, args.images).long().tolist()
        images = torch.stack([eval_transform(224)(samples[i].image) for i in indices])
        labels = indices  # the samples are sorted by wnid: the ImageNet-1k label order
        source = "ImageNet sample images"
    model = model.to(device).eval()
    images = images.to(device)
    baseline = occluder_baseline(images.shape[-1], mean_image).to(device)
    occlusion = Occlusion(lambda inputs: model(inputs).softmax(1))

    def ours(index: int, incremental: bool = True):
        return occlusion_maps(model, images[index], labels[index], mean_image=mean_image, incremental=incremental)

    def captum(index: int, per_eval: int) -> torch.Tensor:
        maps = ours_maps[index]
        window, stride = (3, maps.size, maps.size), (3, maps.stride, maps.stride)
        return occlusion.attribute(images[index : index + 1], sliding_window_shapes=window, strides=stride,
                                   baselines=baseline[None], target=labels[index],
                                   perturbations_per_eval=per_eval)[0, 0].cpu()

    ours_maps = [ours(i) for i in range(args.images)]  # warm-up, and the maps to compare
    worst = 0.0
    for index in range(args.images):
        whole = pixel_attribution(ours(index, incremental=False), images.shape[-1])
        for other in (whole, *(captum(index, per_eval) for per_eval in PERTURBATIONS_PER_EVAL)):
            difference = (pixel_attribution(ours_maps[index], images.shape[-1]) - other).abs()
            worst = max(worst, float(difference.nan_to_num(0.0).max()))
    if worst > 1e-5:
        raise SystemExit(f"outputs differ: max |ours - captum| = {worst:.2e} > 1e-5")
    maps = ours_maps[0]
    print(f"{device.type}, {args.threads} thread(s); {network}, {args.images} {source}; occluder "
          f"{maps.size} px, stride {maps.stride} px: {maps.true_probability.numel()} positions per image")
    print(f"max |ours - captum| over all pixels and settings: {worst:.1e} (<= 1e-5)")

    times: dict[str, list[float]] = {"ours": [], "ours, whole copies": []} | {
        f"captum ppe={p}": [] for p in PERTURBATIONS_PER_EVAL}
    for _ in range(args.rounds):
        for name in times:
            start = time.perf_counter()
            for index in range(args.images):
                if name.startswith("ours"):
                    ours(index, incremental=name == "ours")
                else:
                    captum(index, int(name.split("=")[1]))
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) / args.images)
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"{name:18}: {1e3 * value:8.1f} ms per image (median of {args.rounds} rounds)")
    best = min((name for name in median if name.startswith("captum")), key=median.get)
    print(f"speed-up over Captum's best ({best}): {median[best] / median['ours']:.2f}x "
          f"(ours with whole copies: {median[best] / median['ours, whole copies']:.2f}x)")


if __name__ == "__main__":
    main()

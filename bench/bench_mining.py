"""Top-9 mining of conv1-conv5 over the 10,000 Tiny ImageNet val images vs one bare forward pass.

Goal: mining (one streaming pass recording the top-9 of every channel of five layers) in <= 1.3x the
time of a bare forward pass over the same batches. Both use the reference checkpoint (or a fresh
ZF-64 with ``--random``), fp32, batches of 500.

Usage: ``python bench/bench_mining.py [--images 10000] [--random]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from zfcore.analysis.top9 import top_activations
from zfcore.checkpoints import build_model
from zfcore.weights import load_reference
from zfcore.data.loader import normalize
from zfcore.data.tiny_imagenet import cached_split
from zfcore.profiles import get_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--random", action="store_true", help="a randomly initialised ZF-64, not the reference")
    args = parser.parse_args()
    model = build_model(get_profile("book").train).eval() if args.random else load_reference().model
    pixels = cached_split("val").images[: args.images]
    batches = [normalize(torch.from_numpy(np.ascontiguousarray(pixels[i : i + 500]))).contiguous()
               for i in range(0, len(pixels), 500)]
    with torch.no_grad():
        model(batches[0])  # warm-up
        start = time.perf_counter()
        for batch in batches:
            model(batch)
        bare = time.perf_counter() - start
    start = time.perf_counter()
    tops = top_activations(model, batches, k=9, progress=False)
    mining = time.perf_counter() - start
    dead = ", ".join(f"{layer} {top.dead_fraction:.1%}" for layer, top in tops.items())
    print(f"{len(pixels)} images, threads {torch.get_num_threads()}")
    print(f"  bare forward: {bare:.2f} s   mining conv1-conv5 top-9: {mining:.2f} s")
    print(f"mining / forward: {mining / bare:.2f}x  (goal <= 1.3x)")
    print(f"dead feature maps: {dead}")


if __name__ == "__main__":
    main()

"""Near-duplicate images between two datasets: 64-bit perceptual hashes and their Hamming distances.

A transfer result (§5.2) overstates how well features generalise if some test images of the target dataset
(Caltech-101) were also among the images the network was trained on (Tiny ImageNet, itself drawn from ImageNet).
This module finds such pairs cheaply:

* :func:`perceptual_hashes`: the DCT hash ("pHash"; Zauner 2010) of each image: the grey image shrunk to 32 x 32
  (area averaging), its 2-D DCT, the 8 x 8 lowest frequencies, one bit per coefficient above their median.
  Re-encoding, resizing and small colour changes keep most bits; a different photograph flips about half.
* :func:`near_duplicates`: every pair (one image of each set) whose hashes differ in at most ``max_distance``
  bits, found by brute force over all pairs in chunks (10^9 pairs take seconds).

The hash does not see a mirrored or re-cropped copy as a duplicate; such pairs need a feature distance.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from zfcore.checks import check_pixels

__all__ = ["HASH_BITS", "NEAR_DUPLICATE_BITS", "distance_counts", "duplicate_report", "near_duplicates", "perceptual_hashes"]

HASH_BITS = 64
NEAR_DUPLICATE_BITS = 8
"""The threshold fixed before the first look: two images whose hashes differ in at most 8 of 64 bits are a candidate
near-duplicate pair, to be checked by eye (two unrelated images differ in about 32)."""
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


def perceptual_hashes(pixels: np.ndarray | torch.Tensor, *, batch_size: int = 4096) -> np.ndarray:
    """The 64-bit DCT hash of every image.

    Args:
        pixels: uint8 ``[N, H, W, 3]`` (any size; shrunk to 32 x 32 by area averaging).
        batch_size: images hashed at a time (bounds the memory used).

    Returns:
        uint64 ``[N]``: bit ``k`` is set when DCT coefficient ``k`` (row-major over the 8 x 8 lowest
        frequencies) is above the median of the 64.

    Raises:
        ValueError: bad pixels (:func:`~zfcore.checks.check_pixels`) or a non-positive ``batch_size``.
    """
    check_pixels("pixels", pixels)
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not valid; give a whole number of at least 1")
    hashes = np.empty(len(pixels), dtype=np.uint64)
    for start in range(0, len(pixels), batch_size):
        chunk = np.asarray(pixels[start:start + batch_size]).astype(np.float32) @ _GREY
        small = F.adaptive_avg_pool2d(torch.from_numpy(chunk)[:, None], 32)[:, 0].numpy()
        low = scipy.fft.dctn(small, type=2, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(chunk), HASH_BITS)
        bits = low > np.median(low, axis=1, keepdims=True)
        hashes[start:start + len(chunk)] = np.packbits(bits, axis=1, bitorder="little").view("<u8")[:, 0]
    return hashes


def _check_hashes(name: str, hashes: np.ndarray) -> np.ndarray:
    hashes = np.asarray(hashes)
    if hashes.dtype != np.uint64 or hashes.ndim != 1:
        raise ValueError(f"{name} has dtype {hashes.dtype} and shape {hashes.shape}; expected uint64 [N] "
                         "(perceptual_hashes)")
    return hashes


def near_duplicates(queries: np.ndarray, references: np.ndarray, max_distance: int = NEAR_DUPLICATE_BITS, *,
                    chunk: int = 2048) -> np.ndarray:
    """Every pair ``(query index, reference index, distance)`` whose hashes differ in at most ``max_distance`` bits.

    Args:
        queries, references: uint64 hashes (:func:`perceptual_hashes`).
        max_distance: the largest Hamming distance kept (0-64).
        chunk: query hashes compared at a time (memory: ``chunk * len(references)`` bytes).

    Returns:
        int64 ``[K, 3]`` sorted by distance, then query, then reference.

    Raises:
        ValueError: hashes that are not uint64 vectors, or ``max_distance`` outside 0-64.
    """
    queries, references = _check_hashes("queries", queries), _check_hashes("references", references)
    if isinstance(max_distance, bool) or not isinstance(max_distance, Integral) or not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"max_distance={max_distance!r} is not valid; give a whole number of bits in 0-{HASH_BITS}")
    found = []
    for start in range(0, len(queries), chunk):
        distances = np.bitwise_count(queries[start:start + chunk, None] ^ references[None, :])
        rows, columns = np.nonzero(distances <= max_distance)
        found.append(np.stack([rows + start, columns, distances[rows, columns]], axis=1).astype(np.int64))
    pairs = np.concatenate(found) if found else np.empty((0, 3), dtype=np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0], pairs[:, 2]))]


def distance_counts(pairs: np.ndarray, thresholds: list[int] | tuple[int, ...]) -> dict[int, dict[str, int]]:
    """For each threshold, how many pairs of :func:`near_duplicates` lie within it, and how many distinct query and
    reference images they involve.

    Raises:
        ValueError: ``pairs`` not shaped ``[K, 3]``.
    """
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 3:
        raise ValueError(f"pairs have shape {pairs.shape}; expected [K, 3] (near_duplicates)")
    counts = {}
    for threshold in thresholds:
        kept = pairs[pairs[:, 2] <= threshold]
        counts[int(threshold)] = {"pairs": len(kept), "queries": len(np.unique(kept[:, 0])),
                                  "references": len(np.unique(kept[:, 1]))}
    return counts


def duplicate_report(queries: np.ndarray, references: dict[str, np.ndarray], *,
                     max_distance: int = NEAR_DUPLICATE_BITS,
                     thresholds: tuple[int, ...] = (0, 2, 4, 6, 8, 10, 12)) -> dict[str, object]:
    """Candidate near-duplicates of each query image in each reference set, JSON-ready.

    Args:
        queries: uint8 pixels ``[N, H, W, 3]`` of the target dataset (e.g. Caltech-101).
        references: name -> uint8 pixels of a source set (e.g. Tiny ImageNet ``train`` and ``val``).
        max_distance: the threshold whose pairs are listed (to be checked by eye).
        thresholds: the thresholds whose counts are reported (how the count depends on the threshold).

    Returns:
        ``{"hash", "max_distance", "sets": {name: {"images", "counts" (threshold -> pairs, queries, references),
        "pairs" ([query, reference, distance] within max_distance)}}, "queries"}``.

    Raises:
        ValueError: as :func:`perceptual_hashes` and :func:`near_duplicates`.
    """
    query_hashes = perceptual_hashes(queries)
    sets = {}
    for name, pixels in references.items():
        pairs = near_duplicates(query_hashes, perceptual_hashes(pixels), max(max_distance, *thresholds))
        sets[name] = {"images": len(pixels), "counts": {str(k): v for k, v in distance_counts(pairs, thresholds).items()},
                      "pairs": pairs[pairs[:, 2] <= max_distance].tolist()}
    return {"hash": "64-bit DCT hash of the grey image at 32 x 32 (perceptual_hashes)", "max_distance": max_distance,
            "queries": len(queries), "sets": sets}

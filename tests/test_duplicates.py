"""zfcore.analysis.duplicates: perceptual hashes and near-duplicate pairs between two image sets."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from zfcore.analysis.duplicates import (NEAR_DUPLICATE_BITS, distance_counts, duplicate_report, near_duplicates,
                                        perceptual_hashes)


def _scenes(count: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """Smooth random colour images (blobs at several scales), unlike one another."""
    generator = torch.Generator().manual_seed(seed)
    image = sum(F.interpolate(torch.rand(count, 3, cells, cells, generator=generator), size=size, mode="bilinear",
                              align_corners=False) / cells for cells in (2, 4, 8))
    image = (image - image.amin((1, 2, 3), keepdim=True)) / (image.amax((1, 2, 3), keepdim=True)
                                                           - image.amin((1, 2, 3), keepdim=True))
    return (255 * image).permute(0, 2, 3, 1).round().to(torch.uint8).numpy()


def _copied(image: np.ndarray) -> np.ndarray:
    """The image as a thumbnail pipeline would copy it: shrunk to 128 px, JPEG q75, back to 64 px, a bit brighter."""
    picture = Image.fromarray(image).resize((128, 128), Image.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=75)
    copy = np.asarray(Image.open(buffer).convert("RGB").resize((64, 64), Image.BILINEAR)).astype(np.int16) + 12
    return np.clip(copy, 0, 255).astype(np.uint8)


def test_a_reencoded_copy_is_near_and_other_images_are_far():
    scenes = _scenes(40)
    hashes = perceptual_hashes(scenes)
    copy = perceptual_hashes(_copied(scenes[7])[None])
    assert hashes.dtype == np.uint64 and hashes.shape == (40,)
    assert np.bitwise_count(hashes[7] ^ copy[0]) <= NEAR_DUPLICATE_BITS
    others = np.bitwise_count(hashes[:, None] ^ hashes[None, :])[~np.eye(40, dtype=bool)]
    assert np.median(others) > 20 and (others > NEAR_DUPLICATE_BITS).mean() > 0.95


def test_near_duplicates_finds_the_planted_pairs_only():
    queries, references = _scenes(30, seed=1), _scenes(200, seed=2)
    references[[17, 150]] = np.stack([_copied(queries[3]), _copied(queries[22])])
    pairs = near_duplicates(perceptual_hashes(queries), perceptual_hashes(references), max_distance=NEAR_DUPLICATE_BITS,
                            chunk=7)
    planted = {(3, 17), (22, 150)}
    assert planted <= {(q, r) for q, r, _ in pairs.tolist()}
    assert len(pairs) <= len(planted) + 3  # a few unrelated pairs may pass; the eye judges them
    assert (np.diff(pairs[:, 2]) >= 0).all()  # sorted by distance
    counts = distance_counts(pairs, (0, NEAR_DUPLICATE_BITS))
    assert counts[NEAR_DUPLICATE_BITS]["pairs"] == len(pairs) and counts[0]["pairs"] <= counts[NEAR_DUPLICATE_BITS]["pairs"]
    report = duplicate_report(queries, {"references": references})
    assert planted <= {(q, r) for q, r, _ in report["sets"]["references"]["pairs"]}
    assert report["sets"]["references"]["images"] == 200 and report["queries"] == 30


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="expected \\[N, H, W, 3\\] uint8"):
        perceptual_hashes(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="batch_size=0 is not valid"):
        perceptual_hashes(_scenes(2), batch_size=0)
    hashes = perceptual_hashes(_scenes(3))
    with pytest.raises(ValueError, match="max_distance=65 is not valid"):
        near_duplicates(hashes, hashes, 65)
    with pytest.raises(ValueError, match="queries has dtype int64"):
        near_duplicates(hashes.astype(np.int64), hashes)
    with pytest.raises(ValueError, match="pairs have shape"):
        distance_counts(np.zeros((3, 2)), (1,))

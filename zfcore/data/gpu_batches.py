"""Training and evaluation batches from image files, decoded and cropped on the GPU.

Reading ImageNet-sized JPEGs with PIL in DataLoader workers feeds ZFNet-224 on one GPU about
2,000 img/s with 15 CPU cores: far below what the GPU trains. :class:`DeviceBatches` moves the work:

* DataLoader workers only **read file bytes** (persistent across epochs); one blob per batch
  crosses to the main process.
* JPEGs are **decoded on the device**, a batch at a time, by :func:`torchvision.io.decode_jpeg`
  (nvjpeg on CUDA; libjpeg-turbo on a CPU, which is what the tests run). Files it should not be
  given — grey or CMYK JPEGs, arithmetic-coded or lossless ones, EXIF-rotated ones, anything that
  is not a JPEG — and any batch it fails on go to the CPU decoder of the file-based path
  (:func:`~zfcore.data.images.load_rgb_checked`, PIL). Files PIL cannot read either (or that are
  over its pixel limit, :func:`~zfcore.data.images.over_pixel_limit`) are skipped and named
  in one :class:`~zfcore.data.images.CorruptImageWarning` per pass.
* The paper's crops (§3) on the device, as :func:`zfcore.data.transforms.train_transform` and
  ``eval_transform`` do them: shorter side to ``resize`` (bilinear, antialiased; images of one
  size resized together), centre ``resize``², then a random ``size``² crop and horizontal flip for
  training (the centre ``size``² crop for evaluation), ImageNet mean/std normalisation.
* Decoding and cropping run one batch ahead in a background thread (on its own CUDA stream), so
  they overlap the training step.
* The centre squares are **kept on the device** when they fit (``cache``; by default when all of
  them take at most a quarter of the free GPU memory: Imagenette's 9,469 training squares take
  1.9 GB, ImageNet's 1.28 million would take 251 GB and are decoded every epoch). The paper's
  own preprocessing is exactly this square (§3: shorter side to 256, centre 256² region), so
  later passes only crop, flip and normalise: no file is read or decoded again, and the batches
  are the same as without the cache.

Every random choice of an epoch (crop offsets, flips) is drawn in the main process from a generator
seeded by ``(seed, epoch, rank)`` and indexed by the image's place in the epoch, so the batches
follow from the seed whatever the number of workers, and the shuffle is a
:class:`~torch.utils.data.distributed.DistributedSampler`'s.

Against the PIL path the batches differ only by resampling: PIL's antialiased bilinear resize and
torchvision's of uint8 tensors round differently. On the CPU, over JPEGs of 200x150 to 1024x768
at 224/256, 0.24 % of the values differ by one grey level of 255 and one in 1.8 million by two
(``tests/test_gpu_path.py`` states the measurement and checks the bound).
"""

from __future__ import annotations

import contextlib
import io
import queue
import struct
import threading
import warnings
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF

from zfcore.data.images import CorruptImageWarning, UnreadableImageError, load_rgb_checked, over_pixel_limit
from zfcore.data.loader import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["DeviceBatches", "device_decodable"]

_PREFETCH = 2  # batches decoded ahead of the one being trained on
# SOF markers of Huffman-coded JPEGs that nvjpeg decodes: baseline, extended sequential, progressive
_DEVICE_FRAMES = (0xC0, 0xC1, 0xC2)
_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 (C4, C8, CC are not frames)
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD9)])


def device_decodable(data: bytes | memoryview | np.ndarray) -> bool:
    """Whether :func:`~torchvision.io.decode_jpeg` on a device decodes ``data`` exactly as PIL would.

    Reads the JPEG headers only: true for a Huffman-coded (baseline or progressive) JPEG with three
    components that are not Adobe-tagged RGB, and no EXIF rotation (``decode_jpeg`` applies EXIF
    orientation only on the CPU). Everything else — grey and CMYK JPEGs, other codings, other
    formats, garbage, truncated files (no end-of-image marker: nvjpeg would decode them partly
    where PIL refuses them) and images over PIL's pixel limit (possible decompression bombs, which
    the CPU decoder skips) — goes to the CPU decoder.
    """
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    try:
        if view[0] != 0xFF or view[1] != 0xD8 or bytes(view[-2:]) != b"\xff\xd9":
            return False
        position = 2
        while True:
            while view[position] != 0xFF:  # tolerate junk between segments, as libjpeg does
                position += 1
            while view[position] == 0xFF:  # fill bytes
                position += 1
            marker = view[position]
            position += 1
            if marker in _STANDALONE_MARKERS:
                continue
            (length,) = struct.unpack_from(">H", view, position)
            segment = view[position + 2 : position + length]
            if marker in _FRAME_MARKERS:
                height, width = struct.unpack_from(">HH", segment, 1)
                return marker in _DEVICE_FRAMES and segment[5] == 3 and not over_pixel_limit(width, height)
            if marker == 0xDA:  # start of scan before any frame header
                return False
            if marker == 0xE1 and bytes(segment[:6]) == b"Exif\0\0" and _exif_orientation(segment[6:]) not in (None, 1):
                return False
            if marker == 0xEE and bytes(segment[:5]) == b"Adobe" and segment[11] == 0:  # RGB or CMYK, untransformed
                return False
            position += length
    except (IndexError, struct.error):  # truncated headers: let the CPU decoder judge
        return False


def _exif_orientation(tiff: memoryview) -> int | None:
    """The orientation tag (0x0112) of an EXIF block's first IFD, ``None`` if absent."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None:
        return None
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, _, _, value = struct.unpack_from(order + "HHIH", tiff, entry)
        if tag == 0x0112:
            return value
    return None


class _FileBytes(Dataset):
    """``(index, raw bytes as uint8 tensor)`` of each file; an empty tensor for a file that cannot be read."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        try:
            data = np.fromfile(self.paths[index], dtype=np.uint8)
        except OSError:
            data = np.empty(0, dtype=np.uint8)
        return index, torch.from_numpy(data)


def _collate_bytes(items: list[tuple[int, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One blob per batch, so that a worker hands over one shared-memory block, not one per file.

    Returns:
        ``(dataset indices [B], all bytes concatenated [total] uint8, byte counts [B])``.
    """
    indices = torch.tensor([index for index, _ in items], dtype=torch.long)
    lengths = torch.tensor([len(data) for _, data in items], dtype=torch.long)
    return indices, torch.cat([data for _, data in items]), lengths


class DeviceBatches:
    """``(images, labels)`` batches of image files, decoded and cropped on ``device`` (see the module docstring).

    The interface of :class:`zfcore.data.loader.FileBatches`, for the 224-px profiles on a GPU.

    Args:
        files: ``(path, label)`` of every image.
        batch_size: images per batch (per process under DDP); a batch loses the images it skipped.
        train: shuffle through a :class:`DistributedSampler` (``seed``, re-shuffled by :meth:`set_epoch`),
            random crops and flips, drop the last incomplete batch; else the fixed order, centre crops,
            every image (no sharding).
        size: the crop (224 in the paper).
        resize: the shorter side and centre square before cropping (256 in the paper).
        seed: seeds the shuffle and the augmentation: epoch ``e`` on rank ``r`` draws from ``(seed, e, r)``.
        workers: DataLoader processes reading file bytes (persistent across epochs; 0: read in the
            main process).
        device: where decoding, cropping and the batches are (CUDA: nvjpeg).
        num_replicas, rank: DDP sharding (default: one process).
        cache: keep every decoded centre square on ``device`` and make later passes from them (same
            batches, no reading or decoding once every square of a pass is there). Default ``None``:
            on CUDA when the squares (``len(files) * 3 * resize**2`` bytes) take at most a quarter of
            the free device memory, never on a CPU.

    Iterating yields ``images`` ``[B, 3, size, size]`` float32 in channels-last memory and ``labels``
    ``[B]`` int64, both on ``device``. After a pass, ``skipped`` lists the files that could not be
    read (also named by one :class:`CorruptImageWarning`) and ``cpu_decoded`` those the CPU decoder
    read instead of ``decode_jpeg`` on the device (none in a pass made from the cache).
    """

    def __init__(
        self,
        files: Sequence[tuple[str, int]],
        batch_size: int,
        *,
        train: bool,
        size: int = 224,
        resize: int = 256,
        seed: int = 0,
        workers: int = 0,
        device: torch.device | str = "cpu",
        num_replicas: int = 1,
        rank: int = 0,
        cache: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: must be a positive integer")
        if not 0 < size <= resize:
            raise ValueError(f"size={size!r}, resize={resize!r}: need 0 < size <= resize")
        if cache not in (None, True, False):
            raise ValueError(f"cache={cache!r} is not valid; valid values: None (automatic), True, False")
        self.paths = [str(path) for path, _ in files]
        self.labels = torch.tensor([label for _, label in files], dtype=torch.long)
        self.batch_size, self.train, self.size, self.resize = batch_size, train, size, resize
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:  # one device for nvjpeg, streams and tensors
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.sampler = (
            DistributedSampler(range(len(self.paths)), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                               drop_last=True)
            if train
            else None
        )
        self.loader = DataLoader(
            _FileBytes(self.paths), batch_size=batch_size, sampler=self.sampler, num_workers=workers,
            collate_fn=_collate_bytes, drop_last=train, persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std)
        self._shift = -torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) / std
        self.skipped: list[str] = []
        self.cpu_decoded: list[str] = []
        square_bytes = len(self.paths) * 3 * resize * resize
        if cache is None:
            cache = self.device.type == "cuda" and square_bytes <= torch.cuda.mem_get_info(self.device)[0] // 4
        # the cache: each file's centre square once decoded, and whether it is there (unreadable files count)
        self._squares = (torch.empty(len(self.paths), 3, resize, resize, dtype=torch.uint8, device=self.device)
                         if cache else None)
        self._known = torch.zeros(len(self.paths), dtype=torch.bool)
        self._unreadable = torch.zeros(len(self.paths), dtype=torch.bool)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation the next pass uses."""
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def cached(self) -> int:
        """How many files' centre squares are kept on the device (0 without the cache)."""
        return int(self._known.sum()) if self._squares is not None else 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.skipped, self.cpu_decoded = [], []
        order = list(self.sampler) if self.sampler is not None else list(range(len(self.paths)))
        if self._squares is not None and bool(self._known[order].all()):
            batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = (
                (torch.tensor(order[start : start + self.batch_size]), torch.empty(0, dtype=torch.uint8), None)
                for start in range(0, len(self.loader) * self.batch_size, self.batch_size)
            )
        else:
            batches = iter(self.loader)  # in this thread: starts (or, later, reuses) the worker processes
        yield from _prefetched(self._batches(batches), self.device, _PREFETCH)
        if self.skipped:
            warnings.warn(
                f"{len(self.skipped)} unreadable image file(s) skipped in epoch {self.epoch}: " + "; ".join(self.skipped),
                CorruptImageWarning,
                stacklevel=2,
            )

    def _batches(self, files: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The pass's batches from ``files`` (the DataLoader's, or the pass's indices without bytes when every
        square is cached), made in order (run by the prefetching thread)."""
        offsets = flips = None
        if self.train:
            generator = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, self.epoch, self.rank]).generate_state(1)[0])
            )
            count = len(self.loader) * self.batch_size
            offsets = torch.randint(0, self.resize - self.size + 1, (count, 2), generator=generator).to(self.device)
            flips = (torch.rand(count, generator=generator) < 0.5).to(self.device)
        for batch_number, (indices, blob, lengths) in enumerate(files):
            squares, kept = self._decode_squares(indices, blob, lengths)
            if not kept:
                continue
            if self.train:
                places = torch.tensor(kept, device=self.device) + batch_number * self.batch_size
                images = self._crop_and_flip(squares, offsets[places], flips[places])
            else:
                images = TF.center_crop(squares, [self.size, self.size]).contiguous(memory_format=torch.channels_last)
            images = torch.addcmul(self._shift, images, self._scale)  # (x / 255 - mean) / std in one kernel
            yield images, self.labels[indices[kept]].to(self.device, non_blocking=True)

    def _decode_squares(self, indices: torch.Tensor, blob: torch.Tensor,
                        lengths: torch.Tensor | None) -> tuple[torch.Tensor, list[int]]:
        """Each image's centre ``resize``² square: from the cache where it is there, else decoded (and cached).

        Args:
            indices, blob, lengths: the files' indices and their bytes, one blob with each file's byte count
                (``lengths`` ``None``: no bytes, every square is cached).

        Returns:
            ``(squares [K, 3, resize, resize] uint8 on the device, the batch positions of those K)``;
            the others were unreadable (added to ``skipped``).
        """
        if self._squares is not None and bool(self._known[indices].all()):
            unreadable = self._unreadable[indices]
            self.skipped += [self.paths[int(index)] for index in indices[unreadable]]
            kept = [position for position in range(len(indices)) if not unreadable[position]]
            return self._squares[indices[kept].to(self.device)], kept
        squares, kept = self._decode_files(indices, blob, lengths)
        if self._squares is not None:
            self._squares[indices[kept].to(self.device)] = squares
            self._unreadable[indices] = True
            self._unreadable[indices[kept]] = False
            self._known[indices] = True
        return squares, kept

    def _decode_files(self, indices: torch.Tensor, blob: torch.Tensor,
                      lengths: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Decode a batch of files and make each image's centre ``resize``² square (as :meth:`_decode_squares`)."""
        bounds = np.concatenate([[0], np.cumsum(lengths.numpy())])
        raw = [blob[bounds[i] : bounds[i + 1]] for i in range(len(indices))]
        host = memoryview(blob.numpy())
        on_device = [i for i in range(len(raw)) if device_decodable(host[bounds[i] : bounds[i + 1]])]
        decoded: dict[int, torch.Tensor] = dict(zip(on_device, self._decode_on_device([raw[i] for i in on_device])))
        for i in range(len(raw)):
            if decoded.get(i) is None:
                path = self.paths[int(indices[i])]
                try:
                    image = load_rgb_checked(io.BytesIO(host[bounds[i] : bounds[i + 1]]))
                except UnreadableImageError:  # truncated, garbled, or over PIL's pixel limit
                    self.skipped.append(path)
                    decoded.pop(i, None)
                    continue
                self.cpu_decoded.append(path)
                decoded[i] = torch.from_numpy(np.array(image)).permute(2, 0, 1).to(self.device)
        kept = sorted(decoded)
        squares = torch.empty(len(kept), 3, self.resize, self.resize, dtype=torch.uint8, device=self.device)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for row, i in enumerate(kept):
            by_shape.setdefault(tuple(decoded[i].shape[1:]), []).append(row)
        for rows in by_shape.values():  # one resize per image size
            same = torch.stack([decoded[kept[row]] for row in rows])
            resized = TF.resize(same, [self.resize], antialias=True)
            squares[torch.tensor(rows, device=self.device)] = TF.center_crop(resized, [self.resize, self.resize])
        return squares, kept

    def _decode_on_device(self, raw: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """``decode_jpeg`` on the device, as one batch; one by one if the batch fails (``None``: failed)."""
        if not raw:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision >= 0.29 points to TorchCodec
            try:
                return decode_jpeg(raw, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:
                pass
            single: list[torch.Tensor | None] = []
            for data in raw:
                try:
                    single.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    single.append(None)
            return single

    def _crop_and_flip(self, squares: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """``size``² crops at ``offsets`` (row, col) of ``squares`` ``[K, 3, R, R]``, mirrored where ``flips``.

        One gather for the whole batch; returns ``[K, 3, size, size]`` in channels-last memory.
        """
        steps = torch.arange(self.size, device=squares.device)
        rows = offsets[:, :1] + steps
        cols = offsets[:, 1:] + torch.where(flips[:, None], self.size - 1 - steps, steps)
        batch = torch.arange(len(squares), device=squares.device)[:, None, None]
        pixels = squares.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [K, size, size, 3]
        return pixels.permute(0, 3, 1, 2)


def _prefetched(batches: Generator[Any, None, None], device: torch.device, depth: int) -> Iterator[Any]:
    """Run ``batches`` ``depth`` items ahead in a thread (on a side CUDA stream on a GPU), yielding in order.

    An error in the thread is raised here; closing this generator stops the thread.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    side_stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with torch.cuda.stream(side_stream) if side_stream is not None else contextlib.nullcontext():
                for item in batches:
                    event = None
                    if side_stream is not None:
                        event = torch.cuda.Event()
                        event.record(side_stream)
                    if not put((item, event)):
                        return
        except BaseException as error:  # handed to the consumer, which raises it
            put((error, None))
            return
        put((done, None))

    thread = threading.Thread(target=produce, name="device-batches", daemon=True)
    thread.start()
    try:
        while True:
            item, event = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            if event is not None:
                consumer = torch.cuda.current_stream(device)
                consumer.wait_event(event)
                for tensor in item:
                    tensor.record_stream(consumer)
            yield item
    finally:
        stop.set()
        thread.join()
        batches.close()  # ends the pass's DataLoader iterator

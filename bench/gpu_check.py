"""One GPU check of the 224-px path, each number beside its baseline from the same run; no dataset needed.

It writes a few thousand synthetic 500x375 JPEGs (smooth colour noise, quality 90, 10 class folders)
to a temporary folder, then measures, on ZFNet-224 (bf16 autocast, channels-last, batch 256):

* ``model_step`` (eager) and ``model_step_compiled`` (``torch.compile``): the training step alone on
  synthetic tensors (forward, backward, SGD, filter renormalisation, as :func:`zfcore.train.train`
  does it), with MFU
  (FLOPs of one step counted by ``FlopCounterMode``, over the H100's 989 TFLOP/s dense bf16);
  baseline: the same net with ``torch.nn.LocalResponseNorm`` instead of zfcore's contrast norm;
* ``loader``: images per second of the CPU path (:class:`zfcore.data.loader.FileBatches`, PIL +
  ``train_transform`` in DataLoader workers) and of the GPU path
  (:class:`zfcore.data.gpu_batches.DeviceBatches`, nvjpeg), alone: decoding every pass (as for
  ImageNet, whose squares do not fit on the GPU) and from the squares cached on the GPU (as for
  Imagenette);
* ``train_eager``, ``train_compiled``: :func:`zfcore.train.train` end to end on the GPU path with its
  default cache (the first epoch decodes and fills it), and its ratio to the model-only eager step
  (goal: >= 70 %; compiled: >= 12,000 img/s); ``train_eager_uncached``: the same, decoding every epoch;
* ``projection``: the largest CUDA-vs-CPU difference of :func:`zfcore.deconv.project` (relative to the
  CPU projection's maximum) for conv1-conv5 and fc6 of a seeded random ZFNet-224 in fp32 (goal:
  <= 1e-5), beside the same with PyTorch's default TF32 convolutions;
* ``decoding``: the GPU path's centre crops on CUDA vs the same code decoding on the CPU, and what
  it did with a grey, a CMYK, an EXIF-rotated, a PNG-named-.JPEG, a truncated, a garbage and a
  progressive file;
* ``analyses``: top-9 mining, projections and Fig. 4 feature evolution with the model on CUDA vs CPU.

Every section is timed briefly (warm-up, then timed steps, CUDA synchronised) and guarded: an error
is recorded in the JSON and the next section runs. The two compiled sections come last and are
skipped when fewer than 90 s of ``--budget`` (270 s) are left. Usage (under 5 minutes on one H100)::

    PYTHONPATH=. python bench/gpu_check.py --out gpu_check.json
    PYTHONPATH=. python bench/gpu_check.py --smoke      # tiny sizes on a CPU: proves the script runs
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import zfcore.deconv
from zfcore.analysis.evolution import evolution
from zfcore.analysis.top9 import top_activations, top_projections
from zfcore.data.gpu_batches import DeviceBatches
from zfcore.data.images import CorruptImageWarning, load_rgb_checked
from zfcore.data.loader import FileBatches, IMAGENET_STD, pixel_batches
from zfcore.data.sources import TrainingData
from zfcore.data.transforms import eval_transform, train_transform
from zfcore.devices import default_device
from zfcore.models import ContrastNorm, zfnet
from zfcore.profiles import TrainConfig
from zfcore.provenance import provenance
from zfcore.store import write_text_atomic
from zfcore.train import train
from zfcore.training_step import TrainingStep, sgd_optimizer

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM
CLASSES = 10
PROJECTED_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6")


# -- synthetic data ------------------------------------------------------------------------------


def _picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour noise with grain: costs a JPEG coder about what a photo does."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((height // 24 + 2, width // 24 + 2, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    return Image.fromarray((smooth + rng.normal(0, 12, smooth.shape)).clip(0, 255).astype(np.uint8))


def _write_one(job: tuple[str, int, int, int]) -> None:
    path, width, height, seed = job
    _picture(width, height, seed).save(path, format="JPEG", quality=90)


def make_jpegs(root: Path, count: int, width: int, height: int) -> list[tuple[str, int]]:
    """``count`` JPEGs in ``root/<class>/`` (an ImageFolder layout), written in parallel; ``(path, label)``."""
    jobs = []
    for index in range(count):
        label = index % CLASSES
        folder = root / f"class{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"{index:05d}.JPEG"), width, height, index))
    with multiprocessing.get_context("fork").Pool(max(1, (os.cpu_count() or 1))) as pool:
        pool.map(_write_one, jobs, chunksize=16)
    return sorted((path, int(Path(path).parent.name[5:])) for path, *_ in jobs)


def make_odd_files(root: Path) -> dict[str, str]:
    """A grey, a CMYK, an EXIF-rotated, a PNG-named-.JPEG, a truncated and a garbage file, and a progressive JPEG.

    All but the last two should be read by the CPU decoder, truncated and garbage skipped; the
    progressive JPEG should be decoded on the device.
    """
    root.mkdir(parents=True, exist_ok=True)
    picture = _picture(500, 375, 99)
    exif = Image.Exif()
    exif[0x0112] = 6
    names = ("grey", "cmyk", "rotated", "png", "truncated", "garbage", "progressive")
    files = {name: str(root / f"{name}.JPEG") for name in names}
    picture.convert("L").save(files["grey"], format="JPEG", quality=90)
    picture.convert("CMYK").save(files["cmyk"], format="JPEG", quality=90)
    picture.save(files["rotated"], format="JPEG", quality=90, exif=exif)
    picture.save(files["png"], format="PNG")
    picture.save(files["progressive"], format="JPEG", quality=90, progressive=True)
    picture.save(files["truncated"], format="JPEG", quality=90)
    data = Path(files["truncated"]).read_bytes()
    Path(files["truncated"]).write_bytes(data[: len(data) // 2])
    Path(files["garbage"]).write_bytes(b"not an image" * 100)
    return files


# -- helpers -------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def with_torch_lrn(model: nn.Module) -> nn.Module:
    """``model`` with every :class:`ContrastNorm` replaced by the equivalent ``torch.nn.LocalResponseNorm``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ContrastNorm):
                setattr(parent, name, nn.LocalResponseNorm(child.size, child.alpha, child.beta, child.k))
    return model


def training_step(model: nn.Module, network: nn.Module | None = None) -> TrainingStep:
    """The step :func:`zfcore.train.train` takes (:class:`zfcore.training_step.TrainingStep`): autocast forward,
    fp32 loss, backward, SGD with momentum and weight decay, filter renormalisation to RMS 0.1.

    ``network`` runs the forward pass (e.g. ``torch.compile(model)``; default ``model``).
    """
    optimizer = sgd_optimizer(model, lr=1e-2, momentum=0.9, weight_decay=5e-4)
    return TrainingStep(model, optimizer, network=network)


def images_per_second(step: Callable, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                      warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step(images, labels)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(images, labels)
    _sync(device)
    return steps * len(labels) / (time.perf_counter() - start)


def _grey_levels(got: torch.Tensor, want: torch.Tensor) -> dict[str, float]:
    levels = (got.float().cpu() - want.float().cpu()).abs() * torch.tensor(IMAGENET_STD)[:, None, None] * 255
    return {"max_grey_levels": levels.max().item(), "fraction_off_by_one_or_more": (levels > 0.5).float().mean().item(),
            "fraction_off_by_two_or_more": (levels > 1.5).float().mean().item()}


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.float().cpu() - want.float().cpu()).abs().max() / want.float().abs().max().clamp_min(1e-30)).item()


# -- sections ------------------------------------------------------------------------------------


def model_step(args: argparse.Namespace, device: torch.device, compiled: bool) -> dict[str, Any]:
    """Model-only img/s (eager or compiled), zfcore's contrast norm vs ``nn.LocalResponseNorm``, with MFU."""
    result: dict[str, Any] = {"batch": args.batch, "steps": args.steps}
    images = torch.randn(args.batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (args.batch,), device=device)
    for variant in ("zfcore", "torch_lrn"):
        torch.manual_seed(0)
        model = zfnet(1000, 224, init="he")
        model = (with_torch_lrn(model) if variant == "torch_lrn" else model).to(device, memory_format=torch.channels_last)
        with FlopCounterMode(display=False) as counter:
            training_step(model)(images, labels)
        flops = counter.get_total_flops()
        if compiled and time.perf_counter() - STARTED > args.budget - 45:
            result[variant] = "skipped: time budget"
            continue
        step = training_step(model, torch.compile(model) if compiled else None)
        rate = images_per_second(step, images, labels, device, args.warmup + (2 if compiled else 0), args.steps)
        result[variant] = {"img_per_s": rate, "flops_per_step": flops, "mfu": flops * rate / args.batch / H100_BF16_PEAK}
        print(f"  model step {variant:9s} {'compiled' if compiled else 'eager':8s} {rate:9.0f} img/s  "
              f"MFU {result[variant]['mfu'] * 100:5.1f} %", flush=True)
        del model, step
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _timed_epochs(batches: Any, device: torch.device, epochs: Iterable[int]) -> tuple[float, int]:
    """Images per second over full passes of ``batches`` for ``epochs`` (CUDA synchronised at the end)."""
    count = 0
    start = time.perf_counter()
    for epoch in epochs:
        batches.set_epoch(epoch)
        for _, labels in batches:
            count += len(labels)
    _sync(device)
    return count / (time.perf_counter() - start), count


def loader(args: argparse.Namespace, device: torch.device, root: Path, files: list[tuple[str, int]]) -> dict[str, Any]:
    """Loader-only img/s: PIL in DataLoader workers vs nvjpeg + device crops; epoch 0 warms up, 1-2 are timed."""
    cpu_workers = max(1, min(15, (os.cpu_count() or 2) - 1))
    folder = torchvision.datasets.ImageFolder(str(root), transform=train_transform(224), loader=load_rgb_checked)
    cpu_path = FileBatches(folder, args.batch, train=True, seed=0, workers=cpu_workers)
    _timed_epochs(cpu_path, torch.device("cpu"), [0])
    cpu_rate, cpu_count = _timed_epochs(cpu_path, torch.device("cpu"), [1, 2])
    print(f"  loader CPU path (PIL, {cpu_workers} workers) {cpu_rate:9.0f} img/s", flush=True)
    gpu_path = DeviceBatches(files, args.batch, train=True, seed=0, workers=args.byte_workers, device=device, cache=False)
    _timed_epochs(gpu_path, device, [0])
    gpu_rate, gpu_count = _timed_epochs(gpu_path, device, [1, 2])
    print(f"  loader GPU path (decode on {device.type}, {args.byte_workers} byte workers) {gpu_rate:9.0f} img/s", flush=True)
    cached = DeviceBatches(files, args.batch, train=True, seed=0, workers=args.byte_workers, device=device, cache=True)
    _timed_epochs(cached, device, [0, 1])  # fills the cache (each pass drops its last incomplete batch)
    cached_rate, cached_count = _timed_epochs(cached, device, [2, 3])
    print(f"  loader GPU path, squares cached on {device.type} {cached_rate:9.0f} img/s", flush=True)
    return {"cpu_path": {"img_per_s": cpu_rate, "images": cpu_count, "workers": cpu_workers},
            "gpu_path": {"img_per_s": gpu_rate, "images": gpu_count, "workers": args.byte_workers,
                         "cpu_decoded": len(gpu_path.cpu_decoded), "skipped": len(gpu_path.skipped)},
            "gpu_path_cached": {"img_per_s": cached_rate, "images": cached_count, "cached": cached.cached},
            "speed_up": gpu_rate / cpu_rate}


def end_to_end(args: argparse.Namespace, device: torch.device, files: list[tuple[str, int]], compiled: bool,
               out_dir: Path, cache: bool | None = None) -> dict[str, Any]:
    """:func:`zfcore.train.train` on the GPU path; img/s of each epoch (epoch 1 warms up and fills the cache,
    the median of the rest)."""
    # the file list repeated, for more steps per epoch (the files stay in the page cache)
    repeated = files * args.repeat
    config = TrainConfig(dataset="imagenet", input_size=224, num_classes=1000, init="he", preprocessing="mean-std",
                         epochs=args.epochs, batch_size=args.batch, lr=0.01, schedule="cosine",
                         workers=args.byte_workers, compile=compiled)
    data = TrainingData(
        train=DeviceBatches(repeated, args.batch, train=True, seed=config.seed, workers=args.byte_workers, device=device,
                            cache=cache),
        val=DeviceBatches(files[: args.batch * 2], args.batch, train=False, workers=args.byte_workers, device=device,
                          cache=cache),
        classes=[f"synthetic{index}" for index in range(1000)],  # labels 0-9 of a 1000-way fc8: the model-only net
        class_names=[f"synthetic {index}" for index in range(1000)],
        sha256="synthetic",
        train_images=len(repeated),
    )
    rows = train(config, out_dir, data=data, progress=False)
    rates = [row["img_per_s"] for row in rows]
    steady = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
    print(f"  train() {'compiled' if compiled else 'eager':8s} {'' if cache is None else 'cache=' + str(cache)} "
          f"per epoch {[round(rate) for rate in rates]} img/s -> {steady:.0f}", flush=True)
    return {"img_per_s": steady, "per_epoch": rates, "steps_per_epoch": len(data.train), "epochs": len(rows),
            "squares_cached": data.train.cached}


def projections(args: argparse.Namespace, device: torch.device, files: list[tuple[str, int]]) -> dict[str, Any]:
    """Largest |device - CPU| / max |CPU| of ``project`` per layer, TF32 off (project) vs PyTorch's default."""
    torch.manual_seed(0)
    model = zfnet(1000, 224, init="he").eval()
    transform = eval_transform(224)
    images = torch.stack([transform(load_rgb_checked(path)) for path, _ in files[: args.projected_images]])
    on_device = copy.deepcopy(model).to(device)
    device_images = images.to(device)
    result: dict[str, Any] = {"images": len(images)}
    trace = model.trace(images, PROJECTED_LAYERS)
    for layer in PROJECTED_LAYERS:
        activation = trace.activations[layer]
        channels = activation.flatten(2).amax(2).argmax(1) if activation.dim() == 4 else activation.argmax(1)
        want = zfcore.deconv.project(model, images, layer, channels)
        got = zfcore.deconv.project(on_device, device_images, layer, channels.to(device))
        with _tf32_as_pytorch_default():
            default = zfcore.deconv.project(on_device, device_images, layer, channels.to(device))
        in_fp64 = _relative(zfcore.deconv.project(on_device.double(), device_images.double(), layer, channels.to(device)),
                            zfcore.deconv.project(model.double(), images.double(), layer, channels))
        on_device.float(), model.float()
        cpu_switches = model.trace(images, [layer]).switches
        with zfcore.deconv.exact_float32():
            device_switches = on_device.trace(device_images, [layer]).switches
        flipped = sum(int((cpu_switches[pool] != device_switches[pool].cpu()).sum()) for pool in cpu_switches)
        result[layer] = {"tf32_off": _relative(got, want), "pytorch_default_tf32": _relative(default, want),
                         "fp64": in_fp64, "switches_differing_fp32": flipped}
        print(f"  projection {layer}: {device.type} vs CPU {result[layer]['tf32_off']:.2e} "
              f"(PyTorch's default TF32: {result[layer]['pytorch_default_tf32']:.2e}; fp64: {in_fp64:.2e}; "
              f"pool switches differing in fp32: {flipped})", flush=True)
    result["largest_tf32_off"] = max(result[layer]["tf32_off"] for layer in PROJECTED_LAYERS)
    result["largest_pytorch_default_tf32"] = max(result[layer]["pytorch_default_tf32"] for layer in PROJECTED_LAYERS)
    return result


@contextlib.contextmanager
def _tf32_as_pytorch_default():
    """``project`` as it was before it turned TF32 off: cuDNN convolutions in TF32 (PyTorch's default)."""
    saved = zfcore.deconv.exact_float32, torch.backends.cudnn.allow_tf32
    zfcore.deconv.exact_float32 = contextlib.nullcontext
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        zfcore.deconv.exact_float32, torch.backends.cudnn.allow_tf32 = saved


def decoding(args: argparse.Namespace, device: torch.device, files: list[tuple[str, int]], odd: dict[str, str]) -> dict[str, Any]:
    """The GPU path's centre crops on ``device`` vs the same code decoding on the CPU; what happened to odd files."""
    chosen = files[: args.compared_images] + [(path, 0) for path in odd.values()]
    passes = {}
    for where in ("device", "cpu"):
        batches = DeviceBatches(chosen, args.batch, train=False, device=device if where == "device" else "cpu")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CorruptImageWarning)
            images = torch.cat([batch.cpu() for batch, _ in batches])
        names = {path: name for name, path in odd.items()}
        passes[where] = {"images": images, "cpu_decoded": sorted(names.get(p, p) for p in batches.cpu_decoded),
                         "skipped": sorted(names.get(p, p) for p in batches.skipped),
                         "warnings": sum(issubclass(w.category, CorruptImageWarning) for w in caught)}
    result: dict[str, Any] = {
        "images": len(chosen),
        **{f"{where}_{key}": passes[where][key] for where in passes for key in ("cpu_decoded", "skipped", "warnings")},
    }
    if passes["device"]["images"].shape == passes["cpu"]["images"].shape:
        result |= _grey_levels(passes["device"]["images"], passes["cpu"]["images"])
    else:
        result["shape_mismatch"] = [list(passes[w]["images"].shape) for w in passes]
    print(f"  decoding {device.type} vs CPU: {result.get('max_grey_levels')} grey levels at most; "
          f"{device.type} CPU-decoded {result['device_cpu_decoded']}, skipped {result['device_skipped']}", flush=True)
    return result


def analyses(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Top-9 mining + projections and Fig. 4 evolution of a random ZF-64 with the model on ``device`` vs the CPU."""
    torch.manual_seed(0)
    model = zfnet(10, 64, init="he").eval()
    rng = np.random.default_rng(0)
    pixels = np.stack([np.asarray(_picture(64, 64, int(seed))) for seed in rng.integers(0, 10**6, args.mined_images)])
    on_device = copy.deepcopy(model).to(device)
    result: dict[str, Any] = {"images": len(pixels)}
    tops = {where: top_activations(network, pixel_batches(pixels, 64), ("conv1", "conv5"), k=9, progress=False)
            for where, network in (("cpu", model), ("device", on_device))}
    for layer in ("conv1", "conv5"):
        cpu, dev = tops["cpu"][layer], tops["device"][layer]
        same = (cpu.image_index == dev.image_index).float().mean().item()
        projected_cpu = top_projections(model, pixels, cpu, channels=range(4), progress=False).projections
        projected_dev = top_projections(on_device, pixels, cpu, channels=range(4), progress=False).projections
        result[layer] = {"result_device": str(dev.values.device), "same_top9_images": same,
                         "values_relative": _relative(dev.values, cpu.values),
                         "projections_relative": _relative(projected_dev, projected_cpu)}
    snapshots = {}
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        snapshots[epoch] = {key: value.half() for key, value in zfnet(10, 64, init="he").features.state_dict().items()}
    evolved = {where: evolution(network, snapshots, pixels, maps_per_layer=2, layers=("conv1", "conv3"), batch_size=64,
                                progress=False)
               for where, network in (("cpu", model), ("device", on_device))}
    result["evolution"] = {
        "same_channels": evolved["cpu"].channels == evolved["device"].channels,
        "projections_relative": max(_relative(evolved["device"].projections[layer], evolved["cpu"].projections[layer])
                                    for layer in ("conv1", "conv3")),
    }
    print(f"  analyses on {device.type}: {json.dumps(result)}", flush=True)
    return result


# -- main ----------------------------------------------------------------------------------------

STARTED = time.perf_counter()


def _section(results: dict[str, Any], name: str, run: Callable[[], Any]) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {name}", flush=True)
    try:
        results[name] = run()
    except Exception as error:  # noqa: BLE001 - one failing section must not lose the others
        traceback.print_exc()
        results[name] = {"error": f"{type(error).__name__}: {error}"}
    results.setdefault("seconds", {})[name] = round(time.perf_counter() - STARTED, 1)


def _summary(results: dict[str, Any]) -> list[str]:
    def get(*keys: str) -> Any:
        value: Any = results
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def number(value: Any, fmt: str = "{:,.0f}") -> str:
        return fmt.format(value) if isinstance(value, (int, float)) else str(value if value is not None else "-")

    lines = ["", "what                              | measured                       | baseline (same run)"]
    lines.append("-" * 100)
    for mode, section in (("eager", "model_step"), ("compiled", "model_step_compiled")):
        ours, base = get(section, "zfcore"), get(section, "torch_lrn")
        ours = ours if ours is not None else get(section)
        ours_text = (f"{number(ours['img_per_s'])} img/s, MFU {ours['mfu'] * 100:.1f} %" if isinstance(ours, dict)
                     else number(ours))
        base_text = f"{number(base['img_per_s'])} img/s (nn.LocalResponseNorm)" if isinstance(base, dict) else number(base)
        lines.append(f"model step {mode:22s} | {ours_text:30s} | {base_text}")
    lines.append(f"loader img/s                      | GPU path {number(get('loader', 'gpu_path', 'img_per_s')):21s} | "
                 f"CPU path {number(get('loader', 'cpu_path', 'img_per_s'))} (PIL, "
                 f"{number(get('loader', 'cpu_path', 'workers'))} workers)")
    lines.append(f"loader img/s, squares cached      | GPU path {number(get('loader', 'gpu_path_cached', 'img_per_s')):21s} | "
                 f"GPU path decoding every pass {number(get('loader', 'gpu_path', 'img_per_s'))}")
    for name in ("train_eager", "train_eager_uncached", "train_compiled"):
        rate, ratio = get(name, "img_per_s"), get(name, "ratio_to_model_step")
        measured = f"{number(rate)} img/s" if rate is not None else number(get(name, "error") or get(name))
        lines.append(f"{name.replace('_', '() ', 1):33s} | {measured:30s} | "
                     f"{number(ratio, '{:.0%}')} of the model-only eager step")
    lines.append(f"projection CUDA vs CPU, largest   | {number(get('projection', 'largest_tf32_off'), '{:.2e}'):30s} | "
                 f"{number(get('projection', 'largest_pytorch_default_tf32'), '{:.2e}')} (PyTorch's default TF32)")
    levels = f"{number(get('decoding', 'max_grey_levels'), '{:.2f}')} grey levels at most"
    lines.append(f"decoding device vs CPU            | {levels:30s} | CPU-decoded {get('decoding', 'device_cpu_decoded')}, "
                 f"skipped {get('decoding', 'device_skipped')}")
    errors = [name for name, value in results.items() if isinstance(value, dict) and "error" in value]
    lines.append(f"sections with errors: {errors or 'none'}; total {time.perf_counter() - STARTED:.0f} s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers here as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no compile: proves the script runs (CPU)")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds; optional parts are skipped past it")
    args = parser.parse_args()
    smoke = args.smoke
    args.images = 40 if smoke else 3000
    args.width, args.height = (125, 94) if smoke else (500, 375)
    args.batch = 4 if smoke else 256
    args.warmup, args.steps = (1, 2) if smoke else (5, 30)
    args.byte_workers = 1 if smoke else min(8, max(1, (os.cpu_count() or 2) - 1))
    args.epochs, args.repeat = (3, 1) if smoke else (4, 10)  # ~117 steps per epoch
    args.projected_images = 2 if smoke else 4
    args.compared_images = 8 if smoke else 256
    args.mined_images = 32 if smoke else 512
    device = default_device()
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "torchvision": torchvision.__version__, "cpu_count": os.cpu_count(),
        "smoke": smoke, "images": args.images, "image_size": [args.width, args.height], "batch": args.batch,
    }
    print(f"gpu_check on {results['device']} (torch {torch.__version__}, {os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        root = Path(scratch) / "train"
        files: list[tuple[str, int]] = []
        odd: dict[str, str] = {}

        def data() -> dict[str, Any]:
            files.extend(make_jpegs(root, args.images, args.width, args.height))
            odd.update(make_odd_files(Path(scratch) / "odd"))
            return {"files": len(files), "bytes_per_file": sum(os.path.getsize(p) for p, _ in files) / len(files)}

        _section(results, "data", data)
        _section(results, "model_step", lambda: model_step(args, device, compiled=False))
        _section(results, "loader", lambda: loader(args, device, root, files))
        _section(results, "decoding", lambda: decoding(args, device, files, odd))
        _section(results, "projection", lambda: projections(args, device, files))
        _section(results, "analyses", lambda: analyses(args, device))
        _section(results, "train_eager", lambda: end_to_end(args, device, files, False, Path(scratch) / "eager"))
        _section(results, "train_eager_uncached",
                 lambda: end_to_end(args, device, files, False, Path(scratch) / "uncached", cache=False))
        # compiling takes most of the time: the end-to-end goal first, then the model-only steps
        for name, run in (("train_compiled", lambda: end_to_end(args, device, files, True, Path(scratch) / "compiled")),
                          ("model_step_compiled", lambda: model_step(args, device, compiled=True))):
            if smoke or time.perf_counter() - STARTED > args.budget - 90:
                results[name] = "skipped: smoke run (no compile)" if smoke else "skipped: time budget"
            else:
                _section(results, name, run)
    eager_step = (results.get("model_step") or {}).get("zfcore")
    for name in ("train_eager", "train_eager_uncached", "train_compiled"):
        if isinstance(results.get(name), dict) and "img_per_s" in results[name] and isinstance(eager_step, dict):
            results[name]["ratio_to_model_step"] = results[name]["img_per_s"] / eager_step["img_per_s"]
    results["total_seconds"] = round(time.perf_counter() - STARTED, 1)
    print("\n".join(_summary(results)), flush=True)
    if args.out:  # what produced it (code version, command line, device) first; the data are generated here
        record = {**provenance(data_sha256=None, device=results["device"]), **results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(record, indent=1, default=str))
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()

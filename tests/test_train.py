"""The trainer: resume is bitwise, DDP equals one process, bad checkpoints give one clear error."""

import hashlib
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from zfcore.checkpoints import CheckpointError, load_checkpoint
from zfcore.weights import load_reference
from zfcore.data.loader import TensorBatches
from zfcore.data.sources import TrainingData
from zfcore.profiles import TrainConfig
from zfcore.train import read_metrics, train

TINY = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=4, widths=(4, 8, 8, 8, 8), fc=16,
                   dropout=0.3, init="he", epochs=3, batch_size=8, lr=0.05, schedule="cosine", warmup_epochs=1.0)
TIMING = ("img_per_s", "epoch_seconds", "wall_seconds")


def synthetic_data(config: TrainConfig, images: int = 48, num_replicas: int = 1, rank: int = 0) -> TrainingData:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (images, 64, 64, 3), dtype=np.uint8)
    labels = np.arange(images) % config.num_classes
    return TrainingData(
        train=TensorBatches(pixels, labels, config.batch_size // num_replicas, train=True, seed=config.seed,
                            channels_last=True, num_replicas=num_replicas, rank=rank),
        val=TensorBatches(pixels[:16], labels[:16], 16, train=False),
        classes=[f"c{i}" for i in range(config.num_classes)], class_names=[f"class {i}" for i in range(config.num_classes)],
        sha256="synthetic", train_images=images,
    )


class Crash(RuntimeError):
    pass


def crash_at(epoch: int, step: int):
    def callback(current_epoch, current_step, loss):
        if (current_epoch, current_step) == (epoch, step):
            raise Crash(f"killed in epoch {epoch + 1} at step {step}")
    return callback


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_resume_after_a_crash_mid_epoch_is_bitwise_identical(tmp_path, precision):
    uninterrupted = train(TINY, tmp_path / "a", data=synthetic_data(TINY), precision=precision, progress=False)
    with pytest.raises(Crash):
        train(TINY, tmp_path / "b", data=synthetic_data(TINY), precision=precision, progress=False,
              callbacks=[crash_at(epoch=1, step=2)])
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1  # the crash lost epoch 2 only
    resumed = train(TINY, tmp_path / "b", data=synthetic_data(TINY), precision=precision, progress=False,
                    resume=tmp_path / "b" / "checkpoint.pt")
    final_a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    final_b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert final_a["model"].keys() == final_b["model"].keys()
    for key in final_a["model"]:
        assert torch.equal(final_a["model"][key], final_b["model"][key]), key
    strip = lambda rows: [{k: v for k, v in row.items() if k not in TIMING} for row in rows]  # noqa: E731
    assert strip(uninterrupted) == strip(resumed)
    assert len(read_metrics(tmp_path / "b" / "metrics.csv")) == TINY.epochs


def test_snapshots_at_scaled_fig4_epochs(tmp_path):
    config = TINY.replace(epochs=7)
    assert config.fig4_epochs() == (1, 2, 3, 4, 6)
    train(config.replace(epochs=2), tmp_path, data=synthetic_data(config), progress=False)
    saved = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert saved == [f"epoch_{e:03d}.pt" for e in config.replace(epochs=2).fig4_epochs()]
    snapshot = load_checkpoint(tmp_path / "snapshots" / saved[-1])
    assert all(v.dtype == torch.float16 for v in snapshot["features"].values())
    assert "conv1.weight" in snapshot["features"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, config: TrainConfig) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    try:
        train(config, out, data=synthetic_data(config, 32, world, rank), precision="fp32", progress=False)
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    config = TINY.replace(dropout=0.0, epochs=1, batch_size=8)  # 4 steps of 8 images
    train(config, tmp_path / "one", data=synthetic_data(config, 32), precision="fp32", progress=False)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "two"), config), nprocs=2, join=True)
    one = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    two = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    initial = load_reference_free_init(config)
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(one[key], initial[key]) for key in one)  # training did move the weights


def load_reference_free_init(config: TrainConfig) -> dict:
    from zfcore.checkpoints import build_model

    torch.manual_seed(config.seed)
    return build_model(config).state_dict()


def test_wrong_architecture_and_corrupt_checkpoints_fail_clearly(tmp_path):
    train(TINY.replace(epochs=1), tmp_path / "run", data=synthetic_data(TINY), progress=False)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    wider = TINY.replace(widths=(8, 8, 8, 8, 8))
    with pytest.raises(CheckpointError, match=r"another architecture: widths"):
        train(wider, tmp_path / "run", resume=checkpoint, data=synthetic_data(wider), progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        train(TINY, tmp_path / "run", data=synthetic_data(TINY), progress=False)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest  # nothing overwritten
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(CheckpointError, match="corrupt"):
        train(TINY, tmp_path / "other", resume=corrupt, data=synthetic_data(TINY), progress=False)
    for seed in range(1, 200):  # random bytes reach the unpickler's many failure modes (IndexError, ...)
        corrupt.write_bytes(np.random.default_rng(seed).bytes(2048))
        with pytest.raises(CheckpointError, match="corrupt"):
            load_checkpoint(corrupt)
    assert not (tmp_path / "other" / "checkpoint.pt").exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_reference(tmp_path / "missing.pt")
    not_ours = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    with pytest.raises(CheckpointError, match="not a zfbook checkpoint"):
        load_reference(not_ours)


def test_stop_after_then_resume_follows_the_planned_schedule(tmp_path):
    uninterrupted = train(TINY, tmp_path / "a", data=synthetic_data(TINY), progress=False)
    first = train(TINY, tmp_path / "b", data=synthetic_data(TINY), progress=False, stop_after=1)
    assert len(first) == 1 and load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1
    resumed = train(TINY, tmp_path / "b", data=synthetic_data(TINY), progress=False,
                    resume=tmp_path / "b" / "checkpoint.pt")
    assert [row["lr"] for row in resumed] == [row["lr"] for row in uninterrupted]  # no jump back up


def test_resume_with_another_total_is_refused_and_changes_nothing(tmp_path):
    train(TINY, tmp_path / "run", data=synthetic_data(TINY), progress=False, stop_after=1)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=r"epochs=5 but .* planned for 3 epochs"):
        train(TINY.replace(epochs=5), tmp_path / "run", resume=checkpoint, data=synthetic_data(TINY), progress=False)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == digest
    with pytest.raises(ValueError, match="stop_after=0"):
        train(TINY, tmp_path / "other", data=synthetic_data(TINY), progress=False, stop_after=0)


def test_paper_preprocessing_is_saved_with_the_weights(tmp_path):
    data = synthetic_data(TINY)
    mean_image = torch.full((64, 64, 3), 100.0)
    for batches in (data.train, data.val):
        batches.mean_image = mean_image
    data.mean_image = mean_image
    config = TINY.replace(epochs=1, preprocessing="pixel-mean", init="paper")
    train(config, tmp_path, data=data, progress=False)
    reference = load_reference(tmp_path / "checkpoint.pt")
    assert reference.preprocess.preprocessing == "pixel-mean"
    pixels = torch.full((1, 64, 64, 3), 110, dtype=torch.uint8)
    torch.testing.assert_close(reference.preprocess(pixels), torch.full((1, 3, 64, 64), 10.0))

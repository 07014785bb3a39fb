"""Bad checkpoints and bad runs: files that would run code, other kinds of file, runs that would be
overwritten or mixed, output folders that cannot be written, and a diverging loss. Each case gives one
clear error (one line from the CLI, exit code 2) and changes nothing on disk."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zfcore.train
import zfcore.training_step
from runs import TINY, run_copy, run_dir, synthetic_data, tree  # noqa: F401 (fixtures)
from zfcore.analysis.evolution import Evolution, load_snapshots
from zfcore.analysis.top9 import mine_top9
from zfcore.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from zfcore.data.loader import TensorBatches
from zfcore.models import zfnet
from zfcore.profiles import TrainConfig, get_profile
from zfcore.train import DivergedError, train
from zfcore.weights import REFERENCE_DIR, export_reference, load_reference



class RunsCode:
    """A pickle payload: unpickling it unsafely runs ``touch MARKER`` (what a malicious .pt file does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class NaNAt:
    """Training batches that turn into NaN at one (epoch, step): a diverging loss on demand."""

    def __init__(self, batches: TensorBatches, epoch: int, step: int) -> None:
        self.batches, self.bad, self.epoch = batches, (epoch, step), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for step, (images, labels) in enumerate(self.batches):
            yield (torch.full_like(images, float("nan")) if (self.epoch, step) == self.bad else images), labels


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zfcore", *args], capture_output=True, text=True)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, Path]:
    """A zfbook-looking checkpoint whose pickle would run ``touch marker``; returns (file, marker)."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "zfbook-checkpoint", "config": {}, "model": RunsCode(marker)}, path)
    return path, marker


# ------------------------------------------------------------------ 1. a checkpoint can never run code
def test_the_payload_is_live_when_unpickled_unsafely(payload):
    """The test's own check: the file really runs code when loaded the old way (so the tests below can fail)."""
    path, marker = payload
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("loader", [load_checkpoint, load_reference], ids=["load_checkpoint", "load_reference"])
def test_a_pickle_payload_is_refused_and_never_run(payload, loader):
    path, marker = payload
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} was refused: its pickle names posix\.system, "
                                              r"which could run code.*nothing was executed"):
        loader(path)
    assert not marker.exists()


def test_a_payload_given_to_the_cli_is_one_line_and_never_run(payload):
    path, marker = payload
    assert_one_line_error(cli("evaluate", "--checkpoint", str(path)), str(path), "could run code",
                          "nothing was executed")
    assert not marker.exists()


def test_a_payload_as_resume_is_refused_before_anything_is_written(payload, tmp_path):
    path, marker = payload
    with pytest.raises(CheckpointError, match="could run code"):
        train(TINY, tmp_path / "out", resume=path, data=synthetic_data(TINY), progress=False)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_payload_as_fig4_data_or_snapshot_is_refused(payload, tmp_path):
    path, marker = payload
    with pytest.raises(CheckpointError, match=rf"Fig\. 4 data {path} was refused.*could run code"):
        Evolution.load(path)
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    (snapshots / "epoch_001.pt").write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="epoch_001.pt was refused.*could run code"):
        load_snapshots(snapshots)
    assert not marker.exists()


def test_an_unknown_class_is_refused_by_name(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"format": "zfbook-checkpoint", "model": Path("x")}, path)
    with pytest.raises(CheckpointError, match=r"its pickle names pathlib\.\w*Path"):
        load_checkpoint(path)


def test_a_payload_in_the_top9_cache_is_mined_again_never_run(tmp_path):
    torch.manual_seed(0)
    model = zfnet(4, 64, widths=(4, 8, 8, 8, 8), fc=8, init="he").eval()
    pixels = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    first = mine_top9(model, pixels, layers=("conv1",), k=2, batch_size=6, cache_dir=tmp_path, progress=False)
    (cache_file,) = tmp_path.glob("*.pt")
    marker = tmp_path / "pwned"
    torch.save(RunsCode(marker), cache_file)
    with pytest.warns(UserWarning, match=rf"top-9 cache {cache_file} was refused: its pickle names posix\.system, "
                                         r"which could run code.*; mining again and replacing it"):
        again = mine_top9(model, pixels, layers=("conv1",), k=2, batch_size=6, cache_dir=tmp_path, progress=False)
    assert not marker.exists()
    assert torch.equal(again["conv1"][0].values, first["conv1"][0].values)
    cached = mine_top9(model, pixels, layers=("conv1",), k=2, batch_size=6, cache_dir=tmp_path, progress=False)
    assert torch.equal(cached["conv1"][1].projections, first["conv1"][1].projections)  # the replaced cache loads
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # a truncated cache: mined again too
    with pytest.warns(UserWarning, match=rf"top-9 cache {cache_file} is corrupt or not a PyTorch file .*; mining"):
        again = mine_top9(model, pixels, layers=("conv1",), k=2, batch_size=6, cache_dir=tmp_path, progress=False)
    assert torch.equal(again["conv1"][0].image_index, first["conv1"][0].image_index)


def test_the_committed_files_load_weights_only():
    reference = load_reference(REFERENCE_DIR / "zf64-tiny-imagenet.pt")
    assert reference.config.num_classes == 200
    fig4 = Evolution.load(REFERENCE_DIR / "fig4.pt")
    assert fig4.epochs[0] == 1 and "conv5" in fig4.projections


def test_a_run_s_checkpoint_and_snapshots_load_weights_only(run_dir):
    state = load_checkpoint(run_dir / "checkpoint.pt", kind="training")
    assert state["rng"]["numpy"][1].dtype == np.uint32 and isinstance(state["rng"]["python"], tuple)
    assert sorted(load_snapshots(run_dir / "snapshots")) == [1]


# ------------------------------------------------------------------ 3. bad checkpoints: one clear error
def test_a_snapshot_given_as_a_checkpoint(run_dir, tmp_path):
    snapshot = run_dir / "snapshots" / "epoch_001.pt"
    with pytest.raises(CheckpointError, match=rf"checkpoint {snapshot} is a Fig\. 4 snapshot \(conv weights only\), "
                                              r"not a network checkpoint: it lacks config, model; pass a run's"):
        load_reference(snapshot)
    assert_one_line_error(cli("evaluate", "--checkpoint", str(snapshot)), str(snapshot), "Fig. 4 snapshot")
    with pytest.raises(CheckpointError, match="is a Fig. 4 snapshot.*not a training checkpoint"):
        train(TINY, tmp_path / "out", resume=snapshot, data=synthetic_data(TINY), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def mismatched(run_dir: Path, tmp_path: Path) -> Path:
    """A checkpoint whose config says wider conv layers than its weights hold."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    state["config"]["widths"] = [6, 8, 8, 8, 8]
    path = tmp_path / "edited.pt"
    save_checkpoint({key: value for key, value in state.items() if key != "format"}, path)
    return path


def test_weights_that_do_not_fit_their_config(mismatched):
    with pytest.raises(CheckpointError, match=rf"checkpoint {mismatched}: its weights do not fit the network its "
                                              r"config describes \(size mismatch for features\.conv1\.weight: "
                                              r".*torch\.Size\(\[6, 3, 7, 7\]\); and 2 more\); the file is damaged"):
        load_reference(mismatched)
    assert_one_line_error(cli("evaluate", "--checkpoint", str(mismatched)), str(mismatched),
                          "weights do not fit", "size mismatch")


def test_resuming_weights_that_do_not_fit_their_config(mismatched, tmp_path):
    config = TINY.replace(widths=(6, 8, 8, 8, 8))
    with pytest.raises(CheckpointError, match="weights do not fit"):
        train(config, tmp_path / "out", resume=mismatched, data=synthetic_data(config), progress=False)
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_a_reference_weights_file_cannot_be_resumed(run_dir, tmp_path):
    weights = export_reference(run_dir / "checkpoint.pt", tmp_path / "weights.pt", metrics={})
    with pytest.raises(CheckpointError, match=rf"{weights} is a reference weights file \(no optimizer state\), not "
                                              r"a training checkpoint: it lacks optimizer, scheduler, rng, history"):
        train(TINY, tmp_path / "out", resume=weights, data=synthetic_data(TINY), progress=False)
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_among_the_snapshots(run_dir, tmp_path):
    (tmp_path / "epoch_001.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes())
    with pytest.raises(CheckpointError, match="epoch_001.pt is a training checkpoint, not a snapshot checkpoint: it "
                                              "lacks features; pass a run's snapshots/epoch_NNN.pt"):
        load_snapshots(tmp_path)


def test_a_checkpoint_given_as_fig4_data(run_dir):
    with pytest.raises(CheckpointError, match=r"Fig\. 4 data .*checkpoint\.pt holds \[.*'config'.*\], expected the "
                                              r"fields \['epochs', .*written by Evolution\.save"):
        Evolution.load(run_dir / "checkpoint.pt")


@pytest.mark.parametrize("make, match", [
    (lambda path: None, r"does not exist$"),
    (lambda path: path.mkdir(), r"does not exist \(it is a folder\)"),
    (lambda path: path.write_bytes(b""), "is corrupt or not a PyTorch file"),
], ids=["missing", "folder", "empty"])
def test_fig4_data_missing_folder_or_empty(tmp_path, make, match):
    path = tmp_path / "fig4.pt"
    make(path)
    with pytest.raises(CheckpointError, match=rf"Fig\. 4 data {path} {match}"):
        Evolution.load(path)


def test_a_truncated_checkpoint(run_dir, tmp_path):
    truncated = tmp_path / "truncated.pt"
    data = (run_dir / "checkpoint.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"checkpoint {truncated} is corrupt or not a PyTorch file \(.+\)$"):
        load_reference(truncated)
    assert_one_line_error(cli("evaluate", "--checkpoint", str(truncated)), str(truncated), "corrupt")


def test_an_unreadable_config(run_dir, tmp_path):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    state["config"] = {**state["config"], "colour": "blue", "widths": 5}
    path = tmp_path / "config.pt"
    save_checkpoint({key: value for key, value in state.items() if key != "format"}, path)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} holds an unreadable config \(.*int"):
        load_reference(path)


def test_an_unknown_kind_lists_the_valid_ones(run_dir):
    with pytest.raises(ValueError, match=r"kind='weights' is not valid; valid kinds: \('network', 'training', "
                                         r"'snapshot', None\)"):
        load_checkpoint(run_dir / "checkpoint.pt", kind="weights")


# ------------------------------------------------------------------ 2. no run can be overwritten
def test_resuming_one_run_into_another_s_folder_is_refused(run_copy, tmp_path):
    other = tmp_path / "other"
    train(TINY.replace(epochs=1, seed=1), other, data=synthetic_data(TINY), progress=False)
    before = tree(other), tree(run_copy)
    with pytest.raises(FileExistsError, match=rf"{other / 'checkpoint.pt'} belongs to another run than "
                                              rf"resume={run_copy / 'checkpoint.pt'}: resuming into out_dir={other} "
                                              r"would overwrite it.*nothing was overwritten"):
        train(TINY, other, resume=run_copy / "checkpoint.pt", data=synthetic_data(TINY), progress=False)
    assert (tree(other), tree(run_copy)) == before


def test_the_same_checkpoint_by_another_path_resumes(run_copy, monkeypatch):
    monkeypatch.chdir(run_copy.parent)
    (run_copy.parent / "link.pt").symlink_to(run_copy / "checkpoint.pt")
    history = train(TINY, Path("run"), resume=Path("link.pt"), data=synthetic_data(TINY), progress=False)
    assert [row["epoch"] for row in history] == [1, 2]


def test_the_cli_refuses_to_overwrite_another_run(tmp_path):
    ci = get_profile("ci").train.replace(epochs=1)
    train(ci, tmp_path / "ci", data=synthetic_data(ci, images=64), progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoint.pt").write_bytes(b"another run")
    before = tree(other), tree(tmp_path / "ci")
    result = cli("train", "--profile", "ci", "--out", str(other), "--resume", str(tmp_path / "ci" / "checkpoint.pt"))
    assert_one_line_error(result, f"belongs to another run than --resume {tmp_path / 'ci' / 'checkpoint.pt'}",
                          f"resuming into --out {other}")
    assert (tree(other), tree(tmp_path / "ci")) == before


# ------------------------------------------------------------------ 10. a resumed run keeps its recipe
@pytest.mark.parametrize("changes", [
    {"seed": 1}, {"batch_size": 16}, {"lr": 0.1}, {"momentum": 0.5}, {"weight_decay": 0.0},
    {"schedule": "plateau", "warmup_epochs": 0.0}, {"warmup_epochs": 0.0}, {"renorm_rms": 0.0},
    {"label_smoothing": 0.1}, {"dropout": 0.5}, {"init": "paper"}, {"preprocessing": "pixel-mean"},
    {"classes_limit": 4}, {"train_per_class": 10}, {"val_per_class": 4}, {"dataset": "imagenette"},
    {"plateau_patience": 5},
], ids=lambda changes: next(iter(changes)))
def test_resuming_with_another_recipe_is_refused(run_copy, changes):
    field, value = next(iter(changes.items()))
    before = tree(run_copy)
    with pytest.raises(ValueError, match=rf"resume={run_copy / 'checkpoint.pt'} was trained with another recipe "
                                         rf"\({field}: [^;]* in the run, {value!r} now[;)].*nothing was changed"):
        train(TINY.replace(**changes), run_copy, resume=run_copy / "checkpoint.pt", data=synthetic_data(TINY),
              progress=False)
    assert tree(run_copy) == before


def test_every_refused_difference_is_named_at_once(run_copy):
    with pytest.raises(ValueError, match=r"\(lr: 0\.05 in the run, 0\.1 now; seed: 0 in the run, 3 now\)"):
        train(TINY.replace(seed=3, lr=0.1), run_copy, resume=run_copy / "checkpoint.pt", data=synthetic_data(TINY),
              progress=False)


def test_resuming_on_other_data_is_refused_and_leaves_no_folder(run_copy, tmp_path):
    before = tree(run_copy)
    with pytest.raises(ValueError, match=rf"resume={run_copy / 'checkpoint.pt'} was trained on data with checksum "
                                         r"synthetic-0, but the data found now has synthetic-1.*nothing was changed"):
        train(TINY, tmp_path / "fork", resume=run_copy / "checkpoint.pt", data=synthetic_data(TINY, seed=1),
              progress=False)
    assert tree(run_copy) == before and not (tmp_path / "fork").exists()


def test_harmless_changes_continue_with_a_warning_naming_each(run_copy):
    changed = TINY.replace(workers=3, compile=True, deviations=(("what", "why"),))
    with pytest.warns(UserWarning, match=r"resuming .*checkpoint\.pt with changed settings, continued with the new "
                                         r"values \(workers: 0 in the run, 3 now; compile: False in the run, True "
                                         r"now; deviations: the recipe table's text\)"):
        history = train(changed, run_copy, resume=run_copy / "checkpoint.pt", data=synthetic_data(TINY),
                        progress=False, stop_after=1)  # the run is at epoch 1: nothing to train, nothing compiled
    assert len(history) == 1


def test_a_plateau_run_may_be_lengthened_with_a_warning(tmp_path):
    plateau = TINY.replace(schedule="plateau", warmup_epochs=0.0, epochs=1)
    train(plateau, tmp_path, data=synthetic_data(plateau), progress=False)
    with pytest.warns(UserWarning, match=r"epochs: 1 in the run, 2 now"):
        history = train(plateau.replace(epochs=2), tmp_path, resume=tmp_path / "checkpoint.pt",
                        data=synthetic_data(plateau), progress=False)
    assert [row["epoch"] for row in history] == [1, 2]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["epochs"] == 2


# ------------------------------------------------------------------ 3. the output folder, before any training
@pytest.fixture
def no_data(monkeypatch):
    """Make loading data fail loudly: the folder checks must come first."""
    def loading(*args, **kwargs):
        raise AssertionError("data was loaded before the output folder was checked")
    monkeypatch.setattr(zfcore.train, "training_data", loading)


def test_an_out_that_is_a_file(tmp_path, no_data):
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(ValueError, match=rf"out_dir={out} cannot hold a run: {out} is a file, not a folder\. Choose "
                                         r"another output folder.*nothing was written"):
        train(TINY, out)
    assert out.read_text() == "a file"


def test_an_out_inside_a_file(tmp_path, no_data):
    out = tmp_path / "file" / "out"
    out.parent.write_text("a file")
    with pytest.raises(ValueError, match=rf"out_dir={out} cannot hold a run: {out} cannot be created or written to "
                                         r"\(Not a directory\)\. Choose a writable output folder"):
        train(TINY, out)


def test_a_snapshots_path_that_is_a_file(tmp_path, no_data):
    (tmp_path / "snapshots").write_text("a file")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'snapshots'} is a file, not a folder"):
        train(TINY, tmp_path)
    assert tree(tmp_path) == {"snapshots": hashlib.sha256(b"a file").hexdigest()}


def test_a_bad_snapshots_path_is_found_before_resuming(run_copy):
    snapshots = run_copy / "snapshots"
    for path in snapshots.iterdir():
        path.unlink()
    snapshots.rmdir()
    snapshots.write_text("a file")
    before = tree(run_copy)
    with pytest.raises(ValueError, match=rf"{snapshots} is a file, not a folder"):
        train(TINY, run_copy, resume=run_copy / "checkpoint.pt", data=synthetic_data(TINY), progress=False)
    assert tree(run_copy) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write to read-only folders")
def test_a_read_only_out(tmp_path, no_data):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(ValueError, match=rf"out_dir={out} cannot hold a run: .* cannot be created or written to "
                                             r"\(Permission denied\)"):
            train(TINY, out)
    finally:
        out.chmod(0o700)


def test_the_cli_names_a_bad_out_in_one_line(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    assert_one_line_error(cli("train", "--profile", "ci", "--out", str(out)),
                          f"--out {out} cannot hold a run: {out} is a file")


# ------------------------------------------------------------------ 5. a diverging loss stops the run
def test_a_nan_loss_stops_the_run_naming_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path):
    after_epoch_1: dict[str, str] = {}

    def record(epoch, step, loss):  # the folder as the last good epoch left it (but for the lock of the live run)
        if (epoch, step) == (1, 0):
            after_epoch_1.update({path: digest for path, digest in tree(tmp_path).items() if path != "train.lock"})

    data = synthetic_data(TINY)
    data.train = NaNAt(data.train, epoch=1, step=2)
    with pytest.raises(DivergedError, match=rf"the loss is NaN or infinite in epoch 2 at step 3 of 6; the last good "
                                            rf"checkpoint {tmp_path / 'checkpoint.pt'} was kept untouched\. To go on, "
                                            r"lower the learning rate \(lr=0\.05\)"):
        train(TINY, tmp_path, data=data, progress=False, callbacks=[record])
    assert "checkpoint.pt" in after_epoch_1 and tree(tmp_path) == after_epoch_1  # no epoch-2 checkpoint or snapshot
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_weights_broken_by_an_epoch_s_last_step_are_never_saved(tmp_path, monkeypatch):
    """The last step's loss is finite but its update is not: the weights are checked before the save."""
    renormalize, steps = zfcore.training_step.renormalize_filters, []

    def breaking_the_last_update(model, rms):
        renormalize(model, rms)
        steps.append(1)
        if len(steps) == 12:  # epoch 2, step 6 of 6
            model.features.conv1.weight.data.fill_(float("inf"))
    monkeypatch.setattr(zfcore.training_step, "renormalize_filters", breaking_the_last_update)
    train(TINY, tmp_path, data=synthetic_data(TINY), progress=False, stop_after=1)
    before = tree(tmp_path)
    with pytest.raises(DivergedError, match=r"the weights are NaN or infinite after epoch 2 \(its last step, 6 of 6\); "
                                            r"the last good checkpoint .* was kept untouched"):
        train(TINY, tmp_path, resume=tmp_path / "checkpoint.pt", data=synthetic_data(TINY), progress=False)
    assert tree(tmp_path) == before


def test_a_huge_learning_rate_stops_the_first_epoch_and_saves_nothing(tmp_path):
    config = TINY.replace(lr=1e12, renorm_rms=0.0, warmup_epochs=0.0)
    with pytest.raises(DivergedError, match=r"in epoch 1 at step \d+ of 6; nothing was saved\. .*lr=1000000000000\.0"):
        train(config, tmp_path, data=synthetic_data(config), progress=False)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "metrics.csv").exists()


def test_a_diverged_run_is_one_line_in_the_cli(monkeypatch, capsys):
    from zfcore.__main__ import run

    def diverging(*args, **kwargs):
        raise DivergedError("training diverged: the loss is NaN or infinite in epoch 2 at step 3 of 6; "
                            "nothing was saved")
    monkeypatch.setattr(zfcore.train, "train", diverging)
    assert run(["train", "--profile", "ci"]) == 2
    assert capsys.readouterr().err == ("error: training diverged: the loss is NaN or infinite in epoch 2 at step 3 of "
                                       "6; nothing was saved\n")

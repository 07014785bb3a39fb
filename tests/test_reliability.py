"""Reliability, second round: no run lost to a concurrent start, no committed result overwritten by a default,
nothing damaged loaded as good.

1. Run folders and runners are locked (pid, host, start time): a live holder is refused in one line, a stale
   lock (dead process, garbage, a reused process id) is taken over with a warning. Real processes, started
   together.
2. ``export`` writes a new folder unless ``--replace-reference``; the set is swapped in whole.
4. Outputs are probed before any work: one line, exit code 2, nothing computed.
6. A full disk is one line naming the file and the space.
8. Checkpoints of older versions load with missing fields filled, or are refused in one line naming the file
   and the field; non-finite weights are refused.
9. A results file is validated on read.
10. Ctrl-C is one line saying where to resume; a corrupt checkpoint's message never advises unsafe loading.

Each bad input: the one-line error, and nothing on disk changed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

import zfcore.export
import zfcore.runner as runner
import zfcore.train
import zfcore.transfer_run
import zfcore.weights
from runs import TINY, run_copy, run_dir, synthetic_data, tree  # noqa: F401 (fixtures)
from zfcore import book, locks
from zfcore.__main__ import run as cli_run
from zfcore.checkpoints import CheckpointError, load_checkpoint, read_torch_file, save_checkpoint
from zfcore.data.loader import TensorBatches
from zfcore.evaluation import evaluate_checkpoint
from zfcore.experiments import get_experiment
from zfcore.export import export_run
from zfcore.profiles import TrainConfig, get_profile
from zfcore.runner import experiment_status, run_experiment
from zfcore.locks import LockedError, StaleLockWarning, lock, lock_holder
from zfcore.store import DiskFullError, OutputError, ensure_free_space, probe_output, write_folder_atomic
from zfcore.train import LOCK_FILE, TrainingInterrupted, train

ROOT = Path(__file__).resolve().parents[1]
CI = get_profile("ci").train
HOST = socket.gethostname()


# ------------------------------------------------------------------------------------------------ helpers
def copy_tree(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def one_line(capsys, code: int, *fragments: str, prefix: str = "error: ") -> str:
    """Assert a single stderr line starting with ``prefix`` holding each fragment (training's progress bars aside)."""
    err = "\n".join(line for line in capsys.readouterr().err.split("\n") if not re.match(r"^\r?epoch \d+/\d+: ", line))
    assert err.startswith(prefix) and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def one_line_code(capsys, argv: list[str], *fragments: str) -> str:
    assert cli_run(argv) == 2
    return one_line(capsys, 2, *fragments)


def interruptible() -> None:
    """In a child before it starts: SIGINT back to its default, so that Python turns it into KeyboardInterrupt even
    when the tests run in a background job (started with SIGINT ignored, which a child would inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def child(code: str) -> subprocess.Popen:
    """A Python process running ``code`` that prints ``ready`` once it holds what it takes."""
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=interruptible)


def wait_ready(process: subprocess.Popen, timeout: float = 120.0) -> None:
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise AssertionError(f"the child did not start: {line!r} {process.stderr.read()}")


def stop(process: subprocess.Popen, how: int = signal.SIGKILL) -> tuple[int, str, str]:
    process.send_signal(how)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    """A folder no file can be created in: a chmod-ed one, or (as root, who ignores modes) /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").write_text("x")
    except OSError:
        yield folder
        folder.chmod(0o700)
        return
    (folder / "probe").unlink()
    folder.chmod(0o700)
    try:
        (Path("/sys") / "zfbook-probe").write_text("x")
    except OSError:
        yield Path("/sys")
        return
    pytest.skip("no read-only folder: this user may write everywhere")


def edited(run_copy: Path, edit) -> Path:
    """``run_copy``'s checkpoint with ``edit(state)`` applied (saved in place); returns the checkpoint."""
    path = run_copy / "checkpoint.pt"
    state = load_checkpoint(path)
    edit(state)
    save_checkpoint({key: value for key, value in state.items() if key != "format"}, path)
    return path


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory) -> Path:
    """A finished run of the ``ci`` recipe (2 epochs, snapshots of both) on synthetic images, read only."""
    folder = tmp_path_factory.mktemp("ci") / "ci-run"
    train(CI, folder, data=synthetic_data(CI, images=64), progress=False)
    return folder


@pytest.fixture
def small_probe(monkeypatch):
    """Fig. 4 probed on 1 training image per class (200 images), not 50: seconds."""
    monkeypatch.setattr(zfcore.export, "FIG4_PROBE_PER_CLASS", 1)


@pytest.fixture
def reference_copy(tmp_path: Path, monkeypatch) -> Path:
    """A copy of data/reference that ``--replace-reference`` replaces instead of the committed folder."""
    copy = copy_tree(zfcore.weights.REFERENCE_DIR, tmp_path / "reference")
    monkeypatch.setattr(zfcore.weights, "REFERENCE_DIR", copy)
    monkeypatch.setattr(zfcore.export, "REFERENCE_DIR", copy)
    return copy


# ================================================================ 1. locks: run folders and runners
LOCKER = """
import sys, time
from zfcore.locks import lock
with lock(sys.argv[1] if len(sys.argv) > 1 else {path!r}, "the test's job"):
    print("ready", flush=True)
    time.sleep(120)
"""


def test_a_lock_held_by_a_live_process_is_refused_naming_it(tmp_path):
    path = tmp_path / "job.lock"
    holder = child(LOCKER.format(path=str(path)))
    try:
        wait_ready(holder)
        before = path.read_text()
        with pytest.raises(LockedError) as caught:
            with lock(path, "the job"):
                pytest.fail("two processes held one lock")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"the job is already being run by process {holder.pid} on host {HOST}, started ")
        assert f"(lock file {path})" in message and f"the lock is stale: remove {path} and run again" in message
        assert path.read_text() == before and lock_holder(path).pid == holder.pid
    finally:
        stop(holder)


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path):
    path = tmp_path / "job.lock"
    holder = child(LOCKER.format(path=str(path)))
    wait_ready(holder)
    stop(holder)  # SIGKILL: the lock file stays behind
    assert json.loads(path.read_text())["pid"] == holder.pid and lock_holder(path) is None
    with pytest.warns(StaleLockWarning, match=rf"taking over the stale lock {path} \(taken by process {holder.pid} "
                                              rf"on host {HOST}.*\): process {holder.pid} is no longer running"):
        with lock(path, "the job") as own:
            assert json.loads(path.read_text())["pid"] == os.getpid() == own.pid
            assert lock_holder(path) == own
    assert not path.exists()


@pytest.mark.parametrize("content, why", [
    ("0", r"it names no process \(process id 0\)"),
    ("-1", r"it names no process \(process id -1\)"),
    ("garbage", r"it names no process \(it holds 'garbage'\)"),
    ("", r"it names no process \(it holds ''\)"),
    ('{"pid": "123"}', r"it names no process"),
    ('{"pid": true}', r"it names no process"),
    ("999999999", r"process 999999999 is no longer running"),
], ids=["zero", "minus-one", "garbage", "empty", "pid-as-text", "pid-as-bool", "dead-pid"])
def test_a_lock_naming_no_live_process_is_stale(tmp_path, content, why):
    path = tmp_path / "job.lock"
    path.write_text(content)
    assert lock_holder(path) is None
    with pytest.warns(StaleLockWarning, match=rf"taking over the stale lock {path}.*: {why}"):
        with lock(path, "the job"):
            assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_lock_whose_process_id_now_belongs_to_a_younger_process_is_stale(tmp_path):
    """The pid of a live, unrelated process (this test's parent), recorded as if taken long before it started."""
    path = tmp_path / "job.lock"
    path.write_text(json.dumps({"pid": os.getppid(), "host": HOST, "started": 1000.0}))
    if locks._process_start(os.getppid()) is None:
        pytest.skip("process start times are not readable here (/proc)")
    with pytest.warns(StaleLockWarning, match=rf"process {os.getppid()} started after the lock was taken, so it is "
                                              r"another process that got the same id"):
        with lock(path, "the job"):
            pass


def test_an_old_style_lock_of_a_live_unrelated_process_is_refused_saying_how_to_remove_it(tmp_path):
    path = tmp_path / "runner.pid"
    path.write_text(str(os.getppid()))  # a plain process id, as older runners wrote: no start time to compare
    with pytest.raises(LockedError, match=rf"^the job is already being run by process {os.getppid()} on host {HOST}, "
                                          rf"started [\d-]+ [\d:]+ \(lock file {path}\): .*If no such process is "
                                          rf"running, the lock is stale: remove {path} and run again; nothing was run$"):
        with lock(path, "the job"):
            pass
    assert path.read_text() == str(os.getppid())


def test_a_lock_of_another_host_is_refused(tmp_path):
    path = tmp_path / "job.lock"
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": time.time(), "command": "python -m zfcore"}))
    before = path.read_text()
    with pytest.raises(LockedError, match=r"already being run by process 1 on host elsewhere, started .*, running "
                                          r"'python -m zfcore'"):
        with lock(path, "the job"):
            pass
    assert path.read_text() == before


TRAINER = """
import sys, time
import numpy as np
from zfcore.data.loader import TensorBatches
from zfcore.data.sources import TrainingData
from zfcore.profiles import TrainConfig
from zfcore.train import train
config = TrainConfig(dataset="tiny-imagenet", input_size=64, num_classes=4, widths=(4, 8, 8, 8, 8), fc=16,
                     dropout=0.3, init="he", preprocessing="mean-std", epochs=2, batch_size=8, lr=0.05,
                     schedule="cosine", warmup_epochs=0.5, workers=0)
pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 64, 3), dtype=np.uint8)
labels = np.arange(48) % 4
data = TrainingData(train=TensorBatches(pixels, labels, 8, train=True, seed=0), val=TensorBatches(pixels[:16],
                    labels[:16], 16, train=False), classes=list("abcd"), class_names=list("abcd"), sha256="s",
                    train_images=48)
def hold(epoch, step, loss):
    if (epoch, step) == (0, 0):
        print("ready", flush=True)
        time.sleep(120)
try:
    train(config, sys.argv[1], data=data, progress=False, callbacks=[hold])
except KeyboardInterrupt as error:
    print(error, flush=True)
    sys.exit(130)
"""


def test_two_trainings_into_one_folder_the_second_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", TRAINER, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        wait_ready(first)  # it holds the folder and is training its first step
        before = tree(out)
        assert LOCK_FILE in before
        started = time.perf_counter()
        with pytest.raises(LockedError, match=rf"^out_dir={out} is already being run by process {first.pid} on host "
                                              rf"{HOST}, started .*remove {out / LOCK_FILE} and run again"):
            train(TINY, out, data=synthetic_data(TINY), progress=False)
        assert time.perf_counter() - started < 5  # at once, not after waiting
        assert one_line_code(capsys, ["train", "--profile", "ci", "--out", str(out)],
                             f"error: --out {out} is already being run by process {first.pid}")
        assert tree(out) == before
    finally:
        code, stdout, _ = stop(first, signal.SIGINT)
    assert code == 130
    assert stdout.strip().splitlines()[-1] == (f"training was interrupted; no epoch had finished, so there is nothing "
                                               f"to resume: start it again (out_dir={out})")
    assert tree(out) == {}  # the lock is released and the empty folders it made are gone


def test_a_training_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": 999999999, "host": HOST, "started": time.time() - 60}))
    with pytest.warns(StaleLockWarning, match=rf"{out / LOCK_FILE}.*process 999999999 is no longer running"):
        history = train(TINY.replace(epochs=1), out, data=synthetic_data(TINY), progress=False)
    assert len(history) == 1 and not (out / LOCK_FILE).exists()


RUNNER = """
import sys, time
import zfcore.runner as runner
def hold(*args, **kwargs):
    print("ready", flush=True)
    time.sleep(120)
runner.train = hold
runner.run_experiment("ci", results_dir=sys.argv[1], runs_dir=sys.argv[2], progress=False)
"""


def test_a_second_runner_is_refused_and_status_names_the_live_one(tmp_path, monkeypatch):
    results, runs = tmp_path / "results", tmp_path / "runs"
    first = subprocess.Popen([sys.executable, "-c", RUNNER, str(results), str(runs)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        wait_ready(first)
        status = experiment_status("ci", results_dir=results, runs_dir=runs)
        assert status.runner == first.pid and f"(process {first.pid})" in str(status)
        before = tree(tmp_path)
        monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("trained beside another runner"))
        with pytest.raises(LockedError, match=rf"^experiment 'ci' is already being run by process {first.pid} on "
                                              rf"host {HOST}.*{runs / 'ci' / 'runner.pid'}"):
            run_experiment("ci", results_dir=results, runs_dir=runs, progress=False)
        assert tree(tmp_path) == before
    finally:
        stop(first)
    assert experiment_status("ci", results_dir=results, runs_dir=runs).runner is None  # a dead runner is no runner


# ================================================================ 2. export: a new folder unless --replace-reference
def test_the_default_export_writes_a_new_folder_and_leaves_data_reference_alone(ci_run, tmp_path, monkeypatch,
                                                                                small_probe, capsys):
    committed = tree(zfcore.weights.REFERENCE_DIR)
    monkeypatch.chdir(tmp_path)
    assert cli_run(["export", "--run", str(ci_run)]) == 0
    out = tmp_path / "runs" / "export-ci-run"
    assert json.loads(capsys.readouterr().out)["weights"] == str(Path("runs/export-ci-run/zf64-tiny-imagenet.pt"))
    assert sorted(path.name for path in out.iterdir()) == ["config.json", "fig4.pt", "metrics.csv", "metrics.json",
                                                           "zf64-tiny-imagenet.pt"]
    assert tree(zfcore.weights.REFERENCE_DIR) == committed
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["export-ci-run"]  # no staging left
    before = tree(out)  # a second export of the same run is refused: the first one's folder holds files
    assert one_line_code(capsys, ["export", "--run", str(ci_run)],
                         "error: --out runs/export-ci-run already holds files (config.json, fig4.pt, metrics.csv and "
                         "2 more): an export writes into a new folder")
    assert tree(out) == before


def test_an_export_into_data_reference_without_replace_reference_is_refused(ci_run, capsys, monkeypatch):
    monkeypatch.setattr(zfcore.export, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    committed = tree(zfcore.weights.REFERENCE_DIR)
    one_line_code(capsys, ["export", "--run", str(ci_run), "--out", str(zfcore.weights.REFERENCE_DIR)],
                  f"--out {zfcore.weights.REFERENCE_DIR} already holds files (the committed reference files)",
                  "pass --replace-reference", "nothing was written")
    assert tree(zfcore.weights.REFERENCE_DIR) == committed


def test_replace_reference_with_another_out_is_refused(ci_run, tmp_path, capsys):
    one_line_code(capsys, ["export", "--run", str(ci_run), "--replace-reference", "--out", str(tmp_path / "x")],
                  "--replace-reference replaces the committed files in", f"--out {tmp_path / 'x'} names another folder")
    assert not (tmp_path / "x").exists()


def test_replace_reference_swaps_the_set_in_whole_and_keeps_the_other_files(ci_run, reference_copy, small_probe,
                                                                             capsys):
    before = tree(reference_copy)
    assert cli_run(["export", "--run", str(ci_run), "--replace-reference"]) == 0
    after = tree(reference_copy)
    assert after["alexnet64-tiny-imagenet.pt"] == before["alexnet64-tiny-imagenet.pt"]  # not the export's: kept
    for name in ("zf64-tiny-imagenet.pt", "fig4.pt", "metrics.csv", "metrics.json", "config.json"):
        assert after[name] != before[name], name
    assert json.loads((reference_copy / "config.json").read_text())["widths"] == list(CI.widths)
    assert sorted(path.name for path in reference_copy.parent.iterdir()) == ["reference"]  # no staging, no backup


def test_replace_reference_with_the_alexnet_style_network_replaces_its_weights_file_alone(tmp_path, reference_copy,
                                                                                          capsys, monkeypatch):
    run = tmp_path / "alexnet-run"
    train(CI.replace(style="alexnet"), run, data=synthetic_data(CI, images=64), progress=False)
    before = tree(reference_copy)
    monkeypatch.setattr(zfcore.export, "load_snapshots", lambda folder: pytest.fail("the snapshots were read"))
    assert cli_run(["export", "--run", str(run), "--replace-reference"]) == 0
    after = tree(reference_copy)
    assert json.loads(capsys.readouterr().out)["weights"] == str(reference_copy / "alexnet64-tiny-imagenet.pt")
    assert after["alexnet64-tiny-imagenet.pt"] != before["alexnet64-tiny-imagenet.pt"]
    assert {name: digest for name, digest in after.items() if name != "alexnet64-tiny-imagenet.pt"} == \
        {name: digest for name, digest in before.items() if name != "alexnet64-tiny-imagenet.pt"}  # the book's kept


def test_a_failure_mid_export_leaves_the_old_set_bitwise_unchanged(ci_run, reference_copy, small_probe, monkeypatch):
    before = tree(reference_copy)
    written = []

    def failing(model, snapshots, probe):  # the weights, metrics and config are written by now
        written.extend(path.name for path in reference_copy.parent.glob(".reference.staging-*/*"))
        raise RuntimeError("interrupted by the test")
    monkeypatch.setattr(zfcore.export, "evolution", failing)
    with pytest.raises(RuntimeError, match="interrupted by the test"):
        export_run(ci_run, reference_copy, replace=True)
    assert "zf64-tiny-imagenet.pt" in written and "metrics.csv" in written
    assert tree(reference_copy) == before
    assert sorted(path.name for path in reference_copy.parent.iterdir()) == ["reference"]


def test_a_full_disk_mid_export_is_one_line_and_leaves_the_old_set(ci_run, reference_copy, small_probe,
                                                                   monkeypatch, capsys):
    before = tree(reference_copy)

    class Full:
        def save(self, path):
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(zfcore.export, "evolution", lambda *args: Full())
    one_line_code(capsys, ["export", "--run", str(ci_run), "--replace-reference"],
                  f"error: no space left on the device to write {reference_copy} (", " free): free some space",
                  "(the folder is as it was before the write)")
    assert tree(reference_copy) == before
    assert sorted(path.name for path in reference_copy.parent.iterdir()) == ["reference"]


@pytest.mark.parametrize("missing", ["snapshots", "metrics.csv", "checkpoint.pt"])
def test_a_run_lacking_a_file_is_refused_before_anything(ci_run, tmp_path, reference_copy, missing, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(zfcore.export, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    run = copy_tree(ci_run, tmp_path / "run")
    (shutil.rmtree if (run / missing).is_dir() else Path.unlink)(run / missing)
    before = tree(reference_copy)
    one_line_code(capsys, ["export", "--run", str(run), "--replace-reference"],
                  f"error: --run {run} cannot be exported: it has no {missing} (a finished run's folder holds "
                  f"checkpoint.pt, metrics.csv and snapshots/", "nothing was written")
    assert tree(reference_copy) == before


def test_a_folder_swap_that_fails_puts_the_old_folder_back(tmp_path, monkeypatch):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "a").write_text("old")
    real_rename = os.rename

    def rename(source, destination):
        if ".staging-" in str(source):
            raise OSError(errno.EIO, "I/O error")
        real_rename(source, destination)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="I/O error"):
        write_folder_atomic(folder, lambda staging: (staging / "a").write_text("new"))
    assert tree(folder) == {"a": hashlib.sha256(b"old").hexdigest()}
    assert [path.name for path in tmp_path.iterdir()] == ["set"]


# ================================================================ 4. outputs probed before any work
@pytest.fixture
def no_transfer_work(monkeypatch):
    """Loading a network or decoding Caltech-101 fails the test: the probes must come first."""
    def work(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")
    monkeypatch.setattr(zfcore.transfer_run, "caltech101_pixels", work)
    monkeypatch.setattr(zfcore.weights, "load_reference", work)
    monkeypatch.setattr(book, "trained", work)


def test_transfer_out_that_is_a_file(tmp_path, capsys, no_transfer_work):
    out = tmp_path / "out"
    out.write_text("a file")
    one_line_code(capsys, ["transfer", "--out", str(out)],
                  f"error: --out {out} cannot be written: {out} is a file, not a folder; choose another folder (it is "
                  f"created if missing); nothing was run")
    assert out.read_text() == "a file"


def test_transfer_out_inside_a_file(tmp_path, capsys, no_transfer_work):
    (tmp_path / "file").write_text("a file")
    out = tmp_path / "file" / "out"
    one_line_code(capsys, ["transfer", "--out", str(out)], f"{tmp_path / 'file'} is a file, not a folder")
    assert tree(tmp_path) == {"file": hashlib.sha256(b"a file").hexdigest()}


def test_transfer_out_read_only(read_only, capsys, no_transfer_work):
    before = sorted(os.listdir(read_only))
    one_line_code(capsys, ["transfer", "--out", str(read_only)],
                  f"error: --out {read_only} cannot be written: it is read-only or cannot be written to (")
    assert sorted(os.listdir(read_only)) == before


def test_transfer_journal_that_is_a_folder(tmp_path, capsys, no_transfer_work):
    (tmp_path / "journal").mkdir()
    one_line_code(capsys, ["transfer", "--out", str(tmp_path / "out"), "--journal", str(tmp_path / "journal")],
                  f"error: --journal {tmp_path / 'journal'} cannot be written: {tmp_path / 'journal'} is a folder, not "
                  f"a file; choose another file; nothing was run")
    assert tree(tmp_path) == {"journal": "dir"}


def test_transfer_journal_in_a_read_only_folder(tmp_path, read_only, capsys, no_transfer_work):
    journal = read_only / "journal.jsonl"
    one_line_code(capsys, ["transfer", "--out", str(tmp_path / "out"), "--journal", str(journal)],
                  f"error: --journal {journal} cannot be written:", "read-only or cannot be written to")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def no_experiment_work(monkeypatch):
    monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("trained before the outputs were checked"))
    monkeypatch.setattr(runner, "_read_results", lambda *args: pytest.fail("read before the outputs were checked"))


def test_experiment_results_that_is_a_file(tmp_path, capsys, no_experiment_work):
    (tmp_path / "results").write_text("a file")
    one_line_code(capsys, ["experiment", "ci", "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "r")],
                  f"error: --results {tmp_path / 'results'} cannot be written: {tmp_path / 'results'} is a file, not "
                  f"a folder")
    assert tree(tmp_path) == {"results": hashlib.sha256(b"a file").hexdigest()}


def test_experiment_results_read_only(tmp_path, read_only, capsys, no_experiment_work):
    one_line_code(capsys, ["experiment", "ci", "--results", str(read_only), "--runs", str(tmp_path / "r")],
                  f"error: --results {read_only} cannot be written: it is read-only")
    assert not (tmp_path / "r").exists()


def test_experiment_runs_that_is_a_file(tmp_path, capsys, no_experiment_work):
    (tmp_path / "runs").write_text("a file")
    one_line_code(capsys, ["experiment", "ci", "--results", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")],
                  f"error: --runs {tmp_path / 'runs'} cannot be written: {tmp_path / 'runs'} is a file, not a folder")
    assert tree(tmp_path) == {"runs": hashlib.sha256(b"a file").hexdigest()}


def test_experiment_runs_read_only(tmp_path, read_only, capsys, no_experiment_work):
    one_line_code(capsys, ["experiment", "ci", "--results", str(tmp_path / "res"), "--runs", str(read_only)],
                  f"error: --runs {read_only} cannot be written: it is read-only")
    assert not (tmp_path / "res").exists()


def test_experiment_results_file_that_is_a_folder(tmp_path, capsys, no_experiment_work):
    (tmp_path / "res" / "ci.json").mkdir(parents=True)
    one_line_code(capsys, ["experiment", "ci", "--results", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")],
                  f"error: results file {tmp_path / 'res' / 'ci.json'} cannot be written: "
                  f"{tmp_path / 'res' / 'ci.json'} is a folder, not a file")
    assert tree(tmp_path) == {"res": "dir", "res/ci.json": "dir"}


def test_export_out_that_is_a_file(ci_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(zfcore.export, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "out").write_text("a file")
    one_line_code(capsys, ["export", "--run", str(ci_run), "--out", str(tmp_path / "out")],
                  f"error: --out {tmp_path / 'out'} cannot be written: {tmp_path / 'out'} is a file, not a folder")
    assert (tmp_path / "out").read_text() == "a file"


def test_export_out_read_only(ci_run, read_only, capsys, monkeypatch):
    monkeypatch.setattr(zfcore.export, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    before = sorted(os.listdir(read_only))
    one_line_code(capsys, ["export", "--run", str(ci_run), "--out", str(read_only / "export")],
                  f"error: --out {read_only / 'export'} cannot be written: {read_only} is read-only")
    assert sorted(os.listdir(read_only)) == before


def test_probe_output_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match=r"kind='fifo' is not valid; valid kinds: \('folder', 'file'\)"):
        probe_output(tmp_path, kind="fifo")


# ================================================================ 6. a full disk is one line
def test_not_enough_free_space_is_one_line_naming_the_file_and_the_space(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1_500_000))
    cache = tmp_path / "cache" / "tiny-imagenet-200-train-64.npy"
    with pytest.raises(DiskFullError) as caught:
        ensure_free_space(cache, 983_040_128, "Tiny ImageNet train cache")
    assert str(caught.value) == (f"no space left on the device to write Tiny ImageNet train cache {cache} (it needs "
                                 f"983.0 MB, 1.5 MB free): free some space and run again (nothing was written)")
    assert caught.value.errno == errno.ENOSPC and tree(tmp_path) == {}
    ensure_free_space(cache, 1_000_000)  # enough: no error


def test_a_full_disk_while_training_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zfcore.train, "training_data", lambda config, **kwargs: synthetic_data(config, images=64))

    half = b"PK\x03\x04 half a snapshot"

    def full_disk(value, handle, *args, **kwargs):
        handle.write(half)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    one_line_code(capsys, ["train", "--profile", "ci", "--out", str(out)],
                  f"error: no space left on the device to write {out / 'snapshots' / 'epoch_001.pt'} ({len(half)} bytes "
                  f"were written when the disk filled, ", " free): free some space and run again (the file is as it was")
    assert not out.exists()  # no .partial file, no lock, and the folders of a run that saved nothing are gone


# ================================================================ 8. checkpoints of older versions, damaged ones
def refused_resume(run_copy: Path, edit, pattern: str) -> None:
    """Resuming ``run_copy`` with ``edit`` applied to its checkpoint fails with ``pattern``; nothing changes."""
    path = edited(run_copy, edit)
    before = tree(run_copy)
    with pytest.raises(CheckpointError) as caught:
        train(TINY, run_copy, resume=path, data=synthetic_data(TINY), progress=False)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"checkpoint {path} ")
    assert re.search(pattern, message), message
    assert tree(run_copy) == before


def put(key, value):
    return lambda state: state.__setitem__(key, value)


@pytest.mark.parametrize("epoch, why", [
    (5, r"its epoch is 5, outside 1\.\.2 \(the epochs its config plans\)"),
    (-1, r"its epoch is -1, outside 1\.\.2 \(the epochs its config plans\)"),
    (0, r"its epoch is 0, outside 1\.\.2 \(the epochs its config plans\)"),
    ("1", r"its epoch is '1' \(a str\), not a whole number"),
    (1.0, r"its epoch is 1\.0 \(a float\), not a whole number"),
    (None, r"its epoch is None \(a NoneType\), not a whole number"),
], ids=["beyond-the-plan", "negative", "zero", "text", "float", "none"])
def test_an_impossible_epoch_is_refused(run_copy, epoch, why):
    refused_resume(run_copy, put("epoch", epoch), rf"cannot be resumed: {why}; it was written by an older or another "
                                                  r"version, or damaged.*nothing was changed$")


@pytest.mark.parametrize("edit, why", [
    (put("history", []), r"its history is empty, but its epoch is 1"),
    (lambda state: state["history"].append(dict(state["history"][0])),
     r"its history has 2 rows, but its epoch is 1 \(one row per epoch\)"),
    (put("history", {"epoch": 1}), r"its history is a dict, not a list of per-epoch rows"),
    (put("history", ["a row"]), r"its history row 1 is a str, not a record"),
    (lambda state: state["history"][0].pop("val_top1"), r"its history row 1 lacks val_top1"),
    (lambda state: state["history"][0].update(train_loss="0.5"),
     r"its history row 1 field train_loss is '0\.5', not a finite number"),
    (lambda state: state["history"][0].update(val_loss=float("nan")),
     r"its history row 1 field val_loss is nan, not a finite number"),
], ids=["empty", "longer-than-epoch", "not-a-list", "row-not-a-record", "row-lacks-a-metric", "text-metric",
        "nan-metric"])
def test_a_bad_history_is_refused(run_copy, edit, why):
    refused_resume(run_copy, edit, rf"cannot be resumed: {why};")


def test_history_rows_without_wall_seconds_are_filled(run_copy):
    path = edited(run_copy, lambda state: state["history"][0].pop("wall_seconds"))
    epoch_seconds = load_checkpoint(path)["history"][0]["epoch_seconds"]
    with pytest.warns(UserWarning, match=rf"checkpoint {path}: history rows \[1\] have no wall_seconds \(written by "
                                         r"an older version\); filled in as the running sum of epoch_seconds"):
        history = train(TINY, run_copy, resume=path, data=synthetic_data(TINY), progress=False)
    assert history[0]["wall_seconds"] == epoch_seconds and history[1]["wall_seconds"] > epoch_seconds


@pytest.mark.parametrize("edit, why", [
    (lambda state: state["rng"].pop("python"), r"its rng lacks the state of the python generator\(s\)"),
    (put("rng", "seeded"), r"its rng is a str, not the generators' states"),
    (lambda state: state["rng"].update(python=("not", "a", "state")), r"its rng 'python' state is not a generator "
                                                                      r"state \("),
    (lambda state: state["rng"].update(torch=torch.zeros(3)), r"its rng 'torch' state is not a generator state \("),
    (lambda state: state["rng"].update(numpy=("MT19937", [1, 2])), r"its rng 'numpy' state is not a generator state"),
], ids=["no-python", "not-a-dict", "python-garbage", "torch-garbage", "numpy-garbage"])
def test_bad_rng_states_are_refused(run_copy, edit, why):
    refused_resume(run_copy, edit, rf"cannot be resumed: {why}")


def other_momentum(state):
    buffers = state["optimizer"]["state"]
    first = min(buffers)
    buffers[first]["momentum_buffer"] = torch.zeros(6, 3, 7, 7)


def fewer_parameters(state):
    state["optimizer"]["param_groups"][0]["params"] = state["optimizer"]["param_groups"][0]["params"][:-1]


@pytest.mark.parametrize("edit, why", [
    (other_momentum, r"its optimizer state is of another network: the momentum of features\.conv1\.weight is "
                     r"\(6, 3, 7, 7\), the weights' \(4, 3, 7, 7\)"),
    (fewer_parameters, r"its optimizer state is of another network \(parameter groups of \[\d+, \d+\] tensors; this "
                       r"network's: \[\d+, \d+\]\)"),
    (put("optimizer", "sgd"), r"its optimizer state is not an optimizer's state"),
], ids=["other-shapes", "other-sizes", "garbage"])
def test_optimizer_state_of_another_network_is_refused(run_copy, edit, why):
    refused_resume(run_copy, edit, rf"cannot be resumed: {why}")


@pytest.mark.parametrize("edit, why", [
    (put("scheduler", "cosine"), r"its scheduler state is a str, not a LambdaLR state"),
    (lambda state: state["scheduler"].pop("last_epoch"), r"its scheduler state is not a LambdaLR state \(it lacks "
                                                         r"last_epoch\)"),
    (lambda state: state["scheduler"].update(last_epoch="six"), r"its scheduler state last_epoch is 'six', not like "
                                                                r"\d+ \(a LambdaLR state\)"),
    (lambda state: state["scheduler"].update(base_lrs=[0.05]), r"its scheduler state base_lrs is \[0\.05\], not like"),
], ids=["not-a-dict", "no-last-epoch", "text-epoch", "one-group"])
def test_garbage_scheduler_state_is_refused(run_copy, edit, why):
    refused_resume(run_copy, edit, rf"cannot be resumed: {why}")


def nan_weight(state):
    state["model"]["features.conv2.weight"][0, 0, 0, 0] = float("nan")


def test_non_finite_weights_are_refused_on_resume(run_copy):
    refused_resume(run_copy, nan_weight, r"holds non-finite weights: features\.conv2\.weight has 1 NaN or infinite "
                                         r"value\(s\) of \d+; the run that wrote it diverged")


def test_non_finite_weights_are_refused_by_evaluate(run_copy, capsys, monkeypatch):
    path = edited(run_copy, nan_weight)
    monkeypatch.setattr(zfcore.evaluation, "eval_batches", lambda *a, **k: pytest.fail("images were read"))
    with pytest.raises(CheckpointError, match=rf"^checkpoint {path} holds non-finite weights: features\.conv2\.weight "
                                              r"has 1 NaN"):
        evaluate_checkpoint(path)
    one_line_code(capsys, ["evaluate", "--checkpoint", str(path)], f"error: checkpoint {path} holds non-finite",
                  "features.conv2.weight")


def test_a_corrupt_checkpoint_never_advises_loading_it_unsafely(tmp_path, capsys):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"\x80\x02garbage" * 10)
    with pytest.raises(CheckpointError) as caught:
        read_torch_file(path)
    message = str(caught.value)
    assert message == f"checkpoint {path} is corrupt or not a PyTorch file (Unsupported operand 103)"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    text = one_line_code(capsys, ["evaluate", "--checkpoint", str(path)], str(path), "corrupt")
    for advice in ("weights_only", "trusted", "can still be loaded"):
        assert advice not in text


def test_a_resumed_run_records_every_commit_it_ran_under(run_copy, monkeypatch):
    path = edited(run_copy, lambda state: (state.pop("code_versions"), state.update(code_version="0ld0ld+dirty")))
    monkeypatch.setattr(zfcore.train, "code_version", lambda: "n3wn3w")
    train(TINY, run_copy, resume=path, data=synthetic_data(TINY), progress=False)
    state = load_checkpoint(path)
    assert (state["code_versions"], state["code_version"]) == (["0ld0ld+dirty", "n3wn3w"], "n3wn3w")
    record = runner._record(TINY, state["history"], state)
    assert record["code_versions"] == ["0ld0ld+dirty", "n3wn3w"] and record["code_version"] == "n3wn3w"


# ================================================================ 9. results files validated on read
def results_with(tmp_path: Path, runs) -> Path:
    path = tmp_path / "results" / "ci.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"experiment": "ci", "version": 1, "runs": runs}))
    return path


def good_record(**changes):
    name, config = get_experiment("ci").runs[0]
    record = {"config": json.loads(json.dumps(asdict(config))), "epochs": 2, "wall_minutes": 1.0, "val_top1": 0.2}
    return {name: {**record, **changes}}


@pytest.mark.parametrize("runs, field, why", [
    (["fig3"], "runs", "is a list, not a mapping of run names to records"),
    ({"fig3": "done"}, "runs['fig3']", "is a str ('done'), not a record"),
    (good_record(epochs=None), "runs['fig3'].epochs", "is None, not a whole number"),
    (good_record(epochs="2"), "runs['fig3'].epochs", "is '2', not a whole number"),
    (good_record(epochs=0), "runs['fig3'].epochs", "is 0: a run with no finished epoch is not done"),
    (good_record(val_top1="0.2"), "runs['fig3'].val_top1", "is '0.2', not a finite number in [0, 1]"),
    (good_record(val_top1=None), "runs['fig3'].val_top1", "is None, not a finite number in [0, 1]"),
    (good_record(val_top1=21.5), "runs['fig3'].val_top1", "is 21.5, not a finite number in [0, 1]"),
    (good_record(wall_minutes=-3), "runs['fig3'].wall_minutes", "is -3, not a finite number >= 0"),
], ids=["runs-a-list", "record-a-string", "epochs-null", "epochs-text", "zero-epochs", "top1-text", "top1-null",
        "top1-percent", "negative-minutes"])
def test_a_bad_results_file_is_refused_naming_the_field(tmp_path, runs, field, why, monkeypatch):
    path = results_with(tmp_path, runs)
    before = path.read_text()
    expected = (f"{path}: {field} {why}; the file was edited or damaged: fix that field, or move the file away and run "
                f"again; nothing was run")
    with pytest.raises(ValueError) as caught:
        experiment_status("ci", results_dir=path.parent, runs_dir=tmp_path / "runs")
    assert str(caught.value) == expected
    monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("ran despite a refused file"))
    with pytest.raises(ValueError, match="the file was edited or damaged"):
        run_experiment("ci", results_dir=path.parent, runs_dir=tmp_path / "runs", progress=False)
    assert path.read_text() == before and not (tmp_path / "runs" / "ci" / "runner.pid").exists()


@pytest.mark.parametrize("missing", ["epochs", "val_top1", "wall_minutes"])
def test_a_record_lacking_a_field_is_refused(tmp_path, missing):
    record = good_record()
    del record["fig3"][missing]
    path = results_with(tmp_path, record)
    with pytest.raises(ValueError, match=rf"^{path}: runs\['fig3'\] lacks {missing}; the file was edited"):
        experiment_status("ci", results_dir=path.parent, runs_dir=tmp_path / "runs")


def test_a_bad_results_file_is_one_line_in_the_cli(tmp_path, capsys):
    path = results_with(tmp_path, good_record(val_top1=None))
    one_line_code(capsys, ["experiment", "ci", "--status", "--results", str(path.parent), "--runs", str(tmp_path)],
                  f"error: {path}: runs['fig3'].val_top1 is None")


# ================================================================ 10. Ctrl-C: one line, where to resume
def interrupt_at_second_evaluation(monkeypatch):
    """Ctrl-C at the end of epoch 2's training (its checkpoint not yet written: epoch 1's is the resume point)."""
    calls = []
    evaluate = zfcore.train.evaluate

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)
    monkeypatch.setattr(zfcore.train, "evaluate", interrupted)
    monkeypatch.setattr(zfcore.train, "training_data", lambda config, **kwargs: synthetic_data(config, images=64))


def test_ctrl_c_during_train_says_where_to_resume(tmp_path, monkeypatch, capsys):
    interrupt_at_second_evaluation(monkeypatch)
    out = tmp_path / "run"
    assert cli_run(["train", "--profile", "ci", "--out", str(out)]) == 130
    checkpoint = out / "checkpoint.pt"
    command = f"python -m zfcore train --profile ci --out {out} --resume {checkpoint}"
    one_line(capsys, 130, f"interrupted: training was interrupted; it can be resumed from {checkpoint}: {command}",
             prefix="interrupted: ")
    assert load_checkpoint(checkpoint)["epoch"] == 1 and not (out / LOCK_FILE).exists()
    monkeypatch.undo()
    monkeypatch.setattr(zfcore.train, "training_data", lambda config, **kwargs: synthetic_data(config, images=64))
    assert cli_run(shlex.split(command)[3:]) == 0  # the printed command goes on
    assert load_checkpoint(checkpoint)["epoch"] == 2


def test_ctrl_c_before_the_first_epoch_says_there_is_nothing_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(config, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(zfcore.train, "training_data", interrupted)
    out = tmp_path / "run"
    assert cli_run(["train", "--profile", "ci", "--out", str(out)]) == 130
    one_line(capsys, 130, "interrupted: training was interrupted before its first epoch ended, so there is nothing to "
                          f"resume; start it again with: python -m zfcore train --profile ci --out {out}",
             prefix="interrupted: ")
    assert not out.exists()


def test_ctrl_c_during_an_experiment_says_where_to_resume(tmp_path, monkeypatch, capsys):
    interrupt_at_second_evaluation(monkeypatch)
    args = ["experiment", "ci", "--results", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]
    assert cli_run(args) == 130
    checkpoint = tmp_path / "runs" / "ci" / "fig3" / "checkpoint.pt"
    one_line(capsys, 130, f"interrupted: experiment 'ci' was interrupted; the unfinished run's last finished epoch is "
                          f"in {checkpoint}. Resume it with: python -m zfcore {' '.join(args)} (recorded runs are "
                          f"skipped, the unfinished one resumes)", prefix="interrupted: ")
    assert not (tmp_path / "runs" / "ci" / "runner.pid").exists() and not (tmp_path / "res" / "ci.json").exists()


def test_ctrl_c_in_a_real_training_process_is_one_line_exit_130(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "zfcore", "train", "--profile", "ci", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while not (out / LOCK_FILE).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    code, _, err = stop(process, signal.SIGINT)
    assert code == 130, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("interrupted: training was interrupted"), err
    assert not (out / LOCK_FILE).exists()

"""Experiments: the `remove` field, the ablation definitions, and the runner on the `ci` miniature in tmp dirs."""

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

import zfcore.experiments as experiments
import zfcore.provenance
import zfcore.runner as runner
from zfcore import models
from zfcore.checkpoints import (CheckpointError, build_model, checkpoint_state, config_from_dict, load_checkpoint,
                                save_checkpoint)
from zfcore.experiments import get_experiment, parameter_count, parameter_matched, widen
from zfcore.runner import experiment_status, run_experiment
from zfcore.store import unpack_flags
from zfcore.profiles import REMOVABLE, get_profile
from zfcore.train import train

CI = get_profile("ci").train


def places(tmp_path):
    return {"results_dir": tmp_path / "results", "runs_dir": tmp_path / "runs"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "zfcore", *args], capture_output=True, text=True)


# -- the `remove` field --------------------------------------------------------------------------------------------


def test_remove_is_a_checked_architecture_field(tmp_path) -> None:
    assert REMOVABLE == models.REMOVABLE_LAYERS
    assert build_model(CI.replace(remove=("conv3", "fc7"))).layer_names == ("conv1", "conv2", "conv4", "conv5",
                                                                             "fc6", "fc8")
    for bad in (("fc7", "fc6"), ("conv3", "conv3"), ("conv1",), ["fc7"], "fc7"):
        with pytest.raises(ValueError, match=r"remove=.* is not valid.*'conv3', 'conv4', 'fc6', 'fc7'"):
            CI.replace(remove=bad)
    old = asdict(CI)
    del old["remove"]  # a checkpoint written before the field existed
    assert config_from_dict(old) == CI
    save_checkpoint(checkpoint_state(CI, model=build_model(CI).state_dict()), tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"remove: checkpoint \(\) vs expected \('fc7',\)"):
        load_checkpoint(tmp_path / "checkpoint.pt", expect=CI.replace(remove=("fc7",)))


# -- definitions ---------------------------------------------------------------------------------------------------


def test_parameter_matched_widens_every_kept_layer_to_the_nearest_count() -> None:
    shallow = CI.replace(remove=("conv3", "conv4"))
    target = parameter_count(CI)
    matched = parameter_matched(shallow, target)
    assert matched.remove == shallow.remove and matched.fc > shallow.fc
    assert all(new > old for new, old, name in zip(matched.widths, CI.widths, models.CONV_LAYERS)
               if name not in shallow.remove)
    error = abs(parameter_count(matched) - target)
    assert error < 0.01 * target
    factor = matched.fc / shallow.fc
    for other in (factor * 0.97, factor * 1.03):  # a neighbouring width is farther from the target
        assert abs(parameter_count(widen(shallow, other)) - target) >= error
    with pytest.raises(ValueError, match="parameters=10 is fewer than"):
        parameter_matched(shallow, 10)


def test_ablations_share_one_budget_and_cover_table3() -> None:
    experiment = get_experiment("ablations")
    runs = dict(experiment.runs)
    assert {"fig3-seed0", "fig3-seed1", "fig3-seed2", "no-conv3-conv4", "no-fc7", "no-fc6-fc7",
            "no-conv3-conv4-fc6-fc7", "fc-512", "fc-2048", "conv3-5-wide", "no-conv3-conv4-matched"} <= set(runs)
    base = runs["fig3-seed0"]
    architecture = ("widths", "fc", "remove", "seed")
    for name, config in runs.items():  # only the architecture (and the seed) differs from run to run
        assert config.replace(**{field: getattr(base, field) for field in architecture}) == base, name
    assert sorted(config.seed for name, config in runs.items() if name.startswith("fig3")) == [0, 1, 2]
    assert runs["conv3-5-wide"].widths[2:] == (512, 1024, 512)
    assert (runs["fc-512"].fc, runs["fc-2048"].fc) == (base.fc // 2, base.fc * 2)
    assert runs["no-conv3-conv4-fc6-fc7"].remove == ("conv3", "conv4", "fc6", "fc7")
    matched = runs["no-conv3-conv4-matched"]
    assert matched.remove == ("conv3", "conv4")
    assert abs(parameter_count(matched) / parameter_count(base) - 1) < 0.01


def test_unknown_experiment_lists_the_valid_ones(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"experiment='table9' is not valid; valid experiments: \('ablations', 'verdict-runs', 'ci'\)"):
        run_experiment("table9", **places(tmp_path))
    result = cli("experiment", "table9", "--status")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: experiment='table9' is not valid")


# -- the runner ----------------------------------------------------------------------------------------------------


def test_runner_resumes_records_each_run_at_once_and_skips_finished_ones(tmp_path, monkeypatch) -> None:
    where = places(tmp_path)
    experiment = get_experiment("ci")
    (first, first_config), (second, _) = experiment.runs
    partial = train(first_config, where["runs_dir"] / "ci" / first, stop_after=1, progress=False)  # interrupted
    status = experiment_status("ci", **where)
    assert [(run.state, run.epochs_done) for run in status.runs] == [("interrupted", 1), ("left", 0)]
    assert "0 done, 0 running, 1 interrupted, 1 left" in str(status) and "unknown until a run has finished" in str(status)

    recorded_before = []

    def watched_train(config, out_dir, **kwargs):
        results = where["results_dir"] / "ci.json"
        recorded_before.append(list(json.loads(results.read_text())["runs"]) if results.exists() else [])
        return train(config, out_dir, **kwargs)

    monkeypatch.setattr(runner, "train", watched_train)
    results = run_experiment("ci", progress=False, **where)
    assert recorded_before == [[], [first]]  # the first run was recorded before the second started
    saved = json.loads((where["results_dir"] / "ci.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert (saved["experiment"], saved["version"], list(saved["runs"])) == ("ci", 1, [first, second])
    record = saved["runs"][first]
    assert record["history"][0] == json.loads(json.dumps(partial[0]))  # resumed: epoch 1 was not trained again
    assert record["config"] == json.loads(json.dumps(asdict(first_config)))
    assert record["epochs"] == 2 and record["val_top1"] == record["history"][-1]["val_top1"]
    assert record["parameters"] == sum(p.numel() for p in build_model(first_config).parameters())
    for key in ("code_version", "command", "device", "dataset_sha256", "train_top1", "val_top5", "wall_minutes", "finished"):
        assert key in record
    assert saved["runs"][second]["parameters"] < record["parameters"]

    def no_training(*args, **kwargs):
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr(runner, "train", no_training)
    assert run_experiment("ci", progress=False, **where)["runs"] == saved["runs"]
    status = experiment_status("ci", **where)
    assert status.count("done") == 2 and "time left: none" in str(status)
    assert "val top-1" in str(status)


def test_the_time_left_follows_the_median_epoch_so_a_paused_run_does_not_inflate_it(tmp_path) -> None:
    where = places(tmp_path)
    experiment = get_experiment("ci")
    (name, config), (_, other) = experiment.runs
    history = [{"epoch": 1, "epoch_seconds": 60.0}, {"epoch": 2, "epoch_seconds": 60.0}]
    record = {"config": asdict(config), "epochs": 2, "val_top1": 0.1, "wall_minutes": 122.0,  # stopped 2 h between
              "history": history}
    where["results_dir"].mkdir()
    (where["results_dir"] / "ci.json").write_text(json.dumps(
        {"experiment": "ci", "version": experiment.version, "runs": {name: record}}))
    status = experiment_status("ci", **where)
    assert status.minutes_left == pytest.approx(1.0 * other.epochs)  # 1 min an epoch, not 122 / 2
    assert "from the finished runs' median time per epoch" in str(status)
    del record["history"]  # no per-epoch times: the run's mean epoch
    (where["results_dir"] / "ci.json").write_text(json.dumps(
        {"experiment": "ci", "version": experiment.version, "runs": {name: record}}))
    assert experiment_status("ci", **where).minutes_left == pytest.approx(122.0 / 2 * other.epochs)


def test_status_names_the_live_runner_and_a_second_runner_is_refused(tmp_path, monkeypatch) -> None:
    where = places(tmp_path)
    folder = where["runs_dir"] / "ci"
    folder.mkdir(parents=True)
    (folder / "runner.pid").write_text(str(os.getppid()))  # a live process that is not this one
    status = experiment_status("ci", **where)
    assert [run.state for run in status.runs] == ["running", "left"]
    assert f"epoch 0/2 done (process {os.getppid()})" in str(status)
    monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("trained beside another runner"))
    with pytest.raises(ValueError, match=f"already being run by process {os.getppid()}"):
        run_experiment("ci", progress=False, **where)
    (folder / "runner.current").write_text("no-conv3-conv4")  # a runner given --only names its run
    assert [run.state for run in experiment_status("ci", **where).runs] == ["left", "running"]
    (folder / "runner.pid").write_text("999999999")  # a dead runner: taken over, and what it named is ignored
    assert [run.state for run in experiment_status("ci", **where).runs] == ["left", "left"]


def test_results_of_another_version_or_recipe_are_refused(tmp_path, monkeypatch) -> None:
    where = places(tmp_path)
    results = where["results_dir"] / "ci.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"experiment": "ci", "version": 7, "runs": {}}))
    monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("ran despite a refused file"))
    with pytest.raises(ValueError, match=r"results of version 7 of experiment 'ci', but 'ci' is now version 1"):
        run_experiment("ci", progress=False, **where)
    result = cli("experiment", "ci", "--status", "--results", str(where["results_dir"]), "--runs", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "version 7" in result.stderr
    name, config = get_experiment("ci").runs[0]
    changed = json.loads(json.dumps(asdict(config.replace(lr=0.5))))
    results.write_text(json.dumps({"experiment": "ci", "version": 1, "runs": {name: {"config": changed}}}))
    with pytest.raises(ValueError, match=r"records runs \['fig3'\] that version 1 of 'ci' no longer defines"):
        experiment_status("ci", **where)
    before = results.read_text()
    with pytest.raises(ValueError):
        run_experiment("ci", progress=False, **where)
    assert results.read_text() == before


# -- verdict-runs: the 28-epoch runs, their final evaluation, reference rows, kept weights, provenance --------------


def test_verdict_runs_change_one_thing_each_from_the_reference_recipe() -> None:
    experiment = get_experiment("verdict-runs")
    book, alexnet = get_profile("book").train, get_profile("book-alexnet").train
    expected = {
        "no-label-smoothing": ["label_smoothing"], "book-seed1": ["seed"], "book-seed2": ["seed"],
        "no-fc6-fc7": ["remove"], "no-conv3-conv4": ["remove"], "no-conv3-conv4-matched": ["widths", "fc", "remove"],
        "no-dropout": ["dropout"], "alexnet-seed1": ["seed"], "no-conv3-conv4-fc6-fc7": ["remove"],
        "alexnet-seed2": ["seed"], "no-renorm": ["renorm_rms"], "paper-inputs-renorm": ["init", "preprocessing"],
        "paper-inputs-no-renorm": ["init", "preprocessing", "renorm_rms"], "random-labels": ["random_labels"],
    }
    # the order, required runs first, except that the two runs that complete a verdict (the 4-layer cut
    # for C8, the third AlexNet-style seed for C5) lead the optional ones
    assert [name for name, _ in experiment.runs] == list(expected)
    for name, config in experiment.runs:
        base = alexnet if name.startswith("alexnet") else book
        assert sorted(base.recipe_differences(config)) == sorted(expected[name]), name
        assert (config.epochs, config.num_classes, config.classes_limit, config.train_per_class) == (28, 200, 0, 0)
    runs = dict(experiment.runs)
    assert abs(parameter_count(runs["no-conv3-conv4-matched"]) - parameter_count(book)) < 0.01 * parameter_count(book)
    assert runs["paper-inputs-no-renorm"].renorm_rms == 0 and runs["paper-inputs-renorm"].renorm_rms == book.renorm_rms
    assert runs["no-renorm"].renorm_rms == 0
    assert experiment.references == (("book-seed0", "ZF64_TINY_IMAGENET"), ("alexnet-seed0", "ALEXNET64_TINY_IMAGENET"))
    assert experiment.final_evaluation and experiment.optional == tuple(expected)[8:]
    assert experiment.keep_weights == ("no-label-smoothing", "book-seed1", "alexnet-seed1", "no-renorm",
                                       "paper-inputs-renorm", "paper-inputs-no-renorm", "random-labels")
    with pytest.raises(ValueError, match=r"keep_weights/optional=\['nope'\] are not valid"):
        experiments.Experiment("x", 1, "", "", experiment.runs[:1], keep_weights=("nope",))
    with pytest.raises(ValueError, match=r"references=\['NOPE'\] are not valid"):
        experiments.Experiment("x", 1, "", "", experiment.runs[:1], references=(("a", "NOPE"),))


def test_random_labels_are_one_fixed_class_balanced_permutation_of_the_training_labels_only() -> None:
    import numpy as np

    from zfcore.data.sources import eval_batches, training_data

    shuffled = CI.replace(random_labels=True)
    plain, random = training_data(CI), training_data(shuffled)
    true, permuted = plain.train.labels, random.train.labels
    assert not torch_equal(true, permuted) and (true == permuted).float().mean() < 0.3
    assert torch_equal(true.bincount(), permuted.bincount())  # class sizes kept
    assert torch_equal(training_data(shuffled).train.labels, permuted)  # one fixed permutation
    assert torch_equal(plain.val.labels, random.val.labels) and plain.sha256 != random.sha256
    evaluated = np.concatenate([labels.numpy() for _, labels in eval_batches(shuffled, 64, split="train")])
    assert (evaluated == permuted.numpy()).all()  # training accuracy is measured on the labels it trained on
    with pytest.raises(ValueError, match=r"random_labels=True is not available for dataset='imagenette'"):
        get_profile("imagenette").train.replace(random_labels=True)
    with pytest.raises(ValueError, match=r"split='test' is not valid; valid splits: \('val', 'train'\)"):
        eval_batches(CI, 8, split="test")


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_runner_records_references_final_evaluation_device_kept_weights_and_commits(tmp_path, monkeypatch) -> None:
    from zfcore.weights import ReferenceWeights, load_reference

    where = places(tmp_path)
    where["results_dir"].mkdir()
    git = lambda *args: subprocess.run(["git", *args], cwd=where["results_dir"], capture_output=True, text=True,
                                       check=True).stdout
    git("init", "--quiet")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "test")
    ci = get_experiment("ci")
    run, config = ci.runs[0]
    monkeypatch.setitem(experiments._DEFINITIONS, "final", lambda: experiments.Experiment(
        "final", 1, "a test", "ci", ci.runs[:1], references=(("book-seed0", "ZF64_TINY_IMAGENET"),),
        final_evaluation=True, keep_weights=(run,)))
    real_evaluation = runner.evaluate_checkpoint
    reference_path = ReferenceWeights.DEFAULT.value.path()

    def evaluation(checkpoint, **kwargs):  # the reference's 90,000 images would take minutes here
        if checkpoint == reference_path and kwargs.get("per_image"):
            return {"single": {"correct": torch.tensor([True, False, True])},
                    "ten_crop": {"correct": torch.tensor([True, True, False])}}
        if checkpoint == reference_path:
            assert kwargs["train_accuracy"]
            return {"train": {"top1": 0.61, "loss": 1.7}}
        return real_evaluation(checkpoint, **kwargs)

    monkeypatch.setattr(runner, "evaluate_checkpoint", evaluation)
    results = run_experiment("final", progress=False, commit=True, **where)
    assert list(results["runs"]) == ["book-seed0", run]
    reference = results["runs"]["book-seed0"]
    assert (reference["val_top1"], reference["val_top1_10crop"], reference["train_top1_eval"]) == (0.4093, 0.43, 0.61)
    assert reference["device"] == ReferenceWeights.DEFAULT.value.meta.hardware and reference["epochs"] == 28
    assert unpack_flags(reference["val_correct"], 3).tolist() == [True, False, True]
    assert unpack_flags(reference["val_correct_10crop"], 3).tolist() == [True, True, False]
    assert reference["val_correct_of"] == "its published bf16 weights"
    record = results["runs"][run]
    for key in ("val_top1_10crop", "val_top5_10crop", "train_top1_eval"):
        assert 0 <= record[key] <= 1, key
    assert record["val_top5_10crop"] >= record["val_top1_10crop"]
    correct = unpack_flags(record["val_correct"], record["val_images"])  # the run's own images, one by one
    assert correct.mean() == pytest.approx(record["val_top1"], abs=1e-9)
    assert unpack_flags(record["val_correct_10crop"], record["val_images"]).mean() == pytest.approx(
        record["val_top1_10crop"], abs=1e-9)
    assert record["device"].startswith("cpu: ") and "threads" in record["device"]
    assert record["dataset_sha256"] == load_checkpoint(where["runs_dir"] / "final" / run / "checkpoint.pt")["dataset_sha256"]
    kept = where["results_dir"] / "final" / f"{run}.pt"
    assert record["weights"]["file"] == f"final/{run}.pt"
    assert record["weights"]["sha256"] == runner.sha256(kept)
    loaded = load_reference(kept)
    assert loaded.meta["metrics"]["val_top1_10crop"] == record["val_top1_10crop"]
    assert loaded.meta["weights_dtype"] == "torch.bfloat16"
    assert (where["runs_dir"] / "final" / run / "weights.pt").is_file()  # every run keeps its probe-ready weights
    log = git("log", "--format=%s", "--name-only")
    assert f"final: {run} recorded (val top-1" in log and "final: book-seed0 recorded" in log
    assert f"final/{run}.pt" in log and "final: book-seed0's per-image correctness recorded" in log
    assert git("status", "--porcelain") == ""
    text = str(experiment_status("final", **where))
    assert "published reference, not trained again" in text and "cpu: " in text and "2 done" in text


def test_results_go_into_the_repository_only_from_a_committed_tree(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(zfcore.provenance, "REPOSITORY_ROOT", tmp_path)
    monkeypatch.setattr(runner, "code_version", lambda: "0123abc+dirty")
    where = places(tmp_path)
    monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("trained from a dirty tree"))
    with pytest.raises(ValueError, match=r"zfcore has uncommitted changes, and .*ci.json is tracked.*--allow-dirty"):
        run_experiment("ci", progress=False, **where)
    assert not (where["results_dir"] / "ci.json").exists()

    class Trained(Exception):
        pass

    def trained(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(runner, "train", trained)
    with pytest.raises(Trained):  # allowed, it gets as far as training
        run_experiment("ci", progress=False, allow_dirty=True, **where)


def test_recorded_runs_whose_recipe_prose_changed_are_still_the_same_runs(tmp_path) -> None:
    where = places(tmp_path)
    name, config = get_experiment("ci").runs[0]
    recorded = json.loads(json.dumps(asdict(config.replace(deviations=(("other", "prose"),), workers=3))))
    del recorded["random_labels"]  # written before the field existed
    (where["results_dir"]).mkdir()
    (where["results_dir"] / "ci.json").write_text(json.dumps({"experiment": "ci", "version": 1, "runs": {name: {
        "config": recorded, "epochs": 2, "wall_minutes": 1.0, "val_top1": 0.2}}}))
    assert experiment_status("ci", **where).count("done") == 1


def test_experiment_definitions_load_no_trainer() -> None:
    code = "import sys, zfcore.analysis.ablations, zfcore.experiments; print('zfcore.train' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- another machine's runs: --only, then --merge -----------------------------------------------------------------


def test_another_machine_trains_chosen_runs_and_its_records_and_weights_are_merged(tmp_path, monkeypatch) -> None:
    ci = get_experiment("ci")
    (first, _), (second, _) = ci.runs
    monkeypatch.setitem(experiments._DEFINITIONS, "kept", lambda: experiments.Experiment(
        "kept", 1, "a test", "ci", ci.runs, keep_weights=(second,)))
    here, there = places(tmp_path / "here"), places(tmp_path / "there")
    assert list(run_experiment("kept", progress=False, only=[first], **here)["runs"]) == [first]
    named = []

    def watched_train(config, out_dir, **kwargs):
        named.append([run.name for run in experiment_status("kept", **there).runs if run.state == "running"])
        return train(config, out_dir, **kwargs)

    monkeypatch.setattr(runner, "train", watched_train)
    assert list(run_experiment("kept", progress=False, only=(second,), **there)["runs"]) == [second]
    assert named == [[second]]  # --status names the run a runner given --only trains, not the first one left
    ours, theirs = here["results_dir"] / "kept.json", there["results_dir"] / "kept.json"
    kept = there["results_dir"] / "kept" / f"{second}.pt"
    assert kept.is_file() and not (here["results_dir"] / "kept").exists()

    broken = tmp_path / "broken"  # the results without the weights beside them: refused, nothing written
    broken.mkdir()
    (broken / "kept.json").write_text(theirs.read_text())
    before = ours.read_text()
    with pytest.raises(ValueError, match=rf"kept/{second}.pt is missing or not the weights .* for '{second}'"):
        runner.merge_results("kept", broken / "kept.json", results_dir=here["results_dir"])
    assert ours.read_text() == before

    outside = json.loads(theirs.read_text())
    outside["runs"][second]["weights"]["file"] = f"../there/results/kept/{second}.pt"
    (broken / "kept.json").write_text(json.dumps(outside))
    with pytest.raises(ValueError, match=r"outside the folder of its results"):
        runner.merge_results("kept", broken / "kept.json", results_dir=here["results_dir"])
    assert ours.read_text() == before

    assert runner.merge_results("kept", theirs, results_dir=here["results_dir"]) == [second]
    merged = json.loads(ours.read_text())
    assert list(merged["runs"]) == [first, second]  # the experiment's order
    assert merged["runs"][second] == json.loads(theirs.read_text())["runs"][second]
    assert (here["results_dir"] / "kept" / f"{second}.pt").read_bytes() == kept.read_bytes()
    assert runner.merge_results("kept", theirs, results_dir=here["results_dir"]) == []  # nothing new
    assert experiment_status("kept", **here).count("done") == 2

    record = json.loads(theirs.read_text())
    record["runs"][second]["val_top1"] = 0.99  # the same run with another record: refused
    theirs.write_text(json.dumps(record))
    before = ours.read_text()
    with pytest.raises(ValueError, match=rf"runs \['{second}'\] are recorded in both .* with different records"):
        runner.merge_results("kept", theirs, results_dir=here["results_dir"])
    assert ours.read_text() == before
    with pytest.raises(ValueError, match=r"other='.*kept.json' is not valid; give another copy of kept.json"):
        runner.merge_results("kept", ours, results_dir=here["results_dir"])


def test_only_names_runs_the_experiment_trains(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "train", lambda *args, **kwargs: pytest.fail("trained despite a bad --only"))
    with pytest.raises(ValueError, match=r"only=\['nope'\] are not runs that 'ci' trains; valid: \('fig3', "):
        run_experiment("ci", progress=False, only=["fig3", "nope"], **places(tmp_path))
    with pytest.raises(ValueError, match=r"only='fig3' is not valid; give a list of runs"):
        run_experiment("ci", progress=False, only="fig3", **places(tmp_path))
    result = cli("experiment", "ci", "--only", "nope", "--results", str(tmp_path / "r"), "--runs", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "only=['nope']" in result.stderr
    result = cli("experiment", "ci", "--merge", str(tmp_path / "none.json"), "--results", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "none.json' is not valid" in result.stderr

"""Experiments: the `remove` field, the ablation definitions, and the runner on the `ci` miniature in tmp dirs."""

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

import zfcore.experiments as experiments
from zfcore import models
from zfcore.checkpoints import (CheckpointError, build_model, checkpoint_state, config_from_dict, load_checkpoint,
                                save_checkpoint)
from zfcore.experiments import (experiment_status, get_experiment, parameter_count, parameter_matched,
                                run_experiment, widen)
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
    with pytest.raises(ValueError, match=r"experiment='table9' is not valid; valid experiments: \('ablations', 'ci'\)"):
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

    monkeypatch.setattr(experiments, "train", watched_train)
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
    for key in ("code_version", "train_top1", "val_top5", "wall_minutes", "finished"):
        assert key in record
    assert saved["runs"][second]["parameters"] < record["parameters"]

    def no_training(*args, **kwargs):
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr(experiments, "train", no_training)
    assert run_experiment("ci", progress=False, **where)["runs"] == saved["runs"]
    status = experiment_status("ci", **where)
    assert status.count("done") == 2 and "time left: none" in str(status)
    assert "val top-1" in str(status)


def test_status_names_the_live_runner_and_a_second_runner_is_refused(tmp_path, monkeypatch) -> None:
    where = places(tmp_path)
    folder = where["runs_dir"] / "ci"
    folder.mkdir(parents=True)
    (folder / "runner.pid").write_text(str(os.getppid()))  # a live process that is not this one
    status = experiment_status("ci", **where)
    assert [run.state for run in status.runs] == ["running", "left"]
    assert f"epoch 0/2 done (process {os.getppid()})" in str(status)
    monkeypatch.setattr(experiments, "train", lambda *args, **kwargs: pytest.fail("trained beside another runner"))
    with pytest.raises(ValueError, match=f"already being run by process {os.getppid()}"):
        run_experiment("ci", progress=False, **where)
    (folder / "runner.pid").write_text("999999999")  # a dead runner: taken over
    assert [run.state for run in experiment_status("ci", **where).runs] == ["left", "left"]


def test_results_of_another_version_or_recipe_are_refused(tmp_path, monkeypatch) -> None:
    where = places(tmp_path)
    results = where["results_dir"] / "ci.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"experiment": "ci", "version": 7, "runs": {}}))
    monkeypatch.setattr(experiments, "train", lambda *args, **kwargs: pytest.fail("ran despite a refused file"))
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

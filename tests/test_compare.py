"""`lrpilot compare`: bad input fails in one line before training; crashes are recorded; kill -9 resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lrpilot.cli import main
from lrpilot.experiments.run import read_metrics
from lrpilot.experiments.runner import Execution, Job, available_cpus, execute_run, run_study
from lrpilot.experiments.store import StudyStore
from lrpilot.experiments.study import Study, load_study

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--task", "digits-mlp", "--controller", "constant", "--controller", "rule", "--seeds", "2", "--epochs", "2"]

PLUGIN = textwrap.dedent('''
    """Test plugin: tasks and a controller that crash, diverge or kill their worker."""
    import dataclasses, os
    import torch
    from torch import nn
    from lrpilot.controller import Controller, register_controller
    from lrpilot.training import register_task
    from lrpilot.training.digits import DIGITS_MLP

    class Boom(Controller):
        name = "boom"
        def _act(self, metrics):
            if os.path.exists(os.environ["LRPILOT_TEST_BOOM_FLAG"]):
                raise RuntimeError("boom: injected controller crash")
            return 1.0

    class NaNOut(nn.Module):
        def forward(self, x):
            return x * float("nan")

    def oom(task, data):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")

    def die(task, data):
        os._exit(3)

    register_controller("boom", Boom)
    register_task(dataclasses.replace(DIGITS_MLP, name="test-oom", build_model=oom), overwrite=True)
    register_task(dataclasses.replace(DIGITS_MLP, name="test-die", build_model=die), overwrite=True)
    register_task(dataclasses.replace(DIGITS_MLP, name="test-nan",
                                      build_model=lambda task, data: nn.Sequential(nn.Linear(64, 10), NaNOut())),
                  overwrite=True)
''')


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# -- bad input: one line, exit code 2, nothing trained ------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--task", "nope", "--controller", "rule"], "unknown task 'nope'"),
    (["--task", "digits-mlp", "--controller", "nope"], "unknown controller 'nope'"),
    (["--task", "digits-mlp", "--controller", "plateau:patience=x"], "must be int"),
    (["--task", "digits-mlp", "--controller", "rule", "--optimizer", "adamax"], "optimizer must be one of"),
    (["--task", "digits-mlp", "--controller", "rule", "--option", "digits-mlp:nope=1"], "no setting 'nope'"),
    (["--task", "digits-mlp", "--controller", "rule", "--import", "no_such_module_xyz"], "no_such_module_xyz"),
    (["--task", "digits-mlp", "--controller", "rule", "--controller", "rule"], "lists a name twice"),
])
def test_bad_study_fails_in_one_line_before_training(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["compare", *extra, "--out", str(out)]) == 2
    err = _error(capsys)
    assert err.startswith("lrpilot compare: error:") and message in err
    assert not out.exists()


def test_missing_out_and_missing_study(capsys):
    assert main(["compare", "--task", "digits-mlp", "--controller", "rule"]) == 2
    assert "--out" in _error(capsys)
    assert main(["compare"]) == 2
    assert "study file" in _error(capsys)


def test_toml_errors_name_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('tasks = ["digits-mlp"]\ncontrollers = [rule]\n')
    assert main(["compare", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = _error(capsys)
    assert str(bad) in err and "line 2" in err
    typo = tmp_path / "typo.toml"
    typo.write_text('taks = ["digits-mlp"]\ncontrollers = ["rule"]\n')
    assert main(["compare", str(typo), "--out", str(tmp_path / "o")]) == 2
    assert "unknown setting(s) taks" in _error(capsys)
    lr = tmp_path / "lr.toml"
    lr.write_text('tasks = ["digits-mlp"]\ncontrollers = ["rule"]\nlrs = [-1.0]\nout = "x"\n')
    assert main(["compare", str(lr)]) == 2
    assert "lr must be a finite number > 0, got -1.0" in _error(capsys)


def test_output_directory_problems(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["compare", *TINY, "--out", str(a_file / "out")]) == 2
    assert "not writable" in _error(capsys)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["compare", *TINY, "--out", str(foreign)]) == 2
    assert "not empty" in _error(capsys)
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["compare", *TINY, "--out", str(locked / "out")]) == 2
        assert "not writable" in _error(capsys)


def test_directory_of_another_study_is_refused_and_force_starts_afresh(tmp_path, capsys):
    study = Study(tasks=("digits-mlp",), controllers=("constant", "rule"), seeds=2, epochs=2)
    StudyStore.open(tmp_path, study).close()
    assert main(["compare", *TINY[:-4], "--seeds", "3", "--epochs", "2", "--out", str(tmp_path)]) == 2
    assert "different study (differs in: seeds)" in _error(capsys)
    (tmp_path / "runs" / "old").mkdir()
    (tmp_path / "report.md").write_text("old")
    (tmp_path / "notes.txt").write_text("kept")
    other = study.replace(seeds=3)
    with StudyStore.open(tmp_path, other, force=True):
        pass
    assert list((tmp_path / "runs").iterdir()) == [] and not (tmp_path / "report.md").exists()
    assert (tmp_path / "notes.txt").read_text() == "kept"
    assert json.loads((tmp_path / "study.json").read_text())["study"]["seeds"] == 3
    with StudyStore.open(tmp_path, other.replace(reference="bold")):  # analysis settings may change
        with pytest.raises(ValueError, match="in use by another"):
            StudyStore.open(tmp_path, other)


def test_run_names_cannot_leave_the_store(tmp_path):
    store = StudyStore(tmp_path)
    for name in ("..", "../x", "a/../../b", "", "."):
        with pytest.raises(ValueError, match="plain directory name"):
            store.run_dir(name)


def test_study_files_shipped_in_configs():
    plan = load_study(ROOT / "configs" / "seed-plan.toml")
    assert set(plan.tasks) == {"cifar10-resnet18", "imdb-bert"} and plan.seeds == 5
    assert (plan.optimizers, plan.lrs, plan.batch_size, plan.epochs) == (("adam",), (1e-3,), 64, 50)
    assert set(plan.controllers) == {"constant", "step", "plateau", "rule", "bold", "cosine", "policy:default"}
    demo = load_study(ROOT / "configs" / "demo.toml")
    demo.validate()
    assert {"rule", "bold", "policy:default"} <= set(demo.controllers) and len(demo.lrs) == 2 and demo.seeds == 3


# -- crashes are results of their run, not of the study ----------------------------------
@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "lrpilot_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    flag = tmp_path / "boom.flag"
    flag.write_text("")
    monkeypatch.setenv("LRPILOT_TEST_BOOM_FLAG", str(flag))
    return flag


def test_crashing_runs_are_recorded_and_retried(tmp_path, plugin, capsys):
    out = tmp_path / "study"
    args = ["compare", "--task", "digits-mlp", "--task", "test-nan", "--task", "test-oom", "--controller", "constant",
            "--controller", "boom", "--seeds", "1", "--epochs", "2", "--workers", "1", "--import", "lrpilot_test_plugin",
            "--reference", "constant", "--no-progress", "--out", str(out)]
    assert main(args) == 1
    runs = out / "runs"
    failed = {p.parent.name: json.loads(p.read_text()) for p in runs.glob("*/failed.json")}
    assert set(failed) == {"digits-mlp__boom__lrdefault__s0", "test-oom__constant__lrdefault__s0", "test-oom__boom__lrdefault__s0"}
    assert failed["digits-mlp__boom__lrdefault__s0"]["error"] == "RuntimeError: boom: injected controller crash"
    assert failed["test-oom__constant__lrdefault__s0"]["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert "lower batch_size" in failed["test-oom__boom__lrdefault__s0"]["error"]
    for name in ("test-nan__constant__lrdefault__s0", "test-nan__boom__lrdefault__s0"):  # divergence is a result
        history, final = read_metrics(runs / name / "metrics.jsonl")
        assert final["diverged"] and final["diverged_epoch"] == 1 and len(history) == 1
    assert read_metrics(runs / "digits-mlp__constant__lrdefault__s0" / "metrics.jsonl")[1]["epochs_run"] == 2
    report = (out / "report.md").read_text()
    assert "Failed runs" in report and "6 runs planned: 3 finished (2 diverged), 3 failed" in report
    plugin.unlink()  # the controller stops crashing: the next invocation retries only the failed runs
    assert main([*args, "--no-report"]) == 1  # test-oom still fails
    assert not (runs / "digits-mlp__boom__lrdefault__s0" / "failed.json").exists()
    assert read_metrics(runs / "digits-mlp__boom__lrdefault__s0" / "metrics.jsonl")[1]["epochs_run"] == 2
    assert "3 runs were already done, 1 finished now, 2 failed" in capsys.readouterr().out


def test_a_dying_worker_fails_its_run_and_the_study_goes_on(tmp_path, plugin):
    study = Study(tasks=("test-die", "digits-mlp"), controllers=("constant",), seeds=1, epochs=2,
                  imports=("lrpilot_test_plugin",))
    summary = run_study(study, tmp_path / "study", Execution(workers=1, progress=False))
    assert summary.failed == ("test-die__constant__lrdefault__s0",) and summary.finished == 1
    error = json.loads((tmp_path / "study" / "runs" / "test-die__constant__lrdefault__s0" / "failed.json").read_text())["error"]
    assert error.startswith("worker process died")


# -- kill -9 of the whole study, then the same command: nothing lost, nothing duplicated ---
def _store_contents(root: Path) -> dict:
    out = {}
    for run in sorted((root / "runs").iterdir()):
        assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl"], run
        history, final = read_metrics(run / "metrics.jsonl")
        assert [m.epoch for m in history] == list(range(1, len(history) + 1))
        out[run.name] = ([{k: v for k, v in m.to_dict().items() if k != "seconds"} for m in history],
                         {k: v for k, v in final.items() if k != "wall_time"})
    return out


def test_resume_after_sigkill_matches_an_uninterrupted_study(tmp_path):
    args = ["--task", "digits-mlp", "--controller", "constant", "--controller", "bold", "--seeds", "3",
            "--epochs", "4", "--workers", "2", "--no-report", "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "lrpilot", "compare", *args, "--out", str(killed)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not list(killed.glob("runs/*/metrics.jsonl")):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the study and its workers, mid-way
        proc.wait()
    finals = [p for p in killed.glob("runs/*/metrics.jsonl") if read_metrics(p)[1] is not None]
    assert len(finals) < 6, "the study finished before it could be killed"
    study = Study(tasks=("digits-mlp",), controllers=("constant", "bold"), seeds=3, epochs=4)
    reference = tmp_path / "reference"
    threads = max(1, available_cpus() // 2)  # what each of the 2 workers uses, so the numbers match bit for bit
    previous = torch.get_num_threads()
    try:
        for config in study.run_configs():  # uninterrupted, in this process
            assert execute_run(Job(config.name, config.to_dict(), str(reference / "runs" / config.name), ()), threads)["ok"]
    finally:
        torch.set_num_threads(previous)
    resumed = run_study(study, killed, Execution(workers=2, progress=False))
    assert resumed.already_done == len(finals) and resumed.finished == 6 - len(finals) and not resumed.failed
    assert _store_contents(killed) == _store_contents(reference)
    assert len(_store_contents(reference)) == 6


def test_a_run_gets_the_threads_of_the_workers_asked_for_even_when_it_runs_alone(tmp_path):
    """A run's numbers depend on its torch thread count, so the last run of a study (or the one run a resumed
    study has left) must not get more threads than the others had: it gets cores // --workers, recorded."""
    study = Study(tasks=("digits-mlp",), controllers=("constant",), seeds=1, epochs=1)
    assert run_study(study, tmp_path / "s", Execution(workers=2, progress=False)).finished == 1
    _, final = read_metrics(next((tmp_path / "s" / "runs").iterdir()) / "metrics.jsonl")
    assert final["torch_threads"] == max(1, available_cpus() // 2)


def test_command_line_options_override_the_study_file():
    import argparse

    from lrpilot.commands import compare

    parser = argparse.ArgumentParser()
    compare.add_arguments(parser, "compare")
    args = parser.parse_args([str(ROOT / "configs" / "demo.toml"), "--seeds", "1", "--lr", "0.01", "--option", "width=8",
                              "--data-dir", "/data/digits", "--out", "elsewhere"])
    study = compare.build_study(args)
    assert (study.seeds, study.lrs, study.out) == (1, (0.01,), "elsewhere")
    assert study.task_options == {"digits-cnn": {"width": 8}} and study.data_dir == {"digits-cnn": "/data/digits"}
    assert study.controllers == load_study(ROOT / "configs" / "demo.toml").controllers
    assert Study.from_dict({"tasks": "digits-mlp", "controllers": ["rule"], "data_dir": "/x"}).data_dir == {"digits-mlp": "/x"}


def test_ray_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    study = Study(tasks=("digits-mlp",), controllers=("constant",), seeds=1, epochs=1)
    with pytest.raises(ImportError, match=r"pip install 'lrpilot\[ray\]'"):
        run_study(study, tmp_path / "s", Execution(ray="local", progress=False))


def test_a_changed_policy_file_is_another_study(tmp_path, capsys):
    study = Study(tasks=("digits-mlp",), controllers=("rule", "policy:default"), seeds=1, epochs=1)
    prints = study.fingerprints()
    assert len(prints["policy:default"]) == 64 and "rule" not in prints
    StudyStore.open(tmp_path, study, fingerprints=prints).close()
    StudyStore.open(tmp_path, study, fingerprints=prints).close()  # same policy: the same study
    with pytest.raises(ValueError, match="differs in: the policy behind policy:default"):
        StudyStore.open(tmp_path, study, fingerprints={"policy:default": "0" * 64})


def test_weight_decay_reaches_every_run_and_makes_adamw_differ_from_adam(tmp_path):
    study = Study(tasks=("digits-mlp",), controllers=("constant",), optimizers=("adam", "adamw"), seeds=1, epochs=2,
                  weight_decay=0.05)
    assert {c.build_task().weight_decay for c in study.run_configs()} == {0.05}
    with pytest.raises(ValueError, match="weight_decay"):
        Study(tasks=("digits-mlp",), controllers=("constant",), weight_decay=-1.0).validate()
    run_study(study, tmp_path / "wd", Execution(workers=1, progress=False))
    run_study(study.replace(weight_decay=0.0), tmp_path / "none", Execution(workers=1, progress=False))

    def loss(root, optimizer):
        return read_metrics(root / "runs" / f"digits-mlp__constant__{optimizer}__lrdefault__s0" / "metrics.jsonl")[0][-1].train_loss

    assert loss(tmp_path / "none", "adam") == loss(tmp_path / "none", "adamw")  # no decay: AdamW is Adam
    assert loss(tmp_path / "wd", "adam") != loss(tmp_path / "wd", "adamw")  # L2 in Adam, decoupled in AdamW

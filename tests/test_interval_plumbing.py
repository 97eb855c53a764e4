"""`--interval` / `--val-subset` and the study keys `interval` / `val_subset` reach every run of `compare` and
`evaluate-controller` (issue 15, item 1); bad values end in one line with exit code 2; `--interval 1` is the
per-epoch run; study files and run folders written before the keys existed load and resume unchanged."""

from __future__ import annotations

import argparse
import json

import pytest

from lrpilot.cli import main
from lrpilot.commands import compare, evaluate_controller
from lrpilot.experiments.controller_eval import EvaluationPlan
from lrpilot.experiments.run import RunConfig, read_metrics
from lrpilot.experiments.store import StudyStore
from lrpilot.experiments.study import Study, load_study

TINY = ["--task", "digits-mlp", "--controller", "constant", "--controller", "rule", "--seeds", "1", "--epochs", "2"]


def _configs(argv: list[str]) -> list[RunConfig]:
    """The runs `lrpilot compare ARGV` would start."""
    parser = argparse.ArgumentParser()
    compare.add_arguments(parser, "compare")
    return compare.build_study(parser.parse_args(argv)).run_configs()


def _one_line_error(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_interval_flags_reach_every_run_and_interval_1_is_the_per_epoch_run(tmp_path) -> None:
    out = ["--out", str(tmp_path / "o")]
    plain = _configs([*TINY, *out])
    assert all(c.interval is None and c.val_subset is None for c in plain)
    assert _configs([*TINY, "--interval", "1", *out]) == plain
    assert _configs([*TINY, "--interval", "1.0", *out]) == plain
    quarter = _configs([*TINY, "--interval", "0.25", "--val-subset", "200", *out])
    assert {(c.interval, c.val_subset) for c in quarter} == {("0.25", 200)}
    assert quarter[0].name == "digits-mlp__constant__i0.25__v200__lrdefault__s0"
    assert {c.interval for c in _configs([*TINY, "--interval", "50 steps", *out])} == {"50steps"}


@pytest.mark.parametrize("flags, message", [
    (["--interval", "abc"], "argument --interval: interval must be a fraction of an epoch in (0, 1]"),
    (["--interval", "2"], "interval must be a fraction of an epoch in (0, 1]"),
    (["--interval", "0"], "interval must be a fraction of an epoch in (0, 1]"),
    (["--interval", "0steps"], "interval steps must be an integer >= 1"),
    (["--val-subset", "0"], "argument --val-subset: expected an integer >= 1, got '0'"),
    (["--val-subset", "1.5"], "argument --val-subset: expected an integer >= 1"),
])
@pytest.mark.parametrize("command", ["compare", "evaluate-controller"])
def test_bad_interval_flags_exit_2_with_one_line(tmp_path, capsys, command, flags, message) -> None:
    out = tmp_path / "out"
    argv = [*TINY] if command == "compare" else ["rule", "--tasks", "wine-mlp", "--seeds", "1"]
    with pytest.raises(SystemExit) as exit_:
        main([command, *argv, *flags, "--out", str(out)])
    assert exit_.value.code == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"lrpilot {command}: error:") and message in err
    assert not out.exists()


def test_study_file_keys_and_the_command_line_over_them(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('tasks = ["digits-mlp"]\ncontrollers = ["rule"]\nseeds = 1\ninterval = 0.25\nval_subset = 64\n'
                    'out = "o"\n')
    assert {(c.interval, c.val_subset) for c in load_study(path).run_configs()} == {("0.25", 64)}
    assert {(c.interval, c.val_subset) for c in _configs([str(path)])} == {("0.25", 64)}
    assert {c.interval for c in _configs([str(path), "--interval", "1"])} == {None}  # the flag overrides the file
    path.write_text('tasks = ["digits-mlp"]\ncontrollers = ["rule"]\ninterval = "50steps"\n')
    assert {c.interval for c in load_study(path).run_configs()} == {"50steps"}


@pytest.mark.parametrize("line, message", [
    ('interval = "abc"', "interval must be a fraction of an epoch in (0, 1] (e.g. 0.25) or a number of optimizer steps"),
    ("interval = 4", "interval must be a fraction of an epoch in (0, 1]"),
    ("interval = true", "interval must be a fraction of an epoch"),
    ("val_subset = 0", "val_subset must be an integer >= 1, got 0"),
    ('val_subset = "all"', "val_subset must be an integer >= 1, got 'all'"),
])
def test_bad_study_file_keys_fail_in_one_line(tmp_path, capsys, line, message) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'tasks = ["digits-mlp"]\ncontrollers = ["rule"]\n{line}\nout = "o"\n')
    assert main(["compare", str(path), "--out", str(tmp_path / "o")]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


# What lrpilot wrote before intervals existed: a study.json and a finished run's config.
OLD_STUDY = {"tasks": ["digits-mlp"], "controllers": ["constant", "rule"], "seeds": 1, "lrs": [None],
             "optimizers": [None], "lr_free_controllers": ["constant"], "epochs": 2, "weight_decay": None,
             "batch_size": None, "task_options": {}, "data_dir": {}, "device": "cpu", "imports": [],
             "reference": "rule", "baselines": ["constant", "step", "plateau", "cosine"], "convergence_acc_tol": 0.005,
             "convergence_loss_rtol": 0.01, "out": None}
OLD_RUN = {"task": "digits-mlp", "controller": "rule", "seed": 0, "lr": None, "epochs": 2, "batch_size": None,
           "optimizer": None, "weight_decay": None, "task_options": {}, "data_dir": None, "device": "cpu"}


def test_old_study_files_and_run_folders_load_and_resume_unchanged(tmp_path) -> None:
    old = Study.from_dict(OLD_STUDY)
    assert old.to_dict() == OLD_STUDY and old.replace(interval=1).to_dict() == OLD_STUDY  # study.json as before
    configs = old.run_configs()
    assert [c.to_dict() for c in configs if c.controller == "rule"] == [OLD_RUN]  # a stored run's config matches
    assert [c.name for c in configs] == ["digits-mlp__constant__lrdefault__s0", "digits-mlp__rule__lrdefault__s0"]
    root = tmp_path / "study"
    (root / "runs" / configs[1].name).mkdir(parents=True)
    (root / "study.json").write_text(json.dumps({"format": "lrpilot-study", "version": 1, "study": OLD_STUDY,
                                                 "fingerprints": {}}))
    final = {"test_loss": 0.5, "test_acc": 0.9, "epochs_run": 2, "diverged": False, "diverged_epoch": None,
             "final_lr": 1e-3, "wall_time": 1.0, "config": OLD_RUN}
    (root / "runs" / configs[1].name / "metrics.jsonl").write_text(json.dumps({"final": final}) + "\n")
    with StudyStore.open(root, old) as store:  # the same study: not refused, the finished run is kept
        assert store.record(configs[1]).status == "done"
    with pytest.raises(ValueError, match=r"different study \(differs in: interval\)"):
        StudyStore.open(root, old.replace(interval=0.5))


def test_evaluate_controller_passes_interval_and_subset_to_every_study(tmp_path, monkeypatch) -> None:
    seen = {}

    def fake_run_evaluation(plan, out, **kwargs):  # noqa: ANN001, ANN202
        seen["plan"] = plan
        return {"failed": []}

    monkeypatch.setattr("lrpilot.experiments.controller_eval.run_evaluation", fake_run_evaluation)
    parser = argparse.ArgumentParser()
    evaluate_controller.add_arguments(parser, "evaluate-controller")
    args = parser.parse_args(["rule", "--tasks", "wine-mlp", "--seeds", "1", "--interval", "0.5", "--val-subset", "20",
                              "--no-progress", "--out", str(tmp_path)])
    assert evaluate_controller.run(args) == 0
    plan: EvaluationPlan = seen["plan"]
    studies = [s for _, s in plan.controller_studies(tmp_path)] + [plan.lrfree_study(tmp_path)]
    runs = [c for s in studies for c in s.run_configs()]
    assert runs and {(c.interval, c.val_subset) for c in runs} == {("0.5", 20)}
    args = parser.parse_args(["rule", "--tasks", "wine-mlp", "--interval", "1", "--out", str(tmp_path)])
    evaluate_controller.run(args)
    assert (seen["plan"].interval, seen["plan"].val_subset) == (None, None)


def test_compare_at_half_epoch_intervals_records_every_half_epoch(tmp_path) -> None:
    out = tmp_path / "o"
    assert main(["compare", "--task", "digits-mlp", "--controller", "constant", "--seeds", "1", "--epochs", "2",
                 "--option", "width=16", "--interval", "0.5", "--val-subset", "100", "--workers", "1",
                 "--no-progress", "--no-report", "--out", str(out)]) == 0
    history, final = read_metrics(out / "runs" / "digits-mlp__constant__i0.5__v100__lrdefault__s0" / "metrics.jsonl")
    assert [m.elapsed_epochs for m in history] == [0.5, 1.0, 1.5, 2.0]
    assert final["config"]["interval"] == "0.5" and final["config"]["val_subset"] == 100

"""Untrusted files are never executed: planted pickles in run checkpoints and result stores are refused.

Each test plants a pickle whose unpickling would create a marker file, runs the command a
user would run on that directory, and checks both the refusal (one clear line, or the run
recorded as failed) and that the marker was not created. Policy files are covered in
``tests/test_policy.py``, SB3 ``.zip`` files in ``tests/test_reliability_controller.py``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from lrpilot.cli import main
from lrpilot.experiments.run import load_checkpoint, read_metrics


class _Payload:
    """Unpickling this creates a marker file: proof that a loader unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def plant(path: Path, marker: Path, how: str) -> None:
    """Write a malicious pickle at ``path``: a plain pickle, or torch.save's zip format around one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        if how == "pickle":
            pickle.dump({"session": _Payload(marker), "controller": {}, "elapsed": 0.0}, fh)
        else:
            torch.save({"session": _Payload(marker), "controller": {}, "elapsed": 0.0}, fh)


def test_the_payload_works(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof)))
    assert proof.exists()  # so a missing marker below means "never unpickled", not "payload broken"


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_train_refuses_a_planted_checkpoint(tmp_path, capsys, how):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    plant(out / "checkpoint.pt", marker, how)
    code = main(["train", "--task", "digits-mlp", "--epochs", "2", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "not a checkpoint lrpilot wrote" in err and "delete it" in err
    assert not marker.exists()
    assert not (out / "metrics.jsonl").exists()  # nothing trained on top of the refused file


def test_load_checkpoint_refuses_other_shapes(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="missing session/controller/elapsed"):
        load_checkpoint(path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a checkpoint lrpilot wrote"):
        load_checkpoint(path)


STUDY = ["--task", "digits-mlp", "--controller", "constant", "--controller", "rule", "--seeds", "1", "--epochs", "2",
         "--workers", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    assert main(["compare", *STUDY, "--no-report", "--out", str(out)]) == 0
    return out


def copy_study(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def test_compare_refuses_a_planted_run_checkpoint_and_goes_on(tmp_path, finished_study, capsys):
    out, marker = copy_study(finished_study, tmp_path / "s"), tmp_path / "pwned"
    run = out / "runs" / "digits-mlp__rule__lrdefault__s0"
    (run / "metrics.jsonl").unlink()  # an unfinished run: compare will resume it from its checkpoint
    plant(run / "checkpoint.pt", marker, "torch.save")
    assert main(["compare", *STUDY, "--no-report", "--out", str(out)]) == 1
    assert not marker.exists()
    error = json.loads((run / "failed.json").read_text())["error"]
    assert "not a checkpoint lrpilot wrote" in error
    assert read_metrics(out / "runs" / "digits-mlp__constant__lrdefault__s0" / "metrics.jsonl")[1] is not None
    (run / "checkpoint.pt").unlink()  # the user deletes it, as the error says: the run starts afresh
    capsys.readouterr()
    assert main(["compare", *STUDY, "--no-report", "--out", str(out)]) == 0
    assert read_metrics(run / "metrics.jsonl")[1]["epochs_run"] == 2 and not (run / "failed.json").exists()


def test_a_planted_pickle_as_metrics_is_a_failed_run_not_code(tmp_path, finished_study, capsys):
    out, marker = copy_study(finished_study, tmp_path / "s"), tmp_path / "pwned"
    metrics = out / "runs" / "digits-mlp__constant__lrdefault__s0" / "metrics.jsonl"
    metrics.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="metrics.jsonl"):
        read_metrics(metrics)
    assert main(["report", str(out)]) == 0  # the report lists the run as failed and still covers the others
    report = (out / "report.md").read_text()
    assert "Failed runs" in report and "digits-mlp__constant__lrdefault__s0" in report
    assert not marker.exists()


@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_planted_pickle_as_study_json_is_refused_in_one_line(tmp_path, finished_study, capsys, command):
    out, marker = copy_study(finished_study, tmp_path / "s"), tmp_path / "pwned"
    (out / "study.json").write_bytes(pickle.dumps(_Payload(marker)))
    argv = ["report", str(out)] if command == "report" else ["compare", *STUDY, "--no-report", "--out", str(out)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "study.json" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("out", ["/tmp/elsewhere", "../outside", "runs/../../outside", ""])
def test_a_study_file_cannot_send_results_outside_the_current_directory(tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    Path("s.toml").write_text(f'tasks = ["digits-mlp"]\ncontrollers = ["constant"]\nseeds = 1\nepochs = 1\nout = "{out}"\n')
    code = main(["compare", "s.toml", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in Path(".").iterdir()) == ["s.toml"]


def test_a_study_file_may_name_a_directory_below_and_the_command_line_anywhere(tmp_path, monkeypatch):
    from lrpilot.experiments.study import load_study

    monkeypatch.chdir(tmp_path)
    Path("s.toml").write_text('tasks = ["digits-mlp"]\ncontrollers = ["constant"]\nout = "runs/a"\n')
    assert load_study("s.toml").out == "runs/a"

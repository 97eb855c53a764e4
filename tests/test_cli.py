"""The `lrpilot` command through a subprocess: output, files, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest


def lrpilot(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "lrpilot", *args], capture_output=True, text=True, timeout=timeout)


def test_train_prints_rows_and_writes_metrics(tmp_path):
    out = tmp_path / "run"
    proc = lrpilot("train", "--task", "digits-mlp", "--controller", "rule", "--epochs", "3", "--seed", "1",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "test: loss" in proc.stdout and "val acc" in proc.stdout
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines[:-1]] == [1, 2, 3]
    final = lines[-1]["final"]
    assert 0 <= final["test_acc"] <= 1 and final["epochs_run"] == 3 and final["config"]["controller"] == "rule"
    assert not (out / "checkpoint.pt").exists()
    # the same command again finds the finished run and reports the same result
    again = lrpilot("train", "--task", "digits-mlp", "--controller", "rule", "--epochs", "3", "--seed", "1",
                    "--out", str(out))
    assert again.returncode == 0 and (out / "metrics.jsonl").read_text().count("{\"final\"") == 1


def test_tasks_lists_builtin_tasks():
    proc = lrpilot("tasks")
    assert proc.returncode == 0
    for name in ("digits-mlp", "digits-cnn"):
        assert name in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", "digits-mlp", "--controller", "plateau:bogus=1"], "unknown parameter 'bogus'"),
        (["--task", "digits-mlp", "--controller", "sometimes"], "unknown controller 'sometimes'"),
        (["--task", "digits-mlp", "--lr", "-0.1"], "--lr"),
        (["--task", "digits-mlp", "--epochs", "0"], "--epochs"),
        (["--task", "digits-mlp", "--device", "tpu"], "unknown device 'tpu'"),
        (["--task", "digits-mlp", "--optimizer", "lion"], "optimizer must be one of"),
        (["--task", "digits-mlp", "--option", "depth=3"], "no setting 'depth'"),
    ],
)
def test_bad_input_is_one_line_without_traceback(args, message):
    proc = lrpilot("train", *args, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "error" in line]) == 1


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = lrpilot("train", "--task", "digits-mlp", "--epochs", "1", "--out", str(blocker / "sub"), timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr

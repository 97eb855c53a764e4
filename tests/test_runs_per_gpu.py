"""Several runs per GPU: worker counts and validation (CUDA faked; no GPU on CI)."""

import subprocess
import sys

import pytest
import torch

from lrpilot.experiments.jobs import Execution
from lrpilot.experiments.local_backend import default_workers


def test_runs_per_gpu_multiplies_workers_per_visible_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert default_workers("cuda") == 2
    assert default_workers("cuda", runs_per_gpu=3) == 6
    assert default_workers("cpu", runs_per_gpu=3) == default_workers("cpu")  # ignored on a CPU


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_runs_per_gpu_is_refused(bad):
    with pytest.raises(ValueError, match="runs_per_gpu"):
        Execution(runs_per_gpu=bad).validate()


def test_cli_rejects_zero_runs_per_gpu(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lrpilot", "compare", "--task", "digits-mlp", "--controller", "rule",
                           "--runs-per-gpu", "0", "--out", str(tmp_path / "s")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "--runs-per-gpu" in proc.stderr and "Traceback" not in proc.stderr

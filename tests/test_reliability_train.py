"""`lrpilot train` killed with SIGKILL at random moments resumes to the uninterrupted result."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

ARGS = ["train", "--task", "digits-cnn", "--controller", "bold", "--epochs", "8", "--seed", "4", "--device", "cpu"]


def kill_at_random_moments(args, out, rng, attempts, poll, pause):
    """Start ``lrpilot *args --out out`` up to ``attempts`` times; each time, once it has written a new record,
    wait ``rng.uniform(0, pause)`` s and SIGKILL it (unless it finished). Whatever is on disk after each kill
    must be whole (every line parses). Returns the number of kills."""
    kills = 0
    for _ in range(attempts):
        proc = subprocess.Popen([sys.executable, "-m", "lrpilot", *args, "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        before = epochs_done(out)
        deadline = time.time() + 120
        while epochs_done(out) == before and proc.poll() is None and time.time() < deadline:
            time.sleep(poll)  # let it make progress, then kill at a random moment inside an interval
        time.sleep(rng.uniform(0.0, pause))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        for line in (out / "metrics.jsonl").read_text().splitlines():
            json.loads(line)
    return kills


def comparable(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record.pop("seconds", None)
        if "final" in record:
            record["final"].pop("wall_time")
    return records


def epochs_done(out):
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_train_survives_sigkill_at_random_moments(tmp_path):
    reference = tmp_path / "reference"
    assert subprocess.run([sys.executable, "-m", "lrpilot", *ARGS, "--out", str(reference)],
                          capture_output=True, timeout=300).returncode == 0
    out = tmp_path / "killed"
    assert kill_at_random_moments(ARGS, out, random.Random(0), attempts=3, poll=0.05, pause=0.3) >= 2
    finished = subprocess.run([sys.executable, "-m", "lrpilot", *ARGS, "--out", str(out)], capture_output=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert comparable(out / "metrics.jsonl") == comparable(reference / "metrics.jsonl")


GUARDED = ["train", "--task", "digits-cnn", "--controller", "rule+guard", "--lr", "0.3", "--interval", "0.5",
           "--epochs", "6", "--seed", "4", "--device", "cpu"]


@pytest.mark.slow
def test_an_interval_run_with_undos_survives_sigkill_at_random_moments(tmp_path):
    """The same, for a run that decides every half epoch and undoes (digits-cnn at LR 0.3 blows up in its
    first half epoch; rule+guard rewinds it): checkpoints mid-epoch and after an undo resume exactly."""
    reference = tmp_path / "reference"
    assert subprocess.run([sys.executable, "-m", "lrpilot", *GUARDED, "--out", str(reference)],
                          capture_output=True, timeout=300).returncode == 0
    records = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["final"]["undos"] >= 1 and records[-1]["final"]["intervals_run"] == 12
    out = tmp_path / "killed"
    assert kill_at_random_moments(GUARDED, out, random.Random(1), attempts=4, poll=0.02, pause=0.15) >= 2
    finished = subprocess.run([sys.executable, "-m", "lrpilot", *GUARDED, "--out", str(out)], capture_output=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert comparable(out / "metrics.jsonl") == comparable(reference / "metrics.jsonl")

"""`lrpilot train-controller` killed with SIGKILL at random moments resumes (--resume) to the uninterrupted weights;
SB3 zip checkpoints (cloudpickle) are never loaded without --resume."""

import base64
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

POPULATION = ["train-controller", "--bc-from", "bold", "--bc-steps", "16", "--bc-epochs", "40", "--population-envs", "8",
              "--population-groups", "2", "--population-workers", "1", "--net-arch", "16,16", "--seed", "3",
              "--finetune-timesteps", "128", "--n-steps", "8", "--batch-size", "32", "--n-epochs", "2", "--name", "p"]
PPO = ["train-controller", "--method", "ppo", "--tasks", "digits-mlp", "--epochs", "3", "--epoch-examples", "64", "--option", "width=16",
       "--timesteps", "160", "--n-steps", "8", "--batch-size", "16", "--n-epochs", "2", "--n-envs", "2",
       "--checkpoint-every", "16", "--eval-every", "32", "--eval-lrs", "1", "--eval-seeds", "1", "--net-arch", "8",
       "--seed", "1", "--name", "p", "--no-progress"]


def lrpilot(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "lrpilot", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "lrpilot", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def kill_after(proc, ready, delay, timeout=120):
    """Wait until ``ready()`` (progress on disk), then ``delay`` seconds, then SIGKILL; False if it finished first."""
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def start_and_kill(args, out, resume, ready, delay):
    """Start ``args`` into ``out`` (``--resume`` when asked) and kill it as :func:`kill_after` does;
    False (after checking it succeeded) when it finished first."""
    proc = start(*args, "--out", out, *(["--resume"] if resume else []))
    if kill_after(proc, ready, delay):
        return True
    assert proc.returncode == 0, proc.stderr.read()
    return False


def weights(out, name="p"):
    return (out / f"{name}.safetensors").read_bytes()


def bc_epoch(state):
    import torch

    return torch.load(state / "bc.pt", weights_only=True)["epoch"] if (state / "bc.pt").exists() else 0


def written_since(path, t0):
    return path.exists() and path.stat().st_mtime >= t0


@pytest.mark.slow
def test_population_training_killed_anywhere_resumes_to_the_same_weights(tmp_path):
    reference = tmp_path / "reference"
    done = lrpilot(*POPULATION, "--out", reference)
    assert done.returncode == 0, done.stderr
    rng = random.Random(0)
    out, state = tmp_path / "killed", tmp_path / "killed" / "population-state"
    # each kill waits for this attempt's own progress on disk, then a random delay
    plan = [(lambda t0: written_since(state / "run.json", t0), 0.3),  # inside the teacher rollouts (0.76 s here)
            (lambda t0: written_since(state / "teacher-data.pt", t0), 0.02),  # rollouts redone; cloning starts
            (lambda t0: written_since(state / "bc.pt", t0), 0.05),  # inside behaviour cloning
            (lambda t0: written_since(state / "bc.pt", t0) and bc_epoch(state) == 40, 1.0),  # inside PPO
            (lambda t0: written_since(state / "finetune.pt", t0), 0.0)]  # at the export
    kills, stages = 0, []
    for attempt, (ready, spread) in enumerate(plan):
        t0 = time.time()
        if not start_and_kill(POPULATION, out, attempt > 0, lambda: ready(t0), rng.uniform(0.0, spread)):
            break
        kills += 1
        stages.append([p.stem for p in sorted(state.glob("*.pt"))] + [f"epoch {bc_epoch(state)}"])
    print(f"population: {kills} kills, state on disk after each: {stages}")
    assert kills >= 4
    refused = lrpilot(*POPULATION, "--out", out)  # without --resume, the earlier run's state is not overwritten
    assert refused.returncode == 2 and "--resume" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    finished = lrpilot(*POPULATION, "--out", out, "--resume")
    assert finished.returncode == 0, finished.stderr
    assert weights(out) == weights(reference)
    assert weights(out, "p-bc") == weights(reference, "p-bc")


def test_behaviour_cloning_continues_exactly_from_any_epoch():
    from lrpilot.learn.imitation import behaviour_clone

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(600, 21)).astype(np.float32)  # three minibatches per epoch
    actions = (obs[:, 0] > 0).astype(np.int64) + 2 * (obs[:, 1] > 0)
    states = []
    full = behaviour_clone(obs, actions, 4, net_arch=(8,), epochs=5, seed=2, on_epoch=states.append)
    assert [s["epoch"] for s in states] == [1, 2, 3, 4, 5]
    resumed = behaviour_clone(obs, actions, 4, net_arch=(8,), epochs=5, seed=2, resume_from=states[1])
    # negative control: the same weights and optimiser, but the shuffling generator of another epoch
    reshuffled = behaviour_clone(obs, actions, 4, net_arch=(8,), epochs=5, seed=2,
                                 resume_from={**states[1], "generator": states[0]["generator"]})
    as_bytes = lambda net: [t.numpy().tobytes() for t in net.state_dict().values()]  # noqa: E731
    assert as_bytes(resumed) == as_bytes(full)
    assert as_bytes(reshuffled) != as_bytes(full)


@pytest.mark.slow
def test_ppo_training_killed_at_random_moments_resumes_to_the_same_weights(tmp_path):
    reference = tmp_path / "reference"
    done = lrpilot(*PPO, "--out", reference)
    assert done.returncode == 0, done.stderr
    rng = random.Random(1)
    out = tmp_path / "killed"
    kills = 0
    for attempt in range(2):  # each run starts two worker processes (SubprocVecEnv): two kills keep it near a minute
        before = {p.name for p in (out / "checkpoints").glob("*.zip")} if attempt else set()
        fresh = lambda: {p.name for p in (out / "checkpoints").glob("*.zip")} - before  # noqa: E731
        if not start_and_kill(PPO, out, attempt > 0, lambda: bool(fresh()), rng.uniform(0.0, 1.0)):
            break
        kills += 1
    print(f"ppo: {kills} kills; checkpoints {sorted(p.name for p in (out / 'checkpoints').glob('*.zip'))}")
    assert kills >= 2
    finished = lrpilot(*PPO, "--out", out, "--resume")
    assert finished.returncode == 0, finished.stderr
    assert weights(out) == weights(reference)
    card = json.loads((out / "p.json").read_text())
    assert card["provenance"]["timesteps"] == 160
    history = [h["timesteps"] for h in card["evaluation"]["history"]]
    assert history == [32, 64, 96, 128, 160]  # the evaluations before a kill are kept too


class _Marker:
    """Unpickling this creates ``path``: it stands for any code a malicious pickle runs."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').close()",)


def plant_checkpoint(out, marker):
    """A ``ppo_1_steps.zip`` whose pickled entry creates ``marker`` when SB3 unpickles it."""
    (out / "checkpoints").mkdir(parents=True)
    payload = base64.b64encode(pickle.dumps(_Marker(marker))).decode()
    with zipfile.ZipFile(out / "checkpoints" / "ppo_1_steps.zip", "w") as archive:
        archive.writestr("data", json.dumps({"policy_class": {":serialized:": payload}}))


def test_a_planted_checkpoint_is_not_loaded_without_resume(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "unpickled"
    plant_checkpoint(out, marker)
    refused = lrpilot(*PPO, "--timesteps", "16", "--n-envs", "1", "--out", out)
    assert refused.returncode == 2 and "--resume" in refused.stderr, refused.stderr
    assert not marker.exists()
    # the positive control: the planted file is live; --resume (the explicit consent) does unpickle it
    lrpilot(*PPO, "--timesteps", "16", "--n-envs", "1", "--out", out, "--resume")
    assert marker.exists()


def test_the_population_path_never_loads_sb3_checkpoints(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "unpickled"
    plant_checkpoint(out, marker)
    tiny = [*POPULATION, "--bc-epochs", "2", "--finetune-timesteps", "64", "--out", out]
    for args in (tiny, [*tiny, "--resume"]):
        done = lrpilot(*args)
        assert done.returncode == 0, done.stderr
    assert not marker.exists() and (out / "p.safetensors").exists()

"""train-controller: a short PPO run writes a loadable policy whose actions equal SB3's; resume; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpilot.cli import main
from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.policy import load_policy
from lrpilot.learn.export import export_policy
from lrpilot.learn.ppo import PPOConfig, latest_checkpoint, train_controller

TINY = ["--method", "ppo", "--tasks", "digits-mlp", "--epochs", "4", "--n-steps", "64", "--batch-size", "32", "--n-epochs", "2",
        "--eval-lrs", "2", "--eval-seeds", "1", "--epoch-examples", "128", "--option", "width=16",
        "--checkpoint-every", "64", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short CLI run (128 steps), then a resume to 192 steps."""
    out = tmp_path_factory.mktemp("ppo") / "run"
    assert main(["train-controller", *TINY, "--timesteps", "128", "--eval-every", "64", "--out", str(out),
                 "--name", "tiny"]) == 0
    first = json.loads((out / "tiny.json").read_text())
    (out / "first-card.json").write_text(json.dumps(first))
    assert main(["train-controller", *TINY, "--timesteps", "192", "--out", str(out), "--name", "tiny", "--resume"]) == 0
    return out


def test_short_run_writes_a_loadable_policy_with_provenance(trained: Path) -> None:
    controller = load_policy(str(trained / "tiny"))
    card = controller.card
    prov = card["provenance"]
    assert prov["seed"] == 0 and prov["tasks"] == ["digits-mlp"] and prov["epochs"] == 4
    recipe = prov["recipe"]  # the settings themselves, not a command line rebuilt by hand
    assert recipe["tasks"] == ["digits-mlp"] and recipe["epoch_examples"] == 128 and recipe["task_options"] == {"width": 16}
    assert "resume" not in recipe and "command" not in prov and prov["timesteps"] == 192
    assert json.loads((trained / "first-card.json").read_text())["provenance"]["timesteps"] == 128
    ev = card["evaluation"]
    assert ev["controllers"]["ppo"]["n"] == ev["controllers"]["rule"]["n"] == 2
    assert sum(ev["ppo_vs_rule_test_acc"].values()) == 2
    assert all(r["test_acc"] is not None or r["diverged"] for r in ev["episodes"]["ppo"])
    controller.reset(1e-3, 4)
    from lrpilot.metrics import EpochMetrics

    assert controller.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=2.0, val_loss=1.9, val_acc=0.3)) in (0.1, 0.5, 1.0, 2.0)


def test_run_leaves_checkpoints_and_tensorboard_logs(trained: Path) -> None:
    assert latest_checkpoint(trained / "checkpoints").name == "ppo_192_steps.zip"
    assert (trained / "checkpoints" / "ppo_64_steps.zip").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted(p for p in (trained / "tb").iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["tiny_1"]  # the resumed run continues the same curves
    events = EventAccumulator(str(runs[0])).Reload()
    tags = events.Tags()["scalars"]
    assert {"eval/policy_test_acc", "eval/rule_test_acc", "rollout/ep_rew_mean", "train/episodes"} <= set(tags)
    assert max(e.step for e in events.Scalars("train/episodes")) == 192
    first = json.loads((trained / "first-card.json").read_text())
    assert [h["timesteps"] for h in first["evaluation"]["history"]] == [64, 128]
    assert json.loads((trained / "config.json").read_text())["timesteps"] == 192


def _observations(n: int = 64) -> np.ndarray:
    """Observations from real episodes plus random points of the observation space."""
    from lrpilot.envs.lr_control import LRControlEnv

    env = LRControlEnv(task="digits-mlp", initial_lr=1e-2, epochs=6, task_options={"width": 16}, epoch_examples=128)
    env.action_space.seed(0)
    env.observation_space.seed(0)
    obs, _ = env.reset(seed=0)
    seen = [obs]
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
        seen.append(obs)
    seen += [env.observation_space.sample() for _ in range(n - len(seen))]
    return np.stack(seen)


def test_exported_actions_equal_sb3_deterministic_actions(trained: Path) -> None:
    from stable_baselines3 import PPO

    model = PPO.load(latest_checkpoint(trained / "checkpoints"), device="cpu")
    obs = _observations()
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(load_policy(str(trained / "tiny")).predict(obs), expected)


def test_continuous_export_round_trip(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from lrpilot.envs.lr_control import LRControlEnv

    env = LRControlEnv(task="digits-mlp", initial_lr=1e-3, epochs=3, actions="continuous:0.2,5",
                       task_options={"width": 16}, epoch_examples=64)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16], "activation_fn": torch.nn.ReLU})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.policy.parameters():  # untrained outputs are ~0: spread them
            p.copy_(torch.randn(p.shape, generator=g))
    export_policy(model, tmp_path / "cont", ActionSpec.parse("continuous:0.2,5"), provenance={})
    obs = _observations()
    expected, _ = model.predict(obs, deterministic=True)
    ours = load_policy(str(tmp_path / "cont")).predict(obs)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    assert (np.abs(expected) == 1.0).any() and (np.abs(expected) < 1.0).any()  # clipped and unclipped cases


@pytest.mark.slow
def test_parallel_envs_in_worker_processes(tmp_path: Path) -> None:
    config = PPOConfig(tasks=("digits-mlp",), epochs=3, timesteps=64, n_envs=2, n_steps=16, batch_size=16, n_epochs=1,
                       eval_lrs=1, eval_seeds=1, epoch_examples=64, task_options={"width": 16},
                       out_dir=str(tmp_path / "par"), name="par")
    result = train_controller(config)
    assert result.timesteps == 64 and result.steps_per_second > 0
    assert load_policy(str(result.card_path)).card["provenance"]["n_envs"] == 2


@pytest.mark.parametrize("args, message", [
    (["--name", "../evil"], "name"),
    (["--tasks", "no-such-task"], "no-such-task"),
    (["--actions", "fast"], "action"),
    (["--reward", "accuracy"], "reward"),
    (["--resume"], "no checkpoint"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, args: list, message: str) -> None:
    argv = ["train-controller", "--method", "ppo", "--tasks", "digits-mlp", "--epochs", "3", "--timesteps", "8", "--n-steps", "8",
            "--batch-size", "8", "--eval-lrs", "1", "--eval-seeds", "1", "--epoch-examples", "32", "--no-progress",
            "--out", str(tmp_path / "bad"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lrpilot train-controller: error:") and message in err and "\n" not in err


@pytest.mark.parametrize("field, value", [("epochs", 1), ("n_envs", 0), ("lr_range", (1e-1, 1e-4)), ("gamma", 1.5),
                                          ("net_arch", ()), ("tasks", ())])
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PPOConfig(**{field: value}).validate()

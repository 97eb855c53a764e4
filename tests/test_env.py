"""LRControlEnv: Gymnasium and SB3 checkers, the observation promise, divergence, truncation, determinism."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import lrpilot.envs  # noqa: F401  (registers the ids)
from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.metrics import EpochMetrics

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


TINY = {"task_options": {"width": 16}, "epoch_examples": 128, "device": "cpu"}


def make_env(**kwargs) -> LRControlEnv:  # noqa: ANN003
    return LRControlEnv(**{"task": "digits-mlp", "initial_lr": 1e-3, "epochs": 4, **TINY, **kwargs})


def play(env: gym.Env, actions, seed: int | None = 0, options=None):  # noqa: ANN001, ANN201
    """Reset and step through ``actions`` (until the episode ends), checking every observation."""
    obs, info = env.reset(seed=seed, options=options)
    assert env.observation_space.contains(obs)
    observations, rewards, infos, end = [obs], [], [info], (False, False)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs), obs
        assert isinstance(reward, float) and math.isfinite(reward)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        end = (terminated, truncated)
        if terminated or truncated:
            break
    return observations, rewards, infos, end


@pytest.mark.parametrize("actions", ["0.1,0.5,1,2", "continuous"])
def test_gymnasium_and_sb3_env_checkers(actions: str) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_env(actions=actions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure
        check_env(env, skip_render_check=True)
    sb3_check_env(make_env(actions=actions), warn=True)
    play(env, [env.action_space.sample() for _ in range(5)], seed=3)


@pytest.mark.slow
def test_checkers_on_a_tiny_resnet18_env(tmp_path: Path) -> None:
    if importlib.util.find_spec("tests.fixtures") is None and not (Path(__file__).parent / "fixtures.py").exists():
        pytest.skip("tests/fixtures.py (make_cifar_dir) is not there yet")
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from tests.fixtures import make_cifar_dir

    data = make_cifar_dir(tmp_path / "cifar", n_train=48, n_test=16)
    env = LRControlEnv(task="cifar10-resnet18", initial_lr=1e-3, epochs=3, data_dir=str(data), device="cpu",
                       task_options={"val_size": 16, "batch_size": 16, "eval_batch_size": 16}, epoch_examples=16)
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    _, _, infos, (terminated, truncated) = play(env, [2, 2], seed=0)
    assert infos[-1]["task"] == "cifar10-resnet18" and truncated and not terminated


def test_budget_is_truncation_and_rewards_telescope() -> None:
    env = make_env(epochs=4)
    _, rewards, infos, (terminated, truncated) = play(env, [2, 3, 1, 1])
    assert len(rewards) == 3 and truncated and not terminated
    first, last = infos[0]["metrics"]["val_loss"], infos[-1]["metrics"]["val_loss"]
    assert sum(rewards) == pytest.approx(math.log(first / last), rel=1e-9, abs=1e-12)
    assert [i["metrics"]["epoch"] for i in infos] == [1, 2, 3, 4]
    assert EpochMetrics.from_dict(infos[-1]["metrics"]).epoch == 4
    with pytest.raises(RuntimeError, match="reset"):
        env.step(2)


def test_actions_change_the_lr_within_bounds() -> None:
    env = make_env(epochs=6, actions="0.1,0.5,1,2", lr_bounds=(0.5, 2.0))
    _, _, infos, _ = play(env, [3, 3, 0, 0, 2])
    lrs = [i["metrics"]["lr"] for i in infos]
    assert lrs == pytest.approx([1e-3, 2e-3, 2e-3, 5e-4, 5e-4, 5e-4])  # clamped at 2x and 0.5x


@pytest.mark.parametrize("action, factor", [(0.0, 1.0), (1.0, 10.0), (-1.0, 0.1), (5.0, 10.0), (0.5, math.sqrt(10))])
def test_continuous_actions_map_log_linearly(action: float, factor: float) -> None:
    env = make_env(actions="continuous", epochs=3)
    _, _, infos, _ = play(env, [np.array([action], dtype=np.float32)])
    assert infos[1]["multiplier"] == pytest.approx(factor)
    assert infos[1]["metrics"]["lr"] == pytest.approx(1e-3 * factor)


@pytest.mark.parametrize("initial_lr", [1e4, 1e9])
def test_huge_lr_terminates_with_a_finite_penalty(initial_lr: float) -> None:
    env = make_env(initial_lr=initial_lr, epochs=5, divergence_penalty=-7.5)
    observations, rewards, infos, (terminated, truncated) = play(env, [2, 2, 2, 2])
    assert terminated and not truncated
    assert rewards[-1] == -7.5
    assert infos[-1]["diverged"] is True
    assert not np.isnan(observations[-1]).any()


def test_divergence_during_an_episode() -> None:
    env = make_env(initial_lr=1e-3, epochs=8, actions="1,1000", lr_bounds=(1e-4, 1e7))
    _, rewards, infos, (terminated, truncated) = play(env, [1, 1, 1, 1, 1, 1, 1])
    assert terminated and not truncated and rewards[-1] == -10.0
    assert len(rewards) < 7


def test_same_seed_and_actions_give_the_same_episode() -> None:
    kwargs = {"task": ("digits-mlp", "digits-cnn"), "initial_lr": (1e-4, 1e-1)}
    a = play(make_env(**kwargs), [3, 0, 2], seed=11)
    b = play(make_env(**kwargs), [3, 0, 2], seed=11)
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]
    c = play(make_env(**kwargs), [3, 0, 2], seed=12)
    assert (c[2][0]["task"], c[2][0]["initial_lr"]) != (a[2][0]["task"], a[2][0]["initial_lr"])


def test_task_distribution_and_reset_options() -> None:
    env = make_env(task=("digits-mlp", "digits-cnn"), initial_lr=(1e-4, 1e-1), epochs=2)
    seen = set()
    env.reset(seed=0)
    for _ in range(8):
        _, info = env.reset()
        seen.add(info["task"])
        assert 1e-4 <= info["initial_lr"] <= 1e-1 and 0 <= info["session_seed"] < 2**31 - 1
    assert seen == {"digits-mlp", "digits-cnn"}
    _, info = env.reset(options={"task": "digits-cnn", "initial_lr": 3e-3, "session_seed": 5})
    assert (info["task"], info["initial_lr"], info["session_seed"]) == ("digits-cnn", 3e-3, 5)
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"lr": 1.0})


@pytest.mark.parametrize("reward", ["final_acc", "final_loss"])
def test_final_rewards_come_at_the_end(reward: str) -> None:
    _, rewards, infos, _ = play(make_env(reward=reward, epochs=4), [2, 2, 2])
    assert rewards[:-1] == [0.0, 0.0]
    expected = infos[-1]["metrics"]["val_acc"] if reward == "final_acc" else -infos[-1]["metrics"]["val_loss"]
    assert rewards[-1] == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, field", [
    ({"epochs": 1}, "epochs"), ({"initial_lr": -1.0}, "initial_lr"), ({"initial_lr": (1e-1, 1e-4)}, "initial_lr"),
    ({"reward": "accuracy"}, "reward"), ({"actions": "fast"}, "actions"), ({"actions": (0.5,)}, "actions"),
    ({"lr_bounds": (2.0, 3.0)}, "lr_bounds"), ({"divergence_growth_factor": 1.0}, "divergence_growth_factor"),
    ({"divergence_penalty": math.nan}, "divergence_penalty"), ({"session_seeds": (5, 5)}, "session_seeds"),
    ({"task": []}, "task"), ({"epoch_examples": 0}, "epoch_examples"), ({"bogus": 1}, "bogus"),
])
def test_bad_kwargs_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        make_env(**kwargs)


def test_divergence_growth_factor_ends_episodes_and_its_old_name_still_works() -> None:
    """EnvConfig.divergence_growth_factor is the growth threshold of the sessions' DivergenceRule (the chance
    threshold stays the default); the saved-config name ``divergence_factor`` is taken with a warning."""
    from lrpilot.envs.config import EnvConfig
    from lrpilot.training import DivergenceRule

    assert EnvConfig().divergence_rule == DivergenceRule(growth_factor=10.0)
    assert EnvConfig(divergence_growth_factor=None).divergence_rule == DivergenceRule()
    with pytest.warns(DeprecationWarning, match="divergence_growth_factor"):
        env = make_env(divergence_factor=4.0)
    assert env.config.divergence_growth_factor == 4.0 and env.session is None
    assert "divergence_factor" not in dataclasses.asdict(env.config)  # configs saved now use the new name
    with pytest.raises(ValueError, match="not both"), pytest.warns(DeprecationWarning):
        make_env(divergence_factor=4.0, divergence_growth_factor=3.0)
    with pytest.raises(ValueError, match="divergence_factor must be"), pytest.warns(DeprecationWarning):
        make_env(divergence_factor=1.0)  # the error names the argument given
    env.reset(seed=0)
    assert env.session.divergence == DivergenceRule(growth_factor=4.0)


def test_unknown_task_fails_at_reset_with_the_name() -> None:
    with pytest.raises(ValueError, match="no-such-task"):
        make_env(task="no-such-task").reset(seed=0)


def test_registration_ids_and_determinism_flags() -> None:
    specs = {i: gym.spec(i) for i in ("lrpilot/LRControl-v0", "lrpilot/Digits-v0", "lrpilot/CIFAR10-ResNet18-v0",
                                       "lrpilot/IMDB-BERT-v0")}
    assert specs["lrpilot/Digits-v0"].entry_point == "lrpilot.envs.lr_control:LRControlEnv"
    assert not specs["lrpilot/Digits-v0"].nondeterministic and specs["lrpilot/CIFAR10-ResNet18-v0"].nondeterministic
    env = gym.make("lrpilot/LRControl-v0", task="digits-mlp", initial_lr=1e-3, epochs=3, **TINY)
    play(env, [2, 2])
    env = gym.make("lrpilot/Digits-v0", epochs=2, **TINY)
    _, _, infos, _ = play(env, [2])
    assert infos[0]["task"] in ("digits-mlp", "digits-cnn")


def test_import_lrpilot_does_not_register_and_import_envs_does() -> None:
    code = ("import gymnasium, lrpilot; a = 'lrpilot/Digits-v0' in gymnasium.registry;"
            "import lrpilot.envs; b = 'lrpilot/Digits-v0' in gymnasium.registry; print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"] and out.stderr == ""

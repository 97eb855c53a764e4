"""LRControlEnv with control intervals: one step per interval, the budget in epochs, per-epoch equivalence."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = {"task": "digits-mlp", "initial_lr": 1e-3, "task_options": {"width": 16}, "epoch_examples": 256,
        "device": "cpu"}  # batch 64: four batches per epoch


def play(env: LRControlEnv, action: int, seed: int = 0) -> tuple[list[np.ndarray], list[float], list[dict], tuple]:
    """Reset and repeat ``action`` until the episode ends, checking every observation."""
    obs, info = env.reset(seed=seed)
    observations, rewards, infos, end = [obs], [], [info], (False, False)
    while not any(end):
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs), obs
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        end = (terminated, truncated)
    return observations, rewards, infos, end


def test_half_epoch_intervals_make_twice_the_steps_and_report_the_epochs_spent() -> None:
    env = LRControlEnv(epochs=2, interval=0.5, **TINY)
    observations, rewards, infos, (terminated, truncated) = play(env, 2)
    assert env.intervals_per_epoch == 2 and env.total_decisions == 4
    assert len(infos) == 4 and len(rewards) == 3 and truncated and not terminated  # reset trains the first
    assert [i["metrics"]["epoch"] for i in infos] == [1, 2, 3, 4]
    assert [i["metrics"]["elapsed_epochs"] for i in infos] == [0.5, 1.0, 1.5, 2.0]
    assert [float(o[0]) for o in observations] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # progress over 4 decisions
    first, last = infos[0]["metrics"]["val_loss"], infos[-1]["metrics"]["val_loss"]
    assert sum(rewards) == pytest.approx(math.log(first / last), rel=1e-9)


def test_an_episode_at_a_constant_lr_ends_where_the_per_epoch_one_does() -> None:
    """Intervals cut epochs without changing them: with the LR kept, the weights after epoch 2 are those
    of the per-epoch episode (the same batches in the same order)."""
    per_epoch = LRControlEnv(epochs=2, **TINY)
    quarter = LRControlEnv(epochs=2, interval=0.25, **TINY)
    _, _, a, _ = play(per_epoch, 2)
    _, _, b, _ = play(quarter, 2)
    assert quarter.total_decisions == 8 and len(b) == 8
    for key in ("val_loss", "val_acc"):
        assert b[-1]["metrics"][key] == pytest.approx(a[-1]["metrics"][key], rel=1e-5)
        assert b[3]["metrics"][key] == pytest.approx(a[0]["metrics"][key], rel=1e-5)  # after epoch 1


def test_an_interval_of_one_epoch_gives_exactly_the_per_epoch_episode() -> None:
    """``interval=1``, and a number of steps that is the whole epoch, play the per-epoch episode exactly."""
    base = play(LRControlEnv(epochs=3, **TINY), 3, seed=5)
    for interval in (1, "1.0", "4steps", "9steps"):
        env = LRControlEnv(epochs=3, interval=interval, **TINY)
        other = play(env, 3, seed=5)
        assert env.intervals_per_epoch == 1
        for x, y in zip(base[0], other[0]):
            np.testing.assert_array_equal(x, y)
        assert other[1] == base[1] and other[2] == base[2] and other[3] == base[3]


def test_step_intervals_follow_the_batch_boundaries() -> None:
    env = LRControlEnv(epochs=2, interval="3steps", **TINY)  # 4 batches: intervals of 3 and 1 batches
    _, _, infos, _ = play(env, 2)
    assert env.intervals_per_epoch == 2 and [i["metrics"]["elapsed_epochs"] for i in infos] == [0.5, 1.0, 1.5, 2.0]


def test_each_step_trains_what_a_session_run_by_hand_trains() -> None:
    env = LRControlEnv(epochs=2, interval=0.25, **TINY)
    _, info = env.reset(seed=3)
    session = TrainingSession(env.session.task, seed=info["session_seed"], device="cpu", epoch_examples=256,
                              min_lr=1e-7, max_lr=0.1, divergence=env.config.divergence_rule, interval=0.25)
    expected = [session.run_interval()]
    got = [EpochMetrics.from_dict(info["metrics"])]
    for action, factor in ((3, 2.0), (0, 0.1), (1, 0.5)):
        got.append(EpochMetrics.from_dict(env.step(action)[4]["metrics"]))
        session.scale_lr(factor)
        expected.append(session.run_interval())
    for a, b in zip(got, expected):
        assert (a.epoch, a.lr, a.train_loss, a.val_loss, a.elapsed_epochs) == (b.epoch, b.lr, b.train_loss, b.val_loss,
                                                                               b.elapsed_epochs)


def test_checkers_pass_with_intervals() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(LRControlEnv(epochs=2, interval=0.5, encoder_version=2, **TINY), skip_render_check=True)
    sb3_check_env(LRControlEnv(epochs=2, interval=0.5, **TINY), warn=True)


def test_the_v2_observation_counts_the_budget_in_decisions() -> None:
    env = LRControlEnv(epochs=2, interval=0.25, encoder_version=2, **TINY)
    obs, _ = env.reset(seed=0)
    budget = env.encoder.feature_names.index("log_budget")
    assert obs[budget] == pytest.approx(math.log(8)) and obs[budget - 1] == pytest.approx(math.log1p(7))


@pytest.mark.parametrize("interval", ["0", "1.5", "often", "0steps", -0.25])
def test_a_bad_interval_names_the_field(interval: object) -> None:
    with pytest.raises(ValueError, match="LRControlEnv: interval"):
        LRControlEnv(epochs=2, interval=interval, **TINY)

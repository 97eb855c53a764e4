"""LRControlEnv with the undo action: the rewind, the budget, the rewards, divergence, and controllers that undo."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.base import UNDO, Controller
from lrpilot.controller.features import ObservationEncoder
from lrpilot.controller.policy import load_policy, save_policy
from lrpilot.envs.episodes import EvalCase, run_controller
from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = {"task": "digits-mlp", "initial_lr": 1e-3, "task_options": {"width": 16}, "epoch_examples": 256,
        "device": "cpu"}
KEEP, UNDO_ACTION = 2, 4  # default multipliers 0.1, 0.5, 1, 2, then undo


def session_like(env: LRControlEnv, seed: int, **kwargs) -> TrainingSession:  # noqa: ANN003
    """A session built as the env builds its own."""
    return TrainingSession(env.session.task, seed=seed, device="cpu", epoch_examples=256, min_lr=1e-7, max_lr=0.1,
                           divergence=env.config.divergence_rule, interval=env.config.interval, **kwargs)


def same(a: EpochMetrics, b: EpochMetrics) -> bool:
    return (a.lr, a.train_loss, a.train_loss_std, a.val_loss, a.val_acc) == (b.lr, b.train_loss, b.train_loss_std,
                                                                            b.val_loss, b.val_acc)


def test_undo_is_one_more_discrete_action_and_the_checkers_pass() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = LRControlEnv(epochs=3, undo=True, **TINY)
    assert env.action_space.n == 5 and env.action_spec.is_undo(UNDO_ACTION)
    assert LRControlEnv(epochs=3, actions="0.5,2,undo", **TINY).action_space.n == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    sb3_check_env(LRControlEnv(epochs=3, undo=True, interval=0.5, **TINY), warn=True)
    with pytest.raises(ValueError, match="LRControlEnv: undo"):
        LRControlEnv(epochs=3, undo=True, actions="continuous", **TINY)


@pytest.mark.parametrize("interval", [None, 0.5])
def test_undo_retries_the_interval_as_a_fresh_run_at_a_tenth_of_the_lr(interval: float | None) -> None:
    env = LRControlEnv(epochs=4, undo=True, interval=interval, **TINY)
    _, info = env.reset(seed=4)
    seed = info["session_seed"]
    env.step(3)  # x2: the interval that will be undone
    _, reward, terminated, truncated, info = env.step(UNDO_ACTION)
    assert info["undone"] is True and info["multiplier"] == 0.1 and not terminated
    history = env.history
    assert [m.undone for m in history] == [False, True, False] and history[-1].epoch == 3  # the budget was spent
    fresh = session_like(env, seed)  # never undoes: interval 1, then interval 2 at x2 x 0.1
    fresh.run_interval()
    fresh.scale_lr(0.2)
    assert same(history[-1], fresh.run_interval())
    assert history[-1].lr == pytest.approx(2e-4)
    assert reward == pytest.approx(math.log(history[1].val_loss) - math.log(history[2].val_loss))  # from the undone one
    assert env.step(KEEP)[4]["undone"] is False


def test_the_undone_interval_counts_against_the_budget_and_rewards_still_telescope() -> None:
    env = LRControlEnv(epochs=4, undo=True, **TINY)
    env.reset(seed=1)
    rewards, end = [], (False, False)
    for action in (3, UNDO_ACTION, UNDO_ACTION, KEEP, KEEP):
        _, reward, *end, _ = env.step(action)
        rewards.append(reward)
        if any(end):
            break
    assert len(rewards) == 3 and end == [False, True]  # 4 intervals: reset, x2, two undos
    history = env.history
    assert [m.undone for m in history] == [False, True, True, False]
    assert sum(rewards) == pytest.approx(math.log(history[0].val_loss / history[-1].val_loss), rel=1e-9)


def test_a_diverged_interval_waits_for_undo_and_anything_else_ends_the_episode() -> None:
    kwargs = dict(TINY, actions="1,1e4,undo", lr_bounds=(1e-4, 1e7), epochs=6)
    env = LRControlEnv(undo=True, **kwargs)
    env.reset(seed=2)
    _, reward, terminated, truncated, info = env.step(1)  # x1e4: diverges
    assert info["metrics"]["diverged"] and reward == 0.0 and not terminated and not truncated
    _, reward, terminated, truncated, info = env.step(0)  # keep: the run ends as diverged, without training
    assert terminated and info["diverged"] and reward == -10.0 and env.session.epoch == 2

    env.reset(seed=2)
    env.step(1)
    undos = 0
    while env.history[-1].diverged:  # each undo retries at a tenth of the LR until the run recovers
        obs, reward, terminated, truncated, info = env.step(2)
        undos += 1
        assert info["undone"] and not terminated and env.observation_space.contains(obs)
    assert 1 <= undos <= 4 and np.isfinite(reward)
    assert reward == pytest.approx(math.log(env.history[0].val_loss) - math.log(env.history[-1].val_loss))
    # without undo the same divergence ends the episode at once
    plain = LRControlEnv(**{**kwargs, "actions": "1,1e4"})
    plain.reset(seed=2)
    assert plain.step(1)[2] is True


def test_a_diverged_last_interval_ends_the_episode_even_with_undo() -> None:
    env = LRControlEnv(undo=True, **dict(TINY, actions="1,1e4,undo", lr_bounds=(1e-4, 1e7), epochs=2))
    env.reset(seed=2)
    _, reward, terminated, truncated, info = env.step(1)
    assert terminated and not truncated and reward == -10.0 and info["diverged"]


def test_an_env_without_undo_refuses_the_decision() -> None:
    env = LRControlEnv(epochs=3, **TINY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="undo=True"):
        env.step_decision(UNDO)


# -- controllers ------------------------------------------------------------------------------
def undo_policy(base: Path, prefer_undo: bool) -> Path:
    """A policy with the undo action whose actor ignores its input: undo first (or x0.5), then x2."""
    spec = ActionSpec(multipliers=(0.1, 0.5, 1.0, 2.0), undo=True)
    weight = torch.zeros(spec.size, ObservationEncoder().size)
    bias = torch.tensor([0.0, 2.0 if not prefer_undo else 0.0, 0.0, 1.0, 3.0])
    save_policy(base, layers=[(weight, bias)], activation="tanh", action=spec, provenance={})
    return base


def test_run_controller_lets_a_policy_undo_in_an_undo_env_and_masks_it_otherwise(tmp_path: Path) -> None:
    case = EvalCase("digits-mlp", 1e-3, 7)
    policy = load_policy(str(undo_policy(tmp_path / "u", prefer_undo=True)))
    record = run_controller(LRControlEnv(epochs=3, undo=True, interval=0.5, **TINY), case, policy)
    assert record["undos"] == 5 and record["epochs"] == 6  # every decision undid; 6 intervals in 3 epochs
    assert policy.total_decisions == 6 and policy.decisions_per_epoch == 2

    env = LRControlEnv(epochs=3, **TINY)
    policy = load_policy(str(tmp_path / "u"))
    record = run_controller(env, case, policy)
    assert not policy.may_undo and "undos" not in record
    assert [m.lr for m in env.history] == pytest.approx([1e-3, 2e-3, 4e-3])  # masked: the next best, x2


class AlwaysUndo(Controller):
    name = "always-undo"
    may_undo = True

    def _act(self, metrics: EpochMetrics) -> object:
        return UNDO


def test_run_controller_refuses_a_controller_that_must_undo_in_an_env_without_undo() -> None:
    case = EvalCase("digits-mlp", 1e-3, 7)
    with pytest.raises(ValueError, match="undo=True"):
        run_controller(LRControlEnv(epochs=3, **TINY), case, AlwaysUndo())
    record = run_controller(LRControlEnv(epochs=3, undo=True, **TINY), case, AlwaysUndo())
    assert record["undos"] == 2

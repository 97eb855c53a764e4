"""Reference twins in the population environment (issue #16): every episode has a twin with the same task,
LR, seed and budget driven by a reference controller, and the episode's return is the difference in the
final validation log-loss; the budget's end can be a terminal state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.envs.population import PopulationSB3VecEnv
from lrpilot.envs.population.config import PopulationConfig

SMALL = dict(task="digits-mlp", epochs=4, epoch_examples=128, initial_lr=(1e-4, 1e-1), groups=1)


def _episodes(env: PopulationSB3VecEnv, action: int, steps: int, seed: int = 0) -> list[tuple[float, dict]]:
    """(return, final info) of every episode that ended within ``steps`` steps of ``action``, from a seeded reset
    (unseeded, the initial LRs differ per run, and a draw near 1e-1 doubled every epoch can diverge)."""
    env.seed(seed)
    env.reset()
    returns, ended = np.zeros(env.num_envs), []
    for _ in range(steps):
        _, rewards, dones, infos = env.step(np.full(env.num_envs, action))
        returns += rewards
        for i in np.flatnonzero(dones):
            ended.append((float(returns[i]), infos[i]))
            returns[i] = 0.0
    return ended


def test_an_episode_returns_the_twins_final_log_loss_minus_the_agents() -> None:
    env = PopulationSB3VecEnv(num_envs=4, twin="bold", **SMALL)
    ended = _episodes(env, action=3, steps=7)  # x2 every epoch: far from what bold does
    assert len(ended) >= 8 and not any(info["diverged"] for _, info in ended)
    for ret, info in ended:
        expected = math.log(info["twin"]["val_loss"]) - math.log(info["metrics"]["val_loss"])
        assert ret == pytest.approx(expected, abs=1e-5)
    assert any(abs(ret) > 0.05 for ret, _ in ended)  # doubling the LR is not bold: the returns say so


def test_an_agent_that_does_what_its_twin_does_earns_nothing() -> None:
    env = PopulationSB3VecEnv(num_envs=4, twin="constant", **SMALL)  # the twin keeps its LR, as action 2 does
    ended = _episodes(env, action=2, steps=4)
    assert ended and all(ret == pytest.approx(0.0, abs=1e-4) for ret, _ in ended)
    for _, info in ended:  # same seed, same LR, same batches: the same run
        assert info["twin"]["val_loss"] == pytest.approx(info["metrics"]["val_loss"], rel=1e-4)
        assert info["twin"]["lr"] == pytest.approx(info["lr"])


def test_a_learned_policy_can_be_the_twin() -> None:
    # the twin of a fine-tune from policy:default can be policy:default itself (docs/controller.md, session 23)
    env = PopulationSB3VecEnv(num_envs=4, twin="policy:default", **SMALL)
    ended = _episodes(env, action=2, steps=5)  # the agent holds its LR
    assert len(ended) >= 4 and not any(info["diverged"] for _, info in ended)
    for ret, info in ended:
        expected = math.log(info["twin"]["val_loss"]) - math.log(info["metrics"]["val_loss"])
        assert ret == pytest.approx(expected, abs=1e-5)
    # the policy moved its twin's LR where the agent held: the twin is driven by the policy, not by the actions
    assert any(info["twin"]["lr"] != pytest.approx(info["lr"]) for _, info in ended)


def test_the_twin_reports_its_test_metrics_beside_the_agents() -> None:
    env = PopulationSB3VecEnv(num_envs=2, twin="bold", evaluate_test=True, **SMALL)
    (_, info), *_ = _episodes(env, action=2, steps=3)
    assert set(info["twin_test"]) == {"loss", "acc"} and 0.0 <= info["twin_test"]["acc"] <= 1.0


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(twin="bold", reward="final_acc"), "twin needs reward='log_val_loss'"),
    (dict(twin="no-such-controller"), "twin: unknown controller"),
    (dict(twin="rule+guard"), "twin: twin controller 'rule\\+guard' undoes; build the environment with undo=True"),
    (dict(twin=""), "twin must be a controller spec string"),
])
def test_bad_twins_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        PopulationConfig.from_kwargs(task="digits-mlp", **kwargs)
    assert "\n" not in str(err.value)


def test_a_guarded_twin_may_undo_where_the_environment_offers_undo() -> None:
    assert PopulationConfig.from_kwargs(task="digits-mlp", twin="rule+guard", undo=True).twin == "rule+guard"


def test_the_budgets_end_is_terminal_when_asked_and_truncated_by_default() -> None:
    for budget_end, terminal in (("truncated", False), ("terminal", True)):
        env = LRControlEnv(task="digits-mlp", epochs=2, epoch_examples=128, budget_end=budget_end)
        env.reset(seed=0)
        _, _, terminated, truncated, info = env.step(2)
        assert (terminated, truncated, info["diverged"]) == (terminal, not terminal, False)
        population = PopulationSB3VecEnv(num_envs=2, twin="bold", budget_end=budget_end, **SMALL)
        (_, final), *_ = _episodes(population, action=2, steps=3)
        assert final["TimeLimit.truncated"] is (not terminal) and final["diverged"] is False
    with pytest.raises(ValueError, match="budget_end must be one of truncated, terminal"):
        LRControlEnv(task="digits-mlp", budget_end="end")

"""Group redraws that never cut an episode short (``redraw="drain"``, issue #16 item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from lrpilot.controller.features import FEATURE_INDEX
from lrpilot.envs.population import PopulationSB3VecEnv
from lrpilot.training.distribution import TaskDistribution

DIST = TaskDistribution(epoch_examples=(128,), width_range=(8, 16), epochs_range=(3, 6), lr_range=(1e-4, 1e-2))


def play(redraw: str, steps: int = 30, seed: int = 0, **options) -> dict:
    """Every finished episode's length, task and ending; truncations; observations and rewards."""
    venv = PopulationSB3VecEnv(num_envs=4, groups=1, distribution=DIST, group_lifetime=4, redraw=redraw,
                               budget_end="terminal", **options)
    venv.seed(seed)
    obs = venv.reset()
    core = venv.core
    length, task = [1] * 4, [core.task_of(e).options for e in range(4)]  # the first interval is trained at reset
    out = {"episodes": [], "truncated": 0, "redrawn": 0, "obs": [obs], "rewards": [], "tasks": set(),
           "mixed": 0}
    for _ in range(steps):
        obs, rewards, dones, infos = venv.step(np.full(4, 2))  # x1
        out["obs"].append(obs)
        out["rewards"].append(rewards)
        for env in range(4):
            length[env] += 1
            info = infos[env]
            out["truncated"] += bool(info.get("TimeLimit.truncated"))
            out["redrawn"] += bool(info.get("group_redrawn"))
            if dones[env]:
                if not info["diverged"] and not info.get("group_redrawn"):  # its own last obs, then the next first
                    assert info["terminal_observation"][FEATURE_INDEX["progress"]] == pytest.approx(1.0)
                    assert obs[env][FEATURE_INDEX["progress"]] < 1.0
                out["episodes"].append({"length": length[env], "diverged": info["diverged"], "task": task[env]})
                length[env], task[env] = 1, core.task_of(env).options
            else:
                assert core.task_of(env).options == task[env]  # an episode keeps its task to its end
            assert len(core.history(env)) == length[env]
            out["tasks"].add(repr(sorted(task[env].items())))
        out["mixed"] += len({repr(sorted(t.items())) for t in task}) > 1  # old and new task side by side
    venv.close()
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_draining_redraw_lets_every_episode_play_its_whole_budget_on_one_task(seed: int) -> None:
    drain = play("drain", steps=40, seed=seed)
    finished = [e for e in drain["episodes"] if not e["diverged"]]
    assert drain["truncated"] == 0 and drain["redrawn"] == 0
    assert finished and all(3 <= e["length"] <= 6 for e in finished)  # every budget played to its end
    assert len(drain["tasks"]) >= 3  # the group was redrawn (lifetime 4 steps, 40 steps played)
    assert drain["mixed"] > 0  # while the old population drained, others already played the new task


def test_a_cutting_redraw_truncates_running_episodes() -> None:
    cut = play("cut")  # the default: the same lifetime cuts episodes short, as before
    assert cut["redrawn"] > 0 and cut["truncated"] >= cut["redrawn"]
    assert any(e["length"] < 3 for e in cut["episodes"] if not e["diverged"])


def test_a_draining_population_is_deterministic_for_a_seed() -> None:
    first, second = play("drain", steps=12, seed=3), play("drain", steps=12, seed=3)
    np.testing.assert_array_equal(np.stack(first["obs"]), np.stack(second["obs"]))
    np.testing.assert_array_equal(np.stack(first["rewards"]), np.stack(second["rewards"]))


def test_an_unknown_redraw_is_refused() -> None:
    with pytest.raises(ValueError, match="redraw must be one of cut, drain"):
        PopulationSB3VecEnv(num_envs=2, distribution=DIST, redraw="wait")


def test_draining_episodes_keep_their_twins_to_the_end() -> None:
    drain = play("drain", steps=16, twin="bold")
    finished = [e for e in drain["episodes"] if not e["diverged"]]
    assert drain["truncated"] == 0 and finished and all(3 <= e["length"] <= 6 for e in finished)
    assert drain["mixed"] > 0 and np.isfinite(np.stack(drain["rewards"])).all()

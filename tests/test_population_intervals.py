"""Population training and environments with control intervals and per-member undo."""

from __future__ import annotations

import numpy as np
import pytest

from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.envs.population import PopulationGymVectorEnv
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession, get_task
from lrpilot.training.population_trainer import Population

from tests.fixtures import saved_and_loaded

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TASK = get_task("teacher-mlp").with_overrides(width=16)
EXAMPLES = 256  # batch 64: four batches per epoch
TINY = {"task": "teacher-mlp", "task_options": {"width": 16}, "epoch_examples": EXAMPLES, "device": "cpu"}


def figures(m: EpochMetrics) -> tuple:
    return m.epoch, m.lr, m.train_loss, m.val_loss, m.val_acc, m.elapsed_epochs


def close(a: EpochMetrics, b: EpochMetrics) -> None:
    assert (a.epoch, a.elapsed_epochs, a.undone) == (b.epoch, b.elapsed_epochs, b.undone)
    np.testing.assert_allclose([a.lr, a.train_loss, a.val_loss], [b.lr, b.train_loss, b.val_loss], rtol=1e-5)


@pytest.mark.parametrize("interval", [0.5, "3steps"])
def test_members_at_different_points_of_their_epochs_equal_sessions(interval: object) -> None:
    """Member 1 starts two intervals late, so the two train different parts of their epochs in each pass
    (with "3steps", intervals of 3 and 1 batches); each still equals its own TrainingSession."""
    pop = Population(TASK, seeds=[0, 1], lrs=[1e-3, 3e-3], epoch_examples=EXAMPLES, interval=interval)
    assert pop.intervals_per_epoch == 2
    sessions = [TrainingSession(TASK.with_overrides(lr=lr), seed=s, device="cpu", epoch_examples=EXAMPLES,
                                interval=interval) for s, lr in ((0, 1e-3), (1, 3e-3))]
    got: list[list[EpochMetrics]] = [[], []]
    for step in range(5):
        members = [0] if step < 2 else [0, 1]
        for member, metrics in zip(members, pop.run_interval(members)):
            got[member].append(metrics)
            close(metrics, sessions[member].run_interval())
        if step == 2:
            pop.scale_lr([0, 1], [0.5, 2.0])
            sessions[0].scale_lr(0.5)
            sessions[1].scale_lr(2.0)
    assert [m.elapsed_epochs for m in got[0]] == [0.5, 1.0, 1.5, 2.0, 2.5]
    with pytest.raises(RuntimeError, match="run_interval"):
        pop.run_epoch()


def test_a_member_that_undoes_restores_only_its_own_slice() -> None:
    def population() -> Population:
        return Population(TASK, seeds=[0, 1, 2], lrs=[1e-3] * 3, epoch_examples=EXAMPLES, interval=0.5, undo=True)

    calm, undoing, fresh = population(), population(), population()
    for pop in (calm, undoing, fresh):
        pop.run_interval()
        pop.scale_lr([0], [4.0])
        pop.run_interval()
    undone = undoing.undo([0])[0]
    assert undone.undone and undoing.history[0][1].undone and not undoing.can_undo(0) and undoing.can_undo(1)
    fresh_pop = Population(TASK, seeds=[0], lrs=[1e-3], epoch_examples=EXAMPLES, interval=0.5)
    fresh_pop.run_interval()
    fresh_pop.scale_lr([0], [0.4])  # x4, then the undo's x0.1
    for _ in range(3):
        a, b = calm.run_interval(), undoing.run_interval()
        assert [figures(m) for m in a[1:]] == [figures(m) for m in b[1:]]  # the others are untouched
        np.testing.assert_array_equal(calm.params[1:].numpy(), undoing.params[1:].numpy())
        retry = fresh_pop.run_interval()[0]
        np.testing.assert_allclose([b[0].lr, b[0].train_loss, b[0].val_loss],
                                   [retry.lr, retry.train_loss, retry.val_loss], rtol=1e-6)
    with pytest.raises(RuntimeError, match="undo=False"):
        calm_pop = Population(TASK, seeds=[0], epoch_examples=EXAMPLES)
        calm_pop.run_epoch()
        calm_pop.undo([0])


def test_undo_takes_one_lr_factor_per_member() -> None:
    pop = Population(TASK, seeds=[0, 1], lrs=[1e-3, 1e-3], epoch_examples=EXAMPLES, interval=0.5, undo=True)
    pop.run_interval()
    with pytest.raises(ValueError, match="one lr_factor per member"):
        pop.undo([0, 1], [0.1])
    pop.undo([0, 1], [0.1, 0.01])  # the guard's two cuts for one member, one cut for the other
    np.testing.assert_allclose(pop.lr.numpy(), [1e-4, 1e-5])


def test_state_dict_mid_epoch_with_a_snapshot_resumes_exactly() -> None:
    def population() -> Population:
        return Population(TASK, seeds=[3, 4], lrs=[1e-3, 1e-2], epoch_examples=EXAMPLES, interval=0.25, undo=True)

    a = population()
    a.run_interval()
    a.run_interval([1])  # member 1 is one interval ahead, mid-epoch
    b = population()
    b.load_state_dict(saved_and_loaded(a.state_dict()))
    a.undo([1])
    b.undo([1])
    for _ in range(3):
        assert [figures(m) for m in a.run_interval()] == [figures(m) for m in b.run_interval()]


def test_a_member_episode_with_intervals_equals_lrcontrolenv() -> None:
    venv = PopulationGymVectorEnv(num_envs=2, initial_lr=(1e-3, 1e-1), epochs=2, interval=0.5, **TINY)
    obs, infos = venv.reset(seed=3)
    seed, lr = int(infos["session_seed"][1]), float(infos["initial_lr"][1])
    single = LRControlEnv(initial_lr=1e-3, epochs=2, interval=0.5, **TINY)
    expected, _ = single.reset(seed=0, options={"session_seed": seed, "initial_lr": lr})
    np.testing.assert_allclose(obs[1], expected, atol=1e-5)
    for action in (3, 0, 1):
        obs, rewards, terminated, truncated, infos = venv.step(np.array([2, action]))
        expected, reward, term, trunc, info = single.step(action)
        assert rewards[1] == pytest.approx(reward, abs=1e-5) and (terminated[1], truncated[1]) == (term, trunc)
    assert truncated.all() and np.allclose(infos["final_obs"][1], expected, atol=1e-5)
    assert infos["final_info"]["metrics"]["elapsed_epochs"].tolist() == [2.0, 2.0]


def test_a_member_that_undoes_plays_lrcontrolenv_and_leaves_the_others_alone() -> None:
    kwargs = dict(num_envs=3, initial_lr=(1e-3, 1e-1), epochs=5, undo=True, spares=0, **TINY)
    calm, undoing = PopulationGymVectorEnv(**kwargs), PopulationGymVectorEnv(**kwargs)
    assert undoing.single_action_space.n == 5
    calm_obs, infos = calm.reset(seed=5)
    undoing.reset(seed=5)
    seed, lr = int(infos["session_seed"][0]), float(infos["initial_lr"][0])
    single = LRControlEnv(initial_lr=1e-3, epochs=5, undo=True, **TINY)
    single.reset(seed=0, options={"session_seed": seed, "initial_lr": lr})
    for action in (3, 4, 2):  # x2, undo, keep
        calm_obs, calm_r, *_ = calm.step(np.array([3 if action == 3 else 2, 2, 2]))
        obs, rewards, terminated, truncated, infos = undoing.step(np.array([action, 2, 2]))
        expected, reward, *_, info = single.step(action)
        np.testing.assert_allclose(obs[0], expected, atol=1e-5)
        assert rewards[0] == pytest.approx(reward, abs=1e-5) and infos["undone"][0] == info["undone"]
        np.testing.assert_array_equal(obs[1:], calm_obs[1:])
        np.testing.assert_array_equal(rewards[1:], calm_r[1:])
    assert [m.undone for m in undoing.core.history(0)] == [False, True, False, False]


def test_a_distribution_with_two_intervals_gives_groups_their_own_decision_rate() -> None:
    """With intervals (1, 0.25) drawn per group, some groups decide once per epoch and others four times:
    every episode lasts its ``budget`` (its epochs times 1 or 4 decisions; the first is trained at the
    start, so budget - 1 steps), and both rates occur."""
    from lrpilot.training.distribution import TaskDistribution

    dist = TaskDistribution(families=("teacher", "gmm"), intervals=(1.0, 0.25), epochs_range=(2, 3),
                            epoch_examples=(256,), batch_sizes=(64,), width_range=(8, 16))
    venv = PopulationGymVectorEnv(num_envs=8, groups=4, distribution=dist, group_lifetime=None,
                                  budget_end="terminal")
    try:
        _, info = venv.reset(seed=3)
        budget, epochs = info["budget"].copy(), info["epochs"].copy()  # of each member's running episode
        lengths = np.zeros(8, dtype=int)
        ended: list[tuple[int, int, int]] = []  # (steps, budget, epochs)
        for _ in range(14):
            _, _, terminated, truncated, info = venv.step(np.full(8, 2))
            lengths += 1
            for i in np.flatnonzero(terminated | truncated):  # info is the next episode's (same-step reset)
                ended.append((int(lengths[i]), int(budget[i]), int(epochs[i])))
                lengths[i], budget[i], epochs[i] = 0, info["budget"][i], info["epochs"][i]
    finally:
        venv.close()
    assert ended and all(steps == b - 1 for steps, b, _ in ended)
    assert {b // e for _, b, e in ended} == {1, 4}


def test_intervals_are_drawn_only_when_there_is_a_choice() -> None:
    from lrpilot.envs.population import PopulationConfig
    from lrpilot.training.distribution import TaskDistribution

    rng, same = np.random.default_rng(0), np.random.default_rng(0)
    assert TaskDistribution().draw_interval(rng) is None
    assert rng.random() == same.random()  # the generator did not move: old recipes draw the same tasks
    assert {TaskDistribution(intervals=(1.0, 0.25)).draw_interval(rng) for _ in range(40)} == {None, 0.25}
    for bad in ((), (0.0,), (1.5,), (True,)):
        with pytest.raises(ValueError, match="intervals must be"):
            TaskDistribution(intervals=bad)
    with pytest.raises(ValueError, match="distribution draws the intervals"):
        PopulationConfig.from_kwargs(distribution=TaskDistribution(intervals=(0.25,)), interval=0.5)

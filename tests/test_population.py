"""Population training and the population environments (Gymnasium VectorEnv and SB3 VecEnv)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.envs.population import PopulationSB3VecEnv, PopulationGymVectorEnv
from lrpilot.metrics import EpochMetrics
from lrpilot.training import DivergenceRule, Task, TrainingSession, get_task
from lrpilot.training.population_trainer import Population
from lrpilot.training.distribution import TaskDistribution
from lrpilot.training.synthetic import load_synthetic

TINY = {"task": "teacher-mlp", "task_options": {"width": 16}, "epoch_examples": 128, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_task(optimizer: str = "adam", name: str = "teacher-mlp") -> Task:
    wd = 0.0 if optimizer == "adam" else 0.01
    return get_task(name).with_overrides(optimizer=optimizer, weight_decay=wd, width=16)


def plain_training(task: Task, seed: int, lr: float, epochs: int, examples: int, factor: float) -> tuple:
    """The straightforward loop: torch.optim, the session's initialisation and data order."""
    data = load_synthetic(task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = task.build_model(task, data)
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(task.optimizer)
    opt = opt(model.parameters(), lr=lr, weight_decay=task.weight_decay) if opt else torch.optim.SGD(
        model.parameters(), lr=lr, momentum=0.9, weight_decay=task.weight_decay)
    order_gen, losses = torch.Generator().manual_seed(seed), []
    for _ in range(epochs):
        order = torch.randperm(len(data.train), generator=order_gen)[:examples]
        epoch_losses = []
        for start in range(0, examples, task.batch_size):
            idx = order[start:start + task.batch_size]
            loss = F.cross_entropy(model(data.train.inputs[idx]), data.train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
        for group in opt.param_groups:
            group["lr"] *= factor
    return model.state_dict(), losses


# -- training layer -----------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("name", ["teacher-mlp", "seq-cnn"])
def test_member_equals_a_plain_single_model_loop(optimizer: str, name: str) -> None:
    task = tiny_task(optimizer, name)
    seeds, lrs = [5, 9, 13], [1e-3, 2e-2, 3e-3]
    pop = Population(task, seeds, lrs, epoch_examples=200)
    for _ in range(3):
        metrics = pop.run_epoch()
        pop.scale_lr([0, 1, 2], [0.5] * 3)
    weights, losses = plain_training(task, seeds[1], lrs[1], 3, 200, 0.5)
    for key, value in weights.items():
        torch.testing.assert_close(pop.member_state_dict(1)[key], value, rtol=1e-4, atol=1e-5)
    assert [m.train_loss for m in pop.history[1]] == pytest.approx(losses, rel=1e-5)
    session = TrainingSession(task.with_overrides(lr=lrs[1]), seed=seeds[1], device="cpu", epoch_examples=200)
    for _ in range(3):
        expected = session.run_epoch()
        session.scale_lr(0.5)
    assert metrics[1].val_loss == pytest.approx(expected.val_loss, rel=1e-5)
    assert metrics[1].val_acc == pytest.approx(expected.val_acc)
    assert metrics[1].train_loss_std == pytest.approx(expected.train_loss_std, rel=1e-4)
    assert metrics[1].grad_norm == pytest.approx(expected.grad_norm, rel=1e-4)
    assert metrics[1].lr == pytest.approx(expected.lr) and metrics[1].epoch == 3


def test_members_with_other_lrs_learn_differently_and_equal_members_agree() -> None:
    pop = Population(tiny_task(), [0, 0, 0], [1e-4, 3e-2, 3e-2], epoch_examples=256)
    for _ in range(3):
        m = pop.run_epoch()
    assert m[1].train_loss == m[2].train_loss and torch.equal(pop.params[1], pop.params[2])
    assert m[1].train_loss < m[0].train_loss - 0.2, (m[0], m[1])


def test_subset_epochs_leave_other_members_untouched() -> None:
    pop = Population(tiny_task(), [0, 1, 2], epoch_examples=128)
    before = pop.params.clone()
    (only,) = pop.run_epoch([1])
    assert only.epoch == 1 and pop.history[0] == [] and pop.history[2] == []
    assert torch.equal(pop.params[0], before[0]) and torch.equal(pop.params[2], before[2])
    assert not torch.equal(pop.params[1], before[1])


def test_diverging_member_does_not_affect_the_others_and_resets() -> None:
    task = tiny_task("sgd")
    pop = Population(task, [0, 1, 2], [1e-2, 1e3, 1e-2], epoch_examples=256)
    alone = Population(task, [0, 2], [1e-2, 1e-2], epoch_examples=256)
    for _ in range(2):
        m, ref = pop.run_epoch(), alone.run_epoch()
    assert m[1].diverged and not m[0].diverged and not m[2].diverged
    assert torch.equal(pop.params[[0, 2]], alone.params) and untimed(m[::2]) == untimed(ref)
    pop.reset_members([1], [1], [1e-2])
    assert pop.history[1] == [] and not pop.run_epoch([1])[0].diverged


def test_members_and_sessions_flag_the_same_epochs_under_each_rule() -> None:
    """One DivergenceRule, applied by the population trainer and by TrainingSession: the same epochs flagged,
    whichever threshold does it (a member and a session of the same seed and LR compute the same losses)."""
    task = tiny_task("sgd")
    seeds, lrs = [0, 1, 2, 3], [0.1, 3.0, 10.0, 1e3]  # calm, calm, val loss x1.5..x8 of the first, NaN
    patterns = []
    for rule in (DivergenceRule(), DivergenceRule(growth_factor=1.5), DivergenceRule(chance_factor=1.05)):
        pop = Population(task, seeds, lrs, epoch_examples=128, divergence=rule)
        for _ in range(4):
            pop.run_epoch()
        flags = [[m.diverged for m in history] for history in pop.history]
        for seed, lr, expected in zip(seeds, lrs, flags):
            session = TrainingSession(task.with_overrides(lr=lr), seed=seed, device="cpu", epoch_examples=128,
                                      divergence=rule)
            assert [session.run_epoch().diverged for _ in range(4)] == expected, (rule, lr)
        patterns.append(flags)
    default, growth, chance = patterns
    assert default[3] == [True] * 4 and not any(default[2])  # non-finite always; x8 of the first is below 10 x chance
    assert growth[2] == [False, False, True, True] and chance[2] == [False, True, True, True]


def test_state_dict_round_trip_resumes_exactly() -> None:
    pop = Population(tiny_task(), [0, 1], [1e-3, 1e-2], epoch_examples=128)
    pop.run_epoch()
    buffer = io.BytesIO()
    torch.save(pop.state_dict(), buffer)
    buffer.seek(0)
    copy = Population(tiny_task(), [7, 8], epoch_examples=128)
    copy.load_state_dict(torch.load(buffer, weights_only=True))
    assert [m.train_loss for m in pop.run_epoch()] == [m.train_loss for m in copy.run_epoch()]
    assert torch.equal(pop.params, copy.params)
    assert [untimed(h) for h in copy.history] == [untimed(h) for h in pop.history]


def test_population_rejects_what_it_cannot_train() -> None:
    with pytest.raises(ValueError, match="prodigy"):
        Population(tiny_task().with_overrides(optimizer="prodigy"), [0])
    bn = Task("bn", load_synthetic, lambda t, d: torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8)),
              options=dict(tiny_task().options))
    with pytest.raises(ValueError, match="BatchNorm"):
        Population(bn, [0])
    with pytest.raises(ValueError, match="one LR per seed"):
        Population(tiny_task(), [0, 1], [1e-3])
    with pytest.raises(ValueError, match="factors"):
        Population(tiny_task(), [0]).scale_lr([0], [-1.0])


# -- environments -------------------------------------------------------------------------
def check_obs(space, obs: np.ndarray) -> None:  # noqa: ANN001
    """``space.contains`` for one observation, or for every row of a batch when ``space`` is a single one."""
    assert obs.dtype == np.float32, obs.dtype
    rows = obs if obs.ndim == len(space.shape) + 1 else [obs]
    assert all(space.contains(row) for row in rows), obs


def untimed(metrics: list[EpochMetrics]) -> list[EpochMetrics]:
    return [dataclasses.replace(m, seconds=0.0) for m in metrics]


def test_member_episode_equals_lrcontrolenv() -> None:
    """Same task, seed, initial LR and actions: the same observations and rewards as LRControlEnv."""
    venv = PopulationGymVectorEnv(num_envs=3, initial_lr=(1e-3, 1e-1), epochs=4, **TINY)
    obs, infos = venv.reset(seed=3)
    seed, lr = int(infos["session_seed"][1]), float(infos["initial_lr"][1])
    single = LRControlEnv(initial_lr=1e-3, epochs=4, **TINY)
    expected, _ = single.reset(seed=0, options={"session_seed": seed, "initial_lr": lr})
    np.testing.assert_allclose(obs[1], expected, atol=1e-5)
    for action in (3, 0, 1):
        obs, rewards, terminated, truncated, infos = venv.step(np.array([2, action, 2]))
        check_obs(venv.observation_space, obs)
        expected, reward, term, trunc, _ = single.step(action)
        assert rewards[1] == pytest.approx(reward, abs=1e-5) and (terminated[1], truncated[1]) == (term, trunc)
    assert truncated.all() and np.allclose(infos["final_obs"][1], expected, atol=1e-5)


def test_member_episodes_end_where_lrcontrolenv_episodes_do() -> None:
    """Divergence by the growth threshold (far below chance) ends a member's episode at the epoch where it
    ends the same LRControlEnv episode; without the threshold that episode runs to its budget."""
    kwargs = dict(TINY, task_options={"width": 16, "optimizer": "sgd"}, initial_lr=(1.0, 10.0), epochs=4)
    venv = PopulationGymVectorEnv(num_envs=4, divergence_growth_factor=1.5, **kwargs)
    _, infos = venv.reset(seed=0)
    cases = list(zip(infos["session_seed"].tolist(), infos["initial_lr"].tolist()))
    ends: list[tuple | None] = [None] * 4
    for step in range(3):  # reset trains epoch 1, steps epochs 2-4: every first episode ends
        _, rewards, terminated, truncated, infos = venv.step(np.array([2] * 4))  # keep the LR
        for env in np.flatnonzero((terminated | truncated) & np.array([e is None for e in ends])):
            final = {key: value[env] for key, value in infos["final_info"]["metrics"].items()}
            ends[env] = (step, bool(terminated[env]), float(rewards[env]), final)
    growth_only = 0
    for (seed, lr), (step, terminated, reward, final) in zip(cases, ends):
        single = LRControlEnv(divergence_growth_factor=1.5, **kwargs)
        single.reset(seed=0, options={"session_seed": seed, "initial_lr": lr})
        outcomes = [single.step(2) for _ in range(step + 1)]
        assert [o[2] or o[3] for o in outcomes] == [False] * step + [True]
        assert outcomes[-1][2] == terminated and outcomes[-1][1] == pytest.approx(reward, abs=1e-5)
        assert single.history[-1].diverged == terminated == final["diverged"]
        if terminated and final["val_loss"] is not None and final["val_loss"] < 10 * np.log(10):
            growth_only += 1
            calm = LRControlEnv(divergence_growth_factor=None, **kwargs)
            calm.reset(seed=0, options={"session_seed": seed, "initial_lr": lr})
            assert [calm.step(2)[2] for _ in range(3)] == [False] * 3
    assert growth_only >= 1


def test_gymnasium_vector_api_with_same_step_autoreset() -> None:
    from gymnasium.vector import AutoresetMode

    venv = PopulationGymVectorEnv(num_envs=4, initial_lr=(1e-4, 1e-1), epochs=3, **TINY)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.observation_space.shape == (4, venv.single_observation_space.shape[0])
    obs, infos = venv.reset(seed=0)
    check_obs(venv.observation_space, obs)
    assert infos["_session_seed"].all() and len(set(infos["session_seed"])) == 4
    venv.action_space.seed(0)
    for step in range(4):
        obs, rewards, terminated, truncated, infos = venv.step(venv.action_space.sample())
        check_obs(venv.observation_space, obs)
        assert rewards.shape == (4,) and np.isfinite(rewards).all()
        if step == 1:  # budget 3: reset ran epoch 1, steps ran epochs 2 and 3
            assert (terminated | truncated).all() and infos["_final_obs"].all()
            assert all(venv.single_observation_space.contains(o) for o in infos["final_obs"])
            assert infos["final_info"]["metrics"]["epoch"].tolist() == [3, 3, 3, 3]
            assert infos["metrics"]["epoch"].tolist() == [1, 1, 1, 1]  # the new episodes
            assert np.allclose(obs[:, 0], 1 / 3)  # progress of a fresh episode
    with pytest.raises(ValueError, match="options"):
        venv.reset(options={"task": "gmm-mlp"})


def test_diverging_member_terminates_alone_and_auto_resets() -> None:
    kwargs = dict(num_envs=3, initial_lr=0.05, epochs=5, spares=0, **TINY)  # spares=0: the reset takes an extra pass
    calm, wild = PopulationSB3VecEnv(**kwargs), PopulationSB3VecEnv(**kwargs)
    calm.seed(1)
    wild.seed(1)
    calm_obs, wild_obs = calm.reset(), wild.reset()
    for _ in range(3):
        calm_obs, calm_r, _, _ = calm.step_multipliers([1.0, 1.0, 1.0])
        wild_obs, wild_r, dones, infos = wild.step_multipliers([1000.0, 1.0, 1.0])
        check_obs(wild.observation_space, wild_obs)
        np.testing.assert_array_equal(wild_obs[1:], calm_obs[1:])
        np.testing.assert_array_equal(wild_r[1:], calm_r[1:])
        if dones[0]:
            break
    assert dones[0] and not dones[1:].any() and wild_r[0] == -10.0
    assert infos[0]["diverged"] and not infos[0]["TimeLimit.truncated"]
    check_obs(wild.observation_space, infos[0]["terminal_observation"])
    assert len(wild.env_method("history", indices=0)[0]) == 1 and wild_obs[0][0] == pytest.approx(1 / 5)


def test_sb3_vecenv_trains_ppo() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    venv = VecMonitor(PopulationSB3VecEnv(num_envs=4, initial_lr=(1e-4, 1e-1), epochs=4, **TINY))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) > 0
    obs = venv.reset()
    check_obs(venv.observation_space, obs[0])
    obs, rewards, dones, infos = venv.step(model.predict(obs, deterministic=True)[0])
    assert obs.shape == (4, venv.observation_space.shape[0]) and rewards.dtype == np.float32
    assert venv.get_attr("render_mode") == [None] * 4 and venv.env_is_wrapped(object) == [False] * 4


def rollout(venv: PopulationSB3VecEnv, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    venv.seed(seed)
    observations, rewards = [venv.reset()], []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, reward, dones, infos = venv.step(rng.integers(0, 4, venv.num_envs))
        for o in (*obs, *[i["terminal_observation"] for i in infos if "terminal_observation" in i]):
            check_obs(venv.observation_space, o)
        observations.append(obs)
        rewards.append(reward)
    return np.stack(observations), np.stack(rewards)


def test_distribution_groups_are_deterministic_for_a_seed_and_redrawn() -> None:
    dist = TaskDistribution(epoch_examples=(128,), width_range=(8, 16), epochs_range=(3, 5))
    make = lambda: PopulationSB3VecEnv(num_envs=6, groups=2, distribution=dist, group_lifetime=4)  # noqa: E731
    venv = make()
    first = rollout(venv, 7, 6)
    tasks = [t.options for t in venv.core.group_tasks()]
    second = rollout(make(), 7, 6)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(rollout(make(), 8, 2)[0], first[0][:3])
    assert len(tasks) == 2 and tasks[0] != tasks[1]


def test_groups_are_redrawn_after_their_lifetime() -> None:
    dist = TaskDistribution(epoch_examples=(128,), width_range=(8, 16), epochs_range=(20, 30))
    venv = PopulationSB3VecEnv(num_envs=4, groups=2, distribution=dist, group_lifetime=2)
    venv.seed(0)
    venv.reset()
    before = [dict(t.options) for t in venv.core.group_tasks()]
    redrawn = set()
    for _ in range(3):
        _, _, dones, infos = venv.step(np.full(4, 2))
        redrawn |= {i for i, info in enumerate(infos) if info.get("group_redrawn")}
        assert all(info["TimeLimit.truncated"] for info in infos if info.get("group_redrawn"))
    assert redrawn == {0, 1, 2, 3}
    assert [dict(t.options) for t in venv.core.group_tasks()] != before


@pytest.mark.parametrize("kwargs, match", [
    ({"num_envs": 2, "groups": 3}, "groups"),
    ({"num_envs": 0}, "num_envs"),
    ({"distribution": TaskDistribution(), "task": "gmm-mlp"}, "distribution"),
    ({"spares": -1}, "spares"),
    ({"epochs": 1}, "epochs"),
])
def test_bad_population_settings_name_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PopulationGymVectorEnv(**kwargs)


def test_worker_processes_play_the_same_episodes_as_in_process_cores() -> None:
    from lrpilot.envs.population.core import PopulationCore

    venv = PopulationSB3VecEnv(num_envs=4, groups=2, workers=2, initial_lr=(1e-4, 1e-1), epochs=3, **TINY)
    try:
        venv.seed(11)
        obs = [venv.reset()]
        multipliers = [[2.0, 0.5, 1.0, 0.1], [1.0, 1.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.5]]
        obs += [venv.step_multipliers(m)[0] for m in multipliers]
        assert len(venv.env_method("history", indices=3)[0]) == 2
        assert [info["group"] for info in venv.step_multipliers([1.0] * 4)[3]] == [0, 0, 1, 1]
    finally:
        venv.close()
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(11).spawn(2)]
    for w in range(2):
        sub = dataclasses.replace(venv.config, num_envs=2, groups=1, workers=1)
        core = PopulationCore(sub, first_group=w, total_groups=2)
        expected = [core.reset(seeds[w])[0]] + [np.stack([r.obs for r in core.step_multipliers(m[2 * w:2 * w + 2])])
                                                for m in multipliers]
        for got, want in zip(obs, expected):
            np.testing.assert_array_equal(got[2 * w:2 * w + 2], want)


def test_each_step_is_one_pass_even_when_every_episode_ends_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Budget ends are foreseen: the successors' first epochs train in the same pass, no extra pass."""
    passes: list[int] = []
    run_epoch = Population.run_epoch

    def counted(self, members=None):  # noqa: ANN001, ANN202
        passes.append(self.size if members is None else len(list(members)))
        return run_epoch(self, members)

    venv = PopulationSB3VecEnv(num_envs=4, initial_lr=1e-3, epochs=3, spares=1, **TINY)
    venv.seed(0)
    venv.reset()
    monkeypatch.setattr(Population, "run_epoch", counted)
    ends = 0
    for _ in range(6):
        _, _, dones, _ = venv.step(np.full(4, 2))
        ends += int(dones.sum())
    assert ends == 12 and len(passes) == 6  # every member ended 3 times, in one pass per step
    assert sum(passes) == 6 * 4 + 12  # each step: the 4 members, plus the first epochs of the episodes that start


def test_the_old_wrapper_names_still_import() -> None:
    """PopulationVectorEnv and PopulationVecEnv (before 0.1.1) are aliases of the renamed wrappers."""
    from lrpilot.envs.population import (PopulationGymVectorEnv, PopulationSB3VecEnv, PopulationVecEnv,
                                         PopulationVectorEnv)

    assert PopulationVectorEnv is PopulationGymVectorEnv and PopulationVecEnv is PopulationSB3VecEnv

"""Behaviour cloning and the export path of `lrpilot.learn` (no training episodes: fast)."""

from __future__ import annotations

import numpy as np
import pytest

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURE_INDEX as I
from lrpilot.controller.features import FEATURES
from lrpilot.controller.policy import load_policy
from lrpilot.controller.teachers import nearest_action, teacher_multipliers
from lrpilot.learn.export import actor_from_layers, actor_layers, export_policy, tanh_mlp
from lrpilot.learn.imitation import behaviour_clone
from lrpilot.metrics import EpochMetrics


def _obs(progress: float, change: float, lag1: float = 0.0, lag2: float = 0.0) -> np.ndarray:
    o = np.zeros(len(FEATURES))
    o[I["progress"]], o[I["val_loss_log_change"]] = progress, change
    o[I["val_loss_log_change_lag1"]], o[I["val_loss_log_change_lag2"]] = lag1, lag2
    o[I["log_lr_ratio"]] = 0.5 if change else 0.0
    return o


def test_teachers() -> None:
    obs = np.stack([_obs(0.1, 0.0), _obs(0.3, -0.1), _obs(0.3, 0.1), _obs(0.8, -0.1, 0.2, -0.1),
                    _obs(0.8, -0.1, -0.1, -0.1)])
    assert list(teacher_multipliers("bold", obs)) == [1.0, 1.5, 0.5, 1.5, 1.5]
    # streak: late and not three improvements in a row -> anneal; still climbing -> bold
    assert list(teacher_multipliers("bold-anneal-streak", obs)) == [1.0, 1.5, 0.5, 0.5, 1.5]
    assert list(nearest_action(ActionSpec.parse("0.1,0.5,1,2"), np.array([1.5, 0.5, 1.0]))) == [3, 1, 2]


def test_clone_and_export_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    obs = np.stack([_obs(rng.uniform(0, 0.6), rng.choice([-0.2, 0.2])) for _ in range(400)]).astype(np.float32)
    spec = ActionSpec.parse("0.1,0.5,1,2")
    actions = nearest_action(spec, teacher_multipliers("bold", obs))
    net = behaviour_clone(obs, actions, spec.size, net_arch=(16,), epochs=40, seed=0)
    assert net.agreement > 0.95
    export_policy(net, str(tmp_path / "p"), "0.1,0.5,1,2", {"command": "test"})
    ctl = load_policy(str(tmp_path / "p"))
    ctl.reset(1e-3, 20)
    ctl.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=2.0, val_loss=2.0, val_acc=0.2))
    assert ctl.act(EpochMetrics(epoch=2, lr=1e-3, train_loss=1.5, val_loss=1.5, val_acc=0.4)) == 2.0


def test_one_builder_starts_ppo_from_a_cloned_actor_and_one_export_writes_either(tmp_path) -> None:
    """PPO fine-tuning starts from the clone's exact weights; the SB3 model and the Sequential export the same file."""
    import torch

    from lrpilot.envs.lr_control import LRControlEnv
    from lrpilot.learn.sb3_ppo import build_ppo

    env = LRControlEnv(task="digits-mlp", initial_lr=1e-3, epochs=3, task_options={"width": 16}, epoch_examples=64)
    torch.manual_seed(0)
    net = tanh_mlp([len(FEATURES), 16, 4])
    hyper = dict(seed=0, learning_rate=1e-4, n_steps=8, batch_size=8, n_epochs=1, gamma=0.99, ent_coef=0.0)
    model = build_ppo(env, net_arch=(16,), actor=net, **hyper)
    (ours, act), (theirs, net_act) = actor_layers(model), actor_layers(net)
    assert act == net_act == "tanh" and len(ours) == 2
    assert all(torch.equal(a, b) for pair in zip(ours, theirs) for a, b in zip(*pair))
    assert not torch.equal(actor_layers(build_ppo(env, net_arch=(16,), **hyper))[0][0][0], theirs[0][0])  # not by chance
    export_policy(model, tmp_path / "sb3", "0.1,0.5,1,2", {})
    export_policy(actor_from_layers(theirs), tmp_path / "seq", "0.1,0.5,1,2", {})
    assert (tmp_path / "sb3.safetensors").read_bytes() == (tmp_path / "seq.safetensors").read_bytes()
    with pytest.raises(ValueError, match="do not fit"):
        build_ppo(env, net_arch=(8,), actor=net, **hyper)

"""Behaviour-cloning pieces of `lrpilot.learn.pipeline` (no environment: fast)."""

from __future__ import annotations

import numpy as np

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURES
from lrpilot.learn.pipeline import behaviour_clone, export_actor, nearest_action, teacher_multipliers
from lrpilot.controller.policy import load_policy
from lrpilot.metrics import EpochMetrics

I = {f.name: i for i, f in enumerate(FEATURES)}


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
    export_actor(net, str(tmp_path / "p"), "0.1,0.5,1,2", {"command": "test"})
    ctl = load_policy(str(tmp_path / "p"))
    ctl.reset(1e-3, 20)
    ctl.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=2.0, val_loss=2.0, val_acc=0.2))
    assert ctl.act(EpochMetrics(epoch=2, lr=1e-3, train_loss=1.5, val_loss=1.5, val_acc=0.4)) == 2.0

"""Learning-rate-free optimisers (Prodigy, Schedule-Free AdamW) as baselines: defaults, BatchNorm, resume."""

import io

import pytest
import torch
from torch import nn

from lrpilot.training import Task, TrainingSession, get_task, register_task

pytest.importorskip("prodigyopt", reason="the lrfree extra is not installed")
pytest.importorskip("schedulefree", reason="the lrfree extra is not installed")


@pytest.mark.parametrize("optimizer, lr", [("prodigy", 1.0), ("schedulefree-adamw", 0.0025)])
def test_lr_free_optimisers_take_their_recommended_lr_and_learn(optimizer, lr):
    task = get_task("digits-mlp").with_overrides(optimizer=optimizer)
    assert task.lr == lr
    assert get_task("digits-mlp").with_overrides(optimizer=optimizer, lr=0.5).lr == 0.5
    session = TrainingSession(task, seed=0, device="cpu")
    for _ in range(5):
        session.run_epoch()
    assert session.evaluate("test")["acc"] > 0.85


def bn_model(task, data):
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, data.num_classes))


def test_schedule_free_recomputes_batchnorm_statistics_at_the_evaluation_weights():
    base = get_task("digits-mlp")
    register_task(Task(name="test-digits-bn", load_data=base.load_data, build_model=bn_model,
                       options=dict(base.options), optimizer="schedulefree-adamw", lr=0.0025), overwrite=True)
    session = TrainingSession("test-digits-bn", seed=0, device="cpu")
    session.run_epoch()
    bn = session.model[1]
    bn.running_mean.zero_()
    session.evaluate("val")
    session.optimizer.eval()  # the weights evaluation uses
    with torch.no_grad():
        pre_bn = session.model[0](session.data.train.inputs)
    batch_means = torch.stack([chunk.mean(0) for chunk in pre_bn.split(session.task.batch_size)])
    assert bn.running_mean == pytest.approx(batch_means.mean(0), abs=1e-5)  # recomputed at the averaged weights
    # the refresh draws no randomness: two evaluations agree exactly
    assert session.evaluate("test") == session.evaluate("test")


@pytest.mark.parametrize("optimizer", ["prodigy", "schedulefree-adamw"])
def test_lr_free_sessions_resume_exactly(optimizer):
    task = get_task("digits-mlp").with_overrides(optimizer=optimizer)
    full = TrainingSession(task, seed=1, device="cpu")
    for _ in range(3):
        full.run_epoch()
    part = TrainingSession(task, seed=1, device="cpu")
    part.run_epoch()
    buffer = io.BytesIO()
    torch.save(part.state_dict(), buffer)
    buffer.seek(0)
    resumed = TrainingSession(task, seed=1, device="cpu")
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(2):
        resumed.run_epoch()
    strip = lambda h: [m.to_dict() | {"seconds": 0} for m in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)


def test_a_study_runs_lr_free_optimisers_once_per_seed_at_their_own_lr():
    from lrpilot.experiments.study import Study

    study = Study(tasks=("digits-mlp",), controllers=("rule", "bold"), lrs=(1e-4, 1e-3),
                  optimizers=("adam", "prodigy", "schedulefree-adamw"), seeds=2)
    study.validate()
    runs = study.run_configs()
    lr_free = [r for r in runs if r.optimizer in ("prodigy", "schedulefree-adamw")]
    assert len(runs) == 2 * (2 * 2 + 2) and len(lr_free) == 4
    assert {(r.controller, r.lr) for r in lr_free} == {("constant", None)}
    assert {r.build_task().lr for r in lr_free} == {1.0, 0.0025}

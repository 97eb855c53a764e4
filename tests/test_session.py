"""TrainingSession on the offline digits tasks: learning, determinism, exact resume, LR bounds, divergence."""

import io
import math

import pytest
import torch

from lrpilot.metrics import EpochMetrics
from lrpilot.training import Task, TrainingSession, get_task, list_tasks, register_task


@pytest.mark.parametrize("task", ["digits-mlp", "digits-cnn"])
def test_digits_tasks_learn_well_above_chance(task):
    session = TrainingSession(task, seed=0, device="cpu")
    for _ in range(8):
        metrics = session.run_epoch()
    assert metrics.val_acc > 0.9
    assert session.evaluate("test")["acc"] > 0.85


def test_metrics_are_complete_and_finite():
    session = TrainingSession("digits-mlp", seed=1, device="cpu")
    m = session.run_epoch()
    assert m.epoch == 1 and m.lr == pytest.approx(1e-3)
    for value in (m.train_loss, m.train_loss_std, m.val_loss, m.val_acc, m.grad_norm, m.seconds):
        assert math.isfinite(value)
    assert 0 <= m.val_acc <= 1 and not m.diverged
    assert EpochMetrics.from_dict(m.to_dict()) == m


def run(session, epochs, factors=(0.5, 2.0, 1.0, 0.3)):
    out = []
    for i in range(epochs):
        out.append(session.run_epoch())
        session.scale_lr(factors[(session.epoch - 1) % len(factors)])
    return out


def strip_time(history):
    return [m.to_dict() | {"seconds": 0} for m in history]


@pytest.mark.parametrize("task", ["digits-mlp", "digits-cnn"])
def test_resume_is_exact(task):
    full = TrainingSession(task, seed=3, device="cpu")
    run(full, 4)
    first = TrainingSession(task, seed=3, device="cpu")
    run(first, 2)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = TrainingSession(task, seed=99, device="cpu")  # seed comes from the state
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    run(resumed, 2)
    assert strip_time(resumed.history) == strip_time(full.history)
    assert resumed.evaluate("test") == full.evaluate("test")


def test_same_seed_same_run_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = run(TrainingSession("digits-cnn", seed=5, device="cpu"), 2)
    assert torch.equal(torch.get_rng_state(), before)
    b = run(TrainingSession("digits-cnn", seed=5, device="cpu"), 2)
    c = run(TrainingSession("digits-cnn", seed=6, device="cpu"), 2)
    assert strip_time(a) == strip_time(b)
    assert strip_time(a) != strip_time(c)


def test_scale_lr_multiplies_every_group_within_bounds():
    session = TrainingSession("digits-mlp", seed=0, device="cpu", min_lr=1e-4, max_lr=1e-2)
    assert session.scale_lr(2.0) == pytest.approx(2e-3)
    assert session.scale_lr(100.0) == pytest.approx(1e-2)
    assert session.scale_lr(1e-9) == pytest.approx(1e-4)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="factor"):
            session.scale_lr(bad)


def test_huge_learning_rate_is_reported_as_divergence_not_a_crash():
    task = get_task("digits-mlp").with_overrides(lr=1e4, optimizer="sgd")
    session = TrainingSession(task, seed=0, device="cpu")
    metrics = [session.run_epoch() for _ in range(2)]
    assert any(m.diverged for m in metrics)
    m = next(m for m in metrics if m.diverged)
    assert not math.isfinite(m.val_loss) or m.val_loss > 10 * math.log(10)


def test_non_finite_inputs_diverge_at_that_epoch():
    session = TrainingSession("digits-mlp", seed=0, device="cpu")
    assert not session.run_epoch().diverged
    session.data.train.inputs = session.data.train.inputs.clone()  # the loaded splits are cached per process
    session.data.train.inputs[5, 3] = float("nan")
    m = session.run_epoch()
    assert m.diverged and m.epoch == 2 and math.isnan(m.train_loss)


def test_epoch_examples_limits_the_epoch():
    session = TrainingSession("digits-mlp", seed=0, device="cpu", epoch_examples=128)
    calls = []
    session.run_epoch(on_batch=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (2, 2)


def test_task_overrides_and_validation():
    task = get_task("digits-mlp").with_overrides(lr=0.01, batch_size=32, optimizer="adamw", width=16)
    assert (task.lr, task.batch_size, task.optimizer, task.options["width"]) == (0.01, 32, "adamw", 16)
    with pytest.raises(ValueError, match="optimizer"):
        get_task("digits-mlp").with_overrides(optimizer="lion")
    with pytest.raises(ValueError, match="lr"):
        get_task("digits-mlp").with_overrides(lr=-1.0)
    with pytest.raises(ValueError, match="no setting 'depth'"):
        get_task("digits-mlp").with_overrides(depth=3)
    with pytest.raises(ValueError, match="unknown task 'digits-mpl'.*did you mean 'digits-mlp'"):
        get_task("digits-mpl")


def test_register_a_user_task():
    base = get_task("digits-mlp")
    mine = Task(name="test-my-digits", load_data=base.load_data, build_model=base.build_model, epochs=2,
                options=dict(base.options))
    register_task(mine, overwrite=True)
    assert "test-my-digits" in [t.name for t in list_tasks()]
    with pytest.raises(ValueError, match="already registered"):
        register_task(mine)
    assert TrainingSession("test-my-digits", seed=0, device="cpu").run_epoch().epoch == 1


@pytest.mark.parametrize("kwargs, message", [({"seed": -1}, "seed"), ({"device": "tpu"}, "device"),
                                             ({"min_lr": 1.0, "max_lr": 0.1}, "min_lr")])
def test_bad_session_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingSession("digits-mlp", **kwargs)

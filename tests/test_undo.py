"""TrainingSession.undo: the run rewinds to the start of the last epoch, bit for bit, and retries it
with a cut learning rate; the epoch still counts and is marked undone."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from fixtures import same_state, saved_and_loaded

from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession, get_task

TASK = "digits-mlp"


def _training_state(session: TrainingSession) -> dict:
    """A copy (state_dict shares the live tensors) of everything that decides the next epoch."""
    state = session.state_dict()
    return copy.deepcopy({k: state[k] for k in ("model", "optimizer", "data_generator", "torch_rng")})


def _without_time(m: EpochMetrics) -> dict:
    return {k: v for k, v in m.to_dict().items() if k not in ("seconds", "epoch")}


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_undo_restores_model_optimizer_and_rng_bit_for_bit_and_the_retry_sees_the_same_batches(optimizer):
    task = dataclasses.replace(get_task(TASK), optimizer=optimizer)
    session = TrainingSession(task, seed=3, device="cpu", undo=True, epoch_examples=512)
    session.run_epoch()
    before = _training_state(session)
    second = session.run_epoch()
    assert not same_state(_training_state(session), before)
    undone = session.undo(lr_factor=1.0)
    assert same_state(_training_state(session), before)  # model, optimiser (LR included), data order and RNG
    assert undone.undone and session.history[-1].undone and session.epoch == 2  # the epoch still counts
    retry = session.run_epoch()  # same LR, same batches: the same epoch again
    assert _without_time(retry) == _without_time(second)
    assert retry.epoch == 3 and [m.undone for m in session.history] == [False, True, False]


def test_undo_cuts_the_lr_of_the_rewound_epoch():
    session = TrainingSession(TASK, seed=0, device="cpu", undo=True, epoch_examples=256)
    session.run_epoch()
    lr = session.lr
    session.run_epoch()
    session.scale_lr(4.0)  # whatever happened after the epoch is rewound too
    session.undo()  # default factor 0.1
    assert session.lr == pytest.approx(lr * 0.1)


def test_a_diverged_epoch_is_undone_to_finite_weights_and_retried_at_a_lower_lr():
    session = TrainingSession(TASK, seed=0, device="cpu", undo=True, epoch_examples=512)
    session.run_epoch()
    good = session.history[-1]
    session.scale_lr(1e5)  # far too large: the next epoch diverges
    assert session.run_epoch().diverged
    session.undo(lr_factor=1e-5)
    assert all(torch.isfinite(p).all() for p in session.model.parameters())
    retry = session.run_epoch()
    assert not retry.diverged and retry.val_loss <= good.val_loss * 1.5


def test_snapshots_do_not_change_the_run():
    plain = TrainingSession(TASK, seed=1, device="cpu", epoch_examples=256)
    with_undo = TrainingSession(TASK, seed=1, device="cpu", epoch_examples=256, undo=True)
    for _ in range(3):
        undoable = _without_time(with_undo.run_epoch())
        assert undoable.pop("val_spread_start") > 0  # a run that can undo also measures the untrained model once
        assert undoable.pop("weight_change") > 0  # ... and how far each interval moved the weights
        assert _without_time(plain.run_epoch()) == undoable
    assert same_state(_training_state(plain), _training_state(with_undo))
    assert "undo_snapshot" not in plain.state_dict() and "undone" not in plain.history[0].to_dict()


def test_undo_needs_snapshots_and_undoes_once(tmp_path):
    session = TrainingSession(TASK, seed=0, device="cpu", epoch_examples=128)
    session.run_epoch()
    with pytest.raises(RuntimeError, match="undo=False"):
        session.undo()
    session = TrainingSession(TASK, seed=0, device="cpu", epoch_examples=128, undo=True)
    with pytest.raises(RuntimeError, match="nothing to undo"):
        session.undo()
    session.run_epoch()
    with pytest.raises(ValueError, match="lr_factor"):
        session.undo(lr_factor=0.0)
    assert session.can_undo
    session.undo()
    assert not session.can_undo
    with pytest.raises(RuntimeError, match="since the last undo"):
        session.undo()
    with pytest.raises(ValueError, match="undo must be"):
        TrainingSession(TASK, device="cpu", undo="yes")


def test_an_undoable_epoch_survives_a_restart_and_undone_marks_round_trip():
    a = TrainingSession(TASK, seed=2, device="cpu", epoch_examples=256, undo=True)
    a.run_epoch()
    a.run_epoch()
    a.undo(lr_factor=1.0)
    a.run_epoch()
    b = TrainingSession(TASK, seed=2, device="cpu", epoch_examples=256, undo=True)
    b.load_state_dict(saved_and_loaded(a.state_dict()))
    assert [m.undone for m in b.history] == [False, True, False]
    a.undo(lr_factor=0.5)
    b.undo(lr_factor=0.5)  # the restored session can undo its last epoch too
    assert same_state(_training_state(a), _training_state(b))
    assert _without_time(a.run_epoch()) == _without_time(b.run_epoch())
    assert EpochMetrics.from_dict(a.history[1].to_dict()).undone

"""Undo in a plain PyTorch loop: ``PolicyScheduler(..., model=model)`` rewinds the model and optimizer in place.

``UndoAbove`` (a test-local controller that undoes when the validation loss is non-finite or above
a limit) is shared with the Hugging Face and Lightning callback tests.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import pytest
import torch

from lrpilot import PolicyScheduler
from lrpilot.controller import Controller
from lrpilot.controller.base import UNDO, Undo
from lrpilot.integrations.rewind import IntervalSnapshot, sharded_reason
from lrpilot.metrics import EpochMetrics
from lrpilot.training import get_task
from lrpilot.training.digits import load_digits


class UndoAbove(Controller):
    """Undoes when the interval diverged or its validation loss is above ``limit``; otherwise keeps the LR."""

    name = "undo-above"
    may_undo = True

    def __init__(self, limit: float = 1.5) -> None:
        super().__init__()
        self.limit = limit
        self.required_metrics = ("val_loss",)

    def _act(self, metrics: EpochMetrics) -> float | Undo:
        return UNDO if metrics.diverged or not metrics.val_loss <= self.limit else 1.0


class OptionalUndo(UndoAbove):
    """A controller for which undo is one option (as a learned policy whose action set includes it)."""

    name = "optional-undo"
    undo_optional = True

    def _act(self, metrics: EpochMetrics) -> float | Undo:
        decision = super()._act(metrics)
        return 1.0 if decision is UNDO and not self.may_undo else decision  # the masked action


@functools.lru_cache(maxsize=None)
def _digits() -> Any:
    return load_digits(get_task("digits-mlp"))


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def _train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, g: torch.Generator) -> float:
    data, losses = _digits(), []
    for idx in torch.randperm(len(data.train), generator=g).split(64):
        loss = torch.nn.functional.cross_entropy(model(data.train.inputs[idx]), data.train.labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def _validate(model: torch.nn.Module) -> tuple[float, float]:
    data = _digits()
    with torch.no_grad():
        logits = model(data.val.inputs)
    loss = torch.nn.functional.cross_entropy(logits, data.val.labels).item()
    return loss, (logits.argmax(1) == data.val.labels).float().mean().item()


def _run(controller: Controller | str, lr: float, epochs: int = 8, undo: bool = True) -> tuple[PolicyScheduler, float, float]:
    """A plain loop (Adam on digits) with the scheduler stepped once per epoch; the final val loss and accuracy."""
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = PolicyScheduler(optimizer, controller, total_epochs=epochs, model=model if undo else None)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        train_loss = _train_epoch(model, optimizer, g)
        val_loss, val_acc = _validate(model)
        scheduler.step({"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})
    return scheduler, *_validate(model)


@pytest.mark.parametrize("lr", [10.0, 3.0])
def test_a_diverging_run_recovers_with_undo_and_fails_without(lr: float) -> None:
    _, _, acc_without = _run("constant", lr)
    scheduler, loss, acc = _run(UndoAbove(), lr)
    assert acc_without < 0.3  # Adam at this LR never learns the digits
    assert math.isfinite(loss) and acc > 0.9
    assert scheduler.undos >= 1 and scheduler.undone[0] == 1
    assert scheduler.get_last_lr()[0] == pytest.approx(lr * 0.1 ** scheduler.undos)


def _states(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = list(model.state_dict().values())
    for per_param in optimizer.state_dict()["state"].values():
        tensors += [v for v in per_param.values() if isinstance(v, torch.Tensor)]
    return [t.clone() for t in tensors]


def _bitwise_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b))


def test_undo_restores_model_and_optimizer_bitwise_and_cuts_the_lr() -> None:
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = PolicyScheduler(optimizer, UndoAbove(limit=0.5), total_epochs=4, model=model)
    g = torch.Generator().manual_seed(0)
    _train_epoch(model, optimizer, g)
    scheduler.step({"val_loss": 0.1})  # kept: the next interval starts here
    start = _states(model, optimizer)
    _train_epoch(model, optimizer, g)
    assert not _bitwise_equal(_states(model, optimizer), start)
    scheduler.step({"val_loss": 2.0})
    assert _bitwise_equal(_states(model, optimizer), start)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3) and scheduler.get_last_lr() == [pytest.approx(1e-3)]
    assert scheduler.last_decision == "undo" and scheduler.get_last_action() == "undo" and scheduler.undone == [2]
    _train_epoch(model, optimizer, g)  # the retry can be undone too, back to the same start, LR cut again
    scheduler.step({"val_loss": math.nan})
    assert _bitwise_equal(_states(model, optimizer), start) and optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    scheduler.step({"val_loss": 0.1})
    assert scheduler.last_decision == 1.0 and scheduler.undos == 2


class UndoTwiceCut(UndoAbove):
    """Undoes as :class:`UndoAbove`, asking for two cuts (as the guard does after a complete collapse)."""

    name = "undo-twice-cut"

    def _act(self, metrics: EpochMetrics) -> float | Undo:
        return Undo(cuts=2) if super()._act(metrics) is UNDO else 1.0


def test_an_undo_with_two_cuts_restores_the_model_and_cuts_the_lr_twice() -> None:
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = PolicyScheduler(optimizer, UndoTwiceCut(limit=0.5), total_epochs=4, model=model)
    g = torch.Generator().manual_seed(0)
    start = _states(model, optimizer)
    _train_epoch(model, optimizer, g)
    scheduler.step({"val_loss": 2.0})
    assert _bitwise_equal(_states(model, optimizer), start)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4) and scheduler.get_last_lr() == [pytest.approx(1e-4)]
    assert scheduler.last_decision == "undo" and scheduler.undone == [1]


def test_schedule_free_is_restored_in_the_mode_it_was_in() -> None:
    schedulefree = pytest.importorskip("schedulefree")
    model = _mlp()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-2)
    scheduler = PolicyScheduler(optimizer, UndoAbove(limit=0.5), total_epochs=4, model=model)
    g = torch.Generator().manual_seed(0)
    optimizer.train()
    _train_epoch(model, optimizer, g)
    optimizer.eval()  # validation in eval mode, then the scheduler steps
    scheduler.step({"val_loss": 0.1})
    start = _states(model, optimizer)
    optimizer.train()
    _train_epoch(model, optimizer, g)
    optimizer.eval()
    scheduler.step({"val_loss": 2.0})
    assert optimizer.param_groups[0]["train_mode"] is False  # still in eval mode, as before the undo
    assert _bitwise_equal(_states(model, optimizer), start)
    optimizer.train()  # and training continues from the restored weights
    _train_epoch(model, optimizer, g)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_an_undoing_controller_without_model_is_refused_in_one_line() -> None:
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="pass model=model") as err:
        PolicyScheduler(optimizer, UndoAbove(), total_epochs=3)
    assert "\n" not in str(err.value)


def test_an_optional_undo_without_model_is_masked_with_one_warning() -> None:
    controller = OptionalUndo(limit=0.0)  # would undo at every step
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with pytest.warns(UserWarning, match="will never undo") as caught:
        scheduler = PolicyScheduler(optimizer, controller, total_epochs=3)
    assert len(caught) == 1 and controller.may_undo is False
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*undo")  # warned once, at construction
        for _ in range(3):
            scheduler.step({"val_loss": 5.0})
    assert scheduler.undos == 0 and scheduler.last_decision == 1.0 and optimizer.param_groups[0]["lr"] == 1e-2


class _FakeFSDP(torch.nn.Module):
    """Stands for torch FSDP here: the check reads class names, so it needs no process group."""


_FakeFSDP.__name__ = "FullyShardedDataParallel"


class DeepSpeedEngine(torch.nn.Module):
    pass


@pytest.mark.parametrize("wrap", [lambda m: torch.nn.Sequential(_FakeFSDP(), m), lambda m: DeepSpeedEngine()],
                         ids=["fsdp", "deepspeed"])
def test_a_sharded_model_is_refused_in_one_line(wrap: Any) -> None:
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="cannot undo here") as err:
        PolicyScheduler(optimizer, UndoAbove(), total_epochs=3, model=wrap(model))
    assert "\n" not in str(err.value)
    assert sharded_reason(model, [optimizer]) is None  # an ordinary model is not


def test_fsdp2_modules_are_detected() -> None:
    fsdp = pytest.importorskip("torch.distributed.fsdp")
    if not hasattr(fsdp, "FSDPModule"):
        pytest.skip("this torch has no FSDP2")
    sharded = torch.nn.Linear(2, 2)
    sharded.__class__ = type("FSDPLinear", (fsdp.FSDPModule, torch.nn.Linear), {})  # as fully_shard does
    assert "FSDP" in sharded_reason(torch.nn.Sequential(sharded))


def test_state_dict_round_trip_keeps_the_undo_history_and_the_snapshot(tmp_path: Any) -> None:
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = PolicyScheduler(optimizer, UndoAbove(limit=0.5), total_epochs=5, model=model)
    g = torch.Generator().manual_seed(0)
    _train_epoch(model, optimizer, g)
    scheduler.step({"val_loss": 2.0})  # undo: back to the start, LR 1e-3
    _train_epoch(model, optimizer, g)
    scheduler.step({"val_loss": 0.1})
    start = _states(model, optimizer)
    _train_epoch(model, optimizer, g)  # killed here, mid-interval: the checkpoint holds the interval's start
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, tmp_path / "ckpt.pt")
    checkpoint = torch.load(tmp_path / "ckpt.pt", weights_only=True)

    model2 = _mlp()
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    scheduler2 = PolicyScheduler(optimizer2, UndoAbove(limit=0.5), total_epochs=5, model=model2)
    model2.load_state_dict(checkpoint["model"])
    optimizer2.load_state_dict(checkpoint["optimizer"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    assert scheduler2.undos == 1 and scheduler2.undone == [1] and scheduler2.last_decision == 1.0
    scheduler2.step({"val_loss": 2.0})  # the resumed run undoes the interval it was killed in
    assert _bitwise_equal(_states(model2, optimizer2), start)
    assert scheduler2.undone == [1, 3] and optimizer2.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_snapshot_copies_tied_weights_once_and_refuses_a_second_restore() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    snapshot = IntervalSnapshot(model, [])
    snapshot.take()
    state = snapshot.state_dict()["model"]
    assert state["0.weight"] is state["1.weight"] and state["0.weight"].data_ptr() != model[0].weight.data_ptr()
    snapshot.restore()
    with pytest.raises(RuntimeError, match="nothing to restore"):
        snapshot.restore()


def test_decisions_per_epoch_reach_the_controller_and_bad_factors_are_refused() -> None:
    optimizer = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    scheduler = PolicyScheduler(optimizer, "rule", total_epochs=3, decisions_per_epoch=4)
    assert scheduler.controller.total_decisions == 12
    with pytest.raises(ValueError, match="undo_lr_factor"):
        PolicyScheduler(optimizer, "rule", total_epochs=3, undo_lr_factor=0.0)


def test_rule_guard_needs_model_and_rewinds_a_nan_interval() -> None:
    model = _mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="pass model=model"):
        PolicyScheduler(optimizer, "rule+guard", total_epochs=4)
    scheduler = PolicyScheduler(optimizer, "rule+guard", total_epochs=4, model=model)
    g = torch.Generator().manual_seed(0)
    _train_epoch(model, optimizer, g)
    scheduler.step({"train_loss": 0.5, "val_loss": 0.4})
    start = _states(model, optimizer)
    _train_epoch(model, optimizer, g)
    scheduler.step({"train_loss": math.nan, "val_loss": math.nan})
    assert scheduler.last_decision == "undo" and _bitwise_equal(_states(model, optimizer), start)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_rule_guard_in_a_plain_loop_rescues_a_collapse_when_given_the_collapse_evidence() -> None:
    """The loop passes collapse_evidence(logits, labels) with its losses (and the untrained model's spread once):
    `rule+guard` then sees the digits MLP collapse at LR 1 and rewinds it; plain `rule` stays collapsed."""
    from lrpilot.integrations.evidence import collapse_evidence

    def run(spec: str) -> tuple[PolicyScheduler, float]:
        model = _mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=1.0)
        scheduler = PolicyScheduler(optimizer, spec, total_epochs=8, model=model)
        data, g = _digits(), torch.Generator().manual_seed(0)
        with torch.no_grad():
            start = collapse_evidence(model(data.val.inputs), data.val.labels)["val_spread"]
        for _ in range(8):
            train_loss = _train_epoch(model, optimizer, g)
            with torch.no_grad():
                logits = model(data.val.inputs)
            val_loss, val_acc = _validate(model)
            scheduler.step({"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
                            "val_spread_start": start, **collapse_evidence(logits, data.val.labels)})
        return scheduler, _validate(model)[1]

    plain, plain_acc = run("rule")
    guarded, guarded_acc = run("rule+guard")
    assert plain_acc < 0.3 and guarded_acc > 0.8
    assert guarded.undos >= 1 and plain.undos == 0


def test_collapse_evidence_matches_the_training_sessions_definitions() -> None:
    from lrpilot.integrations.evidence import collapse_evidence
    from lrpilot.training import TrainingSession

    session = TrainingSession("digits-mlp", seed=0)
    session.run_epoch()
    measured = session.evaluate("val")
    with torch.no_grad():
        session.model.eval()
        logits = session.model(session.data.val.inputs)
    evidence = collapse_evidence(logits, session.data.val.labels)
    assert evidence["val_top_share"] == pytest.approx(measured["top_share"])
    assert evidence["val_majority_share"] == pytest.approx(measured["majority_share"])
    assert evidence["val_chance_loss"] == pytest.approx(measured["chance_loss"])
    assert evidence["val_spread"] == pytest.approx(measured["spread"], rel=1e-5)
    with pytest.raises(ValueError, match="examples"):
        collapse_evidence(logits[:, 0], session.data.val.labels)

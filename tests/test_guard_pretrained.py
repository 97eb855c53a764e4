"""``+guard`` on a model a run declares pretrained, deciding once per epoch: an epoch that predicts one class at
chance after moving the weights far (``EpochMetrics.weight_change``) is a collapse, even when its output spread is an
untrained model's. The numbers are MiniLM's first epochs (docs/controller.md, sessions 14 and 29)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lrpilot.controller import UNDO, from_spec
from lrpilot.controller.base import Undo
from lrpilot.controller.guard import WRECKED_WEIGHT_CHANGE, collapsed, wrecked
from lrpilot.metrics import EpochMetrics, weight_change
from lrpilot.training import TrainingSession, get_task, register_task
from lrpilot.training.digits import DIGITS_MLP

# the first epochs of held-out MiniLM runs per epoch, Adam (runs/s29; docs/controller.md, session 29)
MINILM = dict(val_majority_share=0.5117, val_chance_loss=0.6929)
# seed 5 at 1e-3: one class at chance, output spread 0.40 of the untrained model's (not below a quarter), moved 5.3%
DAMAGED = EpochMetrics(epoch=1, lr=1e-3, train_loss=0.7160, val_loss=0.6975, val_acc=0.488, val_top_share=1.0,
                       val_spread=0.00243, val_spread_start=0.00612, weight_change=0.0535, **MINILM)
# seed 0 at 1e-5: one class at chance too, but the weights barely moved; the plain runs end at 59% to 87%
NOT_YET = dataclasses.replace(DAMAGED, lr=1e-5, train_loss=0.6927, val_loss=0.6908, val_spread=0.00803,
                              val_spread_start=0.00565, weight_change=0.00056)


def guard(pretrained: bool, decisions_per_epoch: int = 1, spec: str = "rule+guard"):
    g = from_spec(spec)
    g.reset(DAMAGED.lr, 5, decisions_per_epoch, pretrained=pretrained)
    return g


def test_a_pretrained_models_epoch_that_moved_far_to_one_class_is_undone_with_one_cut() -> None:
    assert not collapsed(DAMAGED) and wrecked(DAMAGED)  # the spread sign alone lets it through
    assert guard(True).act(DAMAGED) == Undo(cuts=1)  # training loss 1.03x chance: not thrashed
    assert guard(True, spec="policy:default+guard").act(DAMAGED) is UNDO


@pytest.mark.parametrize("why, metrics, pretrained, per_epoch", [
    ("a too-small LR that has not moved the weights", NOT_YET, True, 1),
    ("a model trained from scratch", DAMAGED, False, 1),
    ("a quarter-epoch interval, where the spread sign sees the damage", DAMAGED, True, 4),
    ("an epoch that moved just under the threshold", dataclasses.replace(DAMAGED, weight_change=0.017), True, 1),
    ("an epoch that moved far but learned", dataclasses.replace(DAMAGED, val_top_share=0.7, val_loss=0.45), True, 1),
    ("a run that does not measure how far it moved", dataclasses.replace(DAMAGED, weight_change=None), True, 1),
])
def test_everything_else_is_left_to_the_inner_controller(why, metrics, pretrained, per_epoch) -> None:
    assert guard(pretrained, per_epoch).act(metrics) != UNDO, why


def test_the_threshold_sits_between_the_healthy_and_the_damaging_lr() -> None:
    assert 0.0058 < WRECKED_WEIGHT_CHANGE < 0.053  # MiniLM's first epoch at 1e-4 and at 1e-3 (session 14)
    assert wrecked(dataclasses.replace(DAMAGED, weight_change=WRECKED_WEIGHT_CHANGE))


@pytest.fixture()
def pretrained_digits() -> str:
    register_task(dataclasses.replace(DIGITS_MLP, name="test-guard-pretrained-digits", pretrained=True), overwrite=True)
    return "test-guard-pretrained-digits"


def test_sessions_that_can_undo_report_how_far_each_interval_moved_the_weights() -> None:
    session = TrainingSession(get_task("digits-mlp").with_overrides(lr=3e-3), seed=0, undo=True, interval=0.5)
    start = {name: p.detach().clone() for name, p in session.model.named_parameters()}
    metrics = session.run_interval()
    moved = torch.cat([(p.detach() - start[n]).flatten() for n, p in session.model.named_parameters()]).double().norm()
    size = torch.cat([v.flatten() for v in start.values()]).double().norm()
    assert metrics.weight_change == pytest.approx(float(moved / size), rel=1e-6) and metrics.weight_change > 0
    assert EpochMetrics.from_dict(json.loads(json.dumps(metrics.to_dict()))) == metrics
    plain = TrainingSession(get_task("digits-mlp").with_overrides(lr=3e-3), seed=0, interval=0.5).run_interval()
    assert plain.weight_change is None and "weight_change" not in plain.to_dict()  # records as before
    assert weight_change(session.model, {}) is None  # a start that lacks the parameters says nothing


def test_a_guarded_run_on_a_pretrained_task_hands_the_guard_its_weight_change(pretrained_digits: str) -> None:
    from lrpilot.experiments.run import RunConfig, run_training

    result = run_training(RunConfig(task=pretrained_digits, controller="rule+guard", lr=1e-3, epochs=2))
    assert all(m.weight_change > 0 for m in result.history)
    assert "undos" not in result.final  # a healthy fine-tune's epochs move far but learn: never undone


@pytest.mark.parametrize("pretrained", [True, False])
def test_a_deployed_scheduler_measures_the_move_itself_and_rewinds_a_wrecked_fine_tune(pretrained: bool) -> None:
    from lrpilot import PolicyScheduler

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = PolicyScheduler(optimizer, "rule+guard", total_epochs=5, model=model, pretrained=pretrained)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)  # an epoch that moved the weights by 10% of their norm ...
    optimizer.step()  # (no gradients: a no-op, in the order torch expects)
    evidence = {name: getattr(DAMAGED, name) for name in ("val_top_share", "val_majority_share", "val_chance_loss",
                                                           "val_spread", "val_spread_start")}
    scheduler.step({"train_loss": DAMAGED.train_loss, "val_loss": DAMAGED.val_loss, **evidence})  # ... to one class
    restored = all(torch.equal(p, start[n]) for n, p in model.named_parameters())
    assert (scheduler.undos, restored) == ((1, True) if pretrained else (0, False))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 if pretrained else 1e-3)


def test_weight_change_of_a_half_precision_model_is_measured_in_float32() -> None:
    model = torch.nn.Linear(64, 64).to(torch.bfloat16)
    start = {name: v.clone() for name, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(0.01 * model.weight)  # the weights move by 1% of their norm (the bias not at all)
    moved = (model.weight.detach().double() - start["weight"].double()).norm()
    expected = float(moved / torch.cat([v.double().flatten() for v in start.values()]).norm())
    assert 0.009 < expected < 0.011 and weight_change(model, start) == pytest.approx(expected, rel=1e-5)

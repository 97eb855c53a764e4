"""LR sequences of every built-in controller, spec strings, state round trips and non-finite metrics."""

import json
import math
import random

import pytest
import torch

from lrpilot.controller import Bold, Constant, Controller, Cosine, Plateau, Rule, Step, from_spec, list_controllers
from lrpilot.metrics import EpochMetrics

SPECS = ["constant", "step", "cosine", "plateau", "rule", "bold"]
GUARDED = [f"{spec}+guard" for spec in SPECS]
"""Every built-in controller wrapped in the guard (tests/test_guard.py covers what the guard does)."""


def drive(controller: Controller, values, initial_lr=1.0, total=None, metric="val_loss"):
    """Feed val losses (or another metric) and return the LR used in each epoch, plus the next one."""
    controller.reset(initial_lr, total or len(values))
    lr, lrs = initial_lr, [initial_lr]
    for epoch, value in enumerate(values, 1):
        kwargs = {"val_loss": value, "train_loss": 1.0}
        if metric == "val_acc":
            kwargs["val_acc"] = value
        lr *= controller.act(EpochMetrics(epoch=epoch, lr=lr, **kwargs))
        lrs.append(lr)
    return lrs


def test_constant_keeps_lr():
    assert drive(Constant(), [1.0, 2.0, float("nan")]) == [1.0, 1.0, 1.0, 1.0]


def test_step_matches_torch_steplr():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    expected = [0.3]
    for _ in range(10):
        opt.step()
        sched.step()
        expected.append(opt.param_groups[0]["lr"])
    got = drive(Step(step_size=3, gamma=0.5), [1.0] * 10, initial_lr=0.3)
    assert got == pytest.approx(expected, rel=1e-12)


def test_step_default_decays_every_third_of_budget():
    lrs = drive(Step(), [1.0] * 9, total=9)
    assert lrs == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])


def test_cosine_matches_torch_cosine_annealing():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.001)
    expected = [0.1]
    for _ in range(7):
        opt.step()
        sched.step()
        expected.append(opt.param_groups[0]["lr"])
    got = drive(Cosine(eta_min=0.001), [1.0] * 8, initial_lr=0.1)
    assert got[:8] == pytest.approx(expected, rel=1e-9)
    assert got[8] == got[7]  # nothing left to schedule after the last epoch


def torch_plateau_lrs(values, initial_lr=1.0, **kwargs):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=initial_lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    lrs = [initial_lr]
    for value in values:
        sched.step(value)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


PLATEAU_SETTINGS = [
    {},
    {"patience": 2},
    {"patience": 0, "factor": 0.5, "cooldown": 2},
    {"patience": 1, "threshold": 0.05, "threshold_mode": "abs"},
    {"mode": "max", "patience": 1, "factor": 0.3},
    {"patience": 0, "min_lr": 0.05},
    {"patience": 0, "factor": 0.5, "eps": 0.2},
]


@pytest.mark.parametrize("settings", PLATEAU_SETTINGS)
@pytest.mark.parametrize("seed", range(5))
def test_plateau_equals_torch_reduce_lr_on_plateau(settings, seed):
    rng = random.Random(seed)
    values = [rng.choice([rng.uniform(0, 2), 1.0, 0.5, float("nan")]) for _ in range(40)]
    ours = Plateau(metric="val_acc" if settings.get("mode") == "max" else "val_loss", **settings)
    got = drive(ours, values, metric="val_acc" if settings.get("mode") == "max" else "val_loss")
    assert got == pytest.approx(torch_plateau_lrs(values, **settings), rel=1e-12)


def test_plateau_on_a_hand_made_sequence():
    # patience 1: the third epoch without improvement on the best cuts the LR
    assert drive(Plateau(patience=1), [1.0, 0.9, 0.95, 0.96, 0.97]) == pytest.approx([1, 1, 1, 1, 0.1, 0.1])


def test_rule_cuts_whenever_improvement_is_below_one_percent():
    lrs = drive(Rule(), [1.0, 0.8, 0.795, 0.70, 0.699])
    assert lrs == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01])


def test_rule_watches_accuracy_in_max_mode():
    lrs = drive(Rule(metric="val_acc"), [0.5, 0.7, 0.702, 0.8], metric="val_acc")
    assert lrs == pytest.approx([1, 1, 1, 0.1, 0.1])


def test_rule_respects_min_lr_and_patience():
    assert drive(Rule(min_lr=0.05), [1.0, 1.0, 1.0, 1.0]) == pytest.approx([1, 1, 0.1, 0.05, 0.05])
    assert drive(Rule(patience=1), [1.0, 1.0, 1.0, 1.0]) == pytest.approx([1, 1, 1, 0.1, 0.1])


def test_bold_raises_on_improvement_and_halves_otherwise():
    lrs = drive(Bold(), [1.0, 0.9, 0.8, 0.85, 0.7])
    assert lrs == pytest.approx([1, 1, 1.5, 2.25, 1.125, 1.6875])


def test_bold_bounds_and_custom_factors():
    assert drive(Bold(up=2, down=0.25, max_lr=3.0), [3, 2, 1, 0.5]) == pytest.approx([1, 1, 2, 3, 3])
    assert drive(Bold(min_lr=0.4), [1, 2, 3, 4]) == pytest.approx([1, 1, 0.5, 0.4, 0.4])


@pytest.mark.parametrize("spec", SPECS)
def test_non_finite_metrics_never_give_a_non_finite_multiplier(spec):
    controller = from_spec(spec)
    lrs = drive(controller, [1.0, float("nan"), float("inf"), -float("inf"), float("nan")])
    assert all(math.isfinite(lr) and lr > 0 for lr in lrs)


def test_documented_non_finite_handling():
    # plateau/rule: a NaN is "no improvement" -> cut; bold: "worse" -> down
    assert drive(Rule(), [1.0, float("nan")])[-1] == pytest.approx(0.1)
    assert drive(Bold(), [1.0, float("nan")])[-1] == pytest.approx(0.5)
    assert drive(Constant(), [float("nan")])[-1] == 1.0


@pytest.mark.parametrize("spec", SPECS + GUARDED)
def test_state_dict_round_trip_continues_identically(spec):
    values = [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.86, 0.87, 0.7, 0.72]
    full = drive(from_spec(spec), values)
    first = from_spec(spec)
    part = drive(first, values[:5], total=len(values))
    state = json.loads(json.dumps(first.state_dict()))  # JSON-safe
    second = from_spec(spec)
    second.load_state_dict(state)
    lr = part[-1]
    for epoch, value in enumerate(values[5:], 6):
        lr *= second.act(EpochMetrics(epoch=epoch, lr=lr, train_loss=1.0, val_loss=value))
        part.append(lr)
    assert part == pytest.approx(full, rel=1e-12)


def test_state_of_another_controller_is_refused():
    state = from_spec("rule").state_dict()
    with pytest.raises(ValueError, match="rule"):
        from_spec("plateau").load_state_dict(state)


@pytest.mark.parametrize(
    "spec, canonical",
    [("plateau:patience=2", "plateau:patience=2"), ("step:gamma=0.5,step_size=3", "step:gamma=0.5,step_size=3"),
     (" rule : factor=0.5 ", "rule:factor=0.5"), ("bold:up=2.0", "bold:up=2.0"), ("cosine", "cosine"),
     ("plateau:patience=2+guard", "plateau:patience=2+guard"), ("rule : factor=0.5 +guard", "rule:factor=0.5+guard")],
)
def test_spec_strings_round_trip(spec, canonical):
    controller = from_spec(spec)
    assert controller.spec() == canonical
    assert from_spec(controller.spec()).spec() == canonical


@pytest.mark.parametrize(
    "spec, message",
    [("nope", "unknown controller 'nope'"), ("plateau:foo=1", "unknown parameter 'foo'"),
     ("plateau:patience=x", "patience"), ("plateau:patience", "key=value"), ("rule:factor=2", "factor"),
     ("plateau:mode=up", "mode"), ("bold:down=0", "down"), ("step:step_size=0", "step_size"),
     ("plateau:patience=1,patience=2", "twice"), ("ppo:", "policy:default"), ("policy:", "policy:default"),
     ("rule+gaurd", "suffix"), ("+guard", "needs a controller"), ("rule+guard+guard", "twice"),
     ("rule+guard:x=1", "no parameters")],
)
def test_bad_specs_raise_value_error_naming_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        from_spec(spec)


def test_act_before_reset_and_bad_reset():
    with pytest.raises(RuntimeError, match="reset"):
        Constant().act(EpochMetrics(epoch=1, lr=1.0, train_loss=1.0))
    with pytest.raises(ValueError, match="initial_lr"):
        Constant().reset(-1.0, 5)
    with pytest.raises(ValueError, match="total_epochs"):
        Constant().reset(1.0, 0)


def test_list_controllers_names_every_builtin():
    assert set(SPECS) | {"ppo"} <= set(list_controllers())

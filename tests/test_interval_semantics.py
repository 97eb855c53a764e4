"""What the built-in controllers' parameters mean with several decisions per epoch (docs/controller.md,
"Control intervals"): every parameter keeps its meaning in epochs; with one decision per epoch
every controller decides as before."""

import json
import math
import random

import pytest
import torch

from lrpilot.controller import Bold, Controller, Cosine, Plateau, Rule, Step, from_spec
from lrpilot.metrics import EpochMetrics

SPECS = ["constant", "step", "step:step_size=2,gamma=0.5", "cosine", "cosine:eta_min=0.01", "plateau",
         "plateau:patience=1,cooldown=1", "rule", "rule:patience=1", "bold", "bold-features", "bold-anneal-streakup"]


def drive(controller: Controller, values, k=1, epochs=None, initial_lr=1.0, reset=True):
    """Feed one val loss per decision; return the LR in force after each decision (index 0: the start)."""
    if reset:
        controller.reset(initial_lr, epochs or math.ceil(len(values) / k), k)
    lr, lrs = initial_lr, [initial_lr]
    for i, value in enumerate(values, 1):
        lr *= controller.act(EpochMetrics(epoch=i, lr=lr, train_loss=1.0, val_loss=value))
        lrs.append(lr)
    return lrs


def epoch_ends(lrs, k):
    """The LR in force at the start and after each epoch's last decision."""
    return lrs[::k]


def random_losses(n, seed):
    rng = random.Random(seed)
    value, out = 2.0, []
    for _ in range(n):
        value *= math.exp(rng.gauss(-0.03, 0.05))
        out.append(value)
    return out


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("seed", range(3))
def test_one_decision_per_epoch_decides_as_before(spec, seed):
    """reset(..., decisions_per_epoch=1) is the old two-argument reset, decision for decision."""
    values = random_losses(12, seed)
    old, new = from_spec(spec), from_spec(spec)
    old.reset(1e-3, 12)
    assert drive(old, values, initial_lr=1e-3, reset=False) == drive(new, values, k=1, epochs=12, initial_lr=1e-3)
    assert "decisions_per_epoch" not in new.state_dict()  # per-epoch states are those of earlier versions


def test_cosine_reaches_the_per_epoch_lr_at_every_epoch_end():
    per_epoch = drive(Cosine(eta_min=0.01), [1.0] * 6, k=1, epochs=6, initial_lr=0.1)
    quarter = drive(Cosine(eta_min=0.01), [1.0] * 24, k=4, epochs=6, initial_lr=0.1)
    # the last decision of the budget schedules nothing (x1), at any interval; before it, every epoch ends alike
    assert epoch_ends(quarter, 4)[:-1] == pytest.approx(per_epoch[:-1], rel=1e-12)
    assert quarter[1] < quarter[0]  # it anneals within the first epoch, not in steps


def test_cosine_per_interval_is_torch_cosine_stepped_every_interval():
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12, eta_min=0.001)
    expected = [0.1]
    for _ in range(11):
        opt.step()
        sched.step()
        expected.append(opt.param_groups[0]["lr"])
    got = drive(Cosine(eta_min=0.001), [1.0] * 12, k=4, epochs=3, initial_lr=0.1)
    assert got[:12] == pytest.approx(expected, rel=1e-12)
    assert got[12] == got[11]  # after the last decision there is nothing left to schedule


@pytest.mark.parametrize("step_size, epochs", [(2, 6), (None, 9)])
def test_step_cuts_at_the_same_epochs(step_size, epochs):
    per_epoch = drive(Step(step_size=step_size), [1.0] * epochs, k=1)
    quarter = drive(Step(step_size=step_size), [1.0] * epochs * 4, k=4)
    assert epoch_ends(quarter, 4) == pytest.approx(per_epoch, rel=1e-12)
    size = step_size or epochs // 3
    cuts = [i for i in range(1, len(quarter)) if quarter[i] != quarter[i - 1]]
    assert cuts == [4 * size * n for n in range(1, epochs // size + 1)]  # only at the decision ending the epoch


def test_rule_cuts_only_after_a_whole_epoch_without_improvement():
    values = [1.0] + [1.0] * 8  # the first decision sets the best; then nothing improves
    lrs = drive(Rule(), values, k=4, epochs=5)
    assert lrs[1:5] == [1.0] * 4  # three bad intervals are less than an epoch
    assert lrs[5] == pytest.approx(0.1)  # the fourth bad one completes an epoch: cut
    assert lrs[6:9] == pytest.approx([0.1] * 3) and lrs[9] == pytest.approx(0.01)  # and again a whole epoch later


def test_rule_lets_slow_progress_add_up_across_intervals():
    """0.4% per interval is 1.6% per epoch: a per-epoch rule never cuts, and neither does k = 4."""
    per_interval = [0.996 ** i for i in range(20)]
    assert drive(Rule(), per_interval, k=4, epochs=5) == [1.0] * 21
    assert drive(Rule(), per_interval[::4], k=1, epochs=5) == [1.0] * 6


def test_rule_an_improvement_inside_the_epoch_resets_the_count():
    values = [1.0, 1.0, 1.0, 1.0, 0.98, 0.98, 0.98, 0.98, 0.98]
    lrs = drive(Rule(), values, k=4, epochs=3)
    assert lrs[:9] == [1.0] * 9 and lrs[9] == pytest.approx(0.1)


def test_plateau_patience_and_cooldown_count_epochs():
    plateau = Plateau(patience=1, cooldown=1)
    lrs = drive(plateau, [1.0] * 13, k=2, epochs=7)
    cuts = [i for i in range(1, len(lrs)) if lrs[i] < lrs[i - 1]]
    # (patience + 1) * k = 4 bad decisions after the first: decision 5; then the cooldown (2
    # decisions) counts none, and 4 more bad ones follow: decision 11
    assert cuts == [5, 11]
    per_epoch = drive(Plateau(patience=1, cooldown=1), [1.0] * 7, k=1)
    assert [i for i in range(1, 8) if per_epoch[i] < per_epoch[i - 1]] == [3, 6]  # epochs 3 and 6: k = 2 cuts
    # at decisions 5 and 11, i.e. in the same epochs (the first decision of epoch 1 sets the best)


@pytest.mark.parametrize("k", [2, 4, 5])
def test_bold_rates_are_per_epoch(k):
    improving = [1.0 - 0.01 * i for i in range(k + 1)]
    lrs = drive(Bold(), improving, k=k, epochs=3)
    assert lrs[1] == 1.0  # the first decision has nothing to compare with
    assert lrs[k + 1] == pytest.approx(1.5)  # k improving decisions: x up in total
    worsening = [1.0 + 0.01 * i for i in range(k + 1)]
    assert drive(Bold(up=2.0, down=0.25), worsening, k=k, epochs=3)[k + 1] == pytest.approx(0.25)


def test_bold_compares_with_the_previous_decision():
    lrs = drive(Bold(), [1.0, 0.9, 0.95, 0.94], k=4, epochs=1)
    up, down = 1.5 ** 0.25, 0.5 ** 0.25
    assert lrs == pytest.approx([1.0, 1.0, up, up * down, up * down * up])


def test_teachers_act_per_decision():
    """A teacher is imitated per observation: x1.5 after every improving interval, as per epoch."""
    values = [1.0 - 0.01 * i for i in range(8)]
    lrs = drive(from_spec("bold-features"), values, k=4, epochs=10)
    assert lrs[1] == 1.0 and lrs[2:] == pytest.approx([1.5 ** i for i in range(1, 8)])


def test_teacher_anneals_at_the_same_fraction_of_the_budget():
    """bold-anneal's tail starts at 70% of the budget whatever the interval (progress counts decisions):
    at the first decision past 70% (``progress`` is float32, so exactly 70% reads as just below)."""
    def first_anneal(k, epochs):
        values = [1.0 - 0.001 * i for i in range(k * epochs)]
        lrs = drive(from_spec("bold-anneal"), values, k=k, epochs=epochs)
        ratios = [lrs[i] / lrs[i - 1] for i in range(2, len(lrs))]  # decision i's ratio is ratios[i - 2]
        start = next(i for i, r in enumerate(ratios) if r == pytest.approx(0.5)) + 2
        assert ratios[:start - 2] == pytest.approx([1.5] * (start - 2))
        assert ratios[start - 2:] == pytest.approx([0.5] * (len(ratios) - start + 2))
        return start / (k * epochs)

    assert first_anneal(1, 10) == pytest.approx(0.8)
    assert first_anneal(4, 10) == pytest.approx(0.725)


def test_constant_keeps_the_lr_at_any_interval():
    assert drive(from_spec("constant"), random_losses(12, 0), k=4, epochs=3) == [1.0] * 13


@pytest.mark.parametrize("spec", SPECS)
def test_state_round_trip_keeps_the_interval(spec):
    values = random_losses(16, 1)
    full = drive(from_spec(spec), values, k=4, epochs=4)
    first = from_spec(spec)
    part = drive(first, values[:7], k=4, epochs=4)
    state = json.loads(json.dumps(first.state_dict()))
    assert state["decisions_per_epoch"] == 4
    second = from_spec(spec)
    second.load_state_dict(state)
    assert second.decisions_per_epoch == 4 and second.total_decisions == 16
    lr = part[-1]
    for i, value in enumerate(values[7:], 8):
        lr *= second.act(EpochMetrics(epoch=i, lr=lr, train_loss=1.0, val_loss=value))
        part.append(lr)
    assert part == pytest.approx(full, rel=1e-12)

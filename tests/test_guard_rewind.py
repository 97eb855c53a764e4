"""Deeper undos: ``Undo(intervals=k)`` rewinds the last k intervals in a ``TrainingSession`` bit for bit,
and ``X+guard`` asks for one when a bad interval follows intervals let through that never learned (a
model ruined before the evidence showed), rolling its inner controller back with the model."""

from __future__ import annotations

import copy
import json
import math

import pytest
from fixtures import same_state

from lrpilot.controller import UNDO, Controller, Guard, from_spec, register_controller
from lrpilot.controller.base import Undo
from lrpilot.experiments.run import RunConfig, run_training
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession

CHANCE = math.log(2)


def unlearned(epoch: int, lr: float = 1e-3) -> EpochMetrics:
    """Healthy by the guard's tests (the output still varies with the input) but no better than always
    predicting the majority class: what a pretrained model ruined in its first quarter epoch looks like."""
    return EpochMetrics(epoch=epoch, lr=lr, train_loss=0.72, val_loss=0.74, val_acc=0.53, val_top_share=1.0,
                        val_majority_share=0.53, val_chance_loss=CHANCE, val_spread=0.0076, val_spread_start=0.0062)


def learning(epoch: int, lr: float = 1e-3) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, lr=lr, train_loss=0.4, val_loss=0.45, val_acc=0.8, val_top_share=0.55,
                        val_majority_share=0.53, val_chance_loss=CHANCE, val_spread=0.01, val_spread_start=0.0062)


def collapsed(epoch: int, lr: float = 1e-3) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, lr=lr, train_loss=0.72, val_loss=0.6934, val_acc=0.47, val_top_share=1.0,
                        val_majority_share=0.53, val_chance_loss=CHANCE, val_spread=0.0005, val_spread_start=0.0062)


def test_undo_values_are_cached_and_checked() -> None:
    assert Undo(1) is UNDO and Undo() is UNDO and Undo(2) is Undo(2) and Undo(2).intervals == 2
    assert copy.deepcopy(Undo(3)) is Undo(3) and repr(Undo(2)) == "Undo(intervals=2)" and repr(UNDO) == "UNDO"
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="intervals must be an integer >= 1"):
            Undo(bad)


def test_a_deeper_undo_than_the_driver_allows_is_an_error() -> None:
    class Deep(Controller):
        name = "deep"
        may_undo = True

        def _act(self, metrics):  # noqa: ANN001, ANN202
            return Undo(2)

    c = Deep()
    c.reset(1e-3, 5)
    with pytest.raises(RuntimeError, match="allows rewinding 1 interval"):
        c.act(learning(1))


# -- the guard ---------------------------------------------------------------------------------
def _guard(inner: str = "plateau:patience=1", allow: int | None = 8, **kw) -> Guard:
    g = Guard(from_spec(inner), **kw)
    g.reset(1e-3, 10, 4)
    if allow is not None:
        g.allow_rewind(allow)
    return g


def test_a_collapse_after_intervals_that_never_learned_rewinds_to_the_start_and_rolls_the_inner_back() -> None:
    g = _guard()
    fresh = g.inner.state_dict()
    assert g.undo_reach == 1
    assert g.act(unlearned(1)) == 1.0  # let through: not a collapse
    assert g.undo_reach == 2 and g.unproven == 1 and g.inner.state_dict() != fresh
    assert g.act(collapsed(2)) is Undo(2)  # the collapse and the unlearned interval before it
    assert g.inner.state_dict() == fresh and g.unproven == 0 and g.undo_reach == 1 and g.undos == 1


def test_after_an_interval_that_learned_the_guard_rewinds_one_interval() -> None:
    g = _guard()
    g.act(unlearned(1))
    g.act(learning(2))
    assert g.undo_reach == 1 and g.unproven == 0
    seen = g.inner.state_dict()
    assert g.act(collapsed(3)) is UNDO and g.inner.state_dict() == seen


def test_the_reach_is_capped_by_max_rewind_and_by_the_driver() -> None:
    g = _guard(max_rewind=3)
    for epoch in range(1, 7):
        g.act(unlearned(epoch))
    assert g.unproven == 6 and g.undo_reach == 3 and len(g._rollback) == 2
    assert g.act(collapsed(7)) is Undo(3)
    assert g.unproven == 4 and g.undo_reach == 1  # the older unlearned intervals were out of reach, and stay so
    g.act(unlearned(8, lr=1e-4))
    assert g.undo_reach == 2
    driver_keeps_one = _guard(allow=None)  # the deployed forms never allow more than one interval
    for epoch in range(1, 4):
        driver_keeps_one.act(unlearned(epoch))
    assert driver_keeps_one.undo_reach == 1 and driver_keeps_one.act(collapsed(4)) is UNDO
    assert _guard(allow=2).rewind_limit == 2 and _guard(allow=100).rewind_limit == 4
    with pytest.raises(ValueError, match="max_rewind must be an integer >= 1"):
        Guard(from_spec("rule"), max_rewind=0)


def test_a_retry_that_collapses_again_is_rewound_one_interval_at_a_time() -> None:
    g = _guard()
    g.act(unlearned(1))
    assert g.act(collapsed(2)) is Undo(2)
    assert g.act(collapsed(3, lr=1e-4)) is UNDO  # nothing let through since: one interval
    assert g.scale == pytest.approx(0.1) and g.undos_in_row == 2


def test_state_round_trip_with_rollback_decides_identically() -> None:
    g = _guard("bold")
    g.act(learning(1))
    assert g.act(unlearned(2)) != UNDO and g.act(unlearned(3)) != UNDO
    state = json.loads(json.dumps(g.state_dict()))  # JSON-safe, as checkpoints need
    again = _guard("bold")
    again.load_state_dict(state)
    assert again.undo_reach == g.undo_reach == 3
    assert again.act(collapsed(4)) is g.act(collapsed(4)) is Undo(3)
    assert again.state_dict() == g.state_dict()
    old = {k: v for k, v in state.items() if k not in ("unproven", "rollback")}  # saved before deeper undos
    older = _guard("bold")
    older.load_state_dict(old)
    assert older.unproven == 0 and older.undo_reach == 1


# -- the session ---------------------------------------------------------------------------------
def _session(**kw) -> TrainingSession:
    return TrainingSession("digits-mlp", seed=2, device="cpu", undo=True, epoch_examples=384, **kw)


def _weights(session: TrainingSession) -> dict:
    return copy.deepcopy({k: session.state_dict()[k] for k in ("model", "optimizer", "data_generator", "torch_rng")})


def test_undo_two_intervals_restores_the_start_of_the_first_and_retries_at_the_last_lr_cut() -> None:
    session = _session(interval=0.5)
    start = _weights(session)
    session.undo_reach = 2
    first = session.run_interval()
    session.scale_lr(3.0)
    session.run_interval()
    assert session.undo_depth == 2
    session.undo(lr_factor=0.1, intervals=2)
    restored = _weights(session)
    for group in restored["optimizer"]["param_groups"]:
        group["lr"] = first.lr  # everything but the LR is as it was before the first interval
    assert same_state(restored, start)
    assert session.lr == pytest.approx(first.lr * 3.0 * 0.1)  # the last interval's LR, cut
    assert [m.undone for m in session.history] == [True, True] and session.epoch == 2  # the budget stays spent
    retry = session.run_interval()
    fresh = _session(interval=0.5)  # the same first interval, run at the retry's LR
    fresh.scale_lr(0.3)
    expected = fresh.run_interval()
    assert (retry.train_loss, retry.val_loss, retry.val_acc) == (expected.train_loss, expected.val_loss, expected.val_acc)
    assert same_state(_weights(session)["model"], _weights(fresh)["model"])


def test_the_session_keeps_only_the_interval_starts_the_reach_asks_for() -> None:
    session = _session()
    for _ in range(3):
        session.run_epoch()
    assert session.undo_depth == 1  # the default reach
    with pytest.raises(ValueError, match="from 1 to 1") as err:
        session.undo(intervals=2)
    assert "\n" not in str(err.value)
    session.undo_reach = 3
    for _ in range(3):
        session.run_epoch()
    assert session.undo_depth == 3
    session.undo_reach = 1
    session.run_epoch()
    assert session.undo_depth == 1


def test_deeper_snapshots_survive_a_restart() -> None:
    session = _session()
    session.undo_reach = 2
    session.run_epoch()
    session.run_epoch()
    state = session.state_dict()
    assert len(state["undo_snapshots_before"]) == 1
    resumed = _session()
    resumed.load_state_dict(copy.deepcopy(state))
    assert resumed.undo_depth == 2
    for s in (session, resumed):
        s.undo(intervals=2)
        s.run_epoch()
    assert same_state(_weights(session), _weights(resumed))


# -- a run ---------------------------------------------------------------------------------------
class UndoTwoAtThird(Controller):
    """Test controller: keep the LR, and after the third epoch undo it and the second (once)."""

    name = "undo-two-at-third"
    may_undo = True
    _state_keys = ("done",)

    def allow_rewind(self, intervals: int) -> None:
        super().allow_rewind(intervals)
        self.rewind_limit = min(intervals, 2)

    @property
    def undo_reach(self) -> int:
        return self.rewind_limit

    def _reset(self) -> None:
        self.done = False

    def _act(self, metrics):  # noqa: ANN001, ANN202
        if self.epochs_seen == 3 and not self.done:
            self.done = True
            return Undo(2)
        return 1.0


class TenthAfterFirst(Controller):
    """Test controller: the LR x0.1 after the first epoch, then kept."""

    name = "tenth-after-first"

    def _act(self, metrics):  # noqa: ANN001, ANN202
        return 0.1 if self.epochs_seen == 1 else 1.0


register_controller(UndoTwoAtThird.name, UndoTwoAtThird)
register_controller(TenthAfterFirst.name, TenthAfterFirst)


def test_a_run_that_undoes_two_epochs_ends_as_the_run_that_cut_the_lr_after_the_first(tmp_path) -> None:
    run = dict(task="digits-mlp", seed=1, lr=3e-3, device="cpu", task_options={"width": 16})
    deep = run_training(RunConfig(controller="undo-two-at-third", epochs=5, **run), tmp_path / "deep")
    assert [m.undone for m in deep.history] == [False, True, True, False, False] and deep.final["undos"] == 2
    same = run_training(RunConfig(controller="tenth-after-first", epochs=3, **run))
    # epochs 4 and 5 retry epochs 2 and 3 from the same weights, batches and LR (x0.1)
    assert [m.val_loss for m in deep.history[3:]] == [m.val_loss for m in same.history[1:]]
    assert (deep.final["test_acc"], deep.final["test_loss"], deep.final["final_lr"]) == \
        (same.final["test_acc"], same.final["test_loss"], same.final["final_lr"])


# -- the raise ceiling after an undo ----------------------------------------------------------------
class _Raiser(Controller):
    """Triples the LR at every decision (what a controller that climbs back looks like)."""

    name = "test-raiser"

    def _act(self, metrics):  # noqa: ANN001, ANN202
        return 3.0


def test_after_an_undo_the_guard_stops_raises_below_the_lr_that_collapsed() -> None:
    g = Guard(_Raiser())
    g.reset(1e-3, 10, 4)
    assert g.act(learning(1, lr=1e-3)) == 3.0 and g.ceiling is None  # no undo yet: raises pass
    assert g.act(collapsed(2, lr=3e-3)) is UNDO and g.ceiling == 3e-3
    lr = 3e-4  # the driver's retry at 0.1x
    lrs = []
    for epoch in range(3, 9):
        lr *= g.act(learning(epoch, lr=lr))
        lrs.append(lr)
    assert lrs[0] == pytest.approx(9e-4)  # 3x still fits under the ceiling, 0.32 x 3e-3
    assert max(lrs) == pytest.approx(3e-3 * 10 ** -0.5) and lrs[-1] == lrs[-2]  # then held there, never cut
    assert g.act(collapsed(9, lr=lr)) is UNDO and g.ceiling == pytest.approx(lr)  # a lower bad LR lowers it
    g.act(learning(10, lr=lr / 10))
    assert g.act(collapsed(11, lr=5e-3)) is UNDO and g.ceiling == pytest.approx(lr)  # a higher one keeps it


def test_the_ceiling_never_cuts_and_lets_cuts_through() -> None:
    g = Guard(from_spec("step:step_size=1,gamma=0.5"))
    g.reset(1e-3, 10, 1)
    g.act(collapsed(1, lr=1e-3))
    assert g.act(learning(2, lr=5e-3)) == 0.5  # above the ceiling (a mild retry cut), a cut still passes
    g2 = Guard(_Raiser())
    g2.reset(1e-3, 10, 1)
    g2.act(collapsed(1, lr=1e-3))
    assert g2.act(learning(2, lr=5e-4)) == 1.0  # above the ceiling: held, not cut


def test_the_ceiling_survives_state_dict_and_old_states_load_without_it() -> None:
    g = Guard(_Raiser())
    g.reset(1e-3, 10, 4)
    g.act(collapsed(1, lr=1e-3))
    state = json.loads(json.dumps(g.state_dict()))
    h = Guard(_Raiser())
    h.load_state_dict(state)
    assert h.ceiling == 1e-3 and h.act(learning(2, lr=2e-4)) == pytest.approx(10 ** -0.5 / 0.2)
    old = {k: v for k, v in state.items() if k != "ceiling"}
    h.load_state_dict(old)
    assert h.ceiling is None and h.act(learning(2, lr=2e-4)) == 3.0

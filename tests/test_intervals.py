"""Control intervals shorter than an epoch: where the boundaries fall, what a run reports at each, that
one-epoch intervals are the per-epoch run exactly, validation subsets, undo mid-epoch, and resuming."""

from __future__ import annotations

import math

import pytest
import torch
from fixtures import same_state

from lrpilot.experiments.run import RunConfig, run_training
from lrpilot.training import TrainingSession
from lrpilot.training.intervals import Interval

SMALL = {"width": 16}


def _without_seconds(history):
    return [{k: v for k, v in m.to_dict().items() if k != "seconds"} for m in history]


@pytest.mark.parametrize(("text", "batches", "bounds"), [
    ("0.25", 17, [4, 8, 12, 17]),  # lengths differ by at most one batch
    ("0.3", 10, [3, 6, 10]),  # 0.3 is rounded to 1/3
    ("1", 17, [17]),
    ("5steps", 17, [5, 10, 15, 17]),  # the last interval is shorter
    ("0.1", 3, [1, 2, 3]),  # never more intervals than batches
])
def test_interval_boundaries_fall_on_batches_as_evenly_as_the_count_allows(text, batches, bounds) -> None:
    interval = Interval.parse(text)
    assert interval.boundaries(batches) == bounds
    assert interval.per_epoch(batches) == len(bounds)


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.25", "abc", "0steps", "nan"])
def test_a_bad_interval_is_a_one_line_error(bad) -> None:
    with pytest.raises(ValueError) as err:
        Interval.parse(bad)
    assert "\n" not in str(err.value) and "interval" in str(err.value)


def test_interval_runs_report_every_quarter_epoch_and_see_the_batches_of_a_whole_epoch() -> None:
    per_epoch = TrainingSession("digits-mlp", seed=3)
    quarters = TrainingSession("digits-mlp", seed=3, interval=0.25)
    assert quarters.intervals_per_epoch == 4 and quarters.total_intervals(2) == 8
    records = []
    for _ in range(2):
        whole = per_epoch.run_epoch()
        records += [quarters.run_interval() for _ in range(4)]
        # at a constant LR the quarters are the same training: same weights, so same validation at the epoch's end
        assert records[-1].val_loss == whole.val_loss and records[-1].val_acc == whole.val_acc
    assert [m.epoch for m in records] == list(range(1, 9))
    assert [m.elapsed_epochs for m in records] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert whole.elapsed_epochs is None  # per-epoch records are as before
    assert same_state(per_epoch.model.state_dict(), quarters.model.state_dict())
    with pytest.raises(RuntimeError, match="run_interval"):
        quarters.run_epoch()


def test_interval_one_gives_exactly_the_per_epoch_runs_metrics() -> None:
    base = dict(task="digits-mlp", controller="bold", seed=1, epochs=3, device="cpu", task_options=SMALL)
    plain = run_training(RunConfig(**base))
    one = run_training(RunConfig(**base, interval="1"))
    assert _without_seconds(one.history) == _without_seconds(plain.history)
    assert one.final["test_acc"] == plain.final["test_acc"] and one.final["epochs_run"] == 3


def test_a_validation_subset_is_the_same_examples_for_every_interval_and_seed() -> None:
    a = TrainingSession("digits-mlp", seed=0, interval=0.5, val_subset=90)
    b = TrainingSession("digits-mlp", seed=7, val_subset=90)
    full = TrainingSession("digits-mlp", seed=0)
    assert len(a.data.val) == 90 and torch.equal(a.data.val.labels, b.data.val.labels)
    assert len(a.data.test) == len(full.data.test)  # the test split stays whole
    kept = {tuple(row.tolist()) for row in a.data.val.inputs}
    assert kept <= {tuple(row.tolist()) for row in full.data.val.inputs}
    m = a.run_interval()
    assert m.val_acc is not None and abs(m.val_acc * 90 - round(m.val_acc * 90)) < 1e-9  # measured on 90 examples
    with pytest.raises(ValueError, match="val_subset"):
        TrainingSession("digits-mlp", val_subset=0)


def test_an_undo_mid_epoch_restores_everything_and_the_retry_sees_the_same_batches_at_a_tenth_of_the_lr() -> None:
    run = TrainingSession("digits-cnn", seed=2, interval=0.25, undo=True)
    twin = TrainingSession("digits-cnn", seed=2, interval=0.25)
    run.run_interval()
    twin.run_interval()
    before = run._take_snapshot()
    run.run_interval()  # interval 2, then undone
    run.undo()
    assert same_state(run._training_state()["model"], before["model"])
    restored = run._training_state()
    restored["optimizer"]["param_groups"][0]["lr"] *= 10  # undo cut the LR x0.1; everything else is as before
    assert same_state(restored["optimizer"], before["optimizer"])
    assert torch.equal(restored["data_generator"], before["data_generator"])
    assert torch.equal(restored["torch_rng"], before["torch_rng"]) and torch.equal(restored["epoch_order"],
                                                                                    before["epoch_order"])
    assert run.history[-1].undone and run.epoch == 2  # the undone interval still counts
    twin.scale_lr(0.1)
    retry, expected = run.run_interval(), twin.run_interval()
    assert retry.epoch == 3 and retry.elapsed_epochs == 0.75
    assert (retry.train_loss, retry.val_loss, retry.lr) == (expected.train_loss, expected.val_loss, expected.lr)
    for _ in range(2):  # the rest of the epoch and the next one stay in step
        assert run.run_interval().val_loss == twin.run_interval().val_loss


def test_an_interval_run_interrupted_mid_epoch_resumes_to_the_same_result(tmp_path) -> None:
    config = RunConfig(task="digits-mlp", controller="bold", seed=0, epochs=2, device="cpu", interval="0.25",
                       val_subset=120, task_options=SMALL)
    whole = run_training(config)

    class Stop(Exception):
        pass

    def stop_mid_epoch(metrics) -> None:
        if metrics.epoch == 6:
            raise Stop  # after interval 5's checkpoint: mid-way through epoch 2

    with pytest.raises(Stop):
        run_training(config, tmp_path, on_epoch=stop_mid_epoch)
    resumed = run_training(config, tmp_path)
    assert _without_seconds(resumed.history) == _without_seconds(whole.history)
    assert len(whole.history) == 8 and whole.final["epochs_run"] == 2 and whole.final["intervals_run"] == 8
    assert resumed.final["test_acc"] == whole.final["test_acc"]


def test_a_checkpoint_of_another_interval_is_refused_in_one_line() -> None:
    state = TrainingSession("digits-mlp", seed=0, interval=0.5).state_dict()
    with pytest.raises(ValueError, match="interval") as err:
        TrainingSession("digits-mlp", seed=0).load_state_dict(state)
    assert "\n" not in str(err.value)


def test_collapse_evidence_is_reported_with_every_validation() -> None:
    session = TrainingSession("digits-mlp", seed=0)
    m = session.run_epoch()
    labels = session.data.val.labels
    counts = torch.bincount(labels, minlength=10).double()
    p = counts / counts.sum()
    assert m.val_majority_share == pytest.approx(float(p.max()))
    assert m.val_chance_loss == pytest.approx(float(-(p[p > 0] * p[p > 0].log()).sum()))
    assert 0.1 <= m.val_top_share <= 1.0 and m.val_spread > 0.05  # a model that discriminates
    with torch.no_grad():  # a model whose output ignores its input: everything in one class, no spread
        for p_ in session.model.parameters():
            p_.zero_()
        session.model[-1].bias[3] = 5.0
    collapsed = session.evaluate("val")
    assert collapsed["top_share"] == 1.0 and collapsed["spread"] == pytest.approx(0.0, abs=1e-9)
    assert math.isclose(collapsed["chance_loss"], m.val_chance_loss)


def test_no_undo_keeps_no_snapshots_masks_optional_undo_and_refuses_a_guard(tmp_path) -> None:
    import subprocess
    import sys

    base = dict(task="digits-mlp", seed=0, epochs=2, device="cpu", task_options=SMALL, lr=30.0)
    guarded = run_training(RunConfig(controller="rule+guard", **base))
    assert guarded.final.get("undos", 0) >= 1
    assert RunConfig(controller="rule", **base).to_dict() == RunConfig(controller="rule", undo=True, **base).to_dict()
    with pytest.raises(ValueError, match="undoes"):
        run_training(RunConfig(controller="rule+guard", undo=False, **base))
    done = subprocess.run([sys.executable, "-m", "lrpilot", "train", "--task", "digits-mlp", "--controller",
                           "rule+guard", "--no-undo", "--epochs", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "undoes" in done.stderr


def test_the_divergence_growth_reference_is_the_first_interval_not_undone() -> None:
    from lrpilot.metrics import EpochMetrics
    from lrpilot.training.divergence import DivergenceRule, first_val_loss

    undone = EpochMetrics(epoch=1, lr=1.0, train_loss=math.nan, val_loss=math.nan, diverged=True, undone=True)
    retry = EpochMetrics(epoch=2, lr=0.1, train_loss=0.9, val_loss=0.8)
    assert first_val_loss([undone, retry]) == 0.8 and first_val_loss([undone]) is None
    rule = DivergenceRule(growth_factor=10)  # with the NaN of the undone interval as reference it would never fire
    assert rule.diverged(9.0, 10, finite=True, first_val_loss=first_val_loss([undone, retry]))

"""The validation set of controller training (issue #16): disjoint from the held-out grid and from the
training distribution, scored by regret against a per-task oracle LR."""

from __future__ import annotations

import pytest

from lrpilot.controller import from_spec
from lrpilot.training.task import get_task
from lrpilot.learn.validation import ORACLE_LRS, VALIDATION_DATA_SEEDS, VALIDATION_TASKS, ValidationSet


def test_the_validation_set_shares_no_data_with_the_heldout_grid_or_the_training_distribution() -> None:
    from lrpilot.commands.evaluate_controller import HELDOUT_TASKS
    from lrpilot.training.distribution import TaskDistribution

    names = {task for task, _ in VALIDATION_TASKS}
    assert not names & set(HELDOUT_TASKS) and "iris-mlp" in names
    assert min(VALIDATION_DATA_SEEDS) >= TaskDistribution().data_seeds  # training draws data seeds below
    synthetic = [options for task, options in VALIDATION_TASKS if task != "iris-mlp"]
    assert sorted(o["data_seed"] for o in synthetic) == sorted(VALIDATION_DATA_SEEDS)


def test_regret_is_measured_against_the_best_constant_lr() -> None:
    small = ValidationSet(tasks=VALIDATION_TASKS[1:2], budgets=(4,), lrs=ORACLE_LRS, seeds=(0,))
    oracle = small.oracle()
    assert list(oracle) == [("teacher-mlp", 4, None, 0)] and 0.3 < oracle[("teacher-mlp", 4, None, 0)] <= 1.0
    constant = small.evaluate(lambda: from_spec("constant"))
    regrets = [row["regret"] for row in constant["rows"]]
    assert constant["n"] == len(ORACLE_LRS) and min(regrets) == 0.0 and all(r >= 0.0 for r in regrets)
    assert regrets[0] > 10.0  # 1e-5 for 4 epochs learns little
    assert constant["mean_regret"] == pytest.approx(sum(regrets) / len(regrets))
    for row in constant["rows"]:
        assert row["regret"] == pytest.approx(100 * (oracle[("teacher-mlp", 4, None, 0)] - row["acc"]))


def test_a_task_listed_twice_with_other_options_is_scored_against_its_own_oracle() -> None:
    """Two entries of one task (here other data) are two tasks: each best constant LR has regret 0 against its
    own oracle, and each is listed under its own label (one oracle for both would give one of them regret)."""
    options = {"classes": 5, "n_train": 1024}
    tasks = (("teacher-mlp", {**options, "data_seed": 100}), ("teacher-mlp", {**options, "data_seed": 101}))
    twice = ValidationSet(tasks=tasks,
                          budgets=(3,), lrs=ORACLE_LRS, seeds=(0,), epoch_examples=256)
    assert twice.labels == ["teacher-mlp[0]", "teacher-mlp[1]"]
    oracle = twice.oracle()
    assert oracle[("teacher-mlp[0]", 3, None, 0)] != oracle[("teacher-mlp[1]", 3, None, 0)]
    result = twice.evaluate(lambda: from_spec("constant"))
    assert set(result["per_task_regret"]) == {"teacher-mlp[0]", "teacher-mlp[1]"}
    for label in twice.labels:
        assert min(row["regret"] for row in result["rows"] if row["label"] == label) == 0.0


def test_validation_workers_play_the_same_runs() -> None:
    """Played in 2 processes, every run (and so the score) is the one played in this process; a lambda, which
    cannot reach a worker process, is refused in one line."""
    import functools

    small = dict(tasks=VALIDATION_TASKS[:2], budgets=(2, 3), lrs=(1e-3, 1e-2), seeds=(0,))
    serial, parallel = ValidationSet(**small), ValidationSet(**small, workers=2)
    make = functools.partial(from_spec, "bold")
    a, b = serial.evaluate(make), parallel.evaluate(make)
    assert parallel.oracle() == serial.oracle() and len(a["rows"]) == 8
    assert [(r["task"], r["budget"], r["initial_lr"], r["test_acc"]) for r in a["rows"]] == \
           [(r["task"], r["budget"], r["initial_lr"], r["test_acc"]) for r in b["rows"]]
    assert a["mean_regret"] == b["mean_regret"]
    with pytest.raises(ValueError, match="picklable controller factory"):
        parallel.evaluate(lambda: from_spec("bold"))


def test_recipes_that_draw_finetunes_are_validated_on_one_of_unseen_data() -> None:
    """A recipe with ``finetune_prob`` > 0 gets a pretrained transformer's fine-tune (Adam, batches of 16, a data
    seed neither training nor the other validation tasks use) added to its validation set; others keep the set."""
    from lrpilot.learn.pipeline import validation_set
    from lrpilot.learn.validation import FINETUNE_VALIDATION_TASK
    from lrpilot.training.distribution import FINETUNE_DATA_SEEDS, TaskDistribution

    plain = validation_set(TaskDistribution(intervals=(1.0, 0.25)), workers=1)
    assert plain.tasks == VALIDATION_TASKS and plain.intervals == (None, "0.25")
    tuned = validation_set(TaskDistribution(finetune_prob=0.2), workers=1)
    assert tuned.tasks == VALIDATION_TASKS + (FINETUNE_VALIDATION_TASK,)
    assert tuned.labels[-1] == "seq-cnn[1]"
    seed = FINETUNE_VALIDATION_TASK[1]["data_seed"]
    assert seed >= max(TaskDistribution().data_seeds, FINETUNE_DATA_SEEDS) and seed not in VALIDATION_DATA_SEEDS
    env = tuned._env(*FINETUNE_VALIDATION_TASK, budget=4, interval=None, undo=False)
    task = get_task("seq-cnn").with_overrides(**env.config.task_options)  # as the env's reset builds it
    assert (task.optimizer, task.batch_size, task.options["arch"], task.options["pretrain"]) == \
           ("adam", 16, "transformer", 8192)  # seq-cnn's AdamW of the set is not forced on it
    cliff = validation_set(TaskDistribution(finetune_prob=0.2, finetune_shape="cliff"), workers=1)
    options = cliff.tasks[-1][1]  # a cliff recipe is validated on its own shape, at the same unseen data seed
    assert cliff.tasks[:-1] == VALIDATION_TASKS and options["data_seed"] == seed
    assert (options["depth"], options["n_train"], options["batch_size"]) == (4, 64, 8)
    steep = validation_set(TaskDistribution(finetune_prob=0.2, finetune_shape="steep"), workers=1, seeds=6)
    assert steep.tasks[-1][1] == {**options, "body_scale": 0.03}  # its own shape: the cliff's, with a fragile body
    assert steep.seeds == tuple(range(6)) and cliff.seeds == (0, 1)  # two session seeds unless told


def test_a_task_can_be_played_from_lrs_of_its_own() -> None:
    """``task_lrs`` plays the named task from its own initial LRs (e.g. a fine-tune from the LRs fine-tunes start
    at) and every other task from the set's, each scored against its own oracle as before; a label the set does
    not hold is refused in one line. ``validation_set(..., finetune_lrs=...)`` gives them to the fine-tune."""
    from lrpilot.learn.pipeline import validation_set
    from lrpilot.training.distribution import TaskDistribution

    options = {"classes": 5, "n_train": 1024}
    tasks = (("teacher-mlp", {**options, "data_seed": 100}), ("teacher-mlp", {**options, "data_seed": 101}))
    mixed = ValidationSet(tasks=tasks, budgets=(3,), lrs=(1e-2,), seeds=(0,), epoch_examples=256,
                          task_lrs={"teacher-mlp[1]": (1e-5, 1e-3)})
    result = mixed.evaluate(lambda: from_spec("constant"))
    played = [(row["label"], row["initial_lr"]) for row in result["rows"]]
    assert played == [("teacher-mlp[0]", 1e-2), ("teacher-mlp[1]", 1e-5), ("teacher-mlp[1]", 1e-3)]
    regret = {lr: row["regret"] for row in result["rows"] if row["label"] == "teacher-mlp[1]"
              for lr in [row["initial_lr"]]}
    assert regret[1e-5] > regret[1e-3] >= 0.0  # 3 epochs at 1e-5 learn little: its own oracle says so
    with pytest.raises(ValueError, match=r"no task labelled seq-cnn\[1\]; the labels are teacher-mlp\[0\]"):
        ValidationSet(tasks=tasks, task_lrs={"seq-cnn[1]": (1e-4,)}).evaluate(lambda: from_spec("constant"))
    steep = validation_set(TaskDistribution(finetune_prob=0.2, finetune_shape="steep"), workers=1,
                           finetune_lrs=[1e-5, 3e-5])
    assert steep.task_lrs == {"seq-cnn[1]": (1e-5, 3e-5)} and steep.lrs == (1e-4, 1e-3, 1e-2)
    with pytest.raises(ValueError, match="holds a fine-tune only when the recipe draws fine-tunes"):
        validation_set(TaskDistribution(), workers=1, finetune_lrs=[1e-5])

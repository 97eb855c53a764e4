"""Relabelled copies and DAgger: more faithful clones of a hand-rule teacher."""

from __future__ import annotations

import numpy as np
import pytest

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURE_INDEX, FEATURES
from lrpilot.controller.teachers import teacher_labels, teacher_multipliers
from lrpilot.learn.imitation import augment_progress
from lrpilot.learn.pipeline import train_population
from lrpilot.learn.rollouts import collect, synthetic_distribution

SPEC = ActionSpec.parse("0.1,0.5,1,2")
P = FEATURE_INDEX["progress"]
V = FEATURE_INDEX["val_loss_log_change"]


def test_augmented_copies_are_relabelled_with_their_new_progress():
    obs = np.zeros((50, len(FEATURES)), np.float32)
    obs[:, V] = 0.1  # every state: the loss got worse, early in the budget
    obs[:, P] = 0.1
    x, y = augment_progress(obs, "bold-anneal-streak", SPEC, 4, seed=0)
    assert x.shape == (200, len(FEATURES)) and y.shape == (200,)
    assert np.ptp(x[:, P]) > 0.5  # the budget fraction was redrawn ...
    assert np.array_equal(np.delete(x, P, axis=1), np.delete(np.repeat(obs, 4, 0), P, axis=1))  # ... and nothing else
    assert np.array_equal(y, teacher_labels("bold-anneal-streak", SPEC, x))
    improving = x.copy()
    improving[:, V] = -0.1  # improving once, not three times: bold raises early, the streak rule anneals late
    labels = teacher_labels("bold-anneal-streak", SPEC, improving)
    assert set(labels[improving[:, P] >= 0.7]) == {1} and set(labels[improving[:, P] < 0.7]) == {3}
    assert augment_progress(obs, "bold", SPEC, 0, seed=0)[0].shape == (0, len(FEATURES))
    with pytest.raises(ValueError, match="copies"):
        augment_progress(obs, "bold", SPEC, -1, seed=0)


def test_dagger_rollouts_play_the_student_and_record_the_teacher():
    keep = lambda obs: np.full(len(obs), 2)  # noqa: E731 - a student that never changes the LR
    env = dict(distribution=synthetic_distribution(), actions="0.1,0.5,1,2", steps=6, num_envs=4, groups=1,
               workers=1, seed=0, evaluate_test=False)
    played = collect(keep, **env)
    labelled = collect(keep, label="bold", **env)
    assert np.array_equal(played["obs"], labelled["obs"])  # same states: the student played both times
    assert set(played["actions"]) == {2}
    assert np.array_equal(labelled["actions"], teacher_labels("bold", SPEC, labelled["obs"]))
    assert set(labelled["actions"]) != {2}  # the teacher would have acted



def test_a_dagger_student_that_undoes_rewinds_its_members():
    """With an action set ending in undo, a student may pick the undo action: the members rewind (their next
    observation says so) and the teacher's labels stay multipliers; it used to fail on an index past the
    multipliers."""
    from lrpilot.controller.features import ObservationEncoder

    undo = lambda obs: np.full(len(obs), 4)  # noqa: E731 - index 4 of "0.1,0.5,1,2,undo" is undo
    env = dict(distribution=synthetic_distribution(epochs_range=(6, 8)), actions="0.1,0.5,1,2,undo", steps=3,
               num_envs=4, groups=1, workers=1, seed=0, evaluate_test=False, encoder_version=2)
    labelled = collect(undo, label="bold", **env)
    undone = np.asarray(labelled["obs"])[:, ObservationEncoder(2).feature_names.index("undone_fraction")].reshape(3, 4)
    assert not undone[0].any() and (np.diff(undone, axis=0) > 0).all()  # each undo adds to every member's count
    assert set(np.asarray(labelled["actions"])) <= {0, 1, 2, 3}  # the teacher never undoes


@pytest.mark.slow
def test_dagger_training_uses_all_rounds_and_resumes_to_the_same_weights(tmp_path):
    import torch

    kwargs = dict(teacher="bold-anneal-streak", actions="0.1,0.5,1,2", seed=0, bc_steps=8, finetune_timesteps=0,
                  num_envs=8, groups=2, workers=1, families=("teacher", "gmm"), net_arch=(16,), bc_epochs=5,
                  bc_augment=1, dagger_rounds=2, dagger_steps=4)
    result = train_population(**kwargs, state_dir=str(tmp_path / "a"))
    info = result.provenance
    assert info["bc_samples"] == (8 + 2 * 4) * 8 and info["bc_trained_samples"] == 2 * info["bc_samples"]
    assert result.bc_actor is None  # no PPO: the clone is the result
    assert (tmp_path / "a" / "population-state" / "dagger2-bc.pt").exists()
    (tmp_path / "a" / "population-state" / "dagger2-bc.pt").unlink()  # as if killed during the last cloning
    again = train_population(**kwargs, state_dir=str(tmp_path / "a"), resume=True).actor
    for p, q in zip(result.actor.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_streakup_doubles_only_a_steady_climb():
    L1, L2 = FEATURE_INDEX["val_loss_log_change_lag1"], FEATURE_INDEX["val_loss_log_change_lag2"]
    obs = np.zeros((4, len(FEATURES)), np.float32)
    obs[:, P] = 0.3
    obs[:, V] = -0.1  # improved in the last epoch ...
    obs[0, [L1, L2]] = -0.1  # ... and the two before: a steady climb
    obs[1, [L1, L2]] = [0.1, -0.1]  # ... after a worse epoch: the edge of stability
    obs[2, V] = 0.1  # got worse
    obs[3, [L1, L2]] = -0.1
    obs[3, P] = 0.9  # a steady climb late in the budget keeps climbing
    assert list(teacher_multipliers("bold-anneal-streakup", obs)) == [2.0, 1.5, 0.5, 2.0]
    assert list(teacher_multipliers("bold-anneal-streak", obs)) == [1.5, 1.5, 0.5, 1.5]

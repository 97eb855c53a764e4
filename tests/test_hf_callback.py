"""PolicyLRCallback in a real transformers.Trainer: a tiny random BERT on generated tokens, CPU, offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (pip install accelerate)")
transformers = pytest.importorskip("transformers")

from lrpilot.integrations.hf import PolicyLRCallback  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
SHIPPED = Path(__file__).resolve().parent.parent / "lrpilot" / "checkpoints" / "default.json"
STEPS_PER_EPOCH = 8  # 128 examples, batch 16
STEP_LOGGED = (7, 15, 23)  # the Trainer logs the LR its last optimizer step of the epoch used


class TokenDataset(torch.utils.data.Dataset):
    """Random token sequences; the label is written as the first token, so a tiny BERT can learn it."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.ids = torch.randint(3, 100, (n, 16), generator=g)
        self.ids[:, 0] = 1 + self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(16, dtype=torch.long), "labels": self.labels[i]}


def accuracy(pred: Any) -> dict[str, float]:
    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}


def make_trainer(out: Path, callback: PolicyLRCallback | None, epochs: int = 3, model: Any = None,
                 **overrides: Any) -> transformers.Trainer:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=2)
    settings: dict[str, Any] = dict(
        eval_strategy="epoch", logging_strategy="epoch", save_strategy="no", num_train_epochs=epochs,
        learning_rate=1e-3, lr_scheduler_type="constant", per_device_train_batch_size=16,
        per_device_eval_batch_size=64, report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )
    settings.update(overrides)
    args = transformers.TrainingArguments(str(out), **settings)
    return transformers.Trainer(model=model or transformers.BertForSequenceClassification(config), args=args,
                                train_dataset=TokenDataset(128, 0), eval_dataset=TokenDataset(64, 1),
                                compute_metrics=accuracy, callbacks=[callback] if callback else [])


def logged(trainer: transformers.Trainer | list[dict[str, Any]], key: str) -> list[float]:
    """A per-epoch logged value (learning_rate from training logs, eval_loss from evaluations)."""
    history = trainer if isinstance(trainer, list) else trainer.state.log_history
    return [entry[key] for entry in history if key in entry]


SPEC = "step:step_size=2,gamma=0.5"  # cuts after evaluations 2 and 4: resuming must restore the count


FullRun = tuple[transformers.Trainer, PolicyLRCallback, Path, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> FullRun:
    """One uninterrupted 3-epoch run with a checkpoint per epoch (and its logs, as left by train()), shared below."""
    out = tmp_path_factory.mktemp("full")
    callback = PolicyLRCallback(SPEC)
    trainer = make_trainer(out, callback, save_strategy="epoch")
    trainer.train()
    return trainer, callback, out, [dict(entry) for entry in trainer.state.log_history]


@pytest.mark.slow
def test_callback_changes_the_trainer_lr(full_run: FullRun) -> None:
    trainer, callback, _, logs = full_run
    assert logged(logs, "learning_rate") == pytest.approx([1e-3, 1e-3, 5e-4])  # constant schedule otherwise
    assert callback.controller.epochs_seen == 3 and callback.controller.initial_lr == 1e-3
    assert len(logged(logs, "eval_accuracy")) == 3
    lr_after = trainer.optimizer.param_groups[0]["lr"]
    trainer.evaluate()  # an evaluation after training must not move the LR
    assert callback.controller.epochs_seen == 3 and trainer.optimizer.param_groups[0]["lr"] == lr_after


@pytest.mark.slow
def test_composes_with_a_decaying_trainer_schedule(tmp_path: Path) -> None:
    callback = PolicyLRCallback("step:step_size=1,gamma=0.5", total_epochs=3)
    trainer = make_trainer(tmp_path, callback, lr_scheduler_type="linear")
    trainer.train()
    # linear decay to 0 over 24 steps (logged LR: the one of the epoch's last step), times the controller's 1, 1/2, 1/4
    expected = [1e-3 * (1 - step / 24) * factor for step, factor in zip(STEP_LOGGED, (1.0, 0.5, 0.25))]
    assert logged(trainer, "learning_rate") == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_evaluating_every_n_steps(tmp_path: Path) -> None:
    callback = PolicyLRCallback("step:step_size=1,gamma=0.5")
    trainer = make_trainer(tmp_path, callback, epochs=1, eval_strategy="steps", eval_steps=4,
                           logging_strategy="steps", logging_steps=4)
    trainer.train()
    assert callback.controller.total_epochs == 2 and callback.controller.epochs_seen == 2  # 8 steps / 4
    assert logged(trainer, "learning_rate") == pytest.approx([1e-3, 5e-4])


@pytest.mark.slow
@pytest.mark.parametrize("restore_flag", [False, True])
def test_resume_from_checkpoint_continues_the_same_control(
    full_run: FullRun, tmp_path: Path, restore_flag: bool
) -> None:
    _, full_callback, out, logs = full_run
    resumed = make_trainer(tmp_path, PolicyLRCallback(SPEC), save_strategy="epoch",
                           restore_callback_states_from_checkpoint=restore_flag)
    resumed.train(resume_from_checkpoint=str(out / f"checkpoint-{STEPS_PER_EPOCH}"))
    assert logged(resumed, "learning_rate") == pytest.approx(logged(logs, "learning_rate"))
    assert logged(resumed, "eval_loss") == pytest.approx(logged(logs, "eval_loss"), rel=1e-5)
    (callback,) = [c for c in resumed.callback_handler.callbacks if isinstance(c, PolicyLRCallback)]
    assert callback.controller.state_dict() == full_callback.controller.state_dict()
    assert callback.controller.epochs_seen == 3


class Forgetful(PolicyLRCallback):
    """Finds no saved state under its own name: the negative control for the resume test."""


@pytest.mark.slow
def test_resume_without_saved_state_loses_the_control(full_run: FullRun, tmp_path: Path) -> None:
    resumed = make_trainer(tmp_path, Forgetful(SPEC), save_strategy="epoch")
    with pytest.warns(UserWarning, match="starts afresh"):
        resumed.train(resume_from_checkpoint=str(full_run[2] / f"checkpoint-{STEPS_PER_EPOCH}"))
    assert logged(resumed, "learning_rate") == pytest.approx([1e-3, 1e-3, 1e-3])  # the epoch-2 cut is lost


def test_refuses_a_trainer_that_never_evaluates(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, PolicyLRCallback("rule"), eval_strategy="no")
    with pytest.raises(ValueError, match="eval_strategy is 'no'"):
        trainer.train()


def test_refuses_a_plateau_scheduler(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, PolicyLRCallback("rule"), lr_scheduler_type="reduce_lr_on_plateau",
                           metric_for_best_model="loss")
    with pytest.raises(ValueError, match="plateau"):
        trainer.train()


@pytest.mark.slow
def test_missing_training_loss_is_a_clear_error(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, PolicyLRCallback("rule:metric=train_loss"), epochs=1, logging_strategy="no")
    with pytest.raises(ValueError, match=r"needs metrics \['train_loss'\].*logging_strategy"):
        trainer.train()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="total_epochs"):
        PolicyLRCallback("rule", total_epochs=0)
    with pytest.raises(ValueError, match="max_lr"):
        PolicyLRCallback("rule", min_lr=1.0, max_lr=0.5)
    with pytest.raises(ValueError, match="unknown controller"):
        PolicyLRCallback("nonesuch")


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped policy yet")
def test_shipped_policy_in_the_trainer(tmp_path: Path) -> None:
    callback = PolicyLRCallback("ppo:default")
    trainer = make_trainer(tmp_path, callback, epochs=2)
    trainer.train()
    lrs = logged(trainer, "learning_rate")
    assert len(lrs) == 2 and all(np.isfinite(lrs)) and callback.controller.epochs_seen == 2
    assert callback.state()["attributes"]["saved_state"]["policy_hash"] == callback.controller.policy_hash


def _undoer(limit: float = 0.6) -> Any:
    from test_deploy_undo import UndoAbove  # the test-local undoing controller, shared by the deployment tests

    return UndoAbove(limit)


@pytest.mark.slow
def test_undo_recovers_a_run_started_at_a_diverging_lr(tmp_path: Path) -> None:
    plain = make_trainer(tmp_path / "plain", PolicyLRCallback("constant"), epochs=4, learning_rate=1.0)
    plain.train()
    callback = PolicyLRCallback(_undoer())
    trainer = make_trainer(tmp_path / "undo", callback, epochs=4, learning_rate=1.0)
    trainer.train()
    assert logged(plain, "eval_accuracy")[-1] < 0.6  # Adam at LR 1 stays at chance
    assert callback.undone[0] == 1 and callback.undos >= 1 and callback.last_decision == 1.0
    assert logged(trainer, "eval_accuracy")[-1] == 1.0 and logged(trainer, "eval_loss")[-1] < 0.1
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 ** callback.undos)
    assert callback.state()["attributes"]["saved_state"]["undone"] == callback.undone


@pytest.mark.slow
def test_a_model_from_from_pretrained_not_said_to_be_pretrained_gets_one_warning(tmp_path: Path) -> None:
    make_trainer(tmp_path / "built", None).model.save_pretrained(tmp_path / "saved")

    def loaded() -> Any:
        return transformers.BertForSequenceClassification.from_pretrained(tmp_path / "saved")

    trainer = make_trainer(tmp_path / "run", PolicyLRCallback("policy:default"), epochs=1, model=loaded())
    with pytest.warns(UserWarning, match="was loaded from .*saved.*pass pretrained=True"):
        trainer.train()
    said = PolicyLRCallback("policy:default", pretrained=True)
    make_trainer(tmp_path / "said", said, epochs=1, model=loaded()).train()
    assert said.controller.pretrained is True


@pytest.mark.slow
def test_a_callback_that_can_undo_measures_how_far_each_interval_moved_the_weights(tmp_path: Path) -> None:
    moved: list[float | None] = []

    class Recording(type(_undoer())):  # type: ignore[misc]
        def _act(self, metrics: Any) -> float:
            moved.append(metrics.weight_change)
            return 1.0

    trainer = make_trainer(tmp_path, PolicyLRCallback(Recording()), epochs=1)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    change = torch.cat([(p.detach() - before[n]).flatten() for n, p in trainer.model.named_parameters()]).double()
    size = torch.cat([v.flatten() for v in before.values()]).double().norm()
    assert moved == [pytest.approx(float(change.norm() / size), rel=1e-6)] and moved[0] > 0


@pytest.mark.slow
def test_undo_restores_the_trainers_model_and_optimizer_in_place(tmp_path: Path) -> None:
    callback = PolicyLRCallback(_undoer(limit=0.0))  # undoes every interval: training never moves on
    trainer = make_trainer(tmp_path, callback, epochs=2)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert callback.undone == [1, 2] and callback.last_decision == "undo"
    assert all(torch.equal(a, b) for a, b in zip(start, trainer.model.parameters()))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert not trainer.optimizer.state_dict()["state"]  # Adam's state as it was before the first step: empty


@pytest.mark.slow
def test_a_checkpoint_between_evaluations_can_still_undo_after_resume(tmp_path: Path) -> None:
    def run(out: Path, resume: str | None = None) -> tuple[transformers.Trainer, PolicyLRCallback]:
        callback = PolicyLRCallback(_undoer(limit=0.7))
        trainer = make_trainer(out, callback, epochs=2, learning_rate=1.0, save_strategy="steps", save_steps=4)
        trainer.train(resume_from_checkpoint=resume)
        return trainer, callback

    full, full_callback = run(tmp_path / "full")
    assert (tmp_path / "full" / "checkpoint-4" / "lrpilot_undo_snapshot.pt").is_file()  # saved mid-interval
    resumed, callback = run(tmp_path / "full", resume=str(tmp_path / "full" / "checkpoint-4"))
    assert full_callback.undone[:1] == [1] and callback.undone == full_callback.undone
    assert logged(resumed, "eval_loss")[-1] == pytest.approx(logged(full, "eval_loss")[-1], rel=1e-5)


@pytest.mark.slow
def test_a_sharded_run_refuses_an_undoing_controller(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, PolicyLRCallback(_undoer()), epochs=1)
    trainer.args.deepspeed = "ds_config.json"  # set after the Trainer was built: no DeepSpeed is started
    with pytest.raises(ValueError, match="cannot rewind a sharded run") as err:
        trainer.train()
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="undo=False"):
        PolicyLRCallback(_undoer(), undo=False)


@pytest.mark.slow
def test_evaluating_twice_per_epoch_is_two_decisions_per_epoch(tmp_path: Path) -> None:
    callback = PolicyLRCallback("constant", decisions_per_epoch=2)
    trainer = make_trainer(tmp_path, callback, epochs=2, eval_strategy="steps", eval_steps=4)  # ceil(8 / 2)
    trainer.train()
    assert callback.controller.total_epochs == 2 and callback.controller.total_decisions == 4
    assert callback.controller.epochs_seen == 4

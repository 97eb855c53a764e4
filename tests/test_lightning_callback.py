"""Lightning: PolicyLRCallback in a real Trainer, and PolicyScheduler as a reduce_on_plateau scheduler."""

from __future__ import annotations

import functools
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

L = pytest.importorskip("lightning.pytorch", reason="Lightning is an optional extra: pip install 'lrpilot[lightning]'")

from lrpilot import PolicyScheduler  # noqa: E402
from lrpilot.controller import Controller  # noqa: E402
from lrpilot.integrations.lightning import PolicyLRCallback  # noqa: E402
from lrpilot.metrics import EpochMetrics  # noqa: E402
from lrpilot.training import get_task  # noqa: E402
from lrpilot.training.digits import load_digits  # noqa: E402

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]


@functools.lru_cache(maxsize=None)
def _loaders() -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    data = load_digits(get_task("digits-mlp"))
    train = torch.utils.data.TensorDataset(data.train.inputs[:256], data.train.labels[:256])
    val = torch.utils.data.TensorDataset(data.val.inputs, data.val.labels)
    return torch.utils.data.DataLoader(train, batch_size=64), torch.utils.data.DataLoader(val, batch_size=512)


class DigitsModule(L.LightningModule):
    """A small MLP on digits; records each epoch's LR and the minibatch losses it returned."""

    def __init__(self, scheduler_spec: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        self.scheduler_spec = scheduler_spec
        self.lrs: list[float] = []
        self.epoch_losses: list[list[float]] = []

    def on_train_epoch_start(self) -> None:
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.epoch_losses.append([])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.epoch_losses[-1].append(loss.item())
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits = self.net(batch[0])
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, batch[1]))
        self.log("val_acc", (logits.argmax(1) == batch[1]).float().mean())

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=1e-2)
        if self.scheduler_spec is None:
            return opt
        sched = PolicyScheduler(opt, self.scheduler_spec, total_epochs=self.trainer.max_epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch",
                                                   "reduce_on_plateau": True}}


def fit(module: DigitsModule, callbacks: list[Any], max_epochs: int = 3, ckpt_path: str | None = None) -> L.Trainer:
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=callbacks, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, *_loaders(), ckpt_path=ckpt_path)
    return trainer


def test_callback_changes_the_lr_and_skips_the_sanity_check() -> None:
    callback = PolicyLRCallback("step:step_size=1,gamma=0.5")
    module = DigitsModule()
    trainer = fit(module, [callback])
    assert module.lrs == pytest.approx([1e-2, 5e-3, 2.5e-3])
    assert callback.controller.epochs_seen == 3  # the sanity-check validation did not count
    trainer.validate(module, _loaders()[1], verbose=False)  # a standalone validation must not act
    assert callback.controller.epochs_seen == 3


def test_policy_scheduler_as_reduce_on_plateau_gives_the_same_lrs() -> None:
    module = DigitsModule("step:step_size=1,gamma=0.5")
    fit(module, [])
    assert module.lrs == pytest.approx([1e-2, 5e-3, 2.5e-3])


class Recorder(Controller):
    """Keeps the LR and remembers every EpochMetrics it saw."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.required_metrics = ("train_loss", "val_loss", "val_acc")
        self.seen: list[EpochMetrics] = []

    def _act(self, metrics: EpochMetrics) -> float:
        self.seen.append(metrics)
        return 1.0


def test_train_loss_is_this_epochs_minibatch_mean() -> None:
    recorder = Recorder()
    module = DigitsModule()
    fit(module, [PolicyLRCallback(recorder, monitor=("val_loss", "val_acc"))], max_epochs=2)
    assert [m.epoch for m in recorder.seen] == [1, 2]
    for metrics, losses in zip(recorder.seen, module.epoch_losses):
        mean = sum(losses) / len(losses)
        std = math.sqrt(sum((x - mean) ** 2 for x in losses) / len(losses))
        assert metrics.train_loss == pytest.approx(mean, rel=1e-6)
        assert metrics.train_loss_std == pytest.approx(std, rel=1e-5)
        assert 0 <= metrics.val_acc <= 1 and math.isfinite(metrics.val_loss)


def test_resume_from_a_lightning_checkpoint_continues_the_control(tmp_path: Path) -> None:
    spec = "step:step_size=2,gamma=0.5"
    full = DigitsModule()
    fit(full, [PolicyLRCallback(spec, total_epochs=4)], max_epochs=4)
    first = DigitsModule()
    trainer = fit(first, [PolicyLRCallback(spec, total_epochs=4)], max_epochs=3)
    trainer.save_checkpoint(tmp_path / "epoch3.ckpt")
    resumed, callback = DigitsModule(), PolicyLRCallback(spec, total_epochs=4)
    fit(resumed, [callback], max_epochs=4, ckpt_path=str(tmp_path / "epoch3.ckpt"))
    assert full.lrs == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3])
    assert first.lrs + resumed.lrs == pytest.approx(full.lrs)
    assert callback.controller.epochs_seen == 4
    with pytest.raises(ValueError, match="not 'rule'"):
        fit(DigitsModule(), [PolicyLRCallback("rule")], max_epochs=4, ckpt_path=str(tmp_path / "epoch3.ckpt"))


def test_refusals_and_missing_metrics() -> None:
    with pytest.raises(ValueError, match="plateau"):
        fit(DigitsModule("rule"), [PolicyLRCallback("rule")])
    with pytest.raises(ValueError, match=r"\['valid_loss'\] not logged.*val_acc"):
        fit(DigitsModule(), [PolicyLRCallback("rule", monitor={"val_loss": "valid_loss"})], max_epochs=1)
    with pytest.raises(ValueError, match="monitor names"):
        PolicyLRCallback("rule", monitor=("loss",))
    with pytest.raises(ValueError, match=r"needs metrics \['val_acc'\]"):
        PolicyLRCallback("plateau:metric=val_acc")  # the default monitor reads val_loss only


def _undoer(limit: float = 1.5) -> Controller:
    from test_deploy_undo import UndoAbove  # the test-local undoing controller, shared by the deployment tests

    return UndoAbove(limit)


class DivergingDigits(DigitsModule):
    """The same module started at Adam LR 10, where it never learns."""

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=10.0)


def _val_acc(module: DigitsModule) -> float:
    inputs, labels = _loaders()[1].dataset.tensors
    with torch.no_grad():
        return float((module.net(inputs).argmax(1) == labels).float().mean())


def test_undo_recovers_a_run_started_at_a_diverging_lr() -> None:
    plain = DivergingDigits()
    fit(plain, [PolicyLRCallback("constant")], max_epochs=8)
    module, callback = DivergingDigits(), PolicyLRCallback(_undoer(limit=2.2))  # undo at chance (ln 10) or above
    fit(module, [callback], max_epochs=8)
    assert _val_acc(plain) < 0.3
    assert _val_acc(module) > 0.8 and all(torch.isfinite(p).all() for p in module.parameters())
    assert callback.undone[0] == 1 and callback.last_decision == 1.0
    assert module.lrs[-1] == pytest.approx(10.0 * 0.1 ** callback.undos)


def test_a_callback_that_can_undo_measures_how_far_each_interval_moved_the_weights() -> None:
    moved: list[float | None] = []

    class Recording(type(_undoer())):  # type: ignore[misc]
        def _act(self, metrics: EpochMetrics) -> float:
            moved.append(metrics.weight_change)
            return 1.0

    module = DigitsModule()
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    fit(module, [PolicyLRCallback(Recording())], max_epochs=1)
    change = torch.cat([(p.detach() - before[n]).flatten() for n, p in module.named_parameters()]).double().norm()
    size = torch.cat([v.flatten() for v in before.values()]).double().norm()
    assert moved == [pytest.approx(float(change / size), rel=1e-6)] and moved[0] > 0


def test_undo_restores_the_module_and_optimizer_in_place_and_resumes(tmp_path: Path) -> None:
    module, callback = DigitsModule(), PolicyLRCallback(_undoer(limit=0.0))  # undoes every validation
    start = [p.detach().clone() for p in module.parameters()]
    trainer = fit(module, [callback], max_epochs=2)
    assert callback.undone == [1, 2] and callback.last_decision == "undo"
    assert all(torch.equal(a, b) for a, b in zip(start, module.parameters()))
    assert not trainer.optimizers[0].state_dict()["state"] and module.lrs == pytest.approx([1e-2, 1e-3])
    trainer.save_checkpoint(tmp_path / "undone.ckpt")
    (saved,) = [v for v in torch.load(tmp_path / "undone.ckpt", weights_only=True)["callbacks"].values() if "undo" in v]
    snapshot = saved["undo"]["snapshot"]["model"]  # the checkpoint carries the start of the next interval
    assert all(torch.equal(a, snapshot[name]) for a, (name, _) in zip(start, module.named_parameters()))
    resumed, again = DigitsModule(), PolicyLRCallback(_undoer(limit=0.0))
    fit(resumed, [again], max_epochs=3, ckpt_path=str(tmp_path / "undone.ckpt"))
    assert again.undone == [1, 2, 3] and all(torch.equal(a, b) for a, b in zip(start, resumed.parameters()))


def test_a_sharding_strategy_refuses_an_undoing_controller() -> None:
    class FSDPStrategy(L.strategies.SingleDeviceStrategy):  # named as Lightning's; runs on one CPU
        pass

    trainer = L.Trainer(max_epochs=1, callbacks=[PolicyLRCallback(_undoer())], logger=False,
                        strategy=FSDPStrategy(device=torch.device("cpu")), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="cannot rewind a sharded run") as err:
        trainer.fit(DigitsModule(), *_loaders())
    assert "\n" not in str(err.value)


def test_two_validations_per_epoch_are_two_decisions_per_epoch() -> None:
    callback = PolicyLRCallback("constant", decisions_per_epoch=2)
    trainer = L.Trainer(max_epochs=2, callbacks=[callback], accelerator="cpu", logger=False, val_check_interval=0.5,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(DigitsModule(), *_loaders())
    assert callback.controller.total_decisions == 4 and callback.controller.epochs_seen == 4
    with pytest.raises(ValueError, match="decisions_per_epoch"):
        PolicyLRCallback("rule", decisions_per_epoch=0)

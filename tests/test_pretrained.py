"""A run that fine-tunes pretrained weights says so, and ``policy:default`` acts on it as ``policy:finetune`` (session 28).

A task's ``pretrained`` (BERT, MiniLM; a synthetic fine-tune with ``pretrain > 0``) reaches the controller as
``reset(..., pretrained=True)`` from every driver: ``lrpilot train`` / ``compare`` / ``evaluate-controller`` runs, the
evaluation episodes of the environments, ``PolicyScheduler`` and the two callbacks (``pretrained=True``). A policy card's
``raise_power_pretrained`` is the ``raise_power`` it uses on such a run; the shipped default's is 1.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from lrpilot.controller import Controller, from_spec, register_controller
from lrpilot.controller.policy import SHIPPED_DIR, PolicyFormatError, load_policy
from lrpilot.metrics import EpochMetrics
from lrpilot.training import get_task, register_task
from lrpilot.training.digits import DIGITS_MLP

LOSSES = [0.69, 0.69, 0.68, 0.60, 0.55, 0.56, 0.50, 0.49]  # a flat start, then learning: the default raises


def _decisions(spec: str, k: int, **told: bool) -> list[float]:
    controller = from_spec(spec)
    controller.reset(1e-4, 5, k, **told)
    return [controller.act(EpochMetrics(epoch=i + 1, lr=1e-4, train_loss=v, val_loss=v, val_acc=0.5))
            for i, v in enumerate(LOSSES)]


def test_the_previous_default_acts_as_finetune_on_a_pretrained_model_and_as_before_elsewhere() -> None:
    before = _decisions("policy:default-s25", 4)
    assert any(m > 1.2 for m in before)  # per decision, the previous default raises fast on this history
    assert _decisions("policy:default-s28", 4) == before  # a run that says nothing: the default of sessions 25-27
    on_pretrained = _decisions("policy:default-s28", 4, pretrained=True)
    assert on_pretrained == _decisions("policy:finetune", 4) == pytest.approx(
        [m ** 0.25 if m > 1 else m for m in before])  # raises at rates per epoch, cuts at once
    assert _decisions("policy:default-s28", 1, pretrained=True) == _decisions("policy:default-s25", 1)  # per epoch: same
    assert _decisions("policy:default-s28+guard", 4, pretrained=True) == on_pretrained  # the guard tells its policy


def test_the_default_spreads_its_raises_over_the_epoch_on_a_pretrained_model_only() -> None:
    """Today's default (session 35) keeps the field: told that the model is pretrained, at four decisions per epoch each
    raise is the fourth root of the one it makes otherwise; cuts and per-epoch decisions are unchanged."""
    before = _decisions("policy:default", 4)
    assert any(m > 1.2 for m in before) and any(m < 1 for m in before)
    on_pretrained = _decisions("policy:default", 4, pretrained=True)
    assert on_pretrained == pytest.approx([m ** 0.25 if m > 1 else m for m in before])
    assert _decisions("policy:default", 1, pretrained=True) == _decisions("policy:default", 1)
    assert _decisions("policy:default+guard", 4, pretrained=True) == on_pretrained


def test_the_shipped_cards_say_which_policy_is_which() -> None:
    card = json.loads((SHIPPED_DIR / "default-s28.json").read_text())
    previous = json.loads((SHIPPED_DIR / "default-s25.json").read_text())
    assert card["raise_power_pretrained"] == 1 and "raise_power" not in card and card["name"] == "default-s28"
    assert "raise_power_pretrained" not in previous and previous["name"] == "default-s25"
    assert (SHIPPED_DIR / "default-s28.safetensors").read_bytes() == (
        SHIPPED_DIR / "default-s25.safetensors").read_bytes()
    assert load_policy("default-s28").policy_hash != load_policy("default-s25").policy_hash  # states are not mixed up
    today = json.loads((SHIPPED_DIR / "default.json").read_text())
    assert today["raise_power_pretrained"] == 1 and "raise_power" not in today and today["name"] == "default"


def test_a_bad_raise_power_pretrained_is_refused_in_one_line(tmp_path: Path) -> None:
    card = json.loads((SHIPPED_DIR / "default.json").read_text())
    (tmp_path / "p.safetensors").write_bytes((SHIPPED_DIR / "default.safetensors").read_bytes())
    for bad in (2, -1, "1", None):
        (tmp_path / "p.json").write_text(json.dumps({**card, "raise_power_pretrained": bad}))
        if bad is None:  # null reads as absent: the card's raise_power (none) on every run
            assert load_policy(tmp_path / "p").raise_power_pretrained == 0
            continue
        with pytest.raises(PolicyFormatError, match="raise_power_pretrained must be a number in \\[0, 1\\]") as info:
            load_policy(tmp_path / "p")
        assert "\n" not in str(info.value)


def test_reset_refuses_a_pretrained_that_is_not_a_bool_and_the_state_keeps_it() -> None:
    controller = from_spec("policy:default")
    with pytest.raises(ValueError, match="pretrained must be True or False"):
        controller.reset(1e-4, 5, 4, pretrained="yes")  # type: ignore[arg-type]
    controller.reset(1e-4, 5, 4, pretrained=True)
    controller.act(EpochMetrics(epoch=1, lr=1e-4, train_loss=0.69, val_loss=0.69, val_acc=0.5))
    state = json.loads(json.dumps(controller.state_dict()))
    resumed = from_spec("policy:default")
    resumed.load_state_dict(state)
    assert resumed.pretrained and resumed.state_dict() == controller.state_dict()
    metrics = EpochMetrics(epoch=2, lr=1e-4, train_loss=0.60, val_loss=0.60, val_acc=0.6)
    assert resumed.act(metrics) == controller.act(metrics)


def test_tasks_say_whether_they_start_pretrained() -> None:
    assert get_task("imdb-bert").starts_pretrained() and not get_task("digits-mlp").starts_pretrained()
    assert not get_task("cifar10-resnet18").starts_pretrained()
    seq = get_task("seq-cnn")
    assert not seq.starts_pretrained() and seq.with_overrides(pretrain=512).starts_pretrained()
    digits = get_task("digits-mlp").with_overrides(pretrained=True)  # `--option pretrained=true` on any task
    assert digits.starts_pretrained()
    digits.validate()
    with pytest.raises(ValueError, match="pretrained must be True or False"):
        get_task("digits-mlp").with_overrides(pretrained=1).validate()  # `--option pretrained=1`


class Recorder(Controller):
    """Holds the LR and records what ``reset`` was told."""

    name = "test-recorder"
    told: list[dict[str, Any]] = []

    def reset(self, initial_lr: float, total_epochs: int, decisions_per_epoch: int = 1, **kwargs: Any) -> None:
        Recorder.told.append({"decisions_per_epoch": decisions_per_epoch, **kwargs})
        super().reset(initial_lr, total_epochs, decisions_per_epoch, **kwargs)

    def _act(self, metrics: EpochMetrics) -> float:
        return 1.0


class OldPlugin(Controller):
    """A plugin controller written before ``pretrained`` existed: its ``reset`` takes three arguments."""

    name = "test-old-plugin"

    def reset(self, initial_lr: float, total_epochs: int, decisions_per_epoch: int = 1) -> None:  # type: ignore[override]
        super().reset(initial_lr, total_epochs, decisions_per_epoch)

    def _act(self, metrics: EpochMetrics) -> float:
        return 1.0


@pytest.fixture()
def pretrained_digits() -> str:
    register_controller(Recorder.name, Recorder)
    register_controller(OldPlugin.name, OldPlugin)
    register_task(dataclasses.replace(DIGITS_MLP, name="test-pretrained-digits", pretrained=True), overwrite=True)
    Recorder.told = []
    return "test-pretrained-digits"


def test_runs_tell_their_controller_and_policy_default_follows(pretrained_digits: str, tmp_path: Path) -> None:
    from lrpilot.experiments.run import RunConfig, run_training

    def lrs(task: str, controller: str) -> list[float]:
        config = RunConfig(task=task, controller=controller, lr=1e-5, epochs=2, interval="0.25")
        return [m.lr for m in run_training(config).history]

    lrs(pretrained_digits, Recorder.name)
    lrs("digits-mlp", Recorder.name)
    assert Recorder.told == [{"decisions_per_epoch": 4, "pretrained": True}, {"decisions_per_epoch": 4}]
    on_pretrained = lrs(pretrained_digits, "policy:default-s28")
    assert on_pretrained == lrs(pretrained_digits, "policy:finetune") != lrs(pretrained_digits, "policy:default-s25")
    assert lrs("digits-mlp", "policy:default-s28") == lrs("digits-mlp", "policy:default-s25")
    assert lrs(pretrained_digits, "policy:default") != lrs("digits-mlp", "policy:default")  # today's default too
    assert len(lrs("digits-mlp", OldPlugin.name)) == 8  # an old plugin still runs where nothing is pretrained


def test_evaluation_episodes_tell_their_controller(pretrained_digits: str) -> None:
    from lrpilot.envs import LRControlEnv
    from lrpilot.envs.episodes import EvalCase, run_controller

    env = LRControlEnv(task=pretrained_digits, epochs=2)
    run_controller(env, EvalCase(task=pretrained_digits, initial_lr=1e-3, session_seed=0), Recorder())
    assert Recorder.told == [{"decisions_per_epoch": 1, "pretrained": True}]


def test_deployed_forms_pass_pretrained_and_refuse_a_non_bool() -> None:
    from lrpilot import PolicyScheduler

    model = torch.nn.Linear(2, 2)
    lrs: dict[bool, list[float]] = {}
    for pretrained in (False, True):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        scheduler = PolicyScheduler(opt, "policy:default", total_epochs=5, decisions_per_epoch=4, pretrained=pretrained,
                                    model=model)
        assert scheduler.controller.pretrained is pretrained
        for v in LOSSES:
            opt.step()
            scheduler.step({"train_loss": v, "val_loss": v, "val_acc": 0.5})
        lrs[pretrained] = scheduler.get_last_lr()
    assert lrs[True][0] < lrs[False][0]  # raises spread over the epoch: a slower climb on a pretrained model
    with pytest.raises(ValueError, match="pretrained must be True or False"):
        PolicyScheduler(torch.optim.Adam(model.parameters()), "rule", total_epochs=5, pretrained=1)  # type: ignore[arg-type]


def test_a_scheduler_warns_once_when_a_model_from_from_pretrained_is_not_said_to_be_pretrained() -> None:
    import warnings

    from lrpilot import PolicyScheduler

    loaded = torch.nn.Linear(2, 2)
    loaded.name_or_path = "bert-base-uncased"  # what Hugging Face's from_pretrained sets on the model
    for spec in ("policy:default", "rule+guard"):  # controllers that act differently on a pretrained model
        with pytest.warns(UserWarning, match="loaded from 'bert-base-uncased'.*pass pretrained=True") as caught:
            scheduler = PolicyScheduler(torch.optim.Adam(loaded.parameters()), spec, total_epochs=5, model=loaded)
        assert len(caught) == 1 and scheduler.controller.pretrained is False  # not said: taken as False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for said in (True, False):  # said either way: no warning
            PolicyScheduler(torch.optim.Adam(loaded.parameters()), "rule+guard", total_epochs=5, model=loaded,
                            pretrained=said)
        for spec in ("rule", "policy:default-s25"):  # they act the same either way: nothing to warn about
            PolicyScheduler(torch.optim.Adam(loaded.parameters()), spec, total_epochs=5, model=loaded)
        PolicyScheduler(torch.optim.Adam(loaded.parameters()), "policy:default-s28", total_epochs=5)  # no model
        built = torch.nn.Linear(2, 2)
        PolicyScheduler(torch.optim.Adam(built.parameters()), "rule+guard", total_epochs=5, model=built)


def test_the_callbacks_take_pretrained() -> None:
    pytest.importorskip("transformers")
    from lrpilot.integrations.hf import PolicyLRCallback

    callback = PolicyLRCallback("policy:default", pretrained=True, decisions_per_epoch=4)
    assert callback.state()["args"]["pretrained"] is True  # a Trainer that rebuilds it from a checkpoint keeps it
    assert "pretrained" not in PolicyLRCallback("policy:default").state()["args"]
    with pytest.raises(ValueError, match="pretrained must be True or False"):
        PolicyLRCallback("rule", pretrained="no")  # type: ignore[arg-type]
    lightning = pytest.importorskip("lrpilot.integrations.lightning")
    with pytest.raises(ValueError, match="pretrained must be True or False"):
        lightning.PolicyLRCallback("rule", pretrained="no")  # type: ignore[arg-type]


def test_the_three_sign_check_finds_where_such_a_guard_would_first_undo(tmp_path: Path, benchmark_module) -> None:
    """``benchmarks/pretrained_guard_signs.py`` (session 28's tried and reverted guard change): a plain run whose first
    interval predicts one class at chance loss is flagged there, and counts as a false alarm when the run ends fine."""
    signs = benchmark_module("pretrained_guard_signs")
    chance = 2.302585  # digits: ten balanced classes
    one_class = {"epoch": 1, "lr": 1e-5, "train_loss": chance, "val_loss": chance, "val_acc": 0.1,
                 "val_top_share": 1.0, "val_majority_share": 0.11, "val_chance_loss": chance, "val_spread": 0.01}
    learning = {**one_class, "epoch": 2, "val_loss": 1.0, "val_acc": 0.7, "val_top_share": 0.2}
    for seed, first in ((0, one_class), (1, learning)):
        run = tmp_path / f"digits-mlp__rule__lr1e-05__s{seed}"
        run.mkdir()
        final = {"final": {"config": {"task": "digits-mlp", "controller": "rule", "lr": 1e-5, "seed": seed},
                           "diverged": False, "test_acc": 0.9}}
        run.joinpath("metrics.jsonl").write_text("\n".join(json.dumps(r) for r in ({**first, "epoch": 1}, learning, final)))
    rows = signs.table([tmp_path])
    assert [(r["seed"], r["first_undo"], r["plain_bad"]) for r in rows] == [(0, 1, False), (1, None, False)]

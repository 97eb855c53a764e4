"""A policy card's ``raise_power`` (session 27): raises at rates per epoch below an epoch, cuts at once, and with one
decision per epoch the policy acts exactly as without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ObservationEncoder
from lrpilot.controller.policy import PolicyFormatError, load_policy, save_policy
from lrpilot.learn.pipeline import _initial_actor
from lrpilot.metrics import EpochMetrics

A5 = "0.1,0.5,1,1.5,2"


def _policy(path: Path, action: int, raise_power: object = None) -> Path:
    """A residual policy on ``bold`` that always picks ``action``, its card given ``raise_power`` when not None."""
    bias = torch.zeros(5)
    bias[action] = 5.0
    save_policy(path, layers=[(torch.zeros(5, ObservationEncoder(2).size), bias)], activation="tanh",
                action=ActionSpec.parse(A5), provenance={}, encoder_version=2, base="bold")
    if raise_power is not None:
        card = json.loads(path.with_suffix(".json").read_text())
        path.with_suffix(".json").write_text(json.dumps({**card, "raise_power": raise_power}))
    return path


def _decisions(policy_path: Path, k: int, losses: list[float]) -> list[float]:
    policy = load_policy(policy_path)
    policy.reset(1e-3, 10, k)
    return [policy.act(EpochMetrics(epoch=i + 1, lr=1e-3, train_loss=1.0, val_loss=v)) for i, v in enumerate(losses)]


LOSSES = [1.0, 0.9, 1.2, 1.1]  # first, improved, worse, improved: bold answers x1, x1.5, x0.5, x1.5


def test_raises_become_rates_per_epoch_and_cuts_act_at_once(tmp_path: Path) -> None:
    per_decision = _policy(tmp_path / "plain", action=4)  # residual x2 on bold
    per_epoch = _policy(tmp_path / "epoch", action=4, raise_power=1.0)
    halfway = _policy(tmp_path / "half", action=4, raise_power=0.5)
    assert _decisions(per_decision, 4, LOSSES) == pytest.approx([2.0, 3.0, 1.0, 3.0])
    assert _decisions(per_epoch, 4, LOSSES) == pytest.approx([2 ** 0.25, 3 ** 0.25, 1.0, 3 ** 0.25])
    assert _decisions(halfway, 4, LOSSES) == pytest.approx([2 ** 0.5, 3 ** 0.5, 1.0, 3 ** 0.5])
    cutting = _policy(tmp_path / "cut", action=0, raise_power=1.0)  # residual x0.1: every decision a cut
    assert _decisions(cutting, 4, LOSSES) == pytest.approx([0.1, 0.15, 0.05, 0.15])  # cuts are not spread
    assert load_policy(per_epoch).raise_power == 1.0 and load_policy(per_decision).raise_power == 0.0


def test_with_one_decision_per_epoch_raise_power_changes_nothing(tmp_path: Path) -> None:
    plain, epoch = _policy(tmp_path / "plain", action=4), _policy(tmp_path / "epoch", action=4, raise_power=1.0)
    assert _decisions(epoch, 1, LOSSES) == _decisions(plain, 1, LOSSES) == pytest.approx([2.0, 3.0, 1.0, 3.0])


def test_a_bad_raise_power_is_refused_in_one_line(tmp_path: Path) -> None:
    for bad in (-0.5, 1.5, "1", True, [1]):
        path = _policy(tmp_path / "bad", action=2, raise_power=bad)
        with pytest.raises(PolicyFormatError, match="raise_power must be a number in \\[0, 1\\]") as info:
            load_policy(path)
        assert "\n" not in str(info.value)


def test_training_refuses_to_start_from_a_policy_with_per_epoch_raises(tmp_path: Path) -> None:
    path = _policy(tmp_path / "epoch", action=2, raise_power=1.0)
    with pytest.raises(ValueError, match="raises at rates per epoch") as info:
        _initial_actor(str(path), "bold", ActionSpec.parse(A5), A5, 2)
    assert "\n" not in str(info.value)
    assert _initial_actor(str(_policy(tmp_path / "plain", action=2)), "bold", ActionSpec.parse(A5), A5, 2) is not None


def test_the_shipped_finetune_policy_is_the_previous_default_with_raises_per_epoch() -> None:
    """``policy:finetune`` ships the weights of the default of its day (``policy:default-s28``) byte for byte with
    ``raise_power = 1``: per epoch it is that policy decision for decision, and at four decisions per epoch each of its
    raises is the fourth root of that policy's (which acts so itself only on a run declared pretrained)."""
    import hashlib

    from lrpilot.controller import from_spec
    from lrpilot.controller.policy import SHIPPED_DIR

    weights = (SHIPPED_DIR / "finetune.safetensors").read_bytes()
    assert weights == (SHIPPED_DIR / "default-s28.safetensors").read_bytes()
    card = json.loads((SHIPPED_DIR / "finetune.json").read_text())
    assert card["name"] == "finetune" and card["raise_power"] == 1.0
    assert card["provenance"]["weights_of"]["policy"] == "default-s28"
    assert card["provenance"]["weights_of"]["sha256"] == hashlib.sha256(weights).hexdigest()
    held = card["provenance"]["heldout_evaluation"]  # issue #16's grid with its 0.25 cells rerun (session 27)
    assert held["vs_rule_worst"][1] > -1 and held["vs_rule_per_lr_and_grid"]["minilm-e5-i0.25 lr=0.0001"] > 0
    losses = [0.69, 0.69, 0.68, 0.60, 0.55, 0.56, 0.50, 0.49]  # a flat start, then learning: the default raises
    for k in (1, 4):
        default, finetune = from_spec("policy:default-s28"), from_spec("policy:finetune")
        for c in (default, finetune):
            c.reset(1e-4, 5, k)
        pairs = [(default.act(m), finetune.act(m)) for m in
                 (EpochMetrics(epoch=i + 1, lr=1e-4, train_loss=v, val_loss=v, val_acc=0.5) for i, v in enumerate(losses))]
        assert any(d > 1 for d, _ in pairs)
        assert [f for _, f in pairs] == pytest.approx([d ** (1 / k) if d > 1 else d for d, _ in pairs])

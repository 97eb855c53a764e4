"""Residual policies (issue #16): the LR multiplier is a base rule's times a learned residual; training
starts at the rule, and the policy file records the rule and deploys as one controller."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpilot.cli import main
from lrpilot.controller import from_spec
from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ObservationEncoder
from lrpilot.controller.policy import PolicyFormatError, load_policy, save_policy
from lrpilot.controller.teacher_rules import teacher_multipliers
from lrpilot.learn.population_ppo import train_population_ppo
from lrpilot.learn.recipe import Recipe
from lrpilot.learn.residual import ResidualVecEnv, check_base
from lrpilot.learn.rollouts import population_venv, synthetic_distribution
from lrpilot.learn.validation import VALIDATION_TASKS, ValidationSet
from lrpilot.metrics import EpochMetrics

A5 = "0.1,0.5,1,1.5,2"


def _constant_policy(path: Path, action: int, base: str | None) -> None:
    """A policy that always picks ``action`` (zero weights, a bias on it)."""
    size = ObservationEncoder(2).size
    bias = torch.zeros(5)
    bias[action] = 5.0
    save_policy(path, layers=[(torch.zeros(5, size), bias)], activation="tanh", action=ActionSpec.parse(A5),
                provenance={}, encoder_version=2, base=base)


def test_a_residual_policy_multiplies_its_rules_decision_and_records_the_rule(tmp_path: Path) -> None:
    _constant_policy(tmp_path / "res", action=1, base="bold")  # residual x0.5 on the bold driver
    card = json.loads((tmp_path / "res.json").read_text())
    assert card["base"] == {"teacher": "bold"}
    policy = load_policy(tmp_path / "res")
    plain = load_policy(_constant_policy(tmp_path / "plain", action=1, base=None) or tmp_path / "plain")
    assert policy.base == "bold" and plain.base is None
    for c in (policy, plain):
        c.reset(1e-3, 10)
    history = [(1, 1.0), (2, 0.9), (3, 1.2)]  # first, improved, worse: bold answers x1, x1.5, x0.5
    got = [policy.act(EpochMetrics(epoch=e, lr=1e-3, train_loss=1.0, val_loss=v)) for e, v in history]
    assert got == pytest.approx([0.5, 0.75, 0.25])
    assert [plain.act(EpochMetrics(epoch=e, lr=1e-3, train_loss=1.0, val_loss=v)) for e, v in history] == [0.5] * 3


def test_a_card_with_an_unknown_base_rule_is_refused(tmp_path: Path) -> None:
    _constant_policy(tmp_path / "res", action=2, base="bold")
    card = json.loads((tmp_path / "res.json").read_text())
    for bad in ({"teacher": "no-such-rule"}, "bold", {"teacher": "bold", "up": 3}):
        (tmp_path / "res.json").write_text(json.dumps({**card, "base": bad}))
        with pytest.raises(PolicyFormatError, match="base must be"):
            load_policy(tmp_path / "res")


def test_the_residual_environment_applies_rule_times_residual() -> None:
    spec = check_base("bold-anneal-streakup", A5)
    venv = ResidualVecEnv(population_venv(synthetic_distribution(epochs_range=(6, 6)), A5, 4, 1, 1, seed=3),
                          "bold-anneal-streakup", spec)
    try:
        obs = venv.reset()
        for action in (4, 3, 0):  # x2, x1.5, x0.1 on top of the rule
            rule = teacher_multipliers("bold-anneal-streakup", obs)
            before = np.array([h[-1].lr for h in venv.env_method("history")])
            obs, _, dones, _ = venv.step(np.full(4, action))
            after = np.array([h[-1].lr for h in venv.env_method("history")])
            assert not dones.any()
            assert after / before == pytest.approx(rule * spec.multipliers[action])
    finally:
        venv.close()


def test_residual_ppo_starts_exactly_at_its_rule() -> None:
    torch.manual_seed(0)
    validation = ValidationSet(tasks=VALIDATION_TASKS[:2], budgets=(4,), lrs=(1e-4, 1e-2), seeds=(0,))
    result = train_population_ppo(
        None, distribution=synthetic_distribution(epochs_range=(4, 6)), actions=A5, timesteps=128, num_envs=8,
        groups=1, workers=1, n_steps=16, batch_size=64, n_epochs=1, gamma=1.0, base="bold-anneal-streakup",
        env_options={"twin": "bold-anneal-streakup", "budget_end": "terminal"}, validation=validation,
        validate_every=128)
    rule = validation.evaluate(lambda: from_spec("bold-anneal-streakup:acts=a5"))
    start = result.curve[0]
    assert start["timesteps"] == 0 and start["mean_regret"] == pytest.approx(rule["mean_regret"])
    assert start["mean_test_acc"] == pytest.approx(rule["mean_test_acc"])


def test_a_residual_recipe_is_checked_and_train_controller_exports_a_residual_policy(tmp_path: Path) -> None:
    for bad, match in (({"teacher": "bold"}, "no teacher"), ({"actions": "0.5,2"}, "with x1"),
                       ({"residual": "nope"}, "unknown base rule"), ({"redraw": "wait"}, "redraw must be")):
        with pytest.raises(ValueError, match=match):
            Recipe(**{"method": "population", "finetune_timesteps": 64, "actions": A5,
                      "residual": "bold-anneal-streakup", **bad}).validate()
    out = tmp_path / "run"
    assert main(["train-controller", "--method", "population", "--residual", "bold-anneal-streakup",
                 "--finetune-timesteps", "64", "--population-envs", "8", "--population-groups", "1",
                 "--population-workers", "1", "--n-steps", "8", "--batch-size", "32", "--n-epochs", "1",
                 "--epochs-range", "4,5", "--actions", A5, "--redraw", "drain", "--out", str(out), "--name", "res"]) == 0
    card = json.loads((out / "res.json").read_text())
    assert card["base"] == {"teacher": "bold-anneal-streakup"} and card["provenance"]["residual"] == "bold-anneal-streakup"
    assert load_policy(out / "res").base == "bold-anneal-streakup"
    assert card["provenance"]["redraw"] == "drain" and card["provenance"]["recipe"]["redraw"] == "drain"

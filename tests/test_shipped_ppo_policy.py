"""The shipped PPO-trained policy, ``policy:default`` since issue #16: what its card claims, and that it acts."""

from __future__ import annotations

import json
from pathlib import Path

from lrpilot.controller import from_spec
from lrpilot.controller.policy import SHIPPED_DIR
from lrpilot.learn.recipe import Recipe, load_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_ppo_policy_records_its_recipe_curve_and_held_out_evaluation() -> None:
    card = json.loads((SHIPPED_DIR / "default.json").read_text())
    prov = card["provenance"]
    trained = Recipe.from_dict(prov["recipe"])
    assert trained == load_recipe(ROOT / "configs" / "ppo-residual-fast.toml").replace(
        out_dir=trained.out_dir)  # the recipe file it was trained with, 1M steps and all
    assert trained.finetune_timesteps == 1_000_000 and trained.gamma == 1.0
    assert card["base"] == {"teacher": "bold-anneal-streakup"} and card["encoder"]["version"] == 2
    curve = prov["validation_curve"]
    assert curve[-1]["timesteps"] >= 1_000_000  # the run reached its 1M steps (item 4)
    assert prov["validation_best"] == min(curve, key=lambda e: (e["mean_regret"], e["timesteps"]))
    assert prov["validation_best"]["mean_regret"] < curve[0]["mean_regret"]  # PPO improved on its rule (validation)
    assert "paired_pooled" in prov["heldout_evaluation"]
    returns = [p["mean_return_vs_twin"] for p in prov["training_curve"]["points"]]  # the training curve
    assert len(returns) >= 10 and max(returns) > returns[0]


def test_the_previous_default_stays_loadable_under_its_own_name() -> None:
    """The long recipe's policy (``policy:default`` on 2026-12-02) is ``policy:ppo-residual-long``, weights unchanged."""
    card = json.loads((SHIPPED_DIR / "ppo-residual-long.json").read_text())
    prov = card["provenance"]
    assert card["name"] == "ppo-residual-long" and prov["validation_best"]["timesteps"] == 300_032
    assert Recipe.from_dict(prov["recipe"]) == load_recipe(ROOT / "configs" / "ppo-residual-1m.toml").replace(
        out_dir=prov["recipe"]["out_dir"], finetune_timesteps=prov["finetune_timesteps"])
    assert prov["finetune_timesteps"] == 399_360 < prov["finetune_timesteps_planned"] == 1_000_000  # ended early
    long, new = from_spec("policy:ppo-residual-long"), from_spec("policy:default")
    assert long.spec() == "policy:ppo-residual-long" and long.base == new.base == "bold-anneal-streakup"
    assert long.policy_hash != new.policy_hash


def test_the_shipped_ppo_policy_drives_a_run_through_the_rule_it_refines() -> None:
    from lrpilot.envs.episodes import EvalCase, run_controller
    from lrpilot.envs.lr_control import LRControlEnv

    controller = from_spec("policy:default")
    assert controller.base == "bold-anneal-streakup"
    env = LRControlEnv(task="iris-mlp", epochs=4, initial_lr=1e-3, evaluate_test=True, encoder_version=2)
    record = run_controller(env, EvalCase("iris-mlp", 1e-3, 0), controller)
    assert not record["diverged"] and record["test_acc"] > 0.5

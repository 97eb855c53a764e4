"""Training recipes: `lrpilot train-controller RECIPE.toml`, flags override fields, bad recipes fail in one
line naming the field, and the policy card records the recipe that reproduces its weights."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from lrpilot.cli import main
from lrpilot.learn.recipe import QUICK_CHANGES, QUICK_TIMESTEPS, Recipe, load_recipe, quick_recipe
from lrpilot.training.distribution import is_finetune_name

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_RECIPE = ROOT / "configs" / "clone-policy.toml"  # the recipe of policy:clone (byte for byte)
TINY_POPULATION = """
method = "population"
name = "tiny"
teacher = "bold-anneal-streakup"
actions = "0.1,0.5,1,1.5,2"
bc_steps = 4
bc_epochs = 2
dagger_rounds = 1
dagger_steps = 3
population_envs = 4
population_groups = 1
population_workers = 1
net_arch = [8]
"""


def _write(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_recipe_says_what_the_shipped_card_says() -> None:
    recipe = load_recipe(SHIPPED_RECIPE)
    card = json.loads((ROOT / "lrpilot" / "checkpoints" / "clone.json").read_text())
    assert recipe.method == "population" and recipe.teacher == "bold-anneal-streakup" and recipe.torch_threads == 1
    recorded = card["provenance"]["recipe"]
    assert Recipe.from_dict(recorded) == recipe.replace(out_dir=recorded["out_dir"])
    assert (recipe.bc_steps, recipe.bc_epochs, recipe.dagger_rounds, recipe.dagger_steps) == (400, 100, 1, 200)
    assert card["architecture"]["layer_sizes"] == [21, *recipe.net_arch, 5]


def test_the_quick_recipe_is_the_long_recipe_on_its_fast_part() -> None:
    """``lrpilot train-controller`` without a file runs configs/ppo-residual-1m.toml with the documented changes
    (MLP families, budgets 4-12, 16 groups, fewer steps, no validation, its own name); nothing else differs."""
    long = load_recipe(ROOT / "configs" / "ppo-residual-1m.toml")
    assert quick_recipe() == long.replace(**QUICK_CHANGES)
    changed = {k for k in QUICK_CHANGES if getattr(long, k) != QUICK_CHANGES[k]}
    assert changed == {"families", "epochs_range", "population_groups", "finetune_timesteps", "validate_every",
                       "name", "out_dir"}
    assert set(quick_recipe().families) < set(long.families) and quick_recipe().intervals == long.intervals
    assert long.finetune_timesteps >= 1_000_000 and QUICK_TIMESTEPS < long.finetune_timesteps // 5


def test_to_toml_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(SHIPPED_RECIPE).replace(task_options={"width": 16}, epoch_examples=128)
    assert Recipe.from_dict(tomllib.loads(recipe.to_toml())) == recipe
    assert "resume" not in recipe.to_toml()  # how to run is not part of what to train


def test_flags_override_single_fields(tmp_path: Path) -> None:
    import argparse

    from lrpilot.commands.train_controller import add_arguments, recipe_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser, "train-controller")
    args = parser.parse_args([str(SHIPPED_RECIPE), "--seed", "3", "--out", str(tmp_path), "--option", "width=8"])
    recipe = recipe_from_args(args)
    assert (recipe.seed, recipe.out_dir, dict(recipe.task_options)) == (3, str(tmp_path), {"width": 8})
    assert recipe.replace(seed=0, out_dir="runs/ctrl/clone", task_options={}) == load_recipe(SHIPPED_RECIPE)
    dests = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(Recipe)} <= dests  # every field of a recipe has a flag
    plain = recipe_from_args(parser.parse_args(["--bc-from", "bold"]))
    assert plain.method == "population" and plain.teacher == "bold"  # --bc-from implies the population method
    assert recipe_from_args(parser.parse_args([])) == quick_recipe()  # no file: the short PPO recipe
    assert recipe_from_args(parser.parse_args(["--method", "ppo"])) == Recipe()
    wide = recipe_from_args(parser.parse_args(["--intervals", "1,0.25", "--width-range", "8,64"]))
    assert (wide.intervals, wide.width_range) == ((1.0, 0.25), (8, 64))
    cheap = recipe_from_args(parser.parse_args(["--cnn-width-range", "4,16", "--seq-len", "16"]))
    assert (cheap.cnn_width_range, cheap.seq_len) == ((4, 16), 16)
    assert recipe_from_args(parser.parse_args(["--finetune-prob", "0.3", "--families", "seq"])).finetune_prob == 0.3
    cliff = recipe_from_args(parser.parse_args(["--finetune-prob", "0.3", "--families", "seq", "--finetune-shape", "cliff"]))
    assert cliff.finetune_shape == "cliff"
    steep = recipe_from_args(parser.parse_args(["--finetune-prob", "0.3", "--families", "seq", "--finetune-shape",
                                                "steep", "--validation-seeds", "6"]))
    assert (steep.finetune_shape, steep.validation_seeds, Recipe().validation_seeds) == ("steep", 6, 2)
    window = recipe_from_args(parser.parse_args(["--finetune-prob", "1", "--families", "seq", "--finetune-lr-range",
                                                 "1e-5,1e-3"]))
    assert (window.finetune_lr_range, Recipe().finetune_lr_range) == ((1e-5, 1e-3), None)
    cheap_tunes = recipe_from_args(parser.parse_args(["--finetune-prob", "1", "--families", "seq",
                                                      "--val-examples", "128"]))
    assert (cheap_tunes.val_examples, Recipe().val_examples) == (128, None)
    assert cheap_tunes.distribution().val_examples == 128
    confirmed = recipe_from_args(parser.parse_args(["--bc-from", "bold", "--validate-every", "9", "--confirm-seeds",
                                                    "4"]))
    assert (confirmed.confirm_seeds, Recipe().confirm_seeds) == (4, 0)
    played = recipe_from_args(parser.parse_args(["--bc-from", "bold", "--validate-every", "9", "--families", "seq",
                                                 "--finetune-prob", "0.5", "--finetune-validation-lrs", "1e-5,3e-5"]))
    assert (played.finetune_validation_lrs, Recipe().finetune_validation_lrs) == ((1e-5, 3e-5), None)


def test_the_fast_recipe_is_the_long_recipe_with_cheaper_sequence_cnns() -> None:
    """configs/ppo-residual-fast.toml changes only the CNNs' channels, the sequence length and the number of
    groups (and its name)."""
    long, fast = (load_recipe(ROOT / "configs" / f"ppo-residual-{n}.toml") for n in ("1m", "fast"))
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(long, f.name) != getattr(fast, f.name)}
    assert changed == {"cnn_width_range", "seq_len", "population_groups", "population_workers", "name", "out_dir"}
    assert (fast.cnn_width_range, fast.seq_len, fast.finetune_timesteps) == ((4, 16), 16, 1_000_000)
    assert fast.population_groups == fast.population_workers == 8 and fast.population_envs == long.population_envs


def test_the_finetune_recipe_continues_the_fast_recipes_policy_on_a_distribution_with_finetunes() -> None:
    """configs/ppo-residual-finetune.toml is the fast recipe (policy:ppo-residual-fast's) started from its result,
    with half of the seq draws fine-tunes, a smaller PPO step and a longer critic warm-up for the fresh critic."""
    fast, tune = (load_recipe(ROOT / "configs" / f"ppo-residual-{n}.toml") for n in ("fast", "finetune"))
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(fast, f.name) != getattr(tune, f.name)}
    assert changed == {"init_policy", "finetune_prob", "finetune_timesteps", "learning_rate", "critic_warmup",
                       "validate_every", "name", "out_dir"}
    assert (tune.init_policy, tune.finetune_prob, tune.residual) == ("ppo-residual-fast", 0.5, fast.residual)
    keep = load_recipe(ROOT / "configs" / "ppo-residual-finetune-keep.toml")  # the same, held near its start
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(keep, f.name) != getattr(tune, f.name)}
    assert changed == {"retention", "retention_until", "finetune_timesteps", "name", "out_dir"}
    assert keep.retention == 1.0 and keep.retention_until > 10 * keep.finetune_timesteps
    cliff = load_recipe(ROOT / "configs" / "ppo-residual-cliff.toml")  # the same, on the cliff fine-tune
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(keep, f.name) != getattr(cliff, f.name)}
    assert changed == {"finetune_shape", "finetune_timesteps", "validate_every", "name", "out_dir"}
    assert cliff.finetune_shape == "cliff" and cliff.validate_every < cliff.finetune_timesteps
    steep = load_recipe(ROOT / "configs" / "ppo-residual-steep.toml")  # the cliff's, with a fragile body
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(cliff, f.name) != getattr(steep, f.name)}
    assert changed == {"finetune_shape", "validate_every", "validation_seeds", "name", "out_dir"}
    assert (steep.finetune_shape, steep.validation_seeds) == ("steep", 4)
    window = load_recipe(ROOT / "configs" / "ppo-residual-window.toml")  # the steep's, started near its LRs
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(steep, f.name) != getattr(window, f.name)}
    assert changed == {"finetune_lr_range", "finetune_prob", "retention_until", "name", "out_dir"}
    assert (window.finetune_lr_range, window.finetune_prob, window.retention_until) == ((1e-5, 1e-3), 0.75, 150000)
    draws = [window.distribution().draw(np.random.default_rng(i)) for i in range(40)]  # what training draws
    assert {d.task.options["family"] for d in draws} <= {"teacher", "gmm", "seq"}
    finetunes = [d for d in draws if d.task.options.get("pretrain")]
    assert finetunes and all(1e-5 <= d.lr <= 1e-3 for d in finetunes)
    assert all(is_finetune_name(d.task.name) == bool(d.task.options.get("pretrain")) for d in draws)
    select = load_recipe(ROOT / "configs" / "ppo-residual-select.toml")  # the window's, held on from-scratch tasks
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(window, f.name) != getattr(select, f.name)}
    assert changed == {"twin", "retention_until", "retention_on", "finetune_validation_lrs", "name", "out_dir"}
    assert (select.twin, select.retention_on, select.retention_steps) == ("policy:ppo-residual-fast", "from-scratch", 1)
    assert select.retention_until > 1000 * select.finetune_timesteps  # the weight does not decay


@pytest.mark.parametrize(("text", "message"), [
    ("bc_stepz = 3", "unknown setting.*bc_stepz"),
    ("method = 'evolution'", "method must be one of ppo, population"),
    ("method = 'population'\nteacher = 'bold'\nbc_steps = 0", "bc_steps must be an integer >= 1"),
    ("method = 'population'\nteacher = 'nope'", "teacher must be one of"),
    ("teacher = 'bold'", "teacher: only method 'population'"),
    ("method = 'population'", "nothing to train"),
    ("method = 'population'\nteacher = 'bold'\nfamilies = ['digits-of-pi']", "families"),
    ("method = 'population'\nteacher = 'bold'\nactions = 'continuous'", "discrete action set"),
    ("tasks = ['no-such-task']", "no-such-task"),
    ("net_arch = [64, 0]", "net_arch"),
    ("gamma = 1.5", "gamma"),
    ("resume = true", "unknown setting.*resume"),
    ("seed = [", "invalid TOML"),
    ("actions = 1", "actions must be a string"),
    ("name = 3", "name must be a string"),
    ("out_dir = 3", "out_dir must be a string"),
    ("export_dir = 1", "export_dir must be a string"),
    ("device = 5", "device must be a string"),
    ("task_options = 3", "task_options must be a table"),
    ("epoch_examples = 0", "epoch_examples must be an integer >= 1"),
    ("lr_range = [1e-4]", "lr_range must be"),
    ("lr_range = [1, 'a']", "lr_range must be"),
    ("net_arch = 64", "net_arch must be a list"),
    ("seed = true", "seed must be an integer"),
    ("encoder_version = 3", "encoder_version must be one of 1, 2"),
    ("method = 'population'\nteacher = 'bold'\ntwin = 'no-such-rule'", "twin: unknown controller"),
    ("method = 'population'\nteacher = 'bold'\ntwin = 'rule+guard'", "twin: twin controller 'rule\\+guard' undoes"),
    ("method = 'population'\nteacher = 'bold'\nbudget_end = 'end'", "budget_end must be one of truncated, terminal"),
    ("method = 'population'\nteacher = 'bold'\ninit_policy = 'default'", "init_policy: PPO starts from it"),
    ("method = 'population'\nteacher = 'bold'\nepochs_range = [6, 4]", "epochs_range must be"),
    ("method = 'population'\nteacher = 'bold'\nvalidate_every = -1", "validate_every must be an integer >= 0"),
    ("method = 'population'\nteacher = 'bold'\nvalidation_seeds = 0", "validation_seeds must be an integer >= 1"),
    ("method = 'population'\nfinetune_timesteps = 8\nretention = 1.0", "retention: it keeps PPO near"),
    ("method = 'population'\nteacher = 'bold'\nretention = -1", "retention must be a number >= 0"),
    ("method = 'population'\nteacher = 'bold'\nretention_on = 'tunes'",
     "retention_on must be one of all, from-scratch"),
    ("method = 'population'\nteacher = 'bold'\nretention_on = 'from-scratch'", "retention_on = 'from-scratch' frees"),
    ("method = 'population'\nteacher = 'bold'\nretention_steps = 0", "retention_steps must be an integer >= 1"),
    ("method = 'population'\nfinetune_timesteps = 8\nresidual = 'bold-anneal-streakup'\nactions = '0.1,0.5,1,1.5,2'"
     "\nretention = 1.0", "retention: it keeps PPO near its starting actor"),
    ("intervals = [0]", "intervals must be a non-empty tuple of fractions"),
    ("intervals = 0.25", "intervals must be a list"),
    ("width_range = [64, 8]", "width_range"),
    ("cnn_width_range = [16, 4]", "cnn_width_range"),
    ("cnn_width_range = 8", "cnn_width_range must be a list"),
    ("seq_len = 2", "seq_len must be an integer in"),
    ("finetune_prob = 1.5", "finetune_prob must be in"),
    ("finetune_shape = 'sheer'", "finetune_shape must be one of"),
    ("finetune_lr_range = [1e-3, 1e-5]", "finetune_lr_range must be a pair"),
    ("finetune_lr_range = 1e-4", "finetune_lr_range must be a list"),
    ("val_examples = 8", "val_examples must be an integer in \\[16, 100000\\]"),
    ("val_examples = 128.0", "val_examples must be an integer, got 128.0"),
    ("method = 'population'\nteacher = 'bold'\nconfirm_seeds = 2", "confirm_seeds: it checks the best validated"),
    ("method = 'population'\nteacher = 'bold'\nvalidate_every = 9\nconfirm_seeds = -1",
     "confirm_seeds must be an integer >= 0"),
    ("finetune_prob = 0.2\nfamilies = ['teacher', 'gmm']", "finetune_prob draws fine-tunes of the seq family"),
    ("method = 'population'\nteacher = 'bold'\nfinetune_validation_lrs = [1e-5]",
     "finetune_validation_lrs: they are the validation fine-tune's initial LRs, so they need finetune_prob > 0"),
    ("method = 'population'\nteacher = 'bold'\nfinetune_validation_lrs = [0.0]",
     "finetune_validation_lrs must be a list of LRs > 0"),
    ("finetune_validation_lrs = 1e-4", "finetune_validation_lrs must be a list"),
])
def test_a_bad_recipe_fails_in_one_line_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message):
        load_recipe(path)
    assert main(["train-controller", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err


def test_a_missing_recipe_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-controller", str(tmp_path / "none.toml")]) == 2
    assert "recipe file" in capsys.readouterr().err


@pytest.mark.slow
def test_the_card_records_the_recipe_and_the_recorded_recipe_reproduces_the_weights(tmp_path: Path) -> None:
    path = _write(tmp_path, TINY_POPULATION)
    assert main(["train-controller", str(path), "--out", str(tmp_path / "a")]) == 0
    card = json.loads((tmp_path / "a" / "tiny.json").read_text())
    recorded = card["provenance"]["recipe"]
    assert "resume" not in recorded and "command" not in card["provenance"]
    assert Recipe.from_dict(recorded) == load_recipe(path).replace(out_dir=str(tmp_path / "a"))
    again = _write(tmp_path, Recipe.from_dict(recorded).replace(out_dir=str(tmp_path / "b")).to_toml(), "again.toml")
    assert main(["train-controller", str(again)]) == 0
    assert (tmp_path / "a" / "tiny.safetensors").read_bytes() == (tmp_path / "b" / "tiny.safetensors").read_bytes()

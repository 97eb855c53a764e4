"""Staged recipes: `lrpilot train-controller configs/default.toml` trains policy:default's two stages in one
command, the second from the first's policy, and resumes a killed run without training a finished stage again.
`configs/default-s28.toml` does the same for the previous default, policy:default-s28."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from lrpilot.cli import main
from lrpilot.controller.policy import load_policy
from lrpilot.learn.recipe import Recipe, load_recipe
from lrpilot.learn.stages import load_any_recipe, load_staged

ROOT = Path(__file__).resolve().parents[1]
ONE = """
method = "population"
name = "one"
residual = "bold-anneal-streakup"
actions = "0.1,0.5,1,1.5,2"
encoder_version = 2
twin = "bold-anneal-streakup"
budget_end = "terminal"
finetune_timesteps = 128
population_envs = 8
population_groups = 1
population_workers = 1
n_steps = 16
batch_size = 64
n_epochs = 1
epochs_range = [4, 5]
families = ["teacher", "gmm"]
width_range = [8, 16]
"""
STAGED = """
name = "both"
raise_power_pretrained = 1

[[stage]]
name = "first"
recipe = "one.toml"

[[stage]]
name = "second"
recipe = "one.toml"
init_policy = "@first"
twin = "policy:@first"
finetune_timesteps = 64
critic_warmup = 1000000
"""


def _write(folder: Path, staged: str = STAGED) -> Path:
    (folder / "one.toml").write_text(ONE)
    path = folder / "staged.toml"
    path.write_text(staged)
    return path


def test_configs_default_is_the_recipe_whose_run_ships_as_the_default() -> None:
    """configs/default.toml trains, stage by stage, what the shipped default's card records of its run (session 34's
    docs/data/s34/undo/undo.toml): configs/default-lean256.toml with the undo action in both stages; the card says the
    run met issue #16's (a), (b) and (c) on the held-out grid."""
    staged = load_staged(ROOT / "configs" / "default.toml")
    lean = load_staged(ROOT / "configs" / "default-lean256.toml")
    assert (staged.name, staged.out_dir, staged.card) == ("default", "runs/ctrl/default", {"raise_power_pretrained": 1})
    card = json.loads((ROOT / "lrpilot" / "checkpoints" / "default.json").read_text())
    assert card["raise_power_pretrained"] == 1 and card["action"]["undo"] is True
    assert [s.name for s in staged.stages] == [s["name"] for s in card["provenance"]["stages"]] == ["fast", "select"]
    for stage, trained, leaner in zip(staged.stages, card["provenance"]["stages"], lean.stages):
        assert stage.recipe.actions == "0.1,0.5,1,1.5,2,undo"
        assert stage.recipe.replace(actions=leaner.recipe.actions, out_dir=leaner.recipe.out_dir) == leaner.recipe
        named = {"out_dir": stage.recipe.out_dir, "init_policy": stage.recipe.init_policy, "twin": stage.recipe.twin}
        assert Recipe.from_dict({**trained["recipe"], **named}) == stage.recipe  # the run named its own folders
    assert card["provenance"]["stages"][1]["recipe"]["init_policy"] == card["provenance"]["stages"][0]["policy"]
    fast, select = staged.stages
    assert fast.recipe.finetune_timesteps >= 1_000_000 and (select.recipe.init_policy, select.twin) == (
        "@fast", "policy:@fast")
    held = card["provenance"]["heldout_evaluation"]
    assert held["paired_pooled"]["policy:clone"]["p_value"] < 0.05 < held["paired_pooled"]["policy:clone"][
        "mean_diff_points"] and held["vs_rule_worst"][1] > -1


def test_configs_default_s28_is_the_fast_recipe_then_the_select_run_that_was_shipped() -> None:
    """Stage 1 is configs/ppo-residual-fast.toml unchanged; stage 2 trains what policy:default-s28's card says it
    was trained with (session 24's run of the select recipe, seed 1), except that it starts from stage 1 and plays
    it as the twin, stops at the shipped checkpoint's step and exports its last actor (no validation)."""
    staged = load_staged(ROOT / "configs" / "default-s28.toml")
    assert (staged.name, staged.out_dir) == ("default-s28", "runs/ctrl/default-s28")
    fast, select = staged.stages
    assert fast.recipe == load_recipe(ROOT / "configs" / "ppo-residual-fast.toml").replace(out_dir=fast.recipe.out_dir)
    assert fast.recipe.finetune_timesteps >= 1_000_000
    card = json.loads((ROOT / "lrpilot" / "checkpoints" / "default-s28.json").read_text())
    assert card["provenance"]["shipped_checkpoint"]["timesteps"] == select.recipe.finetune_timesteps == 100352
    trained = Recipe.from_dict(card["provenance"]["recipe"])
    assert select.recipe.validate_every == 0 and (select.recipe.init_policy, select.twin) == ("@fast",
                                                                                           "policy:@fast")
    same = trained.replace(init_policy="@fast", twin=None, finetune_timesteps=100352, validate_every=0,
                           validation_seeds=2, finetune_validation_lrs=None, name="select",
                           out_dir=select.recipe.out_dir, checkpoint_every=select.recipe.checkpoint_every)
    assert select.recipe == same
    assert staged.card == {"raise_power_pretrained": card["raise_power_pretrained"]}  # the card's, since session 28
    assert "raise_power" not in card
    assert load_recipe(ROOT / "configs" / "ppo-residual-select.toml").replace(seed=1) == trained.replace(
        init_policy="ppo-residual-fast", twin="policy:ppo-residual-fast", name="ppo-residual-select",
        out_dir="runs/ctrl/ppo-residual-select", checkpoint_every=2048)


def test_configs_default_lean_is_the_default_with_128_validation_examples_per_draw() -> None:
    """configs/default-lean.toml (session 33) changes one thing in each of configs/default-s28.toml's stages: every drawn
    task validates on 128 examples; its own name, output directory and card field are the default's."""
    lean, default = load_staged(ROOT / "configs" / "default-lean.toml"), load_staged(ROOT / "configs" / "default-s28.toml")
    assert (lean.name, lean.out_dir, lean.card) == ("default-lean", "runs/ctrl/default-lean", default.card)
    assert [s.name for s in lean.stages] == [s.name for s in default.stages]
    for ours, theirs in zip(lean.stages, default.stages):
        assert ours.recipe.val_examples == 128 and theirs.recipe.val_examples is None
        assert ours.recipe.distribution().val_examples == 128
        assert ours.recipe.replace(val_examples=None, out_dir=theirs.recipe.out_dir) == theirs.recipe
        assert (ours.recipe.init_policy, ours.twin) == (theirs.recipe.init_policy, theirs.twin)


@pytest.mark.slow
def test_the_second_stage_starts_from_the_first_and_its_policy_is_exported_with_every_stage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The second stage starts PPO from the first stage's policy and plays it as the twin; with its critic warming
    up all run the actor cannot move, so it exports the first stage's weights. ``OUT/NAME`` is the last stage's
    policy with every stage in its card. Run again, the run is refused in one line; with ``--resume`` a finished
    stage is not trained again, and a stage that never ran is trained: the result is the same bytes."""
    path = _write(tmp_path)
    out = tmp_path / "out"
    assert main(["train-controller", str(path), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "stage 1 of 2: first" in said and "stage 2 of 2: second" in said
    first, second = load_policy(out / "first" / "one"), load_policy(out / "second" / "one")
    for a, b in zip(first.actor.parameters(), second.actor.parameters()):
        assert torch.equal(a, b)
    final = out / "both.safetensors"
    assert final.read_bytes() == (out / "second" / "one.safetensors").read_bytes()
    card = json.loads((out / "both.json").read_text())
    stages = card["provenance"]["stages"]
    assert [s["name"] for s in stages] == ["first", "second"]
    assert stages[0]["weights_sha256"] == hashlib.sha256((out / "first" / "one.safetensors").read_bytes()).hexdigest()
    assert stages[1]["recipe"]["init_policy"] == str(out / "first" / "one")
    assert stages[1]["recipe"]["twin"] == f"policy:{out / 'first' / 'one'}"
    assert card["provenance"]["recipe"] == stages[1]["recipe"] and card["base"] == {"teacher": "bold-anneal-streakup"}
    assert card["raise_power_pretrained"] == 1.0 and "raise_power" not in card  # the file's top level, on the card
    assert "raise_power_pretrained" not in json.loads((out / "second" / "one.json").read_text())
    both = load_policy(out / "both")
    assert (both.raise_power, both.raise_power_pretrained) == (0.0, 1.0)

    assert main(["train-controller", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--resume" in err

    before, spent = final.read_bytes(), stages[0]["seconds"]
    for file in (out / "second").rglob("*"):  # as if killed before the second stage began
        if file.is_file():
            file.unlink()
    final.unlink()
    assert main(["train-controller", str(path), "--out", str(out), "--resume"]) == 0
    said = capsys.readouterr().out
    assert "stage 1 of 2: first in" in said and "(resumed)" in said.split("stage 2")[0]
    assert "(resumed)" not in said.split("stage 2")[1].splitlines()[0]
    assert final.read_bytes() == before
    resumed = json.loads((out / "both.json").read_text())["provenance"]["stages"][0]
    assert resumed["seconds"] >= spent > 0  # the time stage 1 took, not the moment its resume took


@pytest.mark.parametrize("text, says", [
    ("name = 'x'\nseed = 1\n[[stage]]\nname = 'a'\nrecipe = 'one.toml'\n", "move seed into the stages"),
    ("[[stage]]\nrecipe = 'one.toml'\n", "needs a name"),
    ("[[stage]]\nname = 'a'\nrecipe = 'one.toml'\n[[stage]]\nname = 'a'\nrecipe = 'one.toml'\n", "used twice"),
    ("[[stage]]\nname = 'a'\nrecipe = 'one.toml'\ninit_policy = '@b'\n", "does not run before it"),
    ("[[stage]]\nname = 'a'\nrecipe = 'one.toml'\n[[stage]]\nname = 'b'\nrecipe = 'one.toml'\ntwin = '@a'\n",
     "policy:@STAGE"),
    ("[[stage]]\nname = 'a'\nrecipe = 'one.toml'\nmethod = 'ppo'\nresidual = ''\n", "stage 1 (a)"),
    ("[[stage]]\nname = 'a'\nrecipe = 'staged.toml'\n", "itself staged"),
    ("[[stage]]\nname = 'a'\nrecipe = 'one.toml'\nseed = -1\n", "stage 1 (a): seed"),
    ("raise_power_pretrained = 2\n[[stage]]\nname = 'a'\nrecipe = 'one.toml'\n", "raise_power_pretrained"),
    ("raise_power = 'all'\n[[stage]]\nname = 'a'\nrecipe = 'one.toml'\n", "[0, 1]"),
])
def test_a_bad_staged_recipe_fails_in_one_line_naming_the_stage_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str) -> None:
    path = _write(tmp_path, text)
    assert main(["train-controller", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and says in err, err
    assert not (tmp_path / "out").exists()


def test_a_staged_recipe_takes_only_the_flags_that_apply_to_every_stage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    assert main(["train-controller", str(path), "--seed", "3", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--seed" in err and "stage's table" in err
    staged = load_any_recipe(path)
    assert [s.recipe.finetune_timesteps for s in staged.stages] == [128, 64]  # the stage's keys override its file
    assert staged.replace(out_dir="elsewhere").stage_dir(staged.stages[1]) == Path("elsewhere") / "second"


@pytest.mark.slow
def test_a_staged_run_killed_inside_its_second_stage_resumes_there(tmp_path: Path) -> None:
    """kill -9 while the second stage trains: ``--resume`` leaves the first stage as it was, goes on with the second
    from its last progress checkpoint, and exports the policy."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = _write(tmp_path, STAGED.replace("finetune_timesteps = 64\ncritic_warmup = 1000000",
                                           "finetune_timesteps = 1024\ncheckpoint_every = 128"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lrpilot", "train-controller", str(path), "--out", str(out)]
    progress = out / "second" / "population-state" / "finetune-progress.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not progress.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()[-2000:]  # still training when the second stage's checkpoint lands
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    first = (out / "first" / "one.safetensors").read_bytes()
    at = torch.load(progress, weights_only=True)["timesteps"]
    assert 128 <= at < 1024 and not (out / "both.json").exists()
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming PPO at {at} of 1024 steps" in done.stdout
    assert (out / "first" / "one.safetensors").read_bytes() == first
    card = json.loads((out / "both.json").read_text())
    assert card["provenance"]["finetune_timesteps"] == 1024 and not progress.exists()


def test_a_resumed_run_reports_at_least_the_seconds_its_earlier_process_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a run reports as its seconds is what it wrote for a resume to start from, so a stage resumed after it
    finished never says it took less time than its first run said (CI once saw 0.3 against 0.4)."""
    import lrpilot.learn.pipeline_state as pipeline_state

    clock = iter([100.0, 100.36, 200.0, 200.0])  # began; reported 0.36 s in; the resume begins and reports at once
    monkeypatch.setattr(pipeline_state.time, "perf_counter", lambda: next(clock))
    first = pipeline_state.PopulationCheckpoint(tmp_path, {"seed": 0}, resume=False)
    written = first.record_seconds()
    assert json.loads((first.dir / "elapsed.json").read_text())["seconds"] == written == pytest.approx(0.36)
    again = pipeline_state.PopulationCheckpoint(tmp_path, {"seed": 0}, resume=True)
    assert round(again.record_seconds(), 1) >= round(written, 1) == 0.4


def test_configs_default_lean256_validates_drawn_tasks_on_256_then_128_examples() -> None:
    """configs/default-lean256.toml (session 34) is configs/default-s28.toml with 256 validation examples per draw and
    half the validations in stage "fast", and 128 validation examples per draw in stage "select"."""
    lean, default = load_staged(ROOT / "configs" / "default-lean256.toml"), load_staged(ROOT / "configs" / "default-s28.toml")
    assert (lean.name, lean.out_dir, lean.card) == ("default-lean256", "runs/ctrl/default-lean256", default.card)
    (fast, select), (default_fast, default_select) = lean.stages, default.stages
    assert (fast.recipe.val_examples, fast.recipe.validate_every) == (256, 200_000)
    assert fast.recipe.replace(val_examples=None, validate_every=default_fast.recipe.validate_every,
                               out_dir=default_fast.recipe.out_dir) == default_fast.recipe
    assert select.recipe.distribution().val_examples == 128
    assert select.recipe.replace(val_examples=None, out_dir=default_select.recipe.out_dir) == default_select.recipe
    assert (select.recipe.init_policy, select.twin) == (default_select.recipe.init_policy, default_select.twin)

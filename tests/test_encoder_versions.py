"""Observation encoder versions: version 1 stays what it was (the shipped policy acts as before);
version 2 adds the budget's size and undo; policy files load with the version they name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpilot.controller import from_spec
from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import BUDGET_FEATURES, FEATURES, ObservationEncoder
from lrpilot.controller.policy import SHIPPED_DIR, PolicyFormatError, load_policy
from lrpilot.learn.export import encoder_version_of, export_policy
from lrpilot.metrics import EpochMetrics

VALS = [2.3, 1.9, 1.7, 1.75, 1.5, 1.45, 1.46, 1.3, 1.29, 1.31, 1.2, 1.21]


def history(n: int, undone: tuple[int, ...] = ()) -> list[EpochMetrics]:
    return [EpochMetrics(epoch=e, lr=1e-3, train_loss=v * 0.9, train_loss_std=0.1, val_loss=v, val_acc=0.5 + e / 40,
                         undone=e in undone) for e, v in enumerate(VALS[:n], 1)]


def test_the_shipped_clone_reads_version_1_and_decides_as_before_versions_existed() -> None:
    """The behaviour clone (shipped as `policy:default` before issue #16, now `policy:clone`) is a version-1 file."""
    card = json.loads((SHIPPED_DIR / "clone.json").read_text())
    assert card["encoder"] == ObservationEncoder().describe() and ObservationEncoder().version == 1
    controller = from_spec("policy:clone")
    assert controller.encoder.version == 1 and controller.encoder.size == len(FEATURES) == 21
    controller.reset(1e-3, 12)
    lr, decisions = 1e-3, []
    for m in history(12):
        decisions.append(controller.act(EpochMetrics(**{**m.to_dict(), "lr": lr})))
        lr *= decisions[-1]
    # computed with lrpilot at 717c7f5, before encoder versions existed
    assert decisions == [1.0, 1.5, 1.5, 0.5, 1.5, 1.5, 0.5, 1.5, 0.5, 0.5, 0.5, 0.5]


def test_version_2_appends_the_budget_and_undo_to_version_1() -> None:
    v1, v2 = ObservationEncoder(1), ObservationEncoder(2)
    assert v2.feature_names == [f.name for f in FEATURES + BUDGET_FEATURES] and v2.size == v1.size + 4
    past = history(3, undone=(2,))
    a, b = v1.encode(past, 1e-3, 10), v2.encode(past, 1e-3, 10)
    assert np.array_equal(b[:v1.size], a)  # the version-1 features keep their values and positions
    extra = dict(zip(v2.feature_names[v1.size:], b[v1.size:].tolist()))
    assert extra["log_decisions_left"] == pytest.approx(math.log1p(7)) and extra["log_budget"] == pytest.approx(math.log(10))
    assert extra["undone"] == 0.0 and extra["undone_fraction"] == pytest.approx(0.1)
    assert v2.encode(history(2, undone=(2,)), 1e-3, 10)[v1.size + 2] == 1.0  # the last interval was undone
    short, long = v2.encode(history(1), 1e-3, 4), v2.encode(history(1), 1e-3, 40)
    assert short[v1.size + 1] < long[v1.size + 1]  # 4 and 40 decisions look different from the start ...
    assert v1.encode(history(1), 1e-3, 4)[0] != v1.encode(history(1), 1e-3, 40)[0]  # (v1 sees only the fraction)
    with pytest.raises(ValueError, match="encoder version must be one of 1, 2"):
        ObservationEncoder(3)


def _actor(inputs: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(inputs, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))


def test_a_version_2_policy_file_records_and_loads_its_encoder(tmp_path: Path) -> None:
    card_path, _ = export_policy(_actor(25), tmp_path / "v2", "0.1,0.5,1,2", {"method": "test"})
    card = json.loads(card_path.read_text())
    assert card["encoder"]["version"] == 2 and card["encoder"]["features"][-1] == "undone_fraction"
    policy = load_policy(str(tmp_path / "v2"))
    assert policy.encoder.version == 2
    policy.reset(1e-3, 10)
    lr = 1e-3
    for m in history(4):
        lr *= policy.act(EpochMetrics(**{**m.to_dict(), "lr": lr}))
    assert policy.predict(ObservationEncoder(2).encode(history(4), 1e-3, 10)) in range(4)
    assert encoder_version_of(21) == 1 and encoder_version_of(25) == 2
    with pytest.raises(ValueError, match="no single encoder version"):
        export_policy(_actor(7), tmp_path / "bad", "0.1,0.5,1,2", {})


@pytest.mark.parametrize(("change", "message"), [
    ({"version": 3}, "encoder version mismatch"),
    ({"version": 2, "features": [f.name for f in FEATURES]}, "encoder features mismatch"),
])
def test_a_card_naming_an_unknown_or_inconsistent_encoder_is_refused(tmp_path: Path, change, message) -> None:
    export_policy(_actor(25), tmp_path / "p", ActionSpec.parse("0.1,0.5,1,2"), {})
    path = tmp_path / "p.json"
    card = json.loads(path.read_text())
    card["encoder"].update(change)
    path.write_text(json.dumps(card))
    with pytest.raises(PolicyFormatError, match=message):
        load_policy(str(tmp_path / "p"))


def test_an_env_with_encoder_version_2_keeps_its_observation_promise() -> None:
    from gymnasium.utils.env_checker import check_env

    from lrpilot.envs.lr_control import LRControlEnv

    env = LRControlEnv(task="digits-mlp", epochs=3, encoder_version=2, epoch_examples=128)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (25,) and env.observation_space.contains(obs)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(2)
        assert env.observation_space.contains(obs)
        done = terminated or truncated
    assert obs[22] == pytest.approx(math.log(3)) and obs[21] == 0.0  # the budget; no decision left
    with pytest.raises(ValueError, match="encoder_version"):
        LRControlEnv(task="digits-mlp", encoder_version=5)


@pytest.mark.slow
def test_population_training_with_encoder_version_2_exports_a_version_2_policy(tmp_path: Path) -> None:
    from lrpilot.cli import main

    recipe = tmp_path / "r.toml"
    recipe.write_text('method = "population"\nteacher = "bold"\nbc_steps = 3\nbc_epochs = 2\npopulation_envs = 4\n'
                      'population_groups = 1\npopulation_workers = 1\nnet_arch = [8]\nencoder_version = 2\n')
    assert main(["train-controller", str(recipe), "--out", str(tmp_path / "out"), "--name", "v2"]) == 0
    policy = load_policy(str(tmp_path / "out" / "v2"))
    assert policy.encoder.version == 2 and policy.card["provenance"]["recipe"]["encoder_version"] == 2

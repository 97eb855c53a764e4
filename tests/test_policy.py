"""Policy files: save/load round trip, the LearnedController, and refusal of every invalid file."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpilot.controller import from_spec
from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ObservationEncoder
from lrpilot.controller.policy import SHIPPED_DIR, LearnedController, PolicyFormatError, load_policy, save_policy
from lrpilot.metrics import EpochMetrics

ENC = ObservationEncoder()


def random_layers(sizes: list[int], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(o, i, generator=g), torch.randn(o, generator=g)) for i, o in zip(sizes[:-1], sizes[1:])]


def write_policy(base: Path, action: ActionSpec | None = None, seed: int = 0) -> Path:
    action = action or ActionSpec()
    save_policy(base, layers=random_layers([ENC.size, 8, action.size], seed), activation="tanh", action=action,
                provenance={"seed": seed}, evaluation=None)
    return base


def metrics(epoch: int, val: float, lr: float = 1e-3) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, lr=lr, train_loss=val * 1.1, train_loss_std=0.1, val_loss=val, val_acc=0.5)


def test_round_trip_acts_and_resumes(tmp_path: Path) -> None:
    base = write_policy(tmp_path / "p")
    ctl = load_policy(str(base))
    assert isinstance(ctl, LearnedController) and ctl.name == "policy" and ctl.spec() == f"policy:{base}"
    assert ctl.required_metrics == ("train_loss", "val_loss")
    data = (tmp_path / "p.json").read_bytes() + (tmp_path / "p.safetensors").read_bytes()
    assert ctl.policy_hash == hashlib.sha256(data).hexdigest()
    ctl.reset(1e-3, 10)
    first = [ctl.act(metrics(e, 2.0 / e)) for e in range(1, 4)]
    assert all(m in ActionSpec().multipliers for m in first)
    state = json.loads(json.dumps(ctl.state_dict(), allow_nan=False))  # JSON-safe
    later = [ctl.act(metrics(e, 2.0 / e)) for e in range(4, 7)]
    again = load_policy(tmp_path / "p.json")
    assert again.spec() == ctl.spec()  # the suffix does not change the name
    again.load_state_dict(state)
    assert [again.act(metrics(e, 2.0 / e)) for e in range(4, 7)] == later


def test_path_forms_and_spec_strings(tmp_path: Path) -> None:
    base = write_policy(tmp_path / "q")
    hashes = {load_policy(p).policy_hash for p in (str(base), f"{base}.json", f"{base}.safetensors", base)}
    assert len(hashes) == 1
    assert from_spec(f"ppo:{base}").policy_hash in hashes


def test_state_of_another_policy_is_refused(tmp_path: Path) -> None:
    a, b = load_policy(write_policy(tmp_path / "a", seed=1)), load_policy(write_policy(tmp_path / "b", seed=2))
    a.reset(1e-3, 5)
    with pytest.raises(ValueError, match="policy"):
        b.load_state_dict(a.state_dict())


def test_continuous_policy_predicts_within_bounds(tmp_path: Path) -> None:
    ctl = load_policy(write_policy(tmp_path / "c", ActionSpec(kind="continuous", min_multiplier=0.2, max_multiplier=5.0)))
    ctl.reset(1e-3, 10)
    for e in range(1, 5):
        assert 0.2 <= ctl.act(metrics(e, 1.0 / e)) <= 5.0


def test_shipped_default_loads_as_spec() -> None:
    """`policy:default` is the PPO-trained residual (issue #16); the behaviour clone it replaced is `policy:clone`."""
    ctl = from_spec("ppo:default")
    assert ctl.spec() == "policy:default" and len(ctl.policy_hash) == 64
    assert (SHIPPED_DIR / "default.json").exists() and SHIPPED_DIR.parent.name == "lrpilot"
    card = json.loads((SHIPPED_DIR / "default.json").read_text())
    assert card["base"] == {"teacher": "bold-anneal-streakup"} and card["provenance"]["finetune_timesteps"] > 0
    ctl.reset(1e-3, 15)
    assert ctl.act(metrics(1, 1.0)) > 0
    clone = from_spec("policy:clone")
    assert clone.spec() == "policy:clone" and clone.policy_hash != ctl.policy_hash
    card = json.loads((SHIPPED_DIR / "clone.json").read_text())
    assert card["provenance"]["recipe"]["teacher"] == "bold-anneal-streakup" and card["provenance"]["finetune_timesteps"] == 0
    assert {"ppo", "rule"} <= set(card["evaluation"]["controllers"])


def test_missing_policy_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such"):
        load_policy("no-such")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_policy(str(tmp_path / "missing"))


def _mutate_card(key_path: list[str], value: object):  # noqa: ANN202
    def mutate(card: dict) -> dict:
        target = card
        for key in key_path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[key_path[-1]]
        else:
            target[key_path[-1]] = value
        return card
    return mutate


CARD_MUTATIONS = {
    "format_version": (_mutate_card(["format_version"], 99), "format_version 99"),
    "format": (_mutate_card(["format"], "sb3"), "format"),
    "missing key": (_mutate_card(["encoder"], KeyError), "missing key"),
    "encoder version": (_mutate_card(["encoder", "version"], 0), "encoder version"),
    "encoder features": (_mutate_card(["encoder", "features"], ["progress"]), "encoder features"),
    "encoder name": (_mutate_card(["encoder", "name"], "other"), "encoder name"),
    "layer sizes": (_mutate_card(["architecture", "layer_sizes"], [ENC.size, 9, 4]), "shape"),
    "input size": (_mutate_card(["architecture", "layer_sizes"], [5, 8, 4]), "input size"),
    "activation": (_mutate_card(["architecture", "activation"], "gelu"), "activation"),
    "action": (_mutate_card(["action", "multipliers"], [0.5, 1.0, 2.0]), "output size"),
    "normalization": (_mutate_card(["normalization"], {"mean": [0.0]}), "normalization"),
}


@pytest.mark.parametrize("case", sorted(CARD_MUTATIONS))
def test_invalid_cards_are_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    base = write_policy(tmp_path / "bad")
    card_path = tmp_path / "bad.json"
    mutate, match = CARD_MUTATIONS[case]
    card_path.write_text(json.dumps(mutate(json.loads(card_path.read_text()))))
    with pytest.raises(PolicyFormatError, match=match) as err:
        load_policy(str(base))
    assert "bad." in str(err.value)


@pytest.mark.parametrize("content", [b"not json {", b"[1, 2]", b"\xff\xfe", b'{"format": NaN}'])
def test_non_json_cards_are_refused(tmp_path: Path, content: bytes) -> None:
    base = write_policy(tmp_path / "nj")
    (tmp_path / "nj.json").write_bytes(content)
    with pytest.raises(PolicyFormatError, match="nj.json"):
        load_policy(str(base))


def test_weights_that_do_not_match_are_refused(tmp_path: Path) -> None:
    base = write_policy(tmp_path / "w")
    other = write_policy(tmp_path / "o", ActionSpec(multipliers=(0.5, 1.0, 2.0)))
    os.replace(f"{other}.safetensors", f"{base}.safetensors")
    with pytest.raises(PolicyFormatError, match="w.safetensors.*shape"):
        load_policy(str(base))
    (tmp_path / "w.safetensors").unlink()
    with pytest.raises(PolicyFormatError, match="missing"):
        load_policy(str(base))


class _Payload:
    """Unpickling this creates a marker file: proof that a loader unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_a_pickle_renamed_safetensors_is_refused_and_never_run(tmp_path: Path, how: str) -> None:
    base = write_policy(tmp_path / "evil")
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.safetensors", "wb") as fh:
        if how == "pickle":
            pickle.dump(_Payload(marker), fh)
        else:
            torch.save({"actor.0.weight": _Payload(marker)}, fh)
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof)))
    assert proof.exists()  # the payload works: unpickling it touches its marker
    with pytest.raises(PolicyFormatError, match="evil.safetensors.*not a safetensors file"):
        load_policy(str(base))
    assert not marker.exists()


def test_save_policy_validates_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="activation"):
        save_policy(tmp_path / "x", layers=random_layers([ENC.size, 4]), activation="gelu", action=ActionSpec(),
                    provenance={})
    with pytest.raises(PolicyFormatError, match="input size"):
        save_policy(tmp_path / "y", layers=random_layers([3, 4]), activation="tanh", action=ActionSpec(), provenance={})
    with pytest.raises(PolicyFormatError, match=r"raise_power_pretrained must be a number in \[0, 1\]"):
        save_policy(tmp_path / "z", layers=random_layers([ENC.size, 4]), activation="tanh", action=ActionSpec(),
                    provenance={}, raise_power_pretrained=1.5)
    assert not list(tmp_path.glob("z.*"))  # refused before anything was written
    save_policy(tmp_path / "w", layers=random_layers([ENC.size, 4]), activation="tanh", action=ActionSpec(),
                provenance={}, raise_power_pretrained=1)
    assert load_policy(tmp_path / "w").raise_power_pretrained == 1.0


def test_loading_a_policy_imports_no_gymnasium_or_sb3() -> None:
    code = ("import sys; from lrpilot.controller.policy import load_policy; load_policy('default');"
            "print([m for m in ('gymnasium', 'stable_baselines3', 'lrpilot.envs') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", ["clone", "default", "default-s28", "default-s25", "finetune", "ppo-residual-fast",
                                  "ppo-residual-long"])
def test_a_learned_policy_keeps_the_lr_where_it_was_trained(name: str) -> None:
    """The training envs keep an episode's LR within x1e-4..x100 of the initial LR; so does the deployed policy."""
    ctl = load_policy(name)
    ctl.reset(1e-3, 30)
    lr, seen = 1e-3, []
    for epoch in range(1, 31):  # a loss that improves every epoch: the clone keeps raising the LR ...
        lr *= ctl.act(EpochMetrics(epoch=epoch, lr=lr, train_loss=1.0 / epoch, val_loss=1.0 / epoch, val_acc=0.5))
        seen.append(lr)
    assert 1e-3 * 1e-4 <= min(seen) and max(seen) <= 1e-3 * 100 * (1 + 1e-9)  # ... up to 100x the initial LR, no further
    if name == "clone":
        assert max(seen) > 1e-2
    ctl.reset(1e-3, 30)
    assert ctl.act(EpochMetrics(epoch=1, lr=1.0, train_loss=1.0, val_loss=1.0)) == pytest.approx(0.1)  # pulled back


def test_a_state_saved_under_the_ppo_alias_resumes_the_same_decisions() -> None:
    """States written before `policy:` existed name the policy `ppo:default`; they still load."""
    first = load_policy("default")
    first.reset(1e-3, 10)
    for e in range(1, 4):
        first.act(metrics(e, 1.0 / e))
    state = json.loads(json.dumps(first.state_dict()))
    assert state["spec"] == "policy:default"
    state["spec"] = "ppo:default"
    again = load_policy("default")
    again.load_state_dict(state)
    assert again.spec() == "policy:default" and again.history == first.history
    assert again.act(metrics(4, 0.2)) == first.act(metrics(4, 0.2))


# -- the undo action --------------------------------------------------------------------------
def test_an_action_set_with_undo_round_trips_and_others_are_unchanged() -> None:
    from lrpilot.controller.base import UNDO

    spec = ActionSpec.parse("0.1,0.5,1,2,undo")
    assert spec == ActionSpec(multipliers=(0.1, 0.5, 1.0, 2.0), undo=True) and spec.size == 5
    assert ActionSpec.from_dict(spec.to_dict()) == spec and ActionSpec.parse(str(spec)) == spec
    assert spec.to_decision(4) is UNDO and spec.to_decision(3) == 2.0 and spec.undo_index == 4
    with pytest.raises(ValueError, match="undo, not a multiplier"):
        spec.to_multiplier(4)
    assert ActionSpec().to_dict() == {"kind": "discrete", "multipliers": [0.1, 0.5, 1.0, 2.0]}  # cards as before
    assert ActionSpec().size == 4 and not ActionSpec().is_undo(3)
    with pytest.raises(ValueError, match="continuous"):
        ActionSpec(kind="continuous", undo=True)
    with pytest.raises(ValueError, match="undo"):
        ActionSpec.from_dict({"kind": "discrete", "multipliers": [0.5, 2], "undo": "yes"})


def write_undo_policy(base: Path, undo_bias: float) -> Path:
    """A policy with the undo action whose actor ignores the input: logits 0, 2 (x0.5), 0, 1, undo_bias."""
    action = ActionSpec(undo=True)
    layers = [(torch.zeros(action.size, ENC.size), torch.tensor([0.0, 2.0, 0.0, 1.0, undo_bias]))]
    save_policy(base, layers=layers, activation="tanh", action=action, provenance={})
    return base


def test_a_policy_with_undo_answers_undo_and_never_after_disable_undo(tmp_path: Path) -> None:
    from lrpilot.controller.base import UNDO

    base = write_undo_policy(tmp_path / "u", undo_bias=5.0)
    assert json.loads((tmp_path / "u.json").read_text())["action"]["undo"] is True  # the card keeps it
    ctl = load_policy(str(base))
    assert ctl.may_undo and ctl.undo_optional and ctl.action_spec.undo
    ctl.reset(1e-3, 10)
    assert [ctl.act(metrics(e, 2.0 / e)) for e in range(1, 4)] == [UNDO] * 3
    assert all(m["undone"] for m in ctl.history)  # it remembers what it undid, as the run's history does
    ctl.disable_undo()
    assert not ctl.may_undo and [ctl.act(metrics(e, 2.0 / e)) for e in range(4, 8)] == [0.5] * 4
    assert ctl.predict(np.zeros((3, ENC.size), np.float32)).tolist() == [1, 1, 1]  # masked in predict too
    plain = load_policy(str(write_policy(tmp_path / "p")))
    assert not plain.may_undo and not plain.undo_optional


def test_the_encoder_is_told_the_budget_in_decisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctl = load_policy(str(write_policy(tmp_path / "p")))
    budgets: list[int] = []
    encode = ctl.encoder.encode
    monkeypatch.setattr(ctl.encoder, "encode", lambda h, lr, total: budgets.append(total) or encode(h, lr, total))
    ctl.reset(1e-3, 10)
    ctl.act(metrics(1, 2.0))
    ctl.reset(1e-3, 10, decisions_per_epoch=4)
    ctl.act(metrics(1, 2.0))
    assert budgets == [10, 40]


def test_deploying_a_policy_does_not_change_the_random_numbers_the_training_draws() -> None:
    """Seeding, then building a `PolicyScheduler` on `policy:default`, must leave torch's global RNG where the
    seed put it: the user's dropout masks and data order are the same with or without the controller (until
    session 30 loading a policy initialised its layers from that RNG before overwriting them)."""
    from lrpilot.integrations.scheduler import PolicyScheduler

    torch.manual_seed(0)
    seeded = torch.get_rng_state()
    model = torch.nn.Linear(3, 2)
    after_model = torch.get_rng_state()
    assert not torch.equal(seeded, after_model)  # a draw moves the state, so the check below can fail
    PolicyScheduler(torch.optim.Adam(model.parameters(), lr=1e-3), "policy:default", total_epochs=5)
    load_policy("default")
    from_spec("policy:clone+guard")
    assert torch.equal(torch.get_rng_state(), after_model)

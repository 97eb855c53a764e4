"""The teachers as controllers: the feature `bold` decides as `rules.Bold`, specs and states round-trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrpilot.controller import Bold, Controller, FeatureTeacher, from_spec, list_controllers
from lrpilot.controller.features import FEATURE_INDEX, FEATURES, ObservationEncoder
from lrpilot.controller.teachers import SPEC_NAMES, TEACHERS, teacher_multipliers
from lrpilot.metrics import EpochMetrics


def trajectory(kind: str, seed: int, epochs: int = 30) -> list[tuple[float, float, float | None]]:
    """(train_loss, val_loss, val_acc) per epoch, all finite."""
    rng = np.random.default_rng(seed)
    if kind == "random":  # any order of ups and downs
        val = rng.uniform(0.05, 5.0, epochs)
    else:  # a training curve: decay with noise, a few spikes (an LR too high for a while)
        t = np.arange(epochs)
        val = 2.3 * np.exp(-t / rng.uniform(3, 15)) + 0.1 + rng.normal(0, 0.03, epochs)
        val[rng.choice(epochs, 3, replace=False)] *= rng.uniform(1.2, 3.0, 3)
        val = np.abs(val) + 1e-3
    train = val * rng.uniform(0.6, 1.0, epochs)
    acc = [None if seed % 2 else float(a) for a in rng.uniform(0, 1, epochs)]
    return list(zip(train.tolist(), val.tolist(), acc))


def drive(controllers: list[Controller], curve, initial_lr: float, total: int) -> list[list[float]]:
    """Every controller's multipliers on the same losses, each at the LR its own decisions set."""
    for c in controllers:
        c.reset(initial_lr, total)
    lrs, out = [initial_lr] * len(controllers), [[] for _ in controllers]
    for epoch, (train, val, acc) in enumerate(curve, 1):
        for i, c in enumerate(controllers):
            m = c.act(EpochMetrics(epoch=epoch, lr=lrs[i], train_loss=train, val_loss=val, val_acc=acc))
            out[i].append(m)
            lrs[i] *= m
    return out


@pytest.mark.parametrize("kind", ["random", "realistic"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("teacher, rule", [("bold-features", Bold), ("bold2", lambda: Bold(up=2.0))])
def test_feature_bold_decides_as_bold_on_metrics(kind: str, seed: int, teacher: str, rule) -> None:
    curve = trajectory(kind, seed)
    initial_lr = [1e-5, 1e-3, 0.1][seed % 3]
    total = len(curve) + 5 * (seed % 2)  # budgets longer than the run too
    on_features, on_metrics = drive([from_spec(teacher), rule()], curve, initial_lr, total)
    assert on_features == on_metrics
    assert on_metrics[0] == 1.0 and {on_metrics[0], *on_metrics[1:]} >= {1.0, 0.5, rule().up}  # every branch taken


@pytest.mark.parametrize(("curve", "on_metrics", "on_features"), [
    ([1.0, math.inf, 0.9, 0.8], [1.0, 0.5, 1.0, 1.5], [1.0, 0.5, 0.5, 1.5]),
    ([math.nan, 1.0, 0.9], [0.5, 1.0, 1.5], [0.5, 0.5, 1.5]),
])
def test_after_a_non_finite_epoch_bold_restarts_and_the_feature_teacher_does_not(curve, on_metrics, on_features) -> None:
    """The one documented difference: `Bold` forgets a non-finite loss (the next epoch keeps the LR, as a
    first epoch does); the encoder shows no 'first epoch' there, so the teacher compares and halves. The
    teacher keeps this behaviour: the shipped policy was cloned from it."""
    points = [(v, v, None) for v in curve]
    features, metrics = drive([from_spec("bold-features"), Bold()], points, 1e-3, 10)
    assert (metrics, features) == (on_metrics, on_features)


def test_feature_teachers_act_on_their_encoded_history() -> None:
    """A teacher controller answers what its rule answers on the observation of its history (what cloning imitates)."""
    curve = trajectory("realistic", 3, epochs=12)
    enc = ObservationEncoder()
    for name, spec in SPEC_NAMES.items():
        controller = from_spec(spec)
        controller.reset(1e-3, 12)
        seen, lr = [], 1e-3
        for epoch, (train, val, acc) in enumerate(curve, 1):
            seen.append(EpochMetrics(epoch=epoch, lr=lr, train_loss=train, val_loss=val, val_acc=acc))
            expected = teacher_multipliers(name, enc.encode(seen, 1e-3, 12)[None, :])[0]
            lr *= controller.act(seen[-1])
            assert controller.last_multiplier == expected, (name, epoch)


def test_acts_snaps_to_the_action_set() -> None:
    climb = [(1.0, 1.0 - 0.1 * e, None) for e in range(6)]  # a steady climb: streakup doubles from epoch 4
    raw, a4, a5, listed = drive([from_spec("bold-anneal-streak"), from_spec("bold-anneal-streak:acts=a4"),
                                 from_spec("bold-anneal-streak:acts=a5"),
                                 from_spec("bold-anneal-streak:acts=0.1/0.5/1/2")], climb, 1e-3, 20)
    assert raw == a5 == [1.0, 1.5, 1.5, 1.5, 1.5, 1.5]
    assert a4 == listed == [1.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # x1.5 is not in a4: nearest in log scale is x2
    assert drive([from_spec("bold-anneal-streakup:acts=a5")], climb, 1e-3, 20)[0] == [1.0, 1.5, 1.5, 2.0, 2.0, 2.0]


def test_a_non_finite_epoch_halves_the_lr() -> None:
    for spec in SPEC_NAMES.values():
        controller = from_spec(spec)
        controller.reset(1e-3, 10)
        controller.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=1.0, val_loss=1.0))
        assert controller.act(EpochMetrics(epoch=2, lr=1e-3, train_loss=math.nan, val_loss=math.inf)) == 0.5


@pytest.mark.parametrize("spec", [*SPEC_NAMES.values(), *(f"{s}:acts=a4" for s in SPEC_NAMES.values()),
                                  "bold-anneal-late:acts=0.25/1/4"])
def test_spec_strings_round_trip(spec: str) -> None:
    controller = from_spec(spec)
    assert isinstance(controller, FeatureTeacher) and controller.spec() == spec
    assert from_spec(controller.spec()).spec() == spec
    assert spec.partition(":")[0] in list_controllers()


def test_every_teacher_is_registered_and_bold_stays_the_metric_rule() -> None:
    assert {from_spec(s).teacher for s in SPEC_NAMES.values()} == set(TEACHERS)
    assert type(from_spec("bold")) is Bold and SPEC_NAMES["bold"] == "bold-features"
    assert from_spec("bold-features:acts=none").spec() == "bold-features"


@pytest.mark.parametrize("spec, message", [
    ("bold-anneal:acts=a3", "acts"), ("bold2:acts=continuous", "acts"), ("bold2:acts=1", "acts"),
    ("bold2:acts=0/1", "acts"), ("bold-anneal-streakup:name=bold", "unknown parameter 'name'"),
])
def test_bad_teacher_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_spec(spec)


@pytest.mark.parametrize("spec", ["bold-anneal-streakup:acts=a5", "bold-anneal-adaptive"])
def test_state_round_trips_through_json_mid_run(spec: str) -> None:
    curve = trajectory("realistic", 4, epochs=16)
    (whole,) = drive([from_spec(spec)], curve, 1e-3, 16)
    first = from_spec(spec)
    (part,) = drive([first], curve[:7], 1e-3, 16)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))  # JSON-safe, history included
    assert len(state["history"]) == 7
    second = from_spec(state["spec"])
    second.load_state_dict(state)
    lr = 1e-3
    for m in part:
        lr *= m  # the LR the uninterrupted run had reached, multiplied in the same order
    for epoch, (train, val, acc) in enumerate(curve[7:], 8):
        part.append(second.act(EpochMetrics(epoch=epoch, lr=lr, train_loss=train, val_loss=val, val_acc=acc)))
        lr *= part[-1]
    assert part == whole


def test_state_of_another_teacher_is_refused() -> None:
    state = from_spec("bold-anneal-streak").state_dict()
    with pytest.raises(ValueError, match="bold-anneal-streak"):
        from_spec("bold-anneal-streakup").load_state_dict(state)


def test_feature_index_is_the_one_map_of_the_observation() -> None:
    assert list(FEATURE_INDEX) == [f.name for f in FEATURES] and list(FEATURE_INDEX.values()) == list(range(len(FEATURES)))
    with pytest.raises(TypeError):
        FEATURE_INDEX["progress"] = 1  # type: ignore[index]

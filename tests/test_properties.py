"""Property tests of the promise "bad input gets one clear line".

Every input to a public entry point (controller specs, study files, the metrics given to
``PolicyScheduler.step``, policy cards, environment keyword arguments) either works or
raises the documented exception with a one-line message that names the offending field;
never a KeyError, AttributeError, IndexError, OverflowError or a raw parser error.
The CLI turns those into exit code 2 and one line on stderr, and leaves no files behind.
Each property states its ``max_examples`` (the figures quoted in docs/reliability.md).
"""

from __future__ import annotations

import copy
import fractions
import json
import math
import os
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lrpilot.cli import main
from lrpilot.controller import from_spec, list_controllers
from lrpilot.controller.policy import SHIPPED_DIR, PolicyFormatError, load_policy
from lrpilot.integrations.scheduler import ALLOWED_METRICS, PolicyScheduler
from lrpilot.envs.config import EnvConfig
from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.experiments.study import IDENTITY_FIELDS, load_study
from lrpilot.metrics import EpochMetrics


def fast(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_error(exc: BaseException, allowed: tuple[type[BaseException], ...], names: list[object]) -> None:
    """``exc`` is one of ``allowed`` and its single-line message names one of ``names``."""
    assert isinstance(exc, allowed), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.strip() and "\n" not in message, repr(message)
    tokens = [str(n) for n in names if str(n)] + [repr(n) for n in names if isinstance(n, str)]
    assert any(t in message for t in tokens), f"{message!r} names none of {names!r}"


# -- 1. controller spec strings ---------------------------------------------------------
PARAMS = ["metric", "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps",
          "up", "down", "max_lr", "step_size", "gamma", "eta_min"]
values = st.one_of(
    st.integers(-5, 50).map(str), st.floats(allow_nan=True).map(repr), st.sampled_from(
        ["none", "None", "true", "0", "1e400", "-inf", "nan", "val_acc", "max", "abs", "10" * 30, "1_0", "0x10"]),
    st.text(st.characters(codec="utf-8", exclude_characters=",="), max_size=6))
keys = st.one_of(st.sampled_from(PARAMS), st.text(max_size=4))
names = st.one_of(st.sampled_from([*list_controllers(), "ppo"]), st.text(max_size=5))


@st.composite
def specs(draw: st.DrawFn) -> str:
    """Mostly well-formed ``name:k=v,...`` strings with odd names, keys and values; some raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=20))
    items = draw(st.lists(st.tuples(keys, values), max_size=3))
    sep = draw(st.sampled_from([":", ":", ": ", ""]))
    return draw(names) + (sep + ",".join(f"{k}={v}" for k, v in items) if items or sep else "")


@fast(300)
@given(specs())
def test_a_spec_builds_a_controller_or_names_its_fault(spec: str) -> None:
    try:
        controller = from_spec(spec)
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
        name, _, rest = spec.strip().partition(":")
        parts = [p.partition("=") for p in rest.split(",")]
        named = [name.strip(), spec, rest.strip(), *[k.strip() for k, _, _ in parts]]
        check_error(exc, (ValueError, FileNotFoundError), named)
        return
    assert from_spec(controller.spec()).spec() == controller.spec()  # the canonical spec rebuilds it


@fast(100)
@given(st.text(max_size=300))
@example("a" * 300).via("a name too long for the OS")
@example("x\x00y").via("a NUL byte")
@example("lrpilot").via("a directory")
def test_a_ppo_spec_loads_or_names_the_missing_policy(target: str) -> None:
    try:
        from_spec("ppo:" + target)
    except (ValueError, FileNotFoundError) as exc:
        check_error(exc, (ValueError, FileNotFoundError), [target.strip()[:30], repr(target.strip())[:30], "ppo"])


# -- 2. study TOML files ----------------------------------------------------------------
class TomlDate(str):
    """A TOML date literal, written unquoted."""


def toml_value(value: object) -> str:
    if isinstance(value, TomlDate):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(
    st.integers(-3, 5), st.integers(min_value=2**40, max_value=10**400), st.floats(), st.booleans(),
    st.sampled_from(["digits-mlp", "nope", "rule", "plateau:bogus=1", "ppo:default", "ppo:missing", "cpu", "tpu",
                     "cuda:7", "adam", "prodigy", "lion", "", " ", "os", "..", ".rel", "no_such_module_xyz"]),
    st.text(st.characters(codec="utf-8"), max_size=8), st.just(TomlDate("1979-05-27T07:32:00Z")))
toml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["digits-mlp", "width", "lr", "epochs", "x"]),
                                                 inner, max_size=2)), max_leaves=6)
FIELDS = [*IDENTITY_FIELDS, "reference", "baselines", "convergence_acc_tol", "convergence_loss_rtol", "out", "bogus"]
VALID = {"tasks": ["digits-mlp"], "controllers": ["constant", "rule"], "seeds": 2, "epochs": 3,
         "task_options": {"digits-mlp": {"width": 8}}}


@fast(200)
@given(st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.none(), toml_values), min_size=1, max_size=2))
@example({"lrs": 10**400}).via("an int beyond float range")
@example({"seeds": 10**12}).via("a grid too large to expand")
def test_a_study_file_validates_or_names_the_bad_setting(changes: dict) -> None:
    data = {**VALID, **changes}
    data = {k: v for k, v in data.items() if v is not None}  # None: delete the setting
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in data.items()), encoding="utf-8")
        try:
            load_study(path).validate()
        except Exception as exc:  # noqa: BLE001
            check_error(exc, (ValueError, ImportError, FileNotFoundError), list(changes))


@fast(200)
@given(st.integers(0, 10**6), st.text(st.characters(codec="utf-8"), max_size=5), st.booleans())
def test_a_damaged_study_file_is_a_value_error_naming_the_file(cut: int, junk: str, deep: bool) -> None:
    text = "".join(f"{k} = {toml_value(v)}\n" for k, v in VALID.items())
    text = text[: cut % (len(text) + 1)] + junk + ("x = " + "[" * 3000 if deep else "")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_study(path).validate()
        except Exception as exc:  # noqa: BLE001
            check_error(exc, (ValueError,), [path, *VALID])


# -- 3. metrics given to PolicyScheduler.step --------------------------------------------
metric_values = st.one_of(
    st.floats(), st.integers(-(10**400), 10**400), st.none(), st.booleans(), st.text(max_size=3),
    st.dictionaries(st.text(max_size=2), st.floats(), max_size=2), st.lists(st.floats(), max_size=2),
    st.floats(width=32).map(np.float32), st.floats().map(np.float64), st.integers(-9, 9).map(np.int64),
    st.sampled_from([np.array([]), np.array([1.0, 2.0]), np.array([[0.5]]), np.bool_(True), np.complex128(1 + 2j),
                     torch.tensor(0.5), torch.tensor([1.0, 2.0]), torch.tensor(3), torch.tensor(1 + 1j),
                     torch.tensor(0.5, requires_grad=True), fractions.Fraction(10**400, 3), Decimal("NaN"),
                     Decimal("sNaN"), Decimal("1e999999"), 1 + 2j, b"1", object()]))
metric_maps = st.dictionaries(st.one_of(st.sampled_from(ALLOWED_METRICS), st.text(max_size=3), st.integers()),
                              metric_values, max_size=4)
CONTROLLERS = ["constant", "rule", "plateau:metric=val_acc,patience=0", "bold", "cosine", "step:step_size=1",
               "ppo:default"]


@fast(300)
@given(st.sampled_from(CONTROLLERS), st.lists(st.one_of(metric_maps, metric_values), min_size=1, max_size=3))
def test_scheduler_step_takes_metrics_or_names_the_bad_one(spec: str, steps: list) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = PolicyScheduler(optimizer, spec, total_epochs=5, min_lr=1e-6, max_lr=10.0)
    optimizer.step()  # the usual order (torch warns about a scheduler step before any optimizer step)
    for metrics in steps:
        before = (optimizer.param_groups[0]["lr"], scheduler.last_epoch)
        try:
            scheduler.step(metrics)
        except Exception as exc:  # noqa: BLE001
            named = [*ALLOWED_METRICS, *(metrics if isinstance(metrics, dict) else [])]
            check_error(exc, (ValueError, TypeError), named)
            assert (optimizer.param_groups[0]["lr"], scheduler.last_epoch) == before  # a refused step changes nothing
        lr = optimizer.param_groups[0]["lr"]
        assert math.isfinite(lr) and 1e-6 <= lr <= 10.0


# -- 4. policy cards and weights ---------------------------------------------------------
CARD = json.loads((SHIPPED_DIR / "default.json").read_text())
WEIGHTS = (SHIPPED_DIR / "default.safetensors").read_bytes()
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 70), st.integers(10**300, 10**400),
              st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e400, -1e400, "mlp", "tanh",
              "discrete", "continuous", "lrpilot-obs", "lrpilot-policy"]), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=25), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=30)


N_IN = len(CARD["encoder"]["features"])  # the shipped default's input size
NORM = {"mean": [0.0] * N_IN, "var": [1.0] * N_IN, "epsilon": 1e-8, "clip": 10.0}
DELETE = object()


def card_paths(card: dict) -> list[tuple[str, ...]]:
    out = [(k,) for k in card]
    return out + [(k, sub) for k, v in {**card, "normalization": NORM}.items() if isinstance(v, dict)
                  and k != "evaluation" for sub in v]


@st.composite
def card_changes(draw: st.DrawFn) -> tuple[tuple[str, ...], object, bool]:
    """(path into the card, its new value or DELETE, whether the card gets a normalization first)."""
    path = draw(st.sampled_from(card_paths(CARD)))
    old = {**CARD, "normalization": NORM}.get(path[0])
    old = old.get(path[-1]) if len(path) == 2 and isinstance(old, dict) else old
    same_length = st.lists(st.one_of(st.floats(), st.integers(-2, 2)), min_size=len(old), max_size=len(old)) \
        if isinstance(old, list) and old else st.nothing()
    value = draw(st.one_of(st.just(DELETE), json_values, same_length))
    return path, value, draw(st.booleans())


def changed_card(path: tuple[str, ...], value: object, with_norm: bool) -> dict:
    card = copy.deepcopy(CARD)
    if with_norm or path[0] == "normalization":
        card["normalization"] = copy.deepcopy(NORM)
    parent = card if len(path) == 1 else card[path[0]]
    if value is DELETE:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return card


def write_policy(folder: str, card_text: str | bytes, weights: bytes) -> str:
    base = os.path.join(folder, "p")
    Path(base + ".json").write_bytes(card_text.encode() if isinstance(card_text, str) else card_text)
    Path(base + ".safetensors").write_bytes(weights)
    return base


@fast(300)
@given(card_changes())
@example((("normalization",), {**NORM, "var": [0.0] * N_IN, "epsilon": 1e-50}, True)).via("var + epsilon is 0")
@example((("normalization", "var"), [-1.0] * N_IN, True)).via("negative variance")
@example((("format_version",), True, False)).via("true == 1")
@example((("base", "teacher"), [], False)).via("a residual's rule that is not a name")
def test_a_mutated_policy_card_loads_and_acts_or_names_the_field(change: tuple) -> None:
    path = change[0]
    with tempfile.TemporaryDirectory() as tmp:
        text = json.dumps(changed_card(*change))  # may hold NaN / Infinity, which strict JSON readers refuse
        base = write_policy(tmp, text, WEIGHTS)
        try:
            controller = load_policy(base)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, (PolicyFormatError,), [*path, *(["JSON"] if "NaN" in text or "Infinity" in text else [])])
            assert "p.json" in str(exc)
            return
    controller.reset(1e-3, 10)
    for epoch, loss in enumerate([2.0, math.nan, 1.0], 1):
        metrics = EpochMetrics(epoch=epoch, lr=1e-3, train_loss=loss, val_loss=loss, val_acc=0.5)
        multiplier = controller.act(metrics)
        obs = controller.encoder.encode(controller._metrics, 1e-3, 10)
        if controller._norm is not None:
            mean, std, clip = controller._norm
            obs = np.clip((obs - mean) / std, -clip, clip)
        assert np.isfinite(obs).all() and math.isfinite(multiplier)


@fast(150)
@given(st.integers(0, 10**6), st.booleans(), st.dictionaries(
    st.sampled_from(["actor.0.weight", "actor.0.bias", "actor.1.weight", "x"]),
    st.tuples(st.lists(st.integers(0, 70), max_size=2), st.sampled_from([torch.float32, torch.float64, torch.int8])),
    max_size=3))
def test_damaged_policy_files_raise_policy_format_error(cut: int, cut_card: bool, tensors: dict) -> None:
    from safetensors.torch import save

    card = json.dumps(CARD).encode()
    weights = save({k: torch.zeros(shape, dtype=dtype) for k, (shape, dtype) in tensors.items()}) if tensors \
        else WEIGHTS
    if cut_card:
        card = card[: cut % len(card)]
    elif not tensors:
        weights = weights[: cut % len(weights)]
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(PolicyFormatError) as err:
            load_policy(write_policy(tmp, card, weights))
    check_error(err.value, (PolicyFormatError,), ["p.json" if cut_card else "p.safetensors"])


# -- 5. environment keyword arguments ------------------------------------------------------
ENV_FIELDS = [f for f in EnvConfig.__dataclass_fields__] + ["bogus", "lr"]
env_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.integers(10**300, 10**400), st.floats(), st.text(max_size=4),
    st.sampled_from(["digits-mlp", "nope", "continuous", "continuous:1,2,3", "0.1,2", "final_acc", "cpu", "tpu",
                     (1e-3, 1e-2), (1e-2, 1e-3), (0, 2**70), {"width": 8}, {"lr": 0.1}, {"epochs": 3}, {"nope": 1}]),
    st.lists(st.one_of(st.floats(), st.integers(-1, 3), st.text(max_size=2)), max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@fast(300)
@given(st.dictionaries(st.sampled_from(ENV_FIELDS), env_values, min_size=1, max_size=2))
def test_env_construction_works_or_names_the_bad_argument(kwargs: dict) -> None:
    try:
        env = LRControlEnv(**kwargs)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, (ValueError,), list(kwargs))
        return
    assert env.action_space is not None and env.observation_space.shape == (env.encoder.size,)


# -- the command line ------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> int:
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return code


@pytest.mark.parametrize("args", [
    *[["--controller", spec] for spec in ["sometimes", "plateau:bogus=1", "plateau:factor=2", "step:step_size=x",
                                          "rule:patience", "ppo:", "ppo:no/such/file", "ppo", "bold:max_lr=nan,up=3"]],
    ["--option", "lr=0.1"], ["--epochs", "0"], ["--bogus"],  # argparse's errors: one line too, without the usage
])
def test_train_with_bad_input_is_one_line_and_no_files(args: list, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    assert run_cli(capsys, "train", "--task", "digits-mlp", *args, "--out", str(out)) == 2
    assert not out.exists()


@pytest.mark.parametrize("text", [
    "tasks = [", "tasks = ['digits-mlp']\ncontrollers = ['rule']\nseeds = -1", "tasks = []\ncontrollers = ['rule']",
    "tasks = ['digits-mlp']\ncontrollers = ['rule']\nlrs = [nan]", "tasks = ['digits-mlp']\ncontrollers = ['x:y=1']",
    "tasks = ['digits-mlp']\ncontrollers = ['rule']\nwhat = 1", "tasks = ['digits-mlp']\ncontrollers = ['rule']\n"
    "task_options = {digits-mlp = {lr = 0.1}}", "tasks = ['digits-mlp']\ncontrollers = ['rule']\nimports = ['..']",
    "tasks = ['digits-mlp']\ncontrollers = ['rule']\nseeds = 99999999999999999999999",
])
def test_compare_with_a_bad_study_is_one_line_and_no_files(text, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    (tmp_path / "study.toml").write_text(text + "\nout = 'results'\n")
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "compare", "study.toml", "--no-progress") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]  # no results directory, no partial files

"""PolicyScheduler: any controller as a torch LR scheduler (plain loops, torch equivalence, resume)."""

from __future__ import annotations

import functools
import math
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import (
    ChainedScheduler, CosineAnnealingLR, LinearLR, ReduceLROnPlateau, SequentialLR, StepLR,
)

from lrpilot import PolicyScheduler
from lrpilot.controller import Constant, from_spec
from lrpilot.training import get_task
from lrpilot.training.digits import load_digits

# Most tests drive schedulers without optimizer steps; torch warns about that order, harmlessly.
# test_controller_instance_and_warnings checks that a proper loop raises no warning at all.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")

SHIPPED = Path(__file__).resolve().parent.parent / "lrpilot" / "checkpoints" / "default.json"
HAS_POLICY_MODULE = (Path(__file__).resolve().parent.parent / "lrpilot" / "controller" / "policy.py").exists()
needs_shipped = pytest.mark.skipif(not (HAS_POLICY_MODULE and SHIPPED.exists()), reason="no shipped policy yet")
needs_policy_module = pytest.mark.skipif(not HAS_POLICY_MODULE, reason="no lrpilot.controller.policy yet")

KINDS = ["constant", "step:step_size=2,gamma=0.5", "cosine", "plateau:patience=0", "rule", "bold",
         pytest.param("ppo:default", marks=needs_shipped)]
STATEFUL = ["plateau:patience=1,cooldown=1", "rule", "bold", "cosine", "step:step_size=3",
            pytest.param("ppo:default", marks=needs_shipped)]


def make_policy(tmp_path: Path) -> str:
    """A random-weight learned policy written with the real file format; returns its .json path."""
    from lrpilot.controller.actions import ActionSpec
    from lrpilot.controller.features import ObservationEncoder
    from lrpilot.controller.policy import save_policy

    spec, g = ActionSpec(), torch.Generator().manual_seed(0)
    sizes = [ObservationEncoder().size, 16, len(spec.multipliers)]
    layers = [(torch.randn(o, i, generator=g), torch.randn(o, generator=g)) for i, o in zip(sizes[:-1], sizes[1:])]
    card, _ = save_policy(tmp_path / "random", layers=layers, activation="tanh", action=spec, provenance={"test": True})
    return str(card)


def _optimizer(lrs: tuple[float, ...] = (0.1,)) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])


def _metrics(seed: int, n: int) -> list[dict[str, float]]:
    """A noisy run that improves for a while, then stalls, as scheduler.step() mappings."""
    rng, loss, out = random.Random(seed), 2.0, []
    for i in range(n):
        loss *= rng.choice([0.8, 0.95, 1.0, 1.05] if i < n // 3 else [0.9, 1.0, 1.0, 1.02, 1.05, 1.1, 1.1])
        out.append({"train_loss": loss * 0.9, "val_loss": loss, "val_acc": min(1.0, 1 / loss), "train_loss_std": 0.1})
    return out


# -- a real training loop on the digits task ----------------------------------------------
@functools.lru_cache(maxsize=None)
def _digits():  # noqa: ANN202
    return load_digits(get_task("digits-mlp"))


@functools.lru_cache(maxsize=None)
def _digits_run(controller: str, epochs: int = 6) -> tuple[PolicyScheduler, list[float], list[float | None]]:
    torch.manual_seed(0)
    data = _digits()
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = PolicyScheduler(opt, controller, total_epochs=epochs)
    x, y = data.train.inputs[:512], data.train.labels[:512]
    lrs, actions = [], []
    for _ in range(epochs):
        lrs.append(sched.get_last_lr()[0])
        losses = []
        for idx in torch.randperm(len(y)).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            logits = model(data.val.inputs)
        val_loss = torch.nn.functional.cross_entropy(logits, data.val.labels)  # a 0-d tensor is accepted
        sched.step({"train_loss": sum(losses) / len(losses), "val_loss": val_loss,
                    "val_acc": (logits.argmax(1) == data.val.labels).float().mean().item(),
                    "train_loss_std": torch.tensor(losses).std().item()})
        actions.append(sched.get_last_action())
    lrs.append(sched.get_last_lr()[0])
    return sched, lrs, actions


@pytest.mark.parametrize("controller", KINDS)
def test_digits_loop_applies_every_action(controller: str) -> None:
    sched, lrs, actions = _digits_run(controller)
    assert all(math.isfinite(lr) and lr > 0 for lr in lrs)
    for before, after, action in zip(lrs, lrs[1:], actions):
        assert after == pytest.approx(before * action, rel=1e-12)
    assert sched.last_epoch == 6 and sched.controller.epochs_seen == 6
    assert sched.optimizer.param_groups[0]["lr"] == lrs[-1]


def test_digits_loop_matches_torch_schedules() -> None:
    _, step_lrs, _ = _digits_run("step:step_size=2,gamma=0.5")
    _, cos_lrs, _ = _digits_run("cosine")
    _, const_lrs, _ = _digits_run("constant")
    references = ((StepLR, {"step_size": 2, "gamma": 0.5}, step_lrs), (CosineAnnealingLR, {"T_max": 6}, cos_lrs))
    for cls, kwargs, got in references:
        opt = _optimizer((3e-3,))
        ref = cls(opt, **kwargs)
        expected = [ref.get_last_lr()[0]]
        for _ in range(6):
            opt.step()
            ref.step()
            expected.append(ref.get_last_lr()[0])
        assert got[:6] == pytest.approx(expected[:6], rel=1e-9)
    assert const_lrs == [3e-3] * 7
    assert len(set(step_lrs)) == 4  # the LR did change: 3e-3, 1.5e-3, 7.5e-4, 3.75e-4


# -- equivalence with torch's ReduceLROnPlateau --------------------------------------------
PLATEAU_CASES = [
    ("plateau", {}, "val_loss"),
    ("plateau:patience=0,factor=0.5", {"patience": 0, "factor": 0.5}, "val_loss"),
    ("plateau:patience=2,cooldown=2,threshold=0.05,threshold_mode=abs",
     {"patience": 2, "cooldown": 2, "threshold": 0.05, "threshold_mode": "abs"}, "val_loss"),
    ("plateau:metric=val_acc,patience=1", {"mode": "max", "patience": 1}, "val_acc"),
    ("plateau:patience=0,min_lr=0.003", {"patience": 0, "min_lr": 0.003}, "val_loss"),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("spec", "torch_kwargs", "metric"), PLATEAU_CASES)
def test_plateau_equals_reduce_lr_on_plateau(spec: str, torch_kwargs: dict, metric: str, seed: int) -> None:
    """One param group, long random runs (down to the eps and min_lr floors), NaNs included."""
    ours = PolicyScheduler(_optimizer(), spec, total_epochs=60, min_lr=torch_kwargs.get("min_lr", 0.0))
    ref = ReduceLROnPlateau(_optimizer(), **torch_kwargs)
    for i, m in enumerate(_metrics(seed, 60)):
        if seed == 3 and i in (10, 11):
            m = {**m, metric: math.nan}
        ours.step({metric: m[metric]} if i % 2 else {metric: torch.tensor(m[metric])})
        ref.step(m[metric])
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12, abs=0)
    assert ours.get_last_lr() != [0.1]  # the sequences do trigger reductions


@pytest.mark.parametrize("seed", range(3))
def test_plateau_equals_reduce_lr_on_plateau_with_groups(seed: int) -> None:
    """Several groups get the same multiplier, ratios kept: as torch while the LRs stay above eps."""
    ours = PolicyScheduler(_optimizer((0.1, 0.01, 0.03)), "plateau:patience=1,factor=0.5", total_epochs=30)
    ref = ReduceLROnPlateau(_optimizer((0.1, 0.01, 0.03)), patience=1, factor=0.5)
    for m in _metrics(seed, 30):
        ours.step(m)
        ref.step(m["val_loss"])
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=1e-12, abs=0)
    assert ours.get_last_lr()[0] < 0.1 / 4


def test_bare_float_is_val_loss_like_reduce_lr_on_plateau() -> None:
    ours = PolicyScheduler(_optimizer(), "plateau:patience=0", total_epochs=5)
    ref = ReduceLROnPlateau(_optimizer(), patience=0)
    for value in (1.0, 1.0, 0.5, 0.7):
        ours.step(value)
        ref.step(value)
        assert ours.get_last_lr() == ref.get_last_lr()


# -- composition with torch schedulers ---------------------------------------------------
def test_inside_sequential_lr_after_warmup() -> None:
    opt = _optimizer((0.1,))
    warmup = LinearLR(opt, start_factor=0.1, total_iters=3)
    policy = PolicyScheduler(opt, "step:step_size=1,gamma=0.5", total_epochs=3)
    seq = SequentialLR(opt, [warmup, policy], milestones=[3])
    lrs = []
    for epoch in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if epoch >= 3:
            policy.step({"val_loss": 1.0})
        seq.step()
    assert lrs == pytest.approx([0.01, 0.04, 0.07, 0.1, 0.05, 0.025])
    restored = SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=3),
                                  PolicyScheduler(opt, "step:step_size=1,gamma=0.5", total_epochs=3)], milestones=[3])
    restored.load_state_dict(seq.state_dict())
    assert restored._schedulers[1].controller.epochs_seen == 3


def test_inside_chained_scheduler_and_per_batch_steps_keep_lr() -> None:
    opt = _optimizer((0.1,))
    policy = PolicyScheduler(opt, "step:step_size=1,gamma=0.5", total_epochs=4)
    chain = ChainedScheduler([StepLR(opt, step_size=1, gamma=0.9), policy], optimizer=opt)
    for _ in range(5):
        policy.step()  # per-batch calls: no change
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    policy.step({"val_loss": 1.0})
    chain.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 * 0.9)


# -- state_dict round trip -----------------------------------------------------------------
def _resume_run(controller: str, tmp_path: Path, optimizer_first: bool) -> tuple[list[list[float]], list[list[float]]]:
    seq = _metrics(7, 12)
    full_opt = _optimizer((0.1, 0.02))
    full = PolicyScheduler(full_opt, controller, total_epochs=12, min_lr=1e-4)
    uninterrupted = []
    for m in seq:
        full.step(m)
        uninterrupted.append(full.get_last_lr())
    opt = _optimizer((0.1, 0.02))
    sched = PolicyScheduler(opt, controller, total_epochs=12, min_lr=1e-4)
    resumed = []
    for m in seq[:5]:
        sched.step(m)
        resumed.append(sched.get_last_lr())
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    opt = _optimizer((0.1, 0.02))
    if optimizer_first:
        opt.load_state_dict(ckpt["optimizer"])
    sched = PolicyScheduler(opt, controller, total_epochs=12, min_lr=1e-4)
    if not optimizer_first:
        opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    assert sched.state_dict() == ckpt["scheduler"]
    for m in seq[5:]:
        sched.step(m)
        resumed.append(sched.get_last_lr())
    return uninterrupted, resumed


@pytest.mark.parametrize("optimizer_first", [False, True])
@pytest.mark.parametrize("controller", STATEFUL)
def test_resume_through_torch_load_weights_only(controller: str, optimizer_first: bool, tmp_path: Path) -> None:
    uninterrupted, resumed = _resume_run(controller, tmp_path, optimizer_first)
    assert resumed == uninterrupted
    assert len({tuple(lrs) for lrs in uninterrupted}) > 1  # the controller did act


@needs_policy_module
def test_learned_policy_file_resume_and_identity(tmp_path: Path) -> None:
    path = make_policy(tmp_path)
    uninterrupted, resumed = _resume_run(path, tmp_path, optimizer_first=False)
    assert resumed == uninterrupted
    sched = PolicyScheduler(_optimizer(), path, total_epochs=12)
    sched.step(_metrics(0, 1)[0])
    state = sched.state_dict()
    assert isinstance(state["policy_hash"], str) and len(state["policy_hash"]) == 64
    (tmp_path / "moved").mkdir()
    for suffix in (".json", ".safetensors"):  # the same weights at another path: identified by hash, accepted
        (tmp_path / "moved" / f"random{suffix}").write_bytes((tmp_path / f"random{suffix}").read_bytes())
    moved = PolicyScheduler(_optimizer(), tmp_path / "moved" / "random.safetensors", total_epochs=12)  # a Path
    moved.load_state_dict(state)
    assert moved.controller.epochs_seen == 1
    with pytest.raises(ValueError, match="policy"):
        PolicyScheduler(_optimizer(), "rule", total_epochs=12).load_state_dict(state)
    with pytest.raises(ValueError, match="needs metrics"):
        PolicyScheduler(_optimizer(), path, total_epochs=12).step(0.5)  # a bare float gives no train_loss
    for value in (math.nan, math.inf):
        moved.step({"train_loss": value, "val_loss": value})
        assert math.isfinite(moved.get_last_lr()[0]) and moved.get_last_lr()[0] > 0


def test_refuses_state_of_another_controller() -> None:
    state = PolicyScheduler(_optimizer(), "plateau:patience=2", total_epochs=5).state_dict()
    for other in ("plateau:patience=3", "rule", "bold"):
        with pytest.raises(ValueError, match="plateau:patience=2"):
            PolicyScheduler(_optimizer(), other, total_epochs=5).load_state_dict(state)
    with pytest.raises(ValueError, match="controller"):
        PolicyScheduler(_optimizer(), "rule", total_epochs=5).load_state_dict({"last_epoch": 3})


class _FakeLearned(Constant):
    """Stands in for a learned policy: a spec naming a path and a weights hash."""

    def __init__(self, path: str, digest: str) -> None:
        super().__init__()
        self.path, self.policy_hash = path, digest

    def spec(self) -> str:
        return f"ppo:{self.path}"


def test_learned_policy_identified_by_hash_not_path() -> None:
    state = PolicyScheduler(_optimizer(), _FakeLearned("/a/p.json", "abc"), total_epochs=5).state_dict()
    PolicyScheduler(_optimizer(), _FakeLearned("/b/p.json", "abc"), total_epochs=5).load_state_dict(state)
    with pytest.raises(ValueError, match="hash"):
        PolicyScheduler(_optimizer(), _FakeLearned("/a/p.json", "def"), total_epochs=5).load_state_dict(state)


# -- metrics: missing, unknown, non-finite ------------------------------------------------
def test_missing_metric_raises_listing_required_and_given() -> None:
    sched = PolicyScheduler(_optimizer(), "rule:metric=train_loss", total_epochs=5)
    with pytest.raises(ValueError, match=r"needs metrics \['train_loss'\].*\['val_loss'\]"):
        sched.step(0.5)
    with pytest.raises(ValueError, match="val_acc"):
        PolicyScheduler(_optimizer(), "plateau:metric=val_acc", total_epochs=5).step({"val_loss": 1.0, "val_acc": None})
    assert sched.get_last_lr() == [0.1] and sched.get_last_action() is None


def test_unknown_and_bad_metric_values() -> None:
    sched = PolicyScheduler(_optimizer(), "rule", total_epochs=5)
    allowed = r"allowed: \['train_loss', 'val_loss', 'val_acc', 'train_loss_std', 'val_top_share'"
    with pytest.raises(ValueError, match=r"'valid_loss'.*" + allowed):
        sched.step({"valid_loss": 1.0})
    with pytest.raises(TypeError, match="'0.5'"):
        sched.step({"val_loss": "0.5"})
    with pytest.raises(ValueError, match="shape"):
        sched.step({"val_loss": torch.ones(3)})


@pytest.mark.parametrize("controller", [*KINDS, "plateau:metric=val_acc"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_metrics_never_crash_or_nan_the_lr(controller: str, bad: float) -> None:
    sched = PolicyScheduler(_optimizer((0.1, 0.01)), controller, total_epochs=6)
    for i, m in enumerate(_metrics(1, 6)):
        sched.step({k: (bad if i in (2, 3) else v) for k, v in m.items()})
        assert all(math.isfinite(lr) and lr > 0 for lr in sched.get_last_lr())
        assert math.isfinite(sched.get_last_action())


@needs_shipped
def test_shipped_policy_needs_train_loss() -> None:
    with pytest.raises(ValueError, match="train_loss"):
        PolicyScheduler(_optimizer(), "ppo:default", total_epochs=5).step(0.5)


# -- bounds, groups, arguments ------------------------------------------------------------
def test_groups_keep_ratios_and_bounds_clamp() -> None:
    opt = _optimizer((0.1, 0.01))
    sched = PolicyScheduler(opt, "bold:up=2", total_epochs=10, min_lr=0.005, max_lr=0.3)
    for value in (1.0, 0.9, 0.8, 0.7):  # improving: x2 each time after the first
        sched.step(value)
    assert sched.get_last_lr() == pytest.approx([0.3, 0.08])
    for value in (2.0, 3.0, 4.0, 5.0, 6.0):  # worsening: x0.5
        sched.step(value)
    assert sched.get_last_lr() == pytest.approx([0.009375, 0.005])
    with pytest.raises(ValueError, match="max_lr"):
        PolicyScheduler(_optimizer(), "rule", total_epochs=5, min_lr=0.1, max_lr=0.01)
    with pytest.raises(ValueError, match="min_lr"):
        PolicyScheduler(_optimizer(), "rule", total_epochs=5, min_lr=math.nan)
    with pytest.raises(ValueError, match="total_epochs"):
        PolicyScheduler(_optimizer(), "rule", total_epochs=0)
    with pytest.raises(TypeError, match="controller"):
        PolicyScheduler(_optimizer(), 3, total_epochs=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown controller"):
        PolicyScheduler(_optimizer(), "nonesuch", total_epochs=5)


def test_tensor_learning_rates_stay_tensors() -> None:
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([param], lr=torch.tensor(0.01), foreach=False)
    sched = PolicyScheduler(opt, "step:step_size=1,gamma=0.5", total_epochs=3)
    lr_tensor = opt.param_groups[0]["lr"]
    sched.step(1.0)
    assert opt.param_groups[0]["lr"] is lr_tensor and float(lr_tensor) == pytest.approx(0.005)
    assert sched.state_dict()["_last_lr"] == [pytest.approx(0.005)]


def test_spec_wins_over_a_file_of_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rule").write_text("not a policy")
    assert PolicyScheduler(_optimizer(), "rule", total_epochs=3).controller.spec() == "rule"
    with pytest.raises(FileNotFoundError, match="nope"):
        PolicyScheduler(_optimizer(), "nope.json", total_epochs=3)


def test_controller_instance_and_warnings() -> None:
    controller = from_spec("rule")
    opt = _optimizer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = PolicyScheduler(opt, controller, total_epochs=5)
        opt.step()
        sched.step(1.0)
        sched.step(1.0)
    assert sched.controller is controller and controller.initial_lr == 0.1
    assert sched.get_last_lr() == pytest.approx([0.01]) and sched.get_last_action() == pytest.approx(0.1)


BUILD = ("import torch\nopt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\n"
         "PolicyScheduler(opt, {controller!r}, total_epochs=3)\n")


def _assert_light(extra: str) -> None:
    """Run ``from lrpilot import PolicyScheduler`` plus ``extra`` in a fresh interpreter: no heavy package loads."""
    code = ("import sys\nfrom lrpilot import PolicyScheduler\n" + extra +
            "heavy = ('datasets', 'transformers', 'gymnasium', 'lightning', 'stable_baselines3')\n"
            "heavy = [m for m in heavy if m in sys.modules]\n"
            "print(heavy)\nsys.exit(1 if heavy else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_import_stays_light() -> None:
    _assert_light(BUILD.format(controller="rule") + "import lrpilot.integrations\n")


@needs_shipped
def test_shipped_policy_loads_without_heavy_imports() -> None:
    _assert_light(BUILD.format(controller="ppo:default"))

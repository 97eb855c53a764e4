"""The population's batched-matmul path for plain MLPs: the same function as vmap(functional_call)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from lrpilot.training import TrainingSession, get_task
from lrpilot.training.batched_mlp import mlp_forward, mlp_plan
from lrpilot.training.population_trainer import Population

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def stacked(model: nn.Module, members: int) -> dict[str, torch.Tensor]:
    """``members`` random weight sets for ``model``, stacked along a new first dimension."""
    gen = torch.Generator().manual_seed(0)
    return {name: torch.randn(members, *p.shape, generator=gen) for name, p in model.named_parameters()}


def vmapped(model: nn.Module, params: dict[str, torch.Tensor], inputs: torch.Tensor, shared: bool) -> torch.Tensor:
    return torch.vmap(lambda p, x: functional_call(model, p, (x,)), in_dims=(0, None if shared else 0))(params, inputs)


@pytest.mark.parametrize("model, shape", [
    (nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)), (3, 4)),
    (nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 2)), (5,)),
    (nn.Sequential(nn.Linear(5, 6, bias=False), nn.ReLU(), nn.Linear(6, 4, bias=False)), (5,)),
    (nn.Sequential(nn.Linear(5, 4)), (5,)),
])
@pytest.mark.parametrize("shared", [False, True])
def test_plain_mlps_compute_what_vmap_computes(model: nn.Module, shape: tuple, shared: bool) -> None:
    plan = mlp_plan(model)
    assert plan is not None
    params = stacked(model, 4)
    inputs = torch.randn(9, *shape) if shared else torch.randn(4, 9, *shape)
    torch.testing.assert_close(mlp_forward(plan, params, inputs, shared), vmapped(model, params, inputs, shared))


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)),
    nn.Sequential(nn.Linear(4, 4), nn.Flatten(), nn.Linear(4, 2)),
    nn.Sequential(nn.Sequential(nn.Linear(4, 2))),
    nn.Sequential(nn.Conv1d(4, 4, 3), nn.ReLU()),
    nn.Sequential(nn.ReLU()),
    nn.Sequential(nn.ReLU(), nn.Linear(4, 2)),  # its in-place ReLU would overwrite the data
    nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 2)),
    nn.Linear(4, 2),
])
def test_anything_else_keeps_the_general_path(model: nn.Module) -> None:
    assert mlp_plan(model) is None


@pytest.mark.parametrize("name", ["wine-mlp", "noisy-digits-mlp"])
def test_a_population_member_still_equals_a_training_session(name: str) -> None:
    """A held-out tabular MLP (no Flatten) and a training-distribution MLP (Flatten first) both take the fast path."""
    task = get_task(name).with_overrides(width=16)
    pop = Population(task, [0, 3], [1e-3, 1e-2], epoch_examples=96)
    assert pop._mlp is not None
    session = TrainingSession(task.with_overrides(lr=1e-2), seed=3, device="cpu", epoch_examples=96)
    for _ in range(2):
        member, expected = pop.run_epoch()[1], session.run_epoch()
    assert member.train_loss == pytest.approx(expected.train_loss, rel=1e-5)
    assert member.val_loss == pytest.approx(expected.val_loss, rel=1e-5)
    assert member.val_acc == pytest.approx(expected.val_acc)
    assert member.grad_norm == pytest.approx(expected.grad_norm, rel=1e-4)

"""PPO on the population environment with a twin reward, validation and the best checkpoint (issue #16)."""

from __future__ import annotations

from pathlib import Path

import torch

from lrpilot.controller.policy import load_policy
from lrpilot.learn.population_ppo import train_population_ppo
from lrpilot.learn.rollouts import synthetic_distribution
from lrpilot.learn.validation import VALIDATION_TASKS, ValidationSet


def test_ppo_from_the_clone_is_validated_from_its_start_and_keeps_the_best_actor(tmp_path: Path) -> None:
    start = load_policy("default").actor
    validation = ValidationSet(tasks=VALIDATION_TASKS[:1], budgets=(4,), lrs=(1e-3,))
    result = train_population_ppo(
        start, distribution=synthetic_distribution(epochs_range=(4, 6)), actions="0.1,0.5,1,1.5,2", timesteps=512,
        num_envs=8, groups=1, workers=1, n_steps=32, batch_size=64, n_epochs=2, learning_rate=3e-3,
        env_options={"twin": "bold-anneal-streakup", "budget_end": "terminal"}, gamma=1.0,
        validation=validation, validate_every=256, tensorboard_log=str(tmp_path / "tb"))
    assert [e["timesteps"] for e in result.curve] == [0, 256, 512]
    assert result.best == min(result.curve, key=lambda e: (e["mean_regret"], e["timesteps"]))
    first = [p for p in result.actor.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(first, start.parameters()))  # PPO moved the actor
    if result.best["timesteps"] == 0:  # nothing beat the start: the best actor is the clone itself
        assert all(torch.equal(a, b) for a, b in zip(result.best_actor.parameters(), start.parameters()))
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and result.steps_per_second > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0].parent)).Reload().Tags()["scalars"]
    assert "validation/regret" in tags and "rollout/ep_rew_mean" in tags

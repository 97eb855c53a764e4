"""The one stable-baselines3 PPO model that lrpilot trains: an ``MlpPolicy`` with separate tanh
actor and critic networks of the same hidden sizes, on the CPU.

Both training paths build it here: ``train-controller``'s PPO on :class:`LRControlEnv`
(:mod:`lrpilot.learn.ppo`) and the fine-tuning of a cloned actor on the population environment
(:func:`lrpilot.learn.pipeline.ppo_finetune`).
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["build_ppo"]


def build_ppo(venv: Any, *, net_arch: Sequence[int], seed: int, learning_rate: float, n_steps: int,
              batch_size: int, n_epochs: int, gamma: float, ent_coef: float, gae_lambda: float = 0.95,
              tensorboard_log: str | None = None, actor: Any = None) -> Any:
    """A fresh SB3 ``PPO`` on ``venv`` (seeded with ``seed``, ``verbose=0``).

    ``actor``: a ``torch.nn.Sequential`` whose ``Linear`` layers (shaped as ``net_arch`` plus the
    action head) become the policy network's starting weights, e.g. a behaviour-cloned actor;
    None keeps SB3's initialisation.
    """
    import torch
    from stable_baselines3 import PPO

    arch = list(net_arch)
    model = PPO("MlpPolicy", venv, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size,
                n_epochs=n_epochs, gamma=gamma, gae_lambda=gae_lambda, ent_coef=ent_coef,
                policy_kwargs={"net_arch": {"pi": arch, "vf": arch}, "activation_fn": torch.nn.Tanh},
                tensorboard_log=tensorboard_log, seed=seed, device="cpu", verbose=0)
    if actor is not None:
        sources = [m for m in actor if isinstance(m, torch.nn.Linear)]
        targets = [m for m in list(model.policy.mlp_extractor.policy_net) + [model.policy.action_net]
                   if isinstance(m, torch.nn.Linear)]
        if [tuple(m.weight.shape) for m in sources] != [tuple(m.weight.shape) for m in targets]:
            raise ValueError(f"actor layers {[tuple(m.weight.shape) for m in sources]} do not fit the PPO policy "
                             f"{[tuple(m.weight.shape) for m in targets]} (net_arch {arch})")
        with torch.no_grad():
            for src, dst in zip(sources, targets):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
    return model

"""Gymnasium environments over :class:`~lrpilot.training.TrainingSession`.

Importing ``lrpilot.envs`` registers (importing ``lrpilot`` does not):

* ``lrpilot/LRControl-v0``: any task; kwargs ``task``, ``initial_lr``, ``epochs``,
  ``actions``, ``reward``... (the fields of :class:`EnvConfig`).
* ``lrpilot/Digits-v0``: ``digits-mlp`` and ``digits-cnn`` with initial LRs drawn
  log-uniformly from [1e-4, 1e-1], 15 epochs (offline, seconds per episode on a CPU).
* ``lrpilot/CIFAR10-ResNet18-v0`` and ``lrpilot/IMDB-BERT-v0``: the seed report's
  tasks at their default LR (1e-3) and budget (50 epochs), on the best device.

Entry points are strings, so registering imports nothing heavy. ``nondeterministic``
is False for the CPU environments (a session owns its RNG streams, so the same seed
and actions reproduce every observation) and True for the two seed tasks, which run
on a GPU when one is present, where kernels need not be deterministic.

Example:
    >>> import gymnasium as gym, lrpilot.envs
    >>> env = gym.make("lrpilot/LRControl-v0", task="digits-mlp", initial_lr=1e-3, epochs=5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium

if TYPE_CHECKING:
    from lrpilot.envs.config import EnvConfig
    from lrpilot.envs.lr_control import LRControlEnv

__all__ = ["LRControlEnv", "EnvConfig", "ENV_IDS", "register_envs"]

_ENTRY = "lrpilot.envs.lr_control:LRControlEnv"

ENV_IDS: dict[str, tuple[bool, dict[str, Any]]] = {
    "lrpilot/LRControl-v0": (False, {"device": "cpu"}),
    "lrpilot/Digits-v0": (False, {"task": ("digits-mlp", "digits-cnn"), "initial_lr": (1e-4, 1e-1), "epochs": 15,
                                  "device": "cpu"}),
    "lrpilot/CIFAR10-ResNet18-v0": (True, {"task": "cifar10-resnet18", "device": "auto"}),
    "lrpilot/IMDB-BERT-v0": (True, {"task": "imdb-bert", "device": "auto"}),
}
"""Registered ids -> (nondeterministic, default kwargs)."""


def register_envs() -> None:
    """Register :data:`ENV_IDS` with Gymnasium (idempotent; done on ``import lrpilot.envs``)."""
    for env_id, (nondeterministic, kwargs) in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=_ENTRY, nondeterministic=nondeterministic, kwargs=dict(kwargs))


def __getattr__(name: str) -> Any:
    if name == "LRControlEnv":
        from lrpilot.envs.lr_control import LRControlEnv

        return LRControlEnv
    if name == "EnvConfig":
        from lrpilot.envs.config import EnvConfig

        return EnvConfig
    raise AttributeError(f"module 'lrpilot.envs' has no attribute {name!r}")


register_envs()

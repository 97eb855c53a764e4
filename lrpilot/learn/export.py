"""The one path from a trained actor to a policy file (:func:`~lrpilot.controller.policy.save_policy`).

An *actor* is either an SB3 PPO model (its ``MlpPolicy`` actor: the policy network and the action
head) or a ``torch.nn.Sequential`` MLP of ``Linear`` layers and one activation (what behaviour
cloning fits, see :mod:`lrpilot.learn.imitation`). :func:`actor_layers` reads either as
``(weight, bias)`` pairs and the activation's name; :func:`export_policy` writes them;
:func:`actor_from_layers` rebuilds the Sequential (for saved training state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ENCODER_VERSIONS
from lrpilot.controller.policy import save_policy

__all__ = ["tanh_mlp", "actor_layers", "actor_from_layers", "export_policy"]

Layers = list[tuple[Any, Any]]
"""``(weight [out, in], bias [out])`` of each linear layer, input first."""


def tanh_mlp(sizes: Sequence[int], initialise: bool = True) -> Any:
    """A ``torch.nn.Sequential``: ``Linear`` layers of these sizes (input first), ``Tanh`` between them.

    The layers are initialised from torch's global RNG, in order (seed it first for a reproducible net);
    ``initialise=False`` leaves them uninitialised and draws nothing from it (for weights copied in next).
    """
    from torch import nn

    linear = nn.Linear if initialise else lambda a, b: nn.utils.skip_init(nn.Linear, a, b)
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        modules += [linear(a, b), nn.Tanh()]
    modules.append(linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*modules)


def _modules(actor: Any) -> list[Any]:
    """The actor's modules in order: a Sequential's own, or an SB3 model's policy network and action head."""
    import torch

    if isinstance(actor, torch.nn.Sequential):
        return list(actor)
    if not hasattr(actor, "policy"):
        raise TypeError(f"actor must be a torch.nn.Sequential or an SB3 model, got {type(actor).__name__}")
    from stable_baselines3.common.torch_layers import FlattenExtractor

    policy = actor.policy
    if not isinstance(policy.pi_features_extractor, FlattenExtractor):
        raise ValueError("only MlpPolicy with the default FlattenExtractor can be exported")
    return list(policy.mlp_extractor.policy_net) + [policy.action_net]


def actor_layers(actor: Any) -> tuple[Layers, str]:
    """The actor's linear layers (detached copies, input first) and its activation, ``tanh`` or ``relu``.

    ``actor``: an SB3 model with an ``MlpPolicy`` or a ``torch.nn.Sequential``; ``ValueError`` for
    another feature extractor or activation.
    """
    import torch

    modules = _modules(actor)
    linears = [m for m in modules if isinstance(m, torch.nn.Linear)]
    acts = {type(m) for m in modules if not isinstance(m, torch.nn.Linear)}
    names = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu"}
    if len(acts) > 1 or (acts and next(iter(acts)) not in names):
        raise ValueError(f"cannot export activation(s) {sorted(a.__name__ for a in acts)}; use Tanh or ReLU")
    layers = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in linears]
    return layers, names[next(iter(acts))] if acts else "tanh"


def actor_from_layers(layers: Sequence[tuple[Any, Any]]) -> Any:
    """A tanh MLP (``torch.nn.Sequential``) with these (weight, bias) layers, input first; building it draws
    nothing from torch's global RNG (it runs inside PPO, whose action sampling uses that RNG)."""
    import torch

    net = tanh_mlp([int(layers[0][0].shape[1]), *[int(w.shape[0]) for w, _ in layers]], initialise=False)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, (w, b) in zip(linears, layers):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    return net


def export_policy(actor: Any, path: str | Path, action: ActionSpec | str, provenance: Mapping[str, Any],
                  evaluation: Mapping[str, Any] | None = None, base: str | None = None,
                  powers: Mapping[str, float] | None = None) -> tuple[Path, Path]:
    """Write the actor as ``path.safetensors`` + ``path.json``; returns (card, weights) paths.

    ``action`` is the action set (an :class:`ActionSpec` or its text, ``"0.1,0.5,1,2"``). The
    encoder version recorded in the card is the one whose observation size is the actor's input
    size. No observation normalisation: lrpilot does not use VecNormalize. ``base``: the teacher rule of a
    residual policy (:mod:`lrpilot.learn.residual`). ``powers``: the card's ``raise_power`` and/or
    ``raise_power_pretrained`` (:func:`~lrpilot.controller.policy.save_policy`).
    """
    layers, activation = actor_layers(actor)
    spec = ActionSpec.parse(action) if isinstance(action, str) else action
    return save_policy(path, layers=layers, activation=activation, action=spec, provenance=provenance,
                       evaluation=evaluation, encoder_version=encoder_version_of(int(layers[0][0].shape[1])),
                       base=base, **dict(powers or {}))


def encoder_version_of(inputs: int) -> int:
    """The encoder version whose observation has ``inputs`` features (``ValueError`` if none or several)."""
    versions = [v for v, features in ENCODER_VERSIONS.items() if len(features) == inputs]
    if len(versions) != 1:
        sizes = {v: len(f) for v, f in ENCODER_VERSIONS.items()}
        raise ValueError(f"an actor with {inputs} inputs matches no single encoder version (sizes: {sizes})")
    return versions[0]

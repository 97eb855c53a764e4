"""Learned policy files and the controller that runs them.

A policy is two files side by side:

* ``NAME.safetensors``: the actor's weights, tensors ``actor.{i}.weight`` and
  ``actor.{i}.bias`` for each linear layer ``i`` (float32);
* ``NAME.json``: the card: ``format`` (``"lrpilot-policy"``), ``format_version``,
  ``name``, ``architecture`` (MLP ``layer_sizes`` from observation to action
  outputs, ``activation``), ``action`` (:class:`ActionSpec` as a dict), ``encoder``
  (name, version, features of the :class:`ObservationEncoder` it was trained with),
  ``normalization`` (None, or observation ``mean``/``var``/``epsilon``/``clip``),
  ``provenance`` (tasks, LR range, epochs, timesteps, seed, command, lrpilot
  version...) and ``evaluation``; optionally ``base`` (a *residual* policy, issue #16):
  ``{"teacher": NAME}``, a teacher rule of :mod:`lrpilot.controller.teacher_rules`. Such a policy's
  LR multiplier is the base rule's multiplier on the same observation times the action's (a learned
  residual, ×1 where it agrees with the rule). The base rule reads the same features the policy
  does, so its state is the policy's own metrics history (in :meth:`LearnedController.state_dict`);
  optionally ``raise_power`` (session 27): a number ``p`` in [0, 1]; at ``k`` decisions per epoch the policy's raise
  ``m > 1`` (base rule included) is applied as ``m ** (k ** -p)``: with 1 its raises are rates per epoch, as
  ``bold``'s are, while its cuts act at once; absent or 0, every multiplier acts per decision. With one decision per
  epoch it changes nothing; optionally ``raise_power_pretrained`` (session 28): the same, used instead of
  ``raise_power`` when the run says its model starts from pretrained weights (``reset(..., pretrained=True)``).

Loading never unpickles: weights come from safetensors, the card from JSON, and
everything is checked against the card and the running encoder. Any problem raises
:class:`PolicyFormatError` naming the file. Imports only torch, numpy and safetensors.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from lrpilot.controller.actions import LR_BOUNDS, ActionSpec
from lrpilot.controller.base import UNDO, Undo
from lrpilot.controller.features import ObservationEncoder, ObservingController
from lrpilot.controller.teacher_rules import TEACHERS, teacher_multipliers
from lrpilot.metrics import EpochMetrics

__all__ = ["PolicyFormatError", "is_raise_power", "LearnedController", "load_policy", "save_policy", "read_policy",
           "FORMAT", "FORMAT_VERSION", "SHIPPED_DIR"]

FORMAT = "lrpilot-policy"
FORMAT_VERSION = 1
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
REQUIRED_KEYS = ("format", "format_version", "name", "architecture", "action", "encoder", "normalization", "provenance")
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
"""Where shipped policies live (``lrpilot/checkpoints/``, inside the package, so wheels carry them)."""


class PolicyFormatError(ValueError):
    """A policy file is missing, malformed, or does not match this lrpilot."""


def _error(path: Path, problem: str) -> PolicyFormatError:
    return PolicyFormatError(f"invalid policy file {_show(path)}: {problem}")


def _show(path: Path | str) -> str:
    """A path for a one-line message: as is, or quoted when it holds newlines or other unprintables."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _exists(path: Path) -> bool:
    """``path.exists()``, False for names the OS refuses (too long, NUL bytes) instead of an OSError."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


# -- locating -------------------------------------------------------------------------
def policy_paths(path_or_name: str | Path) -> tuple[Path, Path]:
    """(card, weights) paths for a path (with or without suffix) or a shipped name.

    Raises ``FileNotFoundError`` (naming the path) when neither file exists.
    """
    text = str(path_or_name)
    if not text.strip():
        raise ValueError("policy path or name must be non-empty")
    base = text
    for suffix in (".json", ".safetensors"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    local = (Path(base + ".json"), Path(base + ".safetensors"))
    if _exists(local[0]) or _exists(local[1]):
        return local
    is_name = "/" not in text and "\\" not in text and base == text
    if is_name:
        shipped = (SHIPPED_DIR / f"{text}.json", SHIPPED_DIR / f"{text}.safetensors")
        if _exists(shipped[0]) or _exists(shipped[1]):
            return shipped
        available = sorted(p.stem for p in SHIPPED_DIR.glob("*.json")) if SHIPPED_DIR.is_dir() else []
        raise FileNotFoundError(f"no policy {text!r}: neither {_show(local[0])} nor a shipped policy "
                                f"(shipped: {', '.join(available) or 'none'})")
    raise FileNotFoundError(f"no policy at {_show(base)}: expected {_show(local[0])} and {_show(local[1])}")


# -- reading --------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _error(path, "file is missing (a policy needs both NAME.json and NAME.safetensors)") from None
    except OSError as exc:  # a directory, no permission...
        raise _error(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None


def _parse_card(path: Path, data: bytes) -> dict[str, Any]:
    def _no_constants(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    try:
        card = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _error(path, f"not a JSON card ({exc})") from None
    if not isinstance(card, dict):
        raise _error(path, f"the card must be a JSON object, got {type(card).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise _error(path, f"missing key(s) {missing}")
    if card["format"] != FORMAT:
        raise _error(path, f"format is {card['format']!r}, expected {FORMAT!r}")
    if isinstance(card["format_version"], bool) or card["format_version"] != FORMAT_VERSION:
        raise _error(path, f"format_version {card['format_version']!r} is not supported (this lrpilot reads {FORMAT_VERSION})")
    return card


def _check_architecture(path: Path, card: dict[str, Any], encoder: ObservationEncoder, action: ActionSpec) -> list[int]:
    arch = card["architecture"]
    if not isinstance(arch, dict) or arch.get("type") != "mlp":
        raise _error(path, f"architecture must be an object with type 'mlp', got {_short(arch)}")
    sizes = arch.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                                                 for s in sizes)):
        raise _error(path, f"architecture.layer_sizes must be a list of >= 2 positive integers, got {_short(sizes)}")
    if not isinstance(arch.get("activation"), str) or arch["activation"] not in ACTIVATIONS:
        raise _error(path, f"architecture.activation must be one of {sorted(ACTIVATIONS)}, "
                           f"got {_short(arch.get('activation'))}")
    if sizes[0] != encoder.size:
        raise _error(path, f"architecture.layer_sizes: input size {sizes[0]} does not match the encoder's "
                           f"{encoder.size} features")
    if sizes[-1] != action.size:
        raise _error(path, f"architecture.layer_sizes: output size {sizes[-1]} does not match the action set's "
                           f"{action.size} outputs")
    return sizes


def _check_normalization(path: Path, norm: Any, size: int) -> dict[str, Any] | None:
    if norm is None:
        return None
    if not isinstance(norm, dict):
        raise _error(path, f"normalization must be null or an object, got {type(norm).__name__}")
    for key, low in (("mean", -math.inf), ("var", 0.0)):
        values = norm.get(key)
        if not (isinstance(values, list) and len(values) == size and all(_finite(v) and v >= low for v in values)):
            raise _error(path, f"normalization.{key} must be a list of {size} finite (float32) numbers"
                               + (" >= 0" if low == 0 else ""))
    for key in ("epsilon", "clip"):
        if not (_finite(norm.get(key)) and norm[key] > 0):
            raise _error(path, f"normalization.{key} must be a finite number > 0, got {_short(norm.get(key))}")
    if not (np.sqrt(np.asarray(norm["var"], np.float32) + np.float32(norm["epsilon"])) > 0).all():
        raise _error(path, f"normalization.epsilon {norm['epsilon']!r} is too small: var + epsilon is 0 in float32")
    return norm


def _check_base(path: Path, base: Any) -> None:
    """A residual policy's ``base``: absent, or ``{"teacher": NAME}`` with a known teacher."""
    if base is None:
        return
    if not isinstance(base, dict) or set(base) != {"teacher"} or not isinstance(base["teacher"], str) \
            or base["teacher"] not in TEACHERS:
        raise _error(path, f"base must be {{\"teacher\": NAME}} with NAME one of {', '.join(TEACHERS)}, "
                           f"got {_short(base)}")


def is_raise_power(power: Any) -> bool:
    """Whether ``power`` may be a card's ``raise_power`` or ``raise_power_pretrained``: a number in [0, 1]."""
    return _finite(power) and 0 <= power <= 1


def _check_raise_power(path: Path, power: Any, field: str = "raise_power") -> None:
    """``raise_power`` (or ``raise_power_pretrained``): absent, or a number in [0, 1]."""
    if power is not None and not is_raise_power(power):
        raise _error(path, f"{field} must be a number in [0, 1], got {_short(power)}")


def _finite(value: Any) -> bool:
    """A JSON number that is finite as a float32 (the weights' dtype); bools are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= _FLOAT32_MAX if isinstance(value, int) else math.isfinite(value) and abs(value) <= _FLOAT32_MAX


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load_weights(path: Path, data: bytes, sizes: list[int]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as load_safetensors

    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a safetensors file"
        raise _error(path, f"not a safetensors file ({type(exc).__name__}: {exc})") from None
    expected: dict[str, tuple[int, ...]] = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        expected[f"actor.{i}.weight"] = (n_out, n_in)
        expected[f"actor.{i}.bias"] = (n_out,)
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise _error(path, f"tensor names differ from the card's architecture (missing {missing}, unexpected {extra})")
    for key, shape in expected.items():
        t = tensors[key]
        if tuple(t.shape) != shape:
            raise _error(path, f"tensor {key} has shape {tuple(t.shape)}, the card's architecture needs {shape}")
        if t.dtype != torch.float32:
            raise _error(path, f"tensor {key} has dtype {t.dtype}, expected torch.float32")
        if not bool(torch.isfinite(t).all()):
            raise _error(path, f"tensor {key} holds non-finite values")
    return tensors


def read_policy(path_or_name: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str, tuple[Path, Path]]:
    """Validate and read a policy: (card, weights, sha256 over both files, (card path, weights path))."""
    card_path, weights_path = policy_paths(path_or_name)
    card_bytes, weight_bytes = _read_bytes(card_path), _read_bytes(weights_path)
    card = _parse_card(card_path, card_bytes)
    try:
        encoder = ObservationEncoder.from_description(card["encoder"] if isinstance(card["encoder"], dict) else {})
    except ValueError as exc:
        raise _error(card_path, str(exc)) from None
    try:
        action = ActionSpec.from_dict(card["action"])
    except (ValueError, OverflowError) as exc:  # OverflowError: an integer beyond float range
        raise _error(card_path, f"action: {exc}") from None
    sizes = _check_architecture(card_path, card, encoder, action)
    _check_normalization(card_path, card["normalization"], encoder.size)
    _check_base(card_path, card.get("base"))
    _check_raise_power(card_path, card.get("raise_power"))
    _check_raise_power(card_path, card.get("raise_power_pretrained"), "raise_power_pretrained")
    weights = _load_weights(weights_path, weight_bytes, sizes)
    digest = hashlib.sha256(card_bytes + weight_bytes).hexdigest()
    return card, weights, digest, (card_path, weights_path)


def load_policy(path_or_name: str | Path) -> "LearnedController":
    """A :class:`LearnedController` from ``NAME.{json,safetensors}``, a path, or a shipped name (``default``).

    ``FileNotFoundError`` when neither file exists; :class:`PolicyFormatError` (a ``ValueError``)
    naming the file and the field for anything else: a missing or unreadable file of the pair,
    bad JSON, a bad card field, weights of the wrong names, shapes, dtype or values.

    Example:
        >>> controller = load_policy("default")
        >>> controller.spec()
        'policy:default'
    """
    card, weights, digest, paths = read_policy(path_or_name)
    source = str(path_or_name)
    if paths[0].parent != SHIPPED_DIR or source != paths[0].stem:
        source = str(paths[0].with_suffix(""))  # a path: named without suffix, however it was written
    return LearnedController(card, weights, source=source, policy_hash=digest, paths=paths)


# -- writing --------------------------------------------------------------------------
def save_policy(path: str | Path, *, layers: list[tuple[torch.Tensor, torch.Tensor]], activation: str,
                action: ActionSpec, provenance: Mapping[str, Any], evaluation: Mapping[str, Any] | None = None,
                normalization: Mapping[str, Any] | None = None, encoder_version: int = 1,
                base: str | None = None, raise_power: float | None = None,
                raise_power_pretrained: float | None = None) -> tuple[Path, Path]:
    """Write ``PATH.safetensors`` and ``PATH.json`` (atomically) and check they load; returns both paths.

    ``layers`` are the actor's linear layers, ``(weight [out, in], bias [out])``, input
    first; ``activation`` follows every layer but the last. ``encoder_version`` is the version of
    the observation encoder the actor was trained with (its input size must match). ``base`` (a teacher
    name) makes a residual policy (module docstring). ``raise_power`` and ``raise_power_pretrained``, when
    given, are written onto the card (module docstring; a number in [0, 1], checked before anything is written).
    """
    from safetensors.torch import save as save_safetensors

    from lrpilot.atomic import write_atomic, write_json_atomic

    rule, base = base, str(path)  # ``base`` is the residual's rule; below, the path without its suffix
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if not layers:
        raise ValueError("a policy needs at least one layer")
    for suffix in (".json", ".safetensors"):
        base = base[: -len(suffix)] if base.endswith(suffix) else base
    powers = {"raise_power": raise_power, "raise_power_pretrained": raise_power_pretrained}
    for field, power in powers.items():
        _check_raise_power(Path(base + ".json"), power, field)
    tensors: dict[str, torch.Tensor] = {}
    for i, (weight, bias) in enumerate(layers):
        tensors[f"actor.{i}.weight"] = weight.detach().to("cpu", torch.float32).contiguous().clone()
        tensors[f"actor.{i}.bias"] = bias.detach().to("cpu", torch.float32).contiguous().clone()
    sizes = [int(layers[0][0].shape[1]), *[int(w.shape[0]) for w, _ in layers]]
    card = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": Path(base).name,
        "architecture": {"type": "mlp", "layer_sizes": sizes, "activation": activation},
        "action": action.to_dict(), "encoder": ObservationEncoder(encoder_version).describe(),
        "normalization": dict(normalization) if normalization is not None else None,
        "provenance": dict(provenance), "evaluation": dict(evaluation) if evaluation is not None else None,
    }
    if rule is not None:
        card["base"] = {"teacher": rule}
    card.update({field: float(power) for field, power in powers.items() if power is not None})
    card_path, weights_path = Path(base + ".json"), Path(base + ".safetensors")
    write_atomic(weights_path, lambda fh: fh.write(save_safetensors(tensors)))
    write_json_atomic(card_path, card)
    for written in (weights_path, card_path):
        written.chmod(0o644)  # temporary files are created 0600; policy files are meant to be shared
    read_policy(base)  # refuse to leave a file behind that would not load
    return card_path, weights_path


# -- the controller -------------------------------------------------------------------
class LearnedController(ObservingController):
    """A learned policy as a :class:`Controller`: metrics in, the policy's multiplier out.

    Rebuilds the actor in plain torch (no stable-baselines3), encodes the metrics
    history with the encoder it was trained with, and acts deterministically (the
    most likely discrete action, or the mean continuous action), and keeps the LR within
    :data:`~lrpilot.controller.actions.LR_BOUNDS` of the initial LR (×1e-4 .. ×100), the range the
    training environments keep episodes in: beyond it the policy would act on observations it
    never saw. A policy whose action set has the undo action (``ActionSpec(undo=True)``) has
    ``may_undo`` and ``undo_optional``: it answers :data:`~lrpilot.controller.base.UNDO` when that
    action is the most likely, and after :meth:`disable_undo` (a driver that cannot rewind the run)
    the undo action is masked: it acts on the most likely of the others. A residual policy (card
    ``base``) multiplies its action's multiplier by its base rule's (:attr:`base`); a card's ``raise_power`` spreads
    raises over the decisions of an epoch (:attr:`raise_power`; on a pretrained model's run, ``raise_power_pretrained``
    when the card has it). The encoder is told the budget
    in decisions (``total_epochs * decisions_per_epoch``). The history is
    part of :meth:`state_dict` (JSON-safe); ``policy_hash`` (sha256 over both files)
    identifies the policy, and a state from another policy is refused.

    Example:
        >>> c = load_policy("default"); c.reset(1e-3, 20)
        >>> m = c.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=2.0, val_loss=1.9, val_acc=0.3))
    """

    name: ClassVar[str] = "policy"

    def __init__(self, card: dict[str, Any], weights: Mapping[str, torch.Tensor], *, source: str, policy_hash: str,
                 paths: tuple[Path, Path] | None = None) -> None:
        super().__init__(ObservationEncoder.from_description(card["encoder"]))
        self.card, self.source, self.policy_hash, self.paths = card, source, policy_hash, paths
        self.action_spec = ActionSpec.from_dict(card["action"])
        arch = card["architecture"]
        modules: list[nn.Module] = []
        sizes = arch["layer_sizes"]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layer = nn.utils.skip_init(nn.Linear, n_in, n_out)  # no draw from torch's global RNG: loading a
            with torch.no_grad():  # policy must not change the random numbers of the training that deploys it
                layer.weight.copy_(weights[f"actor.{i}.weight"])
                layer.bias.copy_(weights[f"actor.{i}.bias"])
            modules.append(layer)
            if i < len(sizes) - 2:
                modules.append(ACTIVATIONS[arch["activation"]]())
        self.actor = nn.Sequential(*modules).eval()
        norm = card.get("normalization")
        self._norm = None if norm is None else (np.asarray(norm["mean"], np.float32),
                                                np.sqrt(np.asarray(norm["var"], np.float32) + norm["epsilon"]), norm["clip"])
        self.required_metrics = ("train_loss", "val_loss")
        """val_acc is read when given (tasks without accuracy leave it None)."""
        self.may_undo = self.undo_optional = self.action_spec.undo
        """A policy whose action set has undo may answer :data:`UNDO`; :meth:`disable_undo` masks that action."""
        self.base: str | None = (card.get("base") or {}).get("teacher")
        """The base rule of a residual policy (a teacher name), None for a plain one."""
        self.raise_power: float = float(card.get("raise_power") or 0.0)
        """At ``k`` decisions per epoch a raise ``m > 1`` acts as ``m ** (k ** -raise_power)`` (card ``raise_power``)."""
        pretrained_power = card.get("raise_power_pretrained")
        self.raise_power_pretrained: float = self.raise_power if pretrained_power is None else float(pretrained_power)
        """The same power on a run whose model starts from pretrained weights (card ``raise_power_pretrained``;
        absent: :attr:`raise_power`)."""

    @property
    def reads_pretrained(self) -> bool:
        """True when the card's ``raise_power_pretrained`` differs from its ``raise_power``."""
        return self.raise_power_pretrained != self.raise_power

    def spec(self) -> str:
        return f"policy:{self.source}"

    def predict(self, observation: np.ndarray) -> np.ndarray:
        """Deterministic actions for observations of shape ``(N,)`` or ``(B, N)``, like SB3's ``predict``."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        obs = obs.reshape(1, -1) if single else obs
        if obs.ndim != 2 or obs.shape[1] != self.encoder.size:
            raise ValueError(f"observation must have {self.encoder.size} features, got shape {np.shape(observation)}")
        if self._norm is not None:
            mean, std, clip = self._norm
            obs = np.clip((obs - mean) / std, -clip, clip).astype(np.float32)
        with torch.no_grad():
            out = self.actor(torch.from_numpy(obs)).numpy()
        if self.action_spec.undo and not self.may_undo:  # undo switched off: the most likely other action
            out[:, self.action_spec.undo_index] = -np.inf
        actions = out.argmax(axis=1) if self.action_spec.kind == "discrete" else np.clip(out, -1.0, 1.0)
        return actions[0] if single else actions

    def _act(self, metrics: EpochMetrics) -> "float | Undo":
        obs = self._observe(metrics)
        action = self.predict(obs)
        if self.action_spec.is_undo(action):
            self._mark_undone()
            return UNDO
        multiplier = self.action_spec.to_multiplier(action)
        if self.base is not None:  # a residual policy: the base rule's multiplier times the learned one
            multiplier *= float(teacher_multipliers(self.base, obs[None, :])[0])
        power = self.raise_power_pretrained if self.pretrained else self.raise_power
        if multiplier > 1.0 and power:  # raises at rates per epoch: spread over the epoch's decisions
            multiplier **= self.decisions_per_epoch ** -power
        lr = metrics.lr
        if isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0:  # stay where training kept the LR
            lo, hi = LR_BOUNDS
            multiplier = min(max(multiplier, lo * self.initial_lr / lr), hi * self.initial_lr / lr)
        return multiplier

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["policy_hash"] = self.policy_hash
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("policy_hash") != self.policy_hash:
            raise ValueError(f"state is for policy {state.get('policy_hash')!r}, this one is {self.policy_hash!r}")
        if isinstance(state.get("spec"), str) and state["spec"].startswith("ppo:"):
            state = {**state, "spec": "policy:" + state["spec"][len("ppo:"):]}  # saved under the alias (before 0.1.1)
        super().load_state_dict(state)

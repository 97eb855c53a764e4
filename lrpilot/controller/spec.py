"""Spec strings: ``"name"`` or ``"name:key=value,key=value"`` -> a :class:`Controller`.

Any spec may end in ``+guard`` (``rule+guard``, ``plateau:patience=2+guard``, ``policy:default+guard``):
the controller it names, wrapped in a :class:`~lrpilot.controller.guard.Guard`.

Every place that accepts a controller (the CLI, study files, ``PolicyScheduler``)
goes through :func:`from_spec`, so the same strings work everywhere.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from typing import Any, Callable, Union

from lrpilot.controller.base import Controller
from lrpilot.controller.guard import GUARD_SUFFIX, Guard

__all__ = ["register_controller", "from_spec", "list_controllers", "format_spec", "parse_spec", "is_policy_spec",
           "split_guard", "POLICY_PREFIXES"]

_REGISTRY: dict[str, Callable[..., Controller]] = {}


def register_controller(name: str, factory: Callable[..., Controller]) -> None:
    """Make ``factory`` constructible as ``from_spec("name:...")``."""
    if not name or ":" in name or "," in name:
        raise ValueError(f"controller name must be non-empty without ':' or ',', got {name!r}")
    _REGISTRY[name] = factory


POLICY_PREFIXES = ("policy", "ppo")
"""Spec prefixes that load a learned policy file: ``policy:`` (any learned policy, however it was
trained), and ``ppo:``, its older name, kept as an alias."""


def list_controllers() -> list[str]:
    """Names accepted by :func:`from_spec` (``policy`` takes ``policy:default`` or ``policy:PATH``;
    ``ppo:`` is an alias of ``policy:``)."""
    return sorted([*_REGISTRY, *POLICY_PREFIXES])


def is_policy_spec(spec: str) -> bool:
    """True for ``policy:...`` and its alias ``ppo:...`` (a learned policy file)."""
    return isinstance(spec, str) and spec.strip().partition(":")[0].strip() in POLICY_PREFIXES


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:k=v,k=v"`` into the name and the raw (string) parameters."""
    if not isinstance(spec, str):
        raise TypeError(f"a controller spec must be a string, got {type(spec).__name__}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    params: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise ValueError(f"bad controller spec {spec!r}: expected 'name:key=value,...', got item {item!r}")
            if key in params:
                raise ValueError(f"bad controller spec {spec!r}: parameter {key!r} given twice")
            params[key] = value
    return name, params


def from_spec(spec: str | Controller) -> Controller:
    """Build a controller from a spec string; a Controller passes through unchanged.

    ``policy:default`` and ``policy:PATH`` load a learned policy (see :mod:`lrpilot.controller.policy`);
    ``ppo:`` is an alias of ``policy:``. A trailing ``+guard`` wraps the controller the rest of the
    spec names in a :class:`~lrpilot.controller.guard.Guard` (a ``PATH`` that itself ends in
    ``+guard`` cannot be named).

    Raises ``ValueError`` naming the bad part (unknown controller or parameter, a value
    of the wrong type or out of range, a malformed ``key=value`` item); for ``policy:PATH``,
    ``FileNotFoundError`` when no such policy exists and ``PolicyFormatError`` (a
    ``ValueError``) when its files are damaged; ``TypeError`` when ``spec`` is not a string.

    Example:
        >>> from_spec("plateau:patience=2,factor=0.5").spec()
        'plateau:factor=0.5,patience=2'
        >>> from_spec("rule:patience=1+guard").spec()
        'rule:patience=1+guard'
    """
    if isinstance(spec, Controller):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a controller spec must be a string, got {type(spec).__name__}")
    inner, guarded = split_guard(spec)
    if guarded:
        return Guard(from_spec(inner))
    if is_policy_spec(spec):
        prefix, _, target = spec.strip().partition(":")
        target = target.strip()
        if not target:
            raise ValueError(f"bad controller spec {spec!r}: {prefix.strip()!r} needs a policy, "
                             "'policy:default' or 'policy:PATH'")
        from lrpilot.controller.policy import load_policy  # lazy: torch + safetensors

        return load_policy(target)
    name, raw = parse_spec(spec)
    if name not in _REGISTRY:
        raise ValueError(f"unknown controller {name!r} in spec {spec!r}; known: {', '.join(list_controllers())}")
    factory = _REGISTRY[name]
    hints = _param_types(factory)
    kwargs: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in hints:
            allowed = ", ".join(hints) or "none"
            raise ValueError(f"unknown parameter {key!r} for controller {name!r}; allowed: {allowed}")
        kwargs[key] = _convert(text, hints[key], name, key)
    return factory(**kwargs)


def split_guard(spec: str) -> tuple[str, bool]:
    """``(inner spec, True)`` for a spec ending in ``+guard``, ``(spec, False)`` for any other.

    Raises a one-line ``ValueError`` for ``+guard`` with nothing before it, given twice, or with
    parameters, and for any other ``+suffix`` (a suffix starts with a letter, so a value such as
    ``threshold=1e+3`` is no suffix; a ``+`` inside a ``policy:PATH`` is part of the path).

    Example:
        >>> split_guard("plateau:patience=2+guard")
        ('plateau:patience=2', True)
    """
    text = spec.strip()
    head, plus, tail = text.rpartition("+")
    tail = tail.strip()
    if not plus or not re.match(r"[A-Za-z_]", tail):
        return text, False
    suffix = GUARD_SUFFIX[1:]
    if tail.partition(":")[0].strip() == suffix:
        head = head.strip()
        if tail != suffix:
            raise ValueError(f"bad controller spec {spec!r}: {GUARD_SUFFIX!r} takes no parameters")
        if not head:
            raise ValueError(f"bad controller spec {spec!r}: {GUARD_SUFFIX!r} needs a controller before it, "
                             f"e.g. 'rule{GUARD_SUFFIX}'")
        if head.rpartition("+")[2].strip() == suffix:
            raise ValueError(f"bad controller spec {spec!r}: {GUARD_SUFFIX!r} given twice")
        return head, True
    if is_policy_spec(text):
        return text, False
    raise ValueError(f"bad controller spec {spec!r}: unknown suffix {'+' + tail!r}; the only suffix is "
                     f"{GUARD_SUFFIX!r} (e.g. 'rule{GUARD_SUFFIX}')")


def format_spec(name: str, params: dict[str, Any], defaults: dict[str, Any]) -> str:
    """Canonical spec: parameters that differ from their defaults, sorted by name."""
    items = [f"{k}={_fmt(v)}" for k, v in sorted(params.items()) if defaults.get(k, object()) != v]
    return f"{name}:{','.join(items)}" if items else name


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _param_types(factory: Callable[..., Controller]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    hints = typing.get_type_hints(target)
    params = inspect.signature(factory).parameters
    return {k: hints.get(k, str) for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _convert(text: str, annotation: Any, name: str, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() == "none":
            return None
        annotation = args[0]
    try:
        if annotation is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if annotation is int:
            return int(text)
        if annotation is float:
            value = float(text)
            if math.isnan(value):
                raise ValueError
            return value
    except ValueError:
        raise ValueError(f"parameter {key!r} of controller {name!r} must be {annotation.__name__}, got {text!r}") from None
    return text

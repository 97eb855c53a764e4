"""Argument helpers shared by sub-commands: validated types that fail with one clear line."""

from __future__ import annotations

import argparse
import math


def non_negative_float(text: str) -> float:
    """A finite float >= 0 (weight decay)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0 (learning rates)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, batch sizes, seeds counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def key_value(text: str) -> tuple[str, str]:
    """``[TASK:]KEY=VALUE`` (task options such as ``max_length=128``).

    ``lr`` and ``epochs`` are refused: every command that takes ``--option`` sets them
    with its own ``--lr`` / ``--lr-range`` and ``--epochs``.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    name = key.rpartition(":")[2].strip()
    if name in ("lr", "epochs"):
        flags = "--lr or --lr-range" if name == "lr" else "--epochs"
        raise argparse.ArgumentTypeError(f"{name!r} is not a task option; the command sets it ({flags})")
    return key.strip(), value.strip()


def parse_option_value(value: str) -> object:
    """Task option values: int, then float, then bool, else the string."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value

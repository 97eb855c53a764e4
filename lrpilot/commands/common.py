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


def interval_value(text: str) -> str:
    """A control interval (``0.25``, ``1``, ``50steps``), checked by
    :meth:`~lrpilot.training.intervals.Interval.parse` and written in its canonical form (``"0.25"``,
    ``"1"`` for one epoch, ``"50steps"``)."""
    from lrpilot.training.intervals import Interval  # here, not at the top: `lrpilot --help` stays fast

    try:
        return str(Interval.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_interval_flags(parser: argparse.ArgumentParser) -> None:
    """``--interval`` and ``--val-subset``, the same for every command that trains (read them back
    with :func:`interval_settings`)."""
    parser.add_argument("--interval", type=interval_value, metavar="INTERVAL",
                        help="control interval: a fraction of an epoch (0.25: four decisions per epoch) or a number "
                             "of optimizer steps (50steps); default: one epoch")
    parser.add_argument("--val-subset", type=positive_int, metavar="N",
                        help="validate on a fixed subset of N validation examples, the same every time "
                             "(default: the whole validation split)")


def interval_settings(args: argparse.Namespace) -> dict[str, object]:
    """``{"interval": ..., "val_subset": ...}`` as :class:`~lrpilot.experiments.run.RunConfig` takes them:
    ``interval`` is None for one epoch (``--interval 1`` and no flag give the same run), else its canonical
    string; ``val_subset`` None for the whole split. A flag that was not given is None."""
    from lrpilot.experiments.study import interval_setting  # the one normalisation, shared with study files

    return {"interval": interval_setting(getattr(args, "interval", None)), "val_subset": getattr(args, "val_subset", None)}

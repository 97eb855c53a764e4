"""The ``lrpilot`` command: a thin dispatcher over ``lrpilot.commands.*``.

Each sub-command lives in its own module with ``add_arguments(parser, name)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``lrpilot --help`` stays fast. Bad input ends with one line on stderr and exit code 2,
never a traceback: a bad option (argparse's error, without the usage block) as well as
a ValueError, ImportError, OSError or OfflineDataError from the command. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn, Sequence

__all__ = ["main", "UsageError"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("lrpilot.commands.train", "train one task with one controller, epoch by epoch"),
    "tasks": ("lrpilot.commands.tasks", "list the registered tasks"),
    "controllers": ("lrpilot.commands.tasks", "list the controller spec names"),
    "compare": ("lrpilot.commands.compare", "compare controllers over tasks, LRs and seeds, locally or on Ray"),
    "report": ("lrpilot.commands.compare", "write the report (tables, plots, CSV) of a compare results directory"),
    "train-controller": ("lrpilot.commands.train_controller", "train a PPO learning-rate controller and export its policy file"),
    "evaluate-controller": ("lrpilot.commands.evaluate_controller", "learned controllers vs every schedule on held-out tasks: regret, rank, per-LR tables"),
}


class UsageError(ValueError):
    """Bad input from the command line; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``PROG: error: ...; see PROG --help``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from lrpilot import __version__

    parser = _Parser(prog="lrpilot", description="Learning-rate control for training runs.")
    parser.add_argument("--version", action="version", version=f"lrpilot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrpilot`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    from lrpilot.training.loading import OfflineDataError  # light: no heavy imports

    module = importlib.import_module(COMMANDS[name][0])
    sub = _Parser(prog=f"lrpilot {name}", description=COMMANDS[name][1])
    module.add_arguments(sub, name)
    args = sub.parse_args(argv[1:])
    args.command = name
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"lrpilot {name}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, ImportError, OSError, OfflineDataError) as exc:
        print(f"lrpilot {name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

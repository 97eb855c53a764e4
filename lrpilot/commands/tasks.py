"""``lrpilot tasks`` and ``lrpilot controllers``: what can be named on the command line."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if args.command == "controllers":
        from lrpilot.controller import list_controllers

        for name in list_controllers():
            console.print(name)
        return 0
    from lrpilot.training import list_tasks

    table = Table("task", "optimizer", "lr", "batch", "epochs", "description")
    for task in list_tasks():
        table.add_row(task.name, task.optimizer, f"{task.lr:g}", str(task.batch_size), str(task.epochs), task.description)
    console.print(table)
    return 0

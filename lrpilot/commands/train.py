"""``lrpilot train``: one task, one controller, one seed; a row per epoch and the final test metrics."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lrpilot.commands.common import add_interval_flags, interval_settings, key_value, non_negative_int, \
    parse_option_value, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--task", required=True, help="task name (see `lrpilot tasks`)")
    parser.add_argument("--controller", default="rule", help="controller spec, e.g. rule, plateau:patience=2, policy:default")
    parser.add_argument("--epochs", type=positive_int, help="epoch budget (default: the task's)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed (default 0)")
    parser.add_argument("--lr", type=positive_float, help="initial learning rate (default: the task's)")
    parser.add_argument("--batch-size", type=positive_int, help="training batch size (default: the task's)")
    parser.add_argument("--optimizer", help="optimizer (default: the task's)")
    parser.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="task option, e.g. max_length=128 or model=PATH (repeatable)")
    parser.add_argument("--data-dir", help="local copy of the dataset (datasets.save_to_disk format)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_interval_flags(parser)
    parser.add_argument("--no-undo", dest="undo", action="store_false",
                        help="keep no snapshots: a learned policy's undo action is masked, X+guard is refused "
                             "(snapshots are only taken for controllers that may undo)")
    parser.add_argument("--out", type=Path, help="output directory: metrics.jsonl and a checkpoint per interval; "
                        "running the same command again resumes")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrpilot.controller import from_spec
    from lrpilot.experiments.run import RunConfig, run_training
    from lrpilot.training.devices import resolve_device

    config = RunConfig(
        task=args.task, controller=args.controller, seed=args.seed, lr=args.lr, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, data_dir=args.data_dir, device=args.device,
        task_options={k: parse_option_value(v) for k, v in args.option}, **interval_settings(args), undo=args.undo,
    )
    task = config.build_task()  # validates task name and overrides before any work
    controller = from_spec(config.controller)  # validates the spec
    if not config.undo:
        controller.disable_undo()  # one line for a controller that exists to undo
    resolve_device(config.device)
    if args.out is not None:
        _check_writable(args.out)
    console = Console()
    every = f" interval={config.interval}" if config.interval else ""
    subset = f" val_subset={config.val_subset}" if config.val_subset else ""
    console.print(f"[bold]{config.name}[/]  optimizer={task.optimizer} lr={task.lr:g} batch={task.batch_size} "
                  f"epochs={task.epochs}{every}{subset}")
    console.print(f"{'epoch':>5} {'lr':>10} {'train loss':>10} {'val loss':>9} {'val acc':>8} {'seconds':>8}")
    with _EpochProgress(console) as progress:
        result = run_training(config, args.out, on_epoch=progress.row, on_batch=progress.batch)
    final = result.final
    acc = final["test_acc"]
    loss = final["test_loss"]
    status = f"diverged at epoch {final['diverged_epoch']}" if final["diverged"] else "finished"
    console.print(
        f"[bold]test[/]: loss {_fmt(loss)}  acc {_fmt(acc, pct=True)}  ({status}, {final['epochs_run']} epochs, "
        f"{final['wall_time']:.1f} s)"
    )
    if args.out is not None:
        console.print(f"metrics written to {args.out / 'metrics.jsonl'}")
    return 0


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%" if pct else f"{value:.4f}"


def _check_writable(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    probe = out / ".write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"output directory {out} is not writable ({exc.strerror})") from None


class _EpochProgress:
    """A transient progress bar over the batches of the current epoch, and a row per finished epoch."""

    def __init__(self, console) -> None:  # noqa: ANN001
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.progress = Progress(TextColumn("{task.fields[label]}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.bar = None
        self.label = "epoch 1"

    def __enter__(self) -> "_EpochProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def batch(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = self.progress.add_task("train", total=total, label=self.label)
        self.progress.update(self.bar, completed=done, total=total)

    def row(self, m) -> None:  # noqa: ANN001
        if self.bar is not None:
            self.progress.remove_task(self.bar)
            self.bar = None
        self.label = f"{'epoch' if m.elapsed_epochs is None else 'interval'} {m.epoch + 1}"
        flag = "  [red]diverged[/]" if m.diverged else ""
        flag += "  [yellow]undone[/]" if m.undone else ""
        where = f"{m.epoch}" if m.elapsed_epochs is None else f"{m.elapsed_epochs:g}"
        self.console.print(f"{where:>5} {m.lr:>10.3g} {_fmt(m.train_loss):>10} {_fmt(m.val_loss):>9} "
                           f"{_fmt(m.val_acc, pct=True):>8} {m.seconds:>8.2f}{flag}")

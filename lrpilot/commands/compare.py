"""``lrpilot compare`` (run a multi-seed study of controllers) and ``lrpilot report`` (its report).

A study comes from the options or from a TOML file with the same fields
(``lrpilot compare configs/demo.toml``); options given with a file override its values.
Every bad input (unknown task or controller, bad TOML, a directory of another study,
an unwritable directory) ends with one line before any training starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lrpilot.commands.common import (
    add_interval_flags, interval_settings, key_value, non_negative_float, parse_option_value, positive_float, positive_int,
)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "report":
        parser.add_argument("dir", type=Path, help="results directory of `lrpilot compare`")
        parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
        return
    parser.add_argument("study", nargs="?", type=Path, help="study TOML file (options below override its values)")
    parser.add_argument("--task", action="append", dest="tasks", metavar="TASK", help="task name (repeatable)")
    parser.add_argument("--controller", action="append", dest="controllers", metavar="SPEC",
                        help="controller spec, e.g. rule, plateau:patience=2, policy:default (repeatable)")
    parser.add_argument("--seeds", type=positive_int, help="number of seeds (runs use 0..N-1; default 3)")
    parser.add_argument("--lr", action="append", type=positive_float, dest="lrs", help="initial LR (repeatable; default: the task's)")
    parser.add_argument("--optimizer", action="append", dest="optimizers", help="optimizer (repeatable; default: the task's)")
    parser.add_argument("--epochs", type=positive_int, help="epoch budget (default: the task's)")
    parser.add_argument("--batch-size", type=positive_int, help="training batch size (default: the task's)")
    parser.add_argument("--weight-decay", type=non_negative_float, help="weight decay (default: the task's)")
    add_interval_flags(parser)
    parser.add_argument("--option", type=key_value, action="append", default=[], metavar="[TASK:]KEY=VALUE",
                        help="task option for one task or all, e.g. imdb-bert:max_length=128 (repeatable)")
    parser.add_argument("--data-dir", action="append", default=[], metavar="[TASK=]PATH",
                        help="local copy of a task's dataset, or of every task's (repeatable)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--import", action="append", dest="imports", metavar="MODULE",
                        help="module to import in every worker first (registers custom tasks/controllers)")
    parser.add_argument("--reference", help="controller the others are compared against (default rule)")
    parser.add_argument("--out", type=Path, help="results directory (required unless the study file sets `out`)")
    parser.add_argument("--force", action="store_true", help="delete results of a different study in --out and start afresh")
    parser.add_argument("--workers", type=positive_int, help="parallel runs (default: one per CPU core, one per GPU on CUDA)")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="run on Ray: a cluster address, or a local Ray instance without one (pip install 'lrpilot[ray]')")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs each Ray task reserves (default 0)")
    parser.add_argument("--runs-per-gpu", type=positive_int, default=1,
                        help="runs sharing each GPU at once (default 1; ignored on a CPU)")
    parser.add_argument("--cpus-per-run", type=positive_float, default=1.0, help="CPUs each Ray task reserves (default 1)")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    if args.command == "report":
        from lrpilot.experiments.report import build_report

        build_report(args.dir, console=console, plots=not args.no_plots)
        return 0
    from lrpilot.experiments.runner import Execution, run_study

    study = build_study(args)
    execution = Execution(workers=args.workers, ray=args.ray, gpus_per_run=args.gpus_per_run, runs_per_gpu=args.runs_per_gpu,
                          cpus_per_run=args.cpus_per_run, force=args.force, progress=not args.no_progress)
    out = Path(study.out)
    runs = len(study.run_configs())
    console.print(f"[bold]study[/] {runs} runs ({len(study.tasks)} task(s) x {len(study.lrs)} LR(s) x "
                  f"{len(study.optimizers)} optimizer(s) x {len(study.controllers)} controllers x {study.seeds} seeds) -> {out}")
    if study.interval is not None or study.val_subset is not None:
        from lrpilot.experiments.scoring import cadence_note
        from lrpilot.experiments.study import interval_setting

        console.print(cadence_note(interval_setting(study.interval), study.val_subset))
    summary = run_study(study, out, execution, console)
    console.print(f"{summary.already_done} runs were already done, {summary.finished} finished now, "
                  f"{len(summary.failed)} failed ({summary.seconds:.1f} s)")
    if not args.no_report:
        from lrpilot.experiments.report import build_report

        build_report(out, console=console)
    if summary.failed:
        console.print(f"[red]{len(summary.failed)} run(s) failed[/] (see runs/<name>/failed.json); "
                      "run the same command again to retry them")
        return 1
    return 0


def build_study(args: argparse.Namespace):  # noqa: ANN201 - Study, imported lazily
    """The study from the TOML file (if any) with the command-line options on top; validated."""
    from lrpilot.experiments.study import Study, load_study

    data: dict[str, Any] = load_study(args.study).to_dict() if args.study is not None else {}
    if args.study is None and not (args.tasks and args.controllers):
        raise ValueError("give a study file, or at least --task and --controller (and --out)")
    for key in ("tasks", "controllers", "seeds", "lrs", "optimizers", "epochs", "batch_size", "weight_decay", "device",
                "imports", "reference"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    for key, value in interval_settings(args).items():
        if getattr(args, key) is not None:  # given: overrides the file, `--interval 1` included
            data[key] = value
    if args.out is not None:
        data["out"] = str(args.out)
    tasks = data.get("tasks", [])
    options = {task: dict(values) for task, values in data.get("task_options", {}).items()}
    for key, value in args.option:
        task, sep, option = key.partition(":")
        for target in ([task] if sep else tasks):
            options.setdefault(target, {})[option if sep else key] = parse_option_value(value)
    data["task_options"] = options
    data_dirs = dict(data.get("data_dir", {}))
    for item in args.data_dir:
        task, sep, path = item.partition("=")
        data_dirs.update({task: path} if sep else {t: item for t in tasks})
    data["data_dir"] = data_dirs
    study = Study.from_dict(data, source=str(args.study or "command line"))
    if not study.out:
        raise ValueError("no results directory: pass --out DIR (or set `out` in the study file)")
    study.validate()
    return study

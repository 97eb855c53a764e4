"""`Study`: what ``lrpilot compare`` runs: tasks × initial LRs × optimisers × seeds × controllers.

A study is given on the command line or in a TOML file (``lrpilot compare STUDY.toml``)
with the same field names. :meth:`Study.validate` checks every task, controller,
option and device before any training starts, and :meth:`Study.run_configs` expands
the grid into one :class:`~lrpilot.experiments.run.RunConfig` per run. Runs that share
task, seed, LR and optimiser start from the same weights and see the same data order,
so comparisons across controllers are paired by seed.

Example:
    >>> study = Study(tasks=("digits-mlp",), controllers=("constant", "rule"), seeds=2, epochs=3)
    >>> [c.name for c in study.run_configs()][:2]
    ['digits-mlp__constant__lrdefault__s0', 'digits-mlp__rule__lrdefault__s0']
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from lrpilot.experiments.run import RunConfig
from lrpilot.tomlfile import read_toml
from lrpilot.training.intervals import Interval

__all__ = ["Study", "load_study", "interval_setting", "DEFAULT_BASELINES", "IDENTITY_FIELDS"]

DEFAULT_BASELINES: tuple[str, ...] = ("constant", "step", "plateau", "cosine")
"""Controller names counted as classic baselines (the best one is a comparison reference)."""

IDENTITY_FIELDS: tuple[str, ...] = (
    "tasks", "controllers", "seeds", "lrs", "optimizers", "epochs", "batch_size", "weight_decay",
    "task_options", "data_dir", "device", "imports", "lr_free_controllers", "interval", "val_subset",
)
"""Fields that define the runs; a results directory holding other values is another study."""


@dataclass(frozen=True)
class Study:
    """A multi-seed comparison of controllers (the ``lrpilot compare`` configuration)."""

    tasks: tuple[str, ...]
    """Registered task names (``lrpilot tasks``)."""
    controllers: tuple[str, ...]
    """Controller spec strings (``rule``, ``plateau:patience=2``, ``policy:default``...)."""
    seeds: int = 3
    """Number of seeds; runs use seeds 0 .. seeds-1."""
    lrs: tuple[float | None, ...] = (None,)
    """Initial learning rates; None is the task's default."""
    optimizers: tuple[str | None, ...] = (None,)
    """Optimisers (``adam``, ``adamw``, ``sgd``, ``prodigy``, ``schedulefree-adamw``); None is the task's default."""
    lr_free_controllers: tuple[str, ...] = ("constant",)
    """Controllers run with the learning-rate-free optimisers (``prodigy``, ``schedulefree-adamw``).
    Those ignore ``lrs`` and start at their packages' recommended LR, so they form their own rows."""
    epochs: int | None = None
    """Epoch budget of every run; None keeps each task's."""
    weight_decay: float | None = None
    """Weight decay of every run's optimiser (decoupled for AdamW); None keeps each task's (0 for the
    built-in tasks, so AdamW would equal Adam: set it, e.g. 0.01, torch's AdamW default)."""
    batch_size: int | None = None
    """Training minibatch size; None keeps each task's."""
    interval: str | float | None = None
    """Control interval of every run: a fraction of an epoch (``0.25``: four decisions per epoch) or a
    number of optimizer steps (``"50steps"``); None or ``1``: one decision per epoch (the default)."""
    val_subset: int | None = None
    """Validate every run on a fixed subset of this many validation examples (the same every time);
    None: the whole validation split."""
    task_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per task, task-specific settings, e.g. ``{"imdb-bert": {"max_length": 256}}``."""
    data_dir: Mapping[str, str] = field(default_factory=dict)
    """Per task, a local copy of its dataset (``datasets.save_to_disk`` format)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for every run."""
    imports: tuple[str, ...] = ()
    """Modules imported in every worker first, e.g. ones that call ``register_task``."""
    reference: str = "rule"
    """Controller spec every other controller is compared against, seed by seed."""
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    """Controller names that count as baselines; the best of them is a second reference."""
    convergence_acc_tol: float = 0.005
    """Convergence epoch: first epoch whose best-so-far val accuracy is within this of the run's best."""
    convergence_loss_rtol: float = 0.01
    """Convergence epoch for tasks without accuracy: val loss within this fraction of the run's best."""
    out: str | None = None
    """Results directory (relative paths are relative to the current directory)."""

    # -- construction -----------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "study") -> "Study":
        """Build from TOML/JSON values: lists become tuples, a single value a 1-tuple."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("tasks", "controllers", "lrs", "optimizers", "imports", "baselines", "lr_free_controllers"):
                value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            elif key == "data_dir" and isinstance(value, str):
                tasks = data.get("tasks", ())
                tasks = (tasks,) if isinstance(tasks, str) else tasks if isinstance(tasks, (list, tuple)) else ()
                value = {t: value for t in tasks if isinstance(t, str)}
            kwargs[key] = value
        for key in ("tasks", "controllers"):
            if key not in kwargs:
                raise ValueError(f"{source}: missing required setting {key!r}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples become lists); ``from_dict`` inverts it. ``interval`` is written in
        its canonical form (``"0.25"``, ``"50steps"``); it and ``val_subset`` are left out when they keep
        the default (one epoch, the whole validation split), so the ``study.json`` of a per-epoch study
        reads as it did before they existed."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        out["task_options"] = {k: dict(v) for k, v in self.task_options.items()}
        out["data_dir"] = dict(self.data_dir)
        with contextlib.suppress(ValueError):  # a bad value stays as given: validate() reports it
            out["interval"] = interval_setting(self.interval)
        for key in ("interval", "val_subset"):
            if out[key] is None:
                del out[key]
        return out

    def identity(self) -> dict[str, Any]:
        """The run-defining settings; analysis settings and ``out`` may change between invocations."""
        data = self.to_dict()
        return {k: data.get(k) for k in IDENTITY_FIELDS}

    def replace(self, **changes: Any) -> "Study":
        """A copy with fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- the grid -----------------------------------------------------------------
    def run_configs(self) -> list[RunConfig]:
        """Every run, seed-major, so paired results arrive early and together.

        A learning-rate-free optimiser runs once per task and seed for each of
        ``lr_free_controllers``, at its recommended LR, whatever ``lrs`` holds.
        """
        from lrpilot.training.task import LR_FREE_DEFAULT_LR

        interval = interval_setting(self.interval)
        configs: list[RunConfig] = []
        for seed in range(self.seeds):
            for task in self.tasks:
                for optimizer in self.optimizers:
                    lr_free = optimizer in LR_FREE_DEFAULT_LR
                    for lr in ((None,) if lr_free else self.lrs):
                        for controller in (self.lr_free_controllers if lr_free else self.controllers):
                            configs.append(RunConfig(
                                task=task, controller=controller, seed=seed, lr=lr, epochs=self.epochs,
                                batch_size=self.batch_size, optimizer=optimizer, weight_decay=self.weight_decay,
                                task_options=dict(self.task_options.get(task, {})),
                                data_dir=self.data_dir.get(task), device=self.device,
                                interval=interval, val_subset=self.val_subset,
                            ))
        return configs

    # -- validation ---------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting; imports plugins, loads no data.

        A plugin that cannot be imported raises ``ImportError``, and a ``policy:PATH``
        controller whose files do not exist ``FileNotFoundError``; both name the setting.
        """
        self._check_shapes()
        import_plugins(self.imports)
        from lrpilot.controller import from_spec
        from lrpilot.training import get_task
        from lrpilot.training.devices import resolve_device

        with _setting("tasks"):
            for task in self.tasks:
                get_task(task)
        for field_name in ("task_options", "data_dir"):
            for key in getattr(self, field_name):
                if key not in self.tasks:
                    raise ValueError(f"{field_name} given for task {key!r}, which is not in tasks {list(self.tasks)}")
        for key in ("controllers", "lr_free_controllers"):
            with _setting(key):
                for controller in getattr(self, key):
                    from_spec(controller)
        with _setting("device"):
            resolve_device(self.device)
        names: dict[str, RunConfig] = {}
        checked: set[tuple] = set()
        for config in self.run_configs():
            if (config.task, config.lr, config.optimizer) not in checked:
                with _setting(f"task_options for {config.task!r}"):
                    config.build_task()  # lr, optimiser, epochs and batch size are checked already: the options
                checked.add((config.task, config.lr, config.optimizer))
            if config.name in names:
                raise ValueError(f"runs {names[config.name]} and {config} would share the directory {config.name!r}")
            names[config.name] = config

    def fingerprints(self) -> dict[str, str]:
        """Hashes of the learned policies behind ``policy:...`` specs (a changed policy file is another study)."""
        from lrpilot.controller import from_spec

        hashes = {spec: getattr(from_spec(spec), "policy_hash", None) for spec in self.controllers}
        return {spec: h for spec, h in hashes.items() if isinstance(h, str)}

    def _check_shapes(self) -> None:
        from lrpilot.training.task import OPTIMIZERS

        for key, required in (("tasks", True), ("controllers", True), ("lr_free_controllers", False),
                              ("imports", False), ("baselines", False)):
            values = getattr(self, key)
            if not isinstance(values, (tuple, list)) or (required and not values) or not all(
                    isinstance(v, str) and v.strip() for v in values):
                kind = "a non-empty list of names" if required else "a list of names"
                raise ValueError(f"{key} must be {kind}, got {_show(values)}")
            if len(set(values)) != len(values):
                raise ValueError(f"{key} lists a name twice: {list(values)!r}")
        _check_int("seeds", self.seeds, minimum=1, maximum=MAX_SEEDS)
        _check_int("epochs", self.epochs, minimum=1, optional=True)
        _check_int("batch_size", self.batch_size, minimum=1, optional=True)
        _check_int("val_subset", self.val_subset, minimum=1, optional=True)
        interval_setting(self.interval)  # its ValueError names the setting and what it accepts
        for key, allowed in (("lrs", "a finite number > 0"), ("optimizers", f"one of {', '.join(OPTIMIZERS)}")):
            values = getattr(self, key)
            if not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"{key} must be a non-empty list, got {_show(values)}")
            for value in values:
                if key == "optimizers":
                    ok = isinstance(value, str) and value in OPTIMIZERS
                else:
                    ok = _finite(value) and value > 0
                if value is not None and not ok:
                    raise ValueError(f"{key}: every {key[:-1]} must be {allowed}, got {_show(value)}")
            if len(set(values)) != len(values):
                raise ValueError(f"{key} must not repeat a value, got {list(values)}")
        for key, kind in (("task_options", Mapping), ("data_dir", str)):
            table = getattr(self, key)
            if not isinstance(table, Mapping) or not all(isinstance(v, kind) for v in table.values()):
                raise ValueError(f"{key} must be a table keyed by task name, got {_show(table)}")
        for task, options in self.task_options.items():
            if reserved := sorted(set(options) & set(RUN_SETTINGS)):
                raise ValueError(f"task_options for {task!r} set {reserved}, which are run settings: use lrs, "
                                 "optimizers, epochs, batch_size and weight_decay")
        if self.weight_decay is not None and not (_finite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {_show(self.weight_decay)}")
        for key in ("convergence_acc_tol", "convergence_loss_rtol"):
            value = getattr(self, key)
            if not (_finite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {_show(value)}")
        for key in ("reference", "device", "out"):
            value = getattr(self, key)
            if not (isinstance(value, str) and value.strip()) and not (key == "out" and value is None):
                raise ValueError(f"{key} must be a non-empty string, got {_show(value)}")
        runs = self._run_count()
        if runs > MAX_RUNS:
            raise ValueError(f"the study has {runs} runs (seeds={self.seeds}); at most {MAX_RUNS}: "
                             "lower seeds or split the study")

    def _run_count(self) -> int:
        """``len(self.run_configs())``, computed without building the configs."""
        from lrpilot.training.task import LR_FREE_DEFAULT_LR

        per_seed = sum(len(self.lr_free_controllers) if optimizer in LR_FREE_DEFAULT_LR
                       else len(self.lrs) * len(self.controllers) for optimizer in self.optimizers)
        return self.seeds * len(self.tasks) * per_seed


MAX_SEEDS = 100_000
"""Most seeds a study may ask for (a typo such as 10**9 would hang the validation)."""
MAX_RUNS = 1_000_000
"""Most runs a study may hold."""
RUN_SETTINGS = ("lr", "epochs", "batch_size", "optimizer", "weight_decay")
"""Task fields set per run; a study sets them through its own settings, never ``task_options``."""


def interval_setting(value: Any) -> str | None:
    """A study's (or a command line's) ``interval`` as :class:`RunConfig` takes it: None for one epoch
    (no interval, ``1`` and ``"1.0"`` alike, so such runs are the per-epoch runs), else the canonical
    string of :class:`~lrpilot.training.intervals.Interval` (``"0.25"``, ``"50steps"``).

    ``ValueError`` (one line, naming what is accepted) for anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"interval must be a fraction of an epoch in (0, 1] (e.g. 0.25) or a number of optimizer "
                         f"steps (e.g. \"50steps\"), got {_show(value)}")
    interval = Interval.parse(value)
    return None if interval.is_epoch else str(interval)


def _show(value: Any) -> str:
    """``repr`` cut to one short line for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _finite(value: Any) -> bool:
    """A finite int or float; bools are not numbers here, nor ints beyond float range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e308 if isinstance(value, int) else math.isfinite(value)


@contextlib.contextmanager
def _setting(key: str) -> Iterator[None]:
    """Prefix a ``ValueError``, ``ImportError`` or ``FileNotFoundError`` with the study setting it came from."""
    try:
        yield
    except (FileNotFoundError, ImportError, ValueError) as exc:
        base = next(b for b in (FileNotFoundError, ImportError, ValueError) if isinstance(exc, b))
        raise base(f"{key}: {exc}") from None


def _check_int(key: str, value: Any, *, minimum: int, maximum: int | None = None, optional: bool = False) -> None:
    if value is None and optional:
        return
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        limit = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{key} must be an integer {limit}, got {_show(value)}")


def import_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import the study's plugin modules (they register tasks or controllers).

    ``ValueError`` for a string that is not an absolute module name, ``ImportError``
    (naming the module) when the import fails.
    """
    for module in modules:
        if not (isinstance(module, str) and all(part.isidentifier() for part in module.split("."))):
            raise ValueError(f"imports: {module!r} is not a module name such as 'mypkg.tasks'")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"cannot import module {module!r} listed in imports ({exc})") from None


def load_study(path: str | Path) -> Study:
    """Read a study TOML file; a syntax error names the file, line and column.

    ``FileNotFoundError`` when the file does not exist, another ``OSError`` when it cannot
    be read, ``ValueError`` (naming the file) for anything wrong with its content.
    """
    path = Path(path)
    data = read_toml(path, "study file")
    study = Study.from_dict(data, source=str(path))
    _check_out(study.out, path)
    return study


def _check_out(out: Any, path: Path) -> None:
    """A study file names only a relative directory below the current one: a file someone sends you
    cannot make ``lrpilot compare`` write (or, with ``--force``, delete) anywhere else."""
    if out is None or not isinstance(out, str):
        return  # validate() reports a wrong type
    target = Path(out)
    if target.is_absolute() or ".." in target.parts or target.drive or not out.strip():
        raise ValueError(f"{path}: out = {out!r}: a study file may only name a relative directory below the "
                         "current one (no absolute path, no '..'); give any other place with --out")

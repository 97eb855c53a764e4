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

import dataclasses
import importlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lrpilot.experiments.run import RunConfig

__all__ = ["Study", "load_study", "DEFAULT_BASELINES", "IDENTITY_FIELDS"]

DEFAULT_BASELINES: tuple[str, ...] = ("constant", "step", "plateau", "cosine")
"""Controller names counted as classic baselines (the best one is a comparison reference)."""

IDENTITY_FIELDS: tuple[str, ...] = (
    "tasks", "controllers", "seeds", "lrs", "optimizers", "epochs", "batch_size",
    "task_options", "data_dir", "device", "imports", "lr_free_controllers",
)
"""Fields that define the runs; a results directory holding other values is another study."""


@dataclass(frozen=True)
class Study:
    """A multi-seed comparison of controllers (the ``lrpilot compare`` configuration)."""

    tasks: tuple[str, ...]
    """Registered task names (``lrpilot tasks``)."""
    controllers: tuple[str, ...]
    """Controller spec strings (``rule``, ``plateau:patience=2``, ``ppo:default``...)."""
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
    batch_size: int | None = None
    """Training minibatch size; None keeps each task's."""
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
                value = {t: value for t in ((tasks,) if isinstance(tasks, str) else tasks)}
            kwargs[key] = value
        for key in ("tasks", "controllers"):
            if key not in kwargs:
                raise ValueError(f"{source}: missing required setting {key!r}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples become lists); ``from_dict`` inverts it."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        out["task_options"] = {k: dict(v) for k, v in self.task_options.items()}
        out["data_dir"] = dict(self.data_dir)
        return out

    def identity(self) -> dict[str, Any]:
        """The run-defining settings; analysis settings and ``out`` may change between invocations."""
        data = self.to_dict()
        return {k: data[k] for k in IDENTITY_FIELDS}

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

        configs: list[RunConfig] = []
        for seed in range(self.seeds):
            for task in self.tasks:
                for optimizer in self.optimizers:
                    lr_free = optimizer in LR_FREE_DEFAULT_LR
                    for lr in ((None,) if lr_free else self.lrs):
                        for controller in (self.lr_free_controllers if lr_free else self.controllers):
                            configs.append(RunConfig(
                                task=task, controller=controller, seed=seed, lr=lr, epochs=self.epochs,
                                batch_size=self.batch_size, optimizer=optimizer,
                                task_options=dict(self.task_options.get(task, {})),
                                data_dir=self.data_dir.get(task), device=self.device,
                            ))
        return configs

    # -- validation ---------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting; imports plugins, loads no data."""
        self._check_shapes()
        import_plugins(self.imports)
        from lrpilot.controller import from_spec
        from lrpilot.training import get_task
        from lrpilot.training.devices import resolve_device

        for task in self.tasks:
            get_task(task)
        for key in (*self.task_options, *self.data_dir):
            if key not in self.tasks:
                raise ValueError(f"settings given for task {key!r}, which is not in tasks {list(self.tasks)}")
        for controller in self.controllers:
            from_spec(controller)
        resolve_device(self.device)
        names: dict[str, RunConfig] = {}
        checked: set[tuple] = set()
        for config in self.run_configs():
            if (config.task, config.lr, config.optimizer) not in checked:
                config.build_task()  # validates LR, optimiser, epochs, batch size and task options
                checked.add((config.task, config.lr, config.optimizer))
            if config.name in names:
                raise ValueError(f"runs {names[config.name]} and {config} would share the directory {config.name!r}")
            names[config.name] = config

    def fingerprints(self) -> dict[str, str]:
        """Hashes of the learned policies behind ``ppo:...`` specs (a changed policy file is another study)."""
        from lrpilot.controller import from_spec

        hashes = {spec: getattr(from_spec(spec), "policy_hash", None) for spec in self.controllers}
        return {spec: h for spec, h in hashes.items() if isinstance(h, str)}

    def _check_shapes(self) -> None:
        for key in ("tasks", "controllers"):
            values = getattr(self, key)
            if not values or not all(isinstance(v, str) and v.strip() for v in values):
                raise ValueError(f"{key} must be a non-empty list of names, got {list(values)!r}")
            if len(set(values)) != len(values):
                raise ValueError(f"{key} lists a name twice: {list(values)!r}")
        _check_int("seeds", self.seeds, minimum=1)
        _check_int("epochs", self.epochs, minimum=1, optional=True)
        _check_int("batch_size", self.batch_size, minimum=1, optional=True)
        for lr in self.lrs:
            if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0)):
                raise ValueError(f"every lr must be a finite number > 0, got {lr!r}")
        if len(set(self.lrs)) != len(self.lrs) or len(set(self.optimizers)) != len(self.optimizers):
            raise ValueError(f"lrs and optimizers must not repeat a value, got {list(self.lrs)} and {list(self.optimizers)}")
        for key, kind in (("task_options", Mapping), ("data_dir", str)):
            table = getattr(self, key)
            if not isinstance(table, Mapping) or not all(isinstance(v, kind) for v in table.values()):
                raise ValueError(f"{key} must be a table keyed by task name, got {table!r}")
        for key in ("convergence_acc_tol", "convergence_loss_rtol"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
        if self.out is not None and not isinstance(self.out, str):
            raise ValueError(f"out must be a directory path (a string), got {self.out!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}")


def _check_int(key: str, value: Any, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")


def import_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import the study's plugin modules (they register tasks or controllers)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"cannot import module {module!r} listed in imports ({exc})") from None


def load_study(path: str | Path) -> Study:
    """Read a study TOML file; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"study file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    return Study.from_dict(data, source=str(path))

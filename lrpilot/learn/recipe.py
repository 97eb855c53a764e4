"""Training recipes: everything ``lrpilot train-controller`` does, as one TOML file.

``lrpilot train-controller configs/clone-policy.toml`` trains what the file says; a flag
given beside it overrides that one field (``--seed 1``, ``--out runs/x``). The keys of the
file are the fields of :class:`Recipe` (those of :class:`~lrpilot.learn.ppo.PPOConfig`, plus
``method`` and the population fields); each has a flag, listed by
``lrpilot train-controller --help``. The policy card records the recipe
itself (``provenance["recipe"]``; :meth:`Recipe.to_toml` writes it back as a file), never a
command line rebuilt by hand.

Two methods:

* ``method = "ppo"`` (the default): PPO on :class:`~lrpilot.envs.lr_control.LRControlEnv` over
  ``tasks``, with held-out evaluation, checkpoints and TensorBoard (:mod:`lrpilot.learn.ppo`).
* ``method = "population"``: behaviour cloning of a hand rule (``teacher``), DAgger rounds and
  optional PPO fine-tuning (``finetune_timesteps``) on the population environment over the
  synthetic task distribution (:mod:`lrpilot.learn.pipeline`). The shipped policies are trained
  this way: ``default``, 1M PPO steps as a residual on a hand rule with an undo action, continued for 100,352 steps
  against itself (``configs/default.toml``, a staged recipe, :mod:`lrpilot.learn.stages`); ``default-s28``, the
  default before it, ``ppo-residual-fast`` continued so (``configs/ppo-residual-select.toml``; both stages in one
  command: ``configs/default-s28.toml``); ``ppo-residual-fast``, a PPO-trained residual on a hand rule
  (``configs/ppo-residual-fast.toml``, 1M steps), the default before that; ``ppo-residual-long``, the default
  before that one (``configs/ppo-residual-1m.toml``, ended at 399,360 steps); and ``clone``, the behaviour clone that
  was the first default (``configs/clone-policy.toml``).

Example:
    >>> recipe = load_recipe("configs/clone-policy.toml").replace(out_dir="runs/repro")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.teachers import TEACHERS
from lrpilot.learn.ppo import RUNTIME_FIELDS, PPOConfig, recorded_recipe
from lrpilot.tomlfile import read_toml
from lrpilot.training.distribution import TaskDistribution

__all__ = ["Recipe", "load_recipe", "quick_recipe", "METHODS", "QUICK_TIMESTEPS", "QUICK_CHANGES"]

METHODS = ("ppo", "population")
"""``ppo``: PPO on LRControlEnv; ``population``: cloning / DAgger / PPO on the population env."""

_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,), "name": (str,), "out_dir": (str,), "export_dir": (str, type(None)), "device": (str,),
    "actions": (str,), "reward": (str,), "teacher": (str, type(None)), "tasks": (tuple,), "families": (tuple,),
    "net_arch": (tuple,), "lr_range": (tuple,), "task_options": (Mapping,), "epoch_examples": (int, type(None)),
    "twin": (str, type(None)), "budget_end": (str,), "init_policy": (str, type(None)), "epochs_range": (tuple,),
    "residual": (str, type(None)), "redraw": (str,), "intervals": (tuple,), "width_range": (tuple,),
    "cnn_width_range": (tuple, type(None)), "finetune_lr_range": (tuple, type(None)),
    "finetune_validation_lrs": (tuple, type(None)), "retention_on": (str,),
    "val_examples": (int, type(None)),
}
"""Fields checked for their type before any value check (numbers are checked with their ranges)."""
_TYPE_NAMES = {str: "a string", tuple: "a list", Mapping: "a table", int: "an integer", type(None): "absent"}

_POPULATION_INTS = {"bc_steps": 1, "bc_epochs": 1, "bc_augment": 0, "dagger_rounds": 0, "finetune_timesteps": 0,
                    "population_envs": 1, "population_groups": 1, "population_workers": 1, "validate_every": 0,
                    "critic_warmup": 0, "retention_until": 0, "retention_steps": 1, "validation_seeds": 1,
                    "confirm_seeds": 0}


@dataclass
class Recipe(PPOConfig):
    """A controller-training run: the fields of ``PPOConfig`` (PPO, environments, output) and these."""

    method: str = "ppo"
    """``ppo`` (PPO on LRControlEnv over ``tasks``) or ``population`` (see the module docstring)."""
    teacher: str | None = None
    """``population``: the hand rule to behaviour-clone first (:data:`lrpilot.controller.teachers.TEACHERS`)."""
    bc_steps: int = 200
    """``population``: teacher rollout vector steps."""
    bc_epochs: int = 30
    """``population``: behaviour-cloning epochs."""
    bc_augment: int = 0
    """``population``: relabelled copies of each teacher observation with a redrawn budget fraction."""
    dagger_rounds: int = 0
    """``population``: DAgger rounds (student rollouts labelled by the teacher, then clone again)."""
    dagger_steps: int | None = None
    """``population``: vector steps per DAgger round (None: ``bc_steps``)."""
    finetune_timesteps: int = 0
    """``population``: PPO environment steps after cloning (or from scratch without a teacher)."""
    population_envs: int = 64
    """``population``: members of the population environment."""
    population_groups: int = 4
    """``population``: task groups."""
    population_workers: int = 2
    """``population``: worker processes."""
    families: tuple[str, ...] = ("teacher", "gmm", "seq")
    """``population``: synthetic data families to train on (default: no real data)."""
    epochs_range: tuple[int, int] = (4, 30)
    """``population``: episode budgets (epochs) are drawn uniformly from this range (inclusive)."""
    intervals: tuple[float, ...] = (1.0,)
    """``population``: control intervals (fractions of an epoch), drawn per task group (``[1, 0.25]``: half the
    groups decide once per epoch, half four times); the validation set plays each. Default: per epoch."""
    width_range: tuple[int, int] = (16, 128)
    """``population``: hidden widths (or channels) of the drawn models, log-uniform (inclusive)."""
    cnn_width_range: tuple[int, int] | None = None
    """``population``: channels of the drawn CNNs, log-uniform (inclusive); None: ``width_range``."""
    seq_len: int = 32
    """``population``: sequence length of the ``seq`` family's draws."""
    finetune_prob: float = 0.0
    """``population``: probability that a ``seq`` draw is a pretrained transformer's fine-tune
    (``TaskDistribution.finetune_prob``); above 0 the validation set holds such a fine-tune too."""
    finetune_shape: str = "transformer"
    """``population``: which fine-tune those draws are (``TaskDistribution.finetune_shape``): ``transformer``,
    ``cliff`` (deeper, 64 examples in batches of 8: it falls to chance from 10x its best LR, as MiniLM does) or
    ``steep`` (the cliff with a fragile body: best near 1e-4 and at chance from 1e-3, MiniLM's window)."""
    finetune_lr_range: tuple[float, float] | None = None
    """``population``: initial LRs of the fine-tune draws, log-uniform (``TaskDistribution.finetune_lr_range``);
    None: the same range as every draw (1e-5 to 1e-1)."""
    val_examples: int | None = None
    """``population``: validation examples of every drawn task, fine-tunes included (``TaskDistribution.val_examples``);
    None: each draw's own, 512. Fewer make training cheaper (each decision evaluates every member and twin on them)
    and the validation loss it reads noisier; the validation set's tasks keep their own."""
    finetune_validation_lrs: tuple[float, ...] | None = None
    """``population``: initial LRs the validation set's fine-tune is played from; None: the set's (1e-4, 1e-3,
    1e-2). From 1e-3 and 1e-2 the ``steep`` fine-tune ends near chance under every controller (two thirds of its
    runs), which adds noise and no signal (docs/controller.md, session 20)."""
    twin: str | None = None
    """``population``: PPO's reward is measured against a twin of each episode driven by this controller spec
    (:mod:`lrpilot.envs.population.twins`; e.g. the clone's teacher, or ``policy:default``, the policy a fine-tune
    starts from, so each return measures what PPO's deviations from it did); None: the plain ``log_val_loss``
    reward."""
    budget_end: str = "truncated"
    """``population``: how PPO episodes end at their budget, ``truncated`` or ``terminal`` (no bootstrap past it)."""
    init_policy: str | None = None
    """``population``: start PPO from this policy's actor (``clone``, ``default``, a path) instead of a clone or
    scratch: a plain policy for a plain recipe, a residual one for a ``residual`` recipe on the same rule."""
    redraw: str = "cut"
    """``population``: what a group's task redraw does to running episodes: ``cut`` truncates them, ``drain``
    lets each finish on the old task (:attr:`~lrpilot.envs.population.PopulationConfig.redraw`)."""
    residual: str | None = None
    """``population``: train a *residual* policy on this teacher rule (e.g. ``bold-anneal-streakup``): its
    multiplier is the rule's times the action's, and PPO starts from scratch with ×1 the most likely action
    (:mod:`lrpilot.learn.residual`). None: a plain policy."""
    critic_warmup: int = 0
    """``population``: PPO steps during which only the critic learns (the actor starts from a clone or policy)."""
    retention: float = 0.0
    """``population``: weight of the KL(start actor || policy) retention loss, decaying linearly to 0."""
    retention_until: int = 0
    """``population``: PPO step at which the retention weight reaches 0 (0: half of ``finetune_timesteps``)."""
    retention_steps: int = 1
    """``population``: gradient steps on the retention loss before each rollout (PPO's own update takes
    ``n_epochs`` x minibatches of them, through the same Adam)."""
    retention_on: str = "all"
    """``population``: the states the retention loss is taken on: ``all`` of the last rollout's, or ``from-scratch``
    (only those of episodes that are not fine-tune draws: PPO is held at its start there and free on fine-tunes)."""
    validate_every: int = 0
    """``population``: PPO steps between validation-set scores (:mod:`lrpilot.learn.validation`); the actor with
    the lowest validation regret is exported and the curve recorded in its card. 0: no validation."""
    validation_seeds: int = 2
    """``population``: session seeds (0, 1, ...) each validation plays every case with. Each adds the set's runs
    once more (60 per seed for a recipe with both intervals and a fine-tune). With 2 seeds a checkpoint's score moved by up to 0.9
    points between validations one PPO update apart, and the best of 8 checkpoints, 1.24 points below its start,
    was 0.21 below it on 6 other seeds (docs/controller.md, session 20)."""
    confirm_seeds: int = 0
    """``population``: when above 0 and the best checkpoint is not PPO's start, both are played on the validation set
    with this many further session seeds (after ``validation_seeds``'), and the best is exported only if it is
    lower there too; otherwise the start is, and the card says so (``validation_confirm``). A best-of-N pick on
    the same seeds favours noise: session 21's pick, 0.21 below its start on seeds 0-3, was 0.09 above it on 4-7."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "recipe") -> "Recipe":
        """Build from TOML values (lists become tuples) and validate; ``ValueError`` names the source and field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: a recipe is a table of settings, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls) if f.name not in RUNTIME_FIELDS]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            recipe = cls(**kwargs)
            recipe.validate()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None
        return recipe

    def replace(self, **changes: Any) -> "Recipe":
        """A validated copy with these fields changed."""
        recipe = dataclasses.replace(self, **changes)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        if isinstance(self.families, str):
            self.families = tuple(f.strip() for f in self.families.split(",") if f.strip())
        for key in ("tasks", "families", "net_arch", "lr_range", "epochs_range", "intervals", "width_range",
                    "cnn_width_range", "finetune_lr_range", "finetune_validation_lrs"):
            if isinstance(getattr(self, key), list):
                setattr(self, key, tuple(getattr(self, key)))
        _check_types(self)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if len(self.lr_range) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in self.lr_range):
            raise ValueError(f"lr_range must be [low, high] with 0 < low <= high, got {list(self.lr_range)!r}")
        super().validate()
        for key, low in {**_POPULATION_INTS, "dagger_steps": 1}.items():
            value = getattr(self, key)
            if value is None and key == "dagger_steps":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        try:
            self.distribution()
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc).replace("TaskDistribution: ", "")) from None
        self._validate_method()

    def distribution(self) -> TaskDistribution:
        """The task distribution a ``population`` recipe draws from: its families, intervals, widths, sequence
        length and fine-tunes, with the default budgets (training passes ``epochs_range`` on its own; here it would
        refuse a ``ppo`` recipe's unused one)."""
        return TaskDistribution(families=tuple(self.families), intervals=tuple(self.intervals),
                                width_range=tuple(self.width_range), seq_len=self.seq_len,
                                finetune_prob=self.finetune_prob, finetune_shape=self.finetune_shape,
                                cnn_width_range=None if self.cnn_width_range is None else tuple(self.cnn_width_range),
                                finetune_lr_range=self.finetune_lr_range,
                                val_examples=self.val_examples)

    def _validate_method(self) -> None:
        if self.teacher is not None and self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, got {self.teacher!r}")
        if self.method == "ppo":
            if self.teacher is not None:
                raise ValueError("teacher: only method 'population' clones a teacher (set method = \"population\")")
            return
        if ActionSpec.parse(self.actions).kind != "discrete":
            raise ValueError(f"actions: method 'population' needs a discrete action set, got {self.actions!r}")
        if not self.teacher and self.finetune_timesteps <= 0:
            raise ValueError("method 'population' needs a teacher and/or finetune_timesteps > 0 (nothing to train)")
        self._validate_ppo_stage()

    def _validate_ppo_stage(self) -> None:
        from lrpilot.envs.config import BUDGET_ENDS

        if self.budget_end not in BUDGET_ENDS:
            raise ValueError(f"budget_end must be one of {', '.join(BUDGET_ENDS)}, got {self.budget_end!r}")
        if not (isinstance(self.retention, (int, float)) and not isinstance(self.retention, bool)
                and 0 <= self.retention < float("inf")):
            raise ValueError(f"retention must be a number >= 0, got {self.retention!r}")
        if self.retention > 0 and not (self.teacher or self.init_policy):
            raise ValueError("retention: it keeps PPO near its starting actor, so it needs a teacher or init_policy")
        from lrpilot.learn.population_ppo import RETENTION_SCOPES

        if self.retention_on not in RETENTION_SCOPES:
            raise ValueError(f"retention_on must be one of {', '.join(RETENTION_SCOPES)}, got {self.retention_on!r}")
        if self.retention_on == "from-scratch" and not self.finetune_prob:
            raise ValueError("retention_on = 'from-scratch' frees PPO on the fine-tune draws, so it needs "
                             "finetune_prob > 0")
        if self.confirm_seeds and not (self.validate_every > 0 and (self.teacher or self.init_policy)):
            raise ValueError("confirm_seeds: it checks the best validated checkpoint against PPO's starting actor, "
                             "so it needs validate_every > 0 and a teacher or init_policy")
        if self.finetune_validation_lrs is not None:
            lrs = self.finetune_validation_lrs
            if not lrs or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")
                                  for v in lrs):
                raise ValueError(f"finetune_validation_lrs must be a list of LRs > 0, got {list(lrs)!r}")
            if not (self.finetune_prob > 0 and self.validate_every > 0):
                raise ValueError("finetune_validation_lrs: they are the validation fine-tune's initial LRs, so they "
                                 "need finetune_prob > 0 and validate_every > 0")
        if self.init_policy is not None and (self.teacher or self.finetune_timesteps <= 0):
            raise ValueError("init_policy: PPO starts from it instead of a clone, so it needs finetune_timesteps > 0 "
                             "and no teacher")
        from lrpilot.envs.population.config import REDRAWS

        if self.redraw not in REDRAWS:
            raise ValueError(f"redraw must be one of {', '.join(REDRAWS)}, got {self.redraw!r}")
        if self.residual is not None:
            from lrpilot.learn.residual import check_base

            if self.teacher or self.finetune_timesteps <= 0:  # retention: only toward an init_policy (checked above)
                raise ValueError("residual: PPO trains the residual from its start at the rule (or at init_policy, a "
                                 "residual on the same rule), so it needs finetune_timesteps > 0 and no teacher")
            try:
                check_base(self.residual, self.actions)
            except ValueError as exc:
                raise ValueError(f"residual: {exc}") from None
        if len(self.epochs_range) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 2
                                                  for v in self.epochs_range) or self.epochs_range[0] > self.epochs_range[1]:
            raise ValueError(f"epochs_range must be [low, high] with 2 <= low <= high, got {list(self.epochs_range)!r}")
        if self.twin is not None:
            from lrpilot.envs.population.twins import twin_controller

            try:
                twin_controller(self.twin, undo=False)
            except ValueError as exc:
                raise ValueError(f"twin: {exc}") from None

    def to_toml(self) -> str:
        """The recorded recipe as a TOML file (None fields are left out: TOML has no null)."""
        lines = [f"{key} = {_toml_value(value)}" for key, value in recorded_recipe(self).items()
                 if value is not None and value != {}]
        return "\n".join(lines) + "\n"


def _check_types(recipe: Recipe) -> None:
    for key, types in _TYPES.items():
        value = getattr(recipe, key)
        if not isinstance(value, types) or isinstance(value, bool):
            allowed = " or ".join(_TYPE_NAMES[t] for t in types if t is not type(None))
            raise ValueError(f"{key} must be {allowed}, got {value!r}")
        if key in ("out_dir", "name", "device", "export_dir") and isinstance(value, str) and not value.strip():
            raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    if recipe.epoch_examples is not None and recipe.epoch_examples < 1:
        raise ValueError(f"epoch_examples must be an integer >= 1, got {recipe.epoch_examples!r}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


QUICK_TIMESTEPS = 131072
"""PPO steps of :func:`quick_recipe`."""

QUICK_CHANGES: Mapping[str, Any] = MappingProxyType({
    "families": ("teacher", "gmm"), "epochs_range": (4, 12), "population_groups": 16,
    "finetune_timesteps": QUICK_TIMESTEPS, "validate_every": 0, "name": "quick", "out_dir": "runs/ctrl/quick"})
"""What :func:`quick_recipe` changes in ``configs/ppo-residual-1m.toml``, and why:

* ``families``: the MLP families only. A sequence-CNN step costs about 17 teacher-MLP steps (docs/performance.md);
  with them, half these steps took 8 min 28 s on a shared CPU (session 9), without them all of them take 2 minutes.
* ``epochs_range`` 4-12 instead of 4-50: shorter episodes, so many more of them end in a few minutes; an
  episode's return is what the display reports.
* ``population_groups`` 16 instead of 4: 16 tasks at a time instead of 4, so the return of a tenth of the run
  is averaged over more tasks, and each PPO rollout sees 16 tasks. With 4 groups the same 131,072 steps showed
  no clear rise and did not beat the rule on the validation set (docs/controller.md).
* 131,072 steps, no validation during training, its own name and folder.
"""


def quick_recipe() -> Recipe:
    """What ``lrpilot train-controller`` trains without a recipe file: ``configs/ppo-residual-1m.toml`` (the
    long residual PPO recipe) with the changes of :data:`QUICK_CHANGES`: the MLP families, budgets of 4-12
    epochs, 16 groups, :data:`QUICK_TIMESTEPS` steps, no validation (2 minutes on an idle 2-core CPU; measured in
    docs/controller.md). The progress display prints the return relative to the twin rule every tenth of the run.
    ``--method ppo`` (PPO on LRControlEnv) or ``--bc-from`` (cloning) start from the plain defaults instead."""
    long = Recipe(method="population", name="ppo-residual-1m", out_dir="runs/ctrl/ppo-residual-1m",
                  encoder_version=2, actions="0.1,0.5,1,1.5,2", net_arch=(64, 64), residual="bold-anneal-streakup",
                  finetune_timesteps=1_000_000, twin="bold-anneal-streakup", budget_end="terminal", redraw="drain",
                  gamma=1.0, gae_lambda=0.95, learning_rate=1e-3, n_steps=32, batch_size=512, n_epochs=5,
                  ent_coef=0.01, critic_warmup=8192, validate_every=100_000, population_envs=64,
                  population_groups=4, population_workers=4, families=("teacher", "gmm", "seq"),
                  epochs_range=(4, 50), intervals=(1.0, 0.25), width_range=(8, 32), torch_threads=1)
    return long.replace(**QUICK_CHANGES)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe TOML file.

    ``FileNotFoundError`` when it does not exist; ``ValueError`` naming the file (and, for bad
    TOML, the line and column; otherwise the field) for anything wrong with it.
    """
    return Recipe.from_dict(read_toml(path, "recipe file"), source=str(path))

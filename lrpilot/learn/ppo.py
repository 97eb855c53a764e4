"""Train a learning-rate controller with PPO (stable-baselines3) on :class:`LRControlEnv` and export it.

``train_controller(PPOConfig(...))`` trains on a distribution of tasks and initial
LRs, logs to TensorBoard, writes SB3 checkpoints (training artefacts, to resume),
evaluates the policy and the ``rule`` baseline on held-out session seeds, and
exports the policy file (``NAME.safetensors`` + ``NAME.json``, see
:mod:`lrpilot.controller.policy`) with its provenance and evaluation. The exported
file is what gets evaluated at the end, through the same plain-torch controller that
deployment uses.

Example:
    >>> result = train_controller(PPOConfig(tasks=("digits-mlp",), epochs=5, timesteps=256, out_dir="runs/demo"))
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ENCODER_VERSIONS
from lrpilot.envs.config import REWARDS
from lrpilot.envs.episodes import HELD_OUT_SEED_BASE, EvalCase, held_out_cases, paired, run_controller, run_episode, summarize
from lrpilot.learn.export import export_policy
from lrpilot.learn.sb3_ppo import build_ppo

__all__ = ["PPOConfig", "TrainResult", "train_controller", "latest_checkpoint"]

CHECKPOINT_PREFIX = "ppo"
RESUME_KEYS = ("tasks", "lr_range", "epochs", "actions", "reward", "net_arch", "task_options", "epoch_examples",
               "encoder_version")


@dataclass
class PPOConfig:
    """Everything ``lrpilot train-controller`` needs; validated by :meth:`validate`."""

    tasks: tuple[str, ...] = ("digits-mlp", "digits-cnn")
    """Tasks an episode draws from (uniformly)."""
    lr_range: tuple[float, float] = (1e-4, 1e-1)
    """Initial LRs are drawn log-uniformly from this range (evaluation spans it log-evenly)."""
    epochs: int = 12
    """Epochs per episode (>= 2)."""
    timesteps: int = 8192
    """Total environment steps (epochs) of PPO training."""
    seed: int = 0
    """Seed of PPO (network init, sampling) and of the environments' episode draws."""
    n_envs: int = 1
    """Parallel environments: 1 runs in-process (DummyVecEnv), more run in worker processes (SubprocVecEnv)."""
    actions: str = "0.1,0.5,1,2"
    """Action set: discrete multipliers, ``continuous`` or ``continuous:LO,HI``."""
    reward: str = "log_val_loss"
    """Reward, one of ``log_val_loss``, ``final_acc``, ``final_loss``."""
    out_dir: str = "runs/train-controller"
    """Output directory: TensorBoard logs (``tb/``), SB3 checkpoints (``checkpoints/``), ``config.json``, ``eval.json``."""
    name: str = "policy"
    """Name of the exported policy (``NAME.safetensors`` + ``NAME.json``)."""
    export_dir: str | None = None
    """Where the policy files go (None: ``out_dir``)."""
    resume: bool = False
    """Continue from the latest checkpoint in ``out_dir/checkpoints`` up to ``timesteps`` in total."""
    checkpoint_every: int = 2048
    """Save an SB3 checkpoint every this many timesteps."""
    eval_every: int = 2048
    """Evaluate policy and ``rule`` on held-out seeds every this many timesteps (0: only at the end)."""
    eval_lrs: int = 3
    """Held-out evaluation: number of log-spaced initial LRs over ``lr_range``."""
    eval_seeds: int = 2
    """Held-out evaluation: session seeds per (task, LR), from 1e9 up (training draws seeds below 1e9)."""
    device: str = "cpu"
    """Device of the training sessions inside the environments (the PPO networks stay on the CPU)."""
    epoch_examples: int | None = None
    """Examples per training epoch inside the environments (None: the whole train split)."""
    task_options: Mapping[str, Any] = field(default_factory=dict)
    """Overrides for every task (``width``, ``batch_size``...)."""
    n_steps: int = 128
    """PPO rollout length per environment."""
    batch_size: int = 64
    """PPO minibatch size."""
    n_epochs: int = 10
    """PPO optimisation epochs per rollout."""
    learning_rate: float = 3e-4
    """PPO (Adam) learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic (separate networks, tanh)."""
    encoder_version: int = 1
    """Observation encoder version (1, the default; 2 adds the budget's size and undo, and is the shipped policy's)."""
    torch_threads: int = 1
    """torch threads per process while training (1 is fastest for these small models on a shared CPU)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        if isinstance(self.tasks, str):
            self.tasks = tuple(t.strip() for t in self.tasks.split(",") if t.strip())
        self.tasks, self.lr_range, self.net_arch = tuple(self.tasks), tuple(self.lr_range), tuple(self.net_arch)
        if not self.tasks:
            raise ValueError(f"tasks must name at least one task, got {self.tasks!r}")
        from lrpilot.training import get_task

        for task in self.tasks:
            get_task(task)  # ValueError naming an unknown task, before any work
        lo, hi = self.lr_range
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"lr_range must be (low, high) with 0 < low <= high, got {self.lr_range!r}")
        ints = {"epochs": 2, "timesteps": 1, "n_envs": 1, "checkpoint_every": 1, "eval_every": 0, "eval_lrs": 1,
                "eval_seeds": 1, "n_steps": 2, "batch_size": 2, "n_epochs": 1, "torch_threads": 1, "seed": 0}
        for key, low in ints.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        ActionSpec.parse(self.actions)
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(f"name must be letters, digits, '_', '.', '-' (a file name), got {self.name!r}")
        for key in ("learning_rate", "gamma", "gae_lambda"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0 < value <= (1 if key != "learning_rate" else 1e3)):
                raise ValueError(f"{key} must be in (0, 1], got {value!r}")
        if not all(isinstance(n, int) and n >= 1 for n in self.net_arch) or not self.net_arch:
            raise ValueError(f"net_arch must be a non-empty list of positive integers, got {self.net_arch!r}")
        if not (isinstance(self.ent_coef, (int, float)) and self.ent_coef >= 0):
            raise ValueError(f"ent_coef must be >= 0, got {self.ent_coef!r}")
        if isinstance(self.encoder_version, bool) or not isinstance(self.encoder_version, int) \
                or self.encoder_version not in ENCODER_VERSIONS:
            raise ValueError(f"encoder_version must be one of {', '.join(map(str, ENCODER_VERSIONS))}, "
                             f"got {self.encoder_version!r}")

    def env_kwargs(self, evaluate_test: bool = False) -> dict[str, Any]:
        """Keyword arguments of the training (or, with ``evaluate_test``, evaluation) environments."""
        return {
            "task": self.tasks, "initial_lr": self.lr_range, "epochs": self.epochs, "actions": self.actions,
            "reward": self.reward, "device": self.device, "task_options": dict(self.task_options),
            "epoch_examples": self.epoch_examples, "session_seeds": (0, HELD_OUT_SEED_BASE),
            "evaluate_test": evaluate_test, "encoder_version": self.encoder_version,
        }

    def eval_cases(self) -> list[EvalCase]:
        """The held-out evaluation episodes."""
        return held_out_cases(self.tasks, self.lr_range, self.eval_lrs, self.eval_seeds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        out = dataclasses.asdict(self)
        out.update(tasks=list(self.tasks), lr_range=list(self.lr_range), net_arch=list(self.net_arch),
                   task_options=dict(self.task_options))
        return out


RUNTIME_FIELDS = ("resume",)
"""Config fields that say how to run, not what to train: left out of the recorded recipe."""


def recorded_recipe(config: "PPOConfig") -> dict[str, Any]:
    """What a policy card records of the config that trained it: every field but :data:`RUNTIME_FIELDS`
    (a :class:`~lrpilot.learn.recipe.Recipe` loads it back; ``Recipe.to_toml`` writes it as a file)."""
    return {k: v for k, v in config.to_dict().items() if k not in RUNTIME_FIELDS}


@dataclass
class TrainResult:
    """What :func:`train_controller` produced."""

    card_path: Path
    """The exported ``NAME.json``."""
    weights_path: Path
    """The exported ``NAME.safetensors``."""
    timesteps: int
    """Environment steps trained in total (including before a resume)."""
    seconds: float
    """Wall time of this call's PPO training (evaluation excluded)."""
    steps_per_second: float
    """Environment steps per second of this call's training (PPO updates included)."""
    evaluation: dict[str, Any]
    """The final held-out evaluation written into the card."""


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The SB3 checkpoint with the most timesteps in ``directory`` (``ppo_<N>_steps.zip``), or None."""
    found = []
    for path in Path(directory).glob(f"{CHECKPOINT_PREFIX}_*_steps.zip"):
        match = re.fullmatch(rf"{CHECKPOINT_PREFIX}_(\d+)_steps\.zip", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def _build_model(config: PPOConfig, venv: Any, out: Path) -> tuple[Any, dict[str, Any] | None, bool]:
    """A fresh PPO model (:func:`~lrpilot.learn.sb3_ppo.build_ppo`), or (``resume``) the latest checkpoint's
    and its state (see :mod:`.sb3_resume`; None: resumed inexactly); True when resumed. SB3 zips
    (cloudpickle) load only here, only with ``resume``."""
    from stable_baselines3 import PPO

    from lrpilot.learn.sb3_resume import load_state

    config_path = out / "config.json"
    checkpoint = latest_checkpoint(out / "checkpoints") if config.resume else None
    if checkpoint is not None:
        saved = json.loads(config_path.read_text()) if config_path.exists() else {}
        mine = config.to_dict()
        diff = [k for k in RESUME_KEYS if k in saved and saved[k] != mine[k]]
        if diff:
            raise ValueError(f"--resume: {out} was trained with different {', '.join(diff)}; use another --out")
        state = load_state(checkpoint)
        model = PPO.load(checkpoint, env=venv, device="cpu", tensorboard_log=str(out / "tb"))
        return model, state, True
    if config.resume:
        raise ValueError(f"--resume: no checkpoint (ppo_<N>_steps.zip) in {out / 'checkpoints'}")
    model = build_ppo(venv, net_arch=config.net_arch, seed=config.seed, learning_rate=config.learning_rate,
                      n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
                      gamma=config.gamma, gae_lambda=config.gae_lambda, ent_coef=config.ent_coef,
                      tensorboard_log=str(out / "tb"))
    return model, None, False


def _eval_env(config: PPOConfig):  # noqa: ANN202 - LRControlEnv
    from lrpilot.envs.lr_control import LRControlEnv

    return LRControlEnv(**config.env_kwargs(evaluate_test=True))


def evaluate_model(model: Any, config: PPOConfig, cases: list[EvalCase]) -> list[dict[str, Any]]:
    """Play ``cases`` with the SB3 model's deterministic actions."""
    env, spec = _eval_env(config), ActionSpec.parse(config.actions)
    decide = lambda obs, metrics: spec.to_multiplier(model.predict(obs, deterministic=True)[0])  # noqa: E731
    return [run_episode(env, case, decide) for case in cases]


def evaluate_spec(controller_spec: str, config: PPOConfig, cases: list[EvalCase]) -> list[dict[str, Any]]:
    """Play ``cases`` with a controller spec (``rule``, ``policy:PATH``...), a fresh controller per case."""
    from lrpilot.controller import from_spec

    env = _eval_env(config)
    return [run_controller(env, case, from_spec(controller_spec)) for case in cases]


def _provenance(config: PPOConfig, timesteps: int, seconds: float) -> dict[str, Any]:
    import gymnasium
    import stable_baselines3
    import torch

    from lrpilot import __version__

    return {
        "tasks": list(config.tasks), "lr_range": list(config.lr_range), "epochs": config.epochs,
        "timesteps": timesteps, "seed": config.seed, "n_envs": config.n_envs, "reward": config.reward,
        "actions": config.actions, "epoch_examples": config.epoch_examples, "task_options": dict(config.task_options),
        "ppo": {k: getattr(config, k) for k in ("n_steps", "batch_size", "n_epochs", "learning_rate", "gamma",
                                                "gae_lambda", "ent_coef")} | {"net_arch": list(config.net_arch)},
        "recipe": recorded_recipe(config), "lrpilot_version": __version__, "torch_version": torch.__version__,
        "stable_baselines3_version": stable_baselines3.__version__, "gymnasium_version": gymnasium.__version__,
        "training_seconds": round(seconds, 1),
    }


def _final_evaluation(config: PPOConfig, policy_path: Path, cases: list[EvalCase],
                      rule: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Evaluate the exported file (as deployment loads it) and ``rule`` on the held-out cases."""
    learned = evaluate_spec(f"policy:{policy_path}", config, cases)
    rule = rule if rule is not None else evaluate_spec("rule", config, cases)
    return {
        "split": "test", "epochs": config.epochs, "n_cases": len(cases),
        "cases": {"tasks": list(config.tasks), "initial_lrs": sorted({c.initial_lr for c in cases}),
                  "session_seeds": sorted({c.session_seed for c in cases})},
        "controllers": {"ppo": summarize(learned), "rule": summarize(rule)},
        "ppo_vs_rule_test_acc": paired(learned, rule),
        "episodes": {"ppo": learned, "rule": rule},
    }


def train_controller(config: PPOConfig, console: Any | None = None, progress: bool = True) -> TrainResult:
    """Train, checkpoint, evaluate and export.

    With a rich ``console``, evaluations are printed there, and (``progress``) a progress bar shows.
    """
    import torch

    config.validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)  # restored below: the caller's setting is not ours to keep
    try:
        return _train_and_export(config, console, progress)
    finally:
        torch.set_num_threads(threads)


def _train_and_export(config: PPOConfig, console: Any | None, progress: bool) -> TrainResult:
    from lrpilot.atomic import write_json_atomic

    out = Path(config.out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    cases = config.eval_cases()
    trained = _train(config, out, cases, console, progress)
    model, seconds = trained.model, trained.seconds
    base = Path(config.export_dir or out) / config.name
    provenance = _provenance(config, model.num_timesteps, seconds)
    action = ActionSpec.parse(config.actions)
    export_policy(model, base, action, provenance)
    evaluation = _final_evaluation(config, base, cases, trained.rule)
    evaluation["history"] = [{"timesteps": e["timesteps"], "ppo": e["policy"], "rule": e["rule"]}
                             for e in trained.history]
    card, weights = export_policy(model, base, action, provenance, evaluation)
    write_json_atomic(out / "eval.json", evaluation)
    sps = (model.num_timesteps - trained.start) / seconds if seconds > 0 else 0.0
    return TrainResult(card, weights, model.num_timesteps, seconds, sps, evaluation)


@dataclass
class _Trained:
    """What :func:`_train` produced."""

    model: Any
    """The SB3 model after training."""
    start: int
    """Timesteps done before this call (those of the checkpoint a resumed run continued)."""
    seconds: float
    """Wall time of this call's training, the periodic evaluations excluded."""
    history: list[dict[str, Any]]
    """Every held-out evaluation so far (including those before a resume)."""
    rule: list[dict[str, Any]] | None
    """The ``rule`` baseline's held-out episodes, when an evaluation played them (None: not yet played)."""


def _train(config: PPOConfig, out: Path, cases: list[EvalCase], console: Any | None, progress: bool) -> _Trained:
    """PPO training with checkpoints and periodic evaluation."""
    from stable_baselines3.common.callbacks import CallbackList

    from lrpilot.atomic import write_json_atomic
    from lrpilot.learn.sb3_callbacks import HeldOutEvalCallback, ProgressCallback, RolloutCheckpointCallback
    from lrpilot.learn.sb3_resume import apply_resume, make_vec_env, save_checkpoint

    rule: list[dict[str, Any]] = []  # the baseline is deterministic: played once, shared by every evaluation

    def rule_summary() -> dict[str, Any]:
        rule[:] = rule or evaluate_spec("rule", config, cases)
        return summarize(rule)

    earlier = latest_checkpoint(out / "checkpoints")
    if earlier is not None and not config.resume:  # never overwritten, never loaded without --resume
        raise ValueError(f"{out} holds checkpoints of an earlier run ({earlier.name}); add --resume to continue it, "
                         "or choose another --out")
    venv = make_vec_env(config.env_kwargs(), config.n_envs, config.torch_threads)
    try:
        model, state, resumed = _build_model(config, venv, out)
        if state is not None and len(state["envs"]) != config.n_envs:
            state = None  # the saved environments do not fit: continue with new episodes
        if resumed and state is None and console is not None:
            console.print("[yellow]checkpoint without .resume.pt or with another --n-envs: resumed inexactly "
                          "(new episodes, new RNG streams)")
        write_json_atomic(out / "config.json", config.to_dict())
        start = model.num_timesteps
        evaluator = HeldOutEvalCallback(config.eval_every or config.timesteps + 1,
                                        lambda m: summarize(evaluate_model(m, config, cases)), rule_summary, console)
        evaluator.history = list(state["eval_history"]) if state is not None else []
        bar = ProgressCallback(config.timesteps, console if progress else None, start_timesteps=start,
                               paused=lambda: evaluator.seconds)
        save = lambda: save_checkpoint(model, out / "checkpoints", CHECKPOINT_PREFIX, evaluator.history)  # noqa: E731
        checkpoints = RolloutCheckpointCallback(config.checkpoint_every, save)
        began = time.perf_counter()
        if config.timesteps > start:
            if state is not None:
                apply_resume(model, venv, state)  # last: nothing may draw from the restored RNGs before learn
            model.learn(config.timesteps - start, callback=CallbackList([bar, checkpoints, evaluator]),
                        tb_log_name=config.name, reset_num_timesteps=not resumed)
        seconds = time.perf_counter() - began - evaluator.seconds
        if model.num_timesteps > start:
            save()
    finally:
        venv.close()
    return _Trained(model, start, seconds, evaluator.history, rule or None)

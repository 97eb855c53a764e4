"""stable-baselines3 callbacks of ``lrpilot train-controller``: a rich progress bar, held-out evaluation, checkpoints.

Imported only by :mod:`lrpilot.learn.ppo` while training (stable-baselines3 is heavy).
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["ProgressCallback", "HeldOutEvalCallback", "RolloutCheckpointCallback"]


class ProgressCallback(BaseCallback):
    """A rich progress bar: timesteps, finished episodes, mean return of the last 20, env steps/second.

    Also logs ``train/episodes`` and ``train/env_steps_per_second`` to TensorBoard. With
    ``report_every``, each time that many more steps are done it prints (and keeps in :attr:`trend`)
    the mean return of the episodes that ended since the last report, so that a log shows whether
    the return rises; ``label`` names the return (``"return vs bold"`` with a twin reward). Undone
    intervals (an environment offering undo reports ``info["undone"]``) are counted: :attr:`undos`, the
    reports' ``undos`` and TensorBoard's ``train/undos``.
    """

    def __init__(self, total_timesteps: int, console: Any | None, start_timesteps: int = 0,
                 paused: Callable[[], float] = lambda: 0.0, label: str = "mean return",
                 report_every: int = 0) -> None:
        super().__init__()
        self.total, self.console, self.start_timesteps = total_timesteps, console, start_timesteps
        self.paused = paused
        """Seconds to leave out of the rate (time spent in evaluation)."""
        self.label, self.report_every = label, report_every
        self.trend: list[dict[str, float]] = []
        """One entry per report: ``timesteps``, ``mean_return`` and ``episodes`` since the previous one."""
        self._since: list[float] = []
        self._next_report = start_timesteps + report_every
        self.episodes = 0
        self.undos = 0
        """Undone intervals since training (re)started."""
        self._undos_since = 0
        self.returns: collections.deque[float] = collections.deque(maxlen=20)
        self.progress: Any = None
        self.bar: Any = None
        self.started = 0.0

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()
        if self.console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]PPO[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TextColumn("episodes {task.fields[episodes]}"), TextColumn(f"{self.label} {{task.fields[ret]}}"),
            TextColumn("{task.fields[sps]} steps/s"), TimeElapsedColumn(), console=self.console,
        )
        self.progress.start()
        self.bar = self.progress.add_task("ppo", total=self.total, completed=self.num_timesteps,
                                          episodes=0, ret="n/a", sps="-")

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if info.get("undone"):
                self.undos += 1
                self._undos_since += 1
            if "episode" in info:
                self.episodes += 1
                self.returns.append(float(info["episode"]["r"]))
                self._since.append(float(info["episode"]["r"]))
        if self.report_every > 0 and self.num_timesteps >= self._next_report:
            self._report()
        if self.progress is not None:
            mean = f"{sum(self.returns) / len(self.returns):.3f}" if self.returns else "n/a"
            self.progress.update(self.bar, completed=self.num_timesteps, episodes=self.episodes, ret=mean,
                                 sps=f"{self.steps_per_second:.1f}")
        return True

    def _report(self) -> None:
        while self._next_report <= self.num_timesteps:
            self._next_report += self.report_every
        if not self._since:
            return
        mean = sum(self._since) / len(self._since)
        self.trend.append({"timesteps": int(self.num_timesteps), "mean_return": round(mean, 4),
                           "episodes": len(self._since), **({"undos": self._undos_since} if self.undos else {})})
        undos = f", {self._undos_since} undos" if self.undos else ""
        self._since, self._undos_since = [], 0
        if self.console is not None:
            self.console.print(f"{self.num_timesteps} steps: {self.label} {mean:+.3f} "
                               f"(mean of {self.trend[-1]['episodes']} episodes{undos})")

    def _on_rollout_end(self) -> None:
        self.logger.record("train/episodes", self.episodes)
        self.logger.record("train/undos", self.undos)
        self.logger.record("train/env_steps_per_second", self.steps_per_second)

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second since training (re)started: PPO updates included, evaluations not."""
        elapsed = time.perf_counter() - self.started - self.paused()
        return (self.num_timesteps - self.start_timesteps) / elapsed if elapsed > 0 else 0.0

    def _on_training_end(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class HeldOutEvalCallback(BaseCallback):
    """Every ``every`` timesteps, play the held-out cases with the current policy (deterministic).

    ``evaluate_policy(model)`` and ``evaluate_baseline()`` return summaries (see
    :func:`lrpilot.envs.episodes.summarize`); the baseline is evaluated once (it does
    not change). Logs ``eval/policy_*`` and ``eval/rule_*`` to TensorBoard and prints a line.
    """

    def __init__(self, every: int, evaluate_policy: Callable[[Any], dict[str, Any]],
                 evaluate_baseline: Callable[[], dict[str, Any]], console: Any | None) -> None:
        super().__init__()
        self.every, self.evaluate_policy, self.evaluate_baseline = every, evaluate_policy, evaluate_baseline
        self.console = console
        self.baseline: dict[str, Any] | None = None
        self.next_at = 0
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        """Wall time spent evaluating."""

    def _on_training_start(self) -> None:
        self.next_at = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            self.next_at += self.every * max(1, (self.num_timesteps - self.next_at) // self.every + 1)
            self.run()
        return True

    def run(self) -> dict[str, Any]:
        """Evaluate now, log and print; returns ``{"timesteps", "policy", "rule"}``."""
        began = time.perf_counter()
        if self.baseline is None:
            self.baseline = self.evaluate_baseline()
        policy = self.evaluate_policy(self.model)
        for name, summary in (("policy", policy), ("rule", self.baseline)):
            self.logger.record(f"eval/{name}_test_acc", summary["mean_test_acc"])
            self.logger.record(f"eval/{name}_return", summary["mean_return"])
            self.logger.record(f"eval/{name}_diverged", summary["diverged"])
        self.logger.dump(self.num_timesteps)
        entry = {"timesteps": self.num_timesteps, "policy": policy, "rule": self.baseline}
        self.history.append(entry)
        self.seconds += time.perf_counter() - began
        if self.console is not None:
            self.console.print(
                f"eval @ {self.num_timesteps} steps (n={policy['n']}): policy test acc {_pct(policy['mean_test_acc'])}"
                f" return {policy['mean_return']:.3f} diverged {policy['diverged']} | rule test acc "
                f"{_pct(self.baseline['mean_test_acc'])} return {self.baseline['mean_return']:.3f} "
                f"diverged {self.baseline['diverged']}")
        return entry


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


class RolloutCheckpointCallback(BaseCallback):
    """Every ``every`` timesteps, call ``save()`` at the start of a rollout.

    There, the previous rollout has been used for an update and the next one has not begun, so
    a checkpoint holds no half-collected transitions (see :mod:`lrpilot.learn.sb3_resume`).
    """

    def __init__(self, every: int, save: Callable[[], Any]) -> None:
        super().__init__()
        self.every, self.save = every, save
        self.next_at = 0

    def _on_training_start(self) -> None:
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self.next_at:
            self.next_at = (self.model.num_timesteps // self.every + 1) * self.every
            self.save()

    def _on_step(self) -> bool:
        return True

"""The engine of the population environments: groups of lockstep-trained members, each its own episode.

:class:`PopulationCore` holds ``groups`` :class:`~lrpilot.training.population_trainer.Population`
objects. Group ``g`` serves a fixed set of environment indices (its *members*); each
member plays :class:`~lrpilot.envs.lr_control.LRControlEnv` episodes: same observation
encoder, action mapping, reward, divergence rule, LR bounds and episode end. The two
public wrappers in :mod:`lrpilot.envs.population` adapt it to Gymnasium and SB3.

**Ready episodes.** An episode starts with one epoch at its initial LR (as in
``LRControlEnv.reset``), so an auto-reset needs a trained epoch in the very step where
the old episode ends. A group's population therefore has more slots than members: a
member whose episode ends takes a *ready* slot (a new episode whose first epoch is
trained) at once, and its old slot goes idle. Ends by budget are known in advance, so
each step's pass trains, next to the running members, the first epochs of as many new
episodes as will be needed in this step plus ``spares`` for divergences. Every step is
then one vectorised pass over exactly the epochs that LRControlEnvs would train (the
``spares`` ready episodes are played later, not wasted); only when more members diverge
in one step than there are ready spares does an extra pass run for the shortfall.

**Intervals and undo.** With ``interval`` (``EnvConfig.interval``) a step is one control interval
of every member, as in ``LRControlEnv`` (a member's budget is its ``epochs`` times the intervals per
epoch; members of a group share the batch count, so the interval boundaries, and
:class:`~lrpilot.training.population_trainer.Population` trains members at different points of
their epochs together). With ``undo`` (``EnvConfig.undo``) each member has the undo action: a member
that undoes has its own slice of the population restored (weights, optimiser state, LR, data order)
and retries its interval at a tenth of the LR, while the others go on untouched; a diverged interval
waits for the member's next action exactly as in ``LRControlEnv``, with the same rewards.

**Twins.** With ``PopulationConfig.twin`` every episode has a twin in the same population (the
second half of its slots), driven by the reference controller, and the reward is the agent's
improvement minus the twin's (:mod:`lrpilot.envs.population.twins`). At an episode's end ``info["twin"]``
holds the twin's final validation loss and accuracy (and ``info["twin_test"]`` its test metrics with
``evaluate_test``).

**Redraws.** A group's task (architecture, optimiser, data) is fixed for
``group_lifetime`` steps; then a new task is drawn. With ``redraw="cut"`` (the default) every
running episode of the group is truncated (``truncated=True``, ``info["group_redrawn"]=True``).
With ``redraw="drain"`` no episode is cut: the old population keeps training the members whose
episodes are still running until each ends (by its budget or a divergence), and each member whose
episode ends starts its next one on the new task, in a new population drawn at the redraw (its
first episodes' first intervals are trained then, as at a reset). The new population's own lifetime
counts from the redraw, but it is not redrawn before the old one has drained. A group with nothing
to redraw (one fixed task, no distribution) is never redrawn.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from lrpilot.controller.base import Undo
from lrpilot.envs.lr_control import UNDO_LR_FACTOR, epoch_reward, reward_reference
from lrpilot.envs.population.config import PopulationConfig
from lrpilot.envs.population.groups import Episode, Group, StepResult, train_interval
from lrpilot.envs.population.twins import Twins
from lrpilot.metrics import METRIC_NAMES, OPTIONAL_METRICS, EpochMetrics
from lrpilot.training.loading import load_splits
from lrpilot.training.population_trainer import Population
from lrpilot.training.task import Task, get_task

__all__ = ["PopulationConfig", "PopulationCore", "StepResult", "action_multipliers"]

_RECORD_FIELDS = tuple(name for name in METRIC_NAMES if name not in ("seconds", "undone", *OPTIONAL_METRICS))
"""The info record of an interval, as ``EpochMetrics.to_dict`` without ``seconds`` (wall time is not
reproducible) and without ``undone`` (which ``to_dict`` writes only when True; a step's record is
never undone yet); the optional fields are added when measured (``elapsed_epochs``, with intervals)."""


def action_multipliers(action_spec: Any, actions: Any, num_envs: int) -> "list[float | Undo]":
    """One decision per environment from a batch of actions: an LR multiplier, or
    :data:`~lrpilot.controller.base.UNDO` for the undo action (``ValueError`` for a wrong count)."""
    actions = np.asarray(actions)
    if len(actions) != num_envs:
        raise ValueError(f"need one action per environment ({num_envs}), got {len(actions)}")
    return [action_spec.to_decision(a) for a in actions]


def _decision(value: Any) -> "float | Undo":
    """A multiplier as a float; an :class:`Undo` as it is."""
    return value if isinstance(value, Undo) else float(value)


class PopulationCore:
    """Steps every member of every group one epoch per call; see the module docstring."""

    def __init__(self, config: PopulationConfig, first_group: int = 0, total_groups: int | None = None) -> None:
        """``first_group``/``total_groups``: this core's place among several (worker processes) for
        group numbers in infos and for staggering the groups' redraws."""
        self.config = config
        self.first_group, self.total_groups = first_group, total_groups or config.groups
        self.encoder = config.env.observation_encoder()
        self.action_spec = config.env.action_spec
        self.np_random: np.random.Generator | None = None
        sizes = [len(part) for part in np.array_split(np.arange(config.num_envs), config.groups)]
        self._members = np.split(np.arange(config.num_envs), np.cumsum(sizes)[:-1])
        self._groups: list[Group] = []
        self._draining: list[Group | None] = []  # redraw="drain": the old population of each group, if any

    # -- public ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Draw every group afresh and train every slot's first epoch; observations and infos."""
        self.np_random = np.random.default_rng(seed)
        lifetime = self.config.group_lifetime or 0
        # staggered first lifetimes, so that groups are not all redrawn in the same step
        self._groups = [self._new_group(g, members, age=(self.first_group + g) * lifetime // self.total_groups)
                        for g, members in enumerate(self._members)]
        self._draining = [None] * len(self._groups)
        obs = np.zeros((self.config.num_envs, self.encoder.size), dtype=np.float32)
        infos: list[dict[str, Any]] = [{} for _ in range(self.config.num_envs)]
        for group in self._groups:
            for env in group.members:
                obs[env], infos[env] = self._start_info(group, group.slot_of[env])
        return obs, infos

    def step(self, actions: Any) -> list[StepResult]:
        """Map each member's action to a multiplier and step (see :meth:`step_multipliers`)."""
        return self.step_multipliers(action_multipliers(self.action_spec, actions, self.config.num_envs))

    def step_multipliers(self, multipliers: "Sequence[float | Undo]") -> list[StepResult]:
        """Apply each member's LR multiplier (or :data:`UNDO`, with ``undo=True``) and train one interval
        (an epoch by default) everywhere; one result per member."""
        if not self._groups:
            raise RuntimeError("population environment stepped before reset()")
        if len(multipliers) != self.config.num_envs:
            raise ValueError(f"need one multiplier per environment ({self.config.num_envs}), got {len(multipliers)}")
        if not self.config.env.undo and any(isinstance(m, Undo) for m in multipliers):
            raise ValueError("population environment: undo is not offered; build it with undo=True")
        results: list[StepResult | None] = [None] * self.config.num_envs
        for g, group in enumerate(self._groups):
            old = self._draining[g]
            drained = self._step_group(old, multipliers) if old is not None else {}
            stepped = self._step_group(group, multipliers)
            closing = self._closing(group)  # as _step_group saw it: before the old population's members move on
            for env, result in (*drained.items(), *stepped.items()):
                results[env] = result
            if old is not None:  # members whose episode on the old task ended start one on the new task
                self._join(old, group, drained)
                self._draining[g] = old if old.active else None
            if closing:
                if self.config.redraw == "cut":
                    self._groups[g] = self._redraw(group, results)
                else:
                    self._groups[g] = self._new_group(group.index, group.members)
                    self._groups[g].active = set()
                    self._join(group, self._groups[g], stepped)
                    self._draining[g] = group if group.active else None
        return results  # type: ignore[return-value]

    def history(self, env: int) -> list[EpochMetrics]:
        """The metrics of every epoch of member ``env``'s current episode."""
        group = self._group_of(env)
        return list(group.population.history[group.slot_of[env]])

    def task_of(self, env: int) -> Task:
        """The task of member ``env``'s current episode (with ``redraw="drain"``, maybe a draining group's)."""
        return self._group_of(env).task

    def _group_of(self, env: int) -> Group:
        """The group whose population plays member ``env``'s current episode."""
        for group in (*(g for g in self._draining if g is not None), *self._groups):
            if env in group.active:
                return group
        raise ValueError(f"env must be in 0..{self.config.num_envs - 1} (after reset), got {env!r}")

    def group_tasks(self) -> list[Task]:
        """The task each group trains now."""
        return [group.task for group in self._groups]

    # -- drawing --------------------------------------------------------------------------
    def _rng(self) -> np.random.Generator:
        assert self.np_random is not None  # internal invariant: reset() ran
        return self.np_random

    def _draw_task(self) -> tuple[Task, int | None, Any, Any]:
        """A group's task, epoch size, data and control interval (from the distribution, which may draw the
        interval per group, or from ``env``'s task list and ``interval``)."""
        cfg, rng, dist = self.config.env, self._rng(), self.config.distribution
        if dist is not None:
            task, examples = dist.draw_task(rng)
            data = task.load_data(task, None)  # drawn data is not cached (unbounded variety)
            return task, examples, data, dist.draw_interval(rng) if dist.intervals != (1.0,) else cfg.interval
        name = cfg.tasks[int(rng.integers(len(cfg.tasks)))]
        task = get_task(name).with_overrides(epochs=cfg.epochs, **cfg.task_options)
        if task.epochs < 2:
            raise ValueError(f"population: epochs must be >= 2, task {task.name!r} has {task.epochs}")
        return task, cfg.epoch_examples, load_splits(task, cfg.data_dir), cfg.interval

    def _draw_episode(self, task: Task) -> Episode:
        cfg, rng, dist = self.config.env, self._rng(), self.config.distribution
        if dist is not None:
            lr, epochs = dist.draw_lr(rng, task), dist.draw_epochs(rng)
        else:
            lr, epochs = cfg.initial_lr, task.epochs
            draw = float(rng.uniform(0.0, 1.0))
            if isinstance(lr, tuple):
                lr = math.exp(math.log(lr[0]) + draw * (math.log(lr[1]) - math.log(lr[0])))
            lr = task.lr if lr is None else float(lr)
        return Episode(float(lr), int(epochs), int(rng.integers(*cfg.session_seeds)))

    def _spares(self, members: int) -> int:
        return self.config.spares if self.config.spares is not None else max(2, members // 4)

    def _new_group(self, index: int, members: Sequence[int], age: int = 0) -> Group:
        """A group with capacity for every member, ``spares`` ready episodes and as many again in reserve
        (so that even all members ending at once find ready episodes); the first ``members + spares``
        slots start episodes and train their first epoch."""
        task, examples, data, interval = self._draw_task()
        spares = self._spares(len(members))
        started = len(members) + spares
        episodes = [self._draw_episode(task) for _ in range(started)]
        reserve = [Episode(1.0, 2, 0)] * len(members)  # placeholders, replaced when a slot starts an episode
        cfg, slots = self.config.env, episodes + reserve
        copies = 2 if self.config.twin else 1  # the twins are the second half
        population = Population(task, [e.seed for e in slots] * copies, [e.initial_lr for e in slots] * copies,
                                device=cfg.device, data=data, epoch_examples=examples, lr_bounds=cfg.lr_bounds,
                                divergence=cfg.divergence_rule, interval=interval, undo=cfg.undo)
        group = Group(index, task, population, slots, members, spares, age)
        if self.config.twin:
            group.twins = Twins(self.config.twin, len(slots), population.intervals_per_epoch, cfg.undo)
            group.twins.start(range(started), [e.initial_lr for e in episodes], [e.epochs for e in episodes])
        train_interval(population, group.with_twins(range(started)))
        return group

    # -- stepping -------------------------------------------------------------------------
    def _step_group(self, group: Group, multipliers: "Sequence[float | Undo]") -> dict[int, StepResult]:
        pop = group.population
        members = [env for env in group.members if env in group.active]
        decisions = {env: _decision(multipliers[env]) for env in members}
        already = [env for env in members
                   if pop.history[group.slot_of[env]][-1].diverged and not isinstance(decisions[env], Undo)]
        running = [env for env in members if env not in already]
        slots = [group.slot_of[env] for env in running]
        fresh = [] if self._is_draining(group) else self._prepare_ready(group, slots)  # it starts no episode
        references = {env: reward_reference(pop.history[group.slot_of[env]]) for env in running}
        twins = group.twins.decide(pop, slots) if group.twins else []
        twins_trained = set(twins)
        undoing = [env for env in running if isinstance(decisions[env], Undo)]
        if undoing:
            pop.undo([group.slot_of[env] for env in undoing],
                     [decisions[env].lr_factor(UNDO_LR_FACTOR) for env in undoing])  # type: ignore[union-attr]
        scaled = [env for env in running if not isinstance(decisions[env], Undo)]
        if scaled:
            pop.scale_lr([group.slot_of[env] for env in scaled], [decisions[env] for env in scaled])
        trained = train_interval(pop, slots + group.with_twins(fresh) + twins) if slots or fresh else []
        group.ready.extend(fresh)
        group.age += 1
        results: dict[int, StepResult] = {}
        ended: list[int] = []
        for env, metrics in [(env, pop.history[group.slot_of[env]][-1]) for env in already] + list(
                zip(running, trained)):
            twin_trained = group.twins is not None and group.twins.slot(group.slot_of[env]) in twins_trained
            result = self._member_result(group, env, metrics, decisions[env], references.get(env),
                                         trained=env in running, twin_trained=twin_trained)
            results[env] = result
            if result.terminated or result.truncated:
                ended.append(env)
        if not self._closing(group):
            self._restart(group, ended, results)
        return results

    def _member_result(self, group: Group, env: int, metrics: EpochMetrics, decision: "float | Undo",
                       reference: EpochMetrics | None, trained: bool, twin_trained: bool = False) -> StepResult:
        """The LRControlEnv step outcome of ``env``'s interval ``metrics`` (or of its diverged last one, when
        it did not undo it); ``reference`` is what its reward is measured from."""
        slot, cfg = group.slot_of[env], self.config.env
        history = group.population.history[slot]
        episode = group.episodes[slot]
        budget = self._budget(group, slot)
        info = self._info(group, slot, metrics, decision)
        last = len(history) >= budget
        # flagged by the population with the env's DivergenceRule; with undo, the next action may undo it
        pending = trained and metrics.diverged and cfg.undo and not last
        diverged = not trained or (metrics.diverged and not pending)
        terminated = diverged or (last and cfg.budget_end == "terminal")
        cut = self.config.redraw == "cut" and self._expired(group)
        truncated = not terminated and (last or cut)
        if diverged:
            reward = cfg.divergence_penalty
        elif pending:
            reward = 0.0
        else:
            reward = epoch_reward(cfg.reward, reference, metrics, last=last)
        if group.twins is not None:
            reward -= group.twins.progress(group.population, slot, twin_trained)
        if terminated or truncated:
            info["diverged"] = diverged
            if cut and not terminated and not last:
                info["group_redrawn"] = True
            if group.twins is not None:
                info["twin"] = group.twins.final(group.population, slot)
            if cfg.evaluate_test:
                test = {"loss": None, "acc": None} if diverged else group.population.evaluate("test", [slot])[0]
                info["test"] = _finite_test(test)
                if group.twins is not None:
                    info["twin_test"] = _finite_test(group.twins.final_test(group.population, slot))
        obs = self.encoder.encode(history, episode.initial_lr, budget)
        return StepResult(obs, float(reward), terminated, truncated, info)

    @staticmethod
    def _budget(group: Group, slot: int) -> int:
        """Decisions in the budget of ``slot``'s episode: its epochs times the intervals per epoch."""
        return group.episodes[slot].epochs * group.population.intervals_per_epoch

    def _prepare_ready(self, group: Group, slots: list[int]) -> list[int]:
        """Start enough idle slots (trained in this step's pass) that, after the episodes that reach
        their budget in this step took theirs, ``spares`` ready episodes remain for divergences."""
        pop = group.population
        ending = sum(len(pop.history[s]) + 1 >= self._budget(group, s) for s in slots)
        fresh = [group.idle.pop() for _ in range(max(0, ending + group.spares - len(group.ready)))]
        for slot in fresh:
            self._reseed(group, slot)
        return fresh

    def _restart(self, group: Group, ended: list[int], results: dict[int, StepResult]) -> None:
        """Give every ended member a ready episode; its old slot goes idle."""
        pop, shortfall = group.population, []
        for env in ended:
            old = group.slot_of[env]
            if group.ready:
                group.slot_of[env] = group.ready.popleft()
                group.idle.append(old)
            else:
                self._reseed(group, old)
                shortfall.append(env)
        if shortfall:  # more divergences than ready episodes: train those first epochs now
            train_interval(pop, group.with_twins([group.slot_of[env] for env in shortfall]))
        for env in ended:
            self._begin(results[env], group, env)

    def _reseed(self, group: Group, slot: int) -> None:
        episode = self._draw_episode(group.task)
        group.episodes[slot] = episode
        group.population.reset_members([slot], [episode.seed], [episode.initial_lr])
        if group.twins is not None:
            group.population.reset_members([group.twins.slot(slot)], [episode.seed], [episode.initial_lr])
            group.twins.start([slot], [episode.initial_lr], [episode.epochs])

    def _expired(self, group: Group) -> bool:
        lifetime = self.config.group_lifetime
        redrawable = self.config.distribution is not None or len(self.config.env.tasks) > 1
        return redrawable and lifetime is not None and group.age >= lifetime

    def _is_draining(self, group: Group) -> bool:
        return self._draining[group.index] is group

    def _closing(self, group: Group) -> bool:
        """No episode starts in ``group`` any more: it drains, or it is redrawn after this step (with
        ``redraw="drain"``, only once the group's previous population has drained)."""
        if self._is_draining(group):
            return True
        return self._expired(group) and (self.config.redraw == "cut" or self._draining[group.index] is None)

    def _join(self, old: Group, new: Group, results: dict[int, StepResult]) -> None:
        """The members whose episodes in ``old`` ended in ``results`` continue in ``new`` (the episode
        waiting in each one's slot there)."""
        for env, result in results.items():
            if not (result.terminated or result.truncated):
                continue
            old.active.discard(env)
            new.active.add(env)
            self._begin(result, new, env)

    def _redraw(self, group: Group, results: list[StepResult | None]) -> Group:
        """Replace an expired group with a newly drawn one; its members' episodes were truncated."""
        new = self._new_group(group.index, group.members)
        for env in group.members:
            result = results[env]
            assert result is not None  # internal invariant: every member was stepped
            self._begin(result, new, env)
        return new

    def _begin(self, result: StepResult, group: Group, env: int) -> None:
        """``env``'s episode ended in ``result``: keep its last observation, and start the one waiting in its
        slot of ``group`` (the auto-reset)."""
        result.final_obs = result.obs
        result.obs, result.reset_info = self._start_info(group, group.slot_of[env])

    # -- observations and infos --------------------------------------------------------------
    def _start_info(self, group: Group, slot: int) -> tuple[np.ndarray, dict[str, Any]]:
        history, episode = group.population.history[slot], group.episodes[slot]
        return (self.encoder.encode(history, episode.initial_lr, self._budget(group, slot)),
                self._info(group, slot, history[-1]))

    def _info(self, group: Group, slot: int, metrics: EpochMetrics,
              decision: "float | Undo | None" = None) -> dict[str, Any]:
        episode = group.episodes[slot]
        record = {name: getattr(metrics, name) for name in _RECORD_FIELDS}  # as to_dict(), faster
        record.update({name: getattr(metrics, name) for name in OPTIONAL_METRICS if getattr(metrics, name) is not None})
        for name in ("train_loss", "train_loss_std", "val_loss", "val_acc", "grad_norm"):
            if record[name] is not None and not math.isfinite(record[name]):
                record[name] = None
        info: dict[str, Any] = {"task": group.task.name, "initial_lr": episode.initial_lr, "session_seed": episode.seed,
                                "metrics": record, "lr": metrics.lr, "group": self.first_group + group.index,
                                "epochs": episode.epochs, "budget": self._budget(group, slot)}
        if decision is not None:
            info["multiplier"] = decision.lr_factor(UNDO_LR_FACTOR) if isinstance(decision, Undo) else decision
            if self.config.env.undo:
                info["undone"] = isinstance(decision, Undo)
        return info


def _finite_test(test: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in test.items()}

"""The description shared by both population wrappers' docstrings (Gymnasium sections)."""

POPULATION_DOC = """
    ## Description

    ``num_envs`` members, split over ``groups`` populations. Each member plays
    :class:`~lrpilot.envs.lr_control.LRControlEnv` episodes of its own: its own session
    seed, initial weights, data order, initial LR, epoch budget, divergence and auto-reset.
    The members of a group share one task (architecture, optimiser family, data, batch and
    epoch size) and train together in one ``torch.vmap`` pass per step
    (:class:`~lrpilot.training.population_trainer.Population`). Tasks come either from the
    ``task`` / ``initial_lr`` / ``epochs`` / ``epoch_examples`` fields (as in
    ``LRControlEnv``; a group draws one of the tasks) or, with ``distribution=``, from a
    :class:`~lrpilot.training.distribution.TaskDistribution` (architectures, optimisers, data
    families, LRs and budgets all drawn). A group keeps its task for ``group_lifetime``
    steps (default 256), then every running episode of the group is truncated
    (``info["group_redrawn"]``) and a new task is drawn; with one fixed task and no
    distribution a group is never redrawn.

    ## Action Space

    Per member, the action set of ``LRControlEnv`` (default `Discrete(4)`: ×0.1, ×0.5, ×1,
    ×2; or ``actions="continuous"``), mapped by the same
    :class:`~lrpilot.controller.actions.ActionSpec`; the LR stays within
    ``[initial_lr × 1e-4, initial_lr × 100]`` (``lr_bounds``). With ``undo=True``, one more action
    (the last): undo. That member's own slice of the population (weights, optimiser state, LR, data
    order) is rewound to the start of its last interval and the interval is retried at a tenth of the
    LR; the other members are not touched.

    ## Control Intervals

    With ``interval`` (``0.25``, ``"50steps"``) a step is one control interval of every member, as in
    ``LRControlEnv``: a member's budget is ``epochs * intervals_per_epoch`` steps (the interval
    boundaries are those of the group's batch count, which its members share). A
    :class:`~lrpilot.training.distribution.TaskDistribution` with several ``intervals`` (``(1.0, 0.25)``)
    draws one per group instead, so groups decide at different rates. Each step's ``info`` has the
    episode's ``epochs`` and its ``budget`` in steps.

    ## Observation Space

    Per member, the `Box` of :class:`~lrpilot.controller.features.ObservationEncoder`
    (the encoder of ``LRControlEnv`` and of deployed policies), from that member's
    episode history.

    ## Rewards

    As ``LRControlEnv`` (``reward="log_val_loss"`` by default; ``divergence_penalty`` on
    the step that diverges), computed by the same function
    (:func:`~lrpilot.envs.lr_control.epoch_reward`); divergence is the same
    :class:`~lrpilot.training.divergence.DivergenceRule` (``EnvConfig.divergence_rule``).

    ## Starting State

    ``reset(seed=...)`` draws every group's task and every episode (session seed,
    initial LR, budget) from one generator seeded by ``seed``, and trains each
    episode's first epoch, so the first observations hold real metrics.

    ## Episode End

    Per member: termination on divergence, truncation when its budget is used up or its
    group is redrawn. With ``undo=True`` a diverged interval waits for the member's next action, as
    in ``LRControlEnv``: undo goes on, anything else terminates. The member then starts its next episode in the same step (its first
    epoch was trained ahead, see :mod:`lrpilot.envs.population.core`).

    On the CPU the same seed and actions give the same observations and rewards.

    ## Version History

    * v0: initial version (observation encoder ``lrpilot-obs`` v1).
    * v0, lrpilot 0.1.1: ``divergence_factor`` is called ``divergence_growth_factor`` (the old
      keyword still works, with a ``DeprecationWarning``); episodes end exactly as before, and the
      epoch that ends one by the growth threshold now has ``diverged=True`` in its metrics.
    * v0, lrpilot 0.2: ``interval`` and ``undo``; their defaults keep episodes exactly as before.
    * v0, lrpilot 0.2: intervals drawn per group (``TaskDistribution.intervals``); ``info["epochs"]``
      and ``info["budget"]``. Distributions without intervals draw exactly as before.
"""

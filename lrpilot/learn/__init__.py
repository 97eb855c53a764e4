"""Learning controllers: PPO, behaviour cloning, DAgger, the population training pipeline, SB3 glue
(resume state, callbacks), training recipes, and the one export path to a policy file.

Imports :mod:`lrpilot.envs`, :mod:`lrpilot.controller` and :mod:`lrpilot.training`; nothing
below it imports it (``docs/architecture.md``). Deployment never needs this package.
"""

"""PPO from scratch with the twin reward: configs/ppo-twin.toml without the clone, retention or warm-up.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_scratch_twin.py [OUT]    # default runs/h16/scratch-twin

(A recipe cannot unset ``init_policy`` from the command line yet, hence this script.)
"""
import sys

from rich.console import Console

from lrpilot.commands.train_controller import _run_population
from lrpilot.learn.recipe import load_recipe

if __name__ == "__main__":
    recipe = load_recipe("configs/ppo-twin.toml").replace(init_policy=None, retention=0.0, critic_warmup=0,
                                                          out_dir=sys.argv[1] if len(sys.argv) > 1 else "runs/h16/scratch-twin",
                                                          name="scratch-twin")
    _run_population(recipe, Console())

"""Where a fine-tune draw's decision goes: one interval's training pass against one evaluation (session 31).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_step_cost.py 64 128 256 512

A population of the ``steep`` fine-tune draw (the training fine-tunes of ``configs/default.toml``'s second stage:
a depth-4 transformer of width 32 on 16-token sequences, 64 training examples in batches of 8, 512 validation
examples) with 16 rows (8 members and their 8 twins) at interval 0.25, LR 1e-4. For each evaluation chunk given
(``VMAP_EVAL_CHUNK``; the population uses 64): the best of 5 evaluations on the validation split and of 5
training passes over one interval (2 batches, forward, backward and Adam). One thread.
"""

from __future__ import annotations

import sys
import time

import torch

import lrpilot.training.population_trainer as trainer
from lrpilot.training.distribution import STEEP_DRAW
from lrpilot.training.population_trainer import Population
from lrpilot.training.synthetic import synthetic_task


def main() -> None:
    torch.set_num_threads(1)
    task = synthetic_task("seq-transformer-finetune", "steep fine-tune draw", optimizer="adam", batch_size=8,
                          **{**STEEP_DRAW, "seq_len": 16, "data_seed": 0})
    start = time.perf_counter()
    pop = Population(task, seeds=range(16), lrs=[1e-4] * 16, interval=0.25)
    print(f"population built in {time.perf_counter() - start:.1f} s (the body's pretraining included)")
    members = list(range(pop.size))
    spans = {i: pop._span(i) for i in members}
    batch = task.batch_size
    order = torch.stack([pop._orders[i][spans[i][0] * batch: spans[i][1] * batch] for i in members])
    for chunk in [int(c) for c in sys.argv[1:]] or [trainer.VMAP_EVAL_CHUNK]:
        trainer.VMAP_EVAL_CHUNK = chunk
        evals, trains = [], []
        for _ in range(5):
            t = time.perf_counter()
            pop._evaluate(pop.params, "val")
            evals.append(time.perf_counter() - t)
        for _ in range(5):
            params, state = pop.params.clone(), {k: v.clone() for k, v in pop.state.items()}
            t = time.perf_counter()
            pop._train_pass(params, state, pop.lr, order)
            trains.append(time.perf_counter() - t)
        print(f"chunk {chunk}: evaluation {min(evals) * 1e3:.1f} ms, training pass (2 batches) "
              f"{min(trains) * 1e3:.1f} ms, {len(pop.data.val)} validation examples")


if __name__ == "__main__":
    main()

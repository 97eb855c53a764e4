"""Real tabular tasks on data that scikit-learn ships offline, never in the controller's training
distribution (which is synthetic: teacher / gmm / seq, see ``synthetic.py``).

Held out (:data:`HELDOUT_TASKS`, the held-out grid of ``evaluate-controller``):

* ``breast-cancer-mlp``: Wisconsin breast cancer (569 examples, 30 features, 2 classes);
* ``wine-mlp``: wine recognition (178 examples, 13 features, 3 classes).

Validation (:data:`VALIDATION_TASKS`, for choosing recipes and checkpoints while training a
controller; no held-out task uses their data):

* ``iris-mlp``: Fisher's iris (150 examples, 4 features, 3 classes).

Features are standardised with the *train* split's mean and standard deviation. Splits are
fixed (seed 0, never the run's seed): 60% train, 20% validation, 20% test. The model is an
MLP ``in -> width -> width -> classes`` (ReLU), Adam at 1e-3, batch 32, 15 epochs by default.
"""

from __future__ import annotations

import torch
from torch import nn

from lrpilot.training.data import DataSplits, TensorSplit
from lrpilot.training.loading import require
from lrpilot.training.task import Task

__all__ = ["load_tabular", "tabular_mlp", "HELDOUT_TASKS", "VALIDATION_TASKS"]

_LOADERS = {"breast_cancer": "load_breast_cancer", "wine": "load_wine", "iris": "load_iris"}


def load_tabular(task: Task, data_dir: str | None = None) -> DataSplits:
    """The task's scikit-learn dataset (``options["dataset"]``), standardised, in fixed splits."""
    sk = require("sklearn.datasets", "dev")
    bunch = getattr(sk, _LOADERS[task.options["dataset"]])()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.long)
    n = len(y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_test = n_val = n // 5
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    full = TensorSplit(x, y)
    return DataSplits(full.subset(train), full.subset(val), full.subset(test), num_classes=int(y.max()) + 1)


def tabular_mlp(task: Task, data: DataSplits) -> nn.Module:
    """An MLP ``in -> width -> width -> classes`` with ReLU."""
    width = int(task.options.get("width", 64))
    n_in = int(data.train.inputs.shape[1])
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, data.num_classes))


HELDOUT_TASKS = (
    Task(name="breast-cancer-mlp", load_data=load_tabular, build_model=tabular_mlp, epochs=15, batch_size=32,
         description="MLP on scikit-learn's breast cancer data (real tabular; held out from controller training)",
         options={"dataset": "breast_cancer", "width": 64}),
    Task(name="wine-mlp", load_data=load_tabular, build_model=tabular_mlp, epochs=15, batch_size=32,
         description="MLP on scikit-learn's wine data (real tabular; held out from controller training)",
         options={"dataset": "wine", "width": 64}),
)

VALIDATION_TASKS = (
    Task(name="iris-mlp", load_data=load_tabular, build_model=tabular_mlp, epochs=15, batch_size=16,
         description="MLP on scikit-learn's iris data (real tabular; a validation task for controller training, "
                     "never held out)",
         options={"dataset": "iris", "width": 32}),
)
